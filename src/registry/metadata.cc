#include "registry/metadata.h"

#include <sys/utsname.h>
#include <unistd.h>
#include <pwd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/decimal.h"
#include "common/json_input.h"
#include "common/utf8.h"
#include "log/envelope.h"

namespace modelreg::registry {

namespace {

using nlohmann::json;

Result<json> ParseObject(const std::string& text, const std::string& what) {
  if (text.size() > kMaxMetadataBytes) {
    return Err(Status::InvalidArgument(what + " is larger than 1 MiB"));
  }
  if (!IsValidUtf8(text)) {
    return Err(Status::InvalidArgument(what + " is not valid JSON: it is not UTF-8 text"));
  }
  auto parsed = ParseJsonInput(text, what);
  if (!parsed) return Err(parsed.error());
  json j = std::move(*parsed);
  if (!j.is_object()) return Err(Status::InvalidArgument(what + " must be a JSON object"));
  return j;
}

Result<std::string> StringField(const json& j, const char* name) {
  if (!j.contains(name) || j[name].is_null()) return std::string();
  if (!j[name].is_string()) {
    return Err(Status::InvalidArgument(std::string("metadata field '") + name +
                                       "' must be a string"));
  }
  return j[name].get<std::string>();
}

std::string ReadFirstLine(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::string line;
  std::getline(in, line);
  return line;
}

std::string GitCommit() {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (fs::path dir = fs::current_path(ec); !ec && !dir.empty(); dir = dir.parent_path()) {
    const fs::path git = dir / ".git";
    if (fs::is_directory(git, ec)) {
      const std::string head = ReadFirstLine(git / "HEAD");
      if (head.rfind("ref: ", 0) != 0) return head;  // detached
      const std::string ref = head.substr(5);
      std::string commit = ReadFirstLine(git / ref);
      if (!commit.empty()) return commit;
      std::ifstream packed(git / "packed-refs");
      for (std::string line; std::getline(packed, line);) {
        if (line.size() > 41 && line.substr(41) == ref) return line.substr(0, 40);
      }
      return "";
    }
    if (dir == dir.parent_path()) break;
  }
  return "";
}

}  // namespace

std::string CanonicalJson(const json& j) { return j.dump(); }

std::string ConfigHash(const json& config) { return ToHex(Sha256::Of(CanonicalJson(config))); }

Result<std::pair<std::string, std::string>> SplitAssignment(const std::string& text,
                                                            const std::string& flag) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    return Err(Status::InvalidArgument(flag + " expects NAME=VALUE, got '" + text + "'"));
  }
  return std::make_pair(text.substr(0, eq), text.substr(eq + 1));
}

Result<double> ParseFiniteNumber(const std::string& text, const std::string& what) {
  // One strict grammar (common/decimal.h): no whitespace, hex, inf or nan.
  std::string why;
  const std::optional<double> v = ParseDecimal(text, &why);
  if (!v) {
    return Err(Status::InvalidArgument(what + " must be " + std::string(kDecimalGrammarHint) +
                                       ", got '" + text + "' (" + why + ")"));
  }
  return *v;
}

events::Environment CaptureEnvironment() {
  events::Environment env;
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) == 0) env.hostname = host;
  if (const passwd* pw = getpwuid(geteuid()); pw != nullptr) env.user = pw->pw_name;
  utsname u{};
  if (uname(&u) == 0) env.os = std::string(u.sysname) + " " + u.release + " " + u.machine;
  env.tool_version = "modelreg " MODELREG_VERSION;
  env.git_commit = GitCommit();
  return env;
}

Result<events::Registration> BuildRegistration(const std::string& type,
                                               const std::string& version,
                                               const MetadataInput& input,
                                               const std::string& actor, TimeNs now) {
  events::Registration r;
  r.model_type = type;
  r.version = version;
  json meta = json::object();
  if (input.metadata_json) {
    auto parsed = ParseObject(*input.metadata_json, "metadata file");
    if (!parsed) return Err(parsed.error());
    meta = std::move(*parsed);
  }
  for (const char* field : {"model_type", "version"}) {
    auto v = StringField(meta, field);
    if (!v) return Err(v.error());
    const std::string& expected = std::string(field) == "model_type" ? type : version;
    if (!v->empty() && *v != expected) {
      return Err(Status::InvalidArgument(std::string("metadata ") + field + " '" + *v +
                                         "' does not match the command line's '" + expected +
                                         "'"));
    }
  }
  auto model_id = StringField(meta, "model_id");
  if (!model_id) return Err(model_id.error());
  r.model_id = model_id->empty() ? "mdl_" + NewEventId() : *model_id;

  // dataset_version_ids: object of strings.
  if (meta.contains("dataset_version_ids")) {
    const json& d = meta["dataset_version_ids"];
    if (!d.is_object()) {
      return Err(Status::InvalidArgument("metadata dataset_version_ids must be an object"));
    }
    for (const auto& [k, v] : d.items()) {
      if (!v.is_string()) {
        return Err(Status::InvalidArgument("metadata dataset_version_ids." + k +
                                           " must be a string"));
      }
      r.dataset_version_ids[k] = v.get<std::string>();
    }
  }
  for (const auto& [k, v] : input.datasets) r.dataset_version_ids[k] = v;

  auto snapshot = StringField(meta, "snapshot_id");
  if (!snapshot) return Err(snapshot.error());
  r.snapshot_id = input.snapshot_id.value_or(*snapshot);

  if (meta.contains("factor_list")) {
    const json& f = meta["factor_list"];
    if (!f.is_array()) return Err(Status::InvalidArgument("metadata factor_list must be an array"));
    for (const auto& x : f) {
      if (!x.is_string()) {
        return Err(Status::InvalidArgument("metadata factor_list must hold strings"));
      }
      r.factor_list.push_back(x.get<std::string>());
    }
  }
  if (!input.factors.empty()) r.factor_list = input.factors;

  json params = json::object();
  if (meta.contains("parameters")) {
    if (!meta["parameters"].is_object()) {
      return Err(Status::InvalidArgument("metadata parameters must be an object"));
    }
    params = meta["parameters"];
  }
  for (const auto& [k, v] : input.params) {
    // Checked before the value is put in JSON: dumping invalid UTF-8 throws.
    if (!IsValidUtf8(k) || !IsValidUtf8(v)) {
      return Err(Status::InvalidArgument("parameter '" + SanitizeUtf8(k) +
                                         "' is not valid UTF-8"));
    }
    MODELREG_RETURN_IF_ERROR(CheckJsonDepth(v, "parameter '" + k + "'"));
    json parsed = json::parse(v, nullptr, false);
    params[k] = parsed.is_discarded() ? json(v) : parsed;
  }
  r.parameters_json = CanonicalJson(params);

  if (meta.contains("metrics")) {
    const json& m = meta["metrics"];
    if (!m.is_object()) return Err(Status::InvalidArgument("metadata metrics must be an object"));
    for (const auto& [k, v] : m.items()) {
      if (!v.is_number() || !std::isfinite(v.get<double>())) {
        return Err(Status::InvalidArgument("metric '" + k + "' must be a finite number"));
      }
      r.metrics[k] = v.get<double>();
    }
  }
  for (const auto& [k, v] : input.metrics) {
    if (!std::isfinite(v)) {
      return Err(Status::InvalidArgument("metric '" + k + "' must be a finite number"));
    }
    r.metrics[k] = v;
  }

  json config = json::object();
  if (meta.contains("config")) {
    if (!meta["config"].is_object()) {
      return Err(Status::InvalidArgument("metadata config must be an object"));
    }
    config = meta["config"];
  }
  if (input.config_json) {
    auto parsed = ParseObject(*input.config_json, "config file");
    if (!parsed) return Err(parsed.error());
    config = std::move(*parsed);
  }
  r.config_json = CanonicalJson(config);
  r.config_hash = ConfigHash(config);
  auto given_hash = StringField(meta, "config_hash");
  if (!given_hash) return Err(given_hash.error());
  if (!given_hash->empty() && !input.config_json && *given_hash != r.config_hash) {
    return Err(Status::InvalidArgument("metadata config_hash " + *given_hash +
                                       " does not match the SHA-256 of its config's canonical "
                                       "JSON (" + r.config_hash + ")"));
  }

  // The environment where the model was produced, if the file says;
  // otherwise where it is being registered.
  if (meta.contains("env") && meta["env"].is_object()) {
    const json& e = meta["env"];
    for (const auto& [k, v] : e.items()) {
      const std::string s = v.is_string() ? v.get<std::string>() : v.dump();
      if (k == "hostname") r.env.hostname = s;
      else if (k == "user") r.env.user = s;
      else if (k == "os") r.env.os = s;
      else if (k == "tool_version") r.env.tool_version = s;
      else if (k == "git_commit") r.env.git_commit = s;
      else r.env.extra[k] = s;
    }
  } else if (meta.contains("env")) {
    return Err(Status::InvalidArgument("metadata env must be an object"));
  } else {
    r.env = CaptureEnvironment();
  }

  auto created_by = StringField(meta, "created_by");
  if (!created_by) return Err(created_by.error());
  r.created_by = created_by->empty() ? actor : *created_by;
  auto created_at = StringField(meta, "created_at");
  if (!created_at) return Err(created_at.error());
  if (created_at->empty()) {
    r.created_at = now;
  } else {
    auto t = ParseTime(*created_at);
    if (!t) {
      return Err(Status::InvalidArgument("metadata created_at '" + *created_at +
                                         "' is not an ISO-8601 time with a zone"));
    }
    r.created_at = *t;
  }
  auto checksum = StringField(meta, "checksum_sha256");
  if (!checksum) return Err(checksum.error());
  if (!checksum->empty()) {
    auto d = DigestFromHex(*checksum);
    if (!d) {
      return Err(Status::InvalidArgument("metadata checksum_sha256 is not 64 hex characters"));
    }
    r.artifact_sha256 = *d;  // the registry compares it with the file
  }
  // Everything here ends up in JSON (events, metadata.json, projections):
  // flags and files must be UTF-8. The captured environment is repaired
  // instead (a host or user name is not the caller's input).
  auto text = [](const std::string& what, const std::string& value) -> Status {
    if (IsValidUtf8(value)) return Status::OK();
    return Status::InvalidArgument(what + " '" + SanitizeUtf8(value) + "' is not valid UTF-8");
  };
  MODELREG_RETURN_IF_ERROR(text("model_id", r.model_id));
  MODELREG_RETURN_IF_ERROR(text("snapshot_id", r.snapshot_id));
  MODELREG_RETURN_IF_ERROR(text("created_by", r.created_by));
  MODELREG_RETURN_IF_ERROR(text("parameters", r.parameters_json));
  MODELREG_RETURN_IF_ERROR(text("config", r.config_json));
  for (const auto& f : r.factor_list) MODELREG_RETURN_IF_ERROR(text("factor", f));
  for (const auto& [k, v] : r.dataset_version_ids) {
    MODELREG_RETURN_IF_ERROR(text("dataset name", k));
    MODELREG_RETURN_IF_ERROR(text("dataset version", v));
  }
  for (const auto& [k, v] : r.metrics) MODELREG_RETURN_IF_ERROR(text("metric name", k));
  for (std::string* e : {&r.env.hostname, &r.env.user, &r.env.os, &r.env.tool_version,
                         &r.env.git_commit}) {
    *e = SanitizeUtf8(*e);
  }
  std::map<std::string, std::string> extra;
  for (const auto& [k, v] : r.env.extra) extra[SanitizeUtf8(k)] = SanitizeUtf8(v);
  r.env.extra = std::move(extra);
  return r;
}

}  // namespace modelreg::registry
