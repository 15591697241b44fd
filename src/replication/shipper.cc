// The leader's shipper (replication/shipper.h).
#include "replication/shipper.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>

#include "common/clock.h"
#include "common/sha256.h"

#include <nlohmann/json.hpp>

namespace modelreg::replication {

namespace {

using registry::ReplicationConfig;
using Clock = std::chrono::steady_clock;

// How long one event's publish is retried (same message id) before its
// append fails (sync) or the next attempt waits (async).
constexpr std::chrono::seconds kPublishDeadline(15);
constexpr std::chrono::milliseconds kAttemptTimeout(2000);
// async: how long closing waits for the events not shipped yet.
constexpr std::chrono::seconds kCloseDrain(5);

JetStreamOptions StreamOptions(const ReplicationConfig& c) {
  JetStreamOptions o;
  o.urls = c.nats;
  o.stream = c.stream;
  o.replicas = c.replicas;
  o.timeout = kAttemptTimeout;
  return o;
}

std::string EventId(const EventBuffer& e) {
  return e.event().event_id() != nullptr ? e.event().event_id()->str() : std::string();
}

Result<std::unique_ptr<JetStream>> LeadersStream(const ReplicationConfig& config) {
  JetStreamOptions o = StreamOptions(config);
  o.stream = config.stream + "-leaders";
  return JetStream::Connect(o, /*create=*/true);
}

// The last record of a leaders stream (record_seq 0: none).
Result<LeaderRecord> ReadLeader(JetStream& js, const std::string& stream) {
  LeaderRecord r;
  auto last = js.LastSeq();
  if (!last) return Err(last.error());
  if (*last == 0) return r;
  auto msg = js.Get(*last);
  if (!msg) return Err(msg.error());
  try {
    const auto j = nlohmann::json::parse(msg->data);
    r.record_seq = *last;
    r.leader_id = j.at("leader_id").get<std::string>();
    r.at_event = j.at("at_event").get<std::uint64_t>();
  } catch (const std::exception& ex) {
    return Err(Status::Corruption("stream '" + stream + "-leaders' record " +
                                  std::to_string(*last) + " does not parse: " + ex.what()));
  }
  return r;
}

class Shipper final : public registry::ReplicationAttachment {
 public:
  Shipper(registry::Registry& reg, ReplicationConfig config)
      : reg_(reg), config_(std::move(config)) {}

  ~Shipper() override {
    if (config_.mode == "async" && thread_.joinable()) {
      // async: a short-lived writer (a CLI command) ships what it wrote
      // before it goes, for up to kCloseDrain, unless the stream could not
      // be reached at all; the rest waits for the next writer of this
      // registry.
      const auto until = Clock::now() + kCloseDrain;
      while (!stopped_ && !unreachable_ &&
             !(shipping_ && shipped_.load() >= reg_.Log().head().seq) && Clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();  // ends a publish's retries, the threads' waits
    // Never an unshipped append from here on (takes the log's write lock:
    // waits for a publish in flight).
    const std::string stream = config_.stream;
    reg_.SetPublishHook([stream](const AppendedEvent&) {
      return Status::FailedPrecondition("replication to stream '" + stream +
                                        "' is closing with the registry; nothing was written");
    });
    if (thread_.joinable()) thread_.join();
    if (watcher_.joinable()) watcher_.join();
  }

  Status Start() {
    if (config_.mode == "sync") {
      auto js = JetStream::Connect(StreamOptions(config_), /*create=*/true);
      if (!js) {
        return js.error().WithContext("replication (sync mode) cannot reach stream '" +
                                      config_.stream +
                                      "', and no event may be written before the stream has it");
      }
      js_ = std::move(*js);
      MODELREG_RETURN_IF_ERROR(Reconcile());
      MODELREG_RETURN_IF_ERROR(ShipBacklog());
      reg_.SetPublishHook([this](const AppendedEvent& ev) { return PublishSync(ev); });
      // A promotion elsewhere fences this writer within about a second,
      // even before the new leader's first write takes the stream's next
      // sequence.
      watcher_ = std::thread([this] { WatchLeadership(); });
      return Status::OK();
    }
    // async: when the stream answers now, the fence and the comparison
    // with the log decide the open, as in sync mode; when it does not, the
    // shipping thread connects later and checks then.
    auto js = JetStream::Connect(StreamOptions(config_), /*create=*/true);
    if (js) {
      js_ = std::move(*js);
      MODELREG_RETURN_IF_ERROR(Reconcile());
    } else {
      unreachable_ = true;
    }
    thread_ = std::thread([this] { AsyncLoop(); });
    watcher_ = std::thread([this] { WatchLeadership(); });
    return Status::OK();
  }

  std::string MetricsText() const override {
    const std::uint64_t head = reg_.Log().head().seq;
    const std::uint64_t shipped = shipped_.load();
    const std::uint64_t lag = head > shipped ? head - shipped : 0;
    double lag_seconds = 0;
    if (lag > 0) {
      auto e = reg_.Log().Get(shipped + 1);
      if (e) {
        const TimeNs now = SystemClock::Instance().NowNs();
        lag_seconds = static_cast<double>(now - e->event().recorded_at()) / 1e9;
        if (lag_seconds < 0) lag_seconds = 0;
      }
    }
    const std::string l = "{stream=\"" + config_.stream + "\",mode=\"" + config_.mode + "\"}";
    std::string out;
    out += "# HELP modelreg_replication_shipped_seq Last event the stream acknowledged.\n";
    out += "# TYPE modelreg_replication_shipped_seq gauge\n";
    out += "modelreg_replication_shipped_seq" + l + " " + std::to_string(shipped) + "\n";
    out += "# HELP modelreg_replication_lag_events Events in the log not yet in the stream.\n";
    out += "# TYPE modelreg_replication_lag_events gauge\n";
    out += "modelreg_replication_lag_events" + l + " " + std::to_string(lag) + "\n";
    out += "# HELP modelreg_replication_lag_seconds Age of the oldest event not yet in the stream.\n";
    out += "# TYPE modelreg_replication_lag_seconds gauge\n";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3f", lag_seconds);
    out += "modelreg_replication_lag_seconds" + l + " " + buf + "\n";
    out += "# HELP modelreg_replication_publish_errors_total Publishes that failed (each retry counts).\n";
    out += "# TYPE modelreg_replication_publish_errors_total counter\n";
    out += "modelreg_replication_publish_errors_total" + l + " " +
           std::to_string(publish_errors_.load()) + "\n";
    out += "# HELP modelreg_replication_stopped 1 when shipping stopped: the stream refused this "
           "registry (another writer) or diverged from the log.\n";
    out += "# TYPE modelreg_replication_stopped gauge\n";
    out += "modelreg_replication_stopped" + l + " " + (stopped_.load() ? "1" : "0") + "\n";
    return out;
  }

 private:
  // The stream against the log at attach: see shipper.h.
  Status Reconcile() {
    auto leader = CurrentLeader(config_);
    if (!leader) return leader.error().WithContext("replication: leadership of '" + config_.stream + "'");
    if (leader->record_seq == 0) {
      // The first writer of this stream claims it (replication enabled by
      // hand, or before leadership records existed).
      MODELREG_RETURN_IF_ERROR(ClaimLeadership(config_, config_.leader_id,
                                               reg_.Log().head().seq, *leader));
    } else if (leader->leader_id != config_.leader_id) {
      stopped_ = true;
      return Status::FailedPrecondition(
          "replication: this registry is fenced: stream '" + config_.stream +
          "' has a newer writer (" + leader->leader_id + ", since event " +
          std::to_string(leader->at_event) + ") than this one (" + config_.leader_id +
          "). Nothing is written; make it a follower of the stream with `modelreg follow` "
          "(docs/replication.md, \"Failover\")");
    }
    auto cmp = CompareWithStream(reg_.Log(), *js_);
    if (!cmp) return cmp.error();
    if (!cmp->agree) {
      return Status::Corruption("replication: stream '" + config_.stream +
                                "' and this registry's log diverge: " + cmp->problem +
                                ". Shipping stopped; nothing is written (docs/replication.md, "
                                "\"Divergence\")");
    }
    if (cmp->stream_last > cmp->log_head) {
      return Status::FailedPrecondition(
          "replication: stream '" + config_.stream + "' holds " +
          std::to_string(cmp->stream_last) + " events but this registry's log only " +
          std::to_string(cmp->log_head) + ": events " + std::to_string(cmp->log_head + 1) + ".." +
          std::to_string(cmp->stream_last) +
          " were written by another writer (a promoted follower), or published before a local "
          "write failed. This registry must not write: catch it up with `modelreg follow`, then "
          "`modelreg promote-follower` if it is to be the writer again (docs/replication.md)");
    }
    shipped_ = cmp->stream_last;
    reconciled_ = true;
    return Status::OK();
  }

  // sync: every second, the last leadership record must still be ours.
  void WatchLeadership() {
    std::unique_ptr<JetStream> leaders;
    while (!WaitStop(std::chrono::milliseconds(1000))) {
      if (!leaders) {
        auto js = LeadersStream(config_);
        if (!js) continue;  // unreachable: the publishes say so
        leaders = std::move(*js);
      }
      auto leader = ReadLeader(*leaders, config_.stream);
      if (!leader) continue;
      if (leader->record_seq != 0 && leader->leader_id != config_.leader_id) {
        const std::string why = "stream '" + config_.stream + "' has a newer writer (" +
                                leader->leader_id + ", since event " +
                                std::to_string(leader->at_event) + ")";
        fenced_reason_ = why;
        stopped_ = true;
        Report("this registry is fenced: " + why + "; every write is refused");
        return;
      }
    }
  }

  // Publishes one event, retrying the same message id until the deadline.
  Status PublishOne(std::uint64_t seq, std::string_view bytes, const Digest& hash,
                    const std::string& event_id) {
    const auto deadline = Clock::now() + kPublishDeadline;
    const std::vector<std::pair<std::string, std::string>> headers = {
        {kSeqHeader, std::to_string(seq)}, {kHashHeader, ToHex(hash)}};
    std::chrono::milliseconds backoff(50);
    for (;;) {
      auto ack = js_->Publish(event_id, seq - 1, bytes, headers);
      if (ack) {
        if (ack->seq != seq) {
          stopped_ = true;
          return Status::Corruption("replication: stream '" + config_.stream + "' stored event " +
                                    std::to_string(seq) + " as message " +
                                    std::to_string(ack->seq) + "; shipping stopped");
        }
        shipped_ = seq;
        return Status::OK();
      }
      ++publish_errors_;
      if (ack.error().code() != Code::kIOError || Clock::now() + backoff >= deadline) {
        return ack.error().WithContext("replication: event " + std::to_string(seq) +
                                       " was not acknowledged by stream '" + config_.stream + "'");
      }
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (cv_.wait_for(lock, backoff, [this] { return stop_; })) {
          return Status::IOError("replication: shutting down");
        }
      }
      backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
    }
  }

  Status ShipBacklog() {
    const std::uint64_t head = reg_.Log().head().seq;
    for (std::uint64_t s = shipped_ + 1; s <= head; ++s) {
      auto e = reg_.Log().GetWithHash(s);
      if (!e) return e.error();
      MODELREG_RETURN_IF_ERROR(PublishOne(s, e->first.bytes(), e->second, EventId(e->first)));
    }
    return Status::OK();
  }

  // sync mode, on the log's writer thread, before the event's batch.
  Status PublishSync(const AppendedEvent& ev) {
    if (stopped_) {
      std::string why = stop_reason_;
      if (why.empty()) why = "this registry is fenced: " + fenced_reason_.load();
      return Status::FailedPrecondition(
          "replication: shipping to stream '" + config_.stream + "' stopped (" + why +
          "); nothing is written until this registry is reopened");
    }
    if (unsure_ && Clock::now() < recheck_after_) {
      return Status::IOError("replication: stream '" + config_.stream +
                             "' did not answer a moment ago (sync mode): nothing was written");
    }
    if (unsure_) {
      // The last publish failed: the stream must still end where the log does.
      auto last = js_->LastSeq();
      if (!last) {
        ++publish_errors_;
        recheck_after_ = Clock::now() + std::chrono::milliseconds(500);
        return last.error().WithContext("replication: cannot check stream '" + config_.stream +
                                        "' after a failed publish; nothing was written");
      }
      if (*last != ev.seq - 1) {
        stopped_ = true;
        stop_reason_ = "the stream ends at " + std::to_string(*last) + ", the log at " +
                       std::to_string(ev.seq - 1);
        return Status::FailedPrecondition(
            "replication: stream '" + config_.stream + "' ends at message " +
            std::to_string(*last) + " but this registry's log at event " +
            std::to_string(ev.seq - 1) +
            " (a failed publish was stored after all, or another writer wrote): nothing is "
            "written; reopen the registry (docs/replication.md)");
      }
      unsure_ = false;
    }
    Status st = PublishOne(ev.seq, ev.event.bytes(), ev.hash, EventId(ev.event));
    if (!st.ok()) {
      if (st.code() == Code::kConflict) {
        stopped_ = true;
        stop_reason_ = "the stream refused event " + std::to_string(ev.seq) +
                       ": another writer holds it";
        return Status::Conflict(st.message() +
                                "; another writer has written to the stream, so this registry "
                                "is no longer the leader: nothing was written");
      }
      unsure_ = true;
      return Status::IOError(st.message() + " (sync mode): nothing was written");
    }
    return Status::OK();
  }

  void Report(const std::string& message) {
    std::fprintf(stderr, "modelreg: replication: %s\n", message.c_str());
  }

  bool WaitStop(std::chrono::milliseconds d) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, d, [this] { return stop_; });
  }

  bool Stopping() {
    std::lock_guard<std::mutex> lock(mu_);
    return stop_;
  }

  // async mode: connect (retrying), reconcile, then follow the log's head.
  void AsyncLoop() {
    std::string last_report;
    while (!js_ && !Stopping()) {
      auto js = JetStream::Connect(StreamOptions(config_), /*create=*/true);
      if (js) {
        js_ = std::move(*js);
        unreachable_ = false;
        break;
      }
      ++publish_errors_;
      unreachable_ = true;
      if (js.error().message() != last_report) {
        last_report = js.error().message();
        Report("stream '" + config_.stream + "' unreachable (async mode: writes continue "
               "locally and are shipped once it is back): " + last_report);
      }
      if (WaitStop(std::chrono::milliseconds(1000))) return;
    }
    if (!js_) return;
    if (Status st = reconciled_ ? Status::OK() : Reconcile(); !st.ok()) {
      stopped_ = true;
      stop_reason_ = st.message();
      Report(st.message());
      return;
    }
    shipping_ = true;
    while (!Stopping()) {
      const std::uint64_t head = reg_.Log().head().seq;
      if (head <= shipped_) {
        reg_.WaitForHead(head, std::chrono::milliseconds(500));
        continue;
      }
      const std::uint64_t s = shipped_ + 1;
      auto e = reg_.Log().GetWithHash(s);
      if (!e) {
        Report(e.error().message());
        if (WaitStop(std::chrono::milliseconds(1000))) return;
        continue;
      }
      Status st = PublishOne(s, e->first.bytes(), e->second, EventId(e->first));
      if (st.ok()) continue;
      if (st.code() == Code::kConflict || st.code() == Code::kCorruption) {
        stopped_ = true;
        stop_reason_ = st.message();
        Report(st.message() + "; shipping stopped (async mode: events from " + std::to_string(s) +
               " on are only in this registry)");
        return;
      }
      Report(st.message() + "; retrying");
    }
  }

  registry::Registry& reg_;
  const ReplicationConfig config_;
  std::unique_ptr<JetStream> js_;
  std::atomic<std::uint64_t> shipped_{0};
  std::atomic<std::uint64_t> publish_errors_{0};
  std::atomic<bool> stopped_{false};
  std::atomic<bool> shipping_{false};  // async: connected and reconciled
  std::atomic<bool> unreachable_{false};  // async: the last connect attempt failed
  std::string stop_reason_;  // writer thread (sync) or the shipping thread (async)
  bool unsure_ = false;      // writer thread (sync)
  Clock::time_point recheck_after_{};  // writer thread (sync): after a failed check
  bool reconciled_ = false;  // Reconcile passed (Start, or the async thread)
  // The watcher's finding (sync); a std::string behind stopped_'s release.
  struct FencedReason {
    std::mutex mu;
    std::string text;
    FencedReason& operator=(const std::string& t) {
      std::lock_guard<std::mutex> lock(mu);
      text = t;
      return *this;
    }
    std::string load() {
      std::lock_guard<std::mutex> lock(mu);
      return text;
    }
  } fenced_reason_;
  std::thread watcher_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace

Result<LeaderRecord> CurrentLeader(const registry::ReplicationConfig& config) {
  auto js = LeadersStream(config);
  if (!js) return Err(js.error());
  return ReadLeader(**js, config.stream);
}

Status ClaimLeadership(const registry::ReplicationConfig& config, const std::string& leader_id,
                       std::uint64_t at_event, const LeaderRecord& expected) {
  auto js = LeadersStream(config);
  if (!js) return js.error();
  const nlohmann::json j = {{"leader_id", leader_id}, {"at_event", at_event}};
  auto ack = (*js)->Publish(leader_id + "@" + std::to_string(expected.record_seq),
                            expected.record_seq, j.dump(), {});
  if (!ack) {
    if (ack.error().code() == Code::kConflict) {
      return Status::Conflict("another writer claimed stream '" + config.stream +
                              "' first; nothing changed");
    }
    return ack.error();
  }
  return Status::OK();
}

Result<StreamComparison> CompareWithStream(const EventStore& log, JetStream& js) {
  StreamComparison c;
  auto last = js.LastSeq();
  if (!last) return Err(last.error());
  c.stream_last = *last;
  c.log_head = log.head().seq;
  const std::uint64_t common = std::min(c.stream_last, c.log_head);
  if (common == 0) {
    c.agree = true;
    return c;
  }
  auto msg = js.Get(common);
  if (!msg) return Err(msg.error().WithContext("stream message " + std::to_string(common)));
  auto local = log.GetWithHash(common);
  if (!local) return Err(local.error());
  if (msg->data != local->first.bytes()) {
    c.problem = "event " + std::to_string(common) + " differs between the stream and the log";
    return c;
  }
  auto h = msg->headers.find(kHashHeader);
  if (h == msg->headers.end() || h->second != ToHex(local->second)) {
    c.problem = "the stream's chain hash of event " + std::to_string(common) +
                " is not the log's";
    return c;
  }
  c.agree = true;
  return c;
}

Result<std::unique_ptr<registry::ReplicationAttachment>> AttachLeader(
    registry::Registry& reg, const registry::ReplicationConfig& config) {
  auto shipper = std::make_unique<Shipper>(reg, config);
  MODELREG_RETURN_IF_ERROR(shipper->Start());
  return std::unique_ptr<registry::ReplicationAttachment>(std::move(shipper));
}

void InstallLeaderAttacher() { registry::SetReplicationAttacher(AttachLeader); }

}  // namespace modelreg::replication
