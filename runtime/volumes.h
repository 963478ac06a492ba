// Pod volumes — what the node agent does for pod.spec.volumes, as the kubelet's
// volume plugins do it: emptyDir (on disk, or a tmpfs for medium Memory),
// hostPath (with the kubelet's type checks), configMap, secret, downwardAPI,
// projected (with serviceAccountToken) and persistentVolumeClaim (the bound
// PersistentVolume's hostPath or local path, bind-mounted; readOnly honoured;
// Setup throws NotFound `persistentvolumeclaim "x" not found`, or
// Unavailable while the claim is not Bound, so the agent retries). Every volume lives under
// <pod_dir>/volumes/<name> (hostPath: the host path itself), and
// MountsFor() turns a container's volumeMounts into BindMounts for the launcher.
//
// Files of configMap/secret/downwardAPI/projected volumes are written like the
// kubelet's AtomicWriter, so an update is one rename() and a reader never sees
// a half-written set:
//   <vol>/..2024_01_02_03_04_05.123456/<files>   the current payload
//   <vol>/..data -> ..2024_01_02_03_04_05.123456
//   <vol>/<top-level name> -> ..data/<top-level name>
//
// Setup is idempotent (a restarted agent calls it again for running pods: an
// existing emptyDir keeps its contents, a tmpfs already mounted is kept). When
// Setup throws, what it made so far stays; retry it or call
// TeardownPodVolumes. Deliberately not done: secrets on tmpfs (kubelet puts
// them there; here they are plain files under the pod dir), fsGroup ownership,
// mount propagation; service-account tokens are the node agent's (a
// placeholder without one; see VolumeContext).
//
// Errors: kin::Error. A missing ConfigMap/Secret (not optional) is NotFound
// with the kubelet's message (`configmap "cfg" not found`); a missing key
// named in items is NotFound too (`configmap references non-existent config
// key: k`); an unsupported volume type or a bad subPath is Invalid, naming the
// field (`spec.volumes[2]`, `spec.containers[0].volumeMounts[1].subPath`).
//
// Thread-safety: a PodVolumes is a value; use one from one thread at a time.
// Different pods (different pod dirs) may be handled concurrently.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/yaml.h"
#include "runtime/container_spec.h"

namespace kin {

// Where the node agent gets ConfigMaps, Secrets, PersistentVolumeClaims and
// PersistentVolumes (ns "") (and nothing else): returns nullopt when absent.
using ObjectLookup = std::function<std::optional<Json>(
    const std::string& kind /* "ConfigMap"|"Secret"|"PersistentVolumeClaim"|"PersistentVolume" */,
    const std::string& ns, const std::string& name)>;

struct VolumeContext {
  ObjectLookup lookup;
  std::string pod_ip;
  std::string host_ip;
  std::string node_name;
  // The node's status.allocatable ({"cpu": "2", "memory": "4Gi", ...}): what a
  // downwardAPI resourceFieldRef reports for a limit the container does not
  // set, as the kubelet does. Null or a missing entry: "0".
  Json node_allocatable;
  // A token the API accepts for the pod's service account, for a projected
  // serviceAccountToken source (`source`: {audience, expirationSeconds,
  // path}); the node agent answers from its token manager
  // (runtime/token_manager.h), so Refresh writes a rotated token. Unset: a
  // placeholder is written.
  std::function<std::string(const Json& pod, const Json& source)> service_account_token;
};

class PodVolumes {
 public:
  // Materializes every volume in pod.spec.volumes under <pod_dir>/volumes/<name>.
  static PodVolumes Setup(const Json& pod, const std::string& pod_dir, const VolumeContext& ctx);

  // The bind mounts one container needs for its volumeMounts (subPath,
  // subPathExpr optional, readOnly); targets are mountPath. configMap, secret,
  // downwardAPI and projected mounts are always read-only, as in the kubelet.
  // subPath directories that do not exist yet are created (like the kubelet).
  // `pod` is the pod the container belongs to (its current state: subPathExpr
  // and fieldRefs read it); the volumes keep no copy of it.
  std::vector<BindMount> MountsFor(const Json& pod, const Json& container) const;

  // Re-writes configMap/secret/downwardAPI/projected contents from current
  // objects (kubelet's periodic refresh); returns true when something changed.
  // A volume whose source fails (e.g. its ConfigMap is gone and not optional)
  // keeps its old files; the other volumes are still refreshed, then the first
  // error is thrown.
  bool Refresh(const Json& pod, const VolumeContext& ctx);

  // Where the volume lives on the host. Throws NotFound naming the volume.
  const std::string& HostPath(const std::string& volume) const;

 private:
  struct Volume {
    std::string host_path;
    bool read_only = false;  // forced read-only (configMap, secret, ...)
  };
  std::string pod_dir_;
  VolumeContext ctx_;
  std::map<std::string, Volume> volumes_;
};

// Undoes Setup for a pod directory, also one left by an earlier process
// (restart, crash): unmounts every mount under <pod_dir>/volumes (tmpfs of
// emptyDir medium Memory, ...) lazily if busy, then removes <pod_dir>/volumes.
// Idempotent; safe when nothing is there. Never descends into another
// filesystem while removing (a mount it could not remove makes it throw).
void TeardownPodVolumes(const std::string& pod_dir);

// --- Pieces exposed for tests and for the agent's own use. ---

// One file of an atomically written volume.
struct FileProjection {
  std::string data;
  mode_t mode = 0644;
  bool operator==(const FileProjection&) const = default;
};
// relative path ("a" or "dir/b") -> content.
using Payload = std::map<std::string, FileProjection>;

// Writes `payload` into `dir` the AtomicWriter way (see the top of this file).
// Returns false and touches nothing when the current contents already equal
// the payload. Throws Invalid for a path that is absolute, contains "..", or
// starts with "..".
bool WriteAtomicPayload(const std::string& dir, const Payload& payload);

// The files of a downwardAPI volume source ({"items": [...]}, or a projected
// source's downwardAPI), for `pod`. Values come from runtime/pod_spec.h's
// PodFieldValue and ContainerResourceValue (containerName required; an unset
// limit reports ctx.node_allocatable), the same resolution env vars use.
Payload DownwardApiPayload(const Json& source, const Json& pod, const VolumeContext& ctx,
                           mode_t default_mode);

}  // namespace kin
