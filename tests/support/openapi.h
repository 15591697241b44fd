// Checks HTTP answers against docs/openapi.json (docs/api.md, "OpenAPI"):
// the status is one the operation documents (a 2xx must be listed; an
// error may fall under "default"), the Content-Type is one that answer
// lists, and a JSON body satisfies its schema.
//
// The schema check covers the part of OpenAPI 3.0's schema language the
// document uses: $ref (local), allOf, nullable, type, enum, required,
// properties, additionalProperties (false or a schema), items, pattern,
// minimum, maximum, minLength. Anything else in a schema is ignored.
// Stricter than OpenAPI on one point: an object schema with "properties"
// and no "additionalProperties" (its own or its allOf parts') is closed,
// so that a field the server sends but the document does not name fails.
#pragma once

#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/run.h"

namespace modelreg::testing {

class OpenApiDoc {
 public:
  explicit OpenApiDoc(nlohmann::json doc) : doc_(std::move(doc)) {}

  static std::string Path() { return EnvOr("MODELREG_DOCS", "docs") + "/openapi.json"; }
  static OpenApiDoc Load() {
    std::ifstream in(Path(), std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return OpenApiDoc(nlohmann::json::parse(text.str(), nullptr, false));
  }
  const nlohmann::json& json() const { return doc_; }

  // Problems with an answer to `METHOD path_template` (empty: none).
  std::vector<std::string> CheckAnswer(const std::string& method, const std::string& path_template,
                                       int status, const std::string& content_type,
                                       const std::string& body) const {
    std::vector<std::string> out;
    const std::string what = method + " " + path_template + " " + std::to_string(status);
    std::string m = method;
    for (char& c : m) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const nlohmann::json* op = Find({"paths", path_template, m});
    if (op == nullptr) return {what + ": no such operation in the document"};
    const nlohmann::json& responses = (*op)["responses"];
    const std::string code = std::to_string(status);
    nlohmann::json response;
    if (responses.contains(code)) {
      response = Deref(responses[code]);
    } else if (status >= 300 && responses.contains("default")) {
      response = Deref(responses["default"]);
    } else {
      return {what + ": status not documented"};
    }
    if (!response.contains("content")) {
      if (!body.empty()) out.push_back(what + ": a body where the document has none");
      return out;
    }
    const std::string type = content_type.substr(0, content_type.find(';'));
    if (!response["content"].contains(type)) {
      return {what + ": Content-Type " + content_type + " is not documented"};
    }
    if (type != "application/json") return out;
    const nlohmann::json value = nlohmann::json::parse(body, nullptr, false);
    if (value.is_discarded()) return {what + ": the body is not JSON"};
    const nlohmann::json& media = response["content"][type];
    if (media.contains("schema")) CheckValue(media["schema"], value, what + " body", &out);
    return out;
  }

  // Problems of `value` against `schema`, each naming where (`at`).
  void CheckValue(const nlohmann::json& schema_in, const nlohmann::json& value, const std::string& at,
                  std::vector<std::string>* out, bool part_of_all_of = false) const {
    const nlohmann::json schema = Deref(schema_in);
    if (value.is_null()) {
      // nullable may sit beside an allOf (a nullable reference).
      if (!schema.value("nullable", false)) out->push_back(at + ": null, not nullable");
      return;
    }
    if (schema.contains("allOf")) {
      for (const nlohmann::json& s : schema["allOf"]) CheckValue(s, value, at, out, true);
    }
    const std::string type = schema.value("type", "");
    auto wrong = [&](const char* expected) {
      out->push_back(at + ": " + value.dump().substr(0, 80) + " is not " + expected);
    };
    if (type == "object" && !value.is_object()) return wrong("an object");
    if (type == "array" && !value.is_array()) return wrong("an array");
    if (type == "string" && !value.is_string()) return wrong("a string");
    if (type == "boolean" && !value.is_boolean()) return wrong("a boolean");
    if (type == "integer" && !value.is_number_integer()) return wrong("an integer");
    if (type == "number" && !value.is_number()) return wrong("a number");
    if (schema.contains("enum")) {
      bool found = false;
      for (const nlohmann::json& e : schema["enum"]) found = found || e == value;
      if (!found) out->push_back(at + ": " + value.dump() + " is not one of " + schema["enum"].dump());
    }
    if (value.is_string()) {
      const std::string s = value.get<std::string>();
      if (schema.contains("pattern") &&
          !std::regex_search(s, std::regex(schema["pattern"].get<std::string>()))) {
        out->push_back(at + ": \"" + s + "\" does not match " + schema["pattern"].get<std::string>());
      }
      if (schema.contains("minLength") && s.size() < schema["minLength"].get<std::size_t>()) {
        out->push_back(at + ": shorter than " + schema["minLength"].dump());
      }
    }
    if (value.is_number()) {
      const double d = value.get<double>();
      if (schema.contains("minimum") && d < schema["minimum"].get<double>()) {
        out->push_back(at + ": " + value.dump() + " is below " + schema["minimum"].dump());
      }
      if (schema.contains("maximum") && d > schema["maximum"].get<double>()) {
        out->push_back(at + ": " + value.dump() + " is above " + schema["maximum"].dump());
      }
    }
    if (value.is_array() && schema.contains("items")) {
      for (std::size_t i = 0; i < value.size(); ++i) {
        CheckValue(schema["items"], value[i], at + "/" + std::to_string(i), out);
      }
    }
    if (value.is_object()) {
      for (const nlohmann::json& key : schema.value("required", nlohmann::json::array())) {
        if (!value.contains(key.get<std::string>())) {
          out->push_back(at + ": required " + key.get<std::string>() + " is missing");
        }
      }
      const nlohmann::json props = schema.value("properties", nlohmann::json::object());
      for (const auto& [key, v] : value.items()) {
        if (props.contains(key)) {
          CheckValue(props[key], v, at + "/" + key, out);
        } else if (schema.contains("additionalProperties")) {
          const nlohmann::json& extra = schema["additionalProperties"];
          if (extra.is_boolean() && !extra.get<bool>()) {
            out->push_back(at + ": " + key + " is not a documented property");
          } else if (extra.is_object()) {
            CheckValue(extra, v, at + "/" + key, out);
          }
        }
      }
      // Closed unless said otherwise: every key named by the schema or its
      // allOf parts.
      std::set<std::string> named;
      if (!part_of_all_of && Named(schema, &named)) {
        for (const auto& item : value.items()) {
          if (named.count(item.key()) == 0) {
            out->push_back(at + ": " + item.key() + " is not in the document");
          }
        }
      }
    }
  }

 private:
  // Adds the property names of `schema` and its allOf parts; false when
  // the object is open (no properties anywhere, or additionalProperties).
  bool Named(const nlohmann::json& schema_in, std::set<std::string>* names) const {
    const nlohmann::json schema = Deref(schema_in);
    if (schema.contains("additionalProperties")) return false;
    bool closed = schema.contains("properties");
    const nlohmann::json props = schema.value("properties", nlohmann::json::object());
    for (const auto& item : props.items()) names->insert(item.key());
    for (const nlohmann::json& s : schema.value("allOf", nlohmann::json::array())) {
      if (!Named(s, names)) return false;
      closed = true;
    }
    return closed;
  }

  const nlohmann::json* Find(const std::vector<std::string>& keys) const {
    const nlohmann::json* node = &doc_;
    for (const std::string& k : keys) {
      if (!node->is_object() || !node->contains(k)) return nullptr;
      node = &(*node)[k];
    }
    return node;
  }
  // Follows "$ref": "#/a/b" until a node without one.
  nlohmann::json Deref(nlohmann::json node) const {
    for (int hops = 0; node.is_object() && node.contains("$ref") && hops < 16; ++hops) {
      const std::string ref = node["$ref"].get<std::string>();
      std::vector<std::string> keys;
      std::stringstream parts(ref.substr(ref.find('/') + 1));
      for (std::string k; std::getline(parts, k, '/');) keys.push_back(k);
      const nlohmann::json* target = Find(keys);
      if (target == nullptr) return nlohmann::json::object();  // check_openapi.py reports it
      node = *target;
    }
    return node;
  }

  nlohmann::json doc_;
};

}  // namespace modelreg::testing
