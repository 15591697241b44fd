// End-to-end: --limit, --since and --until of `list`, `history` and
// `events` (docs/cli.md, "How many rows"), the default on a terminal (run
// on a real pseudo-terminal), their error paths, the same answers while
// `modelreg serve` holds the registry, and the API's since=/until=.
#include <httplib.h>
#include <pty.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "registry/registry.h"
#include "support/child.h"
#include "support/run.h"
#include "support/temp_dir.h"

namespace modelreg {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::RunCmd;
using testing::RunResult;
using Steady = std::chrono::steady_clock;

const std::string kSecret = "0123456789abcdef0123456789abcdef-limit-secret";
constexpr int kVersions = 61;  // risk_model v1.0.0 .. v1.0.60, each promoted
constexpr int kSignals = 7;    // signal_model, one every 10 risk_model versions

std::vector<std::string> Lines(const std::string& s) {
  std::vector<std::string> lines;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::vector<json> JsonLines(const std::string& s) {
  std::vector<json> out;
  for (const std::string& l : Lines(s)) out.push_back(json::parse(l));
  return out;
}

std::string Bin() { return testing::EnvOr("MODELREG_BIN", "modelreg"); }

// Runs `command` through /bin/sh with stdout on a pseudo-terminal (stderr
// to a file): what a user at a terminal sees on stdout.
RunResult RunOnPty(const std::string& command) {
  testing::TempDir tmp;
  const std::string err = tmp.sub("err");
  const std::string full = command + " 2>" + err;
  winsize ws{};
  ws.ws_row = 40;
  ws.ws_col = 250;
  int master = -1;
  const pid_t pid = forkpty(&master, nullptr, nullptr, &ws);
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", full.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  RunResult r;
  if (pid < 0) return r;
  // Until the terminal's other side is closed by everything that had it
  // (Linux: read fails with EIO then).
  char buf[4096];
  for (;;) {
    const ssize_t n = read(master, buf, sizeof buf);
    if (n > 0) {
      r.out.append(buf, static_cast<std::size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  close(master);
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::erase(r.out, '\r');  // the terminal turns "\n" into "\r\n"
  r.err = testing::Slurp(err);
  return r;
}

// One registry for the whole suite, made once through the registry
// library (fast; these tests are about reading it): risk_model v1.0.0 to
// v1.0.60, each registered and promoted, and a signal_model version
// registered before every tenth. Tests that write work on a copy.
class Limit : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    const std::string root = dir_->sub("reg");
    fs::create_directories(root);
    std::ofstream(root + "/policy.toml") << "[default]\npaper_trading_hours = \"off\"\n";
    const std::string art = dir_->sub("a.bin");
    std::ofstream(art) << "x";
    registry::RegistryOptions o;
    o.root = root;
    o.create_if_missing = true;
    auto reg = registry::Registry::Open(o);
    ASSERT_TRUE(reg) << reg.error().ToString();
    const registry::Actor actor{"trainer", ""};
    for (int i = 0; i < kVersions; ++i) {
      registry::MetadataInput in;
      in.datasets["crsp"] = "v1.2.3";
      in.metrics["ic"] = 0.05;
      // Every version its own Sharpe, in no particular order.
      in.metrics["sharpe"] = 1.0 + ((i * 37) % kVersions) / 100.0;
      if (i % 10 == 0) {
        auto s = (*reg)->Register("signal_model", "v0." + std::to_string(i / 10) + ".0", art, in,
                                  actor);
        ASSERT_TRUE(s) << s.error().ToString();
      }
      const std::string v = "v1.0." + std::to_string(i);
      auto r = (*reg)->Register("risk_model", v, art, in, actor);
      ASSERT_TRUE(r) << r.error().ToString();
      auto p = (*reg)->Promote("risk_model", v, std::nullopt, false,
                               registry::Actor{"alice", "release " + v});
      ASSERT_TRUE(p) << p.error().ToString();
    }
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string Root() { return dir_->sub("reg"); }
  static RunResult Mr(const std::string& args, const std::string& root = Root()) {
    return RunCmd(Bin() + " --root " + root + " " + args);
  }
  static RunResult Ok(const std::string& args, const std::string& root = Root()) {
    RunResult r = Mr(args, root);
    EXPECT_EQ(r.rc, 0) << args << "\n" << r.err;
    return r;
  }
  // A copy of the suite's registry for a test that writes to it.
  std::string CopyRegistry() const {
    const std::string to = own_.sub("reg");
    fs::copy(Root(), to, fs::copy_options::recursive);
    return to;
  }
  // The note a limit leaves on stderr.
  static std::string Note(std::size_t shown, std::size_t total, const std::string& kept,
                          const std::string& rows) {
    return "modelreg: showing " + kept + " " + std::to_string(shown) + " of " +
           std::to_string(total) + " " + rows + " (" + std::to_string(total - shown) +
           " left out); --limit 0 shows them all\n";
  }

  static testing::TempDir* dir_;
  testing::TempDir own_;
};
testing::TempDir* Limit::dir_ = nullptr;

constexpr std::size_t kEvents = 1 + 2 * kVersions + kSignals;  // the policy, then ours

TEST_F(Limit, EventsLimitKeepsTheNewestAndSinceUntilAreInclusive) {
  const std::vector<json> all = JsonLines(Ok("--json events").out);
  ASSERT_EQ(all.size(), kEvents);
  const std::vector<std::string> text = Lines(Ok("events").out);
  ASSERT_EQ(text.size(), kEvents);

  // The newest 5, oldest first, as the tail of the whole log; stderr says
  // how many were left out and how to see them all.
  RunResult five = Ok("events --limit 5");
  EXPECT_EQ(Lines(five.out), std::vector<std::string>(text.end() - 5, text.end()));
  EXPECT_EQ(five.err, Note(5, kEvents, "the newest", "events"));
  // --limit 0: everything, no note; a limit above the count: the same.
  for (const std::string limit : {"0", "100000"}) {
    RunResult r = Ok("events --limit " + limit);
    EXPECT_EQ(Lines(r.out), text) << limit;
    EXPECT_EQ(r.err, "") << limit;
  }
  // --json: the same events as JSON lines; the note only on stderr.
  RunResult json5 = Ok("--json events --limit 5");
  EXPECT_EQ(JsonLines(json5.out), std::vector<json>(all.end() - 5, all.end()));
  EXPECT_EQ(json5.err, Note(5, kEvents, "the newest", "events"));

  // --since and --until are both inclusive: events 10 to 20 by their own
  // recorded times; with a limit, the newest of those.
  const std::string t10 = all[9]["recorded_at"], t20 = all[19]["recorded_at"];
  std::vector<json> period = JsonLines(Ok("--json events --since " + t10 + " --until " + t20).out);
  ASSERT_EQ(period.size(), 11u);
  EXPECT_EQ(period.front()["seq"], 10);
  EXPECT_EQ(period.back()["seq"], 20);
  RunResult limited = Ok("--json events --since " + t10 + " --until " + t20 + " --limit 3");
  std::vector<json> three = JsonLines(limited.out);
  ASSERT_EQ(three.size(), 3u);
  EXPECT_EQ(three[0]["seq"], 18);
  EXPECT_EQ(three[2]["seq"], 20);
  EXPECT_EQ(limited.err, Note(3, 11, "the newest", "events"));
  // One instant: the event recorded then.
  period = JsonLines(Ok("--json events --since " + t10 + " --until " + t10).out);
  ASSERT_EQ(period.size(), 1u);
  EXPECT_EQ(period[0]["seq"], 10);

  // A period with nothing in it: no rows, no note, exit 0.
  for (const std::string& empty : {std::string("--since now"),
                                   "--until " + std::string("1990-01-01") + " --limit 3"}) {
    RunResult r = Ok("events " + empty);
    EXPECT_EQ(r.out, "") << empty;
    EXPECT_EQ(r.err, "") << empty;
  }

  // With --type the limit counts that type's events only.
  std::vector<json> signals = JsonLines(Ok("--json events --type signal_model").out);
  ASSERT_EQ(signals.size(), static_cast<std::size_t>(kSignals));
  RunResult two = Ok("--json events --type signal_model --limit 2");
  EXPECT_EQ(JsonLines(two.out), std::vector<json>(signals.end() - 2, signals.end()));
  EXPECT_EQ(two.err, Note(2, kSignals, "the newest", "events"));
}

TEST_F(Limit, HistoryLimitKeepsTheNewestPromotions) {
  const json whole = json::parse(Ok("--json history risk_model").out);
  const json& rows = whole["history"];
  ASSERT_EQ(rows.size(), static_cast<std::size_t>(kVersions));
  EXPECT_FALSE(whole.contains("omitted")) << "no limit asked: the JSON is unchanged";

  RunResult r = Ok("--json history risk_model --limit 4");
  json four = json::parse(r.out);
  EXPECT_EQ(four["history"], json(std::vector<json>(rows.end() - 4, rows.end())));
  EXPECT_EQ(four["omitted"], kVersions - 4);
  EXPECT_EQ(r.err, Note(4, kVersions, "the newest", "promotions and rollbacks"));
  json none_left = json::parse(Ok("--json history risk_model --limit 0").out);
  EXPECT_EQ(none_left["history"], rows);
  EXPECT_FALSE(none_left.contains("omitted")) << "--limit 0 is no limit";
  json under = json::parse(Ok("--json history risk_model --limit 1000").out);
  EXPECT_EQ(under["history"], rows);
  EXPECT_EQ(under["omitted"], 0);

  // The table: a header, then the 4 newest, v1.0.57 to v1.0.60.
  RunResult table = Ok("history risk_model --limit 4");
  std::vector<std::string> lines = Lines(table.out);
  ASSERT_EQ(lines.size(), 5u) << table.out;
  EXPECT_EQ(lines[0].rfind("TIME", 0), 0u);
  EXPECT_NE(lines[1].find("v1.0.57"), std::string::npos) << lines[1];
  EXPECT_NE(lines[4].find("v1.0.60"), std::string::npos) << lines[4];
  EXPECT_EQ(table.err, Note(4, kVersions, "the newest", "promotions and rollbacks"));

  // By the time of the promotion, both ends inclusive.
  const std::string t5 = rows[5]["at"], t9 = rows[9]["at"];
  json period = json::parse(Ok("--json history risk_model --since " + t5 + " --until " + t9).out);
  ASSERT_EQ(period["history"].size(), 5u);
  EXPECT_EQ(period["history"][0], rows[5]);
  EXPECT_EQ(period["history"][4], rows[9]);
  json newest2 = json::parse(
      Ok("--json history risk_model --since " + t5 + " --until " + t9 + " --limit 2").out);
  EXPECT_EQ(newest2["history"], json(std::vector<json>{rows[8], rows[9]}));
  EXPECT_EQ(newest2["omitted"], 3);
}

TEST_F(Limit, ListLimitKeepsTheMostRecentlyRegisteredOrTheTopOfASort) {
  const json whole = json::parse(Ok("--json list").out);
  const json& all = whole["versions"];
  ASSERT_EQ(all.size(), static_cast<std::size_t>(kVersions + kSignals));
  EXPECT_FALSE(whole.contains("omitted"));

  // The 3 most recently registered (v1.0.59, signal_model v0.6.0 and
  // v1.0.60, by registered_seq), kept in the list's order.
  std::vector<json> newest;
  std::vector<std::uint64_t> seqs;
  for (const json& v : all) seqs.push_back(v["registered_seq"]);
  std::sort(seqs.rbegin(), seqs.rend());
  for (const json& v : all) {
    if (v["registered_seq"].get<std::uint64_t>() >= seqs[2]) newest.push_back(v);
  }
  ASSERT_EQ(newest.size(), 3u);
  RunResult r = Ok("--json list --limit 3");
  json three = json::parse(r.out);
  EXPECT_EQ(three["versions"], json(newest));
  EXPECT_EQ(three["omitted"], kVersions + kSignals - 3);
  EXPECT_EQ(r.err, Note(3, kVersions + kSignals, "the newest", "versions by registration time"));
  // Printed in the list's own order (type, then version).
  RunResult text = Ok("list risk_model --limit 3");
  std::vector<std::string> lines = Lines(text.out);
  ASSERT_EQ(lines.size(), 4u) << text.out;
  EXPECT_EQ(lines[1].find("risk_model         v1.0.58 "), 0u) << lines[1];
  EXPECT_EQ(lines[3].find("risk_model         v1.0.60 "), 0u) << lines[3];
  EXPECT_EQ(text.err, Note(3, kVersions, "the newest", "versions by registration time"));

  // With --sort, the top of the ranking: the highest Sharpe first.
  const json sorted = json::parse(Ok("--json list risk_model --sort sharpe").out)["versions"];
  RunResult top = Ok("--json list risk_model --sort sharpe --limit 2");
  EXPECT_EQ(json::parse(top.out)["versions"],
            json(std::vector<json>{sorted[0], sorted[1]}));
  EXPECT_EQ(top.err, Note(2, kVersions, "the top", "versions by sharpe"));

  // By registration time, both ends inclusive, with the other filters.
  const json risk = json::parse(Ok("--json list risk_model").out)["versions"];
  const std::string t3 = risk[3]["registered_at"], t12 = risk[12]["registered_at"];
  json period =
      json::parse(Ok("--json list risk_model --since " + t3 + " --until " + t12).out)["versions"];
  ASSERT_EQ(period.size(), 10u);
  EXPECT_EQ(period[0]["version"], "v1.0.3");
  EXPECT_EQ(period[9]["version"], "v1.0.12");
  // signal_model v0.1.0 was registered between them (before v1.0.10).
  json both = json::parse(Ok("--json list --since " + t3 + " --until " + t12).out)["versions"];
  ASSERT_EQ(both.size(), 11u);
  EXPECT_EQ(both[10]["model_type"], "signal_model");
  EXPECT_EQ(both[10]["version"], "v0.1.0");
  // Nothing registered in the period: an empty table, exit 0.
  json later = json::parse(Ok("--json list --since now").out)["versions"];
  EXPECT_TRUE(later.empty());
}

TEST_F(Limit, BadValuesAreUsageErrorsThatChangeNothing) {
  const std::string before = Ok("--json events").out;
  const json all = JsonLines(before).back();
  const std::string t = all["recorded_at"];
  for (const std::string cmd : {"list", "history risk_model", "events"}) {
    for (const std::string bad : {"-1", "ten", "1.5", "", "5x", "99999999999999999999"}) {
      RunResult r = Mr(cmd + " --limit '" + bad + "'");
      EXPECT_EQ(r.rc, 2) << cmd << " --limit " << bad << ": " << r.err;
      EXPECT_EQ(r.out, "") << cmd << " " << bad;
      EXPECT_NE(r.err.find("--limit"), std::string::npos) << r.err;
      EXPECT_NE(r.err.find("--limit: '" + bad +
                           "' is not a number of rows: give a whole number, or 0 for no limit"),
                std::string::npos)
          << cmd << " " << bad << ": " << r.err;
      EXPECT_EQ(Lines(r.err).size(), 1u) << r.err;
    }
    // An empty period by construction.
    RunResult r = Mr(cmd + " --since now --until -1h");
    EXPECT_EQ(r.rc, 2) << cmd << ": " << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err.find("modelreg: invalid_argument: --since "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(" is after --until "), std::string::npos) << r.err;
    // With --json: one JSON error object on stderr.
    r = Mr("--json " + cmd + " --limit ten");
    EXPECT_EQ(r.rc, 2);
    json e = json::parse(r.err);
    EXPECT_EQ(e["error"]["code"], "invalid_argument") << r.err;
    EXPECT_EQ(e["error"]["exit_code"], 2);
    r = Mr(cmd + " --since yesterday");
    EXPECT_EQ(r.rc, 2);
    EXPECT_NE(r.err.find("is not a time"), std::string::npos) << r.err;
  }
  // The registry is as it was.
  EXPECT_EQ(Ok("--json events").out, before);
}

// At a terminal, without --limit: the newest 50, and one line on stderr
// saying how many were left out and how to see them all. Through a pipe,
// or with --json: everything, silently, as scripts expect.
TEST_F(Limit, TerminalDefaultIsFiftyAndPipesGetEverything) {
  struct Case {
    std::string args;
    std::size_t total;  // rows without a limit
    std::size_t header;  // lines above the rows
    std::string note;
  };
  const std::vector<Case> cases = {
      {"events", kEvents, 0, Note(50, kEvents, "the newest", "events")},
      {"history risk_model", kVersions, 1,
       Note(50, kVersions, "the newest", "promotions and rollbacks")},
      {"list", kVersions + kSignals, 1,
       Note(50, kVersions + kSignals, "the newest", "versions by registration time")},
  };
  for (const Case& c : cases) {
    const RunResult piped = Ok(c.args);
    const std::vector<std::string> all = Lines(piped.out);
    ASSERT_EQ(all.size(), c.header + c.total) << c.args;
    EXPECT_EQ(piped.err, "") << c.args;

    const RunResult tty = RunOnPty(Bin() + " --root " + Root() + " " + c.args);
    ASSERT_EQ(tty.rc, 0) << c.args << ": " << tty.err;
    const std::vector<std::string> shown = Lines(tty.out);
    ASSERT_EQ(shown.size(), c.header + 50) << c.args << "\n" << tty.out;
    EXPECT_EQ(tty.err, c.note) << c.args;
    if (c.args != "list") {
      // The newest 50: the end of the whole output.
      EXPECT_EQ(std::vector<std::string>(shown.end() - 50, shown.end()),
                std::vector<std::string>(all.end() - 50, all.end()))
          << c.args;
    }
    // Exactly what --limit 50 prints through a pipe.
    const RunResult fifty = Ok(c.args + " --limit 50");
    EXPECT_EQ(tty.out, fifty.out) << c.args;
    EXPECT_EQ(tty.err, fifty.err) << c.args;
    // An explicit limit wins on a terminal too; --limit 0 shows all.
    const RunResult seven = RunOnPty(Bin() + " --root " + Root() + " " + c.args + " --limit 7");
    EXPECT_EQ(Lines(seven.out).size(), c.header + 7) << c.args;
    const RunResult every = RunOnPty(Bin() + " --root " + Root() + " " + c.args + " --limit 0");
    EXPECT_EQ(Lines(every.out), all) << c.args;
    EXPECT_EQ(every.err, "") << c.args;
    // --json on a terminal: no default limit either.
    const RunResult js = RunOnPty(Bin() + " --root " + Root() + " --json " + c.args);
    EXPECT_EQ(js.err, "") << c.args;
    EXPECT_EQ(js.out, Ok("--json " + c.args).out) << c.args;
  }
}

// events --follow --limit N: the newest N of the backlog, then every new
// event as it is appended.
TEST_F(Limit, FollowPrintsTheNewestOfTheBacklogThenNewEvents) {
  const std::string root = CopyRegistry();
  const std::vector<std::string> text = Lines(Ok("events", root).out);
  testing::Child follow({"/bin/sh", "-c",
                         "exec " + Bin() + " --root " + root + " events --follow --limit 3"});
  const auto deadline = Steady::now() + std::chrono::seconds(20);
  while (follow.Lines().size() < 3 && Steady::now() < deadline && follow.ReadFor(100)) {
  }
  ASSERT_EQ(follow.Lines(), std::vector<std::string>(text.end() - 3, text.end()));
  // A new event appears after them.
  const std::string art = own_.sub("b.bin");
  std::ofstream(art) << "y";
  Ok("register risk_model " + art + " --version v2.0.0", root);
  while (follow.Lines().size() < 4 && Steady::now() < deadline && follow.ReadFor(100)) {
  }
  ASSERT_EQ(follow.Lines().size(), 4u);
  EXPECT_NE(follow.Lines()[3].find("#" + std::to_string(kEvents + 1) + " "), std::string::npos)
      << follow.Lines()[3];
  EXPECT_NE(follow.Lines()[3].find("v2.0.0"), std::string::npos) << follow.Lines()[3];
}

// While `modelreg serve` holds the registry, reads open it read-only beside
// the server (also with MODELREG_URL and MODELREG_TOKEN set): the same rows
// as before. The API takes the same since=/until= rule.
TEST_F(Limit, SameRowsWhileServeHoldsTheRegistryAndTheApiTakesSinceUntil) {
  const std::string root = CopyRegistry();
  const std::vector<json> all = JsonLines(Ok("--json events", root).out);
  ASSERT_EQ(all.size(), kEvents);
  const std::string t10 = all[9]["recorded_at"], t20 = all[19]["recorded_at"];
  const json risk = json::parse(Ok("--json list risk_model", root).out)["versions"];
  const std::string r3 = risk[3]["registered_at"], r12 = risk[12]["registered_at"];
  const std::vector<std::string> commands = {
      "events --limit 5",
      "--json events --since " + t10 + " --until " + t20 + " --limit 3",
      "--json history risk_model --limit 4",
      "history risk_model --since " + t10 + " --until " + t20,
      "list --limit 3",
      "--json list risk_model --sort sharpe --limit 2",
      "--json list --since " + r3 + " --until " + r12,
  };
  std::vector<RunResult> direct;
  for (const std::string& c : commands) direct.push_back(Ok(c, root));

  testing::Child server({"/bin/sh", "-c",
                         "exec env MODELREG_JWT_SECRET=" + kSecret + " " + Bin() + " --root " +
                             root + " serve --listen 127.0.0.1:0 --exit-after 300"});
  const auto deadline = Steady::now() + std::chrono::seconds(20);
  while (server.Lines().empty() && Steady::now() < deadline && server.ReadFor(100)) {
  }
  ASSERT_FALSE(server.Lines().empty()) << "modelreg serve did not start";
  const std::string first = server.Lines()[0];
  ASSERT_NE(first.find("http://"), std::string::npos) << first;
  const std::string url = first.substr(first.find("http://"));
  RunResult issued = RunCmd("MODELREG_JWT_SECRET=" + kSecret + " " + Bin() +
                            " token issue --sub reader --scope model:read");
  ASSERT_EQ(issued.rc, 0) << issued.err;
  const std::string token = Lines(issued.out).at(0);

  for (std::size_t i = 0; i < commands.size(); ++i) {
    for (const std::string& env :
         std::vector<std::string>{"", "MODELREG_URL=" + url + " MODELREG_TOKEN=" + token + " "}) {
      RunResult r = RunCmd(env + Bin() + " --root " + root + " " + commands[i]);
      EXPECT_EQ(r.rc, 0) << commands[i] << ": " << r.err;
      EXPECT_EQ(r.out, direct[i].out) << env << commands[i];
      EXPECT_EQ(r.err, direct[i].err) << env << commands[i];
    }
  }

  // The API: since=/until= with the same rule, paged by limit=/cursor=.
  const std::string hostport = url.substr(std::string("http://").size());
  httplib::Client c("127.0.0.1", std::stoi(hostport.substr(hostport.find(':') + 1)));
  const httplib::Headers auth{{"Authorization", "Bearer " + token}};
  auto get = [&](const std::string& path) {
    auto res = c.Get(path, auth);
    EXPECT_TRUE(res) << path;
    return res ? std::make_pair(res->status, json::parse(res->body, nullptr, false))
               : std::make_pair(0, json());
  };
  // Times in a URL: '+' never appears in ours (UTC, "Z").
  std::vector<json> paged;
  std::vector<std::size_t> sizes;
  std::string path = "/api/v1/events?since=" + t10 + "&until=" + t20 + "&limit=4";
  for (int pages = 0; pages < 10; ++pages) {
    auto [status, body] = get(path);
    ASSERT_EQ(status, 200) << body.dump();
    sizes.push_back(body["events"].size());
    for (const json& e : body["events"]) paged.push_back(e);
    if (body["next"].is_null()) break;
    path = "/api/v1/events?since=" + t10 + "&until=" + t20 + "&limit=4&cursor=" +
           body["next"].get<std::string>();
  }
  EXPECT_EQ(sizes, (std::vector<std::size_t>{4, 4, 3}));
  EXPECT_EQ(paged, std::vector<json>(all.begin() + 9, all.begin() + 20));
  // after= and since= together: the later start wins.
  auto [st_after, after] = get("/api/v1/events?after=15&since=" + t10 + "&until=" + t20);
  ASSERT_EQ(st_after, 200);
  ASSERT_EQ(after["events"].size(), 5u);
  EXPECT_EQ(after["events"][0]["seq"], 16);
  EXPECT_TRUE(after["next"].is_null());

  // A long poll for a period that is over answers at once, not after 30 s.
  const auto polled = Steady::now();
  auto [st_poll, poll] = get("/api/v1/events?after=" + std::to_string(kEvents) +
                             "&until=" + t20 + "&wait=30");
  EXPECT_EQ(st_poll, 200) << poll.dump();
  EXPECT_TRUE(poll["events"].empty()) << poll.dump();
  EXPECT_LT(Steady::now() - polled, std::chrono::seconds(20));

  auto [st_list, listed] = get("/api/v1/models/risk_model?since=" + r3 + "&until=" + r12);
  ASSERT_EQ(st_list, 200) << listed.dump();
  ASSERT_EQ(listed["versions"].size(), 10u);
  EXPECT_EQ(listed["versions"][0]["version"], "v1.0.3");
  EXPECT_EQ(listed["versions"][9]["version"], "v1.0.12");
  EXPECT_EQ(listed["versions"],
            json::parse(Ok("--json list risk_model --since " + r3 + " --until " + r12, root).out)
                ["versions"]);

  // An empty period by construction is a 400 on all three.
  for (const std::string p : {"/api/v1/models", "/api/v1/models/risk_model/history",
                              "/api/v1/events"}) {
    auto [status, body] = get(p + "?since=" + t20 + "&until=" + t10);
    EXPECT_EQ(status, 400) << p;
    EXPECT_EQ(body["error"]["code"], "invalid_argument") << body.dump();
    EXPECT_NE(body["error"]["message"].get<std::string>().find(" is after until="),
              std::string::npos)
        << body.dump();
  }
  const int status = server.SignalAndWait(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

}  // namespace
}  // namespace modelreg
