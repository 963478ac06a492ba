#include "runtime/container_launch.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
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
  static const int last = [] {
    std::ifstream in("/proc/sys/kernel/cap_last_cap");
    int n = 40;
    in >> n;
    return n;
  }();
  return last;
}

// What the child tells the parent when a step fails before exec.
struct ChildFailure {
  int err = 0;
  int step = 0;
};

const std::string kNoPath;

// Everything the child needs, prepared before fork: after fork the child
// only makes system calls (no allocation), since other threads of ours may
// have held locks at fork time.
struct ChildPlan {
  std::vector<std::string> steps;  // step names, by index, for error messages
  std::vector<char*> argv, envp;
  int report_fd = -1;
  int stdin_fd = -1, stdout_fd = -1, stderr_fd = -1;
  bool set_ctty = false;
  int ctty_step = 0;
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
  struct Detach {
    const char* target;
    int step;
  };
  std::vector<Detach> detaches;
  bool mount_proc = false;
  int proc_step = 0;
  // The root filesystem: a list of steps run in order, then pivot_root.
  // Paths inside the root are resolved with openat2(RESOLVE_IN_ROOT), so a
  // symlink in the image never leads a mount or a mkdir out to the host.
  struct RootfsOp {
    enum Kind {
      kMount,       // mount(source, target or the current fd, fstype, flags, data)
      kOpenRoot,    // the root's fd, once it is mounted at `target`
      kOpenInRoot,  // current fd = `target` (relative) resolved in the root
      kSymlinkAt,   // symlink `source` named `target` in the current fd's directory
      kPivotRoot,
    } kind;
    const char* source = nullptr;
    const char* target = nullptr;
    const char* fstype = nullptr;
    unsigned long flags = 0;
    const char* data = nullptr;
    int step = 0;
    bool at_current_fd = false;  // kMount: mount on the current fd
    // kOpenInRoot: create the last component when missing (in the directory
    // of the previous kOpenInRoot, or the root when `first`).
    enum Create { kNone, kDir, kFile } create = kNone;
    const char* name = nullptr;  // the last component, for creating it
    bool first = false;
  };
  std::vector<RootfsOp> rootfs_ops;
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
  int (*in_process_main)(int argc, char** argv) = nullptr;
  const char* what = nullptr;  // set: failures are reported as a LaunchFailure
  bool set_affinity = false;
  cpu_set_t affinity{};
  int affinity_step = 0;
};

bool container_affinity_set = false;
cpu_set_t container_affinity{};

[[noreturn]] void Fail(const ChildPlan& plan, int step) {
  if (plan.what != nullptr) {
    // BecomeContainer: nobody holds the plan's step names but us.
    LaunchFailure f;
    f.err = errno;
    f.exec = step == plan.exec_step;
    std::snprintf(f.what, sizeof f.what, "%s: %s: %s", plan.what, plan.steps[step].c_str(),
                  std::strerror(f.err));
    ssize_t ignored = ::write(plan.report_fd, &f, sizeof f);
    (void)ignored;
    ::_exit(127);
  }
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

// The child's open directories while it builds the root.
struct RootfsFds {
  int root = -1;
  int current = -1;
  char current_path[32] = {};  // "/proc/self/fd/N" (no allocation after fork)
};

int OpenInRoot(int root_fd, const char* path) {
  open_how how{};
  how.flags = O_PATH | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT;
  return static_cast<int>(::syscall(SYS_openat2, root_fd, path, &how, sizeof how));
}

void SetFdPath(RootfsFds& fds) {
  const char prefix[] = "/proc/self/fd/";
  char digits[16];
  int n = 0;
  for (int v = fds.current; n == 0 || v > 0; v /= 10) digits[n++] = static_cast<char>('0' + v % 10);
  size_t pos = 0;
  for (char c : std::string_view(prefix)) fds.current_path[pos++] = c;
  while (n > 0) fds.current_path[pos++] = digits[--n];
  fds.current_path[pos] = '\0';
}

void RunRootfsOp(const ChildPlan& plan, const ChildPlan::RootfsOp& op, RootfsFds& fds) {
  using Op = ChildPlan::RootfsOp;
  int rc = 0;
  switch (op.kind) {
    case Op::kMount:
      rc = ::mount(op.source, op.at_current_fd ? fds.current_path : op.target, op.fstype, op.flags,
                   op.data);
      break;
    case Op::kOpenRoot:
      fds.root = ::open(op.target, O_PATH | O_DIRECTORY | O_CLOEXEC);
      rc = fds.root;
      break;
    case Op::kOpenInRoot: {
      int parent = op.first ? fds.root : fds.current;
      int fd = OpenInRoot(fds.root, op.target);
      if (fd < 0 && errno == ENOENT && op.create != Op::kNone) {
        int made = op.create == Op::kDir ? ::mkdirat(parent, op.name, 0755)
                                         : ::mknodat(parent, op.name, S_IFREG | 0644, 0);
        if (made < 0 && errno != EEXIST) Fail(plan, op.step);
        fd = OpenInRoot(fds.root, op.target);
      }
      if (fd < 0) Fail(plan, op.step);
      if (fds.current >= 0) ::close(fds.current);
      fds.current = fd;
      SetFdPath(fds);
      break;
    }
    case Op::kSymlinkAt:
      rc = ::symlinkat(op.source, fds.current, op.target);
      break;
    case Op::kPivotRoot:
      // pivot_root(".", ".") stacks the old root on the new one; detaching
      // it then leaves only the new root, with no put_old directory needed.
      if (::chdir(op.target) < 0 || ::syscall(SYS_pivot_root, ".", ".") < 0 ||
          ::umount2(".", MNT_DETACH) < 0 || ::chdir("/") < 0) {
        rc = -1;
      }
      break;
  }
  if (rc < 0) Fail(plan, op.step);
}

[[noreturn]] void ChildMain(const ChildPlan& plan) {
  // Nothing of ours but what the plan names may reach the container.
  ::syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int sig = 1; sig < NSIG; ++sig) ::signal(sig, SIG_DFL);
  ::setsid();

  if (plan.set_affinity && ::sched_setaffinity(0, sizeof plan.affinity, &plan.affinity) < 0) {
    Fail(plan, plan.affinity_step);
  }
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
  for (const auto& d : plan.detaches) {
    if (::umount2(d.target, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT) {
      Fail(plan, d.step);
    }
  }
  if (plan.mount_proc &&
      ::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) < 0) {
    Fail(plan, plan.proc_step);
  }
  RootfsFds rootfs_fds;
  for (const auto& op : plan.rootfs_ops) RunRootfsOp(plan, op, rootfs_fds);
  if (plan.hostname != nullptr && ::sethostname(plan.hostname, strlen(plan.hostname)) < 0) {
    Fail(plan, plan.hostname_step);
  }
  for (int fd : plan.cgroup_fds) {
    if (::write(fd, "0", 1) < 0) Fail(plan, plan.cgroup_step);  // "0": the writer itself
  }
  if (::dup2(plan.stdin_fd, 0) < 0 || ::dup2(plan.stdout_fd, 1) < 0 ||
      ::dup2(plan.stderr_fd, 2) < 0) {
    Fail(plan, plan.exec_step);
  }
  // We lead a new session (setsid above), so the pty becomes ours.
  if (plan.set_ctty && ::ioctl(0, TIOCSCTTY, 0) < 0) Fail(plan, plan.ctty_step);
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
  if (plan.in_process_main != nullptr) {
    // What exec would do for us: close our descriptors (all close-on-exec by
    // now), which also closes the report pipe and tells the parent we run.
    ::syscall(SYS_close_range, 3, ~0U, 0);
    int argc = static_cast<int>(plan.argv.size()) - 1;
    int code = plan.in_process_main(argc, const_cast<char**>(plan.argv.data()));
    std::fflush(nullptr);
    ::_exit(code);
  }
  ::execvp(plan.argv[0], plan.argv.data());
  Fail(plan, plan.exec_step);
}

// The directory the container's root is mounted on, in its own mount
// namespace only: the host sees it empty, and it is removed once the
// container has pivoted away from it (or failed).
class RootMountPoint {
 public:
  RootMountPoint() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "kin-rootfs-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw ErrnoError(errno, "create root mount point");
    path_ = tmpl;
  }
  // A given directory (made when missing), left in place: the caller owns it.
  explicit RootMountPoint(std::string path) : path_(std::move(path)), keep_(true) {
    if (::mkdir(path_.c_str(), 0700) < 0 && errno != EEXIST) {
      throw ErrnoError(errno, "create root mount point " + path_);
    }
  }
  ~RootMountPoint() {
    if (!keep_) ::rmdir(path_.c_str());
  }
  RootMountPoint(const RootMountPoint&) = delete;
  RootMountPoint& operator=(const RootMountPoint&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  bool keep_ = false;
};

// Appends the steps that mount spec.rootfs at `root` and pivot into it.
// `strings` keeps the texts the steps point to alive.
void PlanRootfs(const ContainerSpec& spec, const std::string& root, ChildPlan& plan,
                std::deque<std::string>& strings, const std::function<int(std::string)>& step) {
  using Op = ChildPlan::RootfsOp;
  const RootfsSpec& rootfs = *spec.rootfs;
  auto keep = [&](std::string s) { return strings.emplace_back(std::move(s)).c_str(); };
  // Makes `path` (absolute, inside the root) the current fd, creating what
  // is missing on the way: directories, and the last component as `last`.
  auto open_in_root = [&](const std::string& path, Op::Create last) {
    std::string prefix;
    size_t pos = 1;
    bool first = true;
    while (pos <= path.size()) {
      size_t slash = path.find('/', pos);
      if (slash == std::string::npos) slash = path.size();
      if (slash > pos) {
        std::string name = path.substr(pos, slash - pos);
        prefix += (first ? "" : "/") + name;
        bool is_last = path.find_first_not_of('/', slash) == std::string::npos;
        Op op{Op::kOpenInRoot};
        op.target = keep(prefix);
        op.name = keep(name);
        op.create = is_last ? last : Op::kDir;
        op.first = first;
        op.step = step("resolve /" + prefix + " in the root filesystem");
        plan.rootfs_ops.push_back(op);
        first = false;
      }
      pos = slash + 1;
    }
    if (first) {  // "/": the root itself
      Op op{Op::kOpenInRoot};
      op.target = keep(".");
      op.first = true;
      op.step = step("resolve / in the root filesystem");
      plan.rootfs_ops.push_back(op);
    }
  };
  // Mounts on `target` (inside the root), creating it as `create` when missing.
  auto mount_in_root = [&](const char* source, const std::string& target, Op::Create create,
                           const char* fstype, unsigned long flags, const char* data,
                           const std::string& what) {
    open_in_root(target, create);
    Op op{Op::kMount, source, nullptr, fstype, flags, data, step(what)};
    op.at_current_fd = true;
    plan.rootfs_ops.push_back(op);
  };
  auto mount_root = [&](const char* source, const char* fstype, unsigned long flags,
                        const char* data, const std::string& what) {
    plan.rootfs_ops.push_back({Op::kMount, source, keep(root), fstype, flags, data, step(what)});
  };

  bool read_only_root = rootfs.read_only || rootfs.upper_dir.empty();
  if (!rootfs.upper_dir.empty() || rootfs.lower_dirs.size() > 1) {
    std::string lower;
    for (const auto& l : rootfs.lower_dirs) lower += (lower.empty() ? "" : ":") + l;
    std::string opts = "lowerdir=" + lower;
    if (!rootfs.upper_dir.empty()) {
      opts += ",upperdir=" + rootfs.upper_dir + ",workdir=" + rootfs.work_dir;
    }
    mount_root("overlay", "overlay", 0, keep(opts), "mount overlay root filesystem " + opts);
  } else {
    mount_root(keep(rootfs.lower_dirs[0]), nullptr, MS_BIND | MS_REC, nullptr,
               "bind mount root filesystem " + rootfs.lower_dirs[0]);
  }
  plan.rootfs_ops.push_back(
      {Op::kOpenRoot, nullptr, keep(root), nullptr, 0, nullptr, step("open the root filesystem")});

  mount_in_root("proc", "/proc", Op::kDir, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr,
                "mount /proc");
  mount_in_root("tmpfs", "/dev", Op::kDir, "tmpfs", MS_NOSUID | MS_STRICTATIME,
                "mode=755,size=65536k", "mount /dev");
  for (const char* dev : {"null", "zero", "full", "random", "urandom", "tty"}) {
    std::string path = std::string("/dev/") + dev;
    mount_in_root(keep(path), path, Op::kFile, nullptr, MS_BIND, nullptr, "bind mount " + path);
  }
  mount_in_root("devpts", "/dev/pts", Op::kDir, "devpts", MS_NOSUID | MS_NOEXEC,
                "newinstance,ptmxmode=0666,mode=0620,gid=5", "mount /dev/pts");
  mount_in_root("shm", "/dev/shm", Op::kDir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                "mode=1777,size=65536k", "mount /dev/shm");
  open_in_root("/dev", Op::kNone);  // now the tmpfs
  for (auto [contents, link] : {std::pair{"pts/ptmx", "ptmx"},
                                {"/proc/self/fd", "fd"},
                                {"/proc/self/fd/0", "stdin"},
                                {"/proc/self/fd/1", "stdout"},
                                {"/proc/self/fd/2", "stderr"}}) {
    plan.rootfs_ops.push_back({Op::kSymlinkAt, contents, link, nullptr, 0, nullptr,
                               step(std::string("create symlink /dev/") + link)});
  }
  mount_in_root("sysfs", "/sys", Op::kDir, "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY,
                nullptr, "mount /sys");

  for (const auto& m : spec.mounts) {
    struct stat st;
    if (::stat(m.source.c_str(), &st) < 0) {
      throw ErrnoError(errno, "bind mount " + m.source + " on " + m.target);
    }
    mount_in_root(keep(m.source), m.target, S_ISDIR(st.st_mode) ? Op::kDir : Op::kFile, nullptr,
                  MS_BIND | MS_REC, nullptr, "bind mount " + m.source + " on " + m.target);
    if (m.read_only) {
      // Resolved again: the fd from before the mount is the directory under it.
      mount_in_root(nullptr, m.target, Op::kNone, nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY,
                    nullptr, "make bind mount " + m.target + " read-only");
    }
  }
  if (!spec.working_dir.empty()) open_in_root(spec.working_dir, Op::kDir);
  if (read_only_root) {
    mount_root(nullptr, nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr,
               "make the root filesystem read-only");
  }
  plan.rootfs_ops.push_back({Op::kPivotRoot, nullptr, keep(root), nullptr, 0, nullptr,
                             step("pivot_root to the root filesystem")});
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

void SetContainerCpuAffinity(const cpu_set_t& cpus) {
  container_affinity = cpus;
  container_affinity_set = true;
}

const SeccompProgram& SeccompProgram::Cached(SeccompProfile profile) {
  // Magic statics: built once, thread-safely; a failed build throws and is tried again.
  if (profile == SeccompProfile::kUnconfined) {
    static const SeccompProgram unconfined = Build(SeccompProfile::kUnconfined);
    return unconfined;
  }
  static const SeccompProgram runtime_default = Build(SeccompProfile::kRuntimeDefault);
  return runtime_default;
}

namespace {

// Error `e` in the words of "start container `NAME`".
Error WrapLaunchError(const std::string& what, const Error& e) {
  Error out(e.code(), what + ": " + e.message());
  out.WithErrno(e.sys_errno());
  return out;
}

// A launch prepared: the plan the container process follows, and what it
// points to (kept alive until the process has its copies).
struct Prepared {
  ChildPlan plan;
  const SeccompProgram* seccomp = nullptr;
  std::vector<UniqueFd> fds;
  UniqueFd stdin_fd, log_fd;
  UniqueFd pid_ns_fd;
  std::optional<RootMountPoint> root_mount_point;
  std::deque<std::string> rootfs_strings;
  std::vector<std::string> argv, env;
};

// Validates the spec and prepares its launch (throws the error the launch
// would). `root_mount_point`: where a root filesystem is mounted; empty: a
// temporary directory, removed with `p`.
void Prepare(const ContainerSpec& spec, const Cgroup* cgroup, const std::string& what,
             const std::string& fixed_root_mount_point, Prepared& p) {
  ValidateContainerSpec(spec);
  auto wrap = [&](const Error& e) { return WrapLaunchError(what, e); };
  ChildPlan& plan = p.plan;
  const SeccompProgram*& seccomp = p.seccomp;
  std::vector<UniqueFd>& fds = p.fds;
  UniqueFd& stdin_fd = p.stdin_fd;
  UniqueFd& log_fd = p.log_fd;
  UniqueFd& pid_ns_fd = p.pid_ns_fd;
  std::optional<RootMountPoint>& root_mount_point = p.root_mount_point;
  std::deque<std::string>& rootfs_strings = p.rootfs_strings;
  auto step = [&](std::string name) {
    plan.steps.push_back(std::move(name));
    return static_cast<int>(plan.steps.size() - 1);
  };
  try {
    seccomp = &SeccompProgram::Cached(spec.seccomp);
    struct NsPath {
      const std::string& path;
      int type;
      const char* label;
    };
    for (const NsPath& ns :
         {NsPath{spec.ipc_ns, CLONE_NEWIPC, "IPC"}, NsPath{spec.uts_ns, CLONE_NEWUTS, "UTS"},
          NsPath{spec.net_ns, CLONE_NEWNET, "network"},
          // Last: its root hides host paths; everything is opened by then.
          NsPath{spec.mnt_ns, CLONE_NEWNS, "mount"},
          // The template is entered last too; the new namespace copies it.
          NsPath{spec.new_mount_ns ? spec.mount_template : kNoPath, CLONE_NEWNS,
                 "mount template"}}) {
      if (ns.path.empty()) continue;
      std::string s = std::string("join ") + ns.label + " namespace " + ns.path;
      fds.push_back(OpenOrThrow(ns.path, O_RDONLY, s));
      plan.joins.push_back({fds.back().get(), ns.type, step(s)});
    }
    if (!spec.pid_ns.empty()) {
      pid_ns_fd = OpenOrThrow(spec.pid_ns, O_RDONLY, "join PID namespace " + spec.pid_ns);
    }
    if (spec.stdin_fd < 0) stdin_fd = OpenOrThrow("/dev/null", O_RDONLY, "open /dev/null");
    if (spec.stdout_fd < 0 || spec.stderr_fd < 0) {
      std::string log = spec.log_path.empty() ? "/dev/null" : spec.log_path;
      log_fd = OpenOrThrow(log, O_WRONLY | O_CREAT | O_APPEND, "open log file " + log, 0640);
    }
    std::vector<std::string> procs_files = spec.cgroup_procs_files;
    if (cgroup != nullptr) {
      for (const auto& f : cgroup->ProcsFiles()) procs_files.push_back(f);
    }
    for (const auto& f : procs_files) {
      fds.push_back(OpenOrThrow(f, O_WRONLY, "enter cgroup " + f));
      plan.cgroup_fds.push_back(fds.back().get());
    }
  } catch (const Error& e) {
    throw wrap(e);
  }
  plan.stdin_fd = spec.stdin_fd >= 0 ? spec.stdin_fd : stdin_fd.get();
  plan.stdout_fd = spec.stdout_fd >= 0 ? spec.stdout_fd : log_fd.get();
  plan.stderr_fd = spec.stderr_fd >= 0 ? spec.stderr_fd : log_fd.get();
  plan.set_ctty = spec.setsid_ctty;
  plan.ctty_step = step("make stdin the controlling terminal");
  std::string cgroup_name = cgroup ? cgroup->name() : std::string();
  if (cgroup_name.empty() && !spec.cgroup_procs_files.empty()) {
    cgroup_name = std::filesystem::path(spec.cgroup_procs_files.front()).parent_path().string();
  }
  plan.cgroup_step = step("enter cgroup " + cgroup_name);

  if (spec.new_mount_ns) plan.unshare_flags |= CLONE_NEWNS;
  if (spec.new_uts_ns) plan.unshare_flags |= CLONE_NEWUTS;
  if (spec.new_ipc_ns) plan.unshare_flags |= CLONE_NEWIPC;
  plan.unshare_step = step("create namespaces");
  plan.make_rslave = spec.new_mount_ns;
  plan.rslave_step = step("make / rslave");
  if (spec.rootfs) {
    try {
      if (fixed_root_mount_point.empty()) {
        root_mount_point.emplace();
      } else {
        root_mount_point.emplace(fixed_root_mount_point);
      }
      PlanRootfs(spec, root_mount_point->path(), plan, rootfs_strings, step);
    } catch (const Error& e) {
      throw wrap(e);
    }
  } else {
    for (const auto& m : spec.mounts) {
      int s = step("bind mount " + m.source + " on " + m.target);
      int ro = step("make bind mount " + m.target + " read-only");
      plan.binds.push_back({m.source.c_str(), m.target.c_str(), m.read_only, s, ro});
    }
    // Only ever in a mount namespace of the container's own: never the host's.
    if (spec.new_mount_ns) {
      for (const auto& d : spec.detach_mounts) {
        plan.detaches.push_back({d.c_str(), step("detach mount " + d)});
      }
    }
    bool own_pid_ns = spec.new_pid_ns || !spec.pid_ns.empty();
    plan.mount_proc = own_pid_ns && spec.new_mount_ns;
  }
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
  plan.seccomp.len = static_cast<unsigned short>(seccomp->instructions().size());
  plan.seccomp.filter = const_cast<sock_filter*>(seccomp->instructions().data());
  plan.seccomp_step = step("install seccomp filter");
  plan.exec_step = step("exec `" + spec.argv[0] + "`");
  plan.in_process_main = spec.in_process_main;
  plan.set_affinity = container_affinity_set;
  plan.affinity = container_affinity;
  plan.affinity_step = step("set the CPU affinity");
  p.argv = spec.argv;
  p.env = spec.env;
  for (auto& a : p.argv) plan.argv.push_back(a.data());
  plan.argv.push_back(nullptr);
  for (auto& e : p.env) plan.envp.push_back(e.data());
  plan.envp.push_back(nullptr);
}

}  // namespace

ChildProcess LaunchContainer(const ContainerSpec& spec, const Cgroup* cgroup) {
  const std::string what = "start container `" + spec.name + "`";
  auto wrap = [&](const Error& e) { return WrapLaunchError(what, e); };
  Prepared prepared;
  Prepare(spec, cgroup, what, "", prepared);
  ChildPlan& plan = prepared.plan;
  UniqueFd& pid_ns_fd = prepared.pid_ns_fd;

  int pipe_fds[2];
  CheckSys(::pipe2(pipe_fds, O_CLOEXEC), what + ": create report pipe");
  UniqueFd report_read(pipe_fds[0]), report_write(pipe_fds[1]);
  plan.report_fd = report_write.get();

  // Fork from a thread of our own: a pid namespace (joined or new) applies to
  // the children of the thread that enters it, and must not leak to the caller's.
  pid_t pid = -1;
  int fork_err = 0;
  std::string fork_step;
  auto fork_child = [&] {
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
  };
  std::thread forker(fork_child);
  forker.join();
  report_write.reset();
  if (pid < 0) throw wrap(ErrnoError(fork_err, fork_step));

  ChildProcess process =
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

Error LaunchFailureError(const LaunchFailure& f) {
  std::string what(f.what, strnlen(f.what, sizeof f.what));
  if (f.err == 0) return Error::Internal(what);
  Code code = ErrnoError(f.err, "").code();
  // As a shell's exit code 127/126: the executable is what is missing.
  if (f.exec && (f.err == ENOENT || f.err == EACCES)) code = Code::kNotFound;
  Error e(code, what);
  e.WithErrno(f.err);
  return e;
}

void ReportLaunchFailure(int report_fd, const Error& e) {
  LaunchFailure f;
  f.err = e.sys_errno();
  std::snprintf(f.what, sizeof f.what, "%s", e.message().c_str());
  ssize_t ignored = ::write(report_fd, &f, sizeof f);
  (void)ignored;
}

void BecomeContainer(const ContainerSpec& spec, const Cgroup* cgroup, int report_fd,
                     const std::string& root_mount_point) {
  const std::string what = "start container `" + spec.name + "`";
  static Prepared prepared;  // never destroyed: we exec or exit
  try {
    Prepare(spec, cgroup, what, root_mount_point, prepared);
  } catch (const Error& e) {
    ReportLaunchFailure(report_fd, e);
    ::_exit(127);
  } catch (const std::exception& e) {
    ReportLaunchFailure(report_fd, Error::Internal(what + ": " + e.what()));
    ::_exit(127);
  }
  prepared.plan.report_fd = report_fd;
  prepared.plan.what = what.c_str();
  ChildMain(prepared.plan);
}

}  // namespace kin
