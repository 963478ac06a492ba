// e2e: Endpoints and EndpointSlices follow pods (readiness, deletion,
// creation, named targetPorts), a Service's slices go with it, `kubectl
// delete --cascade=background|foreground|orphan` acts on ownerReferences as
// on a real cluster (foreground returns), and a deleted namespace takes its
// content with it. One `--nodes 2` cluster, kubectl 1.33, bare pods.
#include <gtest/gtest.h>

#include <memory>
#include <set>

#include "base/yaml.h"
#include "testing/e2e_cluster.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin {
namespace {

using Cluster = testing::E2eCluster;
using namespace std::chrono_literals;

std::string Joined(const std::set<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += s + " ";
  return out;
}

// A busybox pod labelled app=web, Ready while /tmp/ready exists, with a
// container port named http at `port`; it ends at once on SIGTERM.
std::string WebPod(const std::string& name, int port, bool ready_at_start) {
  std::string script = std::string(ready_at_start ? "touch /tmp/ready; " : "") +
                       "trap \"exit 0\" TERM; while true; do sleep 1; done";
  return "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name +
         "\n  labels: {app: web}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n"
         "  - name: c\n    image: busybox\n    command: [sh, -c, '" +
         script + "']\n    ports: [{name: http, containerPort: " + std::to_string(port) +
         "}]\n    readinessProbe:\n      exec: {command: [cat, /tmp/ready]}\n"
         "      periodSeconds: 1\n";
}

std::string ConfigMap(const std::string& name, const Json& owner = nullptr, bool block = false) {
  Json cm = {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", name}}}};
  if (!owner.is_null()) {
    cm["metadata"]["ownerReferences"] = {{{"apiVersion", "v1"},
                                          {"kind", "ConfigMap"},
                                          {"name", owner["metadata"]["name"]},
                                          {"uid", owner["metadata"]["uid"]},
                                          {"blockOwnerDeletion", block}}};
  }
  return cm.dump();
}

std::string OwnedPod(const std::string& name, const Json& owner) {
  Json pod = ParseYaml(WebPod(name, 8080, true));
  pod["metadata"]["labels"] = {{"app", "owned"}};
  pod["metadata"]["ownerReferences"] = {{{"apiVersion", "v1"},
                                         {"kind", "ConfigMap"},
                                         {"name", owner["metadata"]["name"]},
                                         {"uid", owner["metadata"]["uid"]},
                                         {"blockOwnerDeletion", true}}};
  return pod.dump();
}

class EndpointsGcE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!testing::RequireRoot()) return;
    cluster_ = new Cluster('g');
    created_ = cluster_->Create({"--nodes", "2"});
  }
  static void TearDownTestSuite() {
    if (!cluster_) return;
    EXPECT_TRUE(cluster_->Delete());
    EXPECT_EQ(cluster_->Leftovers(), std::vector<std::string>{});
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override {
    if (!testing::RequireRoot()) GTEST_SKIP() << "needs root";
    ASSERT_TRUE(created_) << cluster_->last_output() << cluster_->Log();
  }
  Cluster& c() { return *cluster_; }

  // "ready:NAME" / "notready:NAME" of the Service's Endpoints.
  std::set<std::string> Endpoints(const std::string& svc) {
    std::set<std::string> out;
    Json ep = c().GetJson({"endpoints", svc});
    if (ep.is_null()) return {"<none>"};
    for (const auto& s : ep.value("subsets", Json::array())) {
      for (const auto& a : s.value("addresses", Json::array()))
        out.insert("ready:" + a["targetRef"].value("name", ""));
      for (const auto& a : s.value("notReadyAddresses", Json::array()))
        out.insert("notready:" + a["targetRef"].value("name", ""));
    }
    return out;
  }
  // "NAME:ready:PORT" / "NAME:notready:PORT" of the Service's EndpointSlices.
  std::set<std::string> Slices(const std::string& svc, size_t* count = nullptr) {
    std::set<std::string> out;
    Json list = c().GetJson({"endpointslices", "-l", "kubernetes.io/service-name=" + svc});
    if (list.is_null()) return {"<error>"};
    if (count) *count = list["items"].size();
    for (const auto& s : list["items"]) {
      std::string port = s.value("ports", Json::array()).empty()
                             ? "-"
                             : std::to_string(s["ports"][0].value("port", 0));
      for (const auto& e : s.value("endpoints", Json::array())) {
        bool ready = e["conditions"].value("ready", false);
        out.insert(e["targetRef"].value("name", "") + (ready ? ":ready:" : ":notready:") + port);
      }
    }
    return out;
  }
  bool Gone(const std::vector<std::string>& what) { return c().GetJson(what).is_null(); }

  static Cluster* cluster_;
  static bool created_;
};
Cluster* EndpointsGcE2E::cluster_ = nullptr;
bool EndpointsGcE2E::created_ = false;

TEST_F(EndpointsGcE2E, EndpointsAndSlicesFollowReadyPods) {
  c().Apply(
      "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n"
      "  ports: [{name: http, port: 80, targetPort: http}]\n");
  c().Apply(WebPod("web-1", 8080, false));
  c().Apply(WebPod("web-2", 9090, false));
  // Running with IPs but not Ready: listed as not ready, each with its own
  // port (the named targetPort resolves per pod, so two slices).
  std::set<std::string> got;
  size_t slices = 0;
  ASSERT_TRUE(c().WaitFor([&] {
    got = Slices("web", &slices);
    return got == std::set<std::string>{"web-1:notready:8080", "web-2:notready:9090"};
  })) << Joined(got) << c().Log();
  EXPECT_EQ(slices, 2u);
  std::set<std::string> want = {"notready:web-1", "notready:web-2"};
  ASSERT_TRUE(c().WaitFor([&] { return (got = Endpoints("web")) == want; })) << Joined(got);
  Json ep = c().GetJson({"endpoints", "web"});
  EXPECT_EQ(ep["subsets"].size(), 2u) << ep.dump(2);

  // web-1 turns Ready, then web-2; then web-1 not Ready again.
  c().Ok({"exec", "web-1", "--", "touch", "/tmp/ready"});
  ASSERT_TRUE(c().WaitFor([&] {
    got = Slices("web");
    return got == std::set<std::string>{"web-1:ready:8080", "web-2:notready:9090"};
  })) << Joined(got);
  want = {"ready:web-1", "notready:web-2"};
  ASSERT_TRUE(c().WaitFor([&] { return (got = Endpoints("web")) == want; })) << Joined(got);
  c().Ok({"exec", "web-2", "--", "touch", "/tmp/ready"});
  c().Ok({"exec", "web-1", "--", "rm", "/tmp/ready"});
  ASSERT_TRUE(c().WaitFor([&] {
    got = Slices("web");
    return got == std::set<std::string>{"web-1:notready:8080", "web-2:ready:9090"};
  })) << Joined(got);
  want = {"notready:web-1", "ready:web-2"};
  ASSERT_TRUE(c().WaitFor([&] { return (got = Endpoints("web")) == want; })) << Joined(got);
  // The Endpoints' addresses are the pods' IPs, with their nodes.
  Json pod2 = c().GetJson({"pod", "web-2"});
  ep = c().GetJson({"endpoints", "web"});
  bool found = false;
  for (const auto& s : ep["subsets"]) {
    for (const auto& a : s.value("addresses", Json::array())) {
      found = true;
      EXPECT_EQ(a["ip"], pod2["status"]["podIP"]);
      EXPECT_EQ(a["nodeName"], pod2["spec"]["nodeName"]);
      EXPECT_EQ(s["ports"][0]["port"], 9090);
    }
  }
  EXPECT_TRUE(found) << ep.dump(2);

  // web-2 is deleted, web-3 created (Ready at once).
  c().Ok({"delete", "pod", "web-2", "--wait=false"});
  c().Apply(WebPod("web-3", 8080, true));
  ASSERT_TRUE(c().WaitFor([&] {
    got = Slices("web");
    return got == std::set<std::string>{"web-1:notready:8080", "web-3:ready:8080"};
  })) << Joined(got);
  want = {"notready:web-1", "ready:web-3"};
  ASSERT_TRUE(c().WaitFor([&] { return (got = Endpoints("web")) == want; })) << Joined(got);
  // web-1 and web-3 share a port now: one slice.
  Slices("web", &slices);
  EXPECT_EQ(slices, 1u);

  // Deleting the Service removes its slices (garbage collector) and Endpoints.
  c().Ok({"delete", "service", "web"});
  ASSERT_TRUE(c().WaitFor([&] {
    got = Slices("web", &slices);
    return slices == 0;
  })) << Joined(got);
  ASSERT_TRUE(c().WaitFor([&] { return Gone({"endpoints", "web"}); }));
  c().Ok({"delete", "pod", "web-1", "web-3", "--wait=false"});
}

TEST_F(EndpointsGcE2E, CascadingDeletion) {
  // Background: the owner goes at once, its dependents after it.
  c().Apply(ConfigMap("owner-bg"));
  Json bg = c().GetJson({"configmap", "owner-bg"});
  c().Apply(ConfigMap("dep-bg", bg, false));
  c().Ok({"delete", "configmap", "owner-bg", "--cascade=background"});
  ASSERT_TRUE(c().WaitFor([&] { return Gone({"configmap", "dep-bg"}); }));

  // Foreground: kubectl returns once the dependents, a pod that blocks
  // included, are gone, and the owner after them.
  c().Apply(ConfigMap("owner-fg"));
  Json fg = c().GetJson({"configmap", "owner-fg"});
  c().Apply(ConfigMap("dep-fg", fg, true));
  c().Apply(OwnedPod("pod-fg", fg));
  ASSERT_FALSE(c().WaitPodReady("pod-fg").is_null());
  c().Ok({"delete", "configmap", "owner-fg", "--cascade=foreground", "--timeout=60s"});
  EXPECT_TRUE(Gone({"configmap", "owner-fg"}));
  EXPECT_TRUE(Gone({"configmap", "dep-fg"}));
  EXPECT_TRUE(Gone({"pod", "pod-fg"}));

  // Orphan: the owner goes, its dependents stay without the reference.
  c().Apply(ConfigMap("owner-or"));
  Json orphan = c().GetJson({"configmap", "owner-or"});
  c().Apply(ConfigMap("dep-or", orphan, true));
  c().Apply(OwnedPod("pod-or", orphan));
  // The collector's caches see the dependents before their owner goes (as
  // on a real cluster, where they exist well before).
  ASSERT_FALSE(c().WaitPodReady("pod-or").is_null());
  c().Ok({"delete", "configmap", "owner-or", "--cascade=orphan", "--timeout=60s"});
  EXPECT_TRUE(Gone({"configmap", "owner-or"}));
  Json dep = c().GetJson({"configmap", "dep-or"});
  ASSERT_FALSE(dep.is_null());
  EXPECT_FALSE(dep["metadata"].contains("ownerReferences")) << dep.dump(2);
  Json pod = c().GetJson({"pod", "pod-or"});
  ASSERT_FALSE(pod.is_null());
  EXPECT_FALSE(pod["metadata"].contains("ownerReferences")) << pod.dump(2);
  EXPECT_FALSE(pod["metadata"].contains("deletionTimestamp"));
  c().Ok({"delete", "pod", "pod-or", "--wait=false"});
}

TEST_F(EndpointsGcE2E, DeletingANamespaceRemovesItsContentThenIt) {
  c().Ok({"create", "namespace", "doomed"});
  c().Apply(ConfigMap("c"), "doomed");
  c().Apply(WebPod("p", 8080, true), "doomed");
  ASSERT_FALSE(c().WaitPodReady("p", "doomed").is_null());
  // kubectl waits until the namespace is gone.
  c().Ok({"delete", "namespace", "doomed", "--timeout=60s"});
  EXPECT_TRUE(Gone({"namespace", "doomed"}));
  std::string left = c().Ok({"get", "pods,configmaps", "-n", "doomed", "-o", "name"});
  EXPECT_EQ(left, "");
}

}  // namespace
}  // namespace kin
