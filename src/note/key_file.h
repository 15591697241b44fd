// Key files and witness files for signed checkpoints (docs/proofs.md).
//
// - A signer key file holds one line, the signer key text (note.h). It is
//   created with mode 0600 and never overwritten; a key file that its
//   group or others may read is refused (as ssh refuses such keys).
// - A verifier key file holds the verifier key text; anyone may read it.
// - A witness file is signed checkpoints appended one after another (each
//   a complete note), synced after each append. It belongs outside the
//   registry directory: another disk, a backup target.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "note/note.h"

namespace modelreg::note {

// Writes `path` (signer, 0600) and `path`.pub (verifier, 0644); refuses
// (AlreadyExists) if either exists.
Status WriteKeyPair(const std::string& path, const SignerKey& key);
Result<SignerKey> ReadSignerKeyFile(const std::string& path);
Result<VerifierKey> ReadVerifierKeyFile(const std::string& path);

// Appends one signed note to a witness file (created 0644 if missing).
Status AppendToWitness(const std::string& path, const std::string& signed_note);
// The notes of a witness file (or of a file holding one note), oldest
// first. InvalidArgument when it holds none or is not notes; files over
// 64 MiB are refused.
Result<std::vector<std::string>> ReadNotes(const std::string& path);

}  // namespace modelreg::note
