// Quota accounting: quantities summed and printed as resource.Quantity,
// what pods, services and claims use, scopes and the pod constraint.
#include "client/quota.h"

#include <gtest/gtest.h>

namespace kin::quota {
namespace {

std::string Canon(const std::string& s) { return Amount::Parse(s)->String(); }

const ResourceInfo& Res(const char* plural) { return *FindResource("", "v1", plural); }

Json Pod(Json containers, Json status = {{"phase", "Running"}}) {
  return {{"metadata", {{"name", "p"}, {"namespace", "default"}}},
          {"spec", {{"containers", containers}}},
          {"status", status}};
}

Json Container(const std::string& name, Json requests, Json limits = Json::object()) {
  Json c = {{"name", name}, {"image", "busybox"}, {"resources", Json::object()}};
  if (!requests.empty()) c["resources"]["requests"] = requests;
  if (!limits.empty()) c["resources"]["limits"] = limits;
  return c;
}

TEST(QuotaAmountTest, PrintsAsQuantityString) {
  EXPECT_EQ(Canon("100m"), "100m");
  EXPECT_EQ(Canon("1000m"), "1");
  EXPECT_EQ(Canon("1500m"), "1500m");
  EXPECT_EQ(Canon("0.5"), "500m");
  EXPECT_EQ(Canon("1000"), "1k");
  EXPECT_EQ(Canon("1Gi"), "1Gi");
  EXPECT_EQ(Canon("1536Mi"), "1536Mi");
  EXPECT_EQ(Canon("512"), "512");
  EXPECT_EQ(Canon("2048"), "2048");  // DecimalSI stays decimal
  EXPECT_EQ(Canon("1e3"), "1e3");
  EXPECT_EQ(Canon("0"), "0");
  ResourceList a = {{"memory", *Amount::Parse("128Mi")}};
  ResourceList b = {{"memory", *Amount::Parse("64Mi")}, {"cpu", *Amount::Parse("250m")}};
  ResourceList sum = Add(Add(a, b), {{"cpu", *Amount::Parse("750m")}});
  EXPECT_EQ(sum["memory"].String(), "192Mi");
  EXPECT_EQ(sum["cpu"].String(), "1");
  // A zero takes the format of what is added to it.
  ResourceList zero = {{"memory", Amount{}}};
  EXPECT_EQ(Add(zero, a)["memory"].String(), "128Mi");
  EXPECT_EQ(PrettyPrint(sum), "cpu=1,memory=192Mi");
}

TEST(QuotaUsageTest, PodsCountRequestsAndLimitsUnlessTerminal) {
  Json pod = Pod({Container("a", {{"cpu", "100m"}, {"memory", "64Mi"}}, {{"cpu", "200m"}}),
                  Container("b", {{"cpu", "150m"}})});
  ResourceList u = Usage(Res("pods"), pod);
  EXPECT_EQ(PrettyPrint(u),
            "count/pods=1,cpu=250m,limits.cpu=200m,memory=64Mi,pods=1,requests.cpu=250m,"
            "requests.memory=64Mi");
  pod["status"]["phase"] = "Succeeded";
  EXPECT_EQ(PrettyPrint(Usage(Res("pods"), pod)), "count/pods=1");
  pod["status"]["phase"] = "Failed";
  EXPECT_EQ(PrettyPrint(Usage(Res("pods"), pod)), "count/pods=1");
}

TEST(QuotaUsageTest, ServicesClaimsAndObjectCounts) {
  Json svc = {{"spec", {{"type", "NodePort"}, {"ports", {{{"port", 80}}, {{"port", 443}}}}}}};
  EXPECT_EQ(PrettyPrint(Usage(Res("services"), svc)),
            "count/services=1,services=1,services.nodeports=2");
  svc["spec"]["type"] = "LoadBalancer";
  EXPECT_EQ(PrettyPrint(Usage(Res("services"), svc)),
            "count/services=1,services=1,services.loadbalancers=1,services.nodeports=2");
  Json pvc = {{"spec",
               {{"storageClassName", "standard"},
                {"resources", {{"requests", {{"storage", "1Gi"}}}}}}}};
  EXPECT_EQ(PrettyPrint(Usage(Res("persistentvolumeclaims"), pvc)),
            "count/persistentvolumeclaims=1,persistentvolumeclaims=1,requests.storage=1Gi,"
            "standard.storageclass.storage.k8s.io/persistentvolumeclaims=1,"
            "standard.storageclass.storage.k8s.io/requests.storage=1Gi");
  EXPECT_EQ(PrettyPrint(Usage(Res("configmaps"), Json::object())),
            "configmaps=1,count/configmaps=1");
  const ResourceInfo& deploy = *FindResource("apps", "v1", "deployments");
  EXPECT_EQ(PrettyPrint(Usage(deploy, Json::object())), "count/deployments.apps=1");
  auto counted = ResourcesCounted({"count/deployments.apps", "requests.cpu", "secrets"});
  ASSERT_EQ(counted.size(), 3u);
  EXPECT_EQ(counted[0]->plural, "pods");
  EXPECT_EQ(counted[1]->plural, "secrets");
  EXPECT_EQ(counted[2]->plural, "deployments");
  EXPECT_EQ(MatchingResources(Res("pods"), {"pods", "services", "requests.cpu", "count/pods"}),
            (std::vector<std::string>{"pods", "requests.cpu", "count/pods"}));
}

TEST(QuotaScopesTest, ScopesSelectPodsOnly) {
  Json best_effort = Pod({Container("a", Json::object())});
  Json burstable = Pod({Container("a", {{"cpu", "100m"}})});
  Json q = {{"spec", {{"scopes", {"BestEffort"}}}}};
  EXPECT_TRUE(MatchesScopes(q, Res("pods"), best_effort));
  EXPECT_FALSE(MatchesScopes(q, Res("pods"), burstable));
  EXPECT_FALSE(MatchesScopes(q, Res("services"), Json::object()));
  Json terminating = burstable;
  terminating["spec"]["activeDeadlineSeconds"] = 30;
  Json t = {{"spec", {{"scopes", {"Terminating"}}}}};
  EXPECT_TRUE(MatchesScopes(t, Res("pods"), terminating));
  EXPECT_FALSE(MatchesScopes(t, Res("pods"), burstable));
  Json pc = {{"spec",
              {{"scopeSelector",
                {{"matchExpressions",
                  {{{"scopeName", "PriorityClass"}, {"operator", "In"}, {"values", {"high"}}}}}}}}}};
  Json high = burstable;
  high["spec"]["priorityClassName"] = "high";
  EXPECT_TRUE(MatchesScopes(pc, Res("pods"), high));
  EXPECT_FALSE(MatchesScopes(pc, Res("pods"), burstable));
  EXPECT_TRUE(MatchesScopes(Json::object(), Res("services"), Json::object()));
}

TEST(QuotaConstraintsTest, CpuAndMemoryMustBeSetOnEveryContainer) {
  Json pod = Pod({Container("a", {{"cpu", "100m"}}), Container("b", Json::object())});
  EXPECT_EQ(PodConstraints({"pods"}, pod), "");
  EXPECT_EQ(PodConstraints({"requests.cpu", "pods"}, pod), "must specify requests.cpu for: b");
  EXPECT_EQ(PodConstraints({"requests.memory", "limits.cpu"}, pod),
            "must specify limits.cpu for: a,b; requests.memory for: a,b");
}

}  // namespace
}  // namespace kin::quota
