// A thin wrapper over the NATS C client's JetStream API (libnats): one
// connection to a NATS cluster and one stream used as a replicated log
// (docs/replication.md). The stream takes the events on one subject,
// "modelreg.<stream>.events"; each message carries the expected last
// sequence, so a stale writer is refused instead of appending out of order.
//
// Errors: an unreachable cluster, a timeout, no responders or a stream
// without quorum are IOError naming the stream and the NATS error text; a
// publish whose expected last sequence is stale is Conflict; a missing
// stream or message is NotFound; a bad stream or consumer name, or a bad
// header, is InvalidArgument.
//
// Thread-safety: Subject, LastSeq, Get, Publish and Connected may be called
// from several threads at once (libnats' connection and JetStream context
// are thread-safe; e.g. a shipper publishing while another thread reads
// LastSeq). StartConsumer, Fetch and Ack share the one consumer's state and
// are serialized by an internal mutex; they are meant for one thread.
// Calls must not overlap the destructor.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace modelreg::replication {

struct JetStreamOptions {
  // Client urls (nats://127.0.0.1:4222, ...); several = the servers of one
  // cluster, all used as the reconnect list.
  std::vector<std::string> urls;
  // The stream's name: [A-Za-z0-9_-]{1,64} (else InvalidArgument).
  std::string stream;
  // Copies of each message the cluster keeps; used only when Connect
  // creates the stream.
  int replicas = 3;
  // Connect, JetStream API request and publish-acknowledgement timeout.
  std::chrono::milliseconds timeout{5000};
};

// One message of the stream.
struct StreamMessage {
  std::uint64_t seq = 0;  // stream sequence (1, 2, ...)
  std::string data;
  // The first value of each header, Nats-Msg-Id and
  // Nats-Expected-Last-Sequence included.
  std::map<std::string, std::string> headers;
};

// The stream's acknowledgement of a publish (stored on a quorum).
struct PublishAck {
  std::uint64_t seq = 0;   // the message's stream sequence
  bool duplicate = false;  // the message id was seen within the duplicate window:
                           // nothing was stored, `seq` is the first copy's
};

class JetStream {
 public:
  // Connects to `o.urls` (reconnecting for ever, to any of them, after a
  // disconnection). With `create` the stream is created if missing:
  // subject Subject(), file storage, `o.replicas` copies, no limits,
  // duplicate window 2 minutes, deny delete and deny purge (the stream is a
  // log). Without `create` a missing stream is NotFound. An existing stream
  // is used as it is (its replicas and limits unchanged), unless it does not
  // take Subject(): FailedPrecondition. No server reachable: IOError.
  static Result<std::unique_ptr<JetStream>> Connect(const JetStreamOptions& o, bool create);
  ~JetStream();
  JetStream(const JetStream&) = delete;
  JetStream& operator=(const JetStream&) = delete;

  // "modelreg.<stream>.events", the subject of every message.
  const std::string& Subject() const;
  // The stream's name.
  const std::string& Stream() const;

  // The stream's last sequence (0 = empty), from the stream's info.
  Result<std::uint64_t> LastSeq();

  // The message at stream sequence `seq`; NotFound if there is none (0,
  // beyond the end).
  Result<StreamMessage> Get(std::uint64_t seq);

  // Publishes `data` on Subject() with the headers Nats-Msg-Id = `msg_id`
  // and Nats-Expected-Last-Sequence = `expected_last_seq` (always sent, "0"
  // too: the first message expects an empty stream), plus `headers`. Waits
  // up to the timeout for the acknowledgement, which the stream sends once
  // a quorum stored the message.
  //  - A stale `expected_last_seq`: Conflict ("stream S: the last sequence
  //    is X, not the expected Y (server: wrong last sequence: X; ...)").
  //  - An id seen within the last 2 minutes: duplicate = true and the first
  //    copy's seq, nothing stored. The server checks the id first, so a
  //    retry with the same id and the same (now stale) expectation is a
  //    duplicate, not a Conflict.
  //  - No acknowledgement in time, no stream leader (quorum lost, an
  //    election: several seconds), no server: IOError. The message may
  //    still have been stored: retry with the same `msg_id`.
  // `msg_id` and header values: non-empty, no CR, LF, NUL or blanks at
  // either end (libnats would not read them back as sent); header names:
  // visible ASCII without ':', not starting with "Nats-". Else
  // InvalidArgument.
  Result<PublishAck> Publish(const std::string& msg_id, std::uint64_t expected_last_seq,
                             std::string_view data,
                             const std::vector<std::pair<std::string, std::string>>& headers);

  // (Re)creates the durable pull consumer `durable` ([A-Za-z0-9_-]{1,64})
  // on Subject(): deleted first if it exists, then created delivering from
  // stream sequence `start_seq` (0 or 1: from the first message), with
  // explicit acks. Replaces this object's previous consumer; messages
  // fetched from it and not acked are dropped (the server would redeliver
  // them).
  Status StartConsumer(const std::string& durable, std::uint64_t start_seq);

  // Up to `max` (>= 1) messages of the consumer in stream order, waiting at
  // most `wait` (at least 1 ms): an empty vector when none came in time,
  // also while the connection is down (see Connected()).
  // Each returned message must be acked with Ack(seq); until then it is
  // held here (a message not acked within the server's ack wait, 30 s, is
  // delivered again and replaces the held one). FailedPrecondition
  // without StartConsumer.
  Result<std::vector<StreamMessage>> Fetch(int max, std::chrono::milliseconds wait);

  // Acknowledges the fetched message at stream sequence `seq`. The ack is
  // sent without waiting for the server's confirmation: an ack lost with
  // the connection means a redelivery, so the consumer of this API must
  // apply by sequence (a repeat is skipped). NotFound if `seq` was not
  // fetched or is already acked.
  Status Ack(std::uint64_t seq);

  // Whether the connection is connected right now (not reconnecting or
  // closed), for metrics and status.
  bool Connected() const;

 private:
  struct Impl;
  explicit JetStream(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace modelreg::replication
