// Sequencing the registry's writes: validate against the state, append
// conditionally, apply durable events to the state in log order.
#include <chrono>

#include "registry/internal.h"
#include "registry/registry.h"

namespace modelreg::registry {

namespace {

constexpr int kWriteAttempts = 5;
constexpr const char* kTypeMoved =
    "another command changed this model type first; validating again";

}  // namespace

void Registry::ResetSequencing() const {
  sequenced_seq_ = state_.seq;
  sequenced_type_seq_.clear();
  committed_type_seq_.clear();
  durable_.clear();
}

// Concurrency (docs/layout.md, "Concurrent writers"): a command validates
// against the state and remembers the last event of its model type that
// the state holds. On the log's writer thread, in log order, the event is
// accepted only if no other event of that type was sequenced since; events
// of other types may be sequenced in between (and share one fsync), since
// a command's checks read only its own type. Durable deltas are applied to
// the in-memory state strictly in log order.
Result<AppendResult> Registry::Commit(const std::string& draft, const std::string& type,
                                      Seq type_seq, bool* raced, const std::string& guard,
                                      Seq guard_seq) {
  projection::Delta captured;
  Seq type_seq_before = 0;  // sequenced_type_seq_[type] before this event
  bool had_type_seq = false;
  RowsFn rows = [&](const AppendedEvent& ev) -> Result<std::vector<Row>> {
    std::lock_guard<std::mutex> lock(mu_);
    if (sequenced_seq_ + 1 != ev.seq) {
      *raced = true;
      return Err(Status::Conflict("registry state is behind the log; retry"));
    }
    auto it = sequenced_type_seq_.find(type);
    if ((it == sequenced_type_seq_.end() ? Seq{0} : it->second) != type_seq) {
      *raced = true;
      return Err(Status::Conflict(kTypeMoved));
    }
    if (!guard.empty()) {
      // The draft also read the guard's events (a promotion, the gate
      // policy): none may have been sequenced since either.
      auto g = sequenced_type_seq_.find(guard);
      if ((g == sequenced_type_seq_.end() ? Seq{0} : g->second) != guard_seq) {
        *raced = true;
        return Err(Status::Conflict(kTypeMoved));
      }
    }
    // Only other types' events can be pending: planning against the state
    // without them gives the same delta for this type.
    auto delta = projection::PlanUnchecked(state_, ev.event);
    if (!delta) return Err(delta.error());
    std::vector<Row> out = internal::ToRows(projection::EncodeDelta(*delta));
    captured = std::move(*delta);
    // Last, and nothing after it can throw: the event is in the batch.
    had_type_seq = it != sequenced_type_seq_.end();
    type_seq_before = had_type_seq ? it->second : 0;
    sequenced_seq_ = ev.seq;
    sequenced_type_seq_[type] = ev.seq;
    return out;
  };
  // The batch failed (a full disk): the event was never written, so the
  // sequencing goes back to where it was (the store calls this in reverse
  // log order, before it plans any later event).
  auto undo = [&] {
    std::lock_guard<std::mutex> lock(mu_);
    sequenced_seq_ = captured.seq - 1;
    if (had_type_seq) {
      sequenced_type_seq_[type] = type_seq_before;
    } else {
      sequenced_type_seq_.erase(type);
    }
  };
  *raced = false;
  std::shared_lock<std::shared_mutex> gate(append_gate_);
  auto r = store_->Append({draft, std::nullopt, rows, undo});
  gate.unlock();
  if (!r) return r;
  if (r->duplicate) {
    // The same event was appended before (an idempotent retry): answer
    // once the state includes it, as for a new one.
    std::unique_lock<std::mutex> lock(mu_);
    state_cv_.wait_for(lock, std::chrono::seconds(30), [&] { return state_.seq >= r->seq; });
  } else {
    const Seq seq = captured.seq;
    std::unique_lock<std::mutex> lock(mu_);
    durable_.emplace(seq, std::make_pair(type, std::move(captured)));
    // Apply every durable delta whose predecessors are applied.
    for (auto next = durable_.find(state_.seq + 1); next != durable_.end();
         next = durable_.find(state_.seq + 1)) {
      committed_type_seq_[next->second.first] = next->first;
      projection::Commit(state_, next->second.second);
      durable_.erase(next);
    }
    state_cv_.notify_all();
    // Read-your-writes: return only once the state includes this event. An
    // earlier event of the same group commit may still be on its way in
    // (its thread applies it, and this one with it, in a moment).
    if (!state_cv_.wait_for(lock, std::chrono::seconds(30), [&] { return state_.seq >= seq; })) {
      lock.unlock();
      Warn("event " + std::to_string(seq) +
           " is recorded, but the in-memory state has not caught up with it after 30 s");
    }
  }
  // The event is durable. manifest.json is derived: the manifest thread
  // rewrites it off this path (and the destructor before closing).
  {
    std::lock_guard<std::mutex> lock(manifest_wake_mu_);
    manifest_pending_ = true;
  }
  manifest_wake_.notify_one();
  return r;
}

Result<AppendResult> Registry::Write(
    const std::string& type, const std::function<Result<std::string>(const State&)>& build_draft,
    const std::string& guard) {
  if (read_only_) return Err(Status::FailedPrecondition("registry is open read-only"));
  if (replica_) {
    return Err(Status::FailedPrecondition(
        "this registry is a follower: it takes its events from its stream only; write to the "
        "leader (docs/replication.md)"));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!loaded_ && !rows_current_) {
      return Err(Status::FailedPrecondition("registry was opened for a rebuild; rebuild it first"));
    }
  }
  MODELREG_RETURN_IF_ERROR(Load());  // after a rebuild, from the rows
  for (int attempt = 0; attempt < kWriteAttempts; ++attempt) {
    std::string draft;
    Seq type_seq = 0, guard_seq = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto d = build_draft(state_);
      if (!d) return Err(d.error());
      draft = std::move(*d);
      auto it = committed_type_seq_.find(type);
      type_seq = it == committed_type_seq_.end() ? 0 : it->second;
      if (!guard.empty()) {
        auto g = committed_type_seq_.find(guard);
        guard_seq = g == committed_type_seq_.end() ? 0 : g->second;
      }
    }
    bool raced = false;
    auto r = Commit(draft, type, type_seq, &raced, guard, guard_seq);
    if (!r && raced) {
      // Another command changed this type first: wait until its change is
      // in the state, then validate again against it.
      const Seq head = store_->head().seq;
      std::unique_lock<std::mutex> lock(mu_);
      state_cv_.wait_for(lock, std::chrono::seconds(5),
                         [&] { return state_.seq >= head; });
      continue;
    }
    return r;
  }
  return Err(Status::Conflict("the registry kept changing under this command; retry"));
}

}  // namespace modelreg::registry
