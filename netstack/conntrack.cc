#include "netstack/conntrack.h"

#include <netinet/in.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/netfilter/ct.h>
#include <netlink/netfilter/nfnl.h>
#include <netlink/socket.h>

#include <cstring>
#include <memory>

#include "base/error.h"
#include "base/netns.h"

namespace kin::netstack {
namespace {

struct SockFree {
  void operator()(nl_sock* s) const { nl_socket_free(s); }
};
struct CacheFree {
  void operator()(nl_cache* c) const { nl_cache_free(c); }
};

int ProtoNumber(L4Protocol p) {
  switch (p) {
    case L4Protocol::kTcp:
      return IPPROTO_TCP;
    case L4Protocol::kUdp:
      return IPPROTO_UDP;
    case L4Protocol::kSctp:
      return IPPROTO_SCTP;
  }
  return IPPROTO_UDP;
}

std::optional<Ipv4Address> AddrOf(nl_addr* a) {
  if (a == nullptr || nl_addr_get_family(a) != AF_INET || nl_addr_get_len(a) != 4) {
    return std::nullopt;
  }
  uint32_t be;
  std::memcpy(&be, nl_addr_get_binary_addr(a), 4);
  return Ipv4Address::FromNetworkOrder(be);
}

}  // namespace

bool ConntrackFlushMatches(const ConntrackFlush& f, L4Protocol protocol, Ipv4Address orig_dst,
                           uint16_t orig_dport, Ipv4Address reply_src) {
  if (f.protocol != protocol) return false;
  if (f.orig_dst && *f.orig_dst != orig_dst) return false;
  if (f.orig_dport != 0 && f.orig_dport != orig_dport) return false;
  if (f.reply_src && *f.reply_src != reply_src) return false;
  return true;
}

size_t FlushConntrack(const std::string& netns, const std::vector<ConntrackFlush>& flushes) {
  if (flushes.empty()) return 0;
  const std::string where = "netns `" + netns + "`: conntrack: ";
  Netns ns;
  try {
    ns = Netns::Open(netns);
  } catch (const Error& e) {
    throw Error(e.code(), where + e.message());
  }
  std::unique_ptr<nl_sock, SockFree> sock;
  {
    // The socket belongs to the namespace it is made in; afterwards the
    // thread can go back.
    NetnsEnter enter(ns);
    sock.reset(nl_socket_alloc());
    if (!sock) throw Error::Internal(where + "cannot allocate a netlink socket");
    if (int err = nfnl_connect(sock.get()); err < 0) {
      throw Error::Internal(where + "connect: " + nl_geterror(err));
    }
  }
  nl_cache* raw = nullptr;
  if (int err = nfnl_ct_alloc_cache(sock.get(), &raw); err < 0) {
    throw Error::Internal(where + "dump: " + nl_geterror(err));
  }
  std::unique_ptr<nl_cache, CacheFree> cache(raw);

  size_t deleted = 0;
  for (nl_object* obj = nl_cache_get_first(cache.get()); obj != nullptr;
       obj = nl_cache_get_next(obj)) {
    auto* ct = reinterpret_cast<nfnl_ct*>(obj);
    if (nfnl_ct_get_family(ct) != AF_INET) continue;
    const int proto = nfnl_ct_get_proto(ct);
    std::optional<Ipv4Address> dst = AddrOf(nfnl_ct_get_dst(ct, /*repl=*/0));
    std::optional<Ipv4Address> rsrc = AddrOf(nfnl_ct_get_src(ct, /*repl=*/1));
    if (!dst || !rsrc) continue;
    const uint16_t dport = nfnl_ct_get_dst_port(ct, 0);
    bool match = false;
    for (const ConntrackFlush& f : flushes) {
      if (ProtoNumber(f.protocol) == proto &&
          ConntrackFlushMatches(f, f.protocol, *dst, dport, *rsrc)) {
        match = true;
        break;
      }
    }
    if (!match) continue;
    int err = nfnl_ct_del(sock.get(), ct, 0);
    if (err == -NLE_OBJ_NOTFOUND) continue;  // gone since the dump
    if (err < 0) {
      throw Error::Internal(where + "delete entry to " + dst->ToString() + ":" +
                            std::to_string(dport) + ": " + nl_geterror(err));
    }
    ++deleted;
  }
  return deleted;
}

}  // namespace kin::netstack
