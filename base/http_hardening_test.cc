// The HTTP server against hostile clients: raw sockets on 127.0.0.1 sending
// what a well-behaved client never would, each answered (or cut off) by the
// server itself, promptly, without the handler running.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "base/fd.h"
#include "base/http_server.h"
#include "base/socketpair_conn_testing.h"

namespace kin::http {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

class HttpHardeningTest : public ::testing::Test {
 protected:
  void StartServer(ServerOptions o = {}) {
    server_ = std::make_unique<Server>(o, [this](Request& req, Response& resp) {
      ++handled_;
      resp.Set(201, "text/plain", "got " + std::to_string(req.body.size()));
    });
    server_->Start();
  }
  void TearDown() override {
    if (server_) server_->Stop();
  }
  UniqueFd Connect() {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(server_->port()));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    return fd;
  }
  static void Send(int fd, std::string_view data) {
    ASSERT_EQ(::send(fd, data.data(), data.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(data.size()));
  }
  // What the server sends until it closes the connection, or until the
  // deadline (then `closed` stays false).
  static std::string ReadUntilClosed(int fd, milliseconds within, bool* closed = nullptr) {
    auto deadline = Clock::now() + within;
    std::string got;
    if (closed) *closed = false;
    while (true) {
      auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return got;
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      char buf[4096];
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) {
        if (closed) *closed = true;
        return got;
      }
      got.append(buf, n);
    }
  }
  // Sends `request` on a new connection; the answer up to the server's close.
  std::string Exchange(std::string_view request, milliseconds within = milliseconds(5000)) {
    UniqueFd fd = Connect();
    Send(fd.get(), request);
    bool closed = false;
    std::string got = ReadUntilClosed(fd.get(), within, &closed);
    EXPECT_TRUE(closed) << "the server did not close the connection; got: " << got;
    return got;
  }

  std::unique_ptr<Server> server_;
  std::atomic<int> handled_{0};
};

bool StartsWith(const std::string& s, std::string_view prefix) { return s.rfind(prefix, 0) == 0; }

TEST_F(HttpHardeningTest, TransferEncodingWithContentLengthIs400) {
  StartServer();
  std::string got = Exchange(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
      "5\r\nhello\r\n0\r\n\r\n");
  EXPECT_TRUE(StartsWith(got, "HTTP/1.1 400 ")) << got;
  EXPECT_NE(got.find("both Transfer-Encoding and Content-Length"), std::string::npos) << got;
  EXPECT_EQ(handled_, 0);
}

TEST_F(HttpHardeningTest, TransferEncodingOtherThanChunkedIs400) {
  StartServer();
  std::string got =
      Exchange("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n");
  EXPECT_TRUE(StartsWith(got, "HTTP/1.1 400 ")) << got;
  EXPECT_NE(got.find("unsupported Transfer-Encoding \"gzip, chunked\""), std::string::npos) << got;
  EXPECT_EQ(handled_, 0);
}

TEST_F(HttpHardeningTest, MalformedChunkSizeAfterAValidChunkIs400) {
  StartServer();
  std::string got = Exchange(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\nzz\r\nmore\r\n0\r\n\r\n");
  EXPECT_TRUE(StartsWith(got, "HTTP/1.1 400 ")) << got;
  EXPECT_NE(got.find("malformed chunk size \"zz\""), std::string::npos) << got;
  EXPECT_EQ(handled_, 0);
}

TEST_F(HttpHardeningTest, OverflowingChunkSizeIs400Promptly) {
  StartServer();
  // 2^88 - 1 after a valid chunk: added to the 5 bytes so far it wraps a
  // 64-bit size; the server must neither take it as small and wait for that
  // many bytes nor answer anything but 400.
  std::string got = Exchange(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\nffffffffffffffffffffff\r\nhello\r\n",
      milliseconds(5000));
  EXPECT_TRUE(StartsWith(got, "HTTP/1.1 400 ")) << got;
  EXPECT_EQ(handled_, 0);
}

TEST_F(HttpHardeningTest, ChunkWithoutItsCrlfIs400) {
  StartServer();
  std::string got = Exchange(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nhelloworld\r\n0\r\n\r\n");
  EXPECT_TRUE(StartsWith(got, "HTTP/1.1 400 ")) << got;
  EXPECT_EQ(handled_, 0);
}

TEST_F(HttpHardeningTest, HeaderLineOverTheLimitIs431) {
  ServerOptions o;
  o.max_header_line_bytes = 1024;
  StartServer(o);
  std::string got =
      Exchange("GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(2000, 'a') + "\r\n\r\n");
  EXPECT_TRUE(StartsWith(got, "HTTP/1.1 431 ")) << got;
  EXPECT_NE(got.find("limit of 1024 bytes"), std::string::npos) << got;
  EXPECT_EQ(handled_, 0);
}

TEST_F(HttpHardeningTest, HeaderBlockOverTheLimitIs431) {
  ServerOptions o;
  o.max_header_bytes = 4096;
  StartServer(o);
  std::string req = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 100; ++i)
    req += "X-H" + std::to_string(i) + ": " + std::string(90, 'v') + "\r\n";
  std::string got = Exchange(req + "\r\n");
  EXPECT_TRUE(StartsWith(got, "HTTP/1.1 431 ")) << got;
  EXPECT_NE(got.find("limit of 4096 bytes"), std::string::npos) << got;
  EXPECT_EQ(handled_, 0);
}

TEST_F(HttpHardeningTest, UnknownMethodIs501AndMalformedRequestLinesAre400) {
  StartServer();
  std::string got = Exchange("BREW /pot HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_TRUE(StartsWith(got, "HTTP/1.1 501 ")) << got;
  EXPECT_NE(got.find("unsupported method \"BREW\""), std::string::npos) << got;
  for (std::string line : {"GET  / HTTP/1.1", "GET / HTTP/1.1 extra", "G(T / HTTP/1.1",
                           "GET nopath HTTP/1.1", "GET / HTTP/9.9", "GET /\x01 HTTP/1.1"}) {
    SCOPED_TRACE(line);
    got = Exchange(line + "\r\nHost: a\r\n\r\n");
    EXPECT_TRUE(StartsWith(got, "HTTP/1.1 400 ")) << got;
  }
  std::vector<std::string> headers = {"Host : a", " folded", "No-Colon",
                                      std::string("X-A: a\0b", 9)};
  for (const std::string& header : headers) {
    SCOPED_TRACE(header);
    got = Exchange("GET / HTTP/1.1\r\nX-Ok: 1\r\n" + header + "\r\n\r\n");
    EXPECT_TRUE(StartsWith(got, "HTTP/1.1 400 ")) << got;
  }
  EXPECT_EQ(handled_, 0);
}

TEST_F(HttpHardeningTest, BodyOverTheLimitIs413WhileTheClientIsStillSending) {
  ServerOptions o;
  o.max_body_bytes = 64 * 1024;
  StartServer(o);
  UniqueFd fd = Connect();
  const size_t declared = 256u * 1024 * 1024;
  Send(fd.get(), "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
  // Chunks of 16 KiB until the server answers: it must answer after about
  // 64 KiB, without waiting for (or keeping) the 256 MiB.
  std::string chunk = "4000\r\n" + std::string(16384, 'x') + "\r\n";
  size_t sent = 0;
  std::string got;
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (sent < declared && Clock::now() < deadline && got.find("\r\n\r\n") == std::string::npos) {
    pollfd p{fd.get(), POLLIN | POLLOUT, 0};
    ASSERT_GT(::poll(&p, 1, 1000), -1);
    if (p.revents & POLLIN) {
      char buf[4096];
      ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
      if (n <= 0) break;
      got.append(buf, n);
    } else if (p.revents & POLLOUT) {
      ssize_t n = ::send(fd.get(), chunk.data(), chunk.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && errno != EAGAIN) break;
      if (n > 0) sent += static_cast<size_t>(n);
    }
  }
  got += ReadUntilClosed(fd.get(), milliseconds(5000));
  EXPECT_TRUE(StartsWith(got, "HTTP/1.1 413 ")) << got;
  EXPECT_NE(got.find("larger than the limit of 65536 bytes"), std::string::npos) << got;
  EXPECT_LT(sent, declared / 4) << "the server read far past the limit before answering";
  EXPECT_EQ(handled_, 0);
}

TEST_F(HttpHardeningTest, IdleKeepAliveConnectionIsClosedAfterTheIdleTimeout) {
  ServerOptions o;
  o.idle_timeout_ms = 300;
  StartServer(o);
  UniqueFd fd = Connect();
  auto start = Clock::now();
  Send(fd.get(), "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  bool closed = false;
  std::string got = ReadUntilClosed(fd.get(), milliseconds(5000), &closed);
  EXPECT_TRUE(StartsWith(got, "HTTP/1.1 201 ")) << got;
  EXPECT_TRUE(closed) << "an idle keep-alive connection was kept past its timeout";
  EXPECT_GE(Clock::now() - start, milliseconds(250));
}

TEST_F(HttpHardeningTest, SlowLorisHeaderTrickleIsCutOff) {
  ServerOptions o;
  o.header_timeout_ms = 500;
  StartServer(o);
  UniqueFd fd = Connect();
  Send(fd.get(), "GET / HTTP/1.1\r\n");
  // One header line every 100 ms, never the blank line; between lines, wait
  // for the server's answer.
  auto start = Clock::now();
  std::string got;
  bool closed = false;
  for (int i = 0; i < 50 && !closed; ++i) {
    got += ReadUntilClosed(fd.get(), milliseconds(100), &closed);
    if (!closed) {
      std::string line = "X-Slow-" + std::to_string(i) + ": a\r\n";
      if (::send(fd.get(), line.data(), line.size(), MSG_NOSIGNAL) < 0) break;
    }
  }
  EXPECT_TRUE(closed) << "a request head trickling in for 5 s was still being read";
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(4));
  EXPECT_TRUE(StartsWith(got, "HTTP/1.1 408 ")) << got;
  EXPECT_EQ(handled_, 0);
}

TEST_F(HttpHardeningTest, StalledBodyIsCutOff) {
  ServerOptions o;
  o.body_timeout_ms = 500;
  StartServer(o);
  UniqueFd fd = Connect();
  Send(fd.get(), "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly ten b");
  bool closed = false;
  std::string got = ReadUntilClosed(fd.get(), milliseconds(5000), &closed);
  EXPECT_TRUE(closed) << "a body that stopped coming was waited for past the timeout";
  EXPECT_TRUE(StartsWith(got, "HTTP/1.1 408 ")) << got;
  EXPECT_EQ(handled_, 0);
}

TEST_F(HttpHardeningTest, ConnectionsOverTheCapGet429AndTheServerKeepsServing) {
  ServerOptions o;
  o.max_connections = 4;
  StartServer(o);
  std::vector<UniqueFd> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(Connect());
    Send(held.back().get(), "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    std::string got = ReadUntilClosed(held.back().get(), milliseconds(300));
    ASSERT_TRUE(StartsWith(got, "HTTP/1.1 201 ")) << got;
  }
  // The fifth is answered without asking anything.
  UniqueFd extra = Connect();
  bool closed = false;
  std::string got = ReadUntilClosed(extra.get(), milliseconds(5000), &closed);
  EXPECT_TRUE(closed);
  EXPECT_TRUE(StartsWith(got, "HTTP/1.1 429 ")) << got;
  EXPECT_NE(got.find("Retry-After: 1\r\n"), std::string::npos) << got;
  EXPECT_EQ(server_->open_connections(), 4u);
  held.clear();
  auto deadline = Clock::now() + std::chrono::seconds(5);
  while (server_->open_connections() > 0 && Clock::now() < deadline) std::this_thread::yield();
  ASSERT_EQ(server_->open_connections(), 0u);
  got = Exchange("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(StartsWith(got, "HTTP/1.1 201 ")) << got;
}

TEST_F(HttpHardeningTest, WellFormedChunkedRequestsStillWorkOnAKeptAliveConnection) {
  StartServer();
  UniqueFd fd = Connect();
  // Two pipelined requests: a chunked body with an extension and a trailer,
  // then one with a Content-Length.
  Send(fd.get(),
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"
       "5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc");
  bool closed = false;
  std::string got = ReadUntilClosed(fd.get(), milliseconds(5000), &closed);
  EXPECT_TRUE(closed);
  size_t second = got.find("HTTP/1.1 201 ", 1);
  EXPECT_TRUE(StartsWith(got, "HTTP/1.1 201 ")) << got;
  ASSERT_NE(second, std::string::npos) << got;
  EXPECT_NE(got.find("got 11"), std::string::npos) << got;
  EXPECT_NE(got.find("got 3", second), std::string::npos) << got;
  EXPECT_EQ(handled_, 2);
}

// RequestReader is what the server runs on a connection (and what
// fuzz/http_request_fuzzer drives): pipelined requests come out one by one,
// bodies decoded, until a refusal ends the connection.
TEST(RequestReaderTest, ReadsPipelinedRequestsThenStopsAtARefusal) {
  kin::testing::SocketPair pair;
  kin::testing::FdConn conn(pair.server.get());
  const std::string sent =
      "POST /a?x=1&y=%41 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: t\r\n\r\n"
      "PUT /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nok"
      "GET /c HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
  ASSERT_TRUE(kin::testing::FdConn(pair.client.get()).WriteAll(sent));
  ServerOptions opts;
  RequestReader reader(conn, opts);
  std::vector<Clock::time_point> deadlines;
  auto set_deadline = [&](Clock::time_point d) { deadlines.push_back(d); };
  Request a, b, c;
  ASSERT_EQ(reader.Next(a, set_deadline).kind, RequestReader::Result::kRequest);
  EXPECT_EQ(a.method, "POST");
  EXPECT_EQ(a.path, "/a");
  EXPECT_EQ(a.Query("y"), "A");
  EXPECT_EQ(a.body, "abcde");
  EXPECT_EQ(deadlines.size(), 3u);  // idle wait, head, body: each backed up for the reaper
  ASSERT_EQ(reader.Next(b).kind, RequestReader::Result::kRequest);
  EXPECT_EQ(b.method, "PUT");
  EXPECT_EQ(b.body, "ok");
  RequestReader::Result refused = reader.Next(c);
  EXPECT_EQ(refused.kind, RequestReader::Result::kRefused);
  EXPECT_EQ(refused.status, 400);
  EXPECT_EQ(refused.message, "invalid Content-Length \"2\"");
}

}  // namespace
}  // namespace kin::http
