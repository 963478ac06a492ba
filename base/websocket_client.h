// WebSocket client (RFC 6455) for the CLI: `kin exec` and `kin port-forward`
// talk to the API server the way kubectl >= 1.31 does.
//
// Connect() opens TCP (plus TLS when the URL is https://, verifying the
// server against a CA and presenting a client certificate, like a
// kubeconfig user), sends the HTTP/1.1 Upgrade request offering the
// subprotocols, and checks the answer: status 101, Sec-WebSocket-Accept
// matching the key sent, and a subprotocol among those offered. Client
// frames are masked (a server must reject unmasked ones); server frames are
// read unmasked.
//
// Errors: Connect() throws kin::Error: Unavailable for transport and TLS
// failures (naming the address); for a non-101 answer an HttpStatusError: the API's
// Status body (its message, and the code from its reason / HTTP status) so
// the CLI can print "Error from server (NotFound): pods "x" not found";
// BadRequest for a 101 that does not complete the handshake. After Connect
// nothing throws: Send returns false and Receive nullopt once the connection
// failed or closed.
//
// Thread-safety: one thread may Receive while any number of threads Send
// (sends are serialized, one frame at a time). Shutdown() may be called from
// any thread to unblock a receiver.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/http_server.h"
#include "base/websocket.h"

namespace kin {

struct WebSocketClientOptions {
  // http:// or https:// (ws:// and wss:// are accepted too) with host, port
  // and path?query, e.g. "https://127.0.0.1:6443/api/v1/namespaces/d/pods/p/exec?...".
  std::string url;
  // Offered in this order in Sec-WebSocket-Protocol; the server must pick one
  // of them (when non-empty).
  std::vector<std::string> protocols;
  // TLS: each of CA, client certificate and key as PEM text or a PEM file
  // (text wins when both are set). Without a CA the system's default trust
  // store is used.
  std::string ca_pem, cert_pem, key_pem;
  std::string ca_file, cert_file, key_file;
  http::Headers headers;  // extra request headers
  int connect_timeout_ms = 10000;
  size_t max_message_bytes = 32 << 20;
};

// Turns a non-2xx HTTP answer into the kin::Error it stands for: the
// metav1.Status body's message and reason when the body is one, else the
// body text (or the status text) with a code from the HTTP status.
Error ErrorFromHttpStatus(int status, std::string_view body);

// What Connect throws for a non-101 answer: the server's own error (so a CLI
// can print it as kubectl does: "Error from server (Reason): message").
class HttpStatusError : public Error {
 public:
  HttpStatusError(int http_status, Error e) : Error(std::move(e)), http_status_(http_status) {}
  int http_status() const { return http_status_; }

 private:
  int http_status_;
};

class WebSocketClient {
 public:
  static std::unique_ptr<WebSocketClient> Connect(const WebSocketClientOptions& options);
  ~WebSocketClient();
  WebSocketClient(const WebSocketClient&) = delete;
  WebSocketClient& operator=(const WebSocketClient&) = delete;

  // The subprotocol the server chose ("" if none was offered).
  const std::string& protocol() const { return protocol_; }

  // One masked, unfragmented frame. False once the connection failed or closed.
  bool Send(uint8_t opcode, std::string_view payload);
  bool SendBinary(std::string_view payload) { return Send(ws_opcode::kBinary, payload); }
  // A close frame (once; later calls return true and send nothing).
  bool SendClose(uint16_t code = ws_close::kNormal, std::string_view reason = "");

  // The next data message. Pings are answered, pongs dropped. nullopt on
  // timeout (timeout_ms < 0: wait forever) or at the end of the connection:
  // the server's close (answered), EOF, or a protocol error; closed() tells
  // these apart from a timeout.
  std::optional<WebSocketMessage> Receive(int timeout_ms);

  bool closed() const { return closed_; }
  uint16_t peer_close_code() const { return peer_close_code_; }

  // Shuts the socket down both ways: a blocked Receive returns, Send fails.
  void Shutdown();

 private:
  WebSocketClient(std::unique_ptr<http::Conn> conn, size_t max_message_bytes);
  bool WriteFrame(uint8_t opcode, std::string_view payload);

  std::unique_ptr<http::Conn> conn_;
  WebSocketDecoder decoder_;
  std::string protocol_;
  std::mutex write_mu_;
  bool close_sent_ = false;  // guarded by write_mu_
  bool write_failed_ = false;
  uint32_t mask_state_;  // guarded by write_mu_
  std::atomic<bool> closed_{false};
  std::atomic<uint16_t> peer_close_code_{0};
};

}  // namespace kin
