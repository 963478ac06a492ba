// The cluster DNS's records: a plain description of Services, their
// endpoints and the namespaces, and the answers CoreDNS's kubernetes plugin
// gives from them (kind's Corefile: `kubernetes cluster.local in-addr.arpa
// ip6.arpa { pods insecure; fallthrough in-addr.arpa ip6.arpa; ttl 30 }`).
// The rules below are CoreDNS's (plugin/kubernetes/{handler,kubernetes,
// parse,reverse,ns}.go, plugin/backend_lookup.go), read from its source.
//
// DnsZone knows nothing of the API or the wire: the controller
// (controllers/cluster_dns.h) turns Services and EndpointSlices into
// DnsService values; the server (netstack/dns_server.h) turns queries into
// Resolve() calls and answers into wire (netstack/dns_wire.h).
//
// Answers, for the cluster domain D (default cluster.local). A name under
// svc.D or pod.D only exists when its namespace was SetNamespace()d (CoreDNS
// asks its namespace informer): otherwise NXDOMAIN, Services or not.
//   <svc>.<ns>.svc.D A        the ClusterIPs; headless: every endpoint's IP
//                             (a headless Service without endpoints:
//                             NXDOMAIN)
//   <ep>.<svc>.<ns>.svc.D A   one endpoint, also of a ClusterIP Service: <ep>
//                             is its hostname, else its IP dashed (10-244-1-5)
//   <svc>.<ns>.svc.D SRV      one record per (ClusterIP, port) or per
//                             (endpoint, endpoint port), named or not, the
//                             target's A record as an additional; weight
//                             floor(100/n) (at least 1) for n records
//   _<port>._<proto>.<svc>.<ns>.svc.D SRV (or A)  the same, for the named
//                             port only (the underscores are optional)
//   <svc>.<ns>.svc.D          ExternalName: CNAME to spec.externalName; for
//                             A/AAAA the target is chased: in D by the zone
//                             itself, elsewhere by the server
//                             (DnsAnswer::cname_to_resolve)
//   a-b-c-d.<ns>.pod.D A      a.b.c.d ("pods insecure"); an invalid address
//                             (1-2-3-400, 1-2-3-04): NXDOMAIN
//   d.c.b.a.in-addr.arpa PTR  a ClusterIP's Service, else the names of the
//                             endpoints with that address; an unknown
//                             address falls through (kForward), as does any
//                             other name error in the reverse zones
//   D, in-addr.arpa, ip6.arpa SOA the zone's SOA; NS: the Services with an
//                             endpoint at DnsZoneOptions::local_ips (else
//                             ns.dns.<zone>), their addresses as additionals
//   ns.dns.<zone> A           the addresses of the NS records
//   dns-version.<zone> TXT    "1.1.0" (the schema version), TTL 28800
//   unknown names in D        NXDOMAIN, the SOA in authority
//   a known name, other type  NOERROR without answers (NODATA), the SOA in
//                             authority: AAAA in this IPv4 cluster; also D,
//                             svc.D, pod.D and <ns>.svc.D / <ns>.pod.D of an
//                             existing namespace; SOA on any name below D
//   TXT on a name without A   NXDOMAIN, even for D, svc.D and <ns>.svc.D
//   AXFR / IXFR               REFUSED, not authoritative, nothing else
// Names outside D and the reverse zones are not ours (kForward). Wildcard
// labels ("*", "any") were removed from CoreDNS: "*" is an ordinary label.
//
// Names are compared case-insensitively. As CoreDNS does, an answer echoes
// the query's spelling: records owned by the question carry the qname as
// asked (with the trailing dot), and names CoreDNS builds from the zone
// (the SOA's, SRV targets, NS targets) spell the zone as the query did;
// the rest (Service and namespace names, hostnames, externalName) are
// spelled as the objects spell them. TTLs: DnsZoneOptions::ttl, except
// the SOA's (min(ttl, 300)) and dns-version's.
//
// Thread-safety: thread-safe. Resolve() runs concurrently with the setters
// (a reader-writer lock; readers never wait for each other).
#pragma once

#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "netstack/ipam.h"

namespace kin::netstack {

// Record types and classes kin answers (RFC 1035 numbers).
enum class DnsType : uint16_t {
  kA = 1,
  kNs = 2,
  kCname = 5,
  kSoa = 6,
  kPtr = 12,
  kMx = 15,
  kTxt = 16,
  kAaaa = 28,
  kSrv = 33,
  kOpt = 41,
  kAxfr = 252,
  kAny = 255,
};
inline constexpr uint16_t kDnsClassIn = 1;

enum class DnsRcode : uint8_t {
  kNoError = 0,
  kFormErr = 1,
  kServFail = 2,
  kNxDomain = 3,
  kNotImp = 4,
  kRefused = 5,
};

struct DnsSoa {
  std::string mname;  // "ns.dns.cluster.local."
  std::string rname;  // "hostmaster.cluster.local."
  uint32_t serial = 0, refresh = 7200, retry = 1800, expire = 86400, minimum = 30;
  bool operator==(const DnsSoa&) const = default;
};

// One resource record. `name` and every name in the data are absolute,
// with the trailing dot (spelled as the header comment says).
struct DnsRecord {
  std::string name;
  DnsType type = DnsType::kA;
  uint32_t ttl = 0;
  Ipv4Address ipv4;                             // A
  std::string target;                           // CNAME, PTR, NS: the name; SRV: the target
  uint16_t priority = 0, weight = 0, port = 0;  // SRV
  std::string text;                             // TXT (one string)
  DnsSoa soa;                                   // SOA
  bool operator==(const DnsRecord&) const = default;
};

struct DnsAnswer {
  // kForward: not a name of the zone (or a reverse name it does not know):
  // the server asks the upstream resolvers.
  enum class Source { kZone, kForward };
  Source source = Source::kZone;
  DnsRcode rcode = DnsRcode::kNoError;
  bool authoritative = true;
  std::vector<DnsRecord> answer, authority, additional;
  // An ExternalName Service's target (absolute, trailing dot, as spelled in
  // the spec) when an A or AAAA question's CNAME chain leaves the zone;
  // `answer` then ends with the CNAME to it. CoreDNS (backend_lookup.go A(),
  // plugin/pkg/upstream) asks itself, through its whole chain (this zone,
  // cache, forward), the same type for that name and appends the reply's
  // answer records, whatever they are (none on NXDOMAIN), keeping NOERROR
  // and no SOA. Only if no reply comes at all does it drop the chain and
  // answer NODATA: Resolve(<zone apex>, kSoa) gives that SOA.
  std::string cname_to_resolve;
};

// ---- the plain description --------------------------------------------------

struct DnsServicePort {
  std::string name;      // empty: only in the SRV of the plain name
  std::string protocol;  // "TCP" | "UDP" | "SCTP"
  uint16_t port = 0;
  bool operator==(const DnsServicePort&) const = default;
};

struct DnsEndpoint {
  Ipv4Address ipv4;
  std::string hostname;  // EndpointSlice endpoints[].hostname; empty: none
  // The ports of the EndpointSlice it came from (port: the target port, as
  // the slice has it): the SRV records of endpoints (headless Services,
  // <ep>.<svc> names) carry these, not the Service's. Empty: the slice
  // lists no ports (the endpoint has A records, no SRV).
  std::vector<DnsServicePort> ports;
  bool operator==(const DnsEndpoint&) const = default;
};

struct DnsService {
  enum class Kind { kClusterIP, kHeadless, kExternalName };
  std::string ns, name;
  Kind kind = Kind::kClusterIP;
  std::vector<Ipv4Address> cluster_ips;  // kClusterIP
  std::string external_name;             // kExternalName, as in the spec
  std::vector<DnsServicePort> ports;
  // The endpoints DNS publishes: ready ones (ready unset counts as ready), as
  // CoreDNS reads EndpointSlices (the EndpointSlice controller marks
  // not-ready pods ready when the Service has publishNotReadyAddresses).
  // An address in two slices is listed twice. Empty Service ports: CoreDNS
  // still answers A, no SRV.
  std::vector<DnsEndpoint> endpoints;
  bool operator==(const DnsService&) const = default;
};

struct DnsZoneOptions {
  std::string domain = "cluster.local";  // no trailing dot
  uint32_t ttl = 30;  // of the records, the SOA's minimum; the SOA's TTL is min(ttl, 300)
  // The addresses the DNS server serves on (CoreDNS: its non-loopback bound
  // addresses, local.go). NS answers and ns.dns.<zone> name the Services
  // with an endpoint at one of them (kube-dns.kube-system.svc.<zone>, its
  // ClusterIP as the address), else ns.dns.<zone> with these addresses.
  // Empty: NS and ns.dns.<zone> A are NODATA.
  std::vector<Ipv4Address> local_ips;
};

class DnsZone {
 public:
  explicit DnsZone(DnsZoneOptions opts = {});
  ~DnsZone();
  DnsZone(const DnsZone&) = delete;
  DnsZone& operator=(const DnsZone&) = delete;

  const DnsZoneOptions& options() const { return opts_; }

  // Adds or replaces the Service named svc.ns/svc.name.
  void SetService(DnsService svc);
  void RemoveService(const std::string& ns, const std::string& name);
  void SetNamespace(const std::string& name);
  void RemoveNamespace(const std::string& name);

  // The answer to one question. `qname` may be in any case, with or without
  // the trailing dot. Never throws.
  DnsAnswer Resolve(std::string_view qname, DnsType qtype) const;

  // Changes so far (every setter that changed something counts one): a
  // server may key cached answers by it. The SOA's serial is, as CoreDNS's,
  // the Unix time of the last change (of construction before any).
  uint64_t generation() const;
  size_t service_count() const;

 private:
  struct Index;
  DnsZoneOptions opts_;
  mutable std::shared_mutex mu_;
  std::unique_ptr<Index> index_;
};

}  // namespace kin::netstack
