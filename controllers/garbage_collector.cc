#include "controllers/garbage_collector.h"

#include <algorithm>
#include <chrono>

#include "base/error.h"
#include "base/log.h"
#include "client/object.h"

namespace kin::controllers {
namespace {

bool HasFinalizer(const Json& obj, const std::string& f) {
  if (!obj.is_object() || !obj.contains("metadata")) return false;
  const Json& m = obj["metadata"];
  if (!m.is_object() || !m.contains("finalizers") || !m["finalizers"].is_array()) return false;
  for (const auto& x : m["finalizers"]) {
    if (x.is_string() && x.get<std::string>() == f) return true;
  }
  return false;
}

std::string RefStr(const Json& ref, const char* key) {
  auto it = ref.find(key);
  return it != ref.end() && it->is_string() ? it->get<std::string>() : "";
}

bool RefBlocks(const Json& ref) {
  auto it = ref.find("blockOwnerDeletion");
  return it != ref.end() && it->is_boolean() && it->get<bool>();
}

// metadata.ownerReferences as it is (null when absent), without copying.
const Json& RefsField(const Json& obj) {
  static const Json none;
  if (!obj.is_object()) return none;
  auto m = obj.find("metadata");
  if (m == obj.end() || !m->is_object()) return none;
  auto r = m->find("ownerReferences");
  return r == m->end() ? none : *r;
}

bool DeletingDependents(const Json& obj) {
  return object::IsBeingDeleted(obj) && HasFinalizer(obj, kFinalizerForeground);
}

// The item key of the queue: "<kind>|<group_resource>|<ns/name>".
std::string ItemKey(char kind, const std::string& group_resource, const std::string& key) {
  return std::string(1, kind) + "|" + group_resource + "|" + key;
}

// The queue item that resyncs the custom resources watched with the CRDs.
constexpr char kSyncCustomResources[] = "c|";

bool Established(const Json& crd) {
  const Json& status = object::Field(crd, "status");
  for (const auto& c : object::Field(status, "conditions")) {
    if (object::Str(c, "type") == "Established" && object::Str(c, "status") == "True") return true;
  }
  return false;
}

// The custom resource a CRD serves, in one served version (the storage
// version when served): all versions share one storage.
const ResourceInfo* CustomResourceOf(const Json& crd) {
  const Json& spec = object::Field(crd, "spec");
  std::string plural = object::Str(object::Field(object::Field(crd, "status"), "acceptedNames"),
                                   "plural");
  if (plural.empty()) plural = object::Str(object::Field(spec, "names"), "plural");
  std::string version;
  for (const auto& v : object::Field(spec, "versions")) {
    bool served = object::Field(v, "served").is_boolean() && v["served"].get<bool>();
    bool storage = object::Field(v, "storage").is_boolean() && v["storage"].get<bool>();
    if (served && (version.empty() || storage)) version = object::Str(v, "name");
  }
  if (version.empty()) return nullptr;
  const ResourceInfo* r = FindResource(object::Str(spec, "group"), version, plural);
  return r && r->custom ? r : nullptr;
}

}  // namespace

GarbageCollector::GarbageCollector(SharedInformerFactory& informers, Client& client,
                                   GarbageCollectorOptions opts)
    : opts_(std::move(opts)),
      client_(client),
      identity_(client, "garbage-collector-controller"),
      workers_("garbagecollector", queue_,
               [this](const std::string& item) { return Process(item); }) {
  for (const auto& gvr : opts_.resources) {
    size_t last = gvr.rfind('/');
    size_t mid = last == std::string::npos ? std::string::npos : gvr.rfind('/', last - 1);
    if (mid == std::string::npos) continue;
    const ResourceInfo* r =
        FindResource(gvr.substr(0, mid), gvr.substr(mid + 1, last - mid - 1), gvr.substr(last + 1));
    if (!r || by_group_resource_.count(r->group_resource())) continue;
    watched_.push_back(std::make_unique<Watched>(Watched{r, &informers.For(*r)}));
    by_group_resource_[r->group_resource()] = watched_.back().get();
  }
  if (const ResourceInfo* crds =
          FindResource("apiextensions.k8s.io", "v1", "customresourcedefinitions")) {
    crds_ = &informers.For(*crds);
  }
}

GarbageCollector::~GarbageCollector() { Stop(); }

std::vector<std::string> GarbageCollector::watched() const {
  std::vector<std::string> out;
  for (const Watched* w : Active()) out.push_back(w->resource->group_resource());
  return out;
}

std::vector<const GarbageCollector::Watched*> GarbageCollector::Active() const {
  std::shared_lock lock(watched_mu_);
  std::vector<const Watched*> out;
  for (const auto& [gr, w] : by_group_resource_) out.push_back(w);
  return out;
}

const GarbageCollector::Watched* GarbageCollector::ByGroupResource(
    const std::string& group_resource) const {
  std::shared_lock lock(watched_mu_);
  auto it = by_group_resource_.find(group_resource);
  return it == by_group_resource_.end() ? nullptr : it->second;
}

void GarbageCollector::Start() {
  if (!run_state_.TryStart()) return;
  std::vector<const Informer*> wait_for;
  for (const Watched* wp : Active()) {
    subscriptions_.Add(*wp->informer, HandlersFor(wp));
    wait_for.push_back(wp->informer);
  }
  if (crds_ != nullptr) {
    subscriptions_.Add(*crds_, HandlersFrom([this](const Json*, const Json*) {
      queue_.Add(kSyncCustomResources);
    }));
    wait_for.push_back(crds_);
    queue_.Add(kSyncCustomResources);
  } else {
    custom_synced_once_ = true;
  }
  workers_.Start(opts_.workers, wait_for);
}

InformerHandlers GarbageCollector::HandlersFor(const Watched* wp) {
  return HandlersFrom([this, wp](const Json* old, const Json* now) {
    if (now) {
      OnChange(*wp, old, *now);
    } else {
      OnDelete(*wp, *old);
    }
  });
}

void GarbageCollector::Stop() {
  if (!run_state_.TryStop()) return;
  workers_.Stop();
  subscriptions_.RemoveAll();
  std::vector<Informer*> own;
  {
    std::shared_lock lock(watched_mu_);
    for (const auto& w : watched_) {
      if (w->own) own.push_back(w->own.get());
    }
  }
  for (Informer* informer : own) informer->Stop();
}

Result GarbageCollector::SyncCustomResources() {
  std::lock_guard sync(sync_mu_);
  std::map<std::string, const ResourceInfo*> want;
  bool missing = false;
  for (const ObjectPtr& crd : crds_->Items()) {
    if (!Established(*crd)) continue;
    const ResourceInfo* r = CustomResourceOf(*crd);
    if (r == nullptr) {
      missing = true;  // established a moment ago: the API serves it soon
      continue;
    }
    want[r->group_resource()] = r;
  }
  std::vector<Watched*> added, removed;
  {
    std::unique_lock lock(watched_mu_);
    for (auto it = by_group_resource_.begin(); it != by_group_resource_.end();) {
      auto w = want.find(it->first);
      bool gone = it->second->own && (w == want.end() || w->second->version != it->second->resource->version);
      if (gone) {
        removed.push_back(it->second);
        it = by_group_resource_.erase(it);
      } else {
        ++it;
      }
    }
    for (const auto& [gr, r] : want) {
      if (by_group_resource_.count(gr)) continue;
      watched_.push_back(std::make_unique<Watched>(Watched{r, nullptr}));
      Watched* wp = watched_.back().get();
      wp->own = std::make_unique<Informer>(client_, *r, InformerOptions{}, HandlersFor(wp));
      wp->own->AddIndex(kOwnerUidIndex, IndexByOwnerUid);
      wp->informer = wp->own.get();
      by_group_resource_[gr] = wp;
      added.push_back(wp);
    }
  }
  for (Watched* w : removed) {
    w->own->Stop();
    log::Info("garbage collector: stopped watching {}", w->resource->group_resource());
  }
  for (Watched* w : added) {
    w->own->Start();
    log::Info("garbage collector: watching {} ({})", w->resource->group_resource(),
              w->resource->version);
  }
  custom_synced_once_ = true;
  return missing ? Result::After(std::chrono::milliseconds(200)) : Result::Done();
}

bool GarbageCollector::CustomCachesSynced() const {
  if (!custom_synced_once_) return false;
  for (const Watched* w : Active()) {
    if (w->own && !w->own->HasSynced()) return false;
  }
  return true;
}

void GarbageCollector::Enqueue(char kind, const Watched& w, const Json& obj) {
  queue_.Add(ItemKey(kind, w.resource->group_resource(), object::Key(obj)));
}

const GarbageCollector::Watched* GarbageCollector::ForRef(const Json& ref) const {
  const ResourceInfo* r = FindResourceByKind(RefStr(ref, "apiVersion"), RefStr(ref, "kind"));
  return r ? ByGroupResource(r->group_resource()) : nullptr;
}

bool GarbageCollector::OwnerInCache(const Json& dependent, const Json& ref) const {
  const Watched* w = ForRef(ref);
  if (!w) return false;
  ObjectPtr owner = w->informer->Lookup(w->resource->namespaced ? object::Namespace(dependent) : "",
                                        RefStr(ref, "name"));
  return owner && object::Uid(*owner) == RefStr(ref, "uid");
}

std::vector<std::pair<const GarbageCollector::Watched*, ObjectPtr>> GarbageCollector::DependentsOf(
    const std::string& uid) const {
  std::vector<std::pair<const Watched*, ObjectPtr>> out;
  if (uid.empty()) return out;
  for (const Watched* w : Active()) {
    for (auto& obj : w->informer->ByIndex(kOwnerUidIndex, uid)) out.emplace_back(w, obj);
  }
  return out;
}

void GarbageCollector::OnChange(const Watched& w, const Json* old, const Json& now) {
  auto refs = object::OwnerReferences(now);
  bool refs_changed = !old || RefsField(*old) != RefsField(now);
  if (!refs.empty() && refs_changed) {
    for (const Json* ref : refs) {
      const Watched* ow = ForRef(*ref);
      if (!OwnerInCache(now, *ref)) {
        Enqueue('d', w, now);
        break;
      }
      // A dependent that appears under an owner deleting in the foreground.
      ObjectPtr owner = ow->informer->Lookup(
          ow->resource->namespaced ? object::Namespace(now) : "", RefStr(*ref, "name"));
      if (owner && DeletingDependents(*owner)) {
        Enqueue('d', w, now);
        break;
      }
    }
  }
  if (object::IsBeingDeleted(now)) {
    if (HasFinalizer(now, kFinalizerForeground)) {
      bool started = !old || !DeletingDependents(*old);
      Enqueue('d', w, now);
      if (started) {
        for (auto& [dw, dep] : DependentsOf(object::Uid(now))) Enqueue('d', *dw, *dep);
      }
    }
    if (HasFinalizer(now, kFinalizerOrphan)) Enqueue('o', w, now);
  }
}

void GarbageCollector::OnDelete(const Watched& w, const Json& obj) {
  for (auto& [dw, dep] : DependentsOf(object::Uid(obj))) Enqueue('d', *dw, *dep);
  // Owners waiting for their dependents to go look again.
  for (const Json* ref : object::OwnerReferences(obj)) {
    const Watched* ow = ForRef(*ref);
    if (!ow) continue;
    ObjectPtr owner = ow->informer->Lookup(ow->resource->namespaced ? object::Namespace(obj) : "",
                                           RefStr(*ref, "name"));
    if (owner && object::Uid(*owner) == RefStr(*ref, "uid") && DeletingDependents(*owner)) {
      Enqueue('d', *ow, *owner);
    }
  }
  (void)w;
}

Result GarbageCollector::Process(const std::string& item) {
  if (item == kSyncCustomResources) return SyncCustomResources();
  size_t a = item.find('|');
  size_t b = item.find('|', a + 1);
  if (a != 1 || b == std::string::npos) return Result::Done();
  const Watched* wp = ByGroupResource(item.substr(a + 1, b - a - 1));
  if (wp == nullptr) return Result::Done();
  const Watched& w = *wp;
  ObjectPtr obj = w.informer->LookupKey(item.substr(b + 1));
  if (!obj) return Result::Done();
  if (item[0] == 'o') return Orphan(w, *obj);
  return AttemptToDelete(w, *obj);
}

GarbageCollector::OwnerState GarbageCollector::Classify(const Json& dependent, const Json& ref) {
  std::string uid = RefStr(ref, "uid");
  const ResourceInfo* r = FindResourceByKind(RefStr(ref, "apiVersion"), RefStr(ref, "kind"));
  // An owner of a kind the API does not serve cannot be judged: keep it.
  if (!r) return OwnerState::kSolid;
  std::string ns = r->namespaced ? object::Namespace(dependent) : "";
  // A cluster-scoped dependent cannot have a namespaced owner.
  if (r->namespaced && ns.empty()) return OwnerState::kDangling;
  ObjectPtr cached;
  if (const Watched* w = ForRef(ref)) cached = w->informer->Lookup(ns, RefStr(ref, "name"));
  Json owner;
  if (cached && object::Uid(*cached) == uid) {
    owner = *cached;
  } else {
    {
      std::lock_guard l(absent_mu_);
      if (absent_owners_.count(uid)) return OwnerState::kDangling;
    }
    // The cache may lag: only the API itself can say the owner is gone.
    try {
      owner = identity_.client().Get(*r, ns, RefStr(ref, "name"));
    } catch (const Error& e) {
      if (e.code() != Code::kNotFound) throw;
      owner = Json();
    }
    if (owner.is_null() || object::Uid(owner) != uid) {
      std::lock_guard l(absent_mu_);
      if (absent_owners_.size() > 10000) absent_owners_.clear();
      absent_owners_.insert(uid);
      return OwnerState::kDangling;
    }
  }
  return DeletingDependents(owner) ? OwnerState::kWaitingForDependents : OwnerState::kSolid;
}

Result GarbageCollector::AttemptToDelete(const Watched& w, const Json& item, bool live) {
  if (object::IsBeingDeleted(item)) {
    if (!HasFinalizer(item, kFinalizerForeground)) return Result::Done();
    return ProcessDeletingDependents(w, item);
  }
  auto refs = object::OwnerReferences(item);
  if (refs.empty()) return Result::Done();
  std::set<std::string> dangling, waiting;
  bool solid = false;
  for (const Json* ref : refs) {
    switch (Classify(item, *ref)) {
      case OwnerState::kSolid:
        solid = true;
        break;
      case OwnerState::kDangling:
        dangling.insert(RefStr(*ref, "uid"));
        break;
      case OwnerState::kWaitingForDependents:
        waiting.insert(RefStr(*ref, "uid"));
        break;
    }
  }
  if (solid) {
    // Still owned: drop only the references to owners that are gone or
    // deleting their dependents.
    std::set<std::string> drop = dangling;
    drop.insert(waiting.begin(), waiting.end());
    if (!drop.empty()) RemoveOwnerRefs(w, item, drop);
    return Result::Done();
  }
  if (!live) {
    // About to delete: decide again on the object as the API has it now.
    // The cache can be behind a change that released it (an owner deleted
    // with the orphan policy removes its reference, then goes), as
    // upstream's attemptToDeleteItem re-reads the item.
    Json latest;
    try {
      latest = identity_.client().Get(*w.resource, object::Namespace(item), object::Name(item));
    } catch (const Error& e) {
      if (e.code() == Code::kNotFound) return Result::Done();
      throw;
    }
    if (object::Uid(latest) != object::Uid(item)) return Result::Done();
    return AttemptToDelete(w, latest, /*live=*/true);
  }
  if (!waiting.empty() && !DependentsOf(object::Uid(item)).empty()) {
    // Its owner waits in the foreground and it has dependents itself: it
    // goes the same way, so the owner waits for the whole tree.
    DeleteObject(w, item, "Foreground");
    return Result::Done();
  }
  std::string policy = HasFinalizer(item, kFinalizerOrphan)       ? "Orphan"
                       : HasFinalizer(item, kFinalizerForeground) ? "Foreground"
                                                                  : "Background";
  DeleteObject(w, item, policy);
  return Result::Done();
}

Result GarbageCollector::ProcessDeletingDependents(const Watched& w, const Json& owner) {
  // A custom resource's cache still filling may hold blocking dependents.
  if (!CustomCachesSynced()) return Result::After(std::chrono::milliseconds(100));
  std::string uid = object::Uid(owner);
  bool blocked = false;
  for (auto& [dw, dep] : DependentsOf(uid)) {
    bool blocks = false;
    for (const Json* ref : object::OwnerReferences(*dep)) {
      if (RefStr(*ref, "uid") == uid && RefBlocks(*ref)) blocks = true;
    }
    if (!blocks) continue;
    blocked = true;
    // Dependents not yet deleting are deleted (their owner waits for them);
    // those deleting wait for their own deletion to finish.
    if (!object::IsBeingDeleted(*dep)) Enqueue('d', *dw, *dep);
  }
  if (!blocked) RemoveFinalizer(w, owner, kFinalizerForeground);
  return Result::Done();
}

Result GarbageCollector::Orphan(const Watched& w, const Json& owner) {
  if (!object::IsBeingDeleted(owner) || !HasFinalizer(owner, kFinalizerOrphan))
    return Result::Done();
  if (!CustomCachesSynced()) return Result::After(std::chrono::milliseconds(100));
  std::string uid = object::Uid(owner);
  for (auto& [dw, dep] : DependentsOf(uid)) RemoveOwnerRefs(*dw, *dep, {uid});
  RemoveFinalizer(w, owner, kFinalizerOrphan);
  return Result::Done();
}

void GarbageCollector::RemoveFinalizer(const Watched& w, const Json& obj,
                                       const std::string& finalizer) {
  Json patch = {
      {"metadata", {{"$deleteFromPrimitiveList/finalizers", Json::array({finalizer})}}}};
  PatchType type = PatchType::kStrategic;
  if (w.resource->custom) {
    // No strategic merge for custom resources: the list without it, on the
    // version we looked at.
    Json keep = Json::array();
    for (const auto& f : object::Field(object::Field(obj, "metadata"), "finalizers")) {
      if (f != finalizer) keep.push_back(f);
    }
    type = PatchType::kMerge;
    patch = {{"metadata",
              {{"finalizers", keep.empty() ? Json() : keep},
               {"resourceVersion", object::ResourceVersion(obj)}}}};
  }
  try {
    identity_.client().Patch(*w.resource, object::Namespace(obj), object::Name(obj), type,
                             patch);
  } catch (const Error& e) {
    if (e.code() != Code::kNotFound) throw;
  }
}

void GarbageCollector::RemoveOwnerRefs(const Watched& w, const Json& obj,
                                       const std::set<std::string>& uids) {
  Json keep = Json::array();
  for (const Json* ref : object::OwnerReferences(obj)) {
    if (!uids.count(RefStr(*ref, "uid"))) keep.push_back(*ref);
  }
  Json patch;
  PatchType type;
  if (keep.empty() || w.resource->custom) {
    // The last references go: the field goes (as an empty list is never
    // stored upstream), on the version we looked at (a stale cache
    // conflicts and is retried). Custom objects take no strategic merge:
    // the references kept, the same way.
    type = PatchType::kMerge;
    patch = {{"metadata",
              {{"ownerReferences", keep.empty() ? Json() : keep},
               {"resourceVersion", object::ResourceVersion(obj)}}}};
  } else {
    type = PatchType::kStrategic;
    Json refs = Json::array();
    for (const auto& uid : uids) refs.push_back({{"$patch", "delete"}, {"uid", uid}});
    patch = {{"metadata", {{"ownerReferences", refs}}}};
  }
  try {
    identity_.client().Patch(*w.resource, object::Namespace(obj), object::Name(obj), type, patch);
  } catch (const Error& e) {
    if (e.code() != Code::kNotFound) throw;
  }
}

void GarbageCollector::DeleteObject(const Watched& w, const Json& obj, const std::string& policy) {
  DeleteOptions opts;
  opts.propagation_policy = policy;
  opts.precondition_uid = object::Uid(obj);
  try {
    identity_.client().Delete(*w.resource, object::Namespace(obj), object::Name(obj), opts);
    log::Debug("garbage collector: deleted {} {} ({})", w.resource->group_resource(),
              object::Key(obj), policy);
  } catch (const Error& e) {
    // Gone already, or replaced by another object of that name.
    if (e.code() != Code::kNotFound && e.code() != Code::kConflict) throw;
  }
}

}  // namespace kin::controllers
