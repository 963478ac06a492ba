// The kubernetes plugin's answers, transcribed from CoreDNS's source. Each
// function names the Go function it mirrors; the Go code's quirks are kept
// on purpose (the point is to answer as CoreDNS does), each with a comment.
//
// Resolve() runs on the DNS server's hot path: the qname is lower-cased into
// a stack buffer, Services are found by one hash lookup ("name.ns", as
// CoreDNS's SvcIndex keys them), reverse names by one lookup by address, and
// the only allocations are the answer's own records.
#include "netstack/dns_zone.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace kin::netstack {
namespace {

constexpr std::string_view kInAddrArpa = "in-addr.arpa.";
constexpr std::string_view kIp6Arpa = "ip6.arpa.";
constexpr std::string_view kDefaultNs = "ns.dns.";    // ns.go defaultNSName
constexpr std::string_view kSchemaVersion = "1.1.0";  // kubernetes.go DNSSchemaVersion
constexpr uint32_t kSchemaTtl = 28800;
constexpr uint16_t kTypeIxfr = 251;
constexpr int kNoPort = -1;            // object/*.go: the sentinel of "no ports"
constexpr size_t kMaxCnameChain = 10;  // backend_lookup.go maxCnameChainLength
constexpr size_t kMaxLabels = 128;     // a 255-octet name has at most 127

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualFold(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

// dns.IsSubDomain(parent, child): child is parent or below it, compared
// case-insensitively. Both absolute (trailing dot).
bool IsSubDomain(std::string_view parent, std::string_view child) {
  if (parent == ".") return true;
  if (child.size() < parent.size()) return false;
  if (!EqualFold(child.substr(child.size() - parent.size()), parent)) return false;
  return child.size() == parent.size() || child[child.size() - parent.size() - 1] == '.';
}

std::string Fqdn(std::string_view s) {
  std::string out(s);
  if (out.empty() || out.back() != '.') out += '.';
  return out;
}

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = Lower(c);
  return out;
}

std::string Dashed(Ipv4Address a) {  // kubernetes.go endpointHostname
  std::string s = a.ToString();
  for (char& c : s) {
    if (c == '.') c = '-';
  }
  return s;
}

uint32_t NowSerial() {
  return static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// net.ParseIP of an IPv6 text (Go's netip.parseIPv6 without zones or an
// embedded IPv4), `sep` standing for ':' (pod names spell it '-').
std::optional<std::array<uint8_t, 16>> ParseIpv6(std::string_view s, char sep) {
  std::array<uint8_t, 16> ip{};
  int ellipsis = -1;
  size_t pos = 0;
  if (s.size() >= 2 && s[0] == sep && s[1] == sep) {
    ellipsis = 0;
    pos = 2;
    if (pos == s.size()) return ip;
  }
  int i = 0;
  while (i < 16) {
    uint32_t acc = 0;
    size_t off = 0;
    for (; pos + off < s.size(); off++) {
      char c = s[pos + off];
      int d = (c >= '0' && c <= '9')   ? c - '0'
              : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                       : -1;
      if (d < 0) break;
      acc = (acc << 4) + static_cast<uint32_t>(d);
      if (off > 3) return std::nullopt;  // more than 4 digits in a group
    }
    if (off == 0) return std::nullopt;
    ip[i] = static_cast<uint8_t>(acc >> 8);
    ip[i + 1] = static_cast<uint8_t>(acc);
    i += 2;
    pos += off;
    if (pos == s.size()) break;
    if (s[pos] != sep || pos + 1 == s.size()) return std::nullopt;
    pos++;
    if (s[pos] == sep) {
      if (ellipsis >= 0) return std::nullopt;
      ellipsis = i;
      pos++;
      if (pos == s.size()) break;
    }
  }
  if (pos != s.size()) return std::nullopt;
  if (i < 16) {
    if (ellipsis < 0) return std::nullopt;
    int n = 16 - i;
    for (int j = i - 1; j >= ellipsis; j--) ip[j + n] = ip[j];
    for (int j = ellipsis; j < ellipsis + n; j++) ip[j] = 0;
  } else if (ellipsis >= 0) {
    return std::nullopt;  // "::" must stand for at least one group
  }
  return ip;
}

// net.IP.To4 of a 16-byte address: an IPv4-mapped one is that IPv4 address.
std::optional<Ipv4Address> MappedV4(const std::array<uint8_t, 16>& ip) {
  for (int i = 0; i < 10; i++) {
    if (ip[i] != 0) return std::nullopt;
  }
  if (ip[10] != 0xff || ip[11] != 0xff) return std::nullopt;
  return Ipv4Address((uint32_t{ip[12]} << 24) | (uint32_t{ip[13]} << 16) | (uint32_t{ip[14]} << 8) |
                     uint32_t{ip[15]});
}

// A parsed address as msg.Service.HostType sees it.
struct HostIp {
  enum class Kind { kNone, kV4, kV6 } kind = Kind::kNone;
  Ipv4Address v4;
};

// net.ParseIP(s) then To4(): Go dispatches on the first '.' or ':'.
HostIp GoParseIp(std::string_view s) {
  for (char c : s) {
    if (c == '.') {
      auto a = Ipv4Address::TryParse(s);
      return a ? HostIp{HostIp::Kind::kV4, *a} : HostIp{};
    }
    if (c == ':') {
      auto a = ParseIpv6(s, ':');
      if (!a) return {};
      if (auto v4 = MappedV4(*a)) return {HostIp::Kind::kV4, *v4};
      return {HostIp::Kind::kV6, {}};
    }
  }
  return {};
}

// Heterogeneous lookups by string_view (no key string per query).
struct SvHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
struct SvEq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return a == b; }
};

struct Entry {
  DnsService svc;
  std::vector<std::string> ep_names;  // endpointHostname() of each endpoint
};

// parse.go recordRequest.
struct Request {
  enum class Kind { kNone, kPod, kSvc } kind = Kind::kNone;
  std::string_view port, protocol, endpoint, service, ns;
};

std::string_view StripUnderscore(std::string_view s) {
  return (!s.empty() && s[0] == '_') ? s.substr(1) : s;
}

// parse.go parseRequest (neither multicluster nor zonal): `base` is the
// lower-case name without the zone and its dot. nullopt: errInvalidRequest.
std::optional<Request> ParseRequest(std::string_view base) {
  Request r;
  if (base.empty() || base == "svc" || base == "pod") return r;  // apex: NODATA
  std::array<std::string_view, kMaxLabels> segs;
  size_t n = 0;
  for (size_t start = 0;;) {
    size_t dot = base.find('.', start);
    if (n == segs.size()) return std::nullopt;
    segs[n++] = base.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  size_t last = n - 1;
  if (segs[last] == "pod") {
    r.kind = Request::Kind::kPod;
  } else if (segs[last] == "svc") {
    r.kind = Request::Kind::kSvc;
  } else {
    return std::nullopt;
  }
  if (last == 0) return r;
  r.ns = segs[--last];
  if (last == 0) return r;
  r.service = segs[--last];
  switch (last) {
    case 0:
      return r;
    case 1:
      r.endpoint = segs[0];
      return r;
    case 2:  // no underscores needed: http.tcp.<svc> works too
      r.protocol = StripUnderscore(segs[1]);
      r.port = StripUnderscore(segs[0]);
      return r;
    default:
      return std::nullopt;  // too long
  }
}

// kubernetes.go matchPortAndProtocol: an empty request part is a wildcard.
bool MatchPort(const Request& r, std::string_view name, std::string_view protocol) {
  return (r.port.empty() || EqualFold(r.port, name)) &&
         (r.protocol.empty() || EqualFold(r.protocol, protocol));
}

// One msg.Service as kubernetes.go's Records() returns them.
struct Item {
  enum class Type { kA, kAaaa, kCname } type = Type::kA;
  Ipv4Address ip;
  int port = 0;
  std::string_view ep_name;  // endpoint items: the first label of the target
  std::string_view cname;    // kCname: the externalName
};

// The outcome of Records(): what findServices / findPods matched.
struct Found {
  enum class Kind { kEmpty, kPod, kClusterIp, kEndpoints, kExternal } kind = Kind::kEmpty;
  Request req;
  const Entry* entry = nullptr;
  HostIp pod;
};

// The items of a Found, in CoreDNS's order.
template <class F>
void ForEachItem(const Found& f, F&& fn) {
  static const DnsServicePort kSentinel{"", "", 0};
  switch (f.kind) {
    case Found::Kind::kEmpty:
      return;
    case Found::Kind::kPod: {
      Item it;
      it.type = f.pod.kind == HostIp::Kind::kV4 ? Item::Type::kA : Item::Type::kAaaa;
      it.ip = f.pod.v4;
      it.port = 0;
      fn(it);
      return;
    }
    case Found::Kind::kExternal: {
      Item it;
      it.type = Item::Type::kCname;
      it.cname = f.entry->svc.external_name;
      fn(it);
      return;
    }
    case Found::Kind::kClusterIp: {
      const DnsService& s = f.entry->svc;
      auto each = [&](const DnsServicePort& p, int port) {
        if (!MatchPort(f.req, p.name, p.protocol)) return;
        for (Ipv4Address ip : s.cluster_ips) {
          Item it;
          it.ip = ip;
          it.port = port;
          fn(it);
        }
      };
      if (s.ports.empty()) each(kSentinel, kNoPort);
      for (const DnsServicePort& p : s.ports) each(p, p.port);
      return;
    }
    case Found::Kind::kEndpoints: {
      const Entry& e = *f.entry;
      for (size_t i = 0; i < e.svc.endpoints.size(); i++) {
        const DnsEndpoint& ep = e.svc.endpoints[i];
        if (!f.req.endpoint.empty() && !EqualFold(f.req.endpoint, e.ep_names[i])) continue;
        auto each = [&](const DnsServicePort& p, int port) {
          if (!MatchPort(f.req, p.name, p.protocol)) return;
          Item it;
          it.ip = ep.ipv4;
          it.port = port;
          it.ep_name = e.ep_names[i];
          fn(it);
        };
        if (ep.ports.empty()) each(kSentinel, kNoPort);
        for (const DnsServicePort& p : ep.ports) each(p, p.port);
      }
      return;
    }
  }
}

bool HasItems(const Found& f) {
  bool any = false;
  ForEachItem(f, [&](const Item&) { any = true; });
  return any;
}

// The zone's state (DnsZone::Index is this; a name here so that the
// lookup code below can take it).
struct ZoneData {
  // "name.ns" (object.ServiceKey) -> the Service.
  std::unordered_map<std::string, std::unique_ptr<Entry>, SvHash, SvEq> services;
  std::unordered_set<std::string, SvHash, SvEq> namespaces;
  // SvcIndexReverse / EpIndexReverse: address -> Services / endpoints, in
  // the order they were set.
  std::unordered_map<uint32_t, std::vector<const Entry*>> by_cluster_ip;
  std::unordered_map<uint32_t, std::vector<std::pair<const Entry*, uint32_t>>> by_endpoint_ip;
  uint64_t generation = 0;
  uint32_t serial = NowSerial();

  void Changed() {
    generation++;
    serial = NowSerial();
  }

  void Unindex(const Entry* e) {
    if (e->svc.kind == DnsService::Kind::kClusterIP) {
      for (Ipv4Address ip : e->svc.cluster_ips) {
        auto it = by_cluster_ip.find(ip.value());
        if (it == by_cluster_ip.end()) continue;
        std::erase(it->second, e);
        if (it->second.empty()) by_cluster_ip.erase(it);
      }
    }
    for (const DnsEndpoint& ep : e->svc.endpoints) {
      auto it = by_endpoint_ip.find(ep.ipv4.value());
      if (it == by_endpoint_ip.end()) continue;
      std::erase_if(it->second, [e](const auto& p) { return p.first == e; });
      if (it->second.empty()) by_endpoint_ip.erase(it);
    }
  }

  void Reindex(const Entry* e) {
    if (e->svc.kind == DnsService::Kind::kClusterIP) {
      for (Ipv4Address ip : e->svc.cluster_ips) {
        auto& v = by_cluster_ip[ip.value()];
        if (std::find(v.begin(), v.end(), e) == v.end()) v.push_back(e);
      }
    }
    for (uint32_t i = 0; i < e->svc.endpoints.size(); i++) {
      by_endpoint_ip[e->svc.endpoints[i].ipv4.value()].emplace_back(e, i);
    }
  }
};

}  // namespace

struct DnsZone::Index : ZoneData {};

namespace {

enum class Err { kOk, kName };  // kName: IsNameError (NXDOMAIN or fallthrough)

// One question against one zone: the state of handler.go ServeDNS.
class Lookup {
 public:
  Lookup(const ZoneData& idx, const DnsZoneOptions& opts, std::string_view domain,
         std::string_view owner, std::string_view lname, std::string_view lzone)
      : idx_(idx), opts_(opts), domain_(domain), owner_(owner), lname_(lname), lzone_(lzone) {
    zone_ = owner.substr(owner.size() - lzone.size());  // the zone as the query spells it
    reverse_ = lzone != domain_;
  }

  DnsAnswer Serve(DnsType qtype);

 private:
  struct NsAddr {
    std::string name;
    Ipv4Address ip;
  };

  std::string_view Base(std::string_view lname) const {
    if (lname.size() <= lzone_.size()) return {};
    return lname.substr(0, lname.size() - lzone_.size() - 1);
  }
  bool NamespaceExists(std::string_view ns) const { return idx_.namespaces.contains(ns); }
  DnsRecord Rec(std::string_view name, DnsType type, uint32_t ttl) const {
    DnsRecord r;
    r.name = std::string(name);
    r.type = type;
    r.ttl = ttl;
    return r;
  }
  DnsRecord Soa() const;  // backend_lookup.go SOA
  Err Records(std::string_view lname, Found* out) const;
  bool IsDefaultNs(std::string_view lname) const;
  std::vector<NsAddr> NsAddrs() const;
  Err Addresses(std::string_view owner, std::string_view lname, bool v6,
                std::vector<DnsRecord>& prev, std::vector<DnsRecord>& records,
                std::string& cname_to_resolve) const;
  Err Srv(std::vector<DnsRecord>& records, std::vector<DnsRecord>& extra) const;
  Err Ptr(std::vector<DnsRecord>& records) const;
  Err Txt(std::vector<DnsRecord>& records) const;
  Err Cname(std::vector<DnsRecord>& records) const;
  Err ServicesErr(std::string_view lname) const;  // Services() for types without answers
  std::string Target(const Found& f, const Item& it) const;

  const ZoneData& idx_;
  const DnsZoneOptions& opts_;
  std::string_view domain_;  // "cluster.local.", lower case
  std::string_view owner_;   // the qname as asked, with the trailing dot
  std::string_view lname_;   // the qname in lower case (request.Name())
  std::string_view lzone_;   // the matched zone, lower case
  std::string_view zone_;    // the matched zone as the query spells it
  bool reverse_ = false;
};

DnsRecord Lookup::Soa() const {
  DnsRecord r = Rec(zone_, DnsType::kSoa, std::min<uint32_t>(opts_.ttl, 300));
  r.soa.mname = std::string(kDefaultNs) + std::string(zone_);
  r.soa.rname = "hostmaster." + std::string(zone_);
  r.soa.serial = idx_.serial;
  r.soa.refresh = 7200;
  r.soa.retry = 1800;
  r.soa.expire = 86400;
  r.soa.minimum = opts_.ttl;
  return r;
}

// kubernetes.go Records + findPods + findServices ("pods insecure").
Err Lookup::Records(std::string_view lname, Found* out) const {
  auto parsed = ParseRequest(Base(lname));
  if (!parsed) return Err::kName;
  Request& r = out->req = *parsed;
  out->kind = Found::Kind::kEmpty;
  if (r.kind == Request::Kind::kNone) return Err::kOk;
  if (reverse_) return Err::kName;  // dnsutil.IsReverse: no Services there
  if (!NamespaceExists(r.ns)) return Err::kName;

  if (r.kind == Request::Kind::kPod) {
    std::string_view pod = r.service;
    if (pod.empty()) return Err::kOk;  // <ns>.pod.D: NODATA
    // Three dashes and no "--": IPv4, else IPv6 with '-' for ':'. Endpoint,
    // port and protocol labels in front are ignored (x.1-2-3-4.<ns>.pod.D).
    size_t dashes = std::count(pod.begin(), pod.end(), '-');
    if (dashes == 3 && pod.find("--") == std::string_view::npos) {
      std::array<char, 64> buf;
      if (pod.size() >= buf.size()) return Err::kName;
      for (size_t i = 0; i < pod.size(); i++) buf[i] = pod[i] == '-' ? '.' : pod[i];
      auto a = Ipv4Address::TryParse(std::string_view(buf.data(), pod.size()));
      if (!a) return Err::kName;
      out->pod = {HostIp::Kind::kV4, *a};
    } else {
      auto a = ParseIpv6(pod, '-');
      if (!a) return Err::kName;
      auto v4 = MappedV4(*a);
      out->pod = v4 ? HostIp{HostIp::Kind::kV4, *v4} : HostIp{HostIp::Kind::kV6, {}};
    }
    out->kind = Found::Kind::kPod;
    return Err::kOk;
  }

  if (r.service.empty()) return Err::kOk;  // <ns>.svc.D: NODATA
  std::array<char, 256> key;
  if (r.service.size() + 1 + r.ns.size() > key.size()) return Err::kName;
  std::copy(r.service.begin(), r.service.end(), key.begin());
  key[r.service.size()] = '.';
  std::copy(r.ns.begin(), r.ns.end(), key.begin() + r.service.size() + 1);
  auto it = idx_.services.find(std::string_view(key.data(), r.service.size() + 1 + r.ns.size()));
  if (it == idx_.services.end()) return Err::kName;
  const Entry& e = *it->second;
  out->entry = &e;
  switch (e.svc.kind) {
    case DnsService::Kind::kExternalName:
      // No endpoints, ports or protocols below an ExternalName; and an
      // address as externalName is not a CNAME, so nothing at all.
      if (!r.endpoint.empty() || !r.port.empty() || !r.protocol.empty()) return Err::kName;
      if (GoParseIp(e.svc.external_name).kind != HostIp::Kind::kNone) return Err::kName;
      out->kind = Found::Kind::kExternal;
      return Err::kOk;
    case DnsService::Kind::kHeadless:
      out->kind = Found::Kind::kEndpoints;
      break;
    case DnsService::Kind::kClusterIP:
      out->kind = r.endpoint.empty() ? Found::Kind::kClusterIp : Found::Kind::kEndpoints;
      break;
  }
  if (out->kind == Found::Kind::kEndpoints) {
    return HasItems(*out) ? Err::kOk : Err::kName;
  }
  // A ClusterIP Service exists for the name when a port matches.
  if (e.svc.ports.empty()) return MatchPort(r, "", "") ? Err::kOk : Err::kName;
  for (const DnsServicePort& p : e.svc.ports) {
    if (MatchPort(r, p.name, p.protocol)) return Err::kOk;
  }
  return Err::kName;
}

// ns.go isDefaultNS(request.Name(), state.Zone): the name is lower case, the
// zone as asked, so "ns.dns.CLUSTER.local." is not it (CoreDNS's quirk).
bool Lookup::IsDefaultNs(std::string_view lname) const {
  return lname.size() == kDefaultNs.size() + zone_.size() && lname.starts_with(kDefaultNs) &&
         lname.substr(kDefaultNs.size()) == zone_;
}

// ns.go nsAddrs(external=false): the Services of the endpoints at the
// server's addresses, else ns.dns.<zone> at those addresses.
std::vector<Lookup::NsAddr> Lookup::NsAddrs() const {
  std::vector<NsAddr> out;
  bool found = false;
  for (Ipv4Address local : opts_.local_ips) {
    auto it = idx_.by_endpoint_ip.find(local.value());
    if (it == idx_.by_endpoint_ip.end()) continue;
    std::vector<const Entry*> seen;
    for (const auto& [e, i] : it->second) {
      found = true;
      if (std::find(seen.begin(), seen.end(), e) != seen.end()) continue;
      seen.push_back(e);
      std::string svc_name =
          e->svc.name + "." + e->svc.ns + ".svc." + std::string(zone_);  // zone as asked
      if (e->svc.kind == DnsService::Kind::kHeadless) {
        for (size_t j = 0; j < e->svc.endpoints.size(); j++) {
          out.push_back({e->ep_names[j] + "." + svc_name, e->svc.endpoints[j].ipv4});
        }
      } else if (e->svc.kind == DnsService::Kind::kClusterIP) {
        for (Ipv4Address ip : e->svc.cluster_ips) out.push_back({svc_name, ip});
      }
    }
  }
  if (!found) {
    for (Ipv4Address local : opts_.local_ips) {
      out.push_back({std::string(kDefaultNs) + std::string(zone_), local});
    }
  }
  return out;
}

// The SRV target / A additional's name: msg.Domain(Key).
std::string Lookup::Target(const Found& f, const Item& it) const {
  std::string t;
  if (f.kind == Found::Kind::kPod) {
    t.append(f.req.service).append(".").append(f.req.ns).append(".pod.");
  } else {
    if (!it.ep_name.empty()) t.append(it.ep_name).append(".");
    t.append(f.entry->svc.name).append(".").append(f.entry->svc.ns).append(".svc.");
  }
  t.append(zone_);
  return t;
}

// backend_lookup.go A / AAAA (with checkForApex, whose apex.dns lookup is
// always a name error here) and the CNAME chase. `prev`: the CNAMEs so far.
Err Lookup::Addresses(std::string_view owner, std::string_view lname, bool v6,
                      std::vector<DnsRecord>& prev, std::vector<DnsRecord>& records,
                      std::string& cname_to_resolve) const {
  size_t first = records.size();
  auto add_a = [&](Ipv4Address ip) {
    for (size_t i = first; i < records.size(); i++) {  // dedup by address
      if (records[i].type == DnsType::kA && records[i].ipv4 == ip) return;
    }
    DnsRecord r = Rec(owner, DnsType::kA, opts_.ttl);
    r.ipv4 = ip;
    records.push_back(std::move(r));
  };
  if (IsDefaultNs(lname)) {
    if (!v6) {
      for (const NsAddr& a : NsAddrs()) add_a(a.ip);
    }
    return Err::kOk;
  }
  Found f;
  if (Records(lname, &f) == Err::kName) return Err::kName;
  if (f.kind == Found::Kind::kExternal) {
    // One CNAME item; the chase gives CNAME + target records, or nothing.
    std::string target = Fqdn(f.entry->svc.external_name);
    std::string ltarget = ToLower(target);
    if (IsSubDomain(lname, ltarget)) return Err::kOk;  // x CNAME x (or below): a loop
    if (prev.size() > kMaxCnameChain) return Err::kOk;
    for (const DnsRecord& c : prev) {
      if (c.target == target) return Err::kOk;  // dnsutil.DuplicateCNAME
    }
    DnsRecord cname = Rec(owner, DnsType::kCname, opts_.ttl);
    cname.target = target;
    if (IsSubDomain(lzone_, ltarget)) {
      prev.push_back(cname);
      std::vector<DnsRecord> next;
      std::string next_resolve;
      Err e = Addresses(target, ltarget, v6, prev, next, next_resolve);
      if (e == Err::kOk && !next.empty()) {
        records.push_back(std::move(cname));
        for (DnsRecord& r : next) records.push_back(std::move(r));
        cname_to_resolve = std::move(next_resolve);
      }
      return Err::kOk;
    }
    records.push_back(std::move(cname));
    cname_to_resolve = std::move(target);
    return Err::kOk;
  }
  if (v6) return Err::kOk;  // no AAAA items in an IPv4 zone (IPv6 pods: see header)
  ForEachItem(f, [&](const Item& it) {
    if (it.type == Item::Type::kA) add_a(it.ip);
  });
  return Err::kOk;
}

// backend_lookup.go SRV over kubernetes.go Services (ExternalNames dropped).
Err Lookup::Srv(std::vector<DnsRecord>& records, std::vector<DnsRecord>& extra) const {
  if (IsDefaultNs(lname_)) return Err::kOk;  // only A records there
  Found f;
  if (Records(lname_, &f) == Err::kName) return Err::kName;
  if (f.kind == Found::Kind::kExternal) return Err::kOk;
  // Every item counts, the portless ones too: weight 100 each, and each
  // record gets floor(100 / total * 100), computed as Go does in float64.
  size_t n = 0;
  ForEachItem(f, [&](const Item&) { n++; });
  if (n == 0) return Err::kOk;
  double w1 = 100.0 / static_cast<double>(100 * n);
  w1 *= 100;
  auto weight = static_cast<uint16_t>(std::floor(w1));
  if (weight == 0) weight = 1;
  ForEachItem(f, [&](const Item& it) {
    if (it.port == kNoPort) return;
    std::string target = Target(f, it);
    bool dup_srv = false;
    for (const DnsRecord& r : records) {
      if (r.port == it.port && r.target == target) dup_srv = true;
    }
    if (it.type == Item::Type::kA) {
      bool dup_addr = false;
      for (const DnsRecord& r : extra) {
        if (r.ipv4 == it.ip && r.name == target) dup_addr = true;
      }
      if (!dup_addr) {
        DnsRecord a = Rec(target, DnsType::kA, opts_.ttl);
        a.ipv4 = it.ip;
        extra.push_back(std::move(a));
      }
    }  // an IPv6 pod's AAAA additional cannot be expressed: left out
    if (!dup_srv) {
      DnsRecord r = Rec(owner_, DnsType::kSrv, opts_.ttl);
      r.priority = 0;
      r.weight = weight;
      r.port = static_cast<uint16_t>(it.port);
      r.target = std::move(target);
      records.push_back(std::move(r));
    }
  });
  return Err::kOk;
}

// reverse.go Reverse + serviceRecordForIP and dnsutil.ExtractAddressFromReverse.
Err Lookup::Ptr(std::vector<DnsRecord>& records) const {
  HostIp ip;
  int family = 0;
  std::string_view search;
  if (lname_.ends_with(".in-addr.arpa.")) {
    family = 4;
    search = lname_.substr(0, lname_.size() - std::string_view(".in-addr.arpa.").size());
  } else if (lname_.ends_with(".ip6.arpa.")) {
    family = 6;
    search = lname_.substr(0, lname_.size() - std::string_view(".ip6.arpa.").size());
  }
  if (family != 0) {
    std::array<std::string_view, kMaxLabels> labels;
    size_t n = 0;
    bool fits = true;
    for (size_t start = 0;;) {
      size_t dot = search.find('.', start);
      if (n == labels.size()) {
        fits = false;
        break;
      }
      labels[n++] = search.substr(start, dot == std::string_view::npos ? dot : dot - start);
      if (dot == std::string_view::npos) break;
      start = dot + 1;
    }
    std::array<char, 512> buf;
    size_t len = 0;
    auto put = [&](std::string_view s) {
      if (len + s.size() > buf.size()) {
        fits = false;
        return;
      }
      std::copy(s.begin(), s.end(), buf.begin() + len);
      len += s.size();
    };
    if (family == 4) {  // the labels reversed, joined by dots: ParseIP(...).To4()
      for (size_t i = n; fits && i-- > 0;) {
        put(labels[i]);
        if (i > 0) put(".");
      }
      if (fits) ip = GoParseIp(std::string_view(buf.data(), len));
      if (ip.kind == HostIp::Kind::kV6) ip = {};
    } else {  // reversed, 4 labels a group (the rest dropped), joined by ':'
      for (size_t g = 0; fits && g < n / 4; g++) {
        if (g > 0) put(":");
        for (size_t k = 0; k < 4; k++) put(labels[n - 1 - (g * 4 + k)]);
      }
      if (fits) ip = GoParseIp(std::string_view(buf.data(), len));
    }
  }
  if (ip.kind == HostIp::Kind::kNone) {
    Found f;
    return Records(lname_, &f);  // not an address: NODATA or a name error
  }
  if (ip.kind == HostIp::Kind::kV6) return Err::kName;  // no IPv6 addresses here
  auto add = [&](std::string target) {
    for (const DnsRecord& r : records) {
      if (r.target == target) return;
    }
    DnsRecord r = Rec(owner_, DnsType::kPtr, opts_.ttl);
    r.target = std::move(target);
    records.push_back(std::move(r));
  };
  // The primary zone names every PTR, spelled as configured (lower case).
  if (auto it = idx_.by_cluster_ip.find(ip.v4.value()); it != idx_.by_cluster_ip.end()) {
    const Entry* e = it->second.front();  // the first Service only
    add(e->svc.name + "." + e->svc.ns + ".svc." + std::string(domain_));
    return Err::kOk;
  }
  if (auto it = idx_.by_endpoint_ip.find(ip.v4.value()); it != idx_.by_endpoint_ip.end()) {
    for (const auto& [e, i] : it->second) {
      add(e->ep_names[i] + "." + e->svc.name + "." + e->svc.ns + ".svc." + std::string(domain_));
    }
  }
  return records.empty() ? Err::kName : Err::kOk;
}

// kubernetes.go Services, case dns.TypeTXT.
Err Lookup::Txt(std::vector<DnsRecord>& records) const {
  if (Base(lname_) == "dns-version") {
    DnsRecord r = Rec(owner_, DnsType::kTxt, kSchemaTtl);
    r.text = std::string(kSchemaVersion);
    records.push_back(std::move(r));
    return Err::kOk;
  }
  // NODATA when the name has records of another type, else NXDOMAIN: so
  // also for the apex, svc.D and <ns>.svc.D, which have none.
  Found f;
  if (Records(lname_, &f) == Err::kOk && HasItems(f)) return Err::kOk;
  return Err::kName;
}

// backend_lookup.go CNAME: the first item, when it is a name.
Err Lookup::Cname(std::vector<DnsRecord>& records) const {
  if (IsDefaultNs(lname_)) return Err::kOk;
  Found f;
  if (Records(lname_, &f) == Err::kName) return Err::kName;
  if (f.kind == Found::Kind::kExternal) {
    DnsRecord r = Rec(owner_, DnsType::kCname, opts_.ttl);
    r.target = Fqdn(f.entry->svc.external_name);
    records.push_back(std::move(r));
  }
  return Err::kOk;
}

// kubernetes.go Services for MX (no mail records, so only the error).
Err Lookup::ServicesErr(std::string_view lname) const {
  if (IsDefaultNs(lname)) return Err::kOk;
  Found f;
  return Records(lname, &f);
}

// handler.go ServeDNS.
DnsAnswer Lookup::Serve(DnsType qtype) {
  DnsAnswer ans;
  Err err = Err::kOk;
  std::vector<DnsRecord> prev;
  switch (static_cast<uint16_t>(qtype)) {
    case static_cast<uint16_t>(DnsType::kA):
      err = Addresses(owner_, lname_, false, prev, ans.answer, ans.cname_to_resolve);
      break;
    case static_cast<uint16_t>(DnsType::kAaaa):
      err = Addresses(owner_, lname_, true, prev, ans.answer, ans.cname_to_resolve);
      break;
    case static_cast<uint16_t>(DnsType::kTxt):
      err = Txt(ans.answer);
      break;
    case static_cast<uint16_t>(DnsType::kCname):
      err = Cname(ans.answer);
      break;
    case static_cast<uint16_t>(DnsType::kPtr):
      err = Ptr(ans.answer);
      break;
    case static_cast<uint16_t>(DnsType::kMx):
      err = ServicesErr(lname_);
      break;
    case static_cast<uint16_t>(DnsType::kSrv):
      err = Srv(ans.answer, ans.additional);
      break;
    case static_cast<uint16_t>(DnsType::kSoa):
      if (owner_.size() == zone_.size()) ans.answer.push_back(Soa());
      break;
    case static_cast<uint16_t>(DnsType::kAxfr):
    case kTypeIxfr:
      // The plugin returns REFUSED unwritten; the server writes a bare
      // error reply (not authoritative).
      ans.rcode = DnsRcode::kRefused;
      ans.authoritative = false;
      return ans;
    case static_cast<uint16_t>(DnsType::kNs):
      // state.Name() == zone: the lower-case name against the zone as
      // asked, so "CLUSTER.local. NS" is answered as a non-apex name.
      if (lname_ == zone_) {
        std::vector<std::string> seen;
        for (NsAddr& a : NsAddrs()) {
          DnsRecord add = Rec(a.name, DnsType::kA, opts_.ttl);
          add.ipv4 = a.ip;
          ans.additional.push_back(std::move(add));
          if (std::find(seen.begin(), seen.end(), a.name) != seen.end()) continue;
          seen.push_back(a.name);
          DnsRecord ns = Rec(owner_, DnsType::kNs, opts_.ttl);
          ns.target = std::move(a.name);
          ans.answer.push_back(std::move(ns));
        }
        break;
      }
      [[fallthrough]];
    default: {
      // A fake A lookup tells NODATA from NXDOMAIN (its records, and an
      // upstream chase, are thrown away).
      std::vector<DnsRecord> ignored;
      std::string ignored_resolve;
      err = Addresses(owner_, lname_, false, prev, ignored, ignored_resolve);
      break;
    }
  }
  if (err == Err::kName) {
    if (reverse_) {  // fallthrough in-addr.arpa ip6.arpa
      DnsAnswer fwd;
      fwd.source = DnsAnswer::Source::kForward;
      fwd.authoritative = false;
      return fwd;
    }
    ans = DnsAnswer();
    ans.rcode = DnsRcode::kNxDomain;
    ans.authority.push_back(Soa());
    return ans;
  }
  if (ans.answer.empty()) {  // NODATA (also drops the NS additionals, as CoreDNS)
    ans = DnsAnswer();
    ans.authority.push_back(Soa());
  }
  return ans;
}

}  // namespace

DnsZone::DnsZone(DnsZoneOptions opts) : opts_(std::move(opts)), index_(std::make_unique<Index>()) {}

DnsZone::~DnsZone() = default;

void DnsZone::SetService(DnsService svc) {
  auto e = std::make_unique<Entry>();
  e->svc = std::move(svc);
  e->ep_names.reserve(e->svc.endpoints.size());
  for (const DnsEndpoint& ep : e->svc.endpoints) {
    e->ep_names.push_back(ep.hostname.empty() ? Dashed(ep.ipv4) : ep.hostname);
  }
  std::string key = e->svc.name + "." + e->svc.ns;
  std::unique_lock lock(mu_);
  auto it = index_->services.find(key);
  if (it != index_->services.end()) {
    if (it->second->svc == e->svc) return;
    index_->Unindex(it->second.get());
    it->second = std::move(e);
  } else {
    it = index_->services.emplace(std::move(key), std::move(e)).first;
  }
  index_->Reindex(it->second.get());
  index_->Changed();
}

void DnsZone::RemoveService(const std::string& ns, const std::string& name) {
  std::string key = name + "." + ns;
  std::unique_lock lock(mu_);
  auto it = index_->services.find(key);
  if (it == index_->services.end()) return;
  index_->Unindex(it->second.get());
  index_->services.erase(it);
  index_->Changed();
}

void DnsZone::SetNamespace(const std::string& name) {
  std::unique_lock lock(mu_);
  if (index_->namespaces.insert(name).second) index_->Changed();
}

void DnsZone::RemoveNamespace(const std::string& name) {
  std::unique_lock lock(mu_);
  auto it = index_->namespaces.find(name);
  if (it == index_->namespaces.end()) return;
  index_->namespaces.erase(it);
  index_->Changed();
}

uint64_t DnsZone::generation() const {
  std::shared_lock lock(mu_);
  return index_->generation;
}

size_t DnsZone::service_count() const {
  std::shared_lock lock(mu_);
  return index_->services.size();
}

DnsAnswer DnsZone::Resolve(std::string_view qname, DnsType qtype) const {
  DnsAnswer fwd;
  fwd.source = DnsAnswer::Source::kForward;
  fwd.authoritative = false;
  try {
    if (!qname.empty() && qname.back() == '.') qname.remove_suffix(1);
    if (qname.empty()) return fwd;  // the root
    // The name as asked and in lower case, both with the trailing dot, on
    // the stack (a name from the wire has at most 255 octets).
    std::array<char, 1024> owner_buf, lower_buf;
    std::string owner_heap, lower_heap;
    char* owner = owner_buf.data();
    char* lower = lower_buf.data();
    if (qname.size() + 1 > owner_buf.size()) {
      owner_heap.resize(qname.size() + 1);
      lower_heap.resize(qname.size() + 1);
      owner = owner_heap.data();
      lower = lower_heap.data();
    }
    for (size_t i = 0; i < qname.size(); i++) {
      owner[i] = qname[i];
      lower[i] = Lower(qname[i]);
    }
    owner[qname.size()] = lower[qname.size()] = '.';
    std::string_view sowner(owner, qname.size() + 1), slower(lower, qname.size() + 1);

    // The domain in lower case with its dot (small: fits SSO on most names).
    std::array<char, 256> dom_buf;
    std::string_view domain = opts_.domain;
    if (domain.ends_with('.')) domain.remove_suffix(1);
    if (domain.size() + 1 > dom_buf.size()) return fwd;
    for (size_t i = 0; i < domain.size(); i++) dom_buf[i] = Lower(domain[i]);
    dom_buf[domain.size()] = '.';
    std::string_view ldomain(dom_buf.data(), domain.size() + 1);

    // plugin.Zones.Matches: the longest zone the name is in.
    std::string_view zone;
    for (std::string_view z : {ldomain, kInAddrArpa, kIp6Arpa}) {
      if (IsSubDomain(z, slower) && z.size() > zone.size()) zone = z;
    }
    if (zone.empty()) return fwd;

    std::shared_lock lock(mu_);
    Lookup lookup(*index_, opts_, ldomain, sowner, slower, zone);
    return lookup.Serve(qtype);
  } catch (...) {
    DnsAnswer fail;
    fail.rcode = DnsRcode::kServFail;
    fail.authoritative = false;
    return fail;
  }
}

}  // namespace kin::netstack
