#include "controllers/work_queue.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace kin::controllers {

Clock::Duration ItemExponentialRateLimiter::When(const std::string& key) {
  int exp;
  {
    std::lock_guard l(mu_);
    exp = failures_[key]++;
  }
  // In floating point, so that a long history saturates instead of overflowing.
  double d = static_cast<double>(base_.count()) * std::pow(2.0, exp);
  if (d >= static_cast<double>(max_.count())) return max_;
  return Clock::Duration(static_cast<Clock::Duration::rep>(d));
}

void ItemExponentialRateLimiter::Forget(const std::string& key) {
  std::lock_guard l(mu_);
  failures_.erase(key);
}

int ItemExponentialRateLimiter::NumRequeues(const std::string& key) {
  std::lock_guard l(mu_);
  auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

BucketRateLimiter::BucketRateLimiter(Clock& clock, double qps, int burst)
    : clock_(clock), qps_(qps), burst_(std::max(burst, 1)), tokens_(burst_), last_(clock.Now()) {}

Clock::Duration BucketRateLimiter::When(const std::string&) {
  if (qps_ <= 0) return Clock::Duration::zero();
  std::lock_guard l(mu_);
  auto now = clock_.Now();
  if (now > last_) {
    double elapsed = std::chrono::duration<double>(now - last_).count();
    tokens_ = std::min(burst_, tokens_ + elapsed * qps_);
    last_ = now;
  }
  tokens_ -= 1;
  if (tokens_ >= 0) return Clock::Duration::zero();
  return std::chrono::duration_cast<Clock::Duration>(
      std::chrono::duration<double>(-tokens_ / qps_));
}

Clock::Duration MaxOfRateLimiter::When(const std::string& key) {
  Clock::Duration d = Clock::Duration::zero();
  for (auto& l : limiters_) d = std::max(d, l->When(key));
  return d;
}

void MaxOfRateLimiter::Forget(const std::string& key) {
  for (auto& l : limiters_) l->Forget(key);
}

int MaxOfRateLimiter::NumRequeues(const std::string& key) {
  int n = 0;
  for (auto& l : limiters_) n = std::max(n, l->NumRequeues(key));
  return n;
}

WorkQueue::WorkQueue(WorkQueueOptions opts, std::unique_ptr<RateLimiter> limiter)
    : clock_(opts.clock ? *opts.clock : RealClock()), limiter_(std::move(limiter)) {
  if (!limiter_) {
    std::vector<std::unique_ptr<RateLimiter>> both;
    both.push_back(std::make_unique<ItemExponentialRateLimiter>(opts.base_delay, opts.max_delay));
    both.push_back(std::make_unique<BucketRateLimiter>(clock_, opts.qps, opts.burst));
    limiter_ = std::make_unique<MaxOfRateLimiter>(std::move(both));
  }
  // A fake clock's jump must wake Get()s waiting for a delayed key; taking
  // mu_ first means a waiter is either before its check or in its wait.
  subscription_ = clock_.Subscribe([this] {
    { std::lock_guard l(mu_); }
    cv_.notify_all();
  });
}

WorkQueue::~WorkQueue() {
  ShutDown();
  clock_.Unsubscribe(subscription_);
}

void WorkQueue::AddLocked(const std::string& key) {
  if (shutting_down_ || dirty_.contains(key)) return;
  dirty_.insert(key);
  if (processing_.contains(key)) return;  // Done() queues it again
  queue_.push_back(key);
  cv_.notify_one();
}

void WorkQueue::Add(const std::string& key) {
  std::lock_guard l(mu_);
  AddLocked(key);
}

void WorkQueue::AddAfter(const std::string& key, Clock::Duration delay) {
  AddAt(key, clock_.Now() + delay);
}

void WorkQueue::AddAt(const std::string& key, Clock::TimePoint at) {
  std::lock_guard l(mu_);
  if (shutting_down_) return;
  if (at <= clock_.Now()) {
    AddLocked(key);
    return;
  }
  auto it = waiting_.find(key);
  if (it != waiting_.end()) {
    if (it->second <= at) return;
    by_time_.erase({it->second, key});
    it->second = at;
  } else {
    waiting_.emplace(key, at);
  }
  by_time_.insert({at, key});
  // A waiter may be sleeping until a later deadline.
  cv_.notify_all();
}

void WorkQueue::AddRateLimited(const std::string& key) { AddAfter(key, limiter_->When(key)); }

void WorkQueue::Forget(const std::string& key) { limiter_->Forget(key); }

int WorkQueue::NumRequeues(const std::string& key) { return limiter_->NumRequeues(key); }

void WorkQueue::PromoteLocked() {
  if (by_time_.empty()) return;
  auto now = clock_.Now();
  while (!by_time_.empty() && by_time_.begin()->first <= now) {
    std::string key = by_time_.begin()->second;
    by_time_.erase(by_time_.begin());
    waiting_.erase(key);
    AddLocked(key);
  }
}

bool WorkQueue::Get(std::string& key) {
  std::unique_lock l(mu_);
  while (true) {
    if (shutting_down_) return false;
    PromoteLocked();
    if (!queue_.empty()) break;
    if (by_time_.empty()) {
      cv_.wait(l);
    } else {
      clock_.WaitUntil(cv_, l, by_time_.begin()->first);
    }
  }
  key = std::move(queue_.front());
  queue_.pop_front();
  processing_.insert(key);
  dirty_.erase(key);
  return true;
}

void WorkQueue::Done(const std::string& key) {
  std::lock_guard l(mu_);
  processing_.erase(key);
  if (dirty_.contains(key) && !shutting_down_) {
    queue_.push_back(key);
    cv_.notify_one();
  }
}

void WorkQueue::ShutDown() {
  {
    std::lock_guard l(mu_);
    shutting_down_ = true;
    queue_.clear();
    dirty_.clear();
    waiting_.clear();
    by_time_.clear();
  }
  cv_.notify_all();
}

bool WorkQueue::ShuttingDown() const {
  std::lock_guard l(mu_);
  return shutting_down_;
}

size_t WorkQueue::Len() {
  std::lock_guard l(mu_);
  PromoteLocked();
  return queue_.size();
}

size_t WorkQueue::Waiting() const {
  std::lock_guard l(mu_);
  return waiting_.size();
}

}  // namespace kin::controllers
