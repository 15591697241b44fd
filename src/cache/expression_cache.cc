#include "cache/expression_cache.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "cache/entry_file.h"
#include "cache/key_lock.h"

namespace modelreg::cache {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kEntrySuffix = ".entry";
constexpr std::string_view kTmpPrefix = ".tmp-";
constexpr std::string_view kLockSuffix = ".lock";

bool IsHexHash(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// "<hash>.entry" -> hash; "" for any other name.
std::string EntryHashOf(const std::string& name) {
  if (name.size() != 64 + kEntrySuffix.size() || !name.ends_with(kEntrySuffix)) return "";
  std::string h = name.substr(0, 64);
  return IsHexHash(h) ? h : "";
}

// ".tmp-<hash>-<pid>-<n>" -> hash; "" for any other name.
std::string TmpHashOf(const std::string& name) {
  if (!name.starts_with(kTmpPrefix) || name.size() < kTmpPrefix.size() + 65) return "";
  std::string h = name.substr(kTmpPrefix.size(), 64);
  return IsHexHash(h) && name[kTmpPrefix.size() + 64] == '-' ? h : "";
}

// The factor directories under entries/ (names that pass validation only).
std::vector<std::string> FactorDirs(const fs::path& entries) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(entries, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (it->is_directory(ec) && ValidateFactorName(name).ok()) out.push_back(name);
  }
  return out;
}

std::vector<std::string> FileNames(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec)) out.push_back(it->path().filename().string());
  }
  return out;
}

std::uint64_t FileSize(const fs::path& p) {
  std::error_code ec;
  const auto n = fs::file_size(p, ec);
  return ec ? 0 : n;
}

Status NeedCacheDir(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return Status::NotFound("no cache directory at " + dir);
  return Status::OK();
}

// Header-level checks that tie an entry to its place: the file name is
// the hash of the key inside, the directory its factor.
bool InPlace(const EntryHeader& h, const std::string& factor, const std::string& hash) {
  return h.parts.factor_name == factor && KeyHash(h.key) == hash;
}

std::atomic<std::uint64_t> g_tmp_counter{0};

Status EnsureDir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return Status::IOError("cannot create cache directory " + dir.string() + ": " + ec.message());
  return Status::OK();
}

}  // namespace

DiskExpressionCache::DiskExpressionCache(CacheOptions options) : options_(std::move(options)) {}

DiskExpressionCache::DiskExpressionCache(std::string dir, TimeNs ttl, const Clock* clock)
    : DiskExpressionCache(CacheOptions{std::move(dir), ttl, clock}) {}

std::string DiskExpressionCache::EntryDir(const std::string& factor) const {
  return (fs::path(options_.dir) / "entries" / factor).string();
}

std::string DiskExpressionCache::EntryPath(const std::string& factor,
                                           const std::string& hash) const {
  return EntryDir(factor) + "/" + hash + std::string(kEntrySuffix);
}

std::string DiskExpressionCache::LockPath(const std::string& hash) const {
  return (fs::path(options_.dir) / "locks" / (hash + std::string(kLockSuffix))).string();
}

bool DiskExpressionCache::Expired(TimeNs created_at) const {
  // Served while now < created + ttl; expired from that instant on.
  return options_.clock->NowNs() - created_at >= options_.ttl;
}

Status DiskExpressionCache::Store(const CacheKey& key, const std::string& encoded,
                                  const std::string& hash, std::string_view value) {
  if (value.size() > options_.max_value_bytes) {
    return Status::InvalidArgument("value of " + std::to_string(value.size()) +
                                   " bytes is above the cache's limit of " +
                                   std::to_string(options_.max_value_bytes));
  }
  const std::string dir = EntryDir(key.factor_name);
  MODELREG_RETURN_IF_ERROR(EnsureDir(dir));
  const std::string tmp = dir + "/" + std::string(kTmpPrefix) + hash + "-" +
                          std::to_string(::getpid()) + "-" + std::to_string(g_tmp_counter++);
  return WriteEntry(tmp, EntryPath(key.factor_name, hash),
                    HeaderJson(key, encoded, options_.clock->NowNs()), value);
}

Result<Lookup> DiskExpressionCache::GetOrCompute(
    const std::string& factor_name, const std::string& as_of_date, const std::string& snapshot_id,
    const VersionMap& version_ids, const std::string& config_hash, const ComputeFn& compute) {
  return GetOrCompute(CacheKey{factor_name, as_of_date, version_ids, snapshot_id, config_hash},
                      compute);
}

Result<Lookup> DiskExpressionCache::GetOrCompute(const CacheKey& key, const ComputeFn& compute) {
  auto encoded = EncodeKey(key);
  if (!encoded) return Err(encoded.error());
  const std::string hash = KeyHash(*encoded);
  const std::string path = EntryPath(key.factor_name, hash);
  Lookup out;
  auto fresh = [&](const Result<Entry>& e) {
    return e && e->header.key == *encoded && !Expired(e->header.created_at_ns);
  };

  // A hit needs no lock: entries are only ever renamed into place whole.
  if (auto e = ReadEntry(path, options_.max_value_bytes); fresh(e)) {
    ++hits_;
    out.value = std::move(e->value);
    out.was_cached = true;
    return out;
  }

  Status dir_st = EnsureDir(fs::path(options_.dir) / "locks");
  auto lock = dir_st.ok() ? KeyLock::Acquire(LockPath(hash)) : Err(dir_st);
  if (lock) {
    // Whoever held the lock before us may have stored it.
    auto e = ReadEntry(path, options_.max_value_bytes);
    if (fresh(e)) {
      ++hits_;
      out.value = std::move(e->value);
      out.was_cached = true;
      return out;
    }
    const bool corrupt =
        (!e && e.error().code() == Code::kCorruption) || (e && e->header.key != *encoded);
    if (corrupt && ::unlink(path.c_str()) == 0) {
      ++corrupt_dropped_;
      out.dropped_corrupt = true;
    }
  }
  ++misses_;
  auto value = compute();
  if (!value) return Err(value.error());
  out.value = std::move(*value);
  if (!lock) {
    // Cannot even create a lock file: the directory is not writable.
    out.store_status = lock.error().WithContext("not cached");
  } else {
    Status st = Store(key, *encoded, hash, out.value);
    out.store_status = st.ok() ? st : st.WithContext("not cached");
  }
  if (!out.store_status.ok()) ++store_failures_;
  return out;
}

Result<std::string> DiskExpressionCache::Get(const CacheKey& key) {
  auto encoded = EncodeKey(key);
  if (!encoded) return Err(encoded.error());
  const std::string hash = KeyHash(*encoded);
  const std::string path = EntryPath(key.factor_name, hash);
  auto e = ReadEntry(path, options_.max_value_bytes);
  if (e && e->header.key == *encoded) {
    if (Expired(e->header.created_at_ns)) {
      ++misses_;
      return Err(Status::NotFound("cache entry for " + *encoded + " expired at " +
                                  FormatUtc(e->header.created_at_ns + options_.ttl)));
    }
    ++hits_;
    return std::move(e->value);
  }
  ++misses_;
  if (!e && e.error().code() != Code::kCorruption) return Err(e.error());
  // Corrupt (or another key's entry): drop it unless someone holds the key
  // (a holder is about to replace it anyway).
  Status why = e ? Status::Corruption("cache entry " + path + " holds another key") : e.error();
  if (auto lock = KeyLock::TryAcquire(LockPath(hash), /*create=*/true); lock) {
    auto again = ReadEntry(path, options_.max_value_bytes);
    const bool still_bad = (!again && again.error().code() == Code::kCorruption) ||
                           (again && again->header.key != *encoded);
    if (still_bad && ::unlink(path.c_str()) == 0) {
      ++corrupt_dropped_;
      return Err(why.WithContext("dropped"));
    }
  }
  return Err(why);
}

Status DiskExpressionCache::Put(const CacheKey& key, std::string_view value) {
  auto encoded = EncodeKey(key);
  if (!encoded) return encoded.error();
  const std::string hash = KeyHash(*encoded);
  MODELREG_RETURN_IF_ERROR(EnsureDir(fs::path(options_.dir) / "locks"));
  auto lock = KeyLock::Acquire(LockPath(hash));
  if (!lock) return lock.error();
  return Store(key, *encoded, hash, value);
}

Result<PurgeResult> DiskExpressionCache::InvalidateFactor(const std::string& factor_name) {
  PurgeFilter f;
  f.factor = factor_name;
  return Purge(f);
}

Result<PurgeResult> DiskExpressionCache::InvalidateDataset(const std::string& name,
                                                           const std::string& version) {
  PurgeFilter f;
  f.dataset = std::make_pair(name, version);
  return Purge(f);
}

Result<PurgeResult> DiskExpressionCache::Purge(const PurgeFilter& filter) {
  if (filter.factor) MODELREG_RETURN_IF_ERROR(ValidateFactorName(*filter.factor));
  if (filter.dataset) {
    MODELREG_RETURN_IF_ERROR(ValidateDataset(filter.dataset->first, filter.dataset->second));
  }
  MODELREG_RETURN_IF_ERROR(NeedCacheDir(options_.dir));
  const fs::path entries = fs::path(options_.dir) / "entries";
  std::vector<std::string> factors;
  if (filter.factor) {
    factors.push_back(*filter.factor);
  } else {
    factors = FactorDirs(entries);
  }
  PurgeResult out;
  for (const std::string& factor : factors) {
    for (const std::string& name : FileNames(entries / factor)) {
      const std::string hash = EntryHashOf(name);
      if (hash.empty()) continue;
      const fs::path p = entries / factor / name;
      if (filter.dataset) {
        auto h = ReadEntryHeader(p.string(), options_.max_value_bytes);
        if (!h) {
          if (h.error().code() != Code::kNotFound) ++out.unreadable;
          continue;
        }
        auto it = h->parts.dataset_versions.find(filter.dataset->first);
        if (it == h->parts.dataset_versions.end() || it->second != filter.dataset->second) {
          continue;
        }
      }
      const std::uint64_t size = FileSize(p);
      if (::unlink(p.c_str()) == 0) {
        ++out.removed;
        out.bytes += size;
      } else if (errno != ENOENT) {
        return Err(Status::IOError("cannot remove " + p.string() + ": " + std::strerror(errno)));
      }
    }
  }
  return out;
}

Result<CacheStats> DiskExpressionCache::Stats() const {
  MODELREG_RETURN_IF_ERROR(NeedCacheDir(options_.dir));
  CacheStats s;
  const fs::path entries = fs::path(options_.dir) / "entries";
  for (const std::string& factor : FactorDirs(entries)) {
    FactorStats& f = s.factors[factor];
    for (const std::string& name : FileNames(entries / factor)) {
      if (!TmpHashOf(name).empty()) {
        ++s.temp_files;
        continue;
      }
      const std::string hash = EntryHashOf(name);
      if (hash.empty()) continue;
      const fs::path p = entries / factor / name;
      const std::uint64_t size = FileSize(p);
      auto h = ReadEntryHeader(p.string(), options_.max_value_bytes);
      if (!h && h.error().code() == Code::kNotFound) continue;  // removed meanwhile
      ++f.entries;
      f.bytes += size;
      if (!h || !InPlace(*h, factor, hash)) {
        ++s.corrupt;
      } else if (Expired(h->created_at_ns)) {
        ++f.expired;
      }
    }
    s.entries += f.entries;
    s.bytes += f.bytes;
    s.expired += f.expired;
  }
  for (const std::string& name : FileNames(fs::path(options_.dir) / "locks")) {
    if (name.ends_with(kLockSuffix)) ++s.lock_files;
  }
  s.hits = hits_.load();
  s.misses = misses_.load();
  s.store_failures = store_failures_.load();
  s.corrupt_dropped = corrupt_dropped_.load();
  return s;
}

Result<GcResult> DiskExpressionCache::Gc(bool verify_checksums) {
  MODELREG_RETURN_IF_ERROR(NeedCacheDir(options_.dir));
  const fs::path locks = fs::path(options_.dir) / "locks";
  MODELREG_RETURN_IF_ERROR(EnsureDir(locks));
  GcResult out;
  // Why an entry should go, or "" to keep it.
  auto verdict = [&](const fs::path& p, const std::string& factor,
                     const std::string& hash) -> std::string {
    Result<EntryHeader> h = Err(Status::NotFound(""));
    if (verify_checksums) {
      auto e = ReadEntry(p.string(), options_.max_value_bytes);
      h = e ? Result<EntryHeader>(std::move(e->header)) : Err(e.error());
    } else {
      h = ReadEntryHeader(p.string(), options_.max_value_bytes);
    }
    if (!h) return h.error().code() == Code::kCorruption ? "corrupt" : "";
    if (!InPlace(*h, factor, hash)) return "corrupt";
    return Expired(h->created_at_ns) ? "expired" : "";
  };
  const fs::path entries = fs::path(options_.dir) / "entries";
  for (const std::string& factor : FactorDirs(entries)) {
    for (const std::string& name : FileNames(entries / factor)) {
      const fs::path p = entries / factor / name;
      if (const std::string hash = TmpHashOf(name); !hash.empty()) {
        // Every writer holds its key's lock while its temporary file exists.
        auto lock = KeyLock::TryAcquire(LockPath(hash), /*create=*/true);
        if (!lock) {
          ++out.busy_skipped;
          continue;
        }
        const std::uint64_t size = FileSize(p);
        if (::unlink(p.c_str()) == 0) {
          ++out.temp_removed;
          out.bytes += size;
        }
        continue;
      }
      const std::string hash = EntryHashOf(name);
      if (hash.empty() || verdict(p, factor, hash).empty()) continue;
      // Decide again under the key's lock: a writer may have just replaced it.
      auto lock = KeyLock::TryAcquire(LockPath(hash), /*create=*/true);
      if (!lock) {
        ++out.busy_skipped;
        continue;
      }
      const std::string why = verdict(p, factor, hash);
      const std::uint64_t size = FileSize(p);
      if (why.empty() || ::unlink(p.c_str()) != 0) continue;
      ++(why == "expired" ? out.expired_removed : out.corrupt_removed);
      out.bytes += size;
    }
  }
  // Lock files left by killed holders (a live holder keeps its own).
  for (const std::string& name : FileNames(locks)) {
    if (!name.ends_with(kLockSuffix)) continue;
    auto lock = KeyLock::TryAcquire((locks / name).string(), /*create=*/false);
    if (lock) {
      lock->reset();  // unlinks, then releases
      ++out.locks_removed;
    } else if (lock.error().code() == Code::kBusy) {
      ++out.busy_skipped;
    }
  }
  return out;
}

}  // namespace modelreg::cache
