// Kernel tests for exec into a running container and dialing into a pod's
// network namespace: real namespaces, cgroups, ptys, with the host's
// busybox/coreutils as the container's programs.
#include "runtime/container_io.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include "base/error.h"
#include "base/netns.h"
#include "runtime/cgroup.h"
#include "runtime/container_launch.h"
#include "testing/kernel_fixture.h"

namespace kin {
namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;

// Everything `fd` yields until EOF (or EIO: a pty whose other side is
// gone), within `timeout`.
std::string ReadToEnd(int fd, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ADD_FAILURE() << "no EOF within the deadline; read so far: " << out;
      return out;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return out;
    out.append(buf, n);
  }
}

void WriteAll(int fd, const std::string& data) {
  ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()))
      << std::strerror(errno);
}

struct Output {
  std::string out, err;
  std::optional<int> code;
};

Output Collect(ExecProcess& p) {
  Output o;
  o.out = ReadToEnd(p.stdout_fd());
  if (p.stderr_fd() >= 0) o.err = ReadToEnd(p.stderr_fd());
  o.code = p.WaitFor(std::chrono::seconds(10));
  return o;
}

// Brings lo up in the calling thread's network namespace.
void LoopbackUp() {
  UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(s.valid());
  ifreq ifr{};
  std::strcpy(ifr.ifr_name, "lo");
  ASSERT_EQ(::ioctl(s.get(), SIOCGIFFLAGS, &ifr), 0) << std::strerror(errno);
  ifr.ifr_flags |= IFF_UP;
  ASSERT_EQ(::ioctl(s.get(), SIOCSIFFLAGS, &ifr), 0) << std::strerror(errno);
}

class ContainerIoKernelTest : public kin::testing::KernelTest {
 protected:
  void SetUp() override {
    KernelTest::SetUp();
    if (IsSkipped()) return;
    dir_ = "/tmp/" + prefix() + "-files";
    std::filesystem::create_directories(dir_);
    std::filesystem::permissions(dir_, std::filesystem::perms(0755));
    netns_.emplace(NamedNetns::Create(Name("n")));
    netns_path_ = std::string(kNetnsRunDir) + "/" + netns_->name();
    cgroup_ = Cgroup::Create(Name("cg", 64), {});

    // Only the container's mount namespace sees `secret` over `target`.
    secret_ = dir_ + "/secret";
    target_ = dir_ + "/target";
    std::ofstream(secret_) << "inside-" << prefix() << "\n";
    std::ofstream(target_) << "host\n";

    spec_.name = "app";
    spec_.argv = {"/bin/busybox", "sleep", "1000"};
    spec_.env = {"PATH=/bin:/usr/bin:/sbin:/usr/sbin", "GREETING=hi-from-spec"};
    spec_.working_dir = dir_;
    spec_.net_ns = netns_path_;
    spec_.new_pid_ns = true;
    spec_.new_uts_ns = true;
    spec_.hostname = "app-0";
    spec_.uid = 65534;
    spec_.gid = 65534;
    spec_.cap_drop = {"NET_RAW"};
    spec_.mounts = {{secret_, target_, true}};
    // As the node agent sets them; an exec joins the result instead.
    spec_.detach_mounts = {"/run/netns"};
    spec_.mount_template = "/proc/self/ns/mnt";
    container_ = LaunchContainer(spec_, &cgroup_);
  }
  void TearDown() override {
    container_ = ChildProcess();  // its pid namespace, and every exec in it, dies with it
    try {
      cgroup_.Remove();
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what();
    }
    netns_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
    KernelTest::TearDown();
  }

  ExecProcess Exec(std::vector<std::string> command, bool tty = false, bool stdin = false) {
    return StartExec(spec_, container_.pid(), cgroup_.name(), {std::move(command), tty, stdin});
  }

  std::string dir_, secret_, target_, netns_path_;
  std::optional<NamedNetns> netns_;
  Cgroup cgroup_;
  ContainerSpec spec_;
  ChildProcess container_;
};

TEST_F(ContainerIoKernelTest, SeparatesStdoutStderrAndReportsTheExitCode) {
  ExecProcess p = Exec({"sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_EQ(p.stdin_fd(), -1);
  Output o = Collect(p);
  EXPECT_EQ(o.out, "out\n");
  EXPECT_EQ(o.err, "err\n");
  EXPECT_EQ(o.code, 3);
}

TEST_F(ContainerIoKernelTest, RunsInsideTheContainersNamespacesAsItsUser) {
  ExecProcess p =
      Exec({"sh", "-c",
            "cat " + target_ +
                "; echo pid=$$; tr '\\0' ' ' </proc/1/cmdline; echo; hostname; id -u; id -g; pwd; "
                "echo $GREETING; grep -E '^Cap(Bnd|Eff)|NoNewPrivs|Seccomp:' /proc/self/status; "
                "cat /proc/self/cgroup; ip -o link | wc -l"});
  Output o = Collect(p);
  EXPECT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_THAT(o.out, HasSubstr("inside-" + prefix() + "\n"));  // the container's bind mount
  EXPECT_THAT(o.out, Not(HasSubstr("host\n")));
  EXPECT_THAT(o.out, ContainsRegex("pid=[0-9]\n"));  // a small pid: the container's namespace
  EXPECT_THAT(o.out, HasSubstr("/bin/busybox sleep 1000 \n"));  // its pid 1
  EXPECT_THAT(o.out, HasSubstr("app-0\n65534\n65534\n" + dir_ + "\nhi-from-spec\n"));
  // The default set minus NET_RAW (bit 13); a non-root user keeps none effective.
  EXPECT_THAT(o.out, HasSubstr("CapBnd:\t00000000a80405fb"));
  EXPECT_THAT(o.out, HasSubstr("CapEff:\t0000000000000000"));
  EXPECT_THAT(o.out, HasSubstr("NoNewPrivs:\t1"));
  EXPECT_THAT(o.out, HasSubstr("Seccomp:\t2"));
  EXPECT_THAT(o.out, HasSubstr("/kin/" + cgroup_.name() + "\n"));
  EXPECT_THAT(o.out, HasSubstr("\n1\n"));  // the pod's netns: lo only
  std::ifstream host_view(target_);
  std::string line;
  std::getline(host_view, line);
  EXPECT_EQ(line, "host");  // nothing leaked to the host's mount namespace
}

TEST_F(ContainerIoKernelTest, IsAccountedToTheContainersCgroup) {
  ExecProcess p = Exec({"sleep", "100"});
  EXPECT_TRUE(kin::testing::Eventually([&] {
    for (pid_t pid : cgroup_.Pids()) {
      if (pid == p.pid()) return true;
    }
    return false;
  }));
  p.Kill();
  EXPECT_EQ(p.WaitFor(std::chrono::seconds(5)), 128 + SIGKILL);
}

TEST_F(ContainerIoKernelTest, StdinReachesTheProcessAndCloseGivesEof) {
  ExecProcess p = Exec({"cat"}, /*tty=*/false, /*stdin=*/true);
  ASSERT_GE(p.stdin_fd(), 0);
  WriteAll(p.stdin_fd(), "hello");
  p.CloseStdin();
  EXPECT_EQ(p.stdin_fd(), -1);
  Output o = Collect(p);
  EXPECT_EQ(o.out, "hello");
  EXPECT_EQ(o.code, 0);
}

TEST_F(ContainerIoKernelTest, TtyHasTheSizeItWasGivenAndIsTheControllingTerminal) {
  // `read` first, so the size is set before stty asks for it.
  ExecProcess p = Exec({"sh", "-c", "read x; stty size; tty; ps -o tty= -p $$"}, /*tty=*/true,
                       /*stdin=*/true);
  ASSERT_GE(p.stdout_fd(), 0);
  EXPECT_EQ(p.stdin_fd(), p.stdout_fd());
  EXPECT_EQ(p.stderr_fd(), -1);
  p.Resize(100, 40);
  WriteAll(p.stdin_fd(), "go\n");
  Output o = Collect(p);
  EXPECT_EQ(o.code, 0) << o.out;
  EXPECT_THAT(o.out, HasSubstr("40 100\r\n"));
  EXPECT_THAT(o.out, ContainsRegex("/dev/pts/[0-9]+\r\n"));
  EXPECT_THAT(o.out, ContainsRegex("pts/[0-9]+\r\n$"));  // ps: it is sh's controlling tty
}

TEST_F(ContainerIoKernelTest, MissingCommandIsNotFoundWithExitCode127) {
  std::string missing = "nope-" + prefix();
  try {
    Exec({missing});
    FAIL() << "expected NotFound";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kNotFound);
    EXPECT_EQ(e.message(), "exec: \"" + missing + "\": executable file not found in $PATH");
    EXPECT_EQ(ExecStartExitCode(e), 127);
  }
  try {
    Exec({dir_});  // a directory: not executable
    FAIL() << "expected NotFound";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kNotFound);
    EXPECT_THAT(e.message(), HasSubstr("permission denied"));
    EXPECT_EQ(ExecStartExitCode(e), 126);
  }
  EXPECT_EQ(ExecStartExitCode(Error::NotFound("pods \"x\" not found")), std::nullopt);
}

TEST_F(ContainerIoKernelTest, KillEndsTheProcess) {
  ExecProcess p = Exec({"sleep", "100"});
  EXPECT_EQ(p.WaitFor(std::chrono::milliseconds(50)), std::nullopt);
  p.Kill();
  EXPECT_EQ(p.WaitFor(std::chrono::seconds(5)), 137);
  p.Kill();  // already gone: harmless
}

TEST_F(ContainerIoKernelTest, AGoneContainerIsNotFound) {
  pid_t pid = container_.pid();
  container_.Signal(SIGKILL);
  container_.Wait();
  try {
    StartExec(spec_, pid, "", {{"true"}});
    FAIL() << "expected NotFound";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kNotFound) << e.message();
    EXPECT_THAT(e.message(), HasSubstr("exec in container `app`"));
  }
}

// A container with its own root (here a read-only bind of the host's /,
// with a private /proc, /dev and devpts): exec lands in that root after
// pivot_root, and its terminal comes from the container's own devpts.
TEST_F(ContainerIoKernelTest, ExecEntersAPivotedRootAndUsesItsDevpts) {
  ContainerSpec rooted = spec_;
  rooted.name = "rooted";
  // Targets that exist on the host: nothing may be created in the host's /.
  rooted.rootfs = RootfsSpec{{"/"}, "", "", true};
  rooted.uid.reset();
  rooted.gid.reset();
  ChildProcess c = LaunchContainer(rooted);
  ExecProcess p = StartExec(rooted, c.pid(), "",
                            {{"sh", "-c", "pwd; cat target; echo $(ls /dev/pts); tty"},
                             /*tty=*/true,
                             /*stdin=*/false});
  EXPECT_EQ(p.stdin_fd(), -1);
  Output o = Collect(p);
  EXPECT_EQ(o.code, 0) << o.out;
  EXPECT_THAT(o.out, HasSubstr(dir_ + "\r\ninside-" + prefix() + "\r\n"));
  // A fresh devpts instance: our terminal is its first.
  EXPECT_THAT(o.out, HasSubstr("0 ptmx\r\n/dev/pts/0\r\n"));
}

TEST_F(ContainerIoKernelTest, DialInNetnsCarriesBytesBothWays) {
  Netns ns = Netns::Open(netns_->name());
  UniqueFd listener;
  uint16_t port = 0;
  RunInNetns(ns, [&] {
    LoopbackUp();
    listener.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(::listen(listener.get(), 4), 0);
    socklen_t len = sizeof a;
    ASSERT_EQ(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&a), &len), 0);
    port = ntohs(a.sin_port);
  });
  ASSERT_NE(port, 0);
  // The listener is only in the pod's namespace: the host's localhost has no such server
  // (the port could be taken by chance on the host, so only the namespace side is asserted).
  std::string server_got;
  std::thread server([&] {
    UniqueFd c(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!c) return;
    char buf[16];
    ssize_t n = ::read(c.get(), buf, sizeof buf);
    if (n > 0) server_got.assign(buf, n);
    ssize_t w = ::write(c.get(), "pong", 4);
    (void)w;
  });
  UniqueFd conn;
  try {
    conn = DialInNetns(netns_path_, port);
  } catch (const Error& e) {
    ADD_FAILURE() << e.message();
    ::shutdown(listener.get(), SHUT_RDWR);
  }
  if (conn) {
    WriteAll(conn.get(), "ping");
    EXPECT_EQ(ReadToEnd(conn.get()), "pong");
  }
  server.join();
  EXPECT_EQ(server_got, "ping");

  listener.reset();
  try {
    DialInNetns(netns_path_, port);
    FAIL() << "expected Unavailable";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kServiceUnavailable);
    EXPECT_THAT(e.message(), HasSubstr("failed to connect to localhost:" + std::to_string(port) +
                                       " inside namespace \"" + netns_path_ + "\""));
    EXPECT_THAT(e.message(), HasSubstr("dial tcp4 127.0.0.1:" + std::to_string(port) +
                                       ": connect: connection refused"));
  }
}

TEST_F(ContainerIoKernelTest, DialInAMissingNetnsIsNotFound) {
  try {
    DialInNetns(std::string(kNetnsRunDir) + "/" + prefix() + "-missing", 80);
    FAIL() << "expected NotFound";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kNotFound);
  }
}

}  // namespace
}  // namespace kin
