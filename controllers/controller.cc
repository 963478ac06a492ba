#include "controllers/controller.h"

#include <algorithm>

#include "base/error.h"
#include "base/log.h"
#include "client/object.h"

namespace kin::controllers {

InformerHandlers HandlersFrom(ChangeFunc fn) {
  InformerHandlers h;
  h.on_add = [fn](const Json& obj) { fn(nullptr, &obj); };
  h.on_update = [fn](const Json& old, const Json& now) { fn(&old, &now); };
  h.on_delete = [fn = std::move(fn)](const Json& last) { fn(&last, nullptr); };
  return h;
}

InformerHandlers EnqueueHandlers(WorkQueue& queue) {
  return HandlersFrom(
      [&queue](const Json* old, const Json* now) { queue.Add(object::Key(now ? *now : *old)); });
}

InformerHandlers EnqueueControllerHandlers(WorkQueue& queue, std::string api_version,
                                           std::string kind) {
  auto controller_key = [api_version = std::move(api_version),
                         kind = std::move(kind)](const Json& obj) -> std::string {
    const Json* ref = object::ControllerOf(obj);
    if (!ref) return "";
    auto str = [ref](const char* field) {
      auto it = ref->find(field);
      return it != ref->end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    if (str("kind") != kind || str("apiVersion") != api_version) return "";
    return object::Key(object::Namespace(obj), str("name"));
  };
  return HandlersFrom([&queue, controller_key](const Json* old, const Json* now) {
    std::string a = old ? controller_key(*old) : "", b = now ? controller_key(*now) : "";
    if (!a.empty()) queue.Add(a);
    if (!b.empty() && b != a) queue.Add(b);
  });
}

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
    case Result::Kind::kAt:
      queue_.Forget(key);
      queue_.AddAt(key, r.at);
      break;
    case Result::Kind::kRetry:
      queue_.AddRateLimited(key);
      break;
  }
}

void LatestWrites::Record(const std::string& key, Json written) {
  std::lock_guard l(mu_);
  written_[key] = std::move(written);
}

void LatestWrites::Forget(const std::string& key) {
  std::lock_guard l(mu_);
  written_.erase(key);
}

Json LatestWrites::Fresher(const std::string& key, Json cached) {
  std::lock_guard l(mu_);
  auto it = written_.find(key);
  if (it == written_.end()) return cached;
  if (object::Uid(it->second) == object::Uid(cached) &&
      object::ResourceVersionNumber(it->second) > object::ResourceVersionNumber(cached)) {
    return it->second;
  }
  written_.erase(it);
  return cached;
}

}  // namespace kin::controllers
