#include "controllers/controller_history.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>

#include "base/error.h"
#include "base/log.h"
#include "client/object.h"

namespace kin::controllers {
namespace {

const Json& Empty() {
  static const Json empty = Json::object();
  return empty;
}
const Json& Obj(const Json& j, const char* key) {
  if (!j.is_object()) return Empty();
  auto it = j.find(key);
  return it == j.end() || !it->is_object() ? Empty() : *it;
}

bool ByNumber(const Json& a, const Json& b) {
  int64_t ra = RevisionNumber(a), rb = RevisionNumber(b);
  if (ra != rb) return ra < rb;
  return object::Name(a) < object::Name(b);
}

// Equal revisions hold the same data (history.EqualRevision also compares
// the hash label, which follows from the data up to collisions).
bool SameData(const Json& a, const Json& b) {
  auto da = a.find("data"), db = b.find("data");
  return da != a.end() && db != b.end() && *da == *db;
}

class MemoryRevisionStore : public RevisionStore {
 public:
  std::vector<Json> List(const Json& parent) override {
    std::lock_guard l(mu_);
    std::vector<Json> out;
    std::string uid = object::Uid(parent);
    for (const auto& [key, rev] : revisions_) {
      if (object::IsControlledBy(rev, parent) && !uid.empty()) out.push_back(rev);
    }
    std::sort(out.begin(), out.end(), ByNumber);
    return out;
  }
  Json Create(const Json& revision) override {
    std::lock_guard l(mu_);
    std::string key = object::Key(revision);
    if (revisions_.count(key)) {
      throw Error::AlreadyExists("controllerrevisions.apps \"" + object::Name(revision) +
                                 "\" already exists");
    }
    Json r = revision;
    r["metadata"]["uid"] = "mem-" + std::to_string(++next_uid_);
    r["metadata"]["creationTimestamp"] = object::NowRfc3339();
    revisions_[key] = r;
    return r;
  }
  Json Get(const std::string& ns, const std::string& name) override {
    std::lock_guard l(mu_);
    auto it = revisions_.find(object::Key(ns, name));
    if (it == revisions_.end()) {
      throw Error::NotFound("controllerrevisions.apps \"" + name + "\" not found");
    }
    return it->second;
  }
  Json SetRevisionNumber(const Json& revision, int64_t number) override {
    std::lock_guard l(mu_);
    auto it = revisions_.find(object::Key(revision));
    if (it == revisions_.end()) {
      throw Error::NotFound("controllerrevisions.apps \"" + object::Name(revision) +
                            "\" not found");
    }
    it->second["revision"] = number;
    return it->second;
  }
  void Delete(const Json& revision) override {
    std::lock_guard l(mu_);
    revisions_.erase(object::Key(revision));
  }
  void ForgetParent(const std::string& uid) override {
    std::lock_guard l(mu_);
    std::erase_if(revisions_, [&](const auto& kv) {
      const Json* ref = object::ControllerOf(kv.second);
      return ref && ref->value("uid", "") == uid;
    });
  }
  bool persistent() const override { return false; }

 private:
  std::mutex mu_;
  std::map<std::string, Json> revisions_;  // "ns/name" -> revision
  uint64_t next_uid_ = 0;
};

class ApiRevisionStore : public RevisionStore {
 public:
  ApiRevisionStore(SharedInformerFactory& informers, Client& client, const ResourceInfo& resource)
      : client_(client), resource_(resource), informer_(informers.For(resource)) {}

  std::vector<Json> List(const Json& parent) override {
    std::vector<Json> out;
    for (const ObjectPtr& r : informer_.ByIndex(kOwnerUidIndex, object::Uid(parent))) {
      if (object::IsControlledBy(*r, parent)) out.push_back(*r);
    }
    std::sort(out.begin(), out.end(), ByNumber);
    return out;
  }
  Json Create(const Json& revision) override {
    return client_.Create(resource_, object::Namespace(revision), revision);
  }
  Json Get(const std::string& ns, const std::string& name) override {
    return client_.Get(resource_, ns, name);
  }
  Json SetRevisionNumber(const Json& revision, int64_t number) override {
    return client_.Patch(resource_, object::Namespace(revision), object::Name(revision),
                         PatchType::kMerge, {{"revision", number}});
  }
  void Delete(const Json& revision) override {
    try {
      client_.Delete(resource_, object::Namespace(revision), object::Name(revision));
    } catch (const Error& e) {
      if (e.code() != Code::kNotFound) throw;
    }
  }
  const Informer* informer() const override { return &informer_; }
  bool persistent() const override { return true; }

 private:
  Client& client_;
  const ResourceInfo& resource_;
  Informer& informer_;
};

}  // namespace

const ResourceInfo* ControllerRevisionsResource() {
  return FindResource("apps", "v1", "controllerrevisions");
}

std::unique_ptr<RevisionStore> NewMemoryRevisionStore() {
  return std::make_unique<MemoryRevisionStore>();
}

std::unique_ptr<RevisionStore> NewApiRevisionStore(SharedInformerFactory& informers,
                                                   Client& client) {
  const ResourceInfo* r = ControllerRevisionsResource();
  if (!r) throw Error::Internal("the API does not serve controllerrevisions.apps");
  return std::make_unique<ApiRevisionStore>(informers, client, *r);
}

std::unique_ptr<RevisionStore> NewRevisionStore(SharedInformerFactory& informers, Client& client) {
  if (ControllerRevisionsResource()) return NewApiRevisionStore(informers, client);
  return NewMemoryRevisionStore();
}

std::string ComputeHash(const Json& obj, std::optional<int64_t> collision_count) {
  std::string text = obj.dump();
  if (collision_count) text += "/" + std::to_string(*collision_count);
  uint32_t h = 2166136261u;
  for (unsigned char c : text) {
    h ^= c;
    h *= 16777619u;
  }
  // rand.SafeEncodeString: each character mapped into an alphabet without
  // vowels (no words) and without look-alikes.
  static constexpr char kAlphabet[] = "bcdfghjklmnpqrstvwxz2456789";
  std::string digits = std::to_string(h), out;
  for (unsigned char c : digits) out += kAlphabet[c % (sizeof(kAlphabet) - 1)];
  return out;
}

Json TemplatePatch(const Json& parent) {
  Json tmpl = Obj(Obj(parent, "spec"), "template");
  tmpl["$patch"] = "replace";
  return {{"spec", {{"template", tmpl}}}};
}

Json ApplyRevision(const Json& parent, const Json& revision) {
  Json out = parent;
  const Json& tmpl = Obj(Obj(Obj(revision, "data"), "spec"), "template");
  if (tmpl.empty()) return out;
  Json t = tmpl;
  t.erase("$patch");
  out["spec"]["template"] = t;
  return out;
}

int64_t RevisionNumber(const Json& revision) {
  auto it = revision.find("revision");
  return it != revision.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

Json NewRevision(const Json& parent, const std::string& api_version, const std::string& kind,
                 const Json& data, int64_t number, const std::string& hash) {
  Json labels = Obj(Obj(Obj(Obj(parent, "spec"), "template"), "metadata"), "labels");
  labels[kControllerRevisionHashLabel] = hash;
  // history.ControllerRevisionName: the prefix is cut so the name stays valid.
  std::string prefix = object::Name(parent);
  if (prefix.size() > 223) prefix.resize(223);
  return {{"apiVersion", "apps/v1"},
          {"kind", "ControllerRevision"},
          {"metadata",
           {{"name", prefix + "-" + hash},
            {"namespace", object::Namespace(parent)},
            {"labels", labels},
            {"ownerReferences",
             Json::array({object::NewControllerRef(parent, api_version, kind)})}}},
          {"data", data},
          {"revision", number}};
}

RevisionSync SyncUpdateRevision(RevisionStore& store, const Json& parent,
                                const std::string& api_version, const std::string& kind,
                                const std::function<std::string(int64_t)>& hash_of,
                                int64_t collision_count) {
  RevisionSync out;
  out.collision_count = collision_count;
  out.all = store.List(parent);
  Json data = TemplatePatch(parent);
  int64_t next = out.all.empty() ? 1 : RevisionNumber(out.all.back()) + 1;
  std::vector<const Json*> equal;
  for (const Json& r : out.all) {
    if (SameData(r, {{"data", data}})) equal.push_back(&r);
  }
  if (!equal.empty() && object::Name(*equal.back()) == object::Name(out.all.back())) {
    out.update = out.all.back();  // the newest revision is the template: nothing changed
    return out;
  }
  if (!equal.empty()) {
    // A rollback to an older template: that revision becomes the newest.
    Json updated = store.SetRevisionNumber(*equal.back(), next);
    for (Json& r : out.all) {
      if (object::Name(r) == object::Name(updated)) r = updated;
    }
    std::sort(out.all.begin(), out.all.end(), ByNumber);
    out.update = updated;
    return out;
  }
  // history.CreateControllerRevision: a name taken by a different revision
  // is a hash collision; the count goes up and the name changes.
  for (int attempt = 0; attempt < 100; ++attempt) {
    Json rev = NewRevision(parent, api_version, kind, data, next, hash_of(out.collision_count));
    try {
      out.update = store.Create(rev);
      out.all.push_back(out.update);
      return out;
    } catch (const Error& e) {
      if (e.code() != Code::kAlreadyExists) throw;
      Json existing = store.Get(object::Namespace(rev), object::Name(rev));
      if (object::IsControlledBy(existing, parent) && SameData(existing, rev)) {
        // Ours, and not yet in the cache.
        out.update = existing;
        bool listed = false;
        for (const Json& r : out.all) listed = listed || object::Name(r) == object::Name(existing);
        if (!listed) out.all.push_back(existing);
        std::sort(out.all.begin(), out.all.end(), ByNumber);
        return out;
      }
      ++out.collision_count;
    }
  }
  throw Error::Internal("no free ControllerRevision name for " + object::Key(parent) +
                        " after 100 hash collisions");
}

void TruncateHistory(RevisionStore& store, const std::vector<Json>& revisions,
                     const std::set<std::string>& live, int64_t limit) {
  std::vector<const Json*> old;
  for (const Json& r : revisions) {
    if (!live.count(object::Name(r))) old.push_back(&r);
  }
  if (limit < 0) limit = 0;
  if (static_cast<int64_t>(old.size()) <= limit) return;
  std::sort(old.begin(), old.end(), [](const Json* a, const Json* b) { return ByNumber(*a, *b); });
  size_t drop = old.size() - static_cast<size_t>(limit);
  for (size_t i = 0; i < drop; ++i) store.Delete(*old[i]);
}

std::optional<std::chrono::seconds> UntilAvailable(const Json& pod, int64_t min_ready_seconds,
                                                   std::chrono::system_clock::time_point now) {
  if (!IsPodReady(pod) || min_ready_seconds <= 0) return std::nullopt;
  const Json* c = object::Condition(pod, "Ready");
  auto since = object::ParseRfc3339(c->value("lastTransitionTime", ""));
  if (!since) return std::nullopt;  // upstream: no transition time counts as available
  auto ready_at = *since + std::chrono::seconds(min_ready_seconds);
  if (ready_at <= now) return std::nullopt;
  return std::chrono::ceil<std::chrono::seconds>(ready_at - now);
}

bool IsPodAvailable(const Json& pod, int64_t min_ready_seconds,
                    std::chrono::system_clock::time_point now) {
  return IsPodReady(pod) && !UntilAvailable(pod, min_ready_seconds, now);
}

Json PodFromTemplate(const Json& parent, const std::string& api_version, const std::string& kind) {
  const Json& tmpl = Obj(Obj(parent, "spec"), "template");
  const Json& tmeta = Obj(tmpl, "metadata");
  Json meta = {{"namespace", object::Namespace(parent)},
               {"labels", Obj(tmeta, "labels")},
               {"ownerReferences",
                Json::array({object::NewControllerRef(parent, api_version, kind)})}};
  if (!Obj(tmeta, "annotations").empty()) meta["annotations"] = Obj(tmeta, "annotations");
  if (auto f = tmeta.find("finalizers"); f != tmeta.end() && f->is_array() && !f->empty()) {
    meta["finalizers"] = *f;
  }
  return {{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", meta}, {"spec", Obj(tmpl, "spec")}};
}

int64_t ScaledValue(const Json& value, int64_t total, bool round_up, const std::string& field) {
  if (value.is_null()) return 0;
  if (auto v = ScaledValue(value, total, round_up)) return *v;
  if (value.is_string()) {
    throw Error::Invalid(field + ": Invalid value: \"" + value.get<std::string>() +
                         "\": must be an integer or percentage (e.g '5%')");
  }
  throw Error::Invalid(field + ": Invalid value: " + value.dump() +
                       ": must be an integer or percentage (e.g '5%')");
}

Json WithKind(Json obj, const std::string& api_version, const std::string& kind) {
  obj["apiVersion"] = api_version;
  obj["kind"] = kind;
  return obj;
}

}  // namespace kin::controllers
