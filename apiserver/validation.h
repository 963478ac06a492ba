// Defaulting and validation of API objects, as kube-apiserver v1.31 does them.
//
// Pure functions on JSON objects (the v1 wire form), no I/O. The API server
// calls, on create and on update:
//
//   ApplyDefaults(group, kind, obj);          // what decoding + admission fill in
//   ValidateObject(group, kind, obj, old);    // old = stored object on update
//
// ApplyDefaults fills what the real server fills before validation: the
// SetDefaults_* functions of core/v1, apps/v1, batch/v1, networking/v1 and
// discovery/v1, plus the pieces of admission and of the registry strategies
// that need no state: pods get serviceAccountName "default", priority 0 and
// preemptionPolicy (Priority plugin; system-node-critical and
// system-cluster-critical get their fixed values), and the not-ready /
// unreachable NoExecute tolerations for 300 s (DefaultTolerationSeconds;
// DefaultingOptions sets the time); ReplicationControllers get their
// selector and labels from the template's labels when unset;
// Secret stringData is merged into data (base64) and dropped; Service
// clusterIP and clusterIPs are kept in step; a Namespace that has no
// status.phase yet (that is, on create) gets spec.finalizers ["kubernetes"]
// and phase Active. Not done here: name generation, uid, timestamps,
// resourceVersion, generation, ClusterIP/NodePort allocation, status resets,
// and the Job selector and controller-uid / job-name labels (the Job
// controller's part). Defaulting never throws; values of the wrong JSON type
// are left alone for ValidateObject to reject.
//
// ValidateObject expects obj after ApplyDefaults (and after the registry
// filled metadata.name from generateName and metadata.namespace from the
// URL). On update, old is the stored object; an update that leaves out
// Service clusterIP(s), healthCheckNodePort, metadata.uid or
// creationTimestamp is taken to keep the stored values (the registry copies
// them over). Namespace defaults key on status.phase: keep the stored status
// in the object before defaulting an update, or a removed "kubernetes"
// finalizer comes back. It throws kin::Error::Invalid carrying one Cause per problem, with
// Kubernetes' exact wording, e.g.
//   Pod "bad" is invalid: [spec.containers[0].name: Required value, ...]
// (one cause: no brackets; the group is appended to the kind as in
// `Deployment.apps "web" is invalid: ...`), details kind/name/group set.
// Values that could not be decoded at all (a string where a number belongs,
// a malformed quantity, Secret data that is not base64) throw
// kin::Error::BadRequest "<Kind> in version "v1" cannot be handled as a
// <Kind>: ...", as the real decoder does. Do not call it for /status or
// /finalize updates: those validate only what their subresource changes.
// Kinds it does not know get the metadata checks only.
//
// Thread-safety: stateless, thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/yaml.h"
#include "client/quantity.h"

namespace kin::apiserver {

// What defaulting takes from the cluster's configuration.
struct DefaultingOptions {
  // DefaultTolerationSeconds admission: how long pods tolerate the
  // node.kubernetes.io/not-ready and /unreachable NoExecute taints
  // (kube-apiserver's --default-not-ready-toleration-seconds and
  // --default-unreachable-toleration-seconds, both 300 by default).
  int64_t default_toleration_seconds = 300;
};

void ApplyDefaults(const std::string& group, const std::string& kind, Json& obj,
                   const DefaultingOptions& opts = {});

void ValidateObject(const std::string& group, const std::string& kind, const Json& obj,
                    const Json* old);

// Kubernetes resource quantities: see client/quantity.h (kept here by name
// for the callers that know them as validation helpers).
using kin::ParseQuantity;
using kin::ParseQuantityMilli;
using kin::ParseQuantityValue;

// The name checks of k8s.io/apimachinery/pkg/util/validation: each returns
// the problems with value, worded as Kubernetes words them (empty = valid).
std::vector<std::string> IsDNS1123Label(std::string_view value);
std::vector<std::string> IsDNS1123Subdomain(std::string_view value);
std::vector<std::string> IsDNS1035Label(std::string_view value);
std::vector<std::string> IsQualifiedName(std::string_view value);  // label keys
std::vector<std::string> IsValidLabelValue(std::string_view value);

}  // namespace kin::apiserver
