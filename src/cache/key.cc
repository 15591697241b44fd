#include "cache/key.h"

#include "common/clock.h"
#include "common/sha256.h"

namespace modelreg::cache {

namespace {

bool AllowedChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-' || c == '+';
}

// Printable form of a rejected value: control and non-ASCII bytes as \xNN,
// cut to 80 bytes, so an error message never carries them either.
std::string Shown(std::string_view v) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < v.size() && i < 80; ++i) {
    const auto c = static_cast<unsigned char>(v[i]);
    if (c < 0x20 || c >= 0x7f || c == '\\' || c == '\'') {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (v.size() > 80) out += "...";
  return out;
}

Status CheckComponent(std::string_view what, std::string_view v) {
  if (v.empty()) return Status::InvalidArgument(std::string(what) + " is empty");
  if (v.size() > kMaxComponentBytes) {
    return Status::InvalidArgument(std::string(what) + " '" + Shown(v) + "' is longer than " +
                                   std::to_string(kMaxComponentBytes) + " bytes");
  }
  for (char c : v) {
    if (!AllowedChar(c)) {
      return Status::InvalidArgument(std::string(what) + " '" + Shown(v) +
                                     "' may only contain letters, digits and _ . + - "
                                     "(no path separators, ':', '=', ',', spaces or control "
                                     "characters)");
    }
  }
  return Status::OK();
}

Status CheckDate(std::string_view d) {
  const Status bad =
      Status::InvalidArgument("as_of_date '" + Shown(d) + "' is not a calendar date YYYY-MM-DD");
  if (d.size() != 10 || d[4] != '-' || d[7] != '-') return bad;
  for (std::size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (d[i] < '0' || d[i] > '9') return bad;
  }
  const auto t = ParseTime(d);
  // ParseTime may normalize 2024-02-30 into March: a round trip catches it.
  if (!t || FormatUtc(*t).substr(0, 10) != d) return bad;
  return Status::OK();
}

}  // namespace

Status ValidateFactorName(std::string_view factor) {
  MODELREG_RETURN_IF_ERROR(CheckComponent("factor_name", factor));
  // It names a directory: no ".", "..", or hidden names.
  if (factor.front() == '.') {
    return Status::InvalidArgument("factor_name '" + Shown(factor) + "' may not start with '.'");
  }
  return Status::OK();
}

Status ValidateDataset(std::string_view name, std::string_view version) {
  MODELREG_RETURN_IF_ERROR(CheckComponent("dataset name", name));
  return CheckComponent("version of dataset '" + std::string(name) + "'", version);
}

Status ValidateKey(const CacheKey& key) {
  MODELREG_RETURN_IF_ERROR(ValidateFactorName(key.factor_name));
  MODELREG_RETURN_IF_ERROR(CheckDate(key.as_of_date));
  if (key.dataset_versions.size() > kMaxDatasets) {
    return Status::InvalidArgument("more than " + std::to_string(kMaxDatasets) +
                                   " datasets in the version map");
  }
  for (const auto& [name, version] : key.dataset_versions) {
    MODELREG_RETURN_IF_ERROR(ValidateDataset(name, version));
  }
  MODELREG_RETURN_IF_ERROR(CheckComponent("snapshot_id", key.snapshot_id));
  return CheckComponent("config_hash", key.config_hash);
}

std::string DatasetVersionId(const VersionMap& versions) {
  // std::map iterates in byte order of the names: the canonical order.
  std::string out;
  for (const auto& [name, version] : versions) {
    if (!out.empty()) out += ',';
    out += name;
    out += '=';
    out += version;
  }
  return out;
}

Result<std::string> EncodeKey(const CacheKey& key) {
  MODELREG_RETURN_IF_ERROR(ValidateKey(key));
  return key.factor_name + ':' + key.as_of_date + ':' + DatasetVersionId(key.dataset_versions) +
         ':' + key.snapshot_id + ':' + key.config_hash;
}

std::string KeyHash(std::string_view encoded_key) { return ToHex(Sha256::Of(encoded_key)); }

}  // namespace modelreg::cache
