#include "common/fs.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>
#include <vector>

#include "common/fd.h"

namespace modelreg {

namespace fs = std::filesystem;

Status ErrorCodeStatus(const std::string& message, const std::error_code& ec) {
  std::string m = message + ": " + ec.message();
  if (ec.category() == std::generic_category() || ec.category() == std::system_category()) {
    if (ec.value() == ENOSPC || ec.value() == EDQUOT) return Status::DiskFull(std::move(m));
  }
  return Status::IOError(std::move(m));
}

Status SyncPath(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoStatus("cannot open", path);
  if (::fsync(fd.get()) != 0) return ErrnoStatus("cannot fsync", path);
  return Status::OK();
}

Status CreateDirectoriesSynced(const std::string& dir) {
  std::error_code ec;
  // The missing directories, deepest first, and the existing one above them.
  std::vector<fs::path> missing;
  fs::path p = fs::path(dir).lexically_normal();
  while (!p.empty() && !fs::exists(p, ec)) {
    missing.push_back(p);
    if (!p.has_relative_path()) break;  // a root that does not exist
    p = p.parent_path();
  }
  if (missing.empty()) return Status::OK();
  fs::create_directories(dir, ec);
  if (ec) return ErrorCodeStatus("cannot create " + dir, ec);
  // Each new directory's entry lives in the directory above it.
  if (Status st = SyncPath(p.empty() ? std::string(".") : p.string()); !st.ok()) return st;
  for (auto it = missing.rbegin(); it + 1 != missing.rend(); ++it) {
    if (Status st = SyncPath(it->string()); !st.ok()) return st;
  }
  return Status::OK();
}

Status SyncTree(const std::string& dir) {
  std::error_code ec;
  std::vector<std::pair<std::size_t, std::string>> dirs;  // (depth, path)
  fs::recursive_directory_iterator it(dir, ec), end;
  if (ec) return Status::IOError("cannot read " + dir + ": " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) return Status::IOError("cannot read " + dir + ": " + ec.message());
    const fs::file_status s = it->symlink_status(ec);
    if (ec) return Status::IOError("cannot stat " + it->path().string() + ": " + ec.message());
    if (fs::is_directory(s)) {
      dirs.emplace_back(static_cast<std::size_t>(it.depth()), it->path().string());
    } else if (fs::is_regular_file(s)) {
      if (Status st = SyncPath(it->path().string()); !st.ok()) return st;
    }
  }
  if (ec) return Status::IOError("cannot read " + dir + ": " + ec.message());
  std::stable_sort(dirs.begin(), dirs.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (const auto& [depth, path] : dirs) {
    if (Status st = SyncPath(path); !st.ok()) return st;
  }
  return SyncPath(dir);
}

fs::path ParentOf(const fs::path& p) {
  fs::path parent = p.parent_path();
  return parent.empty() ? fs::path(".") : parent;
}

}  // namespace modelreg
