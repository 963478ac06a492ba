#include "apiserver/validation.h"

#include "client/quota.h"

#include "base/strings.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"
#include "client/quantity.h"

namespace kin::apiserver {
namespace {

// ---------------------------------------------------------------------------
// Text helpers: Go's %q and %#v renderings, so messages read as the real
// server's do.

std::string Q(std::string_view s) { return GoQuote(s); }
std::string N(int64_t v) { return std::to_string(v); }

// %#v of a map[string]string (nil when absent).
std::string GoStringMap(const std::map<std::string, std::string>* m) {
  if (!m) return "map[string]string(nil)";
  std::string out = "map[string]string{";
  bool first = true;
  for (const auto& [k, v] : *m) {
    if (!first) out += ", ";
    first = false;
    out += GoQuote(k) + ":" + GoQuote(v);
  }
  return out + "}";
}

std::string GoStringSlice(const std::vector<std::string>* v) {
  if (!v) return "[]string(nil)";
  std::vector<std::string> q;
  for (const auto& s : *v) q.push_back(GoQuote(s));
  return "[]string{" + Join(q, ", ") + "}";
}

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

std::string ToLower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

std::vector<std::string> Split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t pos = s.find(sep, start);
    if (pos == std::string_view::npos) {
      out.emplace_back(s.substr(start));
      return out;
    }
    out.emplace_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

// ---------------------------------------------------------------------------
// k8s.io/apimachinery/pkg/util/validation, message for message.

std::string RegexError(std::string msg, std::string_view fmt,
                       std::initializer_list<std::string_view> examples) {
  if (examples.size() == 0)
    return msg + " (regex used for validation is '" + std::string(fmt) + "')";
  msg += " (e.g. ";
  size_t i = 0;
  for (auto ex : examples) {
    if (i++ > 0) msg += " or ";
    msg += "'" + std::string(ex) + "', ";
  }
  return msg + "regex used for validation is '" + std::string(fmt) + "')";
}
std::string MaxLenError(int n) {
  return "must be no more than " + std::to_string(n) + " characters";
}
std::string InclusiveRangeError(int64_t lo, int64_t hi) {
  return "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", inclusive";
}

constexpr std::string_view kDns1123LabelFmt = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
constexpr std::string_view kDns1123SubdomainFmt =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
constexpr std::string_view kDns1035LabelFmt = "[a-z]([-a-z0-9]*[a-z0-9])?";
constexpr std::string_view kQualifiedNameFmt = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
constexpr std::string_view kLabelValueFmt = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
constexpr const char* kQualifiedNameErrMsg =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character";

bool MatchDns1123Label(std::string_view s) {
  if (s.empty() || !IsLowerAlnum(s.front()) || !IsLowerAlnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return IsLowerAlnum(c) || c == '-'; });
}
bool MatchDns1123Subdomain(std::string_view s) {
  if (s.empty()) return false;
  for (const auto& part : Split(s, '.')) {
    if (!MatchDns1123Label(part)) return false;
  }
  return true;
}
bool MatchDns1035Label(std::string_view s) {
  if (s.empty() || !(s.front() >= 'a' && s.front() <= 'z') || !IsLowerAlnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return IsLowerAlnum(c) || c == '-'; });
}
bool MatchQualifiedName(std::string_view s) {
  if (s.empty() || !IsAlnum(s.front()) || !IsAlnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return IsAlnum(c) || c == '-' || c == '_' || c == '.'; });
}

std::vector<std::string> HasChDirPrefix(std::string_view v) {
  if (v == ".") return {"must not be '.'"};
  if (v == "..") return {"must not be '..'"};
  if (v.substr(0, 2) == "..") return {"must not start with '..'"};
  return {};
}

std::vector<std::string> IsConfigMapKey(std::string_view v) {
  std::vector<std::string> errs;
  if (v.size() > 253) errs.push_back(MaxLenError(253));
  bool ok = !v.empty() && std::all_of(v.begin(), v.end(), [](char c) {
    return IsAlnum(c) || c == '-' || c == '.' || c == '_';
  });
  if (!ok) {
    errs.push_back(
        RegexError("a valid config key must consist of alphanumeric characters, '-', "
                   "'_' or '.'",
                   "[-._a-zA-Z0-9]+", {"key.name", "KEY_NAME", "key-name"}));
  }
  for (auto& e : HasChDirPrefix(v)) errs.push_back(e);
  return errs;
}

// RelaxedEnvironmentVariableValidation is alpha (off) in v1.31: the strict rule.
std::vector<std::string> IsEnvVarName(std::string_view v) {
  std::vector<std::string> errs;
  bool ok = !v.empty() && !IsDigit(v.front()) && std::all_of(v.begin(), v.end(), [](char c) {
    return IsAlnum(c) || c == '-' || c == '.' || c == '_';
  });
  if (!ok) {
    errs.push_back(RegexError(
        "a valid environment variable name must consist of alphabetic characters, digits, '_', "
        "'-', or '.', and must not start with a digit",
        "[-._a-zA-Z][-._a-zA-Z0-9]*", {"my.env-name", "MY_ENV.NAME", "MyEnvName1"}));
  }
  for (auto& e : HasChDirPrefix(v)) errs.push_back(e);
  return errs;
}

std::vector<std::string> IsValidPortNum(int64_t port) {
  if (port >= 1 && port <= 65535) return {};
  return {InclusiveRangeError(1, 65535)};
}

std::vector<std::string> IsValidPortName(std::string_view port) {
  std::vector<std::string> errs;
  if (port.size() > 15) errs.push_back(MaxLenError(15));
  bool charset = !port.empty() && std::all_of(port.begin(), port.end(),
                                              [](char c) { return IsLowerAlnum(c) || c == '-'; });
  if (!charset) {
    errs.push_back("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
  }
  if (std::none_of(port.begin(), port.end(), [](char c) { return c >= 'a' && c <= 'z'; })) {
    errs.push_back("must contain at least one letter (a-z)");
  }
  if (port.find("--") != std::string_view::npos) {
    errs.push_back("must not contain consecutive hyphens");
  }
  if (!port.empty() && (port.front() == '-' || port.back() == '-')) {
    errs.push_back("must not begin or end with a hyphen");
  }
  return errs;
}

std::vector<std::string> IsValidPercent(std::string_view v) {
  bool ok = v.size() >= 2 && v.back() == '%' &&
            std::all_of(v.begin(), v.end() - 1, [](char c) { return IsDigit(c); });
  if (ok) return {};
  return {RegexError("a valid percent string must be a numeric string followed by an ending '%'",
                     "[0-9]+%", {"1%", "93%"})};
}

std::vector<std::string> IsHTTPHeaderName(std::string_view v) {
  bool ok =
      !v.empty() && std::all_of(v.begin(), v.end(), [](char c) { return IsAlnum(c) || c == '-'; });
  if (ok) return {};
  return {RegexError("a valid HTTP header must consist of alphanumeric characters or '-'",
                     "[-A-Za-z0-9]+", {"X-Header-Name"})};
}

std::vector<std::string> IsWildcardDNS1123Subdomain(std::string_view v) {
  std::vector<std::string> errs;
  if (v.size() > 253) errs.push_back(MaxLenError(253));
  if (!(v.substr(0, 2) == "*." && MatchDns1123Subdomain(v.substr(2)))) {
    errs.push_back(RegexError(
        "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, "
        "which must consist of lower case alphanumeric characters, '-' or '.' and end with an "
        "alphanumeric character",
        "\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*",
        {"*.example.com"}));
  }
  return errs;
}

// ---------------------------------------------------------------------------
// IP addresses, with Go's classification of special ranges.

struct Ip {
  bool v6 = false;
  unsigned char b[16] = {};
};

std::optional<Ip> ParseIp(std::string_view text) {
  std::string s(text);
  Ip ip;
  if (inet_pton(AF_INET, s.c_str(), ip.b) == 1) return ip;
  if (s.find(':') != std::string::npos && inet_pton(AF_INET6, s.c_str(), ip.b) == 1) {
    static const unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::equal(kMapped, kMapped + 12, ip.b)) {  // Go treats ::ffff:a.b.c.d as IPv4
      std::copy(ip.b + 12, ip.b + 16, ip.b);
      return ip;
    }
    ip.v6 = true;
    return ip;
  }
  return std::nullopt;
}

bool ParseCidr(std::string_view text, Ip* ip, int* prefix) {
  size_t slash = text.find('/');
  if (slash == std::string_view::npos || slash + 1 >= text.size()) return false;
  auto parsed = ParseIp(text.substr(0, slash));
  if (!parsed) return false;
  std::string_view bits = text.substr(slash + 1);
  if (bits.size() > 3 || !std::all_of(bits.begin(), bits.end(), IsDigit)) return false;
  int n = std::stoi(std::string(bits));
  if (n > (parsed->v6 ? 128 : 32)) return false;
  *ip = *parsed;
  *prefix = n;
  return true;
}

bool CidrContains(const Ip& net, int prefix, const Ip& ip) {
  if (net.v6 != ip.v6) return false;
  for (int bit = 0; bit < prefix; ++bit) {
    int byte = bit / 8, mask = 0x80 >> (bit % 8);
    if ((net.b[byte] & mask) != (ip.b[byte] & mask)) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------
// Field paths, as field.Path renders them: a.b[0].c[key].

std::string P(const std::string& base, std::string_view child) {
  if (base.empty()) return std::string(child);
  return base + "." + std::string(child);
}
std::string I(const std::string& base, size_t i) { return base + "[" + std::to_string(i) + "]"; }
std::string K(const std::string& base, std::string_view key) {
  return base + "[" + std::string(key) + "]";
}

// ---------------------------------------------------------------------------
// field.ErrorList: type, field and the rendered body of each error.

struct FieldError {
  std::string reason;
  std::string field;
  std::string body;
};

class ErrorList {
 public:
  void Required(const std::string& f, std::string_view detail = {}) {
    Add("FieldValueRequired", f, "Required value", detail);
  }
  void Invalid(const std::string& f, const std::string& value, std::string_view detail) {
    Add("FieldValueInvalid", f, "Invalid value: " + value, detail);
  }
  void NotSupported(const std::string& f, const std::string& value,
                    const std::vector<std::string>& valid) {
    std::vector<std::string> quoted;
    for (const auto& v : valid) quoted.push_back(GoQuote(v));
    std::string detail = quoted.empty() ? "" : "supported values: " + Join(quoted, ", ");
    Add("FieldValueNotSupported", f, "Unsupported value: " + value, detail);
  }
  void Duplicate(const std::string& f, const std::string& value) {
    Add("FieldValueDuplicate", f, "Duplicate value: " + value, {});
  }
  void NotFound(const std::string& f, const std::string& value) {
    Add("FieldValueNotFound", f, "Not found: " + value, {});
  }
  void Forbidden(const std::string& f, std::string_view detail) {
    Add("FieldValueForbidden", f, "Forbidden", detail);
  }
  void TooLong(const std::string& f, int64_t max) {
    Add("FieldValueTooLong", f, "Too long", "must have at most " + std::to_string(max) + " bytes");
  }
  void TooMany(const std::string& f, int64_t actual, int64_t max) {
    Add("FieldValueTooMany", f, "Too many: " + std::to_string(actual),
        "must have at most " + std::to_string(max) + " items");
  }

  bool empty() const { return items_.empty(); }
  size_t size() const { return items_.size(); }
  const std::vector<FieldError>& items() const { return items_; }

 private:
  void Add(const char* reason, const std::string& f, std::string body, std::string_view detail) {
    if (!detail.empty()) body += ": " + std::string(detail);
    items_.push_back({reason, f, std::move(body)});
  }
  std::vector<FieldError> items_;
};

// ---------------------------------------------------------------------------
// resource.Quantity (client/quantity.h): value = ±digits × 10^exp10 × 2^exp2.

using i128 = __int128;
i128 ScaledCeil(const Quantity& q, int scale10) { return QuantityScaledCeil(q, scale10); }

// A JSON quantity is a string, or a number read as its text.
std::string QuantityTextOf(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return v.dump();
  if (v.is_number_float()) {
    std::string s = v.dump();
    return s;
  }
  return {};
}

}  // namespace

std::vector<std::string> IsDNS1123Label(std::string_view value) {
  std::vector<std::string> errs;
  if (value.size() > 63) errs.push_back(MaxLenError(63));
  if (!MatchDns1123Label(value)) {
    if (MatchDns1123Subdomain(value)) {
      errs.push_back("must not contain dots");
    } else {
      errs.push_back(
          RegexError("a lowercase RFC 1123 label must consist of lower case "
                     "alphanumeric characters or '-', and must start and end with an "
                     "alphanumeric character",
                     kDns1123LabelFmt, {"my-name", "123-abc"}));
    }
  }
  return errs;
}

std::vector<std::string> IsDNS1123Subdomain(std::string_view value) {
  std::vector<std::string> errs;
  if (value.size() > 253) errs.push_back(MaxLenError(253));
  if (!MatchDns1123Subdomain(value)) {
    errs.push_back(
        RegexError("a lowercase RFC 1123 subdomain must consist of lower case "
                   "alphanumeric characters, '-' or '.', and must start and end with "
                   "an alphanumeric character",
                   kDns1123SubdomainFmt, {"example.com"}));
  }
  return errs;
}

std::vector<std::string> IsDNS1035Label(std::string_view value) {
  std::vector<std::string> errs;
  if (value.size() > 63) errs.push_back(MaxLenError(63));
  if (!MatchDns1035Label(value)) {
    errs.push_back(
        RegexError("a DNS-1035 label must consist of lower case alphanumeric "
                   "characters or '-', start with an alphabetic character, and end "
                   "with an alphanumeric character",
                   kDns1035LabelFmt, {"my-name", "abc-123"}));
  }
  return errs;
}

std::vector<std::string> IsQualifiedName(std::string_view value) {
  std::vector<std::string> errs;
  auto parts = Split(value, '/');
  std::string name;
  if (parts.size() == 1) {
    name = parts[0];
  } else if (parts.size() == 2) {
    const std::string& prefix = parts[0];
    name = parts[1];
    if (prefix.empty()) {
      errs.push_back("prefix part must be non-empty");
    } else {
      for (auto& m : IsDNS1123Subdomain(prefix)) errs.push_back("prefix part " + m);
    }
  } else {
    errs.push_back(
        "a qualified name " +
        RegexError(kQualifiedNameErrMsg, kQualifiedNameFmt, {"MyName", "my.name", "123-abc"}) +
        " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')");
    return errs;
  }
  if (name.empty()) {
    errs.push_back("name part must be non-empty");
  } else if (name.size() > 63) {
    errs.push_back("name part " + MaxLenError(63));
  }
  if (!MatchQualifiedName(name)) {
    errs.push_back("name part " + RegexError(kQualifiedNameErrMsg, kQualifiedNameFmt,
                                             {"MyName", "my.name", "123-abc"}));
  }
  return errs;
}

std::vector<std::string> IsValidLabelValue(std::string_view value) {
  std::vector<std::string> errs;
  if (value.size() > 63) errs.push_back(MaxLenError(63));
  if (!value.empty() && !MatchQualifiedName(value)) {
    errs.push_back(
        RegexError("a valid label must be an empty string or consist of alphanumeric "
                   "characters, '-', '_' or '.', and must start and end with an "
                   "alphanumeric character",
                   kLabelValueFmt, {"MyValue", "my_value", "12345"}));
  }
  return errs;
}

namespace {

std::vector<std::string> IsValidIPMsgs(std::string_view v) {
  if (ParseIp(v)) return {};
  return {"must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"};
}

std::vector<std::string> IsValidCIDRMsgs(std::string_view v) {
  Ip ip;
  int prefix;
  if (ParseCidr(v, &ip, &prefix)) return {};
  return {"must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"};
}

// apimachinery NameIsDNSSubdomain & co: with prefix (generateName) a
// trailing dash is allowed.
// kPathSegment: RBAC names (path.IsValidPathSegmentName).
enum class NameRule { kSubdomain, kLabel, kDns1035, kPathSegment };

std::string MaskTrailingDash(std::string name) {
  if (name.size() > 1 && name.back() == '-') return name.substr(0, name.size() - 2) + "a";
  return name;
}

std::vector<std::string> CheckName(NameRule rule, const std::string& name, bool prefix) {
  std::string n = prefix ? MaskTrailingDash(name) : name;
  switch (rule) {
    case NameRule::kLabel:
      return IsDNS1123Label(n);
    case NameRule::kDns1035:
      return IsDNS1035Label(n);
    case NameRule::kPathSegment: {
      if (!prefix && (n == "." || n == "..")) return {"may not be '" + n + "'"};
      std::vector<std::string> out;
      for (const char* bad : {"/", "%"}) {
        if (n.find(bad) != std::string::npos) out.push_back(std::string("may not contain '") + bad + "'");
      }
      return out;
    }
    case NameRule::kSubdomain:
      break;
  }
  return IsDNS1123Subdomain(n);
}

// ---------------------------------------------------------------------------
// The validator: typed reads of the JSON (a value of the wrong type is a
// decode error, as in the real server) and the checks of each kind.

const Json& EmptyObject() {
  static const Json kEmpty = Json::object();
  return kEmpty;
}

std::string JsonTypeName(const Json& v) {
  if (v.is_string()) return "string";
  if (v.is_number()) return "number";
  if (v.is_boolean()) return "bool";
  if (v.is_array()) return "array";
  if (v.is_object()) return "object";
  return "null";
}

// apiequality.Semantic-style comparison form (defined with the pod update checks).
Json Normalized(const Json& v);

// A string member, or "" when absent or not a string (for stored objects and
// defaulting, where a wrong type is not this code's to report).
std::string StringAt(const Json& o, const char* key) {
  if (!o.is_object()) return {};
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Go's decode errors name the field without list indices.
std::string GoFieldPath(const std::string& path) {
  std::string out;
  int depth = 0;
  for (char c : path) {
    if (c == '[') {
      ++depth;
    } else if (c == ']') {
      --depth;
    } else if (depth == 0) {
      out += c;
    }
  }
  return out;
}

struct IntOrStr {
  bool is_int = true;
  int64_t i = 0;
  std::string s;
  // intstr.IntOrString is a Stringer: rendered without quotes.
  std::string Render() const { return is_int ? N(i) : s; }
};

struct VolumeInfo {
  bool claim = false;  // persistentVolumeClaim or ephemeral: usable as a block device
  bool image = false;
};
using VolumeMap = std::map<std::string, VolumeInfo>;

const std::vector<std::string> kProtocols = {"SCTP", "TCP", "UDP"};  // sets.List order

class Validator {
 public:
  Validator(std::string group, std::string kind)
      : group_(std::move(group)), kind_(std::move(kind)) {}

  ErrorList errs;

  void Run(const Json& obj, const Json* old);

 private:
  // -- typed access --------------------------------------------------------
  [[noreturn]] void DecodeError(const std::string& detail) const {
    throw Error::BadRequest(kind_ + " in version \"v1\" cannot be handled as a " + kind_ + ": " +
                            detail);
  }
  [[noreturn]] void TypeError(const Json& v, const std::string& path, std::string_view want) const {
    DecodeError("json: cannot unmarshal " + JsonTypeName(v) + " into Go struct field " + kind_ +
                "." + GoFieldPath(path) + " of type " + std::string(want));
  }
  static const Json* Get(const Json& o, std::string_view key) {
    if (!o.is_object()) return nullptr;
    auto it = o.find(std::string(key));
    if (it == o.end() || it->is_null()) return nullptr;
    return &*it;
  }
  std::string Str(const Json& o, std::string_view key, const std::string& path) const {
    const Json* v = Get(o, key);
    if (!v) return {};
    if (!v->is_string()) TypeError(*v, path, "string");
    return v->get<std::string>();
  }
  std::optional<int64_t> Int(const Json& o, std::string_view key, const std::string& path) const {
    const Json* v = Get(o, key);
    if (!v) return std::nullopt;
    return IntValue(*v, path);
  }
  int64_t IntValue(const Json& v, const std::string& path) const {
    if (v.is_number_unsigned()) {
      if (v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        TypeError(v, path, "int64");
      }
      return static_cast<int64_t>(v.get<uint64_t>());
    }
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_float()) {
      double d = v.get<double>();
      if (std::floor(d) == d && std::fabs(d) < 9e18) return static_cast<int64_t>(d);
    }
    TypeError(v, path, "int64");
  }
  std::optional<bool> Bool(const Json& o, std::string_view key, const std::string& path) const {
    const Json* v = Get(o, key);
    if (!v) return std::nullopt;
    if (!v->is_boolean()) TypeError(*v, path, "bool");
    return v->get<bool>();
  }
  const Json* Obj(const Json& o, std::string_view key, const std::string& path) const {
    const Json* v = Get(o, key);
    if (v && !v->is_object()) TypeError(*v, path, "object");
    return v;
  }
  const Json* Arr(const Json& o, std::string_view key, const std::string& path) const {
    const Json* v = Get(o, key);
    if (v && !v->is_array()) TypeError(*v, path, "array");
    return v;
  }
  const Json& Elem(const Json& arr, size_t i, const std::string& path) const {
    const Json& v = arr[i];
    if (!v.is_object()) TypeError(v, path, "object");
    return v;
  }
  std::optional<std::map<std::string, std::string>> StrMap(const Json& o, std::string_view key,
                                                           const std::string& path) const {
    const Json* v = Obj(o, key, path);
    if (!v) return std::nullopt;
    std::map<std::string, std::string> out;
    for (const auto& [k, val] : v->items()) {
      if (!val.is_string()) TypeError(val, path, "string");
      out[k] = val.get<std::string>();
    }
    return out;
  }
  std::optional<std::vector<std::string>> StrList(const Json& o, std::string_view key,
                                                  const std::string& path) const {
    const Json* v = Arr(o, key, path);
    if (!v) return std::nullopt;
    std::vector<std::string> out;
    for (const auto& el : *v) {
      if (!el.is_string()) TypeError(el, path, "string");
      out.push_back(el.get<std::string>());
    }
    return out;
  }
  std::optional<IntOrStr> IntOrString(const Json& o, std::string_view key,
                                      const std::string& path) const {
    const Json* v = Get(o, key);
    if (!v) return std::nullopt;
    IntOrStr r;
    if (v->is_string()) {
      r.is_int = false;
      r.s = v->get<std::string>();
    } else if (v->is_number()) {
      r.i = IntValue(*v, path);
    } else {
      TypeError(*v, path, "intstr.IntOrString");
    }
    return r;
  }
  Quantity Qty(const Json& v, const std::string& path) const {
    if (!v.is_string() && !v.is_number()) TypeError(v, path, "resource.Quantity");
    std::string error;
    auto q = ParseQuantityText(QuantityTextOf(v), &error);
    if (!q) DecodeError(error);
    return *q;
  }

  // -- shared checks ------------------------------------------------------
  void NonNegative(std::optional<int64_t> v, const std::string& path) {
    if (v && *v < 0) errs.Invalid(path, N(*v), "must be greater than or equal to 0");
  }
  void Dns1123Label(const std::string& v, const std::string& path) {
    for (auto& m : IsDNS1123Label(v)) errs.Invalid(path, Q(v), m);
  }
  void Dns1123Subdomain(const std::string& v, const std::string& path) {
    for (auto& m : IsDNS1123Subdomain(v)) errs.Invalid(path, Q(v), m);
  }
  void QualifiedName(const std::string& v, const std::string& path) {
    for (auto& m : IsQualifiedName(v)) errs.Invalid(path, Q(v), m);
  }
  void PortNumOrName(const IntOrStr& port, const std::string& path) {
    if (port.is_int) {
      for (auto& m : IsValidPortNum(port.i)) errs.Invalid(path, N(port.i), m);
    } else {
      for (auto& m : IsValidPortName(port.s)) errs.Invalid(path, Q(port.s), m);
    }
  }
  void Labels(const std::optional<std::map<std::string, std::string>>& labels,
              const std::string& path) {
    if (!labels) return;
    for (const auto& [k, v] : *labels) {
      QualifiedName(k, path);
      for (auto& m : IsValidLabelValue(v)) errs.Invalid(path, Q(v), m);
    }
  }
  void Annotations(const std::optional<std::map<std::string, std::string>>& annotations,
                   const std::string& path) {
    if (!annotations) return;
    size_t total = 0;
    for (const auto& [k, v] : *annotations) {
      for (auto& m : IsQualifiedName(ToLower(k))) errs.Invalid(path, Q(k), m);
      total += k.size() + v.size();
    }
    if (total > 256 * 1024) errs.TooLong(path, 256 * 1024);
  }
  // Returns false when the selector would not convert to a labels.Selector.
  bool LabelSelector(const Json* selector, const std::string& path);
  std::string RenderSelector(const Json* selector) const;
  bool SelectorMatches(const Json* selector, const std::map<std::string, std::string>& labels,
                       bool* empty) const;
  void TemplateMatchesSelector(const Json* selector, const Json* tmpl, const std::string& path);
  void ImmutableSelector(const Json& obj, const Json& old);

  void ObjectMeta(const Json& obj, NameRule rule, int scope);
  void ObjectMetaUpdate(const Json& obj, const Json& old);
  void Finalizers(const std::optional<std::vector<std::string>>& finalizers,
                  const std::string& path);

  // -- pods ------------------------------------------------------------------
  void PodSpec(const Json* spec, const std::string& path, bool is_pod,
               const std::set<std::string>& claim_volumes);
  void PodTemplate(const Json* tmpl, const std::string& path,
                   const std::set<std::string>& claim_volumes = {});
  VolumeMap Volumes(const Json* arr, const std::string& path);
  VolumeInfo VolumeSource(const Json& v, const std::string& path);
  void KeyToPaths(const Json& src, const std::string& path);
  void FileMode(const Json& o, std::string_view key, const std::string& path);
  void LocalDescendingPath(const std::string& p, const std::string& path);
  void LocalNonReservedPath(const std::string& p, const std::string& path);
  void NoBacksteps(const std::string& p, const std::string& path);
  void DownwardAPIFile(const Json& file, const std::string& path);
  void ObjectFieldSelector(const Json& fs, const std::set<std::string>& allowed,
                           const std::string& path);
  void ResourceFieldSelector(const Json& fs, bool volume, const std::string& path);
  void Containers(const Json* arr, const VolumeMap& vols, std::optional<int64_t> grace,
                  const std::string& path, bool is_pod);
  void InitContainers(const Json* arr, const Json* regular, const VolumeMap& vols,
                      std::optional<int64_t> grace, const std::string& path, bool is_pod);
  void ContainerCommon(const Json& c, const VolumeMap& vols, const std::string& path, bool is_pod);
  void HostPortConflicts(const Json* containers, const std::string& path, bool single);
  void ContainerPorts(const Json* ports, const std::string& path);
  void Env(const Json* env, const std::string& path);
  void EnvFrom(const Json* env_from, const std::string& path);
  void VolumeMounts(const Json& c, const VolumeMap& vols, const std::string& path);
  void Resources(const Json* resources, const std::string& path);
  void ResourceName(const std::string& name, const std::string& path);
  void SecurityContext(const Json* sc, const std::string& path);
  void Probe(const Json* probe, std::optional<int64_t> grace, const std::string& path,
             bool success_must_be_one, bool readiness);
  void Handler(const Json& h, std::optional<int64_t> grace, const std::string& path,
               bool lifecycle);
  void Lifecycle(const Json* lifecycle, std::optional<int64_t> grace, const std::string& path);
  void Tolerations(const Json* arr, const std::string& path);
  void DnsConfig(const Json* config, const std::string& policy, const std::string& path);
  void PodUpdate(const Json& obj, const Json& old);

  // -- the kinds --------------------------------------------------------------
  void Pod(const Json& obj, const Json* old);
  void Service(const Json& obj, const Json* old);
  void ServicePort(const Json& port, bool require_name, std::set<std::string>* names,
                   const std::string& path);
  void Endpoints(const Json& obj);
  void ConfigMap(const Json& obj, const Json* old);
  void Secret(const Json& obj, const Json* old);
  void Node(const Json& obj);
  void Namespace(const Json& obj);
  void Deployment(const Json& obj, const Json* old);
  void ReplicaSet(const Json& obj, const Json* old);
  void DaemonSet(const Json& obj, const Json* old);
  void StatefulSet(const Json& obj, const Json* old);
  void AppsReplicaSetLike(const Json& spec, const std::string& empty_selector_msg);
  void RollingUpdateIntOrPercent(const Json& ru, std::string_view key, const std::string& path,
                                 std::optional<IntOrStr>* out);
  void JobSpec(const Json* spec, const std::string& path, bool in_cronjob);
  void Job(const Json& obj, const Json* old);
  void CronJob(const Json& obj, const Json* old);
  void TimeZone(const Json& spec, const std::string& schedule, bool allow_tz_in_schedule);
  void ReplicationController(const Json& obj);
  void ControllerRevision(const Json& obj, const Json* old);
  void PodDisruptionBudget(const Json& obj);
  void PdbIntOrPercent(const Json& spec, std::string_view key, const std::string& path);
  void Ingress(const Json& obj);
  void IngressBackend(const Json& backend, const std::string& path);
  void IngressClass(const Json& obj);
  void PriorityClass(const Json& obj, const Json* old);
  void NetworkPolicy(const Json& obj);
  void EndpointSlice(const Json& obj, const Json* old);
  void Lease(const Json& obj);
  void PersistentVolumeClaim(const Json& obj, const Json* old);
  void PersistentVolume(const Json& obj, const Json* old);
  void StorageClass(const Json& obj, const Json* old);
  void AccessModes(const Json& spec, const std::string& path, const char* required_msg);
  void StorageQuantity(const Json& value, const std::string& path);
  void StorageClassNameAndMode(const Json& spec);
  // LimitRange, ResourceQuota and PodTemplate (apiserver/limit_range.h,
  // apiserver/resource_quota.h).
  void LimitRange(const Json& obj);
  void ResourceQuota(const Json& obj);
  void QuotaResourceList(const Json* list, const std::string& path);
  void GenericResourceName(const std::string& name, const std::string& path);
  void PodTemplateObject(const Json& obj);

  // -- rbac.authorization.k8s.io ---------------------------------------------
  void PolicyRules(const Json& obj, bool namespaced);
  void RoleBinding(const Json& obj, const Json* old, bool cluster);
  void ClusterRole(const Json& obj);

  // -- admissionregistration.k8s.io --------------------------------------------
  void WebhookConfiguration(const Json& obj, bool mutating);
  void Webhook(const Json& hook, bool mutating, const std::string& path);
  void WebhookRule(const Json& rule, const std::string& path);
  void WebhookUrl(const std::string& url, const std::string& path);
  void WebhookService(const Json& svc, const std::string& path);

  std::string group_;
  std::string kind_;
};

// ---------------------------------------------------------------------------
// Metadata.

constexpr int kNamespaced = 0, kClusterScoped = 1, kUnknownScope = 2;

void Validator::ObjectMeta(const Json& obj, NameRule rule, int scope) {
  const Json* mp = Obj(obj, "metadata", "metadata");
  const Json& m = mp ? *mp : EmptyObject();
  std::string generate = Str(m, "generateName", "metadata.generateName");
  std::string name = Str(m, "name", "metadata.name");
  std::string ns = Str(m, "namespace", "metadata.namespace");
  if (!generate.empty()) {
    for (auto& msg : CheckName(rule, generate, true)) {
      errs.Invalid("metadata.generateName", Q(generate), msg);
    }
  }
  if (name.empty()) {
    errs.Required("metadata.name", "name or generateName is required");
  } else {
    for (auto& msg : CheckName(rule, name, false)) errs.Invalid("metadata.name", Q(name), msg);
  }
  if (scope == kNamespaced) {
    if (ns.empty()) {
      errs.Required("metadata.namespace");
    } else {
      Dns1123Label(ns, "metadata.namespace");
    }
  } else if (scope == kClusterScoped && !ns.empty()) {
    errs.Forbidden("metadata.namespace", "not allowed on this type");
  }
  NonNegative(Int(m, "generation", "metadata.generation"), "metadata.generation");
  Labels(StrMap(m, "labels", "metadata.labels"), "metadata.labels");
  Annotations(StrMap(m, "annotations", "metadata.annotations"), "metadata.annotations");
  if (const Json* refs = Arr(m, "ownerReferences", "metadata.ownerReferences")) {
    const std::string path = "metadata.ownerReferences";
    for (size_t i = 0; i < refs->size(); ++i) {
      const Json& ref = Elem(*refs, i, I(path, i));
      std::string api_version = Str(ref, "apiVersion", P(path, "apiVersion"));
      std::string version = api_version.substr(
          api_version.find('/') == std::string::npos ? 0 : api_version.find('/') + 1);
      if (version.empty()) {
        errs.Invalid(P(path, "apiVersion"), Q(api_version), "version must not be empty");
      }
      std::string kind = Str(ref, "kind", P(path, "kind"));
      if (kind.empty()) errs.Invalid(P(path, "kind"), Q(kind), "must not be empty");
      std::string ref_name = Str(ref, "name", P(path, "name"));
      if (ref_name.empty()) errs.Invalid(P(path, "name"), Q(ref_name), "must not be empty");
      std::string uid = Str(ref, "uid", P(path, "uid"));
      if (uid.empty()) errs.Invalid(P(path, "uid"), Q(uid), "must not be empty");
    }
  }
  Finalizers(StrList(m, "finalizers", "metadata.finalizers"), "metadata.finalizers");
}

void Validator::Finalizers(const std::optional<std::vector<std::string>>& finalizers,
                           const std::string& path) {
  if (!finalizers) return;
  bool orphan = false, foreground = false;
  for (const auto& f : *finalizers) {
    QualifiedName(f, path);
    orphan |= f == "orphan";
    foreground |= f == "foregroundDeletion";
  }
  if (orphan && foreground) {
    errs.Invalid(path, GoStringSlice(&*finalizers),
                 "finalizer orphan and foregroundDeletion cannot be both set");
  }
  for (size_t i = 0; i < finalizers->size(); ++i) {
    const std::string& f = (*finalizers)[i];
    // (A CRD's own cleanup finalizer is the apiextensions server's.)
    if (f.find('/') == std::string::npos && f != "kubernetes" && f != "orphan" &&
        f != "foregroundDeletion" && f != "customresourcecleanup.apiextensions.k8s.io") {
      errs.Invalid(I(path, i), Q(f),
                   "name is neither a standard finalizer name nor is it fully qualified");
    }
  }
}

void Validator::ObjectMetaUpdate(const Json& obj, const Json& old) {
  const Json* mp = Obj(obj, "metadata", "metadata");
  const Json* op = Obj(old, "metadata", "metadata");
  const Json& m = mp ? *mp : EmptyObject();
  const Json& o = op ? *op : EmptyObject();
  for (const char* key : {"name", "namespace", "uid", "creationTimestamp"}) {
    std::string path = std::string("metadata.") + key;
    std::string now = Str(m, key, path), before = Str(o, key, path);
    // The registry carries uid and creationTimestamp over when a client leaves them out.
    bool carried = std::string_view(key) == "uid" || std::string_view(key) == "creationTimestamp";
    if (now != before && !(carried && now.empty())) {
      errs.Invalid(path, Q(now), "field is immutable");
    }
  }
}

// ---------------------------------------------------------------------------
// Label selectors (metav1.LabelSelector).

bool Validator::LabelSelector(const Json* selector, const std::string& path) {
  if (!selector) return true;
  size_t before = errs.size();
  Labels(StrMap(*selector, "matchLabels", P(path, "matchLabels")), P(path, "matchLabels"));
  if (const Json* exprs = Arr(*selector, "matchExpressions", P(path, "matchExpressions"))) {
    for (size_t i = 0; i < exprs->size(); ++i) {
      std::string ip = I(P(path, "matchExpressions"), i);
      const Json& e = Elem(*exprs, i, ip);
      std::string op = Str(e, "operator", P(ip, "operator"));
      auto values = StrList(e, "values", P(ip, "values"));
      size_t nvalues = values ? values->size() : 0;
      if (op == "In" || op == "NotIn") {
        if (nvalues == 0) {
          errs.Required(P(ip, "values"), "must be specified when `operator` is 'In' or 'NotIn'");
        }
      } else if (op == "Exists" || op == "DoesNotExist") {
        if (nvalues > 0) {
          errs.Forbidden(P(ip, "values"),
                         "may not be specified when `operator` is 'Exists' or 'DoesNotExist'");
        }
      } else {
        errs.Invalid(P(ip, "operator"), Q(op), "not a valid selector operator");
      }
      QualifiedName(Str(e, "key", P(ip, "key")), P(ip, "key"));
      for (size_t j = 0; j < nvalues; ++j) {
        for (auto& m : IsValidLabelValue((*values)[j])) {
          errs.Invalid(I(P(ip, "values"), j), Q((*values)[j]), m);
        }
      }
    }
  }
  return errs.size() == before;
}

// %#v of a dereferenced *metav1.LabelSelector, as field errors print it.
std::string Validator::RenderSelector(const Json* selector) const {
  if (!selector) return "null";
  std::optional<std::map<std::string, std::string>> labels;
  if (const Json* ml = Get(*selector, "matchLabels"); ml && ml->is_object()) {
    labels.emplace();
    for (const auto& [k, v] : ml->items()) {
      (*labels)[k] = v.is_string() ? v.get<std::string>() : v.dump();
    }
  }
  std::string exprs = "[]v1.LabelSelectorRequirement(nil)";
  if (const Json* me = Get(*selector, "matchExpressions"); me && me->is_array()) {
    std::vector<std::string> parts;
    for (const auto& e : *me) {
      std::vector<std::string> values;
      const Json* vs = Get(e, "values");
      if (vs && vs->is_array()) {
        for (const auto& v : *vs) values.push_back(v.is_string() ? v.get<std::string>() : "");
      }
      auto str = [&](const char* k) {
        const Json* v = Get(e, k);
        return v && v->is_string() ? v->get<std::string>() : std::string();
      };
      parts.push_back("v1.LabelSelectorRequirement{Key:" + GoQuote(str("key")) +
                      ", Operator:" + GoQuote(str("operator")) +
                      ", Values:" + GoStringSlice(vs && vs->is_array() ? &values : nullptr) + "}");
    }
    exprs = "[]v1.LabelSelectorRequirement{" + Join(parts, ", ") + "}";
  }
  return "v1.LabelSelector{MatchLabels:" + GoStringMap(labels ? &*labels : nullptr) +
         ", MatchExpressions:" + exprs + "}";
}

// labels.Selector semantics: a nil selector matches nothing, an empty one
// everything (and is "empty").
bool Validator::SelectorMatches(const Json* selector,
                                const std::map<std::string, std::string>& labels,
                                bool* empty) const {
  *empty = false;
  if (!selector) return false;
  bool any = false;
  if (const Json* ml = Get(*selector, "matchLabels"); ml && ml->is_object()) {
    for (const auto& [k, v] : ml->items()) {
      any = true;
      auto it = labels.find(k);
      if (it == labels.end() || !v.is_string() || it->second != v.get<std::string>()) {
        return false;
      }
    }
  }
  if (const Json* me = Get(*selector, "matchExpressions"); me && me->is_array()) {
    for (const auto& e : *me) {
      any = true;
      const Json* kj = Get(e, "key");
      const Json* oj = Get(e, "operator");
      std::string key = kj && kj->is_string() ? kj->get<std::string>() : "";
      std::string op = oj && oj->is_string() ? oj->get<std::string>() : "";
      std::set<std::string> values;
      if (const Json* vs = Get(e, "values"); vs && vs->is_array()) {
        for (const auto& v : *vs) {
          if (v.is_string()) values.insert(v.get<std::string>());
        }
      }
      auto it = labels.find(key);
      bool has = it != labels.end();
      bool ok = op == "In"             ? has && values.count(it->second)
                : op == "NotIn"        ? !has || !values.count(it->second)
                : op == "Exists"       ? has
                : op == "DoesNotExist" ? !has
                                       : false;
      if (!ok) return false;
    }
  }
  *empty = !any;
  return true;
}

void Validator::TemplateMatchesSelector(const Json* selector, const Json* tmpl,
                                        const std::string& path) {
  const Json* meta = tmpl ? Obj(*tmpl, "metadata", P(path, "metadata")) : nullptr;
  auto labels = meta ? StrMap(*meta, "labels", P(path, "metadata.labels")) : std::nullopt;
  bool empty = false;
  std::map<std::string, std::string> none;
  bool matches = SelectorMatches(selector, labels ? *labels : none, &empty);
  if (!empty && !matches) {
    errs.Invalid(P(path, "metadata.labels"), GoStringMap(labels ? &*labels : nullptr),
                 "`selector` does not match template `labels`");
  }
}

void Validator::ImmutableSelector(const Json& obj, const Json& old) {
  const Json* spec = Obj(obj, "spec", "spec");
  const Json* old_spec = Obj(old, "spec", "spec");
  const Json* now = spec ? Obj(*spec, "selector", "spec.selector") : nullptr;
  const Json* before = old_spec ? Get(*old_spec, "selector") : nullptr;
  Json a = now ? Normalized(*now) : Json(), b = before ? Normalized(*before) : Json();
  if (a != b) errs.Invalid("spec.selector", RenderSelector(now), "field is immutable");
}

// ---------------------------------------------------------------------------
// Pod specs (core/validation ValidatePodSpec and friends).

const char* kFileModeErrorMsg = "must be a number between 0 and 0777 (octal), both inclusive";

void Validator::NoBacksteps(const std::string& p, const std::string& path) {
  for (const auto& part : Split(p, '/')) {
    if (part == "..") {
      errs.Invalid(path, Q(p), "must not contain '..'");
      return;
    }
  }
}

void Validator::LocalDescendingPath(const std::string& p, const std::string& path) {
  if (!p.empty() && p[0] == '/') errs.Invalid(path, Q(p), "must be a relative path");
  NoBacksteps(p, path);
}

void Validator::LocalNonReservedPath(const std::string& p, const std::string& path) {
  size_t before = errs.size();
  LocalDescendingPath(p, path);
  if (p.rfind("..", 0) == 0 && errs.size() == before) {
    errs.Invalid(path, Q(p), "must not start with '..'");
  }
}

void Validator::FileMode(const Json& o, std::string_view key, const std::string& path) {
  auto mode = Int(o, key, path);
  if (mode && (*mode > 0777 || *mode < 0)) errs.Invalid(path, N(*mode), kFileModeErrorMsg);
}

void Validator::KeyToPaths(const Json& src, const std::string& path) {
  const Json* items = Arr(src, "items", P(path, "items"));
  if (!items) return;
  for (size_t i = 0; i < items->size(); ++i) {
    std::string ip = I(P(path, "items"), i);
    const Json& kp = Elem(*items, i, ip);
    if (Str(kp, "key", P(ip, "key")).empty()) errs.Required(P(ip, "key"));
    std::string p = Str(kp, "path", P(ip, "path"));
    if (p.empty()) errs.Required(P(ip, "path"));
    LocalNonReservedPath(p, P(ip, "path"));
    FileMode(kp, "mode", P(ip, "mode"));
  }
}

// ConvertDownwardAPIFieldLabel for v1 pods.
bool SupportedDownwardField(const std::string& path) {
  static const std::set<std::string> kFields = {
      "metadata.annotations", "metadata.labels", "metadata.name",      "metadata.namespace",
      "metadata.uid",         "spec.nodeName",   "spec.restartPolicy", "spec.serviceAccountName",
      "spec.schedulerName",   "status.phase",    "status.hostIP",      "status.hostIPs",
      "status.podIP",         "status.podIPs"};
  return kFields.count(path) > 0;
}

void Validator::ObjectFieldSelector(const Json& fs, const std::set<std::string>& allowed,
                                    const std::string& path) {
  std::string api_version = Str(fs, "apiVersion", P(path, "apiVersion"));
  if (api_version.empty()) {
    errs.Required(P(path, "apiVersion"));
    return;
  }
  std::string field_path = Str(fs, "fieldPath", P(path, "fieldPath"));
  if (field_path.empty()) {
    errs.Required(P(path, "fieldPath"));
    return;
  }
  if (api_version != "v1") {
    errs.Invalid(P(path, "fieldPath"), Q(field_path),
                 "error converting fieldPath: unsupported pod version: " + api_version);
    return;
  }
  std::string base = field_path, subscript;
  bool subscripted = false;
  size_t open = field_path.find("['");
  if (open != std::string::npos && field_path.size() >= open + 4 &&
      field_path.compare(field_path.size() - 2, 2, "']") == 0) {
    base = field_path.substr(0, open);
    subscript = field_path.substr(open + 2, field_path.size() - open - 4);
    subscripted = true;
  }
  if (!SupportedDownwardField(base)) {
    errs.Invalid(P(path, "fieldPath"), Q(field_path),
                 "error converting fieldPath: field label not supported: " + field_path);
    return;
  }
  if (subscripted) {
    if (base == "metadata.annotations") {
      QualifiedName(ToLower(subscript), path);
    } else if (base == "metadata.labels") {
      QualifiedName(subscript, path);
    } else {
      errs.Invalid(path, Q(base), "does not support subscript");
    }
  } else if (!allowed.count(base)) {
    errs.NotSupported(P(path, "fieldPath"), Q(base),
                      std::vector<std::string>(allowed.begin(), allowed.end()));
  }
}

void Validator::ResourceFieldSelector(const Json& fs, bool volume, const std::string& path) {
  static const std::set<std::string> kResources = {
      "limits.cpu",   "limits.ephemeral-storage",   "limits.memory",
      "requests.cpu", "requests.ephemeral-storage", "requests.memory"};
  std::string resource = Str(fs, "resource", P(path, "resource"));
  if (volume && Str(fs, "containerName", P(path, "containerName")).empty()) {
    errs.Required(P(path, "containerName"));
  } else if (resource.empty()) {
    errs.Required(P(path, "resource"));
  } else if (!kResources.count(resource) && resource.rfind("requests.hugepages-", 0) != 0 &&
             resource.rfind("limits.hugepages-", 0) != 0) {
    errs.NotSupported(P(path, "resource"), Q(resource),
                      std::vector<std::string>(kResources.begin(), kResources.end()));
  }
}

void Validator::DownwardAPIFile(const Json& file, const std::string& path) {
  static const std::set<std::string> kVolumeFields = {"metadata.annotations", "metadata.labels",
                                                      "metadata.name", "metadata.namespace",
                                                      "metadata.uid"};
  std::string p = Str(file, "path", P(path, "path"));
  if (p.empty()) errs.Required(P(path, "path"));
  LocalNonReservedPath(p, P(path, "path"));
  const Json* field_ref = Obj(file, "fieldRef", P(path, "fieldRef"));
  const Json* resource_ref = Obj(file, "resourceFieldRef", P(path, "resourceFieldRef"));
  if (field_ref) {
    ObjectFieldSelector(*field_ref, kVolumeFields, P(path, "fieldRef"));
    if (resource_ref) {
      errs.Invalid(path, Q("resource"),
                   "fieldRef and resourceFieldRef can not be specified simultaneously");
    }
  } else if (resource_ref) {
    ResourceFieldSelector(*resource_ref, true, P(path, "resourceFieldRef"));
  } else {
    errs.Required(path, "one of fieldRef and resourceFieldRef is required");
  }
  FileMode(file, "mode", P(path, "mode"));
}

VolumeInfo Validator::VolumeSource(const Json& v, const std::string& path) {
  // VolumeSource fields in Go order, with the path each "more than 1" error names.
  static const std::pair<const char*, const char*> kSources[] = {
      {"emptyDir", "emptyDir"},
      {"hostPath", "hostPath"},
      {"gitRepo", "gitRepo"},
      {"gcePersistentDisk", "gcePersistentDisk"},
      {"awsElasticBlockStore", "awsElasticBlockStore"},
      {"secret", "secret"},
      {"nfs", "nfs"},
      {"iscsi", "iscsi"},
      {"glusterfs", "glusterfs"},
      {"flocker", "flocker"},
      {"persistentVolumeClaim", "persistentVolumeClaim"},
      {"rbd", "rbd"},
      {"cinder", "cinder"},
      {"cephfs", "cephFS"},
      {"quobyte", "quobyte"},
      {"downwardAPI", "downwarAPI"},  // sic: kube-apiserver's own spelling
      {"fc", "fc"},
      {"flexVolume", "flexVolume"},
      {"configMap", "configMap"},
      {"azureFile", "azureFile"},
      {"vsphereVolume", "vsphereVolume"},
      {"photonPersistentDisk", "photonPersistentDisk"},
      {"portworxVolume", "portworxVolume"},
      {"azureDisk", "azureDisk"},
      {"storageos", "storageos"},
      {"projected", "projected"},
      {"scaleIO", "scaleIO"},
      {"csi", "csi"},
      {"ephemeral", "ephemeral"},
      {"image", "image"},
  };
  VolumeInfo info;
  int count = 0;
  for (const auto& [key, forbidden_path] : kSources) {
    std::string sp = P(path, key);
    const Json* src = Obj(v, key, sp);
    if (!src) continue;
    if (count > 0) {
      errs.Forbidden(P(path, forbidden_path), "may not specify more than 1 volume type");
      continue;
    }
    ++count;
    std::string_view k = key;
    if (k == "emptyDir") {
      if (const Json* limit = Get(*src, "sizeLimit")) {
        if (Qty(*limit, P(sp, "sizeLimit")).negative) {
          errs.Forbidden(P(sp, "sizeLimit"), "SizeLimit field must be a valid resource quantity");
        }
      }
    } else if (k == "hostPath") {
      std::string p = Str(*src, "path", P(sp, "path"));
      if (p.empty()) {
        errs.Required(P(sp, "path"));
        continue;
      }
      NoBacksteps(p, P(sp, "path"));
      std::string type = Str(*src, "type", P(sp, "type"));
      static const std::vector<std::string> kTypes = {
          "",     "BlockDevice",  "CharDevice", "Directory", "DirectoryOrCreate",
          "File", "FileOrCreate", "Socket"};
      if (std::find(kTypes.begin(), kTypes.end(), type) == kTypes.end()) {
        errs.NotSupported(P(sp, "type"), Q(type), kTypes);
      }
    } else if (k == "secret") {
      if (Str(*src, "secretName", P(sp, "secretName")).empty()) errs.Required(P(sp, "secretName"));
      FileMode(*src, "defaultMode", P(sp, "defaultMode"));
      KeyToPaths(*src, sp);
    } else if (k == "configMap") {
      if (Str(*src, "name", P(sp, "name")).empty()) errs.Required(P(sp, "name"));
      FileMode(*src, "defaultMode", P(sp, "defaultMode"));
      KeyToPaths(*src, sp);
    } else if (k == "persistentVolumeClaim") {
      info.claim = true;
      if (Str(*src, "claimName", P(sp, "claimName")).empty()) errs.Required(P(sp, "claimName"));
    } else if (k == "ephemeral") {
      info.claim = true;
    } else if (k == "nfs") {
      if (Str(*src, "server", P(sp, "server")).empty()) errs.Required(P(sp, "server"));
      std::string p = Str(*src, "path", P(sp, "path"));
      if (p.empty()) errs.Required(P(sp, "path"));
      if (p.empty() || p[0] != '/') errs.Invalid(P(sp, "path"), Q(p), "must be an absolute path");
    } else if (k == "downwardAPI") {
      FileMode(*src, "defaultMode", P(sp, "defaultMode"));
      if (const Json* items = Arr(*src, "items", P(sp, "items"))) {
        for (size_t i = 0; i < items->size(); ++i) {
          // kube-apiserver names these errors after the volume, not the item.
          DownwardAPIFile(Elem(*items, i, I(P(sp, "items"), i)), sp);
        }
      }
    } else if (k == "projected") {
      FileMode(*src, "defaultMode", P(sp, "defaultMode"));
      if (const Json* sources = Arr(*src, "sources", P(sp, "sources"))) {
        for (size_t i = 0; i < sources->size(); ++i) {
          std::string ip = I(P(sp, "sources"), i);
          const Json& s = Elem(*sources, i, ip);
          int n = 0;
          for (const char* kind : {"secret", "configMap"}) {
            if (const Json* o = Obj(s, kind, P(ip, kind))) {
              ++n;
              if (Str(*o, "name", P(P(ip, kind), "name")).empty()) {
                errs.Required(P(P(ip, kind), "name"));
              }
              KeyToPaths(*o, P(ip, kind));
            }
          }
          if (const Json* o = Obj(s, "downwardAPI", P(ip, "downwardAPI"))) {
            ++n;
            if (const Json* items = Arr(*o, "items", P(P(ip, "downwardAPI"), "items"))) {
              for (size_t j = 0; j < items->size(); ++j) {
                DownwardAPIFile(Elem(*items, j, I(P(P(ip, "downwardAPI"), "items"), j)),
                                P(ip, "downwardAPI"));
              }
            }
          }
          if (const Json* o = Obj(s, "serviceAccountToken", P(ip, "serviceAccountToken"))) {
            ++n;
            std::string tp = P(ip, "serviceAccountToken");
            int64_t exp = Int(*o, "expirationSeconds", P(tp, "expirationSeconds")).value_or(0);
            if (exp < 600) {
              errs.Invalid(P(tp, "expirationSeconds"), N(exp),
                           "may not specify a duration less than 10 minutes");
            }
            if (exp > (int64_t{1} << 32)) {
              errs.Invalid(P(tp, "expirationSeconds"), N(exp),
                           "may not specify a duration larger than 2^32 seconds");
            }
            std::string p = Str(*o, "path", P(tp, "path"));
            if (p.empty()) {
              errs.Required(P(sp, "path"));
            } else {
              LocalNonReservedPath(p, P(sp, "path"));
            }
          }
          if (Get(s, "clusterTrustBundle")) ++n;
          if (n > 1) errs.Forbidden(ip, "may not specify more than 1 volume type per source");
        }
      }
    } else if (k == "csi") {
      if (Str(*src, "driver", P(sp, "driver")).empty()) errs.Required(P(sp, "driver"));
    } else if (k == "image") {
      info.image = true;
      if (Str(*src, "reference", P(sp, "reference")).empty()) errs.Required(P(sp, "reference"));
    }
  }
  if (count == 0) errs.Required(path, "must specify a volume type");
  return info;
}

VolumeMap Validator::Volumes(const Json* arr, const std::string& path) {
  VolumeMap vols;
  if (!arr) return vols;
  for (size_t i = 0; i < arr->size(); ++i) {
    std::string ip = I(path, i);
    const Json& v = Elem(*arr, i, ip);
    size_t before = errs.size();
    std::string name = Str(v, "name", P(ip, "name"));
    VolumeInfo info = VolumeSource(v, ip);
    if (name.empty()) {
      errs.Required(P(ip, "name"));
    } else {
      Dns1123Label(name, P(ip, "name"));
    }
    if (vols.count(name)) errs.Duplicate(P(ip, "name"), Q(name));
    if (errs.size() == before) vols[name] = info;
  }
  return vols;
}

void Validator::ContainerPorts(const Json* ports, const std::string& path) {
  if (!ports) return;
  std::set<std::string> names;
  for (size_t i = 0; i < ports->size(); ++i) {
    std::string ip = I(path, i);
    const Json& port = Elem(*ports, i, ip);
    std::string name = Str(port, "name", P(ip, "name"));
    if (!name.empty()) {
      auto msgs = IsValidPortName(name);
      for (auto& m : msgs) errs.Invalid(P(ip, "name"), Q(name), m);
      if (msgs.empty()) {
        if (names.count(name)) {
          errs.Duplicate(P(ip, "name"), Q(name));
        } else {
          names.insert(name);
        }
      }
    }
    int64_t container_port = Int(port, "containerPort", P(ip, "containerPort")).value_or(0);
    if (container_port == 0) {
      errs.Required(P(ip, "containerPort"));
    } else {
      for (auto& m : IsValidPortNum(container_port)) {
        errs.Invalid(P(ip, "containerPort"), N(container_port), m);
      }
    }
    int64_t host_port = Int(port, "hostPort", P(ip, "hostPort")).value_or(0);
    if (host_port != 0) {
      for (auto& m : IsValidPortNum(host_port)) errs.Invalid(P(ip, "hostPort"), N(host_port), m);
    }
    std::string protocol = Str(port, "protocol", P(ip, "protocol"));
    if (protocol.empty()) {
      errs.Required(P(ip, "protocol"));
    } else if (std::find(kProtocols.begin(), kProtocols.end(), protocol) == kProtocols.end()) {
      errs.NotSupported(P(ip, "protocol"), Q(protocol), kProtocols);
    }
  }
}

void Validator::HostPortConflicts(const Json* containers, const std::string& path, bool single) {
  if (!containers) return;
  std::set<std::string> seen;
  for (size_t ci = 0; ci < containers->size(); ++ci) {
    const Json& c = (*containers)[ci];
    const Json* ports = Get(c, "ports");
    if (!ports || !ports->is_array()) continue;
    if (single) seen.clear();
    // Init containers run one at a time: kube-apiserver checks each alone, as index 0.
    std::string cp = P(I(path, single ? 0 : ci), "ports");
    for (size_t pi = 0; pi < ports->size(); ++pi) {
      const Json& p = (*ports)[pi];
      const Json* hp = Get(p, "hostPort");
      int64_t host_port = hp && hp->is_number() ? hp->get<int64_t>() : 0;
      if (host_port == 0) continue;
      const Json* proto = Get(p, "protocol");
      const Json* host_ip = Get(p, "hostIP");
      std::string key = (proto && proto->is_string() ? proto->get<std::string>() : "") + "/" +
                        (host_ip && host_ip->is_string() ? host_ip->get<std::string>() : "") + "/" +
                        std::to_string(host_port);
      if (!seen.insert(key).second) errs.Duplicate(P(I(cp, pi), "hostPort"), Q(key));
    }
  }
}

void Validator::Env(const Json* env, const std::string& path) {
  static const std::set<std::string> kEnvFields = {"metadata.name",
                                                   "metadata.namespace",
                                                   "metadata.uid",
                                                   "spec.nodeName",
                                                   "spec.serviceAccountName",
                                                   "status.hostIP",
                                                   "status.hostIPs",
                                                   "status.podIP",
                                                   "status.podIPs"};
  if (!env) return;
  for (size_t i = 0; i < env->size(); ++i) {
    std::string ip = I(path, i);
    const Json& ev = Elem(*env, i, ip);
    std::string name = Str(ev, "name", P(ip, "name"));
    if (name.empty()) {
      errs.Required(P(ip, "name"));
    } else {
      for (auto& m : IsEnvVarName(name)) errs.Invalid(P(ip, "name"), Q(name), m);
    }
    std::string value = Str(ev, "value", P(ip, "value"));
    const Json* from = Obj(ev, "valueFrom", P(ip, "valueFrom"));
    if (!from) continue;
    std::string fp = P(ip, "valueFrom");
    int sources = 0;
    if (const Json* f = Obj(*from, "fieldRef", P(fp, "fieldRef"))) {
      ++sources;
      ObjectFieldSelector(*f, kEnvFields, P(fp, "fieldRef"));
    }
    if (const Json* f = Obj(*from, "resourceFieldRef", P(fp, "resourceFieldRef"))) {
      ++sources;
      ResourceFieldSelector(*f, false, P(fp, "resourceFieldRef"));
    }
    for (const char* ref : {"configMapKeyRef", "secretKeyRef"}) {
      const Json* f = Obj(*from, ref, P(fp, ref));
      if (!f) continue;
      ++sources;
      std::string rp = P(fp, ref);
      std::string ref_name = Str(*f, "name", P(rp, "name"));
      Dns1123Subdomain(ref_name, P(rp, "name"));
      std::string key = Str(*f, "key", P(rp, "key"));
      if (key.empty()) {
        errs.Required(P(rp, "key"));
      } else {
        for (auto& m : IsConfigMapKey(key)) errs.Invalid(P(rp, "key"), Q(key), m);
      }
    }
    if (sources == 0) {
      errs.Invalid(fp, Q(""),
                   "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or "
                   "`secretKeyRef`");
    } else if (!value.empty()) {
      errs.Invalid(fp, Q(""), "may not be specified when `value` is not empty");
    } else if (sources > 1) {
      errs.Invalid(fp, Q(""), "may not have more than one field specified at a time");
    }
  }
}

void Validator::EnvFrom(const Json* env_from, const std::string& path) {
  if (!env_from) return;
  for (size_t i = 0; i < env_from->size(); ++i) {
    std::string ip = I(path, i);
    const Json& ev = Elem(*env_from, i, ip);
    std::string prefix = Str(ev, "prefix", P(ip, "prefix"));
    if (!prefix.empty()) {
      for (auto& m : IsEnvVarName(prefix)) errs.Invalid(P(ip, "prefix"), Q(prefix), m);
    }
    int sources = 0;
    for (const char* ref : {"configMapRef", "secretRef"}) {
      const Json* f = Obj(ev, ref, P(ip, ref));
      if (!f) continue;
      ++sources;
      std::string np = P(P(ip, ref), "name");
      std::string name = Str(*f, "name", np);
      if (name.empty()) {
        errs.Required(np);
      } else {
        for (auto& m : CheckName(NameRule::kSubdomain, name, true)) errs.Invalid(np, Q(name), m);
      }
    }
    if (sources == 0) {
      errs.Invalid(path, Q(""), "must specify one of: `configMapRef` or `secretRef`");
    } else if (sources > 1) {
      errs.Invalid(path, Q(""), "may not have more than one field specified at a time");
    }
  }
}

void Validator::VolumeMounts(const Json& c, const VolumeMap& vols, const std::string& path) {
  const Json* mounts = Arr(c, "volumeMounts", P(path, "volumeMounts"));
  if (!mounts) return;
  const std::string mp = P(path, "volumeMounts");
  const Json* sc = Get(c, "securityContext");
  const Json* priv = sc ? Get(*sc, "privileged") : nullptr;
  bool privileged = priv && priv->is_boolean() && priv->get<bool>();
  std::set<std::string> mount_points;
  for (size_t i = 0; i < mounts->size(); ++i) {
    std::string ip = I(mp, i);
    const Json& m = Elem(*mounts, i, ip);
    std::string name = Str(m, "name", P(ip, "name"));
    if (name.empty()) errs.Required(P(ip, "name"));
    auto vol = vols.find(name);
    if (vol == vols.end()) errs.NotFound(P(ip, "name"), Q(name));
    std::string mount_path = Str(m, "mountPath", P(ip, "mountPath"));
    if (mount_path.empty()) errs.Required(P(ip, "mountPath"));
    if (!mount_points.insert(mount_path).second) {
      errs.Invalid(P(ip, "mountPath"), Q(mount_path), "must be unique");
    }
    std::string sub_path = Str(m, "subPath", P(ip, "subPath"));
    std::string sub_path_expr = Str(m, "subPathExpr", P(ip, "subPathExpr"));
    if (vol != vols.end() && vol->second.image) {
      if (!sub_path.empty()) {
        errs.Invalid(P(ip, "subPath"), Q(sub_path), "not allowed in image volume sources");
      }
      if (!sub_path_expr.empty()) {
        errs.Invalid(P(ip, "subPathExpr"), Q(sub_path_expr), "not allowed in image volume sources");
      }
    }
    // kube-apiserver names the list, not the item, in these two.
    if (!sub_path.empty()) LocalDescendingPath(sub_path, P(mp, "subPath"));
    if (!sub_path_expr.empty()) {
      if (!sub_path.empty()) {
        errs.Invalid(P(ip, "subPathExpr"), Q(sub_path_expr),
                     "subPathExpr and subPath are mutually exclusive");
      }
      LocalDescendingPath(sub_path_expr, P(mp, "subPathExpr"));
    }
    std::string propagation = Str(m, "mountPropagation", P(ip, "mountPropagation"));
    if (Get(m, "mountPropagation")) {
      static const std::vector<std::string> kModes = {"Bidirectional", "HostToContainer", "None"};
      if (std::find(kModes.begin(), kModes.end(), propagation) == kModes.end()) {
        errs.NotSupported(P(mp, "mountPropagation"), Q(propagation), kModes);
      }
      if (propagation == "Bidirectional" && !privileged) {
        errs.Forbidden(P(mp, "mountPropagation"),
                       "Bidirectional mount propagation is available only to privileged "
                       "containers");
      }
    }
  }
}

bool IsNativeResource(const std::string& name) {
  return name.find('/') == std::string::npos || name.find("kubernetes.io/") != std::string::npos;
}
bool IsHugePages(const std::string& name) { return name.rfind("hugepages-", 0) == 0; }
bool IsOvercommitAllowed(const std::string& name) {
  return IsNativeResource(name) && !IsHugePages(name);
}
bool IsExtendedResource(const std::string& name) {
  return !IsNativeResource(name) && name.rfind("requests.", 0) != 0 &&
         IsQualifiedName("requests." + name).empty();
}

void Validator::ResourceName(const std::string& name, const std::string& path) {
  static const std::set<std::string> kStandard = {"cpu",
                                                  "memory",
                                                  "ephemeral-storage",
                                                  "storage",
                                                  "requests.cpu",
                                                  "requests.memory",
                                                  "requests.ephemeral-storage",
                                                  "requests.storage",
                                                  "limits.cpu",
                                                  "limits.memory",
                                                  "limits.ephemeral-storage",
                                                  "pods",
                                                  "services",
                                                  "replicationcontrollers",
                                                  "resourcequotas",
                                                  "secrets",
                                                  "configmaps",
                                                  "persistentvolumeclaims",
                                                  "services.nodeports",
                                                  "services.loadbalancers"};
  auto msgs = IsQualifiedName(name);
  for (auto& m : msgs) errs.Invalid(path, Q(name), m);
  if (msgs.empty() && name.find('/') == std::string::npos && !kStandard.count(name) &&
      !IsHugePages(name)) {
    errs.Invalid(path, Q(name), "must be a standard resource type or fully qualified");
  }
  if (name.find('/') == std::string::npos) {
    if (name != "cpu" && name != "memory" && name != "ephemeral-storage" && !IsHugePages(name)) {
      errs.Invalid(path, Q(name), "must be a standard resource for containers");
    }
  } else if (!IsNativeResource(name) && !IsExtendedResource(name)) {
    errs.Invalid(path, Q(name), "doesn't follow extended resource name standard");
  }
}

void Validator::Resources(const Json* resources, const std::string& path) {
  if (!resources) return;
  struct Entry {
    Quantity q;
    std::string text;
  };
  // Name and quantity checks of one entry of limits or requests.
  auto check = [&](const std::string& name, const Json& value, const std::string& fp) {
    ResourceName(name, fp);
    Entry e{Qty(value, fp), QuantityTextOf(value)};
    if (e.q.negative) errs.Invalid(fp, Q(e.text), "must be greater than or equal to 0");
    if (IsExtendedResource(name) && ScaledCeil(e.q, 3) % 1000 != 0) {
      errs.Invalid(fp, e.text, "must be an integer");
    }
    return e;
  };
  std::map<std::string, Entry> limits;
  const std::string lp = P(path, "limits"), rp = P(path, "requests");
  if (const Json* list = Obj(*resources, "limits", lp)) {
    for (const auto& [name, value] : list->items()) {
      limits.emplace(name, check(name, value, K(lp, name)));
    }
  }
  const Json* list = Obj(*resources, "requests", rp);
  if (!list) return;
  for (const auto& [name, value] : list->items()) {
    Entry req = check(name, value, K(rp, name));
    auto lim = limits.find(name);
    if (lim != limits.end()) {
      i128 r = ScaledCeil(req.q, 3), l = ScaledCeil(lim->second.q, 3);
      if (r != l && !IsOvercommitAllowed(name)) {
        errs.Invalid(rp, Q(req.text), "must be equal to " + name + " limit of " + lim->second.text);
      } else if (r > l) {
        errs.Invalid(rp, Q(req.text),
                     "must be less than or equal to " + name + " limit of " + lim->second.text);
      }
    } else if (!IsOvercommitAllowed(name)) {
      errs.Required(lp, "Limit must be set for non overcommitable resources");
    }
  }
}

void Validator::SecurityContext(const Json* sc, const std::string& path) {
  if (!sc) return;
  for (const char* key : {"runAsUser", "runAsGroup"}) {
    auto id = Int(*sc, key, P(path, key));
    if (id && (*id < 0 || *id > 0xffffffffLL)) {
      errs.Invalid(P(path, key), N(*id), InclusiveRangeError(0, 0xffffffffLL));
    }
  }
  auto escalation = Bool(*sc, "allowPrivilegeEscalation", P(path, "allowPrivilegeEscalation"));
  auto privileged = Bool(*sc, "privileged", P(path, "privileged"));
  if (escalation && !*escalation && privileged && *privileged) {
    errs.Invalid(path, "&core.SecurityContext{...}",
                 "cannot set `allowPrivilegeEscalation` to false and `privileged` to true");
  }
}

void Validator::Handler(const Json& h, std::optional<int64_t> grace, const std::string& path,
                        bool lifecycle) {
  int handlers = 0;
  auto one = [&](const char* key) -> const Json* {
    const Json* o = Obj(h, key, P(path, key));
    if (!o) return nullptr;
    if (handlers > 0) {
      errs.Forbidden(P(path, key), "may not specify more than 1 handler type");
      return nullptr;
    }
    ++handlers;
    return o;
  };
  if (const Json* exec = one("exec")) {
    const Json* cmd = Arr(*exec, "command", P(P(path, "exec"), "command"));
    if (!cmd || cmd->empty()) errs.Required(P(P(path, "exec"), "command"));
  }
  if (const Json* http = one("httpGet")) {
    std::string hp = P(path, "httpGet");
    if (Str(*http, "path", P(hp, "path")).empty()) errs.Required(P(hp, "path"));
    PortNumOrName(IntOrString(*http, "port", P(hp, "port")).value_or(IntOrStr{}), P(hp, "port"));
    std::string scheme = Str(*http, "scheme", P(hp, "scheme"));
    if (scheme != "HTTP" && scheme != "HTTPS") {
      errs.NotSupported(P(hp, "scheme"), Q(scheme), {"HTTP", "HTTPS"});
    }
    if (const Json* headers = Arr(*http, "httpHeaders", P(hp, "httpHeaders"))) {
      for (size_t i = 0; i < headers->size(); ++i) {
        const Json& header = Elem(*headers, i, I(P(hp, "httpHeaders"), i));
        std::string name = Str(header, "name", P(hp, "httpHeaders"));
        for (auto& m : IsHTTPHeaderName(name)) errs.Invalid(P(hp, "httpHeaders"), Q(name), m);
      }
    }
  }
  if (const Json* tcp = one("tcpSocket")) {
    std::string tp = P(P(path, "tcpSocket"), "port");
    PortNumOrName(IntOrString(*tcp, "port", tp).value_or(IntOrStr{}), tp);
  }
  if (!lifecycle) {
    if (const Json* grpc = one("grpc")) {
      std::string gp = P(P(path, "grpc"), "port");
      IntOrStr port;
      port.i = Int(*grpc, "port", gp).value_or(0);
      PortNumOrName(port, gp);
    }
  } else if (const Json* sleep = one("sleep")) {
    int64_t seconds = Int(*sleep, "seconds", P(P(path, "sleep"), "seconds")).value_or(0);
    if (grace && (seconds <= 0 || seconds > *grace)) {
      errs.Invalid(P(path, "sleep"), N(seconds),
                   "must be greater than 0 and less than terminationGracePeriodSeconds (" +
                       std::to_string(*grace) + ")");
    }
  }
  if (handlers == 0) errs.Required(path, "must specify a handler type");
}

void Validator::Lifecycle(const Json* lifecycle, std::optional<int64_t> grace,
                          const std::string& path) {
  if (!lifecycle) return;
  for (const char* hook : {"postStart", "preStop"}) {
    if (const Json* h = Obj(*lifecycle, hook, P(path, hook)))
      Handler(*h, grace, P(path, hook), true);
  }
}

void Validator::Probe(const Json* probe, std::optional<int64_t> grace, const std::string& path,
                      bool success_must_be_one, bool readiness) {
  if (!probe) return;
  Handler(*probe, grace, path, false);
  for (const char* key : {"initialDelaySeconds", "timeoutSeconds", "periodSeconds",
                          "successThreshold", "failureThreshold"}) {
    NonNegative(Int(*probe, key, P(path, key)), P(path, key));
  }
  auto tgps =
      Int(*probe, "terminationGracePeriodSeconds", P(path, "terminationGracePeriodSeconds"));
  if (tgps && *tgps <= 0) {
    errs.Invalid(P(path, "terminationGracePeriodSeconds"), N(*tgps), "must be greater than 0");
  }
  if (success_must_be_one) {
    int64_t success = Int(*probe, "successThreshold", P(path, "successThreshold")).value_or(0);
    if (success != 1) errs.Invalid(P(path, "successThreshold"), N(success), "must be 1");
  }
  if (readiness && tgps) {
    errs.Invalid(P(path, "terminationGracePeriodSeconds"), N(*tgps),
                 "must not be set for readinessProbes");
  }
}

void Validator::ContainerCommon(const Json& c, const VolumeMap& vols, const std::string& path,
                                bool is_pod) {
  std::string name = Str(c, "name", P(path, "name"));
  if (name.empty()) {
    errs.Required(P(path, "name"));
  } else {
    Dns1123Label(name, P(path, "name"));
  }
  std::string image = Str(c, "image", P(path, "image"));
  if (image.empty()) errs.Required(P(path, "image"));
  std::string tmp = Str(c, "terminationMessagePolicy", P(path, "terminationMessagePolicy"));
  if (tmp.empty()) {
    errs.Required(P(path, "terminationMessagePolicy"));
  } else if (tmp != "File" && tmp != "FallbackToLogsOnError") {
    errs.NotSupported(P(path, "terminationMessagePolicy"), Q(tmp),
                      {"File", "FallbackToLogsOnError"});
  }
  ContainerPorts(Arr(c, "ports", P(path, "ports")), P(path, "ports"));
  Env(Arr(c, "env", P(path, "env")), P(path, "env"));
  EnvFrom(Arr(c, "envFrom", P(path, "envFrom")), P(path, "envFrom"));
  VolumeMounts(c, vols, path);
  std::string pull = Str(c, "imagePullPolicy", P(path, "imagePullPolicy"));
  if (pull.empty()) {
    errs.Required(P(path, "imagePullPolicy"));
  } else if (pull != "Always" && pull != "IfNotPresent" && pull != "Never") {
    errs.NotSupported(P(path, "imagePullPolicy"), Q(pull), {"Always", "IfNotPresent", "Never"});
  }
  Resources(Obj(c, "resources", P(path, "resources")), P(path, "resources"));
  SecurityContext(Obj(c, "securityContext", P(path, "securityContext")),
                  P(path, "securityContext"));
  if (is_pod && !image.empty()) {
    size_t b = image.find_first_not_of(" \t\n\r\f\v");
    size_t e = image.find_last_not_of(" \t\n\r\f\v");
    if (b != 0 || e != image.size() - 1) {
      errs.Invalid(P(path, "image"), Q(image), "must not have leading or trailing whitespace");
    }
  }
}

void Validator::Containers(const Json* arr, const VolumeMap& vols, std::optional<int64_t> grace,
                           const std::string& path, bool is_pod) {
  if (!arr || arr->empty()) {
    errs.Required(path);
    return;
  }
  std::set<std::string> names;
  for (size_t i = 0; i < arr->size(); ++i) {
    std::string ip = I(path, i);
    const Json& c = Elem(*arr, i, ip);
    ContainerCommon(c, vols, ip, is_pod);
    std::string name = Str(c, "name", P(ip, "name"));
    if (!names.insert(name).second) errs.Duplicate(P(ip, "name"), Q(name));
    Lifecycle(Obj(c, "lifecycle", P(ip, "lifecycle")), grace, P(ip, "lifecycle"));
    Probe(Obj(c, "livenessProbe", P(ip, "livenessProbe")), grace, P(ip, "livenessProbe"), true,
          false);
    Probe(Obj(c, "readinessProbe", P(ip, "readinessProbe")), grace, P(ip, "readinessProbe"), false,
          true);
    Probe(Obj(c, "startupProbe", P(ip, "startupProbe")), grace, P(ip, "startupProbe"), true, false);
    if (Get(c, "restartPolicy")) {
      errs.Forbidden(P(ip, "restartPolicy"), "may not be set for non-init containers");
    }
  }
  HostPortConflicts(arr, path, false);
}

void Validator::InitContainers(const Json* arr, const Json* regular, const VolumeMap& vols,
                               std::optional<int64_t> grace, const std::string& path, bool is_pod) {
  if (!arr) return;
  std::set<std::string> names;
  if (regular) {
    for (const auto& c : *regular) {
      const Json* n = Get(c, "name");
      names.insert(n && n->is_string() ? n->get<std::string>() : "");
    }
  }
  for (size_t i = 0; i < arr->size(); ++i) {
    std::string ip = I(path, i);
    const Json& c = Elem(*arr, i, ip);
    ContainerCommon(c, vols, ip, is_pod);
    bool restart_always = false;
    if (Get(c, "restartPolicy")) {
      std::string policy = Str(c, "restartPolicy", P(ip, "restartPolicy"));
      if (policy != "Always") {
        errs.NotSupported(P(ip, "restartPolicy"), Q(policy), {"Always"});
      }
      restart_always = policy == "Always";
    }
    std::string name = Str(c, "name", P(ip, "name"));
    if (names.count(name)) {
      errs.Duplicate(P(ip, "name"), Q(name));
    } else if (!name.empty()) {
      names.insert(name);
    }
    Json single = Json::array({c});
    HostPortConflicts(&single, path, true);
    if (restart_always) {
      Lifecycle(Obj(c, "lifecycle", P(ip, "lifecycle")), grace, P(ip, "lifecycle"));
      Probe(Obj(c, "livenessProbe", P(ip, "livenessProbe")), grace, P(ip, "livenessProbe"), true,
            false);
      Probe(Obj(c, "readinessProbe", P(ip, "readinessProbe")), grace, P(ip, "readinessProbe"),
            false, true);
      Probe(Obj(c, "startupProbe", P(ip, "startupProbe")), grace, P(ip, "startupProbe"), true,
            false);
    } else {
      for (const char* key : {"lifecycle", "livenessProbe", "readinessProbe", "startupProbe"}) {
        if (Get(c, key)) {
          errs.Forbidden(P(ip, key),
                         "may not be set for init containers without restartPolicy=Always");
        }
      }
    }
  }
}

void Validator::Tolerations(const Json* arr, const std::string& path) {
  if (!arr) return;
  for (size_t i = 0; i < arr->size(); ++i) {
    std::string ip = I(path, i);
    const Json& t = Elem(*arr, i, ip);
    std::string key = Str(t, "key", P(ip, "key"));
    std::string op = Str(t, "operator", P(ip, "operator"));
    std::string value = Str(t, "value", P(ip, "value"));
    std::string effect = Str(t, "effect", P(ip, "effect"));
    auto seconds = Int(t, "tolerationSeconds", P(ip, "tolerationSeconds"));
    if (!key.empty()) QualifiedName(key, P(ip, "key"));
    if (key.empty() && op != "Exists") {
      errs.Invalid(P(ip, "operator"), Q(op),
                   "operator must be Exists when `key` is empty, which means \"match all values "
                   "and all keys\"");
    }
    if (seconds && effect != "NoExecute") {
      errs.Invalid(P(ip, "effect"), Q(effect),
                   "effect must be 'NoExecute' when `tolerationSeconds` is set");
    }
    if (op == "Equal" || op.empty()) {
      auto msgs = IsValidLabelValue(value);
      if (!msgs.empty()) errs.Invalid(P(ip, "operator"), Q(value), Join(msgs, ";"));
    } else if (op == "Exists") {
      if (!value.empty()) {
        errs.Invalid(P(ip, "operator"), Q(value),
                     "value must be empty when `operator` is 'Exists'");
      }
    } else {
      errs.NotSupported(P(ip, "operator"), Q(op), {"Equal", "Exists"});
    }
    if (!effect.empty() && effect != "NoSchedule" && effect != "PreferNoSchedule" &&
        effect != "NoExecute") {
      errs.NotSupported(P(ip, "effect"), Q(effect),
                        {"NoSchedule", "PreferNoSchedule", "NoExecute"});
    }
  }
}

void Validator::DnsConfig(const Json* config, const std::string& policy, const std::string& path) {
  if (policy == "None") {
    if (!config) {
      errs.Required(path, "must provide `dnsConfig` when `dnsPolicy` is None");
      return;
    }
    const Json* ns = Get(*config, "nameservers");
    if (!ns || !ns->is_array() || ns->empty()) {
      errs.Required(P(path, "nameservers"),
                    "must provide at least one DNS nameserver when `dnsPolicy` is None");
      return;
    }
  }
  if (!config) return;
  auto nameservers = StrList(*config, "nameservers", P(path, "nameservers"));
  if (nameservers) {
    if (nameservers->size() > 3) {
      errs.Invalid(P(path, "nameservers"), GoStringSlice(&*nameservers),
                   "must not have more than 3 nameservers");
    }
    for (size_t i = 0; i < nameservers->size(); ++i) {
      for (auto& m : IsValidIPMsgs((*nameservers)[i])) {
        errs.Invalid(I(P(path, "nameservers"), i), Q((*nameservers)[i]), m);
      }
    }
  }
  auto searches = StrList(*config, "searches", P(path, "searches"));
  if (searches) {
    if (searches->size() > 32) {
      errs.Invalid(P(path, "searches"), GoStringSlice(&*searches),
                   "must not have more than 32 search paths");
    }
    if (Join(*searches, " ").size() > 2048) {
      errs.Invalid(P(path, "searches"), GoStringSlice(&*searches),
                   "must not have more than 2048 characters (including spaces) in the search list");
    }
    for (size_t i = 0; i < searches->size(); ++i) {
      std::string s = (*searches)[i];
      if (!s.empty() && s.back() == '.') s.pop_back();
      Dns1123Subdomain(s, I(P(path, "searches"), i));
    }
  }
  if (const Json* options = Arr(*config, "options", P(path, "options"))) {
    for (size_t i = 0; i < options->size(); ++i) {
      const Json& o = Elem(*options, i, I(P(path, "options"), i));
      if (Str(o, "name", P(I(P(path, "options"), i), "name")).empty()) {
        errs.Required(I(P(path, "options"), i), "must not be empty");
      }
    }
  }
}

void Validator::PodSpec(const Json* spec_ptr, const std::string& path, bool is_pod,
                        const std::set<std::string>& claim_volumes) {
  const Json& spec = spec_ptr ? *spec_ptr : EmptyObject();
  auto grace = Int(spec, "terminationGracePeriodSeconds", P(path, "terminationGracePeriodSeconds"));
  if (!grace) {
    errs.Required(P(path, "terminationGracePeriodSeconds"));
  } else if (*grace < 0) {
    errs.Invalid(P(path, "terminationGracePeriodSeconds"), N(*grace),
                 "must be greater than or equal to 0");
  }
  VolumeMap vols = Volumes(Arr(spec, "volumes", P(path, "volumes")), P(path, "volumes"));
  for (const auto& name : claim_volumes) vols.emplace(name, VolumeInfo{true, false});
  const Json* containers = Arr(spec, "containers", P(path, "containers"));
  Containers(containers, vols, grace, P(path, "containers"), is_pod);
  InitContainers(Arr(spec, "initContainers", P(path, "initContainers")), containers, vols, grace,
                 P(path, "initContainers"), is_pod);
  if (const Json* eph = Arr(spec, "ephemeralContainers", P(path, "ephemeralContainers"));
      eph && !eph->empty() && !is_pod) {
    errs.Forbidden(P(path, "ephemeralContainers"),
                   "ephemeral containers not allowed in pod template");
  }
  if (Bool(spec, "hostNetwork", P(path, "hostNetwork")).value_or(false) && containers) {
    for (size_t i = 0; i < containers->size(); ++i) {
      const Json* ports = Get((*containers)[i], "ports");
      if (!ports || !ports->is_array()) continue;
      for (size_t j = 0; j < ports->size(); ++j) {
        const Json& port = (*ports)[j];
        std::string pp = I(P(I(P(path, "containers"), i), "ports"), j);
        int64_t hp = Int(port, "hostPort", P(pp, "hostPort")).value_or(0);
        int64_t cp = Int(port, "containerPort", P(pp, "containerPort")).value_or(0);
        if ((is_pod || hp != 0) && hp != cp) {
          errs.Invalid(P(pp, "hostPort"), N(hp),
                       "must match `containerPort` when `hostNetwork` is true");
        }
      }
    }
  }
  std::string restart = Str(spec, "restartPolicy", P(path, "restartPolicy"));
  if (restart.empty()) {
    errs.Required(P(path, "restartPolicy"));
  } else if (restart != "Always" && restart != "OnFailure" && restart != "Never") {
    errs.NotSupported(P(path, "restartPolicy"), Q(restart), {"Always", "OnFailure", "Never"});
  }
  std::string dns_policy = Str(spec, "dnsPolicy", P(path, "dnsPolicy"));
  if (dns_policy.empty()) {
    errs.Required(P(path, "dnsPolicy"));
  } else if (dns_policy != "ClusterFirstWithHostNet" && dns_policy != "ClusterFirst" &&
             dns_policy != "Default" && dns_policy != "None") {
    errs.NotSupported(P(path, "dnsPolicy"), Q(dns_policy),
                      {"ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"});
  }
  Labels(StrMap(spec, "nodeSelector", P(path, "nodeSelector")), P(path, "nodeSelector"));
  SecurityContext(Obj(spec, "securityContext", P(path, "securityContext")),
                  P(path, "securityContext"));
  DnsConfig(Obj(spec, "dnsConfig", P(path, "dnsConfig")), dns_policy, P(path, "dnsConfig"));
  std::string sa = Str(spec, "serviceAccountName", P(path, "serviceAccountName"));
  if (!sa.empty()) Dns1123Subdomain(sa, P(path, "serviceAccountName"));
  std::string node = Str(spec, "nodeName", P(path, "nodeName"));
  if (!node.empty()) Dns1123Subdomain(node, P(path, "nodeName"));
  if (auto ads = Int(spec, "activeDeadlineSeconds", P(path, "activeDeadlineSeconds"))) {
    if (*ads < 1 || *ads > std::numeric_limits<int32_t>::max()) {
      errs.Invalid(P(path, "activeDeadlineSeconds"), N(*ads),
                   InclusiveRangeError(1, std::numeric_limits<int32_t>::max()));
    }
  }
  std::string hostname = Str(spec, "hostname", P(path, "hostname"));
  if (!hostname.empty()) Dns1123Label(hostname, P(path, "hostname"));
  std::string subdomain = Str(spec, "subdomain", P(path, "subdomain"));
  if (!subdomain.empty()) Dns1123Label(subdomain, P(path, "subdomain"));
  Tolerations(Arr(spec, "tolerations", P(path, "tolerations")), P(path, "tolerations"));
  if (const Json* aliases = Arr(spec, "hostAliases", P(path, "hostAliases"))) {
    for (size_t i = 0; i < aliases->size(); ++i) {
      std::string ip = I(P(path, "hostAliases"), i);
      const Json& a = Elem(*aliases, i, ip);
      std::string addr = Str(a, "ip", P(ip, "ip"));
      for (auto& m : IsValidIPMsgs(addr)) errs.Invalid(P(ip, "ip"), Q(addr), m);
      if (auto names = StrList(a, "hostnames", P(ip, "hostnames"))) {
        for (size_t j = 0; j < names->size(); ++j) {
          Dns1123Subdomain((*names)[j], I(P(ip, "hostnames"), j));
        }
      }
    }
  }
  std::string pcn = Str(spec, "priorityClassName", P(path, "priorityClassName"));
  if (!pcn.empty()) Dns1123Subdomain(pcn, P(path, "priorityClassName"));
  if (Get(spec, "preemptionPolicy")) {
    std::string pp = Str(spec, "preemptionPolicy", P(path, "preemptionPolicy"));
    if (pp.empty()) {
      errs.Required(P(path, "preemptionPolicy"));
    } else if (pp != "PreemptLowerPriority" && pp != "Never") {
      errs.NotSupported(P(path, "preemptionPolicy"), Q(pp), {"PreemptLowerPriority", "Never"});
    }
  }
}

void Validator::PodTemplate(const Json* tmpl, const std::string& path,
                            const std::set<std::string>& claim_volumes) {
  const Json& t = tmpl ? *tmpl : EmptyObject();
  const Json* meta = Obj(t, "metadata", P(path, "metadata"));
  if (meta) {
    Labels(StrMap(*meta, "labels", P(path, "labels")), P(path, "labels"));
    Annotations(StrMap(*meta, "annotations", P(path, "annotations")), P(path, "annotations"));
  }
  PodSpec(Obj(t, "spec", P(path, "spec")), P(path, "spec"), false, claim_volumes);
}

// ---------------------------------------------------------------------------
// Pod updates: only images, activeDeadlineSeconds, added tolerations and
// removed scheduling gates may change.

// apiequality.Semantic treats nil and empty lists and maps alike.
Json Normalized(const Json& v) {
  if (v.is_object()) {
    Json out = Json::object();
    for (const auto& [k, val] : v.items()) {
      Json n = Normalized(val);
      if (n.is_null() || (n.is_array() && n.empty()) || (n.is_object() && n.empty())) continue;
      out[k] = std::move(n);
    }
    return out;
  }
  if (v.is_array()) {
    Json out = Json::array();
    for (const auto& el : v) out.push_back(Normalized(el));
    return out;
  }
  return v;
}

void DiffLines(const Json& a, const Json& b, const std::string& path, std::string* out) {
  if (a == b) return;
  if (a.is_object() && b.is_object()) {
    std::set<std::string> keys;
    for (const auto& [k, unused] : a.items()) keys.insert(k);
    for (const auto& [k, unused] : b.items()) keys.insert(k);
    for (const auto& k : keys) {
      DiffLines(a.contains(k) ? a[k] : Json(), b.contains(k) ? b[k] : Json(), P(path, k), out);
    }
    return;
  }
  if (a.is_array() && b.is_array() && a.size() == b.size()) {
    for (size_t i = 0; i < a.size(); ++i) DiffLines(a[i], b[i], I(path, i), out);
    return;
  }
  if (!a.is_null()) *out += "- \t" + path + ": " + a.dump() + ",\n";
  if (!b.is_null()) *out += "+ \t" + path + ": " + b.dump() + ",\n";
}

void Validator::PodUpdate(const Json& obj, const Json& old) {
  const Json* sp = Obj(obj, "spec", "spec");
  const Json* osp = Get(old, "spec");
  const Json& spec = sp ? *sp : EmptyObject();
  const Json& old_spec = osp && osp->is_object() ? *osp : EmptyObject();
  for (const char* list : {"containers", "initContainers"}) {
    const Json* now = Arr(spec, list, P("spec", list));
    const Json* before = Get(old_spec, list);
    size_t n = now ? now->size() : 0, b = before && before->is_array() ? before->size() : 0;
    if (n != b) {
      errs.Forbidden(P("spec", list), "pod updates may not add or remove containers");
      return;
    }
  }
  auto ads = Int(spec, "activeDeadlineSeconds", "spec.activeDeadlineSeconds");
  auto old_ads_json = Get(old_spec, "activeDeadlineSeconds");
  std::optional<int64_t> old_ads;
  if (old_ads_json && old_ads_json->is_number()) old_ads = old_ads_json->get<int64_t>();
  if (ads) {
    if (*ads < 0 || *ads > std::numeric_limits<int32_t>::max()) {
      errs.Invalid("spec.activeDeadlineSeconds", N(*ads),
                   InclusiveRangeError(0, std::numeric_limits<int32_t>::max()));
      return;
    }
    if (old_ads && *old_ads < *ads) {
      errs.Invalid("spec.activeDeadlineSeconds", N(*ads),
                   "must be less than or equal to previous value");
      return;
    }
  } else if (old_ads) {
    errs.Invalid("spec.activeDeadlineSeconds", "null",
                 "must not update from a positive integer to nil value");
  }
  // Existing tolerations must stay, except for their tolerationSeconds.
  auto strip_seconds = [](const Json* list) {
    std::vector<Json> out;
    if (!list || !list->is_array()) return out;
    for (Json t : *list) {
      if (t.is_object()) t.erase("tolerationSeconds");
      out.push_back(Normalized(t));
    }
    return out;
  };
  auto new_tols = strip_seconds(Get(spec, "tolerations"));
  for (const auto& t : strip_seconds(Get(old_spec, "tolerations"))) {
    if (std::find(new_tols.begin(), new_tols.end(), t) == new_tols.end()) {
      errs.Forbidden("spec.tolerations",
                     "existing toleration can not be modified except its tolerationSeconds");
      break;
    }
  }
  // Scheduling gates may only be removed.
  std::set<std::string> old_gates;
  if (const Json* g = Get(old_spec, "schedulingGates"); g && g->is_array()) {
    for (const auto& gate : *g) {
      if (gate.is_object() && gate.contains("name") && gate["name"].is_string()) {
        old_gates.insert(gate["name"].get<std::string>());
      }
    }
  }
  if (const Json* g = Arr(spec, "schedulingGates", "spec.schedulingGates")) {
    for (size_t i = 0; i < g->size(); ++i) {
      std::string name = Str(Elem(*g, i, I("spec.schedulingGates", i)), "name",
                             P(I("spec.schedulingGates", i), "name"));
      if (!old_gates.count(name)) {
        errs.Forbidden(P(I("spec.schedulingGates", i), "name"),
                       "only deletion is allowed, but found new scheduling gate '" + name + "'");
      }
    }
  }
  Json munged = spec;
  for (const char* list : {"containers", "initContainers"}) {
    if (!munged.contains(list) || !munged[list].is_array()) continue;
    for (size_t i = 0; i < munged[list].size(); ++i) {
      Json& c = munged[list][i];
      const Json& oc = old_spec[list][i];
      if (!c.is_object()) continue;
      if (oc.is_object() && oc.contains("image")) {
        c["image"] = oc["image"];
      } else {
        c.erase("image");
      }
    }
  }
  for (const char* key : {"activeDeadlineSeconds", "schedulingGates", "tolerations"}) {
    if (old_spec.contains(key)) {
      munged[key] = old_spec[key];
    } else {
      munged.erase(key);
    }
  }
  auto old_grace = Get(old_spec, "terminationGracePeriodSeconds");
  if (old_grace && old_grace->is_number() && old_grace->get<int64_t>() < 0 &&
      munged.value("terminationGracePeriodSeconds", Json()) == Json(1)) {
    munged["terminationGracePeriodSeconds"] = *old_grace;
  }
  Json a = Normalized(old_spec), b = Normalized(munged);
  if (a != b) {
    std::string diff = "  core.PodSpec{\n";
    DiffLines(a, b, "", &diff);
    diff += "  }\n";
    errs.Forbidden("spec",
                   "pod updates may not change fields other than "
                   "`spec.containers[*].image`,`spec.initContainers[*].image`,"
                   "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
                   "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if "
                   "it was previously negative)\n" +
                       diff);
  }
}

void Validator::Pod(const Json& obj, const Json* old) {
  ObjectMeta(obj, NameRule::kSubdomain, kNamespaced);
  const Json* spec = Obj(obj, "spec", "spec");
  PodSpec(spec, "spec", true, {});
  if (spec && Str(*spec, "serviceAccountName", "spec.serviceAccountName").empty()) {
    if (const Json* vols = Get(*spec, "volumes"); vols && vols->is_array()) {
      for (size_t vi = 0; vi < vols->size(); ++vi) {
        const Json* projected = Get((*vols)[vi], "projected");
        const Json* sources = projected ? Get(*projected, "sources") : nullptr;
        if (!sources || !sources->is_array()) continue;
        for (size_t si = 0; si < sources->size(); ++si) {
          if (Get((*sources)[si], "serviceAccountToken")) {
            errs.Forbidden(
                I("spec.volumes", vi) + ".projected" + I(".sources", si) + ".serviceAccountToken",
                "must not be specified when serviceAccountName is not set");
          }
        }
      }
    }
  }
  if (old) PodUpdate(obj, *old);
}

// ---------------------------------------------------------------------------
// Services.

void Validator::ServicePort(const Json& port, bool require_name, std::set<std::string>* names,
                            const std::string& path) {
  std::string name = Str(port, "name", P(path, "name"));
  if (require_name && name.empty()) {
    errs.Required(P(path, "name"));
  } else if (!name.empty()) {
    Dns1123Label(name, P(path, "name"));
    if (!names->insert(name).second) errs.Duplicate(P(path, "name"), Q(name));
  }
  int64_t number = Int(port, "port", P(path, "port")).value_or(0);
  for (auto& m : IsValidPortNum(number)) errs.Invalid(P(path, "port"), N(number), m);
  std::string protocol = Str(port, "protocol", P(path, "protocol"));
  if (protocol.empty()) {
    errs.Required(P(path, "protocol"));
  } else if (std::find(kProtocols.begin(), kProtocols.end(), protocol) == kProtocols.end()) {
    errs.NotSupported(P(path, "protocol"), Q(protocol), kProtocols);
  }
  PortNumOrName(IntOrString(port, "targetPort", P(path, "targetPort")).value_or(IntOrStr{}),
                P(path, "targetPort"));
  if (Get(port, "appProtocol")) {
    QualifiedName(Str(port, "appProtocol", P(path, "appProtocol")), P(path, "appProtocol"));
  }
}

void Validator::Service(const Json& obj, const Json* old) {
  const Json* sp = Obj(obj, "spec", "spec");
  const Json& spec = sp ? *sp : EmptyObject();
  std::string type = Str(spec, "type", "spec.type");
  auto cluster_ips = StrList(spec, "clusterIPs", "spec.clusterIPs");
  std::vector<std::string> ips = cluster_ips.value_or(std::vector<std::string>{});
  auto families = StrList(spec, "ipFamilies", "spec.ipFamilies");
  bool headless = ips.size() == 1 && ips[0] == "None";

  if (old) {
    const Json* osp = Get(*old, "spec");
    const Json& ospec = osp && osp->is_object() ? *osp : EmptyObject();
    auto strings = [](const Json& o, const char* key) {
      std::vector<std::string> out;
      if (const Json* l = Get(o, key); l && l->is_array()) {
        for (const auto& s : *l) out.push_back(s.is_string() ? s.get<std::string>() : "");
      }
      return out;
    };
    std::string old_type = StringAt(ospec, "type");
    auto old_ips = strings(ospec, "clusterIPs");
    bool old_headless = old_ips.size() == 1 && old_ips[0] == "None";
    // An update that leaves clusterIPs out keeps the allocated ones (the registry copies them).
    if (type != "ExternalName" && old_type != "ExternalName" && !ips.empty() &&
        !(headless && old_headless)) {
      const std::string rendered = GoStringSlice(&ips);
      if (old_ips.size() == ips.size()) {
        for (size_t i = 0; i < old_ips.size(); ++i) {
          if (old_ips[i] != ips[i]) {
            errs.Invalid(I("spec.clusterIPs", i), rendered, "may not change once set");
          }
        }
      } else if (!old_ips.empty() && ips[0] != old_ips[0]) {
        errs.Invalid("spec.clusterIPs[0]", rendered, "may not change once set");
      }
    }
    auto old_families = strings(ospec, "ipFamilies");
    std::vector<std::string> fams = families.value_or(std::vector<std::string>{});
    if (type != "ExternalName" && old_type != "ExternalName" && headless == old_headless &&
        !headless && !fams.empty() && !old_families.empty() && fams[0] != old_families[0]) {
      errs.Invalid("spec.ipFamilies[0]", GoStringSlice(&fams), "may not change once set");
    }
    auto hc = Int(spec, "healthCheckNodePort", "spec.healthCheckNodePort").value_or(0);
    const Json* ohc = Get(ospec, "healthCheckNodePort");
    bool needs = type == "LoadBalancer" && StringAt(spec, "externalTrafficPolicy") == "Local";
    bool old_needs =
        old_type == "LoadBalancer" && StringAt(ospec, "externalTrafficPolicy") == "Local";
    if (needs && old_needs && hc != 0 && ohc && ohc->is_number() && ohc->get<int64_t>() != hc) {
      errs.Forbidden("spec.healthCheckNodePort", "field is immutable");
    }
  }

  ObjectMeta(obj, NameRule::kDns1035, kNamespaced);
  const Json* ports = Arr(spec, "ports", "spec.ports");
  if ((!ports || ports->empty()) && !headless && type != "ExternalName") {
    errs.Required("spec.ports");
  }
  if (type == "LoadBalancer" || type == "NodePort") {
    if (headless) {
      errs.Invalid("spec.clusterIPs[0]", Q(ips[0]),
                   "may not be set to 'None' for " + type + " services");
    }
  } else if (type == "ExternalName") {
    if (!ips.empty()) errs.Forbidden("spec.clusterIPs", "may not be set for ExternalName services");
    if (families && !families->empty()) {
      errs.Forbidden("spec.ipFamilies", "may not be set for ExternalName services");
    }
    if (Get(spec, "ipFamilyPolicy")) {
      errs.Forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services");
    }
    std::string cname = Str(spec, "externalName", "spec.externalName");
    if (!cname.empty() && cname.back() == '.') cname.pop_back();
    if (!cname.empty()) {
      Dns1123Subdomain(cname, "spec.externalName");
    } else {
      errs.Required("spec.externalName");
    }
  }
  std::set<std::string> port_names;
  if (ports) {
    for (size_t i = 0; i < ports->size(); ++i) {
      ServicePort(Elem(*ports, i, I("spec.ports", i)), ports->size() > 1, &port_names,
                  I("spec.ports", i));
    }
  }
  if (Get(spec, "selector")) Labels(StrMap(spec, "selector", "spec.selector"), "spec.selector");
  std::string affinity = Str(spec, "sessionAffinity", "spec.sessionAffinity");
  if (affinity.empty()) {
    errs.Required("spec.sessionAffinity");
  } else if (affinity != "ClientIP" && affinity != "None") {
    errs.NotSupported("spec.sessionAffinity", Q(affinity), {"ClientIP", "None"});
  }
  const Json* affinity_config = Obj(spec, "sessionAffinityConfig", "spec.sessionAffinityConfig");
  if (affinity == "ClientIP") {
    const std::string cp = "spec.sessionAffinityConfig";
    const Json* client_ip =
        affinity_config ? Obj(*affinity_config, "clientIP", P(cp, "clientIP")) : nullptr;
    auto timeout = client_ip ? Int(*client_ip, "timeoutSeconds", P(cp, "clientIP.timeoutSeconds"))
                             : std::nullopt;
    if (!affinity_config) {
      errs.Required(cp, "when session affinity type is ClientIP");
    } else if (!client_ip) {
      errs.Required(P(cp, "clientIP"), "when session affinity type is ClientIP");
    } else if (!timeout) {
      errs.Required(P(cp, "clientIP.timeoutSeconds"), "when session affinity type is ClientIP");
    } else if (*timeout <= 0 || *timeout > 86400) {
      errs.Invalid(P(cp, "clientIP.timeoutSeconds"), N(*timeout),
                   "must be greater than 0 and less than 86400");
    }
  } else if (affinity == "None" && affinity_config) {
    errs.Forbidden("spec.sessionAffinityConfig", "must not be set when session affinity is None");
  }

  // clusterIP, clusterIPs, ipFamilies, ipFamilyPolicy
  if (type != "ExternalName") {
    std::string cluster_ip = Str(spec, "clusterIP", "spec.clusterIP");
    const std::string rendered = GoStringSlice(cluster_ips ? &ips : nullptr);
    if (!cluster_ip.empty()) {
      if (ips.empty()) {
        errs.Required("spec.clusterIPs");
      } else if (ips[0] != cluster_ip) {
        errs.Invalid("spec.clusterIPs", rendered, "first value must match `clusterIP`");
      }
    } else if (!ips.empty()) {
      errs.Invalid("spec.clusterIPs", rendered, "must be empty when `clusterIP` is not specified");
    }
    std::vector<std::string> fams = families.value_or(std::vector<std::string>{});
    std::set<std::string> seen;
    for (size_t i = 0; i < fams.size(); ++i) {
      if (fams[i] != "IPv4" && fams[i] != "IPv6") {
        errs.NotSupported(I("spec.ipFamilies", i), Q(fams[i]), {"IPv4", "IPv6"});
      }
      if (!seen.insert(fams[i]).second) errs.Duplicate(I("spec.ipFamilies", i), Q(fams[i]));
    }
    if (Get(spec, "ipFamilyPolicy")) {
      std::string policy = Str(spec, "ipFamilyPolicy", "spec.ipFamilyPolicy");
      if (policy != "PreferDualStack" && policy != "RequireDualStack" && policy != "SingleStack") {
        errs.NotSupported("spec.ipFamilyPolicy", Q(policy),
                          {"PreferDualStack", "RequireDualStack", "SingleStack"});
      }
    }
    bool invalid_ips = false;
    std::vector<Ip> parsed;
    for (size_t i = 0; i < ips.size(); ++i) {
      if (i == 0 && ips[i] == "None") {
        if (ips.size() > 1) {
          invalid_ips = true;
          errs.Invalid("spec.clusterIPs", rendered, "'None' must be the first and only value");
        }
        continue;
      }
      auto ip = ParseIp(ips[i]);
      if (!ip) {
        invalid_ips = true;
        for (auto& m : IsValidIPMsgs(ips[i])) errs.Invalid(I("spec.clusterIPs", i), Q(ips[i]), m);
      } else {
        parsed.push_back(*ip);
      }
    }
    if (ips.size() > 2) errs.Invalid("spec.clusterIPs", rendered, "may only hold up to 2 values");
    if (!invalid_ips) {
      if (ips.size() > 1 && (parsed.size() != 2 || parsed[0].v6 == parsed[1].v6)) {
        errs.Invalid("spec.clusterIPs", rendered,
                     "may specify no more than one IP for each IP family");
      }
      if (!headless) {
        for (size_t i = 0; i < ips.size() && i < fams.size(); ++i) {
          auto ip = ParseIp(ips[i]);
          if (!ip) continue;
          if (fams[i] == "IPv4" && ip->v6) {
            errs.Invalid(
                I("spec.clusterIPs", i), Q(ips[i]),
                "expected an IPv4 value as indicated by `ipFamilies[" + std::to_string(i) + "]`");
          }
          if (fams[i] == "IPv6" && !ip->v6) {
            errs.Invalid(
                I("spec.clusterIPs", i), Q(ips[i]),
                "expected an IPv6 value as indicated by `ipFamilies[" + std::to_string(i) + "]`");
          }
        }
      }
    }
  }

  auto external_ips = StrList(spec, "externalIPs", "spec.externalIPs");
  if (external_ips) {
    for (size_t i = 0; i < external_ips->size(); ++i) {
      const std::string& addr = (*external_ips)[i];
      std::string ip_path = I("spec.externalIPs", i);
      auto ip = ParseIp(addr);
      if (!ip) {
        for (auto& m : IsValidIPMsgs(addr)) errs.Invalid(ip_path, Q(addr), m);
        continue;
      }
      bool zero =
          std::all_of(ip->b, ip->b + (ip->v6 ? 16 : 4), [](unsigned char c) { return c == 0; });
      if (zero) errs.Invalid(ip_path, Q(addr), "may not be unspecified (" + addr + ")");
      bool loopback =
          ip->v6 ? (std::all_of(ip->b, ip->b + 15, [](unsigned char c) { return c == 0; }) &&
                    ip->b[15] == 1)
                 : ip->b[0] == 127;
      if (loopback) {
        errs.Invalid(ip_path, Q(addr), "may not be in the loopback range (127.0.0.0/8, ::1/128)");
      }
      bool link_local = ip->v6 ? (ip->b[0] == 0xfe && (ip->b[1] & 0xc0) == 0x80)
                               : (ip->b[0] == 169 && ip->b[1] == 254);
      if (link_local) {
        errs.Invalid(ip_path, Q(addr),
                     "may not be in the link-local range (169.254.0.0/16, fe80::/10)");
      }
      bool ll_multicast = ip->v6 ? (ip->b[0] == 0xff && (ip->b[1] & 0x0f) == 0x02)
                                 : (ip->b[0] == 224 && ip->b[1] == 0 && ip->b[2] == 0);
      if (ll_multicast) {
        errs.Invalid(ip_path, Q(addr),
                     "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)");
      }
    }
  }
  if (type.empty()) {
    errs.Required("spec.type");
  } else if (type != "ClusterIP" && type != "NodePort" && type != "LoadBalancer" &&
             type != "ExternalName") {
    errs.NotSupported("spec.type", Q(type),
                      {"ClusterIP", "ExternalName", "LoadBalancer", "NodePort"});
  }
  if (ports) {
    std::set<std::pair<std::string, int64_t>> node_ports, port_keys;
    for (size_t i = 0; i < ports->size(); ++i) {
      const Json& port = (*ports)[i];
      std::string pp = I("spec.ports", i);
      int64_t node_port = Int(port, "nodePort", P(pp, "nodePort")).value_or(0);
      if (type == "ClusterIP" && node_port != 0) {
        errs.Forbidden(P(pp, "nodePort"), "may not be used when `type` is 'ClusterIP'");
      }
    }
    for (size_t i = 0; i < ports->size(); ++i) {
      const Json& port = (*ports)[i];
      std::string pp = I("spec.ports", i);
      int64_t node_port = Int(port, "nodePort", P(pp, "nodePort")).value_or(0);
      std::string protocol = Str(port, "protocol", P(pp, "protocol"));
      if (node_port != 0 && !node_ports.insert({protocol, node_port}).second) {
        errs.Duplicate(P(pp, "nodePort"), N(node_port));
      }
    }
    for (size_t i = 0; i < ports->size(); ++i) {
      const Json& port = (*ports)[i];
      std::string pp = I("spec.ports", i);
      int64_t number = Int(port, "port", P(pp, "port")).value_or(0);
      std::string protocol = Str(port, "protocol", P(pp, "protocol"));
      if (!port_keys.insert({protocol, number}).second) {
        errs.Duplicate(pp, "core.ServicePort{Name:\"\", Protocol:" + Q(protocol) +
                               ", AppProtocol:(*string)(nil), Port:" + N(number) +
                               ", TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, "
                               "NodePort:0}");
      }
    }
  }
  if (auto ranges = StrList(spec, "loadBalancerSourceRanges", "spec.loadBalancerSourceRanges");
      ranges && !ranges->empty()) {
    const std::string rp = "spec.LoadBalancerSourceRanges";  // sic
    if (type != "LoadBalancer") {
      errs.Forbidden(rp, "may only be used when `type` is 'LoadBalancer'");
    }
    for (size_t i = 0; i < ranges->size(); ++i) {
      std::string value = (*ranges)[i];
      size_t b = value.find_first_not_of(' '), e = value.find_last_not_of(' ');
      value = b == std::string::npos ? "" : value.substr(b, e - b + 1);
      for (auto& m : IsValidCIDRMsgs(value)) errs.Invalid(I(rp, i), Q(value), m);
    }
  }
  bool allocate_set = Get(spec, "allocateLoadBalancerNodePorts") != nullptr;
  if (allocate_set && type != "LoadBalancer") {
    errs.Forbidden("spec.allocateLoadBalancerNodePorts",
                   "may only be used when `type` is 'LoadBalancer'");
  }
  if (type == "LoadBalancer" && !allocate_set) {
    errs.Required("allocateLoadBalancerNodePorts");  // sic: kube-apiserver leaves out "spec."
  }
  bool externally_accessible = type == "LoadBalancer" || type == "NodePort" ||
                               (type == "ClusterIP" && external_ips && !external_ips->empty());
  std::string etp = Str(spec, "externalTrafficPolicy", "spec.externalTrafficPolicy");
  if (!externally_accessible) {
    if (!etp.empty()) {
      errs.Invalid("spec.externalTrafficPolicy", Q(etp),
                   "may only be set for externally-accessible services");
    }
  } else if (etp.empty()) {
    errs.Required("spec.externalTrafficPolicy");
  } else if (etp != "Cluster" && etp != "Local") {
    errs.NotSupported("spec.externalTrafficPolicy", Q(etp), {"Cluster", "Local"});
  }
  int64_t hc = Int(spec, "healthCheckNodePort", "spec.healthCheckNodePort").value_or(0);
  if (!(type == "LoadBalancer" && etp == "Local")) {
    if (hc != 0) {
      errs.Invalid("spec.healthCheckNodePort", N(hc),
                   "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is "
                   "'Local'");
    }
  } else if (hc != 0) {  // 0: not allocated yet, the registry's part
    for (auto& m : IsValidPortNum(hc)) errs.Invalid("spec.healthCheckNodePort", N(hc), m);
  }
  if (!Get(spec, "internalTrafficPolicy")) {
    if (type == "NodePort" || type == "LoadBalancer" || type == "ClusterIP") {
      errs.Required("spec.internalTrafficPolicy");
    }
  } else {
    std::string itp = Str(spec, "internalTrafficPolicy", "spec.internalTrafficPolicy");
    if (itp != "Cluster" && itp != "Local") {
      errs.NotSupported("spec.internalTrafficPolicy", Q(itp), {"Cluster", "Local"});
    }
  }
  if (Get(spec, "trafficDistribution")) {
    std::string td = Str(spec, "trafficDistribution", "spec.trafficDistribution");
    if (td != "PreferClose") errs.NotSupported("spec.trafficDistribution", Q(td), {"PreferClose"});
  }
}

// ---------------------------------------------------------------------------
// Endpoints, ConfigMaps, Secrets, Nodes, Namespaces.

void Validator::Endpoints(const Json& obj) {
  ObjectMeta(obj, NameRule::kSubdomain, kNamespaced);
  const Json* subsets = Arr(obj, "subsets", "subsets");
  if (!subsets) return;
  for (size_t i = 0; i < subsets->size(); ++i) {
    std::string sp = I("subsets", i);
    const Json& ss = Elem(*subsets, i, sp);
    const Json* addresses = Arr(ss, "addresses", P(sp, "addresses"));
    const Json* not_ready = Arr(ss, "notReadyAddresses", P(sp, "notReadyAddresses"));
    if ((!addresses || addresses->empty()) && (!not_ready || not_ready->empty())) {
      errs.Required(sp, "must specify `addresses` or `notReadyAddresses`");
    }
    for (auto [list, name] :
         {std::pair{addresses, "addresses"}, std::pair{not_ready, "notReadyAddresses"}}) {
      if (!list) continue;
      for (size_t j = 0; j < list->size(); ++j) {
        std::string ap = I(P(sp, name), j);
        const Json& a = Elem(*list, j, ap);
        std::string addr = Str(a, "ip", P(ap, "ip"));
        auto msgs = IsValidIPMsgs(addr);
        for (auto& m : msgs) errs.Invalid(P(ap, "ip"), Q(addr), m);
        std::string hostname = Str(a, "hostname", P(ap, "hostname"));
        if (!hostname.empty()) Dns1123Label(hostname, P(ap, "hostname"));
        if (Get(a, "nodeName"))
          Dns1123Subdomain(Str(a, "nodeName", P(ap, "nodeName")), P(ap, "nodeName"));
        if (auto ip = ParseIp(addr)) {
          bool loopback =
              ip->v6 ? (std::all_of(ip->b, ip->b + 15, [](unsigned char c) { return c == 0; }) &&
                        ip->b[15] == 1)
                     : ip->b[0] == 127;
          bool zero =
              std::all_of(ip->b, ip->b + (ip->v6 ? 16 : 4), [](unsigned char c) { return c == 0; });
          if (zero) errs.Invalid(P(ap, "ip"), Q(addr), "may not be unspecified (" + addr + ")");
          if (loopback) {
            errs.Invalid(P(ap, "ip"), Q(addr),
                         "may not be in the loopback range (127.0.0.0/8, ::1/128)");
          }
          bool link_local = ip->v6 ? (ip->b[0] == 0xfe && (ip->b[1] & 0xc0) == 0x80)
                                   : (ip->b[0] == 169 && ip->b[1] == 254);
          if (link_local) {
            errs.Invalid(P(ap, "ip"), Q(addr),
                         "may not be in the link-local range (169.254.0.0/16, fe80::/10)");
          }
        } else {
          errs.Invalid(P(ap, "ip"), Q(addr), "must be a valid IP address");
        }
      }
    }
    if (const Json* ports = Arr(ss, "ports", P(sp, "ports"))) {
      for (size_t j = 0; j < ports->size(); ++j) {
        std::string pp = I(P(sp, "ports"), j);
        const Json& port = Elem(*ports, j, pp);
        std::string name = Str(port, "name", P(pp, "name"));
        if (ports->size() > 1 && name.empty()) {
          errs.Required(P(pp, "name"));
        } else if (!name.empty()) {
          Dns1123Label(name, P(pp, "name"));
        }
        int64_t number = Int(port, "port", P(pp, "port")).value_or(0);
        for (auto& m : IsValidPortNum(number)) errs.Invalid(P(pp, "port"), N(number), m);
        std::string protocol = Str(port, "protocol", P(pp, "protocol"));
        if (protocol.empty()) {
          errs.Required(P(pp, "protocol"));
        } else if (std::find(kProtocols.begin(), kProtocols.end(), protocol) == kProtocols.end()) {
          errs.NotSupported(P(pp, "protocol"), Q(protocol), kProtocols);
        }
      }
    }
  }
}

void Validator::ConfigMap(const Json& obj, const Json* old) {
  if (old && old->value("immutable", Json(false)) == Json(true)) {
    if (obj.value("immutable", Json(false)) != Json(true)) {
      errs.Forbidden("immutable", "field is immutable when `immutable` is set");
    }
    for (const char* key : {"data", "binaryData"}) {
      Json a = obj.contains(key) ? Normalized(obj[key]) : Json();
      Json b = old->contains(key) ? Normalized((*old)[key]) : Json();
      if (a.is_object() && a.empty()) a = Json();
      if (b.is_object() && b.empty()) b = Json();
      if (a != b) errs.Forbidden(key, "field is immutable when `immutable` is set");
    }
  }
  ObjectMeta(obj, NameRule::kSubdomain, kNamespaced);
  auto data = StrMap(obj, "data", "data");
  auto binary = StrMap(obj, "binaryData", "binaryData");
  size_t total = 0;
  if (data) {
    for (const auto& [k, v] : *data) {
      for (auto& m : IsConfigMapKey(k)) errs.Invalid(K("data", k), Q(k), m);
      if (binary && binary->count(k)) {
        errs.Invalid(K("data", k), Q(k), "duplicate of key present in binaryData");
      }
      total += v.size();
    }
  }
  if (binary) {
    for (const auto& [k, v] : *binary) {
      for (auto& m : IsConfigMapKey(k)) errs.Invalid(K("binaryData", k), Q(k), m);
      size_t bad = 0;
      auto decoded = Base64Decode(v, &bad);
      if (!decoded) DecodeError("illegal base64 data at input byte " + std::to_string(bad));
      total += decoded->size();
    }
  }
  if (total > 1024 * 1024) errs.TooLong("", 1024 * 1024);
}

void Validator::Secret(const Json& obj, const Json* old) {
  std::string type = Str(obj, "type", "type");
  if (old) {
    std::string old_type = StringAt(*old, "type");
    if (type != old_type) errs.Invalid("type", Q(type), "field is immutable");
    if (old->value("immutable", Json(false)) == Json(true)) {
      if (obj.value("immutable", Json(false)) != Json(true)) {
        errs.Forbidden("immutable", "field is immutable when `immutable` is set");
      }
      Json a = obj.contains("data") ? Normalized(obj["data"]) : Json();
      Json b = old->contains("data") ? Normalized((*old)["data"]) : Json();
      if (a.is_object() && a.empty()) a = Json();
      if (b.is_object() && b.empty()) b = Json();
      if (a != b) errs.Forbidden("data", "field is immutable when `immutable` is set");
    }
  }
  ObjectMeta(obj, NameRule::kSubdomain, kNamespaced);
  auto data = StrMap(obj, "data", "data");
  std::map<std::string, std::string> decoded;
  size_t total = 0;
  if (data) {
    for (const auto& [k, v] : *data) {
      size_t bad = 0;
      auto bytes = Base64Decode(v, &bad);
      if (!bytes) DecodeError("illegal base64 data at input byte " + std::to_string(bad));
      decoded[k] = *bytes;
    }
    for (const auto& [k, v] : decoded) {
      for (auto& m : IsConfigMapKey(k)) errs.Invalid(K("data", k), Q(k), m);
      total += v.size();
    }
  }
  if (total > 1024 * 1024) errs.TooLong("data", 1024 * 1024);
  auto require = [&](const char* key) {
    if (!decoded.count(key)) errs.Required(K("data", key));
  };
  auto valid_json = [&](const char* key) {
    if (!decoded.count(key)) {
      errs.Required(K("data", key));
      return;
    }
    Json parsed = Json::parse(decoded[key], nullptr, false);
    if (parsed.is_discarded() || !parsed.is_object()) {
      errs.Invalid(K("data", key), Q("<secret contents redacted>"),
                   decoded[key].empty() ? "unexpected end of JSON input"
                                        : "invalid character in JSON document");
    }
  };
  if (type == "kubernetes.io/service-account-token") {
    const Json* meta = Get(obj, "metadata");
    auto annotations = StrMap(meta ? *meta : EmptyObject(), "annotations", "metadata.annotations");
    if (!annotations || (*annotations)["kubernetes.io/service-account.name"].empty()) {
      errs.Required(K("metadata.annotations", "kubernetes.io/service-account.name"));
    }
  } else if (type == "kubernetes.io/dockercfg") {
    valid_json(".dockercfg");
  } else if (type == "kubernetes.io/dockerconfigjson") {
    valid_json(".dockerconfigjson");
  } else if (type == "kubernetes.io/basic-auth") {
    if (!decoded.count("username") && !decoded.count("password")) {
      require("username");
      require("password");
    }
  } else if (type == "kubernetes.io/ssh-auth") {
    if (decoded["ssh-privatekey"].empty()) errs.Required(K("data", "ssh-privatekey"));
  } else if (type == "kubernetes.io/tls") {
    require("tls.crt");
    require("tls.key");
  }
}

void Validator::Node(const Json& obj) {
  ObjectMeta(obj, NameRule::kSubdomain, kClusterScoped);
  const Json* sp = Obj(obj, "spec", "spec");
  if (!sp) return;
  if (const Json* taints = Arr(*sp, "taints", "spec.taints")) {
    // kube-apiserver reports node taints under metadata.taints.
    std::map<std::string, std::set<std::string>> unique;
    for (size_t i = 0; i < taints->size(); ++i) {
      std::string tp = I("metadata.taints", i);
      const Json& t = Elem(*taints, i, tp);
      std::string key = Str(t, "key", P(tp, "key"));
      std::string value = Str(t, "value", P(tp, "value"));
      std::string effect = Str(t, "effect", P(tp, "effect"));
      QualifiedName(key, P(tp, "key"));
      auto msgs = IsValidLabelValue(value);
      if (!msgs.empty()) errs.Invalid(P(tp, "value"), Q(value), Join(msgs, ";"));
      if (effect.empty()) {
        errs.Required(P(tp, "effect"));
      } else if (effect != "NoSchedule" && effect != "PreferNoSchedule" && effect != "NoExecute") {
        errs.NotSupported(P(tp, "effect"), Q(effect),
                          {"NoSchedule", "PreferNoSchedule", "NoExecute"});
      }
      if (!unique[effect].insert(key).second) {
        errs.Duplicate(tp, "core.Taint{Key:" + Q(key) + ", Value:" + Q(value) +
                               ", Effect:" + Q(effect) +
                               ", TimeAdded:<nil>}: taints must be unique by key and "
                               "effect pair");
      }
    }
  }
  if (auto cidrs = StrList(*sp, "podCIDRs", "spec.podCIDRs")) {
    for (size_t i = 0; i < cidrs->size(); ++i) {
      for (auto& m : IsValidCIDRMsgs((*cidrs)[i]))
        errs.Invalid(I("spec.podCIDRs", i), Q((*cidrs)[i]), m);
    }
  }
}

void Validator::Namespace(const Json& obj) {
  ObjectMeta(obj, NameRule::kLabel, kClusterScoped);
  const Json* sp = Obj(obj, "spec", "spec");
  if (!sp) return;
  if (auto finalizers = StrList(*sp, "finalizers", "spec.finalizers")) {
    for (const auto& f : *finalizers) {
      QualifiedName(f, "spec.finalizers");
      if (f.find('/') == std::string::npos && f != "kubernetes" && f != "orphan" &&
          f != "foregroundDeletion") {
        errs.Invalid("spec.finalizers", Q(f),
                     "name is neither a standard finalizer name nor is it fully qualified");
      }
    }
  }
}

// ---------------------------------------------------------------------------
// apps/v1.

int64_t IntOrPercentValue(const IntOrStr& v) {
  if (v.is_int) return v.i;
  std::string s = v.s;
  if (!s.empty() && s.back() == '%') s.pop_back();
  if (s.empty() || s.size() > 9 || !std::all_of(s.begin(), s.end(), IsDigit)) return 0;
  return std::stoll(s);
}

void Validator::RollingUpdateIntOrPercent(const Json& ru, std::string_view key,
                                          const std::string& path, std::optional<IntOrStr>* out) {
  *out = IntOrString(ru, key, path);
  if (!*out) return;
  const IntOrStr& v = **out;
  if (v.is_int) {
    NonNegative(v.i, path);
  } else {
    for (auto& m : IsValidPercent(v.s)) errs.Invalid(path, v.Render(), m);
  }
}

void Validator::AppsReplicaSetLike(const Json& spec, const std::string& empty_selector_msg) {
  NonNegative(Int(spec, "replicas", "spec.replicas"), "spec.replicas");
  const Json* selector = Obj(spec, "selector", "spec.selector");
  bool convertible = true;
  if (!selector) {
    errs.Required("spec.selector");
  } else {
    convertible = LabelSelector(selector, "spec.selector");
    const Json* ml = Get(*selector, "matchLabels");
    const Json* me = Get(*selector, "matchExpressions");
    if ((!ml || ml->empty()) && (!me || me->empty())) {
      errs.Invalid("spec.selector", RenderSelector(selector), empty_selector_msg);
    }
  }
  if (!convertible) {
    errs.Invalid("spec.selector", RenderSelector(selector), "invalid label selector");
    return;
  }
  const Json* tmpl = Obj(spec, "template", "spec.template");
  TemplateMatchesSelector(selector, tmpl, "spec.template");
  PodTemplate(tmpl, "spec.template");
  const Json* tspec = tmpl ? Get(*tmpl, "spec") : nullptr;
  const Json& ts = tspec && tspec->is_object() ? *tspec : EmptyObject();
  std::string restart = Str(ts, "restartPolicy", "spec.template.spec.restartPolicy");
  if (restart != "Always") {
    errs.NotSupported("spec.template.spec.restartPolicy", Q(restart), {"Always"});
  }
  if (Get(ts, "activeDeadlineSeconds")) {
    errs.Forbidden("spec.template.spec.activeDeadlineSeconds",
                   "activeDeadlineSeconds in ReplicaSet is not Supported");
  }
}

void Validator::Deployment(const Json& obj, const Json* old) {
  ObjectMeta(obj, NameRule::kSubdomain, kNamespaced);
  const Json* sp = Obj(obj, "spec", "spec");
  const Json& spec = sp ? *sp : EmptyObject();
  AppsReplicaSetLike(spec, "empty selector is invalid for deployment");
  const Json* strategy = Obj(spec, "strategy", "spec.strategy");
  const Json& st = strategy ? *strategy : EmptyObject();
  std::string type = Str(st, "type", "spec.strategy.type");
  const Json* ru = Obj(st, "rollingUpdate", "spec.strategy.rollingUpdate");
  if (type == "Recreate") {
    if (ru) {
      errs.Forbidden("spec.strategy.rollingUpdate",
                     "may not be specified when strategy `type` is 'Recreate'");
    }
  } else if (type == "RollingUpdate") {
    if (!ru) {
      errs.Required("spec.strategy.rollingUpdate", "this should be defaulted and never be nil");
    } else {
      std::optional<IntOrStr> unavailable, surge;
      const std::string rp = "spec.strategy.rollingUpdate";
      RollingUpdateIntOrPercent(*ru, "maxUnavailable", P(rp, "maxUnavailable"), &unavailable);
      RollingUpdateIntOrPercent(*ru, "maxSurge", P(rp, "maxSurge"), &surge);
      IntOrStr u = unavailable.value_or(IntOrStr{}), s = surge.value_or(IntOrStr{});
      if (IntOrPercentValue(u) == 0 && IntOrPercentValue(s) == 0) {
        errs.Invalid(P(rp, "maxUnavailable"), u.Render(), "may not be 0 when `maxSurge` is 0");
      }
      if (!u.is_int && IsValidPercent(u.s).empty() && IntOrPercentValue(u) > 100) {
        errs.Invalid(P(rp, "maxUnavailable"), u.Render(), "must not be greater than 100%");
      }
    }
  } else {
    errs.NotSupported("spec.strategy",
                      "apps.DeploymentStrategy{Type:" + Q(type) +
                          ", RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}",
                      {"Recreate", "RollingUpdate"});
  }
  auto min_ready = Int(spec, "minReadySeconds", "spec.minReadySeconds");
  NonNegative(min_ready, "spec.minReadySeconds");
  NonNegative(Int(spec, "revisionHistoryLimit", "spec.revisionHistoryLimit"),
              "spec.revisionHistoryLimit");
  if (auto pds = Int(spec, "progressDeadlineSeconds", "spec.progressDeadlineSeconds")) {
    NonNegative(pds, "spec.progressDeadlineSeconds");
    if (*pds <= min_ready.value_or(0)) {
      errs.Invalid("spec.progressDeadlineSeconds", N(*pds), "must be greater than minReadySeconds");
    }
  }
  if (old) ImmutableSelector(obj, *old);
}

void Validator::ReplicaSet(const Json& obj, const Json* old) {
  ObjectMeta(obj, NameRule::kSubdomain, kNamespaced);
  const Json* sp = Obj(obj, "spec", "spec");
  const Json& spec = sp ? *sp : EmptyObject();
  NonNegative(Int(spec, "minReadySeconds", "spec.minReadySeconds"), "spec.minReadySeconds");
  AppsReplicaSetLike(spec, "empty selector is invalid for deployment");  // sic
  if (old) ImmutableSelector(obj, *old);
}

void Validator::DaemonSet(const Json& obj, const Json* old) {
  ObjectMeta(obj, NameRule::kSubdomain, kNamespaced);
  const Json* sp = Obj(obj, "spec", "spec");
  const Json& spec = sp ? *sp : EmptyObject();
  const Json* selector = Obj(spec, "selector", "spec.selector");
  bool convertible = LabelSelector(selector, "spec.selector");
  const Json* tmpl = Obj(spec, "template", "spec.template");
  if (convertible) {
    const Json* meta = tmpl ? Get(*tmpl, "metadata") : nullptr;
    auto labels = meta ? StrMap(*meta, "labels", "spec.template.metadata.labels") : std::nullopt;
    bool empty = false;
    std::map<std::string, std::string> none;
    if (!SelectorMatches(selector, labels ? *labels : none, &empty)) {
      errs.Invalid("spec.template.metadata.labels", GoStringMap(labels ? &*labels : nullptr),
                   "`selector` does not match template `labels`");
    }
  }
  if (selector) {
    const Json* ml = Get(*selector, "matchLabels");
    const Json* me = Get(*selector, "matchExpressions");
    if ((!ml || ml->empty()) && (!me || me->empty())) {
      errs.Invalid("spec.selector", RenderSelector(selector),
                   "empty selector is invalid for daemonset");
    }
  }
  PodTemplate(tmpl, "spec.template");
  const Json* tspec = tmpl ? Get(*tmpl, "spec") : nullptr;
  const Json& ts = tspec && tspec->is_object() ? *tspec : EmptyObject();
  std::string restart = Str(ts, "restartPolicy", "spec.template.spec.restartPolicy");
  if (restart != "Always") {
    errs.NotSupported("spec.template.spec.restartPolicy", Q(restart), {"Always"});
  }
  if (auto ads = Int(ts, "activeDeadlineSeconds", "spec.template.spec.activeDeadlineSeconds")) {
    errs.Invalid("spec.template.spec.activeDeadlineSeconds", N(*ads),
                 "activeDeadlineSeconds in DaemonSet is not Supported");
  }
  NonNegative(Int(spec, "minReadySeconds", "spec.minReadySeconds"), "spec.minReadySeconds");
  NonNegative(Int(spec, "templateGeneration", "spec.templateGeneration"),
              "spec.templateGeneration");
  const Json* strategy = Obj(spec, "updateStrategy", "spec.updateStrategy");
  const Json& st = strategy ? *strategy : EmptyObject();
  std::string type = Str(st, "type", "spec.updateStrategy.type");
  const std::string rp = "spec.updateStrategy.rollingUpdate";
  if (type == "RollingUpdate") {
    const Json* ru = Obj(st, "rollingUpdate", rp);
    if (!ru) {
      errs.Required(rp);
    } else {
      std::optional<IntOrStr> unavailable, surge;
      RollingUpdateIntOrPercent(*ru, "maxUnavailable", P(rp, "maxUnavailable"), &unavailable);
      RollingUpdateIntOrPercent(*ru, "maxSurge", P(rp, "maxSurge"), &surge);
      IntOrStr u = unavailable.value_or(IntOrStr{}), s = surge.value_or(IntOrStr{});
      if (!u.is_int && IsValidPercent(u.s).empty() && IntOrPercentValue(u) > 100) {
        errs.Invalid(P(rp, "maxUnavailable"), u.Render(), "must not be greater than 100%");
      }
      if (!s.is_int && IsValidPercent(s.s).empty() && IntOrPercentValue(s) > 100) {
        errs.Invalid(P(rp, "maxSurge"), s.Render(), "must not be greater than 100%");
      }
      bool has_unavailable = IntOrPercentValue(u) != 0, has_surge = IntOrPercentValue(s) != 0;
      if (has_unavailable && has_surge) {
        errs.Invalid(P(rp, "maxSurge"), s.Render(),
                     "may not be set when maxUnavailable is non-zero");
      } else if (!has_unavailable && !has_surge) {
        errs.Required(P(rp, "maxUnavailable"), "cannot be 0 when maxSurge is 0");
      }
    }
  } else if (type != "OnDelete") {
    errs.NotSupported("spec.updateStrategy",
                      "apps.DaemonSetUpdateStrategy{Type:" + Q(type) +
                          ", RollingUpdate:(*apps.RollingUpdateDaemonSet)(nil)}",
                      {"RollingUpdate", "OnDelete"});
  }
  NonNegative(Int(spec, "revisionHistoryLimit", "spec.revisionHistoryLimit"),
              "spec.revisionHistoryLimit");
  if (old) ImmutableSelector(obj, *old);
}

void Validator::StatefulSet(const Json& obj, const Json* old) {
  ObjectMeta(obj, NameRule::kSubdomain, kNamespaced);
  const Json* sp = Obj(obj, "spec", "spec");
  const Json& spec = sp ? *sp : EmptyObject();
  std::string pmp = Str(spec, "podManagementPolicy", "spec.podManagementPolicy");
  if (pmp.empty()) {
    errs.Required("spec.podManagementPolicy");
  } else if (pmp != "OrderedReady" && pmp != "Parallel") {
    errs.Invalid("spec.podManagementPolicy", Q(pmp), "must be 'OrderedReady' or 'Parallel'");
  }
  const Json* strategy = Obj(spec, "updateStrategy", "spec.updateStrategy");
  const Json& st = strategy ? *strategy : EmptyObject();
  std::string type = Str(st, "type", "spec.updateStrategy.type");
  const Json* ru = Obj(st, "rollingUpdate", "spec.updateStrategy.rollingUpdate");
  if (type.empty()) {
    errs.Required("spec.updateStrategy");
  } else if (type == "OnDelete") {
    if (ru) {
      errs.Invalid("spec.updateStrategy.rollingUpdate",
                   "&apps.RollingUpdateStatefulSetStrategy{...}",
                   "only allowed for updateStrategy 'RollingUpdate'");
    }
  } else if (type == "RollingUpdate") {
    if (ru) {
      NonNegative(Int(*ru, "partition", "spec.updateStrategy.rollingUpdate.partition"),
                  "spec.updateStrategy.rollingUpdate.partition");
    }
  } else {
    errs.Invalid("spec.updateStrategy",
                 "apps.StatefulSetUpdateStrategy{Type:" + Q(type) +
                     ", RollingUpdate:(*apps.RollingUpdateStatefulSetStrategy)(nil)}",
                 "must be 'RollingUpdate' or 'OnDelete'");
  }
  if (const Json* policy = Obj(spec, "persistentVolumeClaimRetentionPolicy",
                               "spec.persistentVolumeClaimRetentionPolicy")) {
    for (const char* key : {"whenDeleted", "whenScaled"}) {
      std::string p = P("spec.persistentVolumeClaimRetentionPolicy", key);
      std::string v = Str(*policy, key, p);
      if (v != "Retain" && v != "Delete") errs.NotSupported(p, Q(v), {"Retain", "Delete"});
    }
  }
  NonNegative(Int(spec, "replicas", "spec.replicas"), "spec.replicas");
  NonNegative(Int(spec, "minReadySeconds", "spec.minReadySeconds"), "spec.minReadySeconds");
  const Json* selector = Obj(spec, "selector", "spec.selector");
  bool convertible = true;
  if (!selector) {
    errs.Required("spec.selector");
  } else {
    convertible = LabelSelector(selector, "spec.selector");
    const Json* ml = Get(*selector, "matchLabels");
    const Json* me = Get(*selector, "matchExpressions");
    if ((!ml || ml->empty()) && (!me || me->empty())) {
      errs.Invalid("spec.selector", RenderSelector(selector),
                   "empty selector is invalid for statefulset");
    }
  }
  const Json* tmpl = Obj(spec, "template", "spec.template");
  if (!convertible) {
    errs.Invalid("spec.selector", RenderSelector(selector), "");
  } else {
    TemplateMatchesSelector(selector, tmpl, "spec.template");
    // Volumes may also come from volumeClaimTemplates.
    std::set<std::string> claims;
    if (const Json* vcts = Arr(spec, "volumeClaimTemplates", "spec.volumeClaimTemplates")) {
      for (size_t i = 0; i < vcts->size(); ++i) {
        const Json& vct = Elem(*vcts, i, I("spec.volumeClaimTemplates", i));
        const Json* meta = Get(vct, "metadata");
        if (meta && meta->contains("name") && (*meta)["name"].is_string()) {
          claims.insert((*meta)["name"].get<std::string>());
        }
      }
    }
    PodTemplate(tmpl, "spec.template", claims);
  }
  const Json* tspec = tmpl ? Get(*tmpl, "spec") : nullptr;
  const Json& ts = tspec && tspec->is_object() ? *tspec : EmptyObject();
  std::string restart = Str(ts, "restartPolicy", "spec.template.spec.restartPolicy");
  if (restart != "Always") {
    errs.NotSupported("spec.template.spec.restartPolicy", Q(restart), {"Always"});
  }
  if (Get(ts, "activeDeadlineSeconds")) {
    errs.Forbidden("spec.template.spec.activeDeadlineSeconds",
                   "activeDeadlineSeconds in StatefulSet is not Supported");
  }
  if (old) {
    Json a = spec, b = Get(*old, "spec") ? (*old)["spec"] : Json::object();
    for (const char* key : {"replicas", "ordinals", "template", "updateStrategy",
                            "persistentVolumeClaimRetentionPolicy", "minReadySeconds"}) {
      if (a.is_object()) a.erase(key);
      if (b.is_object()) b.erase(key);
    }
    if (Normalized(a) != Normalized(b)) {
      errs.Forbidden("spec",
                     "updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                     "'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
                     "'minReadySeconds' are forbidden");
    }
  }
}

// ---------------------------------------------------------------------------
// batch/v1.

void Validator::JobSpec(const Json* sp, const std::string& path, bool in_cronjob) {
  const Json& spec = sp ? *sp : EmptyObject();
  for (const char* key : {"parallelism", "completions", "activeDeadlineSeconds", "backoffLimit",
                          "ttlSecondsAfterFinished"}) {
    NonNegative(Int(spec, key, P(path, key)), P(path, key));
  }
  if (Get(spec, "completionMode")) {
    std::string mode = Str(spec, "completionMode", P(path, "completionMode"));
    if (mode != "NonIndexed" && mode != "Indexed") {
      errs.NotSupported(P(path, "completionMode"), Q(mode), {"NonIndexed", "Indexed"});
    }
    if (mode == "Indexed" && !Get(spec, "completions")) {
      errs.Required(P(path, "completions"), "when completion mode is Indexed");
    }
  }
  const Json* selector = Obj(spec, "selector", P(path, "selector"));
  bool manual = Bool(spec, "manualSelector", P(path, "manualSelector")).value_or(false);
  const Json* tmpl = Obj(spec, "template", P(path, "template"));
  if (in_cronjob) {
    if (selector) {
      errs.Invalid(P(path, "selector"), RenderSelector(selector),
                   "`selector` will be auto-generated");
    }
    if (manual) errs.NotSupported(P(path, "manualSelector"), "true", {"nil", "false"});
  } else if (manual && !selector) {
    errs.Required(P(path, "selector"));
  } else if (selector && LabelSelector(selector, P(path, "selector"))) {
    // The generated selector (the Job controller's part) always matches.
    TemplateMatchesSelector(selector, tmpl, P(path, "template"));
  }
  PodTemplate(tmpl, P(path, "template"));
  const Json* tspec = tmpl ? Get(*tmpl, "spec") : nullptr;
  const Json& ts = tspec && tspec->is_object() ? *tspec : EmptyObject();
  std::string rp = P(path, "template.spec.restartPolicy");
  std::string restart = Str(ts, "restartPolicy", rp);
  if (restart == "Always") {
    errs.Required(rp, "valid values: \"OnFailure\", \"Never\"");
  } else if (restart != "OnFailure" && restart != "Never") {
    errs.NotSupported(rp, Q(restart), {"OnFailure", "Never"});
  }
}

void Validator::Job(const Json& obj, const Json* old) {
  ObjectMeta(obj, NameRule::kSubdomain, kNamespaced);
  const Json* spec = Obj(obj, "spec", "spec");
  JobSpec(spec, "spec", false);
  if (!old || !spec) return;
  const Json* osp = Get(*old, "spec");
  const Json& ospec = osp && osp->is_object() ? *osp : EmptyObject();
  auto field = [&](const char* key) {
    const Json* v = Get(*spec, key);
    return v ? Normalized(*v) : Json();
  };
  auto old_field = [&](const char* key) {
    const Json* v = Get(ospec, key);
    return v ? Normalized(*v) : Json();
  };
  if (field("selector") != old_field("selector") && !old_field("selector").is_null()) {
    errs.Invalid("spec.selector", RenderSelector(Get(*spec, "selector")), "field is immutable");
  }
  if (field("completionMode") != old_field("completionMode")) {
    errs.Invalid("spec.completionMode", Q(Str(*spec, "completionMode", "spec.completionMode")),
                 "field is immutable");
  }
  // Indexed Jobs may scale when completions follows parallelism.
  bool elastic = Str(*spec, "completionMode", "spec.completionMode") == "Indexed" &&
                 field("completions") == field("parallelism");
  if (field("completions") != old_field("completions") && !elastic) {
    errs.Invalid("spec.completions", field("completions").dump(), "field is immutable");
  }
  // A suspended Job that never started may change its template's scheduling.
  bool suspended = old_field("suspend") == Json(true);
  if (!suspended && field("template") != old_field("template")) {
    errs.Invalid("spec.template", field("template").dump(), "field is immutable");
  }
}

// robfig/cron ParseStandard, with its error texts.
std::optional<std::string> CronError(const std::string& schedule) {
  if (schedule.empty()) return "empty spec string";
  std::string spec = schedule;
  if (spec.rfind("TZ=", 0) == 0 || spec.rfind("CRON_TZ=", 0) == 0) {
    size_t sp = spec.find(' ');
    if (sp == std::string::npos) return "provided bad location " + spec;
    spec = spec.substr(sp + 1);
  }
  if (spec[0] == '@') {
    static const std::set<std::string> kDescriptors = {
        "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"};
    if (kDescriptors.count(spec) || spec.rfind("@every ", 0) == 0) return std::nullopt;
    return "unrecognized descriptor: " + spec;
  }
  std::vector<std::string> fields;
  for (const auto& f : Split(spec, ' ')) {
    if (!f.empty()) fields.push_back(f);
  }
  if (fields.size() != 5) {
    return "expected exactly 5 fields, found " + std::to_string(fields.size()) + ": [" +
           Join(fields, " ") + "]";
  }
  struct Bounds {
    int min, max;
    std::map<std::string, int> names;
  };
  static const Bounds kBounds[5] = {
      {0, 59, {}},
      {0, 23, {}},
      {1, 31, {}},
      {1,
       12,
       {{"jan", 1},
        {"feb", 2},
        {"mar", 3},
        {"apr", 4},
        {"may", 5},
        {"jun", 6},
        {"jul", 7},
        {"aug", 8},
        {"sep", 9},
        {"oct", 10},
        {"nov", 11},
        {"dec", 12}}},
      {0, 6, {{"sun", 0}, {"mon", 1}, {"tue", 2}, {"wed", 3}, {"thu", 4}, {"fri", 5}, {"sat", 6}}},
  };
  for (int fi = 0; fi < 5; ++fi) {
    const Bounds& b = kBounds[fi];
    for (const auto& expr : Split(fields[static_cast<size_t>(fi)], ',')) {
      auto range_and_step = Split(expr, '/');
      auto low_high = Split(range_and_step[0], '-');
      auto parse = [&](const std::string& s, int* out) -> std::optional<std::string> {
        if (auto it = b.names.find(ToLower(s)); it != b.names.end()) {
          *out = it->second;
          return std::nullopt;
        }
        if (s.empty() || s.size() > 9 || !std::all_of(s.begin(), s.end(), IsDigit)) {
          return "failed to parse int from " + s + ": strconv.Atoi: parsing " + GoQuote(s) +
                 ": invalid syntax";
        }
        *out = std::stoi(s);
        return std::nullopt;
      };
      int start = 0, end = 0, step = 1;
      bool star = low_high[0] == "*" || low_high[0] == "?";
      if (star) {
        start = b.min;
        end = b.max;
      } else {
        if (auto e = parse(low_high[0], &start)) return e;
        if (low_high.size() == 1) {
          end = start;
        } else if (low_high.size() == 2) {
          if (auto e = parse(low_high[1], &end)) return e;
        } else {
          return "too many hyphens: " + expr;
        }
      }
      if (range_and_step.size() == 2) {
        if (auto e = parse(range_and_step[1], &step)) return e;
        if (!star && low_high.size() == 1) end = b.max;
        if (step <= 0) return "step of range should be a positive number: " + expr;
      } else if (range_and_step.size() > 2) {
        return "too many slashes: " + expr;
      }
      if (start < b.min) {
        return "beginning of range (" + std::to_string(start) + ") below minimum (" +
               std::to_string(b.min) + "): " + expr;
      }
      if (end > b.max) {
        return "end of range (" + std::to_string(end) + ") above maximum (" +
               std::to_string(b.max) + "): " + expr;
      }
      if (start > end) {
        return "beginning of range (" + std::to_string(start) + ") beyond end of range (" +
               std::to_string(end) + "): " + expr;
      }
    }
  }
  return std::nullopt;
}

void Validator::CronJob(const Json& obj, const Json* old) {
  ObjectMeta(obj, NameRule::kSubdomain, kNamespaced);
  const Json* meta = Get(obj, "metadata");
  std::string name = meta ? Str(*meta, "name", "metadata.name") : "";
  if (name.size() > 52)
    errs.Invalid("metadata.name", Q(name), "must be no more than 52 characters");
  const Json* sp = Obj(obj, "spec", "spec");
  const Json& spec = sp ? *sp : EmptyObject();
  std::string schedule = Str(spec, "schedule", "spec.schedule");
  if (schedule.empty()) {
    errs.Required("spec.schedule");
  } else if (auto e = CronError(schedule)) {
    errs.Invalid("spec.schedule", Q(schedule), *e);
  }
  // An update may keep a TZ= prefix the stored schedule already had.
  bool allow_tz = false;
  if (old) {
    const Json* old_spec = Get(*old, "spec");
    const Json* old_schedule = old_spec ? Get(*old_spec, "schedule") : nullptr;
    allow_tz = old_schedule && old_schedule->is_string() &&
               old_schedule->get<std::string>().find("TZ") != std::string::npos;
  }
  TimeZone(spec, schedule, allow_tz);
  std::string policy = Str(spec, "concurrencyPolicy", "spec.concurrencyPolicy");
  if (policy.empty()) {
    errs.Required("spec.concurrencyPolicy");
  } else if (policy != "Allow" && policy != "Forbid" && policy != "Replace") {
    errs.NotSupported("spec.concurrencyPolicy", Q(policy), {"Allow", "Forbid", "Replace"});
  }
  for (const char* key :
       {"startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"}) {
    NonNegative(Int(spec, key, P("spec", key)), P("spec", key));
  }
  const Json* jt = Obj(spec, "jobTemplate", "spec.jobTemplate");
  const Json* jmeta = jt ? Obj(*jt, "metadata", "spec.jobTemplate.metadata") : nullptr;
  if (jmeta) {
    Labels(StrMap(*jmeta, "labels", "spec.jobTemplate.metadata.labels"),
           "spec.jobTemplate.metadata.labels");
    Annotations(StrMap(*jmeta, "annotations", "spec.jobTemplate.metadata.annotations"),
                "spec.jobTemplate.metadata.annotations");
  }
  JobSpec(jt ? Obj(*jt, "spec", "spec.jobTemplate.spec") : nullptr, "spec.jobTemplate.spec", true);
}

// validateTimeZone and the TZ checks of validateScheduleFormat (batch
// validation): a zone from the IANA database, never "Local"; no TZ= /
// CRON_TZ= prefix in a new schedule, nor beside a timeZone.
void Validator::TimeZone(const Json& spec, const std::string& schedule, bool allow_tz_in_schedule) {
  bool tz_in_schedule = schedule.find("TZ") != std::string::npos;
  if (allow_tz_in_schedule && tz_in_schedule && Get(spec, "timeZone")) {
    errs.Invalid("spec.schedule", Q(schedule),
                 "cannot use both timeZone field and TZ or CRON_TZ in schedule");
  } else if (!allow_tz_in_schedule && tz_in_schedule) {
    errs.Invalid("spec.schedule", Q(schedule),
                 "cannot use TZ or CRON_TZ in schedule, use timeZone field instead");
  }
  if (!Get(spec, "timeZone")) return;
  std::string zone = Str(spec, "timeZone", "spec.timeZone");
  if (zone.empty()) {
    errs.Invalid("spec.timeZone", Q(zone), "timeZone must be nil or non-empty string");
    return;
  }
  // validTimeZoneCharacters: ^[A-Za-z\.\-_0-9+]{1,14}$ per path element.
  auto valid_part = [](const std::string& part) {
    if (part.empty() || part.size() > 14) return false;
    return std::all_of(part.begin(), part.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_' ||
             c == '+';
    });
  };
  for (const auto& part : Split(zone, '/')) {
    if (part == "." || part == ".." || (!part.empty() && part[0] == '-') || !valid_part(part)) {
      errs.Invalid("spec.timeZone", Q(zone), "unknown time zone " + zone);
      return;
    }
  }
  if (ToLower(zone) == "local") {
    errs.Invalid("spec.timeZone", Q(zone),
                 "timeZone must be an explicit time zone as defined in "
                 "https://www.iana.org/time-zones");
    return;
  }
  // time.LoadLocation: "UTC" is built in, every other zone is a tzdata file.
  std::error_code ec;
  if (zone != "UTC" &&
      !std::filesystem::is_regular_file(std::filesystem::path("/usr/share/zoneinfo") / zone, ec)) {
    errs.Invalid("spec.timeZone", Q(zone), "unknown time zone " + zone);
  }
}

// ---------------------------------------------------------------------------
// core/v1 ReplicationController, apps/v1 ControllerRevision.

void Validator::ReplicationController(const Json& obj) {
  ObjectMeta(obj, NameRule::kSubdomain, kNamespaced);
  const Json* sp = Obj(obj, "spec", "spec");
  const Json& spec = sp ? *sp : EmptyObject();
  NonNegative(Int(spec, "minReadySeconds", "spec.minReadySeconds"), "spec.minReadySeconds");
  auto selector = StrMap(spec, "selector", "spec.selector");
  if (!selector || selector->empty()) errs.Required("spec.selector");
  NonNegative(Int(spec, "replicas", "spec.replicas"), "spec.replicas");
  const Json* tmpl = Obj(spec, "template", "spec.template");
  if (!tmpl) {
    errs.Required("spec.template");
    return;
  }
  if (selector && !selector->empty()) {
    const Json* meta = Obj(*tmpl, "metadata", "spec.template.metadata");
    auto labels = meta ? StrMap(*meta, "labels", "spec.template.metadata.labels") : std::nullopt;
    bool matches = true;
    for (const auto& [k, v] : *selector) {
      if (!labels || !labels->count(k) || labels->at(k) != v) matches = false;
    }
    if (!matches) {
      errs.Invalid("spec.template.metadata.labels", GoStringMap(labels ? &*labels : nullptr),
                   "`selector` does not match template `labels`");
    }
  }
  PodTemplate(tmpl, "spec.template");
  const Json* tspec = Get(*tmpl, "spec");
  const Json& ts = tspec && tspec->is_object() ? *tspec : EmptyObject();
  std::string restart = Str(ts, "restartPolicy", "spec.template.spec.restartPolicy");
  if (restart != "Always") {
    errs.NotSupported("spec.template.spec.restartPolicy", Q(restart), {"Always"});
  }
  if (Get(ts, "activeDeadlineSeconds")) {
    errs.Forbidden("spec.template.spec.activeDeadlineSeconds",
                   "activeDeadlineSeconds in ReplicationController is not Supported");
  }
}

void Validator::ControllerRevision(const Json& obj, const Json* old) {
  ObjectMeta(obj, NameRule::kSubdomain, kNamespaced);
  if (!Get(obj, "data")) errs.Required("data", "data is mandatory");
  NonNegative(Int(obj, "revision", "revision"), "revision");
  // ValidateControllerRevisionUpdate: data is immutable.
  if (old && Get(obj, "data") && Get(*old, "data") && obj["data"] != (*old)["data"]) {
    errs.Invalid("data", "runtime.RawExtension{...}", "field is immutable");
  }
}

// ---------------------------------------------------------------------------
// policy/v1 PodDisruptionBudget (ValidatePodDisruptionBudgetSpec).

void Validator::PdbIntOrPercent(const Json& spec, std::string_view key, const std::string& path) {
  auto v = IntOrString(spec, key, path);
  if (!v) return;
  if (v->is_int) {
    NonNegative(v->i, path);
    return;
  }
  for (auto& m : IsValidPercent(v->s)) errs.Invalid(path, v->Render(), m);
  if (IsValidPercent(v->s).empty() && IntOrPercentValue(*v) > 100) {
    errs.Invalid(path, v->Render(), "must not be greater than 100%");
  }
}

void Validator::PodDisruptionBudget(const Json& obj) {
  ObjectMeta(obj, NameRule::kSubdomain, kNamespaced);
  const Json* sp = Obj(obj, "spec", "spec");
  const Json& spec = sp ? *sp : EmptyObject();
  const Json* min = Get(spec, "minAvailable");
  const Json* max = Get(spec, "maxUnavailable");
  if (min && max) {
    // field.Invalid(fldPath, spec, ...): Go prints the struct with %#v.
    auto ptr = [](const Json* v, const char* type) {
      return std::string("(*") + type + ")(" + (v ? "0xc000000000" : "nil") + ")";
    };
    errs.Invalid(
        "spec",
        "policy.PodDisruptionBudgetSpec{MinAvailable:" + ptr(min, "intstr.IntOrString") +
            ", Selector:" + ptr(Get(spec, "selector"), "v1.LabelSelector") +
            ", MaxUnavailable:" + ptr(max, "intstr.IntOrString") + ", UnhealthyPodEvictionPolicy:" +
            ptr(Get(spec, "unhealthyPodEvictionPolicy"), "policy.UnhealthyPodEvictionPolicyType") +
            "}",
        "minAvailable and maxUnavailable cannot be both set");
  }
  PdbIntOrPercent(spec, "minAvailable", "spec.minAvailable");
  PdbIntOrPercent(spec, "maxUnavailable", "spec.maxUnavailable");
  const Json* selector = Obj(spec, "selector", "spec.selector");
  if (selector) LabelSelector(selector, "spec.selector");
  if (Get(spec, "unhealthyPodEvictionPolicy")) {
    std::string policy = Str(spec, "unhealthyPodEvictionPolicy", "spec.unhealthyPodEvictionPolicy");
    if (policy != "IfHealthyBudget" && policy != "AlwaysAllow") {
      errs.NotSupported("spec.unhealthyPodEvictionPolicy", Q(policy),
                        {"AlwaysAllow", "IfHealthyBudget"});
    }
  }
}

// ---------------------------------------------------------------------------
// networking.k8s.io/v1, discovery.k8s.io/v1, coordination.k8s.io/v1.

void Validator::IngressBackend(const Json& backend, const std::string& path) {
  const Json* resource = Obj(backend, "resource", P(path, "resource"));
  const Json* service = Obj(backend, "service", P(path, "service"));
  if (resource && service) {
    errs.Invalid(path, Q(""), "cannot set both resource and service backends");
    return;
  }
  if (resource) {
    std::string rp = P(path, "resource");
    if (Str(*resource, "kind", P(rp, "kind")).empty()) errs.Required(P(rp, "kind"));
    if (Str(*resource, "name", P(rp, "name")).empty()) errs.Required(P(rp, "name"));
    return;
  }
  if (!service) {
    errs.Invalid(path, Q(""), "resource or service backend is required");
    return;
  }
  std::string np = P(path, "service.name");
  std::string name = Str(*service, "name", np);
  if (name.empty()) {
    errs.Required(np);
  } else {
    for (auto& m : IsDNS1035Label(name)) errs.Invalid(np, Q(name), m);
  }
  const Json* port = Obj(*service, "port", P(path, "service.port"));
  std::string port_name = port ? Str(*port, "name", P(path, "service.port.name")) : "";
  int64_t number = port ? Int(*port, "number", P(path, "service.port.number")).value_or(0) : 0;
  if (!port_name.empty() && number != 0) {
    errs.Invalid(path, Q(""), "cannot set both port name & port number");
  } else if (!port_name.empty()) {
    for (auto& m : IsValidPortName(port_name)) {
      errs.Invalid(P(path, "service.port.name"), Q(port_name), m);
    }
  } else if (number != 0) {
    for (auto& m : IsValidPortNum(number))
      errs.Invalid(P(path, "service.port.number"), N(number), m);
  } else {
    errs.Required(path, "port name or number is required");
  }
}

void Validator::Ingress(const Json& obj) {
  ObjectMeta(obj, NameRule::kSubdomain, kNamespaced);
  const Json* sp = Obj(obj, "spec", "spec");
  const Json& spec = sp ? *sp : EmptyObject();
  const Json* rules = Arr(spec, "rules", "spec.rules");
  const Json* default_backend = Obj(spec, "defaultBackend", "spec.defaultBackend");
  if ((!rules || rules->empty()) && !default_backend) {
    errs.Invalid("spec", "[]networking.IngressRule(nil)",
                 "either `defaultBackend` or `rules` must be specified");
  }
  if (default_backend) IngressBackend(*default_backend, "spec.defaultBackend");
  if (rules) {
    for (size_t i = 0; i < rules->size(); ++i) {
      std::string rp = I("spec.rules", i);
      const Json& rule = Elem(*rules, i, rp);
      std::string host = Str(rule, "host", P(rp, "host"));
      if (!host.empty()) {
        if (ParseIp(host)) {
          errs.Invalid(P(rp, "host"), Q(host), "must be a DNS name, not an IP address");
        }
        auto msgs = host.find('*') != std::string::npos ? IsWildcardDNS1123Subdomain(host)
                                                        : IsDNS1123Subdomain(host);
        for (auto& m : msgs) errs.Invalid(P(rp, "host"), Q(host), m);
      }
      const Json* http = Obj(rule, "http", P(rp, "http"));
      if (!http) continue;
      std::string hp = P(rp, "http");
      const Json* paths = Arr(*http, "paths", P(hp, "paths"));
      if (!paths || paths->empty()) errs.Required(P(hp, "paths"));
      if (!paths) continue;
      for (size_t j = 0; j < paths->size(); ++j) {
        std::string pp = I(P(hp, "paths"), j);
        const Json& path = Elem(*paths, j, pp);
        std::string p = Str(path, "path", P(pp, "path"));
        if (!Get(path, "pathType")) {
          errs.Required(P(pp, "pathType"), "pathType must be specified");
          continue;
        }
        std::string type = Str(path, "pathType", P(pp, "pathType"));
        if (type == "Exact" || type == "Prefix") {
          if (p.empty() || p[0] != '/')
            errs.Invalid(P(pp, "path"), Q(p), "must be an absolute path");
          if (!p.empty()) {
            for (const char* seq : {"//", "/./", "/../", "%2f", "%2F"}) {
              if (p.find(seq) != std::string::npos) {
                errs.Invalid(P(pp, "path"), Q(p), std::string("must not contain '") + seq + "'");
              }
            }
            for (const char* suffix : {"/..", "/."}) {
              std::string_view s = suffix;
              if (p.size() >= s.size() && p.compare(p.size() - s.size(), s.size(), s) == 0) {
                errs.Invalid(P(pp, "path"), Q(p), std::string("cannot end with '") + suffix + "'");
              }
            }
          }
        } else if (type == "ImplementationSpecific") {
          if (!p.empty() && p[0] != '/')
            errs.Invalid(P(pp, "path"), Q(p), "must be an absolute path");
        } else {
          errs.NotSupported(P(pp, "pathType"), Q(type),
                            {"Exact", "ImplementationSpecific", "Prefix"});
        }
        const Json* backend = Obj(path, "backend", P(pp, "backend"));
        IngressBackend(backend ? *backend : EmptyObject(), P(pp, "backend"));
      }
    }
  }
  if (const Json* tls = Arr(spec, "tls", "spec.tls")) {
    for (size_t i = 0; i < tls->size(); ++i) {
      std::string tp = I("spec.tls", i);
      const Json& t = Elem(*tls, i, tp);
      if (auto hosts = StrList(t, "hosts", P(tp, "hosts"))) {
        for (size_t j = 0; j < hosts->size(); ++j) {
          const std::string& h = (*hosts)[j];
          auto msgs = h.find('*') != std::string::npos ? IsWildcardDNS1123Subdomain(h)
                                                       : IsDNS1123Subdomain(h);
          for (auto& m : msgs) errs.Invalid(I(P(tp, "hosts"), j), Q(h), m);
        }
      }
      std::string secret = Str(t, "secretName", P(tp, "secretName"));
      if (!secret.empty()) Dns1123Subdomain(secret, P(tp, "secretName"));
    }
  }
  if (Get(spec, "ingressClassName")) {
    Dns1123Subdomain(Str(spec, "ingressClassName", "spec.ingressClassName"),
                     "spec.ingressClassName");
  }
}

// scheduling/v1 PriorityClass (ValidatePriorityClass and its Update).
void Validator::PriorityClass(const Json& obj, const Json* old) {
  ObjectMeta(obj, NameRule::kSubdomain, kClusterScoped);
  const std::string name = obj["metadata"].value("name", "");
  const int64_t value = Int(obj, "value", "value").value_or(0);
  const bool global_default = Bool(obj, "globalDefault", "globalDefault").value_or(false);
  if (name.rfind("system-", 0) == 0) {
    // IsKnownSystemPriorityClass: a reserved name, with its value, and not
    // the global default.
    std::string why;
    const int64_t want = name == "system-node-critical"      ? 2000001000
                         : name == "system-cluster-critical" ? 2000000000
                                                             : -1;
    if (want < 0) {
      why = name + " is not a known system priority class";
    } else if (value != want) {
      why = "value of " + name + " PriorityClass must be " + std::to_string(want);
    } else if (global_default) {
      why = name + " cannot be marked as global default";
    }
    if (!why.empty()) {
      errs.Forbidden("metadata.name",
                     "priority class names with 'system-' prefix are reserved for system use "
                     "only. error: " + why);
    }
  } else if (value > 1000000000) {
    errs.Forbidden("value", "maximum allowed value of a user defined priority is 1000000000");
  }
  if (Get(obj, "preemptionPolicy")) {
    std::string pp = Str(obj, "preemptionPolicy", "preemptionPolicy");
    if (pp.empty()) {
      errs.Required("preemptionPolicy");
    } else if (pp != "PreemptLowerPriority" && pp != "Never") {
      errs.NotSupported("preemptionPolicy", Q(pp), {"Never", "PreemptLowerPriority"});
    }
  }
  if (old != nullptr) {
    if (value != old->value("value", int64_t{0})) {
      errs.Forbidden("value", "may not be changed in an update.");
    }
    if (obj.value("preemptionPolicy", Json()) != old->value("preemptionPolicy", Json())) {
      errs.Invalid("preemptionPolicy", Q(obj.value("preemptionPolicy", "")), "field is immutable");
    }
  }
}

void Validator::IngressClass(const Json& obj) {
  ObjectMeta(obj, NameRule::kSubdomain, kClusterScoped);
  const Json* sp = Obj(obj, "spec", "spec");
  const Json& spec = sp ? *sp : EmptyObject();
  std::string controller = Str(spec, "controller", "spec.controller");
  if (controller.size() > 250) errs.TooLong("spec.controller", 250);
  size_t slash = controller.find('/');
  if (controller.empty()) {
    errs.Required("spec.controller");
  } else if (slash == std::string::npos || slash == 0 || slash + 1 == controller.size()) {
    errs.Invalid("spec.controller", Q(controller),
                 "must be a domain-prefixed path (such as \"acme.io/foo\")");
  } else {
    std::string host = controller.substr(0, slash);
    std::string path = controller.substr(slash + 1);
    for (auto& m : IsDNS1123Subdomain(host)) errs.Invalid("spec.controller", Q(host), m);
    static constexpr std::string_view kPathChars =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/-._~%!$&'()*+,;=:";
    if (!std::all_of(path.begin(), path.end(),
                     [](char c) { return kPathChars.find(c) != std::string_view::npos; })) {
      errs.Invalid("spec.controller", Q(path),
                   RegexError("Invalid path", "[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+", {}));
    }
  }
}

void Validator::NetworkPolicy(const Json& obj) {
  ObjectMeta(obj, NameRule::kSubdomain, kNamespaced);
  const Json* sp = Obj(obj, "spec", "spec");
  const Json& spec = sp ? *sp : EmptyObject();
  LabelSelector(Obj(spec, "podSelector", "spec.podSelector"), "spec.podSelector");
  for (auto [dir, peers] : {std::pair{"ingress", "from"}, std::pair{"egress", "to"}}) {
    const Json* rules = Arr(spec, dir, P("spec", dir));
    if (!rules) continue;
    for (size_t i = 0; i < rules->size(); ++i) {
      std::string rp = I(P("spec", dir), i);
      const Json& rule = Elem(*rules, i, rp);
      if (const Json* ports = Arr(rule, "ports", P(rp, "ports"))) {
        for (size_t j = 0; j < ports->size(); ++j) {
          std::string pp = I(P(rp, "ports"), j);
          const Json& port = Elem(*ports, j, pp);
          if (Get(port, "protocol")) {
            std::string protocol = Str(port, "protocol", P(pp, "protocol"));
            if (protocol != "TCP" && protocol != "UDP" && protocol != "SCTP") {
              errs.NotSupported(P(pp, "protocol"), Q(protocol), {"TCP", "UDP", "SCTP"});
            }
          }
          auto number = IntOrString(port, "port", P(pp, "port"));
          auto end_port = Int(port, "endPort", P(pp, "endPort"));
          if (number && number->is_int) {
            for (auto& m : IsValidPortNum(number->i)) errs.Invalid(P(pp, "port"), N(number->i), m);
            if (end_port) {
              if (*end_port < number->i) {
                errs.Invalid(P(pp, "endPort"), N(number->i),
                             "must be greater than or equal to `port`");
              }
              for (auto& m : IsValidPortNum(*end_port))
                errs.Invalid(P(pp, "endPort"), N(*end_port), m);
            }
          } else if (number) {
            if (end_port) {
              errs.Invalid(P(pp, "endPort"), N(*end_port),
                           "may not be specified when `port` is non-numeric");
            }
            for (auto& m : IsValidPortName(number->s)) errs.Invalid(P(pp, "port"), Q(number->s), m);
          } else if (end_port) {
            errs.Invalid(P(pp, "endPort"), N(*end_port),
                         "may not be specified when `port` is not specified");
          }
        }
      }
      if (const Json* list = Arr(rule, peers, P(rp, peers))) {
        for (size_t j = 0; j < list->size(); ++j) {
          std::string pp = I(P(rp, peers), j);
          const Json& peer = Elem(*list, j, pp);
          int n = 0;
          for (const char* sel : {"podSelector", "namespaceSelector"}) {
            if (const Json* s = Obj(peer, sel, P(pp, sel))) {
              ++n;
              LabelSelector(s, P(pp, sel));
            }
          }
          const Json* block = Obj(peer, "ipBlock", P(pp, "ipBlock"));
          if (block) {
            ++n;
            std::string bp = P(pp, "ipBlock");
            std::string cidr = Str(*block, "cidr", P(bp, "cidr"));
            Ip net;
            int prefix = 0;
            if (cidr.empty()) {
              errs.Required(P(bp, "cidr"));
            } else if (!ParseCidr(cidr, &net, &prefix)) {
              for (auto& m : IsValidCIDRMsgs(cidr)) errs.Invalid(P(bp, "cidr"), Q(cidr), m);
            } else if (auto except = StrList(*block, "except", P(bp, "except"))) {
              for (size_t k = 0; k < except->size(); ++k) {
                const std::string& e = (*except)[k];
                std::string ep = I(P(bp, "except"), k);
                Ip eip;
                int eprefix = 0;
                if (!ParseCidr(e, &eip, &eprefix)) {
                  for (auto& m : IsValidCIDRMsgs(e)) errs.Invalid(ep, Q(e), m);
                } else if (!CidrContains(net, prefix, eip) || prefix >= eprefix) {
                  errs.Invalid(ep, Q(e), "must be a strict subset of `cidr`");
                }
              }
            }
          }
          if (n == 0) {
            errs.Required(pp, "must specify a peer");
          } else if (n > 1 && block) {
            errs.Forbidden(pp, "may not specify both ipBlock and another peer");
          }
        }
      }
    }
  }
  if (auto types = StrList(spec, "policyTypes", "spec.policyTypes")) {
    if (types->size() > 2) {
      errs.Invalid("spec.policyTypes", GoStringSlice(&*types),
                   "may not specify more than two policyTypes");
    } else {
      for (size_t i = 0; i < types->size(); ++i) {
        if ((*types)[i] != "Ingress" && (*types)[i] != "Egress") {
          errs.NotSupported(I("spec.policyTypes", i), Q((*types)[i]), {"Ingress", "Egress"});
        }
      }
    }
  }
}

void Validator::EndpointSlice(const Json& obj, const Json* old) {
  ObjectMeta(obj, NameRule::kSubdomain, kNamespaced);
  std::string type = Str(obj, "addressType", "addressType");
  if (const Json* endpoints = Arr(obj, "endpoints", "endpoints")) {
    if (endpoints->size() > 1000)
      errs.TooMany("endpoints", static_cast<int64_t>(endpoints->size()), 1000);
    for (size_t i = 0; i < endpoints->size(); ++i) {
      std::string ep = I("endpoints", i);
      const Json& e = Elem(*endpoints, i, ep);
      auto addresses = StrList(e, "addresses", P(ep, "addresses"));
      if (!addresses || addresses->empty()) {
        errs.Required(P(ep, "addresses"), "must contain at least 1 address");
      } else if (addresses->size() > 100) {
        errs.TooMany(P(ep, "addresses"), static_cast<int64_t>(addresses->size()), 100);
      }
      for (size_t j = 0; addresses && j < addresses->size(); ++j) {
        const std::string& a = (*addresses)[j];
        std::string ap = I(P(ep, "addresses"), j);
        if (type == "IPv4" || type == "IPv6") {
          auto ip = ParseIp(a);
          if (!ip || ip->v6 != (type == "IPv6")) {
            errs.Invalid(
                ap, Q(a),
                type == "IPv4" ? "must be a valid IPv4 address" : "must be a valid IPv6 address");
          }
        } else if (type == "FQDN") {
          std::string name = a;
          if (!name.empty() && name.back() == '.') name.pop_back();
          auto msgs = IsDNS1123Subdomain(name);
          if (a.empty()) {
            errs.Required(ap);
          } else if (!msgs.empty()) {
            errs.Invalid(ap, Q(name), Join(msgs, ","));
          } else if (Split(name, '.').size() < 2) {
            errs.Invalid(ap, Q(name),
                         "should be a domain with at least two segments separated by dots");
          }
        }
      }
      if (Get(e, "nodeName"))
        Dns1123Subdomain(Str(e, "nodeName", P(ep, "nodeName")), P(ep, "nodeName"));
      if (Get(e, "hostname"))
        Dns1123Label(Str(e, "hostname", P(ep, "hostname")), P(ep, "hostname"));
    }
  }
  if (const Json* ports = Arr(obj, "ports", "ports")) {
    if (ports->size() > 20000) errs.TooMany("ports", static_cast<int64_t>(ports->size()), 20000);
    std::set<std::string> names;
    for (size_t i = 0; i < ports->size(); ++i) {
      std::string pp = I("ports", i);
      const Json& port = Elem(*ports, i, pp);
      std::string name = Str(port, "name", P(pp, "name"));
      if (!name.empty()) Dns1123Label(name, P(pp, "name"));
      if (!names.insert(name).second) errs.Duplicate(P(pp, "name"), Q(name));
      if (!Get(port, "protocol")) {
        errs.Required(P(pp, "protocol"));
      } else {
        std::string protocol = Str(port, "protocol", P(pp, "protocol"));
        if (std::find(kProtocols.begin(), kProtocols.end(), protocol) == kProtocols.end()) {
          errs.NotSupported(P(pp, "protocol"), Q(protocol), kProtocols);
        }
      }
      if (auto number = Int(port, "port", P(pp, "port"))) {
        for (auto& m : IsValidPortNum(*number)) errs.Invalid(P(pp, "port"), N(*number), m);
      }
      if (Get(port, "appProtocol")) {
        QualifiedName(Str(port, "appProtocol", P(pp, "appProtocol")), P(pp, "appProtocol"));
      }
    }
  }
  if (type.empty()) {
    errs.Required("addressType");
  } else if (type != "IPv4" && type != "IPv6" && type != "FQDN") {
    errs.NotSupported("addressType", Q(type), {"FQDN", "IPv4", "IPv6"});
  }
  if (old) {
    std::string old_type = StringAt(*old, "addressType");
    if (old_type != type) errs.Invalid("addressType", Q(type), "field is immutable");
  }
}

void Validator::Lease(const Json& obj) {
  ObjectMeta(obj, NameRule::kSubdomain, kNamespaced);
  const Json* sp = Obj(obj, "spec", "spec");
  if (!sp) return;
  auto duration = Int(*sp, "leaseDurationSeconds", "spec.leaseDurationSeconds");
  if (duration && *duration <= 0) {
    errs.Invalid("spec.leaseDurationSeconds", N(*duration), "must be greater than 0");
  }
  NonNegative(Int(*sp, "leaseTransitions", "spec.leaseTransitions"), "spec.leaseTransitions");
}

// pkg/apis/rbac/validation: rules, role references and subjects.
void Validator::PolicyRules(const Json& obj, bool namespaced) {
  const Json* rules = Arr(obj, "rules", "rules");
  if (!rules) return;
  for (size_t i = 0; i < rules->size(); ++i) {
    const std::string path = I("rules", i);
    const Json& r = Elem(*rules, i, path);
    auto verbs = StrList(r, "verbs", P(path, "verbs"));
    auto urls = StrList(r, "nonResourceURLs", P(path, "nonResourceURLs"));
    auto groups = StrList(r, "apiGroups", P(path, "apiGroups"));
    auto resources = StrList(r, "resources", P(path, "resources"));
    auto names = StrList(r, "resourceNames", P(path, "resourceNames"));
    if (!verbs || verbs->empty()) {
      errs.Required(P(path, "verbs"), "verbs must contain at least one value");
    }
    if (urls && !urls->empty()) {
      std::string value = "[]string{";
      for (size_t j = 0; j < urls->size(); ++j) value += (j ? ", " : "") + GoQuote((*urls)[j]);
      value += "}";
      if (namespaced) {
        errs.Invalid(P(path, "nonResourceURLs"), value,
                     "namespaced rules cannot apply to non-resource URLs");
      }
      if ((groups && !groups->empty()) || (resources && !resources->empty()) ||
          (names && !names->empty())) {
        errs.Invalid(P(path, "nonResourceURLs"), value,
                     "rules cannot apply to both regular resources and non-resource URLs");
      }
      continue;
    }
    if (!groups || groups->empty()) {
      errs.Required(P(path, "apiGroups"), "resource rules must supply at least one api group");
    }
    if (!resources || resources->empty()) {
      errs.Required(P(path, "resources"), "resource rules must supply at least one resource");
    }
  }
}

void Validator::ClusterRole(const Json& obj) {
  ObjectMeta(obj, NameRule::kPathSegment, kClusterScoped);
  PolicyRules(obj, false);
  if (const Json* agg = Obj(obj, "aggregationRule", "aggregationRule")) {
    const Json* sels = Arr(*agg, "clusterRoleSelectors", "aggregationRule.clusterRoleSelectors");
    if (!sels || sels->empty()) {
      errs.Required("aggregationRule.clusterRoleSelectors",
                    "at least one clusterRoleSelector required if aggregationRule is non-nil");
    } else {
      for (size_t i = 0; i < sels->size(); ++i) {
        LabelSelector(&(*sels)[i], I("aggregationRule.clusterRoleSelectors", i));
      }
    }
  }
}

void Validator::RoleBinding(const Json& obj, const Json* old, bool cluster) {
  static const std::string kGroup = "rbac.authorization.k8s.io";
  ObjectMeta(obj, NameRule::kPathSegment, cluster ? kClusterScoped : kNamespaced);
  const Json* ref = Obj(obj, "roleRef", "roleRef");
  const Json& rr = ref ? *ref : EmptyObject();
  std::string api_group = Str(rr, "apiGroup", "roleRef.apiGroup");
  std::string kind = Str(rr, "kind", "roleRef.kind");
  std::string name = Str(rr, "name", "roleRef.name");
  if (api_group != kGroup) errs.NotSupported("roleRef.apiGroup", Q(api_group), {kGroup});
  if (cluster && kind != "ClusterRole") {
    errs.NotSupported("roleRef.kind", Q(kind), {"ClusterRole"});
  } else if (!cluster && kind != "Role" && kind != "ClusterRole") {
    errs.NotSupported("roleRef.kind", Q(kind), {"Role", "ClusterRole"});
  }
  if (name.empty()) {
    errs.Required("roleRef.name");
  } else {
    for (auto& msg : CheckName(NameRule::kPathSegment, name, false)) {
      errs.Invalid("roleRef.name", Q(name), msg);
    }
  }
  if (const Json* subjects = Arr(obj, "subjects", "subjects")) {
    for (size_t i = 0; i < subjects->size(); ++i) {
      const std::string path = I("subjects", i);
      const Json& s = Elem(*subjects, i, path);
      std::string skind = Str(s, "kind", P(path, "kind"));
      std::string sname = Str(s, "name", P(path, "name"));
      std::string sgroup = Str(s, "apiGroup", P(path, "apiGroup"));
      std::string sns = Str(s, "namespace", P(path, "namespace"));
      if (sname.empty()) errs.Required(P(path, "name"));
      if (skind == "ServiceAccount") {
        if (!sname.empty()) {
          for (auto& msg : CheckName(NameRule::kSubdomain, sname, false)) {
            errs.Invalid(P(path, "name"), Q(sname), msg);
          }
        }
        if (!sgroup.empty()) errs.NotSupported(P(path, "apiGroup"), Q(sgroup), {""});
        if (cluster && sns.empty()) errs.Required(P(path, "namespace"));
      } else if (skind == "User" || skind == "Group") {
        if (sgroup != kGroup) errs.NotSupported(P(path, "apiGroup"), Q(sgroup), {kGroup});
      } else {
        errs.NotSupported(P(path, "kind"), Q(skind), {"ServiceAccount", "User", "Group"});
      }
    }
  }
  // The role a binding grants never changes: delete and recreate it.
  if (old) {
    const Json* oref = Obj(*old, "roleRef", "roleRef");
    const Json& orr = oref ? *oref : EmptyObject();
    if (Str(orr, "apiGroup", "roleRef.apiGroup") != api_group ||
        Str(orr, "kind", "roleRef.kind") != kind || Str(orr, "name", "roleRef.name") != name) {
      errs.Invalid("roleRef",
                   "rbac.RoleRef{APIGroup:" + GoQuote(api_group) + ", Kind:" + GoQuote(kind) +
                       ", Name:" + GoQuote(name) + "}",
                   "cannot change roleRef");
    }
  }
}

// ---------------------------------------------------------------------------
// admissionregistration.k8s.io/v1 (pkg/apis/admissionregistration/validation
// and apiserver/pkg/util/webhook), for create; an update is held to the same
// rules (upstream relaxes some only for configurations stored before them).

void Validator::WebhookConfiguration(const Json& obj, bool mutating) {
  ObjectMeta(obj, NameRule::kSubdomain, kClusterScoped);
  const Json* hooks = Arr(obj, "webhooks", "webhooks");
  if (!hooks) return;
  std::set<std::string> names;
  for (size_t i = 0; i < hooks->size(); ++i) {
    std::string path = I("webhooks", i);
    const Json& hook = Elem(*hooks, i, path);
    Webhook(hook, mutating, path);
    // validateAdmissionReviewVersions: v1 must be among them.
    std::string vpath = P(path, "admissionReviewVersions");
    auto versions = StrList(hook, "admissionReviewVersions", vpath);
    if (!versions || versions->empty()) {
      errs.Required(vpath, "must specify one of v1, v1beta1");
    } else {
      std::set<std::string> seen;
      bool accepted = false;
      for (size_t j = 0; j < versions->size(); ++j) {
        const std::string& v = (*versions)[j];
        if (!seen.insert(v).second) {
          errs.Invalid(I(vpath, j), Q(v), "duplicate version");
          continue;
        }
        for (auto& m : IsDNS1035Label(v)) errs.Invalid(I(vpath, j), Q(v), m);
        if (v == "v1" || v == "v1beta1") accepted = true;
      }
      if (!accepted) {
        errs.Invalid(vpath, GoStringSlice(&*versions), "must include at least one of v1, v1beta1");
      }
    }
    std::string name = Str(hook, "name", P(path, "name"));
    if (!name.empty() && !names.insert(name).second) errs.Duplicate(P(path, "name"), Q(name));
  }
}

void Validator::Webhook(const Json& hook, bool mutating, const std::string& path) {
  // utilvalidation.IsFullyQualifiedName.
  std::string name = Str(hook, "name", P(path, "name"));
  if (name.empty()) {
    errs.Required(P(path, "name"));
  } else if (auto e = IsDNS1123Subdomain(name); !e.empty()) {
    errs.Invalid(P(path, "name"), Q(name), Join(e, ","));
  } else if (Split(name, '.').size() < 3) {
    errs.Invalid(P(path, "name"), Q(name),
                 "should be a domain with at least three segments separated by dots");
  }
  if (const Json* rules = Arr(hook, "rules", P(path, "rules"))) {
    for (size_t i = 0; i < rules->size(); ++i) {
      std::string rp = I(P(path, "rules"), i);
      WebhookRule(Elem(*rules, i, rp), rp);
    }
  }
  auto one_of = [&](const char* key, const std::vector<std::string>& valid) {
    std::string v = Str(hook, key, P(path, key));
    if (Get(hook, key) && std::find(valid.begin(), valid.end(), v) == valid.end()) {
      errs.NotSupported(P(path, key), Q(v), valid);
    }
  };
  one_of("failurePolicy", {"Fail", "Ignore"});
  one_of("matchPolicy", {"Equivalent", "Exact"});
  if (!Get(hook, "sideEffects")) {
    errs.Required(P(path, "sideEffects"), "must specify one of None, NoneOnDryRun");
  } else {
    one_of("sideEffects", {"None", "NoneOnDryRun"});
  }
  if (auto t = Int(hook, "timeoutSeconds", P(path, "timeoutSeconds")); t && (*t > 30 || *t < 1)) {
    errs.Invalid(P(path, "timeoutSeconds"), N(*t),
                 "the timeout value must be between 1 and 30 seconds");
  }
  LabelSelector(Obj(hook, "namespaceSelector", P(path, "namespaceSelector")),
                P(path, "namespaceSelector"));
  LabelSelector(Obj(hook, "objectSelector", P(path, "objectSelector")), P(path, "objectSelector"));
  if (mutating) one_of("reinvocationPolicy", {"IfNeeded", "Never"});
  const Json* cc = Obj(hook, "clientConfig", P(path, "clientConfig"));
  const Json* url = cc ? Get(*cc, "url") : nullptr;
  const Json* svc = cc ? Obj(*cc, "service", P(path, "clientConfig.service")) : nullptr;
  if ((url == nullptr) == (svc == nullptr)) {
    errs.Required(P(path, "clientConfig"), "exactly one of url or service is required");
  } else if (url) {
    WebhookUrl(Str(*cc, "url", P(path, "clientConfig.url")), P(path, "clientConfig.url"));
  } else {
    WebhookService(*svc, P(path, "clientConfig.service"));
  }
}

void Validator::WebhookRule(const Json& rule, const std::string& path) {
  auto list = [&](const char* key) {
    auto v = StrList(rule, key, P(path, key));
    return v ? *v : std::vector<std::string>{};
  };
  auto has_star = [](const std::vector<std::string>& v) {
    return std::find(v.begin(), v.end(), "*") != v.end();
  };
  std::vector<std::string> ops = list("operations");
  if (ops.empty()) errs.Required(P(path, "operations"));
  if (ops.size() > 1 && has_star(ops)) {
    errs.Invalid(P(path, "operations"), GoStringSlice(&ops),
                 "if '*' is present, must not specify other operations");
  }
  for (size_t i = 0; i < ops.size(); ++i) {
    static const std::vector<std::string> kOps = {"*", "CONNECT", "CREATE", "DELETE", "UPDATE"};
    if (std::find(kOps.begin(), kOps.end(), ops[i]) == kOps.end()) {
      errs.NotSupported(I(P(path, "operations"), i), Q(ops[i]), kOps);
    }
  }
  std::vector<std::string> groups = list("apiGroups");
  if (groups.empty()) errs.Required(P(path, "apiGroups"));
  if (groups.size() > 1 && has_star(groups)) {
    errs.Invalid(P(path, "apiGroups"), GoStringSlice(&groups),
                 "if '*' is present, must not specify other API groups");
  }
  std::vector<std::string> versions = list("apiVersions");
  if (versions.empty()) errs.Required(P(path, "apiVersions"));
  if (versions.size() > 1 && has_star(versions)) {
    errs.Invalid(P(path, "apiVersions"), GoStringSlice(&versions),
                 "if '*' is present, must not specify other API versions");
  }
  for (size_t i = 0; i < versions.size(); ++i) {
    if (versions[i].empty()) errs.Required(I(P(path, "apiVersions"), i));
  }
  // validateResources.
  std::string rpath = P(path, "resources");
  std::vector<std::string> resources = list("resources");
  if (resources.empty()) errs.Required(rpath);
  std::set<std::string> res_with_star_sub, sub_with_star_res;
  bool double_star = false, single_star = false, plain = false;
  for (size_t i = 0; i < resources.size(); ++i) {
    const std::string& rs = resources[i];
    if (rs.empty()) {
      errs.Required(I(rpath, i));
      continue;
    }
    if (rs == "*/*") double_star = true;
    if (rs == "*") single_star = true;
    size_t slash = rs.find('/');
    if (slash == std::string::npos) {
      plain = rs != "*";
      continue;
    }
    std::string res = rs.substr(0, slash), sub = rs.substr(slash + 1);
    if (res_with_star_sub.count(res)) {
      errs.Invalid(I(rpath, i), Q(rs), "if '" + res + "/*' is present, must not specify " + rs);
    }
    if (sub_with_star_res.count(sub)) {
      errs.Invalid(I(rpath, i), Q(rs), "if '*/" + sub + "' is present, must not specify " + rs);
    }
    if (sub == "*") res_with_star_sub.insert(res);
    if (res == "*") sub_with_star_res.insert(sub);
  }
  if (resources.size() > 1 && double_star) {
    errs.Invalid(rpath, GoStringSlice(&resources),
                 "if '*/*' is present, must not specify other resources");
  }
  if (single_star && plain) {
    errs.Invalid(rpath, GoStringSlice(&resources),
                 "if '*' is present, must not specify other resources without subresources");
  }
  if (Get(rule, "scope")) {
    std::string scope = Str(rule, "scope", P(path, "scope"));
    if (scope != "*" && scope != "Cluster" && scope != "Namespaced") {
      errs.NotSupported(P(path, "scope"), Q(scope), {"*", "Cluster", "Namespaced"});
    }
  }
}

// webhook.ValidateWebhookURL with forceHttps, on Go's url.Parse view of it.
void Validator::WebhookUrl(const std::string& url, const std::string& path) {
  std::string rest = url;
  std::string scheme;
  if (size_t colon = rest.find("://"); colon != std::string::npos) {
    scheme = rest.substr(0, colon);
    rest = rest.substr(colon + 3);
  } else {
    rest.clear();
  }
  std::string fragment, query;
  if (size_t h = rest.find('#'); h != std::string::npos) {
    fragment = rest.substr(h + 1);
    rest.resize(h);
  }
  if (size_t q = rest.find('?'); q != std::string::npos) {
    query = rest.substr(q + 1);
    rest.resize(q);
  }
  std::string authority = rest.substr(0, rest.find('/'));
  std::string user;
  if (size_t at = authority.rfind('@'); at != std::string::npos) {
    user = authority.substr(0, at);
    authority = authority.substr(at + 1);
  }
  if (scheme != "https") {
    errs.Invalid(path, Q(scheme), "'https' is the only allowed URL scheme");
  }
  if (authority.empty()) errs.Invalid(path, Q(authority), "host must be specified");
  if (url.find('@') != std::string::npos && !user.empty()) {
    errs.Invalid(path, Q(user), "user information is not permitted in the URL");
  }
  if (!fragment.empty()) errs.Invalid(path, Q(fragment), "fragments are not permitted in the URL");
  if (!query.empty()) {
    errs.Invalid(path, Q(query), "query parameters are not permitted in the URL");
  }
}

void Validator::WebhookService(const Json& svc, const std::string& path) {
  if (Str(svc, "name", P(path, "name")).empty()) {
    errs.Required(P(path, "name"), "service name is required");
  }
  if (Str(svc, "namespace", P(path, "namespace")).empty()) {
    errs.Required(P(path, "namespace"), "service namespace is required");
  }
  if (auto port = Int(svc, "port", P(path, "port"))) {
    if (auto e = IsValidPortNum(*port); !e.empty()) {
      errs.Invalid(P(path, "port"), N(*port), "port is not valid: " + Join(e, ", "));
    }
  }
  if (!Get(svc, "path")) return;
  std::string p = Str(svc, "path", P(path, "path"));
  if (p.empty() || p == "/") return;
  if (p == "//") {
    errs.Invalid(P(path, "path"), Q(p), "segment[0] may not be empty");
    return;
  }
  if (p[0] != '/') {
    errs.Invalid(P(path, "path"), Q(p), "must start with a '/'");
    return;
  }
  std::string trimmed = p.substr(1);
  if (!trimmed.empty() && trimmed.back() == '/') trimmed.pop_back();
  auto segments = Split(trimmed, '/');
  for (size_t i = 0; i < segments.size(); ++i) {
    if (segments[i].empty()) {
      errs.Invalid(P(path, "path"), Q(p), "segment[" + std::to_string(i) + "] may not be empty");
      continue;
    }
    if (!IsDNS1123Subdomain(segments[i]).empty()) {
      errs.Invalid(P(path, "path"), Q(p),
                   "segment[" + std::to_string(i) + "]: " + Join(IsDNS1123Subdomain(segments[i]), ", "));
    }
  }
}

// ---------------------------------------------------------------------------
// core/v1 PersistentVolume, PersistentVolumeClaim and storage.k8s.io/v1
// StorageClass (ValidatePersistentVolume*, ValidateStorageClass*).

namespace {
const std::vector<std::string> kAccessModes = {"ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce",
                                               "ReadWriteOncePod"};
// The volume sources a PersistentVolume may name (one of them).
const std::vector<std::string> kPersistentVolumeSources = {
    "awsElasticBlockStore", "azureDisk", "azureFile", "cephfs",    "cinder", "csi",
    "fc",                   "flexVolume", "flocker",  "gcePersistentDisk", "glusterfs",
    "hostPath",             "iscsi",     "local",     "nfs",       "photonPersistentDisk",
    "portworxVolume",       "quobyte",   "rbd",       "scaleIO",   "storageos",
    "vsphereVolume"};
// obj[key], or null: lenient reads of an object already type-checked.
const Json& JsonAt(const Json& obj, const char* key) {
  static const Json kNull;
  if (!obj.is_object()) return kNull;
  auto it = obj.find(key);
  return it == obj.end() ? kNull : *it;
}
}  // namespace

void Validator::AccessModes(const Json& spec, const std::string& path, const char* required_msg) {
  auto modes = StrList(spec, "accessModes", path);
  if (!modes || modes->empty()) {
    errs.Required(path, required_msg);
    return;
  }
  bool once_pod = false;
  for (const auto& m : *modes) {
    if (std::find(kAccessModes.begin(), kAccessModes.end(), m) == kAccessModes.end()) {
      errs.NotSupported(path, Q(m), kAccessModes);
    }
    if (m == "ReadWriteOncePod") once_pod = true;
  }
  if (once_pod && modes->size() > 1) {
    errs.Forbidden(path, "may not use ReadWriteOncePod with other access modes");
  }
}

// validateBasicResource: a storage size must be a positive quantity.
void Validator::StorageQuantity(const Json& value, const std::string& path) {
  Quantity q = Qty(value, path);
  if (q.negative || ScaledCeil(q, 3) == 0) {
    errs.Invalid(path, Q(QuantityTextOf(value)), "must be greater than zero");
  }
}

void Validator::StorageClassNameAndMode(const Json& spec) {
  if (Get(spec, "storageClassName")) {
    std::string cls = Str(spec, "storageClassName", "spec.storageClassName");
    if (!cls.empty()) Dns1123Subdomain(cls, "spec.storageClassName");
  }
  if (Get(spec, "volumeMode")) {
    std::string mode = Str(spec, "volumeMode", "spec.volumeMode");
    if (mode != "Block" && mode != "Filesystem") {
      errs.NotSupported("spec.volumeMode", Q(mode), {"Block", "Filesystem"});
    }
  }
}

void Validator::PersistentVolumeClaim(const Json& obj, const Json* old) {
  ObjectMeta(obj, NameRule::kSubdomain, kNamespaced);
  const Json* sp = Obj(obj, "spec", "spec");
  const Json& spec = sp ? *sp : EmptyObject();
  AccessModes(spec, "spec.accessModes", "at least 1 access mode is required");
  if (const Json* selector = Obj(spec, "selector", "spec.selector")) {
    LabelSelector(selector, "spec.selector");
  }
  const Json* res = Obj(spec, "resources", "spec.resources");
  const Json* requests = res ? Obj(*res, "requests", "spec.resources.requests") : nullptr;
  const Json* storage = requests ? Get(*requests, "storage") : nullptr;
  if (!storage) {
    errs.Required("spec.resources[storage]");
  } else {
    StorageQuantity(*storage, "spec.resources[storage]");
  }
  StorageClassNameAndMode(spec);
  if (!old) return;
  // Claims are immutable (quota, limits) but for the binder's one-time
  // spec.volumeName and the growth of a bound claim's storage request.
  const Json& old_spec = old->contains("spec") ? (*old)["spec"] : EmptyObject();
  Json a = old_spec, b = spec;
  if (!a.is_object()) a = Json::object();
  if (!b.is_object()) b = Json::object();
  if (!a.contains("volumeName") || a["volumeName"].is_null() || a["volumeName"] == "") {
    a.erase("volumeName");
    b.erase("volumeName");
  }
  a.erase("volumeAttributesClassName");
  b.erase("volumeAttributesClassName");
  const Json* status = Obj(obj, "status", "status");
  bool bound = status && Str(*status, "phase", "status.phase") == "Bound";
  Json* breq = nullptr;
  if (bound && b.contains("resources") && b["resources"].is_object() &&
      b["resources"].contains("requests") && b["resources"]["requests"].is_object()) {
    breq = &b["resources"]["requests"];
    const Json& areq = JsonAt(JsonAt(a, "resources"), "requests");
    if (areq.is_object() && areq.contains("storage")) {
      (*breq)["storage"] = areq["storage"];
    } else {
      breq->erase("storage");
    }
  }
  if (a != b) {
    errs.Forbidden("spec",
                   "spec is immutable after creation except resources.requests and "
                   "volumeAttributesClassName for bound claims");
  }
  // A request may come back down (RecoverVolumeExpansionFailure, on by
  // default since 1.32: undoing an expansion that failed), but never to
  // what the volume already has.
  const Json& old_storage = JsonAt(JsonAt(JsonAt(old_spec, "resources"), "requests"), "storage");
  auto storage_of = [](const Json& v) -> i128 {
    if (!v.is_string() && !v.is_number()) return 0;
    auto q = ParseQuantityText(QuantityTextOf(v));
    return q ? ScaledCeil(*q, 9) : 0;
  };
  if (storage && storage_of(*storage) < storage_of(old_storage) &&
      storage_of(*storage) <=
          storage_of(JsonAt(JsonAt(JsonAt(*old, "status"), "capacity"), "storage"))) {
    errs.Forbidden("spec.resources.requests.storage", "field can not be less than status.capacity");
  }
}

void Validator::PersistentVolume(const Json& obj, const Json* old) {
  ObjectMeta(obj, NameRule::kSubdomain, kClusterScoped);
  const Json* sp = Obj(obj, "spec", "spec");
  const Json& spec = sp ? *sp : EmptyObject();
  AccessModes(spec, "spec.accessModes", "must specify at least 1 access mode");
  const Json* capacity = Obj(spec, "capacity", "spec.capacity");
  if (!capacity || capacity->empty()) {
    errs.Required("spec.capacity");
  } else {
    for (const auto& [name, value] : capacity->items()) {
      if (name != "storage") {
        errs.NotSupported("spec.capacity", Q(name), {"storage"});
        continue;
      }
      StorageQuantity(value, "spec.capacity[storage]");
    }
  }
  StorageClassNameAndMode(spec);
  if (Get(spec, "persistentVolumeReclaimPolicy")) {
    std::string p = Str(spec, "persistentVolumeReclaimPolicy", "spec.persistentVolumeReclaimPolicy");
    if (p != "Delete" && p != "Recycle" && p != "Retain") {
      errs.NotSupported("spec.persistentVolumeReclaimPolicy", Q(p), {"Delete", "Recycle", "Retain"});
    }
  }
  std::vector<std::string> sources;
  for (const auto& s : kPersistentVolumeSources) {
    if (Get(spec, s)) sources.push_back(s);
  }
  if (sources.empty()) {
    errs.Required("spec", "must specify a volume type");
  } else if (sources.size() > 1) {
    errs.Forbidden("spec." + sources[1], "may not specify more than 1 volume type");
  }
  for (const char* s : {"hostPath", "local"}) {
    const Json* src = Obj(spec, s, P("spec", s));
    if (!src) continue;
    std::string path = Str(*src, "path", P(P("spec", s), "path"));
    if (path.empty()) {
      errs.Required(P(P("spec", s), "path"));
    } else if (std::string_view(s) == "local" && path[0] != '/') {
      errs.Invalid(P(P("spec", s), "path"), Q(path), "must be an absolute path");
    }
  }
  const Json* affinity = Obj(spec, "nodeAffinity", "spec.nodeAffinity");
  if (affinity) {
    const Json* req = Obj(*affinity, "required", "spec.nodeAffinity.required");
    const Json* terms =
        req ? Arr(*req, "nodeSelectorTerms", "spec.nodeAffinity.required.nodeSelectorTerms")
            : nullptr;
    if (req && (!terms || terms->empty())) {
      errs.Required("spec.nodeAffinity.required.nodeSelectorTerms",
                    "must have at least one node selector term");
    }
  }
  if (Get(spec, "local") && (!affinity || !Get(*affinity, "required"))) {
    errs.Required("spec.nodeAffinity", "Local volume requires node affinity");
  }
  if (const Json* ref = Obj(spec, "claimRef", "spec.claimRef")) {
    if (Str(*ref, "name", "spec.claimRef.name").empty()) errs.Required("spec.claimRef.name");
    if (Str(*ref, "namespace", "spec.claimRef.namespace").empty()) {
      errs.Required("spec.claimRef.namespace");
    }
  }
  if (!old) return;
  const Json& old_spec = JsonAt(*old, "spec");
  auto source_of = [](const Json& s) {
    Json out = Json::object();
    for (const auto& k : kPersistentVolumeSources) {
      if (s.is_object() && s.contains(k)) out[k] = s[k];
    }
    return out;
  };
  if (source_of(spec) != source_of(old_spec)) {
    errs.Forbidden("spec.persistentvolumesource",
                   "spec.persistentvolumesource is immutable after creation");
  }
  if (JsonAt(spec, "volumeMode") != JsonAt(old_spec, "volumeMode")) {
    errs.Invalid("spec.volumeMode", Q(Str(spec, "volumeMode", "spec.volumeMode")),
                 "field is immutable");
  }
  const Json& old_affinity = JsonAt(old_spec, "nodeAffinity");
  if (!old_affinity.is_null() && JsonAt(spec, "nodeAffinity") != old_affinity) {
    errs.Invalid("spec.nodeAffinity", "core.VolumeNodeAffinity{...}", "field is immutable");
  }
}

void Validator::StorageClass(const Json& obj, const Json* old) {
  ObjectMeta(obj, NameRule::kSubdomain, kClusterScoped);
  std::string provisioner = Str(obj, "provisioner", "provisioner");
  if (provisioner.empty()) {
    errs.Required("provisioner");
  } else {
    std::string lower = provisioner;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    for (auto& m : IsQualifiedName(lower)) errs.Invalid("provisioner", Q(provisioner), m);
  }
  StrMap(obj, "parameters", "parameters");
  if (Get(obj, "reclaimPolicy")) {
    std::string p = Str(obj, "reclaimPolicy", "reclaimPolicy");
    if (p != "Delete" && p != "Retain") errs.NotSupported("reclaimPolicy", Q(p), {"Delete", "Retain"});
  }
  std::string mode = Str(obj, "volumeBindingMode", "volumeBindingMode");
  if (mode.empty()) {
    errs.Required("volumeBindingMode");
  } else if (mode != "Immediate" && mode != "WaitForFirstConsumer") {
    errs.NotSupported("volumeBindingMode", Q(mode), {"Immediate", "WaitForFirstConsumer"});
  }
  Bool(obj, "allowVolumeExpansion", "allowVolumeExpansion");
  if (!old) return;
  if (JsonAt(obj, "parameters") != JsonAt(*old, "parameters")) {
    errs.Forbidden("parameters", "updates to parameters are forbidden.");
  }
  if (JsonAt(obj, "provisioner") != JsonAt(*old, "provisioner")) {
    errs.Forbidden("provisioner", "updates to provisioner are forbidden.");
  }
  if (JsonAt(obj, "reclaimPolicy") != JsonAt(*old, "reclaimPolicy")) {
    errs.Forbidden("reclaimPolicy", "updates to reclaimPolicy are forbidden.");
  }
  if (JsonAt(obj, "volumeBindingMode") != JsonAt(*old, "volumeBindingMode")) {
    errs.Invalid("volumeBindingMode", Q(mode), "field is immutable");
  }
}

// ---------------------------------------------------------------------------
// LimitRange, ResourceQuota, PodTemplate (ValidateLimitRange,
// ValidateResourceQuota, ValidatePodTemplate).

// A resource.Quantity value as field.Invalid prints it (Go's %#v).
std::string GoQuantity(const Json& v) {
  std::string text = QuantityTextOf(v);
  auto q = ParseQuantityText(text);
  if (!q) return Q(text);
  i128 value = 0;
  for (char c : q->digits) value = value * 10 + (c - '0');
  for (int i = 0; i < q->exp2; ++i) value *= 2;
  if (q->negative) value = -value;
  std::string digits;
  {
    i128 a = value < 0 ? -value : value;
    do {
      digits.insert(digits.begin(), static_cast<char>('0' + static_cast<int>(a % 10)));
      a /= 10;
    } while (a > 0);
    if (value < 0) digits.insert(digits.begin(), '-');
  }
  std::string format = q->exp2 != 0 ? "BinarySI" : "DecimalSI";
  if (text.find_first_of("eE") != std::string::npos && text.back() != 'i' &&
      text.find_last_of("eE") + 1 < text.size()) {
    format = "DecimalExponent";
  }
  return "resource.Quantity{i:resource.int64Amount{value:" + digits +
         ", scale:" + std::to_string(q->exp10) +
         "}, d:resource.infDecAmount{Dec:(*inf.Dec)(nil)}, s:\"\", Format:\"" + format + "\"}";
}

// Quantity.String() of a JSON quantity.
std::string CanonicalQuantity(const Json& v) {
  auto a = quota::Amount::FromJson(v);
  return a ? a->String() : QuantityTextOf(v);
}

bool IsStandardQuotaResourceName(const std::string& n) {
  static const std::set<std::string> kNames = {
      "cpu", "memory", "ephemeral-storage", "requests.cpu", "requests.memory",
      "requests.storage", "requests.ephemeral-storage", "limits.cpu", "limits.memory",
      "limits.ephemeral-storage", "pods", "services", "replicationcontrollers", "resourcequotas",
      "secrets", "persistentvolumeclaims", "configmaps", "services.nodeports",
      "services.loadbalancers"};
  return kNames.count(n) || n.rfind("hugepages-", 0) == 0 ||
         n.rfind("requests.hugepages-", 0) == 0;
}

bool IsIntegerResourceName(const std::string& n) {
  static const std::set<std::string> kNames = {
      "pods", "services", "replicationcontrollers", "resourcequotas", "secrets", "configmaps",
      "persistentvolumeclaims", "services.nodeports", "services.loadbalancers"};
  return kNames.count(n) || n.rfind("count/", 0) == 0 || IsExtendedResource(n) ||
         (n.rfind("requests.", 0) == 0 && IsExtendedResource(n.substr(9)));
}

// validateResourceName: a qualified name, standard unless it has a domain.
void Validator::GenericResourceName(const std::string& name, const std::string& path) {
  auto msgs = IsQualifiedName(name);
  for (auto& m : msgs) errs.Invalid(path, Q(name), m);
  if (msgs.empty() && name.find('/') == std::string::npos &&
      !IsStandardQuotaResourceName(name) && name != "storage") {
    errs.Invalid(path, Q(name), "must be a standard resource type or fully qualified");
  }
}

void Validator::QuotaResourceList(const Json* list, const std::string& path) {
  if (!list) return;
  for (const auto& [name, value] : list->items()) {
    const std::string fp = K(path, name);
    // validateResourceName, then ValidateResourceQuotaResourceName.
    GenericResourceName(name, fp);
    if (name.find('/') == std::string::npos && !IsStandardQuotaResourceName(name)) {
      errs.Invalid(fp, Q(name), "must be a standard resource for quota");
    }
    Quantity q = Qty(value, fp);
    if (q.negative && ScaledCeil(q, 9) != 0) {
      errs.Invalid(fp, Q(CanonicalQuantity(value)), "must be greater than or equal to 0");
    }
    if (IsIntegerResourceName(name) && ScaledCeil(q, 3) % 1000 != 0) {
      errs.Invalid(fp, GoQuantity(value), "must be an integer");
    }
  }
}

void Validator::ResourceQuota(const Json& obj) {
  ObjectMeta(obj, NameRule::kSubdomain, kNamespaced);
  const Json* sp = Obj(obj, "spec", "spec");
  const Json& spec = sp ? *sp : EmptyObject();
  const Json* hard = Obj(spec, "hard", "spec.hard");
  QuotaResourceList(hard, "spec.hard");
  auto scopes = StrList(spec, "scopes", "spec.scopes");
  static const std::vector<std::string> kScopes = {
      "Terminating", "NotTerminating", "BestEffort", "NotBestEffort", "PriorityClass",
      "CrossNamespacePodAffinity"};
  auto standard_scope = [&](const std::string& s) {
    return std::find(kScopes.begin(), kScopes.end(), s) != kScopes.end();
  };
  // IsResourceQuotaScopeValidForResource.
  auto valid_for = [](const std::string& scope, const std::string& res) {
    static const std::set<std::string> kPodCompute = {
        "pods", "cpu", "memory", "limits.cpu", "limits.memory", "requests.cpu",
        "requests.memory"};
    if (scope == "BestEffort") return res == "pods";
    return kPodCompute.count(res) > 0;
  };
  if (scopes && !scopes->empty()) {
    std::string rendered = "[]core.ResourceQuotaScope{";
    for (size_t i = 0; i < scopes->size(); ++i) rendered += (i ? ", " : "") + Q((*scopes)[i]);
    rendered += "}";
    std::set<std::string> seen;
    for (const auto& scope : *scopes) {
      if (!standard_scope(scope)) errs.Invalid("spec.scopes", rendered, "unsupported scope");
      if (hard) {
        for (const auto& [res, v] : hard->items()) {
          if (IsStandardQuotaResourceName(res) && !valid_for(scope, res)) {
            errs.Invalid("spec.scopes", rendered, "unsupported scope applied to resource");
          }
        }
      }
      seen.insert(scope);
    }
    if ((seen.count("BestEffort") && seen.count("NotBestEffort")) ||
        (seen.count("Terminating") && seen.count("NotTerminating"))) {
      errs.Invalid("spec.scopes", rendered, "conflicting scopes");
    }
  }
  if (const Json* sel = Obj(spec, "scopeSelector", "spec.scopeSelector")) {
    const std::string base = "spec.scopeSelector.matchExpressions";
    if (const Json* exprs = Arr(*sel, "matchExpressions", base)) {
      for (size_t i = 0; i < exprs->size(); ++i) {
        const std::string ip = I(base, i);
        const Json& e = Elem(*exprs, i, ip);
        std::string scope = Str(e, "scopeName", P(ip, "scopeName"));
        std::string op = Str(e, "operator", P(ip, "operator"));
        auto values = StrList(e, "values", P(ip, "values"));
        if (!standard_scope(scope)) {
          errs.Invalid(P(ip, "scopeName"), Q(scope), "unsupported scope");
        }
        static const std::vector<std::string> kOps = {"In", "NotIn", "Exists", "DoesNotExist"};
        if (std::find(kOps.begin(), kOps.end(), op) == kOps.end()) {
          errs.Invalid(P(ip, "operator"), Q(op), "not a valid selector operator");
          continue;
        }
        if ((scope == "Terminating" || scope == "NotTerminating" || scope == "BestEffort" ||
             scope == "NotBestEffort" || scope == "CrossNamespacePodAffinity") &&
            op != "Exists") {
          errs.Invalid(P(ip, "operator"), Q(op),
                       "must be 'Exist' when scope is any of ResourceQuotaScopeTerminating, "
                       "ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort, "
                       "ResourceQuotaScopeNotBestEffort or "
                       "ResourceQuotaScopeCrossNamespacePodAffinity");
        }
        bool has_values = values && !values->empty();
        if ((op == "In" || op == "NotIn") && !has_values) {
          errs.Required(P(ip, "values"),
                        "must be at least one value when `operator` is 'In' or 'NotIn' for "
                        "scope selector");
        }
        if ((op == "Exists" || op == "DoesNotExist") && has_values) {
          errs.Invalid(P(ip, "values"), "[]string{" + [&] {
            std::string r;
            for (size_t j = 0; j < values->size(); ++j) r += (j ? ", " : "") + Q((*values)[j]);
            return r;
          }() + "}",
                       "must be no value when `operator` is 'Exist' or 'DoesNotExist' for "
                       "scope selector");
        }
      }
    }
  }
  if (const Json* status = Obj(obj, "status", "status")) {
    QuotaResourceList(Obj(*status, "hard", "status.hard"), "status.hard");
    QuotaResourceList(Obj(*status, "used", "status.used"), "status.used");
  }
}

void Validator::LimitRange(const Json& obj) {
  ObjectMeta(obj, NameRule::kSubdomain, kNamespaced);
  const Json* sp = Obj(obj, "spec", "spec");
  const Json& spec = sp ? *sp : EmptyObject();
  const Json* limits = Arr(spec, "limits", "spec.limits");
  if (!limits) return;
  std::set<std::string> types;
  for (size_t i = 0; i < limits->size(); ++i) {
    const std::string ip = I("spec.limits", i);
    const Json& item = Elem(*limits, i, ip);
    std::string type = Str(item, "type", P(ip, "type"));
    // ValidateLimitRangeTypeName.
    auto qn = IsQualifiedName(type);
    for (auto& m : qn) errs.Invalid(P(ip, "type"), Q(type), m);
    if (qn.empty() && type.find('/') == std::string::npos && type != "Pod" &&
        type != "Container" && type != "PersistentVolumeClaim") {
      errs.Invalid(P(ip, "type"), Q(type), "must be a standard limit type or fully qualified");
    }
    if (!types.insert(type).second) errs.Duplicate(P(ip, "type"), Q(type));
    std::set<std::string> keys;
    std::map<std::string, const Json*> min, max, defaults, default_requests, ratios;
    auto collect = [&](const char* field, std::map<std::string, const Json*>& into) {
      const std::string fp = P(ip, field);
      const Json* list = Obj(item, field, fp);
      if (!list) return;
      for (const auto& [k, v] : list->items()) {
        const std::string kp = K(fp, k);
        if (type == "Pod" || type == "Container") {
          ResourceName(k, kp);  // validateContainerResourceName
        } else {
          GenericResourceName(k, kp);
        }
        Qty(v, kp);
        keys.insert(k);
        into[k] = &v;
      }
    };
    collect("max", max);
    collect("min", min);
    if (type == "Pod") {
      const Json* d = Obj(item, "default", P(ip, "default"));
      if (d && !d->empty()) {
        errs.Forbidden(P(ip, "default"), "may not be specified when `type` is 'Pod'");
      }
      const Json* dr = Obj(item, "defaultRequest", P(ip, "defaultRequest"));
      if (dr && !dr->empty()) {
        errs.Forbidden(P(ip, "defaultRequest"), "may not be specified when `type` is 'Pod'");
      }
    } else {
      collect("default", defaults);
      collect("defaultRequest", default_requests);
    }
    if (type == "PersistentVolumeClaim" && !min.count("storage") && !max.count("storage")) {
      errs.Required(P(ip, "limits"),
                    "either minimum or maximum storage value is required, but neither was "
                    "provided");
    }
    collect("maxLimitRequestRatio", ratios);
    auto cmp = [&](const Json* a, const Json* b) {
      i128 x = ScaledCeil(Qty(*a, ""), 9), y = ScaledCeil(Qty(*b, ""), 9);
      return x < y ? -1 : x > y ? 1 : 0;
    };
    auto str = [](const Json* v) { return CanonicalQuantity(*v); };
    auto find = [](const std::map<std::string, const Json*>& m, const std::string& k) {
      auto it = m.find(k);
      return it == m.end() ? nullptr : it->second;
    };
    for (const auto& k : keys) {
      const Json* mn = find(min, k);
      const Json* mx = find(max, k);
      const Json* df = find(defaults, k);
      const Json* dr = find(default_requests, k);
      const Json* ratio = find(ratios, k);
      if (mn && mx && cmp(mn, mx) > 0) {
        errs.Invalid(K(P(ip, "min"), k), GoQuantity(*mn),
                     "min value " + str(mn) + " is greater than max value " + str(mx));
      }
      if (dr && mn && cmp(mn, dr) > 0) {
        errs.Invalid(K(P(ip, "defaultRequest"), k), GoQuantity(*dr),
                     "min value " + str(mn) + " is greater than default request value " +
                         str(dr));
      }
      if (dr && mx && cmp(dr, mx) > 0) {
        errs.Invalid(K(P(ip, "defaultRequest"), k), GoQuantity(*dr),
                     "default request value " + str(dr) + " is greater than max value " +
                         str(mx));
      }
      if (dr && df && cmp(dr, df) > 0) {
        errs.Invalid(K(P(ip, "defaultRequest"), k), GoQuantity(*dr),
                     "default request value " + str(dr) + " is greater than default limit value " +
                         str(df));
      }
      if (df && mn && cmp(mn, df) > 0) {
        errs.Invalid(K(P(ip, "default"), k), GoQuantity(*mn),
                     "min value " + str(mn) + " is greater than default value " + str(df));
      }
      if (df && mx && cmp(df, mx) > 0) {
        errs.Invalid(K(P(ip, "default"), k), GoQuantity(*mx),
                     "default value " + str(df) + " is greater than max value " + str(mx));
      }
      if (ratio && ScaledCeil(Qty(*ratio, ""), 9) < 1000000000) {
        errs.Invalid(K(P(ip, "maxLimitRequestRatio"), k), GoQuantity(*ratio),
                     "ratio " + str(ratio) + " is less than 1");
      }
      if (ratio && mn && mx) {
        auto r = quota::Amount::FromJson(*ratio);
        auto a = quota::Amount::FromJson(*mn);
        auto b = quota::Amount::FromJson(*mx);
        if (r && a && b) {
          double ratio_value = static_cast<double>(r->Value());
          int64_t min_v = a->Value(), max_v = b->Value();
          constexpr int64_t kMaxMilli = INT64_MAX / 1000;
          if (r->Value() < kMaxMilli && min_v < kMaxMilli && max_v < kMaxMilli) {
            ratio_value = static_cast<double>(r->Milli()) / 1000;
            min_v = a->Milli();
            max_v = b->Milli();
          }
          double limit = static_cast<double>(max_v) / static_cast<double>(min_v);
          if (ratio_value > limit) {
            char buf[64];
            std::snprintf(buf, sizeof buf, "%f", limit);
            errs.Invalid(K(P(ip, "maxLimitRequestRatio"), k), GoQuantity(*ratio),
                         "ratio " + str(ratio) + " is greater than max/min = " + buf);
          }
        }
      }
      if (!IsOvercommitAllowed(k) && df && dr && cmp(df, dr) != 0) {
        errs.Invalid(K(P(ip, "defaultRequest"), k), GoQuantity(*dr),
                     "default value " + str(df) + " must equal to defaultRequest value " +
                         str(dr) + " in " + k);
      }
    }
  }
}

void Validator::PodTemplateObject(const Json& obj) {
  ObjectMeta(obj, NameRule::kSubdomain, kNamespaced);
  PodTemplate(Obj(obj, "template", "template"), "template");
}

void Validator::Run(const Json& obj, const Json* old) {
  if (!obj.is_object())
    DecodeError("json: cannot unmarshal " + JsonTypeName(obj) + " into Go value of type " + kind_);
  if (old && !old->is_object()) old = nullptr;
  if (old) ObjectMetaUpdate(obj, *old);
  const std::string& g = group_;
  const std::string& k = kind_;
  if (g.empty()) {
    if (k == "Pod") return Pod(obj, old);
    if (k == "Service") return Service(obj, old);
    if (k == "Endpoints") return Endpoints(obj);
    if (k == "ConfigMap") return ConfigMap(obj, old);
    if (k == "Secret") return Secret(obj, old);
    if (k == "Node") return Node(obj);
    if (k == "Namespace") return Namespace(obj);
    if (k == "ReplicationController") return ReplicationController(obj);
    if (k == "LimitRange") return LimitRange(obj);
    if (k == "ResourceQuota") return ResourceQuota(obj);
    if (k == "PodTemplate") return PodTemplateObject(obj);
    if (k == "ServiceAccount" || k == "Event") {
      return ObjectMeta(obj, NameRule::kSubdomain, kNamespaced);
    }
    if (k == "PersistentVolumeClaim") return PersistentVolumeClaim(obj, old);
    if (k == "PersistentVolume") return PersistentVolume(obj, old);
  } else if (g == "apps") {
    if (k == "Deployment") return Deployment(obj, old);
    if (k == "ReplicaSet") return ReplicaSet(obj, old);
    if (k == "DaemonSet") return DaemonSet(obj, old);
    if (k == "StatefulSet") return StatefulSet(obj, old);
    if (k == "ControllerRevision") return ControllerRevision(obj, old);
  } else if (g == "batch") {
    if (k == "Job") return Job(obj, old);
    if (k == "CronJob") return CronJob(obj, old);
  } else if (g == "networking.k8s.io") {
    if (k == "Ingress") return Ingress(obj);
    if (k == "IngressClass") return IngressClass(obj);
    if (k == "NetworkPolicy") return NetworkPolicy(obj);
  } else if (g == "discovery.k8s.io") {
    if (k == "EndpointSlice") return EndpointSlice(obj, old);
  } else if (g == "coordination.k8s.io") {
    if (k == "Lease") return Lease(obj);
  } else if (g == "policy") {
    if (k == "PodDisruptionBudget") return PodDisruptionBudget(obj);
  } else if (g == "storage.k8s.io") {
    if (k == "StorageClass") return StorageClass(obj, old);
  } else if (g == "scheduling.k8s.io") {
    if (k == "PriorityClass") return PriorityClass(obj, old);
  } else if (g == "events.k8s.io") {
    if (k == "Event") return ObjectMeta(obj, NameRule::kSubdomain, kNamespaced);
  } else if (g == "rbac.authorization.k8s.io") {
    if (k == "Role") {
      ObjectMeta(obj, NameRule::kPathSegment, kNamespaced);
      return PolicyRules(obj, true);
    }
    if (k == "ClusterRole") return ClusterRole(obj);
    if (k == "RoleBinding") return RoleBinding(obj, old, false);
    if (k == "ClusterRoleBinding") return RoleBinding(obj, old, true);
  } else if (g == "admissionregistration.k8s.io") {
    if (k == "MutatingWebhookConfiguration") return WebhookConfiguration(obj, true);
    if (k == "ValidatingWebhookConfiguration") return WebhookConfiguration(obj, false);
  }
  ObjectMeta(obj, NameRule::kSubdomain, kUnknownScope);
}

// ---------------------------------------------------------------------------
// Defaulting. Never throws: values of the wrong type are left for
// validation to report.

bool Unset(const Json& o, const char* key) {
  auto it = o.find(key);
  return it == o.end() || it->is_null();
}
bool UnsetOrEmptyString(const Json& o, const char* key) {
  auto it = o.find(key);
  return it == o.end() || it->is_null() ||
         (it->is_string() && it->get_ref<const std::string&>().empty());
}
void Default(Json& o, const char* key, const Json& value) {
  if (o.is_object() && Unset(o, key)) o[key] = value;
}
void DefaultString(Json& o, const char* key, const char* value) {
  if (o.is_object() && UnsetOrEmptyString(o, key)) o[key] = value;
}
// Non-pointer Go ints: zero means unset.
void DefaultNonZero(Json& o, const char* key, int64_t value) {
  if (!o.is_object()) return;
  auto it = o.find(key);
  if (it == o.end() || it->is_null() || (it->is_number() && it->get<double>() == 0)) o[key] = value;
}
Json* ObjectAt(Json& o, const char* key) {
  if (!o.is_object()) return nullptr;
  auto it = o.find(key);
  if (it == o.end() || !it->is_object()) return nullptr;
  return &*it;
}
Json* ArrayAt(Json& o, const char* key) {
  if (!o.is_object()) return nullptr;
  auto it = o.find(key);
  if (it == o.end() || !it->is_array()) return nullptr;
  return &*it;
}
template <typename F>
void ForEachObject(Json& o, const char* key, F f) {
  if (Json* arr = ArrayAt(o, key)) {
    for (auto& el : *arr) {
      if (el.is_object()) f(el);
    }
  }
}

// parsers.ParseImageName: the tag, "latest" when neither tag nor digest is
// given, "" when the reference does not parse.
std::string ImageTag(const std::string& image) {
  if (image.empty()) return "";
  std::string name = image, tag;
  bool digest = false;
  if (size_t at = name.find('@'); at != std::string::npos) {
    digest = true;
    name = name.substr(0, at);
  }
  size_t slash = name.rfind('/');
  size_t colon = name.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    tag = name.substr(colon + 1);
    name = name.substr(0, colon);
  }
  // Repository path components are lower case; the first component may be a host.
  auto parts = Split(name, '/');
  for (size_t i = 0; i < parts.size(); ++i) {
    bool host = i == 0 && parts.size() > 1 &&
                (parts[0].find('.') != std::string::npos ||
                 parts[0].find(':') != std::string::npos || parts[0] == "localhost");
    if (parts[i].empty()) return "";
    if (!host && std::any_of(parts[i].begin(), parts[i].end(),
                             [](char c) { return c >= 'A' && c <= 'Z'; })) {
      return "";
    }
  }
  if (tag.empty() && !digest) tag = "latest";
  return tag;
}

void DefaultHttpGet(Json& handler) {
  if (Json* http = ObjectAt(handler, "httpGet")) {
    DefaultString(*http, "path", "/");
    DefaultString(*http, "scheme", "HTTP");
  }
}

void DefaultProbe(Json& container, const char* key) {
  Json* probe = ObjectAt(container, key);
  if (!probe) return;
  DefaultNonZero(*probe, "timeoutSeconds", 1);
  DefaultNonZero(*probe, "periodSeconds", 10);
  DefaultNonZero(*probe, "successThreshold", 1);
  DefaultNonZero(*probe, "failureThreshold", 3);
  DefaultHttpGet(*probe);
  if (Json* grpc = ObjectAt(*probe, "grpc")) Default(*grpc, "service", "");
}

void DefaultFieldRef(Json& holder) {
  if (Json* ref = ObjectAt(holder, "fieldRef")) DefaultString(*ref, "apiVersion", "v1");
}

void DefaultContainer(Json& c) {
  if (UnsetOrEmptyString(c, "imagePullPolicy")) {
    const Json* image = c.contains("image") ? &c["image"] : nullptr;
    std::string tag = ImageTag(image && image->is_string() ? image->get<std::string>() : "");
    c["imagePullPolicy"] = tag == "latest" ? "Always" : "IfNotPresent";
  }
  DefaultString(c, "terminationMessagePath", "/dev/termination-log");
  DefaultString(c, "terminationMessagePolicy", "File");
  Default(c, "resources", Json::object());
  ForEachObject(c, "ports", [](Json& p) { DefaultString(p, "protocol", "TCP"); });
  ForEachObject(c, "env", [](Json& e) {
    if (Json* from = ObjectAt(e, "valueFrom")) DefaultFieldRef(*from);
  });
  for (const char* probe : {"livenessProbe", "readinessProbe", "startupProbe"}) {
    DefaultProbe(c, probe);
  }
  if (Json* lifecycle = ObjectAt(c, "lifecycle")) {
    for (const char* hook : {"postStart", "preStop"}) {
      if (Json* h = ObjectAt(*lifecycle, hook)) DefaultHttpGet(*h);
    }
  }
}

constexpr const char* kVolumeSources[] = {"emptyDir",
                                          "hostPath",
                                          "gitRepo",
                                          "gcePersistentDisk",
                                          "awsElasticBlockStore",
                                          "secret",
                                          "nfs",
                                          "iscsi",
                                          "glusterfs",
                                          "flocker",
                                          "persistentVolumeClaim",
                                          "rbd",
                                          "cinder",
                                          "cephfs",
                                          "quobyte",
                                          "downwardAPI",
                                          "fc",
                                          "flexVolume",
                                          "configMap",
                                          "azureFile",
                                          "vsphereVolume",
                                          "photonPersistentDisk",
                                          "portworxVolume",
                                          "azureDisk",
                                          "storageos",
                                          "projected",
                                          "scaleIO",
                                          "csi",
                                          "ephemeral",
                                          "image"};

void DefaultVolume(Json& v) {
  bool any = std::any_of(std::begin(kVolumeSources), std::end(kVolumeSources),
                         [&v](const char* key) { return !Unset(v, key); });
  if (!any) v["emptyDir"] = Json::object();
  for (const char* key : {"secret", "configMap", "downwardAPI", "projected"}) {
    if (Json* src = ObjectAt(v, key)) Default(*src, "defaultMode", 420);
  }
  if (Json* host = ObjectAt(v, "hostPath")) Default(*host, "type", "");
  if (Json* dapi = ObjectAt(v, "downwardAPI")) ForEachObject(*dapi, "items", DefaultFieldRef);
  if (Json* projected = ObjectAt(v, "projected")) {
    ForEachObject(*projected, "sources", [](Json& s) {
      if (Json* token = ObjectAt(s, "serviceAccountToken")) {
        Default(*token, "expirationSeconds", 3600);
      }
      if (Json* dapi = ObjectAt(s, "downwardAPI")) ForEachObject(*dapi, "items", DefaultFieldRef);
    });
  }
  if (Json* image = ObjectAt(v, "image")) {
    if (UnsetOrEmptyString(*image, "pullPolicy")) {
      const Json* ref = image->contains("reference") ? &(*image)["reference"] : nullptr;
      std::string tag = ImageTag(ref && ref->is_string() ? ref->get<std::string>() : "");
      (*image)["pullPolicy"] = tag == "latest" ? "Always" : "IfNotPresent";
    }
  }
}

// SetDefaults_PodSpec and everything below it; for pods also SetDefaults_Pod
// and the ServiceAccount, Priority and DefaultTolerationSeconds admission.
void DefaultPodSpec(Json& spec, bool is_pod, int64_t toleration_seconds = 300) {
  if (!spec.is_object()) return;
  DefaultString(spec, "dnsPolicy", "ClusterFirst");
  DefaultString(spec, "restartPolicy", "Always");
  Default(spec, "securityContext", Json::object());
  Default(spec, "terminationGracePeriodSeconds", 30);
  DefaultString(spec, "schedulerName", "default-scheduler");
  for (const char* list : {"initContainers", "containers", "ephemeralContainers"}) {
    ForEachObject(spec, list, DefaultContainer);
  }
  ForEachObject(spec, "volumes", DefaultVolume);
  if (is_pod) {
    for (const char* list : {"containers", "initContainers"}) {
      ForEachObject(spec, list, [](Json& c) {
        Json* resources = ObjectAt(c, "resources");
        Json* limits = resources ? ObjectAt(*resources, "limits") : nullptr;
        if (!limits) return;
        if (!ObjectAt(*resources, "requests")) (*resources)["requests"] = Json::object();
        Json& requests = (*resources)["requests"];
        for (const auto& [name, value] : limits->items()) {
          if (!requests.contains(name)) requests[name] = value;
        }
      });
    }
    Default(spec, "enableServiceLinks", true);
    if (spec.value("hostNetwork", Json(false)) == Json(true)) {
      for (const char* list : {"containers", "initContainers"}) {
        ForEachObject(spec, list, [](Json& c) {
          ForEachObject(c, "ports", [](Json& p) {
            if (Unset(p, "hostPort") || p["hostPort"] == Json(0)) {
              if (p.contains("containerPort")) p["hostPort"] = p["containerPort"];
            }
          });
        });
      }
    }
    DefaultString(spec, "serviceAccountName", "default");
    if (Unset(spec, "priority")) {
      const Json* pcn = spec.contains("priorityClassName") ? &spec["priorityClassName"] : nullptr;
      std::string cls = pcn && pcn->is_string() ? pcn->get<std::string>() : "";
      spec["priority"] = cls == "system-node-critical"      ? 2000001000
                         : cls == "system-cluster-critical" ? 2000000000
                                                            : 0;
    }
    DefaultString(spec, "preemptionPolicy", "PreemptLowerPriority");
    bool not_ready = false, unreachable = false;
    if (Json* tols = ArrayAt(spec, "tolerations")) {
      for (const auto& t : *tols) {
        if (!t.is_object()) continue;
        std::string key = StringAt(t, "key");
        std::string effect = StringAt(t, "effect");
        bool effect_ok = effect.empty() || effect == "NoExecute";
        not_ready |= effect_ok && (key.empty() || key == "node.kubernetes.io/not-ready");
        unreachable |= effect_ok && (key.empty() || key == "node.kubernetes.io/unreachable");
      }
    }
    if (!not_ready || !unreachable) {
      if (Unset(spec, "tolerations") || !spec["tolerations"].is_array()) {
        spec["tolerations"] = Json::array();
      }
      for (auto [tolerated, key] : {std::pair{not_ready, "node.kubernetes.io/not-ready"},
                                    std::pair{unreachable, "node.kubernetes.io/unreachable"}}) {
        if (tolerated) continue;
        spec["tolerations"].push_back({{"key", key},
                                       {"operator", "Exists"},
                                       {"effect", "NoExecute"},
                                       {"tolerationSeconds", toleration_seconds}});
      }
    }
  }
  // v1 conversion keeps the deprecated serviceAccount field in step.
  if (UnsetOrEmptyString(spec, "serviceAccountName") &&
      !UnsetOrEmptyString(spec, "serviceAccount")) {
    spec["serviceAccountName"] = spec["serviceAccount"];
  }
  if (!UnsetOrEmptyString(spec, "serviceAccountName"))
    spec["serviceAccount"] = spec["serviceAccountName"];
}

void DefaultPodTemplate(Json& holder, const char* key = "template") {
  Json* tmpl = ObjectAt(holder, key);
  if (!tmpl) return;
  if (Unset(*tmpl, "spec")) (*tmpl)["spec"] = Json::object();
  DefaultPodSpec((*tmpl)["spec"], false);
}

void DefaultService(Json& obj) {
  Json* spec = ObjectAt(obj, "spec");
  if (!spec) {
    obj["spec"] = Json::object();
    spec = &obj["spec"];
  }
  Json& s = *spec;
  DefaultString(s, "sessionAffinity", "None");
  if (s["sessionAffinity"] == "None") s.erase("sessionAffinityConfig");
  if (s["sessionAffinity"] == "ClientIP") {
    Json* config = ObjectAt(s, "sessionAffinityConfig");
    Json* client_ip = config ? ObjectAt(*config, "clientIP") : nullptr;
    if (!client_ip || Unset(*client_ip, "timeoutSeconds")) {
      s["sessionAffinityConfig"] = {{"clientIP", {{"timeoutSeconds", 10800}}}};
    }
  }
  DefaultString(s, "type", "ClusterIP");
  ForEachObject(s, "ports", [](Json& p) {
    DefaultString(p, "protocol", "TCP");
    auto it = p.find("targetPort");
    bool unset = it == p.end() || it->is_null() || *it == Json(0) || *it == Json("");
    if (unset && p.contains("port")) p["targetPort"] = p["port"];
  });
  std::string type = s["type"].is_string() ? s["type"].get<std::string>() : "";
  const Json* external_ips = s.contains("externalIPs") ? &s["externalIPs"] : nullptr;
  bool externally =
      type == "LoadBalancer" || type == "NodePort" ||
      (type == "ClusterIP" && external_ips && external_ips->is_array() && !external_ips->empty());
  if (externally) DefaultString(s, "externalTrafficPolicy", "Cluster");
  if (type == "ClusterIP" || type == "NodePort" || type == "LoadBalancer") {
    Default(s, "internalTrafficPolicy", "Cluster");
  }
  if (type == "LoadBalancer") {
    Default(s, "allocateLoadBalancerNodePorts", true);
    if (Json* status = ObjectAt(obj, "status")) {
      if (Json* lb = ObjectAt(*status, "loadBalancer")) {
        ForEachObject(*lb, "ingress", [](Json& ing) {
          if (!UnsetOrEmptyString(ing, "ip")) Default(ing, "ipMode", "VIP");
        });
      }
    }
  }
  // The registry keeps clusterIP and clusterIPs in step (NormalizeClusterIPs).
  if (type != "ExternalName") {
    bool has_ip = !UnsetOrEmptyString(s, "clusterIP");
    Json* ips = ArrayAt(s, "clusterIPs");
    if (has_ip && (!ips || ips->empty())) {
      s["clusterIPs"] = Json::array({s["clusterIP"]});
    } else if (!has_ip && ips && !ips->empty()) {
      s["clusterIP"] = (*ips)[0];
    }
    DefaultString(s, "ipFamilyPolicy", "SingleStack");
    if (Unset(s, "ipFamilies") || (s["ipFamilies"].is_array() && s["ipFamilies"].empty())) {
      const Json& ip = s.value("clusterIP", Json(""));
      bool v6 = ip.is_string() && ip.get<std::string>().find(':') != std::string::npos;
      s["ipFamilies"] = Json::array({v6 ? "IPv6" : "IPv4"});
    }
  }
}

void DefaultDeployment(Json& obj) {
  Json* spec = ObjectAt(obj, "spec");
  if (!spec) return;
  Default(*spec, "replicas", 1);
  if (Unset(*spec, "strategy")) (*spec)["strategy"] = Json::object();
  if (Json* strategy = ObjectAt(*spec, "strategy")) {
    DefaultString(*strategy, "type", "RollingUpdate");
    if ((*strategy)["type"] == "RollingUpdate") {
      if (Unset(*strategy, "rollingUpdate")) (*strategy)["rollingUpdate"] = Json::object();
      if (Json* ru = ObjectAt(*strategy, "rollingUpdate")) {
        Default(*ru, "maxUnavailable", "25%");
        Default(*ru, "maxSurge", "25%");
      }
    }
  }
  Default(*spec, "revisionHistoryLimit", 10);
  Default(*spec, "progressDeadlineSeconds", 600);
  DefaultPodTemplate(*spec);
}

void DefaultDaemonSet(Json& obj) {
  Json* spec = ObjectAt(obj, "spec");
  if (!spec) return;
  if (Unset(*spec, "updateStrategy")) (*spec)["updateStrategy"] = Json::object();
  if (Json* strategy = ObjectAt(*spec, "updateStrategy")) {
    DefaultString(*strategy, "type", "RollingUpdate");
    if ((*strategy)["type"] == "RollingUpdate") {
      if (Unset(*strategy, "rollingUpdate")) (*strategy)["rollingUpdate"] = Json::object();
      if (Json* ru = ObjectAt(*strategy, "rollingUpdate")) {
        Default(*ru, "maxUnavailable", 1);
        Default(*ru, "maxSurge", 0);
      }
    }
  }
  Default(*spec, "revisionHistoryLimit", 10);
  DefaultPodTemplate(*spec);
}

void DefaultStatefulSet(Json& obj) {
  Json* spec = ObjectAt(obj, "spec");
  if (!spec) return;
  DefaultString(*spec, "podManagementPolicy", "OrderedReady");
  if (Unset(*spec, "updateStrategy")) (*spec)["updateStrategy"] = Json::object();
  if (Json* strategy = ObjectAt(*spec, "updateStrategy")) {
    if (UnsetOrEmptyString(*strategy, "type")) {
      (*strategy)["type"] = "RollingUpdate";
      if (Unset(*strategy, "rollingUpdate")) (*strategy)["rollingUpdate"] = Json::object();
    }
    if ((*strategy)["type"] == "RollingUpdate") {
      if (Json* ru = ObjectAt(*strategy, "rollingUpdate")) Default(*ru, "partition", 0);
    }
  }
  if (Unset(*spec, "persistentVolumeClaimRetentionPolicy")) {
    (*spec)["persistentVolumeClaimRetentionPolicy"] = Json::object();
  }
  if (Json* policy = ObjectAt(*spec, "persistentVolumeClaimRetentionPolicy")) {
    DefaultString(*policy, "whenDeleted", "Retain");
    DefaultString(*policy, "whenScaled", "Retain");
  }
  Default(*spec, "replicas", 1);
  Default(*spec, "revisionHistoryLimit", 10);
  DefaultPodTemplate(*spec);
  ForEachObject(*spec, "volumeClaimTemplates", [](Json& pvc) {
    if (Json* pvc_spec = ObjectAt(pvc, "spec")) Default(*pvc_spec, "volumeMode", "Filesystem");
    if (Unset(pvc, "status")) pvc["status"] = Json::object();
    if (Json* status = ObjectAt(pvc, "status")) DefaultString(*status, "phase", "Pending");
  });
}

void DefaultJob(Json& obj) {
  Json* spec = ObjectAt(obj, "spec");
  if (!spec) return;
  Json& s = *spec;
  if (Unset(s, "completions") && Unset(s, "parallelism")) {
    s["completions"] = 1;
    s["parallelism"] = 1;
  }
  Default(s, "parallelism", 1);
  if (Unset(s, "backoffLimit")) {
    s["backoffLimit"] = Unset(s, "backoffLimitPerIndex") ? 6 : 2147483647;
  }
  if (Json* tmpl = ObjectAt(s, "template")) {
    Json* tmeta = ObjectAt(*tmpl, "metadata");
    Json* labels = tmeta ? ObjectAt(*tmeta, "labels") : nullptr;
    if (labels) {
      if (Unset(obj, "metadata")) obj["metadata"] = Json::object();
      if (Json* meta = ObjectAt(obj, "metadata")) {
        Json* own = ObjectAt(*meta, "labels");
        if (!own || own->empty()) (*meta)["labels"] = *labels;
      }
    }
  }
  DefaultString(s, "completionMode", "NonIndexed");
  Default(s, "suspend", false);
  bool has_failure_policy = false;
  if (Json* policy = ObjectAt(s, "podFailurePolicy")) {
    has_failure_policy = true;
    ForEachObject(*policy, "rules", [](Json& rule) {
      ForEachObject(rule, "onPodConditions", [](Json& c) { DefaultString(c, "status", "True"); });
    });
  }
  Default(s, "podReplacementPolicy", has_failure_policy ? "Failed" : "TerminatingOrFailed");
  Default(s, "manualSelector", false);
  DefaultPodTemplate(s);
}

void DefaultCronJob(Json& obj) {
  Json* spec = ObjectAt(obj, "spec");
  if (!spec) return;
  DefaultString(*spec, "concurrencyPolicy", "Allow");
  Default(*spec, "suspend", false);
  Default(*spec, "successfulJobsHistoryLimit", 3);
  Default(*spec, "failedJobsHistoryLimit", 1);
  if (Json* jt = ObjectAt(*spec, "jobTemplate")) {
    if (Json* job_spec = ObjectAt(*jt, "spec")) DefaultPodTemplate(*job_spec);
  }
}

// SetDefaults_ReplicationController: selector and labels from the
// template's labels when unset, replicas 1.
void DefaultReplicationController(Json& obj) {
  Json* spec = ObjectAt(obj, "spec");
  if (!spec) return;
  Json* tmpl = ObjectAt(*spec, "template");
  Json* tmeta = tmpl ? ObjectAt(*tmpl, "metadata") : nullptr;
  Json* tlabels = tmeta ? ObjectAt(*tmeta, "labels") : nullptr;
  if (tlabels && !tlabels->empty()) {
    Json* selector = ObjectAt(*spec, "selector");
    if (Unset(*spec, "selector") || (selector && selector->empty())) {
      (*spec)["selector"] = *tlabels;
    }
    if (Unset(obj, "metadata")) obj["metadata"] = Json::object();
    if (Json* meta = ObjectAt(obj, "metadata")) {
      Json* labels = ObjectAt(*meta, "labels");
      if (Unset(*meta, "labels") || (labels && labels->empty())) (*meta)["labels"] = *tlabels;
    }
  }
  Default(*spec, "replicas", 1);
  DefaultPodTemplate(*spec);
}

void DefaultNamespace(Json& obj) {
  Json* meta = ObjectAt(obj, "metadata");
  if (meta && !StringAt(*meta, "name").empty()) {
    if (!ObjectAt(*meta, "labels")) (*meta)["labels"] = Json::object();
    (*meta)["labels"]["kubernetes.io/metadata.name"] = (*meta)["name"];
  }
  // Create-time only (the Namespace strategy's PrepareForCreate): the
  // namespace controller later removes the finalizer through /finalize.
  Json* status = ObjectAt(obj, "status");
  if (status && !UnsetOrEmptyString(*status, "phase")) return;
  if (Unset(obj, "spec")) obj["spec"] = Json::object();
  if (Json* spec = ObjectAt(obj, "spec")) {
    if (Unset(*spec, "finalizers") || !(*spec)["finalizers"].is_array()) {
      (*spec)["finalizers"] = Json::array();
    }
    Json& finalizers = (*spec)["finalizers"];
    if (std::find(finalizers.begin(), finalizers.end(), Json("kubernetes")) == finalizers.end()) {
      finalizers.push_back("kubernetes");
    }
  }
  if (!status) obj["status"] = Json::object();
  obj["status"]["phase"] = "Active";
}

void DefaultSecret(Json& obj) {
  DefaultString(obj, "type", "Opaque");
  // v1 conversion: stringData overwrites data and is not stored.
  Json* string_data = ObjectAt(obj, "stringData");
  if (!string_data) return;
  if (!ObjectAt(obj, "data")) obj["data"] = Json::object();
  for (const auto& [k, v] : string_data->items()) {
    if (v.is_string()) obj["data"][k] = Base64Encode(v.get<std::string>());
  }
  obj.erase("stringData");
}

void DefaultNetworkPolicy(Json& obj) {
  Json* spec = ObjectAt(obj, "spec");
  if (!spec) return;
  for (const char* dir : {"ingress", "egress"}) {
    ForEachObject(*spec, dir, [](Json& rule) {
      ForEachObject(rule, "ports", [](Json& p) { DefaultString(p, "protocol", "TCP"); });
    });
  }
  Json* types = ArrayAt(*spec, "policyTypes");
  if (!types || types->empty()) {
    Json value = Json::array({"Ingress"});
    Json* egress = ArrayAt(*spec, "egress");
    if (egress && !egress->empty()) value.push_back("Egress");
    (*spec)["policyTypes"] = value;
  }
}

}  // namespace

void ApplyDefaults(const std::string& group, const std::string& kind, Json& obj,
                   const DefaultingOptions& opts) {
  if (!obj.is_object()) return;
  if (group.empty()) {
    if (kind == "Pod") {
      if (Unset(obj, "spec")) obj["spec"] = Json::object();
      DefaultPodSpec(obj["spec"], true, opts.default_toleration_seconds);
    } else if (kind == "PersistentVolume" || kind == "PersistentVolumeClaim") {
      // SetDefaults_PersistentVolume(Claim): phase Pending, Filesystem;
      // a volume's reclaim policy Retain.
      if (Json* spec = ObjectAt(obj, "spec")) {
        Default(*spec, "volumeMode", "Filesystem");
        if (kind == "PersistentVolume") Default(*spec, "persistentVolumeReclaimPolicy", "Retain");
      }
      if (Unset(obj, "status")) obj["status"] = Json::object();
      if (Json* status = ObjectAt(obj, "status")) Default(*status, "phase", "Pending");
    } else if (kind == "Service") {
      DefaultService(obj);
    } else if (kind == "Secret") {
      DefaultSecret(obj);
    } else if (kind == "Namespace") {
      DefaultNamespace(obj);
    } else if (kind == "Endpoints") {
      ForEachObject(obj, "subsets", [](Json& ss) {
        ForEachObject(ss, "ports", [](Json& p) { DefaultString(p, "protocol", "TCP"); });
      });
    } else if (kind == "LimitRange") {
      // SetDefaults_LimitRangeItem: a Container item's default limit is its
      // max, its default request the default limit, else its min.
      if (Json* spec = ObjectAt(obj, "spec")) {
        ForEachObject(*spec, "limits", [](Json& item) {
          if (item.value("type", Json("")) != Json("Container")) return;
          for (const auto& [from, to] : {std::pair{"max", "default"},
                                         std::pair{"default", "defaultRequest"},
                                         std::pair{"min", "defaultRequest"}}) {
            Json* src = ObjectAt(item, from);
            if (!src || src->empty()) continue;
            if (!ObjectAt(item, to)) item[to] = Json::object();
            for (const auto& [k, v] : src->items()) {
              if (!item[to].contains(k)) item[to][k] = v;
            }
          }
        });
      }
    } else if (kind == "Node") {
      if (Json* status = ObjectAt(obj, "status")) {
        if (Unset(*status, "allocatable") && ObjectAt(*status, "capacity")) {
          (*status)["allocatable"] = (*status)["capacity"];
        }
      }
    } else if (kind == "ReplicationController" || kind == "PodTemplate") {
      if (Json* spec = ObjectAt(obj, kind == "PodTemplate" ? "template" : "spec")) {
        if (kind == "PodTemplate") {
          if (Unset(*spec, "spec")) (*spec)["spec"] = Json::object();
          DefaultPodSpec((*spec)["spec"], false);
        } else {
          DefaultReplicationController(obj);
        }
      }
    }
  } else if (group == "apps") {
    if (kind == "Deployment") {
      DefaultDeployment(obj);
    } else if (kind == "ReplicaSet") {
      if (Json* spec = ObjectAt(obj, "spec")) {
        Default(*spec, "replicas", 1);
        DefaultPodTemplate(*spec);
      }
    } else if (kind == "DaemonSet") {
      DefaultDaemonSet(obj);
    } else if (kind == "StatefulSet") {
      DefaultStatefulSet(obj);
    }
  } else if (group == "batch") {
    if (kind == "Job") DefaultJob(obj);
    if (kind == "CronJob") DefaultCronJob(obj);
  } else if (group == "networking.k8s.io") {
    if (kind == "NetworkPolicy") DefaultNetworkPolicy(obj);
    if (kind == "IngressClass") {
      if (Json* spec = ObjectAt(obj, "spec")) {
        if (Json* params = ObjectAt(*spec, "parameters")) Default(*params, "scope", "Cluster");
      }
    }
  } else if (group == "scheduling.k8s.io") {
    if (kind == "PriorityClass") DefaultString(obj, "preemptionPolicy", "PreemptLowerPriority");
  } else if (group == "storage.k8s.io") {
    if (kind == "StorageClass") {
      Default(obj, "reclaimPolicy", "Delete");
      Default(obj, "volumeBindingMode", "Immediate");
    }
  } else if (group == "rbac.authorization.k8s.io") {
    // rbac/v1 defaults: the roleRef's group, and User and Group subjects'.
    if (kind == "RoleBinding" || kind == "ClusterRoleBinding") {
      if (Json* ref = ObjectAt(obj, "roleRef")) {
        DefaultString(*ref, "apiGroup", "rbac.authorization.k8s.io");
      }
      ForEachObject(obj, "subjects", [](Json& s) {
        std::string k = s.value("kind", Json("")).is_string() ? s.value("kind", "") : "";
        if (k == "User" || k == "Group") DefaultString(s, "apiGroup", "rbac.authorization.k8s.io");
      });
    }
  } else if (group == "admissionregistration.k8s.io") {
    // admissionregistration/v1 SetDefaults_*Webhook, _Rule, _ServiceReference.
    if (kind == "MutatingWebhookConfiguration" || kind == "ValidatingWebhookConfiguration") {
      ForEachObject(obj, "webhooks", [&](Json& h) {
        DefaultString(h, "failurePolicy", "Fail");
        DefaultString(h, "matchPolicy", "Equivalent");
        Default(h, "namespaceSelector", Json::object());
        Default(h, "objectSelector", Json::object());
        Default(h, "timeoutSeconds", 10);
        if (kind == "MutatingWebhookConfiguration") DefaultString(h, "reinvocationPolicy", "Never");
        ForEachObject(h, "rules", [](Json& r) { DefaultString(r, "scope", "*"); });
        if (Json* cc = ObjectAt(h, "clientConfig")) {
          if (Json* svc = ObjectAt(*cc, "service")) Default(*svc, "port", 443);
        }
      });
    }
  } else if (group == "discovery.k8s.io") {
    if (kind == "EndpointSlice") {
      ForEachObject(obj, "ports", [](Json& p) {
        Default(p, "name", "");
        Default(p, "protocol", "TCP");
      });
    }
  }
}

void ValidateObject(const std::string& group, const std::string& kind, const Json& obj,
                    const Json* old) {
  Validator v(group, kind);
  v.Run(obj, old);
  if (v.errs.empty()) return;
  std::string name;
  if (obj.is_object() && obj.contains("metadata") && obj["metadata"].is_object()) {
    const Json& n = obj["metadata"].value("name", Json(""));
    if (n.is_string()) name = n.get<std::string>();
  }
  // errors.NewInvalid: "<Kind[.group]> "<name>" is invalid: <aggregate>",
  // the aggregate listing each distinct message once, in brackets when several.
  std::vector<std::string> messages;
  std::set<std::string> seen;
  for (const auto& e : v.errs.items()) {
    std::string msg = e.field + ": " + e.body;
    if (seen.insert(msg).second) messages.push_back(msg);
  }
  std::string aggregate = messages.size() == 1 ? messages[0] : "[" + Join(messages, ", ") + "]";
  std::string qualified = group.empty() ? kind : kind + "." + group;
  Error err = Error::Invalid(qualified + " " + GoQuote(name) + " is invalid: " + aggregate);
  err.WithDetails(kind, name, group);
  for (const auto& e : v.errs.items()) err.WithCause({e.reason, e.body, e.field});
  throw err;
}

}  // namespace kin::apiserver
