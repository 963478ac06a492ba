// kube-proxy's service health check server (pkg/proxy/healthcheck/
// service_health.go), one per node.
//
// A LoadBalancer Service with externalTrafficPolicy Local gets a
// healthCheckNodePort. On every node kube-proxy answers HTTP on that port
// (any path) so the cloud's load balancer sends traffic only to nodes that
// have a ready endpoint of the Service: 200 when the node has local
// endpoints, 503 otherwise, with
//
//   {
//   	"service": {
//   		"namespace": "default",
//   		"name": "web"
//   	},
//   	"localEndpoints": 1,
//   	"serviceProxyHealthy": true
//   }
//
// (tab-indented, no trailing newline) and the headers Content-Type
// application/json, X-Content-Type-Options nosniff and
// X-Load-Balancing-Endpoint-Weight: <localEndpoints>.
//
// ServiceHealthServer listens on <bind>:<port> (0.0.0.0) inside a network
// namespace for each Service it is given. Sync() opens the listeners of new
// ports (in the caller's thread, so a port that cannot be bound is an
// error the caller sees, naming the port and the Service), closes those of
// ports no longer given and updates the counts; the ports it could open are
// served even when another failed. One thread answers every port, one
// connection at a time (a request must arrive within a second): health
// checks are small and rare. Connection: close after each answer.
//
// HealthCheckResponse() is the pure part: the whole HTTP response.
//
// ProxyHealth is kube-proxy's proxier health (proxier_health.go), which
// serviceProxyHealthy reports: the node's service proxy says when a change
// is queued and when a sync succeeded; the proxy is healthy unless a change
// has waited longer than the timeout for a successful sync (kube-proxy's
// is twice its sync period). The server asks it on every answer, so a node
// whose rules cannot be written answers 503 and the load balancer stops
// sending it traffic.
//
// Thread-safety: Sync and ports from any thread; the destructor stops the
// thread and closes every listener. ProxyHealth is thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/fd.h"

namespace kin::netstack {

struct HealthCheckService {
  std::string ns, name;
  int local_endpoints = 0;
  bool operator==(const HealthCheckService&) const = default;
};

// "HTTP/1.1 200 OK\r\n..." (503 Service Unavailable when there is no local
// endpoint or the proxy is not healthy) with kube-proxy's headers and body.
std::string HealthCheckResponse(const HealthCheckService& svc, bool proxy_healthy);

class ProxyHealth {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  explicit ProxyHealth(std::chrono::milliseconds timeout) : timeout_(timeout) {}
  // A change waits for a sync (the oldest one waiting is remembered).
  void Queued(TimePoint now);
  // A sync succeeded: nothing waits any more.
  void Synced(TimePoint now);
  bool Healthy(TimePoint now) const;
  bool Healthy() const { return Healthy(std::chrono::steady_clock::now()); }

 private:
  const std::chrono::milliseconds timeout_;
  mutable std::mutex mu_;
  std::optional<TimePoint> oldest_queued_;
};

class ServiceHealthServer {
 public:
  // `netns`: a named network namespace; empty: the caller's. `bind`: the
  // address to listen on (kube-proxy's default: every address). `proxy`:
  // the node's proxy health (null: always healthy).
  explicit ServiceHealthServer(std::string netns, std::string bind = "0.0.0.0",
                               std::shared_ptr<const ProxyHealth> proxy = nullptr);
  ~ServiceHealthServer();
  ServiceHealthServer(const ServiceHealthServer&) = delete;
  ServiceHealthServer& operator=(const ServiceHealthServer&) = delete;

  // Serves exactly `services` (by port). Throws the first bind error (with
  // the others applied).
  void Sync(const std::map<uint16_t, HealthCheckService>& services);
  std::vector<uint16_t> ports() const;

 private:
  struct Listener {
    UniqueFd fd;
    HealthCheckService svc;
  };
  void Run();
  void Serve(int listen_fd, uint16_t port);
  void Wake();

  const std::string netns_, bind_;
  const std::shared_ptr<const ProxyHealth> proxy_;
  UniqueFd wake_;
  mutable std::mutex mu_;
  bool stopping_ = false;
  std::map<uint16_t, std::shared_ptr<Listener>> listeners_;
  std::thread thread_;
};

}  // namespace kin::netstack
