#include "app/new_directory.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "common/fs.h"
#include "common/random_id.h"

namespace modelreg::app {

namespace fs = std::filesystem;

namespace {

// A new empty directory named `prefix` + random hex (mode 0777 less the
// umask, like any directory the user creates).
Result<fs::path> MakeUniqueDir(const std::string& prefix) {
  for (int attempt = 0; attempt < 16; ++attempt) {
    const fs::path dir = prefix + RandomHex(6);
    if (::mkdir(dir.c_str(), 0777) == 0) return dir;
    if (errno != EEXIST) {
      return Err(Status::IOError("cannot create " + dir.string() + ": " + std::strerror(errno)));
    }
  }
  return Err(Status::IOError("cannot create a new directory named " + prefix + "*"));
}

// rename(2) that never replaces `to`: AlreadyExists when it is there.
Status RenameNoReplace(const fs::path& from, const fs::path& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) {
    return Status::OK();
  }
  if (errno == EINVAL || errno == ENOSYS) {
    // A filesystem without RENAME_NOREPLACE: check, then rename (racy, but
    // rename(2) still refuses a non-empty directory).
    std::error_code ec;
    if (fs::exists(fs::symlink_status(to, ec))) errno = EEXIST;
    else if (::rename(from.c_str(), to.c_str()) == 0) return Status::OK();
  }
  if (errno == EEXIST || errno == ENOTEMPTY) {
    return Status::AlreadyExists(to.string() + " exists");
  }
  return Status::IOError("cannot rename " + from.string() + " to " + to.string() + ": " +
                         std::strerror(errno));
}

// The staging directory becomes `target`. `target` absent: one rename of
// the sibling staging directory. `target` an existing empty directory: the
// staging directory is inside it and its entries move up, registry/ last;
// the registry exists once registry/ is there.
Status Publish(const fs::path& staging, const fs::path& target, bool target_existed,
               const std::string& doing) {
  auto appeared = [&](const Status& st) {
    return st.code() == Code::kAlreadyExists
               ? Status::AlreadyExists(target.string() + " was created by someone else while " +
                                       doing + "; nothing was written there")
               : st;
  };
  if (!target_existed) {
    Status st = RenameNoReplace(staging, target);
    if (!st.ok()) return appeared(st);
    return SyncPath(ParentOf(target).string());
  }
  std::error_code ec;
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(staging, ec)) {
    names.push_back(entry.path().filename().string());
  }
  if (ec) return Status::IOError("cannot read " + staging.string() + ": " + ec.message());
  std::stable_partition(names.begin(), names.end(),
                        [](const std::string& n) { return n != "registry"; });
  std::vector<std::string> moved;
  for (const std::string& n : names) {
    Status st = RenameNoReplace(staging / n, target / n);
    if (!st.ok()) {
      for (const std::string& m : moved) fs::remove_all(target / m, ec);
      return appeared(st);
    }
    moved.push_back(n);
  }
  fs::remove(staging, ec);
  return SyncPath(target.string());
}

}  // namespace

fs::path WithoutTrailingSlash(const std::string& path) {
  fs::path p(path);
  while (!p.has_filename() && p.has_relative_path()) p = p.parent_path();
  return p;
}

Status CheckNewDirectory(const std::string& target, const std::string& hint) {
  std::error_code ec;
  const fs::path t = WithoutTrailingSlash(target);
  if (t.empty()) return Status::InvalidArgument("the target directory is empty: " + hint);
  if (fs::exists(fs::symlink_status(t, ec)) &&
      (!fs::is_directory(t, ec) || !fs::is_empty(t, ec))) {
    return Status::AlreadyExists(target + " exists and is not an empty directory; " + hint);
  }
  return Status::OK();
}

Status CreateAtomically(const std::string& target_name, const std::string& hint,
                        const std::string& doing,
                        const std::function<Status(const std::string& staging)>& build) {
  MODELREG_RETURN_IF_ERROR(CheckNewDirectory(target_name, hint));
  std::error_code ec;
  const fs::path target = WithoutTrailingSlash(target_name);
  const bool exists = fs::is_directory(target, ec);
  if (!exists) MODELREG_RETURN_IF_ERROR(CreateDirectoriesSynced(ParentOf(target).string()));
  // Hidden and recognisable: "<target>.importing-<hex>" beside it, or
  // "<target>/.importing-<hex>" inside an existing empty directory.
  const std::string tag = "." + doing + "-";
  auto staging = MakeUniqueDir(exists ? (target / tag).string() : target.string() + tag);
  if (!staging) return staging.error();
  Status st = build(staging->string());
  if (st.ok()) st = SyncTree(staging->string());
  if (st.ok()) st = Publish(*staging, target, exists, doing);
  if (!st.ok()) fs::remove_all(*staging, ec);
  return st;
}

}  // namespace modelreg::app
