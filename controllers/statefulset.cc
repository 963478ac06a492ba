#include "controllers/statefulset.h"

#include <algorithm>
#include <map>
#include <optional>

#include "base/error.h"
#include "base/log.h"
#include "client/object.h"
#include "client/selector.h"

namespace kin::controllers {
namespace {

constexpr char kApiVersion[] = "apps/v1";
constexpr char kKind[] = "StatefulSet";
constexpr char kComponent[] = "statefulset-controller";

const ResourceInfo& StatefulSets() { return *FindResource("apps", "v1", "statefulsets"); }
const ResourceInfo* Claims() { return FindResource("", "v1", "persistentvolumeclaims"); }

const Json& Empty() {
  static const Json empty = Json::object();
  return empty;
}
const Json& Obj(const Json& j, const char* key) {
  if (!j.is_object()) return Empty();
  auto it = j.find(key);
  return it == j.end() || !it->is_object() ? Empty() : *it;
}
std::string Str(const Json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}
int64_t Int(const Json& j, const char* key, int64_t def = 0) {
  if (!j.is_object()) return def;
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : def;
}
std::vector<const Json*> Items(const Json& j, const char* key) {
  std::vector<const Json*> out;
  if (!j.is_object()) return out;
  auto it = j.find(key);
  if (it != j.end() && it->is_array()) {
    for (const auto& e : *it) {
      if (e.is_object()) out.push_back(&e);
    }
  }
  return out;
}

std::string PodName(const Json& set, int64_t ordinal) {
  return object::Name(set) + "-" + std::to_string(ordinal);
}
std::string ClaimName(const Json& set, const std::string& claim, int64_t ordinal) {
  return claim + "-" + PodName(set, ordinal);
}

bool IsCreated(const Json* pod) { return pod != nullptr; }
bool IsTerminating(const Json& pod) { return object::IsBeingDeleted(pod); }
bool IsRunningAndReady(const Json& pod) { return PodPhase(pod) == "Running" && IsPodReady(pod); }
std::string Revision(const Json& pod) {
  return Str(object::Labels(pod), kControllerRevisionHashLabel);
}

// identityMatches: the labels that make a pod this ordinal's.
bool IdentityMatches(const Json& set, const Json& pod, int64_t ordinal) {
  const Json& labels = object::Labels(pod);
  return object::Name(pod) == PodName(set, ordinal) &&
         Str(labels, kStatefulSetPodNameLabel) == object::Name(pod) &&
         Str(labels, kPodIndexLabel) == std::to_string(ordinal);
}

}  // namespace

int64_t StatefulPodOrdinal(const std::string& set_name, const std::string& pod_name) {
  if (pod_name.size() <= set_name.size() + 1 || pod_name.compare(0, set_name.size(), set_name) ||
      pod_name[set_name.size()] != '-') {
    return -1;
  }
  std::string digits = pod_name.substr(set_name.size() + 1);
  if (digits.size() > 9 || !std::all_of(digits.begin(), digits.end(), ::isdigit)) return -1;
  if (digits.size() > 1 && digits[0] == '0') return -1;
  return std::stoll(digits);
}

Json NewStatefulSetPod(const Json& set, int64_t ordinal, const std::string& revision) {
  Json pod = PodFromTemplate(set, kApiVersion, kKind);
  std::string name = PodName(set, ordinal);
  pod["metadata"]["name"] = name;
  Json& labels = pod["metadata"]["labels"];
  labels[kStatefulSetPodNameLabel] = name;
  labels[kPodIndexLabel] = std::to_string(ordinal);
  if (!revision.empty()) labels[kControllerRevisionHashLabel] = revision;
  Json& spec = pod["spec"];
  if (!spec.is_object()) spec = Json::object();
  spec["hostname"] = name;
  std::string service = Str(Obj(set, "spec"), "serviceName");
  if (!service.empty()) spec["subdomain"] = service;
  // updateStorage: each claim template's volume refers to this ordinal's claim.
  auto claims = Items(Obj(set, "spec"), "volumeClaimTemplates");
  if (!claims.empty()) {
    Json volumes = Json::array();
    std::set<std::string> claimed;
    for (const Json* c : claims) {
      std::string cname = object::Name(*c);
      claimed.insert(cname);
      volumes.push_back(
          {{"name", cname},
           {"persistentVolumeClaim", {{"claimName", ClaimName(set, cname, ordinal)}}}});
    }
    for (const Json* v : Items(spec, "volumes")) {
      if (!claimed.count(Str(*v, "name"))) volumes.push_back(*v);
    }
    spec["volumes"] = volumes;
  }
  return pod;
}

StatefulSetController::StatefulSetController(SharedInformerFactory& informers, Client& client,
                                             StatefulSetOptions opts)
    : opts_(std::move(opts)),
      clock_(opts_.clock ? *opts_.clock : RealClock()),
      wall_(clock_),
      identity_(client, kComponent),
      sets_(informers.For(StatefulSets())),
      pods_(informers.For(PodsResource())),
      history_(opts_.history ? std::move(opts_.history)
                             : NewRevisionStore(informers, identity_.client())),
      queue_(WorkQueueOptions{.clock = &clock_}),
      workers_("statefulset", queue_, [this](const std::string& key) { return Sync(key); }) {}

StatefulSetController::~StatefulSetController() { Stop(); }

void StatefulSetController::Start() {
  if (!run_state_.TryStart()) return;
  subscriptions_.Add(sets_, HandlersFrom([this](const Json* old, const Json* now) {
    if (!now) history_->ForgetParent(object::Uid(*old));
    queue_.Add(object::Key(now ? *now : *old));
  }));
  subscriptions_.Add(pods_, EnqueueControllerHandlers(queue_, kApiVersion, kKind));
  std::vector<const Informer*> wait = {&sets_, &pods_};
  if (history_->informer()) wait.push_back(history_->informer());
  workers_.Start(opts_.workers, wait);
}

void StatefulSetController::Stop() {
  if (!run_state_.TryStop()) return;
  workers_.Stop();
  subscriptions_.RemoveAll();
}

Result StatefulSetController::Sync(const std::string& key) {
  auto [ns, name] = object::SplitKey(key);
  ObjectPtr cached = sets_.Lookup(ns, name);
  if (!cached) return Result::Done();
  const Json set = WithKind(*cached, kApiVersion, kKind);
  const Json& spec = Obj(set, "spec");
  const Json& status = Obj(set, "status");

  LabelSelector selector;
  try {
    selector = LabelSelector::FromJson(Obj(spec, "selector"), "spec.selector");
  } catch (const Error& e) {
    identity_.events().Warning(set, "InvalidSelector", e.message());
    return Result::Done();
  }

  // Revisions: the template's (update) and the one pods were last rolled to (current).
  RevisionSync revs = SyncUpdateRevision(
      *history_, set, kApiVersion, kKind,
      [&](int64_t cc) { return ComputeHash(TemplatePatch(set), cc); },
      Int(status, "collisionCount"));
  const Json update_rev = revs.update;
  Json current_rev = update_rev;
  for (const Json& r : revs.all) {
    if (object::Name(r) == Str(status, "currentRevision")) current_rev = r;
  }
  const std::string update_name = object::Name(update_rev);
  const std::string current_name = object::Name(current_rev);
  const Json current_set = ApplyRevision(set, current_rev);
  const Json update_set = ApplyRevision(set, update_rev);

  const int64_t replicas = std::max<int64_t>(0, Int(spec, "replicas", 1));
  const int64_t start = std::max<int64_t>(0, Int(Obj(spec, "ordinals"), "start", 0));
  const int64_t min_ready = Int(spec, "minReadySeconds");
  const bool monotonic = Str(spec, "podManagementPolicy") != "Parallel";
  const Json& strategy = Obj(spec, "updateStrategy");
  const bool rolling = Str(strategy, "type") != "OnDelete";
  const Json& ru = Obj(strategy, "rollingUpdate");
  const bool has_ru = strategy.contains("rollingUpdate") && strategy["rollingUpdate"].is_object();
  const int64_t partition = Int(ru, "partition", 0);
  const auto now = wall_.Now();

  // Pods by ordinal: replicas in range, condemned beyond it.
  std::vector<ObjectPtr> slots(static_cast<size_t>(replicas));
  std::map<int64_t, ObjectPtr> condemned;  // ordinal -> pod
  std::vector<ObjectPtr> all;
  for (const ObjectPtr& p : pods_.ByIndex(kOwnerUidIndex, object::Uid(set))) {
    if (!object::IsControlledBy(*p, set) || !selector.Matches(object::Labels(*p))) continue;
    int64_t ord = StatefulPodOrdinal(name, object::Name(*p));
    if (ord < 0) continue;
    all.push_back(p);
    if (ord >= start && ord < start + replicas) {
      slots[static_cast<size_t>(ord - start)] = p;
    } else {
      condemned[ord] = p;
    }
  }

  // Status as the cache has it (computeReplicaStatus).
  int64_t st_replicas = 0, ready = 0, available = 0, current = 0, updated = 0;
  std::optional<std::chrono::seconds> recheck;
  for (const ObjectPtr& p : all) {
    ++st_replicas;
    if (IsRunningAndReady(*p)) {
      ++ready;
      if (IsPodAvailable(*p, min_ready, now)) {
        ++available;
      } else if (auto wait = UntilAvailable(*p, min_ready, now)) {
        recheck = recheck ? std::min(*recheck, *wait) : *wait;
      }
    }
    if (!IsTerminating(*p)) {
      if (Revision(*p) == current_name) ++current;
      if (Revision(*p) == update_name) ++updated;
    }
  }
  std::string status_current = current_name;
  int64_t status_current_replicas = current;
  if (rolling && updated == st_replicas && ready == st_replicas) {
    // completeRollingUpdate
    status_current = update_name;
    status_current_replicas = updated;
  }

  std::vector<std::string> errors;
  auto record = [&](const std::string& verb, const std::string& pod, const Error* err) {
    std::string lower = verb;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    if (err) {
      identity_.events().Warning(set, "Failed" + verb,
                                 lower + " Pod " + pod + " in StatefulSet " + name +
                                     " failed error: " + err->message());
      errors.push_back(lower + " Pod " + pod + ": " + err->message());
    } else {
      identity_.events().Normal(set, "Successful" + verb,
                                lower + " Pod " + pod + " in StatefulSet " + name + " successful");
    }
  };
  auto delete_pod = [&](const Json& pod) {
    try {
      DeleteOptions o;
      o.precondition_uid = object::Uid(pod);
      identity_.client().Delete(PodsResource(), ns, object::Name(pod), o);
      record("Delete", object::Name(pod), nullptr);
    } catch (const Error& e) {
      if (e.code() != Code::kNotFound) record("Delete", object::Name(pod), &e);
    }
  };
  auto create_claims = [&](int64_t ordinal) {
    const ResourceInfo* claims = Claims();
    if (!claims) return true;  // the API has no claims to make
    for (const Json* t : Items(spec, "volumeClaimTemplates")) {
      std::string cname = ClaimName(set, object::Name(*t), ordinal);
      Json claim = *t;
      claim.erase("status");
      claim["apiVersion"] = "v1";
      claim["kind"] = "PersistentVolumeClaim";
      claim["metadata"]["name"] = cname;
      claim["metadata"]["namespace"] = ns;
      for (auto& [k, v] : Obj(Obj(spec, "selector"), "matchLabels").items()) {
        claim["metadata"]["labels"][k] = v;
      }
      try {
        identity_.client().Create(*claims, ns, claim);
        identity_.events().Normal(set, "SuccessfulCreate",
                                  "create Claim " + cname + " Pod " + PodName(set, ordinal) +
                                      " in StatefulSet " + name + " success");
      } catch (const Error& e) {
        if (e.code() == Code::kAlreadyExists) continue;
        identity_.events().Warning(set, "FailedCreate",
                                   "create Claim " + cname + " for Pod " +
                                       PodName(set, ordinal) + " in StatefulSet " + name +
                                       " failed error: " + e.message());
        errors.push_back("create Claim " + cname + ": " + e.message());
        return false;
      }
    }
    return true;
  };
  auto create_pod = [&](int64_t ordinal) {
    // newVersionedStatefulSetPod: below the partition (or, without a
    // rollingUpdate, below the current replicas) pods stay at the current revision.
    bool at_current =
        rolling && ((!has_ru && ordinal - start < current) || (has_ru && ordinal - start < partition));
    Json pod = at_current ? NewStatefulSetPod(current_set, ordinal, current_name)
                          : NewStatefulSetPod(update_set, ordinal, update_name);
    pod["metadata"]["ownerReferences"] =
        Json::array({object::NewControllerRef(set, kApiVersion, kKind)});
    if (!create_claims(ordinal)) return;
    try {
      identity_.client().Create(PodsResource(), ns, pod);
      record("Create", object::Name(pod), nullptr);
    } catch (const Error& e) {
      if (e.code() == Code::kAlreadyExists) {
        // Ours and not yet cached is fine; anyone else's blocks the ordinal.
        try {
          Json existing = identity_.client().Get(PodsResource(), ns, object::Name(pod));
          if (object::IsControlledBy(existing, set)) return;
        } catch (const Error&) {
        }
      }
      record("Create", object::Name(pod), &e);
    }
  };

  auto write_status = [&]() {
    auto opt = [](int64_t v) { return v ? Json(v) : Json(); };
    Json want = {{"replicas", st_replicas},
                 {"readyReplicas", opt(ready)},
                 {"currentReplicas", opt(status_current_replicas)},
                 {"updatedReplicas", opt(updated)},
                 {"availableReplicas", available},
                 {"currentRevision", status_current},
                 {"updateRevision", update_name},
                 {"observedGeneration", opt(Int(Obj(set, "metadata"), "generation"))},
                 {"collisionCount",
                  revs.collision_count ? Json(revs.collision_count) : Json()}};
    bool changed = false;
    for (auto it = want.begin(); it != want.end(); ++it) {
      auto have = status.find(it.key());
      bool has = have != status.end() && !have->is_null();
      if (it->is_null() ? has : (!has || *have != *it)) changed = true;
    }
    if (changed) {
      identity_.client().Patch(StatefulSets(), ns, name, PatchType::kMerge, {{"status", want}},
                               "status");
    }
  };
  auto finish = [&]() -> Result {
    write_status();
    // History: current, update, what pods use, and revisionHistoryLimit more.
    std::set<std::string> live = {current_name, update_name, status_current};
    for (const ObjectPtr& p : all) live.insert(Revision(*p));
    try {
      TruncateHistory(*history_, revs.all, live, Int(spec, "revisionHistoryLimit", 10));
    } catch (const Error& e) {
      errors.push_back("cleaning up revisions: " + e.message());
    }
    if (!errors.empty()) {
      throw Error::Internal("syncing stateful set " + key + ": " + errors.front());
    }
    if (recheck) return Result::After(*recheck);
    return Result::Done();
  };

  if (object::IsBeingDeleted(set)) return finish();

  // The first unhealthy pod, by ordinal, among all of them.
  const Json* first_unhealthy = nullptr;
  {
    std::map<int64_t, const Json*> by_ord;
    for (const ObjectPtr& p : all) by_ord[StatefulPodOrdinal(name, object::Name(*p))] = p.get();
    for (const auto& [ord, p] : by_ord) {
      if (!IsRunningAndReady(*p) || IsTerminating(*p)) {
        first_unhealthy = p;
        break;
      }
    }
  }

  // Replicas in ordinal order.
  for (int64_t i = 0; i < replicas; ++i) {
    const int64_t ord = start + i;
    const ObjectPtr& p = slots[static_cast<size_t>(i)];
    if (!IsCreated(p.get())) {
      create_pod(ord);
      if (monotonic) return finish();
      continue;
    }
    if (IsPodTerminal(*p)) {
      // Made again under the same name once this one is gone.
      if (!IsTerminating(*p)) delete_pod(*p);
      if (monotonic) return finish();
      continue;
    }
    if (IsTerminating(*p) || !IsRunningAndReady(*p) || !IsPodAvailable(*p, min_ready, now)) {
      if (monotonic) return finish();
      continue;
    }
    if (!IdentityMatches(set, *p, ord)) {
      Json patch = {{"metadata",
                     {{"labels",
                       {{kStatefulSetPodNameLabel, object::Name(*p)},
                        {kPodIndexLabel, std::to_string(ord)}}}}}};
      try {
        identity_.client().Patch(PodsResource(), ns, object::Name(*p), PatchType::kMerge, patch);
        record("Update", object::Name(*p), nullptr);
      } catch (const Error& e) {
        record("Update", object::Name(*p), &e);
      }
    }
  }

  // Scale-down: the highest ordinal first.
  for (auto it = condemned.rbegin(); it != condemned.rend(); ++it) {
    const Json& p = *it->second;
    if (IsTerminating(p)) {
      if (monotonic) return finish();
      continue;
    }
    if (monotonic && (!IsRunningAndReady(p) || !IsPodAvailable(p, min_ready, now)) &&
        &p != first_unhealthy) {
      return finish();
    }
    delete_pod(p);
    if (monotonic) return finish();
  }

  if (!rolling) return finish();  // OnDelete: pods change when their users delete them

  // Rolling update: the highest ordinal not at the update revision goes first.
  for (int64_t i = replicas - 1; i >= partition && i >= 0; --i) {
    const ObjectPtr& p = slots[static_cast<size_t>(i)];
    if (!p) return finish();
    if (Revision(*p) != update_name && !IsTerminating(*p)) {
      delete_pod(*p);
      return finish();
    }
    if (!IsRunningAndReady(*p) || IsTerminating(*p) || !IsPodAvailable(*p, min_ready, now)) {
      return finish();
    }
  }
  return finish();
}

}  // namespace kin::controllers
