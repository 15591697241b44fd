#include "app/proof_commands.h"

#include <set>

#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "common/fs.h"
#include "common/json_input.h"
#include "log/event_store.h"
#include "model/naming.h"
#include "note/checkpoint.h"
#include "note/key_file.h"
#include "proofs/document.h"
#include "proofs/publisher.h"
#include "query/query.h"
#include "query/render.h"
#include "registry/registry.h"

namespace modelreg::app {

Status RunKeygen(const std::string& name, const std::string& path, std::ostream& out) {
  auto key = note::GenerateKey(name);
  if (!key) return key.error();
  MODELREG_RETURN_IF_ERROR(note::WriteKeyPair(path, *key));
  out << "signing key: " << path << " (keep it private; mode 0600)\n"
      << "verifier key: " << path << ".pub\n"
      << note::EncodeVerifierKey(key->verifier) << '\n';
  return Status::OK();
}

Status RunCheckpoint(const Globals& g, const CheckpointOptions& options, std::ostream& out) {
  auto key = note::ReadSignerKeyFile(options.key_file);
  if (!key) return key.error();
  registry::RegistryOptions o;
  o.root = g.root;
  o.read_only = true;
  o.clock = g.clock;
  auto reg = registry::Registry::Open(o);
  if (!reg) return reg.error();
  auto tree = (*reg)->Log().TreeAt();
  if (!tree) return tree.error();
  auto signed_tree = proofs::SignTree(*key, options.origin, *tree, g.clock->NowNs());
  if (!signed_tree) return signed_tree.error();
  const note::Checkpoint& c = signed_tree->checkpoint;
  const std::string* signed_note = &signed_tree->note;
  if (!options.witness_file.empty()) {
    MODELREG_RETURN_IF_ERROR(note::AppendToWitness(options.witness_file, *signed_note));
  }
  if (g.json) {
    out << nlohmann::json{{"origin", c.origin},
                          {"tree_size", c.size},
                          {"root_hash", ToHex(c.root)},
                          {"time", FormatUtc(*c.time)},
                          {"checkpoint", *signed_note}}
               .dump()
        << '\n';
  } else {
    out << *signed_note;
  }
  return Status::OK();
}

namespace {

Result<std::unique_ptr<registry::Registry>> OpenReadOnly(const Globals& g) {
  registry::RegistryOptions o;
  o.root = g.root;
  o.read_only = true;
  o.clock = g.clock;
  return registry::Registry::Open(o);
}

using SignedTree = proofs::SignedCheckpoint;

// A fresh checkpoint of the log's current tree, signed with the key file.
Result<SignedTree> SignNow(const Globals& g, const EventStore& log, const std::string& key_file,
                           const std::string& origin) {
  auto key = note::ReadSignerKeyFile(key_file);
  if (!key) return Err(key.error());
  auto tree = log.TreeAt();
  if (!tree) return Err(tree.error());
  return proofs::SignTree(*key, origin, *tree, g.clock->NowNs());
}

// The newest checkpoint in a file (a witness file or one checkpoint) that
// covers at least `min_size` events. Its signature is not checked here:
// whoever relies on the proof checks it (verify-proof).
Result<SignedTree> NewestIn(const std::string& file, std::uint64_t min_size) {
  auto notes = note::ReadNotes(file);
  if (!notes) return Err(notes.error());
  for (auto it = notes->rbegin(); it != notes->rend(); ++it) {
    auto text = note::UncheckedText(*it);
    if (!text) return Err(text.error().WithContext(file));
    auto c = note::ParseCheckpoint(*text);
    if (!c) return Err(c.error().WithContext(file));
    if (c->size >= min_size) return SignedTree{*it, *c};
  }
  return Err(Status::NotFound("no checkpoint in " + file + " covers " + std::to_string(min_size) +
                              " events; sign a newer one (modelreg checkpoint)"));
}

Result<SignedTree> TargetTree(const Globals& g, const EventStore& log, const ProveOptions& o,
                              std::uint64_t min_size) {
  if (!o.checkpoint_file.empty()) return NewestIn(o.checkpoint_file, min_size);
  if (o.key_file.empty()) {
    return Err(Status::InvalidArgument(
        "say which signed tree to prove against: --checkpoint FILE or --key FILE"));
  }
  return SignNow(g, log, o.key_file, o.origin);
}

}  // namespace

Status RunProveEvent(const Globals& g, const ProveOptions& options, std::ostream& out) {
  auto reg = OpenReadOnly(g);
  if (!reg) return reg.error();
  const EventStore& log = (*reg)->Log();
  Seq highest = 0;
  for (Seq s : options.seqs) highest = std::max(highest, s);
  if (highest > log.head().seq) {
    return Status::NotFound("event " + std::to_string(highest) + " is not in the log (head " +
                            std::to_string(log.head().seq) + ")");
  }
  auto target = TargetTree(g, log, options, highest);
  if (!target) return target.error();
  auto doc = proofs::ProveEvents(log, target->note, target->checkpoint, options.seqs);
  if (!doc) return doc.error();
  out << doc->dump(2) << '\n';
  return Status::OK();
}

Status RunProveConsistency(const Globals& g, const ProveOptions& options, std::ostream& out) {
  auto reg = OpenReadOnly(g);
  if (!reg) return reg.error();
  const EventStore& log = (*reg)->Log();
  std::string from_note;
  std::uint64_t from_size = 0;
  if (!options.from.empty() &&
      options.from.find_first_not_of("0123456789") == std::string::npos &&
      options.from.size() <= 19) {
    from_size = std::stoull(options.from);
  } else {
    auto from = NewestIn(options.from, 0);
    if (!from) return from.error();
    from_note = from->note;
    from_size = from->checkpoint.size;
    auto tree = log.TreeAt(from_size);
    if (!tree) return tree.error();
    if (tree->root != from->checkpoint.root) {
      return Status::FailedPrecondition(
          "the log's first " + std::to_string(from_size) +
          " events are not the ones the --from checkpoint signed: this log does not extend it "
          "(modelreg verify --checkpoint says more)");
    }
  }
  auto target = TargetTree(g, log, options, from_size);
  if (!target) return target.error();
  auto doc = proofs::ProveConsistency(log, from_note, from_size, target->note, target->checkpoint);
  if (!doc) return doc.error();
  out << doc->dump(2) << '\n';
  return Status::OK();
}

Status RunAuditProof(const Globals& g, TimeNs at, const std::string& type,
                     const ProveOptions& options, std::ostream& out) {
  if (!type.empty()) MODELREG_RETURN_IF_ERROR(model::ValidateModelType(type));
  auto reg = OpenReadOnly(g);
  if (!reg) return reg.error();
  std::vector<std::string> types;
  if (!type.empty()) types.push_back(type);
  auto audit = query::Query(**reg).Audit(at, types);
  if (!audit) return audit.error();
  std::set<Seq> seqs;
  for (const query::Production& m : audit->models) {
    if (m.record && m.record->registered_seq != 0) seqs.insert(m.record->registered_seq);
    if (m.promotion && m.promotion->promotion.seq != 0) seqs.insert(m.promotion->promotion.seq);
  }
  if (audit->policy && audit->policy->seq != 0) seqs.insert(audit->policy->seq);
  const EventStore& log = (*reg)->Log();
  // The checkpoint must cover the answer's whole log prefix, so that the
  // regulator can also ask for any other event up to it.
  auto target = TargetTree(g, log, options, audit->seq);
  if (!target) return target.error();
  auto doc = proofs::ProveEvents(log, target->note, target->checkpoint,
                                 std::vector<Seq>(seqs.begin(), seqs.end()));
  if (!doc) return doc.error();
  (*doc)["answer"] = query::AuditJson(*audit);
  out << doc->dump(2) << '\n';
  return Status::OK();
}

Status RunVerifyProof(const std::string& proof_file, const std::string& key_file,
                      std::ostream& out) {
  auto key = note::ReadVerifierKeyFile(key_file);
  if (!key) return key.error();
  auto text = ReadRegularFile(proof_file, 64u << 20);
  if (!text) return text.error();
  auto doc = ParseJsonInput(*text, proof_file);
  if (!doc) return doc.error();
  auto result = proofs::CheckDocument(*doc, *key);
  if (!result) return result.error();
  out << *result << '\n';
  return Status::OK();
}

Result<std::string> CheckCheckpoints(const EventStore& log, const std::string& file,
                                     const std::string& key_file) {
  auto key = note::ReadVerifierKeyFile(key_file);
  if (!key) return Err(key.error());
  auto notes = note::ReadNotes(file);
  if (!notes) return Err(notes.error());
  const Seq head = log.head().seq;
  for (std::size_t i = 0; i < notes->size(); ++i) {
    auto c = note::OpenCheckpoint((*notes)[i], *key);
    if (!c) {
      return Err(c.error().WithContext(file + ": checkpoint " + std::to_string(i + 1)));
    }
    const std::string which = "the checkpoint of " + (c->time ? FormatUtc(*c->time) : "?") +
                              " (" + file + ", number " + std::to_string(i + 1) + ")";
    if (c->size > head) {
      return which + " covers " + std::to_string(c->size) + " events, but the log has only " +
             std::to_string(head) + ": events " + std::to_string(head + 1) + " to " +
             std::to_string(c->size) + " were lost (expected at least " +
             std::to_string(c->size) + " events)";
    }
    auto tree = log.TreeAt(c->size);
    if (!tree) return Err(tree.error());
    if (tree->root != c->root) {
      return which + " signed a different tree of " + std::to_string(c->size) +
             " events: the log's first " + std::to_string(c->size) +
             " events were rewritten, reordered or replaced (its root " + ToHex(tree->root) +
             ", signed root " + ToHex(c->root) + ")";
    }
  }
  return std::string();
}

}  // namespace modelreg::app
