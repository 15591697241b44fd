// The registry commands of the modelreg CLI as library functions: each
// takes parsed options, writes its output to `out` and returns a Status
// (the CLI maps it to an exit code with ExitCode()).
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace modelreg::app {

struct Globals {
  std::string root;
  bool json = false;
  std::string actor;
  bool actor_given = false;  // by --actor or MODELREG_ACTOR (not the login name)
  std::string reason;
  int lock_wait_ms = 10000;
  const Clock* clock = &SystemClock::Instance();
  // Writes go to a `modelreg serve` at this URL (--url / MODELREG_URL), or
  // to the server announced in <root>/server.json, with this bearer token
  // (MODELREG_TOKEN); see docs/api.md.
  std::string url;
  std::string token;
  // Where warnings and notes that do not stop a command go (`kind`:
  // "warning" | "note"); unset: stderr, as ReportNotice writes them. The
  // Python package turns them into Python warnings. Called from any
  // thread (the registry's manifest thread too) until the command returns.
  std::function<void(const std::string& kind, const std::string& message)> notice;
};

// Reports a warning or note of a command through g.notice, else on stderr.
void Notify(const Globals& g, const std::string& kind, const std::string& message);

struct RegisterOptions {
  std::string type;
  std::string path;
  std::string version;
  std::string metadata_file;
  std::string config_file;
  // The metadata / config JSON itself instead of a file (the Python
  // package); used when set, and then the file above must be empty.
  std::optional<std::string> metadata_json;
  std::optional<std::string> config_json;
  std::vector<std::string> metrics;   // k=v
  std::vector<std::string> datasets;  // name=version
  std::string snapshot;
  std::vector<std::string> factors;
  std::vector<std::string> params;    // k=v
};
Status RunRegister(const Globals& g, const RegisterOptions& o, std::ostream& out);

// Which rows `list`, `history` and `events` print (docs/cli.md, "How many
// rows"): those whose time — registration, promotion or rollback,
// recording — is in [since, until] (both bounds optional and inclusive),
// then at most `limit` of them (0 = all): the newest (`list --sort`: the
// top of the ranking), printed in the command's usual order. When a limit
// leaves rows out, one line on stderr says how many and how to see all.
struct RowOptions {
  std::optional<TimeNs> since;
  std::optional<TimeNs> until;
  std::size_t limit = 0;
  // --limit N > 0 was given (not the terminal default): `--json list` and
  // `--json history` then say how many rows were left out ("omitted").
  bool limit_given = false;
};
// At most this many rows when stdout is a terminal and no --limit is given.
inline constexpr std::size_t kTerminalRowLimit = 50;
// The rows options of a command line: `limit` is --limit (nullopt: not
// given; then kTerminalRowLimit when stdout is a terminal and the output
// is not --json, else no limit). InvalidArgument when since is after until.
Result<RowOptions> ResolveRows(std::optional<TimeNs> since, std::optional<TimeNs> until,
                               std::optional<std::size_t> limit, bool json,
                               bool stdout_is_terminal);
// --limit's text: a whole number of rows, 0 for no limit; nullopt otherwise.
std::optional<std::size_t> ParseRowLimit(const std::string& text);

struct ListOptions {
  std::string type;    // "" = every type
  std::string status;  // "" = any
  std::string sort;    // metric name, descending; "" = version order
  std::optional<TimeNs> at;
  std::vector<std::string> tags;  // --tag KEY=VALUE (repeatable: all must match)
  RowOptions rows;                // by registration time
};
// `err`: the line saying how many rows a limit left out.
Status RunList(const Globals& g, const ListOptions& o, std::ostream& out, std::ostream& err);

Status RunShow(const Globals& g, const std::string& type, const std::string& version,
               std::optional<TimeNs> at, std::ostream& out);
Status RunCurrent(const Globals& g, const std::string& type, std::optional<TimeNs> at,
                  std::ostream& out);
// `rows`: by the time of the promotion or rollback.
Status RunHistory(const Globals& g, const std::string& type, const RowOptions& rows,
                  std::ostream& out, std::ostream& err);
// `policy_text`: also print the text of the gate policy in force at `at`.
Status RunAudit(const Globals& g, TimeNs at, const std::string& type, std::ostream& out,
                bool policy_text = false);

// modelreg policy set FILE (needs g.reason): the text of FILE becomes the
// gate policy (a PolicyChanged event), checked first; the same text again
// records nothing. Through the server when one holds the registry.
Status RunPolicySet(const Globals& g, const std::string& file, std::ostream& out);
// modelreg policy show [--at T]: the policy in force, who set it, when, why.
Status RunPolicyShow(const Globals& g, std::optional<TimeNs> at, std::ostream& out,
                     std::ostream& err);

Status RunPromote(const Globals& g, const std::string& type, const std::string& version,
                  const std::optional<std::string>& expect_current, bool override_gates,
                  std::ostream& out);

struct CompatOptions {
  std::string type;
  std::string version;
  std::vector<std::string> current;  // name=version
  std::string current_file;          // JSON {"crsp": "v1.2.4"}
  std::optional<bool> strict;        // default: STRICT_VERSION_MODE, else true
};
// Exit: OK when compatible; Rejected when blocked; `warned` set when drift
// was allowed (non-strict) so the CLI can use its own exit code.
Status RunCompat(const Globals& g, const CompatOptions& o, bool* warned, std::ostream& out);
Status RunArchive(const Globals& g, const std::string& type, const std::string& version,
                  std::ostream& out);
Status RunFail(const Globals& g, const std::string& type, const std::string& version, bool force,
               std::ostream& out);
struct RollbackCliOptions {
  bool fail_current = false;  // --fail (needs --reason)
  std::string to;             // --to VERSION ("" = the rollback rule)
  bool dry_run = false;       // --dry-run
};
Status RunRollback(const Globals& g, const std::string& type, const RollbackCliOptions& o,
                   std::ostream& out);
Status RunValidate(const Globals& g, const std::string& type, const std::string& version,
                   std::ostream& out);

// modelreg annotate TYPE VERSION: tags, description and late metrics of a
// registered version (a ModelAnnotated event; needs g.reason). Everything
// is checked before the registry is opened; through the server when one
// holds the registry.
struct AnnotateOptions {
  std::string type;
  std::string version;
  std::vector<std::string> tags;          // --tag KEY=VALUE
  std::vector<std::string> untags;        // --untag KEY
  std::optional<std::string> description; // --description TEXT ("" clears)
  std::vector<std::string> metrics;       // --metric NAME=NUMBER
  std::string source;                     // --source
};
Status RunAnnotate(const Globals& g, const AnnotateOptions& o, std::ostream& out);

struct EventsOptions {
  RowOptions rows;      // by recording time; with follow, the limit is the backlog's
  std::string type;     // only events about this model type
  bool follow = false;  // keep printing new events
  int follow_poll_ms = 100;
  int follow_max_ms = -1;  // stop following after this long (-1 = never; tests)
};
Status RunEvents(const Globals& g, const EventsOptions& o, std::ostream& out, std::ostream& err);

// What changed between two instants: production per type at each, and every
// event recorded in (from, to] with its actor.
Status RunDiff(const Globals& g, TimeNs from, TimeNs to, std::ostream& out);

// modelreg gc: see Registry::CollectGarbage.
Status RunGc(const Globals& g, int keep, int retention_days, bool dry_run, std::ostream& out);

// Hash chain + projection digest.

}  // namespace modelreg::app
