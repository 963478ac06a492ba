// The PersistentVolume binder and the local-path provisioner against a real
// registry: binding of pre-made volumes (class, access modes, size,
// selector), phases and annotations, WaitForFirstConsumer, provisioning on
// the selected node into a temporary directory, reclaim Delete and Retain,
// expansion of the volumes it made, the default StorageClass and the
// DefaultStorageClass admission.
#include "controllers/storage.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "base/error.h"
#include "client/object.h"
#include "controllers/registry_fixture.h"
#include "controllers/scheduler.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin::controllers {
namespace {

using testing::Eventually;
namespace fs = std::filesystem;

class StorageTest : public RegistryTest {
 protected:
  void SetUp() override {
    informers_ = std::make_unique<SharedInformerFactory>(*client_);
    binder_ = std::make_unique<PersistentVolumeBinder>(*informers_, *client_);
    LocalPathProvisionerOptions o;
    o.dir_for = [this](const std::string& node) { return volumes_.path() + "/" + node; };
    provisioner_ = std::make_unique<LocalPathProvisioner>(*informers_, *client_, o);
    informers_->Start();
    binder_->Start();
    provisioner_->Start();
  }
  void TearDown() override {
    provisioner_->Stop();
    binder_->Stop();
    informers_->Stop();
  }

  Json MakeVolume(const std::string& name, const std::string& size, const std::string& cls,
                  Json modes = Json::array({"ReadWriteOnce"}), Json labels = Json::object(),
                  const std::string& reclaim = "Retain") {
    Json pv = {{"apiVersion", "v1"},
               {"kind", "PersistentVolume"},
               {"metadata", {{"name", name}, {"labels", labels}}},
               {"spec",
                {{"capacity", {{"storage", size}}},
                 {"accessModes", modes},
                 {"persistentVolumeReclaimPolicy", reclaim},
                 {"storageClassName", cls},
                 {"hostPath", {{"path", "/tmp/" + name}}}}}};
    return cl().Create(PersistentVolumesResource(), "", pv);
  }
  Json MakeClaim(const std::string& name, const std::string& size, const Json& cls,
                 Json modes = Json::array({"ReadWriteOnce"}), Json selector = nullptr) {
    Json pvc = {{"apiVersion", "v1"},
                {"kind", "PersistentVolumeClaim"},
                {"metadata", {{"name", name}}},
                {"spec",
                 {{"accessModes", modes}, {"resources", {{"requests", {{"storage", size}}}}}}}};
    if (!cls.is_null()) pvc["spec"]["storageClassName"] = cls;
    if (!selector.is_null()) pvc["spec"]["selector"] = selector;
    return cl().Create(PersistentVolumeClaimsResource(), "default", pvc);
  }
  Json Claim(const std::string& name) {
    return cl().Get(PersistentVolumeClaimsResource(), "default", name);
  }
  Json Volume(const std::string& name) { return cl().Get(PersistentVolumesResource(), "", name); }
  std::string ClaimPhase(const std::string& name) {
    return object::Str(object::Field(Claim(name), "status"), "phase");
  }
  std::string VolumePhase(const std::string& name) {
    try {
      return object::Str(object::Field(Volume(name), "status"), "phase");
    } catch (const Error& e) {
      if (e.code() == Code::kNotFound) return "<gone>";
      throw;
    }
  }
  bool ClaimBoundTo(const std::string& claim, const std::string& volume) {
    return ClaimPhase(claim) == "Bound" && Claim(claim)["spec"].value("volumeName", "") == volume;
  }
  void SelectNode(const std::string& claim, const std::string& node) {
    cl().Patch(PersistentVolumeClaimsResource(), "default", claim, PatchType::kMerge,
               {{"metadata", {{"annotations", {{kSelectedNodeAnnotation, node}}}}}});
  }

  ::kin::testing::TempDir volumes_;
  std::unique_ptr<SharedInformerFactory> informers_;
  std::unique_ptr<PersistentVolumeBinder> binder_;
  std::unique_ptr<LocalPathProvisioner> provisioner_;
};

TEST(VolumeMatchesClaimTest, ClassModesSizeModeAndSelector) {
  Json pv = {{"metadata", {{"labels", {{"tier", "fast"}}}}},
             {"spec",
              {{"storageClassName", "manual"},
               {"accessModes", {"ReadWriteOnce", "ReadOnlyMany"}},
               {"capacity", {{"storage", "1Gi"}}}}}};
  auto claim = [](const std::string& cls, Json modes, const std::string& size) {
    return Json{{"spec",
                 {{"storageClassName", cls},
                  {"accessModes", modes},
                  {"resources", {{"requests", {{"storage", size}}}}}}}};
  };
  EXPECT_TRUE(VolumeMatchesClaim(pv, claim("manual", {"ReadWriteOnce"}, "1Gi")));
  EXPECT_TRUE(VolumeMatchesClaim(pv, claim("manual", {"ReadOnlyMany"}, "500Mi")));
  EXPECT_TRUE(VolumeMatchesClaim(pv, claim("manual", {"ReadWriteOnce"}, "1073741824")));
  EXPECT_FALSE(VolumeMatchesClaim(pv, claim("manual", {"ReadWriteOnce"}, "1025Mi")));
  EXPECT_FALSE(VolumeMatchesClaim(pv, claim("other", {"ReadWriteOnce"}, "1Gi")));
  EXPECT_FALSE(VolumeMatchesClaim(pv, claim("manual", {"ReadWriteMany"}, "1Gi")));
  Json block = claim("manual", {"ReadWriteOnce"}, "1Gi");
  block["spec"]["volumeMode"] = "Block";
  EXPECT_FALSE(VolumeMatchesClaim(pv, block));
  Json sel = claim("manual", {"ReadWriteOnce"}, "1Gi");
  sel["spec"]["selector"] = {{"matchLabels", {{"tier", "fast"}}}};
  EXPECT_TRUE(VolumeMatchesClaim(pv, sel));
  sel["spec"]["selector"] = {{"matchLabels", {{"tier", "slow"}}}};
  EXPECT_FALSE(VolumeMatchesClaim(pv, sel));
}

TEST_F(StorageTest, DefaultClassCreatedAndGivenToClaimsWithoutClass) {
  ASSERT_TRUE(Eventually([&] {
    try {
      cl().Get(StorageClassesResource(), "", "standard");
      return true;
    } catch (const Error&) {
      return false;
    }
  }));
  Json sc = cl().Get(StorageClassesResource(), "", "standard");
  EXPECT_EQ(sc["provisioner"], "rancher.io/local-path");
  EXPECT_EQ(sc["volumeBindingMode"], "WaitForFirstConsumer");
  EXPECT_EQ(sc["reclaimPolicy"], "Delete");
  EXPECT_EQ(sc["metadata"]["annotations"][kIsDefaultClassAnnotation], "true");
  // DefaultStorageClass admission: absent -> the default; "" stays "".
  EXPECT_EQ(MakeClaim("a", "1Gi", nullptr)["spec"]["storageClassName"], "standard");
  EXPECT_EQ(MakeClaim("b", "1Gi", "")["spec"]["storageClassName"], "");
  EXPECT_EQ(Claim("a")["status"]["phase"], "Pending");
}

TEST_F(StorageTest, BindsSmallestMatchingVolume) {
  MakeVolume("big", "10Gi", "manual");
  MakeVolume("small", "2Gi", "manual");
  MakeVolume("tiny", "500Mi", "manual");
  MakeVolume("rwx", "2Gi", "manual", Json::array({"ReadWriteMany"}));
  MakeVolume("other", "1Gi", "other");
  ASSERT_TRUE(Eventually([&] { return VolumePhase("small") == "Available"; }));
  MakeClaim("data", "1Gi", "manual");
  ASSERT_TRUE(Eventually([&] { return ClaimBoundTo("data", "small"); }));
  Json pvc = Claim("data");
  EXPECT_EQ(pvc["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"], "yes");
  EXPECT_EQ(pvc["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"], "yes");
  EXPECT_EQ(pvc["status"]["capacity"]["storage"], "2Gi");
  EXPECT_EQ(pvc["status"]["accessModes"], Json::array({"ReadWriteOnce"}));
  ASSERT_TRUE(Eventually([&] { return VolumePhase("small") == "Bound"; }));
  Json pv = Volume("small");
  EXPECT_EQ(pv["spec"]["claimRef"]["name"], "data");
  EXPECT_EQ(pv["spec"]["claimRef"]["namespace"], "default");
  EXPECT_EQ(pv["spec"]["claimRef"]["uid"], pvc["metadata"]["uid"]);
  EXPECT_EQ(pv["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"], "yes");
  EXPECT_EQ(VolumePhase("big"), "Available");
}

TEST_F(StorageTest, SelectorAndNoMatchStayPending) {
  MakeVolume("fast", "1Gi", "manual", Json::array({"ReadWriteOnce"}), {{"tier", "fast"}});
  MakeVolume("slow", "1Gi", "manual", Json::array({"ReadWriteOnce"}), {{"tier", "slow"}});
  MakeClaim("sel", "1Gi", "manual", Json::array({"ReadWriteOnce"}),
            {{"matchLabels", {{"tier", "slow"}}}});
  ASSERT_TRUE(Eventually([&] { return ClaimBoundTo("sel", "slow"); }));
  MakeClaim("huge", "100Gi", "");
  ASSERT_TRUE(Eventually([&] { return !EventsWithReason(cl(), "FailedBinding", "huge").empty(); }));
  EXPECT_EQ(EventsWithReason(cl(), "FailedBinding", "huge")[0]["message"],
            "no persistent volumes available for this claim and no storage class is set");
  EXPECT_EQ(ClaimPhase("huge"), "Pending");
}

TEST_F(StorageTest, PreBoundVolumeAndReleasedOnClaimDeletion) {
  Json pv = {{"apiVersion", "v1"},
             {"kind", "PersistentVolume"},
             {"metadata", {{"name", "reserved"}}},
             {"spec",
              {{"capacity", {{"storage", "1Gi"}}},
               {"accessModes", {"ReadWriteOnce"}},
               {"storageClassName", ""},
               {"claimRef", {{"namespace", "default"}, {"name", "mine"}}},
               {"hostPath", {{"path", "/tmp/reserved"}}}}}};
  cl().Create(PersistentVolumesResource(), "", pv);
  MakeVolume("free", "1Gi", "");
  ASSERT_TRUE(Eventually([&] { return VolumePhase("reserved") == "Available"; }));
  MakeClaim("mine", "1Gi", "");
  ASSERT_TRUE(Eventually([&] { return ClaimBoundTo("mine", "reserved"); }));
  // Pre-bound by the user: not bound-by-controller on the volume.
  EXPECT_FALSE(Volume("reserved")["metadata"].value("annotations", Json::object())
                   .contains("pv.kubernetes.io/bound-by-controller"));
  ASSERT_TRUE(Eventually([&] { return VolumePhase("reserved") == "Bound"; }));
  cl().Delete(PersistentVolumeClaimsResource(), "default", "mine");
  // Retain: Released, and not bound again to a new claim of the same name.
  ASSERT_TRUE(Eventually([&] { return VolumePhase("reserved") == "Released"; }));
  MakeClaim("mine", "1Gi", "");
  ASSERT_TRUE(Eventually([&] { return ClaimBoundTo("mine", "free"); }));
  EXPECT_EQ(VolumePhase("reserved"), "Released");
}

TEST_F(StorageTest, WaitForFirstConsumerThenProvisionsOnSelectedNode) {
  ASSERT_TRUE(Eventually([&] {
    try {
      cl().Get(StorageClassesResource(), "", "standard");
      return true;
    } catch (const Error&) {
      return false;
    }
  }));
  Json pvc = MakeClaim("data", "64Mi", nullptr, Json::array({"ReadWriteOnce"}));
  ASSERT_TRUE(Eventually(
      [&] { return !EventsWithReason(cl(), "WaitForFirstConsumer", "data").empty(); }));
  EXPECT_EQ(EventsWithReason(cl(), "WaitForFirstConsumer", "data")[0]["message"],
            "waiting for first consumer to be created before binding");
  EXPECT_EQ(ClaimPhase("data"), "Pending");
  const std::string pv_name = "pvc-" + object::Uid(pvc);
  SelectNode("data", "worker");
  ASSERT_TRUE(Eventually([&] { return ClaimBoundTo("data", pv_name); }));
  Json pv = Volume(pv_name);
  const std::string path = pv["spec"]["hostPath"]["path"];
  EXPECT_EQ(path, volumes_.path() + "/worker/" + pv_name + "_default_data");
  EXPECT_TRUE(fs::is_directory(path));
  EXPECT_EQ(pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"],
            "rancher.io/local-path");
  EXPECT_EQ(pv["spec"]["capacity"]["storage"], "64Mi");
  EXPECT_EQ(pv["spec"]["persistentVolumeReclaimPolicy"], "Delete");
  EXPECT_EQ(pv["spec"]["storageClassName"], "standard");
  EXPECT_EQ(pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]
               ["values"],
            Json::array({"worker"}));
  EXPECT_EQ(Claim("data")["metadata"]["annotations"]["volume.kubernetes.io/storage-provisioner"],
            "rancher.io/local-path");
  // Recorded after the volume is made, so perhaps after the binding.
  EXPECT_TRUE(Eventually(
      [&] { return !EventsWithReason(cl(), "ProvisioningSucceeded", "data").empty(); }));

  // Reclaim Delete: the claim goes, so do the directory and the volume.
  cl().Delete(PersistentVolumeClaimsResource(), "default", "data");
  ASSERT_TRUE(Eventually([&] { return VolumePhase(pv_name) == "<gone>"; }));
  EXPECT_FALSE(fs::exists(path));
}

TEST_F(StorageTest, RetainClassKeepsVolumeAndDirectoryReleased) {
  Json sc = DefaultStorageClassObject();
  sc["metadata"] = {{"name", "keep"}};
  sc["reclaimPolicy"] = "Retain";
  cl().Create(StorageClassesResource(), "", sc);
  Json pvc = MakeClaim("kept", "1Mi", "keep");
  SelectNode("kept", "n1");
  const std::string pv_name = "pvc-" + object::Uid(pvc);
  ASSERT_TRUE(Eventually([&] { return ClaimBoundTo("kept", pv_name); }));
  const std::string path = Volume(pv_name)["spec"]["hostPath"]["path"];
  cl().Delete(PersistentVolumeClaimsResource(), "default", "kept");
  ASSERT_TRUE(Eventually([&] { return VolumePhase(pv_name) == "Released"; }));
  EXPECT_TRUE(fs::is_directory(path));
}

TEST_F(StorageTest, ExpandableClassGrowsTheVolumeAndTheClaimsCapacity) {
  Json sc = DefaultStorageClassObject();
  sc["metadata"] = {{"name", "grow"}};
  sc["allowVolumeExpansion"] = true;
  cl().Create(StorageClassesResource(), "", sc);
  Json pvc = MakeClaim("data", "64Mi", "grow");
  SelectNode("data", "n1");
  const std::string pv_name = "pvc-" + object::Uid(pvc);
  ASSERT_TRUE(Eventually([&] { return ClaimBoundTo("data", pv_name); }));
  EXPECT_EQ(Claim("data")["status"]["capacity"]["storage"], "64Mi");
  cl().Patch(PersistentVolumeClaimsResource(), "default", "data", PatchType::kMerge,
             {{"spec", {{"resources", {{"requests", {{"storage", "128Mi"}}}}}}}});
  ASSERT_TRUE(Eventually(
      [&] { return Claim("data")["status"]["capacity"]["storage"] == "128Mi"; }));
  EXPECT_EQ(Volume(pv_name)["spec"]["capacity"]["storage"], "128Mi");
  // As the external-resizer leaves a claim resized in the controller only:
  // allocatedResources kept, no resource status, no resize condition.
  Json status = Claim("data")["status"];
  EXPECT_EQ(status["allocatedResources"], (Json{{"storage", "128Mi"}}));
  EXPECT_FALSE(status.contains("allocatedResourceStatuses")) << status.dump();
  EXPECT_FALSE(status.contains("conditions")) << status.dump();
  EXPECT_EQ(status["phase"], "Bound");
  ASSERT_TRUE(Eventually(
      [&] { return !EventsWithReason(cl(), "VolumeResizeSuccessful", "data").empty(); }));
  Json done = EventsWithReason(cl(), "VolumeResizeSuccessful", "data")[0];
  EXPECT_EQ(done["message"], "Resize volume succeeded");
  EXPECT_EQ(done["source"]["component"], "external-resizer rancher.io/local-path");
  std::vector<Json> resizing = EventsWithReason(cl(), "Resizing", "data");
  ASSERT_EQ(resizing.size(), 1u);
  EXPECT_EQ(resizing[0]["message"], "External resizer is resizing volume " + pv_name);
  // The binder leaves the resized capacity alone.
  cl().Patch(PersistentVolumeClaimsResource(), "default", "data", PatchType::kMerge,
             {{"metadata", {{"labels", {{"touched", "yes"}}}}}});
  ASSERT_TRUE(Eventually([&] { return Volume(pv_name)["status"]["phase"] == "Bound"; }));
  EXPECT_EQ(Claim("data")["status"]["capacity"]["storage"], "128Mi");
}

TEST_F(StorageTest, ResizeUnderWayFinishesAtItsAllocatedSize) {
  Json sc = DefaultStorageClassObject();
  sc["metadata"] = {{"name", "grow"}};
  sc["allowVolumeExpansion"] = true;
  cl().Create(StorageClassesResource(), "", sc);
  Json pvc = MakeClaim("data", "64Mi", "grow");
  SelectNode("data", "n1");
  const std::string pv_name = "pvc-" + object::Uid(pvc);
  ASSERT_TRUE(Eventually([&] { return ClaimBoundTo("data", pv_name); }));
  // A resizer that stopped after marking 96Mi in progress; the request has
  // grown further since: 96Mi is finished first, then 128Mi.
  provisioner_->Stop();
  Json claim = Claim("data");
  claim["status"]["allocatedResources"] = {{"storage", "96Mi"}};
  claim["status"]["allocatedResourceStatuses"] = {{"storage", "ControllerResizeInProgress"}};
  claim["status"]["conditions"] = {{{"type", "Resizing"}, {"status", "True"}}};
  cl().Update(PersistentVolumeClaimsResource(), "default", claim, "status");
  cl().Patch(PersistentVolumeClaimsResource(), "default", "data", PatchType::kMerge,
             {{"spec", {{"resources", {{"requests", {{"storage", "128Mi"}}}}}}}});
  LocalPathProvisionerOptions o;
  o.dir_for = [this](const std::string& node) { return volumes_.path() + "/" + node; };
  o.create_default_class = false;
  provisioner_ = std::make_unique<LocalPathProvisioner>(*informers_, *client_, o);
  provisioner_->Start();
  ASSERT_TRUE(Eventually(
      [&] { return Claim("data")["status"]["capacity"]["storage"] == "128Mi"; }));
  EXPECT_EQ(Volume(pv_name)["spec"]["capacity"]["storage"], "128Mi");
  // Two resizes (96Mi, then 128Mi): the recorder counts the repeated Event.
  EXPECT_TRUE(Eventually([&] {
    int64_t n = 0;
    for (const Json& e : EventsWithReason(cl(), "VolumeResizeSuccessful", "data")) {
      n += e.value("count", int64_t{1});
    }
    return n == 2;
  }));
  EXPECT_FALSE(Claim("data")["status"].contains("conditions"));
}

TEST_F(StorageTest, VolumesItDidNotMakeAreNotResized) {
  Json sc = DefaultStorageClassObject();
  sc["metadata"] = {{"name", "manual-grow"}};
  sc["provisioner"] = "kubernetes.io/no-provisioner";
  sc["volumeBindingMode"] = "Immediate";
  sc["allowVolumeExpansion"] = true;
  cl().Create(StorageClassesResource(), "", sc);
  MakeVolume("premade", "1Gi", "manual-grow");
  MakeClaim("data", "1Gi", "manual-grow");
  ASSERT_TRUE(Eventually([&] { return ClaimBoundTo("data", "premade"); }));
  cl().Patch(PersistentVolumeClaimsResource(), "default", "data", PatchType::kMerge,
             {{"spec", {{"resources", {{"requests", {{"storage", "2Gi"}}}}}}}});
  // A later change of the claim is seen by the provisioner after the growth:
  // by then it would have resized.
  cl().Patch(PersistentVolumeClaimsResource(), "default", "data", PatchType::kMerge,
             {{"metadata", {{"labels", {{"after", "growth"}}}}}});
  ASSERT_TRUE(Eventually([&] {
    return cl().Get(PersistentVolumeClaimsResource(), "default", "data")["metadata"].contains(
        "labels");
  }));
  EXPECT_TRUE(EventsWithReason(cl(), "Resizing", "data").empty());
  EXPECT_EQ(Volume("premade")["spec"]["capacity"]["storage"], "1Gi");
  EXPECT_EQ(Claim("data")["status"]["capacity"]["storage"], "1Gi");
}

TEST_F(StorageTest, ImmediateLocalPathClassCannotProvision) {
  Json sc = DefaultStorageClassObject();
  sc["metadata"] = {{"name", "now"}};
  sc["volumeBindingMode"] = "Immediate";
  cl().Create(StorageClassesResource(), "", sc);
  MakeClaim("early", "1Mi", "now");
  ASSERT_TRUE(Eventually(
      [&] { return !EventsWithReason(cl(), "ProvisioningFailed", "early").empty(); }));
  EXPECT_EQ(ClaimPhase("early"), "Pending");
}

// The scheduler's part (VolumeBinding) with the binder and the provisioner.
class StorageSchedulingTest : public StorageTest {
 protected:
  void AddNode(const std::string& name) {
    CreateNode(cl(), {{"apiVersion", "v1"},
                      {"kind", "Node"},
                      {"metadata", {{"name", name}, {"labels", {{"kubernetes.io/hostname", name}}}}},
                      {"spec", Json::object()},
                      {"status",
                       {{"allocatable", {{"cpu", "4"}, {"memory", "8Gi"}, {"pods", "110"}}},
                        {"capacity", {{"cpu", "4"}, {"memory", "8Gi"}, {"pods", "110"}}},
                        {"conditions", Json::array({{{"type", "Ready"}, {"status", "True"}}})}}}});
  }
  void MakePod(const std::string& name, const std::string& claim) {
    cl().Create(PodsResource(), "default",
                {{"apiVersion", "v1"},
                 {"kind", "Pod"},
                 {"metadata", {{"name", name}}},
                 {"spec",
                  {{"containers", Json::array({{{"name", "c"}, {"image", "busybox"}}})},
                   {"volumes", Json::array({{{"name", "d"},
                                              {"persistentVolumeClaim",
                                               {{"claimName", claim}}}}})}}}});
  }
  std::string NodeOf(const std::string& pod) {
    return cl().Get(PodsResource(), "default", pod)["spec"].value("nodeName", "");
  }
  std::string ScheduledMessage(const std::string& pod) {
    Json p = cl().Get(PodsResource(), "default", pod);
    for (const auto& c : p["status"].value("conditions", Json::array())) {
      if (c.value("type", "") == "PodScheduled") return c.value("message", "");
    }
    return "";
  }
};

TEST_F(StorageSchedulingTest, WaitForFirstConsumerClaimFollowsItsPod) {
  AddNode("w1");
  AddNode("w2");
  Scheduler scheduler(cl());
  scheduler.Start();
  ASSERT_TRUE(Eventually([&] {
    try {
      cl().Get(StorageClassesResource(), "", "standard");
      return true;
    } catch (const Error&) {
      return false;
    }
  }));
  Json pvc = MakeClaim("data", "1Mi", nullptr);
  MakePod("first", "data");
  // The claim learns the node, is provisioned there, then the pod is bound to it.
  ASSERT_TRUE(Eventually([&] { return !NodeOf("first").empty(); }));
  const std::string node = NodeOf("first");
  // The pod may be bound as soon as the claim names its volume (as
  // upstream's isPVCFullyBound); the claim's status follows.
  ASSERT_TRUE(Eventually([&] { return ClaimPhase("data") == "Bound"; }));
  Json bound = Claim("data");
  EXPECT_EQ(bound["metadata"]["annotations"][kSelectedNodeAnnotation], node);
  // Later pods on the claim go where its volume is.
  for (int i = 0; i < 4; ++i) MakePod("next" + std::to_string(i), "data");
  ASSERT_TRUE(Eventually([&] {
    for (int i = 0; i < 4; ++i) {
      if (NodeOf("next" + std::to_string(i)).empty()) return false;
    }
    return true;
  }));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(NodeOf("next" + std::to_string(i)), node);
  EXPECT_TRUE(fs::is_directory(volumes_.path() + "/" + node));
  scheduler.Stop();
}

TEST_F(StorageSchedulingTest, MissingOrUnboundImmediateClaimsLeavePodsPending) {
  AddNode("w1");
  Scheduler scheduler(cl());
  scheduler.Start();
  MakePod("orphan", "nope");
  ASSERT_TRUE(Eventually([&] { return !ScheduledMessage("orphan").empty(); }));
  EXPECT_EQ(ScheduledMessage("orphan"),
            "0/1 nodes are available: persistentvolumeclaim \"nope\" not found. preemption: 0/1 "
            "nodes are available: 1 Preemption is not helpful for scheduling.");
  EXPECT_FALSE(EventsWithReason(cl(), "FailedScheduling", "orphan").empty());
  // A claim of no class with no volume: unbound and Immediate.
  MakeClaim("waiting", "1Gi", "");
  MakePod("early", "waiting");
  // (Its first try may come before the scheduler's cache has the claim.)
  ASSERT_TRUE(Eventually([&] {
    return ScheduledMessage("early").find("pod has unbound immediate PersistentVolumeClaims") !=
           std::string::npos;
  }));
  // A volume appears: the claim binds and the pod is scheduled; the claim
  // made for the orphan lets it go too.
  MakeVolume("pv-late", "1Gi", "");
  MakeClaim("nope", "1Gi", "");
  MakeVolume("pv-later", "2Gi", "");
  ASSERT_TRUE(Eventually([&] { return NodeOf("early") == "w1" && NodeOf("orphan") == "w1"; }));
  scheduler.Stop();
}

TEST_F(StorageSchedulingTest, VolumeNodeAffinityConflict) {
  AddNode("w1");
  AddNode("w2");
  Json pv = {{"apiVersion", "v1"},
             {"kind", "PersistentVolume"},
             {"metadata", {{"name", "on-w3"}}},
             {"spec",
              {{"capacity", {{"storage", "1Gi"}}},
               {"accessModes", {"ReadWriteOnce"}},
               {"storageClassName", ""},
               {"local", {{"path", "/mnt/disk"}}},
               {"nodeAffinity",
                {{"required",
                  {{"nodeSelectorTerms",
                    Json::array({{{"matchExpressions",
                                   Json::array({{{"key", "kubernetes.io/hostname"},
                                                 {"operator", "In"},
                                                 {"values", Json::array({"w3"})}}})}}})}}}}}}}};
  cl().Create(PersistentVolumesResource(), "", pv);
  MakeClaim("local", "1Gi", "");
  ASSERT_TRUE(Eventually([&] { return ClaimBoundTo("local", "on-w3"); }));
  Scheduler scheduler(cl());
  scheduler.Start();
  MakePod("pinned", "local");
  ASSERT_TRUE(Eventually([&] { return !ScheduledMessage("pinned").empty(); }));
  EXPECT_EQ(ScheduledMessage("pinned"),
            "0/2 nodes are available: 2 node(s) had volume node affinity conflict. preemption: "
            "0/2 nodes are available: 2 Preemption is not helpful for scheduling.");
  AddNode("w3");
  ASSERT_TRUE(Eventually([&] { return NodeOf("pinned") == "w3"; }));
  scheduler.Stop();
}

}  // namespace
}  // namespace kin::controllers
