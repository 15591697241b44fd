// libFuzzer target for the HTTP request handling: routes, headers, bodies,
// multipart uploads, the connection layer's limits. The real API server
// (server/api_server.h over server/connections.h and cpp-httplib) runs once
// in this process on 127.0.0.1 (an ephemeral port) over a registry in a
// temporary directory (under /dev/shm when it exists: writes fsync), with
// one production version to read. Each input is written raw to a fresh TCP
// connection, the write side is shut, and the reply is read until the
// server closes.
//
// Findings: a crash or sanitizer report anywhere in the server (its threads
// are in this process); a server that neither answers nor closes within 8 s;
// a reply that is not HTTP/1.1; an error status (>= 400) whose body is not
// the API's JSON error {"error": {"code", "message"}} (docs/api.md).
//
// "$TOKEN" in an input is replaced by a valid model:admin token signed with
// the server's secret, so that the corpus reaches the authenticated routes
// and stays valid across runs. Seeds: fuzz_http_seeds. Run: tools/run-fuzz.
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include <nlohmann/json.hpp>

#include "auth/token.h"
#include "registry/registry.h"
#include "server/api_server.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const std::string kSecret = "fuzz-http-secret-0123456789abcdef0123456789";

struct Fixture {
  std::string root;
  std::unique_ptr<modelreg::registry::Registry> reg;
  std::unique_ptr<modelreg::server::ApiServer> server;
  std::thread serving;
  std::string token;
  int port = 0;
};

[[noreturn]] void Fail(const char* why) {
  std::fprintf(stderr, "fuzz_http: %s\n", why);
  __builtin_trap();
}

// Non-blocking, so that libFuzzer's timer signal (SIGALRM, -timeout) cannot
// leave a connect() interrupted half way.
int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS && errno != EINTR) {
      close(fd);
      return -1;
    }
    pollfd p{fd, POLLOUT, 0};
    const auto deadline = Clock::now() + std::chrono::seconds(5);
    while (poll(&p, 1, 100) <= 0 && Clock::now() < deadline) {
    }
    int err = 0;
    socklen_t len = sizeof err;
    if ((p.revents & POLLOUT) == 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
      if (err != 0) errno = err;
      close(fd);
      return -1;
    }
  }
  return fd;
}

// Sends `input`, shuts the write side, reads until the server closes.
// False when it neither answered nor closed in time.
bool Exchange(int port, std::string_view input, std::string* reply) {
  const int fd = Connect(port);
  if (fd < 0) {
    std::fprintf(stderr, "fuzz_http: connect: %s\n", std::strerror(errno));
    Fail("cannot connect to the server");
  }
  const auto deadline = Clock::now() + std::chrono::seconds(8);
  std::size_t sent = 0;
  bool closed = false;
  if (input.empty()) shutdown(fd, SHUT_WR);
  // Send and read together: the server may answer (and stop reading)
  // before the input is all sent.
  while (!closed) {
    const bool sending = sent < input.size();
    pollfd p{fd, static_cast<short>(POLLIN | (sending ? POLLOUT : 0)), 0};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) break;
    if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    if ((p.revents & POLLOUT) != 0 && sending) {
      const ssize_t n = send(fd, input.data() + sent, input.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) sent += static_cast<std::size_t>(n);
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        sent = input.size();  // reset: stop sending
      }
      if (sent == input.size()) shutdown(fd, SHUT_WR);
    }
    if ((p.revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      char buf[16384];
      const ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) {
        reply->append(buf, static_cast<std::size_t>(n));
      } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        closed = true;
      }
    }
  }
  close(fd);
  return closed;
}

// The first reply that is not "100 Continue": an error must be the API's JSON.
void CheckReply(const std::string& reply) {
  std::size_t at = 0;
  for (;;) {
    if (reply.size() <= at) return;  // closed without a reply: allowed
    if (reply.compare(at, 9, "HTTP/1.1 ") != 0) Fail("a reply that is not HTTP/1.1");
    const std::size_t end = reply.find("\r\n\r\n", at);
    if (end == std::string::npos) return;  // cut off, or a reply to HEAD: nothing to check
    const int status = std::atoi(reply.c_str() + at + 9);
    if (status < 100 || status > 599) Fail("a reply with an impossible status");
    if (status == 100) {
      at = end + 4;
      continue;
    }
    if (status < 400) return;
    std::string head = reply.substr(at, end - at);
    for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const std::size_t cl = head.find("\r\ncontent-length:");
    if (cl == std::string::npos) Fail("an error reply without Content-Length");
    const std::size_t length = std::strtoul(head.c_str() + cl + 17, nullptr, 10);
    if (reply.size() < end + 4 + length) return;  // cut off
    const auto body = nlohmann::json::parse(reply.substr(end + 4, length), nullptr, false);
    if (!body.is_object() || !body.contains("error") || !body["error"].is_object() ||
        !body["error"].contains("code") || !body["error"]["code"].is_string() ||
        !body["error"].contains("message") || !body["error"]["message"].is_string()) {
      std::fprintf(stderr, "fuzz_http: reply:\n%s\n", reply.substr(at, end + 4 + length - at).c_str());
      Fail("an error reply whose body is not {\"error\": {\"code\", \"message\"}}");
    }
    return;
  }
}

Fixture* Start() {
  auto* f = new Fixture();  // lives as long as the process
  const char* base = std::getenv("FUZZ_HTTP_DIR");
  std::string dir = base != nullptr ? base : fs::exists("/dev/shm") ? "/dev/shm" : "/tmp";
  std::string tmpl = dir + "/modelreg-fuzz-http-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) Fail("cannot create the registry directory");
  f->root = tmpl;
  std::ofstream(f->root + "/policy.toml")
      << "[default]\nic = \"off\"\nsharpe = \"off\"\npaper_trading_hours = \"off\"\n";
  modelreg::registry::RegistryOptions ro;
  ro.root = f->root;
  ro.create_if_missing = true;
  ro.on_warning = [](const std::string&) {};
  auto reg = modelreg::registry::Registry::Open(ro);
  if (!reg) Fail("cannot open the registry");
  f->reg = std::move(*reg);
  // Something to read: risk_model v1.0.0 in production.
  std::ofstream(f->root + "/seed.pkl") << "seed weights";
  modelreg::registry::MetadataInput in;
  in.metadata_json = R"({"metrics": {"ic": 0.05, "sharpe": 1.2}, "dataset_version_ids": {"crsp": "v1"}})";
  const modelreg::registry::Actor actor{"fuzz", "seed"};
  if (!f->reg->Register("risk_model", "v1.0.0", f->root + "/seed.pkl", in, actor)) Fail("cannot register the seed");
  if (!f->reg->Promote("risk_model", "v1.0.0", std::nullopt, false, actor)) Fail("cannot promote the seed");

  modelreg::auth::VerifierConfig vc;
  vc.hs256_secret = kSecret;
  auto verifier = modelreg::auth::TokenVerifier::Create(vc);
  if (!verifier) Fail("cannot create the verifier");
  modelreg::server::ServerOptions so;
  so.port = 0;
  so.max_upload_bytes = 1 << 20;
  so.max_wait_seconds = 0;  // a long poll in the corpus would only be a timeout
  so.limits.max_connections = 64;
  auto server = modelreg::server::ApiServer::Create(*f->reg, std::move(*verifier), so);
  if (!server || !(*server)->Bind().ok()) Fail("cannot start the server");
  f->server = std::move(*server);
  f->port = f->server->port();
  f->serving = std::thread([f] {
    const modelreg::Status st = f->server->Serve();
    std::fprintf(stderr, "fuzz_http: the server stopped serving: %s\n", st.ToString().c_str());
  });
  modelreg::auth::IssueOptions io;
  io.subject = "fuzz";
  io.scopes = {modelreg::auth::kScopeAdmin};
  io.ttl = std::chrono::hours(24 * 366);
  auto token = modelreg::auth::IssueHs256(kSecret, io);
  if (!token) Fail("cannot issue a token");
  f->token = *token;
  for (int i = 0; i < 200; ++i) {  // until it answers
    std::string reply;
    if (Exchange(f->port, "GET /healthz HTTP/1.1\r\n\r\n", &reply) && reply.rfind("HTTP/1.1 200", 0) == 0) {
      return f;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Fail("the server does not answer /healthz");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Fixture* f = Start();
  std::string input(reinterpret_cast<const char*>(data), size);
  for (std::size_t at = 0; (at = input.find("$TOKEN", at)) != std::string::npos; at += f->token.size()) {
    input.replace(at, 6, f->token);
  }
  std::string reply;
  if (!Exchange(f->port, input, &reply)) Fail("the server neither answered nor closed within 8 s");
  // A reply to HEAD has no body to check.
  if (input.rfind("HEAD ", 0) == 0) reply.resize(std::min(reply.size(), reply.find("\r\n\r\n")));
  CheckReply(reply);
  return 0;
}
