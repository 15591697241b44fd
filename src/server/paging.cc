#include "server/paging.h"

#include <charconv>

namespace modelreg::server {

namespace {

bool ParseU64(std::string_view s, std::uint64_t* out) {
  if (s.empty() || s.size() > 19) return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

Status BadCursor() {
  return Status::InvalidArgument(
      "cursor is not one this server gave: pass the \"next\" of the previous page as it is");
}

}  // namespace

Result<std::size_t> ParseLimit(const std::optional<std::string>& value) {
  if (!value) return static_cast<std::size_t>(kMaxPageLimit);
  std::uint64_t n = 0;
  if (!ParseU64(*value, &n) || n == 0 || n > kMaxPageLimit) {
    return Err(Status::InvalidArgument("limit must be a whole number from 1 to " +
                                       std::to_string(kMaxPageLimit)));
  }
  return static_cast<std::size_t>(n);
}

// "l<at>-<given>" for a list, "s<seq>" otherwise.
std::string EncodeCursor(const Cursor& c, bool list) {
  return list ? "l" + std::to_string(c.at) + "-" + std::to_string(c.after)
              : "s" + std::to_string(c.after);
}

Result<Cursor> DecodeCursor(std::string_view text, bool list) {
  Cursor c;
  if (text.empty() || text[0] != (list ? 'l' : 's')) return Err(BadCursor());
  text.remove_prefix(1);
  if (!list) {
    if (!ParseU64(text, &c.after)) return Err(BadCursor());
    return c;
  }
  const std::size_t dash = text.find('-');
  std::uint64_t at = 0;
  if (dash == std::string_view::npos || !ParseU64(text.substr(0, dash), &at) ||
      !ParseU64(text.substr(dash + 1), &c.after) || at > static_cast<std::uint64_t>(INT64_MAX)) {
    return Err(BadCursor());
  }
  c.at = static_cast<TimeNs>(at);
  return c;
}

}  // namespace modelreg::server
