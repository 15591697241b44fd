// Big-endian fixed-width integers for RocksDB keys (byte order = numeric order).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace modelreg {

inline void PutBe64(std::string& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

inline std::string Be64(std::uint64_t v) {
  std::string out;
  out.reserve(8);
  PutBe64(out, v);
  return out;
}

// Reads 8 bytes at the start of `in`; the caller checks the size first.
inline std::uint64_t GetBe64(std::string_view in) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | static_cast<std::uint8_t>(in[i]);
  return v;
}

// Signed time as an order-preserving unsigned key (flip the sign bit).
inline std::uint64_t OrderedFromSigned(std::int64_t v) {
  return static_cast<std::uint64_t>(v) ^ (std::uint64_t{1} << 63);
}
inline std::int64_t SignedFromOrdered(std::uint64_t v) {
  return static_cast<std::int64_t>(v ^ (std::uint64_t{1} << 63));
}

}  // namespace modelreg
