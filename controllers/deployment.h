// DeploymentController: rolls Deployments out through ReplicaSets, as
// kube-controller-manager's deployment controller (deployment_controller.go,
// sync.go, rolling.go, recreate.go, progress.go); rollback is kubectl's
// (`rollout undo` patches the template back), so the controller only has
// to recognise an old template.
//
// A Deployment controls the ReplicaSets its selector matches (adopting
// orphans, releasing those that stop matching, as ControllerRefManager).
// The "new" ReplicaSet is the oldest whose template equals the Deployment's
// ignoring the pod-template-hash label; when there is none it is created as
// `<deploy>-<hash>`, the hash being FNV-32a over the template (plus
// status.collisionCount) rendered with rand.SafeEncodeString, the
// `pod-template-hash` label added to its selector, labels and template.
// Revisions: the new ReplicaSet gets deployment.kubernetes.io/revision =
// max(old) + 1 (an old one brought back keeps its former numbers in
// revision-history), desired-replicas and max-replicas, and the
// Deployment's own annotations (change-cause among them, not
// last-applied); the Deployment carries its new ReplicaSet's revision.
//
// Each sync, in upstream's order: a paused Deployment (spec.paused) or a
// scaling event (desired-replicas differs from spec.replicas) only scales,
// proportionally over the active ReplicaSets by max-replicas; otherwise
// RollingUpdate scales the new ReplicaSet up within replicas + maxSurge
// and old ones down while available pods stay >= replicas - maxUnavailable
// (percentages: surge rounds up, unavailable down; both 0 means 1
// unavailable), unhealthy old pods first; Recreate scales every old
// ReplicaSet to 0, waits until no old pod runs, then scales the new one up.
// A finished rollout deletes the oldest ReplicaSets at 0 replicas beyond
// revisionHistoryLimit. Events: ScalingReplicaSet "Scaled up replica set
// NAME from 0 to 3" / "Scaled down replica set NAME from 3 to 2".
//
// Status: observedGeneration, replicas, updatedReplicas, readyReplicas,
// availableReplicas, unavailableReplicas (from the ReplicaSets' status),
// collisionCount, and conditions Available (MinimumReplicasAvailable /
// MinimumReplicasUnavailable) and Progressing (NewReplicaSetCreated,
// FoundNewReplicaSet, ReplicaSetUpdated, NewReplicaSetAvailable,
// ProgressDeadlineExceeded after progressDeadlineSeconds without progress,
// DeploymentPaused / DeploymentResumed), ReplicaFailure copied from a
// ReplicaSet — everything `kubectl rollout status` reads.
//
// Thread-safety: Start/Stop from one owner thread; the pure helpers are
// thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "client/client.h"
#include "client/informer_factory.h"
#include "controllers/controller.h"
#include "controllers/controller_history.h"  // ScaledValue
#include "controllers/replicaset.h"
#include "controllers/work_queue.h"

namespace kin::controllers {

// rand.SafeEncodeString: each byte mapped into "bcdfghjklmnpqrstvwxz2456789".
std::string SafeEncodeString(std::string_view s);
// controller.ComputeHash's shape: FNV-32a of the template (here its JSON
// with sorted keys), then the collision count as 8 little-endian bytes,
// printed in decimal and safe-encoded ("5d4f8c7b9b").
std::string ComputePodTemplateHash(const Json& pod_template,
                                   std::optional<int64_t> collision_count);
// deploymentutil.ResolveFenceposts: {maxSurge, maxUnavailable}.
std::pair<int64_t, int64_t> ResolveFenceposts(const Json& max_surge, const Json& max_unavailable,
                                              int64_t desired);

struct DeploymentControllerOptions {
  int workers = 2;
  // Time of the queue and of the progress deadline; the real clock when
  // null. With a FakeClock, wall time moves with it.
  Clock* clock = nullptr;
};

class DeploymentController : public Controller {
 public:
  // `informers` and `client` must outlive the controller.
  DeploymentController(SharedInformerFactory& informers, Client& client,
                       DeploymentControllerOptions opts = {});
  ~DeploymentController() override;
  DeploymentController(const DeploymentController&) = delete;
  DeploymentController& operator=(const DeploymentController&) = delete;

  std::string name() const override { return "deployment"; }
  void Start() override;
  void Stop() override;

 private:
  struct Sync;  // one sync's state (deployment.cc)

  ObjectPtr DeploymentOf(const std::string& ns, const Json& controller_ref) const;
  void EnqueueForReplicaSet(const Json& rs);
  void OnRsAdd(const Json& rs);
  void OnRsUpdate(const Json& old, const Json& now);
  void OnRsDelete(const Json& rs);
  void OnPodDelete(const Json& pod);
  Result Reconcile(const std::string& key);
  workloads::WallTime WallNow() const;

  const DeploymentControllerOptions opts_;
  Clock& clock_;
  const Clock::TimePoint clock_start_;
  const workloads::WallTime wall_start_;
  ComponentClient identity_;
  Informer& deployments_;
  Informer& rss_;
  Informer& pods_;
  InformerSubscriptions subscriptions_;
  StartStopOnce run_state_;
  WorkQueue queue_;
  ReconcileWorkers workers_;
};

}  // namespace kin::controllers
