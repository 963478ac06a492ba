// Figures for the API server (issue: API server on SQLite):
//   creates/s over HTTP keep-alive from 1 and 8 clients,
//   list of 10,000 pods, watch delivery latency, RSS with 10,000 pods.
#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "base/http_client.h"
#include "base/yaml.h"
#include "bench/bench_util.h"
#include "testing/e2e_support.h"

using namespace kin;
using namespace kin::bench;

namespace {

std::string PodBody(const std::string& name) {
  Json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata", {{"name", name}, {"labels", {{"app", "bench"}, {"idx", name}}}}},
              {"spec",
               {{"containers",
                 {{{"name", "web"},
                   {"image", "registry.k8s.io/e2e-test-images/agnhost:2.52"},
                   {"args", {"netexec", "--http-port=8080"}},
                   {"ports", {{{"containerPort", 8080}}}}}}}}}};
  return pod.dump();
}

long RssKiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// Creates `total` pods from `clients` threads; returns creates per second.
double CreateRate(const std::string& url, const std::string& prefix, int clients, int total) {
  std::atomic<int> next{0}, failures{0};
  auto t = Clock::now();
  std::vector<std::thread> ts;
  for (int c = 0; c < clients; ++c) {
    ts.emplace_back([&] {
      http::HttpClient hc({.base_url = url});
      for (int i = next++; i < total; i = next++) {
        auto r =
            hc.Do("POST", "/api/v1/namespaces/default/pods", PodBody(prefix + std::to_string(i)));
        if (r.status != 201) failures++;
      }
    });
  }
  for (auto& th : ts) th.join();
  double secs = MsSince(t) / 1000;
  if (failures > 0) std::fprintf(stderr, "%d creates failed\n", failures.load());
  return total / secs;
}

}  // namespace

int main() {
  std::printf("== API server ==\n");
  testing::ServeProcess serve;
  std::string url = serve.url();
  long rss_empty = RssKiB(serve.process().pid());

  double one = CreateRate(url, "one-", 1, 2000);
  Report("pod creates/s over HTTP keep-alive, 1 client", Fmt("%.0f /s", one));
  double eight = CreateRate(url, "eight-", 8, 4000);
  Report("pod creates/s over HTTP keep-alive, 8 clients", Fmt("%.0f /s", eight));

  // Fill up to 10,000 pods.
  CreateRate(url, "fill-", 8, 10000 - 6000);
  {
    http::HttpClient c({.base_url = url});
    std::vector<double> samples;
    size_t bytes = 0;
    for (int i = 0; i < 10; ++i) {
      auto t = Clock::now();
      auto r = c.Get("/api/v1/pods");
      samples.push_back(MsSince(t));
      bytes = r.body.size();
      if (r.status != 200) return 1;
    }
    Report("list 10,000 pods over HTTP (p50 of 10)", Fmt("%.1f ms", Percentile(samples, 50)));
    Report("list 10,000 pods over HTTP (max of 10)", Fmt("%.1f ms", Percentile(samples, 100)));
    Report("  response size", Fmt("%.1f MiB", bytes / 1048576.0));
    auto t = Clock::now();
    auto r = c.Get("/api/v1/pods?labelSelector=idx%3Dfill-77");
    Report("list with a label selector over 10,000 pods", Fmt("%.1f ms", MsSince(t)));
  }
  Report("kin serve RSS, empty",
         Fmt("%.1f MiB", RssKiB(serve.process().pid()) > 0 ? rss_empty / 1024.0 : -1));
  Report("kin serve RSS with 10,000 pods stored",
         Fmt("%.1f MiB", RssKiB(serve.process().pid()) / 1024.0));

  // Watch delivery: POST start -> event received by a watcher (an upper bound
  // of commit -> event).
  {
    std::mutex mu;
    std::map<std::string, Clock::time_point> sent;
    std::vector<double> lat;
    std::atomic<bool> ready{false};
    const int n = 500;
    http::HttpClient probe({.base_url = url});
    std::string rv = Json::parse(
        probe.Get("/api/v1/namespaces/default/pods?limit=1").body)["metadata"]["resourceVersion"];
    std::thread watcher([&] {
      http::HttpClient c({.base_url = url});
      std::string buf;
      c.Stream(
          "GET",
          "/api/v1/namespaces/default/pods?watch=true&labelSelector=app%3Dwatch&resourceVersion=" +
              rv,
          [&](std::string_view d) {
            auto now = Clock::now();
            buf.append(d);
            size_t nl;
            while ((nl = buf.find('\n')) != std::string::npos) {
              Json e = Json::parse(buf.substr(0, nl));
              buf.erase(0, nl + 1);
              std::string name = e["object"]["metadata"]["name"];
              std::lock_guard lock(mu);
              lat.push_back(std::chrono::duration<double, std::milli>(now - sent[name]).count());
            }
            std::lock_guard lock(mu);
            return lat.size() < static_cast<size_t>(n);
          });
    });
    http::HttpClient w({.base_url = url});
    for (int i = 0; i < n; ++i) {
      std::string name = "watch-" + std::to_string(i);
      Json pod = Json::parse(PodBody(name));
      pod["metadata"]["labels"]["app"] = "watch";
      {
        std::lock_guard lock(mu);
        sent[name] = Clock::now();
      }
      w.Do("POST", "/api/v1/namespaces/default/pods", pod.dump());
    }
    watcher.join();
    Report("watch delivery, POST sent -> event received, p50", Fmt("%.2f ms", Percentile(lat, 50)));
    Report("watch delivery, POST sent -> event received, p99", Fmt("%.2f ms", Percentile(lat, 99)));
  }
  return 0;
}
