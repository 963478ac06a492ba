#include "client/quantity.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <string>

namespace kin {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

using i128 = __int128;
constexpr i128 kBig = static_cast<i128>(1) << 120;

int64_t ClampInt64(i128 v) {
  if (v > std::numeric_limits<int64_t>::max()) return std::numeric_limits<int64_t>::max();
  if (v < std::numeric_limits<int64_t>::min()) return std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(v);
}

}  // namespace

std::optional<Quantity> ParseQuantityText(std::string_view s, std::string* error) {
  auto fail = [error](const char* msg) -> std::optional<Quantity> {
    if (error) *error = msg;
    return std::nullopt;
  };
  if (s.empty()) return fail(kQuantityFormatError);
  Quantity q;
  size_t pos = 0, end = s.size();
  if (s[0] == '-') {
    q.negative = true;
    ++pos;
  } else if (s[0] == '+') {
    ++pos;
  }
  size_t num_start = pos;
  while (pos < end && IsDigit(s[pos])) ++pos;
  std::string num(s.substr(num_start, pos - num_start));
  std::string denom;
  if (pos < end && s[pos] == '.') {
    ++pos;
    size_t d = pos;
    while (pos < end && IsDigit(s[pos])) ++pos;
    denom = std::string(s.substr(d, pos - d));
  }
  if (num.empty() && denom.empty()) return fail(kQuantityFormatError);
  size_t suffix_start = pos;
  static constexpr std::string_view kSuffixChars = "eEinumkKMGTP";
  while (pos < end && kSuffixChars.find(s[pos]) != std::string_view::npos) ++pos;
  if (pos < end && (s[pos] == '-' || s[pos] == '+')) ++pos;
  while (pos < end && IsDigit(s[pos])) ++pos;
  if (pos != end) return fail(kQuantityFormatError);
  std::string_view suffix = s.substr(suffix_start);

  static const std::map<std::string_view, int> kDecimal = {
      {"", 0},  {"n", -9}, {"u", -6}, {"m", -3}, {"k", 3},
      {"M", 6}, {"G", 9},  {"T", 12}, {"P", 15}, {"E", 18}};
  static const std::map<std::string_view, int> kBinary = {{"Ki", 10}, {"Mi", 20}, {"Gi", 30},
                                                          {"Ti", 40}, {"Pi", 50}, {"Ei", 60}};
  int64_t exp10 = 0;
  if (auto it = kDecimal.find(suffix); it != kDecimal.end()) {
    exp10 = it->second;
  } else if (auto bit = kBinary.find(suffix); bit != kBinary.end()) {
    q.exp2 = bit->second;
  } else if (suffix.size() > 1 && (suffix[0] == 'e' || suffix[0] == 'E')) {
    std::string_view e = suffix.substr(1);
    size_t k = (e[0] == '+' || e[0] == '-') ? 1 : 0;
    if (k == e.size() || e.size() > 18 ||
        !std::all_of(e.begin() + static_cast<long>(k), e.end(), IsDigit)) {
      return fail(kQuantitySuffixError);
    }
    exp10 = std::stoll(std::string(e));
  } else {
    return fail(kQuantitySuffixError);
  }
  std::string all = num + denom;
  size_t nz = all.find_first_not_of('0');
  q.digits = nz == std::string::npos ? "0" : all.substr(nz);
  q.exp10 = exp10 - static_cast<int64_t>(denom.size());
  if (q.digits == "0") q.negative = false;
  return q;
}

__int128 QuantityScaledCeil(const Quantity& q, int scale10) {
  i128 v = 0;
  for (char c : q.digits) {
    v = v * 10 + (c - '0');
    if (v > kBig) {
      v = kBig;
      break;
    }
  }
  // Zero stays zero whatever the exponent; scaling it up would only count
  // to the exponent ("0E9223372034772807" hung; found by fuzz/quantity_fuzzer).
  if (v == 0) return 0;
  for (int i = 0; i < q.exp2 && v < kBig; ++i) v *= 2;
  int64_t e = q.exp10 + scale10;
  if (e >= 0) {
    for (int64_t i = 0; i < e && v < kBig; ++i) v *= 10;
    v = std::min(v, kBig);
  } else {
    i128 d = 1;
    bool tiny = false;
    for (int64_t i = 0; i < -e; ++i) {
      if (d > kBig / 10) {
        tiny = true;
        break;
      }
      d *= 10;
    }
    v = tiny ? (v > 0 ? 1 : 0) : (v + d - 1) / d;
  }
  return q.negative ? -v : v;
}

std::optional<double> ParseQuantity(std::string_view text) {
  auto q = ParseQuantityText(text, nullptr);
  if (!q) return std::nullopt;
  // One strtold of digits and exponent together: stold threw
  // std::out_of_range past long double's range, and 0 × pow(10, huge) or
  // huge × pow(10, -huge) made NaN (found by fuzz/quantity_fuzzer); strtold
  // saturates to HUGE_VALL or 0 and rounds once.
  long double v = std::strtold((q->digits + "e" + std::to_string(q->exp10)).c_str(), nullptr) *
                  std::pow(2.0L, q->exp2);
  return static_cast<double>(q->negative ? -v : v);
}

std::optional<int64_t> ParseQuantityValue(std::string_view text) {
  auto q = ParseQuantityText(text, nullptr);
  if (!q) return std::nullopt;
  return ClampInt64(QuantityScaledCeil(*q, 0));
}

std::optional<int64_t> ParseQuantityMilli(std::string_view text) {
  auto q = ParseQuantityText(text, nullptr);
  if (!q) return std::nullopt;
  return ClampInt64(QuantityScaledCeil(*q, 3));
}

}  // namespace kin
