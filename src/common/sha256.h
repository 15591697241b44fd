// SHA-256 through OpenSSL's EVP interface, one-shot or streaming.
// Thread-safety: a Sha256 object is used by one thread at a time.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace modelreg {

using Digest = std::array<std::uint8_t, 32>;

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(std::span<const std::uint8_t> bytes);
  void Update(std::string_view bytes);
  // Returns the digest and resets the object for reuse.
  Digest Finish();

  static Digest Of(std::string_view bytes);

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

// Lower-case hex, 64 characters.
std::string ToHex(const Digest& d);
// Parses 64 hex characters (either case); nullopt otherwise.
std::optional<Digest> DigestFromHex(std::string_view hex);

}  // namespace modelreg
