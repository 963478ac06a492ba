#include "controllers/apiservice_availability.h"

#include "client/object.h"
#include "client/resources.h"

namespace kin::controllers {
namespace {

const ResourceInfo& APIServices() {
  static const ResourceInfo* r = FindResource("apiregistration.k8s.io", "v1", "apiservices");
  return *r;
}

// o[k] when it is an object, else {} (never inserting, never throwing).
Json ObjectField(const Json& o, const char* k) {
  auto it = o.find(k);
  return it != o.end() && it->is_object() ? *it : Json::object();
}

// spec.service, or null for a Local APIService.
Json ServiceRef(const Json& apiservice) {
  Json ref = ObjectField(apiservice, "spec").value("service", Json());
  return ref.is_object() ? ref : Json();
}

Json Condition(const std::string& status, const std::string& reason, const std::string& message) {
  return {{"type", "Available"}, {"status", status}, {"reason", reason}, {"message", message}};
}

}  // namespace

std::optional<Json> APIServiceAvailability(const Json& apiservice, const Json* service,
                                           const Json* endpoints) {
  const Json ref = ServiceRef(apiservice);
  if (!ref.is_object()) {
    return Condition("True", "Local", "Local APIServices are always available");
  }
  const std::string name = ref.value("name", "");
  const std::string ns = ref.value("namespace", "");
  const int port = ref.value("port", 443);
  const std::string where = "service/" + name + " in \"" + ns + "\"";
  if (service == nullptr) return Condition("False", "ServiceNotFound", where + " is not present");
  const Json sspec = ObjectField(*service, "spec");
  // An ExternalName Service has no endpoints to look at (upstream skips too).
  if (sspec.value("type", "") == "ExternalName") return std::nullopt;
  std::string port_name;
  bool found = false;
  for (const Json& p : sspec.value("ports", Json::array())) {
    if (p.value("port", 0) == port) {
      found = true;
      port_name = p.value("name", "");
    }
  }
  if (!found) {
    return Condition("False", "ServicePortError",
                     where + " is not listening on port " + std::to_string(port));
  }
  if (endpoints == nullptr) {
    return Condition("False", "EndpointsNotFound", "cannot find endpoints for " + where);
  }
  for (const Json& subset : endpoints->value("subsets", Json::array())) {
    bool has_port = false;
    for (const Json& p : subset.value("ports", Json::array())) {
      if (p.value("name", "") == port_name) has_port = true;
    }
    if (has_port && !subset.value("addresses", Json::array()).empty()) return std::nullopt;
  }
  return Condition("False", "MissingEndpoints",
                   "endpoints for " + where + " have no addresses with port name \"" +
                       port_name + "\"");
}

APIServiceAvailabilityController::APIServiceAvailabilityController(
    SharedInformerFactory& informers, Client& client)
    : identity_(client, "apiservice-availability-controller"),
      apiservices_(informers.For(APIServices())),
      services_(informers.For(ServicesResource())),
      endpoints_(informers.For(EndpointsResource())),
      workers_("apiservice-availability", queue_,
               [this](const std::string& key) { return Sync(key); }) {}

APIServiceAvailabilityController::~APIServiceAvailabilityController() { Stop(); }

void APIServiceAvailabilityController::QueueFor(const Json* obj) {
  if (obj == nullptr) return;
  const std::string ns = object::Namespace(*obj);
  const std::string name = object::Name(*obj);
  for (const auto& as : apiservices_.Items()) {
    const Json ref = ServiceRef(*as);
    if (ref.is_object() && ref.value("namespace", "") == ns && ref.value("name", "") == name) {
      queue_.Add(object::Name(*as));
    }
  }
}

void APIServiceAvailabilityController::Start() {
  if (!run_state_.TryStart()) return;
  subscriptions_.Add(apiservices_, HandlersFrom([this](const Json* old_obj, const Json* new_obj) {
    const Json* o = new_obj != nullptr ? new_obj : old_obj;
    if (o != nullptr) queue_.Add(object::Name(*o));
  }));
  for (Informer* inf : {&services_, &endpoints_}) {
    subscriptions_.Add(*inf, HandlersFrom([this](const Json* old_obj, const Json* new_obj) {
      QueueFor(old_obj);
      QueueFor(new_obj);
    }));
  }
  workers_.Start(1, {&apiservices_, &services_, &endpoints_});
}

void APIServiceAvailabilityController::Stop() {
  if (!run_state_.TryStop()) return;
  subscriptions_.RemoveAll();
  workers_.Stop();
}

Result APIServiceAvailabilityController::Sync(const std::string& key) {
  auto as = apiservices_.Get("", key);
  if (!as) return Result::Done();
  std::optional<Json> svc, eps;
  const Json ref = ServiceRef(*as);
  if (ref.is_object()) {
    svc = services_.Get(ref.value("namespace", ""), ref.value("name", ""));
    eps = endpoints_.Get(ref.value("namespace", ""), ref.value("name", ""));
  }
  std::optional<Json> want =
      APIServiceAvailability(*as, svc ? &*svc : nullptr, eps ? &*eps : nullptr);
  Json next = *as;
  Json conditions = Json::array();
  bool same = false, had_ours = false;
  std::string since = object::NowRfc3339();
  for (const Json& c : ObjectField(*as, "status").value("conditions", Json::array())) {
    if (c.value("type", "") != "Available") {
      conditions.push_back(c);
      continue;
    }
    const std::string reason = c.value("reason", "");
    had_ours = c.value("status", "") == "False" &&
               (reason == "ServiceNotFound" || reason == "ServicePortError" ||
                reason == "EndpointsNotFound" || reason == "MissingEndpoints");
    if (!want) continue;
    same = c.value("status", "") == (*want)["status"] &&
           c.value("reason", "") == (*want)["reason"] &&
           c.value("message", "") == (*want)["message"];
    // The transition time moves only when the status does, as upstream's.
    if (c.value("status", "") == (*want)["status"] && c.contains("lastTransitionTime")) {
      since = c["lastTransitionTime"];
    }
  }
  if (want) {
    if (same) return Result::Done();
    (*want)["lastTransitionTime"] = since;
    conditions.push_back(*want);
  } else if (!had_ours) {
    return Result::Done();
  }
  // Without a judgement, a False this controller wrote (the Service or its
  // endpoints were missing) is taken back: the condition is unknown again.
  next["status"]["conditions"] = conditions;
  identity_.client().Update(APIServices(), "", next, "status");
  return Result::Done();
}

}  // namespace kin::controllers
