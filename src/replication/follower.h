// A follower registry (docs/replication.md): takes every event of its
// leader's JetStream stream, in order, through a durable pull consumer,
// and appends it to a local registry of the same format, which then
// answers every read (CLI, `serve`, the loader) locally.
//
// Each event must continue the local chain: stream sequence = event
// sequence = head + 1, its prev_hash = the head's hash, and its chain hash
// = the Modelreg-Hash header. A registration's artifact is fetched first
// (from the leader's HTTP API, or copied from a directory holding the
// leader's artifacts/) and its SHA-256 checked, so a registration is never
// visible before its artifact. An event that fails any check stops the
// follower with Corruption naming its sequence number; nothing of it is
// written.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "common/status.h"
#include "registry/replication.h"

namespace modelreg::replication {

struct FollowOptions {
  std::string root;                   // the follower's registry directory
  registry::ReplicationConfig config; // role "follower"
  std::string token;                  // bearer token for config.artifacts_from (a URL)
  // Progress lines ("following stream S from event N", "at event N").
  std::function<void(const std::string&)> log;
  const std::atomic<bool>* stop = nullptr;  // set to stop following
  // Stop once the follower holds the stream's last event (catch up and
  // exit: `modelreg follow --once`, promote-follower).
  bool once = false;
};

struct FollowResult {
  std::uint64_t head = 0;     // the follower's last event when it stopped
  std::uint64_t applied = 0;  // events appended by this run
};

// Creates the follower registry if `root` does not exist (writing its
// replication.json), or checks that an existing registry's log is a
// prefix of the stream (a former leader can follow its successor); then
// follows until `stop`, `once` or an error.
Result<FollowResult> Follow(const FollowOptions& options);

}  // namespace modelreg::replication
