// The connection layer under the HTTP API: how long and how much a client
// may take to send a request, and how many connections may be open at once
// (docs/api.md, "Limits").
//
// cpp-httplib 0.11 gives each connection a thread from its pool for the
// connection's whole life and reads with a per-recv timeout only, so a few
// clients that send their headers a byte at a time hold every thread. Here
// a subclass of httplib::Server runs each connection itself:
//
// - every admitted connection has its own thread (threads are created on
//   demand and reused), so slow or idle connections never queue others;
// - at most `max_connections` are admitted: the acceptor answers the next
//   one at once with 503 and Retry-After (plain HTTP; a TLS connection is
//   closed) from a small thread that lingers for the request bytes;
// - its own httplib::Stream over the socket enforces, per request, a total
//   time for the request line and headers, a size for them, a minimum
//   average rate for the body and for the reply, and an idle limit between
//   requests. A request cut short gets 408/414/431 (or 401 for a token too
//   long for the header line) from the API's error handler.
//
// The hooks below are for the routing handlers of the API; they act on the
// request of the calling thread's connection (no-ops off such a thread).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace httplib {
class Server;
}

namespace modelreg::server {

struct ConnectionLimits {
  int max_connections = 512;     // open at once; beyond: 503 + Retry-After
  int retry_after_seconds = 2;
  // A new connection must send its first byte, and a kept-alive one its
  // next request, within this; otherwise it is closed (silently).
  std::chrono::milliseconds idle{5000};
  // The request line and headers must be complete this long after their
  // first byte (else 408), and at most this large (else 431).
  std::chrono::milliseconds header_time{10000};
  std::size_t max_header_bytes = 64 * 1024;
  // A body must arrive at `min_rate` on average after a `grace` period
  // (deadline: start + grace + bytes so far / min_rate) and never stall
  // longer than `stall`; else 408. The same holds for sending the reply
  // (else the connection is closed).
  std::chrono::milliseconds grace{10000};
  std::chrono::milliseconds stall{10000};
  std::uint64_t min_rate = 32 * 1024;  // bytes per second
  int max_requests_per_connection = 100;
};

// httplib 0.11's limit on one request or header line, CRLF included
// (CPPHTTPLIB_HEADER_MAX_LENGTH and _REQUEST_URI_MAX_LENGTH, compiled into
// the Debian library: not ours to raise).
inline constexpr std::size_t kMaxHeaderLine = 8192;
// The longest bearer token that fits: "Authorization: Bearer " + CRLF.
inline constexpr std::size_t kMaxBearerToken = kMaxHeaderLine - 24;

// Why the current request was cut short below the handlers.
struct RequestFault {
  int status = 0;     // 401, 408, 414, 431
  std::string code;   // the API's error code
  std::string message;
};

struct ConnectionStats {
  std::uint64_t open = 0;       // admitted connections now
  std::uint64_t rejected = 0;   // answered 503 (or closed) at the cap
  std::uint64_t timed_out = 0;  // requests cut short by a time limit
};

// Owns an httplib server (TLS with cert and key) whose connections obey
// `limits`. Register routes and handlers on http() as usual.
class HttpServer {
 public:
  // nullptr when the TLS files cannot be loaded.
  static std::unique_ptr<HttpServer> Create(const ConnectionLimits& limits,
                                            const std::string& tls_cert,
                                            const std::string& tls_key);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  httplib::Server& http();
  // After bind: a listen backlog fit for `max_connections` (httplib's is 5).
  void RaiseBacklog();
  // Stops accepting, closes idle connections and those still sending their
  // headers; requests in flight finish (httplib's listen returns after).
  void Stop();
  ConnectionStats stats() const;

  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// --- hooks for the routing handlers (the calling thread's request) ---

// The request line and headers are read (call from the pre-routing
// handler). A request with neither (`content_length` nor `chunked`) has no
// body (RFC 9112 6.3): reading one ends at once instead of waiting for EOF.
void HeadersRead(std::optional<std::uint64_t> content_length, bool chunked);
// The reply ends the connection (its body was not read, or not all of it).
void CloseAfterResponse();
bool ClosingAfterResponse();
// The limit that cut this request short, if one did.
std::optional<RequestFault> CurrentFault();
// How far the request got (httplib answers 400 for a bad request line, bad
// headers and a body it could not read alike).
enum class RequestStage { kRequestLine, kHeaders, kBody };
RequestStage CurrentStage();

}  // namespace modelreg::server
