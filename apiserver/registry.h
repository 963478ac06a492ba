// Registry: the semantics of the Kubernetes API over the Store.
//
// Everything a request means lives here, shared by the HTTP front end
// (rest.h) and the in-process client (local_client.h): metadata (uid,
// generateName, creationTimestamp, generation bumped on spec changes only,
// managedFields), defaulting and validation, optimistic concurrency,
// /status and /scale subresources, the four patch types, graceful pod
// deletion, finalizers and deletionTimestamp, delete propagation policies
// (recorded as the garbage collector expects), namespace lifecycle
// (a deleted namespace terminates until the namespace controller has
// emptied it and removed spec.finalizers' `kubernetes`), the Service IP and NodePort
// allocators, list filtering and paging, and watches with selectors (an
// object that stops matching is DELETED for that watcher).
//
// Thread-safety: all methods are thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "apiserver/store.h"
#include "base/error.h"
#include "client/client.h"
#include "client/resources.h"
#include "client/selector.h"

namespace kin::apiserver {

class AdmissionWebhooks;  // admission_webhook.h

struct RegistryOptions {
  std::string service_cidr = "10.96.0.0/16";
  int node_port_min = 30000;
  int node_port_max = 32767;
  // Where the `default/kubernetes` Service's endpoints point.
  std::string api_advertise_ip = "127.0.0.1";
  int api_port = 6443;
  // tolerationSeconds of the not-ready / unreachable NoExecute tolerations
  // that pods get by default (DefaultTolerationSeconds admission).
  int64_t default_toleration_seconds = 300;
  // Events go this long after they were last recorded, as kube-apiserver's
  // --event-ttl (1h): a cluster that churns pods would otherwise keep every
  // Event for ever. Expired ones are swept when Events are created, at most
  // every 30 s (or every event_ttl, when shorter).
  std::chrono::seconds event_ttl{3600};
  // The ServiceAccount admission plugin's check: a pod must name a
  // ServiceAccount that exists (403 otherwise; the `default` one is waited
  // for up to about 2 s, as upstream retries it while the controller makes
  // it). kin serve turns it on when its serviceaccount controller runs:
  // without that controller no namespace would ever admit a pod.
  bool require_service_accounts = false;
};

// One watch as the registry serves it: events already filtered by
// namespace and selectors, typed ADDED/MODIFIED/DELETED from the watcher's
// point of view.
class RegistryWatch {
 public:
  struct Event {
    std::string type;  // ADDED, MODIFIED, DELETED
    uint64_t rv;
    std::shared_ptr<const std::string> json;
  };
  // False on timeout or when the watch has ended (see ended()).
  bool Next(Event& out, std::chrono::milliseconds timeout);
  bool ended() const { return ended_; }
  uint64_t last_rv() const { return last_rv_; }
  // Ends the watch; a Next() waiting in another thread returns at once.
  void Stop() {
    if (store_ && queue_) store_->StopWatch(queue_);
  }
  ~RegistryWatch();

 private:
  friend class Registry;
  Store* store_ = nullptr;
  std::shared_ptr<WatchQueue> queue_;
  std::deque<Event> initial_;  // synthetic ADDED events for a watch without resourceVersion
  std::string ns_;
  LabelSelector labels_;
  FieldSelector fields_;
  bool ended_ = false;
  uint64_t last_rv_ = 0;
  // A custom resource served in a version other than its storage version.
  const ResourceInfo* served_ = nullptr;
};

class Registry {
 public:
  Registry(Store& store, RegistryOptions opts);
  ~Registry();

  // Creates what a new cluster has: the default namespaces and the
  // `default/kubernetes` Service with its Endpoints. Idempotent.
  void Bootstrap();
  // Where clients reach the API (the kubernetes Service's endpoints).
  void SetApiEndpoint(const std::string& ip, int port) {
    opts_.api_advertise_ip = ip;
    opts_.api_port = port;
  }

  Json Get(const ResourceInfo& r, const std::string& ns, const std::string& name);
  // The List object as JSON text (built without re-parsing the items).
  std::string ListJson(const ResourceInfo& r, const std::string& ns, const ListOptions& opts);
  Json List(const ResourceInfo& r, const std::string& ns, const ListOptions& opts);
  Json Create(const ResourceInfo& r, const std::string& ns, Json obj, const WriteOptions& opts);
  Json Update(const ResourceInfo& r, const std::string& ns, const std::string& name, Json obj,
              const std::string& subresource, const WriteOptions& opts);
  Json Patch(const ResourceInfo& r, const std::string& ns, const std::string& name, PatchType type,
             const std::string& body, const std::string& subresource, const WriteOptions& opts);
  Json Delete(const ResourceInfo& r, const std::string& ns, const std::string& name,
              const DeleteOptions& opts);
  Json DeleteCollection(const ResourceInfo& r, const std::string& ns, const ListOptions& list,
                        const DeleteOptions& opts);
  std::unique_ptr<RegistryWatch> Watch(const ResourceInfo& r, const std::string& ns,
                                       const ListOptions& opts);
  // POST pods/NAME/binding: sets spec.nodeName once.
  Json BindPod(const std::string& ns, const std::string& name, const Json& binding);
  // GET/PUT/PATCH .../scale (autoscaling/v1 Scale).
  Json GetScale(const ResourceInfo& r, const std::string& ns, const std::string& name);

  Store& store() { return store_; }
  // The admission webhooks every write goes through (admission_webhook.h).
  AdmissionWebhooks& webhooks() { return *webhooks_; }

 private:
  struct Allocators;
  Json PrepareCreate(const ResourceInfo& r, const std::string& ns, Json obj,
                     const WriteOptions& opts);
  Json PrepareUpdate(const ResourceInfo& r, const Json& old, Json obj,
                     const std::string& subresource, const WriteOptions& opts, bool is_apply);
  // Read-modify-write with validation; `change` maps the current object to
  // the desired one.
  Json UpdateWith(const ResourceInfo& r, const std::string& ns, const std::string& name,
                  const std::string& subresource, const WriteOptions& opts,
                  const std::function<Json(const Json& current)>& change,
                  bool create_if_missing = false, bool is_apply = false);
  void CheckNamespaceWritable(const ResourceInfo& r, const std::string& ns);
  // Deletes the Events older than opts_.event_ttl, unless a sweep ran
  // lately.
  void MaybeExpireEvents();

  Store& store_;
  RegistryOptions opts_;
  std::unique_ptr<Allocators> alloc_;
  std::atomic<int64_t> last_event_sweep_ms_{0};  // steady clock
  std::unique_ptr<AdmissionWebhooks> webhooks_;
};

// RFC 3339 "2024-01-02T03:04:05Z" for now.
std::string NowRfc3339();
// Sortable RFC 3339 time `seconds` from now.
std::string TimeFromNowRfc3339(int64_t seconds);
std::string NewUid();
// Which fields of `bucket`'s objects field selectors may use (as Kubernetes
// allows per resource).
FieldSet IndexFields(const std::string& bucket, const Json& obj);
// The Kubernetes Status body for an error.
Json StatusFor(const Error& e);
Json SuccessStatus(const std::string& kind, const std::string& name, const std::string& group = "");
// Whether DELETE answers with the object (pods, services, serviceaccounts,
// PVs, PVCs and namespaces, as kube-apiserver's stores with
// ReturnDeletedObject) rather than a Success Status, once it is gone.
bool ReturnsDeletedObject(const ResourceInfo& r);
// The Success Status kube-apiserver answers a DELETE with when the object
// is gone: details name, group, kind (the plural resource) and uid.
Json DeletedStatus(const ResourceInfo& r, const Json& deleted);
// A Status as kube-apiserver writes it: metav1.Status's field order (not
// nlohmann's sorted keys), without the trailing newline.
std::string DumpStatus(const Json& status);

}  // namespace kin::apiserver
