// Kernel tests (root): the host-access link made by the topology, with a
// namespace of the test's own standing in for the host, so nothing of the
// machine's own network is touched. Traffic stays in the test's namespaces.
#include "netstack/host_access.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/error.h"
#include "base/netns.h"
#include "testing/kernel_fixture.h"

namespace kin::netstack {
namespace {

using ::testing::HasSubstr;
using testing::KernelTest;

Ipv4Address A(const char* s) { return Ipv4Address::Parse(s); }
Ipv4Cidr C(const char* s) { return Ipv4Cidr::Parse(s); }

UniqueFd TcpSocketIn(const Netns& ns) {
  UniqueFd fd;
  RunInNetns(ns, [&] {
    fd = UniqueFd(CheckSys(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket"));
  });
  return fd;
}

sockaddr_in SockAddr(Ipv4Address a, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = a.network_order();
  return sa;
}

// Connects from `from` to a listener made in `server_ns` on ip:port; returns
// the client address the server saw ("" when no connection was made).
std::string SourceSeen(const Netns& from, const Netns& server_ns, Ipv4Address ip, uint16_t port) {
  UniqueFd listener = TcpSocketIn(server_ns);
  int one = 1;
  ::setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa = SockAddr(ip, port);
  CheckSys(::bind(listener.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), "bind");
  CheckSys(::listen(listener.get(), 4), "listen");
  UniqueFd client = TcpSocketIn(from);
  timeval tv{5, 0};
  ::setsockopt(client.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(client.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return "";
  pollfd p{listener.get(), POLLIN, 0};
  if (::poll(&p, 1, 5000) != 1) return "";
  sockaddr_in peer{};
  socklen_t len = sizeof peer;
  UniqueFd conn(::accept4(listener.get(), reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC));
  if (!conn) return "";
  return Ipv4Address::FromNetworkOrder(peer.sin_addr.s_addr).ToString();
}

class HostAccessKernelTest : public KernelTest {
 protected:
  void SetUp() override {
    KernelTest::SetUp();
    if (IsSkipped()) return;
    host_.emplace(NamedNetns::Create(Name("host")));
    NetlinkSocket::OpenIn(host_->ns()).SetUp("lo");
  }
  ClusterNetwork TwoNodes() {
    ClusterNetwork net;
    net.cluster = "test";
    net.netns_prefix = prefix() + "-";
    net.nodes = {{"a", A("172.18.0.2"), C("10.244.1.0/24")},
                 {"b", A("172.18.0.3"), C("10.244.2.0/24")}};
    net.external.enabled = false;
    net.load_balancer = C("198.51.100.0/24");
    net.host_access.enabled = true;
    net.host_access.netns = host_->name();
    return net;
  }
  std::vector<std::string> HostRoutes() {
    std::vector<std::string> out;
    for (const RouteInfo& r : ListHostRoutes(host_->name())) out.push_back(r.ToString());
    return out;
  }
  std::optional<NamedNetns> host_;
};

TEST_F(HostAccessKernelTest, HostReachesNodesAndLoadBalancerRangeAndDeleteLeavesNothing) {
  ClusterNetwork net = TwoNodes();
  NetworkPlan plan = PlanTopology(net);
  ApplyPlan(plan);
  const std::string link = HostAccessLinkName(net);
  NetlinkSocket host = NetlinkSocket::OpenIn(host_->ns());
  ASSERT_TRUE(host.FindLink(link));
  bool has_address = false;
  for (const AddressInfo& a : host.ListAddresses()) {
    if (a.dev == link && a.address == C("172.18.0.254/24")) has_address = true;
  }
  EXPECT_TRUE(has_address);
  EXPECT_THAT(HostRoutes(), ::testing::UnorderedElementsAre(
                                "172.18.0.0/24 dev " + link + " src 172.18.0.254",
                                "198.51.100.0/24 via 172.18.0.1 dev " + link));

  // A node IP answers from the host, which it sees as the host link's address.
  Netns node_a = Netns::Open(NodeNetnsName(net, "a"));
  EXPECT_EQ(SourceSeen(host_->ns(), node_a, A("172.18.0.2"), 8080), "172.18.0.254");
  // An address of the LB range, routed by the network to node b, answers
  // too: the host's route sends it to the network, node b replies on-link.
  NetlinkSocket::OpenIn(Netns::Open(NodeNetnsName(net, "b")))
      .AddAddress("lo", C("198.51.100.7/32"));
  Route lb;
  lb.dst = C("198.51.100.7/32");
  lb.via = A("172.18.0.3");
  lb.dev = kUnderlayBridge;
  NetlinkSocket::OpenIn(Netns::Open(NetworkNetnsName(net))).AddRoute(lb);
  EXPECT_EQ(SourceSeen(host_->ns(), Netns::Open(NodeNetnsName(net, "b")), A("198.51.100.7"), 8081),
            "172.18.0.254");

  RemovePlan(plan);
  EXPECT_FALSE(NetlinkSocket::OpenIn(host_->ns()).FindLink(link));
  EXPECT_THAT(HostRoutes(), ::testing::IsEmpty());
}

TEST_F(HostAccessKernelTest, EnsureRemakesAMissingLinkAndLeavesAPresentOneAlone) {
  ClusterNetwork net = TwoNodes();
  NetworkPlan plan = PlanTopology(net);
  ApplyPlan(plan);
  const std::string link = HostAccessLinkName(net);
  const int index = NetlinkSocket::OpenIn(host_->ns()).LinkIndex(link);
  EnsureHostAccess(net);  // a restarted kin serve: nothing to do
  EXPECT_EQ(NetlinkSocket::OpenIn(host_->ns()).LinkIndex(link), index);

  NetlinkSocket::OpenIn(Netns::Open(NetworkNetnsName(net))).DeleteLink(kHostAccessPeer);
  EXPECT_FALSE(NetlinkSocket::OpenIn(host_->ns()).FindLink(link));
  EnsureHostAccess(net);
  EXPECT_TRUE(NetlinkSocket::OpenIn(host_->ns()).FindLink(link));
  EXPECT_EQ(SourceSeen(host_->ns(), Netns::Open(NodeNetnsName(net, "a")), A("172.18.0.2"), 8082),
            "172.18.0.254");
  RemovePlan(plan);
  EXPECT_THAT(HostRoutes(), ::testing::IsEmpty());
}

TEST_F(HostAccessKernelTest, ARouteOfTheHostInTheWayIsAConflictNamingIt) {
  ClusterNetwork net = TwoNodes();
  NetlinkSocket sock = NetlinkSocket::OpenIn(host_->ns());
  NetlinkBatch(sock)
      .CreateBridge("other0")
      .SetUp("other0")
      .AddAddress("other0", C("172.18.5.1/16"))
      .Commit();
  try {
    CheckHostRoutes(net);
    FAIL() << "no conflict";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kConflict);
    EXPECT_THAT(e.message(), HasSubstr("networking.underlay 172.18.0.0/24 overlaps the host's "
                                       "route 172.18.0.0/16 dev other0"));
    EXPECT_THAT(e.message(), HasSubstr("--host-access=false"));
  }
  net.host_access.enabled = false;
  EXPECT_NO_THROW(CheckHostRoutes(net));
}

}  // namespace
}  // namespace kin::netstack
