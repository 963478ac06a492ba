// httpGet and tcpSocket probes against a tiny HTTP server living in a
// network namespace the test creates (its lo carries 192.0.2.1, an address
// that exists nowhere else), so a probe only succeeds when it really
// connects from inside the namespace. Root required.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "base/error.h"
#include "base/fd.h"
#include "base/netns.h"
#include "base/process.h"
#include "base/tls.h"
#include "runtime/probe.h"
#include "testing/kernel_fixture.h"

namespace kin {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

constexpr const char* kPodIp = "192.0.2.1";
constexpr int kHttpPort = 8080;
constexpr int kClosedPort = 8081;
constexpr int kFullBacklogPort = 8082;
constexpr int kHttpsPort = 8443;

UniqueFd ListenIn(const Netns& ns, int port, int backlog) {
  UniqueFd fd;
  RunInNetns(ns, [&] {
    fd = UniqueFd(CheckSys(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket"));
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET, kPodIp, &a.sin_addr);
    CheckSys(::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), "bind");
    CheckSys(::listen(fd.get(), backlog), "listen");
  });
  return fd;
}

// Serves a few fixed paths on one thread; /hang never answers.
class TestServer {
 public:
  explicit TestServer(UniqueFd listener) : listener_(std::move(listener)) {
    stop_ = UniqueFd(::eventfd(0, EFD_CLOEXEC));
    thread_ = std::thread([this] { Serve(); });
  }
  ~TestServer() {
    uint64_t one = 1;
    (void)!::write(stop_.get(), &one, sizeof one);
    thread_.join();
  }
  std::string last_request() {
    std::lock_guard<std::mutex> l(mu_);
    return last_request_;
  }
  int requests() const { return requests_.load(); }

 private:
  void Serve() {
    std::vector<UniqueFd> hanging;
    for (;;) {
      pollfd p[2] = {{listener_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
      if (::poll(p, 2, -1) < 0) continue;
      if (p[1].revents) return;
      UniqueFd c(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!c) continue;
      std::string req;
      char buf[4096];
      while (req.find("\r\n\r\n") == std::string::npos) {
        pollfd q[2] = {{c.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
        ::poll(q, 2, 5000);
        if (q[1].revents) return;
        ssize_t n = ::recv(c.get(), buf, sizeof buf, 0);
        if (n <= 0) break;
        req.append(buf, static_cast<size_t>(n));
      }
      if (req.rfind("GET ", 0) != 0) continue;  // a tcpSocket probe: connect only
      {
        std::lock_guard<std::mutex> l(mu_);
        last_request_ = req;
      }
      ++requests_;
      std::string path = req.substr(4, req.find(' ', 4) - 4);
      std::string resp;
      if (path == "/healthz") {
        resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
      } else if (path == "/fail") {
        resp = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nbad!";
      } else if (path == "/redirect") {
        resp = "HTTP/1.1 302 Found\r\nLocation: /healthz\r\nContent-Length: 0\r\n\r\n";
      } else if (path == "/redirect-fail") {
        resp = "HTTP/1.1 301 Moved\r\nLocation: http://192.0.2.1:8080/fail\r\n\r\n";
      } else if (path == "/away") {
        resp =
            "HTTP/1.1 302 Found\r\nLocation: http://198.51.100.7/x\r\nContent-Length: "
            "5\r\n\r\nmoved";
      } else if (path == "/loop") {
        resp = "HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n";
      } else if (path == "/chunked") {
        resp =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
      } else if (path == "/big") {
        resp = "HTTP/1.1 200 OK\r\n\r\n" + std::string(100000, 'z');
      } else if (path == "/hang") {
        hanging.push_back(std::move(c));
        continue;
      } else {
        resp = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
      }
      (void)::send(c.get(), resp.data(), resp.size(), MSG_NOSIGNAL);
      ::shutdown(c.get(), SHUT_WR);
    }
  }

  UniqueFd listener_;
  UniqueFd stop_;
  std::mutex mu_;
  std::string last_request_;
  std::atomic<int> requests_{0};
  std::thread thread_;
};

class ProbeKernelTest : public kin::testing::KernelTest {
 protected:
  void SetUp() override {
    KernelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    netns_.emplace(NamedNetns::Create(Name("pr")));
    RunOk({"ip", "-n", netns_->name(), "link", "set", "lo", "up"});
    RunOk({"ip", "-n", netns_->name(), "addr", "add", std::string(kPodIp) + "/32", "dev", "lo"});
    server_.emplace(ListenIn(netns_->ns(), kHttpPort, 16));
    target_.netns_path = std::string(kNetnsRunDir) + "/" + netns_->name();
    target_.pod_ip = kPodIp;
  }
  void TearDown() override {
    server_.reset();
    netns_.reset();
    KernelTest::TearDown();
  }
  static void RunOk(const std::vector<std::string>& argv) {
    CommandResult r = RunCommand(argv, seconds(10));
    ASSERT_EQ(r.status.code, 0) << r.err;
  }
  ProbeOutcome Http(const std::string& path, Json extra = Json::object()) {
    Json h = {{"port", kHttpPort}, {"path", path}};
    h.update(extra);
    return RunProbe(Json{{"httpGet", h}}, container_, target_);
  }

  std::optional<NamedNetns> netns_;
  std::optional<TestServer> server_;
  ProbeTarget target_;
  Json container_ = {{"name", "app"},
                     {"ports", {{{"name", "http"}, {"containerPort", kHttpPort}}}}};
};

TEST_F(ProbeKernelTest, HttpGetSucceedsOn200FromInsideTheNamespace) {
  auto out = RunProbe(Json{{"httpGet",
                            {{"port", "http"},
                             {"path", "/healthz"},
                             {"httpHeaders", {{{"name", "X-Custom"}, {"value", "yes"}}}}}}},
                      container_, target_);
  EXPECT_TRUE(out.success) << out.message;
  EXPECT_EQ(out.message, "ok");
  std::string req = server_->last_request();
  EXPECT_EQ(req.rfind("GET /healthz HTTP/1.1\r\n", 0), 0u) << req;
  EXPECT_NE(req.find("\r\nHost: 192.0.2.1:8080\r\n"), std::string::npos) << req;
  EXPECT_NE(req.find("\r\nUser-Agent: kube-probe/1.31\r\n"), std::string::npos) << req;
  EXPECT_NE(req.find("\r\nX-Custom: yes\r\n"), std::string::npos) << req;
}

TEST_F(ProbeKernelTest, HttpGetReadsChunkedAndLimitsTheBody) {
  auto out = Http("/chunked");
  EXPECT_TRUE(out.success) << out.message;
  EXPECT_EQ(out.message, "abcde");
  out = Http("/big");
  EXPECT_TRUE(out.success);
  EXPECT_EQ(out.message.size(), 10u * 1024);
}

TEST_F(ProbeKernelTest, HttpGetFailsOnErrorStatus) {
  auto out = Http("/fail");
  EXPECT_FALSE(out.success);
  EXPECT_EQ(out.message, "HTTP probe failed with statuscode: 500");
  out = Http("/nothing-here");
  EXPECT_FALSE(out.success);
  EXPECT_EQ(out.message, "HTTP probe failed with statuscode: 404");
}

TEST_F(ProbeKernelTest, HttpGetConnectionRefusedReadsLikeKubelet) {
  auto out = RunProbe(Json{{"httpGet", {{"port", kClosedPort}, {"path", "/healthz"}}}}, container_,
                      target_);
  EXPECT_FALSE(out.success);
  EXPECT_EQ(out.message,
            "Get \"http://192.0.2.1:8081/healthz\": dial tcp 192.0.2.1:8081: connect: connection "
            "refused");
}

TEST_F(ProbeKernelTest, HttpGetFollowsRedirectsOnTheSameHostOnly) {
  auto out = Http("/redirect");
  EXPECT_TRUE(out.success) << out.message;
  EXPECT_EQ(out.message, "ok");
  EXPECT_EQ(server_->last_request().rfind("GET /healthz ", 0), 0u);

  out = Http("/redirect-fail");
  EXPECT_FALSE(out.success);
  EXPECT_EQ(out.message, "HTTP probe failed with statuscode: 500");

  int before = server_->requests();
  out = Http("/away");  // not followed: nothing is sent to 198.51.100.7
  EXPECT_TRUE(out.success);
  EXPECT_EQ(out.message, "Probe terminated redirects, Response body: moved");
  EXPECT_EQ(server_->requests(), before + 1);

  out = Http("/loop");
  EXPECT_FALSE(out.success);
  EXPECT_EQ(out.message, "Get \"http://192.0.2.1:8080/loop\": stopped after 10 redirects");
}

TEST_F(ProbeKernelTest, HttpGetTimesOutWhenTheServerNeverAnswers) {
  auto start = Clock::now();
  auto out = Http("/hang");
  auto took = Clock::now() - start;
  EXPECT_FALSE(out.success);
  EXPECT_EQ(
      out.message,
      "Get \"http://192.0.2.1:8080/hang\": context deadline exceeded (Client.Timeout exceeded "
      "while awaiting headers)");
  EXPECT_GE(took, milliseconds(950));
  EXPECT_LT(took, milliseconds(1500));
}

// Answers one HTTPS request with 200 using a certificate nobody trusts.
TEST_F(ProbeKernelTest, HttpsGetSkipsCertificateVerification) {
  tls::KeyPair ca = tls::GenerateCa("probe-test-ca");
  tls::KeyPair leaf = tls::IssueCertificate(
      ca, {.common_name = "pod", .ip_addresses = {kPodIp}, .server_auth = true});
  UniqueFd listener = ListenIn(netns_->ns(), kHttpsPort, 4);
  std::atomic<bool> stop{false};
  std::string seen_request;
  std::thread server([&] {
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    BIO* cb = BIO_new_mem_buf(leaf.cert_pem.data(), static_cast<int>(leaf.cert_pem.size()));
    X509* cert = PEM_read_bio_X509(cb, nullptr, nullptr, nullptr);
    BIO* kb = BIO_new_mem_buf(leaf.key_pem.data(), static_cast<int>(leaf.key_pem.size()));
    EVP_PKEY* key = PEM_read_bio_PrivateKey(kb, nullptr, nullptr, nullptr);
    SSL_CTX_use_certificate(ctx, cert);
    SSL_CTX_use_PrivateKey(ctx, key);
    pollfd p{listener.get(), POLLIN, 0};
    while (!stop && ::poll(&p, 1, 100) == 0) {
    }
    if (!stop) {
      UniqueFd c(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
      timeval tv{5, 0};
      ::setsockopt(c.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      SSL* ssl = SSL_new(ctx);
      SSL_set_fd(ssl, c.get());
      if (SSL_accept(ssl) == 1) {
        char buf[4096];
        int n = SSL_read(ssl, buf, sizeof buf);
        if (n > 0) seen_request.assign(buf, static_cast<size_t>(n));
        std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecure";
        SSL_write(ssl, resp.data(), static_cast<int>(resp.size()));
        SSL_shutdown(ssl);
      }
      SSL_free(ssl);
    }
    X509_free(cert);
    EVP_PKEY_free(key);
    BIO_free(cb);
    BIO_free(kb);
    SSL_CTX_free(ctx);
  });
  auto out =
      RunProbe(Json{{"httpGet", {{"port", kHttpsPort}, {"path", "/tls"}, {"scheme", "HTTPS"}}},
                    {"timeoutSeconds", 3}},
               container_, target_);
  stop = true;
  server.join();
  EXPECT_TRUE(out.success) << out.message;
  EXPECT_EQ(out.message, "secure");
  EXPECT_EQ(seen_request.rfind("GET /tls HTTP/1.1\r\n", 0), 0u) << seen_request;
}

TEST_F(ProbeKernelTest, TcpSocketSucceedsOrIsRefused) {
  auto out = RunProbe(Json{{"tcpSocket", {{"port", "http"}}}}, container_, target_);
  EXPECT_TRUE(out.success) << out.message;
  out = RunProbe(Json{{"tcpSocket", {{"port", kClosedPort}}}}, container_, target_);
  EXPECT_FALSE(out.success);
  EXPECT_EQ(out.message, "dial tcp 192.0.2.1:8081: connect: connection refused");
}

TEST_F(ProbeKernelTest, TcpSocketTimesOutWhenSynsAreDropped) {
  // A listener that never accepts, its queue filled: further SYNs are dropped.
  UniqueFd listener = ListenIn(netns_->ns(), kFullBacklogPort, 0);
  std::vector<UniqueFd> fillers;
  RunInNetns(netns_->ns(), [&] {
    for (int i = 0; i < 3; ++i) {
      UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(kFullBacklogPort);
      ::inet_pton(AF_INET, kPodIp, &a.sin_addr);
      ::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
      fillers.push_back(std::move(s));
    }
  });
  auto start = Clock::now();
  auto out = RunProbe(Json{{"tcpSocket", {{"port", kFullBacklogPort}}}, {"timeoutSeconds", 1}},
                      container_, target_);
  auto took = Clock::now() - start;
  EXPECT_FALSE(out.success);
  EXPECT_EQ(out.message, "dial tcp 192.0.2.1:8082: i/o timeout");
  EXPECT_GE(took, milliseconds(950));
  EXPECT_LT(took, milliseconds(1500));
}

TEST_F(ProbeKernelTest, ExecRunsThroughTheTargetsExecFunction) {
  // A realistic exec: the command runs inside the namespace.
  target_.exec = [&](const std::vector<std::string>& argv, milliseconds timeout) {
    std::vector<std::string> full = {"ip", "netns", "exec", netns_->name()};
    full.insert(full.end(), argv.begin(), argv.end());
    CommandResult r = RunCommand(full, timeout);
    return ExecResult{r.status.code, r.out + r.err};
  };
  auto out = RunProbe(Json{{"exec", {{"command", {"ip", "-o", "addr", "show", "dev", "lo"}}}}},
                      container_, target_);
  EXPECT_TRUE(out.success);
  EXPECT_NE(out.message.find("192.0.2.1"), std::string::npos) << out.message;
  out = RunProbe(Json{{"exec", {{"command", {"sh", "-c", "echo unhealthy; exit 3"}}}}}, container_,
                 target_);
  EXPECT_FALSE(out.success);
  EXPECT_EQ(out.message, "unhealthy\n");
}

}  // namespace
}  // namespace kin
