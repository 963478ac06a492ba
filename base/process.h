// Child processes: spawning, owning and waiting.
//
// ChildProcess owns a process this program started (pid plus a pidfd, so a
// recycled pid is never signalled). Never copyable. If it is still running
// when its owner dies, the destructor kills it (SIGKILL) and reaps it, so a
// failing test or an aborted step leaves no process behind; Release() hands
// the process over to nobody (for daemons that must outlive us).
//
// RunCommand() is the convenience for short tools (ip, nft, kubectl): runs,
// captures stdout and stderr, enforces a deadline.
//
// Thread-safety: a ChildProcess is thread-compatible.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/fd.h"

namespace kin {

struct SpawnOptions {
  std::vector<std::string> argv;  // argv[0] is looked up in PATH when it has no '/'
  // Environment: inherited when unset; `env_extra` is added on top either way.
  std::optional<std::vector<std::string>> env;
  std::map<std::string, std::string> env_extra;
  std::string cwd;
  enum class Stdio { kInherit, kNull, kPipe };
  Stdio stdin_mode = Stdio::kInherit;
  Stdio stdout_mode = Stdio::kInherit;
  Stdio stderr_mode = Stdio::kInherit;
  // When >= 0: the child's stdin is a copy of this descriptor of ours (a
  // socket, say), whatever stdin_mode says. The caller keeps owning it.
  int stdin_fd = -1;
  std::string stdout_file;  // when set: stdout (and stderr if stderr_to_stdout) appended here
  bool stderr_to_stdout = false;
  bool new_session = false;  // setsid(): detach from our terminal and process group
};

struct ExitStatus {
  int code = -1;   // exit code when exited normally
  int signal = 0;  // terminating signal, 0 when exited normally
  bool exited() const { return signal == 0 && code >= 0; }
  bool success() const { return signal == 0 && code == 0; }
  std::string ToString() const;
};

class ChildProcess {
 public:
  ChildProcess() = default;
  static ChildProcess Spawn(const SpawnOptions& opts);
  // Takes ownership of a child this process forked by other means (e.g. a
  // container launcher's clone); `pidfd` may be invalid (then kill() is used).
  static ChildProcess Adopt(pid_t pid, UniqueFd pidfd);

  ChildProcess(ChildProcess&& o) noexcept;
  ChildProcess& operator=(ChildProcess&& o) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0 && !status_; }
  // Pipes (valid only for Stdio::kPipe); the caller may take them over.
  UniqueFd& stdin_pipe() { return stdin_; }
  UniqueFd& stdout_pipe() { return stdout_; }
  UniqueFd& stderr_pipe() { return stderr_; }

  void Signal(int sig);
  ExitStatus Wait();
  // Waits up to `timeout`; nullopt when still running.
  std::optional<ExitStatus> WaitFor(std::chrono::milliseconds timeout);
  // SIGTERM, wait up to `grace`, then SIGKILL; returns the exit status.
  ExitStatus Stop(std::chrono::milliseconds grace);
  // Gives the process up: it is neither killed nor reaped by this object.
  pid_t Release();

 private:
  void Reset();
  pid_t pid_ = -1;
  UniqueFd pidfd_;
  UniqueFd stdin_, stdout_, stderr_;
  std::optional<ExitStatus> status_;
};

struct CommandResult {
  ExitStatus status;
  std::string out;
  std::string err;
};

// Runs argv to completion (stdin from `input`), capturing output. A command
// still running at the deadline is killed and Timeout is thrown; a command
// that cannot start throws NotFound naming it.
CommandResult RunCommand(const std::vector<std::string>& argv,
                         std::chrono::milliseconds timeout = std::chrono::seconds(60),
                         const std::string& input = "",
                         const std::map<std::string, std::string>& env_extra = {});

// Is this process alive? (kill(pid, 0) succeeds or fails with EPERM.)
bool ProcessAlive(pid_t pid);

// SIGPIPE is what a write to a socket or pipe whose reader is gone raises,
// and its default action kills the process without a word. OpenSSL's socket
// BIO (and libcurl's TLS on top of it) writes with write(2), not
// send(MSG_NOSIGNAL), so a kept-alive connection that the peer closed can
// kill a process that keeps the default: the CLI does (kin serve ignores
// the signal). The signal is thread-directed, so blocking it on the writing
// thread turns it into EPIPE.

// Blocks SIGPIPE on the calling thread for the rest of its life (threads
// that only do network or pipe I/O).
void BlockSigpipeOnThisThread();
// Drops a SIGPIPE pending on the calling thread (it has it blocked).
void DropPendingSigpipe();

// Blocks SIGPIPE on the calling thread while it lives; on destruction drops
// one raised meanwhile and restores the thread's mask.
class ScopedSigpipeBlock {
 public:
  ScopedSigpipeBlock();
  ~ScopedSigpipeBlock();
  ScopedSigpipeBlock(const ScopedSigpipeBlock&) = delete;
  ScopedSigpipeBlock& operator=(const ScopedSigpipeBlock&) = delete;

 private:
  bool was_blocked_ = false;
};

}  // namespace kin
