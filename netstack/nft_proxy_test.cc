// Unit tests (no root): the nftables proxy planner against golden files in
// testdata/nft_proxy/ (KIN_UPDATE_GOLDEN=1 rewrites them). The kernel
// accepting these scripts is service_proxy_kernel_test's job.
#include "netstack/nft_proxy.h"

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include "testing/golden.h"

namespace kin::netstack {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

void ExpectGolden(const std::string& name, const std::string& actual) {
  testing::ExpectGolden(std::string(KIN_NETSTACK_TESTDATA) + "/nft_proxy/" + name, actual);
}

Ipv4Address A(const char* s) { return Ipv4Address::Parse(s); }
ProxyEndpoint Ep(const char* ip, uint16_t port) { return {A(ip), port}; }

ProxyServicePort Port(const char* ns, const char* name, const char* port_name, L4Protocol proto,
                      const char* cluster_ip, uint16_t port, std::vector<ProxyEndpoint> eps) {
  ProxyServicePort p;
  p.ns = ns;
  p.name = name;
  p.port_name = port_name;
  p.protocol = proto;
  if (cluster_ip != nullptr) p.cluster_ip = A(cluster_ip);
  p.port = port;
  p.cluster_endpoints = std::move(eps);
  return p;
}

ProxyState Empty() {
  ProxyState s;
  s.node_ips = {A("172.18.0.2")};
  s.cluster_cidr = Ipv4Cidr::Parse("10.244.0.0/16");
  s.service_cidr = Ipv4Cidr::Parse("10.96.0.0/16");
  return s;
}

void Put(ProxyState& s, ProxyServicePort p) { s.ports[p.Key()] = std::move(p); }

// One of each kind of service port.
ProxyState Rich() {
  ProxyState s = Empty();
  ProxyServicePort web =
      Port("default", "web", "http", L4Protocol::kTcp, "10.96.0.20", 80,
           {Ep("10.244.0.5", 8080), Ep("10.244.1.5", 8080), Ep("10.244.2.5", 8080)});
  web.node_port = 30080;
  Put(s, web);
  Put(s, Port("kube-system", "kube-dns", "dns", L4Protocol::kUdp, "10.96.0.10", 53,
              {Ep("10.244.0.2", 53), Ep("10.244.1.2", 53)}));
  ProxyServicePort sticky = Port("default", "sticky", "", L4Protocol::kTcp, "10.96.0.30", 8080,
                                 {Ep("10.244.0.7", 8080), Ep("10.244.1.7", 8080)});
  sticky.affinity_timeout_seconds = 10800;
  Put(s, sticky);
  ProxyServicePort empty = Port("default", "empty", "", L4Protocol::kTcp, "10.96.0.40", 80, {});
  empty.node_port = 30040;
  empty.external_ips = {A("203.0.113.10")};
  Put(s, empty);
  ProxyServicePort local_ext = Port("default", "local-ext", "", L4Protocol::kTcp, "10.96.0.50", 80,
                                    {Ep("10.244.0.9", 80), Ep("10.244.1.9", 80)});
  local_ext.node_port = 30050;
  local_ext.load_balancer_ips = {A("198.51.100.5")};
  local_ext.external_local = true;
  local_ext.local_endpoints = {Ep("10.244.0.9", 80)};
  Put(s, local_ext);
  ProxyServicePort local_int =
      Port("default", "local-int", "", L4Protocol::kTcp, "10.96.0.60", 80, {Ep("10.244.1.11", 80)});
  local_int.internal_local = true;  // no endpoint on this node: drop
  Put(s, local_int);
  Put(s, Port("default", "sctp", "", L4Protocol::kSctp, "10.96.0.70", 9999,
              {Ep("10.244.1.12", 9999)}));
  return s;
}

TEST(NftProxyNamesTest, AsKubeProxy) {
  // The examples in kube-proxy's servicePortChainNameBase and
  // servicePortEndpointChainNameBase comments.
  ProxyServicePort p = Port("ns1", "svc1", "p80", L4Protocol::kTcp, "172.30.0.41", 80, {});
  EXPECT_EQ(NftServiceChain(p), "service-ULMVA6XW-ns1/svc1/tcp/p80");
  EXPECT_EQ(NftLocalChain(p), "local-ULMVA6XW-ns1/svc1/tcp/p80");
  EXPECT_EQ(NftExternalChain(p), "external-ULMVA6XW-ns1/svc1/tcp/p80");
  EXPECT_EQ(NftEndpointChain(p, Ep("10.180.0.1", 80)),
            "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80");
  EXPECT_EQ(NftAffinitySet(p, Ep("10.180.0.1", 80)),
            "affinity-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80");
}

TEST(NftProxyNamesTest, LongNamesAreTruncatedWithinNftsLimit) {
  const std::string n63(63, 'a');
  ProxyServicePort p =
      Port(n63.c_str(), n63.c_str(), n63.c_str(), L4Protocol::kTcp, nullptr, 80, {});
  EXPECT_LE(NftEndpointChain(p, Ep("10.244.0.1", 65535)).size(), 255u);
  EXPECT_NE(NftEndpointChain(p, Ep("10.244.0.1", 65535)),
            NftEndpointChain(p, Ep("10.244.0.2", 65535)));
}

TEST(NftProxyPlanTest, FullEmpty) { ExpectGolden("full_empty.nft", PlanNftFull(Empty())); }

TEST(NftProxyPlanTest, FullRich) { ExpectGolden("full_rich.nft", PlanNftFull(Rich())); }

TEST(NftProxyPlanTest, FullRichHasEveryKind) {
  const std::string plan = PlanNftFull(Rich());
  // Affinity is checked before the random choice, and updated per endpoint.
  EXPECT_THAT(plan, HasSubstr("timeout 10800s"));
  EXPECT_THAT(plan, HasSubstr("update @affinity-"));
  // No endpoints: reject, for the ClusterIP, the external IP and the NodePort.
  EXPECT_THAT(plan, HasSubstr("10.96.0.40 . tcp . 80 : goto reject-chain"));
  EXPECT_THAT(plan, HasSubstr("203.0.113.10 . tcp . 80 : goto reject-chain"));
  EXPECT_THAT(plan, HasSubstr("tcp . 30040 : goto reject-chain"));
  // internalTrafficPolicy Local without a local endpoint: drop.
  EXPECT_THAT(plan, HasSubstr("10.96.0.60 . tcp . 80 : drop"));
  // externalTrafficPolicy Local: no masquerade for external clients.
  ProxyState s = Rich();
  const std::string ext = NftExternalChain(s.ports.at("default/local-ext:"));
  const size_t at = plan.find("add chain ip kin-proxy " + ext + " {\n");
  ASSERT_NE(at, std::string::npos);
  const std::string block = plan.substr(at, plan.find("\n}\n", at) + 1 - at);
  EXPECT_THAT(block, Not(HasSubstr("\tjump mark-for-masquerade")));
  EXPECT_THAT(block, HasSubstr("\tgoto " + NftLocalChain(s.ports.at("default/local-ext:")) + "\n"));
}

TEST(NftProxyPlanTest, IncrementalNothingChanged) {
  EXPECT_EQ(PlanNftIncremental(Rich(), Rich()).script, "");
  EXPECT_EQ(PlanNftIncremental(Empty(), Empty()).script, "");
}

TEST(NftProxyPlanTest, IncrementalEndpointRemoved) {
  ProxyState after = Rich();
  after.ports.at("default/web:http").cluster_endpoints.pop_back();
  ExpectGolden("incremental_endpoint_removed.nft", PlanNftIncremental(Rich(), after).script);
}

TEST(NftProxyPlanTest, IncrementalServiceRemoved) {
  ProxyState after = Rich();
  after.ports.erase("default/sticky:");
  ExpectGolden("incremental_service_removed.nft", PlanNftIncremental(Rich(), after).script);
}

TEST(NftProxyPlanTest, IncrementalServiceAdded) {
  ProxyState after = Rich();
  ProxyServicePort p = Port("default", "new", "https", L4Protocol::kTcp, "10.96.0.80", 443,
                            {Ep("10.244.0.20", 8443)});
  p.external_ips = {A("203.0.113.20")};
  Put(after, p);
  ExpectGolden("incremental_service_added.nft", PlanNftIncremental(Rich(), after).script);
}

TEST(NftProxyPlanTest, IncrementalAffinityTurnedOn) {
  ProxyState after = Rich();
  after.ports.at("default/web:http").affinity_timeout_seconds = 60;
  ExpectGolden("incremental_affinity_on.nft", PlanNftIncremental(Rich(), after).script);
}

TEST(NftProxyPlanTest, IncrementalLostAllEndpoints) {
  ProxyState after = Rich();
  after.ports.at("kube-system/kube-dns:dns").cluster_endpoints.clear();
  ExpectGolden("incremental_no_endpoints.nft", PlanNftIncremental(Rich(), after).script);
}

TEST(NftProxyPlanTest, IncrementalLocalPolicyGainsLocalEndpoint) {
  ProxyState after = Rich();
  after.ports.at("default/local-int:").local_endpoints = {Ep("10.244.0.30", 80)};
  after.ports.at("default/local-int:").cluster_endpoints = {Ep("10.244.0.30", 80),
                                                            Ep("10.244.1.11", 80)};
  ExpectGolden("incremental_local_endpoint.nft", PlanNftIncremental(Rich(), after).script);
}

TEST(NftProxyPlanTest, EmptiedChainsWaitForATransactionThatDeletes) {
  ProxyState fewer = Rich();
  fewer.ports.at("default/web:http").cluster_endpoints.pop_back();
  const std::string gone =
      NftEndpointChain(fewer.ports.at("default/web:http"), Ep("10.244.2.5", 8080));
  // An endpoint removed: its chain is emptied but not deleted, so nothing
  // in the transaction makes libnftables fetch the table's chains.
  NftIncrementalPlan p = PlanNftIncremental(Rich(), fewer, {}, 100);
  ExpectGolden("incremental_endpoint_removed_deferred.nft", p.script);
  EXPECT_FALSE(p.fetches_cache);
  EXPECT_EQ(p.stale_chains, std::set<std::string>{gone});
  EXPECT_THAT(p.script, Not(HasSubstr("delete ")));
  EXPECT_THAT(p.script, Not(HasSubstr("add rule")));
  EXPECT_THAT(p.script, Not(HasSubstr("add element")));

  // The next transaction that deletes anyway deletes it too.
  ProxyState without_dns = fewer;
  without_dns.ports.erase("kube-system/kube-dns:dns");
  NftIncrementalPlan q = PlanNftIncremental(fewer, without_dns, p.stale_chains, 100);
  EXPECT_TRUE(q.fetches_cache);
  EXPECT_TRUE(q.stale_chains.empty());
  EXPECT_THAT(q.script, HasSubstr("delete chain ip kin-proxy " + gone + "\n"));

  // Beyond max_stale they go at once; a chain needed again is no longer stale.
  EXPECT_THAT(PlanNftIncremental(Rich(), fewer, {}, 0).script,
              HasSubstr("delete chain ip kin-proxy " + gone + "\n"));
  NftIncrementalPlan back = PlanNftIncremental(fewer, Rich(), p.stale_chains, 100);
  EXPECT_TRUE(back.stale_chains.empty());
  EXPECT_THAT(back.script, HasSubstr("add chain ip kin-proxy " + gone + " {"));
}

TEST(NftProxyPlanTest, SharedClusterIpStaysWhileAPortUsesIt) {
  ProxyState before = Rich();
  ProxyServicePort https = before.ports.at("default/web:http");
  https.port_name = "https";
  https.port = 443;
  https.node_port = 0;
  Put(before, https);
  ProxyState after = before;
  after.ports.erase("default/web:https");
  const std::string plan = PlanNftIncremental(before, after).script;
  EXPECT_THAT(plan, Not(HasSubstr("cluster-ips")));
  EXPECT_THAT(plan, HasSubstr("10.96.0.20 . tcp . 443"));
  after.ports.erase("default/web:http");
  EXPECT_THAT(PlanNftIncremental(before, after).script,
              HasSubstr("delete element ip kin-proxy cluster-ips {\n\t10.96.0.20\n}"));
}

TEST(NftProxyPlanTest, IncrementalWithNewRangesIsFull) {
  ProxyState after = Rich();
  after.cluster_cidr = Ipv4Cidr::Parse("10.245.0.0/16");
  EXPECT_EQ(PlanNftIncremental(Rich(), after).script, PlanNftFull(after));
}

}  // namespace
}  // namespace kin::netstack
