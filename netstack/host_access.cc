#include "netstack/host_access.h"

#include "base/error.h"
#include "base/netns.h"

namespace kin::netstack {

std::vector<HostRange> HostAccessRanges(const ClusterNetwork& net) {
  std::vector<HostRange> out = {{"networking.underlay", net.underlay}};
  if (net.load_balancer) out.push_back({"networking.loadBalancerSubnet", *net.load_balancer});
  return out;
}

std::vector<std::string> HostRouteClashes(const std::vector<HostRange>& ranges,
                                          const std::vector<RouteInfo>& host_routes,
                                          const std::string& own_link) {
  std::vector<std::string> out;
  for (const HostRange& r : ranges) {
    for (const RouteInfo& route : host_routes) {
      if (route.dst.prefix_len() == 0 || route.dev == own_link) continue;
      if (!route.dst.Overlaps(r.cidr)) continue;
      out.push_back(r.field + " " + r.cidr.ToString() + " overlaps the host's route " +
                    route.ToString());
    }
  }
  return out;
}

std::vector<RouteInfo> ListHostRoutes(const std::string& host_netns) {
  Netns ns = host_netns.starts_with('/') ? Netns::OpenPath(host_netns) : Netns::Open(host_netns);
  return NetlinkSocket::OpenIn(ns).ListRoutes();
}

void CheckHostRoutes(const ClusterNetwork& net) {
  if (!net.host_access.enabled) return;
  std::vector<std::string> clashes = HostRouteClashes(
      HostAccessRanges(net), ListHostRoutes(net.host_access.netns), HostAccessLinkName(net));
  if (clashes.empty()) return;
  std::string list;
  for (const auto& c : clashes) list += (list.empty() ? "" : "; ") + c;
  throw Error::Conflict("cluster " + net.cluster + ": host access would route on the host what it routes already: " + list +
                        ". Choose other ranges in the cluster config, or turn host access off "
                        "(networking.hostAccess: false, or --host-access=false)");
}

void EnsureHostAccess(const ClusterNetwork& net) {
  if (!net.host_access.enabled) return;
  const std::string link = HostAccessLinkName(net);
  const std::string& host = net.host_access.netns;
  Netns host_ns = host.starts_with('/') ? Netns::OpenPath(host) : Netns::Open(host);
  if (NetlinkSocket::OpenIn(host_ns).FindLinkIndex(link)) return;
  CheckHostRoutes(net);
  // The topology's own host parts, so they never differ from a new network's.
  NetworkPlan full = PlanTopology(net);
  NetworkPlan part;
  const std::string network = NetworkNetnsName(net);
  for (const NetnsPlan& ns : full.namespaces) {
    if (ns.name == network) {
      NetnsPlan p;
      p.name = ns.name;
      for (const LinkPlan& l : ns.links) {
        if (l.name == kHostAccessPeer) p.links.push_back(l);
      }
      p.up = {kHostAccessPeer};
      part.namespaces.push_back(std::move(p));
    } else if (ns.name == host) {
      part.namespaces.push_back(ns);
    }
  }
  ApplyPlan(part);
}

}  // namespace kin::netstack
