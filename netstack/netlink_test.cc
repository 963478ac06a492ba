// Unit tests (no root): the netlink error mapping, route text, sysctl paths.
#include "netstack/netlink.h"

#include <cerrno>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "netstack/sysctl.h"

namespace kin::netstack {
namespace {

using ::testing::HasSubstr;

TEST(NetlinkErrorTest, ContextThenReasonThenKernelDetail) {
  Error e = NetlinkError(EEXIST, "create veth `kt1a2b3-v0`");
  EXPECT_EQ(e.message(), "create veth `kt1a2b3-v0`: File exists");
  EXPECT_EQ(e.code(), Code::kAlreadyExists);
  EXPECT_EQ(e.sys_errno(), EEXIST);

  Error d = NetlinkError(EINVAL, "add route default via 10.0.0.1", "Nexthop has invalid gateway");
  EXPECT_EQ(d.message(),
            "add route default via 10.0.0.1: Invalid argument (Nexthop has invalid gateway)");
  EXPECT_EQ(d.code(), Code::kInvalid);
}

TEST(NetlinkErrorTest, NothingByThatNameIsNotFound) {
  for (int err : {ENODEV, ENOENT, ESRCH, EADDRNOTAVAIL}) {
    EXPECT_EQ(NetlinkError(err, "x").code(), Code::kNotFound) << err;
  }
  EXPECT_EQ(NetlinkError(EPERM, "x").code(), Code::kForbidden);
  EXPECT_EQ(NetlinkError(ENOBUFS, "x").code(), Code::kInternal);
}

TEST(RouteTest, TextLikeIpRoute) {
  Route r;
  r.via = Ipv4Address::Parse("172.18.0.1");
  r.dev = "eth0";
  EXPECT_EQ(r.ToString(), "default via 172.18.0.1 dev eth0");
  r.dst = Ipv4Cidr::Parse("10.244.2.0/24");
  r.onlink = true;
  EXPECT_EQ(r.ToString(), "10.244.2.0/24 via 172.18.0.1 dev eth0 onlink");
  Route link;
  link.dst = Ipv4Cidr::Parse("10.0.0.0/8");
  link.dev = "cbr0";
  link.scope_link = true;
  link.src = Ipv4Address::Parse("10.0.0.1");
  EXPECT_EQ(link.ToString(), "10.0.0.0/8 dev cbr0 scope link src 10.0.0.1");
}

TEST(SysctlTest, PathsOnlyUnderProcSysNet) {
  EXPECT_EQ(SysctlPath("net.ipv4.ip_forward"), "/proc/sys/net/ipv4/ip_forward");
  EXPECT_EQ(SysctlPath("net.bridge.bridge-nf-call-iptables"),
            "/proc/sys/net/bridge/bridge-nf-call-iptables");
  EXPECT_EQ(SysctlPath("net/ipv4/conf/eth0.100/forwarding"),
            "/proc/sys/net/ipv4/conf/eth0.100/forwarding");
  for (const char* bad : {"", "kernel.hostname", "net", "net.", "net..ipv4", "net/../kernel/x",
                          "vm.swappiness", "net/ipv4/.."}) {
    try {
      SysctlPath(bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kInvalid);
      EXPECT_THAT(e.message(), HasSubstr("\"" + std::string(bad) + "\""));
    }
  }
}

}  // namespace
}  // namespace kin::netstack
