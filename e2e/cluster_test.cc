// e2e: fake nodes and real pods. A 3-node cluster made by `kin cluster
// create`, driven by the real kubectl (1.33), checked from the kernel's side:
// the seed's flows 3 (containers of a pod share localhost), 4.1 (pod to pod
// on one node through cbr0) and 4.2 (across nodes, no NAT), node to pod,
// hostname, resolv.conf and hosts, probes, restart back-off, graceful
// deletion, OOMKilled, seccomp and capabilities, a restart of `kin serve`
// with pods running, and that `kin cluster delete` leaves nothing behind.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <set>

#include "base/error.h"
#include "base/file.h"
#include "base/http_client.h"
#include "base/netns.h"
#include "base/process.h"
#include "base/yaml.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin {
namespace {

namespace fs = std::filesystem;
using testing::Eventually;
using testing::KinBinary;
using testing::TempDir;

// One cluster for the whole suite: creating it is part of what is tested.
class ClusterE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (::geteuid() != 0) {
      if (std::getenv("CI")) {
        setup_error_ = "e2e cluster tests need root (CI=true)";
      }
      return;
    }
    dir_ = new TempDir();
    name_ = testing::UniqueClusterName('e');
    fs::create_directories(dir_->File("root"));
    CommandResult r = RunCommand(
        {KinBinary(), "cluster", "create", "--name", name_, "--nodes", "3", "--state-root",
         dir_->File("root"), "--kubeconfig", dir_->File("kubeconfig"), "--crash-backoff", "1s"},
        std::chrono::seconds(90));
    create_output_ = r.out + r.err;
    if (!r.status.success()) setup_error_ = "cluster create failed:\n" + create_output_;
  }
  static void TearDownTestSuite() {
    if (dir_ == nullptr) return;
    DeleteCluster();
    delete dir_;
    dir_ = nullptr;
  }
  static CommandResult DeleteCluster() {
    return RunCommand({KinBinary(), "cluster", "delete", "--name", name_, "--state-root",
                       dir_->File("root"), "--kubeconfig", dir_->File("kubeconfig")},
                      std::chrono::seconds(90));
  }
  void SetUp() override {
    if (dir_ == nullptr) {
      if (!setup_error_.empty()) FAIL() << setup_error_;
      GTEST_SKIP() << "needs root";
    }
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
    cache_ = std::make_unique<TempDir>();
  }
  static std::string StateDir() { return dir_->File("root") + "/" + name_; }
  static std::string NodeName(const std::string& role) { return "kin-" + name_ + "-" + role; }

  CommandResult Kubectl(std::vector<std::string> args, const std::string& input = "") {
    std::vector<std::string> argv = {testing::KubectlBinary("1.33"), "--kubeconfig",
                                     dir_->File("kubeconfig"), "--cache-dir", cache_->path()};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, std::chrono::seconds(90), input);
  }
  std::string Ok(std::vector<std::string> args, const std::string& input = "") {
    CommandResult r = Kubectl(args, input);
    std::string cmd;
    for (auto& a : args) cmd += a + " ";
    EXPECT_TRUE(r.status.success()) << "kubectl " << cmd << "\n" << r.out << r.err;
    return r.out;
  }
  Json GetPod(const std::string& name) {
    CommandResult r = Kubectl({"get", "pod", name, "-o", "json"});
    if (!r.status.success()) return Json();
    return Json::parse(r.out);
  }
  // Polls until the pod's status satisfies `cond`; returns the last pod seen.
  Json WaitPod(const std::string& name, const std::function<bool(const Json&)>& cond,
               std::chrono::seconds timeout = std::chrono::seconds(30)) {
    Json pod;
    bool ok = Eventually(
        [&] {
          pod = GetPod(name);
          return !pod.is_null() && cond(pod);
        },
        timeout);
    EXPECT_TRUE(ok) << "pod " << name << " did not reach the state; last seen:\n"
                    << pod.dump(2) << "\nserve log tail:\n"
                    << Tail(ReadFileIfExists(StateDir() + "/serve.log").value_or(""));
    return pod;
  }
  static std::string Tail(const std::string& s, size_t n = 3000) {
    return s.size() > n ? s.substr(s.size() - n) : s;
  }
  Json WaitRunningReady(const std::string& name) {
    return WaitPod(name, [](const Json& p) {
      for (const auto& c : p["status"].value("conditions", Json::array())) {
        if (c["type"] == "Ready" && c["status"] == "True") return true;
      }
      return false;
    });
  }
  Json WaitPhase(const std::string& name, const std::string& phase) {
    return WaitPod(name, [&](const Json& p) { return p["status"].value("phase", "") == phase; });
  }
  // The CRI log of a container's current instance, as content lines.
  std::string ContainerLog(const Json& pod, const std::string& container) {
    std::string node = pod["spec"].value("nodeName", "");
    std::string uid = pod["metadata"].value("uid", "");
    // On the node's disk: logs/UID/CONTAINER/<instance>.log.
    std::string ldir = StateDir() + "/nodes/" + node + "/logs/" + uid + "/" + container;
    int highest = -1;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(ldir, ec)) {
      highest = std::max(highest, std::atoi(e.path().filename().c_str()));
    }
    std::string raw =
        ReadFileIfExists(ldir + "/" + std::to_string(highest) + ".log").value_or("");
    // "<time> <stream> <P|F> <content>"
    std::string out;
    std::istringstream in(raw);
    std::string line;
    while (std::getline(in, line)) {
      size_t a = line.find(' '), b = line.find(' ', a + 1), c = line.find(' ', b + 1);
      if (c == std::string::npos) continue;
      out += line.substr(c + 1);
      if (line.substr(b + 1, 1) == "F") out += "\n";
    }
    return out;
  }
  std::string PodNetns(const Json& pod) {
    std::string uid = pod["metadata"].value("uid", "");
    std::string prefix = "kin-" + name_ + "-" + pod["metadata"].value("namespace", "") + "-" +
                         pod["metadata"].value("name", "") + "-";
    for (const auto& n : ListNamedNetns(prefix)) return n;
    return "";
  }
  // An HTTP GET made from inside a network namespace, as `ip netns exec NS curl` would.
  static std::string GetFrom(const std::string& netns, const std::string& url) {
    std::string body;
    RunInNetns(Netns::Open(netns), [&] {
      http::ClientOptions o;
      o.base_url = url;
      o.timeout_ms = 5000;
      http::HttpClient c(o);
      body = c.Get("").body;
    });
    return body;
  }
  void Apply(const std::string& yaml) { Ok({"apply", "-f", "-"}, yaml); }

  static TempDir* dir_;
  static std::string name_;
  static std::string setup_error_;
  static std::string create_output_;
  std::unique_ptr<TempDir> cache_;
};

TempDir* ClusterE2E::dir_ = nullptr;
std::string ClusterE2E::name_;
std::string ClusterE2E::setup_error_;
std::string ClusterE2E::create_output_;

std::string AgnhostPod(const std::string& name, const std::string& node,
                       const std::string& extra = "") {
  return "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name + "\n  labels: {app: " + name +
         "}\nspec:\n  nodeName: " + node +
         "\n  containers:\n  - name: web\n    image: registry.k8s.io/e2e-test-images/agnhost:2.52\n"
         "    args: [netexec, --http-port=8080]\n" +
         extra;
}

TEST_F(ClusterE2E, CreatePrintsStepsAndNodesAreReadyWithKindNamesAndLabels) {
  EXPECT_NE(create_output_.find("\u2713 Starting 3 nodes"), std::string::npos) << create_output_;
  Json nodes = Json::parse(Ok({"get", "nodes", "-o", "json"}));
  std::set<std::string> names;
  for (const auto& n : nodes["items"]) {
    names.insert(n["metadata"]["name"]);
    bool ready = false;
    for (const auto& c : n["status"]["conditions"]) {
      if (c["type"] == "Ready" && c["status"] == "True") ready = true;
    }
    EXPECT_TRUE(ready) << n.dump(2);
    EXPECT_EQ(n["metadata"]["labels"]["kubernetes.io/hostname"], n["metadata"]["name"]);
    EXPECT_FALSE(n["spec"].value("podCIDR", "").empty());
    EXPECT_EQ(n["status"]["addresses"][0]["type"], "InternalIP");
  }
  EXPECT_EQ(names, (std::set<std::string>{NodeName("control-plane"), NodeName("worker"),
                                          NodeName("worker2")}));
  Json cp = Json::parse(Ok({"get", "node", NodeName("control-plane"), "-o", "json"}));
  EXPECT_TRUE(cp["metadata"]["labels"].contains("node-role.kubernetes.io/control-plane"));
  EXPECT_EQ(cp["spec"]["taints"][0]["key"], "node-role.kubernetes.io/control-plane");
  // Heartbeats: the node's Lease exists and is held by the node.
  Json lease =
      Json::parse(Ok({"get", "lease", "-n", "kube-node-lease", NodeName("worker"), "-o", "json"}));
  EXPECT_EQ(lease["spec"]["holderIdentity"], NodeName("worker"));
  // The network namespaces the seed's figures draw.
  auto netns = ListNamedNetns("kin-" + name_ + "-");
  std::set<std::string> have(netns.begin(), netns.end());
  for (const char* n : {"net", "control-plane", "worker", "worker2"}) {
    EXPECT_TRUE(have.count("kin-" + name_ + "-" + n)) << n;
  }
}

// The seed's 3: two containers of one pod talk over localhost.
TEST_F(ClusterE2E, ContainersOfAPodShareLocalhost) {
  Apply(AgnhostPod("shared", NodeName("worker"),
                   "  - name: client\n    image: busybox\n"
                   "    command: [sh, -c, 'until wget -qO- http://127.0.0.1:8080/hostname; do "
                   "sleep 0.2; done; echo; sleep 3600']\n"));
  Json pod = WaitRunningReady("shared");
  ASSERT_TRUE(
      Eventually([&] { return ContainerLog(pod, "client").find("shared") != std::string::npos; },
                 std::chrono::seconds(20)))
      << ContainerLog(pod, "client");
  Ok({"delete", "pod", "shared", "--grace-period=0", "--force"});
}

// The seed's 4.1 and 4.2: pod to pod on one node and across nodes; the
// server sees the client's own pod IP (no NAT), and node to pod.
TEST_F(ClusterE2E, PodToPodOnOneNodeAndAcrossNodesWithoutNat) {
  Apply(AgnhostPod("server", NodeName("worker")));
  Apply(AgnhostPod("near", NodeName("worker")));
  Apply(AgnhostPod("far", NodeName("worker2")));
  Json server = WaitRunningReady("server");
  Json near = WaitRunningReady("near");
  Json far = WaitRunningReady("far");
  std::string server_ip = server["status"].value("podIP", "");
  std::string near_ip = near["status"].value("podIP", "");
  std::string far_ip = far["status"].value("podIP", "");
  ASSERT_FALSE(server_ip.empty());
  EXPECT_NE(server_ip, near_ip);
  // Pods on a node take addresses from its podCIDR.
  Json worker = Json::parse(Ok({"get", "node", NodeName("worker"), "-o", "json"}));
  std::string cidr = worker["spec"]["podCIDR"];
  EXPECT_EQ(server_ip.substr(0, server_ip.rfind('.')), cidr.substr(0, cidr.rfind('.')));
  std::string url = "http://" + server_ip + ":8080/clientip";
  std::string from_near = GetFrom(PodNetns(near), url);
  EXPECT_EQ(from_near.substr(0, from_near.find(':')), near_ip) << from_near;
  std::string from_far = GetFrom(PodNetns(far), url);
  EXPECT_EQ(from_far.substr(0, from_far.find(':')), far_ip) << from_far;
  // Node to pod: from the other node's namespace, the source is that node's IP.
  std::string from_node = GetFrom("kin-" + name_ + "-worker2", url);
  Json w2 = Json::parse(Ok({"get", "node", NodeName("worker2"), "-o", "json"}));
  EXPECT_EQ(from_node.substr(0, from_node.find(':')),
            w2["status"]["addresses"][0].value("address", ""));
  // Every pod sees itself at the IP others see: agnhost answers /hostname
  // with the pod name, and the pod's eth0 holds its IP.
  EXPECT_EQ(GetFrom(PodNetns(far), "http://" + server_ip + ":8080/hostname"), "server");
  CommandResult ip = RunCommand(
      {"ip", "netns", "exec", PodNetns(far), "ip", "-4", "-o", "addr", "show", "dev", "eth0"});
  EXPECT_NE(ip.out.find(far_ip + "/24"), std::string::npos) << ip.out;
  // The routes the seed shows: each node's pod CIDR via that node, in the network.
  CommandResult routes =
      RunCommand({"ip", "netns", "exec", "kin-" + name_ + "-net", "ip", "-4", "route"});
  EXPECT_NE(routes.out.find(cidr + " via " + worker["status"]["addresses"][0].value("address", "")),
            std::string::npos)
      << routes.out;
  Ok({"delete", "pod", "server", "near", "far", "--grace-period=0", "--force"});
}

TEST_F(ClusterE2E, HostnameResolvConfAndHostsAreThePods) {
  Apply(R"(apiVersion: v1
kind: Pod
metadata: {name: files}
spec:
  nodeName: )" +
        NodeName("worker2") + R"(
  hostname: files-host
  subdomain: sub
  hostAliases: [{ip: 10.1.2.3, hostnames: [alias.example]}]
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'hostname; cat /etc/resolv.conf /etc/hosts']
)");
  Json pod = WaitPhase("files", "Succeeded");
  std::string log = ContainerLog(pod, "c");
  std::string ip = pod["status"].value("podIP", "");
  EXPECT_EQ(log.substr(0, log.find('\n')), "files-host");
  EXPECT_NE(log.find("search default.svc.cluster.local svc.cluster.local cluster.local"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("nameserver 10.96.0.10"), std::string::npos) << log;
  EXPECT_NE(log.find("options ndots:5"), std::string::npos) << log;
  EXPECT_NE(log.find(ip + "\tfiles-host.sub.default.svc.cluster.local\tfiles-host"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("10.1.2.3\talias.example"), std::string::npos) << log;
  EXPECT_EQ(pod["status"]["containerStatuses"][0]["state"]["terminated"]["reason"], "Completed");
  Ok({"delete", "pod", "files", "--grace-period=0", "--force"});
}

TEST_F(ClusterE2E, ReadinessAndLivenessProbes) {
  Apply(AgnhostPod("probed", NodeName("worker"),
                   "    readinessProbe:\n      httpGet: {path: /healthz, port: 8080}\n"
                   "      periodSeconds: 1\n"
                   "    livenessProbe:\n      tcpSocket: {port: 8080}\n      periodSeconds: 1\n"));
  WaitRunningReady("probed");
  // A liveness probe that always fails restarts the container.
  Apply(AgnhostPod("unlive", NodeName("worker"),
                   "    livenessProbe:\n      httpGet: {path: /nope, port: 8081}\n"
                   "      periodSeconds: 1\n      failureThreshold: 1\n"
                   "  terminationGracePeriodSeconds: 1\n"));
  Json pod = WaitPod("unlive", [](const Json& p) {
    auto cs = p["status"].value("containerStatuses", Json::array());
    return !cs.empty() && cs[0].value("restartCount", 0) >= 1;
  });
  std::string events = Ok({"get", "events", "--field-selector", "involvedObject.name=unlive"});
  EXPECT_NE(events.find("Liveness probe failed"), std::string::npos) << events;
  Ok({"delete", "pod", "probed", "unlive", "--grace-period=0", "--force"});
}

TEST_F(ClusterE2E, CrashingContainerBacksOffAndIsRestarted) {
  Apply(R"(apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  nodeName: )" +
        NodeName("worker") + R"(
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'echo crashing; exit 3']
)");
  Json pod = WaitPod("crasher", [](const Json& p) {
    auto cs = p["status"].value("containerStatuses", Json::array());
    return !cs.empty() && cs[0].value("restartCount", 0) >= 2 &&
           cs[0]["state"].contains("waiting") &&
           cs[0]["state"]["waiting"].value("reason", "") == "CrashLoopBackOff";
  });
  const Json& cs = pod["status"]["containerStatuses"][0];
  EXPECT_EQ(cs["lastState"]["terminated"]["exitCode"], 3);
  EXPECT_EQ(cs["lastState"]["terminated"]["reason"], "Error");
  Ok({"delete", "pod", "crasher", "--grace-period=0", "--force"});
}

TEST_F(ClusterE2E, GracefulDeletionSendsTermThenRemovesThePod) {
  Apply(R"(apiVersion: v1
kind: Pod
metadata: {name: graceful}
spec:
  nodeName: )" +
        NodeName("worker2") + R"(
  terminationGracePeriodSeconds: 20
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'trap "echo got TERM; exit 0" TERM; while true; do sleep 0.1; done']
)");
  Json pod = WaitRunningReady("graceful");
  std::string ns = PodNetns(pod);
  auto start = std::chrono::steady_clock::now();
  Ok({"delete", "pod", "graceful", "--wait=true"});
  // The container handled SIGTERM: gone well before the 20 s grace period.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_FALSE(Kubectl({"get", "pod", "graceful"}).status.success());
  EXPECT_TRUE(Eventually([&] { return !fs::exists("/run/netns/" + ns); }));
}

TEST_F(ClusterE2E, OverItsMemoryLimitAContainerIsOomKilled) {
  Apply(R"(apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  nodeName: )" +
        NodeName("worker") + R"(
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'tail /dev/zero']
    resources:
      limits: {memory: 32Mi}
)");
  Json pod = WaitPhase("hog", "Failed");
  const Json& t = pod["status"]["containerStatuses"][0]["state"]["terminated"];
  EXPECT_EQ(t["reason"], "OOMKilled") << pod.dump(2);
  EXPECT_EQ(t["exitCode"], 137);
  Ok({"delete", "pod", "hog", "--grace-period=0", "--force"});
}

TEST_F(ClusterE2E, SeccompAndCapabilitiesAreInForce) {
  Apply(R"(apiVersion: v1
kind: Pod
metadata: {name: confined}
spec:
  nodeName: )" +
        NodeName("worker2") + R"(
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'unshare -n true; echo netns=$?; unshare -U true; echo userns=$?']
)");
  Json pod = WaitPhase("confined", "Succeeded");
  std::string log = ContainerLog(pod, "c");
  // No CAP_SYS_ADMIN: no network namespace. RuntimeDefault seccomp: no user namespace.
  EXPECT_EQ(log.find("netns=0"), std::string::npos) << log;
  EXPECT_NE(log.find("netns="), std::string::npos) << log;
  EXPECT_EQ(log.find("userns=0"), std::string::npos) << log;
  Ok({"delete", "pod", "confined", "--grace-period=0", "--force"});
}

// The pull is refused at once (nothing listens on loopback port 1; no test
// leaves the machine) and the message still says how to load the image.
TEST_F(ClusterE2E, UnknownImageShowsErrImagePullThenBackOff) {
  Apply(R"(apiVersion: v1
kind: Pod
metadata: {name: noimage}
spec:
  nodeName: )" +
        NodeName("worker") + R"(
  containers:
  - name: c
    image: 127.0.0.1:1/nothing:1.0
)");
  Json pod = WaitPod("noimage", [](const Json& p) {
    auto cs = p["status"].value("containerStatuses", Json::array());
    return !cs.empty() && cs[0]["state"].contains("waiting") &&
           cs[0]["state"]["waiting"].value("reason", "") == "ImagePullBackOff";
  });
  EXPECT_NE(pod["status"]["containerStatuses"][0]["state"]["waiting"]
                .value("message", "")
                .find("kin load"),
            std::string::npos)
      << pod.dump(2);
  Ok({"delete", "pod", "noimage", "--grace-period=0", "--force"});
}

TEST_F(ClusterE2E, SchedulerPlacesPodsWithoutNodeNameOnWorkers) {
  for (int i = 0; i < 4; ++i) {
    Apply("apiVersion: v1\nkind: Pod\nmetadata: {name: sched" + std::to_string(i) +
          "}\nspec:\n  containers:\n  - name: c\n    image: registry.k8s.io/pause:3.9\n");
  }
  std::set<std::string> nodes;
  for (int i = 0; i < 4; ++i) {
    Json pod = WaitRunningReady("sched" + std::to_string(i));
    nodes.insert(pod["spec"].value("nodeName", ""));
  }
  // Spread over both workers; the tainted control-plane takes none.
  EXPECT_EQ(nodes, (std::set<std::string>{NodeName("worker"), NodeName("worker2")}));
  std::string events = Ok({"get", "events", "--field-selector", "involvedObject.name=sched0"});
  EXPECT_NE(events.find("Scheduled"), std::string::npos) << events;
  Ok({"delete", "pod", "sched0", "sched1", "sched2", "sched3", "--grace-period=0", "--force"});
}

TEST_F(ClusterE2E, VolumesEnvAndImagesFromTheStore) {
  // A root filesystem of our own, loaded with `kin load rootfs`.
  std::string rootfs = dir_->File("tools-rootfs");
  fs::create_directories(rootfs + "/bin");
  fs::copy_file("/bin/busybox", rootfs + "/bin/busybox");
  fs::create_symlink("busybox", rootfs + "/bin/sh");
  WriteFileAtomic(rootfs + "/hello.txt", "hello from the image\n", 0644, false);
  CommandResult load = RunCommand({KinBinary(), "load", "rootfs", "e2e/tools:1", rootfs, "--name",
                                   name_, "--state-root", dir_->File("root")});
  ASSERT_TRUE(load.status.success()) << load.out << load.err;
  Ok({"create", "configmap", "cfg", "--from-literal=greeting=hi-there"});
  Apply(R"(apiVersion: v1
kind: Pod
metadata: {name: vols, labels: {tier: e2e}}
spec:
  nodeName: )" +
        NodeName("worker") + R"(
  volumes:
  - {name: cfg, configMap: {name: cfg}}
  - {name: scratch, emptyDir: {}}
  - {name: info, downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}}
  containers:
  - name: writer
    image: busybox
    command: [sh, -c, 'echo shared-bytes > /scratch/x; sleep 3600']
    volumeMounts: [{name: scratch, mountPath: /scratch}]
  - name: reader
    image: e2e/tools:1
    command: [/bin/busybox, sh, -c, 'cat /hello.txt /cfg/greeting; echo; echo POD_IP=$POD_IP GREETING=$GREETING; cat /info/labels; echo; until cat /scratch/x; do sleep 0.1; done; sleep 3600']
    env:
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: GREETING, valueFrom: {configMapKeyRef: {name: cfg, key: greeting}}}
    volumeMounts:
    - {name: cfg, mountPath: /cfg}
    - {name: info, mountPath: /info}
    - {name: scratch, mountPath: /scratch}
)");
  Json pod = WaitRunningReady("vols");
  std::string ip = pod["status"].value("podIP", "");
  std::string log;
  EXPECT_TRUE(Eventually(
      [&] {
        log = ContainerLog(pod, "reader");
        return log.find("shared-bytes") != std::string::npos;
      },
      std::chrono::seconds(20)))
      << log;
  EXPECT_NE(log.find("hello from the image"), std::string::npos) << log;
  EXPECT_NE(log.find("hi-there"), std::string::npos) << log;
  EXPECT_NE(log.find("POD_IP=" + ip + " GREETING=hi-there"), std::string::npos) << log;
  EXPECT_NE(log.find("tier=\"e2e\""), std::string::npos) << log;
  Ok({"delete", "pod", "vols", "--grace-period=0", "--force"});
  Ok({"delete", "configmap", "cfg"});
}

TEST_F(ClusterE2E, InitContainersRunFirstAndHostNetworkPodsUseTheNode) {
  Apply(R"(apiVersion: v1
kind: Pod
metadata: {name: inits}
spec:
  nodeName: )" +
        NodeName("worker") + R"(
  volumes: [{name: work, emptyDir: {}}]
  initContainers:
  - {name: first, image: busybox, command: [sh, -c, 'echo one > /work/order'], volumeMounts: [{name: work, mountPath: /work}]}
  - {name: second, image: busybox, command: [sh, -c, 'echo two >> /work/order'], volumeMounts: [{name: work, mountPath: /work}]}
  containers:
  - {name: main, image: busybox, command: [sh, -c, 'cat /work/order; sleep 3600'], volumeMounts: [{name: work, mountPath: /work}]}
)");
  Json pod = WaitRunningReady("inits");
  for (const auto& s : pod["status"]["initContainerStatuses"]) {
    EXPECT_EQ(s["state"]["terminated"]["reason"], "Completed") << s.dump();
  }
  EXPECT_TRUE(Eventually([&] { return ContainerLog(pod, "main") == "one\ntwo\n"; }))
      << ContainerLog(pod, "main");
  Apply(AgnhostPod("hostnet", NodeName("worker2"), "  hostNetwork: true\n"));
  Json hn = WaitRunningReady("hostnet");
  Json node = Json::parse(Ok({"get", "node", NodeName("worker2"), "-o", "json"}));
  std::string node_ip = node["status"]["addresses"][0].value("address", "");
  EXPECT_EQ(hn["status"].value("podIP", ""), node_ip);
  // Listening in the node's own namespace: reachable at the node IP from another node.
  EXPECT_EQ(GetFrom("kin-" + name_ + "-worker", "http://" + node_ip + ":8080/hostname"),
            NodeName("worker2"));
  Ok({"delete", "pod", "inits", "hostnet", "--grace-period=0", "--force"});
}

// Last in the suite (gtest runs tests in order): restart, then delete.
TEST_F(ClusterE2E, ZRestartOfServeKeepsPodsRunningAndDeleteLeavesNothing) {
  Apply(AgnhostPod("survivor", NodeName("worker")));
  Json before = WaitRunningReady("survivor");
  std::string ip = before["status"].value("podIP", "");
  std::string ns = PodNetns(before);
  // Restart `kin serve` as it was started.
  std::string dir = StateDir();
  int pid = std::atoi(ReadFileIfExists(dir + "/serve.pid").value_or("0").c_str());
  ASSERT_GT(pid, 0);
  std::string cmdline = ReadFileIfExists("/proc/" + std::to_string(pid) + "/cmdline").value_or("");
  std::vector<std::string> argv;
  for (size_t i = 0; i < cmdline.size();) {
    size_t e = cmdline.find('\0', i);
    argv.push_back(cmdline.substr(i, e - i));
    i = e + 1;
  }
  // Same port again, so the kubeconfig still fits.
  std::string port = ReadFileIfExists(dir + "/serve.port").value_or("");
  for (size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] == "--port") argv[i + 1] = port;
  }
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  ASSERT_TRUE(Eventually([&] { return !ProcessAlive(pid); }, std::chrono::seconds(20)));
  // The pod kept running while no agent watched it.
  EXPECT_EQ(GetFrom(ns, "http://" + ip + ":8080/hostname"), "survivor");
  SpawnOptions so;
  so.argv = argv;
  so.stdout_file = dir + "/serve.log";
  so.stderr_to_stdout = true;
  so.stdin_mode = SpawnOptions::Stdio::kNull;
  so.new_session = true;
  ChildProcess serve = ChildProcess::Spawn(so);
  WriteFileAtomic(dir + "/serve.pid", std::to_string(serve.pid()), 0644, false);
  pid_t new_pid = serve.Release();
  (void)new_pid;
  // The restarted agents adopt the pod: same IP, still Ready, and new pods work.
  Json after = WaitRunningReady("survivor");
  EXPECT_EQ(after["metadata"]["uid"], before["metadata"]["uid"]);
  EXPECT_EQ(after["status"].value("podIP", ""), ip);
  EXPECT_EQ(after["status"]["containerStatuses"][0].value("restartCount", -1), 0);
  Apply(AgnhostPod("newcomer", NodeName("worker")));
  Json newcomer = WaitRunningReady("newcomer");
  EXPECT_NE(newcomer["status"].value("podIP", ""), ip);
  EXPECT_EQ(GetFrom(PodNetns(newcomer), "http://" + ip + ":8080/hostname"), "survivor");

  // Delete: nothing of the cluster is left on the machine.
  CommandResult r = DeleteCluster();
  ASSERT_TRUE(r.status.success()) << r.out << r.err;
  EXPECT_TRUE(ListNamedNetns("kin-" + name_ + "-").empty());
  EXPECT_FALSE(fs::exists(dir));
  std::string mounts = ReadFileIfExists("/proc/self/mountinfo").value_or("");
  EXPECT_EQ(mounts.find(dir), std::string::npos);
  EXPECT_EQ(mounts.find("kin-" + name_ + "-"), std::string::npos);
  for (const char* ctl : {"memory", "pids", "cpu"}) {
    std::error_code ec;
    for (const auto& e :
         fs::directory_iterator(std::string("/sys/fs/cgroup/") + ctl + "/kin", ec)) {
      EXPECT_EQ(e.path().filename().string().rfind("kin-" + name_ + "-", 0), std::string::npos)
          << e.path();
    }
  }
  // No process of the cluster is left: none has the state directory in its command line.
  for (const auto& e : fs::directory_iterator("/proc")) {
    if (!std::isdigit(static_cast<unsigned char>(e.path().filename().string()[0]))) continue;
    std::string cmd;
    try {
      cmd = ReadFileIfExists(e.path().string() + "/cmdline").value_or("");
    } catch (const Error&) {  // exited while we looked
    }
    EXPECT_EQ(cmd.find(dir), std::string::npos) << e.path();
  }
}

// host-gw routing: each node routes the other nodes' pod CIDRs straight to
// their node IPs over the underlay, as kindnetd does; pods still talk without NAT.
TEST(ClusterHostGwE2E, NodesRouteEachOthersPodCidrs) {
  if (!testing::RequireRoot()) return;
  TempDir dir;
  std::string name = testing::UniqueClusterName('g');
  fs::create_directories(dir.File("root"));
  testing::WriteFile(dir.File("c.yaml"),
                     std::string("apiVersion: kin.dev/v1alpha1\nkind: Cluster\n") +
                         "nodes: [{role: control-plane}, {role: worker}]\n" +
                         "networking: {routing: host-gw, hostAccess: false}\n");  // checks 172.18.0.x
  auto kin = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {KinBinary()};
    argv.insert(argv.end(), args.begin(), args.end());
    for (const std::string& a :
         std::vector<std::string>{"--name", name, "--state-root", dir.File("root")}) {
      argv.push_back(a);
    }
    return RunCommand(argv, std::chrono::seconds(90));
  };
  CommandResult r = kin({"cluster", "create", "--config", dir.File("c.yaml"), "--kubeconfig",
                         dir.File("kubeconfig")});
  ASSERT_TRUE(r.status.success()) << r.out << r.err;
  std::string prefix = std::string("kin-") + name + "-";
  // The worker routes the control-plane's CIDR via the control-plane's node IP.
  CommandResult routes =
      RunCommand({"ip", "netns", "exec", prefix + "worker", "ip", "-4", "route"});
  EXPECT_NE(routes.out.find("10.244.0.0/24 via 172.18.0.2"), std::string::npos) << routes.out;
  auto kubectl = [&](std::vector<std::string> args, const std::string& input = "") {
    std::vector<std::string> argv = {testing::KubectlBinary("1.33"), "--kubeconfig",
                                     dir.File("kubeconfig"), "--cache-dir", dir.File("cache")};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, std::chrono::seconds(60), input);
  };
  for (const std::string& node : {std::string("control-plane"), std::string("worker")}) {
    std::string pod = "p-" + node;
    CommandResult a = kubectl({"apply", "-f", "-"}, AgnhostPod(pod, prefix + node));
    ASSERT_TRUE(a.status.success()) << a.err;
  }
  std::map<std::string, std::string> ips;
  ASSERT_TRUE(Eventually(
      [&] {
        for (const std::string& pod : {std::string("p-control-plane"), std::string("p-worker")}) {
          CommandResult g = kubectl({"get", "pod", pod, "-o", "jsonpath={.status.podIP}"});
          ips[pod] = g.out;
        }
        return !ips["p-control-plane"].empty() && !ips["p-worker"].empty();
      },
      std::chrono::seconds(30)));
  std::string client_ns;
  for (const auto& n : ListNamedNetns(prefix + "default-p-worker-")) client_ns = n;
  std::string seen;
  EXPECT_TRUE(Eventually(
      [&] {
        try {
          RunInNetns(Netns::Open(client_ns), [&] {
            http::ClientOptions o;
            o.base_url = "http://" + ips["p-control-plane"] + ":8080";
            o.timeout_ms = 2000;
            seen = http::HttpClient(o).Get("/clientip").body;
          });
        } catch (const std::exception&) {
        }
        return seen.rfind(ips["p-worker"] + ":", 0) == 0;
      },
      std::chrono::seconds(20)))
      << seen;
  r = kin({"cluster", "delete", "--kubeconfig", dir.File("kubeconfig")});
  EXPECT_TRUE(r.status.success()) << r.out << r.err;
  EXPECT_TRUE(ListNamedNetns(prefix).empty());
}

}  // namespace
}  // namespace kin
