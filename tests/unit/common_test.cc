#include <gtest/gtest.h>

#include <cerrno>
#include <system_error>

#include "common/bytes.h"
#include "common/clock.h"
#include "common/fd.h"
#include "common/fs.h"
#include "common/json_input.h"
#include "common/utf8.h"
#include "common/sha256.h"
#include "common/status.h"

namespace modelreg {
namespace {

std::string Nested(int depth, const std::string& inner = "") {
  return std::string(static_cast<std::size_t>(depth), '[') + inner +
         std::string(static_cast<std::size_t>(depth), ']');
}

TEST(JsonInput, NestingIsBoundedAt64Levels) {
  EXPECT_TRUE(CheckJsonDepth("1", "x").ok());
  EXPECT_TRUE(CheckJsonDepth(Nested(kMaxJsonDepth), "x").ok());
  EXPECT_TRUE(CheckJsonDepth("{\"a\":" + Nested(kMaxJsonDepth - 1) + "}", "x").ok());
  const Status deep = CheckJsonDepth(Nested(kMaxJsonDepth + 1), "metadata file");
  EXPECT_EQ(deep.code(), Code::kInvalidArgument);
  EXPECT_EQ(deep.message(), "metadata file nests deeper than 64 levels, the limit for JSON input");
  EXPECT_FALSE(CheckJsonDepth("{\"a\":" + Nested(kMaxJsonDepth) + "}", "x").ok());
  // Siblings do not add up; only nesting counts.
  std::string wide = "[";
  for (int i = 0; i < 1000; ++i) wide += (i ? "," : "") + Nested(kMaxJsonDepth - 1);
  EXPECT_TRUE(CheckJsonDepth(wide + "]", "x").ok());
  // Brackets inside strings, also after escaped quotes, are text.
  const std::string in_string = "[\"" + std::string(100, '[') + "\\\"" + std::string(100, '{') + "\"]";
  EXPECT_TRUE(CheckJsonDepth(in_string, "x").ok()) << in_string;
  auto parsed = ParseJsonInput(in_string, "x");
  ASSERT_TRUE(parsed) << parsed.error().ToString();
  EXPECT_EQ((*parsed)[0].get<std::string>().size(), 201u);
  // A 1,000,000-deep document is refused without recursion.
  EXPECT_FALSE(ParseJsonInput(Nested(1'000'000), "x"));
  EXPECT_TRUE(ParseJsonOrDiscarded(Nested(1'000'000)).is_discarded());
  EXPECT_EQ(ParseJsonInput("{nope", "body").error().message(), "body is not valid JSON");
  EXPECT_EQ(ParseJsonInput(Nested(3, "7"), "x")->dump(), "[[[7]]]");
}

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(ToHex(Sha256::Of("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(ToHex(Sha256::Of("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, StreamingEqualsOneShotAndResets) {
  Sha256 h;
  h.Update(std::string_view("ab"));
  h.Update(std::string_view("c"));
  EXPECT_EQ(h.Finish(), Sha256::Of("abc"));
  h.Update(std::string_view("abc"));
  EXPECT_EQ(h.Finish(), Sha256::Of("abc"));
}

TEST(Sha256, HexRoundTripAndRejects) {
  const Digest d = Sha256::Of("x");
  ASSERT_TRUE(DigestFromHex(ToHex(d)));
  EXPECT_EQ(*DigestFromHex(ToHex(d)), d);
  std::string upper = ToHex(d);
  for (char& c : upper) c = static_cast<char>(std::toupper(c));
  EXPECT_EQ(*DigestFromHex(upper), d);
  EXPECT_FALSE(DigestFromHex("abc"));
  EXPECT_FALSE(DigestFromHex(std::string(64, 'g')));
}

TEST(Bytes, BigEndianOrderMatchesNumericOrder) {
  EXPECT_LT(Be64(1), Be64(2));
  EXPECT_LT(Be64(255), Be64(256));
  EXPECT_EQ(GetBe64(Be64(0x0102030405060708ULL)), 0x0102030405060708ULL);
  EXPECT_LT(Be64(OrderedFromSigned(-5)), Be64(OrderedFromSigned(3)));
  EXPECT_EQ(SignedFromOrdered(OrderedFromSigned(-42)), -42);
}

TEST(Time, ParsesZonesAndDates) {
  const TimeNs base = 1736933400LL * 1'000'000'000;  // 2025-01-15T09:30:00Z
  EXPECT_EQ(ParseTime("2025-01-15T09:30:00Z"), base);
  EXPECT_EQ(ParseTime("2025-01-15T11:30:00+02:00"), base);
  EXPECT_EQ(ParseTime("2025-01-15T04:30:00-05:00"), base);
  EXPECT_EQ(ParseTime("2025-01-15T09:30:00.25Z"), base + 250'000'000);
  EXPECT_EQ(ParseTime("2025-01-15"), base - (9 * 3600 + 30 * 60) * 1'000'000'000LL);
}

TEST(Time, RejectsGarbage) {
  for (const char* bad : {"", "yesterday", "2025-13-01", "2025-01-15T09:30:00",
                          "2025-01-15T25:00:00Z", "2025-01-15Tjunk", "2025-01-15Z1",
                          "2025-01-15T09:30:00Zextra",
                          // fuzz_http: date.h parsed these into a NaN of seconds (UBSan).
                          "2030-01-01T00:(0:00Z", "2030-01-01T00:00:(0Z", "2025-01-15T09:30:00.Z",
                          "2025-01-15T09:30:00.1234567890Z", "2025-01-15T09:30:00+2:00"}) {
    EXPECT_FALSE(ParseTime(bad)) << bad;
  }
}

TEST(Time, RejectsTimesOutsideTheNanosecondRange) {
  // int64 nanoseconds since 1970 end in April 2262: later (or much earlier)
  // times are refused instead of wrapping around to the past.
  for (const char* far : {"2263-01-01T00:00:00Z", "9999-12-31", "2500-06-01T00:00:00+02:00",
                          "1600-01-01T00:00:00Z", "10000-01-01T00:00:00Z", "0001-01-01"}) {
    EXPECT_FALSE(ParseTime(far)) << far;
  }
  auto late = ParseTime("2261-12-31T23:59:59Z");
  ASSERT_TRUE(late);
  EXPECT_GT(*late, 0);
  EXPECT_EQ(FormatUtc(*late), "2261-12-31T23:59:59Z");
  auto early = ParseTime("1678-01-01T00:00:00Z");
  ASSERT_TRUE(early);
  EXPECT_LT(*early, 0);
}

TEST(Utf8, ValidatesAndSanitizes) {
  for (const char* good : {"", "plain", "caf\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"}) {
    EXPECT_TRUE(IsValidUtf8(good)) << good;
    EXPECT_EQ(SanitizeUtf8(good), good);
  }
  for (const char* bad : {"caf\xe9", "\xc3", "\x80", "\xc0\xaf" /* overlong '/' */,
                          "\xed\xa0\x80" /* surrogate */, "\xf4\x90\x80\x80" /* > U+10FFFF */}) {
    EXPECT_FALSE(IsValidUtf8(bad)) << bad;
    EXPECT_TRUE(IsValidUtf8(SanitizeUtf8(bad))) << bad;
  }
  EXPECT_EQ(SanitizeUtf8("caf\xe9!"), "caf\xef\xbf\xbd!");
}

// `now` and times before now, resolved against the clock given.
TEST(Time, ParsesNowAndTimesBeforeNow) {
  const TimeNs now = *ParseTime("2025-01-15T09:30:00Z");
  constexpr TimeNs kS = 1'000'000'000;
  EXPECT_EQ(ParseInstant("now", now), now);
  EXPECT_EQ(ParseInstant("-90s", now), now - 90 * kS);
  EXPECT_EQ(ParseInstant("-5m", now), now - 300 * kS);
  EXPECT_EQ(ParseInstant("-2h", now), now - 7200 * kS);
  EXPECT_EQ(ParseInstant("-1d", now), *ParseTime("2025-01-14T09:30:00Z"));
  EXPECT_EQ(ParseInstant("-2w", now), *ParseTime("2025-01-01T09:30:00Z"));
  EXPECT_EQ(ParseInstant("-0h", now), now);
  EXPECT_EQ(ParseInstant("2025-01-15", now), *ParseTime("2025-01-15"));
  for (const char* bad : {"Now", "now ", "-h", "-2", "2h", "+2h", "-2y", "-1.5h", "-2H", "--2h",
                          "- 2h", "-99999999999h", "-99999w", "yesterday", ""}) {
    EXPECT_FALSE(ParseInstant(bad, now)) << bad;
  }
  EXPECT_FALSE(ParseInstant("-1s", 0)) << "before 1970";
}

TEST(Time, FormatsUtc) {
  const TimeNs base = 1736933400LL * 1'000'000'000;
  EXPECT_EQ(FormatUtc(base), "2025-01-15T09:30:00Z");
  EXPECT_EQ(FormatUtc(base + 5), "2025-01-15T09:30:00.000000005Z");
  EXPECT_EQ(ParseTime(FormatUtc(base + 123456789)), base + 123456789);
  // Tables: milliseconds, rounded up so that the printed time includes
  // the event it was printed for.
  EXPECT_EQ(FormatUtcMillis(base), "2025-01-15T09:30:00.000Z");
  EXPECT_EQ(FormatUtcMillis(base + 1), "2025-01-15T09:30:00.001Z");
  EXPECT_EQ(FormatUtcMillis(base + 123000000), "2025-01-15T09:30:00.123Z");
  EXPECT_EQ(FormatUtcMillis(base + 999000001), "2025-01-15T09:30:01.000Z");
  EXPECT_EQ(FormatUtcMillis(-1), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatUtcMillis(-1000001), "1969-12-31T23:59:59.999Z");
  for (TimeNs t : {base, base + 1, base + 999999, base + 123456789}) {
    EXPECT_GE(*ParseTime(FormatUtcMillis(t)), t) << t;
    EXPECT_LT(*ParseTime(FormatUtcMillis(t)) - t, 1000000) << t;
  }
}

TEST(Status, CarriesCodeAndContext) {
  Status st = Status::NotFound("no event 7").WithContext("get");
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Code::kNotFound);
  EXPECT_EQ(st.ToString(), "not_found: get: no event 7");
  EXPECT_TRUE(Status::OK().ok());
  EXPECT_EQ(Status::OK().WithContext("x").ToString(), "ok");
}

// A full disk: an IOError (exit 6) marked disk_full() (HTTP 507), whose
// message says so, from every source that reports one.
TEST(Status, DiskFullIsAMarkedIoError) {
  const Status st = Status::DiskFull("cannot write x: No space left on device");
  EXPECT_EQ(st.code(), Code::kIOError);
  EXPECT_TRUE(st.disk_full());
  EXPECT_EQ(st.message(), "disk full: cannot write x: No space left on device");
  EXPECT_EQ(Status::DiskFull(st.message()).message(), st.message());  // not said twice
  const Status wrapped = st.WithContext("append");
  EXPECT_TRUE(wrapped.disk_full());
  EXPECT_EQ(wrapped.ToString(), "io_error: append: disk full: cannot write x: No space left on device");
  EXPECT_FALSE(Status::IOError("cannot read x").disk_full());
  EXPECT_FALSE(Status::IOError("x").WithContext("y").disk_full());

  errno = ENOSPC;
  EXPECT_TRUE(ErrnoStatus("cannot write", "/x").disk_full());
  errno = EDQUOT;
  EXPECT_TRUE(ErrnoStatus("cannot write", "/x").disk_full());
  errno = EIO;
  const Status io = ErrnoStatus("cannot write", "/x");
  EXPECT_EQ(io.code(), Code::kIOError);
  EXPECT_FALSE(io.disk_full());
  EXPECT_TRUE(ErrorCodeStatus("cannot create /d", std::make_error_code(std::errc::no_space_on_device))
                  .disk_full());
  EXPECT_FALSE(ErrorCodeStatus("cannot create /d", std::make_error_code(std::errc::permission_denied))
                   .disk_full());
}

}  // namespace
}  // namespace modelreg
