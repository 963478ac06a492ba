// Resource quota accounting, as kube-apiserver's quota evaluators
// (pkg/quota/v1/evaluator/core) and k8s.io/apiserver's quota helpers
// measure it: what one object uses (pods, services, persistent volume
// claims, object counts `count/<resource>[.<group>]` and their legacy
// names), which quotas match an object (scopes Terminating, NotTerminating,
// BestEffort, NotBestEffort, PriorityClass), the pod constraint behind
// "must specify requests.cpu", and resource lists with quantities summed
// exactly and printed as resource.Quantity.String() prints them.
//
// Shared by the ResourceQuota admission (apiserver/resource_quota.h), the
// LimitRanger admission and the resourcequota controller
// (controllers/resource_quota.h).
//
// Thread-safety: pure functions and plain value types.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/yaml.h"
#include "client/resources.h"

namespace kin::quota {

// A quantity in nano-units (exact for every quantity Kubernetes keeps
// without rounding) and the format resource.Quantity keeps with it.
struct Amount {
  enum class Format { kDecimalSI, kBinarySI, kDecimalExponent };
  __int128 nano = 0;
  Format format = Format::kDecimalSI;

  // resource.Quantity.String(): the canonical form ("100m", "1536Mi", "2").
  std::string String() const;
  // nullopt when `text` is not a quantity.
  static std::optional<Amount> Parse(const std::string& text);
  static std::optional<Amount> FromJson(const Json& v);
  static Amount Count(int64_t n) { return Amount{static_cast<__int128>(n) * 1000000000, {}}; }
  // Quantity.MilliValue() / Value(), rounded up.
  int64_t Milli() const;
  int64_t Value() const;
};

// Resource name -> amount, in name order.
using ResourceList = std::map<std::string, Amount>;

// A ResourceList read from a JSON map of quantities; entries that do not
// parse are left out.
ResourceList FromJson(const Json& list);
Json ToJson(const ResourceList& list);

// quota.Add: each name's sum (a Quantity keeps the format of its first
// non-zero summand).
ResourceList Add(const ResourceList& a, const ResourceList& b);
// quota.Subtract.
ResourceList Subtract(const ResourceList& a, const ResourceList& b);
// quota.Mask: only the entries named in `names`.
ResourceList Mask(const ResourceList& list, const std::vector<std::string>& names);
std::vector<std::string> Names(const ResourceList& list);
// The names of `a` whose amount exceeds `b`'s (names missing from `b` are
// not limited).
std::vector<std::string> Exceeded(const ResourceList& a, const ResourceList& b);
// prettyPrint: "pods=1,requests.cpu=100m".
std::string PrettyPrint(const ResourceList& list);

// The name an object count has for `r`: "count/pods", "count/deployments.apps".
std::string CountName(const ResourceInfo& r);

// The subset of `names` that the evaluator of `r` tracks (MatchingResources).
std::vector<std::string> MatchingResources(const ResourceInfo& r,
                                           const std::vector<std::string>& names);

// Whether `obj` (of `r`) falls in every scope of `quota` (spec.scopes and
// spec.scopeSelector): scopes only ever select pods, as upstream's.
bool MatchesScopes(const Json& quota, const ResourceInfo& r, const Json& obj);

// What `obj` of `r` uses (the evaluator's Usage): a pod in a terminal phase
// counts only in count/pods.
ResourceList Usage(const ResourceInfo& r, const Json& obj);

// The pod evaluator's Constraints: "" or "must specify requests.cpu for: c1; ...",
// for the cpu and memory names of `required` that a container lacks.
std::string PodConstraints(const std::vector<std::string>& required, const Json& pod);

// The resource a quota's hard name counts objects of, when it names one
// this evaluator set knows: pods (and cpu, requests.memory, ...), services,
// persistentvolumeclaims, configmaps, secrets, replicationcontrollers,
// resourcequotas, or the resource of `count/<resource>.<group>`.
std::vector<const ResourceInfo*> ResourcesCounted(const std::vector<std::string>& hard_names);

// resourcehelper.PodRequests / PodLimits of a pod spec (`which`: "requests"
// or "limits"): the containers' sum, at least each init container's (with
// the sidecars before it), plus the overhead.
ResourceList PodResources(const Json& spec, const char* which);

// A pod's QoS class is BestEffort: no container sets any request or limit.
bool IsBestEffort(const Json& pod);

}  // namespace kin::quota
