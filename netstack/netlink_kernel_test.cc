// Kernel tests (root): the netlink socket and sysctls on real namespaces.
// Every object carries the fixture's prefix or lives in a namespace that does.
#include "netstack/netlink.h"

#include <fstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/error.h"
#include "base/netns.h"
#include "base/process.h"
#include "netstack/sysctl.h"
#include "testing/kernel_fixture.h"

namespace kin::netstack {
namespace {

using ::testing::HasSubstr;
using testing::KernelTest;
using ::testing::Not;

// `ip ...` run inside a named namespace; the output must succeed.
std::string IpIn(const std::string& netns, std::vector<std::string> args) {
  std::vector<std::string> argv = {"ip", "netns", "exec", netns, "ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandResult r = RunCommand(argv, std::chrono::seconds(10));
  EXPECT_TRUE(r.status.success()) << r.err;
  return r.out;
}

std::optional<LinkInfo> Find(const std::vector<LinkInfo>& links, const std::string& name) {
  for (const auto& l : links) {
    if (l.name == name) return l;
  }
  return std::nullopt;
}

std::optional<RouteInfo> FindRoute(NetlinkSocket& sock, const std::string& dst) {
  for (const auto& r : sock.ListRoutes()) {
    if (r.dst.ToString() == dst) return r;
  }
  return std::nullopt;
}

Ipv4Cidr C(const char* s) { return Ipv4Cidr::Parse(s); }
Ipv4Address A(const char* s) { return Ipv4Address::Parse(s); }

Route R(const char* dst, const char* via, const std::string& dev, bool onlink = false) {
  Route r;
  if (dst != nullptr) r.dst = C(dst);
  if (via != nullptr) r.via = A(via);
  r.dev = dev;
  r.onlink = onlink;
  return r;
}

Code CodeOf(const std::function<void()>& f, std::string* message = nullptr) {
  try {
    f();
  } catch (const Error& e) {
    if (message != nullptr) *message = e.message();
    return e.code();
  }
  ADD_FAILURE() << "expected an error";
  return Code::kInternal;
}

class NetlinkKernelTest : public KernelTest {};

TEST_F(NetlinkKernelTest, VethPeerIsCreatedDirectlyInAnotherNamespace) {
  NamedNetns a = NamedNetns::Create(Name("-a"));
  NamedNetns b = NamedNetns::Create(Name("-b"));
  const unsigned long home = Netns::Current().inode();
  NetlinkSocket sa = NetlinkSocket::OpenIn(a.ns());
  EXPECT_EQ(Netns::Current().inode(), home);  // the caller's thread came back

  VethSpec v;
  v.name = "v0";
  v.peer_name = "eth0";
  v.peer_netns = &b.ns();
  v.mac = "02:00:00:00:00:01";
  v.peer_mac = "02:00:00:00:00:02";
  v.up = true;
  sa.CreateVeth(v);

  auto links_a = sa.ListLinks();
  auto v0 = Find(links_a, "v0");
  ASSERT_TRUE(v0);
  EXPECT_EQ(v0->kind, "veth");
  EXPECT_EQ(v0->mac, "02:00:00:00:00:01");
  EXPECT_TRUE(v0->up());
  EXPECT_FALSE(Find(links_a, "eth0"));
  EXPECT_EQ(sa.LinkIndex("v0"), v0->index);

  NetlinkSocket sb = NetlinkSocket::OpenIn(b.ns());
  sb.SetUp("eth0");
  auto eth0 = sb.FindLink("eth0");
  ASSERT_TRUE(eth0);
  EXPECT_EQ(eth0->kind, "veth");
  EXPECT_EQ(eth0->mac, "02:00:00:00:00:02");
  EXPECT_TRUE(eth0->up());
  EXPECT_THAT(IpIn(b.name(), {"-o", "link", "show", "eth0"}), HasSubstr("02:00:00:00:00:02"));
  EXPECT_THAT(IpIn(a.name(), {"-o", "link", "show", "v0"}), HasSubstr("v0@if"));

  // The socket acts on its namespace from whichever thread uses it.
  std::optional<int> seen;
  std::thread([&] { seen = sa.FindLinkIndex("v0"); }).join();
  EXPECT_EQ(seen, v0->index);

  std::string message;
  EXPECT_EQ(CodeOf([&] { sa.CreateVeth(v); }, &message), Code::kAlreadyExists);
  EXPECT_EQ(message, "create veth `v0` (peer `eth0`): File exists");

  sa.DeleteLink("v0");
  EXPECT_FALSE(sb.FindLink("eth0"));  // its peer went with it
  EXPECT_EQ(CodeOf([&] { sa.DeleteLink("v0"); }, &message), Code::kNotFound);
  EXPECT_THAT(message, HasSubstr("delete link `v0`: No such device"));
  EXPECT_EQ(CodeOf([&] { sa.LinkIndex("v0"); }, &message), Code::kNotFound);
  EXPECT_THAT(message, HasSubstr("look up link `v0`"));
}

TEST_F(NetlinkKernelTest, BridgePortWithHairpinMtuAndFlags) {
  NamedNetns ns = NamedNetns::Create(Name("-br"));
  NetlinkSocket s = NetlinkSocket::OpenIn(ns.ns());
  s.CreateBridge("br0");
  VethSpec v;
  v.name = "p0";
  v.peer_name = "p0peer";
  s.CreateVeth(v);
  s.SetMaster("p0", "br0");
  s.SetHairpin("p0");
  s.SetMtu("p0", 1400);
  s.SetUp("br0");

  auto links = s.ListLinks();
  auto br = Find(links, "br0");
  auto p0 = Find(links, "p0");
  ASSERT_TRUE(br && p0);
  EXPECT_EQ(br->kind, "bridge");
  EXPECT_TRUE(br->up());
  EXPECT_FALSE(br->hairpin);  // not a port
  EXPECT_EQ(p0->master, br->index);
  EXPECT_EQ(p0->master_name, "br0");
  EXPECT_EQ(p0->hairpin, true);
  EXPECT_EQ(p0->mtu, 1400);
  EXPECT_FALSE(p0->up());
  std::string detail = IpIn(ns.name(), {"-d", "-o", "link", "show", "p0"});
  EXPECT_THAT(detail, HasSubstr("master br0"));
  EXPECT_THAT(detail, HasSubstr("hairpin on"));
  EXPECT_THAT(detail, HasSubstr("mtu 1400"));

  s.SetHairpin("p0", false);
  EXPECT_EQ(s.FindLink("p0")->hairpin, false);
  EXPECT_THAT(IpIn(ns.name(), {"-d", "-o", "link", "show", "p0"}), HasSubstr("hairpin off"));
  s.SetUp("br0", false);
  EXPECT_FALSE(s.FindLink("br0")->up());
  s.SetMaster("p0", "");
  EXPECT_EQ(s.FindLink("p0")->master, 0);
  EXPECT_THAT(IpIn(ns.name(), {"-o", "link", "show", "p0"}), Not(HasSubstr("master")));

  std::string message;
  EXPECT_EQ(CodeOf([&] { s.SetMaster("p0", "nobridge"); }, &message), Code::kNotFound);
  EXPECT_THAT(message, HasSubstr("attach `p0` to bridge `nobridge`"));
  EXPECT_THAT(message, HasSubstr("no link named `nobridge`"));
}

TEST_F(NetlinkKernelTest, AddressesAndRoutesAreVisibleToNetlinkAndIp) {
  NamedNetns ns = NamedNetns::Create(Name("-rt"));
  NetlinkSocket s = NetlinkSocket::OpenIn(ns.ns());
  VethSpec v;
  v.name = "v2";
  v.peer_name = "v2peer";
  v.up = true;
  s.CreateVeth(v);
  s.SetUp("v2peer");  // a carrier, so the prefix routes are usable
  s.AddAddress("v2", C("10.1.0.1/24"));
  s.AddAddress("v2", C("10.1.0.9/24"));

  auto addrs = s.ListAddresses();
  int found = 0;
  for (const auto& a : addrs) {
    if (a.dev == "v2" && (a.address == C("10.1.0.1/24") || a.address == C("10.1.0.9/24"))) found++;
  }
  EXPECT_EQ(found, 2);
  std::string ip_addr = IpIn(ns.name(), {"-o", "-4", "addr", "show", "dev", "v2"});
  EXPECT_THAT(ip_addr, HasSubstr("inet 10.1.0.1/24 brd 10.1.0.255"));
  EXPECT_THAT(ip_addr, HasSubstr("inet 10.1.0.9/24"));

  s.AddRoute(R("10.2.0.0/16", "10.1.0.2", "v2"));
  s.AddRoute(R(nullptr, "10.1.0.254", "v2"));
  s.AddRoute(R("10.3.0.0/24", "192.168.77.1", "v2", /*onlink=*/true));
  s.AddRoute(R("10.4.0.0/24", nullptr, "v2"));

  auto r2 = FindRoute(s, "10.2.0.0/16");
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->via, A("10.1.0.2"));
  EXPECT_EQ(r2->dev, "v2");
  EXPECT_FALSE(r2->scope_link);
  auto def = FindRoute(s, "0.0.0.0/0");
  ASSERT_TRUE(def);
  EXPECT_EQ(def->ToString(), "default via 10.1.0.254 dev v2");
  auto r3 = FindRoute(s, "10.3.0.0/24");
  ASSERT_TRUE(r3);
  EXPECT_TRUE(r3->onlink);
  EXPECT_EQ(r3->ToString(), "10.3.0.0/24 via 192.168.77.1 dev v2 onlink");
  auto r4 = FindRoute(s, "10.4.0.0/24");
  ASSERT_TRUE(r4);
  EXPECT_TRUE(r4->scope_link);
  EXPECT_FALSE(r4->via);

  std::string ip_route = IpIn(ns.name(), {"route"});
  EXPECT_THAT(ip_route, HasSubstr("default via 10.1.0.254 dev v2"));
  EXPECT_THAT(ip_route, HasSubstr("10.2.0.0/16 via 10.1.0.2 dev v2"));
  EXPECT_THAT(ip_route, HasSubstr("10.3.0.0/24 via 192.168.77.1 dev v2 proto static onlink"));
  EXPECT_THAT(ip_route, HasSubstr("10.4.0.0/24 dev v2 proto static scope link"));

  std::string message;
  EXPECT_EQ(CodeOf([&] { s.AddRoute(R("10.2.0.0/16", "10.1.0.2", "v2")); }, &message),
            Code::kAlreadyExists);
  EXPECT_EQ(message, "add route 10.2.0.0/16 via 10.1.0.2 dev v2: File exists");
  s.ReplaceRoute(R("10.2.0.0/16", "10.1.0.3", "v2"));
  int count = 0;
  for (const auto& r : s.ListRoutes()) count += r.dst == C("10.2.0.0/16");
  EXPECT_EQ(count, 1);
  EXPECT_EQ(FindRoute(s, "10.2.0.0/16")->via, A("10.1.0.3"));

  // An off-link gateway needs onlink; the kernel's reason is kept.
  EXPECT_EQ(CodeOf([&] { s.AddRoute(R("10.5.0.0/24", "192.168.77.1", "v2")); }, &message),
            Code::kInvalid);
  EXPECT_EQ(message,
            "add route 10.5.0.0/24 via 192.168.77.1 dev v2: Network is unreachable (Nexthop has "
            "invalid gateway)");
  EXPECT_THAT(message, HasSubstr("add route 10.5.0.0/24 via 192.168.77.1 dev v2: "));
  EXPECT_THAT(message, HasSubstr("(Nexthop has invalid gateway)"));

  s.DeleteRoute(R("10.2.0.0/16", nullptr, ""));
  EXPECT_FALSE(FindRoute(s, "10.2.0.0/16"));
  EXPECT_EQ(CodeOf([&] { s.DeleteRoute(R("10.2.0.0/16", nullptr, "")); }), Code::kNotFound);
  EXPECT_THAT(IpIn(ns.name(), {"route"}), Not(HasSubstr("10.2.0.0/16")));

  s.DeleteAddress("v2", C("10.1.0.9/24"));
  EXPECT_THAT(IpIn(ns.name(), {"-o", "-4", "addr"}), Not(HasSubstr("10.1.0.9")));
  EXPECT_EQ(CodeOf([&] { s.DeleteAddress("v2", C("10.1.0.9/24")); }), Code::kNotFound);
  EXPECT_EQ(CodeOf([&] { s.AddAddress("nope", C("10.1.0.7/24")); }, &message), Code::kNotFound);
  EXPECT_THAT(message, HasSubstr("add address 10.1.0.7/24 to `nope`"));
}

TEST_F(NetlinkKernelTest, BatchUsesLinksCreatedEarlierInIt) {
  NamedNetns ns = NamedNetns::Create(Name("-bt"));
  NetlinkSocket s = NetlinkSocket::OpenIn(ns.ns());
  VethSpec v;
  v.name = "x0";
  v.peer_name = "x0peer";
  v.master = "br9";  // made by the request before it
  v.up = true;
  NetlinkBatch(s)
      .CreateBridge("br9")
      .CreateVeth(v)
      .SetUp("x0peer")
      .SetHairpin("x0")
      .SetUp("br9")
      .AddAddress("br9", C("10.9.0.1/24"))
      .AddRoute(R("10.10.0.0/16", "10.9.0.2", "br9"))
      .Commit();
  auto x0 = s.FindLink("x0");
  ASSERT_TRUE(x0);
  EXPECT_EQ(x0->master_name, "br9");
  EXPECT_EQ(x0->hairpin, true);
  EXPECT_TRUE(x0->up());
  EXPECT_EQ(FindRoute(s, "10.10.0.0/16")->via, A("10.9.0.2"));

  // A failure names its request; `done` says exactly what was carried out.
  std::vector<bool> done;
  NetlinkBatch bad(s);
  bad.CreateBridge("ok1").CreateBridge("ok1").CreateBridge("ok2");
  std::string message;
  EXPECT_EQ(CodeOf([&] { bad.Commit(&done); }, &message), Code::kAlreadyExists);
  EXPECT_EQ(message, "create bridge `ok1`: File exists");
  ASSERT_EQ(done.size(), 3u);
  EXPECT_TRUE(done[0]);
  EXPECT_FALSE(done[1]);
  EXPECT_EQ(done[2], s.FindLinkIndex("ok2").has_value());
}

TEST_F(NetlinkKernelTest, ManyRequestsInOneBatch) {
  // More requests than the batch keeps in flight, so it drains on the way.
  NamedNetns ns = NamedNetns::Create(Name("-many"));
  NetlinkSocket s = NetlinkSocket::OpenIn(ns.ns());
  NetlinkBatch batch(s);
  batch.CreateBridge("b0");
  for (int i = 0; i < 200; i++) {
    batch.AddAddress("b0", Ipv4Cidr(Ipv4Address(0x0a320000u + static_cast<uint32_t>(i)), 32));
  }
  batch.SetMtu("b0", 1300);
  EXPECT_EQ(batch.size(), 202u);
  batch.Commit();
  EXPECT_EQ(batch.size(), 0u);
  int on_b0 = 0;
  for (const auto& a : s.ListAddresses()) on_b0 += a.dev == "b0";
  EXPECT_EQ(on_b0, 200);
  EXPECT_EQ(s.FindLink("b0")->mtu, 1300);
}

TEST_F(NetlinkKernelTest, SysctlsAreWrittenInsideTheNamespaceOnly) {
  NamedNetns ns = NamedNetns::Create(Name("-sys"));
  auto host_value = [] {
    std::ifstream in("/proc/sys/net/ipv4/ip_forward");
    std::string v;
    in >> v;
    return v;
  };
  const std::string host_before = host_value();
  const std::string other = host_before == "1" ? "0" : "1";
  WriteSysctl(ns.ns(), "net.ipv4.ip_forward", other);
  EXPECT_EQ(ReadSysctl(ns.ns(), "net.ipv4.ip_forward"), other);
  EXPECT_EQ(host_value(), host_before);
  CommandResult r =
      RunCommand({"ip", "netns", "exec", ns.name(), "cat", "/proc/sys/net/ipv4/ip_forward"});
  EXPECT_EQ(r.out, other + "\n");

  NetlinkSocket s = NetlinkSocket::OpenIn(ns.ns());
  s.CreateBridge("cbr0");
  WriteSysctls(ns.ns(), {{"net.bridge.bridge-nf-call-iptables", "1"},
                         {"net.ipv4.conf.cbr0.proxy_arp", "1"},
                         {"net.ipv4.conf.all.route_localnet", "1"}});
  EXPECT_EQ(ReadSysctl(ns.ns(), "net.bridge.bridge-nf-call-iptables"), "1");
  EXPECT_EQ(ReadSysctl(ns.ns(), "net.ipv4.conf.cbr0.proxy_arp"), "1");
  EXPECT_EQ(ReadSysctl(ns.ns(), "net/ipv4/conf/all/route_localnet"), "1");

  std::string message;
  EXPECT_EQ(CodeOf([&] { WriteSysctl(ns.ns(), "net.ipv4.nope", "1", ns.name()); }, &message),
            Code::kNotFound);
  EXPECT_EQ(message,
            "set sysctl net.ipv4.nope=1 in netns `" + ns.name() + "`: No such file or directory");
  EXPECT_EQ(CodeOf([&] { WriteSysctl(ns.ns(), "kernel.hostname", "x"); }), Code::kInvalid);
}

}  // namespace
}  // namespace kin::netstack
