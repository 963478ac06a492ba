#include "apiserver/rbac.h"

#include <gtest/gtest.h>

namespace kin::apiserver::rbac {
namespace {

const UserInfo kSa{"system:serviceaccount:default:default",
                   {"system:serviceaccounts", "system:serviceaccounts:default",
                    "system:authenticated"}};
const UserInfo kAlice{"alice", {"dev", "system:authenticated"}};

Policy MakePolicy() {
  Policy p;
  p.AddClusterRole(Json::parse(R"({"metadata":{"name":"pod-reader"},"rules":[
    {"apiGroups":[""],"resources":["pods","pods/log"],"verbs":["get","list","watch"]}]})"));
  p.AddClusterRole(Json::parse(R"({"metadata":{"name":"discovery"},"rules":[
    {"nonResourceURLs":["/api","/api/*","/healthz"],"verbs":["get"]}]})"));
  p.AddClusterRole(Json::parse(R"({"metadata":{"name":"all-scale"},"rules":[
    {"apiGroups":["*"],"resources":["*/scale"],"verbs":["update"]}]})"));
  p.AddRole(Json::parse(R"({"metadata":{"name":"cm-one","namespace":"team"},"rules":[
    {"apiGroups":[""],"resources":["configmaps"],"resourceNames":["settings"],
     "verbs":["get","update"]}]})"));
  p.AddRole(Json::parse(R"({"metadata":{"name":"deployer","namespace":"team"},"rules":[
    {"apiGroups":["apps"],"resources":["deployments"],"verbs":["*"]}]})"));
  // Namespaced: the default SA may read pods in "default" only.
  p.AddRoleBinding(Json::parse(R"({"metadata":{"name":"sa-pods","namespace":"default"},
    "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"pod-reader"},
    "subjects":[{"kind":"ServiceAccount","name":"default"}]})"));
  p.AddRoleBinding(Json::parse(R"({"metadata":{"name":"dev-cm","namespace":"team"},
    "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"cm-one"},
    "subjects":[{"kind":"Group","name":"dev","apiGroup":"rbac.authorization.k8s.io"}]})"));
  p.AddRoleBinding(Json::parse(R"({"metadata":{"name":"sa-deploy","namespace":"team"},
    "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"deployer"},
    "subjects":[{"kind":"ServiceAccount","name":"default","namespace":"default"}]})"));
  p.AddClusterRoleBinding(Json::parse(R"({"metadata":{"name":"disc"},
    "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"discovery"},
    "subjects":[{"kind":"Group","name":"system:authenticated"}]})"));
  p.AddClusterRoleBinding(Json::parse(R"({"metadata":{"name":"alice-scale"},
    "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"all-scale"},
    "subjects":[{"kind":"User","name":"alice"}]})"));
  return p;
}

bool Allowed(const Policy& p, const UserInfo& u, const std::string& method,
             const std::string& path, bool watch = false) {
  return Authorize(p, RequestAttributes(u, method, path, watch)).allowed;
}

struct Case {
  const UserInfo* user;
  const char* method;
  const char* path;
  bool watch;
  bool allowed;
};

TEST(RbacAuthorize, GoldenCases) {
  Policy p = MakePolicy();
  const Case cases[] = {
      // Verbs from the role, in the bound namespace only.
      {&kSa, "GET", "/api/v1/namespaces/default/pods", false, true},
      {&kSa, "GET", "/api/v1/namespaces/default/pods", true, true},
      {&kSa, "GET", "/api/v1/namespaces/default/pods/web", false, true},
      {&kSa, "POST", "/api/v1/namespaces/default/pods", false, false},
      {&kSa, "DELETE", "/api/v1/namespaces/default/pods", false, false},
      {&kSa, "GET", "/api/v1/namespaces/other/pods", false, false},
      {&kSa, "GET", "/api/v1/pods", false, false},  // all namespaces: cluster scope
      // Subresources: pods/log is granted, pods/exec is not.
      {&kSa, "GET", "/api/v1/namespaces/default/pods/web/log", false, true},
      {&kSa, "POST", "/api/v1/namespaces/default/pods/web/exec", false, false},
      {&kSa, "GET", "/api/v1/namespaces/default/pods/web/status", false, false},
      // A service account subject with an explicit namespace, bound elsewhere.
      {&kSa, "PATCH", "/apis/apps/v1/namespaces/team/deployments/web", false, true},
      {&kSa, "PATCH", "/apis/extensions/v1/namespaces/team/deployments/web", false, false},
      // Groups and resourceNames.
      {&kAlice, "GET", "/api/v1/namespaces/team/configmaps/settings", false, true},
      {&kAlice, "PUT", "/api/v1/namespaces/team/configmaps/settings", false, true},
      {&kAlice, "GET", "/api/v1/namespaces/team/configmaps/other", false, false},
      {&kAlice, "GET", "/api/v1/namespaces/team/configmaps", false, false},  // list: no name
      // "*" groups with "*/scale".
      {&kAlice, "PUT", "/apis/apps/v1/namespaces/x/deployments/web/scale", false, true},
      {&kAlice, "PUT", "/apis/apps/v1/namespaces/x/deployments/web", false, false},
      // Non-resource URLs: exact and prefix*.
      {&kSa, "GET", "/api", false, true},
      {&kSa, "GET", "/api/v1", false, true},
      {&kSa, "GET", "/healthz", false, true},
      {&kSa, "GET", "/healthz/etcd", false, false},
      {&kSa, "POST", "/api", false, false},
      {&kSa, "GET", "/metrics", false, false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(Allowed(p, *c.user, c.method, c.path, c.watch), c.allowed)
        << c.user->name << " " << c.method << " " << c.path << (c.watch ? " watch" : "");
  }
}

TEST(RbacAuthorize, SystemMastersAlwaysAllowed) {
  Policy empty;
  UserInfo admin{"kubernetes-admin", {"system:masters", "system:authenticated"}};
  EXPECT_TRUE(Allowed(empty, admin, "DELETE", "/api/v1/nodes/n1"));
  EXPECT_TRUE(Allowed(empty, admin, "GET", "/metrics"));
  EXPECT_FALSE(Allowed(empty, kAlice, "GET", "/api"));
}

TEST(RbacAuthorize, ClusterBindingAppliesEverywhereRoleBindingOnlyInItsNamespace) {
  Policy p;
  p.AddClusterRole(Json::parse(
      R"({"metadata":{"name":"r"},"rules":[{"apiGroups":[""],"resources":["secrets"],"verbs":["get"]}]})"));
  p.AddClusterRoleBinding(Json::parse(R"({"metadata":{"name":"crb"},
    "roleRef":{"kind":"ClusterRole","name":"r"},"subjects":[{"kind":"User","name":"bob"}]})"));
  UserInfo bob{"bob", {}};
  EXPECT_TRUE(Allowed(p, bob, "GET", "/api/v1/namespaces/a/secrets/s"));
  EXPECT_TRUE(Allowed(p, bob, "GET", "/api/v1/namespaces/b/secrets/s"));
  // A service account subject without a namespace in a ClusterRoleBinding
  // matches nobody.
  Policy q;
  q.AddClusterRole(Json::parse(
      R"({"metadata":{"name":"r"},"rules":[{"apiGroups":[""],"resources":["secrets"],"verbs":["get"]}]})"));
  q.AddClusterRoleBinding(Json::parse(R"({"metadata":{"name":"crb"},
    "roleRef":{"kind":"ClusterRole","name":"r"},"subjects":[{"kind":"ServiceAccount","name":"default"}]})"));
  EXPECT_FALSE(Allowed(q, kSa, "GET", "/api/v1/namespaces/default/secrets/s"));
}

TEST(RbacAuthorize, ReasonNamesTheGrantOrTheMissingRole) {
  Policy p = MakePolicy();
  Decision d = Authorize(p, RequestAttributes(kSa, "GET", "/api/v1/namespaces/default/pods", false));
  EXPECT_EQ(d.reason,
            "RBAC: allowed by RoleBinding \"sa-pods/default\" of ClusterRole \"pod-reader\" to "
            "ServiceAccount \"default/default\"");
  p.AddRoleBinding(Json::parse(R"({"metadata":{"name":"dangling","namespace":"default"},
    "roleRef":{"kind":"Role","name":"gone"},"subjects":[{"kind":"Group","name":"system:authenticated"}]})"));
  d = Authorize(p, RequestAttributes(kSa, "POST", "/api/v1/namespaces/default/pods", false));
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason, "RBAC: role.rbac.authorization.k8s.io \"gone\" not found");
}

TEST(RbacRequestAttributes, ParsesPaths) {
  Attributes a = RequestAttributes(kSa, "GET", "/apis/apps/v1/namespaces/ns/deployments/d/scale",
                                   false);
  EXPECT_TRUE(a.resource_request);
  EXPECT_EQ(a.verb, "get");
  EXPECT_EQ(a.api_group, "apps");
  EXPECT_EQ(a.resource, "deployments");
  EXPECT_EQ(a.subresource, "scale");
  EXPECT_EQ(a.ns, "ns");
  EXPECT_EQ(a.name, "d");
  a = RequestAttributes(kSa, "GET", "/api/v1/watch/namespaces/ns/pods", false);
  EXPECT_EQ(a.verb, "watch");
  EXPECT_EQ(a.resource, "pods");
  EXPECT_EQ(a.ns, "ns");
  // A namespace is in its own namespace (so a RoleBinding can grant reading it).
  a = RequestAttributes(kSa, "GET", "/api/v1/namespaces/ns", false);
  EXPECT_EQ(a.resource, "namespaces");
  EXPECT_EQ(a.name, "ns");
  EXPECT_EQ(a.ns, "ns");
  a = RequestAttributes(kSa, "PUT", "/api/v1/namespaces/ns/finalize", false);
  EXPECT_EQ(a.verb, "update");
  EXPECT_EQ(a.resource, "namespaces");
  EXPECT_EQ(a.subresource, "finalize");
  a = RequestAttributes(kSa, "GET", "/api/v1/namespaces", false);
  EXPECT_EQ(a.verb, "list");
  EXPECT_EQ(a.ns, "");
  a = RequestAttributes(kSa, "DELETE", "/api/v1/namespaces/ns/pods", false);
  EXPECT_EQ(a.verb, "deletecollection");
  a = RequestAttributes(kSa, "GET", "/apis/apps/v1", false);
  EXPECT_FALSE(a.resource_request);
  EXPECT_EQ(a.verb, "get");
  EXPECT_EQ(a.path, "/apis/apps/v1");
}

TEST(RbacForbidden, MessagesAsKubeApiserver) {
  Error e = ForbiddenError(RequestAttributes(kSa, "GET", "/api/v1/namespaces/default/pods", false),
                           "");
  EXPECT_EQ(e.http_status(), 403);
  EXPECT_EQ(e.message(),
            "pods is forbidden: User \"system:serviceaccount:default:default\" cannot list "
            "resource \"pods\" in API group \"\" in the namespace \"default\"");
  EXPECT_EQ(e.details_kind(), "pods");
  e = ForbiddenError(RequestAttributes(kAlice, "DELETE", "/apis/apps/v1/namespaces/a/deployments/web",
                                       false),
                     "");
  EXPECT_EQ(e.message(),
            "deployments.apps \"web\" is forbidden: User \"alice\" cannot delete resource "
            "\"deployments\" in API group \"apps\" in the namespace \"a\"");
  EXPECT_EQ(e.details_name(), "web");
  EXPECT_EQ(e.details_group(), "apps");
  e = ForbiddenError(RequestAttributes(kAlice, "GET", "/api/v1/nodes/n1/status", false), "");
  EXPECT_EQ(e.message(),
            "nodes \"n1\" is forbidden: User \"alice\" cannot get resource \"nodes/status\" in "
            "API group \"\" at the cluster scope");
  e = ForbiddenError(RequestAttributes(kAlice, "GET", "/metrics", false), "");
  EXPECT_EQ(e.message(), "forbidden: User \"alice\" cannot get path \"/metrics\"");
  e = ForbiddenError(RequestAttributes(kAlice, "GET", "/api/v1/namespaces/a/pods", false),
                     "RBAC: role.rbac.authorization.k8s.io \"x\" not found");
  EXPECT_EQ(e.message(),
            "pods is forbidden: User \"alice\" cannot list resource \"pods\" in API group \"\" in "
            "the namespace \"a\": RBAC: role.rbac.authorization.k8s.io \"x\" not found");
}

TEST(RbacRulesFor, ListsClusterAndNamespaceRules) {
  Policy p = MakePolicy();
  std::vector<std::string> errors;
  auto rules = RulesFor(p, kSa, "default", errors);
  ASSERT_EQ(rules.size(), 2u);  // discovery (cluster) + pod-reader (namespace)
  EXPECT_EQ(rules[0].non_resource_urls.size(), 3u);
  EXPECT_EQ(rules[1].resources, (std::vector<std::string>{"pods", "pods/log"}));
  EXPECT_TRUE(errors.empty());
}

TEST(RbacEscalation, UncoveredRulesAsUpstreamCompactsThem) {
  std::vector<PolicyRule> owner = {
      {{"get", "list"}, {""}, {"pods", "*/status"}, {}, {}},
      {{"*"}, {"apps"}, {"deployments"}, {}, {}},
      {{"get"}, {""}, {"configmaps"}, {"settings"}, {}},
      {{"get"}, {}, {}, {}, {"/healthz/*"}},
  };
  // Everything held: nothing uncovered.
  EXPECT_TRUE(Uncovered(owner, {{{"get"}, {""}, {"pods", "pods/status"}, {}, {}},
                                {{"delete", "patch"}, {"apps"}, {"deployments"}, {}, {}},
                                {{"get"}, {""}, {"configmaps"}, {"settings"}, {}},
                                {{"get"}, {}, {}, {}, {"/healthz/etcd"}}})
                  .empty());
  // A name-restricted grant does not cover all names; verbs merge per resource.
  auto missing = Uncovered(owner, {{{"get", "update"}, {""}, {"configmaps"}, {}, {}},
                                   {{"create", "get", "delete"}, {""}, {"pods"}, {}, {}},
                                   {{"get"}, {}, {}, {}, {"/metrics"}}});
  ASSERT_EQ(missing.size(), 3u);
  EXPECT_EQ(CompactString(missing[0]),
            "{APIGroups:[\"\"], Resources:[\"configmaps\"], Verbs:[\"get\" \"update\"]}");
  EXPECT_EQ(CompactString(missing[1]),
            "{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"create\" \"delete\"]}");
  EXPECT_EQ(CompactString(missing[2]), "{NonResourceURLs:[\"/metrics\"], Verbs:[\"get\"]}");
}

}  // namespace
}  // namespace kin::apiserver::rbac
