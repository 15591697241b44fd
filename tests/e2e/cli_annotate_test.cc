// End-to-end (issue 16, "what we learn after registration"), the real
// modelreg binary on real registries: annotate sets tags, a description
// and late metrics; show/current/list show them and show --at shows them
// as they were; gates use a late metric; every bad input appends nothing.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/run.h"
#include "support/temp_dir.h"

namespace modelreg {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::RunCmd;
using testing::Has;
using testing::RunResult;

class AnnotateCli : public ::testing::Test {
 protected:
  std::string Bin() const { return testing::EnvOr("MODELREG_BIN", "modelreg"); }
  // Only a hit_rate gate (a metric paper trading reports days later).
  void SetUp() override {
    fs::create_directories(root_);
    std::ofstream(root_ + "/policy.toml")
        << "[default]\nic = \"off\"\nsharpe = \"off\"\npaper_trading_hours = \"off\"\n"
           "hit_rate = \"> 0.5\"\n";
  }
  RunResult Mr(const std::string& args, const std::string& actor = "alice") const {
    return RunCmd("MODELREG_ACTOR=" + actor + " " + Bin() + " --root " + root_ + " " + args);
  }
  RunResult Ok(const std::string& args, const std::string& actor = "alice") const {
    RunResult r = Mr(args, actor);
    EXPECT_EQ(r.rc, 0) << args << "\n" << r.err;
    return r;
  }
  json Json(const std::string& args, const std::string& actor = "alice") const {
    RunResult r = Ok("--json " + args, actor);
    json j = json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << args << ": " << r.out;
    return j;
  }
  void Register(const std::string& type, const std::string& version,
                const std::string& metrics = "--metric hit_rate=0.4") const {
    const std::string art = dir_.sub(type + version + ".pkl");
    std::ofstream(art) << "weights " << type << version;
    Ok("register " + type + " " + art + " --version " + version + " " + metrics);
  }
  json Events() const {
    json all = json::array();
    std::istringstream in(Ok("--json events").out);
    for (std::string line; std::getline(in, line);) all.push_back(json::parse(line));
    return all;
  }
  std::size_t EventCount() const { return Events().size(); }
  // recorded_at of the last event: an instant to ask --at about.
  std::string LastEventTime() const { return Events().back()["recorded_at"]; }

  testing::TempDir dir_;
  std::string root_ = dir_.sub("reg");
};

TEST_F(AnnotateCli, TagsDescriptionAndLateMetricsWithWhereTheyCameFrom) {
  Register("alpha_momentum", "v1.0.0");
  const json reply = Json(
      "annotate alpha_momentum v1.0.0 --tag desk=equities --tag 'owner=quant team' "
      "--description 'momentum on 12-1 returns' --metric hit_rate=0.56 --metric pnl_usd=12500.5 "
      "--source paper-trading --reason 'two weeks of paper trading'");
  ASSERT_TRUE(reply["seq"].is_number()) << reply;
  EXPECT_TRUE(Has(reply["summary"], "annotated alpha_momentum v1.0.0")) << reply;

  const json show = Json("show alpha_momentum v1.0.0");
  const json& a = show["annotations"];
  EXPECT_EQ(a["tags"], json({{"desk", "equities"}, {"owner", "quant team"}}));
  EXPECT_EQ(a["description"], "momentum on 12-1 returns");
  EXPECT_EQ(a["metrics"]["hit_rate"]["value"], 0.56);
  EXPECT_EQ(a["metrics"]["hit_rate"]["source"], "paper-trading");
  EXPECT_EQ(a["metrics"]["hit_rate"]["actor"], "alice");
  EXPECT_EQ(a["metrics"]["hit_rate"]["seq"], reply["seq"]);
  EXPECT_EQ(a["metrics"]["pnl_usd"]["value"], 12500.5);
  // The registration never changes; the effective metrics override it.
  EXPECT_EQ(show["metrics"]["hit_rate"], 0.4);
  EXPECT_EQ(show["registration"]["metrics"]["hit_rate"], 0.4);
  EXPECT_EQ(show["effective_metrics"]["hit_rate"], 0.56);
  EXPECT_EQ(show["effective_metrics"]["pnl_usd"], 12500.5);

  const std::string text = Ok("show alpha_momentum v1.0.0").out;
  EXPECT_TRUE(Has(text, "tags:          desk=equities, owner=quant team")) << text;
  EXPECT_TRUE(Has(text, "description:   momentum on 12-1 returns")) << text;
  EXPECT_TRUE(Has(text, "late metric:   hit_rate=0.56 (source paper-trading, by alice at "))
      << text;

  // The event in the log.
  const json last = Events().back();
  EXPECT_EQ(last["type"], "ModelAnnotated");
  EXPECT_EQ(last["payload"]["set_tags"]["desk"], "equities");
  EXPECT_EQ(last["payload"]["source"], "paper-trading");
  EXPECT_EQ(last["payload"]["reason"], "two weeks of paper trading");
  EXPECT_TRUE(Has(Ok("events").out, "annotated alpha_momentum v1.0.0 (tag desk=equities"));

  // Later: untag, clear the description, a newer metric value wins.
  Json("annotate alpha_momentum v1.0.0 --untag owner --description '' --metric hit_rate=0.58 "
       "--source paper-trading --reason 'week three'",
       "bob");
  const json after = Json("show alpha_momentum v1.0.0")["annotations"];
  EXPECT_EQ(after["tags"], json({{"desk", "equities"}}));
  EXPECT_TRUE(after["description"].is_null());
  EXPECT_EQ(after["metrics"]["hit_rate"]["value"], 0.58);
  EXPECT_EQ(after["metrics"]["hit_rate"]["actor"], "bob");
  EXPECT_EQ(after["metrics"]["pnl_usd"]["value"], 12500.5);  // untouched
  Ok("verify");
}

TEST_F(AnnotateCli, ShowAtGivesTheAnnotationsAsTheyWere) {
  Register("risk_model", "v1.0.0");
  const std::string t_registered = LastEventTime();
  Ok("annotate risk_model v1.0.0 --tag stage=paper --reason 'paper trading starts'");
  const std::string t_first = LastEventTime();
  Ok("annotate risk_model v1.0.0 --tag stage=live --metric hit_rate=0.6 --source paper-trading "
     "--reason 'went well'");

  const json before = Json("show risk_model v1.0.0 --at " + t_registered)["annotations"];
  EXPECT_EQ(before["tags"], json::object());
  EXPECT_TRUE(before["seq"].is_null());
  EXPECT_EQ(before["metrics"], json::object());
  const json first = Json("show risk_model v1.0.0 --at " + t_first)["annotations"];
  EXPECT_EQ(first["tags"], json({{"stage", "paper"}}));
  EXPECT_EQ(first["metrics"], json::object());
  const json now = Json("show risk_model v1.0.0")["annotations"];
  EXPECT_EQ(now["tags"], json({{"stage", "live"}}));
  EXPECT_EQ(now["metrics"]["hit_rate"]["value"], 0.6);

  // list --tag at an instant, and now.
  auto versions = [this](const std::string& args) {
    std::vector<std::string> out;
    const json list = Json("list " + args);
    for (const json& v : list["versions"]) out.push_back(v["version"]);
    return out;
  };
  EXPECT_EQ(versions("--tag stage=paper --at " + t_first), std::vector<std::string>{"v1.0.0"});
  EXPECT_TRUE(versions("--tag stage=paper").empty());
  EXPECT_TRUE(versions("--tag stage=live --at " + t_first).empty());
  EXPECT_EQ(versions("--tag stage=live"), std::vector<std::string>{"v1.0.0"});
}

TEST_F(AnnotateCli, ListFiltersByEveryTagGiven) {
  Register("alpha_value", "v1.0.0");
  Register("alpha_value", "v1.1.0");
  Register("risk_model", "v2.0.0");
  Ok("annotate alpha_value v1.0.0 --tag desk=eq --tag region=us --reason r");
  Ok("annotate alpha_value v1.1.0 --tag desk=eq --tag region=eu --reason r");
  Ok("annotate risk_model v2.0.0 --tag desk=eq --reason r");
  auto versions = [this](const std::string& args) {
    std::vector<std::string> out;
    const json list = Json("list " + args);
    for (const json& v : list["versions"]) {
      out.push_back(v["model_type"].get<std::string>() + " " + v["version"].get<std::string>());
    }
    return out;
  };
  EXPECT_EQ(versions("--tag desk=eq").size(), 3u);
  EXPECT_EQ(versions("--tag desk=eq --tag region=eu"),
            std::vector<std::string>{"alpha_value v1.1.0"});
  EXPECT_EQ(versions("alpha_value --tag region=us"),
            std::vector<std::string>{"alpha_value v1.0.0"});
  EXPECT_TRUE(versions("--tag desk=fx").empty());
  // The text table lists the same rows.
  const std::string table = Ok("list --tag region=eu").out;
  EXPECT_TRUE(Has(table, "v1.1.0")) << table;
  EXPECT_FALSE(Has(table, "v1.0.0")) << table;
  RunResult bad = Mr("list --tag 'bad key=x'");
  EXPECT_EQ(bad.rc, 2);
  EXPECT_TRUE(Has(bad.err, "tag key 'bad key' is not valid")) << bad.err;
}

TEST_F(AnnotateCli, GatesUseTheLatestAnnotatedMetric) {
  Register("alpha_momentum", "v1.0.0");  // hit_rate 0.4 at registration
  RunResult refused = Mr("promote alpha_momentum v1.0.0 --reason 'try'");
  EXPECT_EQ(refused.rc, 8) << refused.err;
  EXPECT_TRUE(Has(refused.err, "hit_rate: 0.4 is not > 0.5")) << refused.err;

  const json a = Json("annotate alpha_momentum v1.0.0 --metric hit_rate=0.56 --source "
                      "paper-trading --reason 'paper trading, 10 days'");
  Ok("promote alpha_momentum v1.0.0 --reason 'paper trading is convincing'");
  const json current = Json("current alpha_momentum");
  EXPECT_EQ(current["production"], "v1.0.0");
  ASSERT_EQ(current["promotion"]["gates"].size(), 1u) << current;
  const json& gate = current["promotion"]["gates"][0];
  EXPECT_EQ(gate["name"], "hit_rate");
  EXPECT_EQ(gate["observed"], 0.56);
  EXPECT_TRUE(gate["passed"].get<bool>());
  EXPECT_TRUE(Has(gate["detail"], "annotation event #" + a["seq"].dump())) << gate;
  EXPECT_TRUE(Has(gate["detail"], "paper-trading")) << gate;
  // current shows the late metric too.
  EXPECT_EQ(current["record"]["annotations"]["metrics"]["hit_rate"]["value"], 0.56);
  EXPECT_TRUE(Has(Ok("current alpha_momentum").out, "late metric:   hit_rate=0.56")) << current;
}

TEST_F(AnnotateCli, ArchivedAndFailedVersionsCanBeAnnotated) {
  Register("risk_model", "v1.0.0");
  Register("risk_model", "v1.1.0");
  Ok("archive risk_model v1.0.0");
  Ok("fail risk_model v1.1.0 --reason 'NaN predictions'");
  Ok("annotate risk_model v1.0.0 --tag retired=yes --reason 'superseded'");
  Ok("annotate risk_model v1.1.0 --description 'post-mortem: see INC-42' --reason 'post-mortem'");
  EXPECT_EQ(Json("show risk_model v1.1.0")["status"], "failed");
  EXPECT_EQ(Json("show risk_model v1.1.0")["annotations"]["description"],
            "post-mortem: see INC-42");
}

TEST_F(AnnotateCli, EveryBadInputAppendsNothing) {
  Register("risk_model", "v1.0.0");
  const std::size_t events = EventCount();
  struct Case {
    std::string args;
    int rc;
    std::string message;
  };
  const std::string long_text(5000, 'x');
  const std::vector<Case> cases = {
      {"annotate risk_model v1.0.0 --reason r", 2, "nothing to annotate"},
      {"annotate risk_model v1.0.0 --tag a=b", 2, "annotate needs --reason"},
      {"annotate risk_model v1.0.0 --tag a=b --reason '  '", 2, "annotate needs --reason"},
      {"annotate risk_model v1.0.0 --tag 'bad key=v' --reason r", 2, "tag key 'bad key'"},
      {"annotate risk_model v1.0.0 --tag -lead=v --reason r", 2, "tag key '-lead'"},
      {"annotate risk_model v1.0.0 --tag novalue --reason r", 2, "--tag expects NAME=VALUE"},
      {"annotate risk_model v1.0.0 --tag \"a=$(printf 'x\\001y')\" --reason r", 2,
       "holds a control character"},
      {"annotate risk_model v1.0.0 --tag a=1 --tag a=2 --reason r", 2, "given twice"},
      {"annotate risk_model v1.0.0 --tag a=1 --untag a --reason r", 2, "both set and removed"},
      {"annotate risk_model v1.0.0 --metric hit_rate=.5 --source s --reason r", 2,
       "must be a finite number in decimal"},
      {"annotate risk_model v1.0.0 --metric hit_rate=nan --source s --reason r", 2,
       "must be a finite number in decimal"},
      {"annotate risk_model v1.0.0 --metric hit_rate=0.5 --reason r", 2, "metrics need --source"},
      {"annotate risk_model v1.0.0 --metric 'hit rate=0.5' --source s --reason r", 2,
       "metric name 'hit rate'"},
      {"annotate risk_model v1.0.0 --metric hit_rate=0.5 --source 'paper trading' --reason r", 2,
       "source 'paper trading'"},
      {"annotate risk_model v1.0.0 --description " + long_text + " --reason r", 2,
       "the description is 5000 bytes long"},
      {"annotate risk_model v1.0.0 --tag a=" + std::string(300, 'v') + " --reason r", 2,
       "at most 256"},
      {"annotate risk_model v9.9.9 --tag a=b --reason r", 3, "risk_model v9.9.9 is not registered"},
      {"annotate Bad_Name v1.0.0 --tag a=b --reason r", 2, "Bad_Name"},
  };
  for (const Case& c : cases) {
    RunResult r = Mr(c.args);
    EXPECT_EQ(r.rc, c.rc) << c.args << "\n" << r.err;
    EXPECT_TRUE(Has(r.err, c.message)) << c.args << "\nstderr: " << r.err;
    EXPECT_EQ(EventCount(), events) << c.args;
  }
  EXPECT_TRUE(Json("show risk_model v1.0.0")["annotations"]["seq"].is_null());
}

TEST_F(AnnotateCli, APurgedVersionCannotBeAnnotated) {
  Register("risk_model", "v1.0.0");
  Register("risk_model", "v1.1.0");
  Ok("fail risk_model v1.0.0 --reason broken");
  Ok("gc --keep 0 --retention-days 0");
  ASSERT_TRUE(Json("show risk_model v1.0.0")["purged"].get<bool>());
  const std::size_t events = EventCount();
  RunResult r = Mr("annotate risk_model v1.0.0 --tag a=b --reason r");
  EXPECT_EQ(r.rc, 4) << r.err;
  EXPECT_TRUE(Has(r.err, "purged")) << r.err;
  EXPECT_EQ(EventCount(), events);
}

}  // namespace
}  // namespace modelreg
