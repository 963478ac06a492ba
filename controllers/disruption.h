// DisruptionController: keeps the status of PodDisruptionBudgets, as
// kube-controller-manager's disruption controller
// (pkg/controller/disruption) does, so that the eviction subresource
// (apiserver/eviction.h) can decide with it.
//
// For each PDB, from the shared caches: the pods of its namespace its
// selector selects (a nil selector selects none, {} all); expectedPods and
// desiredHealthy from the spec — maxUnavailable (int or percent) and
// percentage minAvailable count the scale of the pods' controllers
// (ReplicationController, ReplicaSet, Deployment through its ReplicaSet,
// StatefulSet: spec.replicas, each controller once; pods without a
// controller give an UnmanagedPods Warning), integer minAvailable counts the
// pods; percentages round up (intstr.GetScaledValueFromIntOrPercent);
// currentHealthy: Ready pods not being deleted and not recorded in
// status.disruptedPods within the last 2 minutes (DeletionTimeout);
// disruptionsAllowed = currentHealthy - desiredHealthy, at least 0 and 0
// while expectedPods is 0; disruptedPods without entries older than
// 2 minutes (a NotDeleted Warning) or of pods gone or terminating;
// observedGeneration; condition DisruptionAllowed (True/SufficientPods when
// disruptions are allowed, else False/InsufficientPods). A status write
// happens only when something changed; a PDB whose controller cannot be
// found (e.g. a pod owned by an unknown kind) gets disruptionsAllowed 0 and
// DisruptionAllowed False/SyncFailed with the error, as upstream's failSafe.
// PDBs with disruptedPods are looked at again when the earliest entry
// expires. Events (NoPods, UnmanagedPods, CalculateExpectedPodCountFailed,
// NotDeleted) and writes are the "disruption-controller"'s.
//
// Pods that carry DisruptionTarget=True (an eviction that did not complete)
// and are not terminating nor terminal get it set to False after 2 minutes,
// as upstream's stale pod disruption worker does.
//
// Time is wall-clock for the RFC 3339 fields; tests replace `now` and the
// queues' clock.
//
// Thread-safety: Start/Stop from one owner thread.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "client/informer_factory.h"
#include "controllers/controller.h"
#include "controllers/pod_util.h"  // ScaledValue

namespace kin::controllers {

struct DisruptionOptions {
  // DeletionTimeout: how long an eviction stays recorded in disruptedPods
  // waiting for the pod's deletion; also the stale DisruptionTarget timeout.
  std::chrono::milliseconds deletion_timeout = std::chrono::minutes(2);
  std::function<std::chrono::system_clock::time_point()> now = [] {
    return std::chrono::system_clock::now();
  };
  Clock* clock = nullptr;  // RealClock() when null
  int workers = 2;
};

class DisruptionController : public Controller {
 public:
  DisruptionController(SharedInformerFactory& informers, Client& client,
                       DisruptionOptions opts = {});
  ~DisruptionController() override;

  std::string name() const override { return "disruption"; }
  void Start() override;
  void Stop() override;

 private:
  Result Sync(const std::string& key);
  Result SyncStalePod(const std::string& key);
  void EnqueuePdbsOf(const Json& pod);
  void CheckStaleCondition(const Json& pod);

  Informer& pdbs_;
  Informer& pods_;
  Informer& rcs_;
  Informer& rss_;
  Informer& deployments_;
  Informer& statefulsets_;
  ComponentClient identity_;  // "disruption-controller"
  DisruptionOptions opts_;
  WorkQueue queue_;        // PDB keys
  WorkQueue stale_queue_;  // pod keys with a DisruptionTarget condition
  ReconcileWorkers workers_;
  ReconcileWorkers stale_workers_;
  InformerSubscriptions subscriptions_;
  StartStopOnce run_state_;
};

}  // namespace kin::controllers
