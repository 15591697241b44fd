// The read side of the registry: one typed query layer (docs/pointintime.md).
//
// Every question a user, the HTTP API or the loader asks is answered here
// and nowhere else; callers render the typed results (src/query/render.h
// for JSON, the CLI's own text). Nothing above this layer reads the log or
// the projection rows.
//
// As-of rule: an answer "at T" is a function of the events with
// recorded_at <= T alone. A version's record at T is the record as it was
// right after the last event at or before T (status, status reason,
// promoted/demoted times, validation, purge); the promotion that put a
// version in production at T carries the gate evidence and policy text of
// that promotion's own event. Nothing recorded after T appears.
//
// Thread-safety: a Query is a view over a Registry; all methods are const
// and safe from many threads (as the Registry's reads are).
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/sha256.h"
#include "common/status.h"
#include "events/model_events.h"
#include "log/event_buffer.h"
#include "projection/state.h"

namespace modelreg::registry {
class Registry;
}

namespace modelreg::query {

using projection::ConsumerRecord;
using projection::ModelStatus;
using projection::PolicyRecord;
using projection::PromotionRecord;
using projection::Seq;
using projection::VersionRecord;

// The last event of the log.
struct HeadResult {
  Seq seq = 0;        // 0 = empty log
  TimeNs at = 0;      // its recorded_at
  Digest hash{};      // its chain hash
};

// The promotion (or rollback) that made a version production, with the
// evidence its event recorded.
struct Evidence {
  PromotionRecord promotion;
  std::vector<events::Gate> gates;  // empty for rollbacks
  std::string policy;               // the policy in force, as recorded
  std::string policy_sha256;        // its hash, as recorded ("" = not recorded)
};

// The production version of one type (now, or at a time).
struct Production {
  std::string model_type;
  std::optional<VersionRecord> record;  // as it was then; nullopt = none
  std::optional<Evidence> promotion;    // how it got there (nullopt if unknown)
};

// "What was live at T, and why", for several types.
struct AuditResult {
  TimeNs at = 0;
  Seq seq = 0;  // the last event at or before `at` (0 = none)
  std::vector<Production> models;
  // The gate policy in force at `at` (nullopt: none recorded by then, the
  // built-in defaults).
  std::optional<PolicyRecord> policy;
};

// The gate policy in force now or at a time (docs/gates.md).
struct PolicyResult {
  std::optional<TimeNs> at;  // nullopt = now
  Seq seq = 0;               // the last event at or before `at` (now: the head)
  std::optional<PolicyRecord> policy;  // nullopt: none recorded, the built-in defaults
};

// One version with its registration event.
struct ShowResult {
  VersionRecord record;
  EventBuffer registration;
};

struct ListFilter {
  std::string model_type;                 // "" = every type
  std::optional<ModelStatus> status;      // nullopt = every status
  std::string sort_metric;                // "" = type, then semantic version
  // Only versions carrying every one of these tags (annotations), with
  // exactly these values; empty = no tag filter.
  std::map<std::string, std::string> tags;
  // Only versions registered in [since, until] (registered_at; each bound
  // optional, both inclusive).
  std::optional<TimeNs> since;
  std::optional<TimeNs> until;
};
struct ListResult {
  std::optional<TimeNs> at;     // nullopt = now
  std::vector<VersionRecord> versions;
};
// A sort metric must be one some listed version has (an empty list sorts
// nothing and is no error): otherwise InvalidArgument naming `what` (the
// CLI's --sort, the API's sort=) and the metrics that exist.
Status CheckSortMetric(const std::string& metric, const std::vector<VersionRecord>& versions,
                       const std::string& what);

struct HistoryResult {
  std::string model_type;
  std::vector<PromotionRecord> promotions;  // oldest first
};

struct DiffEntry {
  std::string model_type;
  std::string from;  // production at `from` ("" = none)
  std::string to;    // production at `to`
};
struct DiffResult {
  TimeNs from = 0;
  TimeNs to = 0;
  std::vector<DiffEntry> production;
  std::vector<EventBuffer> events;  // recorded in (from, to]
};

struct EventFilter {
  std::string model_type;          // "" = every event
  std::optional<TimeNs> since;     // recorded_at >= since
  std::optional<TimeNs> until;     // recorded_at <= until
};

struct ConsumersResult {
  std::string model_type;
  std::string production;  // "" = none
  TimeNs production_since = 0;  // last change of production (0 = never)
  std::vector<ConsumerRecord> consumers;  // by consumer id
};

class Query {
 public:
  explicit Query(const registry::Registry& reg) : reg_(reg) {}

  Result<HeadResult> Head() const;
  // The last event recorded at or before `at` (0 = none).
  Result<Seq> SeqAt(TimeNs at) const;
  // Production of `type` now, or at `at`.
  Result<Production> Current(const std::string& type, std::optional<TimeNs> at = {}) const;
  // nullopt: not registered (by `at`).
  Result<std::optional<ShowResult>> Show(const std::string& type, const std::string& version,
                                         std::optional<TimeNs> at = {}) const;
  Result<ListResult> List(const ListFilter& filter, std::optional<TimeNs> at = {}) const;
  // Promotions and rollbacks of `type` recorded in [since, until].
  Result<HistoryResult> History(const std::string& type, std::optional<TimeNs> since = {},
                                std::optional<TimeNs> until = {}) const;
  // `types` empty: the well-known types (model::kModelTypes, always) and
  // then, sorted, every other name registered at or before `at`.
  Result<AuditResult> Audit(TimeNs at, const std::vector<std::string>& types = {}) const;
  Result<DiffResult> Diff(TimeNs from, TimeNs to) const;
  // Events from sequence `from` on that pass `filter`, at most `limit`
  // (0 = no limit), each handed to `fn` (false stops). Returns the last
  // sequence number looked at (0 if none).
  Result<Seq> Events(Seq from, const EventFilter& filter, std::size_t limit,
                     const std::function<bool(const EventBuffer&)>& fn) const;
  // The same, collected.
  Result<std::vector<EventBuffer>> Events(Seq from, const EventFilter& filter,
                                          std::size_t limit) const;
  // The last `limit` (0 = all) of the events from sequence `from` on that
  // pass `filter`, oldest first, each handed to `fn`; `left_out` (if given)
  // is set to how many passing events came before them. Events appended
  // while it runs are not looked at. Returns the last sequence number
  // looked at (0 if none).
  Result<Seq> LastEvents(Seq from, const EventFilter& filter, std::size_t limit,
                         const std::function<void(const EventBuffer&)>& fn,
                         std::uint64_t* left_out = nullptr) const;
  Result<ConsumersResult> Consumers(const std::string& type) const;
  // The gate policy in force now, or at `at` (the last PolicyChanged
  // recorded at or before it).
  Result<PolicyResult> Policy(std::optional<TimeNs> at = {}) const;

 private:
  // "As of T" pinned to the log: the last event at or before T and its
  // recorded_at. Every lookup of one answer is made at that instant, so an
  // event appended meanwhile (by this process or, for followers, another)
  // with a recorded_at <= T cannot slip into part of the answer: the
  // answer is exactly the prefix 1..seq.
  struct Pinned {
    Seq seq = 0;    // 0 = nothing recorded at or before T
    TimeNs at = 0;  // recorded_at of event `seq`
  };
  Result<Pinned> Pin(TimeNs at) const;
  Result<Production> ProductionAt(const std::string& type, const Pinned& pin) const;
  // The well-known types, then every other name registered in events
  // 1..pin.seq (sorted).
  Result<std::vector<std::string>> NamesAt(const Pinned& pin) const;
  Result<std::optional<Evidence>> EvidenceFor(const PromotionRecord& p) const;
  const registry::Registry& reg_;
};

}  // namespace modelreg::query
