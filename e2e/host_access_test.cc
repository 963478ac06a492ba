// e2e: the cluster reachable from the machine's own shell (issue 14, the
// seed's 6.2.2 and 6.2.4 from the host). The test runs in the host's network
// namespace, as a user's curl does. Two clusters are made at once, each
// with host access (the default): they get distinct ranges on the host;
// from the host, a node IP answers on a NodePort, a LoadBalancer IP spreads
// connections over the backends (externalTrafficPolicy Cluster: the backend
// sees a node's address; Local: the host's own), the Ingress routes by Host
// header and reports the host in X-Forwarded-For, and the second cluster's
// node network answers too; a config naming a range the host routes already
// is refused naming the route; delete leaves no link, address or route of
// either cluster on the host.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <thread>

#include "base/file.h"
#include "base/process.h"
#include "base/yaml.h"
#include "netstack/ipam.h"
#include "netstack/netlink.h"
#include "testing/e2e_cluster.h"
#include "testing/e2e_manifests.h"
#include "testing/kernel_fixture.h"
#include "testing/net_probe.h"

namespace kin {
namespace {

using std::chrono::seconds;
using testing::E2eCluster;
using testing::ExchangeIn;
using testing::HttpGetIn;
using testing::kCallersNetns;

const std::string kApp = testing::NetexecDeployment("web", {.replicas = 2, .spread = true}) + R"(---
apiVersion: v1
kind: Service
metadata: {name: web-lb}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports:
  - {port: 80, targetPort: 8080}
---
apiVersion: v1
kind: Service
metadata: {name: web-local}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: web}
  ports:
  - {port: 80, targetPort: 8080}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
  - host: web.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web-lb, port: {number: 80}}}}
)";

Json SavedConfig(const E2eCluster& c) {
  return Json::parse(ReadFileIfExists(c.StateDir() + "/cluster.json").value_or("{}"));
}

std::string Host(const std::string& hostport) { return hostport.substr(0, hostport.find(':')); }

// What the host holds of a cluster: its link, and the addresses and routes
// on it (only this cluster's link is looked at: other tests' clusters come
// and go meanwhile, and may take the ranges this one freed).
std::vector<std::string> OnTheHost(const std::string& link) {
  std::vector<std::string> out;
  netstack::NetlinkSocket sock = netstack::NetlinkSocket::Open();
  if (sock.FindLink(link)) out.push_back("link " + link);
  for (const auto& a : sock.ListAddresses()) {
    if (a.dev == link) out.push_back("address " + a.address.ToString());
  }
  for (const auto& route : sock.ListRoutes()) {
    if (route.dev == link) out.push_back("route " + route.ToString());
  }
  return out;
}

TEST(HostAccessE2E, TwoClustersAnswerTheHostAndDeleteLeavesNothingThere) {
  if (!testing::RequireRoot()) GTEST_SKIP() << "needs root";
  E2eCluster a('h'), b('i');
  // Both at once: the host ranges are chosen under one lock.
  bool b_created = false;
  std::thread tb([&] { b_created = b.Create({"--nodes", "1"}); });
  bool a_created = a.Create({"--nodes", "2"});
  tb.join();
  ASSERT_TRUE(a_created) << a.last_output();
  ASSERT_TRUE(b_created) << b.last_output();

  const Json ca = SavedConfig(a), cb = SavedConfig(b);
  ASSERT_TRUE(ca.value("hostAccess", false)) << ca.dump();
  ASSERT_TRUE(cb.value("hostAccess", false)) << cb.dump();
  const auto ua = netstack::Ipv4Cidr::Parse(ca["underlay"].get<std::string>());
  const auto ub = netstack::Ipv4Cidr::Parse(cb["underlay"].get<std::string>());
  const auto la = netstack::Ipv4Cidr::Parse(ca["loadBalancerSubnet"].get<std::string>());
  const auto lb = netstack::Ipv4Cidr::Parse(cb["loadBalancerSubnet"].get<std::string>());
  EXPECT_FALSE(ua.Overlaps(ub)) << ua.ToString() << " " << ub.ToString();
  EXPECT_FALSE(la.Overlaps(lb)) << la.ToString() << " " << lb.ToString();
  const std::string host_ip_a = netstack::Ipv4Address(ua.broadcast().value() - 1).ToString();
  const std::string host_ip_b = netstack::Ipv4Address(ub.broadcast().value() - 1).ToString();
  // The link, its address, the underlay's route and the LoadBalancer range's.
  const std::vector<std::string> on_host = OnTheHost("kin-" + a.name());
  EXPECT_EQ(on_host.size(), 4u) << ::testing::PrintToString(on_host);
  EXPECT_NE(std::find(on_host.begin(), on_host.end(),
                      "route " + la.ToString() + " via " + ua.Nth(1).ToString() + " dev kin-" +
                          a.name()),
            on_host.end())
      << ::testing::PrintToString(on_host);

  // A config naming a range the host routes already is refused, naming it.
  testing::WriteFile(a.File("clash.yaml"), "apiVersion: kin.dev/v1alpha1\nkind: Cluster\n"
                                           "networking: {underlay: " + ua.ToString() + "}\n");
  E2eCluster clash('j');
  EXPECT_FALSE(clash.Create({"--config", a.File("clash.yaml")}));
  EXPECT_NE(clash.last_output().find("networking.underlay: Invalid value: \"" + ua.ToString() +
                                     "\": overlaps the host's route " + ua.ToString() + " dev kin-" +
                                     a.name()),
            std::string::npos)
      << clash.last_output();

  a.Apply(kApp);
  std::string lb_ip, local_ip, ingress_ip;
  int node_port = 0;
  ASSERT_TRUE(a.WaitFor(
      [&] {
        Json svc = a.GetJson({"service", "web-lb"});
        Json local = a.GetJson({"service", "web-local"});
        Json ing = a.GetJson({"service", "-n", "ingress-nginx", "ingress-controller"});
        lb_ip = svc["status"]["loadBalancer"]["ingress"][0].value("ip", "");
        local_ip = local["status"]["loadBalancer"]["ingress"][0].value("ip", "");
        ingress_ip = ing["status"]["loadBalancer"]["ingress"][0].value("ip", "");
        node_port = svc["spec"]["ports"][0].value("nodePort", 0);
        Json deploy = a.GetJson({"deployment", "web"});
        return !lb_ip.empty() && !local_ip.empty() && !ingress_ip.empty() &&
               deploy["status"].value("readyReplicas", 0) == 2;
      },
      seconds(90)))
      << a.last_output();
  EXPECT_TRUE(la.Contains(netstack::Ipv4Address::Parse(lb_ip))) << lb_ip;

  // A node IP answers on the NodePort, from the host.
  const std::string worker_ip = ua.Nth(3).ToString();
  ASSERT_TRUE(a.WaitFor(
      [&] { return HttpGetIn(kCallersNetns, worker_ip, node_port, "/hostname").ok(); }, seconds(30)));

  // The LoadBalancer IP: connections reach both backends; Cluster shows a
  // node's address to the backend, Local the host's own.
  std::set<std::string> backends, sources;
  ASSERT_TRUE(a.WaitFor(
      [&] {
        auto r = HttpGetIn(kCallersNetns, lb_ip, 80, "/hostname");
        if (r.ok()) backends.insert(r.body);
        auto s = HttpGetIn(kCallersNetns, lb_ip, 80, "/clientip");
        if (s.ok()) sources.insert(Host(s.body));
        return backends.size() == 2;
      },
      seconds(60)))
      << ::testing::PrintToString(backends);
  // A node's addresses: on the underlay, and its pod bridge's (cbr0, the
  // pod CIDR's .1), which a packet masqueraded to a pod on that node carries.
  std::set<std::string> node_addresses;
  for (const std::string role : {"control-plane", "worker"}) {
    Json n = a.GetJson({"node", a.NodeName(role)});
    node_addresses.insert(n["status"]["addresses"][0].value("address", ""));
    const auto cidr = netstack::Ipv4Cidr::Parse(n["spec"].value("podCIDR", ""));
    node_addresses.insert(cidr.Nth(1).ToString());
  }
  ASSERT_FALSE(sources.empty());
  for (const std::string& s : sources) {
    EXPECT_TRUE(node_addresses.count(s)) << "the backend saw " << s << ", no node's address";
  }
  std::string local_source;
  ASSERT_TRUE(a.WaitFor(
      [&] {
        auto r = HttpGetIn(kCallersNetns, local_ip, 80, "/clientip");
        if (r.ok()) local_source = Host(r.body);
        return r.ok();
      },
      seconds(60)));
  EXPECT_EQ(local_source, host_ip_a);

  // The Ingress, by Host header, with the host in X-Forwarded-For.
  std::string answer;
  ASSERT_TRUE(a.WaitFor(
      [&] {
        auto r = ExchangeIn(kCallersNetns, ingress_ip, 80,
                            "GET /header?key=X-Forwarded-For HTTP/1.1\r\nHost: web.example\r\n"
                            "Connection: close\r\n\r\n");
        answer = r.body;
        return answer.rfind("HTTP/1.1 200", 0) == 0;
      },
      seconds(60)))
      << answer;
  EXPECT_NE(answer.find("\r\n\r\n" + host_ip_a), std::string::npos) << answer;

  // The second cluster's network answers the host too: its API's
  // in-network listener on the underlay's .1.
  EXPECT_TRUE(testing::TcpConnectIn(kCallersNetns, ub.Nth(1).ToString(), 6443).ok());
  const std::vector<std::string> on_host_b = OnTheHost("kin-" + b.name());
  EXPECT_EQ(on_host_b.size(), 4u) << ::testing::PrintToString(on_host_b);
  EXPECT_NE(std::find(on_host_b.begin(), on_host_b.end(),
                      "address " + host_ip_b + "/" + std::to_string(ub.prefix_len())),
            on_host_b.end())
      << ::testing::PrintToString(on_host_b);

  ASSERT_TRUE(a.Delete()) << a.last_output();
  ASSERT_TRUE(b.Delete()) << b.last_output();
  EXPECT_EQ(OnTheHost("kin-" + a.name()), std::vector<std::string>{});
  EXPECT_EQ(OnTheHost("kin-" + b.name()), std::vector<std::string>{});
  EXPECT_EQ(a.Leftovers(), std::vector<std::string>{});
  EXPECT_EQ(b.Leftovers(), std::vector<std::string>{});
}

}  // namespace
}  // namespace kin
