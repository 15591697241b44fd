#include "app/replay_commands.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/cli_errors.h"
#include "app/exit_codes.h"
#include "app/new_directory.h"
#include "app/progress.h"
#include "app/verify.h"
#include "artifacts/artifact_store.h"
#include "common/fs.h"
#include "portable/export_format.h"
#include "query/query.h"
#include "registry/registry.h"

namespace modelreg::app {

namespace {

namespace fs = std::filesystem;

// Paths need not be UTF-8; JSON output must be (dump() would throw).
std::string JsonLine(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

namespace {

// This process's peak resident memory (VmHWM of /proc/self/status), KiB;
// 0 where it cannot be read. Measured by the process itself: a parent's
// wait4() figure can be the parent's own peak when it spawned the child
// with vfork (posix_spawn), which records the shared memory's high-water
// mark at exec.
std::uint64_t PeakRssKib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10);
  }
  return 0;
}

}  // namespace

Status RunRebuild(const Globals& g, std::ostream& out, std::ostream& progress,
                  bool progress_is_terminal) {
  registry::RegistryOptions o;
  o.on_warning = WarningSink(g.json);
  o.root = g.root;
  o.clock = g.clock;
  o.lock_wait_ms = g.lock_wait_ms;
  o.for_rebuild = true;
  auto reg = registry::Registry::Open(o);
  if (!reg) return reg.error();
  // Two steps per event: the chain pass, then the fold pass. Lines also
  // when stderr is no terminal (a rebuild is long; logs show it moving).
  Progress bar(progress, Progress::ModeFor(progress_is_terminal, g.json, !g.json), "rebuild",
               "steps (verify, fold)", "steps");
  const auto start = std::chrono::steady_clock::now();
  auto r = (*reg)->Rebuild([&bar](Seq done, Seq total) { bar.Update(done, total); });
  if (!r) return r.error();
  bar.Finish(2 * r->events, 2 * r->events);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const bool same = r->before == r->after;
  if (g.json) {
    out << nlohmann::json{{"events", r->events},
                          {"seconds", secs},
                          {"digest_before", ToHex(r->before)},
                          {"digest_after", ToHex(r->after)},
                          {"unchanged", same},
                          {"peak_rss_kib", PeakRssKib()}}
               .dump()
        << '\n';
  } else {
    out << "rebuilt the projections from " << r->events << " events in " << secs << " s (peak "
        << PeakRssKib() / 1024 << " MiB resident)\n"
        << "state digest " << ToHex(r->after) << '\n'
        << (same ? "equal to the digest before the rebuild"
                 : "the projections before the rebuild differed (digest " + ToHex(r->before) +
                       "); they now match the log")
        << '\n';
  }
  return Status::OK();
}

int RunReplayVerify(const Globals& g, std::ostream& out, std::ostream& err) {
  return VerifyCommand(g, "modelreg-replay", kExitProjectionDiffers, out, err);
}

Status RunExport(const Globals& g, const std::string& file, std::ostream& out) {
  registry::RegistryOptions o;
  o.on_warning = WarningSink(g.json);
  o.root = g.root;
  o.read_only = true;
  auto reg = registry::Registry::Open(o);
  if (!reg) return reg.error();
  const std::string tmp = file + ".partial";
  Status st;
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return Status::IOError("cannot write " + tmp);
    Progress bar(std::cerr, Progress::ModeFor(Progress::StderrIsTerminal(), g.json), "export",
                 "events", "events");
    Seq total = 0;
    st = (*reg)->ExportLog(f, [&](Seq done, Seq all) {
      total = all;
      bar.Update(done, all);
    });
    if (st.ok()) bar.Finish(total, total);
    if (st.ok()) {
      f.close();
      if (!f) st = Status::IOError("cannot write " + tmp);
    }
  }
  // The bytes are on disk before the file gets its name, and the name is
  // on disk before we say it is exported.
  if (st.ok()) st = SyncPath(tmp);
  std::error_code ec;
  if (st.ok()) {
    fs::rename(tmp, file, ec);
    if (ec) st = Status::IOError("cannot rename " + tmp + " to " + file + ": " + ec.message());
  }
  if (!st.ok()) {
    fs::remove(tmp, ec);
    return st;
  }
  MODELREG_RETURN_IF_ERROR(SyncPath(ParentOf(file).string()));
  auto head = query::Query(**reg).Head();
  if (!head) return head.error();
  if (g.json) {
    out << JsonLine({{"file", file}, {"events", head->seq}, {"head_hash", ToHex(head->hash)}})
        << '\n';
  } else {
    out << "exported " << head->seq << " events to " << file << " (head hash "
        << ToHex(head->hash) << ")\n";
  }
  return Status::OK();
}

Status RunMaterialize(const Globals& g, TimeNs at, const std::string& dir, std::ostream& out) {
  const std::string hint = "materialize into a new directory";
  MODELREG_RETURN_IF_ERROR(CheckNewDirectory(dir, hint));
  registry::RegistryOptions src_options;
  src_options.root = g.root;
  src_options.read_only = true;
  auto src = registry::Registry::Open(src_options);
  if (!src) return src.error();
  auto seq = query::Query(**src).SeqAt(at);
  if (!seq) return seq.error();
  const Seq upto = *seq;
  // Built aside and renamed into place once complete and verified.
  std::size_t versions = 0;
  std::optional<registry::VerifyResult> v;
  MODELREG_RETURN_IF_ERROR(CreateAtomically(dir, hint, "materializing", [&](const std::string& staging) -> Status {
    std::error_code ec;
    fs::create_directories(fs::path(staging) / "registry", ec);
    if (ec) return Status::IOError("cannot create " + staging + ": " + ec.message());
    MODELREG_RETURN_IF_ERROR((*src)->CopyLogPrefix(upto, (fs::path(staging) / "registry").string()));
    registry::RegistryOptions dst_options;
    dst_options.root = staging;
    auto dst = registry::Registry::Open(dst_options);
    if (!dst) return dst.error();
    Status linked;
    (*dst)->Read([&](const registry::State& s) {
      for (const auto& [type, ts] : s.types) {
        for (const auto& [version, rec] : ts.versions) {
          if (!linked.ok()) return;
          ++versions;
          linked = artifacts::LinkDirectory(
              (fs::path(g.root) / "artifacts" / type / version).string(),
              (fs::path(staging) / "artifacts" / type / version).string(), nullptr);
        }
      }
    });
    MODELREG_RETURN_IF_ERROR(linked);
    auto verified = (*dst)->Verify();
    if (!verified) return verified.error();
    if (!verified->chain.ok || !verified->projection_ok) {
      return Status::Corruption("the materialized registry does not verify: " +
                                verified->chain.problem);
    }
    v = *verified;
    return Status::OK();
  }));
  if (g.json) {
    out << JsonLine({{"root", dir},
                     {"at", FormatUtc(at)},
                     {"events", v->chain.events},
                     {"versions", versions},
                     {"head_hash", ToHex(v->chain.head.hash)},
                     {"state_digest", ToHex(v->state_digest)}})
        << '\n';
  } else {
    out << "materialized " << v->chain.events << " events (everything recorded at or before "
        << FormatUtc(at) << ") and the artifacts of " << versions << " versions into " << dir
        << "\nhead hash " << ToHex(v->chain.head.hash) << "\n";
  }
  return Status::OK();
}

namespace {

// Creates the registry of an export in the empty directory `dir`: the
// events, the projections and manifest.json (Registry::Open) and a verify.
// `dir` is closed again when this returns.
Status BuildImport(const Globals& g, const std::string& file, Seq total, const fs::path& dir,
                   registry::VerifyResult* verified) {
  std::error_code ec;
  const fs::path log_dir = dir / "registry";
  fs::create_directory(log_dir, ec);
  if (ec) return Status::IOError("cannot create " + log_dir.string() + ": " + ec.message());
  const auto mode = Progress::ModeFor(Progress::StderrIsTerminal(), g.json);
  {
    Progress bar(std::cerr, mode, "import", "events appended", "events");
    MODELREG_RETURN_IF_ERROR(registry::Registry::ImportLog(
        file, log_dir.string(), total, [&bar](Seq done, Seq all) { bar.Update(done, all); }));
    bar.Finish(total, total);
  }
  {
    registry::RegistryOptions o;
    o.on_warning = WarningSink(g.json);
    o.root = dir.string();
    o.clock = g.clock;
    auto reg = registry::Registry::Open(o);  // folds the log, writes projections
    if (!reg) return reg.error();
    Progress bar(std::cerr, mode, "import: verify", "events folded", "events");
    auto v = (*reg)->Verify([&bar](Seq done, Seq all) { bar.Update(done, all); });
    bar.Finish(total, total);
    if (!v) return v.error();
    if (!v->chain.ok || !v->projection_ok) {
      return Status::Corruption("the imported registry does not verify: " + v->chain.problem);
    }
    *verified = *v;
  }
  return Status::OK();
}

}  // namespace

Status RunImport(const Globals& g, const std::string& file, const std::string& new_root,
                 std::ostream& out) {
  const std::string hint = "import into a new registry";
  MODELREG_RETURN_IF_ERROR(CheckNewDirectory(new_root, hint));
  auto checked = portable::CheckExport(file);
  if (!checked) return checked.error();
  // Built in a staging directory and published only once complete and
  // verified: whatever fails (a line that changed since the check, a full
  // disk, a kill), `new_root` is never half a registry.
  registry::VerifyResult v;
  MODELREG_RETURN_IF_ERROR(CreateAtomically(new_root, hint, "importing",
                                            [&](const std::string& staging) {
                                              return BuildImport(g, file, checked->events,
                                                                 staging, &v);
                                            }));
  if (g.json) {
    out << JsonLine({{"root", new_root},
                     {"events", v.chain.events},
                     {"head_hash", ToHex(v.chain.head.hash)},
                     {"state_digest", ToHex(v.state_digest)}})
        << '\n';
  } else {
    out << "imported " << v.chain.events << " events into " << new_root << "\nhead hash "
        << ToHex(v.chain.head.hash) << "\nstate digest " << ToHex(v.state_digest)
        << "\n(artifacts are not part of the log: copy artifacts/ separately)\n";
  }
  return Status::OK();
}

}  // namespace modelreg::app
