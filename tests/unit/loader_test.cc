// ProductionModelLoader against real registries: following locally (a
// secondary instance of a registry written by another Registry object, as a
// trainer's process would) and remotely (a real server on 127.0.0.1).
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "auth/token.h"
#include "loader/production_loader.h"
#include "registry/registry.h"
#include "server/api_server.h"
#include "support/temp_dir.h"

namespace modelreg {
namespace {

namespace fs = std::filesystem;
using loader::Loaded;
using loader::ModelFile;
using loader::ProductionModelLoader;
using registry::Registry;

constexpr char kRisk[] = "risk_model";
const std::string kSecret = "0123456789abcdef0123456789abcdef-loader-test";

// The "model" a service loads: the artifact's bytes and the version it
// believes it loaded, so readers can check they always see a whole model.
struct FakeModel {
  std::string version;
  std::string bytes;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class LoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(root_);
    std::ofstream(root_ + "/policy.toml")
        << "[default]\nic = \"off\"\nsharpe = \"off\"\npaper_trading_hours = \"off\"\n";
    registry::RegistryOptions ro;
    ro.root = root_;
    ro.create_if_missing = true;
    auto r = Registry::Open(ro);
    ASSERT_TRUE(r) << r.error().ToString();
    reg_ = std::move(*r);
  }

  void Register(const std::string& version, const std::map<std::string, std::string>& datasets = {}) {
    const std::string src = dir_.sub("src-" + version);
    fs::create_directories(src);
    std::ofstream(src + "/model.pkl") << "weights of " << version;
    registry::MetadataInput in;
    in.datasets = datasets;
    auto r = reg_->Register(kRisk, version, src + "/model.pkl", in, registry::Actor{"trainer", ""});
    ASSERT_TRUE(r) << r.error().ToString();
  }
  void Promote(const std::string& version) {
    auto r = reg_->Promote(kRisk, version, std::nullopt, false, registry::Actor{"alice", ""});
    ASSERT_TRUE(r) << r.error().ToString();
  }

  // Options that follow the local registry; acknowledgements go through
  // this process's writable Registry? No: the loader opens the registry for
  // writing itself, which this test's Registry holds, so tests that check
  // acknowledgements run the loader remotely or turn them off here.
  loader::LoaderOptions Local() {
    loader::LoaderOptions o;
    o.model_type = kRisk;
    o.consumer_id = "svc-test";
    o.root = root_;
    o.acknowledge = false;
    o.on_error = [this](const std::string& m) {
      std::lock_guard<std::mutex> lock(mu_);
      errors_.push_back(m);
    };
    return o;
  }

  loader::LoadFn Load(std::function<bool(const ModelFile&)> accept = nullptr) {
    return [accept](const ModelFile& f) -> Result<std::shared_ptr<const void>> {
      if (accept && !accept(f)) return Err(Status::InvalidArgument("the service refused " + f.version));
      auto m = std::make_shared<FakeModel>();
      m->version = f.version;
      m->bytes = ReadFile(f.path);
      return std::shared_ptr<const void>(m);
    };
  }

  static std::string VersionOf(const ProductionModelLoader& l) {
    auto c = l.Current();
    return c ? c->file.version : std::string();
  }

  // Waits up to `ms` for the loader to run `version`. Generous: on a loaded
  // 2-core CI machine a swap can take seconds; how fast it is normally is
  // measured by modelreg-loader-bench (docs/performance.md), not here.
  static bool WaitFor(const ProductionModelLoader& l, const std::string& version, int ms = 20000) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < until) {
      if (VersionOf(l) == version) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return VersionOf(l) == version;
  }

  std::vector<std::string> Errors() {
    std::lock_guard<std::mutex> lock(mu_);
    return errors_;
  }

  testing::TempDir dir_;
  std::string root_ = dir_.sub("reg");
  std::unique_ptr<Registry> reg_;
  std::mutex mu_;
  std::vector<std::string> errors_;
};

TEST_F(LoaderTest, LocalPromotionSwapsAndRollbackSwapsBack) {
  Register("v1.0.0");
  Register("v1.1.0");
  Promote("v1.0.0");
  auto l = ProductionModelLoader::Start(Local(), Load());
  ASSERT_TRUE(l) << l.error().ToString();
  ASSERT_EQ(VersionOf(**l), "v1.0.0");  // loaded before Start returns
  auto first = (*l)->Current();
  EXPECT_EQ(static_cast<const FakeModel*>(first->model.get())->bytes, "weights of v1.0.0");

  Promote("v1.1.0");
  ASSERT_TRUE(WaitFor(**l, "v1.1.0")) << "no swap";
  // The reader that took v1.0.0 still holds a whole v1.0.0.
  EXPECT_EQ(static_cast<const FakeModel*>(first->model.get())->bytes, "weights of v1.0.0");

  ASSERT_TRUE(reg_->Rollback(kRisk, false, registry::Actor{"carol", ""}));
  ASSERT_TRUE(WaitFor(**l, "v1.0.0"));
  EXPECT_EQ((*l)->stats().swaps, 3u);
  EXPECT_TRUE(Errors().empty());
}

TEST_F(LoaderTest, NoProductionYetThenFirstPromotion) {
  Register("v1.0.0");
  auto l = ProductionModelLoader::Start(Local(), Load());
  ASSERT_TRUE(l);
  EXPECT_EQ((*l)->Current(), nullptr);
  Promote("v1.0.0");
  EXPECT_TRUE(WaitFor(**l, "v1.0.0"));
}

TEST_F(LoaderTest, CorruptArtifactKeepsTheOldModelAndReportsIt) {
  Register("v1.0.0");
  Register("v1.1.0");
  Promote("v1.0.0");
  auto o = Local();
  o.poll_interval = std::chrono::hours(1);  // only ReloadNow checks
  auto l = ProductionModelLoader::Start(o, Load());
  ASSERT_TRUE(l);
  ASSERT_EQ(VersionOf(**l), "v1.0.0");
  Promote("v1.1.0");
  // Someone alters the stored artifact after its promotion.
  const std::string art = root_ + "/artifacts/risk_model/v1.1.0/model.pkl";
  fs::permissions(art, fs::perms::owner_read | fs::perms::owner_write);
  std::ofstream(art, std::ios::trunc) << "tampered";
  Status st = (*l)->ReloadNow();
  EXPECT_EQ(st.code(), Code::kCorruption) << st.ToString();
  EXPECT_EQ(VersionOf(**l), "v1.0.0");
  EXPECT_EQ((*l)->stats().failures, 1u);
  ASSERT_FALSE(Errors().empty());
  EXPECT_NE(Errors().back().find("keeping risk_model v1.0.0"), std::string::npos) << Errors().back();
}

TEST_F(LoaderTest, FailingLoadCallbackKeepsTheOldModel) {
  Register("v1.0.0");
  Register("v1.1.0");
  Register("v1.2.0");
  Promote("v1.0.0");
  auto l = ProductionModelLoader::Start(Local(), Load([](const ModelFile& f) { return f.version != "v1.1.0"; }));
  ASSERT_TRUE(l);
  Promote("v1.1.0");
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (Errors().empty() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_FALSE(Errors().empty());
  EXPECT_NE(Errors().back().find("the service refused v1.1.0"), std::string::npos) << Errors().back();
  EXPECT_EQ(VersionOf(**l), "v1.0.0");
  // Not retried on every poll: one failure for one promotion. The pause is
  // what is tested (a window of several polls in which no retry may happen).
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ((*l)->stats().failures, 1u);
  // The next promotion loads.
  Promote("v1.2.0");
  EXPECT_TRUE(WaitFor(**l, "v1.2.0"));
}

TEST_F(LoaderTest, IncompatibleDatasetVersionsAreNotLoaded) {
  Register("v1.0.0", {{"crsp", "v1.2.3"}});
  Register("v1.1.0", {{"crsp", "v1.3.0"}});
  Promote("v1.0.0");
  auto o = Local();
  o.current_datasets = {{"crsp", "v1.2.3"}};
  auto l = ProductionModelLoader::Start(o, Load());
  ASSERT_TRUE(l);
  ASSERT_EQ(VersionOf(**l), "v1.0.0");
  Promote("v1.1.0");
  Status st = (*l)->ReloadNow();
  EXPECT_EQ(st.code(), Code::kRejected) << st.ToString();
  EXPECT_NE(st.message().find("crsp"), std::string::npos) << st.ToString();
  EXPECT_EQ(VersionOf(**l), "v1.0.0");
}

TEST_F(LoaderTest, ReadersOnlyEverSeeCompleteModels) {
  for (int i = 0; i < 4; ++i) Register("v1." + std::to_string(i) + ".0");
  Promote("v1.0.0");
  // A slow load: a half-built model would be visible if swaps were not atomic.
  auto slow = [](const ModelFile& f) -> Result<std::shared_ptr<const void>> {
    auto m = std::make_shared<FakeModel>();
    m->version = f.version;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    m->bytes = ReadFile(f.path);
    return std::shared_ptr<const void>(m);
  };
  auto l = ProductionModelLoader::Start(Local(), slow);
  ASSERT_TRUE(l);
  std::atomic<bool> stop{false};
  std::atomic<long> reads{0}, bad{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 4; ++r) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        auto c = (*l)->Current();
        const auto* m = c ? static_cast<const FakeModel*>(c->model.get()) : nullptr;
        if (m == nullptr || m->version != c->file.version || m->bytes != "weights of " + m->version) {
          ++bad;
        }
        ++reads;
      }
    });
  }
  for (int round = 0; round < 12; ++round) {
    const std::string v = "v1." + std::to_string((round + 1) % 4) + ".0";
    Promote(v);
    ASSERT_TRUE(WaitFor(**l, v));
  }
  stop.store(true);
  for (auto& t : readers) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(reads.load(), 1000);
  EXPECT_EQ((*l)->stats().swaps, 13u);
}

// Remote following through a real server; acknowledgements recorded.
class RemoteLoaderTest : public LoaderTest {
 protected:
  void StartServer(int port = 0) {
    auth::VerifierConfig vc;
    vc.hs256_secret = kSecret;
    auto verifier = auth::TokenVerifier::Create(vc);
    ASSERT_TRUE(verifier);
    server::ServerOptions so;
    so.port = port;
    auto srv = server::ApiServer::Create(*reg_, std::move(*verifier), so);
    ASSERT_TRUE(srv) << srv.error().ToString();
    server_ = std::move(*srv);
    ASSERT_TRUE(server_->Bind().ok());
    port_ = server_->port();
    serving_ = std::thread([this] { (void)server_->Serve(); });
  }
  void StopServer() {
    if (!server_) return;
    server_->Stop();
    serving_.join();
    server_.reset();
  }
  void TearDown() override { StopServer(); }

  loader::LoaderOptions Remote() {
    auto o = Local();
    o.root.clear();
    o.url = "http://127.0.0.1:" + std::to_string(port_);
    auth::IssueOptions io;
    io.subject = "svc-test";
    io.scopes = {auth::kScopeRead};
    o.token = *auth::IssueHs256(kSecret, io);
    o.cache_dir = dir_.sub("cache");
    o.wait_seconds = 5;
    o.acknowledge = true;
    return o;
  }

  std::unique_ptr<server::ApiServer> server_;
  std::thread serving_;
  int port_ = 0;
};

TEST_F(RemoteLoaderTest, FollowsThroughTheServerAndAcknowledges) {
  Register("v1.0.0");
  Register("v1.1.0");
  Promote("v1.0.0");
  StartServer();
  auto l = ProductionModelLoader::Start(Remote(), Load());
  ASSERT_TRUE(l) << l.error().ToString();
  ASSERT_EQ(VersionOf(**l), "v1.0.0");
  EXPECT_TRUE(fs::exists(dir_.sub("cache/risk_model/v1.0.0/model.pkl")));
  Promote("v1.1.0");
  ASSERT_TRUE(WaitFor(**l, "v1.1.0"));
  // The acknowledgement: the registry knows what the consumer runs.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::string acked;
  while (acked != "v1.1.0" && std::chrono::steady_clock::now() < until) {
    reg_->Read([&](const registry::State& s) {
      auto it = s.types.find(kRisk);
      if (it == s.types.end()) return;
      auto c = it->second.consumers.find("svc-test");
      if (c != it->second.consumers.end()) acked = c->second.version;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(acked, "v1.1.0");
  EXPECT_TRUE(Errors().empty()) << Errors().front();
}

TEST_F(RemoteLoaderTest, DroppedConnectionKeepsTheModelAndRecovers) {
  Register("v1.0.0");
  Register("v1.1.0");
  Promote("v1.0.0");
  StartServer();
  auto l = ProductionModelLoader::Start(Remote(), Load());
  ASSERT_TRUE(l);
  ASSERT_EQ(VersionOf(**l), "v1.0.0");
  const int port = port_;
  StopServer();
  // The loader notices, reports, and keeps serving v1.0.0.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (Errors().empty() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_FALSE(Errors().empty());
  EXPECT_NE(Errors().back().find("keeping risk_model v1.0.0"), std::string::npos) << Errors().back();
  EXPECT_EQ(VersionOf(**l), "v1.0.0");
  // A promotion while it is away, then the server comes back on its port.
  Promote("v1.1.0");
  StartServer(port);
  EXPECT_TRUE(WaitFor(**l, "v1.1.0"));
}

TEST_F(RemoteLoaderTest, CorruptDownloadKeepsTheOldModel) {
  Register("v1.0.0");
  Register("v1.1.0");
  Promote("v1.0.0");
  StartServer();
  auto o = Remote();
  o.wait_seconds = 1;
  auto l = ProductionModelLoader::Start(o, Load());
  ASSERT_TRUE(l);
  ASSERT_EQ(VersionOf(**l), "v1.0.0");
  // While the server is away, v1.1.0 is promoted and its stored artifact
  // altered afterwards; when the server is back it streams the altered
  // bytes and the loader's hash refuses them.
  const int port = port_;
  StopServer();
  Promote("v1.1.0");
  const std::string art = root_ + "/artifacts/risk_model/v1.1.0/model.pkl";
  fs::permissions(art, fs::perms::owner_read | fs::perms::owner_write);
  std::ofstream(art, std::ios::trunc) << "tampered weights";
  StartServer(port);
  Status st = (*l)->ReloadNow();
  EXPECT_EQ(st.code(), Code::kCorruption) << st.ToString();
  EXPECT_EQ(VersionOf(**l), "v1.0.0");
  // Nothing left in the cache for it: no file, no partial download.
  if (fs::exists(dir_.sub("cache/risk_model/v1.1.0"))) {
    for (const auto& e : fs::directory_iterator(dir_.sub("cache/risk_model/v1.1.0"))) {
      ADD_FAILURE() << "left in the cache: " << e.path();
    }
  }
}

TEST_F(RemoteLoaderTest, FailedLoadIsAcknowledgedAsFailed) {
  Register("v1.0.0");
  Register("v1.1.0");
  Promote("v1.0.0");
  StartServer();
  auto l = ProductionModelLoader::Start(Remote(), Load([](const ModelFile& f) { return f.version != "v1.1.0"; }));
  ASSERT_TRUE(l);
  Promote("v1.1.0");
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  projection::ConsumerRecord rec;
  while (std::chrono::steady_clock::now() < until) {
    reg_->Read([&](const registry::State& s) {
      auto it = s.types.find(kRisk);
      if (it == s.types.end()) return;
      auto c = it->second.consumers.find("svc-test");
      if (c != it->second.consumers.end()) rec = c->second;
    });
    if (!rec.ok) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_FALSE(rec.ok);
  EXPECT_EQ(rec.version, "v1.0.0");
  EXPECT_EQ(rec.attempted_version, "v1.1.0");
  EXPECT_NE(rec.detail.find("refused"), std::string::npos) << rec.detail;
  EXPECT_EQ(VersionOf(**l), "v1.0.0");
}

}  // namespace
}  // namespace modelreg
