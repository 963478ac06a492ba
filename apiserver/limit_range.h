// The LimitRanger admission plugin (plugin/pkg/admission/limitranger), on
// creates of pods and PersistentVolumeClaims: for every LimitRange of the
// namespace, containers lacking a request or limit get the `Container`
// item's defaultRequest / default (and the annotation
// kubernetes.io/limit-ranger saying what was set), then the min, max and
// maxLimitRequestRatio of the Container and Pod items (PVC: min and max of
// storage requests) are enforced: a violation is 403 Forbidden with
// upstream's messages, e.g.
//   pods "x" is forbidden: maximum cpu usage per Container is 500m, but limit is 1
//
// Thread-safety: pure functions of their arguments (the Store is read only).
#pragma once

#include <string>
#include <vector>

#include "apiserver/store.h"
#include "base/yaml.h"
#include "client/resources.h"

namespace kin::apiserver {

inline constexpr char kLimitRangerAnnotation[] = "kubernetes.io/limit-ranger";

// PodMutateLimitFunc: applies one LimitRange's container defaults to `pod`.
void ApplyLimitRangeDefaults(const Json& limit_range, Json& pod);
// PodValidateLimitFunc / PersistentVolumeClaimValidateLimitFunc: the
// violations of one LimitRange, in upstream's words (empty: none).
std::vector<std::string> LimitRangeViolations(const Json& limit_range, const ResourceInfo& r,
                                              const Json& obj);
// The whole plugin for a create of `obj` (pods and persistentvolumeclaims;
// other resources are left alone): mutates, then throws Forbidden.
void AdmitLimitRanges(const Store& store, const ResourceInfo& r, const std::string& ns,
                      Json& obj);

}  // namespace kin::apiserver
