// e2e: the API server over HTTP, as `kin serve` runs it: REST semantics,
// watch, validation, the Service registry, concurrency and restarts.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "base/http_client.h"
#include "base/yaml.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin {
namespace {

using testing::ServeProcess;

struct Resp {
  int status;
  Json body;
  std::string raw;
};

class Api {
 public:
  explicit Api(const std::string& url) : c_({.base_url = url}) {}
  Resp Do(const std::string& method, const std::string& path, const Json& body = nullptr,
          const std::string& content_type = "application/json") {
    std::string b = body.is_null() ? "" : body.dump();
    return DoRaw(method, path, b, content_type);
  }
  Resp DoRaw(const std::string& method, const std::string& path, const std::string& body,
             const std::string& content_type = "application/json") {
    http::Headers h;
    if (!body.empty()) h.emplace("Content-Type", content_type);
    auto r = c_.Do(method, path, body, h);
    Json j = Json::parse(r.body, nullptr, false);
    return {r.status, j.is_discarded() ? Json(r.body) : j, r.body};
  }
  http::HttpClient& raw() { return c_; }

 private:
  http::HttpClient c_;
};

Json Pod(const std::string& name, Json labels = {{"app", "web"}}) {
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"name", name}, {"labels", labels}}},
          {"spec", {{"containers", {{{"name", "c"}, {"image", "busybox"}}}}}}};
}

Json Service(const std::string& name, Json spec) {
  return {
      {"apiVersion", "v1"}, {"kind", "Service"}, {"metadata", {{"name", name}}}, {"spec", spec}};
}

const char* kPods = "/api/v1/namespaces/default/pods";

class ApiE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    // The API's own semantics: no controller writes to what the tests make
    // (the scheduler would mark their pods unschedulable, the deployment
    // controller would write their status), except the namespace
    // controller, which deleting a namespace needs.
    serve_ = std::make_unique<ServeProcess>(
        std::vector<std::string>{"--watch-history", "50", "--controllers", "namespace"});
    api_ = std::make_unique<Api>(serve_->url());
  }
  std::unique_ptr<ServeProcess> serve_;
  std::unique_ptr<Api> api_;
};

TEST_F(ApiE2E, BuiltInNamespacesAndKubernetesService) {
  auto r = api_->Do("GET", "/api/v1/namespaces");
  ASSERT_EQ(r.status, 200) << r.raw;
  std::set<std::string> names;
  for (auto& ns : r.body["items"]) {
    names.insert(ns["metadata"]["name"]);
    EXPECT_EQ(ns["status"]["phase"], "Active");
  }
  EXPECT_EQ(names,
            (std::set<std::string>{"default", "kube-node-lease", "kube-public", "kube-system"}));
  auto svc = api_->Do("GET", "/api/v1/namespaces/default/services/kubernetes");
  ASSERT_EQ(svc.status, 200);
  EXPECT_EQ(svc.body["spec"]["clusterIP"], "10.96.0.1");
  auto ep = api_->Do("GET", "/api/v1/namespaces/default/endpoints/kubernetes");
  ASSERT_EQ(ep.status, 200);
  EXPECT_EQ(ep.body["subsets"][0]["ports"][0]["port"], serve_->port());
}

TEST_F(ApiE2E, CreateGetListAndMetadata) {
  auto c = api_->Do("POST", kPods, Pod("web-1"));
  ASSERT_EQ(c.status, 201) << c.raw;
  const Json& m = c.body["metadata"];
  EXPECT_EQ(m["namespace"], "default");
  EXPECT_EQ(m["uid"].get<std::string>().size(), 36u);
  EXPECT_FALSE(m["creationTimestamp"].get<std::string>().empty());
  EXPECT_EQ(m["generation"], 1);
  EXPECT_FALSE(m["resourceVersion"].get<std::string>().empty());
  EXPECT_EQ(m["managedFields"][0]["operation"], "Update");
  EXPECT_EQ(c.body["status"]["phase"], "Pending");
  // Defaults applied.
  EXPECT_EQ(c.body["spec"]["restartPolicy"], "Always");
  EXPECT_EQ(c.body["spec"]["dnsPolicy"], "ClusterFirst");

  auto dup = api_->Do("POST", kPods, Pod("web-1"));
  EXPECT_EQ(dup.status, 409);
  EXPECT_EQ(dup.body["reason"], "AlreadyExists");
  EXPECT_EQ(dup.body["message"], "pods \"web-1\" already exists");
  EXPECT_EQ(dup.body["details"]["name"], "web-1");

  Json gen = Pod("");
  gen["metadata"].erase("name");
  gen["metadata"]["generateName"] = "web-";
  auto g = api_->Do("POST", kPods, gen);
  ASSERT_EQ(g.status, 201) << g.raw;
  std::string gname = g.body["metadata"]["name"];
  EXPECT_EQ(gname.rfind("web-", 0), 0u);
  EXPECT_EQ(gname.size(), 9u);

  auto get = api_->Do("GET", std::string(kPods) + "/web-1");
  EXPECT_EQ(get.status, 200);
  EXPECT_EQ(get.body, c.body);
  auto nf = api_->Do("GET", std::string(kPods) + "/nope");
  EXPECT_EQ(nf.status, 404);
  EXPECT_EQ(nf.body["message"], "pods \"nope\" not found");
  EXPECT_EQ(nf.body["details"]["kind"], "pods");

  ASSERT_EQ(api_->Do("POST", kPods, Pod("db-1", {{"app", "db"}, {"tier", "back"}})).status, 201);
  auto all = api_->Do("GET", "/api/v1/pods");
  EXPECT_EQ(all.body["kind"], "PodList");
  EXPECT_EQ(all.body["items"].size(), 3u);
  auto web = api_->Do("GET", std::string(kPods) + "?labelSelector=app%3Dweb");
  EXPECT_EQ(web.body["items"].size(), 2u);
  auto notin = api_->Do("GET", std::string(kPods) + "?labelSelector=app%20notin%20(web),tier");
  ASSERT_EQ(notin.body["items"].size(), 1u);
  EXPECT_EQ(notin.body["items"][0]["metadata"]["name"], "db-1");
  auto byname = api_->Do("GET", "/api/v1/pods?fieldSelector=metadata.name%3Ddb-1");
  EXPECT_EQ(byname.body["items"].size(), 1u);
  auto phase = api_->Do("GET", "/api/v1/pods?fieldSelector=status.phase!%3DPending");
  EXPECT_EQ(phase.body["items"].size(), 0u);
}

TEST_F(ApiE2E, ListPagingWithLimitAndContinue) {
  for (int i = 0; i < 7; ++i)
    ASSERT_EQ(api_->Do("POST", kPods, Pod("p" + std::to_string(i))).status, 201);
  std::vector<std::string> seen;
  std::string cont;
  int pages = 0;
  do {
    std::string q = std::string(kPods) + "?limit=3" + (cont.empty() ? "" : "&continue=" + cont);
    auto r = api_->Do("GET", q);
    ASSERT_EQ(r.status, 200) << r.raw;
    for (auto& p : r.body["items"]) seen.push_back(p["metadata"]["name"]);
    cont = r.body["metadata"].value("continue", "");
    if (pages == 0) {
      EXPECT_EQ(r.body["metadata"]["remainingItemCount"], 4);
    }
    ++pages;
  } while (!cont.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen, (std::vector<std::string>{"p0", "p1", "p2", "p3", "p4", "p5", "p6"}));
  auto bad = api_->Do("GET", std::string(kPods) + "?continue=%21%21notatoken");
  EXPECT_EQ(bad.status, 400);
}

TEST_F(ApiE2E, UpdateConflictsGenerationAndStatus) {
  auto c = api_->Do("POST", "/apis/apps/v1/namespaces/default/deployments",
                    {{"apiVersion", "apps/v1"},
                     {"kind", "Deployment"},
                     {"metadata", {{"name", "d"}}},
                     {"spec",
                      {{"replicas", 1},
                       {"selector", {{"matchLabels", {{"app", "d"}}}}},
                       {"template",
                        {{"metadata", {{"labels", {{"app", "d"}}}}},
                         {"spec", {{"containers", {{{"name", "c"}, {"image", "busybox"}}}}}}}}}}});
  ASSERT_EQ(c.status, 201) << c.raw;
  Json d = c.body;
  // A label change is not a spec change: generation stays.
  d["metadata"]["labels"] = {{"x", "y"}};
  auto u1 = api_->Do("PUT", "/apis/apps/v1/namespaces/default/deployments/d", d);
  ASSERT_EQ(u1.status, 200) << u1.raw;
  EXPECT_EQ(u1.body["metadata"]["generation"], 1);
  // Stale resourceVersion: 409 Conflict.
  auto stale = api_->Do("PUT", "/apis/apps/v1/namespaces/default/deployments/d", d);
  EXPECT_EQ(stale.status, 409);
  EXPECT_EQ(stale.body["reason"], "Conflict");
  EXPECT_NE(stale.body["message"].get<std::string>().find("the object has been modified"),
            std::string::npos);
  // A spec change bumps generation; status sent to the main resource is ignored.
  Json d2 = u1.body;
  d2["spec"]["replicas"] = 3;
  d2["status"] = {{"replicas", 99}};
  auto u2 = api_->Do("PUT", "/apis/apps/v1/namespaces/default/deployments/d", d2);
  ASSERT_EQ(u2.status, 200) << u2.raw;
  EXPECT_EQ(u2.body["metadata"]["generation"], 2);
  EXPECT_FALSE(u2.body.contains("status") && u2.body["status"].contains("replicas"));
  // /status changes status only.
  Json d3 = u2.body;
  d3["status"] = {{"replicas", 3}, {"observedGeneration", 2}};
  d3["spec"]["replicas"] = 7;
  auto st = api_->Do("PUT", "/apis/apps/v1/namespaces/default/deployments/d/status", d3);
  ASSERT_EQ(st.status, 200) << st.raw;
  EXPECT_EQ(st.body["status"]["replicas"], 3);
  EXPECT_EQ(st.body["spec"]["replicas"], 3);
  EXPECT_EQ(st.body["metadata"]["generation"], 2);
  // Scale subresource.
  auto sc = api_->Do("GET", "/apis/apps/v1/namespaces/default/deployments/d/scale");
  ASSERT_EQ(sc.status, 200) << sc.raw;
  EXPECT_EQ(sc.body["kind"], "Scale");
  EXPECT_EQ(sc.body["spec"]["replicas"], 3);
  EXPECT_EQ(sc.body["status"]["selector"], "app=d");
  auto sp = api_->Do("PATCH", "/apis/apps/v1/namespaces/default/deployments/d/scale",
                     {{"spec", {{"replicas", 5}}}}, "application/merge-patch+json");
  ASSERT_EQ(sp.status, 200) << sp.raw;
  EXPECT_EQ(
      api_->Do("GET", "/apis/apps/v1/namespaces/default/deployments/d").body["spec"]["replicas"],
      5);
}

TEST_F(ApiE2E, EveryPatchType) {
  Json pod = Pod("p");
  pod["spec"]["containers"].push_back({{"name", "side"}, {"image", "busybox"}});
  ASSERT_EQ(api_->Do("POST", kPods, pod).status, 201);
  std::string path = std::string(kPods) + "/p";
  auto mp = api_->Do("PATCH", path, {{"metadata", {{"labels", {{"new", "1"}, {"app", nullptr}}}}}},
                     "application/merge-patch+json");
  ASSERT_EQ(mp.status, 200) << mp.raw;
  EXPECT_EQ(mp.body["metadata"]["labels"], Json({{"new", "1"}}));
  auto jp = api_->Do(
      "PATCH", path,
      Json::array({{{"op", "add"}, {"path", "/metadata/annotations"}, {"value", {{"a", "b"}}}},
                   {{"op", "test"}, {"path", "/metadata/name"}, {"value", "p"}}}),
      "application/json-patch+json");
  ASSERT_EQ(jp.status, 200) << jp.raw;
  EXPECT_EQ(jp.body["metadata"]["annotations"]["a"], "b");
  auto jbad = api_->Do("PATCH", path,
                       Json::array({{{"op", "test"}, {"path", "/metadata/name"}, {"value", "q"}}}),
                       "application/json-patch+json");
  EXPECT_EQ(jbad.status, 422) << jbad.raw;
  // Strategic merge: containers merge by name; only "side" changes image.
  auto smp = api_->Do("PATCH", path,
                      {{"spec", {{"containers", {{{"name", "side"}, {"image", "busybox:1.36"}}}}}}},
                      "application/strategic-merge-patch+json");
  ASSERT_EQ(smp.status, 200) << smp.raw;
  ASSERT_EQ(smp.body["spec"]["containers"].size(), 2u);
  EXPECT_EQ(smp.body["spec"]["containers"][0]["image"], "busybox");
  EXPECT_EQ(smp.body["spec"]["containers"][1]["image"], "busybox:1.36");
  auto unsupported = api_->DoRaw("PATCH", path, "{}", "text/plain");
  EXPECT_EQ(unsupported.status, 415);
}

TEST_F(ApiE2E, ServerSideApplyCreatesUpdatesAndConflicts) {
  std::string path = "/api/v1/namespaces/default/configmaps/cfg";
  Json cm = {{"apiVersion", "v1"},
             {"kind", "ConfigMap"},
             {"metadata", {{"name", "cfg"}}},
             {"data", {{"a", "1"}, {"b", "2"}}}};
  auto created =
      api_->Do("PATCH", path + "?fieldManager=alice", cm, "application/apply-patch+yaml");
  ASSERT_EQ(created.status, 201) << created.raw;
  EXPECT_EQ(created.body["data"]["a"], "1");
  bool alice_applies = false;
  for (auto& mf : created.body["metadata"]["managedFields"]) {
    if (mf["manager"] == "alice" && mf["operation"] == "Apply") alice_applies = true;
  }
  EXPECT_TRUE(alice_applies) << created.body["metadata"]["managedFields"].dump();
  // Bob applies a different value for a: conflict.
  Json bob = {{"apiVersion", "v1"},
              {"kind", "ConfigMap"},
              {"metadata", {{"name", "cfg"}}},
              {"data", {{"a", "9"}}}};
  auto conflict =
      api_->Do("PATCH", path + "?fieldManager=bob", bob, "application/apply-patch+yaml");
  EXPECT_EQ(conflict.status, 409) << conflict.raw;
  EXPECT_NE(conflict.body["message"].get<std::string>().find("conflict with \"alice\""),
            std::string::npos)
      << conflict.raw;
  auto forced =
      api_->Do("PATCH", path + "?fieldManager=bob&force=true", bob, "application/apply-patch+yaml");
  ASSERT_EQ(forced.status, 200) << forced.raw;
  EXPECT_EQ(forced.body["data"]["a"], "9");
  // Alice drops b from her config: b goes.
  Json alice2 = {{"apiVersion", "v1"},
                 {"kind", "ConfigMap"},
                 {"metadata", {{"name", "cfg"}}},
                 {"data", Json::object()}};
  auto dropped =
      api_->Do("PATCH", path + "?fieldManager=alice", alice2, "application/apply-patch+yaml");
  ASSERT_EQ(dropped.status, 200) << dropped.raw;
  EXPECT_FALSE(dropped.body["data"].contains("b")) << dropped.raw;
  EXPECT_EQ(dropped.body["data"]["a"], "9");
  auto nomgr = api_->Do("PATCH", path, alice2, "application/apply-patch+yaml");
  EXPECT_EQ(nomgr.status, 400);
}

TEST_F(ApiE2E, DeletionGracefulFinalizersAndPropagation) {
  // A pod on no node goes at once.
  ASSERT_EQ(api_->Do("POST", kPods, Pod("a")).status, 201);
  auto d = api_->Do("DELETE", std::string(kPods) + "/a");
  EXPECT_EQ(d.status, 200) << d.raw;
  EXPECT_EQ(d.body["kind"], "Pod") << d.raw;  // pods answer with the object
  EXPECT_EQ(api_->Do("GET", std::string(kPods) + "/a").status, 404);
  // Most kinds answer with a Success Status naming the resource (plural),
  // its group and uid, in kube-apiserver's bytes.
  const std::string cms = "/api/v1/namespaces/default/configmaps";
  auto plain = api_->Do("POST", cms, {{"metadata", {{"name", "plain"}}}});
  ASSERT_EQ(plain.status, 201);
  auto pd = api_->Do("DELETE", cms + "/plain");
  EXPECT_EQ(pd.status, 200);
  EXPECT_EQ(pd.raw,
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Success\","
            "\"details\":{\"name\":\"plain\",\"kind\":\"configmaps\",\"uid\":\"" +
                plain.body["metadata"]["uid"].get<std::string>() + "\"}}\n");
  const std::string roles = "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles";
  ASSERT_EQ(api_->Do("POST", roles, {{"metadata", {{"name", "r"}}}, {"rules", Json::array()}}).status,
            201);
  auto rd = api_->Do("DELETE", roles + "/r");
  EXPECT_EQ(rd.body["details"]["group"], "rbac.authorization.k8s.io") << rd.raw;
  EXPECT_EQ(rd.body["details"]["kind"], "roles") << rd.raw;
  // A dry run answers as the delete would, and deletes nothing.
  ASSERT_EQ(api_->Do("POST", cms, {{"metadata", {{"name", "dry"}}}}).status, 201);
  auto dry = api_->Do("DELETE", cms + "/dry?dryRun=All");
  EXPECT_EQ(dry.body["kind"], "Status") << dry.raw;
  EXPECT_EQ(api_->Do("GET", cms + "/dry").status, 200);
  // A pod on a node waits for its agent: deletionTimestamp + grace period.
  Json bound = Pod("b");
  bound["spec"]["nodeName"] = "node-1";
  ASSERT_EQ(api_->Do("POST", kPods, bound).status, 201);
  auto g = api_->Do("DELETE", std::string(kPods) + "/b", {{"gracePeriodSeconds", 20}});
  EXPECT_EQ(g.status, 202) << g.raw;
  auto still = api_->Do("GET", std::string(kPods) + "/b");
  ASSERT_EQ(still.status, 200);
  EXPECT_TRUE(still.body["metadata"].contains("deletionTimestamp"));
  EXPECT_EQ(still.body["metadata"]["deletionGracePeriodSeconds"], 20);
  // The agent confirms with grace 0.
  EXPECT_EQ(api_->Do("DELETE", std::string(kPods) + "/b", {{"gracePeriodSeconds", 0}}).status, 200);
  EXPECT_EQ(api_->Do("GET", std::string(kPods) + "/b").status, 404);
  // Finalizers hold an object until they are removed.
  Json cm = {{"metadata", {{"name", "held"}, {"finalizers", {"example.com/hold"}}}},
             {"data", {{"k", "v"}}}};
  ASSERT_EQ(api_->Do("POST", "/api/v1/namespaces/default/configmaps", cm).status, 201);
  auto fd = api_->Do("DELETE", "/api/v1/namespaces/default/configmaps/held");
  EXPECT_EQ(fd.status, 202);
  auto held = api_->Do("GET", "/api/v1/namespaces/default/configmaps/held");
  ASSERT_EQ(held.status, 200);
  EXPECT_TRUE(held.body["metadata"].contains("deletionTimestamp"));
  auto rm = api_->Do("PATCH", "/api/v1/namespaces/default/configmaps/held",
                     {{"metadata", {{"finalizers", nullptr}}}}, "application/merge-patch+json");
  EXPECT_EQ(rm.status, 200) << rm.raw;
  EXPECT_EQ(api_->Do("GET", "/api/v1/namespaces/default/configmaps/held").status, 404);
  // Foreground propagation is recorded as a finalizer for the garbage collector.
  ASSERT_EQ(
      api_->Do("POST", "/api/v1/namespaces/default/configmaps", {{"metadata", {{"name", "fg"}}}})
          .status,
      201);
  auto fg = api_->Do("DELETE", "/api/v1/namespaces/default/configmaps/fg",
                     {{"propagationPolicy", "Foreground"}});
  EXPECT_EQ(fg.status, 202);
  EXPECT_EQ(fg.body["metadata"]["finalizers"], Json::array({"foregroundDeletion"}));
  auto badpol = api_->Do("DELETE", "/api/v1/namespaces/default/configmaps/fg",
                         {{"propagationPolicy", "Sideways"}});
  EXPECT_EQ(badpol.status, 422);
  // deletecollection by label.
  ASSERT_EQ(api_->Do("POST", kPods, Pod("x1", {{"del", "yes"}})).status, 201);
  ASSERT_EQ(api_->Do("POST", kPods, Pod("x2", {{"del", "yes"}})).status, 201);
  ASSERT_EQ(api_->Do("POST", kPods, Pod("x3", {{"del", "no"}})).status, 201);
  auto dc = api_->Do("DELETE", std::string(kPods) + "?labelSelector=del%3Dyes");
  EXPECT_EQ(dc.status, 200) << dc.raw;
  // The list of what was deleted, as the objects were.
  EXPECT_EQ(dc.body["kind"], "PodList") << dc.raw;
  EXPECT_EQ(dc.body["items"].size(), 2u) << dc.raw;
  EXPECT_EQ(api_->Do("GET", std::string(kPods) + "?labelSelector=del").body["items"].size(), 1u);
}

TEST_F(ApiE2E, BindingAssignsANodeOnce) {
  ASSERT_EQ(api_->Do("POST", kPods, Pod("bind-me")).status, 201);
  Json binding = {{"apiVersion", "v1"},
                  {"kind", "Binding"},
                  {"metadata", {{"name", "bind-me"}}},
                  {"target", {{"apiVersion", "v1"}, {"kind", "Node"}, {"name", "node-a"}}}};
  auto b = api_->Do("POST", std::string(kPods) + "/bind-me/binding", binding);
  EXPECT_EQ(b.status, 201) << b.raw;
  auto pod = api_->Do("GET", std::string(kPods) + "/bind-me");
  EXPECT_EQ(pod.body["spec"]["nodeName"], "node-a");
  bool scheduled = false;
  for (auto& c : pod.body["status"]["conditions"]) {
    scheduled = scheduled || (c["type"] == "PodScheduled" && c["status"] == "True");
  }
  EXPECT_TRUE(scheduled) << pod.raw;
  auto again = api_->Do("POST", std::string(kPods) + "/bind-me/binding", binding);
  EXPECT_EQ(again.status, 409) << again.raw;
  // Moving a pod by update is refused, as in Kubernetes.
  Json moved = pod.body;
  moved["spec"]["nodeName"] = "node-b";
  EXPECT_EQ(api_->Do("PUT", std::string(kPods) + "/bind-me", moved).status, 422);
}

TEST_F(ApiE2E, NamespaceDeletionRemovesContent) {
  auto ns = api_->Do("POST", "/api/v1/namespaces", {{"metadata", {{"name", "tmp"}}}});
  ASSERT_EQ(ns.status, 201);
  EXPECT_EQ(ns.body["spec"]["finalizers"], Json::array({"kubernetes"}));
  EXPECT_EQ(ns.body["status"]["phase"], "Active");
  ASSERT_EQ(
      api_->Do("POST", "/api/v1/namespaces/tmp/configmaps", {{"metadata", {{"name", "c"}}}}).status,
      201);
  ASSERT_EQ(api_->Do("POST", "/api/v1/namespaces/tmp/pods", Pod("p")).status, 201);
  auto d = api_->Do("DELETE", "/api/v1/namespaces/tmp");
  EXPECT_TRUE(d.status == 200 || d.status == 202) << d.raw;
  bool gone =
      testing::Eventually([&] { return api_->Do("GET", "/api/v1/namespaces/tmp").status == 404; });
  EXPECT_TRUE(gone);
  EXPECT_EQ(api_->Do("GET", "/api/v1/namespaces/tmp/configmaps/c").status, 404);
  auto orphan =
      api_->Do("POST", "/api/v1/namespaces/nowhere/configmaps", {{"metadata", {{"name", "c"}}}});
  EXPECT_EQ(orphan.status, 404);
  EXPECT_EQ(orphan.body["message"], "namespaces \"nowhere\" not found");
}

// Reads a watch stream until `want` events arrived (or 10 s passed).
std::vector<Json> ReadWatch(http::HttpClient& c, const std::string& path, size_t want) {
  std::vector<Json> events;
  std::string buf;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  c.Stream("GET", path, [&](std::string_view d) {
    buf.append(d);
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      events.push_back(Json::parse(buf.substr(0, nl)));
      buf.erase(0, nl + 1);
    }
    return events.size() < want && std::chrono::steady_clock::now() < deadline;
  });
  return events;
}

TEST_F(ApiE2E, WatchFromResourceVersionWithSelectors) {
  auto first = api_->Do("POST", kPods, Pod("w1"));
  std::string rv = first.body["metadata"]["resourceVersion"];
  std::atomic<bool> done{false};
  std::vector<Json> events;
  std::thread watcher([&] {
    http::HttpClient c({.base_url = serve_->url()});
    events = ReadWatch(
        c, std::string(kPods) + "?watch=true&labelSelector=app%3Dweb&resourceVersion=" + rv, 4);
    done = true;
  });
  ASSERT_EQ(api_->Do("POST", kPods, Pod("w2")).status, 201);                      // ADDED
  ASSERT_EQ(api_->Do("POST", kPods, Pod("other", {{"app", "db"}})).status, 201);  // filtered
  ASSERT_EQ(
      api_->Do("PATCH", std::string(kPods) + "/w2", {{"metadata", {{"annotations", {{"a", "1"}}}}}},
               "application/merge-patch+json")
          .status,
      200);  // MODIFIED
  // w1 stops matching: DELETED for this watcher.
  ASSERT_EQ(
      api_->Do("PATCH", std::string(kPods) + "/w1", {{"metadata", {{"labels", {{"app", "gone"}}}}}},
               "application/merge-patch+json")
          .status,
      200);
  // "other" starts matching: ADDED.
  ASSERT_EQ(api_->Do("PATCH", std::string(kPods) + "/other",
                     {{"metadata", {{"labels", {{"app", "web"}}}}}}, "application/merge-patch+json")
                .status,
            200);
  watcher.join();
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0]["type"], "ADDED");
  EXPECT_EQ(events[0]["object"]["metadata"]["name"], "w2");
  EXPECT_EQ(events[1]["type"], "MODIFIED");
  EXPECT_EQ(events[2]["type"], "DELETED");
  EXPECT_EQ(events[2]["object"]["metadata"]["name"], "w1");
  EXPECT_EQ(events[3]["type"], "ADDED");
  EXPECT_EQ(events[3]["object"]["metadata"]["name"], "other");
}

TEST_F(ApiE2E, WatchWithoutResourceVersionStartsWithState) {
  ASSERT_EQ(api_->Do("POST", kPods, Pod("s1")).status, 201);
  http::HttpClient c({.base_url = serve_->url()});
  auto events = ReadWatch(c, std::string(kPods) + "?watch=1&timeoutSeconds=1", 100);
  ASSERT_GE(events.size(), 1u);
  EXPECT_EQ(events[0]["type"], "ADDED");
  EXPECT_EQ(events[0]["object"]["metadata"]["name"], "s1");
}

TEST_F(ApiE2E, WatchFromCompactedVersionGets410) {
  auto first = api_->Do("POST", kPods, Pod("c0"));
  std::string rv = first.body["metadata"]["resourceVersion"];
  for (int i = 1; i < 60; ++i) {  // more changes than --watch-history 50 keeps
    ASSERT_EQ(api_->Do("POST", "/api/v1/namespaces/default/configmaps",
                       {{"metadata", {{"name", "c" + std::to_string(i)}}}})
                  .status,
              201);
  }
  http::HttpClient c({.base_url = serve_->url()});
  auto events = ReadWatch(c, std::string(kPods) + "?watch=true&resourceVersion=" + rv, 1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["type"], "ERROR");
  EXPECT_EQ(events[0]["object"]["code"], 410);
  EXPECT_EQ(events[0]["object"]["reason"], "Expired");
  auto relist =
      api_->Do("GET", std::string(kPods) + "?continue=" +
                          std::string("eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MSwic3RhcnQiOiJhIn0="));
  EXPECT_EQ(relist.status, 410);
}

TEST_F(ApiE2E, BadInputGetsPreciseStatus) {
  auto malformed = api_->DoRaw("POST", kPods, "{\"metadata\": ");
  EXPECT_EQ(malformed.status, 400);
  EXPECT_EQ(malformed.body["kind"], "Status");
  auto yaml = api_->DoRaw("POST", "/api/v1/namespaces/default/configmaps",
                          "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\n",
                          "application/yaml");
  EXPECT_EQ(yaml.status, 201) << yaml.raw;
  Json wrong_kind = Pod("k");
  wrong_kind["kind"] = "Service";
  auto wk = api_->Do("POST", kPods, wrong_kind);
  EXPECT_EQ(wk.status, 400);
  EXPECT_NE(wk.raw.find("does not match the expected kind"), std::string::npos) << wk.raw;
  Json wrong_ns = Pod("n");
  wrong_ns["metadata"]["namespace"] = "kube-system";
  auto wn = api_->Do("POST", kPods, wrong_ns);
  EXPECT_EQ(wn.status, 400);
  EXPECT_NE(wn.raw.find("does not match the namespace"), std::string::npos) << wn.raw;
  Json big = {{"metadata", {{"name", "big"}}},
              {"data", {{"x", std::string(4 * 1024 * 1024, 'a')}}}};
  auto tl = api_->Do("POST", "/api/v1/namespaces/default/configmaps", big);
  EXPECT_EQ(tl.status, 413);
  EXPECT_EQ(tl.body["reason"], "RequestEntityTooLarge");
  EXPECT_EQ(api_->Do("GET", "/api/v1/namespaces/default/configmaps/big").status, 404);
  auto unknown = api_->Do("GET", "/api/v1/namespaces/default/widgets");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.body["reason"], "NotFound");
  auto badsel = api_->Do("GET", std::string(kPods) + "?labelSelector=app%20in%20web");
  EXPECT_EQ(badsel.status, 400);
  EXPECT_NE(badsel.raw.find("app in web"), std::string::npos) << badsel.raw;
  auto badfield = api_->Do("GET", std::string(kPods) + "?fieldSelector=spec.color%3Dred");
  EXPECT_EQ(badfield.status, 400);
  EXPECT_NE(badfield.raw.find("field label not supported: spec.color"), std::string::npos);
  Json invalid = Pod("Bad_Name");
  invalid["spec"]["containers"] = Json::array();
  auto inv = api_->Do("POST", kPods, invalid);
  EXPECT_EQ(inv.status, 422);
  EXPECT_EQ(inv.body["reason"], "Invalid");
  std::set<std::string> fields;
  for (auto& c : inv.body["details"]["causes"]) fields.insert(c["field"]);
  EXPECT_TRUE(fields.count("metadata.name")) << inv.raw;
  EXPECT_TRUE(fields.count("spec.containers")) << inv.raw;
  // The server lives on.
  EXPECT_EQ(api_->Do("GET", "/healthz").status, 200);
}

TEST_F(ApiE2E, ServiceClusterIPsAndNodePorts) {
  const char* svcs = "/api/v1/namespaces/default/services";
  Json ports = {{{"port", 80}, {"targetPort", 8080}}};
  auto a = api_->Do("POST", svcs, Service("a", {{"selector", {{"app", "a"}}}, {"ports", ports}}));
  ASSERT_EQ(a.status, 201) << a.raw;
  std::string ip = a.body["spec"]["clusterIP"];
  EXPECT_EQ(ip.rfind("10.96.", 0), 0u);
  EXPECT_NE(ip, "10.96.0.1");
  EXPECT_EQ(a.body["spec"]["clusterIPs"], Json::array({ip}));
  auto explicit_ip =
      api_->Do("POST", svcs, Service("dns", {{"clusterIP", "10.96.0.10"}, {"ports", ports}}));
  ASSERT_EQ(explicit_ip.status, 201) << explicit_ip.raw;
  EXPECT_EQ(explicit_ip.body["spec"]["clusterIP"], "10.96.0.10");
  auto taken =
      api_->Do("POST", svcs, Service("dns2", {{"clusterIP", "10.96.0.10"}, {"ports", ports}}));
  EXPECT_EQ(taken.status, 422);
  EXPECT_NE(taken.raw.find("provided IP is already allocated"), std::string::npos) << taken.raw;
  auto outside =
      api_->Do("POST", svcs, Service("far", {{"clusterIP", "10.97.0.10"}, {"ports", ports}}));
  EXPECT_EQ(outside.status, 422);
  EXPECT_NE(outside.raw.find("not in the valid range"), std::string::npos) << outside.raw;
  auto headless = api_->Do("POST", svcs, Service("h", {{"clusterIP", "None"}, {"ports", ports}}));
  ASSERT_EQ(headless.status, 201) << headless.raw;
  EXPECT_EQ(headless.body["spec"]["clusterIP"], "None");

  auto np = api_->Do("POST", svcs, Service("np", {{"type", "NodePort"}, {"ports", ports}}));
  ASSERT_EQ(np.status, 201) << np.raw;
  int port = np.body["spec"]["ports"][0]["nodePort"];
  EXPECT_GE(port, 30000);
  EXPECT_LE(port, 32767);
  Json fixed_ports = {{{"port", 80}, {"nodePort", 31000}}};
  ASSERT_EQ(
      api_->Do("POST", svcs, Service("np2", {{"type", "NodePort"}, {"ports", fixed_ports}})).status,
      201);
  auto dup = api_->Do("POST", svcs, Service("np3", {{"type", "NodePort"}, {"ports", fixed_ports}}));
  EXPECT_EQ(dup.status, 422);
  EXPECT_NE(dup.raw.find("provided port is already allocated"), std::string::npos) << dup.raw;
  Json bad_ports = {{{"port", 80}, {"nodePort", 40000}}};
  auto range = api_->Do("POST", svcs, Service("np4", {{"type", "NodePort"}, {"ports", bad_ports}}));
  EXPECT_EQ(range.status, 422);
  EXPECT_NE(range.raw.find("provided port is not in the valid range"), std::string::npos)
      << range.raw;
  // Released on delete: the same explicit IP and port can be had again.
  ASSERT_EQ(api_->Do("DELETE", std::string(svcs) + "/dns").status, 200);
  ASSERT_EQ(api_->Do("DELETE", std::string(svcs) + "/np2").status, 200);
  EXPECT_EQ(api_->Do("POST", svcs, Service("dns", {{"clusterIP", "10.96.0.10"}, {"ports", ports}}))
                .status,
            201);
  EXPECT_EQ(
      api_->Do("POST", svcs, Service("np2", {{"type", "NodePort"}, {"ports", fixed_ports}})).status,
      201);
}

TEST_F(ApiE2E, ConcurrentStaleWritersLoseNoUpdate) {
  ASSERT_EQ(api_->Do("POST", "/api/v1/namespaces/default/configmaps",
                     {{"metadata", {{"name", "counter"}}}, {"data", {{"n", "0"}}}})
                .status,
            201);
  const int kThreads = 8, kIncrements = 25;
  std::atomic<int> conflicts{0}, other{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&] {
      Api api(serve_->url());
      for (int i = 0; i < kIncrements;) {
        auto cur = api.Do("GET", "/api/v1/namespaces/default/configmaps/counter");
        Json next = cur.body;
        next["data"]["n"] = std::to_string(std::stoi(next["data"]["n"].get<std::string>()) + 1);
        auto put = api.Do("PUT", "/api/v1/namespaces/default/configmaps/counter", next);
        if (put.status == 200) {
          ++i;
        } else if (put.status == 409 && put.body["reason"] == "Conflict") {
          ++conflicts;
        } else {
          ++other;
          return;
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(other, 0);
  auto final_cm = api_->Do("GET", "/api/v1/namespaces/default/configmaps/counter");
  EXPECT_EQ(final_cm.body["data"]["n"], std::to_string(kThreads * kIncrements));
  EXPECT_GT(conflicts, 0) << "8 writers never collided: the test did not exercise conflicts";
}

TEST_F(ApiE2E, RestartKeepsStateResourceVersionsAndWatchContinuity) {
  auto a = api_->Do("POST", kPods, Pod("keep"));
  ASSERT_EQ(a.status, 201);
  std::string rv = a.body["metadata"]["resourceVersion"];
  auto svc = api_->Do("POST", "/api/v1/namespaces/default/services",
                      Service("s", {{"type", "NodePort"}, {"ports", {{{"port", 80}}}}}));
  ASSERT_EQ(svc.status, 201);
  std::string ip = svc.body["spec"]["clusterIP"];
  int node_port = svc.body["spec"]["ports"][0]["nodePort"];
  ASSERT_EQ(api_->Do("POST", kPods, Pod("after")).status, 201);
  std::string state = serve_->state_dir();
  int port = serve_->port();
  // Stop and start a new server on the same state directory.
  serve_->process().Signal(SIGTERM);
  ASSERT_TRUE(serve_->process().WaitFor(std::chrono::seconds(10)).has_value());
  SpawnOptions o;
  o.argv = {testing::KinBinary(), "serve",       "--port",        std::to_string(port),
            "--state-dir",        state + "/state", "--controllers", "namespace"};
  o.stdout_file = state + "/serve2.log";
  o.stderr_to_stdout = true;
  ChildProcess second = ChildProcess::Spawn(o);
  Api api2(serve_->url());
  ASSERT_TRUE(testing::Eventually([&] {
    try {
      return api2.Do("GET", "/healthz").status == 200;
    } catch (const std::exception&) {
      return false;
    }
  }));
  auto kept = api2.Do("GET", std::string(kPods) + "/keep");
  ASSERT_EQ(kept.status, 200);
  EXPECT_EQ(kept.body["metadata"]["resourceVersion"], rv);
  auto next = api2.Do("POST", kPods, Pod("new"));
  ASSERT_EQ(next.status, 201);
  EXPECT_GT(std::stoull(next.body["metadata"]["resourceVersion"].get<std::string>()),
            std::stoull(rv) + 2);
  // Allocations survive: the same IP and port are not handed out again.
  auto again = api2.Do("POST", "/api/v1/namespaces/default/services",
                       Service("s2", {{"clusterIP", ip}, {"ports", {{{"port", 80}}}}}));
  EXPECT_EQ(again.status, 422);
  auto again_port = api2.Do(
      "POST", "/api/v1/namespaces/default/services",
      Service("s3", {{"type", "NodePort"}, {"ports", {{{"port", 80}, {"nodePort", node_port}}}}}));
  EXPECT_EQ(again_port.status, 422);
  // A watch from before the restart replays what happened since.
  http::HttpClient c({.base_url = serve_->url()});
  auto events = ReadWatch(c, std::string(kPods) + "?watch=true&resourceVersion=" + rv, 2);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0]["object"]["metadata"]["name"], "after");
  EXPECT_EQ(events[1]["object"]["metadata"]["name"], "new");
  second.Stop(std::chrono::seconds(10));
}

TEST_F(ApiE2E, MetricsCountRequests) {
  api_->Do("GET", kPods);
  auto m = api_->raw().Get("/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("apiserver_request_total{verb=\"LIST\",resource=\"pods\",code=\"200\"}"),
            std::string::npos)
      << m.body.substr(0, 2000);
  EXPECT_NE(m.body.find("apiserver_request_duration_seconds_bucket"), std::string::npos);
  EXPECT_NE(m.body.find("apiserver_storage_size_bytes"), std::string::npos);
  EXPECT_NE(m.body.find("apiserver_longrunning_requests"), std::string::npos);
}

}  // namespace
}  // namespace kin
