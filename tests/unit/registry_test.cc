// The registry: lifecycle rules over a real log, real projection rows and
// real artifact files in a temporary directory.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/sha256.h"
#include "events/model_events.h"
#include "events/sample.h"
#include "log/envelope.h"
#include "log/event_store.h"
#include "projection/state.h"
#include "query/query.h"
#include "registry/registry.h"
#include "support/temp_dir.h"

namespace modelreg::registry {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr TimeNs kT0 = 1'736'933'400'000'000'000LL;  // 2025-01-15T09:30:00Z
constexpr TimeNs kSec = 1'000'000'000LL;
constexpr char kRisk[] = "risk_model";
constexpr char kAlpha[] = "alpha_weights";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteAll(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

State Snapshot(const Registry& reg) {
  State s;
  reg.Read([&s](const State& st) { s = st; });
  return s;
}

template <typename T>
Code CodeOf(const Result<T>& r) {
  return r ? Code::kOk : r.error().code();
}

Digest DigestOf(const Registry& reg) { return projection::StateDigest(Snapshot(reg)); }

// At most one production record per type, and it is the one `production` names.
void ExpectOneProductionPerType(const State& s) {
  for (const auto& [type, ts] : s.types) {
    int n = 0;
    std::string which;
    for (const auto& [v, r] : ts.versions) {
      if (r.status == ModelStatus::kProduction) {
        ++n;
        which = v;
      }
    }
    EXPECT_LE(n, 1) << type;
    EXPECT_EQ(ts.production, which) << type;
  }
}

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }

  RegistryOptions Options(bool read_only = false) const {
    RegistryOptions o;
    o.root = root_;
    o.create_if_missing = !read_only;
    o.read_only = read_only;
    o.clock = &clock_;
    return o;
  }

  // These tests are about the lifecycle, not the gates (gates_test.cc):
  // every registry they open has every gate off. Its policy.toml is
  // adopted at the first open: event 1 is that PolicyChanged (kPolicyEvents),
  // the tests' own events follow it.
  static constexpr Seq kPolicyEvents = 1;
  void Open() {
    reg_.reset();
    if (!std::filesystem::exists(root_ + "/policy.toml")) {
      std::filesystem::create_directories(root_);
      std::ofstream(root_ + "/policy.toml")
          << "[default]\nic = \"off\"\nsharpe = \"off\"\npaper_trading_hours = \"off\"\n";
    }
    auto r = Registry::Open(Options());
    ASSERT_TRUE(r) << r.error().ToString();
    reg_ = std::move(*r);
  }

  // Writes an artifact file under its own directory and returns its path.
  std::string Artifact(const std::string& content, const std::string& name = "model.pkl") {
    const std::string dir = dir_.sub("src/" + std::to_string(next_src_++));
    fs::create_directories(dir);
    const std::string path = dir + "/" + name;
    WriteAll(path, content);
    return path;
  }

  Seq Head() const { return modelreg::query::Query(*reg_).Head()->seq; }
  State Now() const { return Snapshot(*reg_); }

  ModelStatus StatusOf(const std::string& type, const std::string& version) const {
    const State s = Now();
    const VersionRecord* r = s.Find(type, version);
    EXPECT_NE(r, nullptr) << type << " " << version;
    return r == nullptr ? ModelStatus::kStaged : r->status;
  }

  std::string Production(const std::string& type) const {
    const State s = Now();
    auto it = s.types.find(type);
    return it == s.types.end() ? std::string() : it->second.production;
  }

  std::string VersionDir(const std::string& type, const std::string& version) const {
    return root_ + "/artifacts/" + type + "/" + version;
  }

  Result<RegisterResult> Register(const std::string& type, const std::string& version,
                                  const std::string& content, const MetadataInput& in = {}) {
    clock_.Advance(kSec);
    return reg_->Register(type, version, Artifact(content), in, actor_);
  }

  void MustRegister(const std::string& type, const std::string& version) {
    auto r = Register(type, version, "weights of " + type + " " + version);
    ASSERT_TRUE(r) << r.error().ToString();
    ASSERT_FALSE(r->already_registered);
  }

  void MustPromote(const std::string& type, const std::string& version) {
    clock_.Advance(kSec);
    auto r = reg_->Promote(type, version, std::nullopt, false, actor_);
    ASSERT_TRUE(r) << r.error().ToString();
  }

  void MustArchive(const std::string& type, const std::string& version) {
    clock_.Advance(kSec);
    auto r = reg_->Archive(type, version, actor_);
    ASSERT_TRUE(r) << r.error().ToString();
  }

  void MustFail(const std::string& type, const std::string& version, bool force = false) {
    clock_.Advance(kSec);
    auto r = reg_->Fail(type, version, force, actor_);
    ASSERT_TRUE(r) << r.error().ToString();
  }

  // Checks that `r` failed with `code` and that nothing was written.
  template <typename T>
  void ExpectRejected(const Result<T>& r, Code code, Seq head_before, const Digest& before,
                      const std::string& what) {
    ASSERT_FALSE(r) << what << ": accepted";
    EXPECT_EQ(r.error().code(), code) << what << ": " << r.error().ToString();
    EXPECT_EQ(Head(), head_before) << what << ": the log moved";
    EXPECT_EQ(DigestOf(*reg_), before) << what << ": the state changed";
  }

  testing::TempDir dir_;
  std::string root_ = dir_.sub("reg");
  ManualClock clock_{kT0};
  Actor actor_{"alice", "testing"};
  std::unique_ptr<Registry> reg_;
  int next_src_ = 0;
};

// --- registration ---

TEST_F(RegistryTest, RegisterStagesAndPublishesTheArtifact) {
  const std::string content = "pretend these are model weights\n";
  MetadataInput in;
  in.metrics = {{"sharpe", 1.5}};
  in.datasets = {{"crsp", "v1.2.3"}};
  in.snapshot_id = "snap_1";
  clock_.Advance(kSec);
  auto r = reg_->Register(kRisk, "v1.0.0", Artifact(content), in, actor_);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_FALSE(r->already_registered);
  const std::string hex = ToHex(Sha256::Of(content));
  EXPECT_EQ(r->record.status, ModelStatus::kStaged);
  EXPECT_EQ(r->record.model_type, kRisk);
  EXPECT_EQ(r->record.version, "v1.0.0");
  EXPECT_EQ(r->record.artifact_name, "model.pkl");
  EXPECT_EQ(r->record.artifact_size, content.size());
  EXPECT_EQ(r->record.artifact_sha256, hex);
  EXPECT_EQ(r->record.registered_seq, kPolicyEvents + 1);
  EXPECT_EQ(r->record.registered_at, kT0 + kSec);
  EXPECT_EQ(r->record.registered_by, "alice");
  EXPECT_EQ(r->record.metrics, (std::map<std::string, double>{{"sharpe", 1.5}}));
  EXPECT_EQ(r->record.snapshot_id, "snap_1");
  EXPECT_EQ(Head(), kPolicyEvents + 1);
  EXPECT_EQ(StatusOf(kRisk, "v1.0.0"), ModelStatus::kStaged);
  EXPECT_EQ(Production(kRisk), "");

  const std::string vdir = VersionDir(kRisk, "v1.0.0");
  ASSERT_TRUE(fs::is_directory(vdir));
  EXPECT_EQ(ReadAll(vdir + "/model.pkl"), content);
  EXPECT_EQ(ReadAll(vdir + "/checksum.sha256"), hex + "  model.pkl\n");
  struct stat st {};
  ASSERT_EQ(::stat((vdir + "/model.pkl").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0444u);
  // Nothing else in the version directory, no staging leftovers.
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(vdir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"checksum.sha256", "metadata.json", "model.pkl"}));
  for (const auto& e : fs::directory_iterator(root_ + "/artifacts/" + kRisk)) {
    EXPECT_EQ(e.path().filename().string(), "v1.0.0");
  }

  const json meta = json::parse(ReadAll(vdir + "/metadata.json"), nullptr, false);
  ASSERT_TRUE(meta.is_object());
  EXPECT_EQ(meta.value("model_type", ""), kRisk);
  EXPECT_EQ(meta.value("version", ""), "v1.0.0");
  EXPECT_EQ(meta.value("artifact_sha256", ""), hex);
  EXPECT_EQ(meta.value("artifact_name", ""), "model.pkl");
  EXPECT_EQ(meta.at("metrics").at("sharpe"), 1.5);

  // The manifest follows the log (written off the command's path; flushed
  // here, as the registry does when it closes).
  ASSERT_TRUE(reg_->FlushManifest().ok());
  const json manifest = json::parse(ReadAll(root_ + "/manifest.json"), nullptr, false);
  ASSERT_TRUE(manifest.is_object());
  EXPECT_EQ(manifest.value("head_seq", Seq{0}), kPolicyEvents + 1);
  const json& manifest_version = manifest.at("types").at(kRisk).at("versions").at(0);
  EXPECT_EQ(manifest_version.at("sha256"), hex);
  EXPECT_EQ(manifest_version.at("status"), "staged");
  EXPECT_EQ(manifest_version.at("artifact_path"), "artifacts/risk_model/v1.0.0/model.pkl");
}

TEST_F(RegistryTest, ReRegisteringIsIdempotentOnlyForTheSameBytesAndMetadata) {
  MetadataInput in;
  in.metrics = {{"sharpe", 1.5}};
  in.metadata_json = R"({"snapshot_id":"snap_1","dataset_version_ids":{"crsp":"v1"},
                         "config":{"lr":0.1}})";
  auto first = Register(kRisk, "v1.0.0", "bytes-A", in);
  ASSERT_TRUE(first) << first.error().ToString();
  const Seq head = Head();
  const Digest digest = DigestOf(*reg_);
  const std::string vdir = VersionDir(kRisk, "v1.0.0");
  const std::string checksum = ReadAll(vdir + "/checksum.sha256");

  auto again = Register(kRisk, "v1.0.0", "bytes-A", in);
  ASSERT_TRUE(again) << again.error().ToString();
  EXPECT_TRUE(again->already_registered);
  EXPECT_EQ(again->record, first->record);
  EXPECT_EQ(Head(), head);
  EXPECT_EQ(DigestOf(*reg_), digest);

  auto other_bytes = Register(kRisk, "v1.0.0", "bytes-B", in);
  ExpectRejected(other_bytes, Code::kConflict, head, digest, "different bytes");
  EXPECT_NE(other_bytes.error().message().find("immutable"), std::string::npos);

  MetadataInput other_metrics = in;
  other_metrics.metrics = {{"sharpe", 1.6}};
  ExpectRejected(Register(kRisk, "v1.0.0", "bytes-A", other_metrics), Code::kConflict, head,
                 digest, "different metrics");

  MetadataInput other_config = in;
  other_config.config_json = R"({"lr":0.2})";
  ExpectRejected(Register(kRisk, "v1.0.0", "bytes-A", other_config), Code::kConflict, head,
                 digest, "different config");

  MetadataInput other_snapshot = in;
  other_snapshot.snapshot_id = "snap_2";
  ExpectRejected(Register(kRisk, "v1.0.0", "bytes-A", other_snapshot), Code::kConflict, head,
                 digest, "different snapshot");

  // Identity fields count when stated: a different model_id, creator or
  // creation time is a different registration.
  for (const char* extra : {R"("model_id":"mdl_other")", R"("created_by":"mallory")",
                            R"("created_at":"2020-01-01T00:00:00Z")"}) {
    MetadataInput other_identity = in;
    other_identity.metadata_json = R"({"snapshot_id":"snap_1","dataset_version_ids":{"crsp":"v1"},
                                       "config":{"lr":0.1},)" + std::string(extra) + "}";
    ExpectRejected(Register(kRisk, "v1.0.0", "bytes-A", other_identity), Code::kConflict, head,
                   digest, extra);
  }

  // The published files were left alone.
  EXPECT_EQ(ReadAll(vdir + "/model.pkl"), "bytes-A");
  EXPECT_EQ(ReadAll(vdir + "/checksum.sha256"), checksum);

  // The same bytes under another version or type are separate registrations.
  auto v2 = Register(kRisk, "v1.0.1", "bytes-A", in);
  ASSERT_TRUE(v2) << v2.error().ToString();
  EXPECT_FALSE(v2->already_registered);
  auto alpha = Register(kAlpha, "v1.0.0", "bytes-A", in);
  ASSERT_TRUE(alpha) << alpha.error().ToString();
  EXPECT_FALSE(alpha->already_registered);
  EXPECT_EQ(Head(), head + 2);
}

TEST_F(RegistryTest, BadRegistrationsWriteNothing) {
  MustRegister(kRisk, "v0.1.0");
  const Seq head = Head();
  const Digest digest = DigestOf(*reg_);

  ExpectRejected(Register("Risk_Models", "v1.0.0", "x"), Code::kInvalidArgument, head, digest,
                 "name outside the grammar");
  EXPECT_FALSE(fs::exists(root_ + "/artifacts/Risk_Models"));
  ExpectRejected(Register("../escape", "v1.0.0", "x"), Code::kInvalidArgument, head, digest,
                 "path type");
  EXPECT_FALSE(fs::exists(dir_.sub("escape")));
  for (const char* bad : {"1.0.0", "v1.0", "v01.0.0", "../v1.0.0", "v1.0.0/..", ""}) {
    ExpectRejected(Register(kRisk, bad, "x"), Code::kInvalidArgument, head, digest,
                   std::string("bad version '") + bad + "'");
  }
  EXPECT_FALSE(fs::exists(VersionDir(kRisk, "v1.0.0")));

  clock_.Advance(kSec);
  ExpectRejected(reg_->Register(kRisk, "v1.0.0", dir_.sub("no/such/file.pkl"), {}, actor_),
                 Code::kNotFound, head, digest, "missing artifact");
  EXPECT_FALSE(fs::exists(VersionDir(kRisk, "v1.0.0")));

  // A directory is not an artifact.
  fs::create_directories(dir_.sub("adir"));
  auto dir_result = reg_->Register(kRisk, "v1.0.0", dir_.sub("adir"), {}, actor_);
  ASSERT_FALSE(dir_result);
  EXPECT_EQ(Head(), head);
  EXPECT_FALSE(fs::exists(VersionDir(kRisk, "v1.0.0")));

  // Reserved artifact names.
  const std::string reserved = Artifact("x", "metadata.json");
  ExpectRejected(reg_->Register(kRisk, "v1.0.0", reserved, {}, actor_), Code::kInvalidArgument,
                 head, digest, "reserved name");
  EXPECT_FALSE(fs::exists(VersionDir(kRisk, "v1.0.0")));

  // Text that is not UTF-8 (it would end up in JSON): file names, flags,
  // the actor.
  const std::string latin1 = Artifact("x", "caf\xe9.pkl");
  ExpectRejected(reg_->Register(kRisk, "v1.0.0", latin1, {}, actor_), Code::kInvalidArgument,
                 head, digest, "latin-1 file name");
  MetadataInput latin1_flags;
  latin1_flags.datasets = {{"crsp", "v1\xff"}};
  ExpectRejected(Register(kRisk, "v1.0.0", "x", latin1_flags), Code::kInvalidArgument, head,
                 digest, "latin-1 dataset version");
  ExpectRejected(reg_->Register(kRisk, "v1.0.0", Artifact("x"), {}, Actor{"caf\xe9", ""}),
                 Code::kInvalidArgument, head, digest, "latin-1 actor");
  ExpectRejected(reg_->Promote(kRisk, "v0.1.0", std::nullopt, false, Actor{"bob", "\xff"}),
                 Code::kInvalidArgument, head, digest, "latin-1 reason");
  EXPECT_FALSE(fs::exists(VersionDir(kRisk, "v1.0.0")));

  // A checksum in the metadata that the file does not match.
  MetadataInput wrong_sum;
  wrong_sum.metadata_json = R"({"checksum_sha256":")" + ToHex(Sha256::Of("other")) + R"("})";
  ExpectRejected(Register(kRisk, "v1.0.0", "x", wrong_sum), Code::kInvalidArgument, head, digest,
                 "checksum mismatch");
  EXPECT_FALSE(fs::exists(VersionDir(kRisk, "v1.0.0")));

  // Bad metadata.
  MetadataInput bad_meta;
  bad_meta.metadata_json = "[1]";
  ExpectRejected(Register(kRisk, "v1.0.0", "x", bad_meta), Code::kInvalidArgument, head, digest,
                 "bad metadata");
  EXPECT_FALSE(fs::exists(VersionDir(kRisk, "v1.0.0")));

  // No staging directories were left behind.
  for (const auto& e : fs::directory_iterator(root_ + "/artifacts/" + kRisk)) {
    EXPECT_EQ(e.path().filename().string(), "v0.1.0");
  }

  // A matching checksum is accepted.
  MetadataInput right_sum;
  right_sum.metadata_json = R"({"checksum_sha256":")" + ToHex(Sha256::Of("x")) + R"("})";
  auto ok = Register(kRisk, "v1.0.0", "x", right_sum);
  ASSERT_TRUE(ok) << ok.error().ToString();
  EXPECT_EQ(Head(), head + 1);
}

TEST_F(RegistryTest, CrashLeftoversAreReplacedByTheNextRegistration) {
  MustRegister(kRisk, "v0.1.0");
  // A crash after publishing but before appending leaves a version
  // directory no event names; a crash while staging leaves a staging one.
  const std::string orphan = VersionDir(kRisk, "v1.0.0");
  fs::create_directories(orphan);
  WriteAll(orphan + "/old.pkl", "orphaned bytes");
  WriteAll(orphan + "/checksum.sha256", "junk");
  ASSERT_EQ(::chmod((orphan + "/old.pkl").c_str(), 0444), 0);
  const std::string staging = root_ + "/artifacts/" + kRisk + "/.staging-deadbeef";
  fs::create_directories(staging);
  WriteAll(staging + "/model.pkl", "half");

  auto r = Register(kRisk, "v1.0.0", "fresh bytes");
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_FALSE(r->already_registered);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(orphan)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"checksum.sha256", "metadata.json", "model.pkl"}));
  EXPECT_EQ(ReadAll(orphan + "/model.pkl"), "fresh bytes");
  EXPECT_EQ(ReadAll(orphan + "/checksum.sha256"),
            ToHex(Sha256::Of("fresh bytes")) + "  model.pkl\n");
  EXPECT_FALSE(fs::exists(staging));
  std::vector<std::string> type_dir;
  for (const auto& e : fs::directory_iterator(root_ + "/artifacts/" + kRisk)) {
    type_dir.push_back(e.path().filename().string());
  }
  std::sort(type_dir.begin(), type_dir.end());
  EXPECT_EQ(type_dir, (std::vector<std::string>{"v0.1.0", "v1.0.0"}));
  auto v = reg_->Validate(kRisk, "v1.0.0", actor_);
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->ok) << v->detail;
}

// manifest.json is derived from the log; whatever is in it, opening the
// registry rewrites it to match (and must not throw: exceptions never
// cross a module's public API).
TEST_F(RegistryTest, OpenRewritesAMissingStaleOrDamagedManifest) {
  MustRegister(kRisk, "v1.0.0");
  MustPromote(kRisk, "v1.0.0");
  const Seq head = Head();
  const std::string manifest = root_ + "/manifest.json";
  const std::vector<std::pair<std::string, std::optional<std::string>>> cases = {
      {"deleted", std::nullopt},
      {"empty", ""},
      {"not JSON", "{ not json"},
      {"not an object", "[1, 2]"},
      {"stale head", R"({"head_seq": 1, "types": {}})"},
      {"head_seq is a string", R"({"head_seq": "2", "types": {}})"},
      {"head_seq is null", R"({"head_seq": null})"},
  };
  for (const auto& [what, content] : cases) {
    SCOPED_TRACE(what);
    reg_.reset();
    if (content) {
      WriteAll(manifest, *content);
    } else {
      fs::remove(manifest);
    }
    Result<std::unique_ptr<Registry>> r;
    EXPECT_NO_THROW(r = Registry::Open(Options()));
    ASSERT_TRUE(r) << r.error().ToString();
    ASSERT_NE(*r, nullptr);
    reg_ = std::move(*r);
    const json m = json::parse(ReadAll(manifest), nullptr, false);
    ASSERT_TRUE(m.is_object()) << ReadAll(manifest);
    ASSERT_TRUE(m.contains("head_seq") && m.at("head_seq").is_number()) << m.dump();
    EXPECT_EQ(m.at("head_seq").get<Seq>(), head);
    EXPECT_EQ(m.at("types").at(kRisk).at("production"), "v1.0.0");
  }
}

// --- the transition table ---

enum class Cmd { kPromote, kArchive, kFail, kFailForce };

const char* CmdName(Cmd c) {
  switch (c) {
    case Cmd::kPromote: return "promote";
    case Cmd::kArchive: return "archive";
    case Cmd::kFail: return "fail";
    case Cmd::kFailForce: return "fail --force";
  }
  return "?";
}

struct TransitionCase {
  ModelStatus from;
  Cmd cmd;
  bool legal;
  ModelStatus to;  // when legal
};

class TransitionTest : public RegistryTest {
 protected:
  // Puts risk_model v1.0.0 into `status`, with v0.9.0 in production beside
  // it unless v1.0.0 is (then v0.9.0 is archived).
  void Prepare(ModelStatus status) {
    MustRegister(kRisk, "v0.9.0");
    MustPromote(kRisk, "v0.9.0");
    MustRegister(kRisk, "v1.0.0");
    switch (status) {
      case ModelStatus::kStaged: break;
      case ModelStatus::kProduction: MustPromote(kRisk, "v1.0.0"); break;
      case ModelStatus::kArchived: MustArchive(kRisk, "v1.0.0"); break;
      case ModelStatus::kFailed: MustFail(kRisk, "v1.0.0"); break;
    }
    ASSERT_EQ(StatusOf(kRisk, "v1.0.0"), status);
  }

  Result<WriteResult> Run(Cmd cmd) {
    clock_.Advance(kSec);
    switch (cmd) {
      case Cmd::kPromote: return reg_->Promote(kRisk, "v1.0.0", std::nullopt, false, actor_);
      case Cmd::kArchive: return reg_->Archive(kRisk, "v1.0.0", actor_);
      case Cmd::kFail: return reg_->Fail(kRisk, "v1.0.0", false, actor_);
      case Cmd::kFailForce: return reg_->Fail(kRisk, "v1.0.0", true, actor_);
    }
    return Err(Status::Internal("unreachable"));
  }
};

TEST_F(TransitionTest, EveryCellOfTheTable) {
  using S = ModelStatus;
  const std::vector<TransitionCase> cases = {
      {S::kStaged, Cmd::kPromote, true, S::kProduction},
      {S::kStaged, Cmd::kArchive, true, S::kArchived},
      {S::kStaged, Cmd::kFail, true, S::kFailed},
      {S::kStaged, Cmd::kFailForce, true, S::kFailed},
      {S::kProduction, Cmd::kPromote, false, S::kProduction},
      {S::kProduction, Cmd::kArchive, false, S::kProduction},
      {S::kProduction, Cmd::kFail, false, S::kProduction},
      {S::kProduction, Cmd::kFailForce, true, S::kFailed},
      {S::kArchived, Cmd::kPromote, true, S::kProduction},
      {S::kArchived, Cmd::kArchive, false, S::kArchived},
      {S::kArchived, Cmd::kFail, true, S::kFailed},
      {S::kArchived, Cmd::kFailForce, true, S::kFailed},
      {S::kFailed, Cmd::kPromote, false, S::kFailed},
      {S::kFailed, Cmd::kArchive, false, S::kFailed},
      {S::kFailed, Cmd::kFail, false, S::kFailed},
      {S::kFailed, Cmd::kFailForce, false, S::kFailed},
  };
  int n = 0;
  for (const TransitionCase& c : cases) {
    const std::string what = std::string(projection::StatusName(c.from)) + " + " + CmdName(c.cmd);
    SCOPED_TRACE(what);
    root_ = dir_.sub("reg-" + std::to_string(n++));
    Open();
    Prepare(c.from);
    if (HasFatalFailure()) return;
    const Seq head = Head();
    const Digest digest = DigestOf(*reg_);
    const std::string production_before = Production(kRisk);
    auto r = Run(c.cmd);
    if (!c.legal) {
      ExpectRejected(r, Code::kFailedPrecondition, head, digest, what);
      EXPECT_EQ(StatusOf(kRisk, "v1.0.0"), c.from);
      EXPECT_EQ(Production(kRisk), production_before);
      EXPECT_FALSE(r.error().message().empty());
    } else {
      ASSERT_TRUE(r) << r.error().ToString();
      EXPECT_EQ(r->seq, head + 1);
      EXPECT_EQ(Head(), head + 1);
      EXPECT_FALSE(r->summary.empty());
      const State s = Now();
      const VersionRecord* rec = s.Find(kRisk, "v1.0.0");
      ASSERT_NE(rec, nullptr);
      EXPECT_EQ(rec->status, c.to);
      EXPECT_EQ(rec->status_seq, head + 1);
      EXPECT_EQ(rec->status_by, "alice");
      if (c.to == S::kProduction) {
        EXPECT_EQ(s.types.at(kRisk).production, "v1.0.0");
        // The previous production version was archived.
        EXPECT_EQ(s.Find(kRisk, "v0.9.0")->status, S::kArchived);
        EXPECT_EQ(s.types.at(kRisk).history.back().replaced_version, "v0.9.0");
      } else if (c.from == S::kProduction) {
        // fail --force of production leaves the type without production.
        EXPECT_EQ(s.types.at(kRisk).production, "");
        EXPECT_NE(r->summary.find("no production"), std::string::npos) << r->summary;
      } else {
        EXPECT_EQ(s.types.at(kRisk).production, "v0.9.0");
        EXPECT_EQ(s.Find(kRisk, "v0.9.0")->status, S::kProduction);
      }
    }
    ExpectOneProductionPerType(Now());
    auto v = reg_->Verify();
    ASSERT_TRUE(v) << v.error().ToString();
    EXPECT_TRUE(v->chain.ok);
    EXPECT_TRUE(v->projection_ok);
  }
}

TEST_F(RegistryTest, CommandsOnUnknownOrInvalidNamesAreRejected) {
  MustRegister(kRisk, "v1.0.0");
  MustPromote(kRisk, "v1.0.0");
  const Seq head = Head();
  const Digest d = DigestOf(*reg_);
  ExpectRejected(reg_->Promote(kRisk, "v2.0.0", std::nullopt, false, actor_), Code::kNotFound, head, d,
                 "promote unknown");
  ExpectRejected(reg_->Archive(kRisk, "v2.0.0", actor_), Code::kNotFound, head, d,
                 "archive unknown");
  ExpectRejected(reg_->Fail(kRisk, "v2.0.0", true, actor_), Code::kNotFound, head, d,
                 "fail unknown");
  ExpectRejected(reg_->Validate(kRisk, "v2.0.0", actor_), Code::kNotFound, head, d,
                 "validate unknown");
  ExpectRejected(reg_->Promote(kAlpha, "v1.0.0", std::nullopt, false, actor_), Code::kNotFound, head, d,
                 "promote in another type");
  ExpectRejected(reg_->Promote("Nope", "v1.0.0", std::nullopt, false, actor_), Code::kInvalidArgument,
                 head, d, "promote bad type");
  ExpectRejected(reg_->Promote(kRisk, "1.0.0", std::nullopt, false, actor_), Code::kInvalidArgument,
                 head, d, "promote bad version");
  ExpectRejected(reg_->Archive("Nope", "v1.0.0", actor_), Code::kInvalidArgument, head, d,
                 "archive bad type");
  ExpectRejected(reg_->Fail(kRisk, "v1.0", true, actor_), Code::kInvalidArgument, head, d,
                 "fail bad version");
  ExpectRejected(reg_->Rollback("Nope", false, actor_), Code::kInvalidArgument, head, d,
                 "rollback bad type");
  ExpectRejected(reg_->Validate(kRisk, "../v1.0.0", actor_), Code::kInvalidArgument, head, d,
                 "validate bad version");
  // fail needs a reason.
  Actor no_reason{"alice", ""};
  ExpectRejected(reg_->Fail(kRisk, "v1.0.0", true, no_reason), Code::kInvalidArgument, head, d,
                 "fail without a reason");
}

TEST_F(RegistryTest, ExactlyOneProductionPerTypeThroughALongSequence) {
  for (const char* v : {"v1.0.0", "v1.1.0", "v1.2.0", "v2.0.0"}) MustRegister(kRisk, v);
  MustRegister(kAlpha, "v1.0.0");
  ExpectOneProductionPerType(Now());
  MustPromote(kRisk, "v1.0.0");
  ExpectOneProductionPerType(Now());
  MustPromote(kAlpha, "v1.0.0");
  ExpectOneProductionPerType(Now());
  MustPromote(kRisk, "v1.1.0");
  ExpectOneProductionPerType(Now());
  EXPECT_EQ(StatusOf(kRisk, "v1.0.0"), ModelStatus::kArchived);
  MustPromote(kRisk, "v1.0.0");  // archived -> production
  ExpectOneProductionPerType(Now());
  EXPECT_EQ(StatusOf(kRisk, "v1.1.0"), ModelStatus::kArchived);
  MustPromote(kRisk, "v2.0.0");
  ExpectOneProductionPerType(Now());
  MustFail(kRisk, "v2.0.0", /*force=*/true);
  ExpectOneProductionPerType(Now());
  EXPECT_EQ(Production(kRisk), "");
  EXPECT_EQ(Production(kAlpha), "v1.0.0");
  MustPromote(kRisk, "v1.2.0");
  ExpectOneProductionPerType(Now());
  EXPECT_EQ(Production(kRisk), "v1.2.0");
  const State s = Now();
  ASSERT_EQ(s.types.at(kRisk).history.size(), 5u);
  EXPECT_EQ(s.types.at(kRisk).history.back().replaced_version, "");  // nothing was production
}

TEST_F(RegistryTest, PromoteWithExpectCurrent) {
  MustRegister(kRisk, "v1.0.0");
  MustRegister(kRisk, "v2.0.0");
  MustRegister(kRisk, "v3.0.0");
  Seq head = Head();
  Digest d = DigestOf(*reg_);
  // Nothing in production yet: only "" matches.
  auto wrong = reg_->Promote(kRisk, "v1.0.0", std::string("v0.1.0"), false, actor_);
  ExpectRejected(wrong, Code::kConflict, head, d, "expect v0.1.0 with none");
  EXPECT_NE(wrong.error().message().find("none"), std::string::npos) << wrong.error().message();
  auto ok = reg_->Promote(kRisk, "v1.0.0", std::string(""), false, actor_);
  ASSERT_TRUE(ok) << ok.error().ToString();

  head = Head();
  d = DigestOf(*reg_);
  ExpectRejected(reg_->Promote(kRisk, "v2.0.0", std::string(""), false, actor_), Code::kConflict, head,
                 d, "expect none with v1.0.0");
  ExpectRejected(reg_->Promote(kRisk, "v2.0.0", std::string("v3.0.0"), false, actor_), Code::kConflict,
                 head, d, "expect v3.0.0 with v1.0.0");
  EXPECT_EQ(Production(kRisk), "v1.0.0");
  EXPECT_EQ(StatusOf(kRisk, "v2.0.0"), ModelStatus::kStaged);
  auto ok2 = reg_->Promote(kRisk, "v2.0.0", std::string("v1.0.0"), false, actor_);
  ASSERT_TRUE(ok2) << ok2.error().ToString();
  EXPECT_EQ(Production(kRisk), "v2.0.0");
  EXPECT_NE(ok2->summary.find("v1.0.0"), std::string::npos) << ok2->summary;
}

// --- rollback ---

TEST_F(RegistryTest, RollbackFollowsHistoryNotVersionOrder) {
  MustRegister(kRisk, "v1.0.0");
  MustRegister(kRisk, "v1.5.0");
  MustRegister(kRisk, "v2.0.0");
  MustPromote(kRisk, "v1.0.0");
  MustPromote(kRisk, "v2.0.0");
  MustPromote(kRisk, "v1.5.0");
  const Seq head = Head();
  clock_.Advance(kSec);
  auto r = reg_->Rollback(kRisk, false, actor_);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->seq, head + 1);
  EXPECT_EQ(Production(kRisk), "v2.0.0");
  EXPECT_EQ(StatusOf(kRisk, "v1.5.0"), ModelStatus::kArchived);
  EXPECT_EQ(StatusOf(kRisk, "v1.0.0"), ModelStatus::kArchived);
  EXPECT_NE(r->summary.find("v1.5.0 -> v2.0.0"), std::string::npos) << r->summary;
  const State s = Now();
  const auto& h = s.types.at(kRisk).history;
  ASSERT_EQ(h.size(), 4u);
  EXPECT_TRUE(h.back().rollback);
  EXPECT_EQ(h.back().version, "v2.0.0");
  EXPECT_EQ(h.back().replaced_version, "v1.5.0");
  EXPECT_EQ(h.back().replaced_status, "archived");
  EXPECT_EQ(h.back().reason, "testing");
  ExpectOneProductionPerType(s);
}

TEST_F(RegistryTest, RollbackWithFailMarksTheCurrentFailed) {
  MustRegister(kRisk, "v1.0.0");
  MustRegister(kRisk, "v2.0.0");
  MustPromote(kRisk, "v1.0.0");
  MustPromote(kRisk, "v2.0.0");
  clock_.Advance(kSec);
  auto r = reg_->Rollback(kRisk, true, actor_);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(Production(kRisk), "v1.0.0");
  EXPECT_EQ(StatusOf(kRisk, "v2.0.0"), ModelStatus::kFailed);
  EXPECT_EQ(Now().types.at(kRisk).history.back().replaced_status, "failed");
  // The failed version cannot come back by promotion...
  const Seq head = Head();
  const Digest d = DigestOf(*reg_);
  ExpectRejected(reg_->Promote(kRisk, "v2.0.0", std::nullopt, false, actor_),
                 Code::kFailedPrecondition, head, d, "promote failed");
  // ...nor by another rollback.
  ExpectRejected(reg_->Rollback(kRisk, false, actor_), Code::kFailedPrecondition, head, d,
                 "rollback to failed");
}

TEST_F(RegistryTest, RollbackWithNothingBeforeIsRefused) {
  MustRegister(kRisk, "v1.0.0");
  Seq head = Head();
  Digest d = DigestOf(*reg_);
  ExpectRejected(reg_->Rollback(kRisk, false, actor_), Code::kFailedPrecondition, head, d,
                 "no production");
  ExpectRejected(reg_->Rollback(kAlpha, false, actor_), Code::kFailedPrecondition, head, d,
                 "type never seen");
  MustPromote(kRisk, "v1.0.0");
  head = Head();
  d = DigestOf(*reg_);
  auto first = reg_->Rollback(kRisk, true, actor_);
  ExpectRejected(first, Code::kFailedPrecondition, head, d, "first production");
  EXPECT_NE(first.error().message().find("first production"), std::string::npos)
      << first.error().message();
  EXPECT_EQ(Production(kRisk), "v1.0.0");

  // After fail --force, a new promotion replaced nothing: nothing to roll back to.
  MustRegister(kRisk, "v2.0.0");
  MustFail(kRisk, "v1.0.0", true);
  MustPromote(kRisk, "v2.0.0");
  head = Head();
  d = DigestOf(*reg_);
  ExpectRejected(reg_->Rollback(kRisk, false, actor_), Code::kFailedPrecondition, head, d,
                 "after fail --force");
}

TEST_F(RegistryTest, RollbackToAFailedVersionIsRefused) {
  MustRegister(kRisk, "v1.0.0");
  MustRegister(kRisk, "v2.0.0");
  MustPromote(kRisk, "v1.0.0");
  MustPromote(kRisk, "v2.0.0");
  MustFail(kRisk, "v1.0.0");  // archived -> failed
  const Seq head = Head();
  const Digest d = DigestOf(*reg_);
  auto r = reg_->Rollback(kRisk, true, actor_);
  ExpectRejected(r, Code::kFailedPrecondition, head, d, "rollback to failed");
  EXPECT_NE(r.error().message().find("v1.0.0"), std::string::npos) << r.error().message();
  EXPECT_EQ(Production(kRisk), "v2.0.0");
  EXPECT_EQ(StatusOf(kRisk, "v2.0.0"), ModelStatus::kProduction);
}

// The rollback rule (docs/lifecycle.md): back to the most recent earlier
// production version that is still promotable, never forth.
TEST_F(RegistryTest, RollbackTwiceGoesFurtherBackNotForth) {
  for (const char* v : {"v1.0.0", "v2.0.0", "v3.0.0"}) {
    MustRegister(kRisk, v);
    MustPromote(kRisk, v);
  }
  auto first = reg_->Rollback(kRisk, false, actor_);
  ASSERT_TRUE(first) << first.error().ToString();
  EXPECT_EQ(first->from, "v3.0.0");
  EXPECT_EQ(first->to, "v2.0.0");
  EXPECT_EQ(Production(kRisk), "v2.0.0");
  auto second = reg_->Rollback(kRisk, false, actor_);
  ASSERT_TRUE(second) << second.error().ToString();
  EXPECT_EQ(second->to, "v1.0.0") << "the old rule re-promoted v3.0.0 here";
  EXPECT_EQ(Production(kRisk), "v1.0.0");
  EXPECT_EQ(StatusOf(kRisk, "v2.0.0"), ModelStatus::kArchived);
  EXPECT_EQ(StatusOf(kRisk, "v3.0.0"), ModelStatus::kArchived);
  // Nothing before v1.0.0: refused, nothing written.
  const Seq head = Head();
  const Digest d = DigestOf(*reg_);
  auto third = reg_->Rollback(kRisk, false, actor_);
  ExpectRejected(third, Code::kFailedPrecondition, head, d, "nothing further back");
  EXPECT_NE(third.error().message().find("no earlier production version"), std::string::npos)
      << third.error().message();
  // A new promotion starts from where the chain is: v1.0.0 then v3.0.0.
  MustPromote(kRisk, "v3.0.0");
  auto back = reg_->Rollback(kRisk, false, actor_);
  ASSERT_TRUE(back) << back.error().ToString();
  EXPECT_EQ(back->to, "v1.0.0");
}

TEST_F(RegistryTest, RollbackSkipsFailedAndPurgedVersions) {
  for (const char* v : {"v1.0.0", "v2.0.0", "v3.0.0", "v4.0.0"}) {
    MustRegister(kRisk, v);
    MustPromote(kRisk, v);
  }
  MustFail(kRisk, "v3.0.0");  // archived -> failed
  auto r = reg_->Rollback(kRisk, false, actor_);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->to, "v2.0.0") << "v3.0.0 is failed";
  EXPECT_EQ(Production(kRisk), "v2.0.0");
  // --fail marks the version rolled away from failed, with the reason.
  auto f = reg_->Rollback(kRisk, true, Actor{"alice", "ic collapsed"});
  ASSERT_TRUE(f) << f.error().ToString();
  EXPECT_EQ(f->to, "v1.0.0");
  EXPECT_EQ(StatusOf(kRisk, "v2.0.0"), ModelStatus::kFailed);
  EXPECT_EQ(Now().Find(kRisk, "v2.0.0")->status_reason, "ic collapsed");
}

TEST_F(RegistryTest, RollbackFailNeedsAReason) {
  MustRegister(kRisk, "v1.0.0");
  MustRegister(kRisk, "v2.0.0");
  MustPromote(kRisk, "v1.0.0");
  MustPromote(kRisk, "v2.0.0");
  const Seq head = Head();
  const Digest d = DigestOf(*reg_);
  for (const char* reason : {"", "  ", "\n"}) {
    auto r = reg_->Rollback(kRisk, true, Actor{"alice", reason});
    ExpectRejected(r, Code::kInvalidArgument, head, d, "rollback --fail without a reason");
    EXPECT_NE(r.error().message().find("--reason"), std::string::npos) << r.error().message();
  }
  // Archiving the current version needs none.
  ASSERT_TRUE(reg_->Rollback(kRisk, false, Actor{"alice", ""}));
}

TEST_F(RegistryTest, RollbackToAChosenEarlierProductionVersion) {
  for (const char* v : {"v1.0.0", "v2.0.0", "v3.0.0", "v4.0.0"}) {
    MustRegister(kRisk, v);
    MustPromote(kRisk, v);
  }
  MustRegister(kRisk, "v5.0.0");  // staged: never production
  MustFail(kRisk, "v2.0.0");
  const Seq head = Head();
  const Digest d = DigestOf(*reg_);
  auto to = [&](const std::string& v) {
    return reg_->Rollback(kRisk, RollbackOptions{false, v, false}, actor_);
  };
  ExpectRejected(to("v5.0.0"), Code::kFailedPrecondition, head, d, "--to never production");
  EXPECT_NE(to("v5.0.0").error().message().find("was never in production"), std::string::npos);
  ExpectRejected(to("v4.0.0"), Code::kFailedPrecondition, head, d, "--to the current version");
  ExpectRejected(to("v2.0.0"), Code::kFailedPrecondition, head, d, "--to a failed version");
  ExpectRejected(to("v9.0.0"), Code::kNotFound, head, d, "--to an unknown version");
  ExpectRejected(to("9.0"), Code::kInvalidArgument, head, d, "--to not a version");
  // Good: straight to v1.0.0; v3.0.0 (jumped over) is not a later target.
  auto r = to("v1.0.0");
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->from, "v4.0.0");
  EXPECT_EQ(r->to, "v1.0.0");
  EXPECT_EQ(Production(kRisk), "v1.0.0");
  EXPECT_EQ(RollbackTarget(Now(), kRisk), "");
  // A version rolled away from may still be chosen explicitly.
  auto fwd = to("v4.0.0");
  ASSERT_TRUE(fwd) << fwd.error().ToString();
  EXPECT_EQ(Production(kRisk), "v4.0.0");
  EXPECT_EQ(RollbackTarget(Now(), kRisk), "") << "v1.0.0 was rolled away from";
}

TEST_F(RegistryTest, RollbackDryRunWritesNothing) {
  MustRegister(kRisk, "v1.0.0");
  MustRegister(kRisk, "v2.0.0");
  MustPromote(kRisk, "v1.0.0");
  MustPromote(kRisk, "v2.0.0");
  const Seq head = Head();
  const Digest d = DigestOf(*reg_);
  auto plan = reg_->Rollback(kRisk, RollbackOptions{true, "", true}, actor_);
  ASSERT_TRUE(plan) << plan.error().ToString();
  EXPECT_TRUE(plan->dry_run);
  EXPECT_EQ(plan->seq, 0u);
  EXPECT_EQ(plan->from, "v2.0.0");
  EXPECT_EQ(plan->to, "v1.0.0");
  EXPECT_NE(plan->summary.find("would roll back risk_model: v2.0.0 -> v1.0.0"), std::string::npos)
      << plan->summary;
  EXPECT_NE(plan->summary.find("would become failed"), std::string::npos) << plan->summary;
  EXPECT_EQ(Head(), head);
  EXPECT_EQ(DigestOf(*reg_), d);
  // A refused dry run is refused like the real command, and writes nothing too.
  auto bad = reg_->Rollback(kRisk, RollbackOptions{false, "v3.0.0", true}, actor_);
  ExpectRejected(bad, Code::kNotFound, head, d, "dry run --to unknown");
  // A dry run with a missing target artifact records nothing either.
  ASSERT_TRUE(fs::remove(VersionDir(kRisk, "v1.0.0") + "/model.pkl"));
  auto missing = reg_->Rollback(kRisk, RollbackOptions{false, "", true}, actor_);
  ExpectRejected(missing, Code::kFailedPrecondition, head, d, "dry run, missing artifact");
}

// The chain is rebuilt from the history rows alone, so rollbacks written by
// the older rule ("undo the last change": back and then forth again) keep
// their meaning, and the new rule continues from them.
TEST(RollbackRule, ChainFromAHistoryWrittenByTheOlderRule) {
  projection::TypeState ts;
  auto promote = [&](const std::string& v, const std::string& replaced) {
    projection::PromotionRecord h;
    h.seq = ts.history.size() + 1;
    h.version = v;
    h.replaced_version = replaced;
    ts.history.push_back(h);
  };
  auto rollback = [&](const std::string& from, const std::string& to) {
    projection::PromotionRecord h;
    h.seq = ts.history.size() + 1;
    h.version = to;
    h.replaced_version = from;
    h.rollback = true;
    ts.history.push_back(h);
  };
  promote("v1", "");
  promote("v2", "v1");
  promote("v3", "v2");
  EXPECT_EQ(RollbackChain(ts), (std::vector<std::string>{"v1", "v2", "v3"}));
  rollback("v3", "v2");
  EXPECT_EQ(RollbackChain(ts), (std::vector<std::string>{"v1", "v2"}));
  rollback("v2", "v3");  // the older rule: rolling back twice went forth
  EXPECT_EQ(RollbackChain(ts), (std::vector<std::string>{"v1", "v3"}));
  promote("v4", "v3");
  rollback("v4", "v1");  // --to over v3
  EXPECT_EQ(RollbackChain(ts), (std::vector<std::string>{"v1"}));
  rollback("", "v2");  // from a version the fold did not know
  EXPECT_EQ(RollbackChain(ts), (std::vector<std::string>{"v1", "v2"}));
}

// Random promote / rollback / rollback --to / fail sequences against a plain
// model of the rule, kept step by step (not rebuilt from the history).
TEST_F(RegistryTest, RollbackRuleAgainstAPlainModel) {
  struct Model {
    std::vector<std::string> chain;  // production stints not rolled away from
    std::map<std::string, ModelStatus> status;
    std::set<std::string> ever_production;
    std::string production;

    std::string Target() const {
      for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
        if (*it == production || status.at(*it) == ModelStatus::kFailed) {
          continue;
        }
        return *it;
      }
      return "";
    }
    void Promote(const std::string& v) {
      if (!production.empty()) status[production] = ModelStatus::kArchived;
      production = v;
      status[v] = ModelStatus::kProduction;
      chain.push_back(v);
      ever_production.insert(v);
    }
    void Rollback(const std::string& to, bool fail) {
      status[production] = fail ? ModelStatus::kFailed : ModelStatus::kArchived;
      if (!chain.empty() && chain.back() == production) chain.pop_back();
      auto it = std::find(chain.rbegin(), chain.rend(), to);
      if (it != chain.rend()) {
        chain.erase(it.base(), chain.end());
      } else {
        chain.push_back(to);
      }
      production = to;
      status[to] = ModelStatus::kProduction;
    }
  };
  for (unsigned seed : {1u, 2u, 3u, 4u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    root_ = dir_.sub("reg" + std::to_string(seed));
    Open();
    std::mt19937 rng(seed);
    auto pick = [&rng](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); };
    Model m;
    std::vector<std::string> versions;
    for (int i = 1; i <= 8; ++i) {
      const std::string v = "v" + std::to_string(i) + ".0.0";
      MustRegister(kRisk, v);
      versions.push_back(v);
      m.status[v] = ModelStatus::kStaged;
    }
    int rollbacks = 0, refusals = 0;
    for (int step = 0; step < 150; ++step) {
      const std::string v = versions[pick(versions.size())];
      const std::size_t op = pick(10);
      const Seq before = Head();
      bool wrote = false;
      std::string what;
      if (op < 4) {  // promote
        what = "promote " + v;
        auto r = reg_->Promote(kRisk, v, std::nullopt, false, actor_);
        const bool legal = m.status[v] == ModelStatus::kStaged || m.status[v] == ModelStatus::kArchived;
        ASSERT_EQ(static_cast<bool>(r), legal) << what << ": " << (r ? "" : r.error().ToString());
        if (legal) m.Promote(v);
        wrote = legal;
      } else if (op < 8) {  // rollback [--fail]
        const bool fail = op == 7;
        what = std::string("rollback") + (fail ? " --fail" : "");
        auto r = reg_->Rollback(kRisk, fail, actor_);
        const std::string want = m.production.empty() ? "" : m.Target();
        ASSERT_EQ(static_cast<bool>(r), !want.empty()) << what << ": " << (r ? r->to : r.error().ToString());
        if (r) {
          ASSERT_EQ(r->to, want) << what;
          m.Rollback(want, fail);
          ++rollbacks;
          wrote = true;
        } else {
          ++refusals;
        }
      } else if (op == 8) {  // rollback --to
        what = "rollback --to " + v;
        auto r = reg_->Rollback(kRisk, RollbackOptions{false, v, false}, actor_);
        const bool legal = !m.production.empty() && v != m.production &&
                           m.ever_production.count(v) != 0 && m.status[v] != ModelStatus::kFailed;
        ASSERT_EQ(static_cast<bool>(r), legal) << what << ": " << (r ? "" : r.error().ToString());
        if (legal) m.Rollback(v, false);
        wrote = legal;
      } else {  // fail a version that is not in production
        what = "fail " + v;
        auto r = reg_->Fail(kRisk, v, false, actor_);
        const bool legal = m.status[v] == ModelStatus::kStaged || m.status[v] == ModelStatus::kArchived;
        ASSERT_EQ(static_cast<bool>(r), legal) << what << ": " << (r ? "" : r.error().ToString());
        if (legal) m.status[v] = ModelStatus::kFailed;
        wrote = legal;
      }
      // Every step: production, every status and the next target agree.
      ASSERT_EQ(Production(kRisk), m.production) << "after " << what;
      const State s = Now();
      for (const auto& [ver, st] : m.status) {
        ASSERT_EQ(s.Find(kRisk, ver)->status, st) << ver << " after " << what;
      }
      ASSERT_EQ(RollbackTarget(s, kRisk), m.production.empty() ? "" : m.Target()) << "after " << what;
      ASSERT_EQ(Head(), before + (wrote ? 1 : 0)) << what;
    }
    EXPECT_GT(rollbacks, 5);
    EXPECT_GT(refusals, 0);
  }
}

TEST_F(RegistryTest, FailOfProductionNeedsForce) {
  MustRegister(kRisk, "v1.0.0");
  MustPromote(kRisk, "v1.0.0");
  const Seq head = Head();
  const Digest d = DigestOf(*reg_);
  auto r = reg_->Fail(kRisk, "v1.0.0", false, actor_);
  ExpectRejected(r, Code::kFailedPrecondition, head, d, "fail production");
  EXPECT_NE(r.error().message().find("rollback"), std::string::npos) << r.error().message();
  auto forced = reg_->Fail(kRisk, "v1.0.0", true, actor_);
  ASSERT_TRUE(forced) << forced.error().ToString();
  EXPECT_EQ(Head(), head + 1);
  EXPECT_EQ(Production(kRisk), "");
  EXPECT_EQ(StatusOf(kRisk, "v1.0.0"), ModelStatus::kFailed);
  EXPECT_EQ(Now().Find(kRisk, "v1.0.0")->status_reason, "testing");
}

// --- validation ---

TEST_F(RegistryTest, ValidateRecordsTheResult) {
  MustRegister(kRisk, "v1.0.0");
  const State s0 = Now();
  const VersionRecord rec = *s0.Find(kRisk, "v1.0.0");
  const std::string path = VersionDir(kRisk, "v1.0.0") + "/" + rec.artifact_name;

  Seq head = Head();
  clock_.Advance(kSec);
  auto ok = reg_->Validate(kRisk, "v1.0.0", actor_);
  ASSERT_TRUE(ok) << ok.error().ToString();
  EXPECT_TRUE(ok->ok);
  EXPECT_EQ(ok->seq, head + 1);
  EXPECT_EQ(Head(), head + 1);
  EXPECT_NE(ok->detail.find(rec.artifact_sha256), std::string::npos) << ok->detail;
  {
    const State s = Now();
    const VersionRecord* r = s.Find(kRisk, "v1.0.0");
    EXPECT_EQ(r->validated_seq, head + 1);
    EXPECT_TRUE(r->validation_ok);
    EXPECT_EQ(r->status, ModelStatus::kStaged);
  }

  // Tamper with the artifact (it is published read-only).
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  WriteAll(path, "tampered bytes");
  head = Head();
  clock_.Advance(kSec);
  auto bad = reg_->Validate(kRisk, "v1.0.0", actor_);
  ASSERT_TRUE(bad) << bad.error().ToString();
  EXPECT_FALSE(bad->ok);
  EXPECT_EQ(bad->seq, head + 1);
  EXPECT_EQ(Head(), head + 1);
  EXPECT_NE(bad->detail.find("sha256"), std::string::npos) << bad->detail;
  EXPECT_NE(bad->detail.find(ToHex(Sha256::Of("tampered bytes"))), std::string::npos)
      << bad->detail;
  {
    const State s = Now();
    const VersionRecord* r = s.Find(kRisk, "v1.0.0");
    EXPECT_EQ(r->validated_seq, head + 1);
    EXPECT_FALSE(r->validation_ok);
    EXPECT_EQ(r->validation_detail, bad->detail);
  }

  // Same size, different bytes.
  const std::string original = "weights of risk_model v1.0.0";
  std::string same_size = original;
  same_size[0] = 'W';
  WriteAll(path, same_size);
  auto bad2 = reg_->Validate(kRisk, "v1.0.0", actor_);
  ASSERT_TRUE(bad2);
  EXPECT_FALSE(bad2->ok);
  // Restored bytes validate again.
  WriteAll(path, original);
  auto good_again = reg_->Validate(kRisk, "v1.0.0", actor_);
  ASSERT_TRUE(good_again);
  EXPECT_TRUE(good_again->ok) << good_again->detail;

  // A deleted artifact.
  ASSERT_TRUE(fs::remove(path));
  head = Head();
  auto gone = reg_->Validate(kRisk, "v1.0.0", actor_);
  ASSERT_TRUE(gone) << gone.error().ToString();
  EXPECT_FALSE(gone->ok);
  EXPECT_EQ(gone->result, "missing");
  EXPECT_EQ(Head(), head + 1);
  EXPECT_FALSE(gone->detail.empty());
  EXPECT_FALSE(Now().Find(kRisk, "v1.0.0")->validation_ok);
  EXPECT_EQ(Now().Find(kRisk, "v1.0.0")->status, ModelStatus::kStaged);
  EXPECT_EQ(bad->result, "mismatch");
  EXPECT_EQ(good_again->result, "ok");
}

// --- time travel ---

TEST_F(RegistryTest, StateAtFollowsTheClock) {
  const TimeNs t_register = kT0 + 10 * kSec;
  const TimeNs t_promote1 = kT0 + 20 * kSec;
  const TimeNs t_promote2 = kT0 + 30 * kSec;
  clock_.Set(t_register);
  ASSERT_TRUE(reg_->Register(kRisk, "v1.0.0", Artifact("one"), {}, actor_));
  ASSERT_TRUE(reg_->Register(kRisk, "v2.0.0", Artifact("two"), {}, actor_));
  clock_.Set(t_promote1);
  ASSERT_TRUE(reg_->Promote(kRisk, "v1.0.0", std::nullopt, false, actor_));
  clock_.Set(t_promote2);
  ASSERT_TRUE(reg_->Promote(kRisk, "v2.0.0", std::nullopt, false, actor_));

  auto before = reg_->StateAt(t_register - 1);
  ASSERT_TRUE(before) << before.error().ToString();
  EXPECT_EQ(before->seq, kPolicyEvents);  // only the policy
  EXPECT_TRUE(before->types.empty());

  // Two events at the same clock reading: the log keeps recorded_at
  // strictly increasing, so the second is recorded 1 ns later.
  auto first = reg_->StateAt(t_register);
  ASSERT_TRUE(first) << first.error().ToString();
  EXPECT_EQ(first->seq, kPolicyEvents + 1);
  EXPECT_NE(first->Find(kRisk, "v1.0.0"), nullptr);
  EXPECT_EQ(first->Find(kRisk, "v2.0.0"), nullptr);
  auto registered = reg_->StateAt(t_register + 1);
  ASSERT_TRUE(registered) << registered.error().ToString();
  EXPECT_EQ(registered->seq, kPolicyEvents + 2);
  EXPECT_EQ(registered->types.at(kRisk).production, "");

  for (TimeNs t : {t_promote1, t_promote1 + 1, t_promote2 - 1}) {
    auto between = reg_->StateAt(t);
    ASSERT_TRUE(between) << between.error().ToString();
    EXPECT_EQ(between->seq, kPolicyEvents + 3) << t;
    EXPECT_EQ(between->types.at(kRisk).production, "v1.0.0") << t;
    EXPECT_EQ(between->Find(kRisk, "v2.0.0")->status, ModelStatus::kStaged) << t;
  }
  for (TimeNs t : {t_promote2, t_promote2 + 1000 * kSec}) {
    auto after = reg_->StateAt(t);
    ASSERT_TRUE(after) << after.error().ToString();
    EXPECT_EQ(after->seq, kPolicyEvents + 4);
    EXPECT_EQ(after->types.at(kRisk).production, "v2.0.0");
    EXPECT_EQ(after->Find(kRisk, "v1.0.0")->status, ModelStatus::kArchived);
    EXPECT_EQ(projection::StateDigest(*after), DigestOf(*reg_));
  }
}

// The parts of a state SnapshotAt fills: versions and production per type.
void ExpectSameVersions(const State& want, const State& got, const std::string& where) {
  EXPECT_EQ(got.seq, want.seq) << where;
  EXPECT_EQ(got.at, want.at) << where;
  std::map<std::string, std::pair<std::map<std::string, VersionRecord>, std::string>> a, b;
  for (const auto& [type, ts] : want.types) {
    if (!ts.versions.empty()) a[type] = {ts.versions, ts.production};
  }
  for (const auto& [type, ts] : got.types) b[type] = {ts.versions, ts.production};
  EXPECT_EQ(a, b) << where;
}

TEST_F(RegistryTest, SnapshotAtAgreesWithTheFoldAtEveryInstant) {
  // Many versions per type, promotions, rollbacks, failures, validations.
  const std::string kOther = "alpha_weights";
  for (int i = 0; i < 6; ++i) {
    const std::string v = "v1." + std::to_string(i) + ".0";
    MustRegister(kRisk, v);
    MustRegister(kOther, v);
    MustPromote(kRisk, v);
    if (i % 2 == 0) MustPromote(kOther, v);
    if (i == 3) {
      clock_.Advance(kSec);
      ASSERT_TRUE(reg_->Rollback(kRisk, /*fail_current=*/true, actor_));
    }
    if (i == 4) MustArchive(kOther, "v1.3.0");
    clock_.Advance(kSec);
    ASSERT_TRUE(reg_->Validate(kRisk, v, actor_));
  }
  const TimeNs end = clock_.NowNs() + kSec;
  auto check = [&](const Registry& reg, const std::string& label) {
    for (TimeNs t = kT0 - kSec; t <= end; t += kSec / 2) {
      auto fold = reg.StateAt(t);
      ASSERT_TRUE(fold) << fold.error().ToString();
      auto snap = reg.SnapshotAt(t);
      ASSERT_TRUE(snap) << snap.error().ToString();
      ExpectSameVersions(*fold, *snap, label + " at " + FormatUtc(t));
      auto one = reg.SnapshotAt(t, kOther);
      ASSERT_TRUE(one) << one.error().ToString();
      State only = *fold;
      std::erase_if(only.types, [&](const auto& kv) { return kv.first != kOther; });
      ExpectSameVersions(only, *one, label + " " + kOther + " at " + FormatUtc(t));
      for (const std::string v : {"v1.0.0", "v1.3.0", "v1.5.0", "v9.0.0"}) {
        auto rec = reg.VersionAt(kRisk, v, t);
        ASSERT_TRUE(rec) << rec.error().ToString();
        const VersionRecord* want = fold->Find(kRisk, v);
        ASSERT_EQ(rec->has_value(), want != nullptr) << label << ' ' << v << " at " << t;
        if (want != nullptr) {
          EXPECT_EQ(**rec, *want) << label << ' ' << v << " at " << t;
        }
      }
    }
  };
  check(*reg_, "writable");
  reg_.reset();
  auto ro = Registry::Open(Options(/*read_only=*/true));
  ASSERT_TRUE(ro) << ro.error().ToString();
  check(**ro, "read-only");
}

// --- persistence ---

TEST_F(RegistryTest, ReopenGivesTheSameStateAndVerifies) {
  MustRegister(kRisk, "v1.0.0");
  MustRegister(kRisk, "v2.0.0");
  MustRegister(kAlpha, "v1.0.0");
  MustPromote(kRisk, "v1.0.0");
  MustPromote(kRisk, "v2.0.0");
  MustPromote(kAlpha, "v1.0.0");
  ASSERT_TRUE(reg_->Rollback(kRisk, true, actor_));
  ASSERT_TRUE(reg_->Validate(kAlpha, "v1.0.0", actor_));
  const Digest before = DigestOf(*reg_);
  const State state_before = Now();
  const Seq head = Head();

  auto v0 = reg_->Verify();
  ASSERT_TRUE(v0) << v0.error().ToString();
  EXPECT_TRUE(v0->chain.ok);
  EXPECT_TRUE(v0->projection_ok);
  EXPECT_EQ(v0->state_digest, before);
  EXPECT_EQ(v0->stored_digest, before);

  Open();
  EXPECT_EQ(Head(), head);
  EXPECT_EQ(DigestOf(*reg_), before);
  EXPECT_EQ(Now().types.at(kRisk).history, state_before.types.at(kRisk).history);
  auto v = reg_->Verify();
  ASSERT_TRUE(v) << v.error().ToString();
  EXPECT_TRUE(v->chain.ok);
  EXPECT_EQ(v->chain.events, head);
  EXPECT_TRUE(v->projection_ok);
  EXPECT_EQ(v->state_digest, before);

  // And it keeps working.
  MustRegister(kRisk, "v3.0.0");
  MustPromote(kRisk, "v3.0.0");
  EXPECT_EQ(Production(kRisk), "v3.0.0");
  auto v2 = reg_->Verify();
  ASSERT_TRUE(v2);
  EXPECT_TRUE(v2->projection_ok);
}

// A registry opened with lazy_state (the local loader's acknowledgements)
// appends an acknowledgement without reading the state: the rows stay
// current and equal a fold of the log, unknown versions are still refused,
// and a later write loads the state and sees the acknowledgement.
TEST_F(RegistryTest, LazyRegistryAcknowledgesWithoutLoadingTheState) {
  MustRegister(kRisk, "v1.0.0");
  MustRegister(kRisk, "v1.1.0");
  ASSERT_TRUE(reg_->Promote(kRisk, "v1.0.0", std::nullopt, false, actor_));
  reg_.reset();
  RegistryOptions o = Options();
  o.lazy_state = true;
  auto lazy = Registry::Open(o);
  ASSERT_TRUE(lazy) << lazy.error().ToString();
  EXPECT_FALSE((*lazy)->StateLoaded());
  auto ack = (*lazy)->Acknowledge(kRisk, events::ConsumerAck{kRisk, "v1.0.0", "svc", true, "", ""},
                                  Actor{"svc", ""});
  ASSERT_TRUE(ack) << ack.error().ToString();
  auto unknown = (*lazy)->Acknowledge(
      kRisk, events::ConsumerAck{kRisk, "v9.9.9", "svc", true, "", ""}, Actor{"svc", ""});
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code(), Code::kNotFound);
  EXPECT_FALSE((*lazy)->StateLoaded());
  auto v = (*lazy)->Verify();  // the "s" row is part of the digest
  ASSERT_TRUE(v) << v.error().ToString();
  EXPECT_TRUE(v->projection_ok) << DescribeProjectionMismatch(*v);
  // A write loads the state, which includes the acknowledgement.
  auto archived = (*lazy)->Archive(kRisk, "v1.1.0", actor_);
  ASSERT_TRUE(archived) << archived.error().ToString();
  EXPECT_TRUE((*lazy)->StateLoaded());
  const State s = Snapshot(**lazy);
  ASSERT_EQ(s.types.at(kRisk).consumers.count("svc"), 1u);
  EXPECT_EQ(s.types.at(kRisk).consumers.at("svc").seq, ack->seq);
  lazy->reset();
  Open();
  EXPECT_EQ(Now().types.at(kRisk).consumers.at("svc").version, "v1.0.0");
}

class ProjectionRowsTest : public RegistryTest {
 protected:
  void SetUp() override {
    RegistryTest::SetUp();
    MustRegister(kRisk, "v1.0.0");
    MustRegister(kRisk, "v2.0.0");
    MustPromote(kRisk, "v1.0.0");
    MustPromote(kRisk, "v2.0.0");
    MustFail(kRisk, "v1.0.0");
    expected_ = DigestOf(*reg_);
    head_ = Head();
    auto early = reg_->StateAt(kT0 + 3 * kSec);
    ASSERT_TRUE(early);
    early_ = *early;
    ASSERT_EQ(early_.seq, kPolicyEvents + 3);
    reg_.reset();
  }

  // Replaces the registry's projection rows with `rows` behind its back.
  void ReplaceProjection(const projection::Rows& rows) {
    StoreOptions so;
    so.create_if_missing = false;
    so.extra_column_families = {"projection"};
    auto store = EventStore::Open(root_ + "/registry", so);
    ASSERT_TRUE(store) << store.error().ToString();
    std::vector<Row> out;
    for (const auto& [k, v] : rows) out.push_back(Row{"projection", k, v});
    Status st = (*store)->ReplaceRows("projection", out, head_);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }

  void ExpectAnswersCorrectly() {
    Open();
    ASSERT_NE(reg_, nullptr);
    EXPECT_EQ(DigestOf(*reg_), expected_);
    EXPECT_EQ(Production(kRisk), "v2.0.0");
    EXPECT_EQ(StatusOf(kRisk, "v1.0.0"), ModelStatus::kFailed);
    auto v = reg_->Verify();
    ASSERT_TRUE(v) << v.error().ToString();
    EXPECT_TRUE(v->chain.ok);
    EXPECT_TRUE(v->projection_ok) << "the rows were not rebuilt";
  }

  Digest expected_{};
  Seq head_ = 0;
  State early_;
};

TEST_F(ProjectionRowsTest, WipedRowsAreRebuiltFromTheLog) {
  ReplaceProjection({});
  // A read-only registry folds the log itself.
  {
    auto ro = Registry::Open(Options(/*read_only=*/true));
    ASSERT_TRUE(ro) << ro.error().ToString();
    EXPECT_EQ(DigestOf(**ro), expected_);
  }
  ExpectAnswersCorrectly();
}

TEST_F(ProjectionRowsTest, StaleRowsAreRebuiltFromTheLog) {
  ReplaceProjection(projection::EncodeState(early_));
  ExpectAnswersCorrectly();
}

TEST_F(ProjectionRowsTest, MalformedRowsAreRebuiltFromTheLog) {
  projection::Rows rows = projection::EncodeState(early_);
  for (auto& [k, v] : rows) {
    if (k == "s") v = R"({"seq":)" + std::to_string(head_) + R"(,"at":0})";
  }
  rows.emplace_back("junk", "x");
  ReplaceProjection(rows);
  ExpectAnswersCorrectly();
}

TEST_F(ProjectionRowsTest, RowsWithoutRecordIndexAreCompletedOnOpen) {
  // A projection written before the versioned record rows existed: right
  // state rows, no record rows, no marker.
  {
    auto ro = Registry::Open(Options(/*read_only=*/true));
    ASSERT_TRUE(ro);
    State now = Snapshot(**ro);
    ro->reset();
    ReplaceProjection(projection::EncodeState(now));
  }
  {
    // Read-only: point-in-time reads fall back to the fold, still right.
    auto ro = Registry::Open(Options(/*read_only=*/true));
    ASSERT_TRUE(ro);
    auto snap = (*ro)->SnapshotAt(kT0 + 3 * kSec);
    ASSERT_TRUE(snap) << snap.error().ToString();
    ExpectSameVersions(early_, *snap, "fallback");
    auto v = (*ro)->Verify();
    ASSERT_TRUE(v);
    EXPECT_FALSE(v->records_ok);
    EXPECT_FALSE(v->projection_ok);
    EXPECT_EQ(v->stored_digest, expected_);  // the state rows themselves are fine
  }
  ExpectAnswersCorrectly();  // a writable open completes the index
  auto snap = reg_->SnapshotAt(kT0 + 3 * kSec);
  ASSERT_TRUE(snap);
  ExpectSameVersions(early_, *snap, "after repair");
}

TEST_F(ProjectionRowsTest, VerifyNoticesAlteredRecordRows) {
  {
    auto ro = Registry::Open(Options(/*read_only=*/true));
    ASSERT_TRUE(ro);
    ro->reset();
  }
  // Drop one record row (keep the marker): the state digest is intact, the
  // record digest is not.
  StoreOptions so;
  so.create_if_missing = false;
  so.extra_column_families = {"projection"};
  std::vector<Row> rows;
  {
    auto store = EventStore::Open(root_ + "/registry", so);
    ASSERT_TRUE(store);
    bool dropped = false;
    ASSERT_TRUE((*store)->ScanRows("projection", [&](std::string_view k, std::string_view v) {
      if (!dropped && k.substr(0, 2) == "r/") {
        dropped = true;
        return true;
      }
      rows.push_back(Row{"projection", std::string(k), std::string(v)});
      return true;
    }).ok());
    ASSERT_TRUE(dropped);
    ASSERT_TRUE((*store)->ReplaceRows("projection", rows, head_).ok());
  }
  Open();
  auto v = reg_->Verify();
  ASSERT_TRUE(v) << v.error().ToString();
  EXPECT_TRUE(v->chain.ok);
  EXPECT_EQ(v->stored_digest, expected_);
  EXPECT_FALSE(v->records_ok);
  EXPECT_FALSE(v->projection_ok);
  EXPECT_NE(registry::DescribeProjectionMismatch(*v).find("record rows"), std::string::npos);
  auto rebuilt = reg_->Rebuild();
  ASSERT_TRUE(rebuilt) << rebuilt.error().ToString();
  auto v2 = reg_->Verify();
  ASSERT_TRUE(v2);
  EXPECT_TRUE(v2->projection_ok);
}

TEST_F(ProjectionRowsTest, RowsOfAnotherFormatAreConvertedOnceOnAWritableOpen) {
  // Right state rows under another format's marker (an earlier release's
  // rows have other bytes too; tests/e2e/row_format_test.cc opens a real
  // one): never read, rewritten on the first writable open, with a message.
  {
    auto ro = Registry::Open(Options(/*read_only=*/true));
    ASSERT_TRUE(ro);
    State now = Snapshot(**ro);
    ro->reset();
    projection::Rows rows = projection::EncodeState(now);
    rows.emplace_back(projection::kIndexMarkerKey, "1");
    ReplaceProjection(rows);
  }
  {
    // Read-only: the rows are not trusted, the answers come from the log.
    auto ro = Registry::Open(Options(/*read_only=*/true));
    ASSERT_TRUE(ro);
    EXPECT_EQ(DigestOf(**ro), expected_);
    auto v = (*ro)->Verify();
    ASSERT_TRUE(v);
    EXPECT_FALSE(v->projection_ok);
    EXPECT_FALSE(v->records_complete);
  }
  std::vector<std::string> warnings;
  RegistryOptions o = Options();
  o.on_warning = [&warnings](const std::string& w) { warnings.push_back(w); };
  for (int round = 0; round < 2; ++round) {
    auto reg = Registry::Open(o);
    ASSERT_TRUE(reg) << reg.error().ToString();
    auto v = (*reg)->Verify();
    ASSERT_TRUE(v);
    EXPECT_TRUE(v->projection_ok) << DescribeProjectionMismatch(*v);
    EXPECT_EQ(v->stored_digest, expected_);
  }
  ASSERT_EQ(warnings.size(), 1u) << "converted more than once, or silently";
  EXPECT_NE(warnings[0].find("converting the projection rows from format 1 to format 2"),
            std::string::npos)
      << warnings[0];
}

TEST_F(ProjectionRowsTest, VerifyNoticesRowsThatDisagreeWithTheLog) {
  // Rows that claim the current head but say something else: the registry
  // trusts them on open, and Verify is what catches it.
  {
    auto ro = Registry::Open(Options(/*read_only=*/true));
    ASSERT_TRUE(ro);
    State doctored = Snapshot(**ro);
    doctored.types.at(kRisk).versions.at("v1.0.0").status = ModelStatus::kArchived;
    ro->reset();
    projection::Rows rows = projection::EncodeState(doctored);
    rows.emplace_back(projection::kIndexMarkerKey, projection::kRowFormat);  // claims to be complete
    ReplaceProjection(rows);
  }
  Open();
  auto v = reg_->Verify();
  ASSERT_TRUE(v) << v.error().ToString();
  EXPECT_TRUE(v->chain.ok);
  EXPECT_FALSE(v->projection_ok);
  EXPECT_EQ(v->state_digest, expected_);
  EXPECT_NE(v->stored_digest, expected_);
}

TEST_F(ProjectionRowsTest, VerifyNoticesAlteredPolicyRows) {
  // The policy rows are part of the state digest: a threshold edited in
  // the rows (not through an event) is a projection mismatch.
  {
    auto ro = Registry::Open(Options(/*read_only=*/true));
    ASSERT_TRUE(ro);
    State doctored = Snapshot(**ro);
    ASSERT_EQ(doctored.policies.size(), 1u);
    doctored.policies[0].text += "[risk_model]\nsharpe = \"> 9\"\n";
    ro->reset();
    projection::Rows rows = projection::EncodeState(doctored);
    rows.emplace_back(projection::kIndexMarkerKey, projection::kRowFormat);
    ReplaceProjection(rows);
  }
  Open();
  auto v = reg_->Verify();
  ASSERT_TRUE(v) << v.error().ToString();
  EXPECT_TRUE(v->chain.ok);
  EXPECT_FALSE(v->projection_ok);
  EXPECT_EQ(v->state_digest, expected_);
  EXPECT_NE(v->stored_digest, expected_);
}

// --- concurrency ---

TEST_F(RegistryTest, ConcurrentPromotionsKeepOneProductionAndAConsistentHistory) {
  const std::vector<std::string> versions = {"v1.0.0", "v2.0.0", "v3.0.0", "v4.0.0"};
  for (const auto& v : versions) MustRegister(kRisk, v);
  MustRegister(kAlpha, "v1.0.0");
  const Seq head0 = Head();

  std::atomic<int> promoted{0}, refused{0}, conflicts{0}, other{0};
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < versions.size(); ++i) {
    threads.emplace_back([&, i] {
      Actor a{"thread-" + std::to_string(i), "race"};
      for (int n = 0; n < 20; ++n) {
        auto r = reg_->Promote(kRisk, versions[i], std::nullopt, false, a);
        if (r) {
          ++promoted;
        } else if (r.error().code() == Code::kFailedPrecondition) {
          ++refused;  // already in production
        } else if (r.error().code() == Code::kConflict) {
          ++conflicts;  // kept losing the race: allowed, nothing written
        } else {
          ++other;
          ADD_FAILURE() << r.error().ToString();
        }
        // Readers run alongside the writers.
        ExpectOneProductionPerType(Snapshot(*reg_));
      }
    });
  }
  for (auto& t : threads) t.join();

  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(promoted + refused + conflicts, 80);
  EXPECT_GE(promoted.load(), 1);
  const State s = Now();
  EXPECT_EQ(Head(), head0 + static_cast<Seq>(promoted.load()));
  EXPECT_EQ(s.seq, Head());
  ExpectOneProductionPerType(s);
  int production = 0;
  for (const auto& [v, r] : s.types.at(kRisk).versions) {
    production += r.status == ModelStatus::kProduction ? 1 : 0;
  }
  EXPECT_EQ(production, 1);
  const auto& history = s.types.at(kRisk).history;
  ASSERT_EQ(history.size(), static_cast<std::size_t>(promoted.load()));
  EXPECT_EQ(history.front().replaced_version, "");
  for (std::size_t i = 1; i < history.size(); ++i) {
    EXPECT_EQ(history[i].replaced_version, history[i - 1].version) << "history record " << i;
    EXPECT_NE(history[i].version, history[i - 1].version) << "history record " << i;
    EXPECT_GT(history[i].seq, history[i - 1].seq);
  }
  EXPECT_EQ(s.types.at(kRisk).production, history.back().version);
  EXPECT_EQ(s.types.at(kAlpha).production, "");

  auto v = reg_->Verify();
  ASSERT_TRUE(v) << v.error().ToString();
  EXPECT_TRUE(v->chain.ok);
  EXPECT_TRUE(v->projection_ok);
  EXPECT_EQ(v->state_digest, DigestOf(*reg_));

  // The persisted rows agree after a reopen too.
  const Digest d = DigestOf(*reg_);
  Open();
  EXPECT_EQ(DigestOf(*reg_), d);
  std::cout << "[          ] promoted " << promoted.load() << ", refused " << refused.load()
            << ", conflicts " << conflicts.load() << "\n";
}

// Every write re-validates against the new state when the head moved
// under it ("a concurrent change makes it re-validate"), and gives up with
// Conflict only after kWriteAttempts (5) attempts. If every retry really
// saw a newer state, each of attempts 2..5 lost to a new event, so the log
// moved at least 4 times while the call ran. Validate appends on every
// call, so four threads validating give plenty of races.
TEST_F(RegistryTest, ConcurrentWritersOnlyGiveUpWhenTheLogReallyKeptChanging) {
  const std::vector<std::string> versions = {"v1.0.0", "v2.0.0", "v3.0.0", "v4.0.0"};
  for (const auto& v : versions) MustRegister(kRisk, v);
  const Seq head0 = Head();
  constexpr int kCalls = 40;

  std::atomic<int> ok{0}, conflicts{0}, spurious{0};
  std::mutex mu;
  std::vector<std::string> spurious_examples;
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < versions.size(); ++i) {
    threads.emplace_back([&, i] {
      Actor a{"validator-" + std::to_string(i), ""};
      for (int n = 0; n < kCalls; ++n) {
        const Seq before = Head();
        auto r = reg_->Validate(kRisk, versions[i], a);
        const Seq after = Head();
        if (r) {
          EXPECT_TRUE(r->ok) << r->detail;
          ++ok;
        } else if (r.error().code() == Code::kConflict) {
          ++conflicts;
          if (after - before < 4) {
            ++spurious;
            std::lock_guard<std::mutex> lock(mu);
            if (spurious_examples.size() < 5) {
              spurious_examples.push_back("'" + r.error().message() + "' while the log moved " +
                                          std::to_string(after - before) + " time(s)");
            }
          }
        } else {
          ADD_FAILURE() << r.error().ToString();
        }
      }
    });
  }
  for (auto& t : threads) t.join();

  std::string examples;
  for (const auto& e : spurious_examples) examples += "\n  " + e;
  EXPECT_EQ(spurious.load(), 0)
      << spurious.load() << " of " << conflicts.load() << " Conflict results (of "
      << versions.size() * kCalls
      << " calls) gave up although the log did not keep changing: retries re-validated against "
         "an in-memory state that had not caught up with the log yet"
      << examples;
  EXPECT_EQ(Head(), head0 + static_cast<Seq>(ok.load()));
  const State s = Now();
  EXPECT_EQ(s.seq, Head());
  for (const auto& v : versions) {
    EXPECT_TRUE(s.Find(kRisk, v)->validation_ok) << v;
    EXPECT_EQ(s.Find(kRisk, v)->status, ModelStatus::kStaged) << v;
  }
  auto verify = reg_->Verify();
  ASSERT_TRUE(verify) << verify.error().ToString();
  EXPECT_TRUE(verify->chain.ok);
  EXPECT_TRUE(verify->projection_ok);
}

// --- read-only and open ---

// The names registered as of each event, from the state in memory and from
// the versioned record rows (a read-only registry), equal the fold.
TEST_F(RegistryTest, ModelTypesAtEveryEventMatchTheFold) {
  // '-' sorts before '/', so "alpha-x" rows come before "alpha" rows.
  const std::vector<std::pair<std::string, std::string>> regs = {
      {"risk_model", "v1.0.0"}, {"alpha", "v1.0.0"},       {"alpha-x", "v1.0.0"},
      {"alpha", "v0.9.0"},      {"zeta_9", "v2.0.0"},      {"alpha_x", "v1.0.0"},
      {"alpha-x", "v0.1.0"},    {"risk_model", "v0.5.0"}};
  const Seq base = Head();  // the fixture's adopted policy.toml, if any
  for (const auto& [t, v] : regs) {
    MustRegister(t, v);
    events::ConsumerAck ack;  // a name only acknowledged is not registered
    ack.consumer_id = "svc";
    ASSERT_TRUE(reg_->Acknowledge("ghost", ack, actor_));
  }
  auto ro = Registry::Open(Options(/*read_only=*/true));
  ASSERT_TRUE(ro) << ro.error().ToString();
  for (Seq seq = 0; seq <= Head(); ++seq) {
    std::vector<std::string> want;
    std::set<std::string> seen;
    for (std::size_t i = 0; i < regs.size() && base + 2 * i + 1 <= seq; ++i) seen.insert(regs[i].first);
    want.assign(seen.begin(), seen.end());
    auto mem = reg_->ModelTypesAt(seq);
    ASSERT_TRUE(mem) << mem.error().ToString();
    EXPECT_EQ(*mem, want) << "in memory, seq " << seq;
    auto rows = (*ro)->ModelTypesAt(seq);
    ASSERT_TRUE(rows) << rows.error().ToString();
    EXPECT_EQ(*rows, want) << "from the rows, seq " << seq;
  }
  auto now = (*ro)->ModelTypesAt();
  ASSERT_TRUE(now);
  EXPECT_EQ(*now, (std::vector<std::string>{"alpha", "alpha-x", "alpha_x", "risk_model", "zeta_9"}));
}

TEST_F(RegistryTest, ReadOnlyRegistrySeesTheStateAsOfItsOpen) {
  MustRegister(kRisk, "v1.0.0");
  MustRegister(kRisk, "v2.0.0");
  MustPromote(kRisk, "v1.0.0");
  const Digest at_open = DigestOf(*reg_);
  const Seq head_at_open = Head();

  auto ro = Registry::Open(Options(/*read_only=*/true));
  ASSERT_TRUE(ro) << ro.error().ToString();
  Registry& reader = **ro;
  EXPECT_EQ(DigestOf(reader), at_open);
  EXPECT_EQ(modelreg::query::Query(reader).Head()->seq, head_at_open);

  // The writer moves on; the reader keeps its view.
  MustPromote(kRisk, "v2.0.0");
  MustRegister(kAlpha, "v1.0.0");
  EXPECT_EQ(DigestOf(reader), at_open);
  EXPECT_EQ(Snapshot(reader).types.at(kRisk).production, "v1.0.0");
  EXPECT_EQ(Production(kRisk), "v2.0.0");

  // It refuses writes.
  const std::vector<std::pair<std::string, Code>> refused = {
      {"promote", CodeOf(reader.Promote(kRisk, "v2.0.0", std::nullopt, false, actor_))},
      {"archive", CodeOf(reader.Archive(kRisk, "v2.0.0", actor_))},
      {"fail", CodeOf(reader.Fail(kRisk, "v2.0.0", true, actor_))},
      {"rollback", CodeOf(reader.Rollback(kRisk, false, actor_))},
      {"validate", CodeOf(reader.Validate(kRisk, "v1.0.0", actor_))},
      {"register", CodeOf(reader.Register(kRisk, "v9.0.0", Artifact("z"), {}, actor_))}};
  for (const auto& [what, code] : refused) {
    EXPECT_EQ(code, Code::kFailedPrecondition) << what;
  }
  EXPECT_FALSE(fs::exists(VersionDir(kRisk, "v9.0.0")));
  EXPECT_EQ(DigestOf(reader), at_open);

  // Its queries work on its view.
  auto v = reader.Verify();
  ASSERT_TRUE(v) << v.error().ToString();
  EXPECT_TRUE(v->chain.ok);
  EXPECT_EQ(v->chain.head.seq, head_at_open);
  EXPECT_EQ(v->state_digest, at_open);
  EXPECT_TRUE(v->projection_ok);
  auto t = reader.StateAt(clock_.NowNs());
  ASSERT_TRUE(t);
  EXPECT_EQ(projection::StateDigest(*t), at_open);

  // A reader opened now sees the new state.
  auto ro2 = Registry::Open(Options(/*read_only=*/true));
  ASSERT_TRUE(ro2) << ro2.error().ToString();
  EXPECT_EQ(DigestOf(**ro2), DigestOf(*reg_));
}

TEST_F(RegistryTest, OpenErrors) {
  {
    // A second writer in the same process.
    auto second = Registry::Open(Options());
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error().code(), Code::kBusy);
  }
  {
    RegistryOptions o = Options(true);
    o.root = dir_.sub("missing");
    auto missing = Registry::Open(o);
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code(), Code::kNotFound);
    EXPECT_FALSE(fs::exists(o.root));
  }
  {
    RegistryOptions o = Options();
    o.root = dir_.sub("missing2");
    o.create_if_missing = false;
    auto missing = Registry::Open(o);
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code(), Code::kNotFound);
  }
  {
    // A non-empty directory that is not a registry.
    const std::string other = dir_.sub("other");
    fs::create_directories(other);
    WriteAll(other + "/notes.txt", "mine");
    RegistryOptions o = Options();
    o.root = other;
    auto r = Registry::Open(o);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
    EXPECT_FALSE(fs::exists(other + "/registry"));
  }
  {
    // A file is not a registry directory.
    const std::string file = dir_.sub("afile");
    WriteAll(file, "x");
    RegistryOptions o = Options();
    o.root = file;
    auto r = Registry::Open(o);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
  }
}

TEST_F(RegistryTest, SortedVersionsUsesSemverOrder) {
  for (const char* v : {"v1.10.0", "v1.9.0", "v1.2.0", "v1.2.0-rc.1", "v0.1.0"}) {
    MustRegister(kRisk, v);
  }
  const State s = Now();
  std::vector<std::string> order;
  for (const VersionRecord* r : SortedVersions(s.types.at(kRisk))) order.push_back(r->version);
  EXPECT_EQ(order,
            (std::vector<std::string>{"v0.1.0", "v1.2.0-rc.1", "v1.2.0", "v1.9.0", "v1.10.0"}));
}


// Writers of different model types run concurrently (docs/layout.md,
// "Concurrent writers"): none of them is refused for another type's
// writes, they share group commits, and the in-memory state, the stored
// projection and a fresh fold of the log all agree afterwards.
TEST_F(RegistryTest, ConcurrentWritersOfDifferentTypesAllSucceed) {
  const std::vector<std::string> types = {"risk_model", "alpha_weights", "factor_definitions",
                                          "feature_transforms"};
  constexpr int kVersions = 12;
  std::map<std::string, std::vector<std::string>> artifacts;
  for (const auto& type : types) {
    for (int i = 0; i < kVersions; ++i) {
      artifacts[type].push_back(Artifact(type + " weights " + std::to_string(i)));
    }
  }
  std::mutex mu;
  std::vector<std::string> errors;
  std::vector<std::thread> threads;
  for (const auto& type : types) {
    threads.emplace_back([&, type] {
      auto fail = [&](const std::string& what, const Status& st) {
        std::lock_guard<std::mutex> lock(mu);
        errors.push_back(type + " " + what + ": " + st.ToString());
      };
      for (int i = 0; i < kVersions; ++i) {
        const std::string v = "v1." + std::to_string(i) + ".0";
        auto r = reg_->Register(type, v, artifacts[type][static_cast<std::size_t>(i)], {}, actor_);
        if (!r) fail("register " + v, r.error());
        auto p = reg_->Promote(type, v, std::nullopt, false, actor_);
        if (!p) fail("promote " + v, p.error());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_TRUE(errors.empty()) << errors.front();

  EXPECT_EQ(Head(), kPolicyEvents + types.size() * kVersions * 2);
  const State s = Now();
  EXPECT_EQ(s.seq, Head());
  for (const auto& type : types) {
    EXPECT_EQ(s.types.at(type).production, "v1." + std::to_string(kVersions - 1) + ".0");
    EXPECT_EQ(s.types.at(type).history.size(), static_cast<std::size_t>(kVersions));
  }
  auto v = reg_->Verify();
  ASSERT_TRUE(v) << v.error().ToString();
  EXPECT_TRUE(v->chain.ok);
  EXPECT_TRUE(v->projection_ok) << DescribeProjectionMismatch(*v);
  EXPECT_EQ(v->state_digest, DigestOf(*reg_));  // memory == fold of the log
  // The manifest is flushed on close and matches the log.
  reg_.reset();
  const json manifest = json::parse(ReadAll(root_ + "/manifest.json"), nullptr, false);
  ASSERT_TRUE(manifest.is_object());
  EXPECT_EQ(manifest.value("head_seq", Seq{0}), kPolicyEvents + types.size() * kVersions * 2);
}



// Opening and closing a writable registry without writing leaves a current
// manifest.json alone (no rewrite, no fsyncs); a write rewrites it by close.
TEST_F(RegistryTest, ManifestIsRewrittenOnlyWhenItIsBehind) {
  MustRegister(kRisk, "v1.0.0");
  reg_.reset();
  struct stat before {};
  ASSERT_EQ(::stat((root_ + "/manifest.json").c_str(), &before), 0);
  Open();
  reg_.reset();
  struct stat after {};
  ASSERT_EQ(::stat((root_ + "/manifest.json").c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino) << "rewritten although current";
  Open();
  MustRegister(kRisk, "v1.1.0");
  reg_.reset();
  const json manifest = json::parse(ReadAll(root_ + "/manifest.json"), nullptr, false);
  ASSERT_TRUE(manifest.is_object());
  EXPECT_EQ(manifest.value("head_seq", Seq{0}), kPolicyEvents + 2);
  Open();
}

}  // namespace
}  // namespace modelreg::registry

namespace modelreg::registry {
namespace {

// A rebuild keeps only a bounded number of version records in memory
// (RegistryOptions::rebuild_resident_records): the others are written out
// and read back from their newest record row when a later event names
// them. A log whose events keep naming old versions (re-registrations,
// validations, purges, rollbacks to old versions, promotions archiving
// the previous production, failures), rebuilt with room for 1, 2 and 5
// records: every time the rows equal those of a complete fold, verify
// passes, and the registry answers and writes afterwards.
TEST(LeanRebuild, EvictedRecordsAreReadBackAndTheRowsEqualACompleteFold) {
  testing::TempDir dir;
  const std::string root = dir.sub("reg");
  auto draft = [](const auto& payload) {
    const std::string id = NewEventId();  // the envelope only views it
    return events::Draft(Envelope{"tester", id, 0}, payload);
  };
  {
    StoreOptions so;
    so.extra_column_families = {"projection"};
    fs::create_directories(root);
    auto store = EventStore::Open(root + "/registry", so);
    ASSERT_TRUE(store) << store.error().ToString();
    auto append = [&](const std::string& d) {
      auto r = (*store)->Append({d, std::nullopt, nullptr});
      ASSERT_TRUE(r) << r.error().ToString();
    };
    std::map<std::string, std::string> production;
    for (int week = 0; week < 12; ++week) {
      for (const std::string type : {kRisk, kAlpha}) {
        const std::string v = "v1." + std::to_string(week) + ".0";
        append(draft(events::SampleRegistration(type, v, static_cast<std::uint64_t>(week))));
        if (week % 3 == 0) {  // the same registration again: first one wins
          append(draft(events::SampleRegistration(type, "v1.0.0", 99)));
        }
        append(draft(events::Validation{type, "v1.0.0", week % 2 == 0, Sha256::Of("a"),
                                        Sha256::Of("b"), 7, "old one rechecked", ""}));
        events::Promotion p;
        p.model_type = type;
        p.version = v;
        p.replaced_version = production[type];
        p.reason = "weekly";
        append(draft(p));
        const std::string previous = production[type];
        production[type] = v;
        if (week % 4 == 3 && !previous.empty()) {  // roll back to last week's
          append(draft(events::Rollback{type, v, previous, week % 8 == 3, "bad numbers"}));
          production[type] = previous;
        }
        if (week >= 5) {  // old versions purged and failed
          append(draft(events::Purge{type, "v1." + std::to_string(week - 5) + ".0", 10, "gc"}));
          append(draft(events::Failure{type, "v1." + std::to_string(week - 4) + ".0", "stale"}));
        }
        if (week % 5 == 4) {
          append(draft(events::Archive{type, production[type], "paused"}));
          production[type].clear();
        }
        append(draft(events::ConsumerAck{type, production[type], "svc-" + type, true, "", ""}));
      }
      if (week % 4 == 1) {  // the gate policy changes now and then ("g/" rows)
        append(draft(events::PolicyChange{
            "[default]\nic = \"> 0.0" + std::to_string(week) + "\"\n", "week " + std::to_string(week),
            "policy.toml"}));
      }
    }
  }
  for (const std::size_t resident : {1, 2, 5}) {
    SCOPED_TRACE("resident records: " + std::to_string(resident));
    // The complete fold of the log as it is now, and its digest.
    projection::State full;
    {
      StoreOptions so;
      so.read_only = true;
      auto store = EventStore::Open(root + "/registry", so);
      ASSERT_TRUE(store);
      Status st;
      ASSERT_TRUE((*store)->Scan(1, (*store)->head().seq, [&](Seq, const EventBuffer& e) {
        st = projection::Apply(full, e);
        return st.ok();
      }).ok());
      ASSERT_TRUE(st.ok()) << st.ToString();
    }
    const Digest expected = projection::StateDigest(full);
    ASSERT_EQ(full.policies.size(), 3u);
    RegistryOptions o;
    o.root = root;
    o.for_rebuild = true;
    o.rebuild_resident_records = resident;
    auto reg = Registry::Open(o);
    ASSERT_TRUE(reg) << reg.error().ToString();
    auto rebuilt = (*reg)->Rebuild();
    ASSERT_TRUE(rebuilt) << rebuilt.error().ToString();
    EXPECT_EQ(ToHex(rebuilt->after), ToHex(expected));
    auto v = (*reg)->Verify();
    ASSERT_TRUE(v) << v.error().ToString();
    EXPECT_TRUE(v->projection_ok) << DescribeProjectionMismatch(*v);
    EXPECT_TRUE(v->records_ok);
    // Afterwards the state loads from the rows: reads and writes work (the
    // write is one more event for the next round).
    EXPECT_EQ(ToHex(DigestOf(**reg)), ToHex(expected));
    // The policy rows: every change, the last one in force.
    (*reg)->Read([&](const State& s) { EXPECT_EQ(s.policies, full.policies); });
    auto in_force = (*reg)->PolicyAt((*reg)->Verify()->chain.head.seq);
    ASSERT_TRUE(in_force) << in_force.error().ToString();
    ASSERT_TRUE(in_force->has_value());
    EXPECT_EQ(**in_force, full.policies.back());
    auto ack = (*reg)->Acknowledge(
        kRisk, events::ConsumerAck{kRisk, full.types.at(kRisk).production, "svc-after", true, "", ""},
        Actor{"tester", ""});
    EXPECT_TRUE(ack) << ack.error().ToString();
  }
}

}  // namespace
}  // namespace modelreg::registry
