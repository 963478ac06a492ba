// Unit tests (no root): the egress masquerade rule text, against a golden
// file in testdata/ (KIN_UPDATE_GOLDEN=1 rewrites it).
#include "netstack/egress.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/error.h"
#include "testing/golden.h"

namespace kin::netstack {
namespace {

using ::testing::HasSubstr;

void ExpectGolden(const std::string& name, const std::string& actual) {
  testing::ExpectGolden(std::string(KIN_NETSTACK_TESTDATA) + "/" + name, actual);
}

EgressMasquerade Defaults() {
  EgressMasquerade e;
  e.pod_range = Ipv4Cidr::Parse("10.244.0.0/16");
  e.cluster_ranges = {Ipv4Cidr::Parse("10.244.0.0/16"), Ipv4Cidr::Parse("10.96.0.0/16")};
  return e;
}

TEST(EgressMasqueradeTest, Golden) {
  ExpectGolden("egress_masquerade.golden", PlanEgressMasquerade(Defaults()));
}

TEST(EgressMasqueradeTest, ReplacesItsOwnTableOnly) {
  std::string script = PlanEgressMasquerade(Defaults());
  // Declared, deleted and made again in one transaction: idempotent.
  EXPECT_EQ(script.rfind("add table ip kin-egress\ndelete table ip kin-egress\n", 0), 0u);
  EXPECT_THAT(script, ::testing::Not(HasSubstr("flush ruleset")));
  EXPECT_THAT(script, HasSubstr("type nat hook postrouting priority srcnat;"));
}

TEST(EgressMasqueradeTest, OtherRangesAndUplink) {
  EgressMasquerade e = Defaults();
  e.pod_range = Ipv4Cidr::Parse("10.1.0.0/16");
  e.cluster_ranges = {Ipv4Cidr::Parse("10.1.0.0/16"), Ipv4Cidr::Parse("10.2.0.0/20")};
  e.uplink = "uplink0";
  EXPECT_THAT(PlanEgressMasquerade(e),
              HasSubstr("ip saddr 10.1.0.0/16 ip daddr != { 10.1.0.0/16, 10.2.0.0/20 } "
                        "oifname \"uplink0\" masquerade\n"));
}

TEST(EgressMasqueradeTest, RejectsBadInput) {
  EgressMasquerade e = Defaults();
  e.pod_range = Ipv4Cidr::Parse("10.244.0.1/16");
  EXPECT_THROW(PlanEgressMasquerade(e), Error);
  e = Defaults();
  e.cluster_ranges.push_back(Ipv4Cidr::Parse("10.96.0.1/16"));
  EXPECT_THROW(PlanEgressMasquerade(e), Error);
  e = Defaults();
  e.uplink = "eth0\" accept";
  try {
    PlanEgressMasquerade(e);
    FAIL();
  } catch (const Error& err) {
    EXPECT_EQ(err.code(), Code::kInvalid);
    EXPECT_THAT(err.message(), HasSubstr("uplink"));
  }
}

}  // namespace
}  // namespace kin::netstack
