#include "app/serve_commands.h"

#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "auth/token.h"
#include "client/remote.h"
#include "note/key_file.h"
#include "proofs/publisher.h"
#include "server/integrity.h"
#include "registry/registry.h"
#include "server/api_server.h"

namespace modelreg::app {

namespace {

Result<std::string> ReadKeyFile(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Err(Status::InvalidArgument("cannot read " + what + " " + path));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  if (text.size() > 64 * 1024) return Err(Status::InvalidArgument(what + " " + path + " is over 64 KiB"));
  return text;
}

// The HS256 secret: --jwt-secret-file, else MODELREG_JWT_SECRET.
Result<std::string> Secret(const JwtOptions& o) {
  if (!o.secret_file.empty()) {
    auto text = ReadKeyFile(o.secret_file, "JWT secret file");
    if (!text) return text;
    while (!text->empty() && (text->back() == '\n' || text->back() == '\r')) text->pop_back();
    return text;
  }
  if (const char* env = std::getenv("MODELREG_JWT_SECRET"); env != nullptr && *env != '\0') {
    return std::string(env);
  }
  return std::string();
}

Result<auth::TokenVerifier> Verifier(const JwtOptions& o) {
  auth::VerifierConfig config;
  config.issuer = o.issuer;
  config.audience = o.audience;
  if (!o.public_key_file.empty()) {
    auto pem = ReadKeyFile(o.public_key_file, "JWT public key");
    if (!pem) return Err(pem.error());
    config.public_key_pem = *pem;
  } else {
    auto secret = Secret(o);
    if (!secret) return Err(secret.error());
    if (secret->empty()) {
      return Err(Status::InvalidArgument(
          "no JWT key: set MODELREG_JWT_SECRET, or pass --jwt-secret-file FILE or "
          "--jwt-public-key FILE"));
    }
    config.hs256_secret = *secret;
  }
  return auth::TokenVerifier::Create(std::move(config));
}

// Each connection is a file descriptor, beside RocksDB's (up to 512 table
// files) and the uploads': raise the soft limit toward the hard one.
void RaiseOpenFileLimit(int max_connections) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  const rlim_t want = static_cast<rlim_t>(max_connections) + 2048;
  if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < want) {
    lim.rlim_cur = lim.rlim_max == RLIM_INFINITY ? want : std::min(want, lim.rlim_max);
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

}  // namespace

Status RunServe(const Globals& g, const ServeOptions& o, std::ostream& out) {
  server::ServerOptions so;
  const std::size_t colon = o.listen.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return Status::InvalidArgument("--listen must be HOST:PORT, e.g. 127.0.0.1:8080");
  }
  so.host = o.listen.substr(0, colon);
  const std::string port = o.listen.substr(colon + 1);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(port) > 65535) {
    return Status::InvalidArgument("--listen port must be 0..65535");
  }
  so.port = std::stoi(port);
  if (o.verify_every_seconds < 0) {
    return Status::InvalidArgument("--verify-every must be 0 (off) or a number of seconds");
  }
  so.tls_cert = o.tls_cert;
  so.tls_key = o.tls_key;
  so.max_upload_bytes = o.max_upload_mb << 20;
  so.limits.max_connections = o.max_connections;
  if (o.threads_given) {
    std::cerr << "modelreg serve: --threads is no longer used (a thread per connection); "
                 "see --max-connections\n";
  }
  RaiseOpenFileLimit(o.max_connections);
  auto verifier = Verifier(o.jwt);
  if (!verifier) return verifier.error();

  // SIGINT/SIGTERM are taken by sigwait below: block them before any
  // thread (RocksDB's, the server's) starts, so that they inherit the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGUSR1);
  sigaddset(&stop_signals, SIGALRM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  registry::RegistryOptions ro;
  ro.root = g.root;
  ro.create_if_missing = true;
  ro.clock = g.clock;
  ro.lock_wait_ms = g.lock_wait_ms;
  auto reg = registry::Registry::Open(ro);
  if (!reg) return reg.error();
  std::unique_ptr<proofs::CheckpointPublisher> checkpoints;
  if (!o.checkpoint_key.empty()) {
    auto key = note::ReadSignerKeyFile(o.checkpoint_key);
    if (!key) return key.error();
    proofs::PublisherOptions po;
    po.key = std::move(*key);
    po.origin = o.checkpoint_origin;
    po.witness_file = o.witness_file;
    po.every_seconds = o.checkpoint_every_seconds;
    po.every_events = o.checkpoint_every_events;
    po.clock = g.clock;
    po.on_error = [](const Status& st) {
      std::cerr << "modelreg serve: checkpoint not published: " << st.ToString() << std::endl;
    };
    checkpoints = std::make_unique<proofs::CheckpointPublisher>((*reg)->Log(), std::move(po));
    MODELREG_RETURN_IF_ERROR(checkpoints->Start());
    so.checkpoints = checkpoints.get();
  }
  std::unique_ptr<server::IntegrityMonitor> integrity;
  if (o.verify_every_seconds > 0) {
    integrity = std::make_unique<server::IntegrityMonitor>(
        g.root, std::chrono::seconds(o.verify_every_seconds));
    integrity->Start();
    so.integrity = integrity.get();
  }
  auto srv = server::ApiServer::Create(**reg, std::move(*verifier), so);
  if (!srv) return srv.error();
  MODELREG_RETURN_IF_ERROR((*srv)->Bind());
  MODELREG_RETURN_IF_ERROR(
      client::AnnounceServer(g.root, client::ServerInfo{(*srv)->url(), static_cast<long>(getpid())}));
  out << "serving " << g.root << " on " << (*srv)->url() << std::endl;

  Status served;
  std::atomic<bool> serve_returned{false};
  std::thread serving([&] {
    served = (*srv)->Serve();
    serve_returned.store(true);
    kill(getpid(), SIGUSR1);  // wake the waiter if the server stopped by itself
  });
  if (o.exit_after_seconds > 0) alarm(static_cast<unsigned>(o.exit_after_seconds));
  int sig = 0;
  sigwait(&stop_signals, &sig);
  // Requests in flight finish before Serve returns. A stop that lands before
  // the server entered its accept loop does nothing, so repeat it.
  while (!serve_returned.load()) {
    (*srv)->Stop();
    for (int i = 0; i < 10 && !serve_returned.load(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  serving.join();
  client::WithdrawServer(g.root);
  out << "stopped (" << (sig == SIGALRM ? "--exit-after" : sig == SIGUSR1 ? "server ended" : "signal")
      << ")" << std::endl;
  return served;
}

Status RunTokenIssue(const Globals& g, const TokenOptions& o, std::ostream& out) {
  auto secret = Secret(o.jwt);
  if (!secret) return secret.error();
  if (secret->empty()) {
    return Status::InvalidArgument(
        "no HS256 secret: set MODELREG_JWT_SECRET or pass --jwt-secret-file FILE");
  }
  auto ttl = auth::ParseTtl(o.ttl);
  if (!ttl) return ttl.error();
  auth::IssueOptions io;
  io.subject = o.subject;
  for (const std::string& s : o.scopes) {
    // "--scope a,b" and "--scope a --scope b" both work.
    std::size_t start = 0;
    while (start <= s.size()) {
      std::size_t end = s.find_first_of(", ", start);
      if (end == std::string::npos) end = s.size();
      if (end > start) io.scopes.insert(s.substr(start, end - start));
      start = end + 1;
    }
  }
  if (io.scopes.empty()) return Status::InvalidArgument("give at least one --scope");
  io.ttl = *ttl;
  io.issuer = o.jwt.issuer;
  io.audience = o.jwt.audience;
  io.clock = g.clock;
  auto token = auth::IssueHs256(*secret, io);
  if (!token) return token.error();
  out << *token << '\n';
  return Status::OK();
}

}  // namespace modelreg::app
