// The Deployment controller: its pure helpers (fenceposts, hash) and the
// controller, with the ReplicaSet controller beside it, against a real
// in-process registry on SQLite (LocalClient). No node agent runs here: the
// tests play kubelet by writing pod status (Ready, or not).
#include "controllers/deployment.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <set>

#include "base/error.h"
#include "client/object.h"
#include "controllers/manager.h"
#include "controllers/registry_fixture.h"
#include "controllers/replicaset.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin::controllers {
namespace {

using namespace std::chrono_literals;

TEST(DeploymentHelpersTest, ResolveFencepostsRoundsAsUpstream) {
  EXPECT_EQ(ResolveFenceposts("25%", "25%", 4), std::make_pair(int64_t{1}, int64_t{1}));
  EXPECT_EQ(ResolveFenceposts("25%", "25%", 3), std::make_pair(int64_t{1}, int64_t{0}));
  EXPECT_EQ(ResolveFenceposts("25%", "25%", 10), std::make_pair(int64_t{3}, int64_t{2}));
  EXPECT_EQ(ResolveFenceposts(2, 0, 10), std::make_pair(int64_t{2}, int64_t{0}));
  // Both zero after rounding: one may be unavailable.
  EXPECT_EQ(ResolveFenceposts("0%", "1%", 2), std::make_pair(int64_t{0}, int64_t{1}));
  EXPECT_EQ(ResolveFenceposts(Json(nullptr), Json(nullptr), 5),
            std::make_pair(int64_t{0}, int64_t{1}));
}

TEST(DeploymentHelpersTest, BadIntOrPercentNamesTheField) {
  try {
    ResolveFenceposts("lots", "25%", 4);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalid);
    EXPECT_NE(e.message().find("spec.strategy.rollingUpdate.maxSurge"), std::string::npos)
        << e.message();
  }
  EXPECT_THROW(ScaledValue("x%", 4, false, "f"), Error);
  EXPECT_THROW(ScaledValue(true, 4, false, "f"), Error);
}

TEST(DeploymentHelpersTest, PodTemplateHashLooksLikeUpstreams) {
  EXPECT_EQ(SafeEncodeString("123"), "567");
  Json t = {{"metadata", {{"labels", {{"app", "web"}}}}},
            {"spec", {{"containers", Json::array({{{"name", "c"}, {"image", "busybox"}}})}}}};
  std::string h = ComputePodTemplateHash(t, std::nullopt);
  EXPECT_EQ(h, ComputePodTemplateHash(t, std::nullopt));  // deterministic
  EXPECT_GE(h.size(), 8u);
  EXPECT_LE(h.size(), 10u);
  EXPECT_EQ(h.find_first_not_of("bcdfghjklmnpqrstvwxz2456789"), std::string::npos) << h;
  EXPECT_NE(ComputePodTemplateHash(t, 1), h);
  Json t2 = t;
  t2["spec"]["containers"][0]["image"] = "agnhost";
  EXPECT_NE(ComputePodTemplateHash(t2, std::nullopt), h);
}

class DeploymentTest : public RegistryTest {
 protected:
  const ResourceInfo& Deploys() { return *FindResource("apps", "v1", "deployments"); }
  const ResourceInfo& Rs() { return *FindResource("apps", "v1", "replicasets"); }

  void Start(DeploymentControllerOptions opts = {}) {
    manager_ = std::make_unique<ControllerManager>(cl());
    manager_->Emplace<ReplicaSetController>(manager_->informers(), manager_->client(), Rs());
    manager_->Emplace<DeploymentController>(manager_->informers(), manager_->client(), opts);
    manager_->Start();
  }

  Json MakeDeployment(const std::string& name, int replicas, Json strategy = Json(nullptr),
                      Json extra_spec = Json::object()) {
    Json d = {
        {"apiVersion", "apps/v1"},
        {"kind", "Deployment"},
        {"metadata", {{"name", name}, {"namespace", "default"}}},
        {"spec",
         {{"replicas", replicas},
          {"selector", {{"matchLabels", {{"app", name}}}}},
          {"template",
           {{"metadata", {{"labels", {{"app", name}}}}},
            {"spec", {{"containers", Json::array({{{"name", "c"}, {"image", "busybox:1"}}})}}}}}}}};
    if (!strategy.is_null()) d["spec"]["strategy"] = strategy;
    d["spec"].update(extra_spec);
    return cl().Create(Deploys(), "default", d);
  }
  void SetImage(const std::string& name, const std::string& image) {
    UpdateRetryingConflicts(Deploys(), "default", name, [&](Json& d) {
      d["spec"]["template"]["spec"]["containers"][0]["image"] = image;
    });
  }
  Json Get(const std::string& name) { return cl().Get(Deploys(), "default", name); }
  Json StatusOf(const std::string& name) { return Get(name).value("status", Json::object()); }
  int64_t St(const std::string& name, const char* f) { return StatusOf(name).value(f, int64_t{0}); }
  Json Condition(const std::string& name, const std::string& type) {
    for (const auto& c : StatusOf(name).value("conditions", Json::array())) {
      if (c.value("type", "") == type) return c;
    }
    return Json::object();
  }
  std::vector<Json> ReplicaSets() {
    Json list = cl().List(Rs(), "default");
    std::vector<Json> out(list["items"].begin(), list["items"].end());
    return out;
  }
  std::vector<Json> Pods() {
    Json list = cl().List(PodsResource(), "default");
    std::vector<Json> out;
    for (const auto& p : list["items"]) {
      if (!object::IsBeingDeleted(p)) out.push_back(p);
    }
    return out;
  }
  static bool Ready(const Json& p) { return IsPodReady(p); }
  // Plays kubelet for one pod that is not ready yet (false when none).
  bool ReadyOne() {
    for (const auto& p : Pods()) {
      if (Ready(p)) continue;
      try {
        PatchPodStatus(cl(), "default", p["metadata"]["name"], PodStatus(true, object::NowRfc3339()));
      } catch (const Error& e) {
        if (e.code() != Code::kNotFound) throw;
        continue;  // scaled away meanwhile
      }
      return true;
    }
    return false;
  }
  void ReadyAll() {
    while (ReadyOne()) {
    }
  }
  bool Complete(const std::string& name) {
    Json d = Get(name);
    Json st = d.value("status", Json::object());
    int64_t want = d["spec"]["replicas"];
    return st.value("observedGeneration", 0) == d["metadata"]["generation"] &&
           st.value("updatedReplicas", 0) == want && st.value("replicas", 0) == want &&
           st.value("availableReplicas", 0) == want;
  }
  // Marks pods ready until the rollout completes; `each` checks invariants
  // at every step.
  void RollOut(const std::string& name, const std::function<void()>& each = {}) {
    ASSERT_TRUE(testing::Eventually(
        [&] {
          if (each) each();
          ReadyOne();
          return Complete(name);
        },
        30s))
        << StatusOf(name).dump();
  }
  std::vector<Json> Events(const std::string& reason) { return EventsWithReason(cl(), reason); }
  static std::string Rev(const Json& o) {
    return o["metadata"]
        .value("annotations", Json::object())
        .value("deployment.kubernetes.io/revision", "");
  }
  Json RsByRevision(const std::string& rev) {
    for (const auto& rs : ReplicaSets()) {
      if (Rev(rs) == rev) return rs;
    }
    return Json();
  }

  FakeClock fake_clock_;  // outlives the manager that may run on it
  std::unique_ptr<ControllerManager> manager_;
};

TEST_F(DeploymentTest, CreatesAHashNamedReplicaSetAndCompletes) {
  Start();
  Json d = MakeDeployment("web", 3);
  ASSERT_TRUE(testing::Eventually([&] { return ReplicaSets().size() == 1; }));
  Json rs = ReplicaSets()[0];
  std::string hash = rs["metadata"]["labels"].value("pod-template-hash", "");
  ASSERT_FALSE(hash.empty());
  EXPECT_EQ(rs["metadata"]["name"], "web-" + hash);
  EXPECT_EQ(rs["spec"]["selector"]["matchLabels"]["pod-template-hash"], hash);
  EXPECT_EQ(rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"], hash);
  EXPECT_TRUE(object::IsControlledBy(rs, d));
  const Json& ann = rs["metadata"]["annotations"];
  EXPECT_EQ(ann["deployment.kubernetes.io/revision"], "1");
  EXPECT_EQ(ann["deployment.kubernetes.io/desired-replicas"], "3");
  EXPECT_EQ(ann["deployment.kubernetes.io/max-replicas"], "4");  // 25% of 3 rounds up
  ASSERT_TRUE(testing::Eventually([&] { return Pods().size() == 3; }));
  for (const auto& p : Pods()) EXPECT_EQ(p["metadata"]["labels"]["pod-template-hash"], hash);
  EXPECT_TRUE(testing::Eventually([&] {
    return Condition("web", "Available").value("reason", "") == "MinimumReplicasUnavailable";
  }));
  RollOut("web");
  ASSERT_TRUE(testing::Eventually([&] {
    return Condition("web", "Progressing").value("reason", "") == "NewReplicaSetAvailable";
  }));
  Json st = StatusOf("web");
  EXPECT_EQ(st["readyReplicas"], 3);
  EXPECT_FALSE(st.contains("unavailableReplicas"));
  EXPECT_EQ(Condition("web", "Progressing")["message"],
            "ReplicaSet \"web-" + hash + "\" has successfully progressed.");
  Json available = Condition("web", "Available");
  EXPECT_EQ(available["status"], "True");
  EXPECT_EQ(available["reason"], "MinimumReplicasAvailable");
  EXPECT_EQ(available["message"], "Deployment has minimum availability.");
  EXPECT_EQ(Rev(Get("web")), "1");
  auto scaling = Events("ScalingReplicaSet");
  ASSERT_EQ(scaling.size(), 1u);
  EXPECT_EQ(scaling[0]["message"], "Scaled up replica set web-" + hash + " from 0 to 3");
  EXPECT_EQ(scaling[0]["source"]["component"], "deployment-controller");
  EXPECT_EQ(scaling[0]["involvedObject"]["kind"], "Deployment");
}

TEST_F(DeploymentTest, RollingUpdateWithSurgeNeverDropsBelowReplicas) {
  Start();
  Json strategy = {{"type", "RollingUpdate"},
                   {"rollingUpdate", {{"maxSurge", 1}, {"maxUnavailable", 0}}}};
  MakeDeployment("web", 4, strategy);
  RollOut("web");
  SetImage("web", "busybox:2");
  size_t max_pods = 0, min_ready = 100;
  RollOut("web", [&] {
    auto pods = Pods();
    size_t ready = 0;
    for (const auto& p : pods) ready += Ready(p);
    max_pods = std::max(max_pods, pods.size());
    min_ready = std::min(min_ready, ready);
  });
  EXPECT_LE(max_pods, 5u);   // replicas + maxSurge
  EXPECT_GE(min_ready, 4u);  // replicas - maxUnavailable
  ASSERT_TRUE(testing::Eventually([&] { return Pods().size() == 4; }));
  for (const auto& p : Pods()) {
    EXPECT_EQ(p["spec"]["containers"][0]["image"], "busybox:2");
  }
  EXPECT_EQ(Rev(Get("web")), "2");
  Json old = RsByRevision("1");
  ASSERT_TRUE(old.is_object());
  EXPECT_EQ(old["spec"]["replicas"], 0);
  EXPECT_EQ(RsByRevision("2")["spec"]["replicas"], 4);
  bool saw_down = false;
  for (const auto& e : Events("ScalingReplicaSet")) {
    saw_down |= e["message"].get<std::string>().rfind("Scaled down replica set web-", 0) == 0;
  }
  EXPECT_TRUE(saw_down);
}

TEST_F(DeploymentTest, RollingUpdateWithUnavailabilityNeverSurges) {
  Start();
  Json strategy = {{"type", "RollingUpdate"},
                   {"rollingUpdate", {{"maxSurge", 0}, {"maxUnavailable", "25%"}}}};
  MakeDeployment("web", 4, strategy);
  RollOut("web");
  SetImage("web", "busybox:2");
  size_t max_pods = 0, min_ready = 100;
  RollOut("web", [&] {
    auto pods = Pods();
    size_t ready = 0;
    for (const auto& p : pods) ready += Ready(p);
    max_pods = std::max(max_pods, pods.size());
    min_ready = std::min(min_ready, ready);
  });
  EXPECT_LE(max_pods, 4u);
  EXPECT_GE(min_ready, 3u);
}

TEST_F(DeploymentTest, RecreateWaitsForOldPodsToGo) {
  cl().Create(NodesResource(), "",
              {{"apiVersion", "v1"}, {"kind", "Node"}, {"metadata", {{"name", "w1"}}}});
  Start();
  MakeDeployment("web", 2, {{"type", "Recreate"}});
  RollOut("web");
  // Bound pods terminate gracefully: they stay until "the kubelet" is done.
  for (const auto& p : Pods()) {
    cl().CreateSubresource(PodsResource(), "default", p["metadata"]["name"], "binding",
                           {{"apiVersion", "v1"},
                            {"kind", "Binding"},
                            {"metadata", {{"name", p["metadata"]["name"]}}},
                            {"target", {{"kind", "Node"}, {"name", "w1"}}}});
  }
  SetImage("web", "busybox:2");
  ASSERT_TRUE(testing::Eventually(
      [&] { return RsByRevision("1").value("spec", Json::object()).value("replicas", -1) == 0; }));
  Json all;
  ASSERT_TRUE(testing::Eventually([&] {
    all = cl().List(PodsResource(), "default");
    for (const auto& p : all["items"]) {
      if (!object::IsBeingDeleted(p)) return false;
    }
    return all["items"].size() == 2;
  }));
  // No new ReplicaSet while old pods still run.
  EXPECT_EQ(ReplicaSets().size(), 1u);
  for (const auto& p : all["items"]) {
    DeleteOptions now;
    now.grace_period_seconds = 0;
    cl().Delete(PodsResource(), "default", p["metadata"]["name"], now);
  }
  RollOut("web");
  EXPECT_EQ(ReplicaSets().size(), 2u);
  EXPECT_EQ(RsByRevision("2")["spec"]["replicas"], 2);
}

TEST_F(DeploymentTest, HistoryLimitAndRollbackToAnOldTemplate) {
  Start();
  MakeDeployment("web", 1, Json(nullptr), {{"revisionHistoryLimit", 1}});
  RollOut("web");
  Json v1 = Get("web")["spec"]["template"];
  SetImage("web", "busybox:2");
  RollOut("web");
  Json rs2 = RsByRevision("2");
  SetImage("web", "busybox:3");
  RollOut("web");
  // Three revisions, one old kept.
  ASSERT_TRUE(testing::Eventually([&] { return ReplicaSets().size() == 2; }));
  EXPECT_TRUE(RsByRevision("1").is_null());
  EXPECT_TRUE(RsByRevision("2").is_object());

  // `kubectl rollout undo`: the template of revision 2 comes back, and its
  // ReplicaSet becomes revision 4 with 2 in its history.
  Json tmpl = rs2["spec"]["template"];
  tmpl["metadata"]["labels"].erase("pod-template-hash");
  tmpl["metadata"]["creationTimestamp"] = nullptr;  // as kubectl sends it
  UpdateRetryingConflicts(Deploys(), "default", "web", [&](Json& d) { d["spec"]["template"] = tmpl; });
  RollOut("web");
  ASSERT_TRUE(testing::Eventually([&] { return !RsByRevision("4").is_null(); }));
  Json back = RsByRevision("4");
  EXPECT_EQ(back["metadata"]["name"], rs2["metadata"]["name"]);
  EXPECT_EQ(back["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"], "2");
  EXPECT_EQ(back["spec"]["replicas"], 1);
  ASSERT_TRUE(testing::Eventually([&] { return Rev(Get("web")) == "4"; }));
  ASSERT_TRUE(testing::Eventually([&] { return Pods().size() == 1; }));
  EXPECT_EQ(Pods()[0]["spec"]["containers"][0]["image"], "busybox:2");
  (void)v1;
}

TEST_F(DeploymentTest, ChangeCauseIsCopiedToTheReplicaSet) {
  Start();
  Json d = {
      {"apiVersion", "apps/v1"},
      {"kind", "Deployment"},
      {"metadata",
       {{"name", "web"},
        {"annotations",
         {{"kubernetes.io/change-cause", "first"},
          {"kubectl.kubernetes.io/last-applied-configuration", "{}"}}}}},
      {"spec",
       {{"replicas", 1},
        {"selector", {{"matchLabels", {{"app", "web"}}}}},
        {"template",
         {{"metadata", {{"labels", {{"app", "web"}}}}},
          {"spec", {{"containers", Json::array({{{"name", "c"}, {"image", "busybox"}}})}}}}}}}};
  cl().Create(Deploys(), "default", d);
  ASSERT_TRUE(testing::Eventually([&] { return ReplicaSets().size() == 1; }));
  const Json ann = ReplicaSets()[0]["metadata"]["annotations"];
  EXPECT_EQ(ann.value("kubernetes.io/change-cause", ""), "first");
  EXPECT_FALSE(ann.contains("kubectl.kubernetes.io/last-applied-configuration"));
}

TEST_F(DeploymentTest, PausedScalesButDoesNotRollOut) {
  Start();
  MakeDeployment("web", 2, Json(nullptr));
  RollOut("web");
  cl().Patch(Deploys(), "default", "web", PatchType::kMerge, {{"spec", {{"paused", true}}}});
  ASSERT_TRUE(testing::Eventually(
      [&] { return Condition("web", "Progressing").value("reason", "") == "DeploymentPaused"; }));
  EXPECT_EQ(Condition("web", "Progressing")["status"], "Unknown");
  SetImage("web", "busybox:2");
  cl().Patch(Deploys(), "default", "web", PatchType::kMerge, {{"spec", {{"replicas", 4}}}});
  ASSERT_TRUE(testing::Eventually([&] { return Pods().size() == 4; }));
  EXPECT_EQ(ReplicaSets().size(), 1u);  // no rollout while paused
  for (const auto& p : Pods()) EXPECT_EQ(p["spec"]["containers"][0]["image"], "busybox:1");
  ASSERT_TRUE(testing::Eventually([&] {
    return StatusOf("web").value("observedGeneration", 0) == Get("web")["metadata"]["generation"];
  }));

  cl().Patch(Deploys(), "default", "web", PatchType::kMerge, {{"spec", {{"paused", false}}}});
  RollOut("web");
  ASSERT_TRUE(testing::Eventually([&] { return Pods().size() == 4; }));
  for (const auto& p : Pods()) EXPECT_EQ(p["spec"]["containers"][0]["image"], "busybox:2");
  EXPECT_EQ(Rev(Get("web")), "2");
}

TEST_F(DeploymentTest, ProgressDeadlineExceeded) {
  FakeClock& clock = fake_clock_;
  Start({.workers = 2, .clock = &clock});
  MakeDeployment("web", 2, Json(nullptr), {{"progressDeadlineSeconds", 30}});
  ASSERT_TRUE(testing::Eventually([&] { return Pods().size() == 2; }));
  ASSERT_TRUE(testing::Eventually([&] {
    std::string r = Condition("web", "Progressing").value("reason", "");
    return r == "NewReplicaSetCreated" || r == "ReplicaSetUpdated";
  }));
  // Pods never become ready: once 30 s pass without progress, it says so.
  EXPECT_TRUE(testing::Eventually([&] {
    clock.Advance(2s);  // also lets retries (rate-limited on this clock) run
    return Condition("web", "Progressing").value("reason", "") == "ProgressDeadlineExceeded";
  }));
  Json c = Condition("web", "Progressing");
  EXPECT_EQ(c["status"], "False");
  std::string rs = ReplicaSets()[0]["metadata"]["name"];
  EXPECT_EQ(c["message"], "ReplicaSet \"" + rs + "\" has timed out progressing.");
}

}  // namespace
}  // namespace kin::controllers
