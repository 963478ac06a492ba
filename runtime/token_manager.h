// The node agent's service account tokens for projected serviceAccountToken
// volume sources, as the kubelet's token manager (pkg/kubelet/token) keeps
// them: a TokenRequest per (namespace, service account, pod name and uid,
// audience, expirationSeconds), bound to the pod (the API adds its node),
// answered from a cache until the token is due for a refresh:
//
//   - it is older than 80% of its requested lifetime (the kubelet reckons
//     from expirationTimestamp - expirationSeconds; for the kube-api-access
//     volume's 3607 s the API server mints a token valid a year, with
//     warnafter, but answers the requested expirationTimestamp, so the
//     rotation stays at 80% of 3607 s), or
//   - it is older than max_age (the kubelet's 24 h),
//
// less a jitter of up to 10 s, so the pods of a node do not all ask at once.
// A refresh that fails keeps the cached token while it is still valid. The
// volume that shows the token is re-written by PodVolumes::Refresh (one
// ..data rename), which the agent calls every volume_refresh_interval.
//
// Thread-safety: all methods may be called concurrently.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "base/yaml.h"

namespace kin {

// kubelet's requiresRefresh, with the jitter as an argument: `expires` is
// the token's expirationTimestamp, `expiration_seconds` the lifetime asked
// for (spec.expirationSeconds).
bool TokenRequiresRefresh(std::chrono::system_clock::time_point now,
                          std::chrono::system_clock::time_point expires, int64_t expiration_seconds,
                          std::chrono::seconds max_age,
                          std::chrono::seconds jitter = std::chrono::seconds(0));

// POST serviceaccounts/<name>/token in namespace `ns` with `request` (an
// authentication.k8s.io/v1 TokenRequest); returns the answered TokenRequest
// (status.token, status.expirationTimestamp) or throws kin::Error.
using TokenRequester =
    std::function<Json(const std::string& ns, const std::string& name, const Json& request)>;

class ServiceAccountTokenManager {
 public:
  using Clock = std::function<std::chrono::system_clock::time_point()>;
  // `clock` unset: the system clock. `max_jitter` 0: no jitter (tests).
  ServiceAccountTokenManager(TokenRequester request,
                             std::chrono::seconds max_age = std::chrono::hours(24),
                             Clock clock = {},
                             std::chrono::seconds max_jitter = std::chrono::seconds(10));

  // The token for `pod`'s projected source `source` ({audience,
  // expirationSeconds, path}), from the cache or asked for anew. Throws
  // kin::Error when none can be had.
  std::string Token(const Json& pod, const Json& source);

  // Drops the pod's tokens (the pod is gone from the node), and any other
  // that has expired.
  void ForgetPod(const std::string& pod_uid);

 private:
  using Key = std::tuple<std::string, std::string, std::string, std::string, std::string, int64_t>;
  struct Entry {
    std::string token;
    std::chrono::system_clock::time_point expires;
    int64_t expiration_seconds = 0;
  };
  std::chrono::system_clock::time_point Now() const;

  TokenRequester request_;
  std::chrono::seconds max_age_;
  Clock clock_;
  std::chrono::seconds max_jitter_;
  std::mutex mu_;
  std::map<Key, Entry> cache_;
};

}  // namespace kin
