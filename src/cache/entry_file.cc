#include "cache/entry_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/bytes.h"
#include "common/fd.h"
#include "common/json_input.h"
#include "common/sha256.h"

namespace modelreg::cache {

namespace {

using nlohmann::json;



// Reads exactly n bytes at `offset`; false on a short read or error.
bool PreadAll(int fd, char* buf, std::size_t n, std::uint64_t offset) {
  while (n > 0) {
    const ssize_t got = ::pread(fd, buf, n, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    buf += got;
    n -= static_cast<std::size_t>(got);
    offset += static_cast<std::uint64_t>(got);
  }
  return true;
}

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t put = ::write(fd, data.data(), data.size());
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(put));
  }
  return true;
}

std::uint32_t GetBe32(std::string_view in) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = v << 8 | static_cast<std::uint8_t>(in[i]);
  return v;
}

Status Corrupt(const std::string& path, const std::string& why) {
  return Status::Corruption("cache entry " + path + ": " + why);
}

const std::string* StringField(const json& j, const char* name) {
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get_ptr<const std::string*>() : nullptr;
}

// Parses the prefix and header of an open entry.
Result<EntryHeader> ParseHeader(int fd, const std::string& path, std::uint64_t max_value_bytes,
                                std::string* prefix_and_header) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Err(Status::IOError(ErrnoMessage("cannot stat", path)));
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size < kPrefixBytes + kDigestBytes)
    return Err(Corrupt(path, "truncated (" + std::to_string(size) + " bytes)"));
  std::string prefix(kPrefixBytes, '\0');
  if (!PreadAll(fd, prefix.data(), kPrefixBytes, 0)) {
    return Err(Status::IOError(ErrnoMessage("cannot read", path)));
  }
  if (std::string_view(prefix).substr(0, 8) != kEntryMagic) return Err(Corrupt(path, "bad magic"));
  const std::uint32_t h = GetBe32(std::string_view(prefix).substr(8));
  const std::uint64_t v = GetBe64(std::string_view(prefix).substr(12));
  // Both lengths are bounded before anything is allocated from them, and
  // must add up to the file's size exactly.
  if (h == 0 || h > kMaxHeaderBytes)
    return Err(Corrupt(path, "header length " + std::to_string(h) + " out of range"));
  if (v > max_value_bytes)
    return Err(Corrupt(path, "value length " + std::to_string(v) + " above the limit"));
  const std::uint64_t expect = kPrefixBytes + h + v + kDigestBytes;
  if (expect != size) {
    return Err(Corrupt(path, "size " + std::to_string(size) + " does not match its lengths (" +
                                 std::to_string(expect) + "): torn or truncated"));
  }
  std::string header(h, '\0');
  if (!PreadAll(fd, header.data(), h, kPrefixBytes)) {
    return Err(Status::IOError(ErrnoMessage("cannot read", path)));
  }
  const json j = ParseJsonOrDiscarded(header);
  if (!j.is_object()) return Err(Corrupt(path, "header is not a JSON object"));
  EntryHeader out;
  const std::string* key = StringField(j, "key");
  const std::string* factor = StringField(j, "factor_name");
  const std::string* date = StringField(j, "as_of_date");
  const std::string* snap = StringField(j, "snapshot_id");
  const std::string* cfg = StringField(j, "config_hash");
  auto ds = j.find("dataset_versions");
  auto created = j.find("created_at_ns");
  auto format = j.find("format");
  if (key == nullptr || factor == nullptr || date == nullptr || snap == nullptr || cfg == nullptr ||
      ds == j.end() || !ds->is_object() || created == j.end() || !created->is_number_integer() ||
      format == j.end() || !format->is_number_integer()) {
    return Err(Corrupt(path, "header lacks a field or has one of the wrong type"));
  }
  if (format->get<std::int64_t>() != kFormatVersion) {
    return Err(Corrupt(path, "unknown format " + format->dump()));
  }
  out.parts.factor_name = *factor;
  out.parts.as_of_date = *date;
  out.parts.snapshot_id = *snap;
  out.parts.config_hash = *cfg;
  for (const auto& [name, version] : ds->items()) {
    if (!version.is_string()) return Err(Corrupt(path, "dataset version is not a string"));
    out.parts.dataset_versions[name] = version.get<std::string>();
  }
  auto encoded = EncodeKey(out.parts);
  if (!encoded || *encoded != *key) return Err(Corrupt(path, "key does not match its parts"));
  out.key = *key;
  out.created_at_ns = created->get<std::int64_t>();
  out.value_bytes = v;
  out.file_bytes = size;
  if (prefix_and_header != nullptr) *prefix_and_header = prefix + header;
  return out;
}

// Opens `name` in `dir_fd` (AT_FDCWD: a path) for reading: never through a
// symbolic link (O_NOFOLLOW), never waiting on a FIFO (O_NONBLOCK), and only
// a regular file.
Result<int> OpenForRead(int dir_fd, const std::string& name, const std::string& path) {
  const int fd = ::openat(dir_fd, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT) return Err(Status::NotFound("no cache entry " + path));
    if (errno == ELOOP) {
      return Err(Status::FailedPrecondition("cache entry " + path +
                                            " is a symbolic link: not followed"));
    }
    return Err(Status::IOError(ErrnoMessage("cannot open", path)));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Err(Corrupt(path, "not a regular file"));
  }
  return fd;
}

std::string BaseName(const std::string& path) {
  return std::filesystem::path(path).filename().string();
}

std::string DirName(const std::string& path) {
  const std::string d = std::filesystem::path(path).parent_path().string();
  return d.empty() ? "." : d;
}

}  // namespace

std::string HeaderJson(const CacheKey& key, const std::string& encoded_key, TimeNs created_at) {
  json ds = json::object();
  for (const auto& [name, version] : key.dataset_versions) ds[name] = version;
  return json{{"format", kFormatVersion},
              {"key", encoded_key},
              {"factor_name", key.factor_name},
              {"as_of_date", key.as_of_date},
              {"dataset_versions", ds},
              {"snapshot_id", key.snapshot_id},
              {"config_hash", key.config_hash},
              {"created_at_ns", created_at},
              {"created_at", FormatUtc(created_at)}}
      .dump();
}

Result<EntryHeader> ReadEntryHeader(const std::string& path, std::uint64_t max_value_bytes) {
  return ReadEntryHeaderAt(AT_FDCWD, path, path, max_value_bytes);
}

Result<Entry> ReadEntry(const std::string& path, std::uint64_t max_value_bytes) {
  return ReadEntryAt(AT_FDCWD, path, path, max_value_bytes);
}

Result<EntryHeader> ReadEntryHeaderAt(int dir_fd, const std::string& name, const std::string& path,
                                      std::uint64_t max_value_bytes) {
  auto fd = OpenForRead(dir_fd, name, path);
  if (!fd) return Err(fd.error());
  UniqueFd f(*fd);
  return ParseHeader(f.get(), path, max_value_bytes, nullptr);
}

Result<Entry> ReadEntryAt(int dir_fd, const std::string& name, const std::string& path,
                          std::uint64_t max_value_bytes) {
  auto fd = OpenForRead(dir_fd, name, path);
  if (!fd) return Err(fd.error());
  UniqueFd f(*fd);
  std::string head;
  auto header = ParseHeader(f.get(), path, max_value_bytes, &head);
  if (!header) return Err(header.error());
  Entry e;
  e.header = std::move(*header);
  // Bounded: V fits the file, which is below max_value_bytes + 64 KiB.
  e.value.resize(e.header.value_bytes);
  char digest[kDigestBytes];
  if (!PreadAll(f.get(), e.value.data(), e.value.size(), head.size()) ||
      !PreadAll(f.get(), digest, kDigestBytes, head.size() + e.value.size())) {
    return Err(Status::IOError(ErrnoMessage("cannot read", path)));
  }
  Sha256 h;
  h.Update(head);
  h.Update(e.value);
  const Digest d = h.Finish();
  if (std::memcmp(d.data(), digest, kDigestBytes) != 0) {
    return Err(Corrupt(path, "checksum mismatch (altered)"));
  }
  return e;
}

Status WriteEntry(const std::string& tmp_path, const std::string& path, std::string_view header,
                  std::string_view value) {
  const std::string dir = DirName(path);
  UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd.get() < 0) return Status::IOError(ErrnoMessage("cannot open", dir));
  return WriteEntryAt(dfd.get(), BaseName(tmp_path), BaseName(path), dir, header, value);
}

Status WriteEntryAt(int dir_fd, const std::string& tmp_name, const std::string& name,
                    const std::string& dir_path, std::string_view header, std::string_view value) {
  if (header.size() > kMaxHeaderBytes)
    return Status::InvalidArgument("cache entry header too large");
  std::string head(kEntryMagic);
  const auto h = static_cast<std::uint32_t>(header.size());
  for (int shift = 24; shift >= 0; shift -= 8)
    head.push_back(static_cast<char>((h >> shift) & 0xff));
  PutBe64(head, value.size());
  head.append(header);
  Sha256 sha;
  sha.Update(head);
  sha.Update(value);
  const Digest d = sha.Finish();

  const std::string tmp_path = dir_path + "/" + tmp_name;
  UniqueFd fd(::openat(dir_fd, tmp_name.c_str(),
                       O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (fd.get() < 0) return Status::IOError(ErrnoMessage("cannot create", tmp_path));
  auto fail = [&](const std::string& what) {
    Status st = Status::IOError(ErrnoMessage(what, tmp_path));
    ::unlinkat(dir_fd, tmp_name.c_str(), 0);
    return st;
  };
  if (!WriteAll(fd.get(), head) || !WriteAll(fd.get(), value) ||
      !WriteAll(fd.get(), std::string_view(reinterpret_cast<const char*>(d.data()), d.size()))) {
    return fail("cannot write");
  }
  if (::fsync(fd.get()) != 0) return fail("cannot fsync");
  if (fd.Close() != 0) return fail("cannot close");
  // renameat replaces whatever is at `name` (a symbolic link included)
  // without following it.
  if (::renameat(dir_fd, tmp_name.c_str(), dir_fd, name.c_str()) != 0) {
    return fail("cannot rename into place");
  }
  // The entry is in place; a failed directory sync only weakens durability
  // across a power loss, and a lost entry is recomputed. Still reported.
  if (::fsync(dir_fd) != 0) return Status::IOError(ErrnoMessage("cannot fsync directory", dir_path));
  return Status::OK();
}

}  // namespace modelreg::cache
