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

// ---- persistentVolumeClaimRetentionPolicy (upstream's stateful_set_utils.go) ----

struct RetentionPolicy {
  bool delete_when_deleted = false;
  bool delete_when_scaled = false;
};

// getPersistentVolumeClaimRetentionPolicy; a value other than Retain or
// Delete (validation refuses them) counts as Retain for both, as upstream's
// "Unknown policy, treating as Retain".
RetentionPolicy PolicyOf(const Json& set) {
  const Json& p = Obj(Obj(set, "spec"), "persistentVolumeClaimRetentionPolicy");
  auto known = [](const std::string& v) { return v.empty() || v == "Retain" || v == "Delete"; };
  if (!known(Str(p, "whenDeleted")) || !known(Str(p, "whenScaled"))) return {};
  return {Str(p, "whenDeleted") == "Delete", Str(p, "whenScaled") == "Delete"};
}

// An owner as claims refer to it: the set, or one of its pods (a pod not
// yet created has no uid).
struct Owner {
  std::string api_version, kind, name, uid;
};
Owner SetOwner(const Json& set) { return {kApiVersion, kKind, object::Name(set), object::Uid(set)}; }
Owner PodOwner(const Json& pod) { return {"v1", "Pod", object::Name(pod), object::Uid(pod)}; }

std::vector<const Json*> OwnerRefs(const Json& obj) { return Items(Obj(obj, "metadata"), "ownerReferences"); }

// matchesRef: the same name and kind (any uid).
bool MatchesRef(const Json& ref, const Owner& o) {
  return Str(ref, "apiVersion") == o.api_version && Str(ref, "kind") == o.kind &&
         Str(ref, "name") == o.name;
}
bool HasOwnerRef(const Json& claim, const Owner& o) {
  if (o.uid.empty()) return false;
  for (const Json* ref : OwnerRefs(claim)) {
    if (Str(*ref, "uid") == o.uid) return true;
  }
  return false;
}
// hasStaleOwnerRef: a reference to an object of that name whose uid is not
// this one's (an earlier set or pod, or a pod not yet created).
bool HasStaleOwnerRef(const Json& claim, const Owner& o) {
  for (const Json* ref : OwnerRefs(claim)) {
    if (MatchesRef(*ref, o)) return Str(*ref, "uid") != o.uid;
  }
  return false;
}
bool IsControllerRef(const Json& ref) {
  auto it = ref.find("controller");
  return it != ref.end() && it->is_boolean() && it->get<bool>();
}
// hasUnexpectedController: with a Delete policy, a controller of the claim
// other than the set or the pod (or a stale reference to either).
bool HasUnexpectedController(const Json& claim, const Owner& set, const Owner& pod,
                             const RetentionPolicy& policy) {
  if (!policy.delete_when_deleted && !policy.delete_when_scaled) return false;
  for (const Json* ref : OwnerRefs(claim)) {
    if (MatchesRef(*ref, set)) {
      if (Str(*ref, "uid") != set.uid) return true;
      continue;
    }
    if (MatchesRef(*ref, pod)) {
      if (Str(*ref, "uid") != pod.uid) return true;
      continue;
    }
    if (IsControllerRef(*ref)) return true;
  }
  return false;
}
// hasNonControllerOwner: the set or pod owns the claim without controlling it.
bool HasNonControllerOwner(const Json& claim, const Owner& set, const Owner& pod) {
  for (const Json* ref : OwnerRefs(claim)) {
    const std::string uid = Str(*ref, "uid");
    if (!uid.empty() && (uid == set.uid || uid == pod.uid) && !IsControllerRef(*ref)) return true;
  }
  return false;
}

// isClaimOwnerUpToDate: Retain/Retain no reference of ours; whenDeleted
// Delete the set's; whenScaled Delete the pod's once it is scaled down
// (out of the set's ordinals), and then not the set's. Claims with stale
// references or another controller are not touched.
bool ClaimOwnerUpToDate(const Json& claim, const Owner& set, const Owner& pod, bool scaled_down,
                        const RetentionPolicy& policy) {
  if (HasStaleOwnerRef(claim, set) || HasStaleOwnerRef(claim, pod)) return true;
  if (HasUnexpectedController(claim, set, pod, policy)) {
    return !(HasOwnerRef(claim, set) || HasOwnerRef(claim, pod));
  }
  if (HasNonControllerOwner(claim, set, pod)) return false;
  const bool want_set = policy.delete_when_deleted && !(policy.delete_when_scaled && scaled_down);
  const bool want_pod = policy.delete_when_scaled && scaled_down;
  return HasOwnerRef(claim, set) == want_set && HasOwnerRef(claim, pod) == want_pod;
}

// updateClaimOwnerRefForSetAndPod: the claim's ownerReferences with ours
// scrubbed and set again as the policy wants, as controller references.
Json ClaimOwnerRefsFor(const Json& claim, const Owner& set, const Owner& pod, bool scaled_down,
                       const RetentionPolicy& policy) {
  const bool unexpected = HasUnexpectedController(claim, set, pod, policy);
  Json refs = Json::array();
  for (const Json* ref : OwnerRefs(claim)) {
    if (!MatchesRef(*ref, set) && !MatchesRef(*ref, pod)) refs.push_back(*ref);
  }
  if (unexpected) return refs;
  auto add = [&](const Owner& o) {
    for (const Json& ref : refs) {
      if (Str(ref, "uid") == o.uid) return;
    }
    refs.push_back({{"apiVersion", o.api_version},
                    {"kind", o.kind},
                    {"name", o.name},
                    {"uid", o.uid},
                    {"controller", true},
                    {"blockOwnerDeletion", true}});
  };
  if (policy.delete_when_scaled && scaled_down) {
    add(pod);
  } else if (policy.delete_when_deleted) {
    add(set);
  }
  return refs;
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
      claims_(informers.For(*Claims())),
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
  // A claim that belonged to a scaled-down pod and is now gone may be what
  // kept that ordinal from being made again (PodClaimIsStale).
  InformerHandlers claim_gone;
  claim_gone.on_delete = [this](const Json& claim) {
    for (const Json* ref : OwnerRefs(claim)) {
      if (Str(*ref, "kind") != "Pod" || Str(*ref, "apiVersion") != "v1") continue;
      const std::string pod = Str(*ref, "name");
      auto dash = pod.rfind('-');
      if (dash == std::string::npos || dash == 0) continue;
      const std::string set = pod.substr(0, dash);
      if (StatefulPodOrdinal(set, pod) >= 0) queue_.Add(object::Key(object::Namespace(claim), set));
    }
  };
  subscriptions_.Add(claims_, std::move(claim_gone));
  std::vector<const Informer*> wait = {&sets_, &pods_, &claims_};
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
  const RetentionPolicy policy = PolicyOf(set);
  const Owner set_owner = SetOwner(set);
  auto scaled_down = [&](const Json& pod) {
    int64_t ord = StatefulPodOrdinal(name, object::Name(pod));
    return ord < start || ord >= start + replicas;
  };
  auto claims_of = [&](int64_t ordinal) {
    std::vector<std::string> out;
    for (const Json* t : Items(spec, "volumeClaimTemplates")) {
      out.push_back(ClaimName(set, object::Name(*t), ordinal));
    }
    return out;
  };
  // ClaimsMatchRetentionPolicy (claims not there yet are for later).
  auto claims_match_policy = [&](const Json& pod) {
    for (const std::string& cname : claims_of(StatefulPodOrdinal(name, object::Name(pod)))) {
      ObjectPtr claim = claims_.Lookup(ns, cname);
      if (claim && !ClaimOwnerUpToDate(*claim, set_owner, PodOwner(pod), scaled_down(pod), policy)) {
        return false;
      }
    }
    return true;
  };
  // UpdatePodClaimForRetentionPolicy: throws on a failed write.
  auto update_claims_for_policy = [&](const Json& pod) {
    for (const std::string& cname : claims_of(StatefulPodOrdinal(name, object::Name(pod)))) {
      ObjectPtr cached = claims_.Lookup(ns, cname);
      if (!cached || ClaimOwnerUpToDate(*cached, set_owner, PodOwner(pod), scaled_down(pod), policy)) {
        continue;
      }
      Json claim = *cached;
      Json refs = ClaimOwnerRefsFor(claim, set_owner, PodOwner(pod), scaled_down(pod), policy);
      if (refs.empty()) {
        claim["metadata"].erase("ownerReferences");
      } else {
        claim["metadata"]["ownerReferences"] = std::move(refs);
      }
      try {
        identity_.client().Update(*Claims(), ns, claim);
      } catch (const Error& e) {
        throw Error(e.code(), "could not update claim " + cname +
                                  " for delete policy ownerRefs: " + e.message());
      }
    }
  };
  // PodClaimIsStale: with whenScaled Delete, a claim still owned by an
  // earlier pod of the ordinal (the garbage collector has yet to remove it)
  // blocks making the pod again.
  auto claim_is_stale = [&](const Json& pod) {
    if (!policy.delete_when_scaled) return false;
    for (const std::string& cname : claims_of(StatefulPodOrdinal(name, object::Name(pod)))) {
      ObjectPtr claim = claims_.Lookup(ns, cname);
      if (claim && HasStaleOwnerRef(*claim, PodOwner(pod))) return true;
    }
    return false;
  };
  auto create_claims = [&](int64_t ordinal) {
    const Json pod = {{"metadata", {{"name", PodName(set, ordinal)}}}};
    for (const Json* t : Items(spec, "volumeClaimTemplates")) {
      std::string cname = ClaimName(set, object::Name(*t), ordinal);
      if (claims_.Lookup(ns, cname)) continue;
      Json claim = *t;
      claim.erase("status");
      claim["apiVersion"] = "v1";
      claim["kind"] = "PersistentVolumeClaim";
      claim["metadata"]["name"] = cname;
      claim["metadata"]["namespace"] = ns;
      for (auto& [k, v] : Obj(Obj(spec, "selector"), "matchLabels").items()) {
        claim["metadata"]["labels"][k] = v;
      }
      // The references the retention policy wants, at once (upstream adds
      // them with an update right after).
      Json refs = ClaimOwnerRefsFor(claim, set_owner, PodOwner(pod), false, policy);
      if (!refs.empty()) claim["metadata"]["ownerReferences"] = std::move(refs);
      try {
        identity_.client().Create(*Claims(), ns, claim);
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
      // No more work this round while a stale claim waits for the collector.
      if (claim_is_stale({{"metadata", {{"name", PodName(set, ord)}}}})) return finish();
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
    // createMissingPersistentVolumeClaims: a Pending pod whose claim went.
    if (PodPhase(*p) == "Pending" && !create_claims(ord)) return finish();
    // A pod not yet healthy blocks OrderedReady; Parallel goes on to the
    // invariants below, as upstream's processReplica.
    if ((IsTerminating(*p) || !IsRunningAndReady(*p) || !IsPodAvailable(*p, min_ready, now)) &&
        monotonic) {
      return finish();
    }
    if (!claims_match_policy(*p)) {
      try {
        update_claims_for_policy(*p);
        record("Update", object::Name(*p), nullptr);
      } catch (const Error& e) {
        record("Update", object::Name(*p), &e);
        return finish();
      }
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

  // The claims of pods to go: the pod's to delete with it when whenScaled
  // is Delete (the garbage collector then removes them).
  for (auto it = condemned.rbegin(); it != condemned.rend(); ++it) {
    if (claims_match_policy(*it->second)) continue;
    try {
      update_claims_for_policy(*it->second);
    } catch (const Error& e) {
      errors.push_back(e.message());
      return finish();
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
