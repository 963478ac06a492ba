// The DaemonSet controller: which nodes run a daemon pod, the pod it makes,
// the revision history, and the controller against a real registry with
// the real scheduler and a fake kubelet.
#include "controllers/daemonset.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "controllers/sets_testing.h"

namespace kin::controllers {
namespace {

using sets_testing::FakeKubelet;
using sets_testing::SetsTest;
using testing::Eventually;

Json Ds(const std::string& name, Json tolerations = Json::array()) {
  Json ds = {{"apiVersion", "apps/v1"},
             {"kind", "DaemonSet"},
             {"metadata", {{"name", name}, {"namespace", "default"}, {"uid", "ds-uid"}}},
             {"spec",
              {{"selector", {{"matchLabels", {{"app", name}}}}},
               {"template",
                {{"metadata", {{"labels", {{"app", name}}}}},
                 {"spec",
                  {{"containers", Json::array({{{"name", "c"}, {"image", "busybox"}}})}}}}}}}};
  if (!tolerations.empty()) ds["spec"]["template"]["spec"]["tolerations"] = tolerations;
  return ds;
}

Json Node(const std::string& name) { return SetsTest::Node(name); }

TEST(NodeShouldRunDaemonPodTest, PlainNodeRunsIt) {
  auto f = NodeShouldRunDaemonPod(Node("a"), Ds("d"));
  EXPECT_TRUE(f.should_run);
  EXPECT_TRUE(f.should_continue_running);
}

TEST(NodeShouldRunDaemonPodTest, UntoleratedNoScheduleTaintLetsAPodStay) {
  Json n = SetsTest::Node("cp", Json::object(), Json::array({SetsTest::ControlPlaneTaint()}));
  auto f = NodeShouldRunDaemonPod(n, Ds("d"));
  EXPECT_FALSE(f.should_run);
  EXPECT_TRUE(f.should_continue_running);
  Json tolerant = Ds("d", Json::array({{{"key", "node-role.kubernetes.io/control-plane"},
                                        {"operator", "Exists"},
                                        {"effect", "NoSchedule"}}}));
  EXPECT_TRUE(NodeShouldRunDaemonPod(n, tolerant).should_run);
}

TEST(NodeShouldRunDaemonPodTest, UntoleratedNoExecuteTaintEvicts) {
  Json n = SetsTest::Node(
      "a", Json::object(),
      Json::array({{{"key", "dedicated"}, {"value", "x"}, {"effect", "NoExecute"}}}));
  auto f = NodeShouldRunDaemonPod(n, Ds("d"));
  EXPECT_FALSE(f.should_run);
  EXPECT_FALSE(f.should_continue_running);
}

TEST(NodeShouldRunDaemonPodTest, DaemonTolerationsCoverNodeConditionTaints) {
  for (const char* t :
       {"node.kubernetes.io/unschedulable", "node.kubernetes.io/disk-pressure",
        "node.kubernetes.io/memory-pressure", "node.kubernetes.io/pid-pressure"}) {
    Json n = SetsTest::Node("a", Json::object(), Json::array({{{"key", t}, {"effect", "NoSchedule"}}}));
    EXPECT_TRUE(NodeShouldRunDaemonPod(n, Ds("d")).should_run) << t;
  }
  for (const char* t : {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}) {
    Json n = SetsTest::Node("a", Json::object(), Json::array({{{"key", t}, {"effect", "NoExecute"}}}));
    EXPECT_TRUE(NodeShouldRunDaemonPod(n, Ds("d")).should_run) << t;
    // not-ready NoSchedule is not tolerated, as upstream: no new pods there.
    n["spec"]["taints"][0]["effect"] = "NoSchedule";
    EXPECT_FALSE(NodeShouldRunDaemonPod(n, Ds("d")).should_run) << t;
  }
  Json n = SetsTest::Node(
      "a", Json::object(),
      Json::array({{{"key", "node.kubernetes.io/network-unavailable"}, {"effect", "NoSchedule"}}}));
  EXPECT_FALSE(NodeShouldRunDaemonPod(n, Ds("d")).should_run);
  Json host = Ds("d");
  host["spec"]["template"]["spec"]["hostNetwork"] = true;
  EXPECT_TRUE(NodeShouldRunDaemonPod(n, host).should_run);
  // spec.unschedulable alone is no obstacle.
  Json cordoned = Node("a");
  cordoned["spec"]["unschedulable"] = true;
  EXPECT_TRUE(NodeShouldRunDaemonPod(cordoned, Ds("d")).should_run);
}

TEST(NodeShouldRunDaemonPodTest, NodeSelectorAndAffinity) {
  Json ds = Ds("d");
  ds["spec"]["template"]["spec"]["nodeSelector"] = {{"disk", "ssd"}};
  Json a = Node("a"), b = SetsTest::Node("b", {{"disk", "ssd"}});
  EXPECT_FALSE(NodeShouldRunDaemonPod(a, ds).should_run);
  EXPECT_FALSE(NodeShouldRunDaemonPod(a, ds).should_continue_running);
  EXPECT_TRUE(NodeShouldRunDaemonPod(b, ds).should_run);
  Json aff = Ds("d");
  aff["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
     ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] = Json::array(
      {{{"matchExpressions",
         Json::array({{{"key", "disk"}, {"operator", "NotIn"}, {"values", {"ssd"}}}})}}});
  EXPECT_TRUE(NodeShouldRunDaemonPod(a, aff).should_run);
  EXPECT_FALSE(NodeShouldRunDaemonPod(b, aff).should_run);
  Json fixed = Ds("d");
  fixed["spec"]["template"]["spec"]["nodeName"] = "b";
  EXPECT_FALSE(NodeShouldRunDaemonPod(a, fixed).should_run);
}

TEST(NewDaemonPodTest, LabelsTolerationsAndNodeAffinity) {
  Json ds = Ds("d", Json::array({{{"key", "node.kubernetes.io/not-ready"},
                                  {"operator", "Exists"},
                                  {"effect", "NoExecute"},
                                  {"tolerationSeconds", 5}}}));
  ds["metadata"]["generation"] = 3;
  ds["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] =
      Json::array({{{"matchExpressions", Json::array({{{"key", "x"}, {"operator", "Exists"}}})}}});
  Json pod = NewDaemonPod(ds, "w1", "abc123");
  EXPECT_EQ(pod["metadata"]["generateName"], "d-");
  EXPECT_EQ(pod["metadata"]["namespace"], "default");
  EXPECT_EQ(pod["metadata"]["labels"],
            Json({{"app", "d"}, {"controller-revision-hash", "abc123"},
                  {"pod-template-generation", "3"}}));
  EXPECT_EQ(pod["metadata"]["ownerReferences"][0]["kind"], "DaemonSet");
  EXPECT_EQ(pod["metadata"]["ownerReferences"][0]["controller"], true);
  EXPECT_EQ(pod["spec"]["affinity"]["nodeAffinity"]
               ["requiredDuringSchedulingIgnoredDuringExecution"],
            Json({{"nodeSelectorTerms",
                   Json::array({{{"matchFields", Json::array({{{"key", "metadata.name"},
                                                               {"operator", "In"},
                                                               {"values", {"w1"}}}})}}})}}));
  EXPECT_EQ(DaemonPodTargetNode(pod), "w1");
  const Json& tols = pod["spec"]["tolerations"];
  ASSERT_EQ(tols.size(), 6u);  // no network-unavailable without hostNetwork
  // The user's not-ready toleration is replaced by the unbounded one.
  EXPECT_EQ(tols[0], Json({{"key", "node.kubernetes.io/not-ready"},
                           {"operator", "Exists"},
                           {"effect", "NoExecute"}}));
  ds["metadata"]["annotations"]["deprecated.daemonset.template.generation"] = "7";
  EXPECT_EQ(NewDaemonPod(ds, "w1", "h")["metadata"]["labels"]["pod-template-generation"], "7");
}

TEST(ScaledValueTest, IntsPercentsAndErrors) {
  EXPECT_EQ(ScaledValue(Json(2), 10, true, "f"), 2);
  EXPECT_EQ(ScaledValue(Json("25%"), 10, true, "f"), 3);
  EXPECT_EQ(ScaledValue(Json("25%"), 10, false, "f"), 2);
  EXPECT_EQ(ScaledValue(Json(), 10, true, "f"), 0);
  try {
    ScaledValue(Json("x%"), 10, true, "spec.updateStrategy.rollingUpdate.maxUnavailable");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalid);
    EXPECT_EQ(e.message(),
              "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: \"x%\": must be "
              "an integer or percentage (e.g '5%')");
  }
  EXPECT_THROW(ScaledValue(Json(true), 10, true, "f"), Error);
}

// Revision history on the in-memory store (the API has no
// controllerrevisions yet; the API store runs the same code).
TEST(RevisionHistoryTest, CreateReuseRollbackCollideAndTruncate) {
  auto store = NewMemoryRevisionStore();
  Json ds = Ds("d");
  auto hash_of = [&](int64_t cc) { return ComputeHash(ds["spec"]["template"], cc); };
  RevisionSync r1 = SyncUpdateRevision(*store, ds, "apps/v1", "DaemonSet", hash_of, 0);
  EXPECT_EQ(RevisionNumber(r1.update), 1);
  EXPECT_EQ(r1.update["metadata"]["name"], "d-" + hash_of(0));
  EXPECT_EQ(r1.update["metadata"]["labels"]["controller-revision-hash"], hash_of(0));
  EXPECT_EQ(r1.update["metadata"]["labels"]["app"], "d");
  EXPECT_EQ(r1.update["data"]["spec"]["template"]["$patch"], "replace");
  EXPECT_EQ(r1.update["metadata"]["ownerReferences"][0]["uid"], "ds-uid");
  // Same template: the same revision.
  RevisionSync again = SyncUpdateRevision(*store, ds, "apps/v1", "DaemonSet", hash_of, 0);
  EXPECT_EQ(again.update["metadata"]["name"], r1.update["metadata"]["name"]);
  EXPECT_EQ(again.all.size(), 1u);
  // A new template: revision 2.
  Json v1 = ds;
  ds["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:2";
  RevisionSync r2 = SyncUpdateRevision(*store, ds, "apps/v1", "DaemonSet", hash_of, 0);
  EXPECT_EQ(RevisionNumber(r2.update), 2);
  EXPECT_EQ(r2.all.size(), 2u);
  // Back to the first: it becomes revision 3, no new object.
  ds = v1;
  RevisionSync r3 = SyncUpdateRevision(*store, ds, "apps/v1", "DaemonSet", hash_of, 0);
  EXPECT_EQ(r3.update["metadata"]["name"], r1.update["metadata"]["name"]);
  EXPECT_EQ(RevisionNumber(r3.update), 3);
  EXPECT_EQ(store->List(ds).size(), 2u);
  EXPECT_EQ(ApplyRevision(Ds("x"), r2.update)["spec"]["template"]["spec"]["containers"][0]["image"],
            "busybox:2");
  // A different revision squatting on the next name: the collision count rises.
  Json other = Ds("d");
  other["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:3";
  Json squatter = NewRevision(ds, "apps/v1", "DaemonSet", Json{{"x", 1}}, 9,
                              ComputeHash(other["spec"]["template"], 0));
  store->Create(squatter);
  auto other_hash = [&](int64_t cc) { return ComputeHash(other["spec"]["template"], cc); };
  RevisionSync r4 = SyncUpdateRevision(*store, other, "apps/v1", "DaemonSet", other_hash, 0);
  EXPECT_EQ(r4.collision_count, 1);
  EXPECT_EQ(r4.update["metadata"]["name"], "d-" + other_hash(1));
  EXPECT_EQ(RevisionNumber(r4.update), 10);
  // Truncation keeps the live ones and `limit` others, dropping the oldest.
  auto all = store->List(ds);
  ASSERT_EQ(all.size(), 4u);
  TruncateHistory(*store, all, {object::Name(r4.update)}, 1);
  auto left = store->List(ds);
  ASSERT_EQ(left.size(), 2u);
  EXPECT_EQ(object::Name(left[0]), object::Name(squatter));  // revision 9
  EXPECT_EQ(object::Name(left[1]), object::Name(r4.update));
  store->ForgetParent("ds-uid");
  EXPECT_TRUE(store->List(ds).empty());
}

class DaemonSetTest : public SetsTest {
 protected:
  void StartAll() {
    AddRuntime();
    manager().Emplace<DaemonSetController>(manager().informers(), cl());
    manager().Start();
  }
  Json Get(const std::string& name) {
    return cl().Get(*FindResource("apps", "v1", "daemonsets"), "default", name);
  }
  void Create(const Json& ds) {
    Json d = ds;
    d["metadata"].erase("uid");
    cl().Create(*FindResource("apps", "v1", "daemonsets"), "default", d);
  }
  // Nodes that run a bound, Running, Ready pod of `app`.
  std::map<std::string, int> ReadyPodsPerNode(const std::string& app) {
    std::map<std::string, int> out;
    for (const Json& p : PodsOf(app)) {
      std::string node = p["spec"].value("nodeName", "");
      if (!node.empty() && IsPodReady(p) && !object::IsBeingDeleted(p)) out[node]++;
    }
    return out;
  }
  // What `kubectl rollout status ds/NAME` waits for.
  bool RolledOut(const std::string& name) {
    Json ds = Get(name);
    const Json s = StatusOf(ds);
    return ds["metadata"].value("generation", 0) <= s.value("observedGeneration", 0) &&
           s.value("updatedNumberScheduled", 0) >= s.value("desiredNumberScheduled", 0) &&
           s.value("numberAvailable", 0) >= s.value("desiredNumberScheduled", 0);
  }
  void AddCluster() {
    AddNode(SetsTest::Node("cp", Json::object(), Json::array({ControlPlaneTaint()})));
    AddNode(SetsTest::Node("w1"));
    AddNode(SetsTest::Node("w2"));
  }
};

TEST_F(DaemonSetTest, CoversEverySchedulableNode) {
  AddCluster();
  StartAll();
  Create(Ds("agent"));
  Create(Ds("everywhere", Json::array({{{"key", "node-role.kubernetes.io/control-plane"},
                                        {"operator", "Exists"},
                                        {"effect", "NoSchedule"}}})));
  ASSERT_TRUE(Eventually([&] {
    return ReadyPodsPerNode("agent") == std::map<std::string, int>{{"w1", 1}, {"w2", 1}} &&
           RolledOut("agent");
  })) << Get("agent").dump();
  ASSERT_TRUE(Eventually([&] {
    return ReadyPodsPerNode("everywhere") ==
               std::map<std::string, int>{{"cp", 1}, {"w1", 1}, {"w2", 1}} &&
           RolledOut("everywhere");
  })) << Get("everywhere").dump();
  Json s = StatusOf(Get("agent"));
  EXPECT_EQ(s["desiredNumberScheduled"], 2);
  EXPECT_EQ(s["currentNumberScheduled"], 2);
  EXPECT_EQ(s["numberReady"], 2);
  EXPECT_EQ(s["numberAvailable"], 2);
  EXPECT_EQ(s["updatedNumberScheduled"], 2);
  EXPECT_EQ(s["numberMisscheduled"], 0);
  EXPECT_FALSE(s.contains("numberUnavailable"));
  EXPECT_EQ(s["observedGeneration"], 1);
  for (const Json& p : PodsOf("agent")) {
    EXPECT_EQ(p["metadata"]["labels"]["pod-template-generation"], "1");
    EXPECT_FALSE(p["metadata"]["labels"].value("controller-revision-hash", "").empty());
    EXPECT_EQ(p["metadata"]["generateName"], "agent-");
  }
  EXPECT_GE(EventsWith("SuccessfulCreate").size(), 1u);
  // The history is real ControllerRevisions, one per template.
  ASSERT_NE(ControllerRevisionsResource(), nullptr);
  Json revs = cl().List(*ControllerRevisionsResource(), "default");
  ASSERT_EQ(revs["items"].size(), 2u);
  for (const Json& r : revs["items"]) {
    EXPECT_EQ(r["revision"], 1);
    EXPECT_EQ(r["metadata"]["ownerReferences"][0]["kind"], "DaemonSet");
    std::string owner = r["metadata"]["ownerReferences"][0]["name"];
    EXPECT_EQ(r["metadata"]["name"],
              owner + "-" + PodsOf(owner)[0]["metadata"]["labels"]["controller-revision-hash"].get<std::string>());
  }
}

// Each node gets exactly one pod, never a second, while node updates keep
// re-queueing the DaemonSet as its pods reach the cache: the controller once
// listed the pods before checking its expectations, so a pod that arrived in
// between cleared the expectation without being in the listing and was
// created again (seen as two pods on two workers in a clean-clone e2e run).
TEST_F(DaemonSetTest, NeverCreatesASecondPodForANode) {
  constexpr int kNodes = 40;
  for (int i = 0; i < kNodes; ++i) AddNode(SetsTest::Node("n" + std::to_string(i)));
  StartAll();
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    for (int round = 0; !stop; ++round) {
      std::string node = "n" + std::to_string(round % kNodes);
      try {
        cl().Patch(NodesResource(), "", node, PatchType::kMerge,
                   {{"metadata", {{"labels", {{"round", std::to_string(round)}}}}}});
      } catch (const Error&) {
      }
    }
  });
  Create(Ds("agent"));
  bool covered = Eventually([&] {
    return ReadyPodsPerNode("agent").size() == static_cast<size_t>(kNodes) && RolledOut("agent");
  });
  stop = true;
  churn.join();
  ASSERT_TRUE(covered) << Get("agent").dump();
  std::map<std::string, int> per_node;
  for (const Json& p : PodsOf("agent")) per_node[p["spec"].value("nodeName", "")]++;
  for (const auto& [node, n] : per_node) EXPECT_EQ(n, 1) << node;
  // Pods ever created: the Events' counts (after 10, the recorder combines
  // them into one Event, as client-go's aggregator does).
  auto created = [&] {
    int64_t n = 0;
    for (const Json& e : EventsWith("SuccessfulCreate")) n += e.value("count", 1);
    return n;
  };
  EXPECT_TRUE(Eventually([&] { return created() == kNodes; })) << created();
  EXPECT_TRUE(EventsWith("SuccessfulDelete").empty());
}

TEST_F(DaemonSetTest, FollowsNodesComingGoingAndChanging) {
  AddNode(SetsTest::Node("w1"));
  StartAll();
  Json ds = Ds("agent");
  ds["spec"]["template"]["spec"]["nodeSelector"] = {{"role", "worker"}};
  Create(ds);
  ASSERT_TRUE(Eventually([&] { return StatusOf(Get("agent")).contains("observedGeneration"); }));
  EXPECT_EQ(StatusOf(Get("agent"))["desiredNumberScheduled"], 0);
  // Label it: a pod arrives.
  cl().Patch(NodesResource(), "", "w1", PatchType::kMerge,
             {{"metadata", {{"labels", {{"role", "worker"}}}}}});
  AddNode(SetsTest::Node("w2", {{"role", "worker"}}));
  ASSERT_TRUE(Eventually([&] {
    return ReadyPodsPerNode("agent") == std::map<std::string, int>{{"w1", 1}, {"w2", 1}} &&
           RolledOut("agent");
  }));
  // Unlabel w1: its pod goes. Delete w2: its pod goes too.
  cl().Patch(NodesResource(), "", "w1", PatchType::kMerge,
             {{"metadata", {{"labels", {{"role", nullptr}}}}}});
  cl().Delete(NodesResource(), "", "w2");
  ASSERT_TRUE(Eventually([&] { return PodsOf("agent").empty(); }));
  ASSERT_TRUE(Eventually([&] {
    Json s = StatusOf(Get("agent"));
    return s["desiredNumberScheduled"] == 0 && s["currentNumberScheduled"] == 0 &&
           s["numberMisscheduled"] == 0;
  }));
  EXPECT_GE(EventsWith("SuccessfulDelete").size(), 2u);
}

TEST_F(DaemonSetTest, MisscheduledPodOnANodeThatGainedANoScheduleTaint) {
  AddNode(SetsTest::Node("w1"));
  StartAll();
  Create(Ds("agent"));
  ASSERT_TRUE(Eventually([&] { return RolledOut("agent") && PodsOf("agent").size() == 1; }));
  cl().Patch(NodesResource(), "", "w1", PatchType::kMerge,
             {{"spec", {{"taints", Json::array({{{"key", "k"}, {"effect", "NoSchedule"}}})}}}});
  // It may stay (NoSchedule), but counts as misscheduled.
  ASSERT_TRUE(Eventually([&] {
    Json s = StatusOf(Get("agent"));
    return s["desiredNumberScheduled"] == 0 && s["numberMisscheduled"] == 1;
  })) << Get("agent").dump();
  EXPECT_EQ(PodsOf("agent").size(), 1u);
  cl().Patch(NodesResource(), "", "w1", PatchType::kMerge,
             {{"spec", {{"taints", Json::array({{{"key", "k"}, {"effect", "NoExecute"}}})}}}});
  ASSERT_TRUE(Eventually([&] { return PodsOf("agent").empty(); }));
}

TEST_F(DaemonSetTest, ReplacesFailedPods) {
  AddNode(SetsTest::Node("w1"));
  StartAll();
  Create(Ds("agent"));
  ASSERT_TRUE(Eventually([&] { return RolledOut("agent") && PodsOf("agent").size() == 1; }));
  std::string first = PodsOf("agent")[0]["metadata"]["name"];
  FakeKubelet::SetStatus(cl(), "default", first, "Failed", false);
  ASSERT_TRUE(Eventually([&] {
    auto pods = PodsOf("agent");
    return pods.size() == 1 && pods[0]["metadata"]["name"] != first && RolledOut("agent");
  }));
  EXPECT_EQ(EventsWith("FailedDaemonPod").size(), 1u);
}

// A rolling update with maxUnavailable 1 over four nodes: every pod ends at
// the new template, and no more than one node is ever without a Ready pod.
TEST_F(DaemonSetTest, RollingUpdateHonoursMaxUnavailable) {
  for (const char* n : {"w1", "w2", "w3", "w4"}) AddNode(SetsTest::Node(n));
  StartAll();
  Create(Ds("agent"));
  ASSERT_TRUE(Eventually([&] { return RolledOut("agent") && ReadyPodsPerNode("agent").size() == 4; }));
  std::string old_hash = PodsOf("agent")[0]["metadata"]["labels"]["controller-revision-hash"];
  UpdateRetryingConflicts(*FindResource("apps", "v1", "daemonsets"), "default", "agent",
                          [](Json& ds) {
                            ds["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:2";
                          });
  size_t fewest = 4;
  ASSERT_TRUE(Eventually([&] {
    fewest = std::min(fewest, ReadyPodsPerNode("agent").size());
    auto pods = PodsOf("agent");
    bool all_new = pods.size() == 4 && std::all_of(pods.begin(), pods.end(), [&](const Json& p) {
      return p["metadata"]["labels"]["controller-revision-hash"] != old_hash &&
             p["metadata"]["labels"]["pod-template-generation"] == "2";
    });
    return all_new && RolledOut("agent");
  }));
  EXPECT_GE(fewest, 3u);
  EXPECT_EQ(StatusOf(Get("agent"))["updatedNumberScheduled"], 4);
  Json revs = cl().List(*ControllerRevisionsResource(), "default");
  ASSERT_EQ(revs["items"].size(), 2u);
}

// maxSurge 1, maxUnavailable 0: the new pod starts beside the old one, which
// goes once the new one is available; every node keeps a Ready pod.
TEST_F(DaemonSetTest, RollingUpdateWithSurgeKeepsEveryNodeServed) {
  for (const char* n : {"w1", "w2", "w3"}) AddNode(SetsTest::Node(n));
  StartAll();
  Json d = Ds("agent");
  d["spec"]["updateStrategy"] = {{"type", "RollingUpdate"},
                                 {"rollingUpdate", {{"maxSurge", 1}, {"maxUnavailable", 0}}}};
  Create(d);
  ASSERT_TRUE(Eventually([&] { return RolledOut("agent") && ReadyPodsPerNode("agent").size() == 3; }));
  UpdateRetryingConflicts(*FindResource("apps", "v1", "daemonsets"), "default", "agent",
                          [](Json& ds) { ds["spec"]["template"]["metadata"]["labels"]["v"] = "2"; });
  size_t fewest = 3, most = 0;
  ASSERT_TRUE(Eventually([&] {
    fewest = std::min(fewest, ReadyPodsPerNode("agent").size());
    auto pods = PodsOf("agent");
    // Pods being deleted do not count against maxSurge, as upstream.
    most = std::max<size_t>(most, std::count_if(pods.begin(), pods.end(), [](const Json& p) {
                              return !object::IsBeingDeleted(p);
                            }));
    bool all_new = pods.size() == 3 && std::all_of(pods.begin(), pods.end(), [&](const Json& p) {
      return p["metadata"]["labels"].value("v", "") == "2";
    });
    return all_new && RolledOut("agent");
  }));
  EXPECT_EQ(fewest, 3u);
  EXPECT_LE(most, 4u);
}

TEST_F(DaemonSetTest, OnDeleteReplacesOnlyDeletedPods) {
  AddNode(SetsTest::Node("w1"));
  AddNode(SetsTest::Node("w2"));
  StartAll();
  Json d = Ds("agent");
  d["spec"]["updateStrategy"] = {{"type", "OnDelete"}};
  Create(d);
  ASSERT_TRUE(Eventually([&] {
    return ReadyPodsPerNode("agent").size() == 2 &&
           StatusOf(Get("agent")).value("numberAvailable", 0) == 2;
  }));
  UpdateRetryingConflicts(*FindResource("apps", "v1", "daemonsets"), "default", "agent",
                          [](Json& ds) { ds["spec"]["template"]["metadata"]["labels"]["v"] = "2"; });
  ASSERT_TRUE(Eventually([&] { return StatusOf(Get("agent")).value("observedGeneration", 0) == 2; }));
  EXPECT_FALSE(StatusOf(Get("agent")).contains("updatedNumberScheduled"));
  std::string victim;
  for (const Json& p : PodsOf("agent")) {
    if (p["spec"]["nodeName"] == "w1") victim = p["metadata"]["name"];
  }
  cl().Delete(PodsResource(), "default", victim);
  ASSERT_TRUE(Eventually([&] {
    auto pods = PodsOf("agent");
    int updated = 0, bound = 0;
    for (const Json& p : pods) {
      updated += p["metadata"]["labels"].value("v", "") == "2";
      bound += !p["spec"].value("nodeName", "").empty();  // the scheduler binds the new one
    }
    return pods.size() == 2 && updated == 1 && bound == 2 &&
           StatusOf(Get("agent")).value("updatedNumberScheduled", 0) == 1;
  }));
  for (const Json& p : PodsOf("agent")) {
    EXPECT_EQ(p["metadata"]["labels"].value("v", "") == "2", p["spec"]["nodeName"] == "w1");
  }
}

}  // namespace
}  // namespace kin::controllers
