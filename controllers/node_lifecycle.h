// NodeLifecycleController: what kube-controller-manager's node lifecycle
// and taint eviction controllers do for nodes whose agent went silent.
//
// Node health: a node whose Lease (kube-node-lease/<node>) has not been
// renewed for `grace_period` (and whose Ready condition's heartbeat is as
// old) gets its Ready, MemoryPressure, DiskPressure and PIDPressure
// conditions set to Unknown (reason NodeStatusUnknown, "Kubelet stopped
// posting node status."), a NodeNotReady Event, and the pods on it marked
// Ready=False (so endpoints drop them). Taints follow the Ready condition,
// as upstream's taint-based eviction and TaintNodesByCondition do:
// Unknown -> node.kubernetes.io/unreachable (NoExecute, with timeAdded, and
// NoSchedule); False -> node.kubernetes.io/not-ready (the same two); True
// -> neither. The node agent sets Ready=True again when it comes back.
//
// Taint eviction: a pod bound to a node with NoExecute taints is deleted at
// once when it does not tolerate one of them, and otherwise when the
// shortest tolerationSeconds of the tolerations that match runs out,
// counted from the taint's timeAdded (a toleration without seconds
// tolerates for ever). Each deletion records a TaintManagerEviction Event
// ("Marking for deletion Pod NS/NAME"). A pod on an unreachable node stays
// Terminating until the node returns, as on a real cluster; its
// controller replaces it elsewhere.
//
// Time is wall-clock (leases carry RFC 3339 times); `now` can be replaced
// in tests. Work is re-queued for the moment something is due, never
// polled.
//
// Thread-safety: Start/Stop from one owner thread.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "client/informer_factory.h"
#include "controllers/controller.h"

namespace kin::controllers {

struct NodeLifecycleOptions {
  // kube-controller-manager's --node-monitor-grace-period.
  std::chrono::milliseconds grace_period = std::chrono::seconds(40);
  // Wall-clock time, and the clock the work queues wait on (tests drive
  // both from one FakeClock).
  std::function<std::chrono::system_clock::time_point()> now = [] {
    return std::chrono::system_clock::now();
  };
  Clock* clock = nullptr;  // RealClock() when null
  int workers = 2;
};

// The taint eviction decision for one pod on a node with `taints` (the
// node's spec.taints): nullopt when the pod stays; otherwise when it must
// go (a time in the past or `now` itself: at once). Pure.
std::optional<std::chrono::system_clock::time_point> EvictionTime(
    const Json& pod, const Json& taints, std::chrono::system_clock::time_point now);

class NodeLifecycleController : public Controller {
 public:
  NodeLifecycleController(SharedInformerFactory& informers, Client& client,
                          NodeLifecycleOptions opts = {});
  ~NodeLifecycleController() override;

  std::string name() const override { return "nodelifecycle"; }
  void Start() override;
  void Stop() override;

 private:
  Result ReconcileNode(const std::string& name);
  Result ReconcilePod(const std::string& key);
  void UpdateConditions(const Json& node, const std::string& now_text);
  void MarkPodsNotReady(const std::string& node);
  void SyncTaints(const Json& node, const std::string& now_text);

  Informer& nodes_;
  Informer& leases_;
  Informer& pods_;
  ComponentClient node_client_;  // "node-controller"
  ComponentClient pod_client_;   // "taint-eviction-controller"
  NodeLifecycleOptions opts_;
  WorkQueue node_queue_;
  WorkQueue pod_queue_;
  ReconcileWorkers node_workers_;
  ReconcileWorkers pod_workers_;
  InformerSubscriptions subscriptions_;
  StartStopOnce run_state_;
};

}  // namespace kin::controllers
