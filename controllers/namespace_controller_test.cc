// The namespace controller's grace period (kube-controller-manager's
// namespaceDeletionGracePeriod): a deleted namespace is emptied only after
// it, so a client deleting the namespace and then its objects one by one
// still finds them; then the content goes, then the namespace. Against a
// real registry on SQLite through LocalClient (other behaviour of the
// controller: garbage_collector_test.cc).
#include "controllers/namespace_controller.h"

#include <gtest/gtest.h>

#include "controllers/manager.h"
#include "controllers/registry_fixture.h"
#include "testing/kernel_fixture.h"

namespace kin::controllers {
namespace {

using namespace std::chrono_literals;
using testing::Eventually;

const ResourceInfo& ConfigMaps() { return *FindResource("", "v1", "configmaps"); }

class NamespaceGraceTest : public RegistryTest {
 protected:
  void TearDown() override { manager_.reset(); }
  bool Exists(const ResourceInfo& r, const std::string& ns, const std::string& name) {
    try {
      cl().Get(r, ns, name);
      return true;
    } catch (const Error& e) {
      if (e.code() == Code::kNotFound) return false;
      throw;
    }
  }
  std::unique_ptr<ControllerManager> manager_;
};

TEST_F(NamespaceGraceTest, ContentStaysForTheGracePeriodThenGoesWithTheNamespace) {
  manager_ = std::make_unique<ControllerManager>(*client_);
  NamespaceControllerOptions opts;
  opts.deletion_grace = 2s;
  manager_->Emplace<NamespaceController>(manager_->informers(), *client_, opts);
  manager_->Start();
  cl().Create(NamespacesResource(), "",
              {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "team"}}}});
  for (const char* name : {"first", "second"}) {
    cl().Create(ConfigMaps(), "team",
                {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", name}}}});
  }
  const auto deleted = std::chrono::steady_clock::now();
  cl().Delete(NamespacesResource(), "", "team");
  // kubectl delete -f: the namespace, then its objects (no NotFound).
  EXPECT_NO_THROW(cl().Delete(ConfigMaps(), "team", "first"));

  ASSERT_TRUE(Eventually([&] { return !Exists(NamespacesResource(), "", "team"); }, 30s));
  // Not before the grace period, less the deletionTimestamp's truncation to
  // whole seconds.
  EXPECT_GE(std::chrono::steady_clock::now() - deleted, 1s);
  EXPECT_FALSE(Exists(ConfigMaps(), "team", "second"));
}

}  // namespace
}  // namespace kin::controllers
