#include "note/key_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>

#include "common/fs.h"

namespace modelreg::note {

namespace {

constexpr std::size_t kMaxKeyFile = 4096;
constexpr std::size_t kMaxNotesFile = 64u << 20;
constexpr std::string_view kSignaturePrefix = "\xE2\x80\x94 ";

Status Errno(const std::string& what) {
  const int e = errno;
  if (e == ENOSPC || e == EDQUOT) return Status::DiskFull(what + ": " + std::strerror(e));
  if (e == EACCES || e == EPERM) return Status::PermissionDenied(what + ": " + std::strerror(e));
  if (e == ENOENT) return Status::NotFound(what + ": " + std::strerror(e));
  if (e == EEXIST) return Status::AlreadyExists(what + ": " + std::strerror(e));
  return Status::IOError(what + ": " + std::strerror(e));
}

Status WriteAll(int fd, std::string_view bytes, const std::string& path) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("cannot write " + path);
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  if (::fsync(fd) != 0) return Errno("cannot sync " + path);
  return Status::OK();
}

Status WriteNew(const std::string& path, std::string_view bytes, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return Errno("cannot create " + path);
  Status st = WriteAll(fd, bytes, path);
  ::close(fd);
  if (!st.ok()) ::unlink(path.c_str());
  return st;
}

}  // namespace

Status WriteKeyPair(const std::string& path, const SignerKey& key) {
  const std::string pub = path + ".pub";
  if (::access(pub.c_str(), F_OK) == 0) {
    return Status::AlreadyExists(pub + " already exists; not overwriting a key");
  }
  Status st = WriteNew(path, EncodeSignerKey(key) + "\n", 0600);
  if (st.code() == Code::kAlreadyExists) {
    return Status::AlreadyExists(path + " already exists; not overwriting a key");
  }
  if (!st.ok()) return st;
  st = WriteNew(pub, EncodeVerifierKey(key.verifier) + "\n", 0644);
  if (!st.ok()) ::unlink(path.c_str());
  return st;
}

Result<SignerKey> ReadSignerKeyFile(const std::string& path) {
  mode_t mode = 0;
  auto text = ReadRegularFile(path, kMaxKeyFile, &mode);
  if (!text) return Err(text.error());
  if ((mode & 077) != 0) {
    return Err(Status::PermissionDenied(
        path + " may be read by other users (mode " +
        std::to_string((mode >> 6) & 7) + std::to_string((mode >> 3) & 7) +
        std::to_string(mode & 7) + "); a signing key must be private: chmod 600 " + path));
  }
  auto key = ParseSignerKey(*text);
  if (!key) return Err(key.error().WithContext(path));
  return key;
}

Result<VerifierKey> ReadVerifierKeyFile(const std::string& path) {
  auto text = ReadRegularFile(path, kMaxKeyFile, nullptr);
  if (!text) return Err(text.error());
  if (text->rfind("PRIVATE+KEY+", 0) == 0) {
    return Err(Status::InvalidArgument(path + " is a signing (private) key; give its .pub file"));
  }
  auto key = ParseVerifierKey(*text);
  if (!key) return Err(key.error().WithContext(path));
  return key;
}

Status AppendToWitness(const std::string& path, const std::string& signed_note) {
  const int fd =
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return Errno("cannot open witness file " + path);
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::InvalidArgument("witness file " + path + " is not a regular file");
  }
  Status s = WriteAll(fd, signed_note, path);
  ::close(fd);
  return s;
}

Result<std::vector<std::string>> ReadNotes(const std::string& path) {
  auto text = ReadRegularFile(path, kMaxNotesFile, nullptr);
  if (!text) return Err(text.error());
  // A note ends with its signature lines; the next note starts at the
  // first line after them that is not one.
  std::vector<std::string> notes;
  std::string current;
  bool in_signatures = false;
  std::string_view rest = *text;
  while (!rest.empty()) {
    const auto eol = rest.find('\n');
    const std::string_view line = rest.substr(0, eol == std::string_view::npos ? rest.size() : eol + 1);
    rest.remove_prefix(line.size());
    const bool signature = line.substr(0, kSignaturePrefix.size()) == kSignaturePrefix;
    if (in_signatures && !signature) {
      notes.push_back(std::move(current));
      current.clear();
      in_signatures = false;
    }
    if (signature && current.size() >= 2 && current.ends_with("\n\n")) in_signatures = true;
    if (signature && !in_signatures) {
      return Err(Status::InvalidArgument(path + ": a signature line without a blank line before it"));
    }
    current += line;
  }
  if (in_signatures) notes.push_back(std::move(current));
  if (!current.empty() && !in_signatures) {
    return Err(Status::InvalidArgument(path + ": ends with text that is not a signed note"));
  }
  if (notes.empty()) return Err(Status::InvalidArgument(path + " holds no signed note"));
  return notes;
}

}  // namespace modelreg::note
