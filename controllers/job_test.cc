// The Job and TTL-after-finished controllers against a real in-process
// registry (SQLite through LocalClient), with a FakeClock for back-off,
// deadlines and TTLs; the tests play the kubelet by writing pod phases.
#include "controllers/job.h"

#include <gtest/gtest.h>

#include "apiserver/local_client.h"
#include "apiserver/registry.h"
#include "base/error.h"
#include "client/object.h"
#include "controllers/registry_fixture.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin::controllers {
namespace {

using namespace std::chrono_literals;

TEST(JobIndexesTest, FormatAndParse) {
  EXPECT_EQ(FormatIndexes({}), "");
  EXPECT_EQ(FormatIndexes({0}), "0");
  EXPECT_EQ(FormatIndexes({0, 1, 2, 5, 7, 8}), "0-2,5,7-8");
  EXPECT_EQ(ParseIndexes("0-2,5,7-8", 100), (std::set<int64_t>{0, 1, 2, 5, 7, 8}));
  // Past completions (a scaled-down Indexed Job) and junk are dropped.
  EXPECT_EQ(ParseIndexes("1,3-6,x,9-", 5), (std::set<int64_t>{1, 3, 4}));
}

TEST(JobBackoffTest, DoublesUpToTheCap) {
  auto t0 = std::chrono::system_clock::time_point{} + 1000h;
  EXPECT_EQ(PodFailureBackoffRemaining(0, t0, t0, 10s, 10min), 0s);
  EXPECT_EQ(PodFailureBackoffRemaining(1, t0, t0, 10s, 10min), 10s);
  EXPECT_EQ(PodFailureBackoffRemaining(1, t0, t0 + 4s, 10s, 10min), 6s);
  EXPECT_EQ(PodFailureBackoffRemaining(1, t0, t0 + 11s, 10s, 10min), 0s);
  EXPECT_EQ(PodFailureBackoffRemaining(3, t0, t0, 10s, 10min), 40s);
  EXPECT_EQ(PodFailureBackoffRemaining(20, t0, t0, 10s, 10min), 10min);
}

const ResourceInfo& Jobs() { return *FindResource("batch", "v1", "jobs"); }

Json JobManifest(const std::string& name, Json spec_extra = Json::object()) {
  Json spec = {{"template",
                {{"metadata", {{"labels", {{"app", name}}}}},
                 {"spec",
                  {{"restartPolicy", "Never"},
                   {"containers", Json::array({{{"name", "c"}, {"image", "busybox"}}})}}}}}};
  spec.update(spec_extra);
  return {{"apiVersion", "batch/v1"},
          {"kind", "Job"},
          {"metadata", {{"name", name}, {"namespace", "default"}}},
          {"spec", spec}};
}

class JobControllerTest : public RegistryTest {
 protected:
  void SetUp() override {
    informers_ = std::make_unique<SharedInformerFactory>(*client_);
  }
  void TearDown() override {
    ttl_.reset();
    jobs_.reset();
    informers_.reset();
  }

  void StartJobController() {
    JobControllerOptions o;
    o.clock = &clock_;
    jobs_ = std::make_unique<JobController>(*informers_, cl(), o);
    informers_->Start();
    jobs_->Start();
  }
  void StartTtlController() {
    ttl_ = std::make_unique<TtlAfterFinishedController>(*informers_, cl(),
                                                        TtlAfterFinishedOptions{&clock_});
    informers_->Start();
    ttl_->Start();
  }

  // The Job, with an empty status until the controller writes one.
  Json Job(const std::string& name) {
    Json j = cl().Get(Jobs(), "default", name);
    if (!j.contains("status") || !j["status"].is_object()) j["status"] = Json::object();
    return j;
  }
  std::vector<Json> PodsOf(const std::string& job) {
    ListOptions lo;
    lo.label_selector = "batch.kubernetes.io/job-name=" + job;
    std::vector<Json> out;
    Json list = cl().List(PodsResource(), "default", lo);
    for (const auto& p : list["items"]) out.push_back(p);
    return out;
  }
  std::vector<Json> ActivePodsOf(const std::string& job) {
    std::vector<Json> out;
    for (auto& p : PodsOf(job)) {
      std::string phase = p["status"].value("phase", "");
      if (phase != "Succeeded" && phase != "Failed" && !p["metadata"].contains("deletionTimestamp"))
        out.push_back(p);
    }
    return out;
  }
  // The kubelet's part: the pod's containers ended.
  void Finish(const Json& pod, bool ok) {
    std::string now = object::FormatRfc3339(WallClock(clock_).Now());
    Json status = {
        {"phase", ok ? "Succeeded" : "Failed"},
        {"containerStatuses",
         Json::array({{{"name", "c"},
                       {"state",
                        {{"terminated",
                          {{"exitCode", ok ? 0 : 1}, {"finishedAt", now}}}}}}})}};
    cl().Patch(PodsResource(), "default", pod["metadata"]["name"], PatchType::kMerge,
               {{"status", status}}, "status");
  }
  std::string Condition(const Json& job, const std::string& type, const char* field = "status") {
    for (const auto& c : job["status"].value("conditions", Json::array())) {
      if (c["type"] == type) return c.value(field, "");
    }
    return "";
  }
  std::vector<std::string> EventReasons(const std::string& job) {
    std::vector<std::string> out;
    Json list = cl().List(EventsResource(), "default");
    for (const auto& e : list["items"]) {
      if (e["involvedObject"].value("name", "") == job) out.push_back(e.value("reason", ""));
    }
    return out;
  }
  size_t Count(const std::vector<std::string>& v, const std::string& s) {
    return static_cast<size_t>(std::count(v.begin(), v.end(), s));
  }
  // Polls, moving the fake clock on a little each time, so that retries
  // with back-off (e.g. after a write conflict) are not held up.
  bool Until(const std::function<bool()>& cond) {
    return testing::Eventually([&] {
      clock_.Advance(1ms);
      return cond();
    });
  }
  bool HasFinalizer(const Json& pod) {
    for (const auto& f : pod["metadata"].value("finalizers", Json::array())) {
      if (f == kJobTrackingFinalizer) return true;
    }
    return false;
  }

  FakeClock clock_;
  std::unique_ptr<SharedInformerFactory> informers_;
  std::unique_ptr<JobController> jobs_;
  std::unique_ptr<TtlAfterFinishedController> ttl_;
};

TEST_F(JobControllerTest, RunsCompletionsWithParallelismAndCompletes) {
  StartJobController();
  Json job = cl().Create(Jobs(), "default", JobManifest("pi", {{"completions", 3}, {"parallelism", 2}}));
  std::string uid = job["metadata"]["uid"];
  ASSERT_TRUE(Until([&] { return PodsOf("pi").size() == 2; }));
  for (const auto& p : PodsOf("pi")) {
    const Json& m = p["metadata"];
    EXPECT_EQ(m["labels"]["app"], "pi");
    EXPECT_EQ(m["labels"]["batch.kubernetes.io/job-name"], "pi");
    EXPECT_EQ(m["labels"]["job-name"], "pi");
    EXPECT_EQ(m["labels"]["batch.kubernetes.io/controller-uid"], uid);
    EXPECT_EQ(m["labels"]["controller-uid"], uid);
    EXPECT_EQ(m["generateName"], "pi-");
    EXPECT_TRUE(HasFinalizer(p));
    ASSERT_EQ(m["ownerReferences"].size(), 1u);
    EXPECT_EQ(m["ownerReferences"][0]["kind"], "Job");
    EXPECT_EQ(m["ownerReferences"][0]["uid"], uid);
    EXPECT_EQ(m["ownerReferences"][0]["controller"], true);
  }
  ASSERT_TRUE(Until([&] { return Job("pi")["status"].value("active", 0) == 2; }));
  EXPECT_TRUE(Job("pi")["status"].contains("startTime"));

  Finish(PodsOf("pi")[0], true);
  // One succeeded, counted once; a third pod replaces it (parallelism 2,
  // one completion left beside the running pod).
  ASSERT_TRUE(Until([&] {
    Json s = Job("pi")["status"];
    return s.value("succeeded", 0) == 1 && PodsOf("pi").size() == 3 && s.value("active", 0) == 2;
  })) << Job("pi").dump(2);
  for (const auto& p : ActivePodsOf("pi")) Finish(p, true);
  ASSERT_TRUE(Until([&] { return Condition(Job("pi"), "Complete") == "True"; })) << Job("pi").dump(2);
  Json done = Job("pi");
  EXPECT_EQ(done["status"].value("succeeded", 0), 3);
  EXPECT_FALSE(done["status"].contains("failed"));
  EXPECT_FALSE(done["status"].contains("active"));
  EXPECT_EQ(done["status"]["uncountedTerminatedPods"], Json::object());
  EXPECT_TRUE(done["status"].contains("completionTime"));
  EXPECT_EQ(Condition(done, "SuccessCriteriaMet"), "True");
  EXPECT_EQ(Condition(done, "Complete", "reason"), "CompletionsReached");
  EXPECT_EQ(Condition(done, "Complete", "message"), "Reached expected number of succeeded pods");
  EXPECT_EQ(PodsOf("pi").size(), 3u);
  // Every finished pod was counted and released.
  ASSERT_TRUE(Until([&] {
    for (const auto& p : PodsOf("pi")) {
      if (HasFinalizer(p)) return false;
    }
    return true;
  }));
  ASSERT_TRUE(Until([&] {
    auto r = EventReasons("pi");
    return Count(r, "SuccessfulCreate") == 3 && Count(r, "Completed") == 1;
  }));
  // A finished Job is left alone: no more writes.
  std::string rv = Job("pi")["metadata"]["resourceVersion"];
  cl().Patch(PodsResource(), "default", PodsOf("pi")[0]["metadata"]["name"], PatchType::kMerge,
             {{"metadata", {{"labels", {{"touched", "yes"}}}}}});  // wakes the controller
  // Once a later Job has been handled, the touched pod's event has been too.
  cl().Create(Jobs(), "default", JobManifest("marker"));
  ASSERT_TRUE(Until([&] { return PodsOf("marker").size() == 1; }));
  EXPECT_EQ(Job("pi")["metadata"]["resourceVersion"], rv);
}

TEST_F(JobControllerTest, BacksOffAfterFailuresAndStopsAtBackoffLimit) {
  StartJobController();
  cl().Create(Jobs(), "default", JobManifest("flaky", {{"backoffLimit", 1}}));
  ASSERT_TRUE(Until([&] { return PodsOf("flaky").size() == 1; }));
  Finish(PodsOf("flaky")[0], false);
  ASSERT_TRUE(Until([&] {
    Json j = Job("flaky");
    return j["status"].value("failed", 0) == 1 && !HasFinalizer(PodsOf("flaky")[0]);
  }));
  // Within the 10 s back-off no new pod comes.
  EXPECT_EQ(PodsOf("flaky").size(), 1u);
  EXPECT_EQ(Condition(Job("flaky"), "Failed"), "");
  clock_.Advance(10s);
  ASSERT_TRUE(Until([&] { return PodsOf("flaky").size() == 2; }));
  for (const auto& p : ActivePodsOf("flaky")) Finish(p, false);
  ASSERT_TRUE(Until([&] { return Condition(Job("flaky"), "Failed") == "True"; }))
      << Job("flaky").dump(2);
  Json j = Job("flaky");
  EXPECT_EQ(j["status"].value("failed", 0), 2);
  EXPECT_EQ(Condition(j, "Failed", "reason"), "BackoffLimitExceeded");
  EXPECT_EQ(Condition(j, "Failed", "message"), "Job has reached the specified backoff limit");
  EXPECT_EQ(Condition(j, "FailureTarget", "reason"), "BackoffLimitExceeded");
  EXPECT_FALSE(j["status"].contains("completionTime"));
  ASSERT_TRUE(Until([&] { return Count(EventReasons("flaky"), "BackoffLimitExceeded") == 1; }));
  // No more pods, whatever time passes.
  clock_.Advance(10min);
  EXPECT_EQ(PodsOf("flaky").size(), 2u);
}

TEST_F(JobControllerTest, IndexedJobGivesEachPodItsIndex) {
  StartJobController();
  cl().Create(Jobs(), "default",
              JobManifest("idx", {{"completions", 3}, {"parallelism", 3}, {"completionMode", "Indexed"}}));
  ASSERT_TRUE(Until([&] { return PodsOf("idx").size() == 3; }));
  std::set<std::string> indexes;
  for (const auto& p : PodsOf("idx")) {
    std::string ix = p["metadata"]["annotations"][kJobCompletionIndexAnnotation];
    indexes.insert(ix);
    EXPECT_EQ(p["metadata"]["labels"][kJobCompletionIndexAnnotation], ix);
    EXPECT_EQ(p["spec"]["hostname"], "idx-" + ix);
    EXPECT_EQ(p["metadata"]["generateName"], "idx-" + ix + "-");
    Json env = p["spec"]["containers"][0]["env"];
    ASSERT_EQ(env.size(), 1u) << p.dump(2);
    EXPECT_EQ(env[0]["name"], "JOB_COMPLETION_INDEX");
    EXPECT_EQ(env[0]["valueFrom"]["fieldRef"]["fieldPath"],
              "metadata.annotations['batch.kubernetes.io/job-completion-index']");
  }
  EXPECT_EQ(indexes, (std::set<std::string>{"0", "1", "2"}));
  auto pod_with_index = [&](const std::string& ix) {
    for (const auto& p : ActivePodsOf("idx")) {
      if (p["metadata"]["annotations"][kJobCompletionIndexAnnotation] == ix) return p;
    }
    return Json();
  };
  Finish(pod_with_index("1"), true);
  ASSERT_TRUE(Until([&] { return Job("idx")["status"].value("completedIndexes", "") == "1"; }));
  // A failed index is retried with a new pod of the same index.
  Finish(pod_with_index("0"), false);
  clock_.Advance(10s);
  ASSERT_TRUE(Until([&] { return !pod_with_index("0").is_null(); }));
  Finish(pod_with_index("0"), true);
  Finish(pod_with_index("2"), true);
  ASSERT_TRUE(Until([&] { return Condition(Job("idx"), "Complete") == "True"; }));
  Json j = Job("idx");
  EXPECT_EQ(j["status"]["completedIndexes"], "0-2");
  EXPECT_EQ(j["status"].value("succeeded", 0), 3);
  EXPECT_EQ(j["status"].value("failed", 0), 1);
}

TEST_F(JobControllerTest, ActiveDeadlineFailsTheJobAndStopsItsPods) {
  StartJobController();
  cl().Create(Jobs(), "default",
              JobManifest("slow", {{"parallelism", 2}, {"completions", 4}, {"activeDeadlineSeconds", 30}}));
  ASSERT_TRUE(Until([&] { return PodsOf("slow").size() == 2; }));
  EXPECT_EQ(Condition(Job("slow"), "Failed"), "");
  clock_.Advance(31s);
  // The running pods are deleted; once they are gone the Job has failed.
  ASSERT_TRUE(Until([&] { return Condition(Job("slow"), "Failed") == "True"; }))
      << Job("slow").dump(2);
  Json j = Job("slow");
  EXPECT_EQ(Condition(j, "Failed", "reason"), "DeadlineExceeded");
  EXPECT_EQ(Condition(j, "Failed", "message"), "Job was active longer than specified deadline");
  EXPECT_EQ(j["status"].value("failed", 0), 2);
  EXPECT_EQ(j["status"].value("active", 0), 0);
  ASSERT_TRUE(Until([&] { return PodsOf("slow").empty(); }));
  ASSERT_TRUE(Until([&] { return Count(EventReasons("slow"), "DeadlineExceeded") == 1; }));
  ASSERT_TRUE(Until([&] { return Count(EventReasons("slow"), "SuccessfulDelete") == 2; }));
}

TEST_F(JobControllerTest, SuspendAndResume) {
  StartJobController();
  cl().Create(Jobs(), "default", JobManifest("later", {{"suspend", true}, {"parallelism", 2}, {"completions", 2}}));
  ASSERT_TRUE(Until([&] { return Condition(Job("later"), "Suspended") == "True"; }));
  Json j = Job("later");
  EXPECT_EQ(Condition(j, "Suspended", "reason"), "JobSuspended");
  EXPECT_FALSE(j["status"].contains("startTime"));
  EXPECT_TRUE(PodsOf("later").empty());
  cl().Patch(Jobs(), "default", "later", PatchType::kMerge, {{"spec", {{"suspend", false}}}});
  ASSERT_TRUE(Until([&] {
    return Condition(Job("later"), "Suspended") == "False" && PodsOf("later").size() == 2;
  }));
  EXPECT_EQ(Condition(Job("later"), "Suspended", "reason"), "JobResumed");
  EXPECT_TRUE(Job("later")["status"].contains("startTime"));
  // Suspending again removes the running pods without counting them failed.
  cl().Patch(Jobs(), "default", "later", PatchType::kMerge, {{"spec", {{"suspend", true}}}});
  ASSERT_TRUE(Until([&] { return ActivePodsOf("later").empty() && Condition(Job("later"), "Suspended") == "True"; }));
  EXPECT_FALSE(Job("later")["status"].contains("failed"));
  auto r = EventReasons("later");
  EXPECT_GE(Count(r, "Suspended"), 1u);
  EXPECT_EQ(Count(r, "Resumed"), 1u);
}

TEST_F(JobControllerTest, APodDeletedWhileRunningCountsAsFailedAndIsReplaced) {
  StartJobController();
  cl().Create(Jobs(), "default", JobManifest("del"));
  ASSERT_TRUE(Until([&] { return PodsOf("del").size() == 1; }));
  std::string first = PodsOf("del")[0]["metadata"]["name"];
  cl().Delete(PodsResource(), "default", first);
  // The finalizer kept it until counted; then it goes.
  ASSERT_TRUE(Until([&] { return Job("del")["status"].value("failed", 0) == 1; }));
  ASSERT_TRUE(Until([&] {
    auto pods = PodsOf("del");
    return std::none_of(pods.begin(), pods.end(),
                        [&](const Json& p) { return p["metadata"]["name"] == first; });
  }));
  clock_.Advance(10s);
  ASSERT_TRUE(Until([&] { return ActivePodsOf("del").size() == 1; }));
}

TEST_F(JobControllerTest, DeletedJobReleasesItsPods) {
  StartJobController();
  cl().Create(Jobs(), "default", JobManifest("gone"));
  ASSERT_TRUE(Until([&] { return PodsOf("gone").size() == 1; }));
  DeleteOptions orphan;
  orphan.propagation_policy = "Orphan";
  cl().Delete(Jobs(), "default", "gone", orphan);
  // The orphan finalizer belongs to the garbage collector; play it here.
  cl().Patch(Jobs(), "default", "gone", PatchType::kMerge, {{"metadata", {{"finalizers", nullptr}}}});
  ASSERT_TRUE(Until([&] {
    auto pods = PodsOf("gone");
    return pods.size() == 1 && !HasFinalizer(pods[0]);
  }));
}

TEST_F(JobControllerTest, TtlAfterFinishedDeletesTheJobWhenItsTimeComes) {
  StartJobController();
  StartTtlController();
  cl().Create(Jobs(), "default", JobManifest("short", {{"ttlSecondsAfterFinished", 60}}));
  ASSERT_TRUE(Until([&] { return PodsOf("short").size() == 1; }));
  Finish(PodsOf("short")[0], true);
  ASSERT_TRUE(Until([&] { return Condition(Job("short"), "Complete") == "True"; }));
  clock_.Advance(30s);
  // Not yet: half the TTL.
  EXPECT_NO_THROW(Job("short"));
  clock_.Advance(31s);
  ASSERT_TRUE(Until([&] {
    try {
      Job("short");
      return false;
    } catch (const Error& e) {
      return e.code() == Code::kNotFound;
    }
  }));
}

}  // namespace
}  // namespace kin::controllers
