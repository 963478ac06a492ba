// Figures for LoadBalancer Services (issue 14), on a real 3-node cluster:
// HTTP requests per second and latency (p50/p99), each on a new TCP
// connection (agnhost netexec /hostname), through a LoadBalancer's address
// from the internet namespace (the network's ECMP route, a node's DNAT, the
// masquerade, and back) against through the ClusterIP from a pod, with the
// same two backends (one per worker).
//
// `kClients` threads, each in the client's network namespace, connect,
// send one request and read the answer until the server closes, for a few
// seconds; latency is from connect to the last byte. The generator shares
// the two cores with kin serve and the backends, so the figures are what
// the machine does with all of it on it; the two paths are measured in
// alternating rounds so drift hits both alike, and the median round is
// reported.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>

#include "base/fd.h"
#include "base/netns.h"
#include "bench/bench_cluster.h"
#include "bench/bench_util.h"
#include "client/resources.h"
#include "client/rest_client.h"
#include "testing/net_probe.h"

using namespace kin;
using namespace kin::bench;

namespace {

constexpr int kClients = 8;
constexpr double kSeconds = 3;
constexpr int kRounds = 3;

std::string PodNetns(const std::string& cluster, const Json& pod) {
  std::string uid;
  for (char ch : pod["metadata"].value("uid", "")) {
    if (ch != '-') uid += ch;
    if (uid.size() == 5) break;
  }
  return "kin-" + cluster + "-default-" + pod["metadata"].value("name", "") + "-" + uid;
}

Json Pod(const std::string& name, const std::string& node, Json labels, Json args) {
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"name", name}, {"namespace", "default"}, {"labels", labels}}},
          {"spec",
           {{"nodeName", node},
            {"containers", Json::array({{{"name", "c"},
                                         {"image", "registry.k8s.io/e2e-test-images/agnhost:2.52"},
                                         {"args", args}}})}}}};
}

struct Load {
  double rps = 0, p50_ms = 0, p99_ms = 0;
  size_t errors = 0;
};

// One request per connection, kClients at a time, for kSeconds.
Load RunLoad(const std::string& netns, const std::string& ip, int port) {
  const std::string request = "GET /hostname HTTP/1.0\r\nHost: " + ip + "\r\n\r\n";
  std::mutex mu;
  std::vector<double> lat;
  std::atomic<size_t> errors{0};
  const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(kSeconds));
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, ip.c_str(), &to.sin_addr);
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kClients; ++t) {
    threads.emplace_back([&] {
      RunInNetns(netns.starts_with('/') ? Netns::OpenPath(netns) : Netns::Open(netns), [&] {
        std::vector<double> mine;
        char buf[4096];
        while (Clock::now() < end) {
          auto t0 = Clock::now();
          UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
          timeval tv{2, 0};
          ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
          if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&to), sizeof to) != 0 ||
              ::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) < 0) {
            ++errors;
            continue;
          }
          // The answer: its head, then Content-Length bytes (the server may
          // keep the connection open).
          std::string got;
          ssize_t n = 0;
          bool complete = false;
          while (!complete && (n = ::recv(fd.get(), buf, sizeof buf, 0)) > 0) {
            got.append(buf, static_cast<size_t>(n));
            size_t head = got.find("\r\n\r\n");
            if (head == std::string::npos) continue;
            size_t cl = got.find("Content-Length: ");
            size_t want =
                cl == std::string::npos || cl > head ? 0 : std::stoul(got.substr(cl + 16));
            complete = got.size() >= head + 4 + want;
          }
          if (!complete && !(n == 0 && !got.empty())) {
            ++errors;
            continue;
          }
          mine.push_back(MsSince(t0));
        }
        std::lock_guard l(mu);
        lat.insert(lat.end(), mine.begin(), mine.end());
      });
    });
  }
  for (auto& t : threads) t.join();
  Load out;
  out.rps =
      static_cast<double>(lat.size()) / std::chrono::duration<double>(Clock::now() - start).count();
  out.p50_ms = Percentile(lat, 50);
  out.p99_ms = Percentile(lat, 99);
  out.errors = errors;
  return out;
}

bool Answers(const std::string& netns, const std::string& ip, int port) {
  auto deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < deadline) {
    if (testing::HttpGetIn(netns, ip, port, "/hostname", std::chrono::milliseconds(500)).ok()) {
      return true;
    }
  }
  return false;
}

}  // namespace

int main() {
  BenchCluster c;
  c.name = "blb";
  if (!CreateBenchCluster(c, {"--nodes", "3"})) return 1;
  int rc = 0;
  try {
    RestClient api(c.api);
    const std::string w1 = "kin-" + c.name + "-worker", w2 = "kin-" + c.name + "-worker2";
    const Json web = {{"app", "web"}};
    api.Create(PodsResource(), "default", Pod("web1", w1, web, {"netexec", "--http-port=8080"}));
    api.Create(PodsResource(), "default", Pod("web2", w2, web, {"netexec", "--http-port=8080"}));
    api.Create(PodsResource(), "default", Pod("client", w1, Json::object(), {"pause"}));
    api.Create(ServicesResource(), "default",
               {{"apiVersion", "v1"},
                {"kind", "Service"},
                {"metadata", {{"name", "web"}, {"namespace", "default"}}},
                {"spec",
                 {{"type", "LoadBalancer"},
                  {"selector", web},
                  {"ports", Json::array({{{"port", 80}, {"targetPort", 8080}}})}}}});
    Json client, svc;
    auto deadline = Clock::now() + std::chrono::seconds(90);
    std::string lb_ip;
    while (Clock::now() < deadline) {
      client = api.Get(PodsResource(), "default", "client");
      svc = api.Get(ServicesResource(), "default", "web");
      const Json ingress =
          svc["status"].value("loadBalancer", Json::object()).value("ingress", Json::array());
      lb_ip = ingress.empty() ? "" : ingress[0].value("ip", "");
      if (IsPodReady(client) && !lb_ip.empty()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    const std::string pod_ns = PodNetns(c.name, client);
    const std::string ext_ns = "kin-" + c.name + "-ext";
    const std::string cluster_ip = svc["spec"].value("clusterIP", "");
    if (lb_ip.empty() || !Answers(ext_ns, lb_ip, 80) || !Answers(pod_ns, cluster_ip, 80)) {
      throw Error::Internal("the Service does not answer (LB IP \"" + lb_ip + "\")");
    }
    // From the host too (the host-access link): the same LB IP from this
    // process's own namespace.
    if (!Answers(testing::kCallersNetns, lb_ip, 80)) {
      throw Error::Internal("the LB IP " + lb_ip + " does not answer from the host");
    }
    std::vector<Load> lb, cip, host;
    for (int r = 0; r < kRounds; ++r) {
      lb.push_back(RunLoad(ext_ns, lb_ip, 80));
      cip.push_back(RunLoad(pod_ns, cluster_ip, 80));
      host.push_back(RunLoad(testing::kCallersNetns, lb_ip, 80));
    }
    auto median = [](std::vector<Load> v) {
      std::sort(v.begin(), v.end(), [](const Load& a, const Load& b) { return a.rps < b.rps; });
      return v[v.size() / 2];
    };
    const Load m_lb = median(lb), m_cip = median(cip), m_host = median(host);
    Report("HTTP requests/s, new connection each, " + std::to_string(kClients) +
               " clients: LB IP from the internet",
           Fmt("%.0f", m_lb.rps) + " (p50 " + Fmt("%.2f", m_lb.p50_ms) + " ms, p99 " +
               Fmt("%.2f", m_lb.p99_ms) + " ms, " + std::to_string(m_lb.errors) + " errors)");
    Report("  the same through the ClusterIP from a pod",
           Fmt("%.0f", m_cip.rps) + " (p50 " + Fmt("%.2f", m_cip.p50_ms) + " ms, p99 " +
               Fmt("%.2f", m_cip.p99_ms) + " ms, " + std::to_string(m_cip.errors) + " errors)");
    Report("  LB IP / ClusterIP", Fmt("%.2f", m_lb.rps / m_cip.rps));
    Report("  the LB IP from the host's own shell",
           Fmt("%.0f", m_host.rps) + " (p50 " + Fmt("%.2f", m_host.p50_ms) + " ms, p99 " +
               Fmt("%.2f", m_host.p99_ms) + " ms, " + std::to_string(m_host.errors) + " errors)");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_loadbalancer: %s\n", e.what());
    rc = 1;
  }
  DeleteBenchCluster(c);
  return rc;
}
