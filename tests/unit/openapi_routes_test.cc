// docs/openapi.json against the routes the HTTP server really registers
// (ApiServer::routes()), in both directions: a route the document does not
// describe fails, and so does a documented operation the server lacks.
//
// How a route and an OpenAPI path are matched (docs/api.md, "OpenAPI"):
//  - a route's name ("GET /api/v1/models/{type}", also its metrics label)
//    must be "METHOD PATH" with PATH a key of the document's "paths" and
//    METHOD one of its operations;
//  - its regular expression, with each group "(...)" replaced by "{}" and
//    each escape "\x" by x, must equal PATH with each "{name}" replaced by
//    "{}" (any other regex syntax outside a group is refused);
//  - PATH with each path parameter replaced by its documented "example"
//    must match the regular expression (so the examples are real paths);
//  - the operation's x-modelreg-scope is the scope the route checks
//    ("none": no token, and then "security": []).
// The schema itself is validated by tests/openapi/check_openapi.py.
#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "auth/token.h"
#include "registry/registry.h"
#include "server/api_server.h"
#include "server/openapi.h"
#include "support/openapi.h"
#include "support/run.h"
#include "support/temp_dir.h"

namespace modelreg {
namespace {

using nlohmann::json;
using server::RouteInfo;

const char* const kMethods[] = {"get", "put", "post", "delete", "options", "head", "patch", "trace"};

std::string DocPath() { return testing::EnvOr("MODELREG_DOCS", "docs") + "/openapi.json"; }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// "/api/v1/models/([^/]+)/current" -> "/api/v1/models/{}/current";
// nullopt for regex syntax other than groups and escapes.
std::optional<std::string> ShapeOfPattern(const std::string& re) {
  std::string out;
  int depth = 0;
  for (std::size_t i = 0; i < re.size(); ++i) {
    const char c = re[i];
    if (c == '\\') {
      if (++i == re.size()) return std::nullopt;
      if (depth == 0) out += re[i];
    } else if (c == '(') {
      if (depth++ == 0) out += "{}";
    } else if (c == ')') {
      if (depth-- == 0) return std::nullopt;
    } else if (depth == 0) {
      if (std::string_view(".*+?[]{}^$|").find(c) != std::string_view::npos) return std::nullopt;
      out += c;
    }
  }
  if (depth != 0) return std::nullopt;
  return out;
}

// "/api/v1/models/{type}/current" -> "/api/v1/models/{}/current".
std::string ShapeOfTemplate(const std::string& t) {
  return std::regex_replace(t, std::regex(R"(\{[^{}]*\})"), "{}");
}

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// The path parameters of an operation (path level and operation level),
// with their examples ("" when missing).
std::map<std::string, std::string> PathExamples(const json& doc, const json& item, const json& op) {
  std::map<std::string, std::string> out;
  for (const json* list : {&item, &op}) {
    if (!list->contains("parameters")) continue;
    for (json p : (*list)["parameters"]) {
      if (p.contains("$ref")) {
        // "#/components/parameters/NAME"
        const std::string ref = p["$ref"].get<std::string>();
        const std::string prefix = "#/components/parameters/";
        if (ref.rfind(prefix, 0) != 0) continue;
        p = doc["components"]["parameters"].value(ref.substr(prefix.size()), json::object());
      }
      if (p.value("in", "") != "path") continue;
      out[p.value("name", "")] =
          p.contains("example") && p["example"].is_string() ? p["example"].get<std::string>() : "";
    }
  }
  return out;
}

// Every disagreement between the routes and the document, one line each.
std::vector<std::string> Compare(const std::vector<RouteInfo>& routes, const json& doc) {
  std::vector<std::string> problems;
  const json& paths = doc.at("paths");
  std::set<std::string> served;  // "METHOD PATH"
  for (const RouteInfo& r : routes) {
    const std::string what = r.method + " " + r.pattern + " (" + r.name + ")";
    if (!served.insert(r.name).second) problems.push_back(what + ": registered twice");
    if (r.name.rfind(r.method + " ", 0) != 0) {
      problems.push_back(what + ": its name does not start with its method");
      continue;
    }
    const std::string path = r.name.substr(r.method.size() + 1);
    if (!paths.contains(path)) {
      problems.push_back(what + ": not documented: no path " + path + " in the OpenAPI document");
      continue;
    }
    const json& item = paths[path];
    const std::string method = [&] {
      std::string m = r.method;
      for (char& c : m) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      return m;
    }();
    if (!item.contains(method)) {
      problems.push_back(what + ": not documented: path " + path + " has no " + method + " operation");
      continue;
    }
    const json& op = item[method];
    const auto shape = ShapeOfPattern(r.pattern);
    if (!shape) {
      problems.push_back(what + ": the pattern uses regex syntax other than groups and escapes");
    } else if (*shape != ShapeOfTemplate(path)) {
      problems.push_back(what + ": the pattern's shape " + *shape + " differs from the path's " +
                         ShapeOfTemplate(path));
    }
    std::string sample = path;
    for (const auto& [name, example] : PathExamples(doc, item, op)) {
      if (example.empty()) problems.push_back(what + ": path parameter " + name + " has no example");
      const std::string token = "{" + name + "}";
      for (std::size_t at; (at = sample.find(token)) != std::string::npos;) sample.replace(at, token.size(), example);
    }
    if (!std::regex_match(sample, std::regex(r.pattern))) {
      problems.push_back(what + ": does not match the documented example path " + sample);
    }
    const std::string scope = r.scope.empty() ? "none" : r.scope;
    if (op.value("x-modelreg-scope", "") != scope) {
      problems.push_back(what + ": needs " + scope + ", documented as " + op.value("x-modelreg-scope", "nothing"));
    }
  }
  for (const auto& [path, item] : paths.items()) {
    for (const char* m : kMethods) {
      if (item.contains(m) && served.count(Upper(m) + " " + path) == 0) {
        problems.push_back(Upper(m) + " " + path + ": documented, but the server has no such route");
      }
    }
  }
  return problems;
}

std::string Join(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

// The routes of a real server on a real registry (not bound to a port:
// the routes are registered by Create).
std::vector<RouteInfo> ServerRoutes() {
  testing::TempDir dir;
  registry::RegistryOptions ro;
  ro.root = dir.sub("reg");
  ro.create_if_missing = true;
  auto reg = registry::Registry::Open(ro);
  EXPECT_TRUE(reg) << reg.error().ToString();
  if (!reg) return {};
  auto verifier = auth::TokenVerifier::Create(
      auth::VerifierConfig{"0123456789abcdef0123456789abcdef-test-secret", "", "", "", true,
                           &SystemClock::Instance()});
  EXPECT_TRUE(verifier) << verifier.error().ToString();
  if (!verifier) return {};
  server::ServerOptions so;
  so.port = 0;
  auto srv = server::ApiServer::Create(**reg, std::move(*verifier), so);
  EXPECT_TRUE(srv) << srv.error().ToString();
  if (!srv) return {};
  return (*srv)->routes();
}

json Document() {
  const std::string text = ReadFile(DocPath());
  EXPECT_FALSE(text.empty()) << "cannot read " << DocPath();
  return json::parse(text);
}

TEST(OpenApi, DocumentDescribesExactlyTheServersRoutes) {
  const std::vector<RouteInfo> routes = ServerRoutes();
  // Every route of src/server/api_server.cc, the document's included.
  ASSERT_GE(routes.size(), 24u);
  const std::vector<std::string> problems = Compare(routes, Document());
  EXPECT_TRUE(problems.empty()) << Join(problems);
}

TEST(OpenApi, TheComparisonCatchesEveryKindOfDrift) {
  const std::vector<RouteInfo> routes = ServerRoutes();
  const json doc = Document();
  ASSERT_TRUE(Compare(routes, doc).empty());
  auto expect_problem = [](const std::vector<std::string>& found, const std::string& part) {
    EXPECT_TRUE(std::any_of(found.begin(), found.end(),
                            [&](const std::string& p) { return p.find(part) != std::string::npos; }))
        << "expected a problem with '" << part << "', got:\n"
        << Join(found);
  };

  // A route the document lacks (here: a whole path removed).
  json missing = doc;
  missing["paths"].erase("/api/v1/audit");
  expect_problem(Compare(routes, missing), "GET /api/v1/audit): not documented");
  // One operation of a path removed.
  json no_put = doc;
  no_put["paths"]["/api/v1/policy"].erase("put");
  expect_problem(Compare(routes, no_put), "has no put operation");
  // A documented operation the server does not have.
  json extra = doc;
  extra["paths"]["/api/v1/policy"]["delete"] = doc["paths"]["/api/v1/policy"]["put"];
  expect_problem(Compare(routes, extra), "DELETE /api/v1/policy: documented, but the server has no such route");
  // The wrong scope.
  json scope = doc;
  scope["paths"]["/api/v1/models/{type}/{version}/promote"]["post"]["x-modelreg-scope"] = "model:read";
  expect_problem(Compare(routes, scope), "needs model:write, documented as model:read");
  // An example path the route does not match (versions start with v).
  json example = doc;
  example["components"]["parameters"]["version"]["example"] = "1.0.0";
  expect_problem(Compare(routes, example), "does not match the documented example path");

  // Routes that drift from the document.
  std::vector<RouteInfo> more = routes;
  more.push_back(RouteInfo{"DELETE", "/api/v1/models/([^/]+)", "DELETE /api/v1/models/{type}", "model:admin"});
  expect_problem(Compare(more, doc), "not documented: path /api/v1/models/{type} has no delete operation");
  std::vector<RouteInfo> shape = routes;
  for (RouteInfo& r : shape) {
    if (r.name == "GET /api/v1/models/{type}/current") r.pattern = "/api/v1/models/([^/]+)/([^/]+)/current";
  }
  expect_problem(Compare(shape, doc), "differs from the path's /api/v1/models/{}/current");
  std::vector<RouteInfo> fewer;
  for (const RouteInfo& r : routes) {
    if (r.name != "GET /api/v1/diff") fewer.push_back(r);
  }
  expect_problem(Compare(fewer, doc), "GET /api/v1/diff: documented, but the server has no such route");
}

TEST(OpenApi, PatternsBecomeTemplatesByADocumentedRule) {
  EXPECT_EQ(ShapeOfPattern("/api/v1/models/([^/]+)/([^/]+)/artifact"), "/api/v1/models/{}/{}/artifact");
  EXPECT_EQ(ShapeOfPattern("/api/v1/models/([^/]+)/(v[^/]*)"), "/api/v1/models/{}/{}");
  EXPECT_EQ(ShapeOfPattern(R"(/api/v1/openapi\.json)"), "/api/v1/openapi.json");
  EXPECT_EQ(ShapeOfTemplate("/api/v1/models/{type}/consumers/{id}/ack"), "/api/v1/models/{}/consumers/{}/ack");
  // An unescaped '.' matches any character: not a literal path.
  EXPECT_EQ(ShapeOfPattern("/api/v1/openapi.json"), std::nullopt);
  EXPECT_EQ(ShapeOfPattern("/api/v1/models/.*"), std::nullopt);
  EXPECT_EQ(ShapeOfPattern("/api/v1/models/([^/]+"), std::nullopt);
  EXPECT_EQ(ShapeOfPattern("/api/v1/models)"), std::nullopt);
}

// The answer checker of the http_api suite (support/openapi.h) refuses
// what the document does not allow.
TEST(OpenApi, TheAnswerCheckerFindsWhatTheDocumentDoesNotAllow) {
  const testing::OpenApiDoc doc(Document());
  auto problems = [&](const std::string& method, const std::string& path, int status,
                      const std::string& type, const json& body) {
    return Join(doc.CheckAnswer(method, path, status, type, body.dump()));
  };
  const json write{{"seq", 4}, {"summary", "promoted risk_model v1.0.0"}};
  const std::string promote = "/api/v1/models/{type}/{version}/promote";
  EXPECT_EQ(problems("POST", promote, 200, "application/json", write), "");
  EXPECT_NE(problems("POST", promote, 200, "application/json", json{{"seq", 4}}).find("required summary is missing"),
            std::string::npos);
  EXPECT_NE(problems("POST", promote, 200, "application/json", json{{"seq", "4"}, {"summary", ""}})
                .find("is not an integer"),
            std::string::npos);
  EXPECT_NE(problems("POST", promote, 200, "application/json", json{{"seq", -1}, {"summary", ""}}).find("is below 0"),
            std::string::npos);
  EXPECT_NE(problems("POST", promote, 200, "text/plain", write).find("Content-Type text/plain is not documented"),
            std::string::npos);
  EXPECT_NE(problems("POST", promote, 201, "application/json", write).find("status not documented"),
            std::string::npos);
  EXPECT_NE(problems("DELETE", promote, 200, "application/json", write).find("no such operation"), std::string::npos);
  // Errors: listed or under "default", always the error object.
  const json error{{"error", {{"code", "conflict"}, {"message", "m"}}}};
  EXPECT_EQ(problems("POST", promote, 409, "application/json", error), "");
  EXPECT_EQ(problems("POST", promote, 507, "application/json", error), "");
  EXPECT_NE(problems("POST", promote, 507, "application/json", json{{"message", "m"}}).find("required error"),
            std::string::npos);
  // Nested: a list's records, enums, nullability, patterns.
  const json record{{"model_type", "risk_model"}, {"version", "v1.0.0"}, {"status", "staged"},
                    {"artifact_kind", "file"}, {"artifact_path", "artifacts/risk_model/v1.0.0/m"},
                    {"effective_metrics", json::object()}};
  const json list{{"model_type", nullptr}, {"at", nullptr}, {"versions", {record}}, {"next", nullptr}};
  EXPECT_EQ(problems("GET", "/api/v1/models", 200, "application/json", list), "");
  json bad = list;
  bad["versions"][0]["status"] = "live";
  EXPECT_NE(problems("GET", "/api/v1/models", 200, "application/json", bad).find("/versions/0/status: \"live\" is not one of"),
            std::string::npos);
  bad = list;
  bad["versions"][0]["model_type"] = "Risk";
  EXPECT_NE(problems("GET", "/api/v1/models", 200, "application/json", bad).find("does not match"), std::string::npos);
  bad = list;
  bad["versions"][0]["version"] = nullptr;
  EXPECT_NE(problems("GET", "/api/v1/models", 200, "application/json", bad).find("null, not nullable"),
            std::string::npos);
  bad = list;
  bad["versions"][0]["colour"] = "red";  // a field the document does not name
  EXPECT_NE(problems("GET", "/api/v1/models", 200, "application/json", bad).find("colour is not in the document"),
            std::string::npos);
  json registered = record;
  registered["already_registered"] = true;  // allOf: Record's fields and its own
  EXPECT_EQ(problems("POST", "/api/v1/models/{type}/{version}", 201, "application/json", registered), "");
  registered["colour"] = "red";
  EXPECT_NE(problems("POST", "/api/v1/models/{type}/{version}", 201, "application/json", registered)
                .find("colour is not in the document"),
            std::string::npos);
  bad = list;
  bad["versions"][0]["effective_metrics"]["ic"] = "high";
  EXPECT_NE(problems("GET", "/api/v1/models", 200, "application/json", bad).find("effective_metrics/ic"),
            std::string::npos);
}

TEST(OpenApi, TheEmbeddedDocumentIsTheRepositoryFile) {
  const std::string file = ReadFile(DocPath());
  ASSERT_FALSE(file.empty());
  const std::string_view embedded = server::OpenApiDocument();
  EXPECT_TRUE(embedded == file) << "the embedded document (" << embedded.size()
                                << " bytes) differs from docs/openapi.json (" << file.size()
                                << " bytes): the build embeds the file, rebuild";
}

}  // namespace
}  // namespace modelreg
