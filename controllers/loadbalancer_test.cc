// LoadBalancer Services' API side: the service controller's addresses on a
// real registry (allocation, spec.loadBalancerIP, classes, exhaustion,
// release, restart), the registry's node ports for LoadBalancers, and the
// pure routes and health checks.
#include "controllers/loadbalancer.h"

#include <atomic>
#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "controllers/manager.h"
#include "controllers/registry_fixture.h"
#include "testing/kernel_fixture.h"  // Eventually

namespace kin::controllers {
namespace {

using netstack::Ipv4Address;
using netstack::Ipv4Cidr;
using testing::Eventually;
using ::testing::HasSubstr;

Json LbService(const std::string& name, Json extra = Json::object()) {
  Json spec = {{"type", "LoadBalancer"},
               {"selector", {{"app", name}}},
               {"ports", Json::array({{{"name", "http"}, {"port", 80}, {"targetPort", 8080}}})}};
  spec.update(extra);
  return {{"apiVersion", "v1"},
          {"kind", "Service"},
          {"metadata", {{"namespace", "default"}, {"name", name}}},
          {"spec", spec}};
}

ObjectPtr Ptr(Json j) { return std::make_shared<const Json>(std::move(j)); }

class LoadBalancerControllerTest : public RegistryTest {
 protected:
  void TearDown() override { manager_.reset(); }
  void StartController(const char* pool = "198.51.100.0/24") {
    manager_ = std::make_unique<ControllerManager>(cl());
    LoadBalancerControllerOptions o;
    o.pool = Ipv4Cidr::Parse(pool);
    controller_ = &manager_->Emplace<LoadBalancerController>(manager_->informers(), cl(), o);
    manager_->Start();
  }
  // The Service's status.loadBalancer.ingress IPs, "" when none.
  std::string IngressOf(const std::string& name) {
    Json svc = cl().Get(ServicesResource(), "default", name);
    std::string out;
    for (const Json& i :
         svc["status"].value("loadBalancer", Json::object()).value("ingress", Json::array())) {
      out += (out.empty() ? "" : ",") + i.value("ip", std::string("?"));
    }
    return out;
  }
  bool Gets(const std::string& name, const std::string& ip) {
    return Eventually([&] { return IngressOf(name) == ip; });
  }
  bool EventSeen(const std::string& reason, const std::string& name, const std::string& text) {
    return Eventually([&] {
      for (const Json& e : EventsWithReason(cl(), reason, name)) {
        if (e.value("message", "").find(text) != std::string::npos) return true;
      }
      return false;
    });
  }
  void Create(const Json& svc) { cl().Create(ServicesResource(), "default", svc); }
  void Delete(const std::string& name) { cl().Delete(ServicesResource(), "default", name); }

  std::unique_ptr<ControllerManager> manager_;
  LoadBalancerController* controller_ = nullptr;
};

TEST_F(LoadBalancerControllerTest, GivesTheLowestFreeAddressWithEventsAsUpstream) {
  StartController();
  Create(LbService("web"));
  ASSERT_TRUE(Gets("web", "198.51.100.1"));
  Json svc = cl().Get(ServicesResource(), "default", "web");
  EXPECT_EQ(svc["status"]["loadBalancer"]["ingress"][0]["ipMode"], "VIP");
  Create(LbService("api"));
  ASSERT_TRUE(Gets("api", "198.51.100.2"));
  // A ClusterIP Service gets nothing.
  Create({{"apiVersion", "v1"},
          {"kind", "Service"},
          {"metadata", {{"namespace", "default"}, {"name", "plain"}}},
          {"spec", {{"selector", {{"app", "x"}}}, {"ports", Json::array({{{"port", 80}}})}}}});
  Create(LbService("third"));
  ASSERT_TRUE(Gets("third", "198.51.100.3"));
  EXPECT_EQ(IngressOf("plain"), "");
  ASSERT_TRUE(EventSeen("EnsuringLoadBalancer", "web", "Ensuring load balancer"));
  ASSERT_TRUE(EventSeen("EnsuredLoadBalancer", "web", "Ensured load balancer"));
  Json e = EventsWithReason(cl(), "EnsuredLoadBalancer", "web").at(0);
  EXPECT_EQ(e["source"]["component"], "service-controller");
  EXPECT_EQ(e["type"], "Normal");
  EXPECT_THAT(controller_->Allocated(),
              ::testing::ElementsAre(::testing::Pair("198.51.100.1", "default/web"),
                                     ::testing::Pair("198.51.100.2", "default/api"),
                                     ::testing::Pair("198.51.100.3", "default/third")));
}

TEST_F(LoadBalancerControllerTest, HonoursLoadBalancerIpWhenInThePoolAndFree) {
  StartController();
  Create(LbService("fixed", {{"loadBalancerIP", "198.51.100.50"}}));
  ASSERT_TRUE(Gets("fixed", "198.51.100.50"));
  // Taken: a Warning and no address, until it is free.
  Create(LbService("clash", {{"loadBalancerIP", "198.51.100.50"}}));
  ASSERT_TRUE(EventSeen("SyncLoadBalancerFailed", "clash",
                        "Error syncing load balancer: failed to ensure load balancer: "
                        "spec.loadBalancerIP 198.51.100.50 is in use by service default/fixed"));
  Json e = EventsWithReason(cl(), "SyncLoadBalancerFailed", "clash").at(0);
  EXPECT_EQ(e["type"], "Warning");
  // Outside the pool (or not an address): a Warning and no address.
  Create(LbService("outside", {{"loadBalancerIP", "192.0.2.7"}}));
  ASSERT_TRUE(EventSeen("SyncLoadBalancerFailed", "outside",
                        "spec.loadBalancerIP 192.0.2.7 is not an address of the pool "
                        "198.51.100.0/24"));
  Create(LbService("network", {{"loadBalancerIP", "198.51.100.0"}}));
  ASSERT_TRUE(EventSeen("SyncLoadBalancerFailed", "network", "is not an address of the pool"));
  // A Service without a wish still gets the lowest free address.
  Create(LbService("any"));
  ASSERT_TRUE(Gets("any", "198.51.100.1"));
  EXPECT_EQ(IngressOf("clash"), "");
  EXPECT_EQ(IngressOf("outside"), "");
  EXPECT_EQ(IngressOf("network"), "");
  // The holder goes: the waiting Service gets the address.
  Delete("fixed");
  ASSERT_TRUE(Gets("clash", "198.51.100.50"));
  // Changing the wish moves the Service to the new address.
  UpdateRetryingConflicts(ServicesResource(), "default", "clash",
                          [](Json& s) { s["spec"]["loadBalancerIP"] = "198.51.100.60"; });
  ASSERT_TRUE(Gets("clash", "198.51.100.60"));
  Create(LbService("again", {{"loadBalancerIP", "198.51.100.50"}}));
  ASSERT_TRUE(Gets("again", "198.51.100.50"));
}

TEST_F(LoadBalancerControllerTest, LeavesServicesOfAnotherClassAlone) {
  StartController();
  // Another controller's Service, with a status of its own.
  Create(LbService("other", {{"loadBalancerClass", "example.com/other"}}));
  cl().Patch(ServicesResource(), "default", "other", PatchType::kMerge,
             {{"status", {{"loadBalancer", {{"ingress", {{{"ip", "198.51.100.1"}}}}}}}}}, "status");
  // Handled in order by the one worker: once "mine" has its address,
  // "other" was seen and left alone.
  Create(LbService("mine"));
  ASSERT_TRUE(Gets("mine", "198.51.100.1"));
  EXPECT_EQ(IngressOf("other"), "198.51.100.1");
  EXPECT_TRUE(EventsWithReason(cl(), "EnsuringLoadBalancer", "other").empty());
  EXPECT_EQ(controller_->Allocated().size(), 1u);
}

TEST_F(LoadBalancerControllerTest, ExhaustedPoolWarnsAndAFreedAddressIsGivenAgain) {
  StartController("198.51.100.0/30");  // .1 and .2
  Create(LbService("a"));
  ASSERT_TRUE(Gets("a", "198.51.100.1"));
  Create(LbService("b"));
  ASSERT_TRUE(Gets("b", "198.51.100.2"));
  Create(LbService("c"));
  ASSERT_TRUE(EventSeen("SyncLoadBalancerFailed", "c",
                        "Error syncing load balancer: failed to ensure load balancer: no "
                        "address left in the pool 198.51.100.0/30"));
  EXPECT_EQ(IngressOf("c"), "");
  Delete("a");
  ASSERT_TRUE(Gets("c", "198.51.100.1"));
  EXPECT_THAT(controller_->Allocated(),
              ::testing::ElementsAre(::testing::Pair("198.51.100.1", "default/c"),
                                     ::testing::Pair("198.51.100.2", "default/b")));
}

TEST_F(LoadBalancerControllerTest, AServiceThatStopsBeingALoadBalancerIsClearedAndFreed) {
  StartController();
  Create(LbService("web"));
  ASSERT_TRUE(Gets("web", "198.51.100.1"));
  UpdateRetryingConflicts(ServicesResource(), "default", "web", [](Json& s) {
    s["spec"]["type"] = "ClusterIP";
    s["spec"].erase("allocateLoadBalancerNodePorts");
    s["spec"].erase("externalTrafficPolicy");
    for (Json& p : s["spec"]["ports"]) p.erase("nodePort");
  });
  ASSERT_TRUE(Gets("web", ""));
  ASSERT_TRUE(EventSeen("DeletingLoadBalancer", "web", "Deleting load balancer"));
  ASSERT_TRUE(EventSeen("DeletedLoadBalancer", "web", "Deleted load balancer"));
  Create(LbService("next"));
  ASSERT_TRUE(Gets("next", "198.51.100.1"));
}

TEST_F(LoadBalancerControllerTest, ARestartKeepsEveryAddress) {
  StartController();
  Create(LbService("a"));
  Create(LbService("b", {{"loadBalancerIP", "198.51.100.9"}}));
  ASSERT_TRUE(Gets("a", "198.51.100.1"));
  ASSERT_TRUE(Gets("b", "198.51.100.9"));
  manager_.reset();  // kin serve stops
  // Meanwhile: b is deleted, d is created.
  Delete("b");
  Create(LbService("d"));
  StartController();
  Create(LbService("e"));
  ASSERT_TRUE(Gets("d", "198.51.100.2"));
  ASSERT_TRUE(Gets("e", "198.51.100.3"));
  EXPECT_EQ(IngressOf("a"), "198.51.100.1");
  EXPECT_THAT(controller_->Allocated(),
              ::testing::ElementsAre(::testing::Pair("198.51.100.1", "default/a"),
                                     ::testing::Pair("198.51.100.2", "default/d"),
                                     ::testing::Pair("198.51.100.3", "default/e")));
}

TEST_F(LoadBalancerControllerTest, AStatusOutsideThePoolOrClaimedTwiceIsReplaced) {
  // Statuses written before the controller starts (another pool, or one
  // address held by two Services): the older keeps it (of the same age:
  // the first by name), the other moves.
  Create(LbService("first"));
  Create(LbService("second"));
  Create(LbService("foreign"));
  auto set_ip = [&](const std::string& name, const std::string& ip) {
    cl().Patch(ServicesResource(), "default", name, PatchType::kMerge,
               {{"status", {{"loadBalancer", {{"ingress", {{{"ip", ip}}}}}}}}}, "status");
  };
  set_ip("first", "198.51.100.7");
  set_ip("second", "198.51.100.7");
  set_ip("foreign", "192.0.2.1");
  StartController();
  // The two that moved get .1 and .2, in the order the worker sees them.
  ASSERT_TRUE(Eventually([&] {
    std::set<std::string> got = {IngressOf("second"), IngressOf("foreign")};
    return got == std::set<std::string>{"198.51.100.1", "198.51.100.2"};
  })) << IngressOf("second")
      << " " << IngressOf("foreign");
  EXPECT_EQ(IngressOf("first"), "198.51.100.7");
}

// A client whose first `failures` status writes fail (an API that is
// briefly unavailable); everything else goes to `inner`.
class FailingStatusClient : public Client {
 public:
  FailingStatusClient(Client& inner, int failures) : inner_(inner), failures_(failures) {}
  Json Get(const ResourceInfo& r, const std::string& ns, const std::string& name) override {
    return inner_.Get(r, ns, name);
  }
  Json List(const ResourceInfo& r, const std::string& ns, const ListOptions& o) override {
    return inner_.List(r, ns, o);
  }
  Json Create(const ResourceInfo& r, const std::string& ns, const Json& obj,
              const WriteOptions& o) override {
    return inner_.Create(r, ns, obj, o);
  }
  Json Update(const ResourceInfo& r, const std::string& ns, const Json& obj, const std::string& sub,
              const WriteOptions& o) override {
    return inner_.Update(r, ns, obj, sub, o);
  }
  Json Patch(const ResourceInfo& r, const std::string& ns, const std::string& name, PatchType t,
             const Json& patch, const std::string& sub, const WriteOptions& o) override {
    if (sub == "status" && failures_.fetch_sub(1) > 0) {
      throw Error::Internal("the API is down for a moment");
    }
    return inner_.Patch(r, ns, name, t, patch, sub, o);
  }
  Json Delete(const ResourceInfo& r, const std::string& ns, const std::string& name,
              const DeleteOptions& o) override {
    return inner_.Delete(r, ns, name, o);
  }
  std::unique_ptr<Watch> StartWatch(const ResourceInfo& r, const std::string& ns,
                                    const ListOptions& o) override {
    return inner_.StartWatch(r, ns, o);
  }
  Json CreateSubresource(const ResourceInfo& r, const std::string& ns, const std::string& name,
                         const std::string& sub, const Json& body) override {
    return inner_.CreateSubresource(r, ns, name, sub, body);
  }

 private:
  Client& inner_;
  std::atomic<int> failures_;
};

TEST_F(LoadBalancerControllerTest, AFailedStatusWriteIsRetriedWithTheSameAddress) {
  FailingStatusClient flaky(cl(), 2);
  manager_ = std::make_unique<ControllerManager>(cl());
  controller_ = &manager_->Emplace<LoadBalancerController>(manager_->informers(), flaky);
  manager_->Start();
  Create(LbService("web"));
  ASSERT_TRUE(Gets("web", "198.51.100.1"));
  Create(LbService("next"));
  ASSERT_TRUE(Gets("next", "198.51.100.2"));
}

// The registry's part: node ports of LoadBalancers.
TEST_F(LoadBalancerControllerTest, RegistryHonoursAllocateLoadBalancerNodePortsAndHealthChecks) {
  Create(LbService("noports", {{"allocateLoadBalancerNodePorts", false}}));
  Json svc = cl().Get(ServicesResource(), "default", "noports");
  EXPECT_FALSE(svc["spec"]["ports"][0].contains("nodePort"));
  EXPECT_FALSE(svc["spec"].contains("healthCheckNodePort"));
  Create(LbService("local", {{"externalTrafficPolicy", "Local"}}));
  svc = cl().Get(ServicesResource(), "default", "local");
  ASSERT_TRUE(svc["spec"].contains("healthCheckNodePort"));
  const int hc = svc["spec"]["healthCheckNodePort"];
  EXPECT_GE(hc, 30000);
  EXPECT_LE(hc, 32767);
  EXPECT_NE(hc, svc["spec"]["ports"][0]["nodePort"].get<int>());
  // Kept by an update that does not send it.
  Json updated = UpdateRetryingConflicts(ServicesResource(), "default", "local", [](Json& s) {
    s["spec"].erase("healthCheckNodePort");
    s["metadata"]["labels"] = {{"x", "y"}};
  });
  EXPECT_EQ(updated["spec"]["healthCheckNodePort"], hc);
  // Taken by no one else: an explicit request for it is refused.
  try {
    Create(LbService("clash", {{"externalTrafficPolicy", "Local"}, {"healthCheckNodePort", hc}}));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalid);
    EXPECT_THAT(e.message(), HasSubstr("already allocated"));
  }
  // Turning to Local allocates one; a Cluster Service has none.
  Json turned = UpdateRetryingConflicts(ServicesResource(), "default", "noports", [](Json& s) {
    s["spec"]["externalTrafficPolicy"] = "Local";
  });
  EXPECT_GE(turned["spec"].value("healthCheckNodePort", 0), 30000);
  // Back to Cluster: the port is dropped, as kube-apiserver does.
  Json back = UpdateRetryingConflicts(ServicesResource(), "default", "local", [](Json& s) {
    s["spec"]["externalTrafficPolicy"] = "Cluster";
  });
  EXPECT_FALSE(back["spec"].contains("healthCheckNodePort")) << back["spec"].dump();
}

// ---- the pure parts ----

Json Node(const std::string& name, const std::string& ip, bool ready,
          Json labels = Json::object()) {
  return {{"metadata", {{"name", name}, {"labels", labels}}},
          {"status",
           {{"conditions", {{{"type", "Ready"}, {"status", ready ? "True" : "False"}}}},
            {"addresses", {{{"type", "InternalIP"}, {"address", ip}}}}}}};
}

Json Slice(const std::string& service, Json endpoints) {
  return {{"metadata",
           {{"namespace", "default"},
            {"name", service + "-abc"},
            {"labels", {{"kubernetes.io/service-name", service}}}}},
          {"addressType", "IPv4"},
          {"endpoints", endpoints},
          {"ports", Json::array({{{"name", "http"}, {"port", 8080}, {"protocol", "TCP"}}})}};
}

Json WithIngress(Json svc, const std::string& ip) {
  svc["spec"]["clusterIP"] = "10.96.0.20";
  svc["status"]["loadBalancer"]["ingress"] = {{{"ip", ip}}};
  return svc;
}

Json Endpoint(const std::string& ip, const std::string& node, bool ready = true,
              bool terminating = false) {
  return {{"addresses", {ip}},
          {"nodeName", node},
          {"conditions", {{"ready", ready}, {"serving", true}, {"terminating", terminating}}}};
}

std::vector<std::string> Render(const std::vector<netstack::LbRoute>& routes) {
  std::vector<std::string> out;
  for (const auto& r : routes) {
    std::string s = r.ip.ToString() + ":";
    for (auto h : r.next_hops) s += " " + h.ToString();
    out.push_back(s);
  }
  return out;
}

TEST(BuildLbRoutesTest, ClusterToReadyNodesLocalToNodesWithEndpoints) {
  std::vector<ObjectPtr> nodes = {
      Ptr(Node("cp", "172.18.0.2", true)), Ptr(Node("w1", "172.18.0.3", true)),
      Ptr(Node("w2", "172.18.0.4", true)), Ptr(Node("down", "172.18.0.5", false)),
      Ptr(Node("excluded", "172.18.0.6", true,
               {{"node.kubernetes.io/exclude-from-external-load-balancers", ""}}))};
  std::vector<ObjectPtr> services = {
      Ptr(WithIngress(LbService("cluster"), "198.51.100.1")),
      Ptr(WithIngress(LbService("local", {{"externalTrafficPolicy", "Local"}}), "198.51.100.2")),
      Ptr(WithIngress(LbService("none", {{"externalTrafficPolicy", "Local"}}), "198.51.100.3")),
      // Only terminating (serving) on w2: still a local endpoint there.
      Ptr(WithIngress(LbService("draining", {{"externalTrafficPolicy", "Local"}}), "198.51.100.4")),
      // Not ours: another class, an address outside the pool.
      Ptr(WithIngress(LbService("other", {{"loadBalancerClass", "x/y"}}), "198.51.100.5")),
      Ptr(WithIngress(LbService("foreign"), "192.0.2.1")),
  };
  std::vector<ObjectPtr> slices = {
      Ptr(Slice("local", {Endpoint("10.244.1.5", "w1"), Endpoint("10.244.1.6", "w1"),
                          Endpoint("10.244.2.5", "w2", false), Endpoint("10.244.5.5", "down")})),
      Ptr(Slice("none", {Endpoint("10.244.2.6", "w2", false)})),
      Ptr(Slice("draining", {Endpoint("10.244.2.7", "w2", false, true)})),
  };
  EXPECT_THAT(Render(BuildLbRoutes(services, slices, nodes, Ipv4Cidr::Parse("198.51.100.0/24"))),
              ::testing::ElementsAre("198.51.100.1: 172.18.0.2 172.18.0.3 172.18.0.4",
                                     "198.51.100.2: 172.18.0.3",
                                     "198.51.100.3:", "198.51.100.4: 172.18.0.4"));
}

TEST(BuildLbRoutesTest, AOneNodeClusterUsesItsExcludedControlPlane) {
  const Json label = {{"node.kubernetes.io/exclude-from-external-load-balancers", ""}};
  std::vector<ObjectPtr> services = {Ptr(WithIngress(LbService("web"), "198.51.100.1"))};
  const Ipv4Cidr pool = Ipv4Cidr::Parse("198.51.100.0/24");
  EXPECT_THAT(
      Render(BuildLbRoutes(services, {}, {Ptr(Node("cp", "172.18.0.2", true, label))}, pool)),
      ::testing::ElementsAre("198.51.100.1: 172.18.0.2"));
  // Not when it is not Ready, nor when another node may take the traffic.
  EXPECT_THAT(
      Render(BuildLbRoutes(services, {}, {Ptr(Node("cp", "172.18.0.2", false, label))}, pool)),
      ::testing::ElementsAre("198.51.100.1:"));
  EXPECT_THAT(
      Render(BuildLbRoutes(
          services, {},
          {Ptr(Node("cp", "172.18.0.2", true, label)), Ptr(Node("w", "172.18.0.3", true))}, pool)),
      ::testing::ElementsAre("198.51.100.1: 172.18.0.3"));
}

TEST(BuildHealthChecksTest, LocalLoadBalancersWithTheirLocalEndpoints) {
  Json local = WithIngress(
      LbService("local", {{"externalTrafficPolicy", "Local"}, {"healthCheckNodePort", 31000}}),
      "198.51.100.2");
  Json cluster = WithIngress(LbService("cluster"), "198.51.100.1");
  Json empty = WithIngress(
      LbService("empty", {{"externalTrafficPolicy", "Local"}, {"healthCheckNodePort", 31001}}),
      "198.51.100.3");
  std::vector<ObjectPtr> services = {Ptr(local), Ptr(cluster), Ptr(empty)};
  std::vector<ObjectPtr> slices = {
      Ptr(Slice("local", {Endpoint("10.244.1.5", "w1"), Endpoint("10.244.1.6", "w1"),
                          Endpoint("10.244.2.5", "w2", false)}))};
  auto w1 = BuildHealthChecks(services, slices, "w1");
  ASSERT_EQ(w1.size(), 2u);
  EXPECT_EQ(w1.at(31000), (netstack::HealthCheckService{"default", "local", 2}));
  EXPECT_EQ(w1.at(31001), (netstack::HealthCheckService{"default", "empty", 0}));
  auto w2 = BuildHealthChecks(services, slices, "w2");
  EXPECT_EQ(w2.at(31000).local_endpoints, 0);
  EXPECT_TRUE(BuildHealthChecks({Ptr(cluster)}, slices, "w1").empty());
}

class LoadBalancerRoutesTest : public RegistryTest {
 protected:
  void TearDown() override { manager_.reset(); }
  std::unique_ptr<ControllerManager> manager_;
};

TEST_F(LoadBalancerRoutesTest, RoutesFollowServicesNodesAndEndpointsAndErrorsAreRetried) {
  std::mutex mu;
  std::vector<std::string> last;
  int failures = 1;  // the first apply fails: it is retried
  manager_ = std::make_unique<ControllerManager>(cl());
  LoadBalancerRoutesOptions o;
  o.apply = [&](const std::vector<netstack::LbRoute>& routes) {
    std::lock_guard l(mu);
    if (failures-- > 0) throw Error::Internal("netlink says no");
    last = Render(routes);
  };
  manager_->Emplace<LoadBalancerRoutes>(manager_->informers(), o);
  manager_->Emplace<LoadBalancerController>(manager_->informers(), cl());
  manager_->Start();
  auto routes = [&] {
    std::lock_guard l(mu);
    return last;
  };
  CreateNode(cl(), Node("w1", "172.18.0.3", true));
  CreateNode(cl(), Node("w2", "172.18.0.4", true));
  cl().Create(ServicesResource(), "default", LbService("web"));
  ASSERT_TRUE(Eventually(
      [&] { return routes() == std::vector<std::string>{"198.51.100.1: 172.18.0.3 172.18.0.4"}; }));
  cl().Delete(ServicesResource(), "default", "web");
  ASSERT_TRUE(Eventually([&] { return routes().empty(); }));
  EXPECT_THROW(LoadBalancerRoutes(manager_->informers(), {}), Error);
}

TEST_F(LoadBalancerRoutesTest, HealthChecksListenOnTheServicesPorts) {
  manager_ = std::make_unique<ControllerManager>(cl());
  ServiceHealthChecksOptions o;
  o.node = "w1";
  o.bind = "127.0.0.1";
  auto& hc = manager_->Emplace<ServiceHealthChecks>(manager_->informers(), o);
  manager_->Start();
  cl().Create(ServicesResource(), "default",
              LbService("local", {{"externalTrafficPolicy", "Local"}}));
  const int port = cl().Get(ServicesResource(), "default", "local")["spec"]["healthCheckNodePort"];
  ASSERT_TRUE(
      Eventually([&] { return hc.ports() == std::vector<uint16_t>{static_cast<uint16_t>(port)}; }));
  cl().Delete(ServicesResource(), "default", "local");
  ASSERT_TRUE(Eventually([&] { return hc.ports().empty(); }));
}

}  // namespace
}  // namespace kin::controllers
