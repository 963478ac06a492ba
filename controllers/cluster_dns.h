// Cluster DNS, the API side: what CoreDNS's kubernetes plugin watches, and
// the kube-dns pods that kin serve answers for.
//
// kind runs CoreDNS as two pods behind the kube-dns Service. kin keeps that
// shape (`kubectl get pods -n kube-system` shows them, queries travel the
// real Service path through the proxy to a pod's IP) without a CoreDNS
// process: the pods' container (the built-in image kin.dev/cluster-dns)
// only holds the pod, and kin serve answers on sockets it opens inside each
// pod's network namespace, from the shared informer caches.
//
//   DnsZoneSync     cluster-wide: keeps a netstack::DnsZone matching the
//                   Services, their EndpointSlices and the namespaces (one
//                   key per Service; a change is in the zone within
//                   milliseconds).
//   DnsPodServers   per node: a netstack::DnsServer in the network namespace
//                   of each pod on its node that runs the cluster DNS image
//                   (controllers/pod_servers.h: made once the pod has its
//                   sandbox, stopped when it goes, made again when its
//                   namespace is replaced).
//   ClusterDnsObjects  the kube-dns Service and the coredns Deployment, as
//                   kubeadm's CoreDNS addon makes them; kin serve creates
//                   the missing ones at start (edits a user made are kept).
//
// BuildDnsService is the pure part: a Service and its EndpointSlices as the
// zone's plain description (endpoints: the ready ones of IPv4 slices
// labelled kubernetes.io/service-name, as CoreDNS reads them).
//
// Thread-safety: controllers' Start/Stop from one owner thread; the pure
// functions are pure.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "client/informer_factory.h"
#include "controllers/controller.h"
#include "controllers/pod_servers.h"
#include "controllers/work_queue.h"
#include "netstack/dns_server.h"
#include "netstack/dns_zone.h"

namespace kin::controllers {

std::optional<netstack::DnsService> BuildDnsService(const Json& service,
                                                    const std::vector<ObjectPtr>& slices);

class DnsZoneSync : public Controller {
 public:
  // `informers` and `zone` must outlive it.
  DnsZoneSync(SharedInformerFactory& informers, netstack::DnsZone& zone);
  ~DnsZoneSync() override;
  std::string name() const override { return "cluster-dns-zone"; }
  void Start() override;
  void Stop() override;
  // Waits until the zone holds every namespace and Service the informers
  // had when they first synced (or `timeout`); true when it does.
  bool WaitSynced(std::chrono::milliseconds timeout) const;

 private:
  Result Sync(const std::string& key);
  // Once the informers have synced: every namespace and Service into the
  // zone, then synced_.
  void LoadInitial();

  netstack::DnsZone& zone_;
  Informer& services_;
  Informer& slices_;
  Informer& namespaces_;
  WorkQueue queue_;
  ReconcileWorkers workers_;
  InformerSubscriptions subscriptions_;
  StartStopOnce run_state_;
  mutable std::mutex sync_mu_;
  mutable std::condition_variable sync_cv_;
  bool synced_ = false;    // guarded by sync_mu_
  bool stopping_ = false;  // guarded by sync_mu_
  std::thread initial_;
};

struct DnsPodServersOptions {
  std::string node;        // the node whose pods it serves
  std::string image_repo;  // pods whose first container runs this image ("kin.dev/cluster-dns")
  // The pod's network namespace's name (the node agent's naming).
  std::function<std::string(const Json& pod)> pod_netns;
  netstack::DnsServerOptions server;  // netns and name are filled per pod
  netstack::DnsZone* zone = nullptr;
  netstack::DnsCache* cache = nullptr;
  // When set, a pod's server starts answering only once the zone has its
  // first full sync (at most 5 s, as CoreDNS's kubernetes plugin waits):
  // after a restart of kin serve the DNS pods exist before the zone is
  // filled, and would answer NXDOMAIN for names that exist.
  const DnsZoneSync* zone_sync = nullptr;
};

// PodServers (controllers/pod_servers.h) running a netstack::DnsServer in
// each kube-dns pod of its node.
class DnsPodServers : public PodServers {
 public:
  DnsPodServers(SharedInformerFactory& informers, DnsPodServersOptions opts);
};

struct ClusterDnsSettings {
  std::string cluster_ip;  // the kube-dns Service's (the service subnet's .10)
  int replicas = 2;
  std::string image;  // "kin.dev/cluster-dns:<version>"
};
// The kube-dns Service and the coredns Deployment (kube-system), in the
// order to create them.
std::vector<Json> ClusterDnsObjects(const ClusterDnsSettings& settings);

}  // namespace kin::controllers
