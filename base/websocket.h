// WebSocket (RFC 6455), server side, and the Kubernetes framings on top of it.
//
// kubectl >= 1.30 runs exec/attach over WebSocket with subprotocol
// v5.channel.k8s.io (v4.channel.k8s.io before): every message is a binary
// frame whose first byte is the channel (ChannelMux). kubectl >= 1.31 runs
// port-forward over WebSocket with subprotocol "SPDY/3.1+portforward.k8s.io":
// the binary messages carry a raw SPDY byte stream (WebSocketByteStream makes
// that look like an http::Conn for SpdySession).
//
// Layers, each usable alone:
//   - pure helpers: WebSocketAcceptKey, ChooseWebSocketProtocol,
//     EncodeWebSocketFrame, WebSocketDecoder (bytes in, whole messages out);
//   - AcceptWebSocket: fills the 101 response for a handler;
//   - WebSocketConnection: messages over the upgraded http::Conn (answers
//     pings, answers and reports close);
//   - ChannelMux: channel.k8s.io messages over a WebSocketConnection;
//   - WebSocketByteStream: an http::Conn whose bytes travel in binary messages.
//
// Errors: the decoder throws kin::Error (BadRequest; TooLarge past the message
// limit). WebSocketConnection never throws: it answers protocol errors with a
// close frame (1002 / 1009) and reports the connection closed.
//
// Thread-safety: the pure helpers are thread-safe; a WebSocketDecoder is
// thread-compatible. WebSocketConnection, ChannelMux and WebSocketByteStream
// allow one thread receiving (Receive/Read/WaitReadable) while any number of
// threads send (sends are serialized, one frame at a time).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/http_server.h"

namespace kin {

// Frame opcodes (RFC 6455 section 5.2).
namespace ws_opcode {
inline constexpr uint8_t kContinuation = 0x0;
inline constexpr uint8_t kText = 0x1;
inline constexpr uint8_t kBinary = 0x2;
inline constexpr uint8_t kClose = 0x8;
inline constexpr uint8_t kPing = 0x9;
inline constexpr uint8_t kPong = 0xA;
}  // namespace ws_opcode

// Close status codes used here (RFC 6455 section 7.4.1).
namespace ws_close {
inline constexpr uint16_t kNormal = 1000;
inline constexpr uint16_t kGoingAway = 1001;
inline constexpr uint16_t kProtocolError = 1002;
inline constexpr uint16_t kNoStatus = 1005;  // close frame without a code
inline constexpr uint16_t kTooBig = 1009;
inline constexpr uint16_t kInternalError = 1011;
}  // namespace ws_close

// Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + GUID)).
std::string WebSocketAcceptKey(std::string_view client_key);

// The first of `supported` (in our preference order) that the client offered
// in its Sec-WebSocket-Protocol header (comma-separated, any spacing);
// nullopt when none matches.
std::optional<std::string> ChooseWebSocketProtocol(const std::string& offered,
                                                   const std::vector<std::string>& supported);

// True when the request asks for a WebSocket upgrade (GET, Connection:
// upgrade, Upgrade: websocket).
bool IsWebSocketRequest(const http::Request& req);

// Validates a WebSocket handshake request and turns `resp` into the 101
// answer (Upgrade, Connection, Sec-WebSocket-Accept, Sec-WebSocket-Protocol).
// Returns the chosen subprotocol ("" only if the client offered none and
// `supported` contains ""). Throws Error::BadRequest for a malformed
// handshake or when no offered subprotocol is supported (kubectl then falls
// back to SPDY). The caller sets resp.upgrade.
std::string AcceptWebSocket(const http::Request& req, const std::vector<std::string>& supported,
                            http::Response& resp);

// One frame. Server frames are unmasked (mask == nullopt); a client (tests)
// passes a masking key. 7-, 16- or 64-bit payload length as needed.
std::string EncodeWebSocketFrame(uint8_t opcode, std::string_view payload, bool fin = true,
                                 std::optional<uint32_t> mask = std::nullopt);

// The payload of a close frame: 2-byte code (big endian) + UTF-8 reason.
std::string WebSocketClosePayload(uint16_t code, std::string_view reason);

struct WebSocketMessage {
  uint8_t opcode = ws_opcode::kBinary;  // kText/kBinary, or a control opcode
  std::string data;                     // payload; for kClose the reason only
  uint16_t close_code = 0;              // kClose: the status (kNoStatus if none)
};

// Incremental decoder of a peer's frames: Feed bytes as they arrive, take
// whole messages with Next(). Fragmented data messages are reassembled;
// control frames (which may arrive between fragments) come out on their own.
class WebSocketDecoder {
 public:
  // require_mask: a server must reject unmasked client frames (RFC 6455 5.1).
  explicit WebSocketDecoder(size_t max_message_bytes = 32 << 20, bool require_mask = true);

  void Feed(std::string_view bytes);
  // The next complete message, or nullopt until more bytes arrive. Throws
  // Error::BadRequest on a protocol violation, Error::TooLarge when a
  // message exceeds max_message_bytes; the decoder is unusable afterwards.
  std::optional<WebSocketMessage> Next();
  size_t buffered() const { return buf_.size() - pos_; }

 private:
  size_t max_message_bytes_;
  bool require_mask_;
  std::string buf_;
  size_t pos_ = 0;
  bool in_fragmented_ = false;
  uint8_t fragmented_opcode_ = 0;
  std::string fragments_;
};

// Messages over an upgraded connection (after AcceptWebSocket's 101).
class WebSocketConnection {
 public:
  explicit WebSocketConnection(http::Conn& conn, size_t max_message_bytes = 32 << 20);

  // One unfragmented frame. False once the connection failed or closed.
  bool Send(uint8_t opcode, std::string_view payload);
  bool SendBinary(std::string_view payload) { return Send(ws_opcode::kBinary, payload); }
  // Sends a close frame (once; later calls return true and send nothing).
  bool SendClose(uint16_t code, std::string_view reason = "");

  // The next data message (text or binary). Pings are answered, pongs
  // dropped. nullopt when the timeout passes (timeout_ms < 0: wait forever)
  // or the connection ended: the peer's close (answered with a close frame),
  // EOF, or a protocol error (answered with close 1002/1009); closed() tells
  // these apart from a timeout.
  std::optional<WebSocketMessage> Receive(int timeout_ms);

  bool closed() const { return closed_; }
  // The code of the peer's close frame; 0 if none came.
  uint16_t peer_close_code() const { return peer_close_code_; }
  http::Conn& conn() { return conn_; }

 private:
  bool WriteFrame(const std::string& frame);

  http::Conn& conn_;
  WebSocketDecoder decoder_;
  std::mutex write_mu_;
  bool close_sent_ = false;    // guarded by write_mu_
  bool write_failed_ = false;  // guarded by write_mu_
  std::atomic<bool> closed_{false};
  std::atomic<uint16_t> peer_close_code_{0};
};

// channel.k8s.io (v4/v5) framing for exec/attach: a binary message is
// [channel byte] + data.
namespace k8s_channel {
inline constexpr uint8_t kStdin = 0;
inline constexpr uint8_t kStdout = 1;
inline constexpr uint8_t kStderr = 2;
inline constexpr uint8_t kError = 3;    // server -> client: a metav1.Status JSON
inline constexpr uint8_t kResize = 4;   // client -> server: {"Width":w,"Height":h}
inline constexpr uint8_t kClose = 255;  // v5: "channel N closed", payload [N]
inline constexpr const char* kV4Protocol = "v4.channel.k8s.io";
inline constexpr const char* kV5Protocol = "v5.channel.k8s.io";
inline constexpr const char* kPortForwardTunnelProtocol = "SPDY/3.1+portforward.k8s.io";
}  // namespace k8s_channel

struct ChannelMessage {
  uint8_t channel = 0;
  std::string data;
  // v5: the peer closed `channel` (its half of it; e.g. stdin EOF). data empty.
  bool closed = false;
};

class ChannelMux {
 public:
  // version: 4 or 5 (the negotiated vN.channel.k8s.io).
  ChannelMux(WebSocketConnection& ws, int version) : ws_(ws), version_(version) {}

  // Sends data on a channel (one message). Empty data is sent too.
  bool Write(uint8_t channel, std::string_view data);
  // v5: tells the peer this side will send no more on `channel`. v4 has no
  // such message: returns true without sending.
  bool CloseChannel(uint8_t channel);
  // The next channel message; empty messages (no channel byte) are skipped.
  // nullopt on timeout or end of connection (ws().closed()).
  std::optional<ChannelMessage> Read(int timeout_ms);

  int version() const { return version_; }
  WebSocketConnection& ws() { return ws_; }

 private:
  WebSocketConnection& ws_;
  int version_;
};

// A byte stream carried in binary WebSocket messages: the transport of
// "SPDY/3.1+portforward.k8s.io" (run SpdySession on it). Each WriteAll is one
// binary message; Read returns bytes of received binary/text messages in
// order and 0 once the WebSocket closed.
class WebSocketByteStream : public http::Conn {
 public:
  explicit WebSocketByteStream(WebSocketConnection& ws) : ws_(ws) {}

  long Read(char* buf, size_t n) override;
  bool WriteAll(std::string_view data) override;
  bool WaitReadable(int timeout_ms) override;
  bool PeerClosed() override;
  int fd() const override { return ws_.conn().fd(); }

 private:
  WebSocketConnection& ws_;
  std::string pending_;  // received, not yet read (reader thread only)
  size_t pending_pos_ = 0;
};

}  // namespace kin
