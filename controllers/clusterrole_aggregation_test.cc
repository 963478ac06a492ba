// The clusterrole-aggregation controller: AggregatedRules on plain objects,
// and the controller against a real registry with the default policy
// (admin ⊇ edit ⊇ view filled in; a labelled role widens view and leaves it
// again when its label goes).
#include "controllers/clusterrole_aggregation.h"

#include <gtest/gtest.h>

#include "apiserver/authorization.h"
#include "client/resources.h"
#include "controllers/registry_fixture.h"
#include "testing/kernel_fixture.h"  // Eventually

namespace kin::controllers {
namespace {

using testing::Eventually;

Json Role(const std::string& name, Json labels, Json rules) {
  return {{"apiVersion", "rbac.authorization.k8s.io/v1"},
          {"kind", "ClusterRole"},
          {"metadata", {{"name", name}, {"labels", labels}}},
          {"rules", rules}};
}

Json R(const char* verb, const char* resource) {
  return {{"apiGroups", {""}}, {"resources", {resource}}, {"verbs", {verb}}};
}

TEST(AggregatedRulesTest, SelectedRolesInNameOrderEachRuleOnce) {
  Json agg = Role("agg", Json::object(), Json::array());
  agg["aggregationRule"] = {
      {"clusterRoleSelectors",
       {{{"matchLabels", {{"x", "true"}}}}, {{"matchLabels", {{"y", "true"}}}}}}};
  std::vector<Json> all = {
      agg,
      Role("b", {{"x", "true"}}, {R("get", "pods"), R("list", "pods")}),
      Role("a", {{"y", "true"}}, {R("list", "pods"), R("get", "secrets")}),
      Role("c", {{"x", "false"}}, {R("delete", "pods")}),
  };
  EXPECT_EQ(AggregatedRules(agg, all),
            Json::array({R("list", "pods"), R("get", "secrets"), R("get", "pods")}));
}

class ClusterRoleAggregationTest : public RegistryTest {
 protected:
  void SetUp() override {
    apiserver::BootstrapRbacPolicy(*registry_);
    informers_ = std::make_unique<SharedInformerFactory>(*client_);
    controller_ = std::make_unique<ClusterRoleAggregationController>(*informers_, *client_);
    informers_->Start();
    controller_->Start();
  }
  void TearDown() override {
    controller_->Stop();
    informers_->Stop();
  }
  const ResourceInfo& Roles() {
    return *FindResource("rbac.authorization.k8s.io", "v1", "clusterroles");
  }
  size_t RuleCount(const std::string& name) {
    Json r = cl().Get(Roles(), "", name);
    return r.value("rules", Json::array()).is_array() ? r.value("rules", Json::array()).size() : 0;
  }
  bool HasRule(const std::string& name, const Json& rule) {
    for (const Json& r : cl().Get(Roles(), "", name).value("rules", Json::array())) {
      if (r == rule) return true;
    }
    return false;
  }
  std::unique_ptr<SharedInformerFactory> informers_;
  std::unique_ptr<ClusterRoleAggregationController> controller_;
};

TEST_F(ClusterRoleAggregationTest, DefaultRolesAggregateAndFollowLabels) {
  // view gets system:aggregate-to-view's rules; edit those and its own;
  // admin all of edit's and more.
  const size_t to_view = RuleCount("system:aggregate-to-view");
  const size_t to_edit = RuleCount("system:aggregate-to-edit");
  const size_t to_admin = RuleCount("system:aggregate-to-admin");
  ASSERT_GT(to_view, 5u);
  ASSERT_TRUE(Eventually([&] { return RuleCount("view") == to_view; }));
  ASSERT_TRUE(Eventually([&] { return RuleCount("edit") == to_edit + to_view; }));
  ASSERT_TRUE(Eventually([&] { return RuleCount("admin") == to_admin + to_edit + to_view; }));

  Json widget = {{"apiGroups", {"example.com"}}, {"resources", {"widgets"}}, {"verbs", {"get"}}};
  cl().Create(Roles(), "",
              Role("widget-viewer", {{"rbac.authorization.k8s.io/aggregate-to-view", "true"}},
                   Json::array({widget})));
  EXPECT_TRUE(Eventually([&] { return HasRule("view", widget); }));
  EXPECT_TRUE(Eventually([&] { return HasRule("admin", widget); }));

  Json patch = {{"metadata", {{"labels", {{"rbac.authorization.k8s.io/aggregate-to-view", nullptr}}}}}};
  cl().Patch(Roles(), "", "widget-viewer", PatchType::kMerge, patch);
  EXPECT_TRUE(Eventually([&] { return !HasRule("view", widget); }));
}

}  // namespace
}  // namespace kin::controllers
