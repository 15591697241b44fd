#include "auth/token.h"

#include <cstdlib>
#include <memory>
#include <vector>

#include <jwt.h>
#include <nlohmann/json.hpp>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "common/json_input.h"
#include "common/utf8.h"

namespace modelreg::auth {

namespace {

using nlohmann::json;

Status Refused(const std::string& why) { return Status::InvalidArgument("token refused: " + why); }

// base64url without padding (RFC 7515) -> bytes; nullopt if malformed.
std::optional<std::string> Base64UrlDecode(std::string_view in) {
  std::string b64(in);
  for (char& c : b64) {
    if (c == '-') {
      c = '+';
    } else if (c == '_') {
      c = '/';
    } else if (!std::isalnum(static_cast<unsigned char>(c))) {
      return std::nullopt;
    }
  }
  if (b64.size() % 4 == 1) return std::nullopt;
  const std::size_t pad = (4 - b64.size() % 4) % 4;
  b64.append(pad, '=');
  std::string out(b64.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(b64.data()),
                                static_cast<int>(b64.size()));
  if (n < 0) return std::nullopt;
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

struct JwtDeleter {
  void operator()(jwt_t* j) const { jwt_free(j); }
};
using JwtPtr = std::unique_ptr<jwt_t, JwtDeleter>;

struct MallocDeleter {
  void operator()(char* p) const { std::free(p); }
};

// "HS256" etc. -> libjwt's enum.
jwt_alg_t AlgEnum(const std::string& alg) {
  if (alg == "HS256") return JWT_ALG_HS256;
  if (alg == "RS256") return JWT_ALG_RS256;
  if (alg == "ES256") return JWT_ALG_ES256;
  return JWT_ALG_INVAL;
}

Result<std::string> AlgorithmOfPublicKey(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())),
                                                &BIO_free);
  if (!bio) return Err(Status::Internal("BIO_new_mem_buf failed"));
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
  if (!key) {
    return Err(Status::InvalidArgument(
        "the JWT public key is not a PEM public key (\"-----BEGIN PUBLIC KEY-----\")"));
  }
  switch (EVP_PKEY_get_base_id(key.get())) {
    case EVP_PKEY_RSA:
      if (EVP_PKEY_get_bits(key.get()) < 2048) {
        return Err(Status::InvalidArgument("the JWT RSA public key is shorter than 2048 bits"));
      }
      return std::string("RS256");
    case EVP_PKEY_EC: {
      char group[64] = {0};
      std::size_t len = 0;
      if (EVP_PKEY_get_group_name(key.get(), group, sizeof group, &len) != 1 ||
          std::string(group) != "prime256v1") {
        return Err(Status::InvalidArgument(
            "the JWT EC public key must be on P-256 (prime256v1) for ES256"));
      }
      return std::string("ES256");
    }
    default:
      return Err(Status::InvalidArgument("the JWT public key must be RSA (RS256) or EC P-256 (ES256)"));
  }
}

}  // namespace

bool Claims::Allows(std::string_view scope) const {
  if (scopes.count(kScopeAdmin) != 0) return true;
  if (scope == kScopeRead) return scopes.count(kScopeRead) != 0 || scopes.count(kScopeWrite) != 0;
  return scopes.count(std::string(scope)) != 0;
}

Result<TokenVerifier> TokenVerifier::Create(VerifierConfig config) {
  TokenVerifier v;
  if (!config.hs256_secret.empty() && !config.public_key_pem.empty()) {
    return Err(Status::InvalidArgument(
        "give either an HS256 secret or a public key for JWT verification, not both"));
  }
  if (!config.public_key_pem.empty()) {
    auto alg = AlgorithmOfPublicKey(config.public_key_pem);
    if (!alg) return Err(alg.error());
    v.alg_ = *alg;
    v.key_ = config.public_key_pem;
  } else {
    if (config.hs256_secret.size() < kMinSecretBytes) {
      return Err(Status::InvalidArgument("the HS256 secret must be at least " +
                                         std::to_string(kMinSecretBytes) + " bytes"));
    }
    v.alg_ = "HS256";
    v.key_ = config.hs256_secret;
  }
  if (config.clock == nullptr) config.clock = &SystemClock::Instance();
  v.config_ = std::move(config);
  return v;
}

Result<Claims> TokenVerifier::Verify(std::string_view token) const {
  if (token.empty()) return Err(Refused("no token"));
  if (token.size() > kMaxTokenBytes) return Err(Refused("longer than 8 KiB"));
  const std::size_t dot1 = token.find('.');
  const std::size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos ||
      dot2 + 1 == token.size()) {
    return Err(Refused("not a signed JWT (header.payload.signature)"));
  }
  // The header decides nothing: it must name the one algorithm of our key.
  auto header_text = Base64UrlDecode(token.substr(0, dot1));
  if (!header_text) return Err(Refused("malformed header"));
  const json header = ParseJsonOrDiscarded(*header_text);
  if (!header.is_object() || !header.contains("alg") || !header["alg"].is_string()) {
    return Err(Refused("malformed header"));
  }
  const std::string alg = header["alg"].get<std::string>();
  if (alg != alg_) {
    return Err(Refused("algorithm " + SanitizeUtf8(alg) + " is not accepted (this server accepts " +
                       alg_ + ")"));
  }
  // RFC 7515 4.1.11: extensions listed as critical must be understood or
  // the token rejected; this server understands none.
  if (header.contains("crit")) {
    return Err(Refused("the token's header lists critical extensions (crit) this server does not "
                       "implement"));
  }
  jwt_t* raw = nullptr;
  const std::string token_str(token);
  const int rc = jwt_decode(&raw, token_str.c_str(),
                            reinterpret_cast<const unsigned char*>(key_.data()),
                            static_cast<int>(key_.size()));
  JwtPtr jwt(raw);
  if (rc != 0 || !jwt) return Err(Refused("signature does not verify"));
  if (jwt_get_alg(jwt.get()) != AlgEnum(alg_)) return Err(Refused("algorithm mismatch"));
  std::unique_ptr<char, MallocDeleter> grants(jwt_get_grants_json(jwt.get(), nullptr));
  if (!grants) return Err(Refused("no claims"));
  const json claims = ParseJsonOrDiscarded(grants.get());
  if (!claims.is_object()) return Err(Refused("claims are not a JSON object"));

  const std::int64_t now = config_.clock->NowNs() / 1'000'000'000;
  Claims out;
  if (claims.contains("exp")) {
    if (!claims["exp"].is_number()) return Err(Refused("exp is not a number"));
    const auto exp = claims["exp"].get<double>();
    if (static_cast<double>(now) >= exp) return Err(Refused("expired"));
    // Clamp far-future expiries to the end of the nanosecond range.
    out.expires_at = exp >= 9.2e9 ? INT64_MAX : static_cast<TimeNs>(exp) * 1'000'000'000;
  } else if (config_.require_exp) {
    return Err(Refused("no exp claim"));
  }
  if (claims.contains("nbf")) {
    if (!claims["nbf"].is_number()) return Err(Refused("nbf is not a number"));
    if (static_cast<double>(now) < claims["nbf"].get<double>()) {
      return Err(Refused("not valid yet (nbf)"));
    }
  }
  if (!config_.issuer.empty()) {
    if (!claims.contains("iss") || !claims["iss"].is_string() ||
        claims["iss"].get<std::string>() != config_.issuer) {
      return Err(Refused("wrong issuer"));
    }
  }
  if (!config_.audience.empty()) {
    bool ok = false;
    if (claims.contains("aud")) {
      const json& aud = claims["aud"];
      if (aud.is_string()) ok = aud.get<std::string>() == config_.audience;
      if (aud.is_array()) {
        for (const json& a : aud) ok = ok || (a.is_string() && a.get<std::string>() == config_.audience);
      }
    }
    if (!ok) return Err(Refused("wrong audience"));
  }
  if (!claims.contains("sub") || !claims["sub"].is_string()) return Err(Refused("no sub claim"));
  out.subject = claims["sub"].get<std::string>();
  if (out.subject.empty() || out.subject.size() > 256 || !IsValidUtf8(out.subject)) {
    return Err(Refused("sub must be 1..256 bytes of UTF-8"));
  }
  if (claims.contains("scope")) {
    if (!claims["scope"].is_string()) return Err(Refused("scope is not a string"));
    const std::string scope = claims["scope"].get<std::string>();
    std::size_t start = 0;
    while (start < scope.size()) {
      std::size_t end = scope.find(' ', start);
      if (end == std::string::npos) end = scope.size();
      if (end > start) out.scopes.insert(scope.substr(start, end - start));
      start = end + 1;
    }
  }
  return out;
}

Result<std::string> IssueHs256(const std::string& secret, const IssueOptions& options) {
  if (secret.size() < kMinSecretBytes) {
    return Err(Status::InvalidArgument("the HS256 secret must be at least " +
                                       std::to_string(kMinSecretBytes) + " bytes"));
  }
  if (options.subject.empty() || options.subject.size() > 256 ||
      !IsValidUtf8(options.subject)) {
    return Err(Status::InvalidArgument("--sub must be 1..256 bytes of UTF-8"));
  }
  for (const std::string& s : options.scopes) {
    if (s != kScopeRead && s != kScopeWrite && s != kScopeAdmin) {
      return Err(Status::InvalidArgument("unknown scope '" + SanitizeUtf8(s) +
                                         "'; valid: model:read, model:write, model:admin"));
    }
  }
  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0) return Err(Status::Internal("jwt_new failed"));
  JwtPtr jwt(raw);
  const long now = static_cast<long>(options.clock->NowNs() / 1'000'000'000);
  std::string scope;
  for (const std::string& s : options.scopes) scope += (scope.empty() ? "" : " ") + s;
  int rc = jwt_add_grant(jwt.get(), "sub", options.subject.c_str());
  if (rc == 0 && !scope.empty()) rc = jwt_add_grant(jwt.get(), "scope", scope.c_str());
  if (rc == 0) rc = jwt_add_grant_int(jwt.get(), "iat", now);
  if (rc == 0) rc = jwt_add_grant_int(jwt.get(), "nbf", now);
  if (rc == 0) rc = jwt_add_grant_int(jwt.get(), "exp", now + static_cast<long>(options.ttl.count()));
  if (rc == 0 && !options.issuer.empty()) rc = jwt_add_grant(jwt.get(), "iss", options.issuer.c_str());
  if (rc == 0 && !options.audience.empty()) {
    rc = jwt_add_grant(jwt.get(), "aud", options.audience.c_str());
  }
  if (rc == 0) {
    rc = jwt_set_alg(jwt.get(), JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(secret.data()),
                     static_cast<int>(secret.size()));
  }
  if (rc != 0) return Err(Status::Internal("cannot build the token (libjwt error " + std::to_string(rc) + ")"));
  std::unique_ptr<char, MallocDeleter> encoded(jwt_encode_str(jwt.get()));
  if (!encoded) return Err(Status::Internal("cannot sign the token"));
  return std::string(encoded.get());
}

Result<std::chrono::seconds> ParseTtl(std::string_view text) {
  if (text.size() < 2 || text.size() > 12) {
    return Err(Status::InvalidArgument("--ttl must look like 45s, 30m, 1h or 7d"));
  }
  long long n = 0;
  for (char c : text.substr(0, text.size() - 1)) {
    if (c < '0' || c > '9') return Err(Status::InvalidArgument("--ttl must look like 45s, 30m, 1h or 7d"));
    n = n * 10 + (c - '0');
  }
  long long unit = 0;
  switch (text.back()) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    default: return Err(Status::InvalidArgument("--ttl must look like 45s, 30m, 1h or 7d"));
  }
  const long long secs = n * unit;
  if (secs < 1 || secs > 366LL * 86400) {
    return Err(Status::InvalidArgument("--ttl must be between 1s and 366d"));
  }
  return std::chrono::seconds(secs);
}

std::string UnverifiedSubject(std::string_view token) {
  if (token.size() > kMaxTokenBytes) return "";
  const auto first = token.find('.');
  const auto second = first == std::string_view::npos ? first : token.find('.', first + 1);
  if (second == std::string_view::npos) return "";
  // base64url without padding -> base64 with padding, for EVP_DecodeBlock.
  std::string b64(token.substr(first + 1, second - first - 1));
  for (char& c : b64) {
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  std::size_t padding = 0;
  while (b64.size() % 4 != 0) {
    b64.push_back('=');
    ++padding;
  }
  std::string raw(b64.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(raw.data()),
                                reinterpret_cast<const unsigned char*>(b64.data()),
                                static_cast<int>(b64.size()));
  if (n < 0 || static_cast<std::size_t>(n) < padding) return "";
  raw.resize(static_cast<std::size_t>(n) - padding);  // the block decoder counts padding
  const auto claims = nlohmann::json::parse(raw, nullptr, false);
  if (!claims.is_object()) return "";
  const auto sub = claims.find("sub");
  return sub != claims.end() && sub->is_string() ? sub->get<std::string>() : "";
}

}  // namespace modelreg::auth
