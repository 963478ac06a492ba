#include "client/informer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>

#include "base/error.h"
#include "testing/kernel_fixture.h"  // Eventually

namespace kin {
namespace {

using testing::Eventually;

// One watch of the fake client, fed by the test.
struct FakeWatchState {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<WatchEvent> events;
  bool closed = false;  // the "server" ended the stream
  bool stopped = false;
  ListOptions opts;

  void Send(std::string type, Json obj) {
    std::lock_guard lock(mu);
    events.push_back({std::move(type), std::move(obj)});
    cv.notify_all();
  }
  void Close() {
    std::lock_guard lock(mu);
    closed = true;
    cv.notify_all();
  }
  bool Stopped() {
    std::lock_guard lock(mu);
    return stopped;
  }
};

class FakeWatch : public Watch {
 public:
  explicit FakeWatch(std::shared_ptr<FakeWatchState> s) : s_(std::move(s)) {}
  ~FakeWatch() override { Stop(); }
  bool Next(WatchEvent& event, std::chrono::milliseconds timeout) override {
    std::unique_lock lock(s_->mu);
    s_->cv.wait_for(lock, timeout,
                    [&] { return !s_->events.empty() || s_->closed || s_->stopped; });
    if (s_->stopped || s_->events.empty()) return false;
    event = std::move(s_->events.front());
    s_->events.pop_front();
    if (event.type == "ERROR") s_->closed = true;
    return true;
  }
  bool ended() const override {
    std::lock_guard lock(s_->mu);
    return s_->stopped || (s_->closed && s_->events.empty());
  }
  void Stop() override {
    std::lock_guard lock(s_->mu);
    s_->stopped = true;
    s_->cv.notify_all();
  }

 private:
  std::shared_ptr<FakeWatchState> s_;
};

// An in-memory API for one resource: the test changes objects behind the
// informer's back and decides what each watch delivers.
class FakeClient : public Client {
 public:
  // Stores `obj` (stamping a new resourceVersion) without telling any watch.
  Json Put(const std::string& ns, const std::string& name, Json spec = Json::object(),
           Json labels = nullptr, Json managed_fields = nullptr) {
    std::lock_guard lock(mu_);
    Json obj = {{"kind", "Pod"},
                {"metadata",
                 {{"namespace", ns}, {"name", name}, {"resourceVersion", std::to_string(++rv_)}}},
                {"spec", std::move(spec)}};
    if (!labels.is_null()) obj["metadata"]["labels"] = std::move(labels);
    if (!managed_fields.is_null()) obj["metadata"]["managedFields"] = std::move(managed_fields);
    objects_[ns + "/" + name] = obj;
    return obj;
  }
  Json Remove(const std::string& ns, const std::string& name) {
    std::lock_guard lock(mu_);
    Json obj = objects_.at(ns + "/" + name);
    objects_.erase(ns + "/" + name);
    obj["metadata"]["resourceVersion"] = std::to_string(++rv_);
    return obj;
  }
  void FailNextWatchWith(Error e) {
    std::lock_guard lock(mu_);
    watch_error_ = std::move(e);
  }
  void FailNextListWith(Error e) {
    std::lock_guard lock(mu_);
    list_error_ = std::move(e);
  }
  int lists() {
    std::lock_guard lock(mu_);
    return lists_;
  }
  std::vector<ListOptions> list_opts() {
    std::lock_guard lock(mu_);
    return list_opts_;
  }
  size_t watch_count() {
    std::lock_guard lock(mu_);
    return watches_.size();
  }
  std::shared_ptr<FakeWatchState> watch(size_t i) {
    std::lock_guard lock(mu_);
    return watches_.at(i);
  }
  std::string rv() {
    std::lock_guard lock(mu_);
    return std::to_string(rv_);
  }

  Json List(const ResourceInfo&, const std::string&, const ListOptions& opts) override {
    std::lock_guard lock(mu_);
    ++lists_;
    list_opts_.push_back(opts);
    if (list_error_) {
      Error e = *list_error_;
      list_error_.reset();
      throw e;
    }
    Json items = Json::array();
    for (const auto& [key, obj] : objects_) items.push_back(obj);
    return {{"kind", "PodList"},
            {"metadata", {{"resourceVersion", std::to_string(rv_)}}},
            {"items", items}};
  }
  std::unique_ptr<Watch> StartWatch(const ResourceInfo&, const std::string&,
                                    const ListOptions& opts) override {
    std::lock_guard lock(mu_);
    if (watch_error_) {
      Error e = *watch_error_;
      watch_error_.reset();
      ++failed_watches_;
      throw e;
    }
    auto s = std::make_shared<FakeWatchState>();
    s->opts = opts;
    watches_.push_back(s);
    return std::make_unique<FakeWatch>(s);
  }
  int failed_watches() {
    std::lock_guard lock(mu_);
    return failed_watches_;
  }

  Json Get(const ResourceInfo&, const std::string&, const std::string&) override {
    return Unused();
  }
  Json Create(const ResourceInfo&, const std::string&, const Json&, const WriteOptions&) override {
    return Unused();
  }
  Json Update(const ResourceInfo&, const std::string&, const Json&, const std::string&,
              const WriteOptions&) override {
    return Unused();
  }
  Json Patch(const ResourceInfo&, const std::string&, const std::string&, PatchType, const Json&,
             const std::string&, const WriteOptions&) override {
    return Unused();
  }
  Json Delete(const ResourceInfo&, const std::string&, const std::string&,
              const DeleteOptions&) override {
    return Unused();
  }
  Json CreateSubresource(const ResourceInfo&, const std::string&, const std::string&,
                         const std::string&, const Json&) override {
    return Unused();
  }

 private:
  static Json Unused() { throw Error::MethodNotAllowed("the informer must only list and watch"); }

  std::mutex mu_;
  std::map<std::string, Json> objects_;
  int64_t rv_ = 0;
  int lists_ = 0;
  int failed_watches_ = 0;
  std::vector<ListOptions> list_opts_;
  std::vector<std::shared_ptr<FakeWatchState>> watches_;
  std::optional<Error> watch_error_, list_error_;
};

std::string Name(const Json& obj) {
  return obj["metadata"]["namespace"].get<std::string>() + "/" +
         obj["metadata"]["name"].get<std::string>();
}
std::string Rv(const Json& obj) { return obj["metadata"]["resourceVersion"]; }

// Records handler calls as "add ns/a@rv", "update ns/a@rv->rv", "delete ns/a@rv".
class Recorder {
 public:
  InformerHandlers Handlers() {
    return {
        .on_add = [this](const Json& o) { Record("add " + Name(o) + "@" + Rv(o)); },
        .on_update =
            [this](const Json& old, const Json& now) {
              Record("update " + Name(now) + "@" + Rv(old) + "->" + Rv(now));
            },
        .on_delete = [this](const Json& o) { Record("delete " + Name(o) + "@" + Rv(o)); },
    };
  }
  std::vector<std::string> calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  size_t size() {
    std::lock_guard lock(mu_);
    return calls_.size();
  }
  bool WaitFor(size_t n) {
    return Eventually([&] { return size() >= n; });
  }
  void Clear() {
    std::lock_guard lock(mu_);
    calls_.clear();
  }

 private:
  void Record(std::string s) {
    std::lock_guard lock(mu_);
    calls_.push_back(std::move(s));
  }
  std::mutex mu_;
  std::vector<std::string> calls_;
};

using Calls = std::vector<std::string>;

class InformerTest : public ::testing::Test {
 protected:
  // Starts an informer and waits for its first watch.
  void StartInformer(InformerOptions opts = {}) {
    informer_ = std::make_unique<Informer>(client_, PodsResource(), opts, rec_.Handlers());
    informer_->Start();
    ASSERT_TRUE(informer_->WaitForSync(std::chrono::seconds(10)));
    ASSERT_TRUE(WaitForWatches(1));
  }
  bool WaitForWatches(size_t n) {
    return Eventually([&] { return client_.watch_count() >= n; });
  }

  FakeClient client_;
  Recorder rec_;
  std::unique_ptr<Informer> informer_;
};

TEST_F(InformerTest, InitialListFiresAddsAndSyncs) {
  client_.Put("default", "a");
  client_.Put("default", "b");
  client_.Put("other", "c");
  informer_ = std::make_unique<Informer>(
      client_, PodsResource(),
      InformerOptions{.ns = "", .label_selector = "app=web", .field_selector = "spec.x=y"},
      rec_.Handlers());
  EXPECT_FALSE(informer_->HasSynced());
  informer_->Start();
  ASSERT_TRUE(informer_->WaitForSync(std::chrono::seconds(10)));
  EXPECT_TRUE(informer_->HasSynced());
  // The adds have all run by the time the informer reports synced.
  EXPECT_EQ(rec_.calls(), (Calls{"add default/a@1", "add default/b@2", "add other/c@3"}));
  ASSERT_TRUE(informer_->Get("default", "b").has_value());
  EXPECT_EQ(Rv(*informer_->Get("default", "b")), "2");
  EXPECT_FALSE(informer_->Get("default", "c").has_value());
  EXPECT_EQ(informer_->List().size(), 3u);

  // The list and the watch carry the selectors; the watch starts at the list's version.
  ASSERT_TRUE(WaitForWatches(1));
  EXPECT_EQ(client_.list_opts()[0].label_selector, "app=web");
  EXPECT_EQ(client_.list_opts()[0].field_selector, "spec.x=y");
  const ListOptions& wo = client_.watch(0)->opts;
  EXPECT_EQ(wo.resource_version, "3");
  EXPECT_TRUE(wo.allow_bookmarks);
  EXPECT_EQ(wo.label_selector, "app=web");
  EXPECT_EQ(wo.field_selector, "spec.x=y");
}

TEST_F(InformerTest, WaitForSyncTimesOutWhenListingFails) {
  client_.FailNextListWith(Error::Unavailable("connection refused"));
  informer_ =
      std::make_unique<Informer>(client_, PodsResource(), InformerOptions{}, rec_.Handlers());
  informer_->Start();
  // The informer retries the list by itself.
  EXPECT_TRUE(informer_->WaitForSync(std::chrono::seconds(10)));
  EXPECT_EQ(client_.lists(), 2);
}

TEST_F(InformerTest, WatchEventsFireHandlersInOrder) {
  Json a = client_.Put("default", "a");
  Json b = client_.Put("default", "b");
  StartInformer();
  rec_.Clear();
  auto w = client_.watch(0);
  Json c = client_.Put("default", "c");
  w->Send("ADDED", c);
  Json a2 = client_.Put("default", "a", {{"replicas", 2}});
  w->Send("MODIFIED", a2);
  w->Send("BOOKMARK", {{"kind", "Pod"}, {"metadata", {{"resourceVersion", "99"}}}});
  w->Send("DELETED", client_.Remove("default", "b"));
  Json c2 = client_.Put("default", "c", {{"x", 1}});
  w->Send("ADDED", c2);  // already known: an update
  Json d = client_.Put("default", "d");
  w->Send("MODIFIED", d);  // never seen: an add
  w->Send("DELETED", Json{{"metadata", {{"namespace", "default"}, {"name", "ghost"}}}});
  w->Send("ADDED", client_.Put("default", "e"));  // marks the end
  ASSERT_TRUE(rec_.WaitFor(6));
  // The ghost's deletion (never cached) fired nothing.
  EXPECT_EQ(rec_.calls(), (Calls{"add default/c@3", "update default/a@1->4", "delete default/b@5",
                                 "update default/c@3->6", "add default/d@7", "add default/e@8"}));
  EXPECT_EQ(informer_->Get("default", "a")->at("spec"), Json({{"replicas", 2}}));
  EXPECT_FALSE(informer_->Get("default", "b").has_value());
  EXPECT_EQ(informer_->List().size(), 4u);  // a, c, d, e
  // No relist happened.
  EXPECT_EQ(client_.lists(), 1);
  EXPECT_EQ(client_.watch_count(), 1u);
}

TEST_F(InformerTest, GoneErrorEventRelistsAndEmitsTheDifferences) {
  client_.Put("default", "a");
  client_.Put("default", "b");
  client_.Put("default", "c");
  StartInformer();
  rec_.Clear();
  // While the watch misses them: a changes, b goes, d comes, c stays.
  client_.Put("default", "a", {{"changed", true}});
  client_.Remove("default", "b");
  client_.Put("default", "d");
  client_.watch(0)->Send("ERROR", {{"kind", "Status"},
                                   {"code", 410},
                                   {"reason", "Expired"},
                                   {"message", "too old resource version"}});
  ASSERT_TRUE(WaitForWatches(2));
  ASSERT_TRUE(rec_.WaitFor(3));
  EXPECT_EQ(rec_.calls(),
            (Calls{"update default/a@1->4", "add default/d@6", "delete default/b@2"}));
  EXPECT_EQ(client_.lists(), 2);
  EXPECT_EQ(client_.watch(1)->opts.resource_version, "6");
  EXPECT_TRUE(client_.watch(0)->Stopped());
  EXPECT_FALSE(informer_->Get("default", "b").has_value());
  EXPECT_TRUE(informer_->Get("default", "d").has_value());

  // The new watch is live.
  client_.watch(1)->Send("DELETED", client_.Remove("default", "c"));
  ASSERT_TRUE(rec_.WaitFor(4));
  EXPECT_EQ(rec_.calls().back(), "delete default/c@7");
}

TEST_F(InformerTest, GoneFromStartWatchRelists) {
  client_.Put("default", "a");
  client_.FailNextWatchWith(Error::Gone("too old resource version: 1 (7)"));
  informer_ =
      std::make_unique<Informer>(client_, PodsResource(), InformerOptions{}, rec_.Handlers());
  informer_->Start();
  ASSERT_TRUE(WaitForWatches(1));
  EXPECT_EQ(client_.failed_watches(), 1);
  EXPECT_EQ(client_.lists(), 2);
  // Listing again found nothing new: no second add.
  EXPECT_EQ(rec_.calls(), Calls{"add default/a@1"});
}

TEST_F(InformerTest, StreamEndRelistsWithoutRepeatingUnchangedObjects) {
  client_.Put("default", "a");
  client_.Put("default", "b");
  StartInformer();
  rec_.Clear();
  client_.Put("default", "b", {{"v", 2}});
  client_.watch(0)->Close();
  ASSERT_TRUE(WaitForWatches(2));
  ASSERT_TRUE(rec_.WaitFor(1));
  EXPECT_EQ(rec_.calls(), Calls{"update default/b@2->3"});
  EXPECT_EQ(client_.lists(), 2);
}

TEST_F(InformerTest, OtherErrorEventsAlsoRelist) {
  client_.Put("default", "a");
  StartInformer();
  client_.watch(0)->Send("ERROR", {{"kind", "Status"}, {"code", 500}, {"message", "boom"}});
  ASSERT_TRUE(WaitForWatches(2));
  EXPECT_EQ(client_.lists(), 2);
  EXPECT_EQ(rec_.calls(), Calls{"add default/a@1"});
}

TEST_F(InformerTest, ClusterScopedKeysAndGet) {
  informer_ =
      std::make_unique<Informer>(client_, NodesResource(), InformerOptions{}, rec_.Handlers());
  client_.Put("", "node-a");
  informer_->Start();
  ASSERT_TRUE(informer_->WaitForSync(std::chrono::seconds(10)));
  EXPECT_TRUE(informer_->Get("", "node-a").has_value());
  EXPECT_TRUE(informer_->Get("ignored", "node-a").has_value());
}

TEST_F(InformerTest, HandlerExceptionsDoNotStopTheInformer) {
  std::atomic<int> adds{0};
  informer_ = std::make_unique<Informer>(client_, PodsResource(), InformerOptions{},
                                         InformerHandlers{.on_add = [&](const Json&) {
                                           ++adds;
                                           throw std::runtime_error("handler bug");
                                         }});
  client_.Put("default", "a");
  informer_->Start();
  ASSERT_TRUE(informer_->WaitForSync(std::chrono::seconds(10)));
  ASSERT_TRUE(WaitForWatches(1));
  client_.watch(0)->Send("ADDED", client_.Put("default", "b"));
  EXPECT_TRUE(Eventually([&] { return adds == 2; }));
  EXPECT_TRUE(informer_->Get("default", "b").has_value());
}

TEST_F(InformerTest, StopStopsTheWatchAndJoins) {
  client_.Put("default", "a");
  StartInformer();
  auto w = client_.watch(0);
  informer_->Stop();
  EXPECT_TRUE(w->Stopped());
  size_t calls = rec_.size();
  // Nothing runs any more: no handler, no new list or watch.
  w->Send("ADDED", client_.Put("default", "late"));
  w->Close();
  EXPECT_EQ(rec_.size(), calls);
  EXPECT_EQ(client_.lists(), 1);
  EXPECT_EQ(client_.watch_count(), 1u);
  informer_->Stop();                                        // idempotent
  EXPECT_TRUE(informer_->Get("default", "a").has_value());  // the cache stays readable
  informer_.reset();
}

TEST_F(InformerTest, StopFromAHandlerDoesNotDeadlock) {
  client_.Put("default", "a");
  Informer* self = nullptr;
  std::atomic<bool> stopped{false};
  informer_ = std::make_unique<Informer>(client_, PodsResource(), InformerOptions{},
                                         InformerHandlers{.on_add = [&](const Json&) {
                                           self->Stop();
                                           stopped = true;
                                         }});
  self = informer_.get();
  informer_->Start();
  EXPECT_TRUE(Eventually([&] { return stopped.load(); }));
  informer_.reset();  // joins
  EXPECT_EQ(client_.watch_count(), 0u);
}

TEST_F(InformerTest, StopBeforeStartAndWithoutStart) {
  Informer never(client_, PodsResource());
  Informer stopped(client_, PodsResource());
  stopped.Stop();
  stopped.Start();  // refused after Stop
  EXPECT_FALSE(stopped.WaitForSync(std::chrono::milliseconds(10)));
  EXPECT_EQ(client_.lists(), 0);
}

// --- Sharing: handlers and indexes added at any time, pointer listers. ---

std::vector<std::string> Keys(const std::vector<ObjectPtr>& objs) {
  std::vector<std::string> out;
  for (const auto& o : objs) out.push_back(Name(*o));
  return out;
}

TEST_F(InformerTest, HandlersAddedLaterGetTheCacheAsAddsThenEvents) {
  client_.Put("default", "a");
  client_.Put("default", "b");
  StartInformer();
  Recorder late;
  informer_->AddHandlers(late.Handlers());
  // At once, on this thread: one add per cached object.
  EXPECT_EQ(late.calls(), (Calls{"add default/a@1", "add default/b@2"}));
  auto w = client_.watch(0);
  w->Send("MODIFIED", client_.Put("default", "a", {{"v", 2}}));
  ASSERT_TRUE(late.WaitFor(3));
  EXPECT_EQ(late.calls().back(), "update default/a@1->3");
  ASSERT_TRUE(rec_.WaitFor(3));
  EXPECT_EQ(rec_.calls(), (Calls{"add default/a@1", "add default/b@2", "update default/a@1->3"}));
  informer_->Stop();  // before `late` goes
}

TEST_F(InformerTest, HandlersAddedBeforeStartSeeTheListOnce) {
  client_.Put("default", "a");
  informer_ = std::make_unique<Informer>(client_, PodsResource());
  Recorder r;
  informer_->AddHandlers(r.Handlers());
  EXPECT_EQ(r.size(), 0u);
  informer_->Start();
  ASSERT_TRUE(informer_->WaitForSync(std::chrono::seconds(10)));
  EXPECT_EQ(r.calls(), Calls{"add default/a@1"});
  informer_->Stop();
}

TEST_F(InformerTest, RemovedHandlersAreNotCalledAgain) {
  client_.Put("default", "a");
  StartInformer();
  Recorder gone;
  auto id = informer_->AddHandlers(gone.Handlers());
  ASSERT_EQ(gone.size(), 1u);
  informer_->RemoveHandlers(id);
  auto w = client_.watch(0);
  w->Send("ADDED", client_.Put("default", "b"));
  w->Send("ADDED", client_.Put("default", "c"));
  // rec_ is dispatched to in the same pass as `gone` would have been.
  ASSERT_TRUE(rec_.WaitFor(3));
  EXPECT_EQ(gone.calls(), Calls{"add default/a@1"});
  informer_->Stop();
}

TEST_F(InformerTest, AHandlerMayAddHandlers) {
  client_.Put("default", "a");
  informer_ = std::make_unique<Informer>(client_, PodsResource());
  Recorder inner;
  std::atomic<bool> added{false};
  informer_->AddHandlers({.on_add = [&](const Json&) {
    if (!added.exchange(true)) informer_->AddHandlers(inner.Handlers());
  }});
  informer_->Start();
  ASSERT_TRUE(informer_->WaitForSync(std::chrono::seconds(10)));
  EXPECT_EQ(inner.calls(), Calls{"add default/a@1"});
  informer_->Stop();
}

TEST_F(InformerTest, IndexesFollowWatchEventsAndRelists) {
  client_.Put("default", "a", Json::object(), {{"app", "web"}});
  client_.Put("default", "b", Json::object(), {{"app", "db"}});
  client_.Put("other", "c", Json::object(), {{"app", "web"}});
  informer_ = std::make_unique<Informer>(client_, PodsResource());
  EXPECT_TRUE(informer_->AddLabelIndex("app"));
  EXPECT_FALSE(informer_->AddLabelIndex("app"));  // shared, not replaced
  informer_->Start();
  ASSERT_TRUE(informer_->WaitForSync(std::chrono::seconds(10)));
  ASSERT_TRUE(WaitForWatches(1));
  const std::string app = LabelIndexName("app");
  EXPECT_EQ(Keys(informer_->ByIndex(app, "web")), (Calls{"default/a", "other/c"}));
  EXPECT_EQ(Keys(informer_->ByIndex(app, "db")), Calls{"default/b"});
  EXPECT_TRUE(informer_->ByIndex(app, "cache").empty());

  // An index added later covers what is cached.
  EXPECT_TRUE(informer_->AddIndex(kNamespaceIndex, IndexByNamespace));
  EXPECT_EQ(informer_->IndexKeys(kNamespaceIndex, "default"), (Calls{"default/a", "default/b"}));

  auto w = client_.watch(0);
  w->Send("MODIFIED", client_.Put("default", "a", Json::object(), {{"app", "db"}}));
  w->Send("DELETED", client_.Remove("other", "c"));
  w->Send("ADDED", client_.Put("other", "d", Json::object(), {{"tier", "x"}}));
  ASSERT_TRUE(Eventually([&] { return informer_->Lookup("other", "d") != nullptr; }));  // the last
  EXPECT_EQ(informer_->Size(), 3u);
  EXPECT_TRUE(informer_->ByIndex(app, "web").empty());
  EXPECT_EQ(Keys(informer_->ByIndex(app, "db")), (Calls{"default/a", "default/b"}));
  EXPECT_EQ(informer_->IndexKeys(kNamespaceIndex, "other"), Calls{"other/d"});

  // Changes missed by the watch reach the index through the relist.
  client_.Put("default", "b", Json::object(), {{"app", "web"}});
  client_.watch(0)->Close();
  ASSERT_TRUE(WaitForWatches(2));
  ASSERT_TRUE(Eventually([&] { return informer_->ByIndex(app, "web").size() == 1; }));
  EXPECT_EQ(Keys(informer_->ByIndex(app, "db")), Calls{"default/a"});
  EXPECT_THROW(informer_->ByIndex("no-such-index", "x"), Error);
}

TEST_F(InformerTest, HandlersSeeIndexesAlreadyUpdated) {
  informer_ = std::make_unique<Informer>(client_, PodsResource());
  informer_->AddLabelIndex("app");
  std::atomic<size_t> seen{0};
  informer_->AddHandlers({.on_add = [&](const Json&) {
    seen = informer_->ByIndex(LabelIndexName("app"), "web").size();
  }});
  informer_->Start();
  ASSERT_TRUE(WaitForWatches(1));
  client_.watch(0)->Send("ADDED", client_.Put("default", "a", Json::object(), {{"app", "web"}}));
  EXPECT_TRUE(Eventually([&] { return seen.load() == 1; }));
  informer_->Stop();
}

TEST_F(InformerTest, LookupSharesTheCachedObjectWithoutCopying) {
  client_.Put("default", "a");
  StartInformer();
  ObjectPtr a1 = informer_->Lookup("default", "a");
  ASSERT_TRUE(a1);
  EXPECT_EQ(a1.get(), informer_->Lookup("default", "a").get());
  EXPECT_EQ(a1.get(), informer_->LookupKey("default/a").get());
  EXPECT_EQ(a1.get(), informer_->Items().at(0).get());
  EXPECT_FALSE(informer_->Lookup("default", "zz"));
  client_.watch(0)->Send("MODIFIED", client_.Put("default", "a", {{"v", 2}}));
  ASSERT_TRUE(Eventually([&] { return informer_->Lookup("default", "a").get() != a1.get(); }));
  // The old pointer still holds the old state.
  EXPECT_EQ(Rv(*a1), "1");
  EXPECT_EQ(Rv(*informer_->Lookup("default", "a")), "2");
}

// The cache drops managedFields, from lists and from watch events alike.
TEST_F(InformerTest, CachedObjectsHaveNoManagedFields) {
  Json fields = Json::array({{{"manager", "kubectl"}, {"operation", "Update"}}});
  client_.Put("default", "a", Json::object(), nullptr, fields);
  std::atomic<bool> handler_saw_fields{false};
  StartInformer();
  ASSERT_TRUE(informer_->Lookup("default", "a"));
  EXPECT_FALSE(informer_->Lookup("default", "a")->at("metadata").contains("managedFields"));
  informer_->AddHandlers({.on_update = [&](const Json&, const Json& now) {
    if (now["metadata"].contains("managedFields")) handler_saw_fields = true;
  }});
  Json b = client_.Put("default", "a", {{"v", 2}}, nullptr, fields);
  client_.watch(0)->Send("MODIFIED", b);
  ASSERT_TRUE(Eventually([&] { return Rv(*informer_->Lookup("default", "a")) == Rv(b); }));
  EXPECT_FALSE(informer_->Lookup("default", "a")->at("metadata").contains("managedFields"));
  EXPECT_EQ(informer_->Lookup("default", "a")->at("spec")["v"], 2);
  EXPECT_FALSE(handler_saw_fields);
}

TEST(InformerIndexTest, StandardIndexFunctions) {
  Json pod = {{"metadata",
               {{"namespace", "ns1"},
                {"name", "p"},
                {"labels", {{"app", "web"}}},
                {"ownerReferences",
                 Json::array({{{"uid", "u1"}, {"controller", true}}, {{"uid", "u2"}}})}}},
              {"spec", {{"nodeName", "w1"}}}};
  EXPECT_EQ(IndexByNamespace(pod), Calls{"ns1"});
  EXPECT_EQ(IndexByOwnerUid(pod), (Calls{"u1", "u2"}));
  EXPECT_EQ(IndexByNodeName(pod), Calls{"w1"});
  EXPECT_EQ(IndexByLabel("app")(pod), Calls{"web"});
  EXPECT_TRUE(IndexByLabel("tier")(pod).empty());
  Json bare = {{"metadata", {{"name", "n"}}}};
  EXPECT_TRUE(IndexByNamespace(bare).empty());
  EXPECT_TRUE(IndexByOwnerUid(bare).empty());
  EXPECT_TRUE(IndexByNodeName(bare).empty());
  EXPECT_TRUE(IndexByNodeName(Json("not an object")).empty());
}

}  // namespace
}  // namespace kin
