#include "controllers/node_lifecycle.h"

#include <algorithm>

#include "base/error.h"
#include "base/log.h"
#include "client/object.h"
#include "controllers/pod_util.h"

namespace kin::controllers {

namespace {

using std::chrono::system_clock;

constexpr const char* kUnreachable = "node.kubernetes.io/unreachable";
constexpr const char* kNotReady = "node.kubernetes.io/not-ready";
constexpr const char* kNodeLeaseNamespace = "kube-node-lease";

const ResourceInfo& Leases() {
  static const ResourceInfo& r = *FindResource("coordination.k8s.io", "v1", "leases");
  return r;
}

std::string ReadyStatus(const Json& node) {
  const Json* c = object::Condition(node, "Ready");
  return c ? c->value("status", "Unknown") : "Unknown";
}

std::optional<system_clock::time_point> TimeAt(const Json& obj, const char* a, const char* b) {
  auto ia = obj.find(a);
  if (ia == obj.end() || !ia->is_object()) return std::nullopt;
  auto ib = ia->find(b);
  if (ib == ia->end() || !ib->is_string()) return std::nullopt;
  return object::ParseRfc3339(ib->get<std::string>());
}

// Whether `toleration` matches `taint` (key, operator Exists/Equal, value, effect).
bool Tolerates(const Json& toleration, const Json& taint) {
  std::string effect = toleration.value("effect", "");
  if (!effect.empty() && effect != taint.value("effect", "")) return false;
  std::string key = toleration.value("key", "");
  std::string op = toleration.value("operator", "Equal");
  if (key.empty()) return op == "Exists";  // tolerates every taint
  if (key != taint.value("key", "")) return false;
  if (op == "Exists") return true;
  return toleration.value("value", "") == taint.value("value", "");
}

const Json& Taints(const Json& node) {
  static const Json kNone = Json::array();
  auto spec = node.find("spec");
  if (spec == node.end() || !spec->is_object()) return kNone;
  auto t = spec->find("taints");
  return t != spec->end() && t->is_array() ? *t : kNone;
}

std::string PodNode(const Json& pod) {
  auto spec = pod.find("spec");
  if (spec == pod.end() || !spec->is_object()) return "";
  return spec->value("nodeName", "");
}

}  // namespace

std::optional<system_clock::time_point> EvictionTime(const Json& pod, const Json& taints,
                                                     system_clock::time_point now) {
  const Json tolerations =
      pod.contains("spec") && pod["spec"].is_object()
          ? pod["spec"].value("tolerations", Json::array())
          : Json::array();
  std::optional<system_clock::time_point> due;
  for (const auto& taint : taints) {
    if (!taint.is_object() || taint.value("effect", "") != "NoExecute") continue;
    // The shortest tolerationSeconds among the tolerations that match;
    // none matching: evicted at once.
    bool tolerated = false;
    // As upstream: the shortest of the matching tolerations that have
    // seconds; tolerated for ever only when none has.
    std::optional<int64_t> seconds;
    for (const auto& t : tolerations) {
      if (!t.is_object() || !Tolerates(t, taint)) continue;
      tolerated = true;
      auto s = t.find("tolerationSeconds");
      if (s == t.end() || !s->is_number_integer()) continue;
      int64_t v = std::max<int64_t>(0, s->get<int64_t>());
      seconds = seconds ? std::min(*seconds, v) : v;
    }
    if (!tolerated) return now;
    if (!seconds) continue;
    system_clock::time_point added = now;
    if (auto t = taint.find("timeAdded"); t != taint.end() && t->is_string()) {
      added = object::ParseRfc3339(t->get<std::string>()).value_or(now);
    }
    system_clock::time_point at = added + std::chrono::seconds(*seconds);
    due = due ? std::min(*due, at) : at;
  }
  return due;
}

NodeLifecycleController::NodeLifecycleController(SharedInformerFactory& informers, Client& client,
                                                 NodeLifecycleOptions opts)
    : nodes_(informers.For(NodesResource())),
      leases_(informers.For(Leases())),
      pods_(informers.For(PodsResource())),
      node_client_(client, "node-controller"),
      pod_client_(client, "taint-eviction-controller"),
      opts_(std::move(opts)),
      node_queue_(WorkQueueOptions{.clock = opts_.clock}),
      pod_queue_(WorkQueueOptions{.clock = opts_.clock}),
      node_workers_("nodelifecycle", node_queue_,
                    [this](const std::string& key) { return ReconcileNode(key); }),
      pod_workers_("taint-eviction", pod_queue_,
                   [this](const std::string& key) { return ReconcilePod(key); }) {}

NodeLifecycleController::~NodeLifecycleController() { Stop(); }

void NodeLifecycleController::Start() {
  if (!run_state_.TryStart()) return;
  subscriptions_.Add(nodes_, HandlersFrom([this](const Json*, const Json* node) {
    if (!node) return;
    node_queue_.Add(object::Name(*node));
    // Its pods' eviction times follow its taints.
    for (const auto& key : pods_.IndexKeys(kNodeNameIndex, object::Name(*node))) {
      pod_queue_.Add(key);
    }
  }));
  subscriptions_.Add(leases_, HandlersFrom([this](const Json*, const Json* lease) {
    if (lease && object::Namespace(*lease) == kNodeLeaseNamespace) {
      node_queue_.Add(object::Name(*lease));
    }
  }));
  subscriptions_.Add(pods_, HandlersFrom([this](const Json* old, const Json* pod) {
    if (!pod || (old && PodNode(*old) == PodNode(*pod))) return;
    if (!PodNode(*pod).empty()) pod_queue_.Add(object::Key(*pod));
  }));
  node_workers_.Start(opts_.workers, {&nodes_, &leases_, &pods_});
  pod_workers_.Start(opts_.workers, {&nodes_, &pods_});
}

void NodeLifecycleController::Stop() {
  if (!run_state_.TryStop()) return;
  node_workers_.Stop();
  pod_workers_.Stop();
  subscriptions_.RemoveAll();
}

Result NodeLifecycleController::ReconcileNode(const std::string& name) {
  ObjectPtr node = nodes_.Lookup("", name);
  if (!node) return Result::Done();
  // The queue's clock first, then the wall clock: a delay computed from
  // the later reading and counted from the earlier one can only come early
  // (and look again), never late.
  const Clock::TimePoint started = node_queue_.clock().Now();
  const system_clock::time_point now = opts_.now();
  const std::string now_text = object::FormatRfc3339(now);
  // The agent's last sign of life: its lease, or its Ready heartbeat.
  std::optional<system_clock::time_point> probe;
  if (ObjectPtr lease = leases_.Lookup(kNodeLeaseNamespace, name)) {
    probe = TimeAt(*lease, "spec", "renewTime");
  }
  if (const Json* ready = object::Condition(*node, "Ready")) {
    if (auto t = ready->find("lastHeartbeatTime"); t != ready->end() && t->is_string()) {
      auto hb = object::ParseRfc3339(t->get<std::string>());
      if (hb && (!probe || *hb > *probe)) probe = hb;
    }
  }
  if (!probe) probe = TimeAt(*node, "metadata", "creationTimestamp");
  Result next = Result::Done();
  if (probe) {
    auto silent = now - *probe;
    if (silent > opts_.grace_period) {
      if (ReadyStatus(*node) != "Unknown") {
        UpdateConditions(*node, now_text);
        MarkPodsNotReady(name);
        return Result::After(std::chrono::milliseconds(0));  // taints next, on the new status
      }
    } else {
      // Look again when the grace period would run out without a renewal.
      next = Result::At(started +
                        std::chrono::duration_cast<Clock::Duration>(opts_.grace_period - silent) +
                        std::chrono::milliseconds(50));
    }
  }
  SyncTaints(*node, now_text);
  return next;
}

void NodeLifecycleController::UpdateConditions(const Json& node, const std::string& now_text) {
  Json conditions = node.contains("status") && node["status"].is_object()
                        ? node["status"].value("conditions", Json::array())
                        : Json::array();
  bool has_ready = false;
  for (auto& c : conditions) {
    std::string type = c.value("type", "");
    if (type != "Ready" && type != "MemoryPressure" && type != "DiskPressure" &&
        type != "PIDPressure") {
      continue;
    }
    has_ready |= type == "Ready";
    if (c.value("status", "") != "Unknown") c["lastTransitionTime"] = now_text;
    c["status"] = "Unknown";
    c["reason"] = "NodeStatusUnknown";
    c["message"] = "Kubelet stopped posting node status.";
  }
  if (!has_ready) {
    conditions.push_back({{"type", "Ready"},
                          {"status", "Unknown"},
                          {"reason", "NodeStatusNeverUpdated"},
                          {"message", "Kubelet never posted node status."},
                          {"lastHeartbeatTime", now_text},
                          {"lastTransitionTime", now_text}});
  }
  node_client_.client().Patch(NodesResource(), "", object::Name(node), PatchType::kMerge,
                              {{"status", {{"conditions", conditions}}}}, "status");
  node_client_.events().Normal(node, "NodeNotReady",
                               "Node " + object::Name(node) + " status is now: NodeNotReady");
}

void NodeLifecycleController::MarkPodsNotReady(const std::string& node) {
  for (const ObjectPtr& pod : pods_.ByIndex(kNodeNameIndex, node)) {
    if (IsPodTerminal(*pod)) continue;
    Json conditions = (*pod)["status"].value("conditions", Json::array());
    bool changed = false;
    for (auto& c : conditions) {
      if (c.value("type", "") == "Ready" && c.value("status", "") != "False") {
        c["status"] = "False";
        c["lastTransitionTime"] = object::NowRfc3339();
        changed = true;
      }
    }
    if (!changed) continue;
    try {
      node_client_.client().Patch(PodsResource(), object::Namespace(*pod), object::Name(*pod),
                                  PatchType::kMerge, {{"status", {{"conditions", conditions}}}},
                                  "status");
    } catch (const Error& e) {
      if (e.code() != Code::kNotFound) throw;
    }
  }
}

void NodeLifecycleController::SyncTaints(const Json& node, const std::string& now_text) {
  // The taints the Ready condition calls for.
  std::string status = ReadyStatus(node);
  std::string wanted_key = status == "Unknown" ? kUnreachable : status == "False" ? kNotReady : "";
  Json taints = Json::array();
  bool changed = false;
  bool have_execute = false, have_schedule = false;
  for (const auto& t : Taints(node)) {
    std::string key = t.value("key", "");
    if (key == kUnreachable || key == kNotReady) {
      if (key != wanted_key) {
        changed = true;  // the condition moved on: the old taint goes
        continue;
      }
      std::string effect = t.value("effect", "");
      have_execute |= effect == "NoExecute";
      have_schedule |= effect == "NoSchedule";
    }
    taints.push_back(t);
  }
  if (!wanted_key.empty()) {
    if (!have_schedule) {
      taints.push_back({{"key", wanted_key}, {"effect", "NoSchedule"}});
      changed = true;
    }
    if (!have_execute) {
      taints.push_back({{"key", wanted_key}, {"effect", "NoExecute"}, {"timeAdded", now_text}});
      changed = true;
    }
  }
  if (!changed) return;
  // A merge patch replaces the list; the resourceVersion makes it a
  // compare-and-swap against a concurrent change of the taints.
  Json patch = {{"metadata", {{"resourceVersion", object::ResourceVersion(node)}}},
                {"spec", {{"taints", taints}}}};
  try {
    node_client_.client().Patch(NodesResource(), "", object::Name(node), PatchType::kMerge, patch);
  } catch (const Error& e) {
    if (e.code() == Code::kConflict) {
      node_queue_.Add(object::Name(node));  // read again
      return;
    }
    throw;
  }
}

Result NodeLifecycleController::ReconcilePod(const std::string& key) {
  auto [ns, name] = object::SplitKey(key);
  ObjectPtr pod = pods_.Lookup(ns, name);
  if (!pod || object::IsBeingDeleted(*pod) || IsPodTerminal(*pod)) return Result::Done();
  ObjectPtr node = nodes_.Lookup("", PodNode(*pod));
  if (!node) return Result::Done();
  const Clock::TimePoint started = pod_queue_.clock().Now();  // as in ReconcileNode
  system_clock::time_point now = opts_.now();
  std::optional<system_clock::time_point> due = EvictionTime(*pod, Taints(*node), now);
  if (!due) return Result::Done();
  if (*due > now) {
    return Result::At(started + std::chrono::duration_cast<Clock::Duration>(*due - now) +
                      std::chrono::milliseconds(10));
  }
  pod_client_.events().Normal(*pod, "TaintManagerEviction", "Marking for deletion Pod " + key);
  DeleteOptions del;
  del.precondition_uid = object::Uid(*pod);
  try {
    pod_client_.client().Delete(PodsResource(), ns, name, del);
  } catch (const Error& e) {
    if (e.code() != Code::kNotFound && e.code() != Code::kConflict) throw;
  }
  return Result::Done();
}

}  // namespace kin::controllers
