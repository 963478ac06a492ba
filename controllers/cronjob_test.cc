// The CronJob controller: its schedule arithmetic, concurrency and history
// decisions as pure functions, then the controller against a real
// in-process registry with a FakeClock driving the schedule (the tests play
// the Job controller by writing Job conditions).
#include "controllers/cronjob.h"

#include <gtest/gtest.h>

#include "apiserver/local_client.h"
#include "apiserver/registry.h"
#include "base/error.h"
#include "client/object.h"
#include "controllers/registry_fixture.h"
#include "controllers/job.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin::controllers {
namespace {

using namespace std::chrono_literals;
using cronjob::TimePoint;

TimePoint At(const std::string& s) { return object::ParseRfc3339(s).value(); }
std::string Fmt(std::optional<TimePoint> t) { return t ? object::FormatRfc3339(*t) : "none"; }

CronSchedule Sched(const std::string& spec) {
  std::string err;
  auto s = CronSchedule::Parse(spec, &err);
  EXPECT_TRUE(s) << err;
  return s.value_or(*CronSchedule::Parse("* * * * *"));
}

Json CronJob(const std::string& created, Json spec_extra = Json::object(),
             Json status = Json::object()) {
  Json spec = {{"schedule", "* * * * *"}};
  spec.update(spec_extra);
  return {{"metadata", {{"name", "cj"}, {"namespace", "default"}, {"uid", "u1"},
                        {"creationTimestamp", created}}},
          {"spec", spec},
          {"status", status}};
}

TEST(CronJobScheduleTest, MostRecentScheduleTime) {
  auto s = Sched("* * * * *");
  Json cj = CronJob("2024-05-01T10:00:30Z");
  // Nothing due yet.
  auto r = cronjob::NextScheduleTime(cj, At("2024-05-01T10:00:50Z"), s);
  EXPECT_EQ(Fmt(r.most_recent), "none");
  EXPECT_EQ(r.missed, 0);
  r = cronjob::NextScheduleTime(cj, At("2024-05-01T10:01:10Z"), s);
  EXPECT_EQ(Fmt(r.most_recent), "2024-05-01T10:01:00Z");
  EXPECT_EQ(r.missed, 1);
  // Several missed: only the latest is run.
  r = cronjob::NextScheduleTime(cj, At("2024-05-01T10:05:10Z"), s);
  EXPECT_EQ(Fmt(r.most_recent), "2024-05-01T10:05:00Z");
  EXPECT_EQ(r.missed, 5);
  // lastScheduleTime counts from there.
  cj["status"]["lastScheduleTime"] = "2024-05-01T10:05:00Z";
  r = cronjob::NextScheduleTime(cj, At("2024-05-01T10:05:30Z"), s);
  EXPECT_EQ(Fmt(r.most_recent), "none");
}

TEST(CronJobScheduleTest, UnevenSchedules) {
  // Weekdays at 06:30, 10:30 and 14:30; 2024-05-03 is a Friday.
  auto s = Sched("30 6-16/4 * * 1-5");
  Json cj = CronJob("2024-05-01T00:00:00Z");
  auto r = cronjob::NextScheduleTime(cj, At("2024-05-06T07:00:00Z"), s);  // Monday
  EXPECT_EQ(Fmt(r.most_recent), "2024-05-06T06:30:00Z");
  EXPECT_GT(r.missed, 1);
}

TEST(CronJobScheduleTest, StartingDeadlineAndTooManyMissed) {
  auto s = Sched("* * * * *");
  Json cj = CronJob("2024-05-01T00:00:00Z");
  TimePoint now = At("2024-05-03T00:00:30Z");
  auto r = cronjob::NextScheduleTime(cj, now, s);
  EXPECT_GT(r.missed, 100);  // two days of minutes: reported as too many
  EXPECT_EQ(Fmt(r.most_recent), "2024-05-03T00:00:00Z");
  // With a deadline only the window counts.
  cj["spec"]["startingDeadlineSeconds"] = 200;
  r = cronjob::NextScheduleTime(cj, now, s);
  EXPECT_LE(r.missed, 4);
  EXPECT_EQ(Fmt(r.most_recent), "2024-05-03T00:00:00Z");
  EXPECT_FALSE(cronjob::TooLate(cj, At("2024-05-03T00:00:00Z"), now));
  cj["spec"]["startingDeadlineSeconds"] = 10;
  EXPECT_TRUE(cronjob::TooLate(cj, At("2024-05-03T00:00:00Z"), now));
  // No start time within the deadline window at all.
  cj["spec"]["startingDeadlineSeconds"] = 20;
  r = cronjob::NextScheduleTime(cj, now, s);
  EXPECT_EQ(Fmt(r.most_recent), "none");
}

TEST(CronJobScheduleTest, NextScheduleDelay) {
  auto s = Sched("*/5 * * * *");
  Json cj = CronJob("2024-05-01T10:00:30Z");
  EXPECT_EQ(cronjob::NextScheduleDelay(cj, At("2024-05-01T10:01:00Z"), s), 4min + 100ms);
  cj["status"]["lastScheduleTime"] = "2024-05-01T10:05:00Z";
  EXPECT_EQ(cronjob::NextScheduleDelay(cj, At("2024-05-01T10:06:00Z"), s), 4min + 100ms);
  // Impossible schedules look again in a day rather than spin.
  EXPECT_EQ(cronjob::NextScheduleDelay(cj, At("2024-05-01T10:06:00Z"), Sched("0 0 30 2 *")), 24h);
  auto r = cronjob::NextScheduleTime(cj, At("2024-05-01T10:06:00Z"), Sched("0 0 30 2 *"));
  EXPECT_EQ(r.error, "time difference between two schedules is less than 1 second");
}

TEST(CronJobTemplateTest, JobNameAnnotationsAndOwner) {
  Json cj = CronJob("2024-05-01T00:00:00Z");
  cj["spec"]["jobTemplate"] = {
      {"metadata", {{"labels", {{"team", "a"}}}, {"annotations", {{"note", "x"}}}}},
      {"spec", {{"backoffLimit", 2}, {"template", {{"spec", {{"restartPolicy", "Never"}}}}}}}};
  TimePoint t = At("2024-05-01T10:01:00Z");
  EXPECT_EQ(cronjob::JobName("cj", t), "cj-28575961");
  Json job = cronjob::JobFromTemplate(cj, t, TimeZone());
  EXPECT_EQ(job["metadata"]["name"], "cj-28575961");
  EXPECT_EQ(job["metadata"]["labels"], (Json{{"team", "a"}}));
  EXPECT_EQ(job["metadata"]["annotations"],
            (Json{{"note", "x"}, {kCronJobScheduledTimestampAnnotation, "2024-05-01T10:01:00Z"}}));
  EXPECT_EQ(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");
  EXPECT_EQ(job["metadata"]["ownerReferences"][0]["uid"], "u1");
  EXPECT_EQ(job["metadata"]["ownerReferences"][0]["controller"], true);
  EXPECT_EQ(job["spec"]["backoffLimit"], 2);
  auto berlin = TimeZone::Load("Europe/Berlin");
  ASSERT_TRUE(berlin);
  EXPECT_EQ(cronjob::FormatInZone(t, *berlin), "2024-05-01T12:01:00+02:00");
  auto ny = TimeZone::Load("America/New_York");
  EXPECT_EQ(cronjob::FormatInZone(t, *ny), "2024-05-01T06:01:00-04:00");
}

TEST(CronJobDecisionTest, ConcurrencyPolicy) {
  using cronjob::Concurrency;
  EXPECT_EQ(cronjob::Decide("Allow", 0), Concurrency::kStart);
  EXPECT_EQ(cronjob::Decide("Allow", 2), Concurrency::kStart);
  EXPECT_EQ(cronjob::Decide("Forbid", 0), Concurrency::kStart);
  EXPECT_EQ(cronjob::Decide("Forbid", 1), Concurrency::kSkip);
  EXPECT_EQ(cronjob::Decide("Replace", 0), Concurrency::kStart);
  EXPECT_EQ(cronjob::Decide("Replace", 1), Concurrency::kReplace);
}

Json FinishedJob(const std::string& name, const std::string& type, const std::string& start) {
  Json j = {{"metadata", {{"name", name}}},
            {"status", {{"conditions", Json::array({{{"type", type}, {"status", "True"}}})}}}};
  if (!start.empty()) j["status"]["startTime"] = start;
  return j;
}

TEST(CronJobDecisionTest, HistoryLimitsKeepTheNewest) {
  std::vector<Json> jobs = {
      FinishedJob("s3", "Complete", "2024-05-01T10:03:00Z"),
      FinishedJob("s1", "Complete", "2024-05-01T10:01:00Z"),
      FinishedJob("s2", "Complete", "2024-05-01T10:02:00Z"),
      FinishedJob("f1", "Failed", "2024-05-01T10:01:30Z"),
      FinishedJob("f2", "Failed", "2024-05-01T10:02:30Z"),
      {{"metadata", {{"name", "running"}}}, {"status", Json::object()}},
  };
  EXPECT_EQ(cronjob::JobsBeyondHistory(jobs, 1, 1), (std::vector<std::string>{"s1", "s2", "f1"}));
  EXPECT_EQ(cronjob::JobsBeyondHistory(jobs, 3, 0), (std::vector<std::string>{"f1", "f2"}));
  EXPECT_EQ(cronjob::JobsBeyondHistory(jobs, std::nullopt, std::nullopt),
            std::vector<std::string>{});
}

TEST(CronJobScheduleTest, BadSchedulesAndZonesAreReportedAsUpstreamDoes) {
  std::string reason, message;
  Json cj = CronJob("2024-05-01T00:00:00Z", {{"timeZone", "Mars/Olympus"}});
  EXPECT_FALSE(cronjob::ScheduleOf(cj, &reason, &message));
  EXPECT_EQ(reason, "UnknownTimeZone");
  EXPECT_EQ(message, "invalid timeZone: \"Mars/Olympus\": unknown time zone Mars/Olympus");
  cj = CronJob("2024-05-01T00:00:00Z", {{"schedule", "* * *"}});
  EXPECT_FALSE(cronjob::ScheduleOf(cj, &reason, &message));
  EXPECT_EQ(reason, "UnparseableSchedule");
  EXPECT_EQ(message, "unparseable schedule: \"* * *\" : expected exactly 5 fields, found 3: [* * *]");
  cj = CronJob("2024-05-01T00:00:00Z", {{"schedule", "0 9 * * *"}, {"timeZone", "Europe/Berlin"}});
  auto s = cronjob::ScheduleOf(cj, &reason, &message);
  ASSERT_TRUE(s);
  EXPECT_EQ(Fmt(s->Next(At("2024-05-01T10:00:00Z"))), "2024-05-02T07:00:00Z");
}

// --- the controller against the registry ---

const ResourceInfo& CronJobs() { return *FindResource("batch", "v1", "cronjobs"); }
const ResourceInfo& Jobs() { return *FindResource("batch", "v1", "jobs"); }

Json CronJobManifest(const std::string& name, Json spec_extra = Json::object()) {
  Json spec = {{"schedule", "* * * * *"},
               {"jobTemplate",
                {{"metadata", {{"labels", {{"from", name}}}}},
                 {"spec",
                  {{"template",
                    {{"spec",
                      {{"restartPolicy", "Never"},
                       {"containers",
                        Json::array({{{"name", "c"}, {"image", "busybox"}}})}}}}}}}}}};
  spec.update(spec_extra);
  return {{"apiVersion", "batch/v1"},
          {"kind", "CronJob"},
          {"metadata", {{"name", name}, {"namespace", "default"}}},
          {"spec", spec}};
}

class CronJobControllerTest : public RegistryTest {
 protected:
  void SetUp() override {
    informers_ = std::make_unique<SharedInformerFactory>(*client_);
    controller_ = std::make_unique<CronJobController>(*informers_, *client_,
                                                      CronJobControllerOptions{&clock_});
    informers_->Start();
    controller_->Start();
  }
  void TearDown() override {
    controller_.reset();
    informers_.reset();
  }

  Json Get(const std::string& name) {
    Json j = cl().Get(CronJobs(), "default", name);
    if (!j.contains("status") || !j["status"].is_object()) j["status"] = Json::object();
    return j;
  }
  std::vector<Json> JobsOf(const std::string& cj) {
    std::vector<Json> out;
    Json list = cl().List(Jobs(), "default");
    for (const auto& j : list["items"]) {
      for (const auto& r : j["metadata"].value("ownerReferences", Json::array())) {
        if (r["name"] == cj) out.push_back(j);
      }
    }
    return out;
  }
  // Plays the Job controller: the Job finished.
  void FinishJob(const std::string& name, const std::string& type) {
    std::string now = object::FormatRfc3339(WallClock(clock_).Now());
    Json status = {{"startTime", now},
                   {"conditions", Json::array({{{"type", type},
                                                {"status", "True"},
                                                {"lastTransitionTime", now}}})}};
    if (type == "Complete") status["completionTime"] = now;
    cl().Patch(Jobs(), "default", name, PatchType::kMerge, {{"status", status}}, "status");
  }
  std::vector<std::string> EventReasons(const std::string& name) {
    std::vector<std::string> out;
    Json list = cl().List(EventsResource(), "default");
    for (const auto& e : list["items"]) {
      if (e["involvedObject"].value("name", "") == name) out.push_back(e.value("reason", ""));
    }
    return out;
  }
  size_t Count(const std::vector<std::string>& v, const std::string& s) {
    return static_cast<size_t>(std::count(v.begin(), v.end(), s));
  }
  bool Until(const std::function<bool()>& cond) {
    return testing::Eventually([&] {
      clock_.Advance(1ms);
      return cond();
    });
  }
  // Moves the clock past the next minute and waits for `jobs` Jobs.
  ::testing::AssertionResult NextMinute(const std::string& cj, size_t jobs) {
    clock_.Advance(60s);
    if (Until([&] { return JobsOf(cj).size() == jobs; })) return ::testing::AssertionSuccess();
    auto out = ::testing::AssertionFailure() << Get(cj).dump() << " "
                                             << ::testing::PrintToString(EventReasons(cj)) << " now "
                                             << object::FormatRfc3339(std::chrono::system_clock::now());
    for (const auto& j : JobsOf(cj)) out << "\n" << j["metadata"]["name"];
    return out;
  }

  FakeClock clock_;
  std::unique_ptr<SharedInformerFactory> informers_;
  std::unique_ptr<CronJobController> controller_;
};

TEST_F(CronJobControllerTest, StartsAJobEachMinuteAndTracksIt) {
  cl().Create(CronJobs(), "default", CronJobManifest("tick"));
  // Nothing before the first scheduled time, whatever the controller does meanwhile.
  ASSERT_TRUE(Until([&] { return Count(EventReasons("tick"), "SuccessfulCreate") == 0; }));
  EXPECT_TRUE(JobsOf("tick").empty());
  ASSERT_TRUE(NextMinute("tick", 1));
  Json job = JobsOf("tick")[0];
  std::string name = job["metadata"]["name"];
  std::string stamp = job["metadata"]["annotations"][kCronJobScheduledTimestampAnnotation];
  auto scheduled = object::ParseRfc3339(stamp);
  ASSERT_TRUE(scheduled) << stamp;
  EXPECT_EQ(name, cronjob::JobName("tick", *scheduled));
  EXPECT_EQ(std::chrono::floor<std::chrono::seconds>(scheduled->time_since_epoch()).count() % 60, 0);
  EXPECT_EQ(job["metadata"]["labels"]["from"], "tick");
  EXPECT_EQ(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");
  ASSERT_TRUE(Until([&] {
    Json s = Get("tick")["status"];
    return s.value("active", Json::array()).size() == 1 && s.value("lastScheduleTime", "") == stamp;
  })) << Get("tick").dump(2);
  EXPECT_EQ(Get("tick")["status"]["active"][0]["name"], name);
  ASSERT_TRUE(Until([&] { return Count(EventReasons("tick"), "SuccessfulCreate") == 1; }));

  FinishJob(name, "Complete");
  ASSERT_TRUE(Until([&] {
    Json s = Get("tick")["status"];
    return !s.contains("active") && s.contains("lastSuccessfulTime");
  })) << Get("tick").dump(2);
  ASSERT_TRUE(Until([&] { return Count(EventReasons("tick"), "SawCompletedJob") == 1; }));
  // The next minute, the next Job (Allow: side by side with nothing).
  ASSERT_TRUE(NextMinute("tick", 2));
}

TEST_F(CronJobControllerTest, ForbidSkipsWhileAJobRuns) {
  cl().Create(CronJobs(), "default", CronJobManifest("solo", {{"concurrencyPolicy", "Forbid"}}));
  ASSERT_TRUE(NextMinute("solo", 1));
  std::string first = JobsOf("solo")[0]["metadata"]["name"];
  ASSERT_TRUE(Until([&] { return Get("solo")["status"].value("active", Json::array()).size() == 1; }));
  clock_.Advance(60s);
  ASSERT_TRUE(Until([&] { return Count(EventReasons("solo"), "JobAlreadyActive") >= 1; }));
  EXPECT_EQ(JobsOf("solo").size(), 1u);
  // Once it is done, the start that was held back runs at once (no
  // startingDeadlineSeconds), as upstream.
  FinishJob(first, "Failed");
  ASSERT_TRUE(Until([&] {
    Json active = Get("solo")["status"].value("active", Json::array());
    return JobsOf("solo").size() == 2 && active.size() == 1 && active[0]["name"] != first;
  })) << Get("solo")["status"].dump(2);
  ASSERT_TRUE(Until([&] { return Count(EventReasons("solo"), "SawCompletedJob") == 1; }));
}

TEST_F(CronJobControllerTest, ReplaceDeletesTheRunningJob) {
  cl().Create(CronJobs(), "default", CronJobManifest("swap", {{"concurrencyPolicy", "Replace"}}));
  ASSERT_TRUE(NextMinute("swap", 1));
  std::string first = JobsOf("swap")[0]["metadata"]["name"];
  ASSERT_TRUE(Until([&] { return Get("swap")["status"].value("active", Json::array()).size() == 1; }));
  clock_.Advance(60s);
  ASSERT_TRUE(Until([&] {
    auto jobs = JobsOf("swap");
    return jobs.size() == 1 && jobs[0]["metadata"]["name"] != first;
  }));
  ASSERT_TRUE(Until([&] {
    Json active = Get("swap")["status"].value("active", Json::array());
    return active.size() == 1 && active[0]["name"] != first;
  }));
  ASSERT_TRUE(Until([&] { return Count(EventReasons("swap"), "SuccessfulDelete") == 1; }));
}

TEST_F(CronJobControllerTest, HistoryLimitsDeleteOldFinishedJobs) {
  cl().Create(CronJobs(), "default",
              CronJobManifest("hist", {{"successfulJobsHistoryLimit", 1}, {"failedJobsHistoryLimit", 0}}));
  auto newest = [&](const std::set<std::string>& known) {
    for (const auto& j : JobsOf("hist")) {
      if (!known.count(j["metadata"]["name"])) return j["metadata"]["name"].get<std::string>();
    }
    return std::string();
  };
  ASSERT_TRUE(NextMinute("hist", 1));
  std::string a = newest({});
  FinishJob(a, "Complete");
  ASSERT_TRUE(Until([&] { return !Get("hist")["status"].contains("active"); }));
  ASSERT_TRUE(NextMinute("hist", 2));
  std::string b = newest({a});
  // b's startTime is not before a's (equal ones go by name: a first).
  FinishJob(b, "Complete");
  // Only the newest successful Job is kept.
  // What went wrong, if anything does: status, Events and Jobs.
  auto dump = [&] {
    std::string out = Get("hist")["status"].dump();
    Json events = cl().List(EventsResource(), "default");
    for (const auto& e : events["items"]) {
      out += "\n  " + e.value("reason", "") + ": " + e.value("message", "");
    }
    for (const auto& j : JobsOf("hist")) {
      out += "\n" + j["metadata"]["name"].dump() + j.value("status", Json::object()).dump();
    }
    return out;
  };
  ASSERT_TRUE(Until([&] {
    auto jobs = JobsOf("hist");
    return jobs.size() == 1 && jobs[0]["metadata"]["name"] == b;
  })) << dump();
  ASSERT_TRUE(Until([&] { return Count(EventReasons("hist"), "SuccessfulDelete") == 1; }));
  // Failed ones are kept not at all.
  ASSERT_TRUE(NextMinute("hist", 2));
  FinishJob(newest({b}), "Failed");
  ASSERT_TRUE(Until([&] {
    auto jobs = JobsOf("hist");
    return jobs.size() == 1 && jobs[0]["metadata"]["name"] == b;
  })) << dump();
}

TEST_F(CronJobControllerTest, SuspendedCronJobsStartNothing) {
  cl().Create(CronJobs(), "default", CronJobManifest("off", {{"suspend", true}}));
  // A marker CronJob handled after it shows the controller has run.
  cl().Create(CronJobs(), "default", CronJobManifest("on"));
  ASSERT_TRUE(NextMinute("on", 1));
  EXPECT_TRUE(JobsOf("off").empty());
  cl().Patch(CronJobs(), "default", "off", PatchType::kMerge, {{"spec", {{"suspend", false}}}});
  ASSERT_TRUE(Until([&] { return JobsOf("off").size() == 1; }));
}

TEST_F(CronJobControllerTest, TimeZoneStampsTheJobInIt) {
  cl().Create(CronJobs(), "default", CronJobManifest("tz", {{"timeZone", "Europe/Berlin"}}));
  ASSERT_TRUE(NextMinute("tz", 1));
  std::string stamp =
      JobsOf("tz")[0]["metadata"]["annotations"][kCronJobScheduledTimestampAnnotation];
  EXPECT_TRUE(stamp.ends_with("+01:00") || stamp.ends_with("+02:00")) << stamp;
}

}  // namespace
}  // namespace kin::controllers
