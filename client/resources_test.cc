#include "client/resources.h"

#include <gtest/gtest.h>

#include <set>

namespace kin {
namespace {

std::string PluralOf(const ResourceInfo* r) {
  return r == nullptr ? "<null>" : r->group_resource();
}

TEST(ResourcesTest, LookupByEveryNameAUserTypes) {
  struct Case {
    const char* typed;
    const char* want;
  } cases[] = {
      {"pods", "pods"},
      {"pod", "pods"},
      {"po", "pods"},
      {"Pod", "pods"},
      {"PODS", "pods"},
      {"deploy", "deployments.apps"},
      {"deployment", "deployments.apps"},
      {"Deployment", "deployments.apps"},
      {"deployments.apps", "deployments.apps"},
      {"deploy.apps", "deployments.apps"},
      {"svc", "services"},
      {"no", "nodes"},
      {"ns", "namespaces"},
      {"ep", "endpoints"},
      {"endpoints", "endpoints"},
      {"ev", "events"},
      {"cm", "configmaps"},
      {"sa", "serviceaccounts"},
      {"rs", "replicasets.apps"},
      {"ds", "daemonsets.apps"},
      {"sts", "statefulsets.apps"},
      {"jobs.batch", "jobs.batch"},
      {"ing", "ingresses.networking.k8s.io"},
      {"ingresses.networking.k8s.io", "ingresses.networking.k8s.io"},
      {"netpol", "networkpolicies.networking.k8s.io"},
      {"endpointslices.discovery.k8s.io", "endpointslices.discovery.k8s.io"},
      {"EndpointSlice", "endpointslices.discovery.k8s.io"},
      {"leases", "leases.coordination.k8s.io"},
  };
  for (const auto& c : cases) EXPECT_EQ(PluralOf(LookupResource(c.typed)), c.want) << c.typed;
}

TEST(ResourcesTest, UnknownNamesAreNull) {
  for (const char* typed :
       {"", "widgets", "pods.apps", "deployments.batch", "deployments.", "p", "deploymentsapps"}) {
    EXPECT_EQ(LookupResource(typed), nullptr) << typed;
  }
  EXPECT_EQ(FindResource("", "v1", "deployments"), nullptr);
  EXPECT_EQ(FindResource("apps", "v2", "deployments"), nullptr);
  EXPECT_EQ(FindResourceByKind("v1", "Deployment"), nullptr);
  EXPECT_EQ(FindResourceByKind("apps/v1", "Widget"), nullptr);
}

TEST(ResourcesTest, FindByUrlFormAndByKind) {
  const ResourceInfo* d = FindResource("apps", "v1", "deployments");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->kind, "Deployment");
  EXPECT_EQ(d->singular, "deployment");
  EXPECT_EQ(d->api_version(), "apps/v1");
  EXPECT_EQ(d->list_kind(), "DeploymentList");
  EXPECT_TRUE(d->has_subresource("scale"));
  EXPECT_FALSE(d->has_subresource("log"));
  EXPECT_EQ(FindResourceByKind("apps/v1", "Deployment"), d);

  const ResourceInfo* p = FindResourceByKind("v1", "Pod");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p, &PodsResource());
  EXPECT_EQ(p->api_version(), "v1");
  EXPECT_TRUE(p->has_subresource("binding"));
  EXPECT_EQ(FindResource("", "v1", "pods"), p);
}

TEST(ResourcesTest, PathForNamespacedAllNamespacesAndClusterScope) {
  EXPECT_EQ(PodsResource().Path("default"), "/api/v1/namespaces/default/pods");
  EXPECT_EQ(PodsResource().Path(""), "/api/v1/pods");
  EXPECT_EQ(PodsResource().Path(), "/api/v1/pods");
  const ResourceInfo* d = LookupResource("deploy");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->Path("prod"), "/apis/apps/v1/namespaces/prod/deployments");
  EXPECT_EQ(d->Path(""), "/apis/apps/v1/deployments");
  // Cluster-scoped resources ignore the namespace.
  EXPECT_EQ(NodesResource().Path("default"), "/api/v1/nodes");
  EXPECT_EQ(NamespacesResource().Path(""), "/api/v1/namespaces");
  const ResourceInfo* ic = LookupResource("ingressclasses");
  ASSERT_NE(ic, nullptr);
  EXPECT_FALSE(ic->namespaced);
  EXPECT_EQ(ic->Path("x"), "/apis/networking.k8s.io/v1/ingressclasses");
}

TEST(ResourcesTest, WorkloadAndPolicyResourcesAsKubeApiserverServesThem) {
  struct Case {
    const char* typed;
    const char* group_resource;
    const char* kind;
    std::vector<std::string> subresources;
    std::vector<std::string> categories;
  } cases[] = {
      {"rc", "replicationcontrollers", "ReplicationController", {"status", "scale"}, {"all"}},
      {"replicationcontroller",
       "replicationcontrollers",
       "ReplicationController",
       {"status", "scale"},
       {"all"}},
      {"controllerrevisions", "controllerrevisions.apps", "ControllerRevision", {}, {}},
      {"cj", "cronjobs.batch", "CronJob", {"status"}, {"all"}},
      {"cronjobs.batch", "cronjobs.batch", "CronJob", {"status"}, {"all"}},
      {"pdb", "poddisruptionbudgets.policy", "PodDisruptionBudget", {"status"}, {}},
      {"poddisruptionbudget", "poddisruptionbudgets.policy", "PodDisruptionBudget", {"status"}, {}},
  };
  for (const auto& c : cases) {
    const ResourceInfo* r = LookupResource(c.typed);
    ASSERT_NE(r, nullptr) << c.typed;
    EXPECT_EQ(r->group_resource(), c.group_resource) << c.typed;
    EXPECT_EQ(r->kind, c.kind) << c.typed;
    EXPECT_TRUE(r->namespaced) << c.typed;
    EXPECT_EQ(r->subresources, c.subresources) << c.typed;
    EXPECT_EQ(r->categories, c.categories) << c.typed;
    EXPECT_EQ(r->verbs.size(), 8u) << c.typed;
  }
  const ResourceInfo* pdb = FindResource("policy", "v1", "poddisruptionbudgets");
  ASSERT_NE(pdb, nullptr);
  EXPECT_EQ(pdb->Path("default"), "/apis/policy/v1/namespaces/default/poddisruptionbudgets");
  EXPECT_EQ(pdb->singular, "poddisruptionbudget");
  EXPECT_EQ(LookupResource("pdb.apps"), nullptr);
}

TEST(ResourcesTest, ShorthandsAndTableFacts) {
  EXPECT_EQ(PodsResource().plural, "pods");
  EXPECT_EQ(NodesResource().kind, "Node");
  EXPECT_FALSE(NodesResource().namespaced);
  EXPECT_EQ(ServicesResource().kind, "Service");
  EXPECT_FALSE(NamespacesResource().namespaced);
  EXPECT_EQ(EndpointsResource().singular, "endpoints");
  EXPECT_EQ(EventsResource().kind, "Event");
  // Every group/version/plural appears once; every short name names one resource.
  std::set<std::string> seen, shorts;
  for (const auto& r : AllResources()) {
    EXPECT_TRUE(seen.insert(r.api_version() + "/" + r.plural).second) << r.plural;
    for (const auto& s : r.short_names) {
      EXPECT_TRUE(shorts.insert(s).second) << s;
      EXPECT_EQ(LookupResource(s), &r) << s;
    }
    EXPECT_EQ(LookupResource(r.group_resource()), &r) << r.group_resource();
    EXPECT_EQ(FindResourceByKind(r.api_version(), r.kind), &r) << r.kind;
  }
  // Namespaces cannot be deleted as a collection.
  const auto& verbs = NamespacesResource().verbs;
  EXPECT_EQ(std::count(verbs.begin(), verbs.end(), "deletecollection"), 0);
  EXPECT_EQ(std::count(PodsResource().verbs.begin(), PodsResource().verbs.end(), "watch"), 1);
}

TEST(ResourcesTest, CustomResourcesAreFoundAfterTheTableAndStayValid) {
  ResourceInfo w;
  w.group = "example.com";
  w.version = "v1";
  w.kind = "Widget";
  w.plural = "widgets";
  w.singular = "widget";
  w.short_names = {"wd"};
  w.custom = true;
  w.storage_version = "v1";
  ResourceInfo beta = w;
  beta.version = "v1beta1";
  SetCustomResources({w, beta});
  const ResourceInfo* found = FindResource("example.com", "v1", "widgets");
  ASSERT_NE(found, nullptr);
  EXPECT_TRUE(found->custom);
  EXPECT_EQ(FindResourceByKind("example.com/v1beta1", "Widget")->version, "v1beta1");
  EXPECT_EQ(LookupResource("wd"), found);
  EXPECT_EQ(LookupResource("widgets.example.com"), found);
  EXPECT_EQ(ServedResources().size(), AllResources().size() + 2);
  // The table comes first: a custom "pods" never shadows the core one.
  EXPECT_EQ(LookupResource("pods"), &PodsResource());
  // Replaced by an equal set: the same pointers. Removed: not found any
  // more, but a pointer handed out earlier still reads.
  SetCustomResources({w, beta});
  EXPECT_EQ(FindResource("example.com", "v1", "widgets"), found);
  SetCustomResources({});
  EXPECT_EQ(FindResource("example.com", "v1", "widgets"), nullptr);
  EXPECT_EQ(LookupResource("wd"), nullptr);
  EXPECT_EQ(found->plural, "widgets");
}

}  // namespace
}  // namespace kin
