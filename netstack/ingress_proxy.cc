#include "netstack/ingress_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fcntl.h>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <set>

#include "base/error.h"
#include "base/http_server.h"
#include "base/log.h"
#include "base/netns.h"
#include "base/tls.h"

namespace kin::netstack {

// ---- the matcher ------------------------------------------------------------------------

namespace {

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string LowerStr(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = Lower(c);
  return out;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::vector<std::string> Split(std::string_view s, char sep) {
  std::vector<std::string> out;
  while (true) {
    size_t i = s.find(sep);
    out.emplace_back(s.substr(0, i));
    if (i == std::string_view::npos) return out;
    s.remove_prefix(i + 1);
  }
}

std::string Join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += sep;
    out += v[i];
  }
  return out;
}

std::string Hex(size_t n) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%zx", n);
  return buf;
}

// The path's elements split on "/", empty ones left out ("/a//b/" -> a, b).
std::vector<std::string_view> Elements(std::string_view p) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < p.size()) {
    size_t j = p.find('/', i);
    if (j == std::string_view::npos) j = p.size();
    if (j > i) out.push_back(p.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

enum class HostKind { kExact, kWildcard, kAny };
HostKind KindOf(std::string_view pattern) {
  if (pattern.empty()) return HostKind::kAny;
  if (pattern.rfind("*.", 0) == 0) return HostKind::kWildcard;
  return HostKind::kExact;
}

}  // namespace

std::string NormalizeHost(std::string_view h) {
  // "[::1]:80" keeps its brackets' content; "foo.com:8080" loses the port.
  if (!h.empty() && h.front() == '[') {
    size_t end = h.find(']');
    h = end == std::string_view::npos ? h.substr(1) : h.substr(1, end - 1);
  } else if (size_t colon = h.rfind(':'); colon != std::string_view::npos) {
    h = h.substr(0, colon);
  }
  while (!h.empty() && h.back() == '.') h.remove_suffix(1);
  return LowerStr(h);
}

bool IngressHostMatches(std::string_view pattern, std::string_view host) {
  std::string p = LowerStr(pattern);
  if (KindOf(p) == HostKind::kAny) return true;
  if (KindOf(p) == HostKind::kExact) return p == host;
  // "*.foo.com": exactly one label before ".foo.com".
  std::string_view suffix = std::string_view(p).substr(1);  // ".foo.com"
  if (host.size() <= suffix.size()) return false;
  if (host.substr(host.size() - suffix.size()) != suffix) return false;
  std::string_view label = host.substr(0, host.size() - suffix.size());
  return !label.empty() && label.find('.') == std::string_view::npos;
}

bool IngressPathMatches(IngressPathType type, std::string_view rule_path,
                        std::string_view request_path) {
  if (type == IngressPathType::kExact) return rule_path == request_path;
  std::vector<std::string_view> want = Elements(rule_path), got = Elements(request_path);
  if (want.size() > got.size()) return false;
  return std::equal(want.begin(), want.end(), got.begin());
}

const IngressPath* MatchPath(const IngressRoutes& routes, std::string_view host_header,
                             std::string_view path) {
  if (size_t q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
  if (path.empty()) path = "/";
  const std::string host = NormalizeHost(host_header);
  for (HostKind kind : {HostKind::kExact, HostKind::kWildcard, HostKind::kAny}) {
    // The rules of this kind that cover the host; the most specific wildcard
    // (the longest) first, as a host has one wildcard at most that fits.
    bool any = false;
    const IngressPath* best = nullptr;
    size_t best_len = 0;
    for (const IngressHostRule& rule : routes.rules) {
      if (KindOf(rule.host) != kind || !IngressHostMatches(rule.host, host)) continue;
      any = true;
      for (const IngressPath& p : rule.paths) {
        if (!IngressPathMatches(p.type, p.path, path)) continue;
        if (p.type == IngressPathType::kExact) return &p;  // Exact wins
        // Longest prefix wins; element-wise, "/foo/" and "/foo" are equal.
        size_t len = 0;
        for (auto e : Elements(p.path)) len += e.size() + 1;
        if (!best || len > best_len) {
          best = &p;
          best_len = len;
        }
      }
    }
    if (best) {
      // An Exact path of a later rule of this kind still wins: look again.
      for (const IngressHostRule& rule : routes.rules) {
        if (KindOf(rule.host) != kind || !IngressHostMatches(rule.host, host)) continue;
        for (const IngressPath& p : rule.paths) {
          if (p.type == IngressPathType::kExact && p.path == path) return &p;
        }
      }
      return best;
    }
    if (any) break;  // the host's own rules had no path for it: the default backend
  }
  return nullptr;
}

const IngressBackend* MatchRoute(const IngressRoutes& routes, std::string_view host,
                                 std::string_view path) {
  if (const IngressPath* p = MatchPath(routes, host, path)) return &p->backend;
  return routes.default_backend ? &*routes.default_backend : nullptr;
}

// ---- the server -------------------------------------------------------------------------

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kBufferSize = 16 * 1024;
constexpr int kHandshakeTimeoutMs = 10000;
constexpr int kNextUpstreamTries = 3;  // ingress-nginx's proxy-next-upstream-tries
// Idle connections to backends kept for reuse (ingress-nginx's
// upstream-keepalive-connections and -timeout), per endpoint and in all.
constexpr size_t kIdlePerEndpoint = 32;
constexpr size_t kIdleTotal = 1024;
constexpr auto kIdleUpstreamTimeout = std::chrono::seconds(60);

struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using SslCtxPtr = std::shared_ptr<SSL_CTX>;

int AlpnHttp11(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void*) {
  static const unsigned char kHttp11[] = "\x08http/1.1";
  unsigned char* sel = nullptr;
  unsigned char sel_len = 0;
  if (SSL_select_next_proto(&sel, &sel_len, kHttp11, sizeof kHttp11 - 1, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = sel;
  *outlen = sel_len;
  return SSL_TLSEXT_ERR_OK;
}

std::string OpensslError() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

// A server context for a PEM certificate (chain, leaf first) and key.
SslCtxPtr MakeCtx(const std::string& cert_pem, const std::string& key_pem) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()), SslCtxFree());
  if (!ctx) throw Error::Internal("SSL_CTX_new: " + OpensslError());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_alpn_select_cb(ctx.get(), AlpnHttp11, nullptr);
  std::unique_ptr<BIO, decltype(&BIO_free)> certs(
      BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())), BIO_free);
  X509* leaf = PEM_read_bio_X509(certs.get(), nullptr, nullptr, nullptr);
  if (!leaf) throw Error::BadRequest("no certificate in tls.crt: " + OpensslError());
  int rc = SSL_CTX_use_certificate(ctx.get(), leaf);
  X509_free(leaf);
  if (rc != 1) throw Error::BadRequest("certificate: " + OpensslError());
  while (X509* extra = PEM_read_bio_X509(certs.get(), nullptr, nullptr, nullptr)) {
    if (SSL_CTX_add_extra_chain_cert(ctx.get(), extra) != 1) X509_free(extra);
  }
  ERR_clear_error();  // the end of the chain
  std::unique_ptr<BIO, decltype(&BIO_free)> key(
      BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())), BIO_free);
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(key.get(), nullptr, nullptr, nullptr);
  if (!pkey) throw Error::BadRequest("no private key in tls.key: " + OpensslError());
  rc = SSL_CTX_use_PrivateKey(ctx.get(), pkey);
  EVP_PKEY_free(pkey);
  if (rc != 1 || SSL_CTX_check_private_key(ctx.get()) != 1) {
    throw Error::BadRequest("the key does not match the certificate: " + OpensslError());
  }
  return ctx;
}

sockaddr_in SockAddr(const std::string& ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (::inet_pton(AF_INET, ip.c_str(), &a.sin_addr) != 1) {
    throw Error::BadRequest("ingress proxy: \"" + ip + "\" is not an IPv4 address");
  }
  return a;
}

uint16_t LocalPort(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

std::string PeerIp(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return "";
  char buf[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &a.sin_addr, buf, sizeof buf);
  return buf;
}

UniqueFd Listen(const std::string& bind, uint16_t port, const std::string& where) {
  UniqueFd fd(static_cast<int>(CheckSys(
      ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), "socket" + where)));
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a = SockAddr(bind, port);
  CheckSys(::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a),
           "bind tcp " + bind + ":" + std::to_string(port) + where);
  CheckSys(::listen(fd.get(), 1024), "listen" + where);
  return fd;
}

bool Poll(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  while (true) {
    int n = ::poll(&p, 1, timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    return n > 0;
  }
}

void SetTimeout(int fd, int option, int ms) {
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, option, &tv, sizeof tv);
}

// A plain socket as an http::Conn, made blocking with kernel timeouts: a
// read or write is one system call that sleeps in the kernel (no poll
// first), which halves the system calls per request. Writes give up after
// `write_timeout_ms`, reads after the timeout of the last ReadFor.
class PlainConn : public http::Conn {
 public:
  PlainConn(int fd, int write_timeout_ms) : write_timeout_ms_(write_timeout_ms) { reset(fd); }
  long Read(char* buf, size_t n) override {
    while (true) {
      long got = ::recv(fd_, buf, n, 0);
      if (got >= 0) return got;
      if (errno == EINTR) continue;
      if (errno != EAGAIN || !Poll(fd_, POLLIN, -1)) return -1;
    }
  }
  bool WriteAll(std::string_view data) override {
    while (!data.empty()) {
      long n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n > 0) {
        data.remove_prefix(static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      return false;  // an error, or no room within the send timeout
    }
    return true;
  }
  bool WaitReadable(int timeout_ms) override { return Poll(fd_, POLLIN | POLLRDHUP, timeout_ms); }
  bool PeerClosed() override {
    pollfd p{fd_, POLLRDHUP, 0};
    return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
  }
  int fd() const override { return fd_; }
  void reset(int fd) {
    fd_ = fd;
    read_timeout_ms_ = -1;
    int flags = ::fcntl(fd, F_GETFL);
    if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    SetTimeout(fd, SO_SNDTIMEO, write_timeout_ms_);
  }
  // A read that waits at most timeout_ms (> 0): -2 when nothing came.
  long ReadFor(char* buf, size_t n, int timeout_ms) {
    timeout_ms = std::max(timeout_ms, 1);
    if (timeout_ms != read_timeout_ms_) {
      SetTimeout(fd_, SO_RCVTIMEO, timeout_ms);
      read_timeout_ms_ = timeout_ms;
    }
    while (true) {
      long got = ::recv(fd_, buf, n, 0);
      if (got >= 0) return got;
      if (errno == EINTR) continue;
      return errno == EAGAIN ? -2 : -1;
    }
  }

 private:
  int fd_ = -1;
  int write_timeout_ms_;
  int read_timeout_ms_ = -1;
};

// OpenSSL's socket BIO writes with write(2): a TLS write to a client that
// is gone raises SIGPIPE, which would kill a process that does not ignore
// it (kin serve does; tests and benchmarks do not). Connection threads
// block it, so it stays pending on the thread and is dropped with it.
void BlockSigpipe() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// A TLS connection whose reads and writes publish deadlines, which the
// accept thread enforces by shutting the socket down: a TLS read can block
// inside a record that never completes, where no poll timeout applies.
class DeadlineConn : public http::Conn {
 public:
  DeadlineConn(std::unique_ptr<http::Conn> inner, std::atomic<int64_t>& read_deadline,
               std::atomic<int64_t>& write_deadline, int write_timeout_ms)
      : inner_(std::move(inner)),
        read_deadline_(read_deadline),
        write_deadline_(write_deadline),
        write_timeout_ms_(write_timeout_ms) {}
  long Read(char* buf, size_t n) override {
    Guard g(read_deadline_, wait_ms_);
    return inner_->Read(buf, n);
  }
  bool WriteAll(std::string_view data) override {
    Guard g(write_deadline_, write_timeout_ms_);
    return inner_->WriteAll(data);
  }
  bool WaitReadable(int timeout_ms) override {
    wait_ms_ = timeout_ms < 0 ? kNoDeadlineMs : timeout_ms;
    return inner_->WaitReadable(timeout_ms);
  }
  bool PeerClosed() override { return inner_->PeerClosed(); }
  int fd() const override { return inner_->fd(); }

 private:
  static constexpr int kNoDeadlineMs = 24 * 3600 * 1000;
  static constexpr int64_t kSlackNs = 1'000'000'000;  // a reaper's second of grace
  struct Guard {
    std::atomic<int64_t>& d;
    Guard(std::atomic<int64_t>& deadline, int ms) : d(deadline) {
      d = NowNs() + int64_t{ms} * 1'000'000 + kSlackNs;
    }
    ~Guard() { d = 0; }
  };
  std::unique_ptr<http::Conn> inner_;
  std::atomic<int64_t>& read_deadline_;
  std::atomic<int64_t>& write_deadline_;
  int write_timeout_ms_;
  int wait_ms_ = kNoDeadlineMs;
};

// Buffered reading off a Conn with deadlines.
class Reader {
 public:
  enum Status { kOk, kClosed, kTimeout, kTooLarge, kBad };
  explicit Reader(http::Conn& c) : c_(c), plain_(dynamic_cast<PlainConn*>(&c)) {}

  size_t buffered() const { return buf_.size() - pos_; }
  std::string_view View() const { return std::string_view(buf_).substr(pos_); }
  void Consume(size_t n) {
    pos_ += n;
    if (pos_ == buf_.size()) {
      buf_.clear();
      pos_ = 0;
    }
  }
  // Reads more (at most kBufferSize) within timeout_ms.
  Status Fill(int timeout_ms) {
    if (pos_ > 0) {
      buf_.erase(0, pos_);
      pos_ = 0;
    }
    char chunk[kBufferSize];
    long n;
    if (plain_) {
      // One blocking read with a kernel timeout (no poll first).
      n = plain_->ReadFor(chunk, sizeof chunk, timeout_ms);
      if (n == -2) return kTimeout;
    } else {
      if (!c_.WaitReadable(timeout_ms)) return kTimeout;
      n = c_.Read(chunk, sizeof chunk);
    }
    if (n > 0) buf_.append(chunk, static_cast<size_t>(n));
    received_ += static_cast<size_t>(std::max(n, 0L));
    return n > 0 ? kOk : kClosed;
  }
  // A head (up to and with its blank line) into `head`. `first_ms` to wait
  // for its first byte, `total_ms` for the rest.
  Status Head(std::string& head, size_t max, int first_ms, int total_ms) {
    // Leading empty lines between requests are allowed (RFC 9112 2.2).
    auto skip = [&] {
      while (buffered() > 0 && (View()[0] == '\r' || View()[0] == '\n')) Consume(1);
    };
    skip();
    if (buffered() == 0) {
      Status s = Fill(first_ms);
      if (s != kOk) return s;
      skip();
    }
    auto deadline = Clock::now() + std::chrono::milliseconds(total_ms);
    while (true) {
      size_t end = View().find("\r\n\r\n");
      size_t len = end == std::string_view::npos ? 0 : end + 4;
      if (end == std::string_view::npos) {
        size_t lf = View().find("\n\n");
        if (lf != std::string_view::npos) len = lf + 2;
      }
      if (len > 0) {
        if (len > max) return kTooLarge;
        head.assign(View().substr(0, len));
        Consume(len);
        return kOk;
      }
      if (buffered() > max) return kTooLarge;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return kTimeout;
      Status s = Fill(static_cast<int>(left.count()));
      if (s == kClosed) return buffered() > 0 ? kBad : kClosed;
      if (s != kOk) return s;
    }
  }
  // One line (without its CRLF) within timeout_ms.
  Status Line(std::string& line, int timeout_ms) {
    while (true) {
      size_t lf = View().find('\n');
      if (lf != std::string_view::npos) {
        line.assign(View().substr(0, lf));
        if (!line.empty() && line.back() == '\r') line.pop_back();
        Consume(lf + 1);
        return kOk;
      }
      if (buffered() > 4096) return kBad;
      Status s = Fill(timeout_ms);
      if (s != kOk) return s == kClosed ? kBad : s;
    }
  }

 private:
  http::Conn& c_;
  PlainConn* plain_;
  std::string buf_;
  size_t pos_ = 0;
  size_t received_ = 0;

 public:
  size_t received() const { return received_; }
};

struct Head {
  std::string first;  // the request or status line
  std::vector<std::pair<std::string, std::string>> headers;

  // The last value of a header, or "".
  std::string Get(std::string_view name) const {
    std::string out;
    for (const auto& [k, v] : headers) {
      if (EqualsIgnoreCase(k, name)) out = v;
    }
    return out;
  }
  bool Has(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (EqualsIgnoreCase(k, name)) return true;
    }
    return false;
  }
  // Whether a comma-separated header (Connection) holds `token`.
  bool HasToken(std::string_view name, std::string_view token) const {
    for (const auto& [k, v] : headers) {
      if (!EqualsIgnoreCase(k, name)) continue;
      for (const std::string& t : Split(v, ',')) {
        if (EqualsIgnoreCase(Trim(t), token)) return true;
      }
    }
    return false;
  }
};

bool ParseHead(const std::string& text, Head& out) {
  size_t pos = 0;
  bool first = true;
  while (pos < text.size()) {
    size_t lf = text.find('\n', pos);
    if (lf == std::string::npos) lf = text.size();
    std::string line = text.substr(pos, lf - pos);
    pos = lf + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) break;
    if (first) {
      out.first = line;
      first = false;
      continue;
    }
    if (line[0] == ' ' || line[0] == '\t') return false;  // obsolete line folding
    size_t colon = line.find(':');
    if (colon == std::string::npos || colon == 0) return false;
    std::string name = line.substr(0, colon);
    if (name.find_first_of(" \t") != std::string::npos) return false;
    out.headers.emplace_back(name, std::string(Trim(line.substr(colon + 1))));
  }
  return !first;
}

bool IsHopByHop(std::string_view name) {
  for (std::string_view h : {"connection", "keep-alive", "proxy-connection", "te", "trailer",
                             "transfer-encoding", "upgrade"}) {
    if (EqualsIgnoreCase(name, h)) return true;
  }
  return false;
}

std::string_view Reason(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 408:
      return "Request Time-out";
    case 431:
      return "Request Header Fields Too Large";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Temporarily Unavailable";
    case 504:
      return "Gateway Time-out";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return http::StatusText(status);
  }
}

// An answer of the proxy itself, nginx's short HTML page.
std::string ErrorPage(int status, bool keep_alive) {
  std::string title = std::to_string(status) + " " + std::string(Reason(status));
  std::string body = "<html>\r\n<head><title>" + title +
                     "</title></head>\r\n<body>\r\n<center><h1>" + title +
                     "</h1></center>\r\n<hr><center>kin</center>\r\n</body>\r\n</html>\r\n";
  return "HTTP/1.1 " + title +
         "\r\nContent-Type: text/html\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: " + (keep_alive ? "keep-alive" : "close") + "\r\n\r\n" + body;
}

// nginx's 308 to the same host and request over HTTPS.
std::string RedirectToHttps(const std::string& host, const std::string& target, bool keep_alive) {
  std::string title = "308 Permanent Redirect";
  std::string body = "<html>\r\n<head><title>" + title +
                     "</title></head>\r\n<body>\r\n<center><h1>" + title +
                     "</h1></center>\r\n<hr><center>kin</center>\r\n</body>\r\n</html>\r\n";
  return "HTTP/1.1 " + title +
         "\r\nContent-Type: text/html\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nLocation: https://" + NormalizeHost(host) + target +
         "\r\nConnection: " + (keep_alive ? "keep-alive" : "close") + "\r\n\r\n" + body;
}

std::string RequestId() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return buf;
}

// How a message's body is framed.
struct Framing {
  enum Kind { kNone, kLength, kChunked, kUntilClose } kind = kNone;
  uint64_t length = 0;
  bool dechunk = false;  // kChunked copied as its data only (to an HTTP/1.0 client)
};

// The framing of a request (RFC 9112 6.3); false on a bad one.
bool RequestFraming(const Head& h, Framing& f) {
  bool te = h.Has("Transfer-Encoding"), cl = h.Has("Content-Length");
  if (te && cl) return false;
  if (te) {
    if (!EqualsIgnoreCase(Trim(h.Get("Transfer-Encoding")), "chunked")) {
      return false;
    }
    f.kind = Framing::kChunked;
    return true;
  }
  if (cl) {
    std::string v(Trim(h.Get("Content-Length")));
    if (v.empty() || v.size() > 18 || v.find_first_not_of("0123456789") != std::string::npos) {
      return false;
    }
    for (const auto& [k, val] : h.headers) {  // several must agree
      if (EqualsIgnoreCase(k, "Content-Length") && Trim(val) != v) return false;
    }
    f.length = std::stoull(v);
    f.kind = f.length ? Framing::kLength : Framing::kNone;
  }
  return true;
}

// Copies a body framed by `f` from `in` to `out` (chunked stays chunked
// when `out_chunked`, else... the caller re-frames kUntilClose). Returns
// false when either side failed or timed out; `read_failed` tells which.
bool CopyBody(Reader& in, http::Conn& out, const Framing& f, int timeout_ms, bool rechunk,
              bool& read_failed) {
  read_failed = false;
  auto fail_read = [&] {
    read_failed = true;
    return false;
  };
  switch (f.kind) {
    case Framing::kNone:
      return true;
    case Framing::kLength: {
      uint64_t left = f.length;
      while (left > 0) {
        if (in.buffered() == 0 && in.Fill(timeout_ms) != Reader::kOk) return fail_read();
        size_t n = static_cast<size_t>(std::min<uint64_t>(left, in.buffered()));
        if (!out.WriteAll(in.View().substr(0, n))) return false;
        in.Consume(n);
        left -= n;
      }
      return true;
    }
    case Framing::kUntilClose: {
      while (true) {
        if (in.buffered() == 0) {
          Reader::Status s = in.Fill(timeout_ms);
          if (s == Reader::kClosed) break;
          if (s != Reader::kOk) return fail_read();
        }
        std::string_view data = in.View();
        bool ok = rechunk ? out.WriteAll(Hex(data.size()) + "\r\n") && out.WriteAll(data) &&
                                out.WriteAll("\r\n")
                          : out.WriteAll(data);
        if (!ok) return false;
        in.Consume(data.size());
      }
      return !rechunk || out.WriteAll("0\r\n\r\n");
    }
    case Framing::kChunked: {
      std::string line;
      while (true) {
        if (in.Line(line, timeout_ms) != Reader::kOk) return fail_read();
        std::string size_text(Trim(line.substr(0, line.find(';'))));
        if (size_text.empty() || size_text.size() > 15 ||
            size_text.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
          return fail_read();
        }
        uint64_t size = std::stoull(size_text, nullptr, 16);
        if (!f.dechunk && !out.WriteAll(size_text + "\r\n")) return false;
        if (size == 0) break;
        Framing chunk{Framing::kLength, size};
        bool rf = false;
        if (!CopyBody(in, out, chunk, timeout_ms, false, rf)) {
          read_failed = rf;
          return false;
        }
        if (in.Line(line, timeout_ms) != Reader::kOk || !line.empty()) return fail_read();
        if (!f.dechunk && !out.WriteAll("\r\n")) return false;
      }
      while (true) {  // trailers, then the blank line
        if (in.Line(line, timeout_ms) != Reader::kOk) return fail_read();
        if (!f.dechunk && !out.WriteAll(line + "\r\n")) return false;
        if (line.empty()) return true;
      }
    }
  }
  return true;
}

}  // namespace

struct IngressProxy::State {
  struct Snapshot {
    IngressRoutes routes;
    std::vector<std::pair<std::string, SslCtxPtr>> certs;  // host pattern -> context
  };

  Netns netns;
  UniqueFd http_fd, https_fd, health_fd;
  UniqueFd wake;
  std::atomic<bool> stopping{false};
  std::atomic<bool> routed{false};  // SetRoutes was called
  SslCtxPtr default_ctx;

  std::mutex mu;
  std::shared_ptr<const Snapshot> snapshot = std::make_shared<Snapshot>();
  std::map<std::string, uint64_t> round_robin;
  std::map<uint64_t, std::shared_ptr<Conn>> conns;
  uint64_t next_id = 0;

  struct Idle {
    UniqueFd fd;
    Clock::time_point since;
  };
  std::mutex pool_mu;
  std::map<std::string, std::vector<Idle>> idle;  // by "ip:port"
  size_t idle_total = 0;

  // An idle connection to the endpoint that still looks open, or none.
  UniqueFd TakeIdle(const std::string& key) {
    std::lock_guard lock(pool_mu);
    auto it = idle.find(key);
    while (it != idle.end() && !it->second.empty()) {
      Idle i = std::move(it->second.back());
      it->second.pop_back();
      --idle_total;
      pollfd p{i.fd.get(), POLLIN | POLLRDHUP, 0};
      bool closed_or_junk = ::poll(&p, 1, 0) != 0;  // an idle backend sends nothing
      if (!closed_or_junk && Clock::now() - i.since < kIdleUpstreamTimeout) return std::move(i.fd);
    }
    return UniqueFd();
  }
  void PutIdle(const std::string& key, UniqueFd fd) {
    std::lock_guard lock(pool_mu);
    auto& list = idle[key];
    if (stopping || idle_total >= kIdleTotal || list.size() >= kIdlePerEndpoint) return;
    list.push_back({std::move(fd), Clock::now()});
    ++idle_total;
  }
  void SweepIdle(bool all) {
    std::lock_guard lock(pool_mu);
    for (auto it = idle.begin(); it != idle.end();) {
      auto& list = it->second;
      size_t before = list.size();
      std::erase_if(list, [&](const Idle& i) {
        return all || Clock::now() - i.since >= kIdleUpstreamTimeout;
      });
      idle_total -= before - list.size();
      it = list.empty() ? idle.erase(it) : std::next(it);
    }
  }

  std::shared_ptr<const Snapshot> Current() {
    std::lock_guard lock(mu);
    return snapshot;
  }

  // SNI: the context of the first certificate whose host fits, exact
  // hosts before wildcards.
  static int OnServerName(SSL* ssl, int*, void* arg) {
    auto* self = static_cast<State*>(arg);
    const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name) return SSL_TLSEXT_ERR_OK;
    std::string host = NormalizeHost(name);
    auto snap = self->Current();
    for (HostKind kind : {HostKind::kExact, HostKind::kWildcard}) {
      for (const auto& [pattern, ctx] : snap->certs) {
        if (KindOf(pattern) == kind && IngressHostMatches(pattern, host)) {
          SSL_set_SSL_CTX(ssl, ctx.get());
          return SSL_TLSEXT_ERR_OK;
        }
      }
    }
    return SSL_TLSEXT_ERR_OK;
  }
};

struct IngressProxy::Conn {
  UniqueFd fd;
  enum Kind { kHttp, kHttps, kHealth } kind = kHttp;
  std::atomic<int> backend_fd{-1};
  std::atomic<bool> done{false};
  // TLS reads and writes in progress must end by these (steady clock ns; 0: none).
  std::atomic<int64_t> read_deadline{0}, write_deadline{0};
  std::thread thread;
};

IngressProxy::IngressProxy(IngressProxyOptions opts)
    : opts_(std::move(opts)), state_(std::make_unique<State>()) {}

IngressProxy::~IngressProxy() { Stop(); }

void IngressProxy::Start() {
  if (accept_thread_.joinable()) return;
  const std::string where = opts_.netns.empty() ? "" : " in network namespace " + opts_.netns;
  auto& s = *state_;
  s.stopping = false;
  tls::KeyPair fake = tls::GenerateCa("Kubernetes Ingress Controller Fake Certificate", 365);
  s.default_ctx = MakeCtx(fake.cert_pem, fake.key_pem);
  SSL_CTX_set_tlsext_servername_callback(s.default_ctx.get(), &State::OnServerName);
  SSL_CTX_set_tlsext_servername_arg(s.default_ctx.get(), &s);
  auto make = [&] {
    s.http_fd = Listen(opts_.bind, opts_.http_port, where);
    s.https_fd = Listen(opts_.bind, opts_.https_port, where);
    s.health_fd = Listen(opts_.bind, opts_.health_port, where);
  };
  if (opts_.netns.empty()) {
    s.netns = Netns::Current();
    make();
  } else {
    std::string name = opts_.netns;
    if (name.rfind(kNetnsRunDir, 0) == 0) name = name.substr(std::strlen(kNetnsRunDir) + 1);
    s.netns = Netns::Open(name);
    RunInNetns(s.netns, make);
  }
  ports_ = {LocalPort(s.http_fd.get()), LocalPort(s.https_fd.get()), LocalPort(s.health_fd.get())};
  s.wake.reset(static_cast<int>(CheckSys(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), "eventfd")));
  accept_thread_ = std::thread([this] { AcceptLoop(); });
}

void IngressProxy::Stop() {
  if (!accept_thread_.joinable()) return;
  auto& s = *state_;
  s.stopping = true;
  uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(s.wake.get(), &one, sizeof one);
  accept_thread_.join();
  std::map<uint64_t, std::shared_ptr<Conn>> conns;
  {
    std::lock_guard lock(s.mu);
    conns.swap(s.conns);
  }
  for (auto& [id, c] : conns) {
    ::shutdown(c->fd.get(), SHUT_RDWR);
    int b = c->backend_fd.load();
    if (b >= 0) ::shutdown(b, SHUT_RDWR);
  }
  for (auto& [id, c] : conns) {
    if (c->thread.joinable()) c->thread.join();
  }
  s.http_fd.reset();
  s.https_fd.reset();
  s.health_fd.reset();
  s.SweepIdle(true);
}

bool IngressProxy::has_routes() const { return state_->routed; }

size_t IngressProxy::idle_backend_connections() const {
  std::lock_guard lock(state_->pool_mu);
  return state_->idle_total;
}

size_t IngressProxy::open_connections() const {
  std::lock_guard lock(state_->mu);
  size_t n = 0;
  for (const auto& [id, c] : state_->conns) n += c->done ? 0 : 1;
  return n;
}

void IngressProxy::SetRoutes(IngressRoutes routes) {
  auto snap = std::make_shared<State::Snapshot>();
  auto old = state_->Current();
  for (const IngressCertificate& cert : routes.certificates) {
    SslCtxPtr ctx;
    for (const auto& c : old->routes.certificates) {  // unchanged: reuse its context
      if (c.cert_pem == cert.cert_pem && c.key_pem == cert.key_pem) {
        for (const auto& [host, octx] : old->certs) {
          if (std::find(c.hosts.begin(), c.hosts.end(), host) != c.hosts.end()) ctx = octx;
        }
      }
    }
    if (!ctx) {
      try {
        ctx = MakeCtx(cert.cert_pem, cert.key_pem);
      } catch (const std::exception& e) {
        log::Warn("ingress {}: a certificate for {} does not load, the default serves: {}",
                  opts_.name, Join(cert.hosts, ","), e.what());
        continue;
      }
    }
    for (const std::string& h : cert.hosts) snap->certs.emplace_back(LowerStr(h), ctx);
  }
  // Idle backend connections to endpoints the routes no longer name go.
  std::set<std::string> endpoints;
  auto add = [&](const IngressBackend& b) {
    for (const auto& ep : b.endpoints) endpoints.insert(ep.ip + ":" + std::to_string(ep.port));
  };
  for (const auto& rule : routes.rules) {
    for (const auto& p : rule.paths) add(p.backend);
  }
  if (routes.default_backend) add(*routes.default_backend);
  {
    std::lock_guard lock(state_->pool_mu);
    for (auto it = state_->idle.begin(); it != state_->idle.end();) {
      if (endpoints.count(it->first)) {
        ++it;
        continue;
      }
      state_->idle_total -= it->second.size();
      it = state_->idle.erase(it);
    }
  }
  snap->routes = std::move(routes);
  std::lock_guard lock(state_->mu);
  state_->snapshot = std::move(snap);
  state_->routed = true;
}

void IngressProxy::AcceptLoop() {
  auto& s = *state_;
  while (!s.stopping) {
    pollfd fds[4] = {{s.wake.get(), POLLIN, 0},
                     {s.http_fd.get(), POLLIN, 0},
                     {s.https_fd.get(), POLLIN, 0},
                     {s.health_fd.get(), POLLIN, 0}};
    int n = ::poll(fds, 4, 1000);
    {  // join the threads of finished connections
      std::vector<std::shared_ptr<Conn>> finished;
      {
        std::lock_guard lock(s.mu);
        for (auto it = s.conns.begin(); it != s.conns.end();) {
          if (it->second->done) {
            finished.push_back(it->second);
            it = s.conns.erase(it);
          } else {
            ++it;
          }
        }
      }
      for (auto& c : finished) {
        if (c->thread.joinable()) c->thread.join();
      }
    }
    if (n == 0) s.SweepIdle(false);
    {  // TLS reads and writes past their deadline: their socket is shut down
      const int64_t now = NowNs();
      std::lock_guard lock(s.mu);
      for (auto& [id, c] : s.conns) {
        const int64_t rd = c->read_deadline, wd = c->write_deadline;
        if ((rd && now > rd) || (wd && now > wd)) ::shutdown(c->fd.get(), SHUT_RDWR);
      }
    }
    if (n <= 0 || s.stopping) continue;
    for (int i = 1; i < 4; ++i) {
      if (!(fds[i].revents & POLLIN)) continue;
      int fd = ::accept4(fds[i].fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) continue;
      auto c = std::make_shared<Conn>();
      c->fd.reset(fd);
      c->kind = static_cast<Conn::Kind>(i - 1);
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      std::lock_guard lock(s.mu);
      if (s.conns.size() >= opts_.max_connections) continue;  // closed as `c` goes
      s.conns[s.next_id++] = c;
      c->thread = std::thread([this, c] {
        try {
          Serve(c);
        } catch (const std::exception& e) {
          log::Warn("ingress {}: connection failed: {}", opts_.name, e.what());
        }
        // The client hears the end now; the socket closes when reaped.
        ::shutdown(c->fd.get(), SHUT_RDWR);
        c->done = true;
      });
    }
  }
}

void IngressProxy::Serve(std::shared_ptr<Conn> c) {
  auto& s = *state_;
  BlockSigpipe();
  NetnsEnter in_pod(s.netns);  // backend sockets are the pod's
  const int read_ms = static_cast<int>(opts_.read_timeout.count());
  std::unique_ptr<http::Conn> client;
  if (c->kind == Conn::kHttps) {
    SSL* ssl = SSL_new(s.default_ctx.get());
    if (!ssl) return;
    SSL_set_fd(ssl, c->fd.get());
    auto deadline = Clock::now() + std::chrono::milliseconds(kHandshakeTimeoutMs);
    while (true) {
      ERR_clear_error();
      int rc = SSL_accept(ssl);
      if (rc == 1) break;
      int err = SSL_get_error(ssl, rc);
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      bool again = (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) &&
                   left.count() > 0 && !s.stopping &&
                   Poll(c->fd.get(), err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
                        static_cast<int>(left.count()));
      if (!again) {
        ERR_clear_error();
        SSL_free(ssl);
        return;
      }
    }
    client = std::make_unique<DeadlineConn>(tls::WrapTlsSession(ssl, c->fd.get()), c->read_deadline,
                                            c->write_deadline, read_ms);
  } else {
    client = std::make_unique<PlainConn>(c->fd.get(), read_ms);
  }
  const std::string client_ip = PeerIp(c->fd.get());
  const std::string local_port = std::to_string(LocalPort(c->fd.get()));
  const char* scheme = c->kind == Conn::kHttps ? "https" : "http";
  Reader in(*client);

  bool first = true;
  while (!s.stopping) {
    std::string head_text;
    Reader::Status st =
        in.Head(head_text, opts_.max_header_bytes,
                static_cast<int>((first ? opts_.header_timeout : opts_.idle_timeout).count()),
                static_cast<int>(opts_.header_timeout.count()));
    first = false;
    if (st == Reader::kClosed) return;
    if (st == Reader::kTimeout) {
      // nginx closes an idle keep-alive connection silently, a slow head with 408.
      if (in.buffered() > 0) client->WriteAll(ErrorPage(408, false));
      return;
    }
    if (st == Reader::kTooLarge) {
      client->WriteAll(ErrorPage(431, false));
      return;
    }
    Head req;
    std::vector<std::string> parts;
    if (st == Reader::kOk && ParseHead(head_text, req)) parts = Split(req.first, ' ');
    if (parts.size() != 3 || parts[2].rfind("HTTP/1.", 0) != 0 || parts[1].empty()) {
      client->WriteAll(ErrorPage(400, false));
      return;
    }
    requests_.fetch_add(1, std::memory_order_relaxed);
    const std::string &method = parts[0], &target = parts[1];
    const bool http10 = parts[2] == "HTTP/1.0";
    bool keep_alive =
        http10 ? req.HasToken("Connection", "keep-alive") : !req.HasToken("Connection", "close");
    Framing body;
    if (!RequestFraming(req, body)) {
      client->WriteAll(ErrorPage(400, false));
      return;
    }
    // An answer of our own while a body is unread ends the connection.
    auto answer = [&](int status) {
      if (body.kind != Framing::kNone) keep_alive = false;
      return client->WriteAll(ErrorPage(status, keep_alive)) && keep_alive;
    };

    if (c->kind == Conn::kHealth) {
      std::string path = target.substr(0, target.find('?'));
      if (path == "/healthz" || path == "/is-dynamic-lb-initialized") {
        // Ready once it has routes, as ingress-nginx after its first sync.
        bool ready = s.routed;
        std::string text = ready ? "ok" : "routes not synced yet";
        if (!client->WriteAll(
                std::string(ready ? "HTTP/1.1 200 OK" : "HTTP/1.1 503 Service Unavailable") +
                "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(text.size()) +
                "\r\nConnection: " + (keep_alive ? "keep-alive" : "close") + "\r\n\r\n" + text) ||
            !keep_alive || body.kind != Framing::kNone) {
          return;
        }
        continue;
      }
      if (!answer(404)) return;
      continue;
    }

    std::string host = req.Get("Host");
    std::string path = target;
    if (path.rfind("http://", 0) == 0 || path.rfind("https://", 0) == 0) {  // absolute form
      size_t start = path.find("//") + 2;
      size_t slash = path.find('/', start);
      if (host.empty()) host = path.substr(start, slash - start);
      path = slash == std::string::npos ? "/" : path.substr(slash);
    }
    auto snap = s.Current();
    const IngressPath* matched = MatchPath(snap->routes, host, path);
    if (matched && matched->ssl_redirect && c->kind == Conn::kHttp) {
      if (body.kind != Framing::kNone) keep_alive = false;
      if (!client->WriteAll(RedirectToHttps(host, path, keep_alive)) || !keep_alive) return;
      continue;
    }
    const IngressBackend* backend =
        matched ? &matched->backend
                : (snap->routes.default_backend ? &*snap->routes.default_backend : nullptr);
    if (!backend) {
      if (!answer(404)) return;
      continue;
    }
    if (backend->endpoints.empty()) {
      if (!answer(503)) return;
      continue;
    }

    // Connect to an endpoint: round-robin; on failure the next ones
    // (proxy-next-upstream error timeout), up to three.
    size_t start;
    {
      std::lock_guard lock(s.mu);
      start = s.round_robin[backend->name]++;
    }
    const bool upgrade = req.Has("Upgrade") && req.HasToken("Connection", "upgrade");
    // A new connection to an endpoint; invalid with `status` (502, 504) when it fails.
    auto connect = [&](const IngressEndpoint& ep, int& status) {
      UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
      sockaddr_in a{};
      try {
        a = SockAddr(ep.ip, ep.port);
      } catch (const Error&) {
        return UniqueFd();
      }
      if (!fd.valid()) return fd;
      c->backend_fd = fd.get();
      int rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
      int err = rc == 0 ? 0 : errno;
      if (err == EINPROGRESS) {
        if (!Poll(fd.get(), POLLOUT, static_cast<int>(opts_.connect_timeout.count()))) {
          status = 504;
          c->backend_fd = -1;
          return UniqueFd();
        }
        err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      }
      c->backend_fd = -1;
      if (err != 0) {
        status = 502;
        return UniqueFd();
      }
      int one = 1;
      ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      return fd;
    };
    UniqueFd up;
    bool reused = false;
    const IngressEndpoint* chosen = nullptr;
    int status = 502;
    const size_t tries = std::min<size_t>(kNextUpstreamTries, backend->endpoints.size());
    for (size_t t = 0; t < tries && !up.valid(); ++t) {
      chosen = &backend->endpoints[(start + t) % backend->endpoints.size()];
      if (!upgrade) {
        up = s.TakeIdle(chosen->ip + ":" + std::to_string(chosen->port));
        reused = up.valid();
      }
      if (!up.valid()) up = connect(*chosen, status);
    }
    if (s.stopping) return;
    if (!up.valid()) {
      log::Info("ingress {}: {} {}{}: no endpoint of {} answered ({})", opts_.name, method, host,
                path, backend->name, status);
      if (!answer(status)) return;
      continue;
    }
    const std::string up_key = chosen->ip + ":" + std::to_string(chosen->port);
    c->backend_fd = up.get();
    struct ClearBackend {
      Conn& c;
      ~ClearBackend() { c.backend_fd = -1; }
    } clear_backend{*c};
    PlainConn upstream(up.get(), read_ms);

    std::string out = method + " " + path + " HTTP/1.1\r\n";
    std::string xff = req.Get("X-Forwarded-For");
    for (const auto& [k, v] : req.headers) {
      if (IsHopByHop(k) || EqualsIgnoreCase(k, "Expect")) continue;
      bool ours = false;
      for (std::string_view h :
           {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port",
            "x-real-ip", "x-scheme", "x-request-id", "x-forwarded-scheme", "content-length"}) {
        if (EqualsIgnoreCase(k, h)) ours = true;
      }
      if (!ours) out += k + ": " + v + "\r\n";
    }
    if (host.empty()) out += "Host: " + backend->endpoints[0].ip + "\r\n";
    out += "X-Request-ID: " + RequestId() + "\r\n";
    out += "X-Real-IP: " + client_ip + "\r\n";
    out += "X-Forwarded-For: " + (xff.empty() ? client_ip : xff + ", " + client_ip) + "\r\n";
    out += "X-Forwarded-Host: " + host + "\r\n";
    out += "X-Forwarded-Port: " + local_port + "\r\n";
    out += std::string("X-Forwarded-Proto: ") + scheme + "\r\n";
    out += std::string("X-Forwarded-Scheme: ") + scheme + "\r\n";
    out += std::string("X-Scheme: ") + scheme + "\r\n";
    if (body.kind == Framing::kLength) {
      out += "Content-Length: " + std::to_string(body.length) + "\r\n";
    }
    if (body.kind == Framing::kChunked) out += "Transfer-Encoding: chunked\r\n";
    // Upgrades go through; other requests keep the connection for reuse.
    if (upgrade) out += "Upgrade: " + req.Get("Upgrade") + "\r\nConnection: upgrade\r\n";
    out += "\r\n";
    if (body.kind != Framing::kNone && req.HasToken("Expect", "100-continue")) {
      if (!client->WriteAll("HTTP/1.1 100 Continue\r\n\r\n")) return;
    }
    bool read_failed = false;
    std::optional<Reader> up_in;
    Head resp;
    int code = 0;
    for (int attempt = 0;; ++attempt) {
      // A reused connection the backend closed meanwhile fails before any
      // answer: then once more on a new one, when there is no body to replay.
      auto retry = [&] {
        if (!reused || attempt > 0 || body.kind != Framing::kNone) return false;
        up = connect(*chosen, status);
        reused = false;
        if (!up.valid()) return false;
        c->backend_fd = up.get();
        upstream.reset(up.get());
        return true;
      };
      up_in.emplace(upstream);
      if (!upstream.WriteAll(out) || !CopyBody(in, upstream, body, read_ms, false, read_failed)) {
        if (read_failed) return;  // the client went away or sent garbage
        if (retry()) continue;
        keep_alive = false;
        answer(status == 504 ? 504 : 502);
        return;
      }
      // The response head (interim 1xx ones other than 101 are dropped).
      bool again = false;
      while (true) {
        std::string text;
        Reader::Status rs = up_in->Head(text, opts_.max_header_bytes, read_ms, read_ms);
        if (rs == Reader::kTimeout) {
          keep_alive = false;
          answer(504);
          return;
        }
        if (rs == Reader::kClosed && up_in->received() == 0 && retry()) {
          again = true;
          break;
        }
        resp = Head();
        std::vector<std::string> sl;
        if (rs == Reader::kOk && ParseHead(text, resp)) sl = Split(resp.first, ' ');
        if (sl.size() < 2 || sl[0].rfind("HTTP/1.", 0) != 0 || sl[1].size() != 3 ||
            sl[1].find_first_not_of("0123456789") != std::string::npos) {
          keep_alive = false;
          answer(502);
          return;
        }
        code = std::stoi(sl[1]);
        if (code >= 200 || code == 101) break;
      }
      if (!again) break;
    }

    if (code == 101) {
      if (!upgrade) {
        answer(502);
        return;
      }
      // The backend's answer as it came, then bytes both ways.
      std::string head101 = resp.first + "\r\n";
      for (const auto& [k, v] : resp.headers) head101 += k + ": " + v + "\r\n";
      head101 += "\r\n";
      if (!client->WriteAll(head101)) return;
      if (in.buffered() && !upstream.WriteAll(in.View())) return;
      in.Consume(in.buffered());
      std::thread down([&] {
        BlockSigpipe();
        // Backend -> client; when the backend ends, so does the connection.
        if (up_in->buffered()) client->WriteAll(up_in->View());
        char buf[kBufferSize];
        while (true) {
          if (!upstream.WaitReadable(read_ms)) break;
          long n = upstream.Read(buf, sizeof buf);
          if (n <= 0 || !client->WriteAll(std::string_view(buf, static_cast<size_t>(n)))) break;
        }
        ::shutdown(c->fd.get(), SHUT_RDWR);
        ::shutdown(up.get(), SHUT_RDWR);
      });
      char buf[kBufferSize];
      while (true) {
        if (!client->WaitReadable(read_ms)) break;
        long n = client->Read(buf, sizeof buf);
        if (n <= 0) break;
        if (!upstream.WriteAll(std::string_view(buf, static_cast<size_t>(n)))) break;
      }
      ::shutdown(up.get(), SHUT_WR);  // the client is done: the backend hears EOF
      down.join();
      return;
    }

    // The response, re-framed for the client.
    Framing rf;
    const bool no_body = method == "HEAD" || code == 204 || code == 304;
    if (!no_body) {
      if (resp.Has("Transfer-Encoding")) {
        rf.kind = Framing::kChunked;
      } else if (resp.Has("Content-Length")) {
        if (!RequestFraming(resp, rf)) {
          answer(502);
          return;
        }
      } else {
        rf.kind = Framing::kUntilClose;
      }
    }
    const bool rechunk = rf.kind == Framing::kUntilClose && !http10;
    if (rf.kind == Framing::kUntilClose && http10) keep_alive = false;
    if (rf.kind == Framing::kChunked && http10) {  // HTTP/1.0 has no chunks: data, then close
      rf.dechunk = true;
      keep_alive = false;
    }
    std::string rh = "HTTP/1.1 " + resp.first.substr(resp.first.find(' ') + 1) + "\r\n";
    for (const auto& [k, v] : resp.headers) {
      if (IsHopByHop(k)) continue;
      rh += k + ": " + v + "\r\n";
    }
    if ((rf.kind == Framing::kChunked && !rf.dechunk) || rechunk) {
      rh += "Transfer-Encoding: chunked\r\n";
    }
    rh += std::string("Connection: ") + (keep_alive ? "keep-alive" : "close") + "\r\n\r\n";
    if (!client->WriteAll(rh)) return;
    if (!CopyBody(*up_in, *client, rf, read_ms, rechunk, read_failed)) return;
    // The backend's connection back to the pool when its answer was framed
    // and it keeps connections open.
    if (rf.kind != Framing::kUntilClose && resp.first.rfind("HTTP/1.1", 0) == 0 &&
        !resp.HasToken("Connection", "close") && up_in->buffered() == 0) {
      c->backend_fd = -1;
      s.PutIdle(up_key, std::move(up));
    }
    if (!keep_alive) return;
  }
}

}  // namespace kin::netstack
