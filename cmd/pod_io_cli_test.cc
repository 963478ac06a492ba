#include "cmd/pod_io_cli.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <regex>
#include <sstream>
#include <thread>

#include "base/error.h"
#include "base/fd.h"
#include "base/http_server.h"
#include "base/spdy.h"
#include "base/strings.h"
#include "base/tls.h"
#include "base/websocket.h"
#include "base/yaml.h"
#include "cmd/kubeconfig.h"
#include "testing/e2e_support.h"

namespace kin::cmd {
namespace {

using namespace std::chrono_literals;

Json PodJson(const std::string& name, const std::vector<std::string>& containers,
             const std::string& phase = "Running") {
  Json cs = Json::array();
  for (const auto& c : containers) cs.push_back({{"name", c}, {"image", "busybox"}});
  return {{"kind", "Pod"},
          {"apiVersion", "v1"},
          {"metadata", {{"name", name}, {"namespace", "default"}}},
          {"spec", {{"containers", cs}}},
          {"status", {{"phase", phase}}}};
}

std::string NotFoundStatus(const std::string& pod) {
  return Json{{"kind", "Status"},
              {"apiVersion", "v1"},
              {"metadata", Json::object()},
              {"status", "Failure"},
              {"message", "pods \"" + pod + "\" not found"},
              {"reason", "NotFound"},
              {"details", {{"name", pod}, {"kind", "pods"}}},
              {"code", 404}}
      .dump();
}

// A fake API server: GET of pod "p" (containers app, side), /log, /exec,
// /portforward; records the requests it saw.
class FakeApi {
 public:
  explicit FakeApi(http::ServerOptions o = {})
      : server_(std::move(o),
                [this](http::Request& req, http::Response& resp) { Handle(req, resp); }) {
    server_.Start();
  }
  ~FakeApi() { server_.Stop(); }

  ApiTarget Target() const {
    return {.server = "http://127.0.0.1:" + std::to_string(server_.port())};
  }
  int port() const { return server_.port(); }

  std::string LastQuery(const std::string& suffix) {
    std::lock_guard lock(mu_);
    return queries_[suffix];
  }

  // Logs: the second chunk goes out once `release_second_chunk` is set.
  std::atomic<bool> release_second_chunk{false};
  std::string pod_phase = "Running";
  std::vector<std::string> containers = {"app", "side"};
  std::atomic<int> portforward_sessions{0};

 private:
  void Record(const std::string& suffix, const http::Request& req) {
    std::lock_guard lock(mu_);
    queries_[suffix] = req.raw_query;
  }

  void Handle(http::Request& req, http::Response& resp) {
    const std::string base = "/api/v1/namespaces/default/pods/p";
    if (req.path.rfind("/api/v1/namespaces/default/pods/", 0) != 0 ||
        req.path.rfind(base, 0) != 0) {
      std::string name = req.path.substr(req.path.rfind('/') + 1);
      if (req.path.find("/pods/") != std::string::npos) {
        name = req.path.substr(req.path.find("/pods/") + 6);
        name = name.substr(0, name.find('/'));
      }
      resp.Set(404, "application/json", NotFoundStatus(name));
      return;
    }
    if (req.path == base) {
      resp.Set(200, "application/json", PodJson("p", containers, pod_phase).dump());
    } else if (req.path == base + "/log") {
      Record("log", req);
      if (req.Query("container") == "waiting") {
        resp.Set(400, "application/json",
                 Json{{"kind", "Status"},
                      {"status", "Failure"},
                      {"message",
                       "container \"waiting\" in pod \"p\" is waiting to start: ContainerCreating"},
                      {"reason", "BadRequest"},
                      {"code", 400}}
                     .dump());
        return;
      }
      resp.headers.emplace("Content-Type", "text/plain");
      resp.stream = [this](http::Stream& s) {
        s.Write("line 1\n");
        auto deadline = std::chrono::steady_clock::now() + 10s;
        while (!release_second_chunk && std::chrono::steady_clock::now() < deadline) {
          std::this_thread::sleep_for(5ms);
        }
        s.Write("line 2\n");
      };
    } else if (req.path == base + "/exec") {
      Record("exec", req);
      AcceptWebSocket(req, {k8s_channel::kV5Protocol, k8s_channel::kV4Protocol}, resp);
      if (req.Query("tty") == "true") {
        resp.upgrade = [this](http::Conn& c) { ServeTtyExec(c); };
      } else {
        resp.upgrade = [](http::Conn& c) { ServeExec(c); };
      }
    } else if (req.path == base + "/portforward") {
      Record("portforward", req);
      AcceptWebSocket(req, {k8s_channel::kPortForwardTunnelProtocol}, resp);
      resp.upgrade = [this](http::Conn& c) {
        ++portforward_sessions;
        ServePortForward(c);
      };
    } else {
      resp.Set(404, "text/plain", "no such path");
    }
  }

  // Echoes stdin to stdout until stdin closes, writes "to stderr" on
  // stderr, then ends with exit code 3.
  static void ServeExec(http::Conn& c) {
    WebSocketConnection ws(c);
    ChannelMux mux(ws, 5);
    while (auto m = mux.Read(10000)) {
      if (m->closed && m->channel == k8s_channel::kStdin) break;
      if (m->channel == k8s_channel::kStdin) mux.Write(k8s_channel::kStdout, m->data);
    }
    mux.Write(k8s_channel::kStderr, "to stderr\n");
    Json status = {{"metadata", Json::object()},
                   {"status", "Failure"},
                   {"message", "command terminated with non-zero exit code: exit status 3"},
                   {"reason", "NonZeroExitCode"},
                   {"details", {{"causes", {{{"reason", "ExitCode"}, {"message", "3"}}}}}}};
    mux.Write(k8s_channel::kError, status.dump());
    ws.SendClose(ws_close::kNormal);
    ws.Receive(2000);
  }

  // A TTY session: records resize messages, echoes stdin until a "q",
  // then ends with success.
  void ServeTtyExec(http::Conn& c) {
    WebSocketConnection ws(c);
    ChannelMux mux(ws, 5);
    while (auto m = mux.Read(10000)) {
      if (m->channel == k8s_channel::kResize) {
        std::lock_guard lock(mu_);
        resizes.push_back(m->data);
      } else if (m->channel == k8s_channel::kStdin) {
        mux.Write(k8s_channel::kStdout, m->data);
        if (m->data.find('q') != std::string::npos) break;
      }
    }
    mux.Write(k8s_channel::kError, R"({"metadata":{},"status":"Success"})");
    ws.SendClose(ws_close::kNormal);
    ws.Receive(2000);
  }

 public:
  std::vector<std::string> resizes;  // guarded by mu_
  std::vector<std::string> Resizes() {
    std::lock_guard lock(mu_);
    return resizes;
  }

 private:
  // SPDY over WebSocket: echoes the data stream prefixed with the port
  // header's value ("80:"), closing the write side after the client's FIN.
  static void ServePortForward(http::Conn& c) {
    WebSocketConnection ws(c);
    WebSocketByteStream bytes(ws);
    SpdySession session(bytes);
    std::shared_ptr<SpdyStream> data, error;
    while (!(data && error)) {
      auto stream = session.AcceptStream(10000);
      if (!stream) break;
      (stream->Header("streamtype") == "data" ? data : error) = stream;
    }
    if (data && error) {
      if (data->Header("port") == "81") {  // nothing listens there
        error->Write("error forwarding port 81 to pod p, uid : connection refused");
      } else {
        data->Write(data->Header("port") + ":");
        char buf[4096];
        long n;
        while ((n = data->Read(buf, sizeof buf, 10000)) > 0) data->Write(std::string_view(buf, n));
      }
      data->CloseWrite();
      error->CloseWrite();
    }
    session.WaitDone(5000);
    session.Close();
  }

  http::Server server_;
  std::mutex mu_;
  std::map<std::string, std::string> queries_;
};

// An ostream whose writes can be watched while RunLogs is still running.
class WatchedBuf : public std::stringbuf {
 public:
  std::function<void()> on_write;

 protected:
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    auto r = std::stringbuf::xsputn(s, n);
    if (on_write) on_write();
    return r;
  }
};

TEST(PodIoHelpers, ParsesGoDurations) {
  EXPECT_EQ(ParseGoDurationSeconds("5m"), 300);
  EXPECT_EQ(ParseGoDurationSeconds("1h30m"), 5400);
  EXPECT_EQ(ParseGoDurationSeconds("10s"), 10);
  EXPECT_EQ(ParseGoDurationSeconds("1.5s"), 2);
  EXPECT_EQ(ParseGoDurationSeconds("300ms"), 1);
  EXPECT_EQ(ParseGoDurationSeconds("0"), 0);
  EXPECT_EQ(ParseGoDurationSeconds("5"), std::nullopt);
  EXPECT_EQ(ParseGoDurationSeconds("5x"), std::nullopt);
  EXPECT_EQ(ParseGoDurationSeconds(""), std::nullopt);
}

TEST(PodIoHelpers, ParsesPortMappings) {
  EXPECT_EQ(ParsePortMapping("8080:80"), std::make_pair(8080, 80));
  EXPECT_EQ(ParsePortMapping("80"), std::make_pair(80, 80));
  EXPECT_EQ(ParsePortMapping(":80"), std::make_pair(0, 80));
  EXPECT_EQ(ParsePortMapping("0:80"), std::make_pair(0, 80));
  EXPECT_THROW(ParsePortMapping("x:80"), Error);
  EXPECT_THROW(ParsePortMapping("80:0"), Error);
  EXPECT_THROW(ParsePortMapping("70000"), Error);
}

TEST(PodIoKubeconfig, ReadsTheCurrentContextAndInlineCredentials) {
  kin::testing::TempDir dir;
  KubeconfigEntry e{.cluster_name = "dev",
                    .server = "https://127.0.0.1:6443",
                    .ca_pem = "CA PEM\n",
                    .client_cert_pem = "CERT PEM\n",
                    .client_key_pem = "KEY PEM\n"};
  MergeKubeconfig(dir.File("config"), e);
  ApiTarget t = ApiTargetFromKubeconfig(dir.File("config"), "");
  EXPECT_EQ(t.server, "https://127.0.0.1:6443");
  EXPECT_EQ(t.ca_pem, "CA PEM\n");
  EXPECT_EQ(t.cert_pem, "CERT PEM\n");
  EXPECT_EQ(t.key_pem, "KEY PEM\n");
  EXPECT_EQ(ApiTargetFromKubeconfig(dir.File("config"), "kin-dev").server, t.server);
  EXPECT_THROW(ApiTargetFromKubeconfig(dir.File("config"), "nope"), Error);
}

TEST(PodIoKubeconfig, ReadsFileReferencesRelativeToTheKubeconfig) {
  kin::testing::TempDir dir;
  kin::testing::WriteFile(dir.File("ca.crt"), "CA FILE\n");
  kin::testing::WriteFile(dir.File("c.crt"), "CERT FILE\n");
  kin::testing::WriteFile(dir.File("c.key"), "KEY FILE\n");
  kin::testing::WriteFile(dir.File("config"), R"(apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://10.0.0.1:6443", certificate-authority: ca.crt}
users:
- name: u
  user: {client-certificate: c.crt, client-key: c.key}
contexts:
- name: x
  context: {cluster: c, user: u, namespace: team}
current-context: x
)");
  ApiTarget t = ApiTargetFromKubeconfig(dir.File("config"), "");
  EXPECT_EQ(t.server, "https://10.0.0.1:6443");
  EXPECT_EQ(t.ca_pem, "CA FILE\n");
  EXPECT_EQ(t.cert_pem, "CERT FILE\n");
  EXPECT_EQ(t.key_pem, "KEY FILE\n");
  EXPECT_EQ(t.namespace_, "team");
}

TEST(PodIoLogs, FollowStreamsAsItArrivesWithKubectlQuery) {
  FakeApi api;
  WatchedBuf buf;
  std::ostream out(&buf);
  std::ostringstream err;
  buf.on_write = [&] { api.release_second_chunk = true; };
  LogsOptions o{.pod = "p",
                .container = "app",
                .follow = true,
                .tail = 10,
                .since = "5m",
                .timestamps = true,
                .previous = true,
                .limit_bytes = 100};
  // The server holds line 2 back until line 1 reached `out`: the test only
  // completes when RunLogs writes chunks as they come.
  EXPECT_EQ(RunLogs(api.Target(), o, out, err), 0) << err.str();
  EXPECT_EQ(buf.str(), "line 1\nline 2\n");
  EXPECT_EQ(api.LastQuery("log"),
            "container=app&follow=true&limitBytes=100&previous=true&sinceSeconds=300&tailLines=10&"
            "timestamps=true");
  EXPECT_EQ(err.str(), "");
}

TEST(PodIoLogs, DefaultsToTheFirstContainerAndSaysSo) {
  FakeApi api;
  api.release_second_chunk = true;
  std::ostringstream out, err;
  EXPECT_EQ(RunLogs(api.Target(), {.pod = "p"}, out, err), 0);
  EXPECT_EQ(api.LastQuery("log"), "container=app");
  EXPECT_EQ(err.str(), "Defaulted container \"app\" out of: app, side\n");
  EXPECT_EQ(out.str(), "line 1\nline 2\n");
}

TEST(PodIoLogs, PrintsServerErrorsLikeKubectl) {
  FakeApi api;
  std::ostringstream out, err;
  EXPECT_EQ(RunLogs(api.Target(), {.pod = "x"}, out, err), 1);
  EXPECT_EQ(err.str(), "Error from server (NotFound): pods \"x\" not found\n");

  std::ostringstream out2, err2;
  EXPECT_EQ(RunLogs(api.Target(), {.pod = "p", .container = "waiting"}, out2, err2), 1);
  EXPECT_EQ(err2.str(),
            "Error from server (BadRequest): container \"waiting\" in pod \"p\" is waiting to "
            "start: ContainerCreating\n");
  EXPECT_EQ(out2.str(), "");

  std::ostringstream out3, err3;
  EXPECT_EQ(RunLogs(api.Target(), {.pod = "p", .since = "5m", .since_time = "2024-01-01T00:00:00Z"},
                    out3, err3),
            1);
  EXPECT_NE(err3.str().find("at most one of"), std::string::npos);
}

struct Pipe {
  Pipe() {
    int p[2];
    EXPECT_EQ(::pipe2(p, O_CLOEXEC), 0);
    read.reset(p[0]);
    write.reset(p[1]);
  }
  UniqueFd read, write;
};

std::string ReadAll(int fd) {
  std::string s;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) s.append(buf, n);
  return s;
}

TEST(PodIoExec, CopiesStdinAndOutputAndReturnsTheExitCode) {
  FakeApi api;
  Pipe in, out, err;
  const std::string input = "hello\n" + std::string(200000, 'z') + "\n";
  std::thread feeder([&] {
    std::string_view rest = input;
    while (!rest.empty()) {
      ssize_t n = ::write(in.write.get(), rest.data(), rest.size());
      if (n <= 0) break;
      rest.remove_prefix(n);
    }
    in.write.reset();  // EOF -> close of channel 0
  });
  std::string got_out, got_err;
  std::thread out_reader([&] { got_out = ReadAll(out.read.get()); });
  std::thread err_reader([&] { got_err = ReadAll(err.read.get()); });
  ExecOptions o{.pod = "p",
                .container = "app",
                .command = {"sh", "-c", "cat; exit 3"},
                .pass_stdin = true,
                .tty = true,  // not a terminal: warned about and dropped
                .in_fd = in.read.get(),
                .out_fd = out.write.get(),
                .err_fd = err.write.get()};
  int code = RunExec(api.Target(), o);
  out.write.reset();
  err.write.reset();
  feeder.join();
  out_reader.join();
  err_reader.join();
  EXPECT_EQ(code, 3);
  EXPECT_TRUE(got_out == input) << "stdout got " << got_out.size() << " bytes";
  EXPECT_EQ(got_err,
            "Unable to use a TTY - input is not a terminal or the right kind of file\n"
            "to stderr\n"
            "command terminated with exit code 3\n");
  EXPECT_EQ(api.LastQuery("exec"),
            "command=sh&command=-c&command=cat%3B%20exit%203&container=app&stdin=true&stdout=true&"
            "stderr=true");
}

TEST(PodIoExec, ReportsAMissingPodLikeKubectl) {
  FakeApi api;
  Pipe err;
  ExecOptions o{.pod = "nope", .command = {"true"}, .err_fd = err.write.get()};
  EXPECT_EQ(RunExec(api.Target(), o), 1);
  err.write.reset();
  EXPECT_EQ(ReadAll(err.read.get()), "Error from server (NotFound): pods \"nope\" not found\n");
}

TEST(PodIoExec, TtyPutsTheTerminalInRawModeSendsItsSizeAndRestoresIt) {
  FakeApi api;
  int master_fd = -1, slave_fd = -1;
  winsize size{};
  size.ws_row = 40;
  size.ws_col = 100;
  ASSERT_EQ(::openpty(&master_fd, &slave_fd, nullptr, nullptr, &size), 0);
  UniqueFd master(master_fd), slave(slave_fd);
  termios before{};
  ASSERT_EQ(::tcgetattr(slave.get(), &before), 0);
  ASSERT_NE(before.c_lflag & ICANON, 0u);
  Pipe out, err;
  std::string got_out;
  std::thread out_reader([&] { got_out = ReadAll(out.read.get()); });
  std::atomic<bool> raw_seen{false};
  std::thread typist([&] {
    // Type once the terminal is raw: then "q" goes out without a newline.
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      termios now{};
      ::tcgetattr(slave.get(), &now);
      if ((now.c_lflag & ICANON) == 0) {
        raw_seen = true;
        break;
      }
      std::this_thread::sleep_for(2ms);
    }
    ::write(master.get(), "abq", 3);
  });
  ExecOptions o{.pod = "p",
                .command = {"sh"},
                .pass_stdin = true,
                .tty = true,
                .quiet = true,
                .in_fd = slave.get(),
                .out_fd = out.write.get(),
                .err_fd = err.write.get()};
  EXPECT_EQ(RunExec(api.Target(), o), 0);
  typist.join();
  out.write.reset();
  err.write.reset();
  out_reader.join();
  EXPECT_TRUE(raw_seen);
  EXPECT_EQ(got_out, "abq");
  EXPECT_EQ(ReadAll(err.read.get()), "");
  termios after{};
  ASSERT_EQ(::tcgetattr(slave.get(), &after), 0);
  EXPECT_EQ(after.c_lflag, before.c_lflag);
  EXPECT_EQ(after.c_iflag, before.c_iflag);
  EXPECT_EQ(api.LastQuery("exec"), "command=sh&container=app&stdin=true&stdout=true&tty=true");
  auto resizes = api.Resizes();
  ASSERT_FALSE(resizes.empty());
  EXPECT_EQ(Json::parse(resizes[0]), (Json{{"Width", 100}, {"Height", 40}}));
}

int ConnectLoopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// A thread-safe stringbuf, so the test can read what RunPortForward printed
// while it runs.
class SyncBuf : public std::stringbuf {
 public:
  std::string Text() {
    std::lock_guard lock(mu_);
    return str();
  }

 protected:
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    std::lock_guard lock(mu_);
    return std::stringbuf::xsputn(s, n);
  }
  int overflow(int c) override {
    std::lock_guard lock(mu_);
    return std::stringbuf::overflow(c);
  }

 private:
  std::recursive_mutex mu_;  // xsputn may call overflow
};

TEST(PodIoPortForward, ForwardsConcurrentConnectionsOverSpdyTunnel) {
  FakeApi api;
  SyncBuf out_buf, err_buf;
  std::ostream out(&out_buf), err(&err_buf);
  std::atomic<bool> stop{false};
  int rc = -1;
  std::thread pf([&] {
    rc = RunPortForward(api.Target(), {.pod = "p", .ports = {":80"}, .addresses = {"127.0.0.1"}},
                        out, err, [&] { return stop.load(); });
  });
  std::smatch match;
  std::string text;
  const std::regex forwarding("Forwarding from 127\\.0\\.0\\.1:(\\d+) -> 80\n");
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!std::regex_search(text = out_buf.Text(), match, forwarding) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(std::regex_search(text, match, forwarding)) << text << err_buf.Text();
  const int local_port = std::stoi(match[1]);

  auto exchange = [&](const std::string& payload) {
    UniqueFd fd(ConnectLoopback(local_port));
    EXPECT_TRUE(fd.valid());
    std::string_view rest = payload;
    while (!rest.empty()) {
      ssize_t n = ::send(fd.get(), rest.data(), rest.size(), MSG_NOSIGNAL);
      if (n <= 0) break;
      rest.remove_prefix(n);
    }
    ::shutdown(fd.get(), SHUT_WR);
    return ReadAll(fd.get());
  };
  std::string big(300000, 'q');
  std::string r1, r2;
  std::thread c1([&] { r1 = exchange("first"); });
  std::thread c2([&] { r2 = exchange(big); });
  c1.join();
  c2.join();
  EXPECT_EQ(r1, "80:first");
  EXPECT_TRUE(r2 == "80:" + big) << "got " << r2.size() << " bytes";
  EXPECT_EQ(api.portforward_sessions.load(), 2);
  EXPECT_EQ(api.LastQuery("portforward"), "ports=80");

  stop = true;
  pf.join();
  EXPECT_EQ(rc, 0);
  EXPECT_NE(out_buf.Text().find("Handling connection for " + std::to_string(local_port)),
            std::string::npos);
  EXPECT_EQ(err_buf.Text(), "");
  EXPECT_EQ(ConnectLoopback(local_port), -1) << "listener still open after stop";
}

TEST(PodIoPortForward, ReportsTheServersForwardingError) {
  FakeApi api;
  SyncBuf out_buf, err_buf;
  std::ostream out(&out_buf), err(&err_buf);
  std::atomic<bool> stop{false};
  std::thread pf([&] {
    RunPortForward(api.Target(), {.pod = "p", .ports = {"0:81"}, .addresses = {"127.0.0.1"}}, out,
                   err, [&] { return stop.load(); });
  });
  std::smatch match;
  std::string text;
  const std::regex forwarding("Forwarding from 127\\.0\\.0\\.1:(\\d+) -> 81\n");
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!std::regex_search(text = out_buf.Text(), match, forwarding) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(std::regex_search(text, match, forwarding)) << text << err_buf.Text();
  const int local_port = std::stoi(match[1]);
  UniqueFd fd(ConnectLoopback(local_port));
  ASSERT_TRUE(fd.valid());
  EXPECT_EQ(ReadAll(fd.get()), "");  // dropped, as kubectl drops it
  deadline = std::chrono::steady_clock::now() + 10s;
  while (err_buf.Text().empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  stop = true;
  pf.join();
  EXPECT_EQ(err_buf.Text(),
            "error: an error occurred forwarding " + std::to_string(local_port) +
                " -> 81: error forwarding port 81 to pod p, uid : connection refused\n");
}

TEST(PodIoPortForward, RefusesAPodThatIsNotRunning) {
  FakeApi api;
  api.pod_phase = "Pending";
  std::ostringstream out, err;
  EXPECT_EQ(
      RunPortForward(api.Target(), {.pod = "p", .ports = {"0:80"}}, out, err, [] { return true; }),
      1);
  EXPECT_EQ(err.str(),
            "error: unable to forward port because pod is not running. Current status=Pending\n");
}

// The whole path over TLS with client certificates, as a kubeconfig gives them.
TEST(PodIoExec, WorksOverTlsWithClientCertificates) {
  kin::testing::TempDir dir;
  auto ca = tls::GenerateCa("ca");
  auto serving = tls::IssueCertificate(
      ca, {.common_name = "apiserver", .ip_addresses = {"127.0.0.1"}, .server_auth = true});
  auto client = tls::IssueCertificate(ca, {.common_name = "kubernetes-admin",
                                           .organizations = {"system:masters"},
                                           .client_auth = true});
  kin::testing::WriteFile(dir.File("tls.crt"), serving.cert_pem);
  kin::testing::WriteFile(dir.File("tls.key"), serving.key_pem);
  kin::testing::WriteFile(dir.File("ca.crt"), ca.cert_pem);
  http::ServerOptions so;
  so.tls = http::TlsServerOptions{.cert_file = dir.File("tls.crt"),
                                  .key_file = dir.File("tls.key"),
                                  .client_ca_file = dir.File("ca.crt")};
  so.require_client_cert = true;
  FakeApi api(so);
  ApiTarget t{.server = "https://127.0.0.1:" + std::to_string(api.port()),
              .ca_pem = ca.cert_pem,
              .cert_pem = client.cert_pem,
              .key_pem = client.key_pem};
  Pipe in, out, err;
  ::write(in.write.get(), "x", 1);
  in.write.reset();
  ExecOptions o{.pod = "p",
                .command = {"cat"},
                .pass_stdin = true,
                .quiet = true,
                .in_fd = in.read.get(),
                .out_fd = out.write.get(),
                .err_fd = err.write.get()};
  EXPECT_EQ(RunExec(t, o), 3);
  out.write.reset();
  err.write.reset();
  EXPECT_EQ(ReadAll(out.read.get()), "x");
  EXPECT_EQ(ReadAll(err.read.get()), "to stderr\ncommand terminated with exit code 3\n");
  EXPECT_EQ(api.LastQuery("exec"), "command=cat&container=app&stdin=true&stdout=true&stderr=true");
}

}  // namespace
}  // namespace kin::cmd
