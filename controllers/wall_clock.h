// WallClock: the calendar time (system_clock) that goes with a controller's
// Clock, for the RFC 3339 times in objects (status.startTime,
// lastScheduleTime, condition times) and cron schedules.
//
// With RealClock() it is the system clock. With any other clock (a test's
// FakeClock) it is the system time at construction plus however far that
// clock has moved since, so a test that advances its FakeClock advances
// the calendar too, and objects stamped by the API server (whose
// creationTimestamp is real time) stay close to it.
//
// Thread-safety: immutable after construction; Now() is as thread-safe as
// the clock's Now().
#pragma once

#include <chrono>

#include "controllers/clock.h"

namespace kin::controllers {

class WallClock {
 public:
  explicit WallClock(Clock& clock)
      : clock_(clock),
        real_(&clock == &RealClock()),
        wall0_(std::chrono::system_clock::now()),
        steady0_(clock.Now()) {}

  std::chrono::system_clock::time_point Now() const {
    if (real_) return std::chrono::system_clock::now();
    return wall0_ +
           std::chrono::duration_cast<std::chrono::system_clock::duration>(clock_.Now() - steady0_);
  }
  Clock& clock() const { return clock_; }

 private:
  Clock& clock_;
  const bool real_;
  const std::chrono::system_clock::time_point wall0_;
  const Clock::TimePoint steady0_;
};

}  // namespace kin::controllers
