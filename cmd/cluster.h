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
// it made unless `retain`.
//
// Create on a cluster that exists but is stopped (its `kin serve` was
// killed, or the machine rebooted) starts it again as its saved
// configuration says (cluster.json): flags that contradict it are refused
// with a message naming each, and a failed start leaves the state as it was.
// `kin cluster start` is that path alone (NotFound for an unknown cluster).
//
// Delete stops the process it started (by its recorded pid, after checking
// it is that cluster's `kin serve`), then removes every pod (processes,
// cgroups, mounts, namespaces) of every node that has state on disk (also
// one its configuration no longer lists), the nodes and the network, every
// mount left under the state directory, the kubeconfig entries and the
// state directory. It goes on past a failure and ends with one error that
// lists everything it could not remove.
//
// Thread-safety: not thread-safe; one CLI invocation at a time per cluster.
#pragma once

#include <chrono>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "cmd/cluster_config.h"

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
  ClusterFlags flags;        // --crash-backoff, --container-log-max-size, ...
  bool start_only = false;   // `kin cluster start`: an existing cluster only
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
// Throws Error::Internal listing what it could not remove, after trying all.
void DeleteCluster(const std::string& name, const std::string& state_root,
                   const std::string& kubeconfig, std::ostream& progress);
std::vector<ClusterInfo> ListClusters(const std::string& state_root);
// `kin load image-archive|rootfs`: into the cluster's image store
// (<state>/images); pods of a running cluster see them at once.
std::vector<std::string> LoadImageArchive(const std::string& name, const std::string& state_root,
                                          const std::string& file);
void LoadRootfs(const std::string& name, const std::string& state_root, const std::string& image,
                const std::string& source);
// `kin node stop|start NODE`: asks the cluster's running `kin serve` to
// stop the node as a crashed machine, or to boot it again
// (apiserver/node_control.h). NotFound for an unknown cluster or node,
// Unavailable when the cluster is not running, Conflict when the node is in
// that state already.
void SetNodeRunning(const std::string& cluster, const std::string& state_root,
                    const std::string& node, bool running);

// The kubeconfig of a running cluster (what `kin get kubeconfig` prints).
std::string ClusterKubeconfig(const std::string& name, const std::string& state_root);

}  // namespace kin::cmd
