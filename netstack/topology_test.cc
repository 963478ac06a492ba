// Unit tests (no root): the topology and pod-attachment planners, against
// golden files in testdata/ (KIN_UPDATE_GOLDEN=1 rewrites them).
#include "netstack/topology.h"

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include "testing/golden.h"

namespace kin::netstack {
namespace {

using ::testing::HasSubstr;

void ExpectGolden(const std::string& name, const std::string& actual) {
  testing::ExpectGolden(std::string(KIN_NETSTACK_TESTDATA) + "/" + name, actual);
}

ClusterNetwork ThreeNodes(RoutingMode mode) {
  ClusterNetwork net;
  net.cluster = "dev";
  net.mode = mode;
  net.nodes = {
      {"control-plane", Ipv4Address::Parse("172.18.0.2"), Ipv4Cidr::Parse("10.244.0.0/24")},
      {"worker", Ipv4Address::Parse("172.18.0.3"), Ipv4Cidr::Parse("10.244.1.0/24")},
      {"worker2", Ipv4Address::Parse("172.18.0.4"), Ipv4Cidr::Parse("10.244.2.0/24")},
  };
  return net;
}

std::vector<std::string> CauseFields(const Error& e) {
  std::vector<std::string> out;
  for (const auto& c : e.causes()) out.push_back(c.field);
  return out;
}

TEST(TopologyPlanTest, RoutedGolden) {
  ExpectGolden("topology_routed.golden", PlanTopology(ThreeNodes(RoutingMode::kRouted)).Render());
}

TEST(TopologyPlanTest, HostGwGolden) {
  ExpectGolden("topology_host_gw.golden", PlanTopology(ThreeNodes(RoutingMode::kHostGw)).Render());
}

TEST(TopologyPlanTest, NamesFollowTheDesignOrThePrefix) {
  ClusterNetwork net = ThreeNodes(RoutingMode::kRouted);
  EXPECT_EQ(NetworkNetnsName(net), "kin-dev-net");
  EXPECT_EQ(NodeNetnsName(net, "worker"), "kin-dev-worker");
  net.netns_prefix = "kt1a2b3-";
  NetworkPlan plan = PlanTopology(net);
  ASSERT_EQ(plan.namespaces.size(), 5u);
  EXPECT_EQ(plan.namespaces[0].name, "kt1a2b3-net");
  EXPECT_EQ(plan.namespaces[2].name, "kt1a2b3-worker");
  EXPECT_EQ(plan.namespaces[4].name, "kt1a2b3-ext");
  EXPECT_EQ(ExternalNetnsName(net), "kt1a2b3-ext");
  for (const auto& ns : plan.namespaces) {
    EXPECT_TRUE(ns.create);
    for (const auto& l : ns.links) {
      EXPECT_LE(l.name.size(), 15u) << l.name;
      EXPECT_LE(l.peer.size(), 15u) << l.peer;
      if (!l.peer_netns.empty()) {
        EXPECT_EQ(l.peer_netns.rfind("kt1a2b3-", 0), 0u);
      }
    }
  }
}

TEST(TopologyPlanTest, HostGwAddsRoutesToEveryOtherNodeOnly) {
  NetworkPlan routed = PlanTopology(ThreeNodes(RoutingMode::kRouted));
  NetworkPlan hostgw = PlanTopology(ThreeNodes(RoutingMode::kHostGw));
  for (size_t i = 1; i < 4; i++) {
    EXPECT_EQ(routed.namespaces[i].routes.size(), 1u);  // default only
    ASSERT_EQ(hostgw.namespaces[i].routes.size(), 3u);
    for (const auto& r : hostgw.namespaces[i].routes) {
      ASSERT_TRUE(r.via);
      if (r.dst) {
        // Never a route to the node's own pod CIDR (the bridge holds it).
        EXPECT_NE(*r.dst, hostgw.namespaces[i].addresses[1].address.Masked());
      }
    }
  }
  // The network namespace routes every pod CIDR in both modes.
  EXPECT_EQ(routed.namespaces[0].routes.size(), 3u);
  EXPECT_EQ(hostgw.namespaces[0].routes.size(), 3u);
}

TEST(TopologyPlanTest, RejectsBadDescriptionsWithOneCausePerProblem) {
  ClusterNetwork net = ThreeNodes(RoutingMode::kRouted);
  net.nodes[1].name = "control-plane";                         // duplicate
  net.nodes[1].ip = Ipv4Address::Parse("172.18.1.3");          // outside the underlay
  net.nodes[2].ip = Ipv4Address::Parse("172.18.0.1");          // the network's own
  net.nodes[2].pod_cidr = Ipv4Cidr::Parse("10.244.0.128/25");  // overlaps node 0
  try {
    PlanTopology(net);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalid);
    EXPECT_THAT(CauseFields(e), ::testing::ElementsAre("nodes[1].name", "nodes[1].ip",
                                                       "nodes[2].ip", "nodes[2].podCIDR"));
    EXPECT_THAT(e.message(), HasSubstr("nodes[1].name"));
    EXPECT_THAT(e.message(), HasSubstr("3 more"));
    EXPECT_THAT(e.causes()[3].message, HasSubstr("overlaps node control-plane's 10.244.0.0/24"));
  }
}

TEST(TopologyPlanTest, RejectsMoreBadDescriptions) {
  auto fields = [](const ClusterNetwork& net) {
    try {
      PlanTopology(net);
    } catch (const Error& e) {
      return CauseFields(e);
    }
    return std::vector<std::string>{};
  };
  ClusterNetwork net = ThreeNodes(RoutingMode::kRouted);
  net.nodes[0].pod_cidr = Ipv4Cidr::Parse("10.244.0.1/24");
  EXPECT_THAT(fields(net), ::testing::ElementsAre("nodes[0].podCIDR"));
  net = ThreeNodes(RoutingMode::kRouted);
  net.nodes[0].pod_cidr = Ipv4Cidr::Parse("172.18.0.0/16");
  EXPECT_THAT(fields(net), ::testing::ElementsAre("nodes[0].podCIDR"));
  net = ThreeNodes(RoutingMode::kRouted);
  net.nodes[0].name = "net";
  EXPECT_THAT(fields(net), ::testing::ElementsAre("nodes[0].name"));
  net = ThreeNodes(RoutingMode::kRouted);
  net.cluster = "";
  net.nodes.clear();
  EXPECT_THAT(fields(net), ::testing::ElementsAre("cluster", "nodes"));
}

TEST(TopologyPlanTest, ExternalNetworkAddressesAndRoutes) {
  ClusterNetwork net = ThreeNodes(RoutingMode::kRouted);
  EXPECT_EQ(ExternalGateway(net).ToString(), "203.0.113.1");
  EXPECT_EQ(ExternalServerIp(net).ToString(), "203.0.113.2");
  EXPECT_EQ(ExternalUplinkIp(net).ToString(), "203.0.113.254");
  EXPECT_EQ(NetworkGateway(net).ToString(), "172.18.0.1");
  net.external.subnet = Ipv4Cidr::Parse("192.0.2.64/29");
  EXPECT_EQ(ExternalServerIp(net).ToString(), "192.0.2.66");
  EXPECT_EQ(ExternalUplinkIp(net).ToString(), "192.0.2.70");
  NetworkPlan plan = PlanTopology(net);
  const NetnsPlan& ext = plan.namespaces.back();
  EXPECT_EQ(ext.name, "kin-dev-ext");
  EXPECT_TRUE(ext.create);
  // The internet routes to the underlay only: never to a pod CIDR, so pod
  // traffic that reached it unmasqueraded could not be answered.
  ASSERT_EQ(ext.routes.size(), 1u);
  EXPECT_EQ(ext.routes[0].ToString(), "172.18.0.0/24 via 192.0.2.70 dev eth0");
}

TEST(TopologyPlanTest, ExternalNetworkCanBeTurnedOff) {
  ClusterNetwork net = ThreeNodes(RoutingMode::kRouted);
  net.external.enabled = false;
  NetworkPlan plan = PlanTopology(net);
  ASSERT_EQ(plan.namespaces.size(), 4u);
  for (const auto& l : plan.namespaces[0].links) EXPECT_NE(l.name, kExternalLink);
  EXPECT_EQ(plan.namespaces[0].addresses.size(), 1u);
  // "ext" is then a node name like any other.
  net.nodes[2].name = "ext";
  EXPECT_NO_THROW(PlanTopology(net));
}

TEST(TopologyPlanTest, RejectsBadExternalSubnets) {
  auto fields = [](const ClusterNetwork& net) {
    try {
      PlanTopology(net);
    } catch (const Error& e) {
      return CauseFields(e);
    }
    return std::vector<std::string>{};
  };
  ClusterNetwork net = ThreeNodes(RoutingMode::kRouted);
  net.external.subnet = Ipv4Cidr::Parse("203.0.113.1/24");
  EXPECT_THAT(fields(net), ::testing::ElementsAre("external.subnet"));
  net.external.subnet = Ipv4Cidr::Parse("203.0.113.0/30");
  EXPECT_THAT(fields(net), ::testing::ElementsAre("external.subnet"));
  net.external.subnet = Ipv4Cidr::Parse("172.18.0.0/16");
  EXPECT_THAT(fields(net), ::testing::ElementsAre("external.subnet"));
  net = ThreeNodes(RoutingMode::kRouted);
  net.external.subnet = Ipv4Cidr::Parse("10.244.1.0/28");
  EXPECT_THAT(fields(net), ::testing::ElementsAre("nodes[1].podCIDR"));
  net = ThreeNodes(RoutingMode::kRouted);
  net.nodes[0].name = "ext";
  EXPECT_THAT(fields(net), ::testing::ElementsAre("nodes[0].name"));
}

TEST(TopologyPlanTest, LoadBalancerRangeGolden) {
  ClusterNetwork net = ThreeNodes(RoutingMode::kRouted);
  net.load_balancer = Ipv4Cidr::Parse("198.51.100.0/24");
  NetworkPlan plan = PlanTopology(net);
  ExpectGolden("topology_load_balancer.golden", plan.Render());
  // The internet reaches LB IPs through the network, which hashes flows
  // over the nodes by ports too.
  const NetnsPlan& ext = plan.namespaces.back();
  ASSERT_EQ(ext.routes.size(), 2u);
  EXPECT_EQ(ext.routes[1].ToString(), "198.51.100.0/24 via 203.0.113.254 dev eth0");
  bool hash_policy = false;
  for (const auto& s : plan.namespaces[0].sysctls) {
    hash_policy |= s.key == "net.ipv4.fib_multipath_hash_policy" && s.value == "1";
  }
  EXPECT_TRUE(hash_policy);
}

TEST(TopologyPlanTest, RejectsBadLoadBalancerRanges) {
  auto message = [](const ClusterNetwork& net) -> std::string {
    try {
      PlanTopology(net);
    } catch (const Error& e) {
      EXPECT_THAT(CauseFields(e), ::testing::ElementsAre("loadBalancer"));
      return e.message();
    }
    return "";
  };
  ClusterNetwork net = ThreeNodes(RoutingMode::kRouted);
  net.load_balancer = Ipv4Cidr::Parse("198.51.100.1/24");
  EXPECT_THAT(message(net), HasSubstr("host bits are set"));
  net.load_balancer = Ipv4Cidr::Parse("172.18.0.128/25");
  EXPECT_THAT(message(net), HasSubstr("overlaps the underlay"));
  net.load_balancer = Ipv4Cidr::Parse("203.0.113.0/25");
  EXPECT_THAT(message(net), HasSubstr("overlaps the external subnet"));
  net.load_balancer = Ipv4Cidr::Parse("10.244.2.0/25");
  EXPECT_THAT(message(net), HasSubstr("overlaps node worker2's 10.244.2.0/24"));
}

TEST(TopologyPlanTest, RoutingModeNames) {
  EXPECT_EQ(ParseRoutingMode("routed"), RoutingMode::kRouted);
  EXPECT_EQ(ParseRoutingMode("host-gw"), RoutingMode::kHostGw);
  EXPECT_EQ(ToString(RoutingMode::kHostGw), "host-gw");
  try {
    ParseRoutingMode("vxlan");
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.message(), HasSubstr("\"vxlan\""));
  }
}

PodInterface SomePod() {
  PodInterface pod;
  pod.node_netns = "kin-dev-worker";
  pod.pod_netns = "kin-dev-pod-0f3c";
  pod.host_veth = HostVethName("5f0c3e2a-7d1b-4c59-9d0e-0c6a1f9b7e21");
  pod.address = Ipv4Cidr::Parse("10.244.1.5/24");
  pod.gateway = Ipv4Address::Parse("10.244.1.1");
  return pod;
}

TEST(PodAttachPlanTest, Golden) {
  ExpectGolden("pod_attach.golden", PlanPodAttach(SomePod()).Render());
}

TEST(PodAttachPlanTest, SlashThirtyTwoAddressGetsAnOnlinkDefaultRoute) {
  PodInterface pod = SomePod();
  pod.address = Ipv4Cidr::Parse("10.244.1.5/32");
  pod.mac = "02:42:0a:f4:01:05";
  NetworkPlan plan = PlanPodAttach(pod);
  ASSERT_EQ(plan.namespaces.size(), 2u);
  ASSERT_EQ(plan.namespaces[1].routes.size(), 1u);
  EXPECT_EQ(plan.namespaces[1].routes[0].ToString(), "default via 10.244.1.1 dev eth0 onlink");
  EXPECT_EQ(plan.namespaces[0].links[0].peer_mac, "02:42:0a:f4:01:05");
  EXPECT_FALSE(plan.namespaces[0].create);
  EXPECT_FALSE(plan.namespaces[1].create);
}

TEST(PodAttachPlanTest, RejectsBadInterfaces) {
  PodInterface pod = SomePod();
  pod.host_veth = "a-name-longer-than-15";
  pod.address = Ipv4Cidr::Parse("10.244.1.0/24");
  try {
    PlanPodAttach(pod);
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(CauseFields(e), ::testing::ElementsAre("hostVeth", "address"));
  }
  pod = SomePod();
  pod.gateway = pod.address.address();
  EXPECT_THROW(PlanPodAttach(pod), Error);
}

TEST(PodAttachPlanTest, HostVethNameIsStableShortAndSpread) {
  std::string a = HostVethName("5f0c3e2a-7d1b-4c59-9d0e-0c6a1f9b7e21");
  EXPECT_EQ(a, HostVethName("5f0c3e2a-7d1b-4c59-9d0e-0c6a1f9b7e21"));
  EXPECT_EQ(a.size(), 12u);
  EXPECT_EQ(a.rfind("veth", 0), 0u);
  std::set<std::string> names;
  for (int i = 0; i < 1000; i++) names.insert(HostVethName("uid-" + std::to_string(i)));
  EXPECT_EQ(names.size(), 1000u);
}

}  // namespace
}  // namespace kin::netstack
