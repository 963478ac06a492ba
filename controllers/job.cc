#include "controllers/job.h"

#include <algorithm>
#include <tuple>

#include "base/error.h"
#include "base/log.h"
#include "client/object.h"

namespace kin::controllers {

using SysTime = std::chrono::system_clock::time_point;

namespace {

// Expectations are forgotten after this long, as upstream's ExpectationsTimeout.
constexpr auto kExpectationsTimeout = std::chrono::minutes(5);
// Upstream's names.MaxGeneratedNameLength: room for the random suffix.
constexpr size_t kMaxGenerateName = 58;

const ResourceInfo& JobsResource() {
  static const ResourceInfo* r = FindResource("batch", "v1", "jobs");
  if (!r) throw Error::Internal("the API has no batch/v1 jobs");
  return *r;
}

const Json& EmptyObject() {
  static const Json empty = Json::object();
  return empty;
}
const Json& At(const Json& j, const char* key) {
  if (!j.is_object()) return EmptyObject();
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? EmptyObject() : *it;
}
bool Has(const Json& j, const char* key) {
  return j.is_object() && j.contains(key) && !j[key].is_null();
}
std::string Str(const Json& j, const char* key) {
  const Json& v = At(j, key);
  return v.is_string() ? v.get<std::string>() : "";
}
std::optional<int64_t> Int(const Json& j, const char* key) {
  const Json& v = At(j, key);
  if (v.is_number_integer()) return v.get<int64_t>();
  return std::nullopt;
}
const Json& Array(const Json& j, const char* key) {
  static const Json empty = Json::array();
  const Json& v = At(j, key);
  return v.is_array() ? v : empty;
}

std::string Phase(const Json& pod) { return Str(At(pod, "status"), "phase"); }
bool Terminal(const Json& pod) {
  std::string p = Phase(pod);
  return p == "Succeeded" || p == "Failed";
}
bool IsActive(const Json& pod) { return !Terminal(pod) && !object::IsBeingDeleted(pod); }
bool IsTerminatingPod(const Json& pod) { return object::IsBeingDeleted(pod) && !Terminal(pod); }
bool IsReady(const Json& pod) {
  for (const Json& c : Array(At(pod, "status"), "conditions")) {
    if (Str(c, "type") == "Ready") return Str(c, "status") == "True";
  }
  return false;
}
bool HasTrackingFinalizer(const Json& pod) {
  for (const Json& f : Array(At(pod, "metadata"), "finalizers")) {
    if (f == kJobTrackingFinalizer) return true;
  }
  return false;
}
// The completion index of a pod; -1 when it has none (or a bad one).
int64_t CompletionIndex(const Json& pod) {
  std::string v = Str(At(At(pod, "metadata"), "annotations"), kJobCompletionIndexAnnotation);
  if (v.empty() || v.size() > 9 || !std::all_of(v.begin(), v.end(), ::isdigit)) return -1;
  return std::stoll(v);
}

const Json* FindCondition(const Json& job, const std::string& type) {
  for (const Json& c : Array(At(job, "status"), "conditions")) {
    if (Str(c, "type") == type) return &c;
  }
  return nullptr;
}
bool HasTrueCondition(const Json& job, const std::string& type) {
  const Json* c = FindCondition(job, type);
  return c && Str(*c, "status") == "True";
}

bool Suspended(const Json& job) { return At(At(job, "spec"), "suspend") == Json(true); }
bool Indexed(const Json& job) { return Str(At(job, "spec"), "completionMode") == "Indexed"; }

// Pods that are being deleted count as failed unless only failed pods are
// replaced (podReplacementPolicy Failed, or a podFailurePolicy).
bool OnlyReplaceFailedPods(const Json& job) {
  const Json& spec = At(job, "spec");
  return Str(spec, "podReplacementPolicy") == "Failed" || Has(spec, "podFailurePolicy");
}
bool IsPodFailed(const Json& pod, const Json& job) {
  if (Phase(pod) == "Failed") return true;
  if (OnlyReplaceFailedPods(job)) return false;
  return object::IsBeingDeleted(pod) && Phase(pod) != "Succeeded";
}

std::optional<SysTime> TimeAt(const Json& j, const char* key) {
  std::string s = Str(j, key);
  if (s.empty()) return std::nullopt;
  return object::ParseRfc3339(s);
}

// Upstream's getFinishedTime: containers' finish, Ready=False, deletion, creation.
SysTime FinishedTime(const Json& pod) {
  const Json& status = At(pod, "status");
  std::optional<SysTime> latest;
  bool all = !Array(status, "containerStatuses").empty();
  for (const Json& cs : Array(status, "containerStatuses")) {
    auto t = TimeAt(At(At(cs, "state"), "terminated"), "finishedAt");
    if (!t) {
      all = false;
      break;
    }
    if (!latest || *t > *latest) latest = t;
  }
  if (all && latest) return *latest;
  for (const Json& c : Array(status, "conditions")) {
    if (Str(c, "type") == "Ready" && Str(c, "status") == "False") {
      if (auto t = TimeAt(c, "lastTransitionTime")) return *t;
    }
  }
  const Json& meta = At(pod, "metadata");
  if (auto t = TimeAt(meta, "deletionTimestamp")) {
    return *t - std::chrono::seconds(Int(meta, "deletionGracePeriodSeconds").value_or(0));
  }
  return TimeAt(meta, "creationTimestamp").value_or(SysTime{});
}

// Sums container restarts of running/pending pods (restartPolicy OnFailure).
bool PastBackoffLimitOnFailure(const Json& job, const std::vector<ObjectPtr>& pods) {
  if (Str(At(At(At(job, "spec"), "template"), "spec"), "restartPolicy") != "OnFailure") {
    return false;
  }
  int64_t restarts = 0;
  for (const auto& p : pods) {
    std::string phase = Phase(*p);
    if (phase != "Running" && phase != "Pending") continue;
    for (const char* list : {"initContainerStatuses", "containerStatuses"}) {
      for (const Json& cs : Array(At(*p, "status"), list)) {
        restarts += Int(cs, "restartCount").value_or(0);
      }
    }
  }
  int64_t limit = Int(At(job, "spec"), "backoffLimit").value_or(6);
  return limit == 0 ? restarts > 0 : restarts >= limit;
}

Json NewCondition(const std::string& type, const std::string& status, const std::string& reason,
                  const std::string& message, SysTime now) {
  std::string t = object::FormatRfc3339(now);
  Json c = {{"type", type}, {"status", status}, {"lastProbeTime", t}, {"lastTransitionTime", t}};
  if (!reason.empty()) c["reason"] = reason;
  if (!message.empty()) c["message"] = message;
  return c;
}

// Upstream's ensureJobConditionStatus; true when the list changed.
bool EnsureCondition(Json& status, const std::string& type, const std::string& value,
                     const std::string& reason, const std::string& message, SysTime now) {
  if (status.contains("conditions") && status["conditions"].is_array()) {
    for (Json& c : status["conditions"]) {
      if (Str(c, "type") != type) continue;
      if (Str(c, "status") != value || Str(c, "reason") != reason ||
          Str(c, "message") != message) {
        c = NewCondition(type, value, reason, message, now);
        return true;
      }
      return false;
    }
  }
  if (value == "False") return false;
  status["conditions"].push_back(NewCondition(type, value, reason, message, now));
  return true;
}

// List items lack kind and apiVersion; Events need them.
Json AsJob(const Json& job) {
  Json j = job;
  j["kind"] = "Job";
  j["apiVersion"] = "batch/v1";
  return j;
}

// The order in which active pods are given up (upstream's
// controller.ActivePods): unscheduled, pending, not ready, most recently
// ready, most restarts, newest first.
bool DeleteFirst(const ObjectPtr& a, const ObjectPtr& b) {
  auto key = [](const Json& p) {
    bool scheduled = !Str(At(p, "spec"), "nodeName").empty();
    std::string phase = Phase(p);
    int phase_rank = phase == "Pending" ? 0 : phase == "Unknown" ? 1 : 2;
    int64_t restarts = 0;
    for (const Json& cs : Array(At(p, "status"), "containerStatuses")) {
      restarts += Int(cs, "restartCount").value_or(0);
    }
    return std::make_tuple(scheduled, phase_rank, IsReady(p), -restarts,
                           Str(At(p, "metadata"), "creationTimestamp"));
  };
  auto ka = key(*a), kb = key(*b);
  // Newer (larger creationTimestamp) first among equals.
  if (std::tie(std::get<0>(ka), std::get<1>(ka), std::get<2>(ka), std::get<3>(ka)) !=
      std::tie(std::get<0>(kb), std::get<1>(kb), std::get<2>(kb), std::get<3>(kb))) {
    return std::tie(std::get<0>(ka), std::get<1>(ka), std::get<2>(ka), std::get<3>(ka)) <
           std::tie(std::get<0>(kb), std::get<1>(kb), std::get<2>(kb), std::get<3>(kb));
  }
  return std::get<4>(ka) > std::get<4>(kb);
}


}  // namespace

std::string FormatIndexes(const std::set<int64_t>& indexes) {
  std::string out;
  for (auto it = indexes.begin(); it != indexes.end();) {
    int64_t first = *it, last = *it;
    auto next = std::next(it);
    while (next != indexes.end() && *next == last + 1) last = *next++;
    if (!out.empty()) out += ",";
    out += std::to_string(first);
    if (last > first) out += "-" + std::to_string(last);
    it = next;
  }
  return out;
}

std::set<int64_t> ParseIndexes(const std::string& s, int64_t completions) {
  std::set<int64_t> out;
  size_t start = 0;
  auto number = [](const std::string& t, int64_t* v) {
    if (t.empty() || t.size() > 9 || !std::all_of(t.begin(), t.end(), ::isdigit)) return false;
    *v = std::stoll(t);
    return true;
  };
  while (start < s.size()) {
    size_t comma = s.find(',', start);
    std::string part = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? s.size() : comma + 1;
    size_t dash = part.find('-');
    int64_t a = 0, b = 0;
    if (dash == std::string::npos) {
      if (!number(part, &a)) continue;
      b = a;
    } else if (!number(part.substr(0, dash), &a) || !number(part.substr(dash + 1), &b)) {
      continue;
    }
    for (int64_t i = a; i <= b && i < completions; ++i) out.insert(i);
  }
  return out;
}

Clock::Duration PodFailureBackoffRemaining(int64_t failures, SysTime last_failure, SysTime now,
                                           Clock::Duration base, Clock::Duration max) {
  if (failures <= 0) return Clock::Duration::zero();
  Clock::Duration backoff = base;
  for (int64_t i = 1; i < failures; ++i) {
    backoff *= 2;
    if (backoff >= max) {
      backoff = max;
      break;
    }
  }
  auto elapsed = std::chrono::duration_cast<Clock::Duration>(now - last_failure);
  if (backoff < elapsed) return Clock::Duration::zero();
  return backoff - elapsed;
}

namespace job_util {

std::string FinishedConditionType(const Json& job) {
  for (const Json& c : Array(At(job, "status"), "conditions")) {
    std::string type = Str(c, "type");
    if ((type == "Complete" || type == "Failed") && Str(c, "status") == "True") return type;
  }
  return "";
}

std::optional<SysTime> FinishTime(const Json& job) {
  for (const Json& c : Array(At(job, "status"), "conditions")) {
    std::string type = Str(c, "type");
    if ((type == "Complete" || type == "Failed") && Str(c, "status") == "True") {
      return TimeAt(c, "lastTransitionTime");
    }
  }
  return std::nullopt;
}

}  // namespace job_util

namespace job_internal {
// Pod creations and deletions asked of the API and not yet seen in the
// cache (upstream's ControllerExpectations), and pods whose finalizer we
// removed and whose update we have not seen (its uidTrackingExpectations).
struct Expectations {
  int64_t adds = 0, dels = 0;
  Clock::TimePoint set_at{};
  std::set<std::string> rm_finalizers;
};
}  // namespace job_internal

using job_internal::Expectations;

Expectations& JobController::ExpectationsFor(const std::string& key) {
  auto& e = expectations_[key];
  if (!e) e = std::make_unique<Expectations>();
  return *e;
}

// What one sync of a Job works out.
struct JobController::Sync {
  std::string key;
  std::vector<ObjectPtr> pods;
  int64_t active = 0, ready = 0, terminating = 0, succeeded = 0;
  std::set<int64_t> succeeded_indexes;
  // When to look again (a deadline, the end of a back-off), as a time so
  // that the time the sync takes is not added to the wait.
  std::optional<SysTime> requeue_at;
  bool create_failed = false;
  void RequeueAt(SysTime t) {
    if (!requeue_at || t < *requeue_at) requeue_at = t;
  }
};

JobController::JobController(SharedInformerFactory& informers, Client& client,
                             JobControllerOptions opts)
    : opts_(opts),
      clock_(opts.clock ? *opts.clock : RealClock()),
      wall_(clock_),
      informers_(informers),
      identity_(client, "job-controller"),
      jobs_(informers.For(JobsResource())),
      pods_(informers.For(PodsResource())),
      queue_(WorkQueueOptions{.clock = &clock_}),
      workers_("job", queue_, [this](const std::string& key) { return Reconcile(key); }) {}

JobController::~JobController() { Stop(); }

void JobController::Start() {
  {
    std::lock_guard l(mu_);
    if (started_ || stopped_) return;
    started_ = true;
  }
  InformerHandlers jh;
  jh.on_add = [this](const Json& j) { OnJob(nullptr, &j); };
  jh.on_update = [this](const Json& o, const Json& j) { OnJob(&o, &j); };
  jh.on_delete = [this](const Json& o) { OnJob(&o, nullptr); };
  InformerHandlers ph;
  ph.on_add = [this](const Json& p) { OnPod(nullptr, &p); };
  ph.on_update = [this](const Json& o, const Json& p) { OnPod(&o, &p); };
  ph.on_delete = [this](const Json& o) { OnPod(&o, nullptr); };
  job_handlers_ = jobs_.AddHandlers(std::move(jh));
  pod_handlers_ = pods_.AddHandlers(std::move(ph));
  workers_.Start(opts_.workers, {&jobs_, &pods_});
}

void JobController::Stop() {
  bool was_started;
  {
    std::lock_guard l(mu_);
    if (stopped_) return;
    stopped_ = true;
    was_started = started_;
  }
  workers_.Stop();
  if (was_started) {
    jobs_.RemoveHandlers(job_handlers_);
    pods_.RemoveHandlers(pod_handlers_);
  }
}

void JobController::OnJob(const Json* old, const Json* now) {
  const Json& job = now ? *now : *old;
  std::string key = object::Key(job);
  queue_.Add(key);
  // A Job that went or finished leaves its pods' finalizers to the orphan
  // path (upstream's cleanupPodFinalizers).
  if (!now || !job_util::FinishedConditionType(*now).empty()) {
    for (const auto& p : pods_.ByIndex(kOwnerUidIndex, object::Uid(job))) {
      if (object::IsControlledBy(*p, job) && HasTrackingFinalizer(*p)) {
        queue_.Add("pod:" + object::Key(*p));
      }
    }
  }
  if (!now) {
    std::lock_guard l(mu_);
    expectations_.erase(key);
    backoff_.erase(key);
    written_.Forget(key);
  }
}

void JobController::OnPod(const Json* old, const Json* now) {
  if (old && now && object::ResourceVersion(*old) == object::ResourceVersion(*now)) return;
  const Json& pod = now ? *now : *old;
  std::string ns = object::Namespace(pod);
  // The Job a state of the pod names as controller, if it exists.
  auto job_of = [&](const Json& p) -> std::string {
    const Json* ref = object::ControllerOf(p);
    if (!ref || Str(*ref, "kind") != "Job") return "";
    ObjectPtr job = jobs_.Lookup(ns, Str(*ref, "name"));
    if (!job || object::Uid(*job) != Str(*ref, "uid")) return "";
    return object::Key(*job);
  };
  std::string key = job_of(pod);
  if (old && now) {
    std::string old_key = job_of(*old);
    if (!old_key.empty() && old_key != key) queue_.Add(old_key);
  }
  if (key.empty()) {
    if (now && HasTrackingFinalizer(*now)) queue_.Add("pod:" + object::Key(pod));
    return;
  }
  {
    std::lock_guard l(mu_);
    Expectations* e = &ExpectationsFor(key);
    bool was_deleting = old && object::IsBeingDeleted(*old);
    if (!old && now) {
      if (object::IsBeingDeleted(*now)) {
        e->dels--;
      } else {
        e->adds--;
      }
    } else if (now && object::IsBeingDeleted(*now) && !was_deleting) {
      e->dels--;
    } else if (!now && !was_deleting) {
      e->dels--;
    }
    if (!now || !HasTrackingFinalizer(*now)) e->rm_finalizers.erase(object::Uid(pod));
  }
  queue_.Add(key);
}

std::vector<ObjectPtr> JobController::PodsOf(const Json& job) const {
  std::vector<ObjectPtr> out;
  for (auto& p : pods_.ByIndex(kOwnerUidIndex, object::Uid(job))) {
    if (object::IsControlledBy(*p, job)) out.push_back(std::move(p));
  }
  return out;
}

Result JobController::Reconcile(const std::string& key) {
  if (key.rfind("pod:", 0) == 0) return SyncOrphanPod(key.substr(4));
  try {
    return ReconcileJob(key);
  } catch (const Error& e) {
    // Gone meanwhile: its deletion event cleans up.
    if (e.code() == Code::kNotFound && !jobs_.LookupKey(key)) return Result::Done();
    if (e.code() == Code::kNotFound) {
      try {
        identity_.client().Get(JobsResource(), object::SplitKey(key).first,
                               object::SplitKey(key).second);
      } catch (const Error& g) {
        if (g.code() == Code::kNotFound) return Result::Done();
      }
    }
    throw;
  }
}

Result JobController::ReconcileJob(const std::string& key) {
  auto [ns, name] = object::SplitKey(key);
  ObjectPtr cached = jobs_.Lookup(ns, name);
  if (!cached) {
    std::lock_guard l(mu_);
    expectations_.erase(key);
    backoff_.erase(key);
    written_.Forget(key);
    return Result::Done();
  }
  // The cache may not have caught up with our last status write yet:
  // deciding on the older status would count or create twice.
  return SyncJob(key, written_.Fresher(key, *cached));
}

Result JobController::SyncOrphanPod(const std::string& pod_key) {
  auto [ns, name] = object::SplitKey(pod_key);
  ObjectPtr pod = pods_.Lookup(ns, name);
  if (!pod || !HasTrackingFinalizer(*pod)) return Result::Done();
  if (const Json* ref = object::ControllerOf(*pod)) {
    if (Str(*ref, "kind") != "Job" || Str(*ref, "apiVersion") != "batch/v1") return Result::Done();
    ObjectPtr job = jobs_.Lookup(ns, Str(*ref, "name"));
    if (job && object::Uid(*job) == Str(*ref, "uid") &&
        job_util::FinishedConditionType(*job).empty()) {
      return Result::Done();  // its Job counts it
    }
  }
  RemoveFinalizer(*pod);
  return Result::Done();
}

bool JobController::RemoveFinalizer(const Json& pod) {
  Json patch = {{"metadata", {{"$deleteFromPrimitiveList/finalizers", {kJobTrackingFinalizer}}}}};
  try {
    identity_.client().Patch(PodsResource(), object::Namespace(pod), object::Name(pod),
                             PatchType::kStrategic, patch);
  } catch (const Error& e) {
    if (e.code() == Code::kNotFound) return true;
    log::Warn("job-controller: removing the tracking finalizer of {}: {}", object::Key(pod),
              e.what());
    return false;
  }
  return true;
}

Json JobController::WriteStatus(const Json& job) {
  // NotFound (the Job went meanwhile) ends the sync through the caller's
  // error path once; the Job's deletion event then clears its state.
  Json written = identity_.client().Update(JobsResource(), object::Namespace(job), job, "status");
  written_.Record(object::Key(job), written);
  return written;
}

int64_t JobController::CreatePods(const Json& job, Sync& s, int64_t count) {
  const std::string ns = object::Namespace(job);
  const std::string name = object::Name(job);
  const std::string uid = object::Uid(job);
  const Json& tmpl = At(At(job, "spec"), "template");
  const bool indexed = Indexed(job);
  const int64_t completions = Int(At(job, "spec"), "completions").value_or(0);

  // Indexed: the lowest indexes neither succeeded nor held by an active pod.
  std::vector<int64_t> indexes;
  if (indexed) {
    std::set<int64_t> taken = s.succeeded_indexes;
    for (const auto& p : s.pods) {
      if (IsActive(*p)) taken.insert(CompletionIndex(*p));
    }
    for (int64_t i = 0; i < completions && static_cast<int64_t>(indexes.size()) < count; ++i) {
      if (!taken.count(i)) indexes.push_back(i);
    }
    count = static_cast<int64_t>(indexes.size());
  }
  if (count <= 0) return 0;

  Json base = {{"apiVersion", "v1"}, {"kind", "Pod"}};
  Json meta = Json::object();
  const Json& tmeta = At(tmpl, "metadata");
  if (Has(tmeta, "labels")) meta["labels"] = tmeta["labels"];
  if (Has(tmeta, "annotations")) meta["annotations"] = tmeta["annotations"];
  meta["labels"]["batch.kubernetes.io/controller-uid"] = uid;
  meta["labels"]["batch.kubernetes.io/job-name"] = name;
  meta["labels"]["controller-uid"] = uid;
  meta["labels"]["job-name"] = name;
  meta["namespace"] = ns;
  Json finalizers = Json::array();
  for (const Json& f : Array(tmeta, "finalizers")) finalizers.push_back(f);
  if (std::find(finalizers.begin(), finalizers.end(), Json(kJobTrackingFinalizer)) ==
      finalizers.end()) {
    finalizers.push_back(kJobTrackingFinalizer);
  }
  meta["finalizers"] = finalizers;
  meta["ownerReferences"] = Json::array({object::NewControllerRef(job, "batch/v1", "Job")});
  std::string prefix = name + "-";
  if (prefix.size() > kMaxGenerateName) prefix = prefix.substr(0, kMaxGenerateName);
  meta["generateName"] = prefix;
  base["metadata"] = meta;
  base["spec"] = At(tmpl, "spec");
  if (indexed) {
    // JOB_COMPLETION_INDEX from the annotation, in every container that
    // does not set it itself.
    Json env = {{"name", "JOB_COMPLETION_INDEX"},
                {"valueFrom",
                 {{"fieldRef",
                   {{"fieldPath", std::string("metadata.annotations['") +
                                      kJobCompletionIndexAnnotation + "']"}}}}}};
    for (const char* list : {"initContainers", "containers"}) {
      if (!base["spec"].contains(list) || !base["spec"][list].is_array()) continue;
      for (Json& c : base["spec"][list]) {
        bool has = false;
        for (const Json& e : Array(c, "env")) has = has || Str(e, "name") == "JOB_COMPLETION_INDEX";
        if (!has) c["env"].push_back(env);
      }
    }
  }

  {
    std::lock_guard l(mu_);
    Expectations& e = ExpectationsFor(s.key);
    e.adds += count;
    e.set_at = clock_.Now();
  }
  int64_t created = 0;
  for (int64_t i = 0; i < count; ++i) {
    Json pod = base;
    if (indexed) {
      std::string ix = std::to_string(indexes[static_cast<size_t>(i)]);
      pod["metadata"]["annotations"][kJobCompletionIndexAnnotation] = ix;
      pod["metadata"]["labels"][kJobCompletionIndexAnnotation] = ix;
      pod["spec"]["hostname"] = name + "-" + ix;
      std::string append = "-" + ix + "-";
      std::string gen = name + append;
      if (gen.size() > kMaxGenerateName) gen = gen.substr(0, kMaxGenerateName - append.size()) + append;
      pod["metadata"]["generateName"] = gen;
    }
    try {
      Json made = identity_.client().Create(PodsResource(), ns, pod);
      identity_.events().Normal(AsJob(job), "SuccessfulCreate",
                                "Created pod: " + object::Name(made));
      ++created;
    } catch (const Error& e) {
      {
        std::lock_guard l(mu_);
        ExpectationsFor(s.key).adds -= count - i;  // none of the rest will be seen
      }
      s.create_failed = true;
      // A terminating namespace refuses every pod: nothing to report.
      if (e.message().find("because it is being terminated") == std::string::npos) {
        identity_.events().Warning(AsJob(job), "FailedCreate",
                                   std::string("Error creating: ") + e.what());
        log::Warn("job-controller: creating a pod of {}: {}", s.key, e.what());
      }
      break;
    }
  }
  return created;
}

int64_t JobController::DeletePods(const Json& job, const std::vector<ObjectPtr>& pods,
                                  bool remove_finalizer, bool expect, int64_t* ready_deleted) {
  if (pods.empty()) return 0;
  std::string key = object::Key(job);
  if (expect) {
    std::lock_guard l(mu_);
    Expectations& e = ExpectationsFor(key);
    e.dels += static_cast<int64_t>(pods.size());
    e.set_at = clock_.Now();
  }
  int64_t deleted = 0;
  for (const auto& p : pods) {
    bool ok = true;
    if (remove_finalizer && HasTrackingFinalizer(*p)) ok = RemoveFinalizer(*p);
    if (ok) {
      try {
        identity_.client().Delete(PodsResource(), object::Namespace(*p), object::Name(*p));
        identity_.events().Normal(AsJob(job), "SuccessfulDelete",
                                  "Deleted pod: " + object::Name(*p));
      } catch (const Error& e) {
        if (e.code() != Code::kNotFound) {
          identity_.events().Warning(AsJob(job), "FailedDelete",
                                     std::string("Error deleting: ") + e.what());
          ok = false;
        }
      }
    }
    if (!ok) {
      if (expect) {
        std::lock_guard l(mu_);
        ExpectationsFor(key).dels--;
      }
      continue;
    }
    ++deleted;
    if (IsReady(*p)) ++*ready_deleted;
  }
  return deleted;
}

Result JobController::SyncJob(const std::string& key, Json job) {
  if (!job_util::FinishedConditionType(job).empty()) {
    std::lock_guard l(mu_);
    backoff_.erase(key);
    return Result::Done();
  }
  const Json& spec = At(job, "spec");
  std::string mode = Str(spec, "completionMode");
  if (!mode.empty() && mode != "NonIndexed" && mode != "Indexed") {
    identity_.events().Warning(AsJob(job), "UnknownCompletionMode",
                               "Skipped Job sync because completion mode is unknown");
    return Result::Done();
  }
  const Json original_status = At(job, "status");
  // A copy: `job` is replaced by what each status write returns.
  Json status = original_status;
  const bool indexed = Indexed(job);
  const std::optional<int64_t> completions = Int(spec, "completions");
  const int64_t parallelism = Int(spec, "parallelism").value_or(1);
  const int64_t backoff_limit = Int(spec, "backoffLimit").value_or(6);
  const bool suspended = Suspended(job);
  const bool deleting = object::IsBeingDeleted(job);
  const SysTime now = wall_.Now();
  auto valid_index = [&](const Json& p) {
    int64_t ix = CompletionIndex(p);
    return ix >= 0 && ix < completions.value_or(0);
  };

  std::set<std::string> unc_succeeded, unc_failed;
  const Json& unc = At(status, "uncountedTerminatedPods");
  for (const Json& u : Array(unc, "succeeded")) {
    if (u.is_string()) unc_succeeded.insert(u.get<std::string>());
  }
  for (const Json& u : Array(unc, "failed")) {
    if (u.is_string()) unc_failed.insert(u.get<std::string>());
  }
  bool satisfied;
  std::set<std::string> rm_expected;
  {
    std::lock_guard l(mu_);
    Expectations& e = ExpectationsFor(key);
    satisfied = (e.adds <= 0 && e.dels <= 0) || clock_.Now() - e.set_at > kExpectationsTimeout;
    if (satisfied) e.adds = e.dels = 0;
    rm_expected = e.rm_finalizers;
  }

  Sync s;
  s.key = key;
  s.pods = PodsOf(job);
  std::vector<ObjectPtr> active_pods;
  for (const auto& p : s.pods) {
    if (IsActive(*p)) {
      active_pods.push_back(p);
      if (IsReady(*p)) ++s.ready;
    }
    if (IsTerminatingPod(*p)) ++s.terminating;
  }
  s.active = static_cast<int64_t>(active_pods.size());

  // Finished pods not counted anywhere yet.
  std::vector<ObjectPtr> new_succeeded, new_failed;
  for (const auto& p : s.pods) {
    std::string uid = object::Uid(*p);
    if (!HasTrackingFinalizer(*p) || unc_succeeded.count(uid) || unc_failed.count(uid) ||
        rm_expected.count(uid)) {
      continue;
    }
    if (indexed && !valid_index(*p)) continue;
    if (Phase(*p) == "Succeeded") {
      new_succeeded.push_back(p);
    } else if (IsPodFailed(*p, job)) {
      new_failed.push_back(p);
    }
  }
  s.succeeded = Int(status, "succeeded").value_or(0) + static_cast<int64_t>(new_succeeded.size()) +
                static_cast<int64_t>(unc_succeeded.size());
  const int64_t failed = Int(status, "failed").value_or(0) +
                         static_cast<int64_t>(new_failed.size()) +
                         static_cast<int64_t>(unc_failed.size());
  std::set<int64_t> prev_succeeded_indexes;
  if (indexed) {
    prev_succeeded_indexes = ParseIndexes(Str(status, "completedIndexes"), completions.value_or(0));
    s.succeeded_indexes = prev_succeeded_indexes;
    for (const auto& p : s.pods) {
      if (Phase(*p) == "Succeeded" && valid_index(*p)) s.succeeded_indexes.insert(CompletionIndex(*p));
    }
    s.succeeded = static_cast<int64_t>(s.succeeded_indexes.size());
  }

  if (!Has(status, "startTime") && !suspended) status["startTime"] = object::FormatRfc3339(now);

  // The pod failure back-off after this sync (upstream's newBackoffRecord).
  Backoff backoff;
  {
    std::lock_guard l(mu_);
    backoff = backoff_[key];
  }
  {
    auto by_time = [](const ObjectPtr& a, const ObjectPtr& b) {
      return FinishedTime(*a) < FinishedTime(*b);
    };
    std::vector<ObjectPtr> ns = new_succeeded, nf = new_failed;
    std::sort(ns.begin(), ns.end(), by_time);
    std::sort(nf.begin(), nf.end(), by_time);
    if (ns.empty()) {
      if (!nf.empty()) {
        backoff.failures += static_cast<int64_t>(nf.size());
        backoff.last_failure = FinishedTime(*nf.back());
      }
    } else {
      backoff = Backoff{};
      SysTime last_success = FinishedTime(*ns.back());
      for (auto it = nf.rbegin(); it != nf.rend(); ++it) {
        SysTime t = FinishedTime(**it);
        if (t <= last_success) break;
        if (!backoff.last_failure) backoff.last_failure = t;
        backoff.failures++;
      }
    }
  }

  // The condition the Job is heading for.
  struct Finish {
    std::string type, reason, message;
  };
  std::optional<Finish> finished;
  if (const Json* c = FindCondition(job, "SuccessCriteriaMet"); c && Str(*c, "status") == "True") {
    finished = Finish{"SuccessCriteriaMet", Str(*c, "reason"), Str(*c, "message")};
  } else if (const Json* t = FindCondition(job, "FailureTarget");
             t && Str(*t, "status") == "True") {
    finished = Finish{"Failed", Str(*t, "reason"), Str(*t, "message")};
  } else if (failed > backoff_limit || PastBackoffLimitOnFailure(job, s.pods)) {
    finished = Finish{"FailureTarget", "BackoffLimitExceeded",
                      "Job has reached the specified backoff limit"};
  } else if (auto ads = Int(spec, "activeDeadlineSeconds"); ads && !suspended) {
    auto start = TimeAt(status, "startTime");
    if (start) {
      auto deadline = *start + std::chrono::seconds(*ads);
      if (now >= deadline) {
        finished = Finish{"FailureTarget", "DeadlineExceeded",
                          "Job was active longer than specified deadline"};
      } else {
        s.RequeueAt(deadline);
      }
    }
  }

  std::string manage_error;
  if (finished) {
    if (finished->type != "SuccessCriteriaMet") {
      // Failing: stop every active pod (keeping finalizers, so each is
      // counted). Not expected as deletions, as upstream: a pod the cache
      // still shows running is deleted again by the next sync.
      int64_t ready_deleted = 0;
      int64_t deleted = DeletePods(job, active_pods, false, false, &ready_deleted);
      if (deleted != s.active || !satisfied) finished.reset();
      s.active -= deleted;
      s.terminating += deleted;
      s.ready -= ready_deleted;
    } else if (s.active > 0) {
      int64_t ready_deleted = 0;
      int64_t deleted = DeletePods(job, active_pods, false, false, &ready_deleted);
      s.active -= deleted;
      s.terminating += deleted;
      s.ready -= ready_deleted;
    }
  } else {
    bool managed = false;
    if (satisfied && !deleting) {
      managed = true;
      if (suspended) {
        int64_t ready_deleted = 0;
        int64_t removed = DeletePods(job, active_pods, true, true, &ready_deleted);
        s.active -= removed;
        s.terminating += removed;
        s.ready -= ready_deleted;
      } else {
        int64_t want;
        if (!completions) {
          want = s.succeeded > 0 ? s.active : parallelism;
        } else {
          want = std::clamp<int64_t>(*completions - s.succeeded, 0, parallelism);
        }
        // Pods to give up: for Indexed Jobs those without a valid index or
        // repeating one, then the least advanced ones.
        std::vector<ObjectPtr> rm, left;
        if (indexed) {
          std::set<int64_t> seen;
          std::vector<ObjectPtr> sorted = active_pods;
          std::sort(sorted.begin(), sorted.end(),
                    [](const ObjectPtr& a, const ObjectPtr& b) { return DeleteFirst(b, a); });
          for (const auto& p : sorted) {
            int64_t ix = CompletionIndex(*p);
            if (!valid_index(*p) || !seen.insert(ix).second) {
              rm.push_back(p);
            } else {
              left.push_back(p);
            }
          }
        } else {
          left = active_pods;
        }
        int64_t rm_at_least = std::max<int64_t>(0, s.active - want);
        if (static_cast<int64_t>(rm.size()) < rm_at_least) {
          std::sort(left.begin(), left.end(), DeleteFirst);
          for (size_t i = 0; static_cast<int64_t>(rm.size()) < rm_at_least && i < left.size(); ++i) {
            rm.push_back(left[i]);
          }
        }
        if (!rm.empty()) {
          int64_t ready_deleted = 0;
          int64_t removed = DeletePods(job, rm, true, true, &ready_deleted);
          s.active -= removed;
          s.terminating += removed;
          s.ready -= ready_deleted;
        } else {
          int64_t terminating_held = OnlyReplaceFailedPods(job) ? s.terminating : 0;
          int64_t diff = want - terminating_held - s.active;
          if (diff > 0) {
            Clock::Duration wait = Clock::Duration::zero();
            if (backoff.last_failure) {
              wait = PodFailureBackoffRemaining(backoff.failures, *backoff.last_failure, now,
                                                opts_.pod_failure_backoff,
                                                opts_.max_pod_failure_backoff);
            }
            if (wait > Clock::Duration::zero()) {
              s.RequeueAt(now + std::chrono::duration_cast<SysTime::duration>(wait));
            } else {
              s.active += CreatePods(job, s, diff);
              if (s.create_failed) manage_error = "could not create every pod";
            }
          }
        }
      }
    }
    bool complete = completions ? (s.succeeded >= *completions && s.active == 0)
                                : (s.succeeded > 0 && s.active == 0);
    if (complete) {
      finished = Finish{"SuccessCriteriaMet", "CompletionsReached",
                        "Reached expected number of succeeded pods"};
    } else if (managed) {
      if (suspended) {
        if (EnsureCondition(status, "Suspended", "True", "JobSuspended", "Job suspended", now)) {
          identity_.events().Normal(AsJob(job), "Suspended", "Job suspended");
        }
      } else if (EnsureCondition(status, "Suspended", "False", "JobResumed", "Job resumed", now)) {
        identity_.events().Normal(AsJob(job), "Resumed", "Job resumed");
        // activeDeadlineSeconds counts continuous activity: start again.
        status["startTime"] = object::FormatRfc3339(now);
      }
    }
  }

  // active, succeeded and failed are omitted when 0 (omitempty), ready and
  // terminating are not (pointers), as the API's JobStatus marshals.
  auto set_count = [&status](const char* field, int64_t v) {
    if (v == 0) {
      status.erase(field);
    } else {
      status[field] = v;
    }
  };
  set_count("active", s.active);
  status["ready"] = s.ready;
  status["terminating"] = s.terminating;

  // Counting (upstream's trackJobStatusAndRemoveFinalizers).
  std::set<std::string> with_finalizer;
  for (const auto& p : s.pods) {
    std::string uid = object::Uid(*p);
    if (HasTrackingFinalizer(*p) && !rm_expected.count(uid)) with_finalizer.insert(uid);
  }
  // Uncounted uids whose pod no longer holds the finalizer move to the counts.
  auto flush_uncounted = [&] {
    int64_t done_s = 0, done_f = 0;
    for (auto it = unc_succeeded.begin(); it != unc_succeeded.end();) {
      if (with_finalizer.count(*it)) {
        ++it;
      } else {
        it = unc_succeeded.erase(it);
        ++done_s;
      }
    }
    for (auto it = unc_failed.begin(); it != unc_failed.end();) {
      if (with_finalizer.count(*it)) {
        ++it;
      } else {
        it = unc_failed.erase(it);
        ++done_f;
      }
    }
    if (!indexed) set_count("succeeded", Int(status, "succeeded").value_or(0) + done_s);
    set_count("failed", Int(status, "failed").value_or(0) + done_f);
    Json u = Json::object();
    if (!unc_succeeded.empty()) u["succeeded"] = unc_succeeded;
    if (!unc_failed.empty()) u["failed"] = unc_failed;
    status["uncountedTerminatedPods"] = u;
  };
  flush_uncounted();

  std::vector<ObjectPtr> to_remove;
  for (const auto& p : s.pods) {
    std::string uid = object::Uid(*p);
    if (!HasTrackingFinalizer(*p) || rm_expected.count(uid)) continue;
    bool considered_failed = IsPodFailed(*p, job);
    bool can_remove = deleting || finished || Phase(*p) == "Succeeded" || considered_failed;
    if (!can_remove) continue;
    to_remove.push_back(p);
    if (Phase(*p) == "Succeeded" && !unc_failed.count(uid)) {
      if (indexed) {
        // The index itself keeps a success from being counted twice.
        if (valid_index(*p)) s.succeeded_indexes.insert(CompletionIndex(*p));
      } else {
        unc_succeeded.insert(uid);
      }
    } else if (considered_failed || (finished && finished->type != "SuccessCriteriaMet")) {
      if (!unc_failed.count(uid) && (!indexed || valid_index(*p))) unc_failed.insert(uid);
    }
  }
  {
    Json u = Json::object();
    if (!unc_succeeded.empty()) u["succeeded"] = unc_succeeded;
    if (!unc_failed.empty()) u["failed"] = unc_failed;
    status["uncountedTerminatedPods"] = u;
  }
  if (indexed) {
    status["completedIndexes"] = FormatIndexes(s.succeeded_indexes);
    set_count("succeeded", static_cast<int64_t>(s.succeeded_indexes.size()));
  }
  if (finished && finished->type == "FailureTarget") {
    EnsureCondition(status, "FailureTarget", "True", finished->reason, finished->message, now);
    finished->type = "Failed";
  }
  if (finished && finished->type == "SuccessCriteriaMet") {
    if (!HasTrueCondition(job, "SuccessCriteriaMet")) {
      EnsureCondition(status, "SuccessCriteriaMet", "True", finished->reason, finished->message,
                      now);
    }
    finished->type = "Complete";
  }

  // Flush 1: the uncounted uids (and interim conditions) before any
  // finalizer goes, so that no finished pod is ever lost.
  Json written_status = original_status;
  if (status != original_status) {
    job["status"] = status;
    job = WriteStatus(job);
    written_status = At(job, "status");
    status = written_status;
  }
  {
    std::lock_guard l(mu_);
    backoff_[key] = backoff;
  }

  if (!to_remove.empty()) {
    {
      std::lock_guard l(mu_);
      for (const auto& p : to_remove) ExpectationsFor(key).rm_finalizers.insert(object::Uid(*p));
    }
    for (const auto& p : to_remove) {
      if (RemoveFinalizer(*p)) {
        with_finalizer.erase(object::Uid(*p));
      } else {
        std::lock_guard l(mu_);
        ExpectationsFor(key).rm_finalizers.erase(object::Uid(*p));
        manage_error = "could not remove a tracking finalizer";
      }
    }
  }
  flush_uncounted();

  bool enacted = false;
  if (finished && unc_succeeded.empty() && unc_failed.empty() && s.terminating == 0 &&
      manage_error.empty()) {
    EnsureCondition(status, finished->type, "True", finished->reason, finished->message, now);
    if (finished->type == "Complete") status["completionTime"] = object::FormatRfc3339(now);
    enacted = true;
  }
  if (status != written_status) {
    job["status"] = status;
    job = WriteStatus(job);
  }
  if (enacted) {
    if (finished->type == "Complete") {
      if (completions && Int(job["status"], "succeeded").value_or(0) > *completions) {
        identity_.events().Warning(AsJob(job), "TooManySucceededPods",
                                   "Too many succeeded pods running after completion count "
                                   "reached");
      }
      identity_.events().Normal(AsJob(job), "Completed", "Job completed");
    } else {
      identity_.events().Warning(AsJob(job), finished->reason, finished->message);
    }
    std::lock_guard l(mu_);
    backoff_.erase(key);
  }
  if (!manage_error.empty()) throw Error::Internal(key + ": " + manage_error);
  if (s.requeue_at) {
    auto left = std::chrono::duration_cast<Clock::Duration>(*s.requeue_at - wall_.Now());
    return Result::After(std::max(left, Clock::Duration::zero()));
  }
  return Result::Done();
}

// --- TTL after finished ---

TtlAfterFinishedController::TtlAfterFinishedController(SharedInformerFactory& informers,
                                                       Client& client,
                                                       TtlAfterFinishedOptions opts)
    : clock_(opts.clock ? *opts.clock : RealClock()),
      wall_(clock_),
      identity_(client, "ttl-after-finished-controller"),
      jobs_(informers.For(JobsResource())),
      queue_(WorkQueueOptions{.clock = &clock_}),
      workers_("ttl-after-finished", queue_,
               [this](const std::string& key) { return Reconcile(key); }) {}

TtlAfterFinishedController::~TtlAfterFinishedController() { Stop(); }

void TtlAfterFinishedController::Start() {
  if (started_ || stopped_) return;
  started_ = true;
  auto maybe = [this](const Json& job) {
    if (Has(At(job, "spec"), "ttlSecondsAfterFinished") &&
        !job_util::FinishedConditionType(job).empty()) {
      queue_.Add(object::Key(job));
    }
  };
  InformerHandlers h;
  h.on_add = maybe;
  h.on_update = [maybe](const Json&, const Json& j) { maybe(j); };
  handlers_ = jobs_.AddHandlers(std::move(h));
  workers_.Start(1, {&jobs_});
}

void TtlAfterFinishedController::Stop() {
  if (stopped_) return;
  stopped_ = true;
  workers_.Stop();
  if (started_) jobs_.RemoveHandlers(handlers_);
}

Result TtlAfterFinishedController::Reconcile(const std::string& key) {
  auto [ns, name] = object::SplitKey(key);
  ObjectPtr job = jobs_.Lookup(ns, name);
  if (!job || object::IsBeingDeleted(*job)) return Result::Done();
  auto ttl = Int(At(*job, "spec"), "ttlSecondsAfterFinished");
  auto finish = job_util::FinishTime(*job);
  if (!ttl || !finish) return Result::Done();
  SysTime expire = *finish + std::chrono::seconds(*ttl);
  SysTime now = wall_.Now();
  if (now < expire) return Result::After(std::chrono::duration_cast<Clock::Duration>(expire - now));
  // The cache may be stale: the TTL may have been changed or removed.
  Json fresh;
  try {
    fresh = identity_.client().Get(JobsResource(), ns, name);
  } catch (const Error& e) {
    if (e.code() == Code::kNotFound) return Result::Done();
    throw;
  }
  auto fresh_ttl = Int(At(fresh, "spec"), "ttlSecondsAfterFinished");
  auto fresh_finish = job_util::FinishTime(fresh);
  if (!fresh_ttl || !fresh_finish || object::IsBeingDeleted(fresh)) return Result::Done();
  expire = *fresh_finish + std::chrono::seconds(*fresh_ttl);
  if (now < expire) return Result::After(std::chrono::duration_cast<Clock::Duration>(expire - now));
  DeleteOptions del;
  del.propagation_policy = "Background";
  del.precondition_uid = object::Uid(fresh);
  del.precondition_resource_version = object::ResourceVersion(fresh);
  try {
    identity_.client().Delete(JobsResource(), ns, name, del);
    log::Info("ttl-after-finished-controller: deleted job {} ({} s after it finished)", key,
              *fresh_ttl);
  } catch (const Error& e) {
    if (e.code() != Code::kNotFound) throw;
  }
  return Result::Done();
}

}  // namespace kin::controllers
