#include "log/backup.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <utility>

#include <rocksdb/env.h>
#include <rocksdb/utilities/backup_engine.h>

namespace modelreg {

namespace {

Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::OK();
  if (s.IsNotFound()) return Status::NotFound(what + ": " + s.ToString());
  if (s.IsCorruption()) return Status::Corruption(what + ": " + s.ToString());
  if (s.IsInvalidArgument()) return Status::InvalidArgument(what + ": " + s.ToString());
  return Status::IOError(what + ": " + s.ToString());
}

Result<std::unique_ptr<rocksdb::BackupEngineReadOnly>> OpenReadOnly(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(std::filesystem::path(dir) / "meta", ec)) {
    return Err(Status::NotFound("no backups in " + dir));
  }
  rocksdb::BackupEngineReadOnly* raw = nullptr;
  rocksdb::IOStatus s = rocksdb::BackupEngineReadOnly::Open(rocksdb::BackupEngineOptions(dir),
                                                            rocksdb::Env::Default(), &raw);
  if (!s.ok()) return Err(FromRocks(s, "backups in " + dir));
  return std::unique_ptr<rocksdb::BackupEngineReadOnly>(raw);
}

}  // namespace

Result<std::vector<BackupInfo>> ListBackups(const std::string& backup_dir) {
  auto engine = OpenReadOnly(backup_dir);
  if (!engine) return Err(engine.error());
  std::vector<rocksdb::BackupInfo> infos;
  (*engine)->GetBackupInfo(&infos, /*include_file_details=*/false);
  std::vector<BackupInfo> out;
  for (const auto& i : infos) {
    out.push_back({i.backup_id, i.timestamp, i.size, i.number_files, i.app_metadata,
                   (std::filesystem::path(backup_dir) / "meta" / std::to_string(i.backup_id))
                       .string()});
  }
  return out;
}

Status VerifyBackup(const std::string& backup_dir, std::uint32_t id) {
  auto engine = OpenReadOnly(backup_dir);
  if (!engine) return engine.error();
  return FromRocks((*engine)->VerifyBackup(id, /*verify_with_checksum=*/true),
                   "backup " + std::to_string(id));
}

Status RestoreBackup(const std::string& backup_dir, std::uint32_t id, const std::string& db_dir) {
  auto engine = OpenReadOnly(backup_dir);
  if (!engine) return engine.error();
  return FromRocks((*engine)->RestoreDBFromBackup(id, db_dir, db_dir),
                   "restoring backup " + std::to_string(id));
}

Status SyncPath(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IOError("cannot open " + path + ": " + std::strerror(errno));
  Status st;
  if (::fsync(fd) != 0) st = Status::IOError("cannot fsync " + path + ": " + std::strerror(errno));
  ::close(fd);
  return st;
}

Status CreateDirectoriesSynced(const std::string& dir) {
  namespace fs = std::filesystem;
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
  if (ec) return Status::IOError("cannot create " + dir + ": " + ec.message());
  // Each new directory's entry lives in the directory above it.
  if (Status st = SyncPath(p.empty() ? std::string(".") : p.string()); !st.ok()) return st;
  for (auto it = missing.rbegin(); it + 1 != missing.rend(); ++it) {
    if (Status st = SyncPath(it->string()); !st.ok()) return st;
  }
  return Status::OK();
}

Status SyncTree(const std::string& dir) {
  namespace fs = std::filesystem;
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

}  // namespace modelreg
