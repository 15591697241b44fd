// The lifecycle commands on registered versions: promote (with its
// gates), archive, fail, rollback, validate, and consumers'
// acknowledgements. Each validates against the state and appends one event
// through Write (sequencing.cc); a rejected command appends nothing.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "compat/compatibility.h"
#include "events/model_events.h"
#include "model/naming.h"
#include "registry/internal.h"
#include "registry/registry.h"

namespace modelreg::registry {

namespace fs = std::filesystem;
using internal::CheckActor;
using internal::EnvelopeFor;
using internal::kProjectionCf;
using internal::Name;

namespace {

// What a command on one version checks before reading the state.
Status CheckNames(const Actor& actor, const std::string& type, const std::string& version) {
  MODELREG_RETURN_IF_ERROR(CheckActor(actor));
  MODELREG_RETURN_IF_ERROR(model::ValidateModelType(type));
  return model::ValidateVersion(version);
}

Status NotRegistered(const std::string& type, const std::string& version) {
  return Status::NotFound(Name(type, version) + " is not registered");
}

const VersionRecord* FindOrNull(const State& s, const std::string& type,
                                const std::string& version) {
  return s.Find(type, version);
}

std::string ProductionOf(const State& s, const std::string& type) {
  auto it = s.types.find(type);
  return it == s.types.end() ? std::string() : it->second.production;
}

// The legality half of a promotion, checked before the artifact work and
// again against the state the event is appended on.
Status CheckPromotable(const State& s, const std::string& type, const std::string& version,
                       const std::optional<std::string>& expect_current) {
  const VersionRecord* rec = s.Find(type, version);
  if (rec == nullptr) return NotRegistered(type, version);
  const std::string current = ProductionOf(s, type);
  if (expect_current && *expect_current != current) {
    return Status::Conflict("production " + type + " is " + (current.empty() ? "none" : current) +
                            ", not " + (expect_current->empty() ? "none" : *expect_current) +
                            std::string(kExpectCurrentMismatchTail));
  }
  switch (rec->status) {
    case ModelStatus::kProduction:
      return Status::FailedPrecondition(Name(type, version) + " is already in production");
    case ModelStatus::kFailed:
      return Status::FailedPrecondition(Name(type, version) + " is failed and cannot be promoted (" +
                                        rec->status_reason + ")");
    case ModelStatus::kStaged:
    case ModelStatus::kArchived:
      break;
  }
  if (rec->purged) {
    return Status::FailedPrecondition(Name(type, version) +
                                      " has had its artifact purged and cannot be promoted");
  }
  return Status::OK();
}

std::string ReadFileOr(const fs::path& path, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot read " + path.string();
    return {};
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool Blank(const std::string& s) { return s.find_first_not_of(" \t\r\n") == std::string::npos; }

// The ArtifactValidated event of a check (ok or not).
events::Validation ValidationOf(const VersionRecord& rec, const internal::ArtifactCheck& check) {
  events::Validation v;
  v.model_type = rec.model_type;
  v.version = rec.version;
  v.expected_sha256 = DigestFromHex(rec.artifact_sha256).value_or(Digest{});
  v.observed_sha256 = check.observed_sha256;
  v.observed_size = check.observed_size;
  v.ok = check.ok;
  v.detail = check.ok ? std::string() : check.detail;
  v.result = check.result;
  return v;
}

}  // namespace

Status NameExpectCurrent(const Status& st, std::string_view name) {
  const std::string& m = st.message();
  constexpr std::string_view kDone = "; nothing changed";
  if (st.code() != Code::kConflict || m.rfind("production ", 0) != 0 || m.size() < kDone.size() ||
      m.compare(m.size() - kDone.size(), kDone.size(), kDone) != 0) {
    return st;
  }
  // Bare (from the registry) or already naming an option (from a server).
  const std::size_t as = m.rfind(" as expected");
  if (as == std::string::npos) return st;
  return Status::Conflict(m.substr(0, as) + " as expected (" + std::string(name) + ")" +
                          std::string(kDone));
}

// A missing artifact file: recorded (ArtifactValidated, result "missing"),
// status left alone, the command refused with FailedPrecondition.
Status Registry::RefuseMissing(const VersionRecord& rec, const internal::ArtifactCheck& check,
                               const std::string& what, const Actor& actor) {
  auto r = Write(rec.model_type, [&](const State& s) -> Result<std::string> {
    if (s.Find(rec.model_type, rec.version) == nullptr) {
      return Err(NotRegistered(rec.model_type, rec.version));
    }
    return events::Draft(EnvelopeFor(actor, NewEventId()), ValidationOf(rec, check));
  });
  if (!r) return r.error();
  return Status::FailedPrecondition(
      "cannot " + what + " " + Name(rec.model_type, rec.version) + ": " + check.detail +
      " (recorded as event #" + std::to_string(r->seq) + "; its status is unchanged: restore the " +
      "file, then `modelreg validate " + rec.model_type + " " + rec.version + "` and try again)");
}

Status Registry::MarkFailed(const VersionRecord& rec, const std::string& why,
                            const Actor& actor) {
  auto r = Write(rec.model_type, [&](const State& s) -> Result<std::string> {
    const VersionRecord* now = s.Find(rec.model_type, rec.version);
    if (now == nullptr || now->status == ModelStatus::kFailed ||
        now->status == ModelStatus::kProduction) {
      return Err(Status::Conflict(Name(rec.model_type, rec.version) + " changed meanwhile"));
    }
    return events::Draft(EnvelopeFor(actor, NewEventId()),
                         events::Failure{rec.model_type, rec.version, why});
  });
  if (!r) return r.error();
  return Status::OK();
}

Result<WriteResult> Registry::Promote(const std::string& type, const std::string& version,
                                      const std::optional<std::string>& expect_current,
                                      bool override_gates, const Actor& actor) {
  MODELREG_RETURN_IF_ERROR(CheckNames(actor, type, version));
  if (override_gates && actor.reason.find_first_not_of(" \t\r\n") == std::string::npos) {
    return Err(Status::InvalidArgument("--override-gates needs --reason: say why the gates are "
                                       "overridden"));
  }
  std::optional<VersionRecord> rec;
  std::string current;
  Status legal;
  Read([&](const State& s) {
    legal = CheckPromotable(s, type, version, expect_current);
    if (const VersionRecord* r = s.Find(type, version)) rec = *r;
    current = ProductionOf(s, type);
  });
  MODELREG_RETURN_IF_ERROR(legal);
  // The policy of the log (the last PolicyChanged), never a file.
  auto loaded = PolicyInForce();
  if (!loaded) return Err(loaded.error());
  if (const std::string note = PolicyFileNote(); !note.empty()) Warn(note);
  const policy::TypePolicy& tp = loaded->policy.For(type);
  const std::string policy_text = loaded->policy.DescribeFor(type);
  // The draft is appended only if the policy is still the one evaluated.
  auto same_policy = [&loaded](const State& s) -> Status {
    const projection::PolicyRecord* now = s.Policy();
    const Seq seq = now == nullptr ? 0 : now->seq;
    if (seq == loaded->seq) return Status::OK();
    return Status::Conflict("the gate policy changed (event #" + std::to_string(seq) +
                            ") while this promotion was being checked; nothing was recorded: "
                            "promote again");
  };

  // ... and only if no annotation changed the metrics the gates saw.
  auto same_annotations = [&](const State& s) -> Status {
    const VersionRecord* now = s.Find(type, version);
    if (now == nullptr || now->annotations.seq == rec->annotations.seq) return Status::OK();
    return Status::Conflict(Name(type, version) + " was annotated (event #" +
                            std::to_string(now->annotations.seq) +
                            ") while this promotion was being checked; nothing was recorded: "
                            "promote again");
  };

  // Validation before activation.
  auto check = internal::CheckArtifact(artifacts_, *rec, tp);
  if (!check) return Err(check.error());
  if (check->missing()) return Err(RefuseMissing(*rec, *check, "promote", actor));
  if (!check->ok) {
    MODELREG_RETURN_IF_ERROR(
        MarkFailed(*rec, "failed validation before promotion: " + check->detail, actor));
    return Err(Status::Corruption(Name(type, version) + " failed validation before promotion (" +
                                  check->detail + "); it is now marked failed"));
  }

  // Gates.
  // A metric annotated after registration overrides the registration's
  // value (docs/gates.md); the gate's detail says where it came from.
  std::vector<events::Gate> gates = policy::EvaluateGates(
      tp, projection::EffectiveMetrics(*rec), rec->registered_at, clock_->NowNs());
  for (events::Gate& g : gates) {
    auto late = rec->annotations.metrics.find(g.name);
    if (late == rec->annotations.metrics.end() || !g.has_observed) continue;
    const projection::LateMetric& m = late->second;
    g.detail = "observed value from annotation event #" + std::to_string(m.seq) + " (source " +
               m.source + ", by " + m.actor + " at " + FormatUtc(m.at) + ")";
  }
  if (tp.compatibility) {
    events::Gate g;
    g.name = "dataset_compatibility";
    g.comparison = "==";
    g.threshold = 0;
    std::string error;
    const fs::path file = fs::path(root_) / tp.compatibility->current_versions_file;
    const std::string text = ReadFileOr(file, &error);
    auto current_versions =
        error.empty() ? compat::ParseDatasetVersions(text, file.string())
                      : Result<compat::DatasetVersions>(Err(Status::NotFound(error)));
    if (!current_versions) {
      g.detail = current_versions.error().message();
    } else {
      const compat::Result cr = compat::VersionCompatibilityChecker(tp.compatibility->strict)
                                    .Check(rec->dataset_version_ids, *current_versions);
      g.has_observed = true;
      g.passed = cr.compatible;
      for (const auto& w : cr.warnings) {
        g.detail += (g.detail.empty() ? "" : "; ") + w;
        if (!cr.compatible || cr.level == compat::Level::kMissing) g.observed += 1;
      }
      if (cr.compatible) g.observed = 0;
    }
    gates.push_back(std::move(g));
  }
  const bool all_passed =
      std::all_of(gates.begin(), gates.end(), [](const events::Gate& g) { return g.passed; });

  if (!all_passed && !override_gates) {
    const std::string failures = policy::DescribeFailures(gates);
    auto r = Write(type, [&](const State& s) -> Result<std::string> {
      MODELREG_RETURN_IF_ERROR(CheckPromotable(s, type, version, expect_current));
      MODELREG_RETURN_IF_ERROR(same_policy(s));
      MODELREG_RETURN_IF_ERROR(same_annotations(s));
      events::Rejection rej{type,         version,     ProductionOf(s, type), gates,
                            actor.reason, policy_text, loaded->sha256};
      return events::Draft(EnvelopeFor(actor, NewEventId()), rej);
    }, internal::kPolicyKey);
    if (!r) return Err(r.error());
    return Err(Status::Rejected("promotion of " + Name(type, version) +
                                " refused by the gates: " + failures + " (policy: " +
                                policy_text + "; recorded as event #" + std::to_string(r->seq) +
                                ")"));
  }

  std::string summary;
  auto r = Write(type, [&](const State& s) -> Result<std::string> {
    MODELREG_RETURN_IF_ERROR(CheckPromotable(s, type, version, expect_current));
    MODELREG_RETURN_IF_ERROR(same_policy(s));
    MODELREG_RETURN_IF_ERROR(same_annotations(s));
    const std::string replaced = ProductionOf(s, type);
    summary = "promoted " + Name(type, version) +
              (replaced.empty() ? std::string() : " (replaces " + replaced + ", now archived)");
    if (override_gates && !all_passed) {
      summary += "; GATES OVERRIDDEN: " + policy::DescribeFailures(gates);
    }
    events::Promotion p;
    p.model_type = type;
    p.version = version;
    p.replaced_version = replaced;
    p.gates = gates;
    p.gates_overridden = override_gates && !all_passed;
    p.override_reason = p.gates_overridden ? actor.reason : std::string();
    p.reason = actor.reason;
    p.policy = policy_text;
    p.policy_sha256 = loaded->sha256;
    return events::Draft(EnvelopeFor(actor, NewEventId()), p);
  }, internal::kPolicyKey);
  if (!r) return Err(r.error());
  return WriteResult{r->seq, summary};
}

Result<WriteResult> Registry::Archive(const std::string& type, const std::string& version,
                                      const Actor& actor) {
  MODELREG_RETURN_IF_ERROR(CheckNames(actor, type, version));
  auto r = Write(type, [&](const State& s) -> Result<std::string> {
    const VersionRecord* rec = FindOrNull(s, type, version);
    if (rec == nullptr) return Err(NotRegistered(type, version));
    switch (rec->status) {
      case ModelStatus::kProduction:
        return Err(Status::FailedPrecondition(
            Name(type, version) + " is in production: promote another version or roll back "
                                  "first (`modelreg rollback " + type + "`)"));
      case ModelStatus::kArchived:
        return Err(Status::FailedPrecondition(Name(type, version) + " is already archived"));
      case ModelStatus::kFailed:
        return Err(Status::FailedPrecondition(Name(type, version) +
                                              " is failed; failed versions stay failed"));
      case ModelStatus::kStaged:
        break;
    }
    return events::Draft(EnvelopeFor(actor, NewEventId()),
                         events::Archive{type, version, actor.reason});
  });
  if (!r) return Err(r.error());
  return WriteResult{r->seq, "archived " + Name(type, version)};
}

Result<WriteResult> Registry::Fail(const std::string& type, const std::string& version,
                                   bool force, const Actor& actor) {
  MODELREG_RETURN_IF_ERROR(CheckNames(actor, type, version));
  if (Blank(actor.reason)) {
    return Err(Status::InvalidArgument("fail needs --reason: say why the model failed"));
  }
  std::string summary = "failed " + Name(type, version);
  auto r = Write(type, [&](const State& s) -> Result<std::string> {
    const VersionRecord* rec = FindOrNull(s, type, version);
    if (rec == nullptr) return Err(NotRegistered(type, version));
    switch (rec->status) {
      case ModelStatus::kProduction:
        if (!force) {
          return Err(Status::FailedPrecondition(
              Name(type, version) + " is in production: `modelreg rollback " + type +
              " --fail` fails it and restores the previous version; `fail --force` leaves " +
              type + " with no production model"));
        }
        summary += "; " + type + " now has no production version";
        break;
      case ModelStatus::kFailed:
        return Err(Status::FailedPrecondition(Name(type, version) + " is already failed"));
      case ModelStatus::kStaged:
      case ModelStatus::kArchived:
        break;
    }
    return events::Draft(EnvelopeFor(actor, NewEventId()),
                         events::Failure{type, version, actor.reason});
  });
  if (!r) return Err(r.error());
  return WriteResult{r->seq, summary};
}

namespace {

// Which version a rollback of `type` goes to, against state `s`: the rule
// (RollbackTarget) or `to`, checked. The error says why there is none.
Result<std::string> ChooseRollbackTarget(const State& s, const std::string& type,
                                         const std::string& to) {
  const std::string current = ProductionOf(s, type);
  if (current.empty()) {
    return Err(Status::FailedPrecondition("no production version of " + type + " to roll back"));
  }
  if (to.empty()) {
    std::string target = RollbackTarget(s, type);
    if (target.empty()) {
      // Say what was skipped, or that nothing came before.
      std::string skipped;
      for (const std::string& v : RollbackChain(s.types.at(type))) {
        if (v == current || skipped.find(" " + v + " ") != std::string::npos) continue;
        const VersionRecord* r = s.Find(type, v);
        if (r == nullptr) continue;
        skipped += (skipped.empty() ? " " : ", ") + v +
                   (r->status == ModelStatus::kFailed ? " is failed" : " has had its artifact purged");
      }
      return Err(Status::FailedPrecondition(
          "no earlier production version of " + type + " to roll back to from " + current + ": " +
          (skipped.empty() ? current + " is the first production version in its rollback chain "
                                       "(versions rolled away from do not count)"
                           : "the earlier ones cannot be promoted (" + skipped.substr(1) + ")") +
          "; promote a version explicitly with `modelreg promote`"));
    }
    return target;
  }
  const VersionRecord* rec = s.Find(type, to);
  if (rec == nullptr) return Err(NotRegistered(type, to));
  if (to == current) {
    return Err(Status::FailedPrecondition(Name(type, to) + " is already in production"));
  }
  const auto& history = s.types.at(type).history;
  const bool was_production = std::any_of(history.begin(), history.end(),
                                          [&to](const auto& h) { return h.version == to; });
  if (!was_production) {
    return Err(Status::FailedPrecondition(
        Name(type, to) + " was never in production: rollback --to goes back only to a version "
                         "that was production before; use `modelreg promote` (gates apply)"));
  }
  if (rec->status == ModelStatus::kFailed) {
    return Err(Status::FailedPrecondition(Name(type, to) + " is failed (" + rec->status_reason +
                                          ") and cannot be rolled back to"));
  }
  if (rec->purged) {
    return Err(Status::FailedPrecondition(Name(type, to) +
                                          " has had its artifact purged and cannot be rolled "
                                          "back to"));
  }
  return std::string(to);
}

}  // namespace

Result<RollbackResult> Registry::Rollback(const std::string& type, const RollbackOptions& options,
                                          const Actor& actor) {
  MODELREG_RETURN_IF_ERROR(CheckActor(actor));
  MODELREG_RETURN_IF_ERROR(model::ValidateModelType(type));
  if (!options.to.empty()) MODELREG_RETURN_IF_ERROR(model::ValidateVersion(options.to));
  if (options.fail_current && Blank(actor.reason)) {
    return Err(Status::InvalidArgument(
        "rollback --fail needs --reason: say why the current version of " + type + " failed"));
  }
  RollbackResult out;
  out.model_type = type;
  out.fail_current = options.fail_current;
  out.dry_run = options.dry_run;
  auto describe = [&out](bool planned) {
    const std::string becomes = out.fail_current ? "failed" : "archived";
    return (planned ? "dry run: would roll back " : "rolled back ") + out.model_type + ": " +
           out.from + " -> " + out.to + " (" + out.from + (planned ? " would become " : " is now ") +
           becomes + ")";
  };
  // Choose the target first, to check its artifact before anything is written.
  std::optional<VersionRecord> target_rec;
  Status chosen;
  Read([&](const State& s) {
    auto target = ChooseRollbackTarget(s, type, options.to);
    if (!target) {
      chosen = target.error();
      return;
    }
    out.from = ProductionOf(s, type);
    out.to = *target;
    target_rec = *s.Find(type, *target);
  });
  MODELREG_RETURN_IF_ERROR(chosen);
  auto loaded = PolicyInForce();
  if (!loaded) return Err(loaded.error());
  policy::TypePolicy tp = loaded->policy.For(type);
  if (options.dry_run) tp.validator.reset();  // a dry run runs nothing
  auto check = internal::CheckArtifact(artifacts_, *target_rec, tp);
  if (!check) return Err(check.error());
  if (options.dry_run) {
    if (check->missing()) {
      return Err(Status::FailedPrecondition(
          describe(true) + ", but " + check->detail +
          ": the rollback would be refused and recorded; nothing was written"));
    }
    if (!check->ok) {
      return Err(Status::Corruption(describe(true) + ", but " + check->detail + ": the rollback " +
                                    "would mark " + out.to + " failed; nothing was written"));
    }
    out.summary = describe(true) + "; its artifact matches its checksum" +
                  (loaded->policy.For(type).validator ? " (the validator runs only for real)" : "") +
                  "; nothing was written";
    return out;
  }
  if (check->missing()) return Err(RefuseMissing(*target_rec, *check, "roll back to", actor));
  if (!check->ok) {
    MODELREG_RETURN_IF_ERROR(
        MarkFailed(*target_rec, "failed validation before rollback: " + check->detail, actor));
    return Err(Status::Corruption("cannot roll back to " + Name(type, out.to) + ": " +
                                  check->detail +
                                  "; it is now marked failed and production is unchanged"));
  }
  auto r = Write(type, [&](const State& s) -> Result<std::string> {
    auto target = ChooseRollbackTarget(s, type, options.to);
    if (!target) return Err(target.error());
    if (*target != out.to || ProductionOf(s, type) != out.from) {
      return Err(Status::Conflict("production of " + type + " changed while " + out.to +
                                  " was being checked; nothing changed, run rollback again"));
    }
    return events::Draft(EnvelopeFor(actor, NewEventId()),
                         events::Rollback{type, out.from, out.to, options.fail_current,
                                          actor.reason});
  });
  if (!r) return Err(r.error());
  out.seq = r->seq;
  out.summary = describe(false);
  return out;
}

Result<ValidateResult> Registry::Validate(const std::string& type, const std::string& version,
                                          const Actor& actor) {
  MODELREG_RETURN_IF_ERROR(CheckNames(actor, type, version));
  std::optional<VersionRecord> rec;
  Read([&](const State& s) {
    if (const VersionRecord* r = s.Find(type, version)) rec = *r;
  });
  if (!rec) return Err(NotRegistered(type, version));
  if (rec->purged) {
    return Err(Status::FailedPrecondition(Name(type, version) + " has had its artifact purged"));
  }
  auto loaded = PolicyInForce();
  if (!loaded) return Err(loaded.error());
  auto check = internal::CheckArtifact(artifacts_, *rec, loaded->policy.For(type));
  if (!check) return Err(check.error());
  const events::Validation v = ValidationOf(*rec, *check);
  auto r = Write(type, [&](const State& s) -> Result<std::string> {
    if (s.Find(type, version) == nullptr) return Err(NotRegistered(type, version));
    return events::Draft(EnvelopeFor(actor, NewEventId()), v);
  });
  if (!r) return Err(r.error());
  return ValidateResult{check->ok, check->detail, r->seq, check->result};
}

Result<WriteResult> Registry::Acknowledge(const std::string& type, const events::ConsumerAck& ack,
                                          const Actor& actor) {
  MODELREG_RETURN_IF_ERROR(CheckActor(actor));
  MODELREG_RETURN_IF_ERROR(model::ValidateModelType(type));
  if (ack.consumer_id.empty() || ack.consumer_id.size() > 128 || !IsValidUtf8(ack.consumer_id) ||
      std::any_of(ack.consumer_id.begin(), ack.consumer_id.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
    return Err(Status::InvalidArgument("consumer id must be 1..128 bytes of UTF-8 text"));
  }
  if (!ack.version.empty()) MODELREG_RETURN_IF_ERROR(model::ValidateVersion(ack.version));
  if (!ack.attempted_version.empty()) {
    MODELREG_RETURN_IF_ERROR(model::ValidateVersion(ack.attempted_version));
  }
  if (!IsValidUtf8(ack.detail) || ack.detail.size() > 4096) {
    return Err(Status::InvalidArgument("detail must be UTF-8, at most 4 KiB"));
  }
  events::ConsumerAck a = ack;
  a.model_type = type;
  auto describe = [&a, &type] {
    return "consumer " + a.consumer_id +
           (a.ok ? " runs " : " failed to load " + a.attempted_version + ", runs ") + type + " " +
           (a.version.empty() ? "nothing" : a.version);
  };
  {
    // A registry opened with lazy_state that has not loaded its state:
    // append without it. The fold of an acknowledgement reads nothing from
    // the state, so its rows ("s" and "c/") come from a fold over an empty
    // one. mu_ is held throughout so that no other thread loads the state
    // (which would then miss this event) meanwhile; no other thread of
    // this registry can be appending, since that needs the state loaded.
    std::unique_lock<std::mutex> lock(mu_);
    if (!loaded_ && rows_current_ && !read_only_) {
      for (const std::string* v : {&a.version, &a.attempted_version}) {
        if (v->empty()) continue;
        auto row = store_->GetRow(kProjectionCf, projection::VersionKey(type, *v));
        if (!row) return Err(row.error());
        if (!*row) return Err(NotRegistered(type, *v));
      }
      RowsFn rows = [](const AppendedEvent& ev) -> Result<std::vector<Row>> {
        State empty;
        auto delta = projection::PlanUnchecked(empty, ev.event);
        if (!delta) return Err(delta.error());
        return internal::ToRows(projection::EncodeDelta(*delta));
      };
      if (replica_) {
        return Err(Status::FailedPrecondition(
            "this registry is a follower: acknowledge to the leader (docs/replication.md)"));
      }
      auto r = store_->Append({events::Draft(EnvelopeFor(actor, NewEventId()), a), std::nullopt,
                               rows});
      if (!r) return Err(r.error());
      return WriteResult{r->seq, describe()};
    }
  }
  std::string summary;
  auto r = Write(type, [&](const State& s) -> Result<std::string> {
    for (const std::string* v : {&a.version, &a.attempted_version}) {
      if (!v->empty() && s.Find(type, *v) == nullptr) return Err(NotRegistered(type, *v));
    }
    summary = describe();
    return events::Draft(EnvelopeFor(actor, NewEventId()), a);
  });
  if (!r) return Err(r.error());
  return WriteResult{r->seq, summary};
}

std::vector<std::string> RollbackChain(const projection::TypeState& ts) {
  std::vector<std::string> chain;
  for (const projection::PromotionRecord& h : ts.history) {
    if (!h.rollback) {
      chain.push_back(h.version);
      continue;
    }
    // The version rolled away from leaves the chain...
    if (!chain.empty() && !h.replaced_version.empty() && chain.back() == h.replaced_version) {
      chain.pop_back();
    }
    // ...and the chain goes back to its target (what lay above it was
    // skipped), or the target joins it (a rollback to a version that had
    // left the chain: `--to`, or one written by the older rule).
    auto it = std::find(chain.rbegin(), chain.rend(), h.version);
    if (it != chain.rend()) {
      chain.erase(it.base(), chain.end());
    } else {
      chain.push_back(h.version);
    }
  }
  return chain;
}

std::string RollbackTarget(const State& s, const std::string& type) {
  auto t = s.types.find(type);
  if (t == s.types.end() || t->second.production.empty()) return "";
  const std::string& current = t->second.production;
  const std::vector<std::string> chain = RollbackChain(t->second);
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    if (*it == current) continue;
    const VersionRecord* rec = s.Find(type, *it);
    if (rec == nullptr || rec->status == ModelStatus::kFailed || rec->purged) continue;
    return *it;
  }
  return "";
}

}  // namespace modelreg::registry
