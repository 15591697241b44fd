#include "query/query.h"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <set>

#include "common/utf8.h"
#include "model/naming.h"
#include "registry/registry.h"

namespace modelreg::query {

using registry::Registry;

Status CheckSortMetric(const std::string& metric, const std::vector<VersionRecord>& versions,
                       const std::string& what) {
  if (metric.empty() || versions.empty()) return Status::OK();
  std::set<std::string> names;
  for (const VersionRecord& r : versions) {
    for (const auto& [name, value] : r.metrics) names.insert(name);
  }
  if (names.count(metric) != 0) return Status::OK();
  std::string known;
  for (const std::string& n : names) known += (known.empty() ? "" : ", ") + n;
  return Status::InvalidArgument(what + ": no listed version has a metric '" + Printable(metric) +
                                 "'; metrics: " + (known.empty() ? "none" : known));
}

namespace {

// The model type an event is about ("" for events without one).
std::string ModelTypeOf(const EventBuffer& e) {
  const nlohmann::json j = events::ToJson(e);
  const auto p = j.find("payload");
  if (p == j.end() || !p->is_object()) return "";
  const auto t = p->find("model_type");
  return t != p->end() && t->is_string() ? t->get<std::string>() : "";
}

}  // namespace

Result<HeadResult> Query::Head() const {
  const modelreg::Head h = reg_.store_->head();
  return HeadResult{h.seq, h.recorded_at, h.hash};
}

Result<Seq> Query::SeqAt(TimeNs at) const { return reg_.store_->SeqAtOrBefore(at); }

Result<Query::Pinned> Query::Pin(TimeNs at) const {
  auto last = reg_.store_->LastAtOrBefore(at);
  if (!last) return Err(last.error());
  if (last->first == 0) return Pinned{};
  return Pinned{last->first, last->second};
}

Result<std::optional<Evidence>> Query::EvidenceFor(const PromotionRecord& p) const {
  Evidence e;
  e.promotion = p;
  if (!p.rollback) {
    auto ev = reg_.PromotionEvidence(p.seq);
    if (!ev) return Err(ev.error());
    e.gates = (*ev)->gates;
    e.policy = (*ev)->policy;
    e.policy_sha256 = (*ev)->policy_sha256;
  }
  return std::optional<Evidence>(std::move(e));
}

Result<std::vector<std::string>> Query::NamesAt(const Pinned& pin) const {
  std::vector<std::string> names;
  for (std::string_view t : model::kModelTypes) names.emplace_back(t);
  if (pin.seq == 0) return names;
  auto registered = reg_.ModelTypesAt(pin.seq);
  if (!registered) return Err(registered.error());
  for (std::string& t : *registered) {
    if (!model::IsWellKnownType(t)) names.push_back(std::move(t));
  }
  return names;
}

Result<Production> Query::Current(const std::string& type, std::optional<TimeNs> at) const {
  if (!at) return ProductionAt(type, Pinned{UINT64_MAX, INT64_MAX});
  auto pin = Pin(*at);
  if (!pin) return Err(pin.error());
  return ProductionAt(type, *pin);
}

Result<Production> Query::ProductionAt(const std::string& type, const Pinned& pin) const {
  Production out;
  out.model_type = type;
  if (pin.seq == 0) return out;
  auto p = reg_.ProductionAtTime(
      type, pin.at, pin.at == INT64_MAX ? std::nullopt : std::optional<Seq>(pin.seq));
  if (!p) return Err(p.error());
  if (p->version.empty() || !p->record) return out;
  out.record = std::move(p->record);
  if (p->promotion) {
    auto e = EvidenceFor(*p->promotion);
    if (!e) return Err(e.error());
    out.promotion = std::move(*e);
  }
  return out;
}

Result<std::optional<ShowResult>> Query::Show(const std::string& type, const std::string& version,
                                              std::optional<TimeNs> at) const {
  std::optional<VersionRecord> found;
  if (at) {
    auto pin = Pin(*at);
    if (!pin) return Err(pin.error());
    if (pin->seq == 0) return std::optional<ShowResult>();
    auto v = reg_.VersionAt(type, version, pin->at);
    if (!v) return Err(v.error());
    found = std::move(*v);
  } else {
    MODELREG_RETURN_IF_ERROR(reg_.Load());
    reg_.Read([&](const projection::State& s) {
      if (const VersionRecord* r = s.Find(type, version)) found = *r;
    });
  }
  if (!found) return std::optional<ShowResult>();
  auto event = reg_.store_->Get(found->registered_seq);
  if (!event) return Err(event.error());
  return std::optional<ShowResult>(ShowResult{std::move(*found), std::move(*event)});
}

namespace {
bool HasTags(const VersionRecord& r, const std::map<std::string, std::string>& tags) {
  for (const auto& [k, v] : tags) {
    auto it = r.annotations.tags.find(k);
    if (it == r.annotations.tags.end() || it->second != v) return false;
  }
  return true;
}
}  // namespace

Result<ListResult> Query::List(const ListFilter& filter, std::optional<TimeNs> at) const {
  ListResult out;
  out.at = at;
  auto collect = [&](const projection::State& s) {
    for (const auto& [type, ts] : s.types) {
      if (!filter.model_type.empty() && type != filter.model_type) continue;
      for (const VersionRecord* r : registry::SortedVersions(ts)) {
        if (filter.status && r->status != *filter.status) continue;
        if (!HasTags(*r, filter.tags)) continue;
        if (filter.since && r->registered_at < *filter.since) continue;
        if (filter.until && r->registered_at > *filter.until) continue;
        out.versions.push_back(*r);
      }
    }
  };
  if (at) {
    auto pin = Pin(*at);
    if (!pin) return Err(pin.error());
    if (pin->seq == 0) return out;
    auto snap = reg_.SnapshotAt(pin->at, filter.model_type);
    if (!snap) return Err(snap.error());
    collect(*snap);
  } else {
    MODELREG_RETURN_IF_ERROR(reg_.Load());
    reg_.Read(collect);
  }
  if (!filter.sort_metric.empty()) {
    // Descending by the metric; versions without it last, in list order.
    const std::string& m = filter.sort_metric;
    std::stable_sort(out.versions.begin(), out.versions.end(),
                     [&m](const VersionRecord& a, const VersionRecord& b) {
                       auto ia = a.metrics.find(m), ib = b.metrics.find(m);
                       if (ia == a.metrics.end()) return false;
                       if (ib == b.metrics.end()) return true;
                       return ia->second > ib->second;
                     });
  }
  return out;
}

Result<HistoryResult> Query::History(const std::string& type, std::optional<TimeNs> since,
                                     std::optional<TimeNs> until) const {
  HistoryResult out;
  out.model_type = type;
  MODELREG_RETURN_IF_ERROR(reg_.Load());
  reg_.Read([&](const projection::State& s) {
    auto it = s.types.find(type);
    if (it == s.types.end()) return;
    for (const auto& h : it->second.history) {
      if (since && h.at < *since) continue;
      if (until && h.at > *until) continue;
      out.promotions.push_back(h);
    }
  });
  return out;
}

Result<AuditResult> Query::Audit(TimeNs at, const std::vector<std::string>& types) const {
  AuditResult out;
  out.at = at;
  auto pin = Pin(at);
  if (!pin) return Err(pin.error());
  out.seq = pin->seq;
  std::vector<std::string> names = types;
  if (names.empty()) {
    auto all = NamesAt(*pin);
    if (!all) return Err(all.error());
    names = std::move(*all);
  }
  for (const std::string& t : names) {
    auto p = ProductionAt(t, *pin);
    if (!p) return Err(p.error());
    out.models.push_back(std::move(*p));
  }
  auto policy = reg_.PolicyAt(pin->seq);
  if (!policy) return Err(policy.error());
  out.policy = std::move(*policy);
  return out;
}

Result<PolicyResult> Query::Policy(std::optional<TimeNs> at) const {
  PolicyResult out;
  out.at = at;
  if (at) {
    auto pin = Pin(*at);
    if (!pin) return Err(pin.error());
    out.seq = pin->seq;
  } else {
    out.seq = reg_.store_->head().seq;
  }
  auto policy = reg_.PolicyAt(out.seq);
  if (!policy) return Err(policy.error());
  out.policy = std::move(*policy);
  return out;
}

Result<DiffResult> Query::Diff(TimeNs from, TimeNs to) const {
  if (from > to) {
    return Err(Status::InvalidArgument("--from " + FormatUtc(from) + " is after --to " +
                                       FormatUtc(to)));
  }
  DiffResult out;
  out.from = from;
  out.to = to;
  auto pin_from = Pin(from);
  if (!pin_from) return Err(pin_from.error());
  auto pin_to = Pin(to);
  if (!pin_to) return Err(pin_to.error());
  auto names = NamesAt(*pin_to);
  if (!names) return Err(names.error());
  for (const std::string& type : *names) {
    auto a = ProductionAt(type, *pin_from);
    if (!a) return Err(a.error());
    auto b = ProductionAt(type, *pin_to);
    if (!b) return Err(b.error());
    out.production.push_back(DiffEntry{type, a->record ? a->record->version : "",
                                       b->record ? b->record->version : ""});
  }
  // Exactly the events pin_from.seq + 1 .. pin_to.seq.
  if (pin_to->seq > pin_from->seq) {
    MODELREG_RETURN_IF_ERROR(reg_.store_->Scan(pin_from->seq + 1, pin_to->seq,
                                               [&](Seq, const EventBuffer& e) {
                                                 out.events.push_back(e);
                                                 return true;
                                               }));
  }
  return out;
}

Result<Seq> Query::Events(Seq from, const EventFilter& filter, std::size_t limit,
                          const std::function<bool(const EventBuffer&)>& fn) const {
  if (from == 0) from = 1;
  if (filter.since) {
    auto s = reg_.store_->SeqAtOrBefore(*filter.since - 1);
    if (!s) return Err(s.error());
    from = std::max(from, *s + 1);
  }
  Seq last = 0;
  std::size_t n = 0;
  MODELREG_RETURN_IF_ERROR(reg_.store_->Scan(from, UINT64_MAX, [&](Seq seq, const EventBuffer& e) {
    if (filter.until && e.event().recorded_at() > *filter.until) return false;
    last = seq;
    if (!filter.model_type.empty() && ModelTypeOf(e) != filter.model_type) return true;
    if (!fn(e)) return false;
    return limit == 0 || ++n < limit;
  }));
  return last;
}

Result<Seq> Query::LastEvents(Seq from, const EventFilter& filter, std::size_t limit,
                              const std::function<void(const EventBuffer&)>& fn,
                              std::uint64_t* left_out) const {
  if (left_out != nullptr) *left_out = 0;
  // The period as a range of sequence numbers [lo, hi] (recorded_at never
  // decreases along the log), fixed now: later appends are not looked at.
  Seq lo = std::max<Seq>(from, 1);
  if (filter.since) {
    auto s = reg_.store_->SeqAtOrBefore(*filter.since - 1);
    if (!s) return Err(s.error());
    lo = std::max(lo, *s + 1);
  }
  Seq hi = reg_.store_->head().seq;
  if (filter.until) {
    auto u = reg_.store_->SeqAtOrBefore(*filter.until);
    if (!u) return Err(u.error());
    hi = std::min(hi, *u);
  }
  if (hi < lo) return Seq{0};
  if (filter.model_type.empty()) {
    // Every event in the range passes: the last `limit` are the tail.
    const std::uint64_t count = hi - lo + 1;
    if (limit != 0 && count > limit) {
      if (left_out != nullptr) *left_out = count - limit;
      lo = hi - limit + 1;
    }
    MODELREG_RETURN_IF_ERROR(reg_.store_->Scan(lo, hi, [&](Seq, const EventBuffer& e) {
      fn(e);
      return true;
    }));
    return hi;
  }
  // Only some pass: keep the last `limit` of them while walking the range
  // (without a limit, each is handed on as it is found).
  std::deque<EventBuffer> kept;
  std::uint64_t dropped = 0;
  MODELREG_RETURN_IF_ERROR(reg_.store_->Scan(lo, hi, [&](Seq, const EventBuffer& e) {
    if (ModelTypeOf(e) != filter.model_type) return true;
    if (limit == 0) {
      fn(e);
      return true;
    }
    kept.push_back(e);
    if (kept.size() > limit) {
      kept.pop_front();
      ++dropped;
    }
    return true;
  }));
  if (left_out != nullptr) *left_out = dropped;
  for (const EventBuffer& e : kept) fn(e);
  return hi;
}

Result<std::vector<EventBuffer>> Query::Events(Seq from, const EventFilter& filter,
                                               std::size_t limit) const {
  std::vector<EventBuffer> out;
  auto r = Events(from, filter, limit, [&out](const EventBuffer& e) {
    out.push_back(e);
    return true;
  });
  if (!r) return Err(r.error());
  return out;
}

Result<ConsumersResult> Query::Consumers(const std::string& type) const {
  ConsumersResult out;
  out.model_type = type;
  MODELREG_RETURN_IF_ERROR(reg_.Load());
  reg_.Read([&](const projection::State& s) {
    auto it = s.types.find(type);
    if (it == s.types.end()) return;
    out.production = it->second.production;
    if (!it->second.timeline.empty()) out.production_since = it->second.timeline.back().at;
    for (const auto& [id, c] : it->second.consumers) out.consumers.push_back(c);
  });
  return out;
}

}  // namespace modelreg::query
