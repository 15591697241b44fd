// Reading and restoring RocksDB BackupEngine backups of a registry log
// (EventStore::CreateBackup writes them). Making what a restore wrote
// durable is common/fs.h. Thread-safety: free functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace modelreg {

struct BackupInfo {
  std::uint32_t id = 0;
  std::int64_t created_unix_seconds = 0;
  std::uint64_t bytes = 0;
  std::uint32_t files = 0;
  std::string app_metadata;
  // The file RocksDB keeps this backup's description (app_metadata
  // included) in: <backup_dir>/meta/<id>. For messages.
  std::string meta_file;
};

// NotFound when `backup_dir` holds no backup engine.
Result<std::vector<BackupInfo>> ListBackups(const std::string& backup_dir);
// Checks every file of backup `id` against its recorded size and checksum.
Status VerifyBackup(const std::string& backup_dir, std::uint32_t id);
// Restores backup `id` into `db_dir` (which must not hold a database).
Status RestoreBackup(const std::string& backup_dir, std::uint32_t id, const std::string& db_dir);

}  // namespace modelreg
