// The check before a version (re)enters production or is validated: its
// artifact is re-hashed against the registration and the policy's
// validator command is run on it.
#include <fstream>
#include <iterator>

#include "artifacts/tree.h"
#include "registry/internal.h"
#include "validation/validator.h"

namespace modelreg::registry::internal {

namespace {

// Runs the policy's validator (if any) on an artifact whose content matched.
Result<ArtifactCheck> RunValidator(const VersionRecord& rec, const std::string& path,
                                   const policy::TypePolicy& tp, ArtifactCheck c,
                                   const std::string& what);

// A directory artifact: every file of the tree re-hashed into the tree
// digest. The whole directory gone is "missing" (operational, status left
// alone); anything else that differs - a file changed, added or removed
// inside it, or something it may not contain - is "mismatch": the content
// no longer is the registered tree.
Result<bool> CheckTree(const artifacts::ArtifactStore& artifacts, const VersionRecord& rec,
                       const std::string& path, ArtifactCheck& c) {
  auto tree = artifacts::HashTree(path);
  if (!tree) {
    if (tree.error().code() == Code::kNotFound) {
      c.detail = "the artifact directory " + path + " is missing";
      c.result = events::kValidationMissing;
      return false;
    }
    if (tree.error().code() != Code::kInvalidArgument) {
      return Err(tree.error().WithContext("cannot check the artifact of " +
                                          Name(rec.model_type, rec.version) +
                                          "; nothing was recorded"));
    }
    c.detail = "artifact directory " + path + " no longer matches its registration: " +
               tree.error().message();
    c.result = events::kValidationMismatch;
    return false;
  }
  c.observed_sha256 = tree->digest;
  c.observed_size = tree->total_size;
  if (ToHex(tree->digest) != rec.artifact_sha256 || tree->total_size != rec.artifact_size) {
    std::string listed;
    std::ifstream in(artifacts.VersionDir(rec.model_type, rec.version) + "/checksum.sha256");
    listed.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    const std::string changes =
        artifacts::DescribeTreeChanges(listed, rec.artifact_name, *tree, 5);
    c.detail = "artifact directory " + path + " has tree digest " + ToHex(tree->digest) + " (" +
               std::to_string(tree->files.size()) + " files, " +
               std::to_string(tree->total_size) + " bytes) but was registered with " +
               rec.artifact_sha256 + " (" + std::to_string(rec.artifact_size) + " bytes)" +
               (changes.empty() ? "" : "; compared with checksum.sha256: " + changes);
    c.result = events::kValidationMismatch;
    return false;
  }
  return true;
}

}  // namespace

Result<ArtifactCheck> CheckArtifact(const artifacts::ArtifactStore& artifacts,
                                    const VersionRecord& rec, const policy::TypePolicy& tp) {
  ArtifactCheck c;
  const std::string path = artifacts.ArtifactPath(rec.model_type, rec.version, rec.artifact_name);
  if (rec.artifact_kind == projection::ArtifactKind::kDirectory) {
    auto matches = CheckTree(artifacts, rec, path, c);
    if (!matches) return Err(matches.error());
    if (!*matches) return c;
    return RunValidator(rec, path, tp, c, "tree digest ");
  }
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
  return RunValidator(rec, path, tp, c, "sha256 ");
}

namespace {

Result<ArtifactCheck> RunValidator(const VersionRecord& rec, const std::string& path,
                                   const policy::TypePolicy& tp, ArtifactCheck c,
                                   const std::string& what) {
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
  c.detail = what + rec.artifact_sha256 + " matches" +
             (tp.validator ? std::string(", validator passed") : std::string());
  return c;
}

}  // namespace

}  // namespace modelreg::registry::internal
