#include "app/backup_commands.h"

#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "artifacts/artifact_store.h"
#include "log/backup.h"
#include "registry/registry.h"

namespace modelreg::app {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path BackupDb(const std::string& root) { return fs::path(root) / "backups" / "db"; }
fs::path BackupArtifacts(const std::string& root) {
  return fs::path(root) / "backups" / "artifacts";
}

Status CheckId(const std::vector<BackupInfo>& backups, std::uint32_t id) {
  for (const auto& b : backups) {
    if (b.id == id) return Status::OK();
  }
  return Status::NotFound("no backup " + std::to_string(id) + " (see `modelreg backup list`)");
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

Status RunBackupCreate(const Globals& g, std::ostream& out) {
  registry::RegistryOptions o;
  o.root = g.root;
  o.clock = g.clock;
  o.lock_wait_ms = g.lock_wait_ms;
  auto reg = registry::Registry::Open(o);
  if (!reg) return reg.error();
  // Artifacts first: a backup must never name a file it does not hold.
  std::size_t linked = 0, versions = 0;
  Status st;
  Digest digest{};
  Seq seq = 0;
  (*reg)->Read([&](const registry::State& s) {
    digest = projection::StateDigest(s);
    seq = s.seq;
    for (const auto& [type, ts] : s.types) {
      for (const auto& [version, rec] : ts.versions) {
        ++versions;
        if (st.ok() && !rec.purged) {
          st = artifacts::LinkDirectory((fs::path(g.root) / "artifacts" / type / version).string(),
                                        (BackupArtifacts(g.root) / type / version).string(),
                                        &linked);
        }
      }
    }
  });
  MODELREG_RETURN_IF_ERROR(st);
  const Head head = (*reg)->log().head();
  const json meta{{"created_at", FormatUtc(g.clock->NowNs())},
                  {"head_seq", seq},
                  {"head_hash", ToHex(head.hash)},
                  {"state_digest", ToHex(digest)},
                  {"versions", versions}};
  std::error_code ec;
  fs::create_directories(BackupDb(g.root), ec);
  auto id = (*reg)->log().CreateBackup(BackupDb(g.root).string(), meta.dump());
  if (!id) return id.error();
  if (g.json) {
    json j = meta;
    j["id"] = *id;
    j["artifact_files_linked"] = linked;
    out << j.dump() << '\n';
  } else {
    out << "backup " << *id << ": " << seq << " events, state digest " << ToHex(digest) << ", "
        << linked << " new artifact files linked into " << BackupArtifacts(g.root).string()
        << '\n';
  }
  return Status::OK();
}

Status RunBackupList(const Globals& g, std::ostream& out) {
  auto backups = ListBackups(BackupDb(g.root).string());
  if (!backups) return backups.error();
  json arr = json::array();
  if (!g.json) out << "ID  CREATED               EVENTS  BYTES       STATE DIGEST\n";
  for (const auto& b : *backups) {
    const json meta = json::parse(b.app_metadata, nullptr, false);
    json j{{"id", b.id}, {"bytes", b.bytes}, {"files", b.files}};
    if (meta.is_object()) j.update(meta);
    arr.push_back(j);
    if (!g.json) {
      char line[256];
      std::snprintf(line, sizeof line, "%-3u %-21s %7llu  %-10llu  %s\n", b.id,
                    meta.value("created_at", std::string("?")).substr(0, 19).c_str(),
                    static_cast<unsigned long long>(meta.value("head_seq", Seq{0})),
                    static_cast<unsigned long long>(b.bytes),
                    meta.value("state_digest", std::string("?")).c_str());
      out << line;
    }
  }
  if (g.json) out << arr.dump() << '\n';
  return Status::OK();
}

Status RunBackupVerify(const Globals& g, std::uint32_t id, std::ostream& out) {
  auto backups = ListBackups(BackupDb(g.root).string());
  if (!backups) return backups.error();
  MODELREG_RETURN_IF_ERROR(CheckId(*backups, id));
  MODELREG_RETURN_IF_ERROR(VerifyBackup(BackupDb(g.root).string(), id));
  std::string meta_text;
  for (const auto& b : *backups) {
    if (b.id == id) meta_text = b.app_metadata;
  }
  const json meta = json::parse(meta_text, nullptr, false);
  std::string scratch = (fs::temp_directory_path() / "modelreg-backup-verify-XXXXXX").string();
  if (mkdtemp(scratch.data()) == nullptr) return Status::IOError("cannot create a scratch dir");
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
      } else if (!meta.is_object() || meta.value("state_digest", "") != ToHex(v->state_digest)) {
        result = Status::Corruption("backup " + std::to_string(id) +
                                    ": restored state digest differs from the one recorded");
      } else {
        (*reg)->Read([&](const registry::State& s) {
          for (const auto& [type, ts] : s.types) {
            for (const auto& [version, rec] : ts.versions) {
              if (!result.ok() || rec.purged) continue;
              auto h = artifacts::HashFile(
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
  std::error_code ec;
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
  std::error_code ec;
  if (fs::exists(dir, ec) && (!fs::is_directory(dir, ec) || !fs::is_empty(dir, ec))) {
    return Status::AlreadyExists(dir + " exists and is not an empty directory; restore into a "
                                       "new directory");
  }
  auto backups = ListBackups(BackupDb(g.root).string());
  if (!backups) return backups.error();
  MODELREG_RETURN_IF_ERROR(CheckId(*backups, id));
  std::size_t files = 0;
  auto reg = RestoreInto(g.root, id, dir, &files);
  if (!reg) return reg.error();
  auto v = (*reg)->Verify();
  if (!v) return v.error();
  if (!v->chain.ok || !v->projection_ok) {
    return Status::Corruption("the restored registry does not verify: " + v->chain.problem);
  }
  if (g.json) {
    out << json{{"id", id},
                {"root", dir},
                {"events", v->chain.events},
                {"state_digest", ToHex(v->state_digest)},
                {"artifact_files", files}}
               .dump()
        << '\n';
  } else {
    out << "restored backup " << id << " into " << dir << ": " << v->chain.events
        << " events, " << files << " artifact files, state digest " << ToHex(v->state_digest)
        << '\n';
  }
  return Status::OK();
}

}  // namespace modelreg::app
