// Probes that tests send from inside a network namespace (a pod's, a
// node's, the "internet"'s), to assert on what traffic really does: an
// HTTP/1.0 GET over a fresh TCP connection, a bare TCP connect, a UDP
// request/answer. Each runs on a short-lived thread inside the namespace
// (base/netns.h RunInNetns), so the caller's thread stays where it is.
//
// Nothing here throws for a network failure: the result carries errno
// (ECONNREFUSED, ETIMEDOUT, ...) and how long it took, so tests can tell
// "refused at once" from "timed out". A namespace that cannot be opened
// throws kin::Error.
//
// Thread-safety: thread-safe.
#pragma once

#include <chrono>
#include <string>

namespace kin::testing {

// As `netns`: the calling thread's own namespace (the host's, for a test
// that runs there). Other names are under /run/netns.
inline constexpr const char* kCallersNetns = "/proc/thread-self/ns/net";

struct ProbeResult {
  int error = 0;     // 0 on success, else an errno value
  std::string body;  // the HTTP body, or the UDP answer
  std::chrono::milliseconds took{0};
  bool ok() const { return error == 0; }
};

// GET http://ip:port/path over a new connection (HTTP/1.0, so the server
// closes it), from inside `netns` (a name under /run/netns).
ProbeResult HttpGetIn(const std::string& netns, const std::string& ip, int port,
                      const std::string& path,
                      std::chrono::milliseconds timeout = std::chrono::seconds(3));
// Several GETs over one kept-alive HTTP/1.1 connection; the bodies joined
// by "\n". Stops at the first failure.
ProbeResult HttpGetsOnOneConnectionIn(const std::string& netns, const std::string& ip, int port,
                                      const std::string& path, int count,
                                      std::chrono::milliseconds timeout = std::chrono::seconds(3));
// Sends `request` as it is (any HTTP, e.g. with a Host header, or an
// Upgrade followed by bytes of the upgraded stream) over a new connection
// and returns every byte that came back (in `body`: status line and
// headers included) until the server closed, `until` appeared in them, or
// the timeout passed (ETIMEDOUT, with what came so far).
ProbeResult ExchangeIn(const std::string& netns, const std::string& ip, int port,
                       const std::string& request, const std::string& until = "",
                       std::chrono::milliseconds timeout = std::chrono::seconds(3));
// A TCP connect only.
ProbeResult TcpConnectIn(const std::string& netns, const std::string& ip, int port,
                         std::chrono::milliseconds timeout = std::chrono::seconds(3));
// Sends `message` in one datagram and waits for one answer.
ProbeResult UdpAskIn(const std::string& netns, const std::string& ip, int port,
                     const std::string& message,
                     std::chrono::milliseconds timeout = std::chrono::seconds(3));

// One DNS message over a new TCP connection (RFC 1035 4.2.2: a 2-byte
// length before each message); the body is the answer without its length.
ProbeResult DnsTcpAskIn(const std::string& netns, const std::string& ip, int port,
                        const std::string& message,
                        std::chrono::milliseconds timeout = std::chrono::seconds(3));

}  // namespace kin::testing
