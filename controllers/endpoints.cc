#include "controllers/endpoints.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>

#include "base/error.h"
#include "client/object.h"
#include "controllers/endpointslice.h"

namespace kin::controllers {

using namespace endpointutil;

namespace {

const Json& EmptyObject() {
  static const Json empty = Json::object();
  return empty;
}
const Json& Obj(const Json& j, const char* key) {
  if (!j.is_object()) return EmptyObject();
  auto it = j.find(key);
  return it != j.end() && it->is_object() ? *it : EmptyObject();
}
std::vector<const Json*> Items(const Json& j, const char* key) {
  std::vector<const Json*> out;
  if (!j.is_object()) return out;
  auto it = j.find(key);
  if (it == j.end() || !it->is_array()) return out;
  for (const auto& e : *it) out.push_back(&e);
  return out;
}
std::string Str(const Json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

// Addresses by IP, then target uid (upstream's addrsByIPAndUID).
void SortAddresses(Json& list) {
  std::sort(list.begin(), list.end(), [](const Json& a, const Json& b) {
    auto ka = std::make_pair(Str(a, "ip"), Str(Obj(a, "targetRef"), "uid"));
    auto kb = std::make_pair(Str(b, "ip"), Str(Obj(b, "targetRef"), "uid"));
    return ka < kb;
  });
}

// The labels an Endpoints object carries for `svc`.
Json WantLabels(const Json& svc) {
  Json labels = object::Labels(svc);
  if (Str(Obj(svc, "spec"), "clusterIP") == "None")
    labels[kLabelHeadless] = "";
  else
    labels.erase(kLabelHeadless);
  return labels;
}

}  // namespace

Json BuildSubsets(const Json& service, const std::vector<const Json*>& pods) {
  const Json& spec = Obj(service, "spec");
  const bool publish_not_ready = spec.value("publishNotReadyAddresses", false);
  const bool headless = Str(spec, "clusterIP") == "None";
  auto service_ports = Items(spec, "ports");
  struct Subset {
    Json ports = Json::array();
    Json ready = Json::array();
    Json not_ready = Json::array();
  };
  std::map<std::string, Subset> by_ports;
  for (const Json* pod : pods) {
    if (!ShouldPodBeInEndpoints(*pod, publish_not_ready)) continue;
    std::vector<std::string> ips = PodIPv4s(*pod);
    if (ips.empty()) continue;
    Json addr = {{"ip", ips[0]},
                 {"targetRef",
                  {{"kind", "Pod"},
                   {"namespace", object::Namespace(*pod)},
                   {"name", object::Name(*pod)},
                   {"uid", object::Uid(*pod)}}}};
    std::string node = Str(Obj(*pod, "spec"), "nodeName");
    if (!node.empty()) addr["nodeName"] = node;
    if (ShouldSetHostname(*pod, service)) addr["hostname"] = Str(Obj(*pod, "spec"), "hostname");
    Json ports = Json::array();
    if (service_ports.empty()) {
      if (!headless) continue;  // only headless Services list addresses without ports
    } else {
      for (const Json* sp : service_ports) {
        auto port = FindPort(*pod, *sp);
        if (!port) continue;
        std::string proto = Str(*sp, "protocol");
        Json p = {{"port", *port}, {"protocol", proto.empty() ? "TCP" : proto}};
        if (!Str(*sp, "name").empty()) p["name"] = Str(*sp, "name");
        if (!Str(*sp, "appProtocol").empty()) p["appProtocol"] = Str(*sp, "appProtocol");
        ports.push_back(std::move(p));
      }
      if (ports.empty()) continue;
      std::sort(ports.begin(), ports.end(), [](const Json& a, const Json& b) {
        return std::make_tuple(Str(a, "name"), a.value("port", 0), Str(a, "protocol")) <
               std::make_tuple(Str(b, "name"), b.value("port", 0), Str(b, "protocol"));
      });
    }
    Subset& s = by_ports[ports.dump()];
    s.ports = ports;
    (publish_not_ready || IsPodReady(*pod) ? s.ready : s.not_ready).push_back(std::move(addr));
  }
  Json subsets = Json::array();
  for (auto& [key, s] : by_ports) {
    Json subset = Json::object();
    if (!s.ready.empty()) {
      SortAddresses(s.ready);
      subset["addresses"] = std::move(s.ready);
    }
    if (!s.not_ready.empty()) {
      SortAddresses(s.not_ready);
      subset["notReadyAddresses"] = std::move(s.not_ready);
    }
    if (!s.ports.empty()) subset["ports"] = std::move(s.ports);
    subsets.push_back(std::move(subset));
  }
  return subsets;
}

bool TruncateEndpoints(Json& subsets, size_t max) {
  size_t total_ready = 0, total_not_ready = 0;
  for (const auto& s : subsets) {
    total_ready += s.value("addresses", Json::array()).size();
    total_not_ready += s.value("notReadyAddresses", Json::array()).size();
  }
  if (total_ready + total_not_ready <= max) return false;
  bool truncate_ready = false;
  size_t limit = max - std::min(max, total_ready);
  size_t num_total = total_not_ready;
  if (total_ready > max) {
    truncate_ready = true;
    limit = max;
    num_total = total_ready;
  }
  size_t can_be_added = limit;
  for (auto& s : subsets) {
    const char* list = truncate_ready ? "addresses" : "notReadyAddresses";
    size_t in_subset = s.value(list, Json::array()).size();
    // Each subset keeps its share of the room, rounded up (the last may
    // get less).
    size_t to_add = static_cast<size_t>(std::ceil(static_cast<double>(in_subset) /
                                                  static_cast<double>(num_total) *
                                                  static_cast<double>(limit)));
    to_add = std::min(to_add, can_be_added);
    if (s.contains(list) && s[list].size() > to_add) {
      s[list].erase(s[list].begin() + static_cast<std::ptrdiff_t>(to_add), s[list].end());
    }
    if (truncate_ready) s.erase("notReadyAddresses");
    if (s.contains(list) && s[list].empty()) s.erase(list);
    can_be_added -= s.contains(list) ? s[list].size() : 0;
  }
  return true;
}

EndpointsController::EndpointsController(SharedInformerFactory& informers, Client& client,
                                         EndpointsOptions opts)
    : opts_(opts),
      identity_(client, "endpoint-controller"),
      services_(informers.For(ServicesResource())),
      pods_(informers.For(PodsResource())),
      endpoints_(informers.For(EndpointsResource())),
      workers_("endpoints", queue_, [this](const std::string& key) { return Sync(key); }) {}

EndpointsController::~EndpointsController() { Stop(); }

void EndpointsController::Start() {
  if (!run_state_.TryStart()) return;
  subscriptions_.Add(services_, EnqueueHandlers(queue_));
  subscriptions_.Add(pods_, HandlersFrom([this](const Json* o, const Json* p) { OnPod(o, p); }));
  subscriptions_.Add(endpoints_, HandlersFrom([this](const Json* old, const Json* now) {
    if (now) {
      // The cache caught up with a write of ours.
      std::lock_guard l(written_mu_);
      if (waiting_.erase(object::Key(*now))) queue_.Add(object::Key(*now));
      return;
    }
    // Endpoints deleted under a Service that has a selector are made again.
    {
      std::lock_guard l(written_mu_);
      written_.erase(object::Key(*old));
      waiting_.erase(object::Key(*old));
    }
    ObjectPtr svc = services_.LookupKey(object::Key(*old));
    if (svc && !Obj(Obj(*svc, "spec"), "selector").empty()) queue_.Add(object::Key(*old));
  }));
  workers_.Start(opts_.workers, {&services_, &pods_, &endpoints_});
}

void EndpointsController::Stop() {
  if (!run_state_.TryStop()) return;
  workers_.Stop();
  subscriptions_.RemoveAll();
}

void EndpointsController::EnqueueServicesOf(const Json& pod) {
  const Json& labels = object::Labels(pod);
  for (const auto& svc : services_.ByIndex(kNamespaceIndex, object::Namespace(pod))) {
    if (ServiceSelects(*svc, labels)) queue_.Add(object::Key(*svc));
  }
}

void EndpointsController::OnPod(const Json* old, const Json* now) {
  if (old && now) {
    if (PodEndpointProjection(*old) == PodEndpointProjection(*now)) return;
    EnqueueServicesOf(*old);
    if (object::Labels(*old) != object::Labels(*now)) EnqueueServicesOf(*now);
    return;
  }
  EnqueueServicesOf(now ? *now : *old);
}

Result EndpointsController::Sync(const std::string& key) {
  auto [ns, name] = object::SplitKey(key);
  ObjectPtr svc = services_.LookupKey(key);
  ObjectPtr current = endpoints_.LookupKey(key);
  Client& client = identity_.client();
  {
    std::lock_guard l(written_mu_);
    auto it = written_.find(key);
    if (it != written_.end()) {
      uint64_t have = current ? std::strtoull(object::ResourceVersion(*current).c_str(), nullptr, 10) : 0;
      if (have < it->second) {
        // Our last write has not reached the cache: wait for it (the
        // endpoints handler queues the key; the delay is a safety net).
        waiting_.insert(key);
        return Result::After(std::chrono::seconds(2));
      }
      written_.erase(it);
    }
  }
  if (!svc) {
    if (current) {
      DeleteOptions opts;
      opts.precondition_uid = object::Uid(*current);
      try {
        client.Delete(EndpointsResource(), ns, name, opts);
      } catch (const Error& e) {
        if (e.code() != Code::kNotFound) throw;
      }
    }
    return Result::Done();
  }
  const Json& spec = Obj(*svc, "spec");
  if (Obj(spec, "selector").empty()) return Result::Done();

  std::vector<const Json*> selected;
  auto pods = pods_.ByIndex(kNamespaceIndex, ns);
  for (const auto& pod : pods) {
    if (ServiceSelects(*svc, object::Labels(*pod))) selected.push_back(pod.get());
  }
  Json subsets = BuildSubsets(*svc, selected);
  bool truncated = TruncateEndpoints(subsets);
  Json labels = WantLabels(*svc);

  if (current) {
    const Json& cm = Obj(*current, "metadata");
    bool over = Obj(cm, "annotations").contains(kAnnotationOverCapacity);
    if (current->value("subsets", Json::array()) == subsets && Obj(cm, "labels") == labels &&
        over == truncated) {
      return Result::Done();
    }
  }
  Json ep = current ? *current
                    : Json{{"apiVersion", "v1"},
                           {"kind", "Endpoints"},
                           {"metadata", {{"name", name}, {"namespace", ns}}}};
  ep["apiVersion"] = "v1";
  ep["kind"] = "Endpoints";
  Json& m = ep["metadata"];
  if (labels.empty()) m.erase("labels"); else m["labels"] = labels;
  Json annotations = m.value("annotations", Json::object());
  std::string trigger = LastChangeTriggerTime(*svc, selected);
  if (!trigger.empty())
    annotations[kAnnotationTriggerTime] = trigger;
  else
    annotations.erase(kAnnotationTriggerTime);
  if (truncated)
    annotations[kAnnotationOverCapacity] = "truncated";
  else
    annotations.erase(kAnnotationOverCapacity);
  if (annotations.empty()) m.erase("annotations"); else m["annotations"] = annotations;
  if (subsets.empty()) ep.erase("subsets"); else ep["subsets"] = subsets;
  try {
    Json written = current ? client.Update(EndpointsResource(), ns, ep)  // stale: Conflict
                           : client.Create(EndpointsResource(), ns, ep);
    std::lock_guard l(written_mu_);
    written_[key] = std::strtoull(object::ResourceVersion(written).c_str(), nullptr, 10);
  } catch (const Error& e) {
    // A namespace being deleted refuses new content: nothing to retry.
    if (e.code() == Code::kForbidden && !current) return Result::Done();
    identity_.events().Warning(
        *svc, current ? "FailedToUpdateEndpoint" : "FailedToCreateEndpoint",
        std::string("Failed to ") + (current ? "update" : "create") + " endpoint " + key + ": " +
            e.message());
    throw;
  }
  return Result::Done();
}

}  // namespace kin::controllers
