// e2e: LoadBalancer Services, the seed's 6.2.1 and 6.2.2: a real 3-node
// cluster in both proxy modes (nftables, iptables), real kubectl 1.33, agnhost backends, traffic
// from the cluster's internet namespace (kin-<c>-ext). A LoadBalancer Service gets an EXTERNAL-IP
// from 198.51.100.0/24 (`kubectl get svc` shows it, <pending> for another class's); the network
// routes it to the workers by equal-cost multipath (the control plane is excluded, as kubeadm
// labels it) and connections spread over them; with externalTrafficPolicy Cluster the backend sees
// a node's address, with Local the client's own, and only nodes with an endpoint are next hops; the
// healthCheckNodePort answers as kube-proxy's (200 / 503); a Service without node ports still
// works; deleting a Service frees its address and its route.
#include <gtest/gtest.h>

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

using std::chrono::seconds;
using testing::E2eCluster;
using testing::HttpGetIn;
using testing::ProbeResult;

const char kPool[] = "198.51.100.";
const char kClient[] = "203.0.113.1";  // the internet namespace's own address

const std::string kBackends = testing::NetexecDeployment("web", {.replicas = 4}) + R"(---
apiVersion: v1
kind: Service
metadata: {name: web-lb}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
---
apiVersion: v1
kind: Service
metadata: {name: web-noports}
spec:
  type: LoadBalancer
  allocateLoadBalancerNodePorts: false
  selector: {app: web}
  ports:
  - {port: 8000, targetPort: 8080}
---
apiVersion: v1
kind: Service
metadata: {name: elsewhere}
spec:
  type: LoadBalancer
  loadBalancerClass: example.com/another-cloud
  selector: {app: web}
  ports:
  - {port: 80, targetPort: 8080}
)";

// One backend pinned to `node`, behind a Local LoadBalancer.
std::string SoloLocal(const std::string& node) {
  return "apiVersion: v1\nkind: Pod\nmetadata: {name: solo, labels: {app: solo}}\nspec:\n"
         "  nodeName: " +
         node +
         "\n  containers:\n  - name: web\n    image: registry.k8s.io/e2e-test-images/agnhost:2.52\n"
         "    args: [netexec, --http-port=8080]\n    readinessProbe:\n"
         "      httpGet: {path: /, port: 8080}\n      periodSeconds: 1\n---\n"
         "apiVersion: v1\nkind: Service\nmetadata: {name: solo-lb}\nspec:\n"
         "  type: LoadBalancer\n  externalTrafficPolicy: Local\n  selector: {app: solo}\n"
         "  ports:\n  - {port: 80, targetPort: 8080}\n";
}

std::string Host(const std::string& hostport) { return hostport.substr(0, hostport.find(':')); }

class LoadBalancerE2E : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!testing::RequireRoot()) GTEST_SKIP() << "needs root";
    testing::WriteFile(c_.File("c.yaml"),
                       "apiVersion: kin.dev/v1alpha1\nkind: Cluster\n"
                       "nodes: [{role: control-plane}, {role: worker}, {role: worker}]\n"
                       "networking: {hostAccess: false, proxyMode: " +
                           GetParam() + "}\n");  // the pool is 198.51.100.0/24
    ASSERT_TRUE(c_.Create({"--config", c_.File("c.yaml")})) << c_.last_output();
    created_ = true;
  }
  void TearDown() override {
    if (!testing::RequireRoot() || !created_) return;
    EXPECT_TRUE(c_.Delete()) << c_.last_output();
    EXPECT_EQ(c_.Leftovers(), std::vector<std::string>{});
  }

  // The Service's LB IP once it has one ("" after the deadline).
  std::string WaitLbIp(const std::string& svc) {
    std::string ip;
    E2eCluster::WaitFor([&] {
      Json s = c_.GetJson({"service", svc});
      if (!s.is_object()) return false;
      for (const auto& i :
           s["status"].value("loadBalancer", Json::object()).value("ingress", Json::array())) {
        ip = i.value("ip", "");
      }
      return !ip.empty();
    });
    return ip;
  }
  std::string NodeIp(const std::string& node) {
    Json n = c_.GetJson({"node", node});
    return n["status"]["addresses"][0].value("address", "");
  }
  // The node's pod CIDR gateway (cbr0's .1): a masqueraded packet to a pod
  // on the same node carries it.
  std::string NodeGateway(const std::string& node) {
    std::string cidr = c_.GetJson({"node", node})["spec"].value("podCIDR", "");
    std::string net = cidr.substr(0, cidr.find('/'));
    return net.substr(0, net.rfind('.')) + ".1";
  }
  // `ip route show <ip>` in the network namespace.
  std::string NetworkRoute(const std::string& ip) {
    CommandResult r =
        RunCommand({"ip", "netns", "exec", c_.Prefix() + "net", "ip", "route", "show", ip});
    return r.out + r.err;
  }
  static size_t Count(const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
  }
  // GET / on ip:port from the internet: the HTTP status code, a newline,
  // the body (curl's exit message when it failed).
  std::string StatusAndBody(const std::string& ip, int port) {
    CommandResult r =
        RunCommand({"ip", "netns", "exec", ext_ns_, "curl", "-sS", "--max-time", "3", "-w",
                    "\n%{http_code}", "http://" + ip + ":" + std::to_string(port) + "/"});
    // The body, then a newline and the code: move the code first.
    const size_t last = r.out.rfind('\n');
    const std::string code = last == std::string::npos ? r.out : r.out.substr(last + 1);
    const std::string body = last == std::string::npos ? "" : r.out.substr(0, last);
    return code + "\n" + body + r.err;
  }

  E2eCluster c_{'l'};
  bool created_ = false;
  const std::string ext_ns_ = c_.Prefix() + "ext";
};

TEST_P(LoadBalancerE2E, AddressesRoutesPoliciesHealthChecksAndRelease) {
  const std::string cp = c_.NodeName("control-plane"), worker = c_.NodeName("worker"),
                    worker2 = c_.NodeName("worker2");
  c_.Apply(kBackends);
  c_.Apply(SoloLocal(worker));

  // An address from the pool; kubectl shows it, and <pending> for a
  // Service of another class (no controller here serves it).
  const std::string lb = WaitLbIp("web-lb");
  ASSERT_EQ(lb.rfind(kPool, 0), 0u) << lb << "\n" << c_.Ok({"get", "svc", "-A"});
  const std::string table = c_.Ok({"get", "svc"});
  EXPECT_NE(table.find("EXTERNAL-IP"), std::string::npos) << table;
  bool lb_row = false, pending_row = false;
  for (size_t a = 0, b; a < table.size(); a = b + 1) {
    b = table.find('\n', a);
    if (b == std::string::npos) b = table.size();
    std::string line = table.substr(a, b - a);
    if (line.rfind("web-lb ", 0) == 0) lb_row = line.find(" " + lb + " ") != std::string::npos;
    if (line.rfind("elsewhere ", 0) == 0) pending_row = line.find("<pending>") != std::string::npos;
  }
  EXPECT_TRUE(lb_row && pending_row) << table;
  const std::string events =
      c_.Ok({"get", "events", "--field-selector", "involvedObject.name=web-lb"});
  EXPECT_NE(events.find("EnsuredLoadBalancer"), std::string::npos) << events;

  ASSERT_TRUE(E2eCluster::WaitFor([&] {
    Json d = c_.GetJson({"deployment", "web"});
    return d.is_object() && d["status"].value("readyReplicas", 0) == 4;
  })) << c_.Ok({"get", "pods", "-o", "wide"});
  std::map<std::string, std::string> pod_node;  // pod -> node
  const Json pods = c_.GetJson({"pods", "-l", "app=web"});
  for (const auto& p : pods["items"]) {
    pod_node[p["metadata"].value("name", "")] = p["spec"].value("nodeName", "");
  }

  // The network routes the address to both workers; the control-plane
  // node carries kubeadm's node.kubernetes.io/exclude-from-external-load-
  // balancers label, so it is no next hop (as on kind with a cloud provider).
  std::string route;
  EXPECT_TRUE(E2eCluster::WaitFor([&] {
    route = NetworkRoute(lb);
    return Count(route, "nexthop via") == 2;
  })) << route;
  for (const std::string& n : {worker, worker2}) {
    EXPECT_NE(route.find("via " + NodeIp(n) + " "), std::string::npos) << route;
  }
  EXPECT_EQ(route.find("via " + NodeIp(cp) + " "), std::string::npos) << route;

  // From the internet: pods on several nodes answer.
  std::set<std::string> backends, backend_nodes;
  ASSERT_TRUE(E2eCluster::WaitFor([&] {
    for (int i = 0; i < 20; ++i) {
      ProbeResult r = HttpGetIn(ext_ns_, lb, 80, "/hostname");
      if (r.ok() && pod_node.count(r.body)) {
        backends.insert(r.body);
        backend_nodes.insert(pod_node[r.body]);
      }
    }
    return backend_nodes.size() >= 2;
  })) << "backends: "
      << ::testing::PrintToString(backends) << "\n"
      << route;

  // Cluster policy: the backend sees a node's address (masqueraded on the
  // node the connection entered), and connections enter on several nodes.
  std::map<std::string, std::string> node_of_address;
  for (const std::string& n : {cp, worker, worker2}) {
    node_of_address[NodeIp(n)] = n;
    node_of_address[NodeGateway(n)] = n;
  }
  std::set<std::string> entered, seen;
  EXPECT_TRUE(E2eCluster::WaitFor([&] {
    for (int i = 0; i < 20; ++i) {
      ProbeResult r = HttpGetIn(ext_ns_, lb, 80, "/clientip");
      if (!r.ok()) continue;
      seen.insert(Host(r.body));
      if (node_of_address.count(Host(r.body))) entered.insert(node_of_address[Host(r.body)]);
    }
    return entered.size() >= 2;
  })) << "client addresses seen: "
      << ::testing::PrintToString(seen);
  for (const std::string& a : seen) {
    EXPECT_TRUE(node_of_address.count(a)) << a << " is no node's address";
  }

  // allocateLoadBalancerNodePorts: false: no node port, the address works.
  Json noports = c_.GetJson({"service", "web-noports"});
  EXPECT_FALSE(noports["spec"]["ports"][0].contains("nodePort")) << noports.dump();
  const std::string lb_noports = WaitLbIp("web-noports");
  ASSERT_EQ(lb_noports.rfind(kPool, 0), 0u);
  EXPECT_TRUE(E2eCluster::WaitFor([&] {
    ProbeResult r = HttpGetIn(ext_ns_, lb_noports, 8000, "/hostname");
    return r.ok() && pod_node.count(r.body);
  }));

  // Local policy: only the node with the endpoint is a next hop, and the
  // backend sees the client's own address.
  const std::string solo_lb = WaitLbIp("solo-lb");
  ASSERT_EQ(solo_lb.rfind(kPool, 0), 0u);
  ASSERT_FALSE(c_.WaitPodReady("solo").is_null());
  std::string solo_route;
  EXPECT_TRUE(E2eCluster::WaitFor([&] {
    solo_route = NetworkRoute(solo_lb);
    return solo_route.find("via " + NodeIp(worker) + " ") != std::string::npos &&
           Count(solo_route, "via") == 1;
  })) << solo_route;
  ProbeResult direct;
  EXPECT_TRUE(E2eCluster::WaitFor([&] {
    direct = HttpGetIn(ext_ns_, solo_lb, 80, "/clientip");
    return direct.ok();
  })) << direct.error;
  EXPECT_EQ(Host(direct.body), kClient);

  // The healthCheckNodePort, as kube-proxy: 200 on the node with the
  // endpoint, 503 on the others.
  const int hc = c_.GetJson({"service", "solo-lb"})["spec"].value("healthCheckNodePort", 0);
  ASSERT_GE(hc, 30000);
  std::string on_worker;
  EXPECT_TRUE(E2eCluster::WaitFor([&] {
    on_worker = StatusAndBody(NodeIp(worker), hc);
    return on_worker.rfind("200\n", 0) == 0;
  })) << on_worker;
  EXPECT_NE(on_worker.find("\"localEndpoints\": 1,"), std::string::npos) << on_worker;
  EXPECT_NE(on_worker.find("\"name\": \"solo-lb\""), std::string::npos) << on_worker;
  EXPECT_NE(on_worker.find("\"serviceProxyHealthy\": true"), std::string::npos) << on_worker;
  for (const std::string& n : {cp, worker2}) {
    std::string answer = StatusAndBody(NodeIp(n), hc);
    EXPECT_EQ(answer.rfind("503\n", 0), 0u) << n << ": " << answer;
    EXPECT_NE(answer.find("\"localEndpoints\": 0,"), std::string::npos) << answer;
  }

  // Deleting the Service frees its address and its route; a new Service
  // gets the address again (the lowest free one).
  c_.Ok({"delete", "service", "solo-lb"});
  EXPECT_TRUE(E2eCluster::WaitFor([&] { return NetworkRoute(solo_lb).empty(); }))
      << NetworkRoute(solo_lb);
  c_.Apply(
      "apiVersion: v1\nkind: Service\nmetadata: {name: again}\nspec:\n  type: LoadBalancer\n"
      "  selector: {app: web}\n  ports:\n  - {port: 80, targetPort: 8080}\n");
  EXPECT_EQ(WaitLbIp("again"), solo_lb);
  EXPECT_TRUE(E2eCluster::WaitFor([&] {
    ProbeResult r = HttpGetIn(ext_ns_, solo_lb, 80, "/hostname");
    return r.ok() && pod_node.count(r.body);
  }));

  // A killed and restarted kin serve keeps every address (rebuilt from the
  // statuses), gives a new Service a fresh one, and the routes still work.
  c_.KillServe();
  CommandResult restarted = c_.Kin({"cluster", "start", "--name", c_.name()});
  ASSERT_TRUE(restarted.status.success()) << restarted.out << restarted.err << c_.Log();
  c_.Apply(
      "apiVersion: v1\nkind: Service\nmetadata: {name: after}\nspec:\n  type: LoadBalancer\n"
      "  selector: {app: web}\n  ports:\n  - {port: 80, targetPort: 8080}\n");
  const std::string after = WaitLbIp("after");
  EXPECT_EQ(after.rfind(kPool, 0), 0u) << after;
  EXPECT_NE(after, lb);
  EXPECT_NE(after, lb_noports);
  EXPECT_NE(after, solo_lb);
  EXPECT_EQ(WaitLbIp("web-lb"), lb);
  EXPECT_EQ(WaitLbIp("again"), solo_lb);
  for (const std::string& ip : {lb, after}) {
    EXPECT_TRUE(E2eCluster::WaitFor([&] {
      ProbeResult r = HttpGetIn(ext_ns_, ip, 80, "/hostname");
      return r.ok() && pod_node.count(r.body);
    })) << ip;
  }
}

// Both proxy modes take LB traffic arriving on a node's uplink.
INSTANTIATE_TEST_SUITE_P(Modes, LoadBalancerE2E, ::testing::Values("nftables", "iptables"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace kin
