// The nodes of a cluster inside `kin serve`: its network, node agents and
// image store, wired to the in-process API (the controllers, the scheduler
// among them, run beside it: controllers/kube_controllers.h).
//
// Start() builds the topology of the cluster's config (netstack; when the
// network namespace is already there, after a restart of `kin serve`, the
// existing one is kept), then starts one NodeAgent per node (each re-adopts
// its pods from the state directory). Stop() stops the
// threads and leaves every pod running, for the next `kin serve`.
//
// TearDownCluster() is `kin cluster delete`'s part once `kin serve` has
// stopped: every pod's containers, sandboxes and volumes, then the nodes'
// and the network's namespaces. It works from the state directory alone.
//
// Thread-safety: Start/Stop from one thread.
#pragma once

#include <chrono>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "cmd/cluster_config.h"
#include "netstack/topology.h"

namespace kin::apiserver {
class ApiServer;
}

namespace kin::cmd {

struct ClusterRuntimeOptions {
  ClusterConfig config;
  std::string state_dir;
  std::string kin_binary;
  std::chrono::milliseconds crash_backoff{10000};
  int64_t log_max_bytes = 10 << 20;
  int log_max_files = 5;
};

// The cluster's network as netstack plans it: node namespaces are named
// after the nodes (kin-<cluster>-worker), the network kin-<cluster>-net.
netstack::ClusterNetwork NetworkOf(const ClusterConfig& config);
// The namespace of one node ("kin-dev-worker2").
std::string NodeNetns(const ClusterConfig& config, const NodeConfig& node);

class ClusterRuntime {
 public:
  ClusterRuntime(apiserver::ApiServer& api, ClusterRuntimeOptions opts);
  ~ClusterRuntime();
  void Start();
  void Stop();

 private:
  struct Parts;
  apiserver::ApiServer& api_;
  ClusterRuntimeOptions opts_;
  std::unique_ptr<Parts> parts_;
};

void TearDownCluster(const ClusterConfig& config, const std::string& state_dir);

}  // namespace kin::cmd
