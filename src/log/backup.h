// Reading and restoring RocksDB BackupEngine backups of a registry log
// (EventStore::CreateBackup writes them), and making a directory tree that
// a command built (a restore, an import, a materialized copy) durable.
// Thread-safety: free functions.
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

// fsyncs one file or directory. IOError names the path.
Status SyncPath(const std::string& path);
// Creates `dir` and its missing parents (like create_directories), then
// fsyncs each directory that gained an entry, so the new directories
// survive a crash. Nothing to do when `dir` exists.
Status CreateDirectoriesSynced(const std::string& dir);
// fsyncs every regular file and directory under `dir` (children before the
// directory holding them), then `dir` itself; symlinks are not followed.
// Not the directory holding `dir`: sync that after publishing `dir`
// (rename) or creating it.
Status SyncTree(const std::string& dir);

}  // namespace modelreg
