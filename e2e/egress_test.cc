// e2e: the cluster's internet, egress SNAT and the API inside the cluster's
// network. One `--nodes 3` cluster made by the real binary, kubectl 1.33:
// a busybox pod's `wget http://203.0.113.2/` is answered with its node's IP
// (the seed's 6.1.1), the UDP echo answers a pod, pod-to-pod traffic keeps
// pod IPs, the API answers on 172.18.0.1:6443 from pods and nodes with a
// certificate naming that address, the kubernetes Service's address and
// names, the `kubernetes` Endpoints and EndpointSlice point there, the
// Service's 10.96.0.1:443 reaches it through the service proxy, pods get
// service account credentials (ca.crt, namespace, a token bound to the pod
// that the API accepts), and `kin cluster delete` leaves nothing (the
// internet namespace included).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <memory>

#include "base/file.h"
#include "base/netns.h"
#include "base/process.h"
#include "base/yaml.h"
#include "testing/e2e_cluster.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin {
namespace {

using Cluster = testing::E2eCluster;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using namespace std::chrono_literals;

std::string BusyboxPod(const std::string& name, const std::string& node) {
  return "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name + "\nspec:\n  nodeName: " + node +
         "\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n    image: busybox\n"
         "    command: [sh, -c, 'trap \"exit 0\" TERM; while true; do sleep 1; done']\n";
}

std::string AgnhostPod(const std::string& name, const std::string& node) {
  return "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name + "\nspec:\n  nodeName: " + node +
         "\n  containers:\n  - name: web\n    image: registry.k8s.io/e2e-test-images/agnhost:2.52\n"
         "    args: [netexec, --http-port=8080]\n";
}

class EgressE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!testing::RequireRoot()) return;
    cluster_ = new Cluster('s');
    // The underlay stays 172.18.0.0/24, which the checks name.
    created_ = cluster_->Create({"--nodes", "3", "--host-access=false"});
  }
  static void TearDownTestSuite() {
    if (!cluster_) return;
    EXPECT_TRUE(cluster_->Delete()) << cluster_->last_output();
    // The internet namespace and every node's kin-egress table go too.
    EXPECT_EQ(cluster_->Leftovers(), std::vector<std::string>{});
    EXPECT_EQ(ListNamedNetns(cluster_->Prefix()), std::vector<std::string>{});
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override {
    if (!testing::RequireRoot()) GTEST_SKIP() << "needs root";
    ASSERT_TRUE(created_) << cluster_->last_output() << cluster_->Log();
  }
  Cluster& c() { return *cluster_; }

  // `kubectl exec POD -- ARGS`: its output (stdout and stderr), and whether it succeeded.
  std::pair<bool, std::string> Exec(const std::string& pod, std::vector<std::string> args) {
    args.insert(args.begin(), {"exec", pod, "--"});
    CommandResult r = c().Kubectl(args);
    return {r.status.success(), r.out + r.err};
  }

  static Cluster* cluster_;
  static bool created_;
};
Cluster* EgressE2E::cluster_ = nullptr;
bool EgressE2E::created_ = false;

TEST_F(EgressE2E, PodsReachTheInternetAsTheirNode) {
  std::vector<std::string> netns = ListNamedNetns(c().Prefix());
  EXPECT_NE(std::find(netns.begin(), netns.end(), c().Prefix() + "ext"), netns.end())
      << "no internet namespace " << c().Prefix() << "ext";
  // Every node masquerades its pods' egress with a table of its own.
  for (const char* role : {"control-plane", "worker", "worker2"}) {
    CommandResult r = RunCommand(
        {"ip", "netns", "exec", c().NodeName(role), "nft", "list", "table", "ip", "kin-egress"},
        20s);
    EXPECT_THAT(r.out, HasSubstr("oifname \"eth0\" masquerade")) << role << ": " << r.err;
  }
  c().Apply(BusyboxPod("out-w", c().NodeName("worker")));
  c().Apply(BusyboxPod("out-w2", c().NodeName("worker2")));
  for (const char* name : {"out-w", "out-w2"}) {
    Json pod = c().WaitPodReady(name);
    ASSERT_FALSE(pod.is_null());
    const std::string node_ip = pod["status"].value("hostIP", "");
    const std::string pod_ip = pod["status"].value("podIP", "");
    ASSERT_FALSE(node_ip.empty());
    ASSERT_NE(node_ip, pod_ip);
    // Egress SNAT: the external server sees the node's IP, not the pod's.
    auto [ok, out] = Exec(name, {"wget", "-qO-", "http://203.0.113.2/"});
    EXPECT_TRUE(ok) << out;
    EXPECT_THAT(out, StartsWith("client=" + node_ip + ":")) << name;
  }
  // The node's own traffic goes out with its address too.
  CommandResult node = RunCommand({"ip", "netns", "exec", c().NodeName("worker"), "busybox", "wget",
                                   "-qO-", "http://203.0.113.2/"},
                                  20s);
  EXPECT_THAT(node.out, StartsWith("client=172.18.0.3:")) << node.err;
}

TEST_F(EgressE2E, PodToPodIsNeverMasqueradedAndUdpGoesOutToo) {
  c().Apply(AgnhostPod("echo-server", c().NodeName("worker2")));
  c().Apply(BusyboxPod("p2p-client", c().NodeName("worker")));
  Json server = c().WaitPodReady("echo-server");
  Json client = c().WaitPodReady("p2p-client");
  ASSERT_FALSE(server.is_null());
  ASSERT_FALSE(client.is_null());
  const std::string url = "http://" + server["status"].value("podIP", "") + ":8080/clientip";
  std::string out;
  // The server's port opens a moment after the pod is Ready (no probe).
  EXPECT_TRUE(Cluster::WaitFor(
      [&] {
        auto [ok, o] = Exec("p2p-client", {"wget", "-qO-", url});
        out = o;
        return ok;
      },
      20s))
      << out;
  EXPECT_THAT(out, StartsWith(client["status"].value("podIP", "") + ":"));

  // The UDP echo on 203.0.113.2:7 answers a pod too (agnhost dials it
  // from its own pod, masqueraded as worker2).
  const std::string dial = "http://" + server["status"].value("podIP", "") +
                           ":8080/dial?host=203.0.113.2&port=7&protocol=udp&request=ping-udp";
  auto [ok, udp] = Exec("p2p-client", {"wget", "-qO-", dial});
  EXPECT_TRUE(ok) << udp;
  EXPECT_THAT(udp, HasSubstr("\"responses\":[\"ping-udp\"]")) << udp;
}

TEST_F(EgressE2E, TheApiAnswersInsideTheClusterNetwork) {
  // The kubernetes Service's backends: the API's address in the network.
  Json ep = c().GetJson({"endpoints", "kubernetes"});
  ASSERT_FALSE(ep.is_null());
  EXPECT_EQ(ep["subsets"][0]["addresses"][0].value("ip", ""), "172.18.0.1") << ep.dump();
  EXPECT_EQ(ep["subsets"][0]["ports"][0].value("port", 0), 6443);
  Json slice = c().GetJson({"endpointslice", "kubernetes"});
  ASSERT_FALSE(slice.is_null());
  EXPECT_EQ(slice["endpoints"][0]["addresses"][0], "172.18.0.1") << slice.dump();
  EXPECT_EQ(slice["ports"][0].value("port", 0), 6443);
  EXPECT_EQ(slice["metadata"]["labels"].value("kubernetes.io/service-name", ""), "kubernetes");
  Json svc = c().GetJson({"service", "kubernetes"});
  ASSERT_FALSE(svc.is_null());
  EXPECT_EQ(svc["spec"].value("clusterIP", ""), "10.96.0.1");

  // From a pod: the listener is there. (busybox's own TLS has no ECDSA,
  // which kin's certificates use, so plain HTTP: the API answers 400
  // "Client sent an HTTP request to an HTTPS server", as Go's does.)
  c().Apply(BusyboxPod("api-client", c().NodeName("worker2")));
  ASSERT_FALSE(c().WaitPodReady("api-client").is_null());
  auto [ok, out] = Exec("api-client", {"wget", "-O-", "http://172.18.0.1:6443/version"});
  EXPECT_FALSE(ok);
  EXPECT_THAT(out, HasSubstr("400")) << out;
  // What in-cluster clients find in their environment.
  auto [eok, env] = Exec("api-client", {"env"});
  EXPECT_THAT(env, HasSubstr("KUBERNETES_SERVICE_HOST=10.96.0.1\n"));
  EXPECT_THAT(env, HasSubstr("KUBERNETES_SERVICE_PORT=443\n"));

  // From a node, over TLS verified against the cluster CA: the certificate
  // names 172.18.0.1, the Service's 10.96.0.1 and its DNS names (curl
  // connects to 172.18.0.1:6443 while checking the certificate for each).
  const std::string ca = c().StateDir() + "/pki/ca.crt";
  for (const std::string& target :
       {std::string("https://172.18.0.1:6443/version"), std::string("https://10.96.0.1/version"),
        std::string("https://kubernetes.default.svc/version"),
        std::string("https://kubernetes.default.svc.cluster.local/version")}) {
    std::string host = target.substr(8, target.find('/', 8) - 8);
    if (host.find(':') == std::string::npos) host += ":443";
    CommandResult r =
        RunCommand({"ip", "netns", "exec", c().NodeName("worker"), "curl", "-sS", "--max-time",
                    "10", "--cacert", ca, "--connect-to", host + ":172.18.0.1:6443", target},
                   20s);
    EXPECT_TRUE(r.status.success()) << target << ": " << r.err;
    EXPECT_THAT(r.out, HasSubstr("\"gitVersion\"")) << target;
  }
}

// kubernetes.default.svc's address, 10.96.0.1:443, reaches the API through
// the service proxy's DNAT to the Endpoints (172.18.0.1:6443), from pods and
// from nodes.
TEST_F(EgressE2E, TheKubernetesServiceReachesTheApi) {
  c().Apply(BusyboxPod("svc-client", c().NodeName("worker")));
  ASSERT_FALSE(c().WaitPodReady("svc-client").is_null());
  // Plain HTTP from the pod (busybox's TLS has no ECDSA): the API's 400.
  std::string out;
  EXPECT_TRUE(Cluster::WaitFor(
      [&] {
        out = Exec("svc-client", {"wget", "-O-", "http://10.96.0.1:443/version"}).second;
        return out.find("400") != std::string::npos;
      },
      20s))
      << out;
  // TLS from a node, checked against the cluster CA for 10.96.0.1.
  CommandResult r;
  EXPECT_TRUE(Cluster::WaitFor(
      [&] {
        r = RunCommand(
            {"ip", "netns", "exec", c().NodeName("worker2"), "curl", "-sS", "--max-time", "5",
             "--cacert", c().StateDir() + "/pki/ca.crt", "https://10.96.0.1/version"},
            20s);
        return r.status.success();
      },
      20s))
      << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"gitVersion\""));

  // TLS from the pod's own network namespace, verified with the CA the pod
  // was given, for the name in-cluster clients use (resolved by hand until
  // the cluster has DNS): what client-go's InClusterConfig does.
  Json pod = c().GetJson({"pod", "svc-client"});
  const std::string pod_netns = c().PodNetns(pod);
  ASSERT_FALSE(pod_netns.empty());
  auto [cok, ca] =
      Exec("svc-client", {"cat", "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"});
  ASSERT_TRUE(cok) << ca;
  testing::WriteFile(c().File("pod-ca.crt"), ca);
  r = RunCommand({"ip", "netns", "exec", pod_netns, "curl", "-sS", "--max-time", "5", "--cacert",
                  c().File("pod-ca.crt"), "--resolve", "kubernetes.default.svc:443:10.96.0.1",
                  "https://kubernetes.default.svc/version"},
                 20s);
  EXPECT_TRUE(r.status.success()) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"gitVersion\""));
}

// What in-cluster clients (client-go's InClusterConfig) read, and a token
// the API accepts while its pod exists.
TEST_F(EgressE2E, PodsGetServiceAccountCredentialsTheApiAccepts) {
  c().Apply(BusyboxPod("sa-client", c().NodeName("worker")));
  ASSERT_FALSE(c().WaitPodReady("sa-client").is_null());
  const std::string dir = "/var/run/secrets/kubernetes.io/serviceaccount/";
  auto [nok, ns] = Exec("sa-client", {"cat", dir + "namespace"});
  EXPECT_EQ(ns, "default");
  auto [cok, ca] = Exec("sa-client", {"cat", dir + "ca.crt"});
  EXPECT_EQ(ca, ReadFileIfExists(c().StateDir() + "/pki/ca.crt").value_or("none"));
  auto [tok, token] = Exec("sa-client", {"cat", dir + "token"});
  ASSERT_TRUE(tok) << token;
  EXPECT_EQ(std::count(token.begin(), token.end(), '.'), 2) << token;
  // Read-only, as the kubelet mounts it.
  auto [wok, wout] = Exec("sa-client", {"sh", "-c", "echo x > " + dir + "token"});
  EXPECT_FALSE(wok) << wout;

  // From the node (busybox's TLS cannot do ECDSA), with the pod's CA and token.
  auto curl = [&](const std::string& path, const std::string& bearer) {
    std::vector<std::string> argv = {"ip",         "netns",
                                     "exec",       c().NodeName("worker"),
                                     "curl",       "-sS",
                                     "-o",         "/dev/null",
                                     "-w",         "%{http_code}",
                                     "--max-time", "10",
                                     "--cacert",   c().StateDir() + "/pki/ca.crt"};
    if (!bearer.empty()) {
      argv.push_back("-H");
      argv.push_back("Authorization: Bearer " + bearer);
    }
    argv.push_back("https://172.18.0.1:6443" + path);
    return RunCommand(argv, 20s).out;
  };
  // Authenticated: discovery is every authenticated user's (RBAC's
  // system:discovery); listing pods is not granted to the default account.
  EXPECT_EQ(curl("/api/v1", token), "200");
  EXPECT_EQ(curl("/api/v1/namespaces/default/pods", token), "403");
  EXPECT_EQ(curl("/api/v1", ""), "401");
  EXPECT_EQ(curl("/api/v1", token + "x"), "401");
  // Bound to its pod: gone with it.
  c().Ok({"delete", "pod", "sa-client", "--wait=true"});
  EXPECT_EQ(curl("/api/v1", token), "401");

  // automountServiceAccountToken: false keeps it out.
  std::string yaml = BusyboxPod("no-sa", c().NodeName("worker"));
  yaml.replace(yaml.find("  containers:"), 0, "  automountServiceAccountToken: false\n");
  c().Apply(yaml);
  ASSERT_FALSE(c().WaitPodReady("no-sa").is_null());
  auto [lok, lout] = Exec("no-sa", {"ls", dir});
  EXPECT_FALSE(lok) << lout;
}

// Upstream's in-cluster client test image: agnhost inclusterclient polls
// /healthz with client-go's in-cluster config (the Service environment, the
// mounted CA and token) and logs a hash of each Authorization header.
TEST_F(EgressE2E, AgnhostInClusterClientReachesTheApiWithItsToken) {
  c().Apply(
      "apiVersion: v1\nkind: Pod\nmetadata:\n  name: incluster\nspec:\n  nodeName: " +
      c().NodeName("worker") +
      "\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n"
      "    image: registry.k8s.io/e2e-test-images/agnhost:2.52\n"
      "    args: [inclusterclient, --poll-interval=1]\n");
  ASSERT_FALSE(c().WaitPodReady("incluster").is_null());
  std::string logs;
  auto calls = [&] {
    logs = c().Kubectl({"logs", "incluster"}).out;
    size_t n = 0;
    for (size_t at = 0; (at = logs.find("calling /healthz", at)) != std::string::npos; ++at) ++n;
    return n;
  };
  EXPECT_TRUE(Cluster::WaitFor([&] { return calls() >= 3; }, 30s)) << logs;
  EXPECT_THAT(logs, HasSubstr("] started"));
  EXPECT_THAT(logs, ::testing::ContainsRegex("authz_header=[A-Za-z0-9_-]{43}\n"));
  EXPECT_THAT(logs, ::testing::Not(HasSubstr("status=failed")));
  EXPECT_THAT(logs, ::testing::Not(HasSubstr("authz_header=<empty>")));
  // Its logs live on the node's disk and go with the pod.
  const std::string uid = c().GetJson({"pod", "incluster"})["metadata"].value("uid", "");
  const std::string log_dir =
      c().StateDir() + "/nodes/" + c().NodeName("worker") + "/logs/" + uid;
  EXPECT_TRUE(std::filesystem::is_directory(log_dir)) << log_dir;
  c().Ok({"delete", "pod", "incluster", "--wait=true"});
  EXPECT_TRUE(Cluster::WaitFor([&] { return !std::filesystem::exists(log_dir); }, 10s)) << log_dir;
}

// After kin serve was killed (-9) and started again: the egress rules, the
// external server, the in-network listener and earlier pods' tokens (the
// key is kept in pki/sa.key) all work as before.
TEST_F(EgressE2E, ZAfterAKilledServeEverythingComesBack) {
  // Its own pod: under ctest every test runs alone, on a cluster of its own.
  c().Apply(BusyboxPod("out-w", c().NodeName("worker")));
  Json pod = c().WaitPodReady("out-w");
  ASSERT_FALSE(pod.is_null());
  auto [tok, token] = Exec("out-w", {"cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"});
  ASSERT_TRUE(tok) << token;
  c().KillServe();
  CommandResult r = c().Kin({"cluster", "start", "--name", c().name()});
  ASSERT_TRUE(r.status.success()) << r.out << r.err << c().Log();

  auto [ok, out] = Exec("out-w", {"wget", "-qO-", "http://203.0.113.2/"});
  EXPECT_TRUE(ok) << out;
  EXPECT_THAT(out, StartsWith("client=" + pod["status"].value("hostIP", "") + ":"));
  CommandResult api = RunCommand(
      {"ip", "netns", "exec", c().NodeName("worker"), "curl", "-sS", "-o", "/dev/null", "-w",
       "%{http_code}", "--max-time", "10", "--cacert", c().StateDir() + "/pki/ca.crt", "-H",
       "Authorization: Bearer " + token, "https://172.18.0.1:6443/api/v1"},
      20s);
  EXPECT_EQ(api.out, "200") << api.err;
}

}  // namespace
}  // namespace kin
