#include "netstack/health_check.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>

#include "base/error.h"
#include "base/log.h"
#include "base/netns.h"
#include "netstack/ipam.h"

namespace kin::netstack {

namespace {

constexpr auto kRequestTimeout = std::chrono::seconds(1);
constexpr size_t kMaxRequest = 8192;

// Go's %q of an ASCII name (namespaces and names are DNS labels).
std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

UniqueFd Listen(const std::string& bind, uint16_t port) {
  auto ip = Ipv4Address::TryParse(bind);
  if (!ip) throw Error::Invalid("health check server: bind address \"" + bind + "\" is not IPv4");
  UniqueFd fd(static_cast<int>(
      CheckSys(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), "socket")));
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = ip->network_order();
  CheckSys(::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a),
           "bind tcp " + bind + ":" + std::to_string(port));
  CheckSys(::listen(fd.get(), 64), "listen on port " + std::to_string(port));
  return fd;
}

void WriteAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

}  // namespace

std::string HealthCheckResponse(const HealthCheckService& svc, bool proxy_healthy) {
  const bool ok = svc.local_endpoints != 0 && proxy_healthy;
  std::string body = "{\n\t\"service\": {\n\t\t\"namespace\": " + Quote(svc.ns) +
                     ",\n\t\t\"name\": " + Quote(svc.name) +
                     "\n\t},\n\t\"localEndpoints\": " + std::to_string(svc.local_endpoints) +
                     ",\n\t\"serviceProxyHealthy\": " + (proxy_healthy ? "true" : "false") + "\n}";
  std::string out = ok ? "HTTP/1.1 200 OK\r\n" : "HTTP/1.1 503 Service Unavailable\r\n";
  out += "Content-Type: application/json\r\n";
  out += "X-Content-Type-Options: nosniff\r\n";
  out += "X-Load-Balancing-Endpoint-Weight: " + std::to_string(svc.local_endpoints) + "\r\n";
  out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  out += "Connection: close\r\n\r\n";
  return out + body;
}

void ProxyHealth::Queued(TimePoint now) {
  std::lock_guard l(mu_);
  if (!oldest_queued_) oldest_queued_ = now;
}

void ProxyHealth::Synced(TimePoint) {
  std::lock_guard l(mu_);
  oldest_queued_.reset();
}

bool ProxyHealth::Healthy(TimePoint now) const {
  std::lock_guard l(mu_);
  return !oldest_queued_ || now - *oldest_queued_ < timeout_;
}

ServiceHealthServer::ServiceHealthServer(std::string netns, std::string bind,
                                         std::shared_ptr<const ProxyHealth> proxy)
    : netns_(std::move(netns)), bind_(std::move(bind)), proxy_(std::move(proxy)) {
  wake_ = UniqueFd(static_cast<int>(
      CheckSys(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), "health check server: eventfd")));
  thread_ = std::thread([this] { Run(); });
}

ServiceHealthServer::~ServiceHealthServer() {
  {
    std::lock_guard l(mu_);
    stopping_ = true;
  }
  Wake();
  thread_.join();
}

void ServiceHealthServer::Wake() {
  uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof one);
}

void ServiceHealthServer::Sync(const std::map<uint16_t, HealthCheckService>& services) {
  std::optional<Error> first;
  std::map<uint16_t, std::shared_ptr<Listener>> next;
  {
    std::lock_guard l(mu_);
    next = listeners_;
  }
  for (auto it = next.begin(); it != next.end();) {
    it = services.count(it->first) ? std::next(it) : next.erase(it);
  }
  for (const auto& [port, svc] : services) {
    auto it = next.find(port);
    if (it != next.end()) {
      if (!(it->second->svc == svc)) {
        // Same socket, new answer: a fresh Listener sharing nothing mutable.
        auto l = std::make_shared<Listener>();
        l->fd = UniqueFd(::dup(it->second->fd.get()));
        l->svc = svc;
        it->second = l;
      }
      continue;
    }
    try {
      auto l = std::make_shared<Listener>();
      // port by copy: clang 14 (the fuzz build) cannot capture a structured binding.
      auto open = [&, port = port] { l->fd = Listen(bind_, port); };
      if (netns_.empty()) {
        open();
      } else {
        RunInNetns(Netns::Open(netns_), open);
      }
      l->svc = svc;
      next.emplace(port, std::move(l));
    } catch (const Error& e) {
      if (!first) {
        first = Error(e.code(), "health check of service " + svc.ns + "/" + svc.name +
                                    (netns_.empty() ? "" : " in netns `" + netns_ + "`") + ": " +
                                    e.message());
      }
    }
  }
  {
    std::lock_guard l(mu_);
    listeners_ = std::move(next);
  }
  Wake();
  if (first) throw *first;
}

std::vector<uint16_t> ServiceHealthServer::ports() const {
  std::lock_guard l(mu_);
  std::vector<uint16_t> out;
  for (const auto& [port, l] : listeners_) out.push_back(port);
  return out;
}

void ServiceHealthServer::Run() {
  for (;;) {
    std::map<uint16_t, std::shared_ptr<Listener>> snapshot;
    {
      std::lock_guard l(mu_);
      if (stopping_) return;
      snapshot = listeners_;
    }
    std::vector<pollfd> fds;
    std::vector<uint16_t> ports;
    fds.push_back({wake_.get(), POLLIN, 0});
    for (const auto& [port, l] : snapshot) {
      fds.push_back({l->fd.get(), POLLIN, 0});
      ports.push_back(port);
    }
    int n = ::poll(fds.data(), fds.size(), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      log::Error("health check server: poll: {}", std::strerror(errno));
      return;
    }
    if (fds[0].revents != 0) {
      uint64_t v;
      (void)!::read(wake_.get(), &v, sizeof v);
    }
    for (size_t i = 1; i < fds.size(); ++i) {
      if (fds[i].revents & POLLIN) Serve(fds[i].fd, ports[i - 1]);
    }
  }
}

void ServiceHealthServer::Serve(int listen_fd, uint16_t port) {
  UniqueFd conn(::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC));
  if (conn.get() < 0) return;  // EAGAIN: another wake-up took it
  timeval tv{};
  tv.tv_sec = std::chrono::duration_cast<std::chrono::seconds>(kRequestTimeout).count();
  ::setsockopt(conn.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(conn.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  // The request's head (any method and path), up to its blank line.
  std::string request;
  char buf[1024];
  while (request.find("\r\n\r\n") == std::string::npos &&
         request.find("\n\n") == std::string::npos && request.size() < kMaxRequest) {
    ssize_t got = ::recv(conn.get(), buf, sizeof buf, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return;
    request.append(buf, static_cast<size_t>(got));
  }
  HealthCheckService svc;
  {
    std::lock_guard l(mu_);
    auto it = listeners_.find(port);
    if (it == listeners_.end()) return;  // closed meanwhile
    svc = it->second->svc;
  }
  WriteAll(conn.get(), HealthCheckResponse(svc, !proxy_ || proxy_->Healthy()));
}

}  // namespace kin::netstack
