// e2e: a cluster's life as a user lives it. Every `kin cluster create` flag
// takes effect; a cluster whose `kin serve` was killed (kill -9) comes back
// as it was saved, with all its nodes, whatever flags the restart omits, and
// flags that contradict the saved configuration are refused; delete removes
// everything, also of a node its configuration no longer lists.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <set>

#include "base/error.h"
#include "base/fd.h"
#include "base/file.h"
#include "base/process.h"
#include "base/yaml.h"
#include "testing/e2e_support.h"
#include "testing/e2e_cluster.h"
#include "testing/kernel_fixture.h"

namespace kin {
namespace {

namespace fs = std::filesystem;
using testing::Eventually;
using testing::KinBinary;
using testing::TempDir;

using Cluster = testing::E2eCluster;

std::string Joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += s + "\n";
  return out;
}

// A loopback port that nothing listens on now.
int FreePort() {
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return 0;
  socklen_t len = sizeof a;
  ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

std::string BusyboxPod(const std::string& name, const std::string& node,
                       const std::string& script) {
  return "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name + "\nspec:\n  nodeName: " + node +
         "\n  containers:\n  - name: c\n    image: busybox\n    command: [sh, -c, '" + script +
         "']\n";
}

std::string AgnhostPod(const std::string& name, const std::string& node) {
  return "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name + "\nspec:\n  nodeName: " + node +
         "\n  containers:\n  - name: web\n    image: registry.k8s.io/e2e-test-images/agnhost:2.52\n"
         "    args: [netexec, --http-port=8080]\n    readinessProbe:\n      httpGet: {path: /, "
         "port: 8080}\n      periodSeconds: 1\n";
}

class ClusterLifecycleE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::RequireRoot()) GTEST_SKIP() << "needs root";
  }
};

// Every flag of `kin cluster create`, each away from its default, and each
// checked where it acts.
TEST_F(ClusterLifecycleE2E, EveryCreateFlagTakesEffect) {
  Cluster c('f');
  int port = FreePort();
  ASSERT_GT(port, 0);
  testing::WriteFile(c.File("c.yaml"),
                     "apiVersion: kin.dev/v1alpha1\nkind: Cluster\n"
                     "networking: {serviceSubnet: 10.97.0.0/16}\n");
  CommandResult r = c.Kin({"cluster", "create", "--name", c.name(), "--nodes", "2", "--config",
                           c.File("c.yaml"), "--port", std::to_string(port), "--wait", "90s",
                           "--crash-backoff", "2s", "--container-log-max-size", "5Mi",
                           "--container-log-max-files", "3", "--host-access=false",
                           "--retain"});
  ASSERT_TRUE(r.status.success()) << r.out << r.err << c.Log();
  // --state-root and --name: the state lives there.
  EXPECT_TRUE(fs::exists(c.StateDir() + "/cluster.json"));
  // --kubeconfig: the context is merged there; --port: the API answers on it.
  std::string kubeconfig = ReadFileIfExists(c.Kubeconfig()).value_or("");
  EXPECT_NE(kubeconfig.find("kin-" + c.name()), std::string::npos) << kubeconfig;
  EXPECT_NE(kubeconfig.find("https://127.0.0.1:" + std::to_string(port)), std::string::npos)
      << kubeconfig;
  // --nodes 2: two Ready nodes.
  EXPECT_EQ(c.ReadyNodes(),
            (std::set<std::string>{c.NodeName("control-plane"), c.NodeName("worker")}));
  // --config's serviceSubnet: Services get addresses from it, the first one
  // is the kubernetes Service's.
  Json kube = c.GetJson({"service", "kubernetes"});
  EXPECT_EQ(kube["spec"].value("clusterIP", ""), "10.97.0.1") << kube.dump(2);
  // The kubelet settings are saved with the cluster (a restart keeps them).
  Json saved = Json::parse(ReadFileIfExists(c.StateDir() + "/cluster.json").value_or("{}"));
  EXPECT_EQ(saved["kubelet"],
            (Json{{"crashBackoff", "2s"},
                  {"containerLogMaxSize", "5Mi"},
                  {"containerLogMaxFiles", 3},
                  {"syncFrequency", "1m"},
                  {"tokenMaxAge", "24h"}}));
  // --host-access=false: saved so, and no link of the cluster on the host.
  EXPECT_EQ(saved.value("hostAccess", true), false);
  EXPECT_FALSE(RunCommand({"ip", "link", "show", "kin-" + c.name()}).status.success());

  // --container-log-max-size 5Mi and --container-log-max-files 3: 16 MiB of
  // log leave the current file and two rotated ones, none over 5 MiB.
  ASSERT_TRUE(c.Kubectl({"apply", "-f", "-"},
                        BusyboxPod("logger", c.NodeName("worker"),
                                   "yes 0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghij | "
                                   "head -c 16777216; sleep 3600"))
                  .status.success());
  Json logger = c.WaitPodReady("logger");
  ASSERT_FALSE(logger.is_null());
  // Logs are on the node's disk: logs/UID/CONTAINER/<instance>.log.
  std::string cdir = c.StateDir() + "/nodes/" + c.NodeName("worker") + "/logs/" +
                     logger["metadata"].value("uid", "") + "/c";
  std::set<std::string> files;
  EXPECT_TRUE(Eventually(
      [&] {
        files.clear();
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(cdir, ec)) {
          std::string f = e.path().filename().string();
          if (f.rfind("0.log", 0) == 0) files.insert(f);
        }
        return files == std::set<std::string>{"0.log", "0.log.1", "0.log.2"};
      },
      std::chrono::seconds(30)))
      << Joined({files.begin(), files.end()});
  for (const auto& f : files) {
    std::error_code ec;
    EXPECT_LE(fs::file_size(cdir + "/" + f, ec), 5u << 20) << f;
  }

  // --crash-backoff 2s: a crashing container is started again at once,
  // then after 2 s, then 4 s (the default 10 s would take 30 s for three
  // restarts; no back-off at all would take no time).
  auto applied = std::chrono::steady_clock::now();
  ASSERT_TRUE(
      c.Kubectl({"apply", "-f", "-"}, BusyboxPod("crasher", c.NodeName("worker"), "exit 3"))
          .status.success());
  Json crasher;
  EXPECT_TRUE(Eventually(
      [&] {
        crasher = c.GetJson({"pod", "crasher"});
        if (crasher.is_null()) return false;
        Json cs = crasher["status"].value("containerStatuses", Json::array());
        return !cs.empty() && cs[0].value("restartCount", 0) >= 3;
      },
      std::chrono::seconds(20)))
      << crasher.dump(2);
  EXPECT_GE(std::chrono::steady_clock::now() - applied, std::chrono::seconds(5));

  // --retain: a create that fails (the API port is taken) keeps what it made.
  Cluster failed('r');
  UniqueFd busy(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(busy.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(busy.get(), 1), 0);
  socklen_t len = sizeof a;
  ::getsockname(busy.get(), reinterpret_cast<sockaddr*>(&a), &len);
  r = failed.Kin({"cluster", "create", "--name", failed.name(), "--port",
                  std::to_string(ntohs(a.sin_port)), "--retain"});
  EXPECT_FALSE(r.status.success()) << r.out << r.err;
  EXPECT_TRUE(fs::exists(failed.StateDir() + "/cluster.json"));
  EXPECT_TRUE(fs::exists(failed.StateDir() + "/pki/ca.crt"));
  // Without --retain the same failure leaves nothing.
  Cluster clean('n');
  r = clean.Kin({"cluster", "create", "--name", clean.name(), "--port",
                 std::to_string(ntohs(a.sin_port))});
  EXPECT_FALSE(r.status.success()) << r.out << r.err;
  EXPECT_EQ(clean.Leftovers(), std::vector<std::string>{});

  r = c.Kin({"cluster", "delete", "--name", c.name()});
  EXPECT_TRUE(r.status.success()) << r.out << r.err;
  EXPECT_EQ(c.Leftovers(), std::vector<std::string>{});
}

TEST_F(ClusterLifecycleE2E, BadCreateFlagsAreRefusedNamingTheFlag) {
  Cluster c('b');
  struct Case {
    std::vector<std::string> flags;
    std::string expect;
  } cases[] = {
      {{"--container-log-max-size", "1Ki"}, "--container-log-max-size: Invalid value: \"1Ki\""},
      {{"--container-log-max-size", "lots"}, "--container-log-max-size: Invalid value: \"lots\""},
      {{"--container-log-max-files", "1"}, "--container-log-max-files: Invalid value: 1"},
      {{"--crash-backoff", "soon"}, "--crash-backoff: Invalid value: \"soon\""},
      {{"--crash-backoff", "0s"}, "--crash-backoff: Invalid value: \"0s\""},
  };
  for (const auto& k : cases) {
    std::vector<std::string> args = {"cluster", "create", "--name", c.name()};
    args.insert(args.end(), k.flags.begin(), k.flags.end());
    CommandResult r = c.Kin(args);
    EXPECT_FALSE(r.status.success()) << k.flags[0];
    EXPECT_NE(r.err.find(k.expect), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(c.StateDir())) << "nothing is made for bad flags";
  }
  CommandResult r = c.Kin({"cluster", "start", "--name", c.name()});
  EXPECT_FALSE(r.status.success());
  EXPECT_NE(r.err.find("cluster \"" + c.name() + "\" not found"), std::string::npos) << r.err;
}

// The second bug of the reliability issue: kill -9 of `kin serve`, then
// `kin cluster create --name x` without --nodes brings back all three nodes
// (their agents run: a pod on worker2 is adopted and a new one starts
// there); flags that contradict the saved configuration are refused; and
// delete leaves nothing.
TEST_F(ClusterLifecycleE2E, KilledServeComesBackAsSavedAndDeleteLeavesNothing) {
  Cluster c('k');
  CommandResult r = c.Kin({"cluster", "create", "--name", c.name(), "--nodes", "3",
                           "--container-log-max-files", "4"});
  ASSERT_TRUE(r.status.success()) << r.out << r.err << c.Log();
  ASSERT_TRUE(
      c.Kubectl({"apply", "-f", "-"}, AgnhostPod("survivor", c.NodeName("worker2"))).status.success());
  Json before = c.WaitPodReady("survivor");
  ASSERT_FALSE(before.is_null());

  c.KillServe();
  r = c.Kin({"cluster", "create", "--name", c.name()});
  ASSERT_TRUE(r.status.success()) << r.out << r.err << c.Log();
  EXPECT_NE(r.out.find("Starting cluster"), std::string::npos) << r.out;
  Json saved = Json::parse(ReadFileIfExists(c.StateDir() + "/cluster.json").value_or("{}"));
  EXPECT_EQ(saved["nodes"].size(), 3u);
  EXPECT_EQ(saved["kubelet"].value("containerLogMaxFiles", 0), 4);
  EXPECT_EQ(c.ReadyNodes(),
            (std::set<std::string>{c.NodeName("control-plane"), c.NodeName("worker"),
                                   c.NodeName("worker2")}));
  // worker2's agent runs: it adopted the pod and starts a new one.
  Json after = c.WaitPodReady("survivor");
  EXPECT_EQ(after["metadata"]["uid"], before["metadata"]["uid"]);
  EXPECT_EQ(after["status"].value("podIP", ""), before["status"].value("podIP", ""));
  ASSERT_TRUE(
      c.Kubectl({"apply", "-f", "-"}, AgnhostPod("newcomer", c.NodeName("worker2"))).status.success());
  EXPECT_FALSE(c.WaitPodReady("newcomer").is_null());

  // Flags that contradict the saved configuration are refused, naming each;
  // the cluster stays as it was.
  c.KillServe();
  r = c.Kin({"cluster", "create", "--name", c.name(), "--nodes", "1",
             "--container-log-max-files", "2"});
  EXPECT_FALSE(r.status.success()) << r.out;
  EXPECT_NE(r.err.find("--nodes 1 (it has 3 nodes)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--container-log-max-files 2 (it has 4)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("kin cluster start --name " + c.name()), std::string::npos) << r.err;
  // A config that differs in the proxy mode alone names the section.
  testing::WriteFile(c.File("iptables.yaml"),
                     "apiVersion: kin.dev/v1alpha1\nkind: Cluster\nnodes: [{role: control-plane}, "
                     "{role: worker}, {role: worker}]\nnetworking: {proxyMode: iptables}\n");
  r = c.Kin({"cluster", "create", "--name", c.name(), "--config", c.File("iptables.yaml"),
             "--container-log-max-files", "4"});
  EXPECT_FALSE(r.status.success()) << r.out;
  EXPECT_NE(r.err.find("(its networking differ)"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(c.StateDir() + "/cluster.json"));
  // Flags that agree with it are fine; `kin cluster start` needs none.
  r = c.Kin({"cluster", "start", "--name", c.name()});
  ASSERT_TRUE(r.status.success()) << r.out << r.err << c.Log();
  EXPECT_EQ(c.ReadyNodes().size(), 3u);
  EXPECT_FALSE(c.WaitPodReady("survivor").is_null());

  r = c.Kin({"cluster", "delete", "--name", c.name()});
  EXPECT_TRUE(r.status.success()) << r.out << r.err;
  EXPECT_EQ(c.Leftovers(), std::vector<std::string>{});
}

// Delete removes everything of a node that has state on disk, also when the
// configuration no longer lists it (as an older kin's restart left it).
TEST_F(ClusterLifecycleE2E, DeleteRemovesNodesTheConfigurationNoLongerLists) {
  Cluster c('d');
  CommandResult r = c.Kin({"cluster", "create", "--name", c.name(), "--nodes", "2"});
  ASSERT_TRUE(r.status.success()) << r.out << r.err << c.Log();
  ASSERT_TRUE(
      c.Kubectl({"apply", "-f", "-"}, AgnhostPod("orphan", c.NodeName("worker"))).status.success());
  ASSERT_FALSE(c.WaitPodReady("orphan").is_null());
  c.KillServe();
  // The worker vanishes from the saved configuration.
  Json saved = Json::parse(ReadFileIfExists(c.StateDir() + "/cluster.json").value_or("{}"));
  ASSERT_EQ(saved["nodes"].size(), 2u);
  saved["nodes"].erase(1);
  WriteFileAtomic(c.StateDir() + "/cluster.json", saved.dump(2), 0644, false);

  r = c.Kin({"cluster", "delete", "--name", c.name()});
  EXPECT_TRUE(r.status.success()) << r.out << r.err;
  EXPECT_EQ(c.Leftovers(), std::vector<std::string>{});
}

}  // namespace
}  // namespace kin
