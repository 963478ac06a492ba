#include "netstack/dns_wire.h"

// Before ldns: without it, ldns/common.h defines bool, true and false as
// macros, which breaks standard headers included after it.
#include <stdbool.h>  // NOLINT(modernize-deprecated-headers)

#include <ldns/ldns.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <utility>

namespace kin::netstack {
namespace {

// Every ldns object lives in one of these, so that no early return leaks.
struct LdnsFree {
  void operator()(ldns_pkt* p) const { ldns_pkt_free(p); }
  void operator()(ldns_rr* rr) const { ldns_rr_free(rr); }
  void operator()(ldns_rdf* rdf) const { ldns_rdf_deep_free(rdf); }
  void operator()(ldns_rr_list* list) const { ldns_rr_list_deep_free(list); }
  void operator()(ldns_buffer* buf) const { ldns_buffer_free(buf); }
};
using PktPtr = std::unique_ptr<ldns_pkt, LdnsFree>;
using RrPtr = std::unique_ptr<ldns_rr, LdnsFree>;
using RdfPtr = std::unique_ptr<ldns_rdf, LdnsFree>;
using BufferPtr = std::unique_ptr<ldns_buffer, LdnsFree>;

// The smallest record on the wire: a root owner (1 byte), type, class, TTL
// and rdlength (10). Bounds how many answers can fit before building any.
constexpr size_t kMinRecordSize = 11;

ldns_rr_list* SectionList(ldns_pkt* pkt, ldns_pkt_section section) {
  switch (section) {
    case LDNS_SECTION_QUESTION:
      return ldns_pkt_question(pkt);
    case LDNS_SECTION_ANSWER:
      return ldns_pkt_answer(pkt);
    case LDNS_SECTION_AUTHORITY:
      return ldns_pkt_authority(pkt);
    default:
      return ldns_pkt_additional(pkt);
  }
}

// A message as ldns reads it, with its OPT record apart.
struct Message {
  PktPtr pkt;
  bool edns = false;
  uint16_t edns_udp_size = 0;
  bool dnssec_ok = false;
  std::string error;  // empty when the message was read
};

// ldns_wire2pkt's loop, record by record through ldns_wire2rr, for two
// reasons. ldns 1.8.3 leaks every TSIG record but the last
// (ldns_pkt_set_tsig does not free the one it replaces): anyone who can
// reach the DNS Service could grow kin's memory with them (found by the
// fuzzer). kin verifies no TSIG, so a message carrying one is refused. And
// RFC 6891 makes a second OPT record a FORMERR, which ldns does not tell.
Message ReadMessage(std::span<const uint8_t> wire) {
  Message msg;
  if (wire.size() < LDNS_HEADER_SIZE) {
    msg.error = "shorter than a DNS header";
    return msg;
  }
  PktPtr pkt(ldns_pkt_new());
  if (!pkt) {
    msg.error = "out of memory";
    return msg;
  }
  const uint8_t* w = wire.data();
  ldns_pkt* p = pkt.get();
  // The header through ldns's own accessors (its reader of it is private).
  ldns_pkt_set_id(p, LDNS_ID_WIRE(w));
  ldns_pkt_set_qr(p, LDNS_QR_WIRE(w));
  ldns_pkt_set_opcode(p, static_cast<ldns_pkt_opcode>(LDNS_OPCODE_WIRE(w)));
  ldns_pkt_set_aa(p, LDNS_AA_WIRE(w));
  ldns_pkt_set_tc(p, LDNS_TC_WIRE(w));
  ldns_pkt_set_rd(p, LDNS_RD_WIRE(w));
  ldns_pkt_set_ra(p, LDNS_RA_WIRE(w));
  ldns_pkt_set_ad(p, LDNS_AD_WIRE(w));
  ldns_pkt_set_cd(p, LDNS_CD_WIRE(w));
  ldns_pkt_set_rcode(p, LDNS_RCODE_WIRE(w));
  const uint16_t counts[] = {LDNS_QDCOUNT(w), LDNS_ANCOUNT(w), LDNS_NSCOUNT(w), LDNS_ARCOUNT(w)};
  const ldns_pkt_section sections[] = {LDNS_SECTION_QUESTION, LDNS_SECTION_ANSWER,
                                       LDNS_SECTION_AUTHORITY, LDNS_SECTION_ADDITIONAL};
  size_t pos = LDNS_HEADER_SIZE;
  for (int s = 0; s < 4; ++s) {
    ldns_rr_list* list = SectionList(p, sections[s]);
    for (uint16_t i = 0; i < counts[s]; ++i) {
      ldns_rr* raw = nullptr;
      ldns_status status = ldns_wire2rr(&raw, w, wire.size(), &pos, sections[s]);
      RrPtr rr(raw);
      if (status != LDNS_STATUS_OK || !rr) {
        msg.error = ldns_get_errorstr_by_id(status);
        return msg;
      }
      ldns_rr_type type = ldns_rr_get_type(rr.get());
      if (sections[s] == LDNS_SECTION_ADDITIONAL && type == LDNS_RR_TYPE_OPT) {
        if (msg.edns) {
          msg.error = "more than one OPT record";
          return msg;
        }
        msg.edns = true;
        msg.edns_udp_size = ldns_rr_get_class(rr.get());
        // The TTL field holds extended rcode, version, then the flags: DO
        // is the flags' top bit.
        msg.dnssec_ok = (ldns_rr_ttl(rr.get()) & 0x8000u) != 0;
        continue;
      }
      if (sections[s] != LDNS_SECTION_QUESTION && type == LDNS_RR_TYPE_TSIG) {
        msg.error = "TSIG records are not supported";
        return msg;
      }
      if (!ldns_rr_list_push_rr(list, rr.get())) {
        msg.error = "out of memory";
        return msg;
      }
      rr.release();
    }
    ldns_pkt_set_section_count(p, sections[s], static_cast<uint16_t>(ldns_rr_list_rr_count(list)));
  }
  msg.pkt = std::move(pkt);
  return msg;
}

PktPtr ParseWire(std::span<const uint8_t> wire) { return ReadMessage(wire).pkt; }

// An empty vector only when ldns runs out of memory.
std::vector<uint8_t> WriteWire(const ldns_pkt* pkt) {
  // 512 covers most answers; ldns grows the buffer for the rest.
  BufferPtr buf(ldns_buffer_new(kDnsMinUdpSize));
  if (!buf) return {};
  if (ldns_pkt2buffer_wire(buf.get(), pkt) != LDNS_STATUS_OK ||
      ldns_buffer_status(buf.get()) != LDNS_STATUS_OK) {
    return {};
  }
  const uint8_t* begin = ldns_buffer_begin(buf.get());
  return std::vector<uint8_t>(begin, begin + ldns_buffer_position(buf.get()));
}

RdfPtr Dname(const std::string& name) {
  if (name.empty()) return nullptr;
  return RdfPtr(ldns_dname_new_frm_str(name.c_str()));
}

bool PushRdf(ldns_rr* rr, ldns_rdf* rdf) {
  RdfPtr owned(rdf);
  if (!owned || !ldns_rr_push_rdf(rr, owned.get())) return false;
  owned.release();
  return true;
}

// The record as ldns holds it; null for one the wire cannot carry (a name
// ldns rejects, a type DnsRecord has no data for).
RrPtr MakeRr(const DnsRecord& record) {
  RrPtr rr(ldns_rr_new());
  if (!rr) return nullptr;
  RdfPtr owner = Dname(record.name);
  if (!owner) return nullptr;
  ldns_rr_set_owner(rr.get(), owner.release());
  ldns_rr_set_type(rr.get(), static_cast<ldns_rr_type>(record.type));
  ldns_rr_set_class(rr.get(), LDNS_RR_CLASS_IN);
  ldns_rr_set_ttl(rr.get(), record.ttl);
  ldns_rr* r = rr.get();
  switch (record.type) {
    case DnsType::kA: {
      uint32_t be = record.ipv4.network_order();
      if (!PushRdf(r, ldns_rdf_new_frm_data(LDNS_RDF_TYPE_A, sizeof be, &be))) return nullptr;
      break;
    }
    case DnsType::kNs:
    case DnsType::kCname:
    case DnsType::kPtr:
      if (!PushRdf(r, Dname(record.target).release())) return nullptr;
      break;
    case DnsType::kSrv:
      if (!PushRdf(r, ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16, record.priority)) ||
          !PushRdf(r, ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16, record.weight)) ||
          !PushRdf(r, ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16, record.port)) ||
          !PushRdf(r, Dname(record.target).release())) {
        return nullptr;
      }
      break;
    case DnsType::kTxt: {
      // A character-string holds 255 bytes: longer text is split, as zone
      // files do, into consecutive strings of one record.
      size_t pos = 0;
      do {
        size_t len = std::min<size_t>(255, record.text.size() - pos);
        uint8_t chunk[256];
        chunk[0] = static_cast<uint8_t>(len);
        std::memcpy(chunk + 1, record.text.data() + pos, len);
        if (!PushRdf(r, ldns_rdf_new_frm_data(LDNS_RDF_TYPE_STR, len + 1, chunk))) return nullptr;
        pos += len;
      } while (pos < record.text.size());
      break;
    }
    case DnsType::kSoa: {
      const DnsSoa& soa = record.soa;
      if (!PushRdf(r, Dname(soa.mname).release()) || !PushRdf(r, Dname(soa.rname).release()) ||
          !PushRdf(r, ldns_native2rdf_int32(LDNS_RDF_TYPE_INT32, soa.serial)) ||
          !PushRdf(r, ldns_native2rdf_int32(LDNS_RDF_TYPE_PERIOD, soa.refresh)) ||
          !PushRdf(r, ldns_native2rdf_int32(LDNS_RDF_TYPE_PERIOD, soa.retry)) ||
          !PushRdf(r, ldns_native2rdf_int32(LDNS_RDF_TYPE_PERIOD, soa.expire)) ||
          !PushRdf(r, ldns_native2rdf_int32(LDNS_RDF_TYPE_PERIOD, soa.minimum))) {
        return nullptr;
      }
      break;
    }
    default:
      return nullptr;
  }
  return rr;
}

bool PushRecords(ldns_pkt* pkt, ldns_pkt_section section, const std::vector<DnsRecord>& records) {
  for (const DnsRecord& record : records) {
    RrPtr rr = MakeRr(record);
    // One unencodable record (a name too long for the wire) should not
    // cost the client the rest of the answer.
    if (!rr) continue;
    if (!ldns_pkt_push_rr(pkt, section, rr.get())) return false;
    rr.release();
  }
  return true;
}

void ClearSection(ldns_pkt* pkt, ldns_pkt_section section) {
  ldns_rr_list* list = SectionList(pkt, section);
  while (ldns_rr* rr = ldns_rr_list_pop_rr(list)) ldns_rr_free(rr);
  ldns_pkt_set_section_count(pkt, section, 0);
}

// Moves every record of `from`'s section to the end of `to`'s.
bool MoveSection(ldns_pkt* from, ldns_pkt* to, ldns_pkt_section section) {
  ldns_rr_list* src = SectionList(from, section);
  ldns_rr_list* dst = SectionList(to, section);
  if (!src || !dst || !ldns_rr_list_cat(dst, src)) return false;
  // The pointers now belong to `to`: empty `from`'s list without freeing.
  ldns_rr_list_set_rr_count(src, 0);
  ldns_pkt_set_section_count(from, section, 0);
  ldns_pkt_set_section_count(to, section, static_cast<uint16_t>(ldns_rr_list_rr_count(dst)));
  return true;
}

void SetEdns(ldns_pkt* pkt, const DnsQuery& query) {
  if (!query.edns) return;
  ldns_pkt_set_edns_udp_size(pkt, kDnsEdnsUdpSize);
  ldns_pkt_set_edns_do(pkt, query.dnssec_ok);
}

// A response to `query` with its header flags, the question as asked and
// the OPT record; no records yet.
PktPtr NewResponse(const DnsQuery& query) {
  PktPtr pkt(ldns_pkt_new());
  if (!pkt) return nullptr;
  ldns_pkt* p = pkt.get();
  ldns_pkt_set_id(p, query.id);
  ldns_pkt_set_qr(p, true);
  ldns_pkt_set_opcode(p, static_cast<ldns_pkt_opcode>(query.opcode));
  ldns_pkt_set_rd(p, query.rd);
  ldns_pkt_set_cd(p, query.cd);  // copied like RD, as miekg/dns's SetReply does
  RrPtr question(ldns_rr_new());
  RdfPtr owner = Dname(query.qname_as_asked.empty() ? query.qname : query.qname_as_asked);
  if (!question) return nullptr;
  // A name that does not convert back (only a hand-made DnsQuery) leaves
  // the question out rather than the answer.
  if (owner) {
    ldns_rr_set_owner(question.get(), owner.release());
    ldns_rr_set_type(question.get(), static_cast<ldns_rr_type>(query.qtype));
    ldns_rr_set_class(question.get(), static_cast<ldns_rr_class>(query.qclass));
    ldns_rr_set_question(question.get(), true);
    if (!ldns_pkt_push_rr(p, LDNS_SECTION_QUESTION, question.get())) return nullptr;
    question.release();
  }
  SetEdns(p, query);
  return pkt;
}

// The end offsets of the first answers in `wire` (as ldns wrote it), as
// far as `limit`: compression points only backwards, so the message cut
// after answer i is exactly that long, whatever follows.
std::vector<size_t> AnswerEnds(const std::vector<uint8_t>& wire, size_t limit) {
  std::vector<size_t> ends;
  if (wire.size() < LDNS_HEADER_SIZE) return ends;
  size_t pos = LDNS_HEADER_SIZE;
  const uint16_t qdcount = LDNS_QDCOUNT(wire.data());
  const uint16_t ancount = LDNS_ANCOUNT(wire.data());
  for (uint32_t i = 0; i < uint32_t{qdcount} + ancount; ++i) {
    ldns_rr* raw = nullptr;
    ldns_status status = ldns_wire2rr(&raw, wire.data(), wire.size(), &pos,
                                      i < qdcount ? LDNS_SECTION_QUESTION : LDNS_SECTION_ANSWER);
    RrPtr rr(raw);
    if (status != LDNS_STATUS_OK || pos > limit) break;
    if (i >= qdcount) ends.push_back(pos);
  }
  return ends;
}

// The wire of `pkt`, cut to max_size as the header comment describes. The
// sizes are measured on what ldns writes (compression included): one write
// with as many answers as could possibly fit, a walk over it for where each
// answer ends, one more write with those that do: O(n) for n answers.
std::vector<uint8_t> WriteTruncated(ldns_pkt* pkt, size_t max_size) {
  // No DNS message is longer (and ldns cannot write longer ones right).
  max_size = std::min(max_size, kDnsMaxTcpSize);
  ldns_rr_list* answer = ldns_pkt_answer(pkt);
  const size_t total = ldns_rr_list_rr_count(answer);
  const size_t could_fit =
      max_size > LDNS_HEADER_SIZE ? (max_size - LDNS_HEADER_SIZE) / kMinRecordSize : 0;
  std::vector<uint8_t> wire;
  if (total <= could_fit) {
    wire = WriteWire(pkt);
    if (wire.size() <= max_size) return wire;
  }
  ldns_pkt_set_tc(pkt, true);
  ClearSection(pkt, LDNS_SECTION_AUTHORITY);
  ClearSection(pkt, LDNS_SECTION_ADDITIONAL);

  // The answers not kept wait here, the next one at the back.
  std::vector<RrPtr> spare;
  auto keep = [&](size_t n) {
    while (ldns_rr_list_rr_count(answer) > n) spare.emplace_back(ldns_rr_list_pop_rr(answer));
    while (ldns_rr_list_rr_count(answer) < n && !spare.empty()) {
      if (!ldns_rr_list_push_rr(answer, spare.back().get())) break;
      spare.back().release();
      spare.pop_back();
    }
    ldns_pkt_set_ancount(pkt, static_cast<uint16_t>(ldns_rr_list_rr_count(answer)));
  };
  keep(std::min(total, could_fit));
  // What follows the answers now: the OPT record (root owner, no options).
  const size_t opt_size = ldns_pkt_edns(pkt) ? kMinRecordSize : 0;
  size_t kept = 0;
  std::vector<uint8_t> measured = WriteWire(pkt);
  if (measured.size() <= kDnsMaxTcpSize) {
    if (max_size > opt_size) kept = AnswerEnds(measured, max_size - opt_size).size();
  } else {
    // ldns 1.8.3 keeps a record's rdlength offset in 16 bits: past 64 KiB
    // it writes it over earlier bytes. Such a wire's length is still right
    // but not its content, so search on lengths alone (O(n log n)).
    size_t lo = 1;
    size_t hi = ldns_rr_list_rr_count(answer);
    while (lo <= hi) {
      size_t mid = lo + (hi - lo) / 2;
      keep(mid);
      if (WriteWire(pkt).size() <= max_size) {
        kept = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
  }
  keep(kept);
  wire = WriteWire(pkt);
  // Only if ldns wrote the OPT otherwise than counted: fewer, until it fits.
  while (wire.size() > max_size && kept > 0) {
    keep(--kept);
    wire = WriteWire(pkt);
  }
  if (wire.size() <= max_size || wire.empty()) return wire;
  // Not even the question fits with the OPT (a max_size below 512): the
  // OPT goes first, then the question.
  ldns_pkt_set_edns_udp_size(pkt, 0);
  ldns_pkt_set_edns_do(pkt, false);
  wire = WriteWire(pkt);
  if (wire.size() <= max_size) return wire;
  ClearSection(pkt, LDNS_SECTION_QUESTION);
  return WriteWire(pkt);
}

// The presentation form ("Web.default.svc.cluster.local."), escapes
// included, so that ldns_dname_new_frm_str reads it back to the same wire.
std::string DnameText(const ldns_rdf* dname) {
  BufferPtr buf(ldns_buffer_new(LDNS_MAX_DOMAINLEN + 1));
  if (!buf || ldns_rdf2buffer_str_dname(buf.get(), dname) != LDNS_STATUS_OK) return {};
  return std::string(reinterpret_cast<const char*>(ldns_buffer_begin(buf.get())),
                     ldns_buffer_position(buf.get()));
}

DnsParsed Failure(DnsRcode rcode, std::optional<uint16_t> id, std::string reason) {
  DnsParsed parsed;
  parsed.failure = DnsParseFailure{rcode, id, std::move(reason)};
  return parsed;
}

}  // namespace

size_t DnsQuery::MaxUdpSize() const {
  if (!edns) return kDnsMinUdpSize;
  return std::max<size_t>(kDnsMinUdpSize, edns_udp_size);
}

DnsParsed ParseDnsQuery(std::span<const uint8_t> wire) {
  if (wire.size() < LDNS_HEADER_SIZE) {
    return Failure(DnsRcode::kFormErr, std::nullopt, "shorter than a DNS header");
  }
  // The header is peeked at before ldns parses the rest, so that a query
  // whose body is garbage still gets its FORMERR (or NOTIMP) with its id.
  const uint8_t* w = wire.data();
  const uint16_t id = LDNS_ID_WIRE(w);
  if (LDNS_QR_WIRE(w)) return Failure(DnsRcode::kFormErr, id, "QR set: a response, not a query");
  if (LDNS_OPCODE_WIRE(w) != LDNS_PACKET_QUERY) {
    return Failure(DnsRcode::kNotImp, id,
                   "opcode " + std::to_string(LDNS_OPCODE_WIRE(w)) + " is not QUERY");
  }
  if (LDNS_QDCOUNT(w) != 1) {
    return Failure(DnsRcode::kFormErr, id, std::to_string(LDNS_QDCOUNT(w)) + " questions, not 1");
  }
  Message msg = ReadMessage(wire);
  if (!msg.pkt) return Failure(DnsRcode::kFormErr, id, "malformed query: " + msg.error);
  ldns_pkt* pkt = msg.pkt.get();
  const ldns_rr* question = ldns_rr_list_rr(ldns_pkt_question(pkt), 0);
  if (!question || !ldns_rr_owner(question)) {
    return Failure(DnsRcode::kFormErr, id, "malformed question");
  }
  DnsQuery q;
  q.id = id;
  q.opcode = LDNS_PACKET_QUERY;
  q.rd = ldns_pkt_rd(pkt);
  q.cd = ldns_pkt_cd(pkt);
  q.qname_as_asked = DnameText(ldns_rr_owner(question));
  if (q.qname_as_asked.empty()) return Failure(DnsRcode::kFormErr, id, "malformed question name");
  // Escapes are digits or punctuation, and bytes beyond ASCII are escaped:
  // lowering the text lowers exactly the name's ASCII letters.
  q.qname = q.qname_as_asked;
  for (char& c : q.qname) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  q.qtype = ldns_rr_get_type(question);
  q.qclass = ldns_rr_get_class(question);
  q.edns = msg.edns;
  q.edns_udp_size = msg.edns_udp_size;
  q.dnssec_ok = msg.dnssec_ok;
  DnsParsed parsed;
  parsed.query = std::move(q);
  return parsed;
}

std::vector<uint8_t> BuildDnsResponse(const DnsQuery& query, const DnsAnswer& answer,
                                      size_t max_size) {
  PktPtr pkt = NewResponse(query);
  if (!pkt) return {};
  ldns_pkt_set_aa(pkt.get(), answer.authoritative);
  // CoreDNS's kubernetes plugin does not offer recursion for its own names.
  ldns_pkt_set_ra(pkt.get(), answer.source == DnsAnswer::Source::kForward);
  ldns_pkt_set_rcode(pkt.get(), static_cast<uint8_t>(answer.rcode));
  if (!PushRecords(pkt.get(), LDNS_SECTION_ANSWER, answer.answer) ||
      !PushRecords(pkt.get(), LDNS_SECTION_AUTHORITY, answer.authority) ||
      !PushRecords(pkt.get(), LDNS_SECTION_ADDITIONAL, answer.additional)) {
    return {};
  }
  return WriteTruncated(pkt.get(), max_size);
}

std::vector<uint8_t> BuildDnsError(const DnsQuery* query, uint16_t id, DnsRcode rcode) {
  PktPtr pkt;
  if (query) {
    pkt = NewResponse(*query);
  } else {
    pkt.reset(ldns_pkt_new());
    if (pkt) {
      ldns_pkt_set_id(pkt.get(), id);
      ldns_pkt_set_qr(pkt.get(), true);
    }
  }
  if (!pkt) return {};
  ldns_pkt_set_rcode(pkt.get(), static_cast<uint8_t>(rcode));
  // The question and OPT alone fit in 512 (a name is at most 255 bytes).
  return WriteTruncated(pkt.get(), query ? query->MaxUdpSize() : kDnsMinUdpSize);
}

std::optional<DnsUpstreamInfo> ReadDnsResponse(std::span<const uint8_t> wire) {
  PktPtr pkt = ParseWire(wire);
  if (!pkt || !ldns_pkt_qr(pkt.get())) return std::nullopt;
  DnsUpstreamInfo info;
  info.id = ldns_pkt_id(pkt.get());
  info.rcode = static_cast<DnsRcode>(ldns_pkt_get_rcode(pkt.get()));
  info.truncated = ldns_pkt_tc(pkt.get());
  const ldns_rr_list* answer = ldns_pkt_answer(pkt.get());
  std::optional<uint32_t> min_ttl;
  auto lower = [&](uint32_t ttl) { min_ttl = std::min(min_ttl.value_or(ttl), ttl); };
  if (ldns_rr_list_rr_count(answer) > 0) {
    // ReadMessage keeps the OPT out of the additional section.
    for (const ldns_rr_list* list : std::initializer_list<const ldns_rr_list*>{
             answer, ldns_pkt_authority(pkt.get()), ldns_pkt_additional(pkt.get())}) {
      for (size_t i = 0; i < ldns_rr_list_rr_count(list); ++i) {
        lower(ldns_rr_ttl(ldns_rr_list_rr(list, i)));
      }
    }
  } else {
    // A negative answer lives as long as its SOA says (RFC 2308 section 5).
    const ldns_rr_list* authority = ldns_pkt_authority(pkt.get());
    for (size_t i = 0; i < ldns_rr_list_rr_count(authority); ++i) {
      const ldns_rr* rr = ldns_rr_list_rr(authority, i);
      if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_SOA) continue;
      uint32_t ttl = ldns_rr_ttl(rr);
      if (const ldns_rdf* minimum = ldns_rr_rdf(rr, 6); minimum && ldns_rdf_size(minimum) == 4) {
        ttl = std::min(ttl, ldns_rdf2native_int32(minimum));
      }
      lower(ttl);
    }
  }
  info.min_ttl = min_ttl.value_or(0);
  return info;
}

std::optional<std::vector<uint8_t>> ReuseDnsResponse(std::span<const uint8_t> upstream,
                                                     const DnsQuery& query,
                                                     uint32_t elapsed_seconds, size_t max_size) {
  PktPtr up = ParseWire(upstream);
  if (!up || !ldns_pkt_qr(up.get())) return std::nullopt;
  // A fresh packet, with the client's header, question and OPT.
  PktPtr pkt = NewResponse(query);
  if (!pkt) return std::vector<uint8_t>{};
  ldns_pkt* p = pkt.get();
  ldns_pkt_set_aa(p, ldns_pkt_aa(up.get()));
  ldns_pkt_set_ra(p, ldns_pkt_ra(up.get()));
  // AD means something only to a client that asked for DNSSEC (RFC 6840).
  ldns_pkt_set_ad(p, ldns_pkt_ad(up.get()) && query.dnssec_ok);
  ldns_pkt_set_tc(p, ldns_pkt_tc(up.get()));
  ldns_pkt_set_rcode(p, ldns_pkt_get_rcode(up.get()));
  for (ldns_pkt_section section :
       {LDNS_SECTION_ANSWER, LDNS_SECTION_AUTHORITY, LDNS_SECTION_ADDITIONAL}) {
    if (!MoveSection(up.get(), p, section)) return std::vector<uint8_t>{};
    ldns_rr_list* list = SectionList(p, section);
    for (size_t i = 0; i < ldns_rr_list_rr_count(list); ++i) {
      ldns_rr* rr = ldns_rr_list_rr(list, i);
      uint32_t ttl = ldns_rr_ttl(rr);
      ldns_rr_set_ttl(rr, ttl > elapsed_seconds ? ttl - elapsed_seconds : 0);
    }
  }
  return WriteTruncated(p, max_size);
}

std::vector<uint8_t> BuildDnsResponseWithUpstream(const DnsQuery& query, const DnsAnswer& answer,
                                                  std::span<const uint8_t> upstream,
                                                  size_t max_size) {
  PktPtr pkt = NewResponse(query);
  if (!pkt) return {};
  ldns_pkt* p = pkt.get();
  ldns_pkt_set_aa(p, answer.authoritative);
  ldns_pkt_set_ra(p, answer.source == DnsAnswer::Source::kForward);
  ldns_pkt_set_rcode(p, static_cast<uint8_t>(answer.rcode));
  if (!PushRecords(p, LDNS_SECTION_ANSWER, answer.answer)) return {};
  if (PktPtr up = ParseWire(upstream); up && ldns_pkt_qr(up.get())) {
    if (!MoveSection(up.get(), p, LDNS_SECTION_ANSWER)) return {};
  }
  if (!PushRecords(p, LDNS_SECTION_AUTHORITY, answer.authority) ||
      !PushRecords(p, LDNS_SECTION_ADDITIONAL, answer.additional)) {
    return {};
  }
  return WriteTruncated(p, max_size);
}

std::vector<uint8_t> BuildDnsUpstreamQuery(uint16_t id, const std::string& name, uint16_t qtype,
                                           bool dnssec_ok) {
  RdfPtr qname = Dname(name);
  if (!qname) return {};
  PktPtr pkt(ldns_pkt_new());
  RrPtr question(ldns_rr_new());
  if (!pkt || !question) return {};
  ldns_rr_set_owner(question.get(), qname.release());
  ldns_rr_set_type(question.get(), static_cast<ldns_rr_type>(qtype));
  ldns_rr_set_class(question.get(), LDNS_RR_CLASS_IN);
  ldns_rr_set_question(question.get(), true);
  if (!ldns_pkt_push_rr(pkt.get(), LDNS_SECTION_QUESTION, question.get())) return {};
  question.release();
  ldns_pkt_set_id(pkt.get(), id);
  ldns_pkt_set_rd(pkt.get(), true);
  ldns_pkt_set_edns_udp_size(pkt.get(), kDnsEdnsUdpSize);
  ldns_pkt_set_edns_do(pkt.get(), dnssec_ok);
  return WriteWire(pkt.get());
}

bool DnsMessageId(std::span<const uint8_t> wire, uint16_t* id) {
  if (wire.size() < LDNS_HEADER_SIZE) return false;
  *id = ldns_read_uint16(wire.data());
  return true;
}

bool SetDnsMessageId(std::span<uint8_t> wire, uint16_t id) {
  if (wire.size() < LDNS_HEADER_SIZE) return false;
  ldns_write_uint16(wire.data(), id);
  return true;
}

}  // namespace kin::netstack
