// DiskExpressionCache: a point-in-time-safe disk cache of computed factor
// values (opaque bytes), keyed by factor, as-of date, dataset versions,
// snapshot and configuration (cache/key.h), so a value is never reused
// across any of them. docs/cache.md has the layout, locking and failure
// rules; the short version:
//
//   <dir>/entries/<factor_name>/<sha256(key)>.entry   one value (entry_file.h)
//   <dir>/entries/<factor_name>/.tmp-<sha256>-...     a write in progress
//   <dir>/locks/<sha256(key)>.lock                    the key's lock (key_lock.h)
//
// - Entries expire `ttl` after their creation time (the injected clock):
//   an entry created at C is served while now < C + ttl. An entry created
//   later than now + future_tolerance (a clock stepped back, a forged
//   header) is corrupt: never served, recomputed, removed by Gc.
// - Symbolic links inside the cache are never followed, written through
//   or removed: directories are opened with O_NOFOLLOW and walked with
//   openat/unlinkat, so entries/, locks/, a factor directory or a file that
//   is a link is skipped (and listed in skipped_symlinks) and its target
//   is left alone. Only the cache directory itself may be a link.
// - A corrupt entry (torn, truncated, altered) is detected by its sizes and
//   SHA-256, never served, dropped and recomputed.
// - GetOrCompute computes a missing key once across the threads and
//   processes that ask for it at the same time (a flock per key; a killed
//   holder's lock is released by the kernel).
// - A failing compute function caches nothing and its error is returned. A
//   cache that cannot be written (unwritable or missing directory, full
//   disk) never fails the caller: the computed value is returned with
//   was_cached = false and the reason in store_status.
//
// hits/misses are counters of this object (so, per process); they are not
// persisted. Thread-safety: every method may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cache/key.h"
#include "common/clock.h"
#include "common/status.h"

namespace modelreg::cache {

inline constexpr TimeNs kDefaultTtl = TimeNs{7} * 24 * 3600 * 1'000'000'000;
// How far in the future an entry's creation time may lie (clocks of hosts
// sharing a cache differ a little); beyond it the entry is corrupt.
inline constexpr TimeNs kFutureTolerance = TimeNs{5} * 60 * 1'000'000'000;

struct CacheOptions {
  std::string dir;
  TimeNs ttl = kDefaultTtl;
  const Clock* clock = &SystemClock::Instance();  // borrowed; outlives the cache
  // An entry created after now + future_tolerance is corrupt.
  TimeNs future_tolerance = kFutureTolerance;
  // Larger values are returned but not stored; larger files are corrupt.
  std::uint64_t max_value_bytes = std::uint64_t{1} << 30;
};

// The outcome of GetOrCompute.
struct Lookup {
  std::string value;
  // True when the value came from the cache (no computation).
  bool was_cached = false;
  // After a computation: OK when the new value was stored, otherwise why
  // it was not (the value is still correct). OK after a hit.
  Status store_status;
  // A corrupt entry for this key was found and removed on the way.
  bool dropped_corrupt = false;
};

using ComputeFn = std::function<Result<std::string>()>;

struct FactorStats {
  std::uint64_t entries = 0;
  std::uint64_t bytes = 0;
  std::uint64_t expired = 0;
};

struct CacheStats {
  // From the directory (any process's entries):
  std::uint64_t entries = 0;  // *.entry files, including expired and corrupt ones
  std::uint64_t bytes = 0;    // their sizes on disk
  std::uint64_t expired = 0;
  std::uint64_t corrupt = 0;  // header or sizes fail their checks (checksums are not read),
                              // or created in the future
  std::uint64_t temp_files = 0;
  std::uint64_t lock_files = 0;
  std::map<std::string, FactorStats> factors;
  // Symbolic links found inside the cache, relative to its directory
  // ("entries/momentum"): never followed, never counted, never removed.
  std::vector<std::string> skipped_symlinks;
  // This object's counters since it was created (per process):
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;           // computations started
  std::uint64_t store_failures = 0;   // computed values that could not be stored
  std::uint64_t corrupt_dropped = 0;  // corrupt entries found by reads and removed
};

struct PurgeFilter {
  std::optional<std::string> factor;                           // only this factor
  std::optional<std::pair<std::string, std::string>> dataset;  // only entries using NAME=VERSION
};

struct PurgeResult {
  std::uint64_t removed = 0;
  std::uint64_t bytes = 0;
  std::uint64_t unreadable = 0;  // a --dataset filter could not read their headers: left to Gc
  std::vector<std::string> skipped_symlinks;  // as in CacheStats: never followed or removed
};

struct GcResult {
  std::uint64_t expired_removed = 0;
  std::uint64_t corrupt_removed = 0;
  std::uint64_t bytes = 0;          // of removed entries and temporary files
  std::uint64_t temp_removed = 0;   // left by killed writers
  std::uint64_t locks_removed = 0;  // left by killed holders
  std::uint64_t busy_skipped = 0;   // in use by another thread or process
  std::vector<std::string> skipped_symlinks;  // as in CacheStats: never followed or removed
};

class DiskExpressionCache {
 public:
  explicit DiskExpressionCache(CacheOptions options);
  DiskExpressionCache(std::string dir, TimeNs ttl, const Clock* clock = &SystemClock::Instance());
  DiskExpressionCache(const DiskExpressionCache&) = delete;
  DiskExpressionCache& operator=(const DiskExpressionCache&) = delete;

  // The cached value of the key, or compute() once (across threads and
  // processes asking at the same time), store it and return it.
  // InvalidArgument for an invalid key (compute is not called); compute's
  // own error when it fails (nothing stored).
  Result<Lookup> GetOrCompute(const CacheKey& key, const ComputeFn& compute);
  Result<Lookup> GetOrCompute(const std::string& factor_name, const std::string& as_of_date,
                              const std::string& snapshot_id, const VersionMap& version_ids,
                              const std::string& config_hash, const ComputeFn& compute);

  // The cached value: NotFound when missing or expired, Corruption when the
  // entry failed verification or is dated in the future (it is removed
  // unless its key is locked), FailedPrecondition when a symbolic link
  // stands where the entry or its directory should be (not followed).
  Result<std::string> Get(const CacheKey& key);
  // Stores a value (waits for the key's lock). IOError when it cannot;
  // FailedPrecondition when a symbolic link stands where its directory or
  // lock file should be (never written through).
  Status Put(const CacheKey& key, std::string_view value);

  // Remove entries. An in-flight computation may still store its value
  // afterwards (docs/cache.md: keys, not invalidation, keep results apart).
  Result<PurgeResult> InvalidateFactor(const std::string& factor_name);
  Result<PurgeResult> InvalidateDataset(const std::string& name, const std::string& version);
  Result<PurgeResult> Purge(const PurgeFilter& filter);

  // NotFound when the directory does not exist.
  Result<CacheStats> Stats() const;
  // Removes expired and corrupt entries, and temporary and lock files left
  // by killed processes, never one in use. verify_checksums also reads
  // every entry in full to check its SHA-256.
  Result<GcResult> Gc(bool verify_checksums = false);

  const std::string& dir() const { return options_.dir; }
  TimeNs ttl() const { return options_.ttl; }

 private:
  std::string EntryDir(const std::string& factor) const;
  std::string EntryPath(const std::string& factor, const std::string& hash) const;
  std::string LockPath(const std::string& hash) const;
  enum class Age { kFresh, kExpired, kFuture };
  Age AgeOf(TimeNs created_at) const;
  Status Store(const CacheKey& key, const std::string& encoded, const std::string& hash,
               std::string_view value);

  CacheOptions options_;
  std::atomic<std::uint64_t> hits_{0};
  std::atomic<std::uint64_t> misses_{0};
  std::atomic<std::uint64_t> store_failures_{0};
  std::atomic<std::uint64_t> corrupt_dropped_{0};
};

}  // namespace modelreg::cache
