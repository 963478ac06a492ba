// Admission webhooks on a real registry and store, with a fake transport
// (what is sent, what comes back) and, for the HTTPS transport itself, a
// real TLS server on loopback.
#include "apiserver/admission_webhook.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "apiserver/crd.h"
#include "apiserver/local_client.h"
#include "apiserver/registry.h"
#include "apiserver/rest.h"
#include "base/file.h"
#include "base/http_server.h"
#include "base/strings.h"
#include "base/tls.h"
#include "client/resources.h"
#include "testing/e2e_support.h"

namespace kin::apiserver {
namespace {

using ::testing::HasSubstr;

// Records each call; answers with `respond` (allowed by default).
class FakeTransport : public WebhookTransport {
 public:
  struct State {
    std::vector<WebhookCall> calls;
    std::vector<Json> reviews;
    std::function<WebhookReply(const Json& review, const WebhookCall& call)> respond;
  };
  explicit FakeTransport(std::shared_ptr<State> s) : s_(std::move(s)) {}
  WebhookReply Post(const WebhookCall& call) override {
    s_->calls.push_back(call);
    Json review = Json::parse(call.body);
    s_->reviews.push_back(review);
    if (s_->respond) return s_->respond(review, call);
    return Allow(review);
  }
  static WebhookReply Reply(const Json& review, Json response) {
    response["uid"] = review["request"]["uid"];
    Json out = {{"apiVersion", "admission.k8s.io/v1"},
                {"kind", "AdmissionReview"},
                {"response", response}};
    return {200, out.dump()};
  }
  static WebhookReply Allow(const Json& review) { return Reply(review, {{"allowed", true}}); }

 private:
  std::shared_ptr<State> s_;
};

constexpr const char* kValidating = "validatingwebhookconfigurations.admissionregistration.k8s.io";

const ResourceInfo& Res(const std::string& group, const std::string& plural) {
  return *FindResource(group, "v1", plural);
}

class AdmissionWebhookTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StoreOptions so;
    so.index_fields = IndexFields;
    store_ = Store::Open(dir_.File("kin.db"), so);
    registry_ = std::make_unique<Registry>(*store_, RegistryOptions{});
    registry_->Bootstrap();
    fake_ = std::make_shared<FakeTransport::State>();
    registry_->webhooks().SetTransport(std::make_unique<FakeTransport>(fake_));
  }

  static Json Hook(const std::string& name, Json extra = Json::object()) {
    Json h = {{"name", name},
              {"clientConfig", {{"url", "https://webhook.example.com/hook"}}},
              {"rules",
               Json::array({{{"operations", {"CREATE", "UPDATE"}},
                             {"apiGroups", {""}},
                             {"apiVersions", {"v1"}},
                             {"resources", {"pods"}}}})},
              {"sideEffects", "None"},
              {"admissionReviewVersions", {"v1"}}};
    h.update(extra);
    return h;
  }
  Json AddConfig(bool mutating, const std::string& name, Json hooks) {
    Json c = {{"apiVersion", "admissionregistration.k8s.io/v1"},
              {"kind", mutating ? "MutatingWebhookConfiguration" : "ValidatingWebhookConfiguration"},
              {"metadata", {{"name", name}}},
              {"webhooks", hooks}};
    return registry_->Create(Res("admissionregistration.k8s.io",
                                 mutating ? "mutatingwebhookconfigurations"
                                          : "validatingwebhookconfigurations"),
                             "", c, {});
  }
  Json Pod(const std::string& name, Json labels = Json::object()) {
    return {{"apiVersion", "v1"},
            {"kind", "Pod"},
            {"metadata", {{"name", name}, {"labels", labels}}},
            {"spec", {{"containers", Json::array({{{"name", "c"}, {"image", "busybox"}}})}}}};
  }
  Json CreatePod(const std::string& ns, const std::string& name,
                 Json labels = Json::object()) {
    return registry_->Create(Res("", "pods"), ns, Pod(name, labels), {});
  }
  // The error a write throws, as the Status sent to the client.
  template <typename F>
  Json StatusOf(F&& f) {
    try {
      f();
    } catch (const Error& e) {
      return StatusFor(e);
    }
    ADD_FAILURE() << "no error";
    return Json();
  }

  testing::TempDir dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Registry> registry_;
  std::shared_ptr<FakeTransport::State> fake_;
};

TEST_F(AdmissionWebhookTest, ConfigurationsAreDefaulted) {
  Json c = AddConfig(true, "m", Json::array({Hook("m.example.com")}));
  const Json& h = c["webhooks"][0];
  EXPECT_EQ(h["failurePolicy"], "Fail");
  EXPECT_EQ(h["matchPolicy"], "Equivalent");
  EXPECT_EQ(h["timeoutSeconds"], 10);
  EXPECT_EQ(h["reinvocationPolicy"], "Never");
  EXPECT_EQ(h["namespaceSelector"], Json::object());
  EXPECT_EQ(h["objectSelector"], Json::object());
  EXPECT_EQ(h["rules"][0]["scope"], "*");
  Json v = AddConfig(false, "v",
                     Json::array({Hook("v.example.com",
                                       {{"clientConfig",
                                         {{"service", {{"namespace", "ns"}, {"name", "s"}}}}}})}));
  EXPECT_EQ(v["webhooks"][0]["clientConfig"]["service"]["port"], 443);
  EXPECT_FALSE(v["webhooks"][0].contains("reinvocationPolicy"));
}

TEST_F(AdmissionWebhookTest, ConfigurationsAreValidatedAsUpstream) {
  Json bad = Json::array(
      {Hook("short", {{"sideEffects", nullptr}, {"admissionReviewVersions", {"v2"}}}),
       Hook("a.b.c", {{"clientConfig",
                       {{"url", "http://u:p@h/x?q=1#f"},
                        {"service", {{"namespace", "n"}, {"name", "s"}}}}},
                      {"timeoutSeconds", 31},
                      {"failurePolicy", "Maybe"},
                      {"matchPolicy", "Fuzzy"},
                      {"reinvocationPolicy", "Always"}}),
       Hook("a.b.c", {{"clientConfig", {{"url", "http://u:p@h/x?q=1#f"}}},
                      {"sideEffects", "Some"}})});
  Json st = StatusOf([&] { AddConfig(true, "bad", bad); });
  EXPECT_EQ(st["code"], 422);
  const std::string msg = st["message"];
  EXPECT_THAT(msg, HasSubstr("MutatingWebhookConfiguration.admissionregistration.k8s.io \"bad\" "
                             "is invalid: ["));
  for (const char* want :
       {"webhooks[0].name: Invalid value: \"short\": should be a domain with at least three "
        "segments separated by dots",
        "webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun",
        "webhooks[0].admissionReviewVersions: Invalid value: []string{\"v2\"}: must include at "
        "least one of v1, v1beta1",
        "webhooks[1].clientConfig: Required value: exactly one of url or service is required",
        "webhooks[1].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and "
        "30 seconds",
        "webhooks[1].failurePolicy: Unsupported value: \"Maybe\": supported values: \"Fail\", "
        "\"Ignore\"",
        "webhooks[1].matchPolicy: Unsupported value: \"Fuzzy\"",
        "webhooks[1].reinvocationPolicy: Unsupported value: \"Always\"",
        "webhooks[2].sideEffects: Unsupported value: \"Some\": supported values: \"None\", "
        "\"NoneOnDryRun\"",
        "webhooks[2].clientConfig.url: Invalid value: \"http\": 'https' is the only allowed URL "
        "scheme",
        "webhooks[2].clientConfig.url: Invalid value: \"u:p\": user information is not permitted "
        "in the URL",
        "webhooks[2].clientConfig.url: Invalid value: \"f\": fragments are not permitted in the "
        "URL",
        "webhooks[2].clientConfig.url: Invalid value: \"q=1\": query parameters are not permitted "
        "in the URL",
        "webhooks[2].name: Duplicate value: \"a.b.c\""}) {
    EXPECT_THAT(msg, HasSubstr(want));
  }
  // Rules: operations, groups and resources.
  Json rules = Hook("r.example.com", {{"rules", Json::array({{{"operations", {"*", "CREATE"}},
                                                               {"apiGroups", Json::array()},
                                                               {"apiVersions", {"v1"}},
                                                               {"resources", {"*/*", "pods"}},
                                                               {"scope", "Everywhere"}}})}});
  st = StatusOf([&] { AddConfig(false, "rules", Json::array({rules})); });
  const std::string rmsg = st["message"];
  EXPECT_THAT(rmsg, HasSubstr("webhooks[0].rules[0].operations: Invalid value: []string{\"*\", "
                              "\"CREATE\"}: if '*' is present, must not specify other operations"));
  EXPECT_THAT(rmsg, HasSubstr("webhooks[0].rules[0].apiGroups: Required value"));
  EXPECT_THAT(rmsg, HasSubstr("if '*/*' is present, must not specify other resources"));
  EXPECT_THAT(rmsg, HasSubstr("webhooks[0].rules[0].scope: Unsupported value: \"Everywhere\""));
  // A service path must start with '/'.
  Json svc = Hook("s.example.com",
                  {{"clientConfig",
                    {{"service", {{"namespace", "n"}, {"name", "s"}, {"path", "x"}, {"port", 0}}}}}});
  st = StatusOf([&] { AddConfig(false, "svc", Json::array({svc})); });
  EXPECT_THAT(st["message"].get<std::string>(),
              HasSubstr("webhooks[0].clientConfig.service.path: Invalid value: \"x\": must start "
                        "with a '/'"));
  EXPECT_THAT(st["message"].get<std::string>(),
              HasSubstr("webhooks[0].clientConfig.service.port: Invalid value: 0: port is not "
                        "valid: must be between 1 and 65535, inclusive"));
}

TEST_F(AdmissionWebhookTest, MutatingPatchIsAppliedAndReviewIsComplete) {
  AddConfig(true, "m", Json::array({Hook("label.example.com")}));
  fake_->respond = [](const Json& review, const WebhookCall&) {
    Json patch = Json::array({{{"op", "add"},
                               {"path", "/metadata/labels/webhook"},
                               {"value", "was-here"}}});
    return FakeTransport::Reply(review, {{"allowed", true},
                                         {"patchType", "JSONPatch"},
                                         {"patch", Base64Encode(patch.dump())}});
  };
  Json pod;
  {
    AdmissionRequestScope scope({"alice", {"devs", "system:authenticated"}});
    pod = CreatePod("default", "p");
  }
  EXPECT_EQ(pod["metadata"]["labels"]["webhook"], "was-here");
  // Stored as mutated.
  EXPECT_EQ(registry_->Get(Res("", "pods"), "default", "p")["metadata"]["labels"]["webhook"],
            "was-here");
  ASSERT_EQ(fake_->reviews.size(), 1u);
  const Json& req = fake_->reviews[0]["request"];
  EXPECT_EQ(fake_->reviews[0]["apiVersion"], "admission.k8s.io/v1");
  EXPECT_FALSE(req["uid"].get<std::string>().empty());
  EXPECT_EQ(req["kind"], Json({{"group", ""}, {"version", "v1"}, {"kind", "Pod"}}));
  EXPECT_EQ(req["resource"], Json({{"group", ""}, {"version", "v1"}, {"resource", "pods"}}));
  EXPECT_EQ(req["requestKind"], req["kind"]);
  EXPECT_EQ(req["requestResource"], req["resource"]);
  EXPECT_EQ(req["operation"], "CREATE");
  EXPECT_EQ(req["namespace"], "default");
  EXPECT_EQ(req["name"], "p");
  EXPECT_EQ(req["userInfo"]["username"], "alice");
  EXPECT_EQ(req["userInfo"]["groups"], Json({"devs", "system:authenticated"}));
  EXPECT_EQ(req["object"]["metadata"]["name"], "p");
  EXPECT_TRUE(req["oldObject"].is_null());
  EXPECT_EQ(req["dryRun"], false);
  EXPECT_EQ(req["options"]["kind"], "CreateOptions");
  EXPECT_EQ(fake_->calls[0].url, "https://webhook.example.com/hook?timeout=10s");
  EXPECT_EQ(fake_->calls[0].timeout, std::chrono::seconds(10));
  EXPECT_TRUE(fake_->calls[0].netns.empty());
}

TEST_F(AdmissionWebhookTest, ValidatingDenialKeepsTheWebhooksStatus) {
  AddConfig(false, "v", Json::array({Hook("deny.example.com")}));
  fake_->respond = [](const Json& review, const WebhookCall&) {
    return FakeTransport::Reply(review, {{"allowed", false},
                                         {"status", {{"message", "the pod contains unwanted "
                                                                 "container name;"}}}});
  };
  Json st = StatusOf([&] { CreatePod("default", "p"); });
  EXPECT_EQ(st["code"], 400);
  EXPECT_EQ(st["status"], "Failure");
  EXPECT_FALSE(st.contains("reason"));  // kubectl then prints "Error from server: ..."
  EXPECT_EQ(st["message"],
            "admission webhook \"deny.example.com\" denied the request: the pod contains "
            "unwanted container name;");
  EXPECT_THROW(registry_->Get(Res("", "pods"), "default", "p"), Error);
  // The webhook's own code and reason stay; no message: "without explanation".
  fake_->respond = [](const Json& review, const WebhookCall&) {
    return FakeTransport::Reply(
        review, {{"allowed", false}, {"status", {{"code", 403}, {"reason", "Forbidden"}}}});
  };
  st = StatusOf([&] { CreatePod("default", "p"); });
  EXPECT_EQ(st["code"], 403);
  EXPECT_EQ(st["reason"], "Forbidden");
  EXPECT_EQ(st["message"], "admission webhook \"deny.example.com\" denied the request: Forbidden");
  fake_->respond = [](const Json& review, const WebhookCall&) {
    return FakeTransport::Reply(review, {{"allowed", false}});
  };
  st = StatusOf([&] { CreatePod("default", "p"); });
  EXPECT_EQ(st["message"],
            "admission webhook \"deny.example.com\" denied the request without explanation");
}

TEST_F(AdmissionWebhookTest, FailurePolicyFailRejectsAndIgnoreAdmits) {
  AddConfig(false, "v", Json::array({Hook("down.example.com")}));
  fake_->respond = [](const Json&, const WebhookCall& call) -> WebhookReply {
    throw Error::Unavailable("Post \"" + call.url + "\": dial tcp 10.0.0.1:443: connect: "
                             "connection refused");
  };
  Json st = StatusOf([&] { CreatePod("default", "p"); });
  EXPECT_EQ(st["code"], 500);
  EXPECT_EQ(st["reason"], "InternalError");
  EXPECT_EQ(st["message"],
            "Internal error occurred: failed calling webhook \"down.example.com\": failed to call "
            "webhook: Post \"https://webhook.example.com/hook?timeout=10s\": dial tcp "
            "10.0.0.1:443: connect: connection refused");
  // Malformed answers are call failures too.
  fake_->respond = [](const Json& review, const WebhookCall&) {
    Json r = Json::parse(FakeTransport::Allow(review).body);
    r["response"]["uid"] = "other";
    return WebhookReply{200, r.dump()};
  };
  st = StatusOf([&] { CreatePod("default", "p"); });
  EXPECT_THAT(st["message"].get<std::string>(),
              HasSubstr("received invalid webhook response: expected response.uid="));
  fake_->respond = [](const Json&, const WebhookCall&) { return WebhookReply{500, "oops"}; };
  st = StatusOf([&] { CreatePod("default", "p"); });
  EXPECT_THAT(st["message"].get<std::string>(), HasSubstr("status code 500"));

  // Ignore: the request goes on.
  registry_->Delete(Res("admissionregistration.k8s.io", "validatingwebhookconfigurations"), "",
                    "v", {});
  AddConfig(false, "v", Json::array({Hook("down.example.com", {{"failurePolicy", "Ignore"}})}));
  EXPECT_NO_THROW(CreatePod("default", "p"));
}

TEST_F(AdmissionWebhookTest, RulesMatchOperationsResourcesSubresourcesAndScope) {
  auto rule = [](Json ops, Json resources, std::string scope = "*") {
    return Json::array({{{"operations", ops},
                         {"apiGroups", {"*"}},
                         {"apiVersions", {"*"}},
                         {"resources", resources},
                         {"scope", scope}}});
  };
  AddConfig(false, "v",
            Json::array({Hook("status.example.com", {{"rules", rule({"UPDATE"}, {"pods/status"})}}),
                         Hook("all.example.com", {{"rules", rule({"*"}, {"*"})}}),
                         Hook("cluster.example.com",
                              {{"rules", rule({"CREATE"}, {"*"}, "Cluster")}}),
                         Hook("cm.example.com", {{"rules", rule({"DELETE"}, {"configmaps"})}})}));
  fake_->reviews.clear();
  CreatePod("default", "p");
  // "*" (all resources, no subresources) only.
  ASSERT_EQ(fake_->reviews.size(), 1u);
  fake_->reviews.clear();
  Json pod = registry_->Get(Res("", "pods"), "default", "p");
  pod["status"]["phase"] = "Running";
  registry_->Update(Res("", "pods"), "default", "p", pod, "status", {});
  ASSERT_EQ(fake_->reviews.size(), 1u);  // pods/status only
  EXPECT_EQ(fake_->reviews[0]["request"]["subResource"], "status");
  EXPECT_EQ(fake_->reviews[0]["request"]["operation"], "UPDATE");
  EXPECT_EQ(fake_->reviews[0]["request"]["oldObject"]["status"]["phase"], "Pending");
  EXPECT_EQ(fake_->reviews[0]["request"]["object"]["status"]["phase"], "Running");
  fake_->reviews.clear();
  // A cluster-scoped object: "*" and the Cluster-scoped rule.
  registry_->Create(Res("", "namespaces"), "",
                    {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "x"}}}},
                    {});
  EXPECT_EQ(fake_->reviews.size(), 2u);
  fake_->reviews.clear();
  // DELETE: oldObject, no object, DeleteOptions.
  registry_->Create(Res("", "configmaps"), "default",
                    {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", "c"}}}},
                    {});
  fake_->reviews.clear();
  DeleteOptions del;
  del.propagation_policy = "Background";
  registry_->Delete(Res("", "configmaps"), "default", "c", del);
  ASSERT_EQ(fake_->reviews.size(), 2u);  // all + cm
  const Json& req = fake_->reviews[1]["request"];
  EXPECT_EQ(req["operation"], "DELETE");
  EXPECT_TRUE(req["object"].is_null());
  EXPECT_EQ(req["oldObject"]["metadata"]["name"], "c");
  EXPECT_EQ(req["options"]["kind"], "DeleteOptions");
  EXPECT_EQ(req["options"]["propagationPolicy"], "Background");
}

// Webhooks run outside the store's lock: a write that lands meanwhile
// makes the update admit again on the new object, and both changes stay.
TEST_F(AdmissionWebhookTest, AnUpdateRacingAnotherIsAdmittedAgain) {
  CreatePod("default", "p");
  AddConfig(false, "v", Json::array({Hook("upd.example.com")}));
  bool raced = false;
  fake_->respond = [&](const Json& review, const WebhookCall&) {
    if (!raced && review["request"]["operation"] == "UPDATE") {
      raced = true;
      Json cur = registry_->Get(Res("", "pods"), "default", "p");
      cur["metadata"]["labels"]["racer"] = "1";
      registry_->Update(Res("", "pods"), "default", "p", cur, "", {});
    }
    return FakeTransport::Allow(review);
  };
  fake_->reviews.clear();
  registry_->Patch(Res("", "pods"), "default", "p", PatchType::kMerge,
                   R"({"metadata":{"labels":{"mine":"1"}}})", "", {});
  Json labels = registry_->Get(Res("", "pods"), "default", "p")["metadata"]["labels"];
  EXPECT_EQ(labels["racer"], "1");
  EXPECT_EQ(labels["mine"], "1");
  // The patch's first review, the racer's, the patch's again (on the new object).
  ASSERT_EQ(fake_->reviews.size(), 3u);
  EXPECT_EQ(fake_->reviews[2]["request"]["object"]["metadata"]["labels"]["racer"], "1");
}

TEST_F(AdmissionWebhookTest, NamespaceAndObjectSelectors) {
  registry_->Create(Res("", "namespaces"), "",
                    {{"apiVersion", "v1"},
                     {"kind", "Namespace"},
                     {"metadata", {{"name", "skipped"}, {"labels", {{"webhook", "skip"}}}}}},
                    {});
  AddConfig(false, "v",
            Json::array({Hook("ns.example.com",
                              {{"namespaceSelector",
                                {{"matchExpressions",
                                  Json::array({{{"key", "webhook"},
                                                {"operator", "NotIn"},
                                                {"values", {"skip"}}}})}}}}),
                         Hook("obj.example.com",
                              {{"objectSelector", {{"matchLabels", {{"app", "web"}}}}}})}));
  fake_->reviews.clear();
  CreatePod("skipped", "p");
  EXPECT_EQ(fake_->reviews.size(), 0u);
  CreatePod("default", "p");
  EXPECT_EQ(fake_->reviews.size(), 1u);  // namespace selector only
  fake_->reviews.clear();
  CreatePod("default", "web", {{"app", "web"}});
  EXPECT_EQ(fake_->reviews.size(), 2u);
  // An update that drops the label still matches: the old object has it.
  fake_->reviews.clear();
  Json pod = registry_->Get(Res("", "pods"), "default", "web");
  pod["metadata"]["labels"] = {{"app", "other"}};
  registry_->Update(Res("", "pods"), "default", "web", pod, "", {});
  EXPECT_EQ(fake_->reviews.size(), 2u);
}

TEST_F(AdmissionWebhookTest, ReinvocationIfNeededRunsAgainAfterALaterChange) {
  AddConfig(true, "a",
            Json::array({Hook("first.example.com",
                              {{"reinvocationPolicy", "IfNeeded"},
                               {"clientConfig", {{"url", "https://first.example.com/"}}}}),
                         Hook("second.example.com",
                              {{"clientConfig", {{"url", "https://second.example.com/"}}}})}));
  fake_->respond = [&](const Json& review, const WebhookCall& call) {
    if (call.url.rfind("https://second.", 0) != 0) return FakeTransport::Allow(review);
    Json patch =
        Json::array({{{"op", "add"}, {"path", "/metadata/labels/second"}, {"value", "yes"}}});
    return FakeTransport::Reply(review, {{"allowed", true},
                                         {"patchType", "JSONPatch"},
                                         {"patch", Base64Encode(patch.dump())}});
  };
  Json pod = CreatePod("default", "p", {{"x", "y"}});
  EXPECT_EQ(pod["metadata"]["labels"]["second"], "yes");
  ASSERT_EQ(fake_->calls.size(), 3u);  // first, second, first again
  EXPECT_EQ(fake_->calls[2].url, "https://first.example.com/?timeout=10s");
  EXPECT_EQ(fake_->reviews[2]["request"]["object"]["metadata"]["labels"]["second"], "yes");
  // Without a later change, no second call.
  fake_->calls.clear();
  fake_->respond = nullptr;
  CreatePod("default", "q");
  EXPECT_EQ(fake_->calls.size(), 2u);
}

// Custom resources: the webhook sees the served version, and what it adds
// is pruned and validated by the CRD's schema like any write.
TEST_F(AdmissionWebhookTest, CustomResourcesInTheirServedVersion) {
  Json schema = {{"type", "object"},
                 {"properties",
                  {{"spec", {{"type", "object"},
                             {"properties", {{"size", {{"type", "string"}}}}}}}}}};
  Json crd = {{"apiVersion", "apiextensions.k8s.io/v1"},
              {"kind", "CustomResourceDefinition"},
              {"metadata", {{"name", "widgets.example.com"}}},
              {"spec",
               {{"group", "example.com"},
                {"scope", "Namespaced"},
                {"names", {{"plural", "widgets"}, {"kind", "Widget"}}},
                {"versions",
                 {{{"name", "v1"}, {"served", true}, {"storage", true},
                   {"schema", {{"openAPIV3Schema", schema}}}},
                  {{"name", "v1beta1"}, {"served", true}, {"storage", false},
                   {"schema", {{"openAPIV3Schema", schema}}}}}}}}};
  registry_->Create(*FindResource("apiextensions.k8s.io", "v1", "customresourcedefinitions"), "",
                    crd, {});
  struct Reset {
    ~Reset() { SetCustomResources({}); }  // the dynamic set is process-wide
  } reset;
  const ResourceInfo& beta = *FindResource("example.com", "v1beta1", "widgets");
  AddConfig(true, "m",
            Json::array({Hook("widgets.example.com",
                              {{"rules", Json::array({{{"operations", {"CREATE", "UPDATE"}},
                                                       {"apiGroups", {"example.com"}},
                                                       {"apiVersions", {"*"}},
                                                       {"resources", {"widgets"}}}})}})}));
  fake_->respond = [](const Json& review, const WebhookCall&) {
    Json patch = Json::array({{{"op", "add"}, {"path", "/spec/extra"}, {"value", "x"}},
                              {{"op", "add"}, {"path", "/spec/size"}, {"value", "big"}}});
    return FakeTransport::Reply(review, {{"allowed", true},
                                         {"patchType", "JSONPatch"},
                                         {"patch", Base64Encode(patch.dump())}});
  };
  Json w = registry_->Create(beta, "default",
                             {{"apiVersion", "example.com/v1beta1"},
                              {"kind", "Widget"},
                              {"metadata", {{"name", "a"}}},
                              {"spec", {{"size", "small"}}}},
                             {});
  ASSERT_EQ(fake_->reviews.size(), 1u);
  EXPECT_EQ(fake_->reviews[0]["request"]["object"]["apiVersion"], "example.com/v1beta1");
  Json got = registry_->Get(beta, "default", "a");
  EXPECT_EQ(got["spec"], Json({{"size", "big"}}));  // "extra" pruned
  // An update through the other version: admitted, and stored.
  registry_->Patch(beta, "default", "a", PatchType::kMerge, R"({"spec":{"size":"tiny"}})", "", {});
  ASSERT_EQ(fake_->reviews.size(), 2u);
  EXPECT_EQ(fake_->reviews[1]["request"]["operation"], "UPDATE");
  EXPECT_EQ(fake_->reviews[1]["request"]["oldObject"]["apiVersion"], "example.com/v1beta1");
  EXPECT_EQ(registry_->Get(beta, "default", "a")["spec"], Json({{"size", "big"}}));
}

// kin's controllers write as kube-controller-manager's service accounts.
TEST_F(AdmissionWebhookTest, InProcessWritesCarryTheComponentsUser) {
  AddConfig(false, "v",
            Json::array({Hook("who.example.com",
                              {{"rules", Json::array({{{"operations", {"*"}},
                                                       {"apiGroups", {""}},
                                                       {"apiVersions", {"v1"}},
                                                       {"resources", {"pods"}}}})}})}));
  LocalClient client(*registry_, "kube-controller-manager");
  WriteOptions wo;
  wo.field_manager = "replicaset-controller";
  client.Create(Res("", "pods"), "default", Pod("p"), wo);
  client.Delete(Res("", "pods"), "default", "p", {});
  ASSERT_EQ(fake_->reviews.size(), 2u);
  const Json& user = fake_->reviews[0]["request"]["userInfo"];
  EXPECT_EQ(user["username"], "system:serviceaccount:kube-system:replicaset-controller");
  EXPECT_EQ(user["groups"], Json({"system:serviceaccounts", "system:serviceaccounts:kube-system",
                                  "system:authenticated"}));
  EXPECT_EQ(fake_->reviews[1]["request"]["userInfo"]["username"],
            "system:kube-controller-manager");
  EXPECT_EQ(InProcessUser("default-scheduler").username, "system:kube-scheduler");
  EXPECT_EQ(InProcessUser("kin-node").username, "");
}

// dryRun: webhooks that may have side effects refuse it (a v1
// configuration cannot say so any more; one stored before can).
TEST_F(AdmissionWebhookTest, DryRunRequestsFailOnWebhooksWithSideEffects) {
  AddConfig(false, "v", Json::array({Hook("fx.example.com")}));
  Json c = Json::parse(*store_->Get(kValidating, "", "v")->json);
  c["webhooks"][0]["sideEffects"] = "Some";
  store_->Mutate(kValidating, "", "v", [&](const Json*) {
    return Mutation{Mutation::Action::kPut, c};
  });
  WriteOptions dry;
  dry.dry_run = true;
  Json st = StatusOf([&] { registry_->Create(Res("", "pods"), "default", Pod("p"), dry); });
  EXPECT_EQ(st["code"], 400);
  EXPECT_EQ(st["message"], "admission webhook \"fx.example.com\" does not support dry run");
  EXPECT_TRUE(fake_->calls.empty());
  // NoneOnDryRun: called, with dryRun true.
  c["webhooks"][0]["sideEffects"] = "NoneOnDryRun";
  store_->Mutate(kValidating, "", "v", [&](const Json*) {
    return Mutation{Mutation::Action::kPut, c};
  });
  registry_->Create(Res("", "pods"), "default", Pod("p"), dry);
  ASSERT_EQ(fake_->reviews.size(), 1u);
  EXPECT_EQ(fake_->reviews[0]["request"]["dryRun"], true);
  EXPECT_EQ(fake_->reviews[0]["request"]["options"]["dryRun"], Json({"All"}));
}

TEST_F(AdmissionWebhookTest, WarningsGoToTheRequestScope) {
  AddConfig(false, "v", Json::array({Hook("warn.example.com")}));
  fake_->respond = [](const Json& review, const WebhookCall&) {
    return FakeTransport::Reply(review, {{"allowed", true}, {"warnings", {"mind the gap"}}});
  };
  AdmissionRequestScope scope({"bob", {}});
  CreatePod("default", "p");
  EXPECT_EQ(scope.warnings(), std::vector<std::string>{"mind the gap"});
}

TEST_F(AdmissionWebhookTest, ServiceBackedWebhooksUseAReadyEndpoint) {
  registry_->webhooks().SetServiceNetns("kin-test-net");
  AddConfig(false, "v",
            Json::array({Hook("svc.example.com",
                              {{"clientConfig",
                                {{"service", {{"namespace", "default"},
                                              {"name", "hook"},
                                              {"path", "/validate"}}}}}})}));
  Json st = StatusOf([&] { CreatePod("default", "p"); });
  EXPECT_EQ(st["message"],
            "Internal error occurred: failed calling webhook \"svc.example.com\": failed to call "
            "webhook: Post \"https://hook.default.svc:443/validate?timeout=10s\": service "
            "\"hook\" not found");
  registry_->Create(Res("", "services"), "default",
                    {{"apiVersion", "v1"},
                     {"kind", "Service"},
                     {"metadata", {{"name", "hook"}}},
                     {"spec", {{"ports", Json::array({{{"port", 443}, {"targetPort", 8443}}})}}}},
                    {});
  st = StatusOf([&] { CreatePod("default", "p"); });
  EXPECT_THAT(st["message"].get<std::string>(),
              HasSubstr("no endpoints available for service \"hook\""));
  registry_->Create(Res("", "endpoints"), "default",
                    {{"apiVersion", "v1"},
                     {"kind", "Endpoints"},
                     {"metadata", {{"name", "hook"}}},
                     {"subsets", Json::array({{{"addresses", Json::array({{{"ip", "10.244.1.7"}}})},
                                               {"ports", Json::array({{{"port", 8443}}})}}})}},
                    {});
  fake_->calls.clear();
  CreatePod("default", "p");
  ASSERT_EQ(fake_->calls.size(), 1u);
  EXPECT_EQ(fake_->calls[0].url, "https://hook.default.svc:443/validate?timeout=10s");
  EXPECT_EQ(fake_->calls[0].connect_to, "10.244.1.7:8443");
  EXPECT_EQ(fake_->calls[0].netns, "kin-test-net");
}

TEST_F(AdmissionWebhookTest, WebhookConfigurationsThemselvesAreNotAdmitted) {
  AddConfig(false, "v",
            Json::array({Hook("all.example.com",
                              {{"rules", Json::array({{{"operations", {"*"}},
                                                       {"apiGroups", {"*"}},
                                                       {"apiVersions", {"*"}},
                                                       {"resources", {"*"}}}})}})}));
  fake_->respond = [](const Json& review, const WebhookCall&) {
    return FakeTransport::Reply(review, {{"allowed", false}});
  };
  // Else a broken webhook could never be removed.
  EXPECT_NO_THROW(registry_->Delete(
      Res("admissionregistration.k8s.io", "validatingwebhookconfigurations"), "", "v", {}));
}

// Over HTTP: the denial's code and body as the webhook gave them, and its
// warnings as Warning headers.
TEST_F(AdmissionWebhookTest, RestFrontEndSendsTheStatusAndWarnings) {
  RestHandler rest(*registry_);
  AddConfig(false, "v", Json::array({Hook("deny.example.com")}));
  fake_->respond = [](const Json& review, const WebhookCall&) {
    return FakeTransport::Reply(review, {{"allowed", false},
                                         {"warnings", {"first warning"}},
                                         {"status", {{"code", 418}, {"message", "no tea"}}}});
  };
  http::Request req;
  req.method = "POST";
  req.path = req.target = "/api/v1/namespaces/default/pods";
  req.body = Pod("p").dump();
  req.headers.emplace("Content-Type", "application/json");
  http::Response resp;
  rest.Handle(req, resp);
  EXPECT_EQ(resp.status, 418);
  Json body = Json::parse(resp.body);
  EXPECT_EQ(body["message"], "admission webhook \"deny.example.com\" denied the request: no tea");
  EXPECT_FALSE(body.contains("reason"));
  auto w = resp.headers.find("Warning");
  ASSERT_NE(w, resp.headers.end());
  EXPECT_EQ(w->second, "299 - \"first warning\"");
}

// CONNECT: kubectl exec's options are what the webhook sees.
TEST_F(AdmissionWebhookTest, ExecIsAdmittedAsConnectWithPodExecOptions) {
  RestHandler rest(*registry_);
  CreatePod("default", "p");
  AddConfig(false, "v",
            Json::array({Hook("no-exec.example.com",
                              {{"rules", Json::array({{{"operations", {"CONNECT"}},
                                                       {"apiGroups", {""}},
                                                       {"apiVersions", {"v1"}},
                                                       {"resources", {"pods/exec"}}}})}})}));
  fake_->respond = [](const Json& review, const WebhookCall&) {
    return FakeTransport::Reply(review,
                                {{"allowed", false}, {"status", {{"message", "no shells"}}}});
  };
  http::Request req;
  req.method = "POST";
  req.path = "/api/v1/namespaces/default/pods/p/exec";
  req.raw_query = "command=ls&command=-l&container=c&stdout=true";
  req.target = req.path + "?" + req.raw_query;
  req.query = {{"command", "ls"}, {"command", "-l"}, {"container", "c"}, {"stdout", "true"}};
  http::Response resp;
  rest.Handle(req, resp);
  EXPECT_EQ(resp.status, 400);
  EXPECT_EQ(Json::parse(resp.body)["message"],
            "admission webhook \"no-exec.example.com\" denied the request: no shells");
  ASSERT_EQ(fake_->reviews.size(), 1u);
  const Json& r = fake_->reviews[0]["request"];
  EXPECT_EQ(r["operation"], "CONNECT");
  EXPECT_EQ(r["kind"]["kind"], "PodExecOptions");
  EXPECT_EQ(r["resource"]["resource"], "pods");
  EXPECT_EQ(r["subResource"], "exec");
  EXPECT_EQ(r["name"], "p");
  EXPECT_EQ(r["object"]["command"], Json({"ls", "-l"}));
  EXPECT_EQ(r["object"]["container"], "c");
  EXPECT_EQ(r["object"]["stdout"], true);
  // Allowed: the request goes on (here to "no node agent").
  fake_->respond = nullptr;
  rest.Handle(req, resp);
  EXPECT_EQ(resp.status, 503);
}

// The real HTTPS transport against a TLS server on loopback.
TEST(HttpsWebhookTransportTest, VerifiesTheServerWithTheCaBundle) {
  testing::TempDir dir;
  tls::KeyPair ca = tls::GenerateCa("webhook-ca");
  tls::CertSpec spec;
  spec.common_name = "hook.default.svc";
  spec.dns_names = {"hook.default.svc"};
  spec.ip_addresses = {"127.0.0.1"};
  spec.server_auth = true;
  tls::KeyPair leaf = tls::IssueCertificate(ca, spec);
  WriteFileAtomic(dir.File("tls.crt"), leaf.cert_pem, 0644, false);
  WriteFileAtomic(dir.File("tls.key"), leaf.key_pem, 0600, false);
  http::ServerOptions so;
  so.tls = http::TlsServerOptions{dir.File("tls.crt"), dir.File("tls.key"), "", 5000};
  std::string seen_host, seen_target;
  http::Server server(so, [&](http::Request& req, http::Response& resp) {
    if (req.path == "/slow") std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    seen_host = req.Header("Host");
    seen_target = req.target;
    resp.Set(200, "application/json", "{\"echo\":" + req.body + "}");
  });
  server.Start();
  auto transport = NewHttpsWebhookTransport();
  WebhookCall call;
  call.url = "https://hook.default.svc:443/validate?timeout=5s";
  call.connect_to = "127.0.0.1:" + std::to_string(server.port());
  call.ca_pem = ca.cert_pem;
  call.body = "{\"a\":1}";
  call.timeout = std::chrono::seconds(5);
  WebhookReply reply = transport->Post(call);
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(Json::parse(reply.body), Json({{"echo", {{"a", 1}}}}));
  EXPECT_EQ(seen_host, "hook.default.svc");
  EXPECT_EQ(seen_target, "/validate?timeout=5s");

  // A clientConfig.url naming the server by address: no connect_to.
  WebhookCall direct = call;
  direct.connect_to.clear();
  direct.url = "https://127.0.0.1:" + std::to_string(server.port()) + "/direct?timeout=5s";
  EXPECT_EQ(transport->Post(direct).status, 200);
  EXPECT_EQ(seen_host, "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_EQ(seen_target, "/direct?timeout=5s");

  // timeoutSeconds: no answer in time is a failed call.
  WebhookCall slow = call;
  slow.url = "https://hook.default.svc:443/slow?timeout=1s";
  slow.timeout = std::chrono::milliseconds(300);
  try {
    transport->Post(slow);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.message(),
              "Post \"https://hook.default.svc:443/slow?timeout=1s\": context deadline exceeded");
  }

  // Another CA: the handshake fails, with the reason.
  call.ca_pem = tls::GenerateCa("other").cert_pem;
  try {
    transport->Post(call);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.message(), HasSubstr("Post \"https://hook.default.svc:443/validate?timeout=5s\": "
                                       "tls: failed to verify certificate: x509: "));
  }
  // A name the certificate does not hold.
  call.ca_pem = ca.cert_pem;
  call.url = "https://other.default.svc:443/validate";
  EXPECT_THROW(transport->Post(call), Error);
  server.Stop();
  // Nobody listening.
  call.url = "https://hook.default.svc:443/validate";
  try {
    transport->Post(call);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.message(), HasSubstr("connect: connection refused"));
  }
}

// A figure, not a timed test: what one webhook call costs on loopback
// (a new TLS connection each time, as kin makes them).
TEST(HttpsWebhookTransportTest, CostPerCall) {
  testing::TempDir dir;
  tls::KeyPair ca = tls::GenerateCa("webhook-ca");
  tls::CertSpec spec;
  spec.common_name = "hook.default.svc";
  spec.dns_names = {"hook.default.svc"};
  spec.server_auth = true;
  tls::KeyPair leaf = tls::IssueCertificate(ca, spec);
  WriteFileAtomic(dir.File("tls.crt"), leaf.cert_pem, 0644, false);
  WriteFileAtomic(dir.File("tls.key"), leaf.key_pem, 0600, false);
  http::ServerOptions so;
  so.tls = http::TlsServerOptions{dir.File("tls.crt"), dir.File("tls.key"), "", 5000};
  http::Server server(so, [](http::Request& req, http::Response& resp) {
    resp.Set(200, "application/json", req.body);
  });
  server.Start();
  auto transport = NewHttpsWebhookTransport();
  WebhookCall call;
  call.url = "https://hook.default.svc:443/validate?timeout=5s";
  call.connect_to = "127.0.0.1:" + std::to_string(server.port());
  call.ca_pem = ca.cert_pem;
  call.body = std::string(2000, 'x');
  const int n = 50;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) ASSERT_EQ(transport->Post(call).status, 200);
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                std::chrono::steady_clock::now() - start).count() / n;
  std::printf("one webhook call (TLS connect, 2 kB review, answer): %lld us\n",
              static_cast<long long>(us));
  server.Stop();
}

}  // namespace
}  // namespace kin::apiserver
