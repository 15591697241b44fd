// `modelreg backup create | list | verify | restore` (docs/runbook.md):
// RocksDB BackupEngine backups of the log and projections in
// <root>/backups/db, plus the artifact files (hard links, new ones only) in
// <root>/backups/artifacts.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

#include "app/registry_commands.h"

namespace modelreg::app {

// With `checkpoint_key` (a private key file, docs/proofs.md), the backup
// also holds a signed checkpoint of its tree (local backups only; through
// a server, the server's --checkpoint-key signs).
Status RunBackupCreate(const Globals& g, std::ostream& out, const std::string& checkpoint_key = "");
// Corruption naming the backup and its meta file when the metadata `create`
// recorded is not a JSON object or has a field of the wrong type (list and
// verify); absent fields show as "?".
Status RunBackupList(const Globals& g, std::ostream& out);
// Checks the backup's files, restores it to a scratch directory, verifies
// the chain there and compares the state digest with the one recorded at
// backup time, and checks the backed-up artifacts against their checksums.
// `id` 0 means the newest backup.
Status RunBackupVerify(const Globals& g, std::uint32_t id, std::ostream& out);
// Restores backup `id` into a new registry at `dir` (absent or empty),
// fsyncing the directories it creates and everything restored into them.
// Does not read the backup's metadata. `id` 0 means the newest backup.
Status RunBackupRestore(const Globals& g, std::uint32_t id, const std::string& dir,
                        std::ostream& out);

}  // namespace modelreg::app
