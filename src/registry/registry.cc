#include "registry/registry.h"

#include <algorithm>
#include <deque>
#include <set>
#include <chrono>
#include <filesystem>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "common/utf8.h"
#include "events/model_events.h"
#include "compat/compatibility.h"
#include "registry/naming.h"
#include "validation/validator.h"

namespace modelreg::registry {

namespace fs = std::filesystem;

namespace {

constexpr char kProjectionCf[] = "projection";
constexpr int kWriteAttempts = 5;
constexpr const char* kTypeMoved =
    "another command changed this model type first; validating again";

std::string Name(const std::string& type, const std::string& version) {
  return type + " " + version;
}

Status NotRegistered(const std::string& type, const std::string& version) {
  return Status::NotFound(Name(type, version) + " is not registered");
}

const VersionRecord* FindOrNull(const State& s, const std::string& type,
                                const std::string& version) {
  return s.Find(type, version);
}

std::string ProductionOf(const State& s, const std::string& type) {
  auto it = s.types.find(type);
  return it == s.types.end() ? std::string() : it->second.production;
}

// Actor names and reasons go into events and JSON: UTF-8 only.
Status CheckActor(const Actor& actor) {
  if (!IsValidUtf8(actor.name)) return Status::InvalidArgument("the actor name is not valid UTF-8");
  if (!IsValidUtf8(actor.reason)) return Status::InvalidArgument("the reason is not valid UTF-8");
  return Status::OK();
}

Envelope EnvelopeFor(const Actor& actor, const std::string& event_id) {
  return Envelope{actor.name, event_id, 0};
}

std::vector<Row> ToRows(const projection::Rows& rows) {
  std::vector<Row> out;
  out.reserve(rows.size());
  for (const auto& [key, value] : rows) {
    const bool delete_row = key.rfind("p/", 0) == 0 && value.empty();
    out.push_back(Row{kProjectionCf, key,
                      delete_row ? std::nullopt : std::optional<std::string>(value)});
  }
  return out;
}


// Rows of a projection rewrite, written in unsynced batches of ~4 MB; the
// synced marker written after the last one makes them all durable (the
// WAL is sequential).
class RowBatches {
 public:
  RowBatches(EventStore& store, Seq head) : store_(store), head_(head) {}

  void Add(Row row) {
    bytes_ += row.key.size() + (row.value ? row.value->size() : 0);
    rows_.push_back(std::move(row));
  }
  void Add(std::string&& key, std::string&& value) {
    Add(Row{kProjectionCf, std::move(key), std::move(value)});
  }
  bool full() const { return bytes_ >= kBatchBytes; }
  Status Flush() {
    if (rows_.empty()) return Status::OK();
    Status st = store_.ReplaceRows(kProjectionCf, rows_, head_, {}, /*sync=*/false);
    rows_.clear();
    bytes_ = 0;
    return st;
  }

 private:
  static constexpr std::size_t kBatchBytes = 4 << 20;
  EventStore& store_;
  const Seq head_;
  std::vector<Row> rows_;
  std::size_t bytes_ = 0;
};

// The start of a projection rewrite: every row goes, the marker row
// included (range tombstones, not a delete per key; unsynced: until a later
// synced write the old rows simply stay).
Status DropProjectionRows(EventStore& store, Seq head) {
  return store.ReplaceRows(kProjectionCf, {}, head, {{"", ""}}, /*sync=*/false);
}

// The end of a projection rewrite: the state rows still in memory, then
// the marker row, synced. Until the marker lands nobody trusts the rows.
Status FinishRewrite(EventStore& store, const State& state, RowBatches& out, Seq head) {
  Status st;
  projection::EncodeState(state, [&](std::string&& key, std::string&& value) {
    if (!st.ok()) return;
    out.Add(std::move(key), std::move(value));
    if (out.full()) st = out.Flush();
  });
  MODELREG_RETURN_IF_ERROR(st);
  MODELREG_RETURN_IF_ERROR(out.Flush());
  return store.ReplaceRows(
      kProjectionCf, {Row{kProjectionCf, projection::kIndexMarkerKey, std::string("1")}}, head,
      {});
}

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

bool SameMetadata(const VersionRecord& rec, const events::Registration& r) {
  return rec.metrics == r.metrics && rec.dataset_version_ids == r.dataset_version_ids &&
         rec.snapshot_id == r.snapshot_id && rec.config_hash == r.config_hash;
}

}  // namespace

std::vector<const VersionRecord*> SortedVersions(const projection::TypeState& ts) {
  std::vector<const VersionRecord*> out;
  for (const auto& [v, rec] : ts.versions) out.push_back(&rec);
  std::sort(out.begin(), out.end(), [](const VersionRecord* a, const VersionRecord* b) {
    return CompareVersions(a->version, b->version) < 0;
  });
  return out;
}

Registry::Registry(std::string root, std::unique_ptr<EventStore> store, const Clock* clock,
                   bool read_only, std::function<void(const std::string&)> on_warning)
    : root_(std::move(root)),
      store_(std::move(store)),
      clock_(clock),
      read_only_(read_only),
      artifacts_(root_),
      on_warning_(std::move(on_warning)) {}

void Registry::Warn(const std::string& message) const {
  if (on_warning_) {
    on_warning_(message);
  } else {
    std::fprintf(stderr, "modelreg: warning: %s\n", message.c_str());
  }
}

Registry::~Registry() {
  if (manifest_thread_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(manifest_wake_mu_);
      manifest_stop_ = true;
    }
    manifest_wake_.notify_all();
    manifest_thread_.join();
    // What the thread had not written yet: a command leaves it current.
    Status st = FlushManifest();
    if (!st.ok()) {
      Warn("manifest.json could not be rewritten (" + st.ToString() +
           "); it is rewritten on the next write or open");
    }
  }
}

void Registry::ManifestLoop() {
  // Coalesces bursts: after a wake-up, waits a moment for more writes, then
  // writes the state as it is then. A failure is retried a second later.
  // Each rewrite costs two fsyncs that share the journal with the log's:
  // at most about two rewrites a second while writes keep coming, fewer
  // for a large registry (see below).
  constexpr auto kCoalesce = std::chrono::milliseconds(500);
  constexpr auto kMaxRetry = std::chrono::seconds(60);
  std::chrono::milliseconds retry(1000);  // doubles while failures repeat
  std::unique_lock<std::mutex> lock(manifest_wake_mu_);
  while (true) {
    manifest_wake_.wait(lock, [this] { return manifest_stop_ || manifest_pending_; });
    if (manifest_stop_) return;
    manifest_wake_.wait_for(lock, kCoalesce, [this] { return manifest_stop_; });
    if (manifest_stop_) return;  // the destructor writes what is left
    manifest_pending_ = false;
    lock.unlock();
    const auto started = std::chrono::steady_clock::now();
    Status st = WriteManifest();
    const auto took = std::chrono::steady_clock::now() - started;
    if (!st.ok()) {
      Warn("manifest.json could not be rewritten (" + st.ToString() + "); retrying in " +
           std::to_string(retry.count() / 1000) + " s");
    }
    lock.lock();
    if (st.ok()) {
      retry = std::chrono::milliseconds(1000);
      // A large registry's manifest takes a while to write (0.1 s per
      // ~100,000 versions), most of it under the state lock: the next
      // rewrite waits ten times as long, so it never costs writers more
      // than ~10% of the time.
      manifest_wake_.wait_for(lock, 10 * took, [this] { return manifest_stop_; });
    } else {
      manifest_pending_ = true;
      manifest_wake_.wait_for(lock, retry, [this] { return manifest_stop_; });
      retry = std::min<std::chrono::milliseconds>(2 * retry, kMaxRetry);
    }
  }
}

void Registry::ResetSequencing() const {
  sequenced_seq_ = state_.seq;
  sequenced_type_seq_.clear();
  committed_type_seq_.clear();
  durable_.clear();
}

Status Registry::FlushManifest() {
  if (read_only_) return Status::OK();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!loaded_) return Status::OK();  // opened for a rebuild that did not run
  }
  return WriteManifest();
}

Result<std::unique_ptr<Registry>> Registry::Open(const RegistryOptions& options) {
  std::error_code ec;
  const fs::path root(options.root);
  const fs::path log_dir = root / "registry";
  if (!fs::exists(root, ec)) {
    if (!options.create_if_missing || options.read_only) {
      return Err(Status::NotFound("registry directory " + options.root +
                                  " does not exist (pass --root or set MODELREG_ROOT)"));
    }
  } else if (!fs::is_directory(root, ec)) {
    return Err(Status::InvalidArgument(options.root + " is not a directory"));
  }
  if (!fs::exists(log_dir / "CURRENT", ec)) {
    if (!options.create_if_missing || options.read_only) {
      return Err(Status::NotFound(options.root + " is not a modelreg registry (no " +
                                  log_dir.string() + ")"));
    }
    if (fs::exists(root, ec) && !fs::is_empty(root, ec) && !fs::exists(log_dir, ec)) {
      // Refuse to scatter registry files into an unrelated, non-empty directory.
      bool only_ours = true;
      for (const auto& entry : fs::directory_iterator(root, ec)) {
        const std::string n = entry.path().filename().string();
        // What an operator prepares before the first registration: the
        // policy and the JSON files it names (current dataset versions).
        const bool prepared = n == "artifacts" || n == "backups" || n == "policy.toml" ||
                              (n.size() > 5 && n.substr(n.size() - 5) == ".json");
        if (!prepared) only_ours = false;
      }
      if (!only_ours) {
        return Err(Status::InvalidArgument(options.root +
                                           " is a non-empty directory that is not a modelreg "
                                           "registry; pick an empty or new --root"));
      }
    }
    fs::create_directories(log_dir, ec);
    if (ec) return Err(Status::IOError("cannot create " + log_dir.string() + ": " + ec.message()));
  }

  StoreOptions so;
  so.create_if_missing = options.create_if_missing;
  so.read_only = options.read_only || options.follow;
  so.secondary = options.follow;
  so.clock = options.clock;
  so.mmap_reads = !options.for_rebuild;  // one pass over the whole log
  if (!options.read_only) so.extra_column_families = {kProjectionCf};
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options.lock_wait_ms);
  Result<std::unique_ptr<EventStore>> store = EventStore::Open(log_dir.string(), so);
  while (!store && store.error().code() == Code::kBusy &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    store = EventStore::Open(log_dir.string(), so);
  }
  if (!store) return Err(store.error());
  std::unique_ptr<Registry> reg(
      new Registry(options.root, std::move(*store), options.clock,
                   options.read_only || options.follow,
                   options.on_warning));
  reg->rebuild_resident_ = std::max<std::size_t>(1, options.rebuild_resident_records);
  if (options.read_only || options.follow) {
    // Only check whether the rows are current; the state loads on demand.
    auto current = reg->RowsCurrent();
    reg->rows_current_ = current && *current;
  } else {
    // A registry opened to be rebuilt does not read (or fold) the state
    // first: Rebuild folds the log itself.
    bool lazy = false;
    if (options.lazy_state && !options.for_rebuild) {
      auto current = reg->RowsCurrent();
      if (!current) return Err(current.error());
      lazy = *current;  // stale rows: repaired by LoadState below
      reg->rows_current_ = lazy;
    }
    if (!options.for_rebuild && !lazy) MODELREG_RETURN_IF_ERROR(reg->LoadState());
    Registry* r = reg.get();
    reg->manifest_thread_ = std::thread([r] { r->ManifestLoop(); });
  }
  return reg;
}

Result<State> Registry::ReadState(bool* rows_current, bool fold_if_stale) const {
  // The state rows only: the record rows ("r/") are an index beside them.
  projection::Rows rows;
  auto collect = [&rows](std::string_view k, std::string_view v) {
    rows.emplace_back(std::string(k), std::string(v));
    return true;
  };
  Status st = store_->ScanRows(kProjectionCf, collect, "", "r/");
  if (st.ok()) st = store_->ScanRows(kProjectionCf, collect, "s", "x/");
  if (!st.ok() && st.code() != Code::kNotFound) return Err(st);
  auto marker = store_->GetRow(kProjectionCf, projection::kIndexMarkerKey);
  if (!marker) return Err(marker.error());
  auto decoded = projection::DecodeState(rows);
  const Seq head = store_->head().seq;
  if (decoded && decoded->seq == head && *marker) {
    *rows_current = true;
    return decoded;
  }
  // Missing, stale or damaged projection rows: fold the log instead.
  *rows_current = false;
  State fresh;
  if (!fold_if_stale) return fresh;
  Status fold = store_->Scan(1, head, [&fresh, &st](Seq, const EventBuffer& e) {
    st = projection::Apply(fresh, e);
    return st.ok();
  });
  MODELREG_RETURN_IF_ERROR(fold);
  MODELREG_RETURN_IF_ERROR(st);
  return fresh;
}

Result<State> Registry::RewriteProjection(Seq head, const std::function<void(Seq)>& progress,
                                          Digest* digest) {
  // 1. Untrust the rows: drop every row, the marker included.
  MODELREG_RETURN_IF_ERROR(DropProjectionRows(*store_, head));
  RowBatches out(*store_, head);
  // 2. Fold, writing the record rows as they come.
  State fresh;
  Status st;
  Status fold = store_->Scan(1, head, [&](Seq seq, const EventBuffer& e) {
    auto delta = projection::Plan(fresh, e);
    if (!delta) {
      st = delta.error();
      return false;
    }
    for (auto& [k, v] : projection::RecordRows(*delta)) out.Add(std::move(k), std::move(v));
    projection::Commit(fresh, *delta);
    if (out.full()) {
      st = out.Flush();
      if (!st.ok()) return false;
    }
    if (progress && seq % 65536 == 0) progress(seq);
    return true;
  });
  MODELREG_RETURN_IF_ERROR(fold);
  MODELREG_RETURN_IF_ERROR(st);
  // 3. The state rows, streamed the same way; 4. the marker, synced.
  MODELREG_RETURN_IF_ERROR(FinishRewrite(*store_, fresh, out, head));
  if (digest != nullptr) {
    auto stored = StoredRowsDigest();
    if (!stored) return Err(stored.error());
    *digest = *stored;
  }
  if (progress) progress(head);
  return fresh;
}

Status Registry::RewriteProjectionLean(Seq head, const std::function<void(Seq)>& progress) {
  // As RewriteProjection, but the fold keeps about rebuild_resident_ (at
  // most twice that) version records in memory, plus each type's
  // production version: the least recently changed are written out as
  // their "v/" rows and dropped, and Plan reads a dropped one back from its
  // newest record row if a later event names it. History and timeline
  // rows are written as they come instead of being kept. Memory stays flat
  // however long the log.
  const std::size_t limit = rebuild_resident_;
  MODELREG_RETURN_IF_ERROR(DropProjectionRows(*store_, head));
  RowBatches out(*store_, head);
  RecordRowSource source(*store_);
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
  Status fold = store_->Scan(1, head, [&](Seq seq, const EventBuffer& e) {
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
  // and "c/" (history and timeline are empty: already written).
  MODELREG_RETURN_IF_ERROR(FinishRewrite(*store_, fresh, out, head));
  if (progress) progress(head);
  return Status::OK();
}

Result<Digest> Registry::StoredRowsDigest() const {
  // Key order, constant memory; the digest skips the record rows.
  projection::RowsDigester digester;
  auto add = [&digester](std::string_view k, std::string_view v) {
    digester.Add(k, v);
    return true;
  };
  Status st = store_->ScanRows(kProjectionCf, add, "", "r/");
  if (st.ok()) st = store_->ScanRows(kProjectionCf, add, "r0", "");
  if (!st.ok() && st.code() != Code::kNotFound) return Err(st);
  return digester.Finish();
}

Status Registry::Load() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (loaded_) return Status::OK();
  bool current = false;
  auto s = ReadState(&current, /*fold_if_stale=*/true);
  if (!s) return s.error();
  state_ = std::move(*s);
  ResetSequencing();
  loaded_ = true;
  return Status::OK();
}

Status Registry::LoadState() {
  bool current = false;
  auto loaded = ReadState(&current, /*fold_if_stale=*/read_only_);
  if (!loaded) return loaded.error();
  const Seq head = store_->head().seq;
  if (!current && !read_only_) {
    loaded = RewriteProjection(head, {});
    if (!loaded) return loaded.error();
    current = true;
  }
  state_ = std::move(*loaded);
  ResetSequencing();
  loaded_ = true;
  rows_current_ = current;
  if (!read_only_) {
    // manifest.json is derived: make sure it matches the log.
    if (!ManifestMatches(head)) MODELREG_RETURN_IF_ERROR(WriteManifest());
  }
  return Status::OK();
}

// Concurrency (docs/layout.md, "Concurrent writers"): a command validates
// against the state and remembers the last event of its model type that
// the state holds. On the log's writer thread, in log order, the event is
// accepted only if no other event of that type was sequenced since; events
// of other types may be sequenced in between (and share one fsync), since
// a command's checks read only its own type. Durable deltas are applied to
// the in-memory state strictly in log order.
Result<AppendResult> Registry::Commit(const std::string& draft, const std::string& type,
                                      Seq type_seq, bool* raced) {
  projection::Delta captured;
  RowsFn rows = [&](const AppendedEvent& ev) -> Result<std::vector<Row>> {
    std::lock_guard<std::mutex> lock(mu_);
    if (sequenced_seq_ + 1 != ev.seq) {
      *raced = true;
      return Err(Status::Conflict("registry state is behind the log; retry"));
    }
    auto it = sequenced_type_seq_.find(type);
    if ((it == sequenced_type_seq_.end() ? Seq{0} : it->second) != type_seq) {
      *raced = true;
      return Err(Status::Conflict(kTypeMoved));
    }
    // Only other types' events can be pending: planning against the state
    // without them gives the same delta for this type.
    auto delta = projection::PlanUnchecked(state_, ev.event);
    if (!delta) return Err(delta.error());
    std::vector<Row> out = ToRows(projection::EncodeDelta(*delta));
    captured = std::move(*delta);
    // Last, and nothing after it can throw: the event is in the batch.
    sequenced_seq_ = ev.seq;
    sequenced_type_seq_[type] = ev.seq;
    return out;
  };
  *raced = false;
  auto r = store_->Append({draft, std::nullopt, rows});
  if (!r) return r;
  if (r->duplicate) {
    // The same event was appended before (an idempotent retry): answer
    // once the state includes it, as for a new one.
    std::unique_lock<std::mutex> lock(mu_);
    state_cv_.wait_for(lock, std::chrono::seconds(30), [&] { return state_.seq >= r->seq; });
  } else {
    const Seq seq = captured.seq;
    std::unique_lock<std::mutex> lock(mu_);
    durable_.emplace(seq, std::make_pair(type, std::move(captured)));
    // Apply every durable delta whose predecessors are applied.
    for (auto next = durable_.find(state_.seq + 1); next != durable_.end();
         next = durable_.find(state_.seq + 1)) {
      committed_type_seq_[next->second.first] = next->first;
      projection::Commit(state_, next->second.second);
      durable_.erase(next);
    }
    state_cv_.notify_all();
    // Read-your-writes: return only once the state includes this event. An
    // earlier event of the same group commit may still be on its way in
    // (its thread applies it, and this one with it, in a moment).
    if (!state_cv_.wait_for(lock, std::chrono::seconds(30), [&] { return state_.seq >= seq; })) {
      lock.unlock();
      Warn("event " + std::to_string(seq) +
           " is recorded, but the in-memory state has not caught up with it after 30 s");
    }
  }
  // The event is durable. manifest.json is derived: the manifest thread
  // rewrites it off this path (and the destructor before closing).
  {
    std::lock_guard<std::mutex> lock(manifest_wake_mu_);
    manifest_pending_ = true;
  }
  manifest_wake_.notify_one();
  return r;
}

Result<AppendResult> Registry::Write(
    const std::string& type, const std::function<Result<std::string>(const State&)>& build_draft) {
  if (read_only_) return Err(Status::FailedPrecondition("registry is open read-only"));
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!loaded_ && !rows_current_) {
      return Err(Status::FailedPrecondition("registry was opened for a rebuild; rebuild it first"));
    }
  }
  MODELREG_RETURN_IF_ERROR(Load());  // after a rebuild, from the rows
  for (int attempt = 0; attempt < kWriteAttempts; ++attempt) {
    std::string draft;
    Seq type_seq = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto d = build_draft(state_);
      if (!d) return Err(d.error());
      draft = std::move(*d);
      auto it = committed_type_seq_.find(type);
      type_seq = it == committed_type_seq_.end() ? 0 : it->second;
    }
    bool raced = false;
    auto r = Commit(draft, type, type_seq, &raced);
    if (!r && raced) {
      // Another command changed this type first: wait until its change is
      // in the state, then validate again against it.
      const Seq head = store_->head().seq;
      std::unique_lock<std::mutex> lock(mu_);
      state_cv_.wait_for(lock, std::chrono::seconds(5),
                         [&] { return state_.seq >= head; });
      continue;
    }
    return r;
  }
  return Err(Status::Conflict("the registry kept changing under this command; retry"));
}

namespace {

std::string JsonString(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

Status Registry::WriteManifest(bool force) {
  std::lock_guard<std::mutex> serialize(manifest_mu_);
  // Written as text directly (each value through nlohmann), one version
  // per line: a JSON tree of 400,000 versions held the state lock for
  // seconds and took hundreds of MB.
  std::string out;
  Seq seq = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    seq = state_.seq;
    // A concurrent writer already wrote this state or a newer one.
    if (!force && manifest_written_ && manifest_seq_ >= seq) return Status::OK();
    const Head head = store_->head();
    out += "{\n  \"format_version\": 1,\n  \"head_hash\": \"";
    out += ToHex(head.seq == state_.seq ? head.hash : Digest{});
    out += "\",\n  \"head_seq\": " + std::to_string(state_.seq) + ",\n  \"types\": {";
    bool first_type = true;
    for (const auto& [type, ts] : state_.types) {
      out += first_type ? "\n    " : ",\n    ";
      first_type = false;
      out += JsonString(type) + ": {\n      \"production\": ";
      out += ts.production.empty() ? std::string("null") : JsonString(ts.production);
      out += ",\n      \"versions\": [";
      bool first_version = true;
      for (const VersionRecord* r : SortedVersions(ts)) {
        out += first_version ? "\n        " : ",\n        ";
        first_version = false;
        out += "{\"artifact_path\": ";
        out += r->purged ? std::string("null")
                         : JsonString("artifacts/" + type + "/" + r->version + "/" +
                                      r->artifact_name);
        out += ", \"sha256\": " + JsonString(r->artifact_sha256);
        out += ", \"size\": " + std::to_string(r->artifact_size);
        out += ", \"status\": \"" + std::string(projection::StatusName(r->status)) + "\"";
        out += ", \"version\": " + JsonString(r->version) + "}";
      }
      out += first_version ? "]\n    }" : "\n      ]\n    }";
    }
    out += first_type ? "},\n" : "\n  },\n";
    out += "  \"updated_at\": " + JsonString(FormatUtc(state_.at)) + "\n}\n";
  }
  Status st = artifacts::WriteFileAtomic((fs::path(root_) / "manifest.json").string(), out);
  if (st.ok()) {
    manifest_seq_ = seq;
    manifest_written_ = true;
  }
  return st;
}

Result<RegisterResult> Registry::Register(const std::string& type, const std::string& version,
                                          const std::string& artifact_path,
                                          const MetadataInput& input, const Actor& actor) {
  MODELREG_RETURN_IF_ERROR(CheckActor(actor));
  if (read_only_) return Err(Status::FailedPrecondition("registry is open read-only"));
  MODELREG_RETURN_IF_ERROR(ValidateModelType(type));
  MODELREG_RETURN_IF_ERROR(ValidateVersion(version));
  auto reg = BuildRegistration(type, version, input, actor.name, clock_->NowNs());
  if (!reg) return Err(reg.error());
  const bool checksum_given = reg->artifact_sha256 != Digest{};

  // One registration per type at a time (staging clears the type's stale
  // staging directories); types register in parallel.
  std::mutex* type_mu = nullptr;
  {
    std::lock_guard<std::mutex> lock(register_mu_);
    type_mu = &register_type_mu_[type];
  }
  std::lock_guard<std::mutex> serialize(*type_mu);
  std::optional<VersionRecord> existing;
  Read([&](const State& s) {
    if (const VersionRecord* r = s.Find(type, version)) existing = *r;
  });
  if (existing) {
    auto hash = artifacts::HashFile(artifact_path);
    if (!hash) return Err(hash.error());
    if (ToHex(hash->sha256) != existing->artifact_sha256) {
      return Err(Status::Conflict(Name(type, version) +
                                  " is already registered with a different artifact (sha256 " +
                                  existing->artifact_sha256.substr(0, 12) +
                                  "...); versions are immutable: register a new version"));
    }
    // Parameters and factors live only in the registration event.
    bool same_payload = false;
    if (auto ev = store_->Get(existing->registered_seq); ev) {
      if (const auto* p = ev->event().payload_as_ModelRegistered()) {
        std::vector<std::string> factors;
        if (p->factor_list() != nullptr) {
          for (const auto* f : *p->factor_list()) factors.push_back(f->str());
        }
        same_payload = p->parameters_json() != nullptr &&
                       p->parameters_json()->str() == reg->parameters_json &&
                       factors == reg->factor_list;
        // Identity fields count when the metadata states them; when left
        // out they are generated per attempt (model_id, created_by,
        // created_at), like the captured environment, and not compared.
        const auto meta = input.metadata_json
                              ? nlohmann::json::parse(*input.metadata_json, nullptr, false)
                              : nlohmann::json();
        auto stated = [&meta](const char* key) {
          return meta.is_object() && meta.contains(key) && meta[key].is_string() &&
                 !meta[key].get<std::string>().empty();
        };
        if (stated("model_id") &&
            (p->model_id() == nullptr || p->model_id()->str() != reg->model_id)) {
          same_payload = false;
        }
        if (stated("created_by") &&
            (p->created_by() == nullptr || p->created_by()->str() != reg->created_by)) {
          same_payload = false;
        }
        if (stated("created_at") && p->created_at() != reg->created_at) same_payload = false;
      }
    }
    if (!same_payload || !SameMetadata(*existing, *reg)) {
      return Err(Status::Conflict(Name(type, version) +
                                  " is already registered with the same artifact but different "
                                  "metadata (metrics, datasets, snapshot, factors, parameters, "
                                  "config, model_id, created_by or created_at); versions are "
                                  "immutable: register a new version"));
    }
    return RegisterResult{*existing, true};
  }

  auto staged = artifacts_.Stage(type, artifact_path);
  if (!staged) return Err(staged.error());
  if (checksum_given && reg->artifact_sha256 != staged->hash.sha256) {
    artifacts_.Discard(*staged);
    return Err(Status::InvalidArgument("artifact " + artifact_path + " has sha256 " +
                                       ToHex(staged->hash.sha256) +
                                       " but the metadata's checksum_sha256 says " +
                                       ToHex(reg->artifact_sha256)));
  }
  reg->artifact_name = staged->file_name;
  reg->artifact_size = staged->hash.size;
  reg->artifact_sha256 = staged->hash.sha256;
  const std::string draft = events::Draft(EnvelopeFor(actor, NewEventId()), *reg);
  if (draft.size() > kMaxEventBytes) {
    artifacts_.Discard(*staged);
    return Err(Status::InvalidArgument("registration metadata is too large (" +
                                       std::to_string(draft.size()) + " bytes as an event)"));
  }
  auto parsed = EventBuffer::Parse(draft);
  if (!parsed) {
    artifacts_.Discard(*staged);
    return Err(Status::Internal("registration draft does not verify: " + parsed.error().message()));
  }
  const std::string metadata_json = events::ToJson(*parsed)["payload"].dump(2) + "\n";
  Status published = artifacts_.Publish(*staged, type, version, metadata_json);
  if (!published.ok()) {
    artifacts_.Discard(*staged);
    return Err(published);
  }
  auto r = Write(type, [&](const State& s) -> Result<std::string> {
    if (s.Find(type, version) != nullptr) {
      return Err(Status::Conflict(Name(type, version) + " was registered concurrently"));
    }
    return draft;
  });
  if (!r) {
    if (r.error().code() == Code::kConflict || r.error().code() == Code::kInvalidArgument) {
      std::error_code ec;  // certainly not recorded: the directory is an orphan
      fs::remove_all(artifacts_.VersionDir(type, version), ec);
    }
    return Err(r.error());
  }
  RegisterResult out;
  Read([&](const State& s) {
    if (const VersionRecord* rec = s.Find(type, version)) out.record = *rec;
  });
  return out;
}

namespace {

// The legality half of a promotion, checked before the artifact work and
// again against the state the event is appended on.
Status CheckPromotable(const State& s, const std::string& type, const std::string& version,
                       const std::optional<std::string>& expect_current) {
  const VersionRecord* rec = s.Find(type, version);
  if (rec == nullptr) return NotRegistered(type, version);
  const std::string current = ProductionOf(s, type);
  if (expect_current && *expect_current != current) {
    return Status::Conflict("production " + type + " is " + (current.empty() ? "none" : current) +
                            ", not " + (expect_current->empty() ? "none" : *expect_current) +
                            " as expected (--expect-current); nothing changed");
  }
  switch (rec->status) {
    case ModelStatus::kProduction:
      return Status::FailedPrecondition(Name(type, version) + " is already in production");
    case ModelStatus::kFailed:
      return Status::FailedPrecondition(Name(type, version) + " is failed and cannot be promoted (" +
                                        rec->status_reason + ")");
    case ModelStatus::kStaged:
    case ModelStatus::kArchived:
      break;
  }
  if (rec->purged) {
    return Status::FailedPrecondition(Name(type, version) +
                                      " has had its artifact purged and cannot be promoted");
  }
  return Status::OK();
}

std::string ReadFileOr(const fs::path& path, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot read " + path.string();
    return {};
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

Result<Registry::ArtifactCheck> Registry::CheckArtifact(const VersionRecord& rec,
                                                        const policy::TypePolicy& tp) const {
  ArtifactCheck c;
  const std::string path = artifacts_.ArtifactPath(rec.model_type, rec.version, rec.artifact_name);
  auto hash = artifacts::HashFile(path);
  if (!hash) {
    // A missing file is the artifact's fault; an unreadable one (EIO,
    // permissions) may be the machine's: record nothing and say so.
    if (hash.error().code() != Code::kNotFound) {
      return Err(hash.error().WithContext("cannot check the artifact of " +
                                          Name(rec.model_type, rec.version) +
                                          "; nothing was recorded"));
    }
    c.detail = hash.error().message();
    return c;
  }
  c.observed_sha256 = hash->sha256;
  c.observed_size = hash->size;
  if (ToHex(hash->sha256) != rec.artifact_sha256 || hash->size != rec.artifact_size) {
    c.detail = "artifact " + path + " has sha256 " + ToHex(hash->sha256) + " (" +
               std::to_string(hash->size) + " bytes) but was registered with " +
               rec.artifact_sha256 + " (" + std::to_string(rec.artifact_size) + " bytes)";
    return c;
  }
  if (tp.validator) {
    auto run = validation::Run(tp.validator->command, path, tp.validator->timeout_seconds * 1000);
    if (!run) return Err(run.error());
    std::string cmd;
    for (const auto& part : tp.validator->command) cmd += (cmd.empty() ? "" : " ") + part;
    // A validator that cannot run (126/127, like a shell) or runs out of
    // time says nothing about the model: nothing is recorded.
    if (run->timed_out) {
      return Err(Status::FailedPrecondition(
          "validator `" + cmd + "` timed out after " +
          std::to_string(tp.validator->timeout_seconds) + " s on " +
          Name(rec.model_type, rec.version) +
          "; nothing was recorded (raise timeout_seconds in policy.toml or fix the validator)"));
    }
    if (run->exit_code == 126 || run->exit_code == 127) {
      std::string tail = run->output_tail;
      while (!tail.empty() && (tail.back() == '\n' || tail.back() == ' ')) tail.pop_back();
      return Err(Status::FailedPrecondition(
          "validator `" + cmd + "` could not run (" + run->Describe() + ")" +
          (tail.empty() ? "" : ": " + tail) +
          "; nothing was recorded (fix the validator command in policy.toml)"));
    }
    if (!run->ok) {
      c.detail = "validator `" + cmd + "` failed (" + run->Describe() +
                 (run->timed_out ? " after " + std::to_string(tp.validator->timeout_seconds) + " s"
                                 : std::string()) +
                 ")" + (run->output_tail.empty() ? "" : "; output: " + run->output_tail);
      while (!c.detail.empty() && (c.detail.back() == '\n' || c.detail.back() == ' ')) {
        c.detail.pop_back();
      }
      return c;
    }
  }
  c.ok = true;
  c.detail = "sha256 " + rec.artifact_sha256 + " matches" +
             (tp.validator ? std::string(", validator passed") : std::string());
  return c;
}

Status Registry::MarkFailed(const VersionRecord& rec, const std::string& why,
                            const Actor& actor) {
  auto r = Write(rec.model_type, [&](const State& s) -> Result<std::string> {
    const VersionRecord* now = s.Find(rec.model_type, rec.version);
    if (now == nullptr || now->status == ModelStatus::kFailed ||
        now->status == ModelStatus::kProduction) {
      return Err(Status::Conflict(Name(rec.model_type, rec.version) + " changed meanwhile"));
    }
    return events::Draft(EnvelopeFor(actor, NewEventId()),
                         events::Failure{rec.model_type, rec.version, why});
  });
  if (!r) return r.error();
  return Status::OK();
}

Result<WriteResult> Registry::Promote(const std::string& type, const std::string& version,
                                      const std::optional<std::string>& expect_current,
                                      bool override_gates, const Actor& actor) {
  MODELREG_RETURN_IF_ERROR(CheckActor(actor));
  MODELREG_RETURN_IF_ERROR(ValidateModelType(type));
  MODELREG_RETURN_IF_ERROR(ValidateVersion(version));
  if (override_gates && actor.reason.find_first_not_of(" \t\r\n") == std::string::npos) {
    return Err(Status::InvalidArgument("--override-gates needs --reason: say why the gates are "
                                       "overridden"));
  }
  std::optional<VersionRecord> rec;
  std::string current;
  Status legal;
  Read([&](const State& s) {
    legal = CheckPromotable(s, type, version, expect_current);
    if (const VersionRecord* r = s.Find(type, version)) rec = *r;
    current = ProductionOf(s, type);
  });
  MODELREG_RETURN_IF_ERROR(legal);
  auto loaded = policy::LoadPolicy(root_);
  if (!loaded) return Err(loaded.error());
  const policy::TypePolicy& tp = loaded->For(type);
  const std::string policy_text = loaded->DescribeFor(type);

  // Validation before activation.
  auto check = CheckArtifact(*rec, tp);
  if (!check) return Err(check.error());
  if (!check->ok) {
    MODELREG_RETURN_IF_ERROR(
        MarkFailed(*rec, "failed validation before promotion: " + check->detail, actor));
    return Err(Status::Corruption(Name(type, version) + " failed validation before promotion (" +
                                  check->detail + "); it is now marked failed"));
  }

  // Gates.
  std::vector<events::Gate> gates =
      policy::EvaluateGates(tp, rec->metrics, rec->registered_at, clock_->NowNs());
  if (tp.compatibility) {
    events::Gate g;
    g.name = "dataset_compatibility";
    g.comparison = "==";
    g.threshold = 0;
    std::string error;
    const fs::path file = fs::path(root_) / tp.compatibility->current_versions_file;
    const std::string text = ReadFileOr(file, &error);
    auto current_versions =
        error.empty() ? compat::ParseDatasetVersions(text, file.string())
                      : Result<compat::DatasetVersions>(Err(Status::NotFound(error)));
    if (!current_versions) {
      g.detail = current_versions.error().message();
    } else {
      const compat::Result cr = compat::VersionCompatibilityChecker(tp.compatibility->strict)
                                    .Check(rec->dataset_version_ids, *current_versions);
      g.has_observed = true;
      g.passed = cr.compatible;
      for (const auto& w : cr.warnings) {
        g.detail += (g.detail.empty() ? "" : "; ") + w;
        if (!cr.compatible || cr.level == compat::Level::kMissing) g.observed += 1;
      }
      if (cr.compatible) g.observed = 0;
    }
    gates.push_back(std::move(g));
  }
  const bool all_passed =
      std::all_of(gates.begin(), gates.end(), [](const events::Gate& g) { return g.passed; });

  if (!all_passed && !override_gates) {
    const std::string failures = policy::DescribeFailures(gates);
    auto r = Write(type, [&](const State& s) -> Result<std::string> {
      MODELREG_RETURN_IF_ERROR(CheckPromotable(s, type, version, expect_current));
      events::Rejection rej{type, version, ProductionOf(s, type), gates, actor.reason, policy_text};
      return events::Draft(EnvelopeFor(actor, NewEventId()), rej);
    });
    if (!r) return Err(r.error());
    return Err(Status::Rejected("promotion of " + Name(type, version) +
                                " refused by the gates: " + failures + " (policy: " +
                                policy_text + "; recorded as event #" + std::to_string(r->seq) +
                                ")"));
  }

  std::string summary;
  auto r = Write(type, [&](const State& s) -> Result<std::string> {
    MODELREG_RETURN_IF_ERROR(CheckPromotable(s, type, version, expect_current));
    const std::string replaced = ProductionOf(s, type);
    summary = "promoted " + Name(type, version) +
              (replaced.empty() ? std::string() : " (replaces " + replaced + ", now archived)");
    if (override_gates && !all_passed) {
      summary += "; GATES OVERRIDDEN: " + policy::DescribeFailures(gates);
    }
    events::Promotion p;
    p.model_type = type;
    p.version = version;
    p.replaced_version = replaced;
    p.gates = gates;
    p.gates_overridden = override_gates && !all_passed;
    p.override_reason = p.gates_overridden ? actor.reason : std::string();
    p.reason = actor.reason;
    p.policy = policy_text;
    return events::Draft(EnvelopeFor(actor, NewEventId()), p);
  });
  if (!r) return Err(r.error());
  return WriteResult{r->seq, summary};
}

Result<WriteResult> Registry::Archive(const std::string& type, const std::string& version,
                                      const Actor& actor) {
  MODELREG_RETURN_IF_ERROR(CheckActor(actor));
  MODELREG_RETURN_IF_ERROR(ValidateModelType(type));
  MODELREG_RETURN_IF_ERROR(ValidateVersion(version));
  auto r = Write(type, [&](const State& s) -> Result<std::string> {
    const VersionRecord* rec = FindOrNull(s, type, version);
    if (rec == nullptr) return Err(NotRegistered(type, version));
    switch (rec->status) {
      case ModelStatus::kProduction:
        return Err(Status::FailedPrecondition(
            Name(type, version) + " is in production: promote another version or roll back "
                                  "first (`modelreg rollback " + type + "`)"));
      case ModelStatus::kArchived:
        return Err(Status::FailedPrecondition(Name(type, version) + " is already archived"));
      case ModelStatus::kFailed:
        return Err(Status::FailedPrecondition(Name(type, version) +
                                              " is failed; failed versions stay failed"));
      case ModelStatus::kStaged:
        break;
    }
    return events::Draft(EnvelopeFor(actor, NewEventId()),
                         events::Archive{type, version, actor.reason});
  });
  if (!r) return Err(r.error());
  return WriteResult{r->seq, "archived " + Name(type, version)};
}

Result<WriteResult> Registry::Fail(const std::string& type, const std::string& version,
                                   bool force, const Actor& actor) {
  MODELREG_RETURN_IF_ERROR(CheckActor(actor));
  MODELREG_RETURN_IF_ERROR(ValidateModelType(type));
  MODELREG_RETURN_IF_ERROR(ValidateVersion(version));
  if (actor.reason.empty()) {
    return Err(Status::InvalidArgument("fail needs --reason: say why the model failed"));
  }
  std::string summary = "failed " + Name(type, version);
  auto r = Write(type, [&](const State& s) -> Result<std::string> {
    const VersionRecord* rec = FindOrNull(s, type, version);
    if (rec == nullptr) return Err(NotRegistered(type, version));
    switch (rec->status) {
      case ModelStatus::kProduction:
        if (!force) {
          return Err(Status::FailedPrecondition(
              Name(type, version) + " is in production: `modelreg rollback " + type +
              " --fail` fails it and restores the previous version; `fail --force` leaves " +
              type + " with no production model"));
        }
        summary += "; " + type + " now has no production version";
        break;
      case ModelStatus::kFailed:
        return Err(Status::FailedPrecondition(Name(type, version) + " is already failed"));
      case ModelStatus::kStaged:
      case ModelStatus::kArchived:
        break;
    }
    return events::Draft(EnvelopeFor(actor, NewEventId()),
                         events::Failure{type, version, actor.reason});
  });
  if (!r) return Err(r.error());
  return WriteResult{r->seq, summary};
}

Result<WriteResult> Registry::Rollback(const std::string& type, bool fail_current,
                                       const Actor& actor) {
  MODELREG_RETURN_IF_ERROR(CheckActor(actor));
  MODELREG_RETURN_IF_ERROR(ValidateModelType(type));
  // Find the target first to check its artifact before anything is written.
  std::optional<VersionRecord> target_rec;
  Read([&](const State& s) {
    const std::string current = ProductionOf(s, type);
    auto t = s.types.find(type);
    if (current.empty() || t == s.types.end()) return;
    for (auto it = t->second.history.rbegin(); it != t->second.history.rend(); ++it) {
      if (it->version == current) {
        if (const VersionRecord* r = s.Find(type, it->replaced_version)) target_rec = *r;
        break;
      }
    }
  });
  if (target_rec && target_rec->status == ModelStatus::kArchived && !target_rec->purged) {
    auto loaded = policy::LoadPolicy(root_);
    if (!loaded) return Err(loaded.error());
    auto check = CheckArtifact(*target_rec, loaded->For(type));
    if (!check) return Err(check.error());
    if (!check->ok) {
      MODELREG_RETURN_IF_ERROR(MarkFailed(
          *target_rec, "failed validation before rollback: " + check->detail, actor));
      return Err(Status::Corruption(
          "cannot roll back to " + Name(type, target_rec->version) + ": " + check->detail +
          "; it is now marked failed and production is unchanged"));
    }
  }
  std::string summary;
  auto r = Write(type, [&](const State& s) -> Result<std::string> {
    const std::string current = ProductionOf(s, type);
    if (current.empty()) {
      return Err(Status::FailedPrecondition("no production version of " + type +
                                            " to roll back"));
    }
    // The version that was production before the current one, from the
    // history (not from version order).
    std::string target;
    const auto& history = s.types.at(type).history;
    for (auto it = history.rbegin(); it != history.rend(); ++it) {
      if (it->version == current) {
        target = it->replaced_version;
        break;
      }
    }
    if (target.empty()) {
      return Err(Status::FailedPrecondition(Name(type, current) +
                                            " was the first production version of " + type +
                                            "; there is nothing to roll back to"));
    }
    const VersionRecord* rec = FindOrNull(s, type, target);
    if (rec == nullptr) return Err(Status::Internal("history names unknown version " + target));
    if (rec->status == ModelStatus::kFailed) {
      return Err(Status::FailedPrecondition(
          Name(type, target) + " (production before " + current +
          ") is failed; promote a version explicitly with `modelreg promote`"));
    }
    if (rec->purged) {
      return Err(Status::FailedPrecondition(Name(type, target) +
                                            " has had its artifact purged; promote a version "
                                            "explicitly"));
    }
    summary = "rolled back " + type + ": " + current + " -> " + target + " (" + current +
              " is now " + (fail_current ? "failed" : "archived") + ")";
    return events::Draft(EnvelopeFor(actor, NewEventId()),
                         events::Rollback{type, current, target, fail_current, actor.reason});
  });
  if (!r) return Err(r.error());
  return WriteResult{r->seq, summary};
}

Result<ValidateResult> Registry::Validate(const std::string& type, const std::string& version,
                                          const Actor& actor) {
  MODELREG_RETURN_IF_ERROR(CheckActor(actor));
  MODELREG_RETURN_IF_ERROR(ValidateModelType(type));
  MODELREG_RETURN_IF_ERROR(ValidateVersion(version));
  std::optional<VersionRecord> rec;
  Read([&](const State& s) {
    if (const VersionRecord* r = s.Find(type, version)) rec = *r;
  });
  if (!rec) return Err(NotRegistered(type, version));
  if (rec->purged) {
    return Err(Status::FailedPrecondition(Name(type, version) + " has had its artifact purged"));
  }
  auto loaded = policy::LoadPolicy(root_);
  if (!loaded) return Err(loaded.error());
  auto check = CheckArtifact(*rec, loaded->For(type));
  if (!check) return Err(check.error());
  events::Validation v;
  v.model_type = type;
  v.version = version;
  v.expected_sha256 = *DigestFromHex(rec->artifact_sha256);
  v.observed_sha256 = check->observed_sha256;
  v.observed_size = check->observed_size;
  v.ok = check->ok;
  v.detail = check->ok ? std::string() : check->detail;
  auto r = Write(type, [&](const State& s) -> Result<std::string> {
    if (s.Find(type, version) == nullptr) return Err(NotRegistered(type, version));
    return events::Draft(EnvelopeFor(actor, NewEventId()), v);
  });
  if (!r) return Err(r.error());
  return ValidateResult{check->ok, check->detail, r->seq};
}

Result<bool> Registry::RowsCurrent() const {
  auto s = store_->GetRow(kProjectionCf, "s");
  if (!s) return Err(s.error());
  auto marker = store_->GetRow(kProjectionCf, projection::kIndexMarkerKey);
  if (!marker) return Err(marker.error());
  if (!*s || !*marker) return false;
  auto j = nlohmann::json::parse(**s, nullptr, false);
  return j.is_object() && j.contains("seq") && j["seq"].is_number_unsigned() &&
         j["seq"].get<Seq>() == store_->head().seq;
}

Status Registry::CatchUp() {
  if (!read_only_) return Status::OK();
  MODELREG_RETURN_IF_ERROR(store_->CatchUp());
  auto current = RowsCurrent();
  if (!current) return current.error();
  rows_current_ = *current;
  std::lock_guard<std::mutex> lock(mu_);
  loaded_ = false;  // a loaded state would be the old one
  state_ = State();
  return Status::OK();
}

Result<WriteResult> Registry::Acknowledge(const std::string& type, const events::ConsumerAck& ack,
                                          const Actor& actor) {
  MODELREG_RETURN_IF_ERROR(CheckActor(actor));
  MODELREG_RETURN_IF_ERROR(ValidateModelType(type));
  if (ack.consumer_id.empty() || ack.consumer_id.size() > 128 || !IsValidUtf8(ack.consumer_id) ||
      std::any_of(ack.consumer_id.begin(), ack.consumer_id.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
    return Err(Status::InvalidArgument("consumer id must be 1..128 bytes of UTF-8 text"));
  }
  if (!ack.version.empty()) MODELREG_RETURN_IF_ERROR(ValidateVersion(ack.version));
  if (!ack.attempted_version.empty()) MODELREG_RETURN_IF_ERROR(ValidateVersion(ack.attempted_version));
  if (!IsValidUtf8(ack.detail) || ack.detail.size() > 4096) {
    return Err(Status::InvalidArgument("detail must be UTF-8, at most 4 KiB"));
  }
  events::ConsumerAck a = ack;
  a.model_type = type;
  auto describe = [&a, &type] {
    return "consumer " + a.consumer_id +
           (a.ok ? " runs " : " failed to load " + a.attempted_version + ", runs ") + type + " " +
           (a.version.empty() ? "nothing" : a.version);
  };
  {
    // A registry opened with lazy_state that has not loaded its state:
    // append without it. The fold of an acknowledgement reads nothing from
    // the state, so its rows ("s" and "c/") come from a fold over an empty
    // one. mu_ is held throughout so that no other thread loads the state
    // (which would then miss this event) meanwhile; no other thread of
    // this registry can be appending, since that needs the state loaded.
    std::unique_lock<std::mutex> lock(mu_);
    if (!loaded_ && rows_current_ && !read_only_) {
      for (const std::string* v : {&a.version, &a.attempted_version}) {
        if (v->empty()) continue;
        auto row = store_->GetRow(kProjectionCf, projection::VersionKey(type, *v));
        if (!row) return Err(row.error());
        if (!*row) return Err(NotRegistered(type, *v));
      }
      RowsFn rows = [](const AppendedEvent& ev) -> Result<std::vector<Row>> {
        State empty;
        auto delta = projection::PlanUnchecked(empty, ev.event);
        if (!delta) return Err(delta.error());
        return ToRows(projection::EncodeDelta(*delta));
      };
      auto r = store_->Append({events::Draft(EnvelopeFor(actor, NewEventId()), a), std::nullopt,
                               rows});
      if (!r) return Err(r.error());
      return WriteResult{r->seq, describe()};
    }
  }
  std::string summary;
  auto r = Write(type, [&](const State& s) -> Result<std::string> {
    for (const std::string* v : {&a.version, &a.attempted_version}) {
      if (!v->empty() && s.Find(type, *v) == nullptr) return Err(NotRegistered(type, *v));
    }
    summary = describe();
    return events::Draft(EnvelopeFor(actor, NewEventId()), a);
  });
  if (!r) return Err(r.error());
  return WriteResult{r->seq, summary};
}

bool Registry::StateLoaded() const {
  std::lock_guard<std::mutex> lock(mu_);
  return loaded_;
}

Seq Registry::WaitForHead(Seq after, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  state_cv_.wait_for(lock, timeout, [&] { return state_.seq > after; });
  return state_.seq;
}

void Registry::Read(const std::function<void(const State&)>& fn) const {
  (void)Load();  // on error the state stays empty; callers use Load() to see it
  std::lock_guard<std::mutex> lock(mu_);
  fn(state_);
}

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
  if (*seq == 0) return std::optional<VersionRecord>();
  auto row = store_->SeekRowForPrev(kProjectionCf, projection::RecordKey(type, version, *seq));
  if (!row) return Err(row.error());
  const std::string prefix = projection::RecordPrefix(type, version);
  if (!*row || (*row)->first.compare(0, prefix.size(), prefix) != 0) {
    return std::optional<VersionRecord>();
  }
  auto rec = projection::DecodeVersionRow((*row)->second);
  if (!rec) return Err(rec.error());
  return std::optional<VersionRecord>(std::move(*rec));
}

Result<Registry::ProductionAt> Registry::ProductionAtTime(const std::string& type,
                                                          TimeNs t) const {
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
  std::optional<projection::ProductionChange> change;
  bool record_done = false;
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
    if (t >= state_.at) {
      // Nothing was recorded between t and now: the record now is the
      // record at t.
      out.record = it->second.versions.at(change->version);
      record_done = true;
    }
  } else {
    auto row = store_->SeekRowForPrev(kProjectionCf, projection::TimelineSeekKey(type, t));
    if (!row) return Err(row.error());
    projection::ProductionChange c;
    if (!*row || !projection::ParseTimelineRow(type, (*row)->first, (*row)->second, &c) ||
        c.version.empty()) {
      return out;
    }
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
  if (!record_done) {
    // The record as it was at t (never a later status, reason or time).
    auto rec = VersionAt(type, change->version, t);
    if (!rec) return Err(rec.error());
    out.record = std::move(*rec);
  }
  return out;
}

Result<Registry::RebuildResult> Registry::Rebuild(
    const std::function<void(Seq done, Seq total)>& progress) {
  if (read_only_) return Err(Status::FailedPrecondition("registry is open read-only"));
  RebuildResult out;
  auto before = StoredRowsDigest();
  if (!before) return Err(before.error());
  out.before = *before;
  const Seq head = store_->head().seq;
  // Two passes: the whole chain is verified before any row changes, then
  // the fold rewrites the rows (progress counts both: 2 * head steps).
  auto report = store_->Verify([&](Seq done) {
    if (progress) progress(done, 2 * head);
  });
  if (!report) return Err(report.error());
  if (!report->ok) {
    return Err(Status::Corruption("hash chain broken at event " +
                                  std::to_string(report->first_bad_seq) + ": " + report->problem +
                                  "; nothing was rebuilt"));
  }
  if (progress) progress(head, 2 * head);
  MODELREG_RETURN_IF_ERROR(RewriteProjectionLean(head, [&](Seq done) {
    if (progress) progress(head + done, 2 * head);
  }));
  auto after = StoredRowsDigest();
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
  rows_current_ = true;
  // manifest.json is derived from the log, which a rebuild does not change:
  // rewritten only if it does not match the log (which needs the state).
  if (!ManifestMatches(head)) {
    MODELREG_RETURN_IF_ERROR(Load());
    MODELREG_RETURN_IF_ERROR(WriteManifest(/*force=*/true));
  }
  return out;
}

namespace {

// Reads the top-level "head_seq" of a manifest and stops there: at 1M
// events the file is ~110 MB, and parsing all of it for one number took
// seconds and hundreds of MB.
class HeadSeqReader : public nlohmann::json_sax<nlohmann::json> {
 public:
  std::optional<Seq> head_seq;

  bool null() override { return Value(); }
  bool boolean(bool) override { return Value(); }
  bool number_integer(number_integer_t) override { return Value(); }
  bool number_unsigned(number_unsigned_t v) override {
    if (want_) {
      head_seq = v;
      return false;  // found: stop reading
    }
    return true;
  }
  bool number_float(number_float_t, const string_t&) override { return Value(); }
  bool string(string_t&) override { return Value(); }
  bool binary(binary_t&) override { return Value(); }
  bool start_object(std::size_t) override { return Open(); }
  bool key(string_t& k) override {
    want_ = depth_ == 1 && k == "head_seq";
    return true;
  }
  bool end_object() override { return Close(); }
  bool start_array(std::size_t) override { return Open(); }
  bool end_array() override { return Close(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;
  }

 private:
  bool Value() { return !want_; }  // head_seq of another type: stop, not current
  bool Open() {
    if (want_) return false;
    ++depth_;
    return true;
  }
  bool Close() {
    --depth_;
    return true;
  }
  int depth_ = 0;
  bool want_ = false;
};

}  // namespace

bool Registry::ManifestMatches(Seq head) {
  std::ifstream in(fs::path(root_) / "manifest.json", std::ios::binary);
  HeadSeqReader reader;
  if (in) nlohmann::json::sax_parse(in, &reader);
  const bool current = reader.head_seq && *reader.head_seq == head;
  if (current) {
    std::lock_guard<std::mutex> serialize(manifest_mu_);
    manifest_seq_ = head;
    manifest_written_ = true;
  }
  return current;
}

Result<std::vector<Registry::GcItem>> Registry::CollectGarbage(int keep, TimeNs retention,
                                                               bool dry_run, const Actor& actor) {
  MODELREG_RETURN_IF_ERROR(CheckActor(actor));
  if (read_only_) return Err(Status::FailedPrecondition("registry is open read-only"));
  if (keep < 0) return Err(Status::InvalidArgument("--keep must be 0 or more"));
  const TimeNs now = clock_->NowNs();
  std::vector<GcItem> items;
  std::set<std::pair<std::string, std::string>> known;
  Read([&](const State& s) {
    for (const auto& [type, ts] : s.types) {
      // The version a rollback would restore.
      std::string rollback_target;
      for (auto h = ts.history.rbegin(); h != ts.history.rend(); ++h) {
        if (h->version == ts.production) {
          rollback_target = h->replaced_version;
          break;
        }
      }
      std::vector<const VersionRecord*> by_age;
      for (const auto& [version, rec] : ts.versions) {
        known.emplace(type, version);
        by_age.push_back(&rec);
      }
      std::sort(by_age.begin(), by_age.end(), [](const VersionRecord* a, const VersionRecord* b) {
        return a->registered_seq > b->registered_seq;  // newest first
      });
      int kept = 0;
      for (const VersionRecord* r : by_age) {
        if (r->status != ModelStatus::kArchived && r->status != ModelStatus::kFailed) continue;
        if (kept < keep) {
          ++kept;
          continue;
        }
        if (r->purged || r->version == rollback_target) continue;
        if (r->promoted_at != 0 && now - r->demoted_at < retention) continue;
        const std::string path = artifacts_.ArtifactPath(type, r->version, r->artifact_name);
        std::error_code ec;
        if (!fs::exists(path, ec)) continue;
        items.push_back({type, r->version, path, r->artifact_size,
                         std::string(projection::StatusName(r->status)) + ", beyond the " +
                             std::to_string(keep) + " most recent archived/failed versions"});
      }
    }
  });
  // Interrupted registrations: staging directories and unnamed version dirs.
  std::error_code ec;
  const fs::path art = fs::path(root_) / "artifacts";
  for (const auto& type_dir : fs::directory_iterator(art, ec)) {
    if (!type_dir.is_directory()) continue;
    for (const auto& d : fs::directory_iterator(type_dir.path(), ec)) {
      const std::string name = d.path().filename().string();
      const bool staging = name.rfind(".staging-", 0) == 0;
      if (!staging && known.count({type_dir.path().filename().string(), name}) != 0) continue;
      std::uint64_t bytes = 0;
      for (const auto& f : fs::recursive_directory_iterator(d.path(), ec)) {
        if (f.is_regular_file()) bytes += f.file_size();
      }
      items.push_back({type_dir.path().filename().string(), "", d.path().string(), bytes,
                       staging ? "staging directory of an interrupted registration"
                               : "no event names this version (interrupted registration)"});
    }
  }
  if (dry_run) return items;
  for (const GcItem& item : items) {
    if (!item.version.empty()) {
      // The event first: a crash after it leaves a file the log calls
      // purged (harmless, removed next time), never a missing file the log
      // still names.
      auto r = Write(item.model_type, [&](const State& s) -> Result<std::string> {
        const VersionRecord* rec = s.Find(item.model_type, item.version);
        if (rec == nullptr || rec->purged || rec->status == ModelStatus::kProduction) {
          return Err(Status::Conflict(Name(item.model_type, item.version) + " changed meanwhile"));
        }
        return events::Draft(EnvelopeFor(actor, NewEventId()),
                             events::Purge{item.model_type, item.version, item.bytes,
                                           actor.reason.empty() ? "gc: " + item.why
                                                                : actor.reason});
      });
      if (!r) return Err(r.error());
      fs::remove(item.path, ec);
    } else {
      fs::remove_all(item.path, ec);
    }
    if (ec) return Err(Status::IOError("cannot delete " + item.path + ": " + ec.message()));
  }
  return items;
}

std::string DescribeProjectionMismatch(const VerifyResult& v) {
  if (!v.records_complete) {
    // No marker row: a rewrite that never finished (its rows are partial by
    // design), or a projection written before the record rows existed.
    return "the stored projection is incomplete (a rebuild was interrupted, or an older "
           "modelreg wrote it); reads fold the log until it is rewritten by a rebuild or the "
           "next writable open";
  }
  if (v.stored_digest != v.state_digest) {
    return "the stored projection (digest " + ToHex(v.stored_digest) +
           ") differs from the fold of the log (" + ToHex(v.state_digest) + ")";
  }
  return "the stored versioned record rows (digest " + ToHex(v.stored_records_digest) +
         ") differ from the fold of the log (" + ToHex(v.records_digest) + ")";
}

Result<VerifyResult> Registry::Verify() const {
  VerifyResult out;
  auto chain = store_->Verify();
  if (!chain) return Err(chain.error());
  out.chain = *chain;
  State fold;
  Status st;
  projection::RowSetDigest expected_records;
  Status scan = store_->Scan(1, chain->head.seq, [&](Seq, const EventBuffer& e) {
    auto delta = projection::Plan(fold, e);
    if (!delta) {
      st = delta.error();
      return false;
    }
    for (const auto& [k, v] : projection::RecordRows(*delta)) expected_records.Add(k, v);
    projection::Commit(fold, *delta);
    return true;
  });
  if (!chain->ok) return out;  // the fold of a broken chain proves nothing
  MODELREG_RETURN_IF_ERROR(scan);
  MODELREG_RETURN_IF_ERROR(st);
  out.state_digest = projection::StateDigest(fold);
  out.records_digest = expected_records.Finish();
  projection::Rows rows;
  projection::RowSetDigest stored_records;
  bool marker = false;
  Status rs = store_->ScanRows(kProjectionCf, [&](std::string_view k, std::string_view v) {
    if (k.substr(0, 2) == "r/") {
      stored_records.Add(k, v);
    } else if (k == projection::kIndexMarkerKey) {
      marker = true;
    } else {
      rows.emplace_back(std::string(k), std::string(v));
    }
    return true;
  });
  if (rs.ok()) {
    out.stored_digest = projection::RowsDigest(std::move(rows));
    out.stored_records_digest = stored_records.Finish();
  } else if (rs.code() != Code::kNotFound) {
    return Err(rs);
  }
  out.records_complete = marker;
  out.records_ok = marker && out.stored_records_digest == out.records_digest;
  out.projection_ok = out.stored_digest == out.state_digest && out.records_ok;
  return out;
}

}  // namespace modelreg::registry
