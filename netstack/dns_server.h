// The cluster DNS server: what each of the kube-dns pods answers.
//
// A DnsServer owns sockets made inside one network namespace (a DNS pod's)
// and one thread that serves them all with epoll, as CoreDNS serves kind's
// Corefile:
//   - DNS on UDP and TCP port 53 (RFC 1035; TCP messages with their length
//     prefix, several per connection, idle connections closed after 10 s):
//     names of the zone (netstack/dns_zone.h) answered from it, A records
//     rotated per answer (CoreDNS's loadbalance); other names forwarded to
//     the upstream resolvers, in turn, each try `attempt_timeout`, SERVFAIL
//     when none answered within `forward_timeout`; forwarded answers cached
//     (DnsCache: CoreDNS's `cache 30`, shared by the replicas);
//   - HTTP GET /health on 8080 and /ready on 8181 (200 "OK" while serving),
//     the kube-dns pods' liveness and readiness probes;
//   - GET /metrics on 9153: Prometheus text with CoreDNS's metric names
//     (coredns_dns_requests_total, coredns_dns_responses_total by rcode,
//     coredns_dns_request_duration_seconds, coredns_cache_*,
//     coredns_forward_*), for this server.
// Answers too large for the client's UDP size are truncated (TC), and the
// client retries over TCP (netstack/dns_wire.h).
//
// An upstream is asked from a socket in the pod's namespace (its packets
// take the pod's route, out through the node's SNAT to, say, a resolver in
// the internet namespace) or, with DnsUpstream::from_host, from one in the
// namespace of the thread that called Start() (kin serve's: the host's own
// resolvers, as kind's CoreDNS forwards to the node's /etc/resolv.conf).
//
// Thread-safety: Start/Stop from one thread; metrics() and the zone and
// cache it reads are safe to use from any thread while it runs.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/fd.h"
#include "netstack/dns_zone.h"
#include "netstack/ipam.h"

namespace kin::netstack {

struct DnsUpstream {
  Ipv4Address address;
  uint16_t port = 53;
  bool from_host = false;  // asked from the host's namespace, not the pod's
  bool operator==(const DnsUpstream&) const = default;
};

// Answers of upstream resolvers, kept as long as their TTL allows and at
// most `max_ttl` (negative answers too), CoreDNS's `cache 30`. Keyed by
// name, type and DO bit; the oldest stored dropped beyond `capacity`.
// Thread-safe (one mutex).
class DnsCache {
 public:
  explicit DnsCache(size_t capacity = 9984, uint32_t max_ttl = 30);
  struct Hit {
    std::vector<uint8_t> wire;  // as the upstream sent it
    uint32_t age_seconds = 0;
  };
  std::optional<Hit> Get(const std::string& qname, uint16_t qtype, bool dnssec_ok);
  void Put(const std::string& qname, uint16_t qtype, bool dnssec_ok, std::vector<uint8_t> wire,
           uint32_t ttl);
  uint64_t hits() const { return hits_.load(); }
  uint64_t misses() const { return misses_.load(); }
  size_t size() const;

 private:
  struct Entry {
    std::string key;
    std::vector<uint8_t> wire;
    std::chrono::steady_clock::time_point stored, expires;
  };
  const size_t capacity_;
  const uint32_t max_ttl_;
  mutable std::mutex mu_;
  std::list<Entry> order_;  // oldest stored first
  std::unordered_map<std::string, std::list<Entry>::iterator> entries_;
  std::atomic<uint64_t> hits_{0}, misses_{0};
};

struct DnsServerOptions {
  std::string netns;  // the pod's namespace (/run/netns/NAME or a name); empty: the caller's
  std::string bind = "0.0.0.0";
  uint16_t dns_port = 53;  // 0: any free port (tests), see ports()
  uint16_t health_port = 8080;
  uint16_t ready_port = 8181;
  uint16_t metrics_port = 9153;
  std::vector<DnsUpstream> upstreams;
  std::chrono::milliseconds attempt_timeout{1000};
  std::chrono::milliseconds forward_timeout{2000};
  std::string name;  // for logs ("kube-system/coredns-7d9f-abcde")
};

class DnsServer {
 public:
  // `zone` and `cache` outlive the server.
  DnsServer(DnsServerOptions opts, const DnsZone& zone, DnsCache& cache);
  ~DnsServer();
  DnsServer(const DnsServer&) = delete;
  DnsServer& operator=(const DnsServer&) = delete;

  // Makes every socket (throwing kin::Error naming the namespace and port
  // at fault, leaving nothing behind) and starts serving.
  void Start();
  // Closes every socket and joins the thread; idempotent.
  void Stop();

  struct Ports {
    uint16_t dns = 0, health = 0, ready = 0, metrics = 0;
  };
  Ports ports() const { return ports_; }  // the bound ones, after Start()

  // The Prometheus text served on /metrics.
  std::string RenderMetrics() const;

 private:
  class Loop;
  DnsServerOptions opts_;
  const DnsZone& zone_;
  DnsCache& cache_;
  Ports ports_;
  std::unique_ptr<Loop> loop_;
  std::thread thread_;
};

}  // namespace kin::netstack
