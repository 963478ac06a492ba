#include "base/websocket.h"

#include <openssl/sha.h>
#include <strings.h>

#include <chrono>
#include <cstring>

#include "base/error.h"
#include "base/read_buffer.h"
#include "base/strings.h"

namespace kin {

namespace {

constexpr std::string_view kWebSocketGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

std::string_view TrimSpaces(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::vector<std::string> SplitCommaList(std::string_view s) {
  std::vector<std::string> out;
  while (true) {
    size_t comma = s.find(',');
    std::string_view item = TrimSpaces(s.substr(0, comma));
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  return out;
}

bool HeaderHasToken(const http::Request& req, const std::string& name, std::string_view token) {
  auto [begin, end] = req.headers.equal_range(name);
  for (auto it = begin; it != end; ++it) {
    for (const std::string& item : SplitCommaList(it->second)) {
      if (item.size() == token.size() &&
          ::strncasecmp(item.data(), token.data(), token.size()) == 0) {
        return true;
      }
    }
  }
  return false;
}

bool IsControl(uint8_t opcode) { return (opcode & 0x8) != 0; }

}  // namespace

std::string WebSocketAcceptKey(std::string_view client_key) {
  std::string input(client_key);
  input += kWebSocketGuid;
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  return Base64Encode(std::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

std::optional<std::string> ChooseWebSocketProtocol(const std::string& offered,
                                                   const std::vector<std::string>& supported) {
  std::vector<std::string> offers = SplitCommaList(offered);
  for (const std::string& want : supported) {
    for (const std::string& o : offers) {
      if (o == want) return want;
    }
  }
  return std::nullopt;
}

bool IsWebSocketRequest(const http::Request& req) {
  return req.method == "GET" && HeaderHasToken(req, "Connection", "upgrade") &&
         HeaderHasToken(req, "Upgrade", "websocket");
}

std::string AcceptWebSocket(const http::Request& req, const std::vector<std::string>& supported,
                            http::Response& resp) {
  if (!IsWebSocketRequest(req)) {
    throw Error::BadRequest(
        "not a WebSocket upgrade request (need GET with Connection: Upgrade "
        "and Upgrade: websocket)");
  }
  std::string version = req.Header("Sec-WebSocket-Version");
  if (version != "13") {
    throw Error::BadRequest("unsupported Sec-WebSocket-Version \"" + version + "\" (want 13)");
  }
  std::string key(TrimSpaces(req.Header("Sec-WebSocket-Key")));
  auto raw_key = Base64Decode(key);
  if (key.empty() || !raw_key || raw_key->size() != 16) {
    throw Error::BadRequest("invalid Sec-WebSocket-Key \"" + key + "\"");
  }
  std::string offered;
  auto [begin, end] = req.headers.equal_range("Sec-WebSocket-Protocol");
  for (auto it = begin; it != end; ++it) {
    if (!offered.empty()) offered += ",";
    offered += it->second;
  }
  std::string chosen;
  if (SplitCommaList(offered).empty()) {
    bool empty_ok = false;
    for (const std::string& s : supported) empty_ok |= s.empty();
    if (!empty_ok) {
      throw Error::BadRequest("no WebSocket subprotocol requested; supported: " + [&] {
        std::string all;
        for (const auto& s : supported) all += (all.empty() ? "" : ", ") + s;
        return all;
      }());
    }
  } else {
    auto choice = ChooseWebSocketProtocol(offered, supported);
    if (!choice) {
      throw Error::BadRequest("requested WebSocket subprotocol(s) \"" + offered +
                              "\" are not supported");
    }
    chosen = *choice;
  }
  resp.status = 101;
  resp.body.clear();
  resp.headers.emplace("Upgrade", "websocket");
  resp.headers.emplace("Connection", "Upgrade");
  resp.headers.emplace("Sec-WebSocket-Accept", WebSocketAcceptKey(key));
  if (!chosen.empty()) resp.headers.emplace("Sec-WebSocket-Protocol", chosen);
  return chosen;
}

std::string EncodeWebSocketFrame(uint8_t opcode, std::string_view payload, bool fin,
                                 std::optional<uint32_t> mask) {
  std::string out;
  out.reserve(payload.size() + 14);
  out.push_back(static_cast<char>((fin ? 0x80 : 0x00) | (opcode & 0x0F)));
  uint8_t mask_bit = mask ? 0x80 : 0x00;
  uint64_t len = payload.size();
  if (len < 126) {
    out.push_back(static_cast<char>(mask_bit | len));
  } else if (len <= 0xFFFF) {
    out.push_back(static_cast<char>(mask_bit | 126));
    out.push_back(static_cast<char>(len >> 8));
    out.push_back(static_cast<char>(len & 0xFF));
  } else {
    out.push_back(static_cast<char>(mask_bit | 127));
    for (int shift = 56; shift >= 0; shift -= 8) {
      out.push_back(static_cast<char>((len >> shift) & 0xFF));
    }
  }
  if (!mask) {
    out.append(payload);
    return out;
  }
  uint8_t key[4] = {static_cast<uint8_t>(*mask >> 24), static_cast<uint8_t>(*mask >> 16),
                    static_cast<uint8_t>(*mask >> 8), static_cast<uint8_t>(*mask)};
  out.append(reinterpret_cast<const char*>(key), 4);
  size_t start = out.size();
  out.append(payload);
  for (size_t i = 0; i < payload.size(); ++i) out[start + i] ^= static_cast<char>(key[i % 4]);
  return out;
}

std::string WebSocketClosePayload(uint16_t code, std::string_view reason) {
  std::string p;
  p.push_back(static_cast<char>(code >> 8));
  p.push_back(static_cast<char>(code & 0xFF));
  p.append(reason.substr(0, 123));  // control frames carry at most 125 bytes
  return p;
}

WebSocketDecoder::WebSocketDecoder(size_t max_message_bytes, bool require_mask)
    : max_message_bytes_(max_message_bytes), require_mask_(require_mask) {}

void WebSocketDecoder::Feed(std::string_view bytes) { FeedReadBuffer(buf_, pos_, bytes); }

std::optional<WebSocketMessage> WebSocketDecoder::Next() {
  while (true) {
    const auto* p = reinterpret_cast<const uint8_t*>(buf_.data()) + pos_;
    size_t avail = buf_.size() - pos_;
    if (avail < 2) return std::nullopt;
    bool fin = (p[0] & 0x80) != 0;
    if ((p[0] & 0x70) != 0) throw Error::BadRequest("WebSocket frame uses reserved bits (RSV1-3)");
    uint8_t opcode = p[0] & 0x0F;
    bool masked = (p[1] & 0x80) != 0;
    uint64_t len = p[1] & 0x7F;
    size_t header = 2;
    if (len == 126) {
      if (avail < 4) return std::nullopt;
      len = (uint64_t{p[2]} << 8) | p[3];
      header = 4;
    } else if (len == 127) {
      if (avail < 10) return std::nullopt;
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | p[2 + i];
      if (len >> 63) throw Error::BadRequest("WebSocket frame length has its top bit set");
      header = 10;
    }
    if (require_mask_ && !masked) throw Error::BadRequest("WebSocket client frame is not masked");
    if (IsControl(opcode)) {
      if (!fin) throw Error::BadRequest("WebSocket control frame is fragmented");
      if (len > 125) throw Error::BadRequest("WebSocket control frame longer than 125 bytes");
      if (opcode > ws_opcode::kPong) {
        throw Error::BadRequest("unknown WebSocket opcode " + std::to_string(opcode));
      }
    } else {
      if (opcode > ws_opcode::kBinary) {
        throw Error::BadRequest("unknown WebSocket opcode " + std::to_string(opcode));
      }
      if (opcode == ws_opcode::kContinuation && !in_fragmented_) {
        throw Error::BadRequest("WebSocket continuation frame without a message to continue");
      }
      if (opcode != ws_opcode::kContinuation && in_fragmented_) {
        throw Error::BadRequest("WebSocket data frame inside a fragmented message");
      }
      size_t so_far = in_fragmented_ ? fragments_.size() : 0;
      if (len > max_message_bytes_ || so_far + len > max_message_bytes_) {
        throw Error::TooLarge("WebSocket message larger than " +
                              std::to_string(max_message_bytes_) + " bytes");
      }
    }
    size_t mask_len = masked ? 4 : 0;
    if (avail < header + mask_len + len) return std::nullopt;
    std::string payload(reinterpret_cast<const char*>(p + header + mask_len), len);
    if (masked) {
      const uint8_t* key = p + header;
      for (size_t i = 0; i < payload.size(); ++i) payload[i] ^= static_cast<char>(key[i % 4]);
    }
    pos_ += header + mask_len + len;

    if (IsControl(opcode)) {
      WebSocketMessage m;
      m.opcode = opcode;
      if (opcode == ws_opcode::kClose) {
        if (payload.size() == 1) throw Error::BadRequest("WebSocket close frame of 1 byte");
        if (payload.size() >= 2) {
          m.close_code = static_cast<uint16_t>((uint8_t(payload[0]) << 8) | uint8_t(payload[1]));
          m.data = payload.substr(2);
        } else {
          m.close_code = ws_close::kNoStatus;
        }
      } else {
        m.data = std::move(payload);
      }
      return m;
    }
    if (opcode != ws_opcode::kContinuation) {
      if (fin) return WebSocketMessage{opcode, std::move(payload), 0};
      in_fragmented_ = true;
      fragmented_opcode_ = opcode;
      fragments_ = std::move(payload);
      continue;
    }
    fragments_ += payload;
    if (fin) {
      in_fragmented_ = false;
      WebSocketMessage m{fragmented_opcode_, std::move(fragments_), 0};
      fragments_.clear();
      return m;
    }
  }
}

WebSocketConnection::WebSocketConnection(http::Conn& conn, size_t max_message_bytes)
    : conn_(conn), decoder_(max_message_bytes, /*require_mask=*/true) {}

bool WebSocketConnection::WriteFrame(const std::string& frame) {
  // Caller holds write_mu_.
  if (write_failed_) return false;
  if (!conn_.WriteAll(frame)) {
    write_failed_ = true;
    closed_ = true;
    return false;
  }
  return true;
}

bool WebSocketConnection::Send(uint8_t opcode, std::string_view payload) {
  std::string frame = EncodeWebSocketFrame(opcode, payload);
  std::lock_guard<std::mutex> lock(write_mu_);
  if (close_sent_) return false;
  return WriteFrame(frame);
}

bool WebSocketConnection::SendClose(uint16_t code, std::string_view reason) {
  std::string frame = EncodeWebSocketFrame(ws_opcode::kClose, WebSocketClosePayload(code, reason));
  std::lock_guard<std::mutex> lock(write_mu_);
  if (close_sent_) return true;
  close_sent_ = true;
  return WriteFrame(frame);
}

std::optional<WebSocketMessage> WebSocketConnection::Receive(int timeout_ms) {
  using Clock = std::chrono::steady_clock;
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms < 0 ? 0 : timeout_ms);
  char buf[65536];
  while (!closed_) {
    std::optional<WebSocketMessage> m;
    try {
      m = decoder_.Next();
    } catch (const Error& e) {
      SendClose(
          e.code() == Code::kRequestEntityTooLarge ? ws_close::kTooBig : ws_close::kProtocolError,
          e.message());
      closed_ = true;
      return std::nullopt;
    }
    if (m) {
      switch (m->opcode) {
        case ws_opcode::kPing:
          Send(ws_opcode::kPong, m->data);
          continue;
        case ws_opcode::kPong:
          continue;
        case ws_opcode::kClose:
          peer_close_code_ = m->close_code;
          // Echo the peer's code, as RFC 6455 5.5.1 suggests.
          SendClose(m->close_code == ws_close::kNoStatus ? ws_close::kNormal : m->close_code, "");
          closed_ = true;
          return std::nullopt;
        default:
          return m;
      }
    }
    int wait_ms = -1;
    if (timeout_ms >= 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0 && timeout_ms > 0) return std::nullopt;
      wait_ms = static_cast<int>(std::max<long>(0, left.count()));
    }
    if (!conn_.WaitReadable(wait_ms)) {
      if (timeout_ms >= 0) return std::nullopt;
      continue;
    }
    long n = conn_.Read(buf, sizeof(buf));
    if (n <= 0) {
      closed_ = true;
      return std::nullopt;
    }
    decoder_.Feed(std::string_view(buf, n));
  }
  return std::nullopt;
}

bool ChannelMux::Write(uint8_t channel, std::string_view data) {
  std::string msg;
  msg.reserve(data.size() + 1);
  msg.push_back(static_cast<char>(channel));
  msg.append(data);
  return ws_.SendBinary(msg);
}

bool ChannelMux::CloseChannel(uint8_t channel) {
  if (version_ < 5) return true;
  std::string msg{static_cast<char>(k8s_channel::kClose), static_cast<char>(channel)};
  return ws_.SendBinary(msg);
}

std::optional<ChannelMessage> ChannelMux::Read(int timeout_ms) {
  using Clock = std::chrono::steady_clock;
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms < 0 ? 0 : timeout_ms);
  while (true) {
    int left = timeout_ms;
    if (timeout_ms >= 0) {
      left = static_cast<int>(std::max<long>(
          0,
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count()));
    }
    auto m = ws_.Receive(left);
    if (!m) return std::nullopt;
    if (m->data.empty()) continue;
    ChannelMessage out;
    out.channel = static_cast<uint8_t>(m->data[0]);
    if (out.channel == k8s_channel::kClose && version_ >= 5) {
      if (m->data.size() < 2) continue;
      out.channel = static_cast<uint8_t>(m->data[1]);
      out.closed = true;
      return out;
    }
    out.data = m->data.substr(1);
    return out;
  }
}

long WebSocketByteStream::Read(char* buf, size_t n) {
  while (pending_pos_ >= pending_.size()) {
    auto m = ws_.Receive(-1);
    if (!m) return 0;
    pending_ = std::move(m->data);
    pending_pos_ = 0;
  }
  size_t take = std::min(n, pending_.size() - pending_pos_);
  std::memcpy(buf, pending_.data() + pending_pos_, take);
  pending_pos_ += take;
  return static_cast<long>(take);
}

bool WebSocketByteStream::WriteAll(std::string_view data) {
  if (data.empty()) return !ws_.closed();
  return ws_.SendBinary(data);
}

bool WebSocketByteStream::WaitReadable(int timeout_ms) {
  while (pending_pos_ >= pending_.size()) {
    if (ws_.closed()) return true;  // EOF is "readable"
    auto m = ws_.Receive(timeout_ms);
    if (!m) return ws_.closed();
    pending_ = std::move(m->data);
    pending_pos_ = 0;
  }
  return true;
}

bool WebSocketByteStream::PeerClosed() { return ws_.closed() || ws_.conn().PeerClosed(); }

}  // namespace kin
