// Signed notes in the C2SP "signed-note" format (https://c2sp.org/signed-note),
// the format of Go's golang.org/x/mod/sumdb/note, Sigstore's and the
// transparency-dev checkpoints, so their tools read what we sign:
//
//   <text: UTF-8 lines, each ending in '\n'>
//   <blank line>
//   — <key name> <base64(be32 key id || Ed25519 signature)>
//
// The signature covers the text including its final newline. Keys are
// Ed25519 (OpenSSL), written as Go's note package writes them:
//   signer:   PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || 32-byte seed)>
//   verifier: <name>+<hex key id>+<base64(0x01 || 32-byte public key)>
// with key id = the first 4 bytes of SHA-256(name || '\n' || 0x01 || public key).
//
// Thread-safety: free functions; key values are plain data.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace modelreg::note {

using PublicKey = std::array<std::uint8_t, 32>;

struct VerifierKey {
  std::string name;
  PublicKey public_key{};
  std::uint32_t key_id = 0;
};

struct SignerKey {
  std::string name;
  std::array<std::uint8_t, 32> seed{};  // the Ed25519 private key
  VerifierKey verifier;
};

// Non-empty UTF-8 without spaces, control characters or '+'.
bool ValidKeyName(std::string_view name);
std::uint32_t KeyId(std::string_view name, const PublicKey& public_key);

// A new key pair from the system's random source.
Result<SignerKey> GenerateKey(std::string_view name);
Result<SignerKey> SignerFromSeed(std::string_view name, const std::array<std::uint8_t, 32>& seed);

std::string EncodeSignerKey(const SignerKey& key);
std::string EncodeVerifierKey(const VerifierKey& key);
// InvalidArgument naming what is wrong (never echoing a private key).
Result<SignerKey> ParseSignerKey(std::string_view text);
Result<VerifierKey> ParseVerifierKey(std::string_view text);

// The note: `text` with one signature line. InvalidArgument if the text is
// not a valid note text (empty, no final newline, a blank line, a control
// character, invalid UTF-8).
Result<std::string> Sign(std::string_view text, const SignerKey& key);

// The text of a note, its signatures NOT checked (to read which tree a
// checkpoint names before proving against it; whoever relies on it checks
// the signature with Open). InvalidArgument when it is not a note.
Result<std::string> UncheckedText(std::string_view note);

// Checks `note` against `key` and returns its text. InvalidArgument when
// the note is malformed or larger than 1 MiB, NotFound when no signature
// line is from `key`, PermissionDenied when the signature does not verify.
Result<std::string> Open(std::string_view note, const VerifierKey& key);

}  // namespace modelreg::note
