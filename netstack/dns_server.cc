#include "netstack/dns_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <list>
#include <random>
#include <span>
#include <sstream>
#include <unordered_map>

#include "base/error.h"
#include "base/log.h"
#include "base/netns.h"
#include "netstack/dns_wire.h"

namespace kin::netstack {

namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kTcpIdle = std::chrono::seconds(10);  // CoreDNS's TCP idle timeout
constexpr auto kHttpDeadline = std::chrono::seconds(5);
constexpr size_t kMaxTcpConns = 1000;
constexpr size_t kMaxHttpConns = 64;
constexpr size_t kMaxConcurrentForwards = 1000;  // CoreDNS forward's max_concurrent (kind)
constexpr size_t kUdpBatch = 64;
constexpr size_t kUdpBuffer = 4096;  // larger queries are not queries

// The query types metrics name (as CoreDNS's: others count as "other").
constexpr std::array<std::pair<uint16_t, const char*>, 9> kMetricTypes = {{{1, "A"},
                                                                           {28, "AAAA"},
                                                                           {33, "SRV"},
                                                                           {12, "PTR"},
                                                                           {5, "CNAME"},
                                                                           {16, "TXT"},
                                                                           {6, "SOA"},
                                                                           {2, "NS"},
                                                                           {15, "MX"}}};
constexpr size_t kOtherType = kMetricTypes.size();
size_t TypeSlot(uint16_t qtype) {
  for (size_t i = 0; i < kMetricTypes.size(); ++i) {
    if (kMetricTypes[i].first == qtype) return i;
  }
  return kOtherType;
}
constexpr std::array<const char*, 6> kRcodeNames = {"NOERROR",  "FORMERR", "SERVFAIL",
                                                    "NXDOMAIN", "NOTIMP",  "REFUSED"};
// CoreDNS's request duration buckets (seconds).
constexpr std::array<double, 16> kBuckets = {0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008,
                                             0.016,   0.032,  0.064, 0.128, 0.256, 0.512,
                                             1.024,   2.048,  4.096, 8.192};
// Who answered, for coredns_dns_responses_total{plugin}.
enum Plugin { kPluginKubernetes, kPluginCache, kPluginForward, kPluginNone, kPluginCount };
constexpr std::array<const char*, kPluginCount> kPluginNames = {"kubernetes", "cache", "forward",
                                                                ""};

// Counters written by the server's thread only and read by RenderMetrics
// from any thread: relaxed atomics suffice.
struct Metrics {
  using Counter = std::atomic<uint64_t>;
  std::array<std::array<Counter, kOtherType + 1>, 2> requests{};  // [tcp][type]
  std::array<std::array<Counter, kRcodeNames.size() + 1>, kPluginCount> responses{};
  std::array<Counter, kBuckets.size() + 1> duration_buckets{};  // the last: +Inf only
  Counter duration_count{0};
  std::atomic<double> duration_sum{0};
  Counter forward_requests{0}, forward_responses{0}, forward_timeouts{0}, forward_rejects{0};
  Counter truncated{0};

  static void Add(Counter& c, uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }
  void Observe(double seconds) {
    size_t i = 0;
    while (i < kBuckets.size() && seconds > kBuckets[i]) ++i;
    Add(duration_buckets[i]);
    Add(duration_count);
    duration_sum.store(duration_sum.load(std::memory_order_relaxed) + seconds,
                       std::memory_order_relaxed);
  }
};

sockaddr_in SockAddr(uint32_t host_order_ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(host_order_ip);
  a.sin_port = htons(port);
  return a;
}

uint16_t BoundPort(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

// A datagram or stream socket bound to bind:port (0: any), non-blocking.
UniqueFd BoundSocket(int type, const std::string& bind, uint16_t port, const std::string& where) {
  auto ip = Ipv4Address::TryParse(bind);
  if (!ip) throw Error::BadRequest("dns server: bind address \"" + bind + "\" is not IPv4");
  UniqueFd fd(static_cast<int>(
      CheckSys(::socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), "socket" + where)));
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a = SockAddr(ip->value(), port);
  const char* proto = type == SOCK_DGRAM ? "udp " : "tcp ";
  CheckSys(::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a),
           std::string("bind ") + proto + bind + ":" + std::to_string(port) + where);
  if (type == SOCK_STREAM) CheckSys(::listen(fd.get(), 512), "listen" + where);
  return fd;
}

}  // namespace

// ---- DnsCache -------------------------------------------------------------------------

namespace {
std::string CacheKey(const std::string& qname, uint16_t qtype, bool dnssec_ok) {
  std::string k = qname;
  k.push_back('\0');
  k += std::to_string(qtype);
  k.push_back(dnssec_ok ? '1' : '0');
  return k;
}
}  // namespace

DnsCache::DnsCache(size_t capacity, uint32_t max_ttl) : capacity_(capacity), max_ttl_(max_ttl) {}

std::optional<DnsCache::Hit> DnsCache::Get(const std::string& qname, uint16_t qtype,
                                           bool dnssec_ok) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(CacheKey(qname, qtype, dnssec_ok));
  auto now = Clock::now();
  if (it == entries_.end() || now >= it->second->expires) {
    if (it != entries_.end()) {
      order_.erase(it->second);
      entries_.erase(it);
    }
    misses_.fetch_add(1, std::memory_order_relaxed);
    return std::nullopt;
  }
  hits_.fetch_add(1, std::memory_order_relaxed);
  auto age = std::chrono::duration_cast<std::chrono::seconds>(now - it->second->stored);
  return Hit{it->second->wire, static_cast<uint32_t>(age.count())};
}

void DnsCache::Put(const std::string& qname, uint16_t qtype, bool dnssec_ok,
                   std::vector<uint8_t> wire, uint32_t ttl) {
  ttl = std::min(ttl, max_ttl_);
  if (ttl == 0 || capacity_ == 0) return;
  std::string key = CacheKey(qname, qtype, dnssec_ok);
  auto now = Clock::now();
  std::lock_guard lock(mu_);
  if (auto it = entries_.find(key); it != entries_.end()) {
    order_.erase(it->second);
    entries_.erase(it);
  }
  order_.push_back(Entry{key, std::move(wire), now, now + std::chrono::seconds(ttl)});
  entries_.emplace(std::move(key), std::prev(order_.end()));
  while (order_.size() > capacity_) {
    entries_.erase(order_.front().key);
    order_.pop_front();
  }
}

size_t DnsCache::size() const {
  std::lock_guard lock(mu_);
  return order_.size();
}

// ---- the server's loop ----------------------------------------------------------------

class DnsServer::Loop {
 public:
  Loop(const DnsServerOptions& opts, const DnsZone& zone, DnsCache& cache)
      : opts_(opts), zone_(zone), cache_(cache), rng_(std::random_device{}()) {}

  void Open(Ports* ports);
  void Run();
  void Wake() {
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(stop_.get(), &one, sizeof one);
  }
  std::string RenderMetrics() const;

 private:
  enum Kind : uint32_t {
    kStop,
    kUdp,
    kTcpListen,
    kTcpConn,
    kHttpListen,
    kHttpConn,
    kUpstreamPod,
    kUpstreamHost
  };
  // Where an answer goes: a UDP client's address, or a TCP connection (by
  // fd and the serial it had, so a reused fd is not answered by mistake).
  struct Client {
    bool tcp = false;
    sockaddr_in addr{};
    int fd = -1;
    uint64_t serial = 0;
  };
  struct TcpConn {
    UniqueFd fd;
    uint64_t serial = 0;
    std::vector<uint8_t> in, out;
    Clock::time_point last_active;
  };
  struct HttpConn {
    UniqueFd fd;
    int port_kind = 0;  // 0 health, 1 ready, 2 metrics
    std::string in;
    Clock::time_point deadline;
  };
  // A question asked upstream on a client's behalf.
  struct Pending {
    Client client;
    DnsQuery query;
    std::vector<uint8_t> upstream_query;   // with the upstream id
    std::optional<DnsAnswer> zone_answer;  // set: an ExternalName's CNAME waiting for its target
    std::string cache_name;
    uint16_t cache_type = 0;
    Clock::time_point start, next_try, deadline;
    size_t upstream = 0;  // index of the one asked last
  };

  void Add(int fd, Kind kind, uint32_t events = EPOLLIN) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = (uint64_t{kind} << 32) | static_cast<uint32_t>(fd);
    CheckSys(::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev), "epoll_ctl");
  }

  void ReadUdp();
  void AcceptTcp();
  void ReadTcp(int fd);
  void WriteTcp(TcpConn& c);
  void CloseTcp(int fd);
  void AcceptHttp(int listen_fd);
  void ReadHttp(int fd);
  void ReadUpstream(int fd);
  void Sweep(Clock::time_point now);

  // Answers one message from a client: returns the reply to send now (empty
  // when there is none now: forwarded, or nothing to answer).
  std::vector<uint8_t> Handle(std::span<const uint8_t> msg, const Client& client,
                              Clock::time_point received);
  std::vector<uint8_t> Forward(const DnsQuery& q, const Client& client, Clock::time_point received,
                               std::optional<DnsAnswer> zone_answer, const std::string& name,
                               uint16_t type);
  void SendUpstream(Pending& p);
  void Deliver(const Client& client, std::vector<uint8_t> reply);
  void Finish(const DnsQuery& q, Plugin plugin, std::span<const uint8_t> reply,
              Clock::time_point received);
  size_t MaxSize(const Client& c, const DnsQuery& q) const {
    return c.tcp ? kDnsMaxTcpSize : q.MaxUdpSize();
  }
  void Rotate(DnsAnswer& a);

  const DnsServerOptions& opts_;
  const DnsZone& zone_;
  DnsCache& cache_;
  std::mt19937 rng_;
  uint64_t rotation_ = 0;
  uint64_t next_serial_ = 1;

  UniqueFd epoll_, stop_, udp_, tcp_, upstream_pod_, upstream_host_;
  std::array<UniqueFd, 3> http_;  // health, ready, metrics
  std::unordered_map<int, TcpConn> tcp_conns_;
  std::unordered_map<int, HttpConn> http_conns_;
  std::unordered_map<uint16_t, Pending> pending_;
  std::vector<std::pair<std::vector<uint8_t>, sockaddr_in>> udp_out_;  // this batch's replies
  Metrics metrics_;
};

void DnsServer::Loop::Open(Ports* ports) {
  const std::string where = opts_.netns.empty() ? "" : " in netns `" + opts_.netns + "`";
  epoll_.reset(static_cast<int>(CheckSys(::epoll_create1(EPOLL_CLOEXEC), "epoll_create1")));
  stop_.reset(
      static_cast<int>(CheckSys(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), "eventfd" + where)));
  bool host_upstream = false, pod_upstream = false;
  for (const auto& u : opts_.upstreams) (u.from_host ? host_upstream : pod_upstream) = true;
  auto make = [&] {
    udp_ = BoundSocket(SOCK_DGRAM, opts_.bind, opts_.dns_port, where);
    // TCP on the port UDP got (they differ only when asked for any port).
    tcp_ = BoundSocket(SOCK_STREAM, opts_.bind, BoundPort(udp_.get()), where);
    const uint16_t http_ports[3] = {opts_.health_port, opts_.ready_port, opts_.metrics_port};
    for (int i = 0; i < 3; ++i)
      http_[i] = BoundSocket(SOCK_STREAM, opts_.bind, http_ports[i], where);
    if (pod_upstream) upstream_pod_ = BoundSocket(SOCK_DGRAM, "0.0.0.0", 0, where);
  };
  if (opts_.netns.empty()) {
    make();
  } else {
    RunInNetns(Netns::Open(opts_.netns), make);
  }
  if (host_upstream) upstream_host_ = BoundSocket(SOCK_DGRAM, "0.0.0.0", 0, " (host)");
  // Large bursts of queries wait in the socket rather than being dropped.
  int rcvbuf = 4 << 20;
  ::setsockopt(udp_.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);

  Add(stop_.get(), kStop);
  Add(udp_.get(), kUdp);
  Add(tcp_.get(), kTcpListen);
  for (auto& h : http_) Add(h.get(), kHttpListen);
  if (upstream_pod_) Add(upstream_pod_.get(), kUpstreamPod);
  if (upstream_host_) Add(upstream_host_.get(), kUpstreamHost);
  ports->dns = BoundPort(udp_.get());
  ports->health = BoundPort(http_[0].get());
  ports->ready = BoundPort(http_[1].get());
  ports->metrics = BoundPort(http_[2].get());
}

void DnsServer::Loop::Run() {
  std::array<epoll_event, 64> events;
  auto next_sweep = Clock::now();
  for (;;) {
    // Deadlines (forwards, idle connections) are checked every 50 ms while
    // there are any; an idle server sleeps.
    bool busy = !pending_.empty() || !tcp_conns_.empty() || !http_conns_.empty();
    int n = ::epoll_wait(epoll_.get(), events.data(), events.size(), busy ? 50 : 1000);
    if (n < 0 && errno != EINTR) {
      log::Error("dns server {}: epoll_wait: {}", opts_.name, std::strerror(errno));
      return;
    }
    for (int i = 0; i < n; ++i) {
      auto kind = static_cast<Kind>(events[i].data.u64 >> 32);
      int fd = static_cast<int>(events[i].data.u64 & 0xffffffffu);
      switch (kind) {
        case kStop:
          return;
        case kUdp:
          ReadUdp();
          break;
        case kTcpListen:
          AcceptTcp();
          break;
        case kTcpConn:
          if (events[i].events & EPOLLOUT) {
            if (auto it = tcp_conns_.find(fd); it != tcp_conns_.end()) WriteTcp(it->second);
          }
          if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) ReadTcp(fd);
          break;
        case kHttpListen:
          AcceptHttp(fd);
          break;
        case kHttpConn:
          ReadHttp(fd);
          break;
        case kUpstreamPod:
        case kUpstreamHost:
          ReadUpstream(fd);
          break;
      }
    }
    auto now = Clock::now();
    if (now >= next_sweep) {
      Sweep(now);
      next_sweep = now + std::chrono::milliseconds(50);
    }
  }
}

void DnsServer::Loop::ReadUdp() {
  std::array<std::array<uint8_t, kUdpBuffer>, kUdpBatch> bufs;
  std::array<mmsghdr, kUdpBatch> msgs{};
  std::array<iovec, kUdpBatch> iovs;
  std::array<sockaddr_in, kUdpBatch> addrs;
  for (;;) {
    for (size_t i = 0; i < kUdpBatch; ++i) {
      iovs[i] = {bufs[i].data(), bufs[i].size()};
      msgs[i].msg_hdr = {};
      msgs[i].msg_hdr.msg_name = &addrs[i];
      msgs[i].msg_hdr.msg_namelen = sizeof addrs[i];
      msgs[i].msg_hdr.msg_iov = &iovs[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int n = ::recvmmsg(udp_.get(), msgs.data(), kUdpBatch, MSG_DONTWAIT, nullptr);
    if (n <= 0) return;
    auto received = Clock::now();
    udp_out_.clear();
    for (int i = 0; i < n; ++i) {
      if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) continue;  // no query is this long
      Client c;
      c.addr = addrs[i];
      auto reply = Handle(std::span<const uint8_t>(bufs[i].data(), msgs[i].msg_len), c, received);
      if (!reply.empty()) udp_out_.emplace_back(std::move(reply), addrs[i]);
    }
    if (!udp_out_.empty()) {
      std::array<mmsghdr, kUdpBatch> out{};
      std::array<iovec, kUdpBatch> out_iov;
      for (size_t i = 0; i < udp_out_.size(); ++i) {
        out_iov[i] = {udp_out_[i].first.data(), udp_out_[i].first.size()};
        out[i].msg_hdr.msg_name = &udp_out_[i].second;
        out[i].msg_hdr.msg_namelen = sizeof(sockaddr_in);
        out[i].msg_hdr.msg_iov = &out_iov[i];
        out[i].msg_hdr.msg_iovlen = 1;
      }
      size_t sent = 0;
      while (sent < udp_out_.size()) {
        int m = ::sendmmsg(udp_.get(), out.data() + sent, udp_out_.size() - sent, MSG_DONTWAIT);
        if (m <= 0) break;  // a full send buffer drops the rest, as UDP may
        sent += m;
      }
    }
    if (static_cast<size_t>(n) < kUdpBatch) return;
  }
}

std::vector<uint8_t> DnsServer::Loop::Handle(std::span<const uint8_t> msg, const Client& client,
                                             Clock::time_point received) {
  DnsParsed parsed = ParseDnsQuery(msg);
  if (!parsed.query) {
    const auto& f = *parsed.failure;
    Metrics::Add(metrics_.requests[client.tcp][kOtherType]);
    if (!f.id) return {};
    auto reply = BuildDnsError(nullptr, *f.id, f.rcode);
    Metrics::Add(metrics_.responses[kPluginNone][static_cast<size_t>(f.rcode)]);
    return reply;
  }
  const DnsQuery& q = *parsed.query;
  Metrics::Add(metrics_.requests[client.tcp][TypeSlot(q.qtype)]);
  if (q.qtype == static_cast<uint16_t>(DnsType::kAxfr) || q.qtype == 251 /* IXFR */) {
    auto reply = BuildDnsError(&q, q.id, DnsRcode::kRefused);
    Finish(q, kPluginNone, reply, received);
    return reply;
  }
  DnsAnswer a = zone_.Resolve(q.qname, static_cast<DnsType>(q.qtype));
  if (a.source == DnsAnswer::Source::kForward) {
    return Forward(q, client, received, std::nullopt, q.qname, q.qtype);
  }
  if (!a.cname_to_resolve.empty()) {
    std::string target = a.cname_to_resolve;
    return Forward(q, client, received, std::move(a), target, q.qtype);
  }
  Rotate(a);
  auto reply = BuildDnsResponse(q, a, MaxSize(client, q));
  Finish(q, kPluginKubernetes, reply, received);
  return reply;
}

// CoreDNS's loadbalance: the A records of an answer in round-robin order.
void DnsServer::Loop::Rotate(DnsAnswer& a) {
  auto first = std::find_if(a.answer.begin(), a.answer.end(),
                            [](const DnsRecord& r) { return r.type == DnsType::kA; });
  auto last =
      std::find_if(first, a.answer.end(), [](const DnsRecord& r) { return r.type != DnsType::kA; });
  auto n = std::distance(first, last);
  if (n > 1) std::rotate(first, first + static_cast<long>(rotation_++ % n), last);
}

void DnsServer::Loop::Finish(const DnsQuery& q, Plugin plugin, std::span<const uint8_t> reply,
                             Clock::time_point received) {
  size_t rcode = reply.size() >= 4 ? (reply[3] & 0x0f) : kRcodeNames.size();
  if (rcode >= kRcodeNames.size()) rcode = kRcodeNames.size();
  Metrics::Add(metrics_.responses[plugin][rcode]);
  if (reply.size() >= 3 && (reply[2] & 0x02)) Metrics::Add(metrics_.truncated);
  (void)q;
  metrics_.Observe(std::chrono::duration<double>(Clock::now() - received).count());
}

std::vector<uint8_t> DnsServer::Loop::Forward(const DnsQuery& q, const Client& client,
                                              Clock::time_point received,
                                              std::optional<DnsAnswer> zone_answer,
                                              const std::string& name, uint16_t type) {
  const size_t max = MaxSize(client, q);
  // Without an upstream an ExternalName is its CNAME alone (CoreDNS when
  // the upstream lookup fails) and any other name SERVFAIL.
  auto give_up = [&](DnsRcode rcode) {
    std::vector<uint8_t> reply =
        zone_answer ? BuildDnsResponse(q, *zone_answer, max) : BuildDnsError(&q, q.id, rcode);
    Finish(q, zone_answer ? kPluginKubernetes : kPluginForward, reply, received);
    return reply;
  };
  if (auto hit = cache_.Get(name, type, q.dnssec_ok)) {
    std::optional<std::vector<uint8_t>> reply;
    if (zone_answer) {
      reply = BuildDnsResponseWithUpstream(q, *zone_answer, hit->wire, max);
    } else {
      reply = ReuseDnsResponse(hit->wire, q, hit->age_seconds, max);
    }
    if (reply) {
      Finish(q, zone_answer ? kPluginKubernetes : kPluginCache, *reply, received);
      return std::move(*reply);
    }
  }
  if (opts_.upstreams.empty()) return give_up(DnsRcode::kServFail);
  if (pending_.size() >= kMaxConcurrentForwards) {
    Metrics::Add(metrics_.forward_rejects);
    return give_up(DnsRcode::kRefused);
  }
  uint16_t id;
  do {
    id = static_cast<uint16_t>(rng_());
  } while (pending_.count(id));
  Pending p;
  p.client = client;
  p.query = q;
  p.zone_answer = std::move(zone_answer);
  p.cache_name = name;
  p.cache_type = type;
  p.upstream_query = BuildDnsUpstreamQuery(id, name, type, q.dnssec_ok);
  p.start = received;
  p.deadline = received + opts_.forward_timeout;
  p.upstream = rng_() % opts_.upstreams.size();  // CoreDNS forward's random policy
  auto& slot = pending_.emplace(id, std::move(p)).first->second;
  SendUpstream(slot);
  return {};
}

void DnsServer::Loop::SendUpstream(Pending& p) {
  const DnsUpstream& u = opts_.upstreams[p.upstream];
  int fd = u.from_host ? upstream_host_.get() : upstream_pod_.get();
  sockaddr_in to = SockAddr(u.address.value(), u.port);
  Metrics::Add(metrics_.forward_requests);
  // A send that fails (no route yet) counts as a try; the next one may work.
  ::sendto(fd, p.upstream_query.data(), p.upstream_query.size(), MSG_DONTWAIT,
           reinterpret_cast<sockaddr*>(&to), sizeof to);
  p.next_try = Clock::now() + opts_.attempt_timeout;
}

void DnsServer::Loop::ReadUpstream(int fd) {
  std::array<uint8_t, 65536> buf;
  for (;;) {
    sockaddr_in from{};
    socklen_t len = sizeof from;
    ssize_t n = ::recvfrom(fd, buf.data(), buf.size(), MSG_DONTWAIT,
                           reinterpret_cast<sockaddr*>(&from), &len);
    if (n < 0) return;
    std::span<const uint8_t> wire(buf.data(), static_cast<size_t>(n));
    auto info = ReadDnsResponse(wire);
    if (!info) continue;
    auto it = pending_.find(info->id);
    if (it == pending_.end()) continue;
    // Only the resolvers asked may answer (a spoofed reply is dropped).
    bool known = std::any_of(opts_.upstreams.begin(), opts_.upstreams.end(), [&](auto& u) {
      return htonl(u.address.value()) == from.sin_addr.s_addr && htons(u.port) == from.sin_port;
    });
    if (!known) continue;
    Pending p = std::move(it->second);
    pending_.erase(it);
    Metrics::Add(metrics_.forward_responses);
    std::vector<uint8_t> answer(wire.begin(), wire.end());
    if (!info->truncated &&
        (info->rcode == DnsRcode::kNoError || info->rcode == DnsRcode::kNxDomain)) {
      cache_.Put(p.cache_name, p.cache_type, p.query.dnssec_ok, answer, info->min_ttl);
    }
    const size_t max = MaxSize(p.client, p.query);
    std::optional<std::vector<uint8_t>> reply;
    if (p.zone_answer) {
      reply = BuildDnsResponseWithUpstream(p.query, *p.zone_answer, answer, max);
    } else {
      reply = ReuseDnsResponse(answer, p.query, 0, max);
    }
    if (!reply) reply = BuildDnsError(&p.query, p.query.id, DnsRcode::kServFail);
    Finish(p.query, p.zone_answer ? kPluginKubernetes : kPluginForward, *reply, p.start);
    Deliver(p.client, std::move(*reply));
  }
}

void DnsServer::Loop::Deliver(const Client& client, std::vector<uint8_t> reply) {
  if (!client.tcp) {
    ::sendto(udp_.get(), reply.data(), reply.size(), MSG_DONTWAIT,
             reinterpret_cast<const sockaddr*>(&client.addr), sizeof client.addr);
    return;
  }
  auto it = tcp_conns_.find(client.fd);
  if (it == tcp_conns_.end() || it->second.serial != client.serial) return;  // gone
  TcpConn& c = it->second;
  c.out.push_back(static_cast<uint8_t>(reply.size() >> 8));
  c.out.push_back(static_cast<uint8_t>(reply.size()));
  c.out.insert(c.out.end(), reply.begin(), reply.end());
  WriteTcp(c);
}

void DnsServer::Loop::Sweep(Clock::time_point now) {
  for (auto it = pending_.begin(); it != pending_.end();) {
    Pending& p = it->second;
    if (now >= p.deadline) {
      Metrics::Add(metrics_.forward_timeouts);
      log::Debug("dns server {}: no upstream answered {} in {} ms", opts_.name, p.cache_name,
                 opts_.forward_timeout.count());
      std::vector<uint8_t> reply =
          p.zone_answer ? BuildDnsResponse(p.query, *p.zone_answer, MaxSize(p.client, p.query))
                        : BuildDnsError(&p.query, p.query.id, DnsRcode::kServFail);
      Finish(p.query, p.zone_answer ? kPluginKubernetes : kPluginForward, reply, p.start);
      Client client = p.client;
      it = pending_.erase(it);
      Deliver(client, std::move(reply));
      continue;
    }
    if (now >= p.next_try) {
      p.upstream = (p.upstream + 1) % opts_.upstreams.size();
      SendUpstream(p);
    }
    ++it;
  }
  std::vector<int> idle;
  for (auto& [fd, c] : tcp_conns_) {
    if (now - c.last_active > kTcpIdle) idle.push_back(fd);
  }
  for (int fd : idle) CloseTcp(fd);
  for (auto it = http_conns_.begin(); it != http_conns_.end();) {
    it = now > it->second.deadline ? http_conns_.erase(it) : std::next(it);
  }
}

void DnsServer::Loop::AcceptTcp() {
  for (;;) {
    int fd = ::accept4(tcp_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    if (tcp_conns_.size() >= kMaxTcpConns) {
      ::close(fd);  // refused: the client retries or gives up, the server stays bounded
      continue;
    }
    TcpConn c;
    c.fd.reset(fd);
    c.serial = next_serial_++;
    c.last_active = Clock::now();
    Add(fd, kTcpConn, EPOLLIN | EPOLLRDHUP);
    tcp_conns_.emplace(fd, std::move(c));
  }
}

void DnsServer::Loop::ReadTcp(int fd) {
  auto it = tcp_conns_.find(fd);
  if (it == tcp_conns_.end()) return;
  TcpConn& c = it->second;
  std::array<uint8_t, 16384> buf;
  bool closed = false;
  for (;;) {
    ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
    if (n > 0) {
      c.in.insert(c.in.end(), buf.data(), buf.data() + n);
      if (c.in.size() > 2 * (kDnsMaxTcpSize + 2)) {
        closed = true;  // a client that does not read its answers
        break;
      }
      continue;
    }
    if (n == 0 || (errno != EAGAIN && errno != EINTR)) closed = true;
    break;
  }
  c.last_active = Clock::now();
  size_t off = 0;
  while (c.in.size() - off >= 2) {
    size_t len = (size_t{c.in[off]} << 8) | c.in[off + 1];
    if (c.in.size() - off - 2 < len) break;
    Client client;
    client.tcp = true;
    client.fd = fd;
    client.serial = c.serial;
    auto reply =
        Handle(std::span<const uint8_t>(c.in.data() + off + 2, len), client, c.last_active);
    off += 2 + len;
    if (!reply.empty()) {
      c.out.push_back(static_cast<uint8_t>(reply.size() >> 8));
      c.out.push_back(static_cast<uint8_t>(reply.size()));
      c.out.insert(c.out.end(), reply.begin(), reply.end());
    }
  }
  c.in.erase(c.in.begin(), c.in.begin() + static_cast<long>(off));
  if (!c.out.empty()) WriteTcp(c);
  // A client that closed its side after its last query still gets the
  // answers already written; what waits upstream is dropped with it.
  if (closed) CloseTcp(fd);
}

void DnsServer::Loop::WriteTcp(TcpConn& c) {
  while (!c.out.empty()) {
    ssize_t n = ::send(c.fd.get(), c.out.data(), c.out.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n <= 0) break;
    c.out.erase(c.out.begin(), c.out.begin() + n);
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | (c.out.empty() ? 0u : static_cast<uint32_t>(EPOLLOUT));
  ev.data.u64 = (uint64_t{kTcpConn} << 32) | static_cast<uint32_t>(c.fd.get());
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.fd.get(), &ev);
}

void DnsServer::Loop::CloseTcp(int fd) {
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  tcp_conns_.erase(fd);
}

void DnsServer::Loop::AcceptHttp(int listen_fd) {
  int kind = listen_fd == http_[0].get() ? 0 : listen_fd == http_[1].get() ? 1 : 2;
  for (;;) {
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    if (http_conns_.size() >= kMaxHttpConns) {
      ::close(fd);
      continue;
    }
    HttpConn c;
    c.fd.reset(fd);
    c.port_kind = kind;
    c.deadline = Clock::now() + kHttpDeadline;
    Add(fd, kHttpConn);
    http_conns_.emplace(fd, std::move(c));
  }
}

// Health, readiness and metrics: one GET per connection, answered and
// closed (what probes and Prometheus need).
void DnsServer::Loop::ReadHttp(int fd) {
  auto it = http_conns_.find(fd);
  if (it == http_conns_.end()) return;
  HttpConn& c = it->second;
  char buf[4096];
  ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
  if (n <= 0) {
    if (n == 0 || (errno != EAGAIN && errno != EINTR)) http_conns_.erase(it);
    return;
  }
  c.in.append(buf, static_cast<size_t>(n));
  if (c.in.find("\r\n\r\n") == std::string::npos) {
    if (c.in.size() > 8192) http_conns_.erase(it);
    return;
  }
  std::string line = c.in.substr(0, c.in.find("\r\n"));
  std::string path;
  if (line.rfind("GET ", 0) == 0) path = line.substr(4, line.find(' ', 4) - 4);
  static constexpr const char* kPaths[3] = {"/health", "/ready", "/metrics"};
  int status = 404;
  std::string body = "404 page not found\n", type = "text/plain; charset=utf-8";
  if (path == kPaths[c.port_kind]) {
    status = 200;
    if (c.port_kind == 2) {
      body = RenderMetrics();
      type = "text/plain; version=0.0.4; charset=utf-8";
    } else {
      body = "OK";
    }
  }
  std::string resp = "HTTP/1.1 " + std::to_string(status) + (status == 200 ? " OK" : " Not Found") +
                     "\r\nContent-Type: " + type +
                     "\r\nContent-Length: " + std::to_string(body.size()) +
                     "\r\nConnection: close\r\n\r\n" + body;
  // Small answers fit the socket buffer; one send suffices.
  [[maybe_unused]] auto sent = ::send(fd, resp.data(), resp.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  http_conns_.erase(it);
}

std::string DnsServer::Loop::RenderMetrics() const {
  std::ostringstream o;
  const std::string server = "server=\"dns://:" + std::to_string(opts_.dns_port) + "\"";
  o << "# HELP coredns_dns_requests_total Counter of DNS requests made per zone, protocol and "
       "family.\n# TYPE coredns_dns_requests_total counter\n";
  for (int tcp = 0; tcp < 2; ++tcp) {
    for (size_t t = 0; t <= kOtherType; ++t) {
      uint64_t v = metrics_.requests[tcp][t].load(std::memory_order_relaxed);
      if (v == 0) continue;
      o << "coredns_dns_requests_total{family=\"1\",proto=\"" << (tcp ? "tcp" : "udp") << "\","
        << server << ",type=\"" << (t < kOtherType ? kMetricTypes[t].second : "other")
        << "\",zone=\".\"} " << v << "\n";
    }
  }
  o << "# HELP coredns_dns_responses_total Counter of response status codes.\n"
       "# TYPE coredns_dns_responses_total counter\n";
  for (size_t p = 0; p < kPluginCount; ++p) {
    for (size_t r = 0; r <= kRcodeNames.size(); ++r) {
      uint64_t v = metrics_.responses[p][r].load(std::memory_order_relaxed);
      if (v == 0) continue;
      o << "coredns_dns_responses_total{plugin=\"" << kPluginNames[p] << "\",rcode=\""
        << (r < kRcodeNames.size() ? kRcodeNames[r] : "OTHER") << "\"," << server << ",zone=\".\"} "
        << v << "\n";
    }
  }
  o << "# HELP coredns_dns_request_duration_seconds Histogram of the time (in seconds) each "
       "request took.\n# TYPE coredns_dns_request_duration_seconds histogram\n";
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= kBuckets.size(); ++i) {
    cumulative += metrics_.duration_buckets[i].load(std::memory_order_relaxed);
    o << "coredns_dns_request_duration_seconds_bucket{" << server << ",zone=\".\",le=\"";
    if (i < kBuckets.size()) {
      o << kBuckets[i];
    } else {
      o << "+Inf";
    }
    o << "\"} " << cumulative << "\n";
  }
  o << "coredns_dns_request_duration_seconds_sum{" << server << ",zone=\".\"} "
    << metrics_.duration_sum.load(std::memory_order_relaxed) << "\n";
  o << "coredns_dns_request_duration_seconds_count{" << server << ",zone=\".\"} "
    << metrics_.duration_count.load(std::memory_order_relaxed) << "\n";
  auto counter = [&](const char* name, const char* help, uint64_t v) {
    o << "# HELP " << name << " " << help << "\n# TYPE " << name << " counter\n"
      << name << "{" << server << "} " << v << "\n";
  };
  counter("coredns_cache_hits_total", "The count of cache hits (shared by the replicas).",
          cache_.hits());
  counter("coredns_cache_misses_total", "The count of cache misses (shared by the replicas).",
          cache_.misses());
  counter("coredns_forward_requests_total", "Counter of requests made per upstream.",
          metrics_.forward_requests.load(std::memory_order_relaxed));
  counter("coredns_forward_responses_total", "Counter of responses received per upstream.",
          metrics_.forward_responses.load(std::memory_order_relaxed));
  counter("coredns_forward_max_concurrent_rejects_total",
          "Counter of requests rejected because there were too many concurrent requests.",
          metrics_.forward_rejects.load(std::memory_order_relaxed));
  counter("kin_dns_forward_timeouts_total",
          "Questions no upstream answered within the forward timeout (answered SERVFAIL).",
          metrics_.forward_timeouts.load(std::memory_order_relaxed));
  counter("kin_dns_truncated_responses_total", "Answers cut to the client's size (TC set).",
          metrics_.truncated.load(std::memory_order_relaxed));
  return o.str();
}

// ---- DnsServer ------------------------------------------------------------------------

DnsServer::DnsServer(DnsServerOptions opts, const DnsZone& zone, DnsCache& cache)
    : opts_(std::move(opts)), zone_(zone), cache_(cache) {}

DnsServer::~DnsServer() { Stop(); }

void DnsServer::Start() {
  auto loop = std::make_unique<Loop>(opts_, zone_, cache_);
  loop->Open(&ports_);
  loop_ = std::move(loop);
  thread_ = std::thread([this] { loop_->Run(); });
}

void DnsServer::Stop() {
  if (!loop_) return;
  loop_->Wake();
  if (thread_.joinable()) thread_.join();
  loop_.reset();
}

std::string DnsServer::RenderMetrics() const { return loop_ ? loop_->RenderMetrics() : ""; }

}  // namespace kin::netstack
