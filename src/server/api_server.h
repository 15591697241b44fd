// The HTTP API (docs/api.md): cpp-httplib serving one open Registry, with
// JWT bearer tokens (auth/token.h) and Prometheus metrics.
//
// Every route validates its path parameters with the registry's own naming
// rules before touching anything, JSON bodies are bounded (64 KiB) and
// uploads are streamed to disk and bounded (max_upload_bytes). Errors are
// JSON {"error": {"code", "message"}} with a stable code, including those
// of requests that never reach a route (server/connections.h: time and size
// limits per connection, the connection cap).
// Thread-safety: each connection has its own thread; the Registry is
// thread-safe. Stop() may be called from any thread; requests in flight
// finish first.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "auth/token.h"
#include "common/status.h"
#include "server/connections.h"

namespace modelreg::registry {
class Registry;
}
namespace modelreg::proofs {
class CheckpointPublisher;
}

namespace modelreg::server {

class IntegrityMonitor;

// One route the server answers: what the OpenAPI document
// (docs/openapi.json, served at /api/v1/openapi.json) must describe.
struct RouteInfo {
  std::string method;   // GET, POST or PUT
  std::string pattern;  // the regular expression the path must match, a
                        // group per path parameter: /api/v1/models/([^/]+)
  std::string name;     // "GET /api/v1/models/{type}": the metrics label,
                        // and the OpenAPI path with the same parameters
  std::string scope;    // model:read, model:write, model:admin; "" = no token
};

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                  // 0: any free port (see port())
  std::string tls_cert;             // PEM files; both or neither
  std::string tls_key;
  std::uint64_t max_upload_bytes = std::uint64_t{4} << 30;
  int max_wait_seconds = 30;        // cap of /api/v1/events?wait=
  // Connections open at once (a thread each; long polls may hold at most
  // half of them), and the time and size limits of each request.
  ConnectionLimits limits;
  // Signs the checkpoints of GET /api/v1/checkpoint and the proofs
  // (docs/proofs.md); null: those routes answer 404.
  proofs::CheckpointPublisher* checkpoints = nullptr;
  // The background verification GET /api/v1/integrity reports (null: none).
  IntegrityMonitor* integrity = nullptr;
};

class ApiServer {
 public:
  // InvalidArgument for bad TLS files or options.
  static Result<std::unique_ptr<ApiServer>> Create(registry::Registry& reg,
                                                   auth::TokenVerifier verifier,
                                                   ServerOptions options);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Binds the listening socket; IOError naming the address if it cannot.
  Status Bind();
  int port() const;
  std::string url() const;  // http(s)://host:port
  // Serves until Stop(); returns after the requests in flight finished.
  Status Serve();
  void Stop();
  // Every route, in the order they were registered.
  std::vector<RouteInfo> routes() const;

  class Impl;

 private:
  explicit ApiServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace modelreg::server
