// Cron schedules as the CronJob controller reads them: robfig/cron v3's
// ParseStandard (which kube-controller-manager uses) and its
// SpecSchedule.Next, with time zones from the IANA database.
//
// A schedule is five fields — minute, hour, day of month, month, day of
// week — each `*`, `?`, a value, a range `a-b`, a step `*/n`, `a/n` (from a
// to the maximum) or `a-b/n`, or a comma list of those; months and days of
// week also by name (JAN..DEC, SUN..SAT, any case); day of week is 0-6 with
// 0 = Sunday. As in cron, when both day fields are restricted a day
// matching either one matches; when either is `*` both must match. The
// macros @yearly (@annually), @monthly, @weekly, @daily (@midnight) and
// @hourly, and `@every <duration>` (e.g. 1h30m) are accepted. A `TZ=zone`
// or `CRON_TZ=zone` prefix sets the zone the fields are read in; without
// one, the zone given to Parse (UTC by default, as kube-controller-manager
// runs in UTC). Parse errors are robfig/cron's texts.
//
// Next(t) is the first activation strictly after t (none: nullopt, when no
// time in the next five years matches, e.g. "0 0 30 2 *"). Across DST
// changes it behaves like robfig/cron: a wall time that does not exist is
// skipped, one that occurs twice fires once.
//
// TimeZone reads TZif files from /usr/share/zoneinfo (the transitions they
// list; times after the last one keep its offset, which for Debian's "fat"
// files is 2037).
//
// Thread-safety: immutable values; thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kin::controllers {

class TimeZone {
 public:
  // UTC.
  TimeZone();
  // "UTC", "" (UTC) or an IANA name ("Europe/Berlin"); nullopt with
  // `error` = "unknown time zone NAME" when there is no such zone.
  static std::optional<TimeZone> Load(const std::string& name, std::string* error = nullptr);

  const std::string& name() const { return name_; }
  // Seconds east of UTC at the instant `utc` (seconds since the epoch).
  int64_t OffsetAt(int64_t utc) const;

 private:
  struct Data {
    std::vector<int64_t> transitions;  // sorted instants
    std::vector<int32_t> offsets;      // the offset from each transition on
    int32_t initial = 0;               // before the first transition
  };
  std::string name_ = "UTC";
  std::shared_ptr<const Data> data_;  // null: UTC
};

class CronSchedule {
 public:
  using TimePoint = std::chrono::system_clock::time_point;

  // robfig/cron ParseStandard of `spec`; nullopt with `error` set (e.g.
  // "expected exactly 5 fields, found 4: [* * * *]") when it is not a schedule.
  static std::optional<CronSchedule> Parse(const std::string& spec, std::string* error = nullptr,
                                           const TimeZone& zone = TimeZone());

  std::optional<TimePoint> Next(TimePoint t) const;
  const TimeZone& zone() const { return zone_; }

 private:
  // Bit i set: value i allowed; bit 63 ("star"): the field was * or ?.
  uint64_t minute_ = 0, hour_ = 0, dom_ = 0, month_ = 0, dow_ = 0;
  int64_t every_seconds_ = 0;  // @every: a constant delay instead of fields
  TimeZone zone_;
};

}  // namespace kin::controllers
