// The eviction subresource: POST /api/v1/namespaces/NS/pods/NAME/eviction
// with a policy/v1 Eviction, as kube-apiserver 1.31's EvictionREST
// (pkg/registry/core/pod/storage/eviction.go) serves it.
//
//   - A pod that is Succeeded, Failed or Pending, or already terminating,
//     is deleted without looking at budgets.
//   - Otherwise the PodDisruptionBudgets of its namespace whose selector is
//     set, non-empty and matches the pod's labels decide: none -> delete;
//     more than one -> 500 "This pod has more than one
//     PodDisruptionBudget, which the eviction subresource does not support.".
//   - A pod that is not Ready is deleted without spending the budget when
//     the budget is healthy (currentHealthy >= desiredHealthy > 0) or its
//     unhealthyPodEvictionPolicy is AlwaysAllow; the delete then carries
//     the pod's resourceVersion as a precondition, and a conflict there
//     answers 429 (the pod changed meanwhile).
//   - Otherwise the budget must allow it: status.observedGeneration behind
//     metadata.generation -> 429 "... still being processed by the server.",
//     disruptionsAllowed 0 -> 429 TooManyRequests "Cannot evict pod as it
//     would violate the pod's disruption budget." with a cause of reason
//     "DisruptionBudget" ("The disruption budget NAME needs N healthy pods
//     and has M currently"); negative or more than 2000 disrupted pods ->
//     403. Else disruptionsAllowed is decremented and the pod recorded in
//     status.disruptedPods in one status write checked against the PDB's
//     resourceVersion (a conflict re-reads the PDB and decides again).
//   - The pod then gets the DisruptionTarget condition (reason
//     EvictionByEvictionAPI) and is deleted with the Eviction's
//     deleteOptions (grace period, preconditions, propagation policy).
// Dry run (?dryRun=All or deleteOptions.dryRun) decides but writes nothing.
//
// Thread-safety: stateless; safe to call concurrently (writes are
// conflict-checked in the Registry).
#pragma once

#include <optional>
#include <string>

#include "apiserver/registry.h"

namespace kin::apiserver {

struct EvictionResult {
  int code = 201;                          // HTTP status to answer with
  Json body;                               // a v1 Status
  std::optional<int> retry_after_seconds;  // set for 429s that name one
};

// `eviction` is the decoded request body; `dry_run` is ?dryRun=All. Throws
// kin::Error for requests that fail as errors (BadRequest when the name in
// the body does not match the URL, NotFound for a missing pod, Forbidden,
// Conflict on a failed precondition).
EvictionResult EvictPod(Registry& registry, const std::string& ns, const std::string& name,
                        const Json& eviction, bool dry_run);

}  // namespace kin::apiserver
