#include "runtime/container_io.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <utility>

#include "base/netns.h"
#include "runtime/cgroup.h"

namespace kin {

namespace {

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

struct Pipe {
  UniqueFd read, write;
};

Pipe MakePipe(const std::string& what) {
  int fds[2];
  CheckSys(::pipe2(fds, O_CLOEXEC), "create " + what + " pipe");
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

struct Pty {
  UniqueFd master, slave;
};

// A pty from the container's own devpts when it has one (a root filesystem
// gets a private instance), so the name the process sees for its terminal
// (`tty`) exists inside the container; else the host's /dev/ptmx.
// RESOLVE_IN_ROOT keeps /dev/ptmx -> pts/ptmx (or an absolute link in an
// image) inside the container's root.
Pty OpenPty(pid_t container_pid) {
  UniqueFd master;
  UniqueFd root(::open(("/proc/" + std::to_string(container_pid) + "/root").c_str(),
                       O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (root) {
    open_how how{};
    how.flags = O_RDWR | O_NOCTTY | O_CLOEXEC;
    how.resolve = RESOLVE_IN_ROOT;
    master.reset(
        static_cast<int>(::syscall(SYS_openat2, root.get(), "dev/ptmx", &how, sizeof how)));
  }
  if (!master) master.reset(::open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!master) throw ErrnoError(errno, "open a pseudo-terminal");
  int unlock = 0;
  CheckSys(::ioctl(master.get(), TIOCSPTLCK, &unlock), "unlock the pseudo-terminal");
  // TIOCGPTPEER opens the slave of this very master without a path lookup
  // (the devpts may not be mounted where we could see it).
  UniqueFd slave(::ioctl(master.get(), TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!slave) throw ErrnoError(errno, "open the pseudo-terminal's slave");
  return {std::move(master), std::move(slave)};
}

// "start container `NAME`: STEP: ..." from LaunchContainer, reworded for exec.
Error Reword(const Error& e, const std::string& name, const std::string& command) {
  std::string prefix = "start container `" + name + "`: ";
  std::string rest =
      e.message().rfind(prefix, 0) == 0 ? e.message().substr(prefix.size()) : e.message();
  std::string exec_step = "exec `" + command + "`: ";
  Error out(e.code(), "exec in container `" + name + "`: " + rest);
  if (e.code() == Code::kNotFound && rest.rfind(exec_step, 0) == 0) {
    // runc's wording, which kubectl users know.
    out = Error(
        Code::kNotFound,
        "exec: \"" + command + "\": " +
            (e.sys_errno() == EACCES ? "permission denied" : "executable file not found in $PATH"));
  }
  out.WithErrno(e.sys_errno());
  return out;
}

// Connects `fd` to `addr` within `timeout`; 0 or the errno.
int ConnectWithin(int fd, const sockaddr* addr, socklen_t len, std::chrono::milliseconds timeout) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return errno;
  if (::connect(fd, addr, len) < 0) {
    if (errno != EINPROGRESS) return errno;
    pollfd p{fd, POLLOUT, 0};
    int n;
    do {
      n = ::poll(&p, 1, static_cast<int>(timeout.count()));
    } while (n < 0 && errno == EINTR);
    if (n < 0) return errno;
    if (n == 0) return ETIMEDOUT;
    int err = 0;
    socklen_t err_len = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &err_len) < 0) return errno;
    if (err != 0) return err;
  }
  if (::fcntl(fd, F_SETFL, flags) < 0) return errno;
  return 0;
}

// Go's wording ("connect: connection refused"), which kubelet's message carries.
std::string DialError(int err) {
  if (err == ETIMEDOUT) return "i/o timeout";
  std::string text = std::strerror(err);
  if (!text.empty()) text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  return "connect: " + text;
}

}  // namespace

void ExecProcess::CloseStdin() {
  if (!tty_) stdin_.reset();
}

void ExecProcess::Resize(uint16_t width, uint16_t height) {
  if (!tty_ || !pty_) return;
  winsize ws{};
  ws.ws_col = width;
  ws.ws_row = height;
  ::ioctl(pty_.get(), TIOCSWINSZ, &ws);  // fails only if the pty is gone: nothing to resize
}

int ExecProcess::ExitCode(const ExitStatus& s) { return s.signal != 0 ? 128 + s.signal : s.code; }

std::optional<int> ExecProcess::WaitFor(std::chrono::milliseconds timeout) {
  auto status = process_.WaitFor(timeout);
  if (!status) return std::nullopt;
  return ExitCode(*status);
}

int ExecProcess::Wait() { return ExitCode(process_.Wait()); }

void ExecProcess::Kill() {
  if (pidfd_) {
    // ESRCH once it has exited: nothing to do.
    ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
  }
}

std::vector<std::string> ExistingCgroupProcsFiles(const std::string& name,
                                                  const std::string& root) {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
    throw Error::Invalid("cgroup name \"" + name + "\" must be a single path component");
  }
  std::vector<std::string> dirs;
  std::string v2 = FindCgroupV2WithControllers(root);
  if (!v2.empty()) {
    dirs = {v2 + "/kin/" + name};
  } else {
    for (const char* ctl : {"memory", "cpu", "pids"}) {
      dirs.push_back(root + "/" + ctl + "/kin/" + name);
    }
  }
  std::vector<std::string> out;
  for (const auto& d : dirs) {
    if (!IsDirectory(d)) throw Error::NotFound("cgroup " + d + " does not exist");
    out.push_back(d + "/cgroup.procs");
  }
  return out;
}

std::optional<int> ExecStartExitCode(const Error& e) {
  if (e.code() != Code::kNotFound || e.message().rfind("exec: \"", 0) != 0) return std::nullopt;
  return e.sys_errno() == EACCES ? 126 : 127;
}

ExecProcess StartExec(const ContainerSpec& container, pid_t container_pid,
                      const std::string& cgroup, const ExecOptions& opts) {
  if (opts.command.empty() || opts.command[0].empty()) {
    throw Error::BadRequest("exec in container `" + container.name +
                            "`: you must specify at least one command for the container");
  }
  if (container_pid <= 0) {
    throw Error::NotFound("exec in container `" + container.name +
                          "`: the container is not running");
  }
  ContainerSpec spec = container;
  spec.argv = opts.command;
  const std::string ns = "/proc/" + std::to_string(container_pid) + "/ns/";
  spec.net_ns = ns + "net";
  spec.uts_ns = ns + "uts";
  spec.ipc_ns = ns + "ipc";
  spec.pid_ns = ns + "pid";
  spec.mnt_ns = ns + "mnt";
  spec.new_mount_ns = spec.new_pid_ns = spec.new_uts_ns = spec.new_ipc_ns = false;
  spec.hostname.clear();  // the UTS namespace already has it
  spec.mounts.clear();    // the mount namespace already has them
  spec.detach_mounts.clear();
  spec.mount_template.clear();
  spec.rootfs.reset();
  spec.resources = {};
  spec.log_path.clear();

  ExecProcess exec;
  exec.tty_ = opts.tty;
  exec.want_stdin_ = opts.stdin;
  try {
    if (!cgroup.empty()) spec.cgroup_procs_files = ExistingCgroupProcsFiles(cgroup);
  } catch (const Error& e) {
    Error out(e.code(), "exec in container `" + container.name + "`: " + e.message());
    throw out;
  }
  // The child's ends live only until LaunchContainer returns.
  UniqueFd child_in, child_out, child_err;
  if (opts.tty) {
    Pty pty = OpenPty(container_pid);
    exec.pty_ = std::move(pty.master);
    child_in = std::move(pty.slave);
    spec.stdin_fd = spec.stdout_fd = spec.stderr_fd = child_in.get();
    spec.setsid_ctty = true;
  } else {
    if (opts.stdin) {
      Pipe in = MakePipe("stdin");
      exec.stdin_ = std::move(in.write);
      child_in = std::move(in.read);
      spec.stdin_fd = child_in.get();
    }
    Pipe out = MakePipe("stdout"), err = MakePipe("stderr");
    exec.stdout_ = std::move(out.read);
    exec.stderr_ = std::move(err.read);
    child_out = std::move(out.write);
    child_err = std::move(err.write);
    spec.stdout_fd = child_out.get();
    spec.stderr_fd = child_err.get();
  }
  try {
    exec.process_ = LaunchContainer(spec);
  } catch (const Error& e) {
    throw Reword(e, container.name, opts.command[0]);
  }
  exec.pid_ = exec.process_.pid();
  // Our unreaped child: the pid cannot be reused before we wait for it.
  exec.pidfd_.reset(static_cast<int>(::syscall(SYS_pidfd_open, exec.pid_, 0)));
  return exec;
}

UniqueFd DialInNetns(const std::string& netns_path, uint16_t port,
                     std::chrono::milliseconds timeout) {
  UniqueFd ns_fd(::open(netns_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns_fd) throw ErrnoError(errno, "open network namespace " + netns_path);
  Netns netns(std::move(ns_fd));
  const std::string p = std::to_string(port);
  UniqueFd conn;
  std::string v4_error, v6_error;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto left = [&] {
    return std::max(std::chrono::milliseconds(0),
                    std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::steady_clock::now()));
  };
  RunInNetns(netns, [&] {
    UniqueFd v4(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!v4) throw ErrnoError(errno, "create socket");
    sockaddr_in a4{};
    a4.sin_family = AF_INET;
    a4.sin_port = htons(port);
    a4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int err = ConnectWithin(v4.get(), reinterpret_cast<sockaddr*>(&a4), sizeof a4, left());
    if (err == 0) {
      conn = std::move(v4);
      return;
    }
    v4_error = "dial tcp4 127.0.0.1:" + p + ": " + DialError(err);
    UniqueFd v6(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!v6) {
      v6_error = "dial tcp6 [::1]:" + p + ": socket: " + std::strerror(errno);
      return;
    }
    sockaddr_in6 a6{};
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons(port);
    a6.sin6_addr = in6addr_loopback;
    err = ConnectWithin(v6.get(), reinterpret_cast<sockaddr*>(&a6), sizeof a6, left());
    if (err == 0) {
      conn = std::move(v6);
      return;
    }
    v6_error = "dial tcp6 [::1]:" + p + ": " + DialError(err);
  });
  if (conn) return conn;
  throw Error::Unavailable("failed to connect to localhost:" + p + " inside namespace \"" +
                           netns_path + "\", IPv4: " + v4_error + " IPv6 " + v6_error);
}

}  // namespace kin
