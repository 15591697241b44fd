// The benchmarks' realistic registry history, shared by query_bench and
// compare_bench. Per model type, a weekly cycle: two registrations with the
// spec's full metadata, a validation, the promotion of one of them (gates
// and policy recorded), the archive of the other; every 7th week a third
// candidate that fails its checks; every 10th week a rollback.
//
// AppendWorkload writes the events straight into an EventStore (unsynced:
// it builds large registries quickly; the durable write path is measured
// separately), one thread per type so that each type keeps its order.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "events/model_events.h"
#include "events/sample.h"
#include "log/event_store.h"
#include "model/naming.h"

namespace modelreg::bench {

// One model type's history, `events` events long (a little more: the last
// week is finished).
inline void AppendTypeHistory(EventStore& store, const std::string& type, std::uint64_t events,
                              std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string production, previous;
  std::uint64_t week = 0, n = 0;
  auto append = [&](const std::string& draft) {
    auto r = store.Append({draft, std::nullopt, nullptr});
    if (!r) {
      std::cerr << "append: " << r.error().ToString() << '\n';
      std::exit(1);
    }
    ++n;
  };
  auto id = [] { return NewEventId(); };
  auto registration = [&](const std::string& v) {
    auto reg = events::SampleRegistration(type, v, seed * 1'000'003 + week);
    reg.metrics["ic"] = 0.03 + 0.05 * static_cast<double>(rng() % 100) / 100.0;
    reg.metrics["sharpe"] = 0.6 + static_cast<double>(rng() % 100) / 50.0;
    append(events::Draft({"trainer", id(), 0}, reg));
  };
  while (n < events) {
    ++week;
    const std::string a = "v" + std::to_string(week) + ".0.0";
    const std::string b = "v" + std::to_string(week) + ".1.0";
    registration(a);
    registration(b);
    if (week % 7 == 0) {
      const std::string c = "v" + std::to_string(week) + ".2.0";
      registration(c);
      append(events::Draft({"ci", id(), 0},
                           events::Failure{type, c, "validator: predictions are all NaN"}));
    }
    events::Validation val;
    val.model_type = type;
    val.version = b;
    val.ok = true;
    append(events::Draft({"ci", id(), 0}, val));
    events::Promotion p;
    p.model_type = type;
    p.version = b;
    p.replaced_version = production;
    p.gates = {{"ic", ">", 0.02, 0.05, true, true, ""}, {"sharpe", ">", 0.5, 1.1, true, true, ""}};
    p.reason = "weekly retrain";
    p.policy = "built-in defaults";
    append(events::Draft({"alice", id(), 0}, p));
    previous = production;
    production = b;
    append(events::Draft({"trainer", id(), 0}, events::Archive{type, a, "not chosen"}));
    if (week % 10 == 0 && !previous.empty()) {
      append(events::Draft({"carol", id(), 0},
                           events::Rollback{type, production, previous, true, "losing money"}));
      std::swap(production, previous);
      previous.clear();
    }
  }
}

// About `events` events over the four model types, four threads.
inline void AppendWorkload(EventStore& store, std::uint64_t events) {
  std::vector<std::thread> threads;
  std::uint64_t seed = 1;
  for (auto type : model::kModelTypes) {
    threads.emplace_back(
        [&store, type, seed, events] { AppendTypeHistory(store, std::string(type), events / 4, seed); });
    ++seed;
  }
  for (auto& t : threads) t.join();
}

// Versions are named v<week>.<0|1|2>.0; a type has about events/4/6 weeks.
inline std::uint64_t WeeksPerType(std::uint64_t events) {
  return events / 4 / 6 > 0 ? events / 4 / 6 : 1;
}

}  // namespace modelreg::bench
