// Unit tests (no root): the LoadBalancer route planner, against a golden
// file in testdata/ (KIN_UPDATE_GOLDEN=1 rewrites it).
#include "netstack/lb_routes.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/error.h"
#include "testing/golden.h"

namespace kin::netstack {
namespace {

using ::testing::HasSubstr;

Ipv4Address A(const char* s) { return Ipv4Address::Parse(s); }
const Ipv4Cidr kPool = Ipv4Cidr::Parse("198.51.100.0/24");

RouteInfo Have(const char* dst, std::vector<Ipv4Address> hops) {
  RouteInfo r;
  r.dst = Ipv4Cidr::Parse(dst);
  r.dev = "underlay";
  if (hops.size() == 1) {
    r.via = hops[0];
  } else {
    r.nexthops = hops;
  }
  return r;
}

TEST(LbRoutesPlanTest, Golden) {
  std::vector<LbRoute> want = {
      // New, three nodes (given unsorted, with a duplicate).
      {A("198.51.100.1"), {A("172.18.0.4"), A("172.18.0.2"), A("172.18.0.3"), A("172.18.0.2")}},
      // Unchanged (the kernel lists next hops in its own order).
      {A("198.51.100.2"), {A("172.18.0.2"), A("172.18.0.3")}},
      // Down to one node: a plain route via it.
      {A("198.51.100.3"), {A("172.18.0.3")}},
      // No node (Local, no ready endpoint): no route.
      {A("198.51.100.4"), {}},
  };
  std::vector<RouteInfo> have = {
      Have("198.51.100.2/32", {A("172.18.0.3"), A("172.18.0.2")}),
      Have("198.51.100.3/32", {A("172.18.0.2"), A("172.18.0.3")}),
      Have("198.51.100.4/32", {A("172.18.0.2")}),
      Have("198.51.100.9/32", {A("172.18.0.2")}),  // a Service gone
      // Not the pool's: left alone.
      Have("10.244.1.0/24", {A("172.18.0.3")}),
      Have("198.51.100.0/24", {A("172.18.0.3")}),
      Have("203.0.113.0/24", {A("172.18.0.3")}),
  };
  LbRoutesPlan plan = PlanLbRoutes(want, have, kPool, "underlay");
  testing::ExpectGolden(std::string(KIN_NETSTACK_TESTDATA) + "/lb_routes.golden", plan.Render());
  EXPECT_TRUE(PlanLbRoutes(want, have, kPool, "underlay").replace.size() == 2);
}

TEST(LbRoutesPlanTest, NothingToDoWhenTheKernelMatches) {
  std::vector<LbRoute> want = {{A("198.51.100.7"), {A("172.18.0.2"), A("172.18.0.3")}}};
  std::vector<RouteInfo> have = {Have("198.51.100.7/32", {A("172.18.0.3"), A("172.18.0.2")})};
  EXPECT_TRUE(PlanLbRoutes(want, have, kPool, "underlay").empty());
  EXPECT_EQ(PlanLbRoutes({}, {}, kPool, "underlay").Render(), "");
}

TEST(LbRoutesPlanTest, RejectsAddressesOutsideThePool) {
  try {
    PlanLbRoutes({{A("192.0.2.1"), {A("172.18.0.2")}}}, {}, kPool, "underlay");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalid);
    EXPECT_THAT(e.message(), HasSubstr("192.0.2.1: not in the pool 198.51.100.0/24"));
  }
}

}  // namespace
}  // namespace kin::netstack
