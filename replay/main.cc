// modelreg-replay: the jobs that rebuild state from the log (projection
// rebuilds, disaster recovery). Parses arguments and calls src/app.
#include <unistd.h>

#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "app/cli_errors.h"
#include "app/cli_help.h"
#include "app/replay_commands.h"
#include "common/clock.h"

namespace {

int Run(int argc, char** argv) {
  const bool json_errors = modelreg::app::WantsJson(argc, argv);
  auto fail = [json_errors](const modelreg::Status& st) {
    std::cout.flush();
    return modelreg::app::ReportError("modelreg-replay", json_errors, st, "", std::cerr);
  };
  CLI::App app{"modelreg-replay: verify and rebuild a registry from its event log",
               "modelreg-replay"};
  app.formatter(modelreg::app::MakeHelpFormatter());
  app.require_subcommand(1);
  app.fallthrough();
  app.set_version_flag("--version", std::string("modelreg-replay ") + MODELREG_VERSION);
  const char* env = std::getenv("MODELREG_ROOT");
  modelreg::app::Globals g;
  g.root = env != nullptr && *env != '\0' ? env : "./data/models";
  int lock_wait_s = 10;
  app.add_option("--root", g.root, "Registry directory (env MODELREG_ROOT)")->capture_default_str();
  app.add_flag("--json", g.json, "Machine-readable output on stdout");
  app.add_option("--lock-wait", lock_wait_s,
                 "Seconds to wait while another process holds the registry for writing")
      ->check(CLI::Range(0, 3600))
      ->capture_default_str();
  auto* verify = app.add_subcommand(
      "verify", "Walk the hash chain from event 1 and compare the projections with the log "
                "(exit 5: chain broken, 10: projection differs)");
  auto* rebuild = app.add_subcommand(
      "rebuild", "Drop the projections and rebuild them from the log, verifying the chain");
  std::string file;
  auto* exp = app.add_subcommand("export", "Write the whole log to a portable file");
  exp->add_option("--to", file, "The export file")->required();
  auto* imp = app.add_subcommand(
      "import", "Create a new registry from an export file (checked completely first)");
  std::string at, to_dir;
  imp->add_option("file", file, "The export file")->required();
  imp->add_option("--to", to_dir, "The new registry directory (absent or empty)")->required();
  auto* mat = app.add_subcommand(
      "materialize", "Create a registry holding exactly the log up to a time (forensics)");
  mat->add_option("--at", at, "The instant (ISO-8601 with a zone, a date, now, -2h)")
      ->required()
      ->transform(modelreg::app::kIsoTime);
  mat->add_option("--to", to_dir, "The new registry directory (absent or empty)")->required();
  modelreg::app::AddExamples(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    return fail(modelreg::app::ParseErrorStatus(app, e));
  }
  g.lock_wait_ms = lock_wait_s * 1000;
  if (*verify) return modelreg::app::RunReplayVerify(g, std::cout, std::cerr);
  modelreg::Status st;
  if (*rebuild) st = modelreg::app::RunRebuild(g, std::cout, std::cerr, isatty(STDERR_FILENO) != 0);
  if (*exp) st = modelreg::app::RunExport(g, file, std::cout);
  if (*mat) {
    const auto t = modelreg::ParseTime(at);
    if (!t) {
      return fail(modelreg::Status::InvalidArgument("--at '" + at +
                                                    "' is not an ISO-8601 time with a zone"));
    }
    st = modelreg::app::RunMaterialize(g, *t, to_dir, std::cout);
  }
  if (*imp) st = modelreg::app::RunImport(g, file, to_dir, std::cout);
  if (!st.ok()) return fail(st);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Errors are Status values; an exception reaching here is a bug. Say so
  // in one line and exit 1 rather than abort.
  try {
    return Run(argc, argv);
  } catch (const std::exception& ex) {
    modelreg::app::ReportError("modelreg-replay", modelreg::app::WantsJson(argc, argv),
                modelreg::Status::Internal(std::string("internal error: ") + ex.what()), "",
                std::cerr);
  } catch (...) {
    modelreg::app::ReportError("modelreg-replay", modelreg::app::WantsJson(argc, argv),
                modelreg::Status::Internal("internal error"), "", std::cerr);
  }
  return 1;
}
