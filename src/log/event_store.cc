#include "log/event_store.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <fstream>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <thread>
#include <unordered_map>

#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/listener.h>
#include <rocksdb/metadata.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/backup_engine.h>
#include <rocksdb/options.h>
#include <rocksdb/sst_file_writer.h>
#include <rocksdb/write_batch.h>

#include "common/bytes.h"
#include "common/rw_file_lock.h"
#include "log/envelope.h"
#include "merkle/tree.h"

namespace modelreg {

namespace {

// Whether this librocksdb was built with zstd (Debian's is).
bool ZstdSupported() {
  static const bool supported = [] {
    for (rocksdb::CompressionType t : rocksdb::GetSupportedCompressions()) {
      if (t == rocksdb::kZSTD) return true;
    }
    return false;
  }();
  return supported;
}

constexpr char kEventsCf[] = "events";
constexpr char kByTimeCf[] = "by_time";
constexpr char kByEventIdCf[] = "by_event_id";
constexpr char kMetaCf[] = "meta";
constexpr char kMerkleCf[] = "merkle";
constexpr char kTreeSizeKey[] = "tree_size";
constexpr char kHeadKey[] = "head";
constexpr char kFormatKey[] = "format";
constexpr char kFormatVersion[] = "1";
constexpr std::size_t kHashBytes = 32;
constexpr std::size_t kMaxGroup = 4096;

bool IsBuiltinFamily(const std::string& name) {
  return name == rocksdb::kDefaultColumnFamilyName || name == kEventsCf ||
         name == kByTimeCf || name == kByEventIdCf || name == kMetaCf || name == kMerkleCf;
}

// A stored Merkle tree node: level (1 byte) || be64(index) -> 32-byte hash.
std::string NodeKey(merkle::NodeId id) {
  std::string key(1, static_cast<char>(id.level));
  key += Be64(id.index);
  return key;
}

rocksdb::Slice DigestSlice(const Digest& d) {
  return rocksdb::Slice(reinterpret_cast<const char*>(d.data()), d.size());
}

Status FromRocks(const rocksdb::Status& s, const std::string& dir) {
  if (s.ok()) return Status::OK();
  const std::string msg = s.ToString();
  // ENOSPC/EDQUOT reach RocksDB's file system as IOError(kNoSpace); the
  // text is the fallback for a status that lost its subcode on the way.
  if (s.IsNoSpace() || msg.find("No space left on device") != std::string::npos ||
      msg.find("Disk quota exceeded") != std::string::npos) {
    return Status::DiskFull("registry log " + dir + ": " + msg);
  }
  if (msg.find("lock hold by current process") != std::string::npos) {
    return Status::Busy("registry log " + dir + " is already open in this process");
  }
  if (s.IsIOError() && msg.find("lock") != std::string::npos) {
    return Status::Busy("registry log " + dir +
                        " is locked by another process (a running `modelreg serve` or "
                        "another modelreg command); stop it or send the command to it");
  }
  if (s.IsCorruption()) return Status::Corruption("registry log " + dir + ": " + msg);
  if (s.IsNotFound()) return Status::NotFound("registry log " + dir + ": " + msg);
  return Status::IOError("registry log " + dir + ": " + msg);
}

std::string EncodeHead(const Head& h) {
  std::string out = Be64(h.seq);
  out.append(reinterpret_cast<const char*>(h.hash.data()), h.hash.size());
  PutBe64(out, OrderedFromSigned(h.recorded_at));
  return out;
}

bool DecodeHead(std::string_view in, Head* h) {
  if (in.size() != 8 + kHashBytes + 8) return false;
  h->seq = GetBe64(in);
  std::memcpy(h->hash.data(), in.data() + 8, kHashBytes);
  h->recorded_at = SignedFromOrdered(GetBe64(in.substr(8 + kHashBytes)));
  return true;
}

std::string TimeKey(TimeNs t, Seq seq) {
  std::string k = Be64(OrderedFromSigned(t));
  PutBe64(k, seq);
  return k;
}

Digest ChainHash(const Digest& prev, std::string_view bytes) {
  thread_local Sha256 h;  // reused: creating a context costs as much as hashing
  h.Update(std::span<const std::uint8_t>(prev.data(), prev.size()));
  h.Update(bytes);
  return h.Finish();
}

// Splits a stored `events` value into event bytes and the stored hash, and
// verifies the event. Errors name `seq`.
Status ParseStored(Seq seq, std::string_view value, EventBuffer* buf, Digest* stored_hash) {
  if (value.size() <= kHashBytes) {
    return Status::Corruption("event " + std::to_string(seq) + ": stored value is " +
                              std::to_string(value.size()) + " bytes, too short");
  }
  std::string_view bytes = value.substr(0, value.size() - kHashBytes);
  if (stored_hash != nullptr) {
    std::memcpy(stored_hash->data(), value.data() + bytes.size(), kHashBytes);
  }
  Status st = buf->Assign(bytes);
  if (!st.ok()) return st.WithContext("event " + std::to_string(seq));
  if (buf->event().sequence() != seq) {
    return Status::Corruption("event " + std::to_string(seq) + ": stored under sequence " +
                              std::to_string(seq) + " but says it is " +
                              std::to_string(buf->event().sequence()));
  }
  return Status::OK();
}

Digest PrevHashOf(const fb::Event& e) {
  Digest d{};
  if (const fb::Hash32* h = e.prev_hash()) {
    std::copy(h->bytes()->begin(), h->bytes()->end(), d.begin());
  }
  return d;
}

// --- RocksDB's info log and background errors ------------------------------
//
// RocksDB's own info log (EnvLogger, the `LOG` file) cannot survive a full
// disk: after one failed write of a line, the next line fails an assertion
// (WritableFileWriter::AssertFalseAndGetStatusForPrevError) and the process
// aborts — already inside DB::Open, which logs before it writes anything
// else. This logger writes each line with one write(2) to a file opened
// O_APPEND and drops a line it cannot write: the info log is for
// diagnosis, and nothing it does may stop the registry.
class InfoLog : public rocksdb::Logger {
 public:
  // `path`: the LOG file. An existing one is renamed to LOG.old.<micros>
  // first, as RocksDB does (RocksDB deletes the oldest beyond
  // keep_log_file_num). A file that cannot be opened leaves a logger that
  // drops every line.
  static std::shared_ptr<rocksdb::Logger> Open(const std::string& path, bool rotate) {
    std::error_code ec;
    if (rotate && std::filesystem::exists(path, ec)) {
      const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
      std::filesystem::rename(path, path + ".old." + std::to_string(micros), ec);
    }
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    return std::make_shared<InfoLog>(fd);
  }

  explicit InfoLog(int fd) : fd_(fd) {}
  ~InfoLog() override {
    if (fd_ >= 0) ::close(fd_);
  }
  InfoLog(const InfoLog&) = delete;
  InfoLog& operator=(const InfoLog&) = delete;

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    if (fd_ < 0) return;
    // "2026/11/28-10:02:26.562677 140234 message", like RocksDB's lines.
    const auto now = std::chrono::system_clock::now();
    const std::time_t secs = std::chrono::system_clock::to_time_t(now);
    const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                            now.time_since_epoch()).count() % 1000000;
    std::tm tm{};
    ::localtime_r(&secs, &tm);
    char head[64];
    const int n = std::snprintf(head, sizeof head, "%04d/%02d/%02d-%02d:%02d:%02d.%06lld %lld ",
                                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                                tm.tm_min, tm.tm_sec, static_cast<long long>(micros),
                                static_cast<long long>(::gettid()));
    std::string line(head, n > 0 ? static_cast<std::size_t>(n) : 0);
    char body[512];
    va_list copy;
    va_copy(copy, ap);
    const int len = std::vsnprintf(body, sizeof body, format, copy);
    va_end(copy);
    if (len < 0) return;
    if (static_cast<std::size_t>(len) < sizeof body) {
      line.append(body, static_cast<std::size_t>(len));
    } else {
      std::string big(static_cast<std::size_t>(len) + 1, '\0');
      va_copy(copy, ap);
      std::vsnprintf(big.data(), big.size(), format, copy);
      va_end(copy);
      big.pop_back();
      line += big;
    }
    if (line.empty() || line.back() != '\n') line += '\n';
    // One write: a short or failed write (a full disk) loses this line only.
    const ssize_t w = ::write(fd_, line.data(), line.size());
    (void)w;
  }

 private:
  int fd_;
};

// Tells the store that RocksDB stopped accepting writes (a background
// error: a failed WAL write, flush or compaction — e.g. on a full disk), and
// keeps RocksDB from recovering by itself, so that the store's next write
// resumes it (DB::Resume) at a known point instead of racing an automatic
// recovery (RocksDB refuses a manual Resume while one runs).
class BackgroundErrors : public rocksdb::EventListener {
 public:
  const char* Name() const override { return "ModelregBackgroundErrors"; }
  void OnBackgroundError(rocksdb::BackgroundErrorReason /*reason*/,
                         rocksdb::Status* /*bg_error*/) override {
    stopped_.store(true);
  }
  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason /*reason*/, rocksdb::Status bg_error,
                            bool* auto_recovery) override {
    bg_error.PermitUncheckedError();
    *auto_recovery = false;
  }
  // True once after each background error (and again after a failed resume).
  bool TakeStopped() { return stopped_.exchange(false); }
  void SetStopped() { stopped_.store(true); }

 private:
  std::atomic<bool> stopped_{false};
};

// --- Readers beside a writer (docs/log.md) ---------------------------------
//
// A writing process never deletes a file of the database while a reader in
// another process may need it: RocksDB's deletions go through
// DeferredDeleteFs, which only records them, and the files are unlinked
// while the writer holds the readers' lock exclusively. Read-only opens hold
// it shared for their whole life; secondary instances while they open and
// catch up.

using Steady = std::chrono::steady_clock;

// The readers' lock (and its gate, the same name + ".gate"), inside the
// log directory; RocksDB ignores files whose names it does not know.
std::string ReadersLockPath(const std::string& dir) {
  return (std::filesystem::path(dir) / "modelreg-readers.lock").string();
}

// How long a reader waits for the lock: a writer keeps readers out for at
// most kPurgeWait plus the unlinks, so only a stopped writer exhausts this.
constexpr std::chrono::milliseconds kReaderWait(30000);
// How often a writer tries (without waiting) to delete what it held back.
constexpr std::chrono::milliseconds kPurgeInterval(1000);
// When the backlog is this large or old, the writer waits (at most
// kPurgeWait, new readers queue behind it meanwhile) for the readers
// inside to leave. After such a wait timed out (a reader that stays, e.g.
// `modelreg events | less`), no writer process waits again for kPurgeRetry:
// the time is kept in the lock's gate file.
constexpr std::uint64_t kBacklogBytes = 64u << 20;
constexpr std::size_t kBacklogFiles = 128;
constexpr std::chrono::milliseconds kBacklogAge(30000);
constexpr std::chrono::milliseconds kPurgeWait(2000);
constexpr std::chrono::milliseconds kPurgeRetry(10000);

// The Env of a read-only view: RocksDB asks the Env for its flush and
// compaction threads at every open (SanitizeOptions), read-only or not, and
// a read-only instance never schedules either: two threads started, named
// and joined per one-shot CLI read for nothing (docs/performance.md, "Cold
// process"). Here the threads asked for are started only when a job is
// actually scheduled, then as many as were asked for.
class LazyThreadsEnv : public rocksdb::EnvWrapper {
 public:
  explicit LazyThreadsEnv(rocksdb::Env* target) : rocksdb::EnvWrapper(target) {}

  static const char* kClassName() { return "ModelregLazyThreadsEnv"; }
  const char* Name() const override { return kClassName(); }

  void IncBackgroundThreadsIfNeeded(int num, Priority pri) override {
    std::lock_guard<std::mutex> lock(mu_);
    int& wanted = wanted_[Index(pri)];
    wanted = std::max(wanted, num);
    if (started_[Index(pri)]) target()->IncBackgroundThreadsIfNeeded(wanted, pri);
  }

  void Schedule(void (*function)(void* arg), void* arg, Priority pri, void* tag,
                void (*unschedule)(void* arg)) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!started_[Index(pri)]) {
        started_[Index(pri)] = true;
        target()->IncBackgroundThreadsIfNeeded(std::max(1, wanted_[Index(pri)]), pri);
      }
    }
    target()->Schedule(function, arg, pri, tag, unschedule);
  }

  // Whether a job of this priority was scheduled (tests).
  bool Started(Priority pri) const {
    std::lock_guard<std::mutex> lock(mu_);
    return started_[Index(pri)];
  }

 private:
  static std::size_t Index(Priority pri) {
    const auto i = static_cast<std::size_t>(pri);
    return i < kPools ? i : kPools - 1;
  }
  static constexpr std::size_t kPools = static_cast<std::size_t>(Priority::TOTAL);
  mutable std::mutex mu_;
  std::array<int, kPools> wanted_{};
  std::array<bool, kPools> started_{};
};

// A FileSystem for a writing RocksDB instance that holds back every file
// deletion in the database directory until DeleteDeferred(). RocksDB never
// reuses a file name it deleted (file numbers only grow); if a name is
// created again anyway, its pending deletion is dropped.
constexpr std::string_view kIngestSuffix = ".sst.tmp";

class DeferredDeleteFs : public rocksdb::FileSystemWrapper {
 public:
  struct Backlog {
    std::size_t files = 0;
    std::uint64_t bytes = 0;
    Steady::time_point oldest{};
  };

  DeferredDeleteFs(const std::shared_ptr<rocksdb::FileSystem>& target, std::string dir)
      : rocksdb::FileSystemWrapper(target), dir_(std::move(dir)) {
    while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
  }

  static const char* kClassName() { return "ModelregDeferredDeleteFs"; }
  const char* Name() const override { return kClassName(); }

  rocksdb::IOStatus DeleteFile(const std::string& f, const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override {
    // Not in the store's directory, or a file no reader opens (the source
    // of an ingest, EventStore::IngestRows): deleted now.
    if (!InDir(f) || f.ends_with(kIngestSuffix)) return target()->DeleteFile(f, options, dbg);
    std::uint64_t size = 0;
    rocksdb::IOStatus s = target()->GetFileSize(f, options, &size, dbg);
    if (s.IsPathNotFound()) return target()->DeleteFile(f, options, dbg);  // its own answer
    std::lock_guard<std::mutex> lock(mu_);
    if (pending_.try_emplace(f, Entry{size, Steady::now()}).second) bytes_ += size;
    return rocksdb::IOStatus::OK();
  }

  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* dbg) override {
    Reclaim(f);
    return target()->NewWritableFile(f, o, r, dbg);
  }
  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                       std::unique_ptr<rocksdb::FSWritableFile>* r,
                                       rocksdb::IODebugContext* dbg) override {
    Reclaim(f);
    return target()->ReopenWritableFile(f, o, r, dbg);
  }
  rocksdb::IOStatus ReuseWritableFile(const std::string& f, const std::string& old,
                                      const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSWritableFile>* r,
                                      rocksdb::IODebugContext* dbg) override {
    Reclaim(f);
    return target()->ReuseWritableFile(f, old, o, r, dbg);
  }
  rocksdb::IOStatus NewRandomRWFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSRandomRWFile>* r,
                                    rocksdb::IODebugContext* dbg) override {
    Reclaim(f);
    return target()->NewRandomRWFile(f, o, r, dbg);
  }
  rocksdb::IOStatus RenameFile(const std::string& from, const std::string& to,
                               const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
    Reclaim(to);
    return target()->RenameFile(from, to, o, dbg);
  }
  rocksdb::IOStatus LinkFile(const std::string& from, const std::string& to,
                             const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
    Reclaim(to);
    return target()->LinkFile(from, to, o, dbg);
  }

  Backlog backlog() const {
    std::lock_guard<std::mutex> lock(mu_);
    Backlog b;
    b.files = pending_.size();
    b.bytes = bytes_;
    for (const auto& [name, entry] : pending_) {
      if (b.oldest == Steady::time_point{} || entry.since < b.oldest) b.oldest = entry.since;
    }
    return b;
  }

  // Unlinks every file held back; the caller holds the readers' lock
  // exclusively. A file that cannot be unlinked is left to the next
  // writable open, which finds it again.
  void DeleteDeferred() {
    std::vector<std::string> names;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& [name, entry] : pending_) names.push_back(name);
    }
    for (const std::string& name : names) {
      // One file at a time under the mutex: a name created again meanwhile
      // (Reclaim) is not unlinked.
      std::lock_guard<std::mutex> lock(mu_);
      auto it = pending_.find(name);
      if (it == pending_.end()) continue;
      bytes_ -= it->second.bytes;
      pending_.erase(it);
      ::unlink(name.c_str());
    }
  }

 private:
  struct Entry {
    std::uint64_t bytes;
    Steady::time_point since;
  };

  bool InDir(const std::string& f) const {
    const std::size_t slash = f.find_last_of('/');
    if (slash == std::string::npos) return false;
    std::size_t end = slash;
    while (end > 1 && f[end - 1] == '/') --end;
    return f.compare(0, end, dir_) == 0 && end == dir_.size();
  }

  void Reclaim(const std::string& f) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pending_.find(f);
    if (it == pending_.end()) return;
    bytes_ -= it->second.bytes;
    pending_.erase(it);
  }

  std::string dir_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> pending_;
  std::uint64_t bytes_ = 0;
};

bool Overdue(const DeferredDeleteFs::Backlog& b) {
  return b.files >= kBacklogFiles || b.bytes >= kBacklogBytes ||
         (b.files > 0 && Steady::now() - b.oldest >= kBacklogAge);
}

// May a writer wait for the readers now (no wait timed out lately)?
bool MayWait(const RwFileLock& lock) {
  const auto last = lock.SharedStamp();
  const auto now = std::chrono::system_clock::now();
  return !last || *last > now || now - *last >= kPurgeRetry;
}

}  // namespace

// The hash of the draft a stored event was appended from: its
// store-assigned fields back at their placeholders (what idempotent retries
// compare). False when a placeholder field is absent from the event.
bool DraftContent(const EventBuffer& event, Digest* content) {
  EventBuffer draft = event;
  fb::Event& d = draft.mutable_event();
  if (d.prev_hash() == nullptr || !d.mutate_sequence(0) || !d.mutate_recorded_at(0)) return false;
  auto* prev = d.mutable_prev_hash()->mutable_bytes();
  for (std::size_t k = 0; k < kHashBytes; ++k) prev->Mutate(k, 0);
  *content = Sha256::Of(draft.bytes());
  return true;
}

class EventStore::Impl {
 public:
  struct Pending {
    AppendRequest request;
    EventBuffer buffer;
    Digest content{};
    std::promise<Result<AppendResult>> done;
  };

  ~Impl() { Close(); }

  void Close() {
    {
      std::lock_guard<std::mutex> lock(queue_mu);
      stopping = true;
    }
    queue_cv.notify_all();
    if (writer.joinable()) writer.join();
    if (db) {
      // A large unflushed memtable means every later reader (the CLI's
      // read-only opens) replays that much WAL: flush it on the way out.
      std::uint64_t memtable_bytes = 0;
      std::vector<rocksdb::ColumnFamilyHandle*> all;
      for (auto& [name, handle] : families) {
        std::uint64_t bytes = 0;
        if (db->GetIntProperty(handle, "rocksdb.cur-size-all-mem-tables", &bytes)) {
          memtable_bytes += bytes;
        }
        all.push_back(handle);
      }
      if (!options.read_only && !wal_broken && memtable_bytes > (1u << 20)) {
        db->Flush(rocksdb::FlushOptions(), all).PermitUncheckedError();
      }
      if (!options.read_only && !wal_broken) MergeSmallFamilies();
    }
    CloseDb();
    if (purger.joinable()) {
      {
        std::lock_guard<std::mutex> lock(purge_cv_mu);
        purge_stop = true;
      }
      purge_cv.notify_all();
      purger.join();
    }
    // What this writer held back, including what closing made obsolete:
    // deleted now if no reader is inside; left to the next writable open
    // (which finds it again) unless the backlog is overdue.
    Purge();
    readers_lock.reset();  // a read-only view's shared hold ends with it
    if (!secondary_dir.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(secondary_dir, ec);
    }
  }

  // Every writing process leaves a table file per family it wrote (its
  // flush at close, or the next open's replay of its WAL). The log's keys
  // only grow, so RocksDB moves such files down a level without merging
  // them (trivial moves) and never merges them afterwards while a level is
  // far below its target size: a registry written by 19 CLI processes held
  // 65 table files, each opened by every reader. A writer on its way out
  // merges a family's small files once it has kMergeAtFiles of them: one
  // CompactRange over the key range they cover, only if everything in that
  // range (with the large files it overlaps) is at most kMergeMaxBytes, so
  // a close never rewrites much (a large family with random keys, such as
  // by_event_id at a million events, keeps its small files). Inputs become
  // obsolete only once the merged file is in the MANIFEST (a crash in
  // between leaves both; the next open deletes the inputs), and they are
  // deleted through DeferredDeleteFs like every other file, so a reader
  // beside the writer keeps what it opened.
  static constexpr std::size_t kMergeAtFiles = 4;
  static constexpr std::uint64_t kSmallFile = 1u << 20;
  static constexpr std::uint64_t kMergeMaxBytes = 8u << 20;
  void MergeSmallFamilies() {
    for (auto& [name, handle] : families) {
      rocksdb::ColumnFamilyMetaData family;
      db->GetColumnFamilyMetaData(handle, &family);
      std::size_t small = 0;
      std::string lo, hi;
      for (const auto& level : family.levels) {
        for (const auto& f : level.files) {
          if (f.size >= kSmallFile) continue;
          if (small++ == 0 || f.smallestkey < lo) lo = f.smallestkey;
          if (small == 1 || f.largestkey > hi) hi = f.largestkey;
        }
      }
      if (small < kMergeAtFiles) continue;
      std::uint64_t bytes = 0;
      for (const auto& level : family.levels) {
        for (const auto& f : level.files) {
          if (!(f.largestkey < lo || f.smallestkey > hi)) bytes += f.size;
        }
      }
      if (bytes > kMergeMaxBytes) continue;
      rocksdb::CompactRangeOptions merge;
      merge.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
      const rocksdb::Slice begin(lo), end(hi);
      // A failure (a full disk) changes nothing that was acknowledged: the
      // inputs stay live and a later writer tries again.
      db->CompactRange(merge, handle, &begin, &end).PermitUncheckedError();
    }
  }

  // Closes the RocksDB instance (writers reopening: with db_mu held
  // exclusively).
  void CloseDb() {
    if (!db) return;
    for (auto& [name, handle] : families) db->DestroyColumnFamilyHandle(handle);
    families.clear();
    events = by_time = by_event_id = meta = nullptr;
    db->Close().PermitUncheckedError();
    db.reset();
  }

  // Takes over an opened instance and its family handles.
  void Install(rocksdb::DB* raw, const std::vector<rocksdb::ColumnFamilyHandle*>& handles) {
    db.reset(raw);
    for (auto* handle : handles) families[handle->GetName()] = handle;
    events = Family(kEventsCf);
    by_time = Family(kByTimeCf);
    by_event_id = Family(kByEventIdCf);
    meta = Family(kMetaCf);
    merkle_cf = Family(kMerkleCf);
  }

  // Readers on other threads than the writer's: held shared while they use
  // `db` and the family handles, which a writer replaces when it reopens
  // after a failed write (ReopenForWriting). Reads may nest (a scan's
  // callback reading the store): glibc's rwlock, under std::shared_mutex,
  // prefers readers, so a nested shared hold never waits for the reopen.
  // A write from inside a read on the same thread (a rebuild writes rows
  // from a scan's callback) does not reopen: that would wait for itself.
  class ReadHold {
   public:
    explicit ReadHold(std::shared_mutex& mu) : lock_(mu) { ++read_depth_; }
    ~ReadHold() { --read_depth_; }
    ReadHold(const ReadHold&) = delete;
    ReadHold& operator=(const ReadHold&) = delete;
    static bool Held() { return read_depth_ > 0; }

   private:
    std::shared_lock<std::shared_mutex> lock_;
    static thread_local int read_depth_;
  };
  ReadHold ReadLock() const { return ReadHold(db_mu); }
  // The error of a read while no instance is open (a reopen failed twice).
  Status Unavailable() const {
    return Status::IOError("registry log " + dir +
                           " is not open: reopening it after a failed write failed; the next "
                           "write tries again");
  }

  // A caller's column family that this store may write.
  Result<rocksdb::ColumnFamilyHandle*> CallerFamilyToWrite(const std::string& name) const {
    if (options.read_only) {
      return Err(Status::FailedPrecondition("registry log " + dir + " is open read-only"));
    }
    rocksdb::ColumnFamilyHandle* cf = Family(name);
    if (cf == nullptr || IsBuiltinFamily(name)) {
      return Err(Status::InvalidArgument("no column family '" + name + "'"));
    }
    return cf;
  }

  rocksdb::ColumnFamilyHandle* Family(const std::string& name) const {
    auto it = families.find(name);
    return it == families.end() ? nullptr : it->second;
  }

  Result<AppendResult> Append(AppendRequest request);
  void WriterLoop();
  void Process(std::vector<std::unique_ptr<Pending>>& group);
  // Looks up a committed event_id: nullopt when unused.
  Result<std::optional<std::pair<AppendResult, Digest>>> LookupEventId(const std::string& id);

  Status ReadHead(Head* out) const;
  // The Merkle tree's stored nodes and the number of events they cover
  // (the caller holds ReadLock, or is the opening thread).
  Result<Digest> ReadNode(merkle::NodeId id) const;
  Result<Seq> ReadTreeSize() const;
  // Writable open: brings the tree up to the head (a registry written
  // before the tree existed, or by an older modelreg) and loads its edge.
  Status CatchUpTree();

  // Writers: unlinks the deletions held back, if the readers' lock can be
  // taken exclusively within `wait`; false if not.
  bool PurgeDeferred(std::chrono::milliseconds wait);
  // Without waiting; when that fails and the backlog is overdue, waiting
  // (see kPurgeWait, kPurgeRetry).
  void Purge();
  void PurgeLoop();

  std::string dir;
  std::string secondary_dir;  // private state of a secondary instance
  std::string primary_manifest;  // a secondary's view of the writer's CURRENT file
  StoreOptions options;
  // Readers beside a writer (docs/log.md). The readers' lock: held shared
  // for the life of a read-only view, around the open and every catch-up of
  // a secondary instance, and exclusively by a writer while it deletes.
  std::unique_ptr<RwFileLock> readers_lock;
  // Writers: RocksDB's file system, which holds deletions back, and the
  // Env over it (both outlive `db`).
  std::shared_ptr<DeferredDeleteFs> deferred;
  std::unique_ptr<rocksdb::Env> env;
  std::mutex purge_mu;  // one purge at a time
  std::mutex purge_cv_mu;
  std::condition_variable purge_cv;
  bool purge_stop = false;
  std::thread purger;
  std::unique_ptr<rocksdb::DB> db;
  std::set<std::string> bulk_families;  // ClearRows until FinishBulkRows (write_mu)
  std::map<std::string, rocksdb::ColumnFamilyHandle*> families;
  rocksdb::ColumnFamilyHandle* events = nullptr;
  rocksdb::ColumnFamilyHandle* by_time = nullptr;
  rocksdb::ColumnFamilyHandle* by_event_id = nullptr;
  rocksdb::ColumnFamilyHandle* meta = nullptr;
  // Absent only in a read-only view of a registry no writer of this
  // version has opened yet.
  rocksdb::ColumnFamilyHandle* merkle_cf = nullptr;

  mutable std::mutex head_mu;
  Head head;  // last committed head

  std::mutex queue_mu;
  std::condition_variable queue_cv;
  std::deque<std::unique_ptr<Pending>> queue;
  bool stopping = false;
  std::thread writer;

  // Held by the writer while it processes a group, and by ReplaceRows.
  std::mutex write_mu;

  // Writer-thread state (and ReplaceRows, AppendVerbatim: under write_mu).
  PublishFn publish_hook;  // SetPublishHook
  Head writer_head;
  merkle::CompactRange writer_tree;  // always covers writer_head.seq events
  // Writers: what reopening the instance needs.
  rocksdb::Options db_options;
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  // Writers: set when RocksDB stopped accepting writes after an error in
  // its background work (a flush or compaction; see BackgroundErrors).
  std::shared_ptr<BackgroundErrors> bg_errors;
  // A write failed: the instance is reopened before the next write.
  bool wal_broken = false;
  // Set when reopening found the log changed by another process: writes
  // are refused until this process restarts (its in-memory head and its
  // caller's state are behind).
  std::string poison;
  // See ReadLock().
  mutable std::shared_mutex db_mu;

  // Adds one event's rows to `batch`: the event with its chain hash, the
  // time index, the event_id index (with the hash of the draft it was
  // appended from) and the Merkle tree nodes it completes.
  void PutEvent(rocksdb::WriteBatch& batch, merkle::CompactRange& tree, Seq seq,
                std::string_view bytes, const Digest& hash, TimeNs recorded_at,
                const std::string& event_id, const Digest& content) const {
    std::string value(bytes);
    value.append(reinterpret_cast<const char*>(hash.data()), kHashBytes);
    std::string id_value = Be64(seq);
    id_value.append(reinterpret_cast<const char*>(content.data()), kHashBytes);
    batch.Put(events, Be64(seq), value);
    batch.Put(by_time, TimeKey(recorded_at, seq), rocksdb::Slice());
    batch.Put(by_event_id, event_id, id_value);
    for (const auto& node : tree.Append(merkle::HashLeaf(bytes))) {
      batch.Put(merkle_cf, NodeKey(node.id), DigestSlice(node.hash));
    }
  }

  // Writers, with write_mu held, before every write (see event_store.h).
  Status PrepareWrite();
  Status ReopenForWriting();
};

thread_local int EventStore::Impl::ReadHold::read_depth_ = 0;

// How much free space a writer wants before it reopens its instance after
// a failed write: reopening writes a MANIFEST, an OPTIONS file (~30 KB) and
// the table files of the WAL it replays. With less, it would only fail
// again (and give other processes a moment to take the log's lock).
constexpr std::uint64_t kReopenRoom = 1u << 20;

Status EventStore::Impl::PrepareWrite() {
  if (!poison.empty()) return Status::FailedPrecondition(poison);
  if (wal_broken) return ReopenForWriting();
  if (bg_errors && bg_errors->TakeStopped()) {
    // A flush or compaction failed (e.g. no space for a table file) and
    // RocksDB stopped writes: its Resume retries that work. (A failed WAL
    // append is not resumed: in RocksDB 7.8 Resume can keep the WAL writer
    // that failed, and the next append to it aborts the process.)
    rocksdb::Status s = db->Resume();
    if (!s.ok()) {
      bg_errors->SetStopped();
      return FromRocks(s, dir).WithContext("append (resuming after a failed flush)");
    }
  }
  return Status::OK();
}

// After a failed write, RocksDB's instance must not be written again (its
// WAL writer remembers the error; RocksDB 7.8 can neither reset nor always
// replace it: facebook/rocksdb#11447, #11643). Close it and open the log
// again: the WAL replayed then ends before the failed write (a torn record
// is dropped), so the head read back must be this store's head. If the open
// fails (still no space), a read-only instance keeps the reads going and
// the next write tries again.
Status EventStore::Impl::ReopenForWriting() {
  struct statvfs vfs {};
  if (::statvfs(dir.c_str(), &vfs) == 0) {
    const std::uint64_t free_bytes =
        static_cast<std::uint64_t>(vfs.f_bavail) * static_cast<std::uint64_t>(vfs.f_frsize);
    if (free_bytes < kReopenRoom) {
      return Status::DiskFull("registry log " + dir + ": " + std::to_string(free_bytes) +
                              " bytes free on its filesystem; writes work again once at "
                              "least 1 MiB is free (no restart needed)");
    }
  }
  if (ReadHold::Held()) {
    return Status::IOError("registry log " + dir +
                           ": cannot reopen it after a failed write while this thread reads it; "
                           "retry");
  }
  std::unique_lock<std::shared_mutex> exclusive(db_mu);
  CloseDb();
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, dir, descriptors, &handles, &raw);
  if (!s.ok()) {
    const Status err = FromRocks(s, dir).WithContext("reopening the log after a failed write");
    handles.clear();
    raw = nullptr;
    if (rocksdb::DB::OpenForReadOnly(db_options, dir, descriptors, &handles, &raw).ok()) {
      Install(raw, handles);
    }
    return err;
  }
  Install(raw, handles);
  wal_broken = false;
  if (bg_errors) bg_errors->TakeStopped();
  Head on_disk;
  MODELREG_RETURN_IF_ERROR(ReadHead(&on_disk));
  if (on_disk.seq != writer_head.seq || on_disk.hash != writer_head.hash) {
    poison = "registry log " + dir + " changed while this process reopened it after a failed " +
             "write (head " + std::to_string(on_disk.seq) + " on disk, " +
             std::to_string(writer_head.seq) + " here); restart this process";
    return Status::FailedPrecondition(poison);
  }
  return Status::OK();
}

Result<AppendResult> EventStore::Impl::Append(AppendRequest request) {
  if (options.read_only) {
    return Err(Status::FailedPrecondition("registry log " + dir + " is open read-only"));
  }
  auto pending = std::make_unique<Pending>();
  Status st = pending->buffer.Assign(request.draft);
  if (!st.ok()) return Err(Status::InvalidArgument("event draft: " + st.message()));
  const fb::Event& e = pending->buffer.event();
  if (e.event_id() == nullptr || e.event_id()->size() == 0 ||
      e.event_id()->size() > kMaxEventIdBytes) {
    return Err(Status::InvalidArgument("event draft: event_id must be 1.." +
                                       std::to_string(kMaxEventIdBytes) + " bytes"));
  }
  if (e.actor() == nullptr || e.actor()->size() == 0 || e.actor()->size() > kMaxActorBytes) {
    return Err(Status::InvalidArgument("event draft: actor must be 1.." +
                                       std::to_string(kMaxActorBytes) + " bytes"));
  }
  if (e.payload_type() == fb::Payload::NONE || e.payload_type() > fb::Payload::MAX ||
      e.payload() == nullptr) {
    return Err(Status::InvalidArgument("event draft: payload type " +
                                       PayloadTypeName(e.payload_type()) +
                                       " cannot be written by this version"));
  }
  // The store patches these in place, so they must be physically present.
  fb::Event& m = pending->buffer.mutable_event();
  if (!m.mutate_sequence(0) || !m.mutate_recorded_at(0) || e.prev_hash() == nullptr) {
    return Err(Status::InvalidArgument(
        "event draft: store-assigned fields are missing (build drafts with FinishDraft)"));
  }
  pending->content = Sha256::Of(request.draft);
  pending->request = std::move(request);
  auto future = pending->done.get_future();
  {
    std::lock_guard<std::mutex> lock(queue_mu);
    if (stopping) return Err(Status::FailedPrecondition("registry log " + dir + " is closing"));
    queue.push_back(std::move(pending));
  }
  queue_cv.notify_one();
  return future.get();
}

void EventStore::Impl::WriterLoop() {
  std::vector<std::unique_ptr<Pending>> group;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(queue_mu);
      queue_cv.wait(lock, [this] { return stopping || !queue.empty(); });
      if (queue.empty()) return;  // stopping and drained
      while (!queue.empty() && group.size() < kMaxGroup) {
        group.push_back(std::move(queue.front()));
        queue.pop_front();
      }
    }
    {
      std::lock_guard<std::mutex> write_lock(write_mu);
      Process(group);
    }
    group.clear();
  }
}

Result<std::optional<std::pair<AppendResult, Digest>>> EventStore::Impl::LookupEventId(
    const std::string& id) {
  std::string value;
  rocksdb::Status s = db->Get(rocksdb::ReadOptions(), by_event_id, id, &value);
  if (s.IsNotFound()) return std::nullopt;
  if (!s.ok()) return Err(FromRocks(s, dir));
  if (value.size() != 8 + kHashBytes) {
    return Err(Status::Corruption("by_event_id row for '" + id + "' is malformed"));
  }
  Digest content{};
  std::memcpy(content.data(), value.data() + 8, kHashBytes);
  const Seq seq = GetBe64(value);
  std::string stored;
  s = db->Get(rocksdb::ReadOptions(), events, Be64(seq), &stored);
  if (!s.ok()) return Err(FromRocks(s, dir).WithContext("event " + std::to_string(seq)));
  EventBuffer buf;
  AppendResult r;
  MODELREG_RETURN_IF_ERROR(ParseStored(seq, stored, &buf, &r.hash));
  r.seq = seq;
  r.recorded_at = buf.event().recorded_at();
  r.duplicate = true;
  return std::make_optional(std::make_pair(r, content));
}

void EventStore::Impl::Process(std::vector<std::unique_ptr<Pending>>& group) {
  std::vector<Result<AppendResult>> results;
  results.reserve(group.size());
  std::vector<bool> written(group.size(), false);
  std::unordered_map<std::string, std::pair<AppendResult, Digest>> group_ids;
  rocksdb::WriteBatch batch;
  Head h = writer_head;
  merkle::CompactRange tree = writer_tree;

  if (Status ready = PrepareWrite(); !ready.ok()) {
    for (auto& p : group) p->done.set_value(Err(ready));
    return;
  }

  for (std::size_t i = 0; i < group.size(); ++i) {
    Pending& p = *group[i];
    fb::Event& e = p.buffer.mutable_event();
    const std::string id = e.event_id()->str();

    // Idempotency: a retried event_id returns the original event.
    std::optional<std::pair<AppendResult, Digest>> seen;
    if (auto it = group_ids.find(id); it != group_ids.end()) {
      seen = it->second;
    } else {
      auto looked = LookupEventId(id);
      if (!looked) {
        results.push_back(Err(looked.error()));
        continue;
      }
      seen = *looked;
    }
    if (seen) {
      if (seen->second == p.content) {
        AppendResult r = seen->first;
        r.duplicate = true;
        results.push_back(r);
      } else {
        results.push_back(Err(Status::Conflict(
            "event_id " + id + " was already used by event " +
            std::to_string(seen->first.seq) + " with a different payload")));
      }
      continue;
    }

    if (p.request.expected_head && *p.request.expected_head != h.seq) {
      results.push_back(Err(Status::Conflict(
          "expected the log head at " + std::to_string(*p.request.expected_head) +
          " but it is at " + std::to_string(h.seq) + "; re-read and retry")));
      continue;
    }

    const Seq seq = h.seq + 1;
    const TimeNs recorded_at = std::max(options.clock->NowNs(), h.recorded_at + 1);
    const std::string actor_before = e.actor()->str();
    e.mutate_sequence(seq);
    e.mutate_recorded_at(recorded_at);
    auto* prev = e.mutable_prev_hash()->mutable_bytes();
    for (std::size_t k = 0; k < kHashBytes; ++k) prev->Mutate(k, h.hash[k]);
    // The Verifier checks bounds, not overlap: a crafted draft can lay other
    // fields over the patched ones. The stored event must still verify and
    // read back what was assigned, or it would be unreadable forever.
    {
      auto patched = EventBuffer::Parse(p.buffer.bytes());
      if (!patched || patched->event().sequence() != seq ||
          patched->event().recorded_at() != recorded_at ||
          PrevHashOf(patched->event()) != h.hash || patched->event().event_id()->str() != id ||
          patched->event().actor()->str() != actor_before) {
        results.push_back(Err(Status::InvalidArgument(
            "event draft: fields overlap the store-assigned fields (build drafts with "
            "FinishDraft)")));
        continue;
      }
    }
    const std::string_view bytes = p.buffer.bytes();
    const Digest hash = ChainHash(h.hash, bytes);

    std::vector<Row> rows;
    if (p.request.rows) {
      Result<std::vector<Row>> made = Err(Status::Internal("rows callback did not run"));
      try {
        made = p.request.rows(AppendedEvent{seq, recorded_at, hash, p.buffer});
      } catch (const std::exception& ex) {
        made = Err(Status::Internal(std::string("rows callback threw: ") + ex.what()));
      }
      if (!made) {
        results.push_back(Err(made.error()));
        continue;
      }
      rows = std::move(*made);
    }
    rocksdb::ColumnFamilyHandle* bad = nullptr;
    std::string bad_name;
    for (const Row& row : rows) {
      if (IsBuiltinFamily(row.column_family) || Family(row.column_family) == nullptr) {
        bad_name = row.column_family;
        bad = events;
        break;
      }
    }
    if (bad != nullptr) {
      if (p.request.undo_rows) p.request.undo_rows();
      results.push_back(Err(Status::InvalidArgument(
          "rows callback named column family '" + bad_name +
          "', which is not one of the store's extra column families")));
      continue;
    }
    if (publish_hook) {
      Status published = Status::Internal("publish hook did not run");
      try {
        published = publish_hook(AppendedEvent{seq, recorded_at, hash, p.buffer});
      } catch (const std::exception& ex) {
        published = Status::Internal(std::string("publish hook threw: ") + ex.what());
      }
      if (!published.ok()) {
        if (p.request.undo_rows) p.request.undo_rows();
        results.push_back(Err(published));
        continue;
      }
    }

    PutEvent(batch, tree, seq, bytes, hash, recorded_at, id, p.content);
    for (const Row& row : rows) {
      if (row.value) {
        batch.Put(Family(row.column_family), row.key, *row.value);
      } else {
        batch.Delete(Family(row.column_family), row.key);
      }
    }
    h = Head{seq, hash, recorded_at};
    AppendResult r{seq, recorded_at, hash, false};
    group_ids.emplace(id, std::make_pair(r, p.content));
    results.push_back(r);
    written[i] = true;
  }

  if (h.seq != writer_head.seq) {
    batch.Put(meta, kHeadKey, EncodeHead(h));
    batch.Put(meta, kTreeSizeKey, Be64(h.seq));
    rocksdb::WriteOptions wo;
    wo.sync = options.sync;
    rocksdb::Status s = db->Write(wo, &batch);
    if (!s.ok()) {
      // The instance is not written again: the next write reopens it.
      wal_broken = true;
      const Status err = FromRocks(s, dir).WithContext("append");
      // Nothing of the group was written, and everything decided in it
      // depended on the write: undo what the rows callbacks recorded (last
      // first, before any later append is planned) and fail them all.
      for (std::size_t i = group.size(); i-- > 0;) {
        if (written[i] && group[i]->request.undo_rows) group[i]->request.undo_rows();
      }
      for (auto& r : results) {
        if (r) r = Err(err);
      }
    } else {
      writer_head = h;
      writer_tree = std::move(tree);
      std::lock_guard<std::mutex> lock(head_mu);
      head = h;
    }
  }
  for (std::size_t i = 0; i < group.size(); ++i) group[i]->done.set_value(std::move(results[i]));
}

bool EventStore::Impl::PurgeDeferred(std::chrono::milliseconds wait) {
  std::lock_guard<std::mutex> purging(purge_mu);
  if (!deferred || deferred->backlog().files == 0) return true;
  if (!readers_lock || !readers_lock->LockExclusive(wait).ok()) return false;
  deferred->DeleteDeferred();
  readers_lock->Unlock();
  return true;
}

void EventStore::Impl::Purge() {
  if (!deferred || !readers_lock || PurgeDeferred(std::chrono::milliseconds(0)) ||
      !Overdue(deferred->backlog()) || !MayWait(*readers_lock)) {
    return;
  }
  if (!PurgeDeferred(kPurgeWait)) readers_lock->SetSharedStamp(std::chrono::system_clock::now());
}

void EventStore::Impl::PurgeLoop() {
  std::unique_lock<std::mutex> lock(purge_cv_mu);
  while (!purge_cv.wait_for(lock, kPurgeInterval, [this] { return purge_stop; })) {
    lock.unlock();
    Purge();
    lock.lock();
  }
}

EventStore::EventStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

EventStore::~EventStore() = default;

namespace {

// The name of the MANIFEST the writer uses (RocksDB's CURRENT file); empty
// if it cannot be read.
std::string ReadCurrentFile(const std::string& dir) {
  std::ifstream in(std::filesystem::path(dir) / "CURRENT", std::ios::binary);
  std::string name;
  std::getline(in, name);
  return name;
}

}  // namespace

Result<std::unique_ptr<EventStore>> EventStore::Open(const std::string& dir,
                                                     const StoreOptions& options) {
  namespace fs = std::filesystem;
  for (const std::string& name : options.extra_column_families) {
    if (name.empty() || IsBuiltinFamily(name)) {
      return Err(Status::InvalidArgument("column family name '" + name + "' is reserved"));
    }
  }
  std::error_code ec;
  const bool exists = fs::exists(fs::path(dir) / "CURRENT", ec);
  StoreOptions opts = options;
  if (opts.secondary) opts.read_only = true;
  if (!exists && (!opts.create_if_missing || opts.read_only)) {
    return Err(Status::NotFound("no registry log at " + dir));
  }

  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->options = opts;
  if (opts.read_only) {
    // Readers: no writing process deletes a file while this is held (for a
    // read-only view, until it closes; for a secondary instance, until it
    // has opened every file it needs). A registry no writer of this version
    // has opened may have no lock file, and a reader may not be allowed to
    // create one; then no such writer can be deleting either.
    auto lock = RwFileLock::Open(ReadersLockPath(dir), /*create=*/true);
    if (lock) {
      Status st = (*lock)->LockShared(kReaderWait);
      if (st.code() == Code::kBusy) {
        return Err(Status::Busy("registry log " + dir +
                                ": a writing process has kept readers out for " +
                                std::to_string(kReaderWait.count() / 1000) +
                                " s (is it stopped?); try again"));
      }
      MODELREG_RETURN_IF_ERROR(st);
      impl->readers_lock = std::move(*lock);
    } else if (lock.error().code() != Code::kNotFound) {
      return Err(lock.error());
    }
    if (!opts.secondary) impl->env = std::make_unique<LazyThreadsEnv>(rocksdb::Env::Default());
  } else {
    // Writers: RocksDB deletes through DeferredDeleteFs (see above).
    impl->deferred =
        std::make_shared<DeferredDeleteFs>(rocksdb::FileSystem::Default(), dir);
    impl->env = rocksdb::NewCompositeEnv(impl->deferred);
  }

  rocksdb::Options db_options;
  if (impl->env) db_options.env = impl->env.get();
  if (!opts.read_only) {
    // RocksDB's info log, written by a logger a full disk cannot crash
    // (InfoLog); writers resume after a background error themselves.
    fs::create_directories(dir, ec);  // as RocksDB does before its LOG (create_if_missing)
    db_options.info_log = InfoLog::Open((fs::path(dir) / "LOG").string(), /*rotate=*/true);
    impl->bg_errors = std::make_shared<BackgroundErrors>();
    db_options.listeners.push_back(impl->bg_errors);
    db_options.max_bgerror_resume_count = 0;  // no automatic resume loop either
  }
  db_options.create_if_missing = opts.create_if_missing && !opts.read_only;
  db_options.create_missing_column_families = !opts.read_only;
  if (opts.secondary) db_options.max_open_files = -1;  // required by secondaries
  if (opts.read_only && !opts.secondary) {
    // One-shot readers (the CLI) touch a few tables: open them on demand
    // instead of every table file (and its stats) at open. The cap only
    // bounds the table cache; it must stay above the number of table files
    // (61 at 1M events) or long reads reopen tables over and over.
    db_options.max_open_files = 512;
    db_options.skip_stats_update_on_db_open = true;
    db_options.skip_checking_sst_file_sizes_on_db_open = true;
  }
  db_options.max_background_jobs = 2;
  // Table files are opened on one thread: RocksDB's default starts 16
  // threads per column family at open (~90 per CLI call), which cost more
  // than they save on a short-lived process.
  db_options.max_file_opening_threads = 1;
  db_options.keep_log_file_num = 5;
  // The small families (meta, by_time, by_event_id) rarely fill a memtable;
  // without a cap the WAL would keep every event until they flush.
  db_options.max_total_wal_size = 64u << 20;
  // Reads come straight from the page cache instead of a copy per block.
  db_options.allow_mmap_reads = opts.mmap_reads;

  std::set<std::string> names = {rocksdb::kDefaultColumnFamilyName, kEventsCf, kByTimeCf,
                                 kByEventIdCf, kMetaCf, kMerkleCf};
  if (!opts.read_only) {
    names.insert(opts.extra_column_families.begin(), opts.extra_column_families.end());
  }
  if (exists) {
    std::vector<std::string> existing;
    rocksdb::Status s = rocksdb::DB::ListColumnFamilies(db_options, dir, &existing);
    if (!s.ok()) return Err(FromRocks(s, dir));
    if (opts.read_only) names.clear();
    names.insert(existing.begin(), existing.end());
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  // Every append probes by_event_id for a key that is usually absent: a
  // bloom filter keeps that probe off the disk.
  rocksdb::BlockBasedTableOptions bloom;
  bloom.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  // Index blocks are stored uncompressed: opening a table (a CLI read opens
  // up to 16) then maps its index instead of decompressing it. With zstd
  // index blocks, decompressing them was 64% of the page faults of a
  // `modelreg current` on a 1M-event registry; uncompressed: 13.7 -> 9.4 ms
  // of CPU, ~10 bytes more per event (docs/performance.md). Affects table
  // files written from now on.
  bloom.enable_index_compression = false;
  rocksdb::BlockBasedTableOptions plain;
  plain.enable_index_compression = false;
  for (const std::string& name : names) {
    rocksdb::ColumnFamilyOptions cf_options(db_options);
    if (name == kByEventIdCf) {
      cf_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(bloom));
    } else {
      cf_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(plain));
    }
    if (name == kEventsCf) {
      // Scans and verify read every event: decompression was 12% of their
      // time and blocks a zero-copy read; events are ~1.5 KB of mostly
      // distinct strings and hashes. docs/performance.md has the trade-off.
      cf_options.compression = rocksdb::kNoCompression;
    } else if (name == kMerkleCf) {
      // Hashes do not compress.
      cf_options.compression = rocksdb::kNoCompression;
    } else if (ZstdSupported()) {
      // The projection rows (FlatBuffers tables of mostly strings) and the
      // indexes: zstd stores them in ~30% less than snappy (docs/log.md).
      cf_options.compression = rocksdb::kZSTD;
    }
    descriptors.emplace_back(name, cf_options);
  }

  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s;
  if (opts.secondary) {
    // Read before opening: a switch during the open is seen at the next
    // CatchUp (which then reopens).
    impl->primary_manifest = ReadCurrentFile(dir);
    std::string tmpl = (fs::temp_directory_path() / "modelreg-secondary-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      return Err(Status::IOError("cannot create a directory for a secondary instance"));
    }
    impl->secondary_dir = tmpl;
    // A secondary writes its info log into its private directory ($TMPDIR).
    db_options.info_log =
        InfoLog::Open((fs::path(impl->secondary_dir) / "LOG").string(), /*rotate=*/false);
    s = rocksdb::DB::OpenAsSecondary(db_options, dir, impl->secondary_dir, descriptors, &handles,
                                     &raw);
  } else if (opts.read_only) {
    s = rocksdb::DB::OpenForReadOnly(db_options, dir, descriptors, &handles, &raw);
  } else {
    s = rocksdb::DB::Open(db_options, dir, descriptors, &handles, &raw);
  }
  if (!s.ok()) return Err(FromRocks(s, dir));
  impl->Install(raw, handles);
  if (!opts.read_only) {
    impl->db_options = db_options;
    impl->descriptors = descriptors;
  }
  if (!impl->events || !impl->by_time || !impl->by_event_id || !impl->meta) {
    return Err(Status::Corruption(dir + " is a RocksDB database but not a modelreg log"));
  }
  for (const std::string& name : opts.extra_column_families) {
    if (opts.read_only) break;
    if (impl->Family(name) == nullptr) {
      return Err(Status::NotFound("column family '" + name + "' does not exist in " + dir));
    }
  }

  // Format version.
  std::string format;
  s = impl->db->Get(rocksdb::ReadOptions(), impl->meta, kFormatKey, &format);
  if (s.IsNotFound()) {
    if (opts.read_only) {
      return Err(Status::Corruption("registry log " + dir + " has no format record"));
    }
    s = impl->db->Put(rocksdb::WriteOptions(), impl->meta, kFormatKey, kFormatVersion);
    if (!s.ok()) return Err(FromRocks(s, dir));
  } else if (!s.ok()) {
    return Err(FromRocks(s, dir));
  } else if (format != kFormatVersion) {
    return Err(Status::FailedPrecondition("registry log " + dir + " has on-disk format '" +
                                          format + "'; this modelreg reads format " +
                                          kFormatVersion));
  }

  // Head, cross-checked against the last stored event.
  MODELREG_RETURN_IF_ERROR(impl->ReadHead(&impl->head));
  {
    std::unique_ptr<rocksdb::Iterator> it(
        impl->db->NewIterator(rocksdb::ReadOptions(), impl->events));
    it->SeekToLast();
    const Seq last = it->Valid() && it->key().size() == 8 ? GetBe64(it->key().ToStringView()) : 0;
    if (!it->status().ok()) return Err(FromRocks(it->status(), dir));
    if (last != impl->head.seq) {
      return Err(Status::Corruption("registry log " + dir + ": head record says " +
                                    std::to_string(impl->head.seq) + " but the last event is " +
                                    std::to_string(last)));
    }
  }
  impl->writer_head = impl->head;
  if (!opts.read_only) MODELREG_RETURN_IF_ERROR(impl->CatchUpTree());
  if (opts.secondary && impl->readers_lock) {
    // Every table file is open now (max_open_files = -1); CatchUp takes
    // the lock again for what it reads.
    impl->readers_lock->Unlock();
  }
  if (!opts.read_only) {
    auto lock = RwFileLock::Open(ReadersLockPath(dir), /*create=*/true);
    if (!lock) return Err(lock.error().WithContext("registry log " + dir));
    impl->readers_lock = std::move(*lock);
    Impl* p = impl.get();
    impl->writer = std::thread([p] { p->WriterLoop(); });
    impl->purger = std::thread([p] { p->PurgeLoop(); });
  }
  return std::unique_ptr<EventStore>(new EventStore(std::move(impl)));
}

Status EventStore::Impl::ReadHead(Head* out) const {
  std::string head_bytes;
  rocksdb::Status s = db->Get(rocksdb::ReadOptions(), meta, kHeadKey, &head_bytes);
  if (s.IsNotFound()) {
    *out = Head{};
    return Status::OK();
  }
  if (!s.ok()) return FromRocks(s, dir);
  if (!DecodeHead(head_bytes, out)) {
    return Status::Corruption("registry log " + dir + ": head record is malformed");
  }
  return Status::OK();
}

Result<Digest> EventStore::Impl::ReadNode(merkle::NodeId id) const {
  if (merkle_cf == nullptr) {
    return Err(Status::FailedPrecondition("registry log " + dir + " has no Merkle tree yet"));
  }
  rocksdb::PinnableSlice value;
  rocksdb::Status s = db->Get(rocksdb::ReadOptions(), merkle_cf, NodeKey(id), &value);
  if (s.IsNotFound()) {
    return Err(Status::Corruption("registry log " + dir + ": Merkle tree node (level " +
                                  std::to_string(id.level) + ", index " +
                                  std::to_string(id.index) + ") is missing"));
  }
  if (!s.ok()) return Err(FromRocks(s, dir));
  Digest d{};
  if (value.size() != d.size()) {
    return Err(Status::Corruption("registry log " + dir + ": Merkle tree node (level " +
                                  std::to_string(id.level) + ", index " +
                                  std::to_string(id.index) + ") is malformed"));
  }
  std::copy(value.data(), value.data() + d.size(), d.begin());
  return d;
}

Result<Seq> EventStore::Impl::ReadTreeSize() const {
  std::string bytes;
  rocksdb::Status s = db->Get(rocksdb::ReadOptions(), meta, kTreeSizeKey, &bytes);
  if (s.IsNotFound()) return Seq{0};
  if (!s.ok()) return Err(FromRocks(s, dir));
  if (bytes.size() != 8) {
    return Err(Status::Corruption("registry log " + dir + ": tree size record is malformed"));
  }
  return GetBe64(bytes);
}

Status EventStore::Impl::CatchUpTree() {
  auto size = ReadTreeSize();
  if (!size) return size.error();
  if (*size > writer_head.seq) {
    return Status::Corruption("registry log " + dir + ": its Merkle tree covers " +
                              std::to_string(*size) + " events but the log has " +
                              std::to_string(writer_head.seq));
  }
  auto node = [this](merkle::NodeId id) { return ReadNode(id); };
  auto loaded = merkle::CompactRange::Load(*size, node);
  if (!loaded) return loaded.error();
  merkle::CompactRange tree = std::move(*loaded);
  // Events appended without the tree (by an older modelreg): hashed now,
  // in batches; an interrupted catch-up resumes from its last batch.
  rocksdb::WriteBatch batch;
  auto flush = [&]() -> Status {
    batch.Put(meta, kTreeSizeKey, Be64(tree.size()));
    rocksdb::WriteOptions wo;
    wo.sync = options.sync;
    MODELREG_RETURN_IF_ERROR(FromRocks(db->Write(wo, &batch), dir).WithContext(
        "building the Merkle tree"));
    batch.Clear();
    return Status::OK();
  };
  if (tree.size() < writer_head.seq) {
    std::string lower = Be64(tree.size() + 1);
    std::string upper = Be64(writer_head.seq + 1);
    rocksdb::Slice upper_slice(upper);
    rocksdb::ReadOptions ro;
    ro.fill_cache = false;
    ro.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, events));
    for (it->Seek(lower); it->Valid(); it->Next()) {
      const Seq seq = it->key().size() == 8 ? GetBe64(it->key().ToStringView()) : 0;
      std::string_view value = it->value().ToStringView();
      if (seq != tree.size() + 1 || value.size() < kHashBytes) {
        return Status::Corruption("registry log " + dir + ": event " +
                                  std::to_string(tree.size() + 1) +
                                  " is missing or malformed; run modelreg verify");
      }
      value.remove_suffix(kHashBytes);
      for (const auto& n : tree.Append(merkle::HashLeaf(value))) {
        batch.Put(merkle_cf, NodeKey(n.id), DigestSlice(n.hash));
      }
      if (batch.Count() >= 8192) MODELREG_RETURN_IF_ERROR(flush());
    }
    if (!it->status().ok()) return FromRocks(it->status(), dir);
    if (tree.size() != writer_head.seq) {
      return Status::Corruption("registry log " + dir + ": event " +
                                std::to_string(tree.size() + 1) + " is missing");
    }
    MODELREG_RETURN_IF_ERROR(flush());
  }
  writer_tree = std::move(tree);
  return Status::OK();
}

Status EventStore::RebuildTree() {
  if (impl_->options.read_only) {
    return Status::FailedPrecondition("registry log " + impl_->dir + " is open read-only");
  }
  std::lock_guard<std::mutex> lock(impl_->write_mu);
  MODELREG_RETURN_IF_ERROR(impl_->PrepareWrite());
  rocksdb::WriteBatch batch;
  const std::string first(1, '\0');
  const std::string past(1, '\x7f');  // levels are 0..63
  batch.DeleteRange(impl_->merkle_cf, first, past);
  batch.Put(impl_->meta, kTreeSizeKey, Be64(0));
  rocksdb::WriteOptions wo;
  wo.sync = impl_->options.sync;
  rocksdb::Status s = impl_->db->Write(wo, &batch);
  if (!s.ok()) impl_->wal_broken = true;
  MODELREG_RETURN_IF_ERROR(FromRocks(s, impl_->dir).WithContext("dropping the Merkle tree"));
  return impl_->CatchUpTree();
}

Status EventStore::CatchUp() {
  if (!impl_->options.secondary) return Status::OK();
  // Every process that opens the log for writing (each CLI write, each
  // acknowledgement) switches it to a new MANIFEST. RocksDB's catch-up has
  // been seen to go stale across such reopens (facebook/rocksdb#7815,
  // #14444), so after one the follower reopens instead: a few milliseconds,
  // only when a writer came and went. A long-running writer (the server)
  // keeps its MANIFEST, and catch-up alone follows it.
  const std::string manifest = ReadCurrentFile(impl_->dir);
  if (manifest != impl_->primary_manifest) {
    auto fresh = EventStore::Open(impl_->dir, impl_->options);
    if (fresh) {
      std::swap(impl_, (*fresh)->impl_);  // the old instance closes with *fresh
      return Status::OK();
    }
    // Caught mid-switch (or any other failure): catch up as before and try
    // the reopen again next time.
  }
  // No writer deletes a file while the catch-up reads the MANIFEST, the
  // WALs and opens new table files.
  RwFileLock* readers = impl_->readers_lock.get();
  if (readers != nullptr) {
    Status st = readers->LockShared(kReaderWait);
    if (!st.ok()) return st.WithContext("registry log " + impl_->dir);
  }
  Head h;
  Status st = FromRocks(impl_->db->TryCatchUpWithPrimary(), impl_->dir);
  if (st.ok()) st = impl_->ReadHead(&h);
  if (readers != nullptr) readers->Unlock();
  MODELREG_RETURN_IF_ERROR(st);
  std::lock_guard<std::mutex> lock(impl_->head_mu);
  impl_->head = h;
  return Status::OK();
}

Result<AppendResult> EventStore::Append(AppendRequest request) {
  return impl_->Append(std::move(request));
}

Head EventStore::head() const {
  std::lock_guard<std::mutex> lock(impl_->head_mu);
  return impl_->head;
}

const std::string& EventStore::dir() const { return impl_->dir; }

Result<EventBuffer> EventStore::Get(Seq seq) const {
  auto got = GetWithHash(seq);
  if (!got) return Err(got.error());
  return std::move(got->first);
}

Result<std::pair<EventBuffer, Digest>> EventStore::GetWithHash(Seq seq) const {
  auto lock = impl_->ReadLock();
  if (!impl_->db) return Err(impl_->Unavailable());
  rocksdb::PinnableSlice value;
  rocksdb::Status s = impl_->db->Get(rocksdb::ReadOptions(), impl_->events, Be64(seq), &value);
  if (s.IsNotFound()) return Err(Status::NotFound("no event " + std::to_string(seq)));
  if (!s.ok()) return Err(FromRocks(s, impl_->dir));
  std::pair<EventBuffer, Digest> out;
  MODELREG_RETURN_IF_ERROR(ParseStored(seq, value.ToStringView(), &out.first, &out.second));
  return out;
}

Status EventStore::Scan(Seq from, Seq to, const ScanFn& fn) const {
  if (from > to) return Status::OK();
  auto lock = impl_->ReadLock();
  if (!impl_->db) return impl_->Unavailable();
  rocksdb::ReadOptions ro;
  std::string upper;
  rocksdb::Slice upper_slice;
  if (to < std::numeric_limits<Seq>::max()) {
    upper = Be64(to + 1);
    upper_slice = rocksdb::Slice(upper);
    ro.iterate_upper_bound = &upper_slice;
  }
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, impl_->events));
  EventBuffer buf;
  for (it->Seek(Be64(from)); it->Valid(); it->Next()) {
    if (it->key().size() != 8) return Status::Corruption("events: malformed key");
    const Seq seq = GetBe64(it->key().ToStringView());
    MODELREG_RETURN_IF_ERROR(ParseStored(seq, it->value().ToStringView(), &buf, nullptr));
    if (!fn(seq, buf)) break;
  }
  return FromRocks(it->status(), impl_->dir);
}

Result<Seq> EventStore::SeqAtOrBefore(TimeNs t) const {
  auto last = LastAtOrBefore(t);
  if (!last) return Err(last.error());
  return last->first;
}

Result<std::pair<Seq, TimeNs>> EventStore::LastAtOrBefore(TimeNs t) const {
  auto lock = impl_->ReadLock();
  if (!impl_->db) return Err(impl_->Unavailable());
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->by_time));
  it->SeekForPrev(TimeKey(t, std::numeric_limits<Seq>::max()));
  if (!it->status().ok()) return Err(FromRocks(it->status(), impl_->dir));
  if (!it->Valid()) return std::pair<Seq, TimeNs>{0, 0};
  if (it->key().size() != 16) return Err(Status::Corruption("by_time: malformed key"));
  const std::string_view key = it->key().ToStringView();
  return std::pair<Seq, TimeNs>{GetBe64(key.substr(8)), SignedFromOrdered(GetBe64(key.substr(0, 8)))};
}

Status EventStore::ScanTime(TimeNs from, TimeNs to, const ScanFn& fn) const {
  if (from > to) return Status::OK();
  Seq first = 0;
  {
    auto lock = impl_->ReadLock();
    if (!impl_->db) return impl_->Unavailable();
    std::unique_ptr<rocksdb::Iterator> it(
        impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->by_time));
    it->Seek(TimeKey(from, 0));
    if (!it->status().ok()) return FromRocks(it->status(), impl_->dir);
    if (!it->Valid()) return Status::OK();
    if (it->key().size() != 16) return Status::Corruption("by_time: malformed key");
    first = GetBe64(it->key().ToStringView().substr(8));
  }
  Result<Seq> last = SeqAtOrBefore(to);
  if (!last) return last.error();
  return Scan(first, *last, fn);
}

Result<VerifyReport> EventStore::Verify(const std::function<void(Seq)>& progress,
                                        const EventFn& on_event) const {
  VerifyReport report;
  const Head head = this->head();
  report.head = head;
  auto fail = [&report](Seq seq, std::string problem) {
    report.ok = false;
    report.first_bad_seq = seq;
    report.problem = std::move(problem);
    return report;
  };
  auto lock = impl_->ReadLock();
  if (!impl_->db) return Err(impl_->Unavailable());
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  std::string upper = Be64(head.seq + 1);
  rocksdb::Slice upper_slice(upper);
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, impl_->events));

  // The Merkle tree, recomputed from the events: every node it completes
  // must be the stored one. Each level's nodes come in index order, so one
  // iterator per level reads them sequentially.
  Seq tree_size = 0;
  if (impl_->merkle_cf != nullptr) {
    auto covered = impl_->ReadTreeSize();
    if (!covered) return Err(covered.error());
    tree_size = *covered;
  }
  if (tree_size > head.seq) {
    return fail(head.seq + 1, "the Merkle tree covers " + std::to_string(tree_size) +
                                  " events but the log has " + std::to_string(head.seq) +
                                  ": events were removed");
  }
  const bool check_tree = impl_->merkle_cf != nullptr && tree_size == head.seq;
  merkle::CompactRange tree;
  std::vector<std::unique_ptr<rocksdb::Iterator>> levels;
  rocksdb::ReadOptions tree_ro;
  tree_ro.fill_cache = false;
  auto check_node = [&](const merkle::CompactRange::Node& node) -> std::string {
    const auto level = static_cast<std::size_t>(node.id.level);
    const std::string key = NodeKey(node.id);
    if (levels.size() <= level) {
      levels.emplace_back(impl_->db->NewIterator(tree_ro, impl_->merkle_cf));
      levels.back()->Seek(key);
    } else {
      levels[level]->Next();
    }
    const auto& at = levels[level];
    const std::string where = "Merkle tree node (level " + std::to_string(node.id.level) +
                              ", index " + std::to_string(node.id.index) + ")";
    if (!at->Valid() || at->key() != rocksdb::Slice(key)) {
      if (!at->status().ok()) return FromRocks(at->status(), impl_->dir).ToString();
      return where + " is missing";
    }
    if (at->value() != DigestSlice(node.hash)) {
      return where + " does not match the events (altered)";
    }
    return {};
  };

  EventBuffer buf;
  Digest running{};
  Digest stored{};
  Seq expected = 1;
  for (it->SeekToFirst(); it->Valid(); it->Next(), ++expected) {
    if (it->key().size() != 8) return fail(expected, "malformed key in the events family");
    const Seq seq = GetBe64(it->key().ToStringView());
    if (seq != expected) {
      return fail(expected, "event " + std::to_string(expected) + " is missing");
    }
    Status st = ParseStored(seq, it->value().ToStringView(), &buf, &stored);
    if (!st.ok()) return fail(seq, st.message());
    if (PrevHashOf(buf.event()) != running) {
      return fail(seq, "event " + std::to_string(seq) +
                           ": prev_hash does not match the hash of the event before it");
    }
    running = ChainHash(running, buf.bytes());
    if (running != stored) {
      return fail(seq, "event " + std::to_string(seq) +
                           ": content does not match its recorded hash (altered)");
    }
    if (check_tree) {
      for (const auto& node : tree.Append(merkle::HashLeaf(buf.bytes()))) {
        if (std::string problem = check_node(node); !problem.empty()) {
          report.tree_damaged = true;
          return fail(seq, "event " + std::to_string(seq) + ": " + problem);
        }
      }
    }
    ++report.events;
    if (on_event) MODELREG_RETURN_IF_ERROR(on_event(seq, buf));
    if (progress && (report.events & 0xffff) == 0) progress(report.events);
  }
  if (!it->status().ok()) return Err(FromRocks(it->status(), impl_->dir));
  if (report.events != head.seq) {
    return fail(report.events + 1,
                "event " + std::to_string(report.events + 1) + " is missing (head is at " +
                    std::to_string(head.seq) + ")");
  }
  if (running != head.hash) {
    return fail(head.seq, "head hash does not match the hash of event " +
                              std::to_string(head.seq));
  }
  report.tree_checked = check_tree;
  if (check_tree) report.tree_root = tree.Root();
  report.ok = true;
  return report;
}

// The Merkle tree as a reader sees it: nodes for the first `covered`
// events, where `covered` is the head, unless the tree is not built yet.
Status CheckTreeCovers(const EventStore::Impl& impl, Seq head, Result<Seq> covered,
                       Seq wanted) {
  if (!covered) return covered.error();
  if (impl.merkle_cf == nullptr || *covered < head) {
    return Status::FailedPrecondition(
        "registry log " + impl.dir + ": its Merkle tree is not built yet (it covers " +
        std::to_string(impl.merkle_cf == nullptr ? 0 : *covered) + " of " +
        std::to_string(head) +
        " events; a registry last written by an older modelreg gets it at the next write, "
        "e.g. modelreg-replay rebuild)");
  }
  if (wanted > head) {
    return Status::InvalidArgument("tree size " + std::to_string(wanted) +
                                   " is larger than the log (" + std::to_string(head) +
                                   " events)");
  }
  return Status::OK();
}

Result<TreeHead> EventStore::TreeAt(std::optional<Seq> size) const {
  const Seq head = this->head().seq;
  const Seq wanted = size.value_or(head);
  auto lock = impl_->ReadLock();
  if (!impl_->db) return Err(impl_->Unavailable());
  MODELREG_RETURN_IF_ERROR(
      CheckTreeCovers(*impl_, head, impl_->merkle_cf ? impl_->ReadTreeSize() : Seq{0}, wanted));
  auto root = merkle::RootAt(wanted, [this](merkle::NodeId id) { return impl_->ReadNode(id); });
  if (!root) return Err(root.error());
  return TreeHead{wanted, *root};
}

Result<std::vector<Digest>> EventStore::InclusionProof(Seq seq, Seq tree_size) const {
  const Seq head = this->head().seq;
  if (seq == 0 || seq > tree_size) {
    return Err(Status::InvalidArgument("event " + std::to_string(seq) +
                                       " is not in the tree of the first " +
                                       std::to_string(tree_size) + " events"));
  }
  auto lock = impl_->ReadLock();
  if (!impl_->db) return Err(impl_->Unavailable());
  MODELREG_RETURN_IF_ERROR(CheckTreeCovers(
      *impl_, head, impl_->merkle_cf ? impl_->ReadTreeSize() : Seq{0}, tree_size));
  return merkle::InclusionProof(seq - 1, tree_size,
                                [this](merkle::NodeId id) { return impl_->ReadNode(id); });
}

Result<std::vector<Digest>> EventStore::ConsistencyProof(Seq from, Seq to) const {
  const Seq head = this->head().seq;
  auto lock = impl_->ReadLock();
  if (!impl_->db) return Err(impl_->Unavailable());
  MODELREG_RETURN_IF_ERROR(
      CheckTreeCovers(*impl_, head, impl_->merkle_cf ? impl_->ReadTreeSize() : Seq{0}, to));
  return merkle::ConsistencyProof(from, to,
                                  [this](merkle::NodeId id) { return impl_->ReadNode(id); });
}

Result<std::optional<std::string>> EventStore::GetRow(const std::string& column_family,
                                                      const std::string& key) const {
  auto lock = impl_->ReadLock();
  if (!impl_->db) return Err(impl_->Unavailable());
  rocksdb::ColumnFamilyHandle* cf = impl_->Family(column_family);
  if (cf == nullptr || IsBuiltinFamily(column_family)) {
    return Err(Status::InvalidArgument("no column family '" + column_family + "'"));
  }
  std::string value;
  rocksdb::Status s = impl_->db->Get(rocksdb::ReadOptions(), cf, key, &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return Err(FromRocks(s, impl_->dir));
  return std::optional<std::string>(std::move(value));
}

}  // namespace modelreg

namespace modelreg {

Status EventStore::ScanRows(const std::string& column_family, const RowFn& fn,
                            std::string_view begin, std::string_view end) const {
  auto lock = impl_->ReadLock();
  if (!impl_->db) return impl_->Unavailable();
  rocksdb::ColumnFamilyHandle* cf = impl_->Family(column_family);
  if (cf == nullptr || IsBuiltinFamily(column_family)) {
    return Status::NotFound("no column family '" + column_family + "'");
  }
  rocksdb::ReadOptions ro;
  const rocksdb::Slice upper(end.data(), end.size());
  if (!end.empty()) ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, cf));
  for (it->Seek(rocksdb::Slice(begin.data(), begin.size())); it->Valid(); it->Next()) {
    if (!fn(it->key().ToStringView(), it->value().ToStringView())) break;
  }
  return FromRocks(it->status(), impl_->dir);
}

Result<std::uint32_t> EventStore::CreateBackup(const std::string& backup_dir,
                                               const std::string& app_metadata) const {
  auto lock = impl_->ReadLock();
  if (!impl_->db) return Err(impl_->Unavailable());
  rocksdb::BackupEngine* raw = nullptr;
  rocksdb::IOStatus s = rocksdb::BackupEngine::Open(rocksdb::BackupEngineOptions(backup_dir),
                                                    rocksdb::Env::Default(), &raw);
  if (!s.ok()) return Err(FromRocks(s, backup_dir));
  std::unique_ptr<rocksdb::BackupEngine> engine(raw);
  rocksdb::CreateBackupOptions options;
  options.flush_before_backup = true;  // the backup needs no WAL
  rocksdb::BackupID id = 0;
  s = engine->CreateNewBackupWithMetadata(options, impl_->db.get(), app_metadata, &id);
  if (!s.ok()) return Err(FromRocks(s, backup_dir));
  return id;
}

Status EventStore::AppendVerbatim(const NextEventFn& next) {
  if (impl_->options.read_only) {
    return Status::FailedPrecondition("registry log " + impl_->dir + " is open read-only");
  }
  std::lock_guard<std::mutex> lock(impl_->write_mu);
  MODELREG_RETURN_IF_ERROR(impl_->PrepareWrite());
  Head h = impl_->writer_head;
  merkle::CompactRange tree = impl_->writer_tree;
  rocksdb::WriteBatch batch;
  auto flush = [&](bool sync) -> Status {
    if (batch.Count() == 0 && !sync) return Status::OK();
    batch.Put(impl_->meta, kHeadKey, EncodeHead(h));
    batch.Put(impl_->meta, kTreeSizeKey, Be64(h.seq));
    rocksdb::WriteOptions wo;
    wo.sync = sync && impl_->options.sync;
    rocksdb::Status s = impl_->db->Write(wo, &batch);
    if (!s.ok()) impl_->wal_broken = true;
    MODELREG_RETURN_IF_ERROR(FromRocks(s, impl_->dir));
    batch.Clear();
    impl_->writer_head = h;
    impl_->writer_tree = tree;
    std::lock_guard<std::mutex> head_lock(impl_->head_mu);
    impl_->head = h;
    return Status::OK();
  };
  EventBuffer buf;
  for (;;) {
    auto bytes = next();
    if (!bytes) return bytes.error();
    if (!*bytes) break;
    const Seq seq = h.seq + 1;
    Status st = buf.Assign(**bytes);
    if (!st.ok()) return st.WithContext("event " + std::to_string(seq));
    const fb::Event& e = buf.event();
    if (e.sequence() != seq) {
      return Status::InvalidArgument("event " + std::to_string(seq) + " says it is event " +
                                     std::to_string(e.sequence()));
    }
    if (PrevHashOf(e) != h.hash) {
      return Status::InvalidArgument("event " + std::to_string(seq) +
                                     ": prev_hash does not match the previous event's hash");
    }
    if (seq > 1 && e.recorded_at() <= h.recorded_at) {
      return Status::InvalidArgument("event " + std::to_string(seq) +
                                     ": recorded_at does not increase");
    }
    if (e.event_id() == nullptr || e.event_id()->size() == 0) {
      return Status::InvalidArgument("event " + std::to_string(seq) + " has no event_id");
    }
    const Digest hash = ChainHash(h.hash, buf.bytes());
    // Its draft's hash answers idempotent retries after import.
    Digest content{};
    if (!DraftContent(buf, &content)) {
      return Status::InvalidArgument("event " + std::to_string(seq) +
                                     " lacks its prev_hash, sequence or recorded_at field");
    }
    impl_->PutEvent(batch, tree, seq, buf.bytes(), hash, e.recorded_at(), e.event_id()->str(),
                    content);
    h = Head{seq, hash, e.recorded_at()};
    if (batch.Count() >= 3000) MODELREG_RETURN_IF_ERROR(flush(false));
  }
  return flush(true);
}

void EventStore::SetPublishHook(PublishFn hook) {
  std::lock_guard<std::mutex> lock(impl_->write_mu);
  impl_->publish_hook = std::move(hook);
}

Result<AppendResult> EventStore::AppendReplica(std::string_view bytes, const RowsFn& rows) {
  if (impl_->options.read_only) {
    return Err(Status::FailedPrecondition("registry log " + impl_->dir + " is open read-only"));
  }
  std::lock_guard<std::mutex> lock(impl_->write_mu);
  MODELREG_RETURN_IF_ERROR(impl_->PrepareWrite());
  const Head h = impl_->writer_head;
  const Seq seq = h.seq + 1;
  const std::string where = "event " + std::to_string(seq);
  auto parsed = EventBuffer::Parse(bytes);
  if (!parsed) return Err(parsed.error().WithContext(where));
  const fb::Event& e = parsed->event();
  if (e.sequence() != seq) {
    return Err(Status::InvalidArgument(where + " says it is event " +
                                       std::to_string(e.sequence())));
  }
  if (PrevHashOf(e) != h.hash) {
    return Err(Status::InvalidArgument(where +
                                       ": prev_hash does not match the previous event's hash"));
  }
  if (seq > 1 && e.recorded_at() <= h.recorded_at) {
    return Err(Status::InvalidArgument(where + ": recorded_at does not increase"));
  }
  if (e.event_id() == nullptr || e.event_id()->size() == 0 ||
      e.event_id()->size() > kMaxEventIdBytes) {
    return Err(Status::InvalidArgument(where + " has no valid event_id"));
  }
  if (e.prev_hash() == nullptr) {
    return Err(Status::InvalidArgument(where + " has no prev_hash"));
  }
  {
    auto used = impl_->LookupEventId(e.event_id()->str());
    if (!used) return Err(used.error());
    if (*used) {
      return Err(Status::InvalidArgument(where + " reuses the event_id of event " +
                                         std::to_string((*used)->first.seq)));
    }
  }
  const Digest hash = ChainHash(h.hash, bytes);
  std::vector<Row> extra;
  if (rows) {
    auto made = rows(AppendedEvent{seq, e.recorded_at(), hash, *parsed});
    if (!made) return Err(made.error());
    extra = std::move(*made);
  }
  // The placeholders of the draft it was appended from (FinishDraft writes
  // them): an event without them was not appended by a modelreg writer.
  Digest content{};
  if (!DraftContent(*parsed, &content)) {
    return Err(Status::InvalidArgument(where + " lacks its sequence or recorded_at field"));
  }
  merkle::CompactRange tree = impl_->writer_tree;
  rocksdb::WriteBatch batch;
  impl_->PutEvent(batch, tree, seq, bytes, hash, e.recorded_at(), e.event_id()->str(), content);
  for (const Row& row : extra) {
    rocksdb::ColumnFamilyHandle* cf = impl_->Family(row.column_family);
    if (IsBuiltinFamily(row.column_family) || cf == nullptr) {
      return Err(Status::InvalidArgument("rows callback named column family '" +
                                         row.column_family +
                                         "', which is not one of the store's extra column "
                                         "families"));
    }
    if (row.value) {
      batch.Put(cf, row.key, *row.value);
    } else {
      batch.Delete(cf, row.key);
    }
  }
  const Head next{seq, hash, e.recorded_at()};
  batch.Put(impl_->meta, kHeadKey, EncodeHead(next));
  batch.Put(impl_->meta, kTreeSizeKey, Be64(seq));
  rocksdb::WriteOptions wo;
  wo.sync = impl_->options.sync;
  rocksdb::Status s = impl_->db->Write(wo, &batch);
  if (!s.ok()) {
    impl_->wal_broken = true;
    return Err(FromRocks(s, impl_->dir).WithContext("append " + where));
  }
  impl_->writer_head = next;
  impl_->writer_tree = std::move(tree);
  {
    std::lock_guard<std::mutex> head_lock(impl_->head_mu);
    impl_->head = next;
  }
  return AppendResult{seq, e.recorded_at(), hash, false};
}

Result<std::optional<std::pair<std::string, std::string>>> EventStore::SeekRowForPrev(
    const std::string& column_family, const std::string& key) const {
  auto lock = impl_->ReadLock();
  if (!impl_->db) return Err(impl_->Unavailable());
  rocksdb::ColumnFamilyHandle* cf = impl_->Family(column_family);
  if (cf == nullptr || IsBuiltinFamily(column_family)) {
    return Err(Status::NotFound("no column family '" + column_family + "'"));
  }
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(rocksdb::ReadOptions(), cf));
  it->SeekForPrev(key);
  if (!it->status().ok()) return Err(FromRocks(it->status(), impl_->dir));
  if (!it->Valid()) return std::optional<std::pair<std::string, std::string>>();
  return std::make_optional(std::make_pair(it->key().ToString(), it->value().ToString()));
}

Status EventStore::ReplaceRows(const std::string& column_family, const std::vector<Row>& rows,
                               Seq expected_head, const std::vector<KeyRange>& ranges,
                               bool sync) {
  auto family = impl_->CallerFamilyToWrite(column_family);
  if (!family) return family.error();
  rocksdb::ColumnFamilyHandle* cf = *family;
  // No group is being written while the rows are replaced.
  std::lock_guard<std::mutex> lock(impl_->write_mu);
  MODELREG_RETURN_IF_ERROR(impl_->PrepareWrite());
  if (impl_->writer_head.seq != expected_head) {
    return Status::Conflict("the log moved while its projection was being rebuilt; retry");
  }
  rocksdb::WriteBatch batch;
  for (const auto& [begin, end] : ranges) {
    // One range tombstone instead of a delete per key (a rebuild drops
    // millions of rows). Projection keys are ASCII; an open end is covered
    // by "\xff" plus a delete of any key at or above it.
    const std::string stop = end.empty() ? std::string(1, '\xff') : end;
    if (begin < stop) batch.DeleteRange(cf, begin, stop);
    if (end.empty()) {
      std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(rocksdb::ReadOptions(), cf));
      for (it->Seek(stop); it->Valid(); it->Next()) batch.Delete(cf, it->key());
      if (!it->status().ok()) return FromRocks(it->status(), impl_->dir);
    }
  }
  for (const Row& row : rows) {
    if (row.column_family != column_family) {
      return Status::InvalidArgument("row for '" + row.column_family + "' in a replacement of '" +
                                     column_family + "'");
    }
    if (row.value) {
      batch.Put(cf, row.key, *row.value);
    } else {
      batch.Delete(cf, row.key);
    }
  }
  rocksdb::WriteOptions wo;
  wo.sync = impl_->options.sync && sync;
  rocksdb::Status s = impl_->db->Write(wo, &batch);
  if (!s.ok()) impl_->wal_broken = true;
  return FromRocks(s, impl_->dir);
}

Status EventStore::IngestRows(const std::string& column_family, std::vector<Row>& rows,
                              Seq expected_head) {
  auto family = impl_->CallerFamilyToWrite(column_family);
  if (!family) return family.error();
  rocksdb::ColumnFamilyHandle* cf = *family;
  for (const Row& row : rows) {
    if (row.column_family != column_family) {
      return Status::InvalidArgument("row for '" + row.column_family + "' in an ingest into '" +
                                     column_family + "'");
    }
  }
  if (rows.empty()) return Status::OK();
  // Key order, the last of equal keys kept (a table file holds each key once).
  std::stable_sort(rows.begin(), rows.end(),
                   [](const Row& a, const Row& b) { return a.key < b.key; });
  std::lock_guard<std::mutex> lock(impl_->write_mu);
  MODELREG_RETURN_IF_ERROR(impl_->PrepareWrite());
  if (impl_->writer_head.seq != expected_head) {
    return Status::Conflict("the log moved while its projection was being rebuilt; retry");
  }
  // In the store's own directory (same file system: RocksDB ingests it by
  // a hard link, then unlinks this name). Unlinked first: a file left by a
  // killed process may be linked to a live table file, and opening it for
  // writing would truncate that.
  const std::string path =
      (std::filesystem::path(impl_->dir) / ("ingest" + std::string(kIngestSuffix))).string();
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Status::IOError("cannot remove " + path + ": " + std::strerror(errno));
  }
  rocksdb::Options options(impl_->db->GetDBOptions(), impl_->db->GetOptions(cf));
  // A run of a bulk rewrite, merged into the bottom level (compressed as
  // the family is) by FinishBulkRows: compressing it here would be undone
  // there.
  if (impl_->bulk_families.count(column_family) != 0) {
    options.compression = rocksdb::kNoCompression;
  }
  rocksdb::SstFileWriter writer(rocksdb::EnvOptions(), options, cf);
  rocksdb::Status s = writer.Open(path);
  for (std::size_t i = 0; s.ok() && i < rows.size(); ++i) {
    if (i + 1 < rows.size() && rows[i + 1].key == rows[i].key) continue;  // a later one wins
    s = rows[i].value ? writer.Put(rows[i].key, *rows[i].value) : writer.Delete(rows[i].key);
  }
  if (s.ok()) s = writer.Finish();
  if (s.ok()) {
    rocksdb::IngestExternalFileOptions io;
    io.move_files = true;  // a hard link, not a copy
    io.snapshot_consistency = true;
    s = impl_->db->IngestExternalFile(cf, {path}, io);
  }
  ::unlink(path.c_str());  // a link to the ingested file, or a failed one's
  return FromRocks(s, impl_->dir);
}

Status EventStore::ClearRows(const std::string& column_family, Seq expected_head) {
  // The tombstone first, synced: a file dropped below holds only rows it
  // deleted, whatever a crash leaves.
  MODELREG_RETURN_IF_ERROR(ReplaceRows(column_family, {}, expected_head, {{"", ""}}, true));
  std::lock_guard<std::mutex> lock(impl_->write_mu);
  rocksdb::ColumnFamilyHandle* cf = impl_->Family(column_family);
  MODELREG_RETURN_IF_ERROR(FromRocks(
      rocksdb::DeleteFilesInRange(impl_->db.get(), cf, nullptr, nullptr), impl_->dir));
  // Every ingested run covers the whole key range: compacting them as they
  // come would rewrite the family once per few runs, and the level-0 file
  // count would stop ordinary writes. Paused until FinishBulkRows.
  rocksdb::Status s = impl_->db->SetOptions(cf, {{"disable_auto_compactions", "true"},
                                                 {"level0_slowdown_writes_trigger", "1000000"},
                                                 {"level0_stop_writes_trigger", "1000000"}});
  if (s.ok()) impl_->bulk_families.insert(column_family);
  return FromRocks(s, impl_->dir);
}

Status EventStore::FinishBulkRows(const std::string& column_family, bool compact) {
  rocksdb::ColumnFamilyHandle* cf = impl_->Family(column_family);
  {
    std::lock_guard<std::mutex> lock(impl_->write_mu);
    if (cf == nullptr || impl_->bulk_families.count(column_family) == 0) return Status::OK();
  }
  rocksdb::Status s;
  if (compact) {
    // One merge of every run into the bottom level, each row written once.
    rocksdb::CompactRangeOptions co;
    co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForceOptimized;
    co.exclusive_manual_compaction = false;
    s = impl_->db->CompactRange(co, cf, nullptr, nullptr);
  }
  // Back to the options the family was opened with.
  const rocksdb::ColumnFamilyOptions defaults;
  rocksdb::Status r = impl_->db->SetOptions(
      cf, {{"disable_auto_compactions", "false"},
           {"level0_slowdown_writes_trigger",
            std::to_string(defaults.level0_slowdown_writes_trigger)},
           {"level0_stop_writes_trigger", std::to_string(defaults.level0_stop_writes_trigger)}});
  {
    std::lock_guard<std::mutex> lock(impl_->write_mu);
    impl_->bulk_families.erase(column_family);
  }
  if (s.ok()) s = r;
  return FromRocks(s, impl_->dir);
}

}  // namespace modelreg
