#include "base/tls.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <thread>

#include "base/error.h"
#include "base/http_client.h"
#include "base/http_server.h"
#include "base/process.h"
#include "base/yaml.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin::tls {
namespace {

using http::ClientOptions;
using http::HttpClient;
using http::Request;
using http::Response;
using kin::testing::Eventually;
using kin::testing::TempDir;

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

PkiOptions ClusterOptions() {
  PkiOptions o;
  o.server_ips = {"10.96.0.1"};
  o.server_dns_names = KubernetesServiceDnsNames();
  return o;
}

bool Has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

TEST(PkiTest, CreatesCaServerAndAdminCertificates) {
  TempDir tmp;
  std::string dir = tmp.File("pki");
  Pki pki = EnsurePki(dir, ClusterOptions());

  EXPECT_EQ(ModeOf(dir), 0700u);
  for (const PkiFile* f : {&pki.ca, &pki.apiserver, &pki.admin}) {
    EXPECT_EQ(ModeOf(f->key_file), 0600u) << f->key_file;
    EXPECT_EQ(ModeOf(f->cert_file), 0644u) << f->cert_file;
    EXPECT_EQ(kin::testing::ReadFile(f->cert_file), f->pem.cert_pem);
    EXPECT_EQ(kin::testing::ReadFile(f->key_file), f->pem.key_pem);
    EXPECT_NE(f->pem.key_pem.find("-----BEGIN PRIVATE KEY-----"), std::string::npos);
    EXPECT_TRUE(KeyMatchesCertificate(f->pem.cert_pem, f->pem.key_pem));
  }
  EXPECT_EQ(pki.written.size(), 6u);

  CertInfo ca = InspectCertificate(pki.ca.pem.cert_pem);
  EXPECT_TRUE(ca.is_ca);
  EXPECT_EQ(ca.common_name, "kubernetes");
  auto years = std::chrono::duration_cast<std::chrono::hours>(ca.not_after - ca.not_before);
  EXPECT_GE(years.count(), 24 * 3649);

  CertInfo server = InspectCertificate(pki.apiserver.pem.cert_pem);
  EXPECT_FALSE(server.is_ca);
  EXPECT_TRUE(server.server_auth);
  EXPECT_FALSE(server.client_auth);
  for (const char* ip : {"127.0.0.1", "10.96.0.1"}) EXPECT_TRUE(Has(server.ip_addresses, ip)) << ip;
  for (const char* dns : {"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                          "kubernetes.default.svc.cluster.local"}) {
    EXPECT_TRUE(Has(server.dns_names, dns)) << dns;
  }
  EXPECT_GT(server.not_after, std::chrono::system_clock::now() + std::chrono::hours(24 * 364));

  CertInfo admin = InspectCertificate(pki.admin.pem.cert_pem);
  EXPECT_EQ(admin.common_name, "kubernetes-admin");
  EXPECT_EQ(admin.organizations, std::vector<std::string>{"system:masters"});
  EXPECT_TRUE(admin.client_auth);
  EXPECT_FALSE(admin.server_auth);

  EXPECT_EQ(VerifyCertificate(pki.ca.pem.cert_pem, pki.apiserver.pem.cert_pem), "");
  EXPECT_EQ(VerifyCertificate(pki.ca.pem.cert_pem, pki.admin.pem.cert_pem), "");
}

TEST(PkiTest, SecondCallLoadsTheSameFiles) {
  TempDir tmp;
  Pki first = EnsurePki(tmp.File("pki"), ClusterOptions());
  Pki second = EnsurePki(tmp.File("pki"), ClusterOptions());
  EXPECT_TRUE(second.written.empty());
  EXPECT_EQ(second.ca.pem.cert_pem, first.ca.pem.cert_pem);
  EXPECT_EQ(second.ca.pem.key_pem, first.ca.pem.key_pem);
  EXPECT_EQ(second.apiserver.pem.cert_pem, first.apiserver.pem.cert_pem);
  EXPECT_EQ(second.admin.pem.key_pem, first.admin.pem.key_pem);
}

TEST(PkiTest, NewServerAddressReissuesOnlyTheServingCertificate) {
  TempDir tmp;
  Pki first = EnsurePki(tmp.File("pki"), ClusterOptions());
  PkiOptions more = ClusterOptions();
  more.server_ips.push_back("172.18.0.1");
  Pki second = EnsurePki(tmp.File("pki"), more);
  EXPECT_EQ(second.written,
            (std::vector<std::string>{second.apiserver.key_file, second.apiserver.cert_file}));
  EXPECT_EQ(second.ca.pem.cert_pem, first.ca.pem.cert_pem);
  EXPECT_EQ(second.admin.pem.cert_pem, first.admin.pem.cert_pem);
  EXPECT_TRUE(Has(InspectCertificate(second.apiserver.pem.cert_pem).ip_addresses, "172.18.0.1"));
  EXPECT_EQ(VerifyCertificate(second.ca.pem.cert_pem, second.apiserver.pem.cert_pem), "");
}

TEST(PkiTest, LeafFromAnotherCaIsReissued) {
  TempDir tmp;
  Pki pki = EnsurePki(tmp.File("pki"));
  Pki other = EnsurePki(tmp.File("other"));
  std::filesystem::copy_file(other.admin.cert_file, pki.admin.cert_file,
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(other.admin.key_file, pki.admin.key_file,
                             std::filesystem::copy_options::overwrite_existing);
  Pki again = EnsurePki(tmp.File("pki"));
  EXPECT_EQ(VerifyCertificate(again.ca.pem.cert_pem, again.admin.pem.cert_pem), "");
  EXPECT_NE(again.admin.pem.cert_pem, other.admin.pem.cert_pem);
}

TEST(PkiTest, CaWithoutItsKeyIsAConflictNamingTheFile) {
  TempDir tmp;
  Pki pki = EnsurePki(tmp.File("pki"));
  std::filesystem::remove(pki.ca.key_file);
  try {
    EnsurePki(tmp.File("pki"));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kConflict);
    EXPECT_NE(e.message().find(pki.ca.key_file), std::string::npos) << e.message();
  }
}

TEST(PkiTest, UnusableCaIsAConflictNotReplaced) {
  TempDir tmp;
  Pki pki = EnsurePki(tmp.File("pki"));
  kin::testing::WriteFile(pki.ca.cert_file, "");
  try {
    EnsurePki(tmp.File("pki"));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kConflict);
    EXPECT_NE(e.message().find(tmp.File("pki")), std::string::npos) << e.message();
  }
  EXPECT_EQ(kin::testing::ReadFile(pki.ca.key_file), pki.ca.pem.key_pem);  // untouched
}

TEST(PkiTest, OpensslVerifiesTheChainAndPurposes) {
  TempDir tmp;
  Pki pki = EnsurePki(tmp.File("pki"), ClusterOptions());
  auto r = RunCommand({"openssl", "verify", "-CAfile", pki.ca.cert_file, pki.apiserver.cert_file});
  EXPECT_TRUE(r.status.success()) << r.out << r.err;
  EXPECT_NE(r.out.find(": OK"), std::string::npos) << r.out;
  r = RunCommand({"openssl", "verify", "-CAfile", pki.ca.cert_file, "-purpose", "sslserver",
                  "-verify_hostname", "kubernetes.default.svc", pki.apiserver.cert_file});
  EXPECT_TRUE(r.status.success()) << r.out << r.err;
  r = RunCommand({"openssl", "verify", "-CAfile", pki.ca.cert_file, "-purpose", "sslclient",
                  pki.admin.cert_file});
  EXPECT_TRUE(r.status.success()) << r.out << r.err;
  // The admin certificate is not a serving certificate.
  r = RunCommand({"openssl", "verify", "-CAfile", pki.ca.cert_file, "-purpose", "sslserver",
                  pki.admin.cert_file});
  EXPECT_FALSE(r.status.success()) << r.out;
}

TEST(PkiTest, BadSubjectAltNamesAreInvalid) {
  KeyPair ca = GenerateCa("test-ca");
  CertSpec spec;
  spec.common_name = "x";
  spec.ip_addresses = {"10.96.0.300"};
  try {
    IssueCertificate(ca, spec);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalid);
    EXPECT_NE(e.message().find("10.96.0.300"), std::string::npos);
  }
  spec.ip_addresses = {"::1"};
  spec.dns_names = {"a.example,IP:1.2.3.4"};
  EXPECT_THROW(IssueCertificate(ca, spec), Error);
  spec.dns_names = {"a.example"};
  CertInfo info = InspectCertificate(IssueCertificate(ca, spec).cert_pem);
  EXPECT_EQ(info.ip_addresses, std::vector<std::string>{"::1"});
  EXPECT_EQ(info.dns_names, std::vector<std::string>{"a.example"});
}

// ---- The TLS server ----

// What the handler saw, for the test to check.
struct Seen {
  std::mutex mu;
  std::string cn;
  std::vector<std::string> groups;
  int calls = 0;
};

class TlsServerTest : public ::testing::Test {
 protected:
  // SIGPIPE keeps its default action here: a server write to a closed TLS
  // peer that raised it would kill the test (StreamsOverTls).
  void SetUp() override { pki_ = EnsurePki(tmp_.File("pki"), ClusterOptions()); }
  void TearDown() override {
    if (server_) server_->Stop();
  }

  http::ServerOptions TlsOptions() {
    http::ServerOptions o;
    o.tls = http::TlsServerOptions{.cert_file = pki_.apiserver.cert_file,
                                   .key_file = pki_.apiserver.key_file,
                                   .client_ca_file = pki_.ca.cert_file};
    o.require_client_cert = true;
    o.anonymous_paths = {"/healthz", "/livez/*"};
    return o;
  }

  void Start(http::Handler h = nullptr, http::ServerOptions o = {}) {
    if (!o.tls) o = TlsOptions();
    if (!h) {
      h = [this](Request& req, Response& resp) {
        {
          std::lock_guard lock(seen_.mu);
          seen_.cn = req.client_cn;
          seen_.groups = req.client_groups;
          ++seen_.calls;
        }
        resp.Set(200, "text/plain", "hello " + req.client_cn);
      };
    }
    server_ = std::make_unique<http::Server>(o, h);
    server_->Start();
  }

  std::string Url(const std::string& host = "localhost") const {
    return "https://" + host + ":" + std::to_string(server_->port());
  }
  ClientOptions Admin(const std::string& host = "localhost") const {
    return ClientOptions{.base_url = Url(host),
                         .ca_file = pki_.ca.cert_file,
                         .cert_file = pki_.admin.cert_file,
                         .key_file = pki_.admin.key_file};
  }
  ClientOptions Anonymous() const {
    return ClientOptions{.base_url = Url(), .ca_file = pki_.ca.cert_file};
  }

  TempDir tmp_;
  Pki pki_;
  Seen seen_;
  std::unique_ptr<http::Server> server_;
};

TEST_F(TlsServerTest, ClientCertificateIdentifiesTheUser) {
  Start();
  HttpClient c(Admin());
  auto r = c.Get("/api");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "hello kubernetes-admin");
  std::lock_guard lock(seen_.mu);
  EXPECT_EQ(seen_.cn, "kubernetes-admin");
  EXPECT_EQ(seen_.groups, std::vector<std::string>{"system:masters"});
}

TEST_F(TlsServerTest, RequestWithoutClientCertificateIs401Status) {
  Start();
  HttpClient c(Anonymous());
  auto r = c.Get("/api/v1/pods");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.Header("Content-Type"), "application/json");
  Json status = Json::parse(r.body);
  EXPECT_EQ(status, Json::parse(R"({"kind":"Status","apiVersion":"v1","metadata":{},
      "status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401})"));
  // The connection stays usable: 401 is an answer, not a protocol error.
  EXPECT_EQ(c.Get("/api").status, 401);
  EXPECT_EQ(server_->open_connections(), 1u);
  std::lock_guard lock(seen_.mu);
  EXPECT_EQ(seen_.calls, 0);
}

TEST_F(TlsServerTest, UnauthorizedGoesThroughErrorResponse) {
  http::ServerOptions o = TlsOptions();
  o.error_response = [](int status, const std::string& msg) {
    Response r;
    r.Set(status, "application/json", "{\"custom\":\"" + msg + "\"}");
    return r;
  };
  Start(nullptr, o);
  auto r = HttpClient(Anonymous()).Get("/api");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.body, "{\"custom\":\"Unauthorized\"}");
}

TEST_F(TlsServerTest, AnonymousPathsNeedNoCertificate) {
  Start();
  HttpClient c(Anonymous());
  EXPECT_EQ(c.Get("/healthz").status, 200);
  EXPECT_EQ(c.Get("/livez/ping").status, 200);
  EXPECT_EQ(c.Get("/healthzz").status, 401);
  EXPECT_EQ(c.Get("/livez").status, 401);  // "/livez/*" covers only what is below
  std::lock_guard lock(seen_.mu);
  EXPECT_EQ(seen_.cn, "");  // the handler ran, for nobody
  EXPECT_TRUE(seen_.groups.empty());
}

// Without a client certificate, a bearer token the authenticator accepts
// identifies the user; an unknown one is 401; a certificate wins over a token.
TEST_F(TlsServerTest, BearerTokenAuthenticatesWithoutACertificate) {
  http::ServerOptions o = TlsOptions();
  o.authenticate_token = [](const std::string& token, std::string& user,
                            std::vector<std::string>& groups) {
    if (token != "good-token") return false;
    user = "system:serviceaccount:ns1:default";
    groups = {"system:serviceaccounts"};
    return true;
  };
  Start(nullptr, o);
  auto bearer = [](const std::string& t) {
    return http::Headers{{"Authorization", "Bearer " + t}};
  };
  auto r = HttpClient(Anonymous()).Get("/api", bearer("good-token"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "hello system:serviceaccount:ns1:default");
  {
    std::lock_guard lock(seen_.mu);
    EXPECT_EQ(seen_.groups, std::vector<std::string>{"system:serviceaccounts"});
  }
  EXPECT_EQ(HttpClient(Anonymous()).Get("/api", bearer("bad-token")).status, 401);
  EXPECT_EQ(HttpClient(Anonymous()).Get("/api", {{"Authorization", "Basic Zm9vOmJhcg=="}}).status,
            401);
  EXPECT_EQ(HttpClient(Admin()).Get("/api", bearer("good-token")).body, "hello kubernetes-admin");
}

// A certificate from another CA does not fail the handshake (kube-apiserver
// asks with tls.RequestClientCert and verifies in its authenticator): the
// request is answered 401 like one without a certificate.
TEST_F(TlsServerTest, ClientCertificateFromAnotherCaIs401) {
  Start();
  Pki other = EnsurePki(tmp_.File("other-pki"));
  ClientOptions o = Admin();
  o.cert_file = other.admin.cert_file;
  o.key_file = other.admin.key_file;
  auto r = HttpClient(o).Get("/api");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(Json::parse(r.body)["reason"], "Unauthorized");
}

TEST_F(TlsServerTest, ServerCertificateMustMatchTheName) {
  Start();
  EXPECT_EQ(HttpClient(Admin("localhost")).Get("/api").status, 200);
  EXPECT_EQ(HttpClient(Admin("127.0.0.1")).Get("/api").status, 200);
  // Same address, a name the certificate does not carry.
  std::string port = std::to_string(server_->port());
  auto r = RunCommand({"curl", "-sS", "--cacert", pki_.ca.cert_file, "--resolve",
                       "wrong.example:" + port + ":127.0.0.1",
                       "https://wrong.example:" + port + "/healthz"});
  EXPECT_EQ(r.status.code, 60) << r.out << r.err;  // CURLE_PEER_FAILED_VERIFICATION
  EXPECT_NE(r.err.find("wrong.example"), std::string::npos) << r.err;
  // And a client that does not trust the cluster CA refuses the server.
  ClientOptions untrusting = Admin();
  untrusting.ca_file = EnsurePki(tmp_.File("other-pki")).ca.cert_file;
  EXPECT_THROW(HttpClient(untrusting).Get("/api"), Error);
}

TEST_F(TlsServerTest, CurlWithCertificatesAndAlpn) {
  Start();
  auto r = RunCommand({"curl", "-sS", "--http2", "-w", "\\n%{http_version} %{http_code}",
                       "--cacert", pki_.ca.cert_file, "--cert", pki_.admin.cert_file, "--key",
                       pki_.admin.key_file, Url() + "/whoami"});
  ASSERT_TRUE(r.status.success()) << r.err;
  // curl offered h2; the server chose HTTP/1.1.
  EXPECT_EQ(r.out, "hello kubernetes-admin\n1.1 200");
}

TEST_F(TlsServerTest, KeepAliveUsesOneConnection) {
  Start();
  HttpClient c(Admin());
  for (int i = 0; i < 20; ++i) ASSERT_EQ(c.Get("/api").status, 200);
  EXPECT_EQ(server_->open_connections(), 1u);
  auto r = c.Do("POST", "/api", std::string(200000, 'x'));  // a body of many TLS records
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(server_->open_connections(), 1u);
}

TEST_F(TlsServerTest, StreamsOverTls) {
  std::atomic<bool> handler_done{false};
  Start([&](Request&, Response& resp) {
    resp.stream = [&](http::Stream& s) {
      for (int i = 0; i < 1000000 && s.Write("chunk" + std::to_string(i) + "\n"); ++i) {
        std::this_thread::yield();
      }
      handler_done = true;
    };
  });
  auto client = std::make_unique<HttpClient>(Admin());
  std::string got;
  int status = client->Stream("GET", "/watch", [&](std::string_view d) {
    got.append(d);
    return got.find("chunk3\n") == std::string::npos;
  });
  EXPECT_EQ(status, 200);
  EXPECT_EQ(got.rfind("chunk0\nchunk1\nchunk2\nchunk3\n", 0), 0u) << got.substr(0, 100);
  client.reset();  // closes the connection; the handler must notice
  EXPECT_TRUE(Eventually([&] { return handler_done.load(); }));
}

// A TLS client on a raw socket, for what curl does not do (upgrades). Its
// writes use write(2), so SIGPIPE is blocked in the calling thread while it
// lives (threads the server starts keep theirs).
class RawTlsClient {
 public:
  RawTlsClient(int port, const Pki& pki, bool with_cert) {
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, &saved_mask_);
    ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(ctx_, pki.ca.cert_file.c_str(), nullptr);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    if (with_cert) {
      SSL_CTX_use_certificate_file(ctx_, pki.admin.cert_file.c_str(), SSL_FILETYPE_PEM);
      SSL_CTX_use_PrivateKey_file(ctx_, pki.admin.key_file.c_str(), SSL_FILETYPE_PEM);
    }
    static const unsigned char kProtos[] = "\x02h2\x08http/1.1";  // as kubectl offers
    SSL_CTX_set_alpn_protos(ctx_, kProtos, sizeof kProtos - 1);
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return;
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    SSL_set_tlsext_host_name(ssl_, "localhost");
    SSL_set1_host(ssl_, "localhost");
    connected_ = SSL_connect(ssl_) == 1;
  }
  ~RawTlsClient() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    SSL_CTX_free(ctx_);
    ::close(fd_);
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    timespec zero{};
    while (sigtimedwait(&pipe, nullptr, &zero) > 0) {
    }
    pthread_sigmask(SIG_SETMASK, &saved_mask_, nullptr);
  }
  bool connected() const { return connected_; }
  std::string Alpn() const {
    const unsigned char* p = nullptr;
    unsigned int n = 0;
    SSL_get0_alpn_selected(ssl_, &p, &n);
    return std::string(reinterpret_cast<const char*>(p), n);
  }
  bool Write(std::string_view s) { return SSL_write(ssl_, s.data(), s.size()) == int(s.size()); }
  int fd() const { return fd_; }
  // Reads until `buf` contains `until` or the stream ends.
  bool ReadUntil(std::string& buf, std::string_view until) {
    char tmp[4096];
    while (buf.find(until) == std::string::npos) {
      int n = SSL_read(ssl_, tmp, sizeof tmp);
      if (n <= 0) return false;
      buf.append(tmp, n);
    }
    return true;
  }

 private:
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
  bool connected_ = false;
  sigset_t saved_mask_;
};

// A slow-loris inside TLS: the request head stops in the middle of a TLS
// record, where the connection thread's own deadline cannot interrupt the
// read (it waits for the rest of the record); the reaper must close it.
TEST_F(TlsServerTest, RequestHeadStuckInsideATlsRecordIsCutOff) {
  http::ServerOptions o = TlsOptions();
  o.header_timeout_ms = 300;
  Start(nullptr, o);
  RawTlsClient client(server_->port(), pki_, true);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.Write("GET /healthz HTTP/1.1\r\n"));
  // An application-data record header announcing 64 bytes, then nothing.
  ASSERT_EQ(::send(client.fd(), "\x17\x03\x03\x00\x40", 5, MSG_NOSIGNAL), 5);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  bool closed = false;
  while (!closed && std::chrono::steady_clock::now() < deadline) {
    pollfd p{client.fd(), POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[256];
    closed = ::recv(client.fd(), buf, sizeof buf, 0) <= 0;
  }
  EXPECT_TRUE(closed) << "a TLS connection stuck in a record was still open after 5 s";
  EXPECT_TRUE(Eventually([&] { return server_->open_connections() == 0; }));
}

TEST_F(TlsServerTest, UpgradeHandsOverTheTlsSessionForConcurrentUse) {
  Start([](Request& req, Response& resp) {
    resp.status = 101;
    resp.headers.emplace("Upgrade", "echo");
    resp.headers.emplace("Connection", "Upgrade");
    std::string who = req.client_cn;
    resp.upgrade = [who](http::Conn& c) {
      // One thread writes ticks while this one reads and echoes: the
      // session must take a reader and a writer at once, like a socket.
      std::thread ticker([&c] {
        for (int i = 0; i < 200; ++i) c.WriteAll("tick\n");
      });
      char buf[64];
      long n = c.Read(buf, sizeof buf);
      ticker.join();
      if (n > 0) c.WriteAll("echo:" + std::string(buf, n) + " for " + who + "\n");
    };
  });
  RawTlsClient client(server_->port(), pki_, true);
  ASSERT_TRUE(client.connected());
  EXPECT_EQ(client.Alpn(), "http/1.1");
  ASSERT_TRUE(
      client.Write("GET /x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
                   "Upgrade: echo\r\n\r\n"));
  std::string got;
  ASSERT_TRUE(client.ReadUntil(got, "\r\n\r\n"));
  EXPECT_EQ(got.rfind("HTTP/1.1 101 Switching Protocols\r\n", 0), 0u) << got;
  ASSERT_TRUE(client.Write("ping"));
  ASSERT_TRUE(client.ReadUntil(got, "for kubernetes-admin\n")) << got;
  std::string body = got.substr(got.find("\r\n\r\n") + 4);
  size_t ticks = 0;
  for (size_t p = 0; (p = body.find("tick\n", p)) != std::string::npos; p += 5) ++ticks;
  EXPECT_EQ(ticks, 200u);
  EXPECT_NE(body.find("echo:ping for kubernetes-admin\n"), std::string::npos);
}

// Data already decrypted inside the session is invisible to poll(); a
// handler reading in small pieces must still see it as readable.
TEST_F(TlsServerTest, WaitReadableSeesDataBufferedInTheSession) {
  Start([](Request&, Response& resp) {
    resp.status = 101;
    resp.upgrade = [](http::Conn& c) {
      std::string got;
      char buf[4];
      while (got.size() < 14 && c.WaitReadable(5000)) {
        long n = c.Read(buf, sizeof buf);
        if (n <= 0) break;
        got.append(buf, n);
      }
      c.WriteAll((got.size() == 14 ? "all:" : "stuck:") + got + "\n");
    };
  });
  RawTlsClient client(server_->port(), pki_, true);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.Write("GET /x HTTP/1.1\r\nHost: a\r\n\r\n"));
  std::string got;
  ASSERT_TRUE(client.ReadUntil(got, "\r\n\r\n"));
  ASSERT_TRUE(client.Write("ping-pong-ding"));  // one TLS record
  client.ReadUntil(got, "ding\n");
  EXPECT_EQ(got.substr(got.find("\r\n\r\n") + 4), "all:ping-pong-ding\n");
}

int ConnectTcp(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  timeval tv{.tv_sec = 10, .tv_usec = 0};  // a deadline for ReadToEnd
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// recv until the peer closes (`closed`) or the 10 s deadline passes.
std::string ReadToEnd(int fd, bool& closed) {
  std::string out;
  char buf[512];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, n);
  closed = n == 0 || (n < 0 && errno == ECONNRESET);
  return out;
}

TEST_F(TlsServerTest, BadHandshakesCloseOnlyTheirConnection) {
  http::ServerOptions o = TlsOptions();
  o.tls->handshake_timeout_ms = 2000;
  Start(nullptr, o);
  // Silent: holds no thread but its own (a request meanwhile is answered well
  // within the handshake timeout), and is dropped at the timeout.
  int silent = ConnectTcp(server_->port());
  ClientOptions quick = Admin();
  quick.timeout_ms = 1000;
  HttpClient c(quick);
  EXPECT_EQ(c.Get("/api").status, 200);
  bool closed = false;
  EXPECT_EQ(ReadToEnd(silent, closed), "");
  EXPECT_TRUE(closed);
  ::close(silent);
  // Garbage in a TLS record.
  int garbage = ConnectTcp(server_->port());
  std::string junk("\x16\x03\x01\x00\x05hello", 10);
  ::send(garbage, junk.data(), junk.size(), MSG_NOSIGNAL);
  ReadToEnd(garbage, closed);
  EXPECT_TRUE(closed);
  ::close(garbage);
  // Plain HTTP is told what is wrong, as Go's server tells it.
  int plain = ConnectTcp(server_->port());
  std::string req = "GET /api HTTP/1.1\r\nHost: a\r\n\r\n";
  ::send(plain, req.data(), req.size(), MSG_NOSIGNAL);
  std::string answer = ReadToEnd(plain, closed);
  EXPECT_TRUE(closed);
  ::close(plain);
  EXPECT_EQ(answer.rfind("HTTP/1.0 400 Bad Request\r\n", 0), 0u) << answer;
  EXPECT_NE(answer.find("Client sent an HTTP request to an HTTPS server."), std::string::npos);
  // The kept-alive connection lived through all of it.
  EXPECT_EQ(c.Get("/api").status, 200);
  EXPECT_TRUE(Eventually([&] { return server_->open_connections() == 1u; }));
}

TEST_F(TlsServerTest, StopEndsIdleTlsConnections) {
  Start();
  HttpClient c(Admin());
  EXPECT_EQ(c.Get("/api").status, 200);
  RawTlsClient idle(server_->port(), pki_, true);  // handshaken, no request
  ASSERT_TRUE(idle.connected());
  EXPECT_TRUE(Eventually([&] { return server_->open_connections() == 2u; }));
  server_->Stop();
  EXPECT_EQ(server_->open_connections(), 0u);
}

TEST_F(TlsServerTest, ConfigurationErrorsNameTheFile) {
  http::ServerOptions o = TlsOptions();
  o.tls->key_file = tmp_.File("missing.key");
  http::Server s(o, [](Request&, Response&) {});
  try {
    s.Start();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("missing.key"), std::string::npos) << e.message();
  }
  o = TlsOptions();
  o.tls->key_file = pki_.admin.key_file;  // not the serving certificate's key
  EXPECT_THROW(http::Server(o, [](Request&, Response&) {}).Start(), Error);
  o = http::ServerOptions();
  o.require_client_cert = true;  // without TLS nothing could ever pass
  EXPECT_THROW(http::Server(o, [](Request&, Response&) {}).Start(), Error);
}

}  // namespace
}  // namespace kin::tls
