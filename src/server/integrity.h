// IntegrityMonitor: `modelreg serve` checks its registry in the background
// — the hash chain, the Merkle tree and the projections, as `modelreg
// verify` does, through a read-only view opened for each check (a
// consistent snapshot while the server keeps writing) — at start and then
// every `every` seconds, and keeps the last result for GET
// /api/v1/integrity (docs/api.md) and the web page.
// Thread-safety: Latest() from any thread; Start/Stop from one.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include <nlohmann/json.hpp>

#include "common/clock.h"

namespace modelreg::server {

struct IntegrityCheck {
  TimeNs started_at = 0;
  TimeNs finished_at = 0;
  bool ok = false;             // chain, tree (when built) and projections all fine
  bool chain_ok = false;
  std::uint64_t events = 0;    // events checked
  std::uint64_t first_bad_seq = 0;
  std::string problem;         // what failed ("" when ok)
  bool tree_checked = false;
  std::string tree_root;       // hex, when tree_checked
  bool projection_ok = false;
};

// {"started_at", "finished_at", "ok", "chain_ok", "events", "first_bad_seq"
// (null when ok), "problem", "tree_checked", "tree_root" (null), "projection_ok"}
nlohmann::json IntegrityJson(const IntegrityCheck& c);

class IntegrityMonitor {
 public:
  // `root`: the registry directory.
  IntegrityMonitor(std::string root, std::chrono::seconds every)
      : root_(std::move(root)), every_(every) {}
  ~IntegrityMonitor() { Stop(); }
  IntegrityMonitor(const IntegrityMonitor&) = delete;
  IntegrityMonitor& operator=(const IntegrityMonitor&) = delete;

  // Checks now (in the background thread), then every `every` seconds
  // (0: only this once).
  void Start();
  // Waits for a check in progress to finish (a check cannot be cut short).
  void Stop();
  // The last finished check; nullopt before the first finished.
  std::optional<IntegrityCheck> Latest() const;
  std::chrono::seconds every() const { return every_; }

 private:
  void Loop();
  IntegrityCheck CheckOnce() const;
  std::string root_;
  std::chrono::seconds every_;
  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;                   // guarded by mu_
  std::optional<IntegrityCheck> latest_;  // guarded by mu_
};

}  // namespace modelreg::server
