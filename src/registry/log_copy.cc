// Copies of the log out of and into a registry: export, backup, a prefix
// for materialize, an import. The only places besides the registry's own
// commands and the query layer that touch the EventStore.
#include <ostream>

#include "portable/export_format.h"
#include "registry/registry.h"

namespace modelreg::registry {

Status Registry::ExportLog(std::ostream& out,
                           const std::function<void(Seq done, Seq total)>& progress) const {
  return portable::ExportLog(*store_, out, progress);
}

Result<std::uint32_t> Registry::CreateBackup(const std::string& backup_dir,
                                             const std::string& app_metadata) const {
  return store_->CreateBackup(backup_dir, app_metadata);
}

Status Registry::CopyLogPrefix(Seq upto, const std::string& log_dir) const {
  auto dst = EventStore::Open(log_dir);
  if (!dst) return dst.error();
  Seq next = 1;
  return (*dst)->AppendVerbatim([&]() -> Result<std::optional<std::string>> {
    if (next > upto) return std::optional<std::string>();
    auto e = store_->Get(next++);
    if (!e) return Err(e.error());
    return std::optional<std::string>(std::string(e->bytes()));
  });
}

Status Registry::ImportLog(const std::string& export_file, const std::string& log_dir, Seq total,
                           const std::function<void(Seq done, Seq total)>& progress) {
  auto store = EventStore::Open(log_dir);
  if (!store) return store.error();
  return portable::ImportInto(export_file, **store, total, progress);
}

}  // namespace modelreg::registry
