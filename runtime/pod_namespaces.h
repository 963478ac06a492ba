// A pod's UTS and IPC namespaces, held by bind mounts on two files (DIR/uts,
// DIR/ipc) the way `ip netns` holds network namespaces: the pod's containers
// join them by path, and no process has to keep them alive. Kubernetes runs
// a pause container for this; kin needs one only for a pod that shares its
// PID namespace (that namespace needs an init process).
//
// And the mount that keeps those pins, and other pods' volumes, out of
// containers: PrivateMount makes a directory a mount of its own with private
// propagation, so a container can detach the whole directory from its copy
// of the host's mounts (ContainerSpec::detach_mounts), and mounts made there
// later never propagate into a container.
//
// Thread-safety: all functions are thread-safe (Create unshares on a
// throw-away thread of its own).
#pragma once

#include <string>

namespace kin {

struct PodNamespacePaths {
  std::string uts, ipc;
};
PodNamespacePaths PodNamespacesIn(const std::string& dir);

// Creates a new UTS namespace with `hostname` and a new IPC namespace, held
// at DIR/uts and DIR/ipc (DIR is created). Throws kin::Error naming the
// step; leaves nothing behind on failure.
void CreatePodNamespaces(const std::string& dir, const std::string& hostname);
// Both files hold a namespace (they are nsfs mounts).
bool PodNamespacesExist(const std::string& dir);
// Unmounts and removes both files; what is missing is fine.
void RemovePodNamespaces(const std::string& dir);

// Makes DIR (created when missing) a mount point with private propagation,
// keeping what is mounted below it. Idempotent.
void EnsurePrivateMount(const std::string& dir);
// Detaches the mount at DIR (and everything below it); not mounted is fine.
void RemovePrivateMount(const std::string& dir);

}  // namespace kin
