// The configuration of `kin cluster create`: a kind-like config file plus
// flags, turned into a complete, validated description of the cluster.
//
// The file (YAML; every field optional except apiVersion and kind):
//
//   apiVersion: kin.dev/v1alpha1
//   kind: Cluster
//   name: dev                    # must equal the cluster's name when both given
//   nodes:
//   - role: control-plane        # or worker; at least one control-plane
//   - role: worker
//     labels: {tier: frontend}
//     capacity: {cpu: "4", memory: 16Gi, pods: "110"}
//   networking:
//     podSubnet: 10.244.0.0/16
//     serviceSubnet: 10.96.0.0/16
//     nodeCidrMaskSize: 24
//     routing: routed            # or host-gw
//     proxyMode: nftables        # or iptables (kube-proxy's chains); no ipvs here
//     externalSubnet: 203.0.113.0/24  # "the internet" (kin-<c>-ext); /29 or larger
//     underlay: 172.18.0.0/24
//     loadBalancerSubnet: 198.51.100.0/24  # LoadBalancer Services' addresses
//     hostAccess: true           # node and LoadBalancer IPs routed from the host
//   images:
//     hostMappings:
//       "myorg/tools:dev": /     # image -> host directory (read-only rootfs)
//   registries:                  # where nodes pull images from (runtime/registry_client.h)
//     mirrors:                   # registry host -> endpoints tried first, in order, then
//       docker.io: ["http://127.0.0.1:5000"]  # the registry itself (as containerd's
//                                # hosts.toml, which kind's containerdConfigPatches set)
//     insecure: ["127.0.0.1:5000"]  # hosts spoken to over plain HTTP (no scheme)
//   kubelet:                     # every node agent's settings
//     crashBackoff: 10s          # first restart back-off of a crashing container
//     containerLogMaxSize: 10Mi  # CRI logs rotate at this size (at least 4Ki)
//     containerLogMaxFiles: 5    # log files kept per container (at least 2)
//   nodeLifecycle:
//     nodeMonitorGracePeriod: 40s   # a node's lease unrenewed this long: Unknown, tainted
//     defaultTolerationSeconds: 300 # pods on such a node are evicted after this
//   dns:                         # cluster DNS (the kube-dns Service at the service subnet's .10)
//     domain: cluster.local      # the cluster domain
//     replicas: 2                # kube-dns pods (0: no cluster DNS)
//     upstreams: [203.0.113.2]   # resolvers for names outside the domain; default:
//                                # the host's /etc/resolv.conf nameservers
//     forwardTimeout: 2s         # no upstream answer in this long: SERVFAIL
//
// Decoding is strict: unknown fields are errors. All problems of a file are
// reported at once as one Error::Invalid with one Cause per problem, with
// Kubernetes-style field paths ("nodes[1].role", "networking.podSubnet") and
// messages ("Unsupported value: \"master\": supported values: ..."); field
// paths of nodes use the index in the file. YAML syntax errors are
// Error::BadRequest naming the file, line and column.
//
// Filling in, as kind does: control-planes come first (in file order), then
// workers; names kin-<cluster>-control-plane, -control-plane2, ..., -worker,
// -worker2, ...; node i (in that order) gets the underlay's address .(i+2)
// (the .1 is the network's bridge) and the i-th block of the pod subnet;
// kind's well-known labels; the control-plane NoSchedule taint only when the
// cluster has a worker; the cluster DNS at the service subnet's .10.
//
// Host access (on unless hostAccess: false or --host-access=false): the
// underlay and the LoadBalancer range are routed on the host, so they must
// be clear of what the host routes already (`host_taken`: its routes, other
// clusters' ranges). One the file names that overlaps a taken range is
// Invalid naming both; one it leaves out is chosen: the first clear one of
// 172.18.0.0/24, 172.18.1.0/24, ... 172.31.255.0/24 (underlay) and of
// 198.51.100.0/24, then 198.18.0.0/24 ... 198.19.255.0/24 (LoadBalancer).
// The host-access link holds the underlay's last host address, which no
// node gets.
//
// The flags of `kin cluster create` that set fields of the configuration
// (ClusterFlags) override the file's; BuildClusterConfig validates them as
// the fields they set, naming the flag.
//
// Thread-safety: pure functions on plain values.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/yaml.h"

namespace kin::cmd {

inline constexpr const char* kClusterConfigApiVersion = "kin.dev/v1alpha1";
inline constexpr int kMaxClusterNameLength = 30;  // part of netns and link names
inline constexpr int kMaxNodes = 100;

struct NodeConfig {
  std::string name;  // kin-<cluster>-control-plane, kin-<cluster>-worker2, ...
  std::string role;  // "control-plane" | "worker"
  std::map<std::string, std::string> labels;
  Json taints = Json::array();  // [{key, effect}]
  Json capacity;                // {"cpu": "2", "memory": "8Gi", ...}: strings
  std::string ip;               // on the underlay
  std::string pod_cidr;

  bool operator==(const NodeConfig&) const = default;

  // The form kept in cluster.json and in each node's state directory.
  Json ToJson() const;
  static NodeConfig FromJson(const Json& j);  // throws Json::exception when malformed
};

struct ClusterConfig {
  std::string name;
  std::vector<NodeConfig> nodes;
  std::string pod_subnet = "10.244.0.0/16";
  std::string service_subnet = "10.96.0.0/16";
  std::string dns_ip;  // the service subnet's .10
  std::string underlay = "172.18.0.0/24";
  int node_cidr_mask_size = 24;
  std::string routing = "routed";                          // "routed" | "host-gw"
  std::string proxy_mode = "nftables";                     // "nftables" | "iptables"
  std::string external_subnet = "203.0.113.0/24";          // the internet namespace's
  std::string load_balancer_subnet = "198.51.100.0/24";    // LoadBalancer Services' pool
  bool host_access = true;  // routed from the host (state saved without it: false)
  std::map<std::string, std::string> image_host_mappings;  // image -> host directory
  // Image pulls (the file's `registries`).
  std::map<std::string, std::vector<std::string>> registry_mirrors;  // host -> endpoint URLs
  std::vector<std::string> registry_insecure;                         // plain-HTTP hosts
  // The node agents' settings (the file's `kubelet`).
  std::string crash_backoff = "10s";
  std::string container_log_max_size = "10Mi";
  int container_log_max_files = 5;
  // How often a node agent refreshes its pods' configMap, secret,
  // downwardAPI and projected volumes (the kubelet's syncFrequency), and
  // the age at which a service account token is rotated whatever its
  // lifetime (the kubelet's fixed 24 h; short in tests of the rotation).
  std::string sync_frequency = "1m";
  std::string token_max_age = "24h";
  // Node lifecycle (the file's `nodeLifecycle`).
  std::string node_monitor_grace_period = "40s";
  int64_t default_toleration_seconds = 300;
  // Cluster DNS (the file's `dns`).
  std::string dns_domain = "cluster.local";
  int dns_replicas = 2;
  std::vector<std::string> dns_upstreams;  // empty: the host's /etc/resolv.conf
  std::string dns_forward_timeout = "2s";

  // The settings above as values (they are validated when built).
  std::chrono::milliseconds CrashBackoff() const;
  std::chrono::milliseconds SyncFrequency() const;
  std::chrono::milliseconds TokenMaxAge() const;
  int64_t ContainerLogMaxBytes() const;
  std::chrono::milliseconds NodeMonitorGracePeriod() const;
  std::chrono::milliseconds DnsForwardTimeout() const;

  bool operator==(const ClusterConfig&) const = default;

  // The state directory's form (camelCase keys). FromJson reads what ToJson
  // wrote; a malformed document is Error::Invalid naming what is wrong.
  Json ToJson() const;
  static ClusterConfig FromJson(const Json& j);
};

// The node capacity every node gets unless its `capacity` overrides a key.
Json DefaultNodeCapacity();

// The create flags that set configuration fields; unset ones leave the
// file's value (or the default).
struct ClusterFlags {
  std::optional<std::string> crash_backoff;           // --crash-backoff
  std::optional<std::string> container_log_max_size;  // --container-log-max-size
  std::optional<int> container_log_max_files;         // --container-log-max-files
  std::optional<bool> host_access;                    // --host-access
};

// A range the host routes already, and what it is ("the host's route
// 172.18.0.0/16 dev docker0", "cluster dev's networking.underlay").
struct TakenRange {
  std::string cidr;
  std::string what;
};

// Builds and validates the configuration from `config_text` (the file's
// contents; empty or comments only: all defaults) and --nodes (`nodes_flag`:
// N nodes in all, the first a control-plane, the rest workers; conflicts
// with a file that lists nodes). `cluster_name` is the --name flag; when
// empty, the file's `name` is used, else "kin". `config_source` names the
// file in messages.
ClusterConfig BuildClusterConfig(const std::string& cluster_name, std::optional<int> nodes_flag,
                                 const std::string& config_text, const std::string& config_source,
                                 const ClusterFlags& flags = {},
                                 const std::vector<TakenRange>& host_taken = {});

// Go's time.ParseDuration subset: sequences of <number><unit>, unit
// h|m|s|ms ("90s", "2m", "1m30s", "500ms"); BadRequest naming `flag`
// otherwise. ParseDuration rounds up to seconds.
std::chrono::milliseconds ParseDurationMs(const std::string& text, const std::string& flag);
std::chrono::seconds ParseDuration(const std::string& text, const std::string& flag);

}  // namespace kin::cmd
