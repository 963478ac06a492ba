// Starting a container process from a ContainerSpec (container_spec.h).
//
// LaunchContainer() forks a child that joins the pod's namespaces, makes its
// own mount namespace (/ turned rslave first, so nothing it mounts reaches
// the host), applies bind mounts, sets the hostname when it owns its UTS
// namespace, enters its cgroup, redirects stdout/stderr to the log file,
// drops capabilities (bounding, ambient, effective/permitted/inheritable),
// changes uid/gid, sets no_new_privs, installs the seccomp filter last, and
// execs. A failure before exec reaches the parent through a close-on-exec
// pipe (errno + the step), so the caller gets e.g.
//   start container `web`: join network namespace /run/netns/x: No such file or directory
// and a missing executable is NotFound naming it.
//
// ContainerProcess owns the started process like ChildProcess does (pid +
// pidfd; SIGKILL and reap on destruction unless Released). It is a separate
// type because ChildProcess (base/process.h) has no way to adopt a pid that
// was not started by posix_spawn.
//
// Thread-safety: LaunchContainer is thread-safe (it forks from a short-lived
// thread of its own so that joining a pid namespace never touches the
// caller's threads). ContainerProcess and SeccompProgram are thread-compatible.
#pragma once

#include <linux/filter.h>
#include <sys/types.h>

#include <chrono>
#include <optional>
#include <vector>

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

  bool empty() const { return instructions_.empty(); }
  const std::vector<sock_filter>& instructions() const { return instructions_; }
  // The rules that became part of the filter (those whose syscall exists on
  // this architecture), for tests.
  const std::vector<std::string>& syscalls() const { return syscalls_; }

 private:
  std::vector<sock_filter> instructions_;
  std::vector<std::string> syscalls_;
};

// The container's process, owned like any child: killed and reaped when its
// owner dies unless Release()d.
using ContainerProcess = ChildProcess;

// Validates the spec (Invalid), then starts the container, inside `cgroup`
// when given (the caller creates it from spec.resources and keeps owning it). Errors: "start
// container `NAME`: STEP: strerror" with the code ErrnoError picks (NotFound for a missing
// namespace, executable or mount source).
ContainerProcess LaunchContainer(const ContainerSpec& spec, const Cgroup* cgroup = nullptr);

}  // namespace kin
