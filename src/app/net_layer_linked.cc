// EnsureNetLayer in programs that link the HTTP layer (app/net_layer.h).
#include "app/net_layer.h"

namespace modelreg::app {

Status EnsureNetLayer() { return Status::OK(); }

}  // namespace modelreg::app
