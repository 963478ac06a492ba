#include "controllers/clock.h"

namespace kin::controllers {

namespace {

class SteadyClock : public Clock {
 public:
  TimePoint Now() const override { return std::chrono::steady_clock::now(); }
  void WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                 TimePoint deadline) const override {
    cv.wait_until(lock, deadline);
  }
  uint64_t Subscribe(std::function<void()>) override { return 0; }
  void Unsubscribe(uint64_t) override {}
};

}  // namespace

Clock& RealClock() {
  static SteadyClock clock;
  return clock;
}

}  // namespace kin::controllers
