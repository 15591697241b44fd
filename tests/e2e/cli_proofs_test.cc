// End-to-end (issue 19): `modelreg keygen`, `modelreg checkpoint` and
// `modelreg verify --checkpoint` on real registries. The case the hash
// chain alone cannot see: a server killed with SIGKILL, its WAL cut short,
// leaves a shorter log whose chain is intact; the last signed checkpoint
// names the events that are gone. A log replaced by another valid log is
// found too, and so are key files others may read.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "support/child.h"
#include "support/raw_db.h"
#include "support/run.h"
#include "support/temp_dir.h"

namespace modelreg {
namespace {

namespace fs = std::filesystem;
using testing::Has;
using testing::RunCmd;
using testing::RunResult;

std::string Bin() { return testing::EnvOr("MODELREG_BIN", "modelreg"); }

class ProofsCli : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.sub("reg");
    fs::create_directories(root_);
    std::ofstream(dir_.sub("model.pkl")) << "weights";
    keys_ = dir_.sub("keys");  // outside the registry, as a witness belongs
    fs::create_directories(keys_);
    mr_ = Bin() + " --root " + root_ + " ";
    RunResult k = RunCmd(Bin() + " keygen --name modelreg.test/reg --out " + keys_ + "/ck");
    ASSERT_EQ(k.rc, 0) << k.err;
    witness_ = keys_ + "/witness";
  }
  // One event per registration (no policy file: nothing else is written).
  void Register(const std::string& root, int from, int to, const std::string& env = "") {
    for (int i = from; i <= to; ++i) {
      RunResult r = RunCmd(env + Bin() + " --root " + root + " register risk_model " +
                           dir_.sub("model.pkl") + " --version v1." + std::to_string(i) + ".0");
      ASSERT_EQ(r.rc, 0) << r.err;
    }
  }
  RunResult Checkpoint() {
    return RunCmd(mr_ + "checkpoint --key " + keys_ + "/ck --witness " + witness_);
  }
  RunResult VerifyWithCheckpoint() {
    return RunCmd(mr_ + "verify --checkpoint " + witness_ + " --key " + keys_ + "/ck.pub");
  }

  testing::TempDir dir_;
  std::string root_, keys_, witness_, mr_;
};

TEST_F(ProofsCli, KeysAreMadePrivateAndNeverOverwritten) {
  struct stat st {};
  ASSERT_EQ(::stat((keys_ + "/ck").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const std::string before = testing::Slurp(keys_ + "/ck");
  RunResult again = RunCmd(Bin() + " keygen --name other --out " + keys_ + "/ck");
  EXPECT_NE(again.rc, 0);
  EXPECT_TRUE(Has(again.err, "already exists")) << again.err;
  EXPECT_EQ(testing::Slurp(keys_ + "/ck"), before);
  RunResult bad_name = RunCmd(Bin() + " keygen --name 'a b' --out " + keys_ + "/x");
  EXPECT_EQ(bad_name.rc, 2) << bad_name.err;
  EXPECT_FALSE(fs::exists(keys_ + "/x"));

  Register(root_, 1, 1);
  ASSERT_EQ(::chmod((keys_ + "/ck").c_str(), 0644), 0);
  RunResult shared = Checkpoint();
  EXPECT_NE(shared.rc, 0);
  EXPECT_TRUE(Has(shared.err, "may be read by other users")) << shared.err;
  EXPECT_FALSE(fs::exists(witness_)) << "nothing signed with a key others may have read";
  // The private key as a verifier key, and a verifier key as a signer: refused.
  ASSERT_EQ(::chmod((keys_ + "/ck").c_str(), 0600), 0);
  ASSERT_EQ(Checkpoint().rc, 0);
  RunResult swapped = RunCmd(mr_ + "verify --checkpoint " + witness_ + " --key " + keys_ + "/ck");
  EXPECT_NE(swapped.rc, 0);
  EXPECT_TRUE(Has(swapped.err, "signing (private) key")) << swapped.err;
}

TEST_F(ProofsCli, CheckpointsOfAGrowingLogVerify) {
  Register(root_, 1, 3);
  RunResult c = Checkpoint();
  ASSERT_EQ(c.rc, 0) << c.err;
  const auto lines = testing::Lines(c.out);
  ASSERT_GE(lines.size(), 6u) << c.out;
  EXPECT_EQ(lines[0], "modelreg.test/reg");
  EXPECT_EQ(lines[1], "3");
  EXPECT_EQ(lines[4], "");
  EXPECT_EQ(lines[5].rfind("\xE2\x80\x94 modelreg.test/reg ", 0), 0u) << lines[5];
  Register(root_, 4, 5);
  ASSERT_EQ(Checkpoint().rc, 0);
  RunResult v = VerifyWithCheckpoint();
  EXPECT_EQ(v.rc, 0) << v.err;
  EXPECT_TRUE(Has(v.out, "checkpoints OK")) << v.out;
  // A checkpoint signed by another key is not taken for ours.
  RunResult k2 = RunCmd(Bin() + " keygen --name modelreg.test/reg --out " + keys_ + "/other");
  ASSERT_EQ(k2.rc, 0);
  RunResult wrong = RunCmd(mr_ + "verify --checkpoint " + witness_ + " --key " + keys_ +
                           "/other.pub");
  EXPECT_NE(wrong.rc, 0);
  EXPECT_TRUE(Has(wrong.err, "not signed by key")) << wrong.err;
  // A size edited in the witness file breaks the signature.
  std::string text = testing::Slurp(witness_);
  text.replace(text.find("\n3\n"), 3, "\n2\n");
  std::ofstream(witness_, std::ios::trunc) << text;
  RunResult edited = VerifyWithCheckpoint();
  EXPECT_NE(edited.rc, 0);
  EXPECT_TRUE(Has(edited.err, "does not verify")) << edited.err;
}

// The case: acknowledged writes through a server, a checkpoint,
// SIGKILL, the WAL cut short. `verify` alone passes on the shorter log;
// with the checkpoint it fails and names the size it expected.
TEST_F(ProofsCli, TruncatedWalAfterAKilledServerIsCaughtByTheCheckpoint) {
  Register(root_, 1, 2);  // in table files after the server's open
  const std::string secret = "0123456789abcdef0123456789abcdef-proofs-secret";
  auto server = std::make_unique<testing::Child>(std::vector<std::string>{
      "/bin/sh", "-c",
      "exec env MODELREG_JWT_SECRET=" + secret + " " + mr_ +
          "serve --listen 127.0.0.1:0 --exit-after 300"});
  for (int i = 0; i < 300 && server->Lines().empty(); ++i) server->ReadFor(100);
  ASSERT_FALSE(server->Lines().empty()) << "the server never announced itself";
  RunResult token = RunCmd("env MODELREG_JWT_SECRET=" + secret + " " + mr_ +
                           "token issue --sub carol --scope model:write --ttl 1h");
  ASSERT_EQ(token.rc, 0) << token.err;
  const std::string as_writer =
      "env MODELREG_TOKEN=" + token.out.substr(0, token.out.find('\n')) + " ";
  Register(root_, 3, 6, as_writer);  // routed to the server: in its WAL only
  RunResult c = Checkpoint();
  ASSERT_EQ(c.rc, 0) << c.err;
  ASSERT_TRUE(Has(c.out, "\n6\n")) << c.out;
  server->Kill();  // SIGKILL

  // Cut the newest WAL: the server's writes are gone.
  fs::path newest;
  for (const auto& e : fs::directory_iterator(root_ + "/registry")) {
    if (e.path().extension() == ".log" &&
        (newest.empty() || e.path().filename() > newest.filename())) {
      newest = e.path();
    }
  }
  ASSERT_FALSE(newest.empty());
  ASSERT_GT(fs::file_size(newest), 0u) << "the server's writes should be in " << newest;
  fs::resize_file(newest, 0);

  RunResult plain = RunCmd(mr_ + "verify");
  ASSERT_EQ(plain.rc, 0) << plain.err;
  EXPECT_TRUE(Has(plain.out, "chain OK: 2 events")) << plain.out;
  RunResult v = VerifyWithCheckpoint();
  EXPECT_EQ(v.rc, 5) << v.out << v.err;
  EXPECT_TRUE(Has(v.err, "covers 6 events, but the log has only 2")) << v.err;
  EXPECT_TRUE(Has(v.err, "expected at least 6 events")) << v.err;
}

// Another registry's log, valid in itself, with the same number of events,
// in place of ours: its chain and tree verify, the checkpoint does not.
TEST_F(ProofsCli, ALogReplacedByAnotherValidLogIsFound) {
  Register(root_, 1, 3);
  ASSERT_EQ(Checkpoint().rc, 0);
  const std::string other = dir_.sub("other");
  fs::create_directories(other);
  Register(other, 1, 3);  // same commands, other ids and times
  fs::remove_all(root_ + "/registry");
  fs::copy(other + "/registry", root_ + "/registry", fs::copy_options::recursive);
  RunResult plain = RunCmd(mr_ + "verify");
  EXPECT_TRUE(Has(plain.out, "chain OK: 3 events")) << plain.out << plain.err;
  RunResult v = VerifyWithCheckpoint();
  EXPECT_EQ(v.rc, 5) << v.out << v.err;
  EXPECT_TRUE(Has(v.err, "signed a different tree of 3 events")) << v.err;
}

// A proof document checks without the registry, and every edit of it
// fails with a one-line reason.
TEST_F(ProofsCli, ProofDocumentsCheckAndEditedOnesFail) {
  Register(root_, 1, 5);
  ASSERT_EQ(Checkpoint().rc, 0);  // signs 5 events
  Register(root_, 6, 7);
  const std::string pub = " --key " + keys_ + "/ck.pub";
  RunResult p = RunCmd(mr_ + "prove event 2 5 --key " + keys_ + "/ck");
  ASSERT_EQ(p.rc, 0) << p.err;
  const std::string proof = dir_.sub("proof.json");
  std::ofstream(proof) << p.out;
  RunResult ok = RunCmd(Bin() + " verify-proof " + proof + pub);
  EXPECT_EQ(ok.rc, 0) << ok.err;
  EXPECT_TRUE(Has(ok.out, "proof OK: 2 event(s) in the tree of 7 events")) << ok.out;
  EXPECT_EQ(testing::Lines(ok.out).size(), 1u);

  // Against the witness file's checkpoint, and consistency from it.
  RunResult old = RunCmd(mr_ + "prove event 3 --checkpoint " + witness_);
  ASSERT_EQ(old.rc, 0) << old.err;
  std::ofstream(dir_.sub("old.json")) << old.out;
  EXPECT_EQ(RunCmd(Bin() + " verify-proof " + dir_.sub("old.json") + pub).rc, 0);
  RunResult too_new = RunCmd(mr_ + "prove event 6 --checkpoint " + witness_);
  EXPECT_NE(too_new.rc, 0);
  EXPECT_TRUE(Has(too_new.err, "no checkpoint in")) << too_new.err;
  RunResult c = RunCmd(mr_ + "prove consistency --from " + witness_ + " --key " + keys_ + "/ck");
  ASSERT_EQ(c.rc, 0) << c.err;
  std::ofstream(dir_.sub("cons.json")) << c.out;
  RunResult cok = RunCmd(Bin() + " verify-proof " + dir_.sub("cons.json") + pub);
  EXPECT_EQ(cok.rc, 0) << cok.err;
  EXPECT_TRUE(Has(cok.out, "the signed tree of 5 events is a prefix of it")) << cok.out;

  // Edits: each must fail, with one line on stderr.
  const std::vector<std::pair<std::string, std::string>> edits = {
      {"\"seq\": 2", "\"seq\": 3"},                      // another event's number
      {"\"actor\": \"", "\"actor\": \"x"},                 // the JSON shown
      {"\"inclusion_path\": [\n        \"", "\"inclusion_path\": [\n        \"0"},  // a path hash
      {"\\n7\\n", "\\n8\\n"},                              // the signed size
  };
  for (const auto& [from, to] : edits) {
    std::string text = p.out;
    const auto at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
    const std::string edited = dir_.sub("edited.json");
    std::ofstream(edited, std::ios::trunc) << text;
    RunResult bad = RunCmd(Bin() + " verify-proof " + edited + pub);
    EXPECT_NE(bad.rc, 0) << "edit " << from << " -> " << to << " passed";
    EXPECT_EQ(testing::Lines(bad.err).size(), 1u) << bad.err;
  }
  // Another key, and a file that is not a proof.
  ASSERT_EQ(RunCmd(Bin() + " keygen --name modelreg.test/reg --out " + keys_ + "/k2").rc, 0);
  EXPECT_NE(RunCmd(Bin() + " verify-proof " + proof + " --key " + keys_ + "/k2.pub").rc, 0);
  std::ofstream(dir_.sub("deep.json")) << std::string(100000, '[');
  RunResult deep = RunCmd(Bin() + " verify-proof " + dir_.sub("deep.json") + pub);
  EXPECT_EQ(deep.rc, 2) << deep.err;
  RunResult dir = RunCmd(Bin() + " verify-proof " + keys_ + pub);
  EXPECT_NE(dir.rc, 0);
}

// After the log is replaced, the registry refuses to prove against the
// checkpoint it no longer extends, and a proof made before still checks
// (it carries its evidence) while one made from the new log does not
// check against the old checkpoint.
TEST_F(ProofsCli, ProofsAfterTheLogWasReplaced) {
  Register(root_, 1, 3);
  ASSERT_EQ(Checkpoint().rc, 0);
  RunResult before = RunCmd(mr_ + "prove event 2 --checkpoint " + witness_);
  ASSERT_EQ(before.rc, 0) << before.err;
  const std::string other = dir_.sub("other");
  fs::create_directories(other);
  Register(other, 1, 3);
  fs::remove_all(root_ + "/registry");
  fs::copy(other + "/registry", root_ + "/registry", fs::copy_options::recursive);
  RunResult after = RunCmd(mr_ + "prove event 2 --checkpoint " + witness_);
  EXPECT_NE(after.rc, 0);
  EXPECT_TRUE(Has(after.err, "not the ones the checkpoint signed")) << after.err;
  std::ofstream(dir_.sub("before.json")) << before.out;
  EXPECT_EQ(RunCmd(Bin() + " verify-proof " + dir_.sub("before.json") + " --key " + keys_ +
                   "/ck.pub").rc,
            0);
  // The new log's event 2 under the old signed checkpoint: not included.
  RunResult fresh = RunCmd(mr_ + "prove event 2 --key " + keys_ + "/ck");
  ASSERT_EQ(fresh.rc, 0) << fresh.err;
  nlohmann::json forged = nlohmann::json::parse(fresh.out);
  forged["checkpoint"] = nlohmann::json::parse(before.out)["checkpoint"];
  std::ofstream(dir_.sub("forged.json")) << forged.dump();
  RunResult f = RunCmd(Bin() + " verify-proof " + dir_.sub("forged.json") + " --key " + keys_ +
                       "/ck.pub");
  EXPECT_NE(f.rc, 0);
  EXPECT_TRUE(Has(f.err, "is not in the signed tree")) << f.err;
}

// The regulator's document: `audit --at T --prove` carries the answer and
// the events it rests on (registration, promotion), each with its proof.
TEST_F(ProofsCli, AuditProveCarriesTheEventsTheAnswerRestsOn) {
  Register(root_, 1, 2);
  RunResult promote = RunCmd(mr_ + "promote risk_model v1.2.0 --override-gates --reason weekly");
  ASSERT_EQ(promote.rc, 0) << promote.err;
  Register(root_, 3, 3);  // not production: its registration is not evidence
  RunResult a = RunCmd(mr_ + "audit --at now risk_model --prove --key " + keys_ + "/ck");
  ASSERT_EQ(a.rc, 0) << a.err;
  nlohmann::json doc = nlohmann::json::parse(a.out);
  ASSERT_TRUE(doc.contains("answer"));
  EXPECT_EQ(doc["answer"]["models"][0]["production"], "v1.2.0") << doc["answer"].dump();
  std::vector<std::string> types;
  for (const auto& e : doc["events"]) types.push_back(e["event"]["type"]);
  EXPECT_EQ(types, (std::vector<std::string>{"ModelRegistered", "ModelPromoted"}));
  EXPECT_EQ(doc["events"][0]["seq"], 2);
  EXPECT_EQ(doc["events"][1]["seq"], 3);
  std::ofstream(dir_.sub("audit.json")) << a.out;
  RunResult v = RunCmd(Bin() + " verify-proof " + dir_.sub("audit.json") + " --key " + keys_ +
                       "/ck.pub");
  EXPECT_EQ(v.rc, 0) << v.err;
  EXPECT_TRUE(Has(v.out, "proof OK: 2 event(s) in the tree of 4 events")) << v.out;
  // Without a signed tree to prove against: a clear error.
  RunResult none = RunCmd(mr_ + "audit --at now --prove");
  EXPECT_EQ(none.rc, 2) << none.err;
  EXPECT_TRUE(Has(none.err, "--checkpoint FILE or --key FILE")) << none.err;
}

// `serve --checkpoint-key` signs one at start and then every N events,
// each appended to the witness file, and serves the latest over HTTP.
TEST_F(ProofsCli, ServePublishesCheckpointsToTheWitnessFile) {
  Register(root_, 1, 1);
  const std::string secret = "0123456789abcdef0123456789abcdef-proofs-secret";
  auto server = std::make_unique<testing::Child>(std::vector<std::string>{
      "/bin/sh", "-c",
      "exec env MODELREG_JWT_SECRET=" + secret + " " + mr_ +
          "serve --listen 127.0.0.1:0 --exit-after 300 --checkpoint-key " + keys_ +
          "/ck --witness " + witness_ + " --checkpoint-every 0 --checkpoint-every-events 2"});
  for (int i = 0; i < 300 && server->Lines().empty(); ++i) server->ReadFor(100);
  ASSERT_FALSE(server->Lines().empty()) << "the server never announced itself";
  RunResult token = RunCmd("env MODELREG_JWT_SECRET=" + secret + " " + mr_ +
                           "token issue --sub carol --scope model:write --ttl 1h");
  ASSERT_EQ(token.rc, 0) << token.err;
  Register(root_, 2, 5, "env MODELREG_TOKEN=" + token.out.substr(0, token.out.find('\n')) + " ");
  // A proof of event 5 over HTTP: signed on the spot if the periodic
  // checkpoint has not covered it yet.
  const std::string url = server->Lines()[0].substr(server->Lines()[0].rfind(' ') + 1);
  httplib::Client client(url);
  auto got = client.Get("/api/v1/proofs/events/5",
                        {{"Authorization", "Bearer " + token.out.substr(0, token.out.find('\n'))}});
  ASSERT_TRUE(got);
  ASSERT_EQ(got->status, 200) << got->body;
  std::ofstream(dir_.sub("p5.json")) << got->body;
  RunResult v = RunCmd(Bin() + " verify-proof " + dir_.sub("p5.json") + " --key " + keys_ + "/ck.pub");
  EXPECT_EQ(v.rc, 0) << v.err << got->body.substr(0, 300);
  EXPECT_TRUE(Has(v.out, "in the tree of 5 events")) << v.out;
  RunResult w = VerifyWithCheckpoint();
  EXPECT_EQ(w.rc, 0) << w.err;
  std::string text = testing::Slurp(witness_);
  std::size_t count = 0;
  for (std::size_t at = 0; (at = text.find("\xE2\x80\x94 ", at)) != std::string::npos; ++at) ++count;
  // One at start (1 event) and at least one covering all 5 (the server
  // looks every 200 ms, so several appends may share one checkpoint).
  EXPECT_GE(count, 2u) << text;
  EXPECT_TRUE(Has(text, "modelreg.test/reg\n1\n")) << text;
  EXPECT_TRUE(Has(text, "modelreg.test/reg\n5\n")) << text;
}

// A damaged tree node: verify names it and points at the rebuild, which
// rewrites the tree from the events; the checkpoint still verifies.
TEST_F(ProofsCli, ADamagedTreeIsRebuiltFromTheLog) {
  Register(root_, 1, 6);
  ASSERT_EQ(Checkpoint().rc, 0);
  std::string key(1, '\x01');
  key += std::string("\0\0\0\0\0\0\0\x01", 8);  // level 1, index 1: events 3 and 4
  testing::RawPut(root_ + "/registry", "merkle", key, [](std::string v) {
    v[0] = static_cast<char>(v[0] ^ 0x01);
    return v;
  });
  RunResult bad = RunCmd(mr_ + "verify");
  EXPECT_EQ(bad.rc, 5) << bad.err;
  EXPECT_TRUE(Has(bad.err, "Merkle tree damaged at event 4")) << bad.err;
  EXPECT_TRUE(Has(bad.err, "rebuild` rewrites it")) << bad.err;
  RunResult rebuilt = RunCmd(testing::EnvOr("MODELREG_REPLAY_BIN", "modelreg-replay") + " --root " +
                             root_ + " rebuild");
  EXPECT_EQ(rebuilt.rc, 0) << rebuilt.err;
  EXPECT_TRUE(Has(rebuilt.err, "rebuilding it from the log")) << rebuilt.err;
  RunResult v = VerifyWithCheckpoint();
  EXPECT_EQ(v.rc, 0) << v.err;
}

// Every backup records its tree's root; with a key, a signed checkpoint
// too, appended to <root>/backups/checkpoints (a witness copy that travels
// with the backups). backup verify checks the restored tree against it.
TEST_F(ProofsCli, BackupsCarryTheirTreeAndACheckpoint) {
  Register(root_, 1, 3);
  RunResult b = RunCmd(mr_ + "--json backup create --checkpoint-key " + keys_ + "/ck");
  ASSERT_EQ(b.rc, 0) << b.err;
  nlohmann::json j = nlohmann::json::parse(b.out);
  ASSERT_TRUE(j.contains("tree_root") && j.contains("checkpoint")) << b.out;
  EXPECT_TRUE(Has(j["checkpoint"].get<std::string>(), "modelreg.test/reg\n3\n"));
  const std::string copies = root_ + "/backups/checkpoints";
  RunResult v = RunCmd(mr_ + "verify --checkpoint " + copies + " --key " + keys_ + "/ck.pub");
  EXPECT_EQ(v.rc, 0) << v.err;
  RunResult bv = RunCmd(mr_ + "backup verify latest");
  EXPECT_EQ(bv.rc, 0) << bv.err;
  // Without a key: the root only.
  Register(root_, 4, 4);
  RunResult plain = RunCmd(mr_ + "--json backup create");
  ASSERT_EQ(plain.rc, 0) << plain.err;
  nlohmann::json p = nlohmann::json::parse(plain.out);
  EXPECT_TRUE(p.contains("tree_root"));
  EXPECT_FALSE(p.contains("checkpoint"));
  ASSERT_EQ(::chmod((keys_ + "/ck").c_str(), 0640), 0);
  RunResult shared = RunCmd(mr_ + "backup create --checkpoint-key " + keys_ + "/ck");
  EXPECT_NE(shared.rc, 0);
  EXPECT_TRUE(Has(shared.err, "may be read by other users")) << shared.err;
}

// The tamper cases against a checkpoint, besides the truncation and
// the replacement above: a flipped byte of an event and two events swapped.
// verify with the checkpoint names each, and a proof made before the
// tampering can no longer be made against that checkpoint.
TEST_F(ProofsCli, FlippedAndReorderedEventsAreNamed) {
  Register(root_, 1, 4);
  ASSERT_EQ(Checkpoint().rc, 0);
  ASSERT_EQ(RunCmd(mr_ + "prove event 2 --checkpoint " + witness_).rc, 0);
  const std::string log = root_ + "/registry";
  auto be64 = [](std::uint64_t v) {
    std::string k(8, '\0');
    for (int i = 7; i >= 0; --i, v >>= 8) k[static_cast<std::size_t>(i)] = static_cast<char>(v & 0xff);
    return k;
  };
  // A flipped byte in event 3.
  testing::RawPut(log, "events", be64(3), [](std::string v) {
    v[v.size() / 2] = static_cast<char>(v[v.size() / 2] ^ 0x20);
    return v;
  });
  RunResult flipped = VerifyWithCheckpoint();
  EXPECT_EQ(flipped.rc, 5) << flipped.err;
  EXPECT_TRUE(Has(flipped.err, "hash chain broken at event 3")) << flipped.err;
  // No proof of the altered event is handed out; event 2's still holds.
  RunResult altered = RunCmd(mr_ + "prove event 3 --checkpoint " + witness_);
  EXPECT_EQ(altered.rc, 5) << altered.err;
  EXPECT_TRUE(Has(altered.err, "does not match the log's Merkle tree")) << altered.err;
  EXPECT_EQ(RunCmd(mr_ + "prove event 2 --checkpoint " + witness_).rc, 0);
  testing::RawPut(log, "events", be64(3), [](std::string v) {  // back
    v[v.size() / 2] = static_cast<char>(v[v.size() / 2] ^ 0x20);
    return v;
  });
  ASSERT_EQ(VerifyWithCheckpoint().rc, 0);
  // Events 2 and 3 swapped.
  std::string two, three;
  testing::RawPut(log, "events", be64(2), [&](std::string v) { two = v; return v; });
  testing::RawPut(log, "events", be64(3), [&](std::string v) { three = v; return two; });
  testing::RawPut(log, "events", be64(2), [&](std::string) { return three; });
  RunResult swapped = VerifyWithCheckpoint();
  EXPECT_EQ(swapped.rc, 5) << swapped.err;
  EXPECT_TRUE(Has(swapped.err, "hash chain broken at event 2")) << swapped.err;
}

}  // namespace
}  // namespace modelreg
