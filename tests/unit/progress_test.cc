// The shared progress display (src/app/progress.h): quiet for a quick
// operation, drawn once an operation has run for a second, nothing at all
// when off.
#include <gtest/gtest.h>

#include <chrono>
#include <sstream>
#include <string>

#include "app/progress.h"

namespace modelreg::app {
namespace {

using Mode = Progress::Mode;

TEST(Progress, ModeFollowsTheTerminalAndJson) {
  EXPECT_EQ(Progress::ModeFor(true, false), Mode::kTerminal);
  EXPECT_EQ(Progress::ModeFor(true, true), Mode::kOff);
  EXPECT_EQ(Progress::ModeFor(false, false), Mode::kOff);
  EXPECT_EQ(Progress::ModeFor(false, false, true), Mode::kLines);
}

TEST(Progress, AQuickOperationPrintsNothingOnATerminal) {
  std::ostringstream out;
  Progress bar(out, Mode::kTerminal, "export", "events", "events");
  for (int i = 0; i < 100; ++i) bar.Update(static_cast<std::uint64_t>(i), 100);
  bar.Finish(100, 100);
  EXPECT_EQ(out.str(), "");
}

TEST(Progress, OffPrintsNothingEver) {
  std::ostringstream out;
  Progress bar(out, Mode::kOff, "verify", "events", "events");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(1300);
  while (std::chrono::steady_clock::now() < deadline) bar.Update(1, 100);
  bar.Finish(100, 100);
  EXPECT_EQ(out.str(), "");
}

// Updated until something is drawn (after the first second), then
// finished: the line is redrawn in place and ends with a newline.
TEST(Progress, ALongOperationIsDrawnInPlaceThenEnded) {
  std::ostringstream out;
  Progress bar(out, Mode::kTerminal, "import", "events appended", "events");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::uint64_t done = 0;
  while (out.str().empty() && std::chrono::steady_clock::now() < deadline) bar.Update(++done, 1u << 30);
  ASSERT_FALSE(out.str().empty()) << "nothing drawn in 20 s";
  EXPECT_EQ(out.str().front(), '\r');
  EXPECT_NE(out.str().find("import ["), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("events appended"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("ETA"), std::string::npos) << out.str();
  bar.Finish(1u << 30, 1u << 30);
  EXPECT_EQ(out.str().back(), '\n');
  EXPECT_NE(out.str().find("1073741824/1073741824"), std::string::npos) << out.str();
}

TEST(Progress, LinesModeEndsWithTheTotalEvenWhenQuick) {
  std::ostringstream out;
  Progress bar(out, Mode::kLines, "rebuild", "steps (verify, fold)", "steps");
  bar.Update(5, 12);
  bar.Finish(12, 12);
  EXPECT_EQ(out.str().rfind("rebuild: 12/12 steps (verify, fold) (100%), ", 0), 0u) << out.str();
  EXPECT_EQ(out.str().back(), '\n');
}

}  // namespace
}  // namespace modelreg::app
