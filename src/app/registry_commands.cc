#include "app/registry_commands.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "app/cli_errors.h"
#include "app/exit_codes.h"
#include "app/write_target.h"
#include "artifacts/tree.h"
#include "common/fd.h"
#include "common/json_input.h"
#include "common/utf8.h"
#include "events/model_events.h"
#include "compat/compatibility.h"
#include "model/naming.h"
#include "policy/policy.h"
#include "registry/registry.h"
#include "client/remote.h"
#include "query/query.h"
#include "query/render.h"

namespace modelreg::app {

namespace {

using nlohmann::json;
using registry::Registry;
using registry::State;
using registry::VersionRecord;
using query::PromotionJson;
using query::RecordJson;

// `full_state`: the command reads the whole current state (list, show,
// history, compat); point-in-time lookups (current, audit) need only rows.
Result<std::unique_ptr<Registry>> OpenForRead(const Globals& g, bool full_state = true) {
  registry::RegistryOptions o;
  o.on_warning = [g](const std::string& m) { Notify(g, "warning", m); };
  o.root = g.root;
  o.read_only = true;
  o.clock = g.clock;
  auto reg = Registry::Open(o);
  if (reg && full_state) MODELREG_RETURN_IF_ERROR((*reg)->Load());
  return reg;
}

Result<std::unique_ptr<Registry>> OpenForWrite(const Globals& g, bool create) {
  registry::RegistryOptions o;
  o.on_warning = [g](const std::string& m) { Notify(g, "warning", m); };
  o.root = g.root;
  o.create_if_missing = create;
  o.clock = g.clock;
  o.lock_wait_ms = g.lock_wait_ms;
  auto reg = Registry::Open(o);
  // This process holds the registry for writing, so no `modelreg serve`
  // does (a server opens it before announcing itself and withdraws before
  // closing it): a server.json still here is stale. Removed, so that later
  // commands need not probe it again.
  if (reg) client::WithdrawServer(g.root);
  return reg;
}

// The metadata file with the register flags applied, as the server takes it.
Result<std::string> MergedMetadata(const registry::MetadataInput& in) {
  json j = json::object();
  if (in.metadata_json) {
    auto parsed = ParseJsonInput(*in.metadata_json, "metadata file");
    if (!parsed) return Err(parsed.error());
    j = std::move(*parsed);
    if (!j.is_object()) return Err(Status::InvalidArgument("metadata file must be a JSON object"));
  }
  if (in.config_json) {
    auto config = ParseJsonInput(*in.config_json, "config file");
    if (!config) return Err(config.error());
    j["config"] = std::move(*config);
    j.erase("config_hash");  // it described the file's config, now replaced
  }
  for (const auto& [k, v] : in.metrics) j["metrics"][k] = v;
  for (const auto& [k, v] : in.datasets) j["dataset_version_ids"][k] = v;
  if (in.snapshot_id) j["snapshot_id"] = *in.snapshot_id;
  if (!in.factors.empty()) j["factor_list"] = in.factors;
  for (const auto& [k, v] : in.params) {
    MODELREG_RETURN_IF_ERROR(CheckJsonDepth(v, "parameter '" + k + "'"));
    json parsed = json::parse(v, nullptr, false);
    j["parameters"][k] = parsed.is_discarded() ? json(v) : parsed;
  }
  return j.dump();
}

registry::Actor ActorOf(const Globals& g) { return {g.actor, g.reason}; }

std::string Time(TimeNs t) { return t == 0 ? "-" : FormatUtc(t); }

Result<std::string> ReadSmallFile(const std::string& path, const std::string& what) {
  // Opened without blocking (a FIFO would wait for a writer forever) and
  // read only if it is a regular file.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (fd.get() < 0) return Err(Status::InvalidArgument("cannot read " + what + " " + path));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Err(Status::InvalidArgument(what + " " + path + " is not a regular file"));
  }
  std::string text;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Err(Status::InvalidArgument("cannot read " + what + " " + path));
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > registry::kMaxMetadataBytes) {
      return Err(Status::InvalidArgument(what + " " + path + " is larger than 1 MiB"));
    }
  }
  return text;
}

// "KEY=VALUE" of --tag / --metric, with a printable message otherwise.
Result<std::pair<std::string, std::string>> Assignment(const std::string& text,
                                                       const std::string& flag) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    return Err(Status::InvalidArgument(flag + " expects NAME=VALUE, got '" + Printable(text) +
                                       "'"));
  }
  return std::make_pair(text.substr(0, eq), text.substr(eq + 1));
}

// --tag KEY=VALUE for list: every one must match (a key given twice with
// different values could never match: refused).
Result<std::map<std::string, std::string>> TagFilter(const std::vector<std::string>& given) {
  std::map<std::string, std::string> tags;
  for (const std::string& t : given) {
    auto kv = Assignment(t, "--tag");
    if (!kv) return Err(kv.error());
    MODELREG_RETURN_IF_ERROR(registry::CheckLabel(kv->first, "tag key"));
    auto [it, added] = tags.emplace(kv->first, kv->second);
    if (!added && it->second != kv->second) {
      return Err(Status::InvalidArgument("--tag " + kv->first + " is given twice with different "
                                         "values; no version can match both"));
    }
  }
  return tags;
}

std::string Metric(const VersionRecord& r, const std::string& name) {
  auto it = r.metrics.find(name);
  if (it == r.metrics.end()) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", it->second);
  return buf;
}

// The line on stderr when a limit left rows out: how many, which were
// kept, and how to see them all.
void NoteLeftOut(std::ostream& err, std::uint64_t left_out, std::uint64_t shown,
                 const std::string& kept, const std::string& rows) {
  if (left_out == 0) return;
  err << "modelreg: showing " << kept << ' ' << shown << " of " << (shown + left_out) << ' '
      << rows << " (" << left_out << " left out); --limit 0 shows them all\n";
}

}  // namespace

std::optional<std::size_t> ParseRowLimit(const std::string& text) {
  if (text.empty() || text.size() > 18 || text.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  return static_cast<std::size_t>(std::stoull(text));
}

void Notify(const Globals& g, const std::string& kind, const std::string& message) {
  if (g.notice) {
    g.notice(kind, message);
  } else {
    ReportNotice("modelreg", g.json, kind, message, std::cerr);
  }
}

Result<RowOptions> ResolveRows(std::optional<TimeNs> since, std::optional<TimeNs> until,
                               std::optional<std::size_t> limit, bool json,
                               bool stdout_is_terminal) {
  if (since && until && *since > *until) {
    return Err(Status::InvalidArgument("--since " + FormatUtc(*since) + " is after --until " +
                                       FormatUtc(*until) + ": no row can be in that period"));
  }
  RowOptions rows;
  rows.since = since;
  rows.until = until;
  if (limit) {
    rows.limit = *limit;
    rows.limit_given = *limit != 0;  // --limit 0: no limit, as if not given
  } else if (stdout_is_terminal && !json) {
    rows.limit = kTerminalRowLimit;
  }
  return rows;
}

Status RunRegister(const Globals& g, const RegisterOptions& o, std::ostream& out) {
  // Validate everything we can before touching the registry directory.
  MODELREG_RETURN_IF_ERROR(model::ValidateModelType(o.type));
  MODELREG_RETURN_IF_ERROR(model::ValidateVersion(o.version));
  registry::MetadataInput in;
  if (!o.metadata_file.empty()) {
    auto text = ReadSmallFile(o.metadata_file, "metadata file");
    if (!text) return text.error();
    in.metadata_json = *text;
  }
  if (!o.config_file.empty()) {
    auto text = ReadSmallFile(o.config_file, "config file");
    if (!text) return text.error();
    in.config_json = *text;
  }
  if (o.metadata_json) {
    if (o.metadata_json->size() > registry::kMaxMetadataBytes) {
      return Status::InvalidArgument("metadata is larger than 1 MiB");
    }
    in.metadata_json = *o.metadata_json;
  }
  if (o.config_json) {
    if (o.config_json->size() > registry::kMaxMetadataBytes) {
      return Status::InvalidArgument("config is larger than 1 MiB");
    }
    in.config_json = *o.config_json;
  }
  for (const std::string& m : o.metrics) {
    auto kv = registry::SplitAssignment(m, "--metric");
    if (!kv) return kv.error();
    auto v = registry::ParseFiniteNumber(kv->second, "metric " + kv->first);
    if (!v) return v.error();
    in.metrics[kv->first] = *v;
  }
  for (const std::string& d : o.datasets) {
    auto kv = registry::SplitAssignment(d, "--dataset");
    if (!kv) return kv.error();
    in.datasets[kv->first] = kv->second;
  }
  if (!o.snapshot.empty()) in.snapshot_id = o.snapshot;
  in.factors = o.factors;
  for (const std::string& p : o.params) {
    auto kv = registry::SplitAssignment(p, "--param");
    if (!kv) return kv.error();
    in.params[kv->first] = kv->second;
  }
  // Fail on metadata problems before the registry directory is created.
  auto check = registry::BuildRegistration(o.type, o.version, in, g.actor, 0);
  if (!check) return check.error();
  // A file, or a directory (hashed as a tree: artifacts/tree.h refuses
  // what it may not hold before anything is written).
  auto hash = artifacts::HashArtifact(o.path);
  if (!hash) return hash.error();

  auto target = WriteTarget(g);
  if (!target) return target.error();
  json j;
  if (*target && hash->directory) {
    return Status::FailedPrecondition(
        o.path + " is a directory: directory artifacts register only directly into the registry "
                 "directory, not through `modelreg serve` (the HTTP API uploads single files); "
                 "stop the server, register, and start it again (docs/cli.md)");
  }
  if (*target) {
    auto meta = MergedMetadata(in);
    if (!meta) return meta.error();
    auto r = (*target)->Register(o.type, o.version, o.path, *meta);
    if (!r) return r.error();
    j = std::move(*r);
    // What the server stored must be what was hashed here.
    if (!j.contains("artifact_sha256") || !j["artifact_sha256"].is_string() ||
        j["artifact_sha256"].get<std::string>() != ToHex(hash->sha256)) {
      return Status::Corruption("the server stored " + o.type + " " + o.version + " with sha256 " +
                                j.value("artifact_sha256", std::string("?")) + " but " + o.path +
                                " has " + ToHex(hash->sha256) +
                                " (the file changed or the upload was cut short); check it with "
                                "`modelreg show` and register a new version");
    }
  } else {
    auto reg = OpenForWrite(g, /*create=*/true);
    if (!reg) return reg.error();
    auto r = (*reg)->Register(o.type, o.version, o.path, in, ActorOf(g));
    if (!r) return r.error();
    j = RecordJson(r->record);
    j["already_registered"] = r->already_registered;
  }
  if (g.json) {
    out << j.dump() << '\n';
  } else {
    out << (j["already_registered"].get<bool>() ? "already registered (identical, nothing written): "
                                                : "registered ")
        << o.type << ' ' << o.version << " (" << j["status"].get<std::string>() << ") sha256 "
        << j["artifact_sha256"].get<std::string>() << ", " << j["artifact_size"] << " bytes, event #"
        << j["registered_seq"] << '\n';
  }
  return Status::OK();
}

Status RunList(const Globals& g, const ListOptions& o, std::ostream& out, std::ostream& err) {
  if (!o.type.empty()) MODELREG_RETURN_IF_ERROR(model::ValidateModelType(o.type));
  query::ListFilter filter;
  filter.model_type = o.type;
  filter.sort_metric = o.sort;
  filter.since = o.rows.since;
  filter.until = o.rows.until;
  if (!o.status.empty()) {
    projection::ModelStatus status{};
    if (!projection::ParseStatus(o.status, &status)) {
      return Status::InvalidArgument("unknown status '" + o.status +
                                     "'; valid: staged, production, archived, failed");
    }
    filter.status = status;
  }
  auto tags = TagFilter(o.tags);
  if (!tags) return tags.error();
  filter.tags = std::move(*tags);
  auto reg = OpenForRead(g, /*full_state=*/false);
  if (!reg) return reg.error();
  auto list = query::Query(**reg).List(filter, o.at);
  if (!list) return list.error();
  MODELREG_RETURN_IF_ERROR(query::CheckSortMetric(o.sort, list->versions, "--sort"));
  // A limit keeps the top of a ranking (--sort), else the most recently
  // registered versions; either way in the list's order.
  std::vector<VersionRecord>& versions = list->versions;
  const std::size_t limit = o.rows.limit;
  std::uint64_t left_out = 0;
  if (limit != 0 && versions.size() > limit) {
    left_out = versions.size() - limit;
    if (!o.sort.empty()) {
      versions.resize(limit);
    } else {
      std::vector<Seq> seqs;
      for (const VersionRecord& r : versions) seqs.push_back(r.registered_seq);
      std::nth_element(seqs.begin(), seqs.begin() + static_cast<std::ptrdiff_t>(limit - 1),
                       seqs.end(), std::greater<Seq>());
      const Seq oldest_kept = seqs[limit - 1];
      std::erase_if(versions, [&](const VersionRecord& r) { return r.registered_seq < oldest_kept; });
    }
  }
  const auto note = [&] {
    NoteLeftOut(err, left_out, versions.size(), o.sort.empty() ? "the newest" : "the top",
                o.sort.empty() ? "versions by registration time" : "versions by " + o.sort);
  };
  if (g.json) {
    json j = query::ListJson(*list, o.type);
    if (o.rows.limit_given) j["omitted"] = left_out;
    out << j.dump() << '\n';
    out.flush();
    note();
    return Status::OK();
  }
  // The metric sorted by gets a column of its own unless it has one.
  const bool extra = !o.sort.empty() && o.sort != "sharpe" && o.sort != "ic" &&
                     o.sort != "max_drawdown";
  std::string extra_header;
  for (char c : o.sort) extra_header += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  char line[1024];
  std::snprintf(line, sizeof line, "%-18s %-14s %-10s %8s %8s %8s%s%*s  %-24s  %-24s  %-24s\n",
                "TYPE", "VERSION", "STATUS", "SHARPE", "IC", "MAX_DD", extra ? " " : "",
                extra ? static_cast<int>(std::max<std::size_t>(8, extra_header.size())) : 0,
                extra ? extra_header.c_str() : "", "REGISTERED", "PROMOTED", "DEMOTED");
  out << line;
  auto day = [](TimeNs t) { return t == 0 ? std::string("-") : FormatUtcMillis(t); };
  for (const VersionRecord& r : list->versions) {
    std::snprintf(line, sizeof line, "%-18s %-14s %-10s %8s %8s %8s%s%*s  %-24s  %-24s  %-24s\n",
                  r.model_type.c_str(), r.version.c_str(),
                  std::string(projection::StatusName(r.status)).c_str(),
                  Metric(r, "sharpe").c_str(), Metric(r, "ic").c_str(),
                  Metric(r, "max_drawdown").c_str(), extra ? " " : "",
                  extra ? static_cast<int>(std::max<std::size_t>(8, extra_header.size())) : 0,
                  extra ? Metric(r, o.sort).c_str() : "", day(r.registered_at).c_str(),
                  day(r.promoted_at).c_str(), day(r.demoted_at).c_str());
    out << line;
  }
  out.flush();
  note();
  return Status::OK();
}

namespace {
// Tags, description and late metrics (each with where it came from), after
// the registration's fields; nothing for a version never annotated.
void PrintAnnotations(const projection::Annotations& a, std::ostream& out) {
  if (a.empty()) return;
  std::string tags;
  for (const auto& [k, v] : a.tags) tags += (tags.empty() ? "" : ", ") + k + "=" + v;
  out << "  tags:          " << (tags.empty() ? "-" : Printable(tags)) << '\n';
  if (!a.description.empty()) out << "  description:   " << Printable(a.description) << '\n';
  for (const auto& [name, m] : a.metrics) {
    out << "  late metric:   " << Printable(name) << '=' << json(m.value).dump() << " (source "
        << Printable(m.source) << ", by " << Printable(m.actor) << " at " << FormatUtc(m.at)
        << ", event #" << m.seq << ")\n";
  }
  out << "  annotated:     last by event #" << a.seq << '\n';
}
}  // namespace

Status RunShow(const Globals& g, const std::string& type, const std::string& version,
               std::optional<TimeNs> at, std::ostream& out) {
  MODELREG_RETURN_IF_ERROR(model::ValidateModelType(type));
  MODELREG_RETURN_IF_ERROR(model::ValidateVersion(version));
  auto reg = OpenForRead(g, /*full_state=*/false);
  if (!reg) return reg.error();
  auto shown = query::Query(**reg).Show(type, version, at);
  if (!shown) return shown.error();
  if (!*shown) {
    return Status::NotFound(type + " " + version + " is not registered" +
                            (at ? " at " + FormatUtc(*at) : std::string()));
  }
  const VersionRecord* r = &(*shown)->record;
  const json registration = events::ToJson((*shown)->registration)["payload"];
  if (g.json) {
    out << query::ShowJson(**shown).dump() << '\n';
    return Status::OK();
  }
  out << type << ' ' << version << '\n'
      << "  status:        " << projection::StatusName(r->status) << " since "
      << Time(r->status_at) << " by " << Printable(r->status_by)
      << (r->status_reason.empty() ? "" : " (" + Printable(r->status_reason) + ")") << '\n'
      << "  registered:    " << Time(r->registered_at) << " by " << Printable(r->registered_by)
      << ", event #" << r->registered_seq << '\n'
      << "  model_id:      " << r->model_id << '\n'
      << "  artifact:      artifacts/" << type << '/' << version << '/' << r->artifact_name
      << (r->artifact_kind == projection::ArtifactKind::kDirectory
              ? "/ (directory, " + registration.value("artifact_files", json(0)).dump() + " files)"
              : std::string())
      << (r->purged ? " (purged)" : "") << ", " << r->artifact_size << " bytes\n"
      << (r->artifact_kind == projection::ArtifactKind::kDirectory ? "  tree digest:   "
                                                                     : "  sha256:        ")
      << r->artifact_sha256 << '\n'
      << "  promoted at:   " << Time(r->promoted_at) << '\n'
      << "  demoted at:    " << Time(r->demoted_at) << '\n'
      << "  metrics:       " << registration["metrics"].dump() << '\n'
      << "  datasets:      " << registration["dataset_version_ids"].dump() << '\n'
      << "  snapshot_id:   " << Printable(r->snapshot_id) << '\n'
      << "  factor_list:   " << registration["factor_list"].dump() << '\n'
      << "  parameters:    " << registration["parameters"].dump() << '\n'
      << "  config:        " << registration["config"].dump() << '\n'
      << "  config_hash:   " << r->config_hash << '\n'
      << "  created:       " << registration["created_at"].get<std::string>() << " by "
      << Printable(registration["created_by"].get<std::string>()) << '\n'
      << "  environment:   " << registration["env"].dump() << '\n';
  if (r->validated_seq != 0) {
    out << "  last validate: event #" << r->validated_seq << ' '
        << (r->validation_ok ? "ok" : "FAILED: " + Printable(r->validation_detail)) << '\n';
  }
  PrintAnnotations(r->annotations, out);
  return Status::OK();
}

Status RunCurrent(const Globals& g, const std::string& type, std::optional<TimeNs> at,
                  std::ostream& out) {
  MODELREG_RETURN_IF_ERROR(model::ValidateModelType(type));
  auto reg = OpenForRead(g, /*full_state=*/false);
  if (!reg) return reg.error();
  auto p = query::Query(**reg).Current(type, at);
  if (!p) return p.error();
  const std::string when = at ? " at " + FormatUtc(*at) : std::string();
  if (g.json) out << query::ProductionJson(*p).dump() << '\n';
  if (!p->record) return Status::NotFound("no production version of " + type + when);
  if (g.json) return Status::OK();
  const VersionRecord& r = *p->record;
  out << type << ' ' << r.version;
  if (p->promotion) {
    const auto& pr = p->promotion->promotion;
    out << " (" << (pr.rollback ? "rolled back to" : "promoted") << ' ' << FormatUtc(pr.at)
        << " by " << Printable(pr.actor) << ", event #" << pr.seq << ')';
  }
  out << " sha256 " << r.artifact_sha256 << '\n';
  PrintAnnotations(r.annotations, out);
  return Status::OK();
}

Status RunHistory(const Globals& g, const std::string& type, const RowOptions& o,
                  std::ostream& out, std::ostream& err) {
  MODELREG_RETURN_IF_ERROR(model::ValidateModelType(type));
  auto reg = OpenForRead(g, /*full_state=*/false);
  if (!reg) return reg.error();
  auto history = query::Query(**reg).History(type, o.since, o.until);
  if (!history) return history.error();
  // A limit keeps the newest (oldest first, as always).
  std::vector<projection::PromotionRecord>& rows = history->promotions;
  std::uint64_t left_out = 0;
  if (o.limit != 0 && rows.size() > o.limit) {
    left_out = rows.size() - o.limit;
    rows.erase(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(left_out));
  }
  const auto note = [&] {
    out.flush();
    NoteLeftOut(err, left_out, rows.size(), "the newest", "promotions and rollbacks");
  };
  if (g.json) {
    json j = query::HistoryJson(*history);
    if (o.limit_given) j["omitted"] = left_out;
    out << j.dump() << '\n';
    note();
    return Status::OK();
  }
  if (rows.empty()) {
    out << "no promotions of " << type << " in that period\n";
    return Status::OK();
  }
  // One row per promotion: columns as wide as their widest cell, the
  // reason last (free text), once — an override's reason is the reason.
  std::vector<std::array<std::string, 8>> table;
  table.push_back({"TIME", "EVENT", "ACTION", "VERSION", "REPLACED", "BY", "GATES", "REASON"});
  for (const auto& h : rows) {
    std::string replaced = "-";
    if (!h.replaced_version.empty()) {
      replaced = h.replaced_version + " (now " + h.replaced_status + ")";
    }
    std::string gates = "-";
    if (h.gates_total > 0) gates = std::to_string(h.gates_passed) + "/" + std::to_string(h.gates_total);
    if (h.gates_overridden) gates += " OVERRIDDEN";
    std::string reason = h.reason;
    if (h.gates_overridden && h.override_reason != h.reason) {
      reason = h.reason.empty() ? h.override_reason
                                : h.reason + " (override: " + h.override_reason + ")";
    }
    table.push_back({FormatUtcMillis(h.at), "#" + std::to_string(h.seq),
                     h.rollback ? "rollback" : "promotion", h.version, replaced, Printable(h.actor),
                     gates, reason.empty() ? "-" : Printable(reason)});
  }
  std::array<std::size_t, 8> width{};
  for (const auto& row : table) {
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  for (const auto& row : table) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    out << line << '\n';
  }
  note();
  return Status::OK();
}

namespace {

// "sha256 1a2b3c4d5e6f set by alice at T (event #12): reason", or the
// built-in defaults.
std::string PolicyLine(const std::optional<projection::PolicyRecord>& p) {
  if (!p) {
    return "built-in defaults (no policy recorded): " +
           policy::DefaultPolicy().defaults.Describe();
  }
  return "sha256 " + p->sha256.substr(0, 12) + " set by " + Printable(p->actor) + " at " +
         FormatUtc(p->at) + " (event #" + std::to_string(p->seq) + ")" +
         (p->reason.empty() ? std::string() : ": " + Printable(p->reason));
}

// The policy text, one line at a time (control characters escaped).
void PrintPolicyText(const std::string& text, const std::string& indent, std::ostream& out) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out << indent << Printable(line) << '\n';
}

}  // namespace

Status RunAudit(const Globals& g, TimeNs at, const std::string& type, std::ostream& out,
                bool policy_text) {
  if (!type.empty()) MODELREG_RETURN_IF_ERROR(model::ValidateModelType(type));
  auto reg = OpenForRead(g, /*full_state=*/false);
  if (!reg) return reg.error();
  std::vector<std::string> types;
  if (!type.empty()) types.push_back(type);
  auto audit = query::Query(**reg).Audit(at, types);
  if (!audit) return audit.error();
  if (g.json) {
    out << query::AuditJson(*audit).dump() << '\n';
    return Status::OK();
  }
  out << "Production models at " << FormatUtc(at) << " (log up to event #" << audit->seq << ")\n";
  out << "  gate policy: " << PolicyLine(audit->policy) << '\n';
  if (policy_text && audit->policy) PrintPolicyText(audit->policy->text, "    | ", out);
  for (const query::Production& m : audit->models) {
    if (!m.record) {
      out << "  " << m.model_type << ": none\n";
      continue;
    }
    const VersionRecord& r = *m.record;
    out << "  " << m.model_type << ": " << r.version << '\n';
    if (m.promotion) {
      const projection::PromotionRecord& p = m.promotion->promotion;
      out << "      " << (p.rollback ? "rolled back to" : "promoted") << " at " << FormatUtc(p.at)
          << " by " << Printable(p.actor) << " (event #" << p.seq << ")";
      if (!p.replaced_version.empty()) out << ", replacing " << p.replaced_version;
      out << '\n';
      if (!p.reason.empty()) out << "      reason: " << Printable(p.reason) << '\n';
      if (!p.rollback) {
        out << "      gates: " << p.gates_passed << '/' << p.gates_total << " passed"
            << (p.gates_overridden ? ", OVERRIDDEN: " + Printable(p.override_reason) : "") << '\n';
        for (const events::Gate& gate : m.promotion->gates) {
          out << "        " << (gate.passed ? "pass " : "FAIL ") << Printable(gate.name) << ' '
              << gate.comparison << ' ' << gate.threshold << ", observed "
              << (gate.has_observed ? json(gate.observed).dump() : std::string("missing"))
              << '\n';
        }
        if (!m.promotion->policy.empty()) out << "      policy: " << Printable(m.promotion->policy) << '\n';
      }
    }
    out << "      metrics: " << json(r.metrics).dump() << '\n'
        << "      sha256: " << r.artifact_sha256 << '\n'
        << "      registered " << Time(r.registered_at) << " by " << Printable(r.registered_by)
        << " (event #" << r.registered_seq << ")\n";
  }
  return Status::OK();
}

namespace {
// Runs a write in this process, or through the server that holds the
// registry (same reply: {"seq", "summary"}).
Status WriteVia(const Globals& g, const std::string& path, const json& body,
                const std::function<Result<registry::WriteResult>(Registry&)>& local,
                std::ostream& out) {
  auto target = WriteTarget(g);
  if (!target) return target.error();
  json reply;
  if (*target) {
    auto r = (*target)->Post(path, body);
    if (!r) return r.error();
    reply = std::move(*r);
  } else {
    auto reg = OpenForWrite(g, false);
    if (!reg) return reg.error();
    auto r = local(**reg);
    if (!r) return r.error();
    reply = json{{"seq", r->seq}, {"summary", r->summary}};
  }
  if (g.json) {
    out << reply.dump() << '\n';
  } else {
    out << reply.value("summary", std::string()) << ", event #" << reply.value("seq", Seq{0})
        << '\n';
  }
  return Status::OK();
}

std::string ModelPath(const std::string& type, const std::string& version,
                      const std::string& action) {
  return "/api/v1/models/" + type + (version.empty() ? "" : "/" + version) + "/" + action;
}

json ReasonBody(const Globals& g) { return json{{"reason", g.reason}}; }
}  // namespace

Status RunPolicySet(const Globals& g, const std::string& file, std::ostream& out) {
  auto text = ReadSmallFile(file, "policy file");
  if (!text) return text.error();
  auto target = WriteTarget(g);
  if (!target) return target.error();
  json reply;
  if (*target) {
    auto r = (*target)->Post("/api/v1/policy",
                             json{{"text", *text}, {"reason", g.reason}, {"source", file}});
    if (!r) return r.error();
    reply = std::move(*r);
  } else {
    auto reg = OpenForWrite(g, false);
    if (!reg) return reg.error();
    auto r = (*reg)->SetPolicy(*text, file, ActorOf(g));
    if (!r) return r.error();
    reply = json{{"seq", r->seq}, {"changed", r->changed}, {"sha256", r->sha256},
                 {"summary", r->summary}};
  }
  if (g.json) {
    out << reply.dump() << '\n';
  } else if (reply.value("changed", false)) {
    out << reply.value("summary", std::string()) << ", event #" << reply.value("seq", Seq{0})
        << '\n';
  } else {
    out << reply.value("summary", std::string()) << '\n';
  }
  return Status::OK();
}

Status RunPolicyShow(const Globals& g, std::optional<TimeNs> at, std::ostream& out,
                     std::ostream& err) {
  auto reg = OpenForRead(g, /*full_state=*/false);
  if (!reg) return reg.error();
  auto p = query::Query(**reg).Policy(at);
  if (!p) return p.error();
  // About now only: the file on disk says nothing about the past.
  if (!at) {
    if (const std::string note = (*reg)->PolicyFileNote(); !note.empty()) {
      if (g.notice) g.notice("note", note); else ReportNotice("modelreg", g.json, "note", note, err);
    }
  }
  if (g.json) {
    out << query::PolicyJson(*p).dump() << '\n';
    return Status::OK();
  }
  out << "Gate policy " << (at ? "at " + FormatUtc(*at) : std::string("in force")) << " (log up to event #"
      << p->seq << "): ";
  if (!p->policy) {
    out << "the built-in defaults, no policy recorded\n"
        << "  gates: " << policy::DefaultPolicy().defaults.Describe() << '\n';
    return Status::OK();
  }
  const projection::PolicyRecord& r = *p->policy;
  out << "sha256 " << r.sha256 << '\n'
      << "  set by:  " << Printable(r.actor) << " at " << FormatUtc(r.at) << " (event #" << r.seq
      << ")\n"
      << "  reason:  " << Printable(r.reason) << '\n';
  if (!r.source.empty()) out << "  source:  " << Printable(r.source) << '\n';
  out << "  text:\n";
  PrintPolicyText(r.text, "    | ", out);
  return Status::OK();
}

Status RunPromote(const Globals& g, const std::string& type, const std::string& version,
                  const std::optional<std::string>& expect_current, bool override_gates,
                  std::ostream& out) {
  MODELREG_RETURN_IF_ERROR(model::ValidateModelType(type));
  MODELREG_RETURN_IF_ERROR(model::ValidateVersion(version));
  json body = ReasonBody(g);
  body["override_gates"] = override_gates;
  if (expect_current) body["expect_current"] = expect_current->empty() ? json() : json(*expect_current);
  return registry::NameExpectCurrent(
      WriteVia(g, ModelPath(type, version, "promote"), body,
               [&](Registry& reg) {
                 return reg.Promote(type, version, expect_current, override_gates, ActorOf(g));
               },
               out),
      "--expect-current");
}

Status RunArchive(const Globals& g, const std::string& type, const std::string& version,
                  std::ostream& out) {
  MODELREG_RETURN_IF_ERROR(model::ValidateModelType(type));
  MODELREG_RETURN_IF_ERROR(model::ValidateVersion(version));
  return WriteVia(g, ModelPath(type, version, "archive"), ReasonBody(g),
                  [&](Registry& reg) { return reg.Archive(type, version, ActorOf(g)); }, out);
}

Status RunFail(const Globals& g, const std::string& type, const std::string& version, bool force,
               std::ostream& out) {
  MODELREG_RETURN_IF_ERROR(model::ValidateModelType(type));
  MODELREG_RETURN_IF_ERROR(model::ValidateVersion(version));
  json body = ReasonBody(g);
  body["force"] = force;
  return WriteVia(g, ModelPath(type, version, "fail"), body,
                  [&](Registry& reg) { return reg.Fail(type, version, force, ActorOf(g)); }, out);
}

Status RunRollback(const Globals& g, const std::string& type, const RollbackCliOptions& o,
                   std::ostream& out) {
  MODELREG_RETURN_IF_ERROR(model::ValidateModelType(type));
  if (!o.to.empty()) MODELREG_RETURN_IF_ERROR(model::ValidateVersion(o.to));
  if (o.fail_current && g.reason.find_first_not_of(" \t\r\n") == std::string::npos) {
    return Status::InvalidArgument("rollback --fail needs --reason: say why the current version "
                                   "of " + type + " failed");
  }
  json body = ReasonBody(g);
  body["fail_current"] = o.fail_current;
  if (!o.to.empty()) body["to"] = o.to;
  body["dry_run"] = o.dry_run;
  auto target = WriteTarget(g);
  if (!target) return target.error();
  json reply;
  if (*target) {
    auto r = (*target)->Post(ModelPath(type, "", "rollback"), body);
    if (!r) return r.error();
    reply = std::move(*r);
  } else {
    // A dry run writes nothing, but opens the registry like a write (the
    // state it decides on is the writer's).
    auto reg = OpenForWrite(g, false);
    if (!reg) return reg.error();
    auto r = (*reg)->Rollback(type, registry::RollbackOptions{o.fail_current, o.to, o.dry_run},
                              ActorOf(g));
    if (!r) return r.error();
    reply = query::RollbackJson(*r);
  }
  if (g.json) {
    out << reply.dump() << '\n';
  } else if (reply.value("dry_run", false)) {
    out << reply.value("summary", std::string()) << '\n';
  } else {
    out << reply.value("summary", std::string()) << ", event #" << reply.value("seq", Seq{0})
        << '\n';
  }
  return Status::OK();
}

Status RunValidate(const Globals& g, const std::string& type, const std::string& version,
                   std::ostream& out) {
  MODELREG_RETURN_IF_ERROR(model::ValidateModelType(type));
  MODELREG_RETURN_IF_ERROR(model::ValidateVersion(version));
  auto target = WriteTarget(g);
  if (!target) return target.error();
  registry::ValidateResult r;
  if (*target) {
    auto reply = (*target)->Post(ModelPath(type, version, "validate"), ReasonBody(g));
    if (!reply) return reply.error();
    r.ok = reply->value("ok", false);
    r.detail = reply->value("detail", std::string());
    r.seq = reply->value("seq", Seq{0});
    r.result = reply->value("result", std::string());
  } else {
    auto reg = OpenForWrite(g, false);
    if (!reg) return reg.error();
    auto local = (*reg)->Validate(type, version, ActorOf(g));
    if (!local) return local.error();
    r = *local;
  }
  const bool missing = r.result == events::kValidationMissing;
  if (g.json) {
    out << query::ValidateJson(r).dump() << '\n';
  } else {
    out << (r.ok ? "valid: " : missing ? "MISSING: " : "INVALID: ") << type << ' ' << version
        << ": " << Printable(r.detail) << " (recorded as event #" << r.seq << ")\n";
  }
  // A missing file is an operational problem (restore it), not a verdict on
  // the model: exit 4 like the promotion it blocks, status unchanged.
  if (missing) {
    return Status::FailedPrecondition(type + " " + version + ": " + r.detail +
                                      "; its status is unchanged: restore the file and validate "
                                      "again");
  }
  if (!r.ok) return Status::Corruption(type + " " + version + " failed validation: " + r.detail);
  return Status::OK();
}

namespace {

std::atomic<bool> g_stop_requested{false};
extern "C" void OnStopSignal(int) { g_stop_requested.store(true); }

// While alive: SIGINT and SIGTERM set a flag instead of killing the
// process, and SIGPIPE is ignored (a write to a closed pipe fails instead).
class StopSignals {
 public:
  StopSignals() {
    g_stop_requested.store(false);
    struct sigaction sa {};
    sa.sa_handler = OnStopSignal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    sigaction(SIGPIPE, &ignore, &old_pipe_);
  }
  ~StopSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
    sigaction(SIGPIPE, &old_pipe_, nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  bool requested() const { return g_stop_requested.load(); }

 private:
  struct sigaction old_int_ {}, old_term_ {}, old_pipe_ {};
};

}  // namespace

Status RunEvents(const Globals& g, const EventsOptions& o, std::ostream& out, std::ostream& err) {
  if (!o.type.empty()) MODELREG_RETURN_IF_ERROR(model::ValidateModelType(o.type));
  registry::RegistryOptions ro;
  ro.root = g.root;
  ro.read_only = !o.follow;
  ro.follow = o.follow;
  ro.clock = g.clock;
  auto reg = Registry::Open(ro);
  if (!reg) return reg.error();
  query::EventFilter filter;
  filter.model_type = o.type;
  filter.since = o.rows.since;
  filter.until = o.rows.until;
  std::uint64_t shown = 0;
  auto print = [&](const EventBuffer& e) {
    if (g.json) {
      out << events::ToJson(e).dump() << '\n';
    } else {
      out << events::Summary(e) << '\n';
    }
    ++shown;
    return true;
  };
  // The backlog: with a limit, its newest events (still oldest first).
  std::uint64_t left_out = 0;
  auto last = query::Query(**reg).LastEvents(
      1, filter, o.rows.limit, [&](const EventBuffer& e) { print(e); }, &left_out);
  if (!last) return last.error();
  out.flush();
  NoteLeftOut(err, left_out, shown, "the newest", "events");
  if (!o.follow) return Status::OK();
  // Ctrl-C, SIGTERM or a closed pipe end the follow normally, so that the
  // secondary instance's private directory is removed on the way out.
  StopSignals stop;
  const auto start = std::chrono::steady_clock::now();
  Seq next = *last + 1;
  for (;;) {
    if (stop.requested() || !out) return Status::OK();
    if (o.follow_max_ms >= 0 &&
        std::chrono::steady_clock::now() - start > std::chrono::milliseconds(o.follow_max_ms)) {
      return Status::OK();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(o.follow_poll_ms));
    MODELREG_RETURN_IF_ERROR((*reg)->CatchUp());
    auto head = query::Query(**reg).Head();
    if (!head) return head.error();
    if (head->seq >= next) {
      auto seen = query::Query(**reg).Events(next, filter, 0, print);
      if (!seen) return seen.error();
      next = std::max(next, *seen + 1);
      out.flush();
    }
  }
}

}  // namespace modelreg::app

namespace modelreg::app {

Status RunCompat(const Globals& g, const CompatOptions& o, bool* warned, std::ostream& out) {
  *warned = false;
  MODELREG_RETURN_IF_ERROR(model::ValidateModelType(o.type));
  MODELREG_RETURN_IF_ERROR(model::ValidateVersion(o.version));
  compat::DatasetVersions current;
  if (!o.current_file.empty()) {
    auto text = ReadSmallFile(o.current_file, "current-versions file");
    if (!text) return text.error();
    auto parsed = compat::ParseDatasetVersions(*text, o.current_file);
    if (!parsed) return parsed.error();
    current = std::move(*parsed);
  }
  for (const std::string& c : o.current) {
    auto kv = registry::SplitAssignment(c, "--current");
    if (!kv) return kv.error();
    current[kv->first] = kv->second;
  }
  if (current.empty()) {
    return Status::InvalidArgument("give the current dataset versions with --current NAME=VERSION "
                                   "or --current-file FILE");
  }
  auto reg = OpenForRead(g, /*full_state=*/false);
  if (!reg) return reg.error();
  auto shown = query::Query(**reg).Show(o.type, o.version);
  if (!shown) return shown.error();
  if (!*shown) return Status::NotFound(o.type + " " + o.version + " is not registered");
  const VersionRecord* rec = &(*shown)->record;
  const auto checker = o.strict ? compat::VersionCompatibilityChecker(*o.strict)
                                : compat::VersionCompatibilityChecker::FromEnvironment();
  const compat::Result r = checker.Check(rec->dataset_version_ids, current);
  const std::string verdict = !r.compatible ? "blocked" : r.warnings.empty() ? "compatible" : "warn";
  if (g.json) {
    out << json{{"model_type", o.type},
                {"version", o.version},
                {"compatible", r.compatible},
                {"level", compat::LevelName(r.level)},
                {"verdict", verdict},
                {"strict", checker.strict()},
                {"warnings", r.warnings},
                {"model_versions", rec->dataset_version_ids},
                {"current_versions", current}}
               .dump()
        << '\n';
  } else {
    out << o.type << ' ' << o.version << ": " << verdict << " ("
        << compat::LevelName(r.level) << ", " << (checker.strict() ? "strict" : "non-strict")
        << " mode)\n";
    for (const auto& w : r.warnings) out << "  " << w << '\n';
  }
  if (!r.compatible) {
    return Status::Rejected(o.type + " " + o.version + " is not compatible with the current "
                            "datasets (" + std::string(compat::LevelName(r.level)) + ")");
  }
  *warned = !r.warnings.empty();
  return Status::OK();
}

}  // namespace modelreg::app

namespace modelreg::app {

Status RunDiff(const Globals& g, TimeNs from, TimeNs to, std::ostream& out) {
  if (from > to) {
    return Status::InvalidArgument("--from " + FormatUtc(from) + " is after --to " + FormatUtc(to));
  }
  auto reg = OpenForRead(g, /*full_state=*/false);
  if (!reg) return reg.error();
  auto diff = query::Query(**reg).Diff(from, to);
  if (!diff) return diff.error();
  if (g.json) {
    out << query::DiffJson(*diff).dump() << '\n';
    return Status::OK();
  }
  out << "Production from " << FormatUtc(from) << " to " << FormatUtc(to) << ":\n";
  for (const query::DiffEntry& e : diff->production) {
    out << "  " << e.model_type << ": " << (e.from.empty() ? "none" : e.from);
    if (e.from != e.to) {
      out << " -> " << (e.to.empty() ? "none" : e.to);
    } else {
      out << " (unchanged)";
    }
    out << '\n';
  }
  out << "Events recorded after " << FormatUtc(from) << " up to " << FormatUtc(to) << ":\n";
  for (const EventBuffer& e : diff->events) out << "  " << events::Summary(e) << '\n';
  if (diff->events.empty()) out << "  (none)\n";
  return Status::OK();
}

}  // namespace modelreg::app

namespace modelreg::app {

Status RunGc(const Globals& g, int keep, int retention_days, bool dry_run, std::ostream& out) {
  // While `modelreg serve` holds the registry, an admin token sends the
  // command to it (POST /api/v1/admin/gc).
  auto target = WriteTarget(g, "model:admin");
  if (!target) return target.error();
  json j;
  if (*target) {
    json body{{"keep", keep}, {"retention_days", retention_days}, {"dry_run", dry_run}};
    if (!g.reason.empty()) body["reason"] = g.reason;
    auto r = (*target)->Post("/api/v1/admin/gc", body);
    if (!r) return r.error();
    j = std::move(*r);
  } else {
    auto reg = OpenForWrite(g, false);
    if (!reg) return reg.error();
    auto items = (*reg)->CollectGarbage(keep, TimeNs{retention_days} * 86'400'000'000'000LL,
                                        dry_run, ActorOf(g));
    if (!items) return items.error();
    j = query::GcJson(*items, dry_run);
  }
  if (g.json) {
    out << j.dump() << '\n';
    return Status::OK();
  }
  const json& items = j["items"];
  for (const auto& i : items) {
    out << (dry_run ? "would delete " : "deleted ") << i.value("path", "") << " ("
        << i.value("bytes", std::uint64_t{0}) << " bytes): " << i.value("why", "") << '\n';
  }
  out << (dry_run ? "dry run: " : "") << items.size() << " items, "
      << j.value("bytes", std::uint64_t{0}) << " bytes"
      << (dry_run ? " would be freed; nothing changed" : " freed") << '\n';
  return Status::OK();
}

}  // namespace modelreg::app

namespace modelreg::app {

Status RunAnnotate(const Globals& g, const AnnotateOptions& o, std::ostream& out) {
  MODELREG_RETURN_IF_ERROR(model::ValidateModelType(o.type));
  MODELREG_RETURN_IF_ERROR(model::ValidateVersion(o.version));
  registry::AnnotationInput in;
  for (const std::string& t : o.tags) {
    auto kv = Assignment(t, "--tag");
    if (!kv) return kv.error();
    auto [it, added] = in.set_tags.emplace(kv->first, kv->second);
    if (!added && it->second != kv->second) {
      return Status::InvalidArgument("--tag " + Printable(kv->first) +
                                     " is given twice with different values");
    }
  }
  for (const std::string& k : o.untags) {
    if (std::find(in.removed_tags.begin(), in.removed_tags.end(), k) == in.removed_tags.end()) {
      in.removed_tags.push_back(k);
    }
  }
  in.description = o.description;
  for (const std::string& m : o.metrics) {
    auto kv = Assignment(m, "--metric");
    if (!kv) return kv.error();
    MODELREG_RETURN_IF_ERROR(registry::CheckLabel(kv->first, "metric name"));
    auto v = registry::ParseFiniteNumber(kv->second, "metric " + kv->first);
    if (!v) return v.error();
    auto [it, added] = in.metrics.emplace(kv->first, *v);
    if (!added && it->second != *v) {
      return Status::InvalidArgument("--metric " + kv->first +
                                     " is given twice with different values");
    }
  }
  in.source = o.source;
  // Everything the registry would refuse without reading the log, before
  // the registry (or a server) is contacted.
  MODELREG_RETURN_IF_ERROR(registry::CheckAnnotation(in, g.reason));
  json body = ReasonBody(g);
  if (!in.set_tags.empty()) body["set_tags"] = in.set_tags;
  if (!in.removed_tags.empty()) body["removed_tags"] = in.removed_tags;
  if (in.description) body["description"] = *in.description;
  if (!in.metrics.empty()) body["metrics"] = in.metrics;
  if (!in.source.empty()) body["source"] = in.source;
  return WriteVia(g, ModelPath(o.type, o.version, "annotate"), body,
                  [&](Registry& reg) { return reg.Annotate(o.type, o.version, in, ActorOf(g)); },
                  out);
}

}  // namespace modelreg::app
