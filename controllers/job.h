// The Job controller and the TTL-after-finished controller, as
// kube-controller-manager's job-controller and ttl-after-finished-controller
// (v1.31).
//
// JobController runs pods for each batch/v1 Job from its template until
// spec.completions pods succeeded (or, without completions, until one
// succeeded and the rest finished), at most spec.parallelism at once. Pods
// are named <job>-<random> (Indexed: <job>-<index>-<random>), labelled
// batch.kubernetes.io/controller-uid, batch.kubernetes.io/job-name and the
// legacy controller-uid and job-name, owned by the Job (controller
// reference) and carry the batch.kubernetes.io/job-tracking finalizer.
// Indexed Jobs give each pod a completion index in the
// batch.kubernetes.io/job-completion-index annotation and label, the
// JOB_COMPLETION_INDEX env var (from that annotation) in every container,
// and hostname <job>-<index>; status.completedIndexes lists the succeeded
// indexes ("0-2,5").
//
// Counting finished pods, as upstream: a pod that finished (or is being
// deleted before it succeeded) still holds the tracking finalizer, so it
// cannot vanish uncounted. Its uid goes first into
// status.uncountedTerminatedPods (written), then the finalizer is removed,
// then the uid moves into status.succeeded / status.failed. A crash at any
// step leaves enough in the API to finish the count exactly once. Pod
// creations and deletions the cache has not shown yet are remembered
// ("expectations", as upstream), so a stale cache never makes extra pods.
//
// Failures: more failed pods than spec.backoffLimit (or, with restartPolicy
// OnFailure, container restarts reaching it) fail the Job with reason
// BackoffLimitExceeded; running longer than activeDeadlineSeconds with
// DeadlineExceeded. The Job first gets FailureTarget, its active pods are
// deleted, and once none is left it gets Failed (plus a Warning Event with
// the reason). Success sets SuccessCriteriaMet then Complete (reason
// CompletionsReached), completionTime and a Completed Event. After a pod
// failure the next pod waits pod_failure_backoff (10 s upstream), doubling
// with each failure since the last success, at most max_pod_failure_backoff
// (10 min). spec.suspend deletes the active pods and sets condition
// Suspended; resuming resets startTime. status: startTime, completionTime,
// active, ready, terminating, succeeded, failed, completedIndexes,
// uncountedTerminatedPods, conditions. Events: SuccessfulCreate,
// FailedCreate, SuccessfulDelete, Completed, BackoffLimitExceeded,
// DeadlineExceeded, Suspended, Resumed. Not implemented: podFailurePolicy,
// successPolicy, backoffLimitPerIndex, managedBy, adoption of orphan pods by
// selector.
//
// TtlAfterFinishedController deletes a finished Job (Complete or Failed)
// spec.ttlSecondsAfterFinished after it finished, with propagation
// Background and a uid precondition, and looks again exactly when the TTL
// runs out (no polling).
//
// Both run on shared informers (jobs, pods) under a ControllerManager and
// take time from options.clock, so tests drive back-off, deadlines and TTLs
// with a FakeClock.
//
// Thread-safety: Start/Stop from one owner thread.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "client/informer_factory.h"
#include "controllers/controller.h"
#include "controllers/wall_clock.h"
#include "controllers/work_queue.h"

namespace kin::controllers {

inline constexpr char kJobTrackingFinalizer[] = "batch.kubernetes.io/job-tracking";
inline constexpr char kJobCompletionIndexAnnotation[] = "batch.kubernetes.io/job-completion-index";

struct JobControllerOptions {
  Clock* clock = nullptr;  // RealClock() when null
  // Delay before re-creating a pod after the first failure (upstream's
  // DefaultJobPodFailureBackOff), doubling with each further one.
  Clock::Duration pod_failure_backoff = std::chrono::seconds(10);
  Clock::Duration max_pod_failure_backoff = std::chrono::minutes(10);
  int workers = 2;
};

// "1,3-5,7" for {1,3,4,5,7} (status.completedIndexes).
std::string FormatIndexes(const std::set<int64_t>& indexes);
// The indexes of such a string below `completions`; bad parts are skipped.
std::set<int64_t> ParseIndexes(const std::string& s, int64_t completions);
// The delay before the next pod after `failures` failures since the last
// success, the last at `last_failure`; zero when it has passed.
Clock::Duration PodFailureBackoffRemaining(int64_t failures,
                                           std::chrono::system_clock::time_point last_failure,
                                           std::chrono::system_clock::time_point now,
                                           Clock::Duration base, Clock::Duration max);

namespace job_internal {
struct Expectations;
}

class JobController : public Controller {
 public:
  // `informers` and `client` must outlive the controller.
  JobController(SharedInformerFactory& informers, Client& client, JobControllerOptions opts = {});
  ~JobController() override;
  JobController(const JobController&) = delete;
  JobController& operator=(const JobController&) = delete;

  std::string name() const override { return "job"; }
  void Start() override;
  void Stop() override;

 private:
  struct Backoff {
    int64_t failures = 0;
    std::optional<std::chrono::system_clock::time_point> last_failure;
  };
  struct Sync;

  void OnJob(const Json* old, const Json* now);
  void OnPod(const Json* old, const Json* now);
  Result Reconcile(const std::string& key);
  Result ReconcileJob(const std::string& key);
  Result SyncJob(const std::string& key, Json job);
  // Removes the tracking finalizer from pods no running Job will count.
  Result SyncOrphanPod(const std::string& pod_key);
  // Pods controlled by the job (uid), from the cache.
  std::vector<ObjectPtr> PodsOf(const Json& job) const;
  // Pod creation / deletion; each returns how many succeeded.
  int64_t CreatePods(const Json& job, Sync& s, int64_t count);
  // `expect`: count them as deletions the cache must show before the next
  // pods are made.
  int64_t DeletePods(const Json& job, const std::vector<ObjectPtr>& pods, bool remove_finalizer,
                     bool expect, int64_t* ready_deleted);
  job_internal::Expectations& ExpectationsFor(const std::string& key);  // mu_ held
  bool RemoveFinalizer(const Json& pod);
  Json WriteStatus(const Json& job);

  const JobControllerOptions opts_;
  Clock& clock_;
  WallClock wall_;
  SharedInformerFactory& informers_;
  ComponentClient identity_;
  Informer& jobs_;
  Informer& pods_;
  Informer::HandlerId job_handlers_ = 0, pod_handlers_ = 0;

  std::mutex mu_;
  std::map<std::string, std::unique_ptr<job_internal::Expectations>> expectations_;  // by job key
  std::map<std::string, Backoff> backoff_;                                           // by job key
  LatestWrites written_;  // our last status writes, newer than the cache
  bool started_ = false, stopped_ = false;

  WorkQueue queue_;  // "ns/name" of Jobs; "pod:ns/name" of orphan pods
  ReconcileWorkers workers_;
};

struct TtlAfterFinishedOptions {
  Clock* clock = nullptr;  // RealClock() when null
};

class TtlAfterFinishedController : public Controller {
 public:
  TtlAfterFinishedController(SharedInformerFactory& informers, Client& client,
                             TtlAfterFinishedOptions opts = {});
  ~TtlAfterFinishedController() override;
  TtlAfterFinishedController(const TtlAfterFinishedController&) = delete;
  TtlAfterFinishedController& operator=(const TtlAfterFinishedController&) = delete;

  std::string name() const override { return "ttl-after-finished"; }
  void Start() override;
  void Stop() override;

 private:
  Result Reconcile(const std::string& key);

  Clock& clock_;
  WallClock wall_;
  ComponentClient identity_;
  Informer& jobs_;
  Informer::HandlerId handlers_ = 0;
  bool started_ = false, stopped_ = false;
  WorkQueue queue_;
  ReconcileWorkers workers_;
};

// Job helpers the CronJob controller shares.
namespace job_util {
// The Complete or Failed condition with status True, if any ("Complete",
// "Failed", or "").
std::string FinishedConditionType(const Json& job);
// When it finished: the lastTransitionTime of that condition.
std::optional<std::chrono::system_clock::time_point> FinishTime(const Json& job);
}  // namespace job_util

}  // namespace kin::controllers
