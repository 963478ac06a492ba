// The in-process client and the informer over it: the path every
// controller and node agent inside `kin serve` takes.
#include "apiserver/local_client.h"

#include <gtest/gtest.h>

#include "apiserver/apiserver.h"
#include "apiserver/registry.h"
#include "apiserver/rest.h"
#include "base/error.h"
#include "base/http_client.h"
#include "client/events.h"
#include "client/informer.h"
#include "client/resources.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin::apiserver {
namespace {

class LocalClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StoreOptions so;
    so.index_fields = IndexFields;
    store_ = Store::Open(dir_.File("kin.db"), so);
    registry_ = std::make_unique<Registry>(*store_, RegistryOptions{});
    registry_->Bootstrap();
    client_ = std::make_unique<LocalClient>(*registry_, "test-controller");
  }
  testing::TempDir dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<LocalClient> client_;
  Client& cl() { return *client_; }  // the interface, with its default arguments
};

Json Cm(const std::string& name) {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata", {{"name", name}}},
          {"data", {{"k", "v"}}}};
}

const ResourceInfo& ConfigMaps() { return *FindResource("", "v1", "configmaps"); }

TEST_F(LocalClientTest, CrudWithTheSameSemanticsAsHttp) {
  Json c = cl().Create(ConfigMaps(), "default", Cm("a"));
  EXPECT_EQ(c["metadata"]["managedFields"][0]["manager"], "test-controller");
  try {
    cl().Create(ConfigMaps(), "default", Cm("a"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kAlreadyExists);
  }
  Json stale = c;
  c["data"]["k"] = "w";
  Json u = cl().Update(ConfigMaps(), "default", c);
  EXPECT_EQ(u["data"]["k"], "w");
  stale["data"]["k"] = "x";
  try {
    cl().Update(ConfigMaps(), "default", stale);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kConflict);
  }
  Json p = cl().Patch(ConfigMaps(), "default", "a", PatchType::kMerge, {{"data", {{"n", "1"}}}});
  EXPECT_EQ(p["data"]["n"], "1");
  EXPECT_EQ(cl().List(ConfigMaps(), "default")["items"].size(), 1u);
  cl().Delete(ConfigMaps(), "default", "a");
  EXPECT_THROW(cl().Get(ConfigMaps(), "default", "a"), Error);
}

// As kube-apiserver's namespace strategy: an update or an apply of a
// namespace keeps spec.finalizers (`kubectl apply --server-side` over a
// client-side apply prunes them from what it applies: without `kubernetes`
// the namespace went at once when deleted, its content left behind); only
// namespaces/NAME/finalize changes them.
TEST_F(LocalClientTest, NamespaceFinalizersChangeOnlyThroughFinalize) {
  const ResourceInfo& namespaces = NamespacesResource();
  const Json kubernetes = Json::array({"kubernetes"});
  Json ns = {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "team"}}}};
  Json created = cl().Create(namespaces, "", ns);
  EXPECT_EQ(created["spec"]["finalizers"], kubernetes);
  created["spec"]["finalizers"] = Json::array({"other"});
  EXPECT_EQ(cl().Update(namespaces, "", created)["spec"]["finalizers"], kubernetes);

  WriteOptions apply;
  apply.field_manager = "kubectl";
  Json with_finalizers = ns;
  with_finalizers["spec"]["finalizers"] = kubernetes;
  cl().Patch(namespaces, "", "team", PatchType::kApply, with_finalizers, "", apply);
  // Applied again without them: the apply prunes them, the strategy keeps them.
  Json applied = cl().Patch(namespaces, "", "team", PatchType::kApply, ns, "", apply);
  EXPECT_EQ(applied["spec"]["finalizers"], kubernetes);

  Json finalize = cl().Get(namespaces, "", "team");
  finalize["spec"]["finalizers"] = Json::array();
  Json finalized = cl().Update(namespaces, "", finalize, "finalize");
  EXPECT_EQ(finalized["spec"].value("finalizers", Json::array()), Json::array());
}

// Re-applying an unchanged configuration whose atomic rules the server
// defaults (scope "*") is no write (kube-apiserver's
// IgnoreManagedFieldsTimestampsTransformer): resourceVersion and the
// managedFields times stay. A real change still moves both.
TEST_F(LocalClientTest, ReapplyThatOnlyMovesManagedFieldsTimesIsNoWrite) {
  const ResourceInfo& configs =
      *FindResource("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations");
  Json config = Json::parse(R"({"apiVersion":"admissionregistration.k8s.io/v1",
      "kind":"ValidatingWebhookConfiguration","metadata":{"name":"deny"},
      "webhooks":[{"name":"deny.example.com","sideEffects":"None",
        "admissionReviewVersions":["v1"],
        "clientConfig":{"url":"https://example.com/deny"},
        "rules":[{"operations":["CREATE"],"apiGroups":[""],"apiVersions":["v1"],
                  "resources":["pods"]}]}]})");
  WriteOptions apply;
  apply.field_manager = "kubectl";
  Json first = cl().Patch(configs, "", "deny", PatchType::kApply, config, "", apply);
  EXPECT_EQ(first["webhooks"][0]["rules"][0]["scope"], "*");
  // Times are whole seconds: make the first apply's older than the next
  // (with a label, or the write would change nothing but times).
  for (Json& entry : first["metadata"]["managedFields"]) entry["time"] = "2020-01-01T00:00:00Z";
  first["metadata"]["labels"]["team"] = "a";
  first = cl().Update(configs, "", first);
  ASSERT_NE(first["metadata"]["managedFields"].dump().find("2020-01-01T00:00:00Z"),
            std::string::npos);
  Json again = cl().Patch(configs, "", "deny", PatchType::kApply, config, "", apply);
  EXPECT_EQ(again["metadata"]["resourceVersion"], first["metadata"]["resourceVersion"]);
  EXPECT_EQ(again["metadata"]["managedFields"], first["metadata"]["managedFields"]);

  config["webhooks"][0]["timeoutSeconds"] = 5;
  Json changed = cl().Patch(configs, "", "deny", PatchType::kApply, config, "", apply);
  EXPECT_NE(changed["metadata"]["resourceVersion"], first["metadata"]["resourceVersion"]);
  EXPECT_EQ(changed["webhooks"][0]["timeoutSeconds"], 5);
}

TEST_F(LocalClientTest, InformerFollowsChangesWithoutPolling) {
  std::vector<std::string> log;
  std::mutex mu;
  InformerHandlers h;
  h.on_add = [&](const Json& o) {
    std::lock_guard l(mu);
    log.push_back("add " + o["metadata"]["name"].get<std::string>());
  };
  h.on_update = [&](const Json&, const Json& o) {
    std::lock_guard l(mu);
    log.push_back("update " + o["metadata"]["name"].get<std::string>());
  };
  h.on_delete = [&](const Json& o) {
    std::lock_guard l(mu);
    log.push_back("delete " + o["metadata"]["name"].get<std::string>());
  };
  cl().Create(ConfigMaps(), "default", Cm("before"));
  Informer inf(cl(), ConfigMaps(), InformerOptions{.ns = "default"}, h);
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(std::chrono::seconds(5)));
  cl().Create(ConfigMaps(), "default", Cm("after"));
  cl().Patch(ConfigMaps(), "default", "after", PatchType::kMerge, {{"data", {{"z", "1"}}}});
  cl().Delete(ConfigMaps(), "default", "before");
  ASSERT_TRUE(testing::Eventually([&] {
    std::lock_guard l(mu);
    return log.size() >= 4;
  }));
  inf.Stop();
  std::lock_guard l(mu);
  EXPECT_EQ(log,
            (std::vector<std::string>{"add before", "add after", "update after", "delete before"}));
  EXPECT_FALSE(inf.Get("default", "before").has_value());
}

TEST_F(LocalClientTest, EventRecorderWritesAndCorrelatesEvents) {
  Json cm = cl().Create(ConfigMaps(), "default", Cm("watched"));
  EventRecorder rec(cl(), "test-controller", "node-1");
  rec.Normal(cm, "Synced", "synced the config");
  rec.Normal(cm, "Synced", "synced the config");  // a repeat: count 2, same Event
  rec.Warning(cm, "Failed", "could not do it");
  ListOptions lo;
  lo.field_selector = "involvedObject.name=watched,involvedObject.namespace=default";
  Json events = cl().List(EventsResource(), "default", lo);
  ASSERT_EQ(events["items"].size(), 2u) << events.dump();
  std::map<std::string, Json> by_reason;
  for (auto& e : events["items"]) by_reason[e["reason"]] = e;
  EXPECT_EQ(by_reason["Synced"]["count"], 2);
  EXPECT_EQ(by_reason["Synced"]["type"], "Normal");
  EXPECT_EQ(by_reason["Synced"]["involvedObject"]["uid"], cm["metadata"]["uid"]);
  EXPECT_EQ(by_reason["Synced"]["source"]["component"], "test-controller");
  EXPECT_EQ(by_reason["Failed"]["type"], "Warning");
  lo.field_selector = "type=Warning";
  EXPECT_EQ(cl().List(EventsResource(), "default", lo)["items"].size(), 1u);
}

// client-go's EventAggregator: after 10 different messages of one (object,
// type, reason), later ones are combined into one Event whose count grows.
TEST_F(LocalClientTest, EventRecorderCombinesSimilarEvents) {
  Json rs = cl().Create(ConfigMaps(), "default", Cm("owner"));
  EventRecorder rec(cl(), "replicaset-controller");
  for (int i = 1; i <= 12; ++i) rec.Normal(rs, "SuccessfulCreate", "Created pod: p" + std::to_string(i));
  rec.Normal(rs, "SuccessfulCreate", "Created pod: p3");  // seen before: its own Event counts 2
  rec.Warning(rs, "FailedCreate", "quota");               // another reason: its own Event
  ListOptions lo;
  lo.field_selector = "involvedObject.name=owner";
  Json events = cl().List(EventsResource(), "default", lo);
  std::map<std::string, Json> by_message;
  for (auto& e : events["items"]) by_message[e["message"]] = e;
  EXPECT_EQ(by_message.size(), 12u) << events.dump(1);  // 10 single, 1 combined, 1 warning
  for (int i = 1; i <= 10; ++i) EXPECT_TRUE(by_message.count("Created pod: p" + std::to_string(i))) << i;
  ASSERT_TRUE(by_message.count("(combined from similar events): Created pod: p12")) << events.dump(1);
  EXPECT_EQ(by_message["(combined from similar events): Created pod: p12"]["count"], 2);
  EXPECT_EQ(by_message["Created pod: p3"]["count"], 2);
  EXPECT_EQ(by_message["quota"]["count"], 1);
}

// Events expire event_ttl after they were last recorded, as with
// kube-apiserver's --event-ttl; a sweep runs when Events are created.
// Hostile bodies through the REST handler: refused with a Status, never a
// crash (a recursive parser overflows its stack on 100,000 levels).
http::Response Post(RestHandler& rest, const std::string& content_type, std::string body) {
  http::Request req;
  req.method = "POST";
  req.path = "/api/v1/namespaces/default/configmaps";
  req.target = req.path;
  req.headers.emplace("Content-Type", content_type);
  req.body = std::move(body);
  http::Response resp;
  rest.Handle(req, resp);
  return resp;
}

TEST_F(LocalClientTest, DeeplyNestedBodiesAre400WithAStatus) {
  RestHandler rest(*registry_);
  const size_t levels = 100000;
  std::string deep_json = R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"deep"},)"
                          R"("extra":)" +
                          std::string(levels, '[') + std::string(levels, ']') + "}";
  std::string deep_yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deep\nextra: " +
                          std::string(levels, '[') + std::string(levels, ']') + "\n";
  for (auto [type, body] : {std::pair<std::string, std::string>{"application/json", deep_json},
                            {"application/yaml", deep_yaml}}) {
    SCOPED_TRACE(type);
    http::Response resp = Post(rest, type, body);
    EXPECT_EQ(resp.status, 400);
    Json status = Json::parse(resp.body);
    EXPECT_EQ(status["kind"], "Status");
    EXPECT_EQ(status["reason"], "BadRequest");
    EXPECT_EQ(status["code"], 400);
    EXPECT_EQ(status["message"],
              "the request body is nested deeper than the limit of 10000 levels");
  }
  // Just under the limit: whatever the answer, no crash, as a create and as
  // each kind of patch.
  const size_t under = 9990;
  std::string near_limit = R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"near"},)"
                           R"("extra":)" +
                           std::string(under, '[') + std::string(under, ']') + "}";
  http::Response near = Post(rest, "application/json", near_limit);
  EXPECT_LT(near.status, 500) << near.body.substr(0, 300);
  for (std::string type : {"application/merge-patch+json", "application/strategic-merge-patch+json",
                           "application/apply-patch+yaml"}) {
    SCOPED_TRACE(type);
    http::Request req;
    req.method = "PATCH";
    req.path = "/api/v1/namespaces/default/configmaps/near";
    req.target = req.path + "?fieldManager=test";
    req.query.emplace("fieldManager", "test");
    req.headers.emplace("Content-Type", type);
    req.body = R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"near"},"data":)" +
               std::string(under, '[') + std::string(under, ']') + "}";
    http::Response resp;
    rest.Handle(req, resp);
    EXPECT_LT(resp.status, 500) << resp.body.substr(0, 300);
  }
  // Strings are not nesting; moderate nesting in an unknown field is the
  // usual unknown-field case, not this one.
  std::string fine = R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"fine"},)"
                     R"("data":{"k":")" +
                     std::string(20000, '[') + R"("},"extra":)" + std::string(100, '[') +
                     std::string(100, ']') + "}";
  http::Response resp = Post(rest, "application/json", fine);
  EXPECT_EQ(resp.status, 201) << resp.body.substr(0, 300);
  EXPECT_EQ(registry_->Get(ConfigMaps(), "default", "fine")["data"]["k"].get<std::string>().size(),
            20000u);
}

// The same through kin serve's HTTP front end: every hostile body is
// answered 4xx with a Status, and the server serves on.
TEST(ApiServerHostileBodyTest, HugeDeepUnknownAndWrongKindBodiesAre4xxStatuses) {
  testing::TempDir dir;
  Options o;
  o.state_dir = dir.path();
  ApiServer api(o);
  api.Start();
  http::HttpClient c(
      http::ClientOptions{.base_url = "http://127.0.0.1:" + std::to_string(api.port())});
  const std::string cms = "/api/v1/namespaces/default/configmaps";
  const http::Headers json = {{"Content-Type", "application/json"}};
  auto expect_status = [](const http::ClientResponse& r, int code, const std::string& reason,
                          const std::string& message_part) {
    EXPECT_EQ(r.status, code) << r.body.substr(0, 300);
    Json j = Json::parse(r.body, nullptr, false);
    ASSERT_TRUE(j.is_object()) << r.body.substr(0, 300);
    EXPECT_EQ(j["kind"], "Status");
    EXPECT_EQ(j["code"], code);
    EXPECT_EQ(j["reason"], reason);
    EXPECT_NE(j.value("message", "").find(message_part), std::string::npos) << j.dump();
  };
  // Over kube-apiserver's 3 MiB: refused by the HTTP server, as a Status.
  std::string huge = R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"huge"},)"
                     R"("data":{"k":")" +
                     std::string(4 << 20, 'x') + R"("}})";
  expect_status(c.Do("POST", cms, huge, json), 413, "RequestEntityTooLarge",
                "larger than the limit of 3145728 bytes");
  std::string deep = R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"deep"},)"
                     R"("extra":)" +
                     std::string(100000, '[') + std::string(100000, ']') + "}";
  expect_status(c.Do("POST", cms, deep, json), 400, "BadRequest", "nested deeper than the limit");
  std::string unknown = R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"u"},)"
                        R"("data":{"k":"v"},"bogus":1})";
  expect_status(c.Do("POST", cms + "?fieldValidation=Strict", unknown, json), 400, "BadRequest",
                "bogus");
  expect_status(c.Do("POST", cms, "[1,2,3]", json), 400, "BadRequest", "JSON object");
  // A number JSON cannot hold (nlohmann throws out_of_range, not a parse error),
  // in a body and in a patch (found by fuzz/yaml_fuzzer in ParseJsonOrYaml).
  expect_status(c.Do("POST", cms, R"({"metadata":{"name":"n"},"x":1e999})", json), 400,
                "BadRequest", "decoding");
  ASSERT_EQ(c.Do("POST", cms, R"({"metadata":{"name":"n"}})", json).status, 201);
  expect_status(c.Do("PATCH", cms + "/n", R"({"x":1e999})",
                     {{"Content-Type", "application/merge-patch+json"}}),
                400, "BadRequest", "decoding");
  std::string pod = R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}})";
  http::ClientResponse wrong = c.Do("POST", cms, pod, json);
  EXPECT_EQ(wrong.status, 400) << wrong.body;
  EXPECT_EQ(Json::parse(wrong.body, nullptr, false).value("kind", ""), "Status") << wrong.body;
  EXPECT_EQ(c.Get("/healthz").status, 200);
  api.Stop();
}

// Clients compare error bodies as text: the Python client's
// create_from_yaml raises "Error from server (Conflict): <body>" and its e2e
// suite expects kube-apiserver's body byte for byte (metav1.Status's field
// order, a trailing newline). APIServices: one Local per served
// group/version, Available; others stored as written.
TEST(ApiServerStatusBodyTest, AlreadyExistsIsKubeApiserversTextAndAPIServicesAreServed) {
  testing::TempDir dir;
  Options o;
  o.state_dir = dir.path();
  ApiServer api(o);
  api.Start();
  http::HttpClient c(
      http::ClientOptions{.base_url = "http://127.0.0.1:" + std::to_string(api.port())});
  const http::Headers json = {{"Content-Type", "application/json"}};
  const std::string svcs = "/api/v1/namespaces/default/services";
  std::string svc = R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"mock-2"},)"
                    R"("spec":{"ports":[{"port":99,"targetPort":9949}],"selector":{"app":"m"}}})";
  ASSERT_EQ(c.Do("POST", svcs, svc, json).status, 201);
  http::ClientResponse again = c.Do("POST", svcs, svc, json);
  EXPECT_EQ(again.status, 409);
  EXPECT_EQ(again.body,
            R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",)"
            R"("message":"services \"mock-2\" already exists","reason":"AlreadyExists",)"
            R"("details":{"name":"mock-2","kind":"services"},"code":409})"
            "\n");

  const std::string apis = "/apis/apiregistration.k8s.io/v1/apiservices";
  for (const char* name : {"v1.", "v1.apps", "v1.apiregistration.k8s.io"}) {
    http::ClientResponse r = c.Get(apis + "/" + name);
    ASSERT_EQ(r.status, 200) << name << ": " << r.body;
    Json as = Json::parse(r.body);
    EXPECT_EQ(as["kind"], "APIService");
    EXPECT_FALSE(as["spec"].contains("service")) << as.dump();
    EXPECT_EQ(as["status"]["conditions"][0]["type"], "Available");
    EXPECT_EQ(as["status"]["conditions"][0]["status"], "True");
    EXPECT_EQ(as["status"]["conditions"][0]["reason"], "Local");
  }
  Json apps = Json::parse(c.Get(apis + "/v1.apps").body);
  EXPECT_EQ(apps["spec"]["group"], "apps");
  EXPECT_EQ(apps["spec"]["groupPriorityMinimum"], 17800);
  EXPECT_EQ(apps["spec"]["versionPriority"], 15);

  std::string wardle = R"({"apiVersion":"apiregistration.k8s.io/v1","kind":"APIService",)"
                       R"("metadata":{"name":"v1alpha1.wardle.k8s.io"},"spec":{)"
                       R"("insecureSkipTLSVerify":true,"group":"wardle.k8s.io",)"
                       R"("groupPriorityMinimum":1000,"versionPriority":15,)"
                       R"("service":{"name":"api","namespace":"wardle"},"version":"v1alpha1"}})";
  ASSERT_EQ(c.Do("POST", apis, wardle, json).status, 201);
  EXPECT_EQ(Json::parse(c.Get(apis + "/v1alpha1.wardle.k8s.io").body)["spec"]["service"]["name"],
            "api");
  http::ClientResponse dup = c.Do("POST", apis, wardle, json);
  EXPECT_EQ(dup.status, 409);
  EXPECT_EQ(dup.body,
            R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",)"
            R"("message":"apiservices.apiregistration.k8s.io \"v1alpha1.wardle.k8s.io\" )"
            R"(already exists","reason":"AlreadyExists","details":{)"
            R"("name":"v1alpha1.wardle.k8s.io","group":"apiregistration.k8s.io",)"
            R"("kind":"apiservices"},"code":409})"
            "\n");
  EXPECT_EQ(c.Do("DELETE", apis + "/v1alpha1.wardle.k8s.io", "{}", json).status, 200);
  EXPECT_EQ(c.Get(apis + "/v1alpha1.wardle.k8s.io").status, 404);
  api.Stop();
}

TEST(RestErrorResponseTest, ServerRefusalsAreStatusesWithTheirCodeAndReason) {
  for (auto [status, reason] : {std::pair<int, std::string>{400, "BadRequest"},
                                {408, "Timeout"},
                                {413, "RequestEntityTooLarge"},
                                {429, "TooManyRequests"},
                                {431, "BadRequest"}}) {
    http::Response r = RestHandler::ErrorResponse(status, "what went wrong");
    EXPECT_EQ(r.status, status);
    Json j = Json::parse(r.body);
    EXPECT_EQ(j["kind"], "Status");
    EXPECT_EQ(j["reason"], reason) << status;
    EXPECT_EQ(j["code"], status);
    EXPECT_EQ(j["message"], "what went wrong");
  }
}

TEST(EventTtlTest, OldEventsGoWhenNewOnesComeIn) {
  testing::TempDir dir;
  StoreOptions so;
  so.index_fields = IndexFields;
  auto store = Store::Open(dir.File("kin.db"), so);
  RegistryOptions ro;
  ro.event_ttl = std::chrono::seconds(1);
  Registry registry(*store, ro);
  registry.Bootstrap();
  LocalClient local(registry, "test");
  Client& cl = local;
  auto event = [](const std::string& name) {
    return Json{{"apiVersion", "v1"},
                {"kind", "Event"},
                {"metadata", {{"name", name}, {"namespace", "default"}}},
                {"involvedObject", {{"kind", "Pod"}, {"name", "p"}, {"namespace", "default"}}},
                {"reason", "Test"},
                {"message", name}};
  };
  cl.Create(EventsResource(), "default", event("old"));
  int n = 0;
  auto exists = [&](const std::string& name) {
    try {
      cl.Get(EventsResource(), "default", name);
      return true;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kNotFound);
      return false;
    }
  };
  // Time passes while new Events keep coming: the old one goes.
  EXPECT_TRUE(testing::Eventually(
      [&] {
        cl.Create(EventsResource(), "default", event("new" + std::to_string(n++)));
        return !exists("old");
      },
      std::chrono::seconds(15)));
  EXPECT_TRUE(exists("new" + std::to_string(n - 1))) << "a fresh Event stays";
}

}  // namespace
}  // namespace kin::apiserver

namespace kin::apiserver {
namespace {

// The DefaultIngressClass admission: an Ingress created without a class
// gets the default IngressClass; one with a class, or the deprecated
// annotation, keeps what it has; without a default nothing is set.
TEST_F(LocalClientTest, IngressWithoutAClassGetsTheDefaultIngressClass) {
  const ResourceInfo& classes = *FindResource("networking.k8s.io", "v1", "ingressclasses");
  const ResourceInfo& ingresses = *FindResource("networking.k8s.io", "v1", "ingresses");
  auto ingress = [](const std::string& name, const Json& spec, const Json& annotations) {
    Json i = {{"apiVersion", "networking.k8s.io/v1"},
              {"kind", "Ingress"},
              {"metadata", {{"name", name}}},
              {"spec", spec}};
    if (!annotations.is_null()) i["metadata"]["annotations"] = annotations;
    i["spec"]["defaultBackend"] = {{"service", {{"name", "web"}, {"port", {{"number", 80}}}}}};
    return i;
  };
  auto ingress_class = [](const std::string& name, bool is_default) {
    Json c = {{"apiVersion", "networking.k8s.io/v1"},
              {"kind", "IngressClass"},
              {"metadata", {{"name", name}}},
              {"spec", {{"controller", "example.com/" + name}}}};
    if (is_default) {
      c["metadata"]["annotations"] = {{"ingressclass.kubernetes.io/is-default-class", "true"}};
    }
    return c;
  };
  Json none = cl().Create(ingresses, "default", ingress("before", Json::object(), nullptr));
  EXPECT_FALSE(none["spec"].contains("ingressClassName")) << none.dump();

  cl().Create(classes, "", ingress_class("other", false));
  cl().Create(classes, "", ingress_class("kin", true));
  Json got = cl().Create(ingresses, "default", ingress("plain", Json::object(), nullptr));
  EXPECT_EQ(got["spec"].value("ingressClassName", ""), "kin");
  got = cl().Create(ingresses, "default",
                    ingress("named", Json{{"ingressClassName", "other"}}, nullptr));
  EXPECT_EQ(got["spec"].value("ingressClassName", ""), "other");
  got = cl().Create(ingresses, "default",
                    ingress("annotated", Json::object(),
                            Json{{"kubernetes.io/ingress.class", "nginx"}}));
  EXPECT_FALSE(got["spec"].contains("ingressClassName")) << got.dump();
  // Only creation is defaulted: an update that drops the class keeps it dropped.
  got["spec"].erase("ingressClassName");
  Json plain = cl().Get(ingresses, "default", "plain");
  plain["spec"].erase("ingressClassName");
  Json updated = cl().Update(ingresses, "default", plain);
  EXPECT_FALSE(updated["spec"].contains("ingressClassName")) << updated.dump();
}

}  // namespace
}  // namespace kin::apiserver
