#include "artifacts/tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <sstream>

#include "common/fd.h"
#include "common/utf8.h"

namespace modelreg::artifacts {

namespace {

Status Refuse(const std::string& what) {
  return Status::InvalidArgument("cannot register a directory artifact: " + what);
}

std::string StripTrailingSlashes(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

std::string KindOf(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device file";
  return "not a regular file or directory";
}

// The names in an open directory (without "." and ".."), sorted: the walk
// order, and so the order errors are met in, does not depend on readdir.
Result<std::vector<std::string>> ListNames(int dir_fd, const std::string& shown) {
  const int fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Err(Status::IOError(ErrnoMessage("cannot open", shown)));
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    const Status st = Status::IOError(ErrnoMessage("cannot list", shown));
    ::close(fd);
    return Err(st);
  }
  std::vector<std::string> names;
  errno = 0;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
    errno = 0;
  }
  const int read_errno = errno;
  ::closedir(d);
  if (read_errno != 0) {
    errno = read_errno;
    return Err(Status::IOError(ErrnoMessage("cannot list", shown)));
  }
  std::sort(names.begin(), names.end());
  return names;
}

class Walker {
 public:
  Walker(std::string shown_root, std::string dest_root)
      : shown_root_(std::move(shown_root)), dest_root_(std::move(dest_root)) {}

  // Walks the open directory `src` (relative path `rel`, "" for the root),
  // copying into the open directory `dst` unless it is -1.
  Status Dir(int src, int dst, const std::string& rel, int depth) {
    auto names = ListNames(src, Shown(rel));
    if (!names) return names.error();
    for (const std::string& name : *names) {
      const std::string rp = rel.empty() ? name : rel + "/" + name;
      if (Status st = ValidateNameComponent(name, "the name"); !st.ok()) {
        return Refuse(SanitizeUtf8(Shown(rp)) + ": " + st.message() +
                      " (names in a directory artifact must be UTF-8 without control "
                      "characters)");
      }
      if (rp.size() > kMaxTreePathBytes) {
        return Refuse(Shown(rp) + ": the path inside the directory is over " +
                      std::to_string(kMaxTreePathBytes) + " bytes");
      }
      struct stat st {};
      if (::fstatat(src, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        return Status::IOError(ErrnoMessage("cannot read", Shown(rp)));
      }
      if (S_ISLNK(st.st_mode)) {
        return Refuse(Shown(rp) +
                      " is a symbolic link; directory artifacts may not contain symlinks "
                      "(copy the file it points to into the directory instead)");
      }
      if (S_ISDIR(st.st_mode)) {
        MODELREG_RETURN_IF_ERROR(Subdir(src, dst, name, rp, depth + 1));
      } else if (S_ISREG(st.st_mode)) {
        MODELREG_RETURN_IF_ERROR(File(src, dst, name, rp));
      } else {
        return Refuse(Shown(rp) + " is " + KindOf(st.st_mode) +
                      "; a directory artifact may hold only regular files and directories");
      }
    }
    if (dst >= 0 && ::fsync(dst) != 0) return ErrnoStatus("cannot fsync", Dest(rel));
    return Status::OK();
  }

  Result<Tree> Finish() {
    if (files_.empty()) {
      return Err(Refuse(shown_root_ + " contains no files; there is nothing to register"));
    }
    Tree t;
    t.files = std::move(files_);
    std::sort(t.files.begin(), t.files.end(),
              [](const TreeFile& a, const TreeFile& b) { return a.path < b.path; });
    for (const TreeFile& f : t.files) t.total_size += f.hash.size;
    t.digest = TreeDigest(t.files);
    return t;
  }

 private:
  std::string Shown(const std::string& rel) const {
    return rel.empty() ? shown_root_ : shown_root_ + "/" + rel;
  }
  std::string Dest(const std::string& rel) const {
    return rel.empty() ? dest_root_ : dest_root_ + "/" + rel;
  }

  Status Subdir(int src, int dst, const std::string& name, const std::string& rp, int depth) {
    if (depth > kMaxTreeDepth) {
      return Refuse(Shown(rp) + " is nested deeper than " + std::to_string(kMaxTreeDepth) +
                    " directories");
    }
    // O_NOFOLLOW: a symlink swapped in since fstatat is refused, not followed.
    UniqueFd in(::openat(src, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (in.get() < 0) {
      if (errno == ELOOP || errno == ENOTDIR) {
        return Refuse(Shown(rp) + " changed into something else while it was read");
      }
      return Status::IOError(ErrnoMessage("cannot open", Shown(rp)));
    }
    if (dst >= 0 && ::mkdirat(dst, name.c_str(), 0755) != 0) {
      return ErrnoStatus("cannot create", Dest(rp));
    }
    UniqueFd out(dst < 0 ? -1
                         : ::openat(dst, name.c_str(),
                                    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (dst >= 0 && out.get() < 0) return ErrnoStatus("cannot open", Dest(rp));
    return Dir(in.get(), out.get(), rp, depth);
  }

  Status File(int src, int dst, const std::string& name, const std::string& rp) {
    if (files_.size() >= kMaxTreeFiles) {
      return Refuse(shown_root_ + " holds more than " + std::to_string(kMaxTreeFiles) +
                    " files");
    }
    // O_NONBLOCK: a FIFO swapped in since fstatat must not block the open.
    UniqueFd in(::openat(src, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    struct stat st {};
    if (in.get() < 0 || ::fstat(in.get(), &st) != 0) {
      if (errno == ELOOP) return Refuse(Shown(rp) + " changed into a symlink while it was read");
      return Status::IOError(ErrnoMessage("cannot read", Shown(rp)));
    }
    if (!S_ISREG(st.st_mode)) {
      return Refuse(Shown(rp) + " changed into " + KindOf(st.st_mode) + " while it was read");
    }
    UniqueFd out(dst < 0 ? -1
                         : ::openat(dst, name.c_str(),
                                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0444));
    if (dst >= 0 && out.get() < 0) return ErrnoStatus("cannot create", Dest(rp));
    auto hash = CopyAndHash(in.get(), out.get(), Shown(rp), Dest(rp));
    if (!hash) return hash.error();
    files_.push_back({rp, *hash});
    return Status::OK();
  }

  std::string shown_root_;
  std::string dest_root_;
  std::vector<TreeFile> files_;
};

// The root's descriptor (owned by the caller).
Result<int> OpenRoot(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      return Err(Status::NotFound("artifact directory " + dir + " does not exist"));
    }
    if (errno == ENOTDIR) return Err(Status::InvalidArgument(dir + " is not a directory"));
    return Err(Status::IOError(ErrnoMessage("cannot open", dir)));
  }
  return fd;
}

}  // namespace

Digest TreeDigest(std::vector<TreeFile> files) {
  // std::string's operator< compares as unsigned char: byte order.
  std::sort(files.begin(), files.end(),
            [](const TreeFile& a, const TreeFile& b) { return a.path < b.path; });
  Sha256 h;
  h.Update(std::string_view("modelreg-tree-v1\n"));
  for (const TreeFile& f : files) {
    h.Update(f.path);
    h.Update(std::string_view("\0", 1));
    h.Update(std::to_string(f.hash.size));
    h.Update(std::string_view("\0", 1));
    h.Update(ToHex(f.hash.sha256));
    h.Update(std::string_view("\n"));
  }
  return h.Finish();
}

Result<Tree> HashTree(const std::string& dir) {
  const std::string shown = StripTrailingSlashes(dir);
  auto opened = OpenRoot(shown);
  if (!opened) return Err(opened.error());
  UniqueFd root(*opened);
  Walker w(shown, "");
  MODELREG_RETURN_IF_ERROR(w.Dir(root.get(), -1, "", 0));
  return w.Finish();
}

Result<Tree> CopyTree(const std::string& dir, const std::string& dest) {
  const std::string shown = StripTrailingSlashes(dir);
  auto opened = OpenRoot(shown);
  if (!opened) return Err(opened.error());
  UniqueFd root(*opened);
  if (::mkdir(dest.c_str(), 0755) != 0) return Err(ErrnoStatus("cannot create", dest));
  UniqueFd out(::open(dest.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (out.get() < 0) return Err(ErrnoStatus("cannot open", dest));
  Walker w(shown, dest);
  MODELREG_RETURN_IF_ERROR(w.Dir(root.get(), out.get(), "", 0));
  return w.Finish();
}

std::string ChecksumLines(const std::string& name, const Tree& tree) {
  std::string out;
  for (const TreeFile& f : tree.files) {
    out += ToHex(f.hash.sha256) + "  " + name + "/" + f.path + "\n";
  }
  return out;
}

std::string DescribeTreeChanges(const std::string& checksum_text, const std::string& name,
                                const Tree& observed, std::size_t max_items) {
  std::map<std::string, std::string> listed;  // relative path -> hex
  std::istringstream in(checksum_text);
  const std::string prefix = name + "/";
  for (std::string line; std::getline(in, line);) {
    if (line.size() < 66 || line[64] != ' ' || (line[65] != ' ' && line[65] != '*')) continue;
    const std::string path = line.substr(66);
    if (path.rfind(prefix, 0) == 0) listed[path.substr(prefix.size())] = line.substr(0, 64);
  }
  std::vector<std::string> changes;
  for (const TreeFile& f : observed.files) {
    const auto it = listed.find(f.path);
    if (it == listed.end()) {
      changes.push_back("added " + prefix + f.path);
    } else {
      if (it->second != ToHex(f.hash.sha256)) changes.push_back("changed " + prefix + f.path);
      listed.erase(it);
    }
  }
  for (const auto& [path, hex] : listed) changes.push_back("missing " + prefix + path);
  std::sort(changes.begin(), changes.end());
  std::string out;
  for (std::size_t i = 0; i < changes.size() && i < max_items; ++i) {
    out += (out.empty() ? "" : "; ") + changes[i];
  }
  if (changes.size() > max_items) {
    out += " and " + std::to_string(changes.size() - max_items) + " more";
  }
  return out;
}

Result<ArtifactHash> HashArtifact(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    auto tree = HashTree(path);
    if (!tree) return Err(tree.error());
    return ArtifactHash{true, tree->total_size, tree->files.size(), tree->digest};
  }
  auto file = HashFile(path);
  if (!file) return Err(file.error());
  return ArtifactHash{false, file->size, 1, file->sha256};
}

}  // namespace modelreg::artifacts
