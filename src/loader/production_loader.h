// ProductionModelLoader: keeps a service on the production version of one
// model type, without restarts (docs/loader.md).
//
// It follows the registry — in-process on the same host (a RocksDB
// secondary instance of the registry, caught up every poll_interval) or
// remotely (the HTTP API's long-poll subscription) — and on a change of
// production version: fetches the artifact (a local path, or a download),
// verifies its SHA-256 against the registered one and its dataset versions
// against the service's, calls the user's load callback, and swaps the
// loaded model in atomically. Readers call Current() and hold a
// shared_ptr: always a complete model, never a half-loaded one, kept alive
// for as long as they use it. When anything fails the old model stays and
// the failure is reported (on_error, stats(), and an acknowledgement).
// After each attempt the loader acknowledges to the registry what it runs
// (a ConsumerAcknowledged event: `modelreg consumers TYPE`).
//
// Thread-safety: Current(), stats() and ReloadNow() may be called from any
// thread; callbacks run on the loader's thread (or ReloadNow's caller) and
// must not call ReloadNow() themselves (it would wait for itself).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/status.h"

namespace modelreg::loader {

// What the load callback is given: a verified artifact file or directory.
struct ModelFile {
  std::string model_type;
  std::string version;
  std::string sha256;  // hex, checked against the file (a directory: its tree digest)
  std::string path;    // the artifact (in the registry, or downloaded)
  std::map<std::string, std::string> dataset_version_ids;
  // A directory artifact (path is the directory, every file checked);
  // followed from a registry directory only (the HTTP API serves files).
  bool directory = false;
};

// A loaded model as readers see it.
struct Loaded {
  ModelFile file;
  std::shared_ptr<const void> model;  // what the load callback returned
  TimeNs loaded_at = 0;
};

// Loads the artifact into whatever the service uses; an error keeps the
// old model.
using LoadFn = std::function<Result<std::shared_ptr<const void>>(const ModelFile&)>;

struct LoaderOptions {
  std::string model_type;
  std::string consumer_id;  // reported in acknowledgements, e.g. "pricing@host-3"
                            // (letters, digits, . _ @ : -; at most 128)
  // Where to follow: a local registry directory, or a server.
  std::string root;
  std::string url;
  std::string token;        // bearer token for url (model:read)
  std::string cache_dir;    // where remote artifacts are downloaded (required with url)
  // The service's dataset versions; empty = no compatibility check.
  std::map<std::string, std::string> current_datasets;
  bool strict_compatibility = true;
  std::chrono::milliseconds poll_interval{20};  // local following
  int wait_seconds = 10;                         // remote long poll
  bool acknowledge = true;
  std::function<void(const std::string&)> on_error;   // every failure, one line
  std::function<void(const Loaded&)> on_swap;         // after each swap
};

class ProductionModelLoader {
 public:
  // Loads the current production version (if any; a failure is reported
  // and leaves no model) and starts following.
  static Result<std::unique_ptr<ProductionModelLoader>> Start(LoaderOptions options, LoadFn load);
  ~ProductionModelLoader();  // stops following
  ProductionModelLoader(const ProductionModelLoader&) = delete;
  ProductionModelLoader& operator=(const ProductionModelLoader&) = delete;

  // The model in use; nullptr before the first successful load.
  std::shared_ptr<const Loaded> Current() const;
  // Checks the registry now and swaps if production changed; the error of
  // a failed attempt (the old model stays).
  Status ReloadNow();

  struct Stats {
    std::uint64_t swaps = 0;
    std::uint64_t failures = 0;
    std::string last_error;
  };
  Stats stats() const;

  class Impl;

 private:
  explicit ProductionModelLoader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace modelreg::loader
