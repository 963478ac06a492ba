#include "netstack/iptables_proxy.h"

#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <sstream>

#include "base/error.h"
#include "base/netns.h"
#include "base/process.h"
#include "netstack/conntrack.h"

namespace kin::netstack {

namespace {

// kube-proxy's chain names and marks (proxier.go).
constexpr const char* kServicesChain = "KUBE-SERVICES";
constexpr const char* kExternalServicesChain = "KUBE-EXTERNAL-SERVICES";
constexpr const char* kNodePortsChain = "KUBE-NODEPORTS";
constexpr const char* kPostroutingChain = "KUBE-POSTROUTING";
constexpr const char* kMarkMasqChain = "KUBE-MARK-MASQ";
constexpr const char* kForwardChain = "KUBE-FORWARD";
constexpr const char* kProxyFirewallChain = "KUBE-PROXY-FIREWALL";
// --masquerade-bit 14, the default.
constexpr const char* kMasqMark = "0x4000";
// largeClusterEndpointsThreshold.
constexpr size_t kLargeClusterEndpoints = 1000;

constexpr std::string_view kServiceChainPrefixes[] = {"KUBE-SVC-", "KUBE-SVL-", "KUBE-FW-",
                                                      "KUBE-EXT-", "KUBE-SEP-"};

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// kube-proxy's isServiceChainName: chains it made per service port, which a
// sync deletes when no longer needed.
bool IsServiceChain(std::string_view chain) {
  return std::any_of(std::begin(kServiceChainPrefixes), std::end(kServiceChainPrefixes),
                     [&](std::string_view p) { return StartsWith(chain, p); });
}

// The protocol as kube-proxy lowercases it for hashes and `-m`/`-p`.
std::string Proto(L4Protocol p) { return std::string(ToString(p)); }

std::string EndpointString(const ProxyEndpoint& ep) {
  return ep.ip.ToString() + ":" + std::to_string(ep.port);
}

// The first 16 characters of base32(sha256(text)), RFC 4648 alphabet, as
// Go's base32.StdEncoding: 16 characters are exactly the first 10 bytes.
std::string Hash16(const std::string& text) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(text.data(), text.size(), md, &len, EVP_sha256(), nullptr) != 1) {
    throw Error::Internal("sha256 of chain name `" + text + "` failed");
  }
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out;
  for (int group = 0; group < 2; ++group) {
    uint64_t bits = 0;
    for (int i = 0; i < 5; ++i) bits = (bits << 8) | md[group * 5 + i];
    for (int i = 7; i >= 0; --i) out += kAlphabet[(bits >> (i * 5)) & 31];
  }
  return out;
}

// kube-proxy's computeProbability: fmt "%0.10f" of 1/n.
std::string Probability(size_t n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%0.10f", 1.0 / static_cast<double>(n));
  return buf;
}

std::string Quote(const std::string& s) { return "\"" + s + "\""; }

// What kube-proxy decides for one service port before writing its rules
// (syncProxyRules and proxy.CategorizeEndpoints).
struct PortPlan {
  const ProxyServicePort* port = nullptr;
  std::string name;  // IptablesServicePortName
  std::string proto;
  std::string cluster_chain, local_chain, external_chain;
  bool externally_accessible = false;
  bool external_local = false;  // externalTrafficPolicy Local, and it applies
  std::vector<ProxyEndpoint> cluster_eps, local_eps, reachable_eps;
  bool has_endpoints = false;
  bool has_internal = false;
  bool has_external = false;
  bool uses_cluster_chain = false;
  bool uses_local_chain = false;
  bool uses_external_chain = false;
  std::string internal_chain, external_policy_chain;
};

PortPlan Decide(const ProxyServicePort& p) {
  PortPlan d;
  d.port = &p;
  d.name = IptablesServicePortName(p);
  d.proto = Proto(p.protocol);
  d.cluster_chain = IptablesClusterChain(p);
  d.local_chain = IptablesLocalChain(p);
  d.external_chain = IptablesExternalChain(p);
  d.externally_accessible =
      p.node_port != 0 || !p.external_ips.empty() || !p.load_balancer_ips.empty();
  d.external_local = p.external_local && d.externally_accessible;
  // UsesClusterEndpoints: external traffic under policy Local still needs the
  // cluster endpoints for the short-circuit of pod and node traffic.
  bool uses_cluster = !p.internal_local || d.externally_accessible;
  bool uses_local = p.internal_local || d.external_local;
  if (uses_cluster) d.cluster_eps = p.cluster_endpoints;
  if (uses_local) d.local_eps = p.local_endpoints;
  if (!uses_local) {
    d.reachable_eps = d.cluster_eps;
  } else if (!uses_cluster) {
    d.reachable_eps = d.local_eps;
  } else {
    std::set<ProxyEndpoint> all(d.cluster_eps.begin(), d.cluster_eps.end());
    all.insert(d.local_eps.begin(), d.local_eps.end());
    d.reachable_eps.assign(all.begin(), all.end());
  }
  d.has_endpoints = !p.cluster_endpoints.empty() || !p.local_endpoints.empty();
  d.uses_cluster_chain = !d.cluster_eps.empty() && uses_cluster;
  d.uses_local_chain = !d.local_eps.empty() && uses_local;
  d.internal_chain = d.cluster_chain;
  d.has_internal = d.has_endpoints;
  if (p.internal_local) {
    d.internal_chain = d.local_chain;
    if (p.local_endpoints.empty()) d.has_internal = false;
  }
  d.external_policy_chain = d.cluster_chain;
  d.has_external = d.has_endpoints;
  if (d.external_local) {
    d.external_policy_chain = d.local_chain;
    if (p.local_endpoints.empty()) d.has_external = false;
  }
  d.uses_external_chain = d.has_endpoints && d.externally_accessible;
  return d;
}

std::vector<std::string> ChainsOf(const PortPlan& d) {
  std::vector<std::string> out;
  if (d.uses_external_chain) out.push_back(d.external_chain);
  if (d.uses_cluster_chain) out.push_back(d.cluster_chain);
  if (d.uses_local_chain) out.push_back(d.local_chain);
  for (const auto& ep : d.reachable_eps) out.push_back(IptablesEndpointChain(*d.port, ep));
  return out;
}

// Lines of one table section: chain declarations first, then rules.
struct Section {
  std::vector<std::string> chains;
  std::vector<std::string> rules;
  void Chain(const std::string& name) { chains.push_back(":" + name + " - [0:0]"); }
  void Rule(std::string line) { rules.push_back(std::move(line)); }
  void Render(std::string& out, const char* table) const {
    out += "*";
    out += table;
    out += "\n";
    for (const auto& l : chains) out += l + "\n";
    for (const auto& l : rules) out += l + "\n";
    out += "COMMIT\n";
  }
};

// The rules from a service chain (SVC or SVL) to its endpoints'
// (writeServiceToEndpointRules): affinity checks first, then the random
// choice: endpoint i of n matches with probability 1/(n-i), the last always.
// In a large cluster the per-endpoint comments are left out
// (appendServiceCommentLocked).
void WriteServiceToEndpointRules(Section& nat, const PortPlan& d, const std::string& chain,
                                 const std::vector<ProxyEndpoint>& eps, bool large) {
  const ProxyServicePort& p = *d.port;
  auto comment = [&](const ProxyEndpoint& ep) {
    return large ? std::string()
                 : " -m comment --comment " + Quote(d.name + " -> " + EndpointString(ep));
  };
  if (p.affinity_timeout_seconds > 0) {
    for (const auto& ep : eps) {
      std::string sep = IptablesEndpointChain(p, ep);
      nat.Rule("-A " + chain + comment(ep) + " -m recent --name " + sep + " --rcheck --seconds " +
               std::to_string(p.affinity_timeout_seconds) + " --reap -j " + sep);
    }
  }
  for (size_t i = 0; i < eps.size(); ++i) {
    std::string line = "-A " + chain + comment(eps[i]);
    if (i + 1 < eps.size()) {
      line += " -m statistic --mode random --probability " + Probability(eps.size() - i);
    }
    nat.Rule(line + " -j " + IptablesEndpointChain(p, eps[i]));
  }
}

// The top-level chains every sync declares (which flushes them) and fills.
constexpr const char* kFilterChains[] = {kServicesChain, kExternalServicesChain, kForwardChain,
                                         kNodePortsChain, kProxyFirewallChain};
constexpr const char* kNatChains[] = {kServicesChain, kNodePortsChain, kPostroutingChain,
                                      kMarkMasqChain};

bool IsBuiltinChain(std::string_view c) {
  return c == "PREROUTING" || c == "INPUT" || c == "FORWARD" || c == "OUTPUT" || c == "POSTROUTING";
}

// Does an iptables-save rule line jump (-j/-g) to `chain`?
bool JumpsTo(std::string_view line, std::string_view chain) {
  for (std::string_view verb : {" -j ", " -g "}) {
    for (size_t at = line.find(verb); at != std::string_view::npos; at = line.find(verb, at + 1)) {
      std::string_view target = line.substr(at + verb.size());
      target = target.substr(0, target.find(' '));
      if (target == chain) return true;
    }
  }
  return false;
}

// KUBE-* chains of `table` in `existing` that are neither top-level chains
// of this layout nor per-service chains (those are handled by name): the
// rules of built-in chains jumping to them are deleted, then the chains.
template <size_t N>
void DeleteStaleTopLevelChains(const IptablesRuleset& existing, const std::string& table,
                               const char* const (&ours)[N], Section& out) {
  auto chains = existing.chains.find(table);
  if (chains == existing.chains.end()) return;
  std::vector<std::string> stale;
  for (const auto& c : chains->second) {
    if (!StartsWith(c, "KUBE-") || IsServiceChain(c)) continue;
    if (std::find(std::begin(ours), std::end(ours), c) != std::end(ours)) continue;
    stale.push_back(c);
  }
  if (stale.empty()) return;
  if (auto rules = existing.rules.find(table); rules != existing.rules.end()) {
    for (const auto& line : rules->second) {
      std::string_view rest = std::string_view(line).substr(3);  // after "-A "
      if (!IsBuiltinChain(rest.substr(0, rest.find(' ')))) continue;
      for (const auto& c : stale) {
        if (JumpsTo(line, c)) {
          out.Rule("-D " + std::string(rest));
          break;
        }
      }
    }
  }
  for (const auto& c : stale) {
    out.Chain(c);
    out.Rule("-X " + c);
  }
}

bool HasJump(const IptablesRuleset& rs, const IptablesJump& j) {
  auto it = rs.rules.find(j.table);
  if (it == rs.rules.end()) return false;
  const std::string want = "-A " + j.chain + " " + j.spec;
  return std::find(it->second.begin(), it->second.end(), want) != it->second.end();
}

}  // namespace

std::string IptablesServicePortName(const ProxyServicePort& port) {
  std::string s = port.ns + "/" + port.name;
  if (!port.port_name.empty()) s += ":" + port.port_name;
  return s;
}

std::string IptablesClusterChain(const ProxyServicePort& port) {
  return "KUBE-SVC-" + Hash16(IptablesServicePortName(port) + Proto(port.protocol));
}
std::string IptablesLocalChain(const ProxyServicePort& port) {
  return "KUBE-SVL-" + Hash16(IptablesServicePortName(port) + Proto(port.protocol));
}
std::string IptablesExternalChain(const ProxyServicePort& port) {
  return "KUBE-EXT-" + Hash16(IptablesServicePortName(port) + Proto(port.protocol));
}
std::string IptablesEndpointChain(const ProxyServicePort& port, const ProxyEndpoint& ep) {
  return "KUBE-SEP-" +
         Hash16(IptablesServicePortName(port) + Proto(port.protocol) + EndpointString(ep));
}

std::set<std::string> IptablesServiceChains(const ProxyState& state) {
  std::set<std::string> out;
  for (const auto& [key, port] : state.ports) {
    for (auto& c : ChainsOf(Decide(port))) out.insert(std::move(c));
  }
  return out;
}

const std::vector<IptablesJump>& IptablesJumps() {
  // kube-proxy's iptablesJumpChains; each is prepended, so a chain with
  // several ends up with them in reverse order of this list.
  static const std::vector<IptablesJump> kJumps = {
      {"filter", "INPUT",
       "-m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service "
       "portals\" -j KUBE-EXTERNAL-SERVICES"},
      {"filter", "FORWARD",
       "-m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service "
       "portals\" -j KUBE-EXTERNAL-SERVICES"},
      {"filter", "INPUT",
       "-m comment --comment \"kubernetes health check service ports\" -j KUBE-NODEPORTS"},
      {"filter", "FORWARD",
       "-m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j "
       "KUBE-SERVICES"},
      {"filter", "OUTPUT",
       "-m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j "
       "KUBE-SERVICES"},
      {"filter", "FORWARD", "-m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD"},
      {"filter", "INPUT",
       "-m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j "
       "KUBE-PROXY-FIREWALL"},
      {"filter", "OUTPUT",
       "-m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j "
       "KUBE-PROXY-FIREWALL"},
      {"filter", "FORWARD",
       "-m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j "
       "KUBE-PROXY-FIREWALL"},
      {"nat", "OUTPUT", "-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"},
      {"nat", "PREROUTING", "-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"},
      {"nat", "POSTROUTING",
       "-m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING"},
  };
  return kJumps;
}

IptablesRuleset ParseIptablesSave(std::string_view save) {
  IptablesRuleset rs;
  std::string table;
  std::istringstream in{std::string(save)};
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    if (line[0] == '*') {
      table = line.substr(1);
      rs.chains[table];
    } else if (line[0] == ':') {
      rs.chains[table].insert(line.substr(1, line.find(' ') - 1));
    } else if (StartsWith(line, "-A ")) {
      rs.rules[table].push_back(line);
    }
  }
  return rs;
}

std::string PlanIptablesRestore(const ProxyState& now, const ProxyState* before) {
  IptablesPlanOptions o;
  o.before = before;
  return PlanIptablesRestore(now, o);
}

std::string PlanIptablesRestore(const ProxyState& now, const IptablesPlanOptions& o) {
  Section filter, nat;
  // Where a partial sync writes the chains of unchanged ports: nowhere.
  Section skipped;
  for (const char* c : kFilterChains) filter.Chain(c);
  for (const char* c : kNatChains) nat.Chain(c);

  // Jumps from the built-in chains that are missing, prepended in
  // kube-proxy's order (it runs EnsureRule(Prepend) for each).
  if (o.existing != nullptr) {
    for (const auto& j : IptablesJumps()) {
      if (HasJump(*o.existing, j)) continue;
      (j.table == "nat" ? nat : filter).Rule("-I " + j.chain + " " + j.spec);
    }
  }

  const std::string mark = std::string(kMasqMark) + "/" + kMasqMark;
  nat.Rule(std::string("-A ") + kPostroutingChain + " -m mark ! --mark " + mark + " -j RETURN");
  // Clear the mark so a packet that traverses the stack again is not
  // masqueraded twice.
  nat.Rule(std::string("-A ") + kPostroutingChain + " -j MARK --xor-mark " + kMasqMark);
  nat.Rule(std::string("-A ") + kPostroutingChain +
           " -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE "
           "--random-fully");
  nat.Rule(std::string("-A ") + kMarkMasqChain + " -j MARK --or-mark " + kMasqMark);

  // The pod range tells pod traffic from other traffic (kube-proxy's
  // --cluster-cidr local detector); 0.0.0.0/0 means it is not known.
  const bool detect_local = now.cluster_cidr.prefix_len() > 0;
  const std::string cluster_cidr = now.cluster_cidr.Masked().ToString();

  // Over 1,000 endpoints kube-proxy drops the per-endpoint comments, which
  // make up a large part of the input ("large cluster mode").
  size_t total_endpoints = 0;
  for (const auto& [key, p] : now.ports) {
    std::set<ProxyEndpoint> all(p.cluster_endpoints.begin(), p.cluster_endpoints.end());
    all.insert(p.local_endpoints.begin(), p.local_endpoints.end());
    total_endpoints += all.size();
  }
  const bool large = total_endpoints > kLargeClusterEndpoints;

  std::set<std::string> active;
  for (const auto& [key, p] : now.ports) {
    PortPlan d = Decide(p);
    for (auto& c : ChainsOf(d)) active.insert(std::move(c));
    const std::string port = std::to_string(p.port);
    const std::string match = " -m " + d.proto + " -p " + d.proto;

    std::string internal_filter_target, internal_filter_comment;
    std::string external_filter_target, external_filter_comment;
    if (!d.has_endpoints) {
      // No endpoints at all: no nat chains, only REJECTs in filter.
      internal_filter_target = external_filter_target = "REJECT";
      internal_filter_comment = external_filter_comment = Quote(d.name + " has no endpoints");
    } else {
      if (!d.has_internal) {
        internal_filter_target = "DROP";
        internal_filter_comment = Quote(d.name + " has no local endpoints");
      }
      if (!d.has_external) {
        external_filter_target = "DROP";
        external_filter_comment = Quote(d.name + " has no local endpoints");
      }
    }

    // Capture the cluster IP.
    if (p.cluster_ip) {
      const std::string dst = " -d " + p.cluster_ip->ToString() + " --dport " + port;
      if (d.has_internal) {
        nat.Rule(std::string("-A ") + kServicesChain + " -m comment --comment " +
                 Quote(d.name + " cluster IP") + match + dst + " -j " + d.internal_chain);
      } else {
        filter.Rule(std::string("-A ") + kServicesChain + " -m comment --comment " +
                    internal_filter_comment + match + dst + " -j " + internal_filter_target);
      }
    }
    // External IPs.
    for (const auto& ip : p.external_ips) {
      const std::string dst = " -d " + ip.ToString() + " --dport " + port;
      if (d.has_endpoints) {
        nat.Rule(std::string("-A ") + kServicesChain + " -m comment --comment " +
                 Quote(d.name + " external IP") + match + dst + " -j " + d.external_chain);
      }
      if (!d.has_external) {
        filter.Rule(std::string("-A ") + kExternalServicesChain + " -m comment --comment " +
                    external_filter_comment + match + dst + " -j " + external_filter_target);
      }
    }
    // Load-balancer ingress IPs.
    for (const auto& ip : p.load_balancer_ips) {
      if (d.has_endpoints) {
        nat.Rule(std::string("-A ") + kServicesChain + " -m comment --comment " +
                 Quote(d.name + " loadbalancer IP") + match + " -d " + ip.ToString() + " --dport " +
                 port + " -j " + d.external_chain);
      }
    }
    if (!d.has_external) {
      for (const auto& ip : p.load_balancer_ips) {
        filter.Rule(std::string("-A ") + kExternalServicesChain + " -m comment --comment " +
                    external_filter_comment + match + " -d " + ip.ToString() + " --dport " + port +
                    " -j " + external_filter_target);
      }
    }
    // NodePorts.
    if (p.node_port != 0) {
      const std::string node_port = std::to_string(p.node_port);
      if (d.has_endpoints) {
        nat.Rule(std::string("-A ") + kNodePortsChain + " -m comment --comment " + d.name + match +
                 " --dport " + node_port + " -j " + d.external_chain);
      }
      if (!d.has_external) {
        filter.Rule(std::string("-A ") + kExternalServicesChain + " -m comment --comment " +
                    external_filter_comment + " -m addrtype --dst-type LOCAL" + match +
                    " --dport " + node_port + " -j " + external_filter_target);
      }
    }

    // The per-service chains; a partial sync leaves those of unchanged ports
    // out, as they are already in the kernel.
    bool unchanged = false;
    if (o.partial && o.before != nullptr && o.before->cluster_cidr == now.cluster_cidr) {
      auto it = o.before->ports.find(key);
      unchanged = it != o.before->ports.end() && it->second == p;
    }
    Section& out = unchanged ? skipped : nat;

    // Internal traffic from outside the pod range is masqueraded: it may have
    // been routed here from off-node and must return the same way.
    if (d.has_internal && p.cluster_ip && detect_local) {
      out.Rule("-A " + d.internal_chain + " -m comment --comment " + Quote(d.name + " cluster IP") +
               match + " -d " + p.cluster_ip->ToString() + " --dport " + port + " ! -s " +
               cluster_cidr + " -j " + kMarkMasqChain);
    }

    if (d.uses_external_chain) {
      out.Chain(d.external_chain);
      if (!d.external_local) {
        // Endpoints may be on another node: masquerade so replies come back.
        out.Rule("-A " + d.external_chain + " -m comment --comment " +
                 Quote("masquerade traffic for " + d.name + " external destinations") + " -j " +
                 kMarkMasqChain);
      } else {
        // Pods reaching an external address are treated as if they went out
        // to a load balancer and came back: policy Cluster, source kept.
        if (detect_local) {
          out.Rule("-A " + d.external_chain + " -m comment --comment " +
                   Quote("pod traffic for " + d.name + " external destinations") + " -s " +
                   cluster_cidr + " -j " + d.cluster_chain);
        }
        // The node's own traffic has a local address as source, which an
        // endpoint elsewhere could not answer: masquerade it.
        out.Rule("-A " + d.external_chain + " -m comment --comment " +
                 Quote("masquerade LOCAL traffic for " + d.name + " external destinations") +
                 " -m addrtype --src-type LOCAL -j " + kMarkMasqChain);
        out.Rule("-A " + d.external_chain + " -m comment --comment " +
                 Quote("route LOCAL traffic for " + d.name + " external destinations") +
                 " -m addrtype --src-type LOCAL -j " + d.cluster_chain);
      }
      if (d.has_external) {
        out.Rule("-A " + d.external_chain + " -j " + d.external_policy_chain);
      }
    }

    if (d.uses_cluster_chain) {
      out.Chain(d.cluster_chain);
      WriteServiceToEndpointRules(out, d, d.cluster_chain, d.cluster_eps, large);
    }
    if (d.uses_local_chain) {
      out.Chain(d.local_chain);
      WriteServiceToEndpointRules(out, d, d.local_chain, d.local_eps, large);
    }
    for (const auto& ep : d.reachable_eps) {
      const std::string sep = IptablesEndpointChain(p, ep);
      out.Chain(sep);
      const std::string head = "-A " + sep + (large ? "" : " -m comment --comment " + d.name);
      // Hairpin: a pod reaching itself through the Service must see the
      // reply come from the Service, so masquerade it.
      out.Rule(head + " -s " + ep.ip.ToString() + " -j " + kMarkMasqChain);
      std::string dnat = head;
      if (p.affinity_timeout_seconds > 0) dnat += " -m recent --name " + sep + " --set";
      out.Rule(dnat + match + " -j DNAT --to-destination " + EndpointString(ep));
    }
  }

  // Chains no longer needed: flushed by their declaration, then deleted.
  std::set<std::string> stale;
  if (o.before != nullptr) {
    for (const auto& c : IptablesServiceChains(*o.before)) {
      if (!active.count(c)) stale.insert(c);
    }
  }
  if (o.existing != nullptr) {
    auto it = o.existing->chains.find("nat");
    if (it != o.existing->chains.end()) {
      for (const auto& c : it->second) {
        if (IsServiceChain(c) && !active.count(c)) stale.insert(c);
      }
    }
  }
  for (const auto& c : stale) {
    nat.Chain(c);
    nat.Rule("-X " + c);
  }
  if (o.existing != nullptr) {
    // Other KUBE-* chains an earlier run left (a layout this one does not
    // write): unlinked from the built-in chains, then deleted as well.
    DeleteStaleTopLevelChains(*o.existing, "filter", kFilterChains, filter);
    DeleteStaleTopLevelChains(*o.existing, "nat", kNatChains, nat);
  }

  // NodePorts last: this rule must stay the last of KUBE-SERVICES.
  const std::string nodeports_comment =
      " -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in "
      "this chain\"";
  if (now.node_ips.empty()) {
    nat.Rule(std::string("-A ") + kServicesChain + nodeports_comment +
             " -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j " + kNodePortsChain);
  } else {
    for (const auto& ip : now.node_ips) {
      nat.Rule(std::string("-A ") + kServicesChain + nodeports_comment + " -d " + ip.ToString() +
               " -j " + kNodePortsChain);
    }
  }

  // Packets conntrack finds INVALID would reach a pod un-NATed and be reset.
  filter.Rule(std::string("-A ") + kForwardChain + " -m conntrack --ctstate INVALID -j DROP");
  // Forward what was marked for masquerade (NodePort traffic) even when the
  // FORWARD policy drops, and what follows it.
  filter.Rule(std::string("-A ") + kForwardChain +
              " -m comment --comment \"kubernetes forwarding rules\" -m mark --mark " + mark +
              " -j ACCEPT");
  filter.Rule(std::string("-A ") + kForwardChain +
              " -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack "
              "--ctstate RELATED,ESTABLISHED -j ACCEPT");

  std::string out;
  filter.Render(out, "filter");
  nat.Render(out, "nat");
  return out;
}

std::string PlanIptablesCleanup(const IptablesRuleset& existing) {
  std::string out;
  for (const char* table : {"filter", "nat"}) {
    Section s;
    std::vector<std::string> kube_chains;
    if (auto it = existing.chains.find(table); it != existing.chains.end()) {
      for (const auto& c : it->second) {
        if (StartsWith(c, "KUBE-")) kube_chains.push_back(c);
      }
    }
    // Unlink first: a chain still referenced cannot be deleted.
    if (auto it = existing.rules.find(table); it != existing.rules.end()) {
      for (const auto& line : it->second) {
        std::string_view rest = std::string_view(line).substr(3);
        std::string_view chain = rest.substr(0, rest.find(' '));
        if (StartsWith(chain, "KUBE-")) continue;  // flushed with its chain
        if (line.find(" -j KUBE-") == std::string::npos &&
            line.find(" -g KUBE-") == std::string::npos) {
          continue;
        }
        s.Rule("-D " + std::string(rest));
      }
    }
    for (const auto& c : kube_chains) {
      s.Chain(c);
      s.Rule("-X " + c);
    }
    if (!s.rules.empty()) s.Render(out, table);
  }
  return out;
}

// ---------------------------------------------------------------------------
// The backend.

namespace {

constexpr auto kToolTimeout = std::chrono::seconds(30);
constexpr auto kFullSyncPeriod = std::chrono::hours(1);

// Runs argv inside /run/netns/<netns>: a child forked from a thread that
// entered the namespace is born in it.
CommandResult RunIn(const std::string& netns, const std::vector<std::string>& argv,
                    const std::string& input = "") {
  CommandResult r;
  try {
    Netns ns = Netns::Open(netns);
    RunInNetns(ns, [&] { r = RunCommand(argv, kToolTimeout, input); });
  } catch (const Error& e) {
    throw Error(e.code(), "netns `" + netns + "`: " + argv[0] + ": " + e.message());
  }
  return r;
}

// A tool's message on one line: iptables-restore writes its banner and
// the failing line's number on separate lines.
std::string OneLine(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\n') c = ' ';
    if (c == ' ' && (out.empty() || out.back() == ' ')) continue;
    out += c;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

class IptablesProxyBackend : public ProxyBackend {
 public:
  explicit IptablesProxyBackend(std::string netns) : netns_(std::move(netns)) {}

  void Sync(const ProxyState& state) override {
    // Until this sync succeeds the kernel's state is unknown: the next one
    // must be full.
    std::optional<ProxyState> last = std::move(last_);
    last_.reset();
    // A full sync at least hourly, as kube-proxy's FullSyncPeriod, repairs
    // whatever changed the namespace's rules behind our back.
    const auto now = std::chrono::steady_clock::now();
    const bool full = !last || now - last_full_ > kFullSyncPeriod;
    std::string input;
    if (full) {
      IptablesRuleset existing = Save();
      IptablesPlanOptions o;
      o.existing = &existing;
      input = PlanIptablesRestore(state, o);
    } else {
      IptablesPlanOptions o;
      o.before = &*last;
      o.partial = true;
      input = PlanIptablesRestore(state, o);
    }
    Restore(input);
    // Stale UDP conntrack entries would keep sending a client's datagrams to
    // an endpoint that is gone (kube-proxy's CleanStaleEntries, after the
    // restore). What was applied before this backend began is unknown: every
    // UDP port with endpoints counts as new, as kube-proxy does at start.
    std::vector<ConntrackFlush> flushes = PlanConntrackFlush(last ? *last : ProxyState{}, state);
    if (full) last_full_ = now;
    last_ = state;
    if (!flushes.empty()) FlushConntrack(netns_, flushes);
  }

  void Remove() override {
    last_.reset();
    // A namespace that is gone took its rules with it.
    if (!std::filesystem::exists(std::string(kNetnsRunDir) + "/" + netns_)) return;
    std::string input = PlanIptablesCleanup(Save());
    if (!input.empty()) Restore(input);
  }

 private:
  IptablesRuleset Save() {
    CommandResult r = RunIn(netns_, {"iptables-save"});
    if (!r.status.success()) {
      throw Error::Internal("netns `" + netns_ + "`: iptables-save " + r.status.ToString() + ": " +
                            OneLine(r.err));
    }
    return ParseIptablesSave(r.out);
  }

  void Restore(const std::string& input) {
    CommandResult r = RunIn(netns_, {"iptables-restore", "--noflush", "-w", "5"}, input);
    if (r.status.success()) return;
    std::string msg = "netns `" + netns_ + "`: iptables-restore " + r.status.ToString() + ": " +
                      OneLine(r.err.empty() ? r.out : r.err);
    // "line N failed": quote the line, as kube-proxy logs it.
    if (size_t at = r.err.find("line "); at != std::string::npos) {
      int n = std::atoi(r.err.c_str() + at + 5);
      std::istringstream in(input);
      std::string line;
      for (int i = 1; i <= n && std::getline(in, line); ++i) {
      }
      if (n > 0 && !line.empty()) msg += " (line " + std::to_string(n) + ": " + line + ")";
    }
    throw Error::Internal(msg);
  }

  std::string netns_;
  std::optional<ProxyState> last_;  // applied by the last sync; none: next is full
  std::chrono::steady_clock::time_point last_full_{};
};

}  // namespace

std::unique_ptr<ProxyBackend> NewIptablesProxyBackend(std::string netns) {
  return std::make_unique<IptablesProxyBackend>(std::move(netns));
}

}  // namespace kin::netstack
