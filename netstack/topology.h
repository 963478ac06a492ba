// The cluster's network topology and pod attachment: pure plans, then apply.
//
// Planning is pure: PlanTopology() turns a ClusterNetwork (nodes, their IPs
// and pod CIDRs, a routing mode) into a NetworkPlan, the namespaces, links,
// addresses, routes and sysctls the kernel must hold, and PlanPodAttach()
// does the same for one pod's interface. A plan renders as text (Render())
// for golden tests. Nothing here reads the API.
//
// The layout (../shared/DESIGN.md, "Network topology"):
//
//   the host       (HostAccess; off unless enabled) the machine's own
//                  namespace, the one kin serve runs in: a veth
//                  kin-<cluster> (HostAccessLinkName) holding the underlay's
//                  last host address (HostAccessIp, 172.18.0.254), so node
//                  IPs are on its link, as kind's are on the docker bridge,
//                  and one route, the LoadBalancer range via the network's
//                  .1. Nothing else of the host is touched; the link and its
//                  routes go when the network namespace is deleted.
//   <prefix>net    the network: bridge `underlay` holding the underlay's .1,
//                  one veth end n<i> per node on it (and `host`, the
//                  host-access link's end); routes each node's pod
//                  CIDR to that node's IP; forwards; veth `ext` to the
//                  internet, holding the external subnet's last host address
//   <prefix>ext    "the internet" (ExternalNetwork; on unless disabled):
//                  eth0 (peer of `ext`) holding the external subnet's .1
//                  (ExternalGateway) and .2 (ExternalServerIp, where kin
//                  serve's external server listens); a route to the
//                  underlay via the network, and none to pod CIDRs: pod
//                  traffic gets here only masqueraded to its node's IP
//                  (netstack/egress.h), as on the real internet
//   <prefix><node> a node: eth0 (peer of n<i>) with the node IP, default
//                  route via the network's .1; bridge cbr0 holding the .1 of
//                  the pod CIDR; forwards; bridged traffic seen by netfilter
//   pod netns      eth0 (peer of a host-side veth on cbr0, hairpin on), the
//                  pod IP, default route via cbr0's address
//
// The prefix is "kin-<cluster>-" unless ClusterNetwork::netns_prefix says
// otherwise (tests use their own unique prefix). In "routed" mode all
// cross-node pod traffic goes through the network namespace; in "host-gw"
// mode (as kindnetd does) every node also routes each other node's pod CIDR
// straight to that node's IP over the underlay.
//
// Applying: ApplyPlan() creates the namespaces a plan owns (create = true;
// AlreadyExists if one is there), then per namespace, in plan order, opens
// one netlink socket there and sends its links, then its configuration, each
// as one batch, then writes its sysctls. On failure it removes what it made
// (its namespaces, and links it made in namespaces it does not own) and
// rethrows, naming the namespace: "netns `kin-dev-net`: create bridge ...".
// RemovePlan() undoes a plan: deleting a namespace removes its links and the
// veth ends elsewhere that pair with them.
//
// Thread-safety: the plan functions are pure and thread-safe. Apply and
// Remove on different plans may run concurrently; on one node's plans they
// must not race with each other for the same names.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "netstack/ipam.h"
#include "netstack/netlink.h"
#include "netstack/sysctl.h"

namespace kin::netstack {

inline constexpr const char* kUnderlayBridge = "underlay";  // in the network namespace
inline constexpr const char* kNodeBridge = "cbr0";          // in each node
inline constexpr const char* kNodeUplink = "eth0";          // a node's end on the underlay
inline constexpr const char* kPodInterface = "eth0";

enum class RoutingMode { kRouted, kHostGw };
std::string_view ToString(RoutingMode mode);          // "routed", "host-gw"
RoutingMode ParseRoutingMode(std::string_view text);  // Invalid naming the value

struct NodeNetwork {
  std::string name;
  Ipv4Address ip;     // on the underlay
  Ipv4Cidr pod_cidr;  // a network, /30 or larger
};

// The cluster's "internet": a namespace beyond the network, with addresses
// from a documentation range that is never routed anywhere else.
struct ExternalNetwork {
  bool enabled = true;
  Ipv4Cidr subnet{Ipv4Address(0xcb007100), 24};  // 203.0.113.0/24, /29 or larger
};

// The machine's own network namespace as a NetnsPlan name: the namespace of
// the thread that applies the plan (a path, which no /run/netns name is).
inline constexpr const char* kHostNetns = "/proc/thread-self/ns/net";
inline constexpr const char* kHostAccessPeer = "host";  // the network's end of the link

// The cluster reachable from the machine's own shell: node IPs, and the
// LoadBalancer range (so LoadBalancer and Ingress addresses) routed there.
struct HostAccess {
  bool enabled = false;
  // Where "the host" is: kHostNetns, or (in tests) a /run/netns name.
  std::string netns = kHostNetns;
};

struct ClusterNetwork {
  std::string cluster;                             // short: it is part of every namespace name
  Ipv4Cidr underlay{Ipv4Address(0xac120000), 24};  // 172.18.0.0/24; the network has .1
  std::vector<NodeNetwork> nodes;
  ExternalNetwork external;
  // LoadBalancer Services' addresses (netstack/lb_routes.h): the internet
  // routes them to the network, which spreads each over the nodes by
  // equal-cost multipath, hashing flows by addresses and ports.
  std::optional<Ipv4Cidr> load_balancer;
  HostAccess host_access;
  RoutingMode mode = RoutingMode::kRouted;
  std::string netns_prefix;  // empty: "kin-<cluster>-"
  int mtu = 0;               // 0: the kernel's default
};

struct LinkPlan {
  enum class Kind { kBridge, kVeth };
  Kind kind = Kind::kVeth;
  std::string name;
  std::string peer;        // veth: the other end's name
  std::string peer_netns;  // veth: where the other end is made; empty: here
  std::string master;      // a bridge to attach to
  bool hairpin = false;    // as a bridge port, send frames back where they came from
  std::string mac;         // empty: random
  std::string peer_mac;    // veth: the other end's; empty: random
  int mtu = 0;
};

struct AddressPlan {
  std::string dev;
  Ipv4Cidr address;
};

// A neighbour (ARP) entry to forget: `ip neigh del ADDRESS dev DEV`.
struct NeighborPlan {
  std::string dev;
  Ipv4Address address;
};

struct NetnsPlan {
  std::string name;             // under /run/netns
  bool create = false;          // the plan owns (creates and removes) the namespace
  std::vector<LinkPlan> links;  // made here
  std::vector<std::string> up;  // set up, in this order (may be made elsewhere: eth0)
  // Links here that get no IPv6 address (no link-local, so no DAD or MLD
  // work): set before they go up. The cluster is IPv4 only.
  std::vector<std::string> no_ipv6;
  std::vector<AddressPlan> addresses;
  std::vector<Route> routes;  // added or replaced
  std::vector<Sysctl> sysctls;
  // Deleted last (none there is fine): a pod address used before by a pod
  // now gone may still have that pod's MAC here.
  std::vector<NeighborPlan> forget_neighbors;
};

struct NetworkPlan {
  std::vector<NetnsPlan> namespaces;  // in the order they are applied
  std::string Render() const;
};

// Namespace names of a cluster network.
std::string NetnsPrefix(const ClusterNetwork& net);
std::string NetworkNetnsName(const ClusterNetwork& net);  // <prefix>net
std::string NodeNetnsName(const ClusterNetwork& net, const std::string& node);
std::string ExternalNetnsName(const ClusterNetwork& net);  // <prefix>ext

inline constexpr const char* kExternalLink = "ext";  // the network's end towards the internet
// Addresses of the internet namespace (derived from ExternalNetwork::subnet).
Ipv4Address ExternalGateway(const ClusterNetwork& net);   // its eth0: 203.0.113.1
Ipv4Address ExternalServerIp(const ClusterNetwork& net);  // the external server: 203.0.113.2
Ipv4Address ExternalUplinkIp(const ClusterNetwork& net);  // the network's `ext`: 203.0.113.254
// The underlay's .1, held by the network namespace: where kin serve's
// in-network API listener binds (172.18.0.1).
Ipv4Address NetworkGateway(const ClusterNetwork& net);

// The host-access link's name on the host: "kin-<cluster>" (the prefix
// without its trailing '-') when that fits an interface name, else "kin-"
// and 8 hex digits of a hash of the prefix.
std::string HostAccessLinkName(const ClusterNetwork& net);
// Its address: the underlay's last host address (172.18.0.254), which no
// node gets.
Ipv4Address HostAccessIp(const ClusterNetwork& net);

// The MAC of a node's bridge: locally administered, 02:6b and the four
// bytes of its address (10.244.1.1 -> 02:6b:0a:f4:01:01).
std::string NodeBridgeMac(Ipv4Address gateway);

// Validates `net` (Invalid with one cause per problem, fields like
// "nodes[1].podCIDR") and plans it.
NetworkPlan PlanTopology(const ClusterNetwork& net);

struct PodInterface {
  std::string node_netns;  // the node's namespace, holding `bridge`
  std::string pod_netns;   // /run/netns/<pod_netns>, made by the runtime
  std::string host_veth;   // <= 15 characters, unique in the node: HostVethName(uid)
  Ipv4Cidr address;        // 10.244.1.5/24
  Ipv4Address gateway;     // 10.244.1.1
  std::string bridge = kNodeBridge;
  std::string ifname = kPodInterface;
  std::string mac;  // of the pod's eth0; empty: random
  int mtu = 0;
};

// "veth" + 8 hex digits of a hash (FNV-1a) of the pod UID: stable across
// restarts, fits an interface name.
std::string HostVethName(std::string_view pod_uid);

// The node side (a veth on the bridge with hairpin, its peer made directly
// in the pod namespace; the bridge's neighbour entry for the pod's address
// forgotten: one left by an earlier pod with that address would send the
// node's traffic to a MAC that is gone until the entry expires, 30 s and
// more, where the bridge CNI plugin's gratuitous ARP updates it) and the
// pod side (lo and eth0 up, the address, a
// default route via the gateway; onlink when the gateway is outside the
// address's prefix). Neither namespace is owned by the plan.
NetworkPlan PlanPodAttach(const PodInterface& pod);

void ApplyPlan(const NetworkPlan& plan);
// Links the plan made in namespaces it does not own, then the namespaces it
// owns. What is already gone is skipped.
void RemovePlan(const NetworkPlan& plan);

// Deletes the host side of a pod's veth (the pod's eth0 goes with it).
// Returns false when it was not there.
bool DetachPod(const std::string& node_netns, const std::string& host_veth);

}  // namespace kin::netstack
