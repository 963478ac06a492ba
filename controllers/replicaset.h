// ReplicaSetController: keeps spec.replicas pods of each ReplicaSet (apps/v1
// replicasets) or ReplicationController (v1 replicationcontrollers) running,
// as kube-controller-manager's replica_set.go does for both (one class,
// one instance per resource; an RC's spec.selector is a plain label map,
// defaulting to its template's labels).
//
// Ownership is ControllerRefManager's: the pods an owner controls are those
// whose controller reference (controller: true, blockOwnerDeletion: true)
// names its uid and that its selector matches; a matching orphan (not being
// deleted) is adopted, an owned pod that no longer matches is released
// (both by strategic merge patch of metadata.ownerReferences). Terminating
// pods (deletionTimestamp) and pods in phase Succeeded or Failed do not
// count, so they are replaced.
//
// Too few pods: creates the difference (at most 500 a sync, upstream's
// burstReplicas) from the template, named by metadata.generateName
// "<owner>-" (a create whose generated name collides is tried again, up
// to 3 times, as the 1.33 API server does itself), in slow-start batches of
// 1, 2, 4, ... that stop at the first batch with a failure. Too many: deletes the surplus, the
// least valuable first in upstream's order (unscheduled < scheduled, Pending < Unknown < Running,
// not ready < ready, lower pod-deletion-cost, more ready siblings of the same Deployment on the
// node, ready for less time (logarithmic buckets), more restarts, newer). Expectations (creates and
// the keys of deletes not yet seen by the informer, forgotten after 5 minutes) keep a sync from
// acting twice on its own writes. Events: SuccessfulCreate "Created pod: NAME", FailedCreate "Error
// creating: ERR", SuccessfulDelete "Deleted pod: NAME", FailedDelete "Error deleting: ERR".
//
// Status (written only when it changed): replicas, fullyLabeledReplicas
// (pods that carry every template label), readyReplicas, availableReplicas
// (Ready for at least spec.minReadySeconds; the owner is looked at again
// when a pod may have become available), observedGeneration, and the
// ReplicaFailure condition (reason FailedCreate / FailedDelete) while
// creating or deleting fails. A sync is O(pods of the owner + orphans in
// its namespace): pods come from the shared pod informer's owner-uid index
// and an index of controller-less pods by namespace.
//
// Thread-safety: Start/Stop from one owner thread; the pure helpers in
// `workloads` are thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "client/client.h"
#include "client/informer_factory.h"
#include "client/selector.h"
#include "controllers/controller.h"
#include "controllers/pod_util.h"
#include "controllers/work_queue.h"

namespace kin::controllers {

// Helpers the workload controllers (ReplicaSet, Deployment) share.
namespace workloads {

using WallTime = std::chrono::system_clock::time_point;

// Pods' index of controller-less objects by namespace (added to the pod
// and ReplicaSet informers), for finding orphans to adopt.
inline constexpr char kOrphanIndex[] = "orphan-namespace";
std::vector<std::string> IndexOrphansByNamespace(const Json& obj);

// podutil.IsPodAvailable: Ready for more than `min_ready_seconds` at `now`.
bool IsPodAvailable(const Json& pod, int64_t min_ready_seconds, WallTime now);

// The first `diff` of `pods` in the order upstream deletes them
// (getPodsToDelete with ActivePodsWithRanks); the rank of a pod is the
// number of active `related` pods (those of every ReplicaSet with the same
// controller) on its node.
std::vector<ObjectPtr> PodsToDelete(std::vector<ObjectPtr> pods,
                                    const std::vector<ObjectPtr>& related, size_t diff,
                                    WallTime now);

// An owner's view for ClaimObjects.
struct Owner {
  const Json* object = nullptr;  // the owner as cached
  std::string api_version, kind;
  LabelSelector selector;
  // Called once before the first adoption (upstream's recheck of the
  // owner's deletion with a fresh read); false forbids adopting.
  std::function<bool()> can_adopt;
};

// ControllerRefManager.ClaimObjects over `candidates` (objects of
// `resource` in the owner's namespace): returns those the owner controls
// after adopting matching orphans and releasing owned non-matching ones.
// Throws the first adoption/release error other than NotFound (after
// trying every candidate).
std::vector<ObjectPtr> ClaimObjects(Client& client, const ResourceInfo& resource,
                                    const Owner& owner, const std::vector<ObjectPtr>& candidates);

}  // namespace workloads

struct ReplicaSetControllerOptions {
  int workers = 2;
  // At most this many pods created or deleted by one sync.
  int burst_replicas = 500;
  // Time of the queue and of availability (minReadySeconds); the real
  // clock when null. With a FakeClock, wall time moves with it.
  Clock* clock = nullptr;
};

class ReplicaSetController : public Controller {
 public:
  // `resource` is apps/v1 replicasets or v1 replicationcontrollers;
  // `informers` and `client` must outlive the controller.
  ReplicaSetController(SharedInformerFactory& informers, Client& client,
                       const ResourceInfo& resource, ReplicaSetControllerOptions opts = {});
  ~ReplicaSetController() override;
  ReplicaSetController(const ReplicaSetController&) = delete;
  ReplicaSetController& operator=(const ReplicaSetController&) = delete;

  // "replicaset" or "replicationcontroller".
  std::string name() const override;
  void Start() override;
  void Stop() override;

 private:
  class Expectations;

  bool IsRc() const { return resource_.plural == "replicationcontrollers"; }
  // The owner's selector (an RC's map, or its template labels when empty).
  // Throws Error (BadRequest) for a malformed one.
  LabelSelector SelectorOf(const Json& owner) const;
  // The owner a controller reference names, when it is ours and cached.
  ObjectPtr Resolve(const std::string& ns, const Json& controller_ref) const;
  void EnqueueMatching(const Json& pod);
  void OnPodAdd(const Json& pod);
  void OnPodUpdate(const Json& old, const Json& now);
  void OnPodDelete(const Json& pod);
  Result Sync(const std::string& key);
  // Creates or deletes pods; throws the first failure.
  void ManageReplicas(const std::vector<ObjectPtr>& pods, const Json& owner,
                      const std::string& key);
  Json WithTypeMeta(const Json& owner) const;
  workloads::WallTime WallNow() const;

  const ResourceInfo resource_;
  const ReplicaSetControllerOptions opts_;
  Clock& clock_;
  const Clock::TimePoint clock_start_;
  const workloads::WallTime wall_start_;
  ComponentClient identity_;
  Informer& owners_;
  Informer& pods_;
  InformerSubscriptions subscriptions_;
  std::unique_ptr<Expectations> expectations_;
  StartStopOnce run_state_;
  WorkQueue queue_;
  ReconcileWorkers workers_;
};

}  // namespace kin::controllers
