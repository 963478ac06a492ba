#include "base/websocket.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>

#include "base/error.h"
#include "base/fd.h"
#include "base/socketpair_conn_testing.h"

namespace kin {
namespace {

using testing::FdConn;
using testing::SocketPair;

void SendRaw(int fd, std::string_view data) {
  ASSERT_EQ(::send(fd, data.data(), data.size(), MSG_NOSIGNAL), static_cast<ssize_t>(data.size()));
}

// Reads server frames on the client end until one message is complete.
std::optional<WebSocketMessage> ReadServerMessage(int fd, WebSocketDecoder& dec) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto m = dec.Next()) return m;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[65536];
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return std::nullopt;
    dec.Feed(std::string_view(buf, static_cast<size_t>(n)));
  }
  return std::nullopt;
}

std::string Masked(uint8_t opcode, std::string_view payload, bool fin = true) {
  return EncodeWebSocketFrame(opcode, payload, fin, 0x37fa213d);
}

TEST(WebSocketTest, AcceptKeyOfRfcExample) {
  EXPECT_EQ(WebSocketAcceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WebSocketTest, ChoosesFirstSupportedOfferedProtocol) {
  std::vector<std::string> supported = {"v5.channel.k8s.io", "v4.channel.k8s.io"};
  EXPECT_EQ(ChooseWebSocketProtocol("v4.channel.k8s.io,v5.channel.k8s.io", supported),
            "v5.channel.k8s.io");
  EXPECT_EQ(ChooseWebSocketProtocol(" base64.channel.k8s.io ,  v4.channel.k8s.io ", supported),
            "v4.channel.k8s.io");
  EXPECT_EQ(ChooseWebSocketProtocol("v3.channel.k8s.io", supported), std::nullopt);
  EXPECT_EQ(ChooseWebSocketProtocol("", supported), std::nullopt);
}

TEST(WebSocketTest, AcceptWebSocketAnswers101) {
  http::Request req;
  req.method = "GET";
  req.headers.emplace("connection", "Upgrade");
  req.headers.emplace("upgrade", "websocket");
  req.headers.emplace("sec-websocket-version", "13");
  req.headers.emplace("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
  req.headers.emplace("sec-websocket-protocol", "v5.channel.k8s.io, v4.channel.k8s.io");
  http::Response resp;
  EXPECT_EQ(AcceptWebSocket(req, {"v4.channel.k8s.io", "v5.channel.k8s.io"}, resp),
            "v4.channel.k8s.io");
  EXPECT_EQ(resp.status, 101);
  EXPECT_EQ(resp.headers.find("Sec-WebSocket-Accept")->second, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  EXPECT_EQ(resp.headers.find("Sec-WebSocket-Protocol")->second, "v4.channel.k8s.io");
  EXPECT_EQ(resp.headers.find("Upgrade")->second, "websocket");

  http::Response unsupported;
  EXPECT_THROW(AcceptWebSocket(req, {"SPDY/3.1+portforward.k8s.io"}, unsupported), Error);
  req.headers.erase("sec-websocket-key");
  http::Response no_key;
  EXPECT_THROW(AcceptWebSocket(req, {"v4.channel.k8s.io"}, no_key), Error);
}

TEST(WebSocketTest, EncodesServerFramesUnmasked) {
  EXPECT_EQ(EncodeWebSocketFrame(ws_opcode::kText, "Hello"), std::string("\x81\x05Hello"));
  std::string mid = EncodeWebSocketFrame(ws_opcode::kBinary, std::string(300, 'x'));
  EXPECT_EQ(mid.substr(0, 4), std::string("\x82\x7e\x01\x2c", 4));
  EXPECT_EQ(mid.size(), 304u);
  std::string big = EncodeWebSocketFrame(ws_opcode::kBinary, std::string(70000, 'y'));
  EXPECT_EQ(big.substr(0, 10), std::string("\x82\x7f\x00\x00\x00\x00\x00\x01\x11\x70", 10));
  EXPECT_EQ(big.size(), 70010u);
  EXPECT_EQ(EncodeWebSocketFrame(ws_opcode::kClose, WebSocketClosePayload(1000, "bye")),
            std::string("\x88\x05\x03\xe8"
                        "bye",
                        7));
  EXPECT_EQ(EncodeWebSocketFrame(ws_opcode::kPong, ""), std::string("\x8a\x00", 2));
  // RFC 6455 5.7: a masked "Hello".
  EXPECT_EQ(Masked(ws_opcode::kText, "Hello"),
            std::string("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"));
}

TEST(WebSocketTest, DecodesMaskedFramesByteByByte) {
  WebSocketDecoder dec;
  std::string wire = Masked(ws_opcode::kText, "Hello");
  for (size_t i = 0; i + 1 < wire.size(); ++i) {
    dec.Feed(wire.substr(i, 1));
    EXPECT_EQ(dec.Next(), std::nullopt);
  }
  dec.Feed(wire.substr(wire.size() - 1));
  auto m = dec.Next();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->opcode, ws_opcode::kText);
  EXPECT_EQ(m->data, "Hello");
  EXPECT_EQ(dec.Next(), std::nullopt);
}

TEST(WebSocketTest, Decodes16And64BitLengths) {
  WebSocketDecoder dec;
  std::string medium(300, 'm');
  std::string large(70000, 'l');
  large[12345] = 'X';
  dec.Feed(Masked(ws_opcode::kBinary, medium) + Masked(ws_opcode::kBinary, large));
  auto a = dec.Next();
  auto b = dec.Next();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->data, medium);
  EXPECT_EQ(b->data, large);
}

TEST(WebSocketTest, ReassemblesFragmentsAroundPing) {
  WebSocketDecoder dec;
  dec.Feed(Masked(ws_opcode::kText, "Hel", false));
  dec.Feed(Masked(ws_opcode::kPing, "are you there"));
  dec.Feed(Masked(ws_opcode::kContinuation, "lo, ", false));
  dec.Feed(Masked(ws_opcode::kContinuation, "world"));
  auto ping = dec.Next();
  ASSERT_TRUE(ping);
  EXPECT_EQ(ping->opcode, ws_opcode::kPing);
  EXPECT_EQ(ping->data, "are you there");
  auto text = dec.Next();
  ASSERT_TRUE(text);
  EXPECT_EQ(text->opcode, ws_opcode::kText);
  EXPECT_EQ(text->data, "Hello, world");
}

TEST(WebSocketTest, DecodesCloseWithStatus) {
  WebSocketDecoder dec;
  dec.Feed(Masked(ws_opcode::kClose, WebSocketClosePayload(1001, "going")));
  dec.Feed(Masked(ws_opcode::kClose, ""));
  auto c = dec.Next();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->opcode, ws_opcode::kClose);
  EXPECT_EQ(c->close_code, 1001);
  EXPECT_EQ(c->data, "going");
  auto bare = dec.Next();
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->close_code, ws_close::kNoStatus);
}

TEST(WebSocketTest, RejectsProtocolViolations) {
  {
    WebSocketDecoder dec;
    dec.Feed(EncodeWebSocketFrame(ws_opcode::kText, "unmasked"));
    EXPECT_THROW(dec.Next(), Error);
  }
  {
    WebSocketDecoder dec;
    dec.Feed(Masked(ws_opcode::kContinuation, "orphan"));
    EXPECT_THROW(dec.Next(), Error);
  }
  {
    WebSocketDecoder dec;
    dec.Feed(Masked(ws_opcode::kPing, "x", false));
    EXPECT_THROW(dec.Next(), Error);
  }
  {
    WebSocketDecoder dec(100);
    dec.Feed(Masked(ws_opcode::kBinary, std::string(60, 'a'), false));
    dec.Feed(Masked(ws_opcode::kContinuation, std::string(60, 'b')));
    try {
      dec.Next();
      FAIL() << "expected TooLarge";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kRequestEntityTooLarge);
    }
  }
}

TEST(WebSocketConnectionTest, AnswersPingAndClose) {
  SocketPair sp;
  FdConn conn(sp.server.get());
  WebSocketConnection ws(conn);
  WebSocketDecoder client(1 << 20, /*require_mask=*/false);

  EXPECT_EQ(ws.Receive(0), std::nullopt);
  EXPECT_FALSE(ws.closed());

  SendRaw(sp.client.get(), Masked(ws_opcode::kPing, "p1") + Masked(ws_opcode::kBinary, "data"));
  auto m = ws.Receive(5000);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->data, "data");
  auto pong = ReadServerMessage(sp.client.get(), client);
  ASSERT_TRUE(pong);
  EXPECT_EQ(pong->opcode, ws_opcode::kPong);
  EXPECT_EQ(pong->data, "p1");

  ASSERT_TRUE(ws.Send(ws_opcode::kText, "from server"));
  auto text = ReadServerMessage(sp.client.get(), client);
  ASSERT_TRUE(text);
  EXPECT_EQ(text->data, "from server");

  SendRaw(sp.client.get(), Masked(ws_opcode::kClose, WebSocketClosePayload(1000, "")));
  EXPECT_EQ(ws.Receive(5000), std::nullopt);
  EXPECT_TRUE(ws.closed());
  EXPECT_EQ(ws.peer_close_code(), 1000);
  auto echoed = ReadServerMessage(sp.client.get(), client);
  ASSERT_TRUE(echoed);
  EXPECT_EQ(echoed->opcode, ws_opcode::kClose);
  EXPECT_EQ(echoed->close_code, 1000);
  EXPECT_FALSE(ws.Send(ws_opcode::kBinary, "after close"));
}

TEST(WebSocketConnectionTest, ProtocolErrorClosesWith1002) {
  SocketPair sp;
  FdConn conn(sp.server.get());
  WebSocketConnection ws(conn);
  WebSocketDecoder client(1 << 20, false);
  SendRaw(sp.client.get(), EncodeWebSocketFrame(ws_opcode::kBinary, "unmasked"));
  EXPECT_EQ(ws.Receive(5000), std::nullopt);
  EXPECT_TRUE(ws.closed());
  auto close = ReadServerMessage(sp.client.get(), client);
  ASSERT_TRUE(close);
  EXPECT_EQ(close->opcode, ws_opcode::kClose);
  EXPECT_EQ(close->close_code, ws_close::kProtocolError);
}

TEST(WebSocketConnectionTest, EndsOnEof) {
  SocketPair sp;
  FdConn conn(sp.server.get());
  WebSocketConnection ws(conn);
  sp.client.reset();
  EXPECT_EQ(ws.Receive(5000), std::nullopt);
  EXPECT_TRUE(ws.closed());
}

TEST(ChannelMuxTest, V5ChannelsAndClose) {
  SocketPair sp;
  FdConn conn(sp.server.get());
  WebSocketConnection ws(conn);
  ChannelMux mux(ws, 5);
  WebSocketDecoder client(1 << 20, false);

  SendRaw(sp.client.get(),
          Masked(ws_opcode::kBinary, std::string("\x00"
                                                 "abc",
                                                 4)) +
              Masked(ws_opcode::kBinary, "") +
              Masked(ws_opcode::kBinary, std::string("\x04{\"Width\":80,\"Height\":24}")) +
              Masked(ws_opcode::kBinary, std::string("\xff\x00", 2)));
  auto in = mux.Read(5000);
  ASSERT_TRUE(in);
  EXPECT_EQ(in->channel, k8s_channel::kStdin);
  EXPECT_EQ(in->data, "abc");
  EXPECT_FALSE(in->closed);
  auto resize = mux.Read(5000);
  ASSERT_TRUE(resize);
  EXPECT_EQ(resize->channel, k8s_channel::kResize);
  EXPECT_EQ(resize->data, "{\"Width\":80,\"Height\":24}");
  auto closed = mux.Read(5000);
  ASSERT_TRUE(closed);
  EXPECT_TRUE(closed->closed);
  EXPECT_EQ(closed->channel, k8s_channel::kStdin);

  ASSERT_TRUE(mux.Write(k8s_channel::kStdout, "out"));
  ASSERT_TRUE(mux.CloseChannel(k8s_channel::kStdout));
  auto out = ReadServerMessage(sp.client.get(), client);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->opcode, ws_opcode::kBinary);
  EXPECT_EQ(out->data, std::string("\x01out"));
  auto close = ReadServerMessage(sp.client.get(), client);
  ASSERT_TRUE(close);
  EXPECT_EQ(close->data, std::string("\xff\x01", 2));
}

TEST(ChannelMuxTest, V4HasNoCloseMessage) {
  SocketPair sp;
  FdConn conn(sp.server.get());
  WebSocketConnection ws(conn);
  ChannelMux mux(ws, 4);
  WebSocketDecoder client(1 << 20, false);
  ASSERT_TRUE(mux.CloseChannel(k8s_channel::kStdout));
  ASSERT_TRUE(mux.Write(k8s_channel::kError, "{}"));
  auto m = ReadServerMessage(sp.client.get(), client);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->data, std::string("\x03{}"));
}

TEST(WebSocketByteStreamTest, ReadsAcrossMessages) {
  SocketPair sp;
  FdConn conn(sp.server.get());
  WebSocketConnection ws(conn);
  WebSocketByteStream bytes(ws);
  WebSocketDecoder client(1 << 20, false);
  SendRaw(sp.client.get(), Masked(ws_opcode::kBinary, "hello ") + Masked(ws_opcode::kBinary, "") +
                               Masked(ws_opcode::kBinary, "world"));
  std::string got;
  char buf[4];
  while (got.size() < 11) {
    ASSERT_TRUE(bytes.WaitReadable(5000));
    long n = bytes.Read(buf, sizeof(buf));
    ASSERT_GT(n, 0);
    got.append(buf, static_cast<size_t>(n));
  }
  EXPECT_EQ(got, "hello world");
  EXPECT_FALSE(bytes.WaitReadable(0));
  ASSERT_TRUE(bytes.WriteAll("reply"));
  auto m = ReadServerMessage(sp.client.get(), client);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->opcode, ws_opcode::kBinary);
  EXPECT_EQ(m->data, "reply");
  SendRaw(sp.client.get(), Masked(ws_opcode::kClose, WebSocketClosePayload(1000, "")));
  ASSERT_TRUE(bytes.WaitReadable(5000));
  EXPECT_EQ(bytes.Read(buf, sizeof(buf)), 0);
}

}  // namespace
}  // namespace kin
