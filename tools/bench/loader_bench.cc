// modelreg-loader-bench: promote-to-swap latency of ProductionModelLoader,
// local (secondary instance) and remote (HTTP long poll on 127.0.0.1).
//
// A registry in a temporary directory with two versions; the bench promotes
// them alternately (durably, through the Registry) and measures the time
// from just before Promote() to the loader's on_swap callback. Prints a
// markdown table. Stops by itself.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "auth/token.h"
#include "loader/production_loader.h"
#include "log/envelope.h"
#include "registry/registry.h"
#include "server/api_server.h"

#include "bench_util.h"

namespace {

using modelreg::bench::Percentile;

namespace fs = std::filesystem;
using Steady = std::chrono::steady_clock;


}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"modelreg-loader-bench: promote-to-swap latency, local and remote"};
  int rounds = 50;
  std::string dir = "/tmp";
  app.add_option("--rounds", rounds, "Promotions per mode")->capture_default_str();
  app.add_option("--dir", dir, "Where the temporary registry goes")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  const fs::path root = fs::path(dir) / ("modelreg-loader-bench-" + modelreg::NewEventId().substr(0, 8));
  fs::create_directories(root);
  std::ofstream(root / "policy.toml")
      << "[default]\nic = \"off\"\nsharpe = \"off\"\npaper_trading_hours = \"off\"\n";
  modelreg::registry::RegistryOptions ro;
  ro.root = root.string();
  ro.create_if_missing = true;
  auto reg = modelreg::registry::Registry::Open(ro);
  if (!reg) {
    std::cerr << reg.error().ToString() << '\n';
    return 1;
  }
  const modelreg::registry::Actor actor{"bench", ""};
  for (const char* v : {"v1.0.0", "v2.0.0"}) {
    const fs::path src = root / (std::string("src-") + v);
    fs::create_directories(src);
    std::ofstream(src / "model.bin") << std::string(1 << 20, v[1]);  // 1 MiB artifacts
    if (!(*reg)->Register("risk_model", v, (src / "model.bin").string(), {}, actor)) return 1;
  }
  (void)(*reg)->Promote("risk_model", "v1.0.0", std::nullopt, false, actor);

  const std::string secret(48, 'k');
  modelreg::auth::VerifierConfig vc;
  vc.hs256_secret = secret;
  modelreg::server::ServerOptions so;
  so.port = 0;
  auto srv = modelreg::server::ApiServer::Create(**reg, *modelreg::auth::TokenVerifier::Create(vc), so);
  if (!srv || !(*srv)->Bind().ok()) return 1;
  std::thread serving([&] { (void)(*srv)->Serve(); });
  modelreg::auth::IssueOptions io;
  io.subject = "bench-loader";
  io.scopes = {modelreg::auth::kScopeRead};
  const std::string token = *modelreg::auth::IssueHs256(secret, io);

  std::cout << "Promote-to-swap latency, " << rounds
            << " promotions per mode (1 MiB artifacts, SHA-256 checked before each swap)\n\n"
            << "| mode | p50 | p99 | max |\n|---|---|---|---|\n";
  int failures = 0;
  for (const bool remote : {false, true}) {
    std::mutex mu;
    std::condition_variable cv;
    std::string swapped;
    Steady::time_point swapped_at;
    modelreg::loader::LoaderOptions lo;
    lo.model_type = "risk_model";
    lo.consumer_id = remote ? "bench-remote" : "bench-local";
    lo.acknowledge = remote;  // a local loader would contend for the writer's lock
    if (remote) {
      lo.url = (*srv)->url();
      lo.token = token;
      lo.cache_dir = (root / "cache").string();
    } else {
      lo.root = root.string();
    }
    lo.on_swap = [&](const modelreg::loader::Loaded& l) {
      std::lock_guard<std::mutex> lock(mu);
      swapped = l.file.version;
      swapped_at = Steady::now();
      cv.notify_all();
    };
    lo.on_error = [&](const std::string& m) { std::cerr << "loader: " << m << '\n'; };
    auto loader = modelreg::loader::ProductionModelLoader::Start(
        lo, [](const modelreg::loader::ModelFile& f) -> modelreg::Result<std::shared_ptr<const void>> {
          return std::shared_ptr<const void>(std::make_shared<std::string>(f.version));
        });
    if (!loader) {
      std::cerr << loader.error().ToString() << '\n';
      return 1;
    }
    std::vector<double> lat;
    std::string next = "v2.0.0";
    for (int i = 0; i < rounds; ++i) {
      const auto t0 = Steady::now();
      if (!(*reg)->Promote("risk_model", next, std::nullopt, false, actor)) return 1;
      std::unique_lock<std::mutex> lock(mu);
      if (!cv.wait_for(lock, std::chrono::seconds(5), [&] { return swapped == next; })) {
        ++failures;
      } else {
        lat.push_back(std::chrono::duration<double>(swapped_at - t0).count());
      }
      lock.unlock();
      next = next == "v2.0.0" ? "v1.0.0" : "v2.0.0";
    }
    char line[160];
    std::snprintf(line, sizeof line, "| %s | %.1f ms | %.1f ms | %.1f ms |\n",
                  remote ? "remote (HTTP long poll, download)" : "local (secondary instance, 20 ms poll)",
                  Percentile(lat, 0.5) * 1e3, Percentile(lat, 0.99) * 1e3, Percentile(lat, 1.0) * 1e3);
    std::cout << line;
  }
  std::cout << "\npromotions not picked up within 5 s: " << failures << '\n';
  (*srv)->Stop();
  serving.join();
  reg->reset();
  fs::remove_all(root);
  return failures == 0 ? 0 : 1;
}
