// End-to-end (issue 16), the real modelreg binary on real registries:
// any model name of the grammar, and rollback and failure that mean what
// they say (the rollback rule, --to, --dry-run, --fail needs a reason, a
// missing artifact refused without failing the version).
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "support/run.h"
#include "support/temp_dir.h"

namespace modelreg {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::RunCmd;
using testing::Lines;
using testing::Has;
using testing::RunResult;

class NamesCli : public ::testing::Test {
 protected:
  std::string Bin() const { return testing::EnvOr("MODELREG_BIN", "modelreg"); }
  // No 24-hour paper-trading gate (these tests run in seconds); IC and
  // Sharpe gates stay on.
  void SetUp() override { WritePolicy("[default]\npaper_trading_hours = \"off\"\n"); }
  void WritePolicy(const std::string& toml) const {
    fs::create_directories(root_);
    std::ofstream(root_ + "/policy.toml") << toml;
  }
  RunResult Mr(const std::string& args, const std::string& actor = "alice") const {
    return RunCmd("MODELREG_ACTOR=" + actor + " " + Bin() + " --root " + root_ + " " + args);
  }
  RunResult Ok(const std::string& args, const std::string& actor = "alice") const {
    RunResult r = Mr(args, actor);
    EXPECT_EQ(r.rc, 0) << args << "\n" << r.err;
    return r;
  }
  json Json(const std::string& args) const {
    RunResult r = Ok("--json " + args);
    json j = json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << args << ": " << r.out;
    return j;
  }
  std::string File(const std::string& name, const std::string& content) const {
    const std::string path = dir_.sub(name);
    std::ofstream(path) << content;
    return path;
  }
  std::size_t EventCount() const {
    RunResult r = Mr("events");
    return r.rc == 0 ? Lines(r.out).size() : 0;
  }
  void Register(const std::string& type, const std::string& version, double sharpe = 1.2,
                double ic = 0.05) const {
    const std::string art = File(type + version + ".pkl", "weights " + type + version);
    Ok("register " + type + " " + art + " --version " + version + " --metric sharpe=" +
       std::to_string(sharpe) + " --metric ic=" + std::to_string(ic));
  }
  std::string ArtifactFile(const std::string& type, const std::string& version) const {
    return root_ + "/artifacts/" + type + "/" + version + "/" + type + version + ".pkl";
  }
  std::vector<std::string> ArtifactTree() const {
    std::vector<std::string> out;
    std::error_code ec;
    if (!fs::exists(root_ + "/artifacts")) return out;
    for (const auto& e : fs::recursive_directory_iterator(root_ + "/artifacts", ec)) {
      out.push_back(e.path().string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  std::string Production(const std::string& type) const {
    json j = json::parse(Mr("--json current " + type).out, nullptr, false);
    return j.is_object() && j["production"].is_string() ? j["production"].get<std::string>() : "";
  }
  std::string StatusOf(const std::string& type, const std::string& version) const {
    return Json("show " + type + " " + version)["status"];
  }
  static std::string Now() {
    using namespace std::chrono;
    const auto ns = duration_cast<nanoseconds>(system_clock::now().time_since_epoch()).count();
    const std::time_t secs = static_cast<std::time_t>(ns / 1'000'000'000);
    char buf[64];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", std::gmtime(&secs));
    char frac[16];
    std::snprintf(frac, sizeof frac, ".%09lldZ", static_cast<long long>(ns % 1'000'000'000));
    return std::string(buf) + frac;
  }
  static void Tick() { std::this_thread::sleep_for(std::chrono::milliseconds(20)); }
  static std::vector<std::string> Types(json audit) {
    std::vector<std::string> out;
    for (json& m : audit["models"]) out.push_back(m["model_type"]);
    return out;
  }

  testing::TempDir dir_;
  std::string root_ = dir_.sub("reg");
};

const std::vector<std::string> kDefaults = {"risk_model", "alpha_weights", "factor_definitions",
                                            "feature_transforms"};

// --- any model name ---

TEST_F(NamesCli, TwoAlphaStrategiesLiveAtOnce) {
  Register("alpha_momentum", "v1.0.0");
  Register("alpha_value", "v1.0.0");
  Register("alpha_value", "v1.1.0");
  Ok("promote alpha_momentum v1.0.0 --reason 'momentum live'");
  Ok("promote alpha_value v1.0.0");
  Ok("promote alpha_value v1.1.0 --expect-current v1.0.0");
  EXPECT_EQ(Production("alpha_momentum"), "v1.0.0");
  EXPECT_EQ(Production("alpha_value"), "v1.1.0");
  EXPECT_TRUE(fs::exists(ArtifactFile("alpha_value", "v1.1.0")));

  // audit lists the four defaults (even without versions), then every
  // registered name, sorted.
  json audit = Json("audit --at " + Now());
  std::vector<std::string> want = kDefaults;
  want.push_back("alpha_momentum");
  want.push_back("alpha_value");
  EXPECT_EQ(Types(audit), want) << audit.dump();
  EXPECT_EQ(audit["models"][4]["production"], "v1.0.0");
  EXPECT_EQ(audit["models"][5]["production"], "v1.1.0");
  EXPECT_TRUE(audit["models"][0]["production"].is_null());
  const std::string text = Ok("audit --at " + Now()).out;
  EXPECT_TRUE(Has(text, "  alpha_momentum: v1.0.0")) << text;
  EXPECT_TRUE(Has(text, "  alpha_value: v1.1.0")) << text;
  EXPECT_TRUE(Has(text, "  feature_transforms: none")) << text;

  // list without a type lists every name; with one, that name.
  json all = Json("list");
  std::set<std::string> names;
  for (json& v : all["versions"]) names.insert(v["model_type"]);
  EXPECT_EQ(names, (std::set<std::string>{"alpha_momentum", "alpha_value"}));
  EXPECT_EQ(all["versions"].size(), 3u);
  EXPECT_EQ(Json("list alpha_value --status production")["versions"].size(), 1u);
  EXPECT_TRUE(Has(Ok("list").out, "alpha_momentum")) << Ok("list").out;
  EXPECT_EQ(Json("history alpha_value")["history"].size(), 2u);
  EXPECT_EQ(Lines(Ok("events --type alpha_momentum").out).size(), 2u);
  json diff = Json("diff --from 2000-01-01 --to " + Now());
  EXPECT_EQ(diff["production"]["alpha_value"]["to"], "v1.1.0") << diff.dump();
  Ok("verify");
}

TEST_F(NamesCli, BadNamesAreRefusedWithTheGrammarAndNothingWritten) {
  Register("risk_model", "v1.0.0");
  const std::string art = File("model.pkl", "weights");
  const std::size_t n = EventCount();
  const auto tree = ArtifactTree();
  for (const std::string& bad : {std::string("Alpha"), std::string("a/b"), std::string(".."),
                                 std::string("-x"), std::string(65, 'a'), std::string(""),
                                 std::string("risk model"), std::string("default"),
                                 std::string("alpha.v2"), std::string("../../etc")}) {
    SCOPED_TRACE("'" + bad + "'");
    const std::string q = "'" + bad + "'";
    // `--` ends the options: '-x' is then a name, not an unknown flag.
    RunResult r = Mr("register --version v1.0.0 -- " + q + " " + art);
    EXPECT_EQ(r.rc, 2) << r.err;
    EXPECT_TRUE(Has(r.err, "lowercase letters a-z, digits 0-9, '_' and '-', starting with a letter"))
        << r.err;
    EXPECT_EQ(Lines(r.err).size(), 1u) << r.err;
    for (const std::string& cmd :
         {"promote -- " + q + " v1.0.0", "rollback -- " + q, "list -- " + q, "current -- " + q,
          "show -- " + q + " v1.0.0", "history -- " + q, "audit --at 2030-01-01 -- " + q,
          "validate -- " + q + " v1.0.0", "events --type=" + q}) {
      // An empty optional name is no name: list, audit and events of all.
      if (bad.empty() && (cmd.rfind("list", 0) == 0 || cmd.rfind("audit", 0) == 0 ||
                          cmd.rfind("events", 0) == 0)) {
        continue;
      }
      RunResult other = Mr(cmd);
      EXPECT_EQ(other.rc, 2) << cmd << ": " << other.err;
    }
  }
  EXPECT_TRUE(Has(Mr("register " + std::string(65, 'a') + " " + art + " --version v1.0.0").err,
                  "65 characters"));
  // Without `--`, CLI11 takes '-x' for an unknown option: still exit 2.
  EXPECT_EQ(Mr("register -x " + art + " --version v1.0.0").rc, 2);
  EXPECT_EQ(EventCount(), n);
  EXPECT_EQ(ArtifactTree(), tree);
  // The longest name passes.
  Register(std::string(64, 'a'), "v1.0.0");
  EXPECT_EQ(EventCount(), n + 1);
}

TEST_F(NamesCli, PolicySectionForACustomNameApplies) {
  WritePolicy(
      "[default]\npaper_trading_hours = \"off\"\n"
      "[alpha_momentum]\nsharpe = \"> 1.5\"\n"
      "[credit-risk]\nic = \"off\"\nsharpe = \"off\"\n");
  Register("alpha_momentum", "v1.0.0", 1.2, 0.05);
  Register("alpha_value", "v1.0.0", 1.2, 0.05);
  Register("credit-risk", "v1.0.0", 0.1, 0.001);
  const std::size_t n = EventCount();
  RunResult strict = Mr("promote alpha_momentum v1.0.0");
  EXPECT_EQ(strict.rc, 8) << strict.err;
  EXPECT_TRUE(Has(strict.err, "sharpe: 1.2 is not > 1.5")) << strict.err;
  EXPECT_EQ(EventCount(), n + 1);  // the PromotionRejected event
  // No section of its own: [default] (sharpe > 0.5 from the built-in defaults).
  Ok("promote alpha_value v1.0.0");
  // Its own section turns both metric gates off.
  Ok("promote credit-risk v1.0.0");
  json cur = Json("current credit-risk");
  EXPECT_EQ(cur["production"], "v1.0.0");
  EXPECT_TRUE(Has(cur["promotion"]["policy"].get<std::string>(), "no gates")) << cur.dump();
  // A section that is not a valid name is an error naming its line, and
  // the policy in force stays.
  const std::string file = root_ + "-bad.toml";
  std::ofstream(file) << "[default]\npaper_trading_hours = \"off\"\n[Alpha]\nsharpe = \"> 1\"\n";
  const std::size_t before = EventCount();
  RunResult bad = Mr("--reason typo policy set " + file, "admin");
  EXPECT_EQ(bad.rc, 2);
  EXPECT_TRUE(Has(bad.err, "-bad.toml:3:")) << bad.err;
  EXPECT_TRUE(Has(bad.err, "starting with a letter")) << bad.err;
  EXPECT_EQ(EventCount(), before);
}

// Exactness: an answer as of T contains nothing recorded after T, names
// included.
TEST_F(NamesCli, AuditBeforeANameWasRegisteredDoesNotListIt) {
  Register("risk_model", "v1.0.0");
  Ok("promote risk_model v1.0.0");
  Tick();
  const std::string t1 = Now();
  Tick();
  Register("alpha_momentum", "v1.0.0");
  Ok("promote alpha_momentum v1.0.0");
  Tick();
  const std::string t2 = Now();

  EXPECT_EQ(Types(Json("audit --at " + t1)), kDefaults);
  std::vector<std::string> later = kDefaults;
  later.push_back("alpha_momentum");
  EXPECT_EQ(Types(Json("audit --at " + t2)), later);
  json listed = Json("list --at " + t1);
  for (json& v : listed["versions"]) {
    EXPECT_NE(v["model_type"], "alpha_momentum") << v.dump();
  }
  json diff = Json("diff --from " + t1 + " --to " + t2);
  EXPECT_TRUE(diff["production"]["alpha_momentum"]["from"].is_null()) << diff.dump();
  EXPECT_EQ(diff["production"]["alpha_momentum"]["to"], "v1.0.0") << diff.dump();
  json before = Json("diff --from 2000-01-01 --to " + t1);
  EXPECT_FALSE(before["production"].contains("alpha_momentum")) << before.dump();
  // A read-only answer computed from the rows, and after a rebuild, agree.
  const std::string replay = testing::EnvOr("MODELREG_REPLAY_BIN", "modelreg-replay");
  ASSERT_EQ(RunCmd(replay + " --root " + root_ + " rebuild").rc, 0);
  EXPECT_EQ(Types(Json("audit --at " + t1)), kDefaults);
  EXPECT_EQ(Types(Json("audit --at " + t2)), later);
}

// --- rollback and failure ---

class RollbackCli : public NamesCli {
 protected:
  // v1.0.0 .. vN.0.0 of risk_model, each promoted in turn.
  void Chain(int n) {
    for (int i = 1; i <= n; ++i) {
      const std::string v = "v" + std::to_string(i) + ".0.0";
      Register("risk_model", v);
      Ok("promote risk_model " + v);
    }
  }
};

TEST_F(RollbackCli, RollingBackTwiceGoesFurtherBackNotForth) {
  Chain(3);
  RunResult first = Ok("rollback risk_model --reason 'v3 drifts'");
  EXPECT_TRUE(Has(first.out, "rolled back risk_model: v3.0.0 -> v2.0.0")) << first.out;
  RunResult second = Ok("rollback risk_model");
  EXPECT_TRUE(Has(second.out, "v2.0.0 -> v1.0.0")) << second.out;
  EXPECT_EQ(Production("risk_model"), "v1.0.0");
  EXPECT_EQ(StatusOf("risk_model", "v3.0.0"), "archived");
  const std::size_t n = EventCount();
  RunResult third = Mr("rollback risk_model");
  EXPECT_EQ(third.rc, 4);
  EXPECT_TRUE(Has(third.err, "no earlier production version")) << third.err;
  EXPECT_EQ(EventCount(), n);
}

TEST_F(RollbackCli, RollbackSkipsFailedVersions) {
  Chain(3);
  Ok("fail risk_model v2.0.0 --reason 'bad fills'");
  RunResult r = Ok("rollback risk_model");
  EXPECT_TRUE(Has(r.out, "v3.0.0 -> v1.0.0")) << r.out;
  EXPECT_EQ(Production("risk_model"), "v1.0.0");
  EXPECT_EQ(StatusOf("risk_model", "v2.0.0"), "failed");
}

TEST_F(RollbackCli, RollbackToAChosenVersion) {
  Chain(4);
  Register("risk_model", "v9.0.0");  // never production
  Ok("fail risk_model v2.0.0 --reason 'bad fills'");
  const std::size_t n = EventCount();
  struct Bad {
    std::string to;
    int rc;
    std::string message;
  };
  for (const Bad& b : std::vector<Bad>{{"v9.0.0", 4, "was never in production"},
                                       {"v4.0.0", 4, "already in production"},
                                       {"v2.0.0", 4, "is failed"},
                                       {"v8.0.0", 3, "is not registered"},
                                       {"8.0", 2, "is not a version"}}) {
    RunResult r = Mr("rollback risk_model --to " + b.to);
    EXPECT_EQ(r.rc, b.rc) << b.to << ": " << r.err;
    EXPECT_TRUE(Has(r.err, b.message)) << b.to << ": " << r.err;
    EXPECT_EQ(Lines(r.err).size(), 1u) << r.err;
  }
  EXPECT_EQ(EventCount(), n);
  RunResult good = Ok("rollback risk_model --to v1.0.0 --reason 'back to the last good one'");
  EXPECT_TRUE(Has(good.out, "v4.0.0 -> v1.0.0")) << good.out;
  EXPECT_EQ(Production("risk_model"), "v1.0.0");
  EXPECT_EQ(EventCount(), n + 1);
  json last = json::parse(Lines(Ok("--json events").out).back());
  EXPECT_EQ(last["type"], "ModelRolledBack");
  EXPECT_EQ(last["payload"]["from_version"], "v4.0.0");
  EXPECT_EQ(last["payload"]["to_version"], "v1.0.0");
  // v3.0.0 was jumped over: it is not where the next rollback goes.
  EXPECT_EQ(Mr("rollback risk_model").rc, 4);
}

TEST_F(RollbackCli, DryRunPrintsThePlanAndAppendsNothing) {
  Chain(3);
  const std::size_t n = EventCount();
  const std::string digest = Json("verify")["state_digest"];
  RunResult plan = Ok("rollback risk_model --dry-run --fail --reason 'check first'");
  EXPECT_TRUE(Has(plan.out, "dry run: would roll back risk_model: v3.0.0 -> v2.0.0")) << plan.out;
  EXPECT_TRUE(Has(plan.out, "v3.0.0 would become failed")) << plan.out;
  EXPECT_TRUE(Has(plan.out, "nothing was written")) << plan.out;
  json j = Json("rollback risk_model --dry-run --to v1.0.0");
  EXPECT_EQ(j["dry_run"], true);
  EXPECT_EQ(j["seq"], 0);
  EXPECT_EQ(j["from"], "v3.0.0");
  EXPECT_EQ(j["to"], "v1.0.0");
  EXPECT_EQ(j["current_becomes"], "archived");
  EXPECT_EQ(EventCount(), n);
  EXPECT_EQ(Json("verify")["state_digest"], digest);
  EXPECT_EQ(Production("risk_model"), "v3.0.0");
  // A dry run that would be refused says so with the same exit code.
  EXPECT_EQ(Mr("rollback risk_model --dry-run --to v9.0.0").rc, 3);
  EXPECT_EQ(EventCount(), n);
}

TEST_F(RollbackCli, MarkingAVersionFailedNeedsAReason) {
  Chain(2);
  const std::size_t n = EventCount();
  for (const std::string& args : {std::string("rollback risk_model --fail"),
                                  std::string("rollback risk_model --fail --reason ' '"),
                                  std::string("rollback risk_model --fail --dry-run"),
                                  std::string("fail risk_model v1.0.0")}) {
    RunResult r = Mr(args);
    EXPECT_EQ(r.rc, 2) << args << ": " << r.err;
    EXPECT_TRUE(Has(r.err, "--reason")) << r.err;
  }
  EXPECT_EQ(EventCount(), n);
  EXPECT_EQ(Production("risk_model"), "v2.0.0");
  Ok("rollback risk_model --fail --reason 'losing money'");
  EXPECT_EQ(StatusOf("risk_model", "v2.0.0"), "failed");
  EXPECT_EQ(Json("show risk_model v2.0.0")["status_reason"], "losing money");
}

TEST_F(RollbackCli, MissingArtifactRefusesPromotionUntilRestored) {
  Register("risk_model", "v1.0.0");
  const std::string file = ArtifactFile("risk_model", "v1.0.0");
  const std::string saved = dir_.sub("saved.pkl");
  fs::copy_file(file, saved);
  ASSERT_TRUE(fs::remove(file));
  const std::size_t n = EventCount();
  RunResult r = Mr("promote risk_model v1.0.0");
  EXPECT_EQ(r.rc, 4) << r.err;
  EXPECT_TRUE(Has(r.err, "is missing")) << r.err;
  EXPECT_TRUE(Has(r.err, "status is unchanged")) << r.err;
  EXPECT_EQ(EventCount(), n + 1);
  json last = json::parse(Lines(Ok("--json events").out).back());
  EXPECT_EQ(last["type"], "ArtifactValidated");
  EXPECT_EQ(last["payload"]["ok"], false);
  EXPECT_EQ(last["payload"]["result"], "missing");
  EXPECT_TRUE(Has(Lines(Ok("events").out).back(), "validated risk_model v1.0.0 MISSING"));
  EXPECT_EQ(StatusOf("risk_model", "v1.0.0"), "staged");
  EXPECT_EQ(Production("risk_model"), "");
  // validate says so too (exit 4), and records it.
  RunResult v = Mr("validate risk_model v1.0.0");
  EXPECT_EQ(v.rc, 4) << v.err;
  EXPECT_EQ(EventCount(), n + 2);
  EXPECT_EQ(StatusOf("risk_model", "v1.0.0"), "staged");

  // The file is restored: validate, then promote.
  fs::copy_file(saved, file);
  RunResult valid = Ok("validate risk_model v1.0.0");
  EXPECT_TRUE(Has(valid.out, "valid: risk_model v1.0.0")) << valid.out;
  EXPECT_EQ(Json("show risk_model v1.0.0")["validation_ok"], true);
  Ok("promote risk_model v1.0.0");
  EXPECT_EQ(Production("risk_model"), "v1.0.0");
  Ok("verify");
}

TEST_F(RollbackCli, MissingRollbackTargetIsRefusedAndProductionKept) {
  Chain(2);
  const std::string file = ArtifactFile("risk_model", "v1.0.0");
  const std::string saved = dir_.sub("saved.pkl");
  fs::copy_file(file, saved);
  ASSERT_TRUE(fs::remove(file));
  const std::size_t n = EventCount();
  RunResult dry = Mr("rollback risk_model --dry-run");
  EXPECT_EQ(dry.rc, 4) << dry.err;
  EXPECT_EQ(EventCount(), n);
  RunResult r = Mr("rollback risk_model");
  EXPECT_EQ(r.rc, 4) << r.err;
  EXPECT_TRUE(Has(r.err, "is missing")) << r.err;
  EXPECT_EQ(EventCount(), n + 1);
  EXPECT_EQ(Production("risk_model"), "v2.0.0");
  EXPECT_EQ(StatusOf("risk_model", "v1.0.0"), "archived");
  fs::copy_file(saved, file);
  Ok("rollback risk_model");
  EXPECT_EQ(Production("risk_model"), "v1.0.0");
}

TEST_F(RollbackCli, CorruptedArtifactStillFailsPermanently) {
  Register("risk_model", "v1.0.0");
  const std::string file = ArtifactFile("risk_model", "v1.0.0");
  ASSERT_EQ(chmod(file.c_str(), 0644), 0);
  const std::string original = testing::Slurp(file);
  std::ofstream(file, std::ios::app) << "corrupted";
  RunResult r = Mr("promote risk_model v1.0.0");
  EXPECT_EQ(r.rc, 5) << r.err;
  EXPECT_TRUE(Has(r.err, "now marked failed")) << r.err;
  EXPECT_EQ(StatusOf("risk_model", "v1.0.0"), "failed");
  // Repairing the bytes does not bring it back: content that did not match
  // its checksum once is a real failure.
  std::ofstream(file, std::ios::trunc) << original;
  Ok("validate risk_model v1.0.0");
  RunResult again = Mr("promote risk_model v1.0.0");
  EXPECT_EQ(again.rc, 4) << again.err;
  EXPECT_TRUE(Has(again.err, "is failed")) << again.err;
  EXPECT_EQ(StatusOf("risk_model", "v1.0.0"), "failed");
}

}  // namespace
}  // namespace modelreg
