#include "apiserver/store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/resource.h>

#include <csignal>
#include <cstring>

#include <atomic>
#include <filesystem>
#include <set>
#include <thread>

#include "base/error.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin::apiserver {
namespace {

Json Obj(const std::string& name, const std::string& app = "web") {
  return {{"metadata", {{"name", name}, {"labels", {{"app", app}}}}}, {"spec", {{"x", 1}}}};
}

Mutation Put(Json o) { return Mutation{Mutation::Action::kPut, std::move(o)}; }

class StoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<Store> Open(size_t history = 1000) {
    StoreOptions o;
    o.history_limit = history;
    o.index_fields = [](const std::string&, const Json& obj) {
      return FieldSet{{"metadata.name", obj["metadata"].value("name", "")}};
    };
    return Store::Open(dir_.File("kin.db"), o);
  }
  testing::TempDir dir_;
};

TEST_F(StoreTest, PutGetListInKeyOrderWithResourceVersions) {
  auto s = Open();
  for (auto [ns, name] : {std::pair{"b", "z"}, {"a", "y"}, {"a", "x"}, {"b", "a"}}) {
    s->Mutate("pods", ns, name, [&](const Json* cur) {
      EXPECT_EQ(cur, nullptr);
      return Put(Obj(name));
    });
  }
  EXPECT_EQ(s->revision(), 4u);
  auto rec = s->Get("pods", "a", "x");
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->rv, 3u);
  EXPECT_EQ(rec->Parse()["metadata"]["resourceVersion"], "3");
  auto all = s->List("pods", "", nullptr);
  std::vector<std::string> order;
  for (auto& r : all.items) order.push_back(r.ns + "/" + r.name);
  EXPECT_EQ(order, (std::vector<std::string>{"a/x", "a/y", "b/a", "b/z"}));
  EXPECT_EQ(all.rv, 4u);
  EXPECT_EQ(s->List("pods", "b", nullptr).items.size(), 2u);
  EXPECT_TRUE(s->List("pods", "c", nullptr).items.empty());
  EXPECT_TRUE(s->List("services", "", nullptr).items.empty());
}

TEST_F(StoreTest, ListPagesWithLimitAndStartAfter) {
  auto s = Open();
  for (int i = 0; i < 5; ++i) {
    std::string n = "p" + std::to_string(i);
    s->Mutate("pods", "ns", n, [&](const Json*) { return Put(Obj(n)); });
  }
  auto page1 = s->List("pods", "ns", nullptr, 2);
  ASSERT_EQ(page1.items.size(), 2u);
  EXPECT_EQ(page1.next_key, "ns/p1");
  auto page2 = s->List("pods", "ns", nullptr, 2, page1.next_key);
  EXPECT_EQ(page2.items[0].name, "p2");
  auto page3 = s->List("pods", "ns", nullptr, 2, page2.next_key);
  EXPECT_EQ(page3.items.size(), 1u);
  EXPECT_TRUE(page3.next_key.empty());
}

TEST_F(StoreTest, FailedMutationChangesNothing) {
  auto s = Open();
  s->Mutate("pods", "ns", "a", [&](const Json*) { return Put(Obj("a")); });
  EXPECT_THROW(s->Mutate("pods", "ns", "a",
                         [&](const Json*) -> Mutation { throw Error::Conflict("stale"); }),
               Error);
  EXPECT_EQ(s->revision(), 1u);
  auto none = s->Mutate("pods", "ns", "a", [&](const Json*) { return Mutation{}; });
  EXPECT_EQ(none.rv, 1u);
  EXPECT_EQ(s->revision(), 1u);
}

// An object that cannot be serialized (invalid UTF-8) throws before the
// revision moves: the next write gets the next revision, nobody hears of it.
TEST_F(StoreTest, UnserializableObjectChangesNothing) {
  auto s = Open();
  s->Mutate("pods", "ns", "a", [&](const Json*) { return Put(Obj("a")); });
  auto w = s->Watch("pods", 1);
  Json bad = Obj("a");
  bad["spec"]["x"] = std::string("\xff\xfe");
  EXPECT_THROW(s->Mutate("pods", "ns", "a", [&](const Json*) { return Put(bad); }),
               Json::exception);
  EXPECT_EQ(s->revision(), 1u);
  EXPECT_EQ(s->Get("pods", "ns", "a")->Parse()["spec"]["x"], 1);
  std::shared_ptr<const StoreEvent> ev;
  EXPECT_FALSE(w->Pop(ev, std::chrono::milliseconds(0)));
  EXPECT_EQ(s->Mutate("pods", "ns", "b", [&](const Json*) { return Put(Obj("b")); }).rv, 2u);
}

// A write SQLite fails with an I/O error (here EFBIG: the WAL may not grow
// past RLIMIT_FSIZE) is a 500 naming the error, where it happened and the
// database, and is undone like a full disk's; the next write works.
TEST_F(StoreTest, IoErrorOnCommitIs500NamingItAndChangesNothing) {
  auto s = Open();
  s->Mutate("pods", "ns", "a", [&](const Json*) { return Put(Obj("a")); });
  auto w = s->Watch("pods", 1);
  struct sigaction ignore {
  }, old_action{};
  ignore.sa_handler = SIG_IGN;  // else writing past the limit kills the process
  ASSERT_EQ(::sigaction(SIGXFSZ, &ignore, &old_action), 0);
  rlimit old_limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  rlimit limit = old_limit;
  limit.rlim_cur = std::max(std::filesystem::file_size(dir_.File("kin.db")),
                            std::filesystem::file_size(dir_.File("kin.db-wal")));
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limit), 0);
  Json big = Obj("a");
  big["spec"]["x"] = std::string(64 << 10, 'x');
  std::optional<Error> failed;
  try {
    s->Mutate("pods", "ns", "a", [&](const Json*) { return Put(big); });
  } catch (const Error& e) {
    failed = e;
  }
  ::setrlimit(RLIMIT_FSIZE, &old_limit);
  ::sigaction(SIGXFSZ, &old_action, nullptr);
  ASSERT_TRUE(failed) << "the write succeeded past the file size limit";
  EXPECT_EQ(failed->http_status(), 500);
  // SQLite keeps the errno only sometimes (not here: it is lost by the
  // time the error is reported), so the operation is named.
  const std::string& m = failed->message();
  EXPECT_EQ(m.rfind("write to the cluster store: disk I/O error in a write", 0), 0u) << m;
  EXPECT_TRUE(m.ends_with(" (" + dir_.File("kin.db") + ")")) << m;
  EXPECT_EQ(s->revision(), 1u);
  EXPECT_EQ(s->Get("pods", "ns", "a")->Parse()["spec"]["x"], 1);
  std::shared_ptr<const StoreEvent> ev;
  EXPECT_FALSE(w->Pop(ev, std::chrono::milliseconds(0)));
  EXPECT_EQ(s->Mutate("pods", "ns", "a", [&](const Json*) { return Put(big); }).rv, 2u);
}

TEST_F(StoreTest, WatchReplaysFromRevisionThenFollows) {
  auto s = Open();
  for (int i = 0; i < 3; ++i) {
    std::string n = "p" + std::to_string(i);
    s->Mutate("pods", "ns", n, [&](const Json*) { return Put(Obj(n)); });
  }
  s->Mutate("services", "ns", "svc", [&](const Json*) { return Put(Obj("svc")); });
  auto q = s->Watch("pods", 1);  // changes after revision 1
  std::shared_ptr<const StoreEvent> e;
  ASSERT_TRUE(q->Pop(e, std::chrono::seconds(1)));
  EXPECT_EQ(e->rv, 2u);
  ASSERT_TRUE(q->Pop(e, std::chrono::seconds(1)));
  EXPECT_EQ(e->rv, 3u);
  EXPECT_FALSE(q->Pop(e, std::chrono::milliseconds(10)));  // services not delivered
  s->Mutate("pods", "ns", "p0", [&](const Json*) {
    return Mutation{Mutation::Action::kDelete, {}};
  });
  ASSERT_TRUE(q->Pop(e, std::chrono::seconds(1)));
  EXPECT_EQ(e->type, StoreEvent::Type::kDeleted);
  EXPECT_EQ(e->rv, 5u);
  EXPECT_EQ(e->now.Parse()["metadata"]["resourceVersion"], "5");
  EXPECT_EQ(e->prev.rv, 1u);
  s->StopWatch(q);
  EXPECT_EQ(s->open_watches(), 0u);
}

TEST_F(StoreTest, WatchFromCompactedRevisionIsGone) {
  auto s = Open(/*history=*/3);
  for (int i = 0; i < 10; ++i) {
    std::string n = "p" + std::to_string(i);
    s->Mutate("pods", "ns", n, [&](const Json*) { return Put(Obj(n)); });
  }
  EXPECT_EQ(s->compacted_revision(), 7u);
  try {
    s->Watch("pods", 2);
    FAIL() << "expected Gone";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kGone);
    EXPECT_EQ(e.http_status(), 410);
  }
  auto q = s->Watch("pods", 7);
  std::shared_ptr<const StoreEvent> e;
  ASSERT_TRUE(q->Pop(e, std::chrono::seconds(1)));
  EXPECT_EQ(e->rv, 8u);
}

// The history is bounded in bytes too: big objects push old changes out
// sooner, and a watch from before them is Gone; the newest change stays.
TEST_F(StoreTest, HistoryIsBoundedInBytes) {
  StoreOptions o;
  o.history_limit = 1000;
  o.history_bytes = 10000;
  o.index_fields = [](const std::string&, const Json&) { return FieldSet{}; };
  auto s = Store::Open(dir_.File("kin.db"), o);
  Json big = Obj("big");
  big["spec"]["blob"] = std::string(3000, 'x');
  for (int i = 0; i < 10; ++i) {
    std::string n = "p" + std::to_string(i);
    Json obj = big;
    obj["metadata"]["name"] = n;
    s->Mutate("pods", "ns", n, [&](const Json*) { return Put(obj); });
  }
  // About 3 KB each: only the last three fit in 10,000 bytes.
  EXPECT_EQ(s->compacted_revision(), 7u);
  EXPECT_THROW(s->Watch("pods", 6), Error);
  auto q = s->Watch("pods", 7);
  std::shared_ptr<const StoreEvent> e;
  ASSERT_TRUE(q->Pop(e, std::chrono::seconds(1)));
  EXPECT_EQ(e->rv, 8u);
  s->StopWatch(q);

  big["spec"]["blob"] = std::string(20000, 'y');  // larger than the budget alone
  s->Mutate("pods", "ns", "huge", [&](const Json*) { return Put(big); });
  EXPECT_EQ(s->compacted_revision(), 10u) << "the newest change stays";
}

// Memory keeps only the newest part of the window; a watch from before it
// still gets every change of its bucket, in order, read from SQLite, and
// then the ones in memory, each once. Also after a restart, which loads
// only the newest part.
TEST_F(StoreTest, WatchReplaysOlderChangesFromDisk) {
  StoreOptions o;
  o.history_limit = 1000;
  o.history_bytes = 1 << 20;
  o.memory_history_bytes = 2000;  // about five of these objects
  o.index_fields = [](const std::string&, const Json& obj) {
    return FieldSet{{"metadata.name", obj["metadata"].value("name", "")}};
  };
  auto write_all = [&](Store& s) {
    for (int i = 0; i < 20; ++i) {
      std::string n = "p" + std::to_string(i % 7);
      Json obj = Obj(n, i % 2 ? "odd" : "even");
      obj["spec"]["pad"] = std::string(300, 'x');
      // Pods and services interleaved: a replay must keep to its bucket.
      s.Mutate(i % 3 ? "pods" : "services", "ns", n, [&](const Json* cur) {
        if (cur != nullptr && i % 5 == 0) return Mutation{Mutation::Action::kDelete, {}};
        return Put(obj);
      });
    }
  };
  // Changes 1..20 are the writes above; after them, `late` is added (21)
  // and deleted (22).
  auto expect_replay = [&](Store& s, uint64_t last) {
    for (uint64_t from : {0u, 1u, 6u, 13u, 19u}) {
      auto q = s.Watch("pods", from == 0 ? 0 : from);
      std::vector<uint64_t> got;
      std::shared_ptr<const StoreEvent> e;
      while (q->Pop(e, std::chrono::milliseconds(50))) {
        EXPECT_EQ(e->bucket, "pods");
        EXPECT_EQ(e->now.rv, e->rv);
        EXPECT_EQ(e->now.Parse()["metadata"]["resourceVersion"], std::to_string(e->rv));
        ASSERT_NE(e->now.labels, nullptr);
        if (e->type != StoreEvent::Type::kDeleted && e->rv <= 20) {
          EXPECT_EQ((*e->now.labels)["app"], e->rv % 2 ? "even" : "odd") << e->rv;
        }
        ASSERT_NE(e->now.Field("metadata.name"), nullptr);
        got.push_back(e->rv);
      }
      std::vector<uint64_t> want;
      for (uint64_t rv = (from == 0 ? last + 1 : from + 1); rv <= last; ++rv) {
        if (rv > 20 || (rv - 1) % 3 != 0) want.push_back(rv);
      }
      EXPECT_EQ(got, want) << "from " << from;
      s.StopWatch(q);
    }
  };
  {
    auto s = Store::Open(dir_.File("kin.db"), o);
    write_all(*s);
    EXPECT_EQ(s->compacted_revision(), 0u) << "the whole window is replayable";
    EXPECT_LE(s->history_in_memory(), 5u) << "memory keeps the newest 2,000 bytes";
    EXPECT_GE(s->history_in_memory(), 3u);
    expect_replay(*s, 20);
    // A change after the watch starts arrives once, after the replay.
    auto q = s->Watch("pods", 1);
    s->Mutate("pods", "ns", "late", [&](const Json*) { return Put(Obj("late")); });
    std::shared_ptr<const StoreEvent> e;
    uint64_t last = 0;
    while (q->Pop(e, std::chrono::milliseconds(50))) {
      EXPECT_GT(e->rv, last);
      last = e->rv;
    }
    EXPECT_EQ(last, 21u);
    s->StopWatch(q);
    s->Mutate("pods", "ns", "late", [&](const Json*) {
      return Mutation{Mutation::Action::kDelete, {}};
    });
  }
  // Deletes record the object's last state: two more changes (21, 22).
  auto s = Store::Open(dir_.File("kin.db"), o);
  EXPECT_EQ(s->revision(), 22u);
  // Four padded objects and the two small changes of `late`.
  EXPECT_LE(s->history_in_memory(), 6u) << "a restart loads only the newest";
  expect_replay(*s, 22);
  auto q = s->Watch("pods", 19);
  std::vector<std::pair<uint64_t, StoreEvent::Type>> got;
  std::shared_ptr<const StoreEvent> e;
  while (q->Pop(e, std::chrono::milliseconds(50))) got.emplace_back(e->rv, e->type);
  EXPECT_EQ(got, (std::vector<std::pair<uint64_t, StoreEvent::Type>>{
                     {20, StoreEvent::Type::kModified},
                     {21, StoreEvent::Type::kAdded},
                     {22, StoreEvent::Type::kDeleted}}));
  s->StopWatch(q);
}

TEST_F(StoreTest, RestartKeepsObjectsRevisionAndHistory) {
  {
    auto s = Open();
    for (int i = 0; i < 4; ++i) {
      std::string n = "p" + std::to_string(i);
      s->Mutate("pods", "ns", n, [&](const Json*) { return Put(Obj(n)); });
    }
    s->Mutate("pods", "ns", "p3", [&](const Json*) {
      return Mutation{Mutation::Action::kDelete, {}};
    });
  }
  auto s = Open();
  EXPECT_EQ(s->revision(), 5u);
  EXPECT_EQ(s->List("pods", "", nullptr).items.size(), 3u);
  EXPECT_FALSE(s->Get("pods", "ns", "p3"));
  // Watch continuity across the restart: replay what happened after rv 2.
  auto q = s->Watch("pods", 2);
  std::vector<uint64_t> rvs;
  std::shared_ptr<const StoreEvent> e;
  while (q->Pop(e, std::chrono::milliseconds(50))) rvs.push_back(e->rv);
  EXPECT_EQ(rvs, (std::vector<uint64_t>{3, 4, 5}));
  auto rec = s->Mutate("pods", "ns", "new", [&](const Json*) { return Put(Obj("new")); });
  EXPECT_EQ(rec.rv, 6u);
  ASSERT_TRUE(q->Pop(e, std::chrono::seconds(1)));
  EXPECT_EQ(e->rv, 6u);
}

TEST_F(StoreTest, ConcurrentWritersGetUniqueRevisionsAndWatchersSeeAllInOrder) {
  auto s = Open(100000);
  auto q = s->Watch("pods", 0);
  const int kThreads = 8, kEach = 200;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        std::string n = "t" + std::to_string(t) + "-" + std::to_string(i);
        s->Mutate("pods", "ns", n, [&](const Json*) { return Put(Obj(n)); });
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(s->revision(), static_cast<uint64_t>(kThreads * kEach));
  uint64_t last = 0;
  int n = 0;
  std::shared_ptr<const StoreEvent> e;
  while (q->Pop(e, std::chrono::milliseconds(100))) {
    EXPECT_EQ(e->rv, last + 1);
    last = e->rv;
    ++n;
  }
  EXPECT_EQ(n, kThreads * kEach);
}

// Readers see only durable writes. Another connection holds SQLite's write
// lock, so three writes (an update, a create, a delete) wait in their
// commit, applied in memory; meanwhile Get, List, Count and revision() show
// the state before them. Once the lock goes, all three are seen.
TEST_F(StoreTest, ReadersSeeOnlyDurableWrites) {
  auto s = Open();
  s->Mutate("pods", "a", "x", [](const Json*) { return Put(Obj("x")); });
  s->Mutate("pods", "a", "gone", [](const Json*) { return Put(Obj("gone")); });
  ASSERT_EQ(s->revision(), 2u);
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(dir_.File("kin.db").c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  // Each flag is set inside Mutate's callback, under the store's lock: a
  // read that takes the lock after it sees the write applied in memory.
  std::atomic<int> applied{0};
  std::vector<std::thread> writers;
  writers.emplace_back([&] {
    s->Mutate("pods", "a", "x", [&](const Json*) {
      ++applied;
      Json o = Obj("x");
      o["spec"]["x"] = 2;
      return Put(o);
    });
  });
  writers.emplace_back([&] {
    s->Mutate("pods", "a", "new", [&](const Json*) {
      ++applied;
      return Put(Obj("new"));
    });
  });
  writers.emplace_back([&] {
    s->Mutate("pods", "a", "gone", [&](const Json*) {
      ++applied;
      return Mutation{Mutation::Action::kDelete, {}};
    });
  });
  ASSERT_TRUE(testing::Eventually([&] { return applied == 3; }, std::chrono::seconds(4)));
  auto x = s->Get("pods", "a", "x");
  ASSERT_TRUE(x);
  EXPECT_EQ(x->Parse()["spec"]["x"], 1);
  EXPECT_FALSE(s->Get("pods", "a", "new"));
  EXPECT_TRUE(s->Get("pods", "a", "gone"));
  auto list = s->List("pods", "a", nullptr);
  std::vector<std::string> names;
  for (const auto& r : list.items) names.push_back(r.name + "@" + std::to_string(r.rv));
  EXPECT_EQ(names, (std::vector<std::string>{"gone@2", "x@1"}));
  EXPECT_EQ(list.rv, 2u);
  // Paging over the durable view: after "a/gone" comes "a/x".
  auto page = s->List("pods", "", nullptr, 1, "a/gone");
  ASSERT_EQ(page.items.size(), 1u);
  EXPECT_EQ(page.items[0].name, "x");
  EXPECT_EQ(s->Count("pods"), 2u);
  EXPECT_EQ(s->revision(), 2u);

  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  for (auto& w : writers) w.join();
  EXPECT_EQ(s->Get("pods", "a", "x")->Parse()["spec"]["x"], 2);
  EXPECT_TRUE(s->Get("pods", "a", "new"));
  EXPECT_FALSE(s->Get("pods", "a", "gone"));
  EXPECT_EQ(s->Count("pods"), 2u);
  EXPECT_EQ(s->revision(), 5u);
}

TEST_F(StoreTest, SlowWatcherIsCutOffNotBlockingWriters) {
  StoreOptions o;
  o.watch_queue_capacity = 5;
  auto s = Store::Open(dir_.File("kin.db"), o);
  auto q = s->Watch("pods", 0);
  for (int i = 0; i < 10; ++i) {
    std::string n = "p" + std::to_string(i);
    s->Mutate("pods", "ns", n, [&](const Json*) { return Put(Obj(n)); });
  }
  EXPECT_TRUE(q->overflowed());
  EXPECT_TRUE(q->closed());
}

}  // namespace
}  // namespace kin::apiserver
