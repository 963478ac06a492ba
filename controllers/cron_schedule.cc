#include "controllers/cron_schedule.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>

namespace kin::controllers {
namespace {

constexpr uint64_t kStar = 1ULL << 63;

// --- calendar arithmetic (proleptic Gregorian, days since 1970-01-01) ---

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }
int64_t FloorMod(int64_t a, int64_t b) { return a - FloorDiv(a, b) * b; }

int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = FloorDiv(y, 400);
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

struct Civil {
  int64_t year;
  int month, day, hour, minute, second, weekday;  // weekday 0 = Sunday
};

Civil CivilFromLocal(int64_t local) {
  int64_t days = FloorDiv(local, 86400);
  int64_t secs = FloorMod(local, 86400);
  int64_t z = days + 719468;
  const int64_t era = FloorDiv(z, 146097);
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  Civil c{};
  c.day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  c.month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  c.year = yoe + era * 400 + (c.month <= 2);
  c.hour = static_cast<int>(secs / 3600);
  c.minute = static_cast<int>(secs / 60 % 60);
  c.second = static_cast<int>(secs % 60);
  c.weekday = static_cast<int>(FloorMod(days + 4, 7));  // 1970-01-01 was a Thursday
  return c;
}

// An instant (UTC seconds) seen in a zone.
Civil ToCivil(int64_t utc, const TimeZone& z) { return CivilFromLocal(utc + z.OffsetAt(utc)); }

// Go's time.Date: fields may overflow and are normalized; a wall time that
// a DST change skips or repeats resolves as Go resolves it.
int64_t FromCivil(int64_t year, int64_t month, int64_t day, int64_t hour, int64_t minute,
                  int64_t second, const TimeZone& z) {
  int64_t m0 = month - 1;
  year += FloorDiv(m0, 12);
  m0 = FloorMod(m0, 12);
  int64_t local =
      (DaysFromCivil(year, m0 + 1, 1) + day - 1) * 86400 + hour * 3600 + minute * 60 + second;
  int64_t offset = z.OffsetAt(local);
  int64_t utc = local - offset;
  int64_t actual = z.OffsetAt(utc);
  if (actual != offset) offset = actual;
  return local - offset;
}

// --- field parsing (robfig/cron's getField / getRange) ---

struct Bounds {
  int min, max;
  const std::map<std::string, int>* names;
};

const std::map<std::string, int> kMonths = {{"jan", 1}, {"feb", 2},  {"mar", 3},  {"apr", 4},
                                            {"may", 5}, {"jun", 6},  {"jul", 7},  {"aug", 8},
                                            {"sep", 9}, {"oct", 10}, {"nov", 11}, {"dec", 12}};
const std::map<std::string, int> kDays = {{"sun", 0}, {"mon", 1}, {"tue", 2}, {"wed", 3},
                                          {"thu", 4}, {"fri", 5}, {"sat", 6}};

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t pos = s.find(sep, start);
    out.push_back(s.substr(start, pos - start));
    if (pos == std::string::npos) return out;
    start = pos + 1;
  }
}

std::string Lower(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

bool ParseInt(const std::string& s, const std::map<std::string, int>* names, int* out,
              std::string* error) {
  if (names) {
    auto it = names->find(Lower(s));
    if (it != names->end()) {
      *out = it->second;
      return true;
    }
  }
  bool digits = !s.empty() && s.size() <= 9 &&
                std::all_of(s.begin(), s.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
  if (!digits) {
    *error = "failed to parse int from " + s + ": strconv.Atoi: parsing \"" + s +
             "\": invalid syntax";
    return false;
  }
  *out = std::stoi(s);
  return true;
}

bool ParseRange(const std::string& expr, const Bounds& b, uint64_t* bits, std::string* error) {
  auto range_and_step = Split(expr, '/');
  auto low_high = Split(range_and_step[0], '-');
  bool single = low_high.size() == 1;
  int start = 0, end = 0, step = 1;
  uint64_t extra = 0;
  if (low_high[0] == "*" || low_high[0] == "?") {
    start = b.min;
    end = b.max;
    extra = kStar;
  } else {
    if (!ParseInt(low_high[0], b.names, &start, error)) return false;
    if (low_high.size() == 1) {
      end = start;
    } else if (low_high.size() == 2) {
      if (!ParseInt(low_high[1], b.names, &end, error)) return false;
    } else {
      *error = "too many hyphens: " + expr;
      return false;
    }
  }
  if (range_and_step.size() == 2) {
    if (!ParseInt(range_and_step[1], nullptr, &step, error)) return false;
    if (single) end = b.max;  // "N/step" means "N-max/step"
    if (step > 1) extra = 0;
  } else if (range_and_step.size() > 2) {
    *error = "too many slashes: " + expr;
    return false;
  }
  if (start < b.min) {
    *error = "beginning of range (" + std::to_string(start) + ") below minimum (" +
             std::to_string(b.min) + "): " + expr;
    return false;
  }
  if (end > b.max) {
    *error = "end of range (" + std::to_string(end) + ") above maximum (" +
             std::to_string(b.max) + "): " + expr;
    return false;
  }
  if (start > end) {
    *error = "beginning of range (" + std::to_string(start) + ") beyond end of range (" +
             std::to_string(end) + "): " + expr;
    return false;
  }
  if (step == 0) {
    *error = "step of range should be a positive number: " + expr;
    return false;
  }
  for (int i = start; i <= end; i += step) *bits |= 1ULL << i;
  *bits |= extra;
  return true;
}

bool ParseField(const std::string& field, const Bounds& b, uint64_t* bits, std::string* error) {
  *bits = 0;
  for (const auto& expr : Split(field, ',')) {
    if (!ParseRange(expr, b, bits, error)) return false;
  }
  return true;
}

uint64_t All(int min, int max) {
  uint64_t bits = 0;
  for (int i = min; i <= max; ++i) bits |= 1ULL << i;
  return bits | kStar;
}

// Go's time.ParseDuration for what @every needs: [0-9.]+ with h, m, s, ms.
bool ParseGoDuration(const std::string& s, int64_t* millis) {
  if (s.empty()) return false;
  size_t i = 0;
  double total = 0;
  while (i < s.size()) {
    size_t start = i;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    if (start == i) return false;
    double v = std::stod(s.substr(start, i - start));
    size_t ustart = i;
    while (i < s.size() && std::isalpha(static_cast<unsigned char>(s[i]))) ++i;
    std::string unit = s.substr(ustart, i - ustart);
    if (unit == "h") {
      total += v * 3600000;
    } else if (unit == "m") {
      total += v * 60000;
    } else if (unit == "s") {
      total += v * 1000;
    } else if (unit == "ms") {
      total += v;
    } else {
      return false;
    }
  }
  *millis = static_cast<int64_t>(total);
  return true;
}

// --- TZif ---

int64_t BigEndian(const std::string& data, size_t pos, size_t len) {
  uint64_t v = 0;
  for (size_t i = 0; i < len; ++i) v = (v << 8) | static_cast<unsigned char>(data[pos + i]);
  if (len == 4) return static_cast<int32_t>(static_cast<uint32_t>(v));
  return static_cast<int64_t>(v);
}

}  // namespace

TimeZone::TimeZone() = default;

std::optional<TimeZone> TimeZone::Load(const std::string& name, std::string* error) {
  auto fail = [&]() -> std::optional<TimeZone> {
    if (error) *error = "unknown time zone " + name;
    return std::nullopt;
  };
  if (name.empty() || name == "UTC") return TimeZone();
  // IANA names only: no absolute paths, no climbing out of the database.
  if (name[0] == '/' || name.find("..") != std::string::npos || name == "Local") return fail();
  std::ifstream in("/usr/share/zoneinfo/" + name, std::ios::binary);
  if (!in) return fail();
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (data.size() < 44 || data.compare(0, 4, "TZif") != 0) return fail();
  auto header = [&](size_t at, int64_t counts[6]) {
    for (int i = 0; i < 6; ++i) counts[i] = BigEndian(data, at + 20 + 4 * i, 4);
  };
  // counts: isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
  int64_t c[6];
  header(0, c);
  size_t pos = 44;
  size_t time_size = 4;
  if (data[4] >= '2') {
    // Skip the 32-bit block to the 64-bit one.
    pos += c[3] * 4 + c[3] + c[4] * 6 + c[5] + c[2] * 8 + c[1] + c[0];
    if (data.size() < pos + 44 || data.compare(pos, 4, "TZif") != 0) return fail();
    header(pos, c);
    pos += 44;
    time_size = 8;
  }
  const int64_t timecnt = c[3], typecnt = c[4];
  if (typecnt <= 0 ||
      data.size() < pos + static_cast<size_t>(timecnt) * (time_size + 1) + typecnt * 6) {
    return fail();
  }
  auto d = std::make_shared<Data>();
  std::vector<int32_t> type_offsets;
  size_t types_at = pos + timecnt * (time_size + 1);
  for (int64_t t = 0; t < typecnt; ++t) {
    type_offsets.push_back(static_cast<int32_t>(BigEndian(data, types_at + t * 6, 4)));
  }
  for (int64_t i = 0; i < timecnt; ++i) {
    d->transitions.push_back(BigEndian(data, pos + i * time_size, time_size));
    auto type = static_cast<unsigned char>(data[pos + timecnt * time_size + i]);
    if (type >= type_offsets.size()) return fail();
    d->offsets.push_back(type_offsets[type]);
  }
  d->initial = type_offsets[0];
  TimeZone z;
  z.name_ = name;
  z.data_ = std::move(d);
  return z;
}

int64_t TimeZone::OffsetAt(int64_t utc) const {
  if (!data_) return 0;
  const auto& t = data_->transitions;
  auto it = std::upper_bound(t.begin(), t.end(), utc);
  if (it == t.begin()) return data_->initial;
  return data_->offsets[static_cast<size_t>(it - t.begin() - 1)];
}

std::optional<CronSchedule> CronSchedule::Parse(const std::string& input, std::string* error,
                                                const TimeZone& zone) {
  std::string err;
  auto fail = [&](std::string e) -> std::optional<CronSchedule> {
    if (error) *error = std::move(e);
    return std::nullopt;
  };
  if (input.empty()) return fail("empty spec string");
  CronSchedule s;
  s.zone_ = zone;
  std::string spec = input;
  if (spec.rfind("TZ=", 0) == 0 || spec.rfind("CRON_TZ=", 0) == 0) {
    size_t eq = spec.find('=');
    size_t sp = spec.find(' ');
    std::string name = spec.substr(eq + 1, sp == std::string::npos ? std::string::npos : sp - eq - 1);
    auto z = TimeZone::Load(name, &err);
    if (!z) return fail("provided bad location " + name + ": " + err);
    s.zone_ = *z;
    spec = sp == std::string::npos ? "" : spec.substr(sp + 1);
    while (!spec.empty() && spec[0] == ' ') spec.erase(0, 1);
  }
  if (!spec.empty() && spec[0] == '@') {
    auto set = [&](uint64_t minute, uint64_t hour, uint64_t dom, uint64_t month, uint64_t dow) {
      s.minute_ = minute;
      s.hour_ = hour;
      s.dom_ = dom;
      s.month_ = month;
      s.dow_ = dow;
      return s;
    };
    if (spec == "@yearly" || spec == "@annually") return set(1, 1, 1ULL << 1, 1ULL << 1, All(0, 6));
    if (spec == "@monthly") return set(1, 1, 1ULL << 1, All(1, 12), All(0, 6));
    if (spec == "@weekly") return set(1, 1, All(1, 31), All(1, 12), 1);
    if (spec == "@daily" || spec == "@midnight") return set(1, 1, All(1, 31), All(1, 12), All(0, 6));
    if (spec == "@hourly") return set(1, All(0, 23), All(1, 31), All(1, 12), All(0, 6));
    if (spec.rfind("@every ", 0) == 0) {
      int64_t millis = 0;
      std::string d = spec.substr(7);
      if (!ParseGoDuration(d, &millis)) return fail("failed to parse duration " + spec);
      // robfig/cron: at least a second, whole seconds.
      s.every_seconds_ = std::max<int64_t>(1, millis / 1000);
      return s;
    }
    return fail("unrecognized descriptor: " + spec);
  }
  std::vector<std::string> fields;
  std::istringstream words(spec);
  for (std::string w; words >> w;) fields.push_back(w);
  if (fields.size() != 5) {
    std::string joined;
    for (size_t i = 0; i < fields.size(); ++i) joined += (i ? " " : "") + fields[i];
    return fail("expected exactly 5 fields, found " + std::to_string(fields.size()) + ": [" +
                joined + "]");
  }
  const Bounds bounds[5] = {
      {0, 59, nullptr}, {0, 23, nullptr}, {1, 31, nullptr}, {1, 12, &kMonths}, {0, 6, &kDays}};
  uint64_t* out[5] = {&s.minute_, &s.hour_, &s.dom_, &s.month_, &s.dow_};
  for (size_t i = 0; i < 5; ++i) {
    if (!ParseField(fields[i], bounds[i], out[i], &err)) return fail(err);
  }
  return s;
}

// robfig/cron's SpecSchedule.Next, on UTC seconds seen through zone_.
std::optional<CronSchedule::TimePoint> CronSchedule::Next(TimePoint at) const {
  using std::chrono::seconds;
  int64_t t = std::chrono::floor<seconds>(at.time_since_epoch()).count();
  if (every_seconds_ > 0) return TimePoint(seconds(t + every_seconds_));
  const TimeZone& z = zone_;
  t += 1;  // strictly after, at whole seconds
  bool added = false;
  const int64_t year_limit = ToCivil(t, z).year + 5;
  auto has = [](uint64_t bits, int v) { return (bits >> v) & 1; };
  auto day_matches = [&](const Civil& c) {
    bool dom = has(dom_, c.day), dow = has(dow_, c.weekday);
    if ((dom_ & kStar) || (dow_ & kStar)) return dom && dow;
    return dom || dow;
  };
wrap:
  Civil c = ToCivil(t, z);
  if (c.year > year_limit) return std::nullopt;
  while (!has(month_, c.month)) {
    if (!added) {
      added = true;
      t = FromCivil(c.year, c.month, 1, 0, 0, 0, z);
      c = ToCivil(t, z);
    }
    t = FromCivil(c.year, c.month + 1, c.day, c.hour, c.minute, c.second, z);
    c = ToCivil(t, z);
    if (c.month == 1) goto wrap;
  }
  while (!day_matches(c)) {
    if (!added) {
      added = true;
      t = FromCivil(c.year, c.month, c.day, 0, 0, 0, z);
      c = ToCivil(t, z);
    }
    t = FromCivil(c.year, c.month, c.day + 1, c.hour, c.minute, c.second, z);
    c = ToCivil(t, z);
    // A DST change moved us off midnight: go back to it.
    if (c.hour != 0) {
      t += c.hour > 12 ? (24 - c.hour) * 3600 : -c.hour * 3600;
      c = ToCivil(t, z);
    }
    if (c.day == 1) goto wrap;
  }
  while (!has(hour_, c.hour)) {
    if (!added) {
      added = true;
      t = FromCivil(c.year, c.month, c.day, c.hour, 0, 0, z);
      c = ToCivil(t, z);
    }
    t += 3600;
    c = ToCivil(t, z);
    if (c.hour == 0) goto wrap;
  }
  while (!has(minute_, c.minute)) {
    if (!added) {
      added = true;
      t -= FloorMod(t, 60);
      c = ToCivil(t, z);
    }
    t += 60;
    c = ToCivil(t, z);
    if (c.minute == 0) goto wrap;
  }
  // Seconds: standard schedules fire at second 0.
  while (c.second != 0) {
    if (!added) {
      added = true;
    }
    t += 1;
    c = ToCivil(t, z);
    if (c.second == 0) goto wrap;
  }
  return TimePoint(seconds(t));
}

}  // namespace kin::controllers
