// Unit tests (no root): the host-access link in the topology plan (golden),
// its name and address, and the clash check against the host's routes.
#include "netstack/host_access.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/error.h"
#include "testing/golden.h"

namespace kin::netstack {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

ClusterNetwork TwoNodesWithHostAccess() {
  ClusterNetwork net;
  net.cluster = "dev";
  net.nodes = {{"control-plane", Ipv4Address::Parse("172.18.0.2"), Ipv4Cidr::Parse("10.244.0.0/24")},
               {"worker", Ipv4Address::Parse("172.18.0.3"), Ipv4Cidr::Parse("10.244.1.0/24")}};
  net.load_balancer = Ipv4Cidr::Parse("198.51.100.0/24");
  net.host_access.enabled = true;
  return net;
}

RouteInfo HostRoute(const char* dst, const char* dev) {
  RouteInfo r;
  r.dst = Ipv4Cidr::Parse(dst);
  r.dev = dev;
  return r;
}

TEST(HostAccessPlanTest, Golden) {
  testing::ExpectGolden(std::string(KIN_NETSTACK_TESTDATA) + "/topology_host_access.golden",
                        PlanTopology(TwoNodesWithHostAccess()).Render());
}

TEST(HostAccessPlanTest, OffMeansNothingOnTheHost) {
  ClusterNetwork net = TwoNodesWithHostAccess();
  net.host_access.enabled = false;
  for (const NetnsPlan& ns : PlanTopology(net).namespaces) {
    EXPECT_NE(ns.name, kHostNetns);
    for (const LinkPlan& l : ns.links) EXPECT_NE(l.name, kHostAccessPeer);
  }
}

TEST(HostAccessPlanTest, LinkNameAndAddress) {
  ClusterNetwork net = TwoNodesWithHostAccess();
  EXPECT_EQ(HostAccessLinkName(net), "kin-dev");
  EXPECT_EQ(HostAccessIp(net).ToString(), "172.18.0.254");
  net.underlay = Ipv4Cidr::Parse("10.1.2.0/28");
  EXPECT_EQ(HostAccessIp(net).ToString(), "10.1.2.14");
  // Too long for an interface name: a stable hash, distinct per cluster.
  net.cluster = "a-rather-long-cluster-name";
  const std::string hashed = HostAccessLinkName(net);
  EXPECT_EQ(hashed.size(), 12u);
  EXPECT_THAT(hashed, ::testing::StartsWith("kin-"));
  EXPECT_EQ(HostAccessLinkName(net), hashed);
  net.cluster = "a-rather-long-cluster-name2";
  EXPECT_NE(HostAccessLinkName(net), hashed);
  net.netns_prefix = "kt1a2b3-";
  EXPECT_EQ(HostAccessLinkName(net), "kt1a2b3");
}

TEST(HostAccessPlanTest, ANodeMayNotHoldTheHostsAddress) {
  ClusterNetwork net = TwoNodesWithHostAccess();
  net.nodes[1].ip = Ipv4Address::Parse("172.18.0.254");
  try {
    PlanTopology(net);
    FAIL() << "planned a node on the host-access address";
  } catch (const Error& e) {
    EXPECT_THAT(e.message(), HasSubstr("nodes[1].ip"));
    EXPECT_THAT(e.message(), HasSubstr("the host-access link holds it"));
  }
}

TEST(HostRouteClashesTest, NamesEveryOverlapAndIgnoresDefaultAndOwnRoutes) {
  ClusterNetwork net = TwoNodesWithHostAccess();
  std::vector<RouteInfo> routes = {HostRoute("0.0.0.0/0", "eth0"),
                                   HostRoute("10.0.0.0/8", "eth0"),
                                   HostRoute("172.18.0.0/24", "kin-dev"),
                                   HostRoute("198.51.100.0/24", "kin-dev")};
  EXPECT_THAT(HostRouteClashes(HostAccessRanges(net), routes, "kin-dev"), IsEmpty());

  routes.push_back(HostRoute("172.16.0.0/12", "docker0"));
  routes.push_back(HostRoute("198.51.100.7/32", "vpn0"));
  EXPECT_THAT(HostRouteClashes(HostAccessRanges(net), routes, "kin-dev"),
              ElementsAre("networking.underlay 172.18.0.0/24 overlaps the host's route "
                          "172.16.0.0/12 dev docker0",
                          "networking.loadBalancerSubnet 198.51.100.0/24 overlaps the host's "
                          "route 198.51.100.7/32 dev vpn0"));
  // Another cluster's link is not this one's.
  EXPECT_THAT(HostRouteClashes(HostAccessRanges(net), {HostRoute("172.18.0.0/24", "kin-other")},
                               "kin-dev"),
              ElementsAre(HasSubstr("172.18.0.0/24 dev kin-other")));
}

}  // namespace
}  // namespace kin::netstack
