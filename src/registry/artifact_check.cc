// The check before a version (re)enters production or is validated: its
// artifact is re-hashed against the registration and the policy's
// validator command is run on it.
#include "registry/internal.h"
#include "validation/validator.h"

namespace modelreg::registry::internal {

Result<ArtifactCheck> CheckArtifact(const artifacts::ArtifactStore& artifacts,
                                    const VersionRecord& rec, const policy::TypePolicy& tp) {
  ArtifactCheck c;
  const std::string path = artifacts.ArtifactPath(rec.model_type, rec.version, rec.artifact_name);
  auto hash = artifacts::HashFile(path);
  if (!hash) {
    // A missing file is the artifact's fault; an unreadable one (EIO,
    // permissions) may be the machine's: record nothing and say so.
    if (hash.error().code() != Code::kNotFound) {
      return Err(hash.error().WithContext("cannot check the artifact of " +
                                          Name(rec.model_type, rec.version) +
                                          "; nothing was recorded"));
    }
    c.detail = "the artifact file " + path + " is missing";
    c.result = events::kValidationMissing;
    return c;
  }
  c.observed_sha256 = hash->sha256;
  c.observed_size = hash->size;
  if (ToHex(hash->sha256) != rec.artifact_sha256 || hash->size != rec.artifact_size) {
    c.detail = "artifact " + path + " has sha256 " + ToHex(hash->sha256) + " (" +
               std::to_string(hash->size) + " bytes) but was registered with " +
               rec.artifact_sha256 + " (" + std::to_string(rec.artifact_size) + " bytes)";
    c.result = events::kValidationMismatch;
    return c;
  }
  if (tp.validator) {
    auto run = validation::Run(tp.validator->command, path, tp.validator->timeout_seconds * 1000);
    if (!run) return Err(run.error());
    std::string cmd;
    for (const auto& part : tp.validator->command) cmd += (cmd.empty() ? "" : " ") + part;
    // A validator that cannot run (126/127, like a shell) or runs out of
    // time says nothing about the model: nothing is recorded.
    if (run->timed_out) {
      return Err(Status::FailedPrecondition(
          "validator `" + cmd + "` timed out after " +
          std::to_string(tp.validator->timeout_seconds) + " s on " +
          Name(rec.model_type, rec.version) +
          "; nothing was recorded (raise timeout_seconds in policy.toml or fix the validator)"));
    }
    if (run->exit_code == 126 || run->exit_code == 127) {
      std::string tail = run->output_tail;
      while (!tail.empty() && (tail.back() == '\n' || tail.back() == ' ')) tail.pop_back();
      return Err(Status::FailedPrecondition(
          "validator `" + cmd + "` could not run (" + run->Describe() + ")" +
          (tail.empty() ? "" : ": " + tail) +
          "; nothing was recorded (fix the validator command in policy.toml)"));
    }
    if (!run->ok) {
      c.detail = "validator `" + cmd + "` failed (" + run->Describe() +
                 (run->timed_out ? " after " + std::to_string(tp.validator->timeout_seconds) + " s"
                                 : std::string()) +
                 ")" + (run->output_tail.empty() ? "" : "; output: " + run->output_tail);
      while (!c.detail.empty() && (c.detail.back() == '\n' || c.detail.back() == ' ')) {
        c.detail.pop_back();
      }
      c.result = events::kValidationValidatorFailed;
      return c;
    }
  }
  c.ok = true;
  c.result = events::kValidationOk;
  c.detail = "sha256 " + rec.artifact_sha256 + " matches" +
             (tp.validator ? std::string(", validator passed") : std::string());
  return c;
}

}  // namespace modelreg::registry::internal
