// Kernel tests of the shim (forked by `kin shim-server`, the real binary): a
// container it starts outlives its starter and the server, its output lands
// in the CRI log, its exit code and OOM kill are recorded, its cgroup goes
// with it, a launch failure comes back to the starter as an error naming the
// cause, kin's built-in agnhost runs without an exec, and a server that died
// is replaced.
#include "runtime/shim.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

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
  ShimState Start(const std::string& dir, std::vector<std::string> argv,
                  ResourceLimits limits = {}) {
    fs::create_directories(dir);
    ShimConfig c;
    c.spec.name = "c";
    c.spec.argv = std::move(argv);
    c.spec.env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"};
    c.spec.resources = limits;
    c.cgroup = prefix() + "-" + fs::path(dir).filename().string();
    c.log_path = dir + "/log";
    WriteFileAtomic(dir + "/config.json", ShimConfigToJson(c).dump(), 0644, false);
    return launcher_->Start(dir);
  }
  static bool Alive(pid_t pid) { return ::kill(pid, 0) == 0; }
  std::unique_ptr<ShimLauncher> launcher_ = std::make_unique<ShimLauncher>(KinBinary());
  // Waits for the shim to exit (it writes exit.json first).
  static bool WaitShim(pid_t shim_pid, int timeout_ms = 20000) {
    int fd = static_cast<int>(::syscall(SYS_pidfd_open, shim_pid, 0));
    if (fd < 0) return true;
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, timeout_ms);
    ::close(fd);
    return r > 0;
  }
  TempDir tmp_;
};

TEST_F(ShimTest, RecordsOutputExitCodeAndRemovesItsCgroup) {
  std::string dir = tmp_.File("c1");
  ShimState st = Start(dir, {"sh", "-c", "echo hello; echo oops >&2; exit 7"});
  EXPECT_GT(st.pid, 0);
  EXPECT_NE(st.shim_pid, ::getpid());
  ASSERT_TRUE(WaitShim(st.shim_pid));
  auto exit = ReadShimExit(dir);
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->exit_code, 7);
  EXPECT_FALSE(exit->oom_killed);
  std::string log = ReadFileIfExists(dir + "/log").value_or("");
  EXPECT_NE(log.find(" stdout F hello\n"), std::string::npos) << log;
  EXPECT_NE(log.find(" F oops\n"), std::string::npos) << log;
  EXPECT_TRUE(testing::KernelObjectsWithPrefix(prefix()).empty());
}

TEST_F(ShimTest, TheContainerOutlivesItsStarterAndDiesBySignal) {
  std::string dir = tmp_.File("c2");
  ShimState st = Start(dir, {"sleep", "1000"});
  pid_t server = launcher_->server_pid();
  ASSERT_GT(server, 0);
  EXPECT_NE(st.shim_pid, server);
  // The shim left our session; the server ends with its launcher, the shim
  // and its container live on.
  EXPECT_NE(::getsid(st.shim_pid), ::getsid(0));
  launcher_.reset();
  EXPECT_FALSE(Alive(server));
  EXPECT_TRUE(Alive(st.shim_pid));
  EXPECT_EQ(ProcessStartTicks(st.pid), st.start_ticks);
  EXPECT_FALSE(ReadShimExit(dir).has_value());
  ASSERT_EQ(::kill(st.pid, SIGTERM), 0);
  ASSERT_TRUE(WaitShim(st.shim_pid));
  auto exit = ReadShimExit(dir);
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->signal, SIGTERM);
  EXPECT_EQ(exit->exit_code, 128 + SIGTERM);
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
  std::string comm = ReadFileIfExists("/proc/" + std::to_string(st.pid) + "/comm").value_or("");
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
  ASSERT_TRUE(WaitShim(st.shim_pid));
  auto exit = ReadShimExit(dir);
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
  ASSERT_TRUE(WaitShim(first.shim_pid));
  ASSERT_TRUE(WaitShim(second.shim_pid));
  EXPECT_EQ(ReadShimExit(tmp_.File("c7"))->exit_code, 0);
}

TEST_F(ShimTest, OverItsMemoryLimitTheContainerIsOomKilled) {
  std::string dir = tmp_.File("c4");
  ResourceLimits limits;
  limits.memory_bytes = 16 << 20;
  ShimState st = Start(dir, {"sh", "-c", "tail /dev/zero"}, limits);
  ASSERT_TRUE(WaitShim(st.shim_pid, 60000));
  auto exit = ReadShimExit(dir);
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
