// The disruption controller against a real registry: PDB status from pods
// and their controllers' scale, disruptedPods expiry and stale
// DisruptionTarget conditions on a FakeClock.
#include "controllers/disruption.h"

#include <gtest/gtest.h>

#include "base/error.h"
#include "client/object.h"
#include "controllers/clock.h"
#include "controllers/registry_fixture.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin::controllers {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;
using std::chrono::system_clock;
using testing::Eventually;

TEST(ScaledValueTest, IntegersAndPercentagesRoundedAsUpstream) {
  EXPECT_EQ(ScaledValue(Json(3), 10, true), 3);
  EXPECT_EQ(ScaledValue(Json("50%"), 3, true), 2);
  EXPECT_EQ(ScaledValue(Json("50%"), 3, false), 1);
  EXPECT_EQ(ScaledValue(Json("25%"), 4, true), 1);
  EXPECT_EQ(ScaledValue(Json("25%"), 5, true), 2);
  EXPECT_EQ(ScaledValue(Json("100%"), 7, true), 7);
  EXPECT_EQ(ScaledValue(Json("0%"), 7, true), 0);
  EXPECT_EQ(ScaledValue(Json("half"), 7, true), std::nullopt);
  EXPECT_EQ(ScaledValue(Json("%"), 7, true), std::nullopt);
  EXPECT_EQ(ScaledValue(Json(nullptr), 7, true), std::nullopt);
}

class DisruptionTest : public RegistryTest {
 protected:
  void SetUp() override {
    wall_start_ = system_clock::now();
    informers_ = std::make_unique<SharedInformerFactory>(*client_);
    DisruptionOptions o;
    o.clock = &clock_;
    o.now = [this] { return Now(); };
    controller_ = std::make_unique<DisruptionController>(*informers_, *client_, o);
    informers_->Start();
    controller_->Start();
  }
  void TearDown() override {
    controller_->Stop();
    informers_->Stop();
  }
  system_clock::time_point Now() const {
    return wall_start_ +
           std::chrono::duration_cast<system_clock::duration>(clock_.Now() - Clock::TimePoint());
  }
  const ResourceInfo& Pdbs() { return *FindResource("policy", "v1", "poddisruptionbudgets"); }

  Json MakePod(const std::string& name, bool ready, const Json& owner = nullptr,
               const std::string& app = "web") {
    Json pod = {{"apiVersion", "v1"},
                {"kind", "Pod"},
                {"metadata", {{"name", name}, {"labels", {{"app", app}}}}},
                {"spec", {{"containers", {{{"name", "c"}, {"image", "busybox"}}}}}}};
    if (!owner.is_null()) pod["metadata"]["ownerReferences"] = Json::array({owner});
    cl().Create(PodsResource(), "default", pod);
    SetReady(name, ready);
    return cl().Get(PodsResource(), "default", name);
  }
  void SetReady(const std::string& name, bool ready) {
    PatchPodStatus(cl(), "default", name, PodStatus(ready));
  }
  // Creates an owner and returns a controller reference to it.
  Json MakeOwner(const ResourceInfo& r, const std::string& name, int replicas,
                 const Json& owner = nullptr) {
    Json tmpl = {{"metadata", {{"labels", {{"app", "web"}}}}},
                 {"spec", {{"containers", {{{"name", "c"}, {"image", "busybox"}}}}}}};
    Json spec = {{"replicas", replicas}, {"template", tmpl}};
    if (r.kind == "ReplicationController") {
      spec["selector"] = {{"app", "web"}};
    } else {
      spec["selector"] = {{"matchLabels", {{"app", "web"}}}};
    }
    Json obj = {{"apiVersion", r.api_version()},
                {"kind", r.kind},
                {"metadata", {{"name", name}}},
                {"spec", spec}};
    if (!owner.is_null()) obj["metadata"]["ownerReferences"] = Json::array({owner});
    Json created = cl().Create(r, "default", obj);
    return object::NewControllerRef(created, r.api_version(), r.kind);
  }
  void MakePdb(const std::string& name, const Json& spec) {
    cl().Create(Pdbs(), "default",
                {{"apiVersion", "policy/v1"},
                 {"kind", "PodDisruptionBudget"},
                 {"metadata", {{"name", name}}},
                 {"spec", spec}});
  }
  Json Status(const std::string& name) {
    Json pdb = cl().Get(Pdbs(), "default", name);
    return pdb.contains("status") && pdb["status"].is_object() ? pdb["status"] : Json::object();
  }
  // "expected/desired/healthy/allowed" once the controller observed the spec.
  std::string Counts(const std::string& name) {
    Json pdb = cl().Get(Pdbs(), "default", name);
    const Json& s = pdb.value("status", Json::object());
    if (s.value("observedGeneration", 0) != pdb["metadata"].value("generation", 0)) return "-";
    return std::to_string(s.value("expectedPods", -1)) + "/" +
           std::to_string(s.value("desiredHealthy", -1)) + "/" +
           std::to_string(s.value("currentHealthy", -1)) + "/" +
           std::to_string(s.value("disruptionsAllowed", -1));
  }
  std::string Condition(const std::string& name) {
    for (const auto& c : Status(name).value("conditions", Json::array())) {
      if (c["type"] == "DisruptionAllowed") {
        return c["status"].get<std::string>() + "/" + c["reason"].get<std::string>();
      }
    }
    return "none";
  }

  FakeClock clock_;
  system_clock::time_point wall_start_;
  std::unique_ptr<SharedInformerFactory> informers_;
  std::unique_ptr<DisruptionController> controller_;
};

TEST_F(DisruptionTest, IntegerMinAvailableCountsReadyPods) {
  for (const char* p : {"a", "b", "c"}) MakePod(p, true);
  MakePod("other", true, nullptr, "db");
  MakePdb("web", {{"minAvailable", 2}, {"selector", {{"matchLabels", {{"app", "web"}}}}}});
  ASSERT_TRUE(Eventually([&] { return Counts("web") == "3/2/3/1"; })) << Counts("web");
  EXPECT_EQ(Condition("web"), "True/SufficientPods");
  SetReady("a", false);
  ASSERT_TRUE(Eventually([&] { return Counts("web") == "3/2/2/0"; })) << Counts("web");
  EXPECT_EQ(Condition("web"), "False/InsufficientPods");
  cl().Delete(PodsResource(), "default", "b", DeleteOptions{.grace_period_seconds = 0});
  ASSERT_TRUE(Eventually([&] { return Counts("web") == "2/2/1/0"; })) << Counts("web");
}

TEST_F(DisruptionTest, NilSelectorSelectsNothingAndEmptySelectsAll) {
  MakePod("a", true);
  MakePod("b", true, nullptr, "db");
  MakePdb("none", {{"minAvailable", 0}});
  MakePdb("all", {{"minAvailable", 1}, {"selector", Json::object()}});
  ASSERT_TRUE(Eventually([&] { return Counts("none") == "0/0/0/0"; })) << Counts("none");
  ASSERT_TRUE(Eventually([&] { return Counts("all") == "2/1/2/1"; })) << Counts("all");
}

// An empty selector's PDB made before its pods: the pods' events bring it
// up to date (they did not, and a clean-clone run under load caught it).
TEST_F(DisruptionTest, EmptySelectorFollowsPodsMadeAfterIt) {
  MakePdb("all", {{"minAvailable", 1}, {"selector", Json::object()}});
  ASSERT_TRUE(Eventually([&] { return Counts("all") == "0/1/0/0"; })) << Counts("all");
  MakePod("a", true);
  MakePod("b", true, nullptr, "db");
  ASSERT_TRUE(Eventually([&] { return Counts("all") == "2/1/2/1"; })) << Counts("all");
}

TEST_F(DisruptionTest, PercentagesUseTheControllersScaleRoundedUp) {
  // A Deployment of 4 (through its ReplicaSet): maxUnavailable 25% -> 1.
  const ResourceInfo& deploys = *FindResource("apps", "v1", "deployments");
  const ResourceInfo& rss = *FindResource("apps", "v1", "replicasets");
  Json dref = MakeOwner(deploys, "web", 4);
  Json rsref = MakeOwner(rss, "web-1", 3, dref);
  MakePod("a", true, rsref);
  MakePod("b", true, rsref);
  MakePod("c", false, rsref);
  MakePdb("web", {{"maxUnavailable", "25%"}, {"selector", {{"matchLabels", {{"app", "web"}}}}}});
  ASSERT_TRUE(Eventually([&] { return Counts("web") == "4/3/2/0"; })) << Counts("web");
  SetReady("c", true);
  ASSERT_TRUE(Eventually([&] { return Counts("web") == "4/3/3/0"; })) << Counts("web");
  // minAvailable 50% of 4 -> 2: one disruption allowed.
  UpdateRetryingConflicts(Pdbs(), "default", "web", [](Json& pdb) {
    pdb["spec"] = {{"minAvailable", "50%"}, {"selector", {{"matchLabels", {{"app", "web"}}}}}};
  });
  ASSERT_TRUE(Eventually([&] { return Counts("web") == "4/2/3/1"; })) << Counts("web");
}

TEST_F(DisruptionTest, ReplicationControllersAndStatefulSetsScaleToo) {
  const ResourceInfo& rcs = *FindResource("", "v1", "replicationcontrollers");
  Json rcref = MakeOwner(rcs, "rc", 3);
  MakePod("a", true, rcref);
  MakePod("b", true, rcref);
  MakePdb("web", {{"minAvailable", "50%"}, {"selector", {{"matchLabels", {{"app", "web"}}}}}});
  // ceil(1.5) = 2 of 3 expected, 2 healthy: nothing to spare.
  ASSERT_TRUE(Eventually([&] { return Counts("web") == "3/2/2/0"; })) << Counts("web");
  const ResourceInfo& sts = *FindResource("apps", "v1", "statefulsets");
  Json stsref = MakeOwner(sts, "db", 2);
  MakePod("db-0", true, stsref, "db");
  MakePod("db-1", true, stsref, "db");
  MakePdb("db", {{"maxUnavailable", 1}, {"selector", {{"matchLabels", {{"app", "db"}}}}}});
  ASSERT_TRUE(Eventually([&] { return Counts("db") == "2/1/2/1"; })) << Counts("db");
}

TEST_F(DisruptionTest, UnknownControllersFailSafe) {
  Json ref = {{"apiVersion", "example.com/v1"},
              {"kind", "Widget"},
              {"name", "w"},
              {"uid", "1234"},
              {"controller", true}};
  MakePod("a", true, ref);
  MakePdb("web", {{"maxUnavailable", 1}, {"selector", {{"matchLabels", {{"app", "web"}}}}}});
  ASSERT_TRUE(Eventually([&] { return Condition("web") == "False/SyncFailed"; }))
      << Status("web").dump();
  EXPECT_EQ(Status("web")["disruptionsAllowed"], 0);
  Json status = Status("web");
  for (const auto& c : status["conditions"]) {
    EXPECT_EQ(c["message"], "found no controllers for pod \"a\"");
  }
}

TEST_F(DisruptionTest, UnmanagedPodsCountNothingForPercentages) {
  MakePod("a", true);
  MakePdb("web", {{"maxUnavailable", "50%"}, {"selector", {{"matchLabels", {{"app", "web"}}}}}});
  ASSERT_TRUE(Eventually([&] { return Counts("web") == "0/0/1/0"; })) << Counts("web");
}

TEST_F(DisruptionTest, DisruptedPodsAreNotHealthyUntilTheyExpire) {
  for (const char* p : {"a", "b", "c"}) MakePod(p, true);
  MakePdb("web", {{"minAvailable", 1}, {"selector", {{"matchLabels", {{"app", "web"}}}}}});
  ASSERT_TRUE(Eventually([&] { return Counts("web") == "3/1/3/2"; })) << Counts("web");
  // What the eviction handler records; the pod was then not deleted.
  UpdateRetryingConflicts(
      Pdbs(), "default", "web",
      [&](Json& pdb) {
        pdb["status"]["disruptedPods"] = {{"a", object::FormatRfc3339(Now())}};
        pdb["status"]["disruptionsAllowed"] = 1;
      },
      "status");
  ASSERT_TRUE(Eventually([&] { return Counts("web") == "3/1/2/1"; })) << Counts("web");
  EXPECT_TRUE(Status("web")["disruptedPods"].contains("a"));
  // Two minutes on, the entry expires and the pod counts again.
  clock_.Advance(minutes(2) + seconds(1));
  ASSERT_TRUE(Eventually([&] { return Counts("web") == "3/1/3/2"; })) << Counts("web");
  EXPECT_FALSE(Status("web").contains("disruptedPods"));
}

TEST_F(DisruptionTest, StaleDisruptionTargetConditionsAreReset) {
  MakePod("a", true);
  cl().Patch(PodsResource(), "default", "a", PatchType::kMerge,
             {{"status",
               {{"conditions",
                 {{{"type", "Ready"}, {"status", "True"}},
                  {{"type", "DisruptionTarget"},
                   {"status", "True"},
                   {"reason", "EvictionByEvictionAPI"},
                   {"message", "Eviction API: evicting"},
                   {"lastTransitionTime", object::FormatRfc3339(Now())}}}}}}},
             "status");
  auto target = [&] {
    Json pod = cl().Get(PodsResource(), "default", "a");
    for (const auto& c : pod["status"]["conditions"]) {
      if (c["type"] == "DisruptionTarget") return c["status"].get<std::string>();
    }
    return std::string("none");
  };
  ASSERT_EQ(target(), "True");
  clock_.Advance(minutes(2) + seconds(1));
  EXPECT_TRUE(Eventually([&] { return target() == "False"; })) << target();
}

}  // namespace
}  // namespace kin::controllers
