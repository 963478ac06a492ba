#include "runtime/shim.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include "base/error.h"
#include "base/file.h"
#include "base/log.h"
#include "base/process.h"
#include "runtime/cgroup.h"
#include "runtime/container_launch.h"
#include "runtime/cri_log.h"

namespace kin {

namespace {

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

// The daemon half of RunShim: launches the container, reports on `ready`,
// then keeps it until it exits. Never returns.
[[noreturn]] void ShimDaemon(const std::string& dir, int ready) {
  auto report_error = [&](const Error& e) {
    Json j = {{"code", static_cast<int>(e.code())}, {"message", e.what()}};
    WriteAllFd(ready, j.dump());
    ::_exit(1);
  };
  ShimConfig config;
  Cgroup cgroup;
  ContainerProcess container;
  UniqueFd out_read;
  try {
    auto cfg = ReadJsonFile(dir + "/config.json");
    if (!cfg) throw Error::NotFound("shim: no config.json in " + dir);
    config = ShimConfigFromJson(*cfg);
    cgroup = Cgroup::Create(config.cgroup, config.spec.resources);
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw ErrnoError(errno, "shim: create output pipe");
    out_read.reset(pipe_fds[0]);
    UniqueFd out_write(pipe_fds[1]);
    // The launcher opens log_path for the container's stdout and stderr; the
    // write end of our pipe, reopened through /proc, becomes both.
    config.spec.log_path = "/proc/self/fd/" + std::to_string(out_write.get());
    container = LaunchContainer(config.spec, &cgroup);
    out_write.reset();
    ShimState state;
    state.shim_pid = ::getpid();
    state.pid = container.pid();
    state.start_ticks = ProcessStartTicks(container.pid());
    state.started_at = NowRfc3339();
    WriteJsonFile(dir + "/state.json", {{"shimPid", state.shim_pid},
                                        {"pid", state.pid},
                                        {"startTicks", state.start_ticks},
                                        {"startedAt", state.started_at}});
  } catch (const Error& e) {
    report_error(e);
  } catch (const std::exception& e) {
    report_error(Error::Internal(e.what()));
  }
  WriteAllFd(ready, "ok");
  ::close(ready);
  int devnull = ::open("/dev/null", O_RDWR);
  if (devnull >= 0) {
    ::dup2(devnull, 0);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    if (devnull > 2) ::close(devnull);
  }

  std::unique_ptr<CriLogWriter> log;
  try {
    log =
        std::make_unique<CriLogWriter>(config.log_path, config.log_max_bytes, config.log_max_files);
  } catch (const std::exception&) {
    // Without a log the container still runs; its output is dropped.
  }
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, container.pid(), 0));
  ::fcntl(out_read.get(), F_SETFL, O_NONBLOCK);
  bool pipe_open = true;
  char buf[65536];
  auto drain = [&] {
    for (;;) {
      ssize_t n = ::read(out_read.get(), buf, sizeof buf);
      if (n > 0) {
        if (log) log->Write("stdout", std::string_view(buf, static_cast<size_t>(n)));
        continue;
      }
      if (n == 0) pipe_open = false;
      if (n < 0 && errno == EINTR) continue;
      return;
    }
  };
  for (;;) {
    pollfd fds[2] = {{pidfd, POLLIN, 0}, {out_read.get(), POLLIN, 0}};
    int n = ::poll(fds, pipe_open ? 2 : 1, -1);
    if (n < 0 && errno == EINTR) continue;
    if (pipe_open && (fds[1].revents & (POLLIN | POLLHUP))) drain();
    if (fds[0].revents & POLLIN) break;
  }
  ExitStatus status = container.Wait();
  // Whatever the container wrote before it died is still in the pipe
  // (descendants may hold it open: they die with the cgroup below).
  drain();
  if (log) log->Flush();
  ShimExit exit;
  exit.signal = status.signal;
  exit.exit_code = status.signal != 0 ? 128 + status.signal : status.code;
  exit.oom_killed = cgroup.valid() && cgroup.OomKillCount() > 0;
  exit.finished_at = NowRfc3339();
  try {
    cgroup.Remove();
  } catch (const std::exception&) {
  }
  try {
    WriteJsonFile(dir + "/exit.json", {{"exitCode", exit.exit_code},
                                       {"signal", exit.signal},
                                       {"oomKilled", exit.oom_killed},
                                       {"finishedAt", exit.finished_at}});
  } catch (const std::exception&) {
  }
  ::_exit(0);
}

}  // namespace

std::string NowRfc3339() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

uint64_t ProcessStartTicks(pid_t pid) {
  auto stat = ReadFileIfExists("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return 0;
  // The command name may hold spaces and parentheses: fields count from the last ')'.
  size_t close = stat->rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream in(stat->substr(close + 2));
  std::string field;
  // Field 3 (state) is the first after ')'; starttime is field 22.
  for (int i = 3; i < 22 && (in >> field); ++i) {
  }
  uint64_t ticks = 0;
  in >> ticks;
  return ticks;
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

int RunShim(const std::string& dir) {
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) {
    std::fprintf(stderr, "{\"code\":%d,\"message\":\"shim: pipe: %s\"}",
                 static_cast<int>(Code::kInternal), std::strerror(errno));
    return 1;
  }
  pid_t child = ::fork();
  if (child < 0) {
    std::fprintf(stderr, "{\"code\":%d,\"message\":\"shim: fork: %s\"}",
                 static_cast<int>(Code::kInternal), std::strerror(errno));
    return 1;
  }
  if (child == 0) {
    ::close(ready[0]);
    ::setsid();
    ShimDaemon(dir, ready[1]);
  }
  ::close(ready[1]);
  std::string answer = ReadAllFd(ready[0]);
  ::close(ready[0]);
  if (answer == "ok") return 0;
  if (answer.empty())
    answer = R"({"code":13,"message":"shim: the daemon died before it reported"})";
  std::fputs(answer.c_str(), stderr);
  return 1;
}

ShimState StartShim(const std::string& kin_binary, const std::string& dir) {
  SpawnOptions opts;
  opts.argv = {kin_binary, "shim", "--dir", dir};
  opts.stdin_mode = SpawnOptions::Stdio::kNull;
  opts.stdout_mode = SpawnOptions::Stdio::kNull;
  opts.stderr_mode = SpawnOptions::Stdio::kPipe;
  ChildProcess p = ChildProcess::Spawn(opts);
  std::string err = ReadAllFd(p.stderr_pipe().get());
  ExitStatus st = p.Wait();
  if (!st.success()) {
    Code code = Code::kInternal;
    std::string message = "shim for " + dir + " failed (" + st.ToString() + "): " + err;
    try {
      Json j = Json::parse(err);
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

}  // namespace kin
