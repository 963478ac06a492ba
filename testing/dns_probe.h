// DNS for tests, read and written with libldns apart from kin's own wire
// code (netstack/dns_wire.h), so a test checks kin's answers against an
// independent parser: a query's wire form, and an answer as presentation
// text ("web.default.svc.cluster.local.\t30\tIN\tA\t10.96.0.20").
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kin::testing {

// A query for `name` (absolute or not) of `type` ("A", "SRV", ...), RD set;
// with `edns`, an OPT record advertising 1232 bytes.
std::string DnsQueryWire(const std::string& name, const std::string& type, bool edns = false,
                         uint16_t id = 4242);

struct DnsReply {
  uint16_t id = 0;
  std::string rcode;  // "NOERROR", "NXDOMAIN", ...
  bool aa = false, tc = false, ra = false;
  // Each record as ldns prints it: owner, TTL, class, type, data, tab-separated.
  std::vector<std::string> answer, authority, additional;
  // The data of the answer's records of `type` ("A": addresses), in order.
  std::vector<std::string> Data(const std::string& type) const;
};
// nullopt when `wire` is not a DNS message.
std::optional<DnsReply> ParseDnsReply(const std::string& wire);

}  // namespace kin::testing
