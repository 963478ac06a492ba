// Figures for the service proxy's nftables mode (issue 12), against a real
// network namespace: rule sync time for 1,000 and 10,000 Services with 5
// endpoints each (the first, full sync, and an incremental one after one
// endpoint changed), and the latency of a new TCP connection through a
// ClusterIP against one straight to the pod, with 10 and with 10,000
// Services in the table. Sync figures are split into user CPU time (kin's
// plan and libnftables) and kernel CPU time, and are followed by the floors
// of any transaction on such a table. Everything is made in namespaces this
// program creates (prefix "kb<pid>") and removed at the end.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <thread>

#include "base/error.h"
#include "base/netns.h"
#include "bench/bench_util.h"
#include "netstack/nft_proxy.h"
#include "netstack/nftables.h"
#include "netstack/service_proxy.h"
#include "netstack/topology.h"

using namespace kin;
using namespace kin::bench;
using namespace kin::netstack;

namespace {

constexpr uint16_t kPort = 8080;

ProxyState Services(int n, int endpoints_each) {
  ProxyState s;
  s.node_ips = {Ipv4Address::Parse("172.18.0.2")};
  s.cluster_cidr = Ipv4Cidr::Parse("10.244.0.0/16");
  s.service_cidr = Ipv4Cidr::Parse("10.96.0.0/16");
  for (int i = 0; i < n; ++i) {
    ProxyServicePort p;
    p.ns = "bench";
    p.name = "svc" + std::to_string(i);
    p.port_name = "http";
    p.cluster_ip = Ipv4Address(0x0a600000u + 256 + i);  // 10.96.1.0 + i
    p.port = 80;
    for (int e = 0; e < endpoints_each; ++e) {
      // Spread over the pod range, but never the bench's own pods (.1.x).
      uint32_t ip = 0x0af40000u + ((2 + (i * endpoints_each + e) / 250) << 8) + 2 +
                    (i * endpoints_each + e) % 250;
      p.cluster_endpoints.push_back({Ipv4Address(ip), kPort});
    }
    s.ports[p.Key()] = std::move(p);
  }
  return s;
}

// CPU time of the calling thread, split where a sync spends it: user
// (kin's plan and libnftables' parse and evaluation) and system (the kernel:
// the netlink batch, the commit and its validation, and page faults of the
// userspace). On a shared machine wall time includes waiting for a core;
// these do not.
struct CpuTimes {
  double user_ms = 0, sys_ms = 0;
};
CpuTimes ThreadCpu() {
  rusage r{};
  ::getrusage(RUSAGE_THREAD, &r);
  return {r.ru_utime.tv_sec * 1e3 + r.ru_utime.tv_usec / 1e3,
          r.ru_stime.tv_sec * 1e3 + r.ru_stime.tv_usec / 1e3};
}

// Runs fn and records its wall, user and system time.
struct Samples {
  std::vector<double> wall, user, sys;
  template <typename F>
  void Time(F&& fn) {
    const CpuTimes c0 = ThreadCpu();
    const auto t = Clock::now();
    fn();
    wall.push_back(MsSince(t));
    const CpuTimes c1 = ThreadCpu();
    user.push_back(c1.user_ms - c0.user_ms);
    sys.push_back(c1.sys_ms - c0.sys_ms);
  }
  std::string Median(const char* wall_fmt) const {
    return Fmt(wall_fmt, Percentile(wall, 50)) + Fmt(" (user %.0f ms", Percentile(user, 50)) +
           Fmt(", kernel %.0f ms)", Percentile(sys, 50));
  }
};

void SyncFigures(const std::string& node, int n) {
  ProxyState state = Services(n, 5);
  std::vector<double> plan_ms;
  std::string plan;
  for (int round = 0; round < 3; ++round) {
    auto t = Clock::now();
    plan = PlanNftFull(state);
    plan_ms.push_back(MsSince(t));
  }
  // Three full syncs, each by a new backend (the first makes the table,
  // the others replace it, as the hourly full sync does).
  Samples full;
  std::unique_ptr<ProxyBackend> proxy;
  for (int round = 0; round < 3; ++round) {
    proxy = NewProxyBackend(ProxyMode::kNftables, node);
    full.Time([&] { proxy->Sync(state); });
  }

  // One endpoint of one Service replaced (a pod restarted elsewhere).
  Samples incr;
  std::vector<double> incr_plan;
  for (int round = 0; round < 5; ++round) {
    ProxyState next = state;
    auto& p = next.ports.begin()->second;
    p.cluster_endpoints.back().ip = Ipv4Address(0x0afe0000u + 10 + round);  // 10.254.0.x
    auto t = Clock::now();
    std::string inc = PlanNftIncremental(state, next).script;
    incr_plan.push_back(MsSince(t));
    incr.Time([&] { proxy->Sync(next); });
    state = std::move(next);
  }
  // The floor of a transaction on this table: the kernel validates the
  // whole table at every commit that adds a jump or a verdict (only the
  // table the commit changes: the same commit in another table is cheap),
  // and libnftables fetches every chain first for anything that deletes.
  NftContext nft(node);
  Samples floor_validate, floor_other_table, floor_fetch;
  nft.Run("add table ip kin-bench-probe\nadd chain ip kin-bench-probe target\n");
  for (int round = 0; round < 5; ++round) {
    floor_validate.Time([&] {
      nft.Run(
          "add map ip kin-proxy service-ips { type ipv4_addr . inet_proto . inet_service : "
          "verdict;\n elements = { 10.96.255.254 . tcp . 1 : goto reject-chain }\n}\n");
    });
    floor_other_table.Time([&] {
      nft.Run("add chain ip kin-bench-probe c" + std::to_string(round) + " {\n goto target\n}\n");
    });
    floor_fetch.Time(
        [&] { nft.Run("delete element ip kin-proxy service-ips { 10.96.255.254 . tcp . 1 }\n"); });
  }
  nft.Run("delete table ip kin-bench-probe\n");
  std::string ns = std::to_string(n);
  if (n >= 1000)
    ns = std::to_string(n / 1000) + "," + std::string(3 - std::to_string(n % 1000).size(), '0') +
         std::to_string(n % 1000);
  Report(ns + " Services x 5 endpoints: plan size", Fmt("%.1f MB", plan.size() / 1e6));
  Report(ns + " Services x 5 endpoints: full plan alone, p50",
         Fmt("%.0f ms", Percentile(plan_ms, 50)));
  Report(ns + " Services x 5 endpoints: full sync, p50 of 3", full.Median("%.0f ms"));
  Report(ns + " Services: sync after one endpoint change, p50", incr.Median("%.1f ms"));
  Report(ns + " Services: sync after one endpoint change, max",
         Fmt("%.1f ms", Percentile(incr.wall, 100)));
  Report(ns + " Services: incremental plan alone, p50", Fmt("%.2f ms", Percentile(incr_plan, 50)));
  Report(ns + " Services: a transaction adding a verdict, p50", floor_validate.Median("%.1f ms"));
  Report(ns + " Services: the same in a small other table, p50",
         floor_other_table.Median("%.1f ms"));
  Report(ns + " Services: a transaction deleting an element, p50", floor_fetch.Median("%.1f ms"));
  // Mostly libnftables' parse of the full script (the plan is 16 MB at
  // 10,000 Services); it grows with the largest table synced so far.
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  Report(ns + " Services: peak memory of this process so far",
         Fmt("%.0f MB", usage.ru_maxrss / 1024.0));
  proxy->Remove();
}

UniqueFd SocketIn(const Netns& ns, int type) {
  UniqueFd fd;
  RunInNetns(ns,
             [&] { fd = UniqueFd(CheckSys(::socket(AF_INET, type | SOCK_CLOEXEC, 0), "socket")); });
  return fd;
}

// Accepts connections and closes them after one byte, until stopped.
class Server {
 public:
  explicit Server(const Netns& ns) : fd_(SocketIn(ns, SOCK_STREAM)) {
    int one = 1;
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(kPort);
    CheckSys(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), "bind");
    CheckSys(::listen(fd_.get(), 512), "listen");
    thread_ = std::thread([this] {
      for (;;) {
        int c = ::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) return;  // shut down
        (void)!::send(c, "x", 1, MSG_NOSIGNAL);
        ::close(c);
      }
    });
  }
  ~Server() {
    ::shutdown(fd_.get(), SHUT_RDWR);
    thread_.join();
  }

 private:
  UniqueFd fd_;
  std::thread thread_;
};

// Time of connect + the server's one byte, per new connection (ms).
std::vector<double> Connections(const Netns& from, Ipv4Address to, int count) {
  std::vector<double> out;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(to == Ipv4Address::Parse("10.96.0.100") ? 80 : kPort);
  sa.sin_addr.s_addr = to.network_order();
  for (int i = 0; i < count; ++i) {
    UniqueFd fd = SocketIn(from, SOCK_STREAM);
    // No TIME_WAIT pile-up on the client: close with a reset.
    linger lg{1, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    auto t = Clock::now();
    CheckSys(::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), "connect");
    char b;
    if (::recv(fd.get(), &b, 1, 0) != 1) throw Error::Internal("no byte from the server");
    out.push_back(MsSince(t) * 1000);  // µs
  }
  return out;
}

void LatencyFigures(const ClusterNetwork& net, const Netns& client, const Netns& server_ns,
                    Ipv4Address server_ip) {
  Server server(server_ns);
  auto proxy = NewProxyBackend(ProxyMode::kNftables, NodeNetnsName(net, "a"));
  for (int n : {10, 10000}) {
    ProxyState s = Services(n - 1, 5);
    ProxyServicePort p;
    p.ns = "bench";
    p.name = "target";
    p.cluster_ip = Ipv4Address::Parse("10.96.0.100");
    p.port = 80;
    p.cluster_endpoints = {{server_ip, kPort}};
    s.ports[p.Key()] = p;
    proxy->Sync(s);
    Connections(client, server_ip, 200);  // warm up
    std::vector<double> direct, via;
    // Interleaved one by one, so drift and the neighbours' load hit both alike.
    for (int i = 0; i < 4000; ++i) {
      direct.push_back(Connections(client, server_ip, 1)[0]);
      via.push_back(Connections(client, Ipv4Address::Parse("10.96.0.100"), 1)[0]);
    }
    const std::string label = n == 10 ? "10 Services" : "10,000 Services";
    double pd = Percentile(direct, 50), pv = Percentile(via, 50);
    Report("new connection, " + label + ": pod IP p50", Fmt("%.1f us", pd));
    Report("new connection, " + label + ": ClusterIP p50", Fmt("%.1f us", pv));
    Report("new connection, " + label + ": ClusterIP p99", Fmt("%.1f us", Percentile(via, 99)));
    Report("new connection, " + label + ": ClusterIP overhead (p50)",
           Fmt("%+.1f %%", 100.0 * (pv / pd - 1)));
  }
  proxy->Remove();
}

}  // namespace

// Arguments select parts: `sync` (rule sync figures), `latency` (new
// connections), and Service counts for the sync figures (default 1000
// 10000); none runs everything, as `make bench` does.
int main(int argc, char** argv) {
  bool sync = argc == 1, latency = argc == 1;
  std::vector<int> counts;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "sync") {
      sync = true;
    } else if (a == "latency") {
      latency = true;
    } else if (!a.empty() && a.find_first_not_of("0123456789") == std::string::npos &&
               a.size() < 7 && std::stoi(a) > 0) {
      sync = true;
      counts.push_back(std::stoi(a));
    } else {
      std::fprintf(stderr, "usage: bench_proxy [sync] [latency] [SERVICES...]\n");
      return 2;
    }
  }
  if (counts.empty()) counts = {1000, 10000};
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  // Output piped into `head` must not kill the bench before it cleans up.
  std::signal(SIGPIPE, SIG_IGN);
  std::printf("== service proxy (nftables) ==\n");
  const std::string prefix = "kb" + std::to_string(::getpid() % 100000);
  ClusterNetwork net;
  net.cluster = "bench";
  net.netns_prefix = prefix + "-";
  net.external.enabled = false;
  net.nodes = {{"a", Ipv4Address::Parse("172.18.0.2"), Ipv4Cidr::Parse("10.244.1.0/24")}};
  NetworkPlan topology = PlanTopology(net);
  std::vector<NetworkPlan> pods;
  std::vector<NamedNetns> pod_ns;
  int rc = 0;
  try {
    ApplyPlan(topology);
    for (int i = 0; i < 2; ++i) {
      pod_ns.push_back(NamedNetns::Create(prefix + "-p" + std::to_string(i)));
      PodInterface pod;
      pod.node_netns = NodeNetnsName(net, "a");
      pod.pod_netns = pod_ns.back().name();
      pod.host_veth = HostVethName(prefix + std::to_string(i));
      pod.address = Ipv4Cidr(Ipv4Address(0x0af40102u + i), 24);  // 10.244.1.2, .3
      pod.gateway = Ipv4Address::Parse("10.244.1.1");
      pods.push_back(PlanPodAttach(pod));
      ApplyPlan(pods.back());
    }
    if (sync) {
      for (int n : counts) SyncFigures(NodeNetnsName(net, "a"), n);
    }
    if (latency) LatencyFigures(net, pod_ns[0].ns(), pod_ns[1].ns(), Ipv4Address(0x0af40103u));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_proxy: %s\n", e.what());
    rc = 1;
  }
  for (auto& p : pods) RemovePlan(p);
  pod_ns.clear();
  RemovePlan(topology);
  return rc;
}
