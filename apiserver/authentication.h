// Authentication with service account tokens, as kube-apiserver does it:
// the bearer-token check of every request, TokenRequest (POST
// serviceaccounts/NAME/token, `kubectl create token`), TokenReview and
// SelfSubjectReview (`kubectl auth whoami`), all authentication.k8s.io/v1.
//
// A token (apiserver/service_account_token.h) is accepted when its
// signature is this cluster's, its issuer is this API server's, it has not
// expired (one minute of leeway, as go-jose), its audiences meet the ones
// asked for (the API server's own unless a TokenReview names others), its
// service account exists with the uid it names, and the object it is bound
// to (pod or secret; a node when bound to nothing else) exists with its uid.
// The user is system:serviceaccount:<ns>:<name>, uid the service account's,
// groups system:serviceaccounts, system:serviceaccounts:<ns> and
// system:authenticated; extra carries the credential id (JTI=...) and the
// bound pod's and node's names and uids, as kube-apiserver sets them.
//
// TokenRequest defaults as kube-apiserver: audiences the API server's,
// expirationSeconds 3600 (at least 600: Invalid otherwise, naming
// spec.expirationSeconds); a pod it binds to must run as that service
// account; a boundObjectRef uid must match (Conflict otherwise).
//
// A pod's kube-api-access volume gets its token from CreateToken (a
// TokenRequest bound to the pod, 3607 s, rotated by the node agent as the
// kubelet does). The tokens the node agent mounts into a pod without that
// volume (PodToken; a pod made before kin's admission added it) are bound
// to the pod and do not expire: they live as long as the pod, and are
// minted the same for the same pod.
//
// Thread-safety: immutable after construction; methods are called
// concurrently. The lookup must be thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "apiserver/service_account_token.h"
#include "base/yaml.h"

namespace kin::apiserver {

// authentication.k8s.io/v1 UserInfo.
struct UserInfo {
  std::string username;
  std::string uid;
  std::vector<std::string> groups;
  std::map<std::string, std::vector<std::string>> extra;
  Json ToJson() const;
};

struct TokenAuthResult {
  bool authenticated = false;
  UserInfo user;
  std::vector<std::string> audiences;  // the token's audiences that were asked for
  std::string error;                   // why not, when not authenticated
};

struct AuthenticationOptions {
  // iss of the tokens minted, and the only one accepted.
  std::string issuer = "https://kubernetes.default.svc.cluster.local";
  // The API server's audiences (kube-apiserver's --api-audiences, which
  // default to the issuer): what a token must be meant for to reach the API.
  std::vector<std::string> api_audiences = {"https://kubernetes.default.svc.cluster.local"};
  // kube-apiserver's --service-account-extend-token-expiration (default
  // true): a TokenRequest bound to a pod, for the API server's audiences
  // only, asking for exactly kWarnOnlyBoundTokenExpirationSeconds (what
  // the kube-api-access volume asks for) gets a token valid for
  // kExpirationExtensionSeconds whose kubernetes.io.warnafter is the
  // requested expiry, so clients that never read the token again keep
  // working; status.expirationTimestamp stays the requested one, which is
  // what the kubelet rotates by.
  bool extend_token_expiration = true;
};

// WarnOnlyBoundTokenExpirationSeconds and ExpirationExtensionSeconds.
inline constexpr int64_t kWarnOnlyBoundTokenExpirationSeconds = 60 * 60 + 7;
inline constexpr int64_t kExpirationExtensionSeconds = 24 * 365 * 60 * 60;

class Authentication {
 public:
  // The stored object `bucket` ("serviceaccounts", "pods", "secrets",
  // "nodes"), `ns` ("" for nodes), `name`; nullopt when absent.
  using Lookup = std::function<std::optional<Json>(
      const std::string& bucket, const std::string& ns, const std::string& name)>;
  // Unix seconds now; tests pass their own clock.
  using Clock = std::function<int64_t()>;

  // `tokens` must outlive this object.
  Authentication(const ServiceAccountTokens& tokens, Lookup lookup, AuthenticationOptions opts = {},
                 Clock clock = {});

  // The bearer-token check. `audiences` empty: the API server's.
  TokenAuthResult AuthenticateToken(std::string_view token,
                                    const std::vector<std::string>& audiences = {}) const;

  // POST /api/v1/namespaces/NS/serviceaccounts/NAME/token: the TokenRequest
  // answered (status.token, status.expirationTimestamp). Throws kin::Error
  // (NotFound, Invalid, BadRequest, Conflict) as kube-apiserver answers.
  Json CreateToken(const std::string& ns, const std::string& name, const Json& request) const;
  // POST tokenreviews: the TokenReview with its status.
  Json ReviewToken(const Json& review) const;
  // POST selfsubjectreviews: the SelfSubjectReview for `user`.
  Json ReviewSelf(const UserInfo& user, const Json& review) const;

  // The token the node agent mounts into `pod` the old way (bound to it, no expiry).
  std::string PodToken(const Json& pod) const;

  const AuthenticationOptions& options() const { return opts_; }

 private:
  int64_t Now() const;

  const ServiceAccountTokens& tokens_;
  Lookup lookup_;
  AuthenticationOptions opts_;
  Clock clock_;
};

}  // namespace kin::apiserver
