// LoadBalancer Services: what cloud-provider-kind and kube-proxy do for
// them on kind, built into kin serve (the seed's 6.2.1 and 6.2.2).
//
//   LoadBalancerController  cluster-wide, in the controller manager, as
//                   kube-controller-manager's service controller with a
//                   cloud provider (field manager and Event source
//                   "service-controller"): gives every type LoadBalancer
//                   Service without spec.loadBalancerClass an IPv4 address
//                   of the pool (networking.loadBalancerSubnet) and writes
//                   status.loadBalancer.ingress [{ip, ipMode: VIP}] through
//                   the status subresource. spec.loadBalancerIP is honoured
//                   when it is in the pool and free; otherwise a Warning
//                   and no address. Services of another loadBalancerClass
//                   are left alone. An address is freed when its Service
//                   goes or stops being a LoadBalancer (whose status is
//                   then cleared), and Services still waiting get a look.
//                   No address is ever given twice: the allocation lives in
//                   the Services' statuses and is rebuilt from them when
//                   the controller starts (so a restart of kin serve keeps
//                   every address); the lowest free address is given first.
//                   Events as the upstream controller names them:
//                   EnsuringLoadBalancer, EnsuredLoadBalancer,
//                   DeletingLoadBalancer, DeletedLoadBalancer, and
//                   SyncLoadBalancerFailed (Warning) when the pool is
//                   exhausted or the asked-for address cannot be had.
//   LoadBalancerRoutes  cluster-wide data plane (the "cloud" load balancer):
//                   BuildLbRoutes() turns the Services' LB IPs into one
//                   route per address in the network namespace, with the
//                   nodes as equal-cost next hops (netstack/lb_routes.h).
//                   Policy Cluster: every Ready node (not labelled
//                   node.kubernetes.io/exclude-from-external-load-balancers,
//                   as kubeadm labels control planes, unless every Ready
//                   node is: then those, so a one-node cluster works);
//                   policy Local: only those of them with a ready local
//                   endpoint, the nodes whose health check answers 200
//                   (cloud-provider-kind's proxy health-checks the
//                   healthCheckNodePort and sends only to nodes that pass;
//                   kin computes the same answer from the same API state,
//                   without a probe's delay).
//   ServiceHealthChecks  per node, beside the service proxy: kube-proxy's
//                   healthCheckNodePort server (netstack/health_check.h) in
//                   the node's network namespace; BuildHealthChecks() counts
//                   each Local LoadBalancer Service's local endpoints as the
//                   proxy does (BuildProxyState's local_endpoints).
//
// Thread-safety: controllers' Start/Stop from one owner thread; the Build
// functions are pure.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "client/informer_factory.h"
#include "controllers/controller.h"
#include "controllers/work_queue.h"
#include "netstack/health_check.h"
#include "netstack/ipam.h"
#include "netstack/lb_routes.h"

namespace kin::controllers {

inline constexpr const char* kServiceControllerName = "service-controller";

struct LoadBalancerControllerOptions {
  netstack::Ipv4Cidr pool{netstack::Ipv4Address(0xc6336400), 24};  // 198.51.100.0/24
};

class LoadBalancerController : public Controller {
 public:
  // `informers` and `client` must outlive the controller.
  LoadBalancerController(SharedInformerFactory& informers, Client& client,
                         LoadBalancerControllerOptions opts = {});
  ~LoadBalancerController() override;
  std::string name() const override { return "service-lb-controller"; }
  void Start() override;
  void Stop() override;

  // The addresses given now: "198.51.100.1" -> "default/web" (for tests).
  std::map<std::string, std::string> Allocated() const;

 private:
  Result Sync(const std::string& key);
  void RebuildLocked();
  std::optional<netstack::Ipv4Address> LowestFreeLocked() const;
  void ReleaseLocked(const std::string& key);
  void WriteIngress(const Json& svc, const std::optional<netstack::Ipv4Address>& ip);

  const LoadBalancerControllerOptions opts_;
  ComponentClient identity_;
  Informer& services_;
  WorkQueue queue_;
  ReconcileWorkers workers_;
  InformerSubscriptions subscriptions_;
  StartStopOnce run_state_;
  mutable std::mutex mu_;
  bool rebuilt_ = false;
  std::map<netstack::Ipv4Address, std::string> owner_;  // address -> Service key
  std::map<std::string, netstack::Ipv4Address> given_;  // Service key -> address
  std::set<std::string> waiting_;                       // ours, without an address
};

// The pool's addresses that may be given: all but the network and
// broadcast addresses (for prefixes up to /30).
bool AssignableInPool(const netstack::Ipv4Cidr& pool, netstack::Ipv4Address ip);

// The network's routes for the LB IPs (in `pool`) of `services`.
std::vector<netstack::LbRoute> BuildLbRoutes(const std::vector<ObjectPtr>& services,
                                             const std::vector<ObjectPtr>& slices,
                                             const std::vector<ObjectPtr>& nodes,
                                             const netstack::Ipv4Cidr& pool);

struct LoadBalancerRoutesOptions {
  netstack::Ipv4Cidr pool{netstack::Ipv4Address(0xc6336400), 24};
  // Makes the network's routes match (netstack::LbRouteTable::Sync); throws
  // on failure (retried with back-off).
  std::function<void(const std::vector<netstack::LbRoute>&)> apply;
};

class LoadBalancerRoutes : public Controller {
 public:
  LoadBalancerRoutes(SharedInformerFactory& informers, LoadBalancerRoutesOptions opts);
  ~LoadBalancerRoutes() override;
  std::string name() const override { return "loadbalancer-routes"; }
  void Start() override;
  // Stops the worker; the routes stay (a restarted kin serve takes them over).
  void Stop() override;
  uint64_t syncs() const { return syncs_.load(); }

 private:
  Result Sync();

  LoadBalancerRoutesOptions opts_;
  Informer& services_;
  Informer& slices_;
  Informer& nodes_;
  WorkQueue queue_;
  ReconcileWorkers workers_;
  InformerSubscriptions subscriptions_;
  StartStopOnce run_state_;
  std::atomic<uint64_t> syncs_{0};
};

// The health checks node `node` serves: healthCheckNodePort -> the Service
// and its local endpoints on that node.
std::map<uint16_t, netstack::HealthCheckService> BuildHealthChecks(
    const std::vector<ObjectPtr>& services, const std::vector<ObjectPtr>& slices,
    const std::string& node);

struct ServiceHealthChecksOptions {
  std::string node;
  std::string netns;             // the node's network namespace ("": the caller's)
  std::string bind = "0.0.0.0";  // as kube-proxy: every address of the node
  // The node's service proxy health (serviceProxyHealthy); null: healthy.
  std::shared_ptr<const netstack::ProxyHealth> proxy_health;
};

class ServiceHealthChecks : public Controller {
 public:
  ServiceHealthChecks(SharedInformerFactory& informers, ServiceHealthChecksOptions opts);
  ~ServiceHealthChecks() override;
  std::string name() const override { return "service-health/" + opts_.node; }
  void Start() override;
  // Stops the worker and closes every health check port.
  void Stop() override;
  std::vector<uint16_t> ports() const;

 private:
  Result Sync();

  ServiceHealthChecksOptions opts_;
  Informer& services_;
  Informer& slices_;
  std::unique_ptr<netstack::ServiceHealthServer> server_;
  WorkQueue queue_;
  ReconcileWorkers workers_;
  InformerSubscriptions subscriptions_;
  StartStopOnce run_state_;
};

}  // namespace kin::controllers
