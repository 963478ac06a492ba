// Figures for the controllers issue: a 100-replica Deployment from apply to
// every pod Ready and listed ready in its Service's EndpointSlices; the time
// from a pod turning Ready to its EndpointSlice saying so (p50, p99); a
// 1,000-replica Deployment over 5 workers; scheduling throughput with
// binding; kin serve's RSS with 3 nodes and 100 pods, and after churning
// 1,000 pods through it.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "base/http_client.h"
#include "base/yaml.h"
#include "bench/bench_cluster.h"
#include "bench/bench_util.h"
#include "client/resources.h"
#include "client/rest_client.h"
#include "testing/e2e_support.h"

using namespace kin;
using namespace kin::bench;

namespace {

const ResourceInfo& Slices() {
  return *FindResource("discovery.k8s.io", "v1", "endpointslices");
}

Json Deployment(const std::string& name, int replicas) {
  Json pod_spec = {{"containers", Json::array({{{"name", "c"},
                                                 {"image", "registry.k8s.io/pause:3.9"},
                                                 {"ports", Json::array({{{"containerPort", 80}}})}}})},
                   {"terminationGracePeriodSeconds", 0}};
  return {{"apiVersion", "apps/v1"},
          {"kind", "Deployment"},
          {"metadata", {{"name", name}, {"namespace", "default"}}},
          {"spec",
           {{"replicas", replicas},
            {"selector", {{"matchLabels", {{"app", name}}}}},
            {"template", {{"metadata", {{"labels", {{"app", name}}}}}, {"spec", pod_spec}}}}}};
}

Json Service(const std::string& name) {
  return {{"apiVersion", "v1"},
          {"kind", "Service"},
          {"metadata", {{"name", name}, {"namespace", "default"}}},
          {"spec",
           {{"selector", {{"app", name}}},
            {"ports", Json::array({{{"port", 80}, {"targetPort", 80}}})}}}};
}

// Follows pods and EndpointSlices of one app from `since` and records, per
// pod, when it was first seen Ready and when a slice first listed it ready.
class ReadyTracker {
 public:
  ReadyTracker(const http::ClientOptions& api, std::string app, std::string since)
      : api_(api), app_(std::move(app)), since_(std::move(since)) {
    pods_thread_ = std::thread([this] { Follow(PodsResource(), "app=" + app_, true); });
    slices_thread_ =
        std::thread([this] { Follow(Slices(), "kubernetes.io/service-name=" + app_, false); });
  }
  ~ReadyTracker() {
    stop_ = true;
    pods_thread_.join();
    slices_thread_.join();
  }
  // Waits until `n` pods are ready in slices; false on timeout.
  bool WaitListed(size_t n, std::chrono::seconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      {
        std::lock_guard l(mu_);
        if (listed_now_.size() >= n) return true;
      }
      usleep(2000);
    }
    return false;
  }
  size_t ready_pods() {
    std::lock_guard l(mu_);
    return ready_now_.size();
  }
  Clock::time_point all_ready_at(size_t n) {
    std::lock_guard l(mu_);
    return n <= ready_times_sorted_.size() ? ready_times_sorted_[n - 1] : Clock::time_point();
  }
  // Milliseconds from Ready to listed ready, for pods seen both ways.
  std::vector<double> Lags() {
    std::lock_guard l(mu_);
    std::vector<double> out;
    for (const auto& [pod, t] : first_listed_) {
      auto r = first_ready_.find(pod);
      if (r != first_ready_.end()) {
        out.push_back(std::chrono::duration<double, std::milli>(t - r->second).count());
      }
    }
    return out;
  }

 private:
  void Follow(const ResourceInfo& r, const std::string& selector, bool pods) {
    http::ClientOptions o = api_;
    o.timeout_ms = 0;
    RestClient client(o);
    ListOptions lo;
    lo.resource_version = since_;
    lo.label_selector = selector;
    auto watch = client.StartWatch(r, "default", lo);
    WatchEvent ev;
    std::map<std::string, std::set<std::string>> per_slice;  // slice -> ready pods
    while (!stop_) {
      if (!watch->Next(ev, std::chrono::milliseconds(200))) {
        if (watch->ended()) watch = client.StartWatch(r, "default", lo);
        continue;
      }
      auto now = Clock::now();
      lo.resource_version = ev.object["metadata"].value("resourceVersion", lo.resource_version);
      std::lock_guard l(mu_);
      if (pods) {
        std::string name = ev.object["metadata"].value("name", "");
        if (ev.type != "DELETED" && IsPodReady(ev.object)) {
          if (first_ready_.emplace(name, now).second) ready_times_sorted_.push_back(now);
          ready_now_.insert(name);
        } else {
          ready_now_.erase(name);
        }
        continue;
      }
      std::string slice = ev.object["metadata"].value("name", "");
      std::set<std::string>& set = per_slice[slice];
      set.clear();
      if (ev.type != "DELETED") {
        for (const auto& e : ev.object.value("endpoints", Json::array())) {
          if (!e.value("conditions", Json::object()).value("ready", false)) continue;
          std::string pod = e.value("targetRef", Json::object()).value("name", "");
          set.insert(pod);
          first_listed_.emplace(pod, now);
        }
      }
      listed_now_.clear();
      for (const auto& [s, pods_in] : per_slice) listed_now_.insert(pods_in.begin(), pods_in.end());
    }
  }

  http::ClientOptions api_;
  std::string app_, since_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::map<std::string, Clock::time_point> first_ready_, first_listed_;
  std::vector<Clock::time_point> ready_times_sorted_;
  std::set<std::string> ready_now_, listed_now_;
  std::thread pods_thread_, slices_thread_;
};

void Post(http::HttpClient& api, const std::string& path, const Json& obj) {
  auto r = api.Do("POST", path, obj.dump(), {{"Content-Type", "application/json"}});
  if (r.status >= 300) std::fprintf(stderr, "POST %s: %d %s\n", path.c_str(), r.status, r.body.c_str());
}

void Scale(http::HttpClient& api, const std::string& name, int replicas) {
  api.Do("PATCH", "/apis/apps/v1/namespaces/default/deployments/" + name,
         Json{{"spec", {{"replicas", replicas}}}}.dump(),
         {{"Content-Type", "application/merge-patch+json"}});
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::printf("== controllers ==\n");
  testing::TempDir dir;
  std::filesystem::create_directories(dir.File("root"));
  std::string root = dir.File("root"), kc = dir.File("kubeconfig");
  std::string tag = std::to_string(::getpid() % 100000);
  const char* only_env = std::getenv("KIN_BENCH_ONLY");
  std::string only = only_env ? only_env : "";
  bool all = only.empty();

  // 100 replicas on a 3-node cluster, with a Service in front.
  if (all || only == "deploy") {
    BenchCluster c{"bd" + tag, root, kc, "", {}};
    if (!CreateBenchCluster(c, {"--nodes", "3"})) return 1;
    http::HttpClient api(c.api);
    size_t rss_empty = ServeRssKib(c);
    Post(api, "/api/v1/namespaces/default/services", Service("web"));
    std::string since = ListVersion(api, "/api/v1/namespaces/default/pods");
    {
      ReadyTracker tracker(c.api, "web", since);
      auto t = Clock::now();
      Post(api, "/apis/apps/v1/namespaces/default/deployments", Deployment("web", 100));
      bool ok = tracker.WaitListed(100, std::chrono::seconds(120));
      double listed = MsSince(t);
      auto ready_at = tracker.all_ready_at(100);
      Report("100-replica Deployment: every pod Ready",
             ready_at == Clock::time_point()
                 ? "(not reached)"
                 : Fmt("%.0f ms", std::chrono::duration<double, std::milli>(ready_at - t).count()));
      Report("100-replica Deployment: all listed ready in EndpointSlices",
             ok ? Fmt("%.0f ms", listed) : "(not reached in 120 s)");
      std::vector<double> lags = tracker.Lags();
      Report("pod Ready -> its EndpointSlice says so, p50", Fmt("%.1f ms", Percentile(lags, 50)));
      Report("pod Ready -> its EndpointSlice says so, p99", Fmt("%.1f ms", Percentile(lags, 99)));
    }
    Report("kin serve RSS, empty 3-node cluster", Fmt("%.1f MiB", rss_empty / 1024.0));
    size_t rss_100 = ServeRssKib(c);
    Report("kin serve RSS, 3 nodes, 100 pods (Deployment)", Fmt("%.1f MiB", rss_100 / 1024.0));
    // Churn 1,000 pods through it: scale 100 -> 0 -> 100, five times.
    RestClient watcher(c.api);
    auto t = Clock::now();
    for (int round = 0; round < 5; ++round) {
      Scale(api, "web", 0);
      while (true) {
        Json pods = Json::parse(api.Get("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb").body);
        if (pods["items"].empty()) break;
        usleep(20000);
      }
      std::string from = ListVersion(api, "/api/v1/namespaces/default/pods");
      Scale(api, "web", 100);
      WaitPodsReady(watcher, from, 100, std::chrono::seconds(120));
    }
    Report("churn: 1,000 pods deleted and 1,000 made", Fmt("%.1f s", MsSince(t) / 1000));
    size_t rss_after = ServeRssKib(c);
    Report("kin serve RSS after the churn, 100 pods", Fmt("%.1f MiB", rss_after / 1024.0));
    Report("kin serve RSS growth over the churn",
           Fmt("%+.1f %%", 100.0 * (static_cast<double>(rss_after) / rss_100 - 1)));
    // The same state (100 pods, the churn's Events, the watch history) in a
    // freshly started kin serve: what the churn left beyond its data
    // (fragmentation, leaks).
    if (RestartBenchCluster(c)) {
      http::HttpClient again(c.api);
      auto until = Clock::now() + std::chrono::seconds(60);
      while (Clock::now() < until) {
        size_t ready = 0;
        try {
          Json pods = Json::parse(
              again.Get("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb").body);
          for (const auto& p : pods["items"]) ready += IsPodReady(p) ? 1 : 0;
        } catch (const std::exception&) {
        }
        if (ready >= 100) break;
        usleep(50000);
      }
      size_t rss_fresh = ServeRssKib(c);
      Report("kin serve RSS, fresh start on the churned state",
             Fmt("%.1f MiB", rss_fresh / 1024.0));
      Report("kin serve RSS after the churn vs a fresh start",
             Fmt("%+.1f %%", 100.0 * (static_cast<double>(rss_after) / rss_fresh - 1)));
    }
    DeleteBenchCluster(c);
  }

  // Scheduling throughput with binding: plain kin serve (the scheduler and
  // no node agents) with 5 Ready fake nodes; pods posted as fast as one
  // client can, timed until the last one is bound.
  if (all || only == "sched") {
    testing::ServeProcess serve({"--controllers", "scheduler"});
    http::ClientOptions o;
    o.base_url = serve.url();
    o.timeout_ms = 30000;
    http::HttpClient api(o);
    for (int i = 0; i < 5; ++i) {
      std::string name = "fake" + std::to_string(i);
      Post(api, "/api/v1/nodes",
           {{"apiVersion", "v1"}, {"kind", "Node"}, {"metadata", {{"name", name}}}});
      api.Do("PATCH", "/api/v1/nodes/" + name + "/status",
             Json{{"status",
                   {{"allocatable", {{"cpu", "1000"}, {"memory", "1Ti"}, {"pods", "1000"}}},
                    {"capacity", {{"cpu", "1000"}, {"memory", "1Ti"}, {"pods", "1000"}}},
                    {"conditions", Json::array({{{"type", "Ready"}, {"status", "True"}}})}}}}
                 .dump(),
             {{"Content-Type", "application/merge-patch+json"}});
    }
    const int n = 1000;
    std::string since = ListVersion(api, "/api/v1/namespaces/default/pods");
    RestClient watcher(o);
    ListOptions lo;
    lo.resource_version = since;
    auto watch = watcher.StartWatch(PodsResource(), "default", lo);
    auto t = Clock::now();
    for (int i = 0; i < n; ++i) {
      Post(api, "/api/v1/namespaces/default/pods",
           {{"apiVersion", "v1"},
            {"kind", "Pod"},
            {"metadata", {{"name", "s" + std::to_string(i)}}},
            {"spec", {{"containers", Json::array({{{"name", "c"}, {"image", "busybox"}}})}}}});
    }
    double posted = MsSince(t);
    std::set<std::string> bound;
    WatchEvent ev;
    auto deadline = Clock::now() + std::chrono::seconds(120);
    while (bound.size() < static_cast<size_t>(n) && Clock::now() < deadline) {
      if (!watch->Next(ev, std::chrono::milliseconds(500))) continue;
      if (!ev.object["spec"].value("nodeName", "").empty()) {
        bound.insert(ev.object["metadata"].value("name", ""));
      }
    }
    double total = MsSince(t);
    Report("scheduling: 1,000 pods posted (one client)", Fmt("%.0f ms", posted));
    Report("scheduling: 1,000 pods posted and bound", Fmt("%.0f ms", total));
    Report("scheduling throughput with binding (incl. posting)",
           Fmt("%.0f pods/s", bound.size() / (total / 1000)));
  }

  // 1,000 replicas over 5 workers with room for 250 pods each.
  if (all || only == "big") {
    BenchCluster big{"bb" + tag, root, kc, "", {}};
    if (!CreateFiveWorkerCluster(big, dir.File("big.yaml"))) return 1;
    http::HttpClient api(big.api);
    RestClient watcher(big.api);
    std::string since = ListVersion(api, "/api/v1/namespaces/default/pods");
    auto t = Clock::now();
    Post(api, "/apis/apps/v1/namespaces/default/deployments", Deployment("big", 1000));
    size_t n = WaitPodsReady(watcher, since, 1000, std::chrono::seconds(300)).size();
    Report("1,000-replica Deployment over 5 workers: all Ready",
           Fmt("%.1f s", MsSince(t) / 1000) +
               (n < 1000 ? " (only " + std::to_string(n) + ")" : ""));
    DeleteBenchCluster(big);
  }
  return 0;
}
