// The one grammar for numbers typed by people: `--metric NAME=NUMBER` and
// the thresholds of promotion gates in policy.toml (docs/cli.md, "Numbers").
//
//   -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
//
// which is exactly a JSON number (RFC 8259), so a metric given on the
// command line accepts what the same metric in a metadata file accepts.
// No whitespace anywhere, no '+' sign, no leading zeros ("007"), no bare
// point (".5", "5."), no hex ("0x10"), no "inf"/"nan"; the value must be
// finite. Subnormals (down to 4.9e-324) are accepted; a non-zero number
// too small to be represented at all (it would round to 0, e.g. 1e-400)
// and one too large (1e309) are refused. Conversion is correctly rounded
// and independent of the locale (std::from_chars).
// Thread-safety: plain functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace modelreg {

// Does `text` match the grammar above (syntax only)?
bool IsDecimalNumber(std::string_view text);

// The value of `text`, or nullopt when it does not match the grammar or is
// out of range. `why`, when given, receives a short reason on failure.
std::optional<double> ParseDecimal(std::string_view text, std::string* why = nullptr);

// The grammar in words, for error messages.
inline constexpr std::string_view kDecimalGrammarHint =
    "a finite number in decimal, such as 1.5, -0.02, 0 or 3e-5 (optional '-', digits without "
    "leading zeros, optional .digits, optional exponent; no spaces, '+', hex, inf or nan)";

}  // namespace modelreg
