// Test support for the DaemonSet and StatefulSet controller tests: a real
// registry on SQLite behind LocalClient, a ControllerManager with the real
// scheduler, and a fake kubelet that plays the node agent's part: it marks
// bound pods Running (and Ready, unless told not to) and removes pods being
// deleted at once, as a kubelet finishing a graceful delete would.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>

#include "base/error.h"
#include "client/object.h"
#include "controllers/manager.h"
#include "controllers/registry_fixture.h"
#include "controllers/scheduler.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin::controllers::sets_testing {

class FakeKubelet : public Controller {
 public:
  FakeKubelet(SharedInformerFactory& informers, Client& client, bool auto_ready)
      : client_(client),
        pods_(informers.For(PodsResource())),
        auto_ready_(auto_ready),
        workers_("fake-kubelet", queue_, [this](const std::string& key) { return Run(key); }) {}
  ~FakeKubelet() override { Stop(); }
  std::string name() const override { return "fake-kubelet"; }
  void Start() override {
    subscriptions_.Add(pods_, HandlersFrom([this](const Json*, const Json* p) {
      if (p) queue_.Add(object::Key(*p));
    }));
    workers_.Start(1, {&pods_});
  }
  void Stop() override {
    if (stopped_) return;
    stopped_ = true;
    workers_.Stop();
    subscriptions_.RemoveAll();
  }
  // Sets a pod's phase with Ready = `ready`.
  static void SetStatus(Client& c, const std::string& ns, const std::string& name,
                        const std::string& phase, bool ready) {
    PatchPodStatus(c, ns, name, PodStatus(ready, object::NowRfc3339(), phase));
  }

 private:
  Result Run(const std::string& key) {
    auto [ns, name] = object::SplitKey(key);
    ObjectPtr p = pods_.Lookup(ns, name);
    if (!p) return Result::Done();
    try {
      if (object::IsBeingDeleted(*p)) {
        DeleteOptions o;
        o.grace_period_seconds = 0;
        o.precondition_uid = object::Uid(*p);  // a new pod of that name is not this one
        client_.Delete(PodsResource(), ns, name, o);
      } else if (!(*p)["spec"].value("nodeName", "").empty() &&
                 object::StringAt(*p, "status", "phase") == "Pending" &&
                 started_.insert(object::Uid(*p)).second) {
        // Once per pod: a stale cache must not undo a test's status writes.
        SetStatus(client_, ns, name, "Running", auto_ready_);
      }
    } catch (const Error& e) {
      if (e.code() != Code::kNotFound && e.code() != Code::kConflict) throw;
    }
    return Result::Done();
  }

  Client& client_;
  Informer& pods_;
  const bool auto_ready_;
  InformerSubscriptions subscriptions_;
  bool stopped_ = false;
  std::set<std::string> started_;  // pod uids set Running; the one worker's
  WorkQueue queue_;
  ReconcileWorkers workers_;
};

class SetsTest : public RegistryTest {
 protected:
  void SetUp() override {
    manager_ = std::make_unique<ControllerManager>(*client_);
  }
  void TearDown() override { manager_.reset(); }
  ControllerManager& manager() { return *manager_; }

  // Adds the scheduler and a fake kubelet; the caller adds its controller
  // and calls manager().Start().
  void AddRuntime(bool auto_ready = true) {
    manager().Emplace<Scheduler>(manager().informers(), cl());
    manager().Emplace<FakeKubelet>(manager().informers(), cl(), auto_ready);
  }


 public:
  static Json Node(const std::string& name, Json labels = Json::object(),
                   Json taints = Json::array()) {
    labels["kubernetes.io/hostname"] = name;
    return {{"apiVersion", "v1"},
            {"kind", "Node"},
            {"metadata", {{"name", name}, {"labels", labels}}},
            {"spec", {{"taints", taints}}},
            {"status",
             {{"allocatable", {{"cpu", "4"}, {"memory", "8Gi"}, {"pods", "110"}}},
              {"capacity", {{"cpu", "4"}, {"memory", "8Gi"}, {"pods", "110"}}},
              {"conditions", Json::array({{{"type", "Ready"}, {"status", "True"}}})}}}};
  }
  static Json ControlPlaneTaint() {
    return {{"key", "node-role.kubernetes.io/control-plane"}, {"effect", "NoSchedule"}};
  }

 protected:
  void AddNode(Json node) { CreateNode(cl(), std::move(node)); }

  // Pods in `ns` whose labels include app=`app`.
  std::vector<Json> PodsOf(const std::string& app, const std::string& ns = "default") {
    ListOptions o;
    o.label_selector = "app=" + app;
    Json list = cl().List(PodsResource(), ns, o);
    return list["items"].get<std::vector<Json>>();
  }
  // A DaemonSet's or StatefulSet's status (an empty object before the first write).
  static Json StatusOf(const Json& obj) {
    auto it = obj.find("status");
    return it != obj.end() && it->is_object() ? *it : Json::object();
  }
  std::vector<Json> EventsWith(const std::string& reason) { return EventsWithReason(cl(), reason); }

  std::unique_ptr<ControllerManager> manager_;
};

}  // namespace kin::controllers::sets_testing
