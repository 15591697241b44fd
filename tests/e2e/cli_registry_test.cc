// End-to-end: the real modelreg binary on a real registry directory,
// through the spec's scenarios and its error paths.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <thread>
#include <tuple>

#include <nlohmann/json.hpp>

#include "common/bytes.h"
#include "common/clock.h"
#include "common/sha256.h"
#include "support/child.h"
#include "support/raw_db.h"
#include "support/run.h"
#include "support/temp_dir.h"

namespace modelreg {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::RunCmd;
using testing::Lines;
using testing::RunResult;

class Cli : public ::testing::Test {
 protected:
  std::string Bin() const { return testing::EnvOr("MODELREG_BIN", "modelreg"); }
  // Every registry starts with a policy without the 24-hour paper-trading
  // gate (these tests run in seconds); the IC and Sharpe gates stay on.
  // The first command adopts it: event 1 is that PolicyChanged
  // (kPolicyEvents), the tests' own events follow.
  static constexpr std::size_t kPolicyEvents = 1;
  void SetUp() override { WritePolicy("[default]\npaper_trading_hours = \"off\"\n"); }
  // Before the registry exists: the policy.toml its first write adopts.
  void WritePolicy(const std::string& toml) const {
    fs::create_directories(Root());
    std::ofstream(Root() + "/policy.toml") << toml;
  }
  // Afterwards the policy is changed through the log, as operators do.
  void SetPolicy(const std::string& toml, const std::string& why = "test policy") const {
    const std::string file = dir_.sub("policy-" + std::to_string(++policies_) + ".toml");
    std::ofstream(file) << toml;
    Ok("--reason '" + why + "' policy set " + file, "admin");
  }
  std::string Root() const { return root_; }
  RunResult Mr(const std::string& args, const std::string& actor = "alice") const {
    return RunCmd("MODELREG_ACTOR=" + actor + " " + Bin() + " --root " + Root() + " " + args);
  }
  RunResult Ok(const std::string& args, const std::string& actor = "alice") const {
    RunResult r = Mr(args, actor);
    EXPECT_EQ(r.rc, 0) << args << "\n" << r.err;
    return r;
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
  void Register(const std::string& type, const std::string& version, double sharpe,
                double ic) const {
    const std::string art = File(type + version + ".pkl", "weights " + type + version);
    Ok("register " + type + " " + art + " --version " + version + " --metric sharpe=" +
       std::to_string(sharpe) + " --metric ic=" + std::to_string(ic) +
       " --dataset crsp=v1.2.3 --snapshot snap_1 --factor momentum --factor value");
  }
  std::vector<std::string> ArtifactTree() const {
    std::vector<std::string> out;
    std::error_code ec;
    if (!fs::exists(Root() + "/artifacts")) return out;
    for (const auto& e : fs::recursive_directory_iterator(Root() + "/artifacts", ec)) {
      out.push_back(e.path().string());
    }
    std::sort(out.begin(), out.end());
    return out;
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

  testing::TempDir dir_;
  std::string root_ = dir_.sub("reg");
  mutable int policies_ = 0;
};

// The spec's Example 1: weekly update workflow.
TEST_F(Cli, WeeklyUpdateWorkflow) {
  const std::string meta = File("meta.json", R"({
    "model_id": "mdl_week1",
    "dataset_version_ids": {"crsp": "v1.2.3", "compustat": "v1.0.1"},
    "snapshot_id": "snap_20240101",
    "factor_list": ["momentum", "value", "size"],
    "parameters": {"halflife_days": 60, "shrinkage_intensity": 0.5},
    "metrics": {"ic": 0.05, "sharpe": 1.2},
    "config": {"learning_rate": 0.01, "epochs": 100},
    "created_by": "training_pipeline",
    "created_at": "2024-01-01T20:00:00Z"
  })");
  const std::string art = File("model.pkl", "week 1 weights");
  RunResult reg = Ok("register risk_model " + art + " --version v1.0.0 --metadata " + meta);
  EXPECT_NE(reg.out.find("registered risk_model v1.0.0 (staged)"), std::string::npos) << reg.out;
  const std::string vdir = Root() + "/artifacts/risk_model/v1.0.0";
  EXPECT_TRUE(fs::exists(vdir + "/model.pkl"));
  EXPECT_TRUE(fs::exists(vdir + "/metadata.json"));
  EXPECT_EQ(RunCmd("cd " + vdir + " && sha256sum -c checksum.sha256").rc, 0);
  json md = json::parse(testing::Slurp(vdir + "/metadata.json"));
  EXPECT_EQ(md["model_id"], "mdl_week1");
  EXPECT_EQ(md["dataset_version_ids"]["compustat"], "v1.0.1");
  EXPECT_EQ(md["created_at"], "2024-01-01T20:00:00Z");

  Ok("promote risk_model v1.0.0 --reason 'first model'");
  Register("risk_model", "v1.1.0", 1.5, 0.08);
  json staged = json::parse(Ok("--json list risk_model --status staged").out)["versions"];
  ASSERT_EQ(staged.size(), 1u);
  EXPECT_EQ(staged[0]["version"], "v1.1.0");
  RunResult promote = Ok("promote risk_model v1.1.0 --expect-current v1.0.0", "bob");
  EXPECT_NE(promote.out.find("replaces v1.0.0"), std::string::npos);

  json cur = json::parse(Ok("--json current risk_model").out);
  EXPECT_EQ(cur["production"], "v1.1.0");
  EXPECT_EQ(cur["record"]["version"], "v1.1.0");
  EXPECT_EQ(cur["promotion"]["actor"], "bob");
  json all = json::parse(Ok("--json list risk_model").out)["versions"];
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0]["status"], "archived");
  EXPECT_EQ(all[1]["status"], "production");
  json hist = json::parse(Ok("--json history risk_model").out)["history"];
  ASSERT_EQ(hist.size(), 2u);
  EXPECT_EQ(hist[1]["replaced_version"], "v1.0.0");
  EXPECT_EQ(hist[1]["replaced_status"], "archived");
  // Registering the same thing again is idempotent.
  RunResult again = Ok("register risk_model " + art + " --version v1.0.0 --metadata " + meta);
  EXPECT_NE(again.out.find("already registered"), std::string::npos);
  EXPECT_EQ(EventCount(), kPolicyEvents + 4);
  // Same bytes, different parameters or factors: a conflict, nothing written.
  RunResult changed = Mr("register risk_model " + art + " --version v1.0.0 --metadata " + meta +
                         " --param halflife_days=90");
  EXPECT_EQ(changed.rc, 4) << changed.err;
  RunResult factors = Mr("register risk_model " + art + " --version v1.0.0 --metadata " + meta +
                         " --factor momentum");
  EXPECT_EQ(factors.rc, 4) << factors.err;
  EXPECT_EQ(EventCount(), kPolicyEvents + 4);
  RunResult verify = Ok("verify");
  EXPECT_NE(verify.out.find("projection OK"), std::string::npos);
  json manifest = json::parse(testing::Slurp(Root() + "/manifest.json"));
  EXPECT_EQ(manifest["head_seq"], kPolicyEvents + 4);
  EXPECT_EQ(manifest["types"]["risk_model"]["production"], "v1.1.0");
}

// The spec's Example 2: emergency rollback.
TEST_F(Cli, EmergencyRollback) {
  Register("alpha_weights", "v1.0.0", 1.45, 0.082);
  Register("alpha_weights", "v2.0.0", 1.52, 0.085);
  Ok("promote alpha_weights v1.0.0");
  Ok("promote alpha_weights v2.0.0");
  RunResult rb = Ok("rollback alpha_weights --fail --reason 'strategy losing money'", "carol");
  EXPECT_NE(rb.out.find("v2.0.0 -> v1.0.0"), std::string::npos) << rb.out;
  json cur = json::parse(Ok("--json current alpha_weights").out);
  EXPECT_EQ(cur["production"], "v1.0.0");
  json v2 = json::parse(Ok("--json show alpha_weights v2.0.0").out);
  EXPECT_EQ(v2["status"], "failed");
  EXPECT_EQ(v2["status_reason"], "strategy losing money");
  json hist = json::parse(Ok("--json history alpha_weights").out)["history"];
  ASSERT_EQ(hist.size(), 3u);
  EXPECT_EQ(hist[2]["kind"], "rollback");
  EXPECT_EQ(hist[2]["actor"], "carol");
  // Nothing earlier than v1.0.0 (v2.0.0 is failed, and was rolled away
  // from): refused.
  RunResult again = Mr("rollback alpha_weights");
  EXPECT_EQ(again.rc, 4);
  EXPECT_NE(again.err.find("no earlier production version"), std::string::npos) << again.err;
}

// The spec's Example 3: comparing versions by Sharpe.
TEST_F(Cli, CompareVersionsBySharpe) {
  Register("alpha_weights", "v1.0.0", 1.22, 0.072);
  Register("alpha_weights", "v1.1.0", 1.52, 0.085);
  Register("alpha_weights", "v1.2.0", 0.85, 0.045);
  Register("alpha_weights", "v1.3.0", 1.45, 0.082);
  json sorted = json::parse(Ok("--json list alpha_weights --sort sharpe").out)["versions"];
  ASSERT_EQ(sorted.size(), 4u);
  EXPECT_EQ(sorted[0]["version"], "v1.1.0");
  EXPECT_EQ(sorted[1]["version"], "v1.3.0");
  EXPECT_EQ(sorted[2]["version"], "v1.0.0");
  EXPECT_EQ(sorted[3]["version"], "v1.2.0");
  RunResult table = Ok("list alpha_weights --sort sharpe");
  auto lines = Lines(table.out);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_NE(lines[0].find("SHARPE"), std::string::npos);
  EXPECT_NE(lines[1].find("v1.1.0"), std::string::npos);
  EXPECT_NE(lines[1].find("1.52"), std::string::npos);
}

// "Which model was in production on date X?" before, between and after.
TEST_F(Cli, WhatWasInProductionAt) {
  Register("risk_model", "v1.0.0", 1.0, 0.05);
  Register("risk_model", "v1.1.0", 1.1, 0.06);
  const std::string before = Now();
  Tick();
  Ok("promote risk_model v1.0.0 --reason weekly", "alice");
  Tick();
  const std::string between = Now();
  Tick();
  Ok("promote risk_model v1.1.0 --reason weekly", "bob");
  Tick();
  const std::string after = Now();

  RunResult none = Mr("current risk_model --at " + before);
  EXPECT_EQ(none.rc, 3);
  EXPECT_NE(none.err.find("no production version of risk_model at"), std::string::npos);
  EXPECT_EQ(json::parse(Ok("--json current risk_model --at " + between).out)["production"],
            "v1.0.0");
  EXPECT_EQ(json::parse(Ok("--json current risk_model --at " + after).out)["production"], "v1.1.0");

  json a0 = json::parse(Ok("--json audit --at " + before).out);
  EXPECT_TRUE(a0["models"][0]["production"].is_null());
  json a1 = json::parse(Ok("--json audit --at " + between + " risk_model").out);
  ASSERT_EQ(a1["models"].size(), 1u);
  EXPECT_EQ(a1["models"][0]["production"], "v1.0.0");
  EXPECT_EQ(a1["models"][0]["promotion"]["actor"], "alice");
  EXPECT_EQ(a1["models"][0]["promotion"]["reason"], "weekly");
  EXPECT_EQ(a1["models"][0]["record"]["artifact_sha256"].get<std::string>().size(), 64u);
  RunResult text = Ok("audit --at " + after);
  EXPECT_NE(text.out.find("risk_model: v1.1.0"), std::string::npos) << text.out;
  // `now` and a time before now: right after the promotions, now sees the
  // last one (a whole-second time typed from `date` would not), and a week
  // ago nothing. The answer names the instant it resolved to.
  json now = json::parse(Ok("--json audit --at now risk_model").out);
  EXPECT_EQ(now["models"][0]["production"], "v1.1.0") << now;
  json week = json::parse(Ok("--json audit --at -1w risk_model").out);
  EXPECT_TRUE(week["models"][0]["production"].is_null()) << week;
  RunResult bad_at = Mr("audit --at -2y");
  EXPECT_EQ(bad_at.rc, 2);
  EXPECT_NE(bad_at.err.find("-2h (units s, m, h, d, w)"), std::string::npos) << bad_at.err;
  // A time copied from the list table includes the event it was printed for.
  RunResult table = Ok("list risk_model");
  const std::size_t row = table.out.find("\nrisk_model         v1.1.0");
  ASSERT_NE(row, std::string::npos) << table.out;
  const std::string line = table.out.substr(row + 1, table.out.find('\n', row + 1) - row - 1);
  const std::smatch m = [&] {
    std::smatch out;
    static const std::regex t(R"((\S+Z)\s+\S+\s*$)");  // PROMOTED, then DEMOTED ("-")
    std::regex_search(line, out, t);
    return out;
  }();
  ASSERT_FALSE(m.empty()) << line;
  EXPECT_EQ(json::parse(Ok("--json current risk_model --at " + m[1].str()).out)["production"],
            "v1.1.0")
      << line;
  EXPECT_NE(text.out.find("by bob"), std::string::npos);
  EXPECT_NE(text.out.find("alpha_weights: none"), std::string::npos);
  // list/show --at see the past too.
  json past = json::parse(Ok("--json list risk_model --at " + between).out)["versions"];
  EXPECT_EQ(past[0]["status"], "production");
  EXPECT_EQ(past[1]["status"], "staged");
  // A bare date long before: nothing registered then.
  EXPECT_EQ(Mr("show risk_model v1.0.0 --at 2001-01-01").rc, 3);
}

// An answer "as of T" holds nothing recorded after T: the production
// record at T is not the record of today (which says "replaced by v1.1.0"
// and carries the later demotion), and audit, current, show and list agree
// on it.
TEST_F(Cli, AnswersAsOfTNeverShowLaterFacts) {
  Register("risk_model", "v1.0.0", 1.0, 0.05);
  Register("risk_model", "v1.1.0", 1.1, 0.06);
  Ok("promote risk_model v1.0.0 --reason weekly", "alice");
  Ok("validate risk_model v1.0.0");
  Tick();
  const std::string t = Now();
  Tick();
  Ok("promote risk_model v1.1.0 --reason better", "bob");
  Ok("validate risk_model v1.0.0");

  const json audit = json::parse(Ok("--json audit --at " + t + " risk_model").out);
  const modelreg::TimeNs at = *modelreg::ParseTime(t);
  const std::uint64_t seq = audit["seq"].get<std::uint64_t>();
  ASSERT_EQ(audit["models"][0]["production"], "v1.0.0");
  const json rec = audit["models"][0]["record"];
  EXPECT_EQ(rec["status"], "production");
  EXPECT_EQ(rec["status_reason"], "weekly");
  EXPECT_TRUE(rec["demoted_at"].is_null()) << rec.dump();
  EXPECT_LE(rec["status_seq"].get<std::uint64_t>(), seq);
  EXPECT_LE(rec["validated_seq"].get<std::uint64_t>(), seq);
  EXPECT_LE(*modelreg::ParseTime(rec["status_at"].get<std::string>()), at);
  EXPECT_LE(*modelreg::ParseTime(rec["promoted_at"].get<std::string>()), at);
  EXPECT_LE(audit["models"][0]["promotion"]["seq"].get<std::uint64_t>(), seq);
  // The same record from every as-of question.
  EXPECT_EQ(json::parse(Ok("--json current risk_model --at " + t).out)["record"], rec);
  json shown = json::parse(Ok("--json show risk_model v1.0.0 --at " + t).out);
  shown.erase("registration");
  EXPECT_EQ(shown, rec);
  const json listed = json::parse(Ok("--json list risk_model --at " + t).out)["versions"];
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0], rec);
  EXPECT_EQ(listed[1]["status"], "staged");
  // Today's record does say what happened later.
  const json now = json::parse(Ok("--json show risk_model v1.0.0").out);
  EXPECT_EQ(now["status"], "archived");
  EXPECT_FALSE(now["demoted_at"].is_null());
}

TEST_F(Cli, ValidateDetectsATamperedArtifact) {
  Register("risk_model", "v1.0.0", 1.0, 0.05);
  RunResult ok = Ok("validate risk_model v1.0.0");
  EXPECT_NE(ok.out.find("valid: risk_model v1.0.0"), std::string::npos);
  const std::string file = Root() + "/artifacts/risk_model/v1.0.0/risk_modelv1.0.0.pkl";
  ASSERT_EQ(chmod(file.c_str(), 0644), 0);
  std::ofstream(file, std::ios::app) << "tampered";
  RunResult bad = Mr("validate risk_model v1.0.0");
  EXPECT_EQ(bad.rc, 5);
  EXPECT_NE(bad.err.find("failed validation"), std::string::npos) << bad.err;
  json last = json::parse(Lines(Ok("--json events").out).back());
  EXPECT_EQ(last["type"], "ArtifactValidated");
  EXPECT_EQ(last["payload"]["ok"], false);
  fs::remove(file);
  // A missing file is an operational problem, not a verdict: exit 4, recorded.
  RunResult missing = Mr("validate risk_model v1.0.0");
  EXPECT_EQ(missing.rc, 4) << missing.err;
  EXPECT_NE(missing.out.find("MISSING: risk_model v1.0.0"), std::string::npos) << missing.out;
  EXPECT_NE(missing.err.find("is missing"), std::string::npos) << missing.err;
  json gone = json::parse(Lines(Ok("--json events").out).back());
  EXPECT_EQ(gone["payload"]["result"], "missing");
}

TEST_F(Cli, IllegalTransitionsChangeNothing) {
  Register("risk_model", "v1.0.0", 1.0, 0.05);
  Ok("promote risk_model v1.0.0");
  const std::size_t n = EventCount();
  struct Case {
    std::string args;
    int rc;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {"promote risk_model v1.0.0", 4, "already in production"},
           {"archive risk_model v1.0.0", 4, "is in production"},
           {"fail risk_model v1.0.0 --reason bad", 4, "rollback risk_model --fail"},
           {"fail risk_model v1.0.0", 2, "needs --reason"},
           {"rollback risk_model", 4, "no earlier production version"},
           {"promote risk_model v9.9.9", 3, "is not registered"},
           {"promote risk_model v1.0.0 --expect-current none", 4, "--expect-current"},
           {"rollback factor_definitions", 4, "no production version"},
       }) {
    RunResult r = Mr(c.args);
    EXPECT_EQ(r.rc, c.rc) << c.args << ": " << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << c.args << ": " << r.err;
    EXPECT_EQ(Lines(r.err).size(), 1u) << c.args << ": " << r.err;
  }
  EXPECT_EQ(EventCount(), n);
  // fail --force on production is allowed and leaves no production.
  Ok("fail risk_model v1.0.0 --force --reason 'corrupt weights'");
  EXPECT_EQ(Mr("current risk_model").rc, 3);
}

// A FIFO (or any special file) as artifact, metadata or config file is
// refused at once instead of waiting for a writer forever.
TEST_F(Cli, SpecialFilesAreRefusedWithoutBlocking) {
  Register("risk_model", "v1.0.0", 1.0, 0.05);
  const std::size_t n = EventCount();
  const std::string fifo = dir_.sub("pipe");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const std::string art = File("ok.pkl", "bytes");
  const std::string run = "timeout 20 " + Bin() + " --root " + Root() + " ";
  for (const std::string& args :
       {"register risk_model " + fifo + " --version v2.0.0",
        "register risk_model " + art + " --version v2.0.0 --metadata " + fifo,
        "register risk_model " + art + " --version v2.0.0 --config " + fifo,
        std::string("register risk_model /dev/zero --version v2.0.0")}) {
    RunResult r = RunCmd(run + args);
    EXPECT_EQ(r.rc, 2) << args << ": " << r.err;  // 124 would be the timeout
    EXPECT_NE(r.err.find("not a regular file"), std::string::npos) << args << ": " << r.err;
  }
  EXPECT_EQ(EventCount(), n);
  EXPECT_FALSE(fs::exists(Root() + "/artifacts/risk_model/v2.0.0"));
}

// An actor or reason with a newline cannot forge a line of output: text
// output escapes control characters (JSON escapes them anyway).
TEST_F(Cli, ControlCharactersCannotForgeOutputLines) {
  const std::string forged = "#99 2025-01-01T00:00:00Z root promoted risk_model v9.9.9";
  const std::string art = File("m.pkl", "bytes");
  Ok("register risk_model " + art + " --version v1.0.0 --metric ic=0.05 --metric sharpe=1",
     "\"$(printf 'eve\\n" + forged + "')\"");
  Ok("--reason \"$(printf 'weekly\\n" + forged + "\\033[2J')\" promote risk_model v1.0.0");
  for (const std::string& cmd : {std::string("events"), std::string("history risk_model"),
                                 std::string("audit --at 2100-01-01"),
                                 std::string("show risk_model v1.0.0")}) {
    const RunResult r = Ok(cmd);
    for (const std::string& line : Lines(r.out)) {
      EXPECT_NE(line.rfind("#99", 0), 0u) << cmd << ":\n" << r.out;
      EXPECT_EQ(line.find('\x1b'), std::string::npos) << cmd << ":\n" << r.out;
    }
  }
  EXPECT_EQ(Lines(Ok("events").out).size(), kPolicyEvents + 2);
  EXPECT_NE(Ok("events").out.find("eve\\n#99"), std::string::npos);
  // The JSON keeps the exact text.
  const json first = json::parse(Lines(Ok("--json events").out)[kPolicyEvents]);
  EXPECT_EQ(first["actor"], "eve\n" + forged);
}

TEST_F(Cli, BadInputGetsOneClearLineAndChangesNothing) {
  Register("risk_model", "v1.0.0", 1.0, 0.05);
  const std::size_t n = EventCount();
  const auto tree = ArtifactTree();
  const std::string art = File("ok.pkl", "bytes");
  const std::string bad_json = File("bad.json", "{not json");
  const std::string array_json = File("array.json", "[1,2]");
  const std::string nan_json = File("nan.json", R"({"metrics": {"ic": "high"}})");
  const std::string latin1_json = File("latin1.json", "{\"snapshot_id\": \"caf\xe9\"}");
  const std::string latin1_art = File("caf\xe9.pkl", "bytes");
  struct Case {
    std::string args;
    int rc;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {"register Risk_Model " + art + " --version v2.0.0", 2, "invalid model name"},
           {"register ../x " + art + " --version v2.0.0", 2, "starting with a letter"},
           {"register / " + art + " --version v2.0.0", 2, "invalid model name"},
           {"register risk_model " + art + " --version ../v2", 2, "is not a version"},
           {"register risk_model " + art + " --version v2.0.0/..", 2, "is not a version"},
           {"register risk_model " + art + " --version 2.0.0", 2, "is not a version"},
           {"register risk_model " + art + " --version v2.0", 2, "is not a version"},
           {"register risk_model " + dir_.sub("nope.pkl") + " --version v2.0.0", 3,
            "does not exist"},
           // (a directory is a directory artifact now: tests/e2e/cli_directory_test.cc)
           {"register risk_model /dev/null --version v2.0.0", 2, "not a regular file"},
           {"register risk_model " + art + " --version v2.0.0 --metadata " + bad_json, 2,
            "not valid JSON"},
           {"register risk_model " + art + " --version v2.0.0 --metadata " + array_json, 2,
            "must be a JSON object"},
           {"register risk_model " + art + " --version v2.0.0 --metadata " + nan_json, 2,
            "finite number"},
           {"register risk_model " + art + " --version v2.0.0 --metric ic=nan", 2,
            "finite number"},
           {"register risk_model " + art + " --version v2.0.0 --metric sharpe=inf", 2,
            "finite number"},
           // One strict decimal grammar (docs/cli.md "Numbers"): no hex, no
           // whitespace, no leading '+' or bare point.
           {"register risk_model " + art + " --version v2.0.0 --metric sharpe=0x10", 2,
            "metric sharpe must be a finite number in decimal, such as 1.5"},
           {"register risk_model " + art + " --version v2.0.0 --metric 'sharpe= 1'", 2,
            "got ' 1' (not a decimal number)"},
           {"register risk_model " + art + " --version v2.0.0 --metric 'sharpe=1 '", 2,
            "got '1 ' (not a decimal number)"},
           {"register risk_model " + art + " --version v2.0.0 --metric sharpe=.5", 2,
            "finite number in decimal"},
           {"register risk_model " + art + " --version v2.0.0 --metric sharpe=1e-400", 2,
            "out of the range of a double"},
           {"register risk_model " + art + " --version v2.0.0 --metric sharpe", 2,
            "expects NAME=VALUE"},
           {"register risk_model " + art + " --version v2.0.0 --metadata " +
                dir_.sub("missing.json"),
            2, "cannot read metadata file"},
           {"register risk_model " + art + " --version v2.0.0 --bogus", 2, "bogus"},
           {"list --at yesterday", 2, "is not a time: use ISO-8601 with a zone"},
           {"audit --at 2025-01-15T09:30:00", 2, "is not a time: use ISO-8601 with a zone"},
           {"history risk_model --since 2025-13-01", 2, "is not a time: use ISO-8601 with a zone"},
           {"list --status live", 2, "unknown status"},
           {"show risk_model v1.0.0/../../x", 2, "is not a version"},
           {"frobnicate", 2, "frobnicate"},
           // Non-UTF-8 bytes (Latin-1 "caf\xe9") in flags, metadata and names.
           {"register risk_model " + art + " --version v2.0.0 --snapshot 'caf\xe9'", 2,
            "not valid UTF-8"},
           {"register risk_model " + art + " --version v2.0.0 --metadata " + latin1_json, 2,
            "UTF-8"},
           {"register risk_model " + latin1_art + " --version v2.0.0", 2, "not valid UTF-8"},
           {"--actor 'caf\xe9' promote risk_model v1.0.0", 2, "not valid UTF-8"},
       }) {
    RunResult r = Mr(c.args);
    EXPECT_EQ(r.rc, c.rc) << c.args << ": " << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << c.args << ": " << r.err;
    EXPECT_TRUE(r.out.empty()) << c.args << ": " << r.out;
  }
  EXPECT_EQ(EventCount(), n);
  EXPECT_EQ(ArtifactTree(), tree);  // no stray files
}

// JSON input nests at most 64 levels (docs/cli.md): a 100,000-deep metadata
// file, config file or --param used to crash the CLI (stack overflow in the
// JSON library's recursive copy). Each is refused with exit 2 naming the
// limit, and nothing is appended or stored; 64 levels are accepted.
TEST_F(Cli, DeeplyNestedJsonIsRefusedNamingTheLimit) {
  Register("risk_model", "v1.0.0", 1.5, 0.08);
  const std::size_t before = EventCount();
  const auto nested = [](std::size_t depth) {
    return std::string(depth, '[') + std::string(depth, ']');
  };
  const std::string art = File("deep.pkl", "weights");
  const std::string deep_meta =
      File("deep_meta.json", "{\"parameters\": {\"w\": " + nested(100000) + "}}");
  const std::string deep_config = File("deep_config.json", nested(100000));
  const std::string deep_param = File("deep_param.txt", nested(70));
  for (const std::string& args :
       {"--metadata " + deep_meta, "--config " + deep_config,
        "--param \"w=$(cat " + deep_param + ")\""}) {
    RunResult r = Mr("register risk_model " + art + " --version v2.0.0 " + args);
    EXPECT_EQ(r.rc, 2) << args << "\n" << r.err;
    EXPECT_NE(r.err.find("nests deeper than 64 levels"), std::string::npos) << args << r.err;
  }
  EXPECT_EQ(EventCount(), before);
  EXPECT_FALSE(fs::exists(Root() + "/artifacts/risk_model/v2.0.0"));

  // Exactly 64 levels: the metadata object is level 1, "parameters" 2, and
  // the array 62 more.
  const std::string at_limit =
      File("limit_meta.json", "{\"parameters\": {\"w\": " + nested(62) + "}}");
  RunResult ok = Ok("register risk_model " + art + " --version v2.0.0 --metadata " + at_limit);
  EXPECT_EQ(EventCount(), before + 1);
  json shown = json::parse(Ok("--json show risk_model v2.0.0").out);
  EXPECT_TRUE(shown.dump().find(nested(62)) != std::string::npos) << shown.dump();
}

// manifest.json is derived (docs/layout.md): when it cannot be rewritten —
// here a directory stands in its place — writes still succeed, and stderr
// says once what is wrong, where, and how to repair it.
TEST_F(Cli, ManifestThatIsADirectoryOnlyWarns) {
  Register("risk_model", "v1.0.0", 1.2, 0.05);
  const std::string manifest = Root() + "/manifest.json";
  ASSERT_TRUE(fs::is_regular_file(manifest));
  fs::remove(manifest);
  fs::create_directory(manifest);
  std::ofstream(manifest + "/something") << "x";
  const std::size_t before = EventCount();
  auto warnings = [](const std::string& err) {
    std::size_t n = 0;
    for (const std::string& l : Lines(err)) n += l.find("warning") != std::string::npos ? 1 : 0;
    return n;
  };

  RunResult reg = Mr("register risk_model " + File("m2.pkl", "weights 2") +
                     " --version v1.1.0 --metric sharpe=1.3 --metric ic=0.06");
  EXPECT_EQ(reg.rc, 0) << reg.err;
  EXPECT_NE(reg.out.find("registered risk_model v1.1.0"), std::string::npos) << reg.out;
  EXPECT_EQ(warnings(reg.err), 1u) << reg.err;
  EXPECT_EQ(Lines(reg.err).size(), 1u) << reg.err;
  EXPECT_NE(reg.err.find("modelreg: warning: "), std::string::npos) << reg.err;
  EXPECT_NE(reg.err.find(manifest), std::string::npos) << reg.err;
  EXPECT_NE(reg.err.find("Is a directory"), std::string::npos) << reg.err;
  EXPECT_NE(reg.err.find("remove"), std::string::npos) << "no repair hint: " << reg.err;
  EXPECT_EQ(EventCount(), before + 1);

  RunResult promoted = Mr("promote risk_model v1.1.0");
  EXPECT_EQ(promoted.rc, 0) << promoted.err;
  EXPECT_EQ(warnings(promoted.err), 1u) << promoted.err;
  EXPECT_EQ(EventCount(), before + 2);
  // Reads are not concerned; verify names the problem but the log and the
  // projections are fine.
  RunResult verify = Mr("verify");
  EXPECT_EQ(verify.rc, 0) << verify.err;
  EXPECT_NE(verify.out.find("manifest"), std::string::npos) << verify.out;
  EXPECT_NE(verify.out.find("Is a directory"), std::string::npos) << verify.out;
  EXPECT_TRUE(fs::is_directory(manifest)) << "the directory is never removed by modelreg";

  // The repair the warning names: remove it; the next write rewrites it.
  fs::remove_all(manifest);
  RunResult archived = Mr("archive risk_model v1.0.0");
  EXPECT_EQ(archived.rc, 0) << archived.err;
  EXPECT_EQ(archived.err, "");
  ASSERT_TRUE(fs::is_regular_file(manifest));
  std::ifstream in(manifest);
  const json m = json::parse(in);
  EXPECT_EQ(m["head_seq"], EventCount());
  EXPECT_EQ(m["types"]["risk_model"]["production"], "v1.1.0");
  RunResult verified = Mr("verify");
  EXPECT_EQ(verified.rc, 0);
  EXPECT_EQ(verified.out.find("Is a directory"), std::string::npos) << verified.out;
}

// A server.json whose pid now belongs to an unrelated live process (the
// server was killed and the pid reused) and whose address answers nothing:
// not a server. The write proceeds locally, says why, and removes the file.
TEST_F(Cli, StaleServerJsonWithAReusedPidDoesNotBlockWrites) {
  Register("risk_model", "v1.0.0", 1.2, 0.05);
  const std::size_t before = EventCount();
  testing::Child unrelated({"/bin/sleep", "120"});
  ASSERT_GT(unrelated.pid(), 0);
  // A socket bound but not listening: connections to its port are refused,
  // and nobody else can take the port while the test holds it.
  const int sock = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(sock, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(sock, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string url = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  const std::string server_json = Root() + "/server.json";
  std::ofstream(server_json) << json{{"url", url}, {"pid", unrelated.pid()}}.dump() << "\n";

  const auto t0 = std::chrono::steady_clock::now();
  RunResult reg = Mr("register risk_model " + File("m2.pkl", "weights 2") +
                     " --version v1.1.0 --metric sharpe=1.3 --metric ic=0.06");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  EXPECT_EQ(reg.rc, 0) << reg.err;
  EXPECT_EQ(reg.err.find("held by `modelreg serve`"), std::string::npos) << reg.err;
  EXPECT_NE(reg.err.find(server_json), std::string::npos) << reg.err;
  EXPECT_NE(reg.err.find("stale"), std::string::npos) << reg.err;
  EXPECT_NE(reg.err.find(url), std::string::npos) << reg.err;
  EXPECT_EQ(EventCount(), before + 1);
  EXPECT_FALSE(fs::exists(server_json)) << "a write holding the registry removes a stale file";

  // With a token, too, the write is not sent to the dead address.
  std::ofstream(server_json) << json{{"url", url}, {"pid", unrelated.pid()}}.dump() << "\n";
  RunResult archived =
      RunCmd("MODELREG_TOKEN=not-a-real-token " + Bin() + " --root " + Root() +
             " archive risk_model v1.1.0");
  EXPECT_EQ(archived.rc, 0) << archived.err;
  EXPECT_NE(archived.err.find("stale"), std::string::npos) << archived.err;
  EXPECT_EQ(EventCount(), before + 2);
  ::close(sock);
}

TEST_F(Cli, NotARegistry) {
  root_ = dir_.sub("elsewhere");
  RunResult missing = Mr("list");
  EXPECT_EQ(missing.rc, 3);
  EXPECT_NE(missing.err.find("does not exist"), std::string::npos) << missing.err;
  EXPECT_FALSE(fs::exists(Root()));  // reads never create anything
  fs::create_directories(Root());
  std::ofstream(Root() + "/notes.txt") << "unrelated";
  RunResult not_reg = Mr("verify");
  EXPECT_EQ(not_reg.rc, 3);
  EXPECT_NE(not_reg.err.find("is not a modelreg registry"), std::string::npos) << not_reg.err;
  // Registering into an unrelated non-empty directory is refused.
  RunResult reg = Mr("register risk_model " + File("m.pkl", "x") + " --version v1.0.0");
  EXPECT_EQ(reg.rc, 2);
  EXPECT_NE(reg.err.find("non-empty directory"), std::string::npos) << reg.err;
  EXPECT_FALSE(fs::exists(Root() + "/registry"));
  // A file where the registry should be.
  RunResult file = RunCmd(Bin() + " --root " + Root() + "/notes.txt list");
  EXPECT_EQ(file.rc, 2);
  EXPECT_NE(file.err.find("not a directory"), std::string::npos) << file.err;
}

TEST_F(Cli, EventsFiltersAndFollow) {
  Register("risk_model", "v1.0.0", 1.0, 0.05);
  Register("alpha_weights", "v1.0.0", 1.0, 0.05);
  EXPECT_EQ(Lines(Ok("events --type alpha_weights").out).size(), 1u);
  EXPECT_EQ(Lines(Ok("events --until 2000-01-01").out).size(), 0u);
  EXPECT_EQ(Lines(Ok("events --since 2000-01-01").out).size(), kPolicyEvents + 2);
  json policy = json::parse(Lines(Ok("--json events").out)[0]);
  EXPECT_EQ(policy["seq"], 1);
  EXPECT_EQ(policy["type"], "PolicyChanged");  // the adopted policy.toml
  json first = json::parse(Lines(Ok("--json events").out)[kPolicyEvents]);
  EXPECT_EQ(first["seq"], kPolicyEvents + 1);
  EXPECT_EQ(first["type"], "ModelRegistered");
  EXPECT_EQ(first["payload"]["factor_list"][1], "value");

  // The follower's secondary instance keeps private files under TMPDIR.
  const std::string tmp = dir_.sub("follow-tmp");
  fs::create_directories(tmp);
  testing::Child follow({"/bin/sh", "-c", "TMPDIR=" + tmp + " exec " + Bin() + " --root " +
                                              Root() + " events --follow"});
  for (int i = 0; i < 50 && follow.Lines().size() < kPolicyEvents + 2; ++i) follow.ReadFor(100);
  ASSERT_EQ(follow.Lines().size(), kPolicyEvents + 2);
  Ok("promote risk_model v1.0.0 --reason live");
  for (int i = 0; i < 50 && follow.Lines().size() < kPolicyEvents + 3; ++i) follow.ReadFor(100);
  ASSERT_EQ(follow.Lines().size(), kPolicyEvents + 3);
  EXPECT_NE(follow.Lines()[kPolicyEvents + 2].find("promoted risk_model v1.0.0: live"),
            std::string::npos);
  EXPECT_FALSE(fs::is_empty(tmp)) << "the follower should be using TMPDIR";
  // Ctrl-C ends the follow cleanly and leaves nothing behind.
  const int status = follow.SignalAndWait(SIGINT);
  EXPECT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(fs::is_empty(tmp)) << fs::directory_iterator(tmp)->path();
}

TEST_F(Cli, ConcurrentPromotionsFromTwoProcesses) {
  Register("risk_model", "v1.0.0", 1.0, 0.05);
  Register("risk_model", "v2.0.0", 1.0, 0.05);
  Register("risk_model", "v3.0.0", 1.0, 0.05);
  Ok("promote risk_model v1.0.0");
  for (int round = 0; round < 3; ++round) {
    const std::string cmd = Bin() + " --root " + Root();
    RunCmd("(" + cmd + " promote risk_model v2.0.0 --expect-current v1.0.0 & " + cmd +
           " promote risk_model v3.0.0 --expect-current v1.0.0 & wait)");
    json list = json::parse(Ok("--json list risk_model --status production").out)["versions"];
    ASSERT_EQ(list.size(), 1u);  // exactly one production version
    const std::string winner = list[0]["version"];
    EXPECT_TRUE(winner == "v2.0.0" || winner == "v3.0.0");
    json hist = json::parse(Ok("--json history risk_model").out)["history"];
    for (std::size_t i = 1; i < hist.size(); ++i) {
      EXPECT_EQ(hist[i]["replaced_version"], hist[i - 1]["version"]);  // consistent history
    }
    EXPECT_EQ(hist.back()["version"], winner);
    EXPECT_EQ(hist.back()["replaced_version"], "v1.0.0");
    Ok("rollback risk_model");  // back to v1.0.0 for the next round
  }
  Ok("verify");
}

TEST_F(Cli, LockedRegistryGetsAClearError) {
  Register("risk_model", "v1.0.0", 1.0, 0.05);
  testing::Child holder({testing::EnvOr("MODELREG_APPEND_LOOP", "append_loop"),
                         Root() + "/registry", "hold"});
  for (int i = 0; i < 50 && holder.Lines().empty(); ++i) holder.ReadFor(100);
  ASSERT_EQ(holder.Lines(), std::vector<std::string>{"open"});
  RunResult busy = Mr("--lock-wait 0 promote risk_model v1.0.0");
  EXPECT_EQ(busy.rc, 7);
  EXPECT_NE(busy.err.find("locked by another process"), std::string::npos) << busy.err;
  EXPECT_EQ(Lines(busy.err).size(), 1u);
  Ok("list");  // reads still work
  holder.Kill();
  Ok("promote risk_model v1.0.0");
}

TEST_F(Cli, TamperedLogFailsVerifyWithItsSequence) {
  Register("risk_model", "v1.0.0", 1.0, 0.05);
  Ok("promote risk_model v1.0.0 --reason 'weekly retrain'");
  testing::RawPut(Root() + "/registry", "events", Be64(kPolicyEvents + 2), [](std::string v) {
    const auto pos = v.find("weekly retrain");
    EXPECT_NE(pos, std::string::npos);
    if (pos != std::string::npos) v[pos] = 'W';  // a plausible edit of the recorded reason
    return v;
  });
  RunResult verify = Mr("verify");
  EXPECT_EQ(verify.rc, 5);
  EXPECT_NE(verify.err.find("hash chain broken at event 3"), std::string::npos) << verify.err;
  RunResult replay = RunCmd(testing::EnvOr("MODELREG_REPLAY_BIN", "modelreg-replay") +
                            " --root " + Root() + " --json verify");
  EXPECT_EQ(replay.rc, 5);
  EXPECT_EQ(json::parse(replay.out)["first_bad_seq"], kPolicyEvents + 2);
}

TEST_F(Cli, GatesRefuseRecordAndCanBeOverridden) {
  WritePolicy(R"([default]
paper_trading_hours = "off"

[risk_model]
max_drawdown = ">= -0.2"
)");
  const std::string art = File("weak.pkl", "weak weights");
  Ok("register risk_model " + art +
     " --version v1.0.0 --metric ic=0.02 --metric sharpe=0.9 --metric max_drawdown=-0.25");
  const std::size_t n = EventCount();
  RunResult refused = Mr("promote risk_model v1.0.0 --reason 'try it'", "mallory");
  EXPECT_EQ(refused.rc, 8);
  // The refusal is the first line; the lines after it are the hint (how
  // to see and change the policy, --override-gates), none repeats it.
  ASSERT_GT(Lines(refused.err).size(), 1u) << refused.err;
  EXPECT_EQ(Lines(refused.err)[0].rfind("modelreg: rejected: promotion of risk_model v1.0.0 "
                                        "refused by the gates: ", 0), 0u) << refused.err;
  EXPECT_EQ(refused.err.find("refused", refused.err.find('\n')), std::string::npos);
  // Each failed gate with its threshold and observed value; IC exactly 0.02 fails.
  EXPECT_NE(refused.err.find("ic: 0.02 is not > 0.02"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("max_drawdown: -0.25 is not >= -0.2"), std::string::npos);
  EXPECT_EQ(refused.err.find("sharpe:"), std::string::npos);  // passed gates are not listed
  // Status unchanged, but the attempt is in the log.
  EXPECT_EQ(json::parse(Ok("--json show risk_model v1.0.0").out)["status"], "staged");
  EXPECT_EQ(EventCount(), n + 1);
  json rejected = json::parse(Lines(Ok("--json events").out).back());
  EXPECT_EQ(rejected["type"], "PromotionRejected");
  EXPECT_EQ(rejected["actor"], "mallory");
  ASSERT_EQ(rejected["payload"]["gates"].size(), 3u);
  EXPECT_NE(rejected["payload"]["policy"].get<std::string>().find("max_drawdown >= -0.2"),
            std::string::npos);
  EXPECT_NE(Ok("events").out.find("REJECTED by gates"), std::string::npos);

  // Override needs a reason, and is recorded.
  RunResult no_reason = Mr("promote risk_model v1.0.0 --override-gates");
  EXPECT_EQ(no_reason.rc, 2);
  EXPECT_NE(no_reason.err.find("needs --reason"), std::string::npos);
  RunResult forced =
      Ok("promote risk_model v1.0.0 --override-gates --reason 'desk head approved, ticket 42'",
         "boss");
  EXPECT_NE(forced.out.find("GATES OVERRIDDEN"), std::string::npos) << forced.out;
  json hist = json::parse(Ok("--json history risk_model").out)["history"];
  ASSERT_EQ(hist.size(), 1u);
  EXPECT_EQ(hist[0]["gates_overridden"], true);
  EXPECT_EQ(hist[0]["override_reason"], "desk head approved, ticket 42");
  const std::string history = Ok("history risk_model").out;
  EXPECT_NE(history.find("OVERRIDDEN  desk head approved, ticket 42"), std::string::npos)
      << history;
  RunResult audit = Ok("audit --at 2100-01-01 risk_model");
  EXPECT_NE(audit.out.find("OVERRIDDEN: desk head approved"), std::string::npos) << audit.out;
  EXPECT_NE(audit.out.find("FAIL ic > 0.02, observed 0.02"), std::string::npos) << audit.out;
  EXPECT_NE(audit.out.find("pass sharpe > 0.5"), std::string::npos) << audit.out;
  json ajson = json::parse(Ok("--json audit --at 2100-01-01 risk_model").out);
  EXPECT_EQ(ajson["models"][0]["promotion"]["gates"].size(), 3u);
}

TEST_F(Cli, DefaultPolicyNeedsTwentyFourHoursOfPaperTrading) {
  fs::remove(Root() + "/policy.toml");
  Register("risk_model", "v1.0.0", 1.5, 0.08);
  RunResult refused = Mr("promote risk_model v1.0.0");
  EXPECT_EQ(refused.rc, 8);
  EXPECT_NE(refused.err.find("paper_trading_hours"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("is not >= 24"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("built-in defaults"), std::string::npos) << refused.err;
}

TEST_F(Cli, TamperedArtifactFailsPromotion) {
  Register("risk_model", "v1.0.0", 1.5, 0.08);
  const std::string file = Root() + "/artifacts/risk_model/v1.0.0/risk_modelv1.0.0.pkl";
  ASSERT_EQ(chmod(file.c_str(), 0644), 0);
  std::ofstream(file, std::ios::app) << "tampered";
  const std::size_t n = EventCount();
  RunResult r = Mr("promote risk_model v1.0.0");
  EXPECT_EQ(r.rc, 5);
  EXPECT_NE(r.err.find("failed validation before promotion"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("now marked failed"), std::string::npos) << r.err;
  EXPECT_EQ(EventCount(), n + 1);  // only the failure
  json rec = json::parse(Ok("--json show risk_model v1.0.0").out);
  EXPECT_EQ(rec["status"], "failed");
  EXPECT_NE(rec["status_reason"].get<std::string>().find("sha256"), std::string::npos);
  EXPECT_EQ(Mr("current risk_model").rc, 3);
}

TEST_F(Cli, ValidatorCommandGuardsPromotionAndRollback) {
  // A validator that "loads the model": fails when the artifact says BROKEN.
  const std::string script = File("check.sh",
                                  "#!/bin/sh\n"
                                  "echo loading \"$1\"\n"
                                  "if grep -q BROKEN \"$1\"; then echo 'prediction is NaN' >&2; "
                                  "exit 3; fi\n"
                                  "echo ok\n");
  ASSERT_EQ(chmod(script.c_str(), 0755), 0);
  WritePolicy("[default]\npaper_trading_hours = \"off\"\n[risk_model]\nvalidator = { command = [\"" +
              script + "\"], timeout_seconds = 5 }\n");
  Register("risk_model", "v1.0.0", 1.5, 0.08);
  const std::string broken = File("broken.pkl", "BROKEN weights");
  Ok("register risk_model " + broken + " --version v2.0.0 --metric ic=0.1 --metric sharpe=2");
  Ok("promote risk_model v1.0.0");
  RunResult bad = Mr("promote risk_model v2.0.0");
  EXPECT_EQ(bad.rc, 5);
  EXPECT_NE(bad.err.find("exit code 3"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("prediction is NaN"), std::string::npos) << bad.err;
  EXPECT_EQ(json::parse(Ok("--json current risk_model").out)["production"], "v1.0.0");
  EXPECT_EQ(json::parse(Ok("--json show risk_model v2.0.0").out)["status"], "failed");
  // validate runs the same check on demand.
  RunResult v = Ok("validate risk_model v1.0.0");
  EXPECT_NE(v.out.find("validator passed"), std::string::npos) << v.out;
  // A validator that hangs is killed at its timeout.
  const std::string slow = File("slow.sh", "#!/bin/sh\nsleep 30\n");
  ASSERT_EQ(chmod(slow.c_str(), 0755), 0);
  SetPolicy("[default]\npaper_trading_hours = \"off\"\n[risk_model]\nvalidator = { command = [\"" +
            slow + "\"], timeout_seconds = 1 }\n");
  const auto start = std::chrono::steady_clock::now();
  const json before = json::parse(Ok("--json verify").out);
  RunResult hung = Mr("validate risk_model v1.0.0");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  // A timeout says nothing about the model: exit 4, nothing recorded.
  EXPECT_EQ(hung.rc, 4);
  EXPECT_NE(hung.err.find("timed out after 1 s"), std::string::npos) << hung.err;
  EXPECT_NE(hung.err.find("nothing was recorded"), std::string::npos) << hung.err;
  EXPECT_EQ(json::parse(Ok("--json verify").out)["head_seq"], before["head_seq"]);
  EXPECT_EQ(json::parse(Ok("--json current risk_model").out)["production"], "v1.0.0");
}

// A bad policy file changes nothing: `policy set` names the line (exit 2)
// and appends nothing; the gates stay those of the policy in force.
TEST_F(Cli, BadPolicyFileNamesTheLine) {
  Register("risk_model", "v1.0.0", 1.5, 0.08);
  const std::size_t n = EventCount();
  const std::string before = Ok("--json policy show").out;
  struct Case {
    std::string toml, where, what;
  };
  for (const Case& c : {Case{"[default]\nic = \"> 0.02\"\nsharpe = \">> 0.5\"\n", ":3:", "sharpe"},
                        Case{"[default\n", ":1:", ""},
                        Case{"[Risk_model]\nic = \"> 0.1\"\n", ":1:", "starting with a letter"}}) {
    const std::string file = File("bad.toml", c.toml);
    RunResult r = Mr("--reason 'try' policy set " + file, "admin");
    EXPECT_EQ(r.rc, 2) << c.toml << r.err;
    EXPECT_NE(r.err.find(file + c.where), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(c.what), std::string::npos) << r.err;
    EXPECT_EQ(Lines(r.err).size(), 1u) << r.err;
  }
  EXPECT_EQ(EventCount(), n);
  EXPECT_EQ(Ok("--json policy show").out, before);
  // Without --reason: refused too, nothing written.
  RunResult no_reason = Mr("policy set " + File("ok.toml", "[default]\n"), "admin");
  EXPECT_EQ(no_reason.rc, 2);
  EXPECT_NE(no_reason.err.find("needs --reason"), std::string::npos) << no_reason.err;
  EXPECT_EQ(EventCount(), n);
  Ok("promote risk_model v1.0.0");  // still the adopted policy: passes
}

// A policy.toml that does not parse, before it was ever adopted: not
// adopted, and the promotion stops naming its line, as it always did.
TEST_F(Cli, BadPolicyTomlIsNotAdopted) {
  WritePolicy("[default]\nic = \"> 0.02\"\nsharpe = \">> 0.5\"\n");
  RunResult reg = Mr("register risk_model " + File("m.pkl", "m") +
                     " --version v1.0.0 --metric ic=0.05 --metric sharpe=1");
  EXPECT_EQ(reg.rc, 0) << reg.err;
  EXPECT_NE(reg.err.find("policy.toml:3:"), std::string::npos) << reg.err;
  EXPECT_NE(reg.err.find("not adopted"), std::string::npos) << reg.err;
  RunResult r = Mr("promote risk_model v1.0.0");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("policy.toml:3:"), std::string::npos) << r.err;
  EXPECT_EQ(EventCount(), 1u) << "only the registration";
  EXPECT_NE(r.err.find("sharpe"), std::string::npos) << r.err;
  WritePolicy("[default\n");
  RunResult syntax = Mr("promote risk_model v1.0.0");
  EXPECT_EQ(syntax.rc, 2);
  EXPECT_NE(syntax.err.find("policy.toml:1:"), std::string::npos) << syntax.err;
  WritePolicy("[Risk_Model]\nic = \"> 0.1\"\n");
  RunResult unknown = Mr("promote risk_model v1.0.0");
  EXPECT_EQ(unknown.rc, 2);
  EXPECT_NE(unknown.err.find("model name section"), std::string::npos) << unknown.err;
  EXPECT_EQ(json::parse(Ok("--json show risk_model v1.0.0").out)["status"], "staged");
}

TEST_F(Cli, DatasetCompatibility) {
  Register("risk_model", "v1.0.0", 1.5, 0.08);  // trained on crsp v1.2.3
  RunResult same = Ok("compat risk_model v1.0.0 --current crsp=v1.2.3 --current taq=v9");
  EXPECT_NE(same.out.find("compatible"), std::string::npos);
  RunResult drift = Mr("compat risk_model v1.0.0 --current crsp=v1.2.4");
  EXPECT_EQ(drift.rc, 8);
  EXPECT_NE(drift.out.find("crsp: model trained on v1.2.3, current is v1.2.4"),
            std::string::npos)
      << drift.out;
  RunResult warn = RunCmd("STRICT_VERSION_MODE=false " + Bin() + " --root " + Root() +
                          " compat risk_model v1.0.0 --current crsp=v1.2.4");
  EXPECT_EQ(warn.rc, 9);
  EXPECT_NE(warn.out.find("warn"), std::string::npos) << warn.out;
  const std::string cur = File("current.json", R"({"compustat": "v1.0.1"})");
  RunResult missing = Mr("--json compat risk_model v1.0.0 --no-strict --current-file " + cur);
  EXPECT_EQ(missing.rc, 8);  // missing blocks even when not strict
  json j = json::parse(missing.out);
  EXPECT_EQ(j["level"], "missing");
  EXPECT_EQ(j["verdict"], "blocked");
  // As a promotion gate.
  File("reg/datasets.json", R"({"crsp": "v1.2.4"})");
  SetPolicy("[default]\npaper_trading_hours = \"off\"\n"
            "compatibility = { current_versions_file = \"datasets.json\", strict = true }\n");
  RunResult gated = Mr("promote risk_model v1.0.0");
  EXPECT_EQ(gated.rc, 8);
  EXPECT_NE(gated.err.find("dataset_compatibility: crsp: model trained on v1.2.3"),
            std::string::npos)
      << gated.err;
  File("reg/datasets.json", R"({"crsp": "v1.2.3"})");
  Ok("promote risk_model v1.0.0");
}

TEST_F(Cli, ReplayRebuildReproducesTheDigestAndRepairsProjections) {
  Register("risk_model", "v1.0.0", 1.5, 0.08);
  Register("risk_model", "v1.1.0", 1.6, 0.09);
  Ok("promote risk_model v1.0.0");
  Ok("promote risk_model v1.1.0");
  Ok("rollback risk_model --fail --reason bad");
  const std::string replay = testing::EnvOr("MODELREG_REPLAY_BIN", "modelreg-replay");
  const std::string r = replay + " --root " + Root();
  RunResult before = RunCmd(r + " --json verify");
  ASSERT_EQ(before.rc, 0) << before.err;
  const std::string digest = json::parse(before.out)["state_digest"];

  RunResult rebuilt = RunCmd(r + " --json rebuild");
  ASSERT_EQ(rebuilt.rc, 0) << rebuilt.err;
  json rj = json::parse(rebuilt.out);
  EXPECT_EQ(rj["digest_after"], digest);  // the inline projections equal a fresh fold
  EXPECT_EQ(rj["digest_before"], digest);
  EXPECT_EQ(rj["unchanged"], true);
  EXPECT_EQ(rebuilt.err, "") << "no progress with --json";
  RunResult logged = RunCmd(r + " rebuild");
  ASSERT_EQ(logged.rc, 0) << logged.err;
  EXPECT_NE(logged.err.find("rebuild: 12/12 steps (verify, fold)"), std::string::npos)
      << logged.err;  // 6 events (the adopted policy and 5 commands), 2 steps each
  // The other long commands show progress on a terminal only: nothing here.
  EXPECT_EQ(RunCmd(r + " verify").err, "");

  // A damaged projection row: verify says so (exit 10), rebuild repairs it.
  testing::RawPut(Root() + "/registry", "projection", "p/risk_model",
                  [](std::string) { return std::string("v1.1.0"); });
  RunResult damaged = RunCmd(r + " verify");
  EXPECT_EQ(damaged.rc, 10);
  EXPECT_NE(damaged.err.find("differs from the fold of the log"), std::string::npos);
  RunResult repaired = RunCmd(r + " rebuild");
  EXPECT_EQ(repaired.rc, 0) << repaired.err;
  EXPECT_NE(repaired.out.find("differed"), std::string::npos) << repaired.out;
  EXPECT_EQ(RunCmd(r + " verify").rc, 0);
  EXPECT_EQ(json::parse(Ok("--json current risk_model").out)["production"], "v1.0.0");
}

TEST_F(Cli, ReplayRebuildRefusesABrokenChain) {
  Register("risk_model", "v1.0.0", 1.5, 0.08);
  Ok("promote risk_model v1.0.0 --reason 'weekly retrain'");
  testing::RawPut(Root() + "/registry", "events", Be64(kPolicyEvents + 2), [](std::string v) {
    const auto pos = v.find("weekly");
    EXPECT_NE(pos, std::string::npos);
    if (pos != std::string::npos) v[pos] = 'W';
    return v;
  });
  const std::string r = testing::EnvOr("MODELREG_REPLAY_BIN", "modelreg-replay") + " --root " +
                        Root();
  RunResult rebuild = RunCmd(r + " rebuild");
  EXPECT_EQ(rebuild.rc, 5);
  EXPECT_NE(rebuild.err.find("hash chain broken at event 3"), std::string::npos) << rebuild.err;
  EXPECT_NE(rebuild.err.find("nothing was rebuilt"), std::string::npos);
  RunResult verify = RunCmd(r + " verify");
  EXPECT_EQ(verify.rc, 5);
}

TEST_F(Cli, KilledRebuildLeavesCorrectProjections) {
  for (int i = 0; i < 12; ++i) {
    Register("alpha_weights", "v1." + std::to_string(i) + ".0", 1.5, 0.08);
    Ok("promote alpha_weights v1." + std::to_string(i) + ".0");
  }
  const std::string replay = testing::EnvOr("MODELREG_REPLAY_BIN", "modelreg-replay");
  const std::string digest =
      json::parse(RunCmd(replay + " --root " + Root() + " --json verify").out)["state_digest"];
  for (int round = 0; round < 8; ++round) {
    testing::Child child({"/bin/sh", "-c", "exec " + replay + " --root " + Root() + " rebuild"});
    child.ReadFor(2 + round * 7);
    child.Kill();
    // Whatever moment it died at, queries answer from a complete projection
    // or from the log itself, never from half-written rows.
    EXPECT_EQ(json::parse(Ok("--json current alpha_weights").out)["production"], "v1.11.0");
    EXPECT_EQ(json::parse(Ok("--json show alpha_weights v1.3.0 --at 2100-01-01").out)["status"],
              "archived");
    EXPECT_EQ(json::parse(Ok("--json list alpha_weights --at 2100-01-01").out)["versions"].size(), 12u);
    RunResult v = RunCmd(replay + " --root " + Root() + " --json verify");
    if (v.rc != 0) {
      // Killed between the first and the last batch: verify says the
      // projection is incomplete (no marker row), and the state digest it
      // reports is still the log's.
      EXPECT_EQ(v.rc, 10) << "round " << round << ": " << v.err;
      EXPECT_NE(v.err.find("incomplete"), std::string::npos) << v.err;
    }
    EXPECT_EQ(json::parse(v.out)["state_digest"], digest);
  }
  // The next run ends with correct projections.
  RunResult rebuilt = RunCmd(replay + " --root " + Root() + " rebuild");
  ASSERT_EQ(rebuilt.rc, 0) << rebuilt.err;
  RunResult v = RunCmd(replay + " --root " + Root() + " --json verify");
  ASSERT_EQ(v.rc, 0) << v.err;
  EXPECT_EQ(json::parse(v.out)["state_digest"], digest);
}

TEST_F(Cli, ExportImportRoundTripAndDamagedFiles) {
  Register("risk_model", "v1.0.0", 1.5, 0.08);
  Register("alpha_weights", "v1.0.0", 1.5, 0.08);
  Ok("promote risk_model v1.0.0 --reason first");
  Ok("validate alpha_weights v1.0.0");
  const std::string replay = testing::EnvOr("MODELREG_REPLAY_BIN", "modelreg-replay");
  const std::string file = dir_.sub("log.jsonl");
  RunResult exp = RunCmd(replay + " --root " + Root() + " export --to " + file);
  ASSERT_EQ(exp.rc, 0) << exp.err;
  json original = json::parse(RunCmd(replay + " --root " + Root() + " --json verify").out);

  const std::string copy = dir_.sub("copy");
  RunResult imp = RunCmd(replay + " --json import " + file + " --to " + copy);
  ASSERT_EQ(imp.rc, 0) << imp.err;
  json ij = json::parse(imp.out);
  EXPECT_EQ(ij["events"], original["events"]);
  EXPECT_EQ(ij["head_hash"], original["head_hash"]);        // the same hashes
  EXPECT_EQ(ij["state_digest"], original["state_digest"]);  // the same state
  EXPECT_EQ(RunCmd(Bin() + " --root " + copy + " events --json").out, Ok("events --json").out);
  EXPECT_EQ(json::parse(RunCmd(Bin() + " --root " + copy + " --json current risk_model").out)
                ["production"],
            "v1.0.0");
  // Importing over an existing registry is refused.
  EXPECT_EQ(RunCmd(replay + " import " + file + " --to " + copy).rc, 4);

  const std::string text = testing::Slurp(file);
  auto lines = Lines(text);
  ASSERT_EQ(lines.size(), kPolicyEvents + 6);  // header, the adopted policy, 4 events, trailer
  struct Damage {
    std::string name;
    std::string content;
    std::string message;
  };
  std::string flipped = lines[2];
  const auto pos = flipped.find("\"event\":\"") + 40;
  flipped[pos] = flipped[pos] == 'A' ? 'B' : 'A';
  std::string joined_flip, joined_no_trailer, joined_swap;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    joined_flip += (i == 2 ? flipped : lines[i]) + "\n";
    if (i + 1 < lines.size()) joined_no_trailer += lines[i] + "\n";
  }
  joined_swap = lines[0] + "\n" + lines[2] + "\n" + lines[1] + "\n";
  for (std::size_t i = 3; i < lines.size(); ++i) joined_swap += lines[i] + "\n";
  for (const Damage& d : std::vector<Damage>{
           {"flipped", joined_flip, "line 3"},
           {"truncated", joined_no_trailer, "without its trailer"},
           {"reordered", joined_swap, "expected event 1"},
           {"garbage", "hello\n", "not a modelreg export"},
           {"deep", lines[0] + "\n" + std::string(100000, '[') + std::string(100000, ']') + "\n",
            "line 2: the line nests deeper than 64 levels"},
       }) {
    const std::string damaged = File(d.name + ".jsonl", d.content);
    const std::string target = dir_.sub("import-" + d.name);
    RunResult r = RunCmd(replay + " import " + damaged + " --to " + target);
    EXPECT_EQ(r.rc, 2) << d.name << ": " << r.err;
    EXPECT_NE(r.err.find(d.message), std::string::npos) << d.name << ": " << r.err;
    EXPECT_NE(r.err.find("nothing was imported"), std::string::npos) << d.name << ": " << r.err;
    EXPECT_FALSE(fs::exists(target)) << d.name;  // nothing written
  }
}

TEST_F(Cli, DiffAndMaterializeAnInstant) {
  Register("risk_model", "v1.0.0", 1.5, 0.08);
  Register("risk_model", "v1.1.0", 1.6, 0.09);
  Ok("promote risk_model v1.0.0", "alice");
  Tick();
  const std::string t1 = Now();
  Tick();
  Ok("promote risk_model v1.1.0", "bob");
  Ok("fail risk_model v1.0.0 --reason 'found a bug'", "carol");
  Tick();
  const std::string t2 = Now();

  json d = json::parse(Ok("--json diff --from " + t1 + " --to " + t2).out);
  EXPECT_EQ(d["production"]["risk_model"]["from"], "v1.0.0");
  EXPECT_EQ(d["production"]["risk_model"]["to"], "v1.1.0");
  EXPECT_TRUE(d["production"]["alpha_weights"]["to"].is_null());
  ASSERT_EQ(d["events"].size(), 2u);
  EXPECT_EQ(d["events"][0]["actor"], "bob");
  EXPECT_EQ(d["events"][1]["type"], "ModelFailed");
  RunResult text = Ok("diff --from " + t1 + " --to " + t2);
  EXPECT_NE(text.out.find("risk_model: v1.0.0 -> v1.1.0"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("carol failed risk_model v1.0.0: found a bug"), std::string::npos);
  EXPECT_EQ(Mr("diff --from " + t2 + " --to " + t1).rc, 2);

  const std::string replay = testing::EnvOr("MODELREG_REPLAY_BIN", "modelreg-replay");
  const std::string copy = dir_.sub("forensics");
  RunResult m = RunCmd(replay + " --root " + Root() + " --json materialize --at " + t1 + " --to " +
                       copy);
  ASSERT_EQ(m.rc, 0) << m.err;
  EXPECT_EQ(json::parse(m.out)["events"], kPolicyEvents + 3);
  // Every normal command works on it, and it says what was true at t1.
  const std::string c = Bin() + " --root " + copy;
  EXPECT_EQ(json::parse(RunCmd(c + " --json current risk_model").out)["production"], "v1.0.0");
  EXPECT_EQ(json::parse(RunCmd(c + " --json show risk_model v1.0.0").out)["status"],
            "production");
  EXPECT_EQ(RunCmd(c + " verify").rc, 0);
  EXPECT_EQ(RunCmd(c + " validate risk_model v1.1.0").rc, 0);  // artifacts came along
  EXPECT_EQ(RunCmd(replay + " --root " + Root() + " materialize --at " + t1 + " --to " + copy).rc,
            4);  // never over an existing registry
}

TEST_F(Cli, WatchFollowsPromotionsAndConsumersShowsWhatRuns) {
  Register("risk_model", "v1.0.0", 1.5, 0.08);
  Register("risk_model", "v1.1.0", 1.5, 0.08);
  Ok("promote risk_model v1.0.0");
  auto said = [](testing::Child& c) {
    std::string all;
    for (const auto& l : c.Lines()) all += "\n  | " + l;
    return all;
  };
  // Generous: each step is a poll (20 ms) plus a process start or a short
  // writable open, but CI runs two suites at once on two cores.
  auto wait_line = [](testing::Child& c, const std::string& needle) {
    for (int i = 0; i < 300; ++i) {
      for (const auto& l : c.Lines()) {
        if (l.find(needle) != std::string::npos) return true;
      }
      c.ReadFor(100);
    }
    return false;
  };
  testing::Child watch({"/bin/sh", "-c", "exec " + Bin() + " --root " + Root() +
                                             " watch risk_model --consumer svc-a --exit-after 60"});
  ASSERT_TRUE(wait_line(watch, "loaded risk_model v1.0.0")) << "watch said:" << said(watch);
  ASSERT_TRUE(wait_line(watch, "watching risk_model as svc-a")) << "watch said:" << said(watch);
  // A service with other dataset versions refuses every version and says so.
  testing::Child picky({"/bin/sh", "-c", "exec " + Bin() + " --root " + Root() +
                                             " watch risk_model --consumer svc-b --dataset crsp=v9.9.9 --exit-after 60"});
  ASSERT_TRUE(wait_line(picky, "watching risk_model as svc-b")) << "picky said:" << said(picky);
  Ok("promote risk_model v1.1.0");
  ASSERT_TRUE(wait_line(watch, "loaded risk_model v1.1.0")) << "watch said:" << said(watch);
  ASSERT_TRUE(wait_line(picky, "not compatible")) << "picky said:" << said(picky);
  // The registry knows who runs what.
  json consumers;
  // Polled (a brief pause between looks) until both acknowledgements are
  // recorded, for up to 30 s.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < until) {
    consumers = json::parse(Ok("--json consumers risk_model").out);
    // Both acknowledgements of the promotion land asynchronously: svc-a's
    // load of v1.1.0 and svc-b's refusal of it (its earlier refusal of
    // v1.0.0 may be all that is recorded yet).
    bool a_done = false;
    bool b_done = false;
    for (const auto& c : consumers["consumers"]) {
      a_done = a_done || (c["consumer_id"] == "svc-a" && c["version"] == "v1.1.0");
      b_done = b_done || (c["consumer_id"] == "svc-b" && c["attempted_version"] == "v1.1.0");
    }
    if (a_done && b_done) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(consumers["production"], "v1.1.0");
  ASSERT_EQ(consumers["consumers"].size(), 2u) << consumers.dump();
  for (const auto& c : consumers["consumers"]) {
    if (c["consumer_id"] == "svc-a") {
      EXPECT_EQ(c["version"], "v1.1.0");
      EXPECT_TRUE(c["current"].get<bool>());
    } else {
      EXPECT_TRUE(c["version"].is_null()) << c.dump();  // it never loaded anything
      EXPECT_FALSE(c["current"].get<bool>());
      EXPECT_FALSE(c["ok"].get<bool>());
      EXPECT_EQ(c["attempted_version"], "v1.1.0");
    }
  }
  const std::string text = Ok("consumers risk_model").out;
  EXPECT_NE(text.find("svc-b: runs nothing, BEHIND"), std::string::npos) << text;
  EXPECT_NE(text.find("not compatible"), std::string::npos) << text;
  EXPECT_EQ(watch.SignalAndWait(SIGTERM), 0);
  EXPECT_EQ(picky.SignalAndWait(SIGINT), 0);
  EXPECT_EQ(Ok("verify").rc, 0);
}

// The cron line of docs/runbook.md, exactly as written, pointed at a
// temporary registry and log.
TEST_F(Cli, RunbookCronLineBacksUpAndVerifies) {
  const std::string docs = testing::EnvOr("MODELREG_DOCS", "docs");
  std::ifstream in(docs + "/runbook.md");
  ASSERT_TRUE(in) << docs;
  std::string line, cron;
  while (std::getline(in, line)) {
    if (line.rfind("15 2 * * *", 0) == 0) cron = line;
  }
  ASSERT_FALSE(cron.empty()) << "no cron line in the runbook";
  std::string cmd = cron.substr(std::string("15 2 * * *").size());
  auto replace_all = [&cmd](const std::string& from, const std::string& to) {
    for (std::size_t at = cmd.find(from); at != std::string::npos; at = cmd.find(from, at + to.size())) {
      cmd.replace(at, from.size(), to);
    }
  };
  const std::string log = dir_.sub("modelreg-backup.log");
  replace_all("/var/log/modelreg-backup.log", log);
  replace_all("modelreg --root /srv/models", Bin() + " --root " + Root());
  ASSERT_EQ(cmd.find("/srv/"), std::string::npos) << cmd;

  Register("risk_model", "v1.0.0", 1.5, 0.08);
  cmd = "(" + cmd + ")";  // RunCmd adds its own redirections
  RunResult first = RunCmd(cmd);
  ASSERT_EQ(first.rc, 0) << cmd << "\n" << testing::Slurp(log);
  Register("risk_model", "v1.1.0", 1.5, 0.08);
  RunResult second = RunCmd(cmd);
  ASSERT_EQ(second.rc, 0) << testing::Slurp(log);
  const std::string out = testing::Slurp(log);
  EXPECT_NE(out.find("backup 1 OK"), std::string::npos) << out;
  EXPECT_NE(out.find("backup 2 OK"), std::string::npos) << out;  // `latest` is the new one
  // A damaged newest backup makes the line fail, so cron reports it.
  const std::string backed = Root() + "/backups/artifacts/risk_model/v1.1.0/risk_modelv1.1.0.pkl";
  ASSERT_TRUE(fs::exists(backed));
  fs::remove(backed);
  std::ofstream(backed) << "not the model";
  RunResult damaged = RunCmd(Bin() + " --root " + Root() + " backup verify latest");
  EXPECT_EQ(damaged.rc, 5) << damaged.err;
  EXPECT_EQ(Mr("backup verify 0").rc, 2);
  EXPECT_EQ(Mr("backup verify newest").rc, 2);
}

TEST_F(Cli, BackupCreateListVerifyRestore) {
  Register("risk_model", "v1.0.0", 1.5, 0.08);
  Ok("promote risk_model v1.0.0");
  json b1 = json::parse(Ok("--json backup create").out);
  EXPECT_EQ(b1["id"], 1);
  EXPECT_EQ(b1["artifact_files_linked"], 3);  // artifact, metadata.json, checksum.sha256
  Register("risk_model", "v1.1.0", 1.6, 0.09);
  json b2 = json::parse(Ok("--json backup create").out);
  EXPECT_EQ(b2["artifact_files_linked"], 3);  // only the new version's files
  json list = json::parse(Ok("--json backup list").out);
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]["head_seq"], kPolicyEvents + 2);
  EXPECT_EQ(list[1]["head_seq"], kPolicyEvents + 3);
  EXPECT_NE(Ok("backup verify 2").out.find("backup 2 OK"), std::string::npos);

  // Disaster: the database is lost. Restore the latest backup elsewhere.
  const std::string original_digest = json::parse(Ok("--json verify").out)["state_digest"];
  fs::remove_all(Root() + "/registry");
  EXPECT_EQ(Mr("list").rc, 3);
  const std::string restored = dir_.sub("restored");
  json r = json::parse(Ok("--json backup restore 2 --to " + restored).out);
  EXPECT_EQ(r["state_digest"], original_digest);
  const std::string c = Bin() + " --root " + restored;
  EXPECT_EQ(RunCmd(c + " verify").rc, 0);
  EXPECT_EQ(RunCmd(c + " validate risk_model v1.1.0").rc, 0);
  EXPECT_EQ(json::parse(RunCmd(c + " --json current risk_model").out)["production"], "v1.0.0");
  // Restoring over something, or a backup that does not exist: refused.
  EXPECT_EQ(Mr("backup restore 2 --to " + restored).rc, 4);
  EXPECT_EQ(Mr("backup restore 9 --to " + dir_.sub("nine")).rc, 3);

  // A damaged backup is found by verify.
  const std::string backed = Root() + "/backups/artifacts/risk_model/v1.0.0/risk_modelv1.0.0.pkl";
  fs::remove(backed);
  std::ofstream(backed) << "not the model";
  RunResult bad = Mr("backup verify 1");
  EXPECT_EQ(bad.rc, 5);
  EXPECT_NE(bad.err.find("missing or altered"), std::string::npos) << bad.err;
}

// --- the gate policy in the log (docs/gates.md) ---

std::string Sha(const std::string& text) { return ToHex(Sha256::Of(text)); }

constexpr char kTestPolicy[] = "[default]\npaper_trading_hours = \"off\"\n";  // Cli::SetUp's

// policy set / show / show --at; the same text again records nothing; a
// threshold change decides the next promotion, whose evidence names the
// policy's hash; audit --at T shows the policy in force at T.
TEST_F(Cli, PolicySetShowAndAsOf) {
  Register("risk_model", "v1.0.0", 1.0, 0.05);
  Register("risk_model", "v1.1.0", 1.0, 0.05);
  json adopted = json::parse(Ok("--json policy show").out);
  EXPECT_EQ(adopted["built_in_defaults"], false);
  EXPECT_EQ(adopted["policy"]["seq"], 1);
  EXPECT_EQ(adopted["policy"]["actor"], "modelreg (adopted policy.toml)");
  EXPECT_EQ(adopted["policy"]["reason"], "adopted from policy.toml on disk");
  EXPECT_EQ(adopted["policy"]["text"], kTestPolicy);
  EXPECT_EQ(adopted["policy"]["sha256"], Sha(kTestPolicy));
  Tick();
  const std::string t_adopted = Now();
  Tick();

  const std::string strict = std::string(kTestPolicy) + "sharpe = \"> 1.5\"\n";
  SetPolicy(strict, "sharpe must exceed 1.5 after the March review");
  Tick();
  const std::string t_strict = Now();
  Tick();
  const RunResult show = Ok("policy show");
  EXPECT_NE(show.out.find("sha256 " + Sha(strict)), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("set by:  admin"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("reason:  sharpe must exceed 1.5 after the March review"),
            std::string::npos)
      << show.out;
  EXPECT_NE(show.out.find("| sharpe = \"> 1.5\""), std::string::npos) << show.out;
  json now = json::parse(Ok("--json policy show").out);
  EXPECT_EQ(now["policy"]["text"], strict);
  EXPECT_EQ(now["policy"]["actor"], "admin");
  EXPECT_TRUE(now["at"].is_null());
  // As of a time: the last change at or before it; before any, the defaults.
  json then = json::parse(Ok("--json policy show --at " + t_adopted).out);
  EXPECT_EQ(then["policy"]["seq"], 1);
  EXPECT_EQ(then["at"], t_adopted);
  json before_all = json::parse(Ok("--json policy show --at 2000-01-01").out);
  EXPECT_EQ(before_all["built_in_defaults"], true);
  EXPECT_TRUE(before_all["policy"].is_null());
  EXPECT_NE(Ok("policy show --at 2000-01-01").out.find("built-in defaults"), std::string::npos);

  // The same text again: a no-op with a message.
  const std::size_t n = EventCount();
  const std::string same = File("same.toml", strict);
  RunResult again = Ok("--reason 'again' policy set " + same, "admin");
  EXPECT_NE(again.out.find("unchanged"), std::string::npos) << again.out;
  EXPECT_EQ(json::parse(Ok("--json --reason again policy set " + same, "admin").out)["changed"],
            false);
  EXPECT_EQ(EventCount(), n);

  // The next promotion is gated by the new threshold.
  RunResult refused = Mr("promote risk_model v1.0.0");
  EXPECT_EQ(refused.rc, 8) << refused.err;
  EXPECT_NE(refused.err.find("sharpe: 1 is not > 1.5"), std::string::npos) << refused.err;
  json rejected = json::parse(Lines(Ok("--json events").out).back());
  EXPECT_EQ(rejected["type"], "PromotionRejected");
  EXPECT_EQ(rejected["payload"]["policy_sha256"], Sha(strict));
  const std::string loose = std::string(kTestPolicy) + "sharpe = \"> 0.9\"\n";
  SetPolicy(loose, "0.9 is enough");
  Tick();
  const std::string t_loose = Now();
  Ok("promote risk_model v1.0.0");
  json cur = json::parse(Ok("--json current risk_model").out);
  EXPECT_EQ(cur["promotion"]["policy_sha256"], Sha(loose));

  // audit --at T: the policy in force at T, nothing recorded after T.
  for (const auto& [t, text, who] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {t_adopted, kTestPolicy, "modelreg (adopted policy.toml)"},
           {t_strict, strict, "admin"},
           {t_loose, loose, "admin"}}) {
    json a = json::parse(Ok("--json audit --at " + t).out);
    EXPECT_EQ(a["policy"]["text"], text) << t;
    EXPECT_EQ(a["policy"]["sha256"], Sha(text)) << t;
    EXPECT_EQ(a["policy"]["actor"], who) << t;
    EXPECT_LE(a["policy"]["seq"].get<std::uint64_t>(), a["seq"].get<std::uint64_t>()) << t;
    const RunResult at = Ok("audit --at " + t);
    EXPECT_NE(at.out.find("gate policy: sha256 " + Sha(text).substr(0, 12) + " set by " + who),
              std::string::npos)
        << at.out;
  }
  EXPECT_EQ(Ok("audit --at " + t_strict).out.find("| sharpe"), std::string::npos);
  EXPECT_NE(Ok("audit --at " + t_strict + " --policy-text").out.find("| sharpe = \"> 1.5\""),
            std::string::npos);
  EXPECT_TRUE(json::parse(Ok("--json audit --at 2000-01-01").out)["policy"].is_null());
  Ok("verify");
}

// A policy.toml from before is adopted exactly once, with a message on
// stderr; editing it afterwards changes nothing (a warning says so).
TEST_F(Cli, PolicyTomlIsAdoptedOnceWithAMessage) {
  const std::string art = File("m.pkl", "m");
  RunResult first = Ok("register risk_model " + art +
                       " --version v1.0.0 --metric ic=0.05 --metric sharpe=0.4");
  EXPECT_NE(first.err.find("adopted " + Root() + "/policy.toml as the registry's gate policy"),
            std::string::npos)
      << first.err;
  EXPECT_NE(first.err.find("modelreg policy set"), std::string::npos) << first.err;
  RunResult second = Ok("register risk_model " + File("n.pkl", "n") +
                        " --version v1.1.0 --metric ic=0.05 --metric sharpe=0.4");
  EXPECT_EQ(second.err.find("adopted"), std::string::npos) << second.err;
  EXPECT_NE(Ok("events").out.find("#1 "), std::string::npos);
  std::size_t adoptions = 0;
  for (const std::string& line : Lines(Ok("--json events").out)) {
    adoptions += json::parse(line)["type"] == "PolicyChanged" ? 1 : 0;
  }
  EXPECT_EQ(adoptions, 1u);
  // The file edited to switch every gate off: ignored, with a warning.
  WritePolicy("[default]\nic = \"off\"\nsharpe = \"off\"\npaper_trading_hours = \"off\"\n");
  RunResult refused = Mr("promote risk_model v1.0.0");
  EXPECT_EQ(refused.rc, 8) << refused.err;
  EXPECT_NE(refused.err.find("sharpe: 0.4 is not > 0.5"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("is ignored"), std::string::npos) << refused.err;
  RunResult show = Ok("policy show");
  EXPECT_NE(show.err.find("is ignored"), std::string::npos) << show.err;
  EXPECT_EQ(json::parse(Ok("--json policy show").out)["policy"]["text"], kTestPolicy);
}

// The disaster-recovery drill carries the policy: export -> import, backup
// -> restore and materialize --at T each give a registry whose promotions
// are gated by the policy of the log (no policy.toml beside them), not by
// the built-in defaults: a model the defaults would refuse (24 hours of
// paper trading) passes, one the carried threshold refuses is refused.
TEST_F(Cli, PolicyTravelsWithExportImportBackupRestoreAndMaterialize) {
  Register("risk_model", "v1.0.0", 2.0, 0.05);  // passes the carried policy
  Register("risk_model", "v1.1.0", 1.0, 0.05);  // its sharpe is below the carried threshold
  const std::string carried = std::string(kTestPolicy) + "sharpe = \"> 1.5\"\n";
  SetPolicy(carried, "team policy");
  Tick();
  const std::string t = Now();
  const std::string digest = json::parse(Ok("--json verify").out)["state_digest"];
  const std::string replay = testing::EnvOr("MODELREG_REPLAY_BIN", "modelreg-replay");

  const std::string file = dir_.sub("registry.jsonl");
  ASSERT_EQ(RunCmd(replay + " --root " + Root() + " export --to " + file).rc, 0);
  const std::string imported = dir_.sub("imported");
  RunResult imp = RunCmd(replay + " --json import " + file + " --to " + imported);
  ASSERT_EQ(imp.rc, 0) << imp.err;
  EXPECT_EQ(json::parse(imp.out)["state_digest"], digest);
  fs::copy(Root() + "/artifacts", imported + "/artifacts", fs::copy_options::recursive);

  Ok("backup create");
  const std::string restored = dir_.sub("restored");
  EXPECT_EQ(json::parse(Ok("--json backup restore 1 --to " + restored).out)["state_digest"],
            digest);

  const std::string materialized = dir_.sub("materialized");
  RunResult m = RunCmd(replay + " --root " + Root() + " --json materialize --at " + t + " --to " +
                       materialized);
  ASSERT_EQ(m.rc, 0) << m.err;

  for (const std::string& copy : {imported, restored, materialized}) {
    SCOPED_TRACE(copy);
    ASSERT_FALSE(fs::exists(copy + "/policy.toml"));
    const std::string c = "MODELREG_ACTOR=dr " + Bin() + " --root " + copy;
    json shown = json::parse(RunCmd(c + " --json policy show").out);
    EXPECT_EQ(shown["policy"]["text"], carried);
    EXPECT_EQ(shown["policy"]["reason"], "team policy");
    RunResult weak = RunCmd(c + " promote risk_model v1.1.0");
    EXPECT_EQ(weak.rc, 8) << weak.err;
    EXPECT_NE(weak.err.find("sharpe: 1 is not > 1.5"), std::string::npos) << weak.err;
    EXPECT_EQ(weak.err.find("paper_trading_hours"), std::string::npos) << weak.err;
    RunResult strong = RunCmd(c + " promote risk_model v1.0.0");
    EXPECT_EQ(strong.rc, 0) << strong.err;
    json cur = json::parse(RunCmd(c + " --json current risk_model").out);
    EXPECT_EQ(cur["promotion"]["policy_sha256"], Sha(carried));
    EXPECT_EQ(RunCmd(c + " verify").rc, 0);
  }
}

TEST_F(Cli, GarbageCollection) {
  for (int i = 1; i <= 5; ++i) {
    Register("risk_model", "v" + std::to_string(i) + ".0.0", 1.5, 0.08);
    Ok("promote risk_model v" + std::to_string(i) + ".0.0");
  }
  Register("risk_model", "v6.0.0", 1.5, 0.08);
  Ok("archive risk_model v6.0.0 --reason 'never used'");
  // Leftovers of interrupted registrations.
  fs::create_directories(Root() + "/artifacts/risk_model/.staging-0123456789abcdef");
  std::ofstream(Root() + "/artifacts/risk_model/.staging-0123456789abcdef/model.pkl") << "half";
  fs::create_directories(Root() + "/artifacts/risk_model/v9.9.9");
  std::ofstream(Root() + "/artifacts/risk_model/v9.9.9/model.pkl") << "orphan";
  const auto tree = ArtifactTree();
  const std::size_t n = EventCount();

  // Default retention: versions that were in production are kept a year.
  json safe = json::parse(Ok("--json gc --dry-run --keep 0").out);
  std::vector<std::string> paths;
  for (const auto& item : safe["items"]) paths.push_back(item["path"]);
  EXPECT_EQ(safe["items"].size(), 3u) << safe.dump();  // v6.0.0 (never live) + 2 orphans

  // Without retention, keeping 1: v4 is the rollback target, v6 the newest
  // kept, v5 production; v1..v3 go.
  RunResult dry = Ok("gc --dry-run --keep 1 --retention-days 0");
  EXPECT_NE(dry.out.find("would delete"), std::string::npos);
  EXPECT_NE(dry.out.find("nothing changed"), std::string::npos);
  EXPECT_EQ(ArtifactTree(), tree);
  EXPECT_EQ(EventCount(), n);
  json real = json::parse(Ok("--json gc --keep 1 --retention-days 0", "janitor").out);
  std::set<std::string> versions;
  for (const auto& item : real["items"]) {
    if (!item["version"].is_null()) versions.insert(item["version"]);
  }
  EXPECT_EQ(versions, (std::set<std::string>{"v1.0.0", "v2.0.0", "v3.0.0"}));
  EXPECT_EQ(EventCount(), n + 3);
  json last = json::parse(Lines(Ok("--json events").out).back());
  EXPECT_EQ(last["type"], "ArtifactPurged");
  EXPECT_EQ(last["actor"], "janitor");
  const std::string v1 = Root() + "/artifacts/risk_model/v1.0.0";
  EXPECT_FALSE(fs::exists(v1 + "/risk_modelv1.0.0.pkl"));
  EXPECT_TRUE(fs::exists(v1 + "/metadata.json"));  // the audit trail stays
  EXPECT_FALSE(fs::exists(Root() + "/artifacts/risk_model/v9.9.9"));
  EXPECT_FALSE(fs::exists(Root() + "/artifacts/risk_model/.staging-0123456789abcdef"));
  EXPECT_TRUE(fs::exists(Root() + "/artifacts/risk_model/v4.0.0/risk_modelv4.0.0.pkl"));
  EXPECT_EQ(Mr("promote risk_model v1.0.0").rc, 4);  // purged: cannot come back
  Ok("rollback risk_model");                           // v4 can
  EXPECT_TRUE(json::parse(Ok("--json show risk_model v2.0.0").out)["purged"]);
  Ok("verify");
}

}  // namespace
}  // namespace modelreg
