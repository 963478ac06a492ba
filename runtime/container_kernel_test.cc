// Kernel tests for the container launcher: real namespaces, cgroups,
// capabilities and seccomp, with busybox as the container's program.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/error.h"
#include "base/netns.h"
#include "runtime/cgroup.h"
#include "runtime/container_launch.h"
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
    ContainerProcess p = LaunchContainer(spec, cgroup);
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
  ContainerProcess holder = LaunchContainer(holder_spec);
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
  ContainerProcess p = LaunchContainer(s, &cg);
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

}  // namespace
}  // namespace kin
