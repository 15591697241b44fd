// Copies of the log out of and into a registry: export, backup, a prefix
// for materialize, an import. The only places besides the registry's own
// commands and the query layer that touch the EventStore.
#include <filesystem>
#include <ostream>

#include <nlohmann/json.hpp>

#include "artifacts/artifact_store.h"
#include "note/key_file.h"
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

Result<Registry::BackupSummary> Registry::BackupNow(const CheckpointSigner& sign) {
  namespace fs = std::filesystem;
  if (read_only_) return Err(Status::FailedPrecondition("registry is open read-only"));
  // Loaded before the gate: a registry that has not loaded its state
  // appends acknowledgements under mu_ without the gate (commands.cc), and
  // never once it is loaded.
  MODELREG_RETURN_IF_ERROR(Load());
  const fs::path backups = fs::path(root_) / "backups";
  std::error_code ec;
  fs::create_directories(backups / "db", ec);
  if (ec) return Err(Status::IOError("cannot create " + (backups / "db").string() + ": " + ec.message()));
  std::unique_lock<std::shared_mutex> no_appends(append_gate_);
  // Every append that got in before the gate is applied to the state once
  // durable; wait for the state to reach the head.
  const Seq head_seq = store_->head().seq;
  {
    std::unique_lock<std::mutex> lock(mu_);
    state_cv_.wait_for(lock, std::chrono::seconds(30), [&] { return state_.seq >= head_seq; });
  }
  BackupSummary out;
  Status linked;
  Digest digest{};
  Read([&](const State& s) {
    out.head_seq = s.seq;
    digest = projection::StateDigest(s);
    for (const auto& [type, ts] : s.types) {
      for (const auto& [version, rec] : ts.versions) {
        ++out.versions;
        if (linked.ok() && !rec.purged) {
          linked = artifacts::LinkDirectory((fs::path(root_) / "artifacts" / type / version).string(),
                                            (backups / "artifacts" / type / version).string(),
                                            &out.artifact_files_linked);
        }
      }
    }
  });
  MODELREG_RETURN_IF_ERROR(linked);
  const Head head = store_->head();
  if (head.seq != out.head_seq) {
    return Err(Status::Internal("backup: the state is at event " + std::to_string(out.head_seq) +
                                " but the log at " + std::to_string(head.seq)));
  }
  out.created_at = FormatUtc(clock_->NowNs());
  out.head_hash = ToHex(head.hash);
  out.state_digest = ToHex(digest);
  auto tree = store_->TreeAt(head.seq);
  if (!tree) return Err(tree.error());
  out.tree_root = ToHex(tree->root);
  if (sign) {
    auto signed_note = sign(*tree);
    if (!signed_note) return Err(signed_note.error());
    out.checkpoint = *signed_note;
    MODELREG_RETURN_IF_ERROR(
        note::AppendToWitness((backups / "checkpoints").string(), out.checkpoint));
  }
  nlohmann::json meta{{"created_at", out.created_at},
                      {"head_seq", out.head_seq},
                      {"head_hash", out.head_hash},
                      {"state_digest", out.state_digest},
                      {"versions", out.versions},
                      {"tree_root", out.tree_root}};
  if (!out.checkpoint.empty()) meta["checkpoint"] = out.checkpoint;
  auto id = store_->CreateBackup((backups / "db").string(), meta.dump());
  if (!id) return Err(id.error());
  out.id = *id;
  out.directory = backups.string();
  return out;
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
