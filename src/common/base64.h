// Standard base64 (RFC 4648 §4, with padding) through OpenSSL.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace modelreg {

std::string Base64Encode(std::string_view bytes);
// Only the canonical encoding of some bytes: the alphabet, padding only at
// the end, no whitespace, and the unused bits of the last character zero
// (so that one value has one text, which signed texts rely on).
std::optional<std::string> Base64Decode(std::string_view text);

}  // namespace modelreg
