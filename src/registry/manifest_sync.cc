// Keeping manifest.json (its format: artifacts/manifest.h) in step with the
// state: a background thread rewrites it shortly after writes, off the
// commands' durable path; open, rebuild and close make sure it matches the
// log.
#include <algorithm>
#include <chrono>
#include <exception>
#include <mutex>
#include <optional>
#include <string>

#include "artifacts/manifest.h"
#include "registry/registry.h"

namespace modelreg::registry {

void Registry::ManifestLoop() {
  // Coalesces bursts: after a wake-up, waits a moment for more writes, then
  // writes the state as it is then. A failure is retried a second later.
  // Each rewrite costs two fsyncs that share the journal with the log's:
  // at most about two rewrites a second while writes keep coming, fewer
  // for a large registry (see below).
  constexpr auto kCoalesce = std::chrono::milliseconds(500);
  constexpr auto kMaxRetry = std::chrono::seconds(60);
  std::chrono::milliseconds retry(1000);  // doubles while failures repeat
  std::unique_lock<std::mutex> lock(manifest_wake_mu_);
  while (true) {
    manifest_wake_.wait(lock, [this] { return manifest_stop_ || manifest_pending_; });
    if (manifest_stop_) return;
    manifest_wake_.wait_for(lock, kCoalesce, [this] { return manifest_stop_; });
    if (manifest_stop_) return;  // the destructor writes what is left
    manifest_pending_ = false;
    lock.unlock();
    const auto started = std::chrono::steady_clock::now();
    Status st = WriteManifest();
    const auto took = std::chrono::steady_clock::now() - started;
    if (!st.ok()) ManifestFailed(st);  // retried below, with a growing delay
    lock.lock();
    if (st.ok()) {
      retry = std::chrono::milliseconds(1000);
      // A large registry's manifest takes a while to write (0.1 s per
      // ~100,000 versions), most of it under the state lock: the next
      // rewrite waits ten times as long, so it never costs writers more
      // than ~10% of the time.
      manifest_wake_.wait_for(lock, 10 * took, [this] { return manifest_stop_; });
    } else {
      manifest_pending_ = true;
      manifest_wake_.wait_for(lock, retry, [this] { return manifest_stop_; });
      retry = std::min<std::chrono::milliseconds>(2 * retry, kMaxRetry);
    }
  }
}

Status Registry::FlushManifest() {
  if (read_only_) return Status::OK();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!loaded_) return Status::OK();  // opened for a rebuild that did not run
  }
  return WriteManifest();
}

Status Registry::WriteManifest(bool force) {
  std::lock_guard<std::mutex> serialize(manifest_mu_);
  // Written as text straight from the state (artifacts::ManifestWriter),
  // under the state lock.
  std::string out;
  Seq seq = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    seq = state_.seq;
    // A concurrent writer already wrote this state or a newer one.
    if (!force && manifest_written_ && manifest_seq_ >= seq) return Status::OK();
    const Head head = store_->head();
    artifacts::ManifestWriter w(state_.seq, head.seq == state_.seq ? head.hash : Digest{});
    for (const auto& [type, ts] : state_.types) {
      w.Type(type, ts.production);
      for (const VersionRecord* r : SortedVersions(ts)) {
        w.Version({.version = r->version,
                   .artifact_name = r->artifact_name,
                   .purged = r->purged,
                   .sha256 = r->artifact_sha256,
                   .size = r->artifact_size,
                   .status = projection::StatusName(r->status)});
      }
    }
    out = w.Finish(state_.at);
  }
  Status st = artifacts::WriteFileAtomic(artifacts::ManifestPath(root_), out);
  if (st.ok()) {
    manifest_seq_ = seq;
    manifest_written_ = true;
    manifest_warned_.store(false);  // a later failure is news again
  }
  return st;
}

void Registry::ManifestFailed(const Status& st) {
  if (manifest_warned_.exchange(true)) return;
  const std::string path = artifacts::ManifestPath(root_);
  Warn(path + " could not be rewritten (" + st.message() +
       "); the command is unaffected (manifest.json is derived from the log). To repair: "
       "remove or rename whatever is at " + path +
       " (it must be a regular file in a writable directory); the next write or open rewrites "
       "it");
}

bool Registry::ManifestMatches(Seq head) {
  std::optional<Seq> written;
  try {
    written = artifacts::ReadManifestHeadSeq(artifacts::ManifestPath(root_));
  } catch (const std::exception&) {
    // An unreadable manifest (an I/O error mid-file) does not match: it is
    // rewritten, or reported by ManifestFailed. Never a failed command.
  }
  const bool current = written && *written == head;
  if (current) {
    std::lock_guard<std::mutex> serialize(manifest_mu_);
    manifest_seq_ = head;
    manifest_written_ = true;
  }
  return current;
}

}  // namespace modelreg::registry
