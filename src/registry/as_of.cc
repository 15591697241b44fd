// Reads as of a time: the plain fold (StateAt, the reference), and the
// indexed reads from the versioned record rows and the temporal index rows
// (projection/state.h) that answer list/show/audit --at without a replay.
#include <algorithm>
#include <iterator>
#include <mutex>

#include "registry/internal.h"
#include "registry/registry.h"

namespace modelreg::registry {

using internal::kProjectionCf;

Result<State> Registry::StateAt(TimeNs t) const {
  auto seq = store_->SeqAtOrBefore(t);
  if (!seq) return Err(seq.error());
  State s;
  Status st;
  MODELREG_RETURN_IF_ERROR(store_->Scan(1, *seq, [&](Seq, const EventBuffer& e) {
    st = projection::Apply(s, e);
    return st.ok();
  }));
  MODELREG_RETURN_IF_ERROR(st);
  return s;
}

Result<State> Registry::SnapshotAt(TimeNs t, const std::string& type) const {
  if (!rows_current_) {
    // No complete record rows (an old or stale read-only projection).
    auto full = StateAt(t);
    if (!full) return full;
    if (!type.empty()) std::erase_if(full->types, [&](const auto& kv) { return kv.first != type; });
    for (auto& [name, ts] : full->types) {
      ts.history.clear();
      ts.timeline.clear();
    }
    return full;
  }
  State out;
  auto seq = store_->SeqAtOrBefore(t);
  if (!seq) return Err(seq.error());
  if (*seq == 0) return out;
  auto last = store_->Get(*seq);
  if (!last) return Err(last.error());
  out.seq = *seq;
  out.at = last->event().recorded_at();
  // One SeekForPrev per version: its last record row at or before `seq`.
  const std::string scope = projection::RecordPrefix(type);
  std::string from = scope;
  for (;;) {
    std::string next_key;
    Status st = store_->ScanRows(
        kProjectionCf,
        [&next_key](std::string_view k, std::string_view) {
          next_key = std::string(k);
          return false;
        },
        from, type.empty() ? std::string_view("r0") : std::string_view());
    MODELREG_RETURN_IF_ERROR(st);
    if (next_key.empty() || next_key.compare(0, scope.size(), scope) != 0) break;
    std::string t_name, version;
    Seq ignored = 0;
    if (!projection::ParseRecordKey(next_key, &t_name, &version, &ignored)) {
      return Err(Status::Corruption("projection record row with a malformed key"));
    }
    const std::string prefix = projection::RecordPrefix(t_name, version);
    auto row = store_->SeekRowForPrev(kProjectionCf, projection::RecordKey(t_name, version, *seq));
    if (!row) return Err(row.error());
    if (*row && (*row)->first.compare(0, prefix.size(), prefix) == 0) {
      auto rec = projection::DecodeVersionRow((*row)->second);
      if (!rec) return Err(rec.error());
      projection::TypeState& ts = out.types[t_name];
      if (rec->status == ModelStatus::kProduction) ts.production = rec->version;
      ts.versions[version] = std::move(*rec);
    }
    from = prefix + std::string(9, '\xff');  // past every row of this version
  }
  return out;
}

Result<std::vector<std::string>> Registry::ModelTypesAt(std::optional<Seq> seq) const {
  std::vector<std::string> out;
  auto from_state = [&](const State& s) {
    for (const auto& [type, ts] : s.types) {
      // A type known only from consumer reports has no versions: not registered.
      const bool registered = std::any_of(ts.versions.begin(), ts.versions.end(), [&](const auto& v) {
        return !seq || v.second.registered_seq <= *seq;
      });
      if (registered) out.push_back(type);
    }
  };
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (loaded_ && (!seq || *seq <= state_.seq)) {
      from_state(state_);
      return out;
    }
  }
  if (!rows_current_) {
    MODELREG_RETURN_IF_ERROR(Load());  // stale rows: the fold is the truth
    Read(from_state);
    return out;
  }
  // A skip scan of the versioned record rows "r/<type>/<version>/<seq>": a
  // version's first row is its registration.
  std::string from = projection::RecordPrefix("");
  for (;;) {
    std::string key;
    MODELREG_RETURN_IF_ERROR(store_->ScanRows(
        kProjectionCf,
        [&key](std::string_view k, std::string_view) {
          key = std::string(k);
          return false;
        },
        from, "r0"));
    if (key.empty()) break;
    std::string type, version;
    Seq first = 0;
    if (!projection::ParseRecordKey(key, &type, &version, &first)) {
      return Err(Status::Corruption("projection record row with a malformed key"));
    }
    if (!seq || first <= *seq) {
      out.push_back(type);
      std::string past = projection::RecordPrefix(type);
      past.back() = '/' + 1;  // past every row of this type
      from = std::move(past);
    } else {
      from = projection::RecordPrefix(type, version) + std::string(9, '\xff');  // next version
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::optional<VersionRecord>> Registry::VersionAt(const std::string& type,
                                                        const std::string& version,
                                                        TimeNs t) const {
  if (!rows_current_) {
    auto full = StateAt(t);
    if (!full) return Err(full.error());
    const VersionRecord* r = full->Find(type, version);
    return r == nullptr ? std::nullopt : std::optional<VersionRecord>(*r);
  }
  auto seq = store_->SeqAtOrBefore(t);
  if (!seq) return Err(seq.error());
  return RecordAtSeq(type, version, *seq);
}

Result<std::optional<VersionRecord>> Registry::RecordAtSeq(const std::string& type,
                                                          const std::string& version,
                                                          Seq seq) const {
  if (seq == 0) return std::optional<VersionRecord>();
  auto row = store_->SeekRowForPrev(kProjectionCf, projection::RecordKey(type, version, seq));
  if (!row) return Err(row.error());
  const std::string prefix = projection::RecordPrefix(type, version);
  if (!*row || (*row)->first.compare(0, prefix.size(), prefix) != 0) {
    return std::optional<VersionRecord>();
  }
  const std::string& key = (*row)->first;
  {
    std::lock_guard<std::mutex> lock(record_cache_mu_);
    auto hit = record_cache_.find(key);
    if (hit != record_cache_.end()) return std::optional<VersionRecord>(hit->second);
  }
  auto rec = projection::DecodeVersionRow((*row)->second);
  if (!rec) return Err(rec.error());
  std::lock_guard<std::mutex> lock(record_cache_mu_);
  if (record_cache_.size() >= kRecordCacheSize) record_cache_.clear();
  record_cache_.emplace(key, *rec);
  return std::optional<VersionRecord>(std::move(*rec));
}

namespace {
// Every change of a record sets its status_seq, validated_seq or
// annotations.seq, except a purge (which leaves purged set): a record that
// is not purged and whose last change is at or before `seq` is the record
// as of `seq`.
bool UnchangedSince(const VersionRecord& r, Seq seq) {
  return !r.purged && std::max({r.status_seq, r.validated_seq, r.annotations.seq}) <= seq;
}
}  // namespace

Result<Registry::ProductionAt> Registry::ProductionAtTime(const std::string& type, TimeNs t,
                                                          std::optional<Seq> seq_at_t) const {
  ProductionAt out;
  bool in_memory;
  {
    std::lock_guard<std::mutex> lock(mu_);
    in_memory = loaded_;
  }
  if (!in_memory && !rows_current_) {
    MODELREG_RETURN_IF_ERROR(Load());  // stale rows: the fold is the truth
    in_memory = true;
  }
  auto seq_at = [&]() -> Result<Seq> {
    if (!seq_at_t) {
      auto s = store_->SeqAtOrBefore(t);
      if (!s) return Err(s.error());
      seq_at_t = *s;
    }
    return *seq_at_t;
  };
  // The last event at or before t first (outside the lock: a read of the
  // log), so that everything below describes exactly that prefix.
  if (!seq_at_t && (t < INT64_MAX || !in_memory)) {
    auto s = seq_at();
    if (!s) return Err(s.error());
  }
  std::optional<projection::ProductionChange> change;
  if (in_memory) {
    std::unique_lock<std::mutex> lock(mu_);
    // An event can be durable (and found by the pin) a moment before the
    // state in memory includes it: then answer from the rows.
    if (seq_at_t && *seq_at_t > state_.seq) {
      in_memory = false;
      lock.unlock();
    }
  }
  if (in_memory) {
    // Binary search of the in-memory timeline (recorded_at increases with seq).
    std::lock_guard<std::mutex> lock(mu_);
    auto it = state_.types.find(type);
    if (it == state_.types.end()) return out;
    const auto& timeline = it->second.timeline;
    auto after = std::upper_bound(
        timeline.begin(), timeline.end(), t,
        [](TimeNs value, const projection::ProductionChange& c) { return value < c.at; });
    if (after == timeline.begin() || std::prev(after)->version.empty()) return out;
    change = *std::prev(after);
    out.version = change->version;
    const auto& history = it->second.history;
    auto h = std::lower_bound(
        history.begin(), history.end(), change->seq,
        [](const projection::PromotionRecord& r, Seq seq) { return r.seq < seq; });
    if (h != history.end() && h->seq == change->seq) out.promotion = *h;
    const VersionRecord& now = it->second.versions.at(change->version);
    // The record now is the record at t when nothing was recorded after t,
    // or nothing changed it since.
    if ((seq_at_t ? *seq_at_t >= state_.seq : t >= state_.at) ||
        (seq_at_t && UnchangedSince(now, *seq_at_t))) {
      out.record = now;
      return out;
    }
  }
  if (!in_memory) {
    auto row = store_->SeekRowForPrev(kProjectionCf, projection::TimelineSeekKey(type, t));
    if (!row) return Err(row.error());
    projection::ProductionChange c;
    if (!*row) return out;
    auto parsed = projection::ParseTimelineRow(type, (*row)->first, (*row)->second, &c);
    if (!parsed) return Err(parsed.error());
    if (!*parsed || c.version.empty()) return out;
    change = c;
    out.version = c.version;
    auto history = store_->GetRow(kProjectionCf, projection::HistoryKey(type, c.seq));
    if (!history) return Err(history.error());
    if (*history) {
      auto h = projection::DecodeHistoryRow(**history);
      if (!h) return Err(h.error());
      out.promotion = std::move(*h);
    }
  }
  // The record as it was at t (never a later status, reason or time).
  auto seq = seq_at();
  if (!seq) return Err(seq.error());
  auto rec = rows_current_ ? RecordAtSeq(type, change->version, *seq)
                           : VersionAt(type, change->version, t);
  if (!rec) return Err(rec.error());
  out.record = std::move(*rec);
  return out;
}

}  // namespace modelreg::registry

namespace modelreg::registry {

void Registry::ClearRecordCache() const {
  std::lock_guard<std::mutex> lock(record_cache_mu_);
  record_cache_.clear();
}

Result<std::shared_ptr<const Registry::Evidence>> Registry::PromotionEvidence(Seq seq) const {
  {
    std::lock_guard<std::mutex> lock(record_cache_mu_);
    auto hit = evidence_cache_.find(seq);
    if (hit != evidence_cache_.end()) return hit->second;
  }
  auto ev = store_->Get(seq);
  if (!ev) return Err(ev.error());
  auto out = std::make_shared<Evidence>();
  events::PromotionEvidence(*ev, &out->gates, &out->policy, &out->policy_sha256);
  std::lock_guard<std::mutex> lock(record_cache_mu_);
  if (evidence_cache_.size() >= kRecordCacheSize) evidence_cache_.clear();
  evidence_cache_.emplace(seq, out);
  return std::shared_ptr<const Evidence>(out);
}

}  // namespace modelreg::registry
