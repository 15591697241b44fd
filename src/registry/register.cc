// Register: a new version's artifact is staged, hashed and published into
// the artifact store, then its ModelRegistered event appended; a repeat of
// the same registration is answered without writing anything.
#include <filesystem>
#include <mutex>

#include <nlohmann/json.hpp>

#include "artifacts/tree.h"
#include "events/model_events.h"
#include "common/json_input.h"
#include "model/naming.h"
#include "registry/internal.h"
#include "registry/registry.h"

namespace modelreg::registry {

namespace fs = std::filesystem;
using internal::CheckActor;
using internal::EnvelopeFor;
using internal::Name;

namespace {

bool SameMetadata(const VersionRecord& rec, const events::Registration& r) {
  return rec.metrics == r.metrics && rec.dataset_version_ids == r.dataset_version_ids &&
         rec.snapshot_id == r.snapshot_id && rec.config_hash == r.config_hash;
}

}  // namespace

std::mutex& Registry::RegisterMutex(const std::string& type) {
  std::lock_guard<std::mutex> lock(register_mu_);
  return register_type_mu_[type];  // std::map: the reference stays valid
}

Result<RegisterResult> Registry::Register(const std::string& type, const std::string& version,
                                          const std::string& artifact_path,
                                          const MetadataInput& input, const Actor& actor) {
  MODELREG_RETURN_IF_ERROR(CheckActor(actor));
  if (read_only_) return Err(Status::FailedPrecondition("registry is open read-only"));
  MODELREG_RETURN_IF_ERROR(model::ValidateModelType(type));
  MODELREG_RETURN_IF_ERROR(model::ValidateVersion(version));
  auto reg = BuildRegistration(type, version, input, actor.name, clock_->NowNs());
  if (!reg) return Err(reg.error());
  const bool checksum_given = reg->artifact_sha256 != Digest{};

  // One registration per type at a time (staging clears the type's stale
  // staging directories); types register in parallel.
  std::lock_guard<std::mutex> serialize(RegisterMutex(type));
  std::optional<VersionRecord> existing;
  Read([&](const State& s) {
    if (const VersionRecord* r = s.Find(type, version)) existing = *r;
  });
  if (existing) {
    auto hash = artifacts::HashArtifact(artifact_path);
    if (!hash) return Err(hash.error());
    if (ToHex(hash->sha256) != existing->artifact_sha256 ||
        hash->directory != (existing->artifact_kind == projection::ArtifactKind::kDirectory)) {
      return Err(Status::Conflict(Name(type, version) +
                                  " is already registered with a different artifact (sha256 " +
                                  existing->artifact_sha256.substr(0, 12) +
                                  "...); versions are immutable: register a new version"));
    }
    // Parameters and factors live only in the registration event.
    bool same_payload = false;
    if (auto ev = store_->Get(existing->registered_seq); ev) {
      if (const auto* p = ev->event().payload_as_ModelRegistered()) {
        std::vector<std::string> factors;
        if (p->factor_list() != nullptr) {
          for (const auto* f : *p->factor_list()) factors.push_back(f->str());
        }
        same_payload = p->parameters_json() != nullptr &&
                       p->parameters_json()->str() == reg->parameters_json &&
                       factors == reg->factor_list;
        // Identity fields count when the metadata states them; when left
        // out they are generated per attempt (model_id, created_by,
        // created_at), like the captured environment, and not compared.
        const auto meta = input.metadata_json
                              ? ParseJsonOrDiscarded(*input.metadata_json)
                              : nlohmann::json();
        auto stated = [&meta](const char* key) {
          return meta.is_object() && meta.contains(key) && meta[key].is_string() &&
                 !meta[key].get<std::string>().empty();
        };
        if (stated("model_id") &&
            (p->model_id() == nullptr || p->model_id()->str() != reg->model_id)) {
          same_payload = false;
        }
        if (stated("created_by") &&
            (p->created_by() == nullptr || p->created_by()->str() != reg->created_by)) {
          same_payload = false;
        }
        if (stated("created_at") && p->created_at() != reg->created_at) same_payload = false;
      }
    }
    if (!same_payload || !SameMetadata(*existing, *reg)) {
      return Err(Status::Conflict(Name(type, version) +
                                  " is already registered with the same artifact but different "
                                  "metadata (metrics, datasets, snapshot, factors, parameters, "
                                  "config, model_id, created_by or created_at); versions are "
                                  "immutable: register a new version"));
    }
    return RegisterResult{*existing, true};
  }

  auto staged = artifacts_.Stage(type, artifact_path);
  if (!staged) return Err(staged.error());
  if (checksum_given && reg->artifact_sha256 != staged->hash.sha256) {
    artifacts_.Discard(*staged);
    return Err(Status::InvalidArgument("artifact " + artifact_path + " has sha256 " +
                                       ToHex(staged->hash.sha256) +
                                       " but the metadata's checksum_sha256 says " +
                                       ToHex(reg->artifact_sha256)));
  }
  reg->artifact_name = staged->file_name;
  reg->artifact_size = staged->hash.size;
  reg->artifact_sha256 = staged->hash.sha256;
  if (staged->directory) {
    reg->artifact_kind = events::kArtifactDirectory;
    reg->artifact_files = staged->files;
  }
  const std::string draft = events::Draft(EnvelopeFor(actor, NewEventId()), *reg);
  if (draft.size() > kMaxEventBytes) {
    artifacts_.Discard(*staged);
    return Err(Status::InvalidArgument("registration metadata is too large (" +
                                       std::to_string(draft.size()) + " bytes as an event)"));
  }
  auto parsed = EventBuffer::Parse(draft);
  if (!parsed) {
    artifacts_.Discard(*staged);
    return Err(Status::Internal("registration draft does not verify: " + parsed.error().message()));
  }
  const std::string metadata_json = events::ToJson(*parsed)["payload"].dump(2) + "\n";
  Status published = artifacts_.Publish(*staged, type, version, metadata_json);
  if (!published.ok()) {
    artifacts_.Discard(*staged);
    return Err(published);
  }
  auto r = Write(type, [&](const State& s) -> Result<std::string> {
    if (s.Find(type, version) != nullptr) {
      return Err(Status::Conflict(Name(type, version) + " was registered concurrently"));
    }
    return draft;
  });
  if (!r) {
    if (r.error().code() == Code::kConflict || r.error().code() == Code::kInvalidArgument) {
      std::error_code ec;  // certainly not recorded: the directory is an orphan
      fs::remove_all(artifacts_.VersionDir(type, version), ec);
    }
    return Err(r.error());
  }
  RegisterResult out;
  Read([&](const State& s) {
    if (const VersionRecord* rec = s.Find(type, version)) out.record = *rec;
  });
  return out;
}

}  // namespace modelreg::registry
