#include "apiserver/limit_range.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include "base/error.h"
#include "client/object.h"
#include "client/quota.h"

namespace kin::apiserver {

namespace {

using quota::Amount;
using quota::ResourceList;

using object::Field;

// The quantity text as the user wrote it, canonicalized as Quantity.String().
std::string Text(const Amount& a) { return a.String(); }

// requestLimitEnforcedValues: milli-units unless one of them is too large.
struct Compared {
  int64_t req = 0, lim = 0, enforced = 0;
};
Compared Values(const Amount* req, const Amount* lim, const Amount& enforced) {
  constexpr int64_t kMaxMilli = INT64_MAX / 1000;
  Amount zero;
  const Amount& r = req ? *req : zero;
  const Amount& l = lim ? *lim : zero;
  Compared c{r.Value(), l.Value(), enforced.Value()};
  if (c.req <= kMaxMilli && c.lim <= kMaxMilli && c.enforced <= kMaxMilli) {
    c = {r.Milli(), l.Milli(), enforced.Milli()};
  }
  return c;
}

const Amount* Find(const ResourceList& l, const std::string& name) {
  auto it = l.find(name);
  return it == l.end() ? nullptr : &it->second;
}

void MinConstraint(const std::string& type, const std::string& name, const Amount& enforced,
                   const ResourceList& requests, const ResourceList& limits,
                   std::vector<std::string>& errs) {
  const Amount* req = Find(requests, name);
  const Amount* lim = Find(limits, name);
  Compared c = Values(req, lim, enforced);
  const std::string head = "minimum " + name + " usage per " + type + " is " + Text(enforced);
  if (!req) {
    errs.push_back(head + ".  No request is specified");
  } else if (c.req < c.enforced) {
    errs.push_back(head + ", but request is " + Text(*req));
  } else if (lim && c.lim < c.enforced) {
    errs.push_back(head + ", but limit is " + Text(*lim));
  }
}

void MaxConstraint(const std::string& type, const std::string& name, const Amount& enforced,
                   const ResourceList& requests, const ResourceList& limits,
                   std::vector<std::string>& errs) {
  const Amount* req = Find(requests, name);
  const Amount* lim = Find(limits, name);
  Compared c = Values(req, lim, enforced);
  const std::string head = "maximum " + name + " usage per " + type + " is " + Text(enforced);
  if (!lim) {
    errs.push_back(head + ".  No limit is specified");
  } else if (c.lim > c.enforced) {
    errs.push_back(head + ", but limit is " + Text(*lim));
  } else if (req && c.req > c.enforced) {
    errs.push_back(head + ", but request is " + Text(*req));
  }
}

// maxRequestConstraint (claims: only requests are the user's).
void MaxRequestConstraint(const std::string& type, const std::string& name,
                          const Amount& enforced, const ResourceList& requests,
                          std::vector<std::string>& errs) {
  const Amount* req = Find(requests, name);
  Compared c = Values(req, nullptr, enforced);
  const std::string head = "maximum " + name + " usage per " + type + " is " + Text(enforced);
  if (!req) {
    errs.push_back(head + ".  No request is specified");
  } else if (c.req > c.enforced) {
    errs.push_back(head + ", but request is " + Text(*req));
  }
}

void RatioConstraint(const std::string& type, const std::string& name, const Amount& enforced,
                     const ResourceList& requests, const ResourceList& limits,
                     std::vector<std::string>& errs) {
  const Amount* req = Find(requests, name);
  const Amount* lim = Find(limits, name);
  Compared c = Values(req, lim, enforced);
  const std::string head =
      name + " max limit to request ratio per " + type + " is " + Text(enforced);
  if (!req || c.req == 0) {
    errs.push_back(head + ", but no request is specified or request is 0");
    return;
  }
  if (!lim || c.lim == 0) {
    errs.push_back(head + ", but no limit is specified or limit is 0");
    return;
  }
  double observed = static_cast<double>(c.lim) / static_cast<double>(c.req);
  double display = observed;
  double max = static_cast<double>(enforced.Value());
  if (enforced.Value() <= INT64_MAX / 1000) {
    observed *= 1000;
    max = static_cast<double>(enforced.Milli());
  }
  if (observed > max) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%f", display);
    errs.push_back(head + ", but provided ratio is " + buf);
  }
}

// The Container, Pod or PersistentVolumeClaim items of a LimitRange.
std::vector<const Json*> Items(const Json& limit_range, const std::string& type) {
  std::vector<const Json*> out;
  const Json& limits = Field(Field(limit_range, "spec"), "limits");
  if (!limits.is_array()) return out;
  for (const auto& item : limits) {
    if (object::Str(item, "type") == type) out.push_back(&item);
  }
  return out;
}

// utilerrors.NewAggregate(errs).Error(): one message as is, several
// (without repeats) in brackets.
std::string Aggregate(const std::vector<std::string>& errs) {
  std::vector<std::string> seen;
  for (const auto& e : errs) {
    if (std::find(seen.begin(), seen.end(), e) == seen.end()) seen.push_back(e);
  }
  if (seen.size() == 1) return seen[0];
  std::string out;
  for (const auto& e : seen) out += (out.empty() ? "" : ", ") + e;
  return "[" + out + "]";
}

void CheckContainer(const Json& item, const Json& c, std::vector<std::string>& errs) {
  const Json& res = Field(c, "resources");
  ResourceList requests = quota::FromJson(Field(res, "requests"));
  ResourceList limits = quota::FromJson(Field(res, "limits"));
  for (const auto& [k, v] : quota::FromJson(Field(item, "min"))) {
    MinConstraint("Container", k, v, requests, limits, errs);
  }
  for (const auto& [k, v] : quota::FromJson(Field(item, "max"))) {
    MaxConstraint("Container", k, v, requests, limits, errs);
  }
  for (const auto& [k, v] : quota::FromJson(Field(item, "maxLimitRequestRatio"))) {
    RatioConstraint("Container", k, v, requests, limits, errs);
  }
}

}  // namespace

void ApplyLimitRangeDefaults(const Json& limit_range, Json& pod) {
  Json default_requests = Json::object(), default_limits = Json::object();
  for (const Json* item : Items(limit_range, "Container")) {
    const Json& dr = Field(*item, "defaultRequest");
    if (dr.is_object()) default_requests.update(dr);
    const Json& d = Field(*item, "default");
    if (d.is_object()) default_limits.update(d);
  }
  if (default_requests.empty() && default_limits.empty()) return;
  if (!pod.is_object() || !pod["spec"].is_object()) return;
  std::vector<std::string> notes;
  auto merge = [&](Json& c, const char* prefix) {
    if (!c.is_object()) return;
    if (!c["resources"].is_object()) c["resources"] = Json::object();
    Json& res = c["resources"];
    std::vector<std::string> set_requests, set_limits;
    for (auto [which, defaults, set] :
         {std::tuple{"limits", &default_limits, &set_limits},
          std::tuple{"requests", &default_requests, &set_requests}}) {
      if (!res[which].is_object()) res[which] = Json::object();
      for (const auto& [k, v] : defaults->items()) {
        if (!res[which].contains(k)) {
          res[which][k] = v;
          set->push_back(k);
        }
      }
      if (res[which].empty()) res.erase(which);
    }
    std::string name = object::Str(c, "name");
    if (!set_requests.empty()) {
      std::sort(set_requests.begin(), set_requests.end());
      std::string s;
      for (const auto& k : set_requests) s += (s.empty() ? "" : ", ") + k;
      notes.push_back(s + " request for " + prefix + " " + name);
    }
    if (!set_limits.empty()) {
      std::sort(set_limits.begin(), set_limits.end());
      std::string s;
      for (const auto& k : set_limits) s += (s.empty() ? "" : ", ") + k;
      notes.push_back(s + " limit for " + prefix + " " + name);
    }
  };
  Json& spec = pod["spec"];
  if (spec.contains("containers") && spec["containers"].is_array()) {
    for (auto& c : spec["containers"]) merge(c, "container");
  }
  if (spec.contains("initContainers") && spec["initContainers"].is_array()) {
    for (auto& c : spec["initContainers"]) merge(c, "init container");
  }
  if (notes.empty()) return;
  std::string val = "LimitRanger plugin set: ";
  for (size_t i = 0; i < notes.size(); ++i) val += (i ? "; " : "") + notes[i];
  if (!pod["metadata"].is_object()) pod["metadata"] = Json::object();
  if (!pod["metadata"]["annotations"].is_object()) {
    pod["metadata"]["annotations"] = Json::object();
  }
  pod["metadata"]["annotations"][kLimitRangerAnnotation] = val;
}

std::vector<std::string> LimitRangeViolations(const Json& limit_range, const ResourceInfo& r,
                                              const Json& obj) {
  std::vector<std::string> errs;
  if (r.group.empty() && r.plural == "persistentvolumeclaims") {
    ResourceList requests =
        quota::FromJson(Field(Field(Field(obj, "spec"), "resources"), "requests"));
    for (const Json* item : Items(limit_range, "PersistentVolumeClaim")) {
      for (const auto& [k, v] : quota::FromJson(Field(*item, "min"))) {
        MinConstraint("PersistentVolumeClaim", k, v, requests, {}, errs);
      }
      for (const auto& [k, v] : quota::FromJson(Field(*item, "max"))) {
        MaxRequestConstraint("PersistentVolumeClaim", k, v, requests, errs);
      }
    }
    return errs;
  }
  if (!r.group.empty() || r.plural != "pods") return errs;
  const Json& spec = Field(obj, "spec");
  // Items in the LimitRange's order, as upstream walks them.
  const Json& limits = Field(Field(limit_range, "spec"), "limits");
  if (!limits.is_array()) return errs;
  for (const auto& item : limits) {
    std::string type = object::Str(item, "type");
    if (type == "Container") {
      for (const char* list : {"containers", "initContainers"}) {
        const Json& cs = Field(spec, list);
        if (!cs.is_array()) continue;
        for (const auto& c : cs) CheckContainer(item, c, errs);
      }
    } else if (type == "Pod") {
      ResourceList requests = quota::PodResources(spec, "requests");
      ResourceList limits_sum = quota::PodResources(spec, "limits");
      for (const auto& [k, v] : quota::FromJson(Field(item, "min"))) {
        MinConstraint("Pod", k, v, requests, limits_sum, errs);
      }
      for (const auto& [k, v] : quota::FromJson(Field(item, "max"))) {
        MaxConstraint("Pod", k, v, requests, limits_sum, errs);
      }
      for (const auto& [k, v] : quota::FromJson(Field(item, "maxLimitRequestRatio"))) {
        RatioConstraint("Pod", k, v, requests, limits_sum, errs);
      }
    }
  }
  return errs;
}

void AdmitLimitRanges(const Store& store, const ResourceInfo& r, const std::string& ns,
                      Json& obj) {
  if (!r.group.empty() || (r.plural != "pods" && r.plural != "persistentvolumeclaims")) return;
  auto ranges = store.List("limitranges", ns, nullptr).items;
  if (ranges.empty()) return;
  std::vector<Json> parsed;
  for (const Record& rec : ranges) parsed.push_back(rec.Parse());
  if (r.plural == "pods") {
    for (const Json& lr : parsed) ApplyLimitRangeDefaults(lr, obj);
  }
  const Json& meta = Field(obj, "metadata");
  std::string name = object::Str(meta, "name");
  if (name.empty()) name = object::Str(meta, "generateName");
  for (const Json& lr : parsed) {
    auto errs = LimitRangeViolations(lr, r, obj);
    if (errs.empty()) continue;
    throw Error::Forbidden(r.group_resource() + " \"" + name + "\" is forbidden: " +
                           Aggregate(errs))
        .WithDetails(r.plural, name, r.group);
  }
}

}  // namespace kin::apiserver
