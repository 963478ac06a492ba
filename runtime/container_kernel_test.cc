// Kernel tests for the container launcher: real namespaces, cgroups,
// capabilities and seccomp, with busybox as the container's program.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/error.h"
#include "base/netns.h"
#include "runtime/cgroup.h"
#include "runtime/container_launch.h"
#include "runtime/pod_namespaces.h"
#include "testing/kernel_fixture.h"

namespace kin {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kBusybox = "/bin/busybox";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class ContainerKernelTest : public kin::testing::KernelTest {
 protected:
  void SetUp() override {
    KernelTest::SetUp();
    if (IsSkipped()) return;
    dir_ = "/tmp/" + prefix() + "-files";
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
    KernelTest::TearDown();
  }

  ContainerSpec Shell(const std::string& script) {
    ContainerSpec s;
    s.name = "web";
    s.argv = {kBusybox, "sh", "-c", script};
    s.env = {"PATH=/bin:/usr/bin:/sbin:/usr/sbin"};
    s.log_path = dir_ + "/web.log";
    return s;
  }
  std::string Log() { return ReadAll(dir_ + "/web.log"); }

  // Runs the container to completion (10 s at most) and returns its status.
  ExitStatus Run(const ContainerSpec& spec, const Cgroup* cgroup = nullptr) {
    ChildProcess p = LaunchContainer(spec, cgroup);
    auto status = p.WaitFor(std::chrono::seconds(10));
    EXPECT_TRUE(status.has_value()) << "container still running; log:\n" << Log();
    return status.value_or(ExitStatus{});
  }

  std::string dir_;
};

TEST_F(ContainerKernelTest, JoinsNetnsSetsHostnameAndBindMountsHosts) {
  NamedNetns netns = NamedNetns::Create(Name("n"));
  std::string hosts = dir_ + "/hosts";
  std::ofstream(hosts) << "10.0.0.7 web-0 # " << prefix() << "\n";
  std::string host_hosts_before = ReadAll("/etc/hosts");
  char host_hostname[256] = {};
  ::gethostname(host_hostname, sizeof host_hostname - 1);

  ContainerSpec s = Shell(
      "busybox ip -o link | busybox wc -l; busybox ip -o link | busybox cut -d: -f2; "
      "busybox hostname; busybox cat /etc/hosts; echo x >> /etc/hosts || echo ro-ok");
  s.net_ns = std::string(kNetnsRunDir) + "/" + netns.name();
  s.new_uts_ns = true;
  s.hostname = "web-0";
  s.mounts = {{hosts, "/etc/hosts", true}};
  ExitStatus st = Run(s);
  EXPECT_TRUE(st.success()) << st.ToString() << "\n" << Log();
  std::string log = Log();
  EXPECT_THAT(log, HasSubstr("1\n lo\n"));  // the pod's netns: only lo
  EXPECT_THAT(log, HasSubstr("web-0\n"));
  EXPECT_THAT(log, HasSubstr("10.0.0.7 web-0 # " + prefix()));
  EXPECT_THAT(log, HasSubstr("ro-ok"));  // read-only bind mount
  EXPECT_EQ(ReadAll("/etc/hosts"), host_hosts_before);
  char after[256] = {};
  ::gethostname(after, sizeof after - 1);
  EXPECT_STREQ(after, host_hostname);
}

TEST_F(ContainerKernelTest, LogReceivesStdoutAndStderr) {
  ContainerSpec s = Shell("busybox pwd; echo to-out; echo to-err >&2; exit 3");
  s.working_dir = dir_;
  ExitStatus st = Run(s);
  EXPECT_EQ(st.code, 3);
  EXPECT_THAT(Log(), HasSubstr(dir_ + "\n"));
  EXPECT_THAT(Log(), HasSubstr("to-out\n"));
  EXPECT_THAT(Log(), HasSubstr("to-err\n"));
}

TEST_F(ContainerKernelTest, NewPidNamespaceMakesItPidOne) {
  ContainerSpec s = Shell("echo pid=$$; busybox ps -o pid | busybox wc -l");
  s.new_pid_ns = true;
  ExitStatus st = Run(s);
  EXPECT_TRUE(st.success()) << st.ToString() << "\n" << Log();
  EXPECT_THAT(Log(), HasSubstr("pid=1\n"));
  // /proc is the container's own: header + sh + ps (+ wc) only.
  EXPECT_THAT(Log(), ::testing::ContainsRegex("\n[2-4]\n"));
}

TEST_F(ContainerKernelTest, JoinsTheSandboxHoldersPidUtsAndIpcNamespaces) {
  ContainerSpec holder_spec;
  holder_spec.name = "pause";
  holder_spec.argv = {kBusybox, "sleep", "30"};
  holder_spec.new_pid_ns = true;
  holder_spec.new_uts_ns = true;
  holder_spec.new_ipc_ns = true;
  holder_spec.hostname = "pod-h";
  ChildProcess holder = LaunchContainer(holder_spec);
  std::string ns = "/proc/" + std::to_string(holder.pid()) + "/ns/";

  ContainerSpec s = Shell("busybox hostname; busybox ps -o pid,args");
  s.pid_ns = ns + "pid";
  s.uts_ns = ns + "uts";
  s.ipc_ns = ns + "ipc";
  ExitStatus st = Run(s);
  EXPECT_TRUE(st.success()) << st.ToString() << "\n" << Log();
  EXPECT_THAT(Log(), HasSubstr("pod-h\n"));
  EXPECT_THAT(Log(), ::testing::ContainsRegex("\n *1 +/bin/busybox sleep 30\n"));
  for (const char* type : {"pid", "uts", "ipc"}) {
    EXPECT_NE(std::filesystem::read_symlink(ns + type),
              std::filesystem::read_symlink(std::string("/proc/self/ns/") + type))
        << type;
  }
  holder.Stop(std::chrono::seconds(1));
}

TEST_F(ContainerKernelTest, RunsAsRequestedUser) {
  ContainerSpec s = Shell("busybox id -u; busybox id -g; busybox grep CapEff /proc/self/status");
  s.uid = 1000;
  s.gid = 1001;
  ExitStatus st = Run(s);
  EXPECT_TRUE(st.success()) << st.ToString() << "\n" << Log();
  EXPECT_THAT(Log(), HasSubstr("1000\n1001\n"));
  // A non-root container keeps no capabilities across exec (no ambient set).
  EXPECT_THAT(Log(), HasSubstr("CapEff:\t0000000000000000"));
}

TEST_F(ContainerKernelTest, RootGetsTheDefaultCapabilitySet) {
  ExitStatus st =
      Run(Shell("busybox grep -E 'Cap(Eff|Bnd)|NoNewPrivs|Seccomp:' /proc/self/status"));
  EXPECT_TRUE(st.success()) << st.ToString() << "\n" << Log();
  EXPECT_THAT(Log(), HasSubstr("CapEff:\t00000000a80425fb"));
  EXPECT_THAT(Log(), HasSubstr("CapBnd:\t00000000a80425fb"));
  EXPECT_THAT(Log(), HasSubstr("NoNewPrivs:\t1"));
  EXPECT_THAT(Log(), HasSubstr("Seccomp:\t2"));
}

TEST_F(ContainerKernelTest, SeccompIsInstalledWithoutNoNewPrivsToo) {
  ContainerSpec s = Shell(
      "busybox grep -E 'NoNewPrivs|Seccomp:' /proc/self/status; busybox unshare -n true || "
      "echo denied");
  s.no_new_privs = false;
  s.cap_add = {"SYS_ADMIN"};
  ExitStatus st = Run(s);
  EXPECT_TRUE(st.success()) << st.ToString() << "\n" << Log();
  EXPECT_THAT(Log(), HasSubstr("NoNewPrivs:\t0"));
  EXPECT_THAT(Log(), HasSubstr("Seccomp:\t2"));
  EXPECT_THAT(Log(), HasSubstr("denied"));
}

TEST_F(ContainerKernelTest, RuntimeDefaultSeccompDeniesUnshare) {
  ContainerSpec s = Shell("busybox unshare -n true && echo unshared");
  s.cap_add = {"SYS_ADMIN"};  // so only seccomp can be what says no
  ExitStatus st = Run(s);
  EXPECT_FALSE(st.success());
  EXPECT_THAT(Log(), HasSubstr("Operation not permitted"));
  EXPECT_THAT(Log(), Not(HasSubstr("unshared")));
}

TEST_F(ContainerKernelTest, UnconfinedAllowsUnshare) {
  ContainerSpec s = Shell("busybox unshare -n true && echo unshared");
  s.cap_add = {"SYS_ADMIN"};
  s.seccomp = SeccompProfile::kUnconfined;
  ExitStatus st = Run(s);
  EXPECT_TRUE(st.success()) << st.ToString() << "\n" << Log();
  EXPECT_THAT(Log(), HasSubstr("unshared"));
}

TEST_F(ContainerKernelTest, DefaultCapabilitiesDenyUnshareEvenUnconfined) {
  ContainerSpec s = Shell("busybox unshare -n true && echo unshared");
  s.seccomp = SeccompProfile::kUnconfined;
  ExitStatus st = Run(s);
  EXPECT_FALSE(st.success());
  EXPECT_THAT(Log(), Not(HasSubstr("unshared")));
}

TEST_F(ContainerKernelTest, CgroupAppliesLimits) {
  Cgroup cg = Cgroup::Create(Name("-c", 40), {64 << 20, 250, 10});
  ASSERT_EQ(cg.version(), Cgroup::Detect());
  if (cg.version() == CgroupVersion::kV1) {
    EXPECT_EQ(ReadAll("/sys/fs/cgroup/memory/kin/" + cg.name() + "/memory.limit_in_bytes"),
              std::to_string(64 << 20) + "\n");
    EXPECT_EQ(ReadAll("/sys/fs/cgroup/cpu/kin/" + cg.name() + "/cpu.cfs_quota_us"), "25000\n");
    EXPECT_EQ(ReadAll("/sys/fs/cgroup/cpu/kin/" + cg.name() + "/cpu.cfs_period_us"), "100000\n");
    EXPECT_EQ(ReadAll("/sys/fs/cgroup/pids/kin/" + cg.name() + "/pids.max"), "10\n");
  }
  ContainerSpec s = Shell("busybox cat /proc/self/cgroup");
  ExitStatus st = Run(s, &cg);
  EXPECT_TRUE(st.success()) << st.ToString() << "\n" << Log();
  EXPECT_THAT(Log(), HasSubstr("/kin/" + cg.name() + "\n"));
  std::vector<std::string> dirs = cg.dirs();
  cg.Remove();
  for (const auto& d : dirs) EXPECT_FALSE(std::filesystem::exists(d)) << d;
}

TEST_F(ContainerKernelTest, ACgroupWithoutLimitsKeepsTheKernelsDefaultsAndLimitsLater) {
  Cgroup cg = Cgroup::Create(Name("-u", 40), {});
  if (cg.version() == CgroupVersion::kV1) {
    std::string cpu = "/sys/fs/cgroup/cpu/kin/" + cg.name();
    EXPECT_EQ(ReadAll(cpu + "/cpu.cfs_quota_us"), "-1\n");
    EXPECT_EQ(ReadAll("/sys/fs/cgroup/pids/kin/" + cg.name() + "/pids.max"), "max\n");
    // Apply on a cgroup in use writes every value, unlimited ones too.
    cg.Apply({0, 500, 0});
    EXPECT_EQ(ReadAll(cpu + "/cpu.cfs_quota_us"), "50000\n");
    cg.Apply({});
    EXPECT_EQ(ReadAll(cpu + "/cpu.cfs_quota_us"), "-1\n");
  } else {
    std::string dir = cg.dirs().front();
    EXPECT_EQ(ReadAll(dir + "/cpu.max"), "max 100000\n");
    cg.Apply({0, 500, 0});
    EXPECT_EQ(ReadAll(dir + "/cpu.max"), "50000 100000\n");
    cg.Apply({});
    EXPECT_EQ(ReadAll(dir + "/cpu.max"), "max 100000\n");
  }
  cg.Remove();
}

TEST_F(ContainerKernelTest, CgroupAddProcessAndRemovalKillsIt) {
  Cgroup cg = Cgroup::Create(Name("-a", 40), {});
  ChildProcess sleeper = ChildProcess::Spawn({.argv = {kBusybox, "sleep", "30"}});
  cg.AddProcess(sleeper.pid());
  EXPECT_THAT(cg.Pids(), ::testing::ElementsAre(sleeper.pid()));
  cg.Remove();
  EXPECT_FALSE(cg.valid());
  EXPECT_EQ(sleeper.Wait().signal, SIGKILL);
  cg.Remove();  // idempotent
}

// What the node agent does with the cgroup of a container whose shim
// server was killed: found by name, emptied (SIGKILL) and removed.
TEST_F(ContainerKernelTest, CgroupOpenFindsOneMadeEarlierAndRemovesItWithWhatIsInside) {
  const std::string name = Name("-o", 40);
  EXPECT_FALSE(Cgroup::Open(name).has_value());
  Cgroup made = Cgroup::Create(name, {});
  ChildProcess sleeper = ChildProcess::Spawn({.argv = {kBusybox, "sleep", "30"}});
  made.AddProcess(sleeper.pid());
  std::optional<Cgroup> found = Cgroup::Open(name);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->dirs(), made.dirs());
  EXPECT_EQ(found->version(), made.version());
  EXPECT_THAT(found->Pids(), ::testing::ElementsAre(sleeper.pid()));
  found->Remove();
  EXPECT_EQ(sleeper.Wait().signal, SIGKILL);
  EXPECT_FALSE(Cgroup::Open(name).has_value());
  made.Remove();  // gone already: nothing to do
  EXPECT_THROW(Cgroup::Open("a/b"), Error);
}

TEST_F(ContainerKernelTest, MemoryLimitOomKills) {
  Cgroup cg = Cgroup::Create(Name("-m", 40), {32 << 20, 0, 0});
  ContainerSpec s;
  s.name = "hog";
  // dd allocates its 64 MiB block and fills it from /dev/zero: over the limit.
  s.argv = {kBusybox, "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"};
  s.log_path = dir_ + "/web.log";
  ExitStatus st = Run(s, &cg);
  EXPECT_EQ(st.signal, SIGKILL) << st.ToString() << "\n" << Log();
  EXPECT_GE(cg.OomKillCount(), 1u);
}

TEST_F(ContainerKernelTest, PidsLimitStopsForks) {
  Cgroup cg = Cgroup::Create(Name("-p", 40), {0, 0, 4});
  ContainerSpec s = Shell(
      "for i in 1 2 3 4 5 6 7 8; do busybox sleep 30 & done; echo started; busybox ps >/dev/null");
  ChildProcess p = LaunchContainer(s, &cg);
  auto st = p.WaitFor(std::chrono::seconds(10));
  ASSERT_TRUE(st.has_value());
  EXPECT_THAT(Log(), HasSubstr("Resource temporarily unavailable"));
  EXPECT_LE(cg.Pids().size(), 4u);
  // The sleeps that did start are still in the cgroup: removal must kill them.
  EXPECT_FALSE(cg.Pids().empty());
  cg.Remove();
}

TEST_F(ContainerKernelTest, MissingNetnsGivesAClearError) {
  ContainerSpec s = Shell("true");
  s.net_ns = std::string(kNetnsRunDir) + "/" + Name("x");
  try {
    LaunchContainer(s);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kNotFound);
    EXPECT_EQ(e.message(), "start container `web`: join network namespace " + s.net_ns +
                               ": No such file or directory");
  }
}

TEST_F(ContainerKernelTest, NotANetnsIsReportedByTheChild) {
  // Opens fine in the parent; setns in the child refuses it.
  ContainerSpec s = Shell("true");
  s.net_ns = dir_;
  try {
    LaunchContainer(s);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.message(),
              "start container `web`: join network namespace " + dir_ + ": Invalid argument");
  }
}

// A root filesystem holding busybox and a few applet links, nothing else.
class RootfsKernelTest : public ContainerKernelTest {
 protected:
  void SetUp() override {
    ContainerKernelTest::SetUp();
    if (IsSkipped()) return;
    namespace fs = std::filesystem;
    lower_ = dir_ + "/lower";
    upper_ = dir_ + "/upper";
    work_ = dir_ + "/work";
    for (const auto& d : {lower_ + "/bin", lower_ + "/etc", upper_, work_}) {
      fs::create_directories(d);
    }
    fs::copy_file(kBusybox, lower_ + "/bin/busybox");
    for (const char* applet : {"sh", "ls", "cat", "echo", "ps", "wc", "touch", "grep"}) {
      fs::create_symlink("busybox", lower_ + "/bin/" + applet);
    }
    std::ofstream(lower_ + "/etc/marker") << "from-lower\n";
  }

  ContainerSpec InRootfs(const std::string& script) {
    ContainerSpec s = Shell(script);
    s.argv = {"sh", "-c", script};
    s.env = {"PATH=/bin"};
    s.rootfs = RootfsSpec{{lower_}, upper_, work_, false};
    return s;
  }

  static bool HostHasRootfsMounts() {
    return ReadAll("/proc/self/mountinfo").find("kin-rootfs-") != std::string::npos;
  }

  std::string lower_, upper_, work_;
};

TEST_F(RootfsKernelTest, SeesOnlyItsTreeAndWritesGoToTheUpperDir) {
  std::string data = dir_ + "/data";
  std::filesystem::create_directories(data);
  std::ofstream(data + "/f") << "bound\n";
  ContainerSpec s = InRootfs(
      "ls /; cat /etc/marker; echo changed > /etc/marker; echo new > /created; "
      "cat /mnt/data/f; echo ps=$(ps -o pid | wc -l) pid1=$(cat /proc/1/comm); "
      "echo x > /dev/null && echo null-ok; ls /dev/pts | grep -q ptmx && echo pts-ok; "
      "echo pwd=$(pwd)");
  s.working_dir = "/work/dir";
  s.new_pid_ns = true;
  s.mounts = {{data, "/mnt/data", true}};
  ExitStatus st = Run(s);
  EXPECT_TRUE(st.success()) << st.ToString() << "\n" << Log();
  // ls / lists exactly the image's tree plus what the launcher made.
  EXPECT_THAT(Log(), HasSubstr("bin\ndev\netc\nmnt\nproc\nsys\nwork\nfrom-lower\n"));
  EXPECT_THAT(Log(), HasSubstr("bound\n"));
  // Its own pid namespace: a handful of processes, the shell as pid 1.
  EXPECT_THAT(Log(), ::testing::ContainsRegex("ps=[2-6] pid1=sh\n"));
  EXPECT_THAT(Log(), HasSubstr("null-ok\n"));
  EXPECT_THAT(Log(), HasSubstr("pts-ok\n"));
  EXPECT_THAT(Log(), HasSubstr("pwd=/work/dir\n"));
  EXPECT_EQ(ReadAll(lower_ + "/etc/marker"), "from-lower\n");
  EXPECT_EQ(ReadAll(upper_ + "/etc/marker"), "changed\n");
  EXPECT_EQ(ReadAll(upper_ + "/created"), "new\n");
  EXPECT_FALSE(std::filesystem::exists(lower_ + "/created"));
  EXPECT_FALSE(HostHasRootfsMounts());
}

TEST_F(RootfsKernelTest, ReadOnlyRootKeepsWritableBindMounts) {
  std::string data = dir_ + "/data";
  std::filesystem::create_directories(data);
  ContainerSpec s = InRootfs(
      "echo x > /etc/marker || echo root-ro; echo y > /data/out && echo data-rw; "
      "echo z > /dev/shm/s && echo shm-rw");
  s.rootfs->read_only = true;
  s.mounts = {{data, "/data", false}};
  ExitStatus st = Run(s);
  EXPECT_TRUE(st.success()) << st.ToString() << "\n" << Log();
  EXPECT_THAT(Log(), HasSubstr("root-ro\n"));
  EXPECT_THAT(Log(), HasSubstr("data-rw\n"));
  EXPECT_THAT(Log(), HasSubstr("shm-rw\n"));
  EXPECT_EQ(ReadAll(data + "/out"), "y\n");
  EXPECT_FALSE(std::filesystem::exists(upper_ + "/etc/marker"));
}

TEST_F(RootfsKernelTest, SingleLowerWithoutUpperIsAReadOnlyBindMount) {
  // Present, so that the launcher need not create them in the host's directory
  // (the root is writable until it is remounted read-only).
  for (const char* d : {"/proc", "/dev", "/sys"}) std::filesystem::create_directory(lower_ + d);
  ContainerSpec s = InRootfs(
      "cat /etc/marker; touch /new 2>/dev/null || echo ro-ok; ls /proc/self/ >/dev/null && echo "
      "proc-ok");
  s.rootfs = RootfsSpec{{lower_}, "", "", false};
  ExitStatus st = Run(s);
  EXPECT_TRUE(st.success()) << st.ToString() << "\n" << Log();
  EXPECT_THAT(Log(), HasSubstr("from-lower\nro-ok\nproc-ok\n"));
  EXPECT_FALSE(std::filesystem::exists(lower_ + "/new"));
  EXPECT_FALSE(HostHasRootfsMounts());
}

TEST_F(RootfsKernelTest, MissingExecutableInTheRootIsNotFound) {
  ContainerSpec s = InRootfs("true");
  s.argv = {"/usr/bin/env"};  // on the host, not in the root filesystem
  try {
    LaunchContainer(s);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kNotFound) << e.what();
  }
  EXPECT_FALSE(HostHasRootfsMounts());
}

TEST_F(RootfsKernelTest, SymlinksInTheImageResolveInsideIt) {
  // As in Debian images: /var/run -> /run, absolute. A bind mount below it
  // must land in the image's /run, not the host's.
  std::filesystem::create_directories(lower_ + "/var");
  std::filesystem::create_directories(lower_ + "/run");
  std::filesystem::create_symlink("/run", lower_ + "/var/run");
  std::string data = dir_ + "/data";
  std::filesystem::create_directories(data);
  std::ofstream(data + "/token") << "secret\n";
  std::string target = "/var/run/" + prefix() + "/sa";
  ContainerSpec s = InRootfs("cat /run/" + prefix() + "/sa/token");
  s.mounts = {{data, target, true}};
  ExitStatus st = Run(s);
  EXPECT_TRUE(st.success()) << st.ToString() << "\n" << Log();
  EXPECT_EQ(Log(), "secret\n");
  EXPECT_FALSE(std::filesystem::exists("/run/" + prefix()));
  EXPECT_TRUE(std::filesystem::is_directory(upper_ + "/run/" + prefix() + "/sa"));
}

TEST_F(RootfsKernelTest, RootfsSpecIsValidatedAndRendered) {
  ContainerSpec s = InRootfs("true");
  EXPECT_THAT(RenderContainerSpec(s),
              HasSubstr("rootfs " + lower_ + " upper " + upper_ + " work " + work_ + " rw\n"));
  s.new_mount_ns = false;
  s.rootfs->lower_dirs.push_back("relative");
  s.rootfs->lower_dirs.push_back("/a:b");
  s.rootfs->work_dir = "";
  try {
    LaunchContainer(s);
    FAIL() << "expected Invalid";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalid);
    EXPECT_THAT(e.message(), HasSubstr("rootfs: a root filesystem needs a new mount namespace"));
    EXPECT_THAT(e.message(), HasSubstr("rootfs.lowerDirs[1]: must be an absolute path"));
    EXPECT_THAT(e.message(), HasSubstr("rootfs.lowerDirs[2]: must not contain ',' or ':'"));
    EXPECT_THAT(e.message(), HasSubstr("rootfs.workDir: Required value"));
  }
  EXPECT_FALSE(HostHasRootfsMounts());
}

TEST_F(ContainerKernelTest, MissingBindSourceIsReportedByTheChild) {
  ContainerSpec s = Shell("true");
  s.mounts = {{dir_ + "/nope", "/etc/hosts", true}};
  try {
    LaunchContainer(s);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kNotFound);
    EXPECT_EQ(e.message(), "start container `web`: bind mount " + dir_ +
                               "/nope on /etc/hosts: No such file or directory");
  }
}

TEST_F(ContainerKernelTest, MissingExecutableIsNotFound) {
  ContainerSpec s = Shell("true");
  s.argv = {"no-such-program-" + prefix()};
  try {
    LaunchContainer(s);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kNotFound);
    EXPECT_EQ(e.message(), "start container `web`: exec `no-such-program-" + prefix() +
                               "`: No such file or directory");
  }
}

// What exec (container_io.h) builds on: the caller's descriptors as stdio.
TEST_F(ContainerKernelTest, StdioDescriptorsReplaceDevNullAndTheLog) {
  int in[2], out[2], err[2];
  ASSERT_EQ(::pipe2(in, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(err, O_CLOEXEC), 0);
  UniqueFd in_r(in[0]), in_w(in[1]), out_r(out[0]), out_w(out[1]), err_r(err[0]), err_w(err[1]);
  ContainerSpec s = Shell("busybox cat; echo to-err >&2");
  s.stdin_fd = in_r.get();
  s.stdout_fd = out_w.get();
  s.stderr_fd = err_w.get();
  ChildProcess p = LaunchContainer(s);
  in_r.reset();
  out_w.reset();
  err_w.reset();
  ASSERT_EQ(::write(in_w.get(), "piped", 5), 5);
  in_w.reset();
  auto status = p.WaitFor(std::chrono::seconds(10));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->success()) << status->ToString();
  char buf[64] = {};
  EXPECT_EQ(std::string(buf, std::max<ssize_t>(0, ::read(out_r.get(), buf, sizeof buf))), "piped");
  EXPECT_EQ(std::string(buf, std::max<ssize_t>(0, ::read(err_r.get(), buf, sizeof buf))),
            "to-err\n");
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/web.log"));  // never opened
}

TEST_F(ContainerKernelTest, JoinsAnExistingMountNamespace) {
  std::string secret = dir_ + "/secret", target = dir_ + "/target";
  std::ofstream(secret) << "bound\n";
  std::ofstream(target) << "host\n";
  ContainerSpec holder = Shell("busybox sleep 30");
  holder.new_pid_ns = true;  // so it has its own /proc too
  holder.mounts = {{secret, target, true}};
  ChildProcess h = LaunchContainer(holder);

  ContainerSpec s =
      Shell("busybox pwd; busybox cat target; busybox ls /proc | busybox grep -c '^[0-9]'");
  s.mnt_ns = "/proc/" + std::to_string(h.pid()) + "/ns/mnt";
  s.new_mount_ns = false;
  s.working_dir = dir_;
  ExitStatus st = Run(s);
  EXPECT_TRUE(st.success()) << st.ToString() << "\n" << Log();
  // Its bind mount and its /proc (holding only its own pid 1: we did not join its pid ns).
  EXPECT_EQ(Log(), dir_ + "\nbound\n1\n");
  EXPECT_EQ(ReadAll(target), "host\n");
  h.Stop(std::chrono::seconds(1));
}

TEST_F(ContainerKernelTest, JoiningAMountNamespaceExcludesMountsOfItsOwn) {
  ContainerSpec s = Shell("true");
  s.mnt_ns = "/proc/1/ns/mnt";
  s.rootfs = RootfsSpec{{"/"}, "", "", true};
  try {
    ValidateContainerSpec(s);
    FAIL() << "expected Invalid";
  } catch (const Error& e) {
    std::vector<std::string> fields;
    for (const auto& c : e.causes()) fields.push_back(c.field);
    EXPECT_THAT(fields, ::testing::IsSupersetOf({"namespaces.mount", "rootfs"}));
  }
  s = Shell("true");
  s.mnt_ns = "relative/mnt";
  s.new_mount_ns = false;
  s.setsid_ctty = true;  // without a terminal as stdin
  EXPECT_THROW(ValidateContainerSpec(s), Error);
}

TEST_F(ContainerKernelTest, PinnedPodNamespacesHoldTheHostnameWithoutAProcess) {
  std::string ns_dir = dir_ + "/pod/ns";
  CreatePodNamespaces(ns_dir, "pinned-host");
  ASSERT_TRUE(PodNamespacesExist(ns_dir));
  PodNamespacePaths pins = PodNamespacesIn(ns_dir);
  ContainerSpec s = Shell("hostname; readlink /proc/self/ns/ipc");
  s.uts_ns = pins.uts;
  s.ipc_ns = pins.ipc;
  ASSERT_TRUE(Run(s).success()) << Log();
  struct stat ipc {};
  ASSERT_EQ(::stat(pins.ipc.c_str(), &ipc), 0);
  EXPECT_EQ(Log(), "pinned-host\nipc:[" + std::to_string(ipc.st_ino) + "]\n");
  RemovePodNamespaces(ns_dir);
  EXPECT_FALSE(PodNamespacesExist(ns_dir));
  EXPECT_FALSE(std::filesystem::exists(pins.uts));
  RemovePodNamespaces(ns_dir);  // twice is fine
}

TEST_F(ContainerKernelTest, ACreateThatFailsLeavesNoPins) {
  std::string ns_dir = dir_ + "/bad/ns";
  // A hostname over 64 bytes: sethostname fails after the unshare.
  EXPECT_THROW(CreatePodNamespaces(ns_dir, std::string(80, 'h')), Error);
  EXPECT_FALSE(std::filesystem::exists(ns_dir + "/uts"));
  EXPECT_FALSE(std::filesystem::exists(ns_dir + "/ipc"));
}

TEST_F(ContainerKernelTest, AContainerCopiesTheMountTemplateAndDetachesThePodsMount) {
  std::string pins = dir_ + "/pins", pods = dir_ + "/pods";
  EnsureOwnTmpfs(pins, Propagation::kPrivate);
  std::ofstream(pins + "/kept") << "kept\n";
  EnsureOwnTmpfs(pins, Propagation::kPrivate);  // idempotent: no second mount hides the first
  EXPECT_EQ(ReadAll(pins + "/kept"), "kept\n");
  EnsureOwnTmpfs(pods, Propagation::kShared);
  struct statfs fs {};
  ASSERT_EQ(::statfs(pods.c_str(), &fs), 0);
  EXPECT_EQ(fs.f_type, static_cast<decltype(fs.f_type)>(TMPFS_MAGIC));
  CreatePodNamespaces(pins + "/other", "other");
  std::string pin = pins + "/template";
  CreateMountTemplate(pin, {pins, "/run/netns", "/no/such/mount"});
  ASSERT_TRUE(MountTemplateExists(pin));
  // A volume mounted after the template was made still reaches it (the pods
  // mount is shared, a slave in the template).
  std::filesystem::create_directories(pods + "/p1/vol");
  ASSERT_EQ(::mount("tmpfs", (pods + "/p1/vol").c_str(), "tmpfs", 0, "size=1m"), 0);
  std::ofstream(pods + "/p1/vol/data") << "from-tmpfs\n";
  std::ofstream(dir_ + "/target") << "";

  ContainerSpec s = Shell("");
  s.new_mount_ns = true;
  s.mount_template = pin;
  s.mounts = {{pods + "/p1/vol/data", dir_ + "/target", true}};
  s.detach_mounts = {pods};
  s.argv = {kBusybox, "sh", "-c",
            "grep -c -e ' " + pins + "' -e ' " + pods +
                "' -e ' /run/netns' /proc/self/mountinfo; cat " + dir_ + "/target"};
  Run(s);  // grep -c exits 1 when it counts 0
  EXPECT_EQ(Log(), "0\nfrom-tmpfs\n");
  // The host still has them all.
  EXPECT_TRUE(PodNamespacesExist(pins + "/other"));

  EXPECT_EQ(::umount2((pods + "/p1/vol").c_str(), MNT_DETACH), 0);
  RemoveMountTemplate(pin);
  EXPECT_FALSE(MountTemplateExists(pin));
  RemovePodNamespaces(pins + "/other");
  RemoveOwnMount(pins);
  RemoveOwnMount(pods);
  RemoveOwnMount(pods);  // not mounted: fine
  std::string mounts = ReadAll("/proc/self/mountinfo");
  EXPECT_EQ(mounts.find(dir_), std::string::npos) << mounts;
}

}  // namespace
}  // namespace kin
