// e2e: Deployments and ReplicaSets as a user drives them with real kubectl
// (1.33, and 1.27 for the rollout commands) on a cluster of 3 nodes:
// scaling 1 -> 10 -> 3 with every pod Running and Ready on a worker, a
// rolling update with maxUnavailable 0 that never has fewer ready pods than
// replicas (sampled throughout), and `kubectl rollout
// status|history|undo|restart|pause|resume`.
#include <gtest/gtest.h>

#include <memory>
#include <set>

#include "base/process.h"
#include "base/yaml.h"
#include "testing/e2e_cluster.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin {
namespace {

using namespace std::chrono_literals;
using Cluster = testing::E2eCluster;

std::string Deployment(const std::string& name, int replicas, const std::string& extra_spec = "") {
  return "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: " + name +
         "\nspec:\n  replicas: " + std::to_string(replicas) +
         "\n  selector:\n    matchLabels: {app: " + name + "}\n" + extra_spec +
         "  template:\n    metadata:\n      labels: {app: " + name +
         "}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n"
         "      - name: web\n        image: registry.k8s.io/e2e-test-images/agnhost:2.52\n"
         "        args: [netexec, --http-port=8080]\n        env: [{name: V, value: \"1\"}]\n"
         "        readinessProbe:\n          httpGet: {path: /, port: 8080}\n"
         "          periodSeconds: 1\n";
}

bool PodReady(const Json& p) {
  for (const auto& c : p["status"].value("conditions", Json::array())) {
    if (c.value("type", "") == "Ready") return c.value("status", "") == "True";
  }
  return false;
}

class WorkloadsE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!testing::RequireRoot()) return;
    cluster_ = std::make_unique<Cluster>('w');
    if (!cluster_->Create({"--nodes", "3"})) {
      setup_error_ = cluster_->last_output();
      cluster_.reset();
    }
  }
  static void TearDownTestSuite() {
    if (cluster_) {
      EXPECT_TRUE(cluster_->Delete()) << cluster_->last_output();
      EXPECT_EQ(cluster_->Leftovers(), std::vector<std::string>{});
    }
    cluster_.reset();
  }
  void SetUp() override {
    if (!testing::RequireRoot()) GTEST_SKIP() << "needs root";
    ASSERT_TRUE(cluster_) << "cluster create failed:\n" << setup_error_;
  }
  Cluster& c() { return *cluster_; }

  // Pods of app=NAME that are not terminating.
  std::vector<Json> Pods(const std::string& app, const std::string& ns = "default") {
    Json list = c().GetJson({"pods", "-n", ns, "-l", "app=" + app});
    std::vector<Json> out;
    if (!list.is_object()) return out;
    for (const auto& p : list["items"]) {
      if (!p["metadata"].contains("deletionTimestamp")) out.push_back(p);
    }
    return out;
  }
  Json Deploy(const std::string& name, const std::string& ns = "default") {
    return c().GetJson({"deployment", name, "-n", ns});
  }

  static std::unique_ptr<Cluster> cluster_;
  static std::string setup_error_;
};

std::unique_ptr<Cluster> WorkloadsE2E::cluster_;
std::string WorkloadsE2E::setup_error_;

// The pods a Service's EndpointSlices list ready, and those its Endpoints
// list as addresses (not notReadyAddresses).
std::set<std::string> SliceReady(const Cluster& c, const std::string& svc) {
  std::set<std::string> out;
  Json slices = c.GetJson({"endpointslices", "-l", "kubernetes.io/service-name=" + svc});
  for (const auto& s : slices.value("items", Json::array())) {
    for (const auto& e : s.value("endpoints", Json::array())) {
      if (e.value("conditions", Json::object()).value("ready", false)) {
        out.insert(e.value("targetRef", Json::object()).value("name", ""));
      }
    }
  }
  return out;
}
std::set<std::string> EndpointsReady(const Cluster& c, const std::string& svc) {
  std::set<std::string> out;
  Json ep = c.GetJson({"endpoints", svc});
  for (const auto& ss : ep.value("subsets", Json::array())) {
    for (const auto& a : ss.value("addresses", Json::array())) {
      out.insert(a.value("targetRef", Json::object()).value("name", ""));
    }
  }
  return out;
}

TEST_F(WorkloadsE2E, ScaleOneToTenToThree) {
  c().Apply(Deployment("web", 1));
  c().Apply(
      "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n"
      "  ports: [{port: 80, targetPort: 8080}]\n");
  // The Service's EndpointSlices and Endpoints list exactly the ready pods.
  auto endpoints_follow = [&] {
    std::set<std::string> ready;
    for (const auto& p : Pods("web")) {
      if (PodReady(p)) ready.insert(p["metadata"]["name"]);
    }
    return SliceReady(c(), "web") == ready && EndpointsReady(c(), "web") == ready;
  };
  c().Ok({"rollout", "status", "deployment/web", "--timeout=90s"});
  c().Ok({"scale", "deployment/web", "--replicas=10"});
  auto all_ready_on_workers = [&](size_t n) {
    auto pods = Pods("web");
    if (pods.size() != n) return false;
    for (const auto& p : pods) {
      std::string node = p["spec"].value("nodeName", "");
      if (node.empty() || node == c().NodeName("control-plane")) return false;
      if (p["status"].value("phase", "") != "Running" || !PodReady(p)) return false;
    }
    Json d = Deploy("web");
    return d["status"].value("readyReplicas", 0) == static_cast<int>(n) &&
           d["status"].value("availableReplicas", 0) == static_cast<int>(n);
  };
  ASSERT_TRUE(Cluster::WaitFor([&] { return all_ready_on_workers(10); }, 90s))
      << c().Ok({"get", "pods", "-o", "wide"}) << c().Log();
  std::set<std::string> nodes;
  for (const auto& p : Pods("web")) nodes.insert(p["spec"]["nodeName"]);
  EXPECT_GE(nodes.size(), 2u);  // spread over the workers
  c().Ok({"rollout", "status", "deployment/web", "--timeout=60s"});
  EXPECT_TRUE(Cluster::WaitFor([&] { return endpoints_follow() && SliceReady(c(), "web").size() == 10; },
                               10s))
      << c().Ok({"get", "endpointslices", "-o", "yaml"});

  c().Ok({"scale", "deployment/web", "--replicas=3"});
  ASSERT_TRUE(Cluster::WaitFor([&] { return all_ready_on_workers(3); }, 60s))
      << c().Ok({"get", "pods", "-o", "wide"});
  EXPECT_TRUE(Cluster::WaitFor([&] { return endpoints_follow() && SliceReady(c(), "web").size() == 3; },
                               10s))
      << c().Ok({"get", "endpointslices", "-o", "yaml"});
  Json d = Deploy("web");
  EXPECT_EQ(d["status"].value("replicas", 0), 3);
  EXPECT_EQ(d["status"].value("updatedReplicas", 0), 3);
  // One ReplicaSet did it all, named <deploy>-<pod-template-hash>.
  Json rss = c().GetJson({"replicasets", "-l", "app=web"});
  ASSERT_EQ(rss["items"].size(), 1u);
  std::string hash = rss["items"][0]["metadata"]["labels"].value("pod-template-hash", "");
  EXPECT_EQ(rss["items"][0]["metadata"]["name"], "web-" + hash);
  std::string events = c().Ok({"get", "events", "--field-selector",
                               "involvedObject.kind=Deployment,involvedObject.name=web"});
  EXPECT_NE(events.find("Scaled up replica set web-" + hash + " from 1 to 10"), std::string::npos)
      << events;
  EXPECT_NE(events.find("Scaled down replica set web-" + hash + " from 10 to 3"), std::string::npos)
      << events;
  // Frees the workers for the next test.
  c().Ok({"scale", "deployment/web", "--replicas=0"});
  c().Ok({"delete", "service", "web"});
}

// Deleting a Deployment cascades as on a real cluster: background and
// foreground take its ReplicaSet and pods (foreground returns once they are
// gone), orphan leaves the ReplicaSet, no longer owned, and its pods.
TEST_F(WorkloadsE2E, DeletingADeploymentCascades) {
  for (const std::string cascade : {"background", "foreground", "orphan"}) {
    std::string name = "cascade-" + cascade;
    c().Apply(Deployment(name, 2));
    c().Ok({"rollout", "status", "deployment/" + name, "--timeout=90s"});
    Json rss = c().GetJson({"replicasets", "-l", "app=" + name});
    ASSERT_EQ(rss["items"].size(), 1u) << cascade;
    std::string rs = rss["items"][0]["metadata"]["name"];
    c().Ok({"delete", "deployment", name, "--cascade=" + cascade, "--timeout=60s"});
    if (cascade == "foreground") {
      // kubectl waited for the Deployment, which went only after its dependents.
      EXPECT_TRUE(c().GetJson({"replicaset", rs}).is_null()) << cascade;
    }
    if (cascade != "orphan") {
      EXPECT_TRUE(Cluster::WaitFor(
          [&] { return c().GetJson({"replicaset", rs}).is_null() && Pods(name).empty(); }, 30s))
          << cascade;
      continue;
    }
    // Orphaned: the ReplicaSet stays, without an owner, and keeps its pods.
    Json kept = c().GetJson({"replicaset", rs});
    ASSERT_FALSE(kept.is_null());
    EXPECT_TRUE(Cluster::WaitFor(
        [&] {
          Json r = c().GetJson({"replicaset", rs});
          return !r.is_null() && !r["metadata"].contains("ownerReferences");
        },
        30s))
        << c().GetJson({"replicaset", rs}).dump(2);
    EXPECT_EQ(Pods(name).size(), 2u);
    c().Ok({"delete", "replicaset", rs});
    EXPECT_TRUE(Cluster::WaitFor([&] { return Pods(name).empty(); }, 30s));
  }
}

// A pod that fits nowhere says why, as kube-scheduler words it.
TEST_F(WorkloadsE2E, UnschedulablePodSaysWhy) {
  c().Apply("apiVersion: v1\nkind: Pod\nmetadata: {name: picky}\nspec:\n"
            "  nodeSelector: {disk: ssd}\n"
            "  containers: [{name: c, image: busybox, command: [sleep, '3600']}]\n");
  std::string described;
  EXPECT_TRUE(Cluster::WaitFor(
      [&] {
        described = c().Ok({"describe", "pod", "picky"});
        return described.find("FailedScheduling") != std::string::npos;
      },
      30s));
  EXPECT_NE(described.find("0/3 nodes are available: 1 node(s) had untolerated taint "
                           "{node-role.kubernetes.io/control-plane: }, 2 node(s) didn't match "
                           "Pod's node affinity/selector."),
            std::string::npos)
      << described;
  c().Ok({"delete", "pod", "picky", "--grace-period=0", "--force"});
}

TEST_F(WorkloadsE2E, RollingUpdateWithMaxUnavailableZeroKeepsEveryReplicaReady) {
  // minReadySeconds slows each step down to a second or more, so that the
  // samples see the rollout in the middle.
  c().Apply(Deployment("roll", 3,
                       "  minReadySeconds: 1\n  strategy:\n    type: RollingUpdate\n"
                       "    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}\n"));
  c().Ok({"rollout", "status", "deployment/roll", "--timeout=90s"});
  c().Ok({"set", "env", "deployment/roll", "V=2"});
  int samples = 0, min_ready_pods = 100, min_status_ready = 100, max_pods = 0;
  bool done = false;
  auto deadline = std::chrono::steady_clock::now() + 120s;
  while (!done && std::chrono::steady_clock::now() < deadline) {
    // Back to back, no pause: every state the rollout passes through
    // should be seen.
    Json d = Deploy("roll");
    auto pods = Pods("roll");
    int ready = 0;
    for (const auto& p : pods) ready += PodReady(p);
    min_ready_pods = std::min(min_ready_pods, ready);
    max_pods = std::max(max_pods, static_cast<int>(pods.size()));
    min_status_ready = std::min(min_status_ready, d["status"].value("readyReplicas", 0));
    ++samples;
    const Json& st = d["status"];
    done = st.value("observedGeneration", 0) == d["metadata"]["generation"] &&
           st.value("updatedReplicas", 0) == 3 && st.value("replicas", 0) == 3 &&
           st.value("availableReplicas", 0) == 3 && pods.size() == 3;
    for (const auto& p : pods) {
      done = done && p["spec"]["containers"][0]["env"][0].value("value", "") == "2";
    }
  }
  ASSERT_TRUE(done) << Deploy("roll").dump() << c().Log();
  EXPECT_LE(max_pods, 4);  // replicas + maxSurge
  EXPECT_GT(samples, 3);
  EXPECT_GE(min_ready_pods, 3);
  EXPECT_GE(min_status_ready, 3);
  c().Ok({"rollout", "status", "deployment/roll", "--timeout=30s"});
  // Frees the workers for the next test (deleting would need the garbage
  // collector, which is not what this suite tests).
  c().Ok({"scale", "deployment/roll", "--replicas=0"});
}

// `kubectl rollout` with the given kubectl version, in a namespace of its own.
void RolloutCommands(Cluster& c, const std::string& version) {
  std::string ns = "rollout-" + version.substr(2);  // rollout-33
  auto kubectl = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {testing::KubectlBinary(version), "--kubeconfig",
                                     c.Kubeconfig(), "-n", ns};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, std::chrono::seconds(120));
  };
  auto ok = [&](std::vector<std::string> args) {
    CommandResult r = kubectl(args);
    std::string cmd;
    for (const auto& a : args) cmd += " " + a;
    EXPECT_TRUE(r.status.success()) << "kubectl " << version << cmd << ":\n" << r.out << r.err;
    return r.out;
  };
  auto get = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "get");
    args.insert(args.end(), {"-o", "json"});
    CommandResult r = kubectl(args);
    return r.status.success() ? Json::parse(r.out, nullptr, false) : Json();
  };
  auto env_of = [&](const Json& d) {
    return d["spec"]["template"]["spec"]["containers"][0]["env"][0].value("value", "");
  };
  auto revision = [&](const Json& o) {
    return o["metadata"]
        .value("annotations", Json::object())
        .value("deployment.kubernetes.io/revision", "");
  };
  c.Ok({"create", "namespace", ns});
  c.Apply(Deployment("hist", 2), ns);
  ok({"rollout", "status", "deployment/hist", "--timeout=90s"});
  ok({"set", "env", "deployment/hist", "V=2"});
  ok({"annotate", "deployment/hist", "kubernetes.io/change-cause=second"});
  std::string status = ok({"rollout", "status", "deployment/hist", "--timeout=90s"});
  EXPECT_NE(status.find("successfully rolled out"), std::string::npos) << status;

  std::string history = ok({"rollout", "history", "deployment/hist"});
  EXPECT_NE(history.find("REVISION"), std::string::npos) << history;
  EXPECT_NE(history.find("1 "), std::string::npos) << history;
  EXPECT_NE(history.find("second"), std::string::npos) << history;
  std::string rev1 = ok({"rollout", "history", "deployment/hist", "--revision=1"});
  EXPECT_NE(rev1.find("revision #1"), std::string::npos) << rev1;

  // undo: back to V=1 as revision 3.
  ok({"rollout", "undo", "deployment/hist"});
  ok({"rollout", "status", "deployment/hist", "--timeout=90s"});
  Json d = get({"deployment", "hist"});
  EXPECT_EQ(env_of(d), "1");
  EXPECT_TRUE(Cluster::WaitFor([&] { return revision(get({"deployment", "hist"})) == "3"; }));
  history = ok({"rollout", "history", "deployment/hist"});
  EXPECT_EQ(history.find("\n1 "), std::string::npos) << history;  // 1 became 3

  // restart: a new revision with the same env.
  size_t rs_before = get({"replicasets"})["items"].size();
  ok({"rollout", "restart", "deployment/hist"});
  ok({"rollout", "status", "deployment/hist", "--timeout=90s"});
  d = get({"deployment", "hist"});
  EXPECT_TRUE(d["spec"]["template"]["metadata"]["annotations"].contains(
      "kubectl.kubernetes.io/restartedAt"));
  EXPECT_EQ(get({"replicasets"})["items"].size(), rs_before + 1);
  EXPECT_TRUE(Cluster::WaitFor([&] { return revision(get({"deployment", "hist"})) == "4"; }));

  // pause: a template change waits; resume rolls it out.
  ok({"rollout", "pause", "deployment/hist"});
  ok({"set", "env", "deployment/hist", "V=5"});
  EXPECT_TRUE(Cluster::WaitFor([&] {
    Json now = get({"deployment", "hist"});
    for (const auto& cond : now["status"].value("conditions", Json::array())) {
      if (cond.value("type", "") == "Progressing") {
        return cond.value("reason", "") == "DeploymentPaused" &&
               now["status"].value("observedGeneration", 0) == now["metadata"]["generation"];
      }
    }
    return false;
  }));
  EXPECT_EQ(get({"replicasets"})["items"].size(), rs_before + 1);  // nothing new while paused
  ok({"rollout", "resume", "deployment/hist"});
  ok({"rollout", "status", "deployment/hist", "--timeout=90s"});
  Json pods = get({"pods", "-l", "app=hist"});
  int v5 = 0;
  for (const auto& p : pods["items"]) {
    if (p["metadata"].contains("deletionTimestamp")) continue;
    v5 += p["spec"]["containers"][0]["env"][0].value("value", "") == "5";
  }
  EXPECT_EQ(v5, 2) << pods.dump();
  ok({"scale", "deployment/hist", "--replicas=0"});
}

TEST_F(WorkloadsE2E, RolloutCommandsKubectl133) { RolloutCommands(c(), "1.33"); }
TEST_F(WorkloadsE2E, RolloutCommandsKubectl127) { RolloutCommands(c(), "1.27"); }

}  // namespace
}  // namespace kin
