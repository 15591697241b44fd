#include "model/naming.h"

#include <cctype>
#include <string>
#include <vector>

namespace modelreg::model {

namespace {

bool IsNumeric(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (;;) {
    const std::size_t pos = s.find(sep, start);
    parts.push_back(s.substr(start, pos == std::string_view::npos ? pos : pos - start));
    if (pos == std::string_view::npos) return parts;
    start = pos + 1;
  }
}

struct Parsed {
  std::vector<std::string_view> core;  // 3 numbers
  std::vector<std::string_view> pre;   // pre-release identifiers
};

bool Parse(std::string_view v, Parsed* out) {
  if (v.size() < 6 || v.size() > 64 || v[0] != 'v') return false;
  v.remove_prefix(1);
  std::string_view core = v, pre;
  if (auto dash = v.find('-'); dash != std::string_view::npos) {
    core = v.substr(0, dash);
    pre = v.substr(dash + 1);
    if (pre.empty()) return false;
  }
  out->core = Split(core, '.');
  if (out->core.size() != 3) return false;
  for (auto n : out->core) {
    if (!IsNumeric(n) || n.size() > 9 || (n.size() > 1 && n[0] == '0')) return false;
  }
  out->pre.clear();
  if (!pre.empty()) {
    out->pre = Split(pre, '.');
    for (auto id : out->pre) {
      if (id.empty()) return false;
      for (char c : id) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
      }
      if (IsNumeric(id) && id.size() > 1 && id[0] == '0') return false;
    }
  }
  return true;
}

int CompareNumeric(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
  return a.compare(b) < 0 ? -1 : (a == b ? 0 : 1);
}

}  // namespace

Status ValidateModelType(std::string_view type) {
  auto refuse = [&type](const std::string& why) {
    std::string shown;
    for (char c : type.substr(0, 80)) {
      const auto u = static_cast<unsigned char>(c);
      if (u < 0x20 || u >= 0x7f) {
        static const char* const kHex = "0123456789abcdef";
        shown += "\\x";
        shown += kHex[u >> 4];
        shown += kHex[u & 15];
      } else {
        shown += c;
      }
    }
    if (type.size() > 80) shown += "...";
    return Status::InvalidArgument("invalid model name '" + shown + "' (" + why +
                                   "): a model name is " + kModelTypeGrammar);
  };
  if (type.empty()) return refuse("empty");
  if (type.size() > kMaxModelTypeBytes) {
    return refuse(std::to_string(type.size()) + " characters");
  }
  if (type[0] < 'a' || type[0] > 'z') return refuse("does not start with a lowercase letter");
  for (char c : type) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return refuse("contains a character other than a-z, 0-9, '_' and '-'");
  }
  if (type == "default") return refuse("reserved");
  return Status::OK();
}

bool IsWellKnownType(std::string_view type) {
  for (auto t : kModelTypes) {
    if (t == type) return true;
  }
  return false;
}

Status ValidateVersion(std::string_view version) {
  Parsed p;
  if (!Parse(version, &p)) {
    return Status::InvalidArgument("'" + std::string(version) +
                                   "' is not a version: use a semantic version with a v prefix, "
                                   "like v1.2.0 or v2.0.0-rc.1");
  }
  return Status::OK();
}

int CompareVersions(std::string_view a, std::string_view b) {
  Parsed pa, pb;
  if (!Parse(a, &pa) || !Parse(b, &pb)) return a.compare(b);
  for (int i = 0; i < 3; ++i) {
    if (int c = CompareNumeric(pa.core[i], pb.core[i]); c != 0) return c;
  }
  if (pa.pre.empty() || pb.pre.empty()) {
    if (pa.pre.empty() && pb.pre.empty()) return 0;
    return pa.pre.empty() ? 1 : -1;  // a release outranks its pre-releases
  }
  for (std::size_t i = 0; i < pa.pre.size() && i < pb.pre.size(); ++i) {
    const bool na = IsNumeric(pa.pre[i]), nb = IsNumeric(pb.pre[i]);
    int c;
    if (na && nb) {
      c = CompareNumeric(pa.pre[i], pb.pre[i]);
    } else if (na != nb) {
      c = na ? -1 : 1;  // numeric identifiers have lower precedence
    } else {
      c = pa.pre[i].compare(pb.pre[i]) < 0 ? -1 : (pa.pre[i] == pb.pre[i] ? 0 : 1);
    }
    if (c != 0) return c;
  }
  if (pa.pre.size() == pb.pre.size()) return 0;
  return pa.pre.size() < pb.pre.size() ? -1 : 1;
}

}  // namespace modelreg::model
