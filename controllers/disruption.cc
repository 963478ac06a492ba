#include "controllers/disruption.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <vector>

#include "base/error.h"
#include "client/object.h"
#include "client/selector.h"

namespace kin::controllers {

namespace {

using std::chrono::system_clock;

const ResourceInfo& Res(const char* group, const char* plural) {
  return *FindResource(group, "v1", plural);
}

const Json& Field(const Json& o, const char* key) {
  static const Json kNull;
  if (!o.is_object()) return kNull;
  auto it = o.find(key);
  return it == o.end() ? kNull : *it;
}
std::string StrField(const Json& o, const char* key) {
  const Json& v = Field(o, key);
  return v.is_string() ? v.get<std::string>() : "";
}
int64_t IntField(const Json& o, const char* key, int64_t fallback = 0) {
  const Json& v = Field(o, key);
  return v.is_number_integer() ? v.get<int64_t>() : fallback;
}

// nonTerminatingPodHasStaleDisruptionCondition's test: the pod's
// DisruptionTarget condition when it is True, not the kubelet's, on a pod
// that is not terminal; nullptr otherwise.
const Json* ResettableDisruptionTarget(const Json& pod) {
  const Json* cond = object::Condition(pod, "DisruptionTarget");
  if (!cond || StrField(*cond, "status") != "True" ||
      StrField(*cond, "reason") == "TerminationByKubelet" || IsPodTerminal(pod)) {
    return nullptr;
  }
  return cond;
}

// A PDB's selector as getPdbsForPod reads it (policy/v1): unset or invalid
// guards no pod; set and empty ({}) guards every pod of the namespace, as
// the sync counts them, so pod events must queue such a PDB too (a race
// under load left one stuck at the pods it saw first).
std::optional<LabelSelector> GuardingSelector(const Json& pdb) {
  const Json& sel = Field(Field(pdb, "spec"), "selector");
  if (!sel.is_object()) return std::nullopt;
  try {
    return LabelSelector::FromJson(sel);
  } catch (const Error&) {
    return std::nullopt;
  }
}

// Something a sync could not work out; it becomes the SyncFailed condition.
struct SyncError {
  std::string message;
};

}  // namespace

DisruptionController::DisruptionController(SharedInformerFactory& informers, Client& client,
                                           DisruptionOptions opts)
    : pdbs_(informers.For(Res("policy", "poddisruptionbudgets"))),
      pods_(informers.For(PodsResource())),
      rcs_(informers.For(Res("", "replicationcontrollers"))),
      rss_(informers.For(Res("apps", "replicasets"))),
      deployments_(informers.For(Res("apps", "deployments"))),
      statefulsets_(informers.For(Res("apps", "statefulsets"))),
      identity_(client, "disruption-controller"),
      opts_(std::move(opts)),
      queue_(WorkQueueOptions{.clock = opts_.clock}),
      stale_queue_(WorkQueueOptions{.clock = opts_.clock}),
      workers_("disruption", queue_, [this](const std::string& key) { return Sync(key); }),
      stale_workers_("disruption-stale-pods", stale_queue_,
                     [this](const std::string& key) { return SyncStalePod(key); }) {}

DisruptionController::~DisruptionController() { Stop(); }

void DisruptionController::Start() {
  if (!run_state_.TryStart()) return;
  subscriptions_.Add(pods_, HandlersFrom([this](const Json* old, const Json* now) {
    if (!now) {
      EnqueuePdbsOf(*old);
      return;
    }
    if (old && object::Labels(*old) != object::Labels(*now)) EnqueuePdbsOf(*old);
    EnqueuePdbsOf(*now);
    CheckStaleCondition(*now);
  }));
  // PDBs are queued on add and update only.
  subscriptions_.Add(pdbs_, HandlersFrom([this](const Json*, const Json* now) {
    if (now) queue_.Add(object::Key(*now));
  }));
  std::vector<const Informer*> caches = {&pdbs_, &pods_,        &rcs_,
                                         &rss_,  &deployments_, &statefulsets_};
  workers_.Start(opts_.workers, caches);
  stale_workers_.Start(1, {&pods_});
}

void DisruptionController::Stop() {
  if (!run_state_.TryStop()) return;
  workers_.Stop();
  stale_workers_.Stop();
  subscriptions_.RemoveAll();
}

void DisruptionController::EnqueuePdbsOf(const Json& pod) {
  for (const ObjectPtr& pdb : pdbs_.ByIndex(kNamespaceIndex, object::Namespace(pod))) {
    auto sel = GuardingSelector(*pdb);
    if (sel && sel->Matches(object::Labels(pod))) queue_.Add(object::Key(*pdb));
  }
}

// nonTerminatingPodHasStaleDisruptionCondition: queue the pod for when its
// DisruptionTarget condition goes stale.
void DisruptionController::CheckStaleCondition(const Json& pod) {
  if (object::IsBeingDeleted(pod)) return;
  const Json* cond = ResettableDisruptionTarget(pod);
  if (!cond) return;
  auto since = object::ParseRfc3339(StrField(*cond, "lastTransitionTime"));
  auto wait = std::chrono::duration_cast<Clock::Duration>(
      opts_.deletion_timeout - (since ? opts_.now() - *since : system_clock::duration::zero()));
  stale_queue_.AddAfter(object::Key(pod), std::max(wait, Clock::Duration::zero()));
}

Result DisruptionController::SyncStalePod(const std::string& key) {
  ObjectPtr pod = pods_.LookupKey(key);
  if (!pod || object::IsBeingDeleted(*pod)) return Result::Done();
  const Json* cond = ResettableDisruptionTarget(*pod);
  if (!cond) return Result::Done();
  auto since = object::ParseRfc3339(StrField(*cond, "lastTransitionTime"));
  if (since) {
    auto left = opts_.deletion_timeout - (opts_.now() - *since);
    if (left > system_clock::duration::zero()) {
      return Result::After(std::chrono::duration_cast<Clock::Duration>(left));
    }
  }
  // UpdatePodCondition with {DisruptionTarget, False}: the whole condition
  // is replaced, the transition time is now.
  Json next = *pod;
  for (auto& c : next["status"]["conditions"]) {
    if (StrField(c, "type") != "DisruptionTarget") continue;
    c = {{"type", "DisruptionTarget"},
         {"status", "False"},
         {"lastProbeTime", nullptr},
         {"lastTransitionTime", object::FormatRfc3339(opts_.now())}};
  }
  identity_.client().Update(PodsResource(), object::Namespace(*pod), next, "status");
  return Result::Done();
}

Result DisruptionController::Sync(const std::string& key) {
  ObjectPtr pdb_ptr = pdbs_.LookupKey(key);
  if (!pdb_ptr) return Result::Done();
  const Json& pdb = *pdb_ptr;
  const std::string ns = object::Namespace(pdb);
  const Json& spec = Field(pdb, "spec");
  const system_clock::time_point now = opts_.now();
  const Json& old_status = Field(pdb, "status");

  Json status = Json::object();
  std::optional<system_clock::time_point> recheck;
  std::optional<SyncError> failure;
  try {
    // getPodsForPdb: nil selects nothing, {} everything.
    std::vector<ObjectPtr> pods;
    const Json& sel_json = Field(spec, "selector");
    if (sel_json.is_object()) {
      LabelSelector sel;
      try {
        sel = LabelSelector::FromJson(sel_json, "spec.selector");
      } catch (const Error& e) {
        identity_.events().Warning(pdb, "NoPods", "Failed to get pods: " + e.message());
        throw SyncError{e.message()};
      }
      for (ObjectPtr& p : pods_.ByIndex(kNamespaceIndex, ns)) {
        if (sel.Matches(object::Labels(*p))) pods.push_back(std::move(p));
      }
    }
    if (pods.empty()) identity_.events().Normal(pdb, "NoPods", "No matching pods found");

    // getExpectedPodCount.
    int64_t expected = 0, desired = 0;
    std::vector<std::string> unmanaged;
    auto expected_scale = [&]() -> int64_t {
      std::map<std::string, int64_t> scale_by_uid;
      for (const ObjectPtr& pod : pods) {
        const Json* ref = object::ControllerOf(*pod);
        if (!ref) {
          unmanaged.push_back(object::Name(*pod));
          continue;
        }
        std::string uid = StrField(*ref, "uid");
        if (scale_by_uid.count(uid)) continue;
        std::string kind = StrField(*ref, "kind"), name = StrField(*ref, "name");
        std::string api_version = StrField(*ref, "apiVersion");
        std::string group = api_version.find('/') == std::string::npos
                                ? ""
                                : api_version.substr(0, api_version.find('/'));
        bool found = false;
        auto take = [&](const ObjectPtr& owner) {
          if (!owner || object::Uid(*owner) != uid) return;
          scale_by_uid[uid] = IntField(Field(*owner, "spec"), "replicas", 1);
          found = true;
        };
        if (kind == "ReplicationController" && group.empty()) {
          take(rcs_.Lookup(ns, name));
        } else if (kind == "ReplicaSet" && group == "apps") {
          ObjectPtr rs = rss_.Lookup(ns, name);
          if (rs && object::Uid(*rs) == uid) {
            const Json* rs_ref = object::ControllerOf(*rs);
            if (rs_ref && StrField(*rs_ref, "kind") == "Deployment") {
              // The Deployment's scale counts, once for all its ReplicaSets.
              ObjectPtr d = deployments_.Lookup(ns, StrField(*rs_ref, "name"));
              if (d && object::Uid(*d) == StrField(*rs_ref, "uid")) {
                scale_by_uid[object::Uid(*d)] = IntField(Field(*d, "spec"), "replicas", 1);
                scale_by_uid[uid] = 0;  // seen: this ReplicaSet adds nothing itself
                found = true;
              }
            } else {
              take(rs);
            }
          }
        } else if (kind == "StatefulSet" && group == "apps") {
          take(statefulsets_.Lookup(ns, name));
        }
        if (!found) throw SyncError{"found no controllers for pod \"" + object::Name(*pod) + "\""};
      }
      int64_t sum = 0;
      for (const auto& [uid, n] : scale_by_uid) sum += n;
      return sum;
    };
    const Json& max_unavailable = Field(spec, "maxUnavailable");
    const Json& min_available = Field(spec, "minAvailable");
    auto scaled = [&](const Json& v, int64_t total) {
      auto n = ScaledValue(v, total, true);
      if (!n) throw SyncError{"invalid value for IntOrString: " + v.dump()};
      return *n;
    };
    try {
      if (!max_unavailable.is_null()) {
        expected = expected_scale();
        desired = std::max<int64_t>(0, expected - scaled(max_unavailable, expected));
      } else if (min_available.is_number_integer()) {
        desired = min_available.get<int64_t>();
        expected = static_cast<int64_t>(pods.size());
      } else if (min_available.is_string()) {
        expected = expected_scale();
        desired = scaled(min_available, expected);
      }
    } catch (const SyncError& e) {
      identity_.events().Warning(pdb, "CalculateExpectedPodCountFailed",
                                 "Failed to calculate the number of expected pods: " + e.message);
      throw;
    }
    if (!unmanaged.empty()) {
      std::string selector = "<nil>";
      if (sel_json.is_object()) selector = LabelSelector::FromJson(sel_json).ToString();
      identity_.events().Warning(
          pdb, "UnmanagedPods",
          "Pods selected by this PodDisruptionBudget (selector: " + selector +
              ") were found to be unmanaged. As a result, the status of the PDB cannot be "
              "calculated correctly, which may result in undefined behavior. To account for "
              "these pods please set \".spec.minAvailable\" field of the PDB to an integer "
              "value.");
    }

    // buildDisruptedPodMap: keep entries of live pods that have not expired.
    Json disrupted = Json::object();
    const Json& recorded = Field(old_status, "disruptedPods");
    if (recorded.is_object()) {
      for (const ObjectPtr& pod : pods) {
        if (object::IsBeingDeleted(*pod)) continue;
        const Json& when = Field(recorded, object::Name(*pod).c_str());
        if (!when.is_string()) continue;
        auto t = object::ParseRfc3339(when.get<std::string>());
        if (!t) continue;
        auto expires = *t + opts_.deletion_timeout;
        if (expires < now) {
          identity_.events().Warning(*pod, "NotDeleted",
                                     "Pod was expected by PDB " + ns + "/" + ns +
                                         " to be deleted but it wasn't");  // sic, as upstream
        } else {
          disrupted[object::Name(*pod)] = when;
          if (!recheck || expires < *recheck) recheck = expires;
        }
      }
    }
    // countHealthyPods.
    int64_t healthy = 0;
    for (const ObjectPtr& pod : pods) {
      if (object::IsBeingDeleted(*pod)) continue;
      const Json& when = Field(disrupted, object::Name(*pod).c_str());
      if (when.is_string()) {
        auto t = object::ParseRfc3339(when.get<std::string>());
        if (t && *t + opts_.deletion_timeout > now) continue;
      }
      if (IsPodReady(*pod)) ++healthy;
    }
    int64_t allowed = healthy - desired;
    if (expected <= 0 || allowed <= 0) allowed = 0;
    status = {{"observedGeneration", IntField(Field(pdb, "metadata"), "generation")},
              {"disruptionsAllowed", allowed},
              {"currentHealthy", healthy},
              {"desiredHealthy", desired},
              {"expectedPods", expected}};
    if (!disrupted.empty()) status["disruptedPods"] = disrupted;
  } catch (const SyncError& e) {
    failure = e;
  }

  // The DisruptionAllowed condition (UpdateDisruptionAllowedCondition, or
  // failSafe's SyncFailed), its transition time kept while its status holds.
  Json cond;
  if (failure) {
    // failSafe: only disruptionsAllowed changes, the rest stays as it was.
    status = old_status.is_object() ? old_status : Json::object();
    status["disruptionsAllowed"] = 0;
    for (const char* k : {"currentHealthy", "desiredHealthy", "expectedPods"}) {
      if (!status.contains(k)) status[k] = 0;
    }
    cond = {{"type", "DisruptionAllowed"},
            {"status", "False"},
            {"reason", "SyncFailed"},
            {"message", failure->message}};
  } else {
    bool allowed = status["disruptionsAllowed"].get<int64_t>() > 0;
    cond = {{"type", "DisruptionAllowed"},
            {"status", allowed ? "True" : "False"},
            {"reason", allowed ? "SufficientPods" : "InsufficientPods"},
            {"message", ""}};
  }
  cond["observedGeneration"] = IntField(status, "observedGeneration");
  cond["lastTransitionTime"] = object::FormatRfc3339(now);
  Json conditions = Json::array();
  bool placed = false;
  const Json& old_conditions = Field(old_status, "conditions");
  if (old_conditions.is_array()) {
    for (const auto& c : old_conditions) {
      if (StrField(c, "type") != "DisruptionAllowed") {
        conditions.push_back(c);
        continue;
      }
      if (StrField(c, "status") == cond["status"] && c.contains("lastTransitionTime")) {
        cond["lastTransitionTime"] = c["lastTransitionTime"];
      }
      conditions.push_back(cond);
      placed = true;
    }
  }
  if (!placed) conditions.push_back(cond);
  status["conditions"] = conditions;

  if (status != old_status) {
    Json next = pdb;
    next["status"] = status;
    // Checked against the cached resourceVersion: a Conflict (an eviction
    // spent the budget meanwhile) retries on the fresher cache.
    identity_.client().Update(Res("policy", "poddisruptionbudgets"), ns, next, "status");
  }
  if (recheck) {
    return Result::After(std::chrono::duration_cast<Clock::Duration>(*recheck - now) +
                         std::chrono::milliseconds(10));
  }
  return Result::Done();
}

}  // namespace kin::controllers
