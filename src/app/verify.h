// `modelreg verify` and `modelreg-replay verify`: one check, two exit-code
// conventions (docs/runbook.md): a broken chain is 5 for both; a projection
// that differs from the fold is 5 for modelreg and 10 for modelreg-replay.
#pragma once

#include <ostream>
#include <string>

#include "app/registry_commands.h"

namespace modelreg::app {

// Verifies the registry read-only: the hash chain, then the projection
// against a fold of the log. Prints the result (text or --json) to `out`
// and one line on `err` for a failure, naming the one next command to run.
// Files that cannot be read are tried again after a fresh open (a writer in
// another process may have been replacing them); if they still cannot be
// read, that is damage to the registry (exit 5), unless the error is one of
// access (permissions; exit 6). Returns the exit code.
// With `checkpoint_file` (and the verifier key in `key_file`), also checks
// the log against every signed checkpoint in that file (docs/proofs.md): a
// log shorter than a checkpoint, or whose tree at a checkpoint's size has
// another root, fails like a broken chain (exit 5).
int VerifyCommand(const Globals& g, const char* program, int projection_exit, std::ostream& out,
                  std::ostream& err, const std::string& checkpoint_file = "",
                  const std::string& key_file = "");

}  // namespace modelreg::app
