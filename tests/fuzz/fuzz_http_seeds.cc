// Writes the seed corpus for fuzz_http into DIR: valid requests to every
// kind of route (reads with and without a token, JSON writes, a multipart
// registration with Content-Length, chunked and with Expect: 100-continue,
// a ranged artifact download, pipelined keep-alive requests) and a few
// that the connection layer refuses. "$TOKEN" stands for a valid token
// (fuzz_http substitutes it).
// Usage: fuzz_http_seeds DIR
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace {

const std::string kAuth = "Authorization: Bearer $TOKEN\r\n";

std::string Get(const std::string& path, bool auth = true) {
  return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + (auth ? kAuth : "") + "\r\n";
}

std::string PostJson(const std::string& path, const std::string& body) {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + kAuth +
         "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

std::string Multipart(const std::string& boundary) {
  return "--" + boundary +
         "\r\nContent-Disposition: form-data; name=\"artifact\"; filename=\"model.pkl\"\r\n"
         "Content-Type: application/octet-stream\r\n\r\nweights of v1.1.0\r\n--" +
         boundary +
         "\r\nContent-Disposition: form-data; name=\"metadata\"\r\n"
         "Content-Type: application/json\r\n\r\n"
         "{\"metrics\": {\"ic\": 0.05, \"sharpe\": 1.2}, \"dataset_version_ids\": {\"crsp\": \"v1\"}}\r\n--" +
         boundary + "--\r\n";
}

std::string Upload(const std::string& extra_headers, bool chunked) {
  const std::string boundary = "fuzzboundary123";
  const std::string body = Multipart(boundary);
  std::string head = "POST /api/v1/models/risk_model/v1.1.0 HTTP/1.1\r\nHost: 127.0.0.1\r\n" + kAuth +
                     "Content-Type: multipart/form-data; boundary=" + boundary + "\r\n" + extra_headers;
  if (!chunked) return head + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  char size[32];
  std::snprintf(size, sizeof size, "%zx", body.size() / 2);
  char rest[32];
  std::snprintf(rest, sizeof rest, "%zx", body.size() - body.size() / 2);
  return head + "Transfer-Encoding: chunked\r\n\r\n" + size + "\r\n" + body.substr(0, body.size() / 2) +
         "\r\n" + rest + "\r\n" + body.substr(body.size() / 2) + "\r\n0\r\n\r\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_http_seeds DIR\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);
  const std::vector<std::pair<std::string, std::string>> seeds = {
      {"healthz", Get("/healthz", false)},
      {"metrics", Get("/metrics", false)},
      {"openapi", Get("/api/v1/openapi.json", false)},
      {"current", Get("/api/v1/models/risk_model/current")},
      {"current_at", Get("/api/v1/models/risk_model/current?at=2025-01-15T09:30:00Z")},
      {"list", Get("/api/v1/models/risk_model?status=production&sort=sharpe")},
      {"show", Get("/api/v1/models/risk_model/v1.0.0")},
      {"history", Get("/api/v1/models/risk_model/history?since=2020-01-01T00:00:00Z")},
      {"audit", Get("/api/v1/audit?at=2030-01-01T00:00:00Z&type=risk_model")},
      {"events", Get("/api/v1/events?after=0&limit=5")},
      {"consumers", Get("/api/v1/models/risk_model/consumers")},
      {"artifact_range", "GET /api/v1/models/risk_model/v1.0.0/artifact HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
                             kAuth + "Range: bytes=0-3\r\n\r\n"},
      {"no_token", Get("/api/v1/models/risk_model/current", false)},
      {"register", Upload("", false)},
      {"register_chunked", Upload("", true)},
      {"register_expect", Upload("Expect: 100-continue\r\n", false)},
      {"promote", PostJson("/api/v1/models/risk_model/v1.1.0/promote",
                           R"({"reason": "fuzz", "expect_current": "v1.0.0", "override_gates": false})")},
      {"validate_no_body", "POST /api/v1/models/risk_model/v1.0.0/validate HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
                               kAuth + "\r\n"},
      {"archive", PostJson("/api/v1/models/risk_model/v1.1.0/archive", R"({"reason": "old"})")},
      {"fail", PostJson("/api/v1/models/risk_model/v1.1.0/fail", R"({"reason": "bad", "force": true})")},
      {"rollback", PostJson("/api/v1/models/risk_model/rollback", R"({"reason": "back", "fail_current": true})")},
      {"ack", PostJson("/api/v1/models/risk_model/consumers/svc-1/ack",
                       R"({"version": "v1.0.0", "ok": false, "attempted_version": "v1.1.0", "detail": "x"})")},
      {"pipelined", "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n" + Get("/api/v1/models/risk_model/current") +
                        "GET /nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"},
      {"http10", "GET /healthz HTTP/1.0\r\n\r\n"},
      {"method", "DELETE /api/v1/models/risk_model/v1.0.0 HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"gzip", "POST /api/v1/models/risk_model/v1.0.0/archive HTTP/1.1\r\nHost: a\r\n" + kAuth +
                   "Content-Encoding: gzip\r\nContent-Length: 2\r\n\r\n{}"},
      {"get_with_body", "GET /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /healthz HTTP/1.1\r\n\r\n"},
  };
  for (const auto& [name, bytes] : seeds) {
    std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) {
      std::fprintf(stderr, "fuzz_http_seeds: cannot write %s\n", (dir / name).c_str());
      return 1;
    }
  }
  return 0;
}
