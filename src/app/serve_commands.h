// `modelreg serve` (the HTTP API over one registry) and `modelreg token
// issue` (HS256 tokens for operators). docs/api.md.
#pragma once

#include <cstdint>

#include <ostream>
#include <set>
#include <string>

#include "app/registry_commands.h"
#include "common/status.h"

namespace modelreg::app {

struct JwtOptions {
  std::string secret_file;      // --jwt-secret-file (else MODELREG_JWT_SECRET)
  std::string public_key_file;  // --jwt-public-key
  std::string issuer;           // --jwt-issuer
  std::string audience;         // --jwt-audience
};

struct ServeOptions {
  std::string listen = "127.0.0.1:8080";
  std::string tls_cert, tls_key;
  JwtOptions jwt;
  std::uint64_t max_upload_mb = 4096;
  int max_connections = 512;   // open at once; a thread each
  bool threads_given = false;  // --threads (no longer used) was passed
  int exit_after_seconds = 0;  // 0 = until SIGTERM/SIGINT
  // Signed checkpoints (docs/proofs.md): the private key file ("" = none),
  // the log's name in them, the witness file, and how often.
  std::string checkpoint_key;
  std::string checkpoint_origin;
  std::string witness_file;
  int checkpoint_every_seconds = 3600;
  std::uint64_t checkpoint_every_events = 0;
  // The background verification (GET /api/v1/integrity, the web page):
  // at start, then every this many seconds; 0 = none.
  int verify_every_seconds = 3600;
};
// Serves until SIGTERM or SIGINT (requests in flight finish), or for
// exit_after_seconds. Prints "serving ROOT on URL" once listening.
Status RunServe(const Globals& g, const ServeOptions& o, std::ostream& out);

struct TokenOptions {
  std::string subject;
  std::vector<std::string> scopes;
  std::string ttl = "1h";
  JwtOptions jwt;
};
Status RunTokenIssue(const Globals& g, const TokenOptions& o, std::ostream& out);

}  // namespace modelreg::app
