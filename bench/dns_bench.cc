// Figures for the cluster DNS issue, on a real 1-node cluster: queries per
// second and latency (p50/p99) through the kube-dns Service IP from a pod's
// network namespace, with 10 and with 10,000 Services; and the time from a
// Service's create (the API's answer) to its name resolving from the pod
// (p50/p99 of 50).
//
// The load generator keeps `kInFlight` UDP queries outstanding from one
// socket in the pod's namespace (as dnsperf does) for a few seconds; each
// answer's latency is measured from its query's send. It shares the two
// cores with kin serve, so the throughput is what the machine does with
// both sides on it.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cstdio>
#include <random>
#include <thread>

#include "base/fd.h"
#include "base/netns.h"
#include "bench/bench_cluster.h"
#include "bench/bench_util.h"
#include "client/resources.h"
#include "client/rest_client.h"
#include "testing/dns_probe.h"
#include "testing/net_probe.h"

using namespace kin;
using namespace kin::bench;

namespace {

constexpr char kDnsIp[] = "10.96.0.10";
constexpr int kInFlight = 64;

Json Service(const std::string& name) {
  return {{"apiVersion", "v1"},
          {"kind", "Service"},
          {"metadata", {{"name", name}, {"namespace", "default"}}},
          {"spec",
           {{"selector", {{"app", name}}},
            {"ports", Json::array({{{"name", "http"}, {"port", 80}, {"targetPort", 80}}})}}}};
}

// The pod's network namespace, as the node agent names it.
std::string PodNetns(const std::string& cluster, const Json& pod) {
  std::string uid;
  for (char ch : pod["metadata"].value("uid", "")) {
    if (ch != '-') uid += ch;
    if (uid.size() == 5) break;
  }
  return "kin-" + cluster + "-default-" + pod["metadata"].value("name", "") + "-" + uid;
}

struct Load {
  double qps = 0, p50_ms = 0, p99_ms = 0;
  size_t answered = 0, sent = 0;
};

// Queries for `names` (cycled) for `seconds`: with rate 0, kInFlight kept
// outstanding (the most the machine answers); else sent at `rate` per
// second in small bursts every 200 us, whatever comes back (the latency at
// that load, without the generator's own queue in it).
Load RunLoad(const std::string& netns, const std::vector<std::string>& names, double seconds,
             double rate = 0) {
  std::vector<std::string> queries;
  for (size_t i = 0; i < names.size(); ++i) queries.push_back(testing::DnsQueryWire(names[i], "A"));
  UniqueFd fd;
  RunInNetns(Netns::Open(netns),
             [&] { fd.reset(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)); });
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(53);
  ::inet_pton(AF_INET, kDnsIp, &to.sin_addr);
  ::connect(fd.get(), reinterpret_cast<sockaddr*>(&to), sizeof to);

  std::vector<Clock::time_point> sent_at(65536);
  std::vector<bool> outstanding(65536, false);
  std::vector<double> lat;
  lat.reserve(1 << 20);
  Load out;
  uint16_t next_id = 1;
  size_t next_name = 0;
  int in_flight = 0;
  auto send_one = [&] {
    std::string& q = queries[next_name++ % queries.size()];
    uint16_t id = next_id++;
    q[0] = static_cast<char>(id >> 8);
    q[1] = static_cast<char>(id & 0xff);
    sent_at[id] = Clock::now();
    outstanding[id] = true;
    if (::send(fd.get(), q.data(), q.size(), 0) > 0) {
      ++in_flight;
      ++out.sent;
    }
  };
  auto start = Clock::now();
  auto end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  while (Clock::now() < end) {
    if (rate > 0) {
      double due = std::chrono::duration<double>(Clock::now() - start).count() * rate;
      while (static_cast<double>(out.sent) < due) send_one();
      timespec wait{0, 200000};
      pollfd p{fd.get(), POLLIN, 0};
      if (::ppoll(&p, 1, &wait, nullptr) != 1) continue;
    } else {
      while (in_flight < kInFlight) send_one();
      pollfd p{fd.get(), POLLIN, 0};
      if (::poll(&p, 1, 100) != 1) {
        in_flight = 0;  // lost answers: start the window again
        continue;
      }
    }
    uint8_t buf[2048];
    while (true) {
      ssize_t n = ::recv(fd.get(), buf, sizeof buf, MSG_DONTWAIT);
      if (n < 12) break;
      uint16_t id = static_cast<uint16_t>((buf[0] << 8) | buf[1]);
      if (!outstanding[id]) continue;
      outstanding[id] = false;
      --in_flight;
      ++out.answered;
      lat.push_back(std::chrono::duration<double, std::milli>(Clock::now() - sent_at[id]).count());
    }
  }
  double took = std::chrono::duration<double>(Clock::now() - start).count();
  out.qps = static_cast<double>(out.answered) / took;
  out.p50_ms = Percentile(lat, 50);
  out.p99_ms = Percentile(lat, 99);
  return out;
}

void ReportLoad(const std::string& netns, const std::string& what,
                const std::vector<std::string>& names) {
  Load most = RunLoad(netns, names, 3);
  Report("DNS qps through the Service IP, " + what, Fmt("%.0f", most.qps));
  Report("  latency p50 / p99 (ms), " + std::to_string(kInFlight) + " in flight",
         Fmt("%.3f", most.p50_ms) + " / " + Fmt("%.3f", most.p99_ms));
  Load at = RunLoad(netns, names, 3, 50000);
  Report("  at 50,000 qps offered: answered, p50 / p99 (ms)",
         Fmt("%.1f%%", 100.0 * static_cast<double>(at.answered) / static_cast<double>(at.sent)) +
             ", " + Fmt("%.3f", at.p50_ms) + " / " + Fmt("%.3f", at.p99_ms));
}

}  // namespace

int main() {
  BenchCluster c;
  c.name = "bdns";
  if (!CreateBenchCluster(c, {"--nodes", "1"})) return 1;
  int rc = 0;
  try {
    RestClient api(c.api);
    Json pod = {
        {"apiVersion", "v1"},
        {"kind", "Pod"},
        {"metadata", {{"name", "client"}, {"namespace", "default"}}},
        {"spec",
         {{"containers", Json::array({{{"name", "c"},
                                       {"image", "registry.k8s.io/e2e-test-images/agnhost:2.52"},
                                       {"args", {"pause"}}}})}}}};
    api.Create(PodsResource(), "default", pod);
    Json client;
    auto deadline = Clock::now() + std::chrono::seconds(60);
    while (Clock::now() < deadline) {
      client = api.Get(PodsResource(), "default", "client");
      if (IsPodReady(client)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    const std::string netns = PodNetns(c.name, client);
    // The DNS answers once its pods are up.
    auto ask = [&](const std::string& name) {
      auto r = testing::UdpAskIn(netns, kDnsIp, 53, testing::DnsQueryWire(name, "A"),
                                 std::chrono::milliseconds(200));
      auto reply = r.ok() ? testing::ParseDnsReply(r.body) : std::nullopt;
      return reply ? reply->rcode : std::string("-");
    };
    deadline = Clock::now() + std::chrono::seconds(60);
    while (ask("kubernetes.default.svc.cluster.local") != "NOERROR" && Clock::now() < deadline) {
    }

    std::vector<std::string> names;
    for (int i = 0; i < 10; ++i) {
      api.Create(ServicesResource(), "default", Service("s" + std::to_string(i)));
      names.push_back("s" + std::to_string(i) + ".default.svc.cluster.local");
    }
    while (ask(names.back()) != "NOERROR") {
    }
    ReportLoad(netns, "10 Services", names);

    // Service create -> its name resolves from the pod.
    std::vector<double> to_resolve;
    for (int i = 0; i < 50; ++i) {
      std::string name = "fresh" + std::to_string(i);
      api.Create(ServicesResource(), "default", Service(name));
      auto t0 = Clock::now();
      while (ask(name + ".default.svc.cluster.local") != "NOERROR") {
        if (MsSince(t0) > 5000) break;
      }
      to_resolve.push_back(MsSince(t0));
    }
    Report(
        "Service create -> name resolves, p50 / p99 (ms)",
        Fmt("%.1f", Percentile(to_resolve, 50)) + " / " + Fmt("%.1f", Percentile(to_resolve, 99)));

    // 10,000 Services: the answers come from the same index.
    std::printf("creating 10,000 Services...\n");
    std::fflush(stdout);
    std::vector<std::thread> writers;
    for (int w = 0; w < 4; ++w) {
      writers.emplace_back([&, w] {
        RestClient wapi(c.api);
        for (int i = w; i < 10000; i += 4) {
          wapi.Create(ServicesResource(), "default", Service("big" + std::to_string(i)));
        }
      });
    }
    for (auto& t : writers) t.join();
    std::vector<std::string> big;
    std::mt19937 rng(7);
    for (int i = 0; i < 1000; ++i) {
      big.push_back("big" + std::to_string(rng() % 10000) + ".default.svc.cluster.local");
    }
    deadline = Clock::now() + std::chrono::seconds(120);
    while (ask("big9999.default.svc.cluster.local") != "NOERROR" && Clock::now() < deadline) {
    }
    ReportLoad(netns, "10,000 Services", big);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_dns: %s\n", e.what());
    rc = 1;
  }
  DeleteBenchCluster(c);
  return rc;
}
