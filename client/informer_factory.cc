#include "client/informer_factory.h"

#include <algorithm>

namespace kin {

Informer& SharedInformerFactory::For(const ResourceInfo& resource) {
  std::lock_guard lock(mu_);
  auto& slot = by_resource_[resource.group_resource()];
  if (slot) return *slot;
  slot = std::make_unique<Informer>(client_, resource);
  if (resource.namespaced) slot->AddIndex(kNamespaceIndex, IndexByNamespace);
  slot->AddIndex(kOwnerUidIndex, IndexByOwnerUid);
  if (resource.group.empty() && resource.plural == "pods") {
    slot->AddIndex(kNodeNameIndex, IndexByNodeName);
  }
  order_.push_back(slot.get());
  if (started_ && !stopped_) slot->Start();
  return *slot;
}

std::vector<Informer*> SharedInformerFactory::informers() const {
  std::lock_guard lock(mu_);
  return order_;
}

void SharedInformerFactory::Start() {
  std::lock_guard lock(mu_);
  if (stopped_) return;
  started_ = true;
  for (Informer* i : order_) i->Start();
}

bool SharedInformerFactory::WaitForSync(std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (Informer* i : informers()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (!i->WaitForSync(std::max(left, std::chrono::milliseconds(0)))) return false;
  }
  return true;
}

void SharedInformerFactory::Stop() {
  std::vector<Informer*> all;
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
    all = order_;
  }
  // Not under mu_: a handler may be asking the factory for an informer.
  for (auto it = all.rbegin(); it != all.rend(); ++it) (*it)->Stop();
}

}  // namespace kin
