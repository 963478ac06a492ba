#include "netstack/egress.h"

#include "base/error.h"
#include "netstack/nftables.h"

namespace kin::netstack {

std::string PlanEgressMasquerade(const EgressMasquerade& egress) {
  if (!egress.pod_range.is_network()) {
    throw Error::Invalid("egress masquerade: podRange: \"" + egress.pod_range.ToString() +
                         "\": host bits are set");
  }
  for (const auto& c : egress.cluster_ranges) {
    if (!c.is_network()) {
      throw Error::Invalid("egress masquerade: clusterRanges: \"" + c.ToString() +
                           "\": host bits are set");
    }
  }
  if (egress.uplink.empty() || egress.uplink.size() > 15 ||
      egress.uplink.find_first_of("\"/ \t\n") != std::string::npos) {
    throw Error::Invalid("egress masquerade: uplink: \"" + egress.uplink +
                         "\": not an interface name");
  }
  std::string except;
  for (const auto& c : egress.cluster_ranges) {
    except += (except.empty() ? "" : ", ") + c.ToString();
  }
  std::string rule = "ip saddr " + egress.pod_range.ToString();
  if (!except.empty()) rule += " ip daddr != { " + except + " }";
  rule += " oifname \"" + egress.uplink + "\" masquerade";
  const std::string table = std::string("table ip ") + kEgressTable;
  // Declaring the table first makes the delete succeed when it is not there
  // yet: one transaction that replaces whatever a previous run left.
  return "add " + table + "\n" + "delete " + table + "\n" + table + " {\n" +
         "  chain postrouting {\n"
         "    type nat hook postrouting priority srcnat; policy accept;\n"
         "    " +
         rule + "\n  }\n}\n";
}

void ApplyEgressMasquerade(const std::string& node_netns, const EgressMasquerade& egress) {
  std::string script = PlanEgressMasquerade(egress);
  NftContext(node_netns).Run(script);
}

bool RemoveEgressMasquerade(const std::string& node_netns) {
  try {
    NftContext(node_netns).Run(std::string("delete table ip ") + kEgressTable + "\n");
  } catch (const Error& e) {
    if (e.code() == Code::kNotFound) return false;
    throw;
  }
  return true;
}

}  // namespace kin::netstack
