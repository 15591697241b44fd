#include "app/progress.h"

#include <unistd.h>

#include <cstdio>
#include <utility>

namespace modelreg::app {

Progress::Progress(std::ostream& out, Mode mode, std::string label, std::string unit,
                   std::string rate_unit)
    : out_(out),
      mode_(mode),
      label_(std::move(label)),
      unit_(std::move(unit)),
      rate_unit_(std::move(rate_unit)) {}

Progress::Mode Progress::ModeFor(bool terminal, bool json, bool lines_otherwise) {
  if (terminal && !json) return Mode::kTerminal;
  return lines_otherwise ? Mode::kLines : Mode::kOff;
}

bool Progress::StderrIsTerminal() { return isatty(STDERR_FILENO) != 0; }

void Progress::Update(std::uint64_t done, std::uint64_t total) {
  if (mode_ == Mode::kOff || done >= total) return;  // Finish prints the end
  const auto now = std::chrono::steady_clock::now();
  const auto every = mode_ == Mode::kTerminal ? std::chrono::milliseconds(100)
                                              : std::chrono::milliseconds(1000);
  // The first second stays quiet: a quick operation prints nothing.
  if (now - start_ < std::chrono::seconds(1) || now - last_ < every) return;
  last_ = now;
  Draw(done, total, /*final=*/false);
}

void Progress::Finish(std::uint64_t done, std::uint64_t total) {
  if (mode_ == Mode::kOff || (mode_ == Mode::kTerminal && !drawn_)) return;
  Draw(done, total, /*final=*/true);
}

void Progress::Draw(std::uint64_t done, std::uint64_t total, bool final) {
  drawn_ = true;
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = secs > 0 ? static_cast<double>(done) / secs : 0;
  const double eta = rate > 0 ? static_cast<double>(total - done) / rate : 0;
  const double frac = total == 0 ? 1.0 : static_cast<double>(done) / static_cast<double>(total);
  const auto d = static_cast<unsigned long long>(done);
  const auto t = static_cast<unsigned long long>(total);
  char line[256];
  if (mode_ == Mode::kTerminal) {
    std::string bar(30, ' ');
    for (int i = 0; i < static_cast<int>(frac * 30); ++i) bar[static_cast<std::size_t>(i)] = '#';
    std::snprintf(line, sizeof line, "\r%s [%s] %llu/%llu %s  %.0f/s  ETA %.1f s ",
                  label_.c_str(), bar.c_str(), d, t, unit_.c_str(), rate, eta);
    out_ << line << (final ? "\n" : "") << std::flush;
  } else {
    std::snprintf(line, sizeof line, "%s: %llu/%llu %s (%.0f%%), %.0f %s/s, ETA %.1f s\n",
                  label_.c_str(), d, t, unit_.c_str(), frac * 100, rate, rate_unit_.c_str(), eta);
    out_ << line << std::flush;
  }
}

}  // namespace modelreg::app
