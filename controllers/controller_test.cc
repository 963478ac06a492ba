// The controller runtime: reconcile workers (back-off on errors, forget on
// success, requeue after, waiting for caches), the controller manager's
// start/stop order on shared informers, and a controller's identity.
#include "controllers/controller.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>

#include "base/error.h"
#include "client/object.h"
#include "controllers/manager.h"
#include "controllers/registry_fixture.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin::controllers {
namespace {

using namespace std::chrono_literals;
using testing::Eventually;

const ResourceInfo& ConfigMaps() { return *FindResource("", "v1", "configmaps"); }

Json ConfigMap(const std::string& name) {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata", {{"name", name}, {"namespace", "default"}}},
          {"data", {{"k", "v"}}}};
}

// Counts reconcile calls per key; fails a key as often as told.
struct Reconciles {
  std::mutex mu;
  std::map<std::string, int> calls;
  std::map<std::string, int> failures_left;
  std::map<std::string, Result> results;

  ReconcileFunc Func() {
    return [this](const std::string& key) {
      std::lock_guard l(mu);
      calls[key]++;
      if (failures_left[key] > 0) {
        failures_left[key]--;
        throw Error::Conflict("the object has been modified");
      }
      auto it = results.find(key);
      return it == results.end() ? Result::Done() : it->second;
    };
  }
  int Calls(const std::string& key) {
    std::lock_guard l(mu);
    return calls[key];
  }
};

TEST(ReconcileWorkersTest, ErrorsBackOffAndSuccessForgets) {
  FakeClock clock;
  WorkQueueOptions o;
  o.clock = &clock;
  WorkQueue q(o);
  Reconciles r;
  r.failures_left["a"] = 2;
  ReconcileWorkers w("test", q, r.Func());
  w.Start(2);
  q.Add("a");
  ASSERT_TRUE(Eventually([&] { return r.Calls("a") == 1 && q.Waiting() == 1; }));
  EXPECT_EQ(q.NumRequeues("a"), 1);
  clock.Advance(4ms);
  EXPECT_EQ(q.Waiting(), 1u);  // 5 ms back-off
  clock.Advance(1ms);
  ASSERT_TRUE(Eventually([&] { return r.Calls("a") == 2 && q.Waiting() == 1; }));
  EXPECT_EQ(q.NumRequeues("a"), 2);
  clock.Advance(9ms);
  EXPECT_EQ(q.Waiting(), 1u);  // 10 ms now
  clock.Advance(1ms);
  ASSERT_TRUE(Eventually([&] { return r.Calls("a") == 3 && q.NumRequeues("a") == 0; }));
  EXPECT_EQ(q.Waiting(), 0u);
  w.Stop();
  EXPECT_TRUE(q.ShuttingDown());
}

TEST(ReconcileWorkersTest, ResultsRequeueAfterOrRetry) {
  FakeClock clock;
  WorkQueueOptions o;
  o.clock = &clock;
  o.qps = 0;
  WorkQueue q(o);
  Reconciles r;
  r.results["later"] = Result::After(30s);
  r.results["retry"] = Result::Retry();
  ReconcileWorkers w("test", q, r.Func());
  w.Start(1);
  q.Add("later");
  q.Add("retry");
  ASSERT_TRUE(Eventually([&] { return q.Waiting() == 2; }));
  EXPECT_EQ(q.NumRequeues("later"), 0);
  EXPECT_EQ(q.NumRequeues("retry"), 1);
  clock.Advance(5ms);
  ASSERT_TRUE(Eventually([&] { return r.Calls("retry") == 2; }));
  EXPECT_EQ(r.Calls("later"), 1);
  clock.Advance(30s);
  ASSERT_TRUE(Eventually([&] { return r.Calls("later") == 2; }));
  w.Stop();
}

// Result::At counts from a time the reconcile read, not from when its
// result is queued: a clock that moved meanwhile does not delay it.
TEST(ReconcileWorkersTest, ResultAtIsAnAbsoluteTime) {
  FakeClock clock;
  WorkQueueOptions o;
  o.clock = &clock;
  o.qps = 0;
  WorkQueue q(o);
  std::atomic<int> calls{0};
  const Clock::TimePoint due = clock.Now() + 30s;
  ReconcileWorkers w("test", q, [&](const std::string&) {
    if (calls++ == 0) {
      clock.Advance(20s);  // time passes while the reconcile runs
      return Result::At(due);
    }
    return Result::Done();
  });
  w.Start(1);
  q.Add("k");
  ASSERT_TRUE(Eventually([&] { return calls == 1 && q.Waiting() == 1; }));
  clock.Advance(10s);  // 30 s after the reconcile read the clock
  EXPECT_TRUE(Eventually([&] { return calls == 2; }));
  w.Stop();
}

// A registry on SQLite behind LocalClient, as inside `kin serve`.
using RuntimeTest = RegistryTest;

TEST_F(RuntimeTest, WorkersWaitForTheirInformersToSync) {
  cl().Create(ConfigMaps(), "default", ConfigMap("a"));
  Informer informer(cl(), ConfigMaps());
  WorkQueue q;
  std::atomic<int> calls{0}, before_sync{0};
  ReconcileWorkers w("test", q, [&](const std::string&) {
    if (!informer.HasSynced()) before_sync++;
    calls++;
    return Result::Done();
  });
  w.Start(2, {&informer});
  q.Add("default/a");
  informer.Start();
  ASSERT_TRUE(Eventually([&] { return calls.load() == 1; }));
  EXPECT_EQ(before_sync.load(), 0);
  w.Stop();
}

TEST(StartStopOnceTest, StartsOnceStopsOnceNeverStartsAfterStop) {
  StartStopOnce s;
  EXPECT_TRUE(s.TryStart());
  EXPECT_FALSE(s.TryStart());
  EXPECT_TRUE(s.TryStop());
  EXPECT_FALSE(s.TryStop());
  EXPECT_FALSE(s.TryStart());
  StartStopOnce never_started;
  EXPECT_TRUE(never_started.TryStop());
  EXPECT_FALSE(never_started.TryStart());
}

TEST(EnqueueControllerHandlersTest, QueuesTheControllerBeforeAndAfter) {
  auto owned = [](const std::string& kind, const std::string& name) {
    return Json{{"metadata",
                 {{"name", "p"},
                  {"namespace", "ns"},
                  {"ownerReferences",
                   Json::array({{{"apiVersion", "apps/v1"},
                                 {"kind", kind},
                                 {"name", name},
                                 {"uid", "u-" + name},
                                 {"controller", true}}})}}}};
  };
  WorkQueue q;
  InformerHandlers h = EnqueueControllerHandlers(q, "apps/v1", "DaemonSet");
  h.on_add(owned("ReplicaSet", "rs"));  // another kind's
  h.on_add(Json{{"metadata", {{"name", "orphan"}, {"namespace", "ns"}}}});
  EXPECT_EQ(q.Len(), 0u);
  h.on_update(owned("DaemonSet", "a"), owned("DaemonSet", "b"));
  h.on_delete(owned("DaemonSet", "c"));
  std::vector<std::string> keys;
  std::string key;
  while (q.Len() > 0 && q.Get(key)) {
    keys.push_back(key);
    q.Done(key);
  }
  EXPECT_EQ(keys, (std::vector<std::string>{"ns/a", "ns/b", "ns/c"}));
}

TEST_F(RuntimeTest, SubscriptionsSeeEveryChangeUntilRemoved) {
  cl().Create(ConfigMaps(), "default", ConfigMap("a"));
  Informer informer(cl(), ConfigMaps());
  informer.Start();
  ASSERT_TRUE(informer.WaitForSync(std::chrono::seconds(10)));
  std::mutex mu;
  std::vector<std::string> log;
  auto logged = [&] {
    std::lock_guard l(mu);
    return log;
  };
  InformerSubscriptions subs;
  subs.Add(informer, HandlersFrom([&](const Json* old, const Json* now) {
    std::lock_guard l(mu);
    if (!old) {
      log.push_back("add " + object::Name(*now));
    } else if (!now) {
      log.push_back("delete " + object::Name(*old));
    } else {
      log.push_back("update " + object::Name(*old) + " " + now->at("data").value("k", ""));
    }
  }));
  WorkQueue q;
  subs.Add(informer, EnqueueHandlers(q));
  EXPECT_EQ(logged(), (std::vector<std::string>{"add a"}));  // the cache, replayed
  EXPECT_EQ(q.Len(), 1u);
  cl().Patch(ConfigMaps(), "default", "a", PatchType::kMerge, {{"data", {{"k", "w"}}}});
  ASSERT_TRUE(Eventually([&] { return logged().size() == 2; }));
  cl().Delete(ConfigMaps(), "default", "a");
  ASSERT_TRUE(Eventually([&] { return logged().size() == 3; }));
  EXPECT_EQ(logged(), (std::vector<std::string>{"add a", "update a w", "delete a"}));
  subs.RemoveAll();
  cl().Create(ConfigMaps(), "default", ConfigMap("b"));
  ASSERT_TRUE(Eventually([&] { return informer.Lookup("default", "b") != nullptr; }));
  EXPECT_EQ(logged().size(), 3u);  // removed handlers are not called
  subs.RemoveAll();                // idempotent
}

// Records what happens to it in a log shared by all test controllers.
class LoggingController : public Controller {
 public:
  LoggingController(std::string name, SharedInformerFactory& f, std::vector<std::string>& log,
                    std::mutex& mu)
      : name_(std::move(name)), informer_(f.For(ConfigMaps())), log_(log), mu_(mu) {}
  ~LoggingController() override { Stop(); }
  std::string name() const override { return name_; }
  void Start() override {
    Log("start " + name_ + (informer_.HasSynced() ? " synced" : " unsynced"));
    handlers_ = informer_.AddHandlers(
        {.on_add = [this](const Json& o) { Log(name_ + " add " + object::Name(o)); }});
    started_ = true;
  }
  void Stop() override {
    if (!started_) return;
    started_ = false;
    informer_.RemoveHandlers(handlers_);
    Log("stop " + name_);
  }

 private:
  void Log(std::string s) {
    std::lock_guard l(mu_);
    log_.push_back(std::move(s));
  }
  std::string name_;
  Informer& informer_;
  std::vector<std::string>& log_;
  std::mutex& mu_;
  Informer::HandlerId handlers_ = 0;
  bool started_ = false;
};

TEST_F(RuntimeTest, ManagerStartsAfterSyncAndStopsInReverse) {
  cl().Create(ConfigMaps(), "default", ConfigMap("cm1"));
  std::mutex mu;
  std::vector<std::string> log;
  auto logged = [&] {
    std::lock_guard l(mu);
    return log;
  };
  {
    ControllerManager m(cl());
    m.Emplace<LoggingController>("one", m.informers(), log, mu);
    m.Emplace<LoggingController>("two", m.informers(), log, mu);
    EXPECT_EQ(m.names(), (std::vector<std::string>{"one", "two"}));
    EXPECT_EQ(m.informers().informers().size(), 1u);  // shared
    m.Start();
    // Each controller saw the cached object as an add when it registered.
    EXPECT_EQ(logged(), (std::vector<std::string>{"start one synced", "one add cm1",
                                                  "start two synced", "two add cm1"}));
    cl().Create(ConfigMaps(), "default", ConfigMap("cm2"));
    ASSERT_TRUE(Eventually([&] { return logged().size() == 6; }));
    // A controller added while running starts at once.
    m.Emplace<LoggingController>("three", m.informers(), log, mu);
    ASSERT_TRUE(Eventually([&] { return logged().size() == 9; }));
    m.Stop();
    auto all = logged();
    EXPECT_EQ(std::vector<std::string>(all.end() - 3, all.end()),
              (std::vector<std::string>{"stop three", "stop two", "stop one"}));
    m.Stop();  // idempotent
  }
  // Nothing runs after the manager has gone.
  size_t n = logged().size();
  cl().Create(ConfigMaps(), "default", ConfigMap("cm3"));
  EXPECT_EQ(logged().size(), n);
}

TEST_F(RuntimeTest, ManagerStopBeforeStartStartsNothing) {
  std::mutex mu;
  std::vector<std::string> log;
  ControllerManager m(cl());
  m.Emplace<LoggingController>("one", m.informers(), log, mu);
  m.Stop();
  m.Start();
  EXPECT_TRUE(log.empty());
}

TEST_F(RuntimeTest, ComponentClientWritesAsItsFieldManagerAndEventSource) {
  ComponentClient id(cl(), "replicaset-controller");
  EXPECT_EQ(id.component(), "replicaset-controller");
  Json cm = id.client().Create(ConfigMaps(), "default", ConfigMap("owned"));
  ASSERT_TRUE(cm["metadata"].contains("managedFields"));
  EXPECT_EQ(cm["metadata"]["managedFields"][0]["manager"], "replicaset-controller");
  // A write naming its own manager keeps it.
  WriteOptions wo;
  wo.field_manager = "someone-else";
  Json other = id.client().Create(ConfigMaps(), "default", ConfigMap("other"), wo);
  EXPECT_EQ(other["metadata"]["managedFields"][0]["manager"], "someone-else");

  cm["kind"] = "ConfigMap";
  cm["apiVersion"] = "v1";
  id.events().Normal(cm, "Tested", "an event");
  Json events = cl().List(EventsResource(), "default");
  ASSERT_EQ(events["items"].size(), 1u);
  EXPECT_EQ(events["items"][0]["source"]["component"], "replicaset-controller");
  EXPECT_EQ(events["items"][0]["reportingComponent"], "replicaset-controller");
  EXPECT_EQ(events["items"][0]["involvedObject"]["name"], "owned");
}

}  // namespace
}  // namespace kin::controllers
