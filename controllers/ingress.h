// The built-in Ingress controller, the API side: what ingress-nginx watches,
// and the ingress pods that kin serve answers for.
//
// kind users deploy ingress-nginx into the namespace `ingress-nginx`; kin
// keeps that shape (`kubectl get pods -n ingress-nginx` shows the
// controller's pod, the kind docs' `kubectl wait --namespace ingress-nginx
// --selector=app.kubernetes.io/component=controller` works as written)
// without an nginx process: the pod's container (the built-in image
// kin.dev/ingress) only holds the pod, and kin serve proxies on sockets it
// opens inside the pod's network namespace (netstack/ingress_proxy.h),
// from the shared informer caches.
//
//   BuildIngressRoutes  pure: the Ingresses this controller serves, with
//                   their Services, EndpointSlices and TLS Secrets, as
//                   netstack::IngressRoutes. An Ingress is served when its
//                   spec.ingressClassName (or the old kubernetes.io/
//                   ingress.class annotation) names an IngressClass whose
//                   spec.controller is kin.dev/ingress, or when it names
//                   none and such a class is annotated
//                   ingressclass.kubernetes.io/is-default-class: "true".
//                   Oldest Ingress first (ingress-nginx's order); the
//                   default backend is the oldest one's. A backend names a
//                   Service port by number or name; its endpoints are the
//                   ready IPv4 addresses of the Service's EndpointSlices
//                   with the slice port of that Service port's name (the
//                   resolved targetPort). A missing Service, port or
//                   endpoints leave the backend empty (503). Paths of a
//                   host some served Ingress lists under tls redirect
//                   plain HTTP to HTTPS (308), as ingress-nginx's default
//                   ssl-redirect, unless their Ingress is annotated
//                   nginx.ingress.kubernetes.io/ssl-redirect: "false";
//                   force-ssl-redirect: "true" redirects without TLS too.
//   IngressRouteHub  the routes now, and the proxies serving them: Set()
//                   hands new routes to every registered proxy at once.
//   IngressSync     cluster-wide: keeps the hub's routes matching the API
//                   (one key for every change: a burst of events is one
//                   rebuild), and writes status.loadBalancer.ingress of
//                   each served Ingress: the addresses of the controller's
//                   own LoadBalancer Service once it has some, else empty;
//                   a Normal "Sync" Event ("Scheduled for sync") on each
//                   served Ingress when it is new or its spec changed, as
//                   ingress-nginx records (source kin-ingress-controller).
//   IngressPodServers  per node (cmd/cluster_runtime.h's node components):
//                   for each pod on its node that runs the ingress image
//                   and has its sandbox, an IngressProxy on 80, 443 and
//                   10254 (/healthz) in the pod's network namespace.
//   IngressObjects  the namespace, the IngressClass `kin` (default), the
//                   controller's Deployment and its LoadBalancer Service
//                   (externalTrafficPolicy Local, as ingress-nginx's cloud
//                   manifest, so outside clients keep their address);
//                   kin serve creates the missing ones at start.
//
// Thread-safety: controllers' Start/Stop from one owner thread; the hub is
// thread-safe; the pure functions are pure.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "client/informer_factory.h"
#include "controllers/controller.h"
#include "controllers/pod_servers.h"
#include "controllers/work_queue.h"
#include "netstack/ingress_proxy.h"

namespace kin::controllers {

inline constexpr char kIngressControllerName[] = "kin.dev/ingress";
inline constexpr char kIngressClassName[] = "kin";
inline constexpr char kIngressNamespace[] = "ingress-nginx";
inline constexpr char kIngressServiceName[] = "ingress-controller";

const ResourceInfo& IngressesResource();
const ResourceInfo& IngressClassesResource();
const ResourceInfo& SecretsResource();

// What BuildIngressRoutes reads (lookups by "ns/name").
struct IngressSources {
  std::vector<ObjectPtr> ingresses;
  std::vector<ObjectPtr> classes;
  std::function<ObjectPtr(const std::string& key)> service;
  std::function<std::vector<ObjectPtr>(const std::string& service_key)> slices;
  std::function<ObjectPtr(const std::string& key)> secret;
};

// Whether this controller serves the Ingress, given the IngressClasses.
bool ServesIngress(const Json& ingress, const std::vector<ObjectPtr>& classes,
                   const std::string& controller = kIngressControllerName);
netstack::IngressRoutes BuildIngressRoutes(const IngressSources& sources,
                                           const std::string& controller = kIngressControllerName);

class IngressRouteHub {
 public:
  void Set(netstack::IngressRoutes routes);
  netstack::IngressRoutes Get() const;
  // The proxy gets the routes now and on every Set until Remove.
  void Add(netstack::IngressProxy* proxy);
  void Remove(netstack::IngressProxy* proxy);
  uint64_t generation() const;

 private:
  mutable std::mutex mu_;
  netstack::IngressRoutes routes_;
  std::vector<netstack::IngressProxy*> proxies_;
  uint64_t generation_ = 0;
};

struct IngressSyncOptions {
  std::string controller = kIngressControllerName;
  // The controller's own LoadBalancer Service, whose addresses Ingresses show.
  std::string lb_namespace = kIngressNamespace;
  std::string lb_service = kIngressServiceName;
};

class IngressSync : public Controller {
 public:
  // `informers`, `client` and `hub` must outlive it.
  IngressSync(SharedInformerFactory& informers, Client& client, IngressRouteHub& hub,
              IngressSyncOptions opts = {});
  ~IngressSync() override;
  std::string name() const override { return "ingress"; }
  void Start() override;
  void Stop() override;

 private:
  Result Sync(const std::string& key);

  ComponentClient component_;
  IngressRouteHub& hub_;
  IngressSyncOptions opts_;
  std::map<std::string, int64_t> synced_generation_;  // by Ingress key; the worker's only
  Informer& ingresses_;
  Informer& classes_;
  Informer& services_;
  Informer& slices_;
  Informer& secrets_;
  WorkQueue queue_;
  ReconcileWorkers workers_;
  InformerSubscriptions subscriptions_;
  StartStopOnce run_state_;
};

struct IngressPodServersOptions {
  std::string node;        // the node whose pods it serves
  std::string image_repo;  // pods whose first container runs this image ("kin.dev/ingress")
  std::function<std::string(const Json& pod)> pod_netns;
  netstack::IngressProxyOptions proxy;  // netns and name are filled per pod
  IngressRouteHub* hub = nullptr;
};

// PodServers (controllers/pod_servers.h) running a netstack::IngressProxy
// in each ingress controller pod of its node, fed by the hub.
class IngressPodServers : public PodServers {
 public:
  IngressPodServers(SharedInformerFactory& informers, IngressPodServersOptions opts);
};

struct IngressSettings {
  std::string image;  // "kin.dev/ingress:<version>"
  int replicas = 1;
};
// The namespace, the IngressClass, the Deployment and the Service, in the
// order to create them.
std::vector<Json> IngressObjects(const IngressSettings& settings);

}  // namespace kin::controllers
