// A small HTTP/1.1 server: keep-alive, chunked streaming, connection upgrade.
//
// Why not cpp-httplib: Debian's 0.11 can neither hand a connection over after
// a 101 (WebSocket and SPDY for exec and port-forward) nor stream a response
// to a thread that waits on events without pinning its small thread pool.
// This server gives each connection a thread (watches are long-lived and
// blocking code stays simple), and lets a handler:
//   - answer with a body (Content-Length),
//   - stream a chunked body (Response::stream: watch, logs -f),
//   - take over the raw connection after its response headers
//     (Response::upgrade: 101 Switching Protocols).
//
// Hostile input is refused by the server itself, before any handler runs,
// the way Go's net/http (and so kube-apiserver) refuses it; each refusal
// closes the connection after its answer (a bounded lingering close, so the
// client reads the answer rather than a reset):
//   - a malformed request line or header line: 400; an unknown method: 501;
//   - a header line over max_header_line_bytes or a header block over
//     max_header_bytes: 431;
//   - Transfer-Encoding together with Content-Length, any Transfer-Encoding
//     but "chunked", a bad or conflicting Content-Length, a malformed or
//     overflowing chunk size: 400;
//   - a body over max_body_bytes: 413, answered as soon as the declared
//     length (or the chunks so far) pass the limit, without reading the rest;
//   - a connection idle between requests for idle_timeout_ms is closed; a
//     request head not complete within header_timeout_ms of its first byte,
//     or a body not complete within body_timeout_ms, gets 408 and is closed
//     (slow clients hold a thread only that long);
//     A reaper thread backs these deadlines up: a read that outlives its
//     deadline (e.g. inside a TLS record that never completes) has its
//     socket shut down;
//   - beyond max_connections open connections, a new one gets 429 with
//     Retry-After (plain HTTP; TLS ones are just closed) and is closed by the
//     accept thread, so neither threads nor memory grow without bound.
//
// TLS (ServerOptions::tls, implemented in base/tls.h): the handshake runs on
// the connection's thread, never the accept thread, so a slow or silent
// client holds up only itself; a failed handshake closes that connection
// only. The verified client certificate's CN and O values reach handlers as
// Request::client_cn and client_groups. With require_client_cert, requests
// without one are answered 401 by the server itself (except
// anonymous_paths), the way kube-apiserver treats unauthenticated requests
// when anonymous access is off.
//
// Thread-safety: Start/Stop from one thread; the handler runs concurrently on
// connection threads and must be thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/fd.h"

namespace kin::tls {
class ServerContext;
}

namespace kin::http {

// Header names compare case-insensitively.
struct CaseInsensitiveLess {
  bool operator()(const std::string& a, const std::string& b) const;
};
using Headers = std::multimap<std::string, std::string, CaseInsensitiveLess>;

std::string UrlDecode(std::string_view s, bool plus_is_space = true);
std::string UrlEncode(std::string_view s);
std::string_view StatusText(int status);

// A byte stream in both directions: the plain socket or a TLS session.
class Conn {
 public:
  virtual ~Conn() = default;
  // Returns bytes read, 0 at end of stream, -1 on error.
  virtual long Read(char* buf, size_t n) = 0;
  virtual bool WriteAll(std::string_view data) = 0;
  // Waits until readable or the timeout passes; true when data (or EOF) waits.
  virtual bool WaitReadable(int timeout_ms) = 0;
  // True once the peer has closed or reset the connection.
  virtual bool PeerClosed() = 0;
  virtual int fd() const = 0;
};

struct Request {
  std::string method;
  std::string target;  // as sent: path?query
  std::string path;    // percent-decoded
  std::string raw_query;
  std::multimap<std::string, std::string> query;  // decoded
  Headers headers;
  std::string body;
  std::string remote_addr;  // "ip:port"
  std::string client_cn;    // verified client certificate's CN (TLS), else empty
  // That certificate's O values: the user's groups, as Kubernetes maps them.
  std::vector<std::string> client_groups;

  // Last value of a query parameter, or `def`.
  std::string Query(const std::string& key, const std::string& def = "") const;
  bool HasQuery(const std::string& key) const { return query.count(key) > 0; }
  std::string Header(const std::string& name, const std::string& def = "") const;
};

// What a streaming handler writes to: each Write is sent as one chunk.
class Stream {
 public:
  explicit Stream(Conn& conn, const std::atomic<bool>& stopping)
      : conn_(conn), stopping_(stopping) {}
  // False once the peer is gone or the server stops; stop writing then.
  bool Write(std::string_view data);
  // True when the handler should finish (peer closed or server stopping).
  bool Done();
  Conn& conn() { return conn_; }

 private:
  Conn& conn_;
  const std::atomic<bool>& stopping_;
  bool failed_ = false;
};

struct Response {
  int status = 200;
  Headers headers;
  std::string body;
  // When set: headers go out with Transfer-Encoding: chunked, then this runs
  // and each Write() is a chunk; the terminating chunk follows its return.
  std::function<void(Stream&)> stream;
  // When set: after the status line and headers (e.g. 101), the handler owns
  // the connection until this returns; the connection is then closed.
  std::function<void(Conn&)> upgrade;

  void Set(int code, std::string content_type, std::string b) {
    status = code;
    headers.emplace("Content-Type", std::move(content_type));
    body = std::move(b);
  }
};

using Handler = std::function<void(Request&, Response&)>;

struct TlsServerOptions {
  std::string cert_file;       // PEM serving certificate (chain), leaf first
  std::string key_file;        // its PEM private key
  std::string client_ca_file;  // PEM CA(s) client certificates must chain to; empty: none asked
  int handshake_timeout_ms = 10000;
};

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: any free port (see Server::port())
  // Empty: listen in the caller's network namespace. Else the listening
  // socket is made inside /run/netns/<netns> (a socket stays in the
  // namespace it was made in), while connections are still served on
  // threads of the caller's namespace.
  std::string netns;
  // Limits on what a client sends (see the top of this file). Defaults as
  // kube-apiserver's: 3 MiB bodies, Go's 1 MiB header block (+4 KiB slack
  // there), 90 s idle keep-alive, 32 s to send a request head.
  size_t max_body_bytes = 3 * 1024 * 1024;
  size_t max_header_bytes = 1024 * 1024;     // the request line and all header lines
  size_t max_header_line_bytes = 64 * 1024;  // any one of them
  int idle_timeout_ms = 90000;               // keep-alive connections idle longer are closed
  int header_timeout_ms = 32000;             // from a request's first byte to its blank line
  int body_timeout_ms = 60000;               // from the end of the head to the end of the body
  // Open connections (upgraded and streaming ones included) beyond which new
  // ones are refused with 429.
  size_t max_connections = 4096;
  // Formats errors the server answers by itself (400, 401, 408, 413, 429, 431,
  // 500, 501), e.g.
  // as a Kubernetes Status; plain text when unset.
  std::function<Response(int status, const std::string& message)> error_response;
  // HTTPS when set; plain HTTP otherwise.
  std::optional<TlsServerOptions> tls;
  // Answer 401 (error_response(401, "Unauthorized"), by default the
  // Kubernetes Status) to requests that came without a verified client
  // certificate with a CN. Needs tls with a client_ca_file.
  bool require_client_cert = false;
  // Authenticates a request that came without a verified client
  // certificate by its "Authorization: Bearer <token>" header: true, with
  // the user and groups (then Request::client_cn and client_groups), when
  // the token is valid. Unset: only client certificates authenticate.
  std::function<bool(const std::string& token, std::string& user, std::vector<std::string>& groups)>
      authenticate_token;
  // Paths served without a client certificate anyway; an entry ending in
  // '*' matches every path starting with the rest (e.g. "/livez/*").
  std::vector<std::string> anonymous_paths;
};

// Reads requests off one connection as the server does: waits for the next
// one (idle_timeout_ms), reads its head and checks it, then its body by
// Content-Length or chunked, refusing what the top of this file lists with
// the status the server answers. Server uses it for every connection; the
// request fuzzer (fuzz/http_request_fuzzer.cc) and the parser's tests use it
// without a socket. Bytes past a request stay buffered for the next Next().
//
// Thread-safety: one thread per reader (as per connection).
class RequestReader {
 public:
  struct Result {
    enum Kind {
      kRequest,  // `req` holds the request, body included
      kIdle,     // no request began within idle_timeout_ms
      kClosed,   // the peer closed (or the 100 Continue could not be sent)
      kRefused,  // answer `status` with `message`, then close
    };
    Kind kind = kClosed;
    int status = 0;
    std::string message;
  };
  // `conn` and `opts` must outlive the reader.
  RequestReader(Conn& conn, const ServerOptions& opts);
  ~RequestReader();
  RequestReader(const RequestReader&) = delete;
  RequestReader& operator=(const RequestReader&) = delete;
  // `set_deadline`, when set, hears when each phase's reads must be over
  // (the server's reaper backs the reads' own timeouts up with it).
  Result Next(Request& req,
              const std::function<void(std::chrono::steady_clock::time_point)>& set_deadline = {});

 private:
  struct Impl;
  Conn& conn_;
  const ServerOptions& opts_;
  std::unique_ptr<Impl> impl_;
};

class Server {
 public:
  Server(ServerOptions opts, Handler handler);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and starts accepting on a background thread. Throws on bind errors.
  void Start();
  // Stops accepting, closes every connection, joins every thread.
  void Stop();
  int port() const { return port_; }
  size_t open_connections() const;

 private:
  struct Connection;
  void AcceptLoop();
  // Shuts down connections whose read deadline passed (Connection::deadline).
  void ReapLoop();
  void Serve(std::shared_ptr<Connection> c);
  std::string ErrorResponse(int status, const std::string& message) const;
  // Answers a refusal and drains what the client still sends for a bounded
  // time, so the answer is read rather than lost to a reset.
  void Refuse(Connection& c, Conn& conn, int status, const std::string& message) const;
  void RefuseAtAccept(int fd) const;
  Response UnauthorizedResponse() const;
  bool IsAnonymousPath(const std::string& path) const;

  ServerOptions opts_;
  Handler handler_;
  std::shared_ptr<const tls::ServerContext> tls_;
  UniqueFd listen_fd_;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread accept_thread_;
  std::thread reaper_thread_;
  mutable std::mutex mu_;
  std::map<uint64_t, std::shared_ptr<Connection>> conns_;
  std::condition_variable conns_cv_;   // signalled when a connection thread ends
  std::condition_variable reaper_cv_;  // signalled by Stop
  uint64_t next_id_ = 0;
};

}  // namespace kin::http
