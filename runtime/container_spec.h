// ContainerSpec — what the container launcher needs to start one container
// process inside a pod's namespaces, as plain data.
//
// Everything here is pure: validation, rendering as text (for tests and
// logs), capability-name lookup, the CPU limit arithmetic the kubelet uses,
// and the RuntimeDefault seccomp rule list. Applying a spec to the kernel is
// container_launch.h's job; cgroups are cgroup.h's.
//
// Thread-safety: plain value types and pure functions.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kin {

enum class SeccompProfile { kRuntimeDefault, kUnconfined };

struct BindMount {
  std::string source;  // host path (file or directory)
  std::string target;  // path inside the container's mount namespace
  bool read_only = false;
};

// The container's own root filesystem. The launcher mounts it inside the
// container's new mount namespace (nothing reaches the host; it all goes
// away with the process), adds /proc, a minimal /dev and a read-only /sys,
// applies the bind mounts inside it, then pivot_roots into it.
struct RootfsSpec {
  // Read-only layers, TOPMOST FIRST, as overlayfs' lowerdir wants.
  std::vector<std::string> lower_dirs;
  // Both on the same filesystem, made by the caller, one pair per container.
  // upper_dir empty: a read-only root (a bind mount of a single lower dir,
  // or a read-only overlay of several).
  std::string upper_dir;
  std::string work_dir;
  bool read_only = false;  // the root is remounted read-only after the bind mounts
};

// Zero means "no limit" for every field.
struct ResourceLimits {
  int64_t memory_bytes = 0;
  int64_t cpu_millicores = 0;
  int64_t pids_max = 0;
};

struct ContainerSpec {
  std::string name;               // container name, for error messages
  std::vector<std::string> argv;  // argv[0] is looked up in the container's PATH when it has no '/'
  std::vector<std::string> env;   // "KEY=VALUE"; exactly the container's environment
  std::string working_dir;        // empty: "/"

  // Namespaces of the pod to join: paths such as /run/netns/X or
  // /proc/PID/ns/{uts,ipc,pid} of the sandbox holder. Empty: not joined
  // (the container keeps ours, unless a new one is asked for below).
  std::string net_ns;
  std::string uts_ns;
  std::string ipc_ns;
  std::string pid_ns;  // applies to the container process itself (joined before fork)
  // An existing mount namespace to join (/proc/PID/ns/mnt of a running
  // container, for exec). Joined last, after the other namespaces; the
  // process then sees that container's root (no rootfs, pivot or bind mounts
  // of its own: those fields must be unset and new_mount_ns false) and
  // changes to working_dir ("/" when empty) inside it. In-process only.
  std::string mnt_ns;

  // With new_mount_ns: the mount namespace the new one is copied from
  // (instead of the caller's), e.g. a node's template that lacks the
  // per-pod mounts (runtime/pod_namespaces.h), so a container start copies a
  // few dozen mounts, not three per pod on the machine. Paths (binds, rootfs,
  // working_dir) are resolved in it. Serialized.
  std::string mount_template;
  bool new_mount_ns = true;  // needed for bind mounts; / is made rslave so nothing leaks out
  bool new_pid_ns = false;   // the container process is pid 1 of its own pid namespace
  bool new_uts_ns = false;   // required to set `hostname`
  bool new_ipc_ns = false;
  std::string hostname;

  std::optional<uid_t> uid;  // unset: stay root
  std::optional<gid_t> gid;  // unset: the uid's gid is not looked up; stays 0
  std::vector<gid_t> supplemental_groups;

  // Capability names as Kubernetes writes them ("NET_ADMIN"; "CAP_NET_ADMIN"
  // is accepted too; "ALL" in drop drops every capability, in add adds every one).
  std::vector<std::string> cap_add;
  std::vector<std::string> cap_drop;

  SeccompProfile seccomp = SeccompProfile::kRuntimeDefault;
  bool no_new_privs = true;

  // Applied by the caller when it creates the container's Cgroup (cgroup.h)
  // and hands it to LaunchContainer.
  ResourceLimits resources;

  std::vector<BindMount> mounts;  // e.g. /etc/hosts, /etc/resolv.conf
  // Unset: the container sees the host's / (bind mount targets are host paths).
  // Set: bind mount targets are paths inside this root; missing targets are
  // created in it (a file or a directory, like the source), as runc does.
  std::optional<RootfsSpec> rootfs;
  std::string log_path;  // stdout and stderr are appended here; empty: /dev/null
  // Without a rootfs, in a new mount namespace: mount points of the host the
  // container's copy of the mounts loses (after the bind mounts above are
  // made), e.g. /run/netns and the node's pod directory, so that it holds no
  // other pod's namespaces and later mounts there never propagate into it.
  std::vector<std::string> detach_mounts;

  // In-process only (never serialized): descriptors of the caller's that the
  // process gets as its stdin/stdout/stderr (dup2'd onto 0/1/2) instead of
  // /dev/null and log_path. The caller keeps owning them; they must stay
  // open until LaunchContainer returns.
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  // For a TTY: stdin is a pty slave that becomes the process's controlling
  // terminal (the process always starts a new session; this adds TIOCSCTTY).
  bool setsid_ctty = false;
  // In-process only: more cgroup.procs files the process enters before
  // exec, besides the Cgroup handed to LaunchContainer (an exec joining a
  // running container's cgroup that it does not own). See ExistingCgroupProcsFiles.
  std::vector<std::string> cgroup_procs_files;
  // In-process only: when set, the child calls this with argv (and the
  // container's environment in `environ`) where it would exec argv[0], then
  // exits with its result. Only for a caller that is single-threaded and
  // owns nothing the function could trip over: the shim's zygote runs kin's
  // built-in images this way, so a pod does not pay for loading the kin binary again.
  int (*in_process_main)(int argc, char** argv) = nullptr;
};

// Throws Error::Invalid naming every offending field (one Cause each).
void ValidateContainerSpec(const ContainerSpec& spec);

// A stable, line-per-field text form (only fields that are set), for tests and logs.
std::string RenderContainerSpec(const ContainerSpec& spec);

// Kubernetes' default capability set for containers (containerd/CRI-O's list).
const std::vector<std::string>& DefaultCapabilityNames();
// Capability number for a name ("NET_RAW" or "CAP_NET_RAW"); nullopt when unknown.
std::optional<int> CapabilityNumber(const std::string& name);
// The container's capability mask (bit n = capability n): defaults + adds - drops.
// Throws Error::Invalid on an unknown name. `last_cap` bounds "ALL".
uint64_t CapabilityMask(const ContainerSpec& spec, int last_cap = 40);

// CFS bandwidth for a CPU limit, as the kubelet computes it: period 100 ms,
// quota = millicores * period / 1000, at least 1 ms. No limit: quota -1.
struct CpuQuota {
  int64_t quota_us = -1;
  int64_t period_us = 100000;
};
CpuQuota MilliCpuToQuota(int64_t millicores);

// One seccomp rule: `syscall` fails with `errno_value`. When `arg0_flags` is
// non-zero the rule only matches calls whose first argument has any of those
// bits set (one libseccomp rule per bit: clone/unshare with namespace flags).
struct SeccompRule {
  std::string syscall;
  int errno_value = 1;  // EPERM
  uint64_t arg0_flags = 0;
};
// The rules of a profile; Unconfined has none (no filter is installed).
// RuntimeDefault is a small Docker-like denylist; unlike Docker's it does not
// relax for containers that hold CAP_SYS_ADMIN.
std::vector<SeccompRule> SeccompRules(SeccompProfile profile);

}  // namespace kin
