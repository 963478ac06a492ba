// SharedInformerFactory: one Informer per resource for the whole process,
// as client-go's SharedInformerFactory. Every controller (and node
// component) that watches pods asks the factory and gets the same informer,
// then adds its own handlers and indexes to it (client/informer.h), so the
// API is listed and watched once per resource, and one cache serves all.
//
// For(resource) makes the informer on first use (all namespaces, no
// selectors) with the standard indexes that apply: by namespace for
// namespaced resources, by owner uid for all, by node name for pods. An
// informer asked for after Start() is started at once. Stop() stops them
// all; an informer is never destroyed before the factory, so references
// from For() stay valid for the factory's life.
//
// Thread-safety: thread-safe.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "client/informer.h"

namespace kin {

class SharedInformerFactory {
 public:
  // `client` must outlive the factory.
  explicit SharedInformerFactory(Client& client) : client_(client) {}
  ~SharedInformerFactory() { Stop(); }
  SharedInformerFactory(const SharedInformerFactory&) = delete;
  SharedInformerFactory& operator=(const SharedInformerFactory&) = delete;

  // The shared informer of `resource`, made on first use.
  Informer& For(const ResourceInfo& resource);
  // Every informer made so far, in the order they were made.
  std::vector<Informer*> informers() const;

  // Starts every informer made so far, and any made later. Does nothing
  // after Stop().
  void Start();
  // Waits until every informer made so far has synced; false on timeout
  // or when stopped first.
  bool WaitForSync(std::chrono::milliseconds timeout) const;
  // Stops every informer (idempotent); no handler runs after it returns.
  void Stop();

  Client& client() const { return client_; }

 private:
  Client& client_;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Informer>> by_resource_;  // group_resource -> informer
  std::vector<Informer*> order_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace kin
