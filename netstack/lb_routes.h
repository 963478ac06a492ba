// LoadBalancer routes: the cluster network spreading LB IPs over the nodes.
//
// A cloud's Layer-4 load balancer spreads a LoadBalancer Service's traffic
// over the nodes, where kube-proxy takes it (the seed's 6.2.2). kin's is the
// network namespace (kin-<c>-net): one route per LB IP, a /32 with
// equal-cost multipath next hops, the node IPs that should receive it, on
// the underlay bridge. The namespace hashes flows over the next hops by
// their addresses and ports (fib_multipath_hash_policy 1, set by the
// topology), so the connections of one client spread over the nodes.
//
// PlanLbRoutes() is pure: the desired routes against the routes the kernel
// holds in the pool gives the routes to replace and to delete (a route
// whose next hops differ is replaced, in one request). Render() prints a
// plan for golden tests.
//
// LbRouteTable applies: it owns nothing but the /32 routes inside `pool`
// in the main table of its namespace (a restarted kin serve takes over the
// routes it finds there); Sync() lists them, plans and sends the changes as
// one netlink batch. Clear() removes every route of the pool.
//
// Thread-safety: PlanLbRoutes is pure; an LbRouteTable is used by one
// thread at a time.
#pragma once

#include <string>
#include <vector>

#include "netstack/ipam.h"
#include "netstack/netlink.h"
#include "netstack/topology.h"

namespace kin::netstack {

struct LbRoute {
  Ipv4Address ip;
  std::vector<Ipv4Address> next_hops;  // no next hop: no route
  bool operator==(const LbRoute&) const = default;
};

struct LbRoutesPlan {
  std::vector<Route> replace;  // added or replaced, by address
  std::vector<Route> remove;
  bool empty() const { return replace.empty() && remove.empty(); }
  std::string Render() const;
};

// `current`: the routes of the namespace (any; those outside `pool` or not
// /32 are left alone). Desired routes outside the pool are Invalid (naming
// the address); next hops are sorted and de-duplicated.
LbRoutesPlan PlanLbRoutes(const std::vector<LbRoute>& desired,
                          const std::vector<RouteInfo>& current, const Ipv4Cidr& pool,
                          const std::string& dev);

class LbRouteTable {
 public:
  // `netns`: the network namespace; `dev`: the device the next hops are on
  // (the underlay bridge).
  LbRouteTable(std::string netns, std::string dev, Ipv4Cidr pool);
  LbRouteTable(const LbRouteTable&) = delete;
  LbRouteTable& operator=(const LbRouteTable&) = delete;

  // Makes the pool's routes in the namespace equal `routes`; returns the
  // plan it carried out. Errors name the namespace.
  LbRoutesPlan Sync(const std::vector<LbRoute>& routes);
  // Removes every route of the pool (what is gone already is skipped).
  void Clear();

 private:
  const std::string netns_, dev_;
  const Ipv4Cidr pool_;
};

// The topology's LoadBalancer parts (PlanTopology with `load_balancer`) for
// a network made before them, as kin serve keeps a network it finds: the
// internet's route to the pool via the network, and the network's flow
// hashing. Idempotent; nothing without `load_balancer` or without the
// internet namespace. Errors name the namespace.
void EnsureLoadBalancerRange(const ClusterNetwork& net);

}  // namespace kin::netstack
