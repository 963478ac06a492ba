// The ReplicaSet controller: its deletion ranking (pure) and the controller
// against a real in-process registry on SQLite (LocalClient). No node agent
// runs here, so tests make pods Ready (or Failed) by writing their status.
#include "controllers/replicaset.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>

#include "base/error.h"
#include "client/object.h"
#include "controllers/manager.h"
#include "controllers/registry_fixture.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin::controllers {
namespace {

using namespace std::chrono_literals;
using workloads::WallTime;

// --- the deletion ranking ---------------------------------------------------

ObjectPtr RankPod(const std::string& name, const std::string& node, const std::string& phase,
                  std::optional<WallTime> ready_since, int restarts = 0,
                  const std::string& created = "2024-01-01T00:00:00Z") {
  Json p = {{"metadata", {{"name", name}, {"uid", "uid-" + name}, {"creationTimestamp", created}}},
            {"spec", {{"nodeName", node}}},
            {"status", {{"phase", phase}}}};
  if (ready_since) {
    p["status"]["conditions"] =
        Json::array({{{"type", "Ready"},
                      {"status", "True"},
                      {"lastTransitionTime", object::FormatRfc3339(*ready_since)}}});
  }
  p["status"]["containerStatuses"] = Json::array({{{"name", "c"}, {"restartCount", restarts}}});
  return std::make_shared<const Json>(std::move(p));
}

std::vector<std::string> Names(const std::vector<ObjectPtr>& pods) {
  std::vector<std::string> out;
  for (const auto& p : pods) out.push_back(object::Name(*p));
  return out;
}

TEST(PodsToDeleteTest, UpstreamOrder) {
  WallTime now = std::chrono::system_clock::now();
  std::vector<ObjectPtr> pods = {
      RankPod("ready-long", "n1", "Running", now - 10h),
      RankPod("ready-new", "n1", "Running", now - 10s),
      RankPod("running-not-ready", "n1", "Running", std::nullopt),
      RankPod("unknown", "n1", "Unknown", std::nullopt),
      RankPod("pending", "n1", "Pending", std::nullopt),
      RankPod("unscheduled", "", "Pending", std::nullopt),
  };
  EXPECT_EQ(Names(workloads::PodsToDelete(pods, {}, 6, now)).size(), 6u);
  EXPECT_EQ(Names(workloads::PodsToDelete(pods, {}, 5, now)),
            (std::vector<std::string>{"unscheduled", "pending", "unknown", "running-not-ready",
                                      "ready-new"}));
}

TEST(PodsToDeleteTest, DoubledUpRestartsCostAndAge) {
  WallTime now = std::chrono::system_clock::now();
  WallTime t = now - 1h;
  // Same readiness bucket: the one on the crowded node goes first.
  auto a = RankPod("a", "busy", "Running", t);
  auto b = RankPod("b", "quiet", "Running", t);
  auto sibling = RankPod("s", "busy", "Running", t);
  EXPECT_EQ(Names(workloads::PodsToDelete({b, a}, {a, b, sibling}, 1, now)),
            std::vector<std::string>{"a"});
  // More restarts first; then the newer one.
  auto r = RankPod("restarts", "n", "Running", t, 5);
  auto old = RankPod("old", "n", "Running", t, 0, "2024-01-01T00:00:00Z");
  auto young = RankPod("young", "n", "Running", t, 0, "2024-06-01T00:00:00Z");
  EXPECT_EQ(Names(workloads::PodsToDelete({old, young, r}, {}, 2, now)),
            (std::vector<std::string>{"restarts", "young"}));
  // A lower pod-deletion-cost goes first, whatever else holds.
  Json cheap = *RankPod("cheap", "n", "Running", now - 100h);
  cheap["metadata"]["annotations"]["controller.kubernetes.io/pod-deletion-cost"] = "-10";
  EXPECT_EQ(
      Names(workloads::PodsToDelete({young, std::make_shared<const Json>(cheap)}, {}, 1, now)),
      std::vector<std::string>{"cheap"});
}

TEST(PodAvailabilityTest, MinReadySeconds) {
  WallTime now = std::chrono::system_clock::now();
  EXPECT_TRUE(workloads::IsPodAvailable(*RankPod("p", "n", "Running", now - 10s), 0, now));
  EXPECT_TRUE(workloads::IsPodAvailable(*RankPod("p", "n", "Running", now - 10s), 5, now));
  EXPECT_FALSE(workloads::IsPodAvailable(*RankPod("p", "n", "Running", now - 10s), 30, now));
  EXPECT_FALSE(workloads::IsPodAvailable(*RankPod("p", "n", "Running", std::nullopt), 0, now));
}

// --- the controller on a real registry --------------------------------------

// Fails pod creates while `fail` is set (as a quota would), counting tries.
class FlakyClient : public FieldManagerClient {
 public:
  explicit FlakyClient(Client& inner) : FieldManagerClient(inner, "") {}
  Json Create(const ResourceInfo& r, const std::string& ns, const Json& obj,
              const WriteOptions& opts = {}) override {
    if (r.plural == "pods") {
      ++pod_creates;
      if (fail) {
        throw Error::Forbidden("pods \"" + obj["metadata"].value("generateName", "") +
                               "\" is forbidden: exceeded quota: compute, requested: pods=1, "
                               "used: pods=0, limited: pods=0");
      }
    }
    return inner().Create(r, ns, obj, opts);
  }
  std::atomic<bool> fail{false};
  std::atomic<int> pod_creates{0};
};

class ReplicaSetTest : public RegistryTest {
 protected:
  const ResourceInfo& Rs() { return *FindResource("apps", "v1", "replicasets"); }

  // A manager running one ReplicaSet controller (on `writer` when given).
  void StartController(Client* writer = nullptr, const ResourceInfo* resource = nullptr,
                       ReplicaSetControllerOptions opts = {}) {
    manager_ = std::make_unique<ControllerManager>(cl());
    manager_->Emplace<ReplicaSetController>(manager_->informers(), writer ? *writer : cl(),
                                            resource ? *resource : Rs(), opts);
    manager_->Start();
  }

  Json MakeRs(const std::string& name, int replicas, int min_ready = 0) {
    Json rs = {
        {"apiVersion", "apps/v1"},
        {"kind", "ReplicaSet"},
        {"metadata", {{"name", name}, {"namespace", "default"}}},
        {"spec",
         {{"replicas", replicas},
          {"minReadySeconds", min_ready},
          {"selector", {{"matchLabels", {{"app", name}}}}},
          {"template",
           {{"metadata", {{"labels", {{"app", name}, {"tier", "web"}}}}},
            {"spec", {{"containers", Json::array({{{"name", "c"}, {"image", "busybox"}}})}}}}}}}};
    return cl().Create(Rs(), "default", rs);
  }
  void Scale(const std::string& name, int replicas) {
    cl().Patch(Rs(), "default", name, PatchType::kMerge, {{"spec", {{"replicas", replicas}}}});
  }
  // Active pods (not terminating, not terminal) whose labels say app=NAME.
  std::vector<Json> ActivePods(const std::string& app) {
    std::vector<Json> out;
    ListOptions o;
    o.label_selector = "app=" + app;
    Json list = cl().List(PodsResource(), "default", o);
    for (const auto& p : list["items"]) {
      std::string phase = p["status"].value("phase", "");
      if (object::IsBeingDeleted(p) || phase == "Failed" || phase == "Succeeded") continue;
      out.push_back(p);
    }
    return out;
  }
  size_t CountPods(const std::string& app) { return ActivePods(app).size(); }
  Json Status(const std::string& name) {
    return cl().Get(Rs(), "default", name).value("status", Json::object());
  }
  void SetPodStatus(const std::string& pod, const Json& status) {
    PatchPodStatus(cl(), "default", pod, status);
  }
  void MakeReady(const std::string& pod, WallTime since = std::chrono::system_clock::now()) {
    SetPodStatus(pod, PodStatus(true, object::FormatRfc3339(since)));
  }
  std::vector<Json> Events(const std::string& involved, const std::string& reason) {
    return EventsWithReason(cl(), reason, involved);
  }
  int64_t StatusInt(const std::string& name, const char* field) {
    return Status(name).value(field, int64_t{0});
  }

  FakeClock fake_clock_;  // outlives the manager that may run on it
  std::unique_ptr<ControllerManager> manager_;
};

TEST_F(ReplicaSetTest, CreatesPodsFromTheTemplate) {
  StartController();
  Json rs = MakeRs("web", 3);
  ASSERT_TRUE(testing::Eventually([&] { return StatusInt("web", "replicas") == 3; }));
  auto pods = ActivePods("web");
  ASSERT_EQ(pods.size(), 3u);
  for (const auto& p : pods) {
    std::string name = p["metadata"]["name"];
    EXPECT_EQ(name.rfind("web-", 0), 0u) << name;
    EXPECT_EQ(name.size(), 4u + 5u) << name;
    EXPECT_EQ(p["metadata"]["generateName"], "web-");
    EXPECT_EQ(p["metadata"]["labels"], Json({{"app", "web"}, {"tier", "web"}}));
    EXPECT_EQ(p["spec"]["containers"][0]["image"], "busybox");
    ASSERT_EQ(p["metadata"]["ownerReferences"].size(), 1u);
    const Json& ref = p["metadata"]["ownerReferences"][0];
    EXPECT_EQ(ref["kind"], "ReplicaSet");
    EXPECT_EQ(ref["apiVersion"], "apps/v1");
    EXPECT_EQ(ref["name"], "web");
    EXPECT_EQ(ref["uid"], rs["metadata"]["uid"]);
    EXPECT_EQ(ref["controller"], true);
    EXPECT_EQ(ref["blockOwnerDeletion"], true);
    EXPECT_EQ(Events("web", "SuccessfulCreate").empty(), false);
  }
  Json st = Status("web");
  EXPECT_EQ(st.value("fullyLabeledReplicas", 0), 3);
  EXPECT_EQ(st.value("observedGeneration", 0), 1);
  EXPECT_EQ(st.value("readyReplicas", 0), 0);
  auto created = Events("web", "SuccessfulCreate");
  ASSERT_EQ(created.size(), 3u);
  EXPECT_EQ(created[0]["source"]["component"], "replicaset-controller");
  EXPECT_EQ(created[0]["message"].get<std::string>().rfind("Created pod: web-", 0), 0u);
}

TEST_F(ReplicaSetTest, ScalesUpAndDownDeletingNotReadyFirst) {
  StartController();
  MakeRs("web", 2);
  ASSERT_TRUE(testing::Eventually([&] { return CountPods("web") == 2; }));
  Scale("web", 5);
  ASSERT_TRUE(testing::Eventually([&] { return StatusInt("web", "replicas") == 5; }));
  EXPECT_EQ(CountPods("web"), 5u);
  auto pods = ActivePods("web");
  std::set<std::string> ready;
  for (int i = 0; i < 2; ++i) {
    ready.insert(pods[i]["metadata"]["name"]);
    MakeReady(pods[i]["metadata"]["name"]);
  }
  ASSERT_TRUE(testing::Eventually([&] { return StatusInt("web", "readyReplicas") == 2; }));
  Scale("web", 2);
  ASSERT_TRUE(testing::Eventually([&] { return StatusInt("web", "replicas") == 2; }));
  std::set<std::string> left;
  for (const auto& p : ActivePods("web")) left.insert(p["metadata"]["name"]);
  EXPECT_EQ(left, ready);  // the three not ready went
  EXPECT_EQ(Events("web", "SuccessfulDelete").size(), 3u);
  EXPECT_EQ(StatusInt("web", "observedGeneration"), 3);
  Scale("web", 0);
  ASSERT_TRUE(testing::Eventually([&] { return CountPods("web") == 0; }));
  ASSERT_TRUE(testing::Eventually([&] { return StatusInt("web", "replicas") == 0; }));
}

TEST_F(ReplicaSetTest, ReadyAndAvailableHonourMinReadySeconds) {
  StartController();
  MakeRs("web", 3, /*min_ready=*/3600);
  ASSERT_TRUE(testing::Eventually([&] { return CountPods("web") == 3; }));
  auto pods = ActivePods("web");
  auto now = std::chrono::system_clock::now();
  MakeReady(pods[0]["metadata"]["name"], now - 2h);
  MakeReady(pods[1]["metadata"]["name"], now - 2h);
  MakeReady(pods[2]["metadata"]["name"], now);
  ASSERT_TRUE(testing::Eventually([&] { return StatusInt("web", "readyReplicas") == 3; }));
  EXPECT_EQ(StatusInt("web", "availableReplicas"), 2);
}

TEST_F(ReplicaSetTest, AdoptsMatchingOrphansAndReleasesPodsThatStopMatching) {
  Json orphan = {{"apiVersion", "v1"},
                 {"kind", "Pod"},
                 {"metadata", {{"name", "stray"}, {"labels", {{"app", "web"}}}}},
                 {"spec", {{"containers", Json::array({{{"name", "c"}, {"image", "busybox"}}})}}}};
  cl().Create(PodsResource(), "default", orphan);
  Json other = orphan;
  other["metadata"] = {{"name", "unrelated"}, {"labels", {{"app", "db"}}}};
  cl().Create(PodsResource(), "default", other);
  StartController();
  Json rs = MakeRs("web", 2);
  ASSERT_TRUE(testing::Eventually([&] { return StatusInt("web", "replicas") == 2; }));
  EXPECT_EQ(CountPods("web"), 2u);  // the stray one plus one new
  Json stray = cl().Get(PodsResource(), "default", "stray");
  ASSERT_TRUE(object::IsControlledBy(stray, rs)) << stray.dump();
  EXPECT_EQ(Events("web", "SuccessfulCreate").size(), 1u);
  EXPECT_FALSE(
      cl().Get(PodsResource(), "default", "unrelated")["metadata"].contains("ownerReferences"));
  // fullyLabeledReplicas: the stray pod lacks the template's tier label.
  EXPECT_EQ(StatusInt("web", "fullyLabeledReplicas"), 1);

  // Relabelled out of the selector: released, and replaced.
  cl().Patch(PodsResource(), "default", "stray", PatchType::kMerge,
             {{"metadata", {{"labels", {{"app", "debug"}}}}}});
  ASSERT_TRUE(testing::Eventually(
      [&] { return !object::ControllerOf(cl().Get(PodsResource(), "default", "stray")); }));
  ASSERT_TRUE(testing::Eventually([&] { return CountPods("web") == 2; }));
  EXPECT_TRUE(cl().Get(PodsResource(), "default", "stray")["metadata"]["ownerReferences"].empty());
}

TEST_F(ReplicaSetTest, ReplacesFailedAndTerminatingPods) {
  Json node = {{"apiVersion", "v1"}, {"kind", "Node"}, {"metadata", {{"name", "w1"}}}};
  cl().Create(NodesResource(), "", node);
  StartController();
  MakeRs("web", 2);
  ASSERT_TRUE(testing::Eventually([&] { return CountPods("web") == 2; }));
  auto pods = ActivePods("web");
  std::string failed = pods[0]["metadata"]["name"];
  std::string terminating = pods[1]["metadata"]["name"];
  SetPodStatus(failed, {{"phase", "Failed"}});
  ASSERT_TRUE(testing::Eventually([&] { return CountPods("web") == 2; }));
  EXPECT_EQ(cl().Get(PodsResource(), "default", failed)["status"]["phase"], "Failed");  // kept

  // A bound pod is deleted gracefully (no kubelet here finishes it): it
  // no longer counts from the moment it carries a deletionTimestamp.
  cl().CreateSubresource(PodsResource(), "default", terminating, "binding",
                         {{"apiVersion", "v1"},
                          {"kind", "Binding"},
                          {"metadata", {{"name", terminating}}},
                          {"target", {{"kind", "Node"}, {"name", "w1"}}}});
  cl().Delete(PodsResource(), "default", terminating);
  ASSERT_TRUE(object::IsBeingDeleted(cl().Get(PodsResource(), "default", terminating)));
  ASSERT_TRUE(testing::Eventually([&] { return CountPods("web") == 2; }));
  EXPECT_TRUE(testing::Eventually([&] { return StatusInt("web", "replicas") == 2; }));
  // Events are written after the pods they tell of.
  EXPECT_TRUE(testing::Eventually([&] { return Events("web", "SuccessfulCreate").size() == 4u; }));
}

TEST_F(ReplicaSetTest, FailedCreatesSetReplicaFailureAndStartSlow) {
  FlakyClient flaky(cl());
  flaky.fail = true;
  // A clock that stands still: no back-off retry runs until the test says,
  // so only the syncs that events cause try to create.
  StartController(&flaky, nullptr, {.clock = &fake_clock_});
  MakeRs("web", 5);
  ASSERT_TRUE(testing::Eventually([&] {
    for (const auto& c : Status("web").value("conditions", Json::array())) {
      if (c.value("type", "") == "ReplicaFailure") return true;
    }
    return false;
  }));
  Json cond = Status("web")["conditions"][0];
  EXPECT_EQ(cond["type"], "ReplicaFailure");
  EXPECT_EQ(cond["status"], "True");
  EXPECT_EQ(cond["reason"], "FailedCreate");
  EXPECT_NE(cond["message"].get<std::string>().find("exceeded quota"), std::string::npos);
  auto failures = Events("web", "FailedCreate");
  ASSERT_FALSE(failures.empty());
  EXPECT_EQ(failures[0]["type"], "Warning");
  EXPECT_EQ(failures[0]["message"].get<std::string>().rfind("Error creating: pods \"web-\" is "
                                                            "forbidden: exceeded quota",
                                                            0),
            0u);
  // Slow start: a sync stops after its first batch (one pod) failed; the
  // condition's own write wakes one more sync at most. Five tries would
  // mean the whole difference was tried at once.
  EXPECT_LE(flaky.pod_creates.load(), 2);

  flaky.fail = false;
  ASSERT_TRUE(testing::Eventually(
      [&] {
        fake_clock_.Advance(std::chrono::seconds(1));  // lets the back-off retry run
        return StatusInt("web", "replicas") == 5;
      },
      20s));
  ASSERT_TRUE(testing::Eventually([&] { return !Status("web").contains("conditions"); }));
  EXPECT_EQ(CountPods("web"), 5u);
}

TEST_F(ReplicaSetTest, AThousandReplicasExactlyOnce) {
  StartController();
  MakeRs("big", 1000);
  ASSERT_TRUE(testing::Eventually([&] { return StatusInt("big", "replicas") == 1000; }, 60s));
  // Expectations: no sync created more while the informer caught up.
  EXPECT_EQ(CountPods("big"), 1000u);
  Scale("big", 10);
  ASSERT_TRUE(testing::Eventually([&] { return StatusInt("big", "replicas") == 10; }, 60s));
  EXPECT_EQ(CountPods("big"), 10u);
}

TEST_F(ReplicaSetTest, ReplicationControllersUseAMapSelector) {
  const ResourceInfo* rc = FindResource("", "v1", "replicationcontrollers");
  if (!rc) GTEST_SKIP() << "the API does not serve replicationcontrollers yet";
  StartController(nullptr, rc);
  Json obj = {
      {"apiVersion", "v1"},
      {"kind", "ReplicationController"},
      {"metadata", {{"name", "legacy"}, {"namespace", "default"}}},
      {"spec",
       {{"replicas", 2},
        {"selector", {{"app", "legacy"}}},
        {"template",
         {{"metadata", {{"labels", {{"app", "legacy"}}}}},
          {"spec", {{"containers", Json::array({{{"name", "c"}, {"image", "busybox"}}})}}}}}}}};
  Json made = cl().Create(*rc, "default", obj);
  ASSERT_TRUE(testing::Eventually([&] {
    Json now = cl().Get(*rc, "default", "legacy");
    return now.value("status", Json::object()).value("replicas", 0) == 2;
  }));
  auto pods = ActivePods("legacy");
  ASSERT_EQ(pods.size(), 2u);
  EXPECT_EQ(pods[0]["metadata"]["ownerReferences"][0]["kind"], "ReplicationController");
  EXPECT_EQ(pods[0]["metadata"]["ownerReferences"][0]["apiVersion"], "v1");
  EXPECT_TRUE(object::IsControlledBy(pods[0], made));
  auto created = Events("legacy", "SuccessfulCreate");
  ASSERT_FALSE(created.empty());
  EXPECT_EQ(created[0]["source"]["component"], "replication-controller");
}

}  // namespace
}  // namespace kin::controllers
