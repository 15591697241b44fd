// modelreg-cache-bench: DiskExpressionCache hit latency and miss overhead.
//
// For 1 KiB and 10 MiB values, in a fresh cache directory:
//   - miss: GetOrCompute on a new key; the overhead is the whole call minus
//     the time spent inside the compute function (which only copies a
//     prepared value): locking, the failed read, writing, two fsyncs and
//     the rename;
//   - hit: GetOrCompute on a stored key (page cache warm): open, read,
//     SHA-256 over the whole entry.
// Prints a markdown table (p50/p99/max) for docs/performance.md. Stops by itself.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "cache/expression_cache.h"
#include "log/envelope.h"

#include "bench_util.h"

namespace {

using modelreg::bench::Percentile;

namespace fs = std::filesystem;
using Steady = std::chrono::steady_clock;


std::string Fmt(double seconds) {
  char buf[32];
  if (seconds < 1e-3) {
    std::snprintf(buf, sizeof buf, "%.1f µs", seconds * 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.2f ms", seconds * 1e3);
  }
  return buf;
}

double Since(Steady::time_point t0) {
  return std::chrono::duration<double>(Steady::now() - t0).count();
}

struct Row {
  std::string value, op;
  std::vector<double> samples;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"modelreg-cache-bench: DiskExpressionCache hit latency and miss overhead"};
  int small_keys = 1000, big_keys = 40, hit_rounds = 5;
  std::string dir = "/tmp";
  app.add_option("--small-keys", small_keys, "Keys with 1 KiB values")->capture_default_str();
  app.add_option("--big-keys", big_keys, "Keys with 10 MiB values")->capture_default_str();
  app.add_option("--hit-rounds", hit_rounds, "Hits per stored key")->capture_default_str();
  app.add_option("--dir", dir, "Where the temporary cache goes")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  const fs::path root =
      fs::path(dir) / ("modelreg-cache-bench-" + modelreg::NewEventId().substr(0, 8));
  modelreg::cache::DiskExpressionCache cache(root.string(), modelreg::cache::kDefaultTtl);
  std::vector<Row> rows;
  bool ok = true;
  for (const auto& [label, size, keys] :
       {std::tuple<std::string, std::size_t, int>{"1 KiB", 1024, small_keys},
        std::tuple<std::string, std::size_t, int>{"10 MiB", 10 << 20, big_keys}}) {
    std::string value(size, '\0');
    for (std::size_t i = 0; i < size; ++i) value[i] = static_cast<char>(i * 2654435761u >> 13);
    auto key = [&](int i) {
      return modelreg::cache::CacheKey{"bench_" + std::to_string(size),
                                       "2024-01-15",
                                       {{"crsp", "v1.2.3"}, {"compustat", "v1.0.1"}},
                                       "snap_20240101",
                                       "cfg_" + std::to_string(i)};
    };
    Row miss{label, "miss overhead (call − compute)", {}},
        compute{label, "compute (copy the value)", {}}, hit{label, "hit", {}};
    for (int i = 0; i < keys; ++i) {
      double in_compute = 0;
      const auto t0 = Steady::now();
      auto r = cache.GetOrCompute(key(i), [&]() -> modelreg::Result<std::string> {
        const auto c0 = Steady::now();
        std::string v = value;
        in_compute = Since(c0);
        return v;
      });
      const double total = Since(t0);
      if (!r || r->was_cached || !r->store_status.ok()) {
        std::cerr << "miss " << i << " went wrong\n";
        ok = false;
        break;
      }
      miss.samples.push_back(total - in_compute);
      compute.samples.push_back(in_compute);
    }
    for (int round = 0; round < hit_rounds && ok; ++round) {
      for (int i = 0; i < keys; ++i) {
        const auto t0 = Steady::now();
        auto r = cache.GetOrCompute(key(i), []() -> modelreg::Result<std::string> {
          return modelreg::Err(modelreg::Status::Internal("a hit must not compute"));
        });
        const double total = Since(t0);
        if (!r || !r->was_cached || r->value.size() != size) {
          std::cerr << "hit " << i << " went wrong\n";
          ok = false;
          break;
        }
        hit.samples.push_back(total);
      }
    }
    rows.push_back(std::move(hit));
    rows.push_back(std::move(miss));
    rows.push_back(std::move(compute));
    // Keep the disk small: drop this size's entries before the next one.
    (void)cache.InvalidateFactor("bench_" + std::to_string(size));
  }
  std::error_code ec;
  fs::remove_all(root, ec);
  if (!ok) return 1;
  std::cout << "| value | operation | n | p50 | p99 | max |\n|---|---|---|---|---|---|\n";
  for (const Row& r : rows) {
    std::cout << "| " << r.value << " | " << r.op << " | " << r.samples.size() << " | "
              << Fmt(Percentile(r.samples, 0.5)) << " | " << Fmt(Percentile(r.samples, 0.99)) << " | "
              << Fmt(Percentile(r.samples, 1.0)) << " |\n";
  }
  return 0;
}
