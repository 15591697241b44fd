// EventStore: the append-only, hash-chained event log on RocksDB.
//
// Layout (column families):
//   events       be64(seq) -> event bytes || SHA-256 hash of the event (32 B)
//   by_time      be64(ordered recorded_at) || be64(seq) -> ""
//   by_event_id  event_id -> be64(seq) || SHA-256 of the draft bytes
//   meta         "head" -> be64(seq) || hash(32) || be64(ordered recorded_at)
//                "format" -> "1"
//                "tree_size" -> be64(events the Merkle tree covers)
//   merkle       level(1 byte) || be64(index) -> SHA-256 (32 B): every
//                complete subtree of the Merkle tree over the events
//                (merkle/tree.h; leaf i = the stored bytes of event i + 1,
//                without the chain hash), written in the append's batch
//   + the caller's extra families (projections), written in the same batch.
//
// Chain: hash(n) = SHA-256(prev_hash(n) || bytes(n)) with prev_hash(n) =
// hash(n-1), all zeros for event 1; prev_hash(n) is also a field of event n.
//
// Appends go through one writer thread that drains every pending append,
// checks each against the head it reaches (optimistic concurrency and
// idempotency), writes them all in one synced WriteBatch and then
// acknowledges them: the fsync is shared (group commit). A failed write
// fails every append of its group (nothing of it is stored); RocksDB then
// refuses writes until resumed, which the next write does first (DB::Resume,
// which also drops whatever the failed write left in the WAL): once the
// cause is gone (space freed on a full disk), appends work again without
// reopening. A full disk is an IOError marked disk_full() (common/status.h).
//
// Readers in other processes (docs/log.md, "Readers beside a writer"): a
// writing store never deletes a database file itself; it holds RocksDB's
// deletions back and unlinks them while it holds the readers' lock
// (registry/modelreg-readers.lock) exclusively. A read-only store holds
// that lock shared for its whole life, a secondary while it opens and
// catches up. Appends never wait for readers.
//
// Thread-safety: all public methods are safe to call from many threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/sha256.h"
#include "common/status.h"
#include "log/event_buffer.h"

namespace modelreg {

using Seq = std::uint64_t;

struct StoreOptions {
  bool create_if_missing = true;
  // Open a fixed read-only view (no writer). Holds the readers' lock
  // shared until closed: keep it short-lived beside a writing process
  // (the writer's deletions wait for it; see docs/log.md).
  bool read_only = false;
  // Follow a writer in another process (RocksDB secondary instance): reads
  // only; CatchUp() brings in what the writer appended since.
  bool secondary = false;
  bool sync = true;        // fsync the WAL before acknowledging an append
  // Read table files through mmap (fast scans). A process that reads the
  // whole log once (a rebuild) turns it off: mapped pages count as its
  // resident memory.
  bool mmap_reads = true;
  const Clock* clock = &SystemClock::Instance();
  // Column families the caller writes through AppendRequest::rows.
  std::vector<std::string> extra_column_families;
};

struct Head {
  Seq seq = 0;           // 0 = empty log
  Digest hash{};         // hash of event `seq`, zeros for an empty log
  TimeNs recorded_at = 0;
};

// What a rows callback sees: the event as it will be stored.
struct AppendedEvent {
  Seq seq;
  TimeNs recorded_at;
  const Digest& hash;
  const EventBuffer& event;
};

// One extra row for a caller's column family; no value = delete the key.
struct Row {
  std::string column_family;
  std::string key;
  std::optional<std::string> value;
};

// Called on the writer thread, in log order, once an append is accepted.
// An error rejects this append only (nothing of it is written).
using RowsFn = std::function<Result<std::vector<Row>>(const AppendedEvent&)>;

struct AppendRequest {
  std::string draft;                 // from FinishDraft()
  std::optional<Seq> expected_head;  // conflict unless the head is exactly this
  RowsFn rows;                       // optional
  // Optional: called on the writer thread when `rows` succeeded but the
  // event was not written after all (its batch failed): undo whatever the
  // callback recorded. Within a group, last append first, and before any
  // later append is planned.
  std::function<void()> undo_rows = {};
};

// Replication (docs/replication.md): called on the writer thread for every
// new event, in log order, after its rows callback succeeded and before its
// batch is written. An error rejects this append only, as a rows error does
// (undo_rows is called; nothing of it is written): a leader in sync mode
// publishes the event here and refuses the append when the stream did not
// acknowledge it.
using PublishFn = std::function<Status(const AppendedEvent&)>;

struct AppendResult {
  Seq seq = 0;
  TimeNs recorded_at = 0;
  Digest hash{};
  bool duplicate = false;  // event_id was already in the log with this draft
};

struct VerifyReport {
  bool ok = false;
  Seq events = 0;         // events checked
  Seq first_bad_seq = 0;  // when !ok
  std::string problem;    // when !ok
  Head head;
  // Every stored Merkle tree node was recomputed from the events and
  // matched; false when the tree is not built yet (a read-only view of a
  // registry no writer of this version has opened).
  bool tree_checked = false;
  // !ok because a stored Merkle tree node does not match the events (the
  // chain itself was fine up to first_bad_seq): the tree is derived data,
  // RebuildTree() rewrites it.
  bool tree_damaged = false;
  Digest tree_root{};  // the root over the `events` checked, when tree_checked
};

// The Merkle tree over the first `size` events.
struct TreeHead {
  Seq size = 0;
  Digest root{};
};

class EventStore {
 public:
  // Opens (or creates) the log in `dir`. Errors: NotFound (no log and
  // !create_if_missing), Busy (another process or this one holds it),
  // Corruption, IOError, FailedPrecondition (newer on-disk format).
  static Result<std::unique_ptr<EventStore>> Open(const std::string& dir,
                                                  const StoreOptions& options = {});
  ~EventStore();
  EventStore(const EventStore&) = delete;
  EventStore& operator=(const EventStore&) = delete;

  // Appends one event; returns once it is durable. Errors:
  // InvalidArgument (bad draft), Conflict (stale expected_head, or event_id
  // reused with a different draft), FailedPrecondition (read-only store),
  // IOError (disk_full() on a full disk), or the rows callback's error.
  Result<AppendResult> Append(AppendRequest request);

  Head head() const;

  // Secondary instances: catch up with the writing process and re-read the
  // head (reopening the instance when the writer switched to a new
  // MANIFEST, i.e. a writer process came and went). Not concurrent with any
  // other use of this store. Other instances: no-op.
  Status CatchUp();

  // One event by sequence number: NotFound, or Corruption naming `seq`.
  Result<EventBuffer> Get(Seq seq) const;

  // The same with its stored chain hash (replication ships both).
  Result<std::pair<EventBuffer, Digest>> GetWithHash(Seq seq) const;

  // Calls `fn` for every event with from <= seq <= to, in order; `fn`
  // returns false to stop. Stops with Corruption naming the sequence number
  // of a damaged event.
  using ScanFn = std::function<bool(Seq seq, const EventBuffer& event)>;
  Status Scan(Seq from, Seq to, const ScanFn& fn) const;
  // Same over from <= recorded_at <= to (inclusive, ns since epoch UTC).
  Status ScanTime(TimeNs from, TimeNs to, const ScanFn& fn) const;

  // The last sequence number recorded at or before `t`; 0 if none.
  Result<Seq> SeqAtOrBefore(TimeNs t) const;
  // The same with that event's recorded_at (from the time index; {0, 0}
  // if none).
  Result<std::pair<Seq, TimeNs>> LastAtOrBefore(TimeNs t) const;

  // Walks the whole chain from event 1 and reports the first break.
  // `progress` (optional) is called every 65536 events with the count.
  // `on_event` (optional) sees every event that passed its checks, in order
  // (a fold that must only see verified events); its error stops the walk
  // and is returned.
  using EventFn = std::function<Status(Seq seq, const EventBuffer& event)>;
  Result<VerifyReport> Verify(const std::function<void(Seq)>& progress = {},
                              const EventFn& on_event = {}) const;

  // The Merkle tree over the events (merkle/tree.h). The root over the
  // first `size` events (default: all of them). InvalidArgument when the
  // log is shorter; FailedPrecondition when the tree is not built yet (a
  // read-only view of a registry written by an older modelreg: any write
  // builds it).
  Result<TreeHead> TreeAt(std::optional<Seq> size = std::nullopt) const;
  // The audit path of event `seq` in the tree of the first `tree_size`
  // events (leaf index seq - 1), leaf side first.
  Result<std::vector<Digest>> InclusionProof(Seq seq, Seq tree_size) const;
  // The RFC 6962 consistency proof from the tree of the first `from`
  // events to that of the first `to` (0 < from <= to).
  Result<std::vector<Digest>> ConsistencyProof(Seq from, Seq to) const;

  // Drops the stored Merkle tree and builds it again from the events (a
  // writer, the head unchanged meanwhile). Projection rebuilds, after
  // Verify reported tree_damaged.
  Status RebuildTree();

  // Reads a row of one of the caller's column families.
  Result<std::optional<std::string>> GetRow(const std::string& column_family,
                                            const std::string& key) const;

  // Calls `fn(key, value)` for every row of a caller's column family in key
  // order, from `begin` (inclusive) to `end` (exclusive; empty = to the
  // last row); `fn` returns false to stop. NotFound if the family does not
  // exist.
  using RowFn = std::function<bool(std::string_view key, std::string_view value)>;
  Status ScanRows(const std::string& column_family, const RowFn& fn,
                  std::string_view begin = {}, std::string_view end = {}) const;

  // Import: appends events exactly as another log stored them (sequence,
  // recorded_at, prev_hash kept). `next` yields each event's bytes in order
  // (nullopt at the end). Each must continue this log: seq = head + 1,
  // prev_hash = head hash, recorded_at > head's. Written in batches, synced
  // at the end. Only for a log nobody else appends to (a fresh import).
  using NextEventFn = std::function<Result<std::optional<std::string>>()>;
  Status AppendVerbatim(const NextEventFn& next);

  // Followers (docs/replication.md): appends one event exactly as the
  // leader stored it (`bytes` without the chain hash) with the caller's
  // rows, in one synced batch. It must continue this log: sequence = head
  // + 1, prev_hash = head hash, recorded_at > head's (InvalidArgument
  // naming the sequence number otherwise). Serialized with every other
  // write of this store; `rows` sees the event as stored.
  Result<AppendResult> AppendReplica(std::string_view bytes, const RowsFn& rows);

  // Installs (or, with an empty function, removes) the publish hook: see
  // PublishFn. Takes effect for appends planned after it returns.
  void SetPublishHook(PublishFn hook);

  // A consistent backup of the whole database (log and projections) into a
  // RocksDB BackupEngine directory; files unchanged since an earlier backup
  // there are shared. Returns the backup id. See log/backup.h for the rest.
  Result<std::uint32_t> CreateBackup(const std::string& backup_dir,
                                     const std::string& app_metadata) const;

  // The last row of a caller's column family with key <= `key`, if any.
  Result<std::optional<std::pair<std::string, std::string>>> SeekRowForPrev(
      const std::string& column_family, const std::string& key) const;

  // In one batch, if the head is still `expected_head`: deletes every row
  // of a caller's column family whose key lies in one of `ranges` ([begin,
  // end), empty end = to the last row; the default is every row), then
  // writes `rows` (a row without a value is deleted). Synced when the store
  // syncs and `sync` is true. Projection rebuilds.
  using KeyRange = std::pair<std::string, std::string>;
  Status ReplaceRows(const std::string& column_family, const std::vector<Row>& rows,
                     Seq expected_head, const std::vector<KeyRange>& ranges = {{"", ""}},
                     bool sync = true);

  // Writes `rows` of a caller's column family as one sorted table file and
  // ingests it (no memtable, no WAL: the file is synced before it becomes
  // part of the store), if the head is still `expected_head`. Of rows with
  // the same key the last wins; a row without a value is a delete. Bulk
  // rewrites (projection rebuilds); `rows` is sorted in place.
  Status IngestRows(const std::string& column_family, std::vector<Row>& rows, Seq expected_head);

  // Deletes every row of a caller's column family (a synced range
  // tombstone) and then drops the table files that hold only such rows, so
  // that no compaction has to read them again; then starts a bulk rewrite
  // of the family: automatic compactions paused, IngestRows writes its
  // runs uncompressed. Projection rebuilds.
  Status ClearRows(const std::string& column_family, Seq expected_head);
  // Ends the bulk rewrite ClearRows started (nothing if none): with
  // `compact`, merges every run into the bottom level (compressed as the
  // family is) before automatic compactions resume.
  Status FinishBulkRows(const std::string& column_family, bool compact = true);

  const std::string& dir() const;

  class Impl;

 private:
  explicit EventStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace modelreg
