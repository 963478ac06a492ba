// Container I/O for `kubectl exec` and `kubectl port-forward`: the runtime
// side. The HTTP/WebSocket/SPDY side moves bytes between the client and the
// descriptors handed out here.
//
// StartExec() starts a process inside a running container like `runc exec`:
// it joins the container's network, UTS, IPC, PID and mount namespaces
// (/proc/<container_pid>/ns/*, the mount namespace last, so the process sees
// the container's root and its cwd is the container's working dir inside
// it), enters the container's cgroup, and runs with the container's
// uid/gid/groups, capabilities, seccomp profile, no_new_privs and
// environment — all through LaunchContainer (container_launch.h).
//
// Attach: a kin container's own stdio is a log pipe with no stdin, so
// attaching is following the log; nothing lives here for it.
//
// DialInNetns() opens a TCP connection to localhost:port inside a pod's
// network namespace from a short-lived thread that enters it; the socket
// stays in that namespace, so the caller's threads never change theirs.
//
// Thread-safety: StartExec and DialInNetns are thread-safe. An ExecProcess is
// thread-compatible, except that Kill(), Resize(), pid() and the fd accessors
// may be called from any thread while another thread is in Wait()/WaitFor()
// or reads/writes the descriptors (the usual shape: one pump thread per
// stream, one waiter, resize events from the client).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "runtime/container_launch.h"
#include "runtime/container_spec.h"

namespace kin {

struct ExecOptions {
  std::vector<std::string> command;  // command[0] is looked up in the container's PATH
  bool tty = false;
  bool stdin = false;
};

// A process started inside a running container (exec) with its stdio.
// Owned: killed (SIGKILL) and reaped on destruction. Only that process is
// killed; what it started stays in the container, as with runc.
class ExecProcess {
 public:
  ExecProcess() = default;
  ExecProcess(ExecProcess&&) noexcept = default;
  ExecProcess& operator=(ExecProcess&&) noexcept = default;
  ExecProcess(const ExecProcess&) = delete;
  ExecProcess& operator=(const ExecProcess&) = delete;
  ~ExecProcess() = default;  // members: the process is killed and reaped, fds closed

  // Write end of the process's stdin; -1 when stdin was not asked for.
  // With a TTY it is the pty master (== stdout_fd()). Writing after the
  // process is gone raises SIGPIPE (pipe) or fails with EIO (pty): ignore
  // SIGPIPE (kin serve does) or block it in the writing thread.
  int stdin_fd() const { return tty_ ? (want_stdin_ ? pty_.get() : -1) : stdin_.get(); }
  // Read end of stdout. With a TTY: the pty master, stdout and stderr
  // merged; reading it fails with EIO (not EOF) once the process and every
  // other holder of the terminal are gone and the output is drained.
  int stdout_fd() const { return tty_ ? pty_.get() : stdout_.get(); }
  // Note for both streams: EOF (EIO) comes only when every holder of the
  // write side is gone, including background children the command left in
  // the container; end the stream once Wait() has returned and the reads
  // come back empty, rather than waiting for EOF forever.
  // Read end of stderr; -1 with a TTY.
  int stderr_fd() const { return tty_ ? -1 : stderr_.get(); }
  bool tty() const { return tty_; }

  // EOF on the process's stdin: closes our write end of the pipe. With a
  // TTY nothing is closed (the master also carries the output): a terminal
  // client sends ^D itself, as `kubectl exec -it` does.
  void CloseStdin();
  // TIOCSWINSZ on the pty (the process gets SIGWINCH); no-op without a TTY.
  void Resize(uint16_t width, uint16_t height);
  // The exit code (128 + signal when killed by a signal); nullopt while
  // the process is still running after `timeout`.
  std::optional<int> WaitFor(std::chrono::milliseconds timeout);
  int Wait();
  // SIGKILL; harmless when the process has already exited.
  void Kill();
  pid_t pid() const { return pid_; }

 private:
  friend ExecProcess StartExec(const ContainerSpec&, pid_t, const std::string&, const ExecOptions&);
  static int ExitCode(const ExitStatus& s);

  ChildProcess process_;
  pid_t pid_ = -1;
  UniqueFd pidfd_;  // our own, so Kill() never races with the reaping in Wait()
  UniqueFd stdin_, stdout_, stderr_, pty_;
  bool tty_ = false;
  bool want_stdin_ = false;
};

// Starts `opts.command` in the container whose own spec is `container`
// (from its config.json), running as host pid `container_pid` (state.json),
// in the cgroup named `cgroup` (ShimConfig::cgroup; empty: none joined).
//
// Errors:
// - a command that cannot be executed: Error::NotFound, with the message
//   runc gives (`exec: "nope": executable file not found in $PATH`, or
//   `exec: "/etc": permission denied`) and sys_errno() ENOENT or EACCES;
//   ExecStartExitCode() turns it into the shell-style exit code (127/126)
//   the HTTP side reports. We throw rather than fake an exit code so the
//   caller can show the message, as kubectl does with runc's.
// - the container is gone (its /proc/PID/ns files or cgroup missing): NotFound.
// - other setup steps: the ErrnoError of the step, "exec in container `NAME`: STEP: ...".
ExecProcess StartExec(const ContainerSpec& container, pid_t container_pid,
                      const std::string& cgroup, const ExecOptions& opts);

// 127 for an executable that was not found, 126 for one that could not be
// executed (EACCES), nullopt for any other error: what a shell would exit with.
std::optional<int> ExecStartExitCode(const Error& e);

// The cgroup.procs files of kin's existing cgroup `name` (the layout
// Cgroup::Create makes: <root>/{memory,cpu,pids}/kin/NAME on v1,
// <v2>/kin/NAME on v2), for a process that must join a cgroup it does not
// own. Throws NotFound when a directory is missing, Invalid for a bad name.
std::vector<std::string> ExistingCgroupProcsFiles(const std::string& name,
                                                  const std::string& root = "/sys/fs/cgroup");

// A TCP connection to `port` on localhost inside the network namespace at
// `netns_path` (127.0.0.1 first, then ::1, as the kubelet's CRI runtime
// does). The returned socket is blocking and close-on-exec.
// Errors: NotFound when the namespace does not exist; Unavailable when
// nothing accepts (message: `failed to connect to localhost:PORT inside
// namespace "PATH", IPv4: dial tcp4 127.0.0.1:PORT: connect: connection
// refused IPv6 dial tcp6 [::1]:PORT: connect: connection refused`), also
// when `timeout` passes before either connects ("i/o timeout").
UniqueFd DialInNetns(const std::string& netns_path, uint16_t port,
                     std::chrono::milliseconds timeout = std::chrono::seconds(5));

}  // namespace kin
