#include "app/net_layer.h"

#include <filesystem>

#include "client/server_file.h"
#include "registry/replication.h"

namespace modelreg::app {

namespace {
char** saved_argv = nullptr;
}  // namespace

void RememberArguments(char** argv) { saved_argv = argv; }

char** RememberedArguments() { return saved_argv; }

bool MayNeedNetLayer(const Globals& g) {
  // A replicated registry (replication.json): its writes ship through NATS,
  // which only modelreg-net links.
  std::error_code ec;
  return !g.url.empty() || client::ReadServerFile(g.root).has_value() ||
         std::filesystem::exists(std::filesystem::path(g.root) / registry::kReplicationFile, ec);
}

}  // namespace modelreg::app
