// Sysctls of a network namespace (net.*), read and written through
// /proc/sys/net from the calling thread while it has entered the namespace:
// /proc/sys/net shows the values of the namespace of the thread that looks,
// so no `ip netns exec sysctl ...` process is needed.
//
// Keys are dotted ("net.ipv4.ip_forward", "net.ipv4.conf.eth0.proxy_arp") or
// slashed ("net/ipv4/conf/eth0.100/forwarding", for names with dots). Only
// net.* keys are accepted: everything else is not per network namespace.
// net.bridge.* needs br_netfilter; when /proc/sys/net/bridge is missing it is
// loaded once with modprobe.
//
// Thread-safety: thread-safe (the calling thread returns to its namespace).
#pragma once

#include <string>
#include <vector>

#include "base/netns.h"

namespace kin::netstack {

struct Sysctl {
  std::string key;
  std::string value;
};

// "/proc/sys/net/ipv4/ip_forward" for "net.ipv4.ip_forward"; Invalid for a
// key outside net.* or with empty or ".." components.
std::string SysctlPath(const std::string& key);

// `label` names the namespace in errors ("set sysctl net.ipv4.ip_forward=1 in
// netns `kin-dev-net`: ...").
void WriteSysctls(const Netns& ns, const std::vector<Sysctl>& sysctls,
                  const std::string& label = "");
void WriteSysctl(const Netns& ns, const std::string& key, const std::string& value,
                 const std::string& label = "");
// The value without its trailing newline.
std::string ReadSysctl(const Netns& ns, const std::string& key, const std::string& label = "");

}  // namespace kin::netstack
