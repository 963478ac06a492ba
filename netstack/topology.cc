#include "netstack/topology.h"

#include <cstdio>
#include <map>
#include <optional>
#include <set>

#include "base/error.h"
#include "base/netns.h"

namespace kin::netstack {

namespace {

constexpr size_t kMaxIfName = 15;  // IFNAMSIZ - 1

Route MakeRoute(std::optional<Ipv4Cidr> dst, std::optional<Ipv4Address> via, std::string dev,
                bool onlink = false) {
  Route r;
  r.dst = dst;
  r.via = via;
  r.dev = std::move(dev);
  r.onlink = onlink;
  return r;
}

// `lead` and 8 hex digits of FNV-1a of `text`: a stable interface name
// (lead of at most 7 characters) for something too long to be one.
std::string HashedIfName(const char* lead, std::string_view text) {
  uint32_t h = 2166136261u;
  for (unsigned char c : text) {
    h ^= c;
    h *= 16777619u;
  }
  char buf[16];
  snprintf(buf, sizeof buf, "%s%08x", lead, h);
  return buf;
}

bool ValidIfName(const std::string& n) {
  return !n.empty() && n.size() <= kMaxIfName && n.find_first_of("/: \t\n") == std::string::npos;
}

// Collects field problems so a description is rejected with all of them.
class Problems {
 public:
  void Add(const std::string& field, const std::string& message) {
    causes_.push_back({"FieldValueInvalid", message, field});
  }
  void ThrowIfAny(const std::string& what) const {
    if (causes_.empty()) return;
    std::string message = what + ": " + causes_[0].field + ": " + causes_[0].message;
    if (causes_.size() > 1) message += " (and " + std::to_string(causes_.size() - 1) + " more)";
    Error e = Error::Invalid(message);
    for (const auto& c : causes_) e.WithCause(c);
    throw e;
  }

 private:
  std::vector<Cause> causes_;
};

// An error raised inside namespace `ns`, naming it.
Error InNetns(const std::string& ns, const Error& e) {
  Error out(e.code(), "netns `" + ns + "`: " + e.message());
  out.WithErrno(e.sys_errno());
  return out;
}

}  // namespace

std::string_view ToString(RoutingMode mode) {
  return mode == RoutingMode::kHostGw ? "host-gw" : "routed";
}

RoutingMode ParseRoutingMode(std::string_view text) {
  if (text == "routed") return RoutingMode::kRouted;
  if (text == "host-gw") return RoutingMode::kHostGw;
  throw Error::Invalid("invalid routing mode \"" + std::string(text) +
                       "\": must be \"routed\" or \"host-gw\"");
}

std::string NetnsPrefix(const ClusterNetwork& net) {
  return net.netns_prefix.empty() ? "kin-" + net.cluster + "-" : net.netns_prefix;
}

std::string NetworkNetnsName(const ClusterNetwork& net) { return NetnsPrefix(net) + "net"; }

std::string NodeNetnsName(const ClusterNetwork& net, const std::string& node) {
  return NetnsPrefix(net) + node;
}

std::string ExternalNetnsName(const ClusterNetwork& net) { return NetnsPrefix(net) + "ext"; }

Ipv4Address ExternalGateway(const ClusterNetwork& net) { return net.external.subnet.Nth(1); }
Ipv4Address ExternalServerIp(const ClusterNetwork& net) { return net.external.subnet.Nth(2); }
Ipv4Address ExternalUplinkIp(const ClusterNetwork& net) {
  return Ipv4Address(net.external.subnet.broadcast().value() - 1);
}
Ipv4Address NetworkGateway(const ClusterNetwork& net) { return net.underlay.Nth(1); }

std::string HostAccessLinkName(const ClusterNetwork& net) {
  std::string prefix = NetnsPrefix(net);
  if (!prefix.empty() && prefix.back() == '-') prefix.pop_back();
  if (prefix.size() <= kMaxIfName && ValidIfName(prefix)) return prefix;
  return HashedIfName("kin-", NetnsPrefix(net));
}

Ipv4Address HostAccessIp(const ClusterNetwork& net) {
  return Ipv4Address(net.underlay.broadcast().value() - 1);
}

// ---- Rendering ----

std::string NetworkPlan::Render() const {
  std::string out;
  for (const auto& ns : namespaces) {
    out += "netns " + ns.name + (ns.create ? " (create)" : "") + "\n";
    for (const auto& l : ns.links) {
      out += "  link " + l.name;
      if (l.kind == LinkPlan::Kind::kBridge) {
        out += " bridge";
      } else {
        out += " veth peer " + l.peer;
        if (!l.peer_netns.empty()) out += " netns " + l.peer_netns;
      }
      if (!l.master.empty()) out += " master " + l.master;
      if (l.hairpin) out += " hairpin";
      if (!l.mac.empty()) out += " mac " + l.mac;
      if (!l.peer_mac.empty()) out += " peer-mac " + l.peer_mac;
      if (l.mtu > 0) out += " mtu " + std::to_string(l.mtu);
      out += "\n";
    }
    if (!ns.no_ipv6.empty()) {
      out += "  no-ipv6";
      for (const auto& u : ns.no_ipv6) out += " " + u;
      out += "\n";
    }
    if (!ns.up.empty()) {
      out += "  up";
      for (const auto& u : ns.up) out += " " + u;
      out += "\n";
    }
    for (const auto& a : ns.addresses)
      out += "  addr " + a.address.ToString() + " dev " + a.dev + "\n";
    for (const auto& r : ns.routes) out += "  route " + r.ToString() + "\n";
    for (const auto& s : ns.sysctls) out += "  sysctl " + s.key + "=" + s.value + "\n";
    for (const auto& n : ns.forget_neighbors) {
      out += "  forget-neighbor " + n.address.ToString() + " dev " + n.dev + "\n";
    }
  }
  return out;
}

// ---- Planning ----

std::string NodeBridgeMac(Ipv4Address gateway) {
  const uint32_t ip = gateway.value();
  char mac[18];
  std::snprintf(mac, sizeof mac, "02:6b:%02x:%02x:%02x:%02x", (ip >> 24) & 0xff, (ip >> 16) & 0xff,
                (ip >> 8) & 0xff, ip & 0xff);
  return mac;
}

NetworkPlan PlanTopology(const ClusterNetwork& net) {
  Problems problems;
  const std::string prefix = NetnsPrefix(net);
  if (net.netns_prefix.empty() && net.cluster.empty()) {
    problems.Add("cluster", "Required value: a cluster name (or a namespace prefix)");
  }
  if (prefix.find('/') != std::string::npos || prefix.size() > 100) {
    problems.Add("netnsPrefix",
                 "Invalid value: \"" + prefix + "\": must be a short name without /");
  }
  if (!net.underlay.is_network()) {
    problems.Add("underlay", "Invalid value: \"" + net.underlay.ToString() +
                                 "\": host bits are set (the network is " +
                                 net.underlay.Masked().ToString() + ")");
  } else if (net.underlay.prefix_len() > 29) {
    problems.Add("underlay", "Invalid value: \"" + net.underlay.ToString() +
                                 "\": too small for a gateway and nodes");
  }
  if (net.nodes.empty()) problems.Add("nodes", "Required value: at least one node");
  const Ipv4Cidr& ext = net.external.subnet;
  if (net.external.enabled) {
    if (!ext.is_network()) {
      problems.Add("external.subnet", "Invalid value: \"" + ext.ToString() +
                                          "\": host bits are set (the network is " +
                                          ext.Masked().ToString() + ")");
    } else if (ext.prefix_len() > 29) {
      problems.Add("external.subnet",
                   "Invalid value: \"" + ext.ToString() + "\": must be a /29 or larger");
    } else if (ext.Overlaps(net.underlay)) {
      problems.Add("external.subnet", "Invalid value: \"" + ext.ToString() +
                                          "\": overlaps the underlay " + net.underlay.ToString());
    }
  }
  if (net.load_balancer) {
    const Ipv4Cidr& lb = *net.load_balancer;
    const std::string v = "Invalid value: \"" + lb.ToString() + "\": ";
    if (!lb.is_network()) {
      problems.Add("loadBalancer",
                   v + "host bits are set (the network is " + lb.Masked().ToString() + ")");
    } else if (lb.Overlaps(net.underlay)) {
      problems.Add("loadBalancer", v + "overlaps the underlay " + net.underlay.ToString());
    } else if (net.external.enabled && lb.Overlaps(ext)) {
      problems.Add("loadBalancer", v + "overlaps the external subnet " + ext.ToString());
    } else {
      for (const NodeNetwork& n : net.nodes) {
        if (lb.Overlaps(n.pod_cidr)) {
          problems.Add("loadBalancer",
                       v + "overlaps node " + n.name + "'s " + n.pod_cidr.ToString());
          break;
        }
      }
    }
  }
  if (net.mtu != 0 && (net.mtu < 68 || net.mtu > 65535)) {
    problems.Add("mtu", "Invalid value: " + std::to_string(net.mtu) + ": must be 68..65535");
  }

  const Ipv4Address gateway = net.underlay.Nth(1);
  std::set<std::string> names;
  std::map<Ipv4Address, std::string> ips;
  for (size_t i = 0; i < net.nodes.size(); i++) {
    const NodeNetwork& n = net.nodes[i];
    const std::string f = "nodes[" + std::to_string(i) + "]";
    if (n.name.empty() || n.name.find('/') != std::string::npos || n.name.size() > 63) {
      problems.Add(f + ".name", "Invalid value: \"" + n.name + "\": must be 1-63 characters, no /");
    } else if (n.name == "net") {
      problems.Add(f + ".name", "Invalid value: \"net\": the network namespace has that name");
    } else if (n.name == "ext" && net.external.enabled) {
      problems.Add(f + ".name", "Invalid value: \"ext\": the internet namespace has that name");
    } else if (!names.insert(n.name).second) {
      problems.Add(f + ".name", "Duplicate value: \"" + n.name + "\"");
    }
    const std::string ip = n.ip.ToString();
    if (!net.underlay.Contains(n.ip) || n.ip == net.underlay.network() ||
        n.ip == net.underlay.broadcast()) {
      problems.Add(f + ".ip", "Invalid value: \"" + ip +
                                  "\": must be a host address of the underlay " +
                                  net.underlay.ToString());
    } else if (n.ip == gateway) {
      problems.Add(f + ".ip", "Invalid value: \"" + ip + "\": the network namespace holds it");
    } else if (net.host_access.enabled && n.ip == HostAccessIp(net)) {
      problems.Add(f + ".ip", "Invalid value: \"" + ip + "\": the host-access link holds it");
    } else if (auto [it, fresh] = ips.emplace(n.ip, n.name); !fresh) {
      problems.Add(f + ".ip", "Duplicate value: \"" + ip + "\" (node " + it->second + ")");
    }
    const std::string cidr = n.pod_cidr.ToString();
    if (!n.pod_cidr.is_network()) {
      problems.Add(f + ".podCIDR", "Invalid value: \"" + cidr +
                                       "\": host bits are set (the network is " +
                                       n.pod_cidr.Masked().ToString() + ")");
    } else if (n.pod_cidr.prefix_len() > 30) {
      problems.Add(f + ".podCIDR", "Invalid value: \"" + cidr + "\": must be a /30 or larger");
    } else if (n.pod_cidr.Overlaps(net.underlay)) {
      problems.Add(f + ".podCIDR", "Invalid value: \"" + cidr + "\": overlaps the underlay " +
                                       net.underlay.ToString());
    } else if (net.external.enabled && n.pod_cidr.Overlaps(ext)) {
      problems.Add(f + ".podCIDR", "Invalid value: \"" + cidr +
                                       "\": overlaps the external subnet " + ext.ToString());
    } else {
      for (size_t j = 0; j < i; j++) {
        if (n.pod_cidr.Overlaps(net.nodes[j].pod_cidr)) {
          problems.Add(f + ".podCIDR", "Invalid value: \"" + cidr + "\": overlaps node " +
                                           net.nodes[j].name + "'s " +
                                           net.nodes[j].pod_cidr.ToString());
          break;
        }
      }
    }
  }
  problems.ThrowIfAny("invalid cluster network");

  NetworkPlan plan;
  NetnsPlan network;
  network.name = NetworkNetnsName(net);
  network.create = true;
  LinkPlan underlay;
  underlay.kind = LinkPlan::Kind::kBridge;
  underlay.name = kUnderlayBridge;
  underlay.mtu = net.mtu;
  network.links.push_back(underlay);
  network.up = {"lo", kUnderlayBridge};
  network.addresses.push_back({kUnderlayBridge, Ipv4Cidr(gateway, net.underlay.prefix_len())});

  // The host: a veth from the underlay bridge, its end holding an underlay
  // address (node IPs are on its link) and a route for the LB range.
  std::optional<NetnsPlan> host;
  if (net.host_access.enabled) {
    const std::string link = HostAccessLinkName(net);
    LinkPlan veth;
    veth.name = kHostAccessPeer;
    veth.peer = link;
    veth.peer_netns = net.host_access.netns;
    veth.master = kUnderlayBridge;
    veth.mtu = net.mtu;
    network.links.push_back(veth);
    network.up.push_back(kHostAccessPeer);
    NetnsPlan h;
    h.name = net.host_access.netns;
    h.no_ipv6 = {link};
    h.up = {link};
    h.addresses.push_back({link, Ipv4Cidr(HostAccessIp(net), net.underlay.prefix_len())});
    if (net.load_balancer) h.routes.push_back(MakeRoute(*net.load_balancer, gateway, link));
    host = std::move(h);
  }

  std::vector<NetnsPlan> nodes;
  for (size_t i = 0; i < net.nodes.size(); i++) {
    const NodeNetwork& n = net.nodes[i];
    const std::string port = "n" + std::to_string(i);
    LinkPlan veth;
    veth.name = port;
    veth.peer = kNodeUplink;
    veth.peer_netns = NodeNetnsName(net, n.name);
    veth.master = kUnderlayBridge;
    veth.mtu = net.mtu;
    network.links.push_back(veth);
    network.up.push_back(port);
    network.routes.push_back(MakeRoute(n.pod_cidr, n.ip, kUnderlayBridge));

    NetnsPlan node;
    node.name = NodeNetnsName(net, n.name);
    node.create = true;
    LinkPlan bridge;
    bridge.kind = LinkPlan::Kind::kBridge;
    bridge.name = kNodeBridge;
    bridge.mtu = net.mtu;
    // A MAC of its own: a bridge without one takes its lowest port's, and
    // when that pod went every other pod's ARP entry for the gateway
    // pointed at a MAC no longer there (no way out of the pod for 30 s
    // and more).
    bridge.mac = NodeBridgeMac(n.pod_cidr.Nth(1));
    node.links.push_back(bridge);
    node.up = {"lo", kNodeUplink, kNodeBridge};
    node.addresses.push_back({kNodeUplink, Ipv4Cidr(n.ip, net.underlay.prefix_len())});
    node.addresses.push_back({kNodeBridge, Ipv4Cidr(n.pod_cidr.Nth(1), n.pod_cidr.prefix_len())});
    node.routes.push_back(MakeRoute(std::nullopt, gateway, kNodeUplink));
    if (net.mode == RoutingMode::kHostGw) {
      for (size_t j = 0; j < net.nodes.size(); j++) {
        if (j == i) continue;
        node.routes.push_back(MakeRoute(net.nodes[j].pod_cidr, net.nodes[j].ip, kNodeUplink));
      }
    }
    node.sysctls = {{"net.ipv4.ip_forward", "1"},
                    // Bridged pod-to-pod traffic must meet the service rules.
                    {"net.bridge.bridge-nf-call-iptables", "1"},
                    // The cluster is IPv4 only: no IPv6 on the pods' host-side
                    // veths, whose link-local addresses, DAD and MLD reports
                    // would cost kernel work for every pod.
                    {"net.ipv6.conf.default.disable_ipv6", "1"}};
    nodes.push_back(std::move(node));
  }
  // The internet: reaches the underlay (node IPs, whose masqueraded pod
  // traffic it answers) through the network, and nothing else of the
  // cluster. Made after the nodes, so its veth end in the network comes last.
  std::optional<NetnsPlan> internet;
  if (net.external.enabled) {
    LinkPlan uplink;
    uplink.name = kExternalLink;
    uplink.peer = "eth0";
    uplink.peer_netns = ExternalNetnsName(net);
    uplink.mtu = net.mtu;
    network.links.push_back(uplink);
    network.up.push_back(kExternalLink);
    network.addresses.push_back({kExternalLink, Ipv4Cidr(ExternalUplinkIp(net), ext.prefix_len())});

    NetnsPlan e;
    e.name = ExternalNetnsName(net);
    e.create = true;
    e.up = {"lo", "eth0"};
    e.addresses.push_back({"eth0", Ipv4Cidr(ExternalGateway(net), ext.prefix_len())});
    e.addresses.push_back({"eth0", Ipv4Cidr(ExternalServerIp(net), ext.prefix_len())});
    e.routes.push_back(MakeRoute(net.underlay, ExternalUplinkIp(net), "eth0"));
    if (net.load_balancer) {
      e.routes.push_back(MakeRoute(*net.load_balancer, ExternalUplinkIp(net), "eth0"));
    }
    internet = std::move(e);
  }
  // The network sends pod traffic back out the port it came in on; ICMP
  // redirects would teach nodes to bypass it. A send_redirects of "all" OR
  // the device's counts, so both are off.
  network.sysctls = {{"net.ipv4.ip_forward", "1"},
                     {"net.ipv4.conf.all.send_redirects", "0"},
                     {std::string("net.ipv4.conf.") + kUnderlayBridge + ".send_redirects", "0"}};
  // LB IPs' multipath routes hash flows by addresses and ports (not only
  // addresses), so one client's connections spread over the nodes.
  if (net.load_balancer) network.sysctls.push_back({"net.ipv4.fib_multipath_hash_policy", "1"});

  plan.namespaces.push_back(std::move(network));
  if (host) plan.namespaces.push_back(std::move(*host));
  for (auto& n : nodes) plan.namespaces.push_back(std::move(n));
  if (internet) plan.namespaces.push_back(std::move(*internet));
  return plan;
}

std::string HostVethName(std::string_view pod_uid) { return HashedIfName("veth", pod_uid); }

NetworkPlan PlanPodAttach(const PodInterface& pod) {
  Problems problems;
  if (pod.node_netns.empty()) problems.Add("nodeNetns", "Required value");
  if (pod.pod_netns.empty()) problems.Add("podNetns", "Required value");
  if (!ValidIfName(pod.host_veth)) {
    problems.Add("hostVeth", "Invalid value: \"" + pod.host_veth + "\": must be 1-15 characters");
  }
  if (!ValidIfName(pod.ifname)) {
    problems.Add("ifname", "Invalid value: \"" + pod.ifname + "\": must be 1-15 characters");
  }
  if (!ValidIfName(pod.bridge)) {
    problems.Add("bridge", "Invalid value: \"" + pod.bridge + "\": must be 1-15 characters");
  }
  if (pod.address.prefix_len() < 31 &&
      (pod.address.is_network() || pod.address.address() == pod.address.broadcast())) {
    problems.Add("address", "Invalid value: \"" + pod.address.ToString() +
                                "\": the network or broadcast address of its prefix");
  }
  if (pod.gateway == pod.address.address()) {
    problems.Add("gateway",
                 "Invalid value: \"" + pod.gateway.ToString() + "\": the pod's own address");
  }
  problems.ThrowIfAny("invalid pod interface");

  NetworkPlan plan;
  NetnsPlan node;
  node.name = pod.node_netns;
  LinkPlan veth;
  veth.name = pod.host_veth;
  veth.peer = pod.ifname;
  veth.peer_netns = pod.pod_netns;
  veth.master = pod.bridge;
  veth.hairpin = true;  // a pod reaching itself through a Service comes back this way
  veth.peer_mac = pod.mac;
  veth.mtu = pod.mtu;
  node.links.push_back(veth);
  node.up = {pod.host_veth};
  node.forget_neighbors.push_back({pod.bridge, pod.address.address()});

  NetnsPlan p;
  p.name = pod.pod_netns;
  // eth0 gets no IPv6 address: no link-local address, DAD or MLD work per
  // pod (lo keeps ::1, as in a kubelet's pod). An attribute of the link set
  // by netlink, not the namespace's default through /proc/sys, whose lookup
  // costs O(namespaces on the machine).
  p.no_ipv6 = {pod.ifname};
  p.up = {"lo", pod.ifname};
  p.addresses.push_back({pod.ifname, pod.address});
  // A gateway outside the pod's prefix (e.g. a /32 pod address) is still on
  // the link: say so, or the kernel refuses the route.
  bool onlink = !pod.address.Contains(pod.gateway);
  p.routes.push_back(MakeRoute(std::nullopt, pod.gateway, pod.ifname, onlink));
  plan.namespaces.push_back(std::move(node));
  plan.namespaces.push_back(std::move(p));
  return plan;
}

// ---- Applying ----

namespace {

// A plan's namespace: a /run/netns name, or a path (kHostNetns).
Netns OpenPlanNetns(const std::string& name) {
  return name.starts_with('/') ? Netns::OpenPath(name) : Netns::Open(name);
}

// Open handles of the namespaces a plan touches, by name.
class Handles {
 public:
  const Netns& Get(const std::string& name) {
    auto it = open_.find(name);
    if (it == open_.end()) it = open_.emplace(name, OpenPlanNetns(name)).first;
    return it->second;
  }
  void Clear() { open_.clear(); }

 private:
  std::map<std::string, Netns> open_;
};

struct MadeLink {
  std::string netns;
  std::string name;
};

void ApplyNetns(const NetnsPlan& ns, Handles& handles, std::vector<MadeLink>& made) {
  NetlinkSocket sock = NetlinkSocket::OpenIn(handles.Get(ns.name));

  NetlinkBatch create(sock);
  for (const auto& l : ns.links) {
    if (l.kind == LinkPlan::Kind::kBridge) {
      create.CreateBridge(l.name, l.mtu, l.mac);
      continue;
    }
    VethSpec v;
    v.name = l.name;
    v.peer_name = l.peer;
    v.peer_netns = l.peer_netns.empty() ? nullptr : &handles.Get(l.peer_netns);
    v.mac = l.mac;
    v.peer_mac = l.peer_mac;
    v.mtu = l.mtu;
    v.master = l.master;
    create.CreateVeth(v);
  }
  std::vector<bool> done;
  try {
    create.Commit(&done);
  } catch (...) {
    for (size_t i = 0; i < done.size(); i++) {
      if (done[i]) made.push_back({ns.name, ns.links[i].name});
    }
    throw;
  }
  for (const auto& l : ns.links) made.push_back({ns.name, l.name});

  NetlinkBatch configure(sock);
  for (const auto& l : ns.links) {
    if (l.kind == LinkPlan::Kind::kBridge && !l.master.empty())
      configure.SetMaster(l.name, l.master);
    if (l.hairpin) configure.SetHairpin(l.name);
  }
  for (const auto& l : ns.no_ipv6) configure.SetNoIpv6Addresses(l);
  for (const auto& u : ns.up) configure.SetUp(u);
  for (const auto& a : ns.addresses) configure.AddAddress(a.dev, a.address);
  for (const auto& r : ns.routes) configure.ReplaceRoute(r);
  configure.Commit();

  if (!ns.sysctls.empty()) WriteSysctls(handles.Get(ns.name), ns.sysctls, ns.name);
  for (const auto& n : ns.forget_neighbors) {
    try {
      sock.DeleteNeighbor(n.dev, n.address);
    } catch (const Error& e) {
      if (e.code() != Code::kNotFound) throw;
    }
  }
}

// Deletes links (best effort, newest first); gone is fine.
void DeleteLinks(const std::vector<MadeLink>& links) {
  for (auto it = links.rbegin(); it != links.rend(); ++it) {
    try {
      NetlinkSocket sock = NetlinkSocket::OpenIn(OpenPlanNetns(it->netns));
      sock.DeleteLink(it->name);
    } catch (const Error&) {
    }
  }
}

}  // namespace

void ApplyPlan(const NetworkPlan& plan) {
  std::vector<NamedNetns> created;
  Handles handles;
  std::vector<MadeLink> made;  // links made in namespaces the plan does not own
  std::set<std::string> owned;
  try {
    for (const auto& ns : plan.namespaces) {
      if (!ns.create) continue;
      try {
        created.push_back(NamedNetns::Create(ns.name));
      } catch (const Error& e) {
        throw InNetns(ns.name, e);
      }
      owned.insert(ns.name);
    }
    for (const auto& ns : plan.namespaces) {
      std::vector<MadeLink> made_here;
      auto remember = [&] {
        for (auto& m : made_here) {
          if (owned.count(m.netns) == 0) made.push_back(std::move(m));
        }
      };
      try {
        ApplyNetns(ns, handles, made_here);
      } catch (const Error& e) {
        remember();
        throw InNetns(ns.name, e);
      } catch (...) {
        remember();
        throw;
      }
      remember();
    }
  } catch (...) {
    handles.Clear();
    DeleteLinks(made);
    created.clear();  // removes the namespaces (and every link in them)
    throw;
  }
  for (auto& ns : created) ns.Release();
}

void RemovePlan(const NetworkPlan& plan) {
  std::set<std::string> owned;
  for (const auto& ns : plan.namespaces) {
    if (ns.create) owned.insert(ns.name);
  }
  std::vector<MadeLink> links;
  for (const auto& ns : plan.namespaces) {
    for (const auto& l : ns.links) {
      if (!ns.create) {
        links.push_back({ns.name, l.name});
      } else if (!l.peer_netns.empty() && owned.count(l.peer_netns) == 0) {
        // A veth end in a namespace the plan does not own (the host's): the
        // kernel would remove it with its peer's namespace, but only later,
        // when that namespace's cleanup runs; removed now, it is gone when
        // RemovePlan returns.
        links.push_back({l.peer_netns, l.peer});
      }
    }
  }
  DeleteLinks(links);
  for (auto it = plan.namespaces.rbegin(); it != plan.namespaces.rend(); ++it) {
    if (it->create) DeleteNamedNetns(it->name);
  }
}

bool DetachPod(const std::string& node_netns, const std::string& host_veth) {
  NetlinkSocket sock = NetlinkSocket::OpenIn(Netns::Open(node_netns));
  try {
    sock.DeleteLink(host_veth);
  } catch (const Error& e) {
    if (e.code() == Code::kNotFound) return false;
    throw InNetns(node_netns, e);
  }
  return true;
}

}  // namespace kin::netstack
