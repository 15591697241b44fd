// The five-part cache key of a computed factor value (docs/cache.md):
//
//   {factor_name}:{as_of_date}:{dataset_version_id}:{snapshot_id}:{config_hash}
//
// dataset_version_id is the canonical encoding of the dataset version map:
// its entries sorted by dataset name, written NAME=VERSION and joined by
// commas ("compustat=v1.0.1,crsp=v1.2.3"), so the same map always gives
// the same key and any change in it gives another one. Every component is
// validated first: a restricted character set keeps separators, path
// separators and control characters out of keys and file names, which
// also makes the encoding unambiguous. Thread-safety: plain functions.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>

#include "common/status.h"

namespace modelreg::cache {

// Dataset name -> version, e.g. {"crsp": "v1.2.3"}. Ordered by name.
using VersionMap = std::map<std::string, std::string>;

struct CacheKey {
  std::string factor_name;  // also a directory name: [A-Za-z0-9_.+-], no leading '.'
  std::string as_of_date;   // YYYY-MM-DD, a real calendar date
  VersionMap dataset_versions;
  std::string snapshot_id;
  std::string config_hash;
};

// Longest accepted component (factor name, snapshot id, config hash, a
// dataset name or version), in bytes.
inline constexpr std::size_t kMaxComponentBytes = 128;
// Most datasets in one version map.
inline constexpr std::size_t kMaxDatasets = 64;

// OK, or InvalidArgument naming the component, its value and the rule.
Status ValidateFactorName(std::string_view factor);
Status ValidateDataset(std::string_view name, std::string_view version);
Status ValidateKey(const CacheKey& key);

// "compustat=v1.0.1,crsp=v1.2.3"; "" for an empty map. Validate first.
std::string DatasetVersionId(const VersionMap& versions);

// The full key string after validating every component.
Result<std::string> EncodeKey(const CacheKey& key);

// Lower-case hex SHA-256 of an encoded key: the entry's file name stem.
std::string KeyHash(std::string_view encoded_key);

}  // namespace modelreg::cache
