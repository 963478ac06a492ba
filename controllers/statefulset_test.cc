// The StatefulSet controller: pod identity, ordered and parallel pod
// management, scale-down order, recreation, rolling updates with a
// partition, OnDelete, status; against a real registry with the real
// scheduler and a fake kubelet.
#include "controllers/statefulset.h"

#include <gtest/gtest.h>

#include <mutex>

#include "controllers/sets_testing.h"

namespace kin::controllers {
namespace {

using sets_testing::FakeKubelet;
using sets_testing::SetsTest;
using testing::Eventually;

const ResourceInfo& Sts() { return *FindResource("apps", "v1", "statefulsets"); }

Json Set(const std::string& name, int replicas, const std::string& policy = "OrderedReady") {
  return {{"apiVersion", "apps/v1"},
          {"kind", "StatefulSet"},
          {"metadata", {{"name", name}, {"namespace", "default"}}},
          {"spec",
           {{"replicas", replicas},
            {"serviceName", name + "-svc"},
            {"podManagementPolicy", policy},
            {"selector", {{"matchLabels", {{"app", name}}}}},
            {"template",
             {{"metadata", {{"labels", {{"app", name}}}}},
              {"spec",
               {{"containers", Json::array({{{"name", "c"}, {"image", "busybox"}}})}}}}}}}};
}

TEST(StatefulPodOrdinalTest, Parses) {
  EXPECT_EQ(StatefulPodOrdinal("web", "web-0"), 0);
  EXPECT_EQ(StatefulPodOrdinal("web", "web-12"), 12);
  EXPECT_EQ(StatefulPodOrdinal("web", "web-"), -1);
  EXPECT_EQ(StatefulPodOrdinal("web", "web-01"), -1);
  EXPECT_EQ(StatefulPodOrdinal("web", "web-x"), -1);
  EXPECT_EQ(StatefulPodOrdinal("web", "webb-1"), -1);
  EXPECT_EQ(StatefulPodOrdinal("web", "web-a-1"), -1);
}

TEST(NewStatefulSetPodTest, Identity) {
  Json set = Set("web", 3);
  set["metadata"]["uid"] = "u1";
  set["spec"]["template"]["spec"]["volumes"] =
      Json::array({{{"name", "data"}, {"emptyDir", Json::object()}},
                   {{"name", "cfg"}, {"emptyDir", Json::object()}}});
  set["spec"]["volumeClaimTemplates"] = Json::array({{{"metadata", {{"name", "data"}}}}});
  Json pod = NewStatefulSetPod(set, 2, "web-abc");
  EXPECT_EQ(pod["metadata"]["name"], "web-2");
  EXPECT_EQ(pod["spec"]["hostname"], "web-2");
  EXPECT_EQ(pod["spec"]["subdomain"], "web-svc");
  EXPECT_EQ(pod["metadata"]["labels"],
            Json({{"app", "web"},
                  {"statefulset.kubernetes.io/pod-name", "web-2"},
                  {"apps.kubernetes.io/pod-index", "2"},
                  {"controller-revision-hash", "web-abc"}}));
  EXPECT_EQ(pod["metadata"]["ownerReferences"][0]["uid"], "u1");
  EXPECT_EQ(pod["spec"]["volumes"],
            Json::array({{{"name", "data"}, {"persistentVolumeClaim", {{"claimName", "data-web-2"}}}},
                         {{"name", "cfg"}, {"emptyDir", Json::object()}}}));
  set["spec"].erase("serviceName");
  EXPECT_FALSE(NewStatefulSetPod(set, 0, "r")["spec"].contains("subdomain"));
}

class StatefulSetTest : public SetsTest {
 protected:
  void StartAll(bool auto_ready) {
    AddNode(SetsTest::Node("w1"));
    AddRuntime(auto_ready);
    manager().Emplace<StatefulSetController>(manager().informers(), cl());
    // Records, for each pod add, whether the previous ordinal was Ready then,
    // and the order of deletions.
    InformerHandlers h;
    h.on_add = [this](const Json& p) { OnAdd(p); };
    h.on_delete = [this](const Json& p) {
      std::lock_guard l(mu_);
      deleted_.push_back(object::Name(p));
    };
    auto& pods = manager().informers().For(PodsResource());
    pods_ = &pods;
    handlers_ = pods.AddHandlers(std::move(h));
    manager().Start();
  }
  // The handlers go before the manager does: its informers may still
  // deliver events while it is destroyed, and OnAdd reads through it.
  void TearDown() override {
    if (pods_) pods_->RemoveHandlers(handlers_);
    SetsTest::TearDown();
  }
  void OnAdd(const Json& p) {
    std::string name = object::Name(p);
    auto dash = name.rfind('-');
    int64_t ord = std::stoll(name.substr(dash + 1));
    std::lock_guard l(mu_);
    created_.push_back(name);
    if (ord == 0) return;
    auto prev = manager().informers().For(PodsResource()).Lookup(
        "default", name.substr(0, dash + 1) + std::to_string(ord - 1));
    if (!prev || !IsPodReady(*prev)) early_.push_back(name);
  }
  Json Get(const std::string& name) { return cl().Get(Sts(), "default", name); }
  // The pod, or null when there is none (pods come and go under the tests' polls).
  Json Pod(const std::string& name) {
    try {
      return cl().Get(PodsResource(), "default", name);
    } catch (const Error& e) {
      if (e.code() != Code::kNotFound) throw;
      return Json();
    }
  }
  bool Exists(const std::string& name) { return !Pod(name).is_null(); }
  void MakeReady(const std::string& name) {
    FakeKubelet::SetStatus(cl(), "default", name, "Running", true);
  }
  // What `kubectl rollout status sts/NAME` waits for (RollingUpdate with a
  // partition, as the API defaults it).
  bool RolledOut(const std::string& name) {
    Json s = Get(name);
    const Json st = StatusOf(s);
    int64_t replicas = s["spec"]["replicas"];
    int64_t partition = s["spec"]["updateStrategy"]["rollingUpdate"].value("partition", 0);
    // (and the status has caught up with the spec's replicas)
    return st.value("observedGeneration", 0) >= s["metadata"].value("generation", 0) &&
           st.value("replicas", 0) == replicas &&
           st.value("readyReplicas", 0) >= replicas &&
           st.value("updatedReplicas", 0) >= replicas - partition;
  }
  std::vector<std::string> Created() {
    std::lock_guard l(mu_);
    return created_;
  }
  std::vector<std::string> Deleted() {
    std::lock_guard l(mu_);
    return deleted_;
  }
  void SetImage(const std::string& name, const std::string& image) {
    UpdateRetryingConflicts(Sts(), "default", name, [&](Json& s) {
      s["spec"]["template"]["spec"]["containers"][0]["image"] = image;
    });
  }
  std::string ImageOf(const std::string& pod) {
    Json p = Pod(pod);
    return p.is_null() ? "" : p["spec"]["containers"][0].value("image", "");
  }

  std::mutex mu_;
  std::vector<std::string> created_, deleted_, early_;
  Informer* pods_ = nullptr;
  Informer::HandlerId handlers_{};
};

TEST_F(StatefulSetTest, OrderedReadyCreatesOneAtATime) {
  StartAll(/*auto_ready=*/false);
  cl().Create(Sts(), "default", Set("web", 3));
  for (int i = 0; i < 3; ++i) {
    std::string name = "web-" + std::to_string(i);
    ASSERT_TRUE(Eventually([&] {
      Json p = Pod(name);
      return !p.is_null() && p["status"].value("phase", "") == "Running";
    })) << name;
    // The next one does not appear while this one is not Ready.
    EXPECT_FALSE(Exists("web-" + std::to_string(i + 1)));
    ASSERT_TRUE(Eventually([&] { return StatusOf(Get("web")).value("replicas", 0) == i + 1; }));
    EXPECT_FALSE(Exists("web-" + std::to_string(i + 1)));
    MakeReady(name);
  }
  ASSERT_TRUE(Eventually([&] { return RolledOut("web"); })) << Get("web").dump();
  EXPECT_EQ(Created(), (std::vector<std::string>{"web-0", "web-1", "web-2"}));
  {
    std::lock_guard l(mu_);
    EXPECT_TRUE(early_.empty());
  }
  Json st = StatusOf(Get("web"));
  EXPECT_EQ(st["replicas"], 3);
  EXPECT_EQ(st["readyReplicas"], 3);
  EXPECT_EQ(st["availableReplicas"], 3);
  EXPECT_EQ(st["currentReplicas"], 3);
  EXPECT_EQ(st["updatedReplicas"], 3);
  EXPECT_EQ(st["currentRevision"], st["updateRevision"]);
  EXPECT_EQ(st["observedGeneration"], 1);
  Json p1 = Pod("web-1");
  EXPECT_EQ(p1["spec"]["hostname"], "web-1");
  EXPECT_EQ(p1["spec"]["subdomain"], "web-svc");
  EXPECT_EQ(p1["metadata"]["labels"]["controller-revision-hash"], st["updateRevision"]);
  EXPECT_EQ(EventsWith("SuccessfulCreate")[0]["message"],
            "create Pod web-0 in StatefulSet web successful");
}

TEST_F(StatefulSetTest, ScalesDownFromTheHighestOrdinal) {
  StartAll(true);
  cl().Create(Sts(), "default", Set("web", 4));
  ASSERT_TRUE(Eventually([&] { return RolledOut("web"); }));
  cl().Patch(Sts(), "default", "web", PatchType::kMerge, {{"spec", {{"replicas", 1}}}});
  ASSERT_TRUE(Eventually([&] { return PodsOf("web").size() == 1 && RolledOut("web"); }));
  EXPECT_TRUE(Exists("web-0"));
  EXPECT_EQ(Deleted(), (std::vector<std::string>{"web-3", "web-2", "web-1"}));
  EXPECT_EQ(StatusOf(Get("web"))["replicas"], 1);
  // Back up: the same names again.
  cl().Patch(Sts(), "default", "web", PatchType::kMerge, {{"spec", {{"replicas", 3}}}});
  ASSERT_TRUE(Eventually([&] { return RolledOut("web") && PodsOf("web").size() == 3; }));
  EXPECT_TRUE(Exists("web-2"));
}

TEST_F(StatefulSetTest, ParallelCreatesAllAtOnce) {
  StartAll(/*auto_ready=*/false);
  cl().Create(Sts(), "default", Set("web", 3, "Parallel"));
  // All three exist before any is Ready; Ready once the kubelet ran them.
  ASSERT_TRUE(Eventually([&] {
    auto pods = PodsOf("web");
    return pods.size() == 3 && std::all_of(pods.begin(), pods.end(), [](const Json& p) {
      return p["status"].value("phase", "") == "Running";
    });
  }));
  for (int i = 0; i < 3; ++i) MakeReady("web-" + std::to_string(i));
  ASSERT_TRUE(Eventually([&] { return RolledOut("web"); }));
}

// volumeClaimTemplates: a claim <template>-<set>-<ordinal> with the set's
// selector labels for each pod, which refers to it; the claims stay when the
// set goes (persistentVolumeClaimRetentionPolicy defaults to Retain).
TEST_F(StatefulSetTest, ClaimTemplatesMakeClaimsThatOutliveTheSet) {
  StartAll(/*auto_ready=*/false);
  Json set = Set("web", 2, "Parallel");
  set["spec"]["volumeClaimTemplates"] = Json::array(
      {{{"metadata", {{"name", "www"}}},
        {"spec",
         {{"accessModes", {"ReadWriteOnce"}}, {"resources", {{"requests", {{"storage", "1Gi"}}}}}}}}});
  cl().Create(Sts(), "default", set);
  const ResourceInfo& claims = *FindResource("", "v1", "persistentvolumeclaims");
  auto claim = [&](const std::string& name) -> Json {
    try {
      return cl().Get(claims, "default", name);
    } catch (const Error& e) {
      if (e.code() != Code::kNotFound) throw;
      return Json();
    }
  };
  ASSERT_TRUE(Eventually([&] { return Exists("web-0") && Exists("web-1"); }));
  for (int i = 0; i < 2; ++i) {
    const std::string name = "www-web-" + std::to_string(i);
    Json c = claim(name);
    ASSERT_FALSE(c.is_null()) << name;
    EXPECT_EQ(c["metadata"]["labels"]["app"], "web");
    EXPECT_EQ(c["spec"]["resources"]["requests"]["storage"], "1Gi");
    Json vols = Pod("web-" + std::to_string(i))["spec"]["volumes"];
    ASSERT_EQ(vols.size(), 1u);
    EXPECT_EQ(vols[0]["name"], "www");
    EXPECT_EQ(vols[0]["persistentVolumeClaim"]["claimName"], name);
  }
  cl().Delete(Sts(), "default", "web");
  ASSERT_TRUE(Eventually([&] {
    try {
      Get("web");
      return false;
    } catch (const Error&) {
      return true;
    }
  }));
  EXPECT_FALSE(claim("www-web-0").is_null());
  EXPECT_FALSE(claim("www-web-1").is_null());
  // Retain: no reference of the set's or a pod's for a collector to follow.
  EXPECT_FALSE(claim("www-web-0")["metadata"].contains("ownerReferences"));
}

// persistentVolumeClaimRetentionPolicy Delete/Delete: claims of live
// ordinals belong to the set, those of scaled-down ones to their pod (set
// before the pod is deleted), so the garbage collector (not running here)
// removes them with it; a pod is not made again while its claim still
// belongs to the previous pod.
class StatefulSetClaimsTest : public StatefulSetTest {
 protected:
  const ResourceInfo& Claims() { return *FindResource("", "v1", "persistentvolumeclaims"); }
  Json SetWithClaims(const std::string& when_deleted, const std::string& when_scaled, int n) {
    Json set = Set("web", n);
    set["spec"]["volumeClaimTemplates"] = Json::array(
        {{{"metadata", {{"name", "www"}}},
          {"spec",
           {{"accessModes", {"ReadWriteOnce"}},
            {"resources", {{"requests", {{"storage", "1Gi"}}}}}}}}});
    set["spec"]["persistentVolumeClaimRetentionPolicy"] = {{"whenDeleted", when_deleted},
                                                           {"whenScaled", when_scaled}};
    // On the node already: the claims stay unbound (no binder runs here),
    // which would keep the scheduler from placing the pods.
    set["spec"]["template"]["spec"]["nodeName"] = "w1";
    return set;
  }
  // The claim's ownerReferences as "Kind/name/uid" (uid "" when it is the
  // given one's), or {"<none>"} when the claim is gone.
  std::vector<std::string> Owners(const std::string& claim) {
    Json c;
    try {
      c = cl().Get(Claims(), "default", claim);
    } catch (const Error& e) {
      if (e.code() != Code::kNotFound) throw;
      return {"<none>"};
    }
    std::vector<std::string> out;
    for (const Json& r : c["metadata"].value("ownerReferences", Json::array())) {
      EXPECT_TRUE(r.value("controller", false)) << r.dump();
      EXPECT_TRUE(r.value("blockOwnerDeletion", false)) << r.dump();
      out.push_back(r.value("kind", "") + "/" + r.value("name", "") + "/" + r.value("uid", ""));
    }
    return out;
  }
  // What the garbage collector would do once the pod is gone.
  void CollectClaim(const std::string& claim) { cl().Delete(Claims(), "default", claim); }
  // The controller has acted on the set's current spec.
  bool Observed() {
    Json s = Get("web");
    return StatusOf(s).value("observedGeneration", 0) >= s["metadata"].value("generation", 0);
  }
};

TEST_F(StatefulSetClaimsTest, DeleteOnScaleDownAndOnDeletion) {
  StartAll(true);
  cl().Create(Sts(), "default", SetWithClaims("Delete", "Delete", 3));
  ASSERT_TRUE(Eventually([&] { return RolledOut("web"); }));
  const std::string set_uid = Get("web")["metadata"]["uid"];
  for (const char* c : {"www-web-0", "www-web-1", "www-web-2"}) {
    EXPECT_EQ(Owners(c), (std::vector<std::string>{"StatefulSet/web/" + set_uid})) << c;
  }
  const std::string pod1 = Pod("web-1")["metadata"]["uid"];
  const std::string pod2 = Pod("web-2")["metadata"]["uid"];
  cl().Patch(Sts(), "default", "web", PatchType::kMerge, {{"spec", {{"replicas", 1}}}});
  ASSERT_TRUE(Eventually([&] { return PodsOf("web").size() == 1 && RolledOut("web"); }));
  EXPECT_EQ(Owners("www-web-2"), (std::vector<std::string>{"Pod/web-2/" + pod2}));
  EXPECT_EQ(Owners("www-web-1"), (std::vector<std::string>{"Pod/web-1/" + pod1}));
  EXPECT_EQ(Owners("www-web-0"), (std::vector<std::string>{"StatefulSet/web/" + set_uid}));
  // Back up before the collector removed the old claims: web-1 waits.
  cl().Patch(Sts(), "default", "web", PatchType::kMerge, {{"spec", {{"replicas", 3}}}});
  ASSERT_TRUE(Eventually([&] { return Observed(); }));
  EXPECT_FALSE(Exists("web-1"));
  CollectClaim("www-web-1");
  CollectClaim("www-web-2");
  ASSERT_TRUE(Eventually([&] { return RolledOut("web") && PodsOf("web").size() == 3; }));
  EXPECT_EQ(Owners("www-web-1"), (std::vector<std::string>{"StatefulSet/web/" + set_uid}));
  EXPECT_EQ(Owners("www-web-2"), (std::vector<std::string>{"StatefulSet/web/" + set_uid}));
}

TEST_F(StatefulSetClaimsTest, DeleteOnScaleDownOnlyAndPolicyChanges) {
  StartAll(true);
  cl().Create(Sts(), "default", SetWithClaims("Retain", "Delete", 2));
  ASSERT_TRUE(Eventually([&] { return RolledOut("web"); }));
  // Retain on deletion: live ordinals' claims have no owner.
  EXPECT_EQ(Owners("www-web-0"), std::vector<std::string>{});
  const std::string pod1 = Pod("web-1")["metadata"]["uid"];
  cl().Patch(Sts(), "default", "web", PatchType::kMerge, {{"spec", {{"replicas", 1}}}});
  ASSERT_TRUE(Eventually([&] { return PodsOf("web").size() == 1 && RolledOut("web"); }));
  EXPECT_EQ(Owners("www-web-1"), (std::vector<std::string>{"Pod/web-1/" + pod1}));
  // The policy changed on a running set: its live claims are fixed, with
  // upstream's SuccessfulUpdate Event for the pod.
  cl().Patch(Sts(), "default", "web", PatchType::kMerge,
             {{"spec", {{"persistentVolumeClaimRetentionPolicy", {{"whenDeleted", "Delete"}}}}}});
  const std::string set_uid = Get("web")["metadata"]["uid"];
  ASSERT_TRUE(Eventually([&] {
    return Owners("www-web-0") == std::vector<std::string>{"StatefulSet/web/" + set_uid};
  }));
  ASSERT_TRUE(Eventually([&] {
    for (const Json& e : EventsWithReason(cl(), "SuccessfulUpdate", "web")) {
      if (e.value("message", "") == "update Pod web-0 in StatefulSet web successful") return true;
    }
    return false;
  }));
  // Back to Retain/Retain: our references go, another owner's stay.
  UpdateRetryingConflicts(Claims(), "default", "www-web-0", [](Json& c) {
    c["metadata"]["ownerReferences"].push_back(
        {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"name", "keep"}, {"uid", "cm-uid"}});
  });
  cl().Patch(Sts(), "default", "web", PatchType::kMerge,
             {{"spec",
               {{"persistentVolumeClaimRetentionPolicy",
                 {{"whenDeleted", "Retain"}, {"whenScaled", "Retain"}}}}}});
  ASSERT_TRUE(Eventually([&] {
    Json c = cl().Get(Claims(), "default", "www-web-0");
    return c["metadata"]["ownerReferences"] ==
           Json::array({{{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"name", "keep"},
                         {"uid", "cm-uid"}}});
  }));
}

TEST_F(StatefulSetTest, DeletedAndFailedPodsComeBackUnderTheSameName) {
  StartAll(true);
  cl().Create(Sts(), "default", Set("web", 2));
  ASSERT_TRUE(Eventually([&] { return RolledOut("web"); }));
  std::string uid = Pod("web-1")["metadata"]["uid"];
  cl().Delete(PodsResource(), "default", "web-1");
  ASSERT_TRUE(Eventually([&] {
    Json p = Pod("web-1");
    return !p.is_null() && p["metadata"]["uid"] != uid && RolledOut("web");
  }));
  EXPECT_EQ(Pod("web-1")["spec"]["hostname"], "web-1");
  uid = Pod("web-0")["metadata"]["uid"];
  FakeKubelet::SetStatus(cl(), "default", "web-0", "Failed", false);
  ASSERT_TRUE(Eventually([&] {
    Json p = Pod("web-0");
    return !p.is_null() && p["metadata"]["uid"] != uid && RolledOut("web");
  }));
}

TEST_F(StatefulSetTest, RestoresIdentityLabels) {
  StartAll(true);
  cl().Create(Sts(), "default", Set("web", 1));
  ASSERT_TRUE(Eventually([&] { return RolledOut("web"); }));
  cl().Patch(PodsResource(), "default", "web-0", PatchType::kMerge,
             {{"metadata", {{"labels", {{"apps.kubernetes.io/pod-index", nullptr}}}}}});
  ASSERT_TRUE(Eventually([&] {
    Json p = Pod("web-0");
    return !p.is_null() && p["metadata"]["labels"].value("apps.kubernetes.io/pod-index", "") == "0";
  }));
}

TEST_F(StatefulSetTest, RollingUpdateFromTheHighestOrdinalWithPartition) {
  StartAll(true);
  Json s = Set("web", 3);
  s["spec"]["updateStrategy"] = {{"type", "RollingUpdate"}, {"rollingUpdate", {{"partition", 1}}}};
  cl().Create(Sts(), "default", s);
  ASSERT_TRUE(Eventually([&] { return RolledOut("web"); }));
  std::string first_rev = StatusOf(Get("web"))["updateRevision"];
  SetImage("web", "busybox:2");
  ASSERT_TRUE(Eventually([&] {
    return Exists("web-1") && Exists("web-2") && ImageOf("web-2") == "busybox:2" &&
           ImageOf("web-1") == "busybox:2" && RolledOut("web");
  })) << Get("web").dump();
  EXPECT_EQ(ImageOf("web-0"), "busybox");  // below the partition
  Json st = StatusOf(Get("web"));
  EXPECT_EQ(st["currentRevision"], first_rev);
  EXPECT_NE(st["updateRevision"], first_rev);
  EXPECT_EQ(st["updatedReplicas"], 2);
  EXPECT_EQ(st["currentReplicas"], 1);
  std::set<std::string> revisions;
  Json revs = cl().List(*ControllerRevisionsResource(), "default");
  for (const Json& r : revs["items"]) revisions.insert(r["metadata"]["name"]);
  EXPECT_EQ(revisions, (std::set<std::string>{st["currentRevision"], st["updateRevision"]}));
  // web-2 went before web-1.
  auto d = Deleted();
  ASSERT_GE(d.size(), 2u);
  EXPECT_EQ(d[0], "web-2");
  EXPECT_EQ(d[1], "web-1");
  // A pod below the partition that is deleted comes back at the current revision.
  cl().Delete(PodsResource(), "default", "web-0");
  ASSERT_TRUE(Eventually([&] { return Deleted().size() == 3 && RolledOut("web") && Exists("web-0"); }));
  EXPECT_EQ(ImageOf("web-0"), "busybox");
  // Partition 0: the rest follows, and the revision becomes current.
  cl().Patch(Sts(), "default", "web", PatchType::kMerge,
             {{"spec", {{"updateStrategy", {{"rollingUpdate", {{"partition", 0}}}}}}}});
  ASSERT_TRUE(Eventually([&] {
    Json st = StatusOf(Get("web"));
    return Exists("web-0") && ImageOf("web-0") == "busybox:2" && RolledOut("web") &&
           st["currentRevision"] == st["updateRevision"] && st.value("currentReplicas", 0) == 3;
  })) << Get("web").dump();
}

TEST_F(StatefulSetTest, OnDeleteUpdatesOnlyDeletedPods) {
  StartAll(true);
  Json s = Set("web", 2);
  s["spec"]["updateStrategy"] = {{"type", "OnDelete"}};
  cl().Create(Sts(), "default", s);
  ASSERT_TRUE(Eventually([&] { return StatusOf(Get("web")).value("readyReplicas", 0) == 2; }));
  SetImage("web", "busybox:2");
  ASSERT_TRUE(Eventually([&] {
    Json st = StatusOf(Get("web"));
    return st.value("observedGeneration", 0) == 2 && st["currentRevision"] != st["updateRevision"];
  }));
  EXPECT_EQ(ImageOf("web-0"), "busybox");
  EXPECT_EQ(ImageOf("web-1"), "busybox");
  cl().Delete(PodsResource(), "default", "web-0");
  ASSERT_TRUE(Eventually([&] {
    return Exists("web-0") && ImageOf("web-0") == "busybox:2" &&
           StatusOf(Get("web")).value("updatedReplicas", 0) == 1;
  }));
  EXPECT_EQ(ImageOf("web-1"), "busybox");
}

}  // namespace
}  // namespace kin::controllers
