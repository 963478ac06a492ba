// `agnhost webhook`'s answers, as upstream's handlers give them.
#include "runtime/agnhost_webhook.h"

#include <gtest/gtest.h>

#include "base/strings.h"

namespace kin::agnhost {
namespace {

Json Review(const std::string& resource, Json object) {
  return {{"apiVersion", "admission.k8s.io/v1"},
          {"kind", "AdmissionReview"},
          {"request",
           {{"uid", "u1"},
            {"resource", {{"group", ""}, {"version", "v1"}, {"resource", resource}}},
            {"object", object}}}};
}

Json PatchOf(const Json& response) {
  EXPECT_EQ(response["patchType"], "JSONPatch");
  return Json::parse(*Base64Decode(response["patch"].get<std::string>()));
}

TEST(AgnhostWebhookTest, AlwaysDenyAndUnknownPaths) {
  Json r = WebhookResponse("/always-deny", Review("pods", Json::object()));
  EXPECT_EQ(r["allowed"], false);
  EXPECT_EQ(r["status"]["message"], "this webhook denies all requests");
  EXPECT_TRUE(WebhookResponse("/nope", Review("pods", Json::object())).is_null());
  EXPECT_EQ(WebhookResponse("/always-allow-delay-5s", Review("pods", {}))["allowed"], true);
}

TEST(AgnhostWebhookTest, AddLabel) {
  Json r = WebhookResponse("/add-label", Review("pods", {{"metadata", {{"name", "p"}}}}));
  EXPECT_EQ(PatchOf(r), Json::parse(R"([{"op":"add","path":"/metadata/labels",
                                         "value":{"added-label":"yes"}}])"));
  r = WebhookResponse("/add-label", Review("pods", {{"metadata", {{"labels", {{"a", "b"}}}}}}));
  EXPECT_EQ(PatchOf(r)[0]["path"], "/metadata/labels/added-label");
  r = WebhookResponse("/add-label",
                      Review("pods", {{"metadata", {{"labels", {{"added-label", "yes"}}}}}}));
  EXPECT_EQ(r, Json({{"allowed", true}}));
}

TEST(AgnhostWebhookTest, Pods) {
  Json pod = {{"metadata", {{"labels", {{"webhook-e2e-test", "webhook-disallow"}}}}},
              {"spec", {{"containers", Json::array({{{"name", "webhook-disallow"}}})}}}};
  Json r = WebhookResponse("/pods", Review("pods", pod));
  EXPECT_EQ(r["allowed"], false);
  EXPECT_EQ(r["status"]["message"],
            "the pod contains unwanted label; the pod contains unwanted container name;");
  pod["metadata"]["labels"] = Json::object();
  pod["spec"]["containers"][0]["name"] = "fine";
  EXPECT_EQ(WebhookResponse("/pods", Review("pods", pod))["allowed"], true);
  r = WebhookResponse("/pods", Review("configmaps", pod));
  EXPECT_EQ(r["allowed"], false);
  EXPECT_EQ(r["status"]["message"], "expect resource to be { v1 pods}");
}

TEST(AgnhostWebhookTest, MutatingPods) {
  Json pod = {{"metadata", {{"name", "webhook-to-be-mutated"}}}, {"spec", Json::object()}};
  Json patch = PatchOf(WebhookResponse("/mutating-pods", Review("pods", pod)));
  EXPECT_EQ(patch[0]["path"], "/spec/initContainers");
  EXPECT_EQ(patch[0]["value"][0]["name"], "webhook-added-init-container");
  pod["metadata"]["name"] = "other";
  EXPECT_EQ(WebhookResponse("/mutating-pods", Review("pods", pod)), Json({{"allowed", true}}));
}

TEST(AgnhostWebhookTest, ConfigMaps) {
  Json r = WebhookResponse("/configmaps",
                           Review("configmaps", {{"data", {{"webhook-e2e-test", "webhook-disallow"}}}}));
  EXPECT_EQ(r["allowed"], false);
  EXPECT_EQ(r["status"]["reason"], "the configmap contains unwanted key and value");
  r = WebhookResponse("/mutating-configmaps", Review("configmaps", {{"data", {{"mutation-start", "yes"}}}}));
  EXPECT_EQ(PatchOf(r)[0]["path"], "/data/mutation-stage-1");
}

}  // namespace
}  // namespace kin::agnhost
