// Egress SNAT: pod traffic leaving the cluster looks as if it came from its
// node (the seed guide's 6.1.1, "Node to Internet"; kindnetd's masq agent).
//
// In each node namespace an nftables table of its own, `ip kin-egress`,
// with one nat postrouting rule: traffic from the cluster's pod range to
// anything outside the cluster's pod and service ranges that leaves through
// the node's uplink (eth0) is masqueraded to the uplink's address, the node
// IP; conntrack undoes it on the replies, which reach the pod. Pod-to-pod
// traffic (also after a Service's DNAT, since postrouting sees the
// translated address) and traffic to Service addresses are never
// masqueraded. The table is separate from the service proxy's so the two
// never rewrite each other's rules.
//
// PlanEgressMasquerade() is pure: the nft script, which replaces the table
// in one transaction (so applying twice, e.g. after a restart of kin serve,
// is harmless). ApplyEgressMasquerade() runs it in the node's namespace
// through NftContext; RemoveEgressMasquerade() deletes the table (deleting
// the node's namespace removes it too).
//
// Thread-safety: the planner is pure; apply/remove on different namespaces
// may run concurrently.
#pragma once

#include <string>
#include <vector>

#include "netstack/ipam.h"

namespace kin::netstack {

inline constexpr const char* kEgressTable = "kin-egress";  // family ip

struct EgressMasquerade {
  Ipv4Cidr pod_range;                    // the cluster's pods (10.244.0.0/16): ip saddr
  std::vector<Ipv4Cidr> cluster_ranges;  // never masqueraded: the pod and service ranges
  std::string uplink = "eth0";           // the node's interface on the underlay
};

// Invalid naming the field when a range is not a network or the uplink is
// not an interface name.
std::string PlanEgressMasquerade(const EgressMasquerade& egress);

void ApplyEgressMasquerade(const std::string& node_netns, const EgressMasquerade& egress);
// False when the table was not there.
bool RemoveEgressMasquerade(const std::string& node_netns);

}  // namespace kin::netstack
