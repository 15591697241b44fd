// Directory artifacts: a model that is a directory tree (an MLflow model,
// a SavedModel, an sklearn/LightGBM bundle), hashed and copied as one
// artifact.
//
// A tree is walked without following anything: every directory below the
// root is opened with openat(..., O_DIRECTORY | O_NOFOLLOW) relative to its
// parent's descriptor and every file with openat(..., O_NOFOLLOW), so a
// symlink swapped in while the walk runs is refused, never followed out of
// the tree. Refused, with an error naming the path (InvalidArgument):
// symlinks (all of them, wherever they point), FIFOs, sockets, device
// files, names that are not plain UTF-8 without control characters (so
// no checksum.sha256 line ever needs sha256sum's backslash escaping), a
// tree with no file, more than kMaxTreeFiles files, directories nested
// deeper than kMaxTreeDepth, relative paths over kMaxTreePathBytes.
// Empty subdirectories are copied but, holding no file, are not part of
// the tree digest.
//
// The tree digest (docs/events.md "Directory artifacts"):
//   SHA-256( "modelreg-tree-v1\n" ||
//            for each file, in byte order of its relative path:
//              path || 0x00 || decimal size || 0x00 || hex sha256 || "\n" )
// where path is relative to the tree's root with '/' separators.
//
// Thread-safety: free functions over values and paths.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "artifacts/artifact_store.h"
#include "common/sha256.h"
#include "common/status.h"

namespace modelreg::artifacts {

inline constexpr std::size_t kMaxTreeFiles = 10000;
inline constexpr int kMaxTreeDepth = 16;  // directory levels below the root
inline constexpr std::size_t kMaxTreePathBytes = 1024;

struct TreeFile {
  std::string path;  // relative to the root, '/'-separated
  FileHash hash;

  bool operator==(const TreeFile&) const = default;
};

struct Tree {
  std::vector<TreeFile> files;  // sorted by path (byte order)
  std::uint64_t total_size = 0;
  Digest digest{};  // TreeDigest(files)
};

// The tree digest of `files`, in any order (sorted here).
Digest TreeDigest(std::vector<TreeFile> files);

// Walks and hashes the tree at `dir` (following `dir` itself if it is a
// symlink: the caller named it). NotFound: `dir` does not exist;
// InvalidArgument: something in it is refused (above) or `dir` is not a
// directory; IOError: the machine failed.
Result<Tree> HashTree(const std::string& dir);

// The same walk, copying the tree into the directory `dest` (which must
// not exist; created here): files read-only (0444), every file and
// directory fsynced. On error `dest` may be left partly written: the
// caller removes it.
Result<Tree> CopyTree(const std::string& dir, const std::string& dest);

// checksum.sha256 lines for a tree stored as `name/` in a version
// directory: "<hex>  <name>/<path>\n" per file, in tree order.
std::string ChecksumLines(const std::string& name, const Tree& tree);

// What differs between the files a checksum.sha256 text lists under
// `name/` and `observed`: "changed a/b; missing c; added d" (at most
// `max_items`, then "and N more"); "" when the text lists exactly them.
std::string DescribeTreeChanges(const std::string& checksum_text, const std::string& name,
                                const Tree& observed, std::size_t max_items);

// A file or a directory artifact hashed: a file's SHA-256, or a tree's
// digest, total size and file count.
struct ArtifactHash {
  bool directory = false;
  std::uint64_t size = 0;
  std::uint64_t files = 1;
  Digest sha256{};
};
Result<ArtifactHash> HashArtifact(const std::string& path);

}  // namespace modelreg::artifacts
