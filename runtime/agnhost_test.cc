// agnhost runs as its own process here (agnhost_test_main), the way the node
// agent runs `kin agnhost ...`, so tests can signal it and /exit can end it.
// Only loopback traffic; ports are picked free just before use.
#include "runtime/agnhost.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "base/http_client.h"
#include "base/process.h"
#include "base/yaml.h"
#include "testing/kernel_fixture.h"

namespace kin::agnhost {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

std::string Hostname() {
  char buf[256] = {};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

// A port free for both TCP and UDP on loopback right now.
int FreePort() {
  for (;;) {
    UniqueFd t(::socket(AF_INET, SOCK_STREAM, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(t.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(t.get(), reinterpret_cast<sockaddr*>(&a), &len);
    UniqueFd u(::socket(AF_INET, SOCK_DGRAM, 0));
    if (::bind(u.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return ntohs(a.sin_port);
  }
}

ChildProcess Start(std::vector<std::string> args, std::map<std::string, std::string> env = {},
                   bool pipe_stdout = false) {
  SpawnOptions o;
  o.argv = {AGNHOST_TEST_MAIN};
  o.argv.insert(o.argv.end(), args.begin(), args.end());
  o.env_extra = std::move(env);
  o.stdin_mode = SpawnOptions::Stdio::kNull;
  if (pipe_stdout) o.stdout_mode = SpawnOptions::Stdio::kPipe;
  return ChildProcess::Spawn(o);
}

// GET, or nullopt while nothing answers.
std::optional<http::ClientResponse> TryGet(int port, const std::string& path,
                                           const http::Headers& h = {}) {
  try {
    http::HttpClient c(http::ClientOptions{.base_url = "http://127.0.0.1:" + std::to_string(port),
                                           .timeout_ms = 20000});
    return c.Get(path, h);
  } catch (const Error&) {
    return std::nullopt;
  }
}

http::ClientResponse Get(int port, const std::string& path, const http::Headers& h = {}) {
  auto r = TryGet(port, path, h);
  if (!r) throw Error::Unavailable("GET " + path + " on port " + std::to_string(port) + " failed");
  return *r;
}

void WaitServing(int port) {
  ASSERT_TRUE(testing::Eventually([&] { return TryGet(port, "/hostname").has_value(); }));
}

// Sends `msg` over UDP to loopback:port; the reply, or nullopt within `wait`.
std::optional<std::string> Udp(int port, const std::string& msg, milliseconds wait = seconds(5)) {
  UniqueFd fd(::socket(AF_INET, SOCK_DGRAM, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::send(fd.get(), msg.data(), msg.size(), 0);
  pollfd p{fd.get(), POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0) return std::nullopt;
  char buf[2048];
  ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
  if (n < 0) return std::nullopt;
  return std::string(buf, static_cast<size_t>(n));
}

class NetexecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    http_port_ = FreePort();
    udp_port_ = FreePort();
    proc_ = Start({"netexec", "--http-port=" + std::to_string(http_port_), "--udp-port",
                   std::to_string(udp_port_), "-delay-shutdown=30"});
    WaitServing(http_port_);
  }
  int http_port_ = 0, udp_port_ = 0;
  ChildProcess proc_;
};

TEST_F(NetexecTest, HostnameClientIpEchoAndRoot) {
  EXPECT_EQ(Get(http_port_, "/hostname").body, Hostname());
  EXPECT_EQ(Get(http_port_, "/hostName").body, Hostname());
  std::string ip = Get(http_port_, "/clientip").body;
  EXPECT_EQ(ip.rfind("127.0.0.1:", 0), 0u) << ip;
  EXPECT_GT(std::stoi(ip.substr(10)), 0);

  auto echo = Get(http_port_, "/echo?msg=hello%20world");
  EXPECT_EQ(echo.status, 200);
  EXPECT_EQ(echo.body, "hello world");
  auto coded = Get(http_port_, "/echo?msg=teapot&code=418");
  EXPECT_EQ(coded.status, 418);
  EXPECT_EQ(coded.body, "teapot");
  EXPECT_EQ(Get(http_port_, "/echo?code=x").body,
            "argument 'code' must be an integer or empty, got \"x\"\n");

  EXPECT_EQ(Get(http_port_, "/").body.rfind("NOW: 20", 0), 0u);
  EXPECT_EQ(Get(http_port_, "/anything/else").body.rfind("NOW: ", 0), 0u);
}

TEST_F(NetexecTest, HeaderHealthzReadyz) {
  EXPECT_EQ(Get(http_port_, "/header?key=X-Test", {{"x-test", "v1"}}).body, "v1");
  auto all = Json::parse(Get(http_port_, "/header", {{"x-multi-word", "a"}}).body);
  EXPECT_EQ(all["X-Multi-Word"], Json::array({"a"}));
  EXPECT_FALSE(all.contains("Host"));

  EXPECT_EQ(Get(http_port_, "/healthz").status, 200);
  auto ready = Get(http_port_, "/readyz");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(ready.body, "ok");

  // After SIGTERM, --delay-shutdown keeps serving but reports not ready.
  proc_.Signal(SIGTERM);
  ASSERT_TRUE(testing::Eventually([&] {
    auto r = TryGet(http_port_, "/readyz");
    return r && r->status == 503 && r->body == "shutting down";
  }));
  EXPECT_EQ(Get(http_port_, "/healthz").status, 200);
}

TEST(Netexec, WithoutUdpHealthzIsPreconditionFailedAndSigtermExitsZero) {
  int port = FreePort();
  auto p = Start({"netexec", "--http-port", std::to_string(port), "--udp-port=-1"});
  WaitServing(port);
  EXPECT_EQ(Get(port, "/healthz").status, 412);
  EXPECT_EQ(Get(port, "/readyz").status, 412);
  p.Signal(SIGTERM);
  auto st = p.WaitFor(seconds(10));
  ASSERT_TRUE(st);
  EXPECT_TRUE(st->success()) << st->ToString();
}

TEST(Netexec, SctpPortIsRefused) {
  auto p = Start({"netexec", "--http-port=" + std::to_string(FreePort()), "--sctp-port=9999"});
  auto st = p.WaitFor(seconds(10));
  ASSERT_TRUE(st);
  EXPECT_EQ(st->code, 1);
}

TEST_F(NetexecTest, UdpProtocol) {
  EXPECT_EQ(Udp(udp_port_, "hostname"), Hostname());
  EXPECT_EQ(Udp(udp_port_, "  HostName \n"), Hostname());
  EXPECT_EQ(Udp(udp_port_, "echo Hello There"), "hello there");
  auto ip = Udp(udp_port_, "clientip");
  ASSERT_TRUE(ip);
  EXPECT_EQ(ip->rfind("127.0.0.1:", 0), 0u) << *ip;
  EXPECT_EQ(Udp(udp_port_, "nonsense", milliseconds(300)), std::nullopt);
}

TEST_F(NetexecTest, DialOverHttpAndUdp) {
  std::string base = "/dial?host=127.0.0.1&port=";
  auto h = Get(http_port_, base + std::to_string(http_port_) + "&request=hostname&tries=2");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.body, Json({{"responses", {Hostname(), Hostname()}}}).dump());

  auto u = Get(http_port_, base + std::to_string(udp_port_) + "&request=echo%20hi&protocol=udp");
  EXPECT_EQ(u.body, R"({"responses":["hi"]})");

  int closed = FreePort();
  auto bad = Get(http_port_, base + std::to_string(closed) + "&request=hostname");
  EXPECT_EQ(bad.status, 200);
  auto j = Json::parse(bad.body);
  EXPECT_FALSE(j.contains("responses"));
  ASSERT_EQ(j["errors"].size(), 1u);
  EXPECT_NE(j["errors"][0].get<std::string>().find(
                "Get \"http://127.0.0.1:" + std::to_string(closed) + "/hostname\""),
            std::string::npos)
      << bad.body;

  auto udp_bad = Json::parse(
      Get(http_port_, base + std::to_string(closed) + "&request=hostname&protocol=udp").body);
  ASSERT_EQ(udp_bad["errors"].size(), 1u);
  EXPECT_EQ(udp_bad["errors"][0].get<std::string>().rfind(
                "reading from udp connection failed. err:'read udp 127.0.0.1:", 0),
            0u)
      << udp_bad.dump();

  auto missing = Get(http_port_, base + "1");
  EXPECT_EQ(missing.status, 400);
  EXPECT_EQ(missing.body, "request parameter not specified. <nil>\n");
}

TEST_F(NetexecTest, ShellAndRedirect) {
  auto ok = Get(http_port_, "/shell?cmd=" + http::UrlEncode("echo out; echo err >&2"));
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.body, R"({"output":"out\nerr\n"})");
  auto fail = Get(http_port_, "/shell?cmd=" + http::UrlEncode("exit 3"));
  EXPECT_EQ(fail.body, R"({"error":"exit status 3"})");

  auto r = Get(http_port_, "/redirect?location=" + http::UrlEncode("/echo?msg=foo") + "&code=307");
  // libcurl does not follow redirects here, so the 307 itself comes back.
  EXPECT_EQ(r.status, 307);
  EXPECT_EQ(r.Header("Location"), "/echo?msg=foo");
}

TEST_F(NetexecTest, ExitEndsTheProcessWithTheCode) {
  http::HttpClient c(http::ClientOptions{
      .base_url = "http://127.0.0.1:" + std::to_string(http_port_), .timeout_ms = 5000});
  try {
    c.Get("/exit?code=7");
  } catch (const Error&) {
    // The process exits before answering, as upstream's os.Exit does.
  }
  auto st = proc_.WaitFor(seconds(10));
  ASSERT_TRUE(st);
  EXPECT_EQ(st->code, 7);
}

TEST(Connect, ExitCodes) {
  int port = FreePort();
  auto server = Start(
      {"netexec", "--http-port=" + std::to_string(port), "--udp-port=" + std::to_string(port)});
  WaitServing(port);
  auto run = [](std::vector<std::string> args) {
    std::vector<std::string> argv = {AGNHOST_TEST_MAIN, "connect"};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, seconds(20));
  };
  auto ok = run({"127.0.0.1:" + std::to_string(port)});
  EXPECT_EQ(ok.status.code, 0) << ok.err;
  auto udp = run({"--protocol=udp", "--timeout=5s", "127.0.0.1:" + std::to_string(port)});
  EXPECT_EQ(udp.status.code, 0) << udp.err;

  int closed = FreePort();
  auto refused = run({"--timeout", "3s", "127.0.0.1:" + std::to_string(closed)});
  EXPECT_EQ(refused.status.code, 1);
  EXPECT_EQ(refused.err, "REFUSED\n");
  auto udp_refused = run({"--protocol=udp", "127.0.0.1:" + std::to_string(closed)});
  EXPECT_EQ(udp_refused.status.code, 1);
  EXPECT_EQ(udp_refused.err, "REFUSED\n");

  auto dns = run({"no-such-host.invalid:80"});
  EXPECT_EQ(dns.status.code, 1);
  EXPECT_EQ(dns.err.rfind("DNS: ", 0), 0u) << dns.err;
}

TEST(Porter, ServesEachEnvPort) {
  int a = FreePort(), b = FreePort();
  auto p = Start({"porter"}, {{"SERVE_PORT_" + std::to_string(a), "foo"},
                              {"SERVE_PORT_" + std::to_string(b), "bar"}});
  ASSERT_TRUE(testing::Eventually(
      [&] { return TryGet(a, "/").has_value() && TryGet(b, "/").has_value(); }));
  EXPECT_EQ(Get(a, "/any").body, "foo");
  EXPECT_EQ(Get(b, "/").body, "bar");

  int c = FreePort();
  auto j = Start({"porter", "--json-response"}, {{"SERVE_PORT_" + std::to_string(c), "baz"}});
  ASSERT_TRUE(testing::Eventually([&] { return TryGet(c, "/").has_value(); }));
  EXPECT_EQ(Json::parse(Get(c, "/").body), Json({{"method", "GET"}, {"body", "baz"}}));
}

TEST(ServeHostname, HttpTcpAndUdp) {
  int port = FreePort();
  auto h = Start({"serve-hostname", "--port=" + std::to_string(port)});
  ASSERT_TRUE(testing::Eventually([&] { return TryGet(port, "/").has_value(); }));
  EXPECT_EQ(Get(port, "/whatever").body, Hostname());

  int tport = FreePort();
  auto t =
      Start({"serve-hostname", "--port", std::to_string(tport), "--tcp", "--udp", "--http=false"});
  std::string got;
  ASSERT_TRUE(testing::Eventually([&] {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(tport));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return false;
    got.clear();
    char buf[256];
    ssize_t n;
    while ((n = ::read(fd.get(), buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
    return true;
  }));
  EXPECT_EQ(got, Hostname());
  EXPECT_EQ(Udp(tport, "anything"), Hostname());
}

TEST(Pause, PrintsPausedAndExitsByTheSignal) {
  for (auto [sig, code] : {std::pair{SIGINT, 1}, std::pair{SIGTERM, 2}}) {
    auto p = Start({}, {}, /*pipe_stdout=*/true);
    std::string out;
    ASSERT_TRUE(testing::Eventually([&] {
      char buf[64];
      pollfd pf{p.stdout_pipe().get(), POLLIN, 0};
      if (::poll(&pf, 1, 0) > 0) {
        ssize_t n = ::read(p.stdout_pipe().get(), buf, sizeof buf);
        if (n > 0) out.append(buf, static_cast<size_t>(n));
      }
      return out == "Paused\n";
    }));
    p.Signal(sig);
    auto st = p.WaitFor(seconds(10));
    ASSERT_TRUE(st);
    EXPECT_EQ(st->code, code) << st->ToString();
  }
}

TEST(Agnhost, UnknownSubcommandAndFlag) {
  EXPECT_EQ(RunCommand({AGNHOST_TEST_MAIN, "no-such"}).status.code, 1);
  auto r = RunCommand({AGNHOST_TEST_MAIN, "netexec", "--bogus=1"});
  EXPECT_EQ(r.status.code, 1);
  EXPECT_NE(r.err.find("unknown flag: --bogus"), std::string::npos) << r.err;
}

// Outside a pod there is no in-cluster configuration: agnhost says why and
// exits 1, as client-go's InClusterConfig error makes it (log.Fatalf).
TEST(InClusterClient, WithoutTheServiceEnvironmentExitsOne) {
  auto r = RunCommand({"env", "-u", "KUBERNETES_SERVICE_HOST", "-u", "KUBERNETES_SERVICE_PORT",
                       AGNHOST_TEST_MAIN, "inclusterclient", "--poll-interval=1"});
  EXPECT_EQ(r.status.code, 1) << r.status.ToString();
  EXPECT_NE(r.err.find("started"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("err: unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and "
                       "KUBERNETES_SERVICE_PORT must be defined"),
            std::string::npos)
      << r.err;
  r = RunCommand({AGNHOST_TEST_MAIN, "inclusterclient", "--poll-interval=soon"});
  EXPECT_EQ(r.status.code, 1);
  EXPECT_NE(r.err.find("invalid argument \"soon\" for \"--poll-interval\" flag"), std::string::npos)
      << r.err;
}

TEST(Agnhost, PureHelpers) {
  EXPECT_EQ(ParseGoDurationMs("5s"), 5000);
  EXPECT_EQ(ParseGoDurationMs("1m30s"), 90000);
  EXPECT_EQ(ParseGoDurationMs("1.5s"), 1500);
  EXPECT_EQ(ParseGoDurationMs("250ms"), 250);
  EXPECT_EQ(ParseGoDurationMs("0"), 0);
  EXPECT_THROW(ParseGoDurationMs("5"), Error);
  EXPECT_THROW(ParseGoDurationMs("abc"), Error);

  std::string conf =
      "nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local cluster.local\n"
      "nameserver 10.96.0.11\noptions ndots:5\n";
  EXPECT_EQ(DnsSuffixList(conf), "default.svc.cluster.local,svc.cluster.local,cluster.local");
  EXPECT_EQ(DnsServerList(conf), "10.96.0.10,10.96.0.11");
  EXPECT_THROW(DnsSuffixList("nameserver 1.1.1.1\n"), Error);

  EXPECT_EQ(CanonicalHeaderKey("x-forwarded-FOR"), "X-Forwarded-For");
  EXPECT_EQ(CanonicalHeaderKey("host"), "Host");
}

}  // namespace
}  // namespace kin::agnhost
