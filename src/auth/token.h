// JWT bearer tokens for the HTTP API (libjwt does the signatures).
//
// A TokenVerifier accepts exactly one algorithm, fixed by its key: HS256
// for a shared secret, RS256 for an RSA public key, ES256 for an EC P-256
// public key. The token's header must name that algorithm before any
// signature check runs, so "alg": "none" and algorithm confusion (an
// RS256 public key used as an HS256 secret) are refused. exp and nbf are
// checked against an injectable clock; iss and aud when configured.
// Scopes come from the space-separated "scope" claim; the subject ("sub")
// is the actor recorded in events.
// Thread-safety: a TokenVerifier is immutable after Create; Verify may be
// called from any thread.
#pragma once

#include <chrono>
#include <set>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"

namespace modelreg::auth {

inline constexpr char kScopeRead[] = "model:read";
inline constexpr char kScopeWrite[] = "model:write";
inline constexpr char kScopeAdmin[] = "model:admin";
// Tokens longer than this are refused before parsing.
inline constexpr std::size_t kMaxTokenBytes = 8192;

struct Claims {
  std::string subject;
  std::set<std::string> scopes;
  TimeNs expires_at = 0;  // 0 = no exp claim
  // model:admin implies model:write, which implies model:read.
  bool Allows(std::string_view scope) const;
};

struct VerifierConfig {
  std::string hs256_secret;    // shared secret (HS256), or
  std::string public_key_pem;  // an RSA (RS256) or EC P-256 (ES256) public key
  std::string issuer;          // required "iss" when not empty
  std::string audience;        // required in "aud" (string or array) when not empty
  bool require_exp = true;     // tokens without exp are refused
  const Clock* clock = &SystemClock::Instance();
};

class TokenVerifier {
 public:
  // InvalidArgument for a missing/short secret or a key that is neither RSA
  // nor EC P-256 (the message names the problem).
  static Result<TokenVerifier> Create(VerifierConfig config);

  // InvalidArgument with the reason (expired, bad signature, wrong
  // audience, ...) for any token that must not be accepted.
  Result<Claims> Verify(std::string_view token) const;

  std::string_view algorithm() const { return alg_; }

 private:
  TokenVerifier() = default;
  VerifierConfig config_;
  std::string alg_;  // "HS256" | "RS256" | "ES256"
  std::string key_;  // the secret or the PEM
};

struct IssueOptions {
  std::string subject;
  std::set<std::string> scopes;
  std::chrono::seconds ttl{3600};
  std::string issuer;    // omitted when empty
  std::string audience;  // omitted when empty
  const Clock* clock = &SystemClock::Instance();
};

// Issues an HS256 token (for operators: `modelreg token issue`).
Result<std::string> IssueHs256(const std::string& secret, const IssueOptions& options);

// The "sub" claim of `token`, read WITHOUT checking its signature or
// expiry: only for telling a user which actor a server will record for
// them (the server verifies the token). Empty if it cannot be read.
std::string UnverifiedSubject(std::string_view token);

// Parses "1h", "30m", "45s", "7d" (1 s .. 366 d).
Result<std::chrono::seconds> ParseTtl(std::string_view text);

// Minimum length of an HS256 secret (bytes).
inline constexpr std::size_t kMinSecretBytes = 32;

}  // namespace modelreg::auth
