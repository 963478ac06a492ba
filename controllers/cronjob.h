// The CronJob controller, as kube-controller-manager's cronjob-controller
// (cronjob_controllerv2, v1.31).
//
// For each batch/v1 CronJob it works out the most recent time its schedule
// (controllers/cron_schedule.h, read in spec.timeZone, or a CRON_TZ=/TZ=
// prefix, which gets an UnsupportedSchedule Warning as upstream; UTC
// otherwise) has passed since status.lastScheduleTime (or its creation)
// and, unless that time was handled already, starts a Job for it:
// named <cronjob>-<scheduled time in minutes since the epoch>, with the
// template's labels and annotations, the annotation
// batch.kubernetes.io/cronjob-scheduled-timestamp (the scheduled time in
// RFC 3339, in the CronJob's zone) and a controller reference. Then it asks
// to be woken up at the next scheduled time (plus 100 ms, as upstream):
// the controller never polls.
//
// Rules, as upstream: a start more than startingDeadlineSeconds late is
// skipped (Warning MissSchedule); more than 100 missed starts are reported
// (Warning TooManyMissedTimes) and only the latest one is run;
// concurrencyPolicy Forbid skips a start while a Job is active (Normal
// JobAlreadyActive), Replace deletes the active Jobs first (propagation
// Background, Normal SuccessfulDelete), Allow runs them side by side;
// spec.suspend stops new starts; finished Jobs beyond
// successfulJobsHistoryLimit / failedJobsHistoryLimit are deleted, oldest
// (by status.startTime) first. status.active lists the running Jobs (a
// finished one is taken off with Normal SawCompletedJob, one that went with
// MissingJob, one that is owned but not listed is reported as
// UnexpectedJob), status.lastScheduleTime the last start and
// status.lastSuccessfulTime the latest completionTime of its Jobs. Bad
// schedules and zones are reported as Warnings (UnparseableSchedule,
// InvalidSchedule, UnknownTimeZone) and the CronJob waits for an update.
//
// The pure pieces below (schedule arithmetic, concurrency decision, history
// trimming, the Job made from the template) are what the controller runs
// and are tested on their own. Time comes from options.clock (wall time
// through WallClock), so tests drive schedules with a FakeClock.
//
// Thread-safety: Start/Stop from one owner thread; the free functions are pure.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "client/informer_factory.h"
#include "controllers/controller.h"
#include "controllers/cron_schedule.h"
#include "controllers/wall_clock.h"
#include "controllers/work_queue.h"

namespace kin::controllers {

inline constexpr char kCronJobScheduledTimestampAnnotation[] =
    "batch.kubernetes.io/cronjob-scheduled-timestamp";

namespace cronjob {

using TimePoint = std::chrono::system_clock::time_point;

struct ScheduleTimes {
  TimePoint earliest{};                   // lastScheduleTime, creation, or the deadline
  std::optional<TimePoint> most_recent;   // the latest scheduled time <= now, if any
  int64_t missed = 0;                     // how many (roughly) since `earliest`
  std::string error;                      // an impossible schedule
};

// Upstream's mostRecentScheduleTime; `with_deadline` moves `earliest` up to
// now - startingDeadlineSeconds.
ScheduleTimes MostRecentScheduleTime(const Json& cronjob, TimePoint now,
                                     const CronSchedule& schedule, bool with_deadline);
// The scheduled time to start a Job for now, if any (upstream's nextScheduleTime).
ScheduleTimes NextScheduleTime(const Json& cronjob, TimePoint now, const CronSchedule& schedule);
// How long until the sync after the next scheduled time.
std::chrono::nanoseconds NextScheduleDelay(const Json& cronjob, TimePoint now,
                                           const CronSchedule& schedule);
// True when `scheduled` is more than startingDeadlineSeconds before `now`.
bool TooLate(const Json& cronjob, TimePoint scheduled, TimePoint now);

// "<cronjob>-<minutes since the epoch>".
std::string JobName(const std::string& cronjob_name, TimePoint scheduled);
// The Job for `scheduled` (name, labels, annotations, owner, spec).
Json JobFromTemplate(const Json& cronjob, TimePoint scheduled, const TimeZone& zone);
// RFC 3339 with the zone's offset ("Z" for UTC), as Go formats it.
std::string FormatInZone(TimePoint t, const TimeZone& zone);

enum class Concurrency { kStart, kSkip, kReplace };
// What concurrencyPolicy says with `active` Jobs running.
Concurrency Decide(const std::string& policy, size_t active);

// The names of the finished Jobs to delete so that at most the limits are
// kept (either limit absent: none of that kind deleted), oldest first.
std::vector<std::string> JobsBeyondHistory(const std::vector<Json>& jobs,
                                           std::optional<int64_t> successful_limit,
                                           std::optional<int64_t> failed_limit);

// The schedule of a CronJob: spec.schedule read in spec.timeZone.
// nullopt with `reason` ("UnknownTimeZone"/"UnparseableSchedule") and
// `message` as upstream's Events say them.
std::optional<CronSchedule> ScheduleOf(const Json& cronjob, std::string* reason,
                                       std::string* message);

}  // namespace cronjob

struct CronJobControllerOptions {
  Clock* clock = nullptr;  // RealClock() when null
  int workers = 1;
};

class CronJobController : public Controller {
 public:
  // Needs the batch/v1 cronjobs resource (FindResource). `informers` and
  // `client` must outlive the controller.
  CronJobController(SharedInformerFactory& informers, Client& client,
                    CronJobControllerOptions opts = {});
  ~CronJobController() override;
  CronJobController(const CronJobController&) = delete;
  CronJobController& operator=(const CronJobController&) = delete;

  std::string name() const override { return "cronjob"; }
  void Start() override;
  void Stop() override;

 private:
  void OnJob(const Json& job);
  void OnCronJob(const Json* old, const Json& now);
  Result Reconcile(const std::string& key);
  // Upstream's syncCronJob on `cj` (whose status it edits); `update` tells
  // whether the status must be written. Returns when to look again.
  std::optional<cronjob::TimePoint> SyncCronJob(Json& cj, const std::vector<ObjectPtr>& jobs,
                                             bool& update);
  bool CleanupFinishedJobs(Json& cj, const std::vector<ObjectPtr>& jobs);
  bool DeleteJob(Json& cj, const Json& job);

  const CronJobControllerOptions opts_;
  Clock& clock_;
  WallClock wall_;
  ComponentClient identity_;
  Informer& cronjobs_;
  Informer& jobs_;
  Informer::HandlerId cronjob_handlers_ = 0, job_handlers_ = 0;
  bool started_ = false, stopped_ = false;
  LatestWrites written_;  // our last status writes, newer than the cache
  WorkQueue queue_;
  ReconcileWorkers workers_;
};

}  // namespace kin::controllers
