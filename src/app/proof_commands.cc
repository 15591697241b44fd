#include "app/proof_commands.h"

#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "log/event_store.h"
#include "note/checkpoint.h"
#include "note/key_file.h"
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
  note::Checkpoint c;
  c.origin = options.origin.empty() ? key->name : options.origin;
  c.size = tree->size;
  c.root = tree->root;
  c.time = g.clock->NowNs();
  auto signed_note = note::SignCheckpoint(c, *key);
  if (!signed_note) return signed_note.error();
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
