// EndpointSlice controllers, as kube-controller-manager's
// endpointslice-controller and endpointslicemirroring-controller.
//
// EndpointSliceController: for each Service with a selector (not
// ExternalName), the pods it selects in its namespace that have an IP and
// are not terminal (terminating pods included, with their conditions)
// become discovery.k8s.io/v1 EndpointSlices (addressType IPv4) named
// `<svc>-<random>` (generateName), labelled kubernetes.io/service-name and
// endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io
// (plus the Service's own labels, and service.kubernetes.io/headless for
// headless Services), controlled by the Service (so the garbage collector
// removes them with it). Endpoints carry conditions ready/serving/
// terminating as upstream computes them (publishNotReadyAddresses makes
// ready true), nodeName, zone (the node's topology.kubernetes.io/zone),
// targetRef and hostname (pod spec.hostname when its subdomain is the
// Service's name). Ports are the Service's ports with targetPorts resolved
// per pod; pods that resolve them differently go to different slices. A
// pod whose node is unknown is left out (unless publishNotReadyAddresses)
// and the Service retried, as upstream. A Service without endpoints keeps
// one empty placeholder slice.
//
// Reconciling is upstream's incremental algorithm (PlanSlices): slices
// whose endpoints are all still wanted and unchanged are not written; new
// endpoints fill slices being updated anyway, then unchanged slices that
// have room, then new slices of at most max_endpoints_per_slice; slices
// that would be deleted are recycled for slices that would be created.
// Nothing is written when nothing changed. Writes of the controller are
// remembered (resourceVersion per slice) so that a reconcile on a cache
// that has not yet seen them waits for the informer instead of writing
// again (upstream's endpointSliceTracker).
//
// EndpointSliceMirroringController: the Endpoints of a Service without a
// selector (written by their users; not labelled
// endpointslice.kubernetes.io/skip-mirror=true) are mirrored into slices
// managed by endpointslicemirroring-controller.k8s.io, controlled by the
// Endpoints, with the Endpoints' labels and annotations (but
// last-change-trigger-time and last-applied-configuration); ready
// addresses have ready=true, notReadyAddresses ready=false. Mirrored
// slices go when the Service gains a selector or it or the Endpoints go.
//
// Thread-safety: Start/Stop from one owner thread; the pure functions are
// thread-safe.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/yaml.h"
#include "client/client.h"
#include "client/informer_factory.h"
#include "controllers/controller.h"
#include "controllers/pod_util.h"
#include "controllers/work_queue.h"

namespace kin::controllers {

inline constexpr char kLabelServiceName[] = "kubernetes.io/service-name";
inline constexpr char kLabelManagedBy[] = "endpointslice.kubernetes.io/managed-by";
inline constexpr char kEndpointSliceControllerName[] = "endpointslice-controller.k8s.io";
inline constexpr char kMirroringControllerName[] = "endpointslicemirroring-controller.k8s.io";
inline constexpr char kLabelSkipMirror[] = "endpointslice.kubernetes.io/skip-mirror";
inline constexpr char kLabelHeadless[] = "service.kubernetes.io/headless";
inline constexpr char kAnnotationTriggerTime[] = "endpoints.kubernetes.io/last-change-trigger-time";
inline constexpr char kLabelZone[] = "topology.kubernetes.io/zone";

// --- pure helpers shared with the Endpoints controller ------------------------
// (upstream's pkg/controller/util/endpoint; in their own namespace, since
// other controllers have helpers of the same names)
namespace endpointutil {

// Upstream's ShouldPodBeInEndpoints: not terminal (Succeeded/Failed), has an
// IP, and not being deleted unless `include_terminating`.
bool ShouldPodBeInEndpoints(const Json& pod, bool include_terminating);
// pod spec.hostname is set and spec.subdomain is the Service's name (same namespace).
bool ShouldSetHostname(const Json& pod, const Json& service);
// podutil.FindPort: the container port a Service port's targetPort names
// (by name and protocol), or its number; nullopt when a name is not found.
std::optional<int64_t> FindPort(const Json& pod, const Json& service_port);
// The pod's IPv4 addresses (status.podIPs, else status.podIP).
std::vector<std::string> PodIPv4s(const Json& pod);
// A Service's spec.selector selects pods with `labels`; a Service without
// a selector (absent or empty) selects nothing.
bool ServiceSelects(const Json& service, const Json& labels);
// What of a pod endpoints reflect (labels, IPs, readiness, deletion, phase,
// node, hostname, subdomain, container ports): a pod update that leaves it
// unchanged needs no endpoints sync.
Json PodEndpointProjection(const Json& pod);
// The latest change of the pods and Service that an endpoints object
// reflects (Ready transitions, creations, deletions), as the
// last-change-trigger-time annotation reports it; "" when unknown.
std::string LastChangeTriggerTime(const Json& service, const std::vector<const Json*>& pods);

}  // namespace endpointutil

// --- the slice planner (pure) -------------------------------------------------

// One group of endpoints that share a port set.
struct DesiredSliceGroup {
  Json ports = Json::array();  // discovery.k8s.io/v1 EndpointPort list
  std::vector<Json> endpoints;
};

struct SlicePlanInput {
  // The slice a new one starts from: metadata (generateName, namespace,
  // ownerReferences, labels, annotations) and addressType.
  Json slice_template;
  std::string owner_uid;  // slices not controlled by it are deleted
  // Desired endpoints by port set (key: ports.dump()).
  std::map<std::string, DesiredSliceGroup> desired;
  std::vector<std::shared_ptr<const Json>> existing;
  size_t max_endpoints_per_slice = 100;
  bool placeholder = true;  // keep one empty slice when there are no endpoints
  // Annotations differing from the template's make a slice be rewritten
  // (mirroring); else only labels and endpoints count.
  bool compare_annotations = false;
};

struct SlicePlan {
  std::vector<Json> create;  // generateName set, no name
  std::vector<Json> update;  // full objects with name and resourceVersion
  std::vector<std::string> remove;
  bool empty() const { return create.empty() && update.empty() && remove.empty(); }
};

// Upstream's reconcileByPortMapping + finalize: what to write so the
// slices hold exactly the desired endpoints, writing as little as possible.
SlicePlan PlanSlices(const SlicePlanInput& in);

namespace endpointslice_internal {
// Remembers the slices a controller wrote, per owner key, until its cache
// has caught up. Thread-safe.
class SliceTracker {
 public:
  // A write of `slice` (rv from the API's answer) or the deletion of `name`.
  void Wrote(const std::string& owner_key, const Json& slice);
  void Deleted(const std::string& owner_key, const std::string& name);
  // True when the cache (`lookup` by slice name) lags behind our writes for
  // `owner_key`; the owner is then marked waiting for the next slice event.
  bool Stale(const std::string& owner_key,
             const std::function<std::shared_ptr<const Json>(const std::string&)>& lookup);
  // A slice event: true when the owner should be reconciled (the change is
  // not one of ours, or the owner waits for the cache).
  bool Observe(const std::string& owner_key, const Json& slice, bool deleted);
  void Forget(const std::string& owner_key);

 private:
  std::mutex mu_;
  // owner -> slice name -> rv written (0: deleted).
  std::map<std::string, std::map<std::string, uint64_t>> expected_;
  std::set<std::string> waiting_;
};
}  // namespace endpointslice_internal

struct EndpointSliceOptions {
  size_t max_endpoints_per_slice = 100;  // --max-endpoints-per-slice
  int workers = 2;                       // --concurrent-service-endpoint-syncs 5 upstream
};

class EndpointSliceController : public Controller {
 public:
  // `informers` and `client` must outlive the controller.
  EndpointSliceController(SharedInformerFactory& informers, Client& client,
                          EndpointSliceOptions opts = {});
  ~EndpointSliceController() override;

  std::string name() const override { return "endpointslice"; }
  void Start() override;
  void Stop() override;

  // What one Service's slices should be (for tests): its slice plan input
  // from the caches. nullopt when the controller leaves the Service alone.
  std::optional<SlicePlanInput> DesiredFor(const Json& service, bool* missing_node) const;

 private:
  Result Sync(const std::string& key);
  void OnPod(const Json* old, const Json* now);
  void OnNode(const Json* old, const Json* now);
  void OnSlice(const Json& slice, bool deleted);
  void EnqueueServicesOf(const Json& pod);

  const EndpointSliceOptions opts_;
  ComponentClient identity_;
  Informer& services_;
  Informer& pods_;
  Informer& nodes_;
  Informer& slices_;
  InformerSubscriptions subscriptions_;
  endpointslice_internal::SliceTracker tracker_;
  StartStopOnce run_state_;
  WorkQueue queue_;
  ReconcileWorkers workers_;
};

class EndpointSliceMirroringController : public Controller {
 public:
  EndpointSliceMirroringController(SharedInformerFactory& informers, Client& client,
                                   EndpointSliceOptions opts = {});
  ~EndpointSliceMirroringController() override;

  std::string name() const override { return "endpointslicemirroring"; }
  void Start() override;
  void Stop() override;

 private:
  Result Sync(const std::string& key);

  const EndpointSliceOptions opts_;
  ComponentClient identity_;
  Informer& services_;
  Informer& endpoints_;
  Informer& slices_;
  InformerSubscriptions subscriptions_;
  endpointslice_internal::SliceTracker tracker_;
  StartStopOnce run_state_;
  WorkQueue queue_;
  ReconcileWorkers workers_;
};

// The index both controllers keep on EndpointSlices: "ns/service-name".
inline constexpr char kSliceServiceIndex[] = "endpointslice-service";
std::vector<std::string> IndexSliceByService(const Json& slice);

}  // namespace kin::controllers
