#include "app/verify.h"

#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "app/cli_errors.h"
#include "app/exit_codes.h"
#include "app/progress.h"
#include "app/proof_commands.h"
#include "artifacts/manifest.h"
#include "registry/registry.h"

namespace modelreg::app {

namespace {

constexpr char kRestoreAdvice[] =
    "restore the newest backup that verifies: `modelreg backup list`, `modelreg backup verify "
    "ID`, then `modelreg backup restore ID --to NEW_DIR` (docs/runbook.md)";

Result<registry::VerifyResult> VerifyOnce(const Globals& g, std::ostream& err) {
  registry::RegistryOptions o;
  o.on_warning = WarningSink(g.json);
  o.root = g.root;
  o.read_only = true;
  o.clock = g.clock;
  auto reg = registry::Registry::Open(o);
  if (!reg) return Err(reg.error());
  Progress bar(err, Progress::ModeFor(Progress::StderrIsTerminal(), g.json), "verify",
               "events folded", "events");
  Seq head = 0;
  auto v = (*reg)->Verify([&](Seq done, Seq total) {
    head = total;
    bar.Update(done, total);
  });
  bar.Finish(head, head);
  return v;
}

bool Unreadable(const Status& s) {
  return s.code() == Code::kIOError || s.code() == Code::kCorruption;
}

// What is wrong with manifest.json, or "" when it records the log's head.
// It is derived from the log (docs/layout.md): reported, never a failure.
std::string ManifestProblem(const std::string& root, Seq head) {
  const std::string path = artifacts::ManifestPath(root);
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return path + " is missing: " + std::strerror(errno);
  if (S_ISDIR(st.st_mode)) return path + " is not a regular file: Is a directory";
  if (!S_ISREG(st.st_mode)) return path + " is not a regular file";
  std::optional<std::uint64_t> seq;
  try {
    seq = artifacts::ReadManifestHeadSeq(path);
  } catch (const std::exception& e) {
    return path + " cannot be read: " + e.what();
  }
  if (!seq) return path + " cannot be read as a manifest (no head_seq)";
  if (*seq != head) {
    return path + " records event " + std::to_string(*seq) + ", the log is at event " +
           std::to_string(head);
  }
  return "";
}

}  // namespace

int VerifyCommand(const Globals& g, const char* program, int projection_exit, std::ostream& out,
                  std::ostream& err, const std::string& checkpoint_file,
                  const std::string& key_file) {
  auto v = VerifyOnce(g, err);
  // A second and third look after a fresh open: an error that goes away
  // was a writer replacing files, not damage.
  for (int attempt = 1; !v && Unreadable(v.error()) && attempt <= 2; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100 * attempt));
    v = VerifyOnce(g, err);
  }
  if (!v) {
    const Status& s = v.error();
    if (!Unreadable(s) || s.message().find("ermission denied") != std::string::npos) {
      err << program << ": " << s.ToString() << '\n';
      return ExitCode(s);
    }
    err << program << ": the registry's files cannot be read (" << s.message()
        << "); this is damage to the registry: " << kRestoreAdvice << '\n';
    return ExitCode(Status::Corruption(""));
  }
  // The signed checkpoints: the log must extend every one of them.
  std::string checkpoint_problem;
  if (!checkpoint_file.empty() && v->chain.ok) {
    registry::RegistryOptions o;
    o.root = g.root;
    o.read_only = true;
    o.clock = g.clock;
    auto reg = registry::Registry::Open(o);
    Result<std::string> checked = reg ? CheckCheckpoints((*reg)->Log(), checkpoint_file, key_file)
                                      : Result<std::string>(Err(reg.error()));
    if (!checked) {
      err << program << ": " << checked.error().ToString() << '\n';
      return ExitCode(checked.error());
    }
    checkpoint_problem = *checked;
  }
  const std::string manifest = ManifestProblem(g.root, v->chain.head.seq);
  if (g.json) {
    nlohmann::json j{{"ok", v->chain.ok && v->projection_ok},
                     {"manifest_ok", manifest.empty()},
                     {"chain_ok", v->chain.ok},
                     {"events", v->chain.events},
                     {"head_seq", v->chain.head.seq},
                     {"head_hash", ToHex(v->chain.head.hash)},
                     {"projection_ok", v->projection_ok},
                     {"records_ok", v->records_ok},
                     {"state_digest", ToHex(v->state_digest)},
                     {"stored_digest", ToHex(v->stored_digest)},
                     {"tree_checked", v->chain.tree_checked}};
    if (v->chain.tree_checked) j["tree_root"] = ToHex(v->chain.tree_root);
    if (!v->chain.ok) {
      j["first_bad_seq"] = v->chain.first_bad_seq;
      j["problem"] = v->chain.problem;
    }
    if (!manifest.empty()) j["manifest_problem"] = manifest;
    if (!checkpoint_file.empty() && v->chain.ok) {
      j["checkpoints_ok"] = checkpoint_problem.empty();
      if (!checkpoint_problem.empty()) {
        j["ok"] = false;
        j["checkpoint_problem"] = checkpoint_problem;
      }
    }
    out << j.dump() << '\n';
  }
  if (!v->chain.ok && v->chain.tree_damaged) {
    err << program << ": Merkle tree damaged at event " << v->chain.first_bad_seq << ": "
        << v->chain.problem << " (the events up to it verified); the tree is derived from the "
        << "log: `modelreg-replay --root " << g.root << " rebuild` rewrites it\n";
    return ExitCode(Status::Corruption(""));
  }
  if (!v->chain.ok) {
    err << program << ": hash chain broken at event " << v->chain.first_bad_seq << ": "
        << v->chain.problem << "; " << kRestoreAdvice << '\n';
    return ExitCode(Status::Corruption(""));
  }
  if (!checkpoint_problem.empty()) {
    err << program << ": the log does not extend its signed checkpoint: " << checkpoint_problem
        << "; " << kRestoreAdvice << '\n';
    return ExitCode(Status::Corruption(""));
  }
  if (!g.json) {
    out << "chain OK: " << v->chain.events << " events, head " << v->chain.head.seq << ' '
        << ToHex(v->chain.head.hash) << '\n';
    if (v->chain.tree_checked) {
      out << "Merkle tree OK: root " << ToHex(v->chain.tree_root) << " over "
          << v->chain.events << " events\n";
    } else {
      out << "Merkle tree: not built yet (this registry was last written by an older "
             "modelreg; the next write builds it)\n";
    }
    if (!checkpoint_file.empty()) {
      out << "checkpoints OK: the log extends every checkpoint in " << checkpoint_file << '\n';
    }
  }
  if (!v->projection_ok) {
    err << program << ": " << registry::DescribeProjectionMismatch(*v)
        << "; rebuild it from the log with `modelreg-replay --root " << g.root << " rebuild`\n";
    return projection_exit;
  }
  if (!g.json) {
    out << "projection OK: state digest " << ToHex(v->state_digest) << '\n';
    if (manifest.empty()) {
      out << "manifest OK: " << artifacts::ManifestPath(g.root) << " records event "
          << v->chain.head.seq << '\n';
    } else {
      // Not an integrity failure: the manifest is rewritten from the log.
      out << "manifest: " << manifest
          << " (derived from the log, so not an integrity failure: a writer rewrites it "
             "shortly after each write; if something else stands in its place, remove it and "
             "the next write or open rewrites it)\n";
    }
  }
  return 0;
}

}  // namespace modelreg::app
