// Rebuild: verify the whole chain, then rewrite every projection row from
// the log in memory that does not grow with the log (the lean rewrite).
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "registry/internal.h"
#include "registry/registry.h"

namespace modelreg::registry {

namespace {

using internal::kProjectionCf;

// A lean rebuild's records that are not in memory, read back from their
// newest record row ("r/<type>/<version>/<seq>", the record as of its last
// change). A read error is kept for the caller to check after each Plan.
class RecordRowSource : public projection::RecordSource {
 public:
  explicit RecordRowSource(const EventStore& store) : store_(store) {}

  const VersionRecord* Load(const std::string& type, const std::string& version) const override {
    // Most lookups of a version not in memory are of a new one (every
    // registration checks): no seek for those.
    if (known_.count(KeyHash(type, version)) == 0) return nullptr;
    auto row = store_.SeekRowForPrev(kProjectionCf, projection::RecordKey(type, version, ~Seq{0}));
    if (!row) {
      error_ = row.error();
      return nullptr;
    }
    const std::string prefix = projection::RecordPrefix(type, version);
    if (!*row || (*row)->first.size() != prefix.size() + 8 ||
        (*row)->first.compare(0, prefix.size(), prefix) != 0) {
      return nullptr;  // never registered
    }
    auto rec = projection::DecodeVersionRow((*row)->second);
    if (!rec) {
      error_ = rec.error();
      return nullptr;
    }
    loaded_.push_back(std::make_unique<VersionRecord>(std::move(*rec)));
    return loaded_.back().get();
  }
  // After each Commit: what Plan read is either in the state now or unused.
  void Clear() { loaded_.clear(); }
  // A version the fold has seen (so its record rows exist).
  void Know(const std::string& type, const std::string& version) {
    known_.insert(KeyHash(type, version));
  }
  const Status& error() const { return error_; }

 private:
  // 64-bit hashes: a collision only costs a seek that finds nothing.
  static std::uint64_t KeyHash(const std::string& type, const std::string& version) {
    return std::hash<std::string>{}(type + '/' + version);
  }

  const EventStore& store_;
  std::unordered_set<std::uint64_t> known_;
  mutable std::vector<std::unique_ptr<VersionRecord>> loaded_;
  mutable Status error_;
};

}  // namespace

namespace internal {

Status RewriteProjectionLean(EventStore& store, Seq head, std::size_t resident,
                             const std::function<void(Seq)>& progress) {
  // As RewriteProjection, but the fold keeps about `resident` (at most
  // twice that) version records in memory, plus each type's production
  // version: the least recently changed are written out as their "v/" rows
  // and dropped, and Plan reads a dropped one back from its newest record
  // row if a later event names it. History and timeline rows are written as
  // they come instead of being kept. Memory stays flat however long the log.
  const std::size_t limit = resident;
  MODELREG_RETURN_IF_ERROR(DropProjectionRows(store, head));
  RowBatches out(store, head);
  RecordRowSource source(store);
  State fresh;
  fresh.records = &source;
  // Changed records, oldest change first; an entry is stale once the
  // record changed again (last_change says when).
  std::deque<std::pair<std::string, Seq>> changes;  // type + '/' + version
  std::unordered_map<std::string, Seq> last_change;
  auto evict = [&]() {
    // Only right after a flush: every record row is in the store, so a
    // dropped record can be read back. Pinned records go to the back; the
    // budget ends a pass that finds only those.
    for (std::size_t budget = changes.size(); budget > 0 && last_change.size() > limit; --budget) {
      auto [key, seq] = std::move(changes.front());
      changes.pop_front();
      auto it = last_change.find(key);
      if (it == last_change.end() || it->second != seq) continue;
      const std::size_t slash = key.find('/');
      const std::string type = key.substr(0, slash), version = key.substr(slash + 1);
      projection::TypeState& ts = fresh.types[type];
      if (ts.production == version) {  // pinned: every promotion reads it
        changes.emplace_back(std::move(key), seq);
        continue;
      }
      auto rec = ts.versions.find(version);
      if (rec != ts.versions.end()) {
        out.Add(projection::VersionKey(type, version), projection::EncodeVersionRow(rec->second));
        ts.versions.erase(rec);
      }
      last_change.erase(it);
    }
  };
  Status st;
  Status fold = store.Scan(1, head, [&](Seq seq, const EventBuffer& e) {
    auto delta = projection::Plan(fresh, e);
    if (!source.error().ok()) {
      st = source.error();
      return false;
    }
    if (!delta) {
      st = delta.error();
      return false;
    }
    // Everything but the rows written once at the end ("s" and the "v/"
    // rows, which every event rewrites).
    for (Row& row : ToRows(projection::EncodeDeltaWithoutState(*delta))) out.Add(std::move(row));
    projection::Commit(fresh, *delta);
    source.Clear();
    for (const VersionRecord& r : delta->versions) {
      source.Know(r.model_type, r.version);
      std::string key = r.model_type + "/" + r.version;
      last_change[key] = seq;
      changes.emplace_back(std::move(key), seq);
    }
    for (const auto& [type, version] : delta->production) fresh.types[type].timeline.clear();
    for (const auto& h : delta->history) fresh.types[h.model_type].history.clear();
    fresh.policies.clear();  // its "g/" row is written (the fold never reads it)
    if (out.full() || last_change.size() > 2 * limit) {
      st = out.Flush();
      if (!st.ok()) return false;
      evict();
    }
    if (progress && seq % 65536 == 0) progress(seq);
    return true;
  });
  MODELREG_RETURN_IF_ERROR(fold);
  MODELREG_RETURN_IF_ERROR(st);
  fresh.records = nullptr;
  // What is still in memory: "s", the resident records' "v/" rows, "p/"
  // and "c/" (history, timeline and policies are empty: already written).
  MODELREG_RETURN_IF_ERROR(FinishRewrite(store, fresh, out, head));
  if (progress) progress(head);
  return Status::OK();
}

}  // namespace internal

Result<Registry::RebuildResult> Registry::Rebuild(
    const std::function<void(Seq done, Seq total)>& progress) {
  if (read_only_) return Err(Status::FailedPrecondition("registry is open read-only"));
  RebuildResult out;
  auto format = internal::RowFormat(*store_);
  if (!format) return Err(format.error());
  // The digest of the rows as they are is read on a second thread while
  // this one verifies the chain (both only read).
  auto before_digest = std::async(std::launch::async,
                                  [this] { return internal::StoredRowsDigest(*store_); });
  const Seq head = store_->head().seq;
  // Two passes: the whole chain is verified before any row changes, then
  // the fold rewrites the rows (progress counts both: 2 * head steps).
  auto report = store_->Verify([&](Seq done) {
    if (progress) progress(done, 2 * head);
  });
  auto before = before_digest.get();
  if (!before) return Err(before.error());
  out.before = *before;
  if (!report) return Err(report.error());
  if (report && !report->ok && report->tree_damaged) {
    // The Merkle tree is derived from the events like the projection: it
    // is rewritten, then the whole chain is verified again.
    Warn("the Merkle tree did not match the events (" + report->problem +
         "); rebuilding it from the log");
    MODELREG_RETURN_IF_ERROR(store_->RebuildTree());
    report = store_->Verify();
    if (!report) return Err(report.error());
  }
  if (!report->ok) {
    return Err(Status::Corruption("hash chain broken at event " +
                                  std::to_string(report->first_bad_seq) + ": " + report->problem +
                                  "; nothing was rebuilt"));
  }
  if (progress) progress(head, 2 * head);
  if (!format->empty() && *format != projection::kRowFormat) {
    // The "before" digest is over rows this build does not read (their
    // canonical values are unknown to it): it cannot match "after".
    Warn("converting the projection rows from format " + *format + " to format " +
         projection::kRowFormat + " (docs/pointintime.md, \"Rows\")");
  }
  rows_current_ = false;  // while they are rewritten, reads fold the log
  ClearRecordCache();
  MODELREG_RETURN_IF_ERROR(
      internal::RewriteProjectionLean(*store_, head, rebuild_resident_, [&](Seq done) {
        if (progress) progress(head + done, 2 * head);
      }));
  auto after = internal::StoredRowsDigest(*store_);
  if (!after) return Err(after.error());
  out.after = *after;
  out.events = report->events;
  {
    // The rebuild kept only part of the state in memory: a later read or
    // write loads it from the rows, which are current now.
    std::lock_guard<std::mutex> lock(mu_);
    state_ = State();
    ResetSequencing();
    loaded_ = false;
  }
  ClearRecordCache();
  rows_current_ = true;
  // manifest.json is derived from the log, which a rebuild does not change:
  // rewritten only if it does not match the log (which needs the state).
  if (!ManifestMatches(head)) {
    MODELREG_RETURN_IF_ERROR(Load());
    if (Status st = WriteManifest(/*force=*/true); !st.ok()) ManifestFailed(st);
  }
  return out;
}

}  // namespace modelreg::registry
