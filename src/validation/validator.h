// Runs a user's validator command on an artifact (the spec's
// safe_activate_model: load the model, make a test prediction) with a
// timeout, capturing the tail of its output.
//
// The command is exec'd directly (no shell) with the artifact path appended
// as its last argument, in its own process group; on timeout the whole group
// is killed. Thread-safety: free function; safe to call concurrently.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace modelreg::validation {

inline constexpr std::size_t kOutputTailBytes = 2048;

struct Outcome {
  bool ok = false;         // exited with status 0 within the timeout
  bool timed_out = false;
  int exit_code = -1;      // when it exited; -1 otherwise
  int signal = 0;          // when killed by a signal
  std::string output_tail; // last kOutputTailBytes of stdout+stderr
  std::string Describe() const;  // "exit code 3", "timed out after 30 s", ...
  double seconds = 0;
};

// Errors only when the command cannot be started at all (InvalidArgument
// for an empty command, IOError for fork/pipe failures). A command that
// does not exist runs and exits 127, like a shell.
Result<Outcome> Run(const std::vector<std::string>& command, const std::string& artifact_path,
                    int timeout_ms);

}  // namespace modelreg::validation
