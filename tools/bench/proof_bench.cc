// modelreg-proof-bench: Merkle proofs on a large log (docs/performance.md,
// docs/proofs.md). Appends N sample events (unsynced, 4 threads) to a fresh
// store, then times, from a fresh read-only open: the root, inclusion
// proofs of random events, consistency proofs between random sizes, and the
// check of each proof. Prints a markdown table.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "common/random_id.h"
#include "events/model_events.h"
#include "events/sample.h"
#include "log/event_store.h"
#include "merkle/tree.h"

namespace fs = std::filesystem;
using modelreg::Digest;
using modelreg::EventStore;
using modelreg::Seq;
using Clock = std::chrono::steady_clock;

namespace {

template <typename T>
T Check(modelreg::Result<T> r, const std::string& what) {
  if (!r) {
    std::cerr << "modelreg-proof-bench: " << what << ": " << r.error().ToString() << '\n';
    std::exit(1);
  }
  return std::move(*r);
}

double Micros(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

struct Summary {
  double p50, p99, max;
};

Summary Summarize(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  auto at = [&](double q) { return us[static_cast<std::size_t>(q * static_cast<double>(us.size() - 1))]; };
  return {at(0.50), at(0.99), us.back()};
}

std::string Row(const std::string& name, const Summary& s, const std::string& note) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "| %s | %.1f µs | %.1f µs | %.1f µs | %s |", name.c_str(), s.p50,
                s.p99, s.max, note.c_str());
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"modelreg-proof-bench: Merkle proof latency on a large log"};
  std::uint64_t events = 1'000'000;
  std::uint64_t samples = 10'000;
  std::string dir = fs::temp_directory_path().string();
  bool keep = false;
  app.add_option("--events", events, "Events in the log")->check(CLI::Range(2, 100'000'000));
  app.add_option("--samples", samples, "Proofs of each kind")->check(CLI::Range(10, 10'000'000));
  app.add_option("--dir", dir, "Where the temporary log goes");
  app.add_flag("--keep", keep, "Keep the log");
  CLI11_PARSE(app, argc, argv);

  const fs::path path = fs::path(dir) / ("modelreg-proof-bench-" + modelreg::NewEventId());
  {
    modelreg::StoreOptions o;
    o.sync = false;
    auto store = Check(EventStore::Open(path.string(), o), "open");
    const auto t0 = Clock::now();
    std::vector<std::thread> threads;
    constexpr int kThreads = 4;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (std::uint64_t i = static_cast<std::uint64_t>(t); i < events; i += kThreads) {
          const std::string version = "v" + std::to_string(1 + i / 10000) + "." +
                                      std::to_string(i / 100 % 100) + "." + std::to_string(i % 100);
          modelreg::AppendRequest req;
          req.draft = modelreg::events::Draft(
              {"bench", modelreg::NewEventId(), 0},
              modelreg::events::SampleRegistration("risk_model", version, i));
          Check(store->Append(std::move(req)), "append");
        }
      });
    }
    for (auto& th : threads) th.join();
    std::cerr << "appended " << events << " events in "
              << Micros(t0, Clock::now()) / 1e6 << " s\n";
  }

  modelreg::StoreOptions ro;
  ro.read_only = true;
  const auto open0 = Clock::now();
  auto log = Check(EventStore::Open(path.string(), ro), "open read-only");
  const auto open1 = Clock::now();
  const Seq n = log->head().seq;
  std::mt19937_64 rng(19);

  std::vector<double> root_us, incl_us, incl_check_us, cons_us, cons_check_us;
  const auto r0 = Clock::now();
  const Digest root = Check(log->TreeAt(), "root").root;
  root_us.push_back(Micros(r0, Clock::now()));
  std::vector<Seq> seqs(samples);
  for (auto& s : seqs) s = 1 + rng() % n;
  for (Seq seq : seqs) {
    const auto a = Clock::now();
    auto path_hashes = Check(log->InclusionProof(seq, n), "inclusion proof");
    const auto b = Clock::now();
    incl_us.push_back(Micros(a, b));
    auto event = Check(log->Get(seq), "get");
    const auto c = Clock::now();
    const bool ok =
        modelreg::merkle::VerifyInclusion(seq - 1, n, modelreg::merkle::HashLeaf(event.bytes()),
                                          path_hashes, root)
            .ok();
    incl_check_us.push_back(Micros(c, Clock::now()));
    if (!ok) {
      std::cerr << "inclusion proof of event " << seq << " does not check\n";
      return 1;
    }
  }
  for (std::uint64_t i = 0; i < samples; ++i) {
    const Seq m = 1 + rng() % n;
    const auto a = Clock::now();
    auto proof = Check(log->ConsistencyProof(m, n), "consistency proof");
    const auto b = Clock::now();
    cons_us.push_back(Micros(a, b));
    const Digest old_root = Check(log->TreeAt(m), "old root").root;
    const auto c = Clock::now();
    const bool ok = modelreg::merkle::VerifyConsistency(m, n, old_root, root, proof).ok();
    cons_check_us.push_back(Micros(c, Clock::now()));
    if (!ok) {
      std::cerr << "consistency proof from " << m << " does not check\n";
      return 1;
    }
  }

  // The tree's share of an append: the leaf hash over an event's bytes and
  // the inner hashes it completes (the row puts are not counted).
  std::vector<double> append_us;
  {
    auto sample = Check(log->Get(1), "get");
    const std::string bytes(sample.bytes());
    modelreg::merkle::CompactRange range;
    constexpr int kRounds = 200'000;
    const auto a = Clock::now();
    for (int i = 0; i < kRounds; ++i) {
      auto nodes = range.Append(modelreg::merkle::HashLeaf(bytes));
      if (nodes.empty()) return 1;
    }
    append_us.push_back(Micros(a, Clock::now()) / kRounds);
    std::cerr << "tree work per append: " << append_us.back() << " µs for a " << bytes.size()
              << "-byte event\n";
  }

  std::cout << "Log: " << n << " events; " << samples
            << " proofs of each kind, random events and sizes, from a fresh read-only open ("
            << Micros(open0, open1) / 1000 << " ms)\n\n";
  std::cout << "| operation | p50 | p99 | max | note |\n|---|---|---|---|---|\n";
  std::cout << Row("root of the whole tree (first call)", Summarize(root_us), "one call") << '\n';
  std::cout << Row("inclusion proof (EventStore::InclusionProof)", Summarize(incl_us),
                   "target p99 < 1 ms") << '\n';
  std::cout << Row("inclusion proof check (VerifyInclusion)", Summarize(incl_check_us), "") << '\n';
  std::cout << Row("consistency proof (EventStore::ConsistencyProof)", Summarize(cons_us),
                   "target p99 < 1 ms") << '\n';
  std::cout << Row("consistency proof check (VerifyConsistency)", Summarize(cons_check_us), "")
            << '\n';
  std::cout << Row("tree work per append (leaf + inner hashes, CPU)", Summarize(append_us),
                   "mean of 200,000; compare with a durable append's fsync") << '\n';
  log.reset();
  if (!keep) fs::remove_all(path);
  return 0;
}
