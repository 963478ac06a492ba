// The Ingress controller's API side: BuildIngressRoutes on plain objects,
// IngressSync against a real registry (routes follow Ingresses, Services,
// slices and Secrets; status.loadBalancer follows the LB Service), and the
// system objects.
#include "controllers/ingress.h"

#include <gtest/gtest.h>

#include "base/strings.h"
#include "client/resources.h"
#include "controllers/manager.h"
#include "controllers/registry_fixture.h"
#include "testing/kernel_fixture.h"  // Eventually

namespace kin::controllers {
namespace {

using netstack::IngressEndpoint;
using netstack::IngressPathType;
using netstack::IngressRoutes;
using testing::Eventually;

ObjectPtr Ptr(Json j) { return std::make_shared<const Json>(std::move(j)); }

Json Class(const std::string& name, const std::string& controller, bool is_default) {
  Json c = {{"apiVersion", "networking.k8s.io/v1"},
            {"kind", "IngressClass"},
            {"metadata", {{"name", name}}},
            {"spec", {{"controller", controller}}}};
  if (is_default) {
    c["metadata"]["annotations"] = {{"ingressclass.kubernetes.io/is-default-class", "true"}};
  }
  return c;
}

Json Service(const std::string& name, Json ports) {
  return {{"apiVersion", "v1"},
          {"kind", "Service"},
          {"metadata", {{"namespace", "default"}, {"name", name}}},
          {"spec", {{"ports", ports}, {"selector", {{"app", name}}}}}};
}

Json Slice(const std::string& name, const std::string& service, Json endpoints, Json ports) {
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

Json Backend(const std::string& svc, Json port) {
  return {{"service", {{"name", svc}, {"port", port}}}};
}

Json Ingress(const std::string& name, Json spec, const std::string& created = "") {
  Json i = {{"apiVersion", "networking.k8s.io/v1"},
            {"kind", "Ingress"},
            {"metadata", {{"namespace", "default"}, {"name", name}}},
            {"spec", spec}};
  if (!created.empty()) i["metadata"]["creationTimestamp"] = created;
  return i;
}

Json Rule(const std::string& host, const std::string& path, const std::string& type, Json backend) {
  return {{"host", host},
          {"http", {{"paths", {{{"path", path}, {"pathType", type}, {"backend", backend}}}}}}};
}

struct Fixture {
  std::map<std::string, ObjectPtr> services, secrets;
  std::map<std::string, std::vector<ObjectPtr>> slices;
  IngressSources Sources(std::vector<Json> ingresses, std::vector<Json> classes) {
    IngressSources s;
    for (auto& i : ingresses) s.ingresses.push_back(Ptr(i));
    for (auto& c : classes) s.classes.push_back(Ptr(c));
    s.service = [this](const std::string& k) { return services.count(k) ? services[k] : nullptr; };
    s.secret = [this](const std::string& k) { return secrets.count(k) ? secrets[k] : nullptr; };
    s.slices = [this](const std::string& k) { return slices[k]; };
    return s;
  }
};

TEST(ServesIngressTest, ByClassNameAnnotationOrDefault) {
  std::vector<ObjectPtr> classes = {Ptr(Class("kin", kIngressControllerName, true)),
                                    Ptr(Class("nginx", "k8s.io/ingress-nginx", false))};
  EXPECT_TRUE(ServesIngress(Ingress("a", {{"ingressClassName", "kin"}}), classes));
  EXPECT_FALSE(ServesIngress(Ingress("a", {{"ingressClassName", "nginx"}}), classes));
  EXPECT_FALSE(ServesIngress(Ingress("a", {{"ingressClassName", "missing"}}), classes));
  EXPECT_TRUE(ServesIngress(Ingress("a", Json::object()), classes));  // default class
  Json annotated = Ingress("a", Json::object());
  annotated["metadata"]["annotations"] = {{"kubernetes.io/ingress.class", "nginx"}};
  EXPECT_FALSE(ServesIngress(annotated, classes));
  // Without the default annotation, class-less Ingresses are someone else's.
  std::vector<ObjectPtr> not_default = {Ptr(Class("kin", kIngressControllerName, false))};
  EXPECT_FALSE(ServesIngress(Ingress("a", Json::object()), not_default));
  EXPECT_FALSE(ServesIngress(Ingress("a", {{"ingressClassName", "kin"}}), {}));
}

TEST(BuildIngressRoutesTest, BackendsByPortNumberOrNameAtTheTargetPort) {
  Fixture f;
  f.services["default/web"] =
      Ptr(Service("web", {{{"name", "http"}, {"port", 80}}, {{"name", "admin"}, {"port", 9000}}}));
  f.slices["default/web"] = {
      Ptr(Slice("web-1", "web",
                {{{"addresses", {"10.244.1.5"}}, {"conditions", {{"ready", true}}}},
                 {{"addresses", {"10.244.2.6"}}},
                 {{"addresses", {"10.244.2.7"}}, {"conditions", {{"ready", false}}}}},
                {{{"name", "http"}, {"port", 8080}, {"protocol", "TCP"}},
                 {{"name", "admin"}, {"port", 9090}, {"protocol", "TCP"}}}))};
  Json spec = {{"ingressClassName", "kin"},
               {"defaultBackend", Backend("web", {{"name", "admin"}})},
               {"rules",
                {Rule("foo.example", "/", "Prefix", Backend("web", {{"number", 80}})),
                 Rule("*.bar.example", "/x", "Exact", Backend("missing", {{"number", 80}})),
                 Rule("", "/p", "ImplementationSpecific", Backend("web", {{"number", 81}}))}}};
  IngressRoutes r = BuildIngressRoutes(
      f.Sources({Ingress("i", spec)}, {Class("kin", kIngressControllerName, false)}));
  ASSERT_EQ(r.rules.size(), 3u);
  EXPECT_EQ(r.rules[0].host, "foo.example");
  ASSERT_EQ(r.rules[0].paths.size(), 1u);
  EXPECT_EQ(r.rules[0].paths[0].type, IngressPathType::kPrefix);
  EXPECT_EQ(r.rules[0].paths[0].backend.name, "default/web:80");
  EXPECT_EQ(r.rules[0].paths[0].backend.endpoints,
            (std::vector<IngressEndpoint>{{"10.244.1.5", 8080}, {"10.244.2.6", 8080}}));
  EXPECT_EQ(r.rules[1].paths[0].type, IngressPathType::kExact);
  EXPECT_TRUE(r.rules[1].paths[0].backend.endpoints.empty());  // no such Service: 503
  EXPECT_EQ(r.rules[2].paths[0].type, IngressPathType::kImplementationSpecific);
  EXPECT_TRUE(r.rules[2].paths[0].backend.endpoints.empty());  // no such port
  ASSERT_TRUE(r.default_backend);
  EXPECT_EQ(r.default_backend->endpoints,
            (std::vector<IngressEndpoint>{{"10.244.1.5", 9090}, {"10.244.2.6", 9090}}));
}

TEST(BuildIngressRoutesTest, OnlyServedIngressesOldestFirstWithTheirCertificates) {
  Fixture f;
  f.services["default/web"] = Ptr(Service("web", {{{"name", "http"}, {"port", 80}}}));
  f.secrets["default/tls"] =
      Ptr({{"apiVersion", "v1"},
           {"kind", "Secret"},
           {"metadata", {{"namespace", "default"}, {"name", "tls"}}},
           {"type", "kubernetes.io/tls"},
           {"data", {{"tls.crt", Base64Encode("CERT")}, {"tls.key", Base64Encode("KEY")}}}});
  Json newer = {{"rules", {Rule("new.example", "/", "Prefix", Backend("web", {{"number", 80}}))}},
                {"defaultBackend", Backend("web", {{"number", 80}})},
                {"tls",
                 {{{"hosts", {"new.example"}}, {"secretName", "tls"}},
                  {{"hosts", {"nosecret.example"}}, {"secretName", "missing"}}}}};
  Json older = {{"rules", {Rule("old.example", "/", "Prefix", Backend("web", {{"number", 80}}))}}};
  Json other = {
      {"ingressClassName", "nginx"},
      {"rules", {Rule("other.example", "/", "Prefix", Backend("web", {{"number", 80}}))}}};
  Json deleting = Ingress("gone", older, "2020-01-01T00:00:00Z");
  deleting["metadata"]["deletionTimestamp"] = "2020-01-02T00:00:00Z";
  IngressRoutes r = BuildIngressRoutes(f.Sources(
      {Ingress("b", newer, "2024-01-02T00:00:00Z"), Ingress("a", older, "2024-01-01T00:00:00Z"),
       Ingress("c", other, "2023-01-01T00:00:00Z"), deleting},
      {Class("kin", kIngressControllerName, true), Class("nginx", "k8s.io/ingress-nginx", false)}));
  ASSERT_EQ(r.rules.size(), 2u);
  EXPECT_EQ(r.rules[0].host, "old.example");
  EXPECT_EQ(r.rules[1].host, "new.example");
  ASSERT_TRUE(r.default_backend);
  ASSERT_EQ(r.certificates.size(), 1u);
  EXPECT_EQ(r.certificates[0].hosts, std::vector<std::string>{"new.example"});
  EXPECT_EQ(r.certificates[0].cert_pem, "CERT");
  EXPECT_EQ(r.certificates[0].key_pem, "KEY");
}

TEST(BuildIngressRoutesTest, HostsWithTlsRedirectUnlessAnnotated) {
  Fixture f;
  Json tls = {{"ingressClassName", "kin"},
              {"tls", {{{"hosts", {"Secure.example"}}}}},  // no Secret: the default certificate
              {"rules",
               {Rule("secure.example", "/", "Prefix", Backend("web", {{"number", 80}})),
                Rule("plain.example", "/", "Prefix", Backend("web", {{"number", 80}}))}}};
  // Another Ingress's paths on the same host redirect too, unless it says no.
  Json other = {
      {"ingressClassName", "kin"},
      {"rules", {Rule("secure.example", "/api", "Prefix", Backend("web", {{"number", 80}}))}}};
  Json opted_out = Ingress("c", other, "2024-01-03T00:00:00Z");
  opted_out["metadata"]["annotations"] = {{"nginx.ingress.kubernetes.io/ssl-redirect", "false"}};
  opted_out["spec"]["rules"][0]["http"]["paths"][0]["path"] = "/out";
  Json forced = Ingress(
      "d",
      {{"ingressClassName", "kin"},
       {"rules", {Rule("forced.example", "/", "Prefix", Backend("web", {{"number", 80}}))}}},
      "2024-01-04T00:00:00Z");
  forced["metadata"]["annotations"] = {{"nginx.ingress.kubernetes.io/force-ssl-redirect", "true"}};
  IngressRoutes r =
      BuildIngressRoutes(f.Sources({Ingress("a", tls, "2024-01-01T00:00:00Z"),
                                    Ingress("b", other, "2024-01-02T00:00:00Z"), opted_out, forced},
                                   {Class("kin", kIngressControllerName, false)}));
  ASSERT_EQ(r.rules.size(), 5u);
  EXPECT_TRUE(r.rules[0].paths[0].ssl_redirect);   // secure.example /
  EXPECT_FALSE(r.rules[1].paths[0].ssl_redirect);  // plain.example
  EXPECT_TRUE(r.rules[2].paths[0].ssl_redirect);   // secure.example /api, another Ingress
  EXPECT_FALSE(r.rules[3].paths[0].ssl_redirect);  // opted out
  EXPECT_TRUE(r.rules[4].paths[0].ssl_redirect);   // forced
  EXPECT_TRUE(r.certificates.empty());
}

TEST(IngressRouteHubTest, ProxiesGetRoutesOnlyOnceSynced) {
  IngressRouteHub hub;
  netstack::IngressProxy early({}), late({});
  hub.Add(&early);
  EXPECT_FALSE(early.has_routes());  // not ready before the first sync
  IngressRoutes r;
  r.rules = {{"foo.example", {}}};
  hub.Set(r);
  EXPECT_TRUE(early.has_routes());
  EXPECT_EQ(hub.generation(), 1u);
  hub.Set(r);  // the same: nothing to hand out
  EXPECT_EQ(hub.generation(), 1u);
  hub.Add(&late);
  EXPECT_TRUE(late.has_routes());
  EXPECT_EQ(hub.Get(), r);
  hub.Remove(&early);
  hub.Remove(&late);
}

TEST(IngressObjectsTest, ClassDeploymentAndLoadBalancerService) {
  std::vector<Json> objs = IngressObjects({.image = "kin.dev/ingress:0.1.0"});
  ASSERT_EQ(objs.size(), 4u);
  EXPECT_EQ(objs[0]["kind"], "Namespace");
  EXPECT_EQ(objs[0]["metadata"]["name"], "ingress-nginx");
  EXPECT_EQ(objs[1]["kind"], "IngressClass");
  EXPECT_EQ(objs[1]["metadata"]["name"], "kin");
  EXPECT_EQ(objs[1]["spec"]["controller"], "kin.dev/ingress");
  EXPECT_EQ(objs[1]["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"],
            "true");
  EXPECT_EQ(objs[2]["kind"], "Deployment");
  EXPECT_EQ(objs[2]["spec"]["replicas"], 1);
  const Json& c = objs[2]["spec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(c["image"], "kin.dev/ingress:0.1.0");
  EXPECT_EQ(c["readinessProbe"]["httpGet"]["port"], 10254);
  EXPECT_EQ(objs[3]["kind"], "Service");
  EXPECT_EQ(objs[3]["spec"]["type"], "LoadBalancer");
  EXPECT_EQ(objs[3]["spec"]["externalTrafficPolicy"], "Local");
  EXPECT_EQ(objs[3]["spec"]["ports"][0]["port"], 80);
  EXPECT_EQ(objs[3]["spec"]["ports"][1]["port"], 443);
  EXPECT_EQ(objs[3]["spec"]["selector"], objs[2]["spec"]["selector"]["matchLabels"]);
}

class IngressSyncTest : public RegistryTest {
 protected:
  void SetUp() override {
    manager_ = std::make_unique<ControllerManager>(cl());
    manager_->Emplace<IngressSync>(manager_->informers(), cl(), hub_);
    manager_->Start();
  }
  void TearDown() override { manager_.reset(); }
  const ResourceInfo& Slices() { return *FindResource("discovery.k8s.io", "v1", "endpointslices"); }
  std::vector<IngressEndpoint> EndpointsOf(const std::string& host) {
    for (const auto& r : hub_.Get().rules) {
      if (r.host == host && !r.paths.empty()) return r.paths[0].backend.endpoints;
    }
    return {};
  }

  IngressRouteHub hub_;
  std::unique_ptr<ControllerManager> manager_;
};

TEST_F(IngressSyncTest, RoutesAndStatusFollowTheApi) {
  for (const Json& o : IngressObjects({.image = "kin.dev/ingress:x"})) {
    const ResourceInfo* r =
        FindResourceByKind(o["apiVersion"].get<std::string>(), o["kind"].get<std::string>());
    cl().Create(*r, o["metadata"].value("namespace", ""), o);
  }
  cl().Create(ServicesResource(), "default", Service("web", {{{"name", "http"}, {"port", 80}}}));
  cl().Create(Slices(), "default",
              Slice("web-1", "web", {{{"addresses", {"10.244.1.5"}}}},
                    {{{"name", "http"}, {"port", 8080}, {"protocol", "TCP"}}}));
  cl().Create(
      IngressesResource(), "default",
      Ingress("i",
              {{"rules", {Rule("foo.example", "/", "Prefix", Backend("web", {{"number", 80}}))}}}));
  ASSERT_TRUE(Eventually([&] {
    return EndpointsOf("foo.example") == std::vector<IngressEndpoint>{{"10.244.1.5", 8080}};
  }));
  // An Event, as ingress-nginx records; once per spec, not per sync.
  ASSERT_TRUE(Eventually([&] { return EventsWithReason(cl(), "Sync", "i").size() == 1; }));
  EXPECT_EQ(EventsWithReason(cl(), "Sync", "i")[0].value("message", ""), "Scheduled for sync");
  EXPECT_EQ(EventsWithReason(cl(), "Sync", "i")[0]["source"].value("component", ""),
            "kin-ingress-controller");
  // The slice changes: the routes follow.
  cl().Patch(Slices(), "default", "web-1", PatchType::kMerge,
             {{"endpoints", {{{"addresses", {"10.244.1.9"}}}}}});
  ASSERT_TRUE(Eventually([&] {
    return EndpointsOf("foo.example") == std::vector<IngressEndpoint>{{"10.244.1.9", 8080}};
  }));
  // No address on the LB Service yet: no status.
  EXPECT_FALSE(
      cl().Get(IngressesResource(), "default", "i")["status"]["loadBalancer"].contains("ingress"));
  // The LB controller gives the Service an address: the Ingress shows it.
  cl().Patch(ServicesResource(), kIngressNamespace, kIngressServiceName, PatchType::kMerge,
             {{"status", {{"loadBalancer", {{"ingress", {{{"ip", "198.51.100.7"}}}}}}}}}, "status");
  ASSERT_TRUE(Eventually([&] {
    Json ing = cl().Get(IngressesResource(), "default", "i");
    return ing["status"]["loadBalancer"]["ingress"] == Json::array({{{"ip", "198.51.100.7"}}});
  }));
  {  // status and slices: no new one
    auto events = EventsWithReason(cl(), "Sync", "i");
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].value("count", 1), 1);
  }
  // An Ingress of another class is neither routed nor given a status.
  cl().Create(
      IngressesResource(), "default",
      Ingress(
          "other",
          {{"ingressClassName", "nginx"},
           {"rules", {Rule("other.example", "/", "Prefix", Backend("web", {{"number", 80}}))}}}));
  cl().Delete(IngressesResource(), "default", "i");
  ASSERT_TRUE(Eventually([&] { return hub_.Get().rules.empty(); }));
  EXPECT_FALSE(cl().Get(IngressesResource(), "default", "other")["status"]["loadBalancer"].contains(
      "ingress"));
}

TEST_F(IngressSyncTest, PodServersNeedAHub) {
  IngressPodServersOptions o;
  o.node = "n";
  o.pod_netns = [](const Json&) { return std::string(); };
  EXPECT_THROW(IngressPodServers(manager_->informers(), o), Error);
}

TEST_F(IngressSyncTest, TlsSecretsReachTheRoutes) {
  cl().Create(IngressClassesResource(), "", Class("kin", kIngressControllerName, true));
  cl().Create(SecretsResource(), "default",
              {{"apiVersion", "v1"},
               {"kind", "Secret"},
               {"metadata", {{"namespace", "default"}, {"name", "tls"}}},
               {"type", "kubernetes.io/tls"},
               {"data", {{"tls.crt", Base64Encode("C1")}, {"tls.key", Base64Encode("K1")}}}});
  cl().Create(
      IngressesResource(), "default",
      Ingress("i",
              {{"tls", {{{"hosts", {"foo.example"}}, {"secretName", "tls"}}}},
               {"rules", {Rule("foo.example", "/", "Prefix", Backend("web", {{"number", 80}}))}}}));
  ASSERT_TRUE(Eventually([&] {
    auto r = hub_.Get();
    return r.certificates.size() == 1 && r.certificates[0].cert_pem == "C1";
  }));
  cl().Patch(SecretsResource(), "default", "tls", PatchType::kMerge,
             {{"data", {{"tls.crt", Base64Encode("C2")}}}});
  ASSERT_TRUE(Eventually([&] {
    auto r = hub_.Get();
    return r.certificates.size() == 1 && r.certificates[0].cert_pem == "C2";
  }));
}

}  // namespace
}  // namespace kin::controllers
