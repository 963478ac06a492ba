// Unit tests: the zone answers as CoreDNS's kubernetes plugin does. Most
// cases are CoreDNS's own (plugin/kubernetes/handler_test.go,
// handler_pod_insecure_test.go, handler_case_test.go, reverse_test.go), on
// the same objects minus the IPv6 addresses (kin's cluster is IPv4): so the
// headless SRV weight there is 100/4 = 25, not CoreDNS's 100/6 = 16.
#include "netstack/dns_zone.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <ostream>
#include <thread>

namespace kin::netstack {

// Readable failures.
void PrintTo(const DnsRecord& r, std::ostream* os) {
  *os << r.name << " " << r.ttl << " type" << static_cast<int>(r.type);
  switch (r.type) {
    case DnsType::kA:
      *os << " " << r.ipv4.ToString();
      break;
    case DnsType::kSrv:
      *os << " " << r.priority << " " << r.weight << " " << r.port << " " << r.target;
      break;
    case DnsType::kSoa:
      *os << " " << r.soa.mname << " " << r.soa.rname << " " << r.soa.serial << " " << r.soa.refresh
          << " " << r.soa.retry << " " << r.soa.expire << " " << r.soa.minimum;
      break;
    case DnsType::kTxt:
      *os << " \"" << r.text << "\"";
      break;
    default:
      *os << " " << r.target;
  }
}

namespace {

using Records = std::vector<DnsRecord>;

Ipv4Address Ip(const char* s) { return Ipv4Address::Parse(s); }

DnsRecord A(std::string name, const char* ip, uint32_t ttl = 5) {
  DnsRecord r;
  r.name = std::move(name);
  r.type = DnsType::kA;
  r.ttl = ttl;
  r.ipv4 = Ip(ip);
  return r;
}

DnsRecord Named(DnsType type, std::string name, std::string target, uint32_t ttl = 5) {
  DnsRecord r;
  r.name = std::move(name);
  r.type = type;
  r.ttl = ttl;
  r.target = std::move(target);
  return r;
}

DnsRecord Srv(std::string name, uint16_t weight, uint16_t port, std::string target,
              uint32_t ttl = 5) {
  DnsRecord r = Named(DnsType::kSrv, std::move(name), std::move(target), ttl);
  r.weight = weight;
  r.port = port;
  return r;
}

DnsRecord Txt(std::string name, std::string text, uint32_t ttl) {
  DnsRecord r;
  r.name = std::move(name);
  r.type = DnsType::kTxt;
  r.ttl = ttl;
  r.text = std::move(text);
  return r;
}

DnsServicePort Port(std::string name, std::string proto, uint16_t port) {
  return DnsServicePort{std::move(name), std::move(proto), port};
}

DnsEndpoint Ep(const char* ip, std::string hostname = "",
               std::vector<DnsServicePort> ports = {Port("http", "TCP", 80)}) {
  DnsEndpoint e;
  e.ipv4 = Ip(ip);
  e.hostname = std::move(hostname);
  e.ports = std::move(ports);
  return e;
}

DnsService ClusterIp(std::string ns, std::string name, std::vector<const char*> ips,
                     std::vector<DnsServicePort> ports = {Port("http", "TCP", 80)},
                     std::vector<DnsEndpoint> eps = {}) {
  DnsService s;
  s.ns = std::move(ns);
  s.name = std::move(name);
  s.kind = DnsService::Kind::kClusterIP;
  for (const char* ip : ips) s.cluster_ips.push_back(Ip(ip));
  s.ports = std::move(ports);
  s.endpoints = std::move(eps);
  return s;
}

DnsService Headless(std::string ns, std::string name, std::vector<DnsEndpoint> eps,
                    std::vector<DnsServicePort> ports = {Port("http", "TCP", 80)}) {
  DnsService s;
  s.ns = std::move(ns);
  s.name = std::move(name);
  s.kind = DnsService::Kind::kHeadless;
  s.ports = std::move(ports);
  s.endpoints = std::move(eps);
  return s;
}

DnsService External(std::string ns, std::string name, std::string target) {
  DnsService s;
  s.ns = std::move(ns);
  s.name = std::move(name);
  s.kind = DnsService::Kind::kExternalName;
  s.external_name = std::move(target);
  s.ports = {Port("http", "TCP", 80)};
  return s;
}

// handler_test.go's APIConnServeTest with k.Namespaces = {testns}, ttl 5.
class DnsZoneTest : public ::testing::Test {
 protected:
  DnsZoneTest() : zone_(Options()) {
    zone_.SetNamespace("testns");
    zone_.SetService(ClusterIp("kube-system", "kubedns", {"10.0.0.10"}, {Port("dns", "UDP", 53)},
                               {Ep("172.0.0.100", "", {Port("dns", "UDP", 53)})}));
    zone_.SetService(ClusterIp("testns", "svc1", {"10.0.0.1"}, {Port("http", "TCP", 80)},
                               {Ep("172.0.0.1", "ep1a")}));
    zone_.SetService(ClusterIp("testns", "svcempty", {"10.0.0.1"}));
    zone_.SetService(Headless("testns", "hdls1",
                              {Ep("172.0.0.2"), Ep("172.0.0.3"), Ep("172.0.0.4", "dup-name"),
                               Ep("172.0.0.5", "dup-name")},
                              {}));
    zone_.SetService(Headless("testns", "hdlsprtls", {Ep("172.0.0.20", "", {})}, {}));
    zone_.SetService(External("testns", "external", "ext.interwebs.test"));
    zone_.SetService(External("testns", "external-to-service", "svc1.testns.svc.cluster.local."));
    zone_.SetService(ClusterIp("unexposedns", "svc1", {"10.0.0.2"}));
    serial_ = zone_.Resolve("cluster.local.", DnsType::kSoa).answer.at(0).soa.serial;
  }

  static DnsZoneOptions Options() {
    DnsZoneOptions o;
    o.ttl = 5;
    return o;
  }

  DnsRecord Soa(std::string zone = "cluster.local.", uint32_t ttl = 5, uint32_t minimum = 5) {
    DnsRecord r;
    r.name = zone;
    r.type = DnsType::kSoa;
    r.ttl = ttl;
    r.soa.mname = "ns.dns." + zone;
    r.soa.rname = "hostmaster." + zone;
    r.soa.serial = serial_;
    r.soa.refresh = 7200;
    r.soa.retry = 1800;
    r.soa.expire = 86400;
    r.soa.minimum = minimum;
    return r;
  }

  void ExpectAnswer(std::string_view q, DnsType t, const Records& answer,
                    const Records& additional = {}) {
    SCOPED_TRACE(std::string(q) + " type " + std::to_string(static_cast<int>(t)));
    DnsAnswer a = zone_.Resolve(q, t);
    EXPECT_EQ(a.source, DnsAnswer::Source::kZone);
    EXPECT_EQ(a.rcode, DnsRcode::kNoError);
    EXPECT_TRUE(a.authoritative);
    EXPECT_EQ(a.answer, answer);
    EXPECT_EQ(a.additional, additional);
    EXPECT_TRUE(a.authority.empty());
    EXPECT_EQ(a.cname_to_resolve, "");
  }
  void ExpectNoData(std::string_view q, DnsType t, std::string zone = "cluster.local.") {
    SCOPED_TRACE(std::string(q) + " type " + std::to_string(static_cast<int>(t)));
    DnsAnswer a = zone_.Resolve(q, t);
    EXPECT_EQ(a.source, DnsAnswer::Source::kZone);
    EXPECT_EQ(a.rcode, DnsRcode::kNoError);
    EXPECT_TRUE(a.authoritative);
    EXPECT_TRUE(a.answer.empty());
    EXPECT_TRUE(a.additional.empty());
    EXPECT_EQ(a.authority, Records{Soa(zone)});
  }
  void ExpectNxDomain(std::string_view q, DnsType t, std::string zone = "cluster.local.") {
    SCOPED_TRACE(std::string(q) + " type " + std::to_string(static_cast<int>(t)));
    DnsAnswer a = zone_.Resolve(q, t);
    EXPECT_EQ(a.source, DnsAnswer::Source::kZone);
    EXPECT_EQ(a.rcode, DnsRcode::kNxDomain);
    EXPECT_TRUE(a.authoritative);
    EXPECT_TRUE(a.answer.empty());
    EXPECT_TRUE(a.additional.empty());
    EXPECT_EQ(a.authority, Records{Soa(zone)});
  }
  void ExpectForward(std::string_view q, DnsType t) {
    SCOPED_TRACE(std::string(q) + " type " + std::to_string(static_cast<int>(t)));
    DnsAnswer a = zone_.Resolve(q, t);
    EXPECT_EQ(a.source, DnsAnswer::Source::kForward);
    EXPECT_TRUE(a.answer.empty());
    EXPECT_TRUE(a.authority.empty());
  }

  DnsZone zone_;
  uint32_t serial_ = 0;
};

// ---- handler_test.go commonDnsTestCases / dnsTestCases ---------------------

TEST_F(DnsZoneTest, ClusterIpServiceA) {
  ExpectAnswer("svc1.testns.svc.cluster.local.", DnsType::kA,
               {A("svc1.testns.svc.cluster.local.", "10.0.0.1")});
  ExpectAnswer("svcempty.testns.svc.cluster.local.", DnsType::kA,
               {A("svcempty.testns.svc.cluster.local.", "10.0.0.1")});
  // Without the trailing dot the answer is the same.
  ExpectAnswer("svc1.testns.svc.cluster.local", DnsType::kA,
               {A("svc1.testns.svc.cluster.local.", "10.0.0.1")});
}

TEST_F(DnsZoneTest, ClusterIpServiceSrv) {
  ExpectAnswer("svc1.testns.svc.cluster.local.", DnsType::kSrv,
               {Srv("svc1.testns.svc.cluster.local.", 100, 80, "svc1.testns.svc.cluster.local.")},
               {A("svc1.testns.svc.cluster.local.", "10.0.0.1")});
  ExpectAnswer(
      "_http._tcp.svc1.testns.svc.cluster.local.", DnsType::kSrv,
      {Srv("_http._tcp.svc1.testns.svc.cluster.local.", 100, 80, "svc1.testns.svc.cluster.local.")},
      {A("svc1.testns.svc.cluster.local.", "10.0.0.1")});
  ExpectAnswer("_http._tcp.svcempty.testns.svc.cluster.local.", DnsType::kSrv,
               {Srv("_http._tcp.svcempty.testns.svc.cluster.local.", 100, 80,
                    "svcempty.testns.svc.cluster.local.")},
               {A("svcempty.testns.svc.cluster.local.", "10.0.0.1")});
}

TEST_F(DnsZoneTest, HeadlessServiceA) {
  const char* n = "hdls1.testns.svc.cluster.local.";
  ExpectAnswer(n, DnsType::kA,
               {A(n, "172.0.0.2"), A(n, "172.0.0.3"), A(n, "172.0.0.4"), A(n, "172.0.0.5")});
  // Headless and portless.
  ExpectAnswer("hdlsprtls.testns.svc.cluster.local.", DnsType::kA,
               {A("hdlsprtls.testns.svc.cluster.local.", "172.0.0.20")});
}

TEST_F(DnsZoneTest, HeadlessServiceSrvNamesEndpointsAndAddsTheirAddresses) {
  // Four (endpoint, port) pairs: weight 100/4; the two dup-name endpoints
  // share one SRV record but keep both addresses.
  const char* q = "_http._tcp.hdls1.testns.svc.cluster.local.";
  ExpectAnswer(q, DnsType::kSrv,
               {Srv(q, 25, 80, "172-0-0-2.hdls1.testns.svc.cluster.local."),
                Srv(q, 25, 80, "172-0-0-3.hdls1.testns.svc.cluster.local."),
                Srv(q, 25, 80, "dup-name.hdls1.testns.svc.cluster.local.")},
               {A("172-0-0-2.hdls1.testns.svc.cluster.local.", "172.0.0.2"),
                A("172-0-0-3.hdls1.testns.svc.cluster.local.", "172.0.0.3"),
                A("dup-name.hdls1.testns.svc.cluster.local.", "172.0.0.4"),
                A("dup-name.hdls1.testns.svc.cluster.local.", "172.0.0.5")});
}

TEST_F(DnsZoneTest, EndpointNames) {
  ExpectAnswer("172-0-0-20.hdlsprtls.testns.svc.cluster.local.", DnsType::kA,
               {A("172-0-0-20.hdlsprtls.testns.svc.cluster.local.", "172.0.0.20")});
  ExpectAnswer("172-0-0-2.hdls1.testns.svc.cluster.local.", DnsType::kA,
               {A("172-0-0-2.hdls1.testns.svc.cluster.local.", "172.0.0.2")});
  ExpectAnswer("dup-name.hdls1.testns.svc.cluster.local.", DnsType::kA,
               {A("dup-name.hdls1.testns.svc.cluster.local.", "172.0.0.4"),
                A("dup-name.hdls1.testns.svc.cluster.local.", "172.0.0.5")});
  // A ClusterIP Service's endpoints have names too.
  ExpectAnswer("ep1a.svc1.testns.svc.cluster.local.", DnsType::kA,
               {A("ep1a.svc1.testns.svc.cluster.local.", "172.0.0.1")});
  ExpectAnswer(
      "ep1a.svc1.testns.svc.cluster.local.", DnsType::kSrv,
      {Srv("ep1a.svc1.testns.svc.cluster.local.", 100, 80, "ep1a.svc1.testns.svc.cluster.local.")},
      {A("ep1a.svc1.testns.svc.cluster.local.", "172.0.0.1")});
  // An endpoint with a hostname is not also found by its dashed address.
  ExpectNxDomain("172-0-0-4.hdls1.testns.svc.cluster.local.", DnsType::kA);
  ExpectNxDomain("bogusendpoint.hdls1.testns.svc.cluster.local.", DnsType::kA);
  ExpectNxDomain("bogusendpoint.svc0.testns.svc.cluster.local.", DnsType::kA);
}

TEST_F(DnsZoneTest, NoDataAndNxDomain) {
  ExpectNoData("svc1.testns.svc.cluster.local.", DnsType::kAaaa);
  ExpectNxDomain("svc0.testns.svc.cluster.local.", DnsType::kAaaa);
  ExpectNxDomain("svc0.testns.svc.cluster.local.", DnsType::kA);
  ExpectNxDomain("svc0.svc-nons.svc.cluster.local.", DnsType::kA);
  ExpectNoData("svc.cluster.local.", DnsType::kA);
  ExpectNoData("pod.cluster.local.", DnsType::kA);
  ExpectNoData("testns.svc.cluster.local.", DnsType::kA);
  ExpectNoData("svc.cluster.local.", DnsType::kNs);
  ExpectNoData("testns.svc.cluster.local.", DnsType::kNs);
  ExpectNxDomain("foo.cluster.local.", DnsType::kNs);
  ExpectNxDomain("foo.svc.cluster.local.", DnsType::kNs);
  ExpectNoData("svc1.testns.svc.cluster.local.", DnsType::kSoa);
  ExpectNxDomain("endpoint.external.testns.svc.cluster.local.", DnsType::kCname);
  ExpectNxDomain("subdomain.subdomain.external.testns.svc.cluster.local.", DnsType::kCname);
  // The Service exists, its namespace is not known (k.Namespaces there).
  ExpectNxDomain("svc1.unexposedns.svc.cluster.local.", DnsType::kA);
  ExpectNxDomain("unexposedns.svc.cluster.local.", DnsType::kA);
  // Other types: a fake A lookup decides (HINFO, ANY, MX).
  ExpectNoData("svc1.testns.svc.cluster.local.", static_cast<DnsType>(13));
  ExpectNoData("svc1.testns.svc.cluster.local.", DnsType::kAny);
  ExpectNoData("svc1.testns.svc.cluster.local.", DnsType::kMx);
  ExpectNxDomain("svc0.testns.svc.cluster.local.", DnsType::kMx);
  // A name only under "svc" or "pod" exists; five labels before svc is too long.
  ExpectNxDomain("foo.dns.cluster.local.", DnsType::kA);
  ExpectNxDomain("a.b.c.svc1.testns.svc.cluster.local.", DnsType::kA);
  // PTR on a forward name: NODATA when it exists.
  ExpectNoData("svc1.testns.svc.cluster.local.", DnsType::kPtr);
  ExpectNxDomain("example.org.cluster.local.", DnsType::kPtr);
  ExpectNxDomain("100.0.0.10.cluster.local.", DnsType::kPtr);
}

TEST_F(DnsZoneTest, Txt) {
  ExpectAnswer("dns-version.cluster.local.", DnsType::kTxt,
               {Txt("dns-version.cluster.local.", "1.1.0", 28800)});
  ExpectNoData("svc1.testns.svc.cluster.local.", DnsType::kTxt);
  ExpectNxDomain("svc0.svc-nons.svc.cluster.local.", DnsType::kTxt);
  // dns-version has no other type; TXT elsewhere is NODATA only where A
  // records are: the apex and namespace names have none, so NXDOMAIN.
  ExpectNxDomain("dns-version.cluster.local.", DnsType::kA);
  ExpectNxDomain("cluster.local.", DnsType::kTxt);
  ExpectNxDomain("svc.cluster.local.", DnsType::kTxt);
  ExpectNxDomain("testns.svc.cluster.local.", DnsType::kTxt);
  ExpectNoData("external.testns.svc.cluster.local.", DnsType::kTxt);
}

TEST_F(DnsZoneTest, ExternalName) {
  ExpectAnswer(
      "external.testns.svc.cluster.local.", DnsType::kCname,
      {Named(DnsType::kCname, "external.testns.svc.cluster.local.", "ext.interwebs.test.")});
  // A target outside the zone: the server chases it.
  for (DnsType t : {DnsType::kA, DnsType::kAaaa}) {
    DnsAnswer a = zone_.Resolve("external.testns.svc.cluster.local.", t);
    EXPECT_EQ(a.rcode, DnsRcode::kNoError);
    EXPECT_TRUE(a.authoritative);
    EXPECT_EQ(a.answer, (Records{Named(DnsType::kCname, "external.testns.svc.cluster.local.",
                                       "ext.interwebs.test.")}));
    EXPECT_TRUE(a.authority.empty());
    EXPECT_EQ(a.cname_to_resolve, "ext.interwebs.test.");
  }
  // A target in the zone: the zone chases it.
  ExpectAnswer("external-to-service.testns.svc.cluster.local", DnsType::kA,
               {Named(DnsType::kCname, "external-to-service.testns.svc.cluster.local.",
                      "svc1.testns.svc.cluster.local."),
                A("svc1.testns.svc.cluster.local.", "10.0.0.1")});
  // ... which has no AAAA: the CNAME is dropped too.
  ExpectNoData("external-to-service.testns.svc.cluster.local", DnsType::kAaaa);
  // No SRV for ExternalNames.
  ExpectNoData("external.testns.svc.cluster.local.", DnsType::kSrv);
  ExpectNxDomain("_http._tcp.external.testns.svc.cluster.local.", DnsType::kSrv);
}

TEST_F(DnsZoneTest, ExternalNameChainsLoopsAndAddresses) {
  zone_.SetService(External("testns", "ext1", "ext2.testns.svc.cluster.local"));
  zone_.SetService(External("testns", "ext2", "Example.COM"));
  zone_.SetService(External("testns", "self", "self.testns.svc.cluster.local."));
  zone_.SetService(External("testns", "below", "x.below.testns.svc.cluster.local."));
  zone_.SetService(External("testns", "gone", "nope.testns.svc.cluster.local."));
  zone_.SetService(External("testns", "ip", "1.2.3.4"));
  serial_ = zone_.Resolve("cluster.local.", DnsType::kSoa).answer.at(0).soa.serial;
  DnsAnswer a = zone_.Resolve("ext1.testns.svc.cluster.local.", DnsType::kA);
  EXPECT_EQ(a.answer,
            (Records{Named(DnsType::kCname, "ext1.testns.svc.cluster.local.",
                           "ext2.testns.svc.cluster.local."),
                     Named(DnsType::kCname, "ext2.testns.svc.cluster.local.", "Example.COM.")}));
  EXPECT_EQ(a.cname_to_resolve, "Example.COM.");
  ExpectNoData("self.testns.svc.cluster.local.", DnsType::kA);
  ExpectNoData("below.testns.svc.cluster.local.", DnsType::kA);
  ExpectNoData("gone.testns.svc.cluster.local.", DnsType::kA);
  // An address is not a CNAME target: nothing there.
  ExpectNxDomain("ip.testns.svc.cluster.local.", DnsType::kA);
}

// ---- handler_pod_insecure_test.go -------------------------------------------

TEST_F(DnsZoneTest, PodsInsecure) {
  zone_.SetNamespace("podns");
  serial_ = zone_.Resolve("cluster.local.", DnsType::kSoa).answer.at(0).soa.serial;
  ExpectAnswer("10-240-0-1.podns.pod.cluster.local.", DnsType::kA,
               {A("10-240-0-1.podns.pod.cluster.local.", "10.240.0.1")});
  ExpectAnswer("172-0-0-2.podns.pod.cluster.local.", DnsType::kA,
               {A("172-0-0-2.podns.pod.cluster.local.", "172.0.0.2")});
  ExpectNxDomain("blah.podns.pod.cluster.local.", DnsType::kA);
  ExpectNxDomain("blah.podns.pod.cluster.local.", DnsType::kAaaa);
  ExpectNxDomain("blah.podns.pod.cluster.local.", static_cast<DnsType>(13));
  ExpectNxDomain("blah.pod-nons.pod.cluster.local.", DnsType::kA);
  ExpectNoData("podns.pod.cluster.local.", DnsType::kA);
  // Beyond CoreDNS's cases: a valid address in a namespace that does not
  // exist, octets Go's ParseIP rejects, labels in front (ignored).
  ExpectNxDomain("10-240-0-1.pod-nons.pod.cluster.local.", DnsType::kA);
  ExpectNxDomain("pod-nons.pod.cluster.local.", DnsType::kA);
  ExpectNxDomain("1-2-3-400.podns.pod.cluster.local.", DnsType::kA);
  ExpectNxDomain("1-2-3-04.podns.pod.cluster.local.", DnsType::kA);
  ExpectNxDomain("1-2-3.podns.pod.cluster.local.", DnsType::kA);
  ExpectAnswer("x.10-240-0-1.podns.pod.cluster.local.", DnsType::kA,
               {A("x.10-240-0-1.podns.pod.cluster.local.", "10.240.0.1")});
  ExpectNoData("10-240-0-1.podns.pod.cluster.local.", DnsType::kAaaa);
  ExpectNoData("10-240-0-1.podns.pod.cluster.local.", DnsType::kTxt);
  ExpectAnswer(
      "10-240-0-1.podns.pod.cluster.local.", DnsType::kSrv,
      {Srv("10-240-0-1.podns.pod.cluster.local.", 100, 0, "10-240-0-1.podns.pod.cluster.local.")},
      {A("10-240-0-1.podns.pod.cluster.local.", "10.240.0.1")});
  // IPv6 spelled with dashes: the name exists (no A); a v4-mapped one is v4.
  ExpectNoData("fd00--1.podns.pod.cluster.local.", DnsType::kA);
  ExpectAnswer("--ffff-a00-1.podns.pod.cluster.local.", DnsType::kA,
               {A("--ffff-a00-1.podns.pod.cluster.local.", "10.0.0.1")});
  ExpectNxDomain("fd00---1.podns.pod.cluster.local.", DnsType::kA);
}

// ---- handler_case_test.go -----------------------------------------------------

TEST_F(DnsZoneTest, AnswersEchoTheQueryCase) {
  ExpectNxDomain("not-a-service.testns.svc.ClUsTeR.lOcAl.", DnsType::kA, "ClUsTeR.lOcAl.");
  ExpectAnswer("SvC1.TeStNs.SvC.cLuStEr.LoCaL.", DnsType::kA,
               {A("SvC1.TeStNs.SvC.cLuStEr.LoCaL.", "10.0.0.1")});
  ExpectAnswer(
      "_HtTp._TcP.sVc1.TeStNs.SvC.cLuStEr.LoCaL.", DnsType::kSrv,
      {Srv("_HtTp._TcP.sVc1.TeStNs.SvC.cLuStEr.LoCaL.", 100, 80, "svc1.testns.svc.cLuStEr.LoCaL.")},
      {A("svc1.testns.svc.cLuStEr.LoCaL.", "10.0.0.1")});
  ExpectAnswer("Cluster.local.", DnsType::kSoa, {Soa("Cluster.local.")});
  ExpectAnswer("DNS-Version.Cluster.Local", DnsType::kTxt,
               {Txt("DNS-Version.Cluster.Local.", "1.1.0", 28800)});
}

// ---- reverse_test.go -------------------------------------------------------------

class DnsZoneReverseTest : public DnsZoneTest {
 protected:
  DnsZoneReverseTest() {
    zone_.SetService(ClusterIp("testns", "svc1", {"192.168.1.100"}, {Port("http", "TCP", 80)},
                               {Ep("10.0.0.100", "ep1a"), Ep("10.0.0.99", "double-ep")}));
    zone_.SetService(ClusterIp("testns", "svc2", {"192.168.1.101"}, {Port("http", "TCP", 80)},
                               {Ep("10.0.0.99", "double-ep")}));
    serial_ = zone_.Resolve("cluster.local.", DnsType::kSoa).answer.at(0).soa.serial;
  }
};

TEST_F(DnsZoneReverseTest, Ptr) {
  ExpectAnswer(
      "100.0.0.10.in-addr.arpa.", DnsType::kPtr,
      {Named(DnsType::kPtr, "100.0.0.10.in-addr.arpa.", "ep1a.svc1.testns.svc.cluster.local.")});
  ExpectAnswer(
      "100.1.168.192.in-addr.arpa.", DnsType::kPtr,
      {Named(DnsType::kPtr, "100.1.168.192.in-addr.arpa.", "svc1.testns.svc.cluster.local.")});
  ExpectAnswer(
      "99.0.0.10.in-addr.arpa.", DnsType::kPtr,
      {Named(DnsType::kPtr, "99.0.0.10.in-addr.arpa.", "double-ep.svc1.testns.svc.cluster.local."),
       Named(DnsType::kPtr, "99.0.0.10.in-addr.arpa.",
             "double-ep.svc2.testns.svc.cluster.local.")});
  // An endpoint without hostname: its dashed address. The query's case is
  // echoed in the owner, the target is in the configured zone's.
  ExpectAnswer("2.0.0.172.IN-ADDR.ARPA.", DnsType::kPtr,
               {Named(DnsType::kPtr, "2.0.0.172.IN-ADDR.ARPA.",
                      "172-0-0-2.hdls1.testns.svc.cluster.local.")});
  // PTR does not look at namespaces.
  ExpectAnswer(
      "2.0.0.10.in-addr.arpa.", DnsType::kPtr,
      {Named(DnsType::kPtr, "2.0.0.10.in-addr.arpa.", "svc1.unexposedns.svc.cluster.local.")});
  // An IPv4-mapped IPv6 reverse name is that IPv4 address (Go's IP.String).
  ExpectAnswer("4.6.1.0.8.a.0.c.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.",
               DnsType::kPtr,
               {Named(DnsType::kPtr,
                      "4.6.1.0.8.a.0.c.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.",
                      "svc1.testns.svc.cluster.local.")});
}

TEST_F(DnsZoneReverseTest, UnknownReverseNamesFallThrough) {
  ExpectForward("101.0.0.10.in-addr.arpa.", DnsType::kPtr);
  ExpectForward("3.2.1.in-addr.arpa.", DnsType::kPtr);
  ExpectForward("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.4.3.2.1.ip6.arpa.",
                DnsType::kPtr);
  ExpectForward("100.0.0.10.in-addr.arpa.", DnsType::kA);  // only PTR reads addresses
  ExpectForward("foo.in-addr.arpa.", DnsType::kA);
  ExpectForward("x.svc.in-addr.arpa.", DnsType::kA);
  ExpectForward("in-addr.arpa.", DnsType::kTxt);  // TXT's NXDOMAIN falls through too
  // What exists in a reverse zone: its apex and the bare svc / pod names.
  ExpectAnswer("in-addr.arpa.", DnsType::kSoa, {Soa("in-addr.arpa.")});
  ExpectNoData("in-addr.arpa.", DnsType::kA, "in-addr.arpa.");
  ExpectNoData("in-addr.arpa.", DnsType::kPtr, "in-addr.arpa.");
  ExpectNoData("svc.in-addr.arpa.", DnsType::kPtr, "in-addr.arpa.");
  ExpectNoData("pod.ip6.arpa.", DnsType::kA, "ip6.arpa.");
  // SOA below an apex is NODATA, existing name or not.
  ExpectNoData("1.0.0.10.in-addr.arpa.", DnsType::kSoa, "in-addr.arpa.");
  ExpectAnswer("dns-version.in-addr.arpa.", DnsType::kTxt,
               {Txt("dns-version.in-addr.arpa.", "1.1.0", 28800)});
}

TEST_F(DnsZoneReverseTest, ReverseIndexFollowsChanges) {
  zone_.SetService(ClusterIp("testns", "svc1", {"192.168.1.200"}));
  ExpectForward("100.1.168.192.in-addr.arpa.", DnsType::kPtr);
  ExpectForward("100.0.0.10.in-addr.arpa.", DnsType::kPtr);
  ExpectAnswer(
      "200.1.168.192.in-addr.arpa.", DnsType::kPtr,
      {Named(DnsType::kPtr, "200.1.168.192.in-addr.arpa.", "svc1.testns.svc.cluster.local.")});
  ExpectAnswer("99.0.0.10.in-addr.arpa.", DnsType::kPtr,
               {Named(DnsType::kPtr, "99.0.0.10.in-addr.arpa.",
                      "double-ep.svc2.testns.svc.cluster.local.")});
  zone_.RemoveService("testns", "svc2");
  ExpectForward("99.0.0.10.in-addr.arpa.", DnsType::kPtr);
  ExpectForward("101.1.168.192.in-addr.arpa.", DnsType::kPtr);
}

// ---- the apex, NS, SOA ------------------------------------------------------------

TEST_F(DnsZoneTest, Apex) {
  ExpectAnswer("cluster.local.", DnsType::kSoa, {Soa()});
  ExpectNoData("cluster.local.", DnsType::kA);
  ExpectNoData("cluster.local.", DnsType::kAaaa);
  ExpectNoData("cluster.local.", DnsType::kSrv);
  ExpectNoData("cluster.local.", DnsType::kPtr);
  // No local_ips: no name servers to name.
  ExpectNoData("cluster.local.", DnsType::kNs);
  ExpectNoData("ns.dns.cluster.local.", DnsType::kA);
  ExpectNxDomain("ns.dns.cluster.local.", DnsType::kTxt);
  ExpectNxDomain("ns.dns.cluster.local.", DnsType::kPtr);
  DnsAnswer x = zone_.Resolve("cluster.local.", DnsType::kAxfr);
  EXPECT_EQ(x.rcode, DnsRcode::kRefused);
  EXPECT_FALSE(x.authoritative);
  EXPECT_TRUE(x.answer.empty() && x.authority.empty());
  EXPECT_EQ(zone_.Resolve("svc1.testns.svc.cluster.local.", static_cast<DnsType>(251)).rcode,
            DnsRcode::kRefused);
}

TEST(DnsZoneNsTest, NsNamesTheServiceOfTheServersEndpoint) {
  DnsZoneOptions o;
  o.local_ips = {Ip("10.244.0.3")};
  DnsZone zone(o);
  zone.SetNamespace("kube-system");
  zone.SetService(ClusterIp("kube-system", "kube-dns", {"10.96.0.10"},
                            {Port("dns", "UDP", 53), Port("dns-tcp", "TCP", 53)},
                            {Ep("10.244.0.3", "", {Port("dns", "UDP", 53)})}));
  DnsAnswer a = zone.Resolve("cluster.local", DnsType::kNs);
  EXPECT_EQ(a.rcode, DnsRcode::kNoError);
  EXPECT_EQ(a.answer, (Records{Named(DnsType::kNs, "cluster.local.",
                                     "kube-dns.kube-system.svc.cluster.local.", 30)}));
  EXPECT_EQ(a.additional,
            (Records{A("kube-dns.kube-system.svc.cluster.local.", "10.96.0.10", 30)}));
  a = zone.Resolve("ns.dns.cluster.local", DnsType::kA);
  EXPECT_EQ(a.answer, (Records{A("ns.dns.cluster.local.", "10.96.0.10", 30)}));
  EXPECT_TRUE(zone.Resolve("ns.dns.cluster.local", DnsType::kAaaa).answer.empty());
  // The zone spelled otherwise: CoreDNS compares the lower-cased name with
  // the zone as asked, so neither is the apex / ns.dns name any more.
  a = zone.Resolve("CLUSTER.local", DnsType::kNs);
  EXPECT_EQ(a.rcode, DnsRcode::kNoError);
  EXPECT_TRUE(a.answer.empty());
  EXPECT_EQ(zone.Resolve("ns.dns.CLUSTER.local", DnsType::kA).rcode, DnsRcode::kNxDomain);
}

TEST(DnsZoneNsTest, NsWithoutEndpointIsNsDnsAtTheLocalAddress) {
  DnsZoneOptions o;
  o.local_ips = {Ip("10.96.0.10")};
  DnsZone zone(o);
  DnsAnswer a = zone.Resolve("cluster.local.", DnsType::kNs);
  EXPECT_EQ(a.answer,
            (Records{Named(DnsType::kNs, "cluster.local.", "ns.dns.cluster.local.", 30)}));
  EXPECT_EQ(a.additional, (Records{A("ns.dns.cluster.local.", "10.96.0.10", 30)}));
  EXPECT_EQ(zone.Resolve("ns.dns.cluster.local.", DnsType::kA).answer,
            (Records{A("ns.dns.cluster.local.", "10.96.0.10", 30)}));
}

TEST(DnsZoneSoaTest, KindDefaultsAndTtlCap) {
  uint32_t before = static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                              std::chrono::system_clock::now().time_since_epoch())
                                              .count());
  DnsZone zone;  // ttl 30, cluster.local
  zone.SetNamespace("default");
  DnsAnswer a = zone.Resolve("nope.default.svc.cluster.local.", DnsType::kA);
  ASSERT_EQ(a.rcode, DnsRcode::kNxDomain);
  ASSERT_EQ(a.authority.size(), 1u);
  const DnsRecord& soa = a.authority[0];
  EXPECT_EQ(soa.name, "cluster.local.");
  EXPECT_EQ(soa.type, DnsType::kSoa);
  EXPECT_EQ(soa.ttl, 30u);
  EXPECT_EQ(soa.soa.mname, "ns.dns.cluster.local.");
  EXPECT_EQ(soa.soa.rname, "hostmaster.cluster.local.");
  EXPECT_GE(soa.soa.serial, before);  // the Unix time of the last change
  EXPECT_LE(soa.soa.serial, before + 5);
  EXPECT_EQ(soa.soa.refresh, 7200u);
  EXPECT_EQ(soa.soa.retry, 1800u);
  EXPECT_EQ(soa.soa.expire, 86400u);
  EXPECT_EQ(soa.soa.minimum, 30u);

  DnsZoneOptions o;
  o.ttl = 600;
  o.domain = "Example.Test";
  DnsZone big(o);
  DnsAnswer b = big.Resolve("example.test.", DnsType::kSoa);
  ASSERT_EQ(b.answer.size(), 1u);
  EXPECT_EQ(b.answer[0].ttl, 300u);  // min(ttl, 300)
  EXPECT_EQ(b.answer[0].soa.minimum, 600u);
  EXPECT_EQ(big.Resolve("cluster.local.", DnsType::kA).source, DnsAnswer::Source::kForward);
}

// ---- ports, weights ----------------------------------------------------------------

TEST_F(DnsZoneTest, PortsAndWeights) {
  zone_.SetService(
      ClusterIp("testns", "multi", {"10.0.0.7"},
                {Port("http", "TCP", 80), Port("https", "TCP", 443), Port("", "UDP", 53)}));
  zone_.SetService(ClusterIp("testns", "noports", {"10.0.0.8"}, {}));
  // Endpoint ports are the slices' (target ports), not the Service's.
  zone_.SetService(Headless("testns", "web",
                            {Ep("10.1.0.1", "web-0", {Port("http", "TCP", 8080)}),
                             Ep("10.1.0.2", "web-1", {Port("http", "TCP", 8080)}),
                             Ep("10.1.0.3", "web-2", {Port("http", "TCP", 8080)})},
                            {Port("http", "TCP", 80)}));
  std::vector<DnsEndpoint> many;
  for (int i = 0; i < 150; i++) {
    many.push_back(
        Ep(("10.2." + std::to_string(i / 100) + "." + std::to_string(i % 100 + 1)).c_str()));
  }
  zone_.SetService(Headless("testns", "many", many));
  serial_ = zone_.Resolve("cluster.local.", DnsType::kSoa).answer.at(0).soa.serial;

  const char* m = "multi.testns.svc.cluster.local.";
  ExpectAnswer(m, DnsType::kSrv, {Srv(m, 33, 80, m), Srv(m, 33, 443, m), Srv(m, 33, 53, m)},
               {A(m, "10.0.0.7")});
  ExpectAnswer(std::string("_https._tcp.") + m, DnsType::kSrv,
               {Srv(std::string("_https._tcp.") + m, 100, 443, m)}, {A(m, "10.0.0.7")});
  ExpectAnswer(std::string("_._udp.") + m, DnsType::kSrv,  // "_": any port name
               {Srv(std::string("_._udp.") + m, 100, 53, m)}, {A(m, "10.0.0.7")});
  ExpectNxDomain(std::string("_http._udp.") + m, DnsType::kSrv);
  // Port and protocol labels also qualify A, with or without underscores.
  ExpectAnswer(std::string("HTTPS.tcp.") + m, DnsType::kA,
               {A(std::string("HTTPS.tcp.") + m, "10.0.0.7")});

  const char* np = "noports.testns.svc.cluster.local.";
  ExpectAnswer(np, DnsType::kA, {A(np, "10.0.0.8")});
  ExpectNoData(np, DnsType::kSrv);
  ExpectNxDomain(std::string("_http._tcp.") + np, DnsType::kSrv);
  // A headless Service's portless endpoint: A, no SRV.
  ExpectNoData("hdlsprtls.testns.svc.cluster.local.", DnsType::kSrv);

  const char* w = "web.testns.svc.cluster.local.";
  ExpectAnswer(w, DnsType::kSrv,
               {Srv(w, 33, 8080, "web-0.web.testns.svc.cluster.local."),
                Srv(w, 33, 8080, "web-1.web.testns.svc.cluster.local."),
                Srv(w, 33, 8080, "web-2.web.testns.svc.cluster.local.")},
               {A("web-0.web.testns.svc.cluster.local.", "10.1.0.1"),
                A("web-1.web.testns.svc.cluster.local.", "10.1.0.2"),
                A("web-2.web.testns.svc.cluster.local.", "10.1.0.3")});

  DnsAnswer big = zone_.Resolve("many.testns.svc.cluster.local.", DnsType::kSrv);
  ASSERT_EQ(big.answer.size(), 150u);
  EXPECT_EQ(big.answer[0].weight, 1);  // floor(100/150) = 0, raised to 1
  EXPECT_EQ(zone_.Resolve("many.testns.svc.cluster.local.", DnsType::kA).answer.size(), 150u);
}

TEST_F(DnsZoneTest, HeadlessWithoutEndpointsIsNxDomain) {
  zone_.SetService(Headless("testns", "empty", {}));
  ExpectNxDomain("empty.testns.svc.cluster.local.", DnsType::kA);
  ExpectNxDomain("empty.testns.svc.cluster.local.", DnsType::kAaaa);
}

// ---- outside, bookkeeping, concurrency -------------------------------------------

TEST_F(DnsZoneTest, NamesOutsideTheZonesAreForwarded) {
  ExpectForward("example.com.", DnsType::kA);
  ExpectForward("local.", DnsType::kA);
  ExpectForward("xcluster.local.", DnsType::kA);
  ExpectForward(".", DnsType::kNs);
  ExpectForward("", DnsType::kA);
  ExpectForward("arpa.", DnsType::kSoa);
}

TEST(DnsZoneBookkeepingTest, GenerationCountsChanges) {
  DnsZone zone;
  EXPECT_EQ(zone.generation(), 0u);
  zone.SetNamespace("a");
  zone.SetNamespace("a");
  EXPECT_EQ(zone.generation(), 1u);
  zone.SetService(ClusterIp("a", "s", {"10.96.0.5"}));
  zone.SetService(ClusterIp("a", "s", {"10.96.0.5"}));
  EXPECT_EQ(zone.generation(), 2u);
  EXPECT_EQ(zone.service_count(), 1u);
  zone.SetService(ClusterIp("a", "s", {"10.96.0.6"}));
  EXPECT_EQ(zone.generation(), 3u);
  zone.RemoveService("a", "nope");
  zone.RemoveNamespace("nope");
  EXPECT_EQ(zone.generation(), 3u);
  EXPECT_EQ(zone.Resolve("s.a.svc.cluster.local.", DnsType::kA).answer.size(), 1u);
  zone.RemoveNamespace("a");
  EXPECT_EQ(zone.Resolve("s.a.svc.cluster.local.", DnsType::kA).rcode, DnsRcode::kNxDomain);
  zone.RemoveService("a", "s");
  EXPECT_EQ(zone.generation(), 5u);
  EXPECT_EQ(zone.service_count(), 0u);
}

TEST(DnsZonePerfTest, TenThousandServicesWhileAWriterChangesThem) {
  DnsZone zone;
  zone.SetNamespace("ns");
  for (int i = 0; i < 10000; i++) {
    zone.SetService(ClusterIp("ns", "svc" + std::to_string(i),
                              {Ipv4Address(0x0a600000u + i).ToString().c_str()}));
  }
  std::atomic<bool> stop = false;
  std::thread writer([&] {
    for (int i = 0; !stop; i = (i + 1) % 10000) {
      zone.SetService(ClusterIp("ns", "svc" + std::to_string(i),
                                {Ipv4Address(0x0a600000u + i).ToString().c_str()},
                                {Port("http", "TCP", static_cast<uint16_t>(80 + i % 2))}));
    }
  });
  auto start = std::chrono::steady_clock::now();
  constexpr int kQueries = 100000;
  int answered = 0;
  for (int i = 0; i < kQueries; i++) {
    std::string q = "svc" + std::to_string(i % 10000) + ".ns.svc.cluster.local.";
    DnsAnswer a = zone.Resolve(q, DnsType::kA);
    answered += a.answer.size() == 1 && a.answer[0].ipv4.value() == 0x0a600000u + i % 10000;
  }
  auto elapsed = std::chrono::steady_clock::now() - start;
  stop = true;
  writer.join();
  EXPECT_EQ(answered, kQueries);
  // Generous (a shared, loaded machine): the hot path does ~1 µs a query.
  EXPECT_LT(elapsed, std::chrono::seconds(10));
}

}  // namespace
}  // namespace kin::netstack
