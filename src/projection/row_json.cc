// The canonical JSON of the projection's version and history rows, written
// straight into a string. The bytes are exactly nlohmann's compact dump of
// the same object (keys in std::map order, error_handler_t::replace): the
// rows feed the state digest, so not one byte may change. nlohmann still
// writes every value that is not plain: strings with bytes to escape or
// outside printable ASCII; doubles go through nlohmann's own to_chars. Building a json tree per row
// was a third of a projection rebuild (tests/unit/projection_test.cc
// compares both encodings).
#include <charconv>
#include <cmath>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "projection/state.h"

namespace modelreg::projection {

namespace {

class ObjectWriter {
 public:
  explicit ObjectWriter(std::string& out) : out_(out) { out_ += '{'; }
  ~ObjectWriter() { out_ += '}'; }
  ObjectWriter(const ObjectWriter&) = delete;
  ObjectWriter& operator=(const ObjectWriter&) = delete;

  void Str(std::string_view key, std::string_view value) {
    Key(key);
    String(value);
  }
  void U64(std::string_view key, std::uint64_t value) {
    Key(key);
    Integer(value);
  }
  void I64(std::string_view key, std::int64_t value) {
    Key(key);
    Integer(value);
  }
  void Bool(std::string_view key, bool value) {
    Key(key);
    out_ += value ? "true" : "false";
  }
  template <typename Map>
  void Object(std::string_view key, const Map& map) {
    Key(key);
    ObjectWriter inner(out_);
    for (const auto& [k, v] : map) {
      inner.Key(k);
      inner.Value(v);
    }
  }

 private:
  void Key(std::string_view key) {
    if (!first_) out_ += ',';
    first_ = false;
    String(key);
    out_ += ':';
  }
  void Value(const std::string& v) { String(v); }
  void Value(double v) {
    // What nlohmann's serializer does for a double (serializer::dump_float
    // in 3.11): null when not finite, else its Grisu2 to_chars.
    if (!std::isfinite(v)) {
      out_ += "null";
      return;
    }
    char buf[64];
    char* end = nlohmann::detail::to_chars(buf, buf + sizeof buf, v);
    out_.append(buf, end);
  }
  template <typename Int>
  void Integer(Int v) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    out_.append(buf, r.ptr);
  }
  void String(std::string_view s) {
    for (const char c : s) {
      const auto u = static_cast<unsigned char>(c);
      if (u < 0x20 || u > 0x7e || c == '"' || c == '\\') {
        out_ += nlohmann::json(std::string(s))
                    .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        return;
      }
    }
    out_ += '"';
    out_ += s;
    out_ += '"';
  }

  std::string& out_;
  bool first_ = true;
};

}  // namespace

std::string EncodeVersionRow(const VersionRecord& r) {
  std::string out;
  out.reserve(640);
  {
    ObjectWriter w(out);  // keys in sorted order
    w.Str("artifact_name", r.artifact_name);
    w.Str("artifact_sha256", r.artifact_sha256);
    w.U64("artifact_size", r.artifact_size);
    w.Str("config_hash", r.config_hash);
    w.Object("dataset_version_ids", r.dataset_version_ids);
    w.I64("demoted_at", r.demoted_at);
    w.Object("metrics", r.metrics);
    w.Str("model_id", r.model_id);
    w.Str("model_type", r.model_type);
    w.I64("promoted_at", r.promoted_at);
    w.Bool("purged", r.purged);
    w.I64("registered_at", r.registered_at);
    w.Str("registered_by", r.registered_by);
    w.U64("registered_seq", r.registered_seq);
    w.Str("snapshot_id", r.snapshot_id);
    w.Str("status", StatusName(r.status));
    w.I64("status_at", r.status_at);
    w.Str("status_by", r.status_by);
    w.Str("status_reason", r.status_reason);
    w.U64("status_seq", r.status_seq);
    w.U64("validated_seq", r.validated_seq);
    w.Str("validation_detail", r.validation_detail);
    w.Bool("validation_ok", r.validation_ok);
    w.Str("version", r.version);
  }
  return out;
}

std::string EncodeHistoryRow(const PromotionRecord& p) {
  std::string out;
  out.reserve(320);
  {
    ObjectWriter w(out);  // keys in sorted order
    w.Str("actor", p.actor);
    w.I64("at", p.at);
    w.Bool("gates_overridden", p.gates_overridden);
    w.I64("gates_passed", p.gates_passed);
    w.I64("gates_total", p.gates_total);
    w.Str("model_type", p.model_type);
    w.Str("override_reason", p.override_reason);
    w.Str("reason", p.reason);
    w.Str("replaced_status", p.replaced_status);
    w.Str("replaced_version", p.replaced_version);
    w.Bool("rollback", p.rollback);
    w.U64("seq", p.seq);
    w.Str("version", p.version);
  }
  return out;
}

}  // namespace modelreg::projection
