// Fuzzes the Ingress proxy (netstack/ingress_proxy.h) on what a client
// sends it. Its request handling (the head's parsing, Content-Length and
// chunked framing, Upgrade, the X-Forwarded-* rewriting, the 308 redirect,
// error pages, keep-alive and pipelining) is inside the proxy's connection
// coroutine and has no smaller entry point, so this runs a real
// IngressProxy on loopback once per process, with a small backend behind
// it, and sends each input over a socket as one client connection: the
// input's bytes, then the end of the client's half (shutdown SHUT_WR).
//
// Findings: a crash or sanitizer report in the proxy's threads; the proxy
// neither closing nor finishing within kDeadline after the client has sent
// everything (its own timeouts here are 1 s, so only a proxy that waits for
// nothing hangs that long); an answer that is not an HTTP/1.1 response.
//
// The pure matcher is fuzzed too, on the same input: the Host header and
// request target found in its first lines go through MatchPath and
// MatchRoute, and what they return must be a rule that covers that host
// and path (the proxy itself only ever asks with well-formed heads).
//
// Routes: foo.com (Exact /exact, Prefix /app, ImplementationSpecific /),
// *.foo.com (/), any host (/any), secure.com (/ with ssl_redirect), /empty
// (a backend without endpoints: 503), /dead (a closed port: 502), and the
// backend as default backend. The backend answers each request head with
// 200 (101 for an Upgrade: websocket, then echoes) and closes.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "base/log.h"
#include "netstack/ingress_proxy.h"

namespace {

using namespace kin::netstack;
using Clock = std::chrono::steady_clock;

constexpr auto kDeadline = std::chrono::seconds(8);

// A failure of the harness itself (not a finding about the proxy): says
// which call failed and why before stopping, so it is not read as a crash.
[[noreturn]] void HarnessFailure(const char* what) {
  std::fprintf(stderr, "ingress_request harness: %s: %s\n", what, std::strerror(errno));
  abort();
}

int Loopback(uint16_t port, bool listen_too) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  while (true) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) HarnessFailure("socket");
    if (listen_too) {
      int one = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 128) != 0)
        HarnessFailure("listen");
      return fd;
    }
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return fd;
    // libFuzzer's timer signal (-timeout) can interrupt a connect that
    // waits under load (a 2-worker run stopped so): connect again.
    if (errno != EINTR) HarnessFailure("connect to the proxy");
    ::close(fd);
  }
}

uint16_t PortOf(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

bool SendAll(int fd, std::string_view s) {
  while (!s.empty()) {
    long n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    s.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool ContainsIgnoreCase(std::string_view hay, std::string_view needle) {
  auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; };
  for (size_t i = 0; i + needle.size() <= hay.size(); ++i) {
    size_t k = 0;
    while (k < needle.size() && lower(hay[i + k]) == lower(needle[k])) ++k;
    if (k == needle.size()) return true;
  }
  return false;
}

// One backend connection: the first request head gets its answer, then
// the rest is drained (or echoed, once upgraded) until the proxy closes or
// goes quiet.
void ServeBackend(int fd) {
  std::string head;
  char buf[16384];
  bool answered = false, upgraded = false;
  while (true) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 2000) <= 0) break;
    long n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    if (upgraded) {
      if (!SendAll(fd, std::string_view(buf, static_cast<size_t>(n)))) break;
      continue;
    }
    if (answered) continue;
    head.append(buf, static_cast<size_t>(n));
    size_t end = head.find("\r\n\r\n");
    if (end == std::string::npos) {
      if (head.size() > 256 * 1024) break;
      continue;
    }
    answered = true;
    head.resize(end);
    if (ContainsIgnoreCase(head, "\nupgrade: websocket")) {
      upgraded = SendAll(fd,
                         "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                         "Upgrade: websocket\r\n\r\n");
    } else {
      SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
      ::shutdown(fd, SHUT_WR);
    }
  }
  ::close(fd);
}

struct Fixture {
  std::unique_ptr<IngressProxy> proxy;
  uint16_t http_port = 0;
  IngressRoutes routes;

  Fixture() {
    // A line per 502 and 503 would be most of the run's time.
    kin::log::SetLevel(kin::log::Level::kError);
    int backend = Loopback(0, true);
    const uint16_t backend_port = PortOf(backend);
    // Each backend connection on its own detached thread, for the process's life.
    std::thread([backend] {
      while (true) {
        int c = ::accept4(backend, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) {
          if (errno == EINTR || errno == ECONNABORTED) continue;
          abort();
        }
        std::thread(ServeBackend, c).detach();
      }
    }).detach();
    // A port nothing listens on: bound, never listening, kept (so not reused).
    int closed = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(closed, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) abort();
    const uint16_t dead_port = PortOf(closed);

    IngressBackend good{"fuzz/backend:80", {{"127.0.0.1", backend_port}}};
    IngressBackend empty{"fuzz/empty:80", {}};
    IngressBackend dead{"fuzz/dead:80", {{"127.0.0.1", dead_port}}};
    auto path = [](std::string p, IngressPathType t, IngressBackend b, bool redirect = false) {
      IngressPath out;
      out.path = std::move(p);
      out.type = t;
      out.backend = std::move(b);
      out.ssl_redirect = redirect;
      return out;
    };
    routes.rules = {
        {"foo.com",
         {path("/exact", IngressPathType::kExact, good),
          path("/app", IngressPathType::kPrefix, good),
          path("/", IngressPathType::kImplementationSpecific, good)}},
        {"*.foo.com", {path("/", IngressPathType::kPrefix, good)}},
        {"secure.com", {path("/", IngressPathType::kPrefix, good, true)}},
        {"",
         {path("/any", IngressPathType::kPrefix, good),
          path("/empty", IngressPathType::kPrefix, empty),
          path("/dead", IngressPathType::kPrefix, dead)}},
    };
    routes.default_backend = good;

    IngressProxyOptions o;
    o.bind = "127.0.0.1";
    o.http_port = 0;
    o.https_port = 0;
    o.health_port = 0;
    o.connect_timeout = std::chrono::milliseconds(1000);
    o.read_timeout = std::chrono::milliseconds(1000);
    o.idle_timeout = std::chrono::milliseconds(1000);
    o.header_timeout = std::chrono::milliseconds(1000);
    o.max_header_bytes = 8 * 1024;  // reachable by small inputs
    o.name = "fuzz";
    proxy = std::make_unique<IngressProxy>(o);
    proxy->Start();
    proxy->SetRoutes(routes);
    http_port = proxy->ports().http;
  }
  ~Fixture() { proxy->Stop(); }
};

Fixture& F() {
  static Fixture f;
  return f;
}

// The request target and Host header of the input's first lines, as far
// as they look like them.
void HostAndPath(std::string_view in, std::string& host, std::string& path) {
  size_t eol = in.find('\n');
  std::string_view line = in.substr(0, eol);
  size_t sp = line.find(' ');
  if (sp != std::string_view::npos) {
    std::string_view rest = line.substr(sp + 1);
    path = std::string(rest.substr(0, rest.find(' ')));
  }
  while (eol != std::string_view::npos) {
    in.remove_prefix(eol + 1);
    eol = in.find('\n');
    line = in.substr(0, eol);
    if (line.size() >= 5 && ContainsIgnoreCase(line.substr(0, 5), "host:")) {
      line.remove_prefix(5);
      while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
      host = std::string(line);
      return;
    }
  }
}

void CheckMatcher(const IngressRoutes& routes, const std::string& host, const std::string& path) {
  const IngressPath* p = MatchPath(routes, host, path);
  const IngressBackend* b = MatchRoute(routes, host, path);
  if (p != nullptr) {
    if (b != &p->backend) abort();
    std::string_view bare = path;
    if (size_t q = bare.find('?'); q != std::string_view::npos) bare = bare.substr(0, q);
    if (bare.empty()) bare = "/";
    if (!IngressPathMatches(p->type, p->path, bare)) abort();
    const std::string h = NormalizeHost(host);
    bool covered = false;
    for (const IngressHostRule& rule : routes.rules) {
      for (const IngressPath& rp : rule.paths) {
        if (&rp == p) covered = IngressHostMatches(rule.host, h);
      }
    }
    if (!covered) abort();
  } else if (b != &*routes.default_backend) {
    abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Fixture& f = F();
  std::string_view in(reinterpret_cast<const char*>(data), size);

  std::string host, path;
  HostAndPath(in, host, path);
  CheckMatcher(f.routes, host, path);

  int fd = Loopback(f.http_port, false);
  // The proxy may answer and close before it has read everything (a bad
  // head): a failed send is not a finding, the answer is.
  SendAll(fd, in);
  ::shutdown(fd, SHUT_WR);
  std::string answer;
  char buf[16384];
  const auto deadline = Clock::now() + kDeadline;
  while (true) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) abort();  // a hang: the proxy neither answered nor closed
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) continue;
    long n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // closed (or reset)
    if (answer.size() < 64) answer.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  // Whatever the proxy said begins as an HTTP/1.1 response.
  const std::string_view want = "HTTP/1.1 ";
  const size_t k = std::min(answer.size(), want.size());
  if (answer.compare(0, k, want.substr(0, k)) != 0) abort();
  return 0;
}
