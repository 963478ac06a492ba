#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "base/error.h"
#include "base/http_client.h"
#include "base/http_server.h"

namespace kin::http {
namespace {

class HttpTest : public ::testing::Test {
 protected:
  void StartServer(Handler h, ServerOptions o = {}) {
    server_ = std::make_unique<Server>(o, std::move(h));
    server_->Start();
    client_ = std::make_unique<HttpClient>(
        ClientOptions{.base_url = "http://127.0.0.1:" + std::to_string(server_->port())});
  }
  void TearDown() override {
    client_.reset();
    if (server_) server_->Stop();
  }
  std::unique_ptr<Server> server_;
  std::unique_ptr<HttpClient> client_;
};

TEST_F(HttpTest, ParsesRequestAndAnswers) {
  StartServer([](Request& req, Response& resp) {
    resp.Set(201, "text/plain",
             req.method + " " + req.path + " q=" + req.Query("q") + " x=" + req.Header("x-test") +
                 " body=" + req.body);
  });
  auto r = client_->Do("POST", "/a%20b?q=hello%20there&z", "payload", {{"X-Test", "yes"}});
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.body, "POST /a b q=hello there x=yes body=payload");
  EXPECT_EQ(r.Header("content-type"), "text/plain");
}

TEST_F(HttpTest, KeepAliveReusesOneConnection) {
  StartServer([](Request&, Response& resp) { resp.Set(200, "text/plain", "ok"); });
  for (int i = 0; i < 50; ++i) ASSERT_EQ(client_->Get("/").status, 200);
  EXPECT_EQ(server_->open_connections(), 1u);
}

TEST_F(HttpTest, BodyOverLimitIs413WithFormattedError) {
  ServerOptions o;
  o.max_body_bytes = 1000;
  o.error_response = [](int status, const std::string& msg) {
    Response r;
    r.Set(status, "application/json", "{\"message\":\"" + msg + "\"}");
    return r;
  };
  bool called = false;
  StartServer(
      [&](Request&, Response& resp) {
        called = true;
        resp.Set(200, "text/plain", "x");
      },
      o);
  auto r = client_->Do("POST", "/", std::string(5000, 'a'));
  EXPECT_EQ(r.status, 413);
  EXPECT_NE(r.body.find("larger than the limit of 1000 bytes"), std::string::npos) << r.body;
  EXPECT_FALSE(called);
}

TEST_F(HttpTest, HandlerExceptionBecomes500AndServerLives) {
  StartServer([](Request& req, Response& resp) {
    if (req.path == "/boom") throw std::runtime_error("kaboom");
    resp.Set(200, "text/plain", "fine");
  });
  auto r = client_->Get("/boom");
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(r.body.find("kaboom"), std::string::npos);
  EXPECT_EQ(client_->Get("/ok").body, "fine");
}

TEST_F(HttpTest, StreamsChunksUntilClientStops) {
  std::atomic<bool> handler_done{false};
  StartServer([&](Request&, Response& resp) {
    resp.stream = [&](Stream& s) {
      for (int i = 0; i < 100000 && s.Write("chunk" + std::to_string(i) + "\n"); ++i) {
        std::this_thread::yield();
      }
      handler_done = true;
    };
  });
  std::string got;
  int status = client_->Stream("GET", "/watch", [&](std::string_view d) {
    got.append(d);
    return got.find("chunk3\n") == std::string::npos;
  });
  EXPECT_EQ(status, 200);
  EXPECT_EQ(got.rfind("chunk0\nchunk1\nchunk2\nchunk3\n", 0), 0u) << got.substr(0, 100);
  client_.reset();  // closes the connection; the handler must notice
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!handler_done && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  EXPECT_TRUE(handler_done);
}

TEST_F(HttpTest, UpgradeHandsOverTheConnection) {
  StartServer([](Request&, Response& resp) {
    resp.status = 101;
    resp.headers.emplace("Upgrade", "echo");
    resp.headers.emplace("Connection", "Upgrade");
    resp.upgrade = [](Conn& c) {
      char buf[64];
      long n = c.Read(buf, sizeof buf);
      if (n > 0) c.WriteAll(std::string("echo:") + std::string(buf, n));
    };
  });
  // A raw socket: curl does not speak arbitrary upgrades.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(server_->port());
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  std::string req = "GET /x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n";
  ASSERT_EQ(::send(fd, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
  std::string got;
  char buf[512];
  while (got.find("\r\n\r\n") == std::string::npos) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    ASSERT_GT(n, 0);
    got.append(buf, n);
  }
  EXPECT_EQ(got.rfind("HTTP/1.1 101 Switching Protocols\r\n", 0), 0u) << got;
  ::send(fd, "ping", 4, 0);
  std::string rest = got.substr(got.find("\r\n\r\n") + 4);
  while (rest.size() < 9) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    ASSERT_GT(n, 0);
    rest.append(buf, n);
  }
  EXPECT_EQ(rest, "echo:ping");
  ::close(fd);
}

TEST_F(HttpTest, MalformedRequestGets400) {
  StartServer([](Request&, Response& resp) { resp.Set(200, "text/plain", "x"); });
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(server_->port());
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  std::string req = "NONSENSE\r\n\r\n";
  ::send(fd, req.data(), req.size(), 0);
  char buf[512];
  ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, n).rfind("HTTP/1.1 400", 0), 0u);
  ::close(fd);
}

TEST_F(HttpTest, ConnectionRefusedIsUnavailableNamingTheUrl) {
  StartServer([](Request&, Response& resp) { resp.Set(200, "text/plain", "x"); });
  int port = server_->port();
  server_->Stop();
  HttpClient c(ClientOptions{.base_url = "http://127.0.0.1:" + std::to_string(port)});
  try {
    c.Get("/healthz");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kServiceUnavailable);
    EXPECT_NE(e.message().find("127.0.0.1:" + std::to_string(port)), std::string::npos);
  }
}

TEST(UrlTest, DecodeAndEncode) {
  EXPECT_EQ(UrlDecode("a%3Db+c"), "a=b c");
  EXPECT_EQ(UrlDecode("a+b", false), "a+b");
  EXPECT_EQ(UrlDecode("bad%zz%4"), "bad%zz%4");
  EXPECT_EQ(UrlEncode("app in (a,b)"), "app%20in%20%28a%2Cb%29");
}

}  // namespace
}  // namespace kin::http
