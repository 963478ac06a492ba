// Unit tests (no root): kube-proxy's health check answers, and the server
// on loopback (the e2e test has it in nodes' namespaces), plus its errors.
#include "netstack/health_check.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/error.h"
#include "base/fd.h"

namespace kin::netstack {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(HealthCheckResponseTest, OkWithLocalEndpointsAsKubeProxy) {
  std::string r = HealthCheckResponse({"default", "web", 2}, true);
  EXPECT_THAT(r, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(r, HasSubstr("Content-Type: application/json\r\n"));
  EXPECT_THAT(r, HasSubstr("X-Content-Type-Options: nosniff\r\n"));
  EXPECT_THAT(r, HasSubstr("X-Load-Balancing-Endpoint-Weight: 2\r\n"));
  const std::string body =
      "{\n\t\"service\": {\n\t\t\"namespace\": \"default\",\n\t\t\"name\": \"web\"\n\t},\n"
      "\t\"localEndpoints\": 2,\n\t\"serviceProxyHealthy\": true\n}";
  EXPECT_THAT(r, HasSubstr("Content-Length: " + std::to_string(body.size()) + "\r\n"));
  EXPECT_EQ(r.substr(r.find("\r\n\r\n") + 4), body);
}

TEST(HealthCheckResponseTest, UnavailableWithoutLocalEndpointsOrAnUnhealthyProxy) {
  std::string r = HealthCheckResponse({"ns", "svc", 0}, true);
  EXPECT_THAT(r, StartsWith("HTTP/1.1 503 Service Unavailable\r\n"));
  EXPECT_THAT(r, HasSubstr("\"localEndpoints\": 0,"));
  EXPECT_THAT(r, HasSubstr("X-Load-Balancing-Endpoint-Weight: 0\r\n"));
  r = HealthCheckResponse({"ns", "svc", 3}, false);
  EXPECT_THAT(r, StartsWith("HTTP/1.1 503 Service Unavailable\r\n"));
  EXPECT_THAT(r, HasSubstr("\"serviceProxyHealthy\": false\n}"));
}

// GET / on 127.0.0.1:port; the whole answer, or "" when nothing answers.
std::string Get(uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return "";
  const std::string req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  if (::send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL) < 0) return "";
  std::string out;
  char buf[1024];
  ssize_t n;
  while ((n = ::recv(fd.get(), buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

// A free TCP port on loopback (bound, then released).
uint16_t FreePort() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

TEST(ServiceHealthServerTest, ServesFollowsCountsAndCloses) {
  const uint16_t p1 = FreePort(), p2 = FreePort();
  ServiceHealthServer server("", "127.0.0.1");
  server.Sync({{p1, {"default", "web", 1}}, {p2, {"default", "db", 0}}});
  EXPECT_THAT(server.ports(), ::testing::UnorderedElementsAre(p1, p2));
  EXPECT_EQ(Get(p1), HealthCheckResponse({"default", "web", 1}, true));
  EXPECT_EQ(Get(p2), HealthCheckResponse({"default", "db", 0}, true));
  // Counts change on the same socket; a port no longer given closes.
  server.Sync({{p1, {"default", "web", 0}}});
  EXPECT_THAT(Get(p1), StartsWith("HTTP/1.1 503 "));
  EXPECT_THAT(server.ports(), ::testing::ElementsAre(p1));
  EXPECT_EQ(Get(p2), "");
  server.Sync({});
  EXPECT_EQ(Get(p1), "");
}

TEST(ProxyHealthTest, UnhealthyOnceAChangeWaitedLongerThanTheTimeout) {
  ProxyHealth h(std::chrono::seconds(60));
  const auto t0 = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  EXPECT_TRUE(h.Healthy(t0));  // nothing waits
  h.Queued(t0);
  EXPECT_TRUE(h.Healthy(t0 + std::chrono::seconds(59)));
  // A later change does not make the oldest younger.
  h.Queued(t0 + std::chrono::seconds(30));
  EXPECT_FALSE(h.Healthy(t0 + std::chrono::seconds(60)));
  h.Synced(t0 + std::chrono::seconds(61));
  EXPECT_TRUE(h.Healthy(t0 + std::chrono::seconds(200)));
}

TEST(ServiceHealthServerTest, AnUnhealthyProxyAnswers503WithLocalEndpoints) {
  const uint16_t port = FreePort();
  auto health = std::make_shared<ProxyHealth>(std::chrono::milliseconds(0));
  ServiceHealthServer server("", "127.0.0.1", health);
  server.Sync({{port, {"default", "web", 2}}});
  EXPECT_EQ(Get(port), HealthCheckResponse({"default", "web", 2}, true));
  health->Queued(std::chrono::steady_clock::now());  // waits, and the timeout is 0
  EXPECT_EQ(Get(port), HealthCheckResponse({"default", "web", 2}, false));
  health->Synced(std::chrono::steady_clock::now());
  EXPECT_EQ(Get(port), HealthCheckResponse({"default", "web", 2}, true));
}

TEST(ServiceHealthServerTest, APortInUseIsAnErrorAndTheOthersStillServe) {
  // Someone else listens on `taken`.
  UniqueFd other(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(other.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(other.get(), 1), 0);
  socklen_t len = sizeof a;
  ::getsockname(other.get(), reinterpret_cast<sockaddr*>(&a), &len);
  const uint16_t taken = ntohs(a.sin_port), free = FreePort();
  ServiceHealthServer server("", "127.0.0.1");
  try {
    server.Sync({{taken, {"default", "web", 1}}, {free, {"default", "db", 1}}});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.message(), HasSubstr("health check of service default/web"));
    EXPECT_THAT(e.message(), HasSubstr(std::to_string(taken)));
  }
  EXPECT_THAT(server.ports(), ::testing::ElementsAre(free));
  EXPECT_THAT(Get(free), StartsWith("HTTP/1.1 200 OK"));
}

TEST(ServiceHealthServerTest, AMissingNamespaceIsAnError) {
  ServiceHealthServer server("kin-no-such-netns-for-health", "127.0.0.1");
  EXPECT_THROW(server.Sync({{FreePort(), {"default", "web", 1}}}), Error);
  EXPECT_TRUE(server.ports().empty());
}

}  // namespace
}  // namespace kin::netstack
