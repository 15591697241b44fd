// modelreg-http-bench: a bounded load test of the HTTP API on loopback.
//
// Starts the real server (in this process, 127.0.0.1, a random port) over a
// fresh registry in a temporary directory, then runs reader threads
// (current, audit --at, list, show) and writer threads (register by
// multipart upload + promote, durable) against it over real HTTP
// connections for --seconds, and prints throughput, p50/p99 latency and the
// error count per operation as a markdown table. Stops by itself.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <httplib.h>

#include "auth/token.h"
#include "log/envelope.h"
#include "model/naming.h"
#include "registry/registry.h"
#include "server/api_server.h"

#include "bench_util.h"

namespace {

using modelreg::bench::Percentile;

namespace fs = std::filesystem;
using Steady = std::chrono::steady_clock;

struct Samples {
  std::mutex mu;
  std::map<std::string, std::vector<double>> latency;
  std::map<std::string, int> errors;
  void Add(const std::string& op, double s, bool ok) {
    std::lock_guard<std::mutex> lock(mu);
    latency[op].push_back(s);
    if (!ok) ++errors[op];
  }
};


}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"modelreg-http-bench: bounded HTTP API load test on loopback"};
  int seconds = 10, readers = 4, writers = 2;
  std::string dir = "/tmp";
  app.add_option("--seconds", seconds, "How long to run")->capture_default_str();
  app.add_option("--readers", readers, "Reader threads")->capture_default_str();
  app.add_option("--writers", writers, "Writer threads")->capture_default_str();
  app.add_option("--dir", dir, "Where the temporary registry goes")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  const fs::path root = fs::path(dir) / ("modelreg-http-bench-" + modelreg::NewEventId().substr(0, 8));
  fs::create_directories(root);
  std::ofstream(root / "policy.toml")
      << "[default]\nic = \"> 0.02\"\nsharpe = \"> 0.5\"\npaper_trading_hours = \"off\"\n";
  modelreg::registry::RegistryOptions ro;
  ro.root = root.string();
  ro.create_if_missing = true;
  auto reg = modelreg::registry::Registry::Open(ro);
  if (!reg) {
    std::cerr << reg.error().ToString() << '\n';
    return 1;
  }
  const std::string secret(48, 's');
  modelreg::auth::VerifierConfig vc;
  vc.hs256_secret = secret;
  auto verifier = modelreg::auth::TokenVerifier::Create(vc);
  modelreg::server::ServerOptions so;
  so.port = 0;
  auto srv = modelreg::server::ApiServer::Create(**reg, std::move(*verifier), so);
  if (!srv || !(*srv)->Bind().ok()) {
    std::cerr << "cannot start the server\n";
    return 1;
  }
  std::thread serving([&] { (void)(*srv)->Serve(); });
  modelreg::auth::IssueOptions io;
  io.subject = "bench";
  io.scopes = {modelreg::auth::kScopeWrite};
  const std::string token = *modelreg::auth::IssueHs256(secret, io);
  const httplib::Headers auth{{"Authorization", "Bearer " + token}};
  const int port = (*srv)->port();

  // Seed: one production version per type so that reads find something.
  std::vector<std::string> types;
  for (auto t : modelreg::model::kModelTypes) types.emplace_back(t);
  {
    httplib::Client c("127.0.0.1", port);
    for (const auto& t : types) {
      httplib::MultipartFormDataItems items{
          {"artifact", "seed weights " + t, "model.pkl", "application/octet-stream"},
          {"metadata", R"({"metrics": {"ic": 0.05, "sharpe": 1.2}})", "", "application/json"}};
      c.Post("/api/v1/models/" + t + "/v0.0.1", auth, items);
      c.Post("/api/v1/models/" + t + "/v0.0.1/promote", auth, "{}", "application/json");
    }
  }
  const std::string t_mid = modelreg::FormatUtc(modelreg::SystemClock::Instance().NowNs());

  Samples samples;
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int r = 0; r < readers; ++r) {
    threads.emplace_back([&, r] {
      httplib::Client c("127.0.0.1", port);
      c.set_keep_alive(true);
      c.set_tcp_nodelay(true);
      std::mt19937 rng(static_cast<unsigned>(r));
      int i = 0;
      while (!stop.load()) {
        const std::string& t = types[rng() % types.size()];
        std::string op, path;
        switch (i++ % 4) {
          case 0: op = "GET current"; path = "/api/v1/models/" + t + "/current"; break;
          case 1: op = "GET audit?at"; path = "/api/v1/audit?at=" + t_mid; break;
          case 2: op = "GET show"; path = "/api/v1/models/" + t + "/v0.0.1"; break;
          default: op = "GET list"; path = "/api/v1/models/" + t + "?status=production"; break;
        }
        const auto t0 = Steady::now();
        auto res = c.Get(path, auth);
        samples.Add(op, std::chrono::duration<double>(Steady::now() - t0).count(),
                    res && res->status == 200);
      }
    });
  }
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      httplib::Client c("127.0.0.1", port);
      c.set_keep_alive(true);
      c.set_tcp_nodelay(true);
      const std::string& t = types[static_cast<std::size_t>(w) % types.size()];
      for (int n = 1; !stop.load(); ++n) {
        const std::string version = "v" + std::to_string(w + 1) + "." + std::to_string(n) + ".0";
        httplib::MultipartFormDataItems items{
            {"artifact", "weights " + version + std::string(4096, 'w'), "model.pkl",
             "application/octet-stream"},
            {"metadata",
             R"({"metrics": {"ic": 0.05, "sharpe": 1.2}, "dataset_version_ids": {"crsp": "v1"}})",
             "", "application/json"}};
        auto t0 = Steady::now();
        auto res = c.Post("/api/v1/models/" + t + "/" + version, auth, items);
        samples.Add("POST register", std::chrono::duration<double>(Steady::now() - t0).count(),
                    res && res->status == 201);
        t0 = Steady::now();
        res = c.Post("/api/v1/models/" + t + "/" + version + "/promote", auth,
                     R"({"reason": "bench"})", "application/json");
        samples.Add("POST promote", std::chrono::duration<double>(Steady::now() - t0).count(),
                    res && res->status == 200);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  stop.store(true);
  for (auto& t : threads) t.join();
  (*srv)->Stop();
  serving.join();
  auto verify = (*reg)->Verify();
  const bool whole = verify && verify->chain.ok && verify->projection_ok;
  reg->reset();
  fs::remove_all(root);

  int total_errors = 0;
  std::cout << "HTTP API on 127.0.0.1, " << readers << " reader and " << writers
            << " writer threads (keep-alive connections), " << seconds
            << " s; writes are durable (fsync per group)\n\n"
            << "| operation | requests | req/s | p50 | p99 | errors |\n|---|---|---|---|---|---|\n";
  for (const auto& [op, v] : samples.latency) {
    const int errors = samples.errors[op];
    total_errors += errors;
    char line[256];
    std::snprintf(line, sizeof line, "| %s | %zu | %.0f | %.2f ms | %.2f ms | %d |\n", op.c_str(),
                  v.size(), static_cast<double>(v.size()) / seconds, Percentile(v, 0.5) * 1e3,
                  Percentile(v, 0.99) * 1e3, errors);
    std::cout << line;
  }
  std::cout << "\nregistry verified after the run: " << (whole ? "yes" : "NO") << '\n';
  return total_errors == 0 && whole ? 0 : 1;
}
