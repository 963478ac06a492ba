// e2e: real kubectl (fixed versions 1.27, 1.30, 1.33, default validation, a
// fresh --cache-dir) against a cluster made by `kin cluster create`, over
// TLS with client certificates; and the official Python client.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>

#include "base/http_client.h"
#include "base/process.h"
#include "base/yaml.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin {
namespace {

using testing::KinBinary;
using testing::TempDir;

class KubectlE2E : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() { cluster_ = new testing::SuiteCluster('k'); }
  static void TearDownTestSuite() { delete cluster_; }
  void SetUp() override {
    ASSERT_TRUE(cluster_->error().empty()) << cluster_->error();
    k_ = std::make_unique<testing::KubectlRunner>(GetParam(), cluster_->Kubeconfig());
    if (!k_->installed()) {
      if (std::getenv("CI")) FAIL() << k_->binary() << " is missing";
      GTEST_SKIP() << k_->binary() << " is not installed";
    }
    // Each test works in a namespace of its own, so the versions' runs do
    // not meet, nor does a test meet the previous one's namespace while it
    // terminates (its busybox pods take their 30 s grace period, sleep being
    // PID 1) when the whole binary runs in one process on one cluster.
    static int tests_run = 0;
    ns_ = "kt-" + std::string(GetParam()).replace(1, 1, "-") + "-" + std::to_string(++tests_run);
    Kubectl({"create", "namespace", ns_});
  }
  void TearDown() override {
    if (!ns_.empty()) Kubectl({"delete", "namespace", ns_, "--wait=false"});
  }
  CommandResult Kubectl(std::vector<std::string> args, const std::string& input = "") {
    return k_->Run(args, input);
  }
  // Runs kubectl and expects success; returns stdout.
  std::string Ok(std::vector<std::string> args, const std::string& input = "") {
    return k_->Ok(args, input);
  }
  std::vector<std::string> N(std::vector<std::string> args) {
    args.push_back("-n");
    args.push_back(ns_);
    return args;
  }

  static testing::SuiteCluster* cluster_;
  std::unique_ptr<testing::KubectlRunner> k_;
  std::string ns_;
};

testing::SuiteCluster* KubectlE2E::cluster_ = nullptr;

const char* kDeployment = R"(apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.k8s.io/e2e-test-images/agnhost:2.52
        args: ["netexec", "--http-port=8080"]
        ports:
        - containerPort: 8080
        env:
        - {name: A, value: "1"}
)";

TEST_P(KubectlE2E, DiscoveryVersionAndClusterInfo) {
  std::string v = Ok({"version"});
  EXPECT_NE(v.find("Server Version: "), std::string::npos) << v;
  EXPECT_NE(v.find("v1.31.0+kin"), std::string::npos) << v;
  std::string ar = Ok({"api-resources"});
  for (const char* want :
       {"pods", "po", "deployments", "deploy", "apps/v1", "endpointslices", "leases"}) {
    EXPECT_NE(ar.find(want), std::string::npos) << want << "\n" << ar;
  }
  std::string ci = Ok({"cluster-info"});
  EXPECT_NE(ci.find("is running at"), std::string::npos) << ci;
  EXPECT_NE(ci.find("https://127.0.0.1:"), std::string::npos) << ci;
}

TEST_P(KubectlE2E, CreateApplyGetAndOutputFormats) {
  std::string created = Ok(N({"create", "-f", "-"}), kDeployment);
  EXPECT_NE(created.find("deployment.apps/web created"), std::string::npos) << created;
  std::string wide = Ok(N({"get", "deploy", "-o", "wide"}));
  EXPECT_NE(wide.find("READY"), std::string::npos) << wide;
  EXPECT_NE(wide.find("agnhost:2.52"), std::string::npos) << wide;
  Json j = Json::parse(Ok(N({"get", "deployment", "web", "-o", "json"})));
  EXPECT_EQ(j["spec"]["replicas"], 2);
  Json y = ParseYaml(Ok(N({"get", "deploy/web", "-o", "yaml"})));
  EXPECT_EQ(y["metadata"]["name"], "web");
  EXPECT_EQ(Ok(N({"get", "deploy", "-o", "name"})), "deployment.apps/web\n");
  EXPECT_EQ(
      Ok(N({"get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].name}"})),
      "web");
  std::string labels = Ok(N({"get", "deploy", "--show-labels"}));
  EXPECT_NE(labels.find("app=web"), std::string::npos) << labels;
  EXPECT_NE(Ok(N({"get", "deploy", "-l", "app=web"})).find("web"), std::string::npos);
  EXPECT_EQ(Kubectl(N({"get", "deploy", "-l", "app=nope"})).err.find("No resources found"), 0u);
  std::string all = Ok(N({"get", "all"}));
  EXPECT_NE(all.find("deployment.apps/web"), std::string::npos) << all;
  std::string across = Ok({"get", "deploy", "-A"});
  EXPECT_NE(across.find(ns_), std::string::npos) << across;

  // apply: create, then change (client-side), then server-side.
  std::string changed = kDeployment;
  changed.replace(changed.find("replicas: 2"), 11, "replicas: 3");
  std::string applied =
      Ok(N({"apply", "-f", "-"}),
         std::string(kDeployment)
             .replace(std::string(kDeployment).find("name: web\n"), 9, "name: app\n"));
  EXPECT_NE(applied.find("deployment.apps/app created"), std::string::npos) << applied;
  std::string changed_app = changed;
  changed_app.replace(changed_app.find("name: web\n"), 9, "name: app\n");
  EXPECT_NE(Ok(N({"apply", "-f", "-"}), changed_app).find("configured"), std::string::npos);
  EXPECT_EQ(Ok(N({"get", "deploy", "app", "-o", "jsonpath={.spec.replicas}"})), "3");
  std::string ssa = changed_app;
  ssa.replace(ssa.find("replicas: 3"), 11, "replicas: 4");
  std::string ssa_out = Ok(N({"apply", "--server-side", "--force-conflicts", "-f", "-"}), ssa);
  EXPECT_NE(ssa_out.find("serverside-applied"), std::string::npos) << ssa_out;
  EXPECT_EQ(Ok(N({"get", "deploy", "app", "-o", "jsonpath={.spec.replicas}"})), "4");
}

TEST_P(KubectlE2E, ImperativeCommands) {
  Ok(N({"create", "configmap", "cfg", "--from-literal=a=1"}));
  Ok(N({"create", "secret", "generic", "sec", "--from-literal=password=s3cret"}));
  // (The namespace goes before "--": what follows is the container's command.)
  Ok({"create", "deployment", "d", "--image=busybox", "--replicas=1", "-n", ns_, "--", "sleep",
      "3600"});
  EXPECT_EQ(Ok(N({"get", "cm", "cfg", "-o", "jsonpath={.data.a}"})), "1");
  EXPECT_EQ(Ok(N({"get", "secret", "sec", "-o", "jsonpath={.data.password}"})), "czNjcmV0");
  Ok(N({"label", "deploy", "d", "tier=front"}));
  Ok(N({"annotate", "deploy", "d", "note=hello"}));
  Ok(N({"set", "image", "deploy/d", "busybox=busybox:1.36"}));
  Ok(N({"scale", "deploy", "d", "--replicas=3"}));
  Json d = Json::parse(Ok(N({"get", "deploy", "d", "-o", "json"})));
  EXPECT_EQ(d["metadata"]["labels"]["tier"], "front");
  EXPECT_EQ(d["metadata"]["annotations"]["note"], "hello");
  EXPECT_EQ(d["spec"]["template"]["spec"]["containers"][0]["image"], "busybox:1.36");
  EXPECT_EQ(d["spec"]["replicas"], 3);
  EXPECT_EQ(d["metadata"]["generation"], 3);  // image and replicas changed the spec
  // wait: the deployment controller sets Available once the pods run.
  std::string waited = Ok(N({"wait", "--for=condition=Available", "deploy/d", "--timeout=60s"}));
  EXPECT_NE(waited.find("condition met"), std::string::npos) << waited;
  // An Event about the deployment, as a controller records it.
  Json dep = Json::parse(Ok(N({"get", "deploy", "d", "-o", "json"})));
  Json event = {{"apiVersion", "v1"},
                {"kind", "Event"},
                {"metadata", {{"name", "d.1"}}},
                {"involvedObject",
                 {{"kind", "Deployment"},
                  {"apiVersion", "apps/v1"},
                  {"name", "d"},
                  {"namespace", ns_},
                  {"uid", dep["metadata"]["uid"]}}},
                {"reason", "ScalingReplicaSet"},
                {"message", "Scaled up replica set d-abc to 3"},
                {"type", "Normal"},
                {"source", {{"component", "deployment-controller"}}},
                {"count", 1},
                {"firstTimestamp", dep["metadata"]["creationTimestamp"]},
                {"lastTimestamp", dep["metadata"]["creationTimestamp"]}};
  Ok(N({"create", "-f", "-"}), event.dump());
  std::string events = Ok(N({"get", "events"}));
  EXPECT_NE(events.find("ScalingReplicaSet"), std::string::npos) << events;
  EXPECT_NE(events.find("deployment/d"), std::string::npos) << events;
  std::string described = Ok(N({"describe", "deploy", "d"}));
  EXPECT_NE(described.find("Scaled up replica set d-abc to 3"), std::string::npos) << described;
  EXPECT_NE(described.find("Replicas:"), std::string::npos) << described;
  EXPECT_NE(described.find("busybox:1.36"), std::string::npos) << described;
  std::string explained = Ok({"explain", "pod.spec.containers"});
  EXPECT_NE(explained.find("image"), std::string::npos) << explained;
}

TEST_P(KubectlE2E, DeleteAndErrors) {
  Ok(N({"create", "-f", "-"}), kDeployment);
  EXPECT_NE(Ok(N({"delete", "-f", "-"}), kDeployment).find("deleted"), std::string::npos);
  Ok(N({"create", "configmap", "x1", "--from-literal=a=1"}));
  Ok(N({"label", "cm", "x1", "group=g"}));
  Ok(N({"create", "configmap", "x2", "--from-literal=a=1"}));
  Ok(N({"label", "cm", "x2", "group=g"}));
  EXPECT_NE(Ok(N({"delete", "cm", "-l", "group=g"})).find("configmap \"x2\" deleted"),
            std::string::npos);
  Ok(N({"create", "configmap", "x3"}));
  Ok(N({"delete", "cm", "x3"}));

  CommandResult nf = Kubectl(N({"get", "pod", "nope"}));
  EXPECT_NE(nf.status.code, 0);
  EXPECT_NE(nf.err.find("Error from server (NotFound): pods \"nope\" not found"), std::string::npos)
      << nf.err;
  Ok(N({"create", "configmap", "dup"}));
  CommandResult dup = Kubectl(N({"create", "configmap", "dup"}));
  EXPECT_NE(dup.err.find("configmaps \"dup\" already exists"), std::string::npos) << dup.err;
  CommandResult inv =
      Kubectl(N({"create", "-f", "-"}),
              "apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec: {containers: []}\n");
  EXPECT_NE(inv.err.find("The Pod \"bad\" is invalid: spec.containers: Required value"),
            std::string::npos)
      << inv.err;
  CommandResult unknown =
      Kubectl(N({"create", "-f", "-"}),
              "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: u}\ndatta: {a: b}\n");
  EXPECT_NE(unknown.status.code, 0);
  EXPECT_NE(unknown.err.find("unknown field \"datta\""), std::string::npos) << unknown.err;
  // A conflict: update with a stale resourceVersion.
  Json cm = Json::parse(Ok(N({"get", "cm", "dup", "-o", "json"})));
  Ok(N({"label", "cm", "dup", "touched=yes"}));
  CommandResult conflict = Kubectl(N({"replace", "-f", "-"}), cm.dump());
  EXPECT_NE(conflict.err.find("the object has been modified"), std::string::npos) << conflict.err;
  // Deleting a namespace.
  Ok({"create", "namespace", ns_ + "-gone"});
  Ok({"create", "configmap", "c", "-n", ns_ + "-gone"});
  Ok({"delete", "namespace", ns_ + "-gone"});
  EXPECT_NE(Kubectl({"get", "namespace", ns_ + "-gone"}).err.find("not found"), std::string::npos);
}

TEST_P(KubectlE2E, WatchPrintsChanges) {
  SpawnOptions o;
  o.argv = {k_->binary(),
            "--kubeconfig",
            cluster_->Kubeconfig(),
            "--cache-dir",
            k_->dir().path(),
            "get",
            "configmaps",
            "-w",
            "-n",
            ns_,
            "--output-watch-events"};
  o.stdout_mode = SpawnOptions::Stdio::kPipe;
  o.stderr_mode = SpawnOptions::Stdio::kNull;
  ChildProcess watch = ChildProcess::Spawn(o);
  fcntl(watch.stdout_pipe().get(), F_SETFL, O_NONBLOCK);
  std::string seen;
  auto read_some = [&] {
    char buf[4096];
    ssize_t n = ::read(watch.stdout_pipe().get(), buf, sizeof buf);
    if (n > 0) seen.append(buf, n);
  };
  // A line of `--output-watch-events` output: "EVENT   NAME   DATA   AGE".
  auto has_event = [&](const std::string& type, const std::string& name) {
    std::istringstream lines(seen);
    for (std::string line; std::getline(lines, line);) {
      std::istringstream f(line);
      std::string t, n;
      f >> t >> n;
      if (t == type && n == name) return true;
    }
    return false;
  };
  // The watch may start after the first create: create again until seen.
  int tries = 0;
  std::string seen_name;
  bool added = testing::Eventually(
      [&] {
        std::string name = "watched" + std::to_string(tries++);
        Kubectl(N({"create", "configmap", name}));
        read_some();
        for (int i = 0; i < tries; ++i) {
          if (has_event("ADDED", "watched" + std::to_string(i))) {
            seen_name = "watched" + std::to_string(i);
            return true;
          }
        }
        return false;
      },
      std::chrono::seconds(20));
  ASSERT_TRUE(added) << seen;
  Ok(N({"label", "configmap", seen_name, "changed=yes"}));
  EXPECT_TRUE(testing::Eventually(
      [&] {
        read_some();
        return has_event("MODIFIED", seen_name);
      },
      std::chrono::seconds(20)))
      << seen;
  Ok(N({"delete", "configmap", seen_name}));
  EXPECT_TRUE(testing::Eventually(
      [&] {
        read_some();
        return has_event("DELETED", seen_name);
      },
      std::chrono::seconds(20)))
      << seen;
  watch.Stop(std::chrono::seconds(5));
}

// PriorityClass (scheduling.k8s.io/v1) and the Priority admission: the
// system classes exist, a pod gets its class's priority and preemption
// policy, an unknown class is 403, reserved names and values are refused,
// the value is immutable and only one class may be the global default.
TEST_P(KubectlE2E, PriorityClassesGiveTheirPriorityToPods) {
  EXPECT_EQ(Ok({"get", "priorityclass", "system-node-critical", "-o", "jsonpath={.value}"}),
            "2000001000");
  const std::string pc = "high-" + ns_;
  Ok({"create", "priorityclass", pc, "--value", "1000", "--description", "important",
      "--preemption-policy", "Never"});
  std::string table = Ok({"get", "priorityclass", pc});
  EXPECT_NE(table.find("PREEMPTIONPOLICY"), std::string::npos) << table;
  EXPECT_NE(table.find("Never"), std::string::npos) << table;
  auto pod = [](const std::string& name, const std::string& cls) {
    return "apiVersion: v1\nkind: Pod\nmetadata: {name: " + name +
           "}\nspec:\n  priorityClassName: " + cls +
           "\n  containers: [{name: c, image: busybox, command: [sleep, '3600']}]\n";
  };
  Ok(N({"apply", "-f", "-"}), pod("p", pc));
  EXPECT_EQ(Ok(N({"get", "pod", "p", "-o", "jsonpath={.spec.priority} {.spec.preemptionPolicy}"})),
            "1000 Never");
  CommandResult r = Kubectl(N({"apply", "-f", "-"}), pod("q", "nosuch"));
  EXPECT_FALSE(r.status.success());
  EXPECT_NE(r.err.find("pods \"q\" is forbidden: no PriorityClass with name nosuch was found"),
            std::string::npos)
      << r.err;
  r = Kubectl({"create", "priorityclass", "system-" + ns_, "--value", "5"});
  EXPECT_NE(r.err.find("priority class names with 'system-' prefix are reserved for system use "
                       "only"),
            std::string::npos)
      << r.err;
  r = Kubectl({"create", "priorityclass", "huge-" + ns_, "--value", "2000000000"});
  EXPECT_NE(r.err.find("maximum allowed value of a user defined priority is 1000000000"),
            std::string::npos)
      << r.err;
  r = Kubectl({"patch", "priorityclass", pc, "--type", "merge", "-p", "{\"value\": 7}"});
  EXPECT_NE(r.err.find("may not be changed in an update"), std::string::npos) << r.err;
  const std::string first = "default-" + ns_, second = "other-" + ns_;
  Ok({"create", "priorityclass", first, "--value", "5", "--global-default"});
  r = Kubectl({"create", "priorityclass", second, "--value", "6", "--global-default"});
  EXPECT_NE(r.err.find("PriorityClass " + first +
                       " is already marked as default. Only one default can exist"),
            std::string::npos)
      << r.err;
  // A pod naming no class gets the global default's.
  Ok({"run", "plain", "-n", ns_, "--image", "busybox", "--command", "--", "sleep", "3600"});
  EXPECT_EQ(
      Ok(N({"get", "pod", "plain", "-o", "jsonpath={.spec.priorityClassName} {.spec.priority}"})),
      first + " 5");
  Ok({"delete", "priorityclass", first, pc});
}

TEST_P(KubectlE2E, RequestWithoutClientCertificateIsRefused) {
  // The kubeconfig's server, no client certificate: 401.
  Json kc = ParseYaml(testing::ReadFile(cluster_->Kubeconfig()));
  std::string server;
  for (auto& c : kc["clusters"]) {
    if (c["name"] == "kin-" + cluster_->name()) server = c["cluster"]["server"];
  }
  ASSERT_FALSE(server.empty());
  CommandResult r = RunCommand({"curl", "-sk", server + "/api/v1/pods"});
  Json status = Json::parse(r.out);
  EXPECT_EQ(status["code"], 401) << r.out;
  EXPECT_EQ(status["reason"], "Unauthorized") << r.out;
  CommandResult h = RunCommand({"curl", "-sk", server + "/healthz"});
  EXPECT_EQ(h.out, "ok");
}

INSTANTIATE_TEST_SUITE_P(Versions, KubectlE2E, ::testing::Values("1.27", "1.30", "1.33"),
                         [](const auto& info) {
                           std::string n = "v" + info.param;
                           std::replace(n.begin(), n.end(), '.', '_');
                           return n;
                         });

TEST(PythonClientE2E, ListCreatePatchWatchDelete) {
  TempDir dir;
  RunCommand({"mkdir", "-p", dir.File("root")});
  std::string name = testing::UniqueClusterName('p');
  CommandResult c = RunCommand({KinBinary(), "cluster", "create", "--name", name, "--state-root",
                                dir.File("root"), "--kubeconfig", dir.File("kubeconfig")},
                               std::chrono::seconds(60));
  ASSERT_TRUE(c.status.success()) << c.out << c.err;
  std::string script = R"PY(
import sys, threading
from kubernetes import client, config, watch
config.load_kube_config(config_file=sys.argv[1])
v1 = client.CoreV1Api()
names = [n.metadata.name for n in v1.list_namespace().items]
assert "kube-system" in names, names
events = []
rv = v1.list_namespaced_config_map("default").metadata.resource_version
def watcher():
    w = watch.Watch()
    for e in w.stream(v1.list_namespaced_config_map, namespace="default", resource_version=rv,
                      timeout_seconds=5):
        events.append((e["type"], e["object"].metadata.name))
        if len(events) >= 3:
            w.stop()
t = threading.Thread(target=watcher); t.start()
import time
cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py-cm"), data={"a": "1"})
v1.create_namespaced_config_map("default", cm)
v1.patch_namespaced_config_map("py-cm", "default", {"data": {"b": "2"}})
got = v1.read_namespaced_config_map("py-cm", "default")
assert got.data == {"a": "1", "b": "2"}, got.data
v1.delete_namespaced_config_map("py-cm", "default")
t.join()
print(events)
assert [e[0] for e in events if e[1] == "py-cm"] == ["ADDED", "MODIFIED", "DELETED"], events
try:
    v1.read_namespaced_config_map("py-cm", "default")
    sys.exit("expected 404")
except client.exceptions.ApiException as e:
    assert e.status == 404, e.status
# The peer suite's (python-client-e2e) conflict check: create_from_yaml's
# error text holds kube-apiserver's Status body byte for byte.
from kubernetes import utils
svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "py-dup"},
       "spec": {"ports": [{"port": 99}], "selector": {"app": "py-dup"}}}
k8s = client.ApiClient()
utils.create_from_dict(k8s, svc)
try:
    utils.create_from_dict(k8s, svc)
    sys.exit("expected a conflict")
except utils.FailToCreateError as e:
    want = ('Error from server (Conflict): {"kind":"Status","apiVersion":"v1","metadata":{},'
            '"status":"Failure","message":"services \\"py-dup\\" already exists",'
            '"reason":"AlreadyExists","details":{"name":"py-dup","kind":"services"},"code":409}\n')
    assert str(e) == want, repr(str(e))
v1.delete_namespaced_service("py-dup", "default")
# APIServices: a Local one per served group/version, Available.
reg = client.ApiregistrationV1Api()
apps = reg.read_api_service("v1.apps")
assert apps.spec.service is None and apps.spec.group == "apps", apps.spec
cond = [c for c in apps.status.conditions if c.type == "Available"][0]
assert cond.status == "True" and cond.reason == "Local", cond
print("ok")
)PY";
  testing::WriteFile(dir.File("client.py"), script);
  CommandResult r = RunCommand({"/usr/bin/python3", dir.File("client.py"), dir.File("kubeconfig")},
                               std::chrono::seconds(60));
  EXPECT_TRUE(r.status.success()) << r.out << r.err;
  EXPECT_NE(r.out.find("ok"), std::string::npos) << r.out << r.err;
  RunCommand({KinBinary(), "cluster", "delete", "--name", name, "--state-root", dir.File("root"),
              "--kubeconfig", dir.File("kubeconfig")});
}

}  // namespace
}  // namespace kin
