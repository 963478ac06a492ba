// Service account tokens: what a pod presents to the API as
// "Authorization: Bearer <token>".
//
// A token is a JWT (RFC 7519) signed with HS256 by a per-cluster secret key
// (pki/sa.key, 32 random bytes, hex, mode 0600, made by the first `kin
// serve`), bound to one pod as kube-apiserver's bound tokens are: its claims
// name the namespace, the service account and the pod (name and uid), and
// the API accepts it only while that pod exists with that uid. It has no
// expiry: it lives as long as the pod. Clients treat it as opaque, as with
// Kubernetes' own (which are signed RS256/ES256 by the service account key).
//
// Thread-safety: stateless functions; a ServiceAccountTokens is immutable
// and shared.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kin::apiserver {

struct ServiceAccountClaims {
  std::string ns;
  std::string service_account;  // "default" unless the pod names one
  std::string pod_name;
  std::string pod_uid;

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
  // The claims of a token signed with this key; nullopt for anything else.
  std::optional<ServiceAccountClaims> Verify(std::string_view token) const;

 private:
  std::string key_;  // raw bytes
};

}  // namespace kin::apiserver
