// UTF-8 checks for text that ends up in JSON (events, projection rows,
// manifest.json): reject it at the edge, or replace what is invalid.
#pragma once

#include <string>
#include <string_view>

namespace modelreg {

// Well-formed UTF-8: no stray continuation bytes, no truncated sequences,
// no overlong forms, no surrogates, nothing beyond U+10FFFF.
bool IsValidUtf8(std::string_view in);
// `in` with every invalid byte replaced by U+FFFD.
std::string SanitizeUtf8(std::string_view in);
// `in` for a line of human-readable output: control characters (C0, DEL)
// become \n, \r, \t or \xHH and a backslash becomes \\, so that text
// from a user (an actor, a reason, a metric name) can never start a new
// line or move the cursor and pass for output of its own (docs/cli.md).
std::string Printable(std::string_view in);

}  // namespace modelreg
