// The gate policy as part of the log (docs/gates.md): setting it
// (PolicyChanged), adopting a policy.toml from before that, the policy in
// force for a command, and the policy as of an event.
#include <optional>
#include <string>

#include "common/sha256.h"
#include "common/utf8.h"
#include "events/model_events.h"
#include "registry/internal.h"
#include "registry/registry.h"

namespace modelreg::registry {

using internal::CheckActor;
using internal::EnvelopeFor;
using internal::kPolicyKey;
using internal::kProjectionCf;
using projection::PolicyRecord;

namespace {

// The largest policy text: what policy.toml files could hold before.
constexpr std::size_t kMaxPolicyBytes = 1u << 20;

// How a recorded policy names itself in messages and in the "policy" text
// of the promotions evaluated under it.
std::string SourceName(const PolicyRecord& p) {
  return "policy of event #" + std::to_string(p.seq);
}

Status CheckPolicyText(const std::string& text, const std::string& name) {
  if (text.size() > kMaxPolicyBytes) {
    return Status::InvalidArgument(name + " is larger than 1 MiB, the limit for a gate policy");
  }
  if (!IsValidUtf8(text)) return Status::InvalidArgument(name + " is not valid UTF-8");
  auto parsed = policy::ParsePolicy(text, name);
  if (!parsed) return parsed.error();
  return Status::OK();
}

}  // namespace

Result<SetPolicyResult> Registry::SetPolicy(const std::string& text, const std::string& source,
                                            const Actor& actor) {
  MODELREG_RETURN_IF_ERROR(CheckActor(actor));
  if (!IsValidUtf8(source)) return Err(Status::InvalidArgument("the policy's source is not UTF-8"));
  if (actor.reason.find_first_not_of(" \t\r\n") == std::string::npos) {
    return Err(Status::InvalidArgument("setting the gate policy needs --reason: say why it changes"));
  }
  // Checked before anything is written: a bad policy changes nothing.
  MODELREG_RETURN_IF_ERROR(CheckPolicyText(text, source.empty() ? "policy" : source));
  SetPolicyResult out;
  out.sha256 = ToHex(Sha256::Of(text));
  std::optional<PolicyRecord> same;
  auto r = Write(kPolicyKey, [&](const State& s) -> Result<std::string> {
    if (const PolicyRecord* now = s.Policy(); now != nullptr && now->sha256 == out.sha256) {
      same = *now;
      return Err(Status::AlreadyExists("unchanged"));
    }
    return events::Draft(EnvelopeFor(actor, NewEventId()),
                         events::PolicyChange{text, actor.reason, source});
  });
  if (same) {
    out.seq = same->seq;
    out.changed = false;
    out.summary = "the gate policy is unchanged: sha256 " + out.sha256.substr(0, 12) +
                  " has been in force since event #" + std::to_string(same->seq) + " (set by " +
                  same->actor + " at " + FormatUtc(same->at) + "); nothing was recorded";
    return out;
  }
  if (!r) return Err(r.error());
  out.seq = r->seq;
  out.changed = true;
  out.summary = "set the gate policy to sha256 " + out.sha256.substr(0, 12) +
                (source.empty() ? std::string() : " from " + source);
  return out;
}

Result<bool> Registry::AdoptPolicyFile() {
  if (read_only_) return false;
  auto text = policy::ReadPolicyFile(root_);
  if (!text) return Err(text.error());
  if (!*text) return false;
  const std::string path = policy::PolicyFilePath(root_);
  MODELREG_RETURN_IF_ERROR(CheckPolicyText(**text, path));
  const Actor actor{internal::kAdoptionActor, internal::kAdoptionReason};
  bool already = false;
  auto r = Write(kPolicyKey, [&](const State& s) -> Result<std::string> {
    if (s.Policy() != nullptr) {
      already = true;  // adopted (or set) meanwhile by another thread
      return Err(Status::AlreadyExists("a policy is recorded"));
    }
    return events::Draft(EnvelopeFor(actor, NewEventId()),
                         events::PolicyChange{**text, actor.reason, path});
  });
  if (already) return true;
  if (!r) return Err(r.error());
  Warn("adopted " + path + " as the registry's gate policy (sha256 " +
       ToHex(Sha256::Of(**text)).substr(0, 12) + ", event #" + std::to_string(r->seq) +
       "): the policy is part of the log from now on and travels with backups, exports and "
       "copies; policy.toml is no longer read: change the policy with `modelreg policy set "
       "FILE --reason TEXT`");
  return true;
}

Result<Registry::InForcePolicy> Registry::PolicyInForce() {
  MODELREG_RETURN_IF_ERROR(Load());
  Seq in_force = 0;
  Read([&in_force](const State& s) {
    if (const PolicyRecord* p = s.Policy()) in_force = p->seq;
  });
  if (in_force != 0) {
    std::lock_guard<std::mutex> lock(policy_cache_mu_);
    if (policy_cache_ && policy_cache_->seq == in_force) return *policy_cache_;
  }
  std::optional<PolicyRecord> rec;
  Read([&rec](const State& s) {
    if (const PolicyRecord* p = s.Policy()) rec = *p;
  });
  if (!rec && !read_only_) {
    auto adopted = AdoptPolicyFile();
    if (!adopted) return Err(adopted.error());
    if (*adopted) {
      Read([&rec](const State& s) {
        if (const PolicyRecord* p = s.Policy()) rec = *p;
      });
    }
  }
  InForcePolicy out;
  if (!rec) {
    out.policy = policy::DefaultPolicy();
    return out;
  }
  auto parsed = policy::ParsePolicy(rec->text, SourceName(*rec));
  if (!parsed) {
    return Err(Status::InvalidArgument(
        "the gate policy in force (event #" + std::to_string(rec->seq) +
        ") cannot be read by this version of modelreg: " + parsed.error().message() +
        "; set a policy it reads with `modelreg policy set FILE --reason TEXT`"));
  }
  out.policy = std::move(*parsed);
  out.seq = rec->seq;
  out.sha256 = DigestFromHex(rec->sha256);
  std::lock_guard<std::mutex> lock(policy_cache_mu_);
  policy_cache_ = out;
  return out;
}

Result<std::optional<PolicyRecord>> Registry::PolicyAt(Seq seq) const {
  if (seq == 0) return std::optional<PolicyRecord>();
  if (!rows_current_) {
    // Stale rows (a read-only registry beside an interrupted rewrite):
    // the fold is the truth.
    MODELREG_RETURN_IF_ERROR(Load());
    std::optional<PolicyRecord> out;
    Read([&](const State& s) {
      if (const PolicyRecord* p = s.PolicyAt(seq)) out = *p;
    });
    return out;
  }
  auto row = store_->SeekRowForPrev(kProjectionCf, projection::PolicyKey(seq));
  if (!row) return Err(row.error());
  const std::string prefix = projection::kPolicyPrefix;
  if (!*row || (*row)->first.size() != prefix.size() + 8 ||
      (*row)->first.compare(0, prefix.size(), prefix) != 0) {
    return std::optional<PolicyRecord>();
  }
  auto rec = projection::DecodePolicyRow((*row)->second);
  if (!rec) return Err(rec.error());
  return std::optional<PolicyRecord>(std::move(*rec));
}

std::string Registry::PolicyFileNote() const {
  auto text = policy::ReadPolicyFile(root_);
  const std::string path = policy::PolicyFilePath(root_);
  if (!text) return path + ": " + text.error().message();
  if (!*text) return "";
  auto in_force = PolicyAt(store_->head().seq);
  if (!in_force) return "";
  if (!*in_force) {
    return path + " is not part of the log yet: the next command that writes (or `modelreg "
                  "serve`) adopts it as the gate policy; until then the built-in defaults are "
                  "the policy recorded";
  }
  if (ToHex(Sha256::Of(**text)) == (*in_force)->sha256) return "";
  return path + " differs from the gate policy in force (sha256 " +
         (*in_force)->sha256.substr(0, 12) + ", event #" + std::to_string((*in_force)->seq) +
         ") and is ignored, the policy being part of the log: delete it, or make it the policy "
         "with `modelreg policy set " +
         path + " --reason TEXT`";
}

}  // namespace modelreg::registry
