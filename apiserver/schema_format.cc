#include "apiserver/schema_format.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <regex>
#include <set>
#include <vector>

namespace kin::apiserver {

namespace {

std::string Normalize(std::string s) {
  s.erase(std::remove(s.begin(), s.end(), '-'), s.end());
  return s;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }
// Go's regexp \s: the ASCII white space RE2 knows.
bool IsGoSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'; }

// Compiled once: building a std::regex costs far more than matching it
// (a const regex may be matched from many threads at once).
bool Matches(const std::string& s, const std::string& pattern,
             std::regex::flag_type flags = std::regex::ECMAScript) {
  static std::mutex mu;
  static auto* cache = new std::map<std::pair<std::string, int>, std::shared_ptr<const std::regex>>();
  std::shared_ptr<const std::regex> re;
  {
    std::lock_guard lock(mu);
    auto& slot = (*cache)[{pattern, static_cast<int>(flags)}];
    if (!slot) slot = std::make_shared<const std::regex>(pattern, flags);
    re = slot;
  }
  return std::regex_match(s, *re);
}

// Each UTF-8 sequence of a non-ASCII code point as one letter: the
// hostname pattern admits \p{L} and \p{S}, which std::regex cannot name.
std::string FoldNonAscii(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out += s[i];
    } else if ((c & 0xc0) != 0x80) {
      out += 'a';
    }
  }
  return out;
}

// strfmt.IsHostname: the RFC 1034 pattern go-openapi uses, 255 bytes at
// most, 63 per label.
bool IsHostname(const std::string& s) {
  static const std::regex re(
      "^([a-zA-Z0-9]((-?[a-zA-Z0-9]{0,62})?)|([a-zA-Z0-9](([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\\.)){1,}"
      "([a-zA-Z0-9])(-?[a-zA-Z0-9]){1,62})$");
  if (!std::regex_match(FoldNonAscii(s), re)) return false;
  if (s.size() > 255) return false;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    size_t len = (dot == std::string::npos ? s.size() : dot) - start;
    if (len > 63) return false;
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return true;
}

// net/mail's atext: visible ASCII but the specials, and any non-ASCII.
bool IsAtext(unsigned char c, bool dot) {
  if (c == '.') return dot;
  if (std::string_view("()<>[]:;@\\,\"").find(static_cast<char>(c)) != std::string_view::npos) {
    return false;
  }
  return (c >= '!' && c <= '~') || c >= 0x80;
}

bool IsDotAtom(const std::string& s) {
  if (s.empty() || s.front() == '.' || s.back() == '.' || s.find("..") != std::string::npos) {
    return false;
  }
  return std::all_of(s.begin(), s.end(), [](char c) { return IsAtext(c, true); });
}

bool IsQuotedString(const std::string& s) {
  if (s.size() < 3 || s.front() != '"' || s.back() != '"') return false;
  for (size_t i = 1; i + 1 < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
      if (i + 1 >= s.size()) return false;
    } else if (s[i] == '"') {
      return false;
    }
  }
  return true;
}

std::string TrimSpaces(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

// local@domain: a dot-atom or quoted local part, a dot-atom or [literal] domain.
bool IsAddrSpec(const std::string& spec) {
  size_t at = spec.rfind('@');
  if (at == std::string::npos) return false;
  std::string local = TrimSpaces(spec.substr(0, at));
  std::string domain = TrimSpaces(spec.substr(at + 1));
  if (!(IsDotAtom(local) || IsQuotedString(local))) return false;
  if (domain.size() >= 2 && domain.front() == '[' && domain.back() == ']') {
    return domain.find_first_of("[]\\", 1) == domain.size() - 1;
  }
  return IsDotAtom(domain);
}

// A display name: words (atoms, with dots as net/mail allows, or quoted
// strings) separated by white space.
bool IsPhrase(const std::string& s) {
  size_t i = 0;
  bool any = false;
  while (i < s.size()) {
    if (s[i] == ' ' || s[i] == '\t') {
      ++i;
      continue;
    }
    size_t j = i;
    if (s[i] == '"') {
      ++j;
      while (j < s.size() && s[j] != '"') j += s[j] == '\\' ? 2 : 1;
      if (j >= s.size()) return false;
      ++j;
    } else {
      while (j < s.size() && IsAtext(s[j], true)) ++j;
      if (j == i) return false;
    }
    any = true;
    i = j;
  }
  return any;
}

// strfmt.IsEmail: net/mail.ParseAddress accepts it ("a@b.c", "Name <a@b.c>").
bool IsEmail(const std::string& raw) {
  std::string s = TrimSpaces(raw);
  if (s.empty()) return false;
  if (s.back() == '>') {
    size_t lt = std::string::npos;
    bool quoted = false;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '"') quoted = !quoted;
      if (s[i] == '<' && !quoted) {
        lt = i;
        break;
      }
    }
    if (lt == std::string::npos) return false;
    std::string name = TrimSpaces(s.substr(0, lt));
    if (!name.empty() && !IsPhrase(name)) return false;
    return IsAddrSpec(s.substr(lt + 1, s.size() - lt - 2));
  }
  return IsAddrSpec(s);
}

// govalidator.IsRequestURI: url.ParseRequestURI accepts it (an absolute
// URI or an absolute path, no control bytes, valid escapes and host).
bool IsRequestUri(const std::string& s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size() || !IsHex(s[i + 1]) || !IsHex(s[i + 2])) return false;
    }
  }
  if (s == "*") return true;
  std::string rest = s;
  static const std::regex scheme("^[A-Za-z][A-Za-z0-9+.-]*:");
  std::smatch m;
  bool has_scheme = std::regex_search(s, m, scheme);
  if (has_scheme) {
    rest = m.suffix();
  } else if (!s.empty() && s[0] == ':') {
    return false;  // missing protocol scheme
  }
  size_t q = rest.find('?');
  std::string path = q == std::string::npos ? rest : rest.substr(0, q);
  if (path.rfind('/', 0) != 0) return has_scheme;  // opaque, or a relative path
  if (has_scheme && path.rfind("//", 0) == 0) {
    size_t end = path.find('/', 2);
    std::string authority = path.substr(2, end == std::string::npos ? end : end - 2);
    size_t at = authority.rfind('@');
    std::string host = at == std::string::npos ? authority : authority.substr(at + 1);
    for (char c : host) {
      if (c == ' ' || c == '<' || c == '>' || c == '"' || c == '{' || c == '}' || c == '|' ||
          c == '\\' || c == '^' || c == '`') {
        return false;
      }
    }
  }
  return true;  // a path may hold any byte but control ones
}

bool ParseIp(const std::string& s, int family) {
  unsigned char buf[16];
  return inet_pton(family, s.c_str(), buf) == 1;
}

// govalidator.IsIPv4/IsIPv6: net.ParseIP accepts it and it has a dot
// (IPv4) or a colon (IPv6), so "::ffff:1.2.3.4" is both.
bool IsIpv4(const std::string& s) {
  return (ParseIp(s, AF_INET) || ParseIp(s, AF_INET6)) && s.find('.') != std::string::npos;
}
bool IsIpv6(const std::string& s) {
  return (ParseIp(s, AF_INET) || ParseIp(s, AF_INET6)) && s.find(':') != std::string::npos;
}

bool IsCidr(const std::string& s) {
  size_t slash = s.find('/');
  if (slash == std::string::npos) return false;
  std::string addr = s.substr(0, slash), mask = s.substr(slash + 1);
  bool v6 = addr.find(':') != std::string::npos;
  if (!ParseIp(addr, v6 ? AF_INET6 : AF_INET)) return false;
  if (mask.empty() || mask.size() > 4 || !std::all_of(mask.begin(), mask.end(), IsDigit)) {
    return false;
  }
  return std::stoi(mask) <= (v6 ? 128 : 32);
}

// net.ParseMAC: 6, 8 or 20 octets as xx:xx.., xx-xx.. or xxxx.xxxx...
bool IsMac(const std::string& s) {
  if (s.size() < 14) return false;
  auto octets_ok = [](size_t n) { return n == 6 || n == 8 || n == 20; };
  if (s[2] == ':' || s[2] == '-') {
    if ((s.size() + 1) % 3 != 0 || !octets_ok((s.size() + 1) / 3)) return false;
    for (size_t i = 0; i < s.size(); i += 3) {
      if (!IsHex(s[i]) || !IsHex(s[i + 1])) return false;
      if (i + 2 < s.size() && s[i + 2] != s[2]) return false;
    }
    return true;
  }
  if (s[4] == '.') {
    if ((s.size() + 1) % 5 != 0 || !octets_ok(2 * (s.size() + 1) / 5)) return false;
    for (size_t i = 0; i < s.size(); i += 5) {
      for (size_t k = 0; k < 4; ++k) {
        if (!IsHex(s[i + k])) return false;
      }
      if (i + 4 < s.size() && s[i + 4] != '.') return false;
    }
    return true;
  }
  return false;
}

std::string Without(const std::string& s, const std::function<bool(char)>& drop) {
  std::string out;
  for (char c : s) {
    if (!drop(c)) out += c;
  }
  return out;
}

// govalidator.IsISBN: white space and dashes removed, then the checksum.
bool IsIsbn10(const std::string& raw) {
  std::string s = Without(raw, [](char c) { return IsGoSpace(c) || c == '-'; });
  if (!Matches(s, "^(?:[0-9]{9}X|[0-9]{10})$")) return false;
  int sum = 0;
  for (int i = 0; i < 9; ++i) sum += (i + 1) * (s[i] - '0');
  sum += s[9] == 'X' ? 100 : 10 * (s[9] - '0');
  return sum % 11 == 0;
}

bool IsIsbn13(const std::string& raw) {
  std::string s = Without(raw, [](char c) { return IsGoSpace(c) || c == '-'; });
  if (!Matches(s, "^[0-9]{13}$")) return false;
  int sum = 0;
  for (int i = 0; i < 12; ++i) sum += (i % 2 == 0 ? 1 : 3) * (s[i] - '0');
  return (s[12] - '0') - ((10 - (sum % 10)) % 10) == 0;
}

// govalidator.IsCreditCard: the non-digits removed, a known issuer's
// pattern, then the Luhn checksum.
bool IsCreditCard(const std::string& raw) {
  std::string s = Without(raw, [](char c) { return !IsDigit(c); });
  if (!Matches(s,
               "^(?:4[0-9]{12}(?:[0-9]{3})?|5[1-5][0-9]{14}|6(?:011|5[0-9][0-9])[0-9]{12}|"
               "3[47][0-9]{13}|3(?:0[0-5]|[68][0-9])[0-9]{11}|(?:2131|1800|35[0-9]{3})[0-9]{11})$")) {
    return false;
  }
  int sum = 0;
  bool twice = false;
  for (size_t i = s.size(); i-- > 0;) {
    int d = s[i] - '0';
    if (twice) d = d * 2 >= 10 ? d * 2 % 10 + 1 : d * 2;
    sum += d;
    twice = !twice;
  }
  return sum % 10 == 0;
}

// time.Parse("2006-01-02"): four-digit year, months 01-12, days in the month.
bool IsDate(const std::string& s) {
  if (!Matches(s, "^[0-9]{4}-[0-9]{2}-[0-9]{2}$")) return false;
  int year = std::stoi(s.substr(0, 4)), month = std::stoi(s.substr(5, 2)),
      day = std::stoi(s.substr(8, 2));
  if (month < 1 || month > 12) return false;
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int days = kDays[month - 1];
  if (month == 2 && year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)) days = 29;
  return day >= 1 && day <= days;
}

// strfmt.IsDateTime: a date, "t", then hh:mm:ss[.frac] and z or +hh:mm.
bool IsDateTime(const std::string& raw) {
  if (raw.size() < 4) return false;
  std::string s = raw;
  std::transform(s.begin(), s.end(), s.begin(), ::tolower);
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t t = s.find('t', start);
    parts.push_back(s.substr(start, t == std::string::npos ? std::string::npos : t - start));
    if (t == std::string::npos) break;
    start = t + 1;
  }
  if (parts.size() < 2 || !IsDate(parts[0])) return false;
  std::smatch m;
  static const std::regex re(
      "^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$");
  if (!std::regex_match(parts[1], m, re)) return false;
  return m[1].str() <= "23" && m[2].str() <= "59" && m[3].str() <= "59";
}

// time.ParseDuration: [-+]?([0-9]*(\.[0-9]*)?[a-z]+)+ with Go's units.
bool IsGoDuration(const std::string& in) {
  static const std::map<std::string, double> kUnits = {
      {"ns", 1},         {"us", 1e3},   {"\xc2\xb5s", 1e3}, {"\xce\xbcs", 1e3},
      {"ms", 1e6},       {"s", 1e9},    {"m", 60e9},        {"h", 3600e9}};
  std::string s = in;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s = s.substr(1);
  if (s == "0") return true;
  if (s.empty()) return false;
  double total = 0;
  size_t i = 0;
  while (i < s.size()) {
    if (!(s[i] == '.' || IsDigit(s[i]))) return false;
    size_t b = i;
    while (i < s.size() && IsDigit(s[i])) ++i;
    bool pre = i > b;
    std::string number = s.substr(b, i - b);
    bool post = false;
    if (i < s.size() && s[i] == '.') {
      ++i;
      size_t f = i;
      while (i < s.size() && IsDigit(s[i])) ++i;
      post = i > f;
      number += "." + s.substr(f, i - f);
    }
    if (!pre && !post) return false;
    size_t u = i;
    while (i < s.size() && s[i] != '.' && !IsDigit(s[i])) ++i;
    auto unit = kUnits.find(s.substr(u, i - u));
    if (unit == kUnits.end()) return false;
    total += std::stod("0" + number) * unit->second;
    if (total > 9223372036854775807.0) return false;
  }
  return true;
}

// strfmt.ParseDuration's fallback: "3 days", "1h 30min": digits and a unit
// word; valid when at least one unit is known.
bool IsScalaDuration(const std::string& s) {
  struct Group {
    std::string digits, unit;
  };
  std::vector<Group> groups;
  size_t i = 0;
  auto skip_space = [&] {
    while (i < s.size() && IsGoSpace(s[i])) ++i;
  };
  auto unit_char = [&](size_t k) -> size_t {  // bytes of a unit letter at k, 0 if none
    if (k < s.size() && std::isalpha(static_cast<unsigned char>(s[k]))) return 1;
    if (k + 1 < s.size() && s.compare(k, 2, "\xc2\xb5") == 0) return 2;
    return 0;
  };
  skip_space();
  while (i < s.size()) {
    Group g;
    while (i < s.size() && IsDigit(s[i])) g.digits += s[i++];
    if (g.digits.empty()) return false;
    skip_space();
    while (size_t n = unit_char(i)) {
      g.unit += s.substr(i, n);
      i += n;
    }
    if (g.unit.empty()) return false;
    skip_space();
    groups.push_back(g);
  }
  if (groups.empty()) return false;
  static const std::vector<std::vector<std::string>> kUnits = {
      {"ns", "nano"}, {"us", "\xc2\xb5s", "micro"}, {"ms", "milli"}, {"s", "sec"},
      {"m", "min"},   {"h", "hr", "hour"},          {"d", "day"},    {"w", "wk", "week"}};
  bool ok = false;
  for (const auto& g : groups) {
    if (g.digits.size() > 18) return false;  // strconv.Atoi overflows
    std::string unit = g.unit;
    std::transform(unit.begin(), unit.end(), unit.begin(),
                   [](unsigned char c) { return c < 0x80 ? std::tolower(c) : c; });
    for (const auto& variants : kUnits) {
      for (size_t k = 0; k < variants.size(); ++k) {
        bool last = k + 1 == variants.size();
        if ((last && unit.rfind(variants[k], 0) == 0) || unit == variants[k]) ok = true;
      }
    }
  }
  return ok;
}

const std::map<std::string, std::function<bool(const std::string&)>>& Registry() {
  static const auto* r = new std::map<std::string, std::function<bool(const std::string&)>>{
      {"bsonobjectid",
       [](const std::string& s) { return s.size() == 24 && std::all_of(s.begin(), s.end(), IsHex); }},
      {"uri", IsRequestUri},
      {"email", IsEmail},
      {"hostname", IsHostname},
      {"ipv4", IsIpv4},
      {"ipv6", IsIpv6},
      {"cidr", IsCidr},
      {"mac", IsMac},
      {"uuid",
       [](const std::string& s) {
         return Matches(s, "^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$",
                        std::regex::ECMAScript | std::regex::icase);
       }},
      {"uuid3",
       [](const std::string& s) {
         return Matches(s, "^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$",
                        std::regex::ECMAScript | std::regex::icase);
       }},
      {"uuid4",
       [](const std::string& s) {
         return Matches(s,
                        "^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$",
                        std::regex::ECMAScript | std::regex::icase);
       }},
      {"uuid5",
       [](const std::string& s) {
         return Matches(s,
                        "^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$",
                        std::regex::ECMAScript | std::regex::icase);
       }},
      {"isbn", [](const std::string& s) { return IsIsbn10(s) || IsIsbn13(s); }},
      {"isbn10", IsIsbn10},
      {"isbn13", IsIsbn13},
      {"creditcard", IsCreditCard},
      {"ssn",
       [](const std::string& s) {
         return s.size() == 11 && Matches(s, "^[0-9]{3}[- ]?[0-9]{2}[- ]?[0-9]{4}$");
       }},
      {"hexcolor",
       [](const std::string& s) { return Matches(s, "^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"); }},
      {"rgbcolor",
       [](const std::string& s) {
         const std::string n = "\\s*(0|[1-9][0-9]?|1[0-9][0-9]?|2[0-4][0-9]|25[0-5])\\s*";
         return Matches(s, "^rgb\\(" + n + "," + n + "," + n + "\\)$");
       }},
      {"byte",
       [](const std::string& s) {
         return Matches(s,
                        "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|"
                        "[A-Za-z0-9+/]{4})$");
       }},
      {"password", [](const std::string&) { return true; }},
      {"date", IsDate},
      {"duration", [](const std::string& s) { return IsGoDuration(s) || IsScalaDuration(s); }},
      {"datetime", IsDateTime},
  };
  return *r;
}

}  // namespace

std::string EffectiveSchemaFormat(const std::string& type, const std::string& format) {
  if (format.empty()) return "";
  if (type.empty() || type == "string") return IsKnownStringFormat(format) ? format : "";
  if (type == "integer") return format == "int32" || format == "int64" ? format : "";
  if (type == "number") return format == "float" || format == "double" ? format : "";
  return "";
}

bool IsKnownStringFormat(const std::string& format) {
  return Registry().count(Normalize(format)) > 0;
}

bool IsValidStringFormat(const std::string& format, const std::string& value) {
  auto it = Registry().find(Normalize(format));
  return it == Registry().end() || it->second(value);
}

}  // namespace kin::apiserver
