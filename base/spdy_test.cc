#include "base/spdy.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <functional>
#include <thread>

#include "base/error.h"
#include "base/fd.h"
#include "base/socketpair_conn_testing.h"
#include "base/websocket.h"

namespace kin {
namespace {

using Clock = std::chrono::steady_clock;

using testing::FdConn;
using testing::SocketPair;

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t w = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (w <= 0) return false;
    data.remove_prefix(static_cast<size_t>(w));
  }
  return true;
}

// The test's side of a SPDY connection: a client speaking raw frames.
struct SpdyClient {
  explicit SpdyClient(int f) : fd(f) {}
  int fd;
  SpdyEncoder enc;
  SpdyDecoder dec;

  bool Send(const SpdyFrame& f) { return SendAll(fd, enc.Encode(f)); }
  // The next frame from the server, or nullopt after timeout / EOF.
  std::optional<SpdyFrame> Next(int timeout_ms = 5000) {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (true) {
      if (auto f = dec.Next()) return f;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() < 0) return std::nullopt;
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[65536];
      ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) return std::nullopt;
      dec.Feed(std::string_view(buf, static_cast<size_t>(n)));
    }
  }
  // The next frame that is not a WINDOW_UPDATE.
  std::optional<SpdyFrame> NextNonWindow(int timeout_ms = 5000) {
    while (auto f = Next(timeout_ms)) {
      if (f->type != SpdyFrameType::kWindowUpdate) return f;
    }
    return std::nullopt;
  }
};

SpdyFrame Syn(uint32_t id, SpdyHeaders headers, uint8_t flags = 0) {
  SpdyFrame f;
  f.type = SpdyFrameType::kSynStream;
  f.stream_id = id;
  f.headers = std::move(headers);
  f.flags = flags;
  return f;
}

SpdyFrame Data(uint32_t id, std::string data, uint8_t flags = 0) {
  SpdyFrame f;
  f.type = SpdyFrameType::kData;
  f.stream_id = id;
  f.data = std::move(data);
  f.flags = flags;
  return f;
}

SpdyFrame Control(SpdyFrameType type) {
  SpdyFrame f;
  f.type = type;
  return f;
}

std::string ReadAll(SpdyStream& s) {
  std::string out;
  char buf[8192];
  while (true) {
    long n = s.Read(buf, sizeof(buf), 10000);
    if (n <= 0) {
      EXPECT_EQ(n, 0) << "timed out reading stream " << s.id();
      return out;
    }
    out.append(buf, static_cast<size_t>(n));
  }
}

TEST(SpdyCodecTest, DictionaryIsTheSpdy3One) {
  auto d = SpdyHeaderDictionary();
  EXPECT_EQ(d.size(), 1423u);
  EXPECT_EQ(d.substr(0, 11), std::string_view("\0\0\0\x07options", 11));
  EXPECT_EQ(d.substr(d.size() - 6), "enq=0.");
}

TEST(SpdyCodecTest, RoundTripsEveryFrameType) {
  std::vector<SpdyFrame> frames;
  frames.push_back(Syn(1, {{"streamtype", "stdin"}, {"x-multi", std::string("a\0b", 3)}}));
  frames.back().priority = 5;
  frames.back().slot = 2;
  frames.back().associated_id = 0;
  frames.push_back(
      Syn(3, {{"streamtype", "data"}, {"port", "8080"}, {"requestid", "0"}}, spdy::kFlagFin));
  SpdyFrame reply = Control(SpdyFrameType::kSynReply);
  reply.stream_id = 1;
  frames.push_back(reply);
  SpdyFrame reply2 = Control(SpdyFrameType::kSynReply);
  reply2.stream_id = 3;
  reply2.headers = {{"status", "200"}};
  reply2.flags = spdy::kFlagFin;
  frames.push_back(reply2);
  frames.push_back(Data(1, "hello"));
  frames.push_back(Data(3, "", spdy::kFlagFin));
  frames.push_back(Data(5, std::string(100000, 'z')));
  SpdyFrame rst = Control(SpdyFrameType::kRstStream);
  rst.stream_id = 7;
  rst.status = spdy::kCancel;
  frames.push_back(rst);
  SpdyFrame settings = Control(SpdyFrameType::kSettings);
  settings.settings = {{0, spdy::kSettingsInitialWindowSize, 1 << 20},
                       {1, spdy::kSettingsMaxConcurrentStreams, 100}};
  frames.push_back(settings);
  SpdyFrame ping = Control(SpdyFrameType::kPing);
  ping.ping_id = 31337;
  frames.push_back(ping);
  SpdyFrame goaway = Control(SpdyFrameType::kGoAway);
  goaway.stream_id = 9;
  goaway.status = spdy::kGoAwayProtocolError;
  frames.push_back(goaway);
  SpdyFrame headers = Control(SpdyFrameType::kHeaders);
  headers.stream_id = 1;
  headers.headers = {{"trailer", "yes"}};
  frames.push_back(headers);
  SpdyFrame wu = Control(SpdyFrameType::kWindowUpdate);
  wu.stream_id = 0;
  wu.delta = 65536;
  frames.push_back(wu);

  SpdyEncoder enc;
  SpdyDecoder dec;
  std::string wire;
  for (const auto& f : frames) wire += enc.Encode(f);
  // Fed in odd-sized pieces, as a socket would deliver them.
  std::vector<SpdyFrame> got;
  for (size_t i = 0; i < wire.size(); i += 997) {
    dec.Feed(std::string_view(wire).substr(i, 997));
    while (auto f = dec.Next()) got.push_back(*f);
  }
  ASSERT_EQ(got.size(), frames.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    EXPECT_EQ(got[i], frames[i]) << "frame " << i;
  }
}

TEST(SpdyCodecTest, EncodesKnownBytes) {
  SpdyEncoder enc;
  SpdyFrame ping = Control(SpdyFrameType::kPing);
  ping.ping_id = 1;
  EXPECT_EQ(enc.Encode(ping), std::string("\x80\x03\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01", 12));
  EXPECT_EQ(enc.Encode(Data(3, "hi", spdy::kFlagFin)),
            std::string("\x00\x00\x00\x03\x01\x00\x00\x02hi", 10));
  SpdyFrame wu = Control(SpdyFrameType::kWindowUpdate);
  wu.stream_id = 5;
  wu.delta = 0x8000;
  EXPECT_EQ(enc.Encode(wu),
            std::string("\x80\x03\x00\x09\x00\x00\x00\x08\x00\x00\x00\x05\x00\x00\x80\x00", 16));
}

TEST(SpdyCodecTest, HeaderCompressionSharesOneStreamPerDirection) {
  SpdyEncoder enc;
  SpdyDecoder dec;
  for (int i = 0; i < 20; ++i) {
    SpdyHeaders h = {{"streamtype", i % 2 ? "stdout" : "stderr"}, {"n", std::to_string(i)}};
    EXPECT_EQ(dec.DecompressHeaders(enc.CompressHeaders(h)), h);
  }
  // A second block of identical headers compresses to far less than the first.
  SpdyEncoder fresh;
  SpdyHeaders h = {{"streamtype", "error"}, {"port", "8080"}, {"requestid", "0"}};
  size_t first = fresh.CompressHeaders(h).size();
  size_t second = fresh.CompressHeaders(h).size();
  EXPECT_LT(second, first);
}

// Two SYN_STREAMs produced by an independent zlib (Python's, level 9 as Go
// uses) with the SPDY/3 dictionary, in one compression stream, as
// spdystream sends them for `kubectl port-forward`.
TEST(SpdyCodecTest, DecodesForeignSynStreams) {
  const std::string f1(
      "\x80\x03\x00\x01\x00\x00\x00\x3d\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x78\xf9\xe3\xc6"
      "\xa7\xc2\x02\x25\x3a\x70\x3a\x2b\x29\x4a\x4d\xcc\x85\x16\x25\xac\xa9\xa0\x80\x86\x14\xcb"
      "\x45\xe0\x1c\x60\x61\x60\x61\x00\xa4\x39\x8b\x20\xd1\x98\x09\x4a\xde\x8c\x06\x00\x00\x00"
      "\x00\xff\xff",
      69);
  const std::string f2(
      "\x80\x03\x00\x01\x00\x00\x00\x18\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\xc2\xaa\x19\x54"
      "\x0e\x25\x12\xd6\x0b\x00\x00\x00\xff\xff",
      32);
  SpdyDecoder dec;
  dec.Feed(f1 + f2);
  auto a = dec.Next();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->type, SpdyFrameType::kSynStream);
  EXPECT_EQ(a->stream_id, 1u);
  EXPECT_EQ(a->headers,
            (SpdyHeaders{{"streamtype", "error"}, {"port", "8080"}, {"requestid", "0"}}));
  auto b = dec.Next();
  ASSERT_TRUE(b);
  EXPECT_EQ(b->stream_id, 3u);
  EXPECT_EQ(b->headers,
            (SpdyHeaders{{"streamtype", "data"}, {"port", "8080"}, {"requestid", "0"}}));
}

TEST(SpdyCodecTest, RejectsBadInput) {
  {
    SpdyDecoder dec;
    dec.Feed(std::string("\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01", 12));  // SPDY/2
    EXPECT_THROW(dec.Next(), Error);
  }
  {
    SpdyDecoder dec;
    dec.Feed(
        std::string("\x80\x03\x00\x01\x00\x00\x00\x0e\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                    "junk",
                    22));
    EXPECT_THROW(dec.Next(), Error);
  }
  {
    SpdyDecoder dec;  // unknown control types are skipped
    dec.Feed(std::string("\x80\x03\x00\x0a\x00\x00\x00\x02\xab\xcd", 10));
    dec.Feed(std::string("\x80\x03\x00\x06\x00\x00\x00\x04\x00\x00\x00\x07", 12));
    auto f = dec.Next();
    ASSERT_TRUE(f);
    EXPECT_EQ(f->type, SpdyFrameType::kPing);
    EXPECT_EQ(f->ping_id, 7u);
  }
}

TEST(SpdyUpgradeTest, NegotiatesInClientOrder) {
  http::Request req;
  req.method = "POST";
  req.headers.emplace("connection", "Upgrade");
  req.headers.emplace("upgrade", "SPDY/3.1");
  req.headers.emplace("x-stream-protocol-version", "v4.channel.k8s.io");
  req.headers.emplace("x-stream-protocol-version", "v3.channel.k8s.io");
  http::Response resp;
  EXPECT_EQ(AcceptSpdyUpgrade(req, {"v3.channel.k8s.io", "v4.channel.k8s.io"}, resp),
            "v4.channel.k8s.io");
  EXPECT_EQ(resp.status, 101);
  EXPECT_EQ(resp.headers.find("Upgrade")->second, "SPDY/3.1");
  EXPECT_EQ(resp.headers.find("X-Stream-Protocol-Version")->second, "v4.channel.k8s.io");

  http::Response forbidden;
  try {
    AcceptSpdyUpgrade(req, {"portforward.k8s.io"}, forbidden);
    FAIL() << "expected Forbidden";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kForbidden);
  }
  req.headers.erase("upgrade");
  http::Response bad;
  EXPECT_THROW(AcceptSpdyUpgrade(req, {"v4.channel.k8s.io"}, bad), Error);
}

TEST(SpdySessionTest, StreamsDataPingAndGoAway) {
  SocketPair sp;
  FdConn conn(sp.server.get());
  SpdySession session(conn);
  SpdyClient client(sp.client.get());

  ASSERT_TRUE(client.Send(Syn(1, {{"streamtype", "error"}})));
  ASSERT_TRUE(client.Send(Syn(3, {{"streamtype", "stdin"}})));
  ASSERT_TRUE(client.Send(Syn(5, {{"streamtype", "stdout"}})));
  std::shared_ptr<SpdyStream> streams[3];
  for (auto& s : streams) {
    s = session.AcceptStream(5000);
    ASSERT_TRUE(s);
  }
  EXPECT_EQ(streams[0]->id(), 1u);
  EXPECT_EQ(streams[0]->Header("streamtype"), "error");
  EXPECT_EQ(streams[1]->Header("streamtype"), "stdin");
  EXPECT_EQ(streams[2]->headers().at("streamtype"), "stdout");
  for (uint32_t id : {1u, 3u, 5u}) {
    auto r = client.Next();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->type, SpdyFrameType::kSynReply);
    EXPECT_EQ(r->stream_id, id);
  }

  // Client -> server with FIN.
  ASSERT_TRUE(client.Send(Data(3, "hello ")));
  ASSERT_TRUE(client.Send(Data(3, "world", spdy::kFlagFin)));
  EXPECT_EQ(ReadAll(*streams[1]), "hello world");
  EXPECT_TRUE(streams[1]->remote_closed());

  // Nothing to read yet: a timeout, not EOF.
  char c;
  EXPECT_EQ(streams[2]->Read(&c, 1, 10), -1);

  // Server -> client, then FIN.
  ASSERT_TRUE(streams[2]->Write("output"));
  ASSERT_TRUE(streams[2]->CloseWrite());
  EXPECT_FALSE(streams[2]->Write("late"));
  auto d = client.NextNonWindow();
  ASSERT_TRUE(d);
  EXPECT_EQ(d->type, SpdyFrameType::kData);
  EXPECT_EQ(d->stream_id, 5u);
  EXPECT_EQ(d->data, "output");
  auto fin = client.NextNonWindow();
  ASSERT_TRUE(fin);
  EXPECT_EQ(fin->stream_id, 5u);
  EXPECT_EQ(fin->flags & spdy::kFlagFin, spdy::kFlagFin);
  EXPECT_TRUE(fin->data.empty());

  // PING is echoed.
  SpdyFrame ping = Control(SpdyFrameType::kPing);
  ping.ping_id = 7;
  ASSERT_TRUE(client.Send(ping));
  auto pong = client.NextNonWindow();
  ASSERT_TRUE(pong);
  EXPECT_EQ(pong->type, SpdyFrameType::kPing);
  EXPECT_EQ(pong->ping_id, 7u);

  // RST from the client ends a stream.
  SpdyFrame rst = Control(SpdyFrameType::kRstStream);
  rst.stream_id = 1;
  rst.status = spdy::kCancel;
  ASSERT_TRUE(client.Send(rst));
  EXPECT_EQ(streams[0]->Read(&c, 1, 5000), 0);
  EXPECT_TRUE(streams[0]->reset_by_peer());
  EXPECT_FALSE(streams[0]->Write("x"));

  // A stream id that goes backwards is refused with RST_STREAM.
  ASSERT_TRUE(client.Send(Syn(3, {{"streamtype", "again"}})));
  auto refused = client.NextNonWindow();
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->type, SpdyFrameType::kRstStream);
  EXPECT_EQ(refused->stream_id, 3u);
  EXPECT_EQ(refused->status, spdy::kProtocolError);

  // GOAWAY: no more streams; closing the connection ends the session.
  ASSERT_TRUE(client.Send(Control(SpdyFrameType::kGoAway)));
  auto t0 = Clock::now();
  EXPECT_EQ(session.AcceptStream(5000), nullptr);
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(4));
  EXPECT_TRUE(session.goaway_received());
  EXPECT_FALSE(session.done());
  sp.client.reset();
  EXPECT_TRUE(session.WaitDone(5000));
  EXPECT_EQ(streams[2]->Read(&c, 1, 5000), 0);
}

TEST(SpdySessionTest, CloseSendsGoAwayAndEndsStreams) {
  SocketPair sp;
  FdConn conn(sp.server.get());
  auto session = std::make_unique<SpdySession>(conn);
  SpdyClient client(sp.client.get());
  ASSERT_TRUE(client.Send(Syn(1, {{"streamtype", "data"}})));
  auto s = session->AcceptStream(5000);
  ASSERT_TRUE(s);
  ASSERT_TRUE(client.Send(Data(1, "buffered")));
  char buf[16];
  long n = s->Read(buf, sizeof(buf), 5000);
  ASSERT_EQ(n, 8);
  EXPECT_EQ(std::string(buf, 8), "buffered");
  // A reader blocked in Read wakes with EOF when the session closes.
  std::thread reader([&] { EXPECT_EQ(s->Read(buf, sizeof(buf), 10000), 0); });
  session->Close();
  reader.join();
  EXPECT_TRUE(session->done());
  EXPECT_FALSE(s->Write("x"));
  std::optional<SpdyFrame> f;
  do {
    f = client.Next();
  } while (f && f->type != SpdyFrameType::kGoAway);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->stream_id, 1u);
  EXPECT_EQ(f->status, spdy::kGoAwayOk);
  session.reset();
  char c;
  EXPECT_EQ(s->Read(&c, 1, 1000), 0);  // the stream outlives its session safely
}

// 10 MiB each way on one stream, against a client that enforces SPDY/3.1
// flow control both ways: it never sends past the windows the server grants
// and checks that the server never sends past the windows it grants.
TEST(SpdySessionTest, TenMebibytesEachWayWithFlowControl) {
  SocketPair sp;
  FdConn conn(sp.server.get());
  SpdySession session(conn);
  SpdyClient client(sp.client.get());
  constexpr size_t kTotal = 10 << 20;
  auto pattern = [](size_t i) { return static_cast<char>('a' + (i * 7 + i / 4096) % 26); };

  ASSERT_TRUE(client.Send(Syn(1, {{"streamtype", "data"}})));
  auto s = session.AcceptStream(5000);
  ASSERT_TRUE(s);
  auto reply = client.Next();
  ASSERT_TRUE(reply && reply->type == SpdyFrameType::kSynReply);

  std::string upload;
  std::thread server_reader([&] { upload = ReadAll(*s); });
  std::thread server_writer([&] {
    std::string chunk;
    for (size_t sent = 0; sent < kTotal;) {
      size_t n = std::min<size_t>(300000, kTotal - sent);
      chunk.resize(n);
      for (size_t i = 0; i < n; ++i) chunk[i] = pattern(sent + i);
      ASSERT_TRUE(s->Write(chunk));
      sent += n;
    }
    ASSERT_TRUE(s->CloseWrite());
  });

  // Client: windows it may send into, and windows it granted.
  int64_t send_stream = spdy::kDefaultWindow, send_session = spdy::kDefaultWindow;
  int64_t grant_stream = spdy::kDefaultWindow, grant_session = spdy::kDefaultWindow;
  int64_t consumed_stream = 0, consumed_session = 0;
  size_t uploaded = 0, downloaded = 0;
  bool download_fin = false, download_ok = true;
  int window_updates_received = 0;
  auto deadline = Clock::now() + std::chrono::seconds(60);
  while ((uploaded < kTotal || !download_fin) && Clock::now() < deadline) {
    // Send as much as the windows allow.
    while (uploaded < kTotal && send_stream > 0 && send_session > 0) {
      size_t n = std::min<size_t>({16384, kTotal - uploaded, static_cast<size_t>(send_stream),
                                   static_cast<size_t>(send_session)});
      std::string data(n, '\0');
      for (size_t i = 0; i < n; ++i) data[i] = pattern(uploaded + i);
      bool last = uploaded + n == kTotal;
      ASSERT_TRUE(client.Send(Data(1, std::move(data), last ? spdy::kFlagFin : 0)));
      uploaded += n;
      send_stream -= static_cast<int64_t>(n);
      send_session -= static_cast<int64_t>(n);
    }
    auto f = client.Next(uploaded < kTotal ? 100 : 5000);
    if (!f) continue;
    if (f->type == SpdyFrameType::kWindowUpdate) {
      ++window_updates_received;
      (f->stream_id == 0 ? send_session : send_stream) += f->delta;
    } else if (f->type == SpdyFrameType::kData) {
      ASSERT_EQ(f->stream_id, 1u);
      for (size_t i = 0; i < f->data.size() && download_ok; ++i) {
        download_ok = f->data[i] == pattern(downloaded + i);
      }
      downloaded += f->data.size();
      consumed_stream += static_cast<int64_t>(f->data.size());
      consumed_session += static_cast<int64_t>(f->data.size());
      ASSERT_LE(consumed_stream, grant_stream) << "server overran the stream window";
      ASSERT_LE(consumed_session, grant_session) << "server overran the session window";
      if (f->flags & spdy::kFlagFin) download_fin = true;
      // Grant more once half the window is used, like a real peer.
      if (grant_stream - consumed_stream < 32768) {
        SpdyFrame wu = Control(SpdyFrameType::kWindowUpdate);
        wu.stream_id = 1;
        wu.delta = 65536;
        grant_stream += 65536;
        ASSERT_TRUE(client.Send(wu));
      }
      if (grant_session - consumed_session < 32768) {
        SpdyFrame wu = Control(SpdyFrameType::kWindowUpdate);
        wu.stream_id = 0;
        wu.delta = 65536;
        grant_session += 65536;
        ASSERT_TRUE(client.Send(wu));
      }
    }
  }
  server_writer.join();
  server_reader.join();
  EXPECT_EQ(uploaded, kTotal);
  EXPECT_TRUE(download_fin);
  EXPECT_EQ(downloaded, kTotal);
  EXPECT_TRUE(download_ok);
  ASSERT_EQ(upload.size(), kTotal);
  bool upload_ok = true;
  for (size_t i = 0; i < kTotal && upload_ok; ++i) upload_ok = upload[i] == pattern(i);
  EXPECT_TRUE(upload_ok);
  EXPECT_GT(window_updates_received, 100);  // both stream and session level flowed
}

// kubectl's spdystream does no flow control: it never sends WINDOW_UPDATE.
// Writes must not stop at 64 KiB then.
TEST(SpdySessionTest, PeerWithoutFlowControlIsNotThrottled) {
  SocketPair sp;
  FdConn conn(sp.server.get());
  SpdySession session(conn);
  SpdyClient client(sp.client.get());
  ASSERT_TRUE(client.Send(Syn(1, {{"streamtype", "stdout"}})));
  auto s = session.AcceptStream(5000);
  ASSERT_TRUE(s);
  std::thread writer([&] {
    EXPECT_TRUE(s->Write(std::string(1 << 20, 'q')));
    EXPECT_TRUE(s->CloseWrite());
  });
  size_t got = 0;
  bool fin = false;
  while (!fin) {
    auto f = client.Next();
    ASSERT_TRUE(f);
    if (f->type != SpdyFrameType::kData) continue;
    got += f->data.size();
    fin = f->flags & spdy::kFlagFin;
  }
  writer.join();
  EXPECT_EQ(got, 1u << 20);
}

// port-forward over WebSocket (kubectl >= 1.31): SPDY frames inside binary
// messages, with frames split across messages.
TEST(SpdyOverWebSocketTest, SessionRunsOnByteStream) {
  SocketPair sp;
  FdConn conn(sp.server.get());
  WebSocketConnection ws(conn);
  WebSocketByteStream bytes(ws);
  SpdySession session(bytes);

  SpdyEncoder enc;
  SpdyDecoder dec;
  WebSocketDecoder ws_dec(64 << 20, /*require_mask=*/false);
  auto send_ws = [&](std::string_view payload) {
    return SendAll(sp.client.get(),
                   EncodeWebSocketFrame(ws_opcode::kBinary, payload, true, 0x11223344));
  };
  auto next_spdy = [&]() -> std::optional<SpdyFrame> {
    auto deadline = Clock::now() + std::chrono::seconds(5);
    while (Clock::now() < deadline) {
      if (auto f = dec.Next()) return f;
      if (auto m = ws_dec.Next()) {
        EXPECT_EQ(m->opcode, ws_opcode::kBinary);
        dec.Feed(m->data);
        continue;
      }
      pollfd p{sp.client.get(), POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[65536];
      ssize_t n = ::recv(sp.client.get(), buf, sizeof(buf), 0);
      if (n <= 0) return std::nullopt;
      ws_dec.Feed(std::string_view(buf, static_cast<size_t>(n)));
    }
    return std::nullopt;
  };

  std::string syn_error =
      enc.Encode(Syn(1, {{"streamtype", "error"}, {"port", "80"}, {"requestid", "0"}}));
  std::string syn_data =
      enc.Encode(Syn(3, {{"streamtype", "data"}, {"port", "80"}, {"requestid", "0"}}));
  std::string both = syn_error + syn_data;
  ASSERT_TRUE(send_ws(both.substr(0, 7)));
  ASSERT_TRUE(send_ws(both.substr(7)));
  auto e = session.AcceptStream(5000);
  auto d = session.AcceptStream(5000);
  ASSERT_TRUE(e && d);
  EXPECT_EQ(e->Header("streamtype"), "error");
  EXPECT_EQ(d->Header("streamtype"), "data");
  EXPECT_EQ(d->Header("port"), "80");

  ASSERT_TRUE(send_ws(enc.Encode(Data(3, "GET / HTTP/1.0\r\n\r\n"))));
  char buf[64];
  long n = d->Read(buf, sizeof(buf), 5000);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)), "GET / HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(d->Write("HTTP/1.0 200 OK\r\n\r\n"));

  std::vector<SpdyFrame> got;
  while (got.size() < 3) {
    auto f = next_spdy();
    ASSERT_TRUE(f);
    if (f->type != SpdyFrameType::kWindowUpdate) got.push_back(*f);
  }
  EXPECT_EQ(got[0].type, SpdyFrameType::kSynReply);
  EXPECT_EQ(got[1].type, SpdyFrameType::kSynReply);
  EXPECT_EQ(got[2].type, SpdyFrameType::kData);
  EXPECT_EQ(got[2].data, "HTTP/1.0 200 OK\r\n\r\n");

  // The WebSocket close ends the SPDY session.
  ASSERT_TRUE(SendAll(
      sp.client.get(),
      EncodeWebSocketFrame(ws_opcode::kClose, WebSocketClosePayload(1000, ""), true, 0x11223344)));
  EXPECT_TRUE(session.WaitDone(5000));
  EXPECT_EQ(d->Read(buf, sizeof(buf), 5000), 0);
}

}  // namespace
}  // namespace kin
