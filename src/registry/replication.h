// Replication roles (docs/replication.md): <root>/replication.json says
// whether this registry is the leader that ships its log to a NATS
// JetStream stream, or a follower that takes its events from one. The
// registry core only enforces the roles; the shipping and following live
// in src/replication and are attached by programs that link them.
//
//   {"role": "leader", "stream": "prod", "nats": ["nats://h1:4222", ...],
//    "mode": "sync", "replicas": 3}
//   {"role": "follower", "stream": "prod", "nats": [...],
//    "artifacts_from": "http://leader:8080" | "/shared/registry",
//    "token_file": "/etc/modelreg/read.token", "name": "host-b"}
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace modelreg::registry {

class Registry;

struct ReplicationConfig {
  std::string role;    // "leader" | "follower"
  std::string stream;  // JetStream stream name
  std::vector<std::string> nats;  // server URLs of one cluster
  std::string mode = "sync";      // leader: "sync" | "async"
  int replicas = 3;               // leader: when it creates the stream
  std::string artifacts_from;     // follower: leader URL or a registry directory
  std::string token_file;         // follower: bearer token for artifacts_from (URL)
  std::string name;               // follower: its durable consumer's name
  // leader: this writer's identity in the stream's leadership record
  // (stream "<stream>-leaders"): set by `replication enable` and
  // `promote-follower`; a leader whose id is not the last record's is
  // fenced (its writable opens are refused).
  std::string leader_id;
};

inline constexpr const char* kReplicationFile = "replication.json";

// Reads <root>/replication.json: nullopt when there is none; InvalidArgument
// naming the file when it does not parse or says something unknown.
Result<std::optional<ReplicationConfig>> LoadReplicationConfig(const std::string& root);
// Checks `c` (InvalidArgument) and writes it atomically.
Status SaveReplicationConfig(const std::string& root, const ReplicationConfig& c);
// Removes <root>/replication.json (the registry stops being replicated).
Status RemoveReplicationConfig(const std::string& root);
// Stream names: [A-Za-z0-9_-], 1..64 characters.
Status ValidateStreamName(const std::string& name);

// What a leader's writable open attaches (the shipper): lives exactly as
// long as the registry (destroyed first, before the log closes).
class ReplicationAttachment {
 public:
  virtual ~ReplicationAttachment() = default;
  // Prometheus text lines for /metrics (each ends with '\n').
  virtual std::string MetricsText() const = 0;
};

// Installed once by a program that links src/replication (modelreg-net):
// every writable open of a leader registry calls it after loading the
// state; its error fails the open. Without one, a leader in sync mode
// refuses every append (this program cannot publish), one in async mode
// appends locally and the next shipper ships.
using ReplicationAttacher =
    std::function<Result<std::unique_ptr<ReplicationAttachment>>(Registry&, const ReplicationConfig&)>;
void SetReplicationAttacher(ReplicationAttacher attacher);
// The attacher installed (empty if none).
ReplicationAttacher CurrentReplicationAttacher();

}  // namespace modelreg::registry
