#include "apiserver/resource_quota.h"

#include <algorithm>

#include "base/error.h"
#include "base/log.h"

namespace kin::apiserver {

namespace {

using quota::ResourceList;

const Json& Field(const Json& o, const char* key) {
  static const Json kNull;
  if (!o.is_object()) return kNull;
  auto it = o.find(key);
  return it == o.end() ? kNull : *it;
}

std::string Joined(std::vector<std::string> names) {
  std::sort(names.begin(), names.end());
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ",") + n;
  return out;
}

// The quotas' bucket in the store.
constexpr char kBucket[] = "resourcequotas";

// The check of one quota (its current status) against `delta`: throws
// "exceeded quota" when the new usage would pass status.hard. Returns the
// amount to charge (the delta masked to the quota's hard names).
ResourceList Check(const Json& q, const ResourceList& delta, const std::string& who) {
  const Json& status = Field(q, "status");
  ResourceList hard = quota::FromJson(Field(status, "hard"));
  ResourceList used = quota::FromJson(Field(status, "used"));
  ResourceList requested = quota::Mask(delta, quota::Names(hard));
  ResourceList new_usage = quota::Add(used, requested);
  ResourceList masked = quota::Mask(new_usage, quota::Names(requested));
  std::vector<std::string> exceeded = quota::Exceeded(masked, hard);
  if (!exceeded.empty()) {
    std::string name = Field(Field(q, "metadata"), "name").get<std::string>();
    // used: the entries of status.used only (a missing one is not printed).
    throw Error::Forbidden(who + "exceeded quota: " + name +
                           ", requested: " + quota::PrettyPrint(quota::Mask(requested, exceeded)) +
                           ", used: " + quota::PrettyPrint(quota::Mask(used, exceeded)) +
                           ", limited: " + quota::PrettyPrint(quota::Mask(hard, exceeded)));
  }
  return requested;
}

// status.used + `amount` (or - `amount`), written to the quota `name`.
void Apply(Store& store, const std::string& ns, const std::string& name,
           const ResourceList& amount, bool give_back) {
  store.Mutate(kBucket, ns, name, [&](const Json* cur) -> Mutation {
    if (!cur) return {};
    Json q = *cur;
    ResourceList used = quota::FromJson(Field(Field(q, "status"), "used"));
    ResourceList out = give_back ? quota::Subtract(used, amount) : quota::Add(used, amount);
    for (auto& [k, v] : out) {
      if (v.nano < 0) v.nano = 0;
    }
    Json merged = Field(Field(q, "status"), "used").is_object() ? q["status"]["used"]
                                                                 : Json::object();
    for (const auto& [k, v] : out) merged[k] = v.String();
    q["status"]["used"] = merged;
    return {Mutation::Action::kPut, q};
  });
}

}  // namespace

QuotaCharge::~QuotaCharge() {
  if (!store_) return;
  for (const auto& [name, amount] : charged_) {
    try {
      Apply(*store_, ns_, name, amount, true);
    } catch (const std::exception& e) {
      log::Warn("resourcequota {}/{}: giving back a charge: {}", ns_, name, e.what());
    }
  }
}

bool QuotaEvaluatesUpdates(const ResourceInfo& r, const std::string& subresource) {
  return r.group.empty() && subresource.empty() &&
         (r.plural == "services" || r.plural == "persistentvolumeclaims");
}

bool NamespaceHasQuotas(const Store& store, const std::string& ns) {
  return !ns.empty() && !store.List(kBucket, ns, nullptr, 1).items.empty();
}

QuotaCharge AdmitResourceQuota(Store& store, const ResourceInfo& r, const std::string& ns,
                               const Json& obj, const Json* old, bool dry_run) {
  QuotaCharge charge;
  if (!r.namespaced || ns.empty()) return charge;
  if (old && !QuotaEvaluatesUpdates(r, "")) return charge;
  auto records = store.List(kBucket, ns, nullptr).items;
  if (records.empty()) return charge;
  const Json& meta = Field(obj, "metadata");
  std::string obj_name = Field(meta, "name").is_string() ? meta["name"].get<std::string>() : "";
  const std::string who = r.group_resource() + " \"" + obj_name + "\" is forbidden: ";
  auto forbidden = [&](const std::string& msg) {
    return Error::Forbidden(who + msg).WithDetails(r.plural, obj_name, r.group);
  };

  std::vector<Json> interesting;
  for (const Record& rec : records) {
    Json q = rec.Parse();
    const Json& status = Field(q, "status");
    ResourceList hard = quota::FromJson(Field(status, "hard"));
    std::vector<std::string> matched = quota::MatchingResources(r, quota::Names(hard));
    if (matched.empty() || !quota::MatchesScopes(q, r, obj)) continue;
    if (r.group.empty() && r.plural == "pods") {
      std::string why = quota::PodConstraints(matched, obj);
      if (!why.empty()) throw forbidden("failed quota: " + rec.name + ": " + why);
    }
    const Json& used = Field(status, "used");
    std::vector<std::string> unknown;
    for (const auto& n : matched) {
      if (!used.is_object() || !used.contains(n)) unknown.push_back(n);
    }
    if (!unknown.empty()) {
      throw forbidden("status unknown for quota: " + rec.name + ", resources: " +
                      Joined(matched));
    }
    interesting.push_back(std::move(q));
  }
  if (interesting.empty()) return charge;
  ResourceList delta = quota::Usage(r, obj);
  std::vector<std::string> negative;
  for (const auto& [k, v] : delta) {
    if (v.nano < 0) negative.push_back(k);
  }
  if (!negative.empty()) {
    throw forbidden("quota usage is negative for resource(s): " + Joined(negative));
  }
  if (old) {
    // An update is charged what it adds (SubtractWithNonNegativeResult):
    // a Service turned NodePort its node ports, a grown claim the growth.
    // Services and claims have no scopes, so the old object matched every
    // quota the new one does.
    ResourceList grown;
    for (const auto& [k, v] : quota::Subtract(delta, quota::Usage(r, *old))) {
      if (delta.count(k) && v.nano > 0) grown[k] = v;
    }
    if (grown.empty()) return charge;
    delta = std::move(grown);
  }
  // Every quota first, as upstream checks them all before writing any.
  for (const Json& q : interesting) {
    try {
      Check(q, delta, "");
    } catch (const Error& e) {
      throw forbidden(e.what());
    }
  }
  if (dry_run) return charge;
  charge.store_ = &store;
  charge.ns_ = ns;
  for (const Json& q : interesting) {
    const std::string name = q["metadata"]["name"];
    ResourceList charged;
    try {
      store.Mutate(kBucket, ns, name, [&](const Json* cur) -> Mutation {
        if (!cur) return {};  // deleted meanwhile: nothing to charge
        charged = Check(*cur, delta, "");
        if (charged.empty()) return {};
        Json updated = *cur;
        ResourceList used = quota::FromJson(Field(Field(updated, "status"), "used"));
        ResourceList new_used = quota::Add(used, charged);
        for (const auto& [k, v] : quota::Mask(new_used, quota::Names(charged))) {
          updated["status"]["used"][k] = v.String();
        }
        return {Mutation::Action::kPut, updated};
      });
    } catch (const Error& e) {
      if (e.code() == Code::kForbidden) throw forbidden(e.what());
      throw;
    }
    if (!charged.empty()) charge.charged_.emplace_back(name, std::move(charged));
  }
  return charge;
}

}  // namespace kin::apiserver
