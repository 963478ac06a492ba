// EndpointsController: the v1 Endpoints object of each Service with a
// selector, as kube-controller-manager's endpoint-controller keeps it.
//
// The Endpoints (named as the Service) list the selected pods of the
// Service's namespace that have an IP, are not terminal and not being
// deleted (unless publishNotReadyAddresses): Ready pods (or every pod with
// publishNotReadyAddresses) under addresses, the others under
// notReadyAddresses, each with ip, nodeName, targetRef and hostname (pod
// spec.hostname when its subdomain is the Service's name). Ports are the
// Service's ports with targetPorts resolved per pod; addresses with the
// same resolved port set share a subset (upstream's RepackSubsets:
// addresses sorted by IP, subsets by ports). Labels are the Service's (plus
// service.kubernetes.io/headless for headless Services); the annotation
// endpoints.kubernetes.io/last-change-trigger-time carries the latest pod
// or Service change reflected. Over 1000 addresses are truncated as
// upstream (ready ones kept first, proportionally per subset) with
// endpoints.kubernetes.io/over-capacity: truncated. Nothing is written when
// the Endpoints already say this. When the Service goes, its Endpoints go.
// Services without a selector (such as default/kubernetes, which the API
// server keeps) are left alone. A reconcile on a cache that has not yet
// seen the controller's last write of that Endpoints waits for it.
//
// Thread-safety: Start/Stop from one owner thread; BuildSubsets and
// TruncateEndpoints are pure.
#pragma once

#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/yaml.h"
#include "client/client.h"
#include "client/informer_factory.h"
#include "controllers/controller.h"
#include "controllers/work_queue.h"

namespace kin::controllers {

inline constexpr char kAnnotationOverCapacity[] = "endpoints.kubernetes.io/over-capacity";
inline constexpr size_t kMaxEndpointsCapacity = 1000;

// The subsets for `service` from the candidate `pods` (already selected).
Json BuildSubsets(const Json& service, const std::vector<const Json*>& pods);
// Truncates `subsets` to `max` addresses as upstream; true when it did.
bool TruncateEndpoints(Json& subsets, size_t max = kMaxEndpointsCapacity);

struct EndpointsOptions {
  int workers = 2;
};

class EndpointsController : public Controller {
 public:
  // `informers` and `client` must outlive the controller.
  EndpointsController(SharedInformerFactory& informers, Client& client, EndpointsOptions opts = {});
  ~EndpointsController() override;

  std::string name() const override { return "endpoint"; }
  void Start() override;
  void Stop() override;

 private:
  Result Sync(const std::string& key);
  void OnPod(const Json* old, const Json* now);
  void EnqueueServicesOf(const Json& pod);

  const EndpointsOptions opts_;
  ComponentClient identity_;
  Informer& services_;
  Informer& pods_;
  Informer& endpoints_;
  InformerSubscriptions subscriptions_;
  StartStopOnce run_state_;
  // Endpoints written, by key, with their resourceVersion, until the cache
  // has them (upstream's staleEndpointsTracker); keys waiting for that.
  std::mutex written_mu_;
  std::map<std::string, uint64_t> written_;
  std::set<std::string> waiting_;
  WorkQueue queue_;
  ReconcileWorkers workers_;
};

}  // namespace kin::controllers
