#include "runtime/shim.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <vector>

#include "base/error.h"
#include "base/file.h"
#include "base/log.h"
#include "base/process.h"
#include "client/object.h"
#include "runtime/agnhost.h"
#include "runtime/cgroup.h"
#include "runtime/container_launch.h"
#include "runtime/cri_log.h"

namespace kin {

namespace {

// The environment variable that numbers a launcher's server (see KeepToOneCpu).
constexpr char kShimServerSlot[] = "KIN_SHIM_SERVER_SLOT";

Json MountsToJson(const std::vector<BindMount>& mounts) {
  Json a = Json::array();
  for (const auto& m : mounts)
    a.push_back({{"source", m.source}, {"target", m.target}, {"readOnly", m.read_only}});
  return a;
}

template <typename T>
void Read(const Json& j, const char* key, T& out) {
  auto it = j.find(key);
  if (it != j.end() && !it->is_null()) out = it->get<T>();
}

void WriteJsonFile(const std::string& path, const Json& j) {
  WriteFileAtomic(path, j.dump(), 0644, /*sync=*/false);
}

std::optional<Json> ReadJsonFile(const std::string& path) {
  auto text = ReadFileIfExists(path);
  if (!text) return std::nullopt;
  try {
    return Json::parse(*text);
  } catch (const std::exception& e) {
    // A torn or foreign file reads as absent: the writer replaces files atomically.
    log::Warn("ignoring unreadable {}: {}", path, e.what());
    return std::nullopt;
  }
}

bool WriteAllFd(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t w = ::write(fd, data.data(), data.size());
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(w));
  }
  return true;
}

std::string ReadAllFd(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// kin's built-in images run `kin agnhost ...`. The shim is the kin binary
// already: the container's process calls agnhost where it would exec it.
bool IsKinAgnhost(const std::vector<std::string>& argv) {
  if (argv.size() < 2 || argv[1] != "agnhost") return false;
  struct stat self {
  }, target{};
  return ::stat("/proc/self/exe", &self) == 0 && ::stat(argv[0].c_str(), &target) == 0 &&
         self.st_dev == target.st_dev && self.st_ino == target.st_ino;
}

int RunAgnhostInProcess(int argc, char** argv) {
  ::prctl(PR_SET_NAME, "agnhost", 0, 0, 0);  // what ps and top show for it
  return RunAgnhost(std::vector<std::string>(argv + 2, argv + argc));
}

// The zygote keeps to one CPU: each fork write-protects its pages, and the
// TLB flush of a page it writes afterwards stays local on one CPU (in a VM
// a cross-CPU one costs more than the copy). Containers get back the CPUs
// it was given. The launchers number their servers (kShimServerSlot) so
// that the zygotes of a cluster's nodes take the CPUs in turn.
void KeepToOneCpu() {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (::sched_getaffinity(0, sizeof allowed, &allowed) != 0 || CPU_COUNT(&allowed) < 2) return;
  SetContainerCpuAffinity(allowed);
  const char* slot = std::getenv(kShimServerSlot);
  int pick = (slot != nullptr ? std::atoi(slot) : ::getpid()) % CPU_COUNT(&allowed);
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &allowed) || pick-- > 0) continue;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    ::sched_setaffinity(0, sizeof one, &one);
    return;
  }
}

// One container the server keeps: its process (a child of our zygote),
// cgroup, output pipe and CRI log.
struct Kept {
  std::string dir;
  pid_t pid = 0;
  Cgroup cgroup;
  UniqueFd out;  // the read end of the container's stdout and stderr
  std::unique_ptr<CriLogWriter> log;
};

// The zygote: a fork of the server made before the server does any work,
// which forks the containers. Each fork write-protects the forking process's
// pages, and each page it writes afterwards is copied (with a TLB flush): the
// server, whose heap churns with every launch, paid that for every page it
// touched; the zygote touches almost none between two forks. The container
// process prepares itself (BecomeContainer) after the fork.
//
// Requests (server -> zygote, SOCK_SEQPACKET): a ZygoteRequest, then the
// NUL-separated strings: container dir, root mount point, the cgroup's
// procs files; with SCM_RIGHTS [output pipe, report pipe, (PID namespace)].
// Notes (zygote -> server): ZygoteNote.
struct ZygoteRequest {
  bool new_pid_ns = false;
  bool join_pid_ns = false;  // the third fd is the namespace to join
};
struct ZygoteNote {
  enum Kind : int32_t { kForked = 1, kExited = 2 } kind;
  int32_t pid;    // kForked: the container's pid, or 0 when the fork failed
  int32_t value;  // kForked: the fork's errno; kExited: the wait status
};

bool SendNote(int sock, ZygoteNote note) {
  return ::send(sock, &note, sizeof note, MSG_NOSIGNAL) == sizeof note;
}

// In the forked container process: prepares from DIR/config.json and becomes
// the container. Never returns.
[[noreturn]] void ContainerFromRequest(const std::vector<std::string>& strings, int out,
                                       int report) {
  try {
    if (strings.size() < 2) throw Error::Internal("shim zygote: malformed request");
    const std::string& dir = strings[0];
    auto cfg = ReadJsonFile(dir + "/config.json");
    if (!cfg) throw Error::NotFound("shim: no config.json in " + dir);
    ShimConfig config = ShimConfigFromJson(*cfg);
    if (IsKinAgnhost(config.spec.argv)) config.spec.in_process_main = &RunAgnhostInProcess;
    // The launcher opens log_path for the container's stdout and stderr: our
    // pipe to the server, reopened through /proc, becomes both.
    config.spec.log_path = "/proc/self/fd/" + std::to_string(out);
    config.spec.cgroup_procs_files.assign(strings.begin() + 2, strings.end());
    BecomeContainer(config.spec, nullptr, report, strings[1]);
  } catch (const Error& e) {
    ReportLaunchFailure(report, e);
  } catch (const std::exception& e) {
    ReportLaunchFailure(report, Error::Internal(e.what()));
  }
  ::_exit(127);
}

[[noreturn]] void RunZygote(int sock) {
  // Nothing of the server's but our socket: a pipe it has open (a launch's
  // report pipe, when a zygote is replaced) must not stay open here.
  int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull >= 0) ::dup2(devnull, 0);
  if (sock > 3) ::syscall(SYS_close_range, 3, sock - 1, 0);
  ::syscall(SYS_close_range, sock + 1, ~0U, 0);
  ::prctl(PR_SET_NAME, "kin-shim-zygote", 0, 0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);  // the server's helper only
  KeepToOneCpu();
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &chld, nullptr);
  int sfd = ::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  int own_pid_ns = ::open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
  if (sfd < 0 || own_pid_ns < 0) ::_exit(1);
  for (;;) {
    pollfd fds[2] = {{sock, POLLIN, 0}, {sfd, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      ::_exit(1);
    }
    if (fds[1].revents & POLLIN) {
      signalfd_siginfo info;
      while (::read(sfd, &info, sizeof info) > 0) {
      }
      int status = 0;
      for (pid_t pid; (pid = ::waitpid(-1, &status, WNOHANG)) > 0;) {
        SendNote(sock, {ZygoteNote::kExited, pid, status});
      }
    }
    if (!(fds[0].revents & (POLLIN | POLLHUP))) continue;
    char buf[8192];
    iovec iov{buf, sizeof buf - 1};
    alignas(cmsghdr) char control[CMSG_SPACE(3 * sizeof(int))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) ::_exit(0);  // the server is gone: its containers are its (a subreaper's) now
    int got[3] = {-1, -1, -1};
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        std::memcpy(got, CMSG_DATA(c), std::min(sizeof got, c->cmsg_len - CMSG_LEN(0)));
      }
    }
    ZygoteRequest req;
    bool ok = static_cast<size_t>(n) >= sizeof req && got[0] >= 0 && got[1] >= 0;
    if (ok) std::memcpy(&req, buf, sizeof req);
    ok = ok && (!req.join_pid_ns || got[2] >= 0);
    pid_t pid = -1;
    int err = EINVAL;
    if (ok && req.join_pid_ns && ::setns(got[2], CLONE_NEWPID) < 0) ok = false, err = errno;
    if (ok && req.new_pid_ns && ::unshare(CLONE_NEWPID) < 0) ok = false, err = errno;
    if (ok) {
      pid = ::fork();
      err = errno;
      if (pid == 0) {
        buf[n] = '\0';
        std::vector<std::string> strings;
        for (size_t at = sizeof req; at < static_cast<size_t>(n); at += strings.back().size() + 1) {
          strings.emplace_back(buf + at);
        }
        ContainerFromRequest(strings, got[0], got[1]);
      }
    }
    // Our next children are born in our own PID namespace again.
    if ((req.join_pid_ns || req.new_pid_ns) && ::setns(own_pid_ns, CLONE_NEWPID) < 0) ::_exit(1);
    for (int fd : got) {
      if (fd >= 0) ::close(fd);
    }
    SendNote(sock, {ZygoteNote::kForked, pid > 0 ? pid : 0, pid > 0 ? 0 : err});
  }
}

// The server's side of its zygote.
class Zygote {
 public:
  ~Zygote() { Stop(); }
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  int socket() const { return sock_.get(); }

  void Start() {
    int fds[2];
    CheckSys(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds),
             "shim zygote: socketpair");
    UniqueFd ours(fds[0]), theirs(fds[1]);
    pid_t pid = ::fork();
    if (pid < 0) throw ErrnoError(errno, "shim zygote: fork");
    if (pid == 0) {
      ours.reset();
      RunZygote(theirs.get());
    }
    pid_ = pid;
    sock_ = std::move(ours);
  }

  void Stop() {
    sock_.reset();  // it sees the end of its socket and exits
    if (pid_ > 0) ::waitpid(pid_, nullptr, 0);
    pid_ = 0;
  }

  // Forks a container process for `dir`; returns its pid. Exit notes that
  // arrive meanwhile go to `exits`.
  pid_t Fork(const std::vector<std::string>& strings, const ZygoteRequest& req, int out, int report,
             int pid_ns, std::vector<ZygoteNote>& exits) {
    if (!running()) Start();
    std::string payload(reinterpret_cast<const char*>(&req), sizeof req);
    for (const auto& s : strings) payload.append(s.c_str(), s.size() + 1);
    int fds[3] = {out, report, pid_ns};
    size_t nfds = pid_ns >= 0 ? 3 : 2;
    alignas(cmsghdr) char control[CMSG_SPACE(3 * sizeof(int))] = {};
    iovec iov{payload.data(), payload.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
    std::memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
    if (::sendmsg(sock_.get(), &msg, MSG_NOSIGNAL) < 0) {
      int err = errno;
      Lost();
      throw ErrnoError(err, "shim zygote: send request");
    }
    for (;;) {
      ZygoteNote note{};
      ssize_t n = ::recv(sock_.get(), &note, sizeof note, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n != sizeof note) {
        Lost();
        throw Error::Internal("shim zygote: died during a fork");
      }
      if (note.kind == ZygoteNote::kExited) {
        exits.push_back(note);
        continue;
      }
      if (note.pid <= 0) throw ErrnoError(note.value, "shim zygote: fork the container");
      return note.pid;
    }
  }

  // Reads the notes that are waiting; false when the zygote is gone.
  bool Drain(std::vector<ZygoteNote>& exits) {
    for (;;) {
      ZygoteNote note{};
      ssize_t n = ::recv(sock_.get(), &note, sizeof note, MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return true;
      if (n != sizeof note) {
        Lost();
        return false;
      }
      if (note.kind == ZygoteNote::kExited) exits.push_back(note);
    }
  }

 private:
  // It died: reap it; its orphaned containers are ours now (we are a
  // subreaper), and the next launch starts another.
  void Lost() {
    sock_.reset();
    if (pid_ > 0) ::waitpid(pid_, nullptr, 0);
    pid_ = 0;
  }
  pid_t pid_ = 0;
  UniqueFd sock_;
};

// Launches the container of DIR/config.json through the zygote and writes
// DIR/state.json. Exit notes seen meanwhile go to `exits`.
std::unique_ptr<Kept> Launch(const std::string& dir, Zygote& zygote, std::vector<ZygoteNote>& exits,
                             std::set<pid_t>& failed) {
  auto cfg = ReadJsonFile(dir + "/config.json");
  if (!cfg) throw Error::NotFound("shim: no config.json in " + dir);
  ShimConfig config = ShimConfigFromJson(*cfg);
  ValidateContainerSpec(config.spec);
  auto k = std::make_unique<Kept>();
  k->dir = dir;
  k->cgroup = Cgroup::Create(config.cgroup, config.spec.resources);
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw ErrnoError(errno, "shim: create output pipe");
  k->out.reset(pipe_fds[0]);
  UniqueFd out_write(pipe_fds[1]);
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw ErrnoError(errno, "shim: create report pipe");
  UniqueFd report_read(pipe_fds[0]), report_write(pipe_fds[1]);
  UniqueFd pid_ns;
  if (!config.spec.pid_ns.empty()) {
    pid_ns.reset(::open(config.spec.pid_ns.c_str(), O_RDONLY | O_CLOEXEC));
    if (!pid_ns) {
      throw ErrnoError(errno, "start container `" + config.spec.name + "`: join PID namespace " +
                                  config.spec.pid_ns);
    }
  }
  std::vector<std::string> strings = {dir, dir + "/rootfs"};
  for (const auto& f : k->cgroup.ProcsFiles()) strings.push_back(f);
  ZygoteRequest req;
  req.new_pid_ns = config.spec.new_pid_ns;
  req.join_pid_ns = static_cast<bool>(pid_ns);
  k->pid = zygote.Fork(strings, req, out_write.get(), report_write.get(), pid_ns.get(), exits);
  out_write.reset();
  report_write.reset();
  // The pipe closes when the container execs (or runs its in-process main);
  // a failure before comes as a LaunchFailure.
  LaunchFailure failure;
  size_t got = 0;
  while (got < sizeof failure) {
    ssize_t n =
        ::read(report_read.get(), reinterpret_cast<char*>(&failure) + got, sizeof failure - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  if (got > 0) {
    failed.insert(k->pid);  // it exits 127; its exit note is not a container's
    if (got < sizeof failure) throw Error::Internal("start container: truncated failure report");
    throw LaunchFailureError(failure);
  }
  ::fcntl(k->out.get(), F_SETFL, O_NONBLOCK);
  ShimState state;
  state.shim_pid = ::getpid();
  state.shim_start_ticks = ProcessStartTicks(state.shim_pid);
  state.pid = k->pid;
  state.start_ticks = ProcessStartTicks(state.pid);
  state.started_at = object::NowRfc3339();
  WriteJsonFile(dir + "/state.json", {{"shimPid", state.shim_pid},
                                      {"shimStartTicks", state.shim_start_ticks},
                                      {"pid", state.pid},
                                      {"startTicks", state.start_ticks},
                                      {"startedAt", state.started_at}});
  try {
    k->log =
        std::make_unique<CriLogWriter>(config.log_path, config.log_max_bytes, config.log_max_files);
  } catch (const std::exception&) {
    // Without a log the container still runs; its output is dropped.
  }
  return k;
}

// Copies what the container wrote into its log: at most one buffer when
// `all` is false (one chatty container must not starve the others), else
// until the pipe is empty. Returns false once the pipe is closed.
bool CopyOutput(Kept& k, bool all) {
  static char buf[65536];
  if (!k.out) return false;
  for (;;) {
    ssize_t n = ::read(k.out.get(), buf, sizeof buf);
    if (n > 0) {
      if (k.log) k.log->Write("stdout", std::string_view(buf, static_cast<size_t>(n)));
      if (!all) return true;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0;  // EAGAIN: open and empty; 0: closed
  }
}

// The container exited (`wait_status`, as waitpid gives it): finish its
// log, remove its cgroup (killing what is left in it) and write DIR/exit.json.
void Finish(Kept& k, int wait_status) {
  ExitStatus status;
  if (WIFSIGNALED(wait_status)) {
    status.signal = WTERMSIG(wait_status);
  } else {
    status.code = WEXITSTATUS(wait_status);
  }
  // Whatever the container wrote before it died is still in the pipe
  // (descendants may hold it open: they die with the cgroup below).
  CopyOutput(k, /*all=*/true);
  if (k.log) k.log->Flush();
  ShimExit exit;
  exit.signal = status.signal;
  exit.exit_code = status.signal != 0 ? 128 + status.signal : status.code;
  try {
    exit.oom_killed = k.cgroup.valid() && k.cgroup.OomKillCount() > 0;
  } catch (const std::exception&) {
  }
  exit.finished_at = object::NowRfc3339();
  try {
    k.cgroup.Remove();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kin shim-server: %s: %s\n", k.dir.c_str(), e.what());
  }
  try {
    WriteJsonFile(k.dir + "/exit.json", {{"exitCode", exit.exit_code},
                                         {"signal", exit.signal},
                                         {"oomKilled", exit.oom_killed},
                                         {"finishedAt", exit.finished_at}});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kin shim-server: %s: %s\n", k.dir.c_str(), e.what());
  }
}

void Answer(int report, const Error& e) {
  WriteAllFd(report, Json{{"code", static_cast<int>(e.code())}, {"message", e.what()}}.dump());
}

}  // namespace

namespace {
// From /proc/PID/stat text: the state letter and starttime (field 22);
// fields count from the last ')' (the command name may hold either).
bool ParseStat(const std::string& stat, char& state, uint64_t& start_ticks) {
  size_t close = stat.rfind(')');
  if (close == std::string::npos || close + 2 >= stat.size()) return false;
  state = stat[close + 2];
  std::istringstream in(stat.substr(close + 2));
  std::string field;
  for (int i = 3; i < 22 && (in >> field); ++i) {
  }
  start_ticks = 0;
  in >> start_ticks;
  return true;
}
}  // namespace

uint64_t ProcessStartTicks(pid_t pid) {
  auto stat = ReadFileIfExists("/proc/" + std::to_string(pid) + "/stat");
  char state = 0;
  uint64_t ticks = 0;
  return stat && ParseStat(*stat, state, ticks) ? ticks : 0;
}

bool ProcessRunning(pid_t pid, uint64_t start_ticks) {
  if (pid <= 0) return false;
  auto stat = ReadFileIfExists("/proc/" + std::to_string(pid) + "/stat");
  char state = 0;
  uint64_t ticks = 0;
  if (!stat || !ParseStat(*stat, state, ticks)) return false;
  if (state == 'Z' || state == 'X') return false;  // exited, not yet reaped
  return start_ticks == 0 || ticks == start_ticks;
}

Json ContainerSpecToJson(const ContainerSpec& s) {
  Json j = {
      {"name", s.name},
      {"argv", s.argv},
      {"env", s.env},
      {"workingDir", s.working_dir},
      {"netNs", s.net_ns},
      {"utsNs", s.uts_ns},
      {"ipcNs", s.ipc_ns},
      {"pidNs", s.pid_ns},
      {"newMountNs", s.new_mount_ns},
      {"newPidNs", s.new_pid_ns},
      {"newUtsNs", s.new_uts_ns},
      {"newIpcNs", s.new_ipc_ns},
      {"hostname", s.hostname},
      {"supplementalGroups", s.supplemental_groups},
      {"capAdd", s.cap_add},
      {"capDrop", s.cap_drop},
      {"seccomp", s.seccomp == SeccompProfile::kRuntimeDefault ? "RuntimeDefault" : "Unconfined"},
      {"noNewPrivs", s.no_new_privs},
      {"resources",
       {{"memory", s.resources.memory_bytes},
        {"cpuMillis", s.resources.cpu_millicores},
        {"pids", s.resources.pids_max}}},
      {"mounts", MountsToJson(s.mounts)},
      {"detachMounts", s.detach_mounts},
      {"mountTemplate", s.mount_template},
      {"logPath", s.log_path}};
  if (s.uid) j["uid"] = *s.uid;
  if (s.gid) j["gid"] = *s.gid;
  if (s.rootfs) {
    j["rootfs"] = {{"lowerDirs", s.rootfs->lower_dirs},
                   {"upperDir", s.rootfs->upper_dir},
                   {"workDir", s.rootfs->work_dir},
                   {"readOnly", s.rootfs->read_only}};
  }
  return j;
}

ContainerSpec ContainerSpecFromJson(const Json& j) {
  ContainerSpec s;
  Read(j, "name", s.name);
  Read(j, "argv", s.argv);
  Read(j, "env", s.env);
  Read(j, "workingDir", s.working_dir);
  Read(j, "netNs", s.net_ns);
  Read(j, "utsNs", s.uts_ns);
  Read(j, "ipcNs", s.ipc_ns);
  Read(j, "pidNs", s.pid_ns);
  Read(j, "newMountNs", s.new_mount_ns);
  Read(j, "newPidNs", s.new_pid_ns);
  Read(j, "newUtsNs", s.new_uts_ns);
  Read(j, "newIpcNs", s.new_ipc_ns);
  Read(j, "hostname", s.hostname);
  if (j.contains("uid")) s.uid = j["uid"].get<uid_t>();
  if (j.contains("gid")) s.gid = j["gid"].get<gid_t>();
  Read(j, "supplementalGroups", s.supplemental_groups);
  Read(j, "capAdd", s.cap_add);
  Read(j, "capDrop", s.cap_drop);
  s.seccomp = j.value("seccomp", "RuntimeDefault") == "Unconfined"
                  ? SeccompProfile::kUnconfined
                  : SeccompProfile::kRuntimeDefault;
  Read(j, "noNewPrivs", s.no_new_privs);
  if (auto it = j.find("resources"); it != j.end()) {
    Read(*it, "memory", s.resources.memory_bytes);
    Read(*it, "cpuMillis", s.resources.cpu_millicores);
    Read(*it, "pids", s.resources.pids_max);
  }
  for (const auto& m : j.value("mounts", Json::array())) {
    s.mounts.push_back({m.value("source", ""), m.value("target", ""), m.value("readOnly", false)});
  }
  Read(j, "detachMounts", s.detach_mounts);
  Read(j, "mountTemplate", s.mount_template);
  Read(j, "logPath", s.log_path);
  if (auto it = j.find("rootfs"); it != j.end() && it->is_object()) {
    RootfsSpec r;
    Read(*it, "lowerDirs", r.lower_dirs);
    Read(*it, "upperDir", r.upper_dir);
    Read(*it, "workDir", r.work_dir);
    Read(*it, "readOnly", r.read_only);
    s.rootfs = r;
  }
  return s;
}

Json ShimConfigToJson(const ShimConfig& c) {
  return {{"spec", ContainerSpecToJson(c.spec)},
          {"cgroup", c.cgroup},
          {"logPath", c.log_path},
          {"logMaxBytes", c.log_max_bytes},
          {"logMaxFiles", c.log_max_files}};
}

ShimConfig ShimConfigFromJson(const Json& j) {
  ShimConfig c;
  c.spec = ContainerSpecFromJson(j.value("spec", Json::object()));
  Read(j, "cgroup", c.cgroup);
  Read(j, "logPath", c.log_path);
  Read(j, "logMaxBytes", c.log_max_bytes);
  Read(j, "logMaxFiles", c.log_max_files);
  return c;
}

std::optional<ShimState> ReadShimState(const std::string& dir) {
  auto j = ReadJsonFile(dir + "/state.json");
  if (!j) return std::nullopt;
  ShimState s;
  Read(*j, "shimPid", s.shim_pid);
  Read(*j, "shimStartTicks", s.shim_start_ticks);
  Read(*j, "pid", s.pid);
  Read(*j, "startTicks", s.start_ticks);
  Read(*j, "startedAt", s.started_at);
  return s;
}

std::optional<ShimExit> ReadShimExit(const std::string& dir) {
  auto j = ReadJsonFile(dir + "/exit.json");
  if (!j) return std::nullopt;
  ShimExit e;
  Read(*j, "exitCode", e.exit_code);
  Read(*j, "signal", e.signal);
  Read(*j, "oomKilled", e.oom_killed);
  Read(*j, "finishedAt", e.finished_at);
  return e;
}

namespace {

// A shim's answer on its report pipe: "ok", or a JSON {code, message}.
ShimState ShimOutcome(const std::string& dir, const std::string& answer) {
  if (answer != "ok") {
    Code code = Code::kInternal;
    std::string message = answer.empty() ? "shim for " + dir + " died before it reported" : answer;
    try {
      Json j = Json::parse(answer);
      code = static_cast<Code>(j.value("code", static_cast<int>(Code::kInternal)));
      message = j.value("message", message);
    } catch (const std::exception&) {
    }
    throw Error(code, message);
  }
  auto state = ReadShimState(dir);
  if (!state)
    throw Error::Internal("shim for " + dir + " reported success but wrote no state.json");
  return *state;
}

}  // namespace

int RunShimServer() {
  int type = 0;
  socklen_t len = sizeof type;
  if (::getsockopt(0, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_SEQPACKET) {
    std::fputs(
        "kin shim-server: only kin serve's node agents start it, with their socket as stdin\n",
        stderr);
    return 2;
  }
  ::prctl(PR_SET_NAME, "kin-shim-server", 0, 0, 0);  // what ps and top show
  // Leave kin serve's session: a ^C at its terminal must not reach us.
  ::setsid();
  ::signal(SIGPIPE, SIG_IGN);
  // Should the zygote die, its containers become our children.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  // Built once here, before the zygote is forked: it and every container inherit it.
  try {
    SeccompProgram::Cached(SeccompProfile::kRuntimeDefault);
  } catch (const std::exception&) {
    // Each launch tries again and reports the error with its container.
  }
  Zygote zygote;
  zygote.Start();
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &chld, nullptr);
  UniqueFd sigchld(::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK));
  UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll || !sigchld) {
    std::perror("kin shim-server: epoll_create1/signalfd");
    return 1;
  }
  auto watch = [&](int fd) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    return ::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, fd, &ev) == 0;
  };
  auto unwatch = [&](int fd) { ::epoll_ctl(epoll.get(), EPOLL_CTL_DEL, fd, nullptr); };
  watch(0);
  watch(sigchld.get());
  int zygote_fd = zygote.socket();
  watch(zygote_fd);
  bool agent_gone = false;
  std::map<pid_t, std::shared_ptr<Kept>> by_pid;
  std::map<int, std::shared_ptr<Kept>> by_out;  // by the read end of their output pipe
  std::set<pid_t> failed;                       // launches that failed: their exits are nobody's
  std::vector<ZygoteNote> exits;

  auto finish = [&](pid_t pid, int status) {
    if (failed.erase(pid)) return;
    auto it = by_pid.find(pid);
    if (it == by_pid.end()) return;  // not a container's (a descendant it left us)
    std::shared_ptr<Kept> k = it->second;
    by_pid.erase(it);
    if (k->out) {
      unwatch(k->out.get());
      by_out.erase(k->out.get());
    }
    Finish(*k, status);
  };
  auto finish_exits = [&] {
    std::vector<ZygoteNote> done;
    done.swap(exits);
    for (const auto& note : done) finish(note.pid, note.value);
  };
  // A new zygote (after one died) has a new socket to watch; the old one
  // left the epoll set when it was closed.
  auto watch_zygote = [&] {
    if (zygote.socket() != zygote_fd) {
      zygote_fd = zygote.socket();
      if (zygote_fd >= 0) watch(zygote_fd);
    }
  };

  auto serve_request = [&] {
    char dir[4096];
    iovec iov{dir, sizeof dir - 1};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(0, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    int report = -1;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); n > 0 && c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        std::memcpy(&report, CMSG_DATA(c), sizeof report);
      }
    }
    UniqueFd report_fd(report);
    if (n > 0 && std::string_view(dir, static_cast<size_t>(n)) == kShimServerBye) {
      // The agent leaves: tell it how many containers we keep (it waits
      // for us when none), and go when the last one exits.
      std::string count = std::to_string(by_pid.size());
      (void)!::send(0, count.data(), count.size(), MSG_NOSIGNAL);
      n = 0;
    }
    if (n <= 0) {  // the agent closed its end (or is gone): its containers live on with us
      unwatch(0);
      agent_gone = true;
      return;
    }
    if (!report_fd) return;  // not a request of ours: nobody to answer
    dir[n] = '\0';
    try {
      std::shared_ptr<Kept> k = Launch(dir, zygote, exits, failed);
      watch(k->out.get());
      by_out[k->out.get()] = k;
      by_pid[k->pid] = k;
      WriteAllFd(report_fd.get(), "ok");
    } catch (const Error& e) {
      Answer(report_fd.get(), e);
    } catch (const std::exception& e) {
      Answer(report_fd.get(), Error::Internal(e.what()));
    }
    watch_zygote();
  };

  epoll_event events[64];
  while (!(agent_gone && by_pid.empty())) {
    finish_exits();  // those seen while a launch waited for its fork
    if (agent_gone && by_pid.empty()) break;
    int n = ::epoll_wait(epoll.get(), events, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::perror("kin shim-server: epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == 0) {
        serve_request();
      } else if (fd == zygote_fd) {
        if (!zygote.Drain(exits)) watch_zygote();
        finish_exits();
      } else if (fd == sigchld.get()) {
        // Containers orphaned by a zygote that died are ours to reap.
        signalfd_siginfo info;
        while (::read(sigchld.get(), &info, sizeof info) > 0) {
        }
        int status = 0;
        for (pid_t pid; (pid = ::waitpid(-1, &status, WNOHANG)) > 0;) {
          if (pid != zygote.pid()) finish(pid, status);
        }
      } else if (auto it = by_out.find(fd); it != by_out.end()) {
        std::shared_ptr<Kept> k = it->second;
        if (!CopyOutput(*k, /*all=*/false)) {
          // Closed (the container and its descendants are done writing).
          unwatch(fd);
          by_out.erase(fd);
          k->out.reset();
        }
      }
    }
  }
  return 0;
}

ShimLauncher::ShimLauncher(std::string kin_binary) : kin_binary_(std::move(kin_binary)) {}

ShimLauncher::~ShimLauncher() {
  std::lock_guard<std::mutex> lock(mu_);
  StopServerLocked();
}

void ShimLauncher::StopServerLocked() {
  // Ask how many containers the server keeps: with none it exits now (and
  // we reap it); with some it lives on, their keeper, until the last exits.
  bool keeps_containers = false;
  if (socket_ &&
      ::send(socket_.get(), kShimServerBye, std::strlen(kShimServerBye), MSG_NOSIGNAL) >= 0) {
    pollfd p{socket_.get(), POLLIN, 0};
    char answer[32];
    // It answers between two launches: allow for a long one.
    if (::poll(&p, 1, 30000) > 0) {
      ssize_t n = ::recv(socket_.get(), answer, sizeof answer - 1, 0);
      keeps_containers = n > 0 && !(n == 1 && answer[0] == '0');
    }
  }
  socket_.reset();
  if (server_) {
    if (keeps_containers) {
      server_->Release();
    } else {
      server_->Wait();
    }
  }
  server_.reset();
}

void ShimLauncher::StartServerLocked() {
  int fds[2];
  CheckSys(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds), "shim server: socketpair");
  UniqueFd ours(fds[0]), theirs(fds[1]);
  SpawnOptions opts;
  opts.argv = {kin_binary_, "shim-server"};
  opts.stdin_fd = theirs.get();
  opts.stdout_mode = SpawnOptions::Stdio::kNull;
  // Resolve every symbol once in the server, not lazily in each forked
  // container (each lazy binding dirties a page of its own copy).
  opts.env_extra["LD_BIND_NOW"] = "1";
  static std::atomic<int> next_slot{0};
  opts.env_extra[kShimServerSlot] = std::to_string(next_slot++);
  server_ = std::make_unique<ChildProcess>(ChildProcess::Spawn(opts));
  socket_ = std::move(ours);
}

pid_t ShimLauncher::server_pid() const {
  std::lock_guard<std::mutex> lock(mu_);
  return server_ ? server_->pid() : 0;
}

ShimState ShimLauncher::Start(const std::string& dir) {
  if (dir.size() >= 4096) throw Error::BadRequest("shim directory path too long: " + dir);
  int p[2];
  CheckSys(::pipe2(p, O_CLOEXEC), "shim: create report pipe");
  UniqueFd report_read(p[0]), report_write(p[1]);
  for (int attempt = 0;; ++attempt) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!socket_) StartServerLocked();
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    iovec iov{const_cast<char*>(dir.data()), dir.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    int fd = report_write.get();
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
    ssize_t sent;
    do {
      sent = ::sendmsg(socket_.get(), &msg, MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    if (sent >= 0) break;
    int err = errno;
    // The server died (killed by someone): start another once.
    StopServerLocked();
    if (attempt > 0) throw ErrnoError(err, "shim server: send request for " + dir);
  }
  report_write.reset();
  return ShimOutcome(dir, ReadAllFd(report_read.get()));
}

}  // namespace kin
