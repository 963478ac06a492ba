// e2e: PodDisruptionBudgets, the eviction subresource and node drain with
// the real kubectl 1.33: `kubectl create pdb` and `kubectl get pdb` (the
// disruption controller's ALLOWED DISRUPTIONS), `kubectl drain` evicting
// what the budget allows and failing with upstream's message on what it
// forbids (429), `kubectl cordon` / `uncordon` and the scheduler honouring
// spec.unschedulable; `kubectl create cronjob`, `kubectl get cj,rc,pdb` and
// `kubectl explain pdb`.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "base/yaml.h"
#include "testing/e2e_cluster.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin {
namespace {

using Cluster = testing::E2eCluster;
using std::chrono::seconds;

std::string SleepPod(const std::string& name, const std::string& node) {
  return "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name +
         "\n  labels: {app: web}\nspec:\n  nodeName: " + node +
         "\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: busybox\n"
         "    command: [sleep, '3600']\n";
}

bool Exists(const Cluster& c, const std::string& pod) {
  Json p = c.GetJson({"pod", pod});
  return !p.is_null() && !p["metadata"].contains("deletionTimestamp");
}

class DrainE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::RequireRoot()) GTEST_SKIP() << "needs root";
  }
};

TEST_F(DrainE2E, DrainHonoursThePodDisruptionBudget) {
  Cluster c('d');
  ASSERT_TRUE(c.Create({"--nodes", "3"})) << c.last_output();
  const std::string worker = c.NodeName("worker");
  const std::string worker2 = c.NodeName("worker2");
  c.Apply(SleepPod("web-1", worker) + "---\n" + SleepPod("web-2", worker) + "---\n" +
          SleepPod("web-3", worker2));
  for (const char* p : {"web-1", "web-2", "web-3"}) ASSERT_FALSE(c.WaitPodReady(p).is_null());

  // kubectl 1.33 sends this one as protobuf.
  c.Ok({"create", "pdb", "web", "--selector=app=web", "--min-available=2"});
  ASSERT_TRUE(c.WaitFor([&] {
    Json pdb = c.GetJson({"pdb", "web"});
    return !pdb.is_null() && pdb["status"].value("disruptionsAllowed", -1) == 1 &&
           pdb["status"].value("currentHealthy", -1) == 3;
  })) << c.GetJson({"pdb", "web"}).dump(2)
      << c.Log();
  std::string table = c.Ok({"get", "pdb"});
  EXPECT_NE(table.find("ALLOWED DISRUPTIONS"), std::string::npos) << table;
  EXPECT_NE(table.find("MIN AVAILABLE"), std::string::npos) << table;
  std::string row = c.Ok({"get", "pdb", "web", "--no-headers"});
  EXPECT_EQ(row.substr(0, row.find("  ")), "web") << row;
  EXPECT_NE(row.find("   2   "), std::string::npos) << row;  // MIN AVAILABLE
  EXPECT_NE(row.find("N/A"), std::string::npos) << row;      // MAX UNAVAILABLE

  // Draining the worker: one of its two pods may go (3 healthy, 2 needed),
  // the other is refused with 429 until the drain gives up.
  CommandResult drain = c.Kubectl({"drain", worker, "--ignore-daemonsets", "--delete-emptydir-data",
                                   "--force", "--timeout=5s"});
  EXPECT_NE(drain.status.code, 0) << drain.out << drain.err;
  EXPECT_NE((drain.out + drain.err)
                .find("Cannot evict pod as it would violate the pod's disruption budget"),
            std::string::npos)
      << drain.out << drain.err;
  ASSERT_TRUE(c.WaitFor([&] { return Exists(c, "web-1") != Exists(c, "web-2"); }))
      << "exactly one pod of the drained node is evicted";
  EXPECT_TRUE(Exists(c, "web-3"));
  std::string evicted = Exists(c, "web-1") ? "web-2" : "web-1";
  EXPECT_TRUE(c.WaitFor([&] { return c.GetJson({"pod", evicted}).is_null(); }));
  ASSERT_TRUE(c.WaitFor([&] {
    Json pdb = c.GetJson({"pdb", "web"});
    return pdb["status"].value("currentHealthy", -1) == 2 &&
           pdb["status"].value("disruptionsAllowed", -1) == 0;
  })) << c.GetJson({"pdb", "web"}).dump(2);
  Json pdb = c.GetJson({"pdb", "web"});
  bool insufficient = false;
  for (const auto& cond : pdb["status"]["conditions"]) {
    insufficient |= cond["type"] == "DisruptionAllowed" && cond["reason"] == "InsufficientPods";
  }
  EXPECT_TRUE(insufficient) << pdb.dump(2);

  // The drain cordoned the node: new pods are not placed there.
  EXPECT_EQ(c.GetJson({"node", worker})["spec"].value("unschedulable", false), true);
  c.Apply(
      "apiVersion: v1\nkind: Pod\nmetadata:\n  name: probe\nspec:\n  nodeSelector:\n"
      "    kubernetes.io/hostname: " +
      worker + "\n  containers:\n  - name: c\n    image: busybox\n    command: [sleep, '3600']\n");
  ASSERT_TRUE(c.WaitFor([&] {
    Json p = c.GetJson({"pod", "probe"});
    for (const auto& cond : p["status"].value("conditions", Json::array())) {
      if (cond["type"] == "PodScheduled" && cond["status"] == "False") return true;
    }
    return false;
  })) << c.GetJson({"pod", "probe"}).dump(2);
  EXPECT_EQ(c.GetJson({"pod", "probe"})["spec"].value("nodeName", ""), "");

  c.Ok({"uncordon", worker});
  EXPECT_FALSE(c.GetJson({"node", worker})["spec"].value("unschedulable", false));
  ASSERT_TRUE(c.WaitFor([&] {
    return c.GetJson({"pod", "probe"})["spec"].value("nodeName", "") == worker;
  })) << c.GetJson({"pod", "probe"}).dump(2);
  c.Ok({"cordon", worker2});
  EXPECT_EQ(c.GetJson({"node", worker2})["spec"].value("unschedulable", false), true);
  c.Ok({"uncordon", worker2});

  // With a budget that allows it, the eviction goes through.
  c.Ok({"patch", "pdb", "web", "--type=merge", "-p", R"({"spec":{"minAvailable":1}})"});
  ASSERT_TRUE(c.WaitFor([&] {
    return c.GetJson({"pdb", "web"})["status"].value("disruptionsAllowed", -1) == 1;
  })) << c.GetJson({"pdb", "web"}).dump(2);
  CommandResult drain2 = c.Kubectl({"drain", worker2, "--ignore-daemonsets",
                                    "--delete-emptydir-data", "--force", "--timeout=20s"});
  EXPECT_EQ(drain2.status.code, 0) << drain2.out << drain2.err;
  EXPECT_NE(drain2.out.find("pod/web-3 evicted"), std::string::npos) << drain2.out;
  EXPECT_TRUE(c.WaitFor([&] { return c.GetJson({"pod", "web-3"}).is_null(); }));
  c.Ok({"uncordon", worker2});

  // CronJobs and ReplicationControllers are served as kube-apiserver does.
  c.Ok({"create", "cronjob", "tick", "--image=busybox", "--schedule=*/5 * * * *", "--", "true"});
  Json cj = c.GetJson({"cj", "tick"});
  EXPECT_EQ(cj["spec"]["concurrencyPolicy"], "Allow");
  EXPECT_EQ(cj["spec"]["successfulJobsHistoryLimit"], 3);
  EXPECT_EQ(cj["spec"]["failedJobsHistoryLimit"], 1);
  EXPECT_EQ(cj["spec"]["suspend"], false);
  CommandResult bad = c.Kubectl(
      {"create", "cronjob", "bad", "--image=busybox", "--schedule=61 * * * *", "--", "true"});
  EXPECT_NE(bad.status.code, 0);
  EXPECT_NE(bad.err.find("end of range (61) above maximum (59): 61"), std::string::npos) << bad.err;
  c.Apply(R"(apiVersion: v1
kind: ReplicationController
metadata: {name: legacy}
spec:
  replicas: 0
  template:
    metadata: {labels: {app: legacy}}
    spec: {containers: [{name: c, image: busybox}]}
)");
  std::string all = c.Ok({"get", "cj,rc,pdb"});
  for (const char* want : {"cronjob.batch/tick", "*/5 * * * *", "replicationcontroller/legacy",
                           "poddisruptionbudget.policy/web"}) {
    EXPECT_NE(all.find(want), std::string::npos) << want << "\n" << all;
  }
  std::string explain = c.Ok({"explain", "pdb.spec.minAvailable"});
  EXPECT_NE(explain.find("IntOrString"), std::string::npos) << explain;

  EXPECT_TRUE(c.Delete()) << c.last_output();
  EXPECT_EQ(c.Leftovers(), std::vector<std::string>{});
}

}  // namespace
}  // namespace kin
