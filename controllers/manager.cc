#include "controllers/manager.h"

#include "base/error.h"
#include "base/log.h"

namespace kin::controllers {

ControllerManager::ControllerManager(Client& client, ControllerManagerOptions opts)
    : client_(client), opts_(opts), informers_(client) {}

ControllerManager::~ControllerManager() {
  Stop();
  controllers_.clear();
}

Controller& ControllerManager::Add(std::unique_ptr<Controller> controller) {
  std::lock_guard lock(mu_);
  Controller& c = *controller;
  controllers_.push_back(std::move(controller));
  if (running_ && !stopped_) {
    // Its informers may be new: they start with the factory running, and
    // the controller's workers wait for them to sync.
    c.Start();
    started_ = controllers_.size();
  }
  return c;
}

std::vector<std::string> ControllerManager::names() const {
  std::vector<std::string> out;
  for (const auto& c : controllers_) out.push_back(c->name());
  return out;
}

void ControllerManager::Start() {
  if (running_ || stopped_) return;
  auto t0 = std::chrono::steady_clock::now();
  informers_.Start();
  // Not under mu_, so that Stop() can interrupt the wait (by stopping the
  // informers, which ends WaitForSync).
  bool synced = informers_.WaitForSync(opts_.sync_timeout);
  std::lock_guard lock(mu_);
  if (stopped_) return;
  if (!synced) {
    informers_.Stop();
    throw Error::Timeout("controller manager: informers did not sync within " +
                         std::to_string(opts_.sync_timeout.count()) + " ms");
  }
  log::Debug(
      "controller manager: {} informers synced in {} ms", informers_.informers().size(),
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count());
  running_ = true;
  for (; started_ < controllers_.size(); ++started_) {
    log::Debug("controller manager: starting {}", controllers_[started_]->name());
    controllers_[started_]->Start();
  }
}

void ControllerManager::Stop() {
  std::lock_guard lock(mu_);
  if (stopped_.exchange(true)) return;
  // Controllers before their informers, newest first, so that none is left
  // working on a cache that no longer moves.
  for (size_t i = started_; i > 0; --i) controllers_[i - 1]->Stop();
  informers_.Stop();
}

}  // namespace kin::controllers
