// Kernel tests (root): the cluster DNS server on real sockets inside a
// network namespace the test makes, asked over UDP and TCP as a pod's
// resolver asks it, with an upstream resolver (a socket the test answers
// from) in the same namespace. Answers are read with libldns, apart from
// kin's own wire code. Nothing leaves the namespace.
// Before ldns: without it, ldns/common.h defines bool, true and false as
// macros, which breaks standard headers included after it.
#include <stdbool.h>  // NOLINT(modernize-deprecated-headers)

#include <ldns/ldns.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <set>
#include <thread>

#include "base/error.h"
#include "base/netns.h"
#include "netstack/dns_server.h"
#include "netstack/external_server.h"
#include "netstack/netlink.h"
#include "testing/kernel_fixture.h"
#include "testing/net_probe.h"

namespace kin::netstack {
namespace {

using testing::Eventually;
using ::testing::HasSubstr;
using testing::KernelTest;

using PktPtr = std::unique_ptr<ldns_pkt, decltype(&ldns_pkt_free)>;

std::string Query(const std::string& name, ldns_rr_type type, bool edns = false,
                  uint16_t id = 4242) {
  ldns_rdf* dname = ldns_dname_new_frm_str(name.c_str());
  PktPtr q(ldns_pkt_query_new(dname, type, LDNS_RR_CLASS_IN, LDNS_RD), ldns_pkt_free);
  ldns_pkt_set_id(q.get(), id);
  if (edns) {
    ldns_pkt_set_edns_udp_size(q.get(), 4096);
    ldns_pkt_set_edns_data(q.get(), nullptr);
  }
  uint8_t* wire = nullptr;
  size_t size = 0;
  EXPECT_EQ(ldns_pkt2wire(&wire, q.get(), &size), LDNS_STATUS_OK);
  std::string out(reinterpret_cast<char*>(wire), size);
  free(wire);
  return out;
}

PktPtr Parse(const std::string& wire) {
  ldns_pkt* p = nullptr;
  if (ldns_wire2pkt(&p, reinterpret_cast<const uint8_t*>(wire.data()), wire.size()) !=
      LDNS_STATUS_OK) {
    return PktPtr(nullptr, ldns_pkt_free);
  }
  return PktPtr(p, ldns_pkt_free);
}

// The A records' addresses of the answer section, in order.
std::vector<std::string> Addresses(const ldns_pkt* p) {
  std::vector<std::string> out;
  ldns_rr_list* an = ldns_pkt_answer(p);
  for (size_t i = 0; i < ldns_rr_list_rr_count(an); ++i) {
    ldns_rr* rr = ldns_rr_list_rr(an, i);
    if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_A) continue;
    char* s = ldns_rdf2str(ldns_rr_rdf(rr, 0));
    out.emplace_back(s);
    free(s);
  }
  return out;
}

std::string AskTcp(const std::string& netns, uint16_t port, const std::string& msg) {
  return testing::DnsTcpAskIn(netns, "127.0.0.1", port, msg).body;
}

// An upstream resolver the test controls: a UDP socket in the namespace
// that answers every question with one A record (or stays silent), and
// counts what it was asked.
class FakeUpstream {
 public:
  FakeUpstream(const std::string& netns, bool silent) : silent_(silent) {
    RunInNetns(Netns::Open(netns), [&] {
      fd_.reset(
          static_cast<int>(CheckSys(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), "socket")));
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      CheckSys(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), "bind");
      socklen_t len = sizeof a;
      ::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&a), &len);
      port_ = ntohs(a.sin_port);
    });
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeUpstream() {
    stop_ = true;
    thread_.join();
  }
  uint16_t port() const { return port_; }
  int asked() const { return asked_.load(); }

 private:
  void Serve() {
    while (!stop_) {
      pollfd p{fd_.get(), POLLIN, 0};
      if (::poll(&p, 1, 50) != 1) continue;
      uint8_t buf[4096];
      sockaddr_in from{};
      socklen_t len = sizeof from;
      ssize_t n =
          ::recvfrom(fd_.get(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n <= 0) continue;
      ++asked_;
      if (silent_) continue;
      ldns_pkt* q = nullptr;
      if (ldns_wire2pkt(&q, buf, static_cast<size_t>(n)) != LDNS_STATUS_OK) continue;
      PktPtr query(q, ldns_pkt_free);
      ldns_rr* question = ldns_rr_list_rr(ldns_pkt_question(q), 0);
      PktPtr answer(ldns_pkt_new(), ldns_pkt_free);
      ldns_pkt_set_id(answer.get(), ldns_pkt_id(q));
      ldns_pkt_set_qr(answer.get(), true);
      ldns_pkt_set_rd(answer.get(), true);
      ldns_pkt_set_ra(answer.get(), true);
      ldns_pkt_push_rr(answer.get(), LDNS_SECTION_QUESTION, ldns_rr_clone(question));
      char* owner = ldns_rdf2str(ldns_rr_owner(question));
      ldns_rr* rr = nullptr;
      ldns_rr_new_frm_str(&rr, (std::string(owner) + " 300 IN A 203.0.113.7").c_str(), 0, nullptr,
                          nullptr);
      free(owner);
      ldns_pkt_push_rr(answer.get(), LDNS_SECTION_ANSWER, rr);
      uint8_t* wire = nullptr;
      size_t size = 0;
      ldns_pkt2wire(&wire, answer.get(), &size);
      ::sendto(fd_.get(), wire, size, 0, reinterpret_cast<sockaddr*>(&from), len);
      free(wire);
    }
  }
  bool silent_;
  UniqueFd fd_;
  uint16_t port_ = 0;
  std::atomic<int> asked_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

class DnsServerKernelTest : public KernelTest {
 protected:
  void SetUp() override {
    KernelTest::SetUp();
    if (IsSkipped()) return;
    netns_.emplace(NamedNetns::Create(Name("-dns", 40)));
    NetlinkSocket::OpenIn(netns_->ns()).SetUp("lo");
    DnsService web;
    web.ns = "default";
    web.name = "web";
    web.cluster_ips = {Ipv4Address::Parse("10.96.0.20")};
    web.ports = {{"http", "TCP", 80}};
    zone_.SetNamespace("default");
    zone_.SetService(web);
    DnsService many;
    many.ns = "default";
    many.name = "many";
    many.kind = DnsService::Kind::kHeadless;
    for (int i = 0; i < 100; ++i) {
      many.endpoints.push_back({Ipv4Address(Ipv4Address::Parse("10.244.1.0").value() + 1 + i), ""});
    }
    zone_.SetService(many);
  }
  void TearDown() override {
    server_.reset();
    netns_.reset();
    KernelTest::TearDown();
  }
  DnsServer& Serve(std::vector<DnsUpstream> upstreams = {},
                   std::chrono::milliseconds timeout = std::chrono::milliseconds(2000)) {
    DnsServerOptions o;
    o.netns = ns();
    o.dns_port = 0;
    o.health_port = 0;
    o.ready_port = 0;
    o.metrics_port = 0;
    o.upstreams = std::move(upstreams);
    o.forward_timeout = timeout;
    o.attempt_timeout = timeout / 2;
    o.name = "test";
    server_ = std::make_unique<DnsServer>(o, zone_, cache_);
    server_->Start();
    return *server_;
  }
  testing::ProbeResult AskUdp(const std::string& msg,
                              std::chrono::milliseconds timeout = std::chrono::seconds(3)) {
    return testing::UdpAskIn(ns(), "127.0.0.1", server_->ports().dns, msg, timeout);
  }
  DnsUpstream Upstream(uint16_t port) {
    DnsUpstream u;
    u.address = Ipv4Address::Parse("127.0.0.1");
    u.port = port;
    return u;
  }

  std::optional<NamedNetns> netns_;
  const std::string& ns() const { return netns_->name(); }
  DnsZone zone_;
  DnsCache cache_;
  std::unique_ptr<DnsServer> server_;
};

TEST_F(DnsServerKernelTest, AnswersAServiceOverUdpAndTcp) {
  Serve();
  auto udp = AskUdp(Query("web.default.svc.cluster.local.", LDNS_RR_TYPE_A));
  ASSERT_TRUE(udp.ok()) << udp.error;
  PktPtr a = Parse(udp.body);
  ASSERT_TRUE(a);
  EXPECT_EQ(ldns_pkt_id(a.get()), 4242);
  EXPECT_TRUE(ldns_pkt_qr(a.get()));
  EXPECT_TRUE(ldns_pkt_aa(a.get()));
  EXPECT_EQ(ldns_pkt_get_rcode(a.get()), LDNS_RCODE_NOERROR);
  EXPECT_EQ(Addresses(a.get()), std::vector<std::string>{"10.96.0.20"});

  PktPtr t = Parse(
      AskTcp(ns(), server_->ports().dns, Query("web.default.svc.cluster.local.", LDNS_RR_TYPE_A)));
  ASSERT_TRUE(t);
  EXPECT_EQ(Addresses(t.get()), std::vector<std::string>{"10.96.0.20"});

  PktPtr nx = Parse(AskUdp(Query("nope.default.svc.cluster.local.", LDNS_RR_TYPE_A)).body);
  ASSERT_TRUE(nx);
  EXPECT_EQ(ldns_pkt_get_rcode(nx.get()), LDNS_RCODE_NXDOMAIN);
}

TEST_F(DnsServerKernelTest, ChangesToTheZoneAreAnsweredAtOnce) {
  Serve();
  DnsService web;
  web.ns = "default";
  web.name = "web";
  web.cluster_ips = {Ipv4Address::Parse("10.96.0.99")};
  zone_.SetService(web);
  PktPtr a = Parse(AskUdp(Query("web.default.svc.cluster.local.", LDNS_RR_TYPE_A)).body);
  ASSERT_TRUE(a);
  EXPECT_EQ(Addresses(a.get()), std::vector<std::string>{"10.96.0.99"});
}

TEST_F(DnsServerKernelTest, ALargeAnswerIsTruncatedOverUdpAndWholeOverTcp) {
  Serve();
  PktPtr udp = Parse(AskUdp(Query("many.default.svc.cluster.local.", LDNS_RR_TYPE_A)).body);
  ASSERT_TRUE(udp);
  EXPECT_TRUE(ldns_pkt_tc(udp.get()));
  EXPECT_LT(Addresses(udp.get()).size(), 100u);

  PktPtr tcp = Parse(
      AskTcp(ns(), server_->ports().dns, Query("many.default.svc.cluster.local.", LDNS_RR_TYPE_A)));
  ASSERT_TRUE(tcp);
  EXPECT_FALSE(ldns_pkt_tc(tcp.get()));
  EXPECT_EQ(Addresses(tcp.get()).size(), 100u);
}

TEST_F(DnsServerKernelTest, RotatesTheRecordsOfAnAnswer) {
  Serve();
  std::set<std::string> firsts;
  for (int i = 0; i < 5; ++i) {
    PktPtr p = Parse(AskTcp(ns(), server_->ports().dns,
                            Query("many.default.svc.cluster.local.", LDNS_RR_TYPE_A)));
    ASSERT_TRUE(p);
    auto addrs = Addresses(p.get());
    ASSERT_EQ(addrs.size(), 100u);
    firsts.insert(addrs[0]);
  }
  EXPECT_EQ(firsts.size(), 5u);
}

TEST_F(DnsServerKernelTest, ForwardsOtherNamesAndCachesTheAnswer) {
  FakeUpstream upstream(ns(), false);
  Serve({Upstream(upstream.port())});
  PktPtr a = Parse(AskUdp(Query("www.example.com.", LDNS_RR_TYPE_A, false, 7)).body);
  ASSERT_TRUE(a);
  EXPECT_EQ(ldns_pkt_id(a.get()), 7);
  EXPECT_EQ(Addresses(a.get()), std::vector<std::string>{"203.0.113.7"});
  EXPECT_EQ(upstream.asked(), 1);
  // The second time from the cache: the upstream is not asked again, the
  // TTL is capped at 30 s.
  PktPtr b = Parse(AskUdp(Query("www.example.com.", LDNS_RR_TYPE_A, false, 8)).body);
  ASSERT_TRUE(b);
  EXPECT_EQ(ldns_pkt_id(b.get()), 8);
  EXPECT_EQ(Addresses(b.get()), std::vector<std::string>{"203.0.113.7"});
  EXPECT_EQ(upstream.asked(), 1);
  EXPECT_LE(ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_answer(b.get()), 0)), 300u);
  EXPECT_THAT(server_->RenderMetrics(),
              HasSubstr("coredns_cache_hits_total{server=\"dns://:0\"} 1"));
}

TEST_F(DnsServerKernelTest, ASilentUpstreamGivesServfailWithinTheTimeout) {
  FakeUpstream upstream(ns(), true);
  Serve({Upstream(upstream.port())}, std::chrono::milliseconds(500));
  auto r = AskUdp(Query("www.example.com.", LDNS_RR_TYPE_A), std::chrono::seconds(3));
  ASSERT_TRUE(r.ok()) << r.error;
  PktPtr a = Parse(r.body);
  ASSERT_TRUE(a);
  EXPECT_EQ(ldns_pkt_get_rcode(a.get()), LDNS_RCODE_SERVFAIL);
  EXPECT_GE(r.took, std::chrono::milliseconds(400));
  EXPECT_LT(r.took, std::chrono::milliseconds(1500));
  EXPECT_GE(upstream.asked(), 1);
}

TEST_F(DnsServerKernelTest, WithoutUpstreamsOtherNamesAreServfailAtOnce) {
  Serve();
  auto r = AskUdp(Query("www.example.com.", LDNS_RR_TYPE_A));
  ASSERT_TRUE(r.ok());
  PktPtr a = Parse(r.body);
  ASSERT_TRUE(a);
  EXPECT_EQ(ldns_pkt_get_rcode(a.get()), LDNS_RCODE_SERVFAIL);
}

TEST_F(DnsServerKernelTest, AMalformedQueryGetsFormerrAndAShortOneNothing) {
  Serve();
  std::string q = Query("web.default.svc.cluster.local.", LDNS_RR_TYPE_A);
  auto r = AskUdp(q.substr(0, 12) + "\x05garbage");
  ASSERT_TRUE(r.ok());
  PktPtr a = Parse(r.body);
  ASSERT_TRUE(a);
  EXPECT_EQ(ldns_pkt_get_rcode(a.get()), LDNS_RCODE_FORMERR);
  auto none = AskUdp("abc", std::chrono::milliseconds(300));
  EXPECT_FALSE(none.ok());
  // The server still answers.
  EXPECT_TRUE(AskUdp(q).ok());
}

TEST_F(DnsServerKernelTest, HealthReadyAndMetricsAnswerOverHttp) {
  Serve();
  AskUdp(Query("web.default.svc.cluster.local.", LDNS_RR_TYPE_A));
  auto health = testing::HttpGetIn(ns(), "127.0.0.1", server_->ports().health, "/health");
  ASSERT_TRUE(health.ok()) << health.error;
  EXPECT_EQ(health.body, "OK");
  auto ready = testing::HttpGetIn(ns(), "127.0.0.1", server_->ports().ready, "/ready");
  ASSERT_TRUE(ready.ok());
  EXPECT_EQ(ready.body, "OK");
  auto metrics = testing::HttpGetIn(ns(), "127.0.0.1", server_->ports().metrics, "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(metrics.body, HasSubstr("coredns_dns_requests_total{family=\"1\",proto=\"udp\","
                                      "server=\"dns://:0\",type=\"A\",zone=\".\"} 1"));
  EXPECT_THAT(metrics.body, HasSubstr("rcode=\"NOERROR\""));
  EXPECT_THAT(metrics.body, HasSubstr("coredns_dns_request_duration_seconds_count"));
}

TEST_F(DnsServerKernelTest, StopClosesEverySocket) {
  Serve();
  uint16_t port = server_->ports().dns;
  server_->Stop();
  auto r = testing::TcpConnectIn(ns(), "127.0.0.1", port, std::chrono::milliseconds(500));
  EXPECT_EQ(r.error, ECONNREFUSED);
}

// The internet namespace's resolver (netstack/external_server.h), which
// the cluster DNS forwards to in the e2e tests.
TEST_F(DnsServerKernelTest, TheInternetsResolverAnswersExampleNames) {
  ExternalServer ext(ExternalServerOptions{
      .netns = ns(), .address = "127.0.0.1", .http_port = 0, .udp_port = 0, .dns_port = 0});
  ext.Start();
  auto ask = [&](const std::string& name, ldns_rr_type type) {
    return Parse(testing::UdpAskIn(ns(), "127.0.0.1", ext.dns_port(), Query(name, type)).body);
  };
  PktPtr a = ask("www.Example.com.", LDNS_RR_TYPE_A);
  ASSERT_TRUE(a);
  EXPECT_EQ(Addresses(a.get()), std::vector<std::string>{"127.0.0.1"});
  PktPtr aaaa = ask("example.", LDNS_RR_TYPE_AAAA);
  ASSERT_TRUE(aaaa);
  EXPECT_EQ(ldns_pkt_get_rcode(aaaa.get()), LDNS_RCODE_NOERROR);
  EXPECT_EQ(ldns_pkt_ancount(aaaa.get()), 0);
  PktPtr nx = ask("notexample.com.", LDNS_RR_TYPE_A);
  ASSERT_TRUE(nx);
  EXPECT_EQ(ldns_pkt_get_rcode(nx.get()), LDNS_RCODE_NXDOMAIN);
  ext.Stop();
}

TEST_F(DnsServerKernelTest, ANamespaceThatIsMissingIsAClearError) {
  DnsServerOptions o;
  o.netns = prefix() + "-missing";
  DnsServer s(o, zone_, cache_);
  try {
    s.Start();
    FAIL() << "started";
  } catch (const Error& e) {
    EXPECT_THAT(e.message(), HasSubstr(prefix() + "-missing"));
  }
}

}  // namespace
}  // namespace kin::netstack
