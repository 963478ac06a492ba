// ResourceQuotaController ("resourcequota"), as kube-controller-manager's:
// keeps each ResourceQuota's status.hard equal to spec.hard and
// status.used equal to what the namespace's objects use of each hard name
// (client/quota.h: pods in a terminal phase count only in count/pods;
// scopes select pods). A quota is recomputed when it is created or its
// spec changes, when a counted object goes away (or a pod ends), and every
// resync period; creates are charged by the ResourceQuota admission
// (apiserver/resource_quota.h), which is what keeps `used` right between
// recomputations.
//
// Usage is counted from a list of the API (informers' caches may lag the
// quota's own event). Shared informers of pods, services, claims,
// configmaps, secrets, replicationcontrollers, serviceaccounts and the
// apps, batch and Ingress workloads tell of objects going, and so do
// informers of its own on the custom resources a quota counts
// (`count/widgets.example.com`: made when a quota first counts them,
// stopped when their CRD goes or stops serving that version); quotas
// counting other resources (`count/<resource>.<group>`) are recomputed
// every 30 s at least.
//
// Thread-safety: Start/Stop from one owner thread.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "client/client.h"
#include "client/informer_factory.h"
#include "controllers/controller.h"
#include "controllers/work_queue.h"

namespace kin::controllers {

struct ResourceQuotaOptions {
  // Upstream's --resource-quota-sync-period.
  std::chrono::seconds resync{300};
};

class ResourceQuotaController : public Controller {
 public:
  // `informers` and `client` must outlive the controller.
  ResourceQuotaController(SharedInformerFactory& informers, Client& client,
                          ResourceQuotaOptions opts = {});
  ~ResourceQuotaController() override;
  std::string name() const override { return "resourcequota"; }
  void Start() override;
  void Stop() override;

 private:
  Result Sync(const std::string& key);
  // Queues every quota of `ns`.
  void QueueNamespace(const std::string& ns);
  // The objects of `r` in `ns`, listed from the API; *untracked is set
  // when no informer here tells of their going.
  std::vector<Json> Objects(const ResourceInfo& r, const std::string& ns, bool* untracked);
  // Watches the custom resource r (a quota counts it) for objects going.
  void TrackCustomResource(const ResourceInfo& r);
  // Stops watching custom resources no longer served as watched.
  void DropUnservedCustomResources();
  bool TracksCustomResource(const ResourceInfo& r);

  ResourceQuotaOptions opts_;
  ComponentClient identity_;
  Informer& quotas_;
  std::vector<Informer*> counted_;  // pods, services, ... (informer-backed)
  Client& client_;
  Informer* crds_ = nullptr;  // the CustomResourceDefinitions, when served
  std::mutex custom_mu_;
  // Custom resources' informers (the controller's own), by group_resource.
  std::map<std::string, std::unique_ptr<Informer>> custom_;
  bool custom_stopped_ = false;  // guarded by custom_mu_
  InformerSubscriptions subscriptions_;
  StartStopOnce run_state_;
  WorkQueue queue_;
  ReconcileWorkers workers_;
};

}  // namespace kin::controllers
