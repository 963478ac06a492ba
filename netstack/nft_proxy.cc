#include "netstack/nft_proxy.h"

#include <malloc.h>
#include <openssl/evp.h>

#include <chrono>
#include <deque>
#include <set>
#include <utility>

#include "base/error.h"
#include "netstack/conntrack.h"
#include "netstack/nftables.h"

namespace kin::netstack {
namespace {

constexpr const char* kT = "ip kin-proxy";  // family and table, as every command names them

// kube-proxy's chain name limits: prefixes up to 16 characters, bases up to
// 256 - 16 (knftables.NameLengthMax - chainNamePrefixLengthMax).
constexpr size_t kChainNameBaseLengthMax = 256 - 16;

// kube-proxy's hashAndTruncate: the first 8 characters of
// base32(sha256(name)) (RFC 4648 alphabet), "-", then the name itself; the
// hash keeps truncated names unique and similar names easy to tell apart.
//
// The digest is fetched once: EVP_sha256() inside EVP_Digest looks the
// algorithm up again at every call (OpenSSL 3, under a lock), a third of
// a full plan's time at 10,000 Services. (Should the fetch fail, EVP_Digest
// fails on the null digest below.)
const EVP_MD* Sha256() {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

std::string HashAndTruncate(const std::string& name) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(name.data(), name.size(), md, &len, Sha256(), nullptr) != 1) {
    throw Error::Internal("sha256 of nft chain name `" + name + "` failed");
  }
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  // 8 base32 characters are exactly the first 40 bits (5 bytes).
  uint64_t bits = 0;
  for (int i = 0; i < 5; ++i) bits = (bits << 8) | md[i];
  std::string out(8, 'A');
  for (int i = 7; i >= 0; --i) {
    out[i] = kAlphabet[bits & 31];
    bits >>= 5;
  }
  out += "-" + name;
  if (out.size() > kChainNameBaseLengthMax)
    out = out.substr(0, kChainNameBaseLengthMax - 3) + "...";
  return out;
}

// "ns/name/proto/port_name" (kube-proxy's servicePortChainNameBase).
std::string PortBase(const ProxyServicePort& p) {
  return p.ns + "/" + p.name + "/" + std::string(ToString(p.protocol)) + "/" + p.port_name;
}

std::string EndpointBase(const ProxyServicePort& p, const ProxyEndpoint& ep) {
  return HashAndTruncate(PortBase(p) + "__" + ep.ip.ToString() + "/" + std::to_string(ep.port));
}

// The names of one port's chains and sets, each hashed once (a port's
// endpoint chains are named by its policy chains and again when written).
class PortNames {
 public:
  explicit PortNames(const ProxyServicePort& p) : port_(p), base_(HashAndTruncate(PortBase(p))) {}
  std::string Service() const { return "service-" + base_; }
  std::string Local() const { return "local-" + base_; }
  std::string External() const { return "external-" + base_; }
  std::string Endpoint(const ProxyEndpoint& ep) { return "endpoint-" + EndpointBaseOf(ep); }
  std::string Affinity(const ProxyEndpoint& ep) { return "affinity-" + EndpointBaseOf(ep); }

 private:
  const std::string& EndpointBaseOf(const ProxyEndpoint& ep) {
    auto it = endpoints_.find(ep);
    if (it == endpoints_.end()) it = endpoints_.emplace(ep, EndpointBase(port_, ep)).first;
    return it->second;
  }
  const ProxyServicePort& port_;
  std::string base_;
  std::map<ProxyEndpoint, std::string> endpoints_;
};

// One map (or set) element: `value` empty for a set.
struct Element {
  std::string map;
  std::string key;
  std::string value;
  auto operator<=>(const Element&) const = default;
};

struct Chain {
  std::string name;
  std::vector<std::string> rules;
  bool operator==(const Chain&) const = default;
};

// Everything one service port owns in the table. Chains come in the order
// they are written (service, local, external, endpoints), so plans read
// like kube-proxy's.
struct PortObjects {
  std::vector<Chain> chains;
  std::vector<std::pair<std::string, std::string>> sets;  // name, declaration
  std::vector<Element> elements;
};

// What the node-wide part of the table depends on.
struct Globals {
  Ipv4Cidr cluster_cidr;
  Ipv4Cidr service_cidr;
  // kube-proxy's LocalTrafficDetector: with no pod range known there is no
  // "from a pod" test, so neither the off-cluster masquerade nor the
  // short-circuit of pod traffic is written.
  bool detect_local() const { return cluster_cidr.prefix_len() > 0; }
};

Globals GlobalsOf(const ProxyState& s) {
  return {s.cluster_cidr.Masked(), s.service_cidr.Masked()};
}
bool operator==(const Globals& a, const Globals& b) {
  return a.cluster_cidr == b.cluster_cidr && a.service_cidr == b.service_cidr;
}

std::string Goto(const std::string& chain) { return "goto " + chain; }

// The rules of a policy chain (service- or local-): affinity first, then a
// uniformly random endpoint (kube-proxy's writeServiceToEndpointRules).
//
// kube-proxy writes the choice as one rule `numgen random mod N vmap { 0 :
// goto A, 1 : goto B, ... }`. Each such rule makes an anonymous set, and
// the kernel names and binds a new anonymous set by walking every set of
// the table (nf_tables_newset's "__map%d" scan, nft_set_lookup_global,
// __nft_set_trans_bind: perf shows them at 60 % of a sync), so a full sync
// grows with the square of the Services (10,000 x 5 endpoints: 30 s here).
// The same uniform choice as N rules without sets: rule i (0-based) takes
// endpoint i with probability 1/(N-i) of what reaches it, the last takes
// the rest (iptables mode's `-m statistic` chain, with numgen):
//   numgen random mod N == 0 goto A; numgen random mod N-1 == 0 goto B; ...
void WriteServiceToEndpointRules(const ProxyServicePort& p, const std::vector<ProxyEndpoint>& eps,
                                 PortNames& names, Chain& chain) {
  if (p.affinity_timeout_seconds > 0) {
    for (const ProxyEndpoint& ep : eps) {
      chain.rules.push_back("ip saddr @" + names.Affinity(ep) + " goto " + names.Endpoint(ep));
    }
  }
  for (size_t i = 0; i + 1 < eps.size(); ++i) {
    chain.rules.push_back("numgen random mod " + std::to_string(eps.size() - i) + " == 0 goto " +
                          names.Endpoint(eps[i]));
  }
  chain.rules.push_back("goto " + names.Endpoint(eps.back()));
}

// kube-proxy's per-service-port part of syncProxyRules.
PortObjects BuildPort(const ProxyServicePort& p, const Globals& g) {
  PortObjects out;
  const std::string proto(ToString(p.protocol));
  const std::string port = std::to_string(p.port);
  const bool externally =
      p.node_port != 0 || !p.external_ips.empty() || !p.load_balancer_ips.empty();
  // BaseServicePortInfo.UsesClusterEndpoints / UsesLocalEndpoints: even
  // under external policy Local the cluster endpoints serve the
  // short-circuited traffic from pods and from the node.
  const bool uses_cluster = !p.internal_local || externally;
  const bool uses_local = p.internal_local || (p.external_local && externally);
  const bool has_endpoints = !p.cluster_endpoints.empty() || !p.local_endpoints.empty();

  PortNames names(p);
  const std::string svc_chain = names.Service();
  const std::string local_chain = names.Local();
  const std::string ext_chain = names.External();
  const bool uses_cluster_chain = uses_cluster && !p.cluster_endpoints.empty();
  const bool uses_local_chain = uses_local && !p.local_endpoints.empty();

  std::string internal_chain = svc_chain;
  bool has_internal = has_endpoints;
  if (p.internal_local) {
    internal_chain = local_chain;
    has_internal = has_internal && !p.local_endpoints.empty();
  }
  std::string external_policy_chain = svc_chain;
  bool has_external = has_endpoints;
  if (p.external_local) {
    external_policy_chain = local_chain;
    has_external = has_external && !p.local_endpoints.empty();
  }
  const bool uses_ext_chain = has_endpoints && externally;

  // No endpoints anywhere: reject at once. Only the Local ones missing:
  // drop (what is not short-circuited to cluster endpoints).
  std::string internal_verdict = Goto("reject-chain");
  std::string external_verdict = Goto("reject-chain");
  if (has_endpoints) {
    if (!has_internal) internal_verdict = "drop";
    if (!has_external) external_verdict = "drop";
  }

  Chain svc{svc_chain, {}}, local{local_chain, {}}, ext{ext_chain, {}};

  if (p.cluster_ip) {
    const std::string key = p.cluster_ip->ToString() + " . " + proto + " . " + port;
    if (has_internal) {
      out.elements.push_back({"service-ips", key, Goto(internal_chain)});
      if (g.detect_local()) {
        // Off-cluster traffic to a ClusterIP (a route to the service range
        // via this node, or the node itself) is masqueraded: the reply must
        // come back through here.
        Chain& c = p.internal_local ? local : svc;
        c.rules.push_back("ip daddr " + p.cluster_ip->ToString() + " " + proto + " dport " + port +
                          " ip saddr != " + g.cluster_cidr.ToString() +
                          " jump mark-for-masquerade");
      }
    } else {
      out.elements.push_back({"no-endpoint-services", key, internal_verdict});
    }
  }
  std::vector<Ipv4Address> external_ips = p.external_ips;
  external_ips.insert(external_ips.end(), p.load_balancer_ips.begin(), p.load_balancer_ips.end());
  for (Ipv4Address ip : external_ips) {
    const std::string key = ip.ToString() + " . " + proto + " . " + port;
    if (has_endpoints) out.elements.push_back({"service-ips", key, Goto(ext_chain)});
    if (!has_external) out.elements.push_back({"no-endpoint-services", key, external_verdict});
  }
  if (p.node_port != 0) {
    const std::string key = proto + " . " + std::to_string(p.node_port);
    if (has_endpoints) out.elements.push_back({"service-nodeports", key, Goto(ext_chain)});
    if (!has_external) out.elements.push_back({"no-endpoint-nodeports", key, external_verdict});
  }

  if (uses_ext_chain) {
    if (!p.external_local) {
      // The endpoint may be on another node: masquerade so replies return.
      ext.rules.push_back("jump mark-for-masquerade");
    } else {
      // Pods reaching an external address are subject to neither policy
      // (as if they went out to the load balancer and back).
      if (g.detect_local() && uses_cluster_chain) {
        ext.rules.push_back("ip saddr " + g.cluster_cidr.ToString() + " goto " + svc_chain);
      }
      // The node's own traffic has a local source address (maybe the
      // external IP itself): masquerade it and use any endpoint.
      ext.rules.push_back("fib saddr type local jump mark-for-masquerade");
      if (uses_cluster_chain) ext.rules.push_back("fib saddr type local goto " + svc_chain);
    }
    if (has_external) ext.rules.push_back(Goto(external_policy_chain));
  }

  if (uses_cluster_chain) WriteServiceToEndpointRules(p, p.cluster_endpoints, names, svc);
  if (uses_local_chain) WriteServiceToEndpointRules(p, p.local_endpoints, names, local);

  if (uses_cluster_chain) out.chains.push_back(std::move(svc));
  if (uses_local_chain) out.chains.push_back(std::move(local));
  if (uses_ext_chain) out.chains.push_back(std::move(ext));

  std::set<ProxyEndpoint> reachable;
  if (uses_cluster_chain) reachable.insert(p.cluster_endpoints.begin(), p.cluster_endpoints.end());
  if (uses_local_chain) reachable.insert(p.local_endpoints.begin(), p.local_endpoints.end());
  for (const ProxyEndpoint& ep : reachable) {
    Chain c{names.Endpoint(ep), {}};
    // Hairpin: a pod reaching itself through the service must see the
    // reply come from the service, so its source is rewritten.
    c.rules.push_back("ip saddr " + ep.ip.ToString() + " jump mark-for-masquerade");
    if (p.affinity_timeout_seconds > 0) {
      const std::string set = names.Affinity(ep);
      out.sets.emplace_back(set, "type ipv4_addr; flags dynamic,timeout; timeout " +
                                     std::to_string(p.affinity_timeout_seconds) + "s;");
      c.rules.push_back("update @" + set + " { ip saddr }");
    }
    c.rules.push_back("meta l4proto " + proto + " dnat to " + ep.ip.ToString() + ":" +
                      std::to_string(ep.port));
    out.chains.push_back(std::move(c));
  }
  return out;
}

// The kind and type of each of the table's maps and sets.
struct MapType {
  const char* kind;
  const char* type;
};
MapType MapTypeOf(const std::string& map) {
  if (map == "cluster-ips") return {"set", "type ipv4_addr;"};
  if (map == "service-nodeports" || map == "no-endpoint-nodeports") {
    return {"map", "type inet_proto . inet_service : verdict;"};
  }
  return {"map", "type ipv4_addr . inet_proto . inet_service : verdict;"};
}

// Elements are added as part of their map's declaration (`add map M { type
// ...; elements = { ... } }`), deleted with `delete element`. Adding a map
// needs no copy of the kernel's chains in libnftables' cache, `add element`
// does (it fetches every chain first: ~80 ms at 10,000 Services).
void WriteElements(const std::vector<Element>& elements, bool add, std::string& out) {
  std::map<std::string, std::vector<const Element*>> by_map;
  for (const Element& e : elements) by_map[e.map].push_back(&e);
  for (const auto& [map, list] : by_map) {
    if (add) {
      const MapType t = MapTypeOf(map);
      out += std::string("add ") + t.kind + " " + kT + " " + map + " { " + t.type +
             "\n\telements = {\n";
    } else {
      out += std::string("delete element ") + kT + " " + map + " {\n";
    }
    for (size_t i = 0; i < list.size(); ++i) {
      out += add ? "\t\t" : "\t";
      out += list[i]->key;
      if (add && !list[i]->value.empty()) out += " : " + list[i]->value;
      out += i + 1 < list.size() ? ",\n" : "\n";
    }
    out += add ? "\t}\n}\n" : "}\n";
  }
}

void WriteSet(const std::string& name, const std::string& decl, std::string& out) {
  out += std::string("add set ") + kT + " " + name + " { " + decl + "\n}\n";
}

// A chain with its rules as one `add chain` block: added to an empty or
// new chain, without the chain cache `add rule` needs (see WriteElements).
void WriteChain(const Chain& c, std::string& out) {
  out += std::string("add chain ") + kT + " " + c.name;
  if (c.rules.empty()) {
    out += "\n";
    return;
  }
  out += " {\n";
  for (const std::string& r : c.rules) out += "\t" + r + "\n";
  out += "}\n";
}

// Chains in an order where every jump goes to a chain written before
// (endpoint <- service, local <- external).
int ChainRank(const std::string& name) {
  if (name.rfind("endpoint-", 0) == 0) return 0;
  if (name.rfind("service-", 0) == 0) return 1;
  if (name.rfind("local-", 0) == 0) return 2;
  return 3;
}
void SortForWriting(std::vector<const Chain*>& chains) {
  std::stable_sort(chains.begin(), chains.end(), [](const Chain* a, const Chain* b) {
    return ChainRank(a->name) < ChainRank(b->name);
  });
}

// The node-wide part: base chains, dispatch, maps, masquerading, rejects.
void WriteSkeleton(const Globals& g, std::string& out) {
  // Creating then deleting the table makes the delete succeed whether or
  // not a table was there; all in the one transaction with the new table.
  out += std::string("add table ") + kT + "\n";
  out += std::string("delete table ") + kT + "\n";
  out += std::string("add table ") + kT + " { comment \"rules for kin's service proxy\"\n}\n";
  for (const char* m : {"no-endpoint-services", "service-ips", "no-endpoint-nodeports",
                        "service-nodeports", "cluster-ips"}) {
    const MapType t = MapTypeOf(m);
    out += std::string("add ") + t.kind + " " + kT + " " + m + " { " + t.type + "\n}\n";
  }
  // Regular chains first, so the base chains' jumps find them.
  std::vector<Chain> chains = {
      {"mark-for-masquerade", {std::string("mark set mark or ") + kNftMasqueradeMark}},
      {"masquerading",
       {std::string("mark and ") + kNftMasqueradeMark + " == 0 return",
        std::string("mark set mark xor ") + kNftMasqueradeMark, "masquerade fully-random"}},
      {"reject-chain", {"meta l4proto tcp reject with tcp reset", "reject"}},
      {"service-endpoints-check",
       {"ip daddr . meta l4proto . th dport vmap @no-endpoint-services"}},
      {"nodeport-endpoints-check",
       {"fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap "
        "@no-endpoint-nodeports"}},
      {"cluster-ips-check", {"ip daddr @cluster-ips reject"}},
      {"services",
       {"ip daddr . meta l4proto . th dport vmap @service-ips",
        "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap "
        "@service-nodeports"}},
  };
  // An address of the service range that is no ClusterIP: drop, as
  // kube-proxy (a port of a ClusterIP that is no service port: reject).
  if (g.service_cidr.prefix_len() > 0) {
    chains[5].rules.push_back("ip daddr " + g.service_cidr.ToString() + " drop");
  }
  // Filter chains run before DNAT (reject by the service address), and
  // once after it for locally sent traffic (the cluster IP check must not
  // see traffic already sent to an endpoint). kube-proxy writes these as
  // "dstnat - 10" and "dstnat + 10"; nft 1.0.6 accepts the name dstnat only
  // at the prerouting hook, so they are numbers here (dstnat is -100).
  std::vector<Chain> base = {
      {"filter-input",
       {"type filter hook input priority -110; policy accept;",
        "ct state new jump nodeport-endpoints-check", "ct state new jump service-endpoints-check"}},
      {"filter-forward",
       {"type filter hook forward priority -110; policy accept;",
        "ct state new jump service-endpoints-check", "ct state new jump cluster-ips-check"}},
      {"filter-output",
       {"type filter hook output priority -110; policy accept;",
        "ct state new jump service-endpoints-check"}},
      {"filter-output-post-dnat",
       {"type filter hook output priority -90; policy accept;",
        "ct state new jump cluster-ips-check"}},
      {"nat-prerouting",
       {"type nat hook prerouting priority dstnat; policy accept;", "jump services"}},
      {"nat-output", {"type nat hook output priority -100; policy accept;", "jump services"}},
      {"nat-postrouting",
       {"type nat hook postrouting priority srcnat; policy accept;", "jump masquerading"}},
  };
  for (const Chain& c : chains) WriteChain(c, out);
  for (const Chain& c : base) WriteChain(c, out);
}

std::vector<Element> ClusterIpElements(const std::set<Ipv4Address>& ips) {
  std::vector<Element> out;
  for (Ipv4Address ip : ips) out.push_back({"cluster-ips", ip.ToString(), ""});
  return out;
}

std::set<Ipv4Address> ClusterIps(const ProxyState& s) {
  std::set<Ipv4Address> out;
  for (const auto& [key, p] : s.ports) {
    if (p.cluster_ip) out.insert(*p.cluster_ip);
  }
  return out;
}

}  // namespace

std::string NftServiceChain(const ProxyServicePort& p) {
  return "service-" + HashAndTruncate(PortBase(p));
}
std::string NftLocalChain(const ProxyServicePort& p) {
  return "local-" + HashAndTruncate(PortBase(p));
}
std::string NftExternalChain(const ProxyServicePort& p) {
  return "external-" + HashAndTruncate(PortBase(p));
}
std::string NftEndpointChain(const ProxyServicePort& p, const ProxyEndpoint& ep) {
  return "endpoint-" + EndpointBase(p, ep);
}
std::string NftAffinitySet(const ProxyServicePort& p, const ProxyEndpoint& ep) {
  return "affinity-" + EndpointBase(p, ep);
}

std::string PlanNftFull(const ProxyState& state) {
  const Globals g = GlobalsOf(state);
  std::string out;
  out.reserve(1024 + state.ports.size() * 1500);
  WriteSkeleton(g, out);
  std::vector<Element> elements = ClusterIpElements(ClusterIps(state));
  for (const auto& [key, p] : state.ports) {
    PortObjects o = BuildPort(p, g);
    for (const auto& [name, decl] : o.sets) WriteSet(name, decl, out);
    std::vector<const Chain*> chains;
    for (const Chain& c : o.chains) chains.push_back(&c);
    SortForWriting(chains);
    for (const Chain* c : chains) WriteChain(*c, out);
    for (Element& e : o.elements) elements.push_back(std::move(e));
  }
  WriteElements(elements, /*add=*/true, out);
  return out;
}

NftIncrementalPlan PlanNftIncremental(const ProxyState& before, const ProxyState& after,
                                      const std::set<std::string>& stale, size_t max_stale) {
  const Globals g = GlobalsOf(after);
  if (!(GlobalsOf(before) == g)) return {PlanNftFull(after), {}, true};

  // The transaction's phases, each across every changed port, in an order
  // the kernel accepts: nothing is deleted while something refers to it.
  std::vector<Element> del_elements, add_elements;
  std::vector<std::string> flush_chains, delete_chains, delete_sets, add_chains;
  std::vector<std::pair<std::string, std::string>> add_sets, declare_sets;
  std::vector<const Chain*> write_chains;
  std::deque<PortObjects> keep;  // owns what write_chains points into (stable)
  std::set<Ipv4Address> cluster_ip_candidates;

  auto changed = [&](const ProxyServicePort* old, const ProxyServicePort* now) {
    PortObjects o = old ? BuildPort(*old, g) : PortObjects{};
    keep.push_back(now ? BuildPort(*now, g) : PortObjects{});
    const PortObjects& n = keep.back();
    // Only an address that came or went may change cluster-ips.
    std::optional<Ipv4Address> was_ip = old ? old->cluster_ip : std::nullopt;
    std::optional<Ipv4Address> is_ip = now ? now->cluster_ip : std::nullopt;
    if (was_ip != is_ip) {
      if (was_ip) cluster_ip_candidates.insert(*was_ip);
      if (is_ip) cluster_ip_candidates.insert(*is_ip);
    }

    std::set<Element> old_el(o.elements.begin(), o.elements.end());
    std::set<Element> new_el(n.elements.begin(), n.elements.end());
    // A changed value is a delete and an add of the key.
    for (const Element& e : old_el) {
      if (!new_el.contains(e)) del_elements.push_back(e);
    }
    for (const Element& e : new_el) {
      if (!old_el.contains(e)) add_elements.push_back(e);
    }

    std::map<std::string, std::string> old_sets(o.sets.begin(), o.sets.end());
    std::map<std::string, std::string> new_sets(n.sets.begin(), n.sets.end());
    bool sets_changed = false;
    for (const auto& [name, decl] : old_sets) {
      auto it = new_sets.find(name);
      if (it == new_sets.end() || it->second != decl) {
        delete_sets.push_back(name);
        sets_changed = true;
      }
    }
    for (const auto& [name, decl] : new_sets) {
      auto it = old_sets.find(name);
      if (it == old_sets.end() || it->second != decl) {
        add_sets.emplace_back(name, decl);
      } else {
        // Rules written without libnftables' full cache must find every
        // set they name declared in the transaction (adding an existing
        // set again with the same declaration changes nothing).
        declare_sets.emplace_back(name, decl);
      }
    }

    std::map<std::string, const Chain*> old_chains, new_chains;
    for (const Chain& c : o.chains) old_chains[c.name] = &c;
    for (const Chain& c : n.chains) new_chains[c.name] = &c;
    for (const auto& [name, c] : old_chains) {
      auto it = new_chains.find(name);
      // A recreated set is referred to by unchanged rule text: rewrite
      // every chain of the port then, so the old set can go.
      if (it == new_chains.end() || sets_changed || !(*it->second == *c)) {
        flush_chains.push_back(name);
      }
      if (it == new_chains.end()) delete_chains.push_back(name);
    }
    for (const Chain& c : n.chains) {
      auto it = old_chains.find(c.name);
      if (it == old_chains.end()) add_chains.push_back(c.name);
      if (it == old_chains.end() || sets_changed || !(*it->second == c)) {
        write_chains.push_back(&c);
      }
    }
  };

  // Both maps are sorted by key: one walk over the two finds what went,
  // changed and came (a lookup per port cost more than the rest of the plan
  // at 10,000 Services). Removed and changed ports first, then new ones.
  std::vector<const ProxyServicePort*> added;
  auto b = before.ports.begin(), a = after.ports.begin();
  while (b != before.ports.end() || a != after.ports.end()) {
    if (a == after.ports.end() || (b != before.ports.end() && b->first < a->first)) {
      changed(&b->second, nullptr);
      ++b;
    } else if (b == before.ports.end() || a->first < b->first) {
      added.push_back(&a->second);
      ++a;
    } else {
      if (!(a->second == b->second)) changed(&b->second, &a->second);
      ++a;
      ++b;
    }
  }
  for (const ProxyServicePort* now : added) changed(nullptr, now);

  // cluster-ips is shared by the ports of a Service: an address goes when
  // no port of `after` has it, comes when no port of `before` had it.
  if (!cluster_ip_candidates.empty()) {
    std::set<Ipv4Address> was = ClusterIps(before), is = ClusterIps(after);
    for (Ipv4Address ip : cluster_ip_candidates) {
      if (was.contains(ip) && !is.contains(ip)) {
        del_elements.push_back({"cluster-ips", ip.ToString(), ""});
      }
      if (!was.contains(ip) && is.contains(ip)) {
        add_elements.push_back({"cluster-ips", ip.ToString(), ""});
      }
    }
  }

  // Deleting anything makes libnftables fetch every chain of the table
  // first; emptied chains can wait for a transaction that deletes anyway.
  std::set<std::string> pending = stale;
  for (const std::string& c : add_chains) pending.erase(c);
  pending.insert(delete_chains.begin(), delete_chains.end());
  const bool deletes = !del_elements.empty() || !delete_sets.empty();
  const bool delete_now = deletes || pending.size() > max_stale;

  NftIncrementalPlan plan;
  std::string& out = plan.script;
  WriteElements(del_elements, /*add=*/false, out);
  for (const std::string& c : flush_chains) {
    out += std::string("flush chain ") + kT + " " + c + "\n";
  }
  if (delete_now) {
    for (const std::string& c : pending) out += std::string("delete chain ") + kT + " " + c + "\n";
  } else {
    plan.stale_chains = std::move(pending);
  }
  for (const std::string& s : delete_sets) out += std::string("delete set ") + kT + " " + s + "\n";
  for (const auto& [name, decl] : add_sets) WriteSet(name, decl, out);
  for (const auto& [name, decl] : declare_sets) WriteSet(name, decl, out);
  for (const std::string& c : add_chains) out += std::string("add chain ") + kT + " " + c + "\n";
  SortForWriting(write_chains);
  for (const Chain* c : write_chains) WriteChain(*c, out);
  WriteElements(add_elements, /*add=*/true, out);
  plan.fetches_cache = delete_now && !out.empty();
  return plan;
}

namespace {

// Emptied chains left in the table at most (each is a few hundred bytes of
// kernel memory and costs nothing per packet: nothing jumps to it).
constexpr size_t kMaxStaleChains = 1000;
constexpr auto kFullSyncPeriod = std::chrono::hours(1);
// Below this many service ports the table is re-read faster than libnftables'
// cache is worth its memory (see nftables.h): the cache is released after
// each sync.
constexpr size_t kCachedAbovePorts = 200;

class NftProxyBackend : public ProxyBackend {
 public:
  explicit NftProxyBackend(std::string netns) : nft_(std::move(netns)) {}

  void Sync(const ProxyState& state) override {
    NftIncrementalPlan plan;
    // A full sync at least hourly (kube-proxy's FullSyncPeriod) repairs
    // rules changed behind the proxy's back.
    const auto now = std::chrono::steady_clock::now();
    const bool full = !last_ || full_next_ || now - last_full_ > kFullSyncPeriod;
    if (full) {
      plan.script = PlanNftFull(state);
    } else {
      plan = PlanNftIncremental(*last_, state, stale_, kMaxStaleChains);
    }
    // A failed transaction changed nothing: the table still holds last_.
    full_next_ = true;
    if (!plan.script.empty()) nft_.Run(plan.script);
    if (full) {
      last_full_ = now;
      // libnftables' cache now holds every object of the script (~280 MB
      // at 10,000 Services x 5 endpoints) and would drop it at the next
      // transaction anyway (the table's generation changed): release it
      // now, off the next sync's path. glibc keeps what libnftables freed
      // (the parse peaks at ~0.7 GB): give it back to the system, or each
      // node's proxy stays that big (0.67 GB resident after a full sync at
      // 10,000 Services, 65 MB after; the trim takes ~80 ms there).
      nft_.ReleaseCache();
      if (state.ports.size() >= kCachedAbovePorts) ::malloc_trim(0);
    }
    stale_ = std::move(plan.stale_chains);
    // What was applied before this backend began is unknown: every UDP
    // port with endpoints counts as new (kube-proxy does the same at start).
    std::vector<ConntrackFlush> flushes = PlanConntrackFlush(last_ ? *last_ : ProxyState{}, state);
    last_ = state;
    if (!flushes.empty()) FlushConntrack(nft_.netns(), flushes);
    full_next_ = false;
    if (state.ports.size() < kCachedAbovePorts) nft_.ReleaseCache();
  }

  void Remove() override {
    full_next_ = true;
    last_.reset();
    stale_.clear();
    // Creating it first makes the delete succeed when there is none.
    nft_.Run(std::string("add table ") + kT + "\ndelete table " + kT + "\n");
    nft_.ReleaseCache();
  }

 private:
  NftContext nft_;
  std::optional<ProxyState> last_;
  std::set<std::string> stale_;  // emptied chains not deleted yet
  bool full_next_ = true;
  std::chrono::steady_clock::time_point last_full_{};
};

}  // namespace

std::unique_ptr<ProxyBackend> NewNftProxyBackend(std::string netns) {
  return std::make_unique<NftProxyBackend>(std::move(netns));
}

}  // namespace kin::netstack
