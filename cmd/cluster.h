// Cluster lifecycle as the CLI offers it (`kin cluster create|delete|list`,
// `kin get kubeconfig`), as a list of steps with kind-like progress lines.
//
// A cluster is a state directory <state_root>/<name> holding its PKI, its
// configuration (cluster.json), the SQLite database, the nodes' pods, `kin
// serve`'s log, pid and port. Create validates the configuration (flags and
// --config file) before it makes anything, makes the PKI, starts `kin serve`
// detached (it outlives the CLI; it builds the network and runs the node
// agents), waits until the API answers over TLS and every node is Ready, and
// merges a kubeconfig with context kin-<name>. A failed create removes what
// it made unless `retain`. Delete stops the process it started (by its
// recorded pid, after checking it is that cluster's `kin serve`), then
// removes every pod (processes, cgroups, mounts, namespaces), the nodes and
// the network, the kubeconfig entries and the state directory.
//
// Thread-safety: not thread-safe; one CLI invocation at a time per cluster.
#pragma once

#include <chrono>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace kin::cmd {

struct ClusterCreateOptions {
  std::string name = "kin";
  std::string state_root = "/var/lib/kin";
  std::string kubeconfig;  // "" = $KUBECONFIG or ~/.kube/config
  std::chrono::seconds wait{60};
  bool retain = false;
  int port = 0;              // 0 = a free port
  std::string kin_binary;    // the binary to run `serve` with ("" = this one)
  std::optional<int> nodes;  // --nodes N: N nodes in all (default 1)
  std::string config_file;   // --config FILE (kind-like, cmd/cluster_config.h)
  // Passed on to `kin serve` (see its --help) when set.
  std::string crash_backoff;
  std::string container_log_max_size;
  std::string container_log_max_files;
};

struct ClusterInfo {
  std::string name;
  std::string state_dir;
  int pid = 0;
  int port = 0;
  bool running = false;
};

// Validates a cluster name (a DNS-1123 label of at most 30 characters, so
// derived names such as netns and links stay short).
void CheckClusterName(const std::string& name);
void CreateCluster(const ClusterCreateOptions& opts, std::ostream& progress);
// Deleting a cluster that does not exist is not an error (as kind).
void DeleteCluster(const std::string& name, const std::string& state_root,
                   const std::string& kubeconfig, std::ostream& progress);
std::vector<ClusterInfo> ListClusters(const std::string& state_root);
// `kin load image-archive|rootfs`: into the cluster's image store
// (<state>/images); pods of a running cluster see them at once.
std::vector<std::string> LoadImageArchive(const std::string& name, const std::string& state_root,
                                          const std::string& file);
void LoadRootfs(const std::string& name, const std::string& state_root, const std::string& image,
                const std::string& source);
// The kubeconfig of a running cluster (what `kin get kubeconfig` prints).
std::string ClusterKubeconfig(const std::string& name, const std::string& state_root);

}  // namespace kin::cmd
