// Authorizer over a real store: the bootstrap policy, bindings that apply
// to the next request, the access reviews and their errors, impersonation;
// and what a Check costs per request.
#include "apiserver/authorization.h"

#include <gtest/gtest.h>

#include <chrono>
#include <iostream>

#include "base/error.h"
#include "client/resources.h"
#include "testing/e2e_support.h"

namespace kin::apiserver {
namespace {

const char* kGroup = "rbac.authorization.k8s.io";

class AuthorizerTest : public ::testing::Test {
 protected:
  AuthorizerTest() {
    StoreOptions so;
    so.index_fields = IndexFields;
    store_ = Store::Open(dir_.File("kin.db"), so);
    registry_ = std::make_unique<Registry>(*store_, RegistryOptions{});
    registry_->Bootstrap();
    BootstrapRbacPolicy(*registry_);
    authz_ = std::make_unique<Authorizer>(*store_);
  }
  const ResourceInfo& R(const char* group, const char* plural) {
    return *FindResource(group, "v1", plural);
  }
  http::Request Req(const std::string& method, const std::string& path,
                    const std::string& user = "system:serviceaccount:default:robot",
                    std::vector<std::string> groups = {"system:serviceaccounts",
                                                       "system:serviceaccounts:default"}) {
    http::Request r;
    r.method = method;
    r.path = path;
    r.client_cn = user;
    r.client_groups = std::move(groups);
    return r;
  }
  // The Status message of the error Check throws, or "" when allowed.
  std::string Denial(const http::Request& req) {
    try {
      authz_->Check(authz_->RequestUser(req), req, false);
      return "";
    } catch (const Error& e) {
      EXPECT_EQ(e.http_status(), 403);
      return e.message();
    }
  }
  void BindRobot(const std::string& name, const std::string& clusterrole) {
    registry_->Create(R(kGroup, "rolebindings"), "default",
                      {{"metadata", {{"name", name}}},
                       {"roleRef", {{"kind", "ClusterRole"}, {"name", clusterrole}}},
                       {"subjects", {{{"kind", "ServiceAccount"}, {"name", "robot"}}}}},
                      {});
  }
  testing::TempDir dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<Authorizer> authz_;
};

TEST_F(AuthorizerTest, BindingsApplyAtOnceAndGoAtOnce) {
  http::Request list = Req("GET", "/api/v1/namespaces/default/pods");
  EXPECT_EQ(Denial(list),
            "pods is forbidden: User \"system:serviceaccount:default:robot\" cannot list resource "
            "\"pods\" in API group \"\" in the namespace \"default\"");
  // Discovery is everyone's (system:discovery to system:authenticated).
  EXPECT_EQ(Denial(Req("GET", "/apis")), "");
  registry_->Create(R(kGroup, "clusterroles"), "",
                    {{"metadata", {{"name", "pods-only"}}},
                     {"rules", Json::array({{{"apiGroups", {""}},
                                             {"resources", {"pods"}},
                                             {"verbs", {"list"}}}})}},
                    {});
  BindRobot("robot-pods", "pods-only");
  EXPECT_EQ(Denial(list), "");
  registry_->Delete(R(kGroup, "rolebindings"), "default", "robot-pods", {});
  EXPECT_NE(Denial(list), "");
  // A binding to a role that does not exist says so.
  BindRobot("dangling", "nope");
  EXPECT_EQ(Denial(list),
            "pods is forbidden: User \"system:serviceaccount:default:robot\" cannot list resource "
            "\"pods\" in API group \"\" in the namespace \"default\": RBAC: "
            "clusterrole.rbac.authorization.k8s.io \"nope\" not found");
  // The admin's group may do anything, with no binding asked.
  EXPECT_EQ(Denial(Req("DELETE", "/api/v1/nodes/n1", "kubernetes-admin", {"system:masters"})), "");
}

TEST_F(AuthorizerTest, ReviewsAnswerAndRefuseBadSpecs) {
  rbac::UserInfo robot{"system:serviceaccount:default:robot",
                       {"system:serviceaccounts", "system:authenticated"}};
  Json ssar = {{"spec", {{"resourceAttributes", {{"namespace", "default"}, {"verb", "get"},
                                                 {"resource", "pods"}}}}}};
  Json out = authz_->Review(R("authorization.k8s.io", "selfsubjectaccessreviews"), "", ssar, robot);
  EXPECT_EQ(out["kind"], "SelfSubjectAccessReview");
  EXPECT_EQ(out["status"]["allowed"], false);
  // view is filled by the aggregation controller, not running here: bind
  // the role it aggregates.
  BindRobot("robot-agg-view", "system:aggregate-to-view");
  out = authz_->Review(R("authorization.k8s.io", "selfsubjectaccessreviews"), "", ssar, robot);
  EXPECT_EQ(out["status"]["allowed"], true);
  EXPECT_EQ(out["status"]["reason"],
            "RBAC: allowed by RoleBinding \"robot-agg-view/default\" of ClusterRole "
            "\"system:aggregate-to-view\" to ServiceAccount \"robot/default\"");

  Json sar = {{"spec", {{"user", "alice"}, {"nonResourceAttributes", {{"path", "/api"},
                                                                      {"verb", "get"}}}}}};
  out = authz_->Review(R("authorization.k8s.io", "subjectaccessreviews"), "", sar, robot);
  EXPECT_EQ(out["status"]["allowed"], false);  // alice has no groups: not even discovery
  sar["spec"]["groups"] = {"system:authenticated"};
  out = authz_->Review(R("authorization.k8s.io", "subjectaccessreviews"), "", sar, robot);
  EXPECT_EQ(out["status"]["allowed"], true);

  Json rules = authz_->Review(R("authorization.k8s.io", "selfsubjectrulesreviews"), "",
                              {{"spec", {{"namespace", "default"}}}}, robot);
  EXPECT_EQ(rules["status"]["incomplete"], false);
  EXPECT_GT(rules["status"]["resourceRules"].size(), 5u);

  auto error_of = [&](const char* plural, const std::string& ns, const Json& body) {
    try {
      authz_->Review(R("authorization.k8s.io", plural), ns, body, robot);
    } catch (const Error& e) {
      EXPECT_EQ(e.http_status(), 422);
      return e.message();
    }
    return std::string("no error");
  };
  EXPECT_EQ(error_of("selfsubjectaccessreviews", "", {{"spec", Json::object()}}),
            "SelfSubjectAccessReview.authorization.k8s.io \"\" is invalid: "
            "spec.resourceAttributes: Invalid value: \"null\": exactly one of "
            "nonResourceAttributes or resourceAttributes must be specified");
  EXPECT_EQ(error_of("subjectaccessreviews", "", ssar),
            "SubjectAccessReview.authorization.k8s.io \"\" is invalid: spec.user: Invalid value: "
            "\"\": at least one of user or group must be specified");
  Json local = {{"spec", {{"user", "alice"}, {"resourceAttributes", {{"namespace", "other"},
                                                                    {"verb", "get"}}}}}};
  EXPECT_EQ(error_of("localsubjectaccessreviews", "default", local),
            "LocalSubjectAccessReview.authorization.k8s.io \"\" is invalid: "
            "spec.resourceAttributes.namespace: Invalid value: \"other\": must match "
            "metadata.namespace");
}

TEST_F(AuthorizerTest, ImpersonationNeedsTheImpersonateVerb) {
  http::Request req = Req("GET", "/api/v1/namespaces/default/pods");
  req.headers.emplace("Impersonate-User", "bob");
  try {
    authz_->RequestUser(req);
    ADD_FAILURE() << "impersonated without permission";
  } catch (const Error& e) {
    EXPECT_EQ(e.http_status(), 403);
    EXPECT_EQ(e.message(),
              "users \"bob\" is forbidden: User \"system:serviceaccount:default:robot\" cannot "
              "impersonate resource \"users\" in API group \"\" at the cluster scope");
  }
  http::Request admin = Req("GET", "/api", "kubernetes-admin", {"system:masters"});
  admin.headers.emplace("Impersonate-User", "system:serviceaccount:ns1:builder");
  admin.headers.emplace("Impersonate-Group", "team");
  rbac::UserInfo as = authz_->RequestUser(admin);
  EXPECT_EQ(as.name, "system:serviceaccount:ns1:builder");
  EXPECT_EQ(as.groups, (std::vector<std::string>{"system:serviceaccounts",
                                                 "system:serviceaccounts:ns1", "team",
                                                 "system:authenticated"}));
  http::Request groups_only = Req("GET", "/api", "kubernetes-admin", {"system:masters"});
  groups_only.headers.emplace("Impersonate-Group", "team");
  EXPECT_THROW(authz_->RequestUser(groups_only), Error);
}

TEST_F(AuthorizerTest, EscalationNeedsHeldRulesOrTheBindAndEscalateVerbs) {
  rbac::UserInfo robot{"system:serviceaccount:default:robot",
                       {"system:serviceaccounts", "system:serviceaccounts:default",
                        "system:authenticated"}};
  BindRobot("robot-admin", "system:aggregate-to-admin");  // may write roles and rolebindings
  BindRobot("robot-view", "system:aggregate-to-view");    // holds read access to pods
  const ResourceInfo& roles = R(kGroup, "roles");
  const ResourceInfo& bindings = R(kGroup, "rolebindings");
  auto role = [](const char* name, Json rules) {
    return Json{{"metadata", {{"name", name}}}, {"rules", rules}};
  };
  auto binding = [](const char* name, const char* clusterrole) {
    return Json{{"metadata", {{"name", name}}},
                {"roleRef", {{"apiGroup", "rbac.authorization.k8s.io"},
                             {"kind", "ClusterRole"}, {"name", clusterrole}}},
                {"subjects", {{{"kind", "User"}, {"name", "eve"}}}}};
  };
  auto denial = [&](const ResourceInfo& r, const Json& obj) {
    try {
      authz_->CheckEscalation(robot, r, "default", obj);
      return std::string();
    } catch (const Error& e) {
      return std::to_string(e.http_status()) + " " + e.message();
    }
  };
  EXPECT_EQ(denial(roles, role("readers", {{{"apiGroups", {""}}, {"resources", {"pods"}},
                                            {"verbs", {"get", "list"}}}})),
            "");
  EXPECT_EQ(denial(roles, role("thief", {{{"apiGroups", {""}}, {"resources", {"pods", "secrets"}},
                                          {"verbs", {"get"}}}})),
            "403 roles.rbac.authorization.k8s.io \"thief\" is forbidden: user "
            "\"system:serviceaccount:default:robot\" (groups=[\"system:serviceaccounts\" "
            "\"system:serviceaccounts:default\" \"system:authenticated\"]) is attempting to grant "
            "RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"secrets\"], "
            "Verbs:[\"get\"]}");
  EXPECT_EQ(denial(bindings, binding("ok", "system:aggregate-to-view")), "");
  EXPECT_EQ(denial(bindings, binding("root", "cluster-admin")).rfind(
                "403 rolebindings.rbac.authorization.k8s.io \"root\" is forbidden: user", 0),
            0u);
  EXPECT_EQ(denial(bindings, binding("x", "missing")),
            "404 clusterroles.rbac.authorization.k8s.io \"missing\" not found");
  // "bind" on that one role is enough to bind it.
  registry_->Create(R(kGroup, "clusterroles"), "",
                    {{"metadata", {{"name", "binder"}}},
                     {"rules", Json::array({{{"apiGroups", {kGroup}},
                                             {"resources", {"clusterroles"}},
                                             {"resourceNames", {"cluster-admin"}},
                                             {"verbs", {"bind"}}}})}},
                    {});
  BindRobot("robot-binder", "binder");
  EXPECT_EQ(denial(bindings, binding("root", "cluster-admin")), "");
  // The admin's group needs nothing.
  rbac::UserInfo admin{"kubernetes-admin", {"system:masters"}};
  authz_->CheckEscalation(admin, bindings, "default", binding("any", "missing"));
}

TEST_F(AuthorizerTest, CostPerRequest) {
  // A policy of some size: 200 namespaces with a binding each.
  for (int i = 0; i < 200; ++i) {
    registry_->Create(R("", "namespaces"), "",
                      {{"metadata", {{"name", "ns" + std::to_string(i)}}}}, {});
    registry_->Create(R(kGroup, "rolebindings"), "ns" + std::to_string(i),
                      {{"metadata", {{"name", "rb"}}},
                       {"roleRef", {{"kind", "ClusterRole"}, {"name", "edit"}}},
                       {"subjects", {{{"kind", "ServiceAccount"}, {"name", "robot"}}}}},
                      {});
  }
  BindRobot("robot-agg-view", "system:aggregate-to-view");
  http::Request req = Req("GET", "/apis/apps/v1/namespaces/default/deployments");
  ASSERT_EQ(Denial(req), "");
  constexpr int kN = 20000;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kN; ++i) authz_->Check(authz_->RequestUser(req), req, false);
  double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
                  .count() / kN;
  std::cout << "authorization (allowed by the namespace's 2nd binding, 219 roles and bindings): "
            << us << " us per request\n";
  start = std::chrono::steady_clock::now();
  http::Request denied = Req("DELETE", "/api/v1/nodes/n1");
  for (int i = 0; i < kN; ++i) {
    try {
      authz_->Check(authz_->RequestUser(denied), denied, false);
    } catch (const Error&) {
    }
  }
  us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
           .count() / kN;
  std::cout << "authorization (denied, 403 built): " << us << " us per request\n";
}

}  // namespace
}  // namespace kin::apiserver
