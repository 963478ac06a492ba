#include "runtime/token_manager.h"

#include <optional>
#include <random>
#include <utility>

#include "base/error.h"
#include "client/object.h"

namespace kin {

using std::chrono::seconds;
using TimePoint = std::chrono::system_clock::time_point;

bool TokenRequiresRefresh(TimePoint now, TimePoint expires, int64_t expiration_seconds,
                          seconds max_age, seconds jitter) {
  const TimePoint issued = expires - seconds(expiration_seconds);
  if (now > issued + max_age - jitter) return true;
  // Within the last 20% of the lifetime (plus the jitter) before it expires.
  return now > expires - seconds(expiration_seconds * 20 / 100) - jitter;
}

ServiceAccountTokenManager::ServiceAccountTokenManager(TokenRequester request, seconds max_age,
                                                       Clock clock, seconds max_jitter)
    : request_(std::move(request)),
      max_age_(max_age),
      clock_(std::move(clock)),
      max_jitter_(max_jitter) {}

TimePoint ServiceAccountTokenManager::Now() const {
  return clock_ ? clock_() : std::chrono::system_clock::now();
}

std::string ServiceAccountTokenManager::Token(const Json& pod, const Json& source) {
  const Json& meta = object::Field(pod, "metadata");
  const Json& spec = object::Field(pod, "spec");
  std::string ns = object::Str(meta, "namespace");
  std::string sa = object::Str(spec, "serviceAccountName");
  if (sa.empty()) sa = "default";
  const std::string pod_name = object::Str(meta, "name"), pod_uid = object::Str(meta, "uid");
  const std::string audience = object::Str(source, "audience");
  int64_t expiration = 3600;  // the API's default for the field
  if (source.is_object() && source.contains("expirationSeconds") &&
      source["expirationSeconds"].is_number_integer()) {
    expiration = source["expirationSeconds"].get<int64_t>();
  }
  const Key key{ns, sa, pod_name, pod_uid, audience, expiration};
  const TimePoint now = Now();
  seconds jitter{0};
  if (max_jitter_.count() > 0) {
    thread_local std::mt19937 rng{std::random_device{}()};
    jitter = seconds(std::uniform_int_distribution<int64_t>(0, max_jitter_.count())(rng));
  }
  std::optional<Entry> cached;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) cached = it->second;
  }
  if (cached &&
      !TokenRequiresRefresh(now, cached->expires, cached->expiration_seconds, max_age_, jitter)) {
    return cached->token;
  }

  // What the kubelet asks for: the source's audience (none: the API's),
  // its lifetime, bound to the pod.
  Json req_spec = {{"expirationSeconds", expiration},
                   {"boundObjectRef",
                    {{"apiVersion", "v1"}, {"kind", "Pod"}, {"name", pod_name}, {"uid", pod_uid}}}};
  if (!audience.empty()) req_spec["audiences"] = Json::array({audience});
  Json request = {{"apiVersion", "authentication.k8s.io/v1"},
                  {"kind", "TokenRequest"},
                  {"metadata", {{"name", sa}, {"namespace", ns}}},
                  {"spec", req_spec}};
  Entry fresh;
  try {
    Json answer = request_(ns, sa, request);
    const Json& status = object::Field(answer, "status");
    fresh.token = object::Str(status, "token");
    auto expires = object::ParseRfc3339(object::Str(status, "expirationTimestamp"));
    if (fresh.token.empty() || !expires) {
      throw Error::Internal("the TokenRequest for service account " + ns + "/" + sa +
                            " came back without a token or an expirationTimestamp");
    }
    fresh.expires = *expires;
    fresh.expiration_seconds = expiration;
  } catch (const Error& e) {
    // The token that is due keeps serving while it is valid, as the kubelet's.
    if (cached && now < cached->expires) return cached->token;
    throw Error(e.code(), "failed to fetch token: " + e.message());
  }
  std::lock_guard<std::mutex> l(mu_);
  cache_[key] = fresh;
  return fresh.token;
}

void ServiceAccountTokenManager::ForgetPod(const std::string& pod_uid) {
  const TimePoint now = Now();
  std::lock_guard<std::mutex> l(mu_);
  for (auto it = cache_.begin(); it != cache_.end();) {
    if (std::get<3>(it->first) == pod_uid || it->second.expires < now) {
      it = cache_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace kin
