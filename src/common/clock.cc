#include "common/clock.h"

#include <chrono>
#include <cstdio>
#include <sstream>

#include <date/date.h>

namespace modelreg {

TimeNs SystemClock::NowNs() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const Clock& SystemClock::Instance() {
  static const SystemClock clock;
  return clock;
}

std::string FormatUtc(TimeNs t) {
  using namespace std::chrono;
  // Split without chrono arithmetic, which overflows near the int64 limits.
  std::int64_t whole = t / 1'000'000'000;
  std::int64_t frac = t % 1'000'000'000;
  if (frac < 0) {
    frac += 1'000'000'000;
    --whole;
  }
  const sys_seconds secs{seconds{whole}};
  std::string out = date::format("%Y-%m-%dT%H:%M:%S", secs);
  if (frac != 0) {
    char buf[16];
    std::snprintf(buf, sizeof buf, ".%09lld", static_cast<long long>(frac));
    out += buf;
  }
  out += 'Z';
  return out;
}

std::optional<TimeNs> ParseInstant(std::string_view text, TimeNs now) {
  if (text == "now") return now;
  if (text.size() < 3 || text.size() > 12 || text[0] != '-') return ParseTime(text);
  TimeNs unit = 0;
  switch (text.back()) {
    case 's': unit = 1'000'000'000LL; break;
    case 'm': unit = 60 * 1'000'000'000LL; break;
    case 'h': unit = 3600 * 1'000'000'000LL; break;
    case 'd': unit = 86400 * 1'000'000'000LL; break;
    case 'w': unit = 7 * 86400 * 1'000'000'000LL; break;
    default: return std::nullopt;
  }
  TimeNs n = 0;
  for (char c : text.substr(1, text.size() - 2)) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');  // at most 10 digits: no overflow
  }
  if (now < 0 || n > now / unit) return std::nullopt;  // before 1970
  return now - n * unit;
}

std::string FormatUtcMillis(TimeNs t) {
  constexpr TimeNs kMs = 1'000'000;
  TimeNs ms = t / kMs;     // toward zero: already up for a negative time
  if (t % kMs > 0) ++ms;    // a positive remainder rounds up
  std::int64_t whole = ms / 1000;
  std::int64_t frac = ms % 1000;
  if (frac < 0) {
    frac += 1000;
    --whole;
  }
  std::string out = date::format("%Y-%m-%dT%H:%M:%S",
                                 std::chrono::sys_seconds{std::chrono::seconds{whole}});
  char buf[8];
  std::snprintf(buf, sizeof buf, ".%03lld", static_cast<long long>(frac));
  return out + buf + 'Z';
}

namespace {

bool Digits(std::string_view s, std::size_t at, std::size_t n) {
  if (at + n > s.size()) return false;
  for (std::size_t i = at; i < at + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
  }
  return true;
}

// The shapes ParseTime accepts, checked before date::parse sees the text:
// YYYY-MM-DD, or YYYY-MM-DDTHH:MM:SS[.F] (1 to 9 digits of F) followed by
// Z or an offset +HH, +HH:MM or +HHMM (or -). date.h turns some malformed
// fields into a NaN seconds value and converts it to an integer (undefined
// behaviour; fuzz_http found "2030-01-01T00:(0:00Z" through ?at=).
bool HasTimeShape(std::string_view s) {
  if (!Digits(s, 0, 4) || s.size() < 10 || s[4] != '-' || !Digits(s, 5, 2) || s[7] != '-' ||
      !Digits(s, 8, 2)) {
    return false;
  }
  if (s.size() == 10) return true;
  if (s.size() < 20 || s[10] != 'T' || !Digits(s, 11, 2) || s[13] != ':' || !Digits(s, 14, 2) ||
      s[16] != ':' || !Digits(s, 17, 2)) {
    return false;
  }
  std::size_t at = 19;
  if (s[at] == '.') {
    const std::size_t first = ++at;
    while (at < s.size() && s[at] >= '0' && s[at] <= '9') ++at;
    if (at == first || at - first > 9 || at == s.size()) return false;
  }
  if (s[at] == 'Z' || s[at] == 'z') return at + 1 == s.size();
  if (s[at] != '+' && s[at] != '-') return false;
  const std::string_view zone = s.substr(at + 1);
  return (zone.size() == 2 && Digits(zone, 0, 2)) || (zone.size() == 4 && Digits(zone, 0, 4)) ||
         (zone.size() == 5 && Digits(zone, 0, 2) && zone[2] == ':' && Digits(zone, 3, 2));
}

}  // namespace

std::optional<TimeNs> ParseTime(std::string_view text) {
  using namespace std::chrono;
  if (text.empty() || text.size() > 64 || !HasTimeShape(text)) return std::nullopt;
  // Nanoseconds since 1970 in 64 bits cover 1677-09-21 .. 2262-04-11: a
  // four-digit year inside that span (with a day to spare for offsets), so
  // that nothing wraps around.
  if (text.size() < 5 || text[4] != '-') return std::nullopt;
  int year = 0;
  for (int i = 0; i < 4; ++i) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
    year = year * 10 + (text[i] - '0');
  }
  if (year < 1678 || year > 2261) return std::nullopt;
  const std::string s(text);
  auto try_parse = [&s](const char* fmt, bool with_offset) -> std::optional<TimeNs> {
    std::istringstream in(s);
    sys_time<nanoseconds> tp;
    minutes offset{0};
    if (with_offset) {
      in >> date::parse(fmt, tp, offset);
    } else {
      in >> date::parse(fmt, tp);
    }
    if (in.fail()) return std::nullopt;
    // Everything must be consumed: "2025-01-15junk" is not a time.
    if (in.peek() != std::char_traits<char>::eof()) return std::nullopt;
    // date::parse already applies a parsed %Ez offset: tp is UTC.
    return tp.time_since_epoch().count();
  };
  if (s.size() == 10) return try_parse("%F", false);
  if (s.back() == 'Z' || s.back() == 'z') {
    std::string body = s.substr(0, s.size() - 1);
    std::istringstream in(body);
    sys_time<nanoseconds> tp;
    in >> date::parse("%FT%T", tp);
    if (in.fail() || in.peek() != std::char_traits<char>::eof()) return std::nullopt;
    return tp.time_since_epoch().count();
  }
  return try_parse("%FT%T%Ez", true);
}

}  // namespace modelreg
