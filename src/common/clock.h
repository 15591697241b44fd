// Time as nanoseconds since the Unix epoch (UTC), behind an interface so
// that tests inject time. Thread-safety: implementations are thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace modelreg {

using TimeNs = std::int64_t;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimeNs NowNs() const = 0;
};

// The system's wall clock (CLOCK_REALTIME).
class SystemClock final : public Clock {
 public:
  TimeNs NowNs() const override;
  // A process-wide instance.
  static const Clock& Instance();
};

// A clock tests set by hand.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimeNs start) : now_(start) {}
  TimeNs NowNs() const override { return now_.load(); }
  void Set(TimeNs t) { now_.store(t); }
  void Advance(TimeNs d) { now_.fetch_add(d); }

 private:
  std::atomic<TimeNs> now_;
};

// UTC ISO-8601, exact: nine fraction digits when the time has a fraction,
// none when it falls on a whole second: 2025-01-15T09:30:00.123000000Z,
// 2025-01-15T09:30:00Z.
std::string FormatUtc(TimeNs t);

// UTC ISO-8601 with exactly three fraction digits, for tables:
// 2025-01-15T09:30:00.124Z. Rounded UP to the millisecond, so that a time
// copied from a table into `--at` includes the event it was printed for.
std::string FormatUtcMillis(TimeNs t);

// Parses ISO-8601 with a zone or a bare date (midnight UTC):
// 2025-01-15T09:30:00Z, 2025-01-15T09:30:00.5+02:00, 2025-01-15.
// nullopt when `text` is anything else.
std::optional<TimeNs> ParseTime(std::string_view text);

// What `--at`, `--since`, `--until` and the API's `at=` accept: ParseTime's
// forms, `now`, or a time before `now`: `-` then a whole number and one
// unit, s (seconds), m (minutes), h (hours), d (days of 24 h) or w (weeks):
// `-90s`, `-2h`, `-7d`. nullopt for anything else, and for a relative
// time before 1970.
std::optional<TimeNs> ParseInstant(std::string_view text, TimeNs now);

}  // namespace modelreg
