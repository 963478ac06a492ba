// Flushing conntrack entries of a network namespace through ctnetlink
// (libnl-nf), for the service proxy's stale UDP entries (ConntrackFlush in
// netstack/service_proxy.h).
//
// FlushConntrack() dumps the namespace's conntrack table once and deletes
// every IPv4 entry that matches at least one flush: the protocol, and each
// of orig_dst / orig_dport / reply_src that is set. An entry gone between
// the dump and its deletion is not an error. The socket is opened while the
// calling thread has entered /run/netns/<netns> (and left again before
// returning), so it talks to that namespace's conntrack table only.
//
// Errors: kin::Error "netns `NAME`: conntrack: ...".
//
// Thread-safety: thread-safe (no shared state; the calling thread returns
// to its namespace).
#pragma once

#include <string>
#include <vector>

#include "netstack/service_proxy.h"

namespace kin::netstack {

// Returns how many entries were deleted.
size_t FlushConntrack(const std::string& netns, const std::vector<ConntrackFlush>& flushes);

// Whether an entry (protocol, orig dst:dport, reply src) matches `f`;
// exposed for unit tests.
bool ConntrackFlushMatches(const ConntrackFlush& f, L4Protocol protocol, Ipv4Address orig_dst,
                           uint16_t orig_dport, Ipv4Address reply_src);

}  // namespace kin::netstack
