#include "controllers/daemonset.h"

#include <algorithm>

#include "base/error.h"
#include "base/log.h"
#include "client/object.h"
#include "client/selector.h"
#include "controllers/scheduler.h"

namespace kin::controllers {
namespace {

constexpr char kApiVersion[] = "apps/v1";
constexpr char kKind[] = "DaemonSet";
constexpr char kComponent[] = "daemonset-controller";
// The deprecated annotation kube-apiserver keeps spec.templateGeneration in.
constexpr char kTemplateGenerationAnnotation[] = "deprecated.daemonset.template.generation";

const ResourceInfo& DaemonSets() { return *FindResource("apps", "v1", "daemonsets"); }

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
int64_t Int(const Json& j, const char* key, int64_t def = 0) {
  if (!j.is_object()) return def;
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : def;
}

// --- Node fitness, as the scheduler's filters see a daemon pod. ---

bool Tolerates(const Json& tol, const Json& taint) {
  std::string effect = Str(tol, "effect");
  if (!effect.empty() && effect != Str(taint, "effect")) return false;
  std::string key = Str(tol, "key");
  if (!key.empty() && key != Str(taint, "key")) return false;
  std::string op = Str(tol, "operator");
  if (op == "Exists") return true;
  if (op.empty() || op == "Equal") return Str(tol, "value") == Str(taint, "value");
  return false;
}

// True when some taint with one of `effects` is not tolerated.
bool HasUntoleratedTaint(const Json& node, const std::vector<const Json*>& tolerations,
                         std::initializer_list<const char*> effects) {
  for (const Json* t : Items(Obj(node, "spec"), "taints")) {
    std::string effect = Str(*t, "effect");
    if (std::none_of(effects.begin(), effects.end(), [&](const char* e) { return effect == e; })) {
      continue;
    }
    if (std::none_of(tolerations.begin(), tolerations.end(),
                     [&](const Json* tol) { return Tolerates(*tol, *t); })) {
      return true;
    }
  }
  return false;
}

bool ParseInt(const std::string& s, int64_t& out) {
  if (s.empty()) return false;
  size_t used = 0;
  try {
    out = std::stoll(s, &used, 10);
  } catch (...) {
    return false;
  }
  return used == s.size();
}

// v1helper.AddOrUpdateTolerationInPodSpec: an identical toleration (key,
// operator, value, effect) is replaced, else the toleration is appended.
void AddOrUpdateToleration(Json& spec, const Json& tol) {
  if (!spec.contains("tolerations") || !spec["tolerations"].is_array()) {
    spec["tolerations"] = Json::array();
  }
  for (Json& t : spec["tolerations"]) {
    if (Str(t, "key") == Str(tol, "key") && Str(t, "operator") == Str(tol, "operator") &&
        Str(t, "value") == Str(tol, "value") && Str(t, "effect") == Str(tol, "effect")) {
      t = tol;
      return;
    }
  }
  spec["tolerations"].push_back(tol);
}

// util.AddOrUpdateDaemonPodTolerations.
void AddDaemonPodTolerations(Json& spec) {
  auto add = [&](const char* key, const char* effect) {
    AddOrUpdateToleration(spec, {{"key", key}, {"operator", "Exists"}, {"effect", effect}});
  };
  add("node.kubernetes.io/not-ready", "NoExecute");
  add("node.kubernetes.io/unreachable", "NoExecute");
  add("node.kubernetes.io/disk-pressure", "NoSchedule");
  add("node.kubernetes.io/memory-pressure", "NoSchedule");
  add("node.kubernetes.io/pid-pressure", "NoSchedule");
  add("node.kubernetes.io/unschedulable", "NoSchedule");
  if (spec.value("hostNetwork", false)) add("node.kubernetes.io/network-unavailable", "NoSchedule");
}

// The template generation pods are labelled with: the deprecated annotation
// kube-apiserver maintains, else metadata.generation (kin's API server does
// not keep spec.templateGeneration).
std::optional<int64_t> AnnotatedTemplateGeneration(const Json& ds) {
  std::string a = Str(Obj(Obj(ds, "metadata"), "annotations"), kTemplateGenerationAnnotation);
  int64_t g = 0;
  if (!a.empty() && ParseInt(a, g)) return g;
  return std::nullopt;
}
int64_t TemplateGeneration(const Json& ds) {
  return AnnotatedTemplateGeneration(ds).value_or(Int(Obj(ds, "metadata"), "generation", 1));
}

// util.IsPodUpdated.
bool IsPodUpdated(const Json& pod, const std::string& hash, const Json& ds) {
  const Json& labels = object::Labels(pod);
  if (!hash.empty() && Str(labels, kControllerRevisionHashLabel) == hash) return true;
  auto gen = AnnotatedTemplateGeneration(ds);
  return gen && Str(labels, kPodTemplateGenerationLabel) == std::to_string(*gen);
}

// podByCreationTimestampAndPhase: scheduled first, then oldest, then name.
void SortPods(std::vector<ObjectPtr>& pods) {
  std::sort(pods.begin(), pods.end(), [](const ObjectPtr& a, const ObjectPtr& b) {
    bool sa = !Str(Obj(*a, "spec"), "nodeName").empty();
    bool sb = !Str(Obj(*b, "spec"), "nodeName").empty();
    if (sa != sb) return sa;
    auto ta = object::ParseRfc3339(object::StringAt(*a, "metadata", "creationTimestamp"));
    auto tb = object::ParseRfc3339(object::StringAt(*b, "metadata", "creationTimestamp"));
    if (ta && tb && *ta != *tb) return *ta < *tb;
    return object::Name(*a) < object::Name(*b);
  });
}

struct NodePods {
  std::vector<ObjectPtr> pods;  // sorted by SortPods
};

}  // namespace

DaemonNodeFit NodeShouldRunDaemonPod(const Json& node, const Json& ds) {
  Json spec = Obj(Obj(Obj(ds, "spec"), "template"), "spec");
  std::string fixed = Str(spec, "nodeName");
  if (!fixed.empty() && fixed != object::Name(node)) return {};
  AddDaemonPodTolerations(spec);
  if (!PodSpecMatchesNodeAffinity(spec, node)) return {};
  auto tolerations = Items(spec, "tolerations");
  if (HasUntoleratedTaint(node, tolerations, {"NoSchedule", "NoExecute"})) {
    // A pod already there may stay unless a NoExecute taint would evict it.
    return {false, !HasUntoleratedTaint(node, tolerations, {"NoExecute"})};
  }
  return {true, true};
}

Json NewDaemonPod(const Json& ds, const std::string& node, const std::string& hash) {
  Json pod = PodFromTemplate(ds, kApiVersion, kKind);
  pod["metadata"]["generateName"] = object::Name(ds) + "-";
  Json& labels = pod["metadata"]["labels"];
  labels[kPodTemplateGenerationLabel] = std::to_string(TemplateGeneration(ds));
  if (!hash.empty()) labels[kControllerRevisionHashLabel] = hash;
  Json& spec = pod["spec"];
  if (!spec.is_object()) spec = Json::object();
  AddDaemonPodTolerations(spec);
  // util.ReplaceDaemonSetPodNodeNameNodeAffinity: the scheduler binds it.
  Json term = {{"matchFields",
                Json::array({{{"key", "metadata.name"}, {"operator", "In"}, {"values", {node}}}})}};
  if (!spec.contains("affinity") || !spec["affinity"].is_object()) spec["affinity"] = Json::object();
  Json& aff = spec["affinity"];
  if (!aff.contains("nodeAffinity") || !aff["nodeAffinity"].is_object()) {
    aff["nodeAffinity"] = Json::object();
  }
  aff["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] = {
      {"nodeSelectorTerms", Json::array({term})}};
  return pod;
}

std::string DaemonPodTargetNode(const Json& pod) {
  const Json& spec = Obj(pod, "spec");
  std::string n = Str(spec, "nodeName");
  if (!n.empty()) return n;
  const Json& req = Obj(Obj(Obj(spec, "affinity"), "nodeAffinity"),
                        "requiredDuringSchedulingIgnoredDuringExecution");
  for (const Json* term : Items(req, "nodeSelectorTerms")) {
    for (const Json* f : Items(*term, "matchFields")) {
      if (Str(*f, "key") != "metadata.name" || Str(*f, "operator") != "In") continue;
      auto v = f->find("values");
      if (v != f->end() && v->is_array() && v->size() == 1 && (*v)[0].is_string()) {
        return (*v)[0].get<std::string>();
      }
    }
  }
  return "";
}

DaemonSetController::DaemonSetController(SharedInformerFactory& informers, Client& client,
                                         DaemonSetOptions opts)
    : opts_(std::move(opts)),
      clock_(opts_.clock ? *opts_.clock : RealClock()),
      wall_(clock_),
      identity_(client, kComponent),
      dss_(informers.For(DaemonSets())),
      pods_(informers.For(PodsResource())),
      nodes_(informers.For(NodesResource())),
      history_(opts_.history ? std::move(opts_.history)
                             : NewRevisionStore(informers, identity_.client())),
      queue_(WorkQueueOptions{.clock = &clock_}),
      workers_("daemonset", queue_, [this](const std::string& key) { return Sync(key); }) {}

DaemonSetController::~DaemonSetController() { Stop(); }

void DaemonSetController::Start() {
  if (!run_state_.TryStart()) return;
  subscriptions_.Add(dss_, HandlersFrom([this](const Json* old, const Json* now) {
    if (!now) {
      {
        std::lock_guard l(mu_);
        expectations_.erase(object::Key(*old));
      }
      history_->ForgetParent(object::Uid(*old));
    }
    queue_.Add(object::Key(now ? *now : *old));
  }));
  subscriptions_.Add(pods_, EnqueueControllerHandlers(queue_, kApiVersion, kKind));
  subscriptions_.Add(nodes_, HandlersFrom([this](const Json* o, const Json* n) { OnNode(o, n); }));
  std::vector<const Informer*> wait = {&dss_, &pods_, &nodes_};
  if (history_->informer()) wait.push_back(history_->informer());
  workers_.Start(opts_.workers, wait);
}

void DaemonSetController::Stop() {
  if (!run_state_.TryStop()) return;
  workers_.Stop();
  subscriptions_.RemoveAll();
}

void DaemonSetController::OnNode(const Json* old, const Json* now) {
  if (old && now) {
    // Heartbeats and status changes do not change where daemons run.
    auto relevant = [](const Json& n) {
      return Json{Obj(Obj(n, "metadata"), "labels"), Obj(n, "spec")};
    };
    if (relevant(*old) == relevant(*now)) return;
  }
  EnqueueAll();
}

void DaemonSetController::EnqueueAll() {
  for (const ObjectPtr& d : dss_.Items()) queue_.Add(object::Key(*d));
}

void DaemonSetController::ExpectCreate(const std::string& key, const std::string& pod_key) {
  std::lock_guard l(mu_);
  auto& e = expectations_[key];
  if (e.creates.empty() && e.deletes.empty()) e.since = clock_.Now();
  e.creates.insert(pod_key);
}

void DaemonSetController::ExpectDelete(const std::string& key, const std::string& pod_uid) {
  std::lock_guard l(mu_);
  auto& e = expectations_[key];
  if (e.creates.empty() && e.deletes.empty()) e.since = clock_.Now();
  e.deletes.insert(pod_uid);
}

bool DaemonSetController::Satisfied(const std::string& key) {
  std::lock_guard l(mu_);
  auto it = expectations_.find(key);
  if (it == expectations_.end()) return true;
  auto& e = it->second;
  std::erase_if(e.creates, [&](const std::string& k) { return pods_.LookupKey(k) != nullptr; });
  if (!e.deletes.empty()) {
    std::set<std::string> seen;
    auto [ns, name] = object::SplitKey(key);
    for (const ObjectPtr& p : pods_.ByIndex(kNamespaceIndex, ns)) {
      if (e.deletes.count(object::Uid(*p)) && !object::IsBeingDeleted(*p)) {
        seen.insert(object::Uid(*p));
      }
    }
    e.deletes = std::move(seen);
  }
  if ((e.creates.empty() && e.deletes.empty()) ||
      clock_.Now() - e.since >= opts_.expectations_timeout) {
    if (!e.creates.empty() || !e.deletes.empty()) {
      log::Warn("daemonset {}: gave up waiting to see {} creates and {} deletes", key,
                e.creates.size(), e.deletes.size());
    }
    expectations_.erase(it);
    return true;
  }
  return false;
}

Result DaemonSetController::Sync(const std::string& key) {
  auto [ns, name] = object::SplitKey(key);
  ObjectPtr cached = dss_.Lookup(ns, name);
  if (!cached) return Result::Done();
  if (object::IsBeingDeleted(*cached)) return Result::Done();  // the GC removes the pods
  const Json ds = WithKind(*cached, kApiVersion, kKind);
  const Json& spec = Obj(ds, "spec");
  const Json& status = Obj(ds, "status");

  LabelSelector selector;
  try {
    selector = LabelSelector::FromJson(Obj(spec, "selector"), "spec.selector");
  } catch (const Error& e) {
    identity_.events().Warning(ds, "InvalidSelector", e.message());
    return Result::Done();
  }

  // The revision of the current template.
  int64_t collisions = Int(status, "collisionCount");
  const Json& tmpl = Obj(spec, "template");
  RevisionSync revs = SyncUpdateRevision(
      *history_, ds, kApiVersion, kKind,
      [&](int64_t cc) { return ComputeHash(tmpl, cc); }, collisions);
  std::string hash = Str(object::Labels(revs.update), kControllerRevisionHashLabel);

  // Nodes and the pods meant for each.
  std::map<std::string, ObjectPtr> nodes;
  for (const ObjectPtr& n : nodes_.Items()) nodes[object::Name(*n)] = n;
  std::map<std::string, NodePods> by_node;
  std::set<std::string> live_hashes;
  // The pods are listed only after the expectations were found satisfied
  // (upstream lists in manage and again in rollingUpdate): a pod we created
  // that reached the cache between an earlier listing and the check would be
  // missed by the listing yet clear the expectation, and be created twice.
  auto list_pods = [&] {
    by_node.clear();
    live_hashes.clear();
    for (const ObjectPtr& p : pods_.ByIndex(kOwnerUidIndex, object::Uid(ds))) {
      if (!object::IsControlledBy(*p, ds) || !selector.Matches(object::Labels(*p))) continue;
      std::string target = DaemonPodTargetNode(*p);
      if (target.empty()) continue;
      live_hashes.insert(Str(object::Labels(*p), kControllerRevisionHashLabel));
      by_node[target].pods.push_back(p);
    }
    for (auto& [n, np] : by_node) SortPods(np.pods);
  };
  std::map<std::string, DaemonNodeFit> fits;
  for (const auto& [n, node] : nodes) fits[n] = NodeShouldRunDaemonPod(*node, ds);

  const int64_t min_ready = Int(spec, "minReadySeconds");
  const auto now = wall_.Now();
  const Json& strategy = Obj(spec, "updateStrategy");
  const bool rolling = Str(strategy, "type") != "OnDelete";
  int64_t desired = 0;
  for (const auto& [n, f] : fits) desired += f.should_run ? 1 : 0;
  int64_t max_surge = 0, max_unavailable = 0;
  if (rolling) {
    const Json& ru = Obj(strategy, "rollingUpdate");
    try {
      max_surge = ScaledValue(ru.value("maxSurge", Json()), desired, true,
                              "spec.updateStrategy.rollingUpdate.maxSurge");
      max_unavailable = ScaledValue(ru.value("maxUnavailable", Json(1)), desired, true,
                                    "spec.updateStrategy.rollingUpdate.maxUnavailable");
    } catch (const Error& e) {
      identity_.events().Warning(ds, "InvalidUpdateStrategy", e.message());
      return Result::Done();
    }
    if (desired > 0 && max_surge == 0 && max_unavailable == 0) max_unavailable = 1;
  }
  const bool surge = rolling && max_surge > 0;

  std::vector<std::string> create_on;
  std::vector<ObjectPtr> to_delete;
  std::vector<std::string> errors;

  auto sync_nodes = [&]() {
    for (const ObjectPtr& p : to_delete) {
      try {
        DeleteOptions o;
        o.precondition_uid = object::Uid(*p);
        identity_.client().Delete(PodsResource(), ns, object::Name(*p), o);
        ExpectDelete(key, object::Uid(*p));
        identity_.events().Normal(ds, "SuccessfulDelete", "Deleted pod: " + object::Name(*p));
      } catch (const Error& e) {
        if (e.code() == Code::kNotFound) continue;
        identity_.events().Warning(ds, "FailedDelete",
                                   "Error deleting: " + e.message());
        errors.push_back(e.message());
      }
    }
    // Slow start: batches of 1, 2, 4, ...; a failed batch ends the round.
    size_t done = 0, batch = 1;
    while (done < create_on.size()) {
      bool failed = false;
      for (size_t i = done; i < std::min(create_on.size(), done + batch); ++i) {
        try {
          Json created = identity_.client().Create(PodsResource(), ns,
                                                   NewDaemonPod(ds, create_on[i], hash));
          ExpectCreate(key, object::Key(created));
          identity_.events().Normal(ds, "SuccessfulCreate",
                                    "Created pod: " + object::Name(created));
        } catch (const Error& e) {
          identity_.events().Warning(ds, "FailedCreate", "Error creating: " + e.message());
          errors.push_back(e.message());
          failed = true;
        }
      }
      done = std::min(create_on.size(), done + batch);
      if (failed) break;
      batch *= 2;
    }
    create_on.clear();
    to_delete.clear();
  };

  const bool satisfied = Satisfied(key);
  list_pods();
  if (satisfied) {
    // manage: one pod where one should run, none where none may.
    for (const auto& [n, f] : fits) {
      auto it = by_node.find(n);
      const std::vector<ObjectPtr> none;
      const auto& pods = it == by_node.end() ? none : it->second.pods;
      if (f.should_run && pods.empty()) {
        create_on.push_back(n);
      } else if (f.should_continue_running) {
        std::vector<ObjectPtr> running;
        for (const ObjectPtr& p : pods) {
          if (object::IsBeingDeleted(*p)) continue;
          if (IsPodTerminal(*p)) {
            if (PodPhase(*p) == "Failed") {
              identity_.events().Warning(ds, "FailedDaemonPod",
                                         "Found failed daemon pod " + object::Key(*p) +
                                             " on node " + n + ", will try to kill it");
            }
            to_delete.push_back(p);
          } else {
            running.push_back(p);
          }
        }
        if (!surge) {
          for (size_t i = 1; i < running.size(); ++i) to_delete.push_back(running[i]);
        } else {
          // Keep the oldest updated pod and the oldest old one; the old one
          // goes once the new one is available (or if it is not Ready).
          ObjectPtr oldest_new, oldest_old;
          for (const ObjectPtr& p : running) {
            bool updated = Str(object::Labels(*p), kControllerRevisionHashLabel) == hash;
            ObjectPtr& slot = updated ? oldest_new : oldest_old;
            if (!slot) {
              slot = p;
            } else {
              to_delete.push_back(p);
            }
          }
          if (oldest_new && oldest_old &&
              (!IsPodReady(*oldest_old) || IsPodAvailable(*oldest_new, min_ready, now))) {
            to_delete.push_back(oldest_old);
          }
        }
      } else {
        for (const ObjectPtr& p : pods) {
          if (!object::IsBeingDeleted(*p)) to_delete.push_back(p);
        }
      }
    }
    // Pods for nodes that are gone (upstream leaves the bound ones to the
    // pod garbage collector; kin has none, so they go here).
    for (const auto& [n, np] : by_node) {
      if (nodes.count(n)) continue;
      for (const ObjectPtr& p : np.pods) {
        if (!object::IsBeingDeleted(*p)) to_delete.push_back(p);
      }
    }
    sync_nodes();

    if (rolling && Satisfied(key)) {
      list_pods();
      std::vector<ObjectPtr> old_to_delete;
      std::vector<std::string> allowed_new, candidate_new;
      std::vector<ObjectPtr> candidates_delete;
      int64_t unavailable = 0, surging = 0;
      for (const auto& [n, f] : fits) {
        if (!f.should_run && !by_node.count(n)) continue;
        if (!f.should_run && !f.should_continue_running) continue;
        ObjectPtr new_pod, old_pod;
        bool ok = true;
        if (auto it = by_node.find(n); it != by_node.end()) {
          for (const ObjectPtr& p : it->second.pods) {
            if (object::IsBeingDeleted(*p)) continue;
            ObjectPtr& slot = IsPodUpdated(*p, hash, ds) ? new_pod : old_pod;
            if (slot) ok = false;
            slot = p;
          }
        }
        if (!surge) {
          if (!ok || (!old_pod && !new_pod) || (old_pod && new_pod)) {
            ++unavailable;  // the manage loop handles it
          } else if (old_pod && !IsPodAvailable(*old_pod, min_ready, now)) {
            old_to_delete.push_back(old_pod);  // not available: replace at once
            ++unavailable;
          } else if (old_pod) {
            candidates_delete.push_back(old_pod);
          } else if (!IsPodAvailable(*new_pod, min_ready, now)) {
            ++unavailable;
          }
        } else {
          if (!ok) {
            ++surging;
          } else if (!old_pod) {
            // nothing to do: the manage loop creates a missing pod
          } else if (!new_pod) {
            if (!f.should_run) continue;  // a pod that may stay is not surged
            if (!IsPodAvailable(*old_pod, min_ready, now)) {
              allowed_new.push_back(n);
            } else {
              candidate_new.push_back(n);
            }
          } else if (!IsPodAvailable(*new_pod, min_ready, now)) {
            ++surging;
          } else {
            old_to_delete.push_back(old_pod);
          }
        }
      }
      if (!surge) {
        int64_t room = std::max<int64_t>(0, max_unavailable - unavailable);
        room = std::min<int64_t>(room, static_cast<int64_t>(candidates_delete.size()));
        for (int64_t i = 0; i < room; ++i) old_to_delete.push_back(candidates_delete[i]);
      } else {
        int64_t room = std::max<int64_t>(0, max_surge - surging);
        room = std::min<int64_t>(room, static_cast<int64_t>(candidate_new.size()));
        for (int64_t i = 0; i < room; ++i) allowed_new.push_back(candidate_new[i]);
      }
      to_delete = std::move(old_to_delete);
      create_on = std::move(allowed_new);
      sync_nodes();
    }

    // History: keep the current revision, those pods still use, and
    // revisionHistoryLimit others.
    std::set<std::string> live = {object::Name(revs.update)};
    for (const Json& r : revs.all) {
      if (live_hashes.count(Str(object::Labels(r), kControllerRevisionHashLabel))) {
        live.insert(object::Name(r));
      }
    }
    try {
      TruncateHistory(*history_, revs.all, live, Int(spec, "revisionHistoryLimit", 10));
    } catch (const Error& e) {
      errors.push_back("cleaning up revisions: " + e.message());
    }
  }

  // Status, from the cache as it stands (upstream updateDaemonSetStatus).
  int64_t current = 0, misscheduled = 0, ready = 0, available = 0, updated = 0;
  std::optional<std::chrono::seconds> recheck;
  for (const auto& [n, f] : fits) {
    auto it = by_node.find(n);
    std::vector<ObjectPtr> pods;
    if (it != by_node.end()) {
      for (const ObjectPtr& p : it->second.pods) {
        if (!(object::IsBeingDeleted(*p) && IsPodTerminal(*p))) pods.push_back(p);
      }
    }
    if (!f.should_run) {
      if (!pods.empty()) ++misscheduled;
      continue;
    }
    if (pods.empty()) continue;
    ++current;
    const Json& pod = *pods.front();
    if (IsPodReady(pod)) {
      ++ready;
      if (IsPodAvailable(pod, min_ready, now)) {
        ++available;
      } else if (auto wait = UntilAvailable(pod, min_ready, now)) {
        recheck = recheck ? std::min(*recheck, *wait) : *wait;
      }
    }
    if (IsPodUpdated(pod, hash, ds)) ++updated;
  }
  // Zero-valued optional fields are omitted, as the API's omitempty does.
  auto opt = [](int64_t v) { return v ? Json(v) : Json(); };
  Json want = {{"currentNumberScheduled", current},
               {"numberMisscheduled", misscheduled},
               {"desiredNumberScheduled", desired},
               {"numberReady", ready},
               {"observedGeneration", opt(Int(Obj(ds, "metadata"), "generation"))},
               {"updatedNumberScheduled", opt(updated)},
               {"numberAvailable", opt(available)},
               {"numberUnavailable", opt(desired - available)},
               {"collisionCount", revs.collision_count ? Json(revs.collision_count) : Json()}};
  bool changed = false;
  for (auto it = want.begin(); it != want.end(); ++it) {
    auto have = status.find(it.key());
    bool has = have != status.end() && !have->is_null();
    if (it->is_null() ? has : (!has || *have != *it)) changed = true;
  }
  if (changed) {
    identity_.client().Patch(DaemonSets(), ns, name, PatchType::kMerge, {{"status", want}},
                             "status");
  }
  if (!errors.empty()) {
    throw Error::Internal("syncing daemon set " + key + ": " + errors.front());
  }
  {
    std::lock_guard l(mu_);
    if (expectations_.count(key)) {
      // Pod events bring us back; this is the backstop if one never comes.
      return Result::After(opts_.expectations_timeout);
    }
  }
  if (recheck) return Result::After(*recheck);
  return Result::Done();
}

}  // namespace kin::controllers
