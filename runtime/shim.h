// The shim: the detached keeper of a node's container processes (as conmon
// or containerd-shim keep theirs).
//
// The node agent writes DIR/config.json (a ShimConfig) and calls
// ShimLauncher::Start(DIR). The launcher starts `kin shim-server` once (and
// again if that one died): a small single-threaded process, in a session
// of its own, holding a SOCK_SEQPACKET socket to the agent on its stdin.
// For each request (DIR, with the write end of a report pipe) the server
// creates the container's cgroup, launches the container
// (runtime/container_launch.h), forked from itself, with stdout and stderr
// on a pipe it reads, writes DIR/state.json (ShimState) and answers "ok" (or
// the launch error) on the report pipe: the agent learns the outcome
// synchronously. The server is the zygote too: forking it costs a few
// milliseconds where exec'ing the kin binary costs tens, and kin's built-in
// images (agnhost, pause) run in the forked container process without any
// exec at all. One process keeps every container of the node: a container
// costs one fork, not two, and no keeper process of its own.
//
// While a container runs, the server copies its output into the CRI-format
// log (runtime/cri_log.h). When it exits, the server reaps it, drains the
// pipe, removes the cgroup (killing what is left in it) and writes
// DIR/exit.json (ShimExit: exit code, signal, OOMKilled from the cgroup's
// OOM-kill count, the time). So "the container's process is gone and
// exit.json is missing" means "the server is recording it", unless the
// server itself is gone (ProcessRunning on ShimState::shim_pid).
//
// The server outlives kin serve: when the agent's socket closes it goes on
// keeping its containers, and exits once the last has exited. A new kin
// serve starts a server of its own for new containers and re-adopts the
// running ones from DIR/state.json (the old server still records their
// exits). The launcher's destructor asks the server how many containers it
// keeps and waits for it to exit when none.
//
// Thread-safety: RunShimServer is a process entry point; ShimLauncher is
// thread-safe. The file helpers are pure or touch only the named directory.
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
  pid_t shim_pid = 0;             // the shim server keeping the container
  uint64_t shim_start_ticks = 0;  // its start time (/proc/PID/stat field 22)
  pid_t pid = 0;                  // the container's process, as seen from the host
  uint64_t start_ticks = 0;  // its start time (/proc/PID/stat field 22): tells a reused pid apart
  std::string started_at;    // RFC 3339, UTC
};

struct ShimExit {
  int exit_code = -1;  // 128 + signal when killed by one, as runtimes report it
  int signal = 0;
  bool oom_killed = false;
  std::string finished_at;  // RFC 3339, UTC
  // Set only by the node agent, never read from exit.json: a reason that
  // replaces the one the exit gives ("Unknown": a task lost in a reboot).
  std::string reason;
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
// attached, or kShimServerBye, answered with the number of containers kept)
// and keeps the containers; returns the process exit code once the socket
// has closed and the last container has exited.
inline constexpr char kShimServerBye[] = "bye";
int RunShimServer();

// Starts containers through a `kin shim-server` it spawns on first use (and
// again if that one died). Destroying it ends the server when it keeps no
// container, else leaves it (and its containers) running.
class ShimLauncher {
 public:
  explicit ShimLauncher(std::string kin_binary);
  ~ShimLauncher();
  ShimLauncher(const ShimLauncher&) = delete;
  ShimLauncher& operator=(const ShimLauncher&) = delete;

  // Starts the container of DIR (config.json already written) and waits for the
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
// `pid` is a live process (not a zombie) that started at `start_ticks`
// (0: any start time). Tells a reused pid apart.
bool ProcessRunning(pid_t pid, uint64_t start_ticks);

}  // namespace kin
