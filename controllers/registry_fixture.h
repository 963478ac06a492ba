// Test support for the controllers' unit tests (header-only; compiled into
// test targets, never into kin_controllers).
//
// RegistryTest: a gtest fixture with a real registry on SQLite in a
// temporary directory behind apiserver::LocalClient, as inside `kin serve`.
// It is ready when the derived fixture's SetUp runs; it is destroyed after
// the derived fixture's members, so informers, managers and controllers a
// test keeps in its own members never outlive the client they use.
//
// The free functions play the parts no unit test runs: a kubelet writing
// pod status, a node agent registering its Node, and reading the Events
// controllers record.
//
// Thread-safety: as kin::Client (the registry and LocalClient are
// thread-safe); the fixture itself belongs to the test's thread.
#pragma once

#include <functional>

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "apiserver/local_client.h"
#include "base/error.h"
#include "apiserver/registry.h"
#include "apiserver/store.h"
#include "client/client.h"
#include "client/object.h"
#include "client/resources.h"
#include "testing/e2e_support.h"

namespace kin::controllers {

class RegistryTest : public ::testing::Test {
 protected:
  RegistryTest() {
    apiserver::StoreOptions so;
    so.index_fields = apiserver::IndexFields;
    store_ = apiserver::Store::Open(dir_.File("kin.db"), so);
    registry_ = std::make_unique<apiserver::Registry>(*store_, apiserver::RegistryOptions{});
    registry_->Bootstrap();
    client_ = std::make_unique<apiserver::LocalClient>(*registry_, "test");
  }
  Client& cl() { return *client_; }
  // Read, change and write an object as client-go's RetryOnConflict does:
  // the controllers under test write the same objects (status,
  // annotations) at any moment, so a plain get-then-update can conflict.
  Json UpdateRetryingConflicts(const ResourceInfo& r, const std::string& ns,
                               const std::string& name, const std::function<void(Json&)>& change,
                               const std::string& subresource = "") {
    for (int attempt = 0;; ++attempt) {
      Json obj = cl().Get(r, ns, name);
      change(obj);
      try {
        return cl().Update(r, ns, obj, subresource);
      } catch (const Error& e) {
        if (e.code() != Code::kConflict || attempt >= 20) throw;
      }
    }
  }

  ::kin::testing::TempDir dir_;
  std::unique_ptr<apiserver::Store> store_;
  std::unique_ptr<apiserver::Registry> registry_;
  std::unique_ptr<apiserver::LocalClient> client_;
};

// A pod's Ready condition; lastTransitionTime only when `since` is given.
inline Json ReadyCondition(bool ready, const std::string& since = "") {
  Json c = {{"type", "Ready"}, {"status", ready ? "True" : "False"}};
  if (!since.empty()) c["lastTransitionTime"] = since;
  return c;
}

// A pod status of `phase` (Running by default) with its Ready condition.
inline Json PodStatus(bool ready, const std::string& since = "",
                      const std::string& phase = "Running") {
  return {{"phase", phase}, {"conditions", Json::array({ReadyCondition(ready, since)})}};
}

// Merges `status` into the pod's status, as a kubelet writes it.
inline void PatchPodStatus(Client& c, const std::string& ns, const std::string& name,
                           const Json& status) {
  c.Patch(PodsResource(), ns, name, PatchType::kMerge, {{"status", status}}, "status");
}

// Creates `node` and then writes its status (which a create ignores), as a
// node agent registering.
inline void CreateNode(Client& c, Json node) {
  Json status = node["status"];
  node.erase("status");
  c.Create(NodesResource(), "", node);
  c.Patch(NodesResource(), "", node["metadata"]["name"], PatchType::kMerge, {{"status", status}},
          "status");
}

// Events in `ns` with `reason` (and, when given, about the object named
// `involved`), in list order.
inline std::vector<Json> EventsWithReason(Client& c, const std::string& reason,
                                          const std::string& involved = "",
                                          const std::string& ns = "default") {
  std::vector<Json> out;
  Json list = c.List(EventsResource(), ns);
  for (const auto& e : list["items"]) {
    if (e.value("reason", "") != reason) continue;
    if (!involved.empty() && e["involvedObject"].value("name", "") != involved) continue;
    out.push_back(e);
  }
  return out;
}

}  // namespace kin::controllers
