// Signed checkpoints published by a running `modelreg serve`
// (docs/proofs.md): one at start, then every N seconds and/or every N
// events (when the log grew), each appended to the witness file if one is
// named; and on demand, when a proof needs a tree newer than the last one.
// Thread-safety: all methods are safe from many threads.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "common/clock.h"
#include "common/status.h"
#include "log/event_store.h"
#include "note/checkpoint.h"

namespace modelreg::proofs {

struct PublisherOptions {
  note::SignerKey key;
  std::string origin;        // "" = the key's name
  std::string witness_file;  // "" = none
  int every_seconds = 0;     // 0 = not by time
  std::uint64_t every_events = 0;  // 0 = not by count
  const Clock* clock = &SystemClock::Instance();
  // Told about a checkpoint that could not be signed or written to the
  // witness file (the server keeps serving; the next attempt retries).
  std::function<void(const Status&)> on_error;
};

struct SignedCheckpoint {
  std::string note;
  note::Checkpoint checkpoint;
};

// A checkpoint of `tree` signed with `key` at `time` (origin "" = the
// key's name): what `modelreg checkpoint`, `prove --key`, signed backups
// and the publisher all sign.
Result<SignedCheckpoint> SignTree(const note::SignerKey& key, const std::string& origin,
                                  const TreeHead& tree, TimeNs time);

class CheckpointPublisher {
 public:
  CheckpointPublisher(const EventStore& log, PublisherOptions options);
  ~CheckpointPublisher();
  CheckpointPublisher(const CheckpointPublisher&) = delete;
  CheckpointPublisher& operator=(const CheckpointPublisher&) = delete;

  // Signs the first checkpoint and starts the periodic publishing.
  Status Start();
  // The newest checkpoint covering at least `min_size` events; signs (and
  // publishes) one of the current tree when the newest is older.
  Result<SignedCheckpoint> Latest(std::uint64_t min_size = 0);
  std::uint64_t published() const;  // checkpoints signed so far
  // A signed checkpoint of `tree` (e.g. the tree a backup holds) with this
  // publisher's key and origin; not published.
  Result<std::string> Sign(const TreeHead& tree) const;

 private:
  Status PublishLocked();
  void Loop();

  const EventStore& log_;
  PublisherOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  SignedCheckpoint latest_;
  bool have_ = false;
  std::uint64_t published_ = 0;
  std::thread thread_;
};

}  // namespace modelreg::proofs
