// manifest.json: the registry's current state beside the artifacts, for
// disaster recovery and for tools that only read files (docs/layout.md).
// Derived from the log, rewritten after writes; never read back as state.
//
//   {"format_version": 1, "head_hash": "<hex>", "head_seq": N,
//    "types": {"<type>": {"production": "<version>" | null,
//                         "versions": [{"artifact_path", "sha256", "size",
//                                       "status", "version"}, ...]}},
//    "updated_at": "<UTC>"}
//
// Plain strings and numbers only: this layer knows the file's format, not
// the registry's state (src/registry feeds it).
// Thread-safety: a ManifestWriter is used by one thread; the free
// functions are safe anywhere.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/sha256.h"

namespace modelreg::artifacts {

// manifest.json in the registry directory `root`.
std::string ManifestPath(const std::string& root);

// One entry of a type's "versions".
struct ManifestVersion {
  std::string_view version;
  std::string_view artifact_name;  // the file in artifacts/<type>/<version>/
  bool purged = false;             // the file is gone: "artifact_path" is null
  std::string_view sha256;         // hex
  std::uint64_t size = 0;
  std::string_view status;  // staged | production | archived | failed
};

// Writes the manifest's text straight into a string, one version per line
// (a JSON tree of 400,000 versions took seconds and hundreds of MB). Call
// Type() for each model type in name order, Version() for each of its
// versions in the order they are to be listed, then Finish() once.
class ManifestWriter {
 public:
  ManifestWriter(std::uint64_t head_seq, const Digest& head_hash);

  // `production` "" = none (null).
  void Type(std::string_view type, std::string_view production);
  void Version(const ManifestVersion& v);
  // The whole file; `updated_at` is the time of the head event.
  std::string Finish(TimeNs updated_at);

 private:
  void CloseType();

  std::string out_;
  std::string type_;  // the open type, for artifact paths
  bool in_type_ = false;
  bool first_type_ = true;
  bool first_version_ = true;
};

// The top-level "head_seq" of the manifest at `path`, read without parsing
// the rest of the file (~110 MB at 1M events); nullopt if the file is
// missing, not a regular file (a directory, a link, a FIFO) or unreadable
// or has no top-level unsigned "head_seq". A read error in the middle may
// throw std::exception (callers catch it).
std::optional<std::uint64_t> ReadManifestHeadSeq(const std::string& path);

}  // namespace modelreg::artifacts
