// Kernel tests (root) of the nftables service proxy: a node namespace with
// a bridge cbr0 (bridge-nf-call-iptables on) and pod namespaces on it, tiny
// TCP/UDP servers in the pods that answer with their name and the client
// address they see, and real connections through ClusterIPs, NodePorts and
// hairpin. Everything lives in namespaces these tests create; TearDown
// removes them also when a test fails, and checks nothing is left.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/error.h"
#include "base/netns.h"
#include "base/process.h"
#include "netstack/netlink.h"
#include "netstack/nft_proxy.h"
#include "netstack/nftables.h"
#include "netstack/service_proxy.h"
#include "netstack/topology.h"
#include "testing/kernel_fixture.h"

namespace kin::netstack {
namespace {

using testing::Eventually;
using ::testing::HasSubstr;
using testing::KernelTest;
using ::testing::Not;
using Clock = std::chrono::steady_clock;

Ipv4Address A(const char* s) { return Ipv4Address::Parse(s); }
Ipv4Cidr C(const char* s) { return Ipv4Cidr::Parse(s); }

constexpr uint16_t kServerPort = 8080;

sockaddr_in SockAddr(Ipv4Address a, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = a.network_order();
  return sa;
}

UniqueFd SocketIn(const Netns& ns, int type) {
  UniqueFd fd;
  RunInNetns(ns, [&] {
    fd = UniqueFd(CheckSys(::socket(AF_INET, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), "socket"));
  });
  return fd;
}

bool WaitFor(int fd, short events, Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  if (left.count() < 0) left = std::chrono::milliseconds(0);
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, static_cast<int>(left.count())) == 1 &&
         (p.revents & (events | POLLERR)) != 0;
}

// A pod's servers: TCP and UDP on kServerPort, answering "<name> <peer ip>"
// (the peer as the pod sees it), on one thread until destroyed.
class EchoServer {
 public:
  EchoServer(std::string name, const Netns& ns) : name_(std::move(name)) {
    tcp_ = SocketIn(ns, SOCK_STREAM);
    udp_ = SocketIn(ns, SOCK_DGRAM);
    int one = 1;
    ::setsockopt(tcp_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sa = SockAddr(Ipv4Address(0), kServerPort);
    CheckSys(::bind(tcp_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), "bind tcp");
    CheckSys(::listen(tcp_.get(), 64), "listen");
    CheckSys(::bind(udp_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), "bind udp");
    int p[2];
    CheckSys(::pipe2(p, O_CLOEXEC | O_NONBLOCK), "pipe");
    stop_r_ = UniqueFd(p[0]);
    stop_w_ = UniqueFd(p[1]);
    thread_ = std::thread([this] { Loop(); });
  }
  ~EchoServer() {
    (void)!::write(stop_w_.get(), "x", 1);
    thread_.join();
  }
  EchoServer(const EchoServer&) = delete;
  EchoServer& operator=(const EchoServer&) = delete;

 private:
  void Loop() {
    for (;;) {
      pollfd fds[3] = {
          {stop_r_.get(), POLLIN, 0}, {tcp_.get(), POLLIN, 0}, {udp_.get(), POLLIN, 0}};
      if (::poll(fds, 3, -1) < 0) continue;
      if (fds[0].revents) return;
      if (fds[1].revents & POLLIN) {
        sockaddr_in peer{};
        socklen_t len = sizeof peer;
        UniqueFd c(::accept4(tcp_.get(), reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC));
        if (c) {
          std::string reply =
              name_ + " " + Ipv4Address::FromNetworkOrder(peer.sin_addr.s_addr).ToString();
          (void)!::send(c.get(), reply.data(), reply.size(), MSG_NOSIGNAL);
        }
      }
      if (fds[2].revents & POLLIN) {
        char buf[256];
        sockaddr_in peer{};
        socklen_t len = sizeof peer;
        ssize_t n =
            ::recvfrom(udp_.get(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&peer), &len);
        if (n >= 0) {
          std::string reply =
              name_ + " " + Ipv4Address::FromNetworkOrder(peer.sin_addr.s_addr).ToString();
          (void)!::sendto(udp_.get(), reply.data(), reply.size(), 0,
                          reinterpret_cast<sockaddr*>(&peer), len);
        }
      }
    }
  }

  std::string name_;
  UniqueFd tcp_, udp_, stop_r_, stop_w_;
  std::thread thread_;
};

struct Answer {
  int error = 0;       // errno of the connection: 0, ECONNREFUSED, ETIMEDOUT, ...
  std::string server;  // who answered
  std::string peer;    // the client address the server saw
  Clock::duration took{};
};

Answer Split(Answer a, const std::string& reply) {
  auto sp = reply.find(' ');
  if (sp == std::string::npos) {
    a.error = EPROTO;
    return a;
  }
  a.server = reply.substr(0, sp);
  a.peer = reply.substr(sp + 1);
  return a;
}

// One TCP connection from inside `from` to addr:port; the reply read to EOF.
Answer AskTcp(const Netns& from, Ipv4Address addr, uint16_t port,
              std::chrono::milliseconds timeout = std::chrono::seconds(3)) {
  Answer a;
  const auto start = Clock::now(), deadline = start + timeout;
  UniqueFd fd = SocketIn(from, SOCK_STREAM);
  sockaddr_in sa = SockAddr(addr, port);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0 &&
      errno != EINPROGRESS) {
    a.error = errno;
    return a;
  }
  if (!WaitFor(fd.get(), POLLOUT, deadline)) {
    a.error = ETIMEDOUT;
    a.took = Clock::now() - start;
    return a;
  }
  socklen_t len = sizeof a.error;
  ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &a.error, &len);
  a.took = Clock::now() - start;
  if (a.error != 0) return a;
  std::string reply;
  char buf[256];
  while (WaitFor(fd.get(), POLLIN, deadline)) {
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n <= 0) break;
    reply.append(buf, static_cast<size_t>(n));
  }
  return Split(a, reply);
}

// A UDP "connection" (one socket, so one source port and one conntrack
// entry) that asks again and again.
class UdpClient {
 public:
  UdpClient(const Netns& from, Ipv4Address addr, uint16_t port) : fd_(SocketIn(from, SOCK_DGRAM)) {
    sockaddr_in sa = SockAddr(addr, port);
    CheckSys(::connect(fd_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), "connect udp");
  }
  // Sends until an answer comes (datagrams may be lost while rules change).
  Answer Ask(std::chrono::milliseconds timeout = std::chrono::seconds(3)) {
    Answer a;
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (::send(fd_.get(), "?", 1, 0) < 0) {
        a.error = errno;
        return a;
      }
      if (WaitFor(fd_.get(), POLLIN,
                  std::min(deadline, Clock::now() + std::chrono::milliseconds(300)))) {
        char buf[256];
        ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
        if (n < 0) {
          a.error = errno;
          return a;
        }
        return Split(a, std::string(buf, static_cast<size_t>(n)));
      }
    }
    a.error = ETIMEDOUT;
    return a;
  }

 private:
  UniqueFd fd_;
};

// Chain names of an nft listing ("chain NAME {") or of a plan ("add chain ip kin-proxy NAME").
std::set<std::string> ListedChains(const std::string& listing) {
  std::set<std::string> out;
  static const std::regex re(R"(^\s*chain (\S+) \{)");
  std::istringstream in(listing);
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_search(line, m, re)) out.insert(m[1]);
  }
  return out;
}
std::set<std::string> PlannedChains(const std::string& plan) {
  std::set<std::string> out;
  static const std::regex re(R"(^add chain ip kin-proxy (\S+))");
  std::istringstream in(plan);
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_search(line, m, re)) out.insert(m[1]);
  }
  return out;
}

// What a table holds, independent of the order it was built in: per chain
// its rules, per set or map its declaration lines and its elements.
std::map<std::string, std::vector<std::string>> Normalized(const std::string& listing) {
  std::map<std::string, std::vector<std::string>> out;
  std::string block;
  bool in_elements = false;
  std::istringstream in(listing);
  for (std::string line; std::getline(in, line);) {
    size_t b = line.find_first_not_of(" \t");
    if (b == std::string::npos) continue;
    line = line.substr(b);
    if (line.rfind("table ", 0) == 0) continue;
    if (line == "}") {
      if (in_elements) {
        in_elements = false;
      } else {
        block.clear();
      }
      continue;
    }
    if (line.rfind("chain ", 0) == 0 || line.rfind("map ", 0) == 0 || line.rfind("set ", 0) == 0) {
      block = line;
      out[block];
      continue;
    }
    if (line.rfind("elements = {", 0) == 0) {
      in_elements = true;
      line = line.substr(std::string("elements = {").size());
    }
    if (in_elements) {
      bool last = !line.empty() && line.back() == '}';
      if (last) line.pop_back();
      std::istringstream els(line);
      for (std::string e; std::getline(els, e, ',');) {
        size_t f = e.find_first_not_of(' '), l = e.find_last_not_of(' ');
        if (f != std::string::npos) out[block].push_back("element " + e.substr(f, l - f + 1));
      }
      if (last) in_elements = false;
      continue;
    }
    out[block].push_back(line);
  }
  // Chains emptied by incremental syncs wait for a later one to delete
  // them (netstack/nft_proxy.h): an empty chain holds nothing.
  std::erase_if(
      out, [](const auto& kv) { return kv.first.rfind("chain ", 0) == 0 && kv.second.empty(); });
  for (auto& [name, lines] : out) {
    // Elements come in hash order; rules keep theirs.
    std::stable_partition(lines.begin(), lines.end(),
                          [](const std::string& l) { return l.rfind("element ", 0) != 0; });
    auto first = std::find_if(lines.begin(), lines.end(),
                              [](const std::string& l) { return l.rfind("element ", 0) == 0; });
    std::sort(first, lines.end());
  }
  return out;
}

// Names of the chains that hold rules.
std::set<std::string> NonEmptyChains(const std::string& listing) {
  std::set<std::string> out;
  for (const auto& [block, lines] : Normalized(listing)) {
    if (block.rfind("chain ", 0) == 0) out.insert(block.substr(6, block.size() - 6 - 2));
  }
  return out;
}

std::set<std::string> HostTables() {
  CommandResult r = RunCommand({"nft", "list", "tables"}, std::chrono::seconds(10));
  std::set<std::string> out;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) out.insert(line);
  return out;
}

class ServiceProxyKernelTest : public KernelTest {
 protected:
  struct Pod {
    std::string name;
    NamedNetns ns;
    NetworkPlan plan;
    Ipv4Address ip;
    std::unique_ptr<EchoServer> server;
  };

  void SetUp() override {
    KernelTest::SetUp();
    if (IsSkipped()) return;
    host_tables_ = HostTables();
    net_.cluster = "svc";
    net_.netns_prefix = prefix() + "-";
    net_.external.enabled = false;
    net_.nodes = {{"a", A("172.18.0.2"), C("10.244.1.0/24")}};
    topology_ = PlanTopology(net_);
    ApplyPlan(topology_);
    applied_ = true;
    node_ = NodeNetnsName(net_, "a");
    for (const char* name : {"p1", "p2", "p3"}) AddPod(name);
  }

  void TearDown() override {
    // Servers stop before their namespaces go; pods before the node.
    for (Pod& p : pods_) p.server.reset();
    for (Pod& p : pods_) {
      try {
        RemovePlan(p.plan);
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
      }
    }
    pods_.clear();
    if (applied_) RemovePlan(topology_);
    if (!host_tables_.empty() || !IsSkipped()) {
      // The host's own namespace got no table from us.
      EXPECT_EQ(HostTables(), host_tables_);
    }
    KernelTest::TearDown();
  }

  void AddPod(const std::string& name) {
    Pod p{name, NamedNetns::Create(Name("-" + name, 200)), {}, {}, nullptr};
    PodInterface pod;
    pod.node_netns = node_;
    pod.pod_netns = p.ns.name();
    pod.host_veth = HostVethName(prefix() + name);
    pod.address = Ipv4Cidr(A("10.244.1.0"), 24);
    pod.address = Ipv4Cidr(pod.address.Nth(2 + pods_.size()), 24);
    pod.gateway = A("10.244.1.1");
    p.plan = PlanPodAttach(pod);
    ApplyPlan(p.plan);
    p.ip = pod.address.address();
    p.server = std::make_unique<EchoServer>(name, p.ns.ns());
    pods_.push_back(std::move(p));
  }

  Pod& pod(const std::string& name) {
    for (Pod& p : pods_) {
      if (p.name == name) return p;
    }
    throw Error::NotFound(name);
  }
  ProxyEndpoint Ep(const std::string& name) { return {pod(name).ip, kServerPort}; }

  ProxyState State() {
    ProxyState s;
    s.node_ips = {A("172.18.0.2")};
    s.cluster_cidr = C("10.244.0.0/16");
    s.service_cidr = C("10.96.0.0/16");
    return s;
  }
  static ProxyServicePort Svc(const char* name, L4Protocol proto, const char* ip, uint16_t port,
                              std::vector<ProxyEndpoint> eps) {
    ProxyServicePort p;
    p.ns = "default";
    p.name = name;
    p.protocol = proto;
    p.cluster_ip = A(ip);
    p.port = port;
    p.cluster_endpoints = std::move(eps);
    return p;
  }
  static void Put(ProxyState& s, ProxyServicePort p) { s.ports[p.Key()] = std::move(p); }

  // web (p1, p2; NodePort 30080), sticky (p1, p2; ClientIP), empty (no
  // endpoints), dns (UDP; p1, p2), self (p1 only, for hairpin).
  ProxyState Services() {
    ProxyState s = State();
    ProxyServicePort web = Svc("web", L4Protocol::kTcp, "10.96.0.100", 80, {Ep("p1"), Ep("p2")});
    web.node_port = 30080;
    Put(s, web);
    ProxyServicePort sticky =
        Svc("sticky", L4Protocol::kTcp, "10.96.0.101", 80, {Ep("p1"), Ep("p2")});
    sticky.affinity_timeout_seconds = 60;
    Put(s, sticky);
    Put(s, Svc("empty", L4Protocol::kTcp, "10.96.0.102", 80, {}));
    Put(s, Svc("dns", L4Protocol::kUdp, "10.96.0.103", 53, {Ep("p1"), Ep("p2")}));
    Put(s, Svc("self", L4Protocol::kTcp, "10.96.0.104", 80, {Ep("p1")}));
    return s;
  }

  const Netns& PodNs(const std::string& name) { return pod(name).ns.ns(); }
  Netns NodeNs() { return Netns::Open(node_); }

  // Connects until `want` distinct servers answered or `max` tries.
  std::set<std::string> ServersSeen(const Netns& from, Ipv4Address ip, uint16_t port, size_t want,
                                    int max) {
    std::set<std::string> seen;
    for (int i = 0; i < max && seen.size() < want; ++i) {
      Answer a = AskTcp(from, ip, port);
      EXPECT_EQ(a.error, 0) << strerror(a.error);
      if (a.error == 0) seen.insert(a.server);
    }
    return seen;
  }

  ClusterNetwork net_;
  NetworkPlan topology_;
  bool applied_ = false;
  std::string node_;
  std::vector<Pod> pods_;
  std::set<std::string> host_tables_;
};

TEST_F(ServiceProxyKernelTest, ClusterIpFromPodAndNode) {
  auto proxy = NewProxyBackend(ProxyMode::kNftables, node_);
  proxy->Sync(Services());

  Answer a = AskTcp(PodNs("p3"), A("10.96.0.100"), 80);
  ASSERT_EQ(a.error, 0) << strerror(a.error);
  EXPECT_THAT(a.server, ::testing::AnyOf("p1", "p2"));
  EXPECT_EQ(a.peer, pod("p3").ip.ToString()) << "the backend sees the client pod's own address";

  // From the node itself (its source is cbr0's address).
  Answer n = AskTcp(NodeNs(), A("10.96.0.100"), 80);
  ASSERT_EQ(n.error, 0) << strerror(n.error);
  EXPECT_THAT(n.server, ::testing::AnyOf("p1", "p2"));

  // Several connections spread over both endpoints.
  EXPECT_EQ(ServersSeen(PodNs("p3"), A("10.96.0.100"), 80, 2, 200),
            (std::set<std::string>{"p1", "p2"}));
  proxy->Remove();
  EXPECT_FALSE(NftContext(node_).HasTable("ip", kNftProxyTable));
}

TEST_F(ServiceProxyKernelTest, AffinityKeepsOneEndpoint) {
  auto proxy = NewProxyBackend(ProxyMode::kNftables, node_);
  proxy->Sync(Services());
  std::set<std::string> seen;
  for (int i = 0; i < 30; ++i) {
    Answer a = AskTcp(PodNs("p3"), A("10.96.0.101"), 80);
    ASSERT_EQ(a.error, 0) << strerror(a.error);
    seen.insert(a.server);
  }
  EXPECT_EQ(seen.size(), 1u) << "ClientIP affinity: every connection to the same endpoint";
}

TEST_F(ServiceProxyKernelTest, NoEndpointsAndUnusedPortsAreRefusedAtOnce) {
  auto proxy = NewProxyBackend(ProxyMode::kNftables, node_);
  proxy->Sync(Services());
  for (const Netns* from : {&PodNs("p3")}) {
    Answer a = AskTcp(*from, A("10.96.0.102"), 80);
    EXPECT_EQ(a.error, ECONNREFUSED) << strerror(a.error);
    EXPECT_LT(a.took, std::chrono::seconds(1));
    // A port the ClusterIP does not serve.
    Answer b = AskTcp(*from, A("10.96.0.100"), 81);
    EXPECT_EQ(b.error, ECONNREFUSED) << strerror(b.error);
    EXPECT_LT(b.took, std::chrono::seconds(1));
  }
  Answer n = AskTcp(NodeNs(), A("10.96.0.102"), 80);
  EXPECT_EQ(n.error, ECONNREFUSED) << strerror(n.error);
  Answer m = AskTcp(NodeNs(), A("10.96.0.100"), 81);
  EXPECT_EQ(m.error, ECONNREFUSED) << strerror(m.error);
}

TEST_F(ServiceProxyKernelTest, NodePortOnTheNodeIp) {
  auto proxy = NewProxyBackend(ProxyMode::kNftables, node_);
  proxy->Sync(Services());
  Answer a = AskTcp(PodNs("p3"), A("172.18.0.2"), 30080);
  ASSERT_EQ(a.error, 0) << strerror(a.error);
  EXPECT_THAT(a.server, ::testing::AnyOf("p1", "p2"));
  // From outside the node (the network namespace, 172.18.0.1): external
  // traffic under policy Cluster is masqueraded to the node.
  Answer b = AskTcp(Netns::Open(NetworkNetnsName(net_)), A("172.18.0.2"), 30080);
  ASSERT_EQ(b.error, 0) << strerror(b.error);
  EXPECT_THAT(b.server, ::testing::AnyOf("p1", "p2"));
  EXPECT_EQ(b.peer, "10.244.1.1");
}

TEST_F(ServiceProxyKernelTest, ClusterIpFromOutsideTheClusterIsMasqueraded) {
  auto proxy = NewProxyBackend(ProxyMode::kNftables, node_);
  proxy->Sync(Services());
  // The network namespace (172.18.0.1, outside cluster_cidr) routes the
  // service range to the node, as a router in front of a cluster may.
  Netns outside = Netns::Open(NetworkNetnsName(net_));
  NetlinkSocket::OpenIn(outside).AddRoute({C("10.96.0.0/16"), A("172.18.0.2")});
  Answer a = AskTcp(outside, A("10.96.0.100"), 80);
  ASSERT_EQ(a.error, 0) << strerror(a.error);
  EXPECT_THAT(a.server, ::testing::AnyOf("p1", "p2"));
  // The reply must come back through the node: the source is the node's.
  EXPECT_EQ(a.peer, "10.244.1.1");
}

TEST_F(ServiceProxyKernelTest, ExternalPolicyLocalKeepsTheClientIp) {
  ProxyState s = Services();
  ProxyServicePort& web = s.ports.at("default/web:");
  web.external_local = true;
  web.local_endpoints = web.cluster_endpoints;
  auto proxy = NewProxyBackend(ProxyMode::kNftables, node_);
  proxy->Sync(s);
  Answer b = AskTcp(Netns::Open(NetworkNetnsName(net_)), A("172.18.0.2"), 30080);
  ASSERT_EQ(b.error, 0) << strerror(b.error);
  EXPECT_EQ(b.peer, "172.18.0.1") << "no masquerade under externalTrafficPolicy Local";
}

TEST_F(ServiceProxyKernelTest, HairpinPodReachesItself) {
  auto proxy = NewProxyBackend(ProxyMode::kNftables, node_);
  proxy->Sync(Services());
  Answer a = AskTcp(PodNs("p1"), A("10.96.0.104"), 80);
  ASSERT_EQ(a.error, 0) << strerror(a.error);
  EXPECT_EQ(a.server, "p1");
  // Masqueraded, so the reply goes back through the node and the service.
  EXPECT_NE(a.peer, pod("p1").ip.ToString());
}

TEST_F(ServiceProxyKernelTest, UdpAndConntrackFlushOnEndpointRemoval) {
  auto proxy = NewProxyBackend(ProxyMode::kNftables, node_);
  ProxyState s = Services();
  proxy->Sync(s);
  UdpClient client(PodNs("p3"), A("10.96.0.103"), 53);
  Answer first = client.Ask();
  ASSERT_EQ(first.error, 0) << strerror(first.error);
  EXPECT_THAT(first.server, ::testing::AnyOf("p1", "p2"));
  EXPECT_EQ(first.peer, pod("p3").ip.ToString());
  // The same socket keeps its conntrack entry, so the same endpoint.
  EXPECT_EQ(client.Ask().server, first.server);

  // Remove the endpoint that answered (its server keeps running): only the
  // conntrack flush moves the client to the other one.
  std::string other = first.server == "p1" ? "p2" : "p1";
  s.ports.at("default/dns:").cluster_endpoints = {Ep(other)};
  proxy->Sync(s);
  Answer after = client.Ask();
  ASSERT_EQ(after.error, 0) << strerror(after.error);
  EXPECT_EQ(after.server, other);
}

TEST_F(ServiceProxyKernelTest, IncrementalSyncStopsTrafficToRemovedEndpoint) {
  auto proxy = NewProxyBackend(ProxyMode::kNftables, node_);
  ProxyState s = Services();
  proxy->Sync(s);
  ASSERT_EQ(ServersSeen(PodNs("p3"), A("10.96.0.100"), 80, 2, 200).size(), 2u);

  ProxyState fewer = s;
  fewer.ports.at("default/web:").cluster_endpoints = {Ep("p1")};
  ASSERT_THAT(PlanNftIncremental(s, fewer).script, Not(HasSubstr("delete table")));
  proxy->Sync(fewer);
  for (int i = 0; i < 30; ++i) {
    Answer a = AskTcp(PodNs("p3"), A("10.96.0.100"), 80);
    ASSERT_EQ(a.error, 0) << strerror(a.error);
    EXPECT_EQ(a.server, "p1");
  }
  // The table is exactly what a full plan of the new state makes.
  NftContext nft(node_);
  EXPECT_EQ(NonEmptyChains(nft.List("list table ip kin-proxy")), PlannedChains(PlanNftFull(fewer)));
  // p2's endpoint chain is emptied, and left for a sync that deletes anyway.
  EXPECT_EQ(ListedChains(nft.List("list table ip kin-proxy")).size(),
            PlannedChains(PlanNftFull(fewer)).size() + 1);

  // A service removed and another added in one sync.
  ProxyState swapped = fewer;
  swapped.ports.erase("default/web:");
  Put(swapped, Svc("web2", L4Protocol::kTcp, "10.96.0.105", 80, {Ep("p2")}));
  proxy->Sync(swapped);
  // An address of the service range that is no ClusterIP any more is
  // dropped (kube-proxy's cluster-ips-check), not refused.
  EXPECT_EQ(AskTcp(PodNs("p3"), A("10.96.0.100"), 80, std::chrono::milliseconds(300)).error,
            ETIMEDOUT);
  EXPECT_EQ(AskTcp(PodNs("p3"), A("10.96.0.105"), 80).server, "p2");
  // This sync deleted map elements, so the chains emptied before went too.
  EXPECT_EQ(ListedChains(nft.List("list table ip kin-proxy")), PlannedChains(PlanNftFull(swapped)));
}

TEST_F(ServiceProxyKernelTest, FullSyncFromAFreshBackendLeavesNothingStale) {
  {
    auto old = NewProxyBackend(ProxyMode::kNftables, node_);
    old->Sync(Services());
  }
  NftContext nft(node_);
  // Left over by some earlier run: a chain and a map element of a service
  // that no longer exists.
  nft.Run(
      "add chain ip kin-proxy service-STALE000-default/gone/tcp/\n"
      "add element ip kin-proxy service-ips { 10.96.0.199 . tcp . 80 : goto "
      "service-STALE000-default/gone/tcp/\n}\n");
  ProxyState now = State();
  Put(now, Svc("web", L4Protocol::kTcp, "10.96.0.100", 80, {Ep("p2")}));
  auto fresh = NewProxyBackend(ProxyMode::kNftables, node_);
  fresh->Sync(now);
  const std::string listing = nft.List("list table ip kin-proxy");
  EXPECT_EQ(ListedChains(listing), PlannedChains(PlanNftFull(now)));
  EXPECT_THAT(listing, Not(HasSubstr("STALE")));
  EXPECT_THAT(listing, Not(HasSubstr("10.96.0.199")));
  EXPECT_EQ(AskTcp(PodNs("p3"), A("10.96.0.100"), 80).server, "p2");
  fresh->Remove();
  EXPECT_FALSE(nft.HasTable("ip", kNftProxyTable));
  fresh->Remove();  // nothing there: not an error
}

// Every kind of service port, changed step by step with incremental syncs:
// after each step the table equals what a full sync of the same state
// makes in a second namespace (rules, sets, map elements).
TEST_F(ServiceProxyKernelTest, IncrementalSyncsEqualFullSyncs) {
  ProxyState s = State();
  ProxyServicePort web = Svc("web", L4Protocol::kTcp, "10.96.0.20", 80,
                             {{A("10.244.2.5"), 8080}, {A("10.244.3.5"), 8080}});
  web.node_port = 30080;
  web.external_ips = {A("203.0.113.10")};
  Put(s, web);
  ProxyServicePort sticky = Svc("sticky", L4Protocol::kTcp, "10.96.0.30", 80,
                                {{A("10.244.2.7"), 80}, {A("10.244.3.7"), 80}});
  sticky.affinity_timeout_seconds = 10800;
  Put(s, sticky);
  ProxyServicePort lb =
      Svc("lb", L4Protocol::kTcp, "10.96.0.50", 80, {{A("10.244.1.9"), 80}, {A("10.244.3.9"), 80}});
  lb.node_port = 30050;
  lb.load_balancer_ips = {A("198.51.100.5")};
  lb.external_local = true;
  lb.local_endpoints = {{A("10.244.1.9"), 80}};
  Put(s, lb);
  ProxyServicePort internal =
      Svc("internal", L4Protocol::kTcp, "10.96.0.60", 80, {{A("10.244.3.11"), 80}});
  internal.internal_local = true;
  Put(s, internal);
  Put(s, Svc("empty", L4Protocol::kUdp, "10.96.0.40", 53, {}));
  // The kernel has SCTP conntrack and NAT (no SCTP sockets: no traffic here).
  Put(s, Svc("sctp", L4Protocol::kSctp, "10.96.0.70", 9999, {{A("10.244.3.12"), 9999}}));

  std::vector<std::pair<std::string, std::function<void(ProxyState&)>>> steps = {
      {"endpoint removed",
       [](ProxyState& x) { x.ports.at("default/web:").cluster_endpoints.pop_back(); }},
      {"affinity on",
       [](ProxyState& x) { x.ports.at("default/web:").affinity_timeout_seconds = 60; }},
      {"affinity timeout changed",
       [](ProxyState& x) { x.ports.at("default/web:").affinity_timeout_seconds = 90; }},
      {"service removed", [](ProxyState& x) { x.ports.erase("default/sticky:"); }},
      {"service added",
       [](ProxyState& x) {
         Put(x, Svc("new", L4Protocol::kTcp, "10.96.0.80", 443, {{A("10.244.2.20"), 8443}}));
       }},
      {"no endpoints any more",
       [](ProxyState& x) { x.ports.at("default/sctp:").cluster_endpoints.clear(); }},
      {"endpoints again",
       [](ProxyState& x) {
         x.ports.at("default/empty:").cluster_endpoints = {{A("10.244.2.2"), 53}};
       }},
      {"local endpoint gained",
       [](ProxyState& x) {
         auto& p = x.ports.at("default/internal:");
         p.cluster_endpoints = {{A("10.244.1.30"), 80}, {A("10.244.3.11"), 80}};
         p.local_endpoints = {{A("10.244.1.30"), 80}};
       }},
      {"external policy back to Cluster",
       [](ProxyState& x) { x.ports.at("default/lb:").external_local = false; }},
      {"a second port on the web ClusterIP",
       [](ProxyState& x) {
         ProxyServicePort p = x.ports.at("default/web:");
         p.port_name = "https";
         p.port = 443;
         p.node_port = 0;
         Put(x, p);
       }},
      {"the first port of web removed", [](ProxyState& x) { x.ports.erase("default/web:"); }},
      {"everything removed", [](ProxyState& x) { x.ports.clear(); }},
  };
  auto proxy = NewProxyBackend(ProxyMode::kNftables, node_);
  proxy->Sync(s);
  NftContext nft(node_);
  // The normalized form sees rules and elements (so the comparisons below
  // compare something).
  auto first = Normalized(nft.List("list table ip kin-proxy"));
  ASSERT_TRUE(first.contains("map service-ips {"));
  EXPECT_THAT(first["map service-ips {"],
              ::testing::Contains(HasSubstr("10.96.0.20 . tcp . 80 : goto service-")));
  EXPECT_THAT(first["chain services {"],
              ::testing::Contains("ip daddr . meta l4proto . th dport vmap @service-ips"));
  NamedNetns ref_ns = NamedNetns::Create(Name("-ref"));
  NftContext ref(ref_ns.name());
  for (const auto& [what, change] : steps) {
    ProxyState next = s;
    change(next);
    ASSERT_THAT(PlanNftIncremental(s, next).script, Not(HasSubstr("delete table"))) << what;
    proxy->Sync(next);
    NewProxyBackend(ProxyMode::kNftables, ref_ns.name())->Sync(next);
    EXPECT_EQ(Normalized(nft.List("list table ip kin-proxy")),
              Normalized(ref.List("list table ip kin-proxy")))
        << "after: " << what;
    s = std::move(next);
  }
  // The last step deleted elements, so no emptied chain is left behind.
  EXPECT_EQ(ListedChains(nft.List("list table ip kin-proxy")),
            NonEmptyChains(nft.List("list table ip kin-proxy")));
}

TEST_F(ServiceProxyKernelTest, AFailedSyncIsFollowedByAFullOne) {
  auto proxy = NewProxyBackend(ProxyMode::kNftables, node_);
  ProxyState s = Services();
  proxy->Sync(s);
  // Someone removes the table behind the proxy's back: the incremental
  // sync that follows fails, naming the namespace...
  NftContext nft(node_);
  nft.Run("delete table ip kin-proxy\n");
  ProxyState fewer = s;
  fewer.ports.at("default/web:").cluster_endpoints = {Ep("p2")};
  try {
    proxy->Sync(fewer);
    FAIL() << "expected the incremental sync to fail";
  } catch (const Error& e) {
    EXPECT_THAT(e.message(), HasSubstr("netns `" + node_ + "`: nft: line "));
  }
  // ...and the next one is full: the table is back, complete.
  proxy->Sync(fewer);
  EXPECT_EQ(ListedChains(nft.List("list table ip kin-proxy")), PlannedChains(PlanNftFull(fewer)));
  EXPECT_EQ(AskTcp(PodNs("p3"), A("10.96.0.100"), 80).server, "p2");
}

TEST_F(ServiceProxyKernelTest, BadNamespaceIsNamed) {
  try {
    NewProxyBackend(ProxyMode::kNftables, Name("-nope"))->Sync(State());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_THAT(e.message(), HasSubstr(Name("-nope")));
  }
}

}  // namespace
}  // namespace kin::netstack
