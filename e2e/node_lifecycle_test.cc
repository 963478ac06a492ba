// e2e: node failure as a real cluster lives it. `kin node stop` crashes a
// node (its agent stops, its containers die, its link goes down); the node
// lifecycle controller marks it Unknown and taints it unreachable; its pods
// are evicted after their tolerationSeconds (the cluster config makes both
// short here) and a Deployment's pods run again elsewhere; `kin node start`
// brings the node back Ready and untainted.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "base/process.h"
#include "base/yaml.h"
#include "testing/e2e_cluster.h"
#include "testing/kernel_fixture.h"

namespace kin {
namespace {

using std::chrono::seconds;
using testing::E2eCluster;

const char* kFastFailover =
    "apiVersion: kin.dev/v1alpha1\nkind: Cluster\n"
    "nodes: [{role: control-plane}, {role: worker}, {role: worker}]\n"
    "nodeLifecycle: {nodeMonitorGracePeriod: 2s, defaultTolerationSeconds: 2}\n";

std::string ReadyStatus(const Json& node) {
  if (!node.is_object() || !node.contains("status")) return "";
  for (const auto& c : node["status"].value("conditions", Json::array())) {
    if (c["type"] == "Ready") return c.value("status", "");
  }
  return "";
}

std::set<std::string> Taints(const Json& node) {
  std::set<std::string> out;
  if (!node.is_object() || !node.contains("spec") || !node["spec"].is_object()) return out;
  for (const auto& t : node["spec"].value("taints", Json::array())) {
    out.insert(t.value("key", "") + ":" + t.value("effect", ""));
  }
  return out;
}

class NodeLifecycleE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::RequireRoot()) GTEST_SKIP() << "needs root";
    testing::WriteFile(c_.File("c.yaml"), kFastFailover);
    ASSERT_TRUE(c_.Create({"--config", c_.File("c.yaml")})) << c_.last_output();
  }
  E2eCluster c_{'l'};
};

TEST_F(NodeLifecycleE2E, StoppedNodeTurnsUnknownItsPodsAreEvictedAndItComesBack) {
  const std::string worker = c_.NodeName("worker");
  c_.Apply("apiVersion: v1\nkind: Pod\nmetadata: {name: victim}\nspec:\n  nodeName: " + worker +
           "\n  containers:\n  - {name: c, image: busybox, command: [sleep, '3600']}\n");
  ASSERT_FALSE(c_.WaitPodReady("victim").is_null());

  // Errors name the node and the state.
  CommandResult r = c_.Kin({"node", "stop", "nosuch", "--name", c_.name()});
  EXPECT_FALSE(r.status.success());
  EXPECT_NE(r.err.find("not found"), std::string::npos) << r.err;
  r = c_.Kin({"node", "start", "worker", "--name", c_.name()});
  EXPECT_FALSE(r.status.success());
  EXPECT_NE(r.err.find("is running already"), std::string::npos) << r.err;

  r = c_.Kin({"node", "stop", "worker", "--name", c_.name()});
  ASSERT_TRUE(r.status.success()) << r.out << r.err << c_.Log();
  // The machine is down: its uplink too.
  CommandResult link = RunCommand({"ip", "-n", worker, "-o", "link", "show", "eth0"});
  EXPECT_EQ(link.out.find(",UP"), std::string::npos) << link.out;
  r = c_.Kin({"node", "stop", "worker", "--name", c_.name()});
  EXPECT_FALSE(r.status.success());
  EXPECT_NE(r.err.find("is stopped already"), std::string::npos) << r.err;

  // Past the grace period: Unknown and tainted unreachable; the pod is not
  // ready, then (2 s later) evicted; it stays Terminating while its node
  // is down, as on a real cluster.
  Json node;
  EXPECT_TRUE(c_.WaitFor(
      [&] {
        node = c_.GetJson({"node", worker});
        return ReadyStatus(node) == "Unknown" &&
               Taints(node) == std::set<std::string>{"node.kubernetes.io/unreachable:NoExecute",
                                                     "node.kubernetes.io/unreachable:NoSchedule"};
      },
      seconds(30)))
      << node.dump(2) << c_.Log();
  Json pod;
  EXPECT_TRUE(c_.WaitFor(
      [&] {
        pod = c_.GetJson({"pod", "victim"});
        return pod.is_null() || pod["metadata"].contains("deletionTimestamp");
      },
      seconds(30)))
      << pod.dump(2);
  bool evicted_event = false;
  Json events = c_.GetJson({"events", "--field-selector", "involvedObject.name=victim"});
  for (const auto& e : events.value("items", Json::array())) {
    evicted_event |= e.value("reason", "") == "TaintManagerEviction";
  }
  EXPECT_TRUE(evicted_event) << events.dump(2);

  // Back: Ready, untainted, and the evicted pod's deletion completes.
  r = c_.Kin({"node", "start", "worker", "--name", c_.name()});
  ASSERT_TRUE(r.status.success()) << r.out << r.err << c_.Log();
  EXPECT_TRUE(c_.WaitFor(
      [&] {
        node = c_.GetJson({"node", worker});
        return ReadyStatus(node) == "True" && Taints(node).empty();
      },
      seconds(30)))
      << node.dump(2);
  EXPECT_TRUE(c_.WaitFor([&] { return c_.GetJson({"pod", "victim"}).is_null(); }, seconds(30)));
  // It runs new pods again.
  c_.Apply("apiVersion: v1\nkind: Pod\nmetadata: {name: after}\nspec:\n  nodeName: " + worker +
           "\n  containers:\n  - {name: c, image: busybox, command: [sleep, '3600']}\n");
  EXPECT_FALSE(c_.WaitPodReady("after").is_null());

  ASSERT_TRUE(c_.Delete()) << c_.last_output();
  EXPECT_EQ(c_.Leftovers(), std::vector<std::string>{});
}

// Failover: a Deployment's pod on a stopped node is replaced on the other
// worker, and the Deployment is available again.
TEST_F(NodeLifecycleE2E, DeploymentPodsRunAgainElsewhere) {
  c_.Apply(R"(apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: registry.k8s.io/e2e-test-images/agnhost:2.52
        args: [netexec, --http-port=8080]
)");
  std::map<std::string, std::string> node_of;  // pod -> node
  auto running_ready = [&] {
    node_of.clear();
    Json pods = c_.GetJson({"pods", "-l", "app=web"});
    for (const auto& p : pods.value("items", Json::array())) {
      if (p["metadata"].contains("deletionTimestamp")) continue;
      bool ready = false;
      for (const auto& cond : p["status"].value("conditions", Json::array())) {
        ready |= cond["type"] == "Ready" && cond["status"] == "True";
      }
      if (ready) node_of[p["metadata"]["name"]] = p["spec"].value("nodeName", "");
    }
    return node_of.size();
  };
  ASSERT_TRUE(c_.WaitFor([&] { return running_ready() == 2; }, seconds(40))) << c_.Log();
  std::string victim_node = node_of.begin()->second;
  std::string role = victim_node.substr(c_.Prefix().size());
  CommandResult r = c_.Kin({"node", "stop", role, "--name", c_.name()});
  ASSERT_TRUE(r.status.success()) << r.out << r.err;
  // Two ready pods again, none on the stopped node.
  EXPECT_TRUE(c_.WaitFor(
      [&] {
        if (running_ready() != 2) return false;
        for (const auto& [pod, node] : node_of) {
          if (node == victim_node) return false;
        }
        return true;
      },
      seconds(60)))
      << c_.Log();
  r = c_.Kin({"node", "start", role, "--name", c_.name()});
  EXPECT_TRUE(r.status.success()) << r.out << r.err;
}

}  // namespace
}  // namespace kin
