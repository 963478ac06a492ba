#include "apiserver/service_account_token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>

#include "base/error.h"
#include "base/file.h"
#include "base/strings.h"
#include "base/yaml.h"

namespace kin::apiserver {

namespace {

constexpr size_t kKeyBytes = 32;

std::string Base64Url(std::string_view data) {
  std::string s = Base64Encode(data);
  while (!s.empty() && s.back() == '=') s.pop_back();
  for (auto& c : s) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return s;
}

std::optional<std::string> FromBase64Url(std::string_view text) {
  std::string s(text);
  for (auto& c : s) {
    if (c == '-')
      c = '+';
    else if (c == '_')
      c = '/';
    else if (c == '+' || c == '/' || c == '=')
      return std::nullopt;
  }
  while (s.size() % 4 != 0) s += '=';
  return Base64Decode(s);
}

std::string Hmac(const std::string& key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len) == nullptr) {
    throw Error::Internal("service account token: HMAC-SHA256 failed");
  }
  return std::string(reinterpret_cast<const char*>(md), len);
}

std::string Hex(std::string_view bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

std::optional<std::string> Unhex(std::string_view text) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  if (text.size() % 2 != 0) return std::nullopt;
  std::string out;
  for (size_t i = 0; i < text.size(); i += 2) {
    int hi = nibble(text[i]), lo = nibble(text[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi << 4 | lo);
  }
  return out;
}

const std::string& Header() {
  static const std::string h = Base64Url(R"({"alg":"HS256","typ":"JWT"})");
  return h;
}

}  // namespace

std::string ServiceAccountClaims::UserName() const {
  return "system:serviceaccount:" + ns + ":" + service_account;
}

std::vector<std::string> ServiceAccountClaims::Groups() const {
  return {"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"};
}

ServiceAccountTokens ServiceAccountTokens::LoadOrCreate(const std::string& key_file) {
  std::optional<std::string> text = ReadFileIfExists(key_file);
  if (!text) {
    unsigned char raw[kKeyBytes];
    if (RAND_bytes(raw, sizeof raw) != 1) {
      throw Error::Internal("service account key " + key_file + ": no random bytes");
    }
    std::string hex = Hex(std::string_view(reinterpret_cast<const char*>(raw), sizeof raw));
    // Made 0600 from the first byte; a concurrent maker's key may win the
    // rename, so the file is read back rather than trusting our own.
    WriteFileAtomic(key_file, hex + "\n", 0600, true);
    text = ReadFileIfExists(key_file);
    if (!text) throw Error::Internal("service account key " + key_file + ": vanished");
  }
  std::string s = *text;
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  std::optional<std::string> key = Unhex(s);
  if (!key || key->size() < 16) {
    throw Error::Invalid("service account key " + key_file +
                         ": not a key (want at least 32 lowercase hex digits)");
  }
  return ServiceAccountTokens(*key);
}

namespace {

Json RefJson(const TokenObjectRef& r) {
  Json j = {{"name", r.name}};
  if (!r.uid.empty()) j["uid"] = r.uid;
  return j;
}

// A reference claim; absent or malformed: empty.
TokenObjectRef RefFrom(const Json& k, const char* key) {
  TokenObjectRef r;
  auto it = k.find(key);
  if (it == k.end() || !it->is_object()) return r;
  r.name = it->value("name", "");
  r.uid = it->value("uid", "");
  return r;
}

int64_t NumericDate(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

}  // namespace

std::string ServiceAccountTokens::Mint(const ServiceAccountClaims& c) const {
  // Keys in kube-apiserver's order (Go marshals them sorted; so does Json).
  Json k = {{"namespace", c.ns}, {"serviceaccount", {{"name", c.service_account}}}};
  if (!c.service_account_uid.empty()) k["serviceaccount"]["uid"] = c.service_account_uid;
  if (!c.pod.empty()) k["pod"] = RefJson(c.pod);
  if (!c.secret.empty()) k["secret"] = RefJson(c.secret);
  if (!c.node.empty()) k["node"] = RefJson(c.node);
  if (c.warn_after) k["warnafter"] = c.warn_after;
  Json claims = {{"iss", c.issuer}, {"sub", c.UserName()}, {"aud", c.audiences},
                 {"kubernetes.io", k}};
  if (c.issued_at) claims["iat"] = c.issued_at;
  if (c.not_before) claims["nbf"] = c.not_before;
  if (c.expires) claims["exp"] = c.expires;
  if (!c.id.empty()) claims["jti"] = c.id;
  std::string signing_input = Header() + "." + Base64Url(claims.dump());
  return signing_input + "." + Base64Url(Hmac(key_, signing_input));
}

std::optional<ServiceAccountClaims> ServiceAccountTokens::Verify(std::string_view token) const {
  size_t dot1 = token.find('.');
  if (dot1 == std::string_view::npos) return std::nullopt;
  size_t dot2 = token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return std::nullopt;
  }
  if (token.substr(0, dot1) != Header()) return std::nullopt;
  std::string_view signing_input = token.substr(0, dot2);
  std::optional<std::string> sig = FromBase64Url(token.substr(dot2 + 1));
  std::string want = Hmac(key_, signing_input);
  if (!sig || sig->size() != want.size() ||
      CRYPTO_memcmp(sig->data(), want.data(), want.size()) != 0) {
    return std::nullopt;
  }
  std::optional<std::string> payload = FromBase64Url(token.substr(dot1 + 1, dot2 - dot1 - 1));
  if (!payload) return std::nullopt;
  try {
    Json j = Json::parse(*payload);
    const Json& k = j.at("kubernetes.io");
    ServiceAccountClaims c;
    c.issuer = j.value("iss", "");
    // "aud" is a string or a list of strings (RFC 7519 4.1.3).
    if (auto aud = j.find("aud"); aud != j.end()) {
      if (aud->is_string()) {
        c.audiences.push_back(aud->get<std::string>());
      } else {
        c.audiences = aud->get<std::vector<std::string>>();
      }
    }
    c.issued_at = NumericDate(j, "iat");
    c.not_before = NumericDate(j, "nbf");
    c.expires = NumericDate(j, "exp");
    c.id = j.value("jti", "");
    c.ns = k.at("namespace").get<std::string>();
    c.service_account = k.at("serviceaccount").at("name").get<std::string>();
    c.service_account_uid = k.at("serviceaccount").value("uid", "");
    c.pod = RefFrom(k, "pod");
    c.secret = RefFrom(k, "secret");
    c.node = RefFrom(k, "node");
    c.warn_after = NumericDate(k, "warnafter");
    if (c.ns.empty() || c.service_account.empty()) return std::nullopt;
    if (j.value("sub", "") != c.UserName()) return std::nullopt;
    return c;
  } catch (const Json::exception&) {
    return std::nullopt;
  }
}

std::string GoQuotedList(const std::vector<std::string>& list) {
  std::string out = "[";
  for (size_t i = 0; i < list.size(); ++i) {
    if (i) out += ' ';
    out += Json(list[i]).dump();
  }
  return out + "]";
}

std::string CheckClaims(const ServiceAccountClaims& c, const std::vector<std::string>& audiences,
                        int64_t now) {
  // go-jose's default leeway for clocks that disagree a little: one minute.
  constexpr int64_t kLeeway = 60;
  // The audience first, then the time, in kube-apiserver's order.
  bool meant = std::any_of(c.audiences.begin(), c.audiences.end(), [&](const std::string& a) {
    return std::find(audiences.begin(), audiences.end(), a) != audiences.end();
  });
  if (!meant) {
    return "token audiences " + GoQuotedList(c.audiences) +
           " is invalid for the target audiences " + GoQuotedList(audiences);
  }
  if (c.expires != 0 && now - kLeeway > c.expires) return "service account token has expired";
  if (c.not_before != 0 && now + kLeeway < c.not_before) {
    return "service account token is not valid yet";
  }
  return "";
}

}  // namespace kin::apiserver
