// modelreg-http-bench: a bounded load test of the HTTP API on loopback.
//
// Starts the real server (in this process, 127.0.0.1, a random port) over a
// fresh registry in a temporary directory, then runs reader threads
// (current, audit --at, list, show) and writer threads (register by
// multipart upload + promote, durable) against it over real HTTP
// connections for --seconds, and prints throughput, p50/p99 latency and the
// error count per operation as a markdown table. Stops by itself.
//
// A health-check thread probes GET /healthz on a fresh connection each time
// (as a load balancer does). With --slow N, N slow clients are held open
// for the whole run (issue 15): a third send their headers one line a
// second, a third send nothing, a third stop half way through a body; each
// is reopened as soon as the server ends it (408, or closed when idle), so
// N stay open. The table shows what the others still get.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

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

// Holds `n` slow connections open against 127.0.0.1:port until stopped.
class SlowClients {
 public:
  SlowClients(int port, int n, std::string token) : port_(port), n_(n), token_(std::move(token)) {
    if (n_ > 0) thread_ = std::thread([this] { Run(); });
  }
  ~SlowClients() { Stop(); }
  void Stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  int ended() const { return ended_.load(); }      // connections the server ended
  int failed() const { return failed_.load(); }    // connects that failed

 private:
  enum Kind { kSlowHeaders, kIdle, kHalfBody };

  int Open(Kind kind) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      if (fd >= 0) close(fd);
      ++failed_;
      return -1;
    }
    std::string first;
    if (kind == kSlowHeaders) first = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    if (kind == kHalfBody) {
      first = "POST /api/v1/models/risk_model/consumers/slow/ack HTTP/1.1\r\nHost: 127.0.0.1\r\n"
              "Authorization: Bearer " + token_ +
              "\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"detail\": \"" +
              std::string(400, 'x');
    }
    if (!first.empty()) (void)send(fd, first.data(), first.size(), MSG_NOSIGNAL);
    return fd;
  }

  void Run() {
    std::vector<std::pair<int, Kind>> conns;
    for (int i = 0; i < n_; ++i) {
      const Kind kind = static_cast<Kind>(i % 3);
      conns.emplace_back(Open(kind), kind);
    }
    auto next_line = Steady::now() + std::chrono::seconds(1);
    std::vector<pollfd> fds;
    while (!stop_.load()) {
      fds.clear();
      for (const auto& [fd, kind] : conns) fds.push_back(pollfd{fd, POLLIN, 0});
      const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_line - Steady::now());
      (void)poll(fds.data(), fds.size(), static_cast<int>(std::clamp<long long>(wait.count(), 0, 200)));
      for (std::size_t i = 0; i < conns.size(); ++i) {
        auto& [fd, kind] = conns[i];
        if (fd >= 0 && fds[i].revents == 0) continue;
        if (fd >= 0) {
          // A reply (408) or EOF: the server ended it. Reopen.
          close(fd);
          ++ended_;
        }
        fd = Open(kind);
      }
      if (Steady::now() >= next_line) {
        next_line += std::chrono::seconds(1);
        for (const auto& [fd, kind] : conns) {
          if (fd >= 0 && kind == kSlowHeaders) (void)send(fd, "X-Slow: 1\r\n", 11, MSG_NOSIGNAL);
        }
      }
    }
    for (const auto& [fd, kind] : conns) {
      if (fd >= 0) close(fd);
    }
  }

  const int port_, n_;
  const std::string token_;
  std::atomic<bool> stop_{false};
  std::atomic<int> ended_{0}, failed_{0};
  std::thread thread_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"modelreg-http-bench: bounded HTTP API load test on loopback"};
  int seconds = 10, readers = 4, writers = 2, slow = 0;
  std::string dir = "/tmp";
  app.add_option("--seconds", seconds, "How long to run")->capture_default_str();
  app.add_option("--readers", readers, "Reader threads")->capture_default_str();
  app.add_option("--writers", writers, "Writer threads")->capture_default_str();
  app.add_option("--dir", dir, "Where the temporary registry goes")->capture_default_str();
  app.add_option("--slow", slow,
                 "Slow clients held open during the run (slow headers, idle, half bodies)")
      ->check(CLI::Range(0, 4000))
      ->capture_default_str();
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
  // One descriptor per connection, twice (client and server in this process).
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
  modelreg::server::ServerOptions so;
  so.port = 0;
  so.limits.max_connections = std::max(so.limits.max_connections, slow + readers + writers + 16);
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

  SlowClients slow_clients(port, slow, token);
  Samples samples;
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  // A load balancer's probe: a fresh connection each time.
  threads.emplace_back([&] {
    while (!stop.load()) {
      httplib::Client c("127.0.0.1", port);
      c.set_connection_timeout(10, 0);
      c.set_read_timeout(10, 0);
      const auto t0 = Steady::now();
      auto res = c.Get("/healthz");
      samples.Add("GET healthz (new connection)",
                  std::chrono::duration<double>(Steady::now() - t0).count(), res && res->status == 200);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
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
  std::string connections_line;
  {
    httplib::Client c("127.0.0.1", port);
    if (auto m = c.Get("/metrics"); m && m->status == 200) {
      for (const char* name : {"modelreg_http_connections_open ", "modelreg_http_connections_rejected_total ",
                               "modelreg_http_requests_timed_out_total "}) {
        const auto at = m->body.find(std::string("\n") + name);
        if (at != std::string::npos) {
          connections_line += m->body.substr(at + 1, m->body.find('\n', at + 1) - at - 1) + "; ";
        }
      }
    }
  }
  stop.store(true);
  for (auto& t : threads) t.join();
  slow_clients.Stop();
  (*srv)->Stop();
  serving.join();
  auto verify = (*reg)->Verify();
  const bool whole = verify && verify->chain.ok && verify->projection_ok;
  reg->reset();
  fs::remove_all(root);

  int total_errors = 0;
  std::cout << "HTTP API on 127.0.0.1, " << readers << " reader and " << writers
            << " writer threads (keep-alive connections), a health probe, " << slow
            << " slow clients held open, " << seconds
            << " s; writes are durable (fsync per group)\n";
  if (slow > 0) {
    std::cout << "slow connections the server ended (each reopened at once): "
              << slow_clients.ended() << ", failed connects: " << slow_clients.failed() << '\n';
  }
  std::cout << "at the end: " << connections_line << "\n\n"
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
