#include "apiserver/eviction.h"

#include <string>
#include <vector>

#include "base/error.h"
#include "client/object.h"
#include "client/resources.h"
#include "client/selector.h"

namespace kin::apiserver {
namespace {

// MaxDisruptedPodSize: more unconfirmed evictions than this means the
// disruption controller is not keeping up; refuse until it does.
constexpr size_t kMaxDisruptedPodSize = 2000;
// EvictionsRetry.Steps: how often a conflicting write is tried again.
constexpr int kConflictRetries = 20;

constexpr const char* kViolationMessage =
    "Cannot evict pod as it would violate the pod's disruption budget.";

const ResourceInfo& PdbResource() {
  static const ResourceInfo* r = FindResource("policy", "v1", "poddisruptionbudgets");
  return *r;
}

std::string StrAt(const Json& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : "";
}
int64_t IntAt(const Json& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}
const Json& ObjAt(const Json& o, const char* key) {
  static const Json empty = Json::object();
  auto it = o.find(key);
  return it != o.end() && it->is_object() ? *it : empty;
}

// The v1 Status of a successful eviction (metav1.Status{Status: Success}).
Json Success() {
  return {{"kind", "Status"},
          {"apiVersion", "v1"},
          {"metadata", Json::object()},
          {"status", "Success"}};
}

// errors.NewTooManyRequests(message, retryAfter) plus one DisruptionBudget cause.
EvictionResult TooManyRequests(const std::string& cause, int retry_after) {
  Json details = {{"causes", {{{"reason", "DisruptionBudget"}, {"message", cause}}}}};
  if (retry_after > 0) details["retryAfterSeconds"] = retry_after;
  EvictionResult r;
  r.code = 429;
  r.body = {{"kind", "Status"},
            {"apiVersion", "v1"},
            {"metadata", Json::object()},
            {"status", "Failure"},
            {"message", kViolationMessage},
            {"reason", "TooManyRequests"},
            {"details", details},
            {"code", 429}};
  if (retry_after > 0) r.retry_after_seconds = retry_after;
  return r;
}

// createTooManyRequestsError: the budget has not caught up yet.
EvictionResult StillProcessing(const std::string& pdb) {
  return TooManyRequests(
      "The disruption budget " + pdb + " is still being processed by the server.", 10);
}

Error PdbForbidden(const std::string& pdb, const std::string& why) {
  return Error::Forbidden("poddisruptionbudget.policy \"" + pdb + "\" is forbidden: " + why)
      .WithDetails("poddisruptionbudget", pdb, "policy");
}

bool IsPodReady(const Json& pod) {
  const Json& status = ObjAt(pod, "status");
  auto it = status.find("conditions");
  if (it == status.end() || !it->is_array()) return false;
  for (const auto& c : *it) {
    if (c.is_object() && StrAt(c, "type") == "Ready") return StrAt(c, "status") == "True";
  }
  return false;
}

// canIgnorePDB: the pod is done, not started, or already going.
bool CanIgnorePdb(const Json& pod) {
  std::string phase = StrAt(ObjAt(pod, "status"), "phase");
  return phase == "Succeeded" || phase == "Failed" || phase == "Pending" ||
         object::IsBeingDeleted(pod);
}

// shouldEnforceResourceVersion: guard the delete against the pod becoming
// Ready (and so protected) meanwhile; terminal or terminating pods need not.
bool ShouldEnforceResourceVersion(const Json& pod) {
  std::string phase = StrAt(ObjAt(pod, "status"), "phase");
  return !(phase == "Succeeded" || phase == "Failed" || object::IsBeingDeleted(pod));
}

// The Eviction's deleteOptions (and the request's dryRun).
DeleteOptions DeleteOptionsOf(const Json& eviction, bool dry_run) {
  DeleteOptions o;
  o.dry_run = dry_run;
  const Json& d = ObjAt(eviction, "deleteOptions");
  if (auto it = d.find("gracePeriodSeconds"); it != d.end() && it->is_number_integer()) {
    o.grace_period_seconds = it->get<int64_t>();
  }
  o.propagation_policy = StrAt(d, "propagationPolicy");
  if (auto it = d.find("orphanDependents"); it != d.end() && it->is_boolean()) {
    if (o.propagation_policy.empty()) {
      o.propagation_policy = it->get<bool>() ? "Orphan" : "Background";
    }
  }
  if (auto it = d.find("dryRun"); it != d.end() && it->is_array() && !it->empty()) {
    o.dry_run = true;
  }
  const Json& pre = ObjAt(d, "preconditions");
  o.precondition_uid = StrAt(pre, "uid");
  o.precondition_resource_version = StrAt(pre, "resourceVersion");
  return o;
}

// The budgets that guard the pod: a set, non-empty selector matching its
// labels (a nil or empty selector matches nothing here, unlike in the
// disruption controller). Selectors that do not parse match nothing.
std::vector<Json> MatchingBudgets(Registry& registry, const Json& pod) {
  std::vector<Json> out;
  Json list = registry.List(PdbResource(), object::Namespace(pod), ListOptions{});
  for (auto& pdb : list["items"]) {
    const Json& spec = ObjAt(pdb, "spec");
    auto it = spec.find("selector");
    if (it == spec.end() || !it->is_object()) continue;
    try {
      LabelSelector sel = LabelSelector::FromJson(*it);
      if (sel.empty() || !sel.Matches(object::Labels(pod))) continue;
    } catch (const Error&) {
      continue;
    }
    out.push_back(std::move(pdb));
  }
  return out;
}

// pdbhelper.UpdateDisruptionAllowedCondition + meta.SetStatusCondition.
void SetDisruptionAllowedCondition(Json& status) {
  bool allowed = IntAt(status, "disruptionsAllowed") > 0;
  Json cond = {{"type", "DisruptionAllowed"},
               {"status", allowed ? "True" : "False"},
               {"reason", allowed ? "SufficientPods" : "InsufficientPods"},
               {"message", ""},
               {"observedGeneration", IntAt(status, "observedGeneration")},
               {"lastTransitionTime", NowRfc3339()}};
  if (!status.contains("conditions") || !status["conditions"].is_array()) {
    status["conditions"] = Json::array();
  }
  for (auto& c : status["conditions"]) {
    if (!c.is_object() || StrAt(c, "type") != "DisruptionAllowed") continue;
    if (StrAt(c, "status") == cond["status"]) cond["lastTransitionTime"] = c["lastTransitionTime"];
    c = cond;
    return;
  }
  status["conditions"].push_back(cond);
}

// checkAndDecrement with its conflict retries. Returns a 429 result when
// the budget forbids the eviction; nullopt when it was spent.
std::optional<EvictionResult> CheckAndDecrement(Registry& registry, const std::string& pod_name,
                                                Json pdb, bool dry_run) {
  const std::string ns = object::Namespace(pdb);
  const std::string name = object::Name(pdb);
  for (int attempt = 0;; ++attempt) {
    Json status = ObjAt(pdb, "status");
    if (IntAt(status, "observedGeneration") < IntAt(ObjAt(pdb, "metadata"), "generation")) {
      return StillProcessing(name);
    }
    int64_t allowed = IntAt(status, "disruptionsAllowed");
    if (allowed < 0) throw PdbForbidden(name, "pdb disruptions allowed is negative");
    const Json& disrupted = ObjAt(status, "disruptedPods");
    if (disrupted.size() > kMaxDisruptedPodSize) {
      throw PdbForbidden(name,
                         "DisruptedPods map too big - too many evictions not confirmed by PDB "
                         "controller");
    }
    if (allowed == 0) {
      return TooManyRequests("The disruption budget " + name + " needs " +
                                 std::to_string(IntAt(status, "desiredHealthy")) +
                                 " healthy pods and has " +
                                 std::to_string(IntAt(status, "currentHealthy")) + " currently",
                             0);
    }
    if (dry_run) return std::nullopt;
    status["disruptionsAllowed"] = allowed - 1;
    if (allowed - 1 == 0) SetDisruptionAllowedCondition(status);
    if (!status.contains("disruptedPods") || !status["disruptedPods"].is_object()) {
      status["disruptedPods"] = Json::object();
    }
    status["disruptedPods"][pod_name] = NowRfc3339();
    Json next = pdb;
    next["status"] = status;
    try {
      // The PDB's resourceVersion rides along: a concurrent eviction or
      // controller write makes this a Conflict, and we decide again.
      registry.Update(PdbResource(), ns, name, next, "status", WriteOptions{});
      return std::nullopt;
    } catch (const Error& e) {
      if (e.code() != Code::kConflict || attempt + 1 >= kConflictRetries) throw;
    }
    pdb = registry.Get(PdbResource(), ns, name);
  }
}

// addConditionAndDeletePod: mark the pod as disrupted, then delete it.
void AddConditionAndDeletePod(Registry& registry, const Json& pod, DeleteOptions opts) {
  const std::string ns = object::Namespace(pod);
  const std::string name = object::Name(pod);
  if (!opts.dry_run) {
    for (int attempt = 0;; ++attempt) {
      Json latest = registry.Get(PodsResource(), ns, name);
      if (!opts.precondition_uid.empty() && opts.precondition_uid != object::Uid(latest)) break;
      if (!opts.precondition_resource_version.empty() &&
          opts.precondition_resource_version != object::ResourceVersion(latest)) {
        break;  // the delete below reports the conflict
      }
      Json& conditions = latest["status"]["conditions"];
      if (!conditions.is_array()) conditions = Json::array();
      Json cond = {{"type", "DisruptionTarget"},        {"status", "True"},
                   {"reason", "EvictionByEvictionAPI"}, {"message", "Eviction API: evicting"},
                   {"lastProbeTime", nullptr},          {"lastTransitionTime", NowRfc3339()}};
      bool found = false;
      for (auto& c : conditions) {
        if (!c.is_object() || StrAt(c, "type") != "DisruptionTarget") continue;
        if (StrAt(c, "status") == "True") cond["lastTransitionTime"] = c["lastTransitionTime"];
        c = cond;
        found = true;
      }
      if (!found) conditions.push_back(cond);
      try {
        Json updated = registry.Update(PodsResource(), ns, name, latest, "status", WriteOptions{});
        if (!opts.precondition_resource_version.empty()) {
          // We made the new revision ourselves: the precondition follows it.
          opts.precondition_resource_version = object::ResourceVersion(updated);
        }
        break;
      } catch (const Error& e) {
        if (e.code() != Code::kConflict || attempt + 1 >= kConflictRetries) throw;
      }
    }
  }
  registry.Delete(PodsResource(), ns, name, opts);
}

}  // namespace

EvictionResult EvictPod(Registry& registry, const std::string& ns, const std::string& name,
                        const Json& eviction, bool dry_run) {
  if (!eviction.is_object()) throw Error::BadRequest("not a Eviction object");
  if (object::Name(eviction) != name) {
    throw Error::BadRequest("name in URL does not match name in Eviction object");
  }
  const DeleteOptions original = DeleteOptionsOf(eviction, dry_run);
  const bool rv_unset = original.precondition_resource_version.empty();

  // Pods that may go without asking any budget. A conflict of the guarded
  // delete means the pod changed: look again (unless the caller pinned a
  // resourceVersion, which is then the caller's conflict).
  Json pod;
  for (int attempt = 0;; ++attempt) {
    pod = registry.Get(PodsResource(), ns, name);
    if (!CanIgnorePdb(pod)) break;
    DeleteOptions opts = original;
    if (ShouldEnforceResourceVersion(pod) && rv_unset) {
      opts.precondition_resource_version = object::ResourceVersion(pod);
    }
    try {
      AddConditionAndDeletePod(registry, pod, opts);
      return {201, Success(), std::nullopt};
    } catch (const Error& e) {
      if (e.code() != Code::kConflict || !rv_unset || attempt + 1 >= kConflictRetries) throw;
    }
  }

  std::vector<Json> budgets = MatchingBudgets(registry, pod);
  if (budgets.size() > 1) {
    return {500,
            {{"kind", "Status"},
             {"apiVersion", "v1"},
             {"metadata", Json::object()},
             {"status", "Failure"},
             {"message",
              "This pod has more than one PodDisruptionBudget, which the eviction subresource "
              "does not support."},
             {"code", 500}},
            std::nullopt};
  }
  bool guard_pod_version = false;
  std::string pdb_name;
  if (budgets.size() == 1) {
    const Json& pdb = budgets[0];
    pdb_name = object::Name(pdb);
    const Json& status = ObjAt(pdb, "status");
    bool healthy_budget = IntAt(status, "currentHealthy") >= IntAt(status, "desiredHealthy") &&
                          IntAt(status, "desiredHealthy") > 0;
    bool always_allow = StrAt(ObjAt(pdb, "spec"), "unhealthyPodEvictionPolicy") == "AlwaysAllow";
    if (!IsPodReady(pod) && (always_allow || healthy_budget)) {
      // An unready pod does not count as healthy: evicting it costs nothing.
      guard_pod_version = true;
    } else if (auto refused = CheckAndDecrement(registry, name, pdb, original.dry_run)) {
      return *refused;
    }
  }

  DeleteOptions opts = original;
  if (guard_pod_version) opts.precondition_resource_version = object::ResourceVersion(pod);
  try {
    AddConditionAndDeletePod(registry, pod, opts);
  } catch (const Error& e) {
    if (e.code() == Code::kConflict && guard_pod_version && rv_unset) {
      return StillProcessing(pdb_name);
    }
    throw;
  }
  return {201, Success(), std::nullopt};
}

}  // namespace kin::apiserver
