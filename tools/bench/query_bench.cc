// modelreg-query-bench: builds a registry with N events of a realistic mix
// (tools/bench/workload.h: per model type, a weekly cycle of registrations
// with full metadata, validations, promotions, rollbacks, failures), lets the
// registry build its projections, then measures "production per type at
// time T" (all four types, T uniform over the log):
//   - inside the library (Registry::ProductionAtTime), p50/p99/max;
//   - the whole CLI call `modelreg audit --at T` (a fresh process), p50/p99.
// Prints a markdown table for docs/performance.md.
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "events/model_events.h"
#include "events/sample.h"
#include "log/event_store.h"
#include "model/naming.h"
#include "query/query.h"
#include "registry/registry.h"
#include "workload.h"

#include "bench_util.h"

namespace {

using modelreg::bench::Percentile;

using Clock = std::chrono::steady_clock;
using modelreg::EventStore;
using modelreg::TimeNs;


std::string Micro(double seconds) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f µs", seconds * 1e6);
  return buf;
}
std::string Milli(double seconds) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f ms", seconds * 1e3);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"modelreg-query-bench: point-in-time audit latency on a large registry"};
  std::uint64_t events = 1'000'000;
  int queries = 20000, cli_calls = 40, list_queries = 20;
  std::string dir = "/tmp", modelreg_bin = "build/tools/modelreg/modelreg";
  bool keep = false;
  app.add_option("--events", events, "Events in the registry")->capture_default_str();
  app.add_option("--queries", queries, "Library queries")->capture_default_str();
  app.add_option("--cli-calls", cli_calls, "Whole CLI calls (0 to skip)")->capture_default_str();
  app.add_option("--list-queries", list_queries, "Library list-at-T queries")
      ->capture_default_str();
  app.add_option("--modelreg", modelreg_bin, "The modelreg binary")->capture_default_str();
  app.add_option("--dir", dir, "Where the temporary registry goes")->capture_default_str();
  app.add_flag("--keep", keep, "Keep the registry");
  CLI11_PARSE(app, argc, argv);

  namespace fs = std::filesystem;
  const fs::path root = fs::path(dir) / ("modelreg-query-bench-" + modelreg::NewEventId().substr(0, 8));
  fs::create_directories(root / "registry");

  // 1. The log (unsynced: this measures reads, not durability).
  const auto t0 = Clock::now();
  {
    modelreg::StoreOptions so;
    so.sync = false;
    auto store = EventStore::Open((root / "registry").string(), so);
    if (!store) {
      std::cerr << store.error().ToString() << '\n';
      return 1;
    }
    modelreg::bench::AppendWorkload(**store, events);
  }
  const double append_secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::cerr << "[bench] appended in " << append_secs << " s\n";

  // 2. The registry folds the log once and writes its projections.
  const auto t1 = Clock::now();
  TimeNs first = 0, last = 0;
  modelreg::Seq head = 0;
  {
    modelreg::registry::RegistryOptions o;
    o.root = root.string();
    auto reg = modelreg::registry::Registry::Open(o);
    if (!reg) {
      std::cerr << reg.error().ToString() << '\n';
      return 1;
    }
    const modelreg::query::Query q(**reg);
    head = q.Head()->seq;
    first = q.Events(1, {}, 1)->at(0).event().recorded_at();
    last = q.Head()->at;
  }
  const double build_secs = std::chrono::duration<double>(Clock::now() - t1).count();
  std::cerr << "[bench] projections built in " << build_secs << " s\n";

  // 3. Library queries, all four types at a random T: through the rows (a
  // fresh read-only registry, as a one-shot CLI call sees it) and in memory
  // (a long-running process that holds the state).
  std::vector<double> lib_rows, lib_memory, lib_show, lib_list;
  std::size_t listed = 0;
  const std::uint64_t max_week = modelreg::bench::WeeksPerType(events);
  double load_secs = 0;
  {
    modelreg::registry::RegistryOptions o;
    o.root = root.string();
    o.read_only = true;
    auto reg = modelreg::registry::Registry::Open(o);
    if (!reg) {
      std::cerr << reg.error().ToString() << '\n';
      return 1;
    }
    std::size_t found = 0;
    auto run = [&](std::vector<double>& into) {
      std::mt19937_64 rng(42);
      std::uniform_int_distribution<TimeNs> when(first, last);
      for (int i = 0; i < queries; ++i) {
        const TimeNs t = when(rng);
        const auto q0 = Clock::now();
        for (auto type : modelreg::model::kModelTypes) {
          auto p = (*reg)->ProductionAtTime(std::string(type), t);
          if (!p) {
            std::cerr << p.error().ToString() << '\n';
            std::exit(1);
          }
          found += p->version.empty() ? 0 : 1;
        }
        into.push_back(std::chrono::duration<double>(Clock::now() - q0).count());
      }
    };
    run(lib_rows);
    // One version's record at T (show --at) and every version of one type at
    // T (list TYPE --at), from the versioned record rows.
    {
      std::mt19937_64 rng(43);
      std::uniform_int_distribution<TimeNs> when(first, last);
      for (int i = 0; i < queries; ++i) {
        const TimeNs t = when(rng);
        const std::string version = "v" + std::to_string(1 + rng() % max_week) + ".1.0";
        const auto q0 = Clock::now();
        auto v = (*reg)->VersionAt("risk_model", version, t);
        lib_show.push_back(std::chrono::duration<double>(Clock::now() - q0).count());
        if (!v) {
          std::cerr << v.error().ToString() << '\n';
          std::exit(1);
        }
      }
      for (int i = 0; i < list_queries; ++i) {
        const TimeNs t = when(rng);
        const auto q0 = Clock::now();
        auto s = (*reg)->SnapshotAt(t, "risk_model");
        lib_list.push_back(std::chrono::duration<double>(Clock::now() - q0).count());
        if (!s) {
          std::cerr << s.error().ToString() << '\n';
          std::exit(1);
        }
        listed += s->types.empty() ? 0 : s->types.begin()->second.versions.size();
      }
    }
    const auto l0 = Clock::now();
    if (auto st = (*reg)->Load(); !st.ok()) {
      std::cerr << st.ToString() << '\n';
      return 1;
    }
    load_secs = std::chrono::duration<double>(Clock::now() - l0).count();
    run(lib_memory);
    std::cerr << "[bench] " << found << " production versions found\n";
  }

  // 4. Whole CLI calls.
  std::vector<double> cli, cli_show;
  {
    std::mt19937_64 rng(7);
    std::uniform_int_distribution<TimeNs> when(first, last);
    auto call = [&](const std::string& args, std::vector<double>& into, bool may_miss) {
      const std::string cmd =
          modelreg_bin + " --root " + root.string() + " --json " + args + " >/dev/null 2>&1";
      const auto c0 = Clock::now();
      const int rc = std::system(cmd.c_str());
      into.push_back(std::chrono::duration<double>(Clock::now() - c0).count());
      // show exits 3 for a version not registered yet at T.
      if (rc != 0 && !(may_miss && WIFEXITED(rc) && WEXITSTATUS(rc) == 3)) {
        std::cerr << "failed: " << cmd << '\n';
        std::exit(1);
      }
    };
    for (int i = 0; i < cli_calls; ++i) {
      call("audit --at " + modelreg::FormatUtc(when(rng)), cli, false);
      call("show risk_model v" + std::to_string(1 + rng() % max_week) + ".1.0 --at " +
               modelreg::FormatUtc(when(rng)),
           cli_show, true);
    }
  }

  std::uintmax_t bytes = 0;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_regular_file()) bytes += e.file_size();
  }
  std::cout << "Registry: " << head << " events (4 model types, weekly cycles of registrations "
            << "with full metadata, validations, promotions, archives, rollbacks), "
            << bytes / (1 << 20) << " MiB on disk\n\n"
            << "| metric | value | target |\n|---|---|---|\n"
            << "| audit --at T, 4 types, library, state in memory: p50 | "
            << Micro(Percentile(lib_memory, 0.5)) << " | |\n"
            << "| audit --at T, 4 types, library, state in memory: p99 | "
            << Micro(Percentile(lib_memory, 0.99)) << " | < 100 µs |\n"
            << "| audit --at T, 4 types, library, from the rows (fresh open): p50 | "
            << Micro(Percentile(lib_rows, 0.5)) << " | |\n"
            << "| audit --at T, 4 types, library, from the rows (fresh open): p99 | "
            << Micro(Percentile(lib_rows, 0.99)) << " | |\n"
            << "| show --at T (one version's record), library: p50 | "
            << Micro(Percentile(lib_show, 0.5)) << " | |\n"
            << "| show --at T (one version's record), library: p99 | "
            << Micro(Percentile(lib_show, 0.99)) << " | |\n"
            << "| list TYPE --at T (every version of one type, " << listed / std::max(1, list_queries)
            << " on average), library: p50 | " << Milli(Percentile(lib_list, 0.5)) << " | |\n"
            << "| list TYPE --at T, library: p99 | " << Milli(Percentile(lib_list, 0.99))
            << " | |\n"
            << "| loading the whole state into memory (once per process) | " << load_secs
            << " s | |\n";
  if (!cli.empty()) {
    std::cout << "| `modelreg audit --at T` whole process p50 | " << Milli(Percentile(cli, 0.5))
              << " | |\n"
              << "| `modelreg audit --at T` whole process p99 | " << Milli(Percentile(cli, 0.99))
              << " | < 30 ms |\n"
              << "| `modelreg show TYPE VERSION --at T` whole process p50 | "
              << Milli(Percentile(cli_show, 0.5)) << " | |\n"
              << "| `modelreg show TYPE VERSION --at T` whole process p99 | "
              << Milli(Percentile(cli_show, 0.99)) << " | |\n";
  }
  std::cout << "| building the log (unsynced, 4 threads) | " << append_secs << " s | |\n"
            << "| first open: fold + write projections | " << build_secs << " s | |\n";
  if (!keep) fs::remove_all(root);
  return 0;
}
