// Schema evolution guard: a log written by schema version 1 (committed in
// tests/fixtures) must always import, verify and fold to the same state
// digest. If a schema change breaks this, it broke old logs.
//
// The digest's definition changed once, on purpose: projection row format 2
// (issue 18) defines it over a canonical binary encoding of the records
// instead of the bytes of their JSON rows, so that no library upgrade can
// change it. The logs fold to the same states as before; under format 1
// their digests were 17b34c93...c16c9 (log-v1) and 75bdeeb9...4df68
// (log-policy). Both are in docs/pointintime.md, "State digest".
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/sha256.h"
#include "log/event_store.h"
#include "portable/export_format.h"
#include "projection/state.h"
#include "registry/registry.h"
#include "support/temp_dir.h"

namespace modelreg {
namespace {

std::string Fixture(const std::string& name) {
  const char* dir = std::getenv("MODELREG_FIXTURES");
  return std::string(dir != nullptr ? dir : "tests/fixtures") + "/" + name;
}

std::string ReadTrimmed(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

TEST(SchemaFixture, VersionOneLogStillReplaysToTheSameDigest) {
  const std::string log = Fixture("log-v1.jsonl");
  const std::string expected = ReadTrimmed(Fixture("log-v1.digest"));
  ASSERT_EQ(expected.size(), 64u) << "missing fixture " << Fixture("log-v1.digest");

  auto checked = portable::CheckExport(log);
  ASSERT_TRUE(checked) << checked.error().ToString();
  EXPECT_EQ(checked->events, 13u);

  testing::TempDir dir;
  std::filesystem::create_directories(dir.sub("reg/registry"));
  {
    auto store = EventStore::Open(dir.sub("reg/registry"));
    ASSERT_TRUE(store) << store.error().ToString();
    ASSERT_TRUE(portable::ImportInto(log, **store).ok());
    // A plain fold of the log gives the recorded digest.
    projection::State state;
    ASSERT_TRUE((*store)
                    ->Scan(1, UINT64_MAX,
                           [&](Seq, const EventBuffer& e) {
                             EXPECT_TRUE(projection::Apply(state, e).ok());
                             return true;
                           })
                    .ok());
    EXPECT_EQ(ToHex(projection::StateDigest(state)), expected);
    EXPECT_EQ((*store)->head().hash, checked->head_hash);
  }
  registry::RegistryOptions o;
  o.root = dir.sub("reg");
  auto reg = registry::Registry::Open(o);
  ASSERT_TRUE(reg) << reg.error().ToString();
  auto v = (*reg)->Verify();
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->chain.ok) << v->chain.problem;
  EXPECT_TRUE(v->projection_ok);
  EXPECT_EQ(ToHex(v->state_digest), expected);
}

// The same guard for a log with PolicyChanged events (payload type 10) and
// promotions that record policy_sha256: the adopted policy.toml (event 1),
// a promotion under it, a stricter policy (event 4), a promotion refused
// by it and one overridden. It must replay to its recorded digest, and the
// fold must give back both policies and the one in force.
TEST(SchemaFixture, PolicyLogStillReplaysToTheSameDigest) {
  const std::string log = Fixture("log-policy.jsonl");
  const std::string expected = ReadTrimmed(Fixture("log-policy.digest"));
  ASSERT_EQ(expected.size(), 64u) << "missing fixture " << Fixture("log-policy.digest");
  auto checked = portable::CheckExport(log);
  ASSERT_TRUE(checked) << checked.error().ToString();
  EXPECT_EQ(checked->events, 7u);

  testing::TempDir dir;
  std::filesystem::create_directories(dir.sub("reg/registry"));
  {
    auto store = EventStore::Open(dir.sub("reg/registry"));
    ASSERT_TRUE(store) << store.error().ToString();
    ASSERT_TRUE(portable::ImportInto(log, **store).ok());
    projection::State state;
    ASSERT_TRUE((*store)
                    ->Scan(1, UINT64_MAX,
                           [&](Seq, const EventBuffer& e) {
                             EXPECT_TRUE(projection::Apply(state, e).ok());
                             return true;
                           })
                    .ok());
    EXPECT_EQ(ToHex(projection::StateDigest(state)), expected);
    ASSERT_EQ(state.policies.size(), 2u);
    EXPECT_EQ(state.policies[0].seq, 1u);
    EXPECT_EQ(state.policies[0].actor, "modelreg (adopted policy.toml)");
    EXPECT_EQ(state.policies[1].seq, 4u);
    EXPECT_EQ(state.policies[1].reason, "risk models need sharpe > 1.5");
    EXPECT_EQ(state.policies[1].sha256, ToHex(Sha256::Of(state.policies[1].text)));
    EXPECT_NE(state.policies[1].text.find("sharpe = \"> 1.5\""), std::string::npos);
    EXPECT_EQ(state.Policy(), &state.policies[1]);
    EXPECT_EQ(state.PolicyAt(3), &state.policies[0]);
  }
  registry::RegistryOptions o;
  o.root = dir.sub("reg");
  auto reg = registry::Registry::Open(o);
  ASSERT_TRUE(reg) << reg.error().ToString();
  auto v = (*reg)->Verify();
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->chain.ok) << v->chain.problem;
  EXPECT_TRUE(v->projection_ok);
  EXPECT_EQ(ToHex(v->state_digest), expected);
}

}  // namespace
}  // namespace modelreg
