// The serviceaccount controller and root-ca-cert-publisher against a real
// registry on SQLite: every active namespace gets `default` and
// kube-root-ca.crt, existing and new ones, again when deleted or changed.
#include "controllers/service_accounts.h"

#include <gtest/gtest.h>

#include "client/object.h"
#include "controllers/manager.h"
#include "controllers/registry_fixture.h"
#include "testing/kernel_fixture.h"

namespace kin::controllers {
namespace {

using testing::Eventually;

constexpr char kCa[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

const ResourceInfo& Sas() { return *FindResource("", "v1", "serviceaccounts"); }
const ResourceInfo& Cms() { return *FindResource("", "v1", "configmaps"); }

class ServiceAccountsTest : public RegistryTest {
 protected:
  void SetUp() override {
    manager_ = std::make_unique<ControllerManager>(*client_);
    manager_->Emplace<ServiceAccountsController>(manager_->informers(), *client_);
    manager_->Emplace<RootCaPublisher>(manager_->informers(), *client_, kCa);
  }
  void TearDown() override { manager_.reset(); }

  void CreateNamespace(const std::string& name) {
    cl().Create(NamespacesResource(), "",
                {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", name}}}});
  }
  std::optional<Json> Find(const ResourceInfo& r, const std::string& ns, const std::string& name) {
    try {
      return cl().Get(r, ns, name);
    } catch (const Error& e) {
      if (e.code() != Code::kNotFound) throw;
      return std::nullopt;
    }
  }
  bool HasBoth(const std::string& ns) {
    auto cm = Find(Cms(), ns, kRootCaConfigMap);
    return Find(Sas(), ns, "default") && cm && (*cm)["data"] == Json{{"ca.crt", kCa}};
  }

  std::unique_ptr<ControllerManager> manager_;
};

TEST_F(ServiceAccountsTest, ExistingAndNewNamespacesGetDefaultAndRootCa) {
  CreateNamespace("before");
  manager_->Start();
  for (const char* ns : {"default", "kube-system", "kube-public", "before"}) {
    EXPECT_TRUE(Eventually([&] { return HasBoth(ns); })) << ns;
  }
  CreateNamespace("after");
  EXPECT_TRUE(Eventually([&] { return HasBoth("after"); }));
  Json cm = cl().Get(Cms(), "after", kRootCaConfigMap);
  EXPECT_EQ(cm["metadata"]["annotations"]["kubernetes.io/description"], kRootCaDescription);
}

TEST_F(ServiceAccountsTest, DeletedObjectsAreMadeAgain) {
  CreateNamespace("team");
  manager_->Start();
  ASSERT_TRUE(Eventually([&] { return HasBoth("team"); }));
  std::string sa_uid = object::Uid(cl().Get(Sas(), "team", "default"));
  std::string cm_uid = object::Uid(cl().Get(Cms(), "team", kRootCaConfigMap));
  cl().Delete(Sas(), "team", "default", {});
  cl().Delete(Cms(), "team", kRootCaConfigMap, {});
  EXPECT_TRUE(Eventually([&] {
    auto sa = Find(Sas(), "team", "default");
    auto cm = Find(Cms(), "team", kRootCaConfigMap);
    return sa && cm && object::Uid(*sa) != sa_uid && object::Uid(*cm) != cm_uid;
  }));
}

TEST_F(ServiceAccountsTest, ChangedRootCaIsPutBackKeepingOtherMetadata) {
  CreateNamespace("team");
  manager_->Start();
  ASSERT_TRUE(Eventually([&] { return HasBoth("team"); }));
  UpdateRetryingConflicts(Cms(), "team", kRootCaConfigMap, [](Json& cm) {
    cm["data"] = {{"ca.crt", "forged"}, {"extra", "x"}};
    cm["metadata"]["labels"] = {{"mine", "yes"}};
    cm["metadata"]["annotations"].erase("kubernetes.io/description");
  });
  EXPECT_TRUE(Eventually([&] {
    Json cm = cl().Get(Cms(), "team", kRootCaConfigMap);
    return cm["data"] == Json{{"ca.crt", kCa}} &&
           cm["metadata"]["annotations"].value("kubernetes.io/description", "") ==
               kRootCaDescription &&
           cm["metadata"]["labels"].value("mine", "") == "yes";
  }));
}

}  // namespace
}  // namespace kin::controllers
