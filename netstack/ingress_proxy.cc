#include "netstack/ingress_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fcntl.h>
#include <algorithm>
#include <cerrno>
#include <climits>
#include <coroutine>
#include <cstdio>
#include <cstring>
#include <exception>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <unordered_map>
#include <utility>

#include "base/error.h"
#include "base/http_server.h"
#include "base/log.h"
#include "base/netns.h"
#include "base/process.h"
#include "base/strings.h"
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
std::vector<std::string_view> Elements(std::string_view p) { return SplitPathViews(p); }

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
constexpr size_t kMaxLoops = 4;      // event-loop threads: one per core, at most this many
constexpr int64_t kLingerMs = 2000;  // reading what a closed client still sends

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

// ---- coroutines ---------------------------------------------------------------------------
//
// Each connection is a coroutine on an event loop: the code reads as the
// blocking proxy it was, and the compiler makes the per-connection state
// machine. Co<T> is a lazy coroutine a caller awaits (symmetric transfer
// back to it at the end); Detached is a connection's own, started at once
// and freeing itself when it ends.

using Deadline = Clock::time_point;
constexpr Deadline kNever = Deadline::max();
Deadline After(int64_t ms) {
  return ms < 0 ? kNever : Clock::now() + std::chrono::milliseconds(ms);
}

template <typename T>
class [[nodiscard]] Co {
 public:
  struct promise_type {
    T value{};
    std::exception_ptr error;
    std::coroutine_handle<> next;
    Co get_return_object() { return Co(std::coroutine_handle<promise_type>::from_promise(*this)); }
    std::suspend_always initial_suspend() noexcept { return {}; }
    struct Final {
      bool await_ready() noexcept { return false; }
      std::coroutine_handle<> await_suspend(std::coroutine_handle<promise_type> h) noexcept {
        return h.promise().next;
      }
      void await_resume() noexcept {}
    };
    Final final_suspend() noexcept { return {}; }
    void return_value(T v) { value = std::move(v); }
    void unhandled_exception() { error = std::current_exception(); }
  };
  explicit Co(std::coroutine_handle<promise_type> h) : h_(h) {}
  Co(Co&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  Co& operator=(Co&&) = delete;
  ~Co() {
    if (h_) h_.destroy();
  }
  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> caller) noexcept {
    h_.promise().next = caller;
    return h_;
  }
  T await_resume() {
    if (h_.promise().error) std::rethrow_exception(h_.promise().error);
    return std::move(h_.promise().value);
  }

 private:
  std::coroutine_handle<promise_type> h_;
};

struct Detached {
  struct promise_type {
    Detached get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept {}  // the bodies catch their own
  };
};

// ---- the event loop -----------------------------------------------------------------------

// A coroutine waiting for a socket to be readable or writable, until a
// deadline; `result` (in the awaiting frame) says which came first.
struct Waiter {
  std::coroutine_handle<> h;
  bool* result = nullptr;
  bool timed = false;
  std::multimap<Deadline, Waiter*>::iterator timer;
};

// A socket registered (edge-triggered, both directions) with a loop.
struct FdReg {
  uint64_t id = 0;
  int fd = -1;
  Waiter rd, wr;
  // An edge came while nobody waited: the next wait returns at once.
  bool in_ready = false, out_ready = false;
};

enum class Kind { kHttp, kHttps, kHealth };

struct ProxyState;

class Loop {
 public:
  static constexpr uint64_t kWakeId = 1;
  static constexpr uint64_t kListenId = 2;  // + Kind
  static constexpr uint64_t kFirstId = 16;

  explicit Loop(ProxyState& s);
  void Run();

  void Register(int fd, FdReg& r) {
    r.fd = fd;
    r.id = next_id_++;
    r.in_ready = r.out_ready = false;
    regs_[r.id] = &r;
    epoll_event e{};
    e.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    e.data.u64 = r.id;
    ::epoll_ctl(ep_.get(), EPOLL_CTL_ADD, fd, &e);
  }
  // A socket this loop registered before (an idle backend connection).
  void Adopt(FdReg& r) {
    r.in_ready = r.out_ready = false;
    regs_[r.id] = &r;
  }
  // Events for the socket are ignored from now on; its epoll registration
  // stays until it is closed (or taken by another loop).
  void Forget(FdReg& r) {
    regs_.erase(r.id);
    Drop(r.rd);
    Drop(r.wr);
  }
  int epoll_fd() const { return ep_.get(); }
  bool stopping() const { return stopping_; }

  struct WaitOp {
    Loop& loop;
    Waiter& w;
    Deadline deadline;
    bool& edge;
    bool ok = false;
    bool await_ready() noexcept {
      if (loop.stopping_) return true;
      if (!edge) return false;
      edge = false;
      ok = true;
      return true;
    }
    void await_suspend(std::coroutine_handle<> h) {
      w.h = h;
      w.result = &ok;
      if (deadline != kNever) {
        w.timer = loop.timers_.emplace(deadline, &w);
        w.timed = true;
      }
    }
    bool await_resume() const noexcept { return ok; }
  };
  WaitOp Readable(FdReg& r, Deadline d) { return {*this, r.rd, d, r.in_ready}; }
  WaitOp Writable(FdReg& r, Deadline d) { return {*this, r.wr, d, r.out_ready}; }

  // Resumes `h` on the next turn of the loop.
  void Defer(std::coroutine_handle<> h) { deferred_.push_back(h); }

  // From any thread: serve an accepted connection on this loop; stop.
  void Hand(int fd, Kind kind);
  void RequestStop();
  void Join() {
    if (thread_.joinable()) thread_.join();
  }
  // After Join: connections handed over too late are closed.
  void CloseIncoming();
  // `cpu` >= 0: the thread runs on that CPU only.
  void StartThread(int cpu) {
    cpu_ = cpu;
    thread_ = std::thread([this] { Run(); });
  }

  size_t live = 0;  // connections served here

 private:
  void Drop(Waiter& w) {
    if (w.timed) timers_.erase(w.timer);
    w.timed = false;
    w.h = nullptr;
  }
  // The waiting coroutine, told `ok`, to be resumed by the caller.
  std::coroutine_handle<> Take(Waiter& w, bool ok) {
    std::coroutine_handle<> h = w.h;
    if (h) *w.result = ok;
    Drop(w);
    return h;
  }
  void Accept(Kind kind, int listen_fd);
  void BeginStop();

  ProxyState& s_;
  UniqueFd ep_, wake_;
  std::unordered_map<uint64_t, FdReg*> regs_;
  std::multimap<Deadline, Waiter*> timers_;
  std::vector<std::coroutine_handle<>> deferred_;
  uint64_t next_id_ = kFirstId;
  bool stopping_ = false;
  int cpu_ = -1;
  std::thread thread_;

  std::mutex mu_;  // guards what other threads hand over
  std::vector<std::pair<int, Kind>> incoming_;
  bool stop_requested_ = false;
};

// A socket of a loop (a client's, maybe TLS, or a backend's) with
// coroutine reads and writes.
class Stream {
 public:
  enum : long { kEnd = 0, kError = -1, kTimeout = -2 };
  explicit Stream(Loop& loop) : loop_(loop) {}
  ~Stream() { Close(); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  Loop& loop() { return loop_; }
  int fd() const { return fd_.get(); }
  bool valid() const { return fd_.valid(); }
  void Attach(UniqueFd fd) {
    Close();
    fd_ = std::move(fd);
    drained_ = false;
    loop_.Register(fd_.get(), reg_);
  }
  // An idle connection registered with `owner` under `id`.
  void AttachIdle(UniqueFd fd, Loop* owner, uint64_t id) {
    Close();
    fd_ = std::move(fd);
    drained_ = true;  // TakeIdle saw nothing to read
    if (owner == &loop_) {
      reg_.id = id;
      reg_.fd = fd_.get();
      loop_.Adopt(reg_);
    } else {
      ::epoll_ctl(owner->epoll_fd(), EPOLL_CTL_DEL, fd_.get(), nullptr);
      loop_.Register(fd_.get(), reg_);
    }
  }
  // The socket out of the loop's hands, still registered under the id.
  UniqueFd Release(uint64_t& id) {
    loop_.Forget(reg_);
    id = reg_.id;
    return std::move(fd_);
  }
  void Close() {
    if (ssl_) {
      if (SSL_is_init_finished(ssl_) && !ssl_failed_) SSL_shutdown(ssl_);
      SSL_free(ssl_);
      ssl_ = nullptr;
    }
    if (fd_.valid()) {
      loop_.Forget(reg_);
      fd_.reset();
    }
  }
  void Shutdown(int how) {
    if (fd_.valid()) ::shutdown(fd_.get(), how);
  }

  // The server side of a TLS handshake.
  Co<bool> Handshake(SSL_CTX* ctx, Deadline deadline) {
    ssl_ = SSL_new(ctx);
    if (!ssl_) co_return false;
    SSL_set_fd(ssl_, fd_.get());
    while (true) {
      ERR_clear_error();
      int rc = SSL_accept(ssl_);
      if (rc == 1) co_return true;
      int err = SSL_get_error(ssl_, rc);
      bool ready = false;
      if (err == SSL_ERROR_WANT_READ) {
        ready = co_await loop_.Readable(reg_, deadline);
      } else if (err == SSL_ERROR_WANT_WRITE) {
        ready = co_await loop_.Writable(reg_, deadline);
      }
      if (!ready) {
        ERR_clear_error();
        ssl_failed_ = true;
        co_return false;
      }
    }
  }

  // Up to n bytes: > 0, kEnd, kError, or kTimeout when nothing came by the deadline.
  // With `wait_first` (when nothing can have come yet, as a backend's
  // answer to a request just sent), it waits for an edge before the first
  // read, which saves a read that would find nothing.
  Co<long> Read(char* buf, size_t n, Deadline deadline, bool wait_first = false) {
    if (wait_first && !ssl_ && drained_) {
      bool ready = co_await loop_.Readable(reg_, deadline);
      if (!ready) co_return loop_.stopping() ? kError : kTimeout;
    }
    while (true) {
      long got;
      bool want_write = false;
      if (ssl_) {
        ERR_clear_error();
        int rc = SSL_read(ssl_, buf, static_cast<int>(std::min<size_t>(n, INT_MAX)));
        if (rc > 0) co_return rc;
        int err = SSL_get_error(ssl_, rc);
        if (err == SSL_ERROR_ZERO_RETURN) co_return kEnd;
        if (err == SSL_ERROR_WANT_WRITE) {
          want_write = true;
        } else if (err != SSL_ERROR_WANT_READ) {
          ERR_clear_error();
          ssl_failed_ = true;
          co_return kError;
        }
        got = -1;
        errno = EAGAIN;
      } else {
        got = ::recv(fd_.get(), buf, n, 0);
        if (got >= 0) {
          drained_ = static_cast<size_t>(got) < n;  // TCP hands over all it has
          co_return got;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN) co_return kError;
        reg_.in_ready = false;  // edges seen so far are used up
        drained_ = true;
      }
      bool ready = false;
      // (A TLS read that must write first, while the other direction of an
      // upgraded connection waits to write: it waits to read meanwhile.)
      if (want_write && !reg_.wr.h) {
        ready = co_await loop_.Writable(reg_, deadline);
      } else {
        ready = co_await loop_.Readable(reg_, deadline);
      }
      if (!ready) co_return loop_.stopping() ? kError : kTimeout;
    }
  }

  // All of `data`, each wait for room at most timeout_ms; false on an error or timeout.
  Co<bool> WriteAll(std::string_view data, int64_t timeout_ms) {
    while (!data.empty()) {
      bool want_read = false;
      if (ssl_) {
        ERR_clear_error();
        int rc =
            SSL_write(ssl_, data.data(), static_cast<int>(std::min<size_t>(data.size(), 1 << 30)));
        if (rc > 0) {
          data.remove_prefix(static_cast<size_t>(rc));
          continue;
        }
        int err = SSL_get_error(ssl_, rc);
        if (err == SSL_ERROR_WANT_READ) {
          want_read = true;
        } else if (err != SSL_ERROR_WANT_WRITE) {
          ERR_clear_error();
          ssl_failed_ = true;
          co_return false;
        }
      } else {
        long n = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL);
        if (n > 0) {
          data.remove_prefix(static_cast<size_t>(n));
          continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n == 0 || errno != EAGAIN) co_return false;
        reg_.out_ready = false;
      }
      bool ready = false;
      if (want_read && !reg_.rd.h) {
        ready = co_await loop_.Readable(reg_, After(timeout_ms));
      } else {
        ready = co_await loop_.Writable(reg_, After(timeout_ms));
      }
      if (!ready) co_return false;
    }
    co_return true;
  }

  // The end of a client connection: TLS's close_notify, our FIN, then
  // what the client still sends is read and dropped for a moment (nginx's
  // lingering close), so that closing with unread data does not reset the
  // connection before the client has read the answer.
  Co<bool> LingeringClose() {
    if (ssl_) {
      if (SSL_is_init_finished(ssl_) && !ssl_failed_) SSL_shutdown(ssl_);
      SSL_free(ssl_);
      ssl_ = nullptr;
    }
    if (!fd_.valid()) co_return true;
    ::shutdown(fd_.get(), SHUT_WR);
    const Deadline end = After(kLingerMs);
    bool had = false;
    while (true) {
      char buf[512];
      long n = ::recv(fd_.get(), buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) {
        had = true;
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EINTR) || !had) break;
      bool ready = co_await loop_.Readable(reg_, end);
      if (!ready) break;
    }
    Close();
    co_return true;
  }

  // Waits (for a connect) until the socket is writable.
  Co<bool> WaitWritable(Deadline deadline) {
    bool ready = co_await loop_.Writable(reg_, deadline);
    co_return ready;
  }

 private:
  Loop& loop_;
  UniqueFd fd_;
  FdReg reg_;
  SSL* ssl_ = nullptr;
  bool ssl_failed_ = false;
  bool drained_ = false;  // the last read left nothing in the socket
};

// Buffered reading off a Stream with deadlines.
class Reader {
 public:
  enum Status { kOk, kClosed, kTimeout, kTooLarge, kBad };
  explicit Reader(Stream& s) : s_(s) {}

  size_t buffered() const { return end_ - pos_; }
  std::string_view View() const { return std::string_view(buf_.get() + pos_, end_ - pos_); }
  void Consume(size_t n) {
    pos_ += n;
    if (pos_ == end_) pos_ = end_ = 0;
  }
  size_t received() const { return received_; }

  // Reads more (what the socket has) by the deadline.
  Co<Status> Fill(Deadline deadline, bool wait_first = false) {
    if (!buf_) {
      cap_ = kBufferSize;
      buf_.reset(new char[cap_]);
    }
    if (pos_ > 0) {
      std::memmove(buf_.get(), buf_.get() + pos_, end_ - pos_);
      end_ -= pos_;
      pos_ = 0;
    }
    if (end_ == cap_) {  // a long head: room for more
      std::unique_ptr<char[]> bigger(new char[cap_ * 2]);
      std::memcpy(bigger.get(), buf_.get(), end_);
      buf_ = std::move(bigger);
      cap_ *= 2;
    }
    long n = co_await s_.Read(buf_.get() + end_, std::min(cap_ - end_, kBufferSize), deadline,
                              wait_first);
    if (n == Stream::kTimeout) co_return kTimeout;
    if (n <= 0) co_return kClosed;
    end_ += static_cast<size_t>(n);
    received_ += static_cast<size_t>(n);
    co_return kOk;
  }

  // A head (up to and with its blank line) into `head`. `first_ms` to wait
  // for its first byte, `total_ms` for the rest.
  Co<Status> Head(std::string& head, size_t max, int64_t first_ms, int64_t total_ms,
                  bool wait_first = false) {
    // Leading empty lines between requests are allowed (RFC 9112 2.2).
    while (buffered() > 0 && (View()[0] == '\r' || View()[0] == '\n')) Consume(1);
    if (buffered() == 0) {
      Status s = co_await Fill(After(first_ms), wait_first);
      if (s != kOk) co_return s;
      while (buffered() > 0 && (View()[0] == '\r' || View()[0] == '\n')) Consume(1);
    }
    const Deadline deadline = After(total_ms);
    while (true) {
      std::string_view v = View();
      size_t end = v.find("\r\n\r\n");
      size_t len = end == std::string_view::npos ? 0 : end + 4;
      if (end == std::string_view::npos) {
        size_t lf = v.find("\n\n");
        if (lf != std::string_view::npos) len = lf + 2;
      }
      if (len > 0) {
        if (len > max) co_return kTooLarge;
        head.assign(v.substr(0, len));
        Consume(len);
        co_return kOk;
      }
      if (buffered() > max) co_return kTooLarge;
      if (Clock::now() >= deadline) co_return kTimeout;
      Status s = co_await Fill(deadline);
      if (s == kClosed) co_return buffered() > 0 ? kBad : kClosed;
      if (s != kOk) co_return s;
    }
  }

  // One line (without its CRLF), each read within timeout_ms.
  Co<Status> Line(std::string& line, int64_t timeout_ms) {
    while (true) {
      std::string_view v = View();
      size_t lf = v.find('\n');
      if (lf != std::string_view::npos) {
        line.assign(v.substr(0, lf));
        if (!line.empty() && line.back() == '\r') line.pop_back();
        Consume(lf + 1);
        co_return kOk;
      }
      if (buffered() > 4096) co_return kBad;
      Status s = co_await Fill(After(timeout_ms));
      if (s != kOk) co_return s == kClosed ? kBad : s;
    }
  }

 private:
  Stream& s_;
  std::unique_ptr<char[]> buf_;
  size_t cap_ = 0, pos_ = 0, end_ = 0;
  size_t received_ = 0;
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

// Copies a body framed by `f` from `in` to `out` (chunked stays chunked
// unless f.dechunk; kUntilClose is re-chunked when `rechunk`). Returns
// false when either side failed or timed out; `read_failed` tells which.
Co<bool> CopyBody(Reader& in, Stream& out, const Framing& f, int64_t timeout_ms, bool rechunk,
                  bool& read_failed) {
  read_failed = false;
  switch (f.kind) {
    case Framing::kNone:
      co_return true;
    case Framing::kLength: {
      uint64_t left = f.length;
      while (left > 0) {
        if (in.buffered() == 0) {
          Reader::Status s = co_await in.Fill(After(timeout_ms));
          if (s != Reader::kOk) {
            read_failed = true;
            co_return false;
          }
        }
        size_t n = static_cast<size_t>(std::min<uint64_t>(left, in.buffered()));
        bool ok = co_await out.WriteAll(in.View().substr(0, n), timeout_ms);
        if (!ok) co_return false;
        in.Consume(n);
        left -= n;
      }
      co_return true;
    }
    case Framing::kUntilClose: {
      while (true) {
        if (in.buffered() == 0) {
          Reader::Status s = co_await in.Fill(After(timeout_ms));
          if (s == Reader::kClosed) break;
          if (s != Reader::kOk) {
            read_failed = true;
            co_return false;
          }
        }
        std::string_view data = in.View();
        bool ok;
        if (rechunk) {
          std::string chunk = Hex(data.size()) + "\r\n";
          chunk.append(data);
          chunk += "\r\n";
          ok = co_await out.WriteAll(chunk, timeout_ms);
        } else {
          ok = co_await out.WriteAll(data, timeout_ms);
        }
        if (!ok) co_return false;
        in.Consume(data.size());
      }
      if (!rechunk) co_return true;
      bool ok = co_await out.WriteAll("0\r\n\r\n", timeout_ms);
      co_return ok;
    }
    case Framing::kChunked: {
      std::string line;
      while (true) {
        Reader::Status s = co_await in.Line(line, timeout_ms);
        if (s != Reader::kOk) {
          read_failed = true;
          co_return false;
        }
        std::string size_text(Trim(line.substr(0, line.find(';'))));
        if (size_text.empty() || size_text.size() > 15 ||
            size_text.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
          read_failed = true;
          co_return false;
        }
        uint64_t size = std::stoull(size_text, nullptr, 16);
        if (!f.dechunk) {
          std::string text = size_text + "\r\n";
          bool ok = co_await out.WriteAll(text, timeout_ms);
          if (!ok) co_return false;
        }
        if (size == 0) break;
        Framing chunk{Framing::kLength, size};
        bool rf = false;
        bool ok = co_await CopyBody(in, out, chunk, timeout_ms, false, rf);
        if (!ok) {
          read_failed = rf;
          co_return false;
        }
        s = co_await in.Line(line, timeout_ms);
        if (s != Reader::kOk || !line.empty()) {
          read_failed = true;
          co_return false;
        }
        if (!f.dechunk) {
          ok = co_await out.WriteAll("\r\n", timeout_ms);
          if (!ok) co_return false;
        }
      }
      while (true) {  // trailers, then the blank line
        Reader::Status s = co_await in.Line(line, timeout_ms);
        if (s != Reader::kOk) {
          read_failed = true;
          co_return false;
        }
        if (!f.dechunk) {
          std::string text = line + "\r\n";
          bool ok = co_await out.WriteAll(text, timeout_ms);
          if (!ok) co_return false;
        }
        if (line.empty()) co_return true;
      }
    }
  }
  co_return true;
}

// An answer of the proxy's own; whether the connection goes on. An answer
// while a body is unread ends the connection.
Co<bool> Answer(Stream& client, int status, bool& keep_alive, const Framing& body,
                int64_t timeout_ms) {
  if (body.kind != Framing::kNone) keep_alive = false;
  std::string page = ErrorPage(status, keep_alive);
  bool ok = co_await client.WriteAll(page, timeout_ms);
  co_return ok&& keep_alive;
}

// The backend's direction of an upgraded connection, and the end of both.
struct RelayEnd {
  bool done = false;
  std::coroutine_handle<> waiter;
  bool await_ready() const noexcept { return done; }
  void await_suspend(std::coroutine_handle<> h) noexcept { waiter = h; }
  void await_resume() const noexcept {}
};

Detached RelayDown(Stream& client, Stream& up, Reader& up_in, RelayEnd& join, int64_t read_ms) {
  try {
    bool ok = true;
    if (up_in.buffered()) {
      std::string pending(up_in.View());
      up_in.Consume(pending.size());
      ok = co_await client.WriteAll(pending, read_ms);
    }
    std::unique_ptr<char[]> buf(new char[kBufferSize]);
    while (ok) {
      long n = co_await up.Read(buf.get(), kBufferSize, After(read_ms));
      if (n <= 0) break;
      ok = co_await client.WriteAll(std::string_view(buf.get(), static_cast<size_t>(n)), read_ms);
    }
  } catch (const std::exception&) {
  }
  // When the backend ends, so does the connection.
  client.Shutdown(SHUT_RDWR);
  up.Shutdown(SHUT_RDWR);
  join.done = true;
  if (join.waiter) client.loop().Defer(join.waiter);
}

struct ProxyState {
  struct Snapshot {
    IngressRoutes routes;
    std::vector<std::pair<std::string, SslCtxPtr>> certs;  // host pattern -> context
  };

  ProxyState(const IngressProxyOptions& o, std::atomic<uint64_t>* r) : opts(o), requests(r) {}

  const IngressProxyOptions& opts;
  std::atomic<uint64_t>* requests;
  Netns netns;
  UniqueFd listen_fds[3];           // by Kind
  std::atomic<bool> routed{false};  // SetRoutes was called
  SslCtxPtr default_ctx;
  std::vector<std::unique_ptr<Loop>> loops;
  std::atomic<size_t> conns{0};  // open client connections
  std::atomic<size_t> next_loop{0};

  std::mutex mu;
  std::shared_ptr<const Snapshot> snapshot = std::make_shared<Snapshot>();
  std::map<std::string, uint64_t> round_robin;

  // Idle backend connections; each stays registered with the loop that
  // put it (`owner`, under `id`), which takes it back without a system call.
  struct Idle {
    UniqueFd fd;
    Loop* owner = nullptr;
    uint64_t id = 0;
    Clock::time_point since;
  };
  mutable std::mutex pool_mu;
  std::map<std::string, std::vector<Idle>> idle;  // by "ip:port"
  size_t idle_total = 0;
  bool pool_closed = false;

  // An idle connection to the endpoint that still looks open into `into`;
  // false when there is none. The loop's own ones first: those need no
  // look (a poll) since the loop hears of every byte or close that comes
  // to them (IdleEvent), unless `look`: for a request that cannot be sent
  // again (one with a body), a close that came since the loop's last
  // epoll_wait counts too.
  bool TakeIdle(const std::string& key, Stream& into, bool look) {
    Idle got;
    {
      std::lock_guard lock(pool_mu);
      auto it = idle.find(key);
      while (it != idle.end() && !it->second.empty()) {
        auto& list = it->second;
        size_t pick = list.size() - 1;
        for (size_t i = list.size(); i-- > 0;) {
          if (list[i].owner == &into.loop()) {
            pick = i;
            break;
          }
        }
        Idle i = std::move(list[pick]);
        list.erase(list.begin() + static_cast<std::ptrdiff_t>(pick));
        --idle_total;
        if ((look || i.owner != &into.loop()) && ClosedOrJunk(i.fd.get())) continue;
        if (Clock::now() - i.since < kIdleUpstreamTimeout) {
          got = std::move(i);
          break;
        }
      }
    }
    if (!got.fd.valid()) return false;
    into.AttachIdle(std::move(got.fd), got.owner, got.id);
    return true;
  }
  void PutIdle(const std::string& key, Stream& s) {
    Idle i;
    i.fd = s.Release(i.id);
    i.owner = &s.loop();
    i.since = Clock::now();
    std::lock_guard lock(pool_mu);
    auto& list = idle[key];
    if (pool_closed || idle_total >= kIdleTotal || list.size() >= kIdlePerEndpoint) return;
    list.push_back(std::move(i));
    ++idle_total;
  }
  // An idle backend sends nothing: anything readable is its close (or junk).
  static bool ClosedOrJunk(int fd) {
    pollfd p{fd, POLLIN | POLLRDHUP, 0};
    return ::poll(&p, 1, 0) != 0;
  }
  // The owner loop of an idle connection had an event for it: closed by
  // the backend (or junk), it leaves the pool now. (The look weeds out an
  // edge that came for bytes its last answer already read.)
  void IdleEvent(Loop& owner, uint64_t id) {
    std::lock_guard lock(pool_mu);
    for (auto it = idle.begin(); it != idle.end(); ++it) {
      auto& list = it->second;
      for (size_t k = 0; k < list.size(); ++k) {
        if (list[k].owner != &owner || list[k].id != id) continue;
        if (ClosedOrJunk(list[k].fd.get())) {
          list.erase(list.begin() + static_cast<std::ptrdiff_t>(k));
          --idle_total;
          if (list.empty()) idle.erase(it);
        }
        return;
      }
    }
  }
  void SweepIdle(bool all) {
    std::lock_guard lock(pool_mu);
    if (all) pool_closed = true;
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
    auto* self = static_cast<ProxyState*>(arg);
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

  Detached Serve(Loop& loop, int fd, Kind kind);
  Co<bool> ServeConn(Loop& loop, Stream& client, Kind kind);
  Co<int> Connect(Stream& up, const IngressEndpoint& ep);
};

// ---- the loop -------------------------------------------------------------------------------

Loop::Loop(ProxyState& s) : s_(s) {
  ep_.reset(static_cast<int>(CheckSys(::epoll_create1(EPOLL_CLOEXEC), "epoll_create1")));
  wake_.reset(static_cast<int>(CheckSys(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), "eventfd")));
  epoll_event e{};
  e.events = EPOLLIN;
  e.data.u64 = kWakeId;
  CheckSys(::epoll_ctl(ep_.get(), EPOLL_CTL_ADD, wake_.get(), &e), "epoll_ctl");
  for (int k = 0; k < 3; ++k) {
    e.events = EPOLLIN | EPOLLEXCLUSIVE;  // one loop wakes for a new connection
    e.data.u64 = kListenId + static_cast<uint64_t>(k);
    CheckSys(::epoll_ctl(ep_.get(), EPOLL_CTL_ADD, s.listen_fds[k].get(), &e), "epoll_ctl");
  }
}

void Loop::Hand(int fd, Kind kind) {
  {
    std::lock_guard lock(mu_);
    incoming_.emplace_back(fd, kind);
  }
  uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_.get(), &one, sizeof one);
}

void Loop::RequestStop() {
  {
    std::lock_guard lock(mu_);
    stop_requested_ = true;
  }
  uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_.get(), &one, sizeof one);
}

void Loop::Accept(Kind kind, int listen_fd) {
  for (int k = 0; k < 64; ++k) {
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    if (s_.conns.load() >= s_.opts.max_connections) {  // beyond the limit: closed at once
      ::close(fd);
      continue;
    }
    ++s_.conns;
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // Spread over the loops in turn.
    Loop& to = *s_.loops[s_.next_loop++ % s_.loops.size()];
    if (&to == this) {
      s_.Serve(*this, fd, kind);
    } else {
      to.Hand(fd, kind);
    }
  }
}

void Loop::BeginStop() {
  stopping_ = true;
  for (int k = 0; k < 3; ++k)
    ::epoll_ctl(ep_.get(), EPOLL_CTL_DEL, s_.listen_fds[k].get(), nullptr);
  // Every socket is shut down and every waiting coroutine told: they end.
  std::vector<std::coroutine_handle<>> wake;
  for (auto& [id, r] : regs_) {
    ::shutdown(r->fd, SHUT_RDWR);
    if (auto h = Take(r->rd, false)) wake.push_back(h);
    if (auto h = Take(r->wr, false)) wake.push_back(h);
  }
  for (auto h : wake) h.resume();
}

// A connection closed before it was served: our FIN, and what the client
// sent is read first, so that the close does not reset the connection.
void CloseUnserved(int fd) {
  ::shutdown(fd, SHUT_WR);
  char buf[512];
  while (::recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {
  }
  ::close(fd);
}

void Loop::CloseIncoming() {
  std::lock_guard lock(mu_);
  for (auto& [fd, kind] : incoming_) {
    CloseUnserved(fd);
    --s_.conns;
  }
  incoming_.clear();
}

void Loop::Run() {
  BlockSigpipeOnThisThread();  // TLS writes to clients that are gone
  ::pthread_setname_np(::pthread_self(), "ingress-loop");
  if (cpu_ >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu_, &set);
    if (int rc = ::pthread_setaffinity_np(::pthread_self(), sizeof set, &set); rc != 0) {
      log::Warn("ingress {}: pinning an event loop to CPU {}: {}", s_.opts.name, cpu_,
                std::strerror(rc));
    }
  }
  NetnsEnter in_pod(s_.netns);  // backend sockets are the pod's
  epoll_event events[128];
  auto next_sweep = Clock::now() + std::chrono::seconds(1);
  const bool sweeper = this == s_.loops[0].get();
  while (!(stopping_ && live == 0)) {
    int timeout = 1000;
    if (!deferred_.empty()) {
      timeout = 0;
    } else if (!timers_.empty()) {
      auto left =
          std::chrono::ceil<std::chrono::milliseconds>(timers_.begin()->first - Clock::now());
      timeout = static_cast<int>(std::clamp<int64_t>(left.count(), 0, 1000));
    }
    int n = ::epoll_wait(ep_.get(), events, 128, timeout);
    for (int i = 0; i < n; ++i) {
      const uint64_t id = events[i].data.u64;
      if (id == kWakeId) {
        uint64_t v;
        [[maybe_unused]] auto r = ::read(wake_.get(), &v, sizeof v);
        std::vector<std::pair<int, Kind>> got;
        bool stop;
        {
          std::lock_guard lock(mu_);
          got.swap(incoming_);
          stop = stop_requested_;
        }
        for (auto& [fd, kind] : got) {
          if (stopping_ || stop) {
            CloseUnserved(fd);
            --s_.conns;
          } else {
            s_.Serve(*this, fd, kind);
          }
        }
        if (stop && !stopping_) BeginStop();
        continue;
      }
      if (id >= kListenId && id < kListenId + 3) {
        if (!stopping_)
          Accept(static_cast<Kind>(id - kListenId), s_.listen_fds[id - kListenId].get());
        continue;
      }
      auto it = regs_.find(id);
      if (it == regs_.end()) {  // gone, or an idle backend connection
        if (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
          s_.IdleEvent(*this, id);
        }
        continue;
      }
      FdReg* r = it->second;
      const uint32_t ev = events[i].events;
      std::coroutine_handle<> hr, hw;
      if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        hr = Take(r->rd, true);
        if (!hr) r->in_ready = true;
      }
      if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
        hw = Take(r->wr, true);
        if (!hw) r->out_ready = true;
      }
      // Resuming one may end the connection; the other is still suspended.
      if (hr) hr.resume();
      if (hw) hw.resume();
    }
    const auto now = Clock::now();
    while (!timers_.empty() && timers_.begin()->first <= now) {
      if (auto h = Take(*timers_.begin()->second, false)) h.resume();
    }
    while (!deferred_.empty()) {
      std::vector<std::coroutine_handle<>> d;
      d.swap(deferred_);
      for (auto h : d) h.resume();
    }
    if (sweeper && now >= next_sweep) {
      s_.SweepIdle(false);
      next_sweep = now + std::chrono::seconds(1);
    }
  }
}

// ---- a connection ---------------------------------------------------------------------------

Detached ProxyState::Serve(Loop& loop, int fd, Kind kind) {
  ++loop.live;
  {
    Stream client(loop);
    client.Attach(UniqueFd(fd));
    try {
      co_await ServeConn(loop, client, kind);
    } catch (const std::exception& e) {
      log::Warn("ingress {}: connection failed: {}", opts.name, e.what());
    }
    // The client hears the end now (what it still sends is read and dropped
    // for a moment, so that the answer is not lost to a reset).
    co_await client.LingeringClose();
  }
  --conns;
  --loop.live;
}

Co<int> ProxyState::Connect(Stream& up, const IngressEndpoint& ep) {
  sockaddr_in a{};
  try {
    a = SockAddr(ep.ip, ep.port);
  } catch (const Error&) {
    co_return 502;
  }
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) co_return 502;
  int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
  int err = rc == 0 ? 0 : errno;
  up.Attach(std::move(fd));
  if (err == EINPROGRESS) {
    bool ready = co_await up.WaitWritable(After(opts.connect_timeout.count()));
    if (!ready) {
      up.Close();
      co_return 504;
    }
    err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(up.fd(), SOL_SOCKET, SO_ERROR, &err, &len);
  }
  if (err != 0) {
    up.Close();
    co_return 502;
  }
  co_return 0;
}

Co<bool> ProxyState::ServeConn(Loop& loop, Stream& client, Kind kind) {
  const int64_t read_ms = opts.read_timeout.count();
  if (kind == Kind::kHttps) {
    bool ok = co_await client.Handshake(default_ctx.get(), After(kHandshakeTimeoutMs));
    if (!ok) co_return false;
  }
  const std::string client_ip = PeerIp(client.fd());
  const std::string local_port = std::to_string(LocalPort(client.fd()));
  const char* scheme = kind == Kind::kHttps ? "https" : "http";
  Reader in(client);

  bool first = true;
  while (!loop.stopping()) {
    std::string head_text;
    Reader::Status st = co_await in.Head(head_text, opts.max_header_bytes,
                                         (first ? opts.header_timeout : opts.idle_timeout).count(),
                                         opts.header_timeout.count(), !first);
    first = false;
    if (st == Reader::kClosed) co_return true;
    if (st == Reader::kTimeout) {
      // nginx closes an idle keep-alive connection silently, a slow head with 408.
      if (in.buffered() > 0) {
        std::string page = ErrorPage(408, false);
        co_await client.WriteAll(page, read_ms);
      }
      co_return true;
    }
    if (st == Reader::kTooLarge) {
      std::string page = ErrorPage(431, false);
      co_await client.WriteAll(page, read_ms);
      co_return true;
    }
    Head req;
    std::vector<std::string> parts;
    if (st == Reader::kOk && ParseHead(head_text, req)) parts = Split(req.first, ' ');
    if (parts.size() != 3 || parts[2].rfind("HTTP/1.", 0) != 0 || parts[1].empty()) {
      std::string page = ErrorPage(400, false);
      co_await client.WriteAll(page, read_ms);
      co_return true;
    }
    requests->fetch_add(1, std::memory_order_relaxed);
    const std::string &method = parts[0], &target = parts[1];
    const bool http10 = parts[2] == "HTTP/1.0";
    bool keep_alive =
        http10 ? req.HasToken("Connection", "keep-alive") : !req.HasToken("Connection", "close");
    Framing body;
    if (!RequestFraming(req, body)) {
      std::string page = ErrorPage(400, false);
      co_await client.WriteAll(page, read_ms);
      co_return true;
    }

    if (kind == Kind::kHealth) {
      std::string path = target.substr(0, target.find('?'));
      if (path == "/healthz" || path == "/is-dynamic-lb-initialized") {
        // Ready once it has routes, as ingress-nginx after its first sync.
        bool ready = routed;
        std::string text = ready ? "ok" : "routes not synced yet";
        std::string resp =
            std::string(ready ? "HTTP/1.1 200 OK" : "HTTP/1.1 503 Service Unavailable") +
            "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(text.size()) +
            "\r\nConnection: " + (keep_alive ? "keep-alive" : "close") + "\r\n\r\n" + text;
        bool ok = co_await client.WriteAll(resp, read_ms);
        if (!ok || !keep_alive || body.kind != Framing::kNone) co_return true;
        continue;
      }
      bool more = co_await Answer(client, 404, keep_alive, body, read_ms);
      if (!more) co_return true;
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
    auto snap = Current();
    const IngressPath* matched = MatchPath(snap->routes, host, path);
    if (matched && matched->ssl_redirect && kind == Kind::kHttp) {
      if (body.kind != Framing::kNone) keep_alive = false;
      std::string redirect = RedirectToHttps(host, path, keep_alive);
      bool ok = co_await client.WriteAll(redirect, read_ms);
      if (!ok || !keep_alive) co_return true;
      continue;
    }
    const IngressBackend* backend =
        matched ? &matched->backend
                : (snap->routes.default_backend ? &*snap->routes.default_backend : nullptr);
    if (!backend || backend->endpoints.empty()) {
      bool more = co_await Answer(client, backend ? 503 : 404, keep_alive, body, read_ms);
      if (!more) co_return true;
      continue;
    }

    // Connect to an endpoint: round-robin; on failure the next ones
    // (proxy-next-upstream error timeout), up to three; a kept-alive
    // connection when one is idle.
    size_t start;
    {
      std::lock_guard lock(mu);
      start = round_robin[backend->name]++;
    }
    const bool upgrade = req.Has("Upgrade") && req.HasToken("Connection", "upgrade");
    Stream up(loop);
    bool reused = false;
    const IngressEndpoint* chosen = nullptr;
    std::string up_key;
    int status = 502;
    const size_t tries = std::min<size_t>(kNextUpstreamTries, backend->endpoints.size());
    for (size_t t = 0; t < tries && !up.valid(); ++t) {
      chosen = &backend->endpoints[(start + t) % backend->endpoints.size()];
      up_key = chosen->ip + ":" + std::to_string(chosen->port);
      if (!upgrade) reused = TakeIdle(up_key, up, body.kind != Framing::kNone);
      if (!up.valid()) {
        int rc = co_await Connect(up, *chosen);
        if (rc != 0) status = rc;
      }
    }
    if (loop.stopping()) co_return false;
    if (!up.valid()) {
      log::Info("ingress {}: {} {}{}: no endpoint of {} answered ({})", opts.name, method, host,
                path, backend->name, status);
      bool more = co_await Answer(client, status, keep_alive, body, read_ms);
      if (!more) co_return true;
      continue;
    }

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
      if (!ours) {
        out += k;
        out += ": ";
        out += v;
        out += "\r\n";
      }
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
    const bool expect_continue =
        body.kind != Framing::kNone && req.HasToken("Expect", "100-continue");
    if (expect_continue) {
      bool ok = co_await client.WriteAll("HTTP/1.1 100 Continue\r\n\r\n", read_ms);
      if (!ok) co_return false;
    }
    // A small body that came with the head goes in the same write.
    bool body_sent = false;
    if (body.kind == Framing::kLength && in.buffered() >= body.length) {
      out.append(in.View().substr(0, static_cast<size_t>(body.length)));
      in.Consume(static_cast<size_t>(body.length));
      body_sent = true;
    }

    bool read_failed = false;
    std::optional<Reader> up_in;
    Head resp;
    int code = 0;
    for (int attempt = 0;; ++attempt) {
      // A reused connection the backend closed meanwhile fails before any
      // answer: then once more on a new one, when there is no body to replay.
      const bool can_retry = reused && attempt == 0 && body.kind == Framing::kNone;
      up_in.emplace(up);
      bool sent = co_await up.WriteAll(out, read_ms);
      if (sent && !body_sent) sent = co_await CopyBody(in, up, body, read_ms, false, read_failed);
      if (!sent) {
        if (read_failed) co_return false;  // the client went away or sent garbage
        if (can_retry) {
          reused = false;
          int rc = co_await Connect(up, *chosen);
          if (rc == 0) continue;
          status = rc;
        }
        keep_alive = false;
        co_await Answer(client, status == 504 ? 504 : 502, keep_alive, body, read_ms);
        co_return false;
      }
      // The response head (interim 1xx ones other than 101 are dropped).
      bool again = false;
      bool bad = false;
      while (true) {
        std::string text;
        Reader::Status rs =
            co_await up_in->Head(text, opts.max_header_bytes, read_ms, read_ms, true);
        if (rs == Reader::kTimeout) {
          keep_alive = false;
          co_await Answer(client, 504, keep_alive, body, read_ms);
          co_return false;
        }
        if (rs == Reader::kClosed && up_in->received() == 0 && can_retry) {
          reused = false;
          int rc = co_await Connect(up, *chosen);
          if (rc == 0) {
            again = true;
            break;
          }
        }
        resp = Head();
        std::vector<std::string> sl;
        if (rs == Reader::kOk && ParseHead(text, resp)) sl = Split(resp.first, ' ');
        if (sl.size() < 2 || sl[0].rfind("HTTP/1.", 0) != 0 || sl[1].size() != 3 ||
            sl[1].find_first_not_of("0123456789") != std::string::npos) {
          bad = true;
          break;
        }
        code = std::stoi(sl[1]);
        if (code >= 200 || code == 101) break;
      }
      if (bad) {
        keep_alive = false;
        co_await Answer(client, 502, keep_alive, body, read_ms);
        co_return false;
      }
      if (!again) break;
    }

    if (code == 101) {
      if (!upgrade) {
        co_await Answer(client, 502, keep_alive, body, read_ms);
        co_return false;
      }
      // The backend's answer as it came, then bytes both ways.
      std::string head101 = resp.first + "\r\n";
      for (const auto& [k, v] : resp.headers) head101 += k + ": " + v + "\r\n";
      head101 += "\r\n";
      bool ok = co_await client.WriteAll(head101, read_ms);
      if (!ok) co_return false;
      if (in.buffered()) {
        std::string pending(in.View());
        in.Consume(pending.size());
        ok = co_await up.WriteAll(pending, read_ms);
        if (!ok) co_return false;
      }
      RelayEnd join;
      RelayDown(client, up, *up_in, join, read_ms);
      std::unique_ptr<char[]> buf(new char[kBufferSize]);
      while (true) {  // client -> backend
        long n = co_await client.Read(buf.get(), kBufferSize, After(read_ms));
        if (n <= 0) break;
        ok = co_await up.WriteAll(std::string_view(buf.get(), static_cast<size_t>(n)), read_ms);
        if (!ok) break;
      }
      up.Shutdown(SHUT_WR);  // the client is done: the backend hears EOF
      co_await join;
      co_return false;
    }

    // The response, re-framed for the client.
    Framing rf;
    const bool no_body = method == "HEAD" || code == 204 || code == 304;
    if (!no_body) {
      if (resp.Has("Transfer-Encoding")) {
        rf.kind = Framing::kChunked;
      } else if (resp.Has("Content-Length")) {
        if (!RequestFraming(resp, rf)) {
          co_await Answer(client, 502, keep_alive, body, read_ms);
          co_return false;
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
      rh += k;
      rh += ": ";
      rh += v;
      rh += "\r\n";
    }
    if ((rf.kind == Framing::kChunked && !rf.dechunk) || rechunk) {
      rh += "Transfer-Encoding: chunked\r\n";
    }
    rh += std::string("Connection: ") + (keep_alive ? "keep-alive" : "close") + "\r\n\r\n";
    // A body that came with the head goes in the same write.
    bool body_done = false;
    if (rf.kind == Framing::kLength && up_in->buffered() >= rf.length) {
      rh.append(up_in->View().substr(0, static_cast<size_t>(rf.length)));
      up_in->Consume(static_cast<size_t>(rf.length));
      body_done = true;
    }
    bool ok = co_await client.WriteAll(rh, read_ms);
    if (!ok) co_return false;
    if (!body_done) {
      ok = co_await CopyBody(*up_in, client, rf, read_ms, rechunk, read_failed);
      if (!ok) co_return false;
    }
    // The backend's connection back to the pool when its answer was framed
    // and it keeps connections open.
    if (rf.kind != Framing::kUntilClose && resp.first.rfind("HTTP/1.1", 0) == 0 &&
        !resp.HasToken("Connection", "close") && up_in->buffered() == 0) {
      up_in.reset();
      PutIdle(up_key, up);
    }
    if (!keep_alive) co_return true;
  }
  co_return true;
}

}  // namespace

struct IngressProxy::State : ProxyState {
  using ProxyState::ProxyState;
};

IngressProxy::IngressProxy(IngressProxyOptions opts)
    : opts_(std::move(opts)), state_(std::make_unique<State>(opts_, &requests_)) {}

IngressProxy::~IngressProxy() { Stop(); }

void IngressProxy::Start() {
  if (started_) return;
  const std::string where = opts_.netns.empty() ? "" : " in network namespace " + opts_.netns;
  auto& s = *state_;
  {
    std::lock_guard lock(s.pool_mu);
    s.pool_closed = false;
  }
  tls::KeyPair fake = tls::GenerateCa("Kubernetes Ingress Controller Fake Certificate", 365);
  s.default_ctx = MakeCtx(fake.cert_pem, fake.key_pem);
  SSL_CTX_set_tlsext_servername_callback(s.default_ctx.get(), &ProxyState::OnServerName);
  SSL_CTX_set_tlsext_servername_arg(s.default_ctx.get(), static_cast<ProxyState*>(&s));
  auto make = [&] {
    s.listen_fds[static_cast<int>(Kind::kHttp)] = Listen(opts_.bind, opts_.http_port, where);
    s.listen_fds[static_cast<int>(Kind::kHttps)] = Listen(opts_.bind, opts_.https_port, where);
    s.listen_fds[static_cast<int>(Kind::kHealth)] = Listen(opts_.bind, opts_.health_port, where);
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
  ports_ = {LocalPort(s.listen_fds[0].get()), LocalPort(s.listen_fds[1].get()),
            LocalPort(s.listen_fds[2].get())};
  // One loop per CPU this process may run on (at most kMaxLoops), each
  // pinned to its CPU when they cover them all, as nginx's
  // worker_cpu_affinity auto: a loop that stays put keeps the clients and
  // backends it wakes on its CPU (sync wake-ups pull them there) instead
  // of chasing them, which costs each request cross-CPU wake-ups (measured
  // with bench_ingress on 2 cores: a quarter more requests per second).
  std::vector<int> cpus;
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (::sched_getaffinity(0, sizeof allowed, &allowed) == 0) {
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &allowed)) cpus.push_back(c);
    }
  }
  const size_t n = std::clamp<size_t>(
      cpus.empty() ? std::thread::hardware_concurrency() : cpus.size(), 1, kMaxLoops);
  const bool pin = cpus.size() > 1 && cpus.size() <= kMaxLoops;
  s.loops.clear();
  for (size_t i = 0; i < n; ++i) s.loops.push_back(std::make_unique<Loop>(s));
  for (size_t i = 0; i < n; ++i) s.loops[i]->StartThread(pin ? cpus[i] : -1);
  started_ = true;
}

void IngressProxy::Stop() {
  if (!started_) return;
  auto& s = *state_;
  for (auto& l : s.loops) l->RequestStop();
  for (auto& l : s.loops) l->Join();
  for (auto& l : s.loops) l->CloseIncoming();
  s.SweepIdle(true);
  s.loops.clear();
  for (auto& fd : s.listen_fds) fd.reset();
  started_ = false;
}

bool IngressProxy::has_routes() const { return state_->routed; }

size_t IngressProxy::idle_backend_connections() const {
  std::lock_guard lock(state_->pool_mu);
  return state_->idle_total;
}

size_t IngressProxy::open_connections() const { return state_->conns.load(); }

void IngressProxy::SetRoutes(IngressRoutes routes) {
  auto snap = std::make_shared<ProxyState::Snapshot>();
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

}  // namespace kin::netstack
