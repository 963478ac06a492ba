// The service proxy's nftables mode: a ProxyState as kube-proxy's nftables
// layout (pkg/proxy/nftables/proxier.go), in one table `kin-proxy` (family
// ip) of a node's network namespace.
//
// The table holds:
//   base chains     filter-input/-forward/-output at priority -110
//                   (kube-proxy's "dstnat - 10": before DNAT, reject or
//                   drop for services without endpoints);
//                   filter-output-post-dnat at -90 ("dstnat + 10") and
//                   filter-forward (after DNAT: reject unused ports of
//                   ClusterIPs, drop other addresses of service_cidr);
//                   nat-prerouting/-output at dstnat (-100; jump services),
//                   nat-postrouting at srcnat (jump masquerading). nft
//                   1.0.6 takes the names dstnat/srcnat only at prerouting/
//                   postrouting, so the others are numbers.
//   services        ip daddr . meta l4proto . th dport vmap @service-ips
//                   (ClusterIPs, external IPs, LoadBalancer IPs), then
//                   NodePorts on local addresses but 127.0.0.0/8 (fib daddr
//                   type local) through @service-nodeports
//   per port        service-<H>-ns/name/proto/port (policy Cluster),
//                   local-<H>-... (policy Local), external-<H>-... (NodePort,
//                   external and LB IPs: masquerade mark, or for policy Local
//                   the short-circuits for pod and node traffic), each
//                   choosing an endpoint at random (`numgen random mod
//                   N-i == 0 goto` per endpoint i, see below) after the
//                   ClientIP affinity checks (@affinity-<H>-...)
//   per endpoint    endpoint-<H>-ns/name/proto/port__ip/port: hairpin
//                   masquerade mark, affinity update, dnat
//   no endpoints    @no-endpoint-services / @no-endpoint-nodeports: goto
//                   reject-chain (TCP reset, else ICMP port unreachable), or
//                   drop when only Local endpoints are missing
//   masquerading    mark 0x4000 (kube-proxy's bit 14) set for traffic to a
//                   ClusterIP from outside cluster_cidr, for external traffic
//                   under policy Cluster, and for hairpin; masquerade
//                   fully-random at srcnat
// <H> is the first 8 characters of base32(sha256(name)), as kube-proxy.
//
// Planning is pure. PlanNftFull() is a whole transaction that replaces the
// table (add + delete + recreate, so nothing stale survives a restart).
// PlanNftIncremental() rewrites only the chains, affinity sets and map
// elements of service ports that differ between two states and deletes
// those of removed ports; when the node-wide settings differ (cluster_cidr,
// service_cidr) it is the full plan.
//
// What a transaction costs decides how plans are written. libnftables
// fetches every chain of the table from the kernel before it runs any
// `add rule`, `add element` or `delete` command (~80 ms at 10,000
// Services x 5 endpoints: the kernel's chain dump restarts its walk for
// every message), but not for `add chain NAME { rules }` or `add map NAME
// { ...; elements = { ... } }`. So chains are written as blocks and
// elements as map declarations, and chains a change no longer needs are
// emptied at once (nothing refers to them any more) but deleted only in a
// later transaction that deletes something anyway (kube-proxy also deletes
// emptied chains in a later sync, for other reasons). An endpoint change
// then needs no fetch; what is left is the kernel's validation of the
// whole table at every commit that adds a jump (the floor bench_proxy
// reports). A full sync fetches nothing either (the new table is all in
// the script), and the context has no echo, handle or optimize flags.
//
// Where the time goes (perf on this kernel, 6.18, 2 cores shared with
// builds; 10,000 Services x 5 endpoints: 60,000 chains, 160,000 rules,
// ~630,000 expressions, 16 MB of script, 56 MB of netlink batch):
//   full sync   ~2 s of user CPU, almost all libnftables parsing and
//               evaluating the script (0.7 GB at its peak; the plan itself
//               is ~0.1 s), and ~1.8 s of kernel CPU: the batch alone,
//               replayed without libnftables, costs the same. The kernel's
//               cost follows the number of expressions: each one's type is
//               looked up by name in the list of every registered type
//               (__nft_expr_type_get, ~40 % of the batch's processing);
//               the commit with its validation is ~15 %. So the < 1 s
//               goal of issue 12 is out of reach with this layout:
//               building the batch without libnftables (libnftnl) would
//               save at most the user half.
//   endpoint    ~100 ms of kernel CPU, three quarters of it the validation
//   change      (nft_chain_validate): any new rule holding a verdict, NAT,
//               mark-setting, fib or lookup expression, and any new jump or
//               goto element of a verdict map, makes the commit walk every
//               chain reachable from each base chain, once per hook (nat
//               prerouting and nat output both reach all 60,000 chains:
//               ~45 ms each), plus a pass over every chain of the table
//               (~20 ms with no jump to them at all). Rules with only
//               counters, empty chains, `flush chain`, plain set elements
//               and accept/drop map elements do not. Writing the jumps to
//               mark-for-masquerade inline (60,000 fewer chain visits)
//               changed nothing measurable. An endpoint change must add a
//               DNAT rule and gotos, so in one table this walk is its
//               floor; the validation is per table (the same goto in a
//               small second table costs ~2 ms), so only spreading the
//               service ports over several tables, each with its own nat
//               base chains, would divide it: a layout unlike kube-proxy's,
//               not done. Its price, measured: 16 more tables with nat
//               prerouting and output chains (a 625-element vmap each) add
//               ~4 us to every new connection through the node, pod to pod
//               too (45 -> 49 us), as every new flow passes every nat chain.
//
// Differences from kube-proxy: the random choice is one rule per endpoint
// instead of one `numgen random mod N vmap { ... }` rule, because every
// such vmap is an anonymous set and the kernel makes each new one by
// walking all sets of the table (quadratic: a full sync of 10,000
// Services took 30 s with vmaps; see bench/proxy_bench.cc). No
// loadBalancerSourceRanges (firewall chains), no masquerade-all, no
// health-check NodePorts; NodePorts answer on every local address
// (kube-proxy's default --nodeport-addresses), so ProxyState::node_ips is
// not used.
//
// Thread-safety: the plan functions are pure and thread-safe; a backend is
// used by one thread at a time.
#pragma once

#include <memory>
#include <set>
#include <string>

#include "netstack/service_proxy.h"

namespace kin::netstack {

inline constexpr const char* kNftProxyTable = "kin-proxy";  // family ip
inline constexpr const char* kNftMasqueradeMark = "0x00004000";

// Names, as kube-proxy's nftables mode makes them.
std::string NftServiceChain(const ProxyServicePort& port);   // service-<H>-ns/name/proto/port
std::string NftLocalChain(const ProxyServicePort& port);     // local-<H>-...
std::string NftExternalChain(const ProxyServicePort& port);  // external-<H>-...
std::string NftEndpointChain(const ProxyServicePort& port, const ProxyEndpoint& ep);
std::string NftAffinitySet(const ProxyServicePort& port, const ProxyEndpoint& ep);

// The transaction that replaces table kin-proxy with what `state` needs.
std::string PlanNftFull(const ProxyState& state);

struct NftIncrementalPlan {
  std::string script;  // "" when nothing differs
  // Chains the script empties but leaves in the table (pass them to the
  // next plan); empty when it deletes every chain it can.
  std::set<std::string> stale_chains;
  // Whether libnftables must fetch every chain of the table to run it
  // (true for anything that deletes, and for a full plan).
  bool fetches_cache = false;
};
// The transaction that changes a table holding `before` (and the emptied
// `stale` chains of earlier plans) into one holding `after`. Chains that
// are no longer needed are emptied at once and deleted in the same
// transaction when it deletes something anyway (map elements, sets) or
// when more than `max_stale` would be left; otherwise they are left empty
// and returned as stale_chains. With cluster_cidr or service_cidr changed
// it is the full plan.
NftIncrementalPlan PlanNftIncremental(const ProxyState& before, const ProxyState& after,
                                      const std::set<std::string>& stale = {},
                                      size_t max_stale = 0);

// The nftables ProxyBackend in /run/netns/<netns> (ProxyBackend's contract;
// conntrack flushes through netstack/conntrack.h). Its syncs are full the
// first time, after a failure and at least hourly (kube-proxy's
// FullSyncPeriod, repairing rules changed behind its back); incremental
// otherwise, leaving at most 1,000 emptied chains for later. After a full
// sync it frees libnftables' cache of the script and gives the parse's
// memory back to the system (malloc_trim: 0.67 GB -> 17 MB resident at
// 10,000 Services).
std::unique_ptr<ProxyBackend> NewNftProxyBackend(std::string netns);

}  // namespace kin::netstack
