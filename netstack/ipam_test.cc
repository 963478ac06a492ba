// Unit tests (no root): IPv4 values and the pod address allocator.
#include "netstack/ipam.h"

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/error.h"

namespace kin::netstack {
namespace {

using ::testing::HasSubstr;

Ipv4Address A(const char* s) { return Ipv4Address::Parse(s); }
Ipv4Cidr C(const char* s) { return Ipv4Cidr::Parse(s); }

std::string InvalidMessage(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalid) << e.message();
    return e.message();
  }
  ADD_FAILURE() << "expected an Invalid error";
  return "";
}

TEST(Ipv4AddressTest, ParsesAndPrints) {
  EXPECT_EQ(A("10.244.1.5").value(), 0x0af40105u);
  EXPECT_EQ(A("0.0.0.0").value(), 0u);
  EXPECT_EQ(A("255.255.255.255").value(), 0xffffffffu);
  EXPECT_EQ(A("172.18.0.2").ToString(), "172.18.0.2");
  EXPECT_EQ(Ipv4Address::FromNetworkOrder(A("1.2.3.4").network_order()), A("1.2.3.4"));
  EXPECT_LT(A("10.0.0.9"), A("10.0.0.10"));
}

TEST(Ipv4AddressTest, RejectsMalformedNamingTheValue) {
  for (const char* bad : {"", "10.0.0", "10.0.0.0.1", "256.1.1.1", "1..2.3", "a.b.c.d", "01.2.3.4",
                          "1.2.3.4 ", "-1.2.3.4", "1.2.3.1000"}) {
    EXPECT_FALSE(Ipv4Address::TryParse(bad)) << bad;
    std::string msg = InvalidMessage([&] { Ipv4Address::Parse(bad); });
    EXPECT_THAT(msg, HasSubstr("\"" + std::string(bad) + "\"")) << bad;
  }
}

TEST(Ipv4AddressTest, ErrorNamesTheFieldAndCarriesACause) {
  try {
    Ipv4Address::Parse("10.1.2", "spec.nodes[0].ip");
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.message(), HasSubstr("spec.nodes[0].ip"));
    ASSERT_EQ(e.causes().size(), 1u);
    EXPECT_EQ(e.causes()[0].field, "spec.nodes[0].ip");
    EXPECT_EQ(e.causes()[0].reason, "FieldValueInvalid");
  }
}

TEST(Ipv4CidrTest, ParsesNetworkAndInterfaceForms) {
  Ipv4Cidr net = C("10.244.1.0/24");
  EXPECT_EQ(net.prefix_len(), 24);
  EXPECT_TRUE(net.is_network());
  EXPECT_EQ(net.network(), A("10.244.1.0"));
  EXPECT_EQ(net.broadcast(), A("10.244.1.255"));
  EXPECT_EQ(net.netmask(), 0xffffff00u);
  EXPECT_EQ(net.size(), 256u);
  EXPECT_EQ(net.ToString(), "10.244.1.0/24");

  Ipv4Cidr iface = C("10.244.1.1/24");
  EXPECT_FALSE(iface.is_network());
  EXPECT_EQ(iface.address(), A("10.244.1.1"));
  EXPECT_EQ(iface.Masked(), net);
  EXPECT_EQ(iface.ToString(), "10.244.1.1/24");

  EXPECT_EQ(C("0.0.0.0/0").size(), uint64_t{1} << 32);
  EXPECT_EQ(C("0.0.0.0/0").netmask(), 0u);
  EXPECT_EQ(C("1.2.3.4/32").broadcast(), A("1.2.3.4"));
}

TEST(Ipv4CidrTest, RejectsMalformedNamingTheValue) {
  EXPECT_THAT(InvalidMessage([] { C("10.244.1.0"); }), HasSubstr("\"10.244.1.0\""));
  EXPECT_THAT(InvalidMessage([] { C("10.244.1.0/33"); }), HasSubstr("\"10.244.1.0/33\""));
  EXPECT_THAT(InvalidMessage([] { C("10.244.1.0/"); }), HasSubstr("prefix length"));
  EXPECT_THAT(InvalidMessage([] { C("10.244.1/24"); }),
              HasSubstr("\"10.244.1\" is not an IPv4 address"));
  EXPECT_THAT(InvalidMessage([] { C("10.244.1.0/2a"); }), HasSubstr("\"10.244.1.0/2a\""));
  EXPECT_THAT(InvalidMessage([] { Ipv4Cidr::ParseNetwork("10.244.1.5/24", "podCIDR"); }),
              HasSubstr("host bits are set (the network is 10.244.1.0/24)"));
  EXPECT_THAT(InvalidMessage([] { Ipv4Cidr::ParseNetwork("10.244.1.5/24", "podCIDR"); }),
              HasSubstr("podCIDR"));
  EXPECT_EQ(Ipv4Cidr::ParseNetwork("10.244.0.0/16").ToString(), "10.244.0.0/16");
}

TEST(Ipv4CidrTest, ContainsOverlapsAndNth) {
  Ipv4Cidr net = C("10.244.1.0/24");
  EXPECT_TRUE(net.Contains(A("10.244.1.0")));
  EXPECT_TRUE(net.Contains(A("10.244.1.255")));
  EXPECT_FALSE(net.Contains(A("10.244.2.0")));
  EXPECT_FALSE(net.Contains(A("10.244.0.255")));
  EXPECT_TRUE(C("10.244.0.0/16").Contains(net));
  EXPECT_FALSE(net.Contains(C("10.244.0.0/16")));
  EXPECT_TRUE(C("10.244.0.0/16").Overlaps(net));
  EXPECT_TRUE(net.Overlaps(C("10.244.0.0/16")));
  EXPECT_FALSE(net.Overlaps(C("10.244.2.0/24")));
  EXPECT_TRUE(C("0.0.0.0/0").Contains(A("203.0.113.7")));

  EXPECT_EQ(net.Nth(0), A("10.244.1.0"));
  EXPECT_EQ(net.Nth(1), A("10.244.1.1"));
  EXPECT_EQ(net.Nth(255), A("10.244.1.255"));
  EXPECT_EQ(C("10.244.1.77/24").Nth(2), A("10.244.1.2"));  // from the network
  EXPECT_THAT(InvalidMessage([&] { net.Nth(256); }), HasSubstr("10.244.1.0/24"));
}

class AllocatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kin-ipam-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/ipam";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string ReadFile() {
    std::ifstream in(path_);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  void WriteFile(const std::string& text) { std::ofstream(path_) << text; }

  std::string dir_, path_;
};

TEST_F(AllocatorTest, HandsOutLowestFreeSkippingNetworkGatewayBroadcast) {
  Ipv4Allocator ipam(C("10.244.1.0/24"));
  EXPECT_EQ(ipam.gateway(), A("10.244.1.1"));
  EXPECT_EQ(ipam.Available(), 253u);
  EXPECT_EQ(ipam.Allocate("pod-a"), A("10.244.1.2"));
  EXPECT_EQ(ipam.Allocate("pod-b"), A("10.244.1.3"));
  EXPECT_EQ(ipam.Allocate("pod-c"), A("10.244.1.4"));
  EXPECT_TRUE(ipam.Release("pod-b"));
  EXPECT_FALSE(ipam.Release("pod-b"));
  // The hole is reused before anything higher.
  EXPECT_EQ(ipam.Allocate("pod-d"), A("10.244.1.3"));
  EXPECT_EQ(ipam.Allocate("pod-e"), A("10.244.1.5"));
  EXPECT_EQ(ipam.Lookup("pod-d"), A("10.244.1.3"));
  EXPECT_EQ(ipam.Lookup("pod-b"), std::nullopt);
  EXPECT_EQ(ipam.Available(), 249u);
}

TEST_F(AllocatorTest, SameOwnerGetsSameAddress) {
  Ipv4Allocator ipam(C("10.244.1.0/24"));
  Ipv4Address a = ipam.Allocate("pod-a");
  EXPECT_EQ(ipam.Allocate("pod-a"), a);
  EXPECT_EQ(ipam.Allocations().size(), 1u);
}

TEST_F(AllocatorTest, ExhaustsSmallRangeWithoutReservedAddresses) {
  Ipv4Allocator ipam(C("10.9.0.0/29"));  // .0 net, .1 gw, .7 bcast: .2-.6 usable
  std::set<Ipv4Address> got;
  for (int i = 0; i < 5; i++) got.insert(ipam.Allocate("p" + std::to_string(i)));
  EXPECT_EQ(got, (std::set<Ipv4Address>{A("10.9.0.2"), A("10.9.0.3"), A("10.9.0.4"), A("10.9.0.5"),
                                        A("10.9.0.6")}));
  try {
    ipam.Allocate("one-too-many");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kServiceUnavailable);
    EXPECT_THAT(e.message(), HasSubstr("10.9.0.0/29"));
  }
  EXPECT_EQ(ipam.Available(), 0u);
}

TEST_F(AllocatorTest, ReserveMarksAnAddressInUse) {
  Ipv4Allocator ipam(C("10.244.1.0/24"));
  ipam.Reserve(A("10.244.1.2"), "found-at-start");
  ipam.Reserve(A("10.244.1.2"), "found-at-start");  // idempotent
  EXPECT_EQ(ipam.Allocate("pod-a"), A("10.244.1.3"));
  try {
    ipam.Reserve(A("10.244.1.3"), "pod-x");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kConflict);
    EXPECT_THAT(e.message(), HasSubstr("pod-a"));
  }
  EXPECT_THROW(ipam.Reserve(A("10.244.1.1"), "x"), Error);    // the gateway
  EXPECT_THROW(ipam.Reserve(A("10.244.1.255"), "x"), Error);  // broadcast
  EXPECT_THROW(ipam.Reserve(A("10.244.2.9"), "x"), Error);    // outside
}

TEST_F(AllocatorTest, RejectsBadRangesAndOwners) {
  EXPECT_THAT(InvalidMessage([] { Ipv4Allocator(C("10.244.1.5/24")); }),
              HasSubstr("10.244.1.0/24"));
  EXPECT_THAT(InvalidMessage([] { Ipv4Allocator(C("10.244.1.0/31")); }), HasSubstr("too small"));
  Ipv4Allocator ipam(C("10.244.1.0/24"));
  EXPECT_THROW(ipam.Allocate(""), Error);
  EXPECT_THROW(ipam.Allocate("two words"), Error);
  EXPECT_THROW(ipam.Allocate("line\nbreak"), Error);
}

TEST_F(AllocatorTest, PersistsAndReloadsSoNothingIsHandedOutTwice) {
  {
    Ipv4Allocator ipam(C("10.244.1.0/24"), path_);
    ipam.Allocate("pod-a");
    ipam.Allocate("pod-b");
    ipam.Allocate("pod-c");
    ipam.Release("pod-a");
  }
  std::string text = ReadFile();
  EXPECT_THAT(text, HasSubstr("10.244.1.3 pod-b\n"));
  EXPECT_THAT(text, HasSubstr("10.244.1.4 pod-c\n"));
  EXPECT_THAT(text, ::testing::Not(HasSubstr("pod-a")));
  EXPECT_FALSE(std::filesystem::exists(path_ + ".tmp"));

  Ipv4Allocator again(C("10.244.1.0/24"), path_);
  EXPECT_EQ(again.Lookup("pod-b"), A("10.244.1.3"));
  EXPECT_EQ(again.Lookup("pod-c"), A("10.244.1.4"));
  EXPECT_EQ(again.Allocate("pod-d"), A("10.244.1.2"));  // pod-a's, freed
  EXPECT_EQ(again.Allocate("pod-e"), A("10.244.1.5"));  // never .3 or .4
  EXPECT_EQ(again.Allocate("pod-b"), A("10.244.1.3"));

  Ipv4Allocator third(C("10.244.1.0/24"), path_);
  EXPECT_EQ(third.Allocations().size(), 4u);
}

TEST_F(AllocatorTest, MissingStateFileIsEmpty) {
  Ipv4Allocator ipam(C("10.244.1.0/24"), path_);
  EXPECT_TRUE(ipam.Allocations().empty());
  EXPECT_FALSE(std::filesystem::exists(path_));  // nothing written until a change
}

TEST_F(AllocatorTest, CorruptStateFileIsRejectedNamingFileAndLine) {
  WriteFile("# header\n10.244.1.2 pod-a\n10.244.9.9 pod-b\n");
  try {
    Ipv4Allocator ipam(C("10.244.1.0/24"), path_);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalid);
    EXPECT_THAT(e.message(), HasSubstr(path_ + ":3:"));
    EXPECT_THAT(e.message(), HasSubstr("10.244.9.9"));
  }
  WriteFile("10.244.1.2 pod-a\n10.244.1.2 pod-b\n");
  EXPECT_THAT(InvalidMessage([&] { Ipv4Allocator(C("10.244.1.0/24"), path_); }),
              HasSubstr("listed twice"));
  WriteFile("10.244.1.2\n");
  EXPECT_THAT(InvalidMessage([&] { Ipv4Allocator(C("10.244.1.0/24"), path_); }), HasSubstr(":1:"));
  WriteFile("10.244.1.1 gw\n");
  EXPECT_THAT(InvalidMessage([&] { Ipv4Allocator(C("10.244.1.0/24"), path_); }),
              HasSubstr("not assignable"));
}

TEST_F(AllocatorTest, FailedPersistLeavesMemoryUnchanged) {
  Ipv4Allocator ipam(C("10.244.1.0/24"), dir_ + "/no-such-dir/ipam");
  EXPECT_THROW(ipam.Allocate("pod-a"), Error);
  EXPECT_TRUE(ipam.Allocations().empty());
  EXPECT_EQ(ipam.Lookup("pod-a"), std::nullopt);
}

TEST_F(AllocatorTest, ConcurrentAllocationsAreDistinct) {
  Ipv4Allocator ipam(C("10.244.1.0/24"), path_);
  std::vector<std::thread> threads;
  std::vector<Ipv4Address> got(40);
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; i++)
        got[t * 10 + i] = ipam.Allocate("p" + std::to_string(t * 10 + i));
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(std::set<Ipv4Address>(got.begin(), got.end()).size(), 40u);
  Ipv4Allocator reloaded(C("10.244.1.0/24"), path_);
  EXPECT_EQ(reloaded.Allocations().size(), 40u);
}

}  // namespace
}  // namespace kin::netstack
