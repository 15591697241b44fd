// Paging of the API's list, history and events answers (docs/api.md,
// "Paging"): limit=N rows (1..kMaxPageLimit, default kMaxPageLimit) and
// an opaque cursor=, the "next" of the previous page.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"

namespace modelreg::server {

inline constexpr std::uint64_t kMaxPageLimit = 1000;

// limit=VALUE (nullopt when absent: kMaxPageLimit). Anything but a whole
// number from 1 to kMaxPageLimit is InvalidArgument naming the range.
Result<std::size_t> ParseLimit(const std::optional<std::string>& value);

// Where the next page starts. A list pins the instant its first page
// answered as of (so later pages page through the same listing) and how
// many rows were given; history and events continue after a sequence
// number.
struct Cursor {
  TimeNs at = 0;            // lists only
  std::uint64_t after = 0;  // lists: rows already given; else a sequence number
};
std::string EncodeCursor(const Cursor& c, bool list);
// InvalidArgument for anything EncodeCursor(_, list) did not make.
Result<Cursor> DecodeCursor(std::string_view text, bool list);

}  // namespace modelreg::server
