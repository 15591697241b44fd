// `modelreg consumers TYPE` (intended production versus what each consuming
// service runs) and `modelreg watch TYPE` (the ProductionModelLoader from
// the command line). docs/loader.md.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "app/registry_commands.h"

namespace modelreg::app {

Status RunConsumers(const Globals& g, const std::string& type, std::ostream& out);

struct WatchOptions {
  std::string type;
  std::string consumer_id;             // default: watch@<hostname>
  std::vector<std::string> datasets;   // NAME=VERSION the "service" has; empty = no check
  std::string cache_dir;               // remote downloads (default under $TMPDIR)
  int exit_after_seconds = 0;          // 0 = until Ctrl-C / SIGTERM
};
// Follows TYPE's production version locally (or through --url) and prints
// every swap and every failure.
Status RunWatch(const Globals& g, const WatchOptions& o, std::ostream& out);

}  // namespace modelreg::app
