#include "testing/dns_probe.h"

// Before ldns: without it, ldns/common.h defines bool, true and false as
// macros, which breaks standard headers included after it.
#include <stdbool.h>  // NOLINT(modernize-deprecated-headers)

#include <ldns/ldns.h>

#include <cstdlib>
#include <memory>
#include <sstream>

namespace kin::testing {
namespace {

using PktPtr = std::unique_ptr<ldns_pkt, decltype(&ldns_pkt_free)>;

std::string Owned(char* s) {
  std::string out = s ? s : "";
  free(s);
  return out;
}

std::vector<std::string> Records(const ldns_rr_list* list) {
  std::vector<std::string> out;
  for (size_t i = 0; i < ldns_rr_list_rr_count(list); ++i) {
    std::string s = Owned(ldns_rr2str(ldns_rr_list_rr(list, i)));
    while (!s.empty() && s.back() == '\n') s.pop_back();
    out.push_back(s);
  }
  return out;
}

}  // namespace

std::string DnsQueryWire(const std::string& name, const std::string& type, bool edns, uint16_t id) {
  std::string absolute = name.empty() || name.back() != '.' ? name + "." : name;
  PktPtr q(ldns_pkt_query_new(ldns_dname_new_frm_str(absolute.c_str()),
                              ldns_get_rr_type_by_name(type.c_str()), LDNS_RR_CLASS_IN, LDNS_RD),
           ldns_pkt_free);
  ldns_pkt_set_id(q.get(), id);
  if (edns) {
    ldns_pkt_set_edns_udp_size(q.get(), 1232);
    ldns_pkt_set_edns_data(q.get(), nullptr);
  }
  uint8_t* wire = nullptr;
  size_t size = 0;
  if (ldns_pkt2wire(&wire, q.get(), &size) != LDNS_STATUS_OK) return "";
  std::string out(reinterpret_cast<char*>(wire), size);
  free(wire);
  return out;
}

std::optional<DnsReply> ParseDnsReply(const std::string& wire) {
  ldns_pkt* p = nullptr;
  if (ldns_wire2pkt(&p, reinterpret_cast<const uint8_t*>(wire.data()), wire.size()) !=
      LDNS_STATUS_OK) {
    return std::nullopt;
  }
  PktPtr pkt(p, ldns_pkt_free);
  DnsReply r;
  r.id = ldns_pkt_id(p);
  ldns_lookup_table* rc = ldns_lookup_by_id(ldns_rcodes, ldns_pkt_get_rcode(p));
  r.rcode = rc ? rc->name : std::to_string(ldns_pkt_get_rcode(p));
  r.aa = ldns_pkt_aa(p);
  r.tc = ldns_pkt_tc(p);
  r.ra = ldns_pkt_ra(p);
  r.answer = Records(ldns_pkt_answer(p));
  r.authority = Records(ldns_pkt_authority(p));
  r.additional = Records(ldns_pkt_additional(p));
  return r;
}

std::vector<std::string> DnsReply::Data(const std::string& type) const {
  std::vector<std::string> out;
  for (const auto& rec : answer) {
    // owner \t ttl \t class \t type \t data
    std::vector<std::string> f;
    std::istringstream in(rec);
    std::string part;
    while (std::getline(in, part, '\t')) f.push_back(part);
    if (f.size() >= 5 && f[3] == type) {
      std::string data = f[4];
      for (size_t i = 5; i < f.size(); ++i) data += "\t" + f[i];
      out.push_back(data);
    }
  }
  return out;
}

}  // namespace kin::testing
