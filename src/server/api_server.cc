#include "server/api_server.h"

#include <fcntl.h>
#include <strings.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "artifacts/artifact_store.h"
#include "common/fd.h"
#include "common/fs.h"
#include "common/json_input.h"
#include "common/utf8.h"
#include "events/model_events.h"
#include "log/envelope.h"
#include "log/event_store.h"
#include "model/naming.h"
#include "proofs/document.h"
#include "proofs/publisher.h"
#include "registry/registry.h"
#include "query/query.h"
#include "query/render.h"
#include "server/connections.h"
#include "server/integrity.h"
#include "server/openapi.h"
#include "server/paging.h"
#include "server/web_assets.h"

namespace modelreg::server {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using registry::Registry;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxJsonBody = 64 * 1024;
constexpr std::array<double, 14> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                            0.1,    0.25,  0.5,    1,     2.5,  5,    10};

int HttpStatusOf(Code code) {
  switch (code) {
    case Code::kOk: return 200;
    case Code::kInvalidArgument: return 400;
    case Code::kNotFound: return 404;
    case Code::kAlreadyExists:
    case Code::kConflict:
    case Code::kFailedPrecondition: return 409;
    case Code::kRejected:
    case Code::kCorruption: return 422;
    case Code::kBusy: return 503;
    case Code::kIOError:
    case Code::kInternal: return 500;
    case Code::kPermissionDenied: return 403;
  }
  return 500;
}

void SendJson(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n",
                  "application/json");
}

void SendError(httplib::Response& res, int status, std::string_view code, const std::string& message) {
  SendJson(res, status, json{{"error", {{"code", code}, {"message", SanitizeUtf8(message)}}}});
}

// A full disk (Status::disk_full()) is 507 Insufficient Storage, with the
// code io_error like any other I/O error (500).
void SendStatus(httplib::Response& res, const Status& st) {
  SendError(res, st.disk_full() ? 507 : HttpStatusOf(st.code()), CodeName(st.code()),
            st.message());
}

// Latency histogram and counters per route template (not per raw path).
class Metrics {
 public:
  void Observe(const std::string& route, int status, double seconds) {
    std::lock_guard<std::mutex> lock(mu_);
    ++requests_[{route, status}];
    Histogram& h = latency_[route];
    for (std::size_t i = 0; i < kBuckets.size(); ++i) {
      if (seconds <= kBuckets[i]) ++h.buckets[i];
    }
    ++h.count;
    h.sum += seconds;
  }
  void CountAppend() { appends_.fetch_add(1); }

  std::string Render(std::uint64_t head_seq, int long_polls) const {
    std::lock_guard<std::mutex> lock(mu_);
    std::ostringstream out;
    out << "# HELP modelreg_http_requests_total HTTP requests by route and status.\n"
        << "# TYPE modelreg_http_requests_total counter\n";
    for (const auto& [key, n] : requests_) {
      out << "modelreg_http_requests_total{route=\"" << key.first << "\",code=\"" << key.second
          << "\"} " << n << '\n';
    }
    out << "# HELP modelreg_http_request_duration_seconds Request latency by route.\n"
        << "# TYPE modelreg_http_request_duration_seconds histogram\n";
    for (const auto& [route, h] : latency_) {
      for (std::size_t i = 0; i < kBuckets.size(); ++i) {
        out << "modelreg_http_request_duration_seconds_bucket{route=\"" << route << "\",le=\""
            << kBuckets[i] << "\"} " << h.buckets[i] << '\n';
      }
      out << "modelreg_http_request_duration_seconds_bucket{route=\"" << route
          << "\",le=\"+Inf\"} " << h.count << '\n'
          << "modelreg_http_request_duration_seconds_sum{route=\"" << route << "\"} " << h.sum
          << '\n'
          << "modelreg_http_request_duration_seconds_count{route=\"" << route << "\"} " << h.count
          << '\n';
    }
    out << "# HELP modelreg_log_head_seq Sequence number of the last event in the log.\n"
        << "# TYPE modelreg_log_head_seq gauge\n"
        << "modelreg_log_head_seq " << head_seq << '\n'
        << "# HELP modelreg_appends_total Events appended through this server.\n"
        << "# TYPE modelreg_appends_total counter\n"
        << "modelreg_appends_total " << appends_.load() << '\n'
        << "# HELP modelreg_http_long_polls GET /api/v1/events requests in progress.\n"
        << "# TYPE modelreg_http_long_polls gauge\n"
        << "modelreg_http_long_polls " << long_polls << '\n';
    return out.str();
  }

 private:
  struct Histogram {
    std::array<std::uint64_t, kBuckets.size()> buckets{};
    std::uint64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, std::uint64_t> requests_;
  std::map<std::string, Histogram> latency_;
  std::atomic<std::uint64_t> appends_{0};
};

// A JSON object body (empty = {}), bounded and UTF-8.
Result<json> BodyObject(const httplib::Request& req) {
  if (req.body.size() > kMaxJsonBody) {
    return Err(Status::InvalidArgument("request body is larger than 64 KiB"));
  }
  if (req.body.empty()) return json::object();
  if (!IsValidUtf8(req.body)) return Err(Status::InvalidArgument("request body is not UTF-8"));
  auto j = ParseJsonInput(req.body, "request body");
  if (!j) return Err(j.error());
  if (!j->is_object()) return Err(Status::InvalidArgument("request body must be a JSON object"));
  return std::move(*j);
}

// Optional string / bool fields of a body, with their types checked.
Status StringField(const json& body, const char* key, std::string* out) {
  if (!body.contains(key) || body[key].is_null()) return Status::OK();
  if (!body[key].is_string()) return Status::InvalidArgument(std::string(key) + " must be a string");
  *out = body[key].get<std::string>();
  return Status::OK();
}
// An integer field within [lo, hi], if present.
Status IntField(const json& body, const char* key, std::int64_t lo, std::int64_t hi,
                std::int64_t* out) {
  auto it = body.find(key);
  if (it == body.end()) return Status::OK();
  if (!it->is_number_integer() || it->get<std::int64_t>() < lo || it->get<std::int64_t>() > hi) {
    return Status::InvalidArgument(std::string(key) + " must be an integer from " +
                                   std::to_string(lo) + " to " + std::to_string(hi));
  }
  *out = it->get<std::int64_t>();
  return Status::OK();
}

Status BoolField(const json& body, const char* key, bool* out) {
  if (!body.contains(key) || body[key].is_null()) return Status::OK();
  if (!body[key].is_boolean()) return Status::InvalidArgument(std::string(key) + " must be true or false");
  *out = body[key].get<bool>();
  return Status::OK();
}

// The body of POST .../annotate (docs/api.md): set_tags {KEY: VALUE},
// removed_tags [KEY], description (absent or null: unchanged; "" clears),
// metrics {NAME: NUMBER}, source, reason. Types are checked here, the
// content by the registry (CheckAnnotation); unknown keys are refused.
Result<registry::AnnotationInput> AnnotationFromBody(const json& body) {
  static const char* const kKeys[] = {"set_tags", "removed_tags", "description",
                                      "metrics",  "source",       "reason"};
  for (const auto& item : body.items()) {
    // A named copy, not a structured binding: clang 14 (the fuzz build)
    // cannot capture a binding in a lambda.
    const std::string& key = item.key();
    if (std::find_if(std::begin(kKeys), std::end(kKeys),
                     [&key](const char* k) { return key == k; }) == std::end(kKeys)) {
      return Err(Status::InvalidArgument("unknown field '" + key + "' (valid: set_tags, "
                                         "removed_tags, description, metrics, source, reason)"));
    }
  }
  registry::AnnotationInput in;
  if (body.contains("set_tags") && !body["set_tags"].is_null()) {
    if (!body["set_tags"].is_object()) {
      return Err(Status::InvalidArgument("set_tags must be an object of strings"));
    }
    for (const auto& [k, v] : body["set_tags"].items()) {
      if (!v.is_string()) {
        return Err(Status::InvalidArgument("set_tags." + k + " must be a string"));
      }
      in.set_tags[k] = v.get<std::string>();
    }
  }
  if (body.contains("removed_tags") && !body["removed_tags"].is_null()) {
    if (!body["removed_tags"].is_array()) {
      return Err(Status::InvalidArgument("removed_tags must be an array of strings"));
    }
    for (const json& k : body["removed_tags"]) {
      if (!k.is_string()) return Err(Status::InvalidArgument("removed_tags must be an array of strings"));
      in.removed_tags.push_back(k.get<std::string>());
    }
  }
  if (body.contains("description") && !body["description"].is_null()) {
    if (!body["description"].is_string()) {
      return Err(Status::InvalidArgument("description must be a string"));
    }
    in.description = body["description"].get<std::string>();
  }
  if (body.contains("metrics") && !body["metrics"].is_null()) {
    if (!body["metrics"].is_object()) {
      return Err(Status::InvalidArgument("metrics must be an object of numbers"));
    }
    for (const auto& [k, v] : body["metrics"].items()) {
      if (!v.is_number()) return Err(Status::InvalidArgument("metrics." + k + " must be a number"));
      in.metrics[k] = v.get<double>();
    }
  }
  MODELREG_RETURN_IF_ERROR(StringField(body, "source", &in.source));
  return in;
}

// ?tag=KEY%3DVALUE (repeatable, all must match) of the list endpoints:
// the '=' inside the value is URL-encoded, as any HTTP client's query
// builder does.
Result<std::map<std::string, std::string>> TagParams(const httplib::Request& req) {
  std::map<std::string, std::string> tags;
  const std::size_t n = req.get_param_value_count("tag");
  for (std::size_t i = 0; i < n; ++i) {
    const std::string t = req.get_param_value("tag", i);
    const auto eq = t.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Err(Status::InvalidArgument("tag expects KEY=VALUE, got '" + t +
                                         "' (in a URL the '=' is written %3D: ?tag=desk%3Deq)"));
    }
    const std::string key = t.substr(0, eq), value = t.substr(eq + 1);
    MODELREG_RETURN_IF_ERROR(registry::CheckLabel(key, "tag key"));
    auto [it, added] = tags.emplace(key, value);
    if (!added && it->second != value) {
      return Err(Status::InvalidArgument("tag " + key + " is given twice with different values"));
    }
  }
  return tags;
}

Result<std::optional<TimeNs>> TimeParam(const httplib::Request& req, const char* name) {
  if (!req.has_param(name)) return std::optional<TimeNs>();
  const std::string v = req.get_param_value(name);
  auto t = ParseInstant(v, SystemClock::Instance().NowNs());
  if (!t) {
    // A '+' left unencoded in the query string arrives as a space.
    const bool plus = v.find(' ') != std::string::npos;
    return Err(Status::InvalidArgument(
        std::string(name) + "=" + SanitizeUtf8(v) +
        " is not a time: use ISO-8601 with a zone, a date, now, or -2h (units s, m, h, d, w)" +
        (plus ? "; a '+' in a URL query must be encoded as %2B (at=2025-01-15T11:30:00%2B02:00)"
              : "")));
  }
  return std::optional<TimeNs>(*t);
}

// since= and until= (each optional, both inclusive): a period, refused
// when it is empty by construction (since after until).
struct Period {
  std::optional<TimeNs> since, until;
};
Result<Period> PeriodParams(const httplib::Request& req) {
  Period p;
  auto since = TimeParam(req, "since");
  if (!since) return Err(since.error());
  auto until = TimeParam(req, "until");
  if (!until) return Err(until.error());
  p.since = *since;
  p.until = *until;
  if (p.since && p.until && *p.since > *p.until) {
    return Err(Status::InvalidArgument("since=" + FormatUtc(*p.since) + " is after until=" +
                                       FormatUtc(*p.until) + ": no row can be in that period"));
  }
  return p;
}

std::optional<std::string> OptParam(const httplib::Request& req, const char* name) {
  if (!req.has_param(name)) return std::nullopt;
  return req.get_param_value(name);
}

// cursor=, decoded (nullopt when absent).
Result<std::optional<Cursor>> CursorParam(const httplib::Request& req, bool list) {
  if (!req.has_param("cursor")) return std::optional<Cursor>();
  auto c = DecodeCursor(req.get_param_value("cursor"), list);
  if (!c) return Err(c.error());
  return std::optional<Cursor>(*c);
}

Result<std::uint64_t> UintParam(const httplib::Request& req, const char* name, std::uint64_t dflt,
                                std::uint64_t max) {
  if (!req.has_param(name)) return dflt;
  const std::string v = req.get_param_value(name);
  if (v.empty() || v.size() > 19 || v.find_first_not_of("0123456789") != std::string::npos) {
    return Err(Status::InvalidArgument(std::string(name) + " must be a non-negative integer"));
  }
  return std::min<std::uint64_t>(std::stoull(v), max);
}

json WriteJson(const registry::WriteResult& r) { return json{{"seq", r.seq}, {"summary", r.summary}}; }

// GET /api/v1/checkpoint's answer (also in GET /api/v1/integrity).
json CheckpointJson(const proofs::SignedCheckpoint& c) {
  return json{{"checkpoint", c.note},
              {"origin", c.checkpoint.origin},
              {"tree_size", c.checkpoint.size},
              {"root_hash", ToHex(c.checkpoint.root)},
              {"time", FormatUtc(c.checkpoint.time.value_or(0))}};
}

std::string ConnectionMetrics(const ConnectionStats& c) {
  std::ostringstream out;
  out << "# HELP modelreg_http_connections_open HTTP connections open now.\n"
      << "# TYPE modelreg_http_connections_open gauge\n"
      << "modelreg_http_connections_open " << c.open << '\n'
      << "# HELP modelreg_http_connections_rejected_total Connections refused at --max-connections (503).\n"
      << "# TYPE modelreg_http_connections_rejected_total counter\n"
      << "modelreg_http_connections_rejected_total " << c.rejected << '\n'
      << "# HELP modelreg_http_requests_timed_out_total Requests cut short by a time limit (408).\n"
      << "# TYPE modelreg_http_requests_timed_out_total counter\n"
      << "modelreg_http_requests_timed_out_total " << c.timed_out << '\n';
  return out.str();
}

// A handler with its route's name (the metrics label, "GET
// /api/v1/models/{type}") and the scope it needs ("" = no token).
struct Route {
  std::string name;
  std::string scope;
  httplib::Server::Handler handler;
};

// A registered route: what ApiServer::routes() lists, and its pattern
// compiled, for 405 answers.
struct Registered {
  RouteInfo info;
  std::regex regex;
};

// Registers routes on httplib and remembers them.
struct RouteTable {
  httplib::Server& s;
  std::vector<Registered>& routes;
  void Get(const std::string& pattern, Route r) {
    Remember("GET", pattern, r.name, r.scope);
    s.Get(pattern, std::move(r.handler));
  }
  void Post(const std::string& pattern, Route r) {
    Remember("POST", pattern, r.name, r.scope);
    s.Post(pattern, std::move(r.handler));
  }
  void Put(const std::string& pattern, Route r) {
    Remember("PUT", pattern, r.name, r.scope);
    s.Put(pattern, std::move(r.handler));
  }
  // A POST whose handler reads the body itself (the streamed upload).
  void PostReader(const std::string& pattern, std::string name, std::string scope,
                  httplib::Server::HandlerWithContentReader h) {
    Remember("POST", pattern, std::move(name), std::move(scope));
    s.Post(pattern, std::move(h));
  }

 private:
  void Remember(const char* method, const std::string& pattern, std::string name, std::string scope) {
    routes.push_back(Registered{RouteInfo{method, pattern, std::move(name), std::move(scope)},
                                std::regex(pattern)});
  }
};

}  // namespace

class ApiServer::Impl {
 public:
  Impl(Registry& reg, auth::TokenVerifier verifier, ServerOptions options)
      : reg_(reg), verifier_(std::move(verifier)), options_(std::move(options)) {}

  Status Init() {
    if (options_.tls_cert.empty() != options_.tls_key.empty()) {
      return Status::InvalidArgument("--tls-cert and --tls-key go together");
    }
    http_ = HttpServer::Create(options_.limits, options_.tls_cert, options_.tls_key);
    if (!http_) {
      if (options_.tls_cert.empty()) return Status::IOError("cannot set up the HTTP server");
      return Status::InvalidArgument("cannot load the TLS certificate " + options_.tls_cert +
                                     " and key " + options_.tls_key);
    }
    server_ = &http_->http();
    tls_ = !options_.tls_cert.empty();
    server_->set_payload_max_length(UploadBodyLimit());
    // Small JSON replies: without this, Nagle + delayed ACK add ~40 ms to
    // every keep-alive request.
    server_->set_tcp_nodelay(true);
    server_->set_exception_handler(
        [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
          std::string what = "unknown exception";
          try {
            std::rethrow_exception(ep);
          } catch (const std::exception& ex) {
            what = ex.what();
          } catch (...) {
          }
          // The details go to the server's log, not to the caller.
          std::fprintf(stderr, "modelreg serve: internal error in %s %s: %s\n", req.method.c_str(),
                       req.path.c_str(), what.c_str());
          SendError(res, 500, "internal", "internal error");
        });
    // Bodies are read into memory before a handler (and its token check)
    // runs, except for the streamed upload route: refuse large ones first.
    server_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      return RefuseFromHeaders(req, res) ? httplib::Server::HandlerResponse::Handled
                                         : httplib::Server::HandlerResponse::Unhandled;
    });
    // "Expect: 100-continue": the same refusals before the client sends the body.
    server_->set_expect_100_continue_handler(
        [this](const httplib::Request& req, httplib::Response& res) {
          return RefuseFromHeaders(req, res) ? res.status : 100;
        });
    server_->set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
      // httplib 0.11 applies the request's Range to error bodies too (a
      // 404 cut to "{\"er" with Content-Range; found by fuzz_http): a Range
      // is for 200 replies only (RFC 9110 14.2). The Request is a mutable
      // local of httplib's process_request; only its ranges are cleared.
      const_cast<httplib::Request&>(req).ranges.clear();
      if (const auto fault = CurrentFault()) {
        // A limit of server/connections.h cut the request short.
        res.body.clear();
        if (fault->status == 401) res.set_header("WWW-Authenticate", "Bearer error=\"invalid_token\"");
        SendError(res, fault->status, fault->code, fault->message);
        return;
      }
      if (!res.body.empty()) return;  // a handler already wrote its error
      DescribeError(req, res);
    });
    server_->set_post_routing_handler([](const httplib::Request&, httplib::Response& res) {
      if (ClosingAfterResponse() && res.get_header_value("Connection") != "close") {
        res.set_header("Connection", "close");
      }
    });
    Routes();
    return Status::OK();
  }

  Status Bind() {
    if (options_.port == 0) {
      port_ = server_->bind_to_any_port(options_.host);
      if (port_ <= 0) return Status::IOError("cannot listen on " + options_.host);
    } else {
      if (!server_->bind_to_port(options_.host, options_.port)) {
        return Status::IOError("cannot listen on " + options_.host + ":" +
                               std::to_string(options_.port) + " (in use, or not an address)");
      }
      port_ = options_.port;
    }
    http_->RaiseBacklog();
    return Status::OK();
  }

  Status Serve() {
    if (!server_->listen_after_bind()) {
      if (stopping_.load()) return Status::OK();
      return Status::IOError("the server stopped accepting connections");
    }
    return Status::OK();
  }

  void Stop() {
    stopping_.store(true);
    http_->Stop();
  }

  int port() const { return port_; }
  std::vector<RouteInfo> routes() const {
    std::vector<RouteInfo> out;
    for (const Registered& r : routes_) out.push_back(r.info);
    return out;
  }
  std::string url() const {
    return std::string(tls_ ? "https" : "http") + "://" + options_.host + ":" + std::to_string(port_);
  }

 private:
  enum class Need { kNone, kRead, kWrite, kAdmin };
  static const char* ScopeOf(Need need) {
    switch (need) {
      case Need::kNone: return "";
      case Need::kRead: return auth::kScopeRead;
      case Need::kWrite: return auth::kScopeWrite;
      case Need::kAdmin: return auth::kScopeAdmin;
    }
    return auth::kScopeAdmin;
  }

  // The largest upload body: the artifact, the metadata part (1 MiB) and
  // the multipart framing.
  std::uint64_t UploadBodyLimit() const {
    return options_.max_upload_bytes + registry::kMaxMetadataBytes + 64 * 1024;
  }
  std::string UploadLimitText() const {
    return "this server takes artifacts of at most " + std::to_string(options_.max_upload_bytes) +
           " bytes (--max-upload-mb " + std::to_string(options_.max_upload_bytes >> 20) + ")";
  }

  // Refusals decided from the request line and headers alone, before any
  // body is read or any token checked; true after writing one. Also tells
  // the connection how the body is delimited (none without Content-Length
  // or chunked: a bodiless POST is answered at once).
  bool RefuseFromHeaders(const httplib::Request& req, httplib::Response& res) {
    const std::string length = req.get_header_value("Content-Length");
    const std::string te = req.get_header_value("Transfer-Encoding");
    const bool chunked = strcasecmp(te.c_str(), "chunked") == 0;
    std::optional<std::uint64_t> declared;
    const bool length_ok = length.empty() || (req.get_header_value_count("Content-Length") == 1 &&
                                              length.size() <= 18 &&
                                              length.find_first_not_of("0123456789") == std::string::npos);
    if (!length.empty() && length_ok) declared = std::stoull(length);
    HeadersRead(declared, chunked);
    const bool has_body = chunked || (declared && *declared > 0);
    auto refuse = [&](int status, std::string_view code, const std::string& message) {
      // The body is not read: the connection ends after the reply.
      if (has_body || !length_ok || !te.empty()) CloseAfterResponse();
      SendError(res, status, code, message);
      return true;
    };
    if (!length_ok) {
      return refuse(400, "invalid_argument", "Content-Length must be one non-negative integer");
    }
    if (!te.empty() && !chunked) {
      return refuse(400, "invalid_argument",
                    "Transfer-Encoding " + SanitizeUtf8(te) + " is not supported (send chunked or a Content-Length)");
    }
    if (chunked && declared) {
      return refuse(400, "invalid_argument", "send either Content-Length or chunked, not both");
    }
    const std::string encoding = req.get_header_value("Content-Encoding");
    if (!encoding.empty() && strcasecmp(encoding.c_str(), "identity") != 0) {
      return refuse(415, "unsupported",
                    "Content-Encoding " + SanitizeUtf8(encoding) +
                        " is not accepted: send the request body uncompressed");
    }
    // Any model name (model/naming.h: a-z, 0-9, _ and -): the route checks it.
    static const std::regex upload(R"(^/api/v1/models/[a-z][a-z0-9_-]*/v[^/]*$)");
    if (req.method == "POST" && std::regex_match(req.path, upload)) {
      if (declared && *declared > UploadBodyLimit()) {
        return refuse(413, "too_large",
                      "the upload is " + std::to_string(*declared) + " bytes; " + UploadLimitText() +
                          ", plus at most 1 MiB of metadata");
      }
      return false;
    }
    if (chunked || (declared && *declared > kMaxJsonBody)) {
      return refuse(413, "too_large",
                    "request bodies must be sent with a Content-Length of at most 64 KiB");
    }
    return false;
  }

  // The methods with a route for `path`, in a fixed order.
  std::vector<std::string> AllowedMethods(const std::string& path) const {
    std::set<std::string> found;
    for (const Registered& r : routes_) {
      if (std::regex_match(path, r.regex)) found.insert(r.info.method);
    }
    std::vector<std::string> out;
    for (const char* m : {"GET", "POST", "PUT"}) {
      if (found.count(m) != 0) out.emplace_back(m);
    }
    return out;
  }

  // A JSON error for what httplib answered without a handler.
  void DescribeError(const httplib::Request& req, httplib::Response& res) const {
    const std::string what = SanitizeUtf8(req.method + " " + req.path);
    const bool odd_method = req.method == "CONNECT" || req.method == "TRACE" || req.method == "PRI";
    if (res.status == 404 || (res.status == 400 && odd_method)) {
      const std::vector<std::string> allowed = AllowedMethods(req.path);
      if (!allowed.empty() || odd_method) {
        std::string list;
        for (const auto& m : allowed) list += (list.empty() ? "" : ", ") + m;
        if (!list.empty()) res.set_header("Allow", list);
        return SendError(res, 405, "method_not_allowed",
                         SanitizeUtf8(req.method) + " is not allowed on " + SanitizeUtf8(req.path) +
                             (list.empty() ? "" : " (allowed: " + list + ")"));
      }
      return SendError(res, 404, "not_found", "no route for " + what);
    }
    switch (res.status) {
      case 400:
        switch (CurrentStage()) {
          case RequestStage::kRequestLine:
            return SendError(res, 400, "invalid_argument",
                             "malformed request line: expected METHOD /path HTTP/1.1 (or HTTP/1.0)");
          case RequestStage::kHeaders:
            return SendError(res, 400, "invalid_argument", "malformed or incomplete request headers");
          case RequestStage::kBody:
            break;
        }
        return SendError(res, 400, "invalid_argument",
                         "the request body of " + what +
                             " could not be read: cut short, or not valid chunked or multipart encoding");
      case 413:
        return SendError(res, 413, "too_large", "the request body of " + what + " is too large");
      case 414:
        return SendError(res, 414, "too_large",
                         "the request line is longer than " + std::to_string(kMaxHeaderLine) + " bytes");
      case 415:
        return SendError(res, 415, "unsupported", "unsupported Content-Encoding");
      case 416:
        return SendError(res, 416, "invalid_argument", "invalid Range header (expected bytes=FIRST-LAST)");
      default:
        break;
    }
    SendError(res, res.status, "http_error", "HTTP " + std::to_string(res.status));
  }

  using Handler = std::function<void(const httplib::Request&, httplib::Response&,
                                     const auth::Claims&)>;

  // Wraps a handler: metrics, authentication, scope.
  Route Wrap(std::string route, Need need, Handler h) {
    httplib::Server::Handler handler = [this, route, need, h = std::move(h)](const httplib::Request& req,
                                                                             httplib::Response& res) {
      const auto start = Clock::now();
      auth::Claims claims;
      if (Authorize(req, res, need, &claims)) h(req, res, claims);
      // A handler that streams (set_content_provider) leaves the status to
      // httplib, which picks it after this returns: count what it will pick.
      if (res.status == -1) res.status = req.ranges.empty() ? 200 : 206;
      metrics_.Observe(route, res.status,
                       std::chrono::duration<double>(Clock::now() - start).count());
    };
    return Route{std::move(route), ScopeOf(need), std::move(handler)};
  }

  bool Authorize(const httplib::Request& req, httplib::Response& res, Need need,
                 auth::Claims* claims) {
    if (need == Need::kNone) return true;
    const std::string header = req.get_header_value("Authorization");
    if (header.empty()) {
      res.set_header("WWW-Authenticate", "Bearer");
      SendError(res, 401, "unauthenticated", "missing Authorization: Bearer token");
      return false;
    }
    if (header.rfind("Bearer ", 0) != 0) {
      res.set_header("WWW-Authenticate", "Bearer");
      SendError(res, 401, "unauthenticated", "Authorization must be \"Bearer <token>\"");
      return false;
    }
    auto verified = verifier_.Verify(std::string_view(header).substr(7));
    if (!verified) {
      res.set_header("WWW-Authenticate", "Bearer error=\"invalid_token\"");
      SendError(res, 401, "unauthenticated", verified.error().message());
      return false;
    }
    *claims = std::move(*verified);
    const char* scope = ScopeOf(need);
    if (!claims->Allows(scope)) {
      SendError(res, 403, "forbidden",
                "token of '" + claims->subject + "' lacks the scope " + scope);
      return false;
    }
    return true;
  }

  // Validates {type} (and {version}) from the path; false after replying.
  static bool PathOk(httplib::Response& res, const std::string& type, const std::string* version) {
    Status st = model::ValidateModelType(type);
    if (st.ok() && version != nullptr) st = model::ValidateVersion(*version);
    if (!st.ok()) {
      SendStatus(res, st);
      return false;
    }
    return true;
  }

  // What every write route starts with: the path checked, the JSON body
  // parsed, the actor (the token's subject) with the body's "reason".
  struct WriteRequest {
    std::string type, version;
    json body;
    registry::Actor actor;
  };
  static std::optional<WriteRequest> ParseWrite(const httplib::Request& req, httplib::Response& res,
                                                const auth::Claims& c, bool has_version) {
    WriteRequest w;
    w.type = req.matches[1];
    if (has_version) w.version = req.matches[2];
    if (!PathOk(res, w.type, has_version ? &w.version : nullptr)) return std::nullopt;
    auto body = BodyObject(req);
    if (!body) {
      SendStatus(res, body.error());
      return std::nullopt;
    }
    w.body = std::move(*body);
    w.actor = registry::Actor{c.subject, ""};
    if (Status st = StringField(w.body, "reason", &w.actor.reason); !st.ok()) {
      SendStatus(res, st);
      return std::nullopt;
    }
    return w;
  }

  void Written(httplib::Response& res, const Result<registry::WriteResult>& r) {
    if (!r) {
      SendStatus(res, r.error());
      return;
    }
    metrics_.CountAppend();
    SendJson(res, 200, WriteJson(*r));
  }

  Seq HeadSeq() const {
    auto h = query::Query(reg_).Head();
    return h ? h->seq : 0;
  }

  void Routes() {
    RouteTable s{*server_, routes_};
    // Any path segment: PathOk refuses what is not a model name (400,
    // stating the grammar) instead of the route silently not matching.
    const std::string type = "([^/]+)";
    const std::string version = "([^/]+)";
    const std::string models = "/api/v1/models/";

    s.Get("/healthz", Wrap("GET /healthz", Need::kNone, [this](auto&, auto& res, auto&) {
      // The pid lets the CLI tell this server from an unrelated process that
      // reuses the pid recorded in a stale server.json.
      SendJson(res, 200,
               json{{"status", "ok"}, {"head_seq", HeadSeq()}, {"pid", static_cast<long>(::getpid())}});
    }));
    s.Get("/metrics", Wrap("GET /metrics", Need::kNone, [this](auto&, auto& res, auto&) {
      res.status = 200;
      const registry::ReplicationAttachment* shipping = reg_.Replication();
      res.set_content(metrics_.Render(HeadSeq(), polls_.load()) + ConnectionMetrics(http_->stats()) +
                          (shipping != nullptr ? shipping->MetricsText() : std::string()),
                      "text/plain; version=0.0.4");
    }));

    // The web page (docs/web.md): static files embedded at build time, no
    // token (they hold nothing of the registry; the page asks for a read
    // token and calls the API with it). Served with a Content-Security-
    // Policy that allows only these files (no inline script or style, no
    // other origin) and forbids framing.
    const auto asset = [](std::string_view body, const char* type) {
      return [body, type](const httplib::Request&, httplib::Response& res, auto&) {
        res.status = 200;
        res.set_header("Content-Security-Policy",
                       "default-src 'none'; script-src 'self'; style-src 'self'; "
                       "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                       "form-action 'none'; frame-ancestors 'none'");
        res.set_header("X-Frame-Options", "DENY");
        res.set_header("X-Content-Type-Options", "nosniff");
        res.set_header("Referrer-Policy", "no-referrer");
        res.set_header("Cache-Control", "no-cache");
        res.set_content(std::string(body), type);
      };
    };
    s.Get("/", Wrap("GET /", Need::kNone, asset(web::IndexHtml(), "text/html; charset=utf-8")));
    s.Get(R"(/ui/app\.js)", Wrap("GET /ui/app.js", Need::kNone,
                                 asset(web::AppJs(), "text/javascript; charset=utf-8")));
    s.Get(R"(/ui/style\.css)", Wrap("GET /ui/style.css", Need::kNone,
                                    asset(web::StyleCss(), "text/css; charset=utf-8")));

    // This API's OpenAPI description (docs/openapi.json, embedded at build
    // time): no token, like /healthz; it holds nothing of the registry.
    s.Get(R"(/api/v1/openapi\.json)",
          Wrap("GET /api/v1/openapi.json", Need::kNone, [](auto&, auto& res, auto&) {
            const std::string_view doc = OpenApiDocument();
            res.status = 200;
            res.set_content(doc.data(), doc.size(), "application/json");
          }));

    s.Get(models + type + "/current",
          Wrap("GET /api/v1/models/{type}/current", Need::kRead,
               [this](const httplib::Request& req, httplib::Response& res, auto&) {
                 const std::string t = req.matches[1];
                 if (!PathOk(res, t, nullptr)) return;
                 auto at = TimeParam(req, "at");
                 if (!at) return SendStatus(res, at.error());
                 auto p = query::Query(reg_).Current(t, *at);
                 if (!p) return SendStatus(res, p.error());
                 if (!p->record) {
                   return SendError(res, 404, "not_found", "no production version of " + t +
                                                               (*at ? " at " + FormatUtc(**at) : ""));
                 }
                 SendJson(res, 200, query::ProductionJson(*p));
               }));

    s.Get(models + type + "/history",
          Wrap("GET /api/v1/models/{type}/history", Need::kRead,
               [this](const httplib::Request& req, httplib::Response& res, auto&) {
                 const std::string t = req.matches[1];
                 if (!PathOk(res, t, nullptr)) return;
                 auto period = PeriodParams(req);
                 if (!period) return SendStatus(res, period.error());
                 auto limit = ParseLimit(OptParam(req, "limit"));
                 if (!limit) return SendStatus(res, limit.error());
                 auto cursor = CursorParam(req, /*list=*/false);
                 if (!cursor) return SendStatus(res, cursor.error());
                 auto h = query::Query(reg_).History(t, period->since, period->until);
                 if (!h) return SendStatus(res, h.error());
                 // Oldest first: a page is the promotions after the cursor's sequence number.
                 auto& all = h->promotions;
                 const Seq after = *cursor ? (*cursor)->after : 0;
                 all.erase(all.begin(), std::find_if(all.begin(), all.end(),
                                                     [&](const auto& p) { return p.seq > after; }));
                 json next;
                 if (all.size() > *limit) {
                   all.resize(*limit);
                   next = EncodeCursor(Cursor{0, all.back().seq}, /*list=*/false);
                 }
                 json body = query::HistoryJson(*h);
                 body["next"] = std::move(next);
                 SendJson(res, 200, body);
               }));

    s.Get(models + type + "/consumers",
          Wrap("GET /api/v1/models/{type}/consumers", Need::kRead,
               [this](const httplib::Request& req, httplib::Response& res, auto&) {
                 const std::string t = req.matches[1];
                 if (!PathOk(res, t, nullptr)) return;
                 auto c = query::Query(reg_).Consumers(t);
                 if (!c) return SendStatus(res, c.error());
                 SendJson(res, 200, query::ConsumersJson(*c, SystemClock::Instance().NowNs()));
               }));

    // A consumer's report is not a lifecycle change: model:read may send it
    // (the token's subject is recorded as the actor).
    s.Post(models + type + "/consumers/([^/]+)/ack",
           Wrap("POST /api/v1/models/{type}/consumers/{id}/ack", Need::kRead,
                [this](const httplib::Request& req, httplib::Response& res, const auth::Claims& c) {
                  const std::string t = req.matches[1];
                  if (!PathOk(res, t, nullptr)) return;
                  auto body = BodyObject(req);
                  if (!body) return SendStatus(res, body.error());
                  events::ConsumerAck ack;
                  ack.consumer_id = req.matches[2];
                  Status st = StringField(*body, "version", &ack.version);
                  if (st.ok()) st = BoolField(*body, "ok", &ack.ok);
                  if (st.ok()) st = StringField(*body, "attempted_version", &ack.attempted_version);
                  if (st.ok()) st = StringField(*body, "detail", &ack.detail);
                  if (!st.ok()) return SendStatus(res, st);
                  Written(res, reg_.Acknowledge(t, ack, registry::Actor{c.subject, ""}));
                }));

    // Every version of every name (`modelreg --json list`), or of one.
    auto list = [this](const httplib::Request& req, httplib::Response& res, const std::string& t) {
      projection::ModelStatus filter{};
      const std::string status = req.get_param_value("status");
      if (!status.empty() && !projection::ParseStatus(status, &filter)) {
        return SendError(res, 400, "invalid_argument",
                         "unknown status '" + status +
                             "'; valid: staged, production, archived, failed");
      }
      auto at = TimeParam(req, "at");
      if (!at) return SendStatus(res, at.error());
      query::ListFilter lf;
      lf.model_type = t;
      if (!status.empty()) lf.status = filter;
      lf.sort_metric = req.get_param_value("sort");
      auto tags = TagParams(req);
      if (!tags) return SendStatus(res, tags.error());
      lf.tags = std::move(*tags);
      auto period = PeriodParams(req);  // by registration time
      if (!period) return SendStatus(res, period.error());
      lf.since = period->since;
      lf.until = period->until;
      auto limit = ParseLimit(OptParam(req, "limit"));
      if (!limit) return SendStatus(res, limit.error());
      auto cursor = CursorParam(req, /*list=*/true);
      if (!cursor) return SendStatus(res, cursor.error());
      // Every page of one listing answers as of the same instant: the
      // cursor's, at=, or the head's when the first page was asked.
      std::optional<TimeNs> as_of = *cursor ? std::optional<TimeNs>((*cursor)->at) : *at;
      query::Query q(reg_);
      Result<query::ListResult> l = q.List(lf, as_of);
      TimeNs pinned = as_of.value_or(0);
      for (int attempt = 0; !as_of && l; ++attempt) {
        auto before = q.Head();
        if (!before) return SendStatus(res, before.error());
        l = q.List(lf, std::nullopt);
        auto after = q.Head();
        if (!after) return SendStatus(res, after.error());
        pinned = before->at;
        if (before->seq == after->seq) break;
        if (attempt == 2) {  // writes keep landing: answer as of the first head
          l = q.List(lf, pinned);
          break;
        }
      }
      if (!l) return SendStatus(res, l.error());
      if (Status st = query::CheckSortMetric(lf.sort_metric, l->versions, "sort"); !st.ok()) {
        return SendStatus(res, st);
      }
      const std::size_t given = *cursor ? static_cast<std::size_t>(
                                              std::min<std::uint64_t>((*cursor)->after, l->versions.size()))
                                        : 0;
      const std::size_t end = std::min(l->versions.size(), given + *limit);
      json next;
      if (end < l->versions.size()) next = EncodeCursor(Cursor{pinned, end}, /*list=*/true);
      l->versions = std::vector<registry::VersionRecord>(
          l->versions.begin() + static_cast<std::ptrdiff_t>(given),
          l->versions.begin() + static_cast<std::ptrdiff_t>(end));
      json body = query::ListJson(*l, t);
      body["next"] = std::move(next);
      SendJson(res, 200, body);
    };
    s.Get("/api/v1/models", Wrap("GET /api/v1/models", Need::kRead,
                                 [list](const httplib::Request& req, httplib::Response& res,
                                        auto&) { list(req, res, ""); }));
    s.Get(models + type,
          Wrap("GET /api/v1/models/{type}", Need::kRead,
               [list](const httplib::Request& req, httplib::Response& res, auto&) {
                 const std::string t = req.matches[1];
                 if (!PathOk(res, t, nullptr)) return;
                 list(req, res, t);
               }));

    s.Get(models + type + "/" + version + "/artifact",
          Wrap("GET /api/v1/models/{type}/{version}/artifact", Need::kRead,
               [this](const httplib::Request& req, httplib::Response& res, auto&) {
                 const std::string t = req.matches[1], v = req.matches[2];
                 if (!PathOk(res, t, &v)) return;
                 auto shown = query::Query(reg_).Show(t, v);
                 if (!shown) return SendStatus(res, shown.error());
                 if (!*shown) return SendError(res, 404, "not_found", t + " " + v + " is not registered");
                 const registry::VersionRecord* rec = &(*shown)->record;
                 if (rec->purged) {
                   return SendError(res, 410, "gone", t + " " + v + " has had its artifact purged");
                 }
                 if (rec->artifact_kind == projection::ArtifactKind::kDirectory) {
                   return SendError(res, 409, "directory_artifact",
                                    t + " " + v + " is a directory artifact (" +
                                        rec->artifact_name +
                                        "/); the API downloads single-file artifacts only: read "
                                        "it from the registry directory (docs/api.md)");
                 }
                 const std::string path = reg_.artifacts().ArtifactPath(t, v, rec->artifact_name);
                 auto file = std::make_shared<std::ifstream>(path, std::ios::binary);
                 std::error_code ec;
                 const auto size = fs::file_size(path, ec);
                 if (!*file || ec) {
                   return SendError(res, 404, "not_found", "the artifact file of " + t + " " + v +
                                                               " is missing; see docs/runbook.md");
                 }
                 res.set_header("X-Checksum-Sha256", rec->artifact_sha256);
                 res.set_header("Content-Disposition",
                                "attachment; filename=\"" + rec->artifact_name + "\"");
                 res.set_content_provider(
                     static_cast<std::size_t>(size), "application/octet-stream",
                     [file](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
                       char buf[1 << 16];
                       file->seekg(static_cast<std::streamoff>(offset));
                       const auto n = static_cast<std::streamsize>(std::min(length, sizeof buf));
                       file->read(buf, n);
                       if (file->gcount() <= 0) return false;
                       return sink.write(buf, static_cast<std::size_t>(file->gcount()));
                     });
               }));

    s.Get(models + type + "/" + version,
          Wrap("GET /api/v1/models/{type}/{version}", Need::kRead,
               [this](const httplib::Request& req, httplib::Response& res, auto&) {
                 const std::string t = req.matches[1], v = req.matches[2];
                 if (!PathOk(res, t, &v)) return;
                 auto at = TimeParam(req, "at");
                 if (!at) return SendStatus(res, at.error());
                 auto shown = query::Query(reg_).Show(t, v, *at);
                 if (!shown) return SendStatus(res, shown.error());
                 if (!*shown) {
                   return SendError(res, 404, "not_found", t + " " + v + " is not registered" +
                                                               (*at ? " at " + FormatUtc(**at) : ""));
                 }
                 SendJson(res, 200, query::ShowJson(**shown));
               }));

    s.Get("/api/v1/audit",
          Wrap("GET /api/v1/audit", Need::kRead,
               [this](const httplib::Request& req, httplib::Response& res, auto&) {
                 auto at = TimeParam(req, "at");
                 if (!at) return SendStatus(res, at.error());
                 if (!*at) return SendError(res, 400, "invalid_argument", "at=TIME is required");
                 std::vector<std::string> types;
                 const std::string only = req.get_param_value("type");
                 if (!only.empty()) {
                   if (!PathOk(res, only, nullptr)) return;
                   types.push_back(only);
                 }
                 auto a = query::Query(reg_).Audit(**at, types);
                 if (!a) return SendStatus(res, a.error());
                 SendJson(res, 200, query::AuditJson(*a));
               }));

    // Signed checkpoints and proofs (docs/proofs.md): the same documents
    // as `modelreg checkpoint` and `modelreg prove`, signed by the server.
    const auto no_checkpoints = [](httplib::Response& res) {
      SendError(res, 404, "not_found",
                "this server signs no checkpoints (start it with serve --checkpoint-key FILE)");
    };
    s.Get("/api/v1/checkpoint",
          Wrap("GET /api/v1/checkpoint", Need::kRead,
               [this, no_checkpoints](const httplib::Request&, httplib::Response& res, auto&) {
                 if (options_.checkpoints == nullptr) return no_checkpoints(res);
                 auto c = options_.checkpoints->Latest();
                 if (!c) return SendStatus(res, c.error());
                 SendJson(res, 200, CheckpointJson(*c));
               }));
    // The head of the log, the server's last verification and the latest
    // signed checkpoint (the web page's integrity view).
    s.Get("/api/v1/integrity",
          Wrap("GET /api/v1/integrity", Need::kRead,
               [this](const httplib::Request&, httplib::Response& res, auto&) {
                 auto h = query::Query(reg_).Head();
                 if (!h) return SendStatus(res, h.error());
                 json j{{"head", query::HeadJson(*h)}, {"verify", json()}, {"checkpoint", json()},
                        {"verify_every_seconds", json()}};
                 if (options_.integrity != nullptr) {
                   j["verify_every_seconds"] = options_.integrity->every().count();
                   if (auto v = options_.integrity->Latest()) j["verify"] = IntegrityJson(*v);
                 }
                 if (options_.checkpoints != nullptr) {
                   if (auto c = options_.checkpoints->Latest()) j["checkpoint"] = CheckpointJson(*c);
                 }
                 SendJson(res, 200, j);
               }));
    s.Get("/api/v1/proofs/events/([0-9]{1,19})",
          Wrap("GET /api/v1/proofs/events/{seq}", Need::kRead,
               [this, no_checkpoints](const httplib::Request& req, httplib::Response& res, auto&) {
                 if (options_.checkpoints == nullptr) return no_checkpoints(res);
                 const std::uint64_t seq = std::stoull(req.matches[1].str());
                 const EventStore& log = reg_.Log();
                 if (seq == 0 || seq > log.head().seq) {
                   return SendError(res, 404, "not_found",
                                    "event " + std::to_string(seq) + " is not in the log");
                 }
                 auto c = options_.checkpoints->Latest(seq);
                 if (!c) return SendStatus(res, c.error());
                 auto doc = proofs::ProveEvents(log, c->note, c->checkpoint, {seq});
                 if (!doc) return SendStatus(res, doc.error());
                 SendJson(res, 200, *doc);
               }));
    s.Get("/api/v1/proofs/consistency",
          Wrap("GET /api/v1/proofs/consistency", Need::kRead,
               [this, no_checkpoints](const httplib::Request& req, httplib::Response& res, auto&) {
                 if (options_.checkpoints == nullptr) return no_checkpoints(res);
                 auto from = UintParam(req, "from", 0, UINT64_MAX / 2);
                 if (!from) return SendStatus(res, from.error());
                 const EventStore& log = reg_.Log();
                 if (*from == 0 || *from > log.head().seq) {
                   return SendError(res, 400, "invalid_argument",
                                    "from=N must be a tree size from 1 to the log's " +
                                        std::to_string(log.head().seq) + " events");
                 }
                 auto c = options_.checkpoints->Latest(*from);
                 if (!c) return SendStatus(res, c.error());
                 auto doc = proofs::ProveConsistency(log, "", *from, c->note, c->checkpoint);
                 if (!doc) return SendStatus(res, doc.error());
                 SendJson(res, 200, *doc);
               }));

    // What changed between two instants: `modelreg diff --from --to`.
    s.Get("/api/v1/diff",
          Wrap("GET /api/v1/diff", Need::kRead,
               [this](const httplib::Request& req, httplib::Response& res, auto&) {
                 auto from = TimeParam(req, "from");
                 if (!from) return SendStatus(res, from.error());
                 auto to = TimeParam(req, "to");
                 if (!to) return SendStatus(res, to.error());
                 if (!*from || !*to) {
                   return SendError(res, 400, "invalid_argument", "from=TIME and to=TIME are required");
                 }
                 if (**from > **to) {
                   return SendError(res, 400, "invalid_argument",
                                    "from=" + FormatUtc(**from) + " is after to=" + FormatUtc(**to));
                 }
                 auto d = query::Query(reg_).Diff(**from, **to);
                 if (!d) return SendStatus(res, d.error());
                 SendJson(res, 200, query::DiffJson(*d));
               }));

    // The gate policy (docs/gates.md): read with model:read, set with
    // model:admin (PUT or POST, the same body).
    s.Get("/api/v1/policy",
          Wrap("GET /api/v1/policy", Need::kRead,
               [this](const httplib::Request& req, httplib::Response& res, auto&) {
                 auto at = TimeParam(req, "at");
                 if (!at) return SendStatus(res, at.error());
                 auto p = query::Query(reg_).Policy(*at);
                 if (!p) return SendStatus(res, p.error());
                 SendJson(res, 200, query::PolicyJson(*p));
               }));
    const auto set_policy = [this](const httplib::Request& req, httplib::Response& res,
                                   const auth::Claims& c) {
      auto body = BodyObject(req);
      if (!body) return SendStatus(res, body.error());
      std::string text, source;
      registry::Actor actor{c.subject, ""};
      if (!body->contains("text") || !(*body)["text"].is_string()) {
        return SendStatus(res, Status::InvalidArgument("text (the policy, a string) is required"));
      }
      Status st = StringField(*body, "text", &text);
      if (st.ok()) st = StringField(*body, "reason", &actor.reason);
      if (st.ok()) st = StringField(*body, "source", &source);
      if (!st.ok()) return SendStatus(res, st);
      auto r = reg_.SetPolicy(text, source, actor);
      if (!r) return SendStatus(res, r.error());
      if (r->changed) metrics_.CountAppend();
      SendJson(res, 200, json{{"seq", r->seq}, {"changed", r->changed}, {"sha256", r->sha256},
                              {"summary", r->summary}});
    };
    s.Put("/api/v1/policy", Wrap("PUT /api/v1/policy", Need::kAdmin, set_policy));
    s.Post("/api/v1/policy", Wrap("POST /api/v1/policy", Need::kAdmin, set_policy));

    // Admin commands (docs/runbook.md), for `modelreg backup create` and
    // `modelreg gc` while this server holds the registry.
    s.Post("/api/v1/admin/backups",
           Wrap("POST /api/v1/admin/backups", Need::kAdmin,
                [this](const httplib::Request& req, httplib::Response& res, auto&) {
                  auto body = BodyObject(req);
                  if (!body) return SendStatus(res, body.error());
                  if (!body->empty()) {
                    return SendStatus(res, Status::InvalidArgument(
                                               "backup create takes no fields; got '" +
                                               body->begin().key() + "'"));
                  }
                  auto b = reg_.BackupNow(
                      options_.checkpoints == nullptr
                          ? registry::Registry::CheckpointSigner{}
                          : [this](const TreeHead& t) { return options_.checkpoints->Sign(t); });
                  if (!b) return SendStatus(res, b.error());
                  SendJson(res, 200, query::BackupJson(*b));
                }));
    s.Post("/api/v1/admin/gc",
           Wrap("POST /api/v1/admin/gc", Need::kAdmin,
                [this](const httplib::Request& req, httplib::Response& res, const auth::Claims& c) {
                  auto body = BodyObject(req);
                  if (!body) return SendStatus(res, body.error());
                  registry::Actor actor{c.subject, ""};
                  bool dry_run = false;
                  std::int64_t keep = 3, retention_days = 365;
                  Status st = BoolField(*body, "dry_run", &dry_run);
                  if (st.ok()) st = StringField(*body, "reason", &actor.reason);
                  if (st.ok()) st = IntField(*body, "keep", 0, 1000000, &keep);
                  if (st.ok()) st = IntField(*body, "retention_days", 0, 36500, &retention_days);
                  for (const auto& [key, value] : body->items()) {
                    if (st.ok() && key != "dry_run" && key != "reason" && key != "keep" &&
                        key != "retention_days") {
                      st = Status::InvalidArgument("unknown field '" + key +
                                                   "' (dry_run, keep, retention_days, reason)");
                    }
                  }
                  if (!st.ok()) return SendStatus(res, st);
                  auto items = reg_.CollectGarbage(static_cast<int>(keep),
                                                   TimeNs{retention_days} * 86'400'000'000'000LL,
                                                   dry_run, actor);
                  if (!items) return SendStatus(res, items.error());
                  if (!dry_run) {
                    for (const auto& i : *items) {
                      if (!i.version.empty()) metrics_.CountAppend();
                    }
                  }
                  SendJson(res, 200, query::GcJson(*items, dry_run));
                }));

    s.Get("/api/v1/events",
          Wrap("GET /api/v1/events", Need::kRead,
               [this](const httplib::Request& req, httplib::Response& res, auto&) {
                 auto after = UintParam(req, "after", 0, UINT64_MAX / 2);
                 if (!after) return SendStatus(res, after.error());
                 auto cursor = CursorParam(req, /*list=*/false);
                 if (!cursor) return SendStatus(res, cursor.error());
                 if (*cursor) *after = std::min<std::uint64_t>((*cursor)->after, UINT64_MAX / 2);
                 auto wait = UintParam(req, "wait", 0, static_cast<std::uint64_t>(options_.max_wait_seconds));
                 if (!wait) return SendStatus(res, wait.error());
                 auto limit = ParseLimit(OptParam(req, "limit"));
                 if (!limit) return SendStatus(res, limit.error());
                 auto period = PeriodParams(req);  // by recording time
                 if (!period) return SendStatus(res, period.error());
                 // Nothing appended from now on can be recorded before until=
                 // when that is already past: no reason to wait for it.
                 if (period->until && *period->until < SystemClock::Instance().NowNs()) *wait = 0;
                 Seq head = HeadSeq();
                 // Long polls may hold at most half the workers: beyond that
                 // they answer at once, so other requests are never starved.
                 const int max_polls = std::max(1, options_.limits.max_connections / 2);
                 if (polls_.fetch_add(1) >= max_polls) *wait = 0;
                 struct Release {
                   std::atomic<int>& n;
                   ~Release() { n.fetch_sub(1); }
                 } release{polls_};
                 // Wait in slices so that Stop() does not wait for long polls.
                 const auto deadline = Clock::now() + std::chrono::seconds(*wait);
                 while (head <= *after && Clock::now() < deadline && !stopping_.load()) {
                   head = reg_.WaitForHead(*after, std::chrono::milliseconds(100));
                 }
                 // The period is a range of sequence numbers [first, end]
                 // (recorded_at never decreases along the log).
                 query::Query q(reg_);
                 Seq first = *after + 1, end = head;
                 if (period->since) {
                   auto s = q.SeqAt(*period->since - 1);
                   if (!s) return SendStatus(res, s.error());
                   first = std::max(first, *s + 1);
                 }
                 if (period->until) {
                   auto u = q.SeqAt(*period->until);
                   if (!u) return SendStatus(res, u.error());
                   end = std::min(end, *u);
                 }
                 json arr = json::array();
                 Seq last = 0;
                 if (end >= first) {
                   last = std::min<Seq>(end, first - 1 + *limit);
                   auto seen = q.Events(first, query::EventFilter{},
                                        static_cast<std::size_t>(last - first + 1),
                                        [&](const EventBuffer& e) {
                                          arr.push_back(events::ToJson(e));
                                          return true;
                                        });
                   if (!seen) return SendStatus(res, seen.error());
                 }
                 json next;  // more events than this page: where the next one starts
                 if (last != 0 && last < end) next = EncodeCursor(Cursor{0, last}, /*list=*/false);
                 SendJson(res, 200, json{{"head_seq", head}, {"events", arr}, {"next", next}});
               }));

    // --- writes ---
    s.Post(models + type + "/" + version + "/validate",
           Wrap("POST /api/v1/models/{type}/{version}/validate", Need::kWrite,
                [this](const httplib::Request& req, httplib::Response& res, const auth::Claims& c) {
                  auto w = ParseWrite(req, res, c, true);
                  if (!w) return;
                  auto r = reg_.Validate(w->type, w->version, w->actor);
                  if (!r) return SendStatus(res, r.error());
                  metrics_.CountAppend();
                  SendJson(res, 200, query::ValidateJson(*r));
                }));

    s.Post(models + type + "/" + version + "/promote",
           Wrap("POST /api/v1/models/{type}/{version}/promote", Need::kWrite,
                [this](const httplib::Request& req, httplib::Response& res, const auth::Claims& c) {
                  auto w = ParseWrite(req, res, c, true);
                  if (!w) return;
                  bool override_gates = false;
                  std::optional<std::string> expect;
                  Status st = BoolField(w->body, "override_gates", &override_gates);
                  if (st.ok() && w->body.contains("expect_current")) {
                    const json& e = w->body["expect_current"];
                    if (e.is_null()) {
                      expect = std::string();  // "none"
                    } else if (e.is_string()) {
                      expect = e.get<std::string>() == "none" ? std::string() : e.get<std::string>();
                    } else {
                      st = Status::InvalidArgument("expect_current must be a version, \"none\" or null");
                    }
                  }
                  if (!st.ok()) return SendStatus(res, st);
                  if (override_gates && !c.Allows(auth::kScopeAdmin)) {
                    return SendError(res, 403, "forbidden",
                                     "overriding the gates needs the scope model:admin");
                  }
                  auto r = reg_.Promote(w->type, w->version, expect, override_gates, w->actor);
                  if (!r) return SendStatus(res, registry::NameExpectCurrent(r.error(), "expect_current"));
                  Written(res, r);
                }));

    s.Post(models + type + "/" + version + "/archive",
           Wrap("POST /api/v1/models/{type}/{version}/archive", Need::kWrite,
                [this](const httplib::Request& req, httplib::Response& res, const auth::Claims& c) {
                  auto w = ParseWrite(req, res, c, true);
                  if (!w) return;
                  Written(res, reg_.Archive(w->type, w->version, w->actor));
                }));

    s.Post(models + type + "/" + version + "/annotate",
           Wrap("POST /api/v1/models/{type}/{version}/annotate", Need::kWrite,
                [this](const httplib::Request& req, httplib::Response& res, const auth::Claims& c) {
                  auto w = ParseWrite(req, res, c, true);
                  if (!w) return;
                  auto in = AnnotationFromBody(w->body);
                  if (!in) return SendStatus(res, in.error());
                  Written(res, reg_.Annotate(w->type, w->version, *in, w->actor));
                }));

    s.Post(models + type + "/" + version + "/fail",
           Wrap("POST /api/v1/models/{type}/{version}/fail", Need::kWrite,
                [this](const httplib::Request& req, httplib::Response& res, const auth::Claims& c) {
                  auto w = ParseWrite(req, res, c, true);
                  if (!w) return;
                  bool force = false;
                  if (Status st = BoolField(w->body, "force", &force); !st.ok()) return SendStatus(res, st);
                  Written(res, reg_.Fail(w->type, w->version, force, w->actor));
                }));

    s.Post(models + type + "/rollback",
           Wrap("POST /api/v1/models/{type}/rollback", Need::kWrite,
                [this](const httplib::Request& req, httplib::Response& res, const auth::Claims& c) {
                  auto w = ParseWrite(req, res, c, false);
                  if (!w) return;
                  registry::RollbackOptions o;
                  Status st = BoolField(w->body, "fail_current", &o.fail_current);
                  if (st.ok()) st = StringField(w->body, "to", &o.to);
                  if (st.ok()) st = BoolField(w->body, "dry_run", &o.dry_run);
                  if (!st.ok()) return SendStatus(res, st);
                  auto r = reg_.Rollback(w->type, o, w->actor);
                  if (!r) return SendStatus(res, r.error());
                  if (!r->dry_run) metrics_.CountAppend();
                  SendJson(res, 200, query::RollbackJson(*r));
                }));

    // Versions start with "v": "rollback" above is not one.
    s.PostReader(models + type + "/(v[^/]*)", std::string(kUploadRoute), ScopeOf(Need::kWrite),
                 [this](const httplib::Request& req, httplib::Response& res,
                        const httplib::ContentReader& reader) { RegisterUpload(req, res, reader); });
  }

  // POST /api/v1/models/{type}/{version}: multipart/form-data with an
  // "artifact" file part (streamed to disk) and an optional "metadata"
  // JSON part.
  void RegisterUpload(const httplib::Request& req, httplib::Response& res,
                      const httplib::ContentReader& reader) {
    const auto start = Clock::now();
    const std::string route(kUploadRoute);
    bool consumed = false;  // the whole body was read
    auto done = [&] {
      if (!consumed) CloseAfterResponse();
      metrics_.Observe(route, res.status, std::chrono::duration<double>(Clock::now() - start).count());
    };
    auth::Claims claims;
    if (!Authorize(req, res, Need::kWrite, &claims)) return done();
    const std::string t = req.matches[1], v = req.matches[2];
    if (!PathOk(res, t, &v)) return done();
    if (!req.is_multipart_form_data()) {
      SendError(res, 400, "invalid_argument",
                "send multipart/form-data with an \"artifact\" file part and an optional "
                "\"metadata\" JSON part");
      return done();
    }
    // A private directory for the upload, removed whatever happens.
    std::string tmpl = (fs::path(reg_.root()) / "uploads" / ".upload-XXXXXX").string();
    std::error_code ec;
    const fs::path uploads = fs::path(tmpl).parent_path();
    fs::create_directories(uploads, ec);
    if (ec) {
      SendStatus(res, ErrorCodeStatus("cannot create an upload directory " + uploads.string(), ec));
      return done();
    }
    if (mkdtemp(tmpl.data()) == nullptr) {
      SendStatus(res, ErrnoStatus("cannot create an upload directory in", uploads.string()));
      return done();
    }
    struct Cleanup {
      std::string dir;
      int fd = -1;  // the artifact part's file
      ~Cleanup() {
        if (fd >= 0) ::close(fd);
        std::error_code e;
        fs::remove_all(dir, e);
      }
    } cleanup{tmpl};

    std::string part, artifact_name, metadata, error;
    std::string artifact_path;
    Status write_error;  // writing the artifact part (disk_full() on a full disk)
    std::uint64_t artifact_bytes = 0;
    int artifact_parts = 0;
    const bool ok = reader(
        [&](const httplib::MultipartFormData& header) {
          part = header.name;
          if (part == "artifact") {
            ++artifact_parts;
            artifact_name = fs::path(header.filename).filename().string();
            if (Status st = artifacts::ValidateFileName(artifact_name); !st.ok()) {
              error = st.message();
              return false;
            }
            if (cleanup.fd >= 0) ::close(cleanup.fd);
            artifact_path = (fs::path(tmpl) / artifact_name).string();
            cleanup.fd = ::open(artifact_path.c_str(),
                                O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
            if (cleanup.fd < 0) {
              write_error = ErrnoStatus("cannot write the upload to", artifact_path);
              return false;
            }
          } else if (part != "metadata") {
            error = "unknown part '" + SanitizeUtf8(part) + "' (expected artifact and metadata)";
            return false;
          }
          return true;
        },
        [&](const char* data, std::size_t len) {
          if (part == "artifact") {
            artifact_bytes += len;
            if (artifact_bytes > options_.max_upload_bytes) {
              error = "the artifact is larger than the server's limit: " + UploadLimitText();
              return false;
            }
            while (len > 0) {
              const ssize_t w = ::write(cleanup.fd, data, len);
              if (w < 0 && errno == EINTR) continue;
              if (w < 0) {
                write_error = ErrnoStatus("cannot write the upload to", artifact_path);
                return false;
              }
              data += w;
              len -= static_cast<std::size_t>(w);
            }
            return true;
          }
          metadata.append(data, len);
          if (metadata.size() > registry::kMaxMetadataBytes) {
            error = "the metadata part is larger than 1 MiB";
            return false;
          }
          return true;
        });
    consumed = ok;
    if (cleanup.fd >= 0) {
      if (::close(cleanup.fd) != 0 && write_error.ok()) {
        write_error = ErrnoStatus("cannot write the upload to", artifact_path);
      }
      cleanup.fd = -1;
    }
    if (!write_error.ok()) {
      SendStatus(res, write_error);
      return done();
    }
    if (!ok || !error.empty()) {
      // httplib sets 413 when the body is over the payload limit.
      const bool too_large = error.find("larger") != std::string::npos || res.status == 413;
      if (const auto fault = CurrentFault()) {
        SendError(res, fault->status, fault->code, fault->message);
      } else if (too_large) {
        SendError(res, 413, "too_large", error.empty() ? "the upload is too large; " + UploadLimitText() : error);
      } else {
        SendError(res, 400, "invalid_argument",
                  error.empty() ? "the upload was cut short (the connection closed early, or the "
                                  "multipart body is malformed)"
                                : error);
      }
      return done();
    }
    if (artifact_parts != 1) {
      SendError(res, 400, "invalid_argument", "exactly one \"artifact\" file part is needed");
      return done();
    }
    registry::MetadataInput in;
    if (!metadata.empty()) in.metadata_json = metadata;
    auto r = reg_.Register(t, v, (fs::path(tmpl) / artifact_name).string(), in,
                           registry::Actor{claims.subject, ""});
    if (!r) {
      SendStatus(res, r.error());
      return done();
    }
    if (!r->already_registered) metrics_.CountAppend();
    json j = query::RecordJson(r->record);
    j["already_registered"] = r->already_registered;
    SendJson(res, r->already_registered ? 200 : 201, j);
    done();
  }

  static constexpr std::string_view kUploadRoute = "POST /api/v1/models/{type}/{version}";

  Registry& reg_;
  auth::TokenVerifier verifier_;
  ServerOptions options_;
  std::unique_ptr<HttpServer> http_;
  httplib::Server* server_ = nullptr;  // http_'s
  std::vector<Registered> routes_;
  bool tls_ = false;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> polls_{0};  // long polls in progress
  Metrics metrics_;
};

ApiServer::ApiServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ApiServer::~ApiServer() = default;

Result<std::unique_ptr<ApiServer>> ApiServer::Create(registry::Registry& reg,
                                                     auth::TokenVerifier verifier,
                                                     ServerOptions options) {
  auto impl = std::make_unique<Impl>(reg, std::move(verifier), std::move(options));
  MODELREG_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<ApiServer>(new ApiServer(std::move(impl)));
}

Status ApiServer::Bind() { return impl_->Bind(); }
int ApiServer::port() const { return impl_->port(); }
std::string ApiServer::url() const { return impl_->url(); }
Status ApiServer::Serve() { return impl_->Serve(); }
void ApiServer::Stop() { impl_->Stop(); }
std::vector<RouteInfo> ApiServer::routes() const { return impl_->routes(); }

}  // namespace modelreg::server
