// e2e: the real `kin` binary: version, help, serve answering and stopping.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/http_client.h"
#include "base/process.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin {
namespace {

using testing::KinBinary;
using testing::ServeProcess;

TEST(ServeE2E, VersionAndHelp) {
  CommandResult v = RunCommand({KinBinary(), "version"});
  EXPECT_TRUE(v.status.success());
  EXPECT_EQ(v.out.rfind("kin version ", 0), 0u) << v.out;
  CommandResult h = RunCommand({KinBinary(), "--help"});
  EXPECT_TRUE(h.status.success());
  EXPECT_NE(h.out.find("serve"), std::string::npos) << h.out;
  EXPECT_NE(h.out.find("version"), std::string::npos) << h.out;
}

TEST(ServeE2E, UnknownControllerIsRefusedNamingIt) {
  testing::TempDir dir;
  CommandResult r = RunCommand({KinBinary(), "serve", "--port", "0", "--state-dir",
                                dir.File("state"), "--controllers", "*,-nosuch"});
  EXPECT_NE(r.status.code, 0);
  EXPECT_NE(r.err.find("--controllers: unknown controller \"nosuch\" (known: "),
            std::string::npos)
      << r.out << r.err;
}

TEST(ServeE2E, UnknownCommandAndBadFlagFailClearly) {
  CommandResult r = RunCommand({KinBinary(), "frobnicate"});
  EXPECT_NE(r.status.code, 0);
  EXPECT_NE((r.out + r.err).find("frobnicate"), std::string::npos) << r.out << r.err;
  r = RunCommand({KinBinary(), "serve", "--port", "99999"});
  EXPECT_NE(r.status.code, 0);
  EXPECT_NE((r.out + r.err).find("--port"), std::string::npos) << r.out << r.err;
  r = RunCommand({KinBinary(), "--log-level", "loud", "version"});
  EXPECT_NE(r.status.code, 0);
  EXPECT_NE(r.err.find("loud"), std::string::npos) << r.err;
  // The shim server is for node agents only: without their socket it says so.
  r = RunCommand({KinBinary(), "shim-server"});
  EXPECT_EQ(r.status.code, 2);
  EXPECT_NE(r.err.find("kin shim-server: only kin serve's node agents"), std::string::npos)
      << r.err;
}

TEST(ServeE2E, AnswersHealthzAndVersion) {
  ServeProcess serve;
  http::HttpClient c({.base_url = serve.url()});
  auto h = c.Get("/healthz");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.body, "ok");
  auto v = c.Get("/version");
  EXPECT_EQ(v.status, 200);
  EXPECT_NE(v.body.find("\"gitVersion\""), std::string::npos) << v.body;
  auto nf = c.Get("/no/such/thing");
  EXPECT_EQ(nf.status, 404);
  EXPECT_NE(nf.body.find("\"reason\":\"NotFound\""), std::string::npos) << nf.body;
}

TEST(ServeE2E, StopsCleanlyOnSigtermAndSigint) {
  for (int sig : {SIGTERM, SIGINT}) {
    ServeProcess serve;
    http::HttpClient c({.base_url = serve.url()});
    ASSERT_EQ(c.Get("/healthz").status, 200);
    serve.process().Signal(sig);
    auto st = serve.process().WaitFor(std::chrono::seconds(10));
    ASSERT_TRUE(st.has_value()) << "kin serve did not stop on signal " << sig;
    EXPECT_TRUE(st->success()) << st->ToString() << "\n" << serve.Log();
    EXPECT_NE(serve.Log().find("stopped"), std::string::npos) << serve.Log();
  }
}

TEST(ServeE2E, PortInUseIsAClearError) {
  ServeProcess first;
  CommandResult r = RunCommand({KinBinary(), "serve", "--port", std::to_string(first.port()),
                                "--state-dir", first.state_dir() + "/second"},
                               std::chrono::seconds(10));
  EXPECT_EQ(r.status.code, 1);
  EXPECT_NE(r.err.find("listen on 127.0.0.1:" + std::to_string(first.port()) +
                       ": Address already in use"),
            std::string::npos)
      << r.err;
}

}  // namespace
}  // namespace kin

namespace kin {
namespace {

TEST(AgnhostE2E, KinRunsTheBuiltInAgnhost) {
  // A free port: bind :0, read it, close (the agnhost binds it right after).
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  int port = ntohs(a.sin_port);
  ::close(fd);
  SpawnOptions o;
  o.argv = {testing::KinBinary(), "agnhost", "netexec", "--http-port=" + std::to_string(port),
            "--udp-port=-1"};
  o.stdout_mode = o.stderr_mode = SpawnOptions::Stdio::kNull;
  ChildProcess p = ChildProcess::Spawn(o);
  http::HttpClient c({.base_url = "http://127.0.0.1:" + std::to_string(port)});
  std::string body;
  ASSERT_TRUE(testing::Eventually([&] {
    try {
      body = c.Get("/echo?msg=kin").body;
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }));
  EXPECT_EQ(body, "kin");
  char host[256] = {};
  ::gethostname(host, sizeof host);
  EXPECT_EQ(c.Get("/hostname").body, host);
  p.Stop(std::chrono::seconds(5));
  CommandResult refused =
      RunCommand({testing::KinBinary(), "agnhost", "connect", "127.0.0.1:" + std::to_string(port)});
  EXPECT_EQ(refused.status.code, 1);
  EXPECT_EQ(refused.err, "REFUSED\n");
}

}  // namespace
}  // namespace kin
