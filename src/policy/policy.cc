#include "policy/policy.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <toml++/toml.h>

#include "common/decimal.h"
#include "model/naming.h"

namespace modelreg::policy {

namespace {

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

bool Compare(double observed, const std::string& op, double threshold) {
  if (op == ">") return observed > threshold;
  if (op == ">=") return observed >= threshold;
  if (op == "<") return observed < threshold;
  return observed <= threshold;  // "<="
}

// "> 0.02" -> GateSpec; nullopt + error message otherwise.
std::optional<GateSpec> ParseGate(const std::string& name, const std::string& text,
                                  std::string* error) {
  std::istringstream in(text);
  std::string op, number, extra;
  in >> op >> number >> extra;
  if (op != ">" && op != ">=" && op != "<" && op != "<=") {
    *error = "gate '" + name + "' must look like \"> 0.02\" (operator >, >=, < or <=), got \"" +
             text + "\"";
    return std::nullopt;
  }
  // The number: the CLI's strict decimal grammar (common/decimal.h).
  const std::optional<double> v = ParseDecimal(number);
  if (!v || !extra.empty()) {
    *error = "gate '" + name + "' needs " + std::string(kDecimalGrammarHint) + " after " + op +
             ", got \"" + text + "\"";
    return std::nullopt;
  }
  return GateSpec{name, op, *v};
}

void SetGate(TypePolicy& p, GateSpec g) {
  for (auto& existing : p.gates) {
    if (existing.name == g.name) {
      existing = std::move(g);
      return;
    }
  }
  p.gates.push_back(std::move(g));
  std::sort(p.gates.begin(), p.gates.end(),
            [](const GateSpec& a, const GateSpec& b) { return a.name < b.name; });
}

void RemoveGate(TypePolicy& p, const std::string& name) {
  std::erase_if(p.gates, [&name](const GateSpec& g) { return g.name == name; });
}

// Applies one [table] onto `p`. Errors name source:line.
Status ApplyTable(const toml::table& table, const std::string& source, TypePolicy& p) {
  for (const auto& [key, node] : table) {
    const std::string name(key.str());
    const std::string where = source + ":" + std::to_string(node.source().begin.line);
    if (name == "validator") {
      const toml::table* t = node.as_table();
      if (t == nullptr) {
        return Status::InvalidArgument(where + ": validator must be a table like "
                                               "{ command = [\"python3\", \"check.py\"] }");
      }
      ValidatorSpec v;
      const toml::array* cmd = (*t)["command"].as_array();
      if (cmd == nullptr || cmd->empty()) {
        return Status::InvalidArgument(where + ": validator.command must be a non-empty array "
                                               "of strings");
      }
      for (const auto& part : *cmd) {
        auto s = part.value<std::string>();
        if (!s || s->empty()) {
          return Status::InvalidArgument(where + ": validator.command must hold strings");
        }
        v.command.push_back(*s);
      }
      if (auto timeout = (*t)["timeout_seconds"]; timeout) {
        auto secs = timeout.value<std::int64_t>();
        if (!secs || *secs < 1 || *secs > 3600) {
          return Status::InvalidArgument(where + ": validator.timeout_seconds must be 1..3600");
        }
        v.timeout_seconds = static_cast<int>(*secs);
      }
      for (const auto& [k, unused] : *t) {
        if (k.str() != "command" && k.str() != "timeout_seconds") {
          return Status::InvalidArgument(where + ": unknown validator key '" +
                                         std::string(k.str()) + "'");
        }
      }
      p.validator = std::move(v);
    } else if (name == "compatibility") {
      const toml::table* t = node.as_table();
      if (t == nullptr) {
        return Status::InvalidArgument(
            where + ": compatibility must be a table like "
                    "{ current_versions_file = \"datasets.json\", strict = true }");
      }
      CompatibilitySpec c;
      auto file = (*t)["current_versions_file"].value<std::string>();
      if (!file || file->empty()) {
        return Status::InvalidArgument(where + ": compatibility.current_versions_file is "
                                               "required");
      }
      c.current_versions_file = *file;
      if (auto strict = (*t)["strict"]; strict) {
        auto b = strict.value<bool>();
        if (!b) return Status::InvalidArgument(where + ": compatibility.strict must be a boolean");
        c.strict = *b;
      }
      for (const auto& [k, unused] : *t) {
        if (k.str() != "current_versions_file" && k.str() != "strict") {
          return Status::InvalidArgument(where + ": unknown compatibility key '" +
                                         std::string(k.str()) + "'");
        }
      }
      p.compatibility = std::move(c);
    } else {
      auto text = node.value<std::string>();
      if (!text) {
        return Status::InvalidArgument(where + ": gate '" + name +
                                       "' must be a string like \"> 0.02\" or \"off\"");
      }
      if (*text == "off") {
        RemoveGate(p, name);
        continue;
      }
      std::string error;
      auto gate = ParseGate(name, *text, &error);
      if (!gate) return Status::InvalidArgument(where + ": " + error);
      SetGate(p, std::move(*gate));
    }
  }
  return Status::OK();
}

}  // namespace

std::string TypePolicy::Describe() const {
  std::string out;
  for (const GateSpec& g : gates) {
    if (!out.empty()) out += ", ";
    out += g.name + " " + g.op + " " + Num(g.threshold);
  }
  if (out.empty()) out = "no gates";
  if (validator) {
    out += "; validator:";
    for (const auto& part : validator->command) out += " " + part;
    out += " (" + std::to_string(validator->timeout_seconds) + " s)";
  }
  if (compatibility) {
    out += "; compatibility with " + compatibility->current_versions_file +
           (compatibility->strict ? " (strict)" : " (drift allowed)");
  }
  return out;
}

const TypePolicy& Policy::For(const std::string& type) const {
  auto it = types.find(type);
  return it == types.end() ? defaults : it->second;
}

std::string Policy::DescribeFor(const std::string& type) const {
  std::string out = source;
  if (!digest.empty()) out += " (sha256 " + digest.substr(0, 12) + ")";
  return out + ": " + For(type).Describe();
}

Policy DefaultPolicy() {
  Policy p;
  p.source = "built-in defaults";
  p.defaults.gates = {{"ic", ">", 0.02}, {kPaperTradingGate, ">=", 24}, {"sharpe", ">", 0.5}};
  return p;
}

Result<Policy> ParsePolicy(const std::string& text, const std::string& source) {
  Policy p = DefaultPolicy();
  p.source = source;
  p.digest = ToHex(Sha256::Of(text));
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    return Err(Status::InvalidArgument(source + ":" + std::to_string(e.source().begin.line) +
                                       ": " + std::string(e.description())));
  }
  if (const toml::table* d = root["default"].as_table()) {
    MODELREG_RETURN_IF_ERROR(ApplyTable(*d, source, p.defaults));
  }
  for (const auto& [key, node] : root) {
    const std::string name(key.str());
    const std::string where = source + ":" + std::to_string(node.source().begin.line);
    if (name == "default") {
      if (!node.is_table()) {
        return Err(Status::InvalidArgument(where + ": 'default' must be a table ([default])"));
      }
      continue;
    }
    // Any valid model name is a section, registered yet or not (a policy
    // may be written before the first registration of its model): a
    // misspelt name is a section nobody uses, not an error.
    const toml::table* t = node.as_table();
    if (t == nullptr) {
      return Err(Status::InvalidArgument(where + ": '" + name +
                                         "' must be a table ([default] or [MODEL_NAME])"));
    }
    if (Status st = model::ValidateModelType(name); !st.ok()) {
      return Err(Status::InvalidArgument(where + ": '" + name +
                                         "' is neither [default] nor a model name section (" +
                                         st.message() + ")"));
    }
    TypePolicy tp = p.defaults;
    MODELREG_RETURN_IF_ERROR(ApplyTable(*t, source, tp));
    p.types[name] = std::move(tp);
  }
  return p;
}

std::string PolicyFilePath(const std::string& root) {
  return (std::filesystem::path(root) / "policy.toml").string();
}

Result<std::optional<std::string>> ReadPolicyFile(const std::string& root) {
  const std::string path = PolicyFilePath(root);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::optional<std::string>();
  std::ifstream in(path, std::ios::binary);
  if (!in) return Err(Status::IOError("cannot read " + path));
  std::stringstream ss;
  ss << in.rdbuf();
  if (ss.str().size() > (1u << 20)) return Err(Status::InvalidArgument(path + " is over 1 MiB"));
  return std::optional<std::string>(ss.str());
}

Result<Policy> LoadPolicy(const std::string& root) {
  auto text = ReadPolicyFile(root);
  if (!text) return Err(text.error());
  if (!*text) return DefaultPolicy();
  return ParsePolicy(**text, PolicyFilePath(root));
}

std::vector<events::Gate> EvaluateGates(const TypePolicy& policy,
                                        const std::map<std::string, double>& metrics,
                                        TimeNs registered_at, TimeNs now) {
  std::vector<events::Gate> out;
  for (const GateSpec& spec : policy.gates) {
    events::Gate g;
    g.name = spec.name;
    g.comparison = spec.op;
    g.threshold = spec.threshold;
    if (spec.name == kPaperTradingGate) {
      g.has_observed = true;
      g.observed = static_cast<double>(now - registered_at) / 3.6e12;
    } else if (auto it = metrics.find(spec.name); it != metrics.end()) {
      g.has_observed = true;
      g.observed = it->second;
    }
    if (!g.has_observed) {
      g.passed = false;
      g.detail = "metric '" + spec.name + "' missing: the model does not report it";
    } else if (spec.name == kPaperTradingGate) {
      // Exact nanoseconds, not the rounded hours, decide the boundary.
      const double needed_ns = spec.threshold * 3.6e12;
      g.passed = Compare(static_cast<double>(now - registered_at), spec.op, needed_ns);
    } else {
      g.passed = Compare(g.observed, spec.op, spec.threshold);
    }
    out.push_back(std::move(g));
  }
  return out;
}

std::string DescribeFailures(const std::vector<events::Gate>& gates) {
  std::string out;
  for (const events::Gate& g : gates) {
    if (g.passed) continue;
    if (!out.empty()) out += "; ";
    if (!g.detail.empty() && g.name == "dataset_compatibility") {
      out += g.name + ": " + g.detail;
    } else if (!g.has_observed) {
      out += g.name + ": metric missing (needs " + g.comparison + " " + Num(g.threshold) + ")";
    } else if (g.name == kPaperTradingGate) {
      // Truncated, not rounded: 23.99999 h must not print as "24 is not >= 24".
      out += g.name + ": " + Num(std::floor(g.observed * 1e4) / 1e4) + " is not " +
             g.comparison + " " + Num(g.threshold);
    } else {
      out += g.name + ": " + Num(g.observed) + " is not " + g.comparison + " " +
             Num(g.threshold);
    }
  }
  return out;
}

}  // namespace modelreg::policy
