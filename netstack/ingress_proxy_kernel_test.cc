// Kernel tests (root): the Ingress proxy on real sockets inside a network
// namespace the test makes, with backends (small HTTP servers, base/
// http_server.h) in the same namespace on loopback addresses, and clients
// that speak raw HTTP (and TLS through OpenSSL) from inside it. Nothing
// leaves the namespace.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "base/error.h"
#include "base/http_server.h"
#include "base/netns.h"
#include "base/tls.h"
#include "netstack/ingress_proxy.h"
#include "netstack/netlink.h"
#include "testing/kernel_fixture.h"

namespace kin::netstack {
namespace {

using testing::Eventually;
using ::testing::HasSubstr;
using testing::KernelTest;
using ::testing::StartsWith;
using T = IngressPathType;

// A connected TCP socket from inside `netns` (made there, used from here).
UniqueFd Connect(const std::string& netns, uint16_t port, const std::string& src = "") {
  UniqueFd fd;
  RunInNetns(Netns::Open(netns), [&] {
    fd.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!src.empty()) {
      sockaddr_in s{};
      s.sin_family = AF_INET;
      ::inet_pton(AF_INET, src.c_str(), &s.sin_addr);
      CheckSys(::bind(fd.get(), reinterpret_cast<sockaddr*>(&s), sizeof s), "bind source");
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CheckSys(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), "connect");
  });
  timeval tv{5, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

void Send(int fd, const std::string& s) {
  ASSERT_EQ(::send(fd, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size()));
}

// Reads one response with a Content-Length body (or until EOF without one).
std::string ReadResponse(int fd) {
  std::string got;
  char buf[4096];
  while (true) {
    size_t end = got.find("\r\n\r\n");
    if (end != std::string::npos) {
      size_t cl = got.find("Content-Length: ");
      if (cl != std::string::npos && cl < end) {
        size_t len = std::stoul(got.substr(cl + 16));
        if (got.size() >= end + 4 + len) return got;
      }
    }
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return got;
    got.append(buf, static_cast<size_t>(n));
  }
}

std::string Body(const std::string& resp) {
  size_t end = resp.find("\r\n\r\n");
  return end == std::string::npos ? "" : resp.substr(end + 4);
}

// A backend that answers "<name> <method> <path>" and, for /headers, every
// request header as "name: value" lines; for POST the body's length.
class Backend {
 public:
  Backend(const std::string& netns, const std::string& name, int idle_timeout_ms = 90000) {
    http::ServerOptions o;
    o.netns = netns;
    o.port = 0;
    o.idle_timeout_ms = idle_timeout_ms;
    server_ = std::make_unique<http::Server>(o, [name](http::Request& req, http::Response& resp) {
      if (req.path == "/ws") {
        resp.status = 101;
        resp.headers.emplace("Upgrade", "websocket");
        resp.headers.emplace("Connection", "Upgrade");
        resp.upgrade = [](http::Conn& c) {
          char buf[256];
          while (true) {
            long n = c.Read(buf, sizeof buf);
            if (n <= 0 || !c.WriteAll("echo:" + std::string(buf, static_cast<size_t>(n)))) return;
          }
        };
        return;
      }
      std::string body = name + " " + req.method + " " + req.path;
      if (req.path == "/peer") body = req.remote_addr;
      if (req.path == "/headers") {
        body.clear();
        for (const auto& [k, v] : req.headers) body += k + ": " + v + "\n";
      }
      if (req.method == "POST") body += " len=" + std::to_string(req.body.size());
      resp.Set(200, "text/plain", body);
    });
    server_->Start();
  }
  uint16_t port() const { return static_cast<uint16_t>(server_->port()); }
  size_t open_connections() const { return server_->open_connections(); }
  IngressEndpoint ep(const std::string& ip = "127.0.0.1") const { return {ip, port()}; }

 private:
  std::unique_ptr<http::Server> server_;
};

// A backend that answers every connection with `answer` as it is (after
// reading the request head), then closes it (with `hold`, keeps it open
// without reading more until the backend goes).
class RawBackend {
 public:
  RawBackend(const std::string& netns, std::string answer, bool hold = false)
      : answer_(std::move(answer)) {
    RunInNetns(Netns::Open(netns), [&] {
      fd_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      CheckSys(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), "bind");
      CheckSys(::listen(fd_.get(), 16), "listen");
      socklen_t len = sizeof a;
      ::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&a), &len);
      port_ = ntohs(a.sin_port);
    });
    thread_ = std::thread([this, hold] {
      while (true) {
        UniqueFd c(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!c.valid()) return;
        std::string got;
        char buf[4096];
        while (got.find("\r\n\r\n") == std::string::npos) {
          ssize_t n = ::recv(c.get(), buf, sizeof buf, 0);
          if (n <= 0) break;
          got.append(buf, static_cast<size_t>(n));
        }
        ::send(c.get(), answer_.data(), answer_.size(), MSG_NOSIGNAL);
        if (hold) held_.push_back(std::move(c));
      }
    });
  }
  ~RawBackend() {
    ::shutdown(fd_.get(), SHUT_RDWR);
    thread_.join();
  }
  IngressEndpoint ep() const { return {"127.0.0.1", port_}; }

 private:
  std::string answer_;
  UniqueFd fd_;
  uint16_t port_ = 0;
  std::vector<UniqueFd> held_;  // the thread's own
  std::thread thread_;
};

struct TlsResult {
  std::string error;  // empty when the handshake (and verification) passed
  std::string subject_cn;
  std::string response;
};

// A TLS client from inside the namespace: SNI `sni`, verifying against
// `ca_pem` (when given) for `sni`.
TlsResult TlsGet(const std::string& netns, uint16_t port, const std::string& sni,
                 const std::string& ca_pem, const std::string& request) {
  TlsResult out;
  UniqueFd fd = Connect(netns, port);
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()),
                                                        SSL_CTX_free);
  if (!ca_pem.empty()) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(ca_pem.data(), ca_pem.size()),
                                                  BIO_free);
    X509* ca = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx.get()), ca);
    X509_free(ca);
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  }
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), SSL_free);
  SSL_set_fd(ssl.get(), fd.get());
  if (!sni.empty()) {
    SSL_set_tlsext_host_name(ssl.get(), sni.c_str());
    if (!ca_pem.empty()) SSL_set1_host(ssl.get(), sni.c_str());
  }
  if (SSL_connect(ssl.get()) != 1) {
    char buf[256];
    ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
    out.error = buf;
    ERR_clear_error();
    return out;
  }
  X509* peer = SSL_get1_peer_certificate(ssl.get());
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof cn);
  out.subject_cn = cn;
  X509_free(peer);
  SSL_write(ssl.get(), request.data(), static_cast<int>(request.size()));
  char buf[4096];
  int n;
  while ((n = SSL_read(ssl.get(), buf, sizeof buf)) > 0) out.response.append(buf, n);
  return out;
}

class IngressProxyTest : public KernelTest {
 protected:
  void SetUp() override {
    KernelTest::SetUp();
    if (::testing::Test::IsSkipped()) return;
    netns_.emplace(NamedNetns::Create(Name("-ing", 40)));
    NetlinkSocket::OpenIn(netns_->ns()).SetUp("lo");
  }
  void TearDown() override {
    proxy_.reset();
    backends_.clear();
    netns_.reset();
    KernelTest::TearDown();
  }
  const std::string& ns() const { return netns_->name(); }

  IngressProxy& StartProxy(IngressProxyOptions o = {}) {
    o.netns = ns();
    o.bind = "127.0.0.1";
    o.http_port = o.https_port = o.health_port = 0;
    o.name = "test";
    proxy_ = std::make_unique<IngressProxy>(o);
    proxy_->Start();
    return *proxy_;
  }
  Backend& AddBackend(const std::string& name, int idle_timeout_ms = 90000) {
    backends_.push_back(std::make_unique<Backend>(ns(), name, idle_timeout_ms));
    return *backends_.back();
  }
  // One request on a new connection (closed after), the whole response.
  std::string Get(const std::string& host, const std::string& path, const std::string& extra = "",
                  const std::string& src = "") {
    UniqueFd fd = Connect(ns(), proxy_->ports().http, src);
    Send(fd.get(), "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n" + extra +
                       "Connection: close\r\n\r\n");
    return ReadResponse(fd.get());
  }

  std::optional<NamedNetns> netns_;
  std::vector<std::unique_ptr<Backend>> backends_;
  std::unique_ptr<IngressProxy> proxy_;
};

TEST_F(IngressProxyTest, RoutesByHostAndPath) {
  Backend& a = AddBackend("a");
  Backend& b = AddBackend("b");
  Backend& c = AddBackend("c");
  IngressRoutes r;
  r.rules = {
      {"foo.example", {{"/", T::kPrefix, {"a", {a.ep()}}}, {"/b", T::kPrefix, {"b", {b.ep()}}}}},
      {"*.bar.example", {{"/exact", T::kExact, {"c", {c.ep()}}}}}};
  StartProxy().SetRoutes(r);
  EXPECT_EQ(Body(Get("foo.example", "/x")), "a GET /x");
  EXPECT_EQ(Body(Get("foo.example:80", "/b/c?q=1")), "b GET /b/c");
  EXPECT_EQ(Body(Get("foo.example", "/bc")), "a GET /bc");
  EXPECT_EQ(Body(Get("x.bar.example", "/exact")), "c GET /exact");
  std::string missing = Get("x.bar.example", "/exact/no");
  EXPECT_THAT(missing, StartsWith("HTTP/1.1 404 Not Found\r\n"));
  EXPECT_THAT(Body(missing), HasSubstr("<center><h1>404 Not Found</h1></center>"));
  EXPECT_THAT(Get("other.example", "/"), StartsWith("HTTP/1.1 404"));
  r.default_backend = IngressBackend{"default", {c.ep()}};
  proxy_->SetRoutes(r);
  EXPECT_EQ(Body(Get("other.example", "/d")), "c GET /d");
}

TEST_F(IngressProxyTest, SetsForwardedHeadersAsIngressNginx) {
  Backend& a = AddBackend("a");
  IngressRoutes r;
  r.rules = {{"", {{"/", T::kPrefix, {"a", {a.ep()}}}}}};
  IngressProxy& p = StartProxy();
  p.SetRoutes(r);
  std::string h =
      Body(Get("foo.example", "/headers", "X-Forwarded-For: 192.0.2.9\r\n", "127.0.0.5"));
  EXPECT_THAT(h, HasSubstr("X-Forwarded-For: 192.0.2.9, 127.0.0.5\n"));
  EXPECT_THAT(h, HasSubstr("X-Real-IP: 127.0.0.5\n"));
  EXPECT_THAT(h, HasSubstr("X-Forwarded-Proto: http\n"));
  EXPECT_THAT(h, HasSubstr("X-Forwarded-Host: foo.example\n"));
  EXPECT_THAT(h, HasSubstr("X-Forwarded-Port: " + std::to_string(p.ports().http) + "\n"));
  EXPECT_THAT(h, HasSubstr("Host: foo.example\n"));
  EXPECT_THAT(h, HasSubstr("X-Request-ID: "));
  std::string h2 = Body(Get("foo.example", "/headers", "", "127.0.0.6"));
  EXPECT_THAT(h2, HasSubstr("X-Forwarded-For: 127.0.0.6\n"));
}

TEST_F(IngressProxyTest, NoEndpointsIs503RefusedIs502SilentIs504) {
  // A port nothing listens on, and a listener that never answers.
  UniqueFd silent;
  uint16_t silent_port = 0;
  RunInNetns(Netns::Open(ns()), [&] {
    silent.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CheckSys(::bind(silent.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), "bind");
    CheckSys(::listen(silent.get(), 16), "listen");
    socklen_t len = sizeof a;
    ::getsockname(silent.get(), reinterpret_cast<sockaddr*>(&a), &len);
    silent_port = ntohs(a.sin_port);
  });
  IngressRoutes r;
  r.rules = {{"",
              {{"/none", T::kPrefix, {"none", {}}},
               {"/refused", T::kPrefix, {"refused", {{"127.0.0.1", 1}}}},
               {"/silent", T::kPrefix, {"silent", {{"127.0.0.1", silent_port}}}}}}};
  IngressProxyOptions o;
  o.read_timeout = std::chrono::milliseconds(300);
  StartProxy(o).SetRoutes(r);
  std::string none = Get("a", "/none");
  EXPECT_THAT(none, StartsWith("HTTP/1.1 503 Service Temporarily Unavailable\r\n"));
  EXPECT_THAT(Body(none), HasSubstr("503 Service Temporarily Unavailable"));
  std::string refused = Get("a", "/refused");
  EXPECT_THAT(refused, StartsWith("HTTP/1.1 502 Bad Gateway\r\n"));
  EXPECT_THAT(Body(refused), HasSubstr("<h1>502 Bad Gateway</h1>"));
  auto t0 = std::chrono::steady_clock::now();
  std::string slow = Get("a", "/silent");
  EXPECT_THAT(slow, StartsWith("HTTP/1.1 504 Gateway Time-out\r\n"));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
}

TEST_F(IngressProxyTest, GarbageOrNoAnswerFromTheBackendIs502) {
  RawBackend garbage(ns(), "garbage\r\n\r\n");
  RawBackend silent_close(ns(), "");
  RawBackend bad_length(ns(), "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n");
  IngressRoutes r;
  r.rules = {{"",
              {{"/garbage", T::kPrefix, {"g", {garbage.ep()}}},
               {"/close", T::kPrefix, {"c", {silent_close.ep()}}},
               {"/length", T::kPrefix, {"l", {bad_length.ep()}}}}}};
  StartProxy().SetRoutes(r);
  for (std::string path : {"/garbage", "/close", "/length"}) {
    EXPECT_THAT(Get("x", path), StartsWith("HTTP/1.1 502 Bad Gateway\r\n")) << path;
  }
}

TEST_F(IngressProxyTest, ChunkedAndUntilCloseAnswersAreRelayed) {
  RawBackend chunked(ns(),
                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-B: 1\r\n\r\n"
                     "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  RawBackend until_close(ns(), "HTTP/1.1 200 OK\r\nX-B: 2\r\n\r\nuntil-close");
  IngressRoutes r;
  r.rules = {{"",
              {{"/chunked", T::kPrefix, {"c", {chunked.ep()}}},
               {"/close", T::kPrefix, {"u", {until_close.ep()}}}}}};
  IngressProxy& p = StartProxy();
  p.SetRoutes(r);
  std::string c = Get("x", "/chunked");
  EXPECT_THAT(c, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(c, HasSubstr("X-B: 1\r\n"));
  EXPECT_THAT(c, HasSubstr("Transfer-Encoding: chunked\r\n"));
  EXPECT_EQ(Body(c), "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  // HTTP/1.0 has no chunks: the data, then the close.
  UniqueFd c10 = Connect(ns(), p.ports().http);
  Send(c10.get(), "GET /chunked HTTP/1.0\r\nHost: x\r\n\r\n");
  std::string got10 = ReadResponse(c10.get());
  EXPECT_THAT(got10, ::testing::Not(HasSubstr("Transfer-Encoding")));
  EXPECT_THAT(got10, HasSubstr("Connection: close\r\n"));
  EXPECT_EQ(Body(got10), "hello world");
  // HTTP/1.1 clients get a body up to the backend's close re-chunked, and
  // keep their connection.
  UniqueFd fd = Connect(ns(), p.ports().http);
  Send(fd.get(), "GET /close HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string got;
  char buf[4096];
  while (got.find("0\r\n\r\n") == std::string::npos) {
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    ASSERT_GT(n, 0) << got;
    got.append(buf, static_cast<size_t>(n));
  }
  EXPECT_THAT(got, HasSubstr("Connection: keep-alive\r\n"));
  EXPECT_EQ(Body(got), "b\r\nuntil-close\r\n0\r\n\r\n");
  // HTTP/1.0 ones get it as it came, and the connection closes after.
  UniqueFd old = Connect(ns(), p.ports().http);
  Send(old.get(), "GET /close HTTP/1.0\r\nHost: x\r\n\r\n");
  std::string raw = ReadResponse(old.get());
  EXPECT_THAT(raw, HasSubstr("Connection: close\r\n"));
  EXPECT_EQ(Body(raw), "until-close");
}

TEST_F(IngressProxyTest, HeadAnd204AnswersHaveNoBody) {
  RawBackend head(ns(), "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
  RawBackend empty(ns(), "HTTP/1.1 204 No Content\r\n\r\n");
  IngressRoutes r;
  r.rules = {
      {"",
       {{"/head", T::kPrefix, {"h", {head.ep()}}}, {"/empty", T::kPrefix, {"e", {empty.ep()}}}}}};
  IngressProxy& p = StartProxy();
  p.SetRoutes(r);
  UniqueFd fd = Connect(ns(), p.ports().http);
  Send(fd.get(), "HEAD /head HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string got;
  char buf[4096];
  while (got.find("\r\n\r\n") == std::string::npos) {
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    ASSERT_GT(n, 0);
    got.append(buf, static_cast<size_t>(n));
  }
  EXPECT_THAT(got, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(got, HasSubstr("Content-Length: 5\r\n"));
  EXPECT_THAT(got, HasSubstr("Connection: keep-alive\r\n"));
  EXPECT_EQ(got.size(), got.find("\r\n\r\n") + 4);  // no body
  // The same connection goes on: the HEAD's length had no body to wait for.
  Send(fd.get(), "GET /empty HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::string next = ReadResponse(fd.get());
  EXPECT_THAT(next, HasSubstr("HTTP/1.1 204 No Content\r\n"));
}

TEST_F(IngressProxyTest, ClosingClientsHearTheEndAtOnce) {
  Backend& a = AddBackend("a");
  IngressRoutes r;
  r.rules = {{"", {{"/", T::kPrefix, {"svc", {a.ep()}}}}}};
  StartProxy().SetRoutes(r);
  for (int i = 0; i < 5; ++i) {
    UniqueFd fd = Connect(ns(), proxy_->ports().http);
    Send(fd.get(), "GET / HTTP/1.0\r\nHost: x\r\n\r\n");
    auto t0 = std::chrono::steady_clock::now();
    std::string got;
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd.get(), buf, sizeof buf, 0)) > 0) got.append(buf, static_cast<size_t>(n));
    EXPECT_EQ(n, 0);  // EOF, not the receive timeout
    EXPECT_EQ(Body(got), "a GET /");
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(500));
  }
}

TEST_F(IngressProxyTest, ASlowHeadIs408AndAnIdleConnectionCloses) {
  IngressProxyOptions o;
  o.header_timeout = std::chrono::milliseconds(200);
  o.idle_timeout = std::chrono::milliseconds(200);
  IngressProxy& p = StartProxy(o);
  UniqueFd slow = Connect(ns(), p.ports().http);
  Send(slow.get(), "GET / HTTP/1.1\r\nHost: x\r\n");  // never finished
  EXPECT_THAT(ReadResponse(slow.get()), StartsWith("HTTP/1.1 408 "));
  UniqueFd idle = Connect(ns(), p.ports().http);
  char c;
  EXPECT_EQ(::recv(idle.get(), &c, 1, 0), 0);  // closed without a word
  EXPECT_TRUE(Eventually([&] { return p.open_connections() == 0; }));
}

TEST_F(IngressProxyTest, ConnectionsBeyondTheLimitAreClosed) {
  IngressProxyOptions o;
  o.max_connections = 2;
  IngressProxy& p = StartProxy(o);
  UniqueFd a = Connect(ns(), p.ports().http), b = Connect(ns(), p.ports().http);
  ASSERT_TRUE(Eventually([&] { return p.open_connections() == 2; }));
  UniqueFd c = Connect(ns(), p.ports().http);
  char ch;
  EXPECT_EQ(::recv(c.get(), &ch, 1, 0), 0);
  a.reset();
  ASSERT_TRUE(Eventually([&] { return p.open_connections() == 1; }));
  UniqueFd d = Connect(ns(), p.ports().health);  // room again
  Send(d.get(), "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(ReadResponse(d.get()), StartsWith("HTTP/1.1 503 "));  // answered: not closed
}

TEST_F(IngressProxyTest, FailedEndpointFallsToTheNextOne) {
  Backend& a = AddBackend("a");
  IngressRoutes r;
  r.rules = {{"", {{"/", T::kPrefix, {"svc", {{"127.0.0.1", 1}, a.ep()}}}}}};
  StartProxy().SetRoutes(r);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(Body(Get("x", "/")), "a GET /");
}

TEST_F(IngressProxyTest, RoundRobinOverEndpoints) {
  Backend& a = AddBackend("a");
  Backend& b = AddBackend("b");
  IngressRoutes r;
  r.rules = {{"", {{"/", T::kPrefix, {"svc", {a.ep(), b.ep()}}}}}};
  StartProxy().SetRoutes(r);
  std::map<std::string, int> seen;
  for (int i = 0; i < 6; ++i) seen[Body(Get("x", "/"))]++;
  EXPECT_EQ(seen["a GET /"], 3);
  EXPECT_EQ(seen["b GET /"], 3);
}

TEST_F(IngressProxyTest, KeepAliveSeesRouteChangesAtOnce) {
  Backend& a = AddBackend("a");
  Backend& b = AddBackend("b");
  IngressRoutes r;
  r.rules = {{"", {{"/", T::kPrefix, {"svc", {a.ep()}}}}}};
  IngressProxy& p = StartProxy();
  p.SetRoutes(r);
  UniqueFd fd = Connect(ns(), p.ports().http);
  Send(fd.get(), "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string first = ReadResponse(fd.get());
  EXPECT_THAT(first, HasSubstr("Connection: keep-alive\r\n"));
  EXPECT_EQ(Body(first), "a GET /1");
  r.rules[0].paths[0].backend.endpoints = {b.ep()};
  p.SetRoutes(r);
  Send(fd.get(), "GET /2 HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(Body(ReadResponse(fd.get())), "b GET /2");  // same connection, new route
  EXPECT_EQ(p.open_connections(), 1u);
}

TEST_F(IngressProxyTest, BackendConnectionsAreReused) {
  Backend& a = AddBackend("a");
  IngressRoutes r;
  r.rules = {{"", {{"/", T::kPrefix, {"svc", {a.ep()}}}}}};
  StartProxy().SetRoutes(r);
  std::string first = Body(Get("x", "/peer"));
  ASSERT_THAT(first, StartsWith("127.0.0.1:"));
  // Back in the pool once the answer went out.
  ASSERT_TRUE(Eventually([&] { return proxy_->idle_backend_connections() == 1; }));
  EXPECT_EQ(Body(Get("x", "/peer")), first);  // another client, the same backend connection
  EXPECT_EQ(a.open_connections(), 1u);
  ASSERT_TRUE(Eventually([&] { return proxy_->idle_backend_connections() == 1; }));
  // Routes without that endpoint: its idle connection goes.
  proxy_->SetRoutes(IngressRoutes{});
  EXPECT_EQ(proxy_->idle_backend_connections(), 0u);
  EXPECT_TRUE(Eventually([&] { return a.open_connections() == 0; }));
}

TEST_F(IngressProxyTest, AReusedConnectionTheBackendClosedIsRetriedOnANewOne) {
  Backend& a = AddBackend("a", /*idle_timeout_ms=*/50);
  IngressRoutes r;
  r.rules = {{"", {{"/", T::kPrefix, {"svc", {a.ep()}}}}}};
  StartProxy().SetRoutes(r);
  std::string first = Body(Get("x", "/peer"));
  ASSERT_THAT(first, StartsWith("127.0.0.1:"));
  ASSERT_TRUE(Eventually([&] { return proxy_->idle_backend_connections() == 1; }));
  ASSERT_TRUE(Eventually([&] { return a.open_connections() == 0; }));  // closed while idle
  std::string second = Get("x", "/peer");
  EXPECT_THAT(second, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_NE(Body(second), first);
}

TEST_F(IngressProxyTest, AnIdleConnectionTheBackendClosesLeavesThePoolAtOnce) {
  Backend& a = AddBackend("a", /*idle_timeout_ms=*/50);
  IngressRoutes r;
  r.rules = {{"", {{"/", T::kPrefix, {"svc", {a.ep()}}}}}};
  StartProxy().SetRoutes(r);
  ASSERT_THAT(Get("x", "/peer"), StartsWith("HTTP/1.1 200 OK\r\n"));
  ASSERT_TRUE(Eventually([&] { return proxy_->idle_backend_connections() == 1; }));
  // The backend closes it while idle: the proxy hears so, no request needed.
  ASSERT_TRUE(Eventually([&] { return a.open_connections() == 0; }));
  EXPECT_TRUE(Eventually([&] { return proxy_->idle_backend_connections() == 0; }));
  // So a POST, which is not sent twice (as nginx, a body is not replayed
  // on another connection), goes on a new connection and gets its answer.
  UniqueFd fd = Connect(ns(), proxy_->ports().http);
  Send(fd.get(), "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
  std::string got = ReadResponse(fd.get());
  EXPECT_THAT(got, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_EQ(Body(got), "a POST /p len=5");
}

TEST_F(IngressProxyTest, BackendAnswersThatEndTheConnectionAreNotPooled) {
  // Each keeps its connection open after answering: only the proxy's
  // reading of the answer decides whether it goes back to the pool.
  RawBackend keeps(ns(), "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", /*hold=*/true);
  RawBackend closes(ns(), "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    /*hold=*/true);
  RawBackend http10(ns(), "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", /*hold=*/true);
  IngressRoutes r;
  r.rules = {{"keeps", {{"/", T::kPrefix, {"keeps", {keeps.ep()}}}}},
             {"closes", {{"/", T::kPrefix, {"closes", {closes.ep()}}}}},
             {"http10", {{"/", T::kPrefix, {"http10", {http10.ep()}}}}}};
  StartProxy().SetRoutes(r);
  for (const std::string host : {"closes", "http10"}) {
    std::string got = Get(host, "/");
    EXPECT_THAT(got, StartsWith("HTTP/1.1 200 OK\r\n")) << host;
    EXPECT_EQ(Body(got), "ok") << host;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(proxy_->idle_backend_connections(), 0u);
  EXPECT_EQ(Body(Get("keeps", "/")), "ok");
  EXPECT_TRUE(Eventually([&] { return proxy_->idle_backend_connections() == 1; }));
}

TEST_F(IngressProxyTest, StreamsChunkedAndSizedBodies) {
  Backend& a = AddBackend("a");
  IngressRoutes r;
  r.rules = {{"", {{"/", T::kPrefix, {"svc", {a.ep()}}}}}};
  IngressProxy& p = StartProxy();
  p.SetRoutes(r);
  UniqueFd fd = Connect(ns(), p.ports().http);
  Send(fd.get(),
       "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
  Send(fd.get(), "6\r\n world\r\n0\r\n\r\n");
  EXPECT_EQ(Body(ReadResponse(fd.get())), "a POST /up len=11");
  std::string big(100000, 'x');
  Send(fd.get(),
       "POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
       "Expect: 100-continue\r\n\r\n");
  char buf[64];
  ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
  ASSERT_GT(n, 0);
  EXPECT_THAT(std::string(buf, n), StartsWith("HTTP/1.1 100 Continue\r\n\r\n"));
  Send(fd.get(), big);
  EXPECT_EQ(Body(ReadResponse(fd.get())), "a POST /big len=100000");
}

TEST_F(IngressProxyTest, BadRequestsAre400) {
  IngressProxy& p = StartProxy();
  for (std::string bad :
       {"NONSENSE\r\n\r\n", "GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n"}) {
    UniqueFd fd = Connect(ns(), p.ports().http);
    Send(fd.get(), bad);
    EXPECT_THAT(ReadResponse(fd.get()), StartsWith("HTTP/1.1 400 Bad Request\r\n")) << bad;
  }
  UniqueFd fd = Connect(ns(), p.ports().http);
  Send(fd.get(), "GET / HTTP/1.1\r\nX: " + std::string(70000, 'a') + "\r\n\r\n");
  EXPECT_THAT(ReadResponse(fd.get()), StartsWith("HTTP/1.1 431"));
}

TEST_F(IngressProxyTest, UpgradePassesRawBytesBothWays) {
  Backend& a = AddBackend("a");
  IngressRoutes r;
  r.rules = {{"", {{"/", T::kPrefix, {"svc", {a.ep()}}}}}};
  IngressProxy& p = StartProxy();
  p.SetRoutes(r);
  UniqueFd fd = Connect(ns(), p.ports().http);
  Send(fd.get(),
       "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
  std::string got;
  char buf[512];
  while (got.find("\r\n\r\n") == std::string::npos) {
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    ASSERT_GT(n, 0) << got;
    got.append(buf, n);
  }
  EXPECT_THAT(got, StartsWith("HTTP/1.1 101 Switching Protocols\r\n"));
  EXPECT_THAT(got, HasSubstr("Upgrade: websocket\r\n"));
  for (std::string msg : {"ping", "\x81\x02hi"}) {
    Send(fd.get(), msg);
    std::string echo;
    while (echo.size() < 5 + msg.size()) {
      ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
      ASSERT_GT(n, 0);
      echo.append(buf, n);
    }
    EXPECT_EQ(echo, "echo:" + msg);
  }
  fd.reset();  // the client goes: the proxy's connection ends too
  EXPECT_TRUE(Eventually([&] { return p.open_connections() == 0; }));
}

TEST_F(IngressProxyTest, SslRedirectPathsGet308OverHttpOnly) {
  Backend& a = AddBackend("a");
  IngressRoutes r;
  r.rules = {{"secure.example", {{"/", T::kPrefix, {"svc", {a.ep()}}, /*ssl_redirect=*/true}}},
             {"plain.example", {{"/", T::kPrefix, {"svc", {a.ep()}}}}}};
  IngressProxy& p = StartProxy();
  p.SetRoutes(r);
  std::string got = Get("Secure.example:80", "/x?y=1");
  EXPECT_THAT(got, StartsWith("HTTP/1.1 308 Permanent Redirect\r\n"));
  EXPECT_THAT(got, HasSubstr("Location: https://secure.example/x?y=1\r\n"));
  EXPECT_EQ(Body(Get("plain.example", "/x")), "a GET /x");
  TlsResult tls = TlsGet(ns(), p.ports().https, "secure.example", "",
                         "GET /x HTTP/1.1\r\nHost: secure.example\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(tls.error, "");
  EXPECT_THAT(tls.response, StartsWith("HTTP/1.1 200 OK\r\n"));
}

TEST_F(IngressProxyTest, HealthzAnswersOnceItHasRoutes) {
  IngressProxy& p = StartProxy();
  UniqueFd fd = Connect(ns(), p.ports().health);
  Send(fd.get(), "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(ReadResponse(fd.get()), StartsWith("HTTP/1.1 503 "));
  p.SetRoutes(IngressRoutes{});  // no rules, but synced
  Send(fd.get(), "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string got = ReadResponse(fd.get());
  EXPECT_THAT(got, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_EQ(Body(got), "ok");
  Send(fd.get(), "GET /other HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(ReadResponse(fd.get()), StartsWith("HTTP/1.1 404"));
}

TEST_F(IngressProxyTest, StartInAMissingNamespaceThrows) {
  IngressProxyOptions o;
  o.netns = prefix() + "-missing";
  IngressProxy p(o);
  EXPECT_THROW(p.Start(), Error);
}

TEST_F(IngressProxyTest, StopClosesOpenConnections) {
  IngressProxy& p = StartProxy();
  UniqueFd fd = Connect(ns(), p.ports().http);
  ASSERT_TRUE(Eventually([&] { return p.open_connections() == 1; }));
  p.Stop();
  char c;
  EXPECT_EQ(::recv(fd.get(), &c, 1, 0), 0);
}

// ---- the event loops --------------------------------------------------------------------

TEST_F(IngressProxyTest, KeepAliveClientsShareOneKeptAliveBackendConnection) {
  Backend& a = AddBackend("a");
  IngressRoutes r;
  r.rules = {{"", {{"/", T::kPrefix, {"svc", {a.ep()}}}}}};
  IngressProxy& p = StartProxy();
  p.SetRoutes(r);
  // Clients one after the other (so on every loop), 25 requests each on
  // their own connection: one backend connection carries them all.
  std::set<std::string> peers;
  for (int c = 0; c < 4; ++c) {
    UniqueFd fd = Connect(ns(), p.ports().http);
    for (int i = 0; i < 25; ++i) {
      Send(fd.get(), "GET /peer HTTP/1.1\r\nHost: x\r\n\r\n");
      std::string got = ReadResponse(fd.get());
      ASSERT_THAT(got, StartsWith("HTTP/1.1 200 OK\r\n"));
      EXPECT_THAT(got, HasSubstr("Connection: keep-alive\r\n"));
      peers.insert(Body(got));
    }
  }
  EXPECT_EQ(peers.size(), 1u);
  EXPECT_EQ(a.open_connections(), 1u);
  EXPECT_TRUE(Eventually([&] { return p.idle_backend_connections() == 1; }));
  EXPECT_EQ(p.requests(), 100u);
}

TEST_F(IngressProxyTest, ManyConcurrentConnections) {
  Backend& a = AddBackend("a");
  IngressRoutes r;
  r.rules = {{"", {{"/", T::kPrefix, {"svc", {a.ep()}}}}}};
  IngressProxy& p = StartProxy();
  p.SetRoutes(r);
  constexpr size_t kConns = 150;
  std::vector<UniqueFd> fds;
  for (size_t i = 0; i < kConns; ++i) fds.push_back(Connect(ns(), p.ports().http));
  ASSERT_TRUE(Eventually([&] { return p.open_connections() == kConns; }));
  for (int round = 0; round < 3; ++round) {
    // Every client asks before any reads: all requests are in flight at once.
    for (size_t i = 0; i < kConns; ++i) {
      Send(fds[i].get(), "GET /" + std::to_string(i) + " HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    for (size_t i = 0; i < kConns; ++i) {
      EXPECT_EQ(Body(ReadResponse(fds[i].get())), "a GET /" + std::to_string(i)) << i;
    }
  }
  EXPECT_EQ(p.requests(), 3 * kConns);
  fds.clear();
  EXPECT_TRUE(Eventually([&] { return p.open_connections() == 0; }));
}

TEST_F(IngressProxyTest, StalledClientsDoNotHoldOthersUp) {
  // A backend whose answer (8 MB) a client never reads.
  RawBackend big(ns(),
                 "HTTP/1.1 200 OK\r\nContent-Length: 8000000\r\n\r\n" + std::string(8000000, 'x'));
  Backend& a = AddBackend("a");
  IngressRoutes r;
  r.rules = {{"big", {{"/", T::kPrefix, {"big", {big.ep()}}}}},
             {"", {{"/", T::kPrefix, {"svc", {a.ep()}}}}}};
  IngressProxy& p = StartProxy();
  p.SetRoutes(r);
  std::vector<UniqueFd> stalled;
  for (int i = 0; i < 4; ++i) {
    // Half a head; a TLS handshake never begun; a body that stops coming;
    // an answer never read.
    stalled.push_back(Connect(ns(), p.ports().http));
    Send(stalled.back().get(), "GET / HTTP/1.1\r\nHost: x\r\nX-Half: ");
    stalled.push_back(Connect(ns(), p.ports().https));
    stalled.push_back(Connect(ns(), p.ports().http));
    Send(stalled.back().get(), "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nab");
  }
  stalled.push_back(Connect(ns(), p.ports().http));
  Send(stalled.back().get(), "GET / HTTP/1.1\r\nHost: big\r\n\r\n");
  ASSERT_TRUE(Eventually([&] { return p.open_connections() == stalled.size(); }));
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i) EXPECT_EQ(Body(Get("x", "/fast")), "a GET /fast");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  stalled.clear();
  EXPECT_TRUE(Eventually([&] { return p.open_connections() == 0; }));
}

TEST_F(IngressProxyTest, StopEndsUpgradedAndWaitingConnections) {
  Backend& a = AddBackend("a");
  IngressRoutes r;
  r.rules = {{"", {{"/", T::kPrefix, {"svc", {a.ep()}}}}}};
  IngressProxy& p = StartProxy();
  p.SetRoutes(r);
  UniqueFd ws = Connect(ns(), p.ports().http);
  Send(ws.get(),
       "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
  std::string got;
  char buf[512];
  while (got.find("\r\n\r\n") == std::string::npos) {
    ssize_t n = ::recv(ws.get(), buf, sizeof buf, 0);
    ASSERT_GT(n, 0) << got;
    got.append(buf, n);
  }
  ASSERT_THAT(got, StartsWith("HTTP/1.1 101 "));
  UniqueFd half = Connect(ns(), p.ports().http);
  Send(half.get(), "GET / HTTP/1.1\r\n");
  ASSERT_TRUE(Eventually([&] { return p.open_connections() == 2; }));
  auto t0 = std::chrono::steady_clock::now();
  p.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  EXPECT_EQ(::recv(ws.get(), buf, sizeof buf, 0), 0);
  EXPECT_EQ(::recv(half.get(), buf, sizeof buf, 0), 0);
}

// ---- TLS --------------------------------------------------------------------------------

TEST_F(IngressProxyTest, ATlsRecordThatNeverCompletesIsCutOff) {
  IngressProxyOptions o;
  o.header_timeout = std::chrono::milliseconds(200);
  IngressProxy& p = StartProxy(o);
  UniqueFd fd = Connect(ns(), p.ports().https);
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()),
                                                        SSL_CTX_free);
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), SSL_free);
  SSL_set_fd(ssl.get(), fd.get());
  ASSERT_EQ(SSL_connect(ssl.get()), 1);
  ASSERT_TRUE(Eventually([&] { return p.open_connections() == 1; }));
  // The header of an 80-byte application data record, and 3 of its bytes.
  Send(fd.get(), std::string("\x17\x03\x03\x00\x50"
                             "abc",
                             8));
  auto t0 = std::chrono::steady_clock::now();
  // Session tickets may come first; then the end, not the 5 s receive timeout.
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd.get(), buf, sizeof buf, 0)) > 0) {
  }
  EXPECT_TRUE(n == 0 || errno == ECONNRESET) << errno;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(4));
  EXPECT_TRUE(Eventually([&] { return p.open_connections() == 0; }));
}

TEST_F(IngressProxyTest, TlsCertificateChosenBySni) {
  Backend& a = AddBackend("a");
  tls::KeyPair ca = tls::GenerateCa("test-ca");
  tls::KeyPair foo = tls::IssueCertificate(
      ca, {.common_name = "foo.example", .dns_names = {"foo.example"}, .server_auth = true});
  tls::KeyPair wild = tls::IssueCertificate(
      ca, {.common_name = "*.wild.example", .dns_names = {"*.wild.example"}, .server_auth = true});
  IngressRoutes r;
  r.rules = {{"", {{"/", T::kPrefix, {"svc", {a.ep()}}}}}};
  r.certificates = {{{"foo.example"}, foo.cert_pem, foo.key_pem},
                    {{"*.wild.example"}, wild.cert_pem, wild.key_pem},
                    {{"broken.example"}, "not a cert", "not a key"}};
  IngressProxy& p = StartProxy();
  p.SetRoutes(r);
  const std::string req = "GET /headers HTTP/1.1\r\nHost: foo.example\r\nConnection: close\r\n\r\n";
  TlsResult ok = TlsGet(ns(), p.ports().https, "foo.example", ca.cert_pem, req);
  ASSERT_EQ(ok.error, "");
  EXPECT_EQ(ok.subject_cn, "foo.example");
  EXPECT_THAT(ok.response, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(ok.response, HasSubstr("X-Forwarded-Proto: https\n"));
  EXPECT_THAT(ok.response,
              HasSubstr("X-Forwarded-Port: " + std::to_string(p.ports().https) + "\n"));

  TlsResult w = TlsGet(ns(), p.ports().https, "a.wild.example", ca.cert_pem, req);
  EXPECT_EQ(w.error, "");
  EXPECT_EQ(w.subject_cn, "*.wild.example");

  // Unknown names, no SNI and a certificate that does not load: the default.
  for (std::string sni : {"other.example", "", "broken.example"}) {
    TlsResult d = TlsGet(ns(), p.ports().https, sni, "", req);
    EXPECT_EQ(d.error, "") << sni;
    EXPECT_EQ(d.subject_cn, "Kubernetes Ingress Controller Fake Certificate") << sni;
    EXPECT_NE(TlsGet(ns(), p.ports().https, sni.empty() ? "x" : sni, ca.cert_pem, req).error, "")
        << "the default certificate must not verify for " << sni;
  }
  // Plain HTTP on the TLS port is not served.
  UniqueFd fd = Connect(ns(), p.ports().https);
  Send(fd.get(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(ReadResponse(fd.get()), ::testing::Not(HasSubstr("HTTP/1.1 200")));
}

TEST_F(IngressProxyTest, TlsKeepAliveServesSeveralRequests) {
  Backend& a = AddBackend("a");
  IngressRoutes r;
  r.rules = {{"", {{"/", T::kPrefix, {"svc", {a.ep()}}}}}};
  IngressProxy& p = StartProxy();
  p.SetRoutes(r);
  std::string req;
  for (int i = 0; i < 5; ++i) req += "GET /" + std::to_string(i) + " HTTP/1.1\r\nHost: x\r\n\r\n";
  req += "GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  TlsResult got = TlsGet(ns(), p.ports().https, "x", "", req);  // pipelined
  ASSERT_EQ(got.error, "");
  for (int i = 0; i < 5; ++i) EXPECT_THAT(got.response, HasSubstr("a GET /" + std::to_string(i)));
  EXPECT_THAT(got.response, HasSubstr("a GET /last"));
  EXPECT_TRUE(Eventually([&] { return p.open_connections() == 0; }));
}

}  // namespace
}  // namespace kin::netstack
