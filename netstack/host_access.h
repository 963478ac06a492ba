// The cluster reachable from the machine's own shell (issue 14; the
// topology plans the link itself, netstack/topology.h HostAccess).
//
// A cluster with host access routes its underlay (node IPs) and its
// LoadBalancer range on the host. Those routes must not shadow anything the
// host routes already (a VPN, docker's bridges, another kin cluster), so:
//
// HostRouteClashes() is pure: the host's routes (its main table) against
// the ranges the cluster would route there gives one line per clash, e.g.
// "networking.underlay 172.18.0.0/24 overlaps the host's route
// 172.18.0.0/16 dev docker0". Default routes never clash, nor routes on the
// cluster's own host-access link (a restarted kin serve finds them there).
//
// CheckHostRoutes() lists the routes of the host namespace and throws
// Conflict naming every clash. EnsureHostAccess() makes the link of a
// cluster network that exists already when it is missing (a network made
// before host access, or a link deleted by hand), after the same check.
//
// Thread-safety: HostRouteClashes is pure; the others touch the kernel and
// may run concurrently for different clusters (choosing ranges without
// races is the caller's: cmd/ takes a lock across choice and creation).
#pragma once

#include <string>
#include <vector>

#include "netstack/ipam.h"
#include "netstack/netlink.h"
#include "netstack/topology.h"

namespace kin::netstack {

struct HostRange {
  std::string field;  // what names it in messages: "networking.underlay"
  Ipv4Cidr cidr;
};

// The ranges a cluster with host access routes on the host.
std::vector<HostRange> HostAccessRanges(const ClusterNetwork& net);

std::vector<std::string> HostRouteClashes(const std::vector<HostRange>& ranges,
                                          const std::vector<RouteInfo>& host_routes,
                                          const std::string& own_link);

// The host namespace's IPv4 routes (main table).
std::vector<RouteInfo> ListHostRoutes(const std::string& host_netns = kHostNetns);

void CheckHostRoutes(const ClusterNetwork& net);
void EnsureHostAccess(const ClusterNetwork& net);

}  // namespace kin::netstack
