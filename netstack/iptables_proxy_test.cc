// Unit tests (no root): the iptables-mode planner, against golden files in
// testdata/iptables_proxy/ (KIN_UPDATE_GOLDEN=1 rewrites them), and the
// chain names against values from kube-proxy's own tests.
#include "netstack/iptables_proxy.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include "testing/golden.h"

namespace kin::netstack {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

void ExpectGolden(const std::string& name, const std::string& actual) {
  testing::ExpectGolden(std::string(KIN_NETSTACK_TESTDATA) + "/iptables_proxy/" + name, actual);
}

Ipv4Address A(const char* s) { return Ipv4Address::Parse(s); }

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// Lines of `text` that contain `needle`.
std::vector<std::string> Grep(const std::string& text, const std::string& needle) {
  std::vector<std::string> out;
  for (auto& l : Lines(text)) {
    if (l.find(needle) != std::string::npos) out.push_back(l);
  }
  return out;
}

ProxyState BaseState() {
  ProxyState s;
  s.node_ips = {A("172.18.0.2")};
  s.cluster_cidr = Ipv4Cidr::Parse("10.244.0.0/16");
  s.service_cidr = Ipv4Cidr::Parse("10.96.0.0/16");
  return s;
}

ProxyServicePort Port(const std::string& ns, const std::string& name, const std::string& port_name,
                      const char* cluster_ip, uint16_t port) {
  ProxyServicePort p;
  p.ns = ns;
  p.name = name;
  p.port_name = port_name;
  p.cluster_ip = A(cluster_ip);
  p.port = port;
  return p;
}

void Add(ProxyState& s, ProxyServicePort p) {
  std::string key = p.ns + "/" + p.name + ":" + p.port_name;
  s.ports[key] = std::move(p);
}

ProxyState WebWithThreeEndpoints() {
  ProxyState s = BaseState();
  ProxyServicePort p = Port("default", "web", "http", "10.96.0.20", 80);
  p.cluster_endpoints = {{A("10.244.1.2"), 8080}, {A("10.244.1.3"), 8080}, {A("10.244.2.2"), 8080}};
  p.local_endpoints = {{A("10.244.1.2"), 8080}, {A("10.244.1.3"), 8080}};
  Add(s, p);
  return s;
}

TEST(IptablesChainNames, MatchKubeProxy) {
  // From kube-proxy's proxier_test.go: ns1/svc1:p80 on TCP, endpoint
  // 10.180.0.1:80.
  ProxyServicePort p = Port("ns1", "svc1", "p80", "172.30.0.41", 80);
  EXPECT_EQ(IptablesServicePortName(p), "ns1/svc1:p80");
  EXPECT_EQ(IptablesClusterChain(p), "KUBE-SVC-XPGD46QRK7WJZT7O");
  EXPECT_EQ(IptablesExternalChain(p), "KUBE-EXT-XPGD46QRK7WJZT7O");
  EXPECT_EQ(IptablesLocalChain(p), "KUBE-SVL-XPGD46QRK7WJZT7O");
  EXPECT_EQ(IptablesEndpointChain(p, {A("10.180.0.1"), 80}), "KUBE-SEP-SXIVWICOYRO3J4NJ");
  // Chains every kubeadm/kind cluster's iptables-save shows.
  ProxyServicePort https = Port("default", "kubernetes", "https", "10.96.0.1", 443);
  EXPECT_EQ(IptablesClusterChain(https), "KUBE-SVC-NPX46M4PTMTKRN6Y");
  ProxyServicePort dns = Port("kube-system", "kube-dns", "dns", "10.96.0.10", 53);
  dns.protocol = L4Protocol::kUdp;
  EXPECT_EQ(IptablesClusterChain(dns), "KUBE-SVC-TCOU7JCQXEZGVUNU");
  ProxyServicePort dns_tcp = Port("kube-system", "kube-dns", "dns-tcp", "10.96.0.10", 53);
  EXPECT_EQ(IptablesClusterChain(dns_tcp), "KUBE-SVC-ERIFXISQEP7F7OF4");
  // An unnamed port has no ":" in the name kube-proxy hashes.
  ProxyServicePort unnamed = Port("ns1", "svc1", "", "172.30.0.41", 80);
  EXPECT_EQ(IptablesServicePortName(unnamed), "ns1/svc1");
  EXPECT_NE(IptablesClusterChain(unnamed), IptablesClusterChain(p));
  // The protocol is part of the hash.
  ProxyServicePort udp = p;
  udp.protocol = L4Protocol::kUdp;
  EXPECT_NE(IptablesClusterChain(udp), IptablesClusterChain(p));
}

TEST(IptablesPlan, ClusterIpThreeEndpoints) {
  std::string plan = PlanIptablesRestore(WebWithThreeEndpoints());
  ExpectGolden("cluster_ip_three_endpoints.txt", plan);
  ProxyServicePort p = WebWithThreeEndpoints().ports.begin()->second;
  const std::string svc = IptablesClusterChain(p);
  // 1/3, then 1/2 of what is left, then the last one always.
  EXPECT_THAT(Grep(plan, "-A " + svc + " -m comment --comment \"default/web:http -> "),
              ElementsAre(HasSubstr("--probability 0.3333333333 -j KUBE-SEP-"),
                          HasSubstr("--probability 0.5000000000 -j KUBE-SEP-"),
                          Not(HasSubstr("statistic"))));
  EXPECT_THAT(plan, HasSubstr("-A KUBE-SERVICES -m comment --comment \"default/web:http cluster "
                              "IP\" -m tcp -p tcp -d 10.96.0.20 --dport 80 -j " +
                              svc + "\n"));
  EXPECT_THAT(plan, HasSubstr("-A " + IptablesEndpointChain(p, p.cluster_endpoints[2]) +
                              " -m comment --comment default/web:http -m tcp -p tcp -j DNAT "
                              "--to-destination 10.244.2.2:8080\n"));
  // Not a NodePort, no local policy: no EXT or SVL chain.
  EXPECT_THAT(plan, Not(HasSubstr("KUBE-EXT-")));
  EXPECT_THAT(plan, Not(HasSubstr("KUBE-SVL-")));
  EXPECT_THAT(plan, Not(HasSubstr("REJECT")));
  // The table sections iptables-restore needs.
  EXPECT_EQ(plan.rfind("*filter\n", 0), 0u);
  EXPECT_THAT(plan, HasSubstr("COMMIT\n*nat\n"));
}

TEST(IptablesPlan, SessionAffinity) {
  ProxyState s = WebWithThreeEndpoints();
  s.ports.begin()->second.affinity_timeout_seconds = 10800;
  std::string plan = PlanIptablesRestore(s);
  ExpectGolden("affinity.txt", plan);
  const ProxyServicePort& p = s.ports.begin()->second;
  const std::string sep0 = IptablesEndpointChain(p, p.cluster_endpoints[0]);
  EXPECT_THAT(plan, HasSubstr("-A " + IptablesClusterChain(p) +
                              " -m comment --comment \"default/web:http -> 10.244.1.2:8080\" -m "
                              "recent --name " +
                              sep0 + " --rcheck --seconds 10800 --reap -j " + sep0 + "\n"));
  EXPECT_THAT(plan,
              HasSubstr("-A " + sep0 +
                        " -m comment --comment default/web:http -m recent "
                        "--name " +
                        sep0 + " --set -m tcp -p tcp -j DNAT --to-destination 10.244.1.2:8080\n"));
  // The affinity checks come before the random choice.
  auto rules =
      Grep(plan, "-A " + IptablesClusterChain(p) + " -m comment --comment \"default/web:http -> ");
  ASSERT_EQ(rules.size(), 6u);
  for (int i = 0; i < 3; ++i) EXPECT_THAT(rules[i], HasSubstr("--rcheck"));
  for (int i = 3; i < 6; ++i) EXPECT_THAT(rules[i], Not(HasSubstr("recent")));
}

TEST(IptablesPlan, ServiceWithoutEndpointsIsRejectedInFilter) {
  ProxyState s = BaseState();
  ProxyServicePort p = Port("default", "empty", "", "10.96.0.30", 80);
  p.node_port = 30080;
  p.protocol = L4Protocol::kUdp;
  Add(s, p);
  std::string plan = PlanIptablesRestore(s);
  ExpectGolden("no_endpoints.txt", plan);
  EXPECT_THAT(plan, HasSubstr("-A KUBE-SERVICES -m comment --comment \"default/empty has no "
                              "endpoints\" -m udp -p udp -d 10.96.0.30 --dport 80 -j REJECT\n"));
  EXPECT_THAT(plan, HasSubstr("-A KUBE-EXTERNAL-SERVICES -m comment --comment \"default/empty has "
                              "no endpoints\" -m addrtype --dst-type LOCAL -m udp -p udp --dport "
                              "30080 -j REJECT\n"));
  // Nothing in nat for it.
  EXPECT_THAT(plan, Not(HasSubstr("KUBE-SVC-")));
  EXPECT_THAT(plan, Not(HasSubstr("KUBE-SEP-")));
  EXPECT_THAT(plan, Not(HasSubstr("-A KUBE-NODEPORTS")));
}

TEST(IptablesPlan, NodePort) {
  ProxyState s = WebWithThreeEndpoints();
  s.ports.begin()->second.node_port = 30080;
  std::string plan = PlanIptablesRestore(s);
  ExpectGolden("nodeport.txt", plan);
  const ProxyServicePort& p = s.ports.begin()->second;
  const std::string ext = IptablesExternalChain(p);
  EXPECT_THAT(plan, HasSubstr("-A KUBE-NODEPORTS -m comment --comment default/web:http -m tcp -p "
                              "tcp --dport 30080 -j " +
                              ext + "\n"));
  EXPECT_THAT(Grep(plan, "-A " + ext),
              ElementsAre("-A " + ext +
                              " -m comment --comment \"masquerade traffic for default/web:http "
                              "external destinations\" -j KUBE-MARK-MASQ",
                          "-A " + ext + " -j " + IptablesClusterChain(p)));
  // The jump to KUBE-NODEPORTS is the last rule of KUBE-SERVICES.
  auto services = Grep(plan, "-A KUBE-SERVICES");
  ASSERT_FALSE(services.empty());
  EXPECT_EQ(services.back(),
            "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must "
            "be the last rule in this chain\" -d 172.18.0.2 -j KUBE-NODEPORTS");
}

TEST(IptablesPlan, ExternalTrafficPolicyLocal) {
  ProxyState s = WebWithThreeEndpoints();
  ProxyServicePort& p = s.ports.begin()->second;
  p.node_port = 30080;
  p.external_local = true;
  p.load_balancer_ips = {A("198.51.100.10")};
  std::string plan = PlanIptablesRestore(s);
  ExpectGolden("external_local.txt", plan);
  const std::string ext = IptablesExternalChain(p), svc = IptablesClusterChain(p),
                    svl = IptablesLocalChain(p);
  EXPECT_THAT(
      Grep(plan, "-A " + ext),
      ElementsAre(HasSubstr("\"pod traffic for default/web:http external destinations\" "
                            "-s 10.244.0.0/16 -j " +
                            svc),
                  HasSubstr("-m addrtype --src-type LOCAL -j KUBE-MARK-MASQ"),
                  HasSubstr("-m addrtype --src-type LOCAL -j " + svc), "-A " + ext + " -j " + svl));
  // SVL picks among the two local endpoints only.
  EXPECT_THAT(Grep(plan, "-A " + svl),
              ElementsAre(HasSubstr("--probability 0.5000000000"), HasSubstr("10.244.1.3:8080")));
  EXPECT_THAT(plan, HasSubstr("\"default/web:http loadbalancer IP\" -m tcp -p tcp -d 198.51.100.10 "
                              "--dport 80 -j " +
                              ext));

  // No local endpoint: external traffic from outside is dropped in filter.
  p.local_endpoints.clear();
  std::string none = PlanIptablesRestore(s);
  EXPECT_THAT(none, HasSubstr("-A KUBE-EXTERNAL-SERVICES -m comment --comment \"default/web:http "
                              "has no local endpoints\" -m addrtype --dst-type LOCAL -m tcp -p "
                              "tcp --dport 30080 -j DROP"));
  EXPECT_THAT(none, Not(HasSubstr(":" + svl)));
}

TEST(IptablesPlan, RemovedServiceChainsAreDeleted) {
  ProxyState before = WebWithThreeEndpoints();
  ProxyServicePort dns = Port("kube-system", "kube-dns", "dns", "10.96.0.10", 53);
  dns.protocol = L4Protocol::kUdp;
  dns.cluster_endpoints = {{A("10.244.1.9"), 53}};
  Add(before, dns);
  ProxyState now = WebWithThreeEndpoints();
  std::string plan = PlanIptablesRestore(now, &before);
  ExpectGolden("service_removed.txt", plan);
  const std::string svc = IptablesClusterChain(dns);
  const std::string sep = IptablesEndpointChain(dns, dns.cluster_endpoints[0]);
  EXPECT_THAT(plan, HasSubstr(":" + svc + " - [0:0]\n"));
  EXPECT_THAT(plan, HasSubstr("-X " + svc + "\n"));
  EXPECT_THAT(plan, HasSubstr("-X " + sep + "\n"));
  EXPECT_THAT(plan, Not(HasSubstr("kube-dns")));
  // The remaining service's chains are not deleted.
  EXPECT_THAT(Grep(plan, "-X "), ElementsAre("-X " + sep, "-X " + svc));

  // An endpoint going away deletes its KUBE-SEP chain only.
  ProxyState fewer = now;
  ProxyServicePort& web = fewer.ports.begin()->second;
  ProxyEndpoint gone = web.cluster_endpoints[2];
  web.cluster_endpoints.pop_back();
  std::string plan2 = PlanIptablesRestore(fewer, &now);
  EXPECT_THAT(Grep(plan2, "-X "), ElementsAre("-X " + IptablesEndpointChain(web, gone)));
}

TEST(IptablesPlan, PartialSyncLeavesUnchangedChainsOut) {
  ProxyState before = WebWithThreeEndpoints();
  ProxyServicePort other = Port("default", "api", "", "10.96.0.21", 443);
  other.cluster_endpoints = {{A("10.244.2.7"), 8443}};
  Add(before, other);
  ProxyState now = before;
  now.ports["default/api:"].cluster_endpoints = {{A("10.244.2.8"), 8443}};
  IptablesPlanOptions o;
  o.before = &before;
  o.partial = true;
  std::string plan = PlanIptablesRestore(now, o);
  const ProxyServicePort& web = now.ports["default/web:http"];
  // web did not change: its chains are neither declared nor written...
  EXPECT_THAT(plan, Not(HasSubstr(":" + IptablesClusterChain(web))));
  EXPECT_THAT(plan, Not(HasSubstr("-A " + IptablesClusterChain(web))));
  // ...but KUBE-SERVICES, rewritten whole, still jumps to them.
  EXPECT_THAT(plan, HasSubstr("--dport 80 -j " + IptablesClusterChain(web)));
  // api changed: rewritten, its old endpoint chain deleted.
  const ProxyServicePort& api = now.ports["default/api:"];
  EXPECT_THAT(plan, HasSubstr(":" + IptablesClusterChain(api) + " - [0:0]"));
  EXPECT_THAT(plan, HasSubstr("-X " + IptablesEndpointChain(api, {A("10.244.2.7"), 8443})));
}

TEST(IptablesPlan, FullSyncInsertsMissingJumpsAndDeletesStaleChains) {
  IptablesRuleset existing = ParseIptablesSave(
      "# Generated by iptables-nft-save v1.8.9\n"
      "*nat\n"
      ":PREROUTING ACCEPT [0:0]\n"
      ":OUTPUT ACCEPT [0:0]\n"
      ":KUBE-SERVICES - [0:0]\n"
      ":KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]\n"
      ":KUBE-SEP-BBBBBBBBBBBBBBBB - [0:0]\n"
      "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
      "COMMIT\n");
  EXPECT_THAT(existing.chains["nat"], ::testing::Contains("KUBE-SVC-AAAAAAAAAAAAAAAA"));
  IptablesPlanOptions o;
  o.existing = &existing;
  std::string plan = PlanIptablesRestore(WebWithThreeEndpoints(), o);
  EXPECT_THAT(plan, HasSubstr("-X KUBE-SVC-AAAAAAAAAAAAAAAA\n"));
  EXPECT_THAT(plan, HasSubstr("-X KUBE-SEP-BBBBBBBBBBBBBBBB\n"));
  // PREROUTING's jump is there; OUTPUT's and every filter jump are not.
  EXPECT_THAT(plan, Not(HasSubstr("-I PREROUTING")));
  EXPECT_THAT(plan, HasSubstr("-I OUTPUT -m comment --comment \"kubernetes service portals\" -j "
                              "KUBE-SERVICES\n"));
  EXPECT_EQ(Grep(plan, "-I ").size(), IptablesJumps().size() - 1);
}

TEST(IptablesPlan, FullSyncDeletesOtherStaleKubeChainsAndTheirJumps) {
  IptablesRuleset existing = ParseIptablesSave(
      "*filter\n"
      ":INPUT ACCEPT [0:0]\n"
      ":KUBE-FORWARD - [0:0]\n"
      ":KUBE-OLD-LAYOUT - [0:0]\n"
      "-A INPUT -m comment --comment \"old\" -j KUBE-OLD-LAYOUT\n"
      "-A INPUT -j KUBE-OLD-LAYOUT-2\n"
      "-A KUBE-OLD-LAYOUT -j ACCEPT\n"
      "COMMIT\n"
      "*nat\n"
      ":KUBE-SERVICES - [0:0]\n"
      ":KUBE-MARK-DROP - [0:0]\n"
      "COMMIT\n");
  IptablesPlanOptions o;
  o.existing = &existing;
  std::string plan = PlanIptablesRestore(WebWithThreeEndpoints(), o);
  EXPECT_THAT(plan, HasSubstr("-D INPUT -m comment --comment \"old\" -j KUBE-OLD-LAYOUT\n"));
  EXPECT_THAT(plan, Not(HasSubstr("-D INPUT -j KUBE-OLD-LAYOUT-2")));  // not a chain here
  EXPECT_THAT(plan, HasSubstr(":KUBE-OLD-LAYOUT - [0:0]\n"));
  EXPECT_THAT(plan, HasSubstr("-X KUBE-OLD-LAYOUT\n"));
  EXPECT_THAT(plan, HasSubstr("-X KUBE-MARK-DROP\n"));
  // Chains of this layout are kept.
  EXPECT_THAT(plan, Not(HasSubstr("-X KUBE-FORWARD")));
  EXPECT_THAT(plan, Not(HasSubstr("-X KUBE-SERVICES")));
  // The unlink comes before the delete.
  EXPECT_LT(plan.find("-D INPUT"), plan.find("-X KUBE-OLD-LAYOUT"));
}

TEST(IptablesPlan, CleanupRemovesJumpsAndEveryKubeChain) {
  IptablesRuleset existing = ParseIptablesSave(
      "*filter\n"
      ":INPUT ACCEPT [0:0]\n"
      ":KUBE-FORWARD - [0:0]\n"
      "-A INPUT -s 10.0.0.1/32 -j ACCEPT\n"
      "-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD\n"
      "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n"
      "COMMIT\n"
      "*nat\n"
      ":KUBE-SERVICES - [0:0]\n"
      ":KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]\n"
      "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
      "-A KUBE-SERVICES -d 10.96.0.1/32 -j KUBE-SVC-AAAAAAAAAAAAAAAA\n"
      "COMMIT\n");
  EXPECT_EQ(PlanIptablesCleanup(existing),
            "*filter\n"
            ":KUBE-FORWARD - [0:0]\n"
            "-D FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD\n"
            "-X KUBE-FORWARD\n"
            "COMMIT\n"
            "*nat\n"
            ":KUBE-SERVICES - [0:0]\n"
            ":KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]\n"
            "-D OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
            "-X KUBE-SERVICES\n"
            "-X KUBE-SVC-AAAAAAAAAAAAAAAA\n"
            "COMMIT\n");
  EXPECT_EQ(PlanIptablesCleanup(ParseIptablesSave("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n")), "");
}

TEST(IptablesPlan, LargeClusterDropsEndpointComments) {
  ProxyState s = BaseState();
  for (int svc = 0; svc < 2; ++svc) {
    ProxyServicePort p =
        Port("default", "big" + std::to_string(svc), "", svc == 0 ? "10.96.1.1" : "10.96.1.2", 80);
    for (uint32_t i = 0; i < 501; ++i) {
      p.cluster_endpoints.push_back({Ipv4Address(A("10.245.0.0").value() + svc * 1000 + i), 80});
    }
    Add(s, p);
  }
  std::string plan = PlanIptablesRestore(s);
  // 1,002 endpoints: SVC -> SEP and SEP rules carry no comment...
  EXPECT_THAT(plan, Not(HasSubstr(" -> 10.245.")));
  EXPECT_THAT(plan, Not(HasSubstr("--comment default/big0")));
  EXPECT_THAT(plan,
              HasSubstr("-m statistic --mode random --probability 0.0019960080 -j KUBE-SEP-"));
  // ...the others keep theirs.
  EXPECT_THAT(plan, HasSubstr("\"default/big0 cluster IP\""));
  // 1,000 endpoints is not large yet.
  s.ports.begin()->second.cluster_endpoints.resize(499);
  EXPECT_THAT(PlanIptablesRestore(s), HasSubstr(" -> 10.245."));
}

TEST(IptablesPlan, InternalTrafficPolicyLocalWithoutLocalEndpointsDrops) {
  ProxyState s = WebWithThreeEndpoints();
  ProxyServicePort& p = s.ports.begin()->second;
  p.internal_local = true;
  p.local_endpoints.clear();
  std::string plan = PlanIptablesRestore(s);
  EXPECT_THAT(plan, HasSubstr("-A KUBE-SERVICES -m comment --comment \"default/web:http has no "
                              "local endpoints\" -m tcp -p tcp -d 10.96.0.20 --dport 80 -j DROP"));
  EXPECT_THAT(plan, Not(HasSubstr("KUBE-SVC-")));
  EXPECT_TRUE(IptablesServiceChains(s).empty());
}

}  // namespace
}  // namespace kin::netstack
