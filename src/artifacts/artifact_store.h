// The artifact store: model files copied into the registry directory.
//
//   <root>/artifacts/<type>/<version>/<artifact file>
//                                    /metadata.json     (the registration, readable)
//                                    /checksum.sha256   (`sha256sum -c` compatible)
//
// Files are copied into a staging directory (artifacts/<type>/.staging-*),
// hashed while copying (constant memory), fsynced, then renamed into place
// and the parent directory fsynced, before the event that names them is
// appended. A crash leaves either a staging directory (ignored, removed by
// the next registration of that type) or a published directory without an
// event (an orphan: replaced by the next registration of that version).
// The log decides what exists; a directory alone never does.
//
// Thread-safety: methods touching one (type, version) must not run
// concurrently; the registry serializes writes.
#pragma once

#include <cstdint>
#include <string>

#include "common/sha256.h"
#include "common/status.h"

namespace modelreg::artifacts {

struct FileHash {
  std::uint64_t size = 0;
  Digest sha256{};

  bool operator==(const FileHash&) const = default;
};

// Streams a file through SHA-256. NotFound / IOError name the path.
Result<FileHash> HashFile(const std::string& path);

// Reads `in` to its end through SHA-256, writing every byte to `out` too
// unless it is -1 (then fsyncs `out`). `in_path` / `out_path` name the
// descriptors in errors.
Result<FileHash> CopyAndHash(int in, int out, const std::string& in_path,
                             const std::string& out_path);

// Checks one name of a path inside the store: not empty, no '/', not "."
// or "..", valid UTF-8, no control characters, <= 255 bytes. `what`
// begins the error ("artifact file name").
Status ValidateNameComponent(const std::string& name, const std::string& what);

// Checks a file name for use inside the store: ValidateNameComponent and
// not a reserved name (metadata.json, checksum.sha256, .staging*).
Status ValidateFileName(const std::string& name);

// Writes `content` to `path` atomically (temp file, fsync, rename, fsync dir).
Status WriteFileAtomic(const std::string& path, const std::string& content);

// Hard-links (copies, across filesystems) every file of the directory
// `from` into `to`, and those of its subdirectories (a directory
// artifact) recursively, keeping files already there (artifacts never
// change). Symlinks and special files are skipped, never followed.
// A missing `from` links nothing. `linked` (optional) counts new files.
Status LinkDirectory(const std::string& from, const std::string& to, std::size_t* linked);

class ArtifactStore {
 public:
  explicit ArtifactStore(std::string root);

  struct Staged {
    std::string dir;        // staging directory
    std::string file_name;  // artifact file (or directory) name inside it
    FileHash hash;          // a directory: total size and tree digest
    bool directory = false;
    std::uint64_t files = 1;
    std::string checksum_text;  // checksum.sha256
  };

  // Copies `source` into a new staging directory for `type`, hashing it.
  // A directory is copied whole (artifacts/tree.h: its rules and limits);
  // anything refused leaves no staging directory behind.
  Result<Staged> Stage(const std::string& type, const std::string& source) const;
  // Writes metadata.json and checksum.sha256 into the staging directory,
  // fsyncs, and renames it to artifacts/<type>/<version> (replacing an
  // orphan left by a crash).
  Status Publish(const Staged& staged, const std::string& type, const std::string& version,
                 const std::string& metadata_json) const;
  // Removes a staging directory (best effort).
  void Discard(const Staged& staged) const;

  std::string VersionDir(const std::string& type, const std::string& version) const;
  std::string ArtifactPath(const std::string& type, const std::string& version,
                           const std::string& file_name) const;

 private:
  std::string root_;
};

}  // namespace modelreg::artifacts
