// Informer: a list+watch cache of one resource, over any kin::Client, with
// handlers and indexes that can be added at any time so that one informer
// per resource can be shared by every controller of the process (see
// client/informer_factory.h).
//
// Start() runs a thread that lists the resource (optionally one namespace,
// narrowed by label and field selectors), then watches from the list's
// resourceVersion (with bookmarks allowed) and applies each event to a cache
// keyed by namespace/name, calling the handlers. When the watch breaks — an
// ERROR event or Error::Gone (410: the resourceVersion is too old), any
// other error, or the server simply ending the stream — it lists again and
// emits only the differences from the cache: on_add for objects that
// appeared, on_update for those that changed, on_delete for those that went,
// while it was not watching. It never polls and does no periodic resync.
// A failed list or watch (or one that ends at once, without an event) is
// retried at once, then after 100 ms, 200 ms, ... up to 10 s while failures
// follow each other. Start() after Stop() does nothing.
//
// Handlers run on the informer's thread, one at a time, in event order; the
// cache already holds the new state when a handler runs. ADDED for a cached
// object is reported as an update, MODIFIED for an unknown one as an add;
// DELETED for an object not in the cache is ignored. A handler that throws
// is logged and the informer carries on. AddHandlers() after objects are
// cached calls the new on_add for each of them (as client-go does for a
// handler added to a running informer) on the caller's thread before it
// returns; no event is dispatched meanwhile, so the new handler sees every
// object exactly once before its changes. RemoveHandlers() waits for a
// dispatch in flight, so a removed handler is never called after it returns.
//
// The cache holds immutable std::shared_ptr<const Json>: Lookup, Items and
// ByIndex hand out pointers without copying objects; a pointer stays valid
// (and unchanged) after the cache moves on. Get and List copy.
//
// Indexes: AddIndex(name, fn) maps each object to index values (fn must be
// pure and must not throw); ByIndex(name, value) returns the objects with
// that value. Indexes are kept in step with the cache under the same lock,
// so a handler sees them updated. Standard index functions are below.
//
// Thread-safety: every method may be called from any thread, handlers
// included (Stop from a handler does not wait for the thread; the destructor
// does, so do not destroy an Informer from its own handler). Do not call
// AddHandlers/RemoveHandlers while holding a lock a handler takes: they wait
// for a dispatch in flight. Stop waits for a List call in flight to return.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "client/client.h"

namespace kin {

struct InformerOptions {
  std::string ns;  // "" = all namespaces (ignored for cluster-scoped resources)
  std::string label_selector;
  std::string field_selector;
};

struct InformerHandlers {
  std::function<void(const Json& obj)> on_add;
  std::function<void(const Json& old, const Json& now)> on_update;
  std::function<void(const Json& last)> on_delete;  // the object's last known state
};

// An immutable cached object. Cached objects (and those handlers get) have
// no metadata.managedFields: the cache drops them, as client-go's
// TransformStripManagedFields does for kube-controller-manager.
using ObjectPtr = std::shared_ptr<const Json>;
// An object's values in one index (none: the object is not in the index).
using IndexFunc = std::function<std::vector<std::string>(const Json& obj)>;

// Standard indexes (the factory adds the first three where they apply).
inline constexpr char kNamespaceIndex[] = "namespace";  // metadata.namespace
inline constexpr char kOwnerUidIndex[] = "owner-uid";   // metadata.ownerReferences[].uid
inline constexpr char kNodeNameIndex[] = "node-name";   // spec.nodeName (pods), when set
std::vector<std::string> IndexByNamespace(const Json& obj);
std::vector<std::string> IndexByOwnerUid(const Json& obj);
std::vector<std::string> IndexByNodeName(const Json& obj);
// "label:<key>": the value of label `key`, for objects that carry it.
std::string LabelIndexName(const std::string& key);
IndexFunc IndexByLabel(std::string key);

class Informer {
 public:
  using HandlerId = uint64_t;

  // `client` must outlive the informer. `handlers`, if any, are registered
  // as by AddHandlers before anything is cached.
  Informer(Client& client, const ResourceInfo& resource, InformerOptions opts = {},
           InformerHandlers handlers = {});
  ~Informer();
  Informer(const Informer&) = delete;
  Informer& operator=(const Informer&) = delete;

  // Starts the thread (once).
  void Start();
  // Ends the watch and joins the thread; no handler runs after it returns
  // (unless called from a handler). Idempotent.
  void Stop();

  // Registers handlers; see the header comment for objects already cached.
  HandlerId AddHandlers(InformerHandlers handlers);
  void RemoveHandlers(HandlerId id);

  // Adds an index over the cached objects and every later change. False
  // (and the index is left as it was) when an index of that name exists, so
  // controllers asking for the same standard index share it.
  bool AddIndex(const std::string& name, IndexFunc fn);
  bool AddLabelIndex(const std::string& label_key) {
    return AddIndex(LabelIndexName(label_key), IndexByLabel(label_key));
  }
  bool HasIndex(const std::string& name) const;
  // Objects whose index `name` has `value`, ordered by namespace/name.
  // Throws Error (Internal) for an unknown index.
  std::vector<ObjectPtr> ByIndex(const std::string& name, const std::string& value) const;
  // Their keys only.
  std::vector<std::string> IndexKeys(const std::string& name, const std::string& value) const;

  // `ns` is "" for cluster-scoped objects. nullptr when not cached.
  ObjectPtr Lookup(const std::string& ns, const std::string& name) const;
  // By key ("ns/name" or "name").
  ObjectPtr LookupKey(const std::string& key) const;
  // Every cached object, ordered by namespace/name.
  std::vector<ObjectPtr> Items() const;
  size_t Size() const;

  // Copying forms of Lookup and Items.
  std::optional<Json> Get(const std::string& ns, const std::string& name) const;
  std::vector<Json> List() const;
  // True once the first list has been cached and its on_add handlers have run.
  bool HasSynced() const;
  // Waits for HasSynced(); false on timeout or when stopped first.
  bool WaitForSync(std::chrono::milliseconds timeout) const;

  const ResourceInfo& resource() const { return resource_; }

 private:
  enum class WatchEnd { kProductive, kUnproductive };
  struct Change {
    enum Kind { kAdd, kUpdate, kDelete } kind = kAdd;
    ObjectPtr old, now;
  };
  struct Registration {
    HandlerId id;
    InformerHandlers handlers;
  };
  using Registrations = std::vector<Registration>;
  struct Index {
    IndexFunc fn;
    std::map<std::string, std::set<std::string>> keys;  // value -> object keys
  };

  void Run();
  // Lists and replaces the cache; false when the list failed.
  bool ListAndReplace(std::string& resource_version);
  WatchEnd WatchFrom(const std::string& resource_version);
  void Apply(const WatchEvent& ev);
  // Calls every registered handler; emit_mu_ held.
  void Emit(const Change& c);
  // Waits `d` unless stopped first; false when stopped.
  bool Sleep(std::chrono::milliseconds d);
  bool stopping() const;
  // Index upkeep; mu_ held.
  void IndexAdd(Index& index, const std::string& key, const Json& obj);
  void IndexRemove(Index& index, const std::string& key, const Json& obj);
  void Reindex(const std::string& key, const Json* old, const Json* now);
  std::vector<ObjectPtr> ObjectsOf(const std::set<std::string>& keys) const;

  Client& client_;
  const ResourceInfo resource_;
  const InformerOptions opts_;
  const std::string name_;  // for logs: "pods in default"

  // Held (by the informer thread) from a cache change until its handlers
  // have run, and by AddHandlers/RemoveHandlers; recursive so that a
  // handler may add or remove handlers.
  std::recursive_mutex emit_mu_;
  // Copy-on-write, so a handler that adds handlers does not invalidate the
  // list being dispatched; guarded by emit_mu_.
  std::shared_ptr<const Registrations> handlers_ = std::make_shared<Registrations>();
  HandlerId next_id_ = 1;  // guarded by emit_mu_

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;      // synced_ or stopping_
  std::map<std::string, ObjectPtr> cache_;  // guarded by mu_, keyed "ns/name" or "name"
  std::map<std::string, Index> indexes_;    // guarded by mu_
  bool synced_ = false;
  bool stopping_ = false;

  std::mutex watch_mu_;
  Watch* watch_ = nullptr;  // the running watch, for Stop(); guarded by watch_mu_

  std::mutex thread_mu_;  // serializes Start/Stop's use of thread_
  std::thread thread_;
  std::atomic<std::thread::id> run_id_;  // the informer thread, once running
};

}  // namespace kin
