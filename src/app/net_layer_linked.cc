// EnsureNetLayer in programs that link the HTTP layer (app/net_layer.h).
#include "app/net_layer.h"
#include "app/replication_commands.h"

namespace modelreg::app {

// Nothing to run instead of this process; the replication layer, linked
// here too, is installed for the writable opens that follow.
Status EnsureNetLayer() {
  InstallReplication();
  return Status::OK();
}

}  // namespace modelreg::app
