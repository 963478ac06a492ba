#include "netstack/netlink.h"

#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <netlink/attr.h>
#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>

namespace kin::netstack {

namespace {

// Requests in flight before the batch stops to collect acknowledgements:
// their acks must fit the socket's receive buffer (~200 KiB by default).
constexpr size_t kMaxInFlight = 64;

// Answers are single datagrams; dumps are cut by the kernel into parts of at
// most 32 KiB, so this never truncates.
constexpr size_t kReceiveBuffer = 64 * 1024;

struct MsgFree {
  void operator()(nl_msg* m) const { nlmsg_free(m); }
};
using MsgPtr = std::unique_ptr<nl_msg, MsgFree>;

// Builds one request. Attribute space is a page: far more than any of ours.
class Msg {
 public:
  Msg(int type, int flags) : m_(nlmsg_alloc_simple(type, flags | NLM_F_REQUEST)) {
    if (!m_) throw std::bad_alloc();
  }
  template <typename Header>
  Msg& Head(const Header& h) {
    return Check(nlmsg_append(m_.get(), const_cast<Header*>(&h), sizeof h, NLMSG_ALIGNTO));
  }
  Msg& Str(int type, const std::string& s) {
    return Check(nla_put_string(m_.get(), type, s.c_str()));
  }
  Msg& U8(int type, uint8_t v) { return Check(nla_put_u8(m_.get(), type, v)); }
  Msg& U32(int type, uint32_t v) { return Check(nla_put_u32(m_.get(), type, v)); }
  Msg& Bytes(int type, const void* data, size_t len) {
    return Check(nla_put(m_.get(), type, static_cast<int>(len), data));
  }
  Msg& Addr(int type, Ipv4Address a) {
    uint32_t be = a.network_order();
    return Bytes(type, &be, sizeof be);
  }
  nlattr* Nest(int type) {
    nlattr* n = nla_nest_start(m_.get(), type);
    if (n == nullptr) Check(-NLE_NOMEM);
    return n;
  }
  Msg& End(nlattr* n) { return Check(nla_nest_end(m_.get(), n)); }
  MsgPtr Take() { return std::move(m_); }

 private:
  Msg& Check(int rc) {
    if (rc < 0) throw Error::Internal(std::string("build netlink request: ") + nl_geterror(rc));
    return *this;
  }
  MsgPtr m_;
};

std::string Quoted(const std::string& name) { return "`" + name + "`"; }

std::vector<uint8_t> ParseMac(const std::string& mac) {
  std::vector<uint8_t> out;
  size_t start = 0;
  while (out.size() < 6) {
    size_t end = mac.find(':', start);
    std::string part =
        mac.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (part.empty() || part.size() > 2 ||
        part.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
      break;
    }
    out.push_back(static_cast<uint8_t>(std::stoul(part, nullptr, 16)));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  if (out.size() == 6 && std::count(mac.begin(), mac.end(), ':') == 5) return out;
  throw Error::Invalid("invalid MAC address \"" + mac +
                       "\": must be six hex bytes like 02:42:ac:12:00:02");
}

std::string FormatMac(const uint8_t* b, size_t len) {
  std::string out;
  char buf[4];
  for (size_t i = 0; i < len; i++) {
    snprintf(buf, sizeof buf, i == 0 ? "%02x" : ":%02x", b[i]);
    out += buf;
  }
  return out;
}

// The kernel's explanation in an extended ack (NETLINK_EXT_ACK), if any.
// `tlv_offset` is where the attributes start inside the payload.
std::string ExtAckMessage(nlmsghdr* h, size_t tlv_offset) {
  if ((h->nlmsg_flags & NLM_F_ACK_TLVS) == 0) return "";
  size_t payload = h->nlmsg_len - NLMSG_HDRLEN;
  if (tlv_offset >= payload) return "";
  auto* start = reinterpret_cast<nlattr*>(static_cast<char*>(NLMSG_DATA(h)) + tlv_offset);
  nlattr* tb[NLMSGERR_ATTR_MAX + 1] = {};
  if (nla_parse(tb, NLMSGERR_ATTR_MAX, start, static_cast<int>(payload - tlv_offset), nullptr) <
      0) {
    return "";
  }
  if (tb[NLMSGERR_ATTR_MSG] == nullptr) return "";
  return nla_get_string(tb[NLMSGERR_ATTR_MSG]);
}

}  // namespace

std::string Route::ToString() const {
  const Route& r = *this;
  std::string s = r.dst && r.dst->prefix_len() > 0 ? r.dst->ToString() : "default";
  if (r.via) s += " via " + r.via->ToString();
  if (!r.dev.empty()) s += " dev " + r.dev;
  if (r.scope_link) s += " scope link";
  if (r.onlink) s += " onlink";
  if (r.src) s += " src " + r.src->ToString();
  for (const Ipv4Address& hop : r.nexthops) s += " nexthop via " + hop.ToString();
  return s;
}

Error NetlinkError(int err, std::string_view context, std::string_view detail) {
  std::string message = std::string(context) + ": " + std::strerror(err);
  if (!detail.empty()) message += " (" + std::string(detail) + ")";
  Code code = Code::kInternal;
  switch (err) {
    case EEXIST:
      code = Code::kAlreadyExists;
      break;
    case ENOENT:
    case ENODEV:
    case ESRCH:
    case EADDRNOTAVAIL:
      code = Code::kNotFound;
      break;
    case EPERM:
    case EACCES:
      code = Code::kForbidden;
      break;
    case EINVAL:
    case ERANGE:
    case ENETUNREACH:  // e.g. a route whose gateway is on no link
    case EOPNOTSUPP:
      code = Code::kInvalid;
      break;
    default:
      break;
  }
  Error e(code, std::move(message));
  e.WithErrno(err);
  return e;
}

bool LinkInfo::up() const { return (flags & IFF_UP) != 0; }

std::string RouteInfo::ToString() const {
  Route r;
  r.dst = dst;
  r.via = via;
  r.dev = dev;
  r.scope_link = scope_link && via.has_value();  // implied without a gateway
  r.onlink = onlink;
  r.src = src;
  r.nexthops = nexthops;
  return r.ToString();
}

// ---- NetlinkSocket ----

struct NetlinkSocket::Answer {
  int err = 0;
  std::string detail;
};

NetlinkSocket NetlinkSocket::Open() {
  nl_sock* s = nl_socket_alloc();
  if (s == nullptr) throw std::bad_alloc();
  int rc = nl_connect(s, NETLINK_ROUTE);
  if (rc < 0) {
    nl_socket_free(s);
    throw Error::Internal(std::string("open netlink route socket: ") + nl_geterror(rc));
  }
  int fd = nl_socket_get_fd(s);
  int one = 1;
  // Best effort: without them errors are still reported, only less detailed
  // (EXT_ACK: the kernel's reason) and with the request echoed (CAP_ACK).
  ::setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  ::setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  return NetlinkSocket(s);
}

NetlinkSocket NetlinkSocket::OpenIn(const Netns& ns) {
  NetnsEnter enter(ns);
  return Open();
}

NetlinkSocket::NetlinkSocket(nl_sock* sock) : sock_(sock), receive_buffer_(kReceiveBuffer) {}

NetlinkSocket::NetlinkSocket(NetlinkSocket&& o) noexcept
    : sock_(std::exchange(o.sock_, nullptr)), receive_buffer_(std::move(o.receive_buffer_)) {}

NetlinkSocket& NetlinkSocket::operator=(NetlinkSocket&& o) noexcept {
  if (this != &o) {
    if (sock_ != nullptr) nl_socket_free(sock_);
    sock_ = std::exchange(o.sock_, nullptr);
    receive_buffer_ = std::move(o.receive_buffer_);
  }
  return *this;
}

NetlinkSocket::~NetlinkSocket() {
  if (sock_ != nullptr) nl_socket_free(sock_);
}

uint32_t NetlinkSocket::Send(nl_msg* msg, std::string_view what) {
  nlmsghdr* h = nlmsg_hdr(msg);
  h->nlmsg_seq = nl_socket_use_seq(sock_);
  h->nlmsg_flags |= NLM_F_REQUEST;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  while (::sendto(nl_socket_get_fd(sock_), h, h->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel),
                  sizeof kernel) < 0) {
    if (errno != EINTR) throw NetlinkError(errno, std::string(what) + " (send request)");
  }
  return h->nlmsg_seq;
}

NetlinkSocket::Answer NetlinkSocket::AwaitAnswer(uint32_t seq,
                                                 const std::function<void(nlmsghdr*)>& on_data) {
  std::vector<char>& buf = receive_buffer_;
  const int fd = nl_socket_get_fd(sock_);
  while (true) {
    iovec iov{buf.data(), buf.size()};
    sockaddr_nl from{};
    msghdr mh{};
    mh.msg_name = &from;
    mh.msg_namelen = sizeof from;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    ssize_t n = ::recvmsg(fd, &mh, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      // ENOBUFS: answers were dropped, the socket no longer matches requests.
      throw NetlinkError(errno, "receive netlink answer");
    }
    if ((mh.msg_flags & MSG_TRUNC) != 0) {
      throw Error::Internal("receive netlink answer: message larger than " +
                            std::to_string(buf.size()) + " bytes");
    }
    if (from.nl_pid != 0) continue;  // only the kernel talks to us
    int len = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, len);
         h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_seq != seq) continue;  // a stale answer to an abandoned request
      if (h->nlmsg_type == NLMSG_ERROR) {
        auto* e = static_cast<nlmsgerr*>(NLMSG_DATA(h));
        size_t offset = sizeof(nlmsgerr);
        if ((h->nlmsg_flags & NLM_F_CAPPED) == 0) offset += e->msg.nlmsg_len - NLMSG_HDRLEN;
        return Answer{-e->error, e->error != 0 ? ExtAckMessage(h, offset) : ""};
      }
      if (h->nlmsg_type == NLMSG_DONE) {
        int err = 0;
        if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(int))) {
          std::memcpy(&err, NLMSG_DATA(h), sizeof err);
        }
        return Answer{-err, err != 0 ? ExtAckMessage(h, sizeof(int)) : ""};
      }
      if (h->nlmsg_type < NLMSG_MIN_TYPE) continue;  // NOOP, OVERRUN
      if (on_data) on_data(h);
    }
  }
}

void NetlinkSocket::Exchange(nl_msg* msg, std::string_view what,
                             const std::function<void(nlmsghdr*)>& on_data) {
  uint32_t seq = Send(msg, what);
  Answer a = AwaitAnswer(seq, on_data);
  if (a.err != 0) throw NetlinkError(a.err, what, a.detail);
}

void NetlinkSocket::CreateVeth(const VethSpec& spec) {
  NetlinkBatch(*this).CreateVeth(spec).Commit();
}
void NetlinkSocket::CreateBridge(const std::string& name, int mtu, const std::string& mac) {
  NetlinkBatch(*this).CreateBridge(name, mtu, mac).Commit();
}
void NetlinkSocket::SetMaster(const std::string& dev, const std::string& master) {
  NetlinkBatch(*this).SetMaster(dev, master).Commit();
}
void NetlinkSocket::SetUp(const std::string& dev, bool up) {
  NetlinkBatch(*this).SetUp(dev, up).Commit();
}
void NetlinkSocket::SetMtu(const std::string& dev, int mtu) {
  NetlinkBatch(*this).SetMtu(dev, mtu).Commit();
}
void NetlinkSocket::SetHairpin(const std::string& bridge_port, bool on) {
  NetlinkBatch(*this).SetHairpin(bridge_port, on).Commit();
}
void NetlinkSocket::DeleteLink(const std::string& name) {
  NetlinkBatch(*this).DeleteLink(name).Commit();
}
void NetlinkSocket::AddAddress(const std::string& dev, const Ipv4Cidr& address) {
  NetlinkBatch(*this).AddAddress(dev, address).Commit();
}
void NetlinkSocket::DeleteAddress(const std::string& dev, const Ipv4Cidr& address) {
  NetlinkBatch(*this).DeleteAddress(dev, address).Commit();
}
void NetlinkSocket::AddRoute(const Route& route) { NetlinkBatch(*this).AddRoute(route).Commit(); }
void NetlinkSocket::ReplaceRoute(const Route& route) {
  NetlinkBatch(*this).ReplaceRoute(route).Commit();
}
void NetlinkSocket::DeleteNeighbor(const std::string& dev, const Ipv4Address& address) {
  NetlinkBatch(*this).DeleteNeighbor(dev, address).Commit();
}
void NetlinkSocket::DeleteRoute(const Route& route) {
  NetlinkBatch(*this).DeleteRoute(route).Commit();
}

std::optional<int> NetlinkSocket::FindLinkIndex(const std::string& name) {
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  Msg m(RTM_GETLINK, NLM_F_ACK);
  m.Head(ifi).Str(IFLA_IFNAME, name).U32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  MsgPtr msg = m.Take();
  int index = 0;
  uint32_t seq = Send(msg.get(), "look up link " + Quoted(name));
  Answer a = AwaitAnswer(seq, [&](nlmsghdr* h) {
    if (h->nlmsg_type == RTM_NEWLINK) index = static_cast<ifinfomsg*>(NLMSG_DATA(h))->ifi_index;
  });
  if (a.err == ENODEV) return std::nullopt;
  if (a.err != 0) throw NetlinkError(a.err, "look up link " + Quoted(name), a.detail);
  return index;
}

int NetlinkSocket::LinkIndex(const std::string& name) {
  auto index = FindLinkIndex(name);
  if (!index) throw NetlinkError(ENODEV, "look up link " + Quoted(name));
  return *index;
}

std::vector<LinkInfo> NetlinkSocket::ListLinks() {
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  Msg m(RTM_GETLINK, NLM_F_DUMP);
  m.Head(ifi).U32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  MsgPtr msg = m.Take();
  std::vector<LinkInfo> out;
  Exchange(msg.get(), "list links", [&](nlmsghdr* h) {
    if (h->nlmsg_type != RTM_NEWLINK) return;
    auto* info = static_cast<ifinfomsg*>(NLMSG_DATA(h));
    nlattr* tb[IFLA_MAX + 1] = {};
    if (nlmsg_parse(h, sizeof(ifinfomsg), tb, IFLA_MAX, nullptr) < 0) return;
    LinkInfo l;
    l.index = info->ifi_index;
    l.flags = info->ifi_flags;
    if (tb[IFLA_IFNAME]) l.name = nla_get_string(tb[IFLA_IFNAME]);
    if (tb[IFLA_MASTER]) l.master = static_cast<int>(nla_get_u32(tb[IFLA_MASTER]));
    if (tb[IFLA_MTU]) l.mtu = static_cast<int>(nla_get_u32(tb[IFLA_MTU]));
    if (tb[IFLA_ADDRESS]) {
      l.mac = FormatMac(static_cast<uint8_t*>(nla_data(tb[IFLA_ADDRESS])),
                        static_cast<size_t>(nla_len(tb[IFLA_ADDRESS])));
    }
    if (tb[IFLA_LINKINFO]) {
      nlattr* li[IFLA_INFO_MAX + 1] = {};
      if (nla_parse_nested(li, IFLA_INFO_MAX, tb[IFLA_LINKINFO], nullptr) == 0) {
        if (li[IFLA_INFO_KIND]) l.kind = nla_get_string(li[IFLA_INFO_KIND]);
        if (li[IFLA_INFO_SLAVE_KIND] && li[IFLA_INFO_SLAVE_DATA] &&
            std::string(nla_get_string(li[IFLA_INFO_SLAVE_KIND])) == "bridge") {
          nlattr* port[IFLA_BRPORT_MAX + 1] = {};
          if (nla_parse_nested(port, IFLA_BRPORT_MAX, li[IFLA_INFO_SLAVE_DATA], nullptr) == 0 &&
              port[IFLA_BRPORT_MODE]) {
            l.hairpin = nla_get_u8(port[IFLA_BRPORT_MODE]) != 0;
          }
        }
      }
    }
    out.push_back(std::move(l));
  });
  std::map<int, std::string> names;
  for (const auto& l : out) names[l.index] = l.name;
  for (auto& l : out) {
    if (l.master != 0) l.master_name = names[l.master];
  }
  return out;
}

std::optional<LinkInfo> NetlinkSocket::FindLink(const std::string& name) {
  for (auto& l : ListLinks()) {
    if (l.name == name) return std::move(l);
  }
  return std::nullopt;
}

std::vector<AddressInfo> NetlinkSocket::ListAddresses() {
  ifaddrmsg ifa{};
  ifa.ifa_family = AF_INET;
  Msg m(RTM_GETADDR, NLM_F_DUMP);
  m.Head(ifa);
  MsgPtr msg = m.Take();
  std::vector<AddressInfo> out;
  Exchange(msg.get(), "list addresses", [&](nlmsghdr* h) {
    if (h->nlmsg_type != RTM_NEWADDR) return;
    auto* info = static_cast<ifaddrmsg*>(NLMSG_DATA(h));
    if (info->ifa_family != AF_INET) return;
    nlattr* tb[IFA_MAX + 1] = {};
    if (nlmsg_parse(h, sizeof(ifaddrmsg), tb, IFA_MAX, nullptr) < 0) return;
    nlattr* a = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
    if (a == nullptr || nla_len(a) != 4) return;
    AddressInfo ai;
    ai.index = static_cast<int>(info->ifa_index);
    ai.address = Ipv4Cidr(Ipv4Address::FromNetworkOrder(nla_get_u32(a)), info->ifa_prefixlen);
    out.push_back(ai);
  });
  std::map<int, std::string> names;
  for (const auto& l : ListLinks()) names[l.index] = l.name;
  for (auto& a : out) a.dev = names[a.index];
  return out;
}

std::vector<RouteInfo> NetlinkSocket::ListRoutes() {
  rtmsg rtm{};
  rtm.rtm_family = AF_INET;
  Msg m(RTM_GETROUTE, NLM_F_DUMP);
  m.Head(rtm);
  MsgPtr msg = m.Take();
  std::vector<RouteInfo> out;
  Exchange(msg.get(), "list routes", [&](nlmsghdr* h) {
    if (h->nlmsg_type != RTM_NEWROUTE) return;
    auto* r = static_cast<rtmsg*>(NLMSG_DATA(h));
    nlattr* tb[RTA_MAX + 1] = {};
    if (r->rtm_family != AF_INET || nlmsg_parse(h, sizeof(rtmsg), tb, RTA_MAX, nullptr) < 0) {
      return;
    }
    uint32_t table = tb[RTA_TABLE] ? nla_get_u32(tb[RTA_TABLE]) : r->rtm_table;
    if (table != RT_TABLE_MAIN || r->rtm_type != RTN_UNICAST) return;
    RouteInfo ri;
    Ipv4Address dst;
    if (tb[RTA_DST]) dst = Ipv4Address::FromNetworkOrder(nla_get_u32(tb[RTA_DST]));
    ri.dst = Ipv4Cidr(dst, r->rtm_dst_len);
    if (tb[RTA_GATEWAY]) ri.via = Ipv4Address::FromNetworkOrder(nla_get_u32(tb[RTA_GATEWAY]));
    if (tb[RTA_PREFSRC]) ri.src = Ipv4Address::FromNetworkOrder(nla_get_u32(tb[RTA_PREFSRC]));
    if (tb[RTA_OIF]) ri.oif = static_cast<int>(nla_get_u32(tb[RTA_OIF]));
    ri.scope_link = r->rtm_scope == RT_SCOPE_LINK;
    ri.onlink = (r->rtm_flags & RTNH_F_ONLINK) != 0;
    ri.protocol = r->rtm_protocol;
    if (tb[RTA_MULTIPATH]) {
      // rtnexthop records, each followed by its attributes (RTA_GATEWAY).
      auto* hop = static_cast<rtnexthop*>(nla_data(tb[RTA_MULTIPATH]));
      int left = nla_len(tb[RTA_MULTIPATH]);
      while (RTNH_OK(hop, left)) {
        nlattr* hb[RTA_MAX + 1] = {};
        int attrs = static_cast<int>(hop->rtnh_len) - static_cast<int>(RTNH_LENGTH(0));
        if (attrs > 0 &&
            nla_parse(hb, RTA_MAX, reinterpret_cast<nlattr*>(RTNH_DATA(hop)), attrs, nullptr) ==
                0 &&
            hb[RTA_GATEWAY]) {
          ri.nexthops.push_back(Ipv4Address::FromNetworkOrder(nla_get_u32(hb[RTA_GATEWAY])));
        }
        if (ri.oif == 0) ri.oif = hop->rtnh_ifindex;
        left -= static_cast<int>(RTNH_ALIGN(hop->rtnh_len));
        hop = RTNH_NEXT(hop);
      }
    }
    out.push_back(ri);
  });
  std::map<int, std::string> names;
  for (const auto& l : ListLinks()) names[l.index] = l.name;
  for (auto& r : out) r.dev = names[r.oif];
  return out;
}

// ---- NetlinkBatch ----

// One queued request. It is built when it is sent, so that names resolve to
// the indices links have then (they may be created earlier in the batch).
struct NetlinkBatch::Op {
  using Indices = std::map<std::string, int>;
  std::string what;                // the error context: "create bridge `cbr0`"
  std::vector<std::string> needs;  // link names whose index the request carries
  std::string forgets;             // a name whose index the request invalidates
  std::function<MsgPtr(const Indices&)> build;
};

NetlinkBatch::NetlinkBatch(NetlinkSocket& sock) : sock_(sock) {}
NetlinkBatch::~NetlinkBatch() = default;

size_t NetlinkBatch::size() const { return ops_.size(); }

NetlinkBatch& NetlinkBatch::Add(Op op) {
  ops_.push_back(std::move(op));
  return *this;
}

NetlinkBatch& NetlinkBatch::CreateVeth(const VethSpec& spec) {
  if (spec.name.empty() || spec.peer_name.empty()) {
    throw Error::Invalid("create veth: both ends need a name");
  }
  std::vector<uint8_t> mac = spec.mac.empty() ? std::vector<uint8_t>{} : ParseMac(spec.mac);
  std::vector<uint8_t> peer_mac =
      spec.peer_mac.empty() ? std::vector<uint8_t>{} : ParseMac(spec.peer_mac);
  int peer_ns_fd = spec.peer_netns != nullptr ? spec.peer_netns->fd() : -1;
  Op op;
  op.what = "create veth " + Quoted(spec.name) + " (peer " + Quoted(spec.peer_name) + ")";
  if (!spec.master.empty()) op.needs.push_back(spec.master);
  op.build = [spec, mac, peer_mac, peer_ns_fd](const Op::Indices& idx) {
    ifinfomsg ifi{};
    ifi.ifi_family = AF_UNSPEC;
    if (spec.up) ifi.ifi_flags = ifi.ifi_change = IFF_UP;
    Msg m(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK);
    m.Head(ifi).Str(IFLA_IFNAME, spec.name);
    if (!mac.empty()) m.Bytes(IFLA_ADDRESS, mac.data(), mac.size());
    if (spec.mtu > 0) m.U32(IFLA_MTU, static_cast<uint32_t>(spec.mtu));
    if (!spec.master.empty()) m.U32(IFLA_MASTER, static_cast<uint32_t>(idx.at(spec.master)));
    nlattr* linkinfo = m.Nest(IFLA_LINKINFO);
    m.Str(IFLA_INFO_KIND, "veth");
    nlattr* data = m.Nest(IFLA_INFO_DATA);
    nlattr* peer = m.Nest(VETH_INFO_PEER);
    ifinfomsg peer_ifi{};
    peer_ifi.ifi_family = AF_UNSPEC;
    m.Head(peer_ifi).Str(IFLA_IFNAME, spec.peer_name);
    if (peer_ns_fd >= 0) m.U32(IFLA_NET_NS_FD, static_cast<uint32_t>(peer_ns_fd));
    if (!peer_mac.empty()) m.Bytes(IFLA_ADDRESS, peer_mac.data(), peer_mac.size());
    if (spec.mtu > 0) m.U32(IFLA_MTU, static_cast<uint32_t>(spec.mtu));
    m.End(peer).End(data).End(linkinfo);
    return m.Take();
  };
  return Add(std::move(op));
}

NetlinkBatch& NetlinkBatch::CreateBridge(const std::string& name, int mtu,
                                         const std::string& mac) {
  std::vector<uint8_t> address = mac.empty() ? std::vector<uint8_t>{} : ParseMac(mac);
  Op op;
  op.what = "create bridge " + Quoted(name);
  op.build = [name, mtu, address](const Op::Indices&) {
    ifinfomsg ifi{};
    ifi.ifi_family = AF_UNSPEC;
    Msg m(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK);
    m.Head(ifi).Str(IFLA_IFNAME, name);
    if (mtu > 0) m.U32(IFLA_MTU, static_cast<uint32_t>(mtu));
    if (!address.empty()) m.Bytes(IFLA_ADDRESS, address.data(), address.size());
    nlattr* linkinfo = m.Nest(IFLA_LINKINFO);
    m.Str(IFLA_INFO_KIND, "bridge").End(linkinfo);
    return m.Take();
  };
  return Add(std::move(op));
}

NetlinkBatch& NetlinkBatch::SetMaster(const std::string& dev, const std::string& master) {
  Op op;
  op.what = master.empty() ? "detach " + Quoted(dev) + " from its bridge"
                           : "attach " + Quoted(dev) + " to bridge " + Quoted(master);
  if (!master.empty()) op.needs.push_back(master);
  op.build = [dev, master](const Op::Indices& idx) {
    ifinfomsg ifi{};
    ifi.ifi_family = AF_UNSPEC;
    Msg m(RTM_SETLINK, NLM_F_ACK);
    m.Head(ifi).Str(IFLA_IFNAME, dev);
    m.U32(IFLA_MASTER, master.empty() ? 0u : static_cast<uint32_t>(idx.at(master)));
    return m.Take();
  };
  return Add(std::move(op));
}

NetlinkBatch& NetlinkBatch::SetUp(const std::string& dev, bool up) {
  Op op;
  op.what = "set " + Quoted(dev) + (up ? " up" : " down");
  op.build = [dev, up](const Op::Indices&) {
    ifinfomsg ifi{};
    ifi.ifi_family = AF_UNSPEC;
    ifi.ifi_change = IFF_UP;
    ifi.ifi_flags = up ? IFF_UP : 0;
    Msg m(RTM_SETLINK, NLM_F_ACK);
    m.Head(ifi).Str(IFLA_IFNAME, dev);
    return m.Take();
  };
  return Add(std::move(op));
}

NetlinkBatch& NetlinkBatch::SetMtu(const std::string& dev, int mtu) {
  Op op;
  op.what = "set MTU of " + Quoted(dev) + " to " + std::to_string(mtu);
  op.build = [dev, mtu](const Op::Indices&) {
    ifinfomsg ifi{};
    ifi.ifi_family = AF_UNSPEC;
    Msg m(RTM_SETLINK, NLM_F_ACK);
    m.Head(ifi).Str(IFLA_IFNAME, dev).U32(IFLA_MTU, static_cast<uint32_t>(mtu));
    return m.Take();
  };
  return Add(std::move(op));
}

NetlinkBatch& NetlinkBatch::SetHairpin(const std::string& bridge_port, bool on) {
  Op op;
  op.what = std::string(on ? "enable" : "disable") + " hairpin mode on bridge port " +
            Quoted(bridge_port);
  op.build = [bridge_port, on](const Op::Indices&) {
    // What `ip link set X type bridge_slave hairpin on` sends: bridge port
    // options travel as the port's "slave data", which only RTM_NEWLINK applies.
    ifinfomsg ifi{};
    ifi.ifi_family = AF_UNSPEC;
    Msg m(RTM_NEWLINK, NLM_F_ACK);
    m.Head(ifi).Str(IFLA_IFNAME, bridge_port);
    nlattr* linkinfo = m.Nest(IFLA_LINKINFO);
    m.Str(IFLA_INFO_SLAVE_KIND, "bridge");
    nlattr* data = m.Nest(IFLA_INFO_SLAVE_DATA);
    m.U8(IFLA_BRPORT_MODE, on ? 1 : 0).End(data).End(linkinfo);
    return m.Take();
  };
  return Add(std::move(op));
}

NetlinkBatch& NetlinkBatch::SetNoIpv6Addresses(const std::string& dev) {
  Op op;
  op.what = "turn IPv6 address generation off on " + Quoted(dev);
  op.build = [dev](const Op::Indices&) {
    ifinfomsg ifi{};
    ifi.ifi_family = AF_UNSPEC;
    Msg m(RTM_SETLINK, NLM_F_ACK);
    m.Head(ifi).Str(IFLA_IFNAME, dev);
    nlattr* spec = m.Nest(IFLA_AF_SPEC);
    nlattr* inet6 = m.Nest(AF_INET6);
    m.U8(IFLA_INET6_ADDR_GEN_MODE, IN6_ADDR_GEN_MODE_NONE).End(inet6).End(spec);
    return m.Take();
  };
  return Add(std::move(op));
}

NetlinkBatch& NetlinkBatch::DeleteLink(const std::string& name) {
  Op op;
  op.what = "delete link " + Quoted(name);
  op.forgets = name;
  op.build = [name](const Op::Indices&) {
    ifinfomsg ifi{};
    ifi.ifi_family = AF_UNSPEC;
    Msg m(RTM_DELLINK, NLM_F_ACK);
    m.Head(ifi).Str(IFLA_IFNAME, name);
    return m.Take();
  };
  return Add(std::move(op));
}

namespace {

MsgPtr AddressMsg(int type, int flags, int index, const Ipv4Cidr& a) {
  ifaddrmsg ifa{};
  ifa.ifa_family = AF_INET;
  ifa.ifa_prefixlen = static_cast<unsigned char>(a.prefix_len());
  ifa.ifa_scope = RT_SCOPE_UNIVERSE;
  ifa.ifa_index = static_cast<unsigned>(index);
  Msg m(type, flags | NLM_F_ACK);
  m.Head(ifa).Addr(IFA_LOCAL, a.address()).Addr(IFA_ADDRESS, a.address());
  if (type == RTM_NEWADDR && a.prefix_len() < 31) m.Addr(IFA_BROADCAST, a.broadcast());
  return m.Take();
}

}  // namespace

NetlinkBatch& NetlinkBatch::AddAddress(const std::string& dev, const Ipv4Cidr& address) {
  Op op;
  op.what = "add address " + address.ToString() + " to " + Quoted(dev);
  op.needs = {dev};
  op.build = [dev, address](const Op::Indices& idx) {
    return AddressMsg(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, idx.at(dev), address);
  };
  return Add(std::move(op));
}

NetlinkBatch& NetlinkBatch::DeleteAddress(const std::string& dev, const Ipv4Cidr& address) {
  Op op;
  op.what = "delete address " + address.ToString() + " from " + Quoted(dev);
  op.needs = {dev};
  op.build = [dev, address](const Op::Indices& idx) {
    return AddressMsg(RTM_DELADDR, 0, idx.at(dev), address);
  };
  return Add(std::move(op));
}

NetlinkBatch& NetlinkBatch::DeleteNeighbor(const std::string& dev, const Ipv4Address& address) {
  Op op;
  op.what = "delete neighbor " + address.ToString() + " on " + Quoted(dev);
  op.needs = {dev};
  op.build = [dev, address](const Op::Indices& idx) {
    ndmsg nd{};
    nd.ndm_family = AF_INET;
    nd.ndm_ifindex = idx.at(dev);
    Msg m(RTM_DELNEIGH, NLM_F_ACK);
    m.Head(nd).Addr(NDA_DST, address);
    return m.Take();
  };
  return Add(std::move(op));
}

namespace {

enum class RouteVerb { kAdd, kReplace, kDelete };

MsgPtr RouteMsg(RouteVerb verb, const Route& r, int oif) {
  rtmsg rtm{};
  rtm.rtm_family = AF_INET;
  rtm.rtm_dst_len = static_cast<unsigned char>(r.dst ? r.dst->prefix_len() : 0);
  rtm.rtm_table = RT_TABLE_MAIN;
  if (verb == RouteVerb::kDelete) {
    // As `ip route del`: any protocol, scope and type match.
    rtm.rtm_scope = RT_SCOPE_NOWHERE;
  } else {
    rtm.rtm_protocol = RTPROT_STATIC;
    rtm.rtm_scope =
        (r.scope_link || (!r.via && r.nexthops.empty())) ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
    rtm.rtm_type = RTN_UNICAST;
  }
  if (r.onlink) rtm.rtm_flags |= RTNH_F_ONLINK;
  int type = verb == RouteVerb::kDelete ? RTM_DELROUTE : RTM_NEWROUTE;
  int flags = verb == RouteVerb::kAdd       ? NLM_F_CREATE | NLM_F_EXCL
              : verb == RouteVerb::kReplace ? NLM_F_CREATE | NLM_F_REPLACE
                                            : 0;
  Msg m(type, flags | NLM_F_ACK);
  m.Head(rtm);
  if (r.dst && r.dst->prefix_len() > 0) m.Addr(RTA_DST, r.dst->network());
  if (r.nexthops.empty()) {
    if (r.via) m.Addr(RTA_GATEWAY, *r.via);
    if (oif > 0) m.U32(RTA_OIF, static_cast<uint32_t>(oif));
  } else if (verb != RouteVerb::kDelete) {
    // RTA_MULTIPATH: per next hop an rtnexthop (weight 1: rtnh_hops 0) on
    // the route's device, followed by its RTA_GATEWAY attribute.
    std::vector<char> hops;
    for (const Ipv4Address& gw : r.nexthops) {
      rtnexthop nh{};
      nh.rtnh_len = static_cast<unsigned short>(RTNH_LENGTH(RTA_SPACE(sizeof(uint32_t))));
      nh.rtnh_ifindex = oif;
      if (r.onlink) nh.rtnh_flags |= RTNH_F_ONLINK;
      rtattr gateway{};
      gateway.rta_len = static_cast<unsigned short>(RTA_LENGTH(sizeof(uint32_t)));
      gateway.rta_type = RTA_GATEWAY;
      uint32_t be = gw.network_order();
      size_t at = hops.size();
      hops.resize(at + RTNH_ALIGN(nh.rtnh_len));
      std::memcpy(hops.data() + at, &nh, sizeof nh);
      std::memcpy(hops.data() + at + RTNH_LENGTH(0), &gateway, sizeof gateway);
      std::memcpy(hops.data() + at + RTNH_LENGTH(0) + RTA_LENGTH(0), &be, sizeof be);
    }
    m.Bytes(RTA_MULTIPATH, hops.data(), hops.size());
  }
  if (r.src) m.Addr(RTA_PREFSRC, *r.src);
  return m.Take();
}

}  // namespace

NetlinkBatch& NetlinkBatch::AddRoute(const Route& route) {
  Op op;
  op.what = "add route " + route.ToString();
  if (!route.dev.empty()) op.needs = {route.dev};
  op.build = [route](const Op::Indices& idx) {
    return RouteMsg(RouteVerb::kAdd, route, route.dev.empty() ? 0 : idx.at(route.dev));
  };
  return Add(std::move(op));
}

NetlinkBatch& NetlinkBatch::ReplaceRoute(const Route& route) {
  Op op;
  op.what = "replace route " + route.ToString();
  if (!route.dev.empty()) op.needs = {route.dev};
  op.build = [route](const Op::Indices& idx) {
    return RouteMsg(RouteVerb::kReplace, route, route.dev.empty() ? 0 : idx.at(route.dev));
  };
  return Add(std::move(op));
}

NetlinkBatch& NetlinkBatch::DeleteRoute(const Route& route) {
  Op op;
  op.what = "delete route " + route.ToString();
  if (!route.dev.empty()) op.needs = {route.dev};
  op.build = [route](const Op::Indices& idx) {
    return RouteMsg(RouteVerb::kDelete, route, route.dev.empty() ? 0 : idx.at(route.dev));
  };
  return Add(std::move(op));
}

void NetlinkBatch::Commit(std::vector<bool>* done) {
  std::vector<Op> ops = std::move(ops_);
  ops_.clear();
  if (done != nullptr) done->assign(ops.size(), false);
  Op::Indices indices;
  struct InFlight {
    uint32_t seq;
    size_t op;
  };
  std::deque<InFlight> in_flight;
  std::optional<Error> failure;

  auto drain = [&] {
    while (!in_flight.empty()) {
      InFlight f = in_flight.front();
      in_flight.pop_front();
      NetlinkSocket::Answer a = sock_.AwaitAnswer(f.seq, nullptr);
      if (a.err == 0) {
        if (done != nullptr) (*done)[f.op] = true;
      } else if (!failure) {
        failure = NetlinkError(a.err, ops[f.op].what, a.detail);
      }
    }
  };

  for (size_t i = 0; i < ops.size() && !failure; i++) {
    const Op& op = ops[i];
    for (const std::string& name : op.needs) {
      if (indices.count(name) != 0) continue;
      // The link may come from a request still in flight: let it land first.
      drain();
      if (failure) break;
      std::optional<int> index = sock_.FindLinkIndex(name);
      if (!index) {
        failure = NetlinkError(ENODEV, op.what, "no link named " + Quoted(name));
        break;
      }
      indices[name] = *index;
    }
    if (failure) break;
    MsgPtr msg = op.build(indices);
    in_flight.push_back({sock_.Send(msg.get(), op.what), i});
    if (!op.forgets.empty()) indices.erase(op.forgets);
    if (in_flight.size() >= kMaxInFlight) drain();
  }
  drain();
  if (failure) throw *failure;
}

}  // namespace kin::netstack
