// e2e: Services through the real data plane, the seed's 5.3 and 5.4, in
// both proxy modes (nftables, the default, and iptables): a real cluster,
// real kubectl 1.33, agnhost backends, and traffic sent from inside pod and
// node namespaces. A ClusterIP spreads new connections over the backends
// and keeps one connection on one; the backend sees the client pod's own
// IP; affinity pins a client and letting it go spreads again; scaling and
// deleting pods change the backends; no endpoints means refused at once;
// NodePort answers on every node, and with externalTrafficPolicy Local the
// client IP survives; a pod reaches itself through its Service (hairpin);
// UDP on the same port number as TCP; and a restarted kin serve leaves no
// stale rule behind.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <map>
#include <set>
#include <string>

#include "base/process.h"
#include "base/yaml.h"
#include "testing/e2e_cluster.h"
#include "testing/e2e_manifests.h"
#include "testing/kernel_fixture.h"
#include "testing/net_probe.h"

namespace kin {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::E2eCluster;
using testing::HttpGetIn;
using testing::ProbeResult;

const std::string kBackends = testing::NetexecDeployment("web", {.replicas = 3, .udp = true}) + R"(---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
  - {name: udp, port: 80, targetPort: 8081, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: web-np}
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {port: 80, targetPort: 8080}
---
apiVersion: v1
kind: Service
metadata: {name: web-local}
spec:
  type: NodePort
  externalTrafficPolicy: Local
  selector: {app: web}
  ports:
  - {port: 80, targetPort: 8080}
---
apiVersion: v1
kind: Service
metadata: {name: empty}
spec:
  selector: {app: nothing-matches-this}
  ports:
  - {port: 80, targetPort: 8080}
)";

std::string SoloPod(const std::string& node) {
  return "apiVersion: v1\nkind: Pod\nmetadata: {name: solo, labels: {app: solo}}\nspec:\n"
         "  nodeName: " +
         node +
         "\n  containers:\n  - name: web\n    image: registry.k8s.io/e2e-test-images/agnhost:2.52\n"
         "    args: [netexec, --http-port=8080]\n---\napiVersion: v1\nkind: Service\n"
         "metadata: {name: solo}\nspec:\n  selector: {app: solo}\n  ports:\n"
         "  - {port: 80, targetPort: 8080}\n";
}

std::string ClientPod(const std::string& node) {
  return "apiVersion: v1\nkind: Pod\nmetadata: {name: client}\nspec:\n  nodeName: " + node +
         "\n  containers:\n  - {name: c, image: busybox, command: [sleep, '3600']}\n";
}

std::string Host(const std::string& client_ip) { return client_ip.substr(0, client_ip.find(':')); }

class ServicesE2E : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!testing::RequireRoot()) GTEST_SKIP() << "needs root";
    testing::WriteFile(c_.File("c.yaml"),
                       "apiVersion: kin.dev/v1alpha1\nkind: Cluster\n"
                       "nodes: [{role: control-plane}, {role: worker}, {role: worker}]\n"
                       "networking: {proxyMode: " +
                           GetParam() + "}\n");
    ASSERT_TRUE(c_.Create({"--config", c_.File("c.yaml")})) << c_.last_output();
  }
  void TearDown() override {
    if (!testing::RequireRoot()) return;
    EXPECT_TRUE(c_.Delete()) << c_.last_output();
    EXPECT_EQ(c_.Leftovers(), std::vector<std::string>{});
  }

  std::string ClusterIp(const std::string& svc) {
    return c_.GetJson({"service", svc})["spec"].value("clusterIP", "");
  }
  int NodePort(const std::string& svc) {
    return c_.GetJson({"service", svc})["spec"]["ports"][0].value("nodePort", 0);
  }
  std::string NodeIp(const std::string& node_name) {
    Json n = c_.GetJson({"node", node_name});
    return n["status"]["addresses"][0].value("address", "");
  }
  // The backends that answered `n` GETs of /hostname at ip:port from `netns`.
  std::multiset<std::string> Hostnames(const std::string& netns, const std::string& ip, int port,
                                       int n) {
    std::multiset<std::string> out;
    for (int i = 0; i < n; ++i) {
      ProbeResult r = HttpGetIn(netns, ip, port, "/hostname");
      out.insert(r.ok() ? r.body : "error:" + std::to_string(r.error));
    }
    return out;
  }
  // The node's proxy rules, for failure messages.
  std::string Rules(const std::string& role) {
    CommandResult r =
        GetParam() == "nftables"
            ? RunCommand({"ip", "netns", "exec", c_.NodeNetns(role), "nft", "list", "ruleset"})
            : RunCommand({"ip", "netns", "exec", c_.NodeNetns(role), "iptables-save"});
    return r.out + r.err;
  }
  static size_t Distinct(const std::multiset<std::string>& m) {
    return std::set<std::string>(m.begin(), m.end()).size();
  }

  E2eCluster c_{'v'};
};

TEST_P(ServicesE2E, SeedFlows) {
  const std::string worker = c_.NodeName("worker"), worker2 = c_.NodeName("worker2");
  const std::string cp = c_.NodeName("control-plane");
  c_.Apply(kBackends);
  c_.Apply(ClientPod(worker));
  Json client = c_.WaitPodReady("client");
  ASSERT_FALSE(client.is_null());
  const std::string client_ns = c_.PodNetns(client);
  const std::string client_ip = client["status"].value("podIP", "");
  ASSERT_FALSE(client_ns.empty());
  ASSERT_TRUE(E2eCluster::WaitFor([&] {
    Json d = c_.GetJson({"deployment", "web"});
    return d.is_object() && d["status"].value("readyReplicas", 0) == 3;
  })) << c_.Ok({"get", "pods", "-o", "wide"});
  std::set<std::string> pods;
  const Json web_pods = c_.GetJson({"pods", "-l", "app=web"});  // outlives the loop
  for (const auto& p : web_pods["items"]) {
    pods.insert(p["metadata"].value("name", ""));
  }
  const std::string vip = ClusterIp("web");
  ASSERT_FALSE(vip.empty());

  // The seed's 5.3: a pod reaches the ClusterIP; new connections spread.
  std::multiset<std::string> seen;
  ASSERT_TRUE(E2eCluster::WaitFor([&] {
    seen = Hostnames(client_ns, vip, 80, 30);
    return Distinct(seen) >= 2 &&
           std::all_of(seen.begin(), seen.end(), [&](const auto& h) { return pods.count(h) == 1; });
  })) << "answers: "
      << ::testing::PrintToString(seen) << "\npods: " << ::testing::PrintToString(pods) << "\n"
      << Rules("worker");

  // The backend sees the client pod's own IP (no SNAT between pods).
  ProbeResult r = HttpGetIn(client_ns, vip, 80, "/clientip");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(Host(r.body), client_ip);

  // One connection stays on one backend.
  r = testing::HttpGetsOnOneConnectionIn(client_ns, vip, 80, "/hostname", 6);
  ASSERT_TRUE(r.ok()) << r.error;
  std::set<std::string> on_one;
  for (size_t a = 0, b; a <= r.body.size(); a = b + 1) {
    b = r.body.find('\n', a);
    if (b == std::string::npos) b = r.body.size();
    on_one.insert(r.body.substr(a, b - a));
  }
  EXPECT_EQ(on_one.size(), 1u) << r.body;

  // From a node itself, too.
  r = HttpGetIn(c_.NodeNetns("worker2"), vip, 80, "/hostname");
  EXPECT_TRUE(r.ok() && pods.count(r.body)) << r.error << " " << r.body;

  // UDP on the same port number as TCP.
  r = testing::UdpAskIn(client_ns, vip, 80, "hostname");
  EXPECT_TRUE(r.ok() && pods.count(r.body)) << r.error << " " << r.body;

  // sessionAffinity ClientIP: 15 requests, one backend; switched off, they spread again.
  c_.Ok({"patch", "service", "web", "-p", R"({"spec":{"sessionAffinity":"ClientIP"}})"});
  EXPECT_TRUE(E2eCluster::WaitFor([&] { return Distinct(Hostnames(client_ns, vip, 80, 15)) == 1; }))
      << "affinity never held";
  c_.Ok({"patch", "service", "web", "-p", R"({"spec":{"sessionAffinity":"None"}})"});
  EXPECT_TRUE(E2eCluster::WaitFor([&] { return Distinct(Hostnames(client_ns, vip, 80, 30)) >= 2; }))
      << "still pinned after affinity went";

  // No endpoints: refused at once, not a timeout.
  const std::string empty = ClusterIp("empty");
  ProbeResult refused;
  EXPECT_TRUE(E2eCluster::WaitFor([&] {
    refused = testing::TcpConnectIn(client_ns, empty, 80, seconds(2));
    return refused.error == ECONNREFUSED;
  })) << "connect to a Service without endpoints: errno "
      << refused.error;
  EXPECT_LT(refused.took, milliseconds(500));

  // NodePort: on every node's IP, from a pod and from another node.
  const int np = NodePort("web-np");
  ASSERT_GT(np, 0);
  for (const std::string& node : {cp, worker, worker2}) {
    std::string ip = NodeIp(node);
    EXPECT_TRUE(E2eCluster::WaitFor([&] {
      ProbeResult a = HttpGetIn(client_ns, ip, np, "/hostname");
      ProbeResult b = HttpGetIn(c_.NodeNetns("control-plane"), ip, np, "/hostname");
      return a.ok() && pods.count(a.body) && b.ok() && pods.count(b.body);
    })) << "NodePort "
        << np << " on " << node << " (" << ip << ")";
  }

  // ... and from the internet (the cluster's ext namespace), also on the
  // control-plane node, which runs no backend.
  const std::string ext_ns = c_.Prefix() + "ext";
  for (const std::string& node : {cp, worker, worker2}) {
    ProbeResult from_ext = HttpGetIn(ext_ns, NodeIp(node), np, "/hostname");
    EXPECT_TRUE(from_ext.ok() && pods.count(from_ext.body))
        << "NodePort from the internet on " << node << ": " << from_ext.error << " "
        << from_ext.body;
  }

  // externalTrafficPolicy Local keeps the client's IP; Cluster masquerades
  // it (the seed's 5.4). From the control-plane node to a node with a backend.
  std::string backend_node;
  for (const auto& p : web_pods["items"]) backend_node = p["spec"].value("nodeName", "");
  const std::string target = NodeIp(backend_node), from = NodeIp(cp);
  const int local_np = NodePort("web-local");
  ProbeResult local;
  EXPECT_TRUE(E2eCluster::WaitFor([&] {
    local = HttpGetIn(c_.NodeNetns("control-plane"), target, local_np, "/clientip");
    return local.ok() && Host(local.body) == from;
  })) << "Local policy: "
      << local.error << " " << local.body;
  ProbeResult from_internet = HttpGetIn(ext_ns, target, local_np, "/clientip");
  EXPECT_TRUE(from_internet.ok() && Host(from_internet.body).rfind("203.0.113.", 0) == 0)
      << "Local policy from the internet: " << from_internet.error << " " << from_internet.body;
  ProbeResult cluster_policy = HttpGetIn(c_.NodeNetns("control-plane"), target, np, "/clientip");
  ASSERT_TRUE(cluster_policy.ok()) << cluster_policy.error;
  EXPECT_NE(Host(cluster_policy.body), from) << "Cluster policy should masquerade";

  // Hairpin: a pod reaches itself through its own Service.
  c_.Apply(SoloPod(worker2));
  Json solo = c_.WaitPodReady("solo");
  ASSERT_FALSE(solo.is_null());
  const std::string solo_vip = ClusterIp("solo");
  ProbeResult hairpin;
  EXPECT_TRUE(E2eCluster::WaitFor([&] {
    hairpin = HttpGetIn(c_.PodNetns(solo), solo_vip, 80, "/hostname");
    return hairpin.ok() && hairpin.body == "solo";
  })) << "hairpin: "
      << hairpin.error << " " << hairpin.body;

  // Scaling down: the removed pods stop receiving traffic within moments.
  auto scaled_at = std::chrono::steady_clock::now();
  c_.Ok({"scale", "deployment", "web", "--replicas=1"});
  std::multiset<std::string> after;
  EXPECT_TRUE(E2eCluster::WaitFor(
      [&] {
        after = Hostnames(client_ns, vip, 80, 10);
        return Distinct(after) == 1 && pods.count(*after.begin());
      },
      seconds(20)))
      << ::testing::PrintToString(after);
  // A goal, not a bound: printed for the record (kubectl's own round trip included).
  std::printf("backends followed the scale-down in %lld ms\n",
              static_cast<long long>(std::chrono::duration_cast<milliseconds>(
                                         std::chrono::steady_clock::now() - scaled_at)
                                         .count()));

  // A restarted kin serve replaces the node's rules in full: a stale chain
  // planted while it was down is gone, and Services still work.
  c_.KillServe();
  const std::string node_ns = c_.NodeNetns("worker");
  const bool nft = GetParam() == "nftables";
  CommandResult plant = nft ? RunCommand({"ip", "netns", "exec", node_ns, "nft", "add", "chain",
                                          "ip", "kin-proxy", "stale-e2e"})
                            : RunCommand({"ip", "netns", "exec", node_ns, "iptables", "-t", "nat",
                                          "-N", "KUBE-SVC-STALEE2E0000000"});
  ASSERT_TRUE(plant.status.success()) << plant.out << plant.err;
  CommandResult start = c_.Kin({"cluster", "start", "--name", c_.name()});
  ASSERT_TRUE(start.status.success()) << start.out << start.err << c_.Log();
  auto rules = [&] {
    return nft ? RunCommand(
                     {"ip", "netns", "exec", node_ns, "nft", "list", "table", "ip", "kin-proxy"})
                     .out
               : RunCommand({"ip", "netns", "exec", node_ns, "iptables-save", "-t", "nat"}).out;
  };
  EXPECT_TRUE(E2eCluster::WaitFor([&] {
    std::string text = rules();
    return text.find(nft ? "stale-e2e" : "STALEE2E") == std::string::npos &&
           HttpGetIn(client_ns, vip, 80, "/hostname").ok();
  })) << rules();
  if (!nft) {
    // What the seed shows: kube-proxy's chains, with iptables-save.
    std::string text = rules();
    EXPECT_NE(text.find(":KUBE-SERVICES"), std::string::npos) << text;
    EXPECT_NE(text.find("KUBE-SVC-"), std::string::npos) << text;
    EXPECT_NE(text.find("KUBE-SEP-"), std::string::npos) << text;
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, ServicesE2E, ::testing::Values("nftables", "iptables"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace kin
