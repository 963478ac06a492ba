// The garbage collector (background, foreground, orphan propagation and
// dangling references) and the namespace controller, against a real
// registry on SQLite through LocalClient, on shared informers.
#include "controllers/garbage_collector.h"

#include <gtest/gtest.h>

#include "client/object.h"
#include "controllers/endpointslice.h"
#include "controllers/manager.h"
#include "controllers/namespace_controller.h"
#include "controllers/registry_fixture.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin::controllers {
namespace {

using testing::Eventually;

const ResourceInfo& ConfigMaps() { return *FindResource("", "v1", "configmaps"); }
const ResourceInfo& Leases() { return *FindResource("coordination.k8s.io", "v1", "leases"); }
const ResourceInfo& Slices() { return *FindResource("discovery.k8s.io", "v1", "endpointslices"); }

class GcTest : public RegistryTest {
 protected:
  void SetUp() override {
    manager_ = std::make_unique<ControllerManager>(*client_);
  }
  void TearDown() override { manager_.reset(); }
  void StartGc() {
    gc_ = &manager_->Emplace<GarbageCollector>(manager_->informers(), *client_);
    manager_->Start();
  }

  // A ConfigMap, owned by `owners` (ConfigMaps, referenced by name and uid).
  Json AddConfigMap(const std::string& name, const std::vector<Json>& owners = {},
                    bool block = false, const std::string& ns = "default") {
    Json refs = Json::array();
    for (const auto& o : owners) {
      refs.push_back({{"apiVersion", "v1"},
                      {"kind", o.value("kind", "ConfigMap")},
                      {"name", o["metadata"]["name"]},
                      {"uid", o["metadata"]["uid"]},
                      {"blockOwnerDeletion", block}});
    }
    Json cm = {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", name}}}};
    if (!refs.empty()) cm["metadata"]["ownerReferences"] = refs;
    Json out = cl().Create(ConfigMaps(), ns, cm);
    out["kind"] = "ConfigMap";
    return out;
  }
  // A pod on a node (so its deletion is graceful), owned by `owner`.
  Json AddPod(const std::string& name, const Json& owner, bool block) {
    Json pod = {{"apiVersion", "v1"},
                {"kind", "Pod"},
                {"metadata",
                 {{"name", name},
                  {"ownerReferences",
                   {{{"apiVersion", "v1"},
                     {"kind", owner.value("kind", "ConfigMap")},
                     {"name", owner["metadata"]["name"]},
                     {"uid", owner["metadata"]["uid"]},
                     {"blockOwnerDeletion", block}}}}}},
                {"spec",
                 {{"nodeName", "n1"}, {"containers", {{{"name", "c"}, {"image", "busybox"}}}}}}};
    return cl().Create(PodsResource(), "default", pod);
  }
  bool Exists(const ResourceInfo& r, const std::string& name, const std::string& ns = "default") {
    try {
      cl().Get(r, ns, name);
      return true;
    } catch (const Error& e) {
      if (e.code() == Code::kNotFound) return false;
      throw;
    }
  }
  Json GetCm(const std::string& name) { return cl().Get(ConfigMaps(), "default", name); }
  void ConfirmPodGone(const std::string& name) {
    DeleteOptions now;
    now.grace_period_seconds = 0;
    cl().Delete(PodsResource(), "default", name, now);
  }

  std::unique_ptr<ControllerManager> manager_;
  GarbageCollector* gc_ = nullptr;
};

// Waits until the collector's caches hold `n` dependents of `owner` (as on
// a real cluster, where dependents exist well before their owner is
// deleted; one made a moment before may still be on its way to the cache,
// which upstream's collector does not wait for either).
#define WAIT_FOR_DEPENDENTS(owner, n)                                                          \
  ASSERT_TRUE(Eventually([&] {                                                                 \
    size_t found = 0;                                                                          \
    for (Informer * inf : manager_->informers().informers())                                   \
      found += inf->ByIndex(kOwnerUidIndex, (owner)["metadata"]["uid"].get<std::string>()).size(); \
    return found == (n);                                                                       \
  }))

TEST_F(GcTest, WatchesTheWorkloadResources) {
  StartGc();
  auto w = gc_->watched();
  for (const char* r : {"pods", "replicasets.apps", "deployments.apps", "daemonsets.apps",
                        "statefulsets.apps", "jobs.batch", "controllerrevisions.apps",
                        "endpointslices.discovery.k8s.io", "endpoints", "services", "configmaps",
                        "secrets", "cronjobs.batch", "replicationcontrollers",
                        "poddisruptionbudgets.policy", "persistentvolumeclaims"}) {
    EXPECT_NE(std::find(w.begin(), w.end(), r), w.end()) << r;
  }
}

TEST_F(GcTest, BackgroundDeletesDependentsOfAGoneOwner) {
  StartGc();
  Json owner = AddConfigMap("owner");
  Json child = AddConfigMap("child", {owner});
  AddConfigMap("grandchild", {child});
  AddPod("pod", owner, false);
  AddConfigMap("bystander");
  cl().Delete(ConfigMaps(), "default", "owner");  // background: the owner goes at once
  ASSERT_TRUE(Eventually([&] { return !Exists(ConfigMaps(), "child"); }));
  ASSERT_TRUE(Eventually([&] { return !Exists(ConfigMaps(), "grandchild"); }));
  // The pod is deleted gracefully (it is on a node): it is terminating.
  ASSERT_TRUE(Eventually(
      [&] { return object::IsBeingDeleted(cl().Get(PodsResource(), "default", "pod")); }));
  EXPECT_TRUE(Exists(ConfigMaps(), "bystander"));
}

TEST_F(GcTest, DanglingReferencesFoundAtStartAndUidMismatch) {
  // Made before the collector runs: an owner that never existed, and an
  // owner replaced by another object of the same name.
  Json ghost = {{"kind", "ConfigMap"}, {"metadata", {{"name", "ghost"}, {"uid", "no-such-uid"}}}};
  AddConfigMap("orphaned", {ghost});
  Json old_owner = AddConfigMap("reborn");
  AddConfigMap("of-old", {old_owner});
  cl().Delete(ConfigMaps(), "default", "reborn");
  AddConfigMap("reborn");
  // Two owners, one gone: only the reference goes.
  Json live = AddConfigMap("live");
  AddConfigMap("shared", {live, ghost});
  StartGc();
  EXPECT_TRUE(Eventually([&] { return !Exists(ConfigMaps(), "orphaned"); }));
  EXPECT_TRUE(Eventually([&] { return !Exists(ConfigMaps(), "of-old"); }));
  ASSERT_TRUE(Eventually([&] { return GetCm("shared")["metadata"]["ownerReferences"].size() == 1; }));
  EXPECT_EQ(GetCm("shared")["metadata"]["ownerReferences"][0]["name"], "live");
  EXPECT_TRUE(Exists(ConfigMaps(), "reborn"));
  EXPECT_TRUE(Exists(ConfigMaps(), "live"));
}

TEST_F(GcTest, ForegroundWaitsForBlockingDependents) {
  StartGc();
  Json owner = AddConfigMap("owner");
  Json child = AddConfigMap("child", {owner}, /*block=*/true);
  AddConfigMap("grandchild", {child}, /*block=*/true);
  AddPod("pod", owner, /*block=*/true);
  AddConfigMap("loose", {owner}, /*block=*/false);
  WAIT_FOR_DEPENDENTS(owner, 3u);
  DeleteOptions fg;
  fg.propagation_policy = "Foreground";
  cl().Delete(ConfigMaps(), "default", "owner", fg);
  // Everything below is deleted; the pod is terminating (graceful) and
  // holds the owner, which keeps its finalizer meanwhile.
  ASSERT_TRUE(Eventually([&] {
    return !Exists(ConfigMaps(), "child") && !Exists(ConfigMaps(), "grandchild") &&
           !Exists(ConfigMaps(), "loose");
  }));
  ASSERT_TRUE(Eventually(
      [&] { return object::IsBeingDeleted(cl().Get(PodsResource(), "default", "pod")); }));
  Json held = GetCm("owner");
  EXPECT_TRUE(object::IsBeingDeleted(held));
  EXPECT_EQ(held["metadata"]["finalizers"], Json::array({kFinalizerForeground}));
  // The kubelet confirms the pod's end: the owner goes.
  ConfirmPodGone("pod");
  EXPECT_TRUE(Eventually([&] { return !Exists(ConfigMaps(), "owner"); }));
}

TEST_F(GcTest, ForegroundWithoutDependentsAndNonBlockingOnes) {
  StartGc();
  AddConfigMap("alone");
  DeleteOptions fg;
  fg.propagation_policy = "Foreground";
  cl().Delete(ConfigMaps(), "default", "alone", fg);
  EXPECT_TRUE(Eventually([&] { return !Exists(ConfigMaps(), "alone"); }));
  // A dependent without blockOwnerDeletion does not hold its owner.
  Json owner = AddConfigMap("owner");
  AddPod("pod", owner, /*block=*/false);
  cl().Delete(ConfigMaps(), "default", "owner", fg);
  EXPECT_TRUE(Eventually([&] { return !Exists(ConfigMaps(), "owner"); }));
  EXPECT_TRUE(Eventually(
      [&] { return object::IsBeingDeleted(cl().Get(PodsResource(), "default", "pod")); }));
}

TEST_F(GcTest, OrphanKeepsDependentsWithoutTheReference) {
  StartGc();
  Json owner = AddConfigMap("owner");
  Json other = AddConfigMap("other");
  AddConfigMap("child", {owner}, true);
  AddConfigMap("both", {owner, other}, true);
  AddPod("pod", owner, true);
  WAIT_FOR_DEPENDENTS(owner, 3u);
  DeleteOptions orphan;
  orphan.propagation_policy = "Orphan";
  cl().Delete(ConfigMaps(), "default", "owner", orphan);
  ASSERT_TRUE(Eventually([&] { return !Exists(ConfigMaps(), "owner"); }));
  EXPECT_FALSE(GetCm("child")["metadata"].contains("ownerReferences")) << GetCm("child").dump();
  ASSERT_EQ(GetCm("both")["metadata"]["ownerReferences"].size(), 1u);
  EXPECT_EQ(GetCm("both")["metadata"]["ownerReferences"][0]["name"], "other");
  Json pod = cl().Get(PodsResource(), "default", "pod");
  EXPECT_FALSE(object::IsBeingDeleted(pod));
  EXPECT_FALSE(pod["metadata"].contains("ownerReferences"));
}

TEST_F(GcTest, ClusterScopedOwners) {
  StartGc();
  Json node = cl().Create(NodesResource(), "",
                          {{"apiVersion", "v1"}, {"kind", "Node"}, {"metadata", {{"name", "n9"}}}});
  cl().Create(Leases(), "kube-node-lease",
              {{"apiVersion", "coordination.k8s.io/v1"},
               {"kind", "Lease"},
               {"metadata",
                {{"name", "n9"},
                 {"ownerReferences",
                  {{{"apiVersion", "v1"},
                    {"kind", "Node"},
                    {"name", "n9"},
                    {"uid", node["metadata"]["uid"]}}}}}},
               {"spec", {{"holderIdentity", "n9"}}}});
  cl().Delete(NodesResource(), "", "n9");
  EXPECT_TRUE(Eventually([&] { return !Exists(Leases(), "n9", "kube-node-lease"); }));
}

TEST_F(GcTest, AServicesSlicesGoWithIt) {
  manager_->Emplace<EndpointSliceController>(manager_->informers(), *client_);
  StartGc();
  cl().Create(ServicesResource(), "default",
              {{"apiVersion", "v1"},
               {"kind", "Service"},
               {"metadata", {{"name", "web"}}},
               {"spec", {{"selector", {{"app", "web"}}}, {"ports", {{{"port", 80}}}}}}});
  auto slices = [&] {
    int n = 0;
    Json list = cl().List(Slices(), "default");
    for (const auto& s : list["items"]) n += object::Label(s, kLabelServiceName) == "web";
    return n;
  };
  ASSERT_TRUE(Eventually([&] { return slices() == 1; }));
  cl().Delete(ServicesResource(), "default", "web");
  EXPECT_TRUE(Eventually([&] { return slices() == 0; }));
}

// --- the namespace controller ---

// Custom resources: a CRD's resource is watched while the CRD is there;
// its objects own and are owned like any other.
class GcCustomTest : public GcTest {
 protected:
  void TearDown() override {
    GcTest::TearDown();
    SetCustomResources({});  // the dynamic set is process-wide
  }
  const ResourceInfo& Crds() {
    return *FindResource("apiextensions.k8s.io", "v1", "customresourcedefinitions");
  }
  void AddCrd(bool wait_watched = true) {
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
    cl().Create(Crds(), "", crd);
    if (!wait_watched) return;
    ASSERT_TRUE(Eventually([&] {
      auto w = gc_->watched();
      return std::find(w.begin(), w.end(), "widgets.example.com") != w.end();
    }));
  }
  const ResourceInfo& Widgets() { return *FindResource("example.com", "v1", "widgets"); }
  Json AddWidget(const std::string& name, const Json& owner = Json()) {
    Json w = {{"apiVersion", "example.com/v1"}, {"kind", "Widget"}, {"metadata", {{"name", name}}}};
    if (!owner.is_null()) {
      w["metadata"]["ownerReferences"] = {{{"apiVersion", "v1"},
                                           {"kind", "ConfigMap"},
                                           {"name", owner["metadata"]["name"]},
                                           {"uid", owner["metadata"]["uid"]},
                                           {"blockOwnerDeletion", true}}};
    }
    Json out = cl().Create(Widgets(), "default", w);
    out["kind"] = "Widget";
    return out;
  }
  // A ConfigMap owned by the widget `owner`.
  Json AddOwnedByWidget(const std::string& name, const Json& owner) {
    Json cm = {{"apiVersion", "v1"},
               {"kind", "ConfigMap"},
               {"metadata",
                {{"name", name},
                 {"ownerReferences",
                  {{{"apiVersion", "example.com/v1"},
                    {"kind", "Widget"},
                    {"name", owner["metadata"]["name"]},
                    {"uid", owner["metadata"]["uid"]},
                    {"blockOwnerDeletion", true}}}}}}};
    return cl().Create(ConfigMaps(), "default", cm);
  }
};

TEST_F(GcCustomTest, WatchesACrdsResourceWhileTheCrdIsThere) {
  StartGc();
  AddCrd();
  cl().Delete(Crds(), "", "widgets.example.com");
  EXPECT_TRUE(Eventually([&] {
    auto w = gc_->watched();
    return std::find(w.begin(), w.end(), "widgets.example.com") == w.end();
  }));
  // Made again: watched again.
  AddCrd();
}

TEST_F(GcCustomTest, BackgroundCollectsDependentsOfCustomObjectsAndCustomDependents) {
  StartGc();
  AddCrd();
  Json widget = AddWidget("w");
  AddOwnedByWidget("of-widget", widget);
  Json owner = AddConfigMap("owner");
  AddWidget("owned", owner);
  WAIT_FOR_DEPENDENTS(widget, 1u);
  cl().Delete(Widgets(), "default", "w");
  EXPECT_TRUE(Eventually([&] { return !Exists(ConfigMaps(), "of-widget"); }));
  cl().Delete(ConfigMaps(), "default", "owner");
  EXPECT_TRUE(Eventually([&] { return !Exists(Widgets(), "owned"); }));
}

TEST_F(GcCustomTest, CustomObjectsOwnedByGoneOwnersGoAtStart) {
  AddCrd(/*wait_watched=*/false);
  Json gone = AddConfigMap("gone");
  Json live = AddConfigMap("live");
  AddWidget("dangling", gone);
  AddWidget("kept", live);
  cl().Delete(ConfigMaps(), "default", "gone");
  StartGc();
  EXPECT_TRUE(Eventually([&] { return !Exists(Widgets(), "dangling"); }));
  EXPECT_TRUE(Exists(Widgets(), "kept"));
}

TEST_F(GcCustomTest, ForegroundAndOrphanDeletionOfCustomObjects) {
  StartGc();
  AddCrd();
  Json fg_owner = AddWidget("fg");
  AddOwnedByWidget("fg-child", fg_owner);
  Json orphaner = AddWidget("orph");
  AddOwnedByWidget("orph-child", orphaner);
  WAIT_FOR_DEPENDENTS(fg_owner, 1u);
  WAIT_FOR_DEPENDENTS(orphaner, 1u);
  DeleteOptions fg;
  fg.propagation_policy = "Foreground";
  cl().Delete(Widgets(), "default", "fg", fg);
  EXPECT_TRUE(Eventually([&] { return !Exists(ConfigMaps(), "fg-child"); }));
  EXPECT_TRUE(Eventually([&] { return !Exists(Widgets(), "fg"); }));
  DeleteOptions orphan;
  orphan.propagation_policy = "Orphan";
  cl().Delete(Widgets(), "default", "orph", orphan);
  EXPECT_TRUE(Eventually([&] { return !Exists(Widgets(), "orph"); }));
  Json kept = GetCm("orph-child");
  EXPECT_FALSE(kept["metadata"].contains("ownerReferences")) << kept.dump();
}


class NamespaceControllerTest : public GcTest {
 protected:
  void StartNamespaceController() {
    // No grace period (controllers_namespace_test covers it): at once.
    NamespaceControllerOptions opts;
    opts.deletion_grace = std::chrono::milliseconds(0);
    manager_->Emplace<NamespaceController>(manager_->informers(), *client_, opts);
    manager_->Start();
  }
  void AddNamespace(const std::string& name) {
    cl().Create(NamespacesResource(), "",
                {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", name}}}});
  }
  bool NamespaceExists(const std::string& name) { return Exists(NamespacesResource(), name, ""); }
  // type -> "status reason: message"
  std::map<std::string, std::string> Conditions(const std::string& ns) {
    std::map<std::string, std::string> out;
    Json n = cl().Get(NamespacesResource(), "", ns);
    for (const auto& c : n["status"].value("conditions", Json::array())) {
      out[c["type"]] = c.value("status", "") + " " + c.value("reason", "") + ": " +
                       c.value("message", "");
    }
    return out;
  }
};

TEST_F(NamespaceControllerTest, ContentGoesThenTheNamespace) {
  StartNamespaceController();
  AddNamespace("tmp");
  AddConfigMap("c", {}, false, "tmp");
  cl().Create(PodsResource(), "tmp",
              {{"apiVersion", "v1"},
               {"kind", "Pod"},
               {"metadata", {{"name", "p"}}},
               {"spec", {{"nodeName", "n1"}, {"containers", {{{"name", "c"}, {"image", "busybox"}}}}}}});
  cl().Delete(NamespacesResource(), "", "tmp");
  // The pod waits for its kubelet; the namespace says so.
  std::string remaining;
  ASSERT_TRUE(Eventually([&] {
    remaining = Conditions("tmp")["NamespaceContentRemaining"];
    return remaining == "True SomeResourcesRemain: Some resources are remaining: pods. has 1 resource instances";
  })) << remaining;
  auto c = Conditions("tmp");
  EXPECT_EQ(c["NamespaceDeletionDiscoveryFailure"],
            "False ResourcesDiscovered: All resources successfully discovered");
  EXPECT_EQ(c["NamespaceDeletionContentFailure"],
            "False ContentDeleted: All content successfully deleted, may be waiting on finalization");
  EXPECT_EQ(c["NamespaceFinalizersRemaining"],
            "False ContentHasNoFinalizers: All content-preserving finalizers finished");
  EXPECT_FALSE(Exists(ConfigMaps(), "c", "tmp"));
  Json ns = cl().Get(NamespacesResource(), "", "tmp");
  EXPECT_EQ(ns["status"]["phase"], "Terminating");
  EXPECT_EQ(ns["spec"]["finalizers"], Json::array({"kubernetes"}));
  // New content is refused meanwhile.
  EXPECT_THROW(AddConfigMap("late", {}, false, "tmp"), Error);
  DeleteOptions now;
  now.grace_period_seconds = 0;
  cl().Delete(PodsResource(), "tmp", "p", now);
  EXPECT_TRUE(Eventually([&] { return !NamespaceExists("tmp"); }));
  EXPECT_TRUE(NamespaceExists("default"));
}

TEST_F(NamespaceControllerTest, FinalizersHoldTheNamespace) {
  StartNamespaceController();
  AddNamespace("held");
  cl().Create(ConfigMaps(), "held",
              {{"apiVersion", "v1"},
               {"kind", "ConfigMap"},
               {"metadata", {{"name", "c"}, {"finalizers", {"example.com/hold"}}}}});
  cl().Delete(NamespacesResource(), "", "held");
  std::string fin;
  ASSERT_TRUE(Eventually([&] {
    fin = Conditions("held")["NamespaceFinalizersRemaining"];
    return fin ==
           "True SomeFinalizersRemain: Some content in the namespace has finalizers remaining: "
           "example.com/hold in 1 resource instances";
  })) << fin;
  cl().Patch(ConfigMaps(), "held", "c", PatchType::kMerge, {{"metadata", {{"finalizers", nullptr}}}});
  EXPECT_TRUE(Eventually([&] { return !NamespaceExists("held"); }));
}

TEST_F(NamespaceControllerTest, EmptyAndFinalizerlessNamespaces) {
  StartNamespaceController();
  AddNamespace("empty");
  cl().Delete(NamespacesResource(), "", "empty");
  EXPECT_TRUE(Eventually([&] { return !NamespaceExists("empty"); }));
  // Without spec.finalizers the API server deletes it at once.
  AddNamespace("bare");
  cl().Update(NamespacesResource(), "",
              {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "bare"}}},
               {"spec", {{"finalizers", Json::array()}}}},
              "finalize");
  EXPECT_EQ(cl().Get(NamespacesResource(), "", "bare")["spec"]["finalizers"], Json::array());
  cl().Delete(NamespacesResource(), "", "bare");
  EXPECT_FALSE(NamespaceExists("bare"));
}

// Without the controller a deleted namespace stays Terminating (the API
// server no longer empties namespaces itself); a status write does not
// delete it either.
TEST_F(NamespaceControllerTest, WithoutTheControllerItStaysTerminating) {
  AddNamespace("stay");
  cl().Delete(NamespacesResource(), "", "stay");
  Json ns = cl().Get(NamespacesResource(), "", "stay");
  ns["status"]["conditions"] = {{{"type", "X"}, {"status", "True"}}};
  cl().Update(NamespacesResource(), "", ns, "status");
  ASSERT_TRUE(NamespaceExists("stay"));
  EXPECT_EQ(cl().Get(NamespacesResource(), "", "stay")["status"]["phase"], "Terminating");
  // Removing the last finalizer through /finalize lets it go.
  ns = cl().Get(NamespacesResource(), "", "stay");
  ns["spec"]["finalizers"] = Json::array();
  cl().Update(NamespacesResource(), "", ns, "finalize");
  EXPECT_FALSE(NamespaceExists("stay"));
}

}  // namespace
}  // namespace kin::controllers
