#include "base/websocket_client.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "base/http_server.h"
#include "base/tls.h"
#include "base/websocket.h"
#include "testing/e2e_support.h"

namespace kin {
namespace {

const std::vector<std::string> kServerProtocols = {k8s_channel::kV5Protocol,
                                                   k8s_channel::kV4Protocol};

// Echoes every data message back (same opcode) until the client closes;
// a message "close" makes the server close with 4000.
void EchoUpgrade(http::Request& req, http::Response& resp) {
  AcceptWebSocket(req, kServerProtocols, resp);
  resp.upgrade = [](http::Conn& c) {
    WebSocketConnection ws(c, 64 << 20);
    while (auto m = ws.Receive(-1)) {
      if (m->data == "close") {
        ws.SendClose(4000, "bye");
        ws.Receive(2000);
        return;
      }
      ws.Send(m->opcode, m->data);
    }
  };
}

class WebSocketClientTest : public ::testing::Test {
 protected:
  void Start(http::Handler h, http::ServerOptions o = {}) {
    server_ = std::make_unique<http::Server>(std::move(o), std::move(h));
    server_->Start();
  }
  std::string Url(const std::string& scheme = "http", const std::string& path = "/ws") {
    return scheme + "://127.0.0.1:" + std::to_string(server_->port()) + path;
  }
  std::unique_ptr<http::Server> server_;
};

TEST_F(WebSocketClientTest, HandshakeNegotiatesServerPreferredOfferedProtocol) {
  Start(EchoUpgrade);
  auto ws = WebSocketClient::Connect(
      {.url = Url(), .protocols = {k8s_channel::kV4Protocol, k8s_channel::kV5Protocol}});
  EXPECT_EQ(ws->protocol(), k8s_channel::kV5Protocol);

  auto only_v4 = WebSocketClient::Connect({.url = Url(), .protocols = {k8s_channel::kV4Protocol}});
  EXPECT_EQ(only_v4->protocol(), k8s_channel::kV4Protocol);
}

TEST_F(WebSocketClientTest, MessagesTravelBothWaysIncludingLargeOnes) {
  Start(EchoUpgrade);
  auto ws = WebSocketClient::Connect({.url = Url(), .protocols = {k8s_channel::kV5Protocol}});
  ASSERT_TRUE(ws->SendBinary(std::string("\x01hello", 6)));
  auto m = ws->Receive(5000);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->opcode, ws_opcode::kBinary);
  EXPECT_EQ(m->data, std::string("\x01hello", 6));

  ASSERT_TRUE(ws->Send(ws_opcode::kText, "text"));
  m = ws->Receive(5000);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->opcode, ws_opcode::kText);
  EXPECT_EQ(m->data, "text");

  std::string big(5 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131 + (i >> 9));
  ASSERT_TRUE(ws->SendBinary(big));
  m = ws->Receive(20000);
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->data == big) << "echo of " << big.size() << " bytes came back as "
                              << m->data.size() << " bytes";

  ASSERT_TRUE(ws->SendBinary(""));
  m = ws->Receive(5000);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->data, "");
}

TEST_F(WebSocketClientTest, ReceiveTimesOutWithoutClosing) {
  Start(EchoUpgrade);
  auto ws = WebSocketClient::Connect({.url = Url(), .protocols = {k8s_channel::kV5Protocol}});
  EXPECT_FALSE(ws->Receive(50));
  EXPECT_FALSE(ws->closed());
}

TEST_F(WebSocketClientTest, ServerCloseEndsReceiveWithItsCode) {
  Start(EchoUpgrade);
  auto ws = WebSocketClient::Connect({.url = Url(), .protocols = {k8s_channel::kV5Protocol}});
  ASSERT_TRUE(ws->SendBinary("close"));
  EXPECT_FALSE(ws->Receive(5000));
  EXPECT_TRUE(ws->closed());
  EXPECT_EQ(ws->peer_close_code(), 4000);
  EXPECT_FALSE(ws->SendBinary("after close"));
}

TEST_F(WebSocketClientTest, NonSwitchingAnswerSurfacesTheApiStatus) {
  Start([](http::Request&, http::Response& resp) {
    resp.Set(404, "application/json",
             R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",)"
             R"("message":"pods \"nope\" not found","reason":"NotFound",)"
             R"("details":{"name":"nope","kind":"pods"},"code":404})");
  });
  try {
    WebSocketClient::Connect({.url = Url(), .protocols = {k8s_channel::kV5Protocol}});
    FAIL() << "Connect succeeded against a 404";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kNotFound);
    EXPECT_EQ(e.message(), "pods \"nope\" not found");
    EXPECT_EQ(e.details_name(), "nope");
  }
}

TEST_F(WebSocketClientTest, NonSwitchingPlainTextAnswerKeepsTheText) {
  Start([](http::Request&, http::Response& resp) {
    resp.Set(400, "text/plain", "upgrade required\n");
  });
  try {
    WebSocketClient::Connect({.url = Url()});
    FAIL() << "Connect succeeded against a 400";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kBadRequest);
    EXPECT_EQ(e.message(), "upgrade required");
  }
}

TEST_F(WebSocketClientTest, RejectsWrongAcceptKey) {
  Start([](http::Request& req, http::Response& resp) {
    AcceptWebSocket(req, kServerProtocols, resp);
    resp.headers.erase("Sec-WebSocket-Accept");
    resp.headers.emplace("Sec-WebSocket-Accept", WebSocketAcceptKey("not the client's key"));
    resp.upgrade = [](http::Conn& c) { c.WaitReadable(5000); };
  });
  try {
    WebSocketClient::Connect({.url = Url(), .protocols = {k8s_channel::kV5Protocol}});
    FAIL() << "Connect accepted a wrong Sec-WebSocket-Accept";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kBadRequest);
    EXPECT_NE(e.message().find("Sec-WebSocket-Accept"), std::string::npos) << e.message();
  }
}

TEST_F(WebSocketClientTest, RejectsProtocolNotOffered) {
  Start([](http::Request& req, http::Response& resp) {
    AcceptWebSocket(req, kServerProtocols, resp);
    resp.headers.erase("Sec-WebSocket-Protocol");
    resp.headers.emplace("Sec-WebSocket-Protocol", "v1.channel.k8s.io");
    resp.upgrade = [](http::Conn& c) { c.WaitReadable(5000); };
  });
  EXPECT_THROW(WebSocketClient::Connect({.url = Url(), .protocols = {k8s_channel::kV5Protocol}}),
               Error);
}

TEST_F(WebSocketClientTest, RefusedConnectionIsUnavailable) {
  Start(EchoUpgrade);
  std::string url = Url();
  server_->Stop();
  try {
    WebSocketClient::Connect({.url = url, .connect_timeout_ms = 2000});
    FAIL() << "Connect succeeded with no server";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kServiceUnavailable) << e.message();
  }
}

TEST_F(WebSocketClientTest, ShutdownUnblocksReceive) {
  Start(EchoUpgrade);
  auto ws = WebSocketClient::Connect({.url = Url(), .protocols = {k8s_channel::kV5Protocol}});
  std::thread t([&] { ws->Shutdown(); });
  EXPECT_FALSE(ws->Receive(-1));
  EXPECT_TRUE(ws->closed());
  t.join();
}

class WebSocketClientTlsTest : public WebSocketClientTest {
 protected:
  void SetUp() override {
    ca_ = tls::GenerateCa("test-ca");
    auto serving = tls::IssueCertificate(
        ca_, {.common_name = "apiserver", .ip_addresses = {"127.0.0.1"}, .server_auth = true});
    client_ = tls::IssueCertificate(ca_, {.common_name = "kubernetes-admin",
                                          .organizations = {"system:masters"},
                                          .client_auth = true});
    kin::testing::WriteFile(dir_.File("tls.crt"), serving.cert_pem);
    kin::testing::WriteFile(dir_.File("tls.key"), serving.key_pem);
    kin::testing::WriteFile(dir_.File("ca.crt"), ca_.cert_pem);
    http::ServerOptions o;
    o.tls = http::TlsServerOptions{.cert_file = dir_.File("tls.crt"),
                                   .key_file = dir_.File("tls.key"),
                                   .client_ca_file = dir_.File("ca.crt")};
    o.require_client_cert = true;
    Start(
        [this](http::Request& req, http::Response& resp) {
          seen_cn_ = req.client_cn;
          EchoUpgrade(req, resp);
        },
        o);
  }
  kin::testing::TempDir dir_;
  tls::KeyPair ca_, client_;
  std::string seen_cn_;
};

TEST_F(WebSocketClientTlsTest, PemStringsAuthenticateAndCarryMessages) {
  auto ws = WebSocketClient::Connect({.url = Url("https"),
                                      .protocols = {k8s_channel::kV5Protocol},
                                      .ca_pem = ca_.cert_pem,
                                      .cert_pem = client_.cert_pem,
                                      .key_pem = client_.key_pem});
  EXPECT_EQ(seen_cn_, "kubernetes-admin");
  std::string big(300000, 'x');
  ASSERT_TRUE(ws->SendBinary(big));
  auto m = ws->Receive(10000);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->data.size(), big.size());
  EXPECT_TRUE(m->data == big);
}

TEST_F(WebSocketClientTlsTest, PemFilesWork) {
  kin::testing::WriteFile(dir_.File("client.crt"), client_.cert_pem);
  kin::testing::WriteFile(dir_.File("client.key"), client_.key_pem);
  auto ws = WebSocketClient::Connect({.url = Url("https"),
                                      .protocols = {k8s_channel::kV5Protocol},
                                      .ca_file = dir_.File("ca.crt"),
                                      .cert_file = dir_.File("client.crt"),
                                      .key_file = dir_.File("client.key")});
  ASSERT_TRUE(ws->SendBinary("hi"));
  auto m = ws->Receive(5000);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->data, "hi");
}

TEST_F(WebSocketClientTlsTest, MissingClientCertificateGets401Status) {
  try {
    WebSocketClient::Connect(
        {.url = Url("https"), .protocols = {k8s_channel::kV5Protocol}, .ca_pem = ca_.cert_pem});
    FAIL() << "Connect succeeded without a client certificate";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kUnauthorized) << e.message();
  }
}

TEST_F(WebSocketClientTlsTest, UntrustedServerIsRejected) {
  auto other_ca = tls::GenerateCa("other");
  try {
    WebSocketClient::Connect({.url = Url("https"),
                              .ca_pem = other_ca.cert_pem,
                              .cert_pem = client_.cert_pem,
                              .key_pem = client_.key_pem});
    FAIL() << "Connect trusted a server signed by another CA";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kServiceUnavailable);
    EXPECT_NE(e.message().find("certificate"), std::string::npos) << e.message();
  }
}

}  // namespace
}  // namespace kin
