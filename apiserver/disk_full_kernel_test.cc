// Kernel tests for a full state directory: each test mounts a 4 MiB tmpfs
// (root is needed to mount), fills it with a filler file to the last byte,
// and checks that writes fail with a 500 naming the cause while reads and
// watches go on, that a failed write changes nothing (no revision, no watch
// event, no object in memory, no allocation), and that once the filler is
// gone writes work again and SQLite's integrity check passes. Then the same
// for the other files kin serve writes to its state directory (node and pod
// files through WriteFileAtomic, the IPAM state file).
//
// The mount is under /tmp/<the fixture's prefix>: TearDown unmounts it, and
// the fixture's own sweep removes it too should TearDown not get that far.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <set>
#include <thread>

#include "apiserver/apiserver.h"
#include "apiserver/registry.h"
#include "apiserver/store.h"
#include "base/error.h"
#include "base/fd.h"
#include "base/file.h"
#include "base/http_client.h"
#include "netstack/ipam.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin::apiserver {
namespace {

namespace fs = std::filesystem;

class DiskFullKernelTest : public kin::testing::KernelTest {
 protected:
  void SetUp() override {
    KernelTest::SetUp();
    if (IsSkipped()) return;
    root_ = (fs::temp_directory_path() / (prefix() + "-full")).string();
    fs::create_directories(root_);
    ASSERT_EQ(::mount("tmpfs", root_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=0700"),
              0)
        << "mount tmpfs on " << root_ << ": " << std::strerror(errno);
    mounted_ = true;
  }
  void TearDown() override {
    // Everything holding files on the mount goes before it is unmounted.
    Cleanup();
    if (mounted_ && ::umount2(root_.c_str(), MNT_DETACH) != 0) {
      ADD_FAILURE() << "umount " << root_ << ": " << std::strerror(errno);
    }
    KernelTest::TearDown();
    std::error_code ec;
    if (!root_.empty()) fs::remove_all(root_, ec);
  }
  // Subclass state on the mount (stores, servers) is dropped here.
  virtual void Cleanup() {}

  // Fills the filesystem: big writes, then ever smaller ones, until not even
  // one byte fits; then gives `leave` bytes back.
  void Fill(off_t leave = 0) {
    filler_ = root_ + "/filler";
    UniqueFd fd(::open(filler_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    ASSERT_TRUE(fd) << std::strerror(errno);
    std::string chunk(64 << 10, 'f');
    for (size_t size = chunk.size(); size >= 1; size /= 2) {
      while (::write(fd.get(), chunk.data(), size) == static_cast<ssize_t>(size)) {
      }
    }
    ASSERT_EQ(::write(fd.get(), "f", 1), -1);
    ASSERT_EQ(errno, ENOSPC);
    if (leave > 0) {
      off_t size = ::lseek(fd.get(), 0, SEEK_END);
      ASSERT_GT(size, leave);
      ASSERT_EQ(::ftruncate(fd.get(), size - leave), 0) << std::strerror(errno);
    }
  }
  void Free() { ASSERT_EQ(::unlink(filler_.c_str()), 0) << std::strerror(errno); }

  // A 500 that names the cause and the database.
  static void ExpectFullDiskError(const Error& e, const std::string& db) {
    EXPECT_EQ(e.code(), Code::kInternal) << e.message();
    EXPECT_EQ(e.http_status(), 500);
    EXPECT_EQ(e.message().rfind("write to the cluster store: ", 0), 0u) << e.message();
    EXPECT_NE(e.message().find("database or disk is full"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("(" + db + ")"), std::string::npos) << e.message();
  }

  static std::string IntegrityCheck(const std::string& db) {
    sqlite3* h = nullptr;
    std::string out;
    if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
      sqlite3_exec(
          h, "PRAGMA integrity_check",
          [](void* o, int, char** v, char**) {
            *static_cast<std::string*>(o) += v[0] ? v[0] : "";
            return 0;
          },
          &out, nullptr);
    } else {
      out = sqlite3_errmsg(h);
    }
    sqlite3_close_v2(h);
    return out;
  }

  static std::vector<std::string> FilesIn(const std::string& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }

  std::string root_;
  std::string filler_;
  bool mounted_ = false;
};

Json Obj(const std::string& name, size_t payload = 16) {
  return {{"metadata", {{"name", name}}}, {"data", std::string(payload, 'x')}};
}
Mutation Put(Json o) { return Mutation{Mutation::Action::kPut, std::move(o)}; }

class StoreDiskFullTest : public DiskFullKernelTest {
 protected:
  void Cleanup() override { store_.reset(); }
  void OpenStore() {
    store_.reset();
    store_ = Store::Open(db_ = root_ + "/kin.db");
  }
  std::string db_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreDiskFullTest, WritesFailWith500AndChangeNothingReadsAndWatchesGoOn) {
  OpenStore();
  Store& s = *store_;
  s.Mutate("cm", "ns", "a", [](const Json*) { return Put(Obj("a")); });
  s.Mutate("cm", "ns", "b", [](const Json*) { return Put(Obj("b")); });
  const uint64_t rv = s.revision();
  auto watch = s.Watch("cm", rv);
  ASSERT_NO_FATAL_FAILURE(Fill());

  // Create, update and delete: each refused, each leaving everything as it was.
  auto expect_refused = [&](const std::string& name, const std::function<Mutation()>& what) {
    SCOPED_TRACE(name);
    try {
      s.Mutate("cm", "ns", name, [&](const Json*) { return what(); });
      ADD_FAILURE() << "the write succeeded on a full disk";
    } catch (const Error& e) {
      ExpectFullDiskError(e, db_);
    }
    EXPECT_EQ(s.revision(), rv);
    EXPECT_EQ(s.Count("cm"), 2u);
    EXPECT_FALSE(s.Get("cm", "ns", "c"));
    auto a = s.Get("cm", "ns", "a");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->rv, rv - 1);
    EXPECT_EQ(a->Parse()["data"], std::string(16, 'x'));
    ASSERT_TRUE(s.Get("cm", "ns", "b"));
    // Events are dispatched before Mutate returns: none can be on its way.
    std::shared_ptr<const StoreEvent> ev;
    EXPECT_FALSE(watch->Pop(ev, std::chrono::milliseconds(0))) << "an event for a failed write";
  };
  expect_refused("c", [] { return Put(Obj("c", 200 << 10)); });
  expect_refused("a", [] { return Put(Obj("a", 200 << 10)); });
  expect_refused("b", [] { return Mutation{Mutation::Action::kDelete, {}}; });

  // Reads and new watches work on the full disk.
  EXPECT_EQ(s.List("cm", "", nullptr).items.size(), 2u);
  auto late = s.Watch("cm", rv - 1);  // replays b's creation
  std::shared_ptr<const StoreEvent> ev;
  ASSERT_TRUE(late->Pop(ev, std::chrono::milliseconds(0)));
  EXPECT_EQ(ev->now.name, "b");

  // Space back: the next write gets the next revision, as if nothing failed.
  ASSERT_NO_FATAL_FAILURE(Free());
  Record c = s.Mutate("cm", "ns", "c", [](const Json*) { return Put(Obj("c", 200 << 10)); });
  EXPECT_EQ(c.rv, rv + 1);
  ASSERT_TRUE(watch->Pop(ev, std::chrono::seconds(5)));
  EXPECT_EQ(ev->type, StoreEvent::Type::kAdded);
  EXPECT_EQ(ev->rv, rv + 1);
  EXPECT_EQ(ev->now.name, "c");
  s.Mutate("cm", "ns", "a", [](const Json*) { return Put(Obj("a", 32)); });
  s.Mutate("cm", "ns", "b", [](const Json*) { return Mutation{Mutation::Action::kDelete, {}}; });
  EXPECT_EQ(s.revision(), rv + 3);
  EXPECT_EQ(IntegrityCheck(db_), "ok");

  // What is on disk is what was acknowledged.
  OpenStore();
  EXPECT_EQ(store_->revision(), rv + 3);
  EXPECT_FALSE(store_->Get("cm", "ns", "b"));
  ASSERT_TRUE(store_->Get("cm", "ns", "c"));
  EXPECT_EQ(store_->Get("cm", "ns", "a")->Parse()["data"], std::string(32, 'x'));
}

// Concurrent writers share commits: a failed commit fails every write in it
// and every write queued after it, and what the store then holds in memory
// is exactly what is on disk.
TEST_F(StoreDiskFullTest, ConcurrentWritersOnAFullDiskLeaveMemoryEqualToDisk) {
  OpenStore();
  // Room for some of the writes: the disk fills up while they run.
  ASSERT_NO_FATAL_FAILURE(Fill(256 << 10));
  constexpr int kThreads = 4, kWrites = 20;
  std::atomic<int> failed{0};
  std::mutex mu;
  std::set<std::string> acknowledged;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kWrites; ++i) {
        std::string name = "o" + std::to_string(t) + "-" + std::to_string(i);
        try {
          store_->Mutate("cm", "ns", name, [&](const Json*) { return Put(Obj(name, 20 << 10)); });
          std::lock_guard lock(mu);
          acknowledged.insert(name);
        } catch (const Error& e) {
          ++failed;
          ExpectFullDiskError(e, db_);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_GT(failed.load(), 0);
  EXPECT_FALSE(acknowledged.empty());
  std::set<std::string> in_memory;
  for (const auto& r : store_->List("cm", "", nullptr).items) in_memory.insert(r.name);
  EXPECT_EQ(in_memory, acknowledged);
  EXPECT_EQ(store_->revision(), acknowledged.size());

  ASSERT_NO_FATAL_FAILURE(Free());
  EXPECT_EQ(IntegrityCheck(db_), "ok");
  OpenStore();
  std::set<std::string> on_disk;
  for (const auto& r : store_->List("cm", "", nullptr).items) on_disk.insert(r.name);
  EXPECT_EQ(on_disk, acknowledged);
  EXPECT_EQ(store_->revision(), acknowledged.size());
}

// Through kin serve's API server: the REST layer answers a Status, the
// registry's Service allocators give back what the failed create took.
class ApiDiskFullTest : public DiskFullKernelTest {
 protected:
  void Cleanup() override {
    if (api_) api_->Stop();
    api_.reset();
  }
  std::unique_ptr<ApiServer> api_;
};

TEST_F(ApiDiskFullTest, HttpWritesAre500StatusesReadsAndWatchesGoOn) {
  Options o;
  o.state_dir = root_;
  api_ = std::make_unique<ApiServer>(o);
  api_->Start();
  const std::string db = root_ + "/kin.db";
  http::HttpClient c(
      http::ClientOptions{.base_url = "http://127.0.0.1:" + std::to_string(api_->port())});
  const std::string cms = "/api/v1/namespaces/default/configmaps";
  const http::Headers json = {{"Content-Type", "application/json"}};
  auto cm = [](const std::string& name, size_t size) {
    return Json{{"apiVersion", "v1"},
                {"kind", "ConfigMap"},
                {"metadata", {{"name", name}}},
                {"data", {{"k", std::string(size, 'x')}}}}
        .dump();
  };
  auto created = c.Do("POST", cms, cm("old", 16), json);
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string old_rv = Json::parse(created.body)["metadata"]["resourceVersion"];
  const uint64_t rv = api_->store().revision();
  ListOptions from_now;
  from_now.resource_version = std::to_string(rv);
  auto watch = api_->registry().Watch(*LookupResource("configmaps"), "default", from_now);
  ASSERT_NO_FATAL_FAILURE(Fill());

  auto expect_500 = [&](const http::ClientResponse& r) {
    EXPECT_EQ(r.status, 500) << r.body;
    Json j = Json::parse(r.body, nullptr, false);
    ASSERT_TRUE(j.is_object()) << r.body;
    EXPECT_EQ(j["kind"], "Status");
    EXPECT_EQ(j["code"], 500);
    EXPECT_EQ(j["reason"], "InternalError");
    EXPECT_EQ(j.value("message", "").rfind("write to the cluster store: ", 0), 0u) << j.dump();
    EXPECT_NE(j.value("message", "").find("database or disk is full (" + db + ")"),
              std::string::npos)
        << j.dump();
  };
  std::string big(200 << 10, 'y');
  expect_500(c.Do("POST", cms, cm("new", 200 << 10), json));
  expect_500(c.Do("PUT", cms + "/old", cm("old", 200 << 10), json));
  expect_500(c.Do("PATCH", cms + "/old", Json{{"data", {{"k", big}}}}.dump(),
                  {{"Content-Type", "application/merge-patch+json"}}));
  expect_500(c.Do("DELETE", cms + "/old"));
  // A Service's cluster IP is taken before the write: a failed create gives it back.
  const std::string svc = R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"s",)"
                          R"("annotations":{"a":")" +
                          big + R"("}},"spec":{"clusterIP":"10.96.0.50","ports":[{"port":80}]}})";
  expect_500(c.Do("POST", "/api/v1/namespaces/default/services", svc, json));

  // Reads: the object as it was; nothing of the failed writes anywhere.
  auto got = c.Get(cms + "/old");
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(Json::parse(got.body)["metadata"]["resourceVersion"], old_rv);
  EXPECT_EQ(Json::parse(got.body)["data"]["k"], std::string(16, 'x'));
  EXPECT_EQ(c.Get(cms + "/new").status, 404);
  auto list = c.Get(cms);
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(Json::parse(list.body)["metadata"]["resourceVersion"], std::to_string(rv));
  EXPECT_EQ(api_->store().revision(), rv);
  RegistryWatch::Event ev;
  EXPECT_FALSE(watch->Next(ev, std::chrono::milliseconds(0))) << "an event for a failed write";
  EXPECT_FALSE(watch->ended());

  ASSERT_NO_FATAL_FAILURE(Free());
  auto again = c.Do("POST", cms, cm("new", 200 << 10), json);
  EXPECT_EQ(again.status, 201) << again.body.substr(0, 300);
  ASSERT_TRUE(watch->Next(ev, std::chrono::seconds(5)));
  EXPECT_EQ(ev.type, "ADDED");
  EXPECT_EQ(ev.rv, rv + 1);
  auto service = c.Do("POST", "/api/v1/namespaces/default/services", svc, json);
  EXPECT_EQ(service.status, 201) << service.body.substr(0, 300);
  EXPECT_EQ(c.Do("DELETE", cms + "/old").status, 200);
  EXPECT_EQ(IntegrityCheck(db), "ok");
}

// WriteFileAtomic (node.json, pod.json, the pods' /etc files) and the IPAM
// state file: a write that does not fit fails naming ENOSPC and leaves the
// old file and no temporary file behind.
TEST_F(DiskFullKernelTest, StateFilesKeepTheirOldContentAndNoTempFile) {
  const std::string node = root_ + "/node.json";
  WriteFileAtomic(node, R"({"old":true})", 0644, false);
  netstack::Ipv4Allocator ipam(netstack::Ipv4Cidr::ParseNetwork("10.244.1.0/24"), root_ + "/ipam");
  EXPECT_EQ(ipam.Allocate("pod-a").ToString(), "10.244.1.2");
  const std::optional<std::string> ipam_before = ReadFileIfExists(root_ + "/ipam");
  ASSERT_TRUE(ipam_before);
  ASSERT_NO_FATAL_FAILURE(Fill());
  const std::vector<std::string> files = FilesIn(root_);

  for (bool sync : {false, true}) {
    try {
      WriteFileAtomic(node, std::string(64 << 10, 'n'), 0644, sync);
      ADD_FAILURE() << "WriteFileAtomic succeeded on a full disk";
    } catch (const Error& e) {
      EXPECT_EQ(e.sys_errno(), ENOSPC) << e.message();
      EXPECT_NE(e.message().find("No space left on device"), std::string::npos) << e.message();
    }
    EXPECT_EQ(ReadFileIfExists(node), R"({"old":true})");
  }
  try {
    ipam.Allocate("pod-b");
    ADD_FAILURE() << "IPAM allocated on a full disk";
  } catch (const Error& e) {
    EXPECT_EQ(e.sys_errno(), ENOSPC) << e.message();
    EXPECT_NE(e.message().find("write IPAM state"), std::string::npos) << e.message();
  }
  EXPECT_FALSE(ipam.Lookup("pod-b"));
  EXPECT_THROW(ipam.Release("pod-a"), Error);
  EXPECT_EQ(ipam.Lookup("pod-a"), netstack::Ipv4Address::Parse("10.244.1.2"));
  EXPECT_EQ(ReadFileIfExists(root_ + "/ipam"), ipam_before);
  EXPECT_EQ(FilesIn(root_), files);

  ASSERT_NO_FATAL_FAILURE(Free());
  WriteFileAtomic(node, R"({"new":true})", 0644, true);
  EXPECT_EQ(ReadFileIfExists(node), R"({"new":true})");
  EXPECT_EQ(ipam.Allocate("pod-b").ToString(), "10.244.1.3");
  EXPECT_TRUE(ipam.Release("pod-a"));
  netstack::Ipv4Allocator reloaded(netstack::Ipv4Cidr::ParseNetwork("10.244.1.0/24"),
                                   root_ + "/ipam");
  EXPECT_EQ(reloaded.Allocations().size(), 1u);
  EXPECT_EQ(reloaded.Lookup("pod-b"), netstack::Ipv4Address::Parse("10.244.1.3"));
}

}  // namespace
}  // namespace kin::apiserver
