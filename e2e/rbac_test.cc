// e2e: RBAC with the real kubectl 1.33 against a cluster made by `kin
// cluster create`: `kubectl create role` and `kubectl create rolebinding`
// for a service account; kubectl with that account's token (`kubectl
// create token`) may do what the role grants and gets kube-apiserver's
// exact 403 otherwise; deleting the binding takes effect at the next
// request; `kubectl auth can-i` (also --list and --as) answers; roleRef is
// immutable; the admin (system:masters) keeps full access; the default
// roles are there and `view` is aggregated.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>

#include "base/process.h"
#include "base/strings.h"
#include "base/yaml.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin {
namespace {

using testing::Eventually;
using testing::KinBinary;
using testing::TempDir;

class RbacE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { cluster_ = new testing::SuiteCluster('r'); }
  static void TearDownTestSuite() { delete cluster_; }
  void SetUp() override {
    ASSERT_TRUE(cluster_->error().empty()) << cluster_->error();
    k_ = std::make_unique<testing::KubectlRunner>("1.33", cluster_->Kubeconfig());
    if (!k_->installed()) {
      if (std::getenv("CI")) FAIL() << k_->binary() << " is missing";
      GTEST_SKIP() << k_->binary() << " is not installed";
    }
    static int tests_run = 0;
    ns_ = "rbac-e2e-" + std::to_string(++tests_run);
    Ok({"create", "namespace", ns_});
    Ok({"create", "serviceaccount", "robot", "-n", ns_});
  }
  void TearDown() override {
    if (!ns_.empty()) Kubectl({"delete", "namespace", ns_, "--wait=false"});
  }
  CommandResult Kubectl(std::vector<std::string> args) { return k_->Run(args); }
  // kubectl as the bearer of `token` only: no client certificate.
  CommandResult WithToken(const std::string& token, std::vector<std::string> args) {
    return k_->RunWithToken(token, args);
  }
  std::string Ok(std::vector<std::string> args) { return k_->Ok(args); }
  std::string RobotToken() {
    std::string t = Ok({"create", "token", "robot", "-n", ns_});
    while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
    return t;
  }
  std::string Robot() const { return "system:serviceaccount:" + ns_ + ":robot"; }

  static testing::SuiteCluster* cluster_;
  std::unique_ptr<testing::KubectlRunner> k_;
  std::string ns_;
};

testing::SuiteCluster* RbacE2E::cluster_ = nullptr;

TEST_F(RbacE2E, ServiceAccountGetsWhatItsRoleGrantsAndExactForbiddenOtherwise) {
  std::string token = RobotToken();
  ASSERT_FALSE(token.empty());
  // Nothing granted yet: even listing pods is forbidden.
  CommandResult r = WithToken(token, {"get", "pods", "-n", ns_});
  EXPECT_FALSE(r.status.success()) << r.out;
  EXPECT_NE(r.err.find("Error from server (Forbidden): pods is forbidden: User \"" + Robot() +
                       "\" cannot list resource \"pods\" in API group \"\" in the namespace \"" +
                       ns_ + "\""),
            std::string::npos)
      << r.err;

  Ok({"create", "role", "pod-reader", "--verb=get,list,watch", "--resource=pods", "-n", ns_});
  Ok({"create", "rolebinding", "robot-reads-pods", "--role=pod-reader",
      "--serviceaccount=" + ns_ + ":robot", "-n", ns_});
  // The binding applies to the very next request.
  r = WithToken(token, {"get", "pods", "-n", ns_});
  EXPECT_TRUE(r.status.success()) << r.out << r.err;

  r = WithToken(token, {"get", "services", "-n", ns_});
  EXPECT_FALSE(r.status.success());
  EXPECT_NE(r.err.find("Error from server (Forbidden): services is forbidden: User \"" + Robot() +
                       "\" cannot list resource \"services\" in API group \"\" in the namespace "
                       "\"" +
                       ns_ + "\""),
            std::string::npos)
      << r.err;
  // A RoleBinding grants nothing outside its namespace.
  r = WithToken(token, {"get", "pods", "-n", "default"});
  EXPECT_FALSE(r.status.success());
  EXPECT_NE(r.err.find("in the namespace \"default\""), std::string::npos) << r.err;
  // Nor at the cluster scope.
  r = WithToken(token, {"get", "nodes"});
  EXPECT_NE(r.err.find("nodes is forbidden: User \"" + Robot() +
                       "\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"),
            std::string::npos)
      << r.err;

  // kubectl auth can-i as the service account.
  r = WithToken(token, {"auth", "can-i", "list", "pods", "-n", ns_});
  EXPECT_EQ(r.out, "yes\n") << r.err;
  EXPECT_TRUE(r.status.success());
  r = WithToken(token, {"auth", "can-i", "create", "pods", "-n", ns_});
  EXPECT_EQ(r.out, "no\n") << r.err;
  EXPECT_FALSE(r.status.success());
  r = WithToken(token, {"auth", "can-i", "--list", "-n", ns_});
  EXPECT_TRUE(r.status.success()) << r.err;
  EXPECT_NE(r.out.find("pods "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[get list watch]"), std::string::npos) << r.out;
  // And impersonating it (the admin may impersonate anyone).
  EXPECT_EQ(Kubectl({"auth", "can-i", "watch", "pods", "-n", ns_, "--as", Robot()}).out, "yes\n");
  EXPECT_EQ(Kubectl({"auth", "can-i", "delete", "pods", "-n", ns_, "--as", Robot()}).out, "no\n");
  // The service account may not impersonate.
  r = WithToken(token, {"get", "pods", "-n", ns_, "--as", "someone"});
  EXPECT_NE(r.err.find("users \"someone\" is forbidden: User \"" + Robot() +
                       "\" cannot impersonate resource \"users\" in API group \"\" at the "
                       "cluster scope"),
            std::string::npos)
      << r.err;

  // Gone with its binding, at once.
  Ok({"delete", "rolebinding", "robot-reads-pods", "-n", ns_});
  r = WithToken(token, {"get", "pods", "-n", ns_});
  EXPECT_FALSE(r.status.success()) << r.out;
  EXPECT_NE(r.err.find("(Forbidden)"), std::string::npos) << r.err;
}

TEST_F(RbacE2E, AdminKeepsFullAccessAndDefaultRolesExist) {
  EXPECT_EQ(Kubectl({"auth", "can-i", "*", "*"}).out, "yes\n");
  EXPECT_EQ(Kubectl({"auth", "can-i", "delete", "nodes"}).out, "yes\n");
  Json crb = Json::parse(Ok({"get", "clusterrolebinding", "cluster-admin", "-o", "json"}));
  EXPECT_EQ(crb["subjects"][0]["name"], "system:masters");
  EXPECT_EQ(crb["metadata"]["labels"]["kubernetes.io/bootstrapping"], "rbac-defaults");
  for (const char* role :
       {"cluster-admin", "admin", "edit", "view", "system:basic-user", "system:discovery",
        "system:public-info-viewer", "system:auth-delegator"}) {
    Json r = Json::parse(Ok({"get", "clusterrole", role, "-o", "json"}));
    EXPECT_EQ(r["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"], "true")
        << role;
  }
  // view is aggregated from system:aggregate-to-view: it may read pods.
  ASSERT_TRUE(Eventually(
      [&] {
        Json v = Json::parse(Ok({"get", "clusterrole", "view", "-o", "json"}));
        return v.value("rules", Json::array()).is_array() && v["rules"].size() > 5;
      },
      std::chrono::seconds(20)));
  Ok({"create", "rolebinding", "robot-views", "--clusterrole=view",
      "--serviceaccount=" + ns_ + ":robot", "-n", ns_});
  EXPECT_EQ(Kubectl({"auth", "can-i", "list", "deployments.apps", "-n", ns_, "--as", Robot()}).out,
            "yes\n");
  EXPECT_EQ(Kubectl({"auth", "can-i", "get", "secrets", "-n", ns_, "--as", Robot()}).out, "no\n");
}

TEST_F(RbacE2E, NoEscalationThroughRolesOrBindings) {
  // robot is a namespace admin (the aggregated `admin` role): it may write
  // Roles and RoleBindings, but grant only what it holds itself.
  Ok({"create", "rolebinding", "robot-admin", "--clusterrole=admin",
      "--serviceaccount=" + ns_ + ":robot", "-n", ns_});
  ASSERT_TRUE(Eventually(
      [&] {
        // admin holds edit's rules once both are aggregated.
        return Kubectl({"auth", "can-i", "create", "rolebindings", "-n", ns_, "--as", Robot()})
                       .out == "yes\n" &&
               Kubectl({"auth", "can-i", "patch", "deployments.apps", "-n", ns_, "--as", Robot()})
                       .out == "yes\n";
      },
      std::chrono::seconds(20)));
  std::string token = RobotToken();
  CommandResult r = WithToken(
      token, {"create", "rolebinding", "eve-edit", "--clusterrole=edit", "--user=eve", "-n", ns_});
  EXPECT_TRUE(r.status.success()) << r.err;
  r = WithToken(token, {"create", "rolebinding", "eve-root", "--clusterrole=cluster-admin",
                        "--user=eve", "-n", ns_});
  EXPECT_FALSE(r.status.success());
  EXPECT_NE(r.err.find("rolebindings.rbac.authorization.k8s.io \"eve-root\" is forbidden: user \"" +
                       Robot() +
                       "\" (groups=[\"system:serviceaccounts\" \"system:serviceaccounts:" + ns_ +
                       "\" \"system:authenticated\"]) is attempting to grant RBAC "
                       "permissions not currently held:"),
            std::string::npos)
      << r.err;
  r = WithToken(token, {"create", "role", "nodes", "--verb=get", "--resource=nodes", "-n", ns_});
  EXPECT_FALSE(r.status.success());
  EXPECT_NE(r.err.find("{APIGroups:[\"\"], Resources:[\"nodes\"], Verbs:[\"get\"]}"),
            std::string::npos)
      << r.err;
}

TEST_F(RbacE2E, RoleRefIsImmutable) {
  Ok({"create", "role", "a", "--verb=get", "--resource=pods", "-n", ns_});
  Ok({"create", "rolebinding", "rb", "--role=a", "--user=alice", "-n", ns_});
  CommandResult r = Kubectl({"patch", "rolebinding", "rb", "-n", ns_, "--type=merge", "-p",
                             R"({"roleRef":{"name":"b"}})"});
  EXPECT_FALSE(r.status.success());
  // kubectl words the 422 as "The <Kind> <name> is invalid: <causes>".
  EXPECT_NE(r.err.find("The RoleBinding \"rb\" is invalid: roleRef: Invalid "
                       "value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"Role\", "
                       "Name:\"b\"}: cannot change roleRef"),
            std::string::npos)
      << r.err;
}

}  // namespace
}  // namespace kin
