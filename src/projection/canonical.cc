// The canonical encoding of the projection's records: what the state digest
// is computed over (docs/pointintime.md, "State digest"). It depends only on
// the typed values, never on the stored bytes or on a JSON library's number
// formatting, so a FlatBuffers or JSON upgrade cannot change a digest.
//
//   unsigned integer   8 bytes, big-endian
//   signed integer     8 bytes, big-endian two's complement (int widened)
//   bool               1 byte, 0 or 1
//   double             its IEEE-754 binary64 bits, 8 bytes, big-endian
//   string             length (unsigned integer) then its bytes
//   enum               1 byte: status staged 0, production 1, archived 2,
//                      failed 3; artifact kind file 0, directory 1
//   map                entry count, then key and value of each entry in
//                      ascending byte order of the keys
//   record             its fields in ForEachField order (sorted field names,
//                      state.h), names not written
//   annotations        1 byte 0 (never annotated) or 1 followed by
//                      description, metrics (name -> actor, at, seq, source,
//                      value), seq, tags
#include <bit>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>

#include "common/bytes.h"
#include "projection/state.h"

namespace modelreg::projection {

namespace {

class CanonicalWriter {
 public:
  explicit CanonicalWriter(std::size_t reserve) { out_.reserve(reserve); }

  void Put(std::uint64_t v) { PutBe64(out_, v); }
  void Put(std::int64_t v) { PutBe64(out_, static_cast<std::uint64_t>(v)); }
  void Put(int v) { Put(static_cast<std::int64_t>(v)); }
  void Put(bool v) { out_ += static_cast<char>(v ? 1 : 0); }
  void Put(double v) { PutBe64(out_, std::bit_cast<std::uint64_t>(v)); }
  void Put(const std::string& s) {
    Put(static_cast<std::uint64_t>(s.size()));
    out_ += s;
  }
  void Put(ModelStatus s) { out_ += static_cast<char>(static_cast<std::uint8_t>(s)); }
  void Put(ArtifactKind k) { out_ += static_cast<char>(k == ArtifactKind::kDirectory ? 1 : 0); }
  void Put(const LateMetric& m) {
    Put(m.actor);
    Put(m.at);
    Put(m.seq);
    Put(m.source);
    Put(m.value);
  }
  void Put(const Annotations& a) {
    if (a.empty()) {
      Put(false);
      return;
    }
    Put(true);
    Put(a.description);
    Put(a.metrics);
    Put(a.seq);
    Put(a.tags);
  }
  template <class V>
  void Put(const std::map<std::string, V>& map) {
    // std::map<std::string> orders keys as memcmp does: ascending bytes.
    Put(static_cast<std::uint64_t>(map.size()));
    for (const auto& [k, v] : map) {
      Put(k);
      Put(v);
    }
  }

  template <class Record>
  void Fields(const Record& r) {
    ForEachField(r, [this](const char*, const auto& field) { Put(field); });
  }

  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

static_assert(static_cast<int>(ModelStatus::kStaged) == 0 &&
                  static_cast<int>(ModelStatus::kProduction) == 1 &&
                  static_cast<int>(ModelStatus::kArchived) == 2 &&
                  static_cast<int>(ModelStatus::kFailed) == 3,
              "the canonical encoding writes these numbers: docs/pointintime.md");

template <class Record>
std::string Canonical(const Record& r, std::size_t reserve) {
  CanonicalWriter w(reserve);
  w.Fields(r);
  return w.Take();
}

}  // namespace

std::string CanonicalValue(const VersionRecord& r) { return Canonical(r, 512); }
std::string CanonicalValue(const PromotionRecord& p) { return Canonical(p, 256); }
std::string CanonicalValue(const ConsumerRecord& c) { return Canonical(c, 128); }
std::string CanonicalValue(const PolicyRecord& p) { return Canonical(p, 256 + p.text.size()); }

std::string CanonicalHead(Seq seq, TimeNs at) {
  CanonicalWriter w(16);
  w.Put(std::uint64_t{seq});
  w.Put(std::int64_t{at});
  return w.Take();
}

std::string CanonicalString(const std::string& version) {
  CanonicalWriter w(8 + version.size());
  w.Put(version);
  return w.Take();
}

Result<std::string> CanonicalFromStored(std::string_view key, std::string_view value) {
  auto kind = [&key](std::string_view prefix) { return key.substr(0, prefix.size()) == prefix; };
  if (key == "s") {
    auto head = DecodeHeadRow(value);
    if (!head) return Err(head.error());
    return CanonicalHead(head->first, head->second);
  }
  if (kind("v/") || kind("r/")) {
    auto r = DecodeVersionRow(value);
    if (!r) return Err(r.error());
    return CanonicalValue(*r);
  }
  if (kind("p/") || kind("t/")) {
    auto v = DecodeTypeRow(value);
    if (!v) return Err(v.error());
    return CanonicalString(*v);
  }
  if (kind("h/")) {
    auto h = DecodeHistoryRow(value);
    if (!h) return Err(h.error());
    return CanonicalValue(*h);
  }
  if (kind("c/")) {
    auto c = DecodeConsumerRow(value);
    if (!c) return Err(c.error());
    return CanonicalValue(*c);
  }
  if (kind(kPolicyPrefix)) {
    auto g = DecodePolicyRow(value);
    if (!g) return Err(g.error());
    return CanonicalValue(*g);
  }
  return Err(Status::Corruption("projection row with unknown key '" + std::string(key) + "'"));
}

}  // namespace modelreg::projection
