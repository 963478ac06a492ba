// Kernel tests (root): a real 2-node topology in both routing modes, pods
// attached to it, traffic between them, and nothing left afterwards.
// All traffic stays inside namespaces these tests create.
#include "netstack/topology.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/error.h"
#include "base/netns.h"
#include "base/process.h"
#include "testing/kernel_fixture.h"

namespace kin::netstack {
namespace {

using ::testing::HasSubstr;
using testing::KernelTest;
using ::testing::Not;

Ipv4Cidr C(const char* s) { return Ipv4Cidr::Parse(s); }
Ipv4Address A(const char* s) { return Ipv4Address::Parse(s); }

CommandResult InNetns(const std::string& netns, std::vector<std::string> argv) {
  argv.insert(argv.begin(), {"ip", "netns", "exec", netns});
  return RunCommand(argv, std::chrono::seconds(20));
}

std::string IpIn(const std::string& netns, std::vector<std::string> args) {
  args.insert(args.begin(), "ip");
  CommandResult r = InNetns(netns, args);
  EXPECT_TRUE(r.status.success()) << r.err;
  return r.out;
}

bool Ping(const std::string& from_netns, Ipv4Address to) {
  CommandResult r = InNetns(from_netns, {"busybox", "ping", "-c", "1", "-W", "2", to.ToString()});
  return r.status.success();
}

sockaddr_in SockAddr(Ipv4Address a, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = a.network_order();
  return sa;
}

// A TCP socket made inside `ns` (a socket keeps the namespace it was made in).
UniqueFd SocketIn(const Netns& ns) {
  UniqueFd fd;
  RunInNetns(ns, [&] {
    fd = UniqueFd(
        CheckSys(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), "socket"));
  });
  return fd;
}

UniqueFd ListenIn(const Netns& ns, Ipv4Address addr, uint16_t port) {
  UniqueFd fd = SocketIn(ns);
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa = SockAddr(addr, port);
  CheckSys(::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), "bind");
  CheckSys(::listen(fd.get(), 4), "listen");
  return fd;
}

bool WaitFor(int fd, short events, std::chrono::milliseconds timeout) {
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, static_cast<int>(timeout.count())) == 1 && (p.revents & events) != 0;
}

// Connects from inside `from` to addr:port, sends `payload`; the server side
// accepts it and reports the client's address as the server saw it.
struct TcpResult {
  bool connected = false;
  std::string seen_source;
  std::string received;
};

TcpResult TcpFromTo(const Netns& from, const Netns& server_ns, Ipv4Address server, uint16_t port,
                    std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  TcpResult out;
  UniqueFd listener = ListenIn(server_ns, server, port);
  UniqueFd client = SocketIn(from);
  sockaddr_in sa = SockAddr(server, port);
  int rc = ::connect(client.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  if (rc < 0 && errno != EINPROGRESS) return out;
  if (!WaitFor(client.get(), POLLOUT, timeout)) return out;
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(client.get(), SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) return out;
  out.connected = true;
  const std::string payload = "hello from the client pod";
  EXPECT_EQ(::send(client.get(), payload.data(), payload.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(payload.size()));

  if (!WaitFor(listener.get(), POLLIN, timeout)) return out;
  sockaddr_in peer{};
  socklen_t peer_len = sizeof peer;
  UniqueFd conn(
      ::accept4(listener.get(), reinterpret_cast<sockaddr*>(&peer), &peer_len, SOCK_CLOEXEC));
  if (!conn) return out;
  out.seen_source = Ipv4Address::FromNetworkOrder(peer.sin_addr.s_addr).ToString();
  char buf[128];
  if (WaitFor(conn.get(), POLLIN, timeout)) {
    ssize_t n = ::recv(conn.get(), buf, sizeof buf, 0);
    if (n > 0) out.received.assign(buf, static_cast<size_t>(n));
  }
  return out;
}

class TopologyKernelTest : public KernelTest {
 protected:
  ClusterNetwork TwoNodes(RoutingMode mode) {
    ClusterNetwork net;
    net.cluster = "test";
    net.netns_prefix = prefix() + "-";
    net.mode = mode;
    net.nodes = {{"a", A("172.18.0.2"), C("10.244.1.0/24")},
                 {"b", A("172.18.0.3"), C("10.244.2.0/24")}};
    return net;
  }

  // A pod namespace (owned by the test, as the runtime would) attached to a node.
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

  void CheckTopologyInKernel(const ClusterNetwork& net) {
    const std::string netname = NetworkNetnsName(net);
    auto names = ListNamedNetns(prefix());
    EXPECT_THAT(names, ::testing::IsSupersetOf(
                           {netname, NodeNetnsName(net, "a"), NodeNetnsName(net, "b")}));
    NetlinkSocket s = NetlinkSocket::OpenIn(Netns::Open(netname));
    auto underlay = s.FindLink(kUnderlayBridge);
    ASSERT_TRUE(underlay);
    EXPECT_EQ(underlay->kind, "bridge");
    EXPECT_EQ(s.FindLink("n0")->master_name, kUnderlayBridge);
    EXPECT_EQ(s.FindLink("n1")->master_name, kUnderlayBridge);
    EXPECT_THAT(IpIn(netname, {"route"}), HasSubstr("10.244.2.0/24 via 172.18.0.3 dev underlay"));
    EXPECT_EQ(ReadSysctl(Netns::Open(netname), "net.ipv4.ip_forward"), "1");

    const std::string a = NodeNetnsName(net, "a");
    EXPECT_THAT(IpIn(a, {"-o", "-4", "addr"}), HasSubstr("eth0    inet 172.18.0.2/24"));
    EXPECT_THAT(IpIn(a, {"-o", "-4", "addr"}), HasSubstr("cbr0    inet 10.244.1.1/24"));
    EXPECT_THAT(IpIn(a, {"route"}), HasSubstr("default via 172.18.0.1 dev eth0"));
    EXPECT_EQ(ReadSysctl(Netns::Open(a), "net.ipv4.ip_forward"), "1");
    EXPECT_EQ(ReadSysctl(Netns::Open(a), "net.bridge.bridge-nf-call-iptables"), "1");
  }

  // Pod A -> pod B by pod IP, and the server sees pod A's IP: no NAT.
  void ExpectPodToPod(const Pod& from, const Pod& to, uint16_t port) {
    TcpResult r = TcpFromTo(from.ns.ns(), to.ns.ns(), to.ip, port);
    EXPECT_TRUE(r.connected) << from.ip.ToString() << " -> " << to.ip.ToString();
    EXPECT_EQ(r.seen_source, from.ip.ToString());
    EXPECT_EQ(r.received, "hello from the client pod");
  }

  void RemoveAll(std::vector<Pod>& pods, const NetworkPlan& topology) {
    for (auto& p : pods) {
      RemovePlan(p.plan);
      // The host side is gone, so is the pod's eth0: only lo is left.
      NetlinkSocket s = NetlinkSocket::OpenIn(p.ns.ns());
      auto links = s.ListLinks();
      ASSERT_EQ(links.size(), 1u);
      EXPECT_EQ(links[0].name, "lo");
    }
    RemovePlan(topology);
    pods.clear();  // the runtime removes pod namespaces
    EXPECT_THAT(ListNamedNetns(prefix()), ::testing::IsEmpty());
  }
};

TEST_F(TopologyKernelTest, RoutedTwoNodesPodsTalkWithoutNat) {
  ClusterNetwork net = TwoNodes(RoutingMode::kRouted);
  NetworkPlan topology = PlanTopology(net);
  ApplyPlan(topology);
  CheckTopologyInKernel(net);

  std::vector<Pod> pods;
  pods.push_back(AttachPod(net, "a", "pa", "10.244.1.2/24"));
  pods.push_back(AttachPod(net, "b", "pb", "10.244.2.2/24"));
  pods.push_back(AttachPod(net, "a", "pa2", "10.244.1.3/24"));
  const Pod& pa = pods[0];
  const Pod& pb = pods[1];
  const Pod& pa2 = pods[2];

  // The pod side as planned, and the host side on cbr0 with hairpin.
  EXPECT_THAT(IpIn(pa.ns.name(), {"-o", "-4", "addr", "show", "eth0"}),
              HasSubstr("inet 10.244.1.2/24"));
  EXPECT_THAT(IpIn(pa.ns.name(), {"route"}), HasSubstr("default via 10.244.1.1 dev eth0"));
  // IPv4 only: eth0 is up with no IPv6 address (not even link-local); lo keeps ::1.
  EXPECT_EQ(IpIn(pa.ns.name(), {"-o", "-6", "addr", "show", "eth0"}), "");
  EXPECT_THAT(IpIn(pa.ns.name(), {"-o", "-6", "addr", "show", "lo"}), HasSubstr("inet6 ::1/128"));
  EXPECT_THAT(IpIn(pa.ns.name(), {"-d", "link", "show", "eth0"}), HasSubstr("addrgenmode none"));
  NetlinkSocket node_a = NetlinkSocket::OpenIn(Netns::Open(NodeNetnsName(net, "a")));
  auto host = node_a.FindLink(pa.plan.namespaces[0].links[0].name);
  ASSERT_TRUE(host);
  EXPECT_EQ(host->master_name, kNodeBridge);
  EXPECT_EQ(host->hairpin, true);
  EXPECT_TRUE(host->up());

  // Routed: node a reaches node b's pods through the network namespace.
  EXPECT_THAT(IpIn(NodeNetnsName(net, "a"), {"route", "get", "10.244.2.2"}),
              HasSubstr("via 172.18.0.1 dev eth0"));

  EXPECT_TRUE(Ping(NodeNetnsName(net, "a"), pa.ip));  // node -> own pod
  EXPECT_TRUE(Ping(NodeNetnsName(net, "a"), pb.ip));  // node -> other node's pod
  EXPECT_TRUE(Ping(pa.ns.name(), pa2.ip));            // pod -> pod, same bridge
  EXPECT_TRUE(Ping(pb.ns.name(), A("172.18.0.2")));   // pod -> other node

  ExpectPodToPod(pa, pb, 8080);
  ExpectPodToPod(pb, pa, 8081);
  ExpectPodToPod(pa, pa2, 8082);

  // Without forwarding in the network namespace, cross-node traffic stops:
  // it really went through there.
  WriteSysctl(Netns::Open(NetworkNetnsName(net)), "net.ipv4.ip_forward", "0");
  EXPECT_FALSE(TcpFromTo(pa.ns.ns(), pb.ns.ns(), pb.ip, 8083, std::chrono::seconds(1)).connected);

  RemoveAll(pods, topology);
}

TEST_F(TopologyKernelTest, HostGwTwoNodesPodsTalkDirectly) {
  ClusterNetwork net = TwoNodes(RoutingMode::kHostGw);
  NetworkPlan topology = PlanTopology(net);
  ApplyPlan(topology);
  CheckTopologyInKernel(net);

  std::vector<Pod> pods;
  pods.push_back(AttachPod(net, "a", "pa", "10.244.1.2/24"));
  pods.push_back(AttachPod(net, "b", "pb", "10.244.2.7/24"));
  const Pod& pa = pods[0];
  const Pod& pb = pods[1];

  EXPECT_THAT(IpIn(NodeNetnsName(net, "a"), {"route"}),
              HasSubstr("10.244.2.0/24 via 172.18.0.3 dev eth0"));
  EXPECT_THAT(IpIn(NodeNetnsName(net, "a"), {"route", "get", "10.244.2.7"}),
              HasSubstr("via 172.18.0.3 dev eth0"));

  EXPECT_TRUE(Ping(NodeNetnsName(net, "b"), pa.ip));
  ExpectPodToPod(pa, pb, 8080);

  // host-gw does not need the network namespace to forward: the underlay
  // bridge carries node-to-node frames directly.
  WriteSysctl(Netns::Open(NetworkNetnsName(net)), "net.ipv4.ip_forward", "0");
  ExpectPodToPod(pb, pa, 8081);

  RemoveAll(pods, topology);
}

TEST_F(TopologyKernelTest, FailedApplyRemovesWhatItMade) {
  ClusterNetwork net = TwoNodes(RoutingMode::kRouted);
  NetworkPlan plan = PlanTopology(net);
  Route bad;
  bad.dst = C("10.99.0.0/16");
  bad.dev = "nope";
  plan.namespaces[2].routes.push_back(bad);
  try {
    ApplyPlan(plan);
    FAIL() << "expected a failure";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kNotFound);
    EXPECT_THAT(e.message(), HasSubstr("netns `" + NodeNetnsName(net, "b") + "`: "));
    EXPECT_THAT(e.message(), HasSubstr("no link named `nope`"));
  }
  EXPECT_THAT(ListNamedNetns(prefix()), ::testing::IsEmpty());
}

TEST_F(TopologyKernelTest, ApplyingTwiceIsAlreadyExistsAndKeepsTheFirst) {
  ClusterNetwork net = TwoNodes(RoutingMode::kRouted);
  NetworkPlan plan = PlanTopology(net);
  ApplyPlan(plan);
  try {
    ApplyPlan(plan);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kAlreadyExists);
    EXPECT_THAT(e.message(), HasSubstr(NetworkNetnsName(net)));
  }
  EXPECT_EQ(ListNamedNetns(prefix()).size(), 4u);  // the network, two nodes, the internet
  EXPECT_TRUE(Ping(NodeNetnsName(net, "a"), A("172.18.0.3")));
  RemovePlan(plan);
  RemovePlan(plan);  // what is gone is skipped
  EXPECT_THAT(ListNamedNetns(prefix()), ::testing::IsEmpty());
}

// A pod address used before: the node's bridge (whose own MAC never
// changes) still holds the old pod's MAC for it (REACHABLE for 30 s and more after the last use), and traffic
// from the node to the new pod went to that MAC. Attaching the new pod
// forgets the entry, so the node reaches it at once.
TEST_F(TopologyKernelTest, ReusedPodAddressForgetsTheOldPodsNeighborEntry) {
  ClusterNetwork net = TwoNodes(RoutingMode::kRouted);
  NetworkPlan topology = PlanTopology(net);
  ApplyPlan(topology);
  const std::string node_a = NodeNetnsName(net, "a");
  std::vector<Pod> pods;
  // Another pod keeps the bridge's carrier up (a bridge that loses its last
  // port flushes its neighbour entries).
  pods.push_back(AttachPod(net, "a", "other", "10.244.1.8/24"));
  const std::string bridge = IpIn(node_a, {"-br", "link", "show", "cbr0"});
  EXPECT_THAT(bridge, HasSubstr(NodeBridgeMac(A("10.244.1.1")))) << bridge;
  Pod old = AttachPod(net, "a", "old", "10.244.1.7/24");
  ASSERT_TRUE(Ping(node_a, old.ip));  // the node learns the old pod's MAC
  const std::string old_entry = IpIn(node_a, {"neigh", "show", "10.244.1.7", "dev", "cbr0"});
  const auto at = old_entry.find("lladdr ");
  ASSERT_NE(at, std::string::npos) << old_entry;
  const std::string old_mac = old_entry.substr(at + 7, 17);
  RemovePlan(old.plan);
  { Pod gone = std::move(old); }  // the runtime removes the pod's namespace
  // The bridge keeps its own MAC whichever port goes (else the other pods'
  // ARP entries for their gateway would point at a MAC no longer there).
  EXPECT_EQ(IpIn(node_a, {"-br", "link", "show", "cbr0"}), bridge);
  EXPECT_THAT(IpIn(node_a, {"neigh", "show", "10.244.1.7", "dev", "cbr0"}), HasSubstr(old_mac));

  pods.push_back(AttachPod(net, "a", "new", "10.244.1.7/24"));
  EXPECT_THAT(IpIn(node_a, {"neigh", "show", "10.244.1.7", "dev", "cbr0"}),
              ::testing::Not(HasSubstr(old_mac)));
  EXPECT_TRUE(Ping(node_a, pods[1].ip));
  RemoveAll(pods, topology);
}

TEST_F(TopologyKernelTest, PodAttachFailureAndNameClashLeaveOthersAlone) {
  ClusterNetwork net = TwoNodes(RoutingMode::kRouted);
  NetworkPlan topology = PlanTopology(net);
  ApplyPlan(topology);
  std::vector<Pod> pods;
  pods.push_back(AttachPod(net, "a", "pa", "10.244.1.2/24"));
  const std::string veth = pods[0].plan.namespaces[0].links[0].name;

  // Same host-side name again: refused, and the first pod's veth survives.
  std::optional<NamedNetns> other;
  other.emplace(NamedNetns::Create(Name("-px")));
  PodInterface clash;
  clash.node_netns = NodeNetnsName(net, "a");
  clash.pod_netns = other->name();
  clash.host_veth = veth;
  clash.address = C("10.244.1.9/24");
  clash.gateway = A("10.244.1.1");
  try {
    ApplyPlan(PlanPodAttach(clash));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kAlreadyExists);
    EXPECT_THAT(e.message(), HasSubstr("create veth `" + veth + "`"));
  }
  NetlinkSocket node_a = NetlinkSocket::OpenIn(Netns::Open(NodeNetnsName(net, "a")));
  EXPECT_TRUE(node_a.FindLink(veth));
  EXPECT_TRUE(Ping(NodeNetnsName(net, "a"), pods[0].ip));

  // A failure after the veth was made (pod side) removes that veth again.
  clash.host_veth = HostVethName("second");
  NetworkPlan bad = PlanPodAttach(clash);
  bad.namespaces[1].routes.push_back(Route{C("10.99.0.0/16"), std::nullopt, "nope"});
  EXPECT_THROW(ApplyPlan(bad), Error);
  EXPECT_FALSE(node_a.FindLink(clash.host_veth));
  EXPECT_EQ(NetlinkSocket::OpenIn(other->ns()).ListLinks().size(), 1u);  // lo only

  EXPECT_TRUE(DetachPod(NodeNetnsName(net, "a"), veth));
  EXPECT_FALSE(DetachPod(NodeNetnsName(net, "a"), veth));
  EXPECT_FALSE(node_a.FindLink(veth));
  pods.clear();
  other.reset();
  RemovePlan(topology);
}

}  // namespace
}  // namespace kin::netstack
