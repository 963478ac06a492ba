// DaemonSetController: one pod of a DaemonSet on every node that should
// run it, like kube-controller-manager's daemonset controller
// (pkg/controller/daemon).
//
// A node should run a DaemonSet's pod when the pod template's nodeSelector
// and required node affinity match it and the pod (with the tolerations the
// controller adds to every daemon pod: node.kubernetes.io/not-ready and
// /unreachable NoExecute; /disk-pressure, /memory-pressure, /pid-pressure,
// /unschedulable NoSchedule; /network-unavailable NoSchedule for host-network
// pods) tolerates its NoSchedule and NoExecute taints. spec.unschedulable
// is no obstacle (the unschedulable taint is tolerated). A pod already on a
// node whose NoSchedule taints it does not tolerate may stay there as long
// as it tolerates the NoExecute ones.
//
// Pods are created (in slow-start batches of 1, 2, 4, ...) as
// `<ds>-<random>` with the template's labels plus `controller-revision-hash`
// and `pod-template-generation`, a controller reference, and required node
// affinity on the node's name (matchFields metadata.name), so that the
// scheduler binds them. Pods on nodes that should not run them, pods on nodes
// that are gone, Failed/Succeeded pods and extra pods on a node are deleted.
// Creates and deletes are remembered until the pod informer has seen them
// (upstream's expectations), so a stale cache never doubles a pod.
//
// Updates: RollingUpdate replaces out-of-date pods while at most
// maxUnavailable (int or percent of the desired count, rounded up) are
// unavailable, or with maxSurge creates the new pod beside the old one and
// deletes the old one once the new one is available; OnDelete replaces a pod
// only when it is deleted. The template's revisions are ControllerRevisions
// (controllers/controller_history.h). Status (desiredNumberScheduled,
// currentNumberScheduled, numberReady, numberAvailable, numberUnavailable,
// numberMisscheduled, updatedNumberScheduled, observedGeneration,
// collisionCount) is what `kubectl rollout status ds/x` reads. Events are
// SuccessfulCreate/FailedCreate/SuccessfulDelete/FailedDelete as upstream,
// from "daemonset-controller".
//
// Thread-safety: Start/Stop from one owner thread; NodeShouldRunDaemonPod
// and NewDaemonPod are pure.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "base/yaml.h"
#include "client/client.h"
#include "client/informer_factory.h"
#include "controllers/controller.h"
#include "controllers/controller_history.h"
#include "controllers/wall_clock.h"
#include "controllers/work_queue.h"

namespace kin::controllers {

struct DaemonSetOptions {
  int workers = 2;
  Clock* clock = nullptr;  // RealClock() when null; must outlive the controller
  // How long a create or delete may go unseen by the pod informer before
  // the controller stops waiting for it (upstream: 5 minutes).
  std::chrono::milliseconds expectations_timeout = std::chrono::minutes(1);
  // A revision store; NewRevisionStore() when null.
  std::unique_ptr<RevisionStore> history;
};

inline constexpr char kPodTemplateGenerationLabel[] = "pod-template-generation";

struct DaemonNodeFit {
  bool should_run = false;               // a pod should be created here
  bool should_continue_running = false;  // a pod here may stay
};
// upstream NodeShouldRunDaemonPod.
DaemonNodeFit NodeShouldRunDaemonPod(const Json& node, const Json& ds);
// The pod spec.template makes for `node` (tolerations, labels, affinity).
// `ds` may lack kind/apiVersion.
Json NewDaemonPod(const Json& ds, const std::string& node, const std::string& hash);
// The node a daemon pod is for: spec.nodeName, else its matchFields
// metadata.name affinity; "" when neither.
std::string DaemonPodTargetNode(const Json& pod);

class DaemonSetController : public Controller {
 public:
  // `informers` and `client` must outlive the controller.
  DaemonSetController(SharedInformerFactory& informers, Client& client,
                      DaemonSetOptions opts = {});
  ~DaemonSetController() override;
  DaemonSetController(const DaemonSetController&) = delete;
  DaemonSetController& operator=(const DaemonSetController&) = delete;

  std::string name() const override { return "daemonset"; }
  void Start() override;
  void Stop() override;

  // The reconcile of one DaemonSet key ("ns/name"); public for tests.
  Result Sync(const std::string& key);

 private:
  struct Expectations {
    std::set<std::string> creates;  // pod keys created, not yet seen
    std::set<std::string> deletes;  // pod uids deleted, still seen
    Clock::TimePoint since;
  };
  void OnNode(const Json* old, const Json* now);
  void EnqueueAll();
  bool Satisfied(const std::string& key);
  void ExpectCreate(const std::string& key, const std::string& pod_key);
  void ExpectDelete(const std::string& key, const std::string& pod_uid);

  DaemonSetOptions opts_;
  Clock& clock_;
  WallClock wall_;
  ComponentClient identity_;
  Informer& dss_;
  Informer& pods_;
  Informer& nodes_;
  std::unique_ptr<RevisionStore> history_;
  InformerSubscriptions subscriptions_;
  StartStopOnce run_state_;

  std::mutex mu_;
  std::map<std::string, Expectations> expectations_;  // by DaemonSet key; guarded by mu_

  WorkQueue queue_;
  ReconcileWorkers workers_;
};

}  // namespace kin::controllers
