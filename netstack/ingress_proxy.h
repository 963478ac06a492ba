// The Ingress proxy: what the built-in Ingress controller's pods answer.
//
// IngressRoutes is the plain description the API side (controllers/
// ingress.h) builds from Ingresses, Services, EndpointSlices and Secrets:
// host rules (exact "foo.com" or wildcard "*.foo.com", or "" for every
// host), each with paths (pathType Exact, Prefix, ImplementationSpecific)
// whose backend is a list of ready endpoints (ip:port of the pods, not the
// ClusterIP), a default backend, and TLS certificates per host.
//
// MatchPath and MatchRoute are the pure matcher, with networking.k8s.io/v1's precedence:
// a host matches its exact rules first, then wildcard ones ("*.foo.com"
// matches "bar.foo.com" only: one label), then rules without a host; among
// the paths of the chosen host, an Exact match wins, then the longest
// Prefix (element-wise on "/": "/foo" matches "/foo", "/foo/" and
// "/foo/bar", never "/foobar"; ImplementationSpecific is Prefix here, as
// ingress-nginx treats it); when none match, the default backend.
//
// IngressProxy serves the routes as ingress-nginx does, in one network
// namespace (an ingress pod's):
//   - HTTP/1.1 on http_port (80) and TLS on https_port (443), the
//     certificate chosen by SNI among the routes' (exact host, then
//     wildcard), else a self-signed default ("Kubernetes Ingress Controller
//     Fake Certificate", as ingress-nginx's);
//   - keep-alive with clients (75 s idle), request bodies streamed to the
//     backend as they come (Content-Length or chunked), responses streamed
//     back (Content-Length, chunked, or until the backend closes);
//   - Upgrade requests (WebSocket) passed through as raw bytes both ways
//     once the backend answers 101;
//   - a backend chosen round-robin among the ready endpoints of the
//     matched one (the next ones, up to three, when connecting fails),
//     over a kept-alive connection when one is idle; requests carry
//     X-Forwarded-For (the client's address appended to an incoming one),
//     X-Forwarded-Proto, X-Forwarded-Host, X-Forwarded-Port, X-Real-IP,
//     X-Scheme and X-Request-ID;
//   - 308 to https:// for paths marked ssl_redirect, on the HTTP port;
//   - short HTML answers as ingress-nginx's: 404 when nothing matches and
//     there is no default backend, 503 when the backend has no ready
//     endpoint, 502 when connecting to it fails (or it answers garbage),
//     504 when it does not connect or answer within the timeouts;
//   - GET /healthz on health_port (10254): 200 "ok" once SetRoutes gave it
//     routes (the pod's readiness: no traffic before the first sync), 503
//     before.
// SetRoutes takes effect for the next request, also on connections that
// are open: nothing is dropped.
//
// Event-driven: a few event-loop threads (one per CPU the process may run
// on, at most four, each pinned to its CPU when they cover them all), each
// with its own epoll set. Every socket is non-blocking; a connection
// is a C++20 coroutine on one loop (the compiler makes its state machine:
// the code reads as a blocking proxy, each read or write that would block
// suspends it until epoll says the socket is ready or its deadline passes).
// The listening sockets are in every loop's set (EPOLLEXCLUSIVE); accepted
// connections are spread over the loops in turn, at most max_connections
// (beyond, closed at once). TLS is on the same loops: the handshake (SNI
// included) and every TLS read and write are non-blocking with deadlines,
// so a stalled client never holds anything but its own coroutine. An
// upgraded connection is two coroutines, one per direction. Buffers are
// 16 KiB per direction (heads grow to max_header_bytes). Idle backend
// connections stay registered with the loop that last used them, which
// hears when the backend closes one (it leaves the pool then) and takes
// them back as they are; another loop looks first, then moves one over
// to its set.
//
// Thread-safety: Start/Stop from one thread; SetRoutes from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/fd.h"

namespace kin::netstack {

enum class IngressPathType { kExact, kPrefix, kImplementationSpecific };

struct IngressEndpoint {
  std::string ip;
  uint16_t port = 0;
  bool operator==(const IngressEndpoint&) const = default;
};

struct IngressBackend {
  std::string name;                        // "ns/service:port", for logs
  std::vector<IngressEndpoint> endpoints;  // ready ones; empty: 503
  bool operator==(const IngressBackend&) const = default;
};

struct IngressPath {
  std::string path;  // "/" when the Ingress leaves it out
  IngressPathType type = IngressPathType::kPrefix;
  IngressBackend backend;
  // Requests over plain HTTP get 308 to https:// (ingress-nginx's
  // ssl-redirect for hosts with TLS, force-ssl-redirect).
  bool ssl_redirect = false;
  bool operator==(const IngressPath&) const = default;
};

struct IngressHostRule {
  std::string host;  // "foo.com", "*.foo.com", or "" (every host)
  std::vector<IngressPath> paths;
  bool operator==(const IngressHostRule&) const = default;
};

struct IngressCertificate {
  std::vector<std::string> hosts;  // exact or wildcard
  std::string cert_pem, key_pem;
  bool operator==(const IngressCertificate&) const = default;
};

struct IngressRoutes {
  // Rules of one host may come in several entries (several Ingresses):
  // their paths count together, earlier entries first on equal paths.
  std::vector<IngressHostRule> rules;
  std::optional<IngressBackend> default_backend;
  std::vector<IngressCertificate> certificates;
  bool operator==(const IngressRoutes&) const = default;
};

// The host of a Host header: lower case, without its port or trailing dot.
std::string NormalizeHost(std::string_view host_header);
// Whether a request path matches an Ingress path of that type.
bool IngressPathMatches(IngressPathType type, std::string_view rule_path,
                        std::string_view request_path);
// True when `pattern` ("foo.com" or "*.foo.com") covers `host` (normalized).
bool IngressHostMatches(std::string_view pattern, std::string_view host);
// The rule path a request matches (host as in its Host header, path with
// or without its query), or null when none does.
const IngressPath* MatchPath(const IngressRoutes& routes, std::string_view host,
                             std::string_view path);
// The backend for a request: the matched path's, else the default backend;
// null when nothing matches and there is no default backend.
const IngressBackend* MatchRoute(const IngressRoutes& routes, std::string_view host,
                                 std::string_view path);

struct IngressProxyOptions {
  std::string netns;  // the pod's namespace (/run/netns/NAME or a name); empty: the caller's
  std::string bind = "0.0.0.0";
  uint16_t http_port = 80;  // 0: any free port (tests), see ports()
  uint16_t https_port = 443;
  uint16_t health_port = 10254;
  std::chrono::milliseconds connect_timeout{5000};  // ingress-nginx's proxy-connect-timeout
  std::chrono::milliseconds read_timeout{60000};    // proxy-read-timeout (and send)
  std::chrono::milliseconds idle_timeout{75000};    // keepalive_timeout with clients
  std::chrono::milliseconds header_timeout{60000};  // client_header_timeout
  size_t max_connections = 1024;
  size_t max_header_bytes = 64 * 1024;
  std::string name;  // for logs ("kin-ingress/ingress-controller-...")
};

class IngressProxy {
 public:
  explicit IngressProxy(IngressProxyOptions opts);
  ~IngressProxy();
  IngressProxy(const IngressProxy&) = delete;
  IngressProxy& operator=(const IngressProxy&) = delete;

  // Makes the listening sockets (throwing kin::Error naming the namespace
  // and port at fault) and starts serving.
  void Start();
  // Closes every socket, client and backend connections included, and
  // joins every thread; idempotent.
  void Stop();

  // Takes effect for the next request on every connection. Certificates
  // that do not load are left out (their hosts get the default one).
  void SetRoutes(IngressRoutes routes);

  struct Ports {
    uint16_t http = 0, https = 0, health = 0;
  };
  Ports ports() const { return ports_; }
  size_t open_connections() const;
  // Idle connections to backends kept for reuse (HTTP/1.1 keep-alive, at
  // most 32 per endpoint and 1024 in all, for 60 s; dropped when the routes
  // no longer name their endpoint).
  size_t idle_backend_connections() const;
  uint64_t requests() const { return requests_.load(); }
  bool has_routes() const;  // SetRoutes was called (/healthz answers 200)

 private:
  struct State;

  IngressProxyOptions opts_;
  Ports ports_;
  std::atomic<uint64_t> requests_{0};
  std::unique_ptr<State> state_;
  bool started_ = false;
};

}  // namespace kin::netstack
