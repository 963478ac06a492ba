#include "runtime/container_launch.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <thread>
#include <utility>

#include "base/error.h"

extern char** environ;

namespace kin {

namespace {

struct SeccompCtxDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};

int LastCap() {
  std::ifstream in("/proc/sys/kernel/cap_last_cap");
  int n = 40;
  in >> n;
  return n;
}

// What the child tells the parent when a step fails before exec.
struct ChildFailure {
  int err = 0;
  int step = 0;
};

// Everything the child needs, prepared before fork: after fork the child
// only makes system calls (no allocation), since other threads of ours may
// have held locks at fork time.
struct ChildPlan {
  std::vector<std::string> steps;  // step names, by index, for error messages
  std::vector<char*> argv, envp;
  int report_fd = -1;
  int stdin_fd = -1, log_fd = -1;
  struct Join {
    int fd;
    int nstype;
    int step;
  };
  std::vector<Join> joins;
  int unshare_flags = 0;
  int unshare_step = 0;
  bool make_rslave = false;
  int rslave_step = 0;
  struct Bind {
    const char* source;
    const char* target;
    bool read_only;
    int step;
    int ro_step;
  };
  std::vector<Bind> binds;
  bool mount_proc = false;
  int proc_step = 0;
  const char* hostname = nullptr;
  int hostname_step = 0;
  std::vector<int> cgroup_fds;
  int cgroup_step = 0;
  int last_cap = 40;
  uint64_t caps = 0;
  int caps_step = 0;
  bool set_ids = false;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
  int ids_step = 0;
  const char* workdir = "/";
  int workdir_step = 0;
  bool no_new_privs = true;
  int nnp_step = 0;
  sock_fprog seccomp{};
  int seccomp_step = 0;
  int exec_step = 0;
};

[[noreturn]] void Fail(const ChildPlan& plan, int step) {
  ChildFailure f{errno, step};
  ssize_t ignored = ::write(plan.report_fd, &f, sizeof f);
  (void)ignored;
  ::_exit(127);
}

void LoadSeccomp(const ChildPlan& plan) {
  if (plan.seccomp.len == 0) return;
  if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &plan.seccomp) < 0) {
    Fail(plan, plan.seccomp_step);
  }
}

[[noreturn]] void ChildMain(const ChildPlan& plan) {
  // Nothing of ours but what the plan names may reach the container.
  ::syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int sig = 1; sig < NSIG; ++sig) ::signal(sig, SIG_DFL);
  ::setsid();

  for (const auto& j : plan.joins) {
    if (::setns(j.fd, j.nstype) < 0) Fail(plan, j.step);
  }
  if (plan.unshare_flags != 0 && ::unshare(plan.unshare_flags) < 0) Fail(plan, plan.unshare_step);
  if (plan.make_rslave && ::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) < 0) {
    Fail(plan, plan.rslave_step);
  }
  for (const auto& b : plan.binds) {
    if (::mount(b.source, b.target, nullptr, MS_BIND | MS_REC, nullptr) < 0) Fail(plan, b.step);
    if (b.read_only &&
        ::mount(nullptr, b.target, nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) < 0) {
      Fail(plan, b.ro_step);
    }
  }
  if (plan.mount_proc &&
      ::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) < 0) {
    Fail(plan, plan.proc_step);
  }
  if (plan.hostname != nullptr && ::sethostname(plan.hostname, strlen(plan.hostname)) < 0) {
    Fail(plan, plan.hostname_step);
  }
  for (int fd : plan.cgroup_fds) {
    if (::write(fd, "0", 1) < 0) Fail(plan, plan.cgroup_step);  // "0": the writer itself
  }
  if (::dup2(plan.stdin_fd, 0) < 0 || ::dup2(plan.log_fd, 1) < 0 || ::dup2(plan.log_fd, 2) < 0) {
    Fail(plan, plan.exec_step);
  }
  // Without no_new_privs only CAP_SYS_ADMIN may load a filter: do it while we have it.
  if (!plan.no_new_privs) LoadSeccomp(plan);

  for (int cap = 0; cap <= plan.last_cap; ++cap) {
    if ((plan.caps >> cap) & 1) continue;
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) Fail(plan, plan.caps_step);
  }
  ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);  // absent on old kernels: fine
  if (plan.set_ids) {
    if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) Fail(plan, plan.ids_step);
    // Raw system calls: glibc's wrappers would try to sync threads we no longer have.
    if (::syscall(SYS_setgroups, plan.groups.size(), plan.groups.data()) < 0 ||
        ::syscall(SYS_setresgid, plan.gid, plan.gid, plan.gid) < 0 ||
        ::syscall(SYS_setresuid, plan.uid, plan.uid, plan.uid) < 0) {
      Fail(plan, plan.ids_step);
    }
  }
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2];
  for (int i = 0; i < 2; ++i) {
    uint32_t word = static_cast<uint32_t>(plan.caps >> (32 * i));
    data[i].effective = data[i].permitted = data[i].inheritable = word;
  }
  if (::syscall(SYS_capset, &header, data) < 0) Fail(plan, plan.caps_step);
  if (::chdir(plan.workdir) < 0) Fail(plan, plan.workdir_step);
  if (plan.no_new_privs) {
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) Fail(plan, plan.nnp_step);
    LoadSeccomp(plan);
  }
  // execvp searches the PATH of `environ`: make it the container's.
  environ = const_cast<char**>(plan.envp.data());
  ::execvp(plan.argv[0], plan.argv.data());
  Fail(plan, plan.exec_step);
}

UniqueFd OpenOrThrow(const std::string& path, int flags, const std::string& context,
                     mode_t mode = 0) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) throw ErrnoError(errno, context);
  return UniqueFd(fd);
}

}  // namespace

SeccompProgram SeccompProgram::Build(SeccompProfile profile) {
  SeccompProgram program;
  std::vector<SeccompRule> rules = SeccompRules(profile);
  if (rules.empty()) return program;
  std::unique_ptr<void, SeccompCtxDeleter> ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) throw Error::Internal("seccomp: cannot create a filter");
  // The launcher sets no_new_privs itself, as the spec says.
  seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_NNP, 0);
  for (const auto& rule : rules) {
    int nr = seccomp_syscall_resolve_name(rule.syscall.c_str());
    if (nr == __NR_SCMP_ERROR) continue;  // not on this architecture
    int rc = 0;
    if (rule.arg0_flags == 0) {
      rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(rule.errno_value), nr, 0);
    } else {
      for (int bit = 0; bit < 64 && rc == 0; ++bit) {
        uint64_t flag = 1ull << bit;
        if ((rule.arg0_flags & flag) == 0) continue;
        rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(rule.errno_value), nr, 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag));
      }
    }
    if (rc < 0) throw ErrnoError(-rc, "seccomp: add rule for " + rule.syscall);
    program.syscalls_.push_back(rule.syscall);
  }
  // libseccomp 2.5 exports only to an fd.
  UniqueFd mem(::memfd_create("kin-seccomp", MFD_CLOEXEC));
  if (!mem) throw ErrnoError(errno, "seccomp: memfd_create");
  int rc = seccomp_export_bpf(ctx.get(), mem.get());
  if (rc < 0) throw ErrnoError(-rc, "seccomp: export BPF");
  off_t size = ::lseek(mem.get(), 0, SEEK_END);
  if (size <= 0 || size % sizeof(sock_filter) != 0) {
    throw Error::Internal("seccomp: exported program has a bad size");
  }
  program.instructions_.resize(size / sizeof(sock_filter));
  if (::pread(mem.get(), program.instructions_.data(), size, 0) != size) {
    throw ErrnoError(errno, "seccomp: read exported program");
  }
  return program;
}

ContainerProcess LaunchContainer(const ContainerSpec& spec, const Cgroup* cgroup) {
  ValidateContainerSpec(spec);
  const std::string what = "start container `" + spec.name + "`";
  auto wrap = [&](const Error& e) {
    Error out(e.code(), what + ": " + e.message());
    out.WithErrno(e.sys_errno());
    return out;
  };

  ChildPlan plan;
  auto step = [&](std::string name) {
    plan.steps.push_back(std::move(name));
    return static_cast<int>(plan.steps.size() - 1);
  };
  SeccompProgram seccomp;
  std::vector<UniqueFd> fds;  // closed when we return, after the child has its copies
  UniqueFd stdin_fd, log_fd;
  UniqueFd pid_ns_fd;
  try {
    seccomp = SeccompProgram::Build(spec.seccomp);
    struct NsPath {
      const std::string& path;
      int type;
      const char* label;
    };
    for (const NsPath& ns :
         {NsPath{spec.ipc_ns, CLONE_NEWIPC, "IPC"}, NsPath{spec.uts_ns, CLONE_NEWUTS, "UTS"},
          NsPath{spec.net_ns, CLONE_NEWNET, "network"}}) {
      if (ns.path.empty()) continue;
      std::string s = std::string("join ") + ns.label + " namespace " + ns.path;
      fds.push_back(OpenOrThrow(ns.path, O_RDONLY, s));
      plan.joins.push_back({fds.back().get(), ns.type, step(s)});
    }
    if (!spec.pid_ns.empty()) {
      pid_ns_fd = OpenOrThrow(spec.pid_ns, O_RDONLY, "join PID namespace " + spec.pid_ns);
    }
    stdin_fd = OpenOrThrow("/dev/null", O_RDONLY, "open /dev/null");
    std::string log = spec.log_path.empty() ? "/dev/null" : spec.log_path;
    log_fd = OpenOrThrow(log, O_WRONLY | O_CREAT | O_APPEND, "open log file " + log, 0640);
    if (cgroup != nullptr) {
      for (const auto& f : cgroup->ProcsFiles()) {
        fds.push_back(OpenOrThrow(f, O_WRONLY, "enter cgroup " + f));
        plan.cgroup_fds.push_back(fds.back().get());
      }
    }
  } catch (const Error& e) {
    throw wrap(e);
  }
  plan.stdin_fd = stdin_fd.get();
  plan.log_fd = log_fd.get();
  plan.cgroup_step = step("enter cgroup " + (cgroup ? cgroup->name() : std::string()));

  if (spec.new_mount_ns) plan.unshare_flags |= CLONE_NEWNS;
  if (spec.new_uts_ns) plan.unshare_flags |= CLONE_NEWUTS;
  if (spec.new_ipc_ns) plan.unshare_flags |= CLONE_NEWIPC;
  plan.unshare_step = step("create namespaces");
  plan.make_rslave = spec.new_mount_ns;
  plan.rslave_step = step("make / rslave");
  for (const auto& m : spec.mounts) {
    int s = step("bind mount " + m.source + " on " + m.target);
    int ro = step("make bind mount " + m.target + " read-only");
    plan.binds.push_back({m.source.c_str(), m.target.c_str(), m.read_only, s, ro});
  }
  bool own_pid_ns = spec.new_pid_ns || !spec.pid_ns.empty();
  plan.mount_proc = own_pid_ns && spec.new_mount_ns;
  plan.proc_step = step("mount /proc");
  if (spec.new_uts_ns && !spec.hostname.empty()) plan.hostname = spec.hostname.c_str();
  plan.hostname_step = step("set hostname " + spec.hostname);
  plan.last_cap = LastCap();
  plan.caps = CapabilityMask(spec, plan.last_cap);
  plan.caps_step = step("set capabilities");
  plan.set_ids = spec.uid || spec.gid || !spec.supplemental_groups.empty();
  plan.uid = spec.uid.value_or(0);
  plan.gid = spec.gid.value_or(0);
  plan.groups = spec.supplemental_groups;
  plan.ids_step = step("set user " + std::to_string(plan.uid) + ":" + std::to_string(plan.gid));
  if (!spec.working_dir.empty()) plan.workdir = spec.working_dir.c_str();
  plan.workdir_step = step("change to working directory " + std::string(plan.workdir));
  plan.no_new_privs = spec.no_new_privs;
  plan.nnp_step = step("set no_new_privs");
  plan.seccomp.len = static_cast<unsigned short>(seccomp.instructions().size());
  plan.seccomp.filter = const_cast<sock_filter*>(seccomp.instructions().data());
  plan.seccomp_step = step("install seccomp filter");
  plan.exec_step = step("exec `" + spec.argv[0] + "`");
  std::vector<std::string> argv = spec.argv, env = spec.env;
  for (auto& a : argv) plan.argv.push_back(a.data());
  plan.argv.push_back(nullptr);
  for (auto& e : env) plan.envp.push_back(e.data());
  plan.envp.push_back(nullptr);

  int pipe_fds[2];
  CheckSys(::pipe2(pipe_fds, O_CLOEXEC), what + ": create report pipe");
  UniqueFd report_read(pipe_fds[0]), report_write(pipe_fds[1]);
  plan.report_fd = report_write.get();

  // Fork from a thread of our own: a pid namespace (joined or new) applies to
  // the children of the thread that enters it, and must not leak to the caller's.
  pid_t pid = -1;
  int fork_err = 0;
  std::string fork_step;
  std::thread forker([&] {
    if (pid_ns_fd && ::setns(pid_ns_fd.get(), CLONE_NEWPID) < 0) {
      fork_err = errno;
      fork_step = "join PID namespace " + spec.pid_ns;
      return;
    }
    if (spec.new_pid_ns && ::unshare(CLONE_NEWPID) < 0) {
      fork_err = errno;
      fork_step = "create PID namespace";
      return;
    }
    pid = ::fork();
    if (pid == 0) ChildMain(plan);
    if (pid < 0) {
      fork_err = errno;
      fork_step = "fork";
    }
  });
  forker.join();
  report_write.reset();
  if (pid < 0) throw wrap(ErrnoError(fork_err, fork_step));

  ContainerProcess process =
      ChildProcess::Adopt(pid, UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0))));
  ChildFailure failure;
  ssize_t n;
  do {
    n = ::read(report_read.get(), &failure, sizeof failure);
  } while (n < 0 && errno == EINTR);
  if (n == 0) return process;  // the pipe closed on exec
  process.Wait();
  if (n != sizeof failure || failure.step < 0 ||
      failure.step >= static_cast<int>(plan.steps.size())) {
    throw Error::Internal(what + ": the container process failed before exec");
  }
  Error e = wrap(ErrnoError(failure.err, plan.steps[failure.step]));
  if (failure.step == plan.exec_step && (failure.err == ENOENT || failure.err == EACCES)) {
    // As a shell's exit code 127/126: the executable is what is missing.
    e = Error(Code::kNotFound, e.message());
    e.WithErrno(failure.err);
  }
  throw e;
}

}  // namespace kin
