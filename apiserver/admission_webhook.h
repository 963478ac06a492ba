// Admission webhooks: the MutatingAdmissionWebhook and ValidatingAdmissionWebhook
// plugins of kube-apiserver, for admissionregistration.k8s.io/v1
// Mutating/ValidatingWebhookConfigurations.
//
// The registry (registry.h) calls Mutate() on a write after built-in
// defaulting and before validation, and Validate() after validation, for
// CREATE, UPDATE (also status and other subresources: "pods/status" rules)
// and DELETE; the REST front end calls AdmitConnect() for CONNECT of
// pods/exec, attach and portforward. Each reads the configurations from the store, picks the
// webhooks whose rules (operations, apiGroups, apiVersions, resources with
// "*" and "res/sub" forms, scope), namespaceSelector (the namespace's
// labels; a Namespace's own labels; cluster-scoped objects always match) and
// objectSelector (old or new object's labels) match, and POSTs each an
// admission.k8s.io/v1 AdmissionReview over HTTPS (?timeout=Ns appended, the
// server checked against clientConfig.caBundle, system roots without one).
//
// Mutating webhooks run first, configurations by name and webhooks in their
// order, each seeing the object as the previous ones left it; a response's
// JSONPatch is applied; a webhook with reinvocationPolicy IfNeeded runs once
// more when a later one changed the object. Validating webhooks then run
// (sequentially; upstream runs them in parallel, with the same outcome).
// A denial is the response's Status with the message prefixed
// `admission webhook "NAME" denied the request: ` (code 400 unless the
// response sets one of 400 or more; no reason unless it sets one). A failed
// call (transport, timeout, non-200, malformed or uid-mismatched response)
// with failurePolicy Fail (the default) is a 500 `Internal error occurred:
// failed calling webhook "NAME": failed to call webhook: ...`; with Ignore
// the request goes on. A dryRun request that matches a webhook whose
// sideEffects is neither None nor NoneOnDryRun fails with 400 `admission
// webhook "NAME" does not support dry run`. Responses' warnings go to the
// request's AdmissionRequestScope (the REST front end sends them as
// `Warning: 299 - "..."` headers).
//
// clientConfig.url is called from the host's network namespace.
// clientConfig.service {namespace, name, port (443), path} is reached as
// kube-apiserver's endpoint routing does: a ready address of the Service's
// Endpoints on the port's target port, connected from inside the cluster's
// network namespace (SetServiceNetns), TLS with SNI and Host
// `NAME.NAMESPACE.svc`. matchConditions (CEL) are not evaluated: a webhook
// that has them is treated as matching. matchPolicy Equivalent has nothing
// to add: kin serves one version per resource.
//
// Thread-safety: all methods are thread-safe.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "apiserver/store.h"
#include "base/error.h"
#include "base/yaml.h"
#include "client/client.h"
#include "client/resources.h"

namespace kin::apiserver {

// An Error that carries the whole Status body to answer with (a webhook's
// denial keeps the webhook's code, reason and details, which kin::Error's
// codes cannot always express: a 400 without a reason, for instance).
// StatusFor() answers with status().
class StatusError : public Error {
 public:
  explicit StatusError(Json status);
  const Json& status() const { return status_; }

 private:
  Json status_;
};

// Who a request acts as and where admission warnings go, for the request
// being handled on this thread: the REST front end opens one per request.
// Writes without one (the in-process client) carry an empty userInfo.
struct AdmissionUser {
  std::string username;
  std::vector<std::string> groups;
};
class AdmissionRequestScope {
 public:
  explicit AdmissionRequestScope(AdmissionUser user);
  ~AdmissionRequestScope();
  AdmissionRequestScope(const AdmissionRequestScope&) = delete;
  AdmissionRequestScope& operator=(const AdmissionRequestScope&) = delete;

  const AdmissionUser& user() const { return user_; }
  void set_user(AdmissionUser user) { user_ = std::move(user); }
  const std::vector<std::string>& warnings() const { return warnings_; }
  void AddWarning(std::string w) { warnings_.push_back(std::move(w)); }
  // The scope open on the calling thread, or null.
  static AdmissionRequestScope* Current();

 private:
  AdmissionUser user_;
  std::vector<std::string> warnings_;
  AdmissionRequestScope* previous_;
};

// Who kin's in-process components (apiserver/local_client.h) write as, by
// their field manager, as upstream's components authenticate:
// "<name>-controller" is kube-controller-manager's service account for it
// (system:serviceaccount:kube-system:<name>-controller, as with
// --use-service-account-credentials), "default-scheduler" is
// system:kube-scheduler, "kube-controller-manager"
// system:kube-controller-manager; others (the node agents) have none.
AdmissionUser InProcessUser(const std::string& component);

// One call of a webhook.
struct WebhookCall {
  std::string url;          // https://host:port/path?timeout=10s (SNI and Host: host)
  std::string connect_to;   // "ip:port" to connect to instead of the URL's host; "" none
  std::string netns;        // /run/netns name the socket is made in; "" the caller's
  std::string ca_pem;       // caBundle; "" system roots
  std::string body;         // the AdmissionReview
  std::chrono::milliseconds timeout{10000};
};
struct WebhookReply {
  int status = 0;
  std::string body;
};
// Sends webhook calls. Post() throws kin::Error with a Go-like description
// ("Post \"URL\": ...") when no HTTP answer came.
class WebhookTransport {
 public:
  virtual ~WebhookTransport() = default;
  virtual WebhookReply Post(const WebhookCall& call) = 0;
};
// HTTPS on libcurl.
std::unique_ptr<WebhookTransport> NewHttpsWebhookTransport();

// What is being admitted.
struct AdmissionAttributes {
  std::string operation;  // CREATE, UPDATE, DELETE, CONNECT
  const ResourceInfo* resource = nullptr;
  std::string subresource;
  std::string ns;
  std::string name;
  Json object;      // null on DELETE
  Json old_object;  // null on CREATE
  Json options;     // CreateOptions / UpdateOptions / DeleteOptions (meta.k8s.io/v1)
  bool dry_run = false;
  std::string kind;  // the object's kind when not the resource's (CONNECT's options)
};

// Whether writes of `r` go through webhooks: not the webhook
// configurations themselves (as upstream: a broken webhook could otherwise
// never be removed).
bool WebhooksAdmit(const ResourceInfo& r);
// The attributes of the registry's writes; options as meta.k8s.io/v1
// CreateOptions, UpdateOptions, DeleteOptions.
AdmissionAttributes CreateAttributes(const ResourceInfo& r, const Json& obj,
                                     const WriteOptions& opts);
AdmissionAttributes UpdateAttributes(const ResourceInfo& r, const std::string& subresource,
                                     const Json& obj, const Json& old, const WriteOptions& opts);
AdmissionAttributes DeleteAttributes(const ResourceInfo& r, const Json& old,
                                     const DeleteOptions& opts);

// CONNECT of pods/exec, attach or portforward: the webhooks see the
// request's PodExecOptions / PodAttachOptions / PodPortForwardOptions
// (from its query) as the object. Throws as Mutate/Validate do.
class Registry;
void AdmitConnect(Registry& registry, const std::string& ns, const std::string& pod,
                  const std::string& subresource,
                  const std::multimap<std::string, std::string>& query);

class AdmissionWebhooks {
 public:
  explicit AdmissionWebhooks(const Store& store);
  ~AdmissionWebhooks();

  void SetTransport(std::unique_ptr<WebhookTransport> t);
  // The cluster network's namespace, where Service-backed webhooks are
  // reached from ("": the host's).
  void SetServiceNetns(std::string netns);

  // Whether any configuration exists at all (cheap): lets writes skip the
  // rest when no webhook is registered.
  bool Any() const;
  // Runs the mutating webhooks; returns the object as they left it
  // (a.object when none matched). Throws as described above.
  Json Mutate(const AdmissionAttributes& a);
  // Runs the validating webhooks on a.object / a.old_object.
  void Validate(const AdmissionAttributes& a);

  // Whether `hook` (one entry of webhooks[]) matches `a`: rules and
  // selectors. Exposed for tests.
  bool Matches(const Json& hook, const AdmissionAttributes& a) const;

 private:
  struct Outcome;
  Outcome Call(const Json& hook, const AdmissionAttributes& a, const Json& object, bool mutating);
  WebhookCall Target(const Json& hook, std::string& error) const;

  const Store& store_;
  mutable std::mutex mu_;
  std::shared_ptr<WebhookTransport> transport_;
  std::string service_netns_;
};

}  // namespace kin::apiserver
