// The controller runtime's pieces a controller is built from.
//
// Controller: what the ControllerManager (controllers/manager.h) starts and
// stops. Start() registers the controller's handlers on shared informers
// and starts its workers; Stop() removes the handlers and joins the
// workers, so that no code of the controller runs after it returns.
//
// ReconcileWorkers: N threads over a WorkQueue that call a reconcile
// function per key, controller-runtime style. The function reads the
// informers' caches, makes the world match and may run again at any time.
// It returns a Result: Done forgets the key's back-off; After(d) forgets it
// and looks again after d; Retry re-queues with back-off. A kin::Error (or
// any exception) is logged and re-queued with back-off (AddRateLimited).
// Workers wait for the informers named at Start() to sync before their
// first key, since deciding on a partial cache is wrong (e.g. creating
// pods that exist).
//
// ComponentClient: the identity a controller writes under: a Client whose
// writes carry the component's field manager and an EventRecorder whose
// Events name the component as their source ("replicaset-controller",
// "deployment-controller", "default-scheduler").
//
// Helpers for a controller's Start/Stop, shared by every controller:
// HandlersFrom makes InformerHandlers from one (old, now) callback;
// InformerSubscriptions remembers the handlers a controller registered on
// shared informers and removes them all at Stop; StartStopOnce is the
// "start once, stop once, never start after stop" state.
//
// Thread-safety: ReconcileWorkers' and InformerSubscriptions' methods from
// one owner thread; ComponentClient and StartStopOnce are thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "client/events.h"
#include "client/field_manager_client.h"
#include "client/informer.h"
#include "controllers/work_queue.h"

namespace kin::controllers {

class Controller {
 public:
  virtual ~Controller() = default;
  // For logs: "scheduler", "replicaset".
  virtual std::string name() const = 0;
  virtual void Start() = 0;
  // Idempotent; after it returns no handler or worker of the controller runs.
  virtual void Stop() = 0;
};

// What a reconcile asks of the queue for its key.
struct Result {
  enum class Kind { kDone, kAfter, kAt, kRetry } kind = Kind::kDone;
  Clock::Duration after{};
  Clock::TimePoint at{};

  static Result Done() { return {}; }
  static Result After(Clock::Duration d) { return {Kind::kAfter, d, {}}; }
  // Look again at `t` on the queue's clock: for a reconcile that read the
  // clock at its start, so that time passing while it ran (or before its
  // result is queued) does not push the next look later.
  static Result At(Clock::TimePoint t) { return {Kind::kAt, {}, t}; }
  static Result Retry() { return {Kind::kRetry, {}, {}}; }
};

using ReconcileFunc = std::function<Result(const std::string& key)>;

class ReconcileWorkers {
 public:
  // `queue` must outlive the workers. `name` is for logs.
  ReconcileWorkers(std::string name, WorkQueue& queue, ReconcileFunc reconcile)
      : name_(std::move(name)), queue_(queue), reconcile_(std::move(reconcile)) {}
  ~ReconcileWorkers() { Stop(); }
  ReconcileWorkers(const ReconcileWorkers&) = delete;
  ReconcileWorkers& operator=(const ReconcileWorkers&) = delete;

  // Starts `workers` threads (once); each waits for `wait_for` to sync.
  void Start(int workers, std::vector<const Informer*> wait_for = {});
  // Shuts the queue down and joins the threads. Idempotent.
  void Stop();

 private:
  void Work(const std::vector<const Informer*>& wait_for);
  // Runs one key and tells the queue what became of it.
  void Process(const std::string& key);

  const std::string name_;
  WorkQueue& queue_;
  const ReconcileFunc reconcile_;
  std::vector<std::thread> threads_;
};

// One callback for every change of an informer's objects: on_add calls
// fn(nullptr, &obj), on_update fn(&old, &now), on_delete fn(&last, nullptr).
using ChangeFunc = std::function<void(const Json* old, const Json* now)>;
InformerHandlers HandlersFrom(ChangeFunc fn);
// Handlers that queue the object's key ("ns/name" or "name") on every add,
// update and delete. `queue` must outlive the registration.
InformerHandlers EnqueueHandlers(WorkQueue& queue);
// Handlers for dependents (e.g. a DaemonSet's pods) that queue the key of
// the object's controller, when that is of `api_version` and `kind`, as it
// was before a change and as it is after (once when they are the same).
InformerHandlers EnqueueControllerHandlers(WorkQueue& queue, std::string api_version,
                                           std::string kind);

// Handlers registered on shared informers, removed together: a controller
// Add()s its handlers in Start() and calls RemoveAll() in Stop(), after
// which none of them runs (Informer::RemoveHandlers waits for a dispatch in
// flight). The destructor removes what is left, so the informers must
// outlive this object or RemoveAll() must have run before they go.
class InformerSubscriptions {
 public:
  InformerSubscriptions() = default;
  ~InformerSubscriptions() { RemoveAll(); }
  InformerSubscriptions(const InformerSubscriptions&) = delete;
  InformerSubscriptions& operator=(const InformerSubscriptions&) = delete;

  // Registers `handlers` on `informer` (see Informer::AddHandlers: objects
  // already cached are replayed as adds before this returns).
  void Add(Informer& informer, InformerHandlers handlers) {
    subs_.emplace_back(&informer, informer.AddHandlers(std::move(handlers)));
  }
  // Removes every handler added so far. Idempotent.
  void RemoveAll() {
    for (auto& [informer, id] : subs_) informer->RemoveHandlers(id);
    subs_.clear();
  }

 private:
  std::vector<std::pair<Informer*, Informer::HandlerId>> subs_;
};

// A controller's run state: Start() runs once, Stop() once, and a Start()
// after Stop() does nothing.
//   void Foo::Start() { if (!state_.TryStart()) return; ... }
//   void Foo::Stop() { if (!state_.TryStop()) return; ... }
class StartStopOnce {
 public:
  // True (and marks started) on the first call, unless stopped before.
  bool TryStart() {
    std::lock_guard l(mu_);
    if (started_ || stopped_) return false;
    started_ = true;
    return true;
  }
  // True (and marks stopped) on the first call.
  bool TryStop() {
    std::lock_guard l(mu_);
    if (stopped_) return false;
    stopped_ = true;
    return true;
  }

 private:
  std::mutex mu_;
  bool started_ = false, stopped_ = false;
};

// LatestWrites: what a controller last wrote of each object (by key). Its
// informer may not show that write yet, and deciding on the older state
// would act twice (start a Job twice, count a pod twice). Thread-safe.
class LatestWrites {
 public:
  void Record(const std::string& key, Json written);
  void Forget(const std::string& key);
  // `cached`, or the state this controller wrote when that is newer (the
  // same object, a higher resourceVersion); a written state the cache has
  // caught up with is forgotten.
  Json Fresher(const std::string& key, Json cached);

 private:
  std::mutex mu_;
  std::map<std::string, Json> written_;
};

class ComponentClient {
 public:
  // `client` must outlive this.
  ComponentClient(Client& client, const std::string& component)
      : client_(client, component), events_(client_, component), component_(component) {}

  // Writes carry the component's field manager.
  Client& client() { return client_; }
  EventRecorder& events() { return events_; }
  const std::string& component() const { return component_; }

 private:
  FieldManagerClient client_;
  EventRecorder events_;
  const std::string component_;
};

}  // namespace kin::controllers
