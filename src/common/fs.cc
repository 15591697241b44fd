#include "common/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
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


namespace {
Status ErrnoStatus(const std::string& what) {
  const int e = errno;
  if (e == EACCES || e == EPERM) return Status::PermissionDenied(what + ": " + std::strerror(e));
  if (e == ENOENT) return Status::NotFound(what + ": " + std::strerror(e));
  return Status::IOError(what + ": " + std::strerror(e));
}
}  // namespace

Result<std::string> ReadRegularFile(const std::string& path, std::size_t limit, mode_t* mode) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return Err(ErrnoStatus("cannot open " + path));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    Status s = ErrnoStatus("cannot stat " + path);
    ::close(fd);
    return Err(s);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Err(Status::InvalidArgument(path + " is not a regular file"));
  }
  if (static_cast<std::size_t>(st.st_size) > limit) {
    ::close(fd);
    return Err(Status::InvalidArgument(path + " is larger than " + std::to_string(limit) +
                                       " bytes; it is not what was asked for"));
  }
  if (mode != nullptr) *mode = st.st_mode;
  std::string out(static_cast<std::size_t>(st.st_size), '\0');
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::read(fd, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  out.resize(done);
  return out;
}


}  // namespace modelreg
