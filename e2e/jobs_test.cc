// e2e: Jobs and CronJobs on a real two-node cluster with real kubectl 1.33
// and busybox pods. A Job with completions 3 / parallelism 2 completes
// (`kubectl wait --for=condition=complete` returns, `kubectl get job` says
// 3/3); a Job whose pods exit 1 stops at backoffLimit 1 with condition
// Failed, reason BackoffLimitExceeded; an Indexed Job's pods see their
// JOB_COMPLETION_INDEX; a CronJob "* * * * *" starts a Job at the next
// minute, and `kubectl create job --from=cronjob/...` works; deleting
// everything leaves nothing behind.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "base/yaml.h"
#include "testing/e2e_cluster.h"
#include "testing/kernel_fixture.h"

namespace kin {
namespace {

using Cluster = testing::E2eCluster;
using namespace std::chrono_literals;

std::string JobYaml(const std::string& name, const std::string& spec, const std::string& script) {
  return "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: " + name + "\nspec:\n" + spec +
         "  template:\n    spec:\n      restartPolicy: Never\n"
         "      terminationGracePeriodSeconds: 1\n      containers:\n      - name: c\n"
         "        image: busybox\n        command: [sh, -c, '" +
         script + "']\n";
}

std::string Condition(const Json& job, const std::string& type, const char* field = "status") {
  if (!job.is_object() || !job.contains("status")) return "";
  for (const auto& c : job["status"].value("conditions", Json::array())) {
    if (c.value("type", "") == type) return c.value(field, "");
  }
  return "";
}

class JobsE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::RequireRoot()) GTEST_SKIP() << "needs root";
  }
};

TEST_F(JobsE2E, JobsCompleteFailAndIndexAndCronJobsFire) {
  Cluster c('j');
  ASSERT_TRUE(c.Create({"--nodes", "2"})) << c.last_output();

  // The CronJob first: its next minute runs while the rest goes on.
  c.Apply(R"(apiVersion: batch/v1
kind: CronJob
metadata:
  name: tick
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 1
          containers:
          - name: c
            image: busybox
            command: [sh, -c, 'echo tick']
)");

  // completions 3, parallelism 2.
  c.Apply(JobYaml("pi", "  completions: 3\n  parallelism: 2\n", "echo done"));
  // A Job whose pods fail.
  c.Apply(JobYaml("flaky", "  backoffLimit: 1\n", "exit 1"));
  // An Indexed Job.
  c.Apply(JobYaml("idx", "  completions: 3\n  parallelism: 3\n  completionMode: Indexed\n",
                  "echo index=$JOB_COMPLETION_INDEX"));

  c.Ok({"wait", "--for=condition=complete", "job/pi", "--timeout=60s"});
  std::string table = c.Ok({"get", "job", "pi"});
  EXPECT_NE(table.find("3/3"), std::string::npos) << table;
  Json pi = c.GetJson({"job", "pi"});
  EXPECT_EQ(pi["status"].value("succeeded", 0), 3) << pi.dump(2);
  EXPECT_TRUE(pi["status"].contains("completionTime"));
  // Its pods carry the Job's labels and were released by the controller.
  Json pods = c.GetJson({"pods", "-l", "batch.kubernetes.io/job-name=pi"});
  ASSERT_EQ(pods["items"].size(), 3u) << pods.dump(2);
  for (const auto& p : pods["items"]) {
    EXPECT_EQ(p["metadata"]["labels"].value("job-name", ""), "pi");
    EXPECT_EQ(p["status"].value("phase", ""), "Succeeded");
    for (const auto& f : p["metadata"].value("finalizers", Json::array())) {
      EXPECT_NE(f, "batch.kubernetes.io/job-tracking") << p["metadata"].dump(2);
    }
  }

  c.Ok({"wait", "--for=condition=complete", "job/idx", "--timeout=60s"});
  Json idx = c.GetJson({"job", "idx"});
  EXPECT_EQ(idx["status"].value("completedIndexes", ""), "0-2");
  std::set<std::string> seen;
  Json ipods = c.GetJson({"pods", "-l", "batch.kubernetes.io/job-name=idx"});
  for (const auto& p : ipods["items"]) {
    std::string log = c.Ok({"logs", p["metadata"]["name"].get<std::string>()});
    std::string ix =
        p["metadata"]["annotations"].value("batch.kubernetes.io/job-completion-index", "");
    EXPECT_EQ(log, "index=" + ix + "\n");
    seen.insert(ix);
  }
  EXPECT_EQ(seen, (std::set<std::string>{"0", "1", "2"}));

  // The failing Job: one pod, the 10 s back-off, a second pod, then Failed.
  ASSERT_TRUE(Cluster::WaitFor(
      [&] { return Condition(c.GetJson({"job", "flaky"}), "Failed") == "True"; }, 90s))
      << c.GetJson({"job", "flaky"}).dump(2) << c.Log();
  Json flaky = c.GetJson({"job", "flaky"});
  EXPECT_EQ(Condition(flaky, "Failed", "reason"), "BackoffLimitExceeded");
  EXPECT_EQ(flaky["status"].value("failed", 0), 2);
  std::string described = c.Ok({"describe", "job", "flaky"});
  EXPECT_NE(described.find("BackoffLimitExceeded"), std::string::npos) << described;

  // The CronJob has fired by the next minute (plus a little).
  ASSERT_TRUE(Cluster::WaitFor(
      [&] {
        Json jobs = c.GetJson({"jobs"});
        for (const auto& j : jobs["items"]) {
          for (const auto& r : j["metadata"].value("ownerReferences", Json::array())) {
            if (r.value("kind", "") == "CronJob" && r.value("name", "") == "tick") return true;
          }
        }
        return false;
      },
      75s))
      << c.Ok({"get", "jobs,cronjobs"}) << c.Log();
  Json tick = c.GetJson({"cronjob", "tick"});
  EXPECT_TRUE(tick["status"].contains("lastScheduleTime")) << tick.dump(2);
  // kubectl makes a Job from the CronJob's template itself.
  c.Ok({"create", "job", "--from=cronjob/tick", "by-hand"});
  c.Ok({"wait", "--for=condition=complete", "job/by-hand", "--timeout=60s"});

  c.Ok({"delete", "cronjob", "tick"});
  c.Ok({"delete", "jobs", "--all"});
  ASSERT_TRUE(c.Delete()) << c.last_output();
  EXPECT_EQ(c.Leftovers(), std::vector<std::string>{});
}

}  // namespace
}  // namespace kin
