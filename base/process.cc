#include "base/process.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/error.h"

extern char** environ;

namespace kin {

namespace {

int PidfdOpen(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

ExitStatus FromWaitStatus(int ws) {
  ExitStatus s;
  if (WIFEXITED(ws)) {
    s.code = WEXITSTATUS(ws);
  } else if (WIFSIGNALED(ws)) {
    s.signal = WTERMSIG(ws);
    s.code = 128 + s.signal;
  }
  return s;
}

std::string Basename(const std::string& p) {
  auto pos = p.rfind('/');
  return pos == std::string::npos ? p : p.substr(pos + 1);
}

}  // namespace

std::string ExitStatus::ToString() const {
  if (signal != 0) {
    const char* abbrev = ::sigabbrev_np(signal);
    return std::string("killed by signal ") + (abbrev ? abbrev : std::to_string(signal));
  }
  return "exit code " + std::to_string(code);
}

ChildProcess ChildProcess::Spawn(const SpawnOptions& opts) {
  if (opts.argv.empty()) throw Error::BadRequest("spawn: empty command");
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  struct Cleanup {
    posix_spawn_file_actions_t* fa;
    posix_spawnattr_t* attr;
    ~Cleanup() {
      posix_spawn_file_actions_destroy(fa);
      posix_spawnattr_destroy(attr);
    }
  } cleanup{&fa, &attr};

  ChildProcess child;
  UniqueFd child_ends[3];
  auto setup = [&](int target, SpawnOptions::Stdio mode, UniqueFd& parent_end) {
    if (mode == SpawnOptions::Stdio::kNull) {
      posix_spawn_file_actions_addopen(&fa, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY,
                                       0);
    } else if (mode == SpawnOptions::Stdio::kPipe) {
      int p[2];
      CheckSys(::pipe2(p, O_CLOEXEC), "create pipe");
      int child_fd = target == 0 ? p[0] : p[1];
      parent_end.reset(target == 0 ? p[1] : p[0]);
      child_ends[target].reset(child_fd);
      posix_spawn_file_actions_adddup2(&fa, child_fd, target);
    }
  };
  if (opts.stdin_fd >= 0) {
    posix_spawn_file_actions_adddup2(&fa, opts.stdin_fd, 0);
  } else {
    setup(0, opts.stdin_mode, child.stdin_);
  }
  if (!opts.stdout_file.empty()) {
    posix_spawn_file_actions_addopen(&fa, 1, opts.stdout_file.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
  } else {
    setup(1, opts.stdout_mode, child.stdout_);
  }
  if (opts.stderr_to_stdout) {
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
  } else {
    setup(2, opts.stderr_mode, child.stderr_);
  }
  if (!opts.cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa, opts.cwd.c_str());

  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (opts.new_session) flags |= POSIX_SPAWN_SETSID;
  posix_spawnattr_setflags(&attr, flags);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);

  std::vector<std::string> env_strings;
  if (opts.env) {
    env_strings = *opts.env;
  } else {
    for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  }
  for (const auto& [k, v] : opts.env_extra) {
    std::string prefix = k + "=";
    std::erase_if(env_strings, [&](const std::string& s) { return s.rfind(prefix, 0) == 0; });
    env_strings.push_back(prefix + v);
  }
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = opts.argv;
  std::vector<char*> argv;
  for (auto& s : argv_copy) argv.push_back(s.data());
  argv.push_back(nullptr);

  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, argv[0], &fa, &attr, argv.data(), envp.data());
  if (rc != 0) {
    Error e = ErrnoError(rc, "start `" + Basename(opts.argv[0]) + "`");
    if (rc == ENOENT) e = Error::NotFound(e.message());
    throw e;
  }
  child.pid_ = pid;
  child.pidfd_.reset(PidfdOpen(pid));
  return child;
}

ChildProcess ChildProcess::Adopt(pid_t pid, UniqueFd pidfd) {
  ChildProcess child;
  child.pid_ = pid;
  child.pidfd_ = std::move(pidfd);
  return child;
}

ChildProcess::ChildProcess(ChildProcess&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)),
      pidfd_(std::move(o.pidfd_)),
      stdin_(std::move(o.stdin_)),
      stdout_(std::move(o.stdout_)),
      stderr_(std::move(o.stderr_)),
      status_(std::exchange(o.status_, std::nullopt)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& o) noexcept {
  if (this != &o) {
    Reset();
    pid_ = std::exchange(o.pid_, -1);
    pidfd_ = std::move(o.pidfd_);
    stdin_ = std::move(o.stdin_);
    stdout_ = std::move(o.stdout_);
    stderr_ = std::move(o.stderr_);
    status_ = std::exchange(o.status_, std::nullopt);
  }
  return *this;
}

ChildProcess::~ChildProcess() { Reset(); }

void ChildProcess::Reset() {
  if (running()) {
    Signal(SIGKILL);
    Wait();
  }
  pid_ = -1;
  pidfd_.reset();
  status_.reset();
}

void ChildProcess::Signal(int sig) {
  if (!running()) return;
  if (pidfd_.valid()) {
    if (::syscall(SYS_pidfd_send_signal, pidfd_.get(), sig, nullptr, 0) < 0 && errno != ESRCH) {
      throw ErrnoError(errno, "signal process " + std::to_string(pid_));
    }
    return;
  }
  if (::kill(pid_, sig) < 0 && errno != ESRCH) {
    throw ErrnoError(errno, "signal process " + std::to_string(pid_));
  }
}

ExitStatus ChildProcess::Wait() {
  if (status_) return *status_;
  if (pid_ <= 0) throw Error::BadRequest("wait: no process");
  int ws = 0;
  while (::waitpid(pid_, &ws, 0) < 0) {
    if (errno != EINTR) throw ErrnoError(errno, "wait for process " + std::to_string(pid_));
  }
  status_ = FromWaitStatus(ws);
  return *status_;
}

std::optional<ExitStatus> ChildProcess::WaitFor(std::chrono::milliseconds timeout) {
  if (status_) return status_;
  if (pid_ <= 0) throw Error::BadRequest("wait: no process");
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int ws = 0;
    pid_t r = ::waitpid(pid_, &ws, WNOHANG);
    if (r == pid_) {
      status_ = FromWaitStatus(ws);
      return status_;
    }
    if (r < 0 && errno != EINTR)
      throw ErrnoError(errno, "wait for process " + std::to_string(pid_));
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    if (pidfd_.valid()) {
      pollfd p{pidfd_.get(), POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(left.count()));
    } else {
      ::usleep(1000);
    }
  }
}

ExitStatus ChildProcess::Stop(std::chrono::milliseconds grace) {
  if (!running()) return status_ ? *status_ : ExitStatus{};
  Signal(SIGTERM);
  if (auto s = WaitFor(grace)) return *s;
  Signal(SIGKILL);
  return Wait();
}

pid_t ChildProcess::Release() {
  pid_t p = pid_;
  pid_ = -1;
  pidfd_.reset();
  return p;
}

CommandResult RunCommand(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                         const std::string& input,
                         const std::map<std::string, std::string>& env_extra) {
  SpawnOptions opts;
  opts.argv = argv;
  opts.env_extra = env_extra;
  opts.stdin_mode = input.empty() ? SpawnOptions::Stdio::kNull : SpawnOptions::Stdio::kPipe;
  opts.stdout_mode = SpawnOptions::Stdio::kPipe;
  opts.stderr_mode = SpawnOptions::Stdio::kPipe;
  ChildProcess child = ChildProcess::Spawn(opts);

  CommandResult res;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  size_t written = 0;
  if (!input.empty()) ::fcntl(child.stdin_pipe().get(), F_SETFL, O_NONBLOCK);
  while (child.stdout_pipe().valid() || child.stderr_pipe().valid()) {
    pollfd fds[3];
    int n = 0;
    int idx_out = -1, idx_err = -1, idx_in = -1;
    if (child.stdout_pipe().valid()) {
      fds[n] = {child.stdout_pipe().get(), POLLIN, 0};
      idx_out = n++;
    }
    if (child.stderr_pipe().valid()) {
      fds[n] = {child.stderr_pipe().get(), POLLIN, 0};
      idx_err = n++;
    }
    if (child.stdin_pipe().valid()) {
      fds[n] = {child.stdin_pipe().get(), POLLOUT, 0};
      idx_in = n++;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      child.Signal(SIGKILL);
      child.Wait();
      throw Error::Timeout("`" + Basename(argv[0]) + "` did not finish within " +
                           std::to_string(timeout.count()) + " ms");
    }
    int r = ::poll(fds, n, static_cast<int>(left.count()));
    if (r < 0) {
      if (errno == EINTR) continue;
      throw ErrnoError(errno, "poll");
    }
    char buf[65536];
    auto drain = [&](int idx, UniqueFd& fd, std::string& out) {
      if (idx < 0 || !(fds[idx].revents & (POLLIN | POLLHUP | POLLERR))) return;
      ssize_t k = ::read(fd.get(), buf, sizeof buf);
      if (k > 0) {
        out.append(buf, k);
      } else if (k == 0 || errno != EINTR) {
        fd.reset();
      }
    };
    drain(idx_out, child.stdout_pipe(), res.out);
    drain(idx_err, child.stderr_pipe(), res.err);
    if (idx_in >= 0 && (fds[idx_in].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t k = ::write(child.stdin_pipe().get(), input.data() + written, input.size() - written);
      if (k > 0) written += k;
      if (k < 0 && errno != EAGAIN && errno != EINTR) written = input.size();
      if (written >= input.size()) child.stdin_pipe().reset();
    }
  }
  child.stdin_pipe().reset();
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  auto st = child.WaitFor(std::max(left, std::chrono::milliseconds(1)));
  if (!st) {
    child.Signal(SIGKILL);
    child.Wait();
    throw Error::Timeout("`" + Basename(argv[0]) + "` did not finish within " +
                         std::to_string(timeout.count()) + " ms");
  }
  res.status = *st;
  return res;
}

bool ProcessAlive(pid_t pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM); }

namespace {
sigset_t SigpipeSet() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  return set;
}
}  // namespace

void BlockSigpipeOnThisThread() {
  sigset_t set = SigpipeSet();
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void DropPendingSigpipe() {
  sigset_t set = SigpipeSet();
  timespec zero{0, 0};
  while (::sigtimedwait(&set, nullptr, &zero) > 0) {
  }
}

ScopedSigpipeBlock::ScopedSigpipeBlock() {
  sigset_t set = SigpipeSet(), old;
  ::pthread_sigmask(SIG_BLOCK, &set, &old);
  was_blocked_ = sigismember(&old, SIGPIPE) == 1;
}

ScopedSigpipeBlock::~ScopedSigpipeBlock() {
  if (was_blocked_) return;  // an outer owner drops it
  DropPendingSigpipe();
  sigset_t set = SigpipeSet();
  ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

}  // namespace kin
