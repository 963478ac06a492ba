#include "netstack/external_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "base/error.h"
#include "base/log.h"
#include "base/netns.h"
#include "netstack/dns_wire.h"

namespace kin::netstack {

ExternalServer::ExternalServer(ExternalServerOptions opts) : opts_(std::move(opts)) {}

ExternalServer::~ExternalServer() { Stop(); }

int ExternalServer::http_port() const { return http_ ? http_->port() : 0; }

void ExternalServer::Start() {
  const std::string where = " in netns `" + opts_.netns + "`";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(opts_.udp_port));
  if (::inet_pton(AF_INET, opts_.address.c_str(), &addr.sin_addr) != 1) {
    throw Error::BadRequest("external server: address \"" + opts_.address +
                            "\" is not an IPv4 address");
  }
  // The UDP socket is made (and bound) inside the internet namespace; it
  // stays there whichever thread uses it.
  RunInNetns(Netns::Open(opts_.netns), [&] {
    udp_.reset(static_cast<int>(
        CheckSys(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), "udp socket" + where)));
    CheckSys(::bind(udp_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr),
             "bind udp " + opts_.address + ":" + std::to_string(opts_.udp_port) + where);
    sockaddr_in dns_addr = addr;
    dns_addr.sin_port = htons(static_cast<uint16_t>(opts_.dns_port));
    dns_.reset(static_cast<int>(
        CheckSys(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), "udp socket" + where)));
    CheckSys(::bind(dns_.get(), reinterpret_cast<sockaddr*>(&dns_addr), sizeof dns_addr),
             "bind udp " + opts_.address + ":" + std::to_string(opts_.dns_port) + where);
  });
  socklen_t len = sizeof addr;
  ::getsockname(udp_.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  udp_port_ = ntohs(addr.sin_port);
  len = sizeof addr;
  ::getsockname(dns_.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  dns_port_ = ntohs(addr.sin_port);
  stop_.reset(static_cast<int>(CheckSys(::eventfd(0, EFD_CLOEXEC), "eventfd")));

  http::ServerOptions ho;
  ho.host = opts_.address;
  ho.port = opts_.http_port;
  ho.netns = opts_.netns;
  ho.idle_timeout_ms = 10000;
  http_ = std::make_unique<http::Server>(ho, [](http::Request& req, http::Response& resp) {
    resp.Set(200, "text/plain", "client=" + req.remote_addr + "\n");
  });
  try {
    http_->Start();
  } catch (...) {
    http_.reset();
    udp_.reset();
    stop_.reset();
    throw;
  }
  echo_ = std::thread([this] { EchoLoop(); });
  log::Info("external server on {}:{} (HTTP), udp {}:{} (echo) and udp {}:{} (DNS) in netns {}",
            opts_.address, http_->port(), opts_.address, udp_port_, opts_.address, dns_port_,
            opts_.netns);
}

void ExternalServer::EchoLoop() {
  char buf[65536];
  while (true) {
    pollfd p[3] = {{udp_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}, {dns_.get(), POLLIN, 0}};
    if (::poll(p, 3, -1) < 0) {
      if (errno == EINTR) continue;
      log::Error("external server: poll: {}", std::strerror(errno));
      return;
    }
    if (p[1].revents != 0) return;
    if (p[2].revents != 0) AnswerDns();
    if (p[0].revents == 0) continue;
    sockaddr_in from{};
    socklen_t len = sizeof from;
    ssize_t n = ::recvfrom(udp_.get(), buf, sizeof buf, MSG_DONTWAIT,
                           reinterpret_cast<sockaddr*>(&from), &len);
    if (n < 0) continue;  // EAGAIN, or an ICMP error queued on the socket
    ::sendto(udp_.get(), buf, static_cast<size_t>(n), MSG_DONTWAIT,
             reinterpret_cast<sockaddr*>(&from), len);
  }
}

void ExternalServer::AnswerDns() {
  uint8_t buf[4096];
  sockaddr_in from{};
  socklen_t len = sizeof from;
  ssize_t n = ::recvfrom(dns_.get(), buf, sizeof buf, MSG_DONTWAIT,
                         reinterpret_cast<sockaddr*>(&from), &len);
  if (n <= 0) return;
  DnsParsed parsed = ParseDnsQuery(std::span<const uint8_t>(buf, static_cast<size_t>(n)));
  std::vector<uint8_t> reply;
  if (!parsed.query) {
    if (!parsed.failure->id) return;
    reply = BuildDnsError(nullptr, *parsed.failure->id, parsed.failure->rcode);
  } else {
    const DnsQuery& q = *parsed.query;
    auto under = [&](std::string_view zone) {
      return q.qname == zone || (q.qname.size() > zone.size() && q.qname.ends_with(zone) &&
                                 q.qname[q.qname.size() - zone.size() - 1] == '.');
    };
    DnsAnswer a;
    a.authoritative = true;
    if (!under("example.com.") && !under("example.")) {
      a.rcode = DnsRcode::kNxDomain;
    } else if (q.qtype == static_cast<uint16_t>(DnsType::kA)) {
      DnsRecord r;
      r.name = q.qname;
      r.type = DnsType::kA;
      r.ttl = 300;
      r.ipv4 = Ipv4Address::Parse(opts_.address);
      a.answer.push_back(r);
    }
    reply = BuildDnsResponse(q, a, q.MaxUdpSize());
  }
  ::sendto(dns_.get(), reply.data(), reply.size(), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from),
           len);
}

void ExternalServer::Stop() {
  if (echo_.joinable()) {
    uint64_t one = 1;
    if (::write(stop_.get(), &one, sizeof one) < 0) {
      // An eventfd write only fails on overflow; the loop is woken anyway.
    }
    echo_.join();
  }
  if (http_) http_->Stop();
  http_.reset();
  udp_.reset();
  dns_.reset();
  stop_.reset();
}

}  // namespace kin::netstack
