#include "controllers/resource_quota.h"

#include <algorithm>

#include "base/error.h"
#include "client/object.h"
#include "client/quota.h"

namespace kin::controllers {

namespace {

const ResourceInfo& Quotas() { return *FindResource("", "v1", "resourcequotas"); }

const Json& FieldOf(const Json& o, const char* key) {
  static const Json kNull;
  if (!o.is_object()) return kNull;
  auto it = o.find(key);
  return it == o.end() ? kNull : *it;
}

bool IsTerminalPhase(const Json& pod) {
  std::string phase = object::StringAt(pod, "status", "phase");
  return phase == "Succeeded" || phase == "Failed";
}

// The same list of quantities, whatever their spelling ("1000m" and "1").
bool SameList(const Json& a, const Json& b) {
  if (!a.is_object() || !b.is_object()) return a.is_object() == b.is_object() && a == b;
  if (a.size() != b.size()) return false;
  for (const auto& [k, v] : a.items()) {
    if (!b.contains(k)) return false;
    auto x = quota::Amount::FromJson(v), y = quota::Amount::FromJson(b[k]);
    if (!x || !y) {
      if (v != b[k]) return false;
    } else if (x->nano != y->nano) {
      return false;
    }
  }
  return true;
}

}  // namespace

ResourceQuotaController::ResourceQuotaController(SharedInformerFactory& informers, Client& client,
                                                 ResourceQuotaOptions opts)
    : opts_(opts),
      identity_(client, "resourcequota-controller"),
      quotas_(informers.For(Quotas())),
      client_(client),
      workers_("resourcequota", queue_, [this](const std::string& key) { return Sync(key); }) {
  // The informers other controllers share anyway: quotas' usual object
  // counts, replenished when their objects go.
  static const std::pair<const char*, const char*> kCounted[] = {
      {"", "pods"},           {"", "services"},        {"", "persistentvolumeclaims"},
      {"", "configmaps"},     {"", "secrets"},         {"", "replicationcontrollers"},
      {"", "serviceaccounts"}, {"apps", "deployments"}, {"apps", "replicasets"},
      {"apps", "statefulsets"}, {"apps", "daemonsets"}, {"batch", "jobs"},
      {"batch", "cronjobs"},  {"networking.k8s.io", "ingresses"}};
  for (const auto& [group, plural] : kCounted) {
    if (const ResourceInfo* r = FindResource(group, "v1", plural)) {
      counted_.push_back(&informers.For(*r));
    }
  }
  if (const ResourceInfo* crds =
          FindResource("apiextensions.k8s.io", "v1", "customresourcedefinitions")) {
    crds_ = &informers.For(*crds);
  }
}

ResourceQuotaController::~ResourceQuotaController() { Stop(); }

void ResourceQuotaController::TrackCustomResource(const ResourceInfo& r) {
  std::lock_guard lock(custom_mu_);
  if (custom_stopped_ || custom_.count(r.group_resource())) return;
  // Replenishment: a custom object that goes frees its namespace's count.
  auto informer = std::make_unique<Informer>(
      client_, r, InformerOptions{}, HandlersFrom([this](const Json* old, const Json* now) {
        if (!now) QueueNamespace(object::Namespace(*old));
      }));
  informer->Start();
  custom_[r.group_resource()] = std::move(informer);
}

bool ResourceQuotaController::TracksCustomResource(const ResourceInfo& r) {
  std::lock_guard lock(custom_mu_);
  auto it = custom_.find(r.group_resource());
  return it != custom_.end() && it->second->HasSynced();
}

void ResourceQuotaController::DropUnservedCustomResources() {
  std::vector<std::unique_ptr<Informer>> dropped;
  {
    std::lock_guard lock(custom_mu_);
    for (auto it = custom_.begin(); it != custom_.end();) {
      const ResourceInfo& r = it->second->resource();
      if (FindResource(r.group, r.version, r.plural) == nullptr) {
        dropped.push_back(std::move(it->second));
        it = custom_.erase(it);
      } else {
        ++it;
      }
    }
  }
  // Stopped and freed outside the lock: a handler of theirs may be
  // queueing meanwhile.
  dropped.clear();
}

void ResourceQuotaController::QueueNamespace(const std::string& ns) {
  for (const ObjectPtr& q : quotas_.ByIndex(kNamespaceIndex, ns)) {
    queue_.Add(object::Key(ns, object::Name(*q)));
  }
}

void ResourceQuotaController::Start() {
  if (!run_state_.TryStart()) return;
  // A quota: when made, when its spec changes, or when its status no
  // longer shows its spec.
  subscriptions_.Add(quotas_, HandlersFrom([this](const Json* old, const Json* now) {
    if (!now) return;
    const Json& spec_hard = FieldOf(FieldOf(*now, "spec"), "hard");
    const Json& status = FieldOf(*now, "status");
    bool stale = !SameList(spec_hard, FieldOf(status, "hard")) ||
                 !FieldOf(status, "used").is_object();
    if (!old || stale || FieldOf(*old, "spec") != FieldOf(*now, "spec")) {
      queue_.Add(object::Key(object::Namespace(*now), object::Name(*now)));
    }
  }));
  // Replenishment: an object that goes, or a pod that ends.
  for (Informer* inf : counted_) {
    const bool pods = inf->resource().plural == "pods";
    subscriptions_.Add(*inf, HandlersFrom([this, pods](const Json* old, const Json* now) {
      if (!now) {
        QueueNamespace(object::Namespace(*old));
      } else if (pods && old && !IsTerminalPhase(*old) && IsTerminalPhase(*now)) {
        QueueNamespace(object::Namespace(*now));
      }
    }));
  }
  // A CRD that goes (or stops serving a version) takes its informer here.
  if (crds_ != nullptr) {
    subscriptions_.Add(*crds_, HandlersFrom([this](const Json*, const Json*) {
      DropUnservedCustomResources();
    }));
  }
  std::vector<const Informer*> synced(counted_.begin(), counted_.end());
  synced.push_back(&quotas_);
  workers_.Start(2, synced);
}

void ResourceQuotaController::Stop() {
  if (!run_state_.TryStop()) return;
  workers_.Stop();
  subscriptions_.RemoveAll();
  std::map<std::string, std::unique_ptr<Informer>> custom;
  {
    std::lock_guard lock(custom_mu_);
    custom_stopped_ = true;
    custom.swap(custom_);
  }
  custom.clear();  // stops each
}

std::vector<Json> ResourceQuotaController::Objects(const ResourceInfo& r, const std::string& ns,
                                                   bool* untracked) {
  // Listed from the API, not the informers' caches: a cache may not have
  // seen yet an object the quota's own event came after (a quota made just
  // after the namespace's objects would count too little).
  bool tracked = false;
  for (Informer* inf : counted_) {
    if (inf->resource().group == r.group && inf->resource().plural == r.plural) tracked = true;
  }
  if (r.custom) {
    TrackCustomResource(r);
    tracked = TracksCustomResource(r);
  }
  if (!tracked) *untracked = true;
  std::vector<Json> out;
  Json list = identity_.client().List(r, ns);
  const Json& items = FieldOf(list, "items");
  if (items.is_array()) {
    for (const auto& it : items) out.push_back(it);
  }
  return out;
}

Result ResourceQuotaController::Sync(const std::string& key) {
  ObjectPtr cached = quotas_.LookupKey(key);
  if (!cached) return Result::Done();
  // The quota as stored: the admission charges status.used in writes the
  // cache may not have seen yet, and a recount compared with a stale
  // status would leave the charge of an object already gone.
  const std::string ns = object::Namespace(*cached);
  Json q;
  try {
    q = identity_.client().Get(Quotas(), ns, object::Name(*cached));
  } catch (const Error& e) {
    if (e.code() == Code::kNotFound) return Result::Done();
    throw;
  }
  const Json& spec_hard = FieldOf(FieldOf(q, "spec"), "hard");
  quota::ResourceList hard = quota::FromJson(spec_hard);
  std::vector<std::string> names = quota::Names(hard);
  quota::ResourceList used;
  for (const auto& n : names) used[n] = quota::Amount{};
  // Objects no informer here tells of the going of are counted again
  // sooner than the resync period.
  bool untracked = false;
  for (const ResourceInfo* r : quota::ResourcesCounted(names)) {
    std::vector<std::string> matched = quota::MatchingResources(*r, names);
    for (const Json& obj : Objects(*r, ns, &untracked)) {
      if (!quota::MatchesScopes(q, *r, obj)) continue;
      used = quota::Add(used, quota::Mask(quota::Usage(*r, obj), matched));
    }
  }
  Json used_json = quota::ToJson(used);
  Json hard_json = spec_hard.is_object() ? spec_hard : Json::object();
  const Json& status = FieldOf(q, "status");
  if (!SameList(FieldOf(status, "hard"), hard_json) ||
      !SameList(FieldOf(status, "used"), used_json)) {
    Json next = q;
    next["status"] = {{"hard", hard_json}, {"used", used_json}};
    try {
      identity_.client().Update(Quotas(), ns, next, "status");
    } catch (const Error& e) {
      if (e.code() == Code::kNotFound) return Result::Done();
      if (e.code() == Code::kConflict) return Result::Retry();
      throw;
    }
  }
  return Result::After(untracked ? std::min<std::chrono::seconds>(opts_.resync,
                                                                 std::chrono::seconds(30))
                              : opts_.resync);
}

}  // namespace kin::controllers
