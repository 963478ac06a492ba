// WorkQueue: a queue of object keys for controllers, like client-go's
// rate-limited work queue.
//
// - De-duplication: a key already queued is not queued again.
// - One worker per key: Get() hands a key to one worker; a key added while
//   it is being processed is marked dirty and queued again when the worker
//   calls Done(key). Every successful Get must be followed by Done.
// - AddAfter(key, d): queued once the clock has advanced by d (a key waiting
//   twice keeps the earlier time).
// - AddRateLimited(key): AddAfter with the rate limiter's delay. The default
//   limiter is the larger of a per-key exponential back-off (5 ms, doubling
//   with each requeue, at most 1000 s) and an overall token bucket (10 qps,
//   burst 100), as client-go's DefaultControllerRateLimiter; Forget(key)
//   resets the key's back-off (call it when the key was handled well) and
//   NumRequeues(key) tells how often it was retried. Add() is never rate
//   limited.
// - ShutDown(): Get() returns false at once in every waiting and later
//   call; keys still queued are dropped and adds are ignored (reconciles are
//   idempotent, so nothing is lost that the next start would not redo).
//
// Time comes from a Clock (controllers/clock.h), so tests drive delays with
// a FakeClock. No thread of its own: delayed keys become ready when a Get()
// or Len() looks at them.
//
// Thread-safety: thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "controllers/clock.h"

namespace kin::controllers {

// How long a key should wait before its next try. Thread-safe.
class RateLimiter {
 public:
  virtual ~RateLimiter() = default;
  // The delay for this try of `key` (counts the try).
  virtual Clock::Duration When(const std::string& key) = 0;
  // Forgets the key's history.
  virtual void Forget(const std::string& key) = 0;
  virtual int NumRequeues(const std::string& key) = 0;
};

// base * 2^(tries so far), at most `max` (client-go's ItemExponentialFailureRateLimiter).
class ItemExponentialRateLimiter : public RateLimiter {
 public:
  ItemExponentialRateLimiter(Clock::Duration base, Clock::Duration max) : base_(base), max_(max) {}
  Clock::Duration When(const std::string& key) override;
  void Forget(const std::string& key) override;
  int NumRequeues(const std::string& key) override;

 private:
  const Clock::Duration base_, max_;
  std::mutex mu_;
  std::map<std::string, int> failures_;
};

// A token bucket over all keys: `burst` tries at once, then `qps` a second
// (client-go's BucketRateLimiter). qps <= 0 means no limit.
class BucketRateLimiter : public RateLimiter {
 public:
  BucketRateLimiter(Clock& clock, double qps, int burst);
  Clock::Duration When(const std::string& key) override;
  void Forget(const std::string&) override {}
  int NumRequeues(const std::string&) override { return 0; }

 private:
  Clock& clock_;
  const double qps_;
  const double burst_;
  std::mutex mu_;
  double tokens_;  // may go negative: reservations of future tokens
  Clock::TimePoint last_;
};

// The longest delay of several limiters (client-go's MaxOfRateLimiter).
class MaxOfRateLimiter : public RateLimiter {
 public:
  explicit MaxOfRateLimiter(std::vector<std::unique_ptr<RateLimiter>> limiters)
      : limiters_(std::move(limiters)) {}
  Clock::Duration When(const std::string& key) override;
  void Forget(const std::string& key) override;
  int NumRequeues(const std::string& key) override;

 private:
  std::vector<std::unique_ptr<RateLimiter>> limiters_;
};

struct WorkQueueOptions {
  Clock* clock = nullptr;  // RealClock() when null; must outlive the queue
  // The default rate limiter's settings (ignored when one is given).
  Clock::Duration base_delay = std::chrono::milliseconds(5);
  Clock::Duration max_delay = std::chrono::seconds(1000);
  double qps = 10;  // <= 0: no overall limit
  int burst = 100;
};

class WorkQueue {
 public:
  explicit WorkQueue(WorkQueueOptions opts = {}, std::unique_ptr<RateLimiter> limiter = nullptr);
  ~WorkQueue();
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  void Add(const std::string& key);
  void AddAfter(const std::string& key, Clock::Duration delay);
  // Adds the key when the clock reaches `at` (at once if it has): a
  // deadline a caller computed earlier is not moved by time that passed
  // since.
  void AddAt(const std::string& key, Clock::TimePoint at);
  void AddRateLimited(const std::string& key);
  void Forget(const std::string& key);
  int NumRequeues(const std::string& key);

  // Waits for a ready key and marks it as being processed; false once
  // shut down.
  bool Get(std::string& key);
  // The worker is finished with `key`; a dirty key is queued again.
  void Done(const std::string& key);

  void ShutDown();
  bool ShuttingDown() const;
  // Keys ready for Get (not those being processed or waiting for a delay).
  size_t Len();
  // Keys waiting for a delay to pass.
  size_t Waiting() const;

  Clock& clock() const { return clock_; }

 private:
  void AddLocked(const std::string& key);
  // Queues the delayed keys whose time has come; mu_ held.
  void PromoteLocked();

  Clock& clock_;
  std::unique_ptr<RateLimiter> limiter_;
  uint64_t subscription_ = 0;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;  // ready, in order
  std::set<std::string> dirty_;    // queued, or added again while processing
  std::set<std::string> processing_;
  std::map<std::string, Clock::TimePoint> waiting_;             // key -> ready at
  std::set<std::pair<Clock::TimePoint, std::string>> by_time_;  // the same, by time
  bool shutting_down_ = false;
};

}  // namespace kin::controllers
