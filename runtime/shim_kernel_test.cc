// Kernel tests of the shim server (`kin shim-server`, the real binary): one
// server keeps every container it starts and outlives its starter, exiting
// after the last container; a container's output lands in the CRI log, its
// exit code and OOM kill are recorded, its cgroup goes with it, a launch
// failure comes back to the starter as an error naming the cause, kin's
// built-in agnhost runs without an exec, and a server that died is replaced.
#include "runtime/shim.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <thread>

#include "base/error.h"
#include "base/file.h"
#include "base/process.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin {
namespace {

namespace fs = std::filesystem;
using testing::KinBinary;
using testing::TempDir;

class ShimTest : public testing::KernelTest {
 protected:
  // Writes DIR/config.json for `argv` and starts the shim.
  ShimState Start(const std::string& dir, std::vector<std::string> argv, ResourceLimits limits = {},
                  bool new_pid_ns = false) {
    fs::create_directories(dir);
    ShimConfig c;
    c.spec.name = "c";
    c.spec.argv = std::move(argv);
    c.spec.new_pid_ns = new_pid_ns;
    c.spec.env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"};
    c.spec.resources = limits;
    c.cgroup = prefix() + "-" + fs::path(dir).filename().string();
    c.log_path = dir + "/log";
    WriteFileAtomic(dir + "/config.json", ShimConfigToJson(c).dump(), 0644, false);
    return launcher_->Start(dir);
  }
  static bool Alive(pid_t pid) { return ProcessRunning(pid, 0); }
  std::unique_ptr<ShimLauncher> launcher_ = std::make_unique<ShimLauncher>(KinBinary());
  // Waits until the server has recorded the container's exit.
  static std::optional<ShimExit> WaitExit(const std::string& dir,
                                          std::chrono::seconds timeout = std::chrono::seconds(20)) {
    std::optional<ShimExit> e;
    testing::Eventually([&] { return (e = ReadShimExit(dir)).has_value(); }, timeout);
    return e;
  }
  TempDir tmp_;
};

TEST_F(ShimTest, RecordsOutputExitCodeAndRemovesItsCgroup) {
  std::string dir = tmp_.File("c1");
  ShimState st = Start(dir, {"sh", "-c", "echo hello; echo oops >&2; exit 7"});
  EXPECT_GT(st.pid, 0);
  EXPECT_EQ(st.shim_pid, launcher_->server_pid());
  EXPECT_EQ(st.shim_start_ticks, ProcessStartTicks(st.shim_pid));
  auto exit = WaitExit(dir);
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->exit_code, 7);
  EXPECT_FALSE(exit->oom_killed);
  std::string log = ReadFileIfExists(dir + "/log").value_or("");
  EXPECT_NE(log.find(" stdout F hello\n"), std::string::npos) << log;
  EXPECT_NE(log.find(" F oops\n"), std::string::npos) << log;
  EXPECT_TRUE(testing::KernelObjectsWithPrefix(prefix()).empty());
}

TEST_F(ShimTest, OneServerKeepsEveryContainerAndOutlivesItsStarter) {
  std::string a = tmp_.File("a"), b = tmp_.File("b");
  ShimState sa = Start(a, {"sleep", "1000"});
  ShimState sb = Start(b, {"sleep", "1000"});
  pid_t server = launcher_->server_pid();
  ASSERT_GT(server, 0);
  // No keeper process per container: the server keeps both.
  EXPECT_EQ(sa.shim_pid, server);
  EXPECT_EQ(sb.shim_pid, server);
  EXPECT_NE(sa.pid, sb.pid);
  // The server left our session (a ^C at kin serve's terminal misses it).
  EXPECT_NE(::getsid(server), ::getsid(0));
  // Its starter goes (kin serve stops): the server keeps both containers.
  launcher_.reset();
  EXPECT_TRUE(Alive(server));
  EXPECT_EQ(ProcessStartTicks(sa.pid), sa.start_ticks);
  EXPECT_FALSE(ReadShimExit(a).has_value());
  ASSERT_EQ(::kill(sa.pid, SIGTERM), 0);
  auto exit = WaitExit(a);
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->signal, SIGTERM);
  EXPECT_EQ(exit->exit_code, 128 + SIGTERM);
  EXPECT_TRUE(Alive(server));  // one container left to keep
  ASSERT_EQ(::kill(sb.pid, SIGKILL), 0);
  ASSERT_TRUE(WaitExit(b).has_value());
  // The last one recorded: the server exits (a zombie of ours until reaped).
  EXPECT_TRUE(testing::Eventually([&] { return !Alive(server); }));
  ::waitpid(server, nullptr, 0);
}

// Containers are forked by the server's zygote, which keeps to one CPU (its
// copy-on-write faults then need no cross-CPU TLB flush); they get every
// CPU the server was given.
TEST_F(ShimTest, TheZygoteKeepsToOneCpuAndTheContainersGetThemAll) {
  std::string dir = tmp_.File("cpus");
  Start(dir, {"sh", "-c", "grep Cpus_allowed_list /proc/self/status"});
  ASSERT_TRUE(WaitExit(dir).has_value());
  auto allowed = [](const std::string& status) {
    size_t at = status.find("Cpus_allowed_list:");
    return at == std::string::npos ? std::string() : status.substr(at, status.find('\n', at) - at);
  };
  std::string ours = allowed(ReadFileIfExists("/proc/self/status").value_or(""));
  ASSERT_FALSE(ours.empty());
  EXPECT_NE(ReadFileIfExists(dir + "/log").value_or("").find(ours), std::string::npos)
      << ReadFileIfExists(dir + "/log").value_or("") << " vs " << ours;
  cpu_set_t mine;
  ASSERT_EQ(::sched_getaffinity(0, sizeof mine, &mine), 0);
  pid_t server = launcher_->server_pid();
  std::string children = ReadFileIfExists("/proc/" + std::to_string(server) + "/task/" +
                                          std::to_string(server) + "/children")
                             .value_or("");
  pid_t zygote = static_cast<pid_t>(std::atoi(children.c_str()));
  ASSERT_GT(zygote, 0) << children;
  EXPECT_EQ(ReadFileIfExists("/proc/" + std::to_string(zygote) + "/comm").value_or(""),
            "kin-shim-zygote\n");
  cpu_set_t cpus;
  ASSERT_EQ(::sched_getaffinity(zygote, sizeof cpus, &cpus), 0);
  EXPECT_EQ(CPU_COUNT(&cpus), CPU_COUNT(&mine) > 1 ? 1 : CPU_COUNT(&mine));
  ASSERT_EQ(::sched_getaffinity(server, sizeof cpus, &cpus), 0);
  EXPECT_EQ(CPU_COUNT(&cpus), CPU_COUNT(&mine));  // the server itself is not bound
}

// The zygote killed: the server adopts its containers (a subreaper), still
// records their exits, and forks the next through a new zygote.
TEST_F(ShimTest, AKilledZygoteLosesNoExitAndIsReplaced) {
  std::string a = tmp_.File("za"), b = tmp_.File("zb");
  ShimState sa = Start(a, {"sleep", "1000"});
  pid_t server = launcher_->server_pid();
  auto zygote_of = [&] {
    std::string children = ReadFileIfExists("/proc/" + std::to_string(server) + "/task/" +
                                            std::to_string(server) + "/children")
                               .value_or("");
    for (size_t at = 0; at < children.size();) {
      pid_t pid = static_cast<pid_t>(std::atoi(children.c_str() + at));
      if (ReadFileIfExists("/proc/" + std::to_string(pid) + "/comm").value_or("") ==
          "kin-shim-zygote\n") {
        return pid;
      }
      size_t space = children.find(' ', at);
      if (space == std::string::npos) break;
      at = space + 1;
    }
    return pid_t{0};
  };
  pid_t zygote = zygote_of();
  ASSERT_GT(zygote, 0);
  ASSERT_EQ(::kill(zygote, SIGKILL), 0);
  // The container is the server's child now.
  ASSERT_TRUE(testing::Eventually([&] {
    std::string stat = ReadFileIfExists("/proc/" + std::to_string(sa.pid) + "/stat").value_or("");
    size_t close = stat.rfind(')');
    return close != std::string::npos &&
           std::atoi(stat.c_str() + stat.find(' ', close + 2) + 1) == server;
  }));
  ASSERT_EQ(::kill(sa.pid, SIGTERM), 0);
  auto exit = WaitExit(a);
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->signal, SIGTERM);
  ShimState sb = Start(b, {"true"});
  EXPECT_EQ(sb.shim_pid, server);
  EXPECT_NE(zygote_of(), zygote);
  exit = WaitExit(b);
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->exit_code, 0);
}

// The zygote enters a new PID namespace for each such container's fork and
// returns to its own: the next one is pid 1 of its own namespace too.
TEST_F(ShimTest, EachContainerGetsAPidNamespaceOfItsOwn) {
  for (const char* name : {"pid1", "pid2"}) {
    std::string dir = tmp_.File(name);
    Start(dir, {"sh", "-c", "echo pid=$$"}, {}, /*new_pid_ns=*/true);
    auto exit = WaitExit(dir);
    ASSERT_TRUE(exit.has_value()) << name;
    EXPECT_EQ(exit->exit_code, 0) << name;
    EXPECT_NE(ReadFileIfExists(dir + "/log").value_or("").find(" F pid=1\n"), std::string::npos)
        << ReadFileIfExists(dir + "/log").value_or("");
  }
}

TEST_F(ShimTest, AStarterThatGoesWithNoContainerKeptEndsTheServer) {
  Start(tmp_.File("c0"), {"true"});
  ASSERT_TRUE(WaitExit(tmp_.File("c0")).has_value());
  pid_t server = launcher_->server_pid();
  launcher_.reset();  // asks, hears "0", and reaps it
  EXPECT_EQ(ProcessStartTicks(server), 0u);
}

TEST_F(ShimTest, AMissingExecutableIsNotFoundAndLeavesNothing) {
  std::string dir = tmp_.File("c3");
  try {
    Start(dir, {"/no/such/program"});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kNotFound) << e.what();
    EXPECT_NE(std::string(e.what()).find("/no/such/program"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(ReadShimState(dir).has_value());
}

TEST_F(ShimTest, KinsAgnhostRunsInTheForkedProcessWithoutExec) {
  std::string dir = tmp_.File("c5");
  ShimState st = Start(dir, {KinBinary(), "agnhost", "pause"});
  // The forked child names itself once it runs: until then it has the
  // zygote's name (seen in CI: "kin-shim-zygote").
  const std::string comm_path = "/proc/" + std::to_string(st.pid) + "/comm";
  std::string comm;
  for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
       std::chrono::steady_clock::now() < until;) {
    comm = ReadFileIfExists(comm_path).value_or("");
    if (comm == "agnhost\n") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(comm, "agnhost\n");
  // Not exec'd: the process still has the server's command line.
  std::string cmdline =
      ReadFileIfExists("/proc/" + std::to_string(st.pid) + "/cmdline").value_or("");
  EXPECT_NE(cmdline.find("shim-server"), std::string::npos) << cmdline;
  // It is agnhost all the same: pause prints "Paused" and exits 2 on SIGTERM.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (ReadFileIfExists(dir + "/log").value_or("").find("Paused") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    ::usleep(5000);
  }
  ASSERT_EQ(::kill(st.pid, SIGTERM), 0);
  auto exit = WaitExit(dir);
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->exit_code, 2);
  EXPECT_NE(ReadFileIfExists(dir + "/log").value_or("").find(" stdout F Paused\n"),
            std::string::npos);
}

TEST_F(ShimTest, ADeadServerIsReplacedOnTheNextStart) {
  ShimState first = Start(tmp_.File("c6"), {"true"});
  pid_t server = launcher_->server_pid();
  ASSERT_EQ(::kill(server, SIGKILL), 0);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  // Gone when it is a zombie or reaped: its state in /proc/PID/stat is Z or absent.
  while (ProcessStartTicks(server) != 0 && std::chrono::steady_clock::now() < deadline) {
    std::string stat = ReadFileIfExists("/proc/" + std::to_string(server) + "/stat").value_or("");
    if (stat.find(") Z") != std::string::npos) break;
    ::usleep(1000);
  }
  ShimState second = Start(tmp_.File("c7"), {"true"});
  EXPECT_GT(second.pid, 0);
  EXPECT_NE(launcher_->server_pid(), server);
  EXPECT_EQ(second.shim_pid, launcher_->server_pid());
  EXPECT_NE(first.shim_pid, second.shim_pid);
  auto exit = WaitExit(tmp_.File("c7"));
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->exit_code, 0);
}

TEST_F(ShimTest, OverItsMemoryLimitTheContainerIsOomKilled) {
  std::string dir = tmp_.File("c4");
  ResourceLimits limits;
  limits.memory_bytes = 16 << 20;
  Start(dir, {"sh", "-c", "tail /dev/zero"}, limits);
  auto exit = WaitExit(dir, std::chrono::seconds(60));
  ASSERT_TRUE(exit.has_value());
  EXPECT_TRUE(exit->oom_killed);
  EXPECT_EQ(exit->exit_code, 137);
}

TEST(ShimConfig, RoundTripsThroughJson) {
  ShimConfig c;
  c.spec.name = "web";
  c.spec.argv = {"a", "b"};
  c.spec.uid = 1000;
  c.spec.mounts = {{"/x", "/y", true}};
  c.spec.resources.memory_bytes = 5;
  c.spec.seccomp = SeccompProfile::kUnconfined;
  c.cgroup = "cg";
  c.log_path = "/l";
  ShimConfig d = ShimConfigFromJson(ShimConfigToJson(c));
  EXPECT_EQ(RenderContainerSpec(d.spec), RenderContainerSpec(c.spec));
  EXPECT_EQ(d.cgroup, "cg");
  EXPECT_EQ(d.log_path, "/l");
}

}  // namespace
}  // namespace kin
