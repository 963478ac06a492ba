// The token part of kube-apiserver's ServiceAccount admission plugin
// (plugin/pkg/admission/serviceaccount): on pod create, when the pod's
// token is automounted (the pod's automountServiceAccountToken, else its
// ServiceAccount's, else true), every init container and container that
// mounts nothing at /var/run/secrets/kubernetes.io/serviceaccount gets a
// read-only volumeMount there of a projected volume
// `kube-api-access-<5 random characters>`:
//
//   projected: {defaultMode: 420, sources: [
//     {serviceAccountToken: {expirationSeconds: 3607, path: token}},
//     {configMap: {name: kube-root-ca.crt, items: [{key: ca.crt, path: ca.crt}]}},
//     {downwardAPI: {items: [{path: namespace,
//                             fieldRef: {apiVersion: v1, fieldPath: metadata.namespace}}]}}]}
//
// added to spec.volumes when some container got the mount. A pod that
// already has a volume named kube-api-access-* mounts that one (a pod
// re-created from another's spec), as upstream; a generated name never
// equals a volume the pod has. Ephemeral containers are left alone (they
// come with an update, never a create), and so are mirror pods
// (annotation kubernetes.io/config.mirror). The node agent serves the
// volume like any projected one (runtime/volumes.h), and refreshes the
// token as the kubelet does.
//
// The lookup of the ServiceAccount (and spec.serviceAccountName "default",
// which the pod defaults fill in) stays in the registry; this is pure.
//
// Thread-safety: stateless functions.
#pragma once

#include <functional>
#include <string>

#include "base/yaml.h"

namespace kin::apiserver {

inline constexpr char kServiceAccountTokenMountPath[] =
    "/var/run/secrets/kubernetes.io/serviceaccount";
inline constexpr char kServiceAccountVolumePrefix[] = "kube-api-access-";
// kube-apiserver's WarnOnlyBoundTokenExpirationSeconds: 1 h and 7 s.
inline constexpr int64_t kServiceAccountVolumeExpirationSeconds = 3607;

// The pod's preference wins, then the ServiceAccount's, else true.
bool ShouldAutomountServiceAccountToken(const Json& service_account, const Json& pod);

// The projected volume source upstream's TokenVolumeSource() returns.
Json ServiceAccountTokenVolumeSource();

// Adds the volume and the mounts to `pod` (a v1 Pod, after the defaults)
// when its token is automounted. `suffix` returns 5 random characters
// (asked again while the name is taken). Returns the volume's name, or ""
// when nothing was mounted.
std::string MountServiceAccountToken(const Json& service_account, Json& pod,
                                     const std::function<std::string()>& suffix);

}  // namespace kin::apiserver
