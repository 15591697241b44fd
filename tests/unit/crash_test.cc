// Crash safety: a child appends in a loop and is killed with SIGKILL at
// random moments; every acknowledged event must survive, nothing partial
// may exist and the chain must verify. Also: a second process is refused.
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>

#include "log/event_store.h"
#include "support/child.h"
#include "support/raw_db.h"
#include "support/temp_dir.h"

namespace modelreg {
namespace {

using testing::NoCreate;
using testing::ReadOnly;
[[maybe_unused]] constexpr auto WithFamilies = testing::WithFamilies;

std::string AppendLoop() {
  const char* p = std::getenv("MODELREG_APPEND_LOOP");
  return p != nullptr ? p : "";
}

TEST(CrashSafety, AcknowledgedEventsSurviveSigkill) {
  ASSERT_FALSE(AppendLoop().empty()) << "MODELREG_APPEND_LOOP not set";
  testing::TempDir dir;
  const std::string log = dir.sub("log");
  std::mt19937 rng(20261128);
  Seq max_acked = 0;
  std::vector<Seq> acked_all;
  constexpr int kRounds = 25;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    {
      testing::Child child({AppendLoop(), log});
      // First the log must exist (a slow start, e.g. under a sanitizer on a
      // busy machine, must not turn into "no log"): wait for the first
      // acknowledged event, then kill at a random moment after it.
      for (int i = 0; i < 200 && child.Lines().empty(); ++i) child.ReadFor(50);
      ASSERT_FALSE(child.Lines().empty()) << "the append loop acknowledged nothing in 10 s";
      child.ReadFor(static_cast<int>(rng() % 200));
      child.Kill();
      child.ReadToEof();
      for (const std::string& line : child.Lines()) {
        const Seq s = std::stoull(line);
        EXPECT_GT(s, max_acked);
        max_acked = s;
        acked_all.push_back(s);
      }
    }
    auto store = EventStore::Open(log, NoCreate());
    ASSERT_TRUE(store) << store.error().ToString();
    const Head head = (*store)->head();
    EXPECT_GE(head.seq, max_acked);  // nothing acknowledged is lost
    for (Seq s : acked_all) {
      auto e = (*store)->Get(s);
      ASSERT_TRUE(e) << "acknowledged event " << s << " lost: " << e.error().ToString();
    }
    auto v = (*store)->Verify();
    ASSERT_TRUE(v);
    EXPECT_TRUE(v->ok) << v->problem;   // nothing partial: chain and head agree
    EXPECT_EQ(v->events, head.seq);
    max_acked = head.seq;  // unacknowledged but durable events count from here
  }
  EXPECT_GT(acked_all.size(), static_cast<std::size_t>(kRounds));  // the loop really ran
}

TEST(ProcessLock, SecondProcessGetsAClearError) {
  ASSERT_FALSE(AppendLoop().empty());
  testing::TempDir dir;
  const std::string log = dir.sub("log");
  testing::Child holder({AppendLoop(), log, "hold"});
  for (int i = 0; i < 50 && holder.Lines().empty(); ++i) holder.ReadFor(100);
  ASSERT_EQ(holder.Lines(), std::vector<std::string>{"open"});
  auto second = EventStore::Open(log);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code(), Code::kBusy);
  EXPECT_NE(second.error().message().find("locked by another process"), std::string::npos)
      << second.error().message();
  // Readers are still welcome.
  auto reader = EventStore::Open(log, ReadOnly());
  EXPECT_TRUE(reader) << reader.error().ToString();
  holder.Kill();
  auto after = EventStore::Open(log);
  EXPECT_TRUE(after) << after.error().ToString();
}

}  // namespace
}  // namespace modelreg
