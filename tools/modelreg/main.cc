// modelreg: the command-line interface. Parses arguments (CLI11) and calls
// the library; all behaviour lives in src/app and below.
#include <pwd.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <optional>
#include <set>
#include <string>

#include <CLI/CLI.hpp>

#include "app/backup_commands.h"
#include "app/cache_commands.h"
#include "app/cli_errors.h"
#include "app/cli_help.h"
#include "app/exit_codes.h"
#include "app/registry_commands.h"
#include "app/replication_commands.h"
#include "app/proof_commands.h"
#include "app/verify.h"
#include "app/serve_commands.h"
#include "app/loader_commands.h"
#include "app/net_layer.h"
#include "common/clock.h"
#include "common/utf8.h"

namespace {

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

std::string DefaultActor() {
  std::string a = EnvOr("MODELREG_ACTOR", "");
  if (!a.empty()) return a;
  if (const passwd* pw = getpwuid(geteuid()); pw != nullptr && pw->pw_name != nullptr) {
    return pw->pw_name;
  }
  return EnvOr("USER", "uid:" + std::to_string(geteuid()));
}

using modelreg::app::kIsoTime;

// CLI11 validator for --limit: a whole number of rows, 0 for no limit.
const CLI::Validator kRowLimit(
    [](std::string& s) -> std::string {
      if (modelreg::app::ParseRowLimit(s)) return "";
      return "'" + s + "' is not a number of rows: give a whole number, or 0 for no limit";
    },
    "N");

std::optional<modelreg::TimeNs> TimeOpt(const std::string& s) {
  if (s.empty()) return std::nullopt;
  return modelreg::ParseTime(s);
}

// The command named on the command line when CLI11 need define only that
// one: it is the first argument that is not an option (nor the value of a
// global option), a known command, no other argument names a command, and
// no help is asked for. Otherwise "": every command is defined, as help,
// completion, the man page and the unknown-command error need.
std::string OnlyCommand(int argc, char** argv) {
  static const std::set<std::string> kCommands = {
      "register", "list",     "show",  "current", "history",  "audit",    "policy",
      "promote",  "compat",   "archive", "fail",  "rollback", "validate", "annotate",
      "events",   "verify",   "backup", "gc",     "serve",    "token",    "consumers",
      "watch",    "cache",    "diff",  "keygen",   "checkpoint", "prove", "verify-proof",
      "replication", "follow", "promote-follower"};
  std::string command;
  bool positional = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help" || arg == "--help-all") return "";
    if (arg == "--root" || arg == "--actor" || arg == "--reason" || arg == "--lock-wait" ||
        arg == "--url") {
      ++i;
      continue;
    }
    if (arg.rfind("-", 0) == 0) continue;
    const bool known = kCommands.count(arg) != 0;
    if (!positional) {
      positional = true;
      if (!known) return "";
      command = arg;
    } else if (known) {
      return "";
    }
  }
  return command;
}

}  // namespace

int Run(int argc, char** argv) {
  using namespace modelreg::app;
  const bool json_errors = WantsJson(argc, argv);
  auto fail = [json_errors](const modelreg::Status& st, const std::string& hint = "") {
    std::cout.flush();
    return ReportError("modelreg", json_errors, st, hint, std::cerr);
  };
  // Arguments end up in events and JSON: UTF-8 only, checked before
  // anything else (paths too; rename or symlink a file whose name is not).
  for (int i = 1; i < argc; ++i) {
    if (!modelreg::IsValidUtf8(argv[i])) {
      return fail(modelreg::Status::InvalidArgument(
          "argument " + std::to_string(i) + " ('" + modelreg::SanitizeUtf8(argv[i]) +
          "') is not valid UTF-8"));
    }
  }
  CLI::App app{"modelreg: an event-sourced model registry", "modelreg"};
  app.formatter(MakeHelpFormatter());
  app.set_version_flag("--version", std::string("modelreg ") + MODELREG_VERSION);
  app.require_subcommand(1);
  app.fallthrough();  // global options may also follow the command

  Globals g;
  g.root = EnvOr("MODELREG_ROOT", "./data/models");
  g.actor = DefaultActor();
  int lock_wait_s = 10;
  app.add_option("--root", g.root, "Registry directory (env MODELREG_ROOT)")
      ->capture_default_str();
  app.add_flag("--json", g.json, "Machine-readable output on stdout");
  g.actor_given = !EnvOr("MODELREG_ACTOR", "").empty();
  app.add_option("--actor", g.actor, "Who is acting, recorded in events (env MODELREG_ACTOR)")
      ->each([&g](const std::string&) { g.actor_given = true; });
  app.add_option("--reason", g.reason, "Why, recorded in the event");
  g.url = EnvOr("MODELREG_URL", "");
  g.token = EnvOr("MODELREG_TOKEN", "");
  app.add_option("--url", g.url,
                 "Send writes to the modelreg server at this URL (env MODELREG_URL; token in "
                 "MODELREG_TOKEN)");
  app.add_option("--lock-wait", lock_wait_s,
                 "Seconds to wait while another process holds the registry for writing")
      ->check(CLI::Range(0, 3600))
      ->capture_default_str();

  // Only the command on the command line is defined when that is clear
  // (OnlyCommand): defining all of them with their options costs about as
  // much CPU as a read (docs/performance.md, "Cold process").
  const std::string only = OnlyCommand(argc, argv);
  const auto want = [&only](const char* command) { return only.empty() || only == command; };
  const auto ran = [](const CLI::App* c) { return c != nullptr && c->parsed(); };

  // register
  RegisterOptions reg;
  CLI::App* c_register = nullptr;
  if (want("register")) {
    c_register = app.add_subcommand("register", "Register a model artifact (staged)");
    c_register->add_option("type", reg.type, "Model type")->required();
    c_register->add_option("path", reg.path, "Artifact file")->required();
    c_register->add_option("--version", reg.version, "Semantic version, e.g. v1.2.0")->required();
    c_register->add_option("--metadata", reg.metadata_file, "ModelMetadata JSON file");
    c_register->add_option("--metric", reg.metrics, "Metric NAME=NUMBER (repeatable)");
    c_register->add_option("--dataset", reg.datasets, "Dataset version NAME=VERSION (repeatable)");
    c_register->add_option("--snapshot", reg.snapshot, "Snapshot id");
    c_register->add_option("--factor", reg.factors, "Factor name (repeatable)");
    c_register->add_option("--param", reg.params, "Parameter NAME=VALUE (repeatable)");
    c_register->add_option("--config", reg.config_file, "Training config JSON file");
  }

  // list
  ListOptions list;
  std::string list_at;
  CLI::App* c_list = nullptr;
  if (want("list")) {
    c_list = app.add_subcommand("list", "List versions (the compare-versions table)");
    c_list->add_option("type", list.type, "Model type (default: all)");
    c_list->add_option("--status", list.status, "staged | production | archived | failed");
    c_list->add_option("--sort", list.sort, "Sort by this metric, descending (e.g. sharpe)");
    c_list->add_option("--at", list_at, "As of TIME")->transform(kIsoTime);
    c_list->add_option("--tag", list.tags,
                       "Only versions with tag KEY=VALUE (repeatable: all must match)");
  }

  std::string type, version, at, since, until, expect_current;
  // --since/--until/--limit of list, history and events: one rule for the
  // three (docs/cli.md, "How many rows").
  std::string limit_text;
  const auto add_rows = [&](CLI::App* c, const std::string& time_of, const std::string& kept) {
    c->add_option("--since", since, time_of + " at or after TIME")->transform(kIsoTime);
    c->add_option("--until", until, time_of + " at or before TIME")->transform(kIsoTime);
    c->add_option("--limit", limit_text,
                  "At most N, " + kept + " (0 = all; on a terminal the default is " +
                      std::to_string(kTerminalRowLimit) + ")")
        ->transform(kRowLimit);
  };
  if (c_list != nullptr) {
    add_rows(c_list, "Registered", "the most recently registered (with --sort: the top)");
  }
  CLI::App* c_show = nullptr;
  if (want("show")) {
    c_show = app.add_subcommand("show", "Everything about one version");
    c_show->add_option("type", type, "Model type")->required();
    c_show->add_option("version", version, "Version")->required();
    c_show->add_option("--at", at, "As of TIME")->transform(kIsoTime);
  }

  CLI::App* c_current = nullptr;
  if (want("current")) {
    c_current = app.add_subcommand("current", "The production version of a type");
    c_current->add_option("type", type, "Model type")->required();
    c_current->add_option("--at", at, "As of TIME")->transform(kIsoTime);
  }

  CLI::App* c_history = nullptr;
  if (want("history")) {
    c_history = app.add_subcommand("history", "Promotions and rollbacks of a type");
    c_history->add_option("type", type, "Model type")->required();
    add_rows(c_history, "Promoted or rolled back", "the newest");
  }

  CLI::App* c_audit = nullptr;
  bool audit_prove = false;
  ProveOptions audit_proof;
  bool audit_policy_text = false;
  if (want("audit")) {
    c_audit = app.add_subcommand("audit", "What was in production at a time, and why");
    c_audit->add_option("--at", at, "The instant to audit")->required()->transform(kIsoTime);
    c_audit->add_option("type", type, "Model type (default: all)");
    c_audit->add_flag("--prove", audit_prove,
                      "Print the answer as a proof document: the events it rests on, their "
                      "inclusion proofs and a signed checkpoint (needs --key or --checkpoint)");
    auto* audit_key = c_audit->add_option("--key", audit_proof.key_file,
                                          "--prove: sign a checkpoint with this private key");
    auto* audit_cp = c_audit->add_option("--checkpoint", audit_proof.checkpoint_file,
                                         "--prove: use the newest checkpoint in this file");
    audit_key->excludes(audit_cp);
    c_audit->add_flag("--policy-text", audit_policy_text,
                      "Also print the text of the gate policy in force at that instant");
  }

  CLI::App* c_policy = nullptr;
  std::string policy_file;
  CLI::App* c_policy_set = nullptr;
  CLI::App* c_policy_show = nullptr;
  if (want("policy")) {
    c_policy = app.add_subcommand("policy", "The gate policy, part of the log (docs/gates.md)");
    c_policy->require_subcommand(1);
    c_policy_set = c_policy->add_subcommand(
        "set", "Make FILE (policy.toml format) the gate policy (needs --reason; admin)");
    c_policy_set->add_option("file", policy_file, "The policy file")->required();
    c_policy_show =
        c_policy->add_subcommand("show", "The gate policy in force: text, hash, who, when, why");
    c_policy_show->add_option("--at", at, "As of TIME")->transform(kIsoTime);
  }

  CLI::App* c_promote = nullptr;
  CLI::Option* expect_opt = nullptr;
  bool override_gates = false;
  if (want("promote")) {
    c_promote = app.add_subcommand("promote", "Make a version the production version");
    c_promote->add_option("type", type, "Model type")->required();
    c_promote->add_option("version", version, "Version")->required();
    expect_opt = c_promote->add_option(
        "--expect-current", expect_current,
        "Refuse unless production is this version ('none' for no production)");
    c_promote->add_flag("--override-gates", override_gates,
                        "Promote even if gates fail (needs --reason; recorded)");
  }

  modelreg::app::CompatOptions compat;
  bool strict = false, no_strict = false;
  CLI::App* c_compat = nullptr;
  if (want("compat")) {
    c_compat = app.add_subcommand(
        "compat", "Check a version's dataset versions against the current ones");
    c_compat->add_option("type", compat.type, "Model type")->required();
    c_compat->add_option("version", compat.version, "Version")->required();
    c_compat->add_option("--current", compat.current, "Current dataset version NAME=VERSION");
    c_compat->add_option("--current-file", compat.current_file,
                         "JSON object of current dataset versions");
    c_compat->add_flag("--strict", strict, "Drift blocks (default; env STRICT_VERSION_MODE)");
    c_compat->add_flag("--no-strict", no_strict, "Drift only warns");
  }

  CLI::App* c_archive = nullptr;
  if (want("archive")) {
    c_archive = app.add_subcommand("archive", "Archive a staged version");
    c_archive->add_option("type", type, "Model type")->required();
    c_archive->add_option("version", version, "Version")->required();
  }

  bool force = false;
  CLI::App* c_fail = nullptr;
  if (want("fail")) {
    c_fail = app.add_subcommand("fail", "Mark a version failed (needs --reason)");
    c_fail->add_option("type", type, "Model type")->required();
    c_fail->add_option("version", version, "Version")->required();
    c_fail->add_flag("--force", force, "Allow failing the production version (leaves none)");
  }

  RollbackCliOptions rollback;
  CLI::App* c_rollback = nullptr;
  if (want("rollback")) {
    c_rollback = app.add_subcommand(
        "rollback",
        "Go back to the most recent earlier production version that is still promotable, "
        "archiving the current one");
    c_rollback->add_option("type", type, "Model type")->required();
    c_rollback->add_flag("--fail", rollback.fail_current,
                         "Mark the current version failed, not archived (needs --reason)");
    c_rollback->add_option("--to", rollback.to,
                           "Go back to this version (it must have been production before)");
    c_rollback->add_flag("--dry-run", rollback.dry_run, "Print what would happen; write nothing");
  }

  CLI::App* c_validate = nullptr;
  if (want("validate")) {
    c_validate = app.add_subcommand("validate", "Re-hash an artifact and record the result");
    c_validate->add_option("type", type, "Model type")->required();
    c_validate->add_option("version", version, "Version")->required();
  }

  AnnotateOptions annotate;
  std::string annotate_description;
  CLI::App* c_annotate = nullptr;
  CLI::Option* description_opt = nullptr;
  if (want("annotate")) {
    c_annotate = app.add_subcommand(
        "annotate", "Record what was learned after registration: tags, description, late metrics "
                    "(needs --reason)");
    c_annotate->add_option("type", annotate.type, "Model type")->required();
    c_annotate->add_option("version", annotate.version, "Version")->required();
    c_annotate->add_option("--tag", annotate.tags, "Set tag KEY=VALUE (repeatable)");
    c_annotate->add_option("--untag", annotate.untags, "Remove tag KEY (repeatable)");
    description_opt = c_annotate->add_option(
        "--description", annotate_description, "Set the description (\"\" clears it)");
    c_annotate->add_option("--metric", annotate.metrics,
                           "Late metric NAME=NUMBER (repeatable; needs --source)");
    c_annotate->add_option("--source", annotate.source,
                           "Where the metrics come from, e.g. paper-trading");
  }

  EventsOptions ev;
  CLI::App* c_events = nullptr;
  if (want("events")) {
    c_events = app.add_subcommand("events", "Print the event log, oldest first");
    add_rows(c_events, "Recorded", "the newest");
    c_events->add_option("--type", ev.type, "Only events about this model type");
    c_events->add_flag("--follow", ev.follow,
                       "Keep printing new events as they are appended (--limit: of the backlog)");
  }

  CLI::App* c_verify = nullptr;
  std::string verify_checkpoint, verify_key;
  if (want("verify")) {
    c_verify = app.add_subcommand("verify", "Verify the hash chain and the projections");
    auto* cp = c_verify->add_option("--checkpoint", verify_checkpoint,
                                    "Also check the log against every signed checkpoint in FILE "
                                    "(a witness file; docs/proofs.md)");
    auto* key = c_verify->add_option("--key", verify_key,
                                     "The checkpoints' verifier key file (KEY.pub from keygen)");
    cp->needs(key);
    key->needs(cp);
  }

  CLI::App* c_keygen = nullptr;
  std::string keygen_name, keygen_out;
  if (want("keygen")) {
    c_keygen = app.add_subcommand(
        "keygen", "Make an Ed25519 key pair for signing checkpoints (FILE and FILE.pub)");
    c_keygen->add_option("--name", keygen_name,
                         "The key's name, e.g. the registry's host/path (no spaces or '+')")
        ->required();
    c_keygen->add_option("--out", keygen_out, "Where the private key goes (mode 0600)")
        ->required();
  }

  CLI::App* c_prove_event = nullptr;
  CLI::App* c_prove_consistency = nullptr;
  ProveOptions prove;
  if (want("prove")) {
    auto* c_prove = app.add_subcommand(
        "prove", "Proofs a regulator checks without the registry (docs/proofs.md)");
    c_prove->require_subcommand(1);
    auto against = [&prove](CLI::App* c) {
      auto* cp = c->add_option("--checkpoint", prove.checkpoint_file,
                               "Prove against the newest checkpoint in this (witness) file");
      auto* key = c->add_option("--key", prove.key_file,
                                "Or sign a checkpoint of the current tree with this private key");
      cp->excludes(key);
      c->add_option("--origin", prove.origin, "The log's name in a fresh checkpoint")->needs(key);
    };
    c_prove_event = c_prove->add_subcommand(
        "event", "Events with their inclusion proofs and the signed checkpoint, as JSON");
    c_prove_event->add_option("seq", prove.seqs, "Sequence numbers of the events")
        ->required()
        ->check(CLI::Range(std::uint64_t{1}, std::numeric_limits<std::uint64_t>::max()));
    against(c_prove_event);
    c_prove_consistency = c_prove->add_subcommand(
        "consistency", "That an earlier tree is a prefix of the signed one, as JSON");
    c_prove_consistency
        ->add_option("--from", prove.from, "The earlier tree: a size, or a checkpoint file")
        ->required();
    against(c_prove_consistency);
  }

  CLI::App* c_verify_proof = nullptr;
  std::string verify_proof_file, verify_proof_key;
  if (want("verify-proof")) {
    c_verify_proof = app.add_subcommand(
        "verify-proof", "Check a proof document: signature, inclusion, consistency (no registry)");
    c_verify_proof->add_option("proof", verify_proof_file, "The proof (JSON from prove or audit --prove)")
        ->required();
    c_verify_proof->add_option("--key", verify_proof_key, "The verifier key file (KEY.pub)")
        ->required();
  }

  CLI::App* c_checkpoint = nullptr;
  CheckpointOptions checkpoint;
  if (want("checkpoint")) {
    c_checkpoint = app.add_subcommand(
        "checkpoint", "Sign the log's Merkle tree head and print the checkpoint (docs/proofs.md)");
    c_checkpoint->add_option("--key", checkpoint.key_file, "The private key file from keygen")
        ->required();
    c_checkpoint->add_option("--origin", checkpoint.origin,
                             "The log's name in the checkpoint (default: the key's name)");
    c_checkpoint->add_option("--witness", checkpoint.witness_file,
                             "Also append the checkpoint to this file (keep it outside the "
                             "registry directory)");
  }

  CLI::App* c_backup = nullptr;
  CLI::App* c_backup_create = nullptr;
  std::string backup_checkpoint_key;
  CLI::App* c_backup_list = nullptr;
  std::string restore_to;
  // A backup id: a positive number, or `latest` (0 below: the newest).
  const CLI::Validator backup_id_check(
      [](std::string& v) -> std::string {
        if (v == "latest") return "";
        if (v.empty() || v.size() > 9 || v.find_first_not_of("0123456789") != std::string::npos ||
            std::stoul(v) == 0) {
          return "'" + v + "' is not a backup id (a positive number, or latest)";
        }
        return "";
      },
      "ID|latest");
  const auto backup_id = [](const std::string& v) {
    return v == "latest" ? 0u : static_cast<std::uint32_t>(std::stoul(v));
  };
  CLI::App* c_backup_verify = nullptr;
  std::string verify_id, restore_id;
  CLI::App* c_backup_restore = nullptr;
  if (want("backup")) {
    c_backup = app.add_subcommand("backup", "Backups of the registry (docs/runbook.md)");
    c_backup->require_subcommand(1);
    c_backup_create = c_backup->add_subcommand("create", "Back up the log and new artifacts");
    c_backup_create->add_option("--checkpoint-key", backup_checkpoint_key,
                                "Also sign a checkpoint of the backed-up tree (docs/proofs.md)");
    c_backup_list = c_backup->add_subcommand("list", "List the backups");
    c_backup_verify = c_backup->add_subcommand("verify", "Check a backup end to end");
    c_backup_verify->add_option("id", verify_id, "Backup id, or `latest`")
        ->required()
        ->check(backup_id_check);
    c_backup_restore = c_backup->add_subcommand("restore", "Restore a backup into a new registry");
    c_backup_restore->add_option("id", restore_id, "Backup id, or `latest`")
        ->required()
        ->check(backup_id_check);
    c_backup_restore->add_option("--to", restore_to, "The new registry directory")->required();
  }

  int gc_keep = 3, gc_retention_days = 365;
  bool gc_dry_run = false;
  CLI::App* c_gc = nullptr;
  if (want("gc")) {
    c_gc = app.add_subcommand(
        "gc", "Delete artifacts of old archived/failed versions and interrupted registrations");
    c_gc->add_flag("--dry-run", gc_dry_run, "List what would be deleted, with sizes; change nothing");
    c_gc->add_option("--keep", gc_keep, "Archived/failed versions to keep per type")
        ->check(CLI::Range(0, 1000000))
        ->capture_default_str();
    c_gc->add_option("--retention-days", gc_retention_days,
                     "Never delete a version that left production less than this long ago")
        ->check(CLI::Range(0, 36500))
        ->capture_default_str();
  }

  // serve / token
  ServeOptions serve;
  CLI::App* c_serve = nullptr;
  int unused_threads = 0;
  TokenOptions token;
  CLI::App* c_token = nullptr;
  CLI::App* c_token_issue = nullptr;
  if (want("serve") || want("token")) {
    c_serve = app.add_subcommand("serve", "Serve the registry over HTTP (docs/api.md)");
    c_serve->add_option("--listen", serve.listen, "HOST:PORT (port 0: any free port)")
        ->capture_default_str();
    c_serve->add_option("--tls-cert", serve.tls_cert, "PEM certificate (with --tls-key: HTTPS)");
    c_serve->add_option("--tls-key", serve.tls_key, "PEM private key");
    c_serve->add_option("--max-upload-mb", serve.max_upload_mb, "Largest artifact upload")
        ->check(CLI::Range(1, 1 << 20))
        ->capture_default_str();
    c_serve->add_option("--max-connections", serve.max_connections,
                        "Connections open at once (a thread each); beyond, 503 with Retry-After")
        ->check(CLI::Range(2, 65536))
        ->capture_default_str();
    c_serve->add_option("--threads", unused_threads, "No longer used (a thread per connection)")
        ->group("")
        ->each([&serve](const std::string&) { serve.threads_given = true; });
    c_serve->add_option("--exit-after", serve.exit_after_seconds,
                        "Stop by itself after SECONDS (demos and tests); 0 = until SIGTERM")
        ->check(CLI::Range(0, 86400 * 365));
    auto* ck = c_serve->add_option("--checkpoint-key", serve.checkpoint_key,
                                   "Sign checkpoints with this private key (keygen) and serve "
                                   "/api/v1/checkpoint and the proofs (docs/proofs.md)");
    c_serve->add_option("--checkpoint-origin", serve.checkpoint_origin,
                        "The log's name in the checkpoints (default: the key's name)")
        ->needs(ck);
    c_serve->add_option("--witness", serve.witness_file,
                        "Append every checkpoint to this file (outside the registry directory)")
        ->needs(ck);
    c_serve->add_option("--checkpoint-every", serve.checkpoint_every_seconds,
                        "Sign one when the log grew and this many SECONDS passed (0 = not by time)")
        ->check(CLI::Range(0, 86400 * 365))
        ->capture_default_str()
        ->needs(ck);
    c_serve->add_option("--checkpoint-every-events", serve.checkpoint_every_events,
                        "Sign one after this many new EVENTS (0 = not by count)")
        ->needs(ck);
    c_serve->add_option("--verify-every", serve.verify_every_seconds,
                        "Verify the registry in the background at start and then every SECONDS "
                        "(GET /api/v1/integrity, the web page; 0 = never)")
        ->check(CLI::Range(0, 86400 * 365))
        ->capture_default_str();
    c_token = app.add_subcommand("token", "JWT tokens for the HTTP API");
    c_token->require_subcommand(1);
    c_token_issue = c_token->add_subcommand("issue", "Issue an HS256 token (prints it)");
    c_token_issue->add_option("--sub", token.subject, "Who the token is for (the recorded actor)")
        ->required();
    c_token_issue->add_option("--scope", token.scopes, "model:read, model:write, model:admin")
        ->required();
    c_token_issue->add_option("--ttl", token.ttl, "Lifetime: 45s, 30m, 1h, 7d")->capture_default_str();
    for (CLI::App* c : {c_serve, c_token_issue}) {
      JwtOptions& jwt = c == c_serve ? serve.jwt : token.jwt;
      c->add_option("--jwt-secret-file", jwt.secret_file,
                    "HS256 secret (default: env MODELREG_JWT_SECRET)");
      c->add_option("--jwt-issuer", jwt.issuer, "Required/issued iss claim");
      c->add_option("--jwt-audience", jwt.audience, "Required/issued aud claim");
    }
    c_serve->add_option("--jwt-public-key", serve.jwt.public_key_file,
                        "RS256/ES256 public key (PEM) instead of an HS256 secret");
  }
  // consumers / watch
  std::string consumers_type;
  CLI::App* c_consumers = nullptr;
  if (want("consumers")) {
    c_consumers = app.add_subcommand(
        "consumers", "Intended production versus what each consuming service runs");
    c_consumers->add_option("type", consumers_type, "Model type")->required();
  }
  WatchOptions watch;
  CLI::App* c_watch = nullptr;
  if (want("watch")) {
    c_watch = app.add_subcommand(
        "watch", "Follow a type's production version like a service would (hot reload)");
    c_watch->add_option("type", watch.type, "Model type")->required();
    c_watch->add_option("--consumer", watch.consumer_id, "Consumer id reported to the registry");
    c_watch->add_option("--dataset", watch.datasets,
                        "NAME=VERSION this service has; incompatible models are not loaded");
    c_watch->add_option("--cache-dir", watch.cache_dir, "Where downloads go (with --url)");
    c_watch->add_option("--exit-after", watch.exit_after_seconds, "Stop after SECONDS")
        ->check(CLI::Range(0, 86400 * 365));
  }

  // cache stats | gc | purge
  CacheCliOptions cache_opts;
  std::string cache_factor, cache_dataset;
  CLI::App* c_cache = nullptr;
  CLI::App* c_cache_stats = nullptr;
  CLI::App* c_cache_gc = nullptr;
  CLI::App* c_cache_purge = nullptr;
  CLI::Option* cache_factor_opt = nullptr;
  CLI::Option* cache_dataset_opt = nullptr;
  if (want("cache")) {
    c_cache = app.add_subcommand("cache", "The factor cache directory (docs/cache.md)");
    c_cache->require_subcommand(1);
    c_cache_stats = c_cache->add_subcommand("stats", "Entries, bytes, expired, per factor");
    c_cache_gc = c_cache->add_subcommand(
        "gc", "Remove expired and corrupt entries and leftovers of killed processes");
    c_cache_gc->add_flag("--verify", cache_opts.verify,
                         "Also read every entry in full and check its SHA-256");
    c_cache_purge = c_cache->add_subcommand(
        "purge", "Remove entries: all, or of a factor and/or built on a dataset version");
    cache_factor_opt = c_cache_purge->add_option("--factor", cache_factor, "Factor name");
    cache_dataset_opt =
        c_cache_purge->add_option("--dataset", cache_dataset, "Dataset version NAME=VERSION");
    for (CLI::App* c : {c_cache_stats, c_cache_gc, c_cache_purge}) {
      c->add_option("--cache-dir", cache_opts.dir, "The cache directory")->capture_default_str();
      c->add_option("--ttl", cache_opts.ttl, "Entries older than this are expired: 45s, 30m, 1h, 7d")
          ->capture_default_str();
    }
  }

  // replication enable | status | disable, follow, promote-follower
  // (docs/replication.md)
  ReplicationOptions repl;
  CLI::App* c_repl_enable = nullptr;
  CLI::App* c_repl_status = nullptr;
  CLI::App* c_repl_disable = nullptr;
  CLI::App* c_follow = nullptr;
  CLI::App* c_promote_follower = nullptr;
  if (want("replication")) {
    auto* c_repl = app.add_subcommand(
        "replication", "Ship this registry's log to a NATS JetStream stream (docs/replication.md)");
    c_repl->require_subcommand(1);
    c_repl_enable = c_repl->add_subcommand(
        "enable", "Make this registry the leader of a stream: every event is published to it");
    c_repl_enable->add_option("--nats", repl.nats, "NATS server URLs, comma-separated")->required();
    c_repl_enable->add_option("--stream", repl.stream, "Stream name (letters, digits, _ and -)")
        ->required();
    c_repl_enable->add_option("--mode", repl.mode,
                              "sync: a write is acknowledged once the stream has it; async: "
                              "shipped in the background")
        ->check(CLI::IsMember({"sync", "async"}))
        ->capture_default_str();
    c_repl_enable->add_option("--replicas", repl.replicas, "Copies the stream keeps (when created)")
        ->check(CLI::Range(1, 5))
        ->capture_default_str();
    c_repl_status = c_repl->add_subcommand("status", "Role, stream, log head against the stream");
    c_repl_disable = c_repl->add_subcommand("disable", "Stop shipping (a leader only)");
  }
  if (want("follow")) {
    c_follow = app.add_subcommand(
        "follow", "Keep this registry a read-only copy of a leader's stream (docs/replication.md)");
    c_follow->add_option("--nats", repl.nats, "NATS server URLs, comma-separated");
    c_follow->add_option("--stream", repl.stream, "The leader's stream");
    c_follow->add_option("--artifacts-from", repl.artifacts_from,
                         "Where artifacts come from: the leader's URL, or a directory holding "
                         "the leader's artifacts/");
    c_follow->add_option("--token-file", repl.token_file,
                         "Bearer token for --artifacts-from URL (else MODELREG_TOKEN)");
    c_follow->add_option("--name", repl.name, "The durable consumer's name (default: from the path)");
    c_follow->add_flag("--once", repl.once, "Catch up with the stream, then exit");
  }
  if (want("promote-follower")) {
    c_promote_follower = app.add_subcommand(
        "promote-follower",
        "Make this follower the writer of its stream (admin; after the leader is lost)");
    c_promote_follower->add_option("--mode", repl.mode, "sync or async, as for replication enable")
        ->check(CLI::IsMember({"sync", "async"}))
        ->capture_default_str();
    c_promote_follower->add_option("--replicas", repl.replicas, "Copies the stream keeps")
        ->check(CLI::Range(1, 5))
        ->capture_default_str();
  }

  std::string diff_from, diff_to;
  CLI::App* c_diff = nullptr;
  if (want("diff")) {
    c_diff = app.add_subcommand("diff", "What changed between two instants");
    c_diff->add_option("--from", diff_from, "The earlier instant")->required()->transform(kIsoTime);
    c_diff->add_option("--to", diff_to, "The later instant")->required()->transform(kIsoTime);
  }

  auto* c_completion = app.add_subcommand(
      "completion", "Print a shell completion script (docs/cli.md: installing it)");
  std::string completion_shell;
  c_completion->add_option("shell", completion_shell, "The shell: bash (zsh: bashcompinit)")
      ->required()
      ->check(CLI::IsMember({"bash"}));
  auto* c_man = app.add_subcommand("man", "Print this manual page (roff): modelreg man | man -l -");
  AddExamples(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    // "modelreg frobnicate" reads better as an unknown command than as
    // CLI11's "A subcommand is required".
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "--root" || arg == "--actor" || arg == "--reason" || arg == "--lock-wait" ||
          arg == "--url") {
        ++i;
        continue;
      }
      if (arg.rfind("-", 0) == 0) continue;
      bool known = false;
      for (const CLI::App* sub : app.get_subcommands({})) known = known || sub->get_name() == arg;
      if (!known) {
        return fail(modelreg::Status::InvalidArgument("unknown command '" + arg +
                                                      "'; run `modelreg --help`"));
      }
      break;
    }
    return fail(ParseErrorStatus(app, e));
  }
  g.lock_wait_ms = lock_wait_s * 1000;

  modelreg::Status st;
  std::ostream& out = std::cout;
  // list, history, events: the period and how many rows (checked before
  // anything is opened).
  const auto rows = [&]() {
    std::optional<std::size_t> limit;
    if (!limit_text.empty()) limit = ParseRowLimit(limit_text);
    return ResolveRows(TimeOpt(since), TimeOpt(until), limit, g.json,
                       ::isatty(STDOUT_FILENO) == 1);
  };
  if (ran(c_completion)) {
    out << BashCompletion(app);
    return 0;
  }
  if (ran(c_man)) {
    out << ManPage(app, std::string("modelreg ") + MODELREG_VERSION);
    return 0;
  }
  // The HTTP layer (app/net_layer.h): these commands, and every command
  // while a server may take the writes, run in modelreg-net.
  if (ran(c_serve) || ran(c_token) || ran(c_consumers) || ran(c_watch) || ran(c_cache) ||
      ran(c_repl_enable) || ran(c_repl_status) || ran(c_repl_disable) || ran(c_follow) ||
      ran(c_promote_follower) || MayNeedNetLayer(g)) {
    if (modelreg::Status net = EnsureNetLayer(); !net.ok()) return fail(net);
  }
  if (ran(c_register)) {
    st = RunRegister(g, reg, out);
  } else if (ran(c_list)) {
    list.at = TimeOpt(list_at);
    auto r = rows();
    if (!r) return fail(r.error());
    list.rows = *r;
    st = RunList(g, list, out, std::cerr);
  } else if (ran(c_show)) {
    st = RunShow(g, type, version, TimeOpt(at), out);
  } else if (ran(c_current)) {
    st = RunCurrent(g, type, TimeOpt(at), out);
  } else if (ran(c_history)) {
    auto r = rows();
    if (!r) return fail(r.error());
    st = RunHistory(g, type, *r, out, std::cerr);
  } else if (ran(c_audit) && audit_prove) {
    st = RunAuditProof(g, *TimeOpt(at), type, audit_proof, out);
  } else if (ran(c_audit)) {
    if (!audit_proof.key_file.empty() || !audit_proof.checkpoint_file.empty()) {
      return fail(modelreg::Status::InvalidArgument("--key and --checkpoint go with --prove"), "");
    }
    st = RunAudit(g, *TimeOpt(at), type, out, audit_policy_text);
  } else if (ran(c_policy_set)) {
    st = RunPolicySet(g, policy_file, out);
  } else if (ran(c_policy_show)) {
    st = RunPolicyShow(g, TimeOpt(at), out, std::cerr);
  } else if (ran(c_promote)) {
    std::optional<std::string> expect;
    if (*expect_opt) expect = expect_current == "none" ? "" : expect_current;
    st = RunPromote(g, type, version, expect, override_gates, out);
  } else if (ran(c_compat)) {
    if (strict && no_strict) {
      return fail(modelreg::Status::InvalidArgument("--strict and --no-strict contradict each other"));
    }
    if (strict) compat.strict = true;
    if (no_strict) compat.strict = false;
    bool warned = false;
    st = RunCompat(g, compat, &warned, out);
    if (st.ok() && warned) return 9;
  } else if (ran(c_archive)) {
    st = RunArchive(g, type, version, out);
  } else if (ran(c_fail)) {
    st = RunFail(g, type, version, force, out);
  } else if (ran(c_rollback)) {
    st = RunRollback(g, type, rollback, out);
  } else if (ran(c_annotate)) {
    if (*description_opt) annotate.description = annotate_description;
    st = RunAnnotate(g, annotate, out);
  } else if (ran(c_validate)) {
    st = RunValidate(g, type, version, out);
  } else if (ran(c_events)) {
    auto r = rows();
    if (!r) return fail(r.error());
    ev.rows = *r;
    st = RunEvents(g, ev, out, std::cerr);
  } else if (ran(c_backup_create)) {
    st = RunBackupCreate(g, out, backup_checkpoint_key);
  } else if (ran(c_backup_list)) {
    st = RunBackupList(g, out);
  } else if (ran(c_backup_verify)) {
    st = RunBackupVerify(g, backup_id(verify_id), out);
  } else if (ran(c_backup_restore)) {
    st = RunBackupRestore(g, backup_id(restore_id), restore_to, out);
  } else if (ran(c_gc)) {
    st = RunGc(g, gc_keep, gc_retention_days, gc_dry_run, out);
  } else if (ran(c_diff)) {
    st = RunDiff(g, *TimeOpt(diff_from), *TimeOpt(diff_to), out);
  } else if (ran(c_consumers)) {
    st = RunConsumers(g, consumers_type, out);
  } else if (ran(c_watch)) {
    st = RunWatch(g, watch, out);
  } else if (ran(c_serve)) {
    st = RunServe(g, serve, out);
  } else if (ran(c_repl_enable)) {
    st = RunReplicationEnable(g, repl, out);
  } else if (ran(c_repl_status)) {
    st = RunReplicationStatus(g, out);
  } else if (ran(c_repl_disable)) {
    st = RunReplicationDisable(g, out);
  } else if (ran(c_follow)) {
    st = RunFollow(g, repl, out);
  } else if (ran(c_promote_follower)) {
    st = RunPromoteFollower(g, repl, out);
  } else if (ran(c_token_issue)) {
    st = RunTokenIssue(g, token, out);
  } else if (ran(c_cache_stats)) {
    st = RunCacheStats(g, cache_opts, out);
  } else if (ran(c_cache_gc)) {
    st = RunCacheGc(g, cache_opts, out);
  } else if (ran(c_cache_purge)) {
    if (*cache_factor_opt) cache_opts.factor = cache_factor;
    if (*cache_dataset_opt) cache_opts.dataset = cache_dataset;
    st = RunCachePurge(g, cache_opts, out);
  } else if (ran(c_verify)) {
    return VerifyCommand(g, "modelreg", ExitCode(modelreg::Status::Corruption("")), out, std::cerr,
                         verify_checkpoint, verify_key);
  } else if (ran(c_keygen)) {
    st = RunKeygen(keygen_name, keygen_out, out);
  } else if (ran(c_checkpoint)) {
    st = RunCheckpoint(g, checkpoint, out);
  } else if (ran(c_prove_event)) {
    st = RunProveEvent(g, prove, out);
  } else if (ran(c_prove_consistency)) {
    st = RunProveConsistency(g, prove, out);
  } else if (ran(c_verify_proof)) {
    st = RunVerifyProof(verify_proof_file, verify_proof_key, out);
  }
  if (!st.ok()) {
    const CLI::App* command = &app;
    while (!command->get_subcommands().empty()) command = command->get_subcommands().front();
    return fail(st, ErrorHint(command->get_name(), st));
  }
  return 0;
}

int main(int argc, char** argv) {
  // Last resort: every expected failure is a Status with its exit code;
  // an exception here is a bug, reported in one line instead of an abort.
  modelreg::app::RememberArguments(argv);
  try {
    return Run(argc, argv);
  } catch (const std::exception& ex) {
    modelreg::app::ReportError("modelreg", modelreg::app::WantsJson(argc, argv),
                modelreg::Status::Internal(std::string("internal error: ") + ex.what()), "",
                std::cerr);
  } catch (...) {
    modelreg::app::ReportError("modelreg", modelreg::app::WantsJson(argc, argv),
                modelreg::Status::Internal("internal error"), "", std::cerr);
  }
  return 1;
}
