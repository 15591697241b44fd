#include "proofs/publisher.h"

#include <chrono>

#include "note/key_file.h"

namespace modelreg::proofs {

Result<SignedCheckpoint> SignTree(const note::SignerKey& key, const std::string& origin,
                                  const TreeHead& tree, TimeNs time) {
  SignedCheckpoint out;
  out.checkpoint.origin = origin.empty() ? key.name : origin;
  out.checkpoint.size = tree.size;
  out.checkpoint.root = tree.root;
  out.checkpoint.time = time;
  auto signed_note = note::SignCheckpoint(out.checkpoint, key);
  if (!signed_note) return Err(signed_note.error());
  out.note = std::move(*signed_note);
  return out;
}

CheckpointPublisher::CheckpointPublisher(const EventStore& log, PublisherOptions options)
    : log_(log), options_(std::move(options)) {
  if (options_.origin.empty()) options_.origin = options_.key.name;
}

CheckpointPublisher::~CheckpointPublisher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Status CheckpointPublisher::PublishLocked() {
  auto tree = log_.TreeAt();
  if (!tree) return tree.error();
  auto signed_tree = SignTree(options_.key, options_.origin, *tree, options_.clock->NowNs());
  if (!signed_tree) return signed_tree.error();
  if (!options_.witness_file.empty()) {
    MODELREG_RETURN_IF_ERROR(note::AppendToWitness(options_.witness_file, signed_tree->note));
  }
  latest_ = std::move(*signed_tree);
  have_ = true;
  ++published_;
  return Status::OK();
}

Status CheckpointPublisher::Start() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    MODELREG_RETURN_IF_ERROR(PublishLocked());
  }
  if (options_.every_seconds > 0 || options_.every_events > 0) {
    thread_ = std::thread([this] { Loop(); });
  }
  return Status::OK();
}

void CheckpointPublisher::Loop() {
  using std::chrono::milliseconds;
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, milliseconds(200), [this] { return stop_; });
    if (stop_) break;
    const Seq head = log_.head().seq;
    if (head <= latest_.checkpoint.size) continue;  // nothing new to sign
    const TimeNs age = options_.clock->NowNs() - latest_.checkpoint.time.value_or(0);
    const bool by_count =
        options_.every_events > 0 && head - latest_.checkpoint.size >= options_.every_events;
    const bool by_time = options_.every_seconds > 0 &&
                         age >= static_cast<TimeNs>(options_.every_seconds) * 1'000'000'000LL;
    if (!by_count && !by_time) continue;
    Status st = PublishLocked();
    if (!st.ok() && options_.on_error) options_.on_error(st);
  }
}

Result<SignedCheckpoint> CheckpointPublisher::Latest(std::uint64_t min_size) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!have_ || latest_.checkpoint.size < min_size) {
    Status st = PublishLocked();
    if (!st.ok()) {
      if (options_.on_error) options_.on_error(st);
      return Err(st);
    }
    if (latest_.checkpoint.size < min_size) {
      return Err(Status::NotFound("the log has " + std::to_string(latest_.checkpoint.size) +
                                  " events, fewer than " + std::to_string(min_size)));
    }
  }
  return latest_;
}

Result<std::string> CheckpointPublisher::Sign(const TreeHead& tree) const {
  auto signed_tree = SignTree(options_.key, options_.origin, tree, options_.clock->NowNs());
  if (!signed_tree) return Err(signed_tree.error());
  return signed_tree->note;
}

std::uint64_t CheckpointPublisher::published() const {
  std::lock_guard<std::mutex> lock(mu_);
  return published_;
}

}  // namespace modelreg::proofs
