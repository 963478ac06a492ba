// The nodes of a cluster inside `kin serve`: its network, node agents and
// image store, wired to the in-process API (the controllers, the scheduler
// among them, run beside it: controllers/kube_controllers.h).
//
// EnsureClusterNetwork() builds the topology of the cluster's config
// (netstack; when the network namespace is already there, after a restart
// of `kin serve`, the existing one is kept) and (re)applies each node's
// egress masquerade (netstack/egress.h); kin serve calls it before the API
// starts, so the API can listen inside the network (ApiNetworkEndpoint).
//
// Start() ensures the network, starts the cluster-wide parts (the external
// server in the internet namespace: netstack/external_server.h), then
// starts each node's components: first its
// NodeAgent (which re-adopts its pods from the state directory), then one
// of each ClusterRuntimeOptions::node_components (the per-node parts that
// sit beside the agent, never inside it: the service proxy, network
// policy), stopped in the reverse order. Stop() stops the
// threads and leaves every pod running, for the next `kin serve`.
//
// TearDownCluster() is `kin cluster delete`'s part once `kin serve` has
// stopped: every pod's containers, sandboxes and volumes, then the nodes'
// and the network's namespaces. It works from the state directory alone.
//
// Thread-safety: Start/Stop from one thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <vector>

#include "client/client.h"
#include "client/informer_factory.h"
#include "cmd/cluster_config.h"
#include "controllers/cluster_dns.h"
#include "controllers/controller.h"
#include "controllers/ingress.h"
#include "netstack/dns_server.h"
#include "netstack/egress.h"
#include "netstack/topology.h"

namespace kin::apiserver {
class ApiServer;
}

namespace kin::cmd {

// What a per-node component is made from.
struct NodeContext {
  const ClusterConfig& config;
  const NodeConfig& node;
  std::string netns;  // the node's network namespace ("kin-dev-worker")
  Client& client;     // in-process, to the API
};
// Makes one component of a node (a controllers::Controller: name, Start, Stop).
using NodeComponentFactory =
    std::function<std::unique_ptr<controllers::Controller>(const NodeContext&)>;

struct ClusterRuntimeOptions {
  ClusterConfig config;
  // Per node, after its agent, in this order.
  std::vector<NodeComponentFactory> node_components;
  // The process's shared informers (kin serve's controller manager): node
  // agents read their pods from its pod informer rather than each watching
  // its own (NodeAgentOptions.pod_informer). Null: each agent watches.
  SharedInformerFactory* informers = nullptr;
  std::string state_dir;
  std::string kin_binary;
  std::chrono::milliseconds crash_backoff{10000};
  int64_t log_max_bytes = 10 << 20;
  int log_max_files = 5;
  // Service account credentials for pods (NodeAgentOptions); Start() fills
  // them from the API server when it has a service account key.
  std::string cluster_ca_file;
  std::function<std::string(const Json& pod)> service_account_token;
  // TokenRequests for pods' projected serviceAccountToken sources (the
  // API's, as kubelet POSTs serviceaccounts/NAME/token).
  std::function<Json(const std::string& ns, const std::string& name, const Json& request)>
      request_token;
};

// The cluster's network as netstack plans it: node namespaces are named
// after the nodes (kin-<cluster>-worker), the network kin-<cluster>-net.
netstack::ClusterNetwork NetworkOf(const ClusterConfig& config);
// The namespace of one node ("kin-dev-worker2").
std::string NodeNetns(const ClusterConfig& config, const NodeConfig& node);
// Each node's egress masquerade: the pod subnet's traffic to outside the
// pod and service subnets.
netstack::EgressMasquerade EgressOf(const ClusterConfig& config);

// Where pods and nodes reach the API inside the cluster's network: the
// underlay's .1 (held by the network namespace), port 6443.
inline constexpr int kApiNetworkPort = 6443;
struct NetworkEndpoint {
  std::string netns;  // "kin-dev-net"
  std::string ip;     // "172.18.0.1"
  int port = kApiNetworkPort;
};
NetworkEndpoint ApiNetworkEndpoint(const ClusterConfig& config);

void EnsureClusterNetwork(const ClusterConfig& config);

// The cluster DNS's upstream resolvers: dns.upstreams, else the
// nameservers of the host's resolv.conf (`host_resolv_conf`, its text;
// IPv4 ones). One the cluster's network reaches (the internet namespace,
// the pod, service or node ranges) is asked from the DNS pod, through the
// node's SNAT; any other from the host's namespace, as kind's CoreDNS asks
// the node's resolver.
std::vector<netstack::DnsUpstream> DnsUpstreamsOf(const ClusterConfig& config,
                                                  const std::string& host_resolv_conf);

// Creates the cluster DNS's kube-dns Service and coredns Deployment
// (controllers/cluster_dns.h) where they are missing; one that exists is
// left as it is. Errors are logged, not thrown: the cluster runs without.
void EnsureClusterDns(Client& client, const controllers::ClusterDnsSettings& settings);

// Creates the built-in Ingress controller's namespace, IngressClass `kin`,
// Deployment and LoadBalancer Service (controllers/ingress.h) where they
// are missing, as EnsureClusterDns does.
void EnsureIngress(Client& client, const controllers::IngressSettings& settings);

class ClusterRuntime {
 public:
  ClusterRuntime(apiserver::ApiServer& api, ClusterRuntimeOptions opts);
  ~ClusterRuntime();
  void Start();
  void Stop();

  // `kin node stop|start` (apiserver/node_control.h), served by the API
  // once Start() ran. StopNode: the node's agent stops, every container and
  // sandbox of it is removed, its uplink goes down, and it stays stopped
  // across restarts of kin serve until StartNode, which brings the link
  // and a new agent back (its pods start afresh, as after a reboot).
  // NotFound for a node the cluster does not have; Conflict when it is in
  // that state already.
  void StopNode(const std::string& node);
  void StartNode(const std::string& node);

 private:
  struct Parts;
  class Control;
  const NodeConfig& NodeByName(const std::string& node) const;
  // Makes and starts the node's components (its agent first).
  void StartComponents(const NodeConfig& node);

  apiserver::ApiServer& api_;
  ClusterRuntimeOptions opts_;
  std::unique_ptr<Parts> parts_;
  std::unique_ptr<Control> control_;
  std::mutex node_op_mu_;  // one stop/start (or Stop) at a time
};

void TearDownCluster(const ClusterConfig& config, const std::string& state_dir);

}  // namespace kin::cmd
