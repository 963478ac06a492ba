// The ResourceQuota admission on updates and the PersistentVolumeClaimResize
// admission, on a real registry: a Service turned NodePort or LoadBalancer
// is charged its node ports and load balancer, a grown claim the growth (of
// requests.storage and its class's), both refused past the quota with the
// message creates get; a claim grows only when Bound and its class allows
// expansion; PriorityClass updates keep one global default (admission that
// reads other objects runs outside the updated object's store lock). Quotas' status.used is written by hand here (the resourcequota
// controller's part is tested in controllers/).
#include "apiserver/resource_quota.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "apiserver/registry.h"
#include "base/error.h"
#include "base/yaml.h"
#include "client/resources.h"
#include "testing/e2e_support.h"

namespace kin::apiserver {
namespace {

const ResourceInfo& Core(const char* plural) { return *FindResource("", "v1", plural); }
const ResourceInfo& StorageClasses() {
  return *FindResource("storage.k8s.io", "v1", "storageclasses");
}

class QuotaOnUpdateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StoreOptions so;
    so.index_fields = IndexFields;
    store_ = Store::Open(dir_.File("kin.db"), so);
    registry_ = std::make_unique<Registry>(*store_, RegistryOptions{});
    registry_->Bootstrap();
  }

  // A quota whose status says `used` of `hard`, as the controller would.
  void CreateQuota(const std::string& name, const Json& hard, const Json& used) {
    registry_->Create(Core("resourcequotas"), "default",
                      {{"apiVersion", "v1"},
                       {"kind", "ResourceQuota"},
                       {"metadata", {{"name", name}}},
                       {"spec", {{"hard", hard}}}},
                      {});
    Json q = registry_->Get(Core("resourcequotas"), "default", name);
    q["status"] = {{"hard", hard}, {"used", used}};
    registry_->Update(Core("resourcequotas"), "default", name, q, "status", {});
  }
  Json Used(const std::string& name) {
    return registry_->Get(Core("resourcequotas"), "default", name)["status"]["used"];
  }
  Json Merge(const ResourceInfo& r, const std::string& name, const std::string& patch,
             bool dry_run = false) {
    WriteOptions opts;
    opts.dry_run = dry_run;
    return registry_->Patch(r, "default", name, PatchType::kMerge, patch, "", opts);
  }
  // The 403 a patch gets ("" when it passes).
  std::string Refusal(const ResourceInfo& r, const std::string& name, const std::string& patch) {
    try {
      Merge(r, name, patch);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kForbidden) << e.what();
      return e.what();
    }
    return "";
  }
  void CreateService(const std::string& name, int ports) {
    Json svc = {{"apiVersion", "v1"},
                {"kind", "Service"},
                {"metadata", {{"name", name}}},
                {"spec", {{"ports", Json::array()}}}};
    for (int i = 0; i < ports; ++i) {
      svc["spec"]["ports"].push_back({{"name", "p" + std::to_string(i)}, {"port", 80 + i}});
    }
    registry_->Create(Core("services"), "default", svc, {});
  }
  void CreateClass(const std::string& name, bool expandable) {
    Json sc = {{"apiVersion", "storage.k8s.io/v1"},
               {"kind", "StorageClass"},
               {"metadata", {{"name", name}}},
               {"provisioner", "rancher.io/local-path"}};
    if (expandable) sc["allowVolumeExpansion"] = true;
    registry_->Create(StorageClasses(), "", sc, {});
  }
  // A claim of `cls` for `size`, Bound to a volume of that size, as the
  // binder leaves it.
  void CreateBoundClaim(const std::string& name, const std::string& cls, const std::string& size) {
    registry_->Create(
        Core("persistentvolumeclaims"), "default",
        ParseYaml("{apiVersion: v1, kind: PersistentVolumeClaim, metadata: {name: " + name +
                  "}, spec: {storageClassName: " + cls +
                  ", accessModes: [ReadWriteOnce], resources: {requests: {storage: " + size +
                  "}}}}"),
        {});
    Merge(Core("persistentvolumeclaims"), name, R"({"spec":{"volumeName":"pv-)" + name + "\"}}");
    Json c = registry_->Get(Core("persistentvolumeclaims"), "default", name);
    c["status"] = {
        {"phase", "Bound"}, {"accessModes", {"ReadWriteOnce"}}, {"capacity", {{"storage", size}}}};
    registry_->Update(Core("persistentvolumeclaims"), "default", name, c, "status", {});
  }
  std::string Grow(const std::string& name, const std::string& size) {
    return Refusal(Core("persistentvolumeclaims"), name,
                   R"({"spec":{"resources":{"requests":{"storage":")" + size + "\"}}}}");
  }

  testing::TempDir dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Registry> registry_;
};

TEST_F(QuotaOnUpdateTest, AServiceTurnedNodePortOrLoadBalancerIsCharged) {
  CreateService("a", 2);
  CreateService("b", 1);
  CreateQuota("q", {{"services.nodeports", "3"}, {"services.loadbalancers", "1"}},
              {{"services.nodeports", "0"}, {"services.loadbalancers", "0"}});
  EXPECT_EQ(Refusal(Core("services"), "a", R"({"spec":{"type":"NodePort"}})"), "");
  EXPECT_EQ(Used("q"), (Json{{"services.nodeports", "2"}, {"services.loadbalancers", "0"}}));
  // NodePort -> LoadBalancer: the ports were charged already, the balancer is new.
  EXPECT_EQ(Refusal(Core("services"), "a", R"({"spec":{"type":"LoadBalancer"}})"), "");
  EXPECT_EQ(Used("q"), (Json{{"services.nodeports", "2"}, {"services.loadbalancers", "1"}}));
  EXPECT_EQ(Refusal(Core("services"), "b", R"({"spec":{"type":"LoadBalancer"}})"),
            "services \"b\" is forbidden: exceeded quota: q, requested: "
            "services.loadbalancers=1, used: services.loadbalancers=1, limited: "
            "services.loadbalancers=1");
  // One more node port still fits; then none does.
  EXPECT_EQ(Refusal(Core("services"), "b", R"({"spec":{"type":"NodePort"}})"), "");
  EXPECT_EQ(Used("q")["services.nodeports"], "3");
  CreateService("c", 1);
  EXPECT_EQ(Refusal(Core("services"), "c", R"({"spec":{"type":"NodePort"}})"),
            "services \"c\" is forbidden: exceeded quota: q, requested: services.nodeports=1, "
            "used: services.nodeports=3, limited: services.nodeports=3");
  EXPECT_EQ(registry_->Get(Core("services"), "default", "c")["spec"]["type"], "ClusterIP");
  // A refused update is not charged; an update that adds nothing (labels,
  // or back to ClusterIP: the controller frees that) is not either.
  EXPECT_EQ(Refusal(Core("services"), "c", R"({"metadata":{"labels":{"x":"y"}}})"), "");
  EXPECT_EQ(Refusal(Core("services"), "b", R"({"spec":{"type":"ClusterIP"}})"), "");
  EXPECT_EQ(Used("q"), (Json{{"services.nodeports", "3"}, {"services.loadbalancers", "1"}}));
}

TEST_F(QuotaOnUpdateTest, DryRunUpdatesAreCheckedButNotCharged) {
  CreateService("a", 1);
  CreateQuota("q", {{"services.nodeports", "1"}}, {{"services.nodeports", "0"}});
  Merge(Core("services"), "a", R"({"spec":{"type":"NodePort"}})", /*dry_run=*/true);
  EXPECT_EQ(Used("q")["services.nodeports"], "0");
  CreateService("b", 2);
  EXPECT_THROW(Merge(Core("services"), "b", R"({"spec":{"type":"NodePort"}})", true), Error);
  EXPECT_EQ(Used("q")["services.nodeports"], "0");
}

TEST_F(QuotaOnUpdateTest, UpdatesNeedTheQuotasStatusAsCreatesDo) {
  CreateService("a", 1);
  // A quota the controller has not counted yet: upstream refuses every
  // update it evaluates, as it refuses creates.
  registry_->Create(Core("resourcequotas"), "default",
                    ParseYaml("{apiVersion: v1, kind: ResourceQuota, metadata: {name: fresh}, "
                              "spec: {hard: {services: '5'}}}"),
                    {});
  Json q = registry_->Get(Core("resourcequotas"), "default", "fresh");
  q["status"] = {{"hard", {{"services", "5"}}}};
  registry_->Update(Core("resourcequotas"), "default", "fresh", q, "status", {});
  EXPECT_EQ(Refusal(Core("services"), "a", R"({"metadata":{"labels":{"x":"y"}}})"),
            "services \"a\" is forbidden: status unknown for quota: fresh, resources: services");
  // ConfigMaps' updates are not evaluated at all.
  registry_->Create(Core("configmaps"), "default",
                    ParseYaml("{apiVersion: v1, kind: ConfigMap, metadata: {name: cm}}"), {});
  CreateQuota("cms", {{"configmaps", "1"}}, Json::object());
  EXPECT_EQ(Refusal(Core("configmaps"), "cm", R"({"data":{"k":"v"}})"), "");
}

TEST_F(QuotaOnUpdateTest, AGrownClaimIsChargedTheGrowth) {
  CreateClass("fast", true);
  CreateBoundClaim("data", "fast", "1Gi");
  CreateQuota("q",
              {{"requests.storage", "4Gi"},
               {"fast.storageclass.storage.k8s.io/requests.storage", "3Gi"},
               {"persistentvolumeclaims", "5"}},
              {{"requests.storage", "1Gi"},
               {"fast.storageclass.storage.k8s.io/requests.storage", "1Gi"},
               {"persistentvolumeclaims", "1"}});
  EXPECT_EQ(Grow("data", "2Gi"), "");
  EXPECT_EQ(Used("q"), (Json{{"requests.storage", "2Gi"},
                             {"fast.storageclass.storage.k8s.io/requests.storage", "2Gi"},
                             {"persistentvolumeclaims", "1"}}));
  EXPECT_EQ(Grow("data", "4Gi"),
            "persistentvolumeclaims \"data\" is forbidden: exceeded quota: q, requested: "
            "fast.storageclass.storage.k8s.io/requests.storage=2Gi, used: "
            "fast.storageclass.storage.k8s.io/requests.storage=2Gi, limited: "
            "fast.storageclass.storage.k8s.io/requests.storage=3Gi");
  EXPECT_EQ(Grow("data", "3Gi"), "");
  EXPECT_EQ(Used("q")["requests.storage"], "3Gi");
  EXPECT_EQ(Used("q")["fast.storageclass.storage.k8s.io/requests.storage"], "3Gi");
}

TEST_F(QuotaOnUpdateTest, AClaimGrowsOnlyWhenItsClassAllowsExpansion) {
  CreateClass("fixed", false);
  CreateClass("fast", true);
  CreateBoundClaim("stuck", "fixed", "1Gi");
  EXPECT_EQ(Grow("stuck", "2Gi"),
            "persistentvolumeclaims \"stuck\" is forbidden: only dynamically provisioned pvc "
            "can be resized and the storageclass that provisions the pvc must support resize");
  // A class that is gone allows nothing either.
  CreateBoundClaim("orphan", "fast", "1Gi");
  registry_->Delete(StorageClasses(), "", "fast", {});
  EXPECT_EQ(Grow("orphan", "2Gi"),
            "persistentvolumeclaims \"orphan\" is forbidden: only dynamically provisioned pvc "
            "can be resized and the storageclass that provisions the pvc must support resize");
  CreateClass("fast", true);
  EXPECT_EQ(Grow("orphan", "2Gi"), "");
  EXPECT_EQ(registry_->Get(Core("persistentvolumeclaims"), "default",
                           "orphan")["spec"]["resources"]["requests"]["storage"],
            "2Gi");
  // Same size, or other changes: not a resize.
  EXPECT_EQ(Grow("stuck", "1Gi"), "");
  EXPECT_EQ(
      Refusal(Core("persistentvolumeclaims"), "stuck", R"({"metadata":{"labels":{"a":"b"}}})"), "");
  // An unbound claim's request is immutable: validation says so (422)
  // before the admission would.
  registry_->Create(Core("persistentvolumeclaims"), "default",
                    ParseYaml("{apiVersion: v1, kind: PersistentVolumeClaim, metadata: {name: "
                              "pending}, spec: {storageClassName: fast, accessModes: "
                              "[ReadWriteOnce], resources: {requests: {storage: 1Gi}}}}"),
                    {});
  try {
    Merge(Core("persistentvolumeclaims"), "pending",
          R"({"spec":{"resources":{"requests":{"storage":"2Gi"}}}})");
    ADD_FAILURE() << "an unbound claim grew";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalid) << e.what();
  }
}

// Turned back to ClusterIP, as kube-apiserver's dropTypeDependentFields
// does: the node ports and externalTrafficPolicy the user left alone go,
// and the node port is free for another Service.
TEST_F(QuotaOnUpdateTest, AServiceTurnedBackToClusterIPDropsAndFreesItsNodePort) {
  CreateService("a", 1);
  CreateQuota("q", {{"services.nodeports", "3"}}, {{"services.nodeports", "0"}});
  Merge(Core("services"), "a", R"({"spec":{"type":"NodePort"}})");
  Json svc = registry_->Get(Core("services"), "default", "a");
  const int node_port = svc["spec"]["ports"][0].value("nodePort", 0);
  ASSERT_NE(node_port, 0) << svc.dump();
  EXPECT_EQ(svc["spec"]["externalTrafficPolicy"], "Cluster");
  EXPECT_EQ(Refusal(Core("services"), "a", R"({"spec":{"type":"ClusterIP"}})"), "");
  svc = registry_->Get(Core("services"), "default", "a");
  EXPECT_FALSE(svc["spec"]["ports"][0].contains("nodePort")) << svc.dump();
  EXPECT_FALSE(svc["spec"].contains("externalTrafficPolicy")) << svc.dump();
  Json b = {{"apiVersion", "v1"},
            {"kind", "Service"},
            {"metadata", {{"name", "b"}}},
            {"spec", {{"type", "NodePort"}, {"ports", {{{"port", 80}, {"nodePort", node_port}}}}}}};
  registry_->Create(Core("services"), "default", b, {});
  EXPECT_EQ(registry_->Get(Core("services"), "default", "b")["spec"]["ports"][0]["nodePort"],
            node_port);
  // A node port chosen on an update is reserved as on a create.
  CreateService("c", 1);
  try {
    Merge(Core("services"), "c",
          R"({"spec":{"type":"NodePort","ports":[{"name":"p0","port":80,"nodePort":)" +
              std::to_string(node_port) + "}]}}");
    ADD_FAILURE() << "two Services got node port " << node_port;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalid);
    EXPECT_EQ(e.message(), "Service \"c\" is invalid: spec.ports[0].nodePort: Invalid value: " +
                               std::to_string(node_port) + ": provided port is already allocated");
  }
  // A node port the user adds while leaving NodePort is not dropped: validation refuses it.
  Merge(Core("services"), "a", R"({"spec":{"type":"NodePort"}})");
  try {
    Merge(Core("services"), "a",
          R"({"spec":{"type":"ClusterIP","ports":[{"name":"p0","port":80,"nodePort":31999}]}})");
    ADD_FAILURE() << "a ClusterIP Service kept a new node port";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalid) << e.what();
  }
}

TEST_F(QuotaOnUpdateTest, PriorityClassUpdatesKeepOneGlobalDefault) {
  const ResourceInfo& classes = *FindResource("scheduling.k8s.io", "v1", "priorityclasses");
  for (const char* name : {"high", "low"}) {
    registry_->Create(classes, "",
                      {{"apiVersion", "scheduling.k8s.io/v1"},
                       {"kind", "PriorityClass"},
                       {"metadata", {{"name", name}}},
                       {"value", std::string(name) == "high" ? 1000 : 10},
                       {"globalDefault", std::string(name) == "high"}},
                      {});
  }
  // The default itself may change (this update once waited forever on the
  // store's lock, the admission listing classes from inside the write).
  registry_->Patch(classes, "", "high", PatchType::kMerge, R"({"description":"the default"})", "",
                   {});
  EXPECT_EQ(registry_->Get(classes, "", "high")["description"], "the default");
  try {
    registry_->Patch(classes, "", "low", PatchType::kMerge, R"({"globalDefault":true})", "", {});
    ADD_FAILURE() << "a second global default was admitted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kForbidden);
    EXPECT_EQ(e.message(),
              "priorityclasses.scheduling.k8s.io \"low\" is forbidden: PriorityClass high is "
              "already marked as default. Only one default can exist");
  }
  EXPECT_EQ(registry_->Get(classes, "", "low")["globalDefault"], false);
}

}  // namespace
}  // namespace kin::apiserver
