#include "client/object.h"

#include <algorithm>

#include <cstdio>

namespace kin::object {

namespace {

const Json& EmptyObject() {
  static const Json empty = Json::object();
  return empty;
}

const Json& Metadata(const Json& obj) {
  if (!obj.is_object()) return EmptyObject();
  auto it = obj.find("metadata");
  return it != obj.end() && it->is_object() ? *it : EmptyObject();
}

bool Digits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

}  // namespace

std::string StringAt(const Json& obj, const char* a, const char* b) {
  if (!obj.is_object()) return "";
  auto it = obj.find(a);
  if (it == obj.end() || !it->is_object()) return "";
  auto jt = it->find(b);
  return jt != it->end() && jt->is_string() ? jt->get<std::string>() : "";
}

const Json& Field(const Json& obj, const char* key) {
  static const Json null;
  if (!obj.is_object()) return null;
  auto it = obj.find(key);
  return it == obj.end() ? null : *it;
}

std::string Str(const Json& obj, const char* key) {
  const Json& v = Field(obj, key);
  return v.is_string() ? v.get<std::string>() : "";
}

const Json* StatusCondition(const Json& status, std::string_view type) {
  if (!status.is_object()) return nullptr;
  auto conds = status.find("conditions");
  if (conds == status.end() || !conds->is_array()) return nullptr;
  for (const Json& c : *conds) {
    if (!c.is_object()) continue;
    auto t = c.find("type");
    if (t != c.end() && t->is_string() && t->get_ref<const std::string&>() == type) return &c;
  }
  return nullptr;
}

const Json* Condition(const Json& obj, std::string_view type) {
  if (!obj.is_object()) return nullptr;
  auto st = obj.find("status");
  return st == obj.end() ? nullptr : StatusCondition(*st, type);
}

std::string Namespace(const Json& obj) { return StringAt(obj, "metadata", "namespace"); }
std::string Name(const Json& obj) { return StringAt(obj, "metadata", "name"); }
std::string Uid(const Json& obj) { return StringAt(obj, "metadata", "uid"); }
std::string ResourceVersion(const Json& obj) {
  return StringAt(obj, "metadata", "resourceVersion");
}

int64_t ResourceVersionNumber(const Json& obj) {
  std::string rv = ResourceVersion(obj);
  if (rv.empty() || rv.size() > 18 || !std::all_of(rv.begin(), rv.end(), ::isdigit)) return -1;
  return std::stoll(rv);
}

std::string Key(const std::string& ns, const std::string& name) {
  return ns.empty() ? name : ns + "/" + name;
}

std::string Key(const Json& obj) { return Key(Namespace(obj), Name(obj)); }

std::pair<std::string, std::string> SplitKey(std::string_view key) {
  size_t slash = key.find('/');
  if (slash == std::string_view::npos) return {"", std::string(key)};
  return {std::string(key.substr(0, slash)), std::string(key.substr(slash + 1))};
}

const Json& Labels(const Json& obj) {
  const Json& m = Metadata(obj);
  auto it = m.find("labels");
  return it != m.end() && it->is_object() ? *it : EmptyObject();
}

std::optional<std::string> Label(const Json& obj, const std::string& key) {
  const Json& labels = Labels(obj);
  auto it = labels.find(key);
  if (it == labels.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

bool IsBeingDeleted(const Json& obj) {
  const Json& m = Metadata(obj);
  auto it = m.find("deletionTimestamp");
  return it != m.end() && !it->is_null();
}

std::vector<const Json*> OwnerReferences(const Json& obj) {
  std::vector<const Json*> out;
  const Json& m = Metadata(obj);
  auto it = m.find("ownerReferences");
  if (it == m.end() || !it->is_array()) return out;
  for (const Json& ref : *it) {
    if (ref.is_object()) out.push_back(&ref);
  }
  return out;
}

std::vector<std::string> OwnerUids(const Json& obj) {
  std::vector<std::string> out;
  for (const Json* ref : OwnerReferences(obj)) {
    auto it = ref->find("uid");
    if (it != ref->end() && it->is_string() && !it->get_ref<const std::string&>().empty()) {
      out.push_back(it->get<std::string>());
    }
  }
  return out;
}

const Json* ControllerOf(const Json& obj) {
  for (const Json* ref : OwnerReferences(obj)) {
    auto it = ref->find("controller");
    if (it != ref->end() && it->is_boolean() && it->get<bool>()) return ref;
  }
  return nullptr;
}

bool IsControlledBy(const Json& obj, const Json& owner) {
  const Json* ref = ControllerOf(obj);
  if (ref == nullptr) return false;
  std::string uid = Uid(owner);
  auto it = ref->find("uid");
  return !uid.empty() && it != ref->end() && it->is_string() && it->get<std::string>() == uid;
}

Json NewControllerRef(const Json& owner, const std::string& api_version, const std::string& kind) {
  return {{"apiVersion", api_version}, {"kind", kind},       {"name", Name(owner)},
          {"uid", Uid(owner)},         {"controller", true}, {"blockOwnerDeletion", true}};
}

std::string FormatRfc3339(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  auto secs = floor<seconds>(t);
  auto days = floor<std::chrono::days>(secs);
  year_month_day ymd{days};
  hh_mm_ss<seconds> hms{secs - days};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buf;
}

std::string NowRfc3339() { return FormatRfc3339(std::chrono::system_clock::now()); }

std::optional<std::chrono::system_clock::time_point> ParseRfc3339(std::string_view s) {
  int y, mo, d, h, mi, sec;
  if (s.size() < 20 || !Digits(s, 0, 4, &y) || s[4] != '-' || !Digits(s, 5, 2, &mo) ||
      s[7] != '-' || !Digits(s, 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
      !Digits(s, 11, 2, &h) || s[13] != ':' || !Digits(s, 14, 2, &mi) || s[16] != ':' ||
      !Digits(s, 17, 2, &sec)) {
    return std::nullopt;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  size_t pos = 19;
  long long nanos = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (digits < 9) {
        nanos = nanos * 10 + (s[pos] - '0');
        ++digits;
      }
      ++pos;
    }
    if (digits == 0) return std::nullopt;
    for (int i = digits; i < 9; ++i) nanos *= 10;
  }
  long long offset_s = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (!Digits(s, pos + 1, 2, &oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !Digits(s, pos + 4, 2, &om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset_s = (oh * 3600LL + om * 60LL) * (s[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  using namespace std::chrono;
  year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  auto t = sys_days{ymd} + hours{h} + minutes{mi} + seconds{sec} - seconds{offset_s};
  // system_clock counts int64 nanoseconds (years 1678 to 2261): a time
  // outside overflowed the conversion below (found by fuzz/quantity_fuzzer).
  constexpr long long kLimit = duration_cast<seconds>(system_clock::duration::max()).count() - 1;
  if (t.time_since_epoch().count() > kLimit || t.time_since_epoch().count() < -kLimit) {
    return std::nullopt;
  }
  return time_point_cast<system_clock::duration>(t + nanoseconds{nanos});
}

}  // namespace kin::object
