#include "app/cache_commands.h"

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>

#include "auth/token.h"
#include "cache/expression_cache.h"

namespace modelreg::app {

namespace {

using nlohmann::json;

std::string Bytes(std::uint64_t n) {
  char buf[64];
  if (n < 1024) {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  } else if (n < 1024 * 1024) {
    std::snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(n) / 1024);
  } else if (n < std::uint64_t{1} << 30) {
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(n) / (1024 * 1024));
  } else {
    std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(n) / (1 << 30));
  }
  return buf;
}

// Checks the arguments before anything touches the directory, then opens
// the cache. The directory must exist and look like a cache (entries/ or
// locks/ inside), so a mistyped --cache-dir changes nothing anywhere.
Result<std::unique_ptr<cache::DiskExpressionCache>> OpenCache(const Globals& g,
                                                              const CacheCliOptions& o) {
  auto ttl = auth::ParseTtl(o.ttl);
  if (!ttl) return Err(ttl.error());
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(o.dir, ec)) return Err(Status::NotFound("no cache directory at " + o.dir));
  if (!fs::is_directory(o.dir, ec)) {
    return Err(Status::InvalidArgument("--cache-dir " + o.dir + " is not a directory"));
  }
  if (!fs::is_directory(fs::path(o.dir) / "entries", ec) &&
      !fs::is_directory(fs::path(o.dir) / "locks", ec)) {
    return Err(Status::NotFound(o.dir + " is not a factor cache (no entries/ or locks/ inside)"));
  }
  cache::CacheOptions co;
  co.dir = o.dir;
  co.ttl = static_cast<TimeNs>(ttl->count()) * 1'000'000'000;
  co.clock = g.clock;
  return std::make_unique<cache::DiskExpressionCache>(co);
}

// "skipped 1 symbolic link (never followed; its target is left alone):
// entries/momentum", or "" when there were none.
std::string Skipped(const std::vector<std::string>& links) {
  if (links.empty()) return "";
  std::string out = "skipped " + std::to_string(links.size()) +
                    (links.size() == 1 ? " symbolic link (never followed; its target is left alone): "
                                       : " symbolic links (never followed; their targets are left "
                                         "alone): ");
  for (std::size_t i = 0; i < links.size(); ++i) out += (i == 0 ? "" : ", ") + links[i];
  return out + "\n";
}

}  // namespace

Status RunCacheStats(const Globals& g, const CacheCliOptions& o, std::ostream& out) {
  auto c = OpenCache(g, o);
  if (!c) return c.error();
  auto s = (*c)->Stats();
  if (!s) return s.error();
  if (g.json) {
    json factors = json::object();
    for (const auto& [name, f] : s->factors) {
      factors[name] = {{"entries", f.entries}, {"bytes", f.bytes}, {"expired", f.expired}};
    }
    out << json{{"cache_dir", o.dir},          {"ttl_seconds", (*c)->ttl() / 1'000'000'000},
                {"entries", s->entries},       {"bytes", s->bytes},
                {"expired", s->expired},       {"corrupt", s->corrupt},
                {"temp_files", s->temp_files}, {"lock_files", s->lock_files},
                {"factors", factors},          {"skipped_symlinks", s->skipped_symlinks}}
               .dump()
        << '\n';
    return Status::OK();
  }
  out << "cache " << o.dir << ": " << s->entries << " entries, " << Bytes(s->bytes) << "; "
      << s->expired << " expired (ttl " << o.ttl << "), " << s->corrupt << " corrupt\n";
  for (const auto& [name, f] : s->factors) {
    out << "  " << name << ": " << f.entries << " entries, " << Bytes(f.bytes) << ", " << f.expired
        << " expired\n";
  }
  out << "leftovers: " << s->temp_files << " temporary files, " << s->lock_files
      << " lock files (gc removes those of dead processes)\n"
      << "hits and misses are counted per process by the library, not on disk\n"
      << Skipped(s->skipped_symlinks);
  return Status::OK();
}

Status RunCacheGc(const Globals& g, const CacheCliOptions& o, std::ostream& out) {
  auto c = OpenCache(g, o);
  if (!c) return c.error();
  auto r = (*c)->Gc(o.verify);
  if (!r) return r.error();
  if (g.json) {
    out << json{{"expired_removed", r->expired_removed}, {"corrupt_removed", r->corrupt_removed},
                {"temp_removed", r->temp_removed},       {"locks_removed", r->locks_removed},
                {"busy_skipped", r->busy_skipped},       {"bytes", r->bytes},
                {"skipped_symlinks", r->skipped_symlinks}}
               .dump()
        << '\n';
    return Status::OK();
  }
  out << "removed " << r->expired_removed << " expired and " << r->corrupt_removed
      << " corrupt entries, " << r->temp_removed << " temporary files, " << r->locks_removed
      << " stale lock files (" << Bytes(r->bytes) << ")";
  if (r->busy_skipped > 0) out << "; " << r->busy_skipped << " in use, skipped";
  out << '\n' << Skipped(r->skipped_symlinks);
  return Status::OK();
}

Status RunCachePurge(const Globals& g, const CacheCliOptions& o, std::ostream& out) {
  cache::PurgeFilter f;
  if (o.factor) {
    MODELREG_RETURN_IF_ERROR(cache::ValidateFactorName(*o.factor).WithContext("--factor"));
    f.factor = *o.factor;
  }
  if (o.dataset) {
    const std::size_t eq = o.dataset->find('=');
    if (eq == std::string::npos) {
      return Status::InvalidArgument("--dataset '" + *o.dataset + "' must be NAME=VERSION");
    }
    f.dataset = std::make_pair(o.dataset->substr(0, eq), o.dataset->substr(eq + 1));
    MODELREG_RETURN_IF_ERROR(
        cache::ValidateDataset(f.dataset->first, f.dataset->second).WithContext("--dataset"));
  }
  auto c = OpenCache(g, o);
  if (!c) return c.error();
  auto r = (*c)->Purge(f);
  if (!r) return r.error();
  if (g.json) {
    out << json{{"removed", r->removed},
                {"bytes", r->bytes},
                {"unreadable", r->unreadable},
                {"skipped_symlinks", r->skipped_symlinks}}
               .dump()
        << '\n';
    return Status::OK();
  }
  out << "purged " << r->removed << " entries (" << Bytes(r->bytes) << ")";
  if (f.factor) out << " of factor " << *f.factor;
  if (f.dataset) out << (f.factor ? " and" : "") << " built on " << *o.dataset;
  out << '\n';
  if (r->unreadable > 0) {
    out << r->unreadable << " entries with unreadable headers were left for `cache gc`\n";
  }
  out << Skipped(r->skipped_symlinks);
  return Status::OK();
}

}  // namespace modelreg::app
