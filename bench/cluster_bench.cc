// Figures for the nodes-and-pods issue: `kin cluster create` until every
// node is Ready (1, 3, 10 nodes), pod startup latency (single pods and a
// 100-pod burst until every pod answers HTTP on its IP), 1,000 pods, the RSS
// of `kin serve` with 100 pods, and the cost per pod against the floor of
// 100 x (netns + veth) made with the `ip` command.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "base/file.h"
#include "base/http_client.h"
#include "base/netns.h"
#include "base/process.h"
#include "base/yaml.h"
#include "bench/bench_cluster.h"
#include "bench/bench_util.h"
#include "client/client.h"
#include "client/resources.h"
#include "client/rest_client.h"
#include "testing/e2e_support.h"

using namespace kin;
using namespace kin::bench;

namespace {

Json PodJson(const std::string& name, const std::string& image, const std::string& node,
             bool netexec) {
  Json c = {{"name", "c"}, {"image", image}};
  if (netexec) c["args"] = {"netexec", "--http-port=8080"};
  Json spec = {{"containers", Json::array({c})}};
  if (!node.empty()) spec["nodeName"] = node;
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"name", name}, {"namespace", "default"}}},
          {"spec", spec}};
}

// Until every pod answers GET /hostname on its IP from its node's namespace.
double WaitAnswering(const BenchCluster& c, const std::vector<Json>& pods, Clock::time_point start) {
  std::set<std::string> pending;
  for (const auto& p : pods) pending.insert(p["metadata"].value("name", ""));
  auto deadline = Clock::now() + std::chrono::seconds(60);
  while (!pending.empty() && Clock::now() < deadline) {
    for (const auto& p : pods) {
      std::string name = p["metadata"].value("name", "");
      if (!pending.count(name)) continue;
      std::string node = p["spec"].value("nodeName", "");
      std::string netns = "kin-" + c.name + "-" + node.substr(("kin-" + c.name + "-").size());
      std::string body;
      try {
        RunInNetns(Netns::Open(netns), [&] {
          http::ClientOptions o;
          o.base_url = "http://" + p["status"].value("podIP", "") + ":8080";
          o.timeout_ms = 1000;
          http::HttpClient h(o);
          body = h.Get("/hostname").body;
        });
      } catch (const std::exception&) {
      }
      if (body == name) pending.erase(name);
    }
  }
  if (!pending.empty()) std::fprintf(stderr, "%zu pods never answered\n", pending.size());
  return MsSince(start);
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // figures appear as they are measured
  std::printf("== nodes and pods ==\n");
  testing::TempDir dir;
  std::filesystem::create_directories(dir.File("root"));
  std::string root = dir.File("root"), kc = dir.File("kubeconfig");
  std::string tag = std::to_string(::getpid() % 100000);

  // KIN_BENCH_ONLY=big runs only the 1,000-pod figure, =pods only the single
  // pods and the 100-pod burst.
  const char* only_env = std::getenv("KIN_BENCH_ONLY");
  std::string only = only_env ? only_env : "";
  bool all = only.empty(), pods = all || only == "pods", big = all || only == "big";
  for (int nodes : {1, 3, 10}) {
    if (!all) break;
    std::vector<double> samples;
    for (int i = 0; i < 3; ++i) {
      BenchCluster c{"bc" + tag + "n" + std::to_string(nodes), root, kc, "", {}};
      auto t = Clock::now();
      if (!CreateBenchCluster(c, {"--nodes", std::to_string(nodes)})) return 1;
      samples.push_back(MsSince(t));
      DeleteBenchCluster(c);
    }
    Report("kin cluster create, " + std::to_string(nodes) + " node(s) all Ready, p50",
           Fmt("%.0f ms", Percentile(samples, 50)));
  }

  // Single pods and the 100-pod burst on a 3-node cluster.
  BenchCluster c{"bp" + tag, root, kc, "", {}};
  if (pods && !CreateBenchCluster(c, {"--nodes", "3"})) return 1;
  if (pods) {
    http::HttpClient api(c.api);
    size_t rss_empty = ServeRssKib(c);
    std::vector<double> single;
    for (int i = 0; i < 20; ++i) {
      std::string name = "single" + std::to_string(i);
      auto t = Clock::now();
      api.Do("POST", "/api/v1/namespaces/default/pods",
             PodJson(name, "registry.k8s.io/pause:3.9", "kin-" + c.name + "-worker", false).dump());
      while (!IsPodReady(Json::parse(api.Get("/api/v1/namespaces/default/pods/" + name).body))) {
        usleep(1000);
      }
      single.push_back(MsSince(t));
    }
    Report("pod startup, single pod created -> Ready, p50", Fmt("%.0f ms", Percentile(single, 50)));
    Report("pod startup, single pod created -> Ready, p99", Fmt("%.0f ms", Percentile(single, 99)));
    api.Do("DELETE", "/api/v1/namespaces/default/pods?gracePeriodSeconds=0", "");
    while (!Json::parse(api.Get("/api/v1/namespaces/default/pods").body)["items"].empty()) {
      usleep(10000);
    }

    RestClient watcher(c.api);
    std::string since = ListVersion(api, "/api/v1/namespaces/default/pods");
    double busy0 = MachineBusySeconds(), serve0 = ServeCpuSeconds(c);
    auto t = Clock::now();
    for (int i = 0; i < 100; ++i) {
      api.Do("POST", "/api/v1/namespaces/default/pods",
             PodJson("burst" + std::to_string(i), "registry.k8s.io/e2e-test-images/agnhost:2.52",
                     "", true)
                 .dump());
    }
    if (std::getenv("KIN_BENCH_DEBUG")) std::fprintf(stderr, "posted in %.0f ms\n", MsSince(t));
    std::vector<Json> ready = WaitPodsReady(watcher, since, 100, std::chrono::seconds(120));
    double all_ready = MsSince(t);
    double busy = MachineBusySeconds() - busy0, serve_cpu = ServeCpuSeconds(c) - serve0;
    double answering = WaitAnswering(c, ready, t);
    Report("100-pod burst (scheduled, agnhost netexec): all Ready", Fmt("%.0f ms", all_ready));
    Report("100-pod burst: every pod answers HTTP on its IP", Fmt("%.0f ms", answering));
    Report("100-pod burst: machine CPU per pod (all processes)", Fmt("%.1f ms", busy * 10));
    Report("100-pod burst: kin serve's own CPU per pod", Fmt("%.1f ms", serve_cpu * 10));
    Report("kin serve RSS, empty 3-node cluster", Fmt("%.1f MiB", rss_empty / 1024.0));
    Report("kin serve RSS, 100 pods running", Fmt("%.1f MiB", ServeRssKib(c) / 1024.0));
  }
  if (pods) {
    auto td = Clock::now();
    DeleteBenchCluster(c);
    Report("kin cluster delete, 3 nodes, 100 pods", Fmt("%.0f ms", MsSince(td)));
  }

  // 1,000 pods: 5 workers with room for 250 pods each.
  if (big) {
    BenchCluster big{"bk" + tag, root, kc, "", {}};
    if (!CreateFiveWorkerCluster(big, dir.File("big.yaml"))) return 1;
    http::HttpClient api(big.api);
    RestClient watcher(big.api);
    std::string since = ListVersion(api, "/api/v1/namespaces/default/pods");
    double busy0 = MachineBusySeconds(), serve0 = ServeCpuSeconds(big);
    auto t = Clock::now();
    for (int i = 0; i < 1000; ++i) {
      api.Do("POST", "/api/v1/namespaces/default/pods",
             PodJson("k" + std::to_string(i), "registry.k8s.io/pause:3.9", "", false).dump());
    }
    size_t n = WaitPodsReady(watcher, since, 1000, std::chrono::seconds(300)).size();
    double busy = MachineBusySeconds() - busy0, serve_cpu = ServeCpuSeconds(big) - serve0;
    Report(
        "1,000 pause pods (scheduled over 5 workers): all Ready",
        Fmt("%.1f s", MsSince(t) / 1000) + (n < 1000 ? " (only " + std::to_string(n) + ")" : ""));
    Report("1,000 pause pods: machine CPU per pod (all processes)", Fmt("%.1f ms", busy));
    Report("1,000 pause pods: kin serve's own CPU per pod", Fmt("%.1f ms", serve_cpu));
    auto tdel = Clock::now();
    DeleteBenchCluster(big);
    Report("kin cluster delete, 1,000 pods", Fmt("%.1f s", MsSince(tdel) / 1000));
  }

  // The floor: 100 x (netns + veth) with the ip command, host ends in a scratch namespace.
  if (all) {
    std::string p = "kb" + tag;
    RunCommand({"ip", "netns", "add", p + "node"});
    auto t = Clock::now();
    for (int i = 0; i < 100; ++i) {
      std::string ns = p + "-" + std::to_string(i);
      RunCommand({"ip", "netns", "add", ns});
      RunCommand({"ip", "-n", p + "node", "link", "add", "v" + std::to_string(i), "type", "veth",
                  "peer", "name", "eth0", "netns", ns});
    }
    Report("floor: 100 x (ip netns add + ip link add veth)", Fmt("%.0f ms", MsSince(t)));
    for (int i = 0; i < 100; ++i) RunCommand({"ip", "netns", "del", p + "-" + std::to_string(i)});
    RunCommand({"ip", "netns", "del", p + "node"});
  }
  return 0;
}
