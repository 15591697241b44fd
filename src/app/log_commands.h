// The log-level commands of the modelreg CLI (`events`, `verify`, `demo`),
// as library functions so that tools/modelreg/main.cc stays thin and the
// behaviour is testable. Output goes to the given stream.
#pragma once

#include <optional>
#include <ostream>
#include <string>

#include "common/clock.h"
#include "common/status.h"

namespace modelreg::app {

// <root>/registry: where the RocksDB log lives inside a registry directory.
std::string LogDir(const std::string& root);

// Process exit code for a Status (0 for OK); the table is in docs/cli.md.
int ExitCode(const Status& status);

struct EventsQuery {
  std::optional<TimeNs> since;
  std::optional<TimeNs> until;
  bool json = false;  // one JSON object per line
};
// Prints the events of the log at `root`, oldest first.
Status RunEvents(const std::string& root, const EventsQuery& query, std::ostream& out);

// Verifies the hash chain; prints the report. Corruption when it breaks.
Status RunVerify(const std::string& root, bool json, std::ostream& out);

// Writes a realistic week of model-lifecycle events (registrations with
// full metadata, promotions, a validation, a failure, a rollback) into an
// empty registry at `root`, printing each as it is appended, then verifies
// the chain. Refuses a registry that already holds events.
Status RunDemo(const std::string& root, const std::string& actor, std::ostream& out);

}  // namespace modelreg::app
