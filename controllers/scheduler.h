// Scheduler: assigns pending pods to nodes, like kube-scheduler's default
// profile (without preemption, pod affinity, topology spread or volumes).
//
// Start() runs informers on nodes and pods and one worker thread. A pod is
// the scheduler's when spec.nodeName is empty, spec.schedulerName is
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
// dropped. Per-node request sums are kept incrementally: one decision is
// O(nodes).
//
// Thread-safety: Start/Stop from one owner thread; SchedulePod is pure.
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/yaml.h"
#include "client/client.h"
#include "client/events.h"
#include "client/informer.h"

namespace kin::controllers {

struct SchedulerOptions {
  std::string scheduler_name = "default-scheduler";
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

namespace scheduler_internal {
struct State;  // nodes with their charged requests, pod accounting
}

class Scheduler {
 public:
  // `client` must outlive the scheduler.
  Scheduler(Client& client, SchedulerOptions opts = {});
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  void Start();
  // Stops the informers and the worker. Idempotent.
  void Stop();

 private:
  void OnNode(const Json* old, const Json* now);
  void OnPod(const Json* old, const Json* now);
  bool IsOurs(const Json& pod) const;
  void Work();
  void ScheduleOne(const std::string& key);
  void RecordUnschedulable(const Json& pod, const std::string& message);
  // Moves every unschedulable pod back to the active queue; mu_ held.
  void RetryUnschedulableLocked();
  void Enqueue(const std::string& key);  // mu_ held

  Client& client_;
  const SchedulerOptions opts_;
  EventRecorder events_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::unique_ptr<scheduler_internal::State> state_;  // guarded by mu_
  std::deque<std::string> active_;                    // pod keys "ns/name" to try
  std::set<std::string> queued_;                      // keys in active_
  std::set<std::string> unschedulable_;               // tried, fit nowhere
  bool stopping_ = false;
  bool started_ = false;

  std::unique_ptr<Informer> nodes_;
  std::unique_ptr<Informer> pods_;
  std::thread worker_;
};

}  // namespace kin::controllers
