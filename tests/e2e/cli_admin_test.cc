// End-to-end (issue 17, "one vocabulary"): the admin commands `gc` and
// `backup create` go through the `modelreg serve` that holds a registry,
// with a model:admin token; a backup taken while the server is being
// written to describes exactly what it holds; gc beside registrations in
// flight never deletes a registered artifact; the CLI says when a server
// records the token's subject instead of --actor; `modelreg-replay import`
// takes its target as --to like every command that creates a registry.
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "support/child.h"
#include "support/run.h"
#include "support/temp_dir.h"

namespace modelreg {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::RunCmd;
using testing::RunResult;

const std::string kSecret = "0123456789abcdef0123456789abcdef-admin-secret";

std::string Bin() { return testing::EnvOr("MODELREG_BIN", "modelreg"); }
std::string Replay() { return testing::EnvOr("MODELREG_REPLAY_BIN", "modelreg-replay"); }

// A registry with gates off, served by a child `modelreg serve`.
class ServedRegistry : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.sub("reg");
    fs::create_directories(root_);
    std::ofstream(root_ + "/policy.toml")
        << "[default]\nic = \"off\"\nsharpe = \"off\"\npaper_trading_hours = \"off\"\n";
    std::ofstream(dir_.sub("model.pkl")) << "weights";
    mr_ = Bin() + " --root " + root_ + " ";
    server_ = std::make_unique<testing::Child>(std::vector<std::string>{
        "/bin/sh", "-c",
        "exec env MODELREG_JWT_SECRET=" + kSecret + " " + mr_ +
            "serve --listen 127.0.0.1:0 --exit-after 300"});
    // Waits for the line announcing the address (the server is up).
    for (int i = 0; i < 300 && server_->Lines().empty(); ++i) server_->ReadFor(100);
    ASSERT_FALSE(server_->Lines().empty()) << "the server never announced itself";
    ASSERT_EQ(server_->Lines()[0].rfind("serving ", 0), 0u) << server_->Lines()[0];
    admin_ = Token("root", "model:admin");
    writer_ = Token("carol", "model:write");
  }

  std::string Token(const std::string& sub, const std::string& scope) {
    RunResult t = RunCmd("env MODELREG_JWT_SECRET=" + kSecret + " " + mr_ + "token issue --sub " +
                         sub + " --scope " + scope + " --ttl 1h");
    EXPECT_EQ(t.rc, 0) << t.err;
    return t.out.substr(0, t.out.find('\n'));
  }
  // The CLI with `token` in MODELREG_TOKEN and no MODELREG_ACTOR.
  std::string As(const std::string& token) {
    return "env -u MODELREG_ACTOR MODELREG_TOKEN=" + token + " " + mr_;
  }
  json Events() {
    RunResult r = RunCmd(mr_ + "--json events");
    EXPECT_EQ(r.rc, 0) << r.err;
    json all = json::array();
    std::size_t start = 0;
    for (std::size_t nl; (nl = r.out.find('\n', start)) != std::string::npos; start = nl + 1) {
      all.push_back(json::parse(r.out.substr(start, nl - start)));
    }
    return all;
  }

  testing::TempDir dir_;
  std::string root_, mr_, admin_, writer_;
  std::unique_ptr<testing::Child> server_;
};

TEST_F(ServedRegistry, GcAndBackupCreateGoThroughTheServerWithAnAdminToken) {
  for (int i = 1; i <= 3; ++i) {
    const std::string v = "v" + std::to_string(i) + ".0.0";
    ASSERT_EQ(RunCmd(As(writer_) + "register alpha " + dir_.sub("model.pkl") + " --version " + v).rc,
              0);
  }
  ASSERT_EQ(RunCmd(As(writer_) + "archive alpha v1.0.0").rc, 0);
  const std::size_t events_before = Events().size();

  // No token: busy (exit 7), naming the scope it needs.
  RunResult no_token = RunCmd("env -u MODELREG_TOKEN " + mr_ + "gc --dry-run");
  EXPECT_EQ(no_token.rc, 7) << no_token.err;
  EXPECT_NE(no_token.err.find("model:admin token"), std::string::npos) << no_token.err;
  RunResult no_token_backup = RunCmd("env -u MODELREG_TOKEN " + mr_ + "backup create");
  EXPECT_EQ(no_token_backup.rc, 7) << no_token_backup.err;
  // A write token: permission denied (exit 11) from the server.
  RunResult denied = RunCmd(As(writer_) + "gc --keep 0 --retention-days 0");
  EXPECT_EQ(denied.rc, 11) << denied.err;
  EXPECT_NE(denied.err.find("model:admin"), std::string::npos) << denied.err;
  EXPECT_EQ(RunCmd(As(writer_) + "backup create").rc, 11);
  EXPECT_EQ(Events().size(), events_before) << "a refused command wrote something";
  EXPECT_FALSE(fs::exists(root_ + "/backups/db")) << "a refused backup made a directory";

  // The admin token: a dry run lists v1 and changes nothing.
  RunResult dry = RunCmd(As(admin_) + "--json gc --dry-run --keep 0 --retention-days 0");
  ASSERT_EQ(dry.rc, 0) << dry.err;
  const json d = json::parse(dry.out);
  EXPECT_EQ(d["dry_run"], true);
  ASSERT_EQ(d["items"].size(), 1u) << dry.out;
  EXPECT_EQ(d["items"][0]["version"], "v1.0.0");
  EXPECT_EQ(Events().size(), events_before);
  ASSERT_TRUE(fs::exists(root_ + "/artifacts/alpha/v1.0.0"));

  // The real run purges v1, recorded with the admin token's subject.
  RunResult gc = RunCmd(As(admin_) + "--reason tidy gc --keep 0 --retention-days 0");
  ASSERT_EQ(gc.rc, 0) << gc.err;
  EXPECT_NE(gc.out.find("1 items"), std::string::npos) << gc.out;
  const json events = Events();
  ASSERT_EQ(events.size(), events_before + 1);
  const json& purge = events.back();
  EXPECT_EQ(purge["type"], "ArtifactPurged") << purge.dump();
  EXPECT_EQ(purge["actor"], "root") << purge.dump();
  EXPECT_FALSE(fs::exists(root_ + "/artifacts/alpha/v1.0.0/model.pkl"));

  // backup create through the server, then verify it beside the server.
  RunResult backup = RunCmd(As(admin_) + "--json backup create");
  ASSERT_EQ(backup.rc, 0) << backup.err;
  const json b = json::parse(backup.out);
  EXPECT_EQ(b["id"], 1);
  EXPECT_EQ(b["head_seq"], events.size());
  EXPECT_EQ(b["versions"], 3);
  EXPECT_EQ(b["directory"], root_ + "/backups");
  RunResult verify = RunCmd(mr_ + "backup verify latest");
  EXPECT_EQ(verify.rc, 0) << verify.out << verify.err;

  // The admin API refuses bad bodies without touching anything.
  const std::string first = server_->Lines()[0];
  httplib::Client http(first.substr(first.find("http://")));
  const httplib::Headers auth{{"Authorization", "Bearer " + admin_}};
  for (const std::string body : {R"({"keep": -1})", R"({"keep": 1.5})", R"({"dry_run": "yes"})",
                                 R"({"force": true})", "[]"}) {
    auto r = http.Post("/api/v1/admin/gc", auth, body, "application/json");
    ASSERT_TRUE(r) << body;
    EXPECT_EQ(r->status, 400) << body << ": " << r->body;
  }
  auto extra = http.Post("/api/v1/admin/backups", auth, R"({"to": "/tmp"})", "application/json");
  ASSERT_TRUE(extra);
  EXPECT_EQ(extra->status, 400) << extra->body;
  EXPECT_EQ(Events().size(), events.size());
}

// Appends wait while a backup is taken, so the head and state digest
// recorded with each backup are those of the backed-up log, however busy
// the server is: every backup verifies.
TEST_F(ServedRegistry, BackupsTakenWhileTheServerIsWrittenToAllVerify) {
  const std::string script = dir_.sub("writer.sh");
  std::ofstream(script) << "#!/bin/sh\ni=0\nwhile [ $i -lt 400 ]; do\n  i=$((i+1))\n  "
                        << As(writer_) << "register beta " << dir_.sub("model.pkl")
                        << " --version v1.0.$i >/dev/null || exit 1\n  echo $i\ndone\n";
  fs::permissions(script, fs::perms::owner_all);
  testing::Child writer({"/bin/sh", script});
  for (int i = 0; i < 600 && writer.Lines().size() < 3; ++i) writer.ReadFor(100);
  ASSERT_GE(writer.Lines().size(), 3u) << "the writer never got going";
  std::set<int> ids;
  for (int k = 0; k < 4; ++k) {
    RunResult b = RunCmd(As(admin_) + "--json backup create");
    ASSERT_EQ(b.rc, 0) << b.err;
    ids.insert(json::parse(b.out)["id"].get<int>());
    writer.ReadFor(50);
  }
  const std::size_t written_meanwhile = writer.Lines().size();
  writer.Kill();
  EXPECT_EQ(ids.size(), 4u);
  EXPECT_GE(written_meanwhile, 4u) << "the backups did not overlap with writes";
  for (int id : ids) {
    RunResult v = RunCmd(mr_ + "backup verify " + std::to_string(id));
    EXPECT_EQ(v.rc, 0) << "backup " << id << ": " << v.out << v.err;
  }
}

// gc through the server while registrations (each archived at once, so a
// candidate) stream in: never a registered, unpurged version without its
// artifact, never a staging directory of a registration in flight.
TEST_F(ServedRegistry, GcBesideRegistrationsInFlightKeepsEveryRegisteredArtifact) {
  const std::string script = dir_.sub("writer.sh");
  std::ofstream(script) << "#!/bin/sh\ni=0\nwhile [ $i -lt 60 ]; do\n  i=$((i+1))\n  "
                        << As(writer_) << "register gamma " << dir_.sub("model.pkl")
                        << " --version v2.0.$i >/dev/null || exit 1\n  " << As(writer_)
                        << "archive gamma v2.0.$i >/dev/null || exit 1\n  echo $i\ndone\necho done\n";
  fs::permissions(script, fs::perms::owner_all);
  testing::Child writer({"/bin/sh", script});
  int runs = 0;
  while (writer.Lines().empty() || writer.Lines().back() != "done") {
    RunResult gc = RunCmd(As(admin_) + "gc --keep 0 --retention-days 0");
    ASSERT_EQ(gc.rc, 0) << gc.err;
    ++runs;
    if (!writer.ReadFor(10)) break;  // the writer exited
  }
  writer.ReadToEof();
  ASSERT_FALSE(writer.Lines().empty());
  ASSERT_EQ(writer.Lines().back(), "done") << "a registration or archive failed beside gc";
  EXPECT_GE(runs, 2);
  RunResult list = RunCmd(mr_ + "--json list gamma");
  ASSERT_EQ(list.rc, 0) << list.err;
  const json versions = json::parse(list.out)["versions"];
  ASSERT_EQ(versions.size(), 60u);
  for (const json& v : versions) {
    if (v["purged"] == true) continue;
    EXPECT_TRUE(fs::exists(root_ + "/" + v["artifact_path"].get<std::string>()))
        << v["version"] << " is registered and unpurged but its artifact is gone";
  }
  EXPECT_EQ(RunCmd(mr_ + "verify").rc, 0);
}

TEST_F(ServedRegistry, TheCliSaysWhenTheServerRecordsTheTokenSubjectInsteadOfActor) {
  RunResult as_bob = RunCmd(As(writer_) + "--actor bob register alpha " + dir_.sub("model.pkl") +
                            " --version v1.0.0");
  ASSERT_EQ(as_bob.rc, 0) << as_bob.err;
  EXPECT_NE(as_bob.err.find("records the token's subject 'carol' as the actor, not 'bob'"),
            std::string::npos)
      << as_bob.err;
  EXPECT_EQ(Events().back()["actor"], "carol");
  // MODELREG_ACTOR counts as given too.
  RunResult env_actor = RunCmd("env MODELREG_ACTOR=bob MODELREG_TOKEN=" + writer_ + " " + mr_ +
                               "archive alpha v1.0.0");
  ASSERT_EQ(env_actor.rc, 0) << env_actor.err;
  EXPECT_NE(env_actor.err.find("not 'bob'"), std::string::npos) << env_actor.err;
  // With --json the note is one JSON object on its own line.
  RunResult json_note = RunCmd(As(writer_) + "--json --actor bob register alpha " +
                               dir_.sub("model.pkl") + " --version v4.0.0");
  ASSERT_EQ(json_note.rc, 0) << json_note.err;
  const json note = json::parse(json_note.err.substr(0, json_note.err.find('\n')));
  EXPECT_NE(note["note"]["message"].get<std::string>().find("not 'bob'"), std::string::npos)
      << json_note.err;
  // No note when --actor names the subject, or when no actor was given.
  RunResult same = RunCmd(As(writer_) + "--actor carol register alpha " + dir_.sub("model.pkl") +
                          " --version v2.0.0");
  ASSERT_EQ(same.rc, 0) << same.err;
  EXPECT_EQ(same.err.find("note:"), std::string::npos) << same.err;
  RunResult none = RunCmd(As(writer_) + "register alpha " + dir_.sub("model.pkl") + " --version v3.0.0");
  ASSERT_EQ(none.rc, 0) << none.err;
  EXPECT_EQ(none.err.find("note:"), std::string::npos) << none.err;
}

TEST(ReplayVocabulary, ImportTakesItsTargetAsTo) {
  testing::TempDir dir;
  const std::string root = dir.sub("reg");
  std::ofstream(dir.sub("model.pkl")) << "weights";
  ASSERT_EQ(RunCmd(Bin() + " --root " + root + " register alpha " + dir.sub("model.pkl") +
                   " --version v1.0.0")
                .rc,
            0);
  const std::string file = dir.sub("log.jsonl");
  ASSERT_EQ(RunCmd(Replay() + " --root " + root + " export --to " + file).rc, 0);
  // Without --to: a usage error naming it; nothing created (not even
  // ./data/models in the working directory).
  RunResult missing = RunCmd("cd " + dir.path() + " && env -u MODELREG_ROOT " + Replay() +
                             " import " + file);
  EXPECT_EQ(missing.rc, 2) << missing.err;
  EXPECT_NE(missing.err.find("--to"), std::string::npos) << missing.err;
  EXPECT_FALSE(fs::exists(dir.sub("data")));
  RunResult ok = RunCmd(Replay() + " import " + file + " --to " + dir.sub("copy"));
  ASSERT_EQ(ok.rc, 0) << ok.err;
  EXPECT_EQ(RunCmd(Bin() + " --root " + dir.sub("copy") + " show alpha v1.0.0").rc, 0);
  // materialize --at takes the same time forms as every other --at.
  RunResult now = RunCmd(Replay() + " --root " + root + " materialize --at now --to " +
                         dir.sub("then"));
  ASSERT_EQ(now.rc, 0) << now.err;
  EXPECT_EQ(RunCmd(Bin() + " --root " + dir.sub("then") + " show alpha v1.0.0").rc, 0);
  RunResult before = RunCmd(Replay() + " --root " + root + " materialize --at -30d --to " +
                            dir.sub("empty"));
  ASSERT_EQ(before.rc, 0) << before.err;
  EXPECT_EQ(RunCmd(Bin() + " --root " + dir.sub("empty") + " show alpha v1.0.0").rc, 3);
}

}  // namespace
}  // namespace modelreg
