// Garbage collection of artifact files (docs/runbook.md): what may go,
// and an ArtifactPurged event before each file is deleted.
#include <algorithm>
#include <filesystem>
#include <mutex>
#include <set>
#include <utility>

#include "events/model_events.h"
#include "registry/internal.h"
#include "registry/registry.h"

namespace modelreg::registry {

namespace fs = std::filesystem;
using internal::CheckActor;
using internal::EnvelopeFor;
using internal::Name;

Result<std::vector<Registry::GcItem>> Registry::CollectGarbage(int keep, TimeNs retention,
                                                               bool dry_run, const Actor& actor) {
  MODELREG_RETURN_IF_ERROR(CheckActor(actor));
  if (read_only_) return Err(Status::FailedPrecondition("registry is open read-only"));
  if (keep < 0) return Err(Status::InvalidArgument("--keep must be 0 or more"));
  const TimeNs now = clock_->NowNs();
  std::vector<GcItem> items;
  std::set<std::pair<std::string, std::string>> known;
  Read([&](const State& s) {
    for (const auto& [type, ts] : s.types) {
      // The version a rollback would restore.
      const std::string rollback_target = RollbackTarget(s, type);
      std::vector<const VersionRecord*> by_age;
      for (const auto& [version, rec] : ts.versions) {
        known.emplace(type, version);
        by_age.push_back(&rec);
      }
      std::sort(by_age.begin(), by_age.end(), [](const VersionRecord* a, const VersionRecord* b) {
        return a->registered_seq > b->registered_seq;  // newest first
      });
      int kept = 0;
      for (const VersionRecord* r : by_age) {
        if (r->status != ModelStatus::kArchived && r->status != ModelStatus::kFailed) continue;
        if (kept < keep) {
          ++kept;
          continue;
        }
        if (r->purged || r->version == rollback_target) continue;
        if (r->promoted_at != 0 && now - r->demoted_at < retention) continue;
        const std::string path = artifacts_.ArtifactPath(type, r->version, r->artifact_name);
        std::error_code ec;
        if (!fs::exists(path, ec)) continue;
        items.push_back({type, r->version, path, r->artifact_size,
                         std::string(projection::StatusName(r->status)) + ", beyond the " +
                             std::to_string(keep) + " most recent archived/failed versions"});
      }
    }
  });
  // Interrupted registrations: staging directories and unnamed version
  // dirs. A registration in flight (in a server) holds its type's
  // registration mutex from staging to its event: each type's directory is
  // read, and later cleared, under that mutex, and the names are checked
  // against the state as it is then.
  std::error_code ec;
  const fs::path art = fs::path(root_) / "artifacts";
  const auto registered = [this](const std::string& type, const std::string& version) {
    bool found = false;
    Read([&](const State& s) { found = s.Find(type, version) != nullptr; });
    return found;
  };
  for (const auto& type_dir : fs::directory_iterator(art, ec)) {
    if (!type_dir.is_directory()) continue;
    std::lock_guard<std::mutex> no_registration(RegisterMutex(type_dir.path().filename().string()));
    for (const auto& d : fs::directory_iterator(type_dir.path(), ec)) {
      const std::string name = d.path().filename().string();
      const bool staging = name.rfind(".staging-", 0) == 0;
      if (!staging && (known.count({type_dir.path().filename().string(), name}) != 0 ||
                       registered(type_dir.path().filename().string(), name))) {
        continue;
      }
      std::uint64_t bytes = 0;
      for (const auto& f : fs::recursive_directory_iterator(d.path(), ec)) {
        if (f.is_regular_file()) bytes += f.file_size();
      }
      items.push_back({type_dir.path().filename().string(), "", d.path().string(), bytes,
                       staging ? "staging directory of an interrupted registration"
                               : "no event names this version (interrupted registration)"});
    }
  }
  if (dry_run) return items;
  for (const GcItem& item : items) {
    if (!item.version.empty()) {
      // The event first: a crash after it leaves a file the log calls
      // purged (harmless, removed next time), never a missing file the log
      // still names.
      auto r = Write(item.model_type, [&](const State& s) -> Result<std::string> {
        const VersionRecord* rec = s.Find(item.model_type, item.version);
        // A rollback target is kept: a concurrent rollback may have made
        // it one since the scan.
        if (rec == nullptr || rec->purged || rec->status == ModelStatus::kProduction ||
            RollbackTarget(s, item.model_type) == item.version) {
          return Err(Status::Conflict(Name(item.model_type, item.version) + " changed meanwhile"));
        }
        return events::Draft(EnvelopeFor(actor, NewEventId()),
                             events::Purge{item.model_type, item.version, item.bytes,
                                           actor.reason.empty() ? "gc: " + item.why
                                                                : actor.reason});
      });
      if (!r) return Err(r.error());
      fs::remove_all(item.path, ec);  // a file, or a directory artifact's tree
    } else {
      std::lock_guard<std::mutex> no_registration(RegisterMutex(item.model_type));
      const std::string name = fs::path(item.path).filename().string();
      if (name.rfind(".staging-", 0) != 0 && registered(item.model_type, name)) continue;
      fs::remove_all(item.path, ec);
    }
    if (ec) return Err(Status::IOError("cannot delete " + item.path + ": " + ec.message()));
  }
  return items;
}

}  // namespace modelreg::registry
