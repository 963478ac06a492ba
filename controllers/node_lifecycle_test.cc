// The node lifecycle controller: a silent node turns Unknown and tainted,
// its pods not ready, then evicted as their tolerations say; a node that
// comes back loses the taints. Against a real registry; time is a FakeClock.
#include "controllers/node_lifecycle.h"

#include <gtest/gtest.h>

#include "base/error.h"
#include "client/object.h"
#include "controllers/registry_fixture.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin::controllers {
namespace {

using std::chrono::seconds;
using std::chrono::system_clock;
using testing::Eventually;

Json T(const std::string& text) { return Json::parse(text); }

TEST(EvictionTimeTest, TolerationsDecide) {
  system_clock::time_point now = *object::ParseRfc3339("2026-01-01T00:10:00Z");
  Json taints = T(R"([{"key":"node.kubernetes.io/unreachable","effect":"NoExecute",
                       "timeAdded":"2026-01-01T00:00:00Z"},
                      {"key":"node.kubernetes.io/unreachable","effect":"NoSchedule"}])");
  Json pod = T(R"({"spec":{}})");
  EXPECT_EQ(EvictionTime(pod, taints, now), now) << "not tolerated: at once";
  pod["spec"]["tolerations"] = T(R"([{"key":"node.kubernetes.io/unreachable",
      "operator":"Exists","effect":"NoExecute","tolerationSeconds":300}])");
  EXPECT_EQ(EvictionTime(pod, taints, now), *object::ParseRfc3339("2026-01-01T00:05:00Z"))
      << "counted from timeAdded";
  pod["spec"]["tolerations"].push_back(T(R"({"operator":"Exists","tolerationSeconds":60})"));
  EXPECT_EQ(EvictionTime(pod, taints, now), *object::ParseRfc3339("2026-01-01T00:01:00Z"))
      << "the shortest matching toleration";
  pod["spec"]["tolerations"] = T(R"([{"operator":"Exists"}])");
  EXPECT_EQ(EvictionTime(pod, taints, now), std::nullopt) << "tolerated for ever";
  pod["spec"]["tolerations"] = T(R"([{"key":"other","operator":"Exists"}])");
  EXPECT_EQ(EvictionTime(pod, taints, now), now);
  EXPECT_EQ(EvictionTime(T(R"({"spec":{}})"), T(R"([{"key":"x","effect":"NoSchedule"}])"), now),
            std::nullopt)
      << "only NoExecute evicts";
}

class NodeLifecycleTest : public RegistryTest {
 protected:
  void SetUp() override {
    wall_start_ = system_clock::now();
    informers_ = std::make_unique<SharedInformerFactory>(*client_);
  }
  void TearDown() override {
    if (controller_) controller_->Stop();
    informers_->Stop();
  }
  system_clock::time_point Now() const {
    return wall_start_ + std::chrono::duration_cast<system_clock::duration>(clock_.Now() -
                                                                            Clock::TimePoint());
  }
  void StartController() {
    NodeLifecycleOptions o;
    o.grace_period = seconds(40);
    o.clock = &clock_;
    o.now = [this] { return Now(); };
    controller_ = std::make_unique<NodeLifecycleController>(*informers_, *client_, o);
    informers_->Start();
    controller_->Start();
  }
  // A node whose agent last reported at Now().
  void MakeNode(const std::string& name) {
    std::string now = object::FormatRfc3339(Now());
    cl().Create(NodesResource(), "",
                    {{"apiVersion", "v1"}, {"kind", "Node"}, {"metadata", {{"name", name}}}});
    cl().Patch(NodesResource(), "", name, PatchType::kMerge,
                   {{"status",
                     {{"conditions", Json::array({{{"type", "Ready"},
                                                   {"status", "True"},
                                                   {"reason", "KubeletReady"},
                                                   {"lastHeartbeatTime", now},
                                                   {"lastTransitionTime", now}}})}}}},
                   "status");
    RenewLease(name);
  }
  void RenewLease(const std::string& name) {
    const ResourceInfo& leases = *FindResource("coordination.k8s.io", "v1", "leases");
    std::string renewed = object::FormatRfc3339(Now());
    Json spec = {{"holderIdentity", name}, {"renewTime", renewed}};
    try {
      cl().Patch(leases, "kube-node-lease", name, PatchType::kMerge, {{"spec", spec}});
    } catch (const Error&) {
      cl().Create(leases, "kube-node-lease",
                      {{"apiVersion", "coordination.k8s.io/v1"},
                       {"kind", "Lease"},
                       {"metadata", {{"name", name}, {"namespace", "kube-node-lease"}}},
                       {"spec", spec}});
    }
    // The controller must see the renewal before the clock moves on (as a
    // real agent renews long before the grace period ends).
    if (controller_) {
      ASSERT_TRUE(Eventually([&] {
        ObjectPtr l = informers_->For(leases).Lookup("kube-node-lease", name);
        return l && (*l)["spec"].value("renewTime", "") == renewed;
      }));
    }
  }
  // A Running, Ready pod bound to `node`; `tolerations` replace the
  // defaults the API server adds (300 s for unreachable/not-ready).
  void MakePod(const std::string& name, const std::string& node,
               std::optional<Json> tolerations = std::nullopt) {
    Json pod = {{"apiVersion", "v1"},
                {"kind", "Pod"},
                {"metadata", {{"name", name}, {"namespace", "default"}}},
                {"spec",
                 {{"nodeName", node},
                  {"containers", Json::array({{{"name", "c"}, {"image", "busybox"}}})}}}};
    if (tolerations) pod["spec"]["tolerations"] = *tolerations;
    cl().Create(PodsResource(), "default", pod);
    PatchPodStatus(cl(), "default", name, PodStatus(true));
  }
  Json Node(const std::string& name) { return cl().Get(NodesResource(), "", name); }
  std::set<std::string> TaintKeys(const std::string& name) {
    std::set<std::string> out;
    Json node = Node(name);
    if (!node.contains("spec") || !node["spec"].is_object()) return out;
    for (const auto& t : node["spec"].value("taints", Json::array())) {
      out.insert(t.value("key", "") + ":" + t.value("effect", ""));
    }
    return out;
  }
  bool PodExists(const std::string& name) {
    try {
      Json p = cl().Get(PodsResource(), "default", name);
      return !object::IsBeingDeleted(p);
    } catch (const Error&) {
      return false;
    }
  }
  std::string PodReady(const std::string& name) {
    Json pod = cl().Get(PodsResource(), "default", name);  // the loop must not outlive it
    for (const auto& c : pod["status"]["conditions"]) {
      if (c["type"] == "Ready") return c["status"];
    }
    return "";
  }

  FakeClock clock_;  // outlives the controller's queues
  std::unique_ptr<SharedInformerFactory> informers_;
  std::unique_ptr<NodeLifecycleController> controller_;
  system_clock::time_point wall_start_;
};

TEST_F(NodeLifecycleTest, SilentNodeTurnsUnknownTaintedAndItsPodsAreEvictedByTheirTolerations) {
  MakeNode("n1");
  MakeNode("n2");
  MakePod("default-tolerations", "n1");  // the API server adds 300 s
  // (Every pod tolerates unreachable nodes: the API server adds 300 s
  // unless the pod says otherwise.)
  MakePod("impatient", "n1",
          T(R"([{"key":"node.kubernetes.io/unreachable","operator":"Exists",
                 "effect":"NoExecute","tolerationSeconds":0}])"));
  MakePod("patient", "n1", T(R"([{"operator":"Exists"}])"));
  MakePod("elsewhere", "n2", Json::array());
  StartController();
  clock_.Advance(seconds(30));
  RenewLease("n2");
  // Within the grace period nothing happens.
  clock_.Advance(seconds(5));
  EXPECT_TRUE(TaintKeys("n1").empty());

  // n1 has been silent past 40 s: Unknown, tainted, its pods not ready.
  clock_.Advance(seconds(10));
  ASSERT_TRUE(Eventually([&] {
    return TaintKeys("n1") == std::set<std::string>{"node.kubernetes.io/unreachable:NoExecute",
                                                    "node.kubernetes.io/unreachable:NoSchedule"};
  })) << Node("n1").dump(2);
  Json n1 = Node("n1");
  for (const auto& c : n1["status"]["conditions"]) {
    if (c["type"] == "Ready") {
      EXPECT_EQ(c["status"], "Unknown");
      EXPECT_EQ(c["reason"], "NodeStatusUnknown");
      EXPECT_EQ(c["message"], "Kubelet stopped posting node status.");
    }
  }
  EXPECT_TRUE(Eventually([&] { return PodReady("patient") == "False"; }))
      << cl().Get(PodsResource(), "default", "patient").dump(2);
  EXPECT_TRUE(TaintKeys("n2").empty()) << "n2 renewed its lease";
  // Tolerating 0 s: evicted at once; the others wait.
  EXPECT_TRUE(Eventually([&] { return !PodExists("impatient"); }));
  EXPECT_TRUE(PodExists("default-tolerations"));
  EXPECT_TRUE(PodExists("patient"));
  EXPECT_TRUE(PodExists("elsewhere"));

  // 300 s after the taint the default toleration has run out (n2 keeps
  // renewing its lease meanwhile).
  for (int i = 0; i < 9; ++i) {
    RenewLease("n2");
    clock_.Advance(seconds(30));
  }
  EXPECT_TRUE(PodExists("default-tolerations"));
  for (int i = 0; i < 2; ++i) {
    RenewLease("n2");
    clock_.Advance(seconds(30));
  }
  EXPECT_TRUE(Eventually([&] { return !PodExists("default-tolerations"); }));
  EXPECT_TRUE(PodExists("patient")) << "tolerates for ever";
  EXPECT_TRUE(PodExists("elsewhere"));
  auto evicted_event = [&] {
    Json events = cl().List(EventsResource(), "default");
    for (const auto& e : events["items"]) {
      if (e.value("reason", "") == "TaintManagerEviction" &&
          e.value("message", "") == "Marking for deletion Pod default/impatient") {
        return true;
      }
    }
    return false;
  };
  EXPECT_TRUE(evicted_event()) << cl().List(EventsResource(), "default").dump(2);
  Json events = cl().List(EventsResource(), "default");
  for (const auto& e : events["items"]) {
    EXPECT_NE(e.value("message", ""), "Node n2 status is now: NodeNotReady")
        << "n2 kept renewing its lease";
  }

  // The agent comes back: Ready again, the taints go.
  RenewLease("n1");
  std::string now = object::FormatRfc3339(Now());
  cl().Patch(NodesResource(), "", "n1", PatchType::kMerge,
                 {{"status",
                   {{"conditions", Json::array({{{"type", "Ready"},
                                                 {"status", "True"},
                                                 {"lastHeartbeatTime", now},
                                                 {"lastTransitionTime", now}}})}}}},
                 "status");
  EXPECT_TRUE(Eventually([&] { return TaintKeys("n1").empty(); })) << Node("n1").dump(2);
}

TEST_F(NodeLifecycleTest, NotReadyNodeIsTaintedNotReady) {
  MakeNode("n1");
  std::string now = object::FormatRfc3339(Now());
  cl().Patch(NodesResource(), "", "n1", PatchType::kMerge,
                 {{"status",
                   {{"conditions", Json::array({{{"type", "Ready"},
                                                 {"status", "False"},
                                                 {"lastHeartbeatTime", now},
                                                 {"lastTransitionTime", now}}})}}}},
                 "status");
  StartController();
  EXPECT_TRUE(Eventually([&] {
    return TaintKeys("n1") == std::set<std::string>{"node.kubernetes.io/not-ready:NoExecute",
                                                    "node.kubernetes.io/not-ready:NoSchedule"};
  })) << Node("n1").dump(2);
}

}  // namespace
}  // namespace kin::controllers
