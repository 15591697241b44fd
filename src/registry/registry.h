// Registry: the lifecycle rules over the event log, the projections and the
// artifact store. The only place that decides which transitions are legal:
//
//   register        (new)                 -> staged
//   promote         staged | archived     -> production (previous production -> archived)
//   archive         staged                -> archived
//   fail            staged | archived     -> failed   (production only with force)
//   rollback        production            -> archived | failed, and the version that was
//                                            production before it -> production
//
// Every command validates against the current state, builds an event and
// appends it conditionally on the head it validated against (a concurrent
// change makes it re-validate). A rejected command appends nothing.
// Thread-safety: all methods are safe from many threads.
#pragma once

#include <atomic>
#include <condition_variable>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "artifacts/artifact_store.h"
#include "common/clock.h"
#include "common/status.h"
#include "events/model_events.h"
#include "log/event_store.h"
#include "policy/policy.h"
#include "projection/state.h"
#include "registry/annotation.h"
#include "registry/metadata.h"
#include "registry/replication.h"

namespace modelreg::query {
class Query;
}

namespace modelreg::registry {

namespace internal {
struct ArtifactCheck;
}

using projection::ModelStatus;
using projection::State;
using projection::VersionRecord;

struct RegistryOptions {
  std::string root;                 // registry directory
  bool read_only = false;           // queries only; works beside a writer
  // A read-only registry that follows the writer (RocksDB secondary
  // instance): CatchUp() brings it to the writer's latest event.
  bool follow = false;
  bool create_if_missing = false;   // create the directory and log if absent
  // Writable, for `modelreg follow` only: the registry is a follower
  // (replication.json) and takes its events from the stream through
  // ApplyReplicated; every other writable open of a follower is refused.
  bool replica = false;
  // Writable, but the state is not read (or folded) at open: only for
  // calling Rebuild(), which folds the log itself. Writes fail until then
  // (afterwards they, and reads, load the state from the rebuilt rows).
  bool for_rebuild = false;
  // Writable, but the state is read only when a write needs it (from the
  // rows, when they are current); Acknowledge() never needs it. For
  // short-lived writers of acknowledgements (the local loader): on a large
  // registry loading the state takes seconds and GBs.
  bool lazy_state = false;
  // How many version records Rebuild() keeps in memory (the rest are read
  // back from the rows it wrote when a later event names them); tests set
  // it low to exercise that path.
  std::size_t rebuild_resident_records = 16384;
  const Clock* clock = &SystemClock::Instance();
  int lock_wait_ms = 0;             // retry opening while another writer holds it
  // Problems that do not fail the operation (manifest.json could not be
  // rewritten after a durable append). Default: one line on stderr. Called
  // from the registry's background manifest thread, from the destructor and
  // from writing threads, possibly concurrently: it must be thread-safe and
  // must not call back into the registry.
  std::function<void(const std::string&)> on_warning;
};

struct Actor {
  std::string name;    // recorded in the event
  std::string reason;  // optional, recorded where the event has a reason
};

struct RegisterResult {
  VersionRecord record;
  bool already_registered = false;  // idempotent repeat: nothing written
};

struct WriteResult {
  Seq seq = 0;
  std::string summary;  // one line: what happened
};

// rollback TYPE [--to VERSION] [--fail] [--dry-run] (docs/lifecycle.md).
struct RollbackOptions {
  bool fail_current = false;  // the current version becomes failed (needs a reason)
  std::string to;             // "" = the rollback rule's choice (RollbackTarget)
  bool dry_run = false;       // decide and check, write nothing
};

struct RollbackResult : WriteResult {  // seq 0 for a dry run
  std::string model_type;
  std::string from;  // the production version rolled away from
  std::string to;    // the version that becomes production
  bool fail_current = false;
  bool dry_run = false;
};

struct ValidateResult {
  bool ok = false;
  std::string detail;
  Seq seq = 0;
  std::string result;  // events::kValidation*: ok, mismatch, validator_failed, missing
};

struct SetPolicyResult {
  Seq seq = 0;           // the PolicyChanged event in force afterwards
  bool changed = false;  // false: that exact text was in force already; nothing written
  std::string sha256;    // hex SHA-256 of the text
  std::string summary;   // one line: what happened
};

struct VerifyResult {
  VerifyReport chain;
  Digest state_digest{};    // fold of the whole log
  Digest stored_digest{};   // the persisted projection rows
  // The versioned record rows (an index beside the state rows): expected
  // from the fold versus stored; records_ok also needs the marker row.
  Digest records_digest{};
  Digest stored_records_digest{};
  bool records_ok = false;
  bool records_complete = false;  // the marker row is there (no interrupted rewrite)
  bool projection_ok = false;  // state rows and record rows both match
};
// "the stored projection (digest ..) differs from the fold of the log (..)"
// or the record-row equivalent: what a failed projection check found.
std::string DescribeProjectionMismatch(const VerifyResult& v);

// Promote's conflict for a stale expect_current ends with this, naming no
// option; each edge names its own spelling of it with NameExpectCurrent
// ("--expect-current" in the CLI, "expect_current" in the API). Any other
// status is returned unchanged.
inline constexpr std::string_view kExpectCurrentMismatchTail = " as expected; nothing changed";
Status NameExpectCurrent(const Status& st, std::string_view name);

class Registry {
 public:
  static Result<std::unique_ptr<Registry>> Open(const RegistryOptions& options);
  ~Registry();

  // --- writes ---
  Result<RegisterResult> Register(const std::string& type, const std::string& version,
                                  const std::string& artifact_path, const MetadataInput& input,
                                  const Actor& actor);
  // Promotion, in this order (docs/gates.md):
  //  1. the transition must be legal, and production must be expect_current
  //     when given ("" = none);
  //  2. the artifact is re-hashed and the policy's validator command run; a
  //     failure marks the version failed (the only event) -> Corruption;
  //  3. every gate of the policy is evaluated (metrics, paper-trading time
  //     from registration to now, dataset compatibility); a failure records
  //     a PromotionRejected event -> Rejected, unless override_gates (which
  //     needs actor.reason) records the override in the promotion.
  Result<WriteResult> Promote(const std::string& type, const std::string& version,
                              const std::optional<std::string>& expect_current,
                              bool override_gates, const Actor& actor);
  Result<WriteResult> Archive(const std::string& type, const std::string& version,
                              const Actor& actor);
  Result<WriteResult> Fail(const std::string& type, const std::string& version, bool force,
                           const Actor& actor);
  // Rollback to the version RollbackTarget picks, or to options.to (which
  // must have been production before and still be promotable). Re-checks
  // the target's artifact (hash + validator) first, like Promote: content
  // that differs marks it failed (Corruption); a missing file is recorded
  // (ArtifactValidated "missing") and refused (FailedPrecondition), status
  // unchanged. fail_current needs actor.reason. A dry run decides the same
  // way, re-hashes the target's artifact (no validator) and writes nothing.
  Result<RollbackResult> Rollback(const std::string& type, const RollbackOptions& options,
                                  const Actor& actor);
  Result<RollbackResult> Rollback(const std::string& type, bool fail_current, const Actor& actor) {
    return Rollback(type, RollbackOptions{fail_current, "", false}, actor);
  }
  // Re-hashes the artifact, runs the policy's validator command if any, and
  // records the result (ArtifactValidated); status does not change, also
  // when the file is missing (result "missing").
  Result<ValidateResult> Validate(const std::string& type, const std::string& version,
                                  const Actor& actor);

  // Records what was learned about a version after its registration (one
  // ModelAnnotated event): tags set or removed, a description, late
  // metrics with their source. The input is checked first (CheckAnnotation:
  // InvalidArgument, nothing written); the version must be registered
  // (NotFound) and not purged (FailedPrecondition); any status otherwise.
  // Needs actor.reason. The registration itself never changes.
  Result<WriteResult> Annotate(const std::string& type, const std::string& version,
                               const AnnotationInput& in, const Actor& actor);

  // The gate policy (docs/gates.md) is part of the log: SetPolicy checks
  // `text` with the policy parser (InvalidArgument naming
  // "<source>:<line>", nothing written) and appends a PolicyChanged event
  // holding the whole text, unless exactly that text is in force already
  // (then nothing is written: changed=false). Needs actor.reason.
  // Promotions, rollbacks and validations evaluate the policy in force
  // in the state (the last PolicyChanged), never a file.
  Result<SetPolicyResult> SetPolicy(const std::string& text, const std::string& source,
                                    const Actor& actor);

  // Garbage collection of artifact files (docs/runbook.md). Candidates:
  // archived and failed versions beyond the `keep` most recently registered
  // per type — never the production version, never the version a rollback
  // would restore, never a version that left production less than
  // `retention` ago — plus staging directories and version directories no
  // event names (interrupted registrations). Each purge is an ArtifactPurged
  // event written before the file is deleted; metadata.json and
  // checksum.sha256 stay. dry_run changes nothing.
  struct GcItem {
    std::string model_type;
    std::string version;  // empty for orphans
    std::string path;
    std::uint64_t bytes = 0;
    std::string why;
  };
  Result<std::vector<GcItem>> CollectGarbage(int keep, TimeNs retention, bool dry_run,
                                             const Actor& actor);

  // --- reads ---
  // A writable registry holds the whole state in memory from Open. A
  // read-only one loads it on first need (Load, Read), so that a one-shot
  // query such as audit --at reads only the rows it needs.
  Status Load() const;
  // Runs `fn` with the current state (under the registry's lock); loads it
  // first if needed (call Load() before to see a load error).
  void Read(const std::function<void(const State&)>& fn) const;
  // The state as of time `t`: the fold of every event recorded at or before
  // t (linear in those events; the reference the indexed reads are tested
  // against).
  Result<State> StateAt(TimeNs t) const;
  // The versions (each record as it was at `t`, status included) and the
  // production version per type as of `t`, for every type or just `type`;
  // history and timeline are left empty. Read from the versioned record
  // rows: one seek per version, never a replay (list/show --at). Falls back
  // to StateAt when the rows are not current (a read-only registry whose
  // projection is stale).
  Result<State> SnapshotAt(TimeNs t, const std::string& type = "") const;
  // One version's record as of `t` (nullopt if not registered by then): one
  // seek (show --at).
  Result<std::optional<VersionRecord>> VersionAt(const std::string& type,
                                                 const std::string& version, TimeNs t) const;

  // The model names with a version registered at or before event `seq`
  // (nullopt = now), sorted: every name ever registered, as of then. The
  // well-known types (model::kModelTypes) are not added: the query layer
  // does that. From the state in memory, else one seek per name (and per
  // version registered after `seq`) in the versioned record rows.
  Result<std::vector<std::string>> ModelTypesAt(std::optional<Seq> seq = std::nullopt) const;

  // The production version of `type` at time `t`, how it got there and its
  // record, in O(log n) through the temporal index rows (audit/current --at).
  struct ProductionAt {
    std::string version;  // "" = none
    std::optional<projection::PromotionRecord> promotion;
    std::optional<VersionRecord> record;
  };
  // `seq_at_t`, if known, is the last event at or before t (saves a seek).
  Result<ProductionAt> ProductionAtTime(const std::string& type, TimeNs t,
                                        std::optional<Seq> seq_at_t = std::nullopt) const;
  // The gate policy in force right after event `seq` (nullopt: none was
  // recorded by then, the built-in defaults apply): one seek of the
  // policy rows (policy show/audit --at).
  Result<std::optional<projection::PolicyRecord>> PolicyAt(Seq seq) const;
  // A line about <root>/policy.toml when it is not the policy in force:
  // not adopted yet (the next writable open adopts it), or edited after
  // the policy became part of the log (it is ignored); "" otherwise.
  std::string PolicyFileNote() const;
  // The event log itself, for reads the registry does not wrap: its
  // Merkle tree and proofs (docs/proofs.md).
  const EventStore& Log() const { return *store_; }
  // `progress` (optional) gets (events folded, head) during the fold.
  Result<VerifyResult> Verify(const std::function<void(Seq done, Seq total)>& progress = {}) const;
  // A following registry (RegistryOptions::follow) catches up with the
  // writer; a no-op otherwise. Not concurrent with reads of this registry.
  Status CatchUp();
  // Whether the state is in memory (lazy_state and rebuilt registries load
  // it on first use). For tests and diagnostics.
  bool StateLoaded() const;
  // Followers (RegistryOptions::replica, docs/replication.md): appends an
  // event exactly as the leader stored it (bytes without the chain hash;
  // it must continue this log) and folds it into the state and the
  // projection rows, in one synced batch. Returns once the state includes
  // it.
  Result<AppendResult> ApplyReplicated(std::string_view bytes);
  // A leader's shipper (sync mode): see EventStore::SetPublishHook.
  void SetPublishHook(PublishFn hook) { store_->SetPublishHook(std::move(hook)); }
  // The leader's shipper attached at open (nullptr if none).
  const ReplicationAttachment* Replication() const { return replication_.get(); }
  // A consuming service reports what it runs (ConsumerAcknowledged):
  // `version` "" = nothing; ok=false records a failed load of `attempted`.
  Result<WriteResult> Acknowledge(const std::string& type, const events::ConsumerAck& ack,
                                  const Actor& actor);
  // Waits until this registry has written an event past `after` or
  // `timeout` passes; returns the head then (long-poll subscriptions).
  Seq WaitForHead(Seq after, std::chrono::milliseconds timeout) const;

  // Drops every projection row and rebuilds them from the log: one pass that
  // verifies the hash chain while folding, then one atomic batch that
  // replaces the old rows with the new (killed before it, the old rows stay;
  // there is never a half-written projection). A broken chain rebuilds
  // nothing (Corruption naming the sequence number).
  struct RebuildResult {
    Seq events = 0;
    Digest before{};  // digest of the rows before the rebuild
    Digest after{};   // digest of the rebuilt rows
  };
  Result<RebuildResult> Rebuild(const std::function<void(Seq done, Seq total)>& progress = {});
  // manifest.json is rewritten by a background thread shortly after writes
  // (coalescing bursts, never on a command's durable path) and when the
  // registry closes. This writes it now if it is behind the state.
  Status FlushManifest();
  // The whole log as JSON Lines (portable/export_format.h).
  Status ExportLog(std::ostream& out,
                   const std::function<void(Seq done, Seq total)>& progress = {}) const;
  // A consistent backup of the log and projections into a BackupEngine
  // directory (log/backup.h); returns the backup id.
  Result<std::uint32_t> CreateBackup(const std::string& backup_dir,
                                     const std::string& app_metadata) const;
  // `modelreg backup create` (docs/runbook.md): hard-links the artifact of
  // every unpurged version into <root>/backups/artifacts, then backs up the
  // log into <root>/backups/db with what it holds recorded beside it. No
  // event is appended meanwhile (appends wait), so the recorded head, state
  // digest and linked artifacts describe exactly the backed-up log, also
  // while a server keeps writing.
  struct BackupSummary {
    std::uint32_t id = 0;
    std::string created_at;    // UTC, ISO-8601
    Seq head_seq = 0;
    std::string head_hash;     // hex
    std::string state_digest;  // hex
    std::uint64_t versions = 0;
    std::size_t artifact_files_linked = 0;
    std::string directory;     // <root>/backups
    std::string tree_root;     // hex: the Merkle root over events 1..head_seq
    std::string checkpoint;    // the signed checkpoint of that tree ("" = none)
  };
  // Signs a checkpoint of the tree a backup holds (docs/proofs.md).
  using CheckpointSigner = std::function<Result<std::string>(const TreeHead&)>;
  // With `sign`, the backup's metadata holds a signed checkpoint of its
  // tree, also appended to <root>/backups/checkpoints (a witness copy).
  Result<BackupSummary> BackupNow(const CheckpointSigner& sign = {});
  // Writes events 1..upto of this log, byte for byte, into a new log in
  // `log_dir` (materialize).
  Status CopyLogPrefix(Seq upto, const std::string& log_dir) const;
  // Creates a log in `log_dir` from an export file (checked first).
  static Status ImportLog(const std::string& export_file, const std::string& log_dir,
                          Seq total = 0,
                          const std::function<void(Seq done, Seq total)>& progress = {});
  const artifacts::ArtifactStore& artifacts() const { return artifacts_; }
  const std::string& root() const { return root_; }

 private:
  friend class query::Query;  // the read side (src/query)
  // The record of a version right after event `seq` (its versioned record
  // row); needs current rows.
  Result<std::optional<VersionRecord>> RecordAtSeq(const std::string& type,
                                                   const std::string& version, Seq seq) const;
  // The gates, policy text and policy hash recorded by the promotion event `seq`
  // (empty for any other event); cached like the records.
  struct Evidence {
    std::vector<events::Gate> gates;
    std::string policy;
    std::string policy_sha256;  // hex; "" when not recorded
  };
  Result<std::shared_ptr<const Evidence>> PromotionEvidence(Seq seq) const;
  Registry(std::string root, std::unique_ptr<EventStore> store, const Clock* clock,
           bool read_only, std::function<void(const std::string&)> on_warning);
  // Loads the state from the rows (stale rows: a writable registry rewrites
  // them, a read-only one folds the log) and makes sure manifest.json
  // matches the log.
  Status LoadState();
  // True if manifest.json records `head` (and remembers that it does).
  bool ManifestMatches(Seq head);
  // Appends `draft`, an event of `type`, if no other event of `type` was
  // sequenced since `type_seq` (the last event of `type` in the state the
  // draft was validated against); `*raced` says a refusal was that race
  // (retry after re-validating) rather than a lasting error. Returns once
  // the in-memory state includes the event.
  // `guard` (optional): another sequencing key the draft was validated
  // against (the gate policy, for a promotion), whose events are checked
  // the same way but not advanced by this one.
  Result<AppendResult> Commit(const std::string& draft, const std::string& type, Seq type_seq,
                              bool* raced, const std::string& guard = {}, Seq guard_seq = 0);
  // After state_ is replaced (load, rebuild): nothing is in flight.
  void ResetSequencing() const;
  // Runs validate-build-append for an event of `type`, re-validating when
  // another event of that type got in first.
  Result<AppendResult> Write(const std::string& type,
                             const std::function<Result<std::string>(const State&)>& build_draft,
                             const std::string& guard = {});
  // Rewrites manifest.json from the state, one writer at a time, never
  // replacing a newer manifest with an older one (`force`: rewrite even if
  // this state was written already).
  Status WriteManifest(bool force = false);
  // manifest.json is derived: a failure to rewrite it never fails a
  // command. It is reported as a warning naming the file, the problem and
  // the repair — once, until a rewrite succeeds again.
  void ManifestFailed(const Status& st);
  void Warn(const std::string& message) const;

  // The gate policy in force (the state's last PolicyChanged, parsed) and
  // the event that set it (0 and the built-in defaults when none). A
  // writable registry whose log has none adopts <root>/policy.toml first,
  // if there is one (AdoptPolicyFile).
  struct InForcePolicy {
    policy::Policy policy;
    Seq seq = 0;
    std::optional<Digest> sha256;
  };
  Result<InForcePolicy> PolicyInForce();
  // The last policy PolicyInForce parsed, by the seq of its PolicyChanged
  // event (a recorded policy never changes: a new one is a new event), so
  // that a promotion does not parse the TOML again.
  std::mutex policy_cache_mu_;
  std::optional<InForcePolicy> policy_cache_;  // guarded by policy_cache_mu_
  // Appends <root>/policy.toml as the first PolicyChanged event, if the log
  // has none and the file exists (parsed first: InvalidArgument naming its
  // line, nothing written). True when the log has a policy afterwards.
  Result<bool> AdoptPolicyFile();

  // Records that a version failed its pre-activation check.
  Status MarkFailed(const VersionRecord& rec, const std::string& why, const Actor& actor);
  // Records that a version's artifact file is missing (ArtifactValidated,
  // result "missing"; status unchanged) and returns the refusal of `what`.
  Status RefuseMissing(const VersionRecord& rec, const internal::ArtifactCheck& check,
                       const std::string& what, const Actor& actor);

  std::string root_;
  std::unique_ptr<EventStore> store_;
  bool replica_ = false;  // RegistryOptions::replica
  // Declared after store_: destroyed first (~Registry resets it before anything else).
  std::unique_ptr<ReplicationAttachment> replication_;
  const Clock* clock_;
  bool read_only_;
  artifacts::ArtifactStore artifacts_;
  std::function<void(const std::string&)> on_warning_;
  std::size_t rebuild_resident_ = 16384;  // RegistryOptions::rebuild_resident_records
  std::mutex register_mu_;  // guards register_type_mu_
  std::map<std::string, std::mutex> register_type_mu_;  // one registration per type at a time
  // The mutex a registration of `type` holds from staging to its event.
  std::mutex& RegisterMutex(const std::string& type);
  // Appends hold it shared; BackupNow exclusively (no event gets in while
  // a backup is taken).
  std::shared_mutex append_gate_;
  // The manifest writer thread (writable registries): woken by Commit.
  void ManifestLoop();
  std::thread manifest_thread_;
  std::mutex manifest_wake_mu_;
  std::condition_variable manifest_wake_;
  bool manifest_stop_ = false;      // guarded by manifest_wake_mu_
  bool manifest_pending_ = false;   // guarded by manifest_wake_mu_
  std::mutex manifest_mu_;  // one manifest writer at a time
  Seq manifest_seq_ = 0;    // head of the last manifest written (guarded by manifest_mu_)
  bool manifest_written_ = false;
  std::atomic<bool> manifest_warned_{false};  // a failure was reported (ManifestFailed)
  mutable std::mutex mu_;    // guards state_ and loaded_
  mutable std::condition_variable state_cv_;  // signalled when state_ advances
  std::atomic<bool> rows_current_{false};  // projection rows match the log head
  mutable bool loaded_ = false;       // state_ holds the state at the head
  mutable State state_;
  // Writers (guarded by mu_): the last event planned on the log's writer
  // thread, the last event per type planned / applied to state_, and
  // durable deltas waiting for their predecessors to be applied.
  // Mutable like state_: a const Load() replaces the state and resets them.
  mutable Seq sequenced_seq_ = 0;
  mutable std::map<std::string, Seq> sequenced_type_seq_;
  mutable std::map<std::string, Seq> committed_type_seq_;
  mutable std::map<Seq, std::pair<std::string, projection::Delta>> durable_;
  // Decoded versioned record rows by key (RecordAtSeq): such a row never
  // changes once written, and a long-running process answers as-of
  // questions about the same records again and again. Bounded: cleared
  // when it holds kRecordCacheSize records.
  static constexpr std::size_t kRecordCacheSize = 16384;
  mutable std::mutex record_cache_mu_;
  mutable std::unordered_map<std::string, VersionRecord> record_cache_;
  mutable std::unordered_map<Seq, std::shared_ptr<const Evidence>> evidence_cache_;
  // After the rows were rewritten (rebuild) or replaced (a follower's
  // catch-up): a cached record may be one the rewrite corrected.
  void ClearRecordCache() const;
};

// Versions of a type in semantic-version order.
std::vector<const VersionRecord*> SortedVersions(const projection::TypeState& ts);

// The rollback rule (docs/lifecycle.md). The rollback chain of a type is
// its production history with rollbacks undone: a promotion pushes its
// version; a rollback pops the version it rolled away from and then cuts
// the chain back to the last occurrence of its target (or pushes the
// target if it is not in the chain). It depends only on the history rows,
// so old ModelRolledBack events keep their meaning.
std::vector<std::string> RollbackChain(const projection::TypeState& ts);
// What `rollback TYPE` restores: walking the chain from its top, the first
// version that is not the current production version and is neither
// failed nor purged. "" when there is none (or no production version).
std::string RollbackTarget(const State& s, const std::string& type);

}  // namespace modelreg::registry
