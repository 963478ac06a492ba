// The eviction subresource through the HTTP front end, on a real registry:
// every path of EvictPod, and the discovery entry kubectl drain relies on.
#include "apiserver/eviction.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "apiserver/rest.h"
#include "base/error.h"
#include "client/resources.h"
#include "testing/e2e_support.h"

namespace kin::apiserver {
namespace {

using ::testing::HasSubstr;

class EvictionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StoreOptions so;
    so.index_fields = IndexFields;
    store_ = Store::Open(dir_.File("kin.db"), so);
    registry_ = std::make_unique<Registry>(*store_, RegistryOptions{});
    registry_->Bootstrap();
    rest_ = std::make_unique<RestHandler>(*registry_);
  }

  const ResourceInfo& Pdbs() { return *FindResource("policy", "v1", "poddisruptionbudgets"); }

  http::Response Call(const std::string& method, const std::string& path, const std::string& body,
                      const std::string& query = "") {
    http::Request req;
    req.method = method;
    req.path = path;
    req.target = query.empty() ? path : path + "?" + query;
    req.raw_query = query;
    if (query == "dryRun=All") req.query.emplace("dryRun", "All");
    req.body = body;
    if (!body.empty()) req.headers.emplace("Content-Type", "application/json");
    req.client_cn = "kubernetes-admin";
    req.client_groups = {"system:masters"};
    http::Response resp;
    rest_->Handle(req, resp);
    return resp;
  }

  http::Response Evict(const std::string& pod, const Json& delete_options = nullptr,
                       const std::string& query = "") {
    Json body = {{"apiVersion", "policy/v1"},
                 {"kind", "Eviction"},
                 {"metadata", {{"name", pod}, {"namespace", "default"}}}};
    if (!delete_options.is_null()) body["deleteOptions"] = delete_options;
    return Call("POST", "/api/v1/namespaces/default/pods/" + pod + "/eviction", body.dump(), query);
  }

  // A pod with app=web; phase Running and Ready unless told otherwise.
  void MakePod(const std::string& name, const std::string& phase = "Running", bool ready = true) {
    Json pod = {{"apiVersion", "v1"},
                {"kind", "Pod"},
                {"metadata", {{"name", name}, {"labels", {{"app", "web"}}}}},
                {"spec", {{"containers", {{{"name", "c"}, {"image", "busybox"}}}}}}};
    Json created = registry_->Create(PodsResource(), "default", pod, WriteOptions{});
    created["status"] = {
        {"phase", phase},
        {"conditions", {{{"type", "Ready"}, {"status", ready ? "True" : "False"}}}}};
    registry_->Update(PodsResource(), "default", name, created, "status", WriteOptions{});
  }

  // A PDB over app=web with the status the disruption controller would write.
  void MakePdb(const std::string& name, int allowed, int current, int desired,
               const Json& selector = {{"matchLabels", {{"app", "web"}}}},
               const std::string& unhealthy_policy = "") {
    Json pdb = {{"apiVersion", "policy/v1"},
                {"kind", "PodDisruptionBudget"},
                {"metadata", {{"name", name}}},
                {"spec", {{"minAvailable", desired}, {"selector", selector}}}};
    if (!unhealthy_policy.empty()) pdb["spec"]["unhealthyPodEvictionPolicy"] = unhealthy_policy;
    Json created = registry_->Create(Pdbs(), "default", pdb, WriteOptions{});
    created["status"] = {{"observedGeneration", created["metadata"]["generation"]},
                         {"disruptionsAllowed", allowed},
                         {"currentHealthy", current},
                         {"desiredHealthy", desired},
                         {"expectedPods", current}};
    registry_->Update(Pdbs(), "default", name, created, "status", WriteOptions{});
  }

  Json Pdb(const std::string& name) { return registry_->Get(Pdbs(), "default", name); }
  bool PodTerminating(const std::string& name) {
    try {
      return registry_->Get(PodsResource(), "default", name)["metadata"].contains(
          "deletionTimestamp");
    } catch (const Error& e) {
      return e.code() == Code::kNotFound;
    }
  }

  testing::TempDir dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<RestHandler> rest_;
};

TEST_F(EvictionTest, WithoutABudgetThePodIsDeleted) {
  MakePod("a");
  http::Response r = Evict("a");
  EXPECT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(Json::parse(r.body)["status"], "Success");
  EXPECT_TRUE(PodTerminating("a"));
}

TEST_F(EvictionTest, ABudgetThatAllowsItIsSpentInTheSameWrite) {
  MakePod("a");
  MakePdb("web", 1, 3, 2);
  http::Response r = Evict("a");
  EXPECT_EQ(r.status, 201) << r.body;
  EXPECT_TRUE(PodTerminating("a"));
  Json status = Pdb("web")["status"];
  EXPECT_EQ(status["disruptionsAllowed"], 0);
  EXPECT_TRUE(status["disruptedPods"].contains("a")) << status.dump();
  ASSERT_EQ(status["conditions"].size(), 1u);
  EXPECT_EQ(status["conditions"][0]["type"], "DisruptionAllowed");
  EXPECT_EQ(status["conditions"][0]["status"], "False");
  EXPECT_EQ(status["conditions"][0]["reason"], "InsufficientPods");
}

TEST_F(EvictionTest, ABudgetAtZeroRefusesWith429AndUpstreamsWords) {
  MakePod("a");
  MakePdb("web", 0, 2, 2);
  http::Response r = Evict("a");
  EXPECT_EQ(r.status, 429) << r.body;
  Json s = Json::parse(r.body);
  EXPECT_EQ(s["kind"], "Status");
  EXPECT_EQ(s["reason"], "TooManyRequests");
  EXPECT_EQ(s["message"], "Cannot evict pod as it would violate the pod's disruption budget.");
  EXPECT_EQ(s["code"], 429);
  ASSERT_EQ(s["details"]["causes"].size(), 1u);
  EXPECT_EQ(s["details"]["causes"][0]["reason"], "DisruptionBudget");
  EXPECT_EQ(s["details"]["causes"][0]["message"],
            "The disruption budget web needs 2 healthy pods and has 2 currently");
  EXPECT_FALSE(s["details"].contains("retryAfterSeconds"));
  EXPECT_FALSE(PodTerminating("a"));
  EXPECT_FALSE(Pdb("web")["status"].contains("disruptedPods"));
}

TEST_F(EvictionTest, ABudgetNotYetObservedIsStillBeingProcessed) {
  MakePod("a");
  MakePdb("web", 1, 3, 2);
  // A spec change bumps the generation past what the controller observed.
  Json pdb = Pdb("web");
  pdb["spec"]["minAvailable"] = 1;
  registry_->Update(Pdbs(), "default", "web", pdb, "", WriteOptions{});
  http::Response r = Evict("a");
  EXPECT_EQ(r.status, 429) << r.body;
  EXPECT_EQ(r.headers.count("Retry-After"), 1u);
  Json s = Json::parse(r.body);
  EXPECT_EQ(s["details"]["retryAfterSeconds"], 10);
  EXPECT_EQ(s["details"]["causes"][0]["message"],
            "The disruption budget web is still being processed by the server.");
  EXPECT_FALSE(PodTerminating("a"));
}

TEST_F(EvictionTest, NegativeAllowanceIsForbidden) {
  MakePod("a");
  MakePdb("web", 1, 3, 2);
  Json pdb = Pdb("web");
  pdb["status"]["disruptionsAllowed"] = -1;
  registry_->Update(Pdbs(), "default", "web", pdb, "status", WriteOptions{});
  http::Response r = Evict("a");
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_THAT(Json::parse(r.body)["message"].get<std::string>(),
              HasSubstr("pdb disruptions allowed is negative"));
}

TEST_F(EvictionTest, MoreThanOneBudgetIsA500) {
  MakePod("a");
  MakePdb("one", 1, 3, 2);
  MakePdb("two", 1, 3, 2);
  http::Response r = Evict("a");
  EXPECT_EQ(r.status, 500) << r.body;
  EXPECT_EQ(Json::parse(r.body)["message"],
            "This pod has more than one PodDisruptionBudget, which the eviction subresource "
            "does not support.");
  EXPECT_FALSE(PodTerminating("a"));
}

TEST_F(EvictionTest, EmptyOrMissingSelectorsGuardNothing) {
  MakePod("a");
  MakePdb("empty", 0, 0, 1, Json::object());
  MakePdb("other", 0, 0, 1, {{"matchLabels", {{"app", "db"}}}});
  EXPECT_EQ(Evict("a").status, 201);
  EXPECT_TRUE(PodTerminating("a"));
}

TEST_F(EvictionTest, PendingAndFinishedPodsIgnoreTheBudget) {
  MakePdb("web", 0, 0, 2);
  MakePod("pending", "Pending", false);
  MakePod("done", "Succeeded", false);
  EXPECT_EQ(Evict("pending").status, 201);
  EXPECT_EQ(Evict("done").status, 201);
  EXPECT_TRUE(PodTerminating("pending"));
  EXPECT_TRUE(PodTerminating("done"));
  EXPECT_EQ(Pdb("web")["status"]["disruptionsAllowed"], 0);
}

TEST_F(EvictionTest, UnreadyPodsGoFreeOnlyWhenTheBudgetIsHealthyOrAlwaysAllow) {
  // Healthy budget (3 >= 2): the unready pod costs nothing.
  MakePod("sick", "Running", false);
  MakePdb("web", 0, 3, 2);
  EXPECT_EQ(Evict("sick").status, 201);
  EXPECT_TRUE(PodTerminating("sick"));
  EXPECT_EQ(Pdb("web")["status"]["disruptionsAllowed"], 0);
}

TEST_F(EvictionTest, UnreadyPodsOfAnUnhealthyBudgetNeedAllowance) {
  MakePod("sick", "Running", false);
  MakePdb("web", 0, 1, 2);
  EXPECT_EQ(Evict("sick").status, 429);
  EXPECT_FALSE(PodTerminating("sick"));
}

TEST_F(EvictionTest, AlwaysAllowLetsUnreadyPodsGo) {
  MakePod("sick", "Running", false);
  MakePdb("web", 0, 1, 2, {{"matchLabels", {{"app", "web"}}}}, "AlwaysAllow");
  EXPECT_EQ(Evict("sick").status, 201);
  EXPECT_TRUE(PodTerminating("sick"));
}

TEST_F(EvictionTest, DryRunDecidesButWritesNothing) {
  MakePod("a");
  MakePdb("web", 1, 3, 2);
  EXPECT_EQ(Evict("a", nullptr, "dryRun=All").status, 201);
  EXPECT_FALSE(PodTerminating("a"));
  EXPECT_EQ(Pdb("web")["status"]["disruptionsAllowed"], 1);
  EXPECT_EQ(Evict("a", {{"dryRun", {"All"}}}).status, 201);
  EXPECT_FALSE(PodTerminating("a"));
}

TEST_F(EvictionTest, DeleteOptionsAndPreconditionsApply) {
  MakePod("a");
  http::Response stale = Evict("a", {{"preconditions", {{"resourceVersion", "1"}}}});
  EXPECT_EQ(stale.status, 409) << stale.body;
  EXPECT_FALSE(PodTerminating("a"));
  EXPECT_EQ(Evict("a", {{"gracePeriodSeconds", 0}}).status, 201);
  // Grace period 0 of a pod on no node removes it at once.
  EXPECT_THROW(registry_->Get(PodsResource(), "default", "a"), Error);
}

TEST_F(EvictionTest, EvictedPodsCarryTheDisruptionTargetCondition) {
  MakePod("a");
  // A bound pod waits for its node to stop it, so it stays to be looked at.
  registry_->BindPod("default", "a",
                     {{"apiVersion", "v1"},
                      {"kind", "Binding"},
                      {"metadata", {{"name", "a"}}},
                      {"target", {{"kind", "Node"}, {"name", "n1"}}}});
  EXPECT_EQ(Evict("a").status, 201);
  Json after = registry_->Get(PodsResource(), "default", "a");
  EXPECT_TRUE(after["metadata"].contains("deletionTimestamp"));
  bool found = false;
  for (const auto& c : after["status"]["conditions"]) {
    if (c["type"] != "DisruptionTarget") continue;
    found = true;
    EXPECT_EQ(c["status"], "True");
    EXPECT_EQ(c["reason"], "EvictionByEvictionAPI");
    EXPECT_EQ(c["message"], "Eviction API: evicting");
  }
  EXPECT_TRUE(found) << after["status"].dump();
}

TEST_F(EvictionTest, BadRequestsAndMissingPods) {
  MakePod("a");
  http::Response mismatch = Call("POST", "/api/v1/namespaces/default/pods/a/eviction",
                                 R"({"apiVersion":"policy/v1","kind":"Eviction",
                                     "metadata":{"name":"b"}})");
  EXPECT_EQ(mismatch.status, 400);
  EXPECT_EQ(Json::parse(mismatch.body)["message"],
            "name in URL does not match name in Eviction object");
  EXPECT_EQ(Evict("nope").status, 404);
}

TEST_F(EvictionTest, DiscoveryNamesTheEvictionGroupVersionForKubectlDrain) {
  http::Response r = Call("GET", "/api/v1", "");
  ASSERT_EQ(r.status, 200);
  bool found = false;
  Json list = Json::parse(r.body);
  for (const auto& res : list["resources"]) {
    if (res["name"] != "pods/eviction") continue;
    found = true;
    EXPECT_EQ(res["group"], "policy");
    EXPECT_EQ(res["version"], "v1");
    EXPECT_EQ(res["kind"], "Eviction");
  }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace kin::apiserver
