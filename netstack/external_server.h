// The cluster's external server: what pods reach "on the internet".
//
// Lives in the internet namespace (<prefix>ext, netstack/topology.h) on
// ExternalServerIp (203.0.113.2 by default), with sockets made inside that
// namespace:
//   - HTTP on port 80: every request is answered 200, text/plain,
//     "client=<ip>:<port>\n", the source address the server saw; so a pod
//     sees its traffic arrive masqueraded to its node's IP (egress SNAT).
//   - UDP echo on port 7 (RFC 862): each datagram goes back as it came.
//   - DNS on UDP port 53, "the internet's resolver": example.com, example
//     and every name below them have one A record, the server's own
//     address (so a pod can resolve a name and reach it through egress);
//     any other name is NXDOMAIN. The cluster DNS forwards to it when the
//     cluster config names it (dns.upstreams: [203.0.113.2]).
//
// Thread-safety: Start/Stop from one thread; requests are served on
// threads of their own.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "base/fd.h"
#include "base/http_server.h"

namespace kin::netstack {

struct ExternalServerOptions {
  std::string netns;    // the internet namespace (kin-<cluster>-ext)
  std::string address;  // an address it holds (203.0.113.2)
  int http_port = 80;   // 0: any free port
  int udp_port = 7;     // 0: any free port
  int dns_port = 53;    // 0: any free port
};

class ExternalServer {
 public:
  explicit ExternalServer(ExternalServerOptions opts);
  ~ExternalServer();
  ExternalServer(const ExternalServer&) = delete;
  ExternalServer& operator=(const ExternalServer&) = delete;

  // Binds both sockets; throws naming the namespace and address at fault.
  void Start();
  void Stop();
  int http_port() const;
  int udp_port() const { return udp_port_; }
  int dns_port() const { return dns_port_; }

 private:
  void EchoLoop();

  ExternalServerOptions opts_;
  std::unique_ptr<http::Server> http_;
  void AnswerDns();

  UniqueFd udp_, dns_;
  UniqueFd stop_;  // eventfd: wakes the echo loop to stop
  int udp_port_ = 0, dns_port_ = 0;
  std::thread echo_;
};

}  // namespace kin::netstack
