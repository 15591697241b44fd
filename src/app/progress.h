// Progress of a long operation (rebuild, import, export, verify) on stderr:
// count, rate and ETA. One implementation for every command.
//
//   kTerminal  redrawn in place (at most 10 times a second), then a final
//              line; used when stderr is a terminal and --json is off
//   kLines     one line a second (logs, CI); only `rebuild` asks for it
//   kOff       nothing (stderr not a terminal, or --json)
//
// Not thread-safe: one operation, one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>

namespace modelreg::app {

class Progress {
 public:
  enum class Mode { kOff, kTerminal, kLines };

  // `label` names the operation ("import"); `unit` what is counted
  // ("events"), `rate_unit` the same in the rate ("events").
  Progress(std::ostream& out, Mode mode, std::string label, std::string unit,
           std::string rate_unit);

  // The mode for a command: kTerminal when `terminal` (stderr is a tty) and
  // not `json`; otherwise kLines if `lines_otherwise`, else kOff.
  static Mode ModeFor(bool terminal, bool json, bool lines_otherwise = false);
  // Whether stderr is a terminal.
  static bool StderrIsTerminal();

  // `done` of `total`; drawn only when enough time has passed.
  void Update(std::uint64_t done, std::uint64_t total);
  // The last line (on a terminal: ends the redrawn line). Only if something
  // was drawn before, or in kLines mode.
  void Finish(std::uint64_t done, std::uint64_t total);

 private:
  void Draw(std::uint64_t done, std::uint64_t total, bool final);

  std::ostream& out_;
  Mode mode_;
  std::string label_, unit_, rate_unit_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace modelreg::app
