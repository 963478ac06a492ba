// CrashBackoff: the kubelet's CrashLoopBackOff, its doubling and its reset
// after an instance ran longer than the threshold (a short one here; the
// node agent's option crash_backoff_reset, 10 min by default).
#include <gtest/gtest.h>

#include "runtime/node_agent.h"

namespace kin {
namespace {

using std::chrono::milliseconds;
using Clock = CrashBackoff::Clock;

CrashBackoff Policy() {
  CrashBackoff b;
  b.base = milliseconds(100);
  b.max = milliseconds(800);
  b.reset = milliseconds(1600);
  return b;
}

TEST(CrashBackoffTest, NoWaitBeforeTheFirstRestartThenTheBaseDoublingUpToTheMax) {
  CrashBackoff b = Policy();
  Clock::time_point t{};
  t += milliseconds(1000);
  b.Started(t, false);
  std::vector<int64_t> waits;
  for (int i = 0; i < 7; ++i) {
    t += milliseconds(10);  // crashes at once
    milliseconds wait = b.Exited(t);
    waits.push_back(wait.count());
    t += wait;
    b.Started(t, true);
  }
  EXPECT_EQ(waits, (std::vector<int64_t>{0, 100, 200, 400, 800, 800, 800}));
}

TEST(CrashBackoffTest, AnInstanceThatRanLongerThanTheResetThresholdEndsTheStreak) {
  CrashBackoff b = Policy();
  Clock::time_point t{};
  t += milliseconds(1000);
  b.Started(t, false);
  for (int i = 0; i < 5; ++i) {
    t += milliseconds(10);
    t += b.Exited(t);
    b.Started(t, true);
  }
  // Ran for exactly the threshold: not longer, the streak goes on.
  t += milliseconds(1600);
  EXPECT_EQ(b.Exited(t), milliseconds(800));
  t += milliseconds(800);
  b.Started(t, true);
  // Ran longer than the threshold: restarted at once, then the base again.
  t += milliseconds(1601);
  EXPECT_EQ(b.Exited(t), milliseconds(0));
  b.Started(t, true);
  t += milliseconds(10);
  EXPECT_EQ(b.Exited(t), milliseconds(100));
  t += milliseconds(100);
  b.Started(t, true);
  t += milliseconds(10);
  EXPECT_EQ(b.Exited(t), milliseconds(200));
}

TEST(CrashBackoffTest, TheNodeAgentsDefaultsAreTheKubelets) {
  NodeAgentOptions o;
  EXPECT_EQ(o.crash_backoff, milliseconds(10000));
  EXPECT_EQ(o.crash_backoff_reset, milliseconds(600000));
  CrashBackoff b;
  EXPECT_EQ(b.max, milliseconds(300000));
  EXPECT_EQ(b.reset, 2 * b.max);
}

}  // namespace
}  // namespace kin
