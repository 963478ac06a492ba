// Service account tokens: what a pod or a `kubectl create token` user
// presents to the API as "Authorization: Bearer <token>".
//
// A token is a JWT (RFC 7519) signed with HS256 by a per-cluster secret key
// (pki/sa.key, 32 random bytes, hex, mode 0600, made by the first `kin
// serve`). Its claims are kube-apiserver's: iss, sub
// (system:serviceaccount:<ns>:<name>), aud, iat, nbf, exp, jti, and under
// "kubernetes.io" the namespace, the service account (name, uid), the
// object it is bound to (a pod, a secret or a node, name and uid; a pod's
// node too) and, for an extended token, warnafter. Kubernetes signs RS256/ES256 with the service account key;
// clients treat tokens as opaque, so the algorithm is kin's choice.
//
// This module mints and reads tokens and checks what needs no lookup
// (signature, time, audience); apiserver/authentication.h checks that the
// service account and the bound object still exist.
//
// Thread-safety: stateless functions; a ServiceAccountTokens is immutable
// and shared.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kin::apiserver {

// A reference in the "kubernetes.io" claim: {"name", "uid"}.
struct TokenObjectRef {
  std::string name;
  std::string uid;
  bool empty() const { return name.empty(); }
};

struct ServiceAccountClaims {
  std::string issuer;
  std::vector<std::string> audiences;
  int64_t issued_at = 0;   // unix seconds; 0: not set
  int64_t not_before = 0;  // 0: not set
  int64_t expires = 0;     // 0: never (the tokens the node agent mounts)
  std::string id;          // jti; empty: none
  std::string ns;
  std::string service_account;
  std::string service_account_uid;  // empty: any uid (a pod minted before its SA existed)
  TokenObjectRef pod, secret, node;
  // kubernetes.io.warnafter (unix seconds; 0: none): when a token whose
  // lifetime the API server extended would have expired as requested.
  int64_t warn_after = 0;

  // "system:serviceaccount:<ns>:<name>" and its groups, as Kubernetes names them.
  std::string UserName() const;
  std::vector<std::string> Groups() const;
};

class ServiceAccountTokens {
 public:
  // Loads the key from `key_file`, creating it when missing; throws naming
  // the file when it cannot be read or made, or is malformed.
  static ServiceAccountTokens LoadOrCreate(const std::string& key_file);
  explicit ServiceAccountTokens(std::string key) : key_(std::move(key)) {}

  std::string Mint(const ServiceAccountClaims& claims) const;
  // The claims of a well-formed token signed with this key; nullopt for
  // anything else. Time and audience are not checked here (CheckClaims).
  std::optional<ServiceAccountClaims> Verify(std::string_view token) const;

 private:
  std::string key_;  // raw bytes
};

// Why `c` is not acceptable at `now` (unix seconds) for a request meant for
// one of `audiences`, in kube-apiserver's words ("service account token has
// expired", "token audiences [\"a\"] is invalid for the target audiences
// [\"b\"]"); empty when it is.
std::string CheckClaims(const ServiceAccountClaims& c, const std::vector<std::string>& audiences,
                        int64_t now);
// Go's %q of a []string: ["a" "b"].
std::string GoQuotedList(const std::vector<std::string>& list);

}  // namespace kin::apiserver
