// One cache entry file: a fixed prefix, a JSON header, the value and a
// SHA-256 of everything before it (byte layout in docs/cache.md):
//
//   0       8  magic "MRXCACH1"
//   8       4  H = header length, unsigned big-endian (<= kMaxHeaderBytes)
//   12      8  V = value length, unsigned big-endian
//   20      H  header: UTF-8 JSON object (key, its parts, created_at_ns)
//   20+H    V  value bytes, opaque
//   20+H+V 32  SHA-256 of bytes [0, 20+H+V)
//
// The file size must be exactly 52+H+V: a torn or truncated file fails
// that check before anything is allocated, and any altered byte fails the
// checksum. Thread-safety: plain functions; files are written to a
// temporary name, fsynced and renamed, so a reader sees a whole file or none.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "cache/key.h"
#include "common/clock.h"
#include "common/status.h"

namespace modelreg::cache {

inline constexpr std::string_view kEntryMagic = "MRXCACH1";
inline constexpr std::size_t kPrefixBytes = 20;
inline constexpr std::size_t kDigestBytes = 32;
inline constexpr std::uint32_t kMaxHeaderBytes = 64 * 1024;
inline constexpr int kFormatVersion = 1;

struct EntryHeader {
  std::string key;  // the encoded key, readable
  CacheKey parts;
  TimeNs created_at_ns = 0;
  std::uint64_t value_bytes = 0;  // V, from the prefix
  std::uint64_t file_bytes = 0;   // 52 + H + V
};

struct Entry {
  EntryHeader header;
  std::string value;
};

// The header JSON for a key created at `created_at`.
std::string HeaderJson(const CacheKey& key, const std::string& encoded_key, TimeNs created_at);

// Reads and checks the prefix and header only (sizes, magic, JSON, key
// parts consistent with the key). NotFound when the file does not exist,
// Corruption when it fails a check or is not a regular file (a FIFO is
// never waited on), FailedPrecondition when it is a symbolic link (never
// followed), IOError when it cannot be read.
Result<EntryHeader> ReadEntryHeader(const std::string& path, std::uint64_t max_value_bytes);

// Reads the whole entry and verifies its checksum. Same errors.
Result<Entry> ReadEntry(const std::string& path, std::uint64_t max_value_bytes);

// The same for the file `name` in the open directory `dir_fd` (openat with
// O_NOFOLLOW: nothing outside that directory is reached). `path` names the
// file in messages only.
Result<EntryHeader> ReadEntryHeaderAt(int dir_fd, const std::string& name, const std::string& path,
                                      std::uint64_t max_value_bytes);
Result<Entry> ReadEntryAt(int dir_fd, const std::string& name, const std::string& path,
                          std::uint64_t max_value_bytes);

// Writes an entry durably: to `tmp_path` (created exclusively), fsync,
// rename to `path` (in the same directory), fsync the directory. On failure
// the temporary file is removed and IOError says why (ENOSPC, EACCES, ...).
Status WriteEntry(const std::string& tmp_path, const std::string& path, std::string_view header,
                  std::string_view value);

// The same inside the open directory `dir_fd` (what the cache uses): the
// temporary file is created with O_EXCL | O_NOFOLLOW and renamed with
// renameat, so a symbolic link in the directory is never written through
// (a link at `name` is replaced, its target untouched). `dir_path` names
// the directory in messages only.
Status WriteEntryAt(int dir_fd, const std::string& tmp_name, const std::string& name,
                    const std::string& dir_path, std::string_view header, std::string_view value);

}  // namespace modelreg::cache
