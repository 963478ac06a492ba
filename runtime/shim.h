// The shim: the detached keeper of one container process (like conmon or
// containerd-shim).
//
// The node agent writes DIR/config.json (a ShimConfig) and calls
// ShimLauncher::Start(DIR). Shims are forked by `kin shim-server`, a small
// single-threaded process the launcher starts once (a zygote, as Android
// starts apps): forking it costs a few milliseconds where exec'ing the kin
// binary (50 shared libraries) costs tens, and kin's built-in images
// (agnhost, pause) then run in the forked container process without any
// exec at all. The shim leaves the agent's session (setsid), creates the
// container's cgroup, launches the container (runtime/container_launch.h)
// with stdout and stderr on a pipe it reads, writes DIR/state.json
// (ShimState) and answers "ok" (or the launch error) on a pipe the agent
// passed with the request. So the agent learns the outcome synchronously,
// and the shim is no child of `kin serve`: when kin serve goes, the server
// sees its socket close and exits, and the shims, with their containers,
// live on (re-parented to init) until a new kin serve re-adopts them.
//
// While the container runs, the shim copies its output into the CRI-format
// log (runtime/cri_log.h). When it exits, the shim drains the pipe, writes
// DIR/exit.json (ShimExit: exit code, signal, OOMKilled from the cgroup's
// OOM-kill count, the time), removes the cgroup (killing what is left in
// it) and exits. The shim's own exit therefore means "exit.json is there":
// the agent watches the shim's pid with a pidfd.
//
// Thread-safety: RunShimServer is a process entry point; ShimLauncher is
// thread-safe. The file helpers are pure
// or touch only the named directory.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "base/fd.h"
#include "base/process.h"
#include "base/yaml.h"
#include "runtime/container_spec.h"

namespace kin {

struct ShimConfig {
  ContainerSpec spec;  // spec.log_path is ignored: output goes to `log_path` as CRI lines
  std::string cgroup;  // the cgroup's name (one path component), created by the shim
  std::string log_path;
  int64_t log_max_bytes = 10 << 20;
  int log_max_files = 5;
};

struct ShimState {
  pid_t shim_pid = 0;
  pid_t pid = 0;             // the container's process, as seen from the host
  uint64_t start_ticks = 0;  // its start time (/proc/PID/stat field 22): tells a reused pid apart
  std::string started_at;    // RFC 3339, UTC
};

struct ShimExit {
  int exit_code = -1;  // 128 + signal when killed by one, as runtimes report it
  int signal = 0;
  bool oom_killed = false;
  std::string finished_at;  // RFC 3339, UTC
};

Json ContainerSpecToJson(const ContainerSpec& spec);
ContainerSpec ContainerSpecFromJson(const Json& j);

Json ShimConfigToJson(const ShimConfig& c);
ShimConfig ShimConfigFromJson(const Json& j);

// The files of a container directory; nullopt when not (yet) written.
std::optional<ShimState> ReadShimState(const std::string& dir);
std::optional<ShimExit> ReadShimExit(const std::string& dir);

// `kin shim-server`: serves requests on stdin (a SOCK_SEQPACKET socket:
// each message a container directory, with the write end of a report pipe
// attached) until the socket closes; returns the process exit code.
int RunShimServer();

// Starts shims through a `kin shim-server` it spawns on first use (and
// again if that one died). Destroying it ends the server, not the shims.
class ShimLauncher {
 public:
  explicit ShimLauncher(std::string kin_binary);
  ~ShimLauncher();
  ShimLauncher(const ShimLauncher&) = delete;
  ShimLauncher& operator=(const ShimLauncher&) = delete;

  // Starts a shim for DIR (config.json already written) and waits for the
  // launch outcome; the container's error (NotFound for a missing
  // executable, ...) is rethrown as a kin::Error with its message.
  ShimState Start(const std::string& dir);
  pid_t server_pid() const;  // 0 before the first Start

 private:
  void StartServerLocked();
  void StopServerLocked();

  std::string kin_binary_;
  mutable std::mutex mu_;
  UniqueFd socket_;
  std::unique_ptr<ChildProcess> server_;
};

// The start time of `pid` in clock ticks since boot; 0 when it is gone.
uint64_t ProcessStartTicks(pid_t pid);

// RFC 3339 with seconds, UTC ("2026-11-25T23:40:12Z"), as Kubernetes prints times.
std::string NowRfc3339();

}  // namespace kin
