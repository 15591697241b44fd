#include "log/backup.h"

#include <filesystem>
#include <memory>

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

}  // namespace modelreg
