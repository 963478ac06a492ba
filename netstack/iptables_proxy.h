// The service proxy's iptables mode: kube-proxy's iptables chains
// (pkg/proxy/iptables/proxier.go), written with iptables-restore.
//
// Planning is pure. PlanIptablesRestore() turns a ProxyState into the input
// kube-proxy's sync feeds to `iptables-restore --noflush`: the `filter` and
// `nat` tables' KUBE-* chains, with kube-proxy's chain names (the same
// sha256/base32 hashes, so KUBE-SVC-<hash> of a Service is the one a real
// kube-proxy would make), rule order, comments and `-m statistic` random
// probabilities (1/n printed with ten decimals). Each top-level chain is
// declared (which flushes it under --noflush) and rewritten on every sync;
// per-service chains (KUBE-SVC-, KUBE-SVL-, KUBE-EXT-, KUBE-SEP-) that the
// previous state had and this one has not are flushed and deleted (-X).
// A partial plan leaves out the chains of service ports that did not change
// (they stay as they are in the kernel), as kube-proxy's partial sync does.
//
// Differences from kube-proxy (kin has no such settings): no
// masquerade-all, no localhost NodePorts (so no KUBE-FIREWALL chain and no
// route_localnet), no loadBalancerSourceRanges (KUBE-FW- chains), no health
// check NodePorts, no nfacct counters, no KUBE-PROXY-CANARY monitor chain;
// the INVALID-drop rule is always written (nf_conntrack_tcp_be_liberal is
// assumed off). Like kube-proxy's iptables mode, unused ClusterIP ports are
// not rejected (ProxyState::service_cidr is not used). Over 1,000 endpoints
// the per-endpoint comments are left out (kube-proxy's large cluster mode).
// NodePorts answer on ProxyState::node_ips (kube-proxy's
// --nodeport-addresses), or on every local address but 127.0.0.0/8 when the
// list is empty. Services and endpoints come out in ProxyState order
// (kube-proxy's follow Go map order).
//
// Applying: NewIptablesProxyBackend() returns a ProxyBackend that runs
// iptables-save / iptables-restore (Debian's default alternative, the
// nf_tables-backed one) inside /run/netns/<netns>. A full sync (the first,
// the next after any failure, and one at least hourly) reads iptables-save,
// inserts the jump rules from the built-in chains that are missing (as
// kube-proxy's EnsureRule with Prepend), deletes every stale per-service
// chain and every other KUBE-* chain this layout does not write (with the
// jumps to it from built-in chains), then restores; later syncs restore a
// partial plan only. After each restore it flushes the UDP conntrack entries
// PlanConntrackFlush() names (netstack/conntrack.h), so clients stop
// reaching endpoints that are gone; if that flush fails the rules stay
// applied and the error is thrown. Remove() deletes every rule in a built-in
// chain that jumps to a KUBE-* chain and every KUBE-* chain of the filter
// and nat tables. Errors are kin::Errors naming the namespace and carrying
// iptables-restore's own message and the input line it refused.
//
// Thread-safety: the plan functions are pure and thread-safe; a backend is
// used by one thread at a time.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "netstack/service_proxy.h"

namespace kin::netstack {

// kube-proxy's ServicePortName.String(): "ns/name:port_name", or "ns/name"
// when the port has no name. Comments and chain hashes use it.
std::string IptablesServicePortName(const ProxyServicePort& port);

// Chain names, as kube-proxy computes them: prefix + the first 16
// characters of base32(sha256(service port name + protocol [+ "ip:port"])).
std::string IptablesClusterChain(const ProxyServicePort& port);   // KUBE-SVC-
std::string IptablesLocalChain(const ProxyServicePort& port);     // KUBE-SVL-
std::string IptablesExternalChain(const ProxyServicePort& port);  // KUBE-EXT-
std::string IptablesEndpointChain(const ProxyServicePort& port,
                                  const ProxyEndpoint& ep);  // KUBE-SEP-

// The per-service nat chains a state needs (KUBE-SVC/SVL/EXT/SEP-*).
std::set<std::string> IptablesServiceChains(const ProxyState& state);

// What `iptables-save` shows of a namespace: per table ("filter", "nat",
// ...), its chains and its rule lines ("-A CHAIN ..."), in order.
struct IptablesRuleset {
  std::map<std::string, std::set<std::string>> chains;
  std::map<std::string, std::vector<std::string>> rules;
};
IptablesRuleset ParseIptablesSave(std::string_view save);

// One rule kube-proxy keeps in a built-in chain, jumping to one of its own.
struct IptablesJump {
  std::string table;  // "filter" or "nat"
  std::string chain;  // the built-in chain: "PREROUTING", "INPUT", ...
  std::string spec;   // the rule after "-A CHAIN", as iptables-save prints it
};
// kube-proxy's iptablesJumpChains, in its order.
const std::vector<IptablesJump>& IptablesJumps();

struct IptablesPlanOptions {
  // The state applied last; its service chains that `now` does not need are
  // deleted.
  const ProxyState* before = nullptr;
  // With `before`: leave out the chains of service ports equal in both
  // states (kube-proxy's partial sync).
  bool partial = false;
  // The namespace's ruleset (full syncs): jumps from IptablesJumps() it
  // lacks are inserted at the top of their chain; every per-service nat
  // chain it has that `now` does not need is deleted, and so is every other
  // KUBE-* chain of filter and nat that is not one of this layout's (after
  // deleting the rules of built-in chains that jump to it).
  const IptablesRuleset* existing = nullptr;
};

// The iptables-restore --noflush input: "*filter ... COMMIT\n*nat ... COMMIT\n".
std::string PlanIptablesRestore(const ProxyState& now, const IptablesPlanOptions& options);
std::string PlanIptablesRestore(const ProxyState& now, const ProxyState* before = nullptr);

// The iptables-restore --noflush input that removes from `existing` every
// rule of another chain jumping to a KUBE-* chain and every KUBE-* chain of
// the filter and nat tables; "" when there is none.
std::string PlanIptablesCleanup(const IptablesRuleset& existing);

// The iptables backend for the network namespace /run/netns/<netns>.
std::unique_ptr<ProxyBackend> NewIptablesProxyBackend(std::string netns);

}  // namespace kin::netstack
