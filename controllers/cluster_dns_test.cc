// Cluster DNS's API side: BuildDnsService on plain objects, DnsZoneSync
// against a real registry (the zone answers follow Services, slices and
// namespaces), and the system objects.
#include "controllers/cluster_dns.h"

#include <gtest/gtest.h>

#include "client/resources.h"
#include "controllers/manager.h"
#include "controllers/registry_fixture.h"
#include "testing/kernel_fixture.h"  // Eventually

namespace kin::controllers {
namespace {

using netstack::DnsAnswer;
using netstack::DnsRcode;
using netstack::DnsService;
using netstack::DnsType;
using netstack::Ipv4Address;
using testing::Eventually;

Ipv4Address Ip(const char* s) { return Ipv4Address::Parse(s); }

Json Service(const std::string& name, Json spec) {
  return {{"apiVersion", "v1"},
          {"kind", "Service"},
          {"metadata", {{"namespace", "default"}, {"name", name}}},
          {"spec", spec}};
}

Json Slice(const std::string& name, const std::string& service, Json endpoints,
           const std::string& type = "IPv4") {
  return {{"apiVersion", "discovery.k8s.io/v1"},
          {"kind", "EndpointSlice"},
          {"metadata",
           {{"namespace", "default"},
            {"name", name},
            {"labels", {{"kubernetes.io/service-name", service}}}}},
          {"addressType", type},
          {"endpoints", endpoints},
          {"ports", Json::array({{{"name", "http"}, {"port", 8080}, {"protocol", "TCP"}}})}};
}

ObjectPtr Ptr(Json j) { return std::make_shared<const Json>(std::move(j)); }

TEST(BuildDnsServiceTest, ClusterIpPortsAndReadyEndpoints) {
  Json svc = Service("web", {{"clusterIP", "10.96.0.20"},
                             {"clusterIPs", {"10.96.0.20"}},
                             {"ports",
                              {{{"name", "http"}, {"port", 80}, {"protocol", "TCP"}},
                               {{"name", "dns"}, {"port", 53}, {"protocol", "UDP"}},
                               {{"port", 9000}}}}});
  auto d = BuildDnsService(
      svc, {Ptr(Slice("web-a", "web",
                      {{{"addresses", {"10.244.1.5"}}, {"conditions", {{"ready", true}}}},
                       {{"addresses", {"10.244.1.6"}}, {"conditions", {{"ready", false}}}},
                       {{"addresses", {"10.244.1.7"}}, {"hostname", "db-0"}}})),
            Ptr(Slice("web-v6", "web", {{{"addresses", {"fd00::1"}}}}, "IPv6"))});
  ASSERT_TRUE(d);
  EXPECT_EQ(d->kind, DnsService::Kind::kClusterIP);
  EXPECT_EQ(d->cluster_ips, std::vector<Ipv4Address>{Ip("10.96.0.20")});
  EXPECT_EQ(d->ports, (std::vector<netstack::DnsServicePort>{
                          {"http", "TCP", 80}, {"dns", "UDP", 53}, {"", "TCP", 9000}}));
  // Not-ready endpoints are left out; unset readiness is ready.
  const std::vector<netstack::DnsServicePort> slice_ports = {{"http", "TCP", 8080}};
  EXPECT_EQ(d->endpoints,
            (std::vector<netstack::DnsEndpoint>{{Ip("10.244.1.5"), "", slice_ports},
                                                {Ip("10.244.1.7"), "db-0", slice_ports}}));
}

TEST(BuildDnsServiceTest, HeadlessExternalNameAndUnallocated) {
  auto h = BuildDnsService(Service("hs", {{"clusterIP", "None"}}), {});
  ASSERT_TRUE(h);
  EXPECT_EQ(h->kind, DnsService::Kind::kHeadless);
  auto e = BuildDnsService(
      Service("ext", {{"type", "ExternalName"}, {"externalName", "www.example.com"}}), {});
  ASSERT_TRUE(e);
  EXPECT_EQ(e->kind, DnsService::Kind::kExternalName);
  EXPECT_EQ(e->external_name, "www.example.com");
  EXPECT_FALSE(BuildDnsService(Service("new", Json::object()), {}));
  EXPECT_FALSE(BuildDnsService(Service("v6", {{"clusterIP", "fd00::10"}}), {}));
}

TEST(ClusterDnsObjectsTest, KubeDnsServiceAndCorednsDeploymentAsKubeadmMakesThem) {
  auto objs = ClusterDnsObjects(
      {.cluster_ip = "10.96.0.10", .replicas = 2, .image = "kin.dev/cluster-dns:0.1.0"});
  ASSERT_EQ(objs.size(), 2u);
  const Json& svc = objs[0];
  EXPECT_EQ(svc["kind"], "Service");
  EXPECT_EQ(svc["metadata"]["name"], "kube-dns");
  EXPECT_EQ(svc["metadata"]["namespace"], "kube-system");
  EXPECT_EQ(svc["spec"]["clusterIP"], "10.96.0.10");
  EXPECT_EQ(svc["spec"]["selector"], (Json{{"k8s-app", "kube-dns"}}));
  EXPECT_EQ(svc["spec"]["ports"].size(), 3u);
  const Json& d = objs[1];
  EXPECT_EQ(d["kind"], "Deployment");
  EXPECT_EQ(d["metadata"]["name"], "coredns");
  EXPECT_EQ(d["spec"]["replicas"], 2);
  const Json& pod = d["spec"]["template"]["spec"];
  EXPECT_EQ(pod["containers"][0]["image"], "kin.dev/cluster-dns:0.1.0");
  EXPECT_EQ(pod["containers"][0]["readinessProbe"]["httpGet"]["port"], 8181);
  EXPECT_EQ(pod["dnsPolicy"], "Default");
  EXPECT_EQ(pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
               ["podAffinityTerm"]["topologyKey"],
            "kubernetes.io/hostname");
}

class DnsZoneSyncTest : public RegistryTest {
 protected:
  void SetUp() override {
    manager_ = std::make_unique<ControllerManager>(cl());
    manager_->Emplace<DnsZoneSync>(manager_->informers(), zone_);
    manager_->Start();
  }
  void TearDown() override { manager_.reset(); }
  std::vector<Ipv4Address> A(const std::string& name) {
    DnsAnswer a = zone_.Resolve(name, DnsType::kA);
    std::vector<Ipv4Address> out;
    for (const auto& r : a.answer) {
      if (r.type == DnsType::kA) out.push_back(r.ipv4);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  netstack::DnsZone zone_;
  std::unique_ptr<ControllerManager> manager_;
};

TEST_F(DnsZoneSyncTest, FollowsServicesSlicesAndNamespaces) {
  // The bootstrap's kubernetes Service.
  ASSERT_TRUE(Eventually([&] {
    return A("kubernetes.default.svc.cluster.local.") == std::vector<Ipv4Address>{Ip("10.96.0.1")};
  }));
  cl().Create(
      ServicesResource(), "default",
      Service("hs", {{"clusterIP", "None"}, {"ports", {{{"name", "http"}, {"port", 80}}}}}));
  const ResourceInfo& slices = *FindResource("discovery.k8s.io", "v1", "endpointslices");
  cl().Create(
      slices, "default",
      Slice("hs-a", "hs", {{{"addresses", {"10.244.1.5"}}}, {{"addresses", {"10.244.1.6"}}}}));
  ASSERT_TRUE(Eventually([&] {
    return A("hs.default.svc.cluster.local.") ==
           std::vector<Ipv4Address>{Ip("10.244.1.5"), Ip("10.244.1.6")};
  }));
  // A slice changes: the answer follows.
  cl().Patch(slices, "default", "hs-a", PatchType::kMerge,
             {{"endpoints", {{{"addresses", {"10.244.1.9"}}}}}});
  ASSERT_TRUE(Eventually([&] {
    return A("hs.default.svc.cluster.local.") == std::vector<Ipv4Address>{Ip("10.244.1.9")};
  }));
  // Pod records need their namespace to exist.
  ASSERT_TRUE(Eventually([&] { return A("10-244-1-9.default.pod.cluster.local.").size() == 1; }));
  EXPECT_EQ(zone_.Resolve("10-244-1-9.nowhere.pod.cluster.local.", DnsType::kA).rcode,
            DnsRcode::kNxDomain);
  cl().Create(NamespacesResource(), "",
              {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "nowhere"}}}});
  ASSERT_TRUE(Eventually([&] { return A("10-244-1-9.nowhere.pod.cluster.local.").size() == 1; }));
  // Deleted: NXDOMAIN.
  cl().Delete(ServicesResource(), "default", "hs");
  ASSERT_TRUE(Eventually([&] {
    return zone_.Resolve("hs.default.svc.cluster.local.", DnsType::kA).rcode == DnsRcode::kNxDomain;
  }));
}

// What a DNS pod waits for before answering: once WaitSynced() is true, the
// zone already holds what the API had (here Services made before the
// controller started, as after a restart of kin serve), without waiting
// for the workers.
class DnsZoneSyncStartTest : public RegistryTest {};

TEST_F(DnsZoneSyncStartTest, WaitSyncedMeansTheZoneHasTheStartingState) {
  for (int i = 0; i < 20; ++i) {
    cl().Create(ServicesResource(), "default",
                  Service("s" + std::to_string(i), {{"ports", {{{"port", 80}}}}}));
  }
  netstack::DnsZone zone;
  ControllerManager manager(cl());
  auto& sync = manager.Emplace<DnsZoneSync>(manager.informers(), zone);
  EXPECT_FALSE(sync.WaitSynced(std::chrono::milliseconds(0))) << "not started";
  manager.Start();
  ASSERT_TRUE(sync.WaitSynced(std::chrono::seconds(10)));
  for (int i = 0; i < 20; ++i) {
    const std::string name = "s" + std::to_string(i) + ".default.svc.cluster.local.";
    EXPECT_EQ(zone.Resolve(name, DnsType::kA).rcode, DnsRcode::kNoError) << name;
  }
  manager.Stop();
  EXPECT_TRUE(sync.WaitSynced(std::chrono::milliseconds(0))) << "stays true";
}

}  // namespace
}  // namespace kin::controllers
