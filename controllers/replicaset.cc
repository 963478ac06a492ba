#include "controllers/replicaset.h"

#include <algorithm>
#include <cmath>

#include "base/error.h"
#include "base/log.h"
#include "client/object.h"

namespace kin::controllers {
namespace workloads {
namespace {

const Json& EmptyObject() {
  static const Json empty = Json::object();
  return empty;
}

const Json& Field(const Json& j, const char* key) {
  if (!j.is_object()) return EmptyObject();
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? EmptyObject() : *it;
}

std::string Str(const Json& j, const char* key) {
  const Json& v = Field(j, key);
  return v.is_string() ? v.get<std::string>() : "";
}

std::optional<WallTime> ReadySince(const Json& pod) {
  const Json* c = object::Condition(pod, "Ready");
  if (!c) return std::nullopt;
  return object::ParseRfc3339(Str(*c, "lastTransitionTime"));
}

std::optional<WallTime> CreatedAt(const Json& obj) {
  return object::ParseRfc3339(Str(Field(obj, "metadata"), "creationTimestamp"));
}

int PhaseOrdinal(const std::string& phase) {
  if (phase == "Unknown") return 1;
  if (phase == "Running") return 2;
  return 0;  // Pending, or anything else
}

// controller.kubernetes.io/pod-deletion-cost; 0 when absent or not an int32.
int64_t DeletionCost(const Json& pod) {
  const Json& ann = Field(Field(pod, "metadata"), "annotations");
  std::string v = Str(ann, "controller.kubernetes.io/pod-deletion-cost");
  if (v.empty()) return 0;
  try {
    size_t used = 0;
    long long n = std::stoll(v, &used);
    if (used != v.size() || n < INT32_MIN || n > INT32_MAX) return 0;
    return n;
  } catch (...) {
    return 0;
  }
}

int64_t MaxRestarts(const Json& pod, const char* statuses) {
  int64_t max = 0;
  const Json& list = Field(Field(pod, "status"), statuses);
  if (!list.is_array()) return 0;
  for (const Json& s : list) {
    const Json& n = Field(s, "restartCount");
    if (n.is_number_integer()) max = std::max(max, n.get<int64_t>());
  }
  return max;
}

// What ActivePodsWithRanks.Less looks at, computed once per pod.
struct RankKey {
  ObjectPtr pod;
  bool assigned = false;
  int phase = 0;
  bool ready = false;
  int64_t cost = 0;
  int rank = 0;
  std::optional<WallTime> ready_since;
  int64_t ready_bucket = -1;  // floor(log2(ns ready)), -1 when not positive
  std::string uid;
  int64_t restarts = 0, sidecar_restarts = 0;
  std::optional<WallTime> created;
};

// afterOrZero: a missing time sorts first; else the later one.
bool AfterOrZero(const std::optional<WallTime>& a, const std::optional<WallTime>& b) {
  if (!a || !b) return !a;
  return *a > *b;
}

bool Less(const RankKey& a, const RankKey& b) {
  if (a.assigned != b.assigned) return !a.assigned;
  if (a.phase != b.phase) return a.phase < b.phase;
  if (a.ready != b.ready) return !a.ready;
  if (a.cost != b.cost) return a.cost < b.cost;
  if (a.rank != b.rank) return a.rank > b.rank;
  if (a.ready && b.ready && a.ready_since != b.ready_since) {
    if (!a.ready_since || !b.ready_since) return AfterOrZero(a.ready_since, b.ready_since);
    // LogarithmicScaleDown: pods ready for times in the same power-of-two
    // bucket are equally valuable, so ties go by uid (a random choice).
    int64_t diff = a.ready_bucket - b.ready_bucket;
    if (diff == 0) return a.uid < b.uid;
    return diff < 0;
  }
  if (a.restarts != b.restarts) return a.restarts > b.restarts;
  if (a.sidecar_restarts != b.sidecar_restarts) return a.sidecar_restarts > b.sidecar_restarts;
  if (a.created != b.created) return AfterOrZero(a.created, b.created);
  return false;
}

}  // namespace

std::vector<std::string> IndexOrphansByNamespace(const Json& obj) {
  if (object::ControllerOf(obj) != nullptr) return {};
  return {object::Namespace(obj)};
}

bool IsPodAvailable(const Json& pod, int64_t min_ready_seconds, WallTime now) {
  if (!IsPodReady(pod)) return false;
  if (min_ready_seconds <= 0) return true;
  auto since = ReadySince(pod);
  return since && *since + std::chrono::seconds(min_ready_seconds) < now;
}

std::vector<ObjectPtr> PodsToDelete(std::vector<ObjectPtr> pods,
                                    const std::vector<ObjectPtr>& related, size_t diff,
                                    WallTime now) {
  if (diff >= pods.size()) return pods;  // all of them: no need to rank
  std::map<std::string, int> on_node;
  for (const ObjectPtr& p : related) {
    if (IsPodActive(*p)) on_node[Str(Field(*p, "spec"), "nodeName")]++;
  }
  std::vector<RankKey> keys;
  keys.reserve(pods.size());
  for (ObjectPtr& p : pods) {
    RankKey k;
    std::string node = Str(Field(*p, "spec"), "nodeName");
    k.assigned = !node.empty();
    k.phase = PhaseOrdinal(Str(Field(*p, "status"), "phase"));
    k.ready = IsPodReady(*p);
    k.cost = DeletionCost(*p);
    auto it = on_node.find(node);
    k.rank = it == on_node.end() ? 0 : it->second;
    if (k.ready) {
      k.ready_since = ReadySince(*p);
      if (k.ready_since) {
        auto ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(now - *k.ready_since).count();
        k.ready_bucket = ns > 0 ? static_cast<int64_t>(std::log2(static_cast<double>(ns))) : -1;
      }
    }
    k.uid = object::Uid(*p);
    k.restarts = MaxRestarts(*p, "containerStatuses");
    k.sidecar_restarts = MaxRestarts(*p, "initContainerStatuses");
    k.created = CreatedAt(*p);
    k.pod = std::move(p);
    keys.push_back(std::move(k));
  }
  std::stable_sort(keys.begin(), keys.end(), Less);
  std::vector<ObjectPtr> out;
  out.reserve(diff);
  for (size_t i = 0; i < diff; ++i) out.push_back(keys[i].pod);
  return out;
}

std::vector<ObjectPtr> ClaimObjects(Client& client, const ResourceInfo& resource,
                                    const Owner& owner, const std::vector<ObjectPtr>& candidates) {
  const Json& o = *owner.object;
  const std::string owner_uid = object::Uid(o);
  const bool owner_deleting = object::IsBeingDeleted(o);
  std::optional<bool> adoptable;  // asked once, when first needed
  std::optional<Error> first_error;
  std::vector<ObjectPtr> claimed;
  for (const ObjectPtr& obj : candidates) {
    const Json* ref = object::ControllerOf(*obj);
    bool matches = owner.selector.Matches(object::Labels(*obj));
    if (ref) {
      if (Str(*ref, "uid") != owner_uid) continue;  // someone else's
      if (matches) {
        claimed.push_back(obj);
        continue;
      }
      if (owner_deleting) continue;  // do not release while the owner goes
      Json patch = {
          {"metadata",
           {{"ownerReferences", Json::array({{{"$patch", "delete"}, {"uid", owner_uid}}})},
            {"uid", object::Uid(*obj)}}}};
      try {
        client.Patch(resource, object::Namespace(*obj), object::Name(*obj), PatchType::kStrategic,
                     patch);
        log::Debug("{} {}: released {}", owner.kind, object::Key(o), object::Key(*obj));
      } catch (const Error& e) {
        // Gone or changed beyond recognition: nothing to release.
        if (e.code() != Code::kNotFound && e.code() != Code::kInvalid && !first_error) {
          first_error = e;
        }
      }
      continue;
    }
    // An orphan.
    if (owner_deleting || !matches || object::IsBeingDeleted(*obj)) continue;
    if (!adoptable) adoptable = !owner.can_adopt || owner.can_adopt();
    if (!*adoptable) continue;
    Json patch = {{"metadata",
                   {{"ownerReferences",
                     Json::array({object::NewControllerRef(o, owner.api_version, owner.kind)})},
                    {"uid", object::Uid(*obj)}}}};
    try {
      Json adopted = client.Patch(resource, object::Namespace(*obj), object::Name(*obj),
                                  PatchType::kStrategic, patch);
      log::Debug("{} {}: adopted {}", owner.kind, object::Key(o), object::Key(*obj));
      claimed.push_back(std::make_shared<const Json>(std::move(adopted)));
    } catch (const Error& e) {
      if (e.code() != Code::kNotFound && !first_error) first_error = e;
    }
  }
  if (first_error) throw *first_error;
  return claimed;
}

}  // namespace workloads

using workloads::WallTime;

namespace {

constexpr auto kExpectationsTimeout = std::chrono::minutes(5);
constexpr char kReplicaFailure[] = "ReplicaFailure";

int64_t IntAt(const Json& j, const char* key, int64_t def = 0) {
  if (!j.is_object()) return def;
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : def;
}

const Json& ObjAt(const Json& j, const char* key) {
  static const Json empty = Json::object();
  if (!j.is_object()) return empty;
  auto it = j.find(key);
  return it != j.end() && it->is_object() ? *it : empty;
}

bool IsNamespaceTerminating(const Error& e) {
  return e.code() == Code::kForbidden &&
         e.message().find("because it is being terminated") != std::string::npos;
}

}  // namespace

// Creates and deletes a sync has made and not yet seen in the informer
// (UIDTrackingControllerExpectations). Thread-safe.
class ReplicaSetController::Expectations {
 public:
  explicit Expectations(Clock& clock) : clock_(clock) {}

  bool Satisfied(const std::string& key) {
    std::lock_guard l(mu_);
    auto it = m_.find(key);
    if (it == m_.end()) return true;
    const Entry& e = it->second;
    if (e.adds <= 0 && e.deletes.empty()) return true;
    // Expired: a missed watch event must not stall the owner for good.
    return clock_.Now() - e.at > kExpectationsTimeout;
  }
  void ExpectCreations(const std::string& key, int64_t n) {
    std::lock_guard l(mu_);
    m_[key] = Entry{n, {}, clock_.Now()};
  }
  void ExpectDeletions(const std::string& key, std::set<std::string> pod_keys) {
    std::lock_guard l(mu_);
    m_[key] = Entry{0, std::move(pod_keys), clock_.Now()};
  }
  void CreationObserved(const std::string& key, int64_t n = 1) {
    std::lock_guard l(mu_);
    auto it = m_.find(key);
    if (it != m_.end()) it->second.adds -= n;
  }
  void DeletionObserved(const std::string& key, const std::string& pod_key) {
    std::lock_guard l(mu_);
    auto it = m_.find(key);
    if (it != m_.end()) it->second.deletes.erase(pod_key);
  }
  void Delete(const std::string& key) {
    std::lock_guard l(mu_);
    m_.erase(key);
  }

 private:
  struct Entry {
    int64_t adds = 0;
    std::set<std::string> deletes;  // pod keys
    Clock::TimePoint at;
  };
  Clock& clock_;
  std::mutex mu_;
  std::map<std::string, Entry> m_;
};

ReplicaSetController::ReplicaSetController(SharedInformerFactory& informers, Client& client,
                                           const ResourceInfo& resource,
                                           ReplicaSetControllerOptions opts)
    : resource_(resource),
      opts_(opts),
      clock_(opts.clock ? *opts.clock : RealClock()),
      clock_start_(clock_.Now()),
      wall_start_(std::chrono::system_clock::now()),
      identity_(client, resource.plural == "replicationcontrollers" ? "replication-controller"
                                                                    : "replicaset-controller"),
      owners_(informers.For(resource)),
      pods_(informers.For(PodsResource())),
      expectations_(std::make_unique<Expectations>(clock_)),
      queue_(WorkQueueOptions{.clock = &clock_}),
      workers_(resource.plural == "replicationcontrollers" ? "replicationcontroller" : "replicaset",
               queue_, [this](const std::string& key) { return Sync(key); }) {}

ReplicaSetController::~ReplicaSetController() { Stop(); }

std::string ReplicaSetController::name() const {
  return IsRc() ? "replicationcontroller" : "replicaset";
}

WallTime ReplicaSetController::WallNow() const {
  if (!opts_.clock) return std::chrono::system_clock::now();
  return wall_start_ + std::chrono::duration_cast<std::chrono::system_clock::duration>(
                           clock_.Now() - clock_start_);
}

void ReplicaSetController::Start() {
  if (!run_state_.TryStart()) return;
  pods_.AddIndex(workloads::kOrphanIndex, workloads::IndexOrphansByNamespace);
  subscriptions_.Add(owners_, HandlersFrom([this](const Json* old, const Json* now) {
    // A delete, or a new object under the old name: the old one's
    // expectations are void.
    if (old && (!now || object::Uid(*old) != object::Uid(*now))) {
      expectations_->Delete(object::Key(*old));
    }
    queue_.Add(object::Key(now ? *now : *old));
  }));
  subscriptions_.Add(pods_, HandlersFrom([this](const Json* old, const Json* now) {
    if (!old) {
      OnPodAdd(*now);
    } else if (!now) {
      OnPodDelete(*old);
    } else {
      OnPodUpdate(*old, *now);
    }
  }));
  workers_.Start(opts_.workers, {&owners_, &pods_});
}

void ReplicaSetController::Stop() {
  if (!run_state_.TryStop()) return;
  workers_.Stop();
  subscriptions_.RemoveAll();
}

LabelSelector ReplicaSetController::SelectorOf(const Json& owner) const {
  const Json& spec = ObjAt(owner, "spec");
  if (!IsRc()) return LabelSelector::FromJson(ObjAt(spec, "selector"), "spec.selector");
  const Json* labels = &ObjAt(spec, "selector");
  if (labels->empty()) labels = &ObjAt(ObjAt(ObjAt(spec, "template"), "metadata"), "labels");
  if (labels->empty()) {
    // SelectorFromSet of nothing would select every pod; an RC without
    // labels selects none instead.
    throw Error::BadRequest("spec.selector: Required value");
  }
  return LabelSelector::FromJson(Json{{"matchLabels", *labels}}, "spec.selector");
}

ObjectPtr ReplicaSetController::Resolve(const std::string& ns, const Json& ref) const {
  if (!ref.is_object() || ref.value("kind", "") != resource_.kind) return nullptr;
  ObjectPtr owner = owners_.Lookup(ns, ref.value("name", ""));
  if (!owner || object::Uid(*owner) != ref.value("uid", "")) return nullptr;
  return owner;
}

void ReplicaSetController::EnqueueMatching(const Json& pod) {
  const Json& labels = object::Labels(pod);
  for (const ObjectPtr& owner : owners_.ByIndex(kNamespaceIndex, object::Namespace(pod))) {
    try {
      if (SelectorOf(*owner).Matches(labels)) queue_.Add(object::Key(*owner));
    } catch (const Error&) {
      // A malformed selector selects nothing.
    }
  }
}

void ReplicaSetController::OnPodAdd(const Json& pod) {
  if (object::IsBeingDeleted(pod)) {
    // Seen first while terminating (e.g. after a restart): not a create.
    OnPodDelete(pod);
    return;
  }
  if (const Json* ref = object::ControllerOf(pod)) {
    if (ObjectPtr owner = Resolve(object::Namespace(pod), *ref)) {
      std::string key = object::Key(*owner);
      expectations_->CreationObserved(key);
      queue_.Add(key);
    }
    return;
  }
  EnqueueMatching(pod);
}

void ReplicaSetController::OnPodUpdate(const Json& old, const Json& now) {
  if (object::ResourceVersion(old) == object::ResourceVersion(now)) return;
  bool label_changed = object::Labels(old) != object::Labels(now);
  if (object::IsBeingDeleted(now)) {
    // Replacements are made as soon as a pod starts terminating.
    OnPodDelete(now);
    if (label_changed) OnPodDelete(old);
    return;
  }
  const Json* cur_ref = object::ControllerOf(now);
  const Json* old_ref = object::ControllerOf(old);
  bool ref_changed =
      (cur_ref == nullptr) != (old_ref == nullptr) || (cur_ref && old_ref && *cur_ref != *old_ref);
  if (ref_changed && old_ref) {
    if (ObjectPtr owner = Resolve(object::Namespace(old), *old_ref)) {
      queue_.Add(object::Key(*owner));
    }
  }
  if (cur_ref) {
    ObjectPtr owner = Resolve(object::Namespace(now), *cur_ref);
    if (!owner) return;
    std::string key = object::Key(*owner);
    queue_.Add(key);
    int64_t min_ready = IntAt(ObjAt(*owner, "spec"), "minReadySeconds");
    if (min_ready > 0 && !IsPodReady(old) && IsPodReady(now)) {
      // Look again once the pod may count as available (plus a second of
      // slack, as upstream).
      queue_.AddAfter(key, std::chrono::seconds(min_ready + 1));
    }
    return;
  }
  if (label_changed || ref_changed) EnqueueMatching(now);
}

void ReplicaSetController::OnPodDelete(const Json& pod) {
  const Json* ref = object::ControllerOf(pod);
  if (!ref) return;
  ObjectPtr owner = Resolve(object::Namespace(pod), *ref);
  if (!owner) return;
  std::string key = object::Key(*owner);
  expectations_->DeletionObserved(key, object::Key(pod));
  queue_.Add(key);
}

Json ReplicaSetController::WithTypeMeta(const Json& owner) const {
  Json o = owner;
  o["apiVersion"] = resource_.api_version();
  o["kind"] = resource_.kind;
  return o;
}

Result ReplicaSetController::Sync(const std::string& key) {
  auto [ns, name] = object::SplitKey(key);
  ObjectPtr owner = owners_.Lookup(ns, name);
  if (!owner) {
    expectations_->Delete(key);
    return Result::Done();
  }
  bool needs_sync = expectations_->Satisfied(key);
  LabelSelector selector;
  try {
    selector = SelectorOf(*owner);
  } catch (const Error& e) {
    // Validation should have refused it; retrying will not help.
    log::Warn("{}: {}: {}", this->name(), key, e.message());
    return Result::Done();
  }

  // Candidates: the pods it controls (by owner uid) and the orphans of its
  // namespace; inactive pods are neither counted, adopted nor released.
  std::vector<ObjectPtr> candidates;
  for (ObjectPtr& p : pods_.ByIndex(kOwnerUidIndex, object::Uid(*owner))) {
    // Controller-less ones come from the orphan index, once.
    if (IsPodActive(*p) && object::Namespace(*p) == ns && object::ControllerOf(*p)) {
      candidates.push_back(std::move(p));
    }
  }
  for (ObjectPtr& p : pods_.ByIndex(workloads::kOrphanIndex, ns)) {
    if (IsPodActive(*p)) candidates.push_back(std::move(p));
  }
  workloads::Owner claim_owner;
  claim_owner.object = owner.get();
  claim_owner.api_version = resource_.api_version();
  claim_owner.kind = resource_.kind;
  claim_owner.selector = selector;
  claim_owner.can_adopt = [&] {
    // A fresh read: adopting for an owner that is being deleted would
    // keep its pods alive behind the garbage collector's back.
    try {
      Json fresh = identity_.client().Get(resource_, ns, name);
      return object::Uid(fresh) == object::Uid(*owner) && !object::IsBeingDeleted(fresh);
    } catch (const Error&) {
      return false;
    }
  };
  std::vector<ObjectPtr> pods =
      workloads::ClaimObjects(identity_.client(), PodsResource(), claim_owner, candidates);

  std::optional<std::string> manage_error;
  if (needs_sync && !object::IsBeingDeleted(*owner)) {
    try {
      ManageReplicas(pods, *owner, key);
    } catch (const Error& e) {
      manage_error = e.message();
    }
  }

  // Status.
  const Json& spec = ObjAt(*owner, "spec");
  int64_t replicas = IntAt(spec, "replicas", 1);
  int64_t min_ready = IntAt(spec, "minReadySeconds");
  const Json& template_labels = ObjAt(ObjAt(ObjAt(spec, "template"), "metadata"), "labels");
  WallTime now = WallNow();
  int64_t fully_labeled = 0, ready = 0, available = 0;
  for (const ObjectPtr& p : pods) {
    const Json& labels = object::Labels(*p);
    bool all = true;
    for (auto it = template_labels.begin(); it != template_labels.end() && all; ++it) {
      auto have = labels.find(it.key());
      all = have != labels.end() && *have == it.value();
    }
    if (all) ++fully_labeled;
    if (IsPodReady(*p)) {
      ++ready;
      if (workloads::IsPodAvailable(*p, min_ready, now)) ++available;
    }
  }
  const Json& old_status = ObjAt(*owner, "status");
  Json old_conditions = Json::array();
  if (auto it = old_status.find("conditions"); it != old_status.end() && it->is_array()) {
    old_conditions = *it;
  }
  Json conditions = old_conditions;
  bool failure = false;
  for (const Json& c : conditions) failure |= c.value("type", "") == kReplicaFailure;
  if (manage_error && !failure) {
    int64_t diff = static_cast<int64_t>(pods.size()) - replicas;
    conditions.push_back({{"type", kReplicaFailure},
                          {"status", "True"},
                          {"lastTransitionTime", object::FormatRfc3339(now)},
                          {"reason", diff < 0   ? "FailedCreate"
                                     : diff > 0 ? "FailedDelete"
                                                : ""},
                          {"message", *manage_error}});
  } else if (!manage_error && failure) {
    Json kept = Json::array();
    for (const Json& c : conditions) {
      if (c.value("type", "") != kReplicaFailure) kept.push_back(c);
    }
    conditions = std::move(kept);
  }
  int64_t generation = IntAt(ObjAt(*owner, "metadata"), "generation");
  bool unchanged = IntAt(old_status, "replicas") == static_cast<int64_t>(pods.size()) &&
                   IntAt(old_status, "fullyLabeledReplicas") == fully_labeled &&
                   IntAt(old_status, "readyReplicas") == ready &&
                   IntAt(old_status, "availableReplicas") == available &&
                   IntAt(old_status, "observedGeneration") == generation &&
                   old_conditions == conditions;
  if (!unchanged) {
    // As the Go types marshal it: replicas always, the rest when not zero.
    Json status = {{"replicas", pods.size()}};
    if (fully_labeled) status["fullyLabeledReplicas"] = fully_labeled;
    if (ready) status["readyReplicas"] = ready;
    if (available) status["availableReplicas"] = available;
    if (generation) status["observedGeneration"] = generation;
    if (!conditions.empty()) status["conditions"] = conditions;
    Json updated = *owner;
    updated["status"] = std::move(status);
    // No resourceVersion: the status is ours alone, and it describes the
    // cache this sync read (observedGeneration says which spec).
    updated["metadata"].erase("resourceVersion");
    try {
      identity_.client().Update(resource_, ns, updated, "status");
    } catch (const Error& e) {
      if (e.code() == Code::kNotFound) return Result::Done();
      throw;
    }
  }
  if (manage_error) throw Error::Internal(*manage_error);
  if (min_ready > 0 && ready == replicas && available != replicas) {
    return Result::After(std::chrono::seconds(min_ready));
  }
  return Result::Done();
}

void ReplicaSetController::ManageReplicas(const std::vector<ObjectPtr>& pods, const Json& owner,
                                          const std::string& key) {
  const Json& spec = ObjAt(owner, "spec");
  int64_t diff = static_cast<int64_t>(pods.size()) - IntAt(spec, "replicas", 1);
  const std::string ns = object::Namespace(owner);
  Json event_owner = WithTypeMeta(owner);
  if (diff < 0) {
    int64_t want = std::min<int64_t>(-diff, opts_.burst_replicas);
    const Json& tmpl = ObjAt(spec, "template");
    const Json& tmeta = ObjAt(tmpl, "metadata");
    if (ObjAt(tmeta, "labels").empty()) {
      throw Error::Invalid("unable to create pods, no labels");
    }
    Json pod = {{"apiVersion", "v1"},
                {"kind", "Pod"},
                {"metadata",
                 {{"generateName", object::Name(owner) + "-"},
                  {"namespace", ns},
                  {"labels", tmeta["labels"]},
                  {"ownerReferences", Json::array({object::NewControllerRef(
                                          owner, resource_.api_version(), resource_.kind)})}}},
                {"spec", ObjAt(tmpl, "spec")}};
    if (!ObjAt(tmeta, "annotations").empty()) pod["metadata"]["annotations"] = tmeta["annotations"];
    if (auto it = tmeta.find("finalizers"); it != tmeta.end() && it->is_array() && !it->empty()) {
      pod["metadata"]["finalizers"] = *it;
    }
    expectations_->ExpectCreations(key, want);
    // Slow start: batches of 1, 2, 4, ...; a batch with a failure ends it,
    // so a quota that refuses every pod costs one request, not `want`.
    int64_t created = 0, attempted = 0;
    std::optional<Error> failed;
    for (int64_t batch = std::min<int64_t>(want, 1); batch > 0 && !failed;
         batch = std::min(2 * batch, want - attempted)) {
      for (int64_t i = 0; i < batch; ++i) {
        ++attempted;
        try {
          Json made;
          // A generated name may collide (27^5 names); the API server of
          // 1.33 retries that itself (RetryGenerateName), kin's does not.
          for (int tries = 1;; ++tries) {
            try {
              made = identity_.client().Create(PodsResource(), ns, pod);
              break;
            } catch (const Error& e) {
              if (e.code() != Code::kAlreadyExists || tries == 3) throw;
            }
          }
          ++created;
          identity_.events().Normal(event_owner, "SuccessfulCreate",
                                    "Created pod: " + object::Name(made));
        } catch (const Error& e) {
          if (IsNamespaceTerminating(e)) {
            // Every create will fail: nothing to report or retry.
            expectations_->CreationObserved(key, want - created);
            return;
          }
          identity_.events().Warning(event_owner, "FailedCreate", "Error creating: " + e.message());
          // The informer will never see this one.
          expectations_->CreationObserved(key);
          if (!failed) failed = e;
        }
      }
    }
    // Nor the ones never tried.
    if (want > attempted) expectations_->CreationObserved(key, want - attempted);
    if (failed) throw *failed;
    return;
  }
  if (diff == 0) return;

  int64_t n = std::min<int64_t>(diff, opts_.burst_replicas);
  // Siblings: the pods of every ReplicaSet with the same controller (a
  // Deployment's old and new ones), to prefer deleting doubled-up pods.
  std::vector<ObjectPtr> related;
  if (const Json* ref = object::ControllerOf(owner)) {
    std::string controller_uid = ref->value("uid", "");
    for (const ObjectPtr& rs : owners_.ByIndex(kNamespaceIndex, ns)) {
      const Json* r = object::ControllerOf(*rs);
      if (!r || r->value("uid", "") != controller_uid) continue;
      for (ObjectPtr& p : pods_.ByIndex(kOwnerUidIndex, object::Uid(*rs))) {
        if (object::IsControlledBy(*p, *rs)) related.push_back(std::move(p));
      }
    }
  }
  std::vector<ObjectPtr> victims =
      workloads::PodsToDelete(pods, related, static_cast<size_t>(n), WallNow());
  std::set<std::string> keys;
  for (const ObjectPtr& p : victims) keys.insert(object::Key(*p));
  expectations_->ExpectDeletions(key, keys);
  std::optional<Error> failed;
  for (const ObjectPtr& p : victims) {
    try {
      identity_.client().Delete(PodsResource(), ns, object::Name(*p));
      identity_.events().Normal(event_owner, "SuccessfulDelete",
                                "Deleted pod: " + object::Name(*p));
    } catch (const Error& e) {
      expectations_->DeletionObserved(key, object::Key(*p));
      if (e.code() == Code::kNotFound) continue;  // gone already: what we wanted
      identity_.events().Warning(event_owner, "FailedDelete", "Error deleting: " + e.message());
      if (!failed) failed = e;
    }
  }
  if (failed) throw *failed;
}

}  // namespace kin::controllers
