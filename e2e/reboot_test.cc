// e2e: a machine reboot (issue 16). A running `--nodes 2` cluster loses
// what the kernel loses in a reboot, and keeps its state directory:
// every process of the cluster is SIGKILLed (kin serve from serve.pid, the
// shim servers as its children and from the containers' state.json files,
// their zygotes as the servers' children, the containers from the
// cluster's cgroups: only processes kin started), the cgroups, every
// tmpfs and nsfs mount under the state directory and the cluster's
// network namespaces are removed. Then `kin cluster start --name NAME`,
// as README's "Clusters and real kubectl" says, must bring it back: nodes
// Ready, the same objects, the Deployment's same pods Running and Ready in
// new sandboxes with their new IPs, restarted as the kubelet restarts
// them after a reboot (restartCount one more, lastState terminated with
// reason Unknown, startTime kept), a Service reaching them, a finished
// Job's pod still Succeeded, a pod with an init container initialized
// again, a restartPolicy Never pod failed (not restarted); `kin cluster
// delete` then leaves nothing.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "base/file.h"
#include "base/process.h"
#include "base/yaml.h"
#include "testing/e2e_cluster.h"
#include "testing/kernel_fixture.h"
#include "testing/net_probe.h"

namespace kin {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::E2eCluster;

const char kWorkloads[] = R"(apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: registry.k8s.io/e2e-test-images/agnhost:2.52
        args: [netexec, --http-port=8080]
        readinessProbe:
          httpGet: {path: /, port: 8080}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: kept}
data: {a: b}
---
apiVersion: v1
kind: Pod
metadata: {name: inited}
spec:
  terminationGracePeriodSeconds: 0
  initContainers:
  - name: init
    image: busybox
    command: [sh, -c, 'true']
  containers:
  - name: main
    image: busybox
    command: [sleep, '3600']
---
apiVersion: v1
kind: Pod
metadata: {name: never}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: busybox
    command: [sleep, '3600']
---
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: once
        image: busybox
        command: [sh, -c, 'echo done']
)";

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// /proc/PID/stat's comm and parent.
std::pair<std::string, pid_t> CommAndParent(pid_t pid) {
  std::string stat = Slurp("/proc/" + std::to_string(pid) + "/stat");
  size_t open = stat.find('('), close = stat.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close + 2 >= stat.size()) {
    return {"", 0};
  }
  std::istringstream in(stat.substr(close + 2));
  char state = 0;
  pid_t ppid = 0;
  in >> state >> ppid;
  return {stat.substr(open + 1, close - open - 1), ppid};
}

std::vector<pid_t> AllPids() {
  std::vector<pid_t> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::string n = e.path().filename().string();
    if (std::isdigit(static_cast<unsigned char>(n[0]))) out.push_back(std::atoi(n.c_str()));
  }
  return out;
}

// The cluster's cgroups: <root>/<controller>/kin/<prefix>* (v1) or
// <root>/kin/<prefix>* (v2).
std::vector<std::string> ClusterCgroups(const std::string& prefix) {
  std::vector<std::string> out;
  std::error_code ec;
  std::vector<fs::path> parents = {"/sys/fs/cgroup/kin", "/sys/fs/cgroup/unified/kin"};
  for (const auto& c : fs::directory_iterator("/sys/fs/cgroup", ec)) parents.push_back(c.path() / "kin");
  for (const auto& parent : parents) {
    for (const auto& e : fs::directory_iterator(parent, ec)) {
      if (e.path().filename().string().rfind(prefix, 0) == 0) out.push_back(e.path().string());
    }
  }
  return out;
}

// What the kernel loses in a reboot, for this cluster only.
void SimulateReboot(const E2eCluster& c) {
  const std::string prefix = c.Prefix();
  std::set<pid_t> victims;
  const pid_t serve = c.ServePid();
  ASSERT_GT(serve, 0);
  victims.insert(serve);
  // Shim servers: children of kin serve, and those the containers' state
  // records (of an earlier kin serve); zygotes: children of a server.
  std::set<pid_t> servers;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(c.StateDir() + "/nodes", ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (it->path().filename() != "state.json") continue;
    try {
      Json s = Json::parse(Slurp(it->path().string()));
      pid_t pid = s.value("shimPid", 0);
      if (pid > 0 && CommAndParent(pid).first == "kin-shim-server") servers.insert(pid);
    } catch (const std::exception&) {
    }
  }
  for (pid_t pid : AllPids()) {
    auto [comm, ppid] = CommAndParent(pid);
    if (comm == "kin-shim-server" && ppid == serve) servers.insert(pid);
  }
  victims.insert(servers.begin(), servers.end());
  for (pid_t pid : AllPids()) {
    auto [comm, ppid] = CommAndParent(pid);
    if (comm == "kin-shim-zygote" && servers.count(ppid)) victims.insert(pid);
  }
  // Nothing reacts while the containers go: the servers die first.
  for (pid_t pid : victims) ::kill(pid, SIGKILL);
  for (const auto& cg : ClusterCgroups(prefix)) {
    std::istringstream procs(Slurp(cg + "/cgroup.procs"));
    for (pid_t pid; procs >> pid;) {
      victims.insert(pid);
      ::kill(pid, SIGKILL);
    }
  }
  ASSERT_TRUE(E2eCluster::WaitFor(
      [&] {
        for (pid_t pid : victims) {
          if (ProcessAlive(pid)) return false;
        }
        return true;
      },
      20s));
  EXPECT_GE(victims.size(), 1 + 2 + 2 + 3u) << "kin serve, 2 shim servers and zygotes, 3 pods";
  // Cgroups, mounts (nsfs, tmpfs) under the state directory and in
  // /run/netns, the network namespaces, links and nft tables named after
  // the cluster: everything of it the kernel keeps only until it reboots.
  testing::RemoveKernelObjectsWithPrefix(prefix);
  // The host-access link is named after the cluster alone ("kin-NAME"). The
  // kernel tears a namespace's links down after its last reference went,
  // not at once: wait for that, as a reboot leaves none of them.
  const std::string host_link = "kin-" + c.name();
  auto link_gone = [&] {
    return !RunCommand({"ip", "link", "show", "dev", host_link}, 10s).status.success();
  };
  if (!E2eCluster::WaitFor(link_gone, 5s)) RunCommand({"ip", "link", "del", host_link}, 10s);
  EXPECT_TRUE(E2eCluster::WaitFor(link_gone, 5s)) << host_link;
  EXPECT_EQ(testing::KernelObjectsWithPrefix(prefix), std::vector<std::string>{});
  EXPECT_EQ(Slurp("/proc/self/mountinfo").find(c.StateDir()), std::string::npos);
  ASSERT_TRUE(fs::exists(c.StateDir() + "/kin.db"));
}

const Json& At(const Json& j, const char* key) {
  static const Json kNull;
  return j.is_object() && j.contains(key) ? j[key] : kNull;
}

bool Ready(const Json& pod) {
  for (const auto& cond : At(At(pod, "status"), "conditions")) {
    if (cond.value("type", "") == "Ready" && cond.value("status", "") == "True") return true;
  }
  return false;
}

// The pod's IPv4 address on eth0 of its network namespace.
std::string SandboxIp(const E2eCluster& c, const Json& pod) {
  std::string ns = c.PodNetns(pod);
  if (ns.empty()) return "";
  CommandResult r = RunCommand({"ip", "-n", ns, "-o", "-4", "addr", "show", "eth0"}, 10s);
  std::istringstream in(r.out);
  std::string word;
  while (in >> word) {
    if (word == "inet" && (in >> word)) return word.substr(0, word.find('/'));
  }
  return "";
}

TEST(RebootE2E, AfterARebootClusterStartBringsTheClusterBackAsTheKubeletWould) {
  if (!testing::RequireRoot()) GTEST_SKIP() << "needs root";
  E2eCluster c('b');
  ASSERT_TRUE(c.Create({"--nodes", "2"})) << c.last_output();
  c.Apply(kWorkloads);
  ASSERT_TRUE(E2eCluster::WaitFor(
      [&] {
        Json d = c.GetJson({"deployment", "web"});
        Json j = c.GetJson({"job", "once"});
        return At(At(d, "status"), "readyReplicas") == 3 && At(At(j, "status"), "succeeded") == 1 &&
               Ready(c.GetJson({"pod", "inited"})) && Ready(c.GetJson({"pod", "never"}));
      },
      90s))
      << c.Log();
  const std::string cm_uid = c.GetJson({"configmap", "kept"})["metadata"].value("uid", "");
  Json before = c.GetJson({"pods", "-l", "app=web"})["items"];
  ASSERT_EQ(before.size(), 3u);
  std::map<std::string, Json> was;  // name -> pod
  for (const auto& p : before) was[p["metadata"].value("name", "")] = p;
  Json job_pods = c.GetJson({"pods", "-l", "job-name=once"})["items"];
  ASSERT_EQ(job_pods.size(), 1u);
  const std::string job_pod = job_pods[0]["metadata"].value("name", "");
  const Json inited = c.GetJson({"pod", "inited"});

  SimulateReboot(c);

  CommandResult r = c.Kin({"cluster", "start", "--name", c.name()});
  ASSERT_TRUE(r.status.success()) << r.out << r.err << c.Log();
  EXPECT_EQ(c.ReadyNodes(), (std::set<std::string>{c.NodeName("control-plane"),
                                                   c.NodeName("worker")}));

  // The same pods (names and uids: objects intact), each Running and Ready
  // in a new sandbox whose address its status gives.
  Json after;
  std::string why;
  EXPECT_TRUE(E2eCluster::WaitFor(
      [&] {
        after = c.GetJson({"pods", "-l", "app=web"});
        if (after.is_null()) return false;
        after = after["items"];
        if (after.size() != 3) return (why = std::to_string(after.size()) + " pods"), false;
        for (const auto& p : after) {
          const Json& st = At(p, "status");
          if (st.value("phase", "") != "Running" || !Ready(p)) {
            return (why = p["metadata"].value("name", "") + " not Running and Ready"), false;
          }
          if (SandboxIp(c, p) != st.value("podIP", "")) {
            return (why = p["metadata"].value("name", "") + " has no sandbox with its IP"), false;
          }
        }
        return true;
      },
      90s))
      << why << "\n"
      << after.dump(2) << c.Log();
  std::set<std::string> names;
  for (const auto& p : after) {
    const std::string name = p["metadata"].value("name", "");
    names.insert(name);
    ASSERT_TRUE(was.count(name)) << name << " is a new pod";
    const Json& old = was[name];
    EXPECT_EQ(p["metadata"]["uid"], old["metadata"]["uid"]);
    EXPECT_EQ(p["status"]["startTime"], old["status"]["startTime"]) << name;
    const Json& cs = p["status"]["containerStatuses"][0];
    const Json& old_cs = old["status"]["containerStatuses"][0];
    EXPECT_EQ(cs.value("restartCount", -1), old_cs.value("restartCount", 0) + 1) << cs.dump();
    const Json& term = At(At(cs, "lastState"), "terminated");
    EXPECT_EQ(term.value("reason", ""), "Unknown") << cs.dump();
    EXPECT_EQ(term.value("exitCode", 0), 255) << cs.dump();
    EXPECT_EQ(term.value("startedAt", ""), old_cs["state"]["running"].value("startedAt", ""));
    EXPECT_NE(cs.value("containerID", ""), old_cs.value("containerID", ""));
  }

  // Logs outlive the reboot (on the node's disk, as /var/log/pods): the
  // instance the reboot ended is --previous, and the finished Job's pod
  // still shows what it printed.
  {
    const std::string name = after[0]["metadata"].value("name", "");
    CommandResult logs = c.Kubectl({"logs", name, "--previous"});
    EXPECT_TRUE(logs.status.success()) << logs.err;
    EXPECT_THAT(logs.out, ::testing::HasSubstr("Started HTTP server on port 8080"));
    logs = c.Kubectl({"logs", job_pod});
    EXPECT_TRUE(logs.status.success()) << logs.err;
    EXPECT_EQ(logs.out, "done\n");
  }

  // The Service reaches every one of them (from a node, over its new rules).
  const std::string vip = c.GetJson({"service", "web"})["spec"].value("clusterIP", "");
  std::set<std::string> answered;
  EXPECT_TRUE(E2eCluster::WaitFor(
      [&] {
        testing::ProbeResult pr =
            testing::HttpGetIn(c.NodeNetns("worker"), vip, 80, "/hostname", 2s);
        if (pr.ok()) answered.insert(pr.body);
        return answered == names;
      },
      60s))
      << answered.size() << " of 3 pods answered";

  // A pod with an init container: the init container runs again in the new
  // sandbox (completed, counted once more), then the main one.
  Json seen;
  EXPECT_TRUE(E2eCluster::WaitFor(
      [&] {
        seen = c.GetJson({"pod", "inited"});
        return Ready(seen);
      },
      60s))
      << seen.dump(2);
  const Json& init = At(At(seen, "status"), "initContainerStatuses")[0];
  EXPECT_EQ(At(At(At(init, "state"), "terminated"), "exitCode"), 0) << init.dump();
  EXPECT_EQ(init.value("restartCount", -1),
            inited["status"]["initContainerStatuses"][0].value("restartCount", 0) + 1);
  EXPECT_EQ(At(At(seen, "status"), "containerStatuses")[0].value("restartCount", -1),
            inited["status"]["containerStatuses"][0].value("restartCount", 0) + 1);

  // restartPolicy Never: not restarted; the instance the reboot ended is its
  // last (terminated, Unknown, 255, as containerd reports a lost task), and
  // the pod fails.
  EXPECT_TRUE(E2eCluster::WaitFor(
      [&] {
        seen = c.GetJson({"pod", "never"});
        return At(At(seen, "status"), "phase") == "Failed";
      },
      30s))
      << seen.dump(2);
  const Json& never = At(At(seen, "status"), "containerStatuses")[0];
  EXPECT_EQ(At(At(At(never, "state"), "terminated"), "reason"), "Unknown") << never.dump();
  EXPECT_EQ(At(At(At(never, "state"), "terminated"), "exitCode"), 255) << never.dump();
  EXPECT_EQ(never.value("restartCount", -1), 0) << never.dump();

  // Objects intact: the ConfigMap as it was, the finished Job's pod still
  // Succeeded (a finished pod's status is final), nodes Ready.
  EXPECT_EQ(c.GetJson({"configmap", "kept"})["metadata"].value("uid", ""), cm_uid);
  Json jp = c.GetJson({"pod", job_pod});
  EXPECT_EQ(At(At(jp, "status"), "phase"), "Succeeded") << jp.dump(2);
  EXPECT_EQ(At(At(c.GetJson({"job", "once"}), "status"), "succeeded"), 1);
  EXPECT_EQ(c.ReadyNodes().size(), 2u);

  EXPECT_TRUE(c.Delete()) << c.last_output();
  EXPECT_EQ(c.Leftovers(), std::vector<std::string>{});
}

}  // namespace
}  // namespace kin
