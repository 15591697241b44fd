// Drives the real modelreg and modelreg-replay binaries against a real
// registry directory.
#include <gtest/gtest.h>

#include <rocksdb/db.h>

#include <nlohmann/json.hpp>

#include "common/bytes.h"
#include "support/run.h"
#include "support/temp_dir.h"

namespace modelreg {
namespace {

using testing::RunCmd;

class CliLogTest : public ::testing::Test {
 protected:
  std::string Bin() const { return testing::EnvOr("MODELREG_BIN", "modelreg"); }
  std::string Replay() const { return testing::EnvOr("MODELREG_REPLAY_BIN", "modelreg-replay"); }
  std::string Cmd(const std::string& args) const {
    return "MODELREG_ACTOR=e2e " + Bin() + " --root " + dir_.sub("reg") + " " + args;
  }
  testing::TempDir dir_;
};

std::vector<std::string> SplitLines(const std::string& s) {
  std::vector<std::string> lines;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST_F(CliLogTest, DemoThenEventsAndVerify) {
  auto demo = RunCmd(Cmd("demo"));
  ASSERT_EQ(demo.rc, 0) << demo.err;
  EXPECT_NE(demo.out.find("rolled back risk_model v1.2.0 -> v1.1.0"), std::string::npos);
  EXPECT_NE(demo.out.find("duplicate, nothing written"), std::string::npos);
  EXPECT_NE(demo.out.find("conflict: expected the log head at 3"), std::string::npos);
  EXPECT_NE(demo.out.find("verify: chain OK, 13 events"), std::string::npos) << demo.out;

  auto events = RunCmd(Cmd("events --json"));
  ASSERT_EQ(events.rc, 0) << events.err;
  auto lines = SplitLines(events.out);
  ASSERT_EQ(lines.size(), 13u);
  std::string prev_time;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    auto j = nlohmann::json::parse(lines[i]);
    EXPECT_EQ(j["seq"], i + 1);
    EXPECT_EQ(j["actor"], "e2e");
    const std::string t = j["recorded_at"];
    EXPECT_GT(t, prev_time);
    prev_time = t;
  }
  auto first = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(first["type"], "ModelRegistered");
  EXPECT_EQ(first["payload"]["model_type"], "risk_model");
  EXPECT_EQ(first["prev_hash"], std::string(64, '0'));

  // Time filter: nothing before 2000, everything up to 2100.
  auto none = RunCmd(Cmd("events --until 2000-01-01"));
  EXPECT_EQ(none.rc, 0);
  EXPECT_TRUE(none.out.empty());
  auto all = RunCmd(Cmd("events --since 2000-01-01T00:00:00Z --until 2100-01-01T00:00:00+02:00"));
  EXPECT_EQ(SplitLines(all.out).size(), 13u);

  auto verify = RunCmd(Cmd("verify"));
  EXPECT_EQ(verify.rc, 0) << verify.err;
  EXPECT_NE(verify.out.find("chain OK: 13 events"), std::string::npos);
  auto vjson = RunCmd(Cmd("--json verify"));
  auto vj = nlohmann::json::parse(vjson.out);
  EXPECT_EQ(vj["ok"], true);
  EXPECT_EQ(vj["head_seq"], 13);
  auto replay = RunCmd(Replay() + " --root " + dir_.sub("reg") + " verify");
  EXPECT_EQ(replay.rc, 0) << replay.err;
}

TEST_F(CliLogTest, DemoRefusesANonEmptyRegistry) {
  ASSERT_EQ(RunCmd(Cmd("demo")).rc, 0);
  auto again = RunCmd(Cmd("demo"));
  EXPECT_EQ(again.rc, 4);
  EXPECT_NE(again.err.find("already holds 13 events"), std::string::npos) << again.err;
  EXPECT_EQ(SplitLines(RunCmd(Cmd("events")).out).size(), 13u);  // nothing appended
}

TEST_F(CliLogTest, TamperedLogFailsVerifyWithItsSequence) {
  ASSERT_EQ(RunCmd(Cmd("demo")).rc, 0);
  {
    const std::string dir = dir_.sub("reg") + "/registry";
    std::vector<std::string> names;
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::Options(), dir, &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> descs;
    for (const auto& n : names) descs.emplace_back(n, rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir, descs, &handles, &db).ok());
    rocksdb::ColumnFamilyHandle* events = nullptr;
    for (auto* h : handles) {
      if (h->GetName() == "events") events = h;
    }
    std::string v;
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), events, Be64(9), &v).ok());
    const auto pos = v.find("weekly retrain");
    ASSERT_NE(pos, std::string::npos);
    v[pos] = 'W';  // a plausible edit of the recorded reason
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), events, Be64(9), v).ok());
    for (auto* h : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
    delete db;
  }
  auto verify = RunCmd(Cmd("verify"));
  EXPECT_EQ(verify.rc, 5);
  EXPECT_NE(verify.err.find("hash chain broken at event 9"), std::string::npos) << verify.err;
  auto replay = RunCmd(Replay() + " --root " + dir_.sub("reg") + " --json verify");
  EXPECT_EQ(replay.rc, 5);
  EXPECT_EQ(nlohmann::json::parse(replay.out)["first_bad_seq"], 9);
}

TEST_F(CliLogTest, BadInputGetsOneClearLine) {
  auto missing = RunCmd(Cmd("events"));
  EXPECT_EQ(missing.rc, 3);
  EXPECT_NE(missing.err.find("does not exist"), std::string::npos) << missing.err;

  // A directory that is not a registry.
  ASSERT_EQ(RunCmd("mkdir -p " + dir_.sub("reg")).rc, 0);
  auto not_registry = RunCmd(Cmd("verify"));
  EXPECT_EQ(not_registry.rc, 3);
  EXPECT_NE(not_registry.err.find("is not a modelreg registry"), std::string::npos)
      << not_registry.err;

  auto bad_time = RunCmd(Cmd("events --since yesterday"));
  EXPECT_EQ(bad_time.rc, 2);
  EXPECT_NE(bad_time.err.find("not an ISO-8601 time"), std::string::npos) << bad_time.err;

  auto unknown = RunCmd(Cmd("frobnicate"));
  EXPECT_EQ(unknown.rc, 2);
  auto unknown_flag = RunCmd(Cmd("events --bogus"));
  EXPECT_EQ(unknown_flag.rc, 2);
  EXPECT_FALSE(unknown_flag.err.empty());
}

}  // namespace
}  // namespace modelreg
