#include "controllers/controller.h"

#include <algorithm>

#include "base/error.h"
#include "base/log.h"

namespace kin::controllers {

void ReconcileWorkers::Start(int workers, std::vector<const Informer*> wait_for) {
  if (!threads_.empty() || queue_.ShuttingDown()) return;
  for (int i = 0; i < std::max(workers, 1); ++i) {
    threads_.emplace_back([this, wait_for] { Work(wait_for); });
  }
}

void ReconcileWorkers::Stop() {
  queue_.ShutDown();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void ReconcileWorkers::Work(const std::vector<const Informer*>& wait_for) {
  for (const Informer* informer : wait_for) {
    // Bounded waits, to notice a shutdown while the cache never syncs.
    while (!informer->WaitForSync(std::chrono::milliseconds(100))) {
      if (queue_.ShuttingDown()) return;
    }
  }
  std::string key;
  while (queue_.Get(key)) {
    Process(key);
    queue_.Done(key);
  }
}

void ReconcileWorkers::Process(const std::string& key) {
  Result r;
  try {
    r = reconcile_(key);
  } catch (const Error& e) {
    log::Warn("{}: {}: {} (retry {})", name_, key, e.message(), queue_.NumRequeues(key) + 1);
    queue_.AddRateLimited(key);
    return;
  } catch (const std::exception& e) {
    log::Warn("{}: {}: {} (retry {})", name_, key, e.what(), queue_.NumRequeues(key) + 1);
    queue_.AddRateLimited(key);
    return;
  }
  switch (r.kind) {
    case Result::Kind::kDone:
      queue_.Forget(key);
      break;
    case Result::Kind::kAfter:
      queue_.Forget(key);
      queue_.AddAfter(key, r.after);
      break;
    case Result::Kind::kRetry:
      queue_.AddRateLimited(key);
      break;
  }
}

}  // namespace kin::controllers
