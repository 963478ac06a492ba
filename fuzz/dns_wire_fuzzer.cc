// Fuzzes the cluster DNS's wire format (netstack/dns_wire.h), which reads
// whatever a pod sends to the DNS Service and whatever an upstream resolver
// answers. The input is read as a query and as an upstream answer; what kin
// writes from either must stay within its size limit and read back through
// ldns. Under ASan's leak checker this also holds the RAII of every ldns
// object to account on every error path.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "netstack/dns_wire.h"

namespace {

using namespace kin::netstack;

void Check(bool ok) {
  if (!ok) std::abort();
}

DnsAnswer AnswerFor(const DnsQuery& q, size_t size) {
  DnsAnswer answer;
  DnsRecord a;
  a.name = q.qname;
  a.ttl = 30;
  a.ipv4 = kin::netstack::Ipv4Address(0x0a600000u + static_cast<uint32_t>(size));
  // Enough records that small limits truncate, few enough to stay fast.
  for (size_t i = 0; i < 1 + size % 48; ++i) answer.answer.push_back(a);
  DnsRecord srv;
  srv.name = q.qname;
  srv.type = DnsType::kSrv;
  srv.target = q.qname;
  srv.port = 53;
  answer.answer.push_back(srv);
  DnsRecord soa;
  soa.name = q.qname;
  soa.type = DnsType::kSoa;
  soa.soa.mname = q.qname;
  soa.soa.rname = "hostmaster.cluster.local.";
  answer.authority.push_back(soa);
  answer.additional.push_back(a);
  return answer;
}

// What kin writes: within `max_size` (a header at the least) and readable.
void CheckWritten(const std::vector<uint8_t>& wire, size_t max_size, uint16_t id) {
  Check(wire.size() <= std::max<size_t>(max_size, 12));
  auto info = ReadDnsResponse(wire);
  Check(info.has_value());
  Check(info->id == id);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> wire(data, size);
  uint16_t id = 0;
  Check(DnsMessageId(wire, &id) == (size >= 12));

  DnsParsed parsed = ParseDnsQuery(wire);
  Check(parsed.query.has_value() != parsed.failure.has_value());
  if (parsed.failure) {
    Check(parsed.failure->id.has_value() == (size >= 12));
    if (parsed.failure->id) {
      Check(*parsed.failure->id == id);
      CheckWritten(BuildDnsError(nullptr, id, parsed.failure->rcode), 512, id);
    }
  }

  // A query that could have sent this input, for the upstream paths.
  DnsQuery fallback;
  fallback.id = 0x4242;
  fallback.qname = fallback.qname_as_asked = "example.com.";
  fallback.qtype = 1;
  const DnsQuery& q = parsed.query ? *parsed.query : fallback;
  const size_t small = 12 + size % 600;  // below 512 too: the OPT and question give way

  if (parsed.query) {
    Check(q.id == id);
    Check(q.qname.size() == q.qname_as_asked.size() && q.qname.back() == '.');
    Check(q.MaxUdpSize() >= 512);
    DnsAnswer answer = AnswerFor(q, size);
    CheckWritten(BuildDnsResponse(q, answer, q.MaxUdpSize()), q.MaxUdpSize(), q.id);
    CheckWritten(BuildDnsResponse(q, answer, small), small, q.id);
    CheckWritten(BuildDnsError(&q, q.id, DnsRcode::kServFail), 512, q.id);
    // The question's text reads back to the same name.
    std::vector<uint8_t> again = BuildDnsUpstreamQuery(q.id, q.qname_as_asked, q.qtype, true);
    DnsParsed reparsed = ParseDnsQuery(again);
    Check(reparsed.query.has_value());
    Check(reparsed.query->qname_as_asked == q.qname_as_asked);
    Check(reparsed.query->qname == q.qname);
    Check(reparsed.query->dnssec_ok && reparsed.query->edns_udp_size == kDnsEdnsUdpSize);
  }

  // As an upstream's answer.
  auto info = ReadDnsResponse(wire);
  auto reused = ReuseDnsResponse(wire, q, static_cast<uint32_t>(size), q.MaxUdpSize());
  Check(info.has_value() == reused.has_value());
  if (info) {
    Check(info->id == id);
    CheckWritten(*reused, q.MaxUdpSize(), q.id);
    auto cut = ReuseDnsResponse(wire, q, 0, small);
    Check(cut.has_value());
    CheckWritten(*cut, small, q.id);
  }
  CheckWritten(BuildDnsResponseWithUpstream(q, AnswerFor(q, size), wire, small), small, q.id);

  std::vector<uint8_t> copy(data, data + size);
  Check(SetDnsMessageId(copy, 0xabcd) == (size >= 12));
  return 0;
}
