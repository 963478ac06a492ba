// The service proxy's API side: BuildProxyState on plain objects, and the
// ServiceProxy against a real registry with a fake backend.
#include "controllers/service_proxy.h"

#include <gtest/gtest.h>

#include <deque>

#include "controllers/manager.h"
#include "controllers/registry_fixture.h"
#include "testing/kernel_fixture.h"  // Eventually

namespace kin::controllers {
namespace {

using netstack::Ipv4Address;
using netstack::Ipv4Cidr;
using netstack::L4Protocol;
using netstack::ProxyEndpoint;
using netstack::ProxyState;
using testing::Eventually;

Ipv4Address Ip(const char* s) { return Ipv4Address::Parse(s); }
ProxyEndpoint Ep(const char* ip, uint16_t port) { return {Ip(ip), port}; }

ProxyNode Node() {
  return {
      "n1", {Ip("172.18.0.2")}, Ipv4Cidr::Parse("10.244.0.0/16"), Ipv4Cidr::Parse("10.96.0.0/16")};
}

Json Service(const std::string& name, Json spec) {
  if (!spec.contains("clusterIP")) spec["clusterIP"] = "10.96.0.20";
  if (!spec.contains("ports")) {
    spec["ports"] = Json::array({{{"name", "http"}, {"port", 80}, {"protocol", "TCP"}}});
  }
  return {{"apiVersion", "v1"},
          {"kind", "Service"},
          {"metadata", {{"namespace", "default"}, {"name", name}}},
          {"spec", spec}};
}

Json Endpoint(const std::string& ip, const std::string& node, Json conditions = Json::object()) {
  return {{"addresses", {ip}}, {"nodeName", node}, {"conditions", conditions}};
}

Json Slice(const std::string& name, const std::string& service, Json endpoints,
           Json ports = Json::array({{{"name", "http"}, {"port", 8080}, {"protocol", "TCP"}}})) {
  return {{"apiVersion", "discovery.k8s.io/v1"},
          {"kind", "EndpointSlice"},
          {"metadata",
           {{"namespace", "default"},
            {"name", name},
            {"labels", {{"kubernetes.io/service-name", service}}}}},
          {"addressType", "IPv4"},
          {"endpoints", endpoints},
          {"ports", ports}};
}

std::vector<ObjectPtr> Ptrs(std::vector<Json> objs) {
  std::vector<ObjectPtr> out;
  for (Json& o : objs) out.push_back(std::make_shared<const Json>(std::move(o)));
  return out;
}

ProxyState Build(std::vector<Json> services, std::vector<Json> slices) {
  return BuildProxyState(Ptrs(std::move(services)), Ptrs(std::move(slices)), Node());
}

TEST(BuildProxyStateTest, ClusterIpWithReadyEndpointsFromSeveralSlices) {
  ProxyState s =
      Build({Service("web", {})},
            {Slice("web-a", "web", {Endpoint("10.244.1.5", "n2"), Endpoint("10.244.0.7", "n1")}),
             Slice("web-b", "web", {Endpoint("10.244.2.9", "n3")}),
             Slice("other", "other", {Endpoint("10.244.2.10", "n3")})});
  EXPECT_EQ(s.node_ips, std::vector<Ipv4Address>{Ip("172.18.0.2")});
  EXPECT_EQ(s.cluster_cidr.ToString(), "10.244.0.0/16");
  ASSERT_EQ(s.ports.size(), 1u);
  const auto& p = s.ports.begin()->second;
  EXPECT_EQ(p.ns, "default");
  EXPECT_EQ(p.name, "web");
  EXPECT_EQ(p.port_name, "http");
  EXPECT_EQ(p.protocol, L4Protocol::kTcp);
  EXPECT_EQ(p.cluster_ip, Ip("10.96.0.20"));
  EXPECT_EQ(p.port, 80);
  EXPECT_EQ(p.node_port, 0);
  EXPECT_EQ(p.affinity_timeout_seconds, 0);
  EXPECT_EQ(p.cluster_endpoints,
            (std::vector<ProxyEndpoint>{Ep("10.244.0.7", 8080), Ep("10.244.1.5", 8080),
                                        Ep("10.244.2.9", 8080)}));
  EXPECT_EQ(p.local_endpoints, (std::vector<ProxyEndpoint>{Ep("10.244.0.7", 8080)}));
}

TEST(BuildProxyStateTest, PortsMatchByNameAndProtocol) {
  Json svc = Service(
      "dns", {{"ports", Json::array({{{"name", "dns"}, {"port", 53}, {"protocol", "UDP"}},
                                     {{"name", "dns-tcp"}, {"port", 53}, {"protocol", "TCP"}}})}});
  Json slice = Slice("dns-a", "dns", {Endpoint("10.244.1.2", "n2")},
                     Json::array({{{"name", "dns"}, {"port", 5353}, {"protocol", "UDP"}},
                                  {{"name", "dns-tcp"}, {"port", 5354}, {"protocol", "TCP"}}}));
  ProxyState s = Build({svc}, {slice});
  ASSERT_EQ(s.ports.size(), 2u);
  for (const auto& [key, p] : s.ports) {
    ASSERT_EQ(p.cluster_endpoints.size(), 1u) << key;
    if (p.protocol == L4Protocol::kUdp) {
      EXPECT_EQ(p.port_name, "dns");
      EXPECT_EQ(p.cluster_endpoints[0].port, 5353);
    } else {
      EXPECT_EQ(p.port_name, "dns-tcp");
      EXPECT_EQ(p.cluster_endpoints[0].port, 5354);
    }
  }
  // Different keys for the same number on two protocols.
  EXPECT_NE(s.ports.begin()->first, std::next(s.ports.begin())->first);
}

TEST(BuildProxyStateTest, ReadyEndpointsWinElseServingTerminatingOnes) {
  Json slice = Slice(
      "web-a", "web",
      {Endpoint("10.244.1.5", "n2", {{"ready", false}, {"serving", true}, {"terminating", true}}),
       Endpoint("10.244.1.6", "n2", {{"ready", true}}),
       Endpoint("10.244.0.8", "n1", {{"ready", false}, {"serving", true}, {"terminating", true}}),
       Endpoint("10.244.0.9", "n1", {{"ready", false}})});
  ProxyState s = Build({Service("web", {})}, {slice});
  const auto& p = s.ports.begin()->second;
  // Cluster: the one ready endpoint. Local: no ready one here, so the
  // serving-terminating one on this node.
  EXPECT_EQ(p.cluster_endpoints, (std::vector<ProxyEndpoint>{Ep("10.244.1.6", 8080)}));
  EXPECT_EQ(p.local_endpoints, (std::vector<ProxyEndpoint>{Ep("10.244.0.8", 8080)}));

  // Nothing ready anywhere: both fall back to serving-terminating ones;
  // not serving ones are never used.
  slice["endpoints"].erase(1);
  s = Build({Service("web", {})}, {slice});
  const auto& q = s.ports.begin()->second;
  EXPECT_EQ(q.cluster_endpoints,
            (std::vector<ProxyEndpoint>{Ep("10.244.0.8", 8080), Ep("10.244.1.5", 8080)}));
  EXPECT_EQ(q.local_endpoints, (std::vector<ProxyEndpoint>{Ep("10.244.0.8", 8080)}));
}

TEST(BuildProxyStateTest, UnsetConditionsMeanReadyAndServing) {
  Json slice = Slice("web-a", "web", {Endpoint("10.244.1.5", "n2")});
  slice["endpoints"][0].erase("conditions");
  ProxyState s = Build({Service("web", {})}, {slice});
  EXPECT_EQ(s.ports.begin()->second.cluster_endpoints.size(), 1u);
}

TEST(BuildProxyStateTest, SkippedServices) {
  ProxyState s =
      Build({Service("headless", {{"clusterIP", "None"}}),
             Service("ext", {{"type", "ExternalName"}, {"externalName", "example.com"}}),
             Service("v6", {{"clusterIP", "fd00::1"}}),
             [] {
               Json svc = Service("other-proxy", {});
               svc["metadata"]["labels"] = {{"service.kubernetes.io/service-proxy-name", "x"}};
               return svc;
             }()},
            {});
  EXPECT_TRUE(s.ports.empty());
}

TEST(BuildProxyStateTest, NoEndpointsGivesAnEmptyPort) {
  ProxyState s = Build({Service("web", {})}, {Slice("web-a", "web", Json::array())});
  ASSERT_EQ(s.ports.size(), 1u);
  EXPECT_TRUE(s.ports.begin()->second.cluster_endpoints.empty());
  // An IPv6 slice is ignored.
  Json v6 = Slice("web-6", "web", {Endpoint("fd00::5", "n1")});
  v6["addressType"] = "IPv6";
  s = Build({Service("web", {})}, {v6});
  EXPECT_TRUE(s.ports.begin()->second.cluster_endpoints.empty());
}

TEST(BuildProxyStateTest, NodePortExternalIpsLoadBalancerAffinityAndPolicies) {
  Json svc = Service(
      "web", {{"type", "LoadBalancer"},
              {"externalIPs", {"198.51.100.9", "bogus"}},
              {"externalTrafficPolicy", "Local"},
              {"internalTrafficPolicy", "Local"},
              {"sessionAffinity", "ClientIP"},
              {"ports", Json::array({{{"name", "http"}, {"port", 80}, {"nodePort", 30080}}})}});
  svc["status"] = {{"loadBalancer", {{"ingress", Json::array({{{"ip", "198.51.100.20"}}})}}}};
  ProxyState s = Build({svc}, {});
  const auto& p = s.ports.begin()->second;
  EXPECT_EQ(p.node_port, 30080);
  EXPECT_EQ(p.external_ips, std::vector<Ipv4Address>{Ip("198.51.100.9")});
  EXPECT_EQ(p.load_balancer_ips, std::vector<Ipv4Address>{Ip("198.51.100.20")});
  EXPECT_TRUE(p.external_local);
  EXPECT_TRUE(p.internal_local);
  EXPECT_EQ(p.affinity_timeout_seconds, 10800);  // the API's default

  // A ClusterIP Service has no NodePort (even if one is written) and its
  // externalTrafficPolicy means nothing; affinity takes the given timeout.
  Json plain =
      Service("plain", {{"externalTrafficPolicy", "Local"},
                        {"sessionAffinity", "ClientIP"},
                        {"sessionAffinityConfig", {{"clientIP", {{"timeoutSeconds", 15}}}}},
                        {"ports", Json::array({{{"port", 80}, {"nodePort", 30081}}})}});
  s = Build({plain}, {});
  const auto& q = s.ports.begin()->second;
  EXPECT_EQ(q.node_port, 0);
  EXPECT_FALSE(q.external_local);
  EXPECT_EQ(q.affinity_timeout_seconds, 15);
  EXPECT_EQ(q.port_name, "");
}

// A backend that records what it was asked, and can fail.
class FakeBackend : public netstack::ProxyBackend {
 public:
  struct Shared {
    std::mutex mu;
    std::deque<ProxyState> synced;
    int fail_next = 0;
    int failures = 0;
  };
  explicit FakeBackend(std::shared_ptr<Shared> s) : s_(std::move(s)) {}
  void Sync(const ProxyState& state) override {
    std::lock_guard l(s_->mu);
    if (s_->fail_next > 0) {
      --s_->fail_next;
      ++s_->failures;
      throw Error::Internal("nft: injected failure");
    }
    s_->synced.push_back(state);
  }
  void Remove() override {}

 private:
  std::shared_ptr<Shared> s_;
};

class ServiceProxyTest : public RegistryTest {
 protected:
  void SetUp() override {
    manager_ = std::make_unique<ControllerManager>(cl());
    ServiceProxyOptions o;
    o.node = Node();
    o.backend = std::make_unique<FakeBackend>(backend_);
    o.health = health_;
    manager_->Emplace<ServiceProxy>(manager_->informers(), std::move(o));
    manager_->Start();
  }
  void TearDown() override { manager_.reset(); }

  std::optional<ProxyState> Last() {
    std::lock_guard l(backend_->mu);
    if (backend_->synced.empty()) return std::nullopt;
    return backend_->synced.back();
  }
  // The endpoints of the last synced state's one port of `svc`.
  std::vector<ProxyEndpoint> EndpointsOf(const std::string& svc) {
    auto s = Last();
    if (!s) return {};
    for (const auto& [k, p] : s->ports) {
      if (p.name == svc) return p.cluster_endpoints;
    }
    return {};
  }
  const ResourceInfo& Slices() { return *FindResource("discovery.k8s.io", "v1", "endpointslices"); }

  std::shared_ptr<FakeBackend::Shared> backend_ = std::make_shared<FakeBackend::Shared>();
  // A timeout of 0: unhealthy whenever a change waits.
  std::shared_ptr<netstack::ProxyHealth> health_ =
      std::make_shared<netstack::ProxyHealth>(std::chrono::milliseconds(0));
  std::unique_ptr<ControllerManager> manager_;
};

TEST_F(ServiceProxyTest, SyncsAtStartAndFollowsServicesAndSlices) {
  // The first sync comes with no Services of ours (only default/kubernetes).
  ASSERT_TRUE(Eventually([&] { return Last().has_value(); }));
  Json svc = Service("web", {});
  svc["spec"].erase("clusterIP");  // allocated by the API
  svc = cl().Create(ServicesResource(), "default", svc);
  cl().Create(Slices(), "default", Slice("web-a", "web", {Endpoint("10.244.1.5", "n2")}));
  ASSERT_TRUE(Eventually(
      [&] { return EndpointsOf("web") == std::vector<ProxyEndpoint>{Ep("10.244.1.5", 8080)}; }));
  EXPECT_EQ(Last()->ports.at("default/web:http").cluster_ip,
            Ip(svc["spec"]["clusterIP"].get<std::string>().c_str()));

  // A new endpoint, then a deleted Service.
  UpdateRetryingConflicts(Slices(), "default", "web-a",
                          [](Json& s) { s["endpoints"].push_back(Endpoint("10.244.2.6", "n3")); });
  ASSERT_TRUE(Eventually([&] { return EndpointsOf("web").size() == 2; }));
  cl().Delete(ServicesResource(), "default", "web");
  ASSERT_TRUE(Eventually([&] { return !Last()->ports.count("default/web:http"); }));
}

// serviceProxyHealthy: a change waiting on failing syncs makes the proxy
// unhealthy; the sync that succeeds makes it healthy again.
TEST_F(ServiceProxyTest, FailingSyncsMakeTheProxyUnhealthyUntilOneSucceeds) {
  ASSERT_TRUE(Eventually([&] { return Last().has_value() && health_->Healthy(); }));
  {
    std::lock_guard l(backend_->mu);
    backend_->fail_next = 1000;
  }
  Json svc = Service("web", {});
  svc["spec"].erase("clusterIP");
  cl().Create(ServicesResource(), "default", svc);
  ASSERT_TRUE(Eventually([&] {
    std::lock_guard l(backend_->mu);
    return backend_->failures >= 2;
  }));
  EXPECT_FALSE(health_->Healthy());
  {
    std::lock_guard l(backend_->mu);
    backend_->fail_next = 0;
  }
  ASSERT_TRUE(Eventually([&] { return Last()->ports.count("default/web:http") == 1; },
                         std::chrono::seconds(10)));
  EXPECT_TRUE(Eventually([&] { return health_->Healthy(); }));
}

TEST_F(ServiceProxyTest, AFailedSyncIsRetried) {
  ASSERT_TRUE(Eventually([&] { return Last().has_value(); }));
  {
    std::lock_guard l(backend_->mu);
    backend_->fail_next = 2;
  }
  Json svc = Service("web", {});
  svc["spec"].erase("clusterIP");
  cl().Create(ServicesResource(), "default", svc);
  ASSERT_TRUE(Eventually([&] { return Last()->ports.count("default/web:http") == 1; },
                         std::chrono::seconds(10)));
  std::lock_guard l(backend_->mu);
  EXPECT_EQ(backend_->failures, 2);
}

}  // namespace
}  // namespace kin::controllers
