#include "app/backup_commands.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>

#include <nlohmann/json.hpp>

#include "app/cli_errors.h"
#include "app/new_directory.h"
#include "app/write_target.h"
#include "artifacts/artifact_store.h"
#include "artifacts/tree.h"
#include "common/clock.h"
#include "common/json_input.h"
#include "log/backup.h"
#include "query/query.h"
#include "query/render.h"
#include "note/key_file.h"
#include "proofs/publisher.h"
#include "registry/registry.h"

namespace modelreg::app {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path BackupDb(const std::string& root) { return fs::path(root) / "backups" / "db"; }
fs::path BackupArtifacts(const std::string& root) {
  return fs::path(root) / "backups" / "artifacts";
}

// `id` 0 (`latest`) becomes the newest backup's id.
Status CheckId(const std::vector<BackupInfo>& backups, std::uint32_t& id,
               const std::string& backup_dir) {
  if (id == 0) {
    for (const auto& b : backups) id = std::max<std::uint32_t>(id, b.id);
    if (id == 0) return Status::NotFound("there are no backups in " + backup_dir);
    return Status::OK();
  }
  for (const auto& b : backups) {
    if (b.id == id) return Status::OK();
  }
  return Status::NotFound("no backup " + std::to_string(id) + " (see `modelreg backup list`)");
}

// What `backup create` recorded with a backup (RocksDB app_metadata), read
// with every type checked: the metadata comes from a file anyone with write
// access to the backups can change. Absent fields stay unset.
struct BackupMeta {
  json raw = json::object();
  std::optional<std::string> created_at;
  std::optional<Seq> head_seq;
  std::optional<std::string> head_hash;
  std::optional<std::string> state_digest;
  std::optional<std::uint64_t> versions;
  std::optional<std::string> tree_root;  // backups made since the Merkle tree (docs/proofs.md)
};

Result<BackupMeta> ReadMeta(const BackupInfo& b) {
  BackupMeta meta;
  if (b.app_metadata.empty()) return meta;
  const auto damaged = [&b](const std::string& what) {
    return Status::Corruption("backup " + std::to_string(b.id) + ": the metadata in " +
                              b.meta_file + " is damaged: " + what);
  };
  json j = ParseJsonOrDiscarded(b.app_metadata);
  if (!j.is_object()) return Err(damaged("not a JSON object"));
  Status st;
  const auto text = [&](const char* key, std::optional<std::string>& into) {
    auto it = j.find(key);
    if (!st.ok() || it == j.end()) return;
    if (it->is_string()) {
      into = it->get<std::string>();
    } else {
      st = damaged(std::string(key) + " is not a string");
    }
  };
  const auto count = [&](const char* key, std::optional<std::uint64_t>& into) {
    auto it = j.find(key);
    if (!st.ok() || it == j.end()) return;
    if (it->is_number_unsigned()) {
      into = it->get<std::uint64_t>();
    } else {
      st = damaged(std::string(key) + " is not a non-negative integer");
    }
  };
  text("created_at", meta.created_at);
  count("head_seq", meta.head_seq);
  text("head_hash", meta.head_hash);
  text("state_digest", meta.state_digest);
  count("versions", meta.versions);
  text("tree_root", meta.tree_root);
  MODELREG_RETURN_IF_ERROR(st);
  meta.raw = std::move(j);
  return meta;
}

// Restores backup `id` of `root` into `dir` with its artifacts and opens it.
Result<std::unique_ptr<registry::Registry>> RestoreInto(const std::string& root, std::uint32_t id,
                                                        const fs::path& dir, std::size_t* files) {
  std::error_code ec;
  fs::create_directories(dir / "registry", ec);
  if (ec) return Err(Status::IOError("cannot create " + dir.string() + ": " + ec.message()));
  MODELREG_RETURN_IF_ERROR(RestoreBackup(BackupDb(root).string(), id, (dir / "registry").string()));
  registry::RegistryOptions o;
  o.root = dir.string();
  auto reg = registry::Registry::Open(o);
  if (!reg) return reg;
  Status linked;
  (*reg)->Read([&](const registry::State& s) {
    for (const auto& [type, ts] : s.types) {
      for (const auto& [version, rec] : ts.versions) {
        if (linked.ok() && !rec.purged) {
          linked = artifacts::LinkDirectory((BackupArtifacts(root) / type / version).string(),
                                            (dir / "artifacts" / type / version).string(), files);
        }
      }
    }
  });
  MODELREG_RETURN_IF_ERROR(linked);
  return reg;
}

}  // namespace

Status RunBackupCreate(const Globals& g, std::ostream& out, const std::string& checkpoint_key) {
  // While `modelreg serve` holds the registry, an admin token sends the
  // command to it (POST /api/v1/admin/backups); otherwise this process
  // opens the registry.
  auto target = WriteTarget(g, "model:admin");
  if (!target) return target.error();
  json j;
  if (*target && !checkpoint_key.empty()) {
    return Status::InvalidArgument(
        "--checkpoint-key signs local backups; through a running server, start it with "
        "serve --checkpoint-key and its backups are signed");
  }
  if (*target) {
    auto r = (*target)->Post("/api/v1/admin/backups", json::object());
    if (!r) return r.error();
    j = std::move(*r);
  } else {
    registry::RegistryOptions o;
    o.on_warning = WarningSink(g.json);
    o.root = g.root;
    o.clock = g.clock;
    o.lock_wait_ms = g.lock_wait_ms;
    auto reg = registry::Registry::Open(o);
    if (!reg) return reg.error();
    registry::Registry::CheckpointSigner sign;
    if (!checkpoint_key.empty()) {
      auto key = note::ReadSignerKeyFile(checkpoint_key);
      if (!key) return key.error();
      sign = [key = *key, &g](const TreeHead& t) -> Result<std::string> {
        auto signed_tree = proofs::SignTree(key, "", t, g.clock->NowNs());
        if (!signed_tree) return Err(signed_tree.error());
        return signed_tree->note;
      };
    }
    auto b = (*reg)->BackupNow(sign);
    if (!b) return b.error();
    j = query::BackupJson(*b);
  }
  if (g.json) {
    out << j.dump() << '\n';
  } else {
    out << "backup " << j.value("id", 0u) << ": " << j.value("head_seq", Seq{0})
        << " events, state digest " << j.value("state_digest", "") << ", "
        << j.value("artifact_files_linked", std::size_t{0})
        << " new artifact files linked into " << j.value("directory", "") << "/artifacts\n";
  }
  return Status::OK();
}

Status RunBackupList(const Globals& g, std::ostream& out) {
  std::error_code ec;
  if (!fs::exists(BackupDb(g.root), ec)) {  // none made yet: an empty list, not an error
    out << (g.json ? "[]\n" : "no backups in " + BackupDb(g.root).string() + "\n");
    return Status::OK();
  }
  auto backups = ListBackups(BackupDb(g.root).string());
  if (!backups) return backups.error();
  if (backups->empty() && !g.json) {
    out << "no backups in " << BackupDb(g.root).string() << '\n';
    return Status::OK();
  }
  // Every backup is listed, even when some have damaged metadata (the
  // operator looking for a backup to restore needs the others): their
  // recorded fields show as "?" ("damaged" in --json) and the command
  // then fails (exit 5) naming each damaged file.
  json arr = json::array();
  std::string damaged;
  if (!g.json) out << "ID  CREATED                   EVENTS  BYTES       STATE DIGEST\n";
  for (const BackupInfo& b : *backups) {
    auto read = ReadMeta(b);
    BackupMeta meta;
    if (read) {
      meta = std::move(*read);
    } else {
      damaged += (damaged.empty() ? "" : "; ") + read.error().message();
    }
    json j = meta.raw;  // the recorded fields, then what RocksDB counts
    j["id"] = b.id;
    j["bytes"] = b.bytes;
    j["files"] = b.files;
    if (!read) j["damaged"] = read.error().message();
    arr.push_back(j);
    if (!g.json) {
      char line[256];
      const std::string events = meta.head_seq ? std::to_string(*meta.head_seq) : "?";
      const auto created = meta.created_at ? ParseTime(*meta.created_at) : std::nullopt;
      std::snprintf(line, sizeof line, "%-3u %-25s %7s  %-10llu  %s\n", b.id,
                    created ? FormatUtcMillis(*created).c_str() : "?", events.c_str(),
                    static_cast<unsigned long long>(b.bytes),
                    read ? meta.state_digest.value_or("?").c_str() : "? (metadata damaged)");
      out << line;
    }
  }
  if (g.json) out << arr.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
  if (!damaged.empty()) return Status::Corruption(damaged);
  return Status::OK();
}

Status RunBackupVerify(const Globals& g, std::uint32_t id, std::ostream& out) {
  auto backups = ListBackups(BackupDb(g.root).string());
  if (!backups) return backups.error();
  MODELREG_RETURN_IF_ERROR(CheckId(*backups, id, BackupDb(g.root).string()));
  MODELREG_RETURN_IF_ERROR(VerifyBackup(BackupDb(g.root).string(), id));
  std::optional<std::string> recorded_digest;
  std::optional<std::string> recorded_root;
  std::optional<Seq> recorded_head;
  for (const auto& b : *backups) {
    if (b.id != id) continue;
    auto meta = ReadMeta(b);
    if (!meta) return meta.error();
    if (!meta->state_digest) {
      return Status::Corruption("backup " + std::to_string(id) + ": no state digest recorded in " +
                                b.meta_file + "; the backup cannot be checked against it");
    }
    recorded_digest = meta->state_digest;
    recorded_root = meta->tree_root;
    recorded_head = meta->head_seq;
  }
  std::error_code ec;
  const fs::path tmp = fs::temp_directory_path(ec);
  if (ec) return Status::IOError("no directory for temporary files: " + ec.message());
  std::string scratch = (tmp / "modelreg-backup-verify-XXXXXX").string();
  if (mkdtemp(scratch.data()) == nullptr) {
    return Status::IOError("cannot create a scratch directory in " + tmp.string() + ": " +
                           std::strerror(errno));
  }
  Status result;
  std::size_t files = 0, checked = 0;
  {
    auto reg = RestoreInto(g.root, id, fs::path(scratch) / "r", &files);
    if (!reg) {
      result = reg.error();
    } else {
      auto v = (*reg)->Verify();
      if (!v) {
        result = v.error();
      } else if (!v->chain.ok) {
        result = Status::Corruption("backup " + std::to_string(id) + ": hash chain broken at event " +
                                    std::to_string(v->chain.first_bad_seq));
      } else if (recorded_digest != ToHex(v->state_digest)) {
        result = Status::Corruption("backup " + std::to_string(id) +
                                    ": restored state digest differs from the one recorded");
      } else if (recorded_root &&
                 (!recorded_head || !v->chain.tree_checked ||
                  ToHex(v->chain.tree_root) != *recorded_root ||
                  v->chain.events != *recorded_head)) {
        result = Status::Corruption("backup " + std::to_string(id) +
                                    ": restored Merkle tree root differs from the one recorded");
      } else {
        (*reg)->Read([&](const registry::State& s) {
          for (const auto& [type, ts] : s.types) {
            for (const auto& [version, rec] : ts.versions) {
              if (!result.ok() || rec.purged) continue;
              // A file's SHA-256 or a directory artifact's tree digest.
              auto h = artifacts::HashArtifact(
                  (BackupArtifacts(g.root) / type / version / rec.artifact_name).string());
              if (!h || ToHex(h->sha256) != rec.artifact_sha256) {
                result = Status::Corruption("backup " + std::to_string(id) + ": artifact of " +
                                            type + " " + version +
                                            " is missing or altered in the backup");
              }
              ++checked;
            }
          }
        });
      }
    }
  }
  fs::remove_all(scratch, ec);
  MODELREG_RETURN_IF_ERROR(result);
  if (g.json) {
    out << json{{"id", id}, {"ok", true}, {"artifacts_checked", checked}}.dump() << '\n';
  } else {
    out << "backup " << id << " OK: files match their checksums, the restored chain verifies, "
        << "the state digest matches, " << checked << " artifacts match their SHA-256\n";
  }
  return Status::OK();
}

Status RunBackupRestore(const Globals& g, std::uint32_t id, const std::string& dir,
                        std::ostream& out) {
  const std::string hint = "restore into a new directory";
  MODELREG_RETURN_IF_ERROR(CheckNewDirectory(dir, hint));
  auto backups = ListBackups(BackupDb(g.root).string());
  if (!backups) return backups.error();
  MODELREG_RETURN_IF_ERROR(CheckId(*backups, id, BackupDb(g.root).string()));
  // Restored aside, verified, fsynced, then renamed into place: a failed
  // or killed restore leaves no half registry at `dir`.
  std::size_t files = 0;
  std::optional<registry::VerifyResult> v;
  MODELREG_RETURN_IF_ERROR(
      CreateAtomically(dir, hint, "restoring", [&](const std::string& staging) -> Status {
        auto reg = RestoreInto(g.root, id, staging, &files);
        if (!reg) return reg.error();
        auto verified = (*reg)->Verify();
        if (!verified) return verified.error();
        if (!verified->chain.ok || !verified->projection_ok) {
          return Status::Corruption("the restored registry does not verify: " +
                                    verified->chain.problem);
        }
        v = *verified;
        return Status::OK();
      }));
  if (g.json) {
    // A path need not be UTF-8; JSON must be.
    out << json{{"id", id},
                {"root", dir},
                {"events", v->chain.events},
                {"state_digest", ToHex(v->state_digest)},
                {"artifact_files", files}}
               .dump(-1, ' ', false, json::error_handler_t::replace)
        << '\n';
  } else {
    out << "restored backup " << id << " into " << dir << ": " << v->chain.events
        << " events, " << files << " artifact files, state digest " << ToHex(v->state_digest)
        << '\n';
  }
  return Status::OK();
}

}  // namespace modelreg::app
