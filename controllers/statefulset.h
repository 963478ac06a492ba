// StatefulSetController: pods with stable identities, like
// kube-controller-manager's statefulset controller (pkg/controller/statefulset).
//
// Pod `<set>-<ordinal>` for each ordinal in [start, start + replicas)
// (spec.ordinals.start, default 0), with hostname `<set>-<ordinal>` and
// subdomain spec.serviceName (so `<set>-<ordinal>.<service>` resolves),
// the template's labels plus `statefulset.kubernetes.io/pod-name`,
// `apps.kubernetes.io/pod-index` and `controller-revision-hash` (the
// revision's name), and a controller reference. For each volumeClaimTemplate
// the pod gets a volume of that name on claim `<claim>-<set>-<ordinal>`,
// made before the pod (and again while the pod is Pending, if it went)
// with the template's labels and the selector's matchLabels.
//
// spec.persistentVolumeClaimRetentionPolicy (GA in 1.32), as upstream's
// isClaimOwnerUpToDate / updateClaimOwnerRefForSetAndPod: whenDeleted
// Delete gives each claim a controller reference to the set, whenScaled
// Delete gives the claims of pods scaled down (out of the set's ordinals) a
// controller reference to their pod instead, set before the pod is deleted;
// the garbage collector then removes them. Retain (the default) leaves none
// of ours; claims with another controller or stale references are not
// touched; a pod is not made again while its claim still belongs to the
// previous pod of that ordinal. A replica whose claims had to be fixed gets
// the SuccessfulUpdate Event, as upstream's UpdateStatefulPod.
//
// podManagementPolicy OrderedReady: pods are created in ordinal order, each
// only when every lower one is Running and Ready (and available after
// minReadySeconds); scale-down removes the highest ordinal first, one at a
// time, waiting for the rest to be healthy. Parallel: all at once. A Failed
// or Succeeded pod is deleted and made again under the same name; a pod that
// lost its identity labels gets them back.
//
// Updates: the template's revisions are ControllerRevisions (see
// controllers/controller_history.h); RollingUpdate deletes, from the highest
// ordinal down to spec.updateStrategy.rollingUpdate.partition, one pod at a
// time that is not at the update revision, waiting for each to come back
// healthy; ordinals below the partition are (re)made at the current
// revision. OnDelete makes a pod at the update revision only when it is
// deleted. Status: replicas, readyReplicas, currentReplicas, updatedReplicas,
// availableReplicas, currentRevision, updateRevision, observedGeneration,
// collisionCount, as `kubectl rollout status sts/x` reads them; once a
// rolling update has every pod updated and ready, currentRevision becomes
// updateRevision. A StatefulSet being deleted only has its status kept.
// Events: SuccessfulCreate/FailedCreate/SuccessfulDelete/FailedDelete with
// upstream's messages, from "statefulset-controller".
//
// Thread-safety: Start/Stop from one owner thread; NewStatefulSetPod is pure.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "base/yaml.h"
#include "client/client.h"
#include "client/informer_factory.h"
#include "controllers/controller.h"
#include "controllers/controller_history.h"
#include "controllers/wall_clock.h"
#include "controllers/work_queue.h"

namespace kin::controllers {

struct StatefulSetOptions {
  int workers = 2;
  Clock* clock = nullptr;  // RealClock() when null; must outlive the controller
  // A revision store; NewRevisionStore() when null.
  std::unique_ptr<RevisionStore> history;
};

inline constexpr char kStatefulSetPodNameLabel[] = "statefulset.kubernetes.io/pod-name";
inline constexpr char kPodIndexLabel[] = "apps.kubernetes.io/pod-index";

// The pod of `ordinal` from `set`'s template (set may lack kind/apiVersion),
// labelled with revision `revision` (a ControllerRevision name).
Json NewStatefulSetPod(const Json& set, int64_t ordinal, const std::string& revision);
// The ordinal of a pod named `<set>-<n>`; -1 when the name is not of `set`.
int64_t StatefulPodOrdinal(const std::string& set_name, const std::string& pod_name);

class StatefulSetController : public Controller {
 public:
  // `informers` and `client` must outlive the controller.
  StatefulSetController(SharedInformerFactory& informers, Client& client,
                        StatefulSetOptions opts = {});
  ~StatefulSetController() override;
  StatefulSetController(const StatefulSetController&) = delete;
  StatefulSetController& operator=(const StatefulSetController&) = delete;

  std::string name() const override { return "statefulset"; }
  void Start() override;
  void Stop() override;

  // The reconcile of one StatefulSet key ("ns/name"); public for tests.
  Result Sync(const std::string& key);

 private:
  StatefulSetOptions opts_;
  Clock& clock_;
  WallClock wall_;
  ComponentClient identity_;
  Informer& sets_;
  Informer& pods_;
  Informer& claims_;
  std::unique_ptr<RevisionStore> history_;
  InformerSubscriptions subscriptions_;
  StartStopOnce run_state_;

  WorkQueue queue_;
  ReconcileWorkers workers_;
};

}  // namespace kin::controllers
