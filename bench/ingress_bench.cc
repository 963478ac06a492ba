// Figures for the Ingress proxy (issue 14), on real sockets in a network
// namespace of its own (root): requests per second and latency (p50/p99)
// of small GETs through the IngressProxy vs straight to the backend (a
// kin HTTP server standing in for the pod), with 8 keep-alive clients; and
// the time from SetRoutes (what the controller calls once the API changed)
// to a request served by the new backend (p50/p99 of 200).
//
// Clients, proxy and backend share the machine's two cores, so the ratio
// (through / direct) is the figure to read.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <thread>

#include "base/fd.h"
#include "base/http_server.h"
#include "base/netns.h"
#include "bench/bench_util.h"
#include "netstack/ingress_proxy.h"
#include "netstack/netlink.h"

using namespace kin;
using namespace kin::bench;
using namespace kin::netstack;

namespace {

constexpr int kClients = 8;
constexpr double kSeconds = 3;

UniqueFd Connect(const Netns& ns, uint16_t port) {
  UniqueFd fd;
  RunInNetns(ns, [&] {
    fd.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
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
};

Load Run(const Netns& ns, uint16_t port) {
  std::mutex mu;
  std::vector<double> lat;
  std::atomic<size_t> errors{0}, done{0};
  auto until = Clock::now() + std::chrono::duration<double>(kSeconds);
  std::vector<std::thread> threads;
  auto start = Clock::now();
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&] {
      std::vector<double> mine;
      UniqueFd fd = Connect(ns, port);
      const std::string req = "GET /x HTTP/1.1\r\nHost: bench.example\r\n\r\n";
      std::string body;
      while (fd.valid() && Clock::now() < until) {
        auto t = Clock::now();
        if (!RoundTrip(fd.get(), req, body)) {
          errors++;
          fd = Connect(ns, port);
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
  return {static_cast<double>(done) / secs, Percentile(lat, 50), Percentile(lat, 99), errors};
}

}  // namespace

int main() {
  if (::geteuid() != 0) {
    std::fprintf(stderr, "bench_ingress needs root (a network namespace of its own)\n");
    return 0;
  }
  std::string name = "kinbench-ing-" + std::to_string(::getpid());
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

  std::printf("Ingress proxy (netstack, %d keep-alive clients, %.0f s each)\n", kClients, kSeconds);
  Load direct = Run(netns.ns(), static_cast<uint16_t>(a->port()));
  Load through = Run(netns.ns(), proxy.ports().http);
  Report("direct to the backend: requests/s", Fmt("%.0f", direct.rps));
  Report("direct to the backend: p50 / p99 ms",
         Fmt("%.3f", direct.p50) + " / " + Fmt("%.3f", direct.p99));
  Report("through the Ingress proxy: requests/s", Fmt("%.0f", through.rps));
  Report("through the Ingress proxy: p50 / p99 ms",
         Fmt("%.3f", through.p50) + " / " + Fmt("%.3f", through.p99));
  Report("through / direct", Fmt("%.0f %%", 100.0 * through.rps / std::max(direct.rps, 1.0)));
  Report("errors (direct, through)",
         std::to_string(direct.errors) + ", " + std::to_string(through.errors));

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
  return 0;
}
