#include "loader/production_loader.h"

#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "artifacts/artifact_store.h"
#include "artifacts/tree.h"
#include "client/remote.h"
#include "common/json_input.h"
#include "common/sha256.h"
#include "compat/compatibility.h"
#include "events/model_events.h"
#include "model/naming.h"
#include "query/query.h"
#include "registry/registry.h"

namespace modelreg::loader {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The production version as the registry states it.
struct Target {
  std::string version;
  std::string sha256;
  std::string artifact_name;
  std::map<std::string, std::string> datasets;
  Seq seq = 0;  // the event that made it production
  bool directory = false;  // a directory artifact: sha256 is its tree digest
};

class Source {
 public:
  virtual ~Source() = default;
  virtual Result<std::optional<Target>> Production() = 0;
  // A verified local file for `t` (sha256 checked).
  virtual Result<std::string> Fetch(const Target& t) = 0;
  // Returns when production may have changed, after a timeout, or on stop.
  virtual Status WaitForChange(const std::atomic<bool>& stop) = 0;
  virtual Status Acknowledge(const events::ConsumerAck& ack) = 0;
  // Ends a WaitForChange in progress (from another thread).
  virtual void Interrupt() {}
};

// Follows a registry directory through a RocksDB secondary instance.
class LocalSource final : public Source {
 public:
  LocalSource(const LoaderOptions& o, std::unique_ptr<registry::Registry> reg)
      : o_(o), reg_(std::move(reg)) {}

  Result<std::optional<Target>> Production() override {
    MODELREG_RETURN_IF_ERROR(reg_->CatchUp());
    auto p = query::Query(*reg_).Current(o_.model_type);
    if (!p) return Err(p.error());
    if (!p->record) return std::optional<Target>();
    Target t{p->record->version, p->record->artifact_sha256, p->record->artifact_name,
             p->record->dataset_version_ids, p->promotion ? p->promotion->promotion.seq : 0,
             p->record->artifact_kind == projection::ArtifactKind::kDirectory};
    if (p->record->purged) {
      return Err(Status::FailedPrecondition(o_.model_type + " " + t.version +
                                            " has had its artifact purged"));
    }
    return std::optional<Target>(std::move(t));
  }

  Result<std::string> Fetch(const Target& t) override {
    const std::string path = reg_->artifacts().ArtifactPath(o_.model_type, t.version, t.artifact_name);
    if (t.directory) {
      // Every file of the tree re-hashed: the service gets the directory.
      auto tree = artifacts::HashTree(path);
      if (!tree) return Err(tree.error());
      if (ToHex(tree->digest) != t.sha256) {
        return Err(Status::Corruption("artifact directory " + path + " has tree digest " +
                                      ToHex(tree->digest) + " but " + t.version +
                                      " was registered with " + t.sha256));
      }
      return path;
    }
    auto hash = artifacts::HashFile(path);
    if (!hash) return Err(hash.error());
    if (ToHex(hash->sha256) != t.sha256) {
      return Err(Status::Corruption("artifact " + path + " has sha256 " + ToHex(hash->sha256) +
                                    " but " + t.version + " was registered with " + t.sha256));
    }
    return path;
  }

  Status WaitForChange(const std::atomic<bool>& stop) override {
    const auto until = std::chrono::steady_clock::now() + o_.poll_interval;
    while (!stop.load() && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return Status::OK();
  }

  Status Acknowledge(const events::ConsumerAck& ack) override {
    // A short writable open that does not load the state; while `modelreg
    // serve` holds the registry, through it (with the token).
    if (auto server = client::FindServer(o_.root); server && !o_.token.empty()) {
      return RemoteAck(server->url, o_.token, ack);
    }
    registry::RegistryOptions ro;
    ro.root = o_.root;
    ro.lock_wait_ms = 2000;
    ro.lazy_state = true;  // an acknowledgement needs no state (seconds at 1M events)
    auto w = registry::Registry::Open(ro);
    if (!w) return w.error();
    auto r = (*w)->Acknowledge(o_.model_type, ack, registry::Actor{o_.consumer_id, ""});
    return r ? Status::OK() : r.error();
  }

  static Status RemoteAck(const std::string& url, const std::string& token,
                          const events::ConsumerAck& ack) {
    client::RemoteRegistry remote(url, token);
    auto r = remote.Post("/api/v1/models/" + ack.model_type + "/consumers/" + ack.consumer_id + "/ack",
                         json{{"version", ack.version},
                              {"ok", ack.ok},
                              {"attempted_version", ack.attempted_version},
                              {"detail", ack.detail}});
    return r ? Status::OK() : r.error();
  }

 private:
  const LoaderOptions& o_;
  std::unique_ptr<registry::Registry> reg_;
};

// Follows a server: long polls on /api/v1/events, downloads artifacts.
class RemoteSource final : public Source {
 public:
  explicit RemoteSource(const LoaderOptions& o) : o_(o) {}

  Result<std::optional<Target>> Production() override {
    try {
      return ProductionUnchecked();
    } catch (const std::exception& ex) {
      return Err(Status::IOError(std::string("unexpected reply from ") + o_.url + ": " + ex.what()));
    }
  }

  Result<std::optional<Target>> ProductionUnchecked() {
    auto c = Client();
    auto res = c->Get("/api/v1/models/" + o_.model_type + "/current");
    if (!res) {
      return Err(Status::IOError("cannot reach " + o_.url + " (" + httplib::to_string(res.error()) + ")"));
    }
    if (res->status == 404) return std::optional<Target>();
    const json j = ParseJsonOrDiscarded(res->body);
    if (res->status != 200 || !j.is_object() || !j.contains("record") || !j["record"].is_object()) {
      return Err(Status::IOError("GET current from " + o_.url + ": HTTP " + std::to_string(res->status) +
                                 " " + res->body.substr(0, 200)));
    }
    const json& r = j["record"];
    Target t;
    t.version = r.value("version", std::string());
    t.sha256 = r.value("artifact_sha256", std::string());
    t.artifact_name = r.value("artifact_name", std::string());
    t.directory = r.value("artifact_kind", std::string()) == "directory";
    if (r.contains("dataset_version_ids") && r["dataset_version_ids"].is_object()) {
      for (const auto& [k, v] : r["dataset_version_ids"].items()) {
        if (v.is_string()) t.datasets[k] = v.get<std::string>();
      }
    }
    if (j.contains("promotion") && j["promotion"].is_object()) t.seq = j["promotion"].value("seq", Seq{0});
    if (!model::ValidateVersion(t.version).ok() || !artifacts::ValidateFileName(t.artifact_name).ok()) {
      return Err(Status::Corruption("the server named an invalid version or artifact"));
    }
    return std::optional<Target>(std::move(t));
  }

  Result<std::string> Fetch(const Target& t) override {
    if (t.directory) {
      return Err(Status::FailedPrecondition(
          o_.model_type + " " + t.version +
          " is a directory artifact, which the HTTP API does not serve: follow the registry "
          "directory (root) instead of a url (docs/loader.md)"));
    }
    const fs::path dir = fs::path(o_.cache_dir) / o_.model_type / t.version;
    const fs::path final_path = dir / t.artifact_name;
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return Err(Status::IOError("cannot create " + dir.string() + ": " + ec.message()));
    if (fs::exists(final_path)) {
      auto hash = artifacts::HashFile(final_path.string());
      if (hash && ToHex(hash->sha256) == t.sha256) return final_path.string();
      fs::remove(final_path, ec);  // altered in the cache: download again
    }
    // A private temporary name: loaders sharing a cache never write into
    // each other's downloads.
    std::string tmpl = (dir / ("." + t.artifact_name + ".partial-XXXXXX")).string();
    const int fd = mkstemp(tmpl.data());
    if (fd < 0) return Err(Status::IOError("cannot create a file in " + dir.string()));
    close(fd);
    const fs::path partial = tmpl;
    std::ofstream out(partial, std::ios::binary | std::ios::trunc);
    if (!out) return Err(Status::IOError("cannot write " + partial.string()));
    Sha256 h;
    auto c = Client();
    auto res = c->Get("/api/v1/models/" + o_.model_type + "/" + t.version + "/artifact",
                      [&](const char* data, std::size_t len) {
                        h.Update(std::string_view(data, len));
                        out.write(data, static_cast<std::streamsize>(len));
                        return static_cast<bool>(out);
                      });
    out.close();
    if (!res || res->status != 200 || !out) {
      fs::remove(partial, ec);
      return Err(Status::IOError("download of " + o_.model_type + " " + t.version + " from " + o_.url +
                                 " failed" + (res ? " (HTTP " + std::to_string(res->status) + ")" : "")));
    }
    const std::string got = ToHex(h.Finish());
    if (got != t.sha256 || res->get_header_value("X-Checksum-Sha256") != t.sha256) {
      fs::remove(partial, ec);
      return Err(Status::Corruption("downloaded artifact of " + o_.model_type + " " + t.version +
                                    " has sha256 " + got + " but it was registered with " + t.sha256));
    }
    fs::rename(partial, final_path, ec);
    if (ec) {
      fs::remove(partial, ec);
      return Err(Status::IOError("cannot rename into " + final_path.string()));
    }
    // What the callback will read is the file on disk: check that one.
    auto hash = artifacts::HashFile(final_path.string());
    if (!hash) return Err(hash.error());
    if (ToHex(hash->sha256) != t.sha256) {
      return Err(Status::Corruption("cached artifact " + final_path.string() + " changed after its download"));
    }
    return final_path.string();
  }

  Status WaitForChange(const std::atomic<bool>& stop) override {
    try {
      return WaitUnchecked(stop);
    } catch (const std::exception& ex) {
      return Status::IOError(std::string("unexpected reply from ") + o_.url + ": " + ex.what());
    }
  }

  Status WaitUnchecked(const std::atomic<bool>& stop) {
    if (stop.load()) return Status::OK();
    auto c = Client();
    c->set_read_timeout(o_.wait_seconds + 10, 0);
    {
      std::lock_guard<std::mutex> lock(poll_mu_);
      if (stop.load()) return Status::OK();
      polling_ = c.get();
    }
    auto res = c->Get("/api/v1/events?after=" + std::to_string(after_) +
                      "&wait=" + std::to_string(o_.wait_seconds) + "&limit=1000");
    {
      std::lock_guard<std::mutex> lock(poll_mu_);
      polling_ = nullptr;
    }
    if (stop.load()) return Status::OK();
    if (!res) {
      return Status::IOError("lost the connection to " + o_.url + " (" + httplib::to_string(res.error()) + ")");
    }
    const json j = ParseJsonOrDiscarded(res->body);
    if (res->status != 200 || !j.is_object() || !j.contains("events") || !j["events"].is_array()) {
      return Status::IOError("GET events from " + o_.url + ": HTTP " + std::to_string(res->status));
    }
    for (const json& e : j["events"]) {
      if (e.is_object() && e.contains("seq") && e["seq"].is_number_unsigned()) {
        after_ = std::max(after_, e["seq"].get<Seq>());
      }
    }
    if (j["events"].empty() && j.contains("head_seq") && j["head_seq"].is_number_unsigned()) {
      after_ = std::max(after_, j["head_seq"].get<Seq>());
    }
    return Status::OK();
  }

  Status Acknowledge(const events::ConsumerAck& ack) override {
    return LocalSource::RemoteAck(o_.url, o_.token, ack);
  }

  void Interrupt() override {
    std::lock_guard<std::mutex> lock(poll_mu_);
    if (polling_ != nullptr) polling_->stop();
  }

 private:
  std::unique_ptr<httplib::Client> Client() const {
    auto c = std::make_unique<httplib::Client>(o_.url);
    c->set_bearer_token_auth(o_.token);
    c->set_connection_timeout(3, 0);
    c->set_read_timeout(60, 0);
    c->set_tcp_nodelay(true);
    return c;
  }

  const LoaderOptions& o_;
  Seq after_ = 0;
  std::mutex poll_mu_;
  httplib::Client* polling_ = nullptr;  // the long poll in flight
};

}  // namespace

class ProductionModelLoader::Impl {
 public:
  Impl(LoaderOptions options, LoadFn load) : o_(std::move(options)), load_(std::move(load)) {}

  ~Impl() {
    stop_.store(true);
    if (source_) source_->Interrupt();
    if (thread_.joinable()) thread_.join();
  }

  Status Init() {
    if (o_.model_type.empty() || o_.consumer_id.empty()) {
      return Status::InvalidArgument("the loader needs a model type and a consumer id");
    }
    MODELREG_RETURN_IF_ERROR(model::ValidateModelType(o_.model_type));
    // It goes into URLs and events: letters, digits and . _ @ : - only.
    if (o_.consumer_id.size() > 128 ||
        o_.consumer_id.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                         "0123456789._@:-") != std::string::npos) {
      return Status::InvalidArgument("consumer id '" + o_.consumer_id +
                                     "' must be 1..128 of letters, digits and . _ @ : -");
    }
    if (o_.root.empty() == o_.url.empty()) {
      return Status::InvalidArgument("give the loader either a registry root or a server url");
    }
    if (!o_.url.empty()) {
      if (o_.cache_dir.empty()) return Status::InvalidArgument("a remote loader needs a cache_dir");
      source_ = std::make_unique<RemoteSource>(o_);
    } else {
      registry::RegistryOptions ro;
      ro.root = o_.root;
      ro.follow = true;
      auto reg = registry::Registry::Open(ro);
      if (!reg) return reg.error();
      source_ = std::make_unique<LocalSource>(o_, std::move(*reg));
    }
    (void)Check(/*force=*/true);  // a failure is reported; the loader still follows
    thread_ = std::thread([this] { Follow(); });
    return Status::OK();
  }

  std::shared_ptr<const Loaded> Current() const {
    std::lock_guard<std::mutex> lock(current_mu_);
    return current_;
  }

  Status ReloadNow() { return Check(/*force=*/true); }

  Stats stats() const {
    std::lock_guard<std::mutex> lock(current_mu_);
    return stats_;
  }

 private:
  void Follow() {
    while (!stop_.load()) {
      Status w;
      {
        w = source_->WaitForChange(stop_);
      }
      if (stop_.load()) break;
      if (!w.ok()) {
        Report(w.message() + "; keeping " + CurrentName());
        for (int i = 0; i < 20 && !stop_.load(); ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(50));  // back off 1 s
        }
        continue;
      }
      (void)Check(/*force=*/false);
    }
  }

  std::string CurrentName() const {
    auto c = Current();
    return c ? o_.model_type + " " + c->file.version : std::string("no model");
  }

  // Compares production with what runs; loads and swaps when it differs.
  Status Check(bool force) {
    std::lock_guard<std::mutex> serialize(check_mu_);
    auto prod = source_->Production();
    if (!prod) {
      Report(prod.error().message() + "; keeping " + CurrentName());
      return prod.error();
    }
    auto current = Current();
    if (!*prod) return Status::OK();  // no production version: keep what runs
    const Target& t = **prod;
    if (current && current->file.version == t.version && current->file.sha256 == t.sha256) {
      return Status::OK();
    }
    // Do not retry the same failed target on every poll; a new event or
    // ReloadNow() tries again.
    if (!force && failed_ && failed_->version == t.version && failed_->seq == t.seq) {
      return Status::OK();
    }
    Status st = Load(t, current);
    if (st.ok()) {
      failed_.reset();
    } else {
      failed_ = t;
      Report("cannot load " + o_.model_type + " " + t.version + ": " + st.message() + "; keeping " +
             CurrentName());
    }
    Acknowledge(t, st);
    return st;
  }

  Status Load(const Target& t, const std::shared_ptr<const Loaded>& current) {
    (void)current;
    auto path = source_->Fetch(t);
    if (!path) return path.error();
    if (!o_.current_datasets.empty()) {
      const compat::VersionCompatibilityChecker checker(o_.strict_compatibility);
      const compat::Result r = checker.Check(t.datasets, o_.current_datasets);
      if (!r.compatible) {
        std::string why;
        for (const auto& w : r.warnings) why += (why.empty() ? "" : "; ") + w;
        return Status::Rejected("dataset versions are not compatible with this service (" + why + ")");
      }
    }
    ModelFile file{o_.model_type, t.version, t.sha256, *path, t.datasets, t.directory};
    Result<std::shared_ptr<const void>> model = Err(Status::Internal("load callback threw"));
    try {
      model = load_(file);
    } catch (const std::exception& ex) {
      model = Err(Status::Internal(std::string("load callback threw: ") + ex.what()));
    }
    if (!model) return model.error();
    if (!*model) return Status::Internal("load callback returned no model");
    auto loaded = std::make_shared<Loaded>();
    loaded->file = std::move(file);
    loaded->model = std::move(*model);
    loaded->loaded_at = SystemClock::Instance().NowNs();
    {
      std::lock_guard<std::mutex> lock(current_mu_);
      current_ = loaded;  // readers holding the old one keep it alive
      ++stats_.swaps;
    }
    if (o_.on_swap) {
      try {
        o_.on_swap(*loaded);
      } catch (...) {
        // The swap happened; a throwing observer must not kill the loader.
      }
    }
    return Status::OK();
  }

  void Acknowledge(const Target& t, const Status& st) {
    if (!o_.acknowledge) return;
    events::ConsumerAck ack;
    ack.model_type = o_.model_type;
    ack.consumer_id = o_.consumer_id;
    auto c = Current();
    ack.version = c ? c->file.version : std::string();
    ack.ok = st.ok();
    if (!st.ok()) {
      ack.attempted_version = t.version;
      ack.detail = st.message().substr(0, 1024);
    }
    Status a = source_->Acknowledge(ack);
    if (!a.ok()) Report("acknowledgement not recorded: " + a.message());
  }

  void Report(const std::string& message) {
    {
      std::lock_guard<std::mutex> lock(current_mu_);
      ++stats_.failures;
      stats_.last_error = message;
    }
    if (o_.on_error) {
      try {
        o_.on_error(message);
      } catch (...) {
      }
    }
  }

  LoaderOptions o_;
  LoadFn load_;
  std::unique_ptr<Source> source_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex check_mu_;
  mutable std::mutex current_mu_;
  std::shared_ptr<const Loaded> current_;
  Stats stats_;
  std::optional<Target> failed_;
};

ProductionModelLoader::ProductionModelLoader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ProductionModelLoader::~ProductionModelLoader() = default;

Result<std::unique_ptr<ProductionModelLoader>> ProductionModelLoader::Start(LoaderOptions options,
                                                                           LoadFn load) {
  if (!load) return Err(Status::InvalidArgument("the loader needs a load callback"));
  auto impl = std::make_unique<Impl>(std::move(options), std::move(load));
  MODELREG_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<ProductionModelLoader>(new ProductionModelLoader(std::move(impl)));
}

std::shared_ptr<const Loaded> ProductionModelLoader::Current() const { return impl_->Current(); }
Status ProductionModelLoader::ReloadNow() { return impl_->ReloadNow(); }
ProductionModelLoader::Stats ProductionModelLoader::stats() const { return impl_->stats(); }

}  // namespace modelreg::loader
