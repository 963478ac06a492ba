// Unit tests (no root): the service proxy's plain description: keys, modes
// and the UDP conntrack flushes between two states.
#include "netstack/service_proxy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/error.h"
#include "netstack/conntrack.h"

namespace kin::netstack {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

Ipv4Address A(const char* s) { return Ipv4Address::Parse(s); }

TEST(ServiceProxyTest, KeyAndNames) {
  ProxyServicePort p;
  p.ns = "default";
  p.name = "web";
  EXPECT_EQ(p.Key(), "default/web:");
  p.port_name = "http";
  EXPECT_EQ(p.Key(), "default/web:http");
  EXPECT_EQ(ToString(L4Protocol::kSctp), "sctp");
  EXPECT_EQ(ToString(ProxyMode::kNftables), "nftables");
  EXPECT_EQ(ToString(ProxyMode::kIptables), "iptables");
}

TEST(ServiceProxyTest, ParseProxyMode) {
  EXPECT_EQ(ParseProxyMode("nftables"), ProxyMode::kNftables);
  EXPECT_EQ(ParseProxyMode("iptables"), ProxyMode::kIptables);
  try {
    ParseProxyMode("ipvs");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalid);
    EXPECT_THAT(e.message(), HasSubstr("CONFIG_IP_VS is not set"));
    EXPECT_THAT(e.message(), HasSubstr("networking.proxyMode"));
  }
  try {
    ParseProxyMode("userspace", "spec.mode");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalid);
    EXPECT_THAT(e.message(), HasSubstr("spec.mode"));
    EXPECT_THAT(e.message(), HasSubstr("\"userspace\""));
    ASSERT_EQ(e.causes().size(), 1u);
    EXPECT_EQ(e.causes()[0].field, "spec.mode");
  }
}

ProxyServicePort Dns() {
  ProxyServicePort p;
  p.ns = "kube-system";
  p.name = "kube-dns";
  p.port_name = "dns";
  p.protocol = L4Protocol::kUdp;
  p.cluster_ip = A("10.96.0.10");
  p.port = 53;
  p.node_port = 30053;
  p.cluster_endpoints = {{A("10.244.1.2"), 53}, {A("10.244.2.3"), 53}};
  return p;
}

ProxyState With(std::vector<ProxyServicePort> ports) {
  ProxyState s;
  for (auto& p : ports) s.ports[p.Key()] = p;
  return s;
}

TEST(ConntrackFlushTest, RemovedUdpEndpoint) {
  ProxyServicePort before = Dns(), after = Dns();
  after.cluster_endpoints.pop_back();
  EXPECT_THAT(PlanConntrackFlush(With({before}), With({after})),
              ElementsAre(ConntrackFlush{L4Protocol::kUdp, std::nullopt, 30053, A("10.244.2.3")},
                          ConntrackFlush{L4Protocol::kUdp, A("10.96.0.10"), 53, A("10.244.2.3")}));
  // Nothing changed, or a TCP port: nothing to flush.
  EXPECT_TRUE(PlanConntrackFlush(With({before}), With({before})).empty());
  before.protocol = after.protocol = L4Protocol::kTcp;
  EXPECT_TRUE(PlanConntrackFlush(With({before}), With({after})).empty());
}

TEST(ConntrackFlushTest, NewlyActiveAndDeletedServices) {
  ProxyServicePort none = Dns();
  none.cluster_endpoints.clear();
  none.node_port = 0;
  ProxyServicePort some = none;
  some.cluster_endpoints = {{A("10.244.1.2"), 53}};
  EXPECT_THAT(PlanConntrackFlush(With({none}), With({some})),
              ElementsAre(ConntrackFlush{L4Protocol::kUdp, A("10.96.0.10"), 53, std::nullopt}));
  // A new service counts as newly active; a deleted one's endpoints are gone.
  EXPECT_THAT(PlanConntrackFlush(ProxyState{}, With({some})),
              ElementsAre(ConntrackFlush{L4Protocol::kUdp, A("10.96.0.10"), 53, std::nullopt}));
  EXPECT_THAT(PlanConntrackFlush(With({some}), ProxyState{}),
              ElementsAre(ConntrackFlush{L4Protocol::kUdp, A("10.96.0.10"), 53, A("10.244.1.2")}));
}

TEST(ConntrackFlushTest, Matches) {
  ConntrackFlush f{L4Protocol::kUdp, A("10.96.0.10"), 53, A("10.244.1.2")};
  EXPECT_TRUE(ConntrackFlushMatches(f, L4Protocol::kUdp, A("10.96.0.10"), 53, A("10.244.1.2")));
  EXPECT_FALSE(ConntrackFlushMatches(f, L4Protocol::kTcp, A("10.96.0.10"), 53, A("10.244.1.2")));
  EXPECT_FALSE(ConntrackFlushMatches(f, L4Protocol::kUdp, A("10.96.0.11"), 53, A("10.244.1.2")));
  EXPECT_FALSE(ConntrackFlushMatches(f, L4Protocol::kUdp, A("10.96.0.10"), 54, A("10.244.1.2")));
  EXPECT_FALSE(ConntrackFlushMatches(f, L4Protocol::kUdp, A("10.96.0.10"), 53, A("10.244.1.3")));
  ConntrackFlush any_dst{L4Protocol::kUdp, std::nullopt, 30053, std::nullopt};
  EXPECT_TRUE(
      ConntrackFlushMatches(any_dst, L4Protocol::kUdp, A("172.18.0.2"), 30053, A("1.2.3.4")));
}

}  // namespace
}  // namespace kin::netstack
