#include "apiserver/service_account_admission.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace kin::apiserver {
namespace {

Json Pod() {
  return Json::parse(R"({"apiVersion":"v1","kind":"Pod",
    "metadata":{"name":"p","namespace":"team"},
    "spec":{"serviceAccountName":"default",
      "initContainers":[{"name":"init","image":"busybox"}],
      "containers":[{"name":"a","image":"busybox","volumeMounts":[{"name":"data","mountPath":"/data"}]},
                    {"name":"b","image":"busybox"}],
      "volumes":[{"name":"data","emptyDir":{}}]}})");
}

// Suffixes handed out in order, then "zzzzz".
struct Suffixes {
  std::vector<std::string> list;
  size_t next = 0;
  std::string operator()() { return next < list.size() ? list[next++] : "zzzzz"; }
};

std::string Mount(Suffixes s, const Json& sa, Json& pod) {
  return MountServiceAccountToken(sa, pod, [&s] { return s(); });
}

TEST(ServiceAccountAdmission, AddsTheProjectedVolumeAndAMountToEveryContainer) {
  Json pod = Pod();
  EXPECT_EQ(Mount({{"x2b4c"}}, Json::object(), pod), "kube-api-access-x2b4c");
  const Json& spec = pod["spec"];
  ASSERT_EQ(spec["volumes"].size(), 2u);
  EXPECT_EQ(spec["volumes"][0]["name"], "data");
  EXPECT_EQ(spec["volumes"][1], Json::parse(R"({"name":"kube-api-access-x2b4c","projected":{
    "defaultMode":420,"sources":[
      {"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}},
      {"configMap":{"name":"kube-root-ca.crt","items":[{"key":"ca.crt","path":"ca.crt"}]}},
      {"downwardAPI":{"items":[{"path":"namespace",
        "fieldRef":{"apiVersion":"v1","fieldPath":"metadata.namespace"}}]}}]}})"));
  const Json mount = Json::parse(R"({"name":"kube-api-access-x2b4c","readOnly":true,
    "mountPath":"/var/run/secrets/kubernetes.io/serviceaccount"})");
  ASSERT_EQ(spec["initContainers"][0]["volumeMounts"].size(), 1u);
  EXPECT_EQ(spec["initContainers"][0]["volumeMounts"][0], mount);
  ASSERT_EQ(spec["containers"][0]["volumeMounts"].size(), 2u);
  EXPECT_EQ(spec["containers"][0]["volumeMounts"][0]["name"], "data");
  EXPECT_EQ(spec["containers"][0]["volumeMounts"][1], mount);
  ASSERT_EQ(spec["containers"][1]["volumeMounts"].size(), 1u);
  EXPECT_EQ(spec["containers"][1]["volumeMounts"][0], mount);
}

TEST(ServiceAccountAdmission, EphemeralContainersAndMirrorPodsAreLeftAlone) {
  Json pod = Pod();
  pod["spec"]["ephemeralContainers"] = Json::parse(R"([{"name":"debug","image":"busybox"}])");
  Mount({{"abcde"}}, Json::object(), pod);
  EXPECT_FALSE(pod["spec"]["ephemeralContainers"][0].contains("volumeMounts"));

  Json mirror = Pod();
  mirror["metadata"]["annotations"] = {{"kubernetes.io/config.mirror", "x"}};
  const Json before = mirror;
  EXPECT_EQ(Mount({{"abcde"}}, Json::object(), mirror), "");
  EXPECT_EQ(mirror, before);
}

TEST(ServiceAccountAdmission, AutomountFalseOnThePodOrTheServiceAccount) {
  Json pod = Pod();
  pod["spec"]["automountServiceAccountToken"] = false;
  Json before = pod;
  EXPECT_EQ(Mount({}, Json::object(), pod), "");
  EXPECT_EQ(pod, before);

  const Json sa_off = {{"metadata", {{"name", "default"}}},
                       {"automountServiceAccountToken", false}};
  pod = Pod();
  before = pod;
  EXPECT_EQ(Mount({}, sa_off, pod), "");
  EXPECT_EQ(pod, before);

  // The pod's preference wins over the ServiceAccount's.
  pod = Pod();
  pod["spec"]["automountServiceAccountToken"] = true;
  EXPECT_NE(Mount({}, sa_off, pod), "");
  pod = Pod();
  pod["spec"]["automountServiceAccountToken"] = false;
  EXPECT_EQ(Mount({}, {{"automountServiceAccountToken", true}}, pod), "");

  EXPECT_TRUE(ShouldAutomountServiceAccountToken(Json::object(), Pod()));
}

TEST(ServiceAccountAdmission, AContainerThatMountsThePathKeepsItsOwnMount) {
  Json pod = Pod();
  pod["spec"]["containers"][1]["volumeMounts"] = Json::parse(
      R"([{"name":"data","mountPath":"/var/run/secrets/kubernetes.io/serviceaccount"}])");
  EXPECT_EQ(Mount({{"abcde"}}, Json::object(), pod), "kube-api-access-abcde");
  EXPECT_EQ(pod["spec"]["containers"][1]["volumeMounts"].size(), 1u);
  EXPECT_EQ(pod["spec"]["containers"][1]["volumeMounts"][0]["name"], "data");
  EXPECT_EQ(pod["spec"]["containers"][0]["volumeMounts"].size(), 2u);

  // Every container mounts the path itself: no volume is added.
  Json all = Json::parse(R"({"metadata":{"name":"p"},"spec":{"containers":[{"name":"a",
    "volumeMounts":[{"name":"t","mountPath":"/var/run/secrets/kubernetes.io/serviceaccount"}]}],
    "volumes":[{"name":"t","secret":{"secretName":"s"}}]}})");
  const Json before = all;
  EXPECT_EQ(Mount({{"abcde"}}, Json::object(), all), "");
  EXPECT_EQ(all, before);
}

TEST(ServiceAccountAdmission, AKubeApiAccessVolumeThePodHasIsMountedNotAddedAgain) {
  // A pod re-created from another's spec (kubectl get -o yaml | kubectl
  // create) brings its kube-api-access-* volume: that one is mounted.
  Json pod = Pod();
  pod["spec"]["volumes"].push_back(Json::parse(R"({"name":"kube-api-access-aaaaa",
    "projected":{"sources":[]}})"));
  EXPECT_EQ(Mount({{"bbbbb"}}, Json::object(), pod), "kube-api-access-aaaaa");
  EXPECT_EQ(pod["spec"]["volumes"].size(), 2u);
  EXPECT_EQ(pod["spec"]["containers"][1]["volumeMounts"][0]["name"], "kube-api-access-aaaaa");
}

TEST(ServiceAccountAdmission, TheGeneratedNameNeverTakesAVolumesName) {
  // Every name the pod has is taken; "kube-api-access" (no dash) is no
  // token volume, and a suffix that makes a taken name is asked for again.
  Json pod = Json::parse(R"({"metadata":{"name":"p"},"spec":{"containers":[{"name":"a"}],
    "volumes":[{"name":"kube-api-access","emptyDir":{}}]}})");
  Suffixes s{{"", "ccccc"}};
  pod["spec"]["volumes"].push_back({{"name", "data"}, {"emptyDir", Json::object()}});
  EXPECT_EQ(MountServiceAccountToken(Json::object(), pod, [&s] { return s(); }),
            "kube-api-access-ccccc");
  ASSERT_EQ(pod["spec"]["volumes"].size(), 3u);
  EXPECT_EQ(pod["spec"]["volumes"][0]["name"], "kube-api-access");
  EXPECT_EQ(pod["spec"]["volumes"][2]["name"], "kube-api-access-ccccc");
}

}  // namespace
}  // namespace kin::apiserver
