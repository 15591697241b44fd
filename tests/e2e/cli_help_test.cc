// End-to-end: what the real binaries tell a user about themselves — help
// pages (every option that applies, examples), bash completion, the man
// page — and how errors look to a person and to a program (--json).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
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
using testing::Lines;
using testing::Has;
using testing::RunResult;

// Every command of modelreg, as typed.
const std::vector<std::string> kCommands = {
    "register", "list", "show", "current", "history", "audit", "policy set", "policy show",
    "promote", "compat", "archive", "fail", "rollback", "validate", "annotate", "events",
    "verify", "backup create", "backup list", "backup verify", "backup restore", "gc", "serve",
    "token issue", "consumers", "watch", "cache stats", "cache gc", "cache purge", "diff",
    "completion", "man"};
const std::vector<std::string> kGlobals = {"--root", "--json", "--actor", "--reason",
                                           "--lock-wait", "--url"};

class HelpCli : public ::testing::Test {
 protected:
  static std::string Bin() { return testing::EnvOr("MODELREG_BIN", "modelreg"); }
  static std::string Replay() { return testing::EnvOr("MODELREG_REPLAY_BIN", "modelreg-replay"); }
  void SetUp() override {
    fs::create_directories(root_);
    // No 24-hour paper-trading gate (tests run in seconds); IC and Sharpe stay.
    std::ofstream(root_ + "/policy.toml") << "[default]\npaper_trading_hours = \"off\"\n";
  }
  RunResult Mr(const std::string& args) const {
    return RunCmd("MODELREG_ACTOR=alice " + Bin() + " --root " + root_ + " " + args);
  }
  RunResult Ok(const std::string& args) const {
    RunResult r = Mr(args);
    EXPECT_EQ(r.rc, 0) << args << "\n" << r.err;
    return r;
  }
  void Register(const std::string& version, const std::string& metrics) const {
    const std::string art = dir_.sub(version + ".pkl");
    std::ofstream(art) << "weights " << version;
    Ok("register risk_model " + art + " --version " + version + " " + metrics);
  }
  std::size_t EventCount() const { return Lines(Ok("events").out).size(); }
  // Runs a bash script that has sourced `modelreg completion bash`, then
  // completes `words` (the last one is the word being completed).
  std::set<std::string> Complete(const std::string& words) const {
    const std::string script = dir_.sub("complete.sh");
    std::ofstream(script) << "source <(" << Bin() << " completion bash) || exit 9\n"
                          << "COMP_WORDS=(" << words << ")\n"
                          << "COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n"
                          << "_modelreg\n"
                          << "printf '%s\\n' \"${COMPREPLY[@]}\"\n";
    RunResult r = RunCmd("bash " + script);
    EXPECT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.err, "");
    const std::vector<std::string> lines = Lines(r.out);
    return {lines.begin(), lines.end()};
  }

  testing::TempDir dir_;
  std::string root_ = dir_.sub("reg");
};

TEST_F(HelpCli, EverySubcommandHelpListsItsGlobalOptionsAndEndsWithExamples) {
  for (const std::string& cmd : kCommands) {
    RunResult r = RunCmd(Bin() + " " + cmd + " --help");
    ASSERT_EQ(r.rc, 0) << cmd << r.err;
    for (const std::string& opt : kGlobals) EXPECT_TRUE(Has(r.out, opt)) << cmd << ": " << opt;
    const std::size_t ex = r.out.find("\nExamples:\n  ");
    ASSERT_NE(ex, std::string::npos) << cmd << "\n" << r.out;
    // Every option an example uses is one this help lists (no stale examples).
    const std::string options = r.out.substr(0, ex);
    std::istringstream words(r.out.substr(ex));
    for (std::string w; words >> w;) {
      if (w.rfind("--", 0) == 0 && w.size() > 2) {
        EXPECT_TRUE(Has(options, w + " ")) << cmd << ": example uses " << w << "\n" << r.out;
      }
    }
    EXPECT_TRUE(Has(r.out.substr(ex), "modelreg " + cmd.substr(0, cmd.find(' '))) ||
                cmd == "completion" || cmd == "man")
        << r.out;
  }
  // register states the name grammar.
  const std::string reg = RunCmd(Bin() + " register --help").out;
  EXPECT_TRUE(Has(reg, "lowercase letters a-z, digits 0-9, '_' and '-', starting with a letter"))
      << reg;
  // The options of the command itself are still there, and --threads stays hidden.
  EXPECT_TRUE(Has(RunCmd(Bin() + " promote --help").out, "--override-gates"));
  EXPECT_FALSE(Has(RunCmd(Bin() + " serve --help").out, "--threads"));
}

TEST_F(HelpCli, ReplayHelpListsGlobalOptionsAndExamples) {
  for (const std::string cmd : {"verify", "rebuild", "export", "import", "materialize"}) {
    RunResult r = RunCmd(Replay() + " " + cmd + " --help");
    ASSERT_EQ(r.rc, 0) << cmd << r.err;
    EXPECT_TRUE(Has(r.out, "--root")) << r.out;
    EXPECT_TRUE(Has(r.out, "--lock-wait")) << r.out;
    EXPECT_TRUE(Has(r.out, "Examples:\n  modelreg-replay ")) << r.out;
  }
}

TEST_F(HelpCli, BashCompletionOffersCommandsAndTheirOptions) {
  EXPECT_EQ(Complete("modelreg pro"),
            (std::set<std::string>{"promote", "promote-follower", "prove"}));
  EXPECT_EQ(Complete("modelreg prom"), (std::set<std::string>{"promote", "promote-follower"}));
  EXPECT_EQ(Complete("modelreg promote-f"), std::set<std::string>{"promote-follower"});
  const std::set<std::string> promote = Complete("modelreg promote --");
  EXPECT_EQ(promote.count("--reason"), 1u);
  EXPECT_EQ(promote.count("--override-gates"), 1u);
  EXPECT_EQ(promote.count("--expect-current"), 1u);
  EXPECT_EQ(promote.count("--sort"), 0u);  // list's, not promote's
  // A global option's value is not taken for a command; nested commands work.
  EXPECT_EQ(Complete("modelreg --root /tmp/r pol"), std::set<std::string>{"policy"});
  EXPECT_EQ(Complete("modelreg policy s"), (std::set<std::string>{"set", "show"}));
  EXPECT_EQ(Complete("modelreg --json policy set --re"), std::set<std::string>{"--reason"});
  EXPECT_EQ(Complete("modelreg list --s"),
            (std::set<std::string>{"--since", "--sort", "--status"}));
  EXPECT_EQ(Complete("modelreg events --li"), std::set<std::string>{"--limit"});
}

TEST_F(HelpCli, ManPageIsRoffOfEveryCommand) {
  RunResult r = RunCmd(Bin() + " man");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out.rfind(".TH MODELREG 1 ", 0), 0u) << r.out.substr(0, 200);
  for (const std::string& cmd : kCommands) EXPECT_TRUE(Has(r.out, ".SS " + cmd + "\n")) << cmd;
  EXPECT_TRUE(Has(r.out, "\\-\\-override\\-gates")) << r.out;
  // groff renders it without a warning.
  ASSERT_EQ(RunCmd("command -v groff").rc, 0)
      << "groff is missing: tools/install-deps installs it (groff-base)";
  RunResult g = RunCmd(Bin() + " man | groff -man -Tutf8 -ww");
  EXPECT_EQ(g.rc, 0);
  EXPECT_EQ(g.err, "");
  EXPECT_TRUE(Has(g.out, "override")) << g.out.substr(0, 300);
}

TEST_F(HelpCli, GateRefusalSaysHowToSeeAndChangeThePolicy) {
  Register("v1.0.0", "--metric sharpe=0.2 --metric ic=0.001");
  const std::size_t n = EventCount();
  RunResult r = Mr("promote risk_model v1.0.0 --reason 'try'");
  EXPECT_EQ(r.rc, 8) << r.err;
  const std::vector<std::string> lines = Lines(r.err);
  ASSERT_GT(lines.size(), 1u) << r.err;
  EXPECT_EQ(lines[0].rfind("modelreg: rejected: promotion of risk_model v1.0.0 refused by the "
                           "gates: ", 0), 0u) << r.err;
  EXPECT_TRUE(Has(r.err, "modelreg policy show")) << r.err;
  EXPECT_TRUE(Has(r.err, "modelreg policy set FILE --reason")) << r.err;
  EXPECT_TRUE(Has(r.err, "--override-gates --reason")) << r.err;
  EXPECT_TRUE(Has(r.err, "model:admin")) << r.err;
  EXPECT_EQ(EventCount(), n + 1);  // the PromotionRejected event only

  // With --json: one object, the hint its own member.
  RunResult j = Mr("--json promote risk_model v1.0.0 --reason 'try'");
  EXPECT_EQ(j.rc, 8);
  EXPECT_EQ(j.out, "");
  ASSERT_EQ(Lines(j.err).size(), 1u) << j.err;
  const json e = json::parse(j.err)["error"];
  EXPECT_EQ(e["code"], "rejected");
  EXPECT_EQ(e["exit_code"], 8);
  EXPECT_EQ(e["message"].get<std::string>().rfind("promotion of risk_model v1.0.0 refused", 0), 0u);
  EXPECT_TRUE(Has(e["hint"].get<std::string>(), "modelreg policy show"));

  // Other errors get no hint.
  RunResult other = Mr("promote risk_model v9.9.9");
  EXPECT_EQ(other.rc, 3);
  EXPECT_EQ(Lines(other.err).size(), 1u) << other.err;
}

TEST_F(HelpCli, ErrorsAreOneLineOrOneJsonObject) {
  Register("v1.0.0", "--metric sharpe=1.2 --metric ic=0.05");
  const std::size_t n = EventCount();
  struct Case {
    std::string args;
    int rc;
    std::string code, says;
  };
  for (const Case& c : std::vector<Case>{
           {"promote risk_model v9.9.9", 3, "not_found", "is not registered"},
           {"promote risk_model v1.0.0 --frobnicate", 2, "invalid_argument", "--frobnicate"},
           {"register risk_model", 2, "invalid_argument", "path is required"},
           {"--lock-wait abc list", 2, "invalid_argument", "abc"},
           {"--lock-wait 99999 list", 2, "invalid_argument", "3600"},
           {"list --status", 2, "invalid_argument", "--status"},
           {"frobnicate", 2, "invalid_argument", "unknown command 'frobnicate'"},
           {"policy", 2, "invalid_argument", "subcommand"},
           {"compat risk_model v1.0.0 --strict --no-strict", 2, "invalid_argument", "contradict"},
           {"completion fish", 2, "invalid_argument", "fish"},
       }) {
    RunResult t = Mr(c.args);
    EXPECT_EQ(t.rc, c.rc) << c.args << "\n" << t.err;
    EXPECT_EQ(t.out, "") << c.args;
    ASSERT_EQ(Lines(t.err).size(), 1u) << c.args << "\n" << t.err;
    EXPECT_EQ(t.err.rfind("modelreg: " + c.code + ": ", 0), 0u) << c.args << "\n" << t.err;
    EXPECT_TRUE(Has(t.err, c.says)) << c.args << "\n" << t.err;

    RunResult j = Mr("--json " + c.args);
    EXPECT_EQ(j.rc, c.rc) << c.args << "\n" << j.err;
    EXPECT_EQ(j.out, "") << c.args;
    ASSERT_EQ(Lines(j.err).size(), 1u) << c.args << "\n" << j.err;
    const json e = json::parse(j.err);
    ASSERT_EQ(e.size(), 1u) << j.err;
    EXPECT_EQ(e["error"]["code"], c.code) << j.err;
    EXPECT_EQ(e["error"]["exit_code"], c.rc) << j.err;
    EXPECT_TRUE(Has(e["error"]["message"].get<std::string>(), c.says)) << j.err;
  }
  // A parse error points at the help of the command being parsed.
  EXPECT_TRUE(Has(Mr("promote risk_model v1.0.0 --frobnicate").err, "`modelreg promote --help`"));
  EXPECT_EQ(EventCount(), n);
  // --help and --version still print to stdout and exit 0.
  EXPECT_EQ(RunCmd(Bin() + " --json --help").rc, 0);
  EXPECT_TRUE(Has(RunCmd(Bin() + " --version").out, "modelreg "));
}

TEST_F(HelpCli, ReplayErrorsAreOneLineOrOneJsonObject) {
  RunResult t = RunCmd(Replay() + " --root " + root_ + " verify --frobnicate");
  EXPECT_EQ(t.rc, 2);
  ASSERT_EQ(Lines(t.err).size(), 1u) << t.err;
  EXPECT_EQ(t.err.rfind("modelreg-replay: invalid_argument: ", 0), 0u) << t.err;
  EXPECT_TRUE(Has(t.err, "--frobnicate")) << t.err;
  RunResult j = RunCmd(Replay() + " --json --root " + root_ + " export");
  EXPECT_EQ(j.rc, 2);
  ASSERT_EQ(Lines(j.err).size(), 1u) << j.err;
  EXPECT_EQ(json::parse(j.err)["error"]["code"], "invalid_argument") << j.err;
  RunResult bad = RunCmd(Replay() + " --json --root " + root_ + " materialize --at yesterday --to " +
                         dir_.sub("m"));
  EXPECT_EQ(bad.rc, 2);
  EXPECT_EQ(json::parse(bad.err)["error"]["exit_code"], 2) << bad.err;
  EXPECT_FALSE(fs::exists(dir_.sub("m")));
}

TEST_F(HelpCli, ListSortNamesAnExistingMetricAndShowsIt) {
  Register("v1.0.0", "--metric sharpe=1.2 --metric ic=0.05 --metric turnover=0.3");
  Register("v1.1.0", "--metric sharpe=1.1 --metric ic=0.06 --metric turnover=0.7");
  RunResult bad = Mr("list --sort no_such_metric");
  EXPECT_EQ(bad.rc, 2);
  EXPECT_EQ(bad.out, "");
  EXPECT_TRUE(Has(bad.err, "'no_such_metric'")) << bad.err;
  EXPECT_TRUE(Has(bad.err, "ic, sharpe, turnover")) << bad.err;
  EXPECT_EQ(Mr("--json list --sort no_such_metric").rc, 2);

  const std::vector<std::string> rows = Lines(Ok("list --sort turnover").out);
  ASSERT_EQ(rows.size(), 3u);
  const std::size_t col = rows[0].find("TURNOVER");
  ASSERT_NE(col, std::string::npos) << rows[0];
  EXPECT_TRUE(Has(rows[1], "v1.1.0")) << rows[1];  // descending: 0.7 first
  EXPECT_EQ(rows[1].substr(col, 8), "     0.7") << rows[0] << "\n" << rows[1];
  EXPECT_EQ(rows[2].substr(col, 8), "     0.3") << rows[2];
  // A metric with its own column gets no second one.
  EXPECT_FALSE(Has(Ok("list --sort sharpe").out, "SHARPE  SHARPE"));
  EXPECT_FALSE(Has(Ok("list --sort sharpe").out, "TURNOVER"));
}

TEST_F(HelpCli, HistoryIsAnAlignedTableWithTheReasonOnce) {
  Register("v1.0.0", "--metric sharpe=1.2 --metric ic=0.05");
  Register("v1.1.0", "--metric sharpe=0.1 --metric ic=0.001");
  Ok("promote risk_model v1.0.0 --reason 'first release'");
  Ok("promote risk_model v1.1.0 --override-gates --reason 'desk head approved, ticket 42'");
  const std::vector<std::string> rows = Lines(Ok("history risk_model").out);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].rfind("TIME ", 0), 0u) << rows[0];
  for (const std::string col : {"EVENT", "ACTION", "VERSION", "REPLACED", "BY", "GATES", "REASON"}) {
    const std::size_t at = rows[0].find(col);
    ASSERT_NE(at, std::string::npos) << col;
    for (std::size_t i = 1; i < rows.size(); ++i) {
      EXPECT_NE(rows[i][at], ' ') << col << " misaligned:\n" << rows[0] << "\n" << rows[i];
      EXPECT_EQ(rows[i][at - 1], ' ') << col << " misaligned:\n" << rows[0] << "\n" << rows[i];
    }
  }
  EXPECT_TRUE(Has(rows[1], "first release")) << rows[1];
  EXPECT_TRUE(Has(rows[2], "v1.0.0 (now archived)")) << rows[2];
  EXPECT_TRUE(Has(rows[2], "OVERRIDDEN")) << rows[2];
  const std::string why = "desk head approved, ticket 42";
  const std::size_t first = rows[2].find(why);
  ASSERT_NE(first, std::string::npos) << rows[2];
  EXPECT_EQ(rows[2].find(why, first + 1), std::string::npos) << rows[2];
}

// `modelreg` is built without the HTTP layer (src/app/net_layer.h): a
// read maps none of cpp-httplib, libjwt, libssl (their initialisers cost
// more CPU than the read; docs/performance.md, "Cold process"), while
// `modelreg-net` next to it has them.
TEST_F(HelpCli, ReadsLoadNoHttpLibraries) {
  Register("v1.0.0", "--metric ic=0.05 --metric sharpe=1.5");
  const std::string net = fs::path(Bin()).parent_path() / "modelreg-net";
  const std::string read = " --root " + root_ + " show risk_model v1.0.0";
  RunResult lean = RunCmd("LD_DEBUG=libs " + Bin() + read);
  RunResult full = RunCmd("LD_DEBUG=libs " + net + read);
  ASSERT_EQ(lean.rc, 0) << lean.err;
  ASSERT_EQ(full.rc, 0) << full.err;
  EXPECT_EQ(lean.out, full.out);
  // The loader's trace names every library it maps.
  EXPECT_TRUE(Has(lean.err, "libc.so")) << lean.err;
  EXPECT_TRUE(Has(full.err, "libcpp-httplib")) << full.err;
  for (const char* lib : {"libcpp-httplib", "libjwt", "libssl"}) {
    EXPECT_FALSE(Has(lean.err, lib)) << lib << " loaded by " << Bin() << ":\n" << lean.err;
  }
}

// A command that needs HTTP runs modelreg-net from the directory of
// `modelreg`, in place of it; without that file it says so.
TEST_F(HelpCli, HttpCommandsRunModelregNetNextToTheBinary) {
  Register("v1.0.0", "--metric ic=0.05 --metric sharpe=1.5");
  const std::string alone = dir_.sub("alone");
  fs::create_directories(alone);
  fs::copy_file(Bin(), alone + "/modelreg");
  const std::string issue =
      "env MODELREG_JWT_SECRET=0123456789abcdef0123456789abcdef %s token issue --sub reader "
      "--scope model:read";
  auto with = [&](const std::string& bin) {
    std::string cmd = issue;
    cmd.replace(cmd.find("%s"), 2, bin);
    return RunCmd(cmd);
  };
  RunResult ok = with(Bin());
  EXPECT_EQ(ok.rc, 0) << ok.err;
  EXPECT_EQ(Lines(ok.out).size(), 1u) << ok.out;
  RunResult missing = with(alone + "/modelreg");
  EXPECT_NE(missing.rc, 0);
  EXPECT_TRUE(Has(missing.err, alone + "/modelreg-net")) << missing.err;
  EXPECT_EQ(missing.out, "");
  // Reads and local writes need no modelreg-net.
  RunResult read = RunCmd(alone + "/modelreg --root " + root_ + " show risk_model v1.0.0");
  EXPECT_EQ(read.rc, 0) << read.err;
}

}  // namespace
}  // namespace modelreg
