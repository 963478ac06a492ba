#include "netstack/service_proxy.h"

#include <set>

#include "base/error.h"
#include "netstack/nft_proxy.h"

// The iptables backend is another module's; build without it until its
// header exists (NewProxyBackend then says so instead of failing to link).
#include "netstack/iptables_proxy.h"

namespace kin::netstack {

std::string_view ToString(L4Protocol p) {
  switch (p) {
    case L4Protocol::kTcp:
      return "tcp";
    case L4Protocol::kUdp:
      return "udp";
    case L4Protocol::kSctp:
      return "sctp";
  }
  return "tcp";
}

std::string ProxyServicePort::Key() const { return ns + "/" + name + ":" + port_name; }

std::string_view ToString(ProxyMode m) {
  switch (m) {
    case ProxyMode::kNftables:
      return "nftables";
    case ProxyMode::kIptables:
      return "iptables";
  }
  return "nftables";
}

ProxyMode ParseProxyMode(std::string_view text, std::string_view field) {
  if (text == "nftables") return ProxyMode::kNftables;
  if (text == "iptables") return ProxyMode::kIptables;
  std::string f(field);
  if (text == "ipvs") {
    throw Error::Invalid(f + ": Unsupported value: \"ipvs\": this kernel has no IPVS " +
                         "(CONFIG_IP_VS is not set); use \"nftables\" or \"iptables\"")
        .WithCause(
            {"FieldValueNotSupported", "this kernel has no IPVS (CONFIG_IP_VS is not set)", f});
  }
  throw Error::Invalid(f + ": Unsupported value: \"" + std::string(text) +
                       "\": supported values: \"nftables\", \"iptables\"")
      .WithCause({"FieldValueNotSupported",
                  "Unsupported value: \"" + std::string(text) +
                      "\": supported values: \"nftables\", \"iptables\"",
                  f});
}

namespace {

// The addresses a port answers on with its own port number.
std::vector<Ipv4Address> ServiceIps(const ProxyServicePort& p) {
  std::vector<Ipv4Address> out;
  if (p.cluster_ip) out.push_back(*p.cluster_ip);
  out.insert(out.end(), p.external_ips.begin(), p.external_ips.end());
  out.insert(out.end(), p.load_balancer_ips.begin(), p.load_balancer_ips.end());
  return out;
}

std::set<ProxyEndpoint> AllEndpoints(const ProxyServicePort& p) {
  std::set<ProxyEndpoint> out(p.cluster_endpoints.begin(), p.cluster_endpoints.end());
  out.insert(p.local_endpoints.begin(), p.local_endpoints.end());
  return out;
}

void AddFlushes(const ProxyServicePort& p, Ipv4Address reply_src, std::set<ConntrackFlush>& out) {
  for (Ipv4Address ip : ServiceIps(p)) out.insert({L4Protocol::kUdp, ip, p.port, reply_src});
  if (p.node_port != 0) out.insert({L4Protocol::kUdp, std::nullopt, p.node_port, reply_src});
}

}  // namespace

// kube-proxy's conntrack.CleanStaleEntries, for UDP only (TCP and SCTP
// entries of a gone endpoint die with their connection):
//   - an endpoint a UDP port served before and no longer does: entries
//     towards each of the port's addresses (and its NodePort) whose reply
//     comes from that endpoint's IP;
//   - a UDP port that had no endpoints and now has some: every entry
//     towards its addresses, since datagrams sent meanwhile left entries
//     that would keep the client away from the new endpoints.
std::vector<ConntrackFlush> PlanConntrackFlush(const ProxyState& before, const ProxyState& after) {
  std::set<ConntrackFlush> out;
  for (const auto& [key, old] : before.ports) {
    if (old.protocol != L4Protocol::kUdp) continue;
    auto it = after.ports.find(key);
    std::set<ProxyEndpoint> now;
    if (it != after.ports.end() && it->second.protocol == L4Protocol::kUdp) {
      now = AllEndpoints(it->second);
    }
    for (const ProxyEndpoint& ep : AllEndpoints(old)) {
      if (!now.contains(ep)) AddFlushes(old, ep.ip, out);
    }
  }
  for (const auto& [key, now] : after.ports) {
    if (now.protocol != L4Protocol::kUdp || now.cluster_endpoints.empty()) continue;
    auto it = before.ports.find(key);
    bool had = it != before.ports.end() && it->second.protocol == L4Protocol::kUdp &&
               !it->second.cluster_endpoints.empty();
    if (had) continue;
    for (Ipv4Address ip : ServiceIps(now)) {
      out.insert({L4Protocol::kUdp, ip, now.port, std::nullopt});
    }
    if (now.node_port != 0)
      out.insert({L4Protocol::kUdp, std::nullopt, now.node_port, std::nullopt});
  }
  return {out.begin(), out.end()};
}

std::unique_ptr<ProxyBackend> NewProxyBackend(ProxyMode mode, std::string netns) {
  switch (mode) {
    case ProxyMode::kNftables:
      return NewNftProxyBackend(std::move(netns));
    case ProxyMode::kIptables:
      return NewIptablesProxyBackend(std::move(netns));
  }
  throw Error::Invalid("unknown proxy mode");
}

}  // namespace kin::netstack
