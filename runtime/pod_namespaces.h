// A pod's UTS and IPC namespaces, held by bind mounts on two files (DIR/uts,
// DIR/ipc) the way `ip netns` holds network namespaces: the pod's containers
// join them by path, and no process has to keep them alive. Kubernetes runs
// a pause container for this; kin needs one only for a pod that shares its
// PID namespace (that namespace needs an init process).
//
// And a node's mount template: a mount namespace copied from the host's
// without /run/netns and the node's pins (one network, UTS and IPC namespace
// per pod). Containers copy it rather than the host's namespace, whose
// mounts grow by three per pod (a start then costs O(pods) in copy_mnt_ns,
// and every new pod's mounts would propagate into every container). The
// node's pod directory is a shared mount, a slave in the template, so pod
// files and volumes made later are seen there; containers detach it after
// their bind mounts (ContainerSpec::detach_mounts).
//
// Thread-safety: all functions are thread-safe (Create unshares on a
// throw-away thread of its own).
#pragma once

#include <string>
#include <vector>

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

// Makes DIR (created when missing) a tmpfs of its own with the given
// propagation. When DIR is a mount point already (an earlier kin serve made
// it), that mount is kept, with its contents. A node's runtime state (pods'
// files, containers' state and logs, namespace pins) lives in memory, as a
// container runtime keeps its state in /run: creating a file there costs a
// fraction of a create on a disk file system (ext4 allocates an inode).
enum class Propagation { kPrivate, kShared };
void EnsureOwnTmpfs(const std::string& dir, Propagation propagation);
// Detaches the mount at DIR (and everything below it); not mounted is fine.
void RemoveOwnMount(const std::string& dir);

// Creates the template: a copy of the caller's mount namespace, made a
// slave of it, without the mounts at `detach` (paths that are not mounted
// are fine), held by a bind mount on the file `pin`. Throws kin::Error.
void CreateMountTemplate(const std::string& pin, const std::vector<std::string>& detach);
// `pin` holds a mount namespace.
bool MountTemplateExists(const std::string& pin);
// Unmounts and removes `pin`; missing is fine.
void RemoveMountTemplate(const std::string& pin);

}  // namespace kin
