// Scheduler: assigns pending pods to nodes, like kube-scheduler's default
// profile (without preemption, pod affinity or topology spread).
//
// Volumes (VolumeBinding): a pod naming a missing claim (or one being
// deleted, or an unbound claim of an Immediate class) fits nowhere, with
// upstream's message (`0/3 nodes are available: persistentvolumeclaim "x"
// not found. preemption: ...`); a bound claim's PersistentVolume with
// required nodeAffinity restricts the nodes ("node(s) had volume node
// affinity conflict"). For unbound WaitForFirstConsumer claims the chosen
// node is written to the claims (annotation
// volume.kubernetes.io/selected-node) and the pod is bound only once they
// are Bound (their volumes then hold it to that node).
//
// It runs on the controller runtime: the node and pod informers come from a
// SharedInformerFactory (shared with other controllers under a
// ControllerManager, or its own when built from a Client alone, which it
// then starts and stops itself), keys go through a WorkQueue, and one
// worker (ReconcileWorkers) waits for both caches to sync before deciding,
// since deciding on partial caches would overcommit nodes. A pod is the
// scheduler's when spec.nodeName is empty, spec.schedulerName is
// options.scheduler_name ("default-scheduler" when unset), it is not being
// deleted and its phase is neither Succeeded nor Failed. For each such pod the
// worker filters the nodes (Ready — a node that is not is treated as tainted
// node.kubernetes.io/not-ready or /unreachable, NoSchedule —, not
// unschedulable, taints tolerated, nodeSelector and required node affinity,
// host ports free, requests fit in allocatable), scores the rest (least
// allocated + balanced allocation on cpu/memory, counting a pod without
// requests as 100m/200Mi, as upstream), breaks ties by fewest pods, then by
// name, and POSTs pods/NAME/binding. The chosen node is charged at once
// ("assumed") so the next decisions see it before the informer does.
//
// A pod that fits nowhere gets a FailedScheduling Warning event and its
// PodScheduled condition set to False/Unschedulable with kube-scheduler's
// message; it is retried when a node appears or changes in a way that
// matters, when a pod goes away, and at least every 5 s. A binding that
// fails with Conflict or NotFound (bound elsewhere, being deleted, gone) is
// dropped; other failures are retried with the queue's back-off. Writes
// carry the field manager, and Events the source, options.scheduler_name.
// Per-node request sums are kept incrementally: one decision is O(nodes).
//
// Thread-safety: Start/Stop from one owner thread (Start after Stop does
// nothing); SchedulePod is pure.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "base/yaml.h"
#include "client/client.h"
#include "client/informer_factory.h"
#include "controllers/controller.h"
#include "controllers/work_queue.h"

namespace kin::controllers {

struct SchedulerOptions {
  std::string scheduler_name = "default-scheduler";
  // How long an unschedulable pod waits at most before it is tried again.
  std::chrono::milliseconds retry_unschedulable_every = std::chrono::seconds(5);
};

struct ScheduleResult {
  std::string node;  // empty when the pod fits nowhere
  // kube-scheduler's FailedScheduling text when `node` is empty, e.g.
  // "0/3 nodes are available: 1 node(s) had untolerated taint
  // {node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu. preemption:
  // 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No
  // preemption victims found for incoming pod."
  std::string failure_message;
};

// Where `pod` should go among `nodes`, given `assigned_pods` (pods with
// spec.nodeName; terminated ones are ignored).
ScheduleResult SchedulePod(const Json& pod, const std::vector<Json>& nodes,
                           const std::vector<Json>& assigned_pods);

// nodeaffinity.GetRequiredNodeAffinity(pod).Match(node): the pod spec's
// nodeSelector and required node affinity admit `node` (the scheduler's
// filter, which the DaemonSet controller applies too).
bool PodSpecMatchesNodeAffinity(const Json& pod_spec, const Json& node);

namespace scheduler_internal {
struct State;  // nodes with their charged requests, pod accounting
}

class Scheduler : public Controller {
 public:
  // Standalone: informers of its own, started by Start() and stopped by
  // Stop(). `client` must outlive the scheduler.
  explicit Scheduler(Client& client, SchedulerOptions opts = {});
  // On shared informers, which the factory's owner starts and stops (a
  // ControllerManager does). `informers` and `client` must outlive it.
  Scheduler(SharedInformerFactory& informers, Client& client, SchedulerOptions opts = {});
  ~Scheduler() override;
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  std::string name() const override { return "scheduler"; }
  void Start() override;
  // Removes its handlers, stops the worker (and its own informers). Idempotent.
  void Stop() override;

 private:
  Scheduler(SharedInformerFactory* shared, std::unique_ptr<SharedInformerFactory> own,
            Client& client, SchedulerOptions opts);
  void OnNode(const Json* old, const Json* now);
  void OnPod(const Json* old, const Json* now);
  bool IsOurs(const Json& pod) const;
  Result ScheduleOne(const std::string& key);
  // What the pod's persistentVolumeClaim volumes ask of scheduling.
  struct VolumeNeeds {
    std::string error;                  // PreFilter rejection ("persistentvolumeclaim ...")
    std::vector<Json> node_affinity;    // required NodeSelectors the node must meet
    std::vector<std::string> unbound_delayed;  // WaitForFirstConsumer claims to annotate
  };
  VolumeNeeds CheckVolumes(const Json& pod);
  void RecordUnschedulable(const Json& pod, const std::string& message);
  // Moves every unschedulable pod back to the queue; mu_ held.
  void RetryUnschedulableLocked();
  void Enqueue(const std::string& key);  // mu_ held

  const SchedulerOptions opts_;
  std::unique_ptr<SharedInformerFactory> own_informers_;  // standalone only
  SharedInformerFactory& informers_;
  ComponentClient identity_;  // writes and Events as opts_.scheduler_name
  Informer& nodes_;
  Informer& pods_;
  Informer& claims_;
  Informer& volumes_;
  Informer& classes_;
  InformerSubscriptions subscriptions_;
  StartStopOnce run_state_;

  std::mutex mu_;
  std::unique_ptr<scheduler_internal::State> state_;  // guarded by mu_
  std::set<std::string> unschedulable_;               // tried, fit nowhere; guarded by mu_

  WorkQueue queue_;  // pod keys "ns/name" to try
  ReconcileWorkers workers_;
};

}  // namespace kin::controllers
