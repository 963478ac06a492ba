#include "controllers/service_accounts.h"

#include "base/error.h"
#include "client/object.h"

namespace kin::controllers {

namespace {

const ResourceInfo& ServiceAccounts() { return *FindResource("", "v1", "serviceaccounts"); }
const ResourceInfo& ConfigMaps() { return *FindResource("", "v1", "configmaps"); }

// Whether objects belong in namespace `ns` now: it exists and is not
// terminating.
bool Active(const Informer& namespaces, const std::string& ns) {
  ObjectPtr n = namespaces.LookupKey(ns);
  if (!n || object::IsBeingDeleted(*n)) return false;
  return object::StringAt(*n, "status", "phase") != "Terminating";
}

// Creates `obj` in `ns`; a namespace that began terminating meanwhile
// (Forbidden) or an object the cache has not seen yet (AlreadyExists) is
// not an error.
void CreateIgnoringRaces(Client& client, const ResourceInfo& r, const std::string& ns,
                         const Json& obj) {
  try {
    client.Create(r, ns, obj);
  } catch (const Error& e) {
    if (e.code() != Code::kForbidden && e.code() != Code::kAlreadyExists &&
        e.code() != Code::kNotFound) {
      throw;
    }
  }
}

InformerHandlers NamespaceHandlers(WorkQueue& queue) {
  return HandlersFrom([&queue](const Json*, const Json* now) {
    if (now) queue.Add(object::Name(*now));
  });
}

// Handlers that queue the namespace of `name` objects when they change or go.
InformerHandlers NamedObjectHandlers(WorkQueue& queue, std::string name) {
  return HandlersFrom([&queue, name](const Json* old, const Json* now) {
    const Json& obj = now ? *now : *old;
    if (object::Name(obj) == name) queue.Add(object::Namespace(obj));
  });
}

}  // namespace

// --- ServiceAccountsController ------------------------------------------------

ServiceAccountsController::ServiceAccountsController(SharedInformerFactory& informers,
                                                     Client& client)
    : identity_(client, "service-account-controller"),
      namespaces_(informers.For(NamespacesResource())),
      service_accounts_(informers.For(ServiceAccounts())),
      workers_("serviceaccount", queue_, [this](const std::string& ns) { return Sync(ns); }) {}

ServiceAccountsController::~ServiceAccountsController() { Stop(); }

void ServiceAccountsController::Start() {
  if (!run_state_.TryStart()) return;
  subscriptions_.Add(namespaces_, NamespaceHandlers(queue_));
  // Only deletions matter: a changed `default` is the user's to change.
  subscriptions_.Add(service_accounts_, HandlersFrom([this](const Json* old, const Json* now) {
    if (!now && object::Name(*old) == "default") queue_.Add(object::Namespace(*old));
  }));
  workers_.Start(1, {&namespaces_, &service_accounts_});
}

void ServiceAccountsController::Stop() {
  if (!run_state_.TryStop()) return;
  workers_.Stop();
  subscriptions_.RemoveAll();
}

Result ServiceAccountsController::Sync(const std::string& ns) {
  if (!Active(namespaces_, ns)) return Result::Done();
  if (service_accounts_.LookupKey(object::Key(ns, "default"))) return Result::Done();
  Json sa = {{"apiVersion", "v1"},
             {"kind", "ServiceAccount"},
             {"metadata", {{"name", "default"}, {"namespace", ns}}}};
  CreateIgnoringRaces(identity_.client(), ServiceAccounts(), ns, sa);
  return Result::Done();
}

// --- RootCaPublisher ------------------------------------------------------------

RootCaPublisher::RootCaPublisher(SharedInformerFactory& informers, Client& client,
                                 std::string ca_pem)
    : ca_pem_(std::move(ca_pem)),
      identity_(client, "root-ca-cert-publisher"),
      namespaces_(informers.For(NamespacesResource())),
      config_maps_(informers.For(ConfigMaps())),
      workers_("root-ca-cert-publisher", queue_,
               [this](const std::string& ns) { return Sync(ns); }) {}

RootCaPublisher::~RootCaPublisher() { Stop(); }

void RootCaPublisher::Start() {
  if (!run_state_.TryStart()) return;
  subscriptions_.Add(namespaces_, NamespaceHandlers(queue_));
  subscriptions_.Add(config_maps_, NamedObjectHandlers(queue_, kRootCaConfigMap));
  workers_.Start(1, {&namespaces_, &config_maps_});
}

void RootCaPublisher::Stop() {
  if (!run_state_.TryStop()) return;
  workers_.Stop();
  subscriptions_.RemoveAll();
}

Result RootCaPublisher::Sync(const std::string& ns) {
  if (!Active(namespaces_, ns)) return Result::Done();
  const Json data = {{"ca.crt", ca_pem_}};
  ObjectPtr current = config_maps_.LookupKey(object::Key(ns, kRootCaConfigMap));
  Client& client = identity_.client();
  if (!current) {
    Json cm = {{"apiVersion", "v1"},
               {"kind", "ConfigMap"},
               {"metadata",
                {{"name", kRootCaConfigMap},
                 {"namespace", ns},
                 {"annotations", {{"kubernetes.io/description", kRootCaDescription}}}}},
               {"data", data}};
    CreateIgnoringRaces(client, ConfigMaps(), ns, cm);
    return Result::Done();
  }
  const Json& annotations = object::Field(object::Field(*current, "metadata"), "annotations");
  bool data_ok = object::Field(*current, "data") == data && !current->contains("binaryData");
  bool annotation_ok = object::Str(annotations, "kubernetes.io/description") == kRootCaDescription;
  if (data_ok && annotation_ok) return Result::Done();
  Json cm = *current;
  cm["data"] = data;
  cm.erase("binaryData");
  cm["metadata"]["annotations"]["kubernetes.io/description"] = kRootCaDescription;
  try {
    client.Update(ConfigMaps(), ns, cm);  // a stale cache: Conflict, and a retry
  } catch (const Error& e) {
    if (e.code() != Code::kNotFound && e.code() != Code::kForbidden) throw;
  }
  return Result::Done();
}

}  // namespace kin::controllers
