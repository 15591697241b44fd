// Private to src/registry: what the registry's .cc files share. Nothing
// outside src/registry includes this header.
//
//   registry.cc          open, close, loading the state, reads of it
//   sequencing.cc        Write/Commit: validate, append, apply in log order
//   register.cc          Register
//   commands.cc          promote, archive, fail, rollback, validate, acknowledge
//   gate_policy.cc       the gate policy in the log: set, adopt, in force, as of
//   artifact_check.cc    the pre-activation check: re-hash + validator
//   projection_store.cc  the projection rows: read, rewrite, digest
//   rebuild.cc           Rebuild and its lean rewrite
//   as_of.cc             reads as of a time, from the versioned and temporal rows
//   manifest_sync.cc     keeping manifest.json in step (artifacts/manifest.h)
//   gc.cc                CollectGarbage
//   verify.cc            Verify
//   log_copy.cc          export, backup, copy and import of the log
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "artifacts/artifact_store.h"
#include "common/sha256.h"
#include "common/status.h"
#include "common/utf8.h"
#include "events/model_events.h"
#include "log/envelope.h"
#include "log/event_store.h"
#include "policy/policy.h"
#include "projection/state.h"
#include "registry/registry.h"

namespace modelreg::registry::internal {

// The column family of the projection rows (projection/state.h has the
// row layout).
inline constexpr char kProjectionCf[] = "projection";

// The sequencing key of PolicyChanged events (Registry::Write): not a
// model type ('/' cannot be in one). Promotions use it as their guard.
inline constexpr char kPolicyKey[] = "/policy";

// Who the adoption of a policy.toml from before the policy was part of
// the log is recorded as, and why.
inline constexpr char kAdoptionActor[] = "modelreg (adopted policy.toml)";
inline constexpr char kAdoptionReason[] = "adopted from policy.toml on disk";

// "<type> <version>", as messages name a version.
inline std::string Name(const std::string& type, const std::string& version) {
  return type + " " + version;
}

// Actor names and reasons go into events and JSON: UTF-8 only.
inline Status CheckActor(const Actor& actor) {
  if (!IsValidUtf8(actor.name)) return Status::InvalidArgument("the actor name is not valid UTF-8");
  if (!IsValidUtf8(actor.reason)) return Status::InvalidArgument("the reason is not valid UTF-8");
  return Status::OK();
}

inline Envelope EnvelopeFor(const Actor& actor, const std::string& event_id) {
  return Envelope{actor.name, event_id, 0};
}

// --- The projection rows (projection_store.cc) ---

// Projection rows as the store writes them (an empty "p/" value deletes
// its row).
std::vector<Row> ToRows(const projection::Rows& rows);

// Whether the projection rows (state and record index) match the log head
// and are of this build's format, from the "s" row and the marker alone.
Result<bool> RowsCurrent(const EventStore& store);
// The marker row's value: the row format the rows were written in ("" for
// none: never written, or a rewrite interrupted).
Result<std::string> RowFormat(const EventStore& store);

// Reads the state rows into a State (or folds the log when they are
// missing, stale or damaged); writes nothing. Without `fold_if_stale`,
// stale rows give an empty state. `*rows_current` says which it was.
Result<State> ReadState(const EventStore& store, bool* rows_current, bool fold_if_stale);

// Rewrites every projection row from the first `head` events and returns
// the folded state, in memory bounded by the state (not the log): every
// old row and the marker row go first, the record rows are written in
// chunks while folding, then the state rows in chunks, then the marker,
// synced. Killed midway, the rows lack the marker, so nobody trusts them
// (reads fold the log) and the next writable open rewrites them.
// `digest`, if given, receives the state digest of the rows as stored.
Result<State> RewriteProjection(EventStore& store, Seq head,
                                const std::function<void(Seq)>& progress,
                                Digest* digest = nullptr);

// The state digest of the stored projection rows (a scan in key order).
Result<Digest> StoredRowsDigest(const EventStore& store);

// Rows of a projection rewrite, written in batches of ~16 MB, each as one
// sorted table file ingested into the store (EventStore::IngestRows: no
// memtable, no WAL). Nobody trusts them until the synced marker written
// after the last one.
class RowBatches {
 public:
  RowBatches(EventStore& store, Seq head) : store_(store), head_(head) {}
  // A rewrite that did not reach FinishRewrite ends the store's bulk mode
  // (EventStore::ClearRows) without its final merge.
  ~RowBatches() {
    if (!finished_) (void)store_.FinishBulkRows(kProjectionCf, /*compact=*/false);
  }
  RowBatches(const RowBatches&) = delete;
  RowBatches& operator=(const RowBatches&) = delete;
  // FinishRewrite: the marker is written; merge the runs.
  Status Finish() {
    finished_ = true;
    return store_.FinishBulkRows(kProjectionCf, /*compact=*/true);
  }

  void Add(Row row) {
    bytes_ += row.key.size() + (row.value ? row.value->size() : 0);
    rows_.push_back(std::move(row));
  }
  void Add(std::string&& key, std::string&& value) {
    Add(Row{kProjectionCf, std::move(key), std::move(value)});
  }
  bool full() const { return bytes_ >= kBatchBytes; }
  Status Flush();

 private:
  static constexpr std::size_t kBatchBytes = 16 << 20;
  EventStore& store_;
  const Seq head_;
  std::vector<Row> rows_;
  std::size_t bytes_ = 0;
  bool finished_ = false;
};

// The start of a projection rewrite: every row goes, the marker row
// included (a synced range tombstone, then the table files that hold only
// deleted rows are dropped: EventStore::ClearRows).
Status DropProjectionRows(EventStore& store, Seq head);

// The end of a projection rewrite: the state rows still in memory, then
// the marker row, synced. Until the marker lands nobody trusts the rows.
Status FinishRewrite(EventStore& store, const State& state, RowBatches& out, Seq head);

// --- The lean rewrite (rebuild.cc) ---

// RewriteProjection for a rebuild, in memory independent of the log's
// length: it keeps about `resident` version records (see rebuild.cc). The
// state is not returned: the registry reads it from the rows when needed.
Status RewriteProjectionLean(EventStore& store, Seq head, std::size_t resident,
                             const std::function<void(Seq)>& progress);

// --- The pre-activation check (artifact_check.cc) ---

struct ArtifactCheck {
  bool ok = false;
  std::string detail;  // why not, with the validator's output tail
  Digest observed_sha256{};
  std::uint64_t observed_size = 0;
  // events::kValidationOk, kValidationMismatch, kValidationValidatorFailed
  // or kValidationMissing.
  std::string result;
  // No file at all: an operational problem (an import, a partial restore),
  // not a verdict on the model. Its status is left alone.
  bool missing() const { return result == events::kValidationMissing; }
};

// Re-hashes `rec`'s artifact and runs the policy's validator on it. Errors
// only if the file cannot be read for a reason other than its absence, or
// the validator cannot start or times out (then nothing is to be recorded).
// A missing file is not an error: result "missing", no validator run.
// A directory artifact is re-walked and its tree digest compared: only the
// whole directory gone is "missing"; a file changed, added or removed
// inside it (or a symlink or special file in it) is "mismatch".
Result<ArtifactCheck> CheckArtifact(const artifacts::ArtifactStore& artifacts,
                                    const VersionRecord& rec, const policy::TypePolicy& tp);

}  // namespace modelreg::registry::internal
