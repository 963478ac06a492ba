// The scheduler: its pure decision (filters, scoring, kube-scheduler's
// failure text) and the controller against a real in-process registry.
#include "controllers/scheduler.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>

#include "base/error.h"
#include "controllers/manager.h"
#include "controllers/registry_fixture.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin::controllers {
namespace {

Json Node(const std::string& name, const std::string& cpu = "4", const std::string& memory = "8Gi",
          const std::string& pods = "110") {
  return {{"apiVersion", "v1"},
          {"kind", "Node"},
          {"metadata", {{"name", name}, {"labels", {{"kubernetes.io/hostname", name}}}}},
          {"spec", Json::object()},
          {"status",
           {{"allocatable", {{"cpu", cpu}, {"memory", memory}, {"pods", pods}}},
            {"capacity", {{"cpu", cpu}, {"memory", memory}, {"pods", pods}}},
            {"conditions", Json::array({{{"type", "Ready"}, {"status", "True"}}})}}}};
}

Json Pod(const std::string& name, const std::string& cpu = "", const std::string& memory = "") {
  Json c = {{"name", "c"}, {"image", "busybox"}};
  if (!cpu.empty()) c["resources"]["requests"]["cpu"] = cpu;
  if (!memory.empty()) c["resources"]["requests"]["memory"] = memory;
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"name", name}, {"namespace", "default"}}},
          {"spec", {{"containers", Json::array({c})}}}};
}

Json On(Json pod, const std::string& node) {
  pod["spec"]["nodeName"] = node;
  return pod;
}

Json ControlPlaneTaint() {
  return {{"key", "node-role.kubernetes.io/control-plane"}, {"effect", "NoSchedule"}};
}

std::string Why(const ScheduleResult& r) { return r.node.empty() ? r.failure_message : ""; }

TEST(SchedulePodTest, PicksTheOnlyFittingNode) {
  auto r = SchedulePod(Pod("p", "1"), {Node("a", "500m"), Node("b", "2")}, {});
  EXPECT_EQ(r.node, "b");
  EXPECT_EQ(r.failure_message, "");
}

TEST(SchedulePodTest, FailureMessageIsKubeSchedulers) {
  Json cp = Node("cp");
  cp["spec"]["taints"] = Json::array({ControlPlaneTaint()});
  auto r = SchedulePod(Pod("p", "3"), {cp, Node("w1", "2"), Node("w2", "2")}, {});
  EXPECT_EQ(r.node, "");
  EXPECT_EQ(r.failure_message,
            "0/3 nodes are available: 1 node(s) had untolerated taint "
            "{node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu. preemption: 0/3 "
            "nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption "
            "victims found for incoming pod.");
}

TEST(SchedulePodTest, NoNodes) {
  EXPECT_EQ(SchedulePod(Pod("p"), {}, {}).failure_message, "no nodes available to schedule pods");
}

TEST(SchedulePodTest, PreemptionPolicyNever) {
  Json p = Pod("p", "8");
  p["spec"]["preemptionPolicy"] = "Never";
  EXPECT_EQ(Why(SchedulePod(p, {Node("a")}, {})),
            "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to "
            "preemptionPolicy=Never.");
}

TEST(SchedulePodTest, NotReadyNodesCountAsTainted) {
  Json n = Node("a");
  n["status"]["conditions"][0]["status"] = "False";
  Json u = Node("b");
  u["status"]["conditions"][0]["status"] = "Unknown";
  EXPECT_EQ(Why(SchedulePod(Pod("p"), {n, u}, {})),
            "0/2 nodes are available: 1 node(s) had untolerated taint "
            "{node.kubernetes.io/not-ready: }, 1 node(s) had untolerated taint "
            "{node.kubernetes.io/unreachable: }. preemption: 0/2 nodes are available: 2 "
            "Preemption is not helpful for scheduling.");
  Json tolerant = Pod("p");
  tolerant["spec"]["tolerations"] =
      Json::array({{{"key", "node.kubernetes.io/not-ready"}, {"operator", "Exists"}}});
  EXPECT_EQ(SchedulePod(tolerant, {n}, {}).node, "a");
}

TEST(SchedulePodTest, UnschedulableNode) {
  Json n = Node("a");
  n["spec"]["unschedulable"] = true;
  EXPECT_EQ(Why(SchedulePod(Pod("p"), {n}, {})),
            "0/1 nodes are available: 1 node(s) were unschedulable. preemption: 0/1 nodes are "
            "available: 1 Preemption is not helpful for scheduling.");
  Json tolerant = Pod("p");
  tolerant["spec"]["tolerations"] = Json::array({{{"key", "node.kubernetes.io/unschedulable"},
                                                  {"operator", "Exists"},
                                                  {"effect", "NoSchedule"}}});
  EXPECT_EQ(SchedulePod(tolerant, {n}, {}).node, "a");
}

TEST(SchedulePodTest, TaintsAndTolerations) {
  Json n = Node("a");
  n["spec"]["taints"] =
      Json::array({{{"key", "dedicated"}, {"value", "gpu"}, {"effect", "NoExecute"}},
                   {{"key", "soft"}, {"effect", "PreferNoSchedule"}}});  // never filters
  auto with = [](Json tolerations) {
    Json p = Pod("p");
    p["spec"]["tolerations"] = std::move(tolerations);
    return p;
  };
  EXPECT_EQ(Why(SchedulePod(Pod("p"), {n}, {})),
            "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}. "
            "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.");
  EXPECT_EQ(
      SchedulePod(with(Json::array({{{"key", "dedicated"}, {"value", "gpu"}}})), {n}, {}).node,
      "a");  // operator Equal by default, any effect
  EXPECT_EQ(
      SchedulePod(
          with(Json::array({{{"key", "dedicated"}, {"operator", "Equal"}, {"value", "cpu"}}})), {n},
          {})
          .node,
      "");
  EXPECT_EQ(
      SchedulePod(with(Json::array(
                      {{{"key", "dedicated"}, {"operator", "Exists"}, {"effect", "NoSchedule"}}})),
                  {n}, {})
          .node,
      "");  // wrong effect
  EXPECT_EQ(SchedulePod(with(Json::array({{{"operator", "Exists"}}})), {n}, {}).node, "a");
}

TEST(SchedulePodTest, NodeSelector) {
  Json a = Node("a"), b = Node("b");
  b["metadata"]["labels"]["disk"] = "ssd";
  Json p = Pod("p");
  p["spec"]["nodeSelector"] = {{"disk", "ssd"}};
  EXPECT_EQ(SchedulePod(p, {a, b}, {}).node, "b");
  p["spec"]["nodeSelector"] = {{"disk", "nvme"}};
  EXPECT_EQ(Why(SchedulePod(p, {a, b}, {})),
            "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. "
            "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.");
}

TEST(SchedulePodTest, RequiredNodeAffinityOperators) {
  Json a = Node("a"), b = Node("b");
  a["metadata"]["labels"]["zone"] = "z1";
  a["metadata"]["labels"]["gen"] = "3";
  b["metadata"]["labels"]["zone"] = "z2";
  b["metadata"]["labels"]["gen"] = "5";
  auto affinity = [](Json terms) {
    Json p = Pod("p");
    p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
     ["nodeSelectorTerms"] = std::move(terms);
    return p;
  };
  auto expr = [](std::string key, std::string op, Json values = nullptr) {
    Json e = {{"key", key}, {"operator", op}};
    if (!values.is_null()) e["values"] = values;
    return Json::array({{{"matchExpressions", Json::array({e})}}});
  };
  auto place = [&](Json terms) { return SchedulePod(affinity(terms), {a, b}, {}).node; };
  EXPECT_EQ(place(expr("zone", "In", {"z2"})), "b");
  EXPECT_EQ(place(expr("zone", "NotIn", {"z1"})), "b");
  EXPECT_EQ(place(expr("gen", "Gt", {"4"})), "b");
  EXPECT_EQ(place(expr("gen", "Lt", {"4"})), "a");
  EXPECT_EQ(place(expr("gen", "Gt", {"x"})), "");
  EXPECT_EQ(place(expr("zone", "DoesNotExist")), "");
  EXPECT_EQ(place(expr("zone", "Exists")), "a");  // both fit: the name breaks the tie
  Json fields = Json::array(
      {{{"matchFields",
         Json::array({{{"key", "metadata.name"}, {"operator", "In"}, {"values", {"b"}}}})}}});
  EXPECT_EQ(place(fields), "b");
  // Terms are ORed; expressions within a term are ANDed.
  Json ored = expr("zone", "In", {"nowhere"});
  ored.push_back(expr("gen", "In", {"5"})[0]);
  EXPECT_EQ(place(ored), "b");
  Json anded = expr("zone", "In", {"z1"});
  anded[0]["matchExpressions"].push_back({{"key", "gen"}, {"operator", "In"}, {"values", {"5"}}});
  EXPECT_EQ(place(anded), "");
  EXPECT_EQ(place(Json::array({Json::object()})), "");  // an empty term matches nothing
}

TEST(SchedulePodTest, ResourcesCountAssignedPods) {
  Json n = Node("a", "2", "1Gi", "3");
  std::vector<Json> assigned = {On(Pod("x", "1500m", "512Mi"), "a")};
  EXPECT_EQ(SchedulePod(Pod("p", "500m", "512Mi"), {n}, assigned).node, "a");
  EXPECT_EQ(Why(SchedulePod(Pod("p", "600m", "600Mi"), {n}, assigned)),
            "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory. preemption: 0/1 "
            "nodes are available: 1 No preemption victims found for incoming pod.");
  // Terminated pods free their share; pods without requests still count as pods.
  Json done = On(Pod("d", "2"), "a");
  done["status"]["phase"] = "Succeeded";
  assigned = {done, On(Pod("y"), "a"), On(Pod("z"), "a")};
  EXPECT_EQ(SchedulePod(Pod("p", "2"), {n}, {done}).node, "a");
  EXPECT_EQ(Why(SchedulePod(Pod("p", "1"), {Node("a", "2", "1Gi", "2")}, assigned)),
            "0/1 nodes are available: 1 Too many pods. preemption: 0/1 nodes are available: 1 No "
            "preemption victims found for incoming pod.");
}

TEST(SchedulePodTest, InitContainersOverheadAndLimits) {
  Json n = Node("a", "2");
  Json p = Pod("p", "500m");
  p["spec"]["initContainers"] =
      Json::array({{{"name", "i"}, {"resources", {{"requests", {{"cpu", "1500m"}}}}}}});
  EXPECT_EQ(SchedulePod(p, {n}, {On(Pod("x", "500m"), "a")}).node, "a");  // max(1.5, 0.5) = 1.5
  EXPECT_EQ(SchedulePod(p, {n}, {On(Pod("x", "600m"), "a")}).node, "");
  // A sidecar (restartPolicy Always) adds to the containers.
  p["spec"]["initContainers"] = Json::array({{{"name", "s"},
                                              {"restartPolicy", "Always"},
                                              {"resources", {{"requests", {{"cpu", "1"}}}}}}});
  EXPECT_EQ(SchedulePod(p, {n}, {On(Pod("x", "500m"), "a")}).node, "a");  // 1.5
  EXPECT_EQ(SchedulePod(p, {n}, {On(Pod("x", "600m"), "a")}).node, "");
  Json o = Pod("o", "1");
  o["spec"]["overhead"] = {{"cpu", "1"}};
  EXPECT_EQ(SchedulePod(o, {n}, {On(Pod("x", "100m"), "a")}).node, "");
  Json l = Pod("l");
  l["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "3";  // requests default to limits
  EXPECT_EQ(SchedulePod(l, {n}, {}).node, "");
}

TEST(SchedulePodTest, HostPorts) {
  auto with_port = [](std::string name, int port, std::string ip = "", std::string proto = "") {
    Json p = Pod(name);
    Json cp = {{"containerPort", 80}, {"hostPort", port}};
    if (!ip.empty()) cp["hostIP"] = ip;
    if (!proto.empty()) cp["protocol"] = proto;
    p["spec"]["containers"][0]["ports"] = Json::array({cp});
    return p;
  };
  std::vector<Json> nodes = {Node("a")};
  std::vector<Json> busy = {On(with_port("x", 8080), "a")};
  EXPECT_EQ(Why(SchedulePod(with_port("p", 8080), nodes, busy)),
            "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod "
            "ports. preemption: 0/1 nodes are available: 1 No preemption victims found for "
            "incoming pod.");
  EXPECT_EQ(SchedulePod(with_port("p", 8081), nodes, busy).node, "a");
  EXPECT_EQ(SchedulePod(with_port("p", 8080, "", "UDP"), nodes, busy).node, "a");
  EXPECT_EQ(SchedulePod(with_port("p", 8080, "10.0.0.1"), nodes, busy).node, "");  // 0.0.0.0 taken
  busy = {On(with_port("x", 8080, "10.0.0.1"), "a")};
  EXPECT_EQ(SchedulePod(with_port("p", 8080, "10.0.0.2"), nodes, busy).node, "a");
  EXPECT_EQ(SchedulePod(with_port("p", 8080), nodes, busy).node, "");
}

TEST(SchedulePodTest, PrefersTheLeastAllocatedNode) {
  std::vector<Json> nodes = {Node("a"), Node("b")};
  EXPECT_EQ(SchedulePod(Pod("p", "1"), nodes, {On(Pod("x", "2", "4Gi"), "a")}).node, "b");
  EXPECT_EQ(SchedulePod(Pod("p", "1"), nodes, {On(Pod("x", "2", "4Gi"), "b")}).node, "a");
  // A bigger node wins when empty.
  EXPECT_EQ(SchedulePod(Pod("p", "1"), {Node("a"), Node("b", "16", "32Gi")}, {}).node, "b");
}

TEST(SchedulePodTest, ABurstSpreadsEvenly) {
  Json cp = Node("cp");
  cp["spec"]["taints"] = Json::array({ControlPlaneTaint()});
  std::vector<Json> nodes = {cp, Node("w1"), Node("w2"), Node("w3")};
  std::vector<Json> assigned;
  std::map<std::string, int> per_node;
  for (int i = 0; i < 30; ++i) {
    Json p = Pod("p" + std::to_string(i));
    auto r = SchedulePod(p, nodes, assigned);
    ASSERT_FALSE(r.node.empty()) << r.failure_message;
    per_node[r.node]++;
    assigned.push_back(On(p, r.node));
  }
  EXPECT_EQ(per_node, (std::map<std::string, int>{{"w1", 10}, {"w2", 10}, {"w3", 10}}));
}

// The controller against a real registry on SQLite, through LocalClient.
class SchedulerTest : public RegistryTest {
 protected:
  void AddNode(Json node) { CreateNode(cl(), std::move(node)); }
  std::string NodeOf(const std::string& name) {
    Json p = cl().Get(PodsResource(), "default", name);
    return p["spec"].value("nodeName", "");
  }
  std::vector<Json> EventsFor(const std::string& pod, const std::string& reason) {
    return EventsWithReason(cl(), reason, pod);
  }
};

TEST_F(SchedulerTest, BindsABurstSpreadOverWorkers) {
  Json cp = Node("cp");
  cp["spec"]["taints"] = Json::array({ControlPlaneTaint()});
  AddNode(cp);
  for (const char* w : {"w1", "w2", "w3"}) AddNode(Node(w));
  Scheduler scheduler(cl());
  scheduler.Start();
  for (int i = 0; i < 20; ++i) cl().Create(PodsResource(), "default", Pod("p" + std::to_string(i)));
  ASSERT_TRUE(testing::Eventually([&] {
    for (int i = 0; i < 20; ++i) {
      if (NodeOf("p" + std::to_string(i)).empty()) return false;
    }
    return true;
  }));
  std::map<std::string, int> per_node;
  for (int i = 0; i < 20; ++i) per_node[NodeOf("p" + std::to_string(i))]++;
  EXPECT_EQ(per_node.count("cp"), 0u);
  for (const char* w : {"w1", "w2", "w3"}) {
    EXPECT_GE(per_node[w], 6) << w;
    EXPECT_LE(per_node[w], 7) << w;
  }
  Json p0 = cl().Get(PodsResource(), "default", "p0");
  bool scheduled = false;
  for (const auto& c : p0["status"]["conditions"]) {
    if (c["type"] == "PodScheduled") scheduled = c["status"] == "True";
  }
  EXPECT_TRUE(scheduled);
  ASSERT_TRUE(testing::Eventually([&] { return EventsFor("p0", "Scheduled").size() == 1; }));
  Json ev = EventsFor("p0", "Scheduled")[0];
  EXPECT_EQ(ev["type"], "Normal");
  EXPECT_EQ(ev["message"], "Successfully assigned default/p0 to " + NodeOf("p0"));
}

// Every pod of a burst is bound (how fast is a figure of bench_controllers,
// not a test).
TEST_F(SchedulerTest, ABurstOfAHundredIsBound) {
  for (const char* w : {"w1", "w2", "w3"}) AddNode(Node(w, "100", "100Gi"));
  Scheduler scheduler(cl());
  scheduler.Start();
  for (int i = 0; i < 100; ++i) cl().Create(PodsResource(), "default", Pod("b" + std::to_string(i), "100m"));
  ASSERT_TRUE(testing::Eventually([&] {
    ListOptions o;
    o.field_selector = "spec.nodeName=";
    return cl().List(PodsResource(), "default", o)["items"].empty();
  }));
}

// The periodic retry is set far beyond the test's deadline, so only the
// event (a node appears, a pod goes) can have the pod bound.
SchedulerOptions NoPeriodicRetry() {
  SchedulerOptions o;
  o.retry_unschedulable_every = std::chrono::hours(1);
  return o;
}

TEST_F(SchedulerTest, UnschedulableUntilAMatchingNodeAppears) {
  AddNode(Node("w1"));
  Scheduler scheduler(cl(), NoPeriodicRetry());
  scheduler.Start();
  Json p = Pod("picky");
  p["spec"]["nodeSelector"] = {{"disk", "ssd"}};
  cl().Create(PodsResource(), "default", p);
  const std::string want =
      "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: "
      "0/1 nodes are available: 1 Preemption is not helpful for scheduling.";
  ASSERT_TRUE(testing::Eventually([&] {
    Json now = cl().Get(PodsResource(), "default", "picky");
    for (const auto& c : now["status"].value("conditions", Json::array())) {
      if (c["type"] == "PodScheduled") {
        return c["status"] == "False" && c.value("reason", "") == "Unschedulable" &&
               c.value("message", "") == want;
      }
    }
    return false;
  }));
  ASSERT_TRUE(testing::Eventually([&] { return !EventsFor("picky", "FailedScheduling").empty(); }));
  Json ev = EventsFor("picky", "FailedScheduling")[0];
  EXPECT_EQ(ev["type"], "Warning");
  EXPECT_EQ(ev["message"], want);
  EXPECT_EQ(NodeOf("picky"), "");

  Json ssd = Node("w2");
  ssd["metadata"]["labels"]["disk"] = "ssd";
  AddNode(ssd);
  ASSERT_TRUE(testing::Eventually([&] { return NodeOf("picky") == "w2"; }));
}

TEST_F(SchedulerTest, RetriesWhenAPodGoesAway) {
  AddNode(Node("w1", "1"));
  Scheduler scheduler(cl(), NoPeriodicRetry());
  scheduler.Start();
  cl().Create(PodsResource(), "default", Pod("big", "800m"));
  ASSERT_TRUE(testing::Eventually([&] { return NodeOf("big") == "w1"; }));
  cl().Create(PodsResource(), "default", Pod("next", "500m"));
  ASSERT_TRUE(testing::Eventually([&] { return !EventsFor("next", "FailedScheduling").empty(); }));
  EXPECT_EQ(EventsFor("next", "FailedScheduling")[0]["message"],
            "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 "
            "No preemption victims found for incoming pod.");
  DeleteOptions now;
  now.grace_period_seconds = 0;
  cl().Delete(PodsResource(), "default", "big", now);
  ASSERT_TRUE(testing::Eventually([&] { return NodeOf("next") == "w1"; }));
}

TEST_F(SchedulerTest, LeavesOtherSchedulersPodsAlone) {
  AddNode(Node("w1"));
  Scheduler scheduler(cl());
  scheduler.Start();
  Json other = Pod("other");
  other["spec"]["schedulerName"] = "my-scheduler";
  cl().Create(PodsResource(), "default", other);
  cl().Create(PodsResource(), "default", Pod("mine"));
  ASSERT_TRUE(testing::Eventually([&] { return NodeOf("mine") == "w1"; }));
  // Pods are taken in order, so "other" has been seen and skipped by now.
  EXPECT_EQ(NodeOf("other"), "");
  EXPECT_TRUE(EventsFor("other", "FailedScheduling").empty());
}

TEST_F(SchedulerTest, RunsOnSharedInformersUnderAManager) {
  AddNode(Node("w1"));
  cl().Create(PodsResource(), "default", Pod("early"));  // pending before the scheduler starts
  ControllerManager manager(cl());
  manager.Emplace<Scheduler>(manager.informers(), manager.client());
  // Nodes and pods, claims, volumes and classes (VolumeBinding), shared.
  EXPECT_EQ(manager.informers().informers().size(), 5u);
  manager.Start();
  ASSERT_TRUE(testing::Eventually([&] { return NodeOf("early") == "w1"; }));
  cl().Create(PodsResource(), "default", Pod("late"));
  ASSERT_TRUE(testing::Eventually([&] { return NodeOf("late") == "w1"; }));
  ASSERT_TRUE(testing::Eventually([&] { return EventsFor("late", "Scheduled").size() == 1; }));
  EXPECT_EQ(EventsFor("late", "Scheduled")[0]["source"]["component"], "default-scheduler");

  // Its status writes carry its own field manager.
  Json p = Pod("picky");
  p["spec"]["nodeSelector"] = {{"disk", "ssd"}};
  cl().Create(PodsResource(), "default", p);
  ASSERT_TRUE(testing::Eventually([&] {
    Json now = cl().Get(PodsResource(), "default", "picky");
    for (const auto& mf : now["metadata"].value("managedFields", Json::array())) {
      if (mf.value("manager", "") == "default-scheduler") return true;
    }
    return false;
  }));
  manager.Stop();
}

TEST_F(SchedulerTest, RetriesAnUnschedulablePodPeriodically) {
  // A node becoming fit without an event the scheduler looks at is only
  // caught by the periodic retry; shortened here.
  AddNode(Node("w1", "1"));
  SchedulerOptions o;
  o.retry_unschedulable_every = std::chrono::milliseconds(50);
  Scheduler scheduler(cl(), o);
  scheduler.Start();
  cl().Create(PodsResource(), "default", Pod("big", "2"));
  ASSERT_TRUE(testing::Eventually([&] { return !EventsFor("big", "FailedScheduling").empty(); }));
  // Tried again and again: the event's count goes up.
  ASSERT_TRUE(testing::Eventually([&] {
    Json ev = EventsFor("big", "FailedScheduling");
    return !ev.empty() && ev[0].value("count", 0) >= 3;
  }));
}

}  // namespace
}  // namespace kin::controllers
