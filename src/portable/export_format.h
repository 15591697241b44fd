// The portable export of an event log (docs/export.md): JSON Lines, one
// header, one line per event carrying its exact stored bytes (base64) and
// chain hash, one trailer. Self-describing, diffable with text tools, and
// enough to recreate a log with the same events, hashes and digest.
// Thread-safety: free functions.
#pragma once

#include <functional>
#include <istream>
#include <ostream>
#include <string>

#include "common/sha256.h"
#include "common/status.h"
#include "log/event_store.h"

namespace modelreg::portable {

inline constexpr char kFormatName[] = "modelreg-export";
inline constexpr int kFormatVersion = 1;

// Called now and then with the events done so far and the total.
using ProgressFn = std::function<void(Seq done, Seq total)>;

// Writes the whole log; refuses (Corruption) a log whose chain is broken.
Status ExportLog(const EventStore& store, std::ostream& out, const ProgressFn& progress = {});

struct ImportSummary {
  Seq events = 0;
  Digest head_hash{};
};

// Reads and checks a whole export file (header, every event's structure,
// sequence, chain and hash, trailer) without writing anything.
// InvalidArgument names the line; a field of the wrong JSON type is such
// an error too (the file is untrusted: nothing here throws on it).
Result<ImportSummary> CheckExport(const std::string& path);

// Appends every event of a checked export file to `store` (which must be
// empty) exactly as exported. `total` (from CheckExport) is only passed
// on to `progress`, after every batch appended.
Status ImportInto(const std::string& path, EventStore& store, Seq total = 0,
                  const ProgressFn& progress = {});

}  // namespace modelreg::portable
