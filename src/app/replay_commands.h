// The commands of modelreg-replay (rebuild, verify) as library functions.
#pragma once

#include <ostream>

#include "app/registry_commands.h"

namespace modelreg::app {

// Exit codes of `modelreg-replay verify` (docs/cli.md).
inline constexpr int kExitChainBroken = 5;
inline constexpr int kExitProjectionDiffers = 10;

// Rebuilds the projections from the log, verifying the chain; prints the
// digests before and after. Progress goes to `progress` (a bar on a
// terminal, a line per second otherwise).
Status RunRebuild(const Globals& g, std::ostream& out, std::ostream& progress,
                  bool progress_is_terminal);

// Chain + projection digest; returns the process exit code (0, 5 with the
// sequence number of the first broken event, 10 when the stored projection
// differs from the fold of the log, or the generic codes for other errors)
// after printing the result or one error line to `err`.
int RunReplayVerify(const Globals& g, std::ostream& out, std::ostream& err);

// Writes the whole log of the registry at g.root to `file` (docs/export.md)
// through `file`.partial: fsynced, renamed, the directory fsynced.
Status RunExport(const Globals& g, const std::string& file, std::ostream& out);

// Checks the whole export `file` first (nothing is written if any line is
// wrong), then creates a registry at `new_root` (absent or empty) with the
// same events, hashes and state digest, and prints them. All or nothing:
// the registry is built and verified in a staging directory
// (`new_root`.importing-<random> beside it, or .importing-<random> inside
// an existing empty `new_root`), fsynced, and only then renamed into place;
// a failure removes the staging directory (a kill leaves it, never a
// partial `new_root`).
Status RunImport(const Globals& g, const std::string& file, const std::string& new_root,
                 std::ostream& out);

// Creates a registry at `dir` (absent or empty) holding exactly the log
// prefix recorded at or before `at`, with hard links (or copies) of the
// artifacts that prefix registered: a forensic copy every command can open.
// Everything created is fsynced before it returns.
Status RunMaterialize(const Globals& g, TimeNs at, const std::string& dir, std::ostream& out);

}  // namespace modelreg::app
