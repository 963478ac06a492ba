// PodServers against a real registry with a fake server: which pods get a
// server, when it goes, and a failed start retried.
#include "controllers/pod_servers.h"

#include <gtest/gtest.h>

#include <atomic>

#include "controllers/manager.h"
#include "controllers/registry_fixture.h"
#include "testing/kernel_fixture.h"  // Eventually

namespace kin::controllers {
namespace {

using testing::Eventually;

Json Pod(const std::string& name, const std::string& node, const std::string& image) {
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"namespace", "default"}, {"name", name}}},
          {"spec", {{"nodeName", node}, {"containers", {{{"name", "c"}, {"image", image}}}}}}};
}

TEST(PodRunsImageTest, AnyTagOrDigestOfTheRepositoryInTheFirstContainer) {
  EXPECT_TRUE(PodRunsImage(Pod("p", "n", "kin.dev/x"), "kin.dev/x"));
  EXPECT_TRUE(PodRunsImage(Pod("p", "n", "kin.dev/x:0.1.0"), "kin.dev/x"));
  EXPECT_TRUE(PodRunsImage(Pod("p", "n", "kin.dev/x@sha256:00"), "kin.dev/x"));
  EXPECT_FALSE(PodRunsImage(Pod("p", "n", "kin.dev/xy:1"), "kin.dev/x"));
  EXPECT_FALSE(PodRunsImage(Json::object(), "kin.dev/x"));
}

class PodServersTest : public RegistryTest {
 protected:
  // A server that counts itself alive.
  class Fake : public PodServer {
   public:
    explicit Fake(std::atomic<int>& alive) : alive_(alive) { ++alive_; }
    ~Fake() override { --alive_; }

   private:
    std::atomic<int>& alive_;
  };

  void SetUp() override {
    manager_ = std::make_unique<ControllerManager>(cl());
    PodServersOptions o;
    o.component = "test";
    o.node = "n1";
    o.image_repo = "kin.dev/x";
    // Any existing namespace file serves: the test's own, through /run/netns.
    o.pod_netns = [](const Json&) { return "../../proc/self/ns/net"; };
    o.start = [this](const Json& pod, const std::string& netns) -> std::unique_ptr<PodServer> {
      EXPECT_EQ(netns, "../../proc/self/ns/net");
      if (fail_.load() > 0) {
        --fail_;
        throw Error::Internal("cannot bind " + object::Name(pod));
      }
      ++starts_;
      return std::make_unique<Fake>(alive_);
    };
    servers_ = &manager_->Emplace<PodServers>(manager_->informers(), std::move(o));
    manager_->Start();
  }
  void TearDown() override { manager_.reset(); }
  void Started(const std::string& name, const std::string& node, const std::string& image) {
    cl().Create(PodsResource(), "default", Pod(name, node, image));
    PatchPodStatus(cl(), "default", name, {{"phase", "Running"}, {"podIP", "10.244.1.5"}});
  }

  std::atomic<int> alive_{0}, starts_{0}, fail_{0};
  std::unique_ptr<ControllerManager> manager_;
  PodServers* servers_ = nullptr;
};

TEST_F(PodServersTest, ServesItsNodesPodsOfTheImageUntilTheyGo) {
  Started("other-node", "n2", "kin.dev/x:1");
  Started("other-image", "n1", "busybox");
  cl().Create(PodsResource(), "default", Pod("no-ip-yet", "n1", "kin.dev/x:1"));
  Started("mine", "n1", "kin.dev/x:1");
  // The server exists before it is listed: wait for the listing.
  ASSERT_TRUE(
      Eventually([&] { return servers_->Serving() == std::vector<std::string>{"default/mine"}; }));
  EXPECT_EQ(alive_.load(), 1);

  PatchPodStatus(cl(), "default", "mine", {{"phase", "Succeeded"}});
  ASSERT_TRUE(Eventually([&] { return alive_.load() == 0; }));
  EXPECT_TRUE(servers_->Serving().empty());
  EXPECT_EQ(starts_.load(), 1);
}

TEST_F(PodServersTest, AFailedStartIsRetriedAndStopEndsEveryServer) {
  fail_ = 2;
  Started("mine", "n1", "kin.dev/x");
  ASSERT_TRUE(
      Eventually([&] { return servers_->Serving() == std::vector<std::string>{"default/mine"}; }));
  EXPECT_EQ(alive_.load(), 1);
  EXPECT_EQ(fail_.load(), 0);
  // Terminating, it is still served (CoreDNS's lame duck); gone, not.
  cl().Delete(PodsResource(), "default", "mine");
  EXPECT_EQ(servers_->Serving(), std::vector<std::string>{"default/mine"});
  DeleteOptions now;
  now.grace_period_seconds = 0;
  cl().Delete(PodsResource(), "default", "mine", now);
  ASSERT_TRUE(Eventually([&] { return alive_.load() == 0; }));
  Started("again", "n1", "kin.dev/x");
  ASSERT_TRUE(Eventually([&] { return alive_.load() == 1; }));
  manager_->Stop();
  EXPECT_EQ(alive_.load(), 0);
}

}  // namespace
}  // namespace kin::controllers
