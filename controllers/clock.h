// Clock: the time source of work queues and rate limiters, so that unit
// tests drive time with FakeClock instead of sleeping.
//
// A waiter blocks with WaitUntil(cv, lock, deadline): the real clock waits
// on the condition variable with that deadline; a fake clock waits until
// notified, and Advance() notifies every subscriber (Subscribe), which
// wakes its waiters so that they look at the new time. Subscribers must
// take their own mutex in the callback before notifying, so no wake-up is
// lost between a waiter's check of Now() and its wait.
//
// Thread-safety: thread-safe. FakeClock::Now never blocks, so it may be
// called under any lock; Advance calls subscribers under the clock's
// subscriber lock, so a subscriber must not Subscribe/Unsubscribe from its
// callback.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>

namespace kin::controllers {

class Clock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using Duration = std::chrono::steady_clock::duration;

  virtual ~Clock() = default;
  virtual TimePoint Now() const = 0;
  // Waits on `cv` (whose mutex `lock` holds) until notified or until this
  // clock reaches `deadline`; may return early (callers re-check).
  virtual void WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                         TimePoint deadline) const = 0;
  // `fn` is called after every jump of the clock (fake clocks only: real
  // time needs no callback). Returns an id for Unsubscribe.
  virtual uint64_t Subscribe(std::function<void()> fn) = 0;
  virtual void Unsubscribe(uint64_t id) = 0;
};

// The process's steady clock.
Clock& RealClock();

// A clock that moves only when told; starts at an arbitrary fixed point.
class FakeClock : public Clock {
 public:
  TimePoint Now() const override { return TimePoint(Duration(now_.load())); }
  void WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                 TimePoint deadline) const override {
    if (Now() < deadline) cv.wait(lock);
  }
  uint64_t Subscribe(std::function<void()> fn) override {
    std::lock_guard l(mu_);
    subscribers_[next_id_] = std::move(fn);
    return next_id_++;
  }
  void Unsubscribe(uint64_t id) override {
    std::lock_guard l(mu_);
    subscribers_.erase(id);
  }
  void Advance(Duration d) {
    std::lock_guard l(mu_);
    now_ += d.count();
    for (auto& [id, fn] : subscribers_) fn();
  }

 private:
  std::atomic<Duration::rep> now_{
      std::chrono::duration_cast<Duration>(std::chrono::hours(1)).count()};
  std::mutex mu_;  // subscribers_; Advance holds it so time moves in order
  std::map<uint64_t, std::function<void()>> subscribers_;
  uint64_t next_id_ = 1;
};

}  // namespace kin::controllers
