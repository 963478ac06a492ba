// Netlink route sockets: links, addresses and routes without spawning `ip`.
//
// NetlinkSocket owns one libnl3 NETLINK_ROUTE socket (never copyable). A
// netlink socket stays bound to the network namespace it was created in, so
// OpenIn(ns) opens it on the calling thread while it has entered `ns`
// (NetnsEnter) and every later call, from any thread, acts on `ns`.
//
// Every mutation is one netlink request. NetlinkBatch queues requests and
// sends them without waiting for each answer (the kernel handles them in
// order), then collects the acknowledgements: a node's whole configuration
// costs a handful of round trips. Devices are named by name; where the kernel
// wants an index (a master, an address, a route's device) the batch resolves
// the name when the request is sent, after the requests before it have been
// acknowledged, so a batch may create a bridge and attach a port to it.
//
// Errors: every failure is a kin::Error made by NetlinkError(), the one place
// that turns a netlink error into an error with context, e.g.
// "create veth `kt1a2b3-v0` (peer `eth0`): File exists". EEXIST maps to AlreadyExists;
// ENODEV, ENOENT, ESRCH and EADDRNOTAVAIL (nothing by that name) to NotFound;
// EINVAL, ERANGE, EOPNOTSUPP and ENETUNREACH (a request the kernel cannot
// carry out as asked) to Invalid; EPERM/EACCES to Forbidden; else Internal.
// The kernel's extended-ack text, when it sends one, is appended.
//
// Thread-safety: a NetlinkSocket (and a batch on it) is thread-compatible:
// use it from one thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/netns.h"
#include "netstack/ipam.h"

struct nl_sock;
struct nl_msg;
struct nlmsghdr;

namespace kin::netstack {

// The one place that turns a netlink (kernel) errno into a kin::Error:
// "context: strerror(err)" plus " (detail)" when the kernel explained itself.
Error NetlinkError(int err, std::string_view context, std::string_view detail = {});

// A veth pair. The peer is created directly in `peer_netns` when it is set
// (IFLA_NET_NS_FD on the peer: much cheaper than creating it here and moving
// it), under the name `peer_name` there.
struct VethSpec {
  std::string name;
  std::string peer_name;
  // nullptr: the peer stays in this namespace. Must stay open until the
  // request is sent (Commit).
  const Netns* peer_netns = nullptr;
  std::string mac;  // "02:..:.." or empty for a random one
  std::string peer_mac;
  int mtu = 0;         // 0: the kernel's default (1500)
  std::string master;  // a bridge to attach this end to, at creation
  // This end up at creation. (The peer cannot be: the kernel brings it up
  // before the pair is joined and refuses with ENOTCONN; set it up with a
  // socket in its namespace.)
  bool up = false;
};

struct LinkInfo {
  std::string name;
  int index = 0;
  std::string kind;  // "veth", "bridge", ... or empty (lo)
  int master = 0;    // index of the bridge this link is a port of, 0 if none
  std::string master_name;
  unsigned flags = 0;  // IFF_*
  int mtu = 0;
  std::string mac;
  std::optional<bool> hairpin;  // set for bridge ports only
  bool up() const;
};

struct AddressInfo {
  std::string dev;
  int index = 0;
  Ipv4Cidr address;  // e.g. 10.244.1.1/24 (host bits kept)
};

struct Route {
  std::optional<Ipv4Cidr> dst;  // nullopt or 0.0.0.0/0: the default route
  std::optional<Ipv4Address> via;
  std::string dev;                 // may be empty when `via` decides
  bool scope_link = false;         // forced scope link; a route without `via` has it anyway
  bool onlink = false;             // the gateway is on the link even if no prefix says so
  std::optional<Ipv4Address> src;  // preferred source
  // Equal-cost multipath: when not empty, the route's next hops (all on
  // `dev`, weight 1 each) instead of `via` (RTA_MULTIPATH).
  std::vector<Ipv4Address> nexthops;
  // "10.244.1.0/24 via 172.18.0.2 dev underlay", in the spirit of `ip route`;
  // multipath: "198.51.100.1/32 dev underlay nexthop via 172.18.0.2 nexthop via ...".
  std::string ToString() const;
};

struct RouteInfo {
  Ipv4Cidr dst;  // 0.0.0.0/0 for the default route
  std::optional<Ipv4Address> via;
  std::string dev;
  int oif = 0;
  bool scope_link = false;
  bool onlink = false;
  int protocol = 0;  // RTPROT_*
  std::optional<Ipv4Address> src;
  std::vector<Ipv4Address> nexthops;  // a multipath route's gateways, in the kernel's order
  // "10.244.1.0/24 via 172.18.0.2 dev underlay", in the spirit of `ip route`.
  std::string ToString() const;
};

class NetlinkBatch;

class NetlinkSocket {
 public:
  // A socket in the calling thread's network namespace.
  static NetlinkSocket Open();
  // A socket bound to `ns`, opened on this thread while it has entered `ns`.
  static NetlinkSocket OpenIn(const Netns& ns);

  NetlinkSocket(NetlinkSocket&& o) noexcept;
  NetlinkSocket& operator=(NetlinkSocket&& o) noexcept;
  NetlinkSocket(const NetlinkSocket&) = delete;
  NetlinkSocket& operator=(const NetlinkSocket&) = delete;
  ~NetlinkSocket();

  // Single requests (each a batch of one).
  void CreateVeth(const VethSpec& spec);
  // `mac` set: the bridge keeps it (else it takes its lowest port's MAC,
  // which changes as ports come and go).
  void CreateBridge(const std::string& name, int mtu = 0, const std::string& mac = "");
  void SetMaster(const std::string& dev, const std::string& master);  // "" detaches
  void SetUp(const std::string& dev, bool up = true);
  void SetMtu(const std::string& dev, int mtu);
  void SetHairpin(const std::string& bridge_port, bool on = true);
  void DeleteLink(const std::string& name);  // NotFound when missing
  void AddAddress(const std::string& dev, const Ipv4Cidr& address);
  void DeleteAddress(const std::string& dev, const Ipv4Cidr& address);
  void AddRoute(const Route& route);      // AlreadyExists when present
  void ReplaceRoute(const Route& route);  // adds or replaces
  void DeleteRoute(const Route& route);   // NotFound when missing
  // `ip neigh del ADDRESS dev DEV`; NotFound when there is no entry.
  void DeleteNeighbor(const std::string& dev, const Ipv4Address& address);

  // Queries (one round trip each).
  int LinkIndex(const std::string& name);  // NotFound when missing
  std::optional<int> FindLinkIndex(const std::string& name);
  std::vector<LinkInfo> ListLinks();
  std::optional<LinkInfo> FindLink(const std::string& name);
  std::vector<AddressInfo> ListAddresses();  // IPv4
  std::vector<RouteInfo> ListRoutes();       // IPv4, main table

 private:
  friend class NetlinkBatch;
  explicit NetlinkSocket(nl_sock* sock);

  struct Answer;
  // Sends `msg` (consumed); returns its sequence number.
  uint32_t Send(nl_msg* msg, std::string_view what);
  // Reads until the request `seq` is answered (ack, error or end of dump);
  // data messages on the way are handed to `on_data`. Returns the errno of the
  // answer (0 for success) and the kernel's explanation.
  Answer AwaitAnswer(uint32_t seq, const std::function<void(nlmsghdr*)>& on_data);
  // One request, one answer; throws NetlinkError on failure.
  void Exchange(nl_msg* msg, std::string_view what,
                const std::function<void(nlmsghdr*)>& on_data = nullptr);

  nl_sock* sock_ = nullptr;
  std::vector<char> receive_buffer_;
};

// Queued requests, sent by Commit(). Methods return *this to chain:
//   NetlinkBatch(sock).CreateBridge("cbr0").SetUp("cbr0").Commit();
// Commit stops sending at the first failure and throws it (later requests
// already in flight are still drained, their errors dropped).
class NetlinkBatch {
 public:
  explicit NetlinkBatch(NetlinkSocket& sock);
  ~NetlinkBatch();
  NetlinkBatch(const NetlinkBatch&) = delete;
  NetlinkBatch& operator=(const NetlinkBatch&) = delete;

  NetlinkBatch& CreateVeth(const VethSpec& spec);
  NetlinkBatch& CreateBridge(const std::string& name, int mtu = 0, const std::string& mac = "");
  NetlinkBatch& SetMaster(const std::string& dev, const std::string& master);
  NetlinkBatch& SetUp(const std::string& dev, bool up = true);
  NetlinkBatch& SetMtu(const std::string& dev, int mtu);
  NetlinkBatch& SetHairpin(const std::string& bridge_port, bool on = true);
  // IPv6 address generation off (`ip link set DEV addrgenmode none`): the
  // link gets no link-local address when it goes up.
  NetlinkBatch& SetNoIpv6Addresses(const std::string& dev);
  NetlinkBatch& DeleteLink(const std::string& name);
  NetlinkBatch& AddAddress(const std::string& dev, const Ipv4Cidr& address);
  NetlinkBatch& DeleteAddress(const std::string& dev, const Ipv4Cidr& address);
  NetlinkBatch& AddRoute(const Route& route);
  NetlinkBatch& ReplaceRoute(const Route& route);
  NetlinkBatch& DeleteRoute(const Route& route);
  NetlinkBatch& DeleteNeighbor(const std::string& dev, const Ipv4Address& address);

  size_t size() const;
  // Sends everything queued, waits for every answer; throws the first error.
  // When `done` is given it receives, per queued request in order, whether
  // the kernel carried it out (also when Commit throws), so a caller can
  // undo exactly what was made.
  void Commit(std::vector<bool>* done = nullptr);

 private:
  struct Op;
  NetlinkBatch& Add(Op op);
  NetlinkSocket& sock_;
  std::vector<Op> ops_;
};

}  // namespace kin::netstack
