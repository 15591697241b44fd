// The registry's state as a pure fold over the event log.
//
// Plan(state, event) computes what one event changes (a Delta) without
// touching the state; Commit applies a Delta. Apply = Plan + Commit. No
// clock, no I/O: the same log prefix always gives the same state, and the
// same rows (EncodeRows), and so the same Digest.
//
// The fold applies what each event says; whether a transition is legal is
// decided before the event is written (src/registry). Events naming a
// version the state does not know are skipped deterministically.
// Thread-safety: plain values.
#pragma once

#include <concepts>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/clock.h"
#include "common/sha256.h"
#include "common/status.h"
#include "log/event_buffer.h"

namespace modelreg::projection {

using Seq = std::uint64_t;

enum class ModelStatus { kStaged, kProduction, kArchived, kFailed };

// What a version's artifact is (ModelRegistered.artifact_kind). A file
// artifact's row has no "artifact_kind" key at all (the rows of every
// registry written before directories existed, and their digests, stay as
// they were); a directory's row has "artifact_kind":"directory".
enum class ArtifactKind { kFile, kDirectory };
std::string_view KindName(ArtifactKind k);  // "file" | "director"
std::string_view StatusName(ModelStatus s);
// "staged" | "production" | "archived" | "failed"
bool ParseStatus(std::string_view name, ModelStatus* out);

// A metric learned after registration (ModelAnnotated) and where it came
// from: the value in force is the most recent annotation's.
struct LateMetric {
  double value = 0;
  std::string source;  // e.g. "paper-trading"
  std::string actor;
  TimeNs at = 0;
  Seq seq = 0;         // the ModelAnnotated event

  bool operator==(const LateMetric&) const = default;
};

// What annotations added to a version: the fold of its ModelAnnotated
// events. A version never annotated has none (seq 0), and then its row has
// no "annotations" key at all, so that the rows (and the digest) of logs
// without annotations are what they were before them.
struct Annotations {
  std::map<std::string, std::string> tags;
  std::string description;                   // "" = none
  std::map<std::string, LateMetric> metrics;  // by name
  Seq seq = 0;                               // the last ModelAnnotated, 0 = never

  bool empty() const { return seq == 0; }
  bool operator==(const Annotations&) const = default;
};
// Canonical JSON (keys sorted): {"description","metrics":{name:{"actor",
// "at","seq","source","value"}},"seq","tags"}. from_json throws on a
// malformed value (the caller reports the row as corrupt).
void to_json(nlohmann::json& j, const LateMetric& m);
void from_json(const nlohmann::json& j, LateMetric& m);
void to_json(nlohmann::json& j, const Annotations& a);
void from_json(const nlohmann::json& j, Annotations& a);

struct VersionRecord {
  std::string model_type;
  std::string version;
  std::string model_id;
  ModelStatus status = ModelStatus::kStaged;
  Seq registered_seq = 0;
  TimeNs registered_at = 0;
  std::string registered_by;
  ArtifactKind artifact_kind = ArtifactKind::kFile;
  std::string artifact_name;    // file name, or the directory's name
  std::uint64_t artifact_size = 0;  // a directory: the sum of its files' sizes
  std::string artifact_sha256;  // hex; a directory: its tree digest
  std::map<std::string, double> metrics;
  std::map<std::string, std::string> dataset_version_ids;
  std::string snapshot_id;
  std::string config_hash;
  // Last status change.
  Seq status_seq = 0;
  TimeNs status_at = 0;
  std::string status_by;
  std::string status_reason;
  TimeNs promoted_at = 0;  // last time it entered production, 0 = never
  TimeNs demoted_at = 0;   // last time it left production, 0 = never
  // Last validation.
  Seq validated_seq = 0;
  bool validation_ok = false;
  std::string validation_detail;
  bool purged = false;
  // Learned after registration (tags, description, late metrics); the
  // registration's own fields above never change.
  Annotations annotations;

  bool operator==(const VersionRecord&) const = default;
};

// The metrics gates see: the registration's, each overridden by the most
// recent annotation of the same name (docs/gates.md).
std::map<std::string, double> EffectiveMetrics(const VersionRecord& r);

// Every field of a VersionRecord with its key in the rows and in JSON, in
// key order: the one list that the row encoder and decoder, the JSON
// renderer (query/render.cc) and the tests walk. Calls f(key, field) once
// per field; `R` is VersionRecord or const VersionRecord. A new field is
// added here too, at its key's place in sorted order (the canonical
// encoding of the digest, docs/pointintime.md, writes fields in this order),
// and to schemas/projection.fbs and src/projection/rows.cc.
// Two keys are optional: "annotations" (absent when empty, see Annotations)
// and "artifact_kind" (absent for a file artifact).
template <class R, class F>
  requires std::same_as<std::remove_const_t<R>, VersionRecord>
void ForEachField(R& r, F&& f) {
  f("annotations", r.annotations);
  f("artifact_kind", r.artifact_kind);  // left out of rows when kFile
  f("artifact_name", r.artifact_name);
  f("artifact_sha256", r.artifact_sha256);
  f("artifact_size", r.artifact_size);
  f("config_hash", r.config_hash);
  f("dataset_version_ids", r.dataset_version_ids);
  f("demoted_at", r.demoted_at);
  f("metrics", r.metrics);
  f("model_id", r.model_id);
  f("model_type", r.model_type);
  f("promoted_at", r.promoted_at);
  f("purged", r.purged);
  f("registered_at", r.registered_at);
  f("registered_by", r.registered_by);
  f("registered_seq", r.registered_seq);
  f("snapshot_id", r.snapshot_id);
  f("status", r.status);
  f("status_at", r.status_at);
  f("status_by", r.status_by);
  f("status_reason", r.status_reason);
  f("status_seq", r.status_seq);
  f("validated_seq", r.validated_seq);
  f("validation_detail", r.validation_detail);
  f("validation_ok", r.validation_ok);
  f("version", r.version);
}

// One change of production version: a promotion or a rollback.
struct PromotionRecord {
  Seq seq = 0;
  TimeNs at = 0;
  std::string actor;
  std::string model_type;
  std::string version;           // what became production
  std::string replaced_version;  // what it replaced, "" if nothing
  std::string replaced_status;   // what the replaced version became: archived | failed | ""
  bool rollback = false;
  bool gates_overridden = false;
  std::string reason;
  std::string override_reason;
  int gates_passed = 0;
  int gates_total = 0;

  bool operator==(const PromotionRecord&) const = default;
};

// The same for a PromotionRecord (its "h/" row), in key order.
template <class R, class F>
  requires std::same_as<std::remove_const_t<R>, PromotionRecord>
void ForEachField(R& p, F&& f) {
  f("actor", p.actor);
  f("at", p.at);
  f("gates_overridden", p.gates_overridden);
  f("gates_passed", p.gates_passed);
  f("gates_total", p.gates_total);
  f("model_type", p.model_type);
  f("override_reason", p.override_reason);
  f("reason", p.reason);
  f("replaced_status", p.replaced_status);
  f("replaced_version", p.replaced_version);
  f("rollback", p.rollback);
  f("seq", p.seq);
  f("version", p.version);
}

// One change of a type's production version, for point-in-time queries.
struct ProductionChange {
  Seq seq = 0;
  TimeNs at = 0;
  std::string version;  // "" = no production version from then on

  bool operator==(const ProductionChange&) const = default;
};

// What a consuming service last reported (ConsumerAcknowledged).
struct ConsumerRecord {
  std::string consumer_id;
  std::string version;            // what it runs ("" = nothing)
  bool ok = true;                 // false: its last load attempt failed
  std::string attempted_version;  // that attempt, when !ok
  std::string detail;
  Seq seq = 0;
  TimeNs at = 0;

  bool operator==(const ConsumerRecord&) const = default;
};

// The same for a ConsumerRecord (its "c/" row), in key order.
template <class R, class F>
  requires std::same_as<std::remove_const_t<R>, ConsumerRecord>
void ForEachField(R& c, F&& f) {
  f("at", c.at);
  f("attempted_version", c.attempted_version);
  f("consumer_id", c.consumer_id);
  f("detail", c.detail);
  f("ok", c.ok);
  f("seq", c.seq);
  f("version", c.version);
}

// One change of the gate policy (PolicyChanged): the policy in force from
// event `seq` on, until the next one.
struct PolicyRecord {
  Seq seq = 0;
  TimeNs at = 0;
  std::string actor;
  std::string reason;
  std::string source;  // where the text came from (informative)
  std::string sha256;  // hex SHA-256 of text
  std::string text;    // the whole policy (TOML)

  bool operator==(const PolicyRecord&) const = default;
};

// The same for a PolicyRecord (its "g/" row), in key order.
template <class R, class F>
  requires std::same_as<std::remove_const_t<R>, PolicyRecord>
void ForEachField(R& p, F&& f) {
  f("actor", p.actor);
  f("at", p.at);
  f("reason", p.reason);
  f("seq", p.seq);
  f("sha256", p.sha256);
  f("source", p.source);
  f("text", p.text);
}

struct TypeState {
  std::map<std::string, VersionRecord> versions;  // by version string
  std::string production;                         // "" = none
  std::vector<PromotionRecord> history;           // oldest first
  std::vector<ProductionChange> timeline;         // oldest first
  std::map<std::string, ConsumerRecord> consumers;  // by consumer id
};

// Where Find looks for a record that is not in State::types: a rebuild
// keeps only recently used records in memory and reads the others back
// from the rows it wrote. The pointer stays valid until the caller's next
// Commit.
class RecordSource {
 public:
  virtual ~RecordSource() = default;
  virtual const VersionRecord* Load(const std::string& type,
                                    const std::string& version) const = 0;
};

struct State {
  Seq seq = 0;      // last event folded in
  TimeNs at = 0;    // its recorded_at
  std::map<std::string, TypeState> types;
  // Every change of the gate policy, oldest first; the last one is in
  // force (none: the built-in defaults).
  std::vector<PolicyRecord> policies;
  // Optional (see RecordSource); null for a complete state.
  const RecordSource* records = nullptr;

  const VersionRecord* Find(const std::string& type, const std::string& version) const;
  // The policy in force after event `seq` (nullptr: none was set by then).
  const PolicyRecord* PolicyAt(Seq seq) const;
  const PolicyRecord* Policy() const { return policies.empty() ? nullptr : &policies.back(); }
};

// What one event changes.
struct Delta {
  Seq seq = 0;
  TimeNs at = 0;
  std::vector<VersionRecord> versions;                       // new values
  std::vector<std::pair<std::string, std::string>> production;  // type -> version ("" none)
  std::vector<PromotionRecord> history;                      // appended
  std::vector<std::pair<std::string, ConsumerRecord>> consumers;  // type -> new value
  std::optional<PolicyRecord> policy;                        // a new gate policy
};

// Requires event.sequence() == state.seq + 1 (else Internal error).
Result<Delta> Plan(const State& state, const EventBuffer& event);
// Plan without the sequence check: for an event whose model type no event
// between state.seq and it touches (the registry's concurrent writers).
Result<Delta> PlanUnchecked(const State& state, const EventBuffer& event);
void Commit(State& state, const Delta& delta);
Status Apply(State& state, const EventBuffer& event);

// The rows of (part of) the state: key -> value, the persisted projection.
// Values are FlatBuffers tables (schemas/projection.fbs); the digest is
// defined over the canonical encoding of the records they hold (below), not
// over these bytes.
//   "s"                         -> Head {seq, at}: the last event folded in
//   "v/<type>/<version>"        -> VersionRow
//   "p/<type>"                  -> TypeRow: production version (absent = none; a
//                                  delta's empty value means "delete the row")
//   "h/<type>/<be64 seq>"       -> PromotionRow
//   "c/<type>/<consumer id>"    -> ConsumerRow
//   "t/<type>/<be64 time><be64 seq>" -> TypeRow: production version from then
//                                  on ("" = none): the temporal index that
//                                  answers "production at T" with one seek
//   "g/<be64 seq>"              -> PolicyRow: the gate policy set by event
//                                  seq ("policy at T" is one SeekForPrev)
using Rows = std::vector<std::pair<std::string, std::string>>;
Rows EncodeDelta(const Delta& delta);  // includes RecordRows(delta)
// EncodeDelta without "s" and the "v/" rows: what a projection rewrite
// writes per event when it writes those once at the end.
Rows EncodeDeltaWithoutState(const Delta& delta);
Rows EncodeState(const State& state);  // every row, sorted by key
// The same rows one at a time, in no particular order (constant memory
// beyond the state: a rebuild writes them in chunks).
void EncodeState(const State& state,
                 const std::function<void(std::string&& key, std::string&& value)>& emit);
// Rebuilds a State from rows (any order; index rows are skipped).
// Corruption on malformed rows.
Result<State> DecodeState(const Rows& rows);
// SHA-256 over the state's rows in key order, each as its length-prefixed
// key and length-prefixed canonical value (docs/pointintime.md); index rows
// are not part of it.
Digest StateDigest(const State& state);

// Key prefix of a type's temporal index, and the key to SeekForPrev for the
// production version at time `t`.
std::string TimelinePrefix(const std::string& type);
std::string TimelineSeekKey(const std::string& type, TimeNs t);
// Parses a temporal index row; false if `key` is not one of `type`'s,
// Corruption if its value is malformed.
Result<bool> ParseTimelineRow(const std::string& type, std::string_view key,
                              std::string_view value, ProductionChange* out);
std::string HistoryKey(const std::string& type, Seq seq);
// "g/<be64 seq>"; kPolicyPrefix is "g/".
inline constexpr char kPolicyPrefix[] = "g/";
std::string PolicyKey(Seq seq);
std::string VersionKey(const std::string& type, const std::string& version);
// Versioned record rows: "r/<type>/<version>/<be64 seq>" -> the version's
// record (same JSON as its "v/" row) as it was right after event `seq`; one
// row per change of the record. "record of V as of event S" is one
// SeekForPrev, so list/show --at never replay the log. They are an index
// beside the state, not part of it: EncodeDelta writes them with every
// event, RecordRows(delta) rebuilds them from a fold, RowsDigest and
// DecodeState skip them, and RecordRowsDigest checks them.
// kIndexMarkerKey ("x/records") marks a projection whose record rows are
// complete (written with every full rewrite of the rows); its value is the
// row format, kRowFormat. Rows under any other marker value (format "1":
// canonical JSON, before release 0.4) are not read: reads fold the log and
// the next writable open rewrites them (a one-time conversion).
inline constexpr char kIndexMarkerKey[] = "x/records";
inline constexpr char kRowFormat[] = "2";
// The largest row value read back (a sanity bound before verification).
inline constexpr std::size_t kMaxRowBytes = std::size_t{256} << 20;
Rows RecordRows(const Delta& delta);
std::string RecordKey(const std::string& type, const std::string& version, Seq seq);
std::string RecordPrefix(const std::string& type);  // "r/<type>/", or "r/" for ""
std::string RecordPrefix(const std::string& type, const std::string& version);
// Splits a record row key; false if `key` is not one.
bool ParseRecordKey(std::string_view key, std::string* type, std::string* version, Seq* seq);
// True for rows that are not part of the state (record rows, the marker).
bool IsIndexRow(std::string_view key);
// The canonical encoding of a row's record (docs/pointintime.md, "State
// digest"): the input of every digest, independent of the stored bytes.
std::string CanonicalValue(const VersionRecord& r);
std::string CanonicalValue(const PromotionRecord& p);
std::string CanonicalValue(const ConsumerRecord& c);
std::string CanonicalValue(const PolicyRecord& p);
std::string CanonicalHead(Seq seq, TimeNs at);
std::string CanonicalString(const std::string& version);  // "p/" and "t/" rows
// The canonical encoding of a stored row (decoded by its key's kind);
// Corruption if it does not decode.
Result<std::string> CanonicalFromStored(std::string_view key, std::string_view value);

// Order-independent digest of a set of rows (sum of per-row SHA-256 modulo
// 2^256), so that record rows can be checked while folding in sequence order
// without holding them all. Over canonical values: Add decodes a stored row
// (one that does not decode counts as its raw bytes under a distinct tag, so
// it can never match a fold), AddCanonical takes the encoding itself.
class RowSetDigest {
 public:
  void Add(std::string_view key, std::string_view stored_value);
  void AddCanonical(std::string_view key, std::string_view canonical_value);
  Digest Finish() const;
  std::uint64_t rows() const { return rows_; }

 private:
  std::uint64_t sum_[4] = {0, 0, 0, 0};  // little-endian limbs
  std::uint64_t rows_ = 0;
};

// The row values of each kind (schemas/projection.fbs); Decode* verify
// first and return Corruption on bytes that are not such a row.
std::string EncodeVersionRow(const VersionRecord& r);
std::string EncodeHistoryRow(const PromotionRecord& p);
std::string EncodePolicyRow(const PolicyRecord& p);
std::string EncodeConsumerRow(const ConsumerRecord& c);
std::string EncodeTypeRow(const std::string& version);
std::string EncodeHeadRow(Seq seq, TimeNs at);
Result<VersionRecord> DecodeVersionRow(std::string_view value);
Result<PromotionRecord> DecodeHistoryRow(std::string_view value);
Result<PolicyRecord> DecodePolicyRow(std::string_view value);
Result<ConsumerRecord> DecodeConsumerRow(std::string_view value);
Result<std::string> DecodeTypeRow(std::string_view value);
Result<std::pair<Seq, TimeNs>> DecodeHeadRow(std::string_view value);
// The state digest of stored rows (any order; index rows are skipped).
Digest RowsDigest(Rows rows);
// The same digest, fed row by row in ascending key order (a scan of the
// stored rows): constant memory. Index rows are skipped.
class RowsDigester {
 public:
  void Add(std::string_view key, std::string_view stored_value);
  Digest Finish();

 private:
  Sha256 h_;
};

}  // namespace modelreg::projection
