#include "controllers/endpointslice.h"

#include <algorithm>
#include <cstdlib>

#include "base/error.h"
#include "base/log.h"
#include "client/object.h"

namespace kin::controllers {

using namespace endpointutil;

namespace {

const Json& EmptyObject() {
  static const Json empty = Json::object();
  return empty;
}
const Json& EmptyArray() {
  static const Json empty = Json::array();
  return empty;
}
const Json& Obj(const Json& j, const char* key) {
  if (!j.is_object()) return EmptyObject();
  auto it = j.find(key);
  return it != j.end() && it->is_object() ? *it : EmptyObject();
}
const Json& Arr(const Json& j, const char* key) {
  if (!j.is_object()) return EmptyArray();
  auto it = j.find(key);
  return it != j.end() && it->is_array() ? *it : EmptyArray();
}
std::string Str(const Json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}
bool Bool(const Json& j, const char* key) {
  if (!j.is_object()) return false;
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}

uint64_t RvOf(const Json& obj) {
  std::string rv = object::ResourceVersion(obj);
  return std::strtoull(rv.c_str(), nullptr, 10);
}

bool IsIPv4(const std::string& s) {
  int parts = 0;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find('.', i);
    if (j == std::string::npos) j = s.size();
    if (j == i || j - i > 3) return false;
    int v = 0;
    for (size_t k = i; k < j; ++k) {
      if (s[k] < '0' || s[k] > '9') return false;
      v = v * 10 + (s[k] - '0');
    }
    if (v > 255) return false;
    ++parts;
    i = j + 1;
  }
  return parts == 4;
}

// A Service's spec.selector (a map) matches `labels`; an empty or absent
// selector is "no selector" and matches nothing here.
bool SelectorMatches(const Json& selector, const Json& labels) {
  if (!selector.is_object() || selector.empty()) return false;
  for (auto it = selector.begin(); it != selector.end(); ++it) {
    if (!labels.is_object()) return false;
    auto l = labels.find(it.key());
    if (l == labels.end() || *l != it.value()) return false;
  }
  return true;
}

bool HasSelector(const Json& svc) {
  const Json& sel = Obj(Obj(svc, "spec"), "selector");
  return !sel.empty();
}

// The controller reference's uid, or "".
std::string ControllerUid(const Json& obj) {
  const Json* ref = object::ControllerOf(obj);
  return ref ? Str(*ref, "uid") : "";
}

// The identity of an endpoint within its slices (upstream's endpoint hash:
// addresses, hostname and the target's namespace/name).
std::string EndpointKey(const Json& ep) {
  const Json& ref = Obj(ep, "targetRef");
  return Arr(ep, "addresses").dump() + "|" + Str(ep, "hostname") + "|" + Str(ref, "namespace") +
         "/" + Str(ref, "name");
}

std::string PortsKey(const Json& slice) { return Arr(slice, "ports").dump(); }


// Applies a plan with `client`, telling `tracker` what was written.
void ApplyPlan(Client& client, endpointslice_internal::SliceTracker& tracker,
               const std::string& owner_key, const std::string& ns, const SlicePlan& plan) {
  static const ResourceInfo& slices = *FindResource("discovery.k8s.io", "v1", "endpointslices");
  for (const auto& s : plan.create) tracker.Wrote(owner_key, client.Create(slices, ns, s));
  for (const auto& s : plan.update) tracker.Wrote(owner_key, client.Update(slices, ns, s));
  for (const auto& name : plan.remove) {
    try {
      client.Delete(slices, ns, name);
    } catch (const Error& e) {
      if (e.code() != Code::kNotFound) throw;
    }
    tracker.Deleted(owner_key, name);
  }
}

}  // namespace

namespace endpointutil {

// --- pure helpers -------------------------------------------------------------

std::vector<std::string> PodIPv4s(const Json& pod) {
  const Json& status = Obj(pod, "status");
  std::vector<std::string> out;
  for (const auto& ip : Arr(status, "podIPs")) {
    std::string s = Str(ip, "ip");
    if (IsIPv4(s)) out.push_back(s);
  }
  if (out.empty()) {
    std::string s = Str(status, "podIP");
    if (IsIPv4(s)) out.push_back(s);
  }
  return out;
}

bool ShouldPodBeInEndpoints(const Json& pod, bool include_terminating) {
  if (IsPodTerminal(pod)) return false;
  const Json& status = Obj(pod, "status");
  if (Str(status, "podIP").empty() && Arr(status, "podIPs").empty()) return false;
  if (!include_terminating && object::IsBeingDeleted(pod)) return false;
  return true;
}

bool ShouldSetHostname(const Json& pod, const Json& service) {
  const Json& spec = Obj(pod, "spec");
  return !Str(spec, "hostname").empty() && Str(spec, "subdomain") == object::Name(service) &&
         object::Namespace(pod) == object::Namespace(service);
}

std::optional<int64_t> FindPort(const Json& pod, const Json& service_port) {
  const Json* target = nullptr;
  if (service_port.is_object() && service_port.contains("targetPort"))
    target = &service_port["targetPort"];
  if (!target || target->is_null()) {
    // The API defaults targetPort to port.
    if (service_port.is_object() && service_port.contains("port") &&
        service_port["port"].is_number_integer())
      return service_port["port"].get<int64_t>();
    return std::nullopt;
  }
  if (target->is_number_integer()) return target->get<int64_t>();
  if (!target->is_string()) return std::nullopt;
  std::string name = target->get<std::string>();
  std::string proto = Str(service_port, "protocol");
  if (proto.empty()) proto = "TCP";
  const Json& spec = Obj(pod, "spec");
  auto search = [&](const Json& containers, bool sidecars_only) -> std::optional<int64_t> {
    for (const auto& c : containers) {
      if (sidecars_only && Str(c, "restartPolicy") != "Always") continue;
      for (const auto& p : Arr(c, "ports")) {
        std::string pp = Str(p, "protocol");
        if (pp.empty()) pp = "TCP";
        if (Str(p, "name") == name && pp == proto && p.contains("containerPort") &&
            p["containerPort"].is_number_integer())
          return p["containerPort"].get<int64_t>();
      }
    }
    return std::nullopt;
  };
  if (auto p = search(Arr(spec, "containers"), false)) return p;
  return search(Arr(spec, "initContainers"), true);
}

std::string LastChangeTriggerTime(const Json& service, const std::vector<const Json*>& pods) {
  // RFC 3339 times in UTC with whole seconds sort as strings.
  std::string latest = object::StringAt(service, "metadata", "creationTimestamp");
  for (const Json* pod : pods) {
    std::string t = object::StringAt(*pod, "metadata", "creationTimestamp");
    for (const auto& c : Arr(Obj(*pod, "status"), "conditions")) {
      if (Str(c, "type") == "Ready") t = std::max(t, Str(c, "lastTransitionTime"));
    }
    t = std::max(t, object::StringAt(*pod, "metadata", "deletionTimestamp"));
    latest = std::max(latest, t);
  }
  return latest;
}

bool ServiceSelects(const Json& service, const Json& labels) {
  return SelectorMatches(Obj(Obj(service, "spec"), "selector"), labels);
}

Json PodEndpointProjection(const Json& pod) {
  const Json& spec = Obj(pod, "spec");
  const Json& status = Obj(pod, "status");
  Json ports = Json::array();
  for (const char* list : {"containers", "initContainers"}) {
    for (const auto& c : Arr(spec, list)) ports.push_back(Arr(c, "ports"));
  }
  return {{"labels", object::Labels(pod)},
          {"ips", PodIPv4s(pod)},
          {"ready", IsPodReady(pod)},
          {"deleting", object::IsBeingDeleted(pod)},
          {"phase", Str(status, "phase")},
          {"node", Str(spec, "nodeName")},
          {"hostname", Str(spec, "hostname")},
          {"subdomain", Str(spec, "subdomain")},
          {"ports", ports}};
}

}  // namespace endpointutil

std::vector<std::string> IndexSliceByService(const Json& slice) {
  auto name = object::Label(slice, kLabelServiceName);
  if (!name || name->empty()) return {};
  return {object::Key(object::Namespace(slice), *name)};
}

// --- the planner --------------------------------------------------------------

SlicePlan PlanSlices(const SlicePlanInput& in) {
  SlicePlan plan;
  const size_t max = std::max<size_t>(1, in.max_endpoints_per_slice);
  const Json& tmeta = Obj(in.slice_template, "metadata");
  const Json& want_labels = Obj(tmeta, "labels");
  const Json& want_annotations = Obj(tmeta, "annotations");
  std::string address_type = Str(in.slice_template, "addressType");

  std::map<std::string, const Json*> by_name;
  std::map<std::string, std::vector<const Json*>> by_ports;
  for (const auto& sp : in.existing) {
    const Json* s = sp.get();
    by_name[object::Name(*s)] = s;
    if (ControllerUid(*s) != in.owner_uid || Str(*s, "addressType") != address_type) {
      plan.remove.push_back(object::Name(*s));
    } else {
      by_ports[PortsKey(*s)].push_back(s);
    }
  }
  auto meta_changed = [&](const Json& s) {
    if (Obj(Obj(s, "metadata"), "labels") != want_labels) return true;
    return in.compare_annotations && Obj(Obj(s, "metadata"), "annotations") != want_annotations;
  };
  auto with_meta = [&](Json s) {
    Json& m = s["metadata"];
    if (want_labels.empty()) m.erase("labels"); else m["labels"] = want_labels;
    if (in.compare_annotations) {
      if (want_annotations.empty()) m.erase("annotations"); else m["annotations"] = want_annotations;
    }
    return s;
  };
  auto new_slice = [&](const Json& ports) {
    Json s = in.slice_template;
    if (!ports.empty()) s["ports"] = ports; else s.erase("ports");
    s["endpoints"] = Json::array();
    return s;
  };

  for (const auto& [key, group] : in.desired) {
    // The desired endpoints not yet placed, in order.
    std::vector<std::string> order;
    std::map<std::string, const Json*> desired;
    for (const auto& ep : group.endpoints) {
      std::string k = EndpointKey(ep);
      if (desired.emplace(k, &ep).second) order.push_back(k);
    }
    std::vector<Json> to_update;
    std::vector<const Json*> unchanged;
    // 1. Existing slices keep the endpoints still wanted (in their
    //    current form); those that lost or changed one are rewritten.
    for (const Json* s : by_ports[key]) {
      Json kept = Json::array();
      bool changed = false;
      const Json& eps = Arr(*s, "endpoints");
      for (const auto& ep : eps) {
        auto it = desired.find(EndpointKey(ep));
        if (it == desired.end()) continue;
        kept.push_back(*it->second);
        if (*it->second != ep) changed = true;
        desired.erase(it);
      }
      if (changed || kept.size() != eps.size()) {
        if (kept.empty()) {
          plan.remove.push_back(object::Name(*s));
        } else {
          Json n = with_meta(*s);
          n["endpoints"] = std::move(kept);
          to_update.push_back(std::move(n));
        }
      } else if (meta_changed(*s)) {
        to_update.push_back(with_meta(*s));
      } else {
        unchanged.push_back(s);
      }
    }
    auto pop = [&]() -> const Json* {
      while (!order.empty()) {
        std::string k = order.front();
        order.erase(order.begin());
        auto it = desired.find(k);
        if (it == desired.end()) continue;  // already placed
        const Json* ep = it->second;
        desired.erase(it);
        return ep;
      }
      return nullptr;
    };
    // 2. Fill the slices written anyway, fullest first.
    std::stable_sort(to_update.begin(), to_update.end(), [](const Json& a, const Json& b) {
      return Arr(a, "endpoints").size() > Arr(b, "endpoints").size();
    });
    for (auto& s : to_update) {
      while (!desired.empty() && s["endpoints"].size() < max) s["endpoints"].push_back(*pop());
    }
    // 3. The rest: into the unchanged slice that fits them most tightly,
    //    else into new slices.
    std::vector<Json> to_create;
    while (!desired.empty()) {
      Json fill;
      bool existing = false;
      if (desired.size() < max && !unchanged.empty()) {
        size_t closest = max;
        auto best = unchanged.end();
        for (auto it = unchanged.begin(); it != unchanged.end(); ++it) {
          size_t have = Arr(**it, "endpoints").size();
          if (desired.size() + have > max) continue;
          size_t diff = max - (desired.size() + have);
          if (diff < closest) {
            closest = diff;
            best = it;
            if (diff == 0) break;
          }
        }
        if (best != unchanged.end()) {
          fill = **best;
          unchanged.erase(best);
          existing = true;
        }
      }
      if (!existing) fill = new_slice(group.ports);
      while (!desired.empty() && fill["endpoints"].size() < max) fill["endpoints"].push_back(*pop());
      (existing ? to_update : to_create).push_back(std::move(fill));
    }
    for (auto& s : to_update) plan.update.push_back(std::move(s));
    for (auto& s : to_create) plan.create.push_back(std::move(s));
  }
  // Slices of port sets no longer wanted.
  for (const auto& [key, slices] : by_ports) {
    if (in.desired.count(key)) continue;
    for (const Json* s : slices) plan.remove.push_back(object::Name(*s));
  }
  // A Service without endpoints keeps one empty placeholder slice.
  if (in.placeholder && plan.create.empty() && plan.remove.size() == in.existing.size()) {
    Json placeholder = new_slice(Json::array());
    bool kept = false;
    if (plan.remove.size() == 1) {
      const Json& s = *by_name[plan.remove[0]];
      if (Arr(s, "endpoints").empty() && Arr(s, "ports").empty() &&
          ControllerUid(s) == in.owner_uid && Str(s, "addressType") == address_type &&
          !meta_changed(s)) {
        plan.remove.clear();
        kept = true;
      }
    }
    if (!kept) plan.create.push_back(std::move(placeholder));
  }
  // Recycle slices to be deleted as slices to be created: one update
  // instead of a create and a delete.
  for (size_t i = 0; i < plan.remove.size() && !plan.create.empty();) {
    const Json& old = *by_name[plan.remove[i]];
    if (ControllerUid(old) != in.owner_uid || Str(old, "addressType") != address_type) {
      ++i;
      continue;
    }
    Json n = std::move(plan.create.back());
    plan.create.pop_back();
    Json meta = old["metadata"];
    meta["labels"] = n["metadata"].value("labels", Json::object());
    if (meta["labels"].empty()) meta.erase("labels");
    if (n["metadata"].contains("annotations"))
      meta["annotations"] = n["metadata"]["annotations"];
    else
      meta.erase("annotations");
    n["metadata"] = std::move(meta);
    plan.update.push_back(std::move(n));
    plan.remove.erase(plan.remove.begin() + static_cast<std::ptrdiff_t>(i));
  }
  return plan;
}

// --- the tracker --------------------------------------------------------------

namespace endpointslice_internal {

void SliceTracker::Wrote(const std::string& owner_key, const Json& slice) {
  std::lock_guard l(mu_);
  expected_[owner_key][object::Name(slice)] = RvOf(slice);
}

void SliceTracker::Deleted(const std::string& owner_key, const std::string& name) {
  std::lock_guard l(mu_);
  expected_[owner_key][name] = 0;
}

bool SliceTracker::Stale(
    const std::string& owner_key,
    const std::function<std::shared_ptr<const Json>(const std::string&)>& lookup) {
  std::lock_guard l(mu_);
  auto e = expected_.find(owner_key);
  if (e == expected_.end()) return false;
  bool stale = false;
  for (auto it = e->second.begin(); it != e->second.end();) {
    auto cur = lookup(it->first);
    bool lags = it->second == 0 ? cur != nullptr : (!cur || RvOf(*cur) < it->second);
    if (lags) {
      stale = true;
      ++it;
    } else {
      it = e->second.erase(it);
    }
  }
  if (e->second.empty()) expected_.erase(e);
  if (stale) waiting_.insert(owner_key);
  return stale;
}

bool SliceTracker::Observe(const std::string& owner_key, const Json& slice, bool deleted) {
  std::lock_guard l(mu_);
  bool waiting = waiting_.erase(owner_key) > 0;
  auto e = expected_.find(owner_key);
  if (e == expected_.end()) return true;
  auto it = e->second.find(object::Name(slice));
  if (it == e->second.end()) return true;
  uint64_t rv = RvOf(slice);
  bool ours;
  if (deleted) {
    ours = it->second == 0;
    e->second.erase(it);
  } else if (it->second != 0 && rv < it->second) {
    ours = true;  // an earlier write of ours; the cache still lags
  } else {
    ours = it->second != 0 && rv == it->second;
    e->second.erase(it);
  }
  if (e->second.empty()) expected_.erase(e);
  return waiting || !ours;
}

void SliceTracker::Forget(const std::string& owner_key) {
  std::lock_guard l(mu_);
  expected_.erase(owner_key);
  waiting_.erase(owner_key);
}

}  // namespace endpointslice_internal

// --- EndpointSliceController --------------------------------------------------

namespace {
const ResourceInfo& SlicesResource() {
  static const ResourceInfo& r = *FindResource("discovery.k8s.io", "v1", "endpointslices");
  return r;
}

Informer& SliceInformer(SharedInformerFactory& f) {
  Informer& inf = f.For(SlicesResource());
  inf.AddIndex(kSliceServiceIndex, IndexSliceByService);
  return inf;
}

}  // namespace

EndpointSliceController::EndpointSliceController(SharedInformerFactory& informers, Client& client,
                                                 EndpointSliceOptions opts)
    : opts_(opts),
      identity_(client, "endpointslice-controller"),
      services_(informers.For(ServicesResource())),
      pods_(informers.For(PodsResource())),
      nodes_(informers.For(NodesResource())),
      slices_(SliceInformer(informers)),
      workers_("endpointslice", queue_, [this](const std::string& key) { return Sync(key); }) {}

EndpointSliceController::~EndpointSliceController() { Stop(); }

void EndpointSliceController::Start() {
  if (!run_state_.TryStart()) return;
  subscriptions_.Add(services_, EnqueueHandlers(queue_));
  subscriptions_.Add(pods_, HandlersFrom([this](const Json* o, const Json* p) { OnPod(o, p); }));
  subscriptions_.Add(nodes_, HandlersFrom([this](const Json* o, const Json* n) { OnNode(o, n); }));
  subscriptions_.Add(slices_, HandlersFrom([this](const Json* old, const Json* now) {
    OnSlice(now ? *now : *old, /*deleted=*/!now);
  }));
  workers_.Start(opts_.workers, {&services_, &pods_, &nodes_, &slices_});
}

void EndpointSliceController::Stop() {
  if (!run_state_.TryStop()) return;
  workers_.Stop();
  subscriptions_.RemoveAll();
}

void EndpointSliceController::EnqueueServicesOf(const Json& pod) {
  const Json& labels = object::Labels(pod);
  for (const auto& svc : services_.ByIndex(kNamespaceIndex, object::Namespace(pod))) {
    if (SelectorMatches(Obj(Obj(*svc, "spec"), "selector"), labels)) queue_.Add(object::Key(*svc));
  }
}

void EndpointSliceController::OnPod(const Json* old, const Json* now) {
  if (old && now) {
    if (PodEndpointProjection(*old) == PodEndpointProjection(*now)) return;
    // Services that selected it before and those that select it now.
    EnqueueServicesOf(*old);
    if (object::Labels(*old) != object::Labels(*now)) EnqueueServicesOf(*now);
    return;
  }
  EnqueueServicesOf(now ? *now : *old);
}

void EndpointSliceController::OnNode(const Json* old, const Json* now) {
  if (old && now && object::Label(*old, kLabelZone) == object::Label(*now, kLabelZone)) return;
  const Json& node = now ? *now : *old;
  for (const auto& pod : pods_.ByIndex(kNodeNameIndex, object::Name(node))) {
    EnqueueServicesOf(*pod);
  }
}

void EndpointSliceController::OnSlice(const Json& slice, bool deleted) {
  if (object::Label(slice, kLabelManagedBy) != kEndpointSliceControllerName) return;
  auto svc = object::Label(slice, kLabelServiceName);
  if (!svc) return;
  std::string key = object::Key(object::Namespace(slice), *svc);
  if (tracker_.Observe(key, slice, deleted)) queue_.Add(key);
}

std::optional<SlicePlanInput> EndpointSliceController::DesiredFor(const Json& svc,
                                                                  bool* missing_node) const {
  const Json& spec = Obj(svc, "spec");
  if (!HasSelector(svc) || Str(spec, "type") == "ExternalName") return std::nullopt;
  const std::string ns = object::Namespace(svc);
  const std::string name = object::Name(svc);
  const bool publish_not_ready = Bool(spec, "publishNotReadyAddresses");
  const bool headless = Str(spec, "clusterIP") == "None";

  SlicePlanInput in;
  in.owner_uid = object::Uid(svc);
  in.max_endpoints_per_slice = opts_.max_endpoints_per_slice;
  Json labels = Json::object();
  for (auto it = object::Labels(svc).begin(); it != object::Labels(svc).end(); ++it) {
    if (it.key() == kLabelServiceName || it.key() == kLabelManagedBy) continue;
    labels[it.key()] = it.value();
  }
  labels[kLabelServiceName] = name;
  labels[kLabelManagedBy] = kEndpointSliceControllerName;
  if (headless) labels[kLabelHeadless] = "";
  in.slice_template = {
      {"apiVersion", "discovery.k8s.io/v1"},
      {"kind", "EndpointSlice"},
      {"metadata",
       {{"generateName", name + "-"},
        {"namespace", ns},
        {"labels", labels},
        {"ownerReferences", Json::array({object::NewControllerRef(svc, "v1", "Service")})}}},
      {"addressType", "IPv4"}};

  const Json& selector = Obj(spec, "selector");
  std::vector<const Json*> selected;
  auto pods = pods_.ByIndex(kNamespaceIndex, ns);
  for (const auto& pod : pods) {
    if (!SelectorMatches(selector, object::Labels(*pod))) continue;
    if (!ShouldPodBeInEndpoints(*pod, true)) continue;
    std::vector<std::string> ips = PodIPv4s(*pod);
    if (ips.empty()) continue;
    const Json& pspec = Obj(*pod, "spec");
    std::string node_name = Str(pspec, "nodeName");
    ObjectPtr node = node_name.empty() ? nullptr : nodes_.Lookup("", node_name);
    if (!node && !publish_not_ready) {
      // As upstream: left out until its node is known, and retried.
      if (missing_node) *missing_node = true;
      continue;
    }
    selected.push_back(pod.get());
    Json ports = Json::array();
    if (!(Arr(spec, "ports").empty() && headless)) {
      for (const auto& sp : Arr(spec, "ports")) {
        auto port = FindPort(*pod, sp);
        if (!port) continue;
        std::string proto = Str(sp, "protocol");
        Json p = {{"name", Str(sp, "name")},
                  {"port", *port},
                  {"protocol", proto.empty() ? "TCP" : proto}};
        if (!Str(sp, "appProtocol").empty()) p["appProtocol"] = Str(sp, "appProtocol");
        ports.push_back(std::move(p));
      }
    }
    bool serving = IsPodReady(*pod);
    bool terminating = object::IsBeingDeleted(*pod);
    bool ready = publish_not_ready || (serving && !terminating);
    Json ep = {{"addresses", Json::array({ips[0]})},
               {"conditions", {{"ready", ready}, {"serving", serving}, {"terminating", terminating}}},
               {"targetRef",
                {{"kind", "Pod"},
                 {"namespace", ns},
                 {"name", object::Name(*pod)},
                 {"uid", object::Uid(*pod)}}}};
    if (!node_name.empty()) ep["nodeName"] = node_name;
    if (node) {
      auto zone = object::Label(*node, kLabelZone);
      if (zone && !zone->empty()) ep["zone"] = *zone;
    }
    if (ShouldSetHostname(*pod, svc)) ep["hostname"] = Str(pspec, "hostname");
    std::string key = ports.dump();
    auto& group = in.desired[key];
    group.ports = std::move(ports);
    group.endpoints.push_back(std::move(ep));
  }
  std::string trigger = LastChangeTriggerTime(svc, selected);
  if (!trigger.empty()) in.slice_template["metadata"]["annotations"] = {{kAnnotationTriggerTime, trigger}};
  for (const auto& s : slices_.ByIndex(kSliceServiceIndex, object::Key(svc))) {
    if (object::Label(*s, kLabelManagedBy) != kEndpointSliceControllerName) continue;
    if (object::IsBeingDeleted(*s)) continue;
    in.existing.push_back(s);
  }
  return in;
}

Result EndpointSliceController::Sync(const std::string& key) {
  ObjectPtr svc = services_.LookupKey(key);
  if (!svc) {
    // Its slices are the garbage collector's (they are owned by it).
    tracker_.Forget(key);
    return Result::Done();
  }
  auto [ns, name] = object::SplitKey(key);
  if (tracker_.Stale(key, [&](const std::string& n) { return slices_.Lookup(ns, n); })) {
    // A slice event will bring us back; the delay is only a safety net.
    return Result::After(std::chrono::seconds(2));
  }
  bool missing_node = false;
  auto in = DesiredFor(*svc, &missing_node);
  if (!in) return Result::Done();
  SlicePlan plan = PlanSlices(*in);
  if (!plan.empty()) {
    // Slices are written with the newest trigger time.
    const Json& tmeta = in->slice_template["metadata"];
    for (auto* list : {&plan.create, &plan.update}) {
      for (auto& s : *list) {
        if (tmeta.contains("annotations")) {
          s["metadata"]["annotations"][kAnnotationTriggerTime] =
              tmeta["annotations"][kAnnotationTriggerTime];
        }
      }
    }
    try {
      ApplyPlan(identity_.client(), tracker_, key, ns, plan);
    } catch (const Error& e) {
      // A namespace being deleted refuses new slices: its Service goes soon.
      if (e.code() == Code::kForbidden) return Result::Done();
      identity_.events().Warning(*svc, "FailedToUpdateEndpointSlices",
                                 "Error updating Endpoint Slices for Service " + key + ": " +
                                     e.message());
      throw;
    }
  }
  if (missing_node) return Result::After(std::chrono::seconds(5));
  return Result::Done();
}

// --- EndpointSliceMirroringController -----------------------------------------

EndpointSliceMirroringController::EndpointSliceMirroringController(
    SharedInformerFactory& informers, Client& client, EndpointSliceOptions opts)
    : opts_(opts),
      identity_(client, "endpointslicemirroring-controller"),
      services_(informers.For(ServicesResource())),
      endpoints_(informers.For(EndpointsResource())),
      slices_(SliceInformer(informers)),
      workers_("endpointslicemirroring", queue_,
               [this](const std::string& key) { return Sync(key); }) {}

EndpointSliceMirroringController::~EndpointSliceMirroringController() { Stop(); }

void EndpointSliceMirroringController::Start() {
  if (!run_state_.TryStart()) return;
  subscriptions_.Add(services_, HandlersFrom([this](const Json* old, const Json* now) {
    // An update matters only when the Service gains or loses its selector.
    if (old && now && HasSelector(*old) == HasSelector(*now)) return;
    queue_.Add(object::Key(now ? *now : *old));
  }));
  subscriptions_.Add(endpoints_, EnqueueHandlers(queue_));
  subscriptions_.Add(slices_, HandlersFrom([this](const Json* old, const Json* now) {
    const Json& s = now ? *now : *old;
    if (object::Label(s, kLabelManagedBy) != kMirroringControllerName) return;
    auto svc = object::Label(s, kLabelServiceName);
    if (!svc) return;
    std::string key = object::Key(object::Namespace(s), *svc);
    if (tracker_.Observe(key, s, /*deleted=*/!now)) queue_.Add(key);
  }));
  workers_.Start(opts_.workers, {&services_, &endpoints_, &slices_});
}

void EndpointSliceMirroringController::Stop() {
  if (!run_state_.TryStop()) return;
  workers_.Stop();
  subscriptions_.RemoveAll();
}

Result EndpointSliceMirroringController::Sync(const std::string& key) {
  auto [ns, name] = object::SplitKey(key);
  if (tracker_.Stale(key, [&](const std::string& n) { return slices_.Lookup(ns, n); })) {
    return Result::After(std::chrono::seconds(2));
  }
  std::vector<ObjectPtr> existing_ptrs;
  for (const auto& s : slices_.ByIndex(kSliceServiceIndex, key)) {
    if (object::Label(*s, kLabelManagedBy) != kMirroringControllerName) continue;
    if (object::IsBeingDeleted(*s)) continue;
    existing_ptrs.push_back(s);
  }
  ObjectPtr svc = services_.LookupKey(key);
  ObjectPtr ep = endpoints_.LookupKey(key);
  SlicePlanInput in;
  in.placeholder = false;
  in.compare_annotations = true;
  in.max_endpoints_per_slice = opts_.max_endpoints_per_slice;
  in.existing = existing_ptrs;
  bool mirror = svc && ep && !HasSelector(*svc) && object::Label(*ep, kLabelSkipMirror) != "true";
  if (mirror) {
    in.owner_uid = object::Uid(*ep);
    Json labels = object::Labels(*ep);
    labels[kLabelServiceName] = name;
    labels[kLabelManagedBy] = kMirroringControllerName;
    Json annotations = Json::object();
    const Json& ann = Obj(Obj(*ep, "metadata"), "annotations");
    for (auto it = ann.begin(); it != ann.end(); ++it) {
      if (it.key() == kAnnotationTriggerTime ||
          it.key() == "kubectl.kubernetes.io/last-applied-configuration")
        continue;
      annotations[it.key()] = it.value();
    }
    Json meta = {{"generateName", name + "-"},
                 {"namespace", ns},
                 {"labels", labels},
                 {"ownerReferences", Json::array({object::NewControllerRef(*ep, "v1", "Endpoints")})}};
    if (!annotations.empty()) meta["annotations"] = annotations;
    in.slice_template = {{"apiVersion", "discovery.k8s.io/v1"},
                         {"kind", "EndpointSlice"},
                         {"metadata", meta},
                         {"addressType", "IPv4"}};
    for (const auto& subset : Arr(*ep, "subsets")) {
      Json ports = Json::array();
      for (const auto& p : Arr(subset, "ports")) {
        std::string proto = Str(p, "protocol");
        Json port = {{"name", Str(p, "name")},
                     {"port", p.value("port", 0)},
                     {"protocol", proto.empty() ? "TCP" : proto}};
        if (!Str(p, "appProtocol").empty()) port["appProtocol"] = Str(p, "appProtocol");
        ports.push_back(std::move(port));
      }
      auto& group = in.desired[ports.dump()];
      group.ports = ports;
      for (const char* list : {"addresses", "notReadyAddresses"}) {
        bool ready = std::string(list) == "addresses";
        for (const auto& a : Arr(subset, list)) {
          std::string ip = Str(a, "ip");
          if (!IsIPv4(ip)) continue;  // only IPv4 slices here
          Json e = {{"addresses", Json::array({ip})}, {"conditions", {{"ready", ready}}}};
          if (!Str(a, "hostname").empty()) e["hostname"] = Str(a, "hostname");
          if (!Str(a, "nodeName").empty()) e["nodeName"] = Str(a, "nodeName");
          const Json& ref = Obj(a, "targetRef");
          if (!ref.empty()) {
            Json r = Json::object();
            for (const char* k : {"kind", "namespace", "name", "uid"}) {
              if (!Str(ref, k).empty()) r[k] = Str(ref, k);
            }
            e["targetRef"] = r;
          }
          group.endpoints.push_back(std::move(e));
        }
      }
      if (group.endpoints.empty()) in.desired.erase(ports.dump());
    }
  }
  SlicePlan plan = PlanSlices(in);
  if (!plan.empty()) ApplyPlan(identity_.client(), tracker_, key, ns, plan);
  if (!mirror && existing_ptrs.empty()) tracker_.Forget(key);
  return Result::Done();
}

}  // namespace kin::controllers
