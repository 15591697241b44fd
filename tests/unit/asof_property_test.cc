// The as-of rule as a property (docs/pointintime.md, src/query/query.h):
// every answer "at T" is a function of the log prefix with recorded_at <= T
// alone.
//
// For each seed, a real Registry (RocksDB and artifact files in a temporary
// directory, a ManualClock advancing by random amounts) is driven through a
// random history: registrations (new, idempotent repeats, conflicting and
// invalid ones), promotions (passing, refused by the gates -> a
// PromotionRejected event, overridden, re-promotions of archived versions,
// a wrong expect_current), archives, failures (with and without force),
// rollbacks (with and without fail_current), validations (of intact,
// altered and missing artifacts), purges (CollectGarbage with a small keep
// and retention), consumer acknowledgements, and gate policy changes
// between promotions (PolicyChanged events, some repeating the policy in
// force: those record nothing). Illegal commands are part of the mix: a refused command must
// append nothing (the head does not move); a gate refusal or a failed
// artifact check appends exactly its one event.
//
// Then, for instants T before the first event, at every event's recorded_at
// and 1 ns before it, between events at random and after the last, the
// answers of query::Query (Audit with its policy, Policy, Current, Show,
// List, Diff, History) are
// compared field by field with a plain fold of the prefix computed here
// (projection::Apply over the events with recorded_at <= T), and every
// record in an answer is checked against the rule directly: nothing in it
// is later than T or than the last event at or before T. Answers taken
// during the run (the log shorter than at the end) must also equal the
// fold of their prefix.
//
// Seeds: MODELREG_ASOF_SEEDS=1,2,3 (or "random") overrides the default
// seeds; MODELREG_ASOF_EVENTS the number of events per seed.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/sha256.h"
#include "events/model_events.h"
#include "log/event_buffer.h"
#include "model/naming.h"
#include "policy/policy.h"
#include "projection/state.h"
#include "query/query.h"
#include "registry/registry.h"
#include "support/temp_dir.h"

namespace modelreg {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using projection::ModelStatus;
using projection::PromotionRecord;
using projection::Seq;
using projection::State;
using projection::TypeState;
using projection::VersionRecord;
using query::Query;
using registry::Actor;
using registry::MetadataInput;
using registry::Registry;

constexpr TimeNs kT0 = 1'736'933'400'000'000'000LL;  // 2025-01-15T09:30:00Z
constexpr TimeNs kUs = 1'000LL;
constexpr TimeNs kSec = 1'000'000'000LL;
constexpr TimeNs kMin = 60 * kSec;
constexpr TimeNs kHour = 60 * kMin;

// The types the generator writes: three well-known ones and a name of the
// grammar that is not well-known (it appears in audit and diff only once
// registered). The fourth well-known type (feature_transforms) is never
// written: it has no production at any T.
const std::vector<std::string> kActiveTypes = {"risk_model", "alpha_weights", "factor_definitions",
                                               "alpha_momentum"};

const std::vector<std::string>& WellKnownTypes() {
  static const std::vector<std::string> types = [] {
    std::vector<std::string> out;
    for (std::string_view t : model::kModelTypes) out.emplace_back(t);
    return out;
  }();
  return types;
}

// What an audit or diff as of a state lists: the well-known types, then
// every other name with a version registered in it, sorted.
std::vector<std::string> NamesIn(const State& s) {
  std::vector<std::string> out = WellKnownTypes();
  for (const auto& [type, ts] : s.types) {
    if (ts.versions.empty()) continue;
    if (std::find(out.begin(), out.end(), type) == out.end()) out.push_back(type);
  }
  std::sort(out.begin() + static_cast<std::ptrdiff_t>(WellKnownTypes().size()), out.end());
  return out;
}

// Policies the generator switches between: metric gates, paper-trading
// hours (with the clock's random steps they pass or fail), per-type tables,
// no gates at all. Each promotion records the one in force.
const std::vector<std::string> kPolicies = {
    "[default]\nic = \"> 0.02\"\nsharpe = \"> 0.5\"\npaper_trading_hours = \">= 1\"\n",
    "[default]\nic = \"off\"\nsharpe = \"> 0.3\"\npaper_trading_hours = \">= 0.5\"\n"
    "[alpha_weights]\npaper_trading_hours = \"off\"\n",
    "[default]\nic = \"off\"\nsharpe = \"off\"\npaper_trading_hours = \"off\"\n",
    "[default]\nic = \"> 0.01\"\nsharpe = \"off\"\npaper_trading_hours = \">= 2\"\n"
    "[risk_model]\nmax_drawdown = \">= -0.2\"\n",
};

void WriteAll(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

std::string Utc(TimeNs t) { return std::to_string(t) + " (" + FormatUtc(t) + ")"; }

// --- readable values for field-by-field diffs ---

std::string Str(const std::string& s) { return "\"" + s + "\""; }
std::string Str(bool b) { return b ? "true" : "false"; }
std::string Str(ModelStatus s) { return std::string(projection::StatusName(s)); }
std::string Str(projection::ArtifactKind k) { return std::string(projection::KindName(k)); }
std::string Str(std::uint64_t v) { return std::to_string(v); }
std::string Str(int v) { return std::to_string(v); }
std::string Str(double v) {
  std::ostringstream o;
  o.precision(17);
  o << v;
  return o.str();
}
template <typename K, typename V>
std::string Str(const std::map<K, V>& m) {
  std::string out = "{";
  for (const auto& [k, v] : m) out += (out.size() > 1 ? ", " : "") + Str(k) + ": " + Str(v);
  return out + "}";
}

std::string Str(const projection::Annotations& a) { return nlohmann::json(a).dump(); }

class FieldDiff {
 public:
  template <typename T>
  void operator()(const char* name, const T& want, const T& got) {
    if (want == got) return;
    out_ += std::string("\n      ") + name + ": expected " + Str(want) + ", got " + Str(got);
  }
  // Times also in UTC.
  void Time(const char* name, TimeNs want, TimeNs got) {
    if (want == got) return;
    out_ += std::string("\n      ") + name + ": expected " + Utc(want) + ", got " + Utc(got);
  }
  const std::string& str() const { return out_; }
  bool empty() const { return out_.empty(); }

 private:
  std::string out_;
};

// Field by field through projection::ForEachField, the records' one field
// list; times also in UTC.
std::string Str(std::int64_t v) { return std::to_string(v); }
template <typename Rec>
std::map<std::string, std::string> Fields(const Rec& r) {
  std::map<std::string, std::string> out;
  projection::ForEachField(r, [&out](const char* key, const auto& value) {
    const std::string k(key);
    if constexpr (std::is_same_v<std::decay_t<decltype(value)>, TimeNs>) {
      out[k] = (k == "at" || k.ends_with("_at")) ? Utc(value) : Str(value);
    } else {
      out[k] = Str(value);
    }
  });
  return out;
}
template <typename Rec>
std::string RecordFieldsDiff(const Rec& want, const Rec& got) {
  const auto w = Fields(want), g = Fields(got);
  std::string out;
  for (const auto& [key, value] : w) {
    if (g.at(key) != value) out += "\n      " + key + ": expected " + value + ", got " + g.at(key);
  }
  if (out.empty() && !(want == got)) return "\n      (operator== differs, no listed field does)";
  return out;
}
std::string RecordDiff(const VersionRecord& want, const VersionRecord& got) {
  return RecordFieldsDiff(want, got);
}
std::string PromotionDiff(const PromotionRecord& want, const PromotionRecord& got) {
  return RecordFieldsDiff(want, got);
}

std::string GatesDiff(const std::vector<events::Gate>& want, const std::vector<events::Gate>& got) {
  if (want.size() != got.size()) {
    return "\n      gates: expected " + std::to_string(want.size()) + " gates, got " +
           std::to_string(got.size());
  }
  std::string out;
  for (std::size_t i = 0; i < want.size(); ++i) {
    FieldDiff d;
    d("name", want[i].name, got[i].name);
    d("comparison", want[i].comparison, got[i].comparison);
    d("threshold", want[i].threshold, got[i].threshold);
    d("has_observed", want[i].has_observed, got[i].has_observed);
    // The rendered form has no observed value without has_observed.
    if (want[i].has_observed && got[i].has_observed) {
      d("observed", want[i].observed, got[i].observed);
    }
    d("passed", want[i].passed, got[i].passed);
    d("detail", want[i].detail, got[i].detail);
    if (!d.empty()) out += "\n      gate #" + std::to_string(i) + ":" + d.str();
  }
  return out;
}

// The evidence of a ModelPromoted event, from its stable JSON form.
std::vector<events::Gate> GatesFromJson(const json& payload) {
  std::vector<events::Gate> out;
  if (!payload.contains("gates") || !payload["gates"].is_array()) return out;
  for (const json& g : payload["gates"]) {
    events::Gate gate;
    gate.name = g.at("name").get<std::string>();
    gate.comparison = g.at("comparison").get<std::string>();
    gate.threshold = g.at("threshold").get<double>();
    gate.passed = g.at("passed").get<bool>();
    gate.detail = g.at("detail").get<std::string>();
    gate.has_observed = !g.at("observed").is_null();
    if (gate.has_observed) gate.observed = g.at("observed").get<double>();
    out.push_back(std::move(gate));
  }
  return out;
}

std::string EventType(const EventBuffer& e) { return PayloadTypeName(e.event().payload_type()); }

// ============================================================================
// The reference: what the answers at T must be, from the fold of the prefix.
// ============================================================================

struct ExpectedProduction {
  std::string model_type;
  std::optional<VersionRecord> record;
  std::optional<PromotionRecord> promotion;
  std::vector<events::Gate> gates;
  std::string policy;
  std::string policy_sha256;
};

class Reference {
 public:
  explicit Reference(const std::vector<EventBuffer>& events) : events_(events) {}

  // Folds every event with recorded_at <= t (t never decreases).
  void AdvanceTo(TimeNs t) {
    while (next_ < events_.size() && events_[next_].event().recorded_at() <= t) {
      Status st = projection::Apply(state_, events_[next_]);
      EXPECT_TRUE(st.ok()) << st.ToString();
      ++next_;
    }
  }

  const State& state() const { return state_; }
  Seq seq() const { return state_.seq; }
  std::size_t folded() const { return next_; }

  std::string ProductionOf(const std::string& type) const {
    auto it = state_.types.find(type);
    return it == state_.types.end() ? std::string() : it->second.production;
  }

  ExpectedProduction Production(const std::string& type) const {
    ExpectedProduction out;
    out.model_type = type;
    auto it = state_.types.find(type);
    if (it == state_.types.end() || it->second.production.empty()) return out;
    const TypeState& ts = it->second;
    out.record = ts.versions.at(ts.production);
    // The last promotion or rollback (at or before T: the fold holds no
    // other) that made it production.
    for (auto h = ts.history.rbegin(); h != ts.history.rend(); ++h) {
      if (h->version == ts.production) {
        out.promotion = *h;
        break;
      }
    }
    if (out.promotion && !out.promotion->rollback) {
      auto cached = evidence_.find(out.promotion->seq);
      if (cached == evidence_.end()) {
        const json payload = events::ToJson(events_.at(out.promotion->seq - 1))["payload"];
        const std::string sha =
            payload.contains("policy_sha256") && payload["policy_sha256"].is_string()
                ? payload["policy_sha256"].get<std::string>()
                : std::string();
        cached = evidence_
                     .emplace(out.promotion->seq,
                              Evidence{GatesFromJson(payload),
                                       payload.value("policy", std::string()), sha})
                     .first;
      }
      out.gates = cached->second.gates;
      out.policy = cached->second.policy;
      out.policy_sha256 = cached->second.policy_sha256;
      // The policy it names is the one in force when it was recorded.
      const projection::PolicyRecord* in_force = state_.PolicyAt(out.promotion->seq);
      EXPECT_EQ(out.policy_sha256, in_force == nullptr ? std::string() : in_force->sha256)
          << "promotion #" << out.promotion->seq;
    }
    return out;
  }

  // Every folded record of `type` ("" = all) with `status` (nullopt = all),
  // by type, then semantic version.
  std::vector<VersionRecord> Records(const std::string& type,
                                     const std::optional<ModelStatus>& status) const {
    std::vector<VersionRecord> out;
    for (const auto& [t, ts] : state_.types) {
      if (!type.empty() && t != type) continue;
      for (const auto& [v, r] : ts.versions) {
        if (!status || r.status == *status) out.push_back(r);
      }
    }
    std::sort(out.begin(), out.end(), [](const VersionRecord& a, const VersionRecord& b) {
      if (a.model_type != b.model_type) return a.model_type < b.model_type;
      return model::CompareVersions(a.version, b.version) < 0;
    });
    return out;
  }

  std::vector<PromotionRecord> History(const std::string& type, std::optional<TimeNs> since) const {
    std::vector<PromotionRecord> out;
    auto it = state_.types.find(type);
    if (it == state_.types.end()) return out;
    for (const PromotionRecord& h : it->second.history) {
      if (!since || h.at >= *since) out.push_back(h);
    }
    return out;
  }

 private:
  const std::vector<EventBuffer>& events_;
  State state_;
  std::size_t next_ = 0;
  // Gates and policy of each promotion event, from its JSON.
  struct Evidence {
    std::vector<events::Gate> gates;
    std::string policy;
    std::string policy_sha256;
  };
  mutable std::map<Seq, Evidence> evidence_;
};

// ============================================================================
// Mismatch reporting: the first ones in full, then counts per kind.
// ============================================================================

class Report {
 public:
  explicit Report(std::uint64_t seed) : seed_(seed) {}

  void Mismatch(const std::string& kind, const std::string& where, const std::string& detail) {
    ++total_;
    ++by_kind_[kind];
    if (total_ <= kMaxShown) {
      ADD_FAILURE() << "seed " << seed_ << ": " << kind << " " << where << detail;
    }
  }
  int total() const { return total_; }
  void Summarize() const {
    if (total_ == 0) return;
    std::string kinds;
    for (const auto& [k, n] : by_kind_) kinds += "\n  " + k + ": " + std::to_string(n);
    ADD_FAILURE() << "seed " << seed_ << ": " << total_ << " mismatches (" << kMaxShown
                  << " shown above); by kind:" << kinds
                  << "\n  rerun: MODELREG_ASOF_SEEDS=" << seed_;
  }

 private:
  static constexpr int kMaxShown = 25;
  std::uint64_t seed_;
  int total_ = 0;
  std::map<std::string, int> by_kind_;
};

// ============================================================================
// The generator.
// ============================================================================

enum Op {
  kRegister,
  kRegisterSame,      // idempotent repeat: nothing written
  kRegisterConflict,  // same version, another artifact: refused
  kRegisterBadName,   // invalid version string: refused
  kPromote,
  kPromoteOverride,
  kPromoteExpectWrong,  // expect_current names another version: refused
  kArchive,
  kFail,
  kFailForce,
  kRollback,
  kRollbackFail,
  kValidate,
  kTamper,  // alters or removes a stored artifact (no event)
  kGc,
  kAck,
  kAckUnknown,  // names an unregistered version: refused
  kPolicy,      // SetPolicy: a PolicyChanged event, none for the text in force
  kAnnotate,    // tags, description, late metrics (refused for a purged version)
  kOpCount
};

const char* const kOpNames[kOpCount] = {"register",
                                        "register(repeat)",
                                        "register(conflict)",
                                        "register(bad name)",
                                        "promote",
                                        "promote(override)",
                                        "promote(expect wrong)",
                                        "archive",
                                        "fail",
                                        "fail(force)",
                                        "rollback",
                                        "rollback(fail current)",
                                        "validate",
                                        "tamper artifact",
                                        "gc",
                                        "acknowledge",
                                        "ack(unknown)",
                                        "policy change",
                                        "annotate"};

const int kOpWeights[kOpCount] = {14, 2, 2, 1, 18, 4, 2, 7, 5, 2, 5, 3, 7, 2, 3, 8, 1, 3, 6};

struct OpStats {
  int attempted = 0;
  int accepted = 0;          // succeeded (what it wrote is checked in Account)
  int refused = 0;           // nothing written
  int refused_recorded = 0;  // refused with its one event (PromotionRejected, ModelFailed, ArtifactValidated "missing")
};

// Answers taken while the history was being written, checked at the end
// against the fold of their prefix.
struct Stash {
  TimeNs at = 0;
  Result<query::AuditResult> audit;
  Result<query::ListResult> list;
  std::string show_type, show_version;
  Result<std::optional<query::ShowResult>> show;
};

struct RegInput {
  std::string content;
  MetadataInput input;
};

class AsOfRun {
 public:
  AsOfRun(std::uint64_t seed, int target_events)
      : seed_(seed), rng_(seed), report_(seed), target_(target_events) {}

  void Go() {
    Setup();
    if (::testing::Test::HasFatalFailure()) return;
    const auto start = std::chrono::steady_clock::now();
    Generate();
    if (::testing::Test::HasFatalFailure()) return;
    const auto generated = std::chrono::steady_clock::now();
    Check();
    const auto checked = std::chrono::steady_clock::now();
    report_.Summarize();
    PrintSummary(std::chrono::duration<double>(generated - start).count(),
                 std::chrono::duration<double>(checked - generated).count());
  }

 private:
  // --- setup ---
  void Setup() {
    for (const std::string& p : kPolicies) {
      auto parsed = policy::ParsePolicy(p, "policy.toml");
      ASSERT_TRUE(parsed) << parsed.error().ToString() << "\n" << p;
    }
    fs::create_directories(root_);
    WriteAll(root_ + "/policy.toml", kPolicies[0]);
    registry::RegistryOptions o;
    o.root = root_;
    o.create_if_missing = true;
    o.clock = &clock_;
    // The adoption of policy.toml, then a warning per promotion once the
    // policy changed (the file differs): expected, not shown.
    o.on_warning = [](const std::string&) {};
    auto r = Registry::Open(o);
    ASSERT_TRUE(r) << r.error().ToString();
    reg_ = std::move(*r);
  }

  std::uint64_t Uniform(std::uint64_t lo, std::uint64_t hi) {  // inclusive
    return std::uniform_int_distribution<std::uint64_t>(lo, hi)(rng_);
  }
  double Real(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng_); }
  bool Chance(double p) { return Real(0, 1) < p; }
  template <typename T>
  const T& Pick(const std::vector<T>& v) {
    return v[Uniform(0, v.size() - 1)];
  }

  // Random steps: often none (the store then records 1 ns after the
  // previous event: several events share close timestamps), sometimes
  // nanoseconds, up to hours (so that paper-trading gates pass or fail).
  void AdvanceClock() {
    const double p = Real(0, 1);
    TimeNs d = 0;
    if (p < 0.30) {
      d = 0;
    } else if (p < 0.45) {
      d = static_cast<TimeNs>(Uniform(1, 5));
    } else if (p < 0.60) {
      d = static_cast<TimeNs>(Uniform(kUs, kSec));
    } else if (p < 0.85) {
      d = static_cast<TimeNs>(Uniform(kSec, 20 * kMin));
    } else {
      d = static_cast<TimeNs>(Uniform(20 * kMin, 2 * kHour));
    }
    clock_.Advance(d);
  }

  Seq Head() const {
    auto h = Query(*reg_).Head();
    EXPECT_TRUE(h) << h.error().ToString();
    return h ? h->seq : 0;
  }

  std::string LastEventType() const {
    const Seq head = Head();
    auto e = Query(*reg_).Events(head, {}, 1);
    if (!e || e->empty()) return "(none)";
    return EventType(e->front());
  }

  Actor RandomActor(bool need_reason = false) {
    static const std::vector<std::string> names = {"alice", "bob", "carol"};
    static const std::vector<std::string> reasons = {"", "weekly promotion", "hotfix",
                                                     "drift in crsp", "paper trading done"};
    Actor a{Pick(names), Pick(reasons)};
    if (need_reason && a.reason.empty()) a.reason = "needed";
    return a;
  }

  // Versions of `type` in the current state, with their records.
  std::vector<VersionRecord> Versions(const std::string& type) const {
    std::vector<VersionRecord> out;
    reg_->Read([&](const State& s) {
      auto it = s.types.find(type);
      if (it == s.types.end()) return;
      for (const auto& [v, r] : it->second.versions) out.push_back(r);
    });
    return out;
  }

  std::string CurrentProduction(const std::string& type) const {
    std::string p;
    reg_->Read([&](const State& s) {
      auto it = s.types.find(type);
      if (it != s.types.end()) p = it->second.production;
    });
    return p;
  }

  // A version to act on: usually one for which `likely` holds (a legal
  // command), else any registered one, sometimes an unregistered name.
  std::string PickVersion(const std::string& type,
                          const std::function<bool(const VersionRecord&)>& likely) {
    if (Chance(0.04)) return "v99.0.0";
    const std::vector<VersionRecord> all = Versions(type);
    if (all.empty()) return "v98.0.0";
    std::vector<std::string> good;
    for (const auto& r : all) {
      if (likely(r)) good.push_back(r.version);
    }
    if (!good.empty() && Chance(0.8)) return Pick(good);
    return Pick(all).version;
  }

  std::string NewVersionName(const std::string& type) {
    for (;;) {
      std::string v = "v" + std::to_string(Uniform(0, 3)) + "." + std::to_string(Uniform(0, 30)) +
                      "." + std::to_string(Uniform(0, 4));
      if (Chance(0.1)) v += "-rc." + std::to_string(Uniform(1, 3));
      if (used_.insert(type + "/" + v).second) return v;
    }
  }

  std::string Artifact(const std::string& content) {
    const std::string dir = dir_.sub("src/" + std::to_string(next_src_++));
    fs::create_directories(dir);
    const std::string path = dir + "/model.pkl";
    WriteAll(path, content);
    return path;
  }

  MetadataInput RandomMetrics() {
    MetadataInput in;
    in.metrics["ic"] = Real(0.0, 0.05);
    if (Chance(0.9)) in.metrics["sharpe"] = Real(0.0, 1.5);
    if (Chance(0.8)) in.metrics["max_drawdown"] = Real(-0.4, 0.0);
    if (Chance(0.5)) in.datasets["crsp"] = "v1.2." + std::to_string(Uniform(0, 5));
    return in;
  }

  // Checks what a command wrote: `ok_events` on success, exactly one event
  // of the right type for a refusal that is recorded, nothing otherwise.
  template <typename T>
  void Account(Op op, const Result<T>& r, Seq before, Seq ok_events) {
    OpStats& st = stats_[op];
    const Seq after = Head();
    const std::string what = std::string(kOpNames[op]) + " at " + Utc(clock_.NowNs());
    if (r) {
      ++st.accepted;
      if (after != before + ok_events) {
        report_.Mismatch("head", what,
                         ": accepted, head " + std::to_string(before) + " -> " +
                             std::to_string(after) + ", expected +" + std::to_string(ok_events));
      }
      return;
    }
    const Code code = r.error().code();
    if (code == Code::kInternal || code == Code::kIOError) {
      report_.Mismatch("error", what, ": " + r.error().ToString());
    }
    if (code == Code::kRejected || code == Code::kCorruption) {
      ++st.refused_recorded;
      const std::string want = code == Code::kRejected ? "PromotionRejected" : "ModelFailed";
      const std::string got = after == before + 1 ? LastEventType() : "";
      if (after != before + 1 || got != want) {
        report_.Mismatch("head", what,
                         ": " + r.error().ToString() + "; head " + std::to_string(before) + " -> " +
                             std::to_string(after) + ", last event " + got +
                             ", expected exactly one " + want);
      }
      return;
    }
    // A missing artifact file is refused with its one ArtifactValidated
    // ("missing") event, the version's status unchanged.
    if (code == Code::kFailedPrecondition &&
        r.error().message().find("is missing") != std::string::npos) {
      ++st.refused_recorded;
      const std::string got = after == before + 1 ? LastEventType() : "";
      if (after != before + 1 || got != "ArtifactValidated") {
        report_.Mismatch("head", what,
                         ": " + r.error().ToString() + "; head " + std::to_string(before) + " -> " +
                             std::to_string(after) + ", last event " + got +
                             ", expected exactly one ArtifactValidated");
      }
      return;
    }
    ++st.refused;
    if (after != before) {
      report_.Mismatch("head", what,
                       ": refused (" + r.error().ToString() + ") but the head moved " +
                           std::to_string(before) + " -> " + std::to_string(after));
    }
  }

  Op PickOp() {
    int total = 0;
    for (int w : kOpWeights) total += w;
    int x = static_cast<int>(Uniform(0, static_cast<std::uint64_t>(total - 1)));
    for (int i = 0; i < kOpCount; ++i) {
      if (x < kOpWeights[i]) return static_cast<Op>(i);
      x -= kOpWeights[i];
    }
    return kRegister;
  }

  void Step() {
    AdvanceClock();
    const Op op = PickOp();
    const std::string type = Pick(kActiveTypes);
    ++stats_[op].attempted;
    const Seq before = Head();
    auto staged_or_archived = [](const VersionRecord& r) {
      return (r.status == ModelStatus::kStaged || r.status == ModelStatus::kArchived) && !r.purged;
    };
    switch (op) {
      case kRegister: {
        const std::string v = NewVersionName(type);
        RegInput in{"weights of " + type + " " + v + " " + std::to_string(rng_()), RandomMetrics()};
        auto r = reg_->Register(type, v, Artifact(in.content), in.input, RandomActor());
        if (r) inputs_[type + "/" + v] = in;
        Account(op, r, before, 1);
        break;
      }
      case kRegisterSame:
      case kRegisterConflict: {
        const std::vector<VersionRecord> all = Versions(type);
        if (all.empty()) {
          --stats_[op].attempted;
          return;
        }
        const std::string v = Pick(all).version;
        RegInput in = inputs_.at(type + "/" + v);
        if (op == kRegisterConflict) in.content += " (retrained)";
        auto r = reg_->Register(type, v, Artifact(in.content), in.input, RandomActor());
        if (op == kRegisterSame && (!r || !r->already_registered)) {
          report_.Mismatch(
              "register", "repeat of " + type + " " + v,
              r ? ": not reported as already registered" : ": " + r.error().ToString());
        }
        if (op == kRegisterConflict && r) {
          report_.Mismatch("register", "conflicting " + type + " " + v, ": accepted");
        }
        Account(op, r, before, 0);
        break;
      }
      case kRegisterBadName: {
        static const std::vector<std::string> bad = {"1.0.0",        "v1.0",      "v01.0.0",
                                                     "v1.0.0+build", "../v1.0.0", ""};
        RegInput in{"bad " + std::to_string(rng_()), RandomMetrics()};
        static const std::vector<std::string> bad_types = {"Alpha", "a/b", "..", "-x", "risk model"};
        const bool bad_type = Chance(0.3);
        auto r = reg_->Register(bad_type ? Pick(bad_types) : type,
                                bad_type ? NewVersionName(type) : Pick(bad), Artifact(in.content),
                                in.input, RandomActor());
        Account(op, r, before, 1);
        break;
      }
      case kPromote:
      case kPromoteOverride:
      case kPromoteExpectWrong: {
        const std::string v = PickVersion(type, staged_or_archived);
        std::optional<std::string> expect;
        if (op == kPromoteExpectWrong) {
          // A version while there is none, or none (or another) while there is one.
          const std::string current = CurrentProduction(type);
          expect = current.empty() || Chance(0.5) ? std::string("v0.0.1") : std::string();
          if (*expect == current) expect = "v0.0.2";
        } else if (Chance(0.2)) {
          expect = CurrentProduction(type);  // the right one
        }
        const bool override_gates = op == kPromoteOverride;
        bool was_archived = false;
        for (const VersionRecord& rec : Versions(type)) {
          if (rec.version == v) was_archived = rec.status == ModelStatus::kArchived;
        }
        auto r = reg_->Promote(type, v, expect, override_gates, RandomActor(override_gates));
        if (r && was_archived) ++repromotions_;
        if (op == kPromoteExpectWrong && r) {
          report_.Mismatch("promote", "with a wrong expect_current", ": accepted");
        }
        Account(op, r, before, 1);
        break;
      }
      case kArchive: {
        const std::string v = PickVersion(
            type, [](const VersionRecord& r) { return r.status == ModelStatus::kStaged; });
        auto r = reg_->Archive(type, v, RandomActor());
        Account(op, r, before, 1);
        break;
      }
      case kFail:
      case kFailForce: {
        const std::string v = PickVersion(type, [op](const VersionRecord& r) {
          return op == kFailForce
                     ? r.status == ModelStatus::kProduction
                     : r.status != ModelStatus::kFailed && r.status != ModelStatus::kProduction;
        });
        Actor a = RandomActor(/*need_reason=*/!Chance(0.05));
        auto r = reg_->Fail(type, v, op == kFailForce, a);
        Account(op, r, before, 1);
        break;
      }
      case kRollback:
      case kRollbackFail: {
        // Failing the current version needs a reason (refused without).
        auto r = reg_->Rollback(type, op == kRollbackFail,
                                RandomActor(op == kRollbackFail && !Chance(0.05)));
        Account(op, r, before, 1);
        break;
      }
      case kValidate: {
        const std::string v = PickVersion(type, [](const VersionRecord& r) { return !r.purged; });
        auto r = reg_->Validate(type, v, RandomActor());
        Account(op, r, before, 1);
        break;
      }
      case kTamper: {
        std::vector<VersionRecord> all = Versions(type);
        std::erase_if(all, [](const VersionRecord& r) { return r.purged; });
        if (all.empty()) {
          --stats_[op].attempted;
          return;
        }
        const VersionRecord& rec = Pick(all);
        const std::string path =
            reg_->artifacts().ArtifactPath(type, rec.version, rec.artifact_name);
        std::error_code ec;
        fs::remove(path, ec);
        if (Chance(0.5)) WriteAll(path, "tampered " + std::to_string(rng_()));
        Account(op, Result<int>(0), before, 0);
        break;
      }
      case kGc: {
        static const std::vector<TimeNs> retention = {0, 10 * kMin, kHour, 24 * kHour};
        const int keep = static_cast<int>(Uniform(0, 2));
        auto r = reg_->CollectGarbage(keep, Pick(retention), /*dry_run=*/false, RandomActor());
        Seq purges = 0;
        if (r) {
          for (const auto& item : *r) purges += item.version.empty() ? 0 : 1;
        }
        gc_purges_ += static_cast<int>(purges);
        Account(op, r, before, purges);
        break;
      }
      case kAck:
      case kAckUnknown: {
        static const std::vector<std::string> consumers = {"svc-a", "svc-b", "svc-c"};
        events::ConsumerAck ack;
        ack.consumer_id = Pick(consumers);
        const std::vector<VersionRecord> all = Versions(type);
        const double p = Real(0, 1);
        if (op == kAckUnknown) {
          ack.version = "v97.0.0";
        } else if (p < 0.5) {
          ack.version = CurrentProduction(type);
        } else if (p < 0.85 && !all.empty()) {
          ack.version = Pick(all).version;
        }
        ack.ok = Chance(0.8);
        if (!ack.ok && !all.empty()) ack.attempted_version = Pick(all).version;
        ack.detail = ack.ok ? "" : "load failed: " + std::to_string(Uniform(0, 99));
        auto r = reg_->Acknowledge(type, ack, RandomActor());
        Account(op, r, before, 1);
        break;
      }
      case kPolicy: {
        auto r = reg_->SetPolicy(Pick(kPolicies), "policy.toml", RandomActor(/*need_reason=*/true));
        Account(op, r, before, r && r->changed ? 1 : 0);
        break;
      }
      case kAnnotate: {
        // Any version, purged ones too (refused, nothing written); late
        // metrics that gates read (ic, sharpe) as well as others.
        const std::vector<VersionRecord> all = Versions(type);
        if (all.empty()) {
          --stats_[op].attempted;
          return;
        }
        static const std::vector<std::string> keys = {"desk", "stage", "owner"};
        static const std::vector<std::string> metrics = {"ic", "sharpe", "hit_rate"};
        registry::AnnotationInput in;
        if (Chance(0.5)) in.set_tags[Pick(keys)] = "t" + std::to_string(Uniform(0, 3));
        if (Chance(0.3)) {
          const std::string k = Pick(keys);
          if (in.set_tags.count(k) == 0) in.removed_tags.push_back(k);
        }
        if (Chance(0.3)) in.description = Chance(0.2) ? "" : "d" + std::to_string(Uniform(0, 9));
        if (Chance(0.5) || (in.set_tags.empty() && in.removed_tags.empty() && !in.description)) {
          in.metrics[Pick(metrics)] = Real(-0.5, 2.0);
          in.source = "paper-trading";
        }
        const VersionRecord& rec = Pick(all);
        auto r = reg_->Annotate(type, rec.version, in, RandomActor(/*need_reason=*/true));
        Account(op, r, before, 1);
        break;
      }
      case kOpCount:
        break;
    }
  }

  // Answers now (nullopt) versus the registry's current state, and answers
  // at a past T kept for the end.
  void CheckNowAndStash() {
    const Query q(*reg_);
    State now;
    reg_->Read([&](const State& s) { now = s; });
    const std::string where = "now (head #" + std::to_string(now.seq) + ")";
    for (const std::string& type : NamesIn(now)) {
      auto cur = q.Current(type);
      if (!cur) {
        report_.Mismatch("current(now)", where, ": " + cur.error().ToString());
        continue;
      }
      auto it = now.types.find(type);
      const std::string prod = it == now.types.end() ? "" : it->second.production;
      const std::string got = cur->record ? cur->record->version : "";
      if (got != prod) {
        report_.Mismatch("current(now)", where + " " + type,
                         ": expected " + Str(prod) + ", got " + Str(got));
      } else if (!prod.empty()) {
        const std::string d = RecordDiff(it->second.versions.at(prod), *cur->record);
        if (!d.empty()) report_.Mismatch("current(now).record", where + " " + type, d);
      }
    }
    auto list = q.List({});
    if (!list) {
      report_.Mismatch("list(now)", where, ": " + list.error().ToString());
    } else {
      std::size_t n = 0;
      for (const auto& [t, ts] : now.types) n += ts.versions.size();
      if (list->versions.size() != n) {
        report_.Mismatch("list(now)", where,
                         ": " + std::to_string(list->versions.size()) + " versions, expected " +
                             std::to_string(n));
      }
      for (const VersionRecord& r : list->versions) {
        const VersionRecord* want = now.Find(r.model_type, r.version);
        if (want == nullptr) {
          report_.Mismatch("list(now)", where, ": unknown " + r.model_type + " " + r.version);
        } else if (const std::string d = RecordDiff(*want, r); !d.empty()) {
          report_.Mismatch("list(now).record", where + " " + r.model_type + " " + r.version, d);
        }
      }
    }
    if (now.seq == 0) return;
    // A past instant: answers now must stay the answers at the end.
    Stash s;
    const TimeNs first = first_at_ == 0 ? now.at : first_at_;
    s.at = Chance(0.5) ? static_cast<TimeNs>(Uniform(static_cast<std::uint64_t>(first - kSec),
                                                     static_cast<std::uint64_t>(now.at)))
                       : now.at - static_cast<TimeNs>(Uniform(0, 1));
    s.audit = q.Audit(s.at);
    s.list = q.List({}, s.at);
    s.show_type = Pick(kActiveTypes);
    const std::vector<VersionRecord> all = Versions(s.show_type);
    s.show_version = all.empty() ? "v1.0.0" : Pick(all).version;
    s.show = q.Show(s.show_type, s.show_version, s.at);
    stash_.push_back(std::move(s));
  }

  void Generate() {
    int steps = 0;
    while (Head() < static_cast<Seq>(target_) && steps < target_ * 6) {
      Step();
      ++steps;
      if (first_at_ == 0 && Head() > 0) {
        auto h = Query(*reg_).Head();
        if (h) first_at_ = h->at;
      }
      if (steps % 60 == 0) CheckNowAndStash();
    }
    steps_ = steps;
    CheckNowAndStash();
    ASSERT_GE(Head(), static_cast<Seq>(target_)) << "the generator stalled";
  }

  // --- the comparison ---

  // Runs one query, adding its time to its kind's total.
  template <typename F>
  auto Timed(const char* kind, F&& f) {
    const auto start = std::chrono::steady_clock::now();
    auto r = f();
    query_seconds_[kind] +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ++query_calls_[kind];
    return r;
  }

  std::string Where(TimeNs t, const Reference& ref) const {
    return "at T=" + Utc(t) + " (prefix up to event #" + std::to_string(ref.seq()) + ")";
  }

  // The rule itself: nothing in a record answered at T is later than T or
  // than the last event at or before T.
  void CheckBounds(const std::string& what, const VersionRecord& r, TimeNs t,
                   const Reference& ref) {
    const Seq seq = ref.seq();
    std::string bad;
    auto time = [&](const char* name, TimeNs v) {
      if (v > t) bad += std::string("\n      ") + name + " " + Utc(v) + " > T";
    };
    auto sq = [&](const char* name, Seq v) {
      if (v > seq)
        bad += std::string("\n      ") + name + " #" + std::to_string(v) + " > #" +
               std::to_string(seq);
    };
    time("status_at", r.status_at);
    time("promoted_at", r.promoted_at);
    time("demoted_at", r.demoted_at);
    time("registered_at", r.registered_at);
    sq("status_seq", r.status_seq);
    sq("validated_seq", r.validated_seq);
    sq("registered_seq", r.registered_seq);
    if (!bad.empty()) {
      report_.Mismatch("rule", what + " " + r.model_type + " " + r.version + " " + Where(t, ref),
                       bad);
    }
  }

  void CompareProduction(const std::string& kind, const query::Production& got,
                         const ExpectedProduction& want, TimeNs t, const Reference& ref) {
    auto where = [&] { return want.model_type + " " + Where(t, ref); };
    if (got.model_type != want.model_type) {
      report_.Mismatch(
          kind, where(),
          ": model_type " + Str(got.model_type) + ", expected " + Str(want.model_type));
    }
    if (got.record.has_value() != want.record.has_value()) {
      report_.Mismatch(kind + ".record", where(),
                       ": expected " + (want.record ? want.record->version : "none") + ", got " +
                           (got.record ? got.record->version : "none"));
    } else if (want.record) {
      const std::string d = RecordDiff(*want.record, *got.record);
      if (!d.empty()) report_.Mismatch(kind + ".record", where() + " " + want.record->version, d);
    }
    if (got.record) CheckBounds(kind, *got.record, t, ref);
    if (got.promotion.has_value() != want.promotion.has_value()) {
      report_.Mismatch(kind + ".promotion", where(),
                       std::string(": expected ") + (want.promotion ? "evidence" : "none") +
                           ", got " + (got.promotion ? "evidence" : "none"));
      return;
    }
    if (!want.promotion) return;
    const query::Evidence& ev = *got.promotion;
    std::string d = PromotionDiff(*want.promotion, ev.promotion);
    d += GatesDiff(want.gates, ev.gates);
    if (want.policy != ev.policy) {
      d += "\n      policy: expected " + Str(want.policy) + ", got " + Str(ev.policy);
    }
    if (want.policy_sha256 != ev.policy_sha256) {
      d += "\n      policy_sha256: expected " + Str(want.policy_sha256) + ", got " +
           Str(ev.policy_sha256);
    }
    if (ev.promotion.at > t || ev.promotion.seq > ref.seq()) {
      d += "\n      the promotion (#" + std::to_string(ev.promotion.seq) + " at " +
           Utc(ev.promotion.at) + ") is after T";
    }
    if (!d.empty()) {
      report_.Mismatch(kind + ".promotion",
                       where() + " (promotion event #" + std::to_string(want.promotion->seq) + ")",
                       d);
    }
  }

  void CompareAudit(const Result<query::AuditResult>& got, const std::vector<std::string>& types,
                    TimeNs t, const Reference& ref, const std::string& kind) {
    if (!got) {
      report_.Mismatch(kind, Where(t, ref), ": " + got.error().ToString());
      return;
    }
    if (got->at != t || got->seq != ref.seq()) {
      report_.Mismatch(kind, Where(t, ref),
                       ": at " + Utc(got->at) + ", seq #" + std::to_string(got->seq) +
                           "; expected seq #" + std::to_string(ref.seq()));
    }
    const std::vector<std::string> want_types = types.empty() ? NamesIn(ref.state()) : types;
    if (got->models.size() != want_types.size()) {
      report_.Mismatch(kind, Where(t, ref),
                       ": " + std::to_string(got->models.size()) + " types, expected " +
                           std::to_string(want_types.size()));
      return;
    }
    for (std::size_t i = 0; i < want_types.size(); ++i) {
      CompareProduction(kind, got->models[i], ref.Production(want_types[i]), t, ref);
    }
    ComparePolicy(kind + ".policy", got->policy, t, ref);
  }

  // The gate policy in force at T: the last PolicyChanged of the prefix.
  void ComparePolicy(const std::string& kind, const std::optional<projection::PolicyRecord>& got,
                     TimeNs t, const Reference& ref) {
    const projection::PolicyRecord* want = ref.state().Policy();
    if (got.has_value() != (want != nullptr)) {
      report_.Mismatch(kind, Where(t, ref),
                       std::string(": expected ") + (want ? "#" + std::to_string(want->seq) : "none") +
                           ", got " + (got ? "#" + std::to_string(got->seq) : "none"));
      return;
    }
    if (!want) return;
    if (!(*got == *want)) {
      report_.Mismatch(kind, Where(t, ref),
                       ": expected the policy of event #" + std::to_string(want->seq) +
                           RecordFieldsDiff(*want, *got));
    }
    if (got->at > t || got->seq > ref.seq()) {
      report_.Mismatch("rule", kind + " " + Where(t, ref),
                       ": the policy (#" + std::to_string(got->seq) + ") is after T");
    }
  }

  void CompareShow(const Result<std::optional<query::ShowResult>>& got, const std::string& type,
                   const std::string& version, TimeNs t, const Reference& ref,
                   const std::string& kind) {
    auto where = [&] { return type + " " + version + " " + Where(t, ref); };
    if (!got) {
      report_.Mismatch(kind, where(), ": " + got.error().ToString());
      return;
    }
    const VersionRecord* want = ref.state().Find(type, version);
    if (got->has_value() != (want != nullptr)) {
      report_.Mismatch(kind, where(),
                       std::string(": expected ") +
                           (want ? "a record" : "none (not registered by T)") + ", got " +
                           (got->has_value() ? "a record" : "none"));
      return;
    }
    if (want == nullptr) return;
    const query::ShowResult& s = **got;
    const std::string d = RecordDiff(*want, s.record);
    if (!d.empty()) {
      report_.Mismatch(kind + ".record",
                       where() + " (record last changed by event #" +
                           std::to_string(std::max(want->status_seq, want->validated_seq)) + ")",
                       d);
    }
    CheckBounds(kind, s.record, t, ref);
    const EventBuffer& reg_event = events_.at(want->registered_seq - 1);
    if (s.registration.empty() || s.registration.bytes() != reg_event.bytes()) {
      report_.Mismatch(kind + ".registration", where(),
                       ": not the bytes of event #" + std::to_string(want->registered_seq));
    }
  }

  void CompareList(const Result<query::ListResult>& got, const query::ListFilter& filter, TimeNs t,
                   const Reference& ref, const std::string& kind) {
    auto where = [&] {
      return "(type " + Str(filter.model_type) + ", status " +
             (filter.status ? Str(*filter.status) : "any") + ") " + Where(t, ref);
    };
    if (!got) {
      report_.Mismatch(kind, where(), ": " + got.error().ToString());
      return;
    }
    if (got->at != std::optional<TimeNs>(t)) {
      report_.Mismatch(kind, where(), ": ListResult::at is not T");
    }
    const std::vector<VersionRecord> want = ref.Records(filter.model_type, filter.status);
    for (const VersionRecord& r : got->versions) CheckBounds(kind, r, t, ref);
    if (got->versions.size() != want.size()) {
      std::set<std::string> w, g;
      for (const auto& r : want) w.insert(r.model_type + " " + r.version);
      for (const auto& r : got->versions) g.insert(r.model_type + " " + r.version);
      std::string d;
      for (const auto& x : w) {
        if (g.count(x) == 0) d += "\n      missing " + x;
      }
      for (const auto& x : g) {
        if (w.count(x) == 0) d += "\n      extra " + x;
      }
      report_.Mismatch(kind, where(),
                       ": " + std::to_string(got->versions.size()) + " versions, expected " +
                           std::to_string(want.size()) + d);
      return;
    }
    for (std::size_t i = 0; i < want.size(); ++i) {
      const VersionRecord& g = got->versions[i];
      if (g.model_type != want[i].model_type || g.version != want[i].version) {
        report_.Mismatch(kind + ".order", where(),
                         ": position " + std::to_string(i) + " is " + g.model_type + " " +
                             g.version + ", expected " + want[i].model_type + " " +
                             want[i].version);
        return;
      }
      const std::string d = RecordDiff(want[i], g);
      if (!d.empty())
        report_.Mismatch(kind + ".record", where() + " " + g.model_type + " " + g.version, d);
    }
  }

  struct Instant {
    TimeNs at;
    Seq seq;
    std::map<std::string, std::string> production;  // per name listed at T
    std::vector<std::string> names;                  // NamesIn(the prefix)
  };

  // The events recorded in (from, to].
  std::pair<std::size_t, std::size_t> EventRange(TimeNs from, TimeNs to) const {
    auto by_time = [](const EventBuffer& e, TimeNs t) { return e.event().recorded_at() <= t; };
    auto lo = std::partition_point(events_.begin(), events_.end(),
                                   [&](const EventBuffer& e) { return by_time(e, from); });
    auto hi = std::partition_point(events_.begin(), events_.end(),
                                   [&](const EventBuffer& e) { return by_time(e, to); });
    return {static_cast<std::size_t>(lo - events_.begin()),
            static_cast<std::size_t>(std::max(lo, hi) - events_.begin())};
  }

  void CompareDiff(const Query& q, const Instant& from, const Instant& to) {
    auto where = [&] {
      return "from T=" + Utc(from.at) + " (#" + std::to_string(from.seq) + ") to T=" + Utc(to.at) +
             " (#" + std::to_string(to.seq) + ")";
    };
    ++diffs_checked_;
    auto got = Timed("diff", [&] { return q.Diff(from.at, to.at); });
    if (!got) {
      report_.Mismatch("diff", where(), ": " + got.error().ToString());
      return;
    }
    if (got->from != from.at || got->to != to.at) report_.Mismatch("diff", where(), ": from/to");
    const std::vector<std::string>& types = to.names;
    if (got->production.size() != types.size()) {
      report_.Mismatch("diff.production", where(),
                       ": " + std::to_string(got->production.size()) + " types, expected " +
                           std::to_string(types.size()));
    } else {
      for (std::size_t i = 0; i < types.size(); ++i) {
        const query::DiffEntry& e = got->production[i];
        // A name registered after `from` had no production then.
        const auto f = from.production.find(types[i]);
        const std::string wf = f == from.production.end() ? std::string() : f->second;
        const std::string& wt = to.production.at(types[i]);
        if (e.model_type != types[i] || e.from != wf || e.to != wt) {
          report_.Mismatch("diff.production", where(),
                           ": " + e.model_type + " " + Str(e.from) + " -> " + Str(e.to) +
                               ", expected " + types[i] + " " + Str(wf) + " -> " + Str(wt));
        }
      }
    }
    const auto [lo, hi] = EventRange(from.at, to.at);
    if (got->events.size() != hi - lo) {
      report_.Mismatch("diff.events", where(),
                       ": " + std::to_string(got->events.size()) + " events, expected " +
                           std::to_string(hi - lo) + " (#" + std::to_string(lo + 1) + "..#" +
                           std::to_string(hi) + ")");
      return;
    }
    for (std::size_t i = 0; i < hi - lo; ++i) {
      if (got->events[i].empty() || got->events[i].bytes() != events_[lo + i].bytes()) {
        report_.Mismatch(
            "diff.events", where(),
            ": event " + std::to_string(i) + " is not event #" + std::to_string(lo + i + 1));
        return;
      }
    }
  }

  void CompareHistory(const Query& q, const std::string& type, std::optional<TimeNs> since,
                      TimeNs t, const Reference& ref) {
    auto where = [&] {
      return type + " since " + (since ? Utc(*since) : "start") + " " + Where(t, ref);
    };
    auto got = Timed("history", [&] { return q.History(type, since, t); });
    if (!got) {
      report_.Mismatch("history", where(), ": " + got.error().ToString());
      return;
    }
    const std::vector<PromotionRecord> want = ref.History(type, since);
    if (got->model_type != type || got->promotions.size() != want.size()) {
      report_.Mismatch("history", where(),
                       ": " + std::to_string(got->promotions.size()) + " entries, expected " +
                           std::to_string(want.size()));
      return;
    }
    for (std::size_t i = 0; i < want.size(); ++i) {
      const std::string d = PromotionDiff(want[i], got->promotions[i]);
      if (!d.empty()) {
        report_.Mismatch("history", where() + " entry #" + std::to_string(want[i].seq), d);
      }
    }
  }

  void Check() {
    const Query q(*reg_);
    auto head = q.Head();
    ASSERT_TRUE(head) << head.error().ToString();
    auto all = q.Events(1, {}, 0);
    ASSERT_TRUE(all) << all.error().ToString();
    events_ = std::move(*all);
    ASSERT_EQ(events_.size(), head->seq) << "Events(1) must return the whole log";
    ASSERT_FALSE(events_.empty());
    for (std::size_t i = 0; i < events_.size(); ++i) {
      ASSERT_EQ(events_[i].event().sequence(), i + 1);
      if (i > 0) {
        ASSERT_GT(events_[i].event().recorded_at(), events_[i - 1].event().recorded_at())
            << "recorded_at must increase with the sequence number";
      }
      ++events_by_type_[EventType(events_[i])];
    }
    ASSERT_EQ(events_.back().event().recorded_at(), head->at);

    // The fold of the whole log is the registry's state.
    {
      Reference full(events_);
      full.AdvanceTo(std::numeric_limits<TimeNs>::max());
      State now;
      reg_->Read([&](const State& s) { now = s; });
      ASSERT_EQ(ToHex(projection::StateDigest(full.state())), ToHex(projection::StateDigest(now)))
          << "the fold of Events() differs from the registry's state";
    }

    // The instants: before the first event, at every event and 1 ns before
    // it, at random between events, after the last, and those of the
    // answers stashed during the run.
    const TimeNs first = events_.front().event().recorded_at();
    const TimeNs last = events_.back().event().recorded_at();
    std::vector<TimeNs> times = {first - kHour, first - 1, last, last + 1, last + kHour};
    for (const EventBuffer& e : events_) {
      times.push_back(e.event().recorded_at());
      times.push_back(e.event().recorded_at() - 1);
    }
    for (int i = 0; i < 100; ++i) {
      times.push_back(static_cast<TimeNs>(Uniform(static_cast<std::uint64_t>(first - kSec),
                                                  static_cast<std::uint64_t>(last + kSec))));
    }
    std::multimap<TimeNs, const Stash*> stashed;
    for (const Stash& s : stash_) {
      times.push_back(s.at);
      stashed.emplace(s.at, &s);
    }
    std::sort(times.begin(), times.end());
    times.erase(std::unique(times.begin(), times.end()), times.end());

    // A sample of names to show at each instant: every version ever
    // registered, plus one never registered.
    std::vector<std::pair<std::string, std::string>> names;
    for (const auto& [type, ts] : full_state_types()) {
      for (const auto& [v, r] : ts.versions) names.emplace_back(type, v);
    }
    names.emplace_back("risk_model", "v42.0.0");

    Reference ref(events_);
    std::vector<Instant> seen;
    seen.reserve(times.size());
    for (const TimeNs t : times) {
      ref.AdvanceTo(t);
      ++instants_checked_;
      Instant inst{t, ref.seq(), {}, NamesIn(ref.state())};
      for (const std::string& type : inst.names) inst.production[type] = ref.ProductionOf(type);

      // The versions the events either side of T are about: their records
      // change at the boundary.
      std::set<std::pair<std::string, std::string>> show;
      for (std::size_t i : {ref.folded(), ref.folded() + 1}) {
        if (i == 0 || i > events_.size()) continue;
        const json payload = events::ToJson(events_[i - 1])["payload"];
        if (payload.contains("model_type") && payload["model_type"].is_string()) {
          const std::string type = payload["model_type"].get<std::string>();
          for (const char* key : {"version", "from_version", "to_version", "replaced_version"}) {
            if (payload.contains(key) && payload[key].is_string() &&
                !payload[key].get<std::string>().empty()) {
              show.emplace(type, payload[key].get<std::string>());
            }
          }
        }
      }

      // Audit: all well-known types, and sometimes a subset in another order.
      CompareAudit(Timed("audit", [&] { return q.Audit(t); }), {}, t, ref, "audit");
      // The policy at T on its own.
      {
        auto p = Timed("policy", [&] { return q.Policy(t); });
        if (!p) {
          report_.Mismatch("policy", Where(t, ref), ": " + p.error().ToString());
        } else {
          if (p->seq != ref.seq()) {
            report_.Mismatch("policy", Where(t, ref), ": seq #" + std::to_string(p->seq));
          }
          ComparePolicy("policy", p->policy, t, ref);
        }
      }
      if (Chance(0.1)) {
        std::vector<std::string> subset = {Pick(kActiveTypes), "feature_transforms"};
        if (Chance(0.5)) std::swap(subset[0], subset[1]);
        CompareAudit(Timed("audit", [&] { return q.Audit(t, subset); }), subset, t, ref,
                     "audit(subset)");
      }
      // Current at T: the types of the events either side, one at random.
      std::set<std::string> current_types;
      if (Chance(0.3)) current_types.insert(Pick(WellKnownTypes()));
      for (const auto& [type, v] : show) current_types.insert(type);
      for (const std::string& type : current_types) {
        auto cur = Timed("current", [&] { return q.Current(type, t); });
        if (!cur) {
          report_.Mismatch("current", type + " " + Where(t, ref), ": " + cur.error().ToString());
        } else {
          CompareProduction("current", *cur, ref.Production(type), t, ref);
        }
      }
      // Show: those versions and a few at random (some not registered by
      // T, one never registered).
      show.insert(Pick(names));
      for (const auto& type_version : show) {
        // Named, not a structured binding: clang 14 cannot capture those.
        const std::string& type = type_version.first;
        const std::string& v = type_version.second;
        CompareShow(Timed("show", [&] { return q.Show(type, v, t); }), type, v, t, ref, "show");
        ++shows_checked_;
      }
      // List: sometimes everything, more often by type and/or status.
      if (Chance(0.03)) {
        CompareList(Timed("list", [&] { return q.List({}, t); }), {}, t, ref, "list");
        ++lists_checked_;
      }
      if (Chance(0.12)) {
        query::ListFilter f;
        if (Chance(0.9)) f.model_type = Pick(WellKnownTypes());
        if (Chance(0.6)) {
          static const std::vector<ModelStatus> statuses = {
              ModelStatus::kStaged, ModelStatus::kProduction, ModelStatus::kArchived,
              ModelStatus::kFailed};
          f.status = Pick(statuses);
        }
        CompareList(Timed("list", [&] { return q.List(f, t); }), f, t, ref, "list(filtered)");
        ++lists_checked_;
      }
      // History up to T.
      const std::string htype = Pick(kActiveTypes);
      CompareHistory(q, htype, std::nullopt, t, ref);
      // Diff from the previous instant; sometimes from T itself and from a
      // random earlier one (History since then too).
      seen.push_back(inst);
      if (Chance(0.5)) CompareDiff(q, seen.size() > 1 ? seen[seen.size() - 2] : inst, inst);
      if (Chance(0.05)) CompareDiff(q, inst, inst);
      if (seen.size() > 2 && Chance(0.05)) {
        const Instant& earlier = seen[Uniform(0, seen.size() - 2)];
        CompareDiff(q, earlier, inst);
        CompareHistory(q, htype, earlier.at, t, ref);
      }
      // Answers taken while the log was shorter.
      auto [lo, hi] = stashed.equal_range(t);
      for (auto it = lo; it != hi; ++it) {
        const Stash& s = *it->second;
        CompareAudit(s.audit, {}, t, ref, "audit(during the run)");
        CompareList(s.list, {}, t, ref, "list(during the run)");
        CompareShow(s.show, s.show_type, s.show_version, t, ref, "show(during the run)");
        ++stashes_checked_;
      }
    }

    // Now: consumers and production against the fold of the whole log.
    for (const std::string& type : NamesIn(ref.state())) {
      auto c = q.Consumers(type);
      if (!c) {
        report_.Mismatch("consumers", type, ": " + c.error().ToString());
        continue;
      }
      auto it = ref.state().types.find(type);
      std::vector<projection::ConsumerRecord> want;
      if (it != ref.state().types.end()) {
        for (const auto& [id, rec] : it->second.consumers) want.push_back(rec);
      }
      if (c->production != ref.ProductionOf(type) || c->consumers != want) {
        report_.Mismatch("consumers", type,
                         ": production " + Str(c->production) + " (expected " +
                             Str(ref.ProductionOf(type)) + "), " +
                             std::to_string(c->consumers.size()) + " consumers (expected " +
                             std::to_string(want.size()) + ")");
      }
    }
  }

  std::map<std::string, TypeState> full_state_types() const {
    State now;
    reg_->Read([&](const State& s) { now = s; });
    return now.types;
  }

  void PrintSummary(double generate_s, double check_s) const {
    std::ostringstream o;
    o << "[asof] seed " << seed_ << ": " << events_.size() << " events from " << steps_
      << " commands in " << generate_s << " s; " << instants_checked_ << " instants, "
      << shows_checked_ << " shows, " << lists_checked_ << " lists, " << diffs_checked_
      << " diffs, " << stashes_checked_ << " answers kept from during the run, checked in "
      << check_s << " s; " << report_.total() << " mismatches\n";
    o << "[asof]   commands (attempted / accepted / refused, nothing written / refused, "
         "recorded):\n";
    for (int i = 0; i < kOpCount; ++i) {
      const OpStats& s = stats_[i];
      o << "[asof]     " << kOpNames[i] << ": " << s.attempted << " / " << s.accepted << " / "
        << s.refused << " / " << s.refused_recorded << "\n";
    }
    o << "[asof]   events:";
    for (const auto& [type, n] : events_by_type_) o << " " << type << "=" << n;
    o << " (purges by gc: " << gc_purges_ << ", re-promotions of archived versions: "
      << repromotions_ << ")\n";
    o << "[asof]   queries at T (calls, seconds):";
    for (const auto& [kind, secs] : query_seconds_) {
      o << " " << kind << " " << query_calls_.at(kind) << " " << secs << ";";
    }
    o << "\n";
    std::cout << o.str() << std::flush;
  }

  std::uint64_t seed_;
  std::mt19937_64 rng_;
  Report report_;
  int target_;
  ::modelreg::testing::TempDir dir_;
  std::string root_ = dir_.sub("reg");
  ManualClock clock_{kT0};
  std::unique_ptr<Registry> reg_;
  int next_src_ = 0;
  std::set<std::string> used_;
  std::map<std::string, RegInput> inputs_;
  OpStats stats_[kOpCount];
  std::vector<Stash> stash_;
  TimeNs first_at_ = 0;
  int steps_ = 0;
  int gc_purges_ = 0;
  int repromotions_ = 0;
  std::vector<EventBuffer> events_;
  std::map<std::string, int> events_by_type_;
  int instants_checked_ = 0;
  int shows_checked_ = 0;
  int lists_checked_ = 0;
  int diffs_checked_ = 0;
  int stashes_checked_ = 0;
  std::map<std::string, double> query_seconds_;
  std::map<std::string, int> query_calls_;
};

std::vector<std::uint64_t> Seeds() {
  const char* env = std::getenv("MODELREG_ASOF_SEEDS");
  if (env == nullptr || *env == '\0') return {20250115, 7, 0xa50f};
  if (std::string(env) == "random") {
    std::random_device rd;
    return {(static_cast<std::uint64_t>(rd()) << 32) | rd()};
  }
  std::vector<std::uint64_t> out;
  std::stringstream ss(env);
  for (std::string item; std::getline(ss, item, ',');) {
    if (!item.empty()) out.push_back(std::stoull(item, nullptr, 0));
  }
  return out;
}

int EventsPerSeed() {
  const char* env = std::getenv("MODELREG_ASOF_EVENTS");
  return env == nullptr || *env == '\0' ? 800 : std::max(1, std::atoi(env));
}

TEST(AsOfProperty, EveryAnswerAtTIsTheFoldOfThePrefixUpToT) {
  for (const std::uint64_t seed : Seeds()) {
    std::cout << "[asof] seed " << seed << " (rerun with MODELREG_ASOF_SEEDS=" << seed << ")\n"
              << std::flush;
    SCOPED_TRACE("seed " + std::to_string(seed));
    AsOfRun run(seed, EventsPerSeed());
    run.Go();
    if (::testing::Test::HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace modelreg
