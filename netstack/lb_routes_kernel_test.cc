// Kernel tests (root): LoadBalancer routes with equal-cost multipath next
// hops in a namespace of the test's own, and traffic spread by them.
// All traffic stays inside namespaces these tests create.
#include "netstack/lb_routes.h"

#include <algorithm>
#include <optional>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/error.h"
#include "base/netns.h"
#include "base/process.h"
#include "netstack/sysctl.h"
#include "testing/kernel_fixture.h"

namespace kin::netstack {
namespace {

using ::testing::HasSubstr;
using testing::KernelTest;

Ipv4Address A(const char* s) { return Ipv4Address::Parse(s); }
const Ipv4Cidr kPool = Ipv4Cidr::Parse("198.51.100.0/24");

class LbRoutesKernelTest : public KernelTest {
 protected:
  void SetUp() override {
    KernelTest::SetUp();
    if (IsSkipped()) return;
    ns_ = NamedNetns::Create(Name("net"));
    NetlinkSocket sock = NetlinkSocket::OpenIn(ns_->ns());
    NetlinkBatch(sock)
        .CreateBridge("underlay")
        .SetUp("underlay")
        .AddAddress("underlay", Ipv4Cidr::Parse("172.18.0.1/24"))
        .Commit();
  }
  // The pool's routes as the kernel holds them, "ip/32: hop hop ...".
  std::vector<std::string> PoolRoutes() {
    std::vector<std::string> out;
    for (const RouteInfo& r : NetlinkSocket::OpenIn(Netns::Open(ns_->name())).ListRoutes()) {
      if (!kPool.Contains(r.dst.address())) continue;
      std::string s = r.dst.ToString() + ":";
      std::vector<Ipv4Address> hops = r.nexthops;
      if (hops.empty() && r.via) hops.push_back(*r.via);
      std::sort(hops.begin(), hops.end());
      for (auto h : hops) s += " " + h.ToString();
      s += " dev " + r.dev;
      out.push_back(s);
    }
    return out;
  }
  std::optional<NamedNetns> ns_;
};

TEST_F(LbRoutesKernelTest, SyncsMultipathRoutesAndRemovesStaleOnes) {
  LbRouteTable table(ns_->name(), "underlay", kPool);
  table.Sync({{A("198.51.100.1"), {A("172.18.0.2"), A("172.18.0.3"), A("172.18.0.4")}},
              {A("198.51.100.2"), {A("172.18.0.3")}}});
  EXPECT_THAT(PoolRoutes(), ::testing::UnorderedElementsAre(
                                "198.51.100.1/32: 172.18.0.2 172.18.0.3 172.18.0.4 dev underlay",
                                "198.51.100.2/32: 172.18.0.3 dev underlay"));
  // Again: nothing to do (the kernel's multipath route reads back equal).
  EXPECT_TRUE(table
                  .Sync({{A("198.51.100.1"), {A("172.18.0.4"), A("172.18.0.3"), A("172.18.0.2")}},
                         {A("198.51.100.2"), {A("172.18.0.3")}}})
                  .empty());
  // Next hops change (one request), a route goes, one becomes multipath.
  LbRoutesPlan plan = table.Sync({{A("198.51.100.1"), {A("172.18.0.2"), A("172.18.0.4")}},
                                  {A("198.51.100.3"), {A("172.18.0.2"), A("172.18.0.3")}}});
  EXPECT_EQ(plan.replace.size(), 2u);
  EXPECT_EQ(plan.remove.size(), 1u);
  EXPECT_THAT(PoolRoutes(), ::testing::UnorderedElementsAre(
                                "198.51.100.1/32: 172.18.0.2 172.18.0.4 dev underlay",
                                "198.51.100.3/32: 172.18.0.2 172.18.0.3 dev underlay"));
  // A new table (a restarted kin serve) takes the routes over.
  LbRouteTable again(ns_->name(), "underlay", kPool);
  again.Sync({{A("198.51.100.3"), {A("172.18.0.2"), A("172.18.0.3")}}});
  EXPECT_THAT(PoolRoutes(),
              ::testing::ElementsAre("198.51.100.3/32: 172.18.0.2 172.18.0.3 dev underlay"));
  again.Clear();
  EXPECT_TRUE(PoolRoutes().empty());
  again.Clear();  // nothing left: fine
}

TEST_F(LbRoutesKernelTest, ErrorsNameTheNamespace) {
  LbRouteTable gone(Name("none"), "underlay", kPool);
  try {
    gone.Sync({});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.message(), HasSubstr("netns `" + Name("none") + "`"));
  }
  EXPECT_THROW(gone.Clear(), Error);
  // A next hop on no link of the namespace: the kernel refuses.
  LbRouteTable table(ns_->name(), "underlay", kPool);
  try {
    table.Sync({{A("198.51.100.1"), {A("10.9.9.9"), A("10.9.9.8")}}});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.message(), HasSubstr("netns `" + ns_->name() + "`"));
    EXPECT_THAT(e.message(), HasSubstr("198.51.100.1/32"));
  }
  // A device the namespace does not have.
  LbRouteTable nodev(ns_->name(), "nothere", kPool);
  EXPECT_THROW(nodev.Sync({{A("198.51.100.1"), {A("172.18.0.2")}}}), Error);
  EXPECT_TRUE(PoolRoutes().empty());
}

TEST_F(LbRoutesKernelTest, AnOlderNetworkGetsTheRangeRouteAndFlowHashing) {
  ClusterNetwork net;
  net.cluster = "test";
  net.netns_prefix = prefix() + "-";
  net.nodes = {{"a", A("172.18.0.2"), Ipv4Cidr::Parse("10.244.1.0/24")}};
  // Made without LoadBalancers, as before they existed.
  NetworkPlan old = PlanTopology(net);
  ApplyPlan(old);
  net.load_balancer = kPool;
  EnsureLoadBalancerRange(net);
  EnsureLoadBalancerRange(net);  // again: nothing changes
  bool routed = false;
  for (const RouteInfo& r :
       NetlinkSocket::OpenIn(Netns::Open(ExternalNetnsName(net))).ListRoutes()) {
    routed |= r.ToString() == "198.51.100.0/24 via 203.0.113.254 dev eth0";
  }
  EXPECT_TRUE(routed);
  EXPECT_EQ(ReadSysctl(Netns::Open(NetworkNetnsName(net)), "net.ipv4.fib_multipath_hash_policy"),
            "1");
  RemovePlan(old);
  // Gone namespaces: an error naming one.
  try {
    EnsureLoadBalancerRange(net);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.message(), HasSubstr("netns `" + prefix() + "-"));
  }
  // Nothing to do without a range.
  net.load_balancer.reset();
  EXPECT_NO_THROW(EnsureLoadBalancerRange(net));
}

}  // namespace
}  // namespace kin::netstack
