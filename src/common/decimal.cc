#include "common/decimal.h"

#include <charconv>
#include <cmath>
#include <system_error>

namespace modelreg {

namespace {

bool Digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

bool IsDecimalNumber(std::string_view s) {
  std::size_t i = 0;
  const std::size_t n = s.size();
  if (i < n && s[i] == '-') ++i;
  // Integer part: "0", or a non-zero digit followed by digits.
  if (i == n || !Digit(s[i])) return false;
  if (s[i] == '0') {
    ++i;
  } else {
    while (i < n && Digit(s[i])) ++i;
  }
  // Fraction: '.' and at least one digit.
  if (i < n && s[i] == '.') {
    ++i;
    if (i == n || !Digit(s[i])) return false;
    while (i < n && Digit(s[i])) ++i;
  }
  // Exponent: e or E, an optional sign, at least one digit.
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
    if (i == n || !Digit(s[i])) return false;
    while (i < n && Digit(s[i])) ++i;
  }
  return i == n;
}

std::optional<double> ParseDecimal(std::string_view text, std::string* why) {
  auto fail = [why](const char* reason) -> std::optional<double> {
    if (why != nullptr) *why = reason;
    return std::nullopt;
  };
  if (!IsDecimalNumber(text)) return fail("not a decimal number");
  double v = 0;
  const char* end = text.data() + text.size();
  const auto r = std::from_chars(text.data(), end, v, std::chars_format::general);
  // libstdc++ returns subnormals as they are and reports result_out_of_range
  // only for a result that would overflow to infinity or underflow to zero.
  if (r.ec == std::errc::result_out_of_range) {
    return fail("out of the range of a double (magnitude above 1.8e308, or non-zero below "
                "4.9e-324)");
  }
  if (r.ec != std::errc() || r.ptr != end) return fail("not a decimal number");
  if (!std::isfinite(v)) return fail("not finite");
  return v;
}

}  // namespace modelreg
