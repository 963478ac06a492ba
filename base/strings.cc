#include "base/strings.h"

#include <cstdint>
#include <cstdio>

namespace kin {

std::string Join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += sep;
    out += parts[i];
  }
  return out;
}

std::string GoQuote(std::string_view s) {
  std::string out = "\"";
  size_t i = 0;
  auto hex = [&out](unsigned char c) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "\\x%02x", c);
    out += buf;
  };
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\a':
          out += "\\a";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\v':
          out += "\\v";
          break;
        default:
          if (c < 0x20 || c == 0x7f) {
            hex(c);
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    size_t len = (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool ok = len != 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) {
      ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    }
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      hex(c);
      ++i;
    }
  }
  out += '"';
  return out;
}

std::string Base64Encode(std::string_view data) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < data.size(); i += 3) {
    uint32_t v = (uint8_t(data[i]) << 16) | (uint8_t(data[i + 1]) << 8) | uint8_t(data[i + 2]);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < data.size()) {
    uint32_t v = uint8_t(data[i]) << 16;
    if (i + 1 < data.size()) v |= uint8_t(data[i + 1]) << 8;
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < data.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// Go's base64.StdEncoding: \r and \n are skipped; the first bad byte is
// reported as Go reports it ("illegal base64 data at input byte N").
std::optional<std::string> Base64Decode(std::string_view in, size_t* bad_at) {
  size_t unused = 0;
  if (bad_at == nullptr) bad_at = &unused;
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  size_t i = 0;
  while (i < in.size()) {
    int vals[4];
    int n = 0;
    size_t start = i;
    for (; n < 4 && i < in.size(); ++i) {
      char c = in[i];
      if (c == '\r' || c == '\n') continue;
      if (c == '=') break;
      int v = value(c);
      if (v < 0) {
        *bad_at = i;
        return std::nullopt;
      }
      vals[n++] = v;
    }
    if (n == 4) {
      out += static_cast<char>((vals[0] << 2) | (vals[1] >> 4));
      out += static_cast<char>(((vals[1] & 0xf) << 4) | (vals[2] >> 2));
      out += static_cast<char>(((vals[2] & 0x3) << 6) | vals[3]);
      continue;
    }
    if (n == 0 && i == in.size()) break;  // only line breaks were left
    // A short group must be completed by '=' padding to four characters.
    size_t pad = 0;
    while (i < in.size() && in[i] == '=' && n + pad < 4) {
      ++pad;
      ++i;
    }
    if (n < 2 || n + pad != 4 || i != in.size()) {
      *bad_at = n < 2 ? start + static_cast<size_t>(n) : i;
      if (*bad_at > in.size()) *bad_at = in.size();
      return std::nullopt;
    }
    out += static_cast<char>((vals[0] << 2) | (vals[1] >> 4));
    if (n == 3) out += static_cast<char>(((vals[1] & 0xf) << 4) | (vals[2] >> 2));
  }
  return out;
}

std::vector<std::string_view> SplitPathViews(std::string_view path) {
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    if (j > i) parts.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return parts;
}

std::vector<std::string> SplitPath(std::string_view path) {
  std::vector<std::string> parts;
  for (std::string_view v : SplitPathViews(path)) parts.emplace_back(v);
  return parts;
}

}  // namespace kin
