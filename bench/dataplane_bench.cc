// Data-plane throughput figures (issue 12): one TCP stream, pod to pod on
// the same node and across nodes, and through a ClusterIP (nftables mode,
// and iptables mode beside it), on a real two-node topology: the network
// namespace, nodes a and b (routed mode, so cross-node traffic goes through
// the network namespace, as kin routes it by default), pods a0 and a1 on
// node a and b0 on node b. a1 is the receiver and the one endpoint of a
// Service, whose rules are synced into both nodes (as the per-node proxy
// does), so a0 reaches it within node a and b0 from node b.
//
// The sender writes 64 KiB buffers; the receiver counts what it reads. After
// a warm-up the receiver's count is sampled over a fixed window, so bytes
// still in socket buffers are not counted as throughput. Rounds interleave
// the paths, so drift in the neighbours' load hits every path alike; the
// median of the rounds is reported with the range.
//
// Every namespace is made by this program (prefix "kd<pid>") and removed at
// the end, also when a step fails or on SIGINT/SIGTERM; all traffic stays
// inside those namespaces.
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <map>
#include <memory>
#include <thread>

#include "base/error.h"
#include "base/netns.h"
#include "bench/bench_util.h"
#include "netstack/service_proxy.h"
#include "netstack/topology.h"

using namespace kin;
using namespace kin::bench;
using namespace kin::netstack;

namespace {

constexpr uint16_t kPodPort = 8080;
constexpr uint16_t kServicePort = 80;
constexpr size_t kWriteSize = 64 * 1024;
constexpr auto kWarmUp = std::chrono::milliseconds(300);
constexpr auto kWindow = std::chrono::milliseconds(1500);
// A stuck peer (a path that does not carry traffic) fails the step instead
// of hanging the bench.
constexpr int kSocketTimeoutSeconds = 5;
constexpr int kRounds = 5;

const Ipv4Address kClusterIp = Ipv4Address::Parse("10.96.0.100");

// Set by SIGINT/SIGTERM: the remaining measurements are skipped so the
// namespaces are still removed on the way out.
std::atomic<bool> g_interrupted{false};
extern "C" void OnSignal(int) { g_interrupted.store(true); }

// Sleeps in slices, so an interrupt is noticed promptly. False if interrupted.
bool SleepFor(std::chrono::milliseconds d) {
  auto end = Clock::now() + d;
  while (Clock::now() < end) {
    if (g_interrupted.load()) return false;
    std::this_thread::sleep_for(
        std::min<Clock::duration>(std::chrono::milliseconds(20), end - Clock::now()));
  }
  return !g_interrupted.load();
}

sockaddr_in SockAddr(Ipv4Address a, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = a.network_order();
  return sa;
}

void SetTimeouts(int fd) {
  timeval tv{kSocketTimeoutSeconds, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// A plan applied for the lifetime of this object; removed also on unwinding.
// (ApplyPlan itself removes what it made when it fails.)
class AppliedPlan {
 public:
  explicit AppliedPlan(NetworkPlan plan) : plan_(std::move(plan)) { ApplyPlan(plan_); }
  ~AppliedPlan() {
    try {
      RemovePlan(plan_);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench_dataplane: cleanup: %s\n", e.what());
    }
  }
  AppliedPlan(const AppliedPlan&) = delete;
  AppliedPlan& operator=(const AppliedPlan&) = delete;

 private:
  NetworkPlan plan_;
};

struct Pod {
  NamedNetns ns;  // removed on destruction
  Ipv4Address ip;
};

// Network, nodes a and b, pods a0, a1 on a and b0 on b. Members are
// destroyed in reverse order: pod attachments, pod namespaces, topology.
class TwoNodes {
 public:
  explicit TwoNodes(const std::string& prefix) : prefix_(prefix) {
    net_.cluster = "bench";
    net_.netns_prefix = prefix + "-";
    net_.external.enabled = false;
    net_.nodes = {{"a", Ipv4Address::Parse("172.18.0.2"), Ipv4Cidr::Parse("10.244.1.0/24")},
                  {"b", Ipv4Address::Parse("172.18.0.3"), Ipv4Cidr::Parse("10.244.2.0/24")}};
    topology_ = std::make_unique<AppliedPlan>(PlanTopology(net_));
    Attach("a", "a0", Ipv4Address::Parse("10.244.1.2"));
    Attach("a", "a1", Ipv4Address::Parse("10.244.1.3"));
    Attach("b", "b0", Ipv4Address::Parse("10.244.2.2"));
  }

  const Pod& pod(const std::string& name) const { return pods_.at(name); }
  std::string node_netns(const std::string& node) const { return NodeNetnsName(net_, node); }
  Ipv4Address node_ip(const std::string& node) const {
    for (const auto& n : net_.nodes)
      if (n.name == node) return n.ip;
    throw Error::Internal("no node " + node);
  }

 private:
  void Attach(const std::string& node, const std::string& name, Ipv4Address ip) {
    Pod pod{NamedNetns::Create(prefix_ + "-" + name), ip};
    PodInterface iface;
    iface.node_netns = NodeNetnsName(net_, node);
    iface.pod_netns = pod.ns.name();
    iface.host_veth = HostVethName(prefix_ + name);
    iface.address = Ipv4Cidr(ip, 24);
    iface.gateway = Ipv4Address((ip.value() & 0xffffff00u) | 1);
    NetworkPlan plan = PlanPodAttach(iface);
    pods_.emplace(name, std::move(pod));
    attachments_.push_back(std::make_unique<AppliedPlan>(std::move(plan)));
  }

  std::string prefix_;
  ClusterNetwork net_;
  std::unique_ptr<AppliedPlan> topology_;
  std::map<std::string, Pod> pods_;
  std::vector<std::unique_ptr<AppliedPlan>> attachments_;
};

// The service proxy in `mode` on every node, with one Service
// (10.96.0.100:80) whose one endpoint is `endpoint`:8080. Its rules are
// removed on destruction (and go with the node namespaces anyway).
class ProxyOnNodes {
 public:
  ProxyOnNodes(ProxyMode mode, const TwoNodes& cluster, Ipv4Address endpoint) {
    try {
      for (const char* node : {"a", "b"}) {
        ProxyState s;
        s.node_ips = {cluster.node_ip(node)};
        s.cluster_cidr = Ipv4Cidr::Parse("10.244.0.0/16");
        s.service_cidr = Ipv4Cidr::Parse("10.96.0.0/16");
        ProxyServicePort p;
        p.ns = "bench";
        p.name = "sink";
        p.cluster_ip = kClusterIp;
        p.port = kServicePort;
        p.cluster_endpoints = {{endpoint, kPodPort}};
        s.ports[p.Key()] = p;
        backends_.push_back(NewProxyBackend(mode, cluster.node_netns(node)));
        backends_.back()->Sync(s);
      }
    } catch (...) {
      RemoveAll();
      throw;
    }
  }
  ~ProxyOnNodes() { RemoveAll(); }
  ProxyOnNodes(const ProxyOnNodes&) = delete;
  ProxyOnNodes& operator=(const ProxyOnNodes&) = delete;

 private:
  void RemoveAll() {
    for (auto& b : backends_) {
      try {
        b->Remove();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_dataplane: cleanup: %s\n", e.what());
      }
    }
    backends_.clear();
  }
  std::vector<std::unique_ptr<ProxyBackend>> backends_;
};

// Gbit/s of one TCP stream from `client` to `to`:`port`, received by a
// listener on kPodPort in `server`. Each side runs on its own thread that
// entered its pod's namespace.
double Throughput(const Pod& client, const Pod& server, Ipv4Address to, uint16_t port) {
  UniqueFd listener;
  RunInNetns(server.ns.ns(), [&] {
    listener = UniqueFd(CheckSys(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket"));
    int one = 1;
    ::setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sa = SockAddr(Ipv4Address(0), kPodPort);
    CheckSys(::bind(listener.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), "bind");
    CheckSys(::listen(listener.get(), 4), "listen");
    SetTimeouts(listener.get());  // accept() gives up after the receive timeout
  });

  std::atomic<uint64_t> received{0};
  std::atomic<bool> stop{false};
  std::atomic<bool> failed{false};
  std::exception_ptr receiver_error, sender_error;

  std::thread receiver([&] {
    try {
      NetnsEnter in(server.ns.ns());
      int c;
      do c = ::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC);
      while (c < 0 && errno == EINTR);
      UniqueFd conn(CheckSys(c, "accept"));
      SetTimeouts(conn.get());
      std::vector<char> buf(256 * 1024);
      for (;;) {
        ssize_t n = ::recv(conn.get(), buf.data(), buf.size(), 0);
        if (n == 0) return;  // the sender is done
        if (n < 0 && errno == EINTR) continue;
        CheckSys(n, "recv");
        received.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
      }
    } catch (...) {
      receiver_error = std::current_exception();
      failed.store(true);
    }
  });
  std::thread sender([&] {
    try {
      NetnsEnter in(client.ns.ns());
      UniqueFd fd(CheckSys(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket"));
      SetTimeouts(fd.get());  // connect() gives up after the send timeout
      sockaddr_in sa = SockAddr(to, port);
      CheckSys(::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa),
               "connect to " + to.ToString() + ":" + std::to_string(port));
      std::vector<char> buf(kWriteSize, 'x');
      while (!stop.load(std::memory_order_relaxed)) {
        ssize_t n = ::send(fd.get(), buf.data(), buf.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        CheckSys(n, "send");
      }
      ::shutdown(fd.get(), SHUT_WR);  // the receiver reads to the end and stops
    } catch (...) {
      sender_error = std::current_exception();
      failed.store(true);
    }
  });

  // Nothing below throws before both threads are joined.
  double gbps = 0;
  auto deadline = Clock::now() + std::chrono::seconds(kSocketTimeoutSeconds);
  while (received.load() == 0 && !failed.load() && Clock::now() < deadline &&
         SleepFor(std::chrono::milliseconds(5))) {
  }
  if (received.load() > 0 && !failed.load() && SleepFor(kWarmUp)) {
    auto t0 = Clock::now();
    uint64_t b0 = received.load();
    if (SleepFor(kWindow)) {
      uint64_t b1 = received.load();
      double s = std::chrono::duration<double>(Clock::now() - t0).count();
      gbps = static_cast<double>(b1 - b0) * 8 / s / 1e9;
    }
  }
  stop.store(true);
  sender.join();
  receiver.join();
  if (sender_error) std::rethrow_exception(sender_error);
  if (receiver_error) std::rethrow_exception(receiver_error);
  if (g_interrupted.load()) throw Error::Internal("interrupted");
  if (gbps == 0) throw Error::Internal("no bytes to " + to.ToString() + " within the timeout");
  return gbps;
}

int LinkMtu(const Netns& ns, const char* ifname) {
  int mtu = 0;
  RunInNetns(ns, [&] {
    // An ioctl on a socket asks the socket's namespace.
    UniqueFd fd(CheckSys(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), "socket"));
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    CheckSys(::ioctl(fd.get(), SIOCGIFMTU, &ifr), std::string("SIOCGIFMTU ") + ifname);
    mtu = ifr.ifr_mtu;
  });
  return mtu;
}

std::string LoadAverage() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

void Figures(const std::string& prefix) {
  TwoNodes cluster(prefix);
  const Pod& a0 = cluster.pod("a0");
  const Pod& a1 = cluster.pod("a1");
  const Pod& b0 = cluster.pod("b0");
  Report("MTU (pod eth0 / node eth0)",
         std::to_string(LinkMtu(a0.ns.ns(), "eth0")) + " / " +
             std::to_string(LinkMtu(Netns::Open(cluster.node_netns("a")), "eth0")));
  Report("load average at start (1, 5, 15 min)",
         LoadAverage() + " (" + std::to_string(std::thread::hardware_concurrency()) + " CPUs)");

  // Paths in report order; every round measures each once.
  struct Path {
    std::string label;
    std::vector<double> gbps;
  };
  std::vector<Path> paths = {
      {"pod -> pod, same node", {}},
      {"pod -> pod, across nodes (via the network netns)", {}},
      {"pod -> ClusterIP -> pod, same node (nftables)", {}},
      {"pod -> ClusterIP -> pod, across nodes (nftables)", {}},
      {"pod -> ClusterIP -> pod, same node (iptables)", {}},
      {"pod -> ClusterIP -> pod, across nodes (iptables)", {}},
  };
  for (int round = 0; round < kRounds; ++round) {
    {
      // Pod IPs measured with the nftables proxy in place, as in a running
      // cluster, so the ClusterIP figures differ from them only by the NAT.
      ProxyOnNodes proxy(ProxyMode::kNftables, cluster, a1.ip);
      paths[0].gbps.push_back(Throughput(a0, a1, a1.ip, kPodPort));
      paths[1].gbps.push_back(Throughput(b0, a1, a1.ip, kPodPort));
      paths[2].gbps.push_back(Throughput(a0, a1, kClusterIp, kServicePort));
      paths[3].gbps.push_back(Throughput(b0, a1, kClusterIp, kServicePort));
    }
    {
      ProxyOnNodes proxy(ProxyMode::kIptables, cluster, a1.ip);
      paths[4].gbps.push_back(Throughput(a0, a1, kClusterIp, kServicePort));
      paths[5].gbps.push_back(Throughput(b0, a1, kClusterIp, kServicePort));
    }
  }
  for (const auto& p : paths) {
    Report(p.label, Fmt("%.1f Gbit/s", Percentile(p.gbps, 50)) + " (" +
                        Fmt("%.1f", Percentile(p.gbps, 0)) + "-" +
                        Fmt("%.1f", Percentile(p.gbps, 100)) + ")");
  }
  // After a connection's first packet the NAT is one conntrack lookup per
  // packet, which the pod-IP path pays too (conntrack is on for both), so
  // these are expected to stay within the rounds' noise.
  double direct = Percentile(paths[0].gbps, 50), via = Percentile(paths[2].gbps, 50);
  Report("ClusterIP vs pod IP, same node (nftables, p50)",
         Fmt("%+.1f %%", 100.0 * (via / direct - 1)));
  direct = Percentile(paths[1].gbps, 50);
  via = Percentile(paths[3].gbps, 50);
  Report("ClusterIP vs pod IP, across nodes (nftables, p50)",
         Fmt("%+.1f %%", 100.0 * (via / direct - 1)));
  Report("load average at end (1, 5, 15 min)", LoadAverage());
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  // Output piped into `head` must not kill the bench before it cleans up.
  std::signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  std::printf(
      "== data plane: one TCP stream, 64 KiB writes, %d rounds of %.1f s, median "
      "(min-max) ==\n",
      kRounds, std::chrono::duration<double>(kWindow).count());
  const std::string prefix = "kd" + std::to_string(::getpid() % 100000);
  int rc = 0;
  try {
    Figures(prefix);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_dataplane: %s\n", e.what());
    rc = 1;
  }
  // Belt and braces: nothing of ours may outlive the bench.
  for (const auto& name : ListNamedNetns(prefix + "-")) {
    std::fprintf(stderr, "bench_dataplane: removing leftover netns %s\n", name.c_str());
    DeleteNamedNetns(name);
  }
  return rc;
}
