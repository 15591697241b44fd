// `modelreg keygen`, `modelreg checkpoint` and the checkpoint part of
// `modelreg verify --checkpoint` (docs/proofs.md).
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "app/registry_commands.h"
#include "common/clock.h"
#include "common/status.h"
#include "log/event_store.h"

namespace modelreg {
class EventStore;
}

namespace modelreg::app {

struct CheckpointOptions {
  std::string key_file;      // the signer key (mode 0600)
  std::string origin;        // "" = the key's name
  std::string witness_file;  // "" = print only
};

// Makes an Ed25519 key pair: `path` (private, 0600) and `path`.pub.
Status RunKeygen(const std::string& name, const std::string& path, std::ostream& out);
// Signs the registry's current tree head and prints the checkpoint;
// appends it to the witness file when one is named.
Status RunCheckpoint(const Globals& g, const CheckpointOptions& options, std::ostream& out);

struct ProveOptions {
  std::vector<Seq> seqs;          // prove event
  std::string from;               // prove consistency: a size or a checkpoint file
  std::string checkpoint_file;    // prove against the newest checkpoint in this file
  std::string key_file;           // or sign a fresh checkpoint with this key
  std::string origin;             // for a fresh checkpoint ("" = the key's name)
};
// `modelreg prove event SEQ...`: a proof document (proofs/document.h) on `out`.
Status RunProveEvent(const Globals& g, const ProveOptions& options, std::ostream& out);
// `modelreg prove consistency --from SIZE|FILE`.
Status RunProveConsistency(const Globals& g, const ProveOptions& options, std::ostream& out);
// `modelreg audit --at T [TYPE] --prove`: the audit answer (as `audit
// --json` prints it) with the events it rests on (each production
// version's registration and the promotion or rollback that made it
// production, and the gate policy's event) and their inclusion proofs.
Status RunAuditProof(const Globals& g, TimeNs at, const std::string& type,
                     const ProveOptions& options, std::ostream& out);
// `modelreg verify-proof FILE --key KEY.pub`: prints the one-line result.
Status RunVerifyProof(const std::string& proof_file, const std::string& key_file,
                      std::ostream& out);

// Checks every checkpoint of `file` (signed by the key in `key_file`)
// against the log: the log holds at least the checkpoint's events and its
// first that many events have the checkpoint's root. Returns "" when all
// agree, or one line saying what does not, naming the size expected.
Result<std::string> CheckCheckpoints(const EventStore& log, const std::string& file,
                                     const std::string& key_file);

}  // namespace modelreg::app
