// Starting a container process from a ContainerSpec (container_spec.h).
//
// LaunchContainer() forks a child that joins the pod's namespaces, makes its
// own mount namespace (/ turned rslave first, so nothing it mounts reaches
// the host), applies bind mounts, sets the hostname when it owns its UTS
// namespace, enters its cgroup, redirects stdout/stderr to the log file,
// drops capabilities (bounding, ambient, effective/permitted/inheritable),
// changes uid/gid, sets no_new_privs, installs the seccomp filter last, and
// execs.
//
// With spec.rootfs, still inside the new mount namespace: the root (an
// overlay of the layers, or a bind mount of a single read-only lower) is
// mounted on an empty temp directory that exists on the host only during the
// launch; then a fresh /proc, a tmpfs /dev with null, zero, full, random,
// urandom and tty bound from the host, a private devpts (/dev/ptmx links to
// it) and a /dev/shm tmpfs, a read-only sysfs, the bind mounts (targets
// inside the root, created there when missing: a file or a directory like
// the source) and the working directory; the root is remounted read-only
// when asked (always when there is no upper dir), then pivot_root, and the
// host's tree is detached. Paths inside the root are resolved with
// openat2(RESOLVE_IN_ROOT) and mounted on through /proc/self/fd, as runc
// does, so a symlink in the image (/var/run -> /run) resolves inside it and
// can never lead a mount or a created directory out to the host.
//
// Exec into a running container (container_io.h) uses the same path:
// spec.mnt_ns joins the container's mount namespace (after the other
// namespaces; no mounts of our own, cwd = working_dir inside its root),
// spec.pid_ns its pid namespace, spec.cgroup_procs_files its cgroup, and
// spec.stdin_fd/stdout_fd/stderr_fd replace /dev/null and the log file
// (with spec.setsid_ctty, stdin is a pty slave made the controlling tty).
//
// A failure before exec reaches the parent through a close-on-exec
// pipe (errno + the step), so the caller gets e.g.
//   start container `web`: join network namespace /run/netns/x: No such file or directory
// and a missing executable is NotFound naming it.
//
// LaunchContainer's result is a ChildProcess (base/process.h: pid + pidfd;
// SIGKILL and reap on destruction unless Released).
//
// Thread-safety: LaunchContainer is thread-safe (it forks from a short-lived
// thread of its own so that joining a pid namespace never touches the
// caller's threads). BecomeContainer is for a single-threaded process of
// its own. SeccompProgram is thread-compatible.
#pragma once

#include <sched.h>

#include <linux/filter.h>
#include <sys/types.h>

#include <chrono>
#include <optional>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "base/process.h"
#include "runtime/cgroup.h"
#include "runtime/container_spec.h"

namespace kin {

// A seccomp profile compiled to classic BPF by libseccomp, ready to be
// loaded with prctl(PR_SET_SECCOMP). Building loads nothing.
class SeccompProgram {
 public:
  // Unconfined gives an empty program (no filter is installed).
  static SeccompProgram Build(SeccompProfile profile);
  // The program of `profile`, built once per process and kept: building
  // costs more than the rest of a launch's preparation (libseccomp compiles
  // the rules each time), and forked processes inherit what is built.
  static const SeccompProgram& Cached(SeccompProfile profile);

  bool empty() const { return instructions_.empty(); }
  const std::vector<sock_filter>& instructions() const { return instructions_; }
  // The rules that became part of the filter (those whose syscall exists on
  // this architecture), for tests.
  const std::vector<std::string>& syscalls() const { return syscalls_; }

 private:
  std::vector<sock_filter> instructions_;
  std::vector<std::string> syscalls_;
};

// Validates the spec (Invalid), then starts the container, inside `cgroup`
// when given (the caller creates it from spec.resources and keeps owning it). Errors: "start
// container `NAME`: STEP: strerror" with the code ErrnoError picks (NotFound for a missing
// namespace, executable or mount source).
ChildProcess LaunchContainer(const ContainerSpec& spec, const Cgroup* cgroup = nullptr);

// What a container process made by BecomeContainer writes to its report
// pipe when a step before exec fails (then it exits 127). Nothing comes
// when it execs (or starts its in-process main): the pipe just closes.
struct LaunchFailure {
  int err = 0;        // errno; 0 when the failure was not a system call's
  bool exec = false;  // the exec itself failed
  char what[1024] = {};
};
// The error LaunchContainer would have thrown for it.
Error LaunchFailureError(const LaunchFailure& f);
// Writes `e` as a LaunchFailure (for a failure before BecomeContainer runs).
void ReportLaunchFailure(int report_fd, const Error& e);

// Makes the calling process the container, for a caller that forked it
// itself (a zygote: the fork then copies only a small, quiet process), with
// the PID namespace chosen at that fork. Single-threaded callers only. Never
// returns: it execs, or runs spec.in_process_main; a failure is written to
// `report_fd` as a LaunchFailure and the process exits 127. A root
// filesystem is mounted on `root_mount_point` (made when missing, left
// behind: the caller removes it).
[[noreturn]] void BecomeContainer(const ContainerSpec& spec, const Cgroup* cgroup, int report_fd,
                                  const std::string& root_mount_point);

// The CPUs every container launched from now on in this process may run
// on, whatever the launching thread's own affinity. The shim server keeps
// itself on one CPU (its copy-on-write faults after each fork then need no
// TLB shootdown on the other CPUs) and gives its containers back the CPUs
// it started with. Not thread-safe: set it before any launch.
void SetContainerCpuAffinity(const cpu_set_t& cpus);

}  // namespace kin
