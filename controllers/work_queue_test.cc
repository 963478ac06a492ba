// The work queue: de-duplication, one worker per key, delays and back-off
// driven by a fake clock (no test sleeps), shutdown.
#include "controllers/work_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "testing/kernel_fixture.h"  // Eventually

namespace kin::controllers {
namespace {

using namespace std::chrono_literals;
using testing::Eventually;

std::string MustGet(WorkQueue& q) {
  std::string key;
  EXPECT_TRUE(q.Get(key));
  return key;
}

WorkQueueOptions Fake(FakeClock& clock) {
  WorkQueueOptions o;
  o.clock = &clock;
  return o;
}

TEST(WorkQueueTest, AddDeduplicatesAndKeepsOrder) {
  FakeClock clock;
  WorkQueue q(Fake(clock));
  q.Add("a");
  q.Add("b");
  q.Add("a");
  EXPECT_EQ(q.Len(), 2u);
  EXPECT_EQ(MustGet(q), "a");
  EXPECT_EQ(MustGet(q), "b");
  EXPECT_EQ(q.Len(), 0u);
}

TEST(WorkQueueTest, AKeyAddedWhileProcessingWaitsForDone) {
  FakeClock clock;
  WorkQueue q(Fake(clock));
  q.Add("a");
  ASSERT_EQ(MustGet(q), "a");
  q.Add("a");  // dirty: not handed to a second worker
  q.Add("a");
  EXPECT_EQ(q.Len(), 0u);
  q.Done("a");
  EXPECT_EQ(q.Len(), 1u);  // once, however often it was added
  ASSERT_EQ(MustGet(q), "a");
  q.Done("a");
  EXPECT_EQ(q.Len(), 0u);  // not dirty this time
}

TEST(WorkQueueTest, AddAfterWaitsForTheClock) {
  FakeClock clock;
  WorkQueue q(Fake(clock));
  q.AddAfter("a", 1s);
  EXPECT_EQ(q.Len(), 0u);
  EXPECT_EQ(q.Waiting(), 1u);
  clock.Advance(999ms);
  EXPECT_EQ(q.Len(), 0u);
  clock.Advance(1ms);
  EXPECT_EQ(q.Len(), 1u);
  EXPECT_EQ(q.Waiting(), 0u);
  q.AddAfter("b", 0s);  // no delay: at once
  EXPECT_EQ(q.Len(), 2u);
}

TEST(WorkQueueTest, AddAtIsAnAbsoluteTime) {
  FakeClock clock;
  WorkQueue q(Fake(clock));
  const Clock::TimePoint due = clock.Now() + 10s;
  clock.Advance(4s);  // time passes before the key is added
  q.AddAt("a", due);
  clock.Advance(5999ms);
  EXPECT_EQ(q.Len(), 0u);
  clock.Advance(1ms);
  EXPECT_EQ(q.Len(), 1u);
  q.AddAt("b", clock.Now() - 1s);  // past: at once
  EXPECT_EQ(q.Len(), 2u);
}

TEST(WorkQueueTest, AWaitingKeyKeepsTheEarlierTime) {
  FakeClock clock;
  WorkQueue q(Fake(clock));
  q.AddAfter("a", 2s);
  q.AddAfter("a", 1s);
  q.AddAfter("a", 5s);
  EXPECT_EQ(q.Waiting(), 1u);
  clock.Advance(1s);
  EXPECT_EQ(q.Len(), 1u);
  ASSERT_EQ(MustGet(q), "a");
  q.Done("a");
  clock.Advance(10s);
  EXPECT_EQ(q.Len(), 0u);  // the later times were dropped
}

TEST(WorkQueueTest, AWaitingGetWakesWhenTheClockAdvances) {
  FakeClock clock;
  WorkQueue q(Fake(clock));
  q.AddAfter("a", 10s);
  std::atomic<bool> got{false};
  std::thread t([&] {
    std::string key;
    if (q.Get(key) && key == "a") got = true;
  });
  clock.Advance(5s);
  clock.Advance(5s);
  EXPECT_TRUE(Eventually([&] { return got.load(); }));
  q.ShutDown();
  t.join();
}

TEST(WorkQueueTest, AnEarlierAddAfterWakesAGetWaitingForALaterOne) {
  FakeClock clock;
  WorkQueue q(Fake(clock));
  q.AddAfter("late", 1h);
  std::atomic<int> got{0};
  std::string key;
  std::thread t([&] {
    std::string k;
    if (q.Get(k)) {
      key = k;
      got = 1;
    }
  });
  q.Add("now");
  ASSERT_TRUE(Eventually([&] { return got.load() == 1; }));
  t.join();
  EXPECT_EQ(key, "now");
}

TEST(WorkQueueTest, ShutDownWakesWaitingGetsAndDropsKeys) {
  FakeClock clock;
  WorkQueue q(Fake(clock));
  std::atomic<int> returned{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&] {
      std::string key;
      if (!q.Get(key)) returned++;
    });
  }
  q.AddAfter("later", 1s);
  q.ShutDown();
  EXPECT_TRUE(Eventually([&] { return returned.load() == 3; }));
  for (auto& t : threads) t.join();
  EXPECT_TRUE(q.ShuttingDown());
  q.Add("a");
  clock.Advance(2s);
  EXPECT_EQ(q.Len(), 0u);
  std::string key;
  EXPECT_FALSE(q.Get(key));
}

TEST(WorkQueueTest, RateLimitedAddsBackOffExponentiallyUntilForgotten) {
  FakeClock clock;
  WorkQueueOptions o = Fake(clock);
  o.qps = 0;  // per-key back-off only
  WorkQueue q(o);
  auto requeue_delay = [&](const std::string& key) {
    q.AddRateLimited(key);
    Clock::Duration waited{};
    while (q.Len() == 0) {
      clock.Advance(1ms);
      waited += 1ms;
      if (waited > 1s) break;
    }
    EXPECT_EQ(MustGet(q), key);
    q.Done(key);
    return std::chrono::duration_cast<std::chrono::milliseconds>(waited);
  };
  EXPECT_EQ(requeue_delay("a"), 5ms);
  EXPECT_EQ(requeue_delay("a"), 10ms);
  EXPECT_EQ(requeue_delay("a"), 20ms);
  EXPECT_EQ(q.NumRequeues("a"), 3);
  EXPECT_EQ(requeue_delay("b"), 5ms);  // per key
  q.Forget("a");
  EXPECT_EQ(q.NumRequeues("a"), 0);
  EXPECT_EQ(requeue_delay("a"), 5ms);
}

TEST(RateLimiterTest, ExponentialBackOffIsCapped) {
  ItemExponentialRateLimiter r(5ms, 1000s);
  EXPECT_EQ(r.When("a"), 5ms);
  EXPECT_EQ(r.When("a"), 10ms);
  Clock::Duration last{};
  for (int i = 0; i < 200; ++i) last = r.When("a");  // far past any overflow
  EXPECT_EQ(last, 1000s);
  EXPECT_EQ(r.NumRequeues("a"), 202);
}

TEST(RateLimiterTest, TokenBucketAllowsABurstThenQps) {
  FakeClock clock;
  BucketRateLimiter r(clock, 10, 3);
  EXPECT_EQ(r.When("a"), 0ms);
  EXPECT_EQ(r.When("b"), 0ms);
  EXPECT_EQ(r.When("c"), 0ms);
  EXPECT_EQ(std::chrono::round<std::chrono::milliseconds>(r.When("d")), 100ms);
  EXPECT_EQ(std::chrono::round<std::chrono::milliseconds>(r.When("e")), 200ms);
  clock.Advance(1s);  // 10 tokens back, but never more than the burst
  EXPECT_EQ(r.When("f"), 0ms);
  EXPECT_EQ(r.When("g"), 0ms);
  EXPECT_EQ(r.When("h"), 0ms);
  EXPECT_GT(r.When("i"), 0ms);
}

TEST(WorkQueueTest, TheDefaultLimiterIsTheLongerOfBackOffAndBucket) {
  FakeClock clock;
  WorkQueueOptions o = Fake(clock);
  o.qps = 1;
  o.burst = 1;
  WorkQueue q(o);
  q.AddRateLimited("a");  // a token is there: the back-off (5 ms) decides
  clock.Advance(5ms);
  EXPECT_EQ(q.Len(), 1u);
  q.AddRateLimited("b");  // the bucket is empty: ~1 s
  clock.Advance(900ms);
  EXPECT_EQ(q.Len(), 1u);
  clock.Advance(100ms);
  EXPECT_EQ(q.Len(), 2u);
}

TEST(WorkQueueTest, ManyWorkersNeverShareAKeyAndMissNoAdd) {
  WorkQueue q;  // the real clock: nothing here is delayed
  std::mutex mu;
  std::set<std::string> in_flight;
  std::map<std::string, int> last_seen;   // key -> the generation seen last
  std::map<std::string, int> generation;  // key -> the generation added last
  bool overlap = false;
  std::vector<std::thread> workers;
  for (int i = 0; i < 4; ++i) {
    workers.emplace_back([&] {
      std::string key;
      while (q.Get(key)) {
        {
          std::lock_guard l(mu);
          if (!in_flight.insert(key).second) overlap = true;
          last_seen[key] = generation[key];
        }
        std::this_thread::yield();
        {
          std::lock_guard l(mu);
          in_flight.erase(key);
        }
        q.Done(key);
      }
    });
  }
  for (int i = 0; i < 2000; ++i) {
    std::string key = "k" + std::to_string(i % 7);
    {
      std::lock_guard l(mu);
      generation[key]++;
    }
    q.Add(key);
  }
  // Every key is processed after its last add.
  EXPECT_TRUE(Eventually([&] {
    std::lock_guard l(mu);
    return last_seen == generation;
  }));
  q.ShutDown();
  for (auto& t : workers) t.join();
  EXPECT_FALSE(overlap);
}

}  // namespace
}  // namespace kin::controllers
