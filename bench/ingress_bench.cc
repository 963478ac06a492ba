// Figures for the Ingress (issue 14). First the proxy alone, on real
// sockets in a network namespace of its own (root): requests per second
// and latency (p50/p99) of small GETs through the IngressProxy vs straight
// to the backend (a kin HTTP server), with 8 keep-alive clients (then 64),
// and the time from SetRoutes to a request served by the new backend. Then on a
// real 1-node cluster: the same load from a pod's network namespace
// straight to a pod (agnhost serve-hostname) vs through the ingress
// Service's ClusterIP with a Host header, and the time from an Ingress's
// create (the API's answer) to its host being served (p50/p99 of 50).
//
// Clients, proxy and backend share the machine's two cores, so the ratio
// (through / direct) is the figure to read. Both sides run back to back,
// kRounds times in turn, and each figure is the median of its rounds (the
// machine is shared with other work); on loopback, where clients, backend
// and proxy are this process, also its CPU time per request, which other
// work disturbs less.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <functional>
#include <mutex>
#include <thread>

#include "base/fd.h"
#include "base/http_server.h"
#include "base/netns.h"
#include "bench/bench_cluster.h"
#include "bench/bench_util.h"
#include "client/resources.h"
#include "netstack/ingress_proxy.h"
#include "netstack/netlink.h"

using namespace kin;
using namespace kin::bench;
using namespace kin::netstack;

namespace {

constexpr int kClients = 8;
constexpr int kManyClients = 64;
constexpr double kSeconds = 3;
constexpr int kRounds = 3;

// CPU seconds of this process (every thread) so far.
double CpuSeconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

UniqueFd Connect(const Netns& ns, uint16_t port, const std::string& ip = "127.0.0.1") {
  UniqueFd fd;
  RunInNetns(ns, [&] {
    fd.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) fd.reset();
  });
  int one = 1;
  if (fd.valid()) ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// One request and its response (Content-Length bodies only); the body.
bool RoundTrip(int fd, const std::string& req, std::string& body) {
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    return false;
  }
  std::string got;
  char buf[4096];
  while (true) {
    size_t end = got.find("\r\n\r\n");
    if (end != std::string::npos) {
      size_t cl = got.find("Content-Length: ");
      if (cl == std::string::npos || cl > end) return false;
      size_t len = std::stoul(got.substr(cl + 16));
      if (got.size() >= end + 4 + len) {
        body = got.substr(end + 4, len);
        return true;
      }
    }
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return false;
    got.append(buf, static_cast<size_t>(n));
  }
}

struct Load {
  double rps = 0, p50 = 0, p99 = 0;
  size_t errors = 0;
  double cpu_us = 0;  // CPU time of this process per request
};

Load Run(const Netns& ns, uint16_t port, const std::string& ip = "127.0.0.1",
         const std::string& host = "bench.example", int clients = kClients) {
  std::mutex mu;
  std::vector<double> lat;
  std::atomic<size_t> errors{0}, done{0};
  auto until = Clock::now() + std::chrono::duration<double>(kSeconds);
  std::vector<std::thread> threads;
  auto start = Clock::now();
  const double cpu0 = CpuSeconds();
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&] {
      std::vector<double> mine;
      UniqueFd fd = Connect(ns, port, ip);
      const std::string req = "GET /x HTTP/1.1\r\nHost: " + host + "\r\n\r\n";
      std::string body;
      while (fd.valid() && Clock::now() < until) {
        auto t = Clock::now();
        if (!RoundTrip(fd.get(), req, body)) {
          errors++;
          fd = Connect(ns, port, ip);
          continue;
        }
        mine.push_back(MsSince(t));
      }
      done += mine.size();
      std::lock_guard lock(mu);
      lat.insert(lat.end(), mine.begin(), mine.end());
    });
  }
  for (auto& t : threads) t.join();
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu = CpuSeconds() - cpu0;
  return {static_cast<double>(done) / secs, Percentile(lat, 50), Percentile(lat, 99), errors,
          done ? 1e6 * cpu / static_cast<double>(done) : 0};
}

// The median of each figure over the rounds; errors summed.
Load Median(const std::vector<Load>& rounds) {
  auto med = [&](double Load::*f) {
    std::vector<double> v;
    for (const Load& l : rounds) v.push_back(l.*f);
    return Percentile(v, 50);
  };
  Load m{med(&Load::rps), med(&Load::p50), med(&Load::p99), 0, med(&Load::cpu_us)};
  for (const Load& l : rounds) m.errors += l.errors;
  return m;
}

// Direct and through, back to back, kRounds times; the medians.
std::pair<Load, Load> Compare(const std::function<Load()>& direct,
                              const std::function<Load()>& through) {
  std::vector<Load> d, t;
  for (int i = 0; i < kRounds; ++i) {
    d.push_back(direct());
    t.push_back(through());
  }
  return {Median(d), Median(t)};
}

void ReportLoad(const std::string& what, const Load& l) {
  Report(what + ": requests/s", Fmt("%.0f", l.rps));
  Report(what + ": p50 / p99 ms", Fmt("%.3f", l.p50) + " / " + Fmt("%.3f", l.p99));
}

// One GET with a Host header over a new connection; the status code (0: none).
int Status(const Netns& ns, const std::string& ip, const std::string& host) {
  UniqueFd fd = Connect(ns, 80, ip);
  std::string body;
  if (!fd.valid()) return 0;
  std::string req = "GET / HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n";
  if (::send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    return 0;
  }
  char buf[64];
  ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
  if (n < 12) return 0;
  return std::atoi(std::string(buf + 9, 3).c_str());
}

Json Object(const std::string& yaml) { return ParseYaml(yaml); }

// The cluster part; false when the cluster could not be made.
bool ClusterFigures() {
  BenchCluster c;
  c.name = "bing";
  if (!CreateBenchCluster(c, {"--nodes", "1"})) return false;
  try {
    RestClient api(c.api);
    api.Create(PodsResource(), "default", Object(R"(
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default}
spec:
  containers: [{name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.52, args: [pause]}]
)"));
    api.Create(PodsResource(), "default", Object(R"(
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default, labels: {app: web}}
spec:
  containers:
  - name: c
    image: registry.k8s.io/e2e-test-images/agnhost:2.52
    args: [serve-hostname, --port=9376]
    readinessProbe: {tcpSocket: {port: 9376}, periodSeconds: 1}
)"));
    api.Create(ServicesResource(), "default", Object(R"(
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 9376}]
)"));
    const ResourceInfo& ingresses = *FindResource("networking.k8s.io", "v1", "ingresses");
    auto ingress = [](const std::string& name, const std::string& host) {
      return Object("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: " + name +
                    ", namespace: default}\nspec:\n  rules:\n  - host: " + host +
                    "\n    http:\n      paths:\n      - {path: /, pathType: Prefix, backend: "
                    "{service: {name: web, port: {number: 80}}}}\n");
    };
    api.Create(ingresses, "default", ingress("bench", "bench.example"));
    Json client, web, svc;
    auto deadline = Clock::now() + std::chrono::seconds(90);
    while (Clock::now() < deadline) {
      client = api.Get(PodsResource(), "default", "client");
      web = api.Get(PodsResource(), "default", "web");
      if (IsPodReady(client) && IsPodReady(web)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    svc = api.Get(ServicesResource(), "ingress-nginx", "ingress-controller");
    const std::string ingress_ip = svc["spec"].value("clusterIP", "");
    const std::string web_ip = web["status"].value("podIP", "");
    std::string uid;
    for (char ch : client["metadata"].value("uid", "")) {
      if (ch != '-') uid += ch;
      if (uid.size() == 5) break;
    }
    Netns ns = Netns::Open("kin-" + c.name + "-default-client-" + uid);
    while (Status(ns, ingress_ip, "bench.example") != 200 && Clock::now() < deadline) {
    }
    std::printf(
        "\nOn a 1-node cluster, from a pod (%d keep-alive clients, %.0f s each, median of %d)\n",
        kClients, kSeconds, kRounds);
    auto [pod, through] = Compare([&] { return Run(ns, 9376, web_ip, "bench.example"); },
                                  [&] { return Run(ns, 80, ingress_ip, "bench.example"); });
    ReportLoad("straight to the pod", pod);
    ReportLoad("through the ingress Service", through);
    Report("through / straight", Fmt("%.0f %%", 100.0 * through.rps / std::max(pod.rps, 1.0)));
    // The same without the Service's hop (DNAT and routing in the node),
    // straight to the ingress controller pod: what the proxy alone costs.
    std::string ingress_pod_ip;
    Json ingress_pods = api.List(PodsResource(), "ingress-nginx");
    for (const Json& p : ingress_pods["items"]) {
      if (IsPodReady(p)) ingress_pod_ip = p["status"].value("podIP", "");
    }
    if (!ingress_pod_ip.empty()) {
      auto [pod2, proxy_pod] =
          Compare([&] { return Run(ns, 9376, web_ip, "bench.example"); },
                  [&] { return Run(ns, 80, ingress_pod_ip, "bench.example"); });
      ReportLoad("straight to the ingress pod (no Service hop)", proxy_pod);
      Report("ingress pod / straight to the pod",
             Fmt("%.0f %%", 100.0 * proxy_pod.rps / std::max(pod2.rps, 1.0)));
    }

    std::vector<double> to_serve;
    for (int i = 0; i < 50; ++i) {
      std::string host = "h" + std::to_string(i) + ".example";
      api.Create(ingresses, "default", ingress("i" + std::to_string(i), host));
      auto t0 = Clock::now();
      while (Status(ns, ingress_ip, host) != 200 && MsSince(t0) < 5000) {
      }
      to_serve.push_back(MsSince(t0));
    }
    Report("Ingress create -> host served: p50 / p99 ms",
           Fmt("%.1f", Percentile(to_serve, 50)) + " / " + Fmt("%.1f", Percentile(to_serve, 99)));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_ingress: %s\n", e.what());
  }
  DeleteBenchCluster(c);
  return true;
}

}  // namespace

int main() {
  if (::geteuid() != 0) {
    std::fprintf(stderr, "bench_ingress needs root (a network namespace of its own)\n");
    return 0;
  }
  // A run killed before its end (a timeout, ^C) left its namespace: those
  // of processes that are gone go first.
  const std::string prefix = "kinbench-ing-";
  for (const std::string& old : ListNamedNetns(prefix)) {
    const std::string pid = old.substr(prefix.size());
    if (!pid.empty() && pid.find_first_not_of("0123456789") == std::string::npos &&
        ::kill(std::stoi(pid), 0) != 0 && errno == ESRCH) {
      DeleteNamedNetns(old);
    }
  }
  std::string name = prefix + std::to_string(::getpid());
  NamedNetns netns = NamedNetns::Create(name);
  NetlinkSocket::OpenIn(netns.ns()).SetUp("lo");

  auto backend = [&](const std::string& text) {
    http::ServerOptions o;
    o.netns = name;
    auto s = std::make_unique<http::Server>(
        o, [text](http::Request&, http::Response& r) { r.Set(200, "text/plain", text); });
    s->Start();
    return s;
  };
  auto a = backend("a"), b = backend("b");
  IngressProxyOptions po;
  po.netns = name;
  po.bind = "127.0.0.1";
  po.http_port = po.https_port = po.health_port = 0;
  IngressProxy proxy(po);
  proxy.Start();
  auto routes = [&](uint16_t port) {
    IngressRoutes r;
    r.rules = {{"bench.example",
                {{"/", IngressPathType::kPrefix, {"default/bench:80", {{"127.0.0.1", port}}}}}}};
    return r;
  };
  proxy.SetRoutes(routes(static_cast<uint16_t>(a->port())));

  std::printf("Ingress proxy (netstack, %d keep-alive clients, %.0f s each, median of %d)\n",
              kClients, kSeconds, kRounds);
  const uint16_t backend_port = static_cast<uint16_t>(a->port());
  auto [direct, through] = Compare([&] { return Run(netns.ns(), backend_port); },
                                   [&] { return Run(netns.ns(), proxy.ports().http); });
  Report("direct to the backend: requests/s", Fmt("%.0f", direct.rps));
  Report("direct to the backend: p50 / p99 ms",
         Fmt("%.3f", direct.p50) + " / " + Fmt("%.3f", direct.p99));
  Report("through the Ingress proxy: requests/s", Fmt("%.0f", through.rps));
  Report("through the Ingress proxy: p50 / p99 ms",
         Fmt("%.3f", through.p50) + " / " + Fmt("%.3f", through.p99));
  Report("through / direct", Fmt("%.0f %%", 100.0 * through.rps / std::max(direct.rps, 1.0)));
  Report("CPU per request (clients, backend, proxy): direct / through us",
         Fmt("%.1f", direct.cpu_us) + " / " + Fmt("%.1f", through.cpu_us));
  Report("errors (direct, through)",
         std::to_string(direct.errors) + ", " + std::to_string(through.errors));
  // Many more clients than cores: the proxy's event loops against the
  // backend's thread per connection.
  auto [direct_many, through_many] = Compare(
      [&] { return Run(netns.ns(), backend_port, "127.0.0.1", "bench.example", kManyClients); },
      [&] {
        return Run(netns.ns(), proxy.ports().http, "127.0.0.1", "bench.example", kManyClients);
      });
  const std::string many = std::to_string(kManyClients) + " clients";
  ReportLoad("direct to the backend, " + many, direct_many);
  ReportLoad("through the Ingress proxy, " + many, through_many);
  Report("through / direct, " + many,
         Fmt("%.0f %%", 100.0 * through_many.rps / std::max(direct_many.rps, 1.0)));
  Report("errors (direct, through), " + many,
         std::to_string(direct_many.errors) + ", " + std::to_string(through_many.errors));

  // Route change to effect: SetRoutes, then requests on an open
  // connection until the other backend answers.
  std::vector<double> change;
  UniqueFd fd = Connect(netns.ns(), proxy.ports().http);
  const std::string req = "GET / HTTP/1.1\r\nHost: bench.example\r\n\r\n";
  for (int i = 0; i < 200 && fd.valid(); ++i) {
    auto& target = i % 2 ? a : b;
    std::string want = i % 2 ? "a" : "b", body;
    auto t = Clock::now();
    proxy.SetRoutes(routes(static_cast<uint16_t>(target->port())));
    while (RoundTrip(fd.get(), req, body) && body != want) {
    }
    change.push_back(MsSince(t));
  }
  Report("route change to effect (SetRoutes): p50 / p99 ms",
         Fmt("%.3f", Percentile(change, 50)) + " / " + Fmt("%.3f", Percentile(change, 99)));
  proxy.Stop();
  return ClusterFigures() ? 0 : 1;
}
