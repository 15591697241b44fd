// Replication commands (app/replication_commands.h, docs/replication.md).
#include "app/replication_commands.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "client/server_file.h"
#include "common/fs.h"
#include "log/envelope.h"
#include "registry/registry.h"
#include "registry/replication.h"
#include "replication/follower.h"
#include "replication/jetstream.h"
#include "replication/shipper.h"

namespace modelreg::app {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using registry::ReplicationConfig;

std::vector<std::string> SplitUrls(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    const std::size_t comma = s.find(',', start);
    std::string part = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!part.empty()) out.push_back(part);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

Status NeedAbsentServer(const Globals& g, const std::string& what) {
  if (client::ReadServerFile(g.root).has_value()) {
    return Status::FailedPrecondition("a `modelreg serve` holds " + g.root + " (server.json): stop it before " + what);
  }
  return Status::OK();
}

std::string NewLeaderId() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return std::string(host) + "-" + NewEventId().substr(0, 12);
}

Result<std::unique_ptr<registry::Registry>> OpenWritable(const Globals& g, bool replica = false) {
  registry::RegistryOptions o;
  o.root = g.root;
  o.clock = g.clock;
  o.lock_wait_ms = g.lock_wait_ms;
  o.replica = replica;
  o.on_warning = [g](const std::string& m) { Notify(g, "warning", m); };
  return registry::Registry::Open(o);
}

// The bearer token for a follower's artifacts_from URL: its token_file,
// else MODELREG_TOKEN.
Result<std::string> ArtifactsToken(const Globals& g, const ReplicationConfig& c) {
  if (c.token_file.empty()) return g.token;
  auto token = ReadRegularFile(c.token_file, 64 * 1024);
  if (!token) return Err(token.error());
  std::string t = *token;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
  return t;
}

// The registry's log beside its stream (a read-only view: works beside a
// writer), for status and promote-follower.
Result<replication::StreamComparison> CompareLocal(const Globals& g, const ReplicationConfig& c) {
  registry::RegistryOptions ro;
  ro.root = g.root;
  ro.read_only = true;
  auto view = registry::Registry::Open(ro);
  if (!view) return Err(view.error());
  replication::JetStreamOptions jo;
  jo.urls = c.nats;
  jo.stream = c.stream;
  auto js = replication::JetStream::Connect(jo, /*create=*/false);
  if (!js) return Err(js.error());
  return replication::CompareWithStream((*view)->Log(), **js);
}

}  // namespace

void InstallReplication() { replication::InstallLeaderAttacher(); }

Status RunReplicationEnable(const Globals& g, const ReplicationOptions& o, std::ostream& out) {
  ReplicationConfig c;
  c.role = "leader";
  c.stream = o.stream;
  c.nats = SplitUrls(o.nats);
  c.mode = o.mode;
  c.replicas = o.replicas;
  c.leader_id = NewLeaderId();
  MODELREG_RETURN_IF_ERROR(NeedAbsentServer(g, "enabling replication"));
  auto existing = registry::LoadReplicationConfig(g.root);
  if (!existing) return existing.error();
  if (*existing) {
    return Status::AlreadyExists("registry " + g.root + " is already replicated (" +
                                 (*existing)->role + " of stream '" + (*existing)->stream +
                                 "'; replication.json)");
  }
  if (!fs::exists(fs::path(g.root) / "registry" / "CURRENT")) {
    return Status::NotFound(g.root + " is not a modelreg registry (no " + g.root + "/registry)");
  }
  // The stream must not hold another log.
  {
    replication::JetStreamOptions jo;
    jo.urls = c.nats;
    jo.stream = c.stream;
    jo.replicas = c.replicas;
    auto js = replication::JetStream::Connect(jo, /*create=*/true);
    if (!js) return js.error();
    auto leader = replication::CurrentLeader(c);
    if (!leader) return leader.error();
    if (leader->record_seq != 0) {
      return Status::FailedPrecondition(
          "stream '" + c.stream + "' already has a writer (" + leader->leader_id +
          "): enabling would make two; follow it instead (`modelreg follow`)");
    }
  }
  MODELREG_RETURN_IF_ERROR(registry::SaveReplicationConfig(g.root, c));
  // The writable open attaches the shipper: it claims the stream and ships
  // the log (sync mode: before it returns).
  auto reg = OpenWritable(g);
  if (!reg) {
    (void)registry::RemoveReplicationConfig(g.root);
    return reg.error().WithContext("replication not enabled");
  }
  const std::uint64_t head = (*reg)->Log().head().seq;
  if (g.json) {
    out << json{{"role", "leader"}, {"stream", c.stream}, {"mode", c.mode}, {"events", head},
                {"leader_id", c.leader_id}}.dump() << "\n";
  } else {
    out << "registry " << g.root << " ships to stream '" << c.stream << "' (" << c.mode
        << " mode, " << c.replicas << " replicas): " << head << " events"
        << (c.mode == "sync" ? " in the stream" : " shipping in the background") << "\n";
  }
  return Status::OK();
}

Status RunReplicationStatus(const Globals& g, std::ostream& out) {
  auto cfg = registry::LoadReplicationConfig(g.root);
  if (!cfg) return cfg.error();
  if (!*cfg) {
    if (g.json) {
      out << json{{"role", "none"}}.dump() << "\n";
    } else {
      out << "registry " << g.root << " is not replicated\n";
    }
    return Status::OK();
  }
  const ReplicationConfig& c = **cfg;
  std::uint64_t head = 0;
  {
    registry::RegistryOptions ro;
    ro.root = g.root;
    ro.read_only = true;
    auto view = registry::Registry::Open(ro);
    if (!view) return view.error();
    head = (*view)->Log().head().seq;
  }
  json j = {{"role", c.role}, {"stream", c.stream}, {"log_head", head}};
  if (c.role == "leader") j["mode"] = c.mode;
  {
    auto cmp = CompareLocal(g, c);
    if (!cmp) {
      j["stream_error"] = cmp.error().message();
    } else {
      j["log_head"] = cmp->log_head;
      j["stream_last"] = cmp->stream_last;
      j["agree"] = cmp->agree;
      if (!cmp->agree) j["problem"] = cmp->problem;
      j["lag_events"] = cmp->stream_last > cmp->log_head ? cmp->stream_last - cmp->log_head : 0;
      j["unshipped_events"] = cmp->log_head > cmp->stream_last ? cmp->log_head - cmp->stream_last : 0;
    }
    auto leader = replication::CurrentLeader(c);
    if (leader && leader->record_seq != 0) {
      j["stream_leader"] = leader->leader_id;
      if (c.role == "leader") j["fenced"] = leader->leader_id != c.leader_id;
    }
  }
  if (g.json) {
    out << j.dump() << "\n";
    return Status::OK();
  }
  out << "role:        " << c.role << (c.role == "leader" ? " (" + c.mode + " mode)" : "") << "\n"
      << "stream:      " << c.stream << "\n"
      << "log head:    " << j["log_head"].get<std::uint64_t>() << "\n";
  if (j.contains("stream_error")) {
    out << "stream:      unreachable: " << j["stream_error"].get<std::string>() << "\n";
  } else {
    out << "stream last: " << j["stream_last"].get<std::uint64_t>() << "\n"
        << "agree:       " << (j["agree"].get<bool>() ? "yes" : "NO: " + j["problem"].get<std::string>())
        << "\n";
    if (j.contains("fenced")) out << "fenced:      " << (j["fenced"].get<bool>() ? "YES" : "no") << "\n";
  }
  return Status::OK();
}

Status RunReplicationDisable(const Globals& g, std::ostream& out) {
  MODELREG_RETURN_IF_ERROR(NeedAbsentServer(g, "disabling replication"));
  auto cfg = registry::LoadReplicationConfig(g.root);
  if (!cfg) return cfg.error();
  if (!*cfg) return Status::NotFound("registry " + g.root + " is not replicated");
  if ((*cfg)->role != "leader") {
    return Status::FailedPrecondition("registry " + g.root +
                                      " is a follower: promote it (`modelreg promote-follower`) "
                                      "rather than cut it loose");
  }
  MODELREG_RETURN_IF_ERROR(registry::RemoveReplicationConfig(g.root));
  out << "registry " << g.root << " no longer ships to stream '" << (*cfg)->stream << "'\n";
  return Status::OK();
}

Status RunFollow(const Globals& g, const ReplicationOptions& o, std::ostream& out) {
  ReplicationConfig c;
  auto existing = registry::LoadReplicationConfig(g.root);
  if (!existing) return existing.error();
  if (*existing && (*existing)->role == "follower") c = **existing;
  c.role = "follower";
  if (!o.stream.empty()) c.stream = o.stream;
  if (!o.nats.empty()) c.nats = SplitUrls(o.nats);
  if (!o.artifacts_from.empty()) c.artifacts_from = o.artifacts_from;
  if (!o.token_file.empty()) c.token_file = o.token_file;
  if (!o.name.empty()) c.name = o.name;
  c.leader_id.clear();
  if (c.stream.empty() || c.nats.empty() || c.artifacts_from.empty()) {
    return Status::InvalidArgument(
        "follow needs --nats, --stream and --artifacts-from (or a follower's replication.json)");
  }
  MODELREG_RETURN_IF_ERROR(registry::ValidateStreamName(c.stream));
  replication::FollowOptions fo;
  fo.root = g.root;
  fo.config = c;
  fo.once = o.once;
  auto token = ArtifactsToken(g, c);
  if (!token) return token.error();
  fo.token = *token;
  // SIGINT/SIGTERM stop following (the event being applied finishes).
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::atomic<bool> stop{false};
  std::atomic<bool> done{false};
  std::thread waiter([&] {
    while (!done.load()) {
      timespec ts{0, 200 * 1000 * 1000};
      if (sigtimedwait(&stop_signals, nullptr, &ts) > 0) stop = true;
    }
  });
  fo.stop = &stop;
  fo.log = [&out, &g](const std::string& m) {
    if (!g.json) out << m << std::endl;
  };
  auto r = replication::Follow(fo);
  done = true;
  waiter.join();
  if (!r) return r.error();
  if (g.json) {
    out << json{{"stream", c.stream}, {"head", r->head}, {"applied", r->applied}}.dump() << "\n";
  } else {
    out << "stopped at event " << r->head << " (" << r->applied << " applied)" << std::endl;
  }
  return Status::OK();
}

Status RunPromoteFollower(const Globals& g, const ReplicationOptions& o, std::ostream& out) {
  auto cfg = registry::LoadReplicationConfig(g.root);
  if (!cfg) return cfg.error();
  if (!*cfg || (*cfg)->role != "follower") {
    return Status::FailedPrecondition("registry " + g.root +
                                      " is not a follower (no follower replication.json)");
  }
  ReplicationConfig c = **cfg;
  // The leadership record this promotion replaces, read before catching
  // up: another promotion meanwhile makes the claim below fail.
  auto leader = replication::CurrentLeader(c);
  if (!leader) return leader.error();
  // Catch up with whatever the stream holds (fails while `modelreg follow`
  // holds the registry: it must be stopped first).
  replication::FollowOptions fo;
  fo.root = g.root;
  fo.config = c;
  fo.once = true;
  auto token = ArtifactsToken(g, c);
  if (!token) return token.error();
  fo.token = *token;
  const auto catch_up = [&]() -> Result<replication::FollowResult> {
    auto caught = replication::Follow(fo);
    if (!caught && caught.error().code() == Code::kBusy) {
      return Err(Status::Busy("another process holds " + g.root +
                              " (a running `modelreg follow`?): stop it, then promote"));
    }
    if (!caught) return Err(caught.error().WithContext("promote-follower: catching up"));
    return caught;
  };
  auto caught = catch_up();
  if (!caught) return caught.error();
  const auto holds_last = [&]() -> Status {
    auto cmp = CompareLocal(g, c);
    if (!cmp) return cmp.error();
    if (!cmp->agree || cmp->log_head != cmp->stream_last) {
      return Status::FailedPrecondition(
          "follower " + g.root + " does not hold the stream's last event (follower at " +
          std::to_string(cmp->log_head) + ", stream at " + std::to_string(cmp->stream_last) +
          (cmp->agree ? "" : "; " + cmp->problem) + "): not promoted");
    }
    return Status::OK();
  };
  MODELREG_RETURN_IF_ERROR(holds_last());
  ReplicationConfig leader_cfg;
  leader_cfg.role = "leader";
  leader_cfg.stream = c.stream;
  leader_cfg.nats = c.nats;
  leader_cfg.mode = o.mode;
  leader_cfg.replicas = o.replicas;
  leader_cfg.leader_id = NewLeaderId();
  // Fence the old leader: the leadership record now names this one.
  MODELREG_RETURN_IF_ERROR(
      replication::ClaimLeadership(leader_cfg, leader_cfg.leader_id, caught->head, *leader));
  // A running old leader checks its leadership every second and then
  // refuses every write; what it wrote before that is taken here.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  caught = catch_up();
  if (!caught) return caught.error();
  MODELREG_RETURN_IF_ERROR(holds_last());
  MODELREG_RETURN_IF_ERROR(registry::SaveReplicationConfig(g.root, leader_cfg));
  auto reg = OpenWritable(g);  // attaches: checks leadership and the stream again
  if (!reg) {
    // Still a follower: follow again, or run promote-follower again.
    (void)registry::SaveReplicationConfig(g.root, c);
    return reg.error().WithContext("not promoted: the first writable open failed");
  }
  if (g.json) {
    out << json{{"role", "leader"}, {"stream", c.stream}, {"mode", leader_cfg.mode},
                {"head", caught->head}, {"leader_id", leader_cfg.leader_id},
                {"previous_leader", leader->leader_id}}.dump() << "\n";
  } else {
    out << "registry " << g.root << " is now the writer of stream '" << c.stream << "' at event "
        << caught->head << " (" << leader_cfg.mode << " mode); the previous writer ("
        << (leader->leader_id.empty() ? "none recorded" : leader->leader_id)
        << ") is fenced: its writable opens are refused\n";
  }
  return Status::OK();
}

}  // namespace modelreg::app
