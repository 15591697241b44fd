// `modelreg cache stats | gc | purge`: the factor cache directory
// (DiskExpressionCache, docs/cache.md) from the command line.
#pragma once

#include <optional>
#include <ostream>
#include <string>

#include "app/registry_commands.h"

namespace modelreg::app {

struct CacheCliOptions {
  std::string dir = "./data/cache";    // --cache-dir
  std::string ttl = "7d";              // --ttl: entries older than this are expired
  bool verify = false;                 // gc --verify: read every entry, check its SHA-256
  std::optional<std::string> factor;   // purge --factor NAME
  std::optional<std::string> dataset;  // purge --dataset NAME=VERSION
};

// Entries, bytes, expired and corrupt entries, per factor.
Status RunCacheStats(const Globals& g, const CacheCliOptions& o, std::ostream& out);
// Removes expired and corrupt entries and leftovers of killed processes.
Status RunCacheGc(const Globals& g, const CacheCliOptions& o, std::ostream& out);
// Removes entries: all, one factor's, those built on a dataset version, or both filters.
Status RunCachePurge(const Globals& g, const CacheCliOptions& o, std::ostream& out);

}  // namespace modelreg::app
