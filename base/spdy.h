// SPDY/3.1, the server side of a session as Kubernetes uses it (kubectl
// exec/attach <= 1.29 and as fallback, port-forward <= 1.30, and inside
// WebSocket for port-forward >= 1.31; the Go side is moby/spdystream).
//
// The client opens every stream (SYN_STREAM, odd ids) with headers such as
// "streamtype: stdin|stdout|stderr|error|resize" (exec/attach) or
// "streamtype: data|error", "port", "requestid" (port-forward). The session
// answers each with an empty SYN_REPLY at once (as the kubelet does) and
// queues it for AcceptStream. Server-initiated streams are not supported.
//
// Layers:
//   - SpdyFrame + SpdyEncoder / SpdyDecoder: pure codec. Header blocks are
//     zlib-compressed with the SPDY/3 dictionary, one zlib stream per
//     direction for the whole session (so one encoder and one decoder per
//     session, used in frame order).
//   - SpdySession over an http::Conn (the upgraded socket, or a
//     WebSocketByteStream): a reader thread dispatches frames; streams are
//     read and written from any threads.
//
// Flow control: the session sends WINDOW_UPDATEs (stream and session level)
// as the application consumes data, so a peer that respects windows never
// stalls. spdystream (kubectl) implements no flow control at all: it sends
// regardless of windows and never sends WINDOW_UPDATE. So the session
// respects the peer's windows (initial 64 KiB, or SETTINGS
// INITIAL_WINDOW_SIZE) only once the peer has shown it does flow control
// (sent a WINDOW_UPDATE or that SETTINGS); otherwise writes to kubectl would
// stop for good after 64 KiB. Against a peer that ignores windows, the
// reader stops reading (backpressure through TCP) while one stream holds
// more than max_buffered_bytes unread.
//
// Errors: the codec throws kin::Error (BadRequest) on malformed input; the
// session never throws: on a protocol error it sends GOAWAY(PROTOCOL_ERROR)
// and ends.
//
// Thread-safety: SpdyEncoder/SpdyDecoder are thread-compatible. SpdySession
// and SpdyStream are thread-safe: one thread per stream reading, any threads
// writing, AcceptStream from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/http_server.h"

namespace kin {

enum class SpdyFrameType : uint16_t {
  kData = 0,  // not a control type: marks DATA frames
  kSynStream = 1,
  kSynReply = 2,
  kRstStream = 3,
  kSettings = 4,
  kPing = 6,
  kGoAway = 7,
  kHeaders = 8,
  kWindowUpdate = 9,
};

namespace spdy {
inline constexpr uint8_t kFlagFin = 0x01;             // DATA, SYN_STREAM, SYN_REPLY, HEADERS
inline constexpr uint8_t kFlagUnidirectional = 0x02;  // SYN_STREAM
inline constexpr uint32_t kDefaultWindow = 64 * 1024;
inline constexpr uint32_t kMaxDataLength = (1u << 24) - 1;
// RST_STREAM status codes.
inline constexpr uint32_t kProtocolError = 1;
inline constexpr uint32_t kInvalidStream = 2;
inline constexpr uint32_t kRefusedStream = 3;
inline constexpr uint32_t kUnsupportedVersion = 4;
inline constexpr uint32_t kCancel = 5;
inline constexpr uint32_t kInternalError = 6;
inline constexpr uint32_t kFlowControlError = 7;
inline constexpr uint32_t kStreamInUse = 8;
inline constexpr uint32_t kStreamAlreadyClosed = 9;
// GOAWAY status codes.
inline constexpr uint32_t kGoAwayOk = 0;
inline constexpr uint32_t kGoAwayProtocolError = 1;
inline constexpr uint32_t kGoAwayInternalError = 2;
// SETTINGS ids used here.
inline constexpr uint32_t kSettingsMaxConcurrentStreams = 4;
inline constexpr uint32_t kSettingsInitialWindowSize = 7;
// The X-Stream-Protocol-Version / Upgrade values of the HTTP handshake.
inline constexpr const char* kUpgradeProtocol = "SPDY/3.1";
}  // namespace spdy

// Header name -> value. Names are lower case on the wire; several values of
// one name are joined with '\0' (as SPDY/3 does).
using SpdyHeaders = std::map<std::string, std::string>;

struct SpdySetting {
  uint8_t flags = 0;
  uint32_t id = 0;  // 24 bits
  uint32_t value = 0;
  bool operator==(const SpdySetting&) const = default;
};

// One frame, unpacked. Fields that a type does not use stay zero/empty.
struct SpdyFrame {
  SpdyFrameType type = SpdyFrameType::kData;
  uint8_t flags = 0;
  // DATA, SYN_STREAM, SYN_REPLY, RST_STREAM, HEADERS, WINDOW_UPDATE (0 = the
  // session window); GOAWAY: the last good stream id.
  uint32_t stream_id = 0;
  uint32_t associated_id = 0;         // SYN_STREAM
  uint8_t priority = 0;               // SYN_STREAM, 0..7
  uint8_t slot = 0;                   // SYN_STREAM
  SpdyHeaders headers;                // SYN_STREAM, SYN_REPLY, HEADERS
  std::string data;                   // DATA
  uint32_t status = 0;                // RST_STREAM, GOAWAY
  uint32_t ping_id = 0;               // PING
  uint32_t delta = 0;                 // WINDOW_UPDATE
  std::vector<SpdySetting> settings;  // SETTINGS

  bool operator==(const SpdyFrame&) const = default;
};

// The SPDY/3 zlib dictionary (1423 bytes).
std::string_view SpdyHeaderDictionary();

// Serializes frames; owns the sending direction's header compressor.
class SpdyEncoder {
 public:
  SpdyEncoder();
  ~SpdyEncoder();
  SpdyEncoder(const SpdyEncoder&) = delete;
  SpdyEncoder& operator=(const SpdyEncoder&) = delete;

  std::string Encode(const SpdyFrame& frame);
  // The compressed name/value block alone (advances the zlib stream).
  std::string CompressHeaders(const SpdyHeaders& headers);

 private:
  struct Zlib;
  std::unique_ptr<Zlib> z_;
};

// Parses frames from a byte stream; owns the receiving direction's header
// decompressor. Unknown control frame types are skipped (as the spec says).
class SpdyDecoder {
 public:
  explicit SpdyDecoder(size_t max_frame_bytes = 16 << 20);
  ~SpdyDecoder();
  SpdyDecoder(const SpdyDecoder&) = delete;
  SpdyDecoder& operator=(const SpdyDecoder&) = delete;

  void Feed(std::string_view bytes);
  // The next complete frame, or nullopt until more bytes arrive. Throws
  // Error::BadRequest on malformed frames (wrong version, bad lengths, bad
  // header block); the decoder is unusable afterwards.
  std::optional<SpdyFrame> Next();
  // Decompresses one name/value block (advances the zlib stream).
  SpdyHeaders DecompressHeaders(std::string_view block);

 private:
  struct Zlib;
  std::unique_ptr<Zlib> z_;
  size_t max_frame_bytes_;
  std::string buf_;
  size_t pos_ = 0;
};

// The HTTP side of a SPDY upgrade (k8s.io/apimachinery httpstream.Handshake
// + spdy upgrade): checks "Connection: Upgrade" and "Upgrade: SPDY/3.1",
// negotiates X-Stream-Protocol-Version (the first of the client's versions,
// in the client's order, that `supported` lists) and turns `resp` into the
// 101 answer (Connection, Upgrade, X-Stream-Protocol-Version). Returns the
// negotiated version. Throws Error::BadRequest for a request that is not a
// SPDY upgrade or names no version, Error::Forbidden when no version matches
// (Kubernetes answers 403 "unable to upgrade: unable to negotiate
// protocol: ..."). The caller sets resp.upgrade and runs a SpdySession.
std::string AcceptSpdyUpgrade(const http::Request& req, const std::vector<std::string>& supported,
                              http::Response& resp);

class SpdySession;

// One client-opened stream.
class SpdyStream {
 public:
  uint32_t id() const { return id_; }
  const SpdyHeaders& headers() const { return headers_; }
  // A header's value ("" if absent), e.g. Header("streamtype").
  std::string Header(const std::string& name) const;

  // Blocks until data, EOF or the timeout (timeout_ms < 0: no timeout).
  // Returns bytes read (> 0), 0 at end of stream (peer FIN, RST_STREAM or
  // session end), -1 on timeout.
  long Read(char* buf, size_t n, int timeout_ms = -1);
  // Sends data (split into frames; waits for window when the peer does flow
  // control). False if the stream was reset, closed for writing, or the
  // session ended.
  bool Write(std::string_view data);
  // Half-closes: an empty DATA frame with FIN. Idempotent.
  bool CloseWrite();
  // RST_STREAM with `status`; ends both directions.
  void Reset(uint32_t status = spdy::kCancel);

  bool reset_by_peer() const;
  bool remote_closed() const;  // FIN or RST received (data may still be buffered)

 private:
  friend class SpdySession;
  struct Core;
  SpdyStream(std::shared_ptr<Core> core, uint32_t id, SpdyHeaders headers, uint32_t send_window)
      : core_(std::move(core)), id_(id), headers_(std::move(headers)), send_window_(send_window) {}

  std::shared_ptr<Core> core_;
  const uint32_t id_;
  const SpdyHeaders headers_;
  // Guarded by core_->mu.
  std::string recv_;
  size_t recv_pos_ = 0;
  uint32_t unacked_consumed_ = 0;  // consumed bytes not yet WINDOW_UPDATEd
  int64_t send_window_;
  bool remote_fin_ = false;
  bool reset_ = false;  // RST sent or received
  bool peer_reset_ = false;
  bool local_fin_ = false;
};

struct SpdySessionOptions {
  // Our receive window per stream and for the session (advertised through
  // SETTINGS if not the default 64 KiB).
  uint32_t receive_window = spdy::kDefaultWindow;
  // The reader pauses while one stream holds this much unread data.
  size_t max_buffered_bytes = 4 << 20;
  size_t max_frame_bytes = 16 << 20;
};

class SpdySession {
 public:
  // Starts the reader thread on `conn`; conn must outlive the session.
  explicit SpdySession(http::Conn& conn, SpdySessionOptions options = {});
  // Close()s.
  ~SpdySession();
  SpdySession(const SpdySession&) = delete;
  SpdySession& operator=(const SpdySession&) = delete;

  // The next stream the client opened (already answered with SYN_REPLY).
  // nullptr on timeout (timeout_ms < 0: wait forever), or once the session
  // ended or the peer sent GOAWAY and no opened stream is left.
  std::shared_ptr<SpdyStream> AcceptStream(int timeout_ms = -1);

  // Sends GOAWAY (once), ends every stream (reads return EOF after buffered
  // data, writes fail), stops and joins the reader. After it returns the
  // session no longer touches conn. Idempotent.
  void Close();

  // True once the connection ended (EOF, error, protocol error or Close).
  bool done() const;
  // Blocks until done() or the timeout; returns done().
  bool WaitDone(int timeout_ms);
  bool goaway_received() const;

 private:
  void ReaderLoop();
  void Dispatch(SpdyFrame& frame);

  std::shared_ptr<SpdyStream::Core> core_;
  std::thread reader_;
};

}  // namespace kin
