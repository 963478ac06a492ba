// The DNS wire format (RFC 1035, EDNS0 of RFC 6891), through libldns: what
// the cluster DNS server (netstack/dns_server.h) reads and writes.
//
// ParseDnsQuery reads a query datagram (or a TCP message without its length
// prefix): the header, exactly one question, and an OPT record when there is
// one. What is not a well-formed query fails with the rcode to answer
// (FORMERR, NOTIMP for an opcode other than QUERY) and, when the header was
// readable, the id to answer with; a datagram too short for a header gets
// no answer at all.
//
// BuildDnsResponse writes the answer to a query: the question echoed as it
// was asked (its case kept), QR set, RD copied, AA as the answer says, RA
// off for answers of the zone (CoreDNS's kubernetes plugin) and as given
// for forwarded ones; an OPT record when the query had one, advertising
// kDnsEdnsUdpSize. When the message would exceed `max_size` (the client's
// UDP size: 512 without EDNS, its OPT's size, at least 512; 65535 on TCP)
// the answer is cut at whole records, TC set, as CoreDNS's truncation does:
// answer records are kept as far as they fit, then authority and
// additionals are dropped.
//
// For forwarding and the cache: DnsMessageId/SetDnsMessageId read and
// rewrite the id of any message in place; ReadDnsResponse reads what the
// server needs of an upstream's answer; ReuseDnsResponse rewrites it for a
// client (also a later one, from the cache, with lowered TTLs).
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "netstack/dns_zone.h"

namespace kin::netstack {

inline constexpr uint16_t kDnsEdnsUdpSize = 1232;  // what kin advertises (DNS flag day 2020)
inline constexpr size_t kDnsMinUdpSize = 512;
inline constexpr size_t kDnsMaxTcpSize = 65535;

struct DnsQuery {
  uint16_t id = 0;
  uint8_t opcode = 0;
  bool rd = false;      // recursion desired
  bool cd = false;      // checking disabled
  std::string qname;    // lower case, absolute, trailing dot ("web.default.svc.cluster.local.")
  std::string qname_as_asked;  // as it came, for the echoed question
  uint16_t qtype = 0;
  uint16_t qclass = kDnsClassIn;
  bool edns = false;              // the query had an OPT record
  uint16_t edns_udp_size = 0;     // its advertised size
  bool dnssec_ok = false;         // its DO bit
  // The largest UDP answer this client takes: 512 without EDNS, else its
  // size (at least 512).
  size_t MaxUdpSize() const;
};

// A query that cannot be answered normally.
struct DnsParseFailure {
  DnsRcode rcode = DnsRcode::kFormErr;  // FORMERR or NOTIMP
  std::optional<uint16_t> id;           // none: no header, send nothing
  std::string reason;                   // for logs and tests
};

// Exactly one of the two is set.
struct DnsParsed {
  std::optional<DnsQuery> query;
  std::optional<DnsParseFailure> failure;
};
DnsParsed ParseDnsQuery(std::span<const uint8_t> wire);

// The answer to `query` (see the header comment). Never longer than
// max_size (at least the header and question; when even those do not fit,
// the OPT record and then the question are dropped too; a max_size below
// 12 still gets the 12-byte header).
std::vector<uint8_t> BuildDnsResponse(const DnsQuery& query, const DnsAnswer& answer,
                                      size_t max_size);

// A bare answer with `rcode` and no records (FORMERR, SERVFAIL, NOTIMP,
// REFUSED). With `query` the question is echoed; without (a query that
// could not be parsed) only the header, with `id`.
std::vector<uint8_t> BuildDnsError(const DnsQuery* query, uint16_t id, DnsRcode rcode);

// What the server needs of an upstream's answer.
struct DnsUpstreamInfo {
  uint16_t id = 0;
  DnsRcode rcode = DnsRcode::kNoError;
  bool truncated = false;
  // How long it may be cached: the smallest TTL of its records, for an
  // answer without records the SOA's (min of its TTL and minimum), 0 when
  // there is neither.
  uint32_t min_ttl = 0;
};
// nullopt when `wire` is not a well-formed response.
std::optional<DnsUpstreamInfo> ReadDnsResponse(std::span<const uint8_t> wire);

// An upstream's answer (fresh, or from the cache `elapsed_seconds` after it
// came) rewritten for `query`: its id and question as asked, every TTL
// lowered by elapsed_seconds (not below 0), the OPT record as
// BuildDnsResponse writes it, cut to max_size as there. nullopt when
// `upstream` cannot be parsed.
std::optional<std::vector<uint8_t>> ReuseDnsResponse(std::span<const uint8_t> upstream,
                                                     const DnsQuery& query,
                                                     uint32_t elapsed_seconds, size_t max_size);

// An ExternalName answer: the zone's CNAME (`answer`) followed by the answer
// records of `upstream` (the target resolved upstream; every record kind
// kept); rcode and the rest as BuildDnsResponse. When `upstream` cannot be
// parsed, the CNAME alone.
std::vector<uint8_t> BuildDnsResponseWithUpstream(const DnsQuery& query, const DnsAnswer& answer,
                                                  std::span<const uint8_t> upstream,
                                                  size_t max_size);

// The query kin sends upstream for `name` and `qtype` (RD set, an OPT
// advertising kDnsEdnsUdpSize); empty when `name` is not a domain name.
std::vector<uint8_t> BuildDnsUpstreamQuery(uint16_t id, const std::string& name, uint16_t qtype,
                                           bool dnssec_ok);

// The id of a message, read or rewritten in place; false when shorter than
// a header.
bool DnsMessageId(std::span<const uint8_t> wire, uint16_t* id);
bool SetDnsMessageId(std::span<uint8_t> wire, uint16_t id);

}  // namespace kin::netstack
