// e2e: pods whose images come from registries. Two Debian docker-registry
// servers on loopback, started by the test with their own config (storage
// in a temp dir, a free port, plain HTTP), one with htpasswd (bcrypt) Basic
// auth; skopeo pushes a small image (static busybox in one layer, an OCI
// layout the test writes) into both. The cluster's config lists them as
// insecure (plain HTTP) and a mirror for "mirror.test" whose first endpoint
// refuses connections. Then, with real kubectl 1.33:
//  - a pod of 127.0.0.1:PORT/test/x:1 is pulled (events Pulling, Pulled),
//    runs, and shows the repo digest as its imageID; a second pod of it
//    finds it present, and the blob store holds each blob once;
//  - a digest the registry lacks fails with ErrImagePull naming it;
//  - imagePullPolicy Never for an absent image: ErrImageNeverPull;
//  - the auth registry: without a pull secret ErrImagePull, then
//    ImagePullBackOff; with a kubernetes.io/dockerconfigjson Secret
//    (kubectl create secret docker-registry) it runs, and with the Secret
//    named by its ServiceAccount (imagePullPolicy Always: pulled again);
//  - mirror.test/test/x:1 comes through the mirror's second endpoint.
// Every process the test starts (the registries) is stopped by its PID.
#include <gtest/gtest.h>
#include <filesystem>
#include <memory>

#include "base/error.h"
#include "base/process.h"
#include "base/yaml.h"
#include "runtime/registry_client.h"
#include "testing/e2e_cluster.h"
#include "testing/kernel_fixture.h"
#include "testing/local_registry.h"

namespace kin {
namespace {

namespace fs = std::filesystem;
using Cluster = testing::E2eCluster;
using namespace std::chrono_literals;
using testing::FreePort;
using testing::LocalRegistry;
using testing::WriteImageLayout;

std::string PodYaml(const std::string& name, const std::string& image,
                    const std::string& extra_container = "", const std::string& extra_spec = "") {
  return "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name +
         "\nspec:\n  terminationGracePeriodSeconds: 1\n" + extra_spec +
         "  containers:\n  - name: c\n    image: " + image + "\n" + extra_container;
}

std::string WaitingReason(const Json& pod) {
  if (!pod.is_object()) return "";
  for (const auto& cs : pod["status"].value("containerStatuses", Json::array())) {
    return cs["state"].value("waiting", Json::object()).value("reason", "");
  }
  return "";
}
std::string WaitingMessage(const Json& pod) {
  for (const auto& cs : pod["status"].value("containerStatuses", Json::array())) {
    return cs["state"].value("waiting", Json::object()).value("message", "");
  }
  return "";
}

// Event reasons and messages of the pod, one per line.
std::string Events(const Cluster& c, const std::string& pod) {
  Json ev = c.GetJson({"events", "--field-selector", "involvedObject.name=" + pod});
  std::string out;
  for (const auto& e : ev.value("items", Json::array())) {
    out += e.value("reason", "") + ": " + e.value("message", "") + "\n";
  }
  return out;
}

class ImagePullE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::RequireRoot()) GTEST_SKIP() << "needs root";
  }
};

TEST_F(ImagePullE2E, PodsRunImagesPulledFromRegistriesOnLoopback) {
  testing::TempDir work;
  std::string layout = WriteImageLayout(work);
  LocalRegistry open;
  LocalRegistry locked("puller", "s3cret");
  open.Push(layout, "test/x:1");
  locked.Push(layout, "test/x:1", "puller:s3cret");
  const std::string dead = "127.0.0.1:" + std::to_string(FreePort());

  testing::WriteFile(work.File("cluster.yaml"),
                     "apiVersion: kin.dev/v1alpha1\nkind: Cluster\n"
                     "kubelet:\n  crashBackoff: 2s\n"
                     "registries:\n  mirrors:\n    mirror.test: [\"http://" +
                         dead + "\", \"http://" + open.host() + "\"]\n  insecure: [\"" +
                         open.host() + "\", \"" + locked.host() + "\"]\n");
  Cluster c('i');
  ASSERT_TRUE(c.Create({"--config", work.File("cluster.yaml")})) << c.last_output();
  const std::string image = open.host() + "/test/x:1";

  // Pulled, run, imageID the repo digest.
  c.Apply(PodYaml("p1", image));
  Json p1 = c.WaitPodReady("p1", "default", 60s);
  ASSERT_TRUE(p1.is_object()) << c.GetJson({"pod", "p1"}).dump(2) << Events(c, "p1") << c.Log();
  EXPECT_TRUE(Cluster::WaitFor([&] {
    return c.Kubectl({"logs", "p1"}).out == "pulled-ok\n";
  })) << c.Kubectl({"logs", "p1"}).out;
  std::string image_id = p1["status"]["containerStatuses"][0].value("imageID", "");
  EXPECT_EQ(image_id.rfind(open.host() + "/test/x@sha256:", 0), 0u) << image_id;
  std::string events = Events(c, "p1");
  EXPECT_NE(events.find("Pulling: Pulling image \"" + image + "\""), std::string::npos) << events;
  EXPECT_NE(events.find("Pulled: Successfully pulled image \"" + image + "\" in "),
            std::string::npos)
      << events;

  // A second pod finds it present; each blob is stored once.
  c.Apply(PodYaml("p2", image));
  ASSERT_TRUE(c.WaitPodReady("p2", "default", 60s).is_object()) << Events(c, "p2");
  events = Events(c, "p2");
  EXPECT_NE(events.find("already present on machine"), std::string::npos) << events;
  int blobs = 0;
  for (const auto& e : fs::directory_iterator(c.StateDir() + "/images/blobs/sha256")) {
    EXPECT_EQ(e.path().filename().string().rfind(".tmp", 0), std::string::npos) << e.path();
    ++blobs;
  }
  EXPECT_EQ(blobs, 2);  // the config and the one layer

  // A digest the registry lacks: ErrImagePull naming it.
  const std::string missing = "sha256:" + std::string(64, '0');
  c.Apply(PodYaml("wrong-digest", open.host() + "/test/x@" + missing));
  ASSERT_TRUE(Cluster::WaitFor([&] {
    std::string r = WaitingReason(c.GetJson({"pod", "wrong-digest"}));
    return r == "ErrImagePull" || r == "ImagePullBackOff";
  })) << c.GetJson({"pod", "wrong-digest"}).dump(2);
  EXPECT_NE(WaitingMessage(c.GetJson({"pod", "wrong-digest"})).find(missing), std::string::npos)
      << c.GetJson({"pod", "wrong-digest"}).dump(2);

  // Never: not pulled.
  c.Apply(PodYaml("never", open.host() + "/test/other:1", "    imagePullPolicy: Never\n"));
  ASSERT_TRUE(Cluster::WaitFor([&] {
    return WaitingReason(c.GetJson({"pod", "never"})) == "ErrImageNeverPull";
  })) << c.GetJson({"pod", "never"}).dump(2);
  EXPECT_NE(Events(c, "never").find("is not present with pull policy of Never"), std::string::npos);

  // Basic auth: no secret, ErrImagePull then ImagePullBackOff.
  const std::string locked_image = locked.host() + "/test/x:1";
  c.Apply(PodYaml("nosecret", locked_image));
  // (ErrImagePull shows for about a second before the back-off: the events
  // keep it.)
  ASSERT_TRUE(Cluster::WaitFor([&] {
    return Events(c, "nosecret").find("Failed: Error: ErrImagePull") != std::string::npos;
  })) << c.GetJson({"pod", "nosecret"}).dump(2);
  ASSERT_TRUE(Cluster::WaitFor([&] {
    return WaitingReason(c.GetJson({"pod", "nosecret"})) == "ImagePullBackOff";
  })) << c.GetJson({"pod", "nosecret"}).dump(2);
  events = Events(c, "nosecret");
  EXPECT_NE(events.find("requires credentials"), std::string::npos) << events;
  EXPECT_NE(events.find("BackOff: Back-off pulling image"), std::string::npos) << events;
  EXPECT_NE(events.find("Failed: Error: ImagePullBackOff"), std::string::npos) << events;

  // With a dockerconfigjson Secret: runs.
  c.Ok({"create", "secret", "docker-registry", "regcred", "--docker-server=" + locked.host(),
        "--docker-username=puller", "--docker-password=s3cret"});
  c.Apply(PodYaml("withsecret", locked_image, "", "  imagePullSecrets:\n  - name: regcred\n"));
  ASSERT_TRUE(c.WaitPodReady("withsecret", "default", 60s).is_object())
      << c.GetJson({"pod", "withsecret"}).dump(2) << Events(c, "withsecret");

  // The ServiceAccount's imagePullSecrets stand in for the pod's; Always
  // pulls again although the image is present.
  c.Ok({"create", "serviceaccount", "puller"});
  c.Ok({"patch", "serviceaccount", "puller", "-p",
        R"({"imagePullSecrets": [{"name": "regcred"}]})"});
  c.Apply(PodYaml("viasa", locked_image, "    imagePullPolicy: Always\n",
                  "  serviceAccountName: puller\n"));
  ASSERT_TRUE(c.WaitPodReady("viasa", "default", 60s).is_object())
      << c.GetJson({"pod", "viasa"}).dump(2) << Events(c, "viasa");
  events = Events(c, "viasa");
  EXPECT_NE(events.find("Pulling: Pulling image \"" + locked_image + "\""), std::string::npos)
      << events;

  // Through the mirror: its first endpoint refuses, the second serves.
  c.Apply(PodYaml("mirrored", "mirror.test/test/x:1"));
  ASSERT_TRUE(c.WaitPodReady("mirrored", "default", 60s).is_object())
      << c.GetJson({"pod", "mirrored"}).dump(2) << Events(c, "mirrored");

  // Built-in images work as before, without any registry.
  c.Apply(PodYaml("builtin", "busybox", "    command: [sleep, '3600']\n"));
  ASSERT_TRUE(c.WaitPodReady("builtin", "default", 60s).is_object()) << Events(c, "builtin");

  c.Ok({"delete", "pod", "--all", "--wait=true"});
  ASSERT_TRUE(c.Delete()) << c.last_output();
  EXPECT_EQ(c.Leftovers(), std::vector<std::string>{});
}

}  // namespace
}  // namespace kin
