// Checkpoints: a signed statement of the log's Merkle tree (merkle/tree.h)
// in the C2SP tlog-checkpoint text (https://c2sp.org/tlog-checkpoint),
// signed as a note (note/note.h):
//
//   <origin>                      the registry's name for its log
//   <tree size>                   decimal, the number of events
//   <root hash>                   base64 of the 32-byte RFC 6962 root
//   time <UTC ISO-8601>           extension line: when it was signed
//
// Readers that know checkpoints read the first three lines and ignore the
// extension line.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/sha256.h"
#include "common/status.h"
#include "note/note.h"

namespace modelreg::note {

struct Checkpoint {
  std::string origin;
  std::uint64_t size = 0;
  Digest root{};
  std::optional<TimeNs> time;
};

// The checkpoint's text (the note body). InvalidArgument for an origin
// that is empty or not one printable UTF-8 line.
Result<std::string> CheckpointText(const Checkpoint& checkpoint);
// Parses a checkpoint's text; other extension lines are ignored.
Result<Checkpoint> ParseCheckpoint(std::string_view text);

Result<std::string> SignCheckpoint(const Checkpoint& checkpoint, const SignerKey& key);
// Open (note.h) and ParseCheckpoint.
Result<Checkpoint> OpenCheckpoint(std::string_view signed_note, const VerifierKey& key);

}  // namespace modelreg::note
