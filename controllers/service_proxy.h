// The service proxy: kube-proxy's API side, one per node.
//
// ServiceProxy is a per-node component (cmd/cluster_runtime.h) that watches
// Services and EndpointSlices through the shared informers and keeps its
// node's data plane (a netstack::ProxyBackend: nftables or iptables rules in
// the node's netns) matching them. Every change marks the state dirty; one
// worker rebuilds the netstack::ProxyState from the caches (BuildProxyState)
// and hands it to the backend, which rewrites only what changed. Changes
// that arrive while a sync runs are coalesced into the next one; a failed
// sync is retried with back-off and the backend then syncs in full.
//
// BuildProxyState is the pure part, as kube-proxy's service and endpoints
// change trackers plus CategorizeEndpoints (pkg/proxy/topology.go):
//   - Services of type ExternalName, headless ones (clusterIP None) and
//     those labelled service.kubernetes.io/service-proxy-name are skipped;
//   - one ProxyServicePort per Service port: ClusterIP, NodePort,
//     spec.externalIPs, status.loadBalancer.ingress IPs, the traffic
//     policies, sessionAffinity ClientIP's timeout (default 10800 s);
//   - endpoints come from the IPv4 EndpointSlices labelled
//     kubernetes.io/service-name with the Service's name, matching the port
//     by name and protocol; conditions as the API defaults them (ready unset
//     = true, serving unset = ready, terminating unset = false);
//   - cluster_endpoints: the ready ones, or when there is none anywhere the
//     serving-and-terminating ones; local_endpoints: the same choice among
//     those whose nodeName is this node.
//
// Thread-safety: Start/Stop from one owner thread; BuildProxyState is pure.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "client/informer_factory.h"
#include "controllers/controller.h"
#include "controllers/work_queue.h"
#include "netstack/health_check.h"
#include "netstack/service_proxy.h"

namespace kin::controllers {

struct ProxyNode {
  std::string name;                        // the node this proxy serves
  std::vector<netstack::Ipv4Address> ips;  // where its NodePorts answer
  netstack::Ipv4Cidr cluster_cidr;         // the cluster's pod range
  netstack::Ipv4Cidr service_cidr;         // the Service range
};

netstack::ProxyState BuildProxyState(const std::vector<ObjectPtr>& services,
                                     const std::vector<ObjectPtr>& slices, const ProxyNode& node);

struct ServiceProxyOptions {
  ProxyNode node;
  std::unique_ptr<netstack::ProxyBackend> backend;
  Clock* clock = nullptr;  // nullptr: the real clock
  // Told of queued changes and successful syncs (the node's health check
  // server reports it as serviceProxyHealthy); may be null.
  std::shared_ptr<netstack::ProxyHealth> health;
};

class ServiceProxy : public Controller {
 public:
  // `informers` must outlive the proxy.
  ServiceProxy(SharedInformerFactory& informers, ServiceProxyOptions opts);
  ~ServiceProxy() override;
  std::string name() const override { return "service-proxy/" + opts_.node.name; }
  void Start() override;
  // Stops the worker; the node's rules stay (a restarted kin serve takes
  // them over with a full sync).
  void Stop() override;

  // Syncs done so far (successful ones), for tests and benchmarks.
  uint64_t syncs() const { return syncs_.load(); }

 private:
  Result Sync();
  void Queue();  // a change: sync soon (and tell the health)

  ServiceProxyOptions opts_;
  Clock& clock_;
  Informer& services_;
  Informer& slices_;
  WorkQueue queue_;
  ReconcileWorkers workers_;
  InformerSubscriptions subscriptions_;
  StartStopOnce run_state_;
  std::atomic<uint64_t> syncs_{0};
};

}  // namespace kin::controllers
