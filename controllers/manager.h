// ControllerManager: runs the controllers of `kin serve` on one shared
// informer factory, like kube-controller-manager.
//
// Controllers are added (Add/Emplace) with the factory (informers()) and
// client they need, typically before Start(). Start() starts the informers
// every controller asked for, waits for their caches to sync
// (options.sync_timeout; on timeout it stops the informers and throws
// Error::Timeout, since controllers must not decide on partial caches), then
// starts the controllers in the order they were added. A controller added
// after Start() is started at once. Stop() stops the controllers in reverse
// order, then the informers; the destructor stops, then destroys the
// controllers before the factory they hold references into.
//
// Thread-safety: Add/Emplace/Start/Stop from one owner thread, except that
// Stop may also be called from another thread to interrupt a Start that
// waits for sync.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "client/client.h"
#include "client/informer_factory.h"
#include "controllers/controller.h"

namespace kin::controllers {

struct ControllerManagerOptions {
  std::chrono::milliseconds sync_timeout = std::chrono::seconds(60);
};

class ControllerManager {
 public:
  // `client` must outlive the manager; controllers wrap it with their own
  // field manager (ComponentClient).
  explicit ControllerManager(Client& client, ControllerManagerOptions opts = {});
  ~ControllerManager();
  ControllerManager(const ControllerManager&) = delete;
  ControllerManager& operator=(const ControllerManager&) = delete;

  SharedInformerFactory& informers() { return informers_; }
  Client& client() { return client_; }

  Controller& Add(std::unique_ptr<Controller> controller);
  template <typename C, typename... Args>
  C& Emplace(Args&&... args) {
    auto c = std::make_unique<C>(std::forward<Args>(args)...);
    C& ref = *c;
    Add(std::move(c));
    return ref;
  }
  std::vector<std::string> names() const;

  void Start();
  // Idempotent.
  void Stop();

 private:
  Client& client_;
  const ControllerManagerOptions opts_;
  // Declared before controllers_, so destroyed after them.
  SharedInformerFactory informers_;
  std::vector<std::unique_ptr<Controller>> controllers_;
  std::mutex mu_;       // Start's starting of controllers against Stop
  size_t started_ = 0;  // controllers_[0, started_) are running; guarded by mu_
  bool running_ = false;
  std::atomic<bool> stopped_{false};
};

}  // namespace kin::controllers
