// The shared informer factory: one informer per resource, standard indexes,
// start and stop of all, late informers started at once.
#include "client/informer_factory.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <map>
#include <mutex>

#include "base/error.h"

namespace kin {
namespace {

// A watch that delivers nothing until stopped.
class IdleWatch : public Watch {
 public:
  bool Next(WatchEvent&, std::chrono::milliseconds timeout) override {
    std::unique_lock l(mu_);
    cv_.wait_for(l, timeout, [&] { return stopped_; });
    return false;
  }
  bool ended() const override {
    std::lock_guard l(mu_);
    return stopped_;
  }
  void Stop() override {
    std::lock_guard l(mu_);
    stopped_ = true;
    cv_.notify_all();
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;
};

// Lists fixed objects per resource and counts the lists.
class StaticClient : public Client {
 public:
  std::map<std::string, Json> items;  // group_resource -> items array
  int Lists(const std::string& resource) {
    std::lock_guard l(mu_);
    return lists_[resource];
  }

  Json List(const ResourceInfo& r, const std::string&, const ListOptions&) override {
    std::lock_guard l(mu_);
    lists_[r.group_resource()]++;
    auto it = items.find(r.group_resource());
    return {{"metadata", {{"resourceVersion", "1"}}},
            {"items", it == items.end() ? Json::array() : it->second}};
  }
  std::unique_ptr<Watch> StartWatch(const ResourceInfo&, const std::string&,
                                    const ListOptions&) override {
    return std::make_unique<IdleWatch>();
  }
  Json Get(const ResourceInfo&, const std::string&, const std::string&) override { return No(); }
  Json Create(const ResourceInfo&, const std::string&, const Json&, const WriteOptions&) override {
    return No();
  }
  Json Update(const ResourceInfo&, const std::string&, const Json&, const std::string&,
              const WriteOptions&) override {
    return No();
  }
  Json Patch(const ResourceInfo&, const std::string&, const std::string&, PatchType, const Json&,
             const std::string&, const WriteOptions&) override {
    return No();
  }
  Json Delete(const ResourceInfo&, const std::string&, const std::string&,
              const DeleteOptions&) override {
    return No();
  }
  Json CreateSubresource(const ResourceInfo&, const std::string&, const std::string&,
                         const std::string&, const Json&) override {
    return No();
  }

 private:
  static Json No() { throw Error::MethodNotAllowed("informers only list and watch"); }
  std::mutex mu_;
  std::map<std::string, int> lists_;
};

Json PodOn(const std::string& name, const std::string& node, const std::string& owner_uid) {
  return {{"metadata",
           {{"namespace", "default"},
            {"name", name},
            {"ownerReferences", Json::array({{{"uid", owner_uid}, {"controller", true}}})}}},
          {"spec", {{"nodeName", node}}}};
}

TEST(SharedInformerFactoryTest, OneInformerPerResourceWithStandardIndexes) {
  StaticClient client;
  client.items["pods"] = Json::array({PodOn("a", "w1", "rs1"), PodOn("b", "w2", "rs1")});
  SharedInformerFactory f(client);
  Informer& pods = f.For(PodsResource());
  EXPECT_EQ(&pods, &f.For(PodsResource()));
  Informer& nodes = f.For(NodesResource());
  EXPECT_NE(&pods, &nodes);
  EXPECT_EQ(f.informers(), (std::vector<Informer*>{&pods, &nodes}));
  EXPECT_TRUE(pods.HasIndex(kNamespaceIndex));
  EXPECT_TRUE(pods.HasIndex(kOwnerUidIndex));
  EXPECT_TRUE(pods.HasIndex(kNodeNameIndex));
  EXPECT_FALSE(nodes.HasIndex(kNamespaceIndex));  // cluster-scoped
  EXPECT_TRUE(nodes.HasIndex(kOwnerUidIndex));
  EXPECT_FALSE(nodes.HasIndex(kNodeNameIndex));

  f.Start();
  ASSERT_TRUE(f.WaitForSync(std::chrono::seconds(10)));
  EXPECT_EQ(client.Lists("pods"), 1);  // listed once, however many users
  EXPECT_EQ(pods.IndexKeys(kNodeNameIndex, "w2"), std::vector<std::string>{"default/b"});
  EXPECT_EQ(pods.IndexKeys(kOwnerUidIndex, "rs1"),
            (std::vector<std::string>{"default/a", "default/b"}));
  EXPECT_EQ(pods.IndexKeys(kNamespaceIndex, "default").size(), 2u);
  f.Stop();
}

TEST(SharedInformerFactoryTest, AnInformerAskedForAfterStartStartsAtOnce) {
  StaticClient client;
  client.items["services"] = Json::array({{{"metadata", {{"namespace", "d"}, {"name", "s"}}}}});
  SharedInformerFactory f(client);
  f.For(PodsResource());
  f.Start();
  Informer& services = f.For(ServicesResource());
  EXPECT_TRUE(services.WaitForSync(std::chrono::seconds(10)));
  EXPECT_TRUE(services.Lookup("d", "s"));
  EXPECT_TRUE(f.WaitForSync(std::chrono::seconds(10)));
}

TEST(SharedInformerFactoryTest, StopStopsAllAndNothingStartsAfterwards) {
  StaticClient client;
  SharedInformerFactory f(client);
  Informer& pods = f.For(PodsResource());
  f.Stop();
  f.Start();
  EXPECT_FALSE(pods.WaitForSync(std::chrono::milliseconds(0)));
  EXPECT_FALSE(f.WaitForSync(std::chrono::milliseconds(0)));
  f.For(NodesResource());
  EXPECT_EQ(client.Lists("pods") + client.Lists("nodes"), 0);
}

}  // namespace
}  // namespace kin
