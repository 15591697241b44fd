#include "note/note.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstdio>
#include <memory>
#include <optional>
#include <tuple>
#include <vector>

#include "common/base64.h"
#include "common/sha256.h"
#include "common/utf8.h"

namespace modelreg::note {

namespace {

constexpr std::uint8_t kAlgEd25519 = 0x01;
constexpr std::string_view kSignaturePrefix = "\xE2\x80\x94 ";  // U+2014 EM DASH, space
constexpr std::string_view kPrivatePrefix = "PRIVATE+KEY+";
constexpr std::size_t kMaxNoteBytes = 1u << 20;
constexpr std::size_t kMaxSignatures = 100;

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

Status Bad(std::string what) { return Status::InvalidArgument(std::move(what)); }

std::string KeyIdHex(std::uint32_t id) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", id);
  return buf;
}

std::optional<std::uint32_t> ParseKeyIdHex(std::string_view hex) {
  if (hex.size() != 8) return std::nullopt;
  std::uint32_t id = 0;
  for (char c : hex) {
    int v = -1;
    if (c >= '0' && c <= '9') v = c - '0';
    if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    if (v < 0) return std::nullopt;
    id = (id << 4) | static_cast<std::uint32_t>(v);
  }
  return id;
}

// "<name>+<hex id>+<base64(0x01 || 32 bytes)>": the name, the id and the
// 32 key bytes.
Result<std::tuple<std::string, std::uint32_t, std::array<std::uint8_t, 32>>> SplitKey(
    std::string_view text, std::string_view what) {
  const auto plus1 = text.find('+');
  const auto plus2 = plus1 == std::string_view::npos ? plus1 : text.find('+', plus1 + 1);
  if (plus2 == std::string_view::npos) {
    return Err(Bad(std::string(what) + ": not of the form NAME+KEYID+KEY"));
  }
  const std::string_view name = text.substr(0, plus1);
  if (!ValidKeyName(name)) return Err(Bad(std::string(what) + ": invalid key name"));
  auto id = ParseKeyIdHex(text.substr(plus1 + 1, plus2 - plus1 - 1));
  if (!id) return Err(Bad(std::string(what) + ": the key id is not 8 lower-case hex digits"));
  auto raw = Base64Decode(text.substr(plus2 + 1));
  if (!raw || raw->size() != 33) {
    return Err(Bad(std::string(what) + ": the key is not base64 of 33 bytes"));
  }
  if (static_cast<std::uint8_t>((*raw)[0]) != kAlgEd25519) {
    return Err(Bad(std::string(what) + ": not an Ed25519 key (algorithm " +
                   std::to_string(static_cast<std::uint8_t>((*raw)[0])) + ")"));
  }
  std::array<std::uint8_t, 32> bytes{};
  std::copy(raw->begin() + 1, raw->end(), bytes.begin());
  return std::make_tuple(std::string(name), *id, bytes);
}

Status CheckText(std::string_view text) {
  if (text.empty()) return Bad("a note's text is empty");
  if (text.back() != '\n') return Bad("a note's text must end with a newline");
  if (text.find("\n\n") != std::string_view::npos || text.front() == '\n') {
    return Bad("a note's text must not contain a blank line");
  }
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\n') || u == 0x7f) return Bad("a note's text has a control character");
  }
  if (!IsValidUtf8(text)) return Bad("a note's text is not valid UTF-8");
  return Status::OK();
}

std::string Be32(std::uint32_t v) {
  std::string out(4, '\0');
  for (int i = 0; i < 4; ++i) out[static_cast<std::size_t>(i)] = static_cast<char>(v >> (24 - 8 * i));
  return out;
}

}  // namespace

bool ValidKeyName(std::string_view name) {
  if (name.empty() || !IsValidUtf8(name)) return false;
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '+') return false;
  }
  return true;
}

std::uint32_t KeyId(std::string_view name, const PublicKey& public_key) {
  Sha256 h;
  h.Update(name);
  h.Update(std::string_view("\n"));
  h.Update(std::string_view(reinterpret_cast<const char*>(&kAlgEd25519), 1));
  h.Update(std::span<const std::uint8_t>(public_key));
  const Digest d = h.Finish();
  return (std::uint32_t{d[0]} << 24) | (std::uint32_t{d[1]} << 16) | (std::uint32_t{d[2]} << 8) |
         std::uint32_t{d[3]};
}

Result<SignerKey> SignerFromSeed(std::string_view name, const std::array<std::uint8_t, 32>& seed) {
  if (!ValidKeyName(name)) {
    return Err(Bad("key name must be non-empty, without spaces, control characters or '+'"));
  }
  Pkey pkey(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed.data(), seed.size()));
  if (!pkey) return Err(Status::Internal("OpenSSL could not make an Ed25519 key"));
  SignerKey key;
  key.name = std::string(name);
  key.seed = seed;
  std::size_t len = key.verifier.public_key.size();
  if (EVP_PKEY_get_raw_public_key(pkey.get(), key.verifier.public_key.data(), &len) != 1 ||
      len != 32) {
    return Err(Status::Internal("OpenSSL could not derive the Ed25519 public key"));
  }
  key.verifier.name = key.name;
  key.verifier.key_id = KeyId(name, key.verifier.public_key);
  return key;
}

Result<SignerKey> GenerateKey(std::string_view name) {
  std::array<std::uint8_t, 32> seed{};
  if (RAND_bytes(seed.data(), static_cast<int>(seed.size())) != 1) {
    return Err(Status::Internal("the system's random source failed"));
  }
  return SignerFromSeed(name, seed);
}

std::string EncodeSignerKey(const SignerKey& key) {
  std::string raw(1, static_cast<char>(kAlgEd25519));
  raw.append(reinterpret_cast<const char*>(key.seed.data()), key.seed.size());
  return std::string(kPrivatePrefix) + key.name + "+" + KeyIdHex(key.verifier.key_id) + "+" +
         Base64Encode(raw);
}

std::string EncodeVerifierKey(const VerifierKey& key) {
  std::string raw(1, static_cast<char>(kAlgEd25519));
  raw.append(reinterpret_cast<const char*>(key.public_key.data()), key.public_key.size());
  return key.name + "+" + KeyIdHex(key.key_id) + "+" + Base64Encode(raw);
}

Result<SignerKey> ParseSignerKey(std::string_view text) {
  while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (text.substr(0, kPrivatePrefix.size()) != kPrivatePrefix) {
    return Err(Bad("signer key: does not start with PRIVATE+KEY+"));
  }
  auto parts = SplitKey(text.substr(kPrivatePrefix.size()), "signer key");
  if (!parts) return Err(parts.error());
  auto& [name, id, seed] = *parts;
  auto key = SignerFromSeed(name, seed);
  if (!key) return key;
  if (key->verifier.key_id != id) {
    return Err(Bad("signer key: its key id does not match its name and key"));
  }
  return key;
}

Result<VerifierKey> ParseVerifierKey(std::string_view text) {
  while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  auto parts = SplitKey(text, "verifier key");
  if (!parts) return Err(parts.error());
  auto& [name, id, public_key] = *parts;
  VerifierKey key{name, public_key, KeyId(name, public_key)};
  if (key.key_id != id) return Err(Bad("verifier key: its key id does not match its name and key"));
  return key;
}

Result<std::string> Sign(std::string_view text, const SignerKey& key) {
  MODELREG_RETURN_IF_ERROR(CheckText(text));
  Pkey pkey(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, key.seed.data(),
                                         key.seed.size()));
  MdCtx ctx(EVP_MD_CTX_new());
  std::array<std::uint8_t, 64> sig{};
  std::size_t sig_len = sig.size();
  if (!pkey || !ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) != 1 ||
      EVP_DigestSign(ctx.get(), sig.data(), &sig_len,
                     reinterpret_cast<const unsigned char*>(text.data()), text.size()) != 1 ||
      sig_len != sig.size()) {
    return Err(Status::Internal("OpenSSL could not sign with Ed25519"));
  }
  std::string blob = Be32(key.verifier.key_id);
  blob.append(reinterpret_cast<const char*>(sig.data()), sig.size());
  std::string out(text);
  out += "\n";
  out += kSignaturePrefix;
  out += key.name + " " + Base64Encode(blob) + "\n";
  return out;
}

Result<std::string> UncheckedText(std::string_view note) {
  if (note.size() > kMaxNoteBytes) return Err(Bad("the note is larger than 1 MiB"));
  const auto split = note.rfind("\n\n");
  if (split == std::string_view::npos) return Err(Bad("the note has no signature lines"));
  const std::string_view text = note.substr(0, split + 1);
  MODELREG_RETURN_IF_ERROR(CheckText(text));
  return std::string(text);
}

Result<std::string> Open(std::string_view note, const VerifierKey& key) {
  if (note.size() > kMaxNoteBytes) return Err(Bad("the note is larger than 1 MiB"));
  const auto split = note.rfind("\n\n");
  if (split == std::string_view::npos) return Err(Bad("the note has no signature lines"));
  const std::string_view text = note.substr(0, split + 1);
  std::string_view sigs = note.substr(split + 2);
  MODELREG_RETURN_IF_ERROR(CheckText(text));
  if (sigs.empty() || sigs.back() != '\n') {
    return Err(Bad("the note's signature lines must end with a newline"));
  }
  bool found = false;
  std::vector<std::uint8_t> signature;
  std::size_t count = 0;
  while (!sigs.empty()) {
    const auto eol = sigs.find('\n');
    const std::string_view line = sigs.substr(0, eol);
    sigs.remove_prefix(eol + 1);
    if (++count > kMaxSignatures) return Err(Bad("the note has more than 100 signatures"));
    if (line.substr(0, kSignaturePrefix.size()) != kSignaturePrefix) {
      return Err(Bad("a signature line does not start with an em dash and a space"));
    }
    const std::string_view rest = line.substr(kSignaturePrefix.size());
    const auto space = rest.find(' ');
    if (space == std::string_view::npos) return Err(Bad("a signature line has no signature"));
    const std::string_view name = rest.substr(0, space);
    auto blob = Base64Decode(rest.substr(space + 1));
    if (!ValidKeyName(name) || !blob || blob->size() < 5) {
      return Err(Bad("a signature line is malformed"));
    }
    const auto* b = reinterpret_cast<const std::uint8_t*>(blob->data());
    const std::uint32_t id = (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) |
                             (std::uint32_t{b[2]} << 8) | std::uint32_t{b[3]};
    if (found || name != key.name || id != key.key_id) continue;  // another signer's
    found = true;
    signature.assign(b + 4, b + blob->size());
  }
  if (!found) {
    return Err(Status::NotFound("the note is not signed by key " + key.name + "+" +
                                KeyIdHex(key.key_id)));
  }
  Pkey pkey(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, key.public_key.data(),
                                        key.public_key.size()));
  MdCtx ctx(EVP_MD_CTX_new());
  if (!pkey || !ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) != 1) {
    return Err(Status::Internal("OpenSSL could not load the Ed25519 public key"));
  }
  if (signature.size() != 64 ||
      EVP_DigestVerify(ctx.get(), signature.data(), signature.size(),
                       reinterpret_cast<const unsigned char*>(text.data()), text.size()) != 1) {
    return Err(Status::PermissionDenied("the signature of key " + key.name + "+" +
                                        KeyIdHex(key.key_id) + " does not verify: the note was "
                                        "altered or signed by another key"));
  }
  return std::string(text);
}

}  // namespace modelreg::note
