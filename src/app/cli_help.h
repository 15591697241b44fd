// What `--help`, `completion bash` and `man` print, all generated from the
// one CLI11 app the binary parses with, so they cannot drift apart.
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>

namespace modelreg::app {

// A help formatter for subcommands: after the subcommand's own options it
// lists the options of its parents (--root, --json, --reason...), which
// apply to it too, then the footer (the examples). Set it on the root app
// before adding subcommands (they inherit it).
std::shared_ptr<CLI::Formatter> MakeHelpFormatter();

// Sets every subcommand's footer of `root` (named modelreg or
// modelreg-replay): one or two real examples, before any footer it had
// (and for `register`, the model-name grammar). Call after all are added.
void AddExamples(CLI::App& root);

// A bash completion script for `root` (subcommands and their options,
// including the parents' options): `source <(modelreg completion bash)`.
std::string BashCompletion(const CLI::App& root);

// A man page (roff, section 1) for `root`: every command, its options,
// the global options and the examples. `modelreg man | man -l -`.
std::string ManPage(const CLI::App& root, const std::string& version);

// CLI11 transform for every time option: an ISO-8601 time or date, `now`
// or `-2h` (ParseInstant). Relative forms are resolved once, against the
// clock at parsing, and replaced by the exact instant they name.
extern const CLI::Validator kIsoTime;

}  // namespace modelreg::app
