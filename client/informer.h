// Informer: a list+watch cache of one resource, over any kin::Client.
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
// is logged and the informer carries on.
//
// Thread-safety: Get, List, HasSynced, WaitForSync and Stop may be called
// from any thread, handlers included (Stop from a handler does not wait for
// the thread; the destructor does, so do not destroy an Informer from its own
// handler). Stop waits for a List call in flight to return.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
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

class Informer {
 public:
  // `client` must outlive the informer.
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

  // `ns` is "" for cluster-scoped objects.
  std::optional<Json> Get(const std::string& ns, const std::string& name) const;
  // Every cached object, ordered by namespace/name.
  std::vector<Json> List() const;
  // True once the first list has been cached and its on_add handlers have run.
  bool HasSynced() const;
  // Waits for HasSynced(); false on timeout or when stopped first.
  bool WaitForSync(std::chrono::milliseconds timeout) const;

 private:
  enum class WatchEnd { kProductive, kUnproductive };
  struct Change {
    enum Kind { kAdd, kUpdate, kDelete } kind = kAdd;
    Json old, now;
  };

  void Run();
  // Lists and replaces the cache; false when the list failed.
  bool ListAndReplace(std::string& resource_version);
  WatchEnd WatchFrom(const std::string& resource_version);
  void Apply(const WatchEvent& ev);
  void Emit(const Change& c);
  // Waits `d` unless stopped first; false when stopped.
  bool Sleep(std::chrono::milliseconds d);
  bool stopping() const;

  Client& client_;
  const ResourceInfo resource_;
  const InformerOptions opts_;
  const InformerHandlers handlers_;
  const std::string name_;  // for logs: "pods in default"

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;  // synced_ or stopping_
  std::map<std::string, Json> cache_;   // guarded by mu_, keyed "ns/name" or "name"
  bool synced_ = false;
  bool stopping_ = false;

  std::mutex watch_mu_;
  Watch* watch_ = nullptr;  // the running watch, for Stop(); guarded by watch_mu_

  std::mutex thread_mu_;  // serializes Start/Stop's use of thread_
  std::thread thread_;
  std::atomic<std::thread::id> run_id_;  // the informer thread, once running
};

}  // namespace kin
