#include "app/replay_commands.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/exit_codes.h"
#include "artifacts/artifact_store.h"
#include "log/backup.h"
#include "log/envelope.h"
#include "log/event_store.h"
#include "portable/export_format.h"
#include "registry/registry.h"

namespace modelreg::app {

namespace {

namespace fs = std::filesystem;

// Paths need not be UTF-8; JSON output must be (dump() would throw).
std::string JsonLine(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// `path` without trailing separators: "new/" is the directory "new".
fs::path WithoutTrailingSlash(const std::string& path) {
  fs::path p(path);
  while (!p.has_filename() && p.has_relative_path()) p = p.parent_path();
  return p;
}

// The directory holding `p` ("." for a bare name).
fs::path ParentOf(const fs::path& p) {
  fs::path parent = p.parent_path();
  return parent.empty() ? fs::path(".") : parent;
}

// A new empty directory named `prefix` + random hex (mode 0777 less the
// umask, like any directory the user creates).
Result<fs::path> MakeUniqueDir(const std::string& prefix) {
  for (int attempt = 0; attempt < 16; ++attempt) {
    const fs::path dir = prefix + NewEventId().substr(0, 12);
    if (::mkdir(dir.c_str(), 0777) == 0) return dir;
    if (errno != EEXIST) {
      return Err(Status::IOError("cannot create " + dir.string() + ": " + std::strerror(errno)));
    }
  }
  return Err(Status::IOError("cannot create a new directory named " + prefix + "*"));
}

// rename(2) that never replaces `to`: AlreadyExists when it is there.
Status RenameNoReplace(const fs::path& from, const fs::path& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) {
    return Status::OK();
  }
  if (errno == EINVAL || errno == ENOSYS) {
    // A filesystem without RENAME_NOREPLACE: check, then rename (racy, but
    // rename(2) still refuses a non-empty directory).
    std::error_code ec;
    if (fs::exists(fs::symlink_status(to, ec))) errno = EEXIST;
    else if (::rename(from.c_str(), to.c_str()) == 0) return Status::OK();
  }
  if (errno == EEXIST || errno == ENOTEMPTY) {
    return Status::AlreadyExists(to.string() + " exists");
  }
  return Status::IOError("cannot rename " + from.string() + " to " + to.string() + ": " +
                         std::strerror(errno));
}

// Events done, events/s and ETA: redrawn in place on a terminal, one line
// per second otherwise (logs, CI).
class Progress {
 public:
  Progress(std::ostream& out, bool terminal) : out_(out), terminal_(terminal) {}

  void Update(Seq done, Seq total, bool final = false) {
    const auto now = std::chrono::steady_clock::now();
    if (!final && done >= total) return;  // the final update prints the end
    if (!final && now - last_ < (terminal_ ? std::chrono::milliseconds(100)
                                           : std::chrono::milliseconds(1000))) {
      return;
    }
    last_ = now;
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double rate = secs > 0 ? static_cast<double>(done) / secs : 0;
    const double eta = rate > 0 ? static_cast<double>(total - done) / rate : 0;
    const double frac = total == 0 ? 1.0 : static_cast<double>(done) / static_cast<double>(total);
    char line[160];
    if (terminal_) {
      std::string bar(30, ' ');
      for (int i = 0; i < static_cast<int>(frac * 30); ++i) bar[static_cast<std::size_t>(i)] = '#';
      // Two steps per event: the chain pass, then the fold pass.
      std::snprintf(line, sizeof line, "\r[%s] %llu/%llu steps (verify, fold)  %.0f/s  ETA %.1f s ",
                    bar.c_str(), static_cast<unsigned long long>(done),
                    static_cast<unsigned long long>(total), rate, eta);
      out_ << line << (final ? "\n" : "") << std::flush;
    } else {
      std::snprintf(line, sizeof line,
                    "rebuild: %llu/%llu steps (verify, fold) (%.0f%%), %.0f steps/s, ETA %.1f s\n",
                    static_cast<unsigned long long>(done), static_cast<unsigned long long>(total),
                    frac * 100, rate, eta);
      out_ << line << std::flush;
    }
  }

 private:
  std::ostream& out_;
  bool terminal_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace

Status RunRebuild(const Globals& g, std::ostream& out, std::ostream& progress,
                  bool progress_is_terminal) {
  registry::RegistryOptions o;
  o.root = g.root;
  o.clock = g.clock;
  o.lock_wait_ms = g.lock_wait_ms;
  o.for_rebuild = true;
  auto reg = registry::Registry::Open(o);
  if (!reg) return reg.error();
  Progress bar(progress, progress_is_terminal);
  const auto start = std::chrono::steady_clock::now();
  auto r = (*reg)->Rebuild([&bar](Seq done, Seq total) { bar.Update(done, total); });
  if (!r) return r.error();
  bar.Update(2 * r->events, 2 * r->events, /*final=*/true);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const bool same = r->before == r->after;
  if (g.json) {
    out << nlohmann::json{{"events", r->events},
                          {"seconds", secs},
                          {"digest_before", ToHex(r->before)},
                          {"digest_after", ToHex(r->after)},
                          {"unchanged", same}}
               .dump()
        << '\n';
  } else {
    out << "rebuilt the projections from " << r->events << " events in " << secs << " s\n"
        << "state digest " << ToHex(r->after) << '\n'
        << (same ? "equal to the digest before the rebuild"
                 : "the projections before the rebuild differed (digest " + ToHex(r->before) +
                       "); they now match the log")
        << '\n';
  }
  return Status::OK();
}

int RunReplayVerify(const Globals& g, std::ostream& out, std::ostream& err) {
  registry::RegistryOptions o;
  o.root = g.root;
  o.read_only = true;
  auto reg = registry::Registry::Open(o);
  if (!reg) {
    err << "modelreg-replay: " << reg.error().ToString() << '\n';
    return ExitCode(reg.error());
  }
  auto v = (*reg)->Verify();
  if (!v) {
    err << "modelreg-replay: " << v.error().ToString() << '\n';
    return ExitCode(v.error());
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
    out << JsonLine(j) << '\n';
  }
  if (!v->chain.ok) {
    err << "modelreg-replay: hash chain broken at event " << v->chain.first_bad_seq << ": "
        << v->chain.problem << '\n';
    return kExitChainBroken;
  }
  if (!g.json) {
    out << "chain OK: " << v->chain.events << " events, head " << v->chain.head.seq << ' '
        << ToHex(v->chain.head.hash) << '\n';
  }
  if (!v->projection_ok) {
    err << "modelreg-replay: " << registry::DescribeProjectionMismatch(*v)
        << "; run `modelreg-replay rebuild`\n";
    return kExitProjectionDiffers;
  }
  if (!g.json) out << "projection OK: state digest " << ToHex(v->state_digest) << '\n';
  return 0;
}

Status RunExport(const Globals& g, const std::string& file, std::ostream& out) {
  registry::RegistryOptions o;
  o.root = g.root;
  o.read_only = true;
  auto reg = registry::Registry::Open(o);
  if (!reg) return reg.error();
  const std::string tmp = file + ".partial";
  Status st;
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return Status::IOError("cannot write " + tmp);
    st = portable::ExportLog((*reg)->log(), f);
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
  const Head head = (*reg)->log().head();
  if (g.json) {
    out << JsonLine({{"file", file}, {"events", head.seq}, {"head_hash", ToHex(head.hash)}})
        << '\n';
  } else {
    out << "exported " << head.seq << " events to " << file << " (head hash "
        << ToHex(head.hash) << ")\n";
  }
  return Status::OK();
}

Status RunMaterialize(const Globals& g, TimeNs at, const std::string& dir, std::ostream& out) {
  std::error_code ec;
  if (fs::exists(dir, ec) && (!fs::is_directory(dir, ec) || !fs::is_empty(dir, ec))) {
    return Status::AlreadyExists(dir + " exists and is not an empty directory");
  }
  registry::RegistryOptions src_options;
  src_options.root = g.root;
  src_options.read_only = true;
  auto src = registry::Registry::Open(src_options);
  if (!src) return src.error();
  auto upto = (*src)->log().SeqAtOrBefore(at);
  if (!upto) return upto.error();
  MODELREG_RETURN_IF_ERROR(CreateDirectoriesSynced(dir));
  fs::create_directories(fs::path(dir) / "registry", ec);
  if (ec) return Status::IOError("cannot create " + dir + ": " + ec.message());
  {
    auto store = EventStore::Open((fs::path(dir) / "registry").string());
    if (!store) return store.error();
    Seq next = 1;
    MODELREG_RETURN_IF_ERROR((*store)->AppendVerbatim([&]() -> Result<std::optional<std::string>> {
      if (next > *upto) return std::optional<std::string>();
      auto e = (*src)->log().Get(next++);
      if (!e) return Err(e.error());
      return std::optional<std::string>(std::string(e->bytes()));
    }));
  }
  registry::RegistryOptions dst_options;
  dst_options.root = dir;
  auto dst = registry::Registry::Open(dst_options);
  if (!dst) return dst.error();
  Status linked;
  std::size_t versions = 0;
  (*dst)->Read([&](const registry::State& s) {
    for (const auto& [type, ts] : s.types) {
      for (const auto& [version, rec] : ts.versions) {
        if (!linked.ok()) return;
        ++versions;
        linked = artifacts::LinkDirectory((fs::path(g.root) / "artifacts" / type / version).string(),
                                          (fs::path(dir) / "artifacts" / type / version).string(),
                                          nullptr);
      }
    }
  });
  MODELREG_RETURN_IF_ERROR(linked);
  auto v = (*dst)->Verify();
  if (!v) return v.error();
  dst->reset();
  MODELREG_RETURN_IF_ERROR(SyncTree(dir));  // the log, manifest, artifact links and copies
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
// events, the projections and manifest.json (Registry::Open), a verify, and
// everything fsynced. `dir` is closed again when this returns.
Status BuildImport(const Globals& g, const std::string& file, const fs::path& dir,
                   registry::VerifyResult* verified) {
  std::error_code ec;
  const fs::path log_dir = dir / "registry";
  fs::create_directory(log_dir, ec);
  if (ec) return Status::IOError("cannot create " + log_dir.string() + ": " + ec.message());
  {
    auto store = EventStore::Open(log_dir.string());
    if (!store) return store.error();
    MODELREG_RETURN_IF_ERROR(portable::ImportInto(file, **store));
  }
  {
    registry::RegistryOptions o;
    o.root = dir.string();
    o.clock = g.clock;
    auto reg = registry::Registry::Open(o);  // folds the log, writes projections
    if (!reg) return reg.error();
    auto v = (*reg)->Verify();
    if (!v) return v.error();
    if (!v->chain.ok || !v->projection_ok) {
      return Status::Corruption("the imported registry does not verify: " + v->chain.problem);
    }
    *verified = *v;
  }
  return SyncTree(dir.string());
}

// Publishes a complete import: the staging directory becomes `target`.
// `target` absent: one rename of the sibling staging directory. `target` an
// existing empty directory (perhaps a mount point, or prepared with its
// owner and mode): the staging directory is inside it and its entries move
// up, registry/ last; the registry exists once registry/ is there.
Status Publish(const fs::path& staging, const fs::path& target, bool target_existed) {
  auto appeared = [&target](const Status& st) {
    return st.code() == Code::kAlreadyExists
               ? Status::AlreadyExists(target.string() +
                                       " was created by someone else while importing; nothing "
                                       "was imported")
               : st;
  };
  if (!target_existed) {
    Status st = RenameNoReplace(staging, target);
    if (!st.ok()) return appeared(st);
    return SyncPath(ParentOf(target).string());
  }
  std::error_code ec;
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(staging, ec)) {
    names.push_back(entry.path().filename().string());
  }
  if (ec) return Status::IOError("cannot read " + staging.string() + ": " + ec.message());
  std::stable_partition(names.begin(), names.end(),
                        [](const std::string& n) { return n != "registry"; });
  std::vector<std::string> moved;
  for (const std::string& n : names) {
    Status st = RenameNoReplace(staging / n, target / n);
    if (!st.ok()) {
      for (const std::string& m : moved) fs::remove_all(target / m, ec);
      return appeared(st);
    }
    moved.push_back(n);
  }
  fs::remove(staging, ec);
  return SyncPath(target.string());
}

}  // namespace

Status RunImport(const Globals& g, const std::string& file, const std::string& new_root,
                 std::ostream& out) {
  std::error_code ec;
  const fs::path target = WithoutTrailingSlash(new_root);
  if (target.empty()) return Status::InvalidArgument("--root is empty: name the new registry");
  const bool exists = fs::exists(target, ec);
  if (fs::exists(fs::symlink_status(target, ec)) &&
      (!exists || !fs::is_directory(target, ec) || !fs::is_empty(target, ec))) {
    return Status::AlreadyExists(new_root + " exists and is not an empty directory; import "
                                            "into a new registry");
  }
  auto checked = portable::CheckExport(file);
  if (!checked) return checked.error();
  // Built in a staging directory and published only once complete and
  // verified: whatever fails (a line that changed since the check, a full
  // disk, a kill), `new_root` is never half a registry.
  if (!exists) MODELREG_RETURN_IF_ERROR(CreateDirectoriesSynced(ParentOf(target).string()));
  auto staging = MakeUniqueDir(exists ? (target / ".importing-").string()
                                      : target.string() + ".importing-");
  if (!staging) return staging.error();
  registry::VerifyResult v;
  Status st = BuildImport(g, file, *staging, &v);
  if (st.ok()) st = Publish(*staging, target, exists);
  if (!st.ok()) {
    fs::remove_all(*staging, ec);
    return st;
  }
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
