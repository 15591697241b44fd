#include "app/loader_commands.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <mutex>

#include <nlohmann/json.hpp>

#include "artifacts/artifact_store.h"
#include "common/utf8.h"
#include "loader/production_loader.h"
#include "model/naming.h"
#include "registry/registry.h"
#include "query/query.h"
#include "query/render.h"

namespace modelreg::app {

namespace {
using nlohmann::json;
}  // namespace

Status RunConsumers(const Globals& g, const std::string& type, std::ostream& out) {
  MODELREG_RETURN_IF_ERROR(model::ValidateModelType(type));
  registry::RegistryOptions ro;
  ro.root = g.root;
  ro.read_only = true;
  auto reg = registry::Registry::Open(ro);
  if (!reg) return reg.error();
  auto c = query::Query(**reg).Consumers(type);
  if (!c) return c.error();
  const TimeNs now = g.clock->NowNs();
  if (g.json) {
    out << query::ConsumersJson(*c, now).dump() << '\n';
    return Status::OK();
  }
  const std::string& production = c->production;
  const TimeNs since = c->production_since;
  const auto& consumers = c->consumers;
  auto lag_of = [&](const projection::ConsumerRecord& r) { return query::BehindSeconds(*c, r, now); };
  out << type << " production: " << (production.empty() ? "none" : production)
      << (since != 0 ? " since " + FormatUtc(since) : std::string()) << '\n';
  if (consumers.empty()) {
    out << "  no consumer has reported yet\n";
    return Status::OK();
  }
  for (const auto& c : consumers) {
    char lag[64] = "";
    if (c.version != production) std::snprintf(lag, sizeof lag, ", BEHIND for %.1f s", lag_of(c));
    out << "  " << c.consumer_id << ": runs " << (c.version.empty() ? "nothing" : c.version)
        << (c.version == production ? " (current)" : "") << lag << ", reported "
        << FormatUtc(c.at) << " (event #" << c.seq << ")";
    if (!c.ok) out << "; last load of " << c.attempted_version << " FAILED: " << Printable(c.detail);
    out << '\n';
  }
  return Status::OK();
}

Status RunWatch(const Globals& g, const WatchOptions& o, std::ostream& out) {
  MODELREG_RETURN_IF_ERROR(model::ValidateModelType(o.type));
  loader::LoaderOptions lo;
  std::string private_cache;
  lo.model_type = o.type;
  lo.consumer_id = o.consumer_id;
  if (lo.consumer_id.empty()) {
    char host[256] = {0};
    gethostname(host, sizeof host - 1);
    lo.consumer_id = std::string("watch@") + host;
  }
  if (g.url.empty()) {
    lo.root = g.root;
    lo.token = g.token;  // for acknowledgements while a server holds the registry
  } else {
    lo.url = g.url;
    lo.token = g.token;
    lo.cache_dir = o.cache_dir;
    if (lo.cache_dir.empty()) {
      // A private directory of this run (mode 0700), removed at the end.
      std::string tmpl = (std::filesystem::temp_directory_path() / "modelreg-watch-XXXXXX").string();
      if (mkdtemp(tmpl.data()) == nullptr) return Status::IOError("cannot create a cache directory");
      lo.cache_dir = tmpl;
      private_cache = tmpl;
    }
  }
  for (const std::string& d : o.datasets) {
    auto kv = registry::SplitAssignment(d, "--dataset");
    if (!kv) return kv.error();
    lo.current_datasets[kv->first] = kv->second;
  }
  std::mutex print_mu;
  lo.on_swap = [&](const loader::Loaded& l) {
    std::lock_guard<std::mutex> lock(print_mu);
    out << "loaded " << l.file.model_type << ' ' << l.file.version << " sha256 "
        << l.file.sha256.substr(0, 12) << " from " << l.file.path << " at " << FormatUtc(l.loaded_at)
        << std::endl;
  };
  lo.on_error = [&](const std::string& m) {
    std::lock_guard<std::mutex> lock(print_mu);
    out << "error: " << m << std::endl;
  };
  // The "model": the artifact's size, read through (a real service would
  // deserialize it here).
  loader::LoadFn load = [](const loader::ModelFile& f) -> Result<std::shared_ptr<const void>> {
    std::error_code ec;
    const auto size = std::filesystem::file_size(f.path, ec);
    if (ec) return Err(Status::IOError("cannot read " + f.path));
    return std::shared_ptr<const void>(std::make_shared<std::uintmax_t>(size));
  };
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGALRM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  auto l = loader::ProductionModelLoader::Start(lo, load);
  if (!l) {
    if (!private_cache.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(private_cache, ec);
    }
    return l.error();
  }
  {
    std::lock_guard<std::mutex> lock(print_mu);
    out << "watching " << o.type << " as " << lo.consumer_id << " ("
        << (lo.url.empty() ? "local " + lo.root : "remote " + lo.url) << "); Ctrl-C stops"
        << std::endl;
  }
  if (o.exit_after_seconds > 0) alarm(static_cast<unsigned>(o.exit_after_seconds));
  int sig = 0;
  sigwait(&stop, &sig);
  l->reset();
  if (!private_cache.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(private_cache, ec);
  }
  return Status::OK();
}

}  // namespace modelreg::app
