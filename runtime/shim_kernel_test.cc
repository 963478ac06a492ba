// Kernel tests of the shim (`kin shim`, the real binary): a container it
// starts outlives its starter, its output lands in the CRI log, its exit code
// and OOM kill are recorded, its cgroup goes with it, and a launch failure
// comes back to the starter as an error naming the cause.
#include "runtime/shim.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

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
    return StartShim(KinBinary(), dir);
  }
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
  // The shim is no child of ours: it left our session and was reparented.
  std::string stat =
      ReadFileIfExists("/proc/" + std::to_string(st.shim_pid) + "/stat").value_or("");
  size_t close = stat.rfind(')');
  ASSERT_NE(close, std::string::npos);
  int ppid = std::atoi(stat.substr(close + 4).c_str());
  EXPECT_NE(ppid, ::getpid());
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
