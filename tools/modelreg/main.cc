// modelreg: the command-line interface. Parses arguments and calls the
// library; all behaviour lives in src/app.
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>
#include <pwd.h>
#include <unistd.h>

#include "app/log_commands.h"
#include "common/clock.h"

namespace {

std::string DefaultRoot() {
  const char* env = std::getenv("MODELREG_ROOT");
  return env != nullptr && *env != '\0' ? env : "./data/models";
}

std::string DefaultActor() {
  for (const char* var : {"MODELREG_ACTOR", "USER", "LOGNAME"}) {
    const char* v = std::getenv(var);
    if (v != nullptr && *v != '\0') return v;
  }
  if (const passwd* pw = getpwuid(geteuid()); pw != nullptr && pw->pw_name != nullptr) {
    return pw->pw_name;
  }
  return "uid:" + std::to_string(geteuid());
}

// CLI11 validator: an ISO-8601 time or date.
const CLI::Validator kIsoTime(
    [](std::string& s) -> std::string {
      return modelreg::ParseTime(s) ? "" : "'" + s + "' is not an ISO-8601 time "
                                           "(e.g. 2025-01-15T09:30:00Z or 2025-01-15)";
    },
    "TIME");

int Fail(const modelreg::Status& st) {
  std::cerr << "modelreg: " << st.ToString() << '\n';
  return modelreg::app::ExitCode(st);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"modelreg: an event-sourced model registry"};
  app.set_version_flag("--version", std::string("modelreg ") + MODELREG_VERSION);
  app.require_subcommand(1);
  app.fallthrough();  // global options may follow the subcommand
  std::string root = DefaultRoot();
  bool json = false;
  app.add_option("--root", root, "Registry directory (env MODELREG_ROOT)")
      ->capture_default_str();
  app.add_flag("--json", json, "Machine-readable output on stdout");

  std::string since, until;
  auto* events = app.add_subcommand("events", "Print the event log, oldest first");
  events->add_option("--since", since, "Only events recorded at or after TIME")->check(kIsoTime);
  events->add_option("--until", until, "Only events recorded at or before TIME")->check(kIsoTime);

  auto* verify = app.add_subcommand("verify", "Verify the hash chain of the event log");

  std::string actor = DefaultActor();
  auto* demo = app.add_subcommand(
      "demo", "Write a realistic week of lifecycle events into an empty registry and verify it");
  demo->add_option("--actor", actor, "Who the demo events are recorded as (env MODELREG_ACTOR)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }

  modelreg::Status st;
  if (*events) {
    modelreg::app::EventsQuery q;
    if (!since.empty()) q.since = modelreg::ParseTime(since);
    if (!until.empty()) q.until = modelreg::ParseTime(until);
    q.json = json;
    st = modelreg::app::RunEvents(root, q, std::cout);
  } else if (*verify) {
    st = modelreg::app::RunVerify(root, json, std::cout);
  } else if (*demo) {
    st = modelreg::app::RunDemo(root, actor, std::cout);
  }
  return st.ok() ? 0 : Fail(st);
}
