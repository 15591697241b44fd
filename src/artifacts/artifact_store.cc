#include "artifacts/artifact_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <vector>

#include "common/fd.h"
#include "common/fs.h"
#include "common/random_id.h"
#include "common/utf8.h"
#include "artifacts/tree.h"

namespace modelreg::artifacts {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kChunk = 1 << 20;

// A read buffer of kChunk bytes, not zero-filled: a small artifact touches
// only the pages it uses (a zeroed 1 MiB vector cost ~60 µs per call).
std::unique_ptr<char[]> ChunkBuffer() { return std::unique_ptr<char[]>(new char[kChunk]); }

Status WriteAll(int fd, const char* data, std::size_t n, const std::string& path) {
  while (n > 0) {
    const ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("cannot write", path);
    }
    data += w;
    n -= static_cast<std::size_t>(w);
  }
  return Status::OK();
}

Result<int> OpenForReading(const std::string& path) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
  // writer forever; anything but a regular file is refused below, and for
  // a regular file the flag changes nothing.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT) return Err(Status::NotFound("artifact file " + path + " does not exist"));
    return Err(Status::InvalidArgument(ErrnoMessage("cannot read artifact file", path)));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Err(Status::InvalidArgument("artifact " + path + " is not a regular file"));
  }
  return fd;
}

}  // namespace

Result<FileHash> CopyAndHash(int in, int out, const std::string& in_path,
                             const std::string& out_path) {
  Sha256 h;
  FileHash hash;
  std::unique_ptr<char[]> buf = ChunkBuffer();
  for (;;) {
    const ssize_t n = ::read(in, buf.get(), kChunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Err(Status::IOError(ErrnoMessage("cannot read", in_path)));
    }
    if (n == 0) break;
    h.Update(std::string_view(buf.get(), static_cast<std::size_t>(n)));
    if (out >= 0) {
      MODELREG_RETURN_IF_ERROR(WriteAll(out, buf.get(), static_cast<std::size_t>(n), out_path));
    }
    hash.size += static_cast<std::uint64_t>(n);
  }
  hash.sha256 = h.Finish();
  if (out >= 0 && ::fsync(out) != 0) return Err(ErrnoStatus("cannot fsync", out_path));
  return hash;
}

Result<FileHash> HashFile(const std::string& path) {
  auto opened = OpenForReading(path);
  if (!opened) return Err(opened.error());
  UniqueFd fd(*opened);
  return CopyAndHash(fd.get(), -1, path, "");
}

Status ValidateNameComponent(const std::string& name, const std::string& what) {
  if (name.empty() || name == "." || name == "..") {
    return Status::InvalidArgument(what + " '" + name + "' is not a file name");
  }
  if (name.size() > 255) return Status::InvalidArgument(what + " is over 255 bytes");
  if (!IsValidUtf8(name)) {
    return Status::InvalidArgument(what + " '" + SanitizeUtf8(name) +
                                   "' is not valid UTF-8; rename the file");
  }
  for (unsigned char c : name) {
    if (c == '/' || c < 0x20 || c == 0x7f) {
      return Status::InvalidArgument(what + " '" + SanitizeUtf8(name) +
                                     "' contains '/' or a control character");
    }
  }
  return Status::OK();
}

Status ValidateFileName(const std::string& name) {
  MODELREG_RETURN_IF_ERROR(ValidateNameComponent(name, "artifact file name"));
  if (name == "metadata.json" || name == "checksum.sha256" || name.rfind(".staging", 0) == 0) {
    return Status::InvalidArgument("artifact file name '" + name +
                                   "' is reserved by the registry; rename the file");
  }
  return Status::OK();
}

Status WriteFileAtomic(const std::string& path, const std::string& content) {
  const fs::path target(path);
  const std::string tmp =
      (target.parent_path() / ("." + target.filename().string() + ".tmp-" + RandomHex(4)))
          .string();
  {
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (fd.get() < 0) return ErrnoStatus("cannot create", tmp);
    Status st = WriteAll(fd.get(), content.data(), content.size(), tmp);
    if (st.ok() && ::fsync(fd.get()) != 0) st = ErrnoStatus("cannot fsync", tmp);
    if (!st.ok()) {
      ::unlink(tmp.c_str());
      return st;
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return ErrnoStatus("cannot rename into", path);
  }
  return SyncPath(target.parent_path().string());
}

namespace {
Status LinkTree(const std::string& from, const std::string& to, std::size_t* linked, int depth) {
  std::error_code ec;
  fs::create_directories(to, ec);
  if (ec) return ErrorCodeStatus("cannot create " + to, ec);
  for (const auto& entry : fs::directory_iterator(from, ec)) {
    const fs::file_status st = entry.symlink_status(ec);
    if (fs::is_directory(st)) {
      // A directory artifact's subdirectories (bounded like the trees the
      // registry accepts: artifacts/tree.h).
      if (depth <= kMaxTreeDepth + 1) {
        MODELREG_RETURN_IF_ERROR(LinkTree(entry.path().string(),
                                          (fs::path(to) / entry.path().filename()).string(),
                                          linked, depth + 1));
      }
      continue;
    }
    if (!fs::is_regular_file(st)) continue;
    const fs::path target = fs::path(to) / entry.path().filename();
    if (fs::exists(target, ec)) continue;
    fs::create_hard_link(entry.path(), target, ec);
    if (ec) {
      ec.clear();
      fs::copy_file(entry.path(), target, ec);
      if (ec) return ErrorCodeStatus("cannot copy " + entry.path().string(), ec);
    }
    if (linked != nullptr) ++*linked;
  }
  return Status::OK();
}
}  // namespace

Status LinkDirectory(const std::string& from, const std::string& to, std::size_t* linked) {
  std::error_code ec;
  if (!fs::is_directory(from, ec)) return Status::OK();
  return LinkTree(from, to, linked, 0);
}

ArtifactStore::ArtifactStore(std::string root) : root_(std::move(root)) {}

std::string ArtifactStore::VersionDir(const std::string& type, const std::string& version) const {
  return (fs::path(root_) / "artifacts" / type / version).string();
}

std::string ArtifactStore::ArtifactPath(const std::string& type, const std::string& version,
                                        const std::string& file_name) const {
  // Names come from the log; a name that is not a plain file name (a log
  // not written by modelreg) must never lead outside the version directory.
  if (!ValidateFileName(file_name).ok() && file_name != "metadata.json" &&
      file_name != "checksum.sha256") {
    return (fs::path(VersionDir(type, version)) / ".invalid-artifact-name").string();
  }
  return (fs::path(VersionDir(type, version)) / file_name).string();
}

Result<ArtifactStore::Staged> ArtifactStore::Stage(const std::string& type,
                                                   const std::string& source) const {
  Staged staged;
  struct stat src_st {};
  staged.directory = ::stat(source.c_str(), &src_st) == 0 && S_ISDIR(src_st.st_mode);
  if (staged.directory) {
    // "savedmodel/", "." and "../m" name the directory itself.
    std::error_code ec;
    std::string abs = fs::absolute(source, ec).lexically_normal().string();
    while (abs.size() > 1 && abs.back() == '/') abs.pop_back();
    staged.file_name = fs::path(abs).filename().string();
  } else {
    staged.file_name = fs::path(source).filename().string();
  }
  MODELREG_RETURN_IF_ERROR(ValidateFileName(staged.file_name));
  Result<int> opened = -1;
  if (!staged.directory) {
    opened = OpenForReading(source);
    if (!opened) return Err(opened.error());
  }
  UniqueFd in(*opened);

  const fs::path type_dir = fs::path(root_) / "artifacts" / type;
  std::error_code ec;
  fs::create_directories(type_dir, ec);
  if (ec) return Err(ErrorCodeStatus("cannot create " + type_dir.string(), ec));
  // Staging directories of earlier, interrupted registrations are garbage.
  for (const auto& entry : fs::directory_iterator(type_dir, ec)) {
    if (entry.path().filename().string().rfind(".staging-", 0) == 0) {
      fs::remove_all(entry.path(), ec);
    }
  }
  staged.dir = (type_dir / (".staging-" + RandomHex(8))).string();
  if (!fs::create_directory(staged.dir, ec) || ec) {
    return Err(ErrorCodeStatus("cannot create " + staged.dir, ec));
  }
  const std::string dest = (fs::path(staged.dir) / staged.file_name).string();
  if (staged.directory) {
    auto tree = CopyTree(source, dest);
    if (!tree) {
      Discard(staged);
      return Err(tree.error());
    }
    staged.hash = FileHash{tree->total_size, tree->digest};
    staged.files = tree->files.size();
    staged.checksum_text = ChecksumLines(staged.file_name, *tree);
    return staged;
  }
  UniqueFd out(::open(dest.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444));
  if (out.get() < 0) {
    const Status st = ErrnoStatus("cannot create", dest);  // before Discard changes errno
    Discard(staged);
    return Err(st);
  }
  auto hash = CopyAndHash(in.get(), out.get(), source, dest);
  if (!hash) {
    Discard(staged);
    return Err(hash.error());
  }
  staged.hash = *hash;
  staged.checksum_text = ToHex(staged.hash.sha256) + "  " + staged.file_name + "\n";
  return staged;
}

namespace {
// A new file inside a staging directory, written and fsynced. No temporary
// name: the staging directory itself is the unit that appears atomically
// (renamed only after everything in it is durable).
Status WriteNewFile(const std::string& path, const std::string& content) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (fd.get() < 0) return ErrnoStatus("cannot create", path);
  MODELREG_RETURN_IF_ERROR(WriteAll(fd.get(), content.data(), content.size(), path));
  if (::fsync(fd.get()) != 0) return ErrnoStatus("cannot fsync", path);
  return Status::OK();
}
}  // namespace

Status ArtifactStore::Publish(const Staged& staged, const std::string& type,
                              const std::string& version, const std::string& metadata_json) const {
  MODELREG_RETURN_IF_ERROR(
      WriteNewFile((fs::path(staged.dir) / "metadata.json").string(), metadata_json));
  MODELREG_RETURN_IF_ERROR(
      WriteNewFile((fs::path(staged.dir) / "checksum.sha256").string(), staged.checksum_text));
  MODELREG_RETURN_IF_ERROR(SyncPath(staged.dir));
  const std::string final_dir = VersionDir(type, version);
  std::error_code ec;
  if (fs::exists(final_dir, ec)) {
    // An orphan from a crash between publishing and appending: no event
    // names it (the registry checked), so it is replaced.
    const std::string doomed = staged.dir + ".orphan";
    fs::rename(final_dir, doomed, ec);
    if (ec) return ErrorCodeStatus("cannot move orphan " + final_dir, ec);
    fs::remove_all(doomed, ec);
  }
  if (::rename(staged.dir.c_str(), final_dir.c_str()) != 0) {
    return ErrnoStatus("cannot publish", final_dir);
  }
  return SyncPath(fs::path(final_dir).parent_path().string());
}

void ArtifactStore::Discard(const Staged& staged) const {
  std::error_code ec;
  fs::remove_all(staged.dir, ec);
}

}  // namespace modelreg::artifacts
