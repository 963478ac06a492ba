// Kernel tests (root): a 2-node topology with its internet namespace, the
// external server in it, and egress SNAT in the nodes: pods reach the
// internet as their node's IP, replies come back, and pod-to-pod traffic
// keeps pod IPs. All traffic stays inside namespaces these tests create.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/error.h"
#include "base/http_client.h"
#include "base/netns.h"
#include "netstack/egress.h"
#include "netstack/external_server.h"
#include "netstack/nftables.h"
#include "netstack/topology.h"
#include "testing/kernel_fixture.h"

namespace kin::netstack {
namespace {

using ::testing::HasSubstr;
using testing::KernelTest;
using ::testing::StartsWith;

Ipv4Cidr C(const char* s) { return Ipv4Cidr::Parse(s); }
Ipv4Address A(const char* s) { return Ipv4Address::Parse(s); }

// GET http://addr:port/ from inside `netns` (curl's socket is made on the
// thread that entered it). Throws when the connection fails.
std::string GetFrom(const std::string& netns, const std::string& addr, int port,
                    long connect_timeout_ms = 5000) {
  std::string body;
  RunInNetns(Netns::Open(netns), [&] {
    http::ClientOptions o;
    o.base_url = "http://" + addr + ":" + std::to_string(port);
    o.connect_timeout_ms = connect_timeout_ms;
    o.timeout_ms = connect_timeout_ms + 5000;
    http::ClientResponse r = http::HttpClient(o).Get("/");
    if (r.status != 200) throw Error::Internal("status " + std::to_string(r.status));
    body = r.body;
  });
  return body;
}

// One datagram to addr:port from inside `netns`, and what comes back.
std::string UdpEchoFrom(const std::string& netns, Ipv4Address addr, int port,
                        const std::string& payload) {
  UniqueFd fd;
  RunInNetns(Netns::Open(netns), [&] {
    fd.reset(static_cast<int>(CheckSys(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), "socket")));
  });
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = addr.network_order();
  CheckSys(::sendto(fd.get(), payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&sa),
                    sizeof sa),
           "sendto");
  pollfd p{fd.get(), POLLIN, 0};
  if (::poll(&p, 1, 5000) != 1) return "";
  char buf[512];
  ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

class EgressKernelTest : public KernelTest {
 protected:
  ClusterNetwork TwoNodes() {
    ClusterNetwork net;
    net.cluster = "test";
    net.netns_prefix = prefix() + "-";
    net.nodes = {{"a", A("172.18.0.2"), C("10.244.1.0/24")},
                 {"b", A("172.18.0.3"), C("10.244.2.0/24")}};
    return net;
  }

  struct Pod {
    NamedNetns ns;
    NetworkPlan plan;
    Ipv4Address ip;
  };
  Pod AttachPod(const ClusterNetwork& net, const std::string& node, const std::string& suffix,
                const char* cidr) {
    NamedNetns ns = NamedNetns::Create(Name("-" + suffix, 200));
    PodInterface pod;
    pod.node_netns = NodeNetnsName(net, node);
    pod.pod_netns = ns.name();
    pod.host_veth = HostVethName(prefix() + suffix);
    pod.address = C(cidr);
    pod.gateway = pod.address.Masked().Nth(1);
    NetworkPlan plan = PlanPodAttach(pod);
    ApplyPlan(plan);
    return Pod{std::move(ns), std::move(plan), pod.address.address()};
  }

  static EgressMasquerade Egress() {
    EgressMasquerade e;
    e.pod_range = C("10.244.0.0/16");
    e.cluster_ranges = {C("10.244.0.0/16"), C("10.96.0.0/16")};
    return e;
  }
};

TEST_F(EgressKernelTest, PodsReachTheInternetAsTheirNodeAndEachOtherAsThemselves) {
  ClusterNetwork net = TwoNodes();
  NetworkPlan topology = PlanTopology(net);
  ApplyPlan(topology);
  const std::string ext = ExternalNetnsName(net);
  const std::string server = ExternalServerIp(net).ToString();
  ASSERT_EQ(server, "203.0.113.2");

  std::vector<Pod> pods;
  pods.push_back(AttachPod(net, "a", "pa", "10.244.1.2/24"));
  pods.push_back(AttachPod(net, "b", "pb", "10.244.2.2/24"));
  const Pod& pa = pods[0];
  const Pod& pb = pods[1];

  auto external = std::make_unique<ExternalServer>(
      ExternalServerOptions{.netns = ext, .address = server, .http_port = 80, .udp_port = 7});
  external->Start();
  EXPECT_EQ(external->http_port(), 80);
  EXPECT_EQ(external->udp_port(), 7);

  // Nodes reach the internet with their own address (the internet routes
  // the underlay back through the network).
  EXPECT_THAT(GetFrom(NodeNetnsName(net, "a"), server, 80), StartsWith("client=172.18.0.2:"));
  EXPECT_THAT(GetFrom(NetworkNetnsName(net), server, 80), StartsWith("client=203.0.113.254:"));

  // Without masquerading a pod's SYN gets there, but the internet has no
  // route back to pod addresses.
  EXPECT_THROW(GetFrom(pa.ns.name(), server, 80, 500), Error);

  for (const char* node : {"a", "b"}) ApplyEgressMasquerade(NodeNetnsName(net, node), Egress());
  // Applying again replaces the table (kin serve does so after a restart).
  ApplyEgressMasquerade(NodeNetnsName(net, "a"), Egress());
  EXPECT_THAT(NftContext(NodeNetnsName(net, "a")).List("list table ip kin-egress"),
              HasSubstr("oifname \"eth0\" masquerade"));

  // Egress SNAT: the server sees each pod's node.
  std::string body = GetFrom(pa.ns.name(), server, 80);
  EXPECT_THAT(body, StartsWith("client=172.18.0.2:"));
  EXPECT_EQ(body.back(), '\n');
  EXPECT_THAT(GetFrom(pb.ns.name(), server, 80), StartsWith("client=172.18.0.3:"));
  EXPECT_EQ(UdpEchoFrom(pa.ns.name(), ExternalServerIp(net), 7, "ping over udp"), "ping over udp");

  // Pod to pod (across nodes) is never masqueraded: pod b's server sees pod a.
  ExternalServer in_pod_b(ExternalServerOptions{
      .netns = pb.ns.name(), .address = pb.ip.ToString(), .http_port = 8080, .udp_port = 0});
  in_pod_b.Start();
  EXPECT_THAT(GetFrom(pa.ns.name(), pb.ip.ToString(), 8080), StartsWith("client=10.244.1.2:"));
  in_pod_b.Stop();

  // The rule made the difference: without it, no answer again.
  EXPECT_TRUE(RemoveEgressMasquerade(NodeNetnsName(net, "a")));
  EXPECT_FALSE(RemoveEgressMasquerade(NodeNetnsName(net, "a")));
  EXPECT_FALSE(NftContext(NodeNetnsName(net, "a")).HasTable("ip", kEgressTable));
  EXPECT_THROW(GetFrom(pa.ns.name(), server, 80, 500), Error);

  external->Stop();
  external.reset();
  for (auto& p : pods) RemovePlan(p.plan);
  pods.clear();
  RemovePlan(topology);
  EXPECT_THAT(ListNamedNetns(prefix()), ::testing::IsEmpty());
}

TEST_F(EgressKernelTest, ExternalServerNamesWhatIsWrong) {
  ClusterNetwork net = TwoNodes();
  NetworkPlan topology = PlanTopology(net);
  ApplyPlan(topology);
  // An address the internet namespace does not hold.
  ExternalServer bad(ExternalServerOptions{
      .netns = ExternalNetnsName(net), .address = "203.0.113.77", .http_port = 80, .udp_port = 7});
  try {
    bad.Start();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_THAT(e.message(), HasSubstr("203.0.113.77:7"));
    EXPECT_THAT(e.message(), HasSubstr("netns `" + ExternalNetnsName(net) + "`"));
  }
  RemovePlan(topology);
  EXPECT_THAT(ListNamedNetns(prefix()), ::testing::IsEmpty());
}

}  // namespace
}  // namespace kin::netstack
