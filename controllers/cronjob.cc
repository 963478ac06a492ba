#include "controllers/cronjob.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include "base/error.h"
#include "base/log.h"
#include "client/object.h"
#include "controllers/job.h"

namespace kin::controllers {

namespace {

using TimePoint = cronjob::TimePoint;

// Upstream's nextScheduleDelta: wake a little after the scheduled time.
constexpr auto kNextScheduleDelta = std::chrono::milliseconds(100);

const ResourceInfo& CronJobsResource() {
  static const ResourceInfo* r = FindResource("batch", "v1", "cronjobs");
  if (!r) throw Error::Internal("the API has no batch/v1 cronjobs");
  return *r;
}
const ResourceInfo& JobsResource() {
  static const ResourceInfo* r = FindResource("batch", "v1", "jobs");
  if (!r) throw Error::Internal("the API has no batch/v1 jobs");
  return *r;
}

const Json& EmptyObject() {
  static const Json empty = Json::object();
  return empty;
}
const Json& At(const Json& j, const char* key) {
  if (!j.is_object()) return EmptyObject();
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? EmptyObject() : *it;
}
std::string Str(const Json& j, const char* key) {
  const Json& v = At(j, key);
  return v.is_string() ? v.get<std::string>() : "";
}
std::optional<int64_t> Int(const Json& j, const char* key) {
  const Json& v = At(j, key);
  if (v.is_number_integer()) return v.get<int64_t>();
  return std::nullopt;
}
std::optional<TimePoint> TimeAt(const Json& j, const char* key) {
  std::string s = Str(j, key);
  if (s.empty()) return std::nullopt;
  return object::ParseRfc3339(s);
}

Json AsCronJob(const Json& cj) {
  Json j = cj;
  j["kind"] = "CronJob";
  j["apiVersion"] = "batch/v1";
  return j;
}

// Go's time.RFC1123Z in UTC: "Mon, 02 Jan 2006 15:04:05 +0000".
std::string FormatRfc1123Z(TimePoint t) {
  using namespace std::chrono;
  auto secs = floor<seconds>(t);
  auto days = floor<std::chrono::days>(secs);
  year_month_day ymd{days};
  hh_mm_ss<seconds> hms{secs - days};
  static const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  weekday wd{days};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02u %s %04d %02d:%02d:%02d +0000", kDays[wd.c_encoding()],
                static_cast<unsigned>(ymd.day()), kMonths[static_cast<unsigned>(ymd.month()) - 1],
                static_cast<int>(ymd.year()), static_cast<int>(hms.hours().count()),
                static_cast<int>(hms.minutes().count()), static_cast<int>(hms.seconds().count()));
  return buf;
}

bool InActiveList(const Json& cj, const std::string& uid) {
  for (const Json& r : At(At(cj, "status"), "active")) {
    if (Str(r, "uid") == uid) return true;
  }
  return false;
}
bool InActiveListByName(const Json& cj, const std::string& name) {
  for (const Json& r : At(At(cj, "status"), "active")) {
    if (Str(r, "name") == name) return true;
  }
  return false;
}
void DeleteFromActiveList(Json& cj, const std::string& uid) {
  if (!cj.contains("status") || !cj["status"].contains("active")) return;
  Json& active = cj["status"]["active"];
  Json kept = Json::array();
  for (const Json& r : active) {
    if (Str(r, "uid") != uid) kept.push_back(r);
  }
  if (kept.empty()) {
    cj["status"].erase("active");
  } else {
    active = kept;
  }
}

size_t ActiveCount(const Json& cj) {
  const Json& a = At(At(cj, "status"), "active");
  return a.is_array() ? a.size() : 0;
}

}  // namespace

namespace cronjob {

ScheduleTimes MostRecentScheduleTime(const Json& cj, TimePoint now, const CronSchedule& schedule,
                                     bool with_deadline) {
  ScheduleTimes r;
  r.earliest = TimeAt(At(cj, "metadata"), "creationTimestamp").value_or(TimePoint{});
  if (auto last = TimeAt(At(cj, "status"), "lastScheduleTime")) r.earliest = *last;
  auto deadline = Int(At(cj, "spec"), "startingDeadlineSeconds");
  if (with_deadline && deadline) {
    TimePoint scheduling_deadline = now - std::chrono::seconds(*deadline);
    if (scheduling_deadline > r.earliest) r.earliest = scheduling_deadline;
  }
  auto t1 = schedule.Next(r.earliest);
  auto t2 = t1 ? schedule.Next(*t1) : std::nullopt;
  if (t1 && now < *t1) return r;
  if (t1 && t2 && now < *t2) {
    r.most_recent = t1;
    r.missed = 1;
    return r;
  }
  int64_t between =
      t1 && t2 ? std::chrono::duration_cast<std::chrono::seconds>(*t2 - *t1).count() : 0;
  if (between < 1) {
    r.error = "time difference between two schedules is less than 1 second";
    return r;
  }
  int64_t elapsed = std::chrono::duration_cast<std::chrono::seconds>(now - *t1).count();
  r.missed = elapsed / between + 1;
  // From an estimate just before the latest time, let the schedule find it
  // exactly (schedules need not be evenly spaced: "30 6-16/4 * * 1-5").
  TimePoint from = *t1 + std::chrono::seconds((r.missed - 2) * between);
  if (from < r.earliest) from = r.earliest;
  std::optional<TimePoint> most;
  for (auto t = schedule.Next(from); t && *t <= now; t = schedule.Next(*t)) most = t;
  if (!most) {
    // The estimate overshot (uneven gaps): walk from the first missed time.
    for (auto t = t1; t && *t <= now; t = schedule.Next(*t)) most = t;
  }
  r.most_recent = most;
  return r;
}

ScheduleTimes NextScheduleTime(const Json& cj, TimePoint now, const CronSchedule& schedule) {
  ScheduleTimes r = MostRecentScheduleTime(cj, now, schedule, true);
  if (r.most_recent && *r.most_recent > now) r.most_recent.reset();
  return r;
}

std::chrono::nanoseconds NextScheduleDelay(const Json& cj, TimePoint now,
                                           const CronSchedule& schedule) {
  ScheduleTimes r = MostRecentScheduleTime(cj, now, schedule, false);
  TimePoint from;
  if (!r.error.empty()) {
    from = now;
  } else if (r.most_recent) {
    from = *r.most_recent;
  } else {
    from = r.missed == 0 ? r.earliest : now;
  }
  auto next = schedule.Next(from);
  // No time in the next five years: look again in a day (a schedule edit
  // wakes the controller anyway).
  if (!next) return std::chrono::hours(24);
  return std::chrono::duration_cast<std::chrono::nanoseconds>(*next + kNextScheduleDelta - now);
}

bool TooLate(const Json& cj, TimePoint scheduled, TimePoint now) {
  auto deadline = Int(At(cj, "spec"), "startingDeadlineSeconds");
  return deadline && scheduled + std::chrono::seconds(*deadline) < now;
}

std::string JobName(const std::string& cronjob_name, TimePoint scheduled) {
  auto minutes =
      std::chrono::duration_cast<std::chrono::seconds>(scheduled.time_since_epoch()).count() / 60;
  return cronjob_name + "-" + std::to_string(minutes);
}

std::string FormatInZone(TimePoint t, const TimeZone& zone) {
  int64_t utc = std::chrono::floor<std::chrono::seconds>(t.time_since_epoch()).count();
  int64_t offset = zone.OffsetAt(utc);
  std::string local = object::FormatRfc3339(TimePoint(std::chrono::seconds(utc + offset)));
  if (offset == 0) return local;
  local.pop_back();  // the "Z"
  int64_t a = offset < 0 ? -offset : offset;
  char buf[16];
  std::snprintf(buf, sizeof buf, "%c%02d:%02d", offset < 0 ? '-' : '+', static_cast<int>(a / 3600),
                static_cast<int>(a / 60 % 60));
  return local + buf;
}

Json JobFromTemplate(const Json& cj, TimePoint scheduled, const TimeZone& zone) {
  const Json& tmpl = At(At(cj, "spec"), "jobTemplate");
  const Json& tmeta = At(tmpl, "metadata");
  Json meta = Json::object();
  meta["name"] = JobName(object::Name(cj), scheduled);
  meta["namespace"] = object::Namespace(cj);
  if (At(tmeta, "labels").is_object() && !At(tmeta, "labels").empty()) {
    meta["labels"] = At(tmeta, "labels");
  }
  Json annotations = At(tmeta, "annotations");
  if (!annotations.is_object()) annotations = Json::object();
  annotations[kCronJobScheduledTimestampAnnotation] = FormatInZone(scheduled, zone);
  meta["annotations"] = annotations;
  meta["ownerReferences"] = Json::array({object::NewControllerRef(cj, "batch/v1", "CronJob")});
  return {{"apiVersion", "batch/v1"},
          {"kind", "Job"},
          {"metadata", meta},
          {"spec", At(tmpl, "spec")}};
}

Concurrency Decide(const std::string& policy, size_t active) {
  if (active == 0) return Concurrency::kStart;
  if (policy == "Forbid") return Concurrency::kSkip;
  if (policy == "Replace") return Concurrency::kReplace;
  return Concurrency::kStart;
}

std::vector<std::string> JobsBeyondHistory(const std::vector<Json>& jobs,
                                           std::optional<int64_t> successful_limit,
                                           std::optional<int64_t> failed_limit) {
  std::vector<const Json*> succeeded, failed;
  for (const Json& j : jobs) {
    std::string type = job_util::FinishedConditionType(j);
    if (type == "Complete") succeeded.push_back(&j);
    if (type == "Failed") failed.push_back(&j);
  }
  // Upstream's byJobStartTime: no startTime last, then by start, then name.
  auto older = [](const Json* a, const Json* b) {
    auto sa = TimeAt(At(*a, "status"), "startTime");
    auto sb = TimeAt(At(*b, "status"), "startTime");
    if (!sb) return sa.has_value() || object::Name(*a) < object::Name(*b);
    if (!sa) return false;
    if (*sa == *sb) return object::Name(*a) < object::Name(*b);
    return *sa < *sb;
  };
  std::vector<std::string> out;
  auto trim = [&](std::vector<const Json*>& list, std::optional<int64_t> limit) {
    if (!limit) return;
    int64_t excess = static_cast<int64_t>(list.size()) - *limit;
    if (excess <= 0) return;
    std::sort(list.begin(), list.end(), older);
    for (int64_t i = 0; i < excess; ++i) out.push_back(object::Name(*list[static_cast<size_t>(i)]));
  };
  trim(succeeded, successful_limit);
  trim(failed, failed_limit);
  return out;
}

std::optional<CronSchedule> ScheduleOf(const Json& cj, std::string* reason, std::string* message) {
  const Json& spec = At(cj, "spec");
  std::string schedule = Str(spec, "schedule");
  TimeZone zone;
  if (spec.contains("timeZone") && spec["timeZone"].is_string()) {
    std::string name = spec["timeZone"].get<std::string>();
    std::string err;
    auto z = TimeZone::Load(name, &err);
    if (!z) {
      *reason = "UnknownTimeZone";
      *message = "invalid timeZone: \"" + name + "\": " + err;
      return std::nullopt;
    }
    // A TZ= prefix in the schedule wins, as upstream's formatSchedule.
    if (schedule.find("TZ") == std::string::npos) zone = *z;
  }
  std::string err;
  auto s = CronSchedule::Parse(schedule, &err, zone);
  if (!s) {
    *reason = "UnparseableSchedule";
    *message = "unparseable schedule: \"" + schedule + "\" : " + err;
  }
  return s;
}

}  // namespace cronjob

CronJobController::CronJobController(SharedInformerFactory& informers, Client& client,
                                     CronJobControllerOptions opts)
    : opts_(opts),
      clock_(opts.clock ? *opts.clock : RealClock()),
      wall_(clock_),
      identity_(client, "cronjob-controller"),
      cronjobs_(informers.For(CronJobsResource())),
      jobs_(informers.For(JobsResource())),
      queue_(WorkQueueOptions{.clock = &clock_}),
      workers_("cronjob", queue_, [this](const std::string& key) { return Reconcile(key); }) {}

CronJobController::~CronJobController() { Stop(); }

void CronJobController::Start() {
  if (started_ || stopped_) return;
  started_ = true;
  InformerHandlers ch;
  ch.on_add = [this](const Json& cj) { OnCronJob(nullptr, cj); };
  ch.on_update = [this](const Json& o, const Json& cj) { OnCronJob(&o, cj); };
  InformerHandlers jh;
  jh.on_add = [this](const Json& j) { OnJob(j); };
  jh.on_update = [this](const Json&, const Json& j) { OnJob(j); };
  jh.on_delete = [this](const Json& j) { OnJob(j); };
  cronjob_handlers_ = cronjobs_.AddHandlers(std::move(ch));
  job_handlers_ = jobs_.AddHandlers(std::move(jh));
  workers_.Start(opts_.workers, {&cronjobs_, &jobs_});
}

void CronJobController::Stop() {
  if (stopped_) return;
  stopped_ = true;
  workers_.Stop();
  if (started_) {
    cronjobs_.RemoveHandlers(cronjob_handlers_);
    jobs_.RemoveHandlers(job_handlers_);
  }
}

void CronJobController::OnCronJob(const Json* old, const Json& now) {
  std::string key = object::Key(now);
  if (old && (Str(At(*old, "spec"), "schedule") != Str(At(now, "spec"), "schedule") ||
              At(At(*old, "spec"), "timeZone") != At(At(now, "spec"), "timeZone"))) {
    // A new schedule: look at the CronJob at its next time (a sync now
    // would only find nothing to do, or report a bad schedule).
    std::string reason, message;
    auto schedule = cronjob::ScheduleOf(now, &reason, &message);
    if (!schedule) {
      queue_.Add(key);  // the sync reports it
      return;
    }
    queue_.AddAfter(key, std::chrono::duration_cast<Clock::Duration>(
                             cronjob::NextScheduleDelay(now, wall_.Now(), *schedule)));
    return;
  }
  queue_.Add(key);
}

void CronJobController::OnJob(const Json& job) {
  const Json* ref = object::ControllerOf(job);
  if (!ref || Str(*ref, "kind") != "CronJob") return;
  ObjectPtr cj = cronjobs_.Lookup(object::Namespace(job), Str(*ref, "name"));
  if (!cj || object::Uid(*cj) != Str(*ref, "uid")) return;
  queue_.Add(object::Key(*cj));
}

Result CronJobController::Reconcile(const std::string& key) {
  auto [ns, name] = object::SplitKey(key);
  ObjectPtr cached = cronjobs_.Lookup(ns, name);
  if (!cached) {
    written_.Forget(key);
    return Result::Done();
  }
  // The cache may not show our last status write yet; deciding on the
  // older status would start a Job twice.
  Json cj = written_.Fresher(key, *cached);
  std::vector<ObjectPtr> jobs;
  for (auto& j : jobs_.ByIndex(kOwnerUidIndex, object::Uid(cj))) {
    if (object::IsControlledBy(*j, cj)) jobs.push_back(std::move(j));
  }
  bool update = CleanupFinishedJobs(cj, jobs);
  std::optional<TimePoint> requeue;
  std::exception_ptr sync_error;
  try {
    requeue = SyncCronJob(cj, jobs, update);
  } catch (...) {
    sync_error = std::current_exception();
  }
  if (update) {
    try {
      written_.Record(key, identity_.client().Update(CronJobsResource(), ns, cj, "status"));
    } catch (const Error& e) {
      if (e.code() == Code::kNotFound) return Result::Done();
      throw;
    }
  }
  if (requeue) {
    // Relative to the clock now, not when the sync began.
    auto left = std::chrono::duration_cast<Clock::Duration>(*requeue - wall_.Now());
    return Result::After(std::max(left, Clock::Duration::zero()));
  }
  if (sync_error) std::rethrow_exception(sync_error);
  return Result::Done();
}

bool CronJobController::DeleteJob(Json& cj, const Json& job) {
  DeleteOptions del;
  del.propagation_policy = "Background";
  try {
    identity_.client().Delete(JobsResource(), object::Namespace(job), object::Name(job), del);
  } catch (const Error& e) {
    if (e.code() != Code::kNotFound) {
      identity_.events().Warning(AsCronJob(cj), "FailedDelete",
                                 std::string("Deleted job: ") + e.what());
      return false;
    }
  }
  DeleteFromActiveList(cj, object::Uid(job));
  identity_.events().Normal(AsCronJob(cj), "SuccessfulDelete", "Deleted job " + object::Name(job));
  return true;
}

bool CronJobController::CleanupFinishedJobs(Json& cj, const std::vector<ObjectPtr>& jobs) {
  const Json& spec = At(cj, "spec");
  auto successful = Int(spec, "successfulJobsHistoryLimit");
  auto failed = Int(spec, "failedJobsHistoryLimit");
  if (!successful && !failed) return false;
  std::vector<Json> list;
  for (const auto& j : jobs) list.push_back(*j);
  bool update = false;
  for (const std::string& name : cronjob::JobsBeyondHistory(list, successful, failed)) {
    for (const auto& j : jobs) {
      if (object::Name(*j) == name && DeleteJob(cj, *j)) update = true;
    }
  }
  return update;
}

std::optional<TimePoint> CronJobController::SyncCronJob(Json& cj,
                                                             const std::vector<ObjectPtr>& jobs,
                                                             bool& update) {
  const TimePoint now = wall_.Now();
  const std::string ns = object::Namespace(cj);
  if (!cj.contains("status") || !cj["status"].is_object()) cj["status"] = Json::object();
  std::set<std::string> children;
  for (const auto& jp : jobs) {
    const Json& j = *jp;
    std::string uid = object::Uid(j);
    children.insert(uid);
    bool found = InActiveList(cj, uid);
    std::string finished = job_util::FinishedConditionType(j);
    if (!found && finished.empty()) {
      // Our status may be behind the API (our own write not seen yet).
      Json fresh = identity_.client().Get(CronJobsResource(), ns, object::Name(cj));
      if (InActiveList(fresh, uid)) {
        cj = fresh;
        if (!cj.contains("status") || !cj["status"].is_object()) cj["status"] = Json::object();
        continue;
      }
      identity_.events().Warning(AsCronJob(cj), "UnexpectedJob",
                                 "Saw a job that the controller did not create or forgot: " +
                                     object::Name(j));
    } else if (found && !finished.empty()) {
      DeleteFromActiveList(cj, uid);
      identity_.events().Normal(AsCronJob(cj), "SawCompletedJob",
                                "Saw completed job: " + object::Name(j) + ", status: " + finished);
      update = true;
    } else if (finished == "Complete") {
      auto done = TimeAt(At(j, "status"), "completionTime");
      auto last = TimeAt(cj["status"], "lastSuccessfulTime");
      if (done && (!last || *done > *last)) {
        cj["status"]["lastSuccessfulTime"] = Str(At(j, "status"), "completionTime");
        update = true;
      }
    }
  }
  // Active entries whose Job is gone (asked of the API: the cache may lag).
  Json active = At(cj["status"], "active");
  for (const Json& ref : active) {
    std::string uid = Str(ref, "uid");
    if (children.count(uid)) continue;
    try {
      identity_.client().Get(JobsResource(), Str(ref, "namespace").empty() ? ns : Str(ref, "namespace"),
                             Str(ref, "name"));
    } catch (const Error& e) {
      if (e.code() != Code::kNotFound) throw;
      identity_.events().Normal(AsCronJob(cj), "MissingJob",
                                "Active job went missing: " + Str(ref, "name"));
      DeleteFromActiveList(cj, uid);
      update = true;
    }
  }

  if (object::IsBeingDeleted(cj)) return std::nullopt;
  const Json& spec = At(cj, "spec");
  std::string schedule_text = Str(spec, "schedule");
  if (schedule_text.find("TZ") != std::string::npos) {
    identity_.events().Warning(
        AsCronJob(cj), "UnsupportedSchedule",
        "CRON_TZ or TZ used in schedule \"" + schedule_text +
            "\" is not officially supported, see "
            "https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details");
  }
  std::string reason, message;
  auto schedule = cronjob::ScheduleOf(cj, &reason, &message);
  if (!schedule && reason == "UnknownTimeZone") {
    identity_.events().Warning(AsCronJob(cj), reason, message);
    return std::nullopt;
  }
  if (At(spec, "suspend") == Json(true)) return std::nullopt;
  if (!schedule) {
    identity_.events().Warning(AsCronJob(cj), reason, message);
    return std::nullopt;
  }
  // When to look again: the next scheduled time (as a time, so that the
  // time this sync takes is not added to the wait).
  auto next_delay = [&]() -> TimePoint {
    return now + std::chrono::duration_cast<TimePoint::duration>(
                     cronjob::NextScheduleDelay(cj, now, *schedule));
  };
  cronjob::ScheduleTimes times = cronjob::NextScheduleTime(cj, now, *schedule);
  if (!times.error.empty()) {
    identity_.events().Warning(AsCronJob(cj), "InvalidSchedule",
                               "invalid schedule: " + schedule_text + " : " + times.error);
    return std::nullopt;
  }
  if (times.missed > 100) {
    identity_.events().Warning(AsCronJob(cj), "TooManyMissedTimes",
                               "too many missed start times: " + std::to_string(times.missed) +
                                   ". Set or decrease .spec.startingDeadlineSeconds or check "
                                   "clock skew");
  }
  if (!times.most_recent) return next_delay();
  const TimePoint scheduled = *times.most_recent;
  if (cronjob::TooLate(cj, scheduled, now)) {
    identity_.events().Warning(AsCronJob(cj), "MissSchedule",
                               "Missed scheduled time to start a job: " + FormatRfc1123Z(scheduled));
    return next_delay();
  }
  auto last = TimeAt(cj["status"], "lastScheduleTime");
  if (InActiveListByName(cj, cronjob::JobName(object::Name(cj), scheduled)) ||
      (last && *last == scheduled)) {
    return next_delay();
  }
  switch (cronjob::Decide(Str(spec, "concurrencyPolicy"), ActiveCount(cj))) {
    case cronjob::Concurrency::kSkip:
      identity_.events().Normal(AsCronJob(cj), "JobAlreadyActive",
                                "Not starting job because prior execution is running and "
                                "concurrency policy is Forbid");
      return next_delay();
    case cronjob::Concurrency::kReplace: {
      Json refs = At(cj["status"], "active");
      for (const Json& ref : refs) {
        Json job;
        try {
          job = identity_.client().Get(JobsResource(), ns, Str(ref, "name"));
        } catch (const Error& e) {
          identity_.events().Warning(AsCronJob(cj), "FailedGet",
                                     std::string("Get job: ") + e.what());
          throw;
        }
        if (!DeleteJob(cj, job)) {
          throw Error::Internal("could not replace job " + ns + "/" + Str(ref, "name"));
        }
        update = true;
      }
      break;
    }
    case cronjob::Concurrency::kStart:
      break;
  }

  // One read past the cache before starting anything: a start another
  // sync already made must not be made again.
  {
    Json fresh = identity_.client().Get(CronJobsResource(), ns, object::Name(cj));
    auto fresh_last = TimeAt(At(fresh, "status"), "lastScheduleTime");
    if ((fresh_last && *fresh_last >= scheduled) ||
        InActiveListByName(fresh, cronjob::JobName(object::Name(cj), scheduled))) {
      if (object::ResourceVersionNumber(fresh) != object::ResourceVersionNumber(cj)) update = false;
      return next_delay();
    }
  }
  TimeZone zone = schedule->zone();
  Json request = cronjob::JobFromTemplate(cj, scheduled, zone);
  Json created;
  bool existed = false;
  try {
    created = identity_.client().Create(JobsResource(), ns, request);
  } catch (const Error& e) {
    if (e.code() != Code::kAlreadyExists) {
      if (e.message().find("because it is being terminated") == std::string::npos) {
        identity_.events().Warning(AsCronJob(cj), "FailedCreate",
                                   std::string("Error creating job: ") + e.what());
      }
      throw;
    }
    // Made by an earlier sync whose status write was lost, or by someone else.
    existed = true;
    created = identity_.client().Get(JobsResource(), ns, object::Name(request));
    if (!object::IsControlledBy(created, cj) || InActiveList(cj, object::Uid(created))) {
      return std::nullopt;
    }
  }
  if (existed) {
    log::Info("cronjob-controller: job {}/{} already exists", ns, object::Name(created));
  } else {
    identity_.events().Normal(AsCronJob(cj), "SuccessfulCreate",
                              "Created job " + object::Name(created));
  }
  Json ref = {{"apiVersion", "batch/v1"},
              {"kind", "Job"},
              {"name", object::Name(created)},
              {"namespace", ns},
              {"uid", object::Uid(created)},
              {"resourceVersion", object::ResourceVersion(created)}};
  if (!cj["status"].contains("active") || !cj["status"]["active"].is_array()) {
    cj["status"]["active"] = Json::array();
  }
  cj["status"]["active"].push_back(ref);
  cj["status"]["lastScheduleTime"] = object::FormatRfc3339(scheduled);
  update = true;
  return next_delay();
}

}  // namespace kin::controllers
