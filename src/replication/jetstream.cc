#include "replication/jetstream.h"

#include <nats/nats.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <cstdlib>
#include <mutex>
#include <string>
#include <utility>

namespace modelreg::replication {

namespace {

constexpr std::int64_t kDuplicateWindowNs = 2LL * 60 * 1000 * 1000 * 1000;  // 2 minutes
constexpr const char* kMsgIdHeader = "Nats-Msg-Id";
constexpr const char* kExpectedLastSeqHeader = "Nats-Expected-Last-Sequence";

// nats_Open once per process; never nats_Close (other code of the process
// may still use the library).
natsStatus OpenLibrary() {
  static std::once_flag once;
  static natsStatus status = NATS_OK;
  std::call_once(once, [] { status = nats_Open(-1); });
  return status;
}

// [A-Za-z0-9_-]{1,64}: stream and consumer names.
bool ValidName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
  });
}

// Drops the source locations libnats puts before some texts:
// "(js.c:535): wrong last sequence: 1" -> "wrong last sequence: 1".
std::string_view WithoutLocation(std::string_view text) {
  for (;;) {
    if (text.empty() || text.front() != '(') return text;
    const std::size_t close = text.find("): ");
    if (close == std::string_view::npos) return text;
    const std::string_view inside = text.substr(1, close - 1);
    const std::size_t dot_c = inside.find(".c:");
    if (dot_c == std::string_view::npos || dot_c == 0 || inside.size() == dot_c + 3 ||
        inside.find_first_not_of("0123456789", dot_c + 3) != std::string_view::npos) {
      return text;
    }
    text.remove_prefix(close + 3);
  }
}

// The calling thread's text for the failure `s` just returned by libnats
// (its thread-local last error when that is about `s`).
std::string NatsText(natsStatus s) {
  natsStatus last = NATS_OK;
  const char* text = nats_GetLastError(&last);
  if (last == s && text != nullptr && *text != '\0') {
    const std::string_view bare = WithoutLocation(text);
    if (!bare.empty()) return std::string(bare);
  }
  return natsStatus_GetText(s);
}

// "stream S: <what>: <text> (<status>, JetStream error N)" with the code
// the failure maps to.
Status FromNats(const std::string& stream, std::string_view what, natsStatus s, jsErrCode jerr,
                std::int64_t timeout_ms = 0) {
  std::string text = NatsText(s);
  std::string detail = natsStatus_GetText(s);
  if (s == NATS_TIMEOUT && timeout_ms > 0) {
    text = "no answer within " + std::to_string(timeout_ms) +
           " ms (no server reachable, or the stream without a quorum)";
  }
  if (s == NATS_NO_RESPONDERS) {
    // libnats reports it with JetStream code 10076 ("not enabled"); here it
    // means that nothing serves the stream's subject or API right now.
    jerr = static_cast<jsErrCode>(0);
    text += " (no stream leader: the cluster lost its quorum or is electing a leader)";
  }
  if (jerr != 0) detail += ", JetStream error " + std::to_string(static_cast<int>(jerr));
  std::string message = "stream " + stream + ": " + std::string(what) + ": " + text;
  if (text != natsStatus_GetText(s) || jerr != 0) {
    if (text.find(detail) == std::string::npos) message += " (" + detail + ")";
  }
  switch (jerr) {
    case JSStreamNotFoundErr:
    case JSNoMessageFoundErr:
    case JSConsumerNotFoundErr:
      return Status::NotFound(std::move(message));
    case JSStreamNameExistErr:
      return Status::FailedPrecondition(std::move(message));
    default:
      break;
  }
  switch (s) {
    case NATS_NOT_FOUND:
      return Status::NotFound(std::move(message));
    case NATS_INVALID_ARG:
    case NATS_INVALID_SUBJECT:
    case NATS_MAX_PAYLOAD:
      return Status::InvalidArgument(std::move(message));
    default:
      // Unreachable, timed out, no responders, no quorum, closed, ...
      return Status::IOError(std::move(message));
  }
}

// A header name: visible ASCII without ':'. A value: no CR, LF or NUL
// (they would cut the message's header block), and neither empty nor with
// blanks at either end: libnats 3.4 trims a value's blanks when it reads a
// message, and reads an empty value as the whole next header line.
bool ValidHeaderName(std::string_view name) {
  if (name.empty()) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return c > ' ' && c < 0x7f && c != ':'; });
}
bool ValidHeaderValue(std::string_view value) {
  if (value.empty() || value.front() == ' ' || value.front() == '\t' || value.back() == ' ' ||
      value.back() == '\t') {
    return false;
  }
  return value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}
bool ReservedHeader(std::string_view name) {
  if (name.size() < 5) return false;
  const std::string_view prefix = "nats-";
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    const char c = name[i];
    const char lower = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    if (lower != prefix[i]) return false;
  }
  return true;
}

// Data and headers of a message from libnats.
StreamMessage ToStreamMessage(natsMsg* m, std::uint64_t seq) {
  StreamMessage out;
  out.seq = seq;
  const char* data = natsMsg_GetData(m);
  const int len = natsMsg_GetDataLength(m);
  if (data != nullptr && len > 0) out.data.assign(data, static_cast<std::size_t>(len));
  const char** keys = nullptr;
  int count = 0;
  if (natsMsgHeader_Keys(m, &keys, &count) == NATS_OK) {
    for (int i = 0; i < count; ++i) {
      const char* value = nullptr;
      if (natsMsgHeader_Get(m, keys[i], &value) == NATS_OK && value != nullptr) {
        out.headers.emplace(keys[i], value);
      }
    }
    std::free(static_cast<void*>(keys));
  }
  return out;
}

// "wrong last sequence: 7" -> 7.
bool ParseTrailingNumber(std::string_view text, std::uint64_t* out) {
  const std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return false;
  std::string_view digits = text.substr(colon + 1);
  while (!digits.empty() && digits.front() == ' ') digits.remove_prefix(1);
  if (digits.empty()) return false;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), *out);
  return ec == std::errc() && end == digits.data() + digits.size();
}

std::int64_t Millis(std::chrono::milliseconds d) {
  return std::max<std::int64_t>(1, static_cast<std::int64_t>(d.count()));
}

}  // namespace

struct JetStream::Impl {
  std::string stream;
  std::string subject;
  std::int64_t timeout_ms = 5000;
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;

  // The consumer (StartConsumer, Fetch, Ack).
  std::mutex consumer_mu;
  natsSubscription* sub = nullptr;
  std::map<std::uint64_t, natsMsg*> pending;  // fetched, not acked yet

  ~Impl() {
    DropConsumer();
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);  // closes it first
  }

  // Under consumer_mu (or from the destructor).
  void DropConsumer() {
    for (auto& [seq, m] : pending) natsMsg_Destroy(m);
    pending.clear();
    // Leaves the durable consumer on the server (StartConsumer created it,
    // not js_PullSubscribe, so not even an unsubscribe would delete it).
    natsSubscription_Destroy(sub);
    sub = nullptr;
  }

  Status Fail(std::string_view what, natsStatus s, jsErrCode jerr) const {
    return FromNats(stream, what, s, jerr, timeout_ms);
  }

  // The stream's info; the caller destroys it.
  Result<jsStreamInfo*> Info() {
    jsStreamInfo* si = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    const natsStatus s = js_GetStreamInfo(&si, js, stream.c_str(), nullptr, &jerr);
    if (s != NATS_OK) {
      jsStreamInfo_Destroy(si);
      if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
        return Err(Status::NotFound("stream " + stream + ": not found on the NATS cluster"));
      }
      return Err(Fail("stream info", s, jerr));
    }
    return si;
  }

  // Whether `si` is a stream this wrapper can use (it takes `subject`).
  Status CheckConfig(const jsStreamInfo* si) const {
    const jsStreamConfig* cfg = si->Config;
    if (cfg != nullptr) {
      for (int i = 0; i < cfg->SubjectsLen; ++i) {
        if (cfg->Subjects[i] != nullptr && subject == cfg->Subjects[i]) return Status::OK();
      }
    }
    return Status::FailedPrecondition("stream " + stream + ": exists but does not take subject " +
                                      subject + " (not a modelreg stream?)");
  }

  Status Create(int replicas) {
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char* subjects[] = {subject.c_str()};
    cfg.Name = stream.c_str();
    cfg.Description = "modelreg event log";
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Retention = js_LimitsPolicy;
    cfg.Discard = js_DiscardOld;
    cfg.Storage = js_FileStorage;
    cfg.Replicas = replicas;
    cfg.Duplicates = kDuplicateWindowNs;
    cfg.DenyDelete = true;
    cfg.DenyPurge = true;
    jsStreamInfo* si = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    const natsStatus s = js_AddStream(&si, js, &cfg, nullptr, &jerr);
    jsStreamInfo_Destroy(si);
    if (s == NATS_OK) return Status::OK();
    if (jerr == JSStreamNameExistErr) {
      // Created by another process meanwhile (or with another config).
      auto info = Info();
      if (!info) return info.error();
      const Status st = CheckConfig(*info);
      jsStreamInfo_Destroy(*info);
      return st;
    }
    return Fail("creating the stream (" + std::to_string(replicas) + " replicas)", s, jerr);
  }
};

JetStream::JetStream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
JetStream::~JetStream() = default;

Result<std::unique_ptr<JetStream>> JetStream::Connect(const JetStreamOptions& o, bool create) {
  if (!ValidName(o.stream)) {
    return Err(Status::InvalidArgument("stream name '" + o.stream +
                                       "': want 1 to 64 of A-Z a-z 0-9 _ -"));
  }
  if (o.urls.empty()) {
    return Err(Status::InvalidArgument("stream " + o.stream + ": no NATS server url"));
  }
  if (create && (o.replicas < 1 || o.replicas > 5)) {
    return Err(Status::InvalidArgument("stream " + o.stream + ": replicas " +
                                       std::to_string(o.replicas) + ": want 1 to 5"));
  }
  if (const natsStatus s = OpenLibrary(); s != NATS_OK) {
    return Err(FromNats(o.stream, "initializing libnats", s, static_cast<jsErrCode>(0)));
  }

  auto impl = std::make_unique<Impl>();
  impl->stream = o.stream;
  impl->subject = "modelreg." + o.stream + ".events";
  impl->timeout_ms = Millis(o.timeout);

  std::string joined;
  for (const auto& u : o.urls) joined += (joined.empty() ? "" : ",") + u;

  natsOptions* opts = nullptr;
  std::vector<const char*> servers;
  for (const auto& u : o.urls) servers.push_back(u.c_str());
  natsStatus s = natsOptions_Create(&opts);
  if (s == NATS_OK) s = natsOptions_SetServers(opts, servers.data(), static_cast<int>(servers.size()));
  if (s == NATS_OK) s = natsOptions_SetName(opts, "modelreg");
  if (s == NATS_OK) s = natsOptions_SetTimeout(opts, impl->timeout_ms);
  if (s == NATS_OK) s = natsOptions_SetAllowReconnect(opts, true);
  // Reconnect for ever: a follower or shipper outlives any one server.
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts, -1);
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(opts, 250);
  // A request in flight when the connection drops fails at once (the
  // caller retries) instead of waiting out its timeout.
  if (s == NATS_OK) s = natsOptions_SetFailRequestsOnDisconnect(opts, true);
  if (s != NATS_OK) {
    Status st = FromNats(o.stream, "NATS options (" + joined + ")", s, static_cast<jsErrCode>(0));
    natsOptions_Destroy(opts);
    return Err(std::move(st));
  }
  s = natsConnection_Connect(&impl->nc, opts);
  natsOptions_Destroy(opts);  // the connection keeps its own copy
  if (s != NATS_OK) {
    return Err(FromNats(o.stream, "connecting to " + joined, s, static_cast<jsErrCode>(0)));
  }

  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = impl->timeout_ms;
  s = natsConnection_JetStream(&impl->js, impl->nc, &jo);
  if (s != NATS_OK) {
    return Err(FromNats(o.stream, "JetStream context", s, static_cast<jsErrCode>(0)));
  }

  auto info = impl->Info();
  if (info) {
    const Status st = impl->CheckConfig(*info);
    jsStreamInfo_Destroy(*info);
    MODELREG_RETURN_IF_ERROR(st);
  } else if (info.error().code() == Code::kNotFound && create) {
    MODELREG_RETURN_IF_ERROR(impl->Create(o.replicas));
  } else {
    return Err(info.error());
  }
  return std::unique_ptr<JetStream>(new JetStream(std::move(impl)));
}

const std::string& JetStream::Subject() const { return impl_->subject; }
const std::string& JetStream::Stream() const { return impl_->stream; }

Result<std::uint64_t> JetStream::LastSeq() {
  auto info = impl_->Info();
  if (!info) return Err(info.error());
  const std::uint64_t last = (*info)->State.LastSeq;
  jsStreamInfo_Destroy(*info);
  return last;
}

Result<StreamMessage> JetStream::Get(std::uint64_t seq) {
  if (seq == 0) {
    return Err(Status::NotFound("stream " + impl_->stream + ": no message 0 (sequences start at 1)"));
  }
  natsMsg* m = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  const natsStatus s = js_GetMsg(&m, impl_->js, impl_->stream.c_str(), seq, nullptr, &jerr);
  if (s != NATS_OK) {
    natsMsg_Destroy(m);
    Status st = impl_->Fail("get message " + std::to_string(seq), s, jerr);
    if (st.code() == Code::kNotFound) {
      return Err(Status::NotFound("stream " + impl_->stream + ": no message " +
                                  std::to_string(seq) + " (" + NatsText(s) + ")"));
    }
    return Err(std::move(st));
  }
  StreamMessage out = ToStreamMessage(m, seq);
  natsMsg_Destroy(m);
  return out;
}

Result<PublishAck> JetStream::Publish(
    const std::string& msg_id, std::uint64_t expected_last_seq, std::string_view data,
    const std::vector<std::pair<std::string, std::string>>& headers) {
  const std::string& stream = impl_->stream;
  if (msg_id.empty() || !ValidHeaderValue(msg_id)) {
    return Err(Status::InvalidArgument("stream " + stream +
                                       ": a message id must be non-empty, without CR, LF or "
                                       "blanks at either end"));
  }
  for (const auto& [name, value] : headers) {
    if (!ValidHeaderName(name) || ReservedHeader(name) || !ValidHeaderValue(value)) {
      return Err(Status::InvalidArgument(
          "stream " + stream + ": header '" + name +
          "': want a name of visible ASCII without ':' not starting with Nats-, and a "
          "non-empty value without CR, LF or blanks at either end"));
    }
  }
  if (data.size() > static_cast<std::size_t>(INT_MAX)) {
    return Err(Status::InvalidArgument("stream " + stream + ": message of " +
                                       std::to_string(data.size()) + " bytes is too large"));
  }

  natsMsg* m = nullptr;
  natsStatus s = natsMsg_Create(&m, impl_->subject.c_str(), nullptr, data.data(),
                                static_cast<int>(data.size()));
  // Always explicit, "0" included: jsPubOptions.ExpectLastSeq = 0 means
  // "no expectation" to libnats, while the server honours a "0" header.
  const std::string expected = std::to_string(expected_last_seq);
  if (s == NATS_OK) s = natsMsgHeader_Set(m, kMsgIdHeader, msg_id.c_str());
  if (s == NATS_OK) s = natsMsgHeader_Set(m, kExpectedLastSeqHeader, expected.c_str());
  for (const auto& [name, value] : headers) {
    if (s == NATS_OK) s = natsMsgHeader_Set(m, name.c_str(), value.c_str());
  }
  if (s != NATS_OK) {
    natsMsg_Destroy(m);
    return Err(impl_->Fail("building message " + msg_id, s, static_cast<jsErrCode>(0)));
  }

  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = impl_->timeout_ms;
  jsPubAck* pa = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  s = js_PublishMsg(&pa, impl_->js, m, &po, &jerr);
  natsMsg_Destroy(m);
  if (s != NATS_OK) {
    jsPubAck_Destroy(pa);
    if (jerr == JSStreamWrongLastSequenceErr) {
      const std::string text = NatsText(s);
      std::uint64_t last = 0;
      std::string message = "stream " + stream + ": the last sequence is ";
      message += ParseTrailingNumber(text, &last) ? std::to_string(last) : "another";
      message += ", not the expected " + std::to_string(expected_last_seq) + " (server: " + text +
                 "; message " + msg_id + " not stored)";
      return Err(Status::Conflict(std::move(message)));
    }
    return Err(impl_->Fail("publish " + msg_id + " on " + impl_->subject, s, jerr));
  }
  PublishAck ack;
  ack.seq = pa->Sequence;
  ack.duplicate = pa->Duplicate;
  jsPubAck_Destroy(pa);
  return ack;
}

Status JetStream::StartConsumer(const std::string& durable, std::uint64_t start_seq) {
  const std::string& stream = impl_->stream;
  if (!ValidName(durable)) {
    return Status::InvalidArgument("stream " + stream + ": consumer name '" + durable +
                                   "': want 1 to 64 of A-Z a-z 0-9 _ -");
  }
  std::lock_guard<std::mutex> lock(impl_->consumer_mu);
  impl_->DropConsumer();

  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_DeleteConsumer(impl_->js, stream.c_str(), durable.c_str(), nullptr, &jerr);
  if (s != NATS_OK && s != NATS_NOT_FOUND && jerr != JSConsumerNotFoundErr) {
    return impl_->Fail("deleting consumer " + durable, s, jerr);
  }

  // Created here rather than by js_PullSubscribe, which deletes a consumer
  // it created when the subscription is unsubscribed: a durable outlives
  // this object whatever happens to the subscription.
  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = durable.c_str();
  cc.Description = "modelreg follower";
  if (start_seq <= 1) {
    cc.DeliverPolicy = js_DeliverAll;
  } else {
    cc.DeliverPolicy = js_DeliverByStartSequence;
    cc.OptStartSeq = start_seq;
  }
  cc.AckPolicy = js_AckExplicit;
  cc.FilterSubject = impl_->subject.c_str();
  jsConsumerInfo* ci = nullptr;
  jerr = static_cast<jsErrCode>(0);
  s = js_AddConsumer(&ci, impl_->js, stream.c_str(), &cc, nullptr, &jerr);
  jsConsumerInfo_Destroy(ci);
  if (s != NATS_OK) return impl_->Fail("creating consumer " + durable, s, jerr);

  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream.c_str();
  so.Consumer = durable.c_str();
  jerr = static_cast<jsErrCode>(0);
  s = js_PullSubscribe(&impl_->sub, impl_->js, impl_->subject.c_str(), durable.c_str(), nullptr,
                       &so, &jerr);
  if (s != NATS_OK) {
    natsSubscription_Destroy(impl_->sub);
    impl_->sub = nullptr;
    return impl_->Fail("subscribing to consumer " + durable, s, jerr);
  }
  return Status::OK();
}

Result<std::vector<StreamMessage>> JetStream::Fetch(int max, std::chrono::milliseconds wait) {
  const std::string& stream = impl_->stream;
  if (max < 1) {
    return Err(Status::InvalidArgument("stream " + stream + ": fetch of " + std::to_string(max) +
                                       " messages"));
  }
  std::lock_guard<std::mutex> lock(impl_->consumer_mu);
  if (impl_->sub == nullptr) {
    return Err(Status::FailedPrecondition("stream " + stream + ": fetch without a consumer"));
  }
  natsMsgList list{};
  jsErrCode jerr = static_cast<jsErrCode>(0);
  const natsStatus s = natsSubscription_Fetch(&list, impl_->sub, max, Millis(wait), &jerr);
  std::vector<StreamMessage> out;
  if (s != NATS_OK && list.Count == 0) {
    natsMsgList_Destroy(&list);
    if (s == NATS_TIMEOUT) return out;  // nothing new in time
    return Err(impl_->Fail("fetch", s, jerr));
  }
  for (int i = 0; i < list.Count; ++i) {
    natsMsg* m = list.Msgs[i];
    if (m == nullptr) continue;
    jsMsgMetaData* meta = nullptr;
    if (natsMsg_GetMetaData(&meta, m) != NATS_OK) continue;  // not a stream message
    const std::uint64_t seq = meta->Sequence.Stream;
    jsMsgMetaData_Destroy(meta);
    out.push_back(ToStreamMessage(m, seq));
    // A redelivery replaces the copy still held.
    auto [it, inserted] = impl_->pending.emplace(seq, m);
    if (!inserted) {
      natsMsg_Destroy(it->second);
      it->second = m;
    }
    list.Msgs[i] = nullptr;  // kept in `pending`
  }
  natsMsgList_Destroy(&list);
  std::sort(out.begin(), out.end(),
            [](const StreamMessage& a, const StreamMessage& b) { return a.seq < b.seq; });
  return out;
}

Status JetStream::Ack(std::uint64_t seq) {
  std::lock_guard<std::mutex> lock(impl_->consumer_mu);
  auto it = impl_->pending.find(seq);
  if (it == impl_->pending.end()) {
    return Status::NotFound("stream " + impl_->stream + ": message " + std::to_string(seq) +
                            " was not fetched or is already acked");
  }
  const natsStatus s = natsMsg_Ack(it->second, nullptr);
  if (s != NATS_OK) {
    return impl_->Fail("ack of message " + std::to_string(seq), s, static_cast<jsErrCode>(0));
  }
  natsMsg_Destroy(it->second);
  impl_->pending.erase(it);
  return Status::OK();
}

bool JetStream::Connected() const {
  return natsConnection_Status(impl_->nc) == NATS_CONN_STATUS_CONNECTED;
}

}  // namespace modelreg::replication
