// A follower registry (replication/follower.h).
#include "replication/follower.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <httplib.h>

#include "artifacts/artifact_store.h"
#include "common/sha256.h"
#include "events/model_events.h"
#include "log/event_buffer.h"
#include "registry/registry.h"
#include "replication/jetstream.h"
#include "replication/shipper.h"

namespace modelreg::replication {

namespace {

namespace fs = std::filesystem;
using registry::Registry;

Digest ChainHash(const Digest& prev, std::string_view bytes) {
  Sha256 h;
  h.Update(std::span<const std::uint8_t>(prev.data(), prev.size()));
  h.Update(bytes);
  return h.Finish();
}

bool IsUrl(const std::string& s) {
  return s.rfind("http://", 0) == 0 || s.rfind("https://", 0) == 0;
}

class Applier {
 public:
  Applier(Registry& reg, const FollowOptions& o, std::function<void(const std::string&)> log)
      : reg_(reg), o_(o), log_(std::move(log)) {}

  // Checks `msg` against the head and appends it; Corruption names the
  // sequence number of an event that fails a check.
  Status Apply(const StreamMessage& msg) {
    const Head head = reg_.Log().head();
    const std::uint64_t seq = head.seq + 1;
    const std::string where = "event " + std::to_string(msg.seq) + " of stream '" +
                              o_.config.stream + "'";
    if (msg.seq != seq) {
      return Status::Corruption(where + " arrived where event " + std::to_string(seq) +
                                " was expected");
    }
    auto seq_header = msg.headers.find(kSeqHeader);
    auto hash_header = msg.headers.find(kHashHeader);
    if (seq_header == msg.headers.end() || seq_header->second != std::to_string(seq) ||
        hash_header == msg.headers.end()) {
      return Status::Corruption(where + " was not published by a modelreg leader (its " +
                                kSeqHeader + "/" + kHashHeader + " headers are missing or wrong)");
    }
    const Digest hash = ChainHash(head.hash, msg.data);
    if (ToHex(hash) != hash_header->second) {
      return Status::Corruption(where + " fails the hash chain: its bytes hash to " +
                                ToHex(hash) + " after event " + std::to_string(head.seq) +
                                ", but the leader recorded " + hash_header->second +
                                " (altered or forged in the stream); nothing of it was written");
    }
    auto parsed = EventBuffer::Parse(msg.data);
    if (!parsed) {
      return Status::Corruption(where + " does not decode: " + parsed.error().message());
    }
    if (const auto* r = parsed->event().payload_as_ModelRegistered()) {
      MODELREG_RETURN_IF_ERROR(FetchArtifact(*parsed, *r, where));
    }
    auto applied = reg_.ApplyReplicated(msg.data);
    if (!applied) {
      const Status& e = applied.error();
      if (e.code() == Code::kInvalidArgument) {
        return Status::Corruption(where + " does not continue this registry's log: " + e.message());
      }
      return e;
    }
    return Status::OK();
  }

 private:
  Status FetchArtifact(const EventBuffer& event, const fb::ModelRegistered& r,
                       const std::string& where) {
    if (r.model_type() == nullptr || r.version() == nullptr || r.artifact_name() == nullptr ||
        r.artifact_sha256() == nullptr) {
      return Status::Corruption(where + ": a registration without type, version or artifact");
    }
    const std::string type = r.model_type()->str(), version = r.version()->str();
    const std::string name = r.artifact_name()->str();
    MODELREG_RETURN_IF_ERROR(artifacts::ValidateNameComponent(type, "model type").WithContext(where));
    MODELREG_RETURN_IF_ERROR(artifacts::ValidateNameComponent(version, "version").WithContext(where));
    MODELREG_RETURN_IF_ERROR(artifacts::ValidateFileName(name).WithContext(where));
    Digest want{};
    std::copy(r.artifact_sha256()->bytes()->begin(), r.artifact_sha256()->bytes()->end(),
              want.begin());
    const bool directory = r.artifact_kind() != nullptr &&
                           r.artifact_kind()->str() == events::kArtifactDirectory;
    const artifacts::ArtifactStore& store = reg_.artifacts();
    std::error_code ec;
    std::string source;
    std::string downloaded;
    const std::string& from = o_.config.artifacts_from;
    if (IsUrl(from)) {
      if (directory) {
        return Status::FailedPrecondition(
            where + " registers " + type + " " + version + ", a directory artifact, which the "
            "HTTP API does not serve: follow with --artifacts-from DIR (a directory holding the "
            "leader's artifacts/)");
      }
      auto got = Download(type, version, name, ToHex(want));
      if (!got && got.error().code() == Code::kNotFound) {
        // 410 Gone: the leader purged it since (its ArtifactPurged event
        // follows in the stream): the registration is applied without it.
        log_(where + ": the artifact of " + type + " " + version +
             " was purged on the leader; applied without it");
        return Status::OK();
      }
      if (!got) return got.error().WithContext(where);
      downloaded = *got;
      source = (fs::path(downloaded) / name).string();
    } else {
      const fs::path vdir = fs::path(from) / "artifacts" / type / version;
      source = (vdir / name).string();
      if (!fs::exists(source, ec) && fs::exists(vdir / "metadata.json", ec)) {
        // gc keeps metadata.json and checksum.sha256 of a purged version.
        log_(where + ": the artifact of " + type + " " + version +
             " was purged on the leader; applied without it");
        return Status::OK();
      }
    }
    auto staged = store.Stage(type, source);
    if (!downloaded.empty()) fs::remove_all(downloaded, ec);
    if (!staged) {
      return staged.error().WithContext("artifact of " + type + " " + version + " (" + where + ")");
    }
    if (staged->hash.sha256 != want) {
      store.Discard(*staged);
      return Status::Corruption("artifact of " + type + " " + version + " from " + from +
                                " has sha256 " + ToHex(staged->hash.sha256) + " but " + where +
                                " registered " + ToHex(want) + "; nothing was written");
    }
    const std::string metadata_json = events::ToJson(event)["payload"].dump(2) + "\n";
    return store.Publish(*staged, type, version, metadata_json);
  }

  // Downloads an artifact as `name` into a private temporary directory
  // (returned); checks the bytes' hash.
  Result<std::string> Download(const std::string& type, const std::string& version,
                               const std::string& name, const std::string& sha_hex) {
    const fs::path dir = fs::path(o_.root) / "artifacts";
    std::error_code ec;
    fs::create_directories(dir, ec);
    std::string tmpl = (dir / ".download-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      return Err(Status::IOError("cannot create a directory in " + dir.string()));
    }
    const std::string file = (fs::path(tmpl) / name).string();
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    Sha256 h;
    httplib::Client c(o_.config.artifacts_from);
    if (!o_.token.empty()) c.set_bearer_token_auth(o_.token);
    c.set_connection_timeout(3, 0);
    c.set_read_timeout(60, 0);
    auto res = c.Get("/api/v1/models/" + type + "/" + version + "/artifact",
                     [&](const char* data, std::size_t len) {
                       h.Update(std::string_view(data, len));
                       out.write(data, static_cast<std::streamsize>(len));
                       return static_cast<bool>(out);
                     });
    out.close();
    if (res && res->status == 410) {
      fs::remove_all(tmpl, ec);
      return Err(Status::NotFound("the leader purged the artifact of " + type + " " + version));
    }
    if (!res || res->status != 200 || !out) {
      fs::remove_all(tmpl, ec);
      return Err(Status::IOError(
          "download of the artifact of " + type + " " + version + " from " +
          o_.config.artifacts_from + " failed" +
          (res ? " (HTTP " + std::to_string(res->status) + ")"
               : " (" + httplib::to_string(res.error()) + ")")));
    }
    const std::string got = ToHex(h.Finish());
    if (got != sha_hex) {
      fs::remove_all(tmpl, ec);
      return Err(Status::Corruption("the artifact of " + type + " " + version + " downloaded from " +
                                    o_.config.artifacts_from + " has sha256 " + got +
                                    " but was registered with " + sha_hex));
    }
    return tmpl;
  }

  Registry& reg_;
  const FollowOptions& o_;
  std::function<void(const std::string&)> log_;
};

// The durable consumer's name: the configured one, else derived from the
// follower's directory.
std::string ConsumerName(const FollowOptions& o) {
  if (!o.config.name.empty()) return o.config.name;
  std::error_code ec;
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  const std::string abs = fs::weakly_canonical(o.root, ec).string();
  return "follower-" + ToHex(Sha256::Of(std::string(host) + ":" + abs)).substr(0, 16);
}

}  // namespace

Result<FollowResult> Follow(const FollowOptions& o) {
  auto log = [&](const std::string& m) {
    if (o.log) o.log(m);
  };
  std::error_code ec;
  const bool exists = fs::exists(fs::path(o.root) / "registry" / "CURRENT", ec);
  auto existing = registry::LoadReplicationConfig(o.root);
  if (!existing) return Err(existing.error());
  if (*existing && (*existing)->stream != o.config.stream) {
    return Err(Status::FailedPrecondition("registry " + o.root + " is replicated through stream '" +
                                          (*existing)->stream + "', not '" + o.config.stream + "'"));
  }
  JetStreamOptions jo;
  jo.urls = o.config.nats;
  jo.stream = o.config.stream;
  auto js = JetStream::Connect(jo, /*create=*/false);
  if (!js) return Err(js.error());
  // A log may follow the stream only if it is a prefix of it.
  const auto MustBePrefix = [&](const EventStore& local, const std::string& who) -> Status {
    auto cmp = CompareWithStream(local, **js);
    if (!cmp) return cmp.error();
    if (cmp->agree && cmp->log_head <= cmp->stream_last) return Status::OK();
    return Status::Corruption(
        who + " stream '" + o.config.stream + "': " +
        (cmp->agree ? "its log has " + std::to_string(cmp->log_head) +
                          " events, the stream only " + std::to_string(cmp->stream_last)
                    : cmp->problem) +
        " (its log is not a prefix of the stream; docs/replication.md, \"Divergence\")");
  };
  if (exists && !(*existing && (*existing)->role == "follower")) {
    // A registry that is not a follower yet (a former leader): its log
    // must be a prefix of the stream.
    registry::RegistryOptions ro;
    ro.root = o.root;
    ro.read_only = true;
    auto view = Registry::Open(ro);
    if (!view) return Err(view.error());
    MODELREG_RETURN_IF_ERROR(MustBePrefix((*view)->Log(), "registry " + o.root + " cannot follow"));
  }
  fs::create_directories(o.root, ec);
  if (ec) return Err(Status::IOError("cannot create " + o.root + ": " + ec.message()));
  MODELREG_RETURN_IF_ERROR(registry::SaveReplicationConfig(o.root, o.config));

  registry::RegistryOptions wo;
  wo.root = o.root;
  wo.create_if_missing = true;
  wo.replica = true;
  auto reg = Registry::Open(wo);
  if (!reg) return Err(reg.error());
  Registry& r = **reg;
  MODELREG_RETURN_IF_ERROR(MustBePrefix(r.Log(), "follower " + o.root + " cannot follow"));
  FollowResult result;
  result.head = r.Log().head().seq;
  const auto stopping = [&] { return o.stop != nullptr && o.stop->load(); };
  // Transient failures (the stream electing a leader after a node was lost,
  // the leader not serving an artifact yet): retried, with a line the first
  // time, until they pass or following is stopped.
  const auto retry = [&](const std::function<Status()>& step, const std::string& what) -> Status {
    std::chrono::milliseconds backoff(100);
    bool reported = false;
    for (;;) {
      Status st = step();
      if (st.ok() || st.code() != Code::kIOError || stopping()) return st;
      if (!reported) log(what + ": " + st.message() + "; retrying");
      reported = true;
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
    }
  };
  MODELREG_RETURN_IF_ERROR(retry(
      [&] { return (*js)->StartConsumer(ConsumerName(o), result.head + 1); }, "starting the consumer"));
  log("following stream '" + o.config.stream + "' into " + o.root + " from event " +
      std::to_string(result.head + 1));
  Applier applier(r, o, log);
  // Downloads a killed follower left behind.
  for (const auto& e : fs::directory_iterator(fs::path(o.root) / "artifacts", ec)) {
    if (e.path().filename().string().rfind(".download-", 0) == 0) fs::remove_all(e.path(), ec);
  }
  bool reported_current = false;
  int fetch_failures = 0;
  while (o.stop == nullptr || !o.stop->load()) {
    auto batch = (*js)->Fetch(256, std::chrono::milliseconds(500));
    if (!batch) {
      if (batch.error().code() != Code::kIOError) return Err(batch.error());
      // Reconnecting, or the consumer lost with a node: after a few
      // failures in a row it is created again from the head.
      if (++fetch_failures % 10 == 0) {
        log("fetching from stream '" + o.config.stream + "': " + batch.error().message() +
            "; creating the consumer again");
        MODELREG_RETURN_IF_ERROR(retry(
            [&] { return (*js)->StartConsumer(ConsumerName(o), r.Log().head().seq + 1); },
            "starting the consumer"));
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
      continue;
    }
    fetch_failures = 0;
    for (const StreamMessage& m : *batch) {
      if (m.seq <= r.Log().head().seq) {  // a redelivery of an applied event
        (void)(*js)->Ack(m.seq);
        continue;
      }
      if (m.seq > r.Log().head().seq + 1) {
        // A delivery lost on the way (a reconnection): start again from
        // the head. The rest of this batch comes again.
        log("stream '" + o.config.stream + "' delivered event " + std::to_string(m.seq) +
            " before event " + std::to_string(r.Log().head().seq + 1) +
            "; creating the consumer again");
        MODELREG_RETURN_IF_ERROR(retry(
            [&] { return (*js)->StartConsumer(ConsumerName(o), r.Log().head().seq + 1); },
            "starting the consumer"));
        break;
      }
      MODELREG_RETURN_IF_ERROR(
          retry([&] { return applier.Apply(m); }, "event " + std::to_string(m.seq)));
      (void)(*js)->Ack(m.seq);
      ++result.applied;
      reported_current = false;
    }
    result.head = r.Log().head().seq;
    if (batch->empty() || o.once) {
      auto last = (*js)->LastSeq();
      if (last && *last <= result.head) {
        if (!reported_current) log("at event " + std::to_string(result.head) + " (caught up)");
        reported_current = true;
        if (o.once) break;
      } else if (last && *last > result.head && batch->empty() && o.once) {
        continue;
      }
    }
  }
  return result;
}

}  // namespace modelreg::replication
