// The leader's side of replication (docs/replication.md): ships every event
// of the log to its JetStream stream, in log order, so that the stream is
// the log. Stream sequence n holds event n: its exact stored bytes, with
// headers Nats-Msg-Id = event_id, Nats-Expected-Last-Sequence = n - 1,
// Modelreg-Seq = n and Modelreg-Hash = its chain hash (hex). A second
// writer is refused by the stream itself (the expected last sequence).
//
// At attach (every writable open of a leader registry) the shipper checks
// the stream against the log: the event at the shorter one's end must be
// the same in both (else a divergence that stops this registry writing);
// a stream longer than the log (another writer wrote, or a publish whose
// local write then failed) refuses the open; a shorter one is filled up
// (sync mode: before the open returns; async: in the background).
//
// sync: every event is published from the log's writer thread before its
//   batch is written, and the append fails unless a quorum of the stream
//   acknowledged it. No acknowledgement is retried with the same message
//   id (the stream drops a repeat) for up to `publish_deadline`; then the
//   append fails and nothing is written locally. After such a failure the
//   next append first checks that the stream still ends at this log's head
//   (a late copy of the failed event would not), else every append is
//   refused until the registry is reopened (which then refuses: follow the
//   stream, then promote).
// async: events are written locally first; a background thread ships them
//   in order, retrying for ever; a refusal by the stream (another writer)
//   stops shipping and is reported.
#pragma once

#include <memory>

#include "registry/registry.h"
#include "replication/jetstream.h"

namespace modelreg::replication {

// The attacher modelreg-net installs (registry::SetReplicationAttacher).
Result<std::unique_ptr<registry::ReplicationAttachment>> AttachLeader(
    registry::Registry& reg, const registry::ReplicationConfig& config);

// Installs AttachLeader for every writable open in this process.
void InstallLeaderAttacher();

// What a leader's stream looks like beside its log (`modelreg replication
// status`, promote-follower): the stream's last sequence and whether the
// log and the stream agree on their common prefix's last event.
struct StreamComparison {
  std::uint64_t stream_last = 0;
  std::uint64_t log_head = 0;
  bool agree = false;    // the event at min(stream_last, log_head) is the same
  std::string problem;   // when !agree
};
Result<StreamComparison> CompareWithStream(const EventStore& log, JetStream& js);

// Leadership (fencing a former leader): stream "<stream>-leaders" holds one
// record per writer change, {"leader_id": ..., "at_event": N}. A writer
// checks at every attach that the last record is its own.
struct LeaderRecord {
  std::uint64_t record_seq = 0;  // 0 = no record yet
  std::string leader_id;
  std::uint64_t at_event = 0;
};
Result<LeaderRecord> CurrentLeader(const registry::ReplicationConfig& config);
// Appends a record naming `leader_id` if the last record is still
// `expected` (its record_seq; Conflict if another promotion got in first).
Status ClaimLeadership(const registry::ReplicationConfig& config, const std::string& leader_id,
                       std::uint64_t at_event, const LeaderRecord& expected);

// The headers every shipped event carries besides NATS's own.
inline constexpr const char* kSeqHeader = "Modelreg-Seq";
inline constexpr const char* kHashHeader = "Modelreg-Hash";

}  // namespace modelreg::replication
