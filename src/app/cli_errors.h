// How the command-line tools report an error: one line
// "<prog>: <code>: <message>" on stderr, or with --json one JSON object
// {"error":{"code","message","exit_code"[,"hint"]}} on stderr; stdout only
// ever carries results. A hint (what to do next) follows as further text
// lines, or as the "hint" member. Warnings and notes that do not stop a
// command are lines "<prog>: warning: <message>", or with --json one JSON
// object per line {"warning":{"message"}} / {"note":{"message"}}.
#pragma once

#include <functional>
#include <iosfwd>
#include <string>

#include <CLI/CLI.hpp>

#include "common/status.h"

namespace modelreg::app {

// Whether --json appears among the arguments (before a `--`): known even
// when the arguments do not parse.
bool WantsJson(int argc, char** argv);

// Writes `status` (not OK) with an optional hint; returns its exit code.
int ReportError(const std::string& prog, bool json, const Status& status, const std::string& hint,
                std::ostream& err);

// Writes a warning or note (`kind`: "warning" | "note") that does not stop
// the command.
void ReportNotice(const std::string& prog, bool json, const std::string& kind,
                  const std::string& message, std::ostream& err);
// What the registry calls with its warnings (RegistryOptions::on_warning):
// ReportNotice("modelreg", json, "warning", ..., std::cerr).
std::function<void(const std::string&)> WarningSink(bool json);

// For a CLI11 parse error (unknown option, missing argument, bad value):
// invalid_argument, pointing at the --help of the command being parsed.
Status ParseErrorStatus(const CLI::App& root, const CLI::ParseError& e);

// What to tell a user after `command` failed with `status`, or "": for a
// promotion refused by the gates, how to see and change the policy and
// that --override-gates exists.
std::string ErrorHint(const std::string& command, const Status& status);

}  // namespace modelreg::app
