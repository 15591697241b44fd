#include "app/net_layer.h"

#include "client/server_file.h"

namespace modelreg::app {

namespace {
char** saved_argv = nullptr;
}  // namespace

void RememberArguments(char** argv) { saved_argv = argv; }

char** RememberedArguments() { return saved_argv; }

bool MayNeedNetLayer(const Globals& g) {
  return !g.url.empty() || client::ReadServerFile(g.root).has_value();
}

}  // namespace modelreg::app
