// The service proxy's data plane: a plain description of one node's
// Services and endpoints (ProxyState), turned into kernel rules.
//
// The per-node proxy controller (controllers/service_proxy.h) watches
// Services and EndpointSlices and builds a ProxyState for its node: it has
// already chosen which endpoints serve cluster traffic and which serve
// node-local traffic, as kube-proxy's CategorizeEndpoints does (ready ones,
// else serving-terminating ones), so nothing here reads the API.
//
// Two implementations make a node's netns match a ProxyState:
//   - nftables (the default): one table `kin-proxy` in the node netns laid
//     out as kube-proxy's nftables mode (pkg/proxy/nftables/proxier.go):
//     verdict maps keyed on daddr . l4proto . dport, numgen random endpoint
//     choice, one chain per service port and per endpoint, affinity sets,
//     reject for services without endpoints and unused ClusterIP ports,
//     masquerade marks. Every sync is one atomic libnftables transaction;
//     after the first, only chains and map elements of changed service
//     ports are rewritten.
//   - iptables (the seed's mode): kube-proxy's iptables chains (KUBE-SERVICES,
//     KUBE-SVC-*, KUBE-SEP-*, KUBE-NODEPORTS, KUBE-MARK-MASQ,
//     KUBE-POSTROUTING), written with iptables-restore.
//
// Planning is pure (golden-file tests); a ProxyBackend applies plans in one
// namespace and is the seam unit tests replace.
//
// Thread-safety: plan functions are pure; a ProxyBackend is used by one
// thread at a time.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "netstack/ipam.h"

namespace kin::netstack {

enum class L4Protocol { kTcp, kUdp, kSctp };
std::string_view ToString(L4Protocol p);  // "tcp", "udp", "sctp"

struct ProxyEndpoint {
  Ipv4Address ip;
  uint16_t port = 0;
  auto operator<=>(const ProxyEndpoint&) const = default;
};

// One port of one Service, with the endpoints chosen for it.
struct ProxyServicePort {
  std::string ns;
  std::string name;       // the Service's name
  std::string port_name;  // the port's name ("" for an unnamed single port)
  L4Protocol protocol = L4Protocol::kTcp;
  std::optional<Ipv4Address> cluster_ip;  // none for headless (then only NodePort etc.)
  uint16_t port = 0;                      // the Service port
  uint16_t node_port = 0;                 // 0: none
  std::vector<Ipv4Address> external_ips;  // spec.externalIPs
  std::vector<Ipv4Address> load_balancer_ips;  // status.loadBalancer.ingress[].ip
  // spec.internalTrafficPolicy / externalTrafficPolicy == Local.
  bool internal_local = false;
  bool external_local = false;
  // sessionAffinity ClientIP: the timeout in seconds; 0 = no affinity.
  int affinity_timeout_seconds = 0;
  // Endpoints for traffic under policy Cluster (every node's: the ready
  // ones, else the serving-terminating ones; always filled, so empty means
  // "no endpoints anywhere": reject), and those on this node for policy
  // Local (empty with cluster_endpoints not: drop external traffic, as
  // kube-proxy does). Sorted, no duplicates.
  std::vector<ProxyEndpoint> cluster_endpoints;
  std::vector<ProxyEndpoint> local_endpoints;

  // "ns/name:port_name" (":" kept when port_name is empty), the key plans
  // use to name chains (hashed) and to diff states.
  std::string Key() const;
  bool operator==(const ProxyServicePort&) const = default;
};

struct ProxyState {
  // The node's own addresses, where NodePorts answer (its underlay IP).
  std::vector<Ipv4Address> node_ips;
  // The cluster's pod range: traffic to a Service from outside it is
  // masqueraded (kube-proxy's --cluster-cidr), and "local" policy traffic
  // from pods inside it is treated as internal.
  Ipv4Cidr cluster_cidr;
  // The Service range, for rejecting unused ClusterIP ports.
  Ipv4Cidr service_cidr;
  std::map<std::string, ProxyServicePort> ports;  // by ProxyServicePort::Key()
};

// A port's endpoints changed from `before` to `after` on UDP: the conntrack
// entries to flush (kube-proxy's conntrack cleanup): entries towards the
// service addresses whose endpoint went away, so a client's next datagram
// picks a live endpoint instead of following a stale entry.
struct ConntrackFlush {
  L4Protocol protocol = L4Protocol::kUdp;
  std::optional<Ipv4Address> orig_dst;   // a service address (ClusterIP, external IP, ...)
  uint16_t orig_dport = 0;               // 0: any
  std::optional<Ipv4Address> reply_src;  // a removed endpoint's IP
  auto operator<=>(const ConntrackFlush&) const = default;
};
std::vector<ConntrackFlush> PlanConntrackFlush(const ProxyState& before, const ProxyState& after);

enum class ProxyMode { kNftables, kIptables };
std::string_view ToString(ProxyMode m);  // "nftables", "iptables"
// "nftables" or "iptables"; "ipvs" is an Invalid error saying this kernel
// has no IPVS; anything else an Invalid naming `field` and the value.
ProxyMode ParseProxyMode(std::string_view text, std::string_view field = "networking.proxyMode");

// Makes one network namespace's rules match successive states.
class ProxyBackend {
 public:
  virtual ~ProxyBackend() = default;
  // The first call (and any call after Reset()) replaces whatever kin left
  // in the namespace, so a restart leaves no stale rule; later calls change
  // only what differs from the last state applied, and flush the UDP
  // conntrack entries PlanConntrackFlush(last, state) names. On failure the
  // next call does a full sync again. Throws kin::Error naming the namespace.
  virtual void Sync(const ProxyState& state) = 0;
  // Removes every rule this backend owns from the namespace.
  virtual void Remove() = 0;
};

// The backend for `mode` in the network namespace `netns` (a name under
// /run/netns).
std::unique_ptr<ProxyBackend> NewProxyBackend(ProxyMode mode, std::string netns);

}  // namespace kin::netstack
