// The canonical JSON of the projection's version, history and policy rows, written
// straight into a string. The bytes are exactly nlohmann's compact dump of
// the same object (keys in std::map order, error_handler_t::replace): the
// rows feed the state digest, so not one byte may change. nlohmann still
// writes every value that is not plain: strings with bytes to escape or
// outside printable ASCII; doubles go through nlohmann's own to_chars. Building a json tree per row
// was a third of a projection rebuild (tests/unit/projection_test.cc
// compares both encodings).
#include <charconv>
#include <cmath>
#include <map>
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

  // One member per field type of the records (state.h, ForEachField).
  void Field(std::string_view key, const std::string& value) {
    Key(key);
    String(value);
  }
  void Field(std::string_view key, ModelStatus value) {
    Key(key);
    String(StatusName(value));
  }
  void Field(std::string_view key, ArtifactKind value) {
    if (value == ArtifactKind::kFile) return;  // no key: rows as before directories
    Key(key);
    String(KindName(value));
  }
  void Field(std::string_view key, std::uint64_t value) {
    Key(key);
    Integer(value);
  }
  void Field(std::string_view key, std::int64_t value) {
    Key(key);
    Integer(value);
  }
  void Field(std::string_view key, int value) {
    Key(key);
    Integer(value);
  }
  void Field(std::string_view key, bool value) {
    Key(key);
    out_ += value ? "true" : "false";
  }
  void Field(std::string_view key, double value) {
    Key(key);
    Value(value);
  }
  // Optional: no key at all when empty (state.h, Annotations).
  void Field(std::string_view key, const Annotations& a) {
    if (a.empty()) return;
    Key(key);
    ObjectWriter inner(out_);
    inner.Field("description", a.description);
    inner.Field("metrics", a.metrics);
    inner.Field("seq", a.seq);
    inner.Field("tags", a.tags);
  }
  template <typename V>
  void Field(std::string_view key, const std::map<std::string, V>& map) {
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
  void Value(const LateMetric& m) {
    ObjectWriter inner(out_);
    inner.Field("actor", m.actor);
    inner.Field("at", m.at);
    inner.Field("seq", m.seq);
    inner.Field("source", m.source);
    inner.Field("value", m.value);
  }
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

// A record's row: its fields in ForEachField's (sorted) key order.
template <class Record>
std::string EncodeRow(const Record& r, std::size_t reserve) {
  std::string out;
  out.reserve(reserve);
  {
    ObjectWriter w(out);
    ForEachField(r, [&w](std::string_view key, const auto& field) { w.Field(key, field); });
  }
  return out;
}

}  // namespace

std::string EncodeVersionRow(const VersionRecord& r) { return EncodeRow(r, 640); }

std::string EncodeHistoryRow(const PromotionRecord& p) { return EncodeRow(p, 320); }

std::string EncodePolicyRow(const PolicyRecord& p) { return EncodeRow(p, 256 + p.text.size()); }

}  // namespace modelreg::projection
