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
// Thread-safety: ReconcileWorkers' Start/Stop from one owner thread;
// ComponentClient is thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <thread>
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
  enum class Kind { kDone, kAfter, kRetry } kind = Kind::kDone;
  Clock::Duration after{};

  static Result Done() { return {}; }
  static Result After(Clock::Duration d) { return {Kind::kAfter, d}; }
  static Result Retry() { return {Kind::kRetry, {}}; }
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
