// Replication through NATS JetStream (docs/replication.md):
//   modelreg replication enable --nats URLS --stream NAME [--mode sync|async] [--replicas N]
//   modelreg replication status | disable
//   modelreg follow --nats URLS --stream NAME --artifacts-from URL|DIR [--once]
//   modelreg promote-follower [--mode sync|async]
#pragma once

#include <ostream>
#include <string>

#include "app/registry_commands.h"
#include "common/status.h"

namespace modelreg::app {

struct ReplicationOptions {
  std::string nats;            // comma-separated nats:// URLs
  std::string stream;
  std::string mode = "sync";
  int replicas = 3;
  std::string artifacts_from;  // follow: leader URL or directory
  std::string token_file;      // follow: bearer token for a URL
  std::string name;            // follow: durable consumer name
  bool once = false;           // follow: catch up, then exit
};

Status RunReplicationEnable(const Globals& g, const ReplicationOptions& o, std::ostream& out);
Status RunReplicationStatus(const Globals& g, std::ostream& out);
Status RunReplicationDisable(const Globals& g, std::ostream& out);
// Follows until SIGTERM/SIGINT (or, with once, until caught up). Prints
// "following stream S into ROOT from event N" once started.
Status RunFollow(const Globals& g, const ReplicationOptions& o, std::ostream& out);
Status RunPromoteFollower(const Globals& g, const ReplicationOptions& o, std::ostream& out);

// In programs that link the replication layer: every writable open of a
// leader registry ships through it (registry::SetReplicationAttacher).
void InstallReplication();

}  // namespace modelreg::app
