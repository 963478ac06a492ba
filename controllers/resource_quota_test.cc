// The resourcequota controller and the LimitRanger and ResourceQuota
// admission on a real registry (apiserver::LocalClient, as inside kin
// serve): status.hard and status.used, creates refused with upstream's
// messages, two creates racing for the last slot, a freed slot.
#include "controllers/resource_quota.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "client/object.h"
#include "controllers/manager.h"
#include "controllers/registry_fixture.h"
#include "testing/kernel_fixture.h"

namespace kin::controllers {
namespace {

using testing::Eventually;

const ResourceInfo& Res(const char* plural) { return *FindResource("", "v1", plural); }

Json PodObject(const std::string& name, Json resources = Json::object()) {
  Json c = {{"name", "c"}, {"image", "busybox"}};
  if (!resources.empty()) c["resources"] = resources;
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"name", name}}},
          {"spec", {{"containers", {c}}}}};
}

Json QuotaObject(const std::string& name, Json hard) {
  return {{"apiVersion", "v1"},
          {"kind", "ResourceQuota"},
          {"metadata", {{"name", name}}},
          {"spec", {{"hard", hard}}}};
}

class ResourceQuotaTest : public RegistryTest {
 protected:
  void SetUp() override {
    manager_ = std::make_unique<ControllerManager>(*client_);
    manager_->Emplace<ResourceQuotaController>(manager_->informers(), *client_);
    manager_->Start();
  }
  void TearDown() override { manager_.reset(); }

  // Creates the quota and waits for the controller's first status.
  void CreateQuota(const std::string& name, Json hard) {
    cl().Create(Res("resourcequotas"), "default", QuotaObject(name, hard));
    ASSERT_TRUE(Eventually([&] {
      Json q = cl().Get(Res("resourcequotas"), "default", name);
      return q["status"].contains("used") && q["status"]["used"].size() == hard.size();
    }));
  }
  Json Used(const std::string& name) {
    return cl().Get(Res("resourcequotas"), "default", name)["status"]["used"];
  }
  std::string CreateError(const ResourceInfo& r, const Json& obj) {
    try {
      cl().Create(r, "default", obj);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kForbidden) << e.what();
      return e.what();
    }
    return "";
  }

  std::unique_ptr<ControllerManager> manager_;
};

TEST_F(ResourceQuotaTest, StatusCountsWhatTheNamespaceUses) {
  cl().Create(Res("pods"), "default",
              PodObject("a", {{"requests", {{"cpu", "100m"}, {"memory", "64Mi"}}},
                              {"limits", {{"cpu", "200m"}}}}));
  cl().Create(Res("pods"), "default", PodObject("b", {{"requests", {{"cpu", "150m"}}}}));
  cl().Create(Res("pods"), "default", PodObject("done", {{"requests", {{"cpu", "1"}}}}));
  UpdateRetryingConflicts(Res("pods"), "default", "done",
                          [](Json& p) { p["status"]["phase"] = "Succeeded"; }, "status");
  cl().Create(Res("configmaps"), "default",
              {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", "cm"}}}});
  cl().Create(Res("services"), "default",
              {{"apiVersion", "v1"},
               {"kind", "Service"},
               {"metadata", {{"name", "np"}}},
               {"spec", {{"type", "NodePort"}, {"ports", {{{"port", 80}}}}}}});
  CreateQuota("q", {{"pods", "10"},
                    {"requests.cpu", "2"},
                    {"cpu", "2"},
                    {"limits.cpu", "4"},
                    {"requests.memory", "1Gi"},
                    {"count/pods", "10"},
                    {"services", "5"},
                    {"services.nodeports", "2"},
                    {"count/deployments.apps", "3"}});
  Json q = cl().Get(Res("resourcequotas"), "default", "q");
  EXPECT_EQ(q["status"]["hard"], q["spec"]["hard"]);
  EXPECT_EQ(q["status"]["used"], (Json{{"pods", "2"},
                                       {"requests.cpu", "250m"},
                                       {"cpu", "250m"},
                                       {"limits.cpu", "200m"},
                                       {"requests.memory", "64Mi"},
                                       {"count/pods", "3"},
                                       {"services", "2"},  // and default/kubernetes
                                       {"services.nodeports", "1"},
                                       {"count/deployments.apps", "0"}}));
  EXPECT_EQ(q["status"]["used"]["configmaps"], nullptr);
}

TEST_F(ResourceQuotaTest, CreatesBeyondHardAreRefusedAndChargedUntilFreed) {
  CreateQuota("q", {{"pods", "2"}});
  cl().Create(Res("pods"), "default", PodObject("p1"));
  cl().Create(Res("pods"), "default", PodObject("p2"));
  EXPECT_EQ(Used("q")["pods"], "2");
  EXPECT_EQ(CreateError(Res("pods"), PodObject("p3")),
            "pods \"p3\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, "
            "limited: pods=2");
  // A pod that ended, or was deleted, frees its slot once the controller saw it.
  cl().Delete(Res("pods"), "default", "p1", DeleteOptions{.grace_period_seconds = 0});
  ASSERT_TRUE(Eventually([&] { return Used("q")["pods"] == "1"; }));
  cl().Create(Res("pods"), "default", PodObject("p3"));
  EXPECT_EQ(Used("q")["pods"], "2");
}

TEST_F(ResourceQuotaTest, ComputeQuotasNeedRequestsOnEveryContainer) {
  CreateQuota("compute", {{"requests.cpu", "1"}, {"limits.memory", "1Gi"}});
  EXPECT_EQ(CreateError(Res("pods"), PodObject("bare")),
            "pods \"bare\" is forbidden: failed quota: compute: must specify limits.memory for: "
            "c; requests.cpu for: c");
  cl().Create(Res("pods"), "default",
              PodObject("ok", {{"requests", {{"cpu", "600m"}}}, {"limits", {{"memory", "1Gi"}}}}));
  EXPECT_EQ(Used("compute"), (Json{{"requests.cpu", "600m"}, {"limits.memory", "1Gi"}}));
  EXPECT_EQ(CreateError(Res("pods"), PodObject("big", {{"requests", {{"cpu", "500m"}}},
                                                       {"limits", {{"memory", "1Mi"}}}})),
            "pods \"big\" is forbidden: exceeded quota: compute, requested: "
            "limits.memory=1Mi,requests.cpu=500m, used: limits.memory=1Gi,requests.cpu=600m, "
            "limited: limits.memory=1Gi,requests.cpu=1");
  // Object counts of other kinds.
  CreateQuota("objects", {{"configmaps", "1"}, {"count/secrets", "0"}});
  cl().Create(Res("configmaps"), "default",
              {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", "one"}}}});
  EXPECT_EQ(CreateError(Res("configmaps"), {{"apiVersion", "v1"},
                                            {"kind", "ConfigMap"},
                                            {"metadata", {{"name", "two"}}}}),
            "configmaps \"two\" is forbidden: exceeded quota: objects, requested: configmaps=1, "
            "used: configmaps=1, limited: configmaps=1");
  EXPECT_EQ(CreateError(Res("secrets"),
                        {{"apiVersion", "v1"}, {"kind", "Secret"}, {"metadata", {{"name", "s"}}}}),
            "secrets \"s\" is forbidden: exceeded quota: objects, requested: count/secrets=1, "
            "used: count/secrets=0, limited: count/secrets=0");
}

TEST_F(ResourceQuotaTest, ObjectCountsOfWorkloadsAreFreedWhenTheyGo) {
  CreateQuota("q", {{"count/deployments.apps", "1"}});
  const ResourceInfo& deploys = *FindResource("apps", "v1", "deployments");
  auto deployment = [](const std::string& name) {
    return Json{{"apiVersion", "apps/v1"},
                {"kind", "Deployment"},
                {"metadata", {{"name", name}}},
                {"spec",
                 {{"selector", {{"matchLabels", {{"app", name}}}}},
                  {"template",
                   {{"metadata", {{"labels", {{"app", name}}}}},
                    {"spec", {{"containers", {{{"name", "c"}, {"image", "busybox"}}}}}}}}}}};
  };
  cl().Create(deploys, "default", deployment("one"));
  EXPECT_EQ(CreateError(deploys, deployment("two")),
            "deployments.apps \"two\" is forbidden: exceeded quota: q, requested: "
            "count/deployments.apps=1, used: count/deployments.apps=1, limited: "
            "count/deployments.apps=1");
  cl().Delete(deploys, "default", "one", {});
  ASSERT_TRUE(Eventually([&] { return Used("q")["count/deployments.apps"] == "0"; }))
      << Used("q").dump() << " " << cl().List(deploys, "default")["items"].size();
  cl().Create(deploys, "default", deployment("two"));
}

TEST_F(ResourceQuotaTest, CustomResourcesAreCountedAndRefusedPastTheQuota) {
  struct ResetCustomResources {
    ~ResetCustomResources() { SetCustomResources({}); }  // process-wide
  } reset;
  Json crd = {{"apiVersion", "apiextensions.k8s.io/v1"},
              {"kind", "CustomResourceDefinition"},
              {"metadata", {{"name", "widgets.example.com"}}},
              {"spec",
               {{"group", "example.com"},
                {"scope", "Namespaced"},
                {"names", {{"plural", "widgets"}, {"kind", "Widget"}}},
                {"versions",
                 {{{"name", "v1"},
                   {"served", true},
                   {"storage", true},
                   {"schema",
                    {{"openAPIV3Schema",
                      {{"type", "object"}, {"x-kubernetes-preserve-unknown-fields", true}}}}}}}}}}};
  cl().Create(*FindResource("apiextensions.k8s.io", "v1", "customresourcedefinitions"), "", crd);
  const ResourceInfo& widgets = *FindResource("example.com", "v1", "widgets");
  auto widget = [](const std::string& name) {
    return Json{{"apiVersion", "example.com/v1"}, {"kind", "Widget"}, {"metadata", {{"name", name}}}};
  };
  cl().Create(widgets, "default", widget("w1"));
  CreateQuota("q", {{"count/widgets.example.com", "2"}});
  EXPECT_EQ(Used("q"), Json({{"count/widgets.example.com", "1"}}));
  cl().Create(widgets, "default", widget("w2"));
  EXPECT_EQ(CreateError(widgets, widget("w3")),
            "widgets.example.com \"w3\" is forbidden: exceeded quota: q, requested: "
            "count/widgets.example.com=1, used: count/widgets.example.com=2, limited: "
            "count/widgets.example.com=2");
  EXPECT_EQ(Used("q"), Json({{"count/widgets.example.com", "2"}}));
  // A widget that goes frees its slot at once (not at the next resync).
  cl().Delete(widgets, "default", "w1");
  EXPECT_TRUE(Eventually([&] { return Used("q") == Json({{"count/widgets.example.com", "1"}}); }));
  cl().Create(widgets, "default", widget("w3"));
  // The CRD goes, and the controller's informer on widgets with it.
  cl().Delete(*FindResource("apiextensions.k8s.io", "v1", "customresourcedefinitions"), "",
              "widgets.example.com");
  EXPECT_TRUE(Eventually([&] { return Used("q") == Json({{"count/widgets.example.com", "0"}}); }));
}

TEST_F(ResourceQuotaTest, ConcurrentCreatesCannotBothTakeTheLastSlot) {
  CreateQuota("q", {{"pods", "3"}});
  std::atomic<int> created{0}, refused{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 12; ++i) {
    threads.emplace_back([&, i] {
      try {
        cl().Create(Res("pods"), "default", PodObject("racer-" + std::to_string(i)));
        ++created;
      } catch (const Error& e) {
        if (e.code() == Code::kForbidden) ++refused;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(created.load(), 3);
  EXPECT_EQ(refused.load(), 9);
  EXPECT_EQ(Used("q")["pods"], "3");
}

TEST_F(ResourceQuotaTest, DryRunsAreCheckedButNotCharged) {
  CreateQuota("q", {{"pods", "1"}});
  WriteOptions dry;
  dry.dry_run = true;
  cl().Create(Res("pods"), "default", PodObject("trial"), dry);
  EXPECT_EQ(Used("q")["pods"], "0");
  cl().Create(Res("pods"), "default", PodObject("real"));
  try {
    cl().Create(Res("pods"), "default", PodObject("again"), dry);
    ADD_FAILURE() << "a dry run past the quota was admitted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kForbidden);
  }
  EXPECT_EQ(Used("q")["pods"], "1");
}

TEST_F(ResourceQuotaTest, AFailedCreateGivesItsChargeBack) {
  CreateQuota("q", {{"configmaps", "5"}});
  Json cm = {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", "same"}}}};
  cl().Create(Res("configmaps"), "default", cm);
  EXPECT_THROW(cl().Create(Res("configmaps"), "default", cm), Error);  // AlreadyExists
  EXPECT_EQ(Used("q")["configmaps"], "1");
}

TEST_F(ResourceQuotaTest, LimitRangeDefaultsAndLimitsPods) {
  cl().Create(Res("limitranges"), "default",
              {{"apiVersion", "v1"},
               {"kind", "LimitRange"},
               {"metadata", {{"name", "lr"}}},
               {"spec",
                {{"limits",
                  {{{"type", "Container"},
                    {"default", {{"cpu", "300m"}, {"memory", "128Mi"}}},
                    {"defaultRequest", {{"cpu", "200m"}, {"memory", "64Mi"}}},
                    {"max", {{"cpu", "500m"}}}}}}}}});
  Json pod = cl().Create(Res("pods"), "default", PodObject("defaulted"));
  const Json& res = pod["spec"]["containers"][0]["resources"];
  EXPECT_EQ(res["requests"], (Json{{"cpu", "200m"}, {"memory", "64Mi"}}));
  EXPECT_EQ(res["limits"], (Json{{"cpu", "300m"}, {"memory", "128Mi"}}));
  EXPECT_EQ(pod["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
            "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for "
            "container c");
  EXPECT_EQ(pod["status"]["qosClass"], "Burstable");
  EXPECT_EQ(CreateError(Res("pods"), PodObject("big", {{"limits", {{"cpu", "1"}}}})),
            "pods \"big\" is forbidden: maximum cpu usage per Container is 500m, but limit is 1");
  // Requests default to the limit the user gave (defaulting runs first).
  Json own = cl().Create(Res("pods"), "default", PodObject("own", {{"limits", {{"cpu", "400m"}}}}));
  EXPECT_EQ(own["spec"]["containers"][0]["resources"]["requests"]["cpu"], "400m");
}

}  // namespace
}  // namespace kin::controllers
