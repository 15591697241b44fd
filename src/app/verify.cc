#include "app/verify.h"

#include <chrono>
#include <thread>

#include <nlohmann/json.hpp>

#include "app/exit_codes.h"
#include "registry/registry.h"

namespace modelreg::app {

namespace {

constexpr char kRestoreAdvice[] =
    "restore the newest backup that verifies: `modelreg backup list`, `modelreg backup verify "
    "ID`, then `modelreg backup restore ID --to NEW_DIR` (docs/runbook.md)";

Result<registry::VerifyResult> VerifyOnce(const Globals& g) {
  registry::RegistryOptions o;
  o.root = g.root;
  o.read_only = true;
  o.clock = g.clock;
  auto reg = registry::Registry::Open(o);
  if (!reg) return Err(reg.error());
  return (*reg)->Verify();
}

bool Unreadable(const Status& s) {
  return s.code() == Code::kIOError || s.code() == Code::kCorruption;
}

}  // namespace

int VerifyCommand(const Globals& g, const char* program, int projection_exit, std::ostream& out,
                  std::ostream& err) {
  auto v = VerifyOnce(g);
  // A second and third look after a fresh open: an error that goes away
  // was a writer replacing files, not damage.
  for (int attempt = 1; !v && Unreadable(v.error()) && attempt <= 2; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100 * attempt));
    v = VerifyOnce(g);
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
  if (g.json) {
    nlohmann::json j{{"ok", v->chain.ok && v->projection_ok},
                     {"chain_ok", v->chain.ok},
                     {"events", v->chain.events},
                     {"head_seq", v->chain.head.seq},
                     {"head_hash", ToHex(v->chain.head.hash)},
                     {"projection_ok", v->projection_ok},
                     {"records_ok", v->records_ok},
                     {"state_digest", ToHex(v->state_digest)},
                     {"stored_digest", ToHex(v->stored_digest)}};
    if (!v->chain.ok) {
      j["first_bad_seq"] = v->chain.first_bad_seq;
      j["problem"] = v->chain.problem;
    }
    out << j.dump() << '\n';
  }
  if (!v->chain.ok) {
    err << program << ": hash chain broken at event " << v->chain.first_bad_seq << ": "
        << v->chain.problem << "; " << kRestoreAdvice << '\n';
    return ExitCode(Status::Corruption(""));
  }
  if (!g.json) {
    out << "chain OK: " << v->chain.events << " events, head " << v->chain.head.seq << ' '
        << ToHex(v->chain.head.hash) << '\n';
  }
  if (!v->projection_ok) {
    err << program << ": " << registry::DescribeProjectionMismatch(*v)
        << "; rebuild it from the log with `modelreg-replay --root " << g.root << " rebuild`\n";
    return projection_exit;
  }
  if (!g.json) out << "projection OK: state digest " << ToHex(v->state_digest) << '\n';
  return 0;
}

}  // namespace modelreg::app
