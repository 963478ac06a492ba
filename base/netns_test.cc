// Kernel tests (root): real network namespaces, and the fixture's cleanup.
#include "base/netns.h"

#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cstring>

#include <gtest/gtest.h>

#include "base/error.h"
#include "base/process.h"
#include "testing/kernel_fixture.h"

namespace kin {
namespace {

using testing::KernelTest;

class NetnsTest : public KernelTest {};

TEST_F(NetnsTest, CreatePersistsUnderRunNetnsAndIpSeesIt) {
  std::string name = Name("-a");
  {
    NamedNetns ns = NamedNetns::Create(name);
    EXPECT_NE(ns.ns().inode(), Netns::Current().inode());
    auto names = ListNamedNetns(prefix());
    ASSERT_EQ(names.size(), 1u);
    EXPECT_EQ(names[0], name);
    // `ip netns exec` works as the seed shows: only lo inside, down.
    CommandResult r = RunCommand({"ip", "netns", "exec", name, "ip", "-o", "link"});
    ASSERT_TRUE(r.status.success()) << r.err;
    EXPECT_NE(r.out.find("1: lo:"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("2:"), std::string::npos) << r.out;
  }
  // The owner removed it.
  EXPECT_TRUE(ListNamedNetns(prefix()).empty());
  EXPECT_THROW(Netns::Open(name), Error);
}

TEST_F(NetnsTest, CreateTwiceIsAlreadyExists) {
  std::string name = Name("-b");
  NamedNetns ns = NamedNetns::Create(name);
  try {
    NamedNetns::Create(name);
    FAIL() << "expected AlreadyExists";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kAlreadyExists);
    EXPECT_NE(e.message().find(name), std::string::npos) << e.message();
  }
}

TEST_F(NetnsTest, EnterOnThisThreadAndLeave) {
  NamedNetns ns = NamedNetns::Create(Name("-c"));
  unsigned long home = Netns::Current().inode();
  {
    NetnsEnter enter(ns.ns());
    EXPECT_EQ(Netns::Current().inode(), ns.ns().inode());
    // Bring lo up inside: an ioctl on a socket made in the namespace.
    int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(s, 0);
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ);
    ASSERT_EQ(::ioctl(s, SIOCGIFFLAGS, &ifr), 0);
    ifr.ifr_flags |= IFF_UP;
    ASSERT_EQ(::ioctl(s, SIOCSIFFLAGS, &ifr), 0);
    ::close(s);
  }
  EXPECT_EQ(Netns::Current().inode(), home);
  CommandResult r =
      RunCommand({"ip", "netns", "exec", ns.name(), "ip", "-o", "link", "show", "lo"});
  EXPECT_NE(r.out.find("UP"), std::string::npos) << r.out;
}

TEST_F(NetnsTest, RunInNetnsLeavesCallerAlone) {
  NamedNetns ns = NamedNetns::Create(Name("-d"));
  unsigned long seen = 0;
  RunInNetns(ns.ns(), [&] { seen = Netns::Current().inode(); });
  EXPECT_EQ(seen, ns.ns().inode());
  EXPECT_NE(Netns::Current().inode(), seen);
  EXPECT_THROW(RunInNetns(ns.ns(), [] { throw Error::Internal("inside"); }), Error);
}

TEST_F(NetnsTest, BadNamesAreRejected) {
  EXPECT_THROW(NamedNetns::Create("a/b"), Error);
  EXPECT_THROW(NamedNetns::Create(""), Error);
  EXPECT_THROW(Netns::Open(".."), Error);
}

// The fixture's own contract: whatever a test leaves behind with its prefix
// — a netns, a veth pair, an nft table, a process — is found and removed.
TEST_F(NetnsTest, FixtureFindsAndRemovesLeftovers) {
  NamedNetns::Create(Name("-e")).Release();
  ASSERT_TRUE(
      RunCommand({"ip", "link", "add", Name("-v0"), "type", "veth", "peer", "name", Name("-v1")})
          .status.success());
  ASSERT_TRUE(RunCommand({"nft", "add", "table", "ip", Name("-t", 64)}).status.success());
  SpawnOptions o;
  o.argv = {"bash", "-c", "exec -a " + prefix() + " sleep 300"};  // argv[0] carries the prefix
  ChildProcess p = ChildProcess::Spawn(o);
  pid_t pid = p.Release();

  std::vector<std::string> expected = {"netns " + Name("-e"), "link " + Name("-v0"),
                                       "link " + Name("-v1"), "nft table ip " + Name("-t", 64),
                                       "process " + std::to_string(pid)};
  std::string all;
  // Poll: while bash execs, /proc/PID/cmdline can read empty for a moment.
  bool found = testing::Eventually([&] {
    all.clear();
    for (auto& l : testing::KernelObjectsWithPrefix(prefix())) all += l + "\n";
    for (auto& e : expected) {
      if (all.find(e + "\n") == std::string::npos) return false;
    }
    return true;
  });
  EXPECT_TRUE(found) << all;

  testing::RemoveKernelObjectsWithPrefix(prefix());
  EXPECT_TRUE(testing::KernelObjectsWithPrefix(prefix()).empty());
  // The released sleep was our child: reap it so it is not a zombie.
  ::waitpid(pid, nullptr, 0);
}

}  // namespace
}  // namespace kin
