// Cron schedules: robfig/cron's parsing (and its error texts) and Next.
#include "controllers/cron_schedule.h"

#include <gtest/gtest.h>

#include "client/object.h"

namespace kin::controllers {
namespace {

using TimePoint = CronSchedule::TimePoint;

TimePoint At(const std::string& rfc3339) {
  auto t = object::ParseRfc3339(rfc3339);
  EXPECT_TRUE(t) << rfc3339;
  return t.value_or(TimePoint{});
}

// The next `n` activations after `from`, as RFC 3339 UTC.
std::vector<std::string> NextN(const std::string& spec, const std::string& from, int n = 1) {
  std::string err;
  auto s = CronSchedule::Parse(spec, &err);
  EXPECT_TRUE(s) << spec << ": " << err;
  std::vector<std::string> out;
  if (!s) return out;
  TimePoint t = At(from);
  for (int i = 0; i < n; ++i) {
    auto next = s->Next(t);
    if (!next) break;
    out.push_back(object::FormatRfc3339(*next));
    t = *next;
  }
  return out;
}

std::string ParseError(const std::string& spec) {
  std::string err;
  auto s = CronSchedule::Parse(spec, &err);
  EXPECT_FALSE(s) << spec;
  return err;
}

TEST(CronScheduleTest, EveryMinute) {
  EXPECT_EQ(NextN("* * * * *", "2024-05-01T10:00:30Z", 3),
            (std::vector<std::string>{"2024-05-01T10:01:00Z", "2024-05-01T10:02:00Z",
                                      "2024-05-01T10:03:00Z"}));
  // Strictly after: an activation time itself moves on.
  EXPECT_EQ(NextN("* * * * *", "2024-05-01T10:01:00Z"),
            std::vector<std::string>{"2024-05-01T10:02:00Z"});
}

TEST(CronScheduleTest, RangesStepsAndLists) {
  EXPECT_EQ(NextN("*/15 * * * *", "2024-05-01T10:01:00Z", 3),
            (std::vector<std::string>{"2024-05-01T10:15:00Z", "2024-05-01T10:30:00Z",
                                      "2024-05-01T10:45:00Z"}));
  EXPECT_EQ(NextN("5,10 9-10 * * *", "2024-05-01T10:06:00Z", 3),
            (std::vector<std::string>{"2024-05-01T10:10:00Z", "2024-05-02T09:05:00Z",
                                      "2024-05-02T09:10:00Z"}));
  // "N/step" runs from N to the maximum.
  EXPECT_EQ(NextN("50/5 * * * *", "2024-05-01T10:00:00Z", 3),
            (std::vector<std::string>{"2024-05-01T10:50:00Z", "2024-05-01T10:55:00Z",
                                      "2024-05-01T11:50:00Z"}));
  EXPECT_EQ(NextN("0 0-12/6 * * *", "2024-05-01T00:00:00Z", 3),
            (std::vector<std::string>{"2024-05-01T06:00:00Z", "2024-05-01T12:00:00Z",
                                      "2024-05-02T00:00:00Z"}));
}

TEST(CronScheduleTest, NamesAnyCase) {
  // 2024-05-01 is a Wednesday.
  EXPECT_EQ(NextN("0 12 * * MON", "2024-05-01T00:00:00Z"),
            std::vector<std::string>{"2024-05-06T12:00:00Z"});
  EXPECT_EQ(NextN("0 0 1 jan,Jul *", "2024-05-01T00:00:00Z", 2),
            (std::vector<std::string>{"2024-07-01T00:00:00Z", "2025-01-01T00:00:00Z"}));
  EXPECT_EQ(NextN("0 9 * * mon-fri", "2024-05-03T10:00:00Z", 2),  // a Friday
            (std::vector<std::string>{"2024-05-06T09:00:00Z", "2024-05-07T09:00:00Z"}));
}

TEST(CronScheduleTest, DayOfMonthOrDayOfWeek) {
  // Both restricted: either matches (the 13th, or any Friday).
  EXPECT_EQ(NextN("0 0 13 * 5", "2024-05-01T00:00:00Z", 3),
            (std::vector<std::string>{"2024-05-03T00:00:00Z", "2024-05-10T00:00:00Z",
                                      "2024-05-13T00:00:00Z"}));
  // One is *: both must match.
  EXPECT_EQ(NextN("0 0 * * 5", "2024-05-01T00:00:00Z"),
            std::vector<std::string>{"2024-05-03T00:00:00Z"});
}

TEST(CronScheduleTest, Macros) {
  const std::string from = "2024-05-01T10:30:00Z";
  EXPECT_EQ(NextN("@hourly", from), std::vector<std::string>{"2024-05-01T11:00:00Z"});
  EXPECT_EQ(NextN("@daily", from), std::vector<std::string>{"2024-05-02T00:00:00Z"});
  EXPECT_EQ(NextN("@midnight", from), std::vector<std::string>{"2024-05-02T00:00:00Z"});
  EXPECT_EQ(NextN("@weekly", from), std::vector<std::string>{"2024-05-05T00:00:00Z"});  // Sunday
  EXPECT_EQ(NextN("@monthly", from), std::vector<std::string>{"2024-06-01T00:00:00Z"});
  EXPECT_EQ(NextN("@yearly", from), std::vector<std::string>{"2025-01-01T00:00:00Z"});
  EXPECT_EQ(NextN("@annually", from), std::vector<std::string>{"2025-01-01T00:00:00Z"});
  EXPECT_EQ(NextN("@every 1h30m", from), std::vector<std::string>{"2024-05-01T12:00:00Z"});
}

TEST(CronScheduleTest, LeapDayAndImpossibleDates) {
  EXPECT_EQ(NextN("0 0 29 2 *", "2024-03-01T00:00:00Z"),
            std::vector<std::string>{"2028-02-29T00:00:00Z"});
  EXPECT_EQ(NextN("0 0 30 2 *", "2024-03-01T00:00:00Z"), std::vector<std::string>{});
}

TEST(CronScheduleTest, TimeZones) {
  // 09:00 in Berlin is 07:00 UTC in summer (CEST), 08:00 in winter (CET).
  EXPECT_EQ(NextN("CRON_TZ=Europe/Berlin 0 9 * * *", "2024-05-01T10:00:00Z"),
            std::vector<std::string>{"2024-05-02T07:00:00Z"});
  EXPECT_EQ(NextN("TZ=Europe/Berlin 0 9 * * *", "2024-12-01T10:00:00Z"),
            std::vector<std::string>{"2024-12-02T08:00:00Z"});
  // A zone given by the caller (the CronJob's spec.timeZone).
  auto ny = TimeZone::Load("America/New_York");
  ASSERT_TRUE(ny);
  auto s = CronSchedule::Parse("30 2 * * *", nullptr, *ny);
  ASSERT_TRUE(s);
  // 02:30 does not exist on 2024-03-10 in New York (clocks jump 02:00 -> 03:00).
  auto next = s->Next(At("2024-03-09T12:00:00Z"));
  ASSERT_TRUE(next);
  EXPECT_EQ(object::FormatRfc3339(*next), "2024-03-11T06:30:00Z");
  std::string err;
  EXPECT_FALSE(TimeZone::Load("Mars/Olympus", &err));
  EXPECT_EQ(err, "unknown time zone Mars/Olympus");
  EXPECT_FALSE(TimeZone::Load("../../etc/passwd", &err));
  EXPECT_EQ(ParseError("CRON_TZ=Mars/Olympus * * * * *"),
            "provided bad location Mars/Olympus: unknown time zone Mars/Olympus");
}

TEST(CronScheduleTest, ParseErrorsAreRobfigs) {
  EXPECT_EQ(ParseError(""), "empty spec string");
  EXPECT_EQ(ParseError("* * * *"), "expected exactly 5 fields, found 4: [* * * *]");
  EXPECT_EQ(ParseError("60 * * * *"), "end of range (60) above maximum (59): 60");
  EXPECT_EQ(ParseError("* * 0 * *"), "beginning of range (0) below minimum (1): 0");
  EXPECT_EQ(ParseError("* * * * 7"), "end of range (7) above maximum (6): 7");
  EXPECT_EQ(ParseError("5-1 * * * *"), "beginning of range (5) beyond end of range (1): 5-1");
  EXPECT_EQ(ParseError("1-2-3 * * * *"), "too many hyphens: 1-2-3");
  EXPECT_EQ(ParseError("*/2/3 * * * *"), "too many slashes: */2/3");
  EXPECT_EQ(ParseError("*/0 * * * *"), "step of range should be a positive number: */0");
  EXPECT_EQ(ParseError("x * * * *"),
            "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax");
  EXPECT_EQ(ParseError("* * * FOO *"),
            "failed to parse int from FOO: strconv.Atoi: parsing \"FOO\": invalid syntax");
  EXPECT_EQ(ParseError("@fortnightly"), "unrecognized descriptor: @fortnightly");
}

}  // namespace
}  // namespace kin::controllers
