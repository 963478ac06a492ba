// What the cluster benchmarks share: a cluster made with the real binary,
// its API over TLS, readiness, and what `kin serve` and the machine spend.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "base/http_client.h"
#include "base/yaml.h"
#include "client/rest_client.h"

namespace kin::bench {

struct BenchCluster {
  std::string name, root, kubeconfig, state;
  http::ClientOptions api;
};

// `kin cluster create --name c.name ... FLAGS`; fills state and api.
bool CreateBenchCluster(BenchCluster& c, const std::vector<std::string>& flags);
void DeleteBenchCluster(const BenchCluster& c);
// Stops the cluster's `kin serve` (SIGTERM: its pods keep running) and
// starts it again with `kin cluster start`, as after a reboot of kin serve;
// refreshes c.api. False (with a message on stderr) when it does not come back.
bool RestartBenchCluster(BenchCluster& c);
// The 1,000-pod figures' cluster: a control plane and 5 workers with room
// for 250 pods each, from a cluster config written to `config_path`.
bool CreateFiveWorkerCluster(BenchCluster& c, const std::string& config_path);

bool IsPodReady(const Json& pod);
// The resourceVersion to watch from: a list's, taken before what is measured.
std::string ListVersion(http::HttpClient& api, const std::string& path);

// Watches pods (from `since`) until `want` of them are Ready; returns them.
std::vector<Json> WaitPodsReady(RestClient& api, const std::string& since, size_t want,
                                std::chrono::seconds timeout, const std::string& ns = "default");

// CPU time the whole machine spent busy, in seconds (/proc/stat).
double MachineBusySeconds();
// CPU seconds and resident memory of the cluster's `kin serve`.
double ServeCpuSeconds(const BenchCluster& c);
size_t ServeRssKib(const BenchCluster& c);

}  // namespace kin::bench
