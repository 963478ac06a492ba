// GarbageCollector: deletes objects whose owners are gone and carries out
// the foreground and orphan propagation policies, as kube-controller-
// manager's garbage collector does for ownerReferences.
//
// It watches the resources named by options.resources that the API knows
// (FindResource), on the shared informers, and every custom resource an
// established CustomResourceDefinition serves (one served version each:
// all share one storage), on informers of its own that it starts and stops
// as CRDs come and go, as upstream's collector resyncs its monitors from
// discovery. It finds dependents through their owner-uid index, never by
// listing. Owners of other kinds are looked up with a live GET. Custom
// objects are changed with merge patches (they take no strategic merge),
// on the version read (a stale one conflicts and is retried). While a
// custom informer has not synced, owners waiting in the foreground or
// orphaning wait for it, so no dependent is missed.
//
// - Background: a dependent none of whose owners exists any more (absent
//   from the API, or present with another uid) is deleted (with the
//   propagation its own finalizers ask for, else Background); owners that
//   are gone are removed from a dependent that still has a live owner.
//   A cache miss is confirmed with a live GET before anything is deleted,
//   since the owner may simply not have reached this informer yet.
// - Foreground: an owner being deleted with the `foregroundDeletion`
//   finalizer has its dependents deleted (those that have dependents of
//   their own in the foreground too); once no dependent with
//   blockOwnerDeletion is left, the finalizer is removed and the API server
//   deletes the owner.
// - Orphan: an owner being deleted with the `orphan` finalizer has its
//   reference removed from each dependent, then the finalizer removed.
//
// Changes of the caches queue items: a new or changed dependent whose owner
// the cache does not hold, the dependents of a deleted object, an owner
// that starts deleting in the foreground (and its dependents) or orphaning,
// and a foreground owner when one of its dependents goes.
//
// Thread-safety: Start/Stop from one owner thread.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "base/yaml.h"
#include "client/client.h"
#include "client/informer_factory.h"
#include "controllers/controller.h"
#include "controllers/work_queue.h"

namespace kin::controllers {

inline constexpr char kFinalizerForeground[] = "foregroundDeletion";
inline constexpr char kFinalizerOrphan[] = "orphan";

struct GarbageCollectorOptions {
  int workers = 2;
  // "group/version/plural" ("v1" group for core) of what it watches; those
  // the API does not know are skipped.
  std::vector<std::string> resources = {
      "/v1/pods",
      "/v1/services",
      "/v1/endpoints",
      "/v1/configmaps",
      "/v1/secrets",
      "/v1/serviceaccounts",
      "/v1/persistentvolumeclaims",
      "/v1/replicationcontrollers",
      "/v1/nodes",
      "apps/v1/replicasets",
      "apps/v1/deployments",
      "apps/v1/daemonsets",
      "apps/v1/statefulsets",
      "apps/v1/controllerrevisions",
      "batch/v1/jobs",
      "batch/v1/cronjobs",
      "discovery.k8s.io/v1/endpointslices",
      "policy/v1/poddisruptionbudgets",
      "coordination.k8s.io/v1/leases",
  };
};

class GarbageCollector : public Controller {
 public:
  // `informers` and `client` must outlive the collector.
  GarbageCollector(SharedInformerFactory& informers, Client& client,
                   GarbageCollectorOptions opts = {});
  ~GarbageCollector() override;

  std::string name() const override { return "garbagecollector"; }
  void Start() override;
  void Stop() override;

  // The group_resource names it watches ("pods", "replicasets.apps",
  // "widgets.example.com").
  std::vector<std::string> watched() const;

 private:
  struct Watched {
    const ResourceInfo* resource;
    Informer* informer;
    // A custom resource's informer, the collector's own. Entries are never
    // freed before the collector (pointers to them stay valid); one whose
    // CRD went is stopped and no longer found.
    std::unique_ptr<Informer> own = nullptr;
  };
  // An owner as a dependent's reference resolves.
  enum class OwnerState { kSolid, kDangling, kWaitingForDependents };

  void OnChange(const Watched& w, const Json* old, const Json& now);
  void OnDelete(const Watched& w, const Json& obj);
  void Enqueue(char kind, const Watched& w, const Json& obj);
  Result Process(const std::string& item);
  // upstream's attemptToDeleteItem.
  // `live`: item was read from the API just now, not from the cache.
  Result AttemptToDelete(const Watched& w, const Json& item, bool live = false);
  // An owner deleting in the foreground: wait for blocking dependents.
  Result ProcessDeletingDependents(const Watched& w, const Json& owner);
  Result Orphan(const Watched& w, const Json& owner);
  OwnerState Classify(const Json& dependent, const Json& ref);
  // Every cached object with an owner reference to `uid`.
  std::vector<std::pair<const Watched*, ObjectPtr>> DependentsOf(const std::string& uid) const;
  bool OwnerInCache(const Json& dependent, const Json& ref) const;
  const Watched* ForRef(const Json& ref) const;
  const Watched* ByGroupResource(const std::string& group_resource) const;
  std::vector<const Watched*> Active() const;
  // Watches the custom resources the established CRDs serve now, stops
  // watching those whose CRD went; later when a CRD's resource is not yet
  // served.
  Result SyncCustomResources();
  bool CustomCachesSynced() const;
  InformerHandlers HandlersFor(const Watched* w);
  void RemoveFinalizer(const Watched& w, const Json& obj, const std::string& finalizer);
  void RemoveOwnerRefs(const Watched& w, const Json& obj, const std::set<std::string>& uids);
  void DeleteObject(const Watched& w, const Json& obj, const std::string& policy);

  const GarbageCollectorOptions opts_;
  Client& client_;
  ComponentClient identity_;
  Informer* crds_ = nullptr;  // the CustomResourceDefinitions, when served
  mutable std::shared_mutex watched_mu_;
  std::vector<std::unique_ptr<Watched>> watched_;  // guarded; only grows
  std::map<std::string, Watched*> by_group_resource_;  // guarded; the active ones
  std::mutex sync_mu_;  // one SyncCustomResources at a time
  std::atomic<bool> custom_synced_once_{false};
  InformerSubscriptions subscriptions_;
  StartStopOnce run_state_;
  std::mutex absent_mu_;
  std::set<std::string> absent_owners_;  // uids a live GET found gone
  WorkQueue queue_;
  ReconcileWorkers workers_;
};

}  // namespace kin::controllers
