// The streaming pod subresources against a real ApiServer on loopback, with
// a fake PodIo (exec runs local processes, port-forward dials a local echo
// server) and hand-made WebSocket and SPDY clients built from the codecs.
#include "apiserver/pod_streams.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include "apiserver/apiserver.h"
#include "base/error.h"
#include "base/http_client.h"
#include "base/process.h"
#include "base/spdy.h"
#include "base/websocket.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin::apiserver {
namespace {

using namespace std::chrono_literals;
using testing::Eventually;

UniqueFd Dial(int port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    throw ErrnoError(errno, "connect to 127.0.0.1:" + std::to_string(port));
  }
  return fd;
}

// Accepts connections on loopback and echoes every byte back.
class EchoServer {
 public:
  EchoServer() {
    listen_ = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listen_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(listen_.get(), 16), 0);
    socklen_t len = sizeof a;
    ::getsockname(listen_.get(), reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    accept_ = std::thread([this] { AcceptLoop(); });
  }
  ~EchoServer() {
    stop_ = true;
    accept_.join();
    for (auto& t : conns_) t.join();
  }
  int port() const { return port_; }

 private:
  void AcceptLoop() {
    while (!stop_) {
      pollfd p{listen_.get(), POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int c = ::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      conns_.emplace_back([this, c] {
        UniqueFd fd(c);
        char buf[16384];
        while (!stop_) {
          pollfd p{fd.get(), POLLIN, 0};
          if (::poll(&p, 1, 50) <= 0) continue;
          ssize_t n = ::read(fd.get(), buf, sizeof buf);
          if (n <= 0) break;
          if (::send(fd.get(), buf, n, MSG_NOSIGNAL) != n) break;
        }
      });
    }
  }
  UniqueFd listen_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread accept_;
  std::vector<std::thread> conns_;
};

// --- the fake node agent ------------------------------------------------------

class FakeSession : public IoSession {
 public:
  FakeSession(std::vector<std::string> argv, bool tty, bool stdin, std::atomic<int>& live,
              std::atomic<int>& width, std::atomic<int>& height)
      : live_(live), width_(width), height_(height) {
    SpawnOptions o;
    o.argv = std::move(argv);
    o.stdin_mode = stdin ? SpawnOptions::Stdio::kPipe : SpawnOptions::Stdio::kNull;
    o.stdout_mode = SpawnOptions::Stdio::kPipe;
    o.stderr_mode = tty ? SpawnOptions::Stdio::kNull : SpawnOptions::Stdio::kPipe;
    child_ = ChildProcess::Spawn(o);
    ++live_;
  }
  ~FakeSession() override { --live_; }
  int stdin_fd() override { return child_.stdin_pipe().get(); }
  int stdout_fd() override { return child_.stdout_pipe().get(); }
  int stderr_fd() override { return child_.stderr_pipe().get(); }
  void CloseStdin() override { child_.stdin_pipe().reset(); }
  void Resize(uint16_t w, uint16_t h) override {
    width_ = w;
    height_ = h;
  }
  int Wait() override {
    ExitStatus s = child_.Wait();
    return s.exited() ? s.code : 128 + s.signal;
  }

 private:
  ChildProcess child_;
  std::atomic<int>& live_;
  std::atomic<int>& width_;
  std::atomic<int>& height_;
};

class FakePodIo : public PodIo {
 public:
  void Logs(const std::string&, const std::string& pod, const LogOptions& opts,
            const std::function<bool(std::string_view)>& sink,
            const std::function<bool()>& should_stop) override {
    CheckPod(pod);
    last_log_options = opts;
    std::vector<std::string> lines = {"line 1\n", "line 2\n", "line 3\n", "line 4\n", "line 5\n"};
    size_t first = opts.tail_lines ? lines.size() - std::min<size_t>(*opts.tail_lines, 5) : 0;
    std::string all;
    for (size_t i = first; i < lines.size(); ++i) all += lines[i];
    // Overshoots limitBytes by one byte, as a careless node agent might.
    if (opts.limit_bytes) all = all.substr(0, *opts.limit_bytes + 1);
    if (!sink(all)) return;
    if (!opts.follow) return;
    ++active_follows;
    while (!should_stop() && sink("tick\n")) std::this_thread::sleep_for(20ms);
    --active_follows;
  }
  std::unique_ptr<IoSession> Exec(const std::string&, const std::string& pod,
                                  const std::string& container,
                                  const std::vector<std::string>& command, bool tty,
                                  bool stdin) override {
    CheckPod(pod);
    if (container == "nope") throw Error::NotFound("container \"nope\" not found in pod");
    return std::make_unique<FakeSession>(command, tty, stdin, live_sessions, width, height);
  }
  std::unique_ptr<IoSession> Attach(const std::string&, const std::string& pod, const std::string&,
                                    bool tty, bool stdin) override {
    CheckPod(pod);
    return std::make_unique<FakeSession>(std::vector<std::string>{"sh", "-c", "echo attached; cat"},
                                         tty, stdin, live_sessions, width, height);
  }
  UniqueFd PortForward(const std::string&, const std::string& pod, uint16_t port) override {
    CheckPod(pod);
    return Dial(port);
  }

  std::atomic<int> active_follows{0};
  std::atomic<int> live_sessions{0};
  std::atomic<int> width{0}, height{0};
  LogOptions last_log_options;

 private:
  static void CheckPod(const std::string& pod) {
    if (pod == "missing") {
      throw Error::NotFound("pods \"missing\" not found").WithDetails("pods", "missing");
    }
  }
};

// --- raw HTTP, WebSocket and SPDY clients -----------------------------------------

class RawConn {
 public:
  explicit RawConn(int port) : fd_(Dial(port)) {}

  void Send(std::string_view d) {
    while (!d.empty()) {
      ssize_t n = ::send(fd_.get(), d.data(), d.size(), MSG_NOSIGNAL);
      ASSERT_GT(n, 0) << "send: " << strerror(errno);
      d.remove_prefix(n);
    }
  }
  // Bytes that arrived within timeout_ms ("" on timeout); eof() after EOF.
  std::string Recv(int timeout_ms) {
    if (!leftover_.empty()) return std::exchange(leftover_, "");
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return "";
    char buf[65536];
    ssize_t n = ::read(fd_.get(), buf, sizeof buf);
    if (n <= 0) {
      eof_ = true;
      return "";
    }
    return std::string(buf, n);
  }
  bool eof() const { return eof_; }

  // Sends a request and reads the response head; body bytes that came with
  // it stay for Recv. Returns the status; `head` gets the whole head.
  int Request(const std::string& method, const std::string& target,
              const std::vector<std::string>& headers, std::string* head = nullptr) {
    std::string r = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    for (const auto& h : headers) r += h + "\r\n";
    Send(r + "\r\n");
    std::string got;
    auto deadline = std::chrono::steady_clock::now() + 10s;
    size_t end;
    while ((end = got.find("\r\n\r\n")) == std::string::npos) {
      if (eof_ || std::chrono::steady_clock::now() > deadline) return -1;
      got += Recv(100);
    }
    leftover_ = got.substr(end + 4);
    if (head) *head = got.substr(0, end + 4);
    return std::stoi(got.substr(9, 3));
  }
  void ShutdownWrite() { ::shutdown(fd_.get(), SHUT_WR); }

 private:
  UniqueFd fd_;
  std::string leftover_;
  bool eof_ = false;
};

std::vector<std::string> WebSocketHeaders(const std::string& protocol) {
  return {"Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13",
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol: " + protocol};
}

class WsClient {
 public:
  explicit WsClient(RawConn& c) : c_(c) {}
  void SendBinary(std::string_view d) {
    c_.Send(EncodeWebSocketFrame(ws_opcode::kBinary, d, true, 0x1a2b3c4d));
  }
  void SendChannel(uint8_t ch, std::string_view d) {
    SendBinary(std::string(1, static_cast<char>(ch)) + std::string(d));
  }
  void SendClose() {
    c_.Send(
        EncodeWebSocketFrame(ws_opcode::kClose, WebSocketClosePayload(1000, ""), true, 0x1a2b3c4d));
  }
  // The next message, nullopt on timeout or EOF.
  std::optional<WebSocketMessage> Next(int timeout_ms) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (true) {
      if (auto m = dec_.Next()) return m;
      if (c_.eof() || std::chrono::steady_clock::now() > deadline) return std::nullopt;
      dec_.Feed(c_.Recv(50));
    }
  }

 private:
  RawConn& c_;
  WebSocketDecoder dec_{32 << 20, /*require_mask=*/false};
};

// Collects the channel.k8s.io output of an exec until the close frame.
struct ExecOutput {
  std::string out, err, error;
  bool closed = false;
};

ExecOutput ReadExecOutput(WsClient& ws, int timeout_ms = 10000) {
  ExecOutput o;
  while (auto m = ws.Next(timeout_ms)) {
    if (m->opcode == ws_opcode::kClose) {
      o.closed = true;
      ws.SendClose();
      break;
    }
    if (m->data.empty()) continue;
    std::string d = m->data.substr(1);
    switch (m->data[0]) {
      case k8s_channel::kStdout:
        o.out += d;
        break;
      case k8s_channel::kStderr:
        o.err += d;
        break;
      case k8s_channel::kError:
        o.error += d;
        break;
    }
  }
  return o;
}

// A single-threaded SPDY client: opens streams, sends data, and collects
// what the server sends per stream.
class SpdyClient {
 public:
  using SendFn = std::function<void(std::string_view)>;
  using RecvFn = std::function<std::string(int)>;
  SpdyClient(SendFn send, RecvFn recv) : send_(std::move(send)), recv_(std::move(recv)) {}

  uint32_t Open(const SpdyHeaders& headers) {
    uint32_t id = next_id_;
    next_id_ += 2;
    SpdyFrame f;
    f.type = SpdyFrameType::kSynStream;
    f.stream_id = id;
    f.headers = headers;
    send_(enc_.Encode(f));
    return id;
  }
  void Data(uint32_t id, std::string_view d, bool fin = false) {
    while (!d.empty() || fin) {
      SpdyFrame f;
      f.stream_id = id;
      size_t n = std::min<size_t>(d.size(), 16384);
      f.data = std::string(d.substr(0, n));
      d.remove_prefix(n);
      if (d.empty() && fin) f.flags = spdy::kFlagFin;
      send_(enc_.Encode(f));
      if (f.flags) break;
    }
  }
  // Reads for up to timeout_ms, dispatching frames.
  void Pump(int timeout_ms) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    do {
      while (auto f = dec_.Next()) {
        if (f->type == SpdyFrameType::kData) {
          data[f->stream_id] += f->data;
          if (f->flags & spdy::kFlagFin) fin[f->stream_id] = true;
        } else if (f->type == SpdyFrameType::kRstStream) {
          fin[f->stream_id] = true;
        } else if (f->type == SpdyFrameType::kGoAway) {
          goaway = true;
        } else if (f->type == SpdyFrameType::kSynReply) {
          replied[f->stream_id] = true;
        }
      }
      std::string got = recv_(20);
      if (!got.empty()) dec_.Feed(got);
    } while (std::chrono::steady_clock::now() < deadline);
  }
  bool PumpUntil(const std::function<bool()>& cond, int timeout_ms = 10000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (!cond()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      Pump(20);
    }
    return true;
  }

  std::map<uint32_t, std::string> data;
  std::map<uint32_t, bool> fin, replied;
  bool goaway = false;

 private:
  SendFn send_;
  RecvFn recv_;
  SpdyEncoder enc_;
  SpdyDecoder dec_;
  uint32_t next_id_ = 1;
};

std::vector<std::string> SpdyHeaders(const std::string& protocols) {
  return {"Connection: Upgrade", "Upgrade: SPDY/3.1", "X-Stream-Protocol-Version: " + protocols};
}

// --- the fixture --------------------------------------------------------------------

class PodStreamsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Options o;
    o.state_dir = dir_.path();
    server_ = std::make_unique<ApiServer>(o);
    server_->SetPodIo(&io_);
    server_->Start();
    http_ = std::make_unique<http::HttpClient>(
        http::ClientOptions{.base_url = "http://127.0.0.1:" + std::to_string(port())});
  }
  void TearDown() override {
    // Every session ended and every follow stopped: nothing leaked.
    EXPECT_TRUE(Eventually([&] { return io_.live_sessions == 0 && io_.active_follows == 0; }));
    server_->Stop();
  }
  int port() const { return server_->port(); }

  testing::TempDir dir_;
  FakePodIo io_;
  std::unique_ptr<ApiServer> server_;
  std::unique_ptr<http::HttpClient> http_;
};

const std::string kPod = "/api/v1/namespaces/default/pods/p";

// --- logs -------------------------------------------------------------------------

TEST_F(PodStreamsTest, LogAppliesTailAndLimit) {
  auto r = http_->Get(kPod + "/log?container=c&tailLines=2&timestamps=true");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, "line 4\nline 5\n");
  EXPECT_EQ(r.Header("Content-Type"), "text/plain");
  EXPECT_EQ(io_.last_log_options.container, "c");
  EXPECT_TRUE(io_.last_log_options.timestamps);
  r = http_->Get(kPod + "/log?limitBytes=3&sinceTime=2024-01-02T03:04:05Z");
  EXPECT_EQ(r.body, "lin");
  EXPECT_EQ(io_.last_log_options.since_time, "2024-01-02T03:04:05Z");
  r = http_->Get(kPod + "/log?sinceSeconds=10&previous=1");
  EXPECT_EQ(r.body, "line 1\nline 2\nline 3\nline 4\nline 5\n");
  EXPECT_EQ(io_.last_log_options.since_seconds, 10);
  EXPECT_TRUE(io_.last_log_options.previous);
}

TEST_F(PodStreamsTest, LogRejectsBadParameters) {
  auto r = http_->Get(kPod + "/log?tailLines=abc");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("tailLines"), std::string::npos) << r.body;
  r = http_->Get(kPod + "/log?tailLines=-1");
  EXPECT_EQ(r.status, 422);
  EXPECT_NE(r.body.find("tailLines"), std::string::npos) << r.body;
  r = http_->Get(kPod + "/log?limitBytes=0");
  EXPECT_EQ(r.status, 422);
  r = http_->Get(kPod + "/log?sinceSeconds=5&sinceTime=2024-01-02T03:04:05Z");
  EXPECT_EQ(r.status, 422);
  EXPECT_NE(r.body.find("at most one of"), std::string::npos) << r.body;
  r = http_->Get(kPod + "/log?sinceTime=yesterday");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("sinceTime"), std::string::npos) << r.body;
  r = http_->Get(kPod + "/log?follow=maybe");
  EXPECT_EQ(r.status, 400);
}

TEST_F(PodStreamsTest, LogOfMissingPodIs404Status) {
  auto r = http_->Get("/api/v1/namespaces/default/pods/missing/log");
  EXPECT_EQ(r.status, 404);
  Json s = Json::parse(r.body);
  EXPECT_EQ(s["reason"], "NotFound");
  EXPECT_EQ(s["message"], "pods \"missing\" not found");
}

TEST_F(PodStreamsTest, LogFollowEndsWhenClientLeaves) {
  std::string got;
  int status = http_->Stream("GET", kPod + "/log?follow=true", [&](std::string_view d) {
    got += d;
    return got.find("tick\ntick\n") == std::string::npos;
  });
  EXPECT_EQ(status, 200);
  EXPECT_EQ(got.rfind("line 1\n", 0), 0u) << got;
  // The follow on the server notices the client left and stops.
  EXPECT_TRUE(Eventually([&] { return io_.active_follows == 0; }));
}

TEST_F(PodStreamsTest, WithoutPodIoAnswers503) {
  server_->SetPodIo(nullptr);
  auto r = http_->Get(kPod + "/log");
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("no node agent serves pod I/O"), std::string::npos) << r.body;
  server_->SetPodIo(&io_);
}

// --- exec over WebSocket -------------------------------------------------------------

TEST_F(PodStreamsTest, WebSocketV5ExecWithStdinAndExitCode) {
  RawConn c(port());
  std::string head;
  int status = c.Request("GET",
                         kPod +
                             "/exec?command=sh&command=-c&command=read+x%3B+echo+out%3A%24x%3B+"
                             "echo+err%3A%24x+%3E%262%3B+cat%3B+exit+3"
                             "&stdin=true&stdout=true&stderr=true",
                         WebSocketHeaders("v5.channel.k8s.io, v4.channel.k8s.io"), &head);
  ASSERT_EQ(status, 101) << head;
  EXPECT_NE(head.find("Sec-WebSocket-Protocol: v5.channel.k8s.io"), std::string::npos) << head;
  WsClient ws(c);
  ws.SendChannel(k8s_channel::kStdin, "hello\n");
  ws.SendChannel(k8s_channel::kStdin, "rest");
  // v5: stdin EOF is a close message for channel 0; `cat` then ends.
  ws.SendChannel(k8s_channel::kClose, std::string(1, '\0'));
  ExecOutput o = ReadExecOutput(ws);
  EXPECT_TRUE(o.closed);
  EXPECT_EQ(o.out, "out:hello\nrest");
  EXPECT_EQ(o.err, "err:hello\n");
  Json s = Json::parse(o.error);
  EXPECT_EQ(s,
            ExitCodeStatus(3, {"sh", "-c", "read x; echo out:$x; echo err:$x >&2; cat; exit 3"}));
  EXPECT_EQ(s["status"], "Failure");
  EXPECT_EQ(s["reason"], "NonZeroExitCode");
  EXPECT_EQ(s["details"]["causes"][0]["reason"], "ExitCode");
  EXPECT_EQ(s["details"]["causes"][0]["message"], "3");
}

TEST_F(PodStreamsTest, WebSocketV4ExecSuccess) {
  RawConn c(port());
  std::string head;
  ASSERT_EQ(c.Request("GET", kPod + "/exec?command=echo&command=hi&stdout=true&stderr=true",
                      WebSocketHeaders("v4.channel.k8s.io"), &head),
            101)
      << head;
  EXPECT_NE(head.find("Sec-WebSocket-Protocol: v4.channel.k8s.io"), std::string::npos);
  WsClient ws(c);
  ExecOutput o = ReadExecOutput(ws);
  EXPECT_EQ(o.out, "hi\n");
  EXPECT_EQ(Json::parse(o.error), Json::parse(R"({"metadata":{},"status":"Success"})"));
}

TEST_F(PodStreamsTest, MissingCommandReports127) {
  RawConn c(port());
  ASSERT_EQ(c.Request("GET", kPod + "/exec?command=sh&command=-c&command=no-such-cmd&stdout=true",
                      WebSocketHeaders("v5.channel.k8s.io")),
            101);
  WsClient ws(c);
  ExecOutput o = ReadExecOutput(ws);
  EXPECT_EQ(Json::parse(o.error)["details"]["causes"][0]["message"], "127");
}

TEST_F(PodStreamsTest, ResizeReachesTheSession) {
  RawConn c(port());
  ASSERT_EQ(c.Request("GET", kPod + "/exec?command=cat&stdin=true&stdout=true&tty=true",
                      WebSocketHeaders("v5.channel.k8s.io")),
            101);
  WsClient ws(c);
  ws.SendChannel(k8s_channel::kResize, R"({"Width":100,"Height":40})");
  EXPECT_TRUE(Eventually([&] { return io_.width == 100 && io_.height == 40; }));
  ws.SendChannel(k8s_channel::kStdin, "typed");
  ws.SendChannel(k8s_channel::kClose, std::string(1, '\0'));
  ExecOutput o = ReadExecOutput(ws);
  EXPECT_EQ(o.out, "typed");
  EXPECT_EQ(Json::parse(o.error)["status"], "Success");
}

TEST_F(PodStreamsTest, ErrorsBeforeUpgradeAreStatusResponses) {
  RawConn c(port());
  std::string head;
  EXPECT_EQ(c.Request("GET", "/api/v1/namespaces/default/pods/missing/exec?command=ls&stdout=1",
                      WebSocketHeaders("v5.channel.k8s.io"), &head),
            404)
      << head;
  RawConn c2(port());
  EXPECT_EQ(c2.Request("POST", kPod + "/exec?command=ls&stdout=true&container=nope",
                       SpdyHeaders("v4.channel.k8s.io")),
            404);
  RawConn c3(port());
  EXPECT_EQ(c3.Request("GET", kPod + "/exec?stdout=true", WebSocketHeaders("v5.channel.k8s.io")),
            400);
}

TEST_F(PodStreamsTest, ClientLeavingKillsTheSession) {
  {
    RawConn c(port());
    ASSERT_EQ(c.Request("GET", kPod + "/exec?command=sleep&command=60&stdout=true",
                        WebSocketHeaders("v5.channel.k8s.io")),
              101);
    EXPECT_TRUE(Eventually([&] { return io_.live_sessions == 1; }));
  }
  EXPECT_TRUE(Eventually([&] { return io_.live_sessions == 0; }));
}

TEST_F(PodStreamsTest, AttachOverWebSocket) {
  RawConn c(port());
  ASSERT_EQ(c.Request("GET", kPod + "/attach?stdin=true&stdout=true&stderr=true",
                      WebSocketHeaders("v5.channel.k8s.io")),
            101);
  WsClient ws(c);
  ws.SendChannel(k8s_channel::kClose, std::string(1, '\0'));
  ExecOutput o = ReadExecOutput(ws);
  EXPECT_EQ(o.out, "attached\n");
  EXPECT_EQ(Json::parse(o.error)["status"], "Success");
}

// --- exec over SPDY -----------------------------------------------------------------

TEST_F(PodStreamsTest, SpdyExecWithStdinAndExitCode) {
  RawConn c(port());
  std::string head;
  ASSERT_EQ(
      c.Request("POST",
                kPod + "/exec?command=sh&command=-c&command=cat%3B+echo+oops+%3E%262%3B+exit+3"
                       "&stdin=true&stdout=true&stderr=true",
                SpdyHeaders("v4.channel.k8s.io,v3.channel.k8s.io"), &head),
      101)
      << head;
  EXPECT_NE(head.find("X-Stream-Protocol-Version: v4.channel.k8s.io"), std::string::npos) << head;
  SpdyClient sc([&](std::string_view d) { c.Send(d); }, [&](int t) { return c.Recv(t); });
  uint32_t err = sc.Open({{"streamtype", "error"}});
  uint32_t in = sc.Open({{"streamtype", "stdin"}});
  uint32_t out = sc.Open({{"streamtype", "stdout"}});
  uint32_t errout = sc.Open({{"streamtype", "stderr"}});
  sc.Data(in, "from stdin", /*fin=*/true);
  ASSERT_TRUE(sc.PumpUntil([&] { return sc.fin[err] && sc.fin[out] && sc.fin[errout]; }));
  EXPECT_EQ(sc.data[out], "from stdin");
  EXPECT_EQ(sc.data[errout], "oops\n");
  Json s = Json::parse(sc.data[err]);
  EXPECT_EQ(s["reason"], "NonZeroExitCode");
  EXPECT_EQ(s["details"]["causes"][0]["message"], "3");
}

TEST_F(PodStreamsTest, SpdyV2ExecWritesPlainErrorText) {
  RawConn c(port());
  ASSERT_EQ(c.Request("POST", kPod + "/exec?command=sh&command=-c&command=exit+4&stdout=true",
                      SpdyHeaders("v2.channel.k8s.io")),
            101);
  SpdyClient sc([&](std::string_view d) { c.Send(d); }, [&](int t) { return c.Recv(t); });
  uint32_t err = sc.Open({{"streamtype", "error"}});
  uint32_t out = sc.Open({{"streamtype", "stdout"}});
  ASSERT_TRUE(sc.PumpUntil([&] { return sc.fin[err] && sc.fin[out]; }));
  EXPECT_EQ(sc.data[err],
            "command terminated with non-zero exit code: error executing command "
            "[sh -c exit 4], exit code 4");
}

// --- port-forward ---------------------------------------------------------------------

std::string Pattern(size_t n, int seed) {
  std::string s(n, '\0');
  uint32_t x = 2463534242u + seed;
  for (auto& ch : s) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    ch = static_cast<char>(x);
  }
  return s;
}

// Two concurrent connections with 1 MiB each way, and a refused port.
void ExercisePortForward(SpdyClient& sc, int echo_port) {
  std::string port = std::to_string(echo_port);
  uint32_t e1 = sc.Open({{"streamtype", "error"}, {"port", port}, {"requestid", "0"}});
  uint32_t d1 = sc.Open({{"streamtype", "data"}, {"port", port}, {"requestid", "0"}});
  uint32_t e2 = sc.Open({{"streamtype", "error"}, {"port", port}, {"requestid", "1"}});
  uint32_t d2 = sc.Open({{"streamtype", "data"}, {"port", port}, {"requestid", "1"}});
  std::string a = Pattern(1 << 20, 1), b = Pattern(1 << 20, 2);
  for (size_t off = 0; off < a.size(); off += 65536) {
    sc.Data(d1, std::string_view(a).substr(off, 65536));
    sc.Data(d2, std::string_view(b).substr(off, 65536));
    sc.Pump(0);
  }
  ASSERT_TRUE(sc.PumpUntil(
      [&] { return sc.data[d1].size() >= a.size() && sc.data[d2].size() >= b.size(); }, 30000));
  EXPECT_TRUE(sc.data[d1] == a);
  EXPECT_TRUE(sc.data[d2] == b);
  // The client's FIN half-closes the socket; the echo server then closes
  // and both streams of the pair end.
  sc.Data(d1, "", /*fin=*/true);
  ASSERT_TRUE(sc.PumpUntil([&] { return sc.fin[d1] && sc.fin[e1]; }));
  EXPECT_EQ(sc.data[e1], "");

  // Nothing listens on port 1: the error stream says so.
  uint32_t e3 = sc.Open({{"streamtype", "error"}, {"port", "1"}, {"requestid", "2"}});
  uint32_t d3 = sc.Open({{"streamtype", "data"}, {"port", "1"}, {"requestid", "2"}});
  ASSERT_TRUE(sc.PumpUntil([&] { return sc.fin[e3] && sc.fin[d3]; }));
  EXPECT_NE(sc.data[e3].find("error forwarding port 1 to pod p"), std::string::npos) << sc.data[e3];
  EXPECT_FALSE(sc.fin[e2]);
  sc.Data(d2, "", /*fin=*/true);
  ASSERT_TRUE(sc.PumpUntil([&] { return sc.fin[d2] && sc.fin[e2]; }));
}

TEST_F(PodStreamsTest, SpdyPortForward) {
  EchoServer echo;
  RawConn c(port());
  std::string head;
  ASSERT_EQ(c.Request("POST", kPod + "/portforward", SpdyHeaders("portforward.k8s.io"), &head), 101)
      << head;
  SpdyClient sc([&](std::string_view d) { c.Send(d); }, [&](int t) { return c.Recv(t); });
  ExercisePortForward(sc, echo.port());
}

TEST_F(PodStreamsTest, SpdyPortForwardTunneledInWebSocket) {
  EchoServer echo;
  RawConn c(port());
  std::string head;
  ASSERT_EQ(c.Request("GET", kPod + "/portforward", WebSocketHeaders("SPDY/3.1+portforward.k8s.io"),
                      &head),
            101)
      << head;
  EXPECT_NE(head.find("Sec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io"), std::string::npos);
  WsClient ws(c);
  SpdyClient sc([&](std::string_view d) { ws.SendBinary(d); },
                [&](int t) -> std::string {
                  auto m = ws.Next(t);
                  return m && m->opcode == ws_opcode::kBinary ? m->data : "";
                });
  ExercisePortForward(sc, echo.port());
}

TEST_F(PodStreamsTest, WebSocketChannelPortForward) {
  EchoServer echo;
  RawConn c(port());
  ASSERT_EQ(c.Request("GET", kPod + "/portforward?ports=" + std::to_string(echo.port()) + ",1",
                      WebSocketHeaders("v4.channel.k8s.io")),
            101);
  WsClient ws(c);
  std::map<int, std::string> got;
  auto pump_until = [&](const std::function<bool()>& cond) {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!cond() && std::chrono::steady_clock::now() < deadline) {
      auto m = ws.Next(50);
      if (m && !m->data.empty()) got[static_cast<uint8_t>(m->data[0])] += m->data.substr(1);
    }
    return cond();
  };
  std::string port_le = {static_cast<char>(echo.port() & 0xff),
                         static_cast<char>(echo.port() >> 8)};
  std::string one_le = {1, 0};
  ASSERT_TRUE(
      pump_until([&] { return got[0].size() >= 2 && got[1].size() >= 2 && got[2].size() >= 2; }));
  EXPECT_EQ(got[0].substr(0, 2), port_le);
  EXPECT_EQ(got[1].substr(0, 2), port_le);
  EXPECT_EQ(got[2].substr(0, 2), one_le);
  ASSERT_TRUE(
      pump_until([&] { return got[3].find("error forwarding port 1") != std::string::npos; }));
  ws.SendChannel(0, "ping over channels");
  ASSERT_TRUE(pump_until([&] { return got[0].size() >= 2 + 18; }));
  EXPECT_EQ(got[0].substr(2), "ping over channels");
  ws.SendClose();
}

}  // namespace
}  // namespace kin::apiserver
