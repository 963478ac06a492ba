#include "netstack/lb_routes.h"

#include <algorithm>
#include <map>

#include "base/error.h"
#include "base/netns.h"
#include "netstack/sysctl.h"

namespace kin::netstack {

namespace {

bool InPool(const Ipv4Cidr& dst, const Ipv4Cidr& pool) {
  return dst.prefix_len() == 32 && pool.Contains(dst.address());
}

// The next hops of a route as the kernel holds it: its gateways, sorted.
std::vector<Ipv4Address> HopsOf(const RouteInfo& r) {
  std::vector<Ipv4Address> hops = r.nexthops;
  if (hops.empty() && r.via) hops.push_back(*r.via);
  std::sort(hops.begin(), hops.end());
  return hops;
}

Route RouteTo(Ipv4Address ip, const std::vector<Ipv4Address>& hops, const std::string& dev) {
  Route r;
  r.dst = Ipv4Cidr(ip, 32);
  r.dev = dev;
  if (hops.size() == 1) {
    r.via = hops[0];
  } else {
    r.nexthops = hops;
  }
  return r;
}

Error InNetns(const std::string& ns, const Error& e) {
  Error out(e.code(), "netns `" + ns + "`: " + e.message());
  out.WithErrno(e.sys_errno());
  return out;
}

}  // namespace

std::string LbRoutesPlan::Render() const {
  std::string out;
  for (const Route& r : replace) out += "replace " + r.ToString() + "\n";
  for (const Route& r : remove) out += "delete " + r.ToString() + "\n";
  return out;
}

LbRoutesPlan PlanLbRoutes(const std::vector<LbRoute>& desired,
                          const std::vector<RouteInfo>& current, const Ipv4Cidr& pool,
                          const std::string& dev) {
  std::map<Ipv4Address, std::vector<Ipv4Address>> want;
  for (const LbRoute& r : desired) {
    if (!pool.Contains(r.ip)) {
      throw Error::Invalid("load balancer route to " + r.ip.ToString() + ": not in the pool " +
                           pool.ToString());
    }
    std::vector<Ipv4Address>& hops = want[r.ip];
    hops.insert(hops.end(), r.next_hops.begin(), r.next_hops.end());
  }
  for (auto& [ip, hops] : want) {
    std::sort(hops.begin(), hops.end());
    hops.erase(std::unique(hops.begin(), hops.end()), hops.end());
  }
  std::map<Ipv4Address, std::vector<Ipv4Address>> have;
  for (const RouteInfo& r : current) {
    if (InPool(r.dst, pool)) have[r.dst.address()] = HopsOf(r);
  }
  LbRoutesPlan plan;
  for (const auto& [ip, hops] : want) {
    if (hops.empty()) continue;
    auto it = have.find(ip);
    if (it != have.end() && it->second == hops) continue;
    plan.replace.push_back(RouteTo(ip, hops, dev));
  }
  for (const auto& [ip, hops] : have) {
    auto it = want.find(ip);
    if (it != want.end() && !it->second.empty()) continue;
    Route r;
    r.dst = Ipv4Cidr(ip, 32);
    plan.remove.push_back(r);
  }
  return plan;
}

LbRouteTable::LbRouteTable(std::string netns, std::string dev, Ipv4Cidr pool)
    : netns_(std::move(netns)), dev_(std::move(dev)), pool_(pool) {}

LbRoutesPlan LbRouteTable::Sync(const std::vector<LbRoute>& routes) {
  try {
    NetlinkSocket sock = NetlinkSocket::OpenIn(Netns::Open(netns_));
    LbRoutesPlan plan = PlanLbRoutes(routes, sock.ListRoutes(), pool_, dev_);
    if (plan.empty()) return plan;
    NetlinkBatch batch(sock);
    for (const Route& r : plan.replace) batch.ReplaceRoute(r);
    for (const Route& r : plan.remove) batch.DeleteRoute(r);
    batch.Commit();
    return plan;
  } catch (const Error& e) {
    throw InNetns(netns_, e);
  }
}

void LbRouteTable::Clear() {
  try {
    NetlinkSocket sock = NetlinkSocket::OpenIn(Netns::Open(netns_));
    for (const Route& r : PlanLbRoutes({}, sock.ListRoutes(), pool_, dev_).remove) {
      try {
        sock.DeleteRoute(r);
      } catch (const Error& e) {
        if (e.code() != Code::kNotFound) throw;
      }
    }
  } catch (const Error& e) {
    throw InNetns(netns_, e);
  }
}

void EnsureLoadBalancerRange(const ClusterNetwork& net) {
  if (!net.load_balancer || !net.external.enabled) return;
  // The plan's own LB parts, so they never differ from a new network's.
  NetworkPlan plan = PlanTopology(net);
  const std::string network = NetworkNetnsName(net), internet = ExternalNetnsName(net);
  for (const NetnsPlan& ns : plan.namespaces) {
    try {
      if (ns.name == internet) {
        NetlinkSocket sock = NetlinkSocket::OpenIn(Netns::Open(ns.name));
        for (const Route& r : ns.routes) {
          if (r.dst && *r.dst == *net.load_balancer) sock.ReplaceRoute(r);
        }
      } else if (ns.name == network) {
        std::vector<Sysctl> hashing;
        for (const Sysctl& s : ns.sysctls) {
          if (s.key == "net.ipv4.fib_multipath_hash_policy") hashing.push_back(s);
        }
        WriteSysctls(Netns::Open(ns.name), hashing, ns.name);
      }
    } catch (const Error& e) {
      throw InNetns(ns.name, e);
    }
  }
}

}  // namespace kin::netstack
