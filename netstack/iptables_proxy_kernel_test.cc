// Kernel tests (root): the iptables-mode service proxy in a real node
// namespace (bridge cbr0, bridged traffic seen by netfilter) with pods on
// it, real iptables-restore, and real TCP/UDP servers in the pods that
// answer with their name and the peer address they see. All traffic stays
// inside namespaces these tests create; iptables runs only inside them.
#include "netstack/iptables_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <set>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/error.h"
#include "base/netns.h"
#include "base/process.h"
#include "netstack/topology.h"
#include "testing/kernel_fixture.h"

namespace kin::netstack {
namespace {

using ::testing::HasSubstr;
using testing::KernelTest;
using ::testing::Not;
using Clock = std::chrono::steady_clock;

Ipv4Address A(const char* s) { return Ipv4Address::Parse(s); }

sockaddr_in SockAddr(Ipv4Address a, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = a.network_order();
  return sa;
}

// A socket made inside `ns` (a socket keeps the namespace it was made in).
UniqueFd SocketIn(const Netns& ns, int type) {
  UniqueFd fd;
  RunInNetns(ns, [&] {
    fd = UniqueFd(CheckSys(::socket(AF_INET, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), "socket"));
  });
  return fd;
}

// True when `fd` is ready for `events` or has an error or hang-up to report
// (a refused connect shows as POLLERR|POLLHUP, not always POLLOUT).
bool WaitFor(int fd, short events, std::chrono::milliseconds timeout) {
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, static_cast<int>(timeout.count())) == 1 && p.revents != 0;
}

// A pod's servers: TCP and UDP on `port`, answering "<name> <peer ip>" on a
// thread of its own; stopped and joined on destruction.
class EchoServer {
 public:
  EchoServer(const Netns& ns, std::string name, Ipv4Address ip, uint16_t port)
      : name_(std::move(name)) {
    tcp_ = SocketIn(ns, SOCK_STREAM);
    udp_ = SocketIn(ns, SOCK_DGRAM);
    int one = 1;
    ::setsockopt(tcp_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sa = SockAddr(ip, port);
    CheckSys(::bind(tcp_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), "bind tcp");
    CheckSys(::listen(tcp_.get(), 64), "listen");
    CheckSys(::bind(udp_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), "bind udp");
    int p[2];
    CheckSys(::pipe2(p, O_CLOEXEC), "pipe");
    stop_r_ = UniqueFd(p[0]);
    stop_w_ = UniqueFd(p[1]);
    thread_ = std::thread([this] { Loop(); });
  }
  EchoServer(const EchoServer&) = delete;
  EchoServer& operator=(const EchoServer&) = delete;
  ~EchoServer() {
    (void)!::write(stop_w_.get(), "x", 1);
    thread_.join();
  }
  const std::string& name() const { return name_; }
  int tcp_accepted() const { return accepted_.load(); }

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
          ++accepted_;
          std::string reply = Reply(peer);
          (void)::send(c.get(), reply.data(), reply.size(), MSG_NOSIGNAL);
        }
      }
      if (fds[2].revents & POLLIN) {
        char buf[512];
        sockaddr_in peer{};
        socklen_t len = sizeof peer;
        ssize_t n =
            ::recvfrom(udp_.get(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&peer), &len);
        if (n >= 0) {
          std::string reply = Reply(peer);
          (void)::sendto(udp_.get(), reply.data(), reply.size(), 0,
                         reinterpret_cast<sockaddr*>(&peer), len);
        }
      }
    }
  }
  std::string Reply(const sockaddr_in& peer) const {
    return name_ + " " + Ipv4Address::FromNetworkOrder(peer.sin_addr.s_addr).ToString();
  }

  std::string name_;
  UniqueFd tcp_, udp_, stop_r_, stop_w_;
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

struct Answer {
  int error = 0;            // errno of a failed connect, ETIMEDOUT when no answer came
  std::string server;       // who answered
  std::string seen_source;  // the client address the server saw
  std::string reply_from;   // UDP: the address the reply came from
  std::chrono::milliseconds took{0};
};

Answer Split(Answer a, const std::string& reply) {
  size_t sp = reply.find(' ');
  a.server = reply.substr(0, sp);
  if (sp != std::string::npos) a.seen_source = reply.substr(sp + 1);
  return a;
}

// One TCP connection from inside `from` to addr:port; reads the answer.
Answer TcpAsk(const Netns& from, Ipv4Address addr, uint16_t port,
              std::chrono::milliseconds timeout = std::chrono::seconds(3)) {
  Answer a;
  auto start = Clock::now();
  UniqueFd fd = SocketIn(from, SOCK_STREAM);
  sockaddr_in sa = SockAddr(addr, port);
  int rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  if (rc < 0 && errno != EINPROGRESS) {
    a.error = errno;
    return a;
  }
  if (!WaitFor(fd.get(), POLLOUT, timeout)) {
    a.error = ETIMEDOUT;
    return a;
  }
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
  a.took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  if (err != 0) {
    a.error = err;
    return a;
  }
  std::string reply;
  char buf[256];
  while (WaitFor(fd.get(), POLLIN, timeout)) {
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n <= 0) break;
    reply.append(buf, static_cast<size_t>(n));
  }
  if (reply.empty()) a.error = ETIMEDOUT;
  return Split(a, reply);
}

// One UDP datagram on `fd` to addr:port; waits for the answer.
Answer UdpAskOn(const UniqueFd& fd, Ipv4Address addr, uint16_t port,
                std::chrono::milliseconds timeout = std::chrono::seconds(3)) {
  Answer a;
  sockaddr_in sa = SockAddr(addr, port);
  CheckSys(::sendto(fd.get(), "?", 1, 0, reinterpret_cast<sockaddr*>(&sa), sizeof sa), "sendto");
  if (!WaitFor(fd.get(), POLLIN, timeout)) {
    a.error = ETIMEDOUT;
    return a;
  }
  char buf[256];
  sockaddr_in peer{};
  socklen_t len = sizeof peer;
  ssize_t n = ::recvfrom(fd.get(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&peer), &len);
  if (n <= 0) {
    a.error = n < 0 ? errno : ETIMEDOUT;
    return a;
  }
  a = Split(a, std::string(buf, static_cast<size_t>(n)));
  a.reply_from = Ipv4Address::FromNetworkOrder(peer.sin_addr.s_addr).ToString();
  return a;
}

// The same from a new socket inside `from`.
Answer UdpAsk(const Netns& from, Ipv4Address addr, uint16_t port) {
  return UdpAskOn(SocketIn(from, SOCK_DGRAM), addr, port);
}

std::string IptablesSave(const std::string& netns) {
  CommandResult r =
      RunCommand({"ip", "netns", "exec", netns, "iptables-save"}, std::chrono::seconds(20));
  EXPECT_TRUE(r.status.success()) << r.err;
  return r.out;
}

// Chains named KUBE-* in an iptables-save dump.
std::set<std::string> KubeChains(const std::string& save) {
  std::set<std::string> out;
  for (const auto& [table, chains] : ParseIptablesSave(save).chains) {
    for (const auto& c : chains) {
      if (c.rfind("KUBE-", 0) == 0) out.insert(table + " " + c);
    }
  }
  return out;
}

constexpr uint16_t kPodPort = 8080;

class IptablesProxyKernelTest : public KernelTest {
 protected:
  void SetUp() override {
    KernelTest::SetUp();
    if (::testing::Test::IsSkipped()) return;
    net_.cluster = "ipt";
    net_.netns_prefix = prefix() + "-";
    net_.external.enabled = false;
    net_.nodes = {{"a", A("172.18.0.2"), Ipv4Cidr::Parse("10.244.1.0/24")}};
    topology_ = PlanTopology(net_);
    ApplyPlan(topology_);
    topology_applied_ = true;
    node_ = NodeNetnsName(net_, "a");
    client_ = AttachPod("client", "10.244.1.2/24");
    for (int i = 0; i < 3; ++i) {
      std::string name = "be" + std::to_string(i);
      Ipv4Address ip(A("10.244.1.3").value() + i);
      backends_.push_back(AttachPod(name, ip.ToString() + "/24"));
      servers_.push_back(
          std::make_unique<EchoServer>(backends_.back().ns.ns(), name, ip, kPodPort));
    }
  }

  void TearDown() override {
    // Servers first (their threads), then the kernel objects; the fixture
    // then removes anything with the prefix that is left and checks.
    servers_.clear();
    try {
      for (auto& p : backends_) RemovePlan(p.plan);
      if (client_) RemovePlan(client_->plan);
      if (topology_applied_) RemovePlan(topology_);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "cleanup: " << e.what();
    }
    backends_.clear();
    client_.reset();
    KernelTest::TearDown();
  }

  struct Pod {
    NamedNetns ns;
    NetworkPlan plan;
    Ipv4Address ip;
  };
  Pod AttachPod(const std::string& suffix, const std::string& cidr) {
    NamedNetns ns = NamedNetns::Create(Name("-" + suffix, 200));
    PodInterface pod;
    pod.node_netns = node_;
    pod.pod_netns = ns.name();
    pod.host_veth = HostVethName(prefix() + suffix);
    pod.address = Ipv4Cidr::Parse(cidr);
    pod.gateway = pod.address.Masked().Nth(1);
    NetworkPlan plan = PlanPodAttach(pod);
    ApplyPlan(plan);
    return Pod{std::move(ns), std::move(plan), pod.address.address()};
  }

  ProxyState State() const {
    ProxyState s;
    s.node_ips = {A("172.18.0.2")};
    s.cluster_cidr = Ipv4Cidr::Parse("10.244.0.0/16");
    s.service_cidr = Ipv4Cidr::Parse("10.96.0.0/16");
    ProxyServicePort web;
    web.ns = "default";
    web.name = "web";
    web.port_name = "http";
    web.cluster_ip = A("10.96.0.20");
    web.port = 80;
    web.node_port = 30080;
    for (const auto& b : backends_) web.cluster_endpoints.push_back({b.ip, kPodPort});
    web.local_endpoints = web.cluster_endpoints;
    s.ports["default/web:http"] = web;

    ProxyServicePort dns = web;
    dns.name = "dns";
    dns.port_name = "dns";
    dns.protocol = L4Protocol::kUdp;
    dns.cluster_ip = A("10.96.0.10");
    dns.port = 53;
    dns.node_port = 0;
    s.ports["default/dns:dns"] = dns;

    ProxyServicePort empty;
    empty.ns = "default";
    empty.name = "empty";
    empty.cluster_ip = A("10.96.0.30");
    empty.port = 80;
    s.ports["default/empty:"] = empty;
    return s;
  }

  Netns Node() const { return Netns::Open(node_); }
  const Netns& Client() const { return client_->ns.ns(); }

  ClusterNetwork net_;
  NetworkPlan topology_;
  bool topology_applied_ = false;
  std::string node_;
  std::optional<Pod> client_;
  std::vector<Pod> backends_;
  std::vector<std::unique_ptr<EchoServer>> servers_;
};

TEST_F(IptablesProxyKernelTest, ClusterIpNodePortAndNoEndpoints) {
  // Through the mode dispatch, as the proxy controller makes it.
  auto backend = NewProxyBackend(ProxyMode::kIptables, node_);
  ProxyState state = State();
  backend->Sync(state);

  // From another pod: a backend answers and sees the client pod's own IP.
  Answer a = TcpAsk(Client(), A("10.96.0.20"), 80);
  ASSERT_EQ(a.error, 0) << strerror(a.error);
  EXPECT_THAT(a.server, ::testing::StartsWith("be"));
  EXPECT_EQ(a.seen_source, "10.244.1.2");

  // From the node itself (masqueraded: its source is not in the pod range).
  Answer n = TcpAsk(Node(), A("10.96.0.20"), 80);
  ASSERT_EQ(n.error, 0) << strerror(n.error);
  EXPECT_THAT(n.server, ::testing::StartsWith("be"));

  // Several connections reach more than one backend (each has 1/3).
  std::set<std::string> seen;
  for (int i = 0; i < 60 && seen.size() < 3; ++i) {
    Answer r = TcpAsk(Client(), A("10.96.0.20"), 80);
    ASSERT_EQ(r.error, 0) << strerror(r.error);
    seen.insert(r.server);
  }
  EXPECT_GE(seen.size(), 2u);

  // UDP: the reply comes back from the Service address (conntrack undoes
  // the DNAT), and the backend saw the pod.
  Answer u = UdpAsk(Client(), A("10.96.0.10"), 53);
  ASSERT_EQ(u.error, 0) << strerror(u.error);
  EXPECT_THAT(u.server, ::testing::StartsWith("be"));
  EXPECT_EQ(u.seen_source, "10.244.1.2");
  EXPECT_EQ(u.reply_from, "10.96.0.10");

  // No endpoints: refused at once (REJECT in filter), not a timeout.
  Answer e = TcpAsk(Client(), A("10.96.0.30"), 80);
  EXPECT_EQ(e.error, ECONNREFUSED) << strerror(e.error);
  EXPECT_LT(e.took, std::chrono::seconds(1));

  // NodePort, from outside the node (the network namespace): masqueraded
  // to the node's bridge address, so the reply returns through the node.
  Netns outside = Netns::Open(NetworkNetnsName(net_));
  Answer np = TcpAsk(outside, A("172.18.0.2"), 30080);
  ASSERT_EQ(np.error, 0) << strerror(np.error);
  EXPECT_THAT(np.server, ::testing::StartsWith("be"));
  EXPECT_EQ(np.seen_source, "10.244.1.1");

  // What a learner sees, as the guide draws it.
  std::string save = IptablesSave(node_);
  const ProxyServicePort& web = state.ports["default/web:http"];
  EXPECT_THAT(save, HasSubstr("-A PREROUTING -m comment --comment \"kubernetes service portals\" "
                              "-j KUBE-SERVICES"));
  EXPECT_THAT(save, HasSubstr(":" + IptablesClusterChain(web) + " - "));
  EXPECT_THAT(save, HasSubstr("-j " + IptablesClusterChain(web)));
  EXPECT_THAT(save, HasSubstr(":" + IptablesEndpointChain(web, web.cluster_endpoints[0]) + " - "));
  EXPECT_THAT(save, HasSubstr("-m statistic --mode random --probability 0.33333333349 -j "
                              "KUBE-SEP-"));
  EXPECT_THAT(save, HasSubstr("-m statistic --mode random --probability 0.50000000000 -j "
                              "KUBE-SEP-"));
  EXPECT_THAT(save, HasSubstr("--comment \"default/empty has no endpoints\""));

  backend->Remove();
  EXPECT_THAT(KubeChains(IptablesSave(node_)), ::testing::IsEmpty());
  EXPECT_THAT(IptablesSave(node_), Not(HasSubstr("KUBE-")));
}

TEST_F(IptablesProxyKernelTest, HairpinAndExternalTrafficPolicyLocal) {
  auto backend = NewIptablesProxyBackend(node_);
  ProxyState state = State();
  ProxyServicePort& web = state.ports["default/web:http"];
  // be2 counts as another node's pod: external traffic under policy Local
  // goes to be0 or be1 only, and keeps its source address.
  web.external_local = true;
  web.local_endpoints.pop_back();
  backend->Sync(state);

  Netns outside = Netns::Open(NetworkNetnsName(net_));
  std::set<std::string> seen;
  for (int i = 0; i < 30; ++i) {
    Answer r = TcpAsk(outside, A("172.18.0.2"), 30080);
    ASSERT_EQ(r.error, 0) << strerror(r.error);
    EXPECT_EQ(r.seen_source, "172.18.0.1");  // the client's own address
    seen.insert(r.server);
  }
  EXPECT_EQ(seen, (std::set<std::string>{"be0", "be1"}));

  // A pod reaching itself through its Service (hairpin): masqueraded, so
  // the reply goes back through the node and is un-NATed there.
  const Netns& be0 = backends_[0].ns.ns();
  Answer self;
  for (int i = 0; i < 60 && self.server != "be0"; ++i) {
    self = TcpAsk(be0, A("10.96.0.20"), 80);
    ASSERT_EQ(self.error, 0) << strerror(self.error);
  }
  ASSERT_EQ(self.server, "be0");
  EXPECT_EQ(self.seen_source, "10.244.1.1");
  backend->Remove();
}

TEST_F(IptablesProxyKernelTest, RemovedEndpointIsNotReachedAfterSync) {
  auto backend = NewIptablesProxyBackend(node_);
  ProxyState state = State();
  backend->Sync(state);
  // be2 goes away (the partial sync rewrites web's chains and deletes its
  // KUBE-SEP chain).
  ProxyServicePort& web = state.ports["default/web:http"];
  ProxyEndpoint gone = web.cluster_endpoints.back();
  web.cluster_endpoints.pop_back();
  web.local_endpoints.pop_back();
  backend->Sync(state);

  const int before = servers_[2]->tcp_accepted();
  std::set<std::string> seen;
  for (int i = 0; i < 30; ++i) {
    Answer r = TcpAsk(Client(), A("10.96.0.20"), 80);
    ASSERT_EQ(r.error, 0) << strerror(r.error);
    seen.insert(r.server);
  }
  EXPECT_EQ(seen, (std::set<std::string>{"be0", "be1"}));
  EXPECT_EQ(servers_[2]->tcp_accepted(), before);
  EXPECT_THAT(IptablesSave(node_), Not(HasSubstr(IptablesEndpointChain(web, gone))));

  // Every endpoint gone: refused at once.
  web.cluster_endpoints.clear();
  web.local_endpoints.clear();
  backend->Sync(state);
  Answer e = TcpAsk(Client(), A("10.96.0.20"), 80);
  EXPECT_EQ(e.error, ECONNREFUSED) << strerror(e.error);
  EXPECT_THAT(IptablesSave(node_), Not(HasSubstr(IptablesClusterChain(web))));

  backend->Remove();
  EXPECT_THAT(KubeChains(IptablesSave(node_)), ::testing::IsEmpty());
}

TEST_F(IptablesProxyKernelTest, UdpClientLeavesARemovedEndpoint) {
  auto backend = NewIptablesProxyBackend(node_);
  ProxyState state = State();
  backend->Sync(state);
  // One client socket (one source port): its datagrams follow one conntrack
  // entry, hence one backend, for as long as the entry lives.
  UniqueFd client = SocketIn(Client(), SOCK_DGRAM);
  Answer first = UdpAskOn(client, A("10.96.0.10"), 53);
  ASSERT_EQ(first.error, 0) << strerror(first.error);
  EXPECT_EQ(UdpAskOn(client, A("10.96.0.10"), 53).server, first.server);

  // That backend leaves the Service (its server still runs, so a stale
  // entry would still get answers from it).
  ProxyServicePort& dns = state.ports["default/dns:dns"];
  int index = first.server.back() - '0';
  auto drop = [&](std::vector<ProxyEndpoint>& eps) {
    std::erase(eps, ProxyEndpoint{backends_[index].ip, kPodPort});
  };
  drop(dns.cluster_endpoints);
  drop(dns.local_endpoints);
  backend->Sync(state);

  Answer next = UdpAskOn(client, A("10.96.0.10"), 53);
  ASSERT_EQ(next.error, 0) << strerror(next.error);
  EXPECT_NE(next.server, first.server);
  EXPECT_EQ(next.reply_from, "10.96.0.10");
  backend->Remove();
}

TEST_F(IptablesProxyKernelTest, NewBackendRemovesStaleChainsAndKeepsOneJumpEach) {
  ProxyState old_state = State();
  {
    // A proxy that dies without cleaning up (kin serve killed).
    auto dead = NewIptablesProxyBackend(node_);
    dead->Sync(old_state);
  }
  // A chain of a layout this version does not write, linked from INPUT.
  for (std::vector<std::string> args :
       {std::vector<std::string>{"-N", "KUBE-OLD-LAYOUT"},
        std::vector<std::string>{"-I", "INPUT", "-j", "KUBE-OLD-LAYOUT"}}) {
    args.insert(args.begin(), {"ip", "netns", "exec", node_, "iptables", "-t", "filter"});
    CommandResult r = RunCommand(args, std::chrono::seconds(20));
    ASSERT_TRUE(r.status.success()) << r.err;
  }
  ProxyState state = State();
  state.ports.erase("default/web:http");
  state.ports.erase("default/empty:");
  auto backend = NewIptablesProxyBackend(node_);
  backend->Sync(state);

  std::string save = IptablesSave(node_);
  std::set<std::string> want = IptablesServiceChains(state);
  for (const auto& tc : KubeChains(save)) {
    std::string chain = tc.substr(tc.find(' ') + 1);
    bool service_chain = chain.rfind("KUBE-SVC-", 0) == 0 || chain.rfind("KUBE-SEP-", 0) == 0 ||
                         chain.rfind("KUBE-EXT-", 0) == 0 || chain.rfind("KUBE-SVL-", 0) == 0;
    if (service_chain) {
      EXPECT_TRUE(want.count(chain)) << "stale chain left: " << tc;
    }
  }
  EXPECT_THAT(save, Not(HasSubstr("default/web")));
  EXPECT_THAT(save, Not(HasSubstr("KUBE-OLD-LAYOUT")));
  // Jumps from built-in chains are not added twice.
  for (const auto& j : IptablesJumps()) {
    const std::string line = "-A " + j.chain + " " + j.spec;
    size_t count = 0;
    for (size_t at = save.find(line); at != std::string::npos; at = save.find(line, at + 1)) {
      ++count;
    }
    EXPECT_EQ(count, 1u) << line;
  }
  // The remaining service works.
  Answer u = UdpAsk(Client(), A("10.96.0.10"), 53);
  EXPECT_EQ(u.error, 0) << strerror(u.error);

  backend->Remove();
  EXPECT_THAT(IptablesSave(node_), Not(HasSubstr("KUBE-")));
}

TEST_F(IptablesProxyKernelTest, FailedRestoreSaysWhyAndNextSyncIsFull) {
  ProxyState state = State();
  auto backend = NewIptablesProxyBackend(node_);
  backend->Sync(state);
  // A rule kin does not own jumps into a chain the next sync must delete:
  // iptables-restore refuses, and the whole transaction with it.
  const ProxyServicePort& web = state.ports["default/web:http"];
  const std::string svc = IptablesClusterChain(web);
  CommandResult r =
      RunCommand({"ip", "netns", "exec", node_, "iptables", "-t", "nat", "-N", "TEST-FOREIGN"},
                 std::chrono::seconds(20));
  ASSERT_TRUE(r.status.success()) << r.err;
  r = RunCommand(
      {"ip", "netns", "exec", node_, "iptables", "-t", "nat", "-A", "TEST-FOREIGN", "-j", svc},
      std::chrono::seconds(20));
  ASSERT_TRUE(r.status.success()) << r.err;

  ProxyState without_web = state;
  without_web.ports.erase("default/web:http");
  try {
    backend->Sync(without_web);
    ADD_FAILURE() << "Sync deleted a chain still referenced";
  } catch (const Error& e) {
    EXPECT_THAT(e.message(), HasSubstr("netns `" + node_ + "`: iptables-restore"));
    EXPECT_THAT(e.message(), HasSubstr(svc));  // the failing line, quoted
  }
  // Nothing was applied: web still answers.
  EXPECT_EQ(TcpAsk(Client(), A("10.96.0.20"), 80).error, 0);

  // Once the foreign rule is gone, the next sync (a full one again: it reads
  // the namespace instead of trusting a state it failed to apply) deletes
  // web's chains.
  r = RunCommand({"ip", "netns", "exec", node_, "iptables", "-t", "nat", "-F", "TEST-FOREIGN"},
                 std::chrono::seconds(20));
  ASSERT_TRUE(r.status.success()) << r.err;
  backend->Sync(without_web);
  EXPECT_THAT(IptablesSave(node_), Not(HasSubstr(svc)));
  // The Service is gone, so is its address (nothing routes it).
  EXPECT_NE(TcpAsk(Client(), A("10.96.0.20"), 80).error, 0);

  backend->Remove();
  // Remove() leaves chains that are not kube-proxy's.
  std::string save = IptablesSave(node_);
  EXPECT_THAT(save, Not(HasSubstr("KUBE-")));
  EXPECT_THAT(save, HasSubstr(":TEST-FOREIGN"));
}

TEST_F(IptablesProxyKernelTest, ErrorsNameTheNamespace) {
  auto backend = NewIptablesProxyBackend(prefix() + "-missing");
  try {
    backend->Sync(State());
    ADD_FAILURE() << "Sync into a missing namespace succeeded";
  } catch (const Error& e) {
    EXPECT_THAT(e.message(), HasSubstr(prefix() + "-missing"));
  }
  // Nothing to remove from a namespace that is gone.
  EXPECT_NO_THROW(backend->Remove());
}

}  // namespace
}  // namespace kin::netstack
