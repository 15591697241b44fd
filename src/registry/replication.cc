// <root>/replication.json: reading, checking and writing it.
#include "registry/replication.h"

#include <filesystem>
#include <mutex>

#include <nlohmann/json.hpp>

#include "artifacts/artifact_store.h"
#include "common/fs.h"

namespace modelreg::registry {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::mutex attacher_mu;
ReplicationAttacher& Attacher() {
  static ReplicationAttacher a;
  return a;
}

Status Check(const ReplicationConfig& c, const std::string& where) {
  if (c.role != "leader" && c.role != "follower") {
    return Status::InvalidArgument(where + ": role must be \"leader\" or \"follower\", not \"" +
                                   c.role + "\"");
  }
  if (Status st = ValidateStreamName(c.stream); !st.ok()) return st.WithContext(where);
  if (c.nats.empty()) return Status::InvalidArgument(where + ": no NATS server URL");
  for (const auto& u : c.nats) {
    if (u.rfind("nats://", 0) != 0 || u.size() > 512) {
      return Status::InvalidArgument(where + ": NATS URL '" + u +
                                     "' must start with nats:// (and be at most 512 bytes)");
    }
  }
  if (c.mode != "sync" && c.mode != "async") {
    return Status::InvalidArgument(where + ": mode must be \"sync\" or \"async\", not \"" +
                                   c.mode + "\"");
  }
  if (c.replicas < 1 || c.replicas > 5) {
    return Status::InvalidArgument(where + ": replicas must be 1..5");
  }
  if (c.role == "leader" && c.leader_id.empty()) {
    return Status::InvalidArgument(where + ": a leader needs its leader_id");
  }
  if (c.role == "follower" && c.artifacts_from.empty()) {
    return Status::InvalidArgument(where + ": a follower needs artifacts_from (the leader's URL "
                                           "or a directory with the leader's artifacts)");
  }
  return Status::OK();
}

}  // namespace

Status ValidateStreamName(const std::string& name) {
  if (name.empty() || name.size() > 56) {
    return Status::InvalidArgument("stream name must be 1..56 characters");
  }
  for (const char ch : name) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
    if (!ok) {
      return Status::InvalidArgument("stream name '" + name +
                                     "' may hold only letters, digits, '_' and '-'");
    }
  }
  return Status::OK();
}

Result<std::optional<ReplicationConfig>> LoadReplicationConfig(const std::string& root) {
  const std::string path = (fs::path(root) / kReplicationFile).string();
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(path, ec))) return std::optional<ReplicationConfig>();
  auto text = ReadRegularFile(path, 64 * 1024);
  if (!text) return Err(text.error());
  ReplicationConfig c;
  try {
    const json j = json::parse(*text);
    if (!j.is_object()) return Err(Status::InvalidArgument(path + " is not a JSON object"));
    c.role = j.value("role", "");
    c.stream = j.value("stream", "");
    for (const auto& u : j.value("nats", json::array())) c.nats.push_back(u.get<std::string>());
    c.mode = j.value("mode", "sync");
    c.replicas = j.value("replicas", 3);
    c.artifacts_from = j.value("artifacts_from", "");
    c.token_file = j.value("token_file", "");
    c.name = j.value("name", "");
    c.leader_id = j.value("leader_id", "");
  } catch (const std::exception& ex) {
    return Err(Status::InvalidArgument(path + " does not parse: " + ex.what()));
  }
  MODELREG_RETURN_IF_ERROR(Check(c, path));
  return std::optional<ReplicationConfig>(std::move(c));
}

Status SaveReplicationConfig(const std::string& root, const ReplicationConfig& c) {
  const std::string path = (fs::path(root) / kReplicationFile).string();
  MODELREG_RETURN_IF_ERROR(Check(c, path));
  json j = {{"role", c.role}, {"stream", c.stream}, {"nats", c.nats}};
  if (c.role == "leader") {
    j["mode"] = c.mode;
    j["replicas"] = c.replicas;
    j["leader_id"] = c.leader_id;
  } else {
    j["artifacts_from"] = c.artifacts_from;
    if (!c.token_file.empty()) j["token_file"] = c.token_file;
    if (!c.name.empty()) j["name"] = c.name;
  }
  return artifacts::WriteFileAtomic(path, j.dump(2) + "\n");
}

Status RemoveReplicationConfig(const std::string& root) {
  std::error_code ec;
  fs::remove(fs::path(root) / kReplicationFile, ec);
  if (ec) return Status::IOError("cannot remove " + root + "/" + kReplicationFile + ": " + ec.message());
  return Status::OK();
}

void SetReplicationAttacher(ReplicationAttacher attacher) {
  std::lock_guard<std::mutex> lock(attacher_mu);
  Attacher() = std::move(attacher);
}

ReplicationAttacher CurrentReplicationAttacher() {
  std::lock_guard<std::mutex> lock(attacher_mu);
  return Attacher();
}

}  // namespace modelreg::registry
