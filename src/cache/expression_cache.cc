#include "cache/expression_cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
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

// ---- walking the cache without following symbolic links ----
//
// Every directory below the cache directory is opened with openat(...,
// O_DIRECTORY | O_NOFOLLOW) relative to its parent's descriptor, and every
// file in it is read, created, renamed and removed relative to that
// descriptor (openat with O_NOFOLLOW, renameat, unlinkat). So no path is
// resolved through a symbolic link inside the cache, even one swapped in
// while an operation runs; a link is reported and left alone.

// A directory descriptor owned by one scope (movable).
class DirFd {
 public:
  DirFd() = default;
  explicit DirFd(int fd) : fd_(fd) {}
  ~DirFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  DirFd(DirFd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  DirFd& operator=(DirFd&& o) noexcept {
    if (this != &o) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = o.fd_;
      o.fd_ = -1;
    }
    return *this;
  }
  DirFd(const DirFd&) = delete;
  DirFd& operator=(const DirFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_ = -1;
};

enum class Kind { kRegular, kDirectory, kSymlink, kOther };

struct Listed {
  std::string name;
  Kind kind;
  std::uint64_t size;
};

// The names in the open directory, with what each is (lstat-style), sorted.
std::vector<Listed> List(int dir_fd) {
  std::vector<Listed> out;
  const int fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return out;
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    ::close(fd);
    return out;
  }
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    struct stat st {};
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // gone
    const Kind kind = S_ISLNK(st.st_mode)   ? Kind::kSymlink
                      : S_ISDIR(st.st_mode) ? Kind::kDirectory
                      : S_ISREG(st.st_mode) ? Kind::kRegular
                                            : Kind::kOther;
    out.push_back({name, kind, static_cast<std::uint64_t>(st.st_size)});
  }
  ::closedir(d);
  std::sort(out.begin(), out.end(),
            [](const Listed& a, const Listed& b) { return a.name < b.name; });
  return out;
}

std::uint64_t SizeAt(int dir_fd, const std::string& name) {
  struct stat st {};
  return ::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0
             ? static_cast<std::uint64_t>(st.st_size)
             : 0;
}

bool IsSymlinkAt(int dir_fd, const std::string& name) {
  struct stat st {};
  return ::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
}

// Is this the "is a symbolic link" error of OpenDirAt / the entry and lock
// readers?
bool IsSymlinkError(const Status& st) { return st.code() == Code::kFailedPrecondition; }

// Opens the directory `name` in `parent` without following a symbolic link.
// NotFound when absent, FailedPrecondition when it is a link (or not a
// directory), IOError otherwise. `path` is for messages.
Result<DirFd> OpenDirAt(int parent, const std::string& name, const std::string& path) {
  const int fd = ::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) return DirFd(fd);
  const int e = errno;
  if (e == ENOENT) return Err(Status::NotFound("no directory " + path));
  if (e == ELOOP || (e == ENOTDIR && IsSymlinkAt(parent, name))) {
    return Err(Status::FailedPrecondition(
        path + " is a symbolic link; links inside a cache are never followed (remove it)"));
  }
  if (e == ENOTDIR) return Err(Status::FailedPrecondition(path + " is not a directory"));
  return Err(Status::IOError("cannot open " + path + ": " + std::strerror(e)));
}

// OpenDirAt, creating the directory first if it is missing.
Result<DirFd> MakeDirAt(int parent, const std::string& name, const std::string& path) {
  if (::mkdirat(parent, name.c_str(), 0755) != 0 && errno != EEXIST) {
    return Err(
        Status::IOError("cannot create cache directory " + path + ": " + std::strerror(errno)));
  }
  return OpenDirAt(parent, name, path);
}

// The cache directory itself (named by the user, so a link to it is fine).
Result<DirFd> OpenRoot(const std::string& dir, bool create) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    if (!create) return Err(Status::NotFound("no cache directory at " + dir));
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) {
      return Err(Status::IOError("cannot create cache directory " + dir + ": " + ec.message()));
    }
    fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  }
  if (fd < 0) {
    return Err(Status::IOError("cannot open cache directory " + dir + ": " + std::strerror(errno)));
  }
  return DirFd(fd);
}

// For the walks of Stats, Gc and Purge: the subdirectory `name` of `parent`
// (relative path `rel`), or nothing when it is absent, not a directory or a
// symbolic link — a link is added to `skipped`.
std::optional<DirFd> WalkInto(int parent, const std::string& name, const std::string& rel,
                              std::vector<std::string>& skipped) {
  auto d = OpenDirAt(parent, name, rel);
  if (d) return std::move(*d);
  if (IsSymlinkAt(parent, name)) skipped.push_back(rel);
  return std::nullopt;
}

// Header-level checks that tie an entry to its place: the file name is
// the hash of the key inside, the directory its factor.
bool InPlace(const EntryHeader& h, const std::string& factor, const std::string& hash) {
  return h.parts.factor_name == factor && KeyHash(h.key) == hash;
}

std::atomic<std::uint64_t> g_tmp_counter{0};

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

DiskExpressionCache::Age DiskExpressionCache::AgeOf(TimeNs created_at) const {
  // In unsigned arithmetic: a forged creation time anywhere in the 64-bit
  // range never overflows.
  const TimeNs now = options_.clock->NowNs();
  if (created_at > now) {
    const auto ahead = static_cast<std::uint64_t>(created_at) - static_cast<std::uint64_t>(now);
    return ahead > static_cast<std::uint64_t>(std::max<TimeNs>(0, options_.future_tolerance))
               ? Age::kFuture
               : Age::kFresh;
  }
  // Served while now < created + ttl; expired from that instant on.
  const auto age = static_cast<std::uint64_t>(now) - static_cast<std::uint64_t>(created_at);
  return age >= static_cast<std::uint64_t>(std::max<TimeNs>(0, options_.ttl)) ? Age::kExpired
                                                                              : Age::kFresh;
}

Status DiskExpressionCache::Store(const CacheKey& key, const std::string& encoded,
                                  const std::string& hash, std::string_view value) {
  if (value.size() > options_.max_value_bytes) {
    return Status::InvalidArgument("value of " + std::to_string(value.size()) +
                                   " bytes is above the cache's limit of " +
                                   std::to_string(options_.max_value_bytes));
  }
  auto root = OpenRoot(options_.dir, /*create=*/true);
  if (!root) return root.error();
  auto entries = MakeDirAt(root->get(), "entries", options_.dir + "/entries");
  if (!entries) return entries.error();
  const std::string dir = EntryDir(key.factor_name);
  auto factor = MakeDirAt(entries->get(), key.factor_name, dir);
  if (!factor) return factor.error();
  const std::string tmp = std::string(kTmpPrefix) + hash + "-" + std::to_string(::getpid()) + "-" +
                          std::to_string(g_tmp_counter++);
  return WriteEntryAt(factor->get(), tmp, hash + std::string(kEntrySuffix), dir,
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
  const std::string name = hash + std::string(kEntrySuffix);
  const std::string path = EntryPath(key.factor_name, hash);
  // The factor's directory, opened without following links; the entry is
  // read relative to it.
  auto factor_dir = [&]() -> Result<DirFd> {
    auto root = OpenRoot(options_.dir, /*create=*/false);
    if (!root) return Err(root.error());
    auto entries = OpenDirAt(root->get(), "entries", options_.dir + "/entries");
    if (!entries) return Err(entries.error());
    return OpenDirAt(entries->get(), key.factor_name, EntryDir(key.factor_name));
  };
  auto read = [&](const Result<DirFd>& dir) -> Result<Entry> {
    if (!dir) return Err(dir.error());
    return ReadEntryAt(dir->get(), name, path, options_.max_value_bytes);
  };
  Lookup out;
  auto fresh = [&](const Result<Entry>& e) {
    return e && e->header.key == *encoded && AgeOf(e->header.created_at_ns) == Age::kFresh;
  };

  // A hit needs no lock: entries are only ever renamed into place whole.
  if (auto e = read(factor_dir()); fresh(e)) {
    ++hits_;
    out.value = std::move(e->value);
    out.was_cached = true;
    return out;
  }

  auto root = OpenRoot(options_.dir, /*create=*/true);
  Result<DirFd> locks = root ? MakeDirAt(root->get(), "locks", options_.dir + "/locks")
                             : Result<DirFd>(Err(root.error()));
  auto lock = locks ? KeyLock::Acquire(locks->get(), hash + std::string(kLockSuffix),
                                       LockPath(hash))
                    : Err(locks.error());
  if (lock) {
    // Whoever held the lock before us may have stored it.
    Result<DirFd> dir = factor_dir();
    auto e = read(dir);
    if (fresh(e)) {
      ++hits_;
      out.value = std::move(e->value);
      out.was_cached = true;
      return out;
    }
    const bool corrupt = (!e && e.error().code() == Code::kCorruption) ||
                         (e && (e->header.key != *encoded ||
                                AgeOf(e->header.created_at_ns) == Age::kFuture));
    if (corrupt && dir && ::unlinkat(dir->get(), name.c_str(), 0) == 0) {
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
  const std::string name = hash + std::string(kEntrySuffix);
  const std::string path = EntryPath(key.factor_name, hash);
  auto root = OpenRoot(options_.dir, /*create=*/false);
  if (!root) {
    ++misses_;
    return Err(root.error().code() == Code::kNotFound
                   ? Status::NotFound("no cache entry " + path)
                   : root.error());
  }
  auto entries = OpenDirAt(root->get(), "entries", options_.dir + "/entries");
  auto dir = entries ? OpenDirAt(entries->get(), key.factor_name, EntryDir(key.factor_name))
                     : Result<DirFd>(Err(entries.error()));
  if (!dir) {
    ++misses_;
    return Err(dir.error().code() == Code::kNotFound ? Status::NotFound("no cache entry " + path)
                                                     : dir.error());
  }
  auto e = ReadEntryAt(dir->get(), name, path, options_.max_value_bytes);
  Status why;
  if (e && e->header.key == *encoded) {
    switch (AgeOf(e->header.created_at_ns)) {
      case Age::kFresh:
        ++hits_;
        return std::move(e->value);
      case Age::kExpired:
        ++misses_;
        return Err(Status::NotFound("cache entry for " + *encoded + " expired at " +
                                    FormatUtc(e->header.created_at_ns + options_.ttl)));
      case Age::kFuture:
        why = Status::Corruption("cache entry " + path + " was created at " +
                                 FormatUtc(e->header.created_at_ns) +
                                 ", in the future (now is " +
                                 FormatUtc(options_.clock->NowNs()) +
                                 "): the clock was stepped back or the header forged");
        break;
    }
  }
  ++misses_;
  if (!e && e.error().code() != Code::kCorruption) return Err(e.error());
  // Corrupt (another key's entry, or dated in the future): drop it unless
  // someone holds the key (a holder is about to replace it anyway).
  if (why.ok()) {
    why = e ? Status::Corruption("cache entry " + path + " holds another key") : e.error();
  }
  auto locks = MakeDirAt(root->get(), "locks", options_.dir + "/locks");
  if (!locks) return Err(why);
  if (auto lock = KeyLock::TryAcquire(locks->get(), hash + std::string(kLockSuffix),
                                      LockPath(hash), /*create=*/true);
      lock) {
    auto again = ReadEntryAt(dir->get(), name, path, options_.max_value_bytes);
    const bool still_bad = (!again && again.error().code() == Code::kCorruption) ||
                           (again && (again->header.key != *encoded ||
                                      AgeOf(again->header.created_at_ns) == Age::kFuture));
    if (still_bad && ::unlinkat(dir->get(), name.c_str(), 0) == 0) {
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
  auto root = OpenRoot(options_.dir, /*create=*/true);
  if (!root) return root.error();
  auto locks = MakeDirAt(root->get(), "locks", options_.dir + "/locks");
  if (!locks) return locks.error();
  auto lock = KeyLock::Acquire(locks->get(), hash + std::string(kLockSuffix), LockPath(hash));
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
  auto root = OpenRoot(options_.dir, /*create=*/false);
  if (!root) return Err(root.error());
  PurgeResult out;
  auto entries = WalkInto(root->get(), "entries", "entries", out.skipped_symlinks);
  if (!entries) return out;
  std::vector<std::string> factors;
  if (filter.factor) {
    factors.push_back(*filter.factor);
  } else {
    for (const Listed& f : List(entries->get())) {
      if (f.kind == Kind::kDirectory && ValidateFactorName(f.name).ok()) {
        factors.push_back(f.name);
      } else if (f.kind == Kind::kSymlink) {
        out.skipped_symlinks.push_back("entries/" + f.name);
      }
    }
  }
  for (const std::string& factor : factors) {
    const std::string rel = "entries/" + factor;
    auto dir = WalkInto(entries->get(), factor, rel, out.skipped_symlinks);
    if (!dir) continue;
    for (const Listed& f : List(dir->get())) {
      if (f.kind == Kind::kSymlink) {
        out.skipped_symlinks.push_back(rel + "/" + f.name);
        continue;
      }
      const std::string hash = EntryHashOf(f.name);
      if (hash.empty() || f.kind != Kind::kRegular) continue;
      const std::string p = EntryDir(factor) + "/" + f.name;
      if (filter.dataset) {
        auto h = ReadEntryHeaderAt(dir->get(), f.name, p, options_.max_value_bytes);
        if (!h) {
          if (h.error().code() != Code::kNotFound) ++out.unreadable;
          continue;
        }
        auto it = h->parts.dataset_versions.find(filter.dataset->first);
        if (it == h->parts.dataset_versions.end() || it->second != filter.dataset->second) {
          continue;
        }
      }
      const std::uint64_t size = SizeAt(dir->get(), f.name);
      if (::unlinkat(dir->get(), f.name.c_str(), 0) == 0) {
        ++out.removed;
        out.bytes += size;
      } else if (errno != ENOENT) {
        return Err(Status::IOError("cannot remove " + p + ": " + std::strerror(errno)));
      }
    }
  }
  return out;
}

Result<CacheStats> DiskExpressionCache::Stats() const {
  auto root = OpenRoot(options_.dir, /*create=*/false);
  if (!root) return Err(root.error());
  CacheStats s;
  if (auto entries = WalkInto(root->get(), "entries", "entries", s.skipped_symlinks)) {
    for (const Listed& f : List(entries->get())) {
      if (f.kind == Kind::kSymlink) {
        s.skipped_symlinks.push_back("entries/" + f.name);
        continue;
      }
      if (f.kind != Kind::kDirectory || !ValidateFactorName(f.name).ok()) continue;
      const std::string factor = f.name;
      const std::string rel = "entries/" + factor;
      auto dir = WalkInto(entries->get(), factor, rel, s.skipped_symlinks);
      if (!dir) continue;
      FactorStats& per = s.factors[factor];
      for (const Listed& x : List(dir->get())) {
        if (x.kind == Kind::kSymlink) {
          s.skipped_symlinks.push_back(rel + "/" + x.name);
          continue;
        }
        if (x.kind != Kind::kRegular) continue;
        if (!TmpHashOf(x.name).empty()) {
          ++s.temp_files;
          continue;
        }
        const std::string hash = EntryHashOf(x.name);
        if (hash.empty()) continue;
        auto h = ReadEntryHeaderAt(dir->get(), x.name, EntryDir(factor) + "/" + x.name,
                                   options_.max_value_bytes);
        if (!h && h.error().code() == Code::kNotFound) continue;  // removed meanwhile
        ++per.entries;
        per.bytes += x.size;
        if (!h || !InPlace(*h, factor, hash)) {
          ++s.corrupt;
        } else if (const Age age = AgeOf(h->created_at_ns); age == Age::kFuture) {
          ++s.corrupt;
        } else if (age == Age::kExpired) {
          ++per.expired;
        }
      }
      s.entries += per.entries;
      s.bytes += per.bytes;
      s.expired += per.expired;
    }
  }
  if (auto locks = WalkInto(root->get(), "locks", "locks", s.skipped_symlinks)) {
    for (const Listed& f : List(locks->get())) {
      if (f.kind == Kind::kSymlink) {
        s.skipped_symlinks.push_back("locks/" + f.name);
      } else if (f.kind == Kind::kRegular && f.name.ends_with(kLockSuffix)) {
        ++s.lock_files;
      }
    }
  }
  s.hits = hits_.load();
  s.misses = misses_.load();
  s.store_failures = store_failures_.load();
  s.corrupt_dropped = corrupt_dropped_.load();
  return s;
}

Result<GcResult> DiskExpressionCache::Gc(bool verify_checksums) {
  auto root = OpenRoot(options_.dir, /*create=*/false);
  if (!root) return Err(root.error());
  GcResult out;
  // The locks directory: created if missing (gc takes keys' locks), but
  // never through a link.
  std::optional<DirFd> locks;
  if (auto l = MakeDirAt(root->get(), "locks", options_.dir + "/locks"); l) {
    locks = std::move(*l);
  } else if (IsSymlinkError(l.error()) && IsSymlinkAt(root->get(), "locks")) {
    out.skipped_symlinks.push_back("locks");
  } else {
    return Err(l.error());
  }
  // The key's lock, without waiting (nullptr when busy or impossible).
  auto try_lock = [&](const std::string& hash) -> std::unique_ptr<KeyLock> {
    if (!locks) return nullptr;
    auto lock = KeyLock::TryAcquire(locks->get(), hash + std::string(kLockSuffix), LockPath(hash),
                                    /*create=*/true);
    return lock ? std::move(*lock) : nullptr;
  };
  // Why an entry should go, or "" to keep it.
  auto verdict = [&](int dir_fd, const std::string& name, const std::string& p,
                     const std::string& factor, const std::string& hash) -> std::string {
    Result<EntryHeader> h = Err(Status::NotFound(""));
    if (verify_checksums) {
      auto e = ReadEntryAt(dir_fd, name, p, options_.max_value_bytes);
      h = e ? Result<EntryHeader>(std::move(e->header)) : Err(e.error());
    } else {
      h = ReadEntryHeaderAt(dir_fd, name, p, options_.max_value_bytes);
    }
    if (!h) return h.error().code() == Code::kCorruption ? "corrupt" : "";
    if (!InPlace(*h, factor, hash)) return "corrupt";
    switch (AgeOf(h->created_at_ns)) {
      case Age::kFuture:
        return "corrupt";
      case Age::kExpired:
        return "expired";
      case Age::kFresh:
        break;
    }
    return "";
  };
  if (auto entries = WalkInto(root->get(), "entries", "entries", out.skipped_symlinks)) {
    for (const Listed& f : List(entries->get())) {
      if (f.kind == Kind::kSymlink) {
        out.skipped_symlinks.push_back("entries/" + f.name);
        continue;
      }
      if (f.kind != Kind::kDirectory || !ValidateFactorName(f.name).ok()) continue;
      const std::string factor = f.name;
      const std::string rel = "entries/" + factor;
      auto dir = WalkInto(entries->get(), factor, rel, out.skipped_symlinks);
      if (!dir) continue;
      for (const Listed& x : List(dir->get())) {
        if (x.kind == Kind::kSymlink) {
          out.skipped_symlinks.push_back(rel + "/" + x.name);
          continue;
        }
        if (x.kind != Kind::kRegular) continue;
        const std::string p = EntryDir(factor) + "/" + x.name;
        if (const std::string hash = TmpHashOf(x.name); !hash.empty()) {
          // Every writer holds its key's lock while its temporary file exists.
          auto lock = try_lock(hash);
          if (!lock) {
            ++out.busy_skipped;
            continue;
          }
          const std::uint64_t size = SizeAt(dir->get(), x.name);
          if (::unlinkat(dir->get(), x.name.c_str(), 0) == 0) {
            ++out.temp_removed;
            out.bytes += size;
          }
          continue;
        }
        const std::string hash = EntryHashOf(x.name);
        if (hash.empty() || verdict(dir->get(), x.name, p, factor, hash).empty()) continue;
        // Decide again under the key's lock: a writer may have just replaced it.
        auto lock = try_lock(hash);
        if (!lock) {
          ++out.busy_skipped;
          continue;
        }
        const std::string why = verdict(dir->get(), x.name, p, factor, hash);
        const std::uint64_t size = SizeAt(dir->get(), x.name);
        if (why.empty() || ::unlinkat(dir->get(), x.name.c_str(), 0) != 0) continue;
        ++(why == "expired" ? out.expired_removed : out.corrupt_removed);
        out.bytes += size;
      }
    }
  }
  // Lock files left by killed holders (a live holder keeps its own).
  if (locks) {
    for (const Listed& f : List(locks->get())) {
      if (f.kind == Kind::kSymlink) {
        out.skipped_symlinks.push_back("locks/" + f.name);
        continue;
      }
      if (f.kind != Kind::kRegular || !f.name.ends_with(kLockSuffix)) continue;
      auto lock = KeyLock::TryAcquire(locks->get(), f.name, options_.dir + "/locks/" + f.name,
                                      /*create=*/false);
      if (lock) {
        lock->reset();  // unlinks, then releases
        ++out.locks_removed;
      } else if (lock.error().code() == Code::kBusy) {
        ++out.busy_skipped;
      }
    }
  }
  return out;
}

}  // namespace modelreg::cache
