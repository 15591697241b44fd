// modelreg-replay: jobs that rebuild from the log (disaster recovery,
// projection rebuilds). For now: `verify`, the full hash-chain walk.
#include <cstdlib>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "app/exit_codes.h"
#include "app/registry_commands.h"

int main(int argc, char** argv) {
  CLI::App app{"modelreg-replay: verify and rebuild a registry from its event log"};
  app.require_subcommand(1);
  app.fallthrough();
  const char* env = std::getenv("MODELREG_ROOT");
  modelreg::app::Globals g;
  g.root = env != nullptr && *env != '\0' ? env : "./data/models";
  app.add_option("--root", g.root, "Registry directory (env MODELREG_ROOT)")->capture_default_str();
  app.add_flag("--json", g.json, "Machine-readable output on stdout");
  auto* verify = app.add_subcommand(
      "verify", "Walk the hash chain from event 1 and compare the projections with the log");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  modelreg::Status st;
  if (*verify) st = modelreg::app::RunVerify(g, std::cout);
  if (!st.ok()) {
    std::cerr << "modelreg-replay: " << st.ToString() << '\n';
    return modelreg::app::ExitCode(st);
  }
  return 0;
}
