#include "base/websocket_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstring>

#include "base/fd.h"
#include "base/strings.h"
#include "base/tls.h"
#include "base/yaml.h"

namespace kin {
namespace {

using Clock = std::chrono::steady_clock;

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

int RemainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

using tls::PollFd;

std::string OpenSslReason() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown TLS error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

// The socket, owned; blocking I/O for the callers over a non-blocking fd so
// that a reader waiting in poll() never holds up a writer.
class PlainClientConn : public http::Conn {
 public:
  explicit PlainClientConn(UniqueFd fd) : fd_(std::move(fd)) {}
  long Read(char* buf, size_t n) override {
    while (true) {
      ssize_t r = ::recv(fd_.get(), buf, n, 0);
      if (r >= 0) return r;
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
      if (!PollFd(fd_.get(), POLLIN, -1)) return -1;
    }
  }
  bool WriteAll(std::string_view data) override {
    while (!data.empty()) {
      ssize_t w = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
        if (!PollFd(fd_.get(), POLLOUT, -1)) return false;
        continue;
      }
      data.remove_prefix(w);
    }
    return true;
  }
  bool WaitReadable(int timeout_ms) override {
    return PollFd(fd_.get(), POLLIN | POLLRDHUP, timeout_ms);
  }
  bool PeerClosed() override {
    pollfd p{fd_.get(), POLLRDHUP, 0};
    if (::poll(&p, 1, 0) <= 0) return false;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
  }
  int fd() const override { return fd_.get(); }

 private:
  UniqueFd fd_;
};

struct ParsedUrl {
  bool tls = false;
  std::string host;  // without brackets
  int port = 0;
  std::string target;  // path?query
  std::string host_header;
};

ParsedUrl ParseUrl(const std::string& url) {
  ParsedUrl u;
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) throw Error::BadRequest("URL \"" + url + "\" has no scheme");
  std::string scheme = url.substr(0, scheme_end);
  if (scheme == "https" || scheme == "wss") {
    u.tls = true;
  } else if (scheme != "http" && scheme != "ws") {
    throw Error::BadRequest("URL \"" + url + "\": unsupported scheme \"" + scheme + "\"");
  }
  std::string rest = url.substr(scheme_end + 3);
  size_t slash = rest.find_first_of("/?");
  std::string authority = rest.substr(0, slash);
  u.target = slash == std::string::npos ? "/" : rest.substr(slash);
  if (!u.target.empty() && u.target[0] == '?') u.target = "/" + u.target;
  u.host_header = authority;
  std::string port;
  if (!authority.empty() && authority[0] == '[') {
    size_t close = authority.find(']');
    if (close == std::string::npos) throw Error::BadRequest("URL \"" + url + "\": bad IPv6 host");
    u.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size() && authority[close + 1] == ':')
      port = authority.substr(close + 2);
  } else {
    size_t colon = authority.rfind(':');
    u.host = authority.substr(0, colon);
    if (colon != std::string::npos) port = authority.substr(colon + 1);
  }
  if (u.host.empty()) throw Error::BadRequest("URL \"" + url + "\" has no host");
  if (port.empty()) {
    u.port = u.tls ? 443 : 80;
  } else {
    char* end = nullptr;
    long p = std::strtol(port.c_str(), &end, 10);
    if (*end != '\0' || p <= 0 || p > 65535) {
      throw Error::BadRequest("URL \"" + url + "\": bad port \"" + port + "\"");
    }
    u.port = static_cast<int>(p);
  }
  return u;
}

UniqueFd ConnectTcp(const ParsedUrl& u, Clock::time_point deadline) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string port = std::to_string(u.port);
  int rc = ::getaddrinfo(u.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    throw Error::Unavailable("dial tcp " + u.host_header + ": lookup " + u.host + ": " +
                             ::gai_strerror(rc));
  }
  std::string last_error = "no address";
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    UniqueFd fd(
        ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol));
    if (!fd) {
      last_error = std::strerror(errno);
      continue;
    }
    int r = ::connect(fd.get(), a->ai_addr, a->ai_addrlen);
    if (r < 0 && errno == EINPROGRESS) {
      if (!PollFd(fd.get(), POLLOUT, RemainingMs(deadline))) {
        last_error = "i/o timeout";
        continue;
      }
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      r = err == 0 ? 0 : -1;
      errno = err;
    }
    if (r < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::freeaddrinfo(res);
    return fd;
  }
  ::freeaddrinfo(res);
  throw Error::Unavailable("dial tcp " + u.host_header + ": connect: " + last_error);
}

struct CtxDeleter {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};

void LoadTlsMaterial(SSL_CTX* ctx, const WebSocketClientOptions& o) {
  auto fail = [](const std::string& what) {
    return Error::Unavailable("TLS " + what + ": " + OpenSslReason());
  };
  if (!o.ca_pem.empty()) {
    std::unique_ptr<BIO, BioDeleter> bio(BIO_new_mem_buf(o.ca_pem.data(), int(o.ca_pem.size())));
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    int n = 0;
    while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
      X509_STORE_add_cert(store, x);
      X509_free(x);
      ++n;
    }
    ERR_clear_error();
    if (n == 0) throw Error::BadRequest("TLS CA data holds no PEM certificate");
  } else if (!o.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, o.ca_file.c_str(), nullptr) != 1) {
      throw fail("CA file " + o.ca_file);
    }
  } else {
    SSL_CTX_set_default_verify_paths(ctx);
  }
  if (!o.cert_pem.empty()) {
    std::unique_ptr<BIO, BioDeleter> bio(
        BIO_new_mem_buf(o.cert_pem.data(), int(o.cert_pem.size())));
    X509* leaf = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
    if (leaf == nullptr) throw fail("client certificate data");
    int ok = SSL_CTX_use_certificate(ctx, leaf);
    X509_free(leaf);
    if (ok != 1) throw fail("client certificate data");
    while (X509* extra = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
      SSL_CTX_add_extra_chain_cert(ctx, extra);  // takes ownership
    }
    ERR_clear_error();
  } else if (!o.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, o.cert_file.c_str()) != 1) {
      throw fail("client certificate file " + o.cert_file);
    }
  }
  if (!o.key_pem.empty()) {
    std::unique_ptr<BIO, BioDeleter> bio(BIO_new_mem_buf(o.key_pem.data(), int(o.key_pem.size())));
    EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
    if (key == nullptr) throw fail("client key data");
    int ok = SSL_CTX_use_PrivateKey(ctx, key);
    EVP_PKEY_free(key);
    if (ok != 1) throw fail("client key data");
  } else if (!o.key_file.empty()) {
    if (SSL_CTX_use_PrivateKey_file(ctx, o.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      throw fail("client key file " + o.key_file);
    }
  }
}

std::unique_ptr<http::Conn> StartTls(UniqueFd fd, const ParsedUrl& u,
                                     const WebSocketClientOptions& o, Clock::time_point deadline) {
  std::unique_ptr<SSL_CTX, CtxDeleter> ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) throw Error::Internal("SSL_CTX_new: " + OpenSslReason());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  LoadTlsMaterial(ctx.get(), o);
  static const unsigned char kAlpn[] = "\x08http/1.1";
  SSL_CTX_set_alpn_protos(ctx.get(), kAlpn, sizeof kAlpn - 1);

  SSL* ssl = SSL_new(ctx.get());
  if (ssl == nullptr) throw Error::Internal("SSL_new: " + OpenSslReason());
  int raw_fd = fd.get();
  auto conn = tls::WrapTlsSession(ssl, raw_fd, std::move(fd));
  int sock = conn->fd();
  SSL_set_fd(ssl, sock);
  in6_addr ip6;
  in_addr ip4;
  bool is_ip = ::inet_pton(AF_INET, u.host.c_str(), &ip4) == 1 ||
               ::inet_pton(AF_INET6, u.host.c_str(), &ip6) == 1;
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  if (is_ip) {
    X509_VERIFY_PARAM_set1_ip_asc(param, u.host.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl, u.host.c_str());
    X509_VERIFY_PARAM_set1_host(param, u.host.c_str(), 0);
  }
  while (true) {
    ERR_clear_error();
    int r = SSL_connect(ssl);
    if (r == 1) break;
    int err = SSL_get_error(ssl, r);
    short events = err == SSL_ERROR_WANT_READ ? POLLIN : err == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
    if (events == 0) {
      long verify = SSL_get_verify_result(ssl);
      std::string why = verify != X509_V_OK ? std::string("tls: failed to verify certificate: ") +
                                                  X509_verify_cert_error_string(verify)
                                            : OpenSslReason();
      throw Error::Unavailable("TLS handshake with " + u.host_header + ": " + why);
    }
    if (!PollFd(sock, events, RemainingMs(deadline))) {
      throw Error::Unavailable("TLS handshake with " + u.host_header + ": timeout");
    }
  }
  return conn;
}

// Reads an HTTP response head (up to the blank line); what follows is left
// in `rest`.
std::string ReadHead(http::Conn& conn, Clock::time_point deadline, std::string& rest) {
  std::string buf;
  char chunk[4096];
  while (true) {
    size_t end = buf.find("\r\n\r\n");
    if (end != std::string::npos) {
      rest = buf.substr(end + 4);
      return buf.substr(0, end + 2);
    }
    if (buf.size() > (1 << 20))
      throw Error::BadRequest("WebSocket handshake: response head too large");
    if (!conn.WaitReadable(RemainingMs(deadline))) {
      throw Error::Timeout("WebSocket handshake: no response from the server");
    }
    long n = conn.Read(chunk, sizeof chunk);
    if (n <= 0) throw Error::Unavailable("WebSocket handshake: connection closed by the server");
    buf.append(chunk, n);
  }
}

// The body after a non-101 head: Content-Length, chunked, or up to EOF
// (bounded, best effort: only for the error message).
std::string ReadBody(http::Conn& conn, const http::Headers& headers, std::string have,
                     Clock::time_point deadline) {
  constexpr size_t kMax = 1 << 20;
  auto it = headers.find("content-length");
  size_t want = it != headers.end() ? std::strtoul(it->second.c_str(), nullptr, 10) : kMax;
  bool chunked = false;
  if (auto te = headers.find("transfer-encoding"); te != headers.end()) {
    chunked = ToLower(te->second).find("chunked") != std::string::npos;
  }
  char chunk[4096];
  auto complete = [&] {
    if (chunked) return have.find("\r\n0\r\n") != std::string::npos || have.rfind("0\r\n", 0) == 0;
    return have.size() >= want;
  };
  while (!complete() && have.size() < kMax) {
    if (!conn.WaitReadable(RemainingMs(deadline))) break;
    long n = conn.Read(chunk, sizeof chunk);
    if (n <= 0) break;
    have.append(chunk, n);
  }
  if (!chunked) return have.substr(0, std::min(want, have.size()));
  std::string body;
  size_t pos = 0;
  while (pos < have.size()) {
    size_t eol = have.find("\r\n", pos);
    if (eol == std::string::npos) break;
    size_t len = std::strtoul(have.substr(pos, eol - pos).c_str(), nullptr, 16);
    if (len == 0) break;
    body += have.substr(eol + 2, len);
    pos = eol + 2 + len + 2;
  }
  return body;
}

std::string RandomBytes(size_t n) {
  std::string s(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(s.data()), int(n)) != 1) {
    throw Error::Internal("RAND_bytes: " + OpenSslReason());
  }
  return s;
}

}  // namespace

Error ErrorFromHttpStatus(int status, std::string_view body) {
  Json j = Json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.value("kind", "") == "Status") {
    int code = j.contains("code") && j["code"].is_number_integer() ? j["code"].get<int>() : status;
    std::string reason =
        j.contains("reason") && j["reason"].is_string() ? j["reason"].get<std::string>() : "";
    std::string message =
        j.contains("message") && j["message"].is_string() ? j["message"].get<std::string>() : "";
    if (message.empty()) message = reason.empty() ? std::string(http::StatusText(code)) : reason;
    Error e(CodeFromReason(reason).value_or(CodeFromHttpStatus(code)), message);
    if (auto d = j.find("details"); d != j.end() && d->is_object()) {
      e.WithDetails(d->value("kind", ""), d->value("name", ""), d->value("group", ""));
      if (auto causes = d->find("causes"); causes != d->end() && causes->is_array()) {
        for (const auto& c : *causes) {
          if (!c.is_object()) continue;
          e.WithCause({c.value("reason", ""), c.value("message", ""), c.value("field", "")});
        }
      }
    }
    return e;
  }
  std::string text(Trim(body));
  if (text.size() > 1024) text = text.substr(0, 1024) + "...";
  std::string message = text.empty() ? "the server responded with HTTP " + std::to_string(status) +
                                           " " + std::string(http::StatusText(status))
                                     : text;
  return Error(CodeFromHttpStatus(status), message);
}

WebSocketClient::WebSocketClient(std::unique_ptr<http::Conn> conn, size_t max_message_bytes)
    : conn_(std::move(conn)), decoder_(max_message_bytes, /*require_mask=*/false) {
  std::string seed = RandomBytes(4);
  std::memcpy(&mask_state_, seed.data(), 4);
}

WebSocketClient::~WebSocketClient() = default;

std::unique_ptr<WebSocketClient> WebSocketClient::Connect(const WebSocketClientOptions& o) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(o.connect_timeout_ms);
  ParsedUrl u = ParseUrl(o.url);
  UniqueFd fd = ConnectTcp(u, deadline);
  std::unique_ptr<http::Conn> conn;
  if (u.tls) {
    conn = StartTls(std::move(fd), u, o, deadline);
  } else {
    conn = std::make_unique<PlainClientConn>(std::move(fd));
  }

  const std::string key = Base64Encode(RandomBytes(16));
  std::string req = "GET " + u.target + " HTTP/1.1\r\nHost: " + u.host_header +
                    "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: " +
                    key + "\r\nSec-WebSocket-Version: 13\r\n";
  if (!o.protocols.empty()) req += "Sec-WebSocket-Protocol: " + Join(o.protocols, ", ") + "\r\n";
  bool has_ua = false;
  for (const auto& [name, value] : o.headers) {
    if (ToLower(name) == "user-agent") has_ua = true;
    req += name + ": " + value + "\r\n";
  }
  if (!has_ua) req += "User-Agent: kin\r\n";
  req += "\r\n";
  if (!conn->WriteAll(req)) {
    throw Error::Unavailable("WebSocket handshake with " + u.host_header + ": write failed");
  }

  std::string rest;
  std::string head = ReadHead(*conn, deadline, rest);
  size_t eol = head.find("\r\n");
  std::string status_line = head.substr(0, eol);
  int status = 0;
  if (status_line.rfind("HTTP/1.", 0) == 0 && status_line.size() >= 12) {
    status = std::atoi(status_line.c_str() + 9);
  }
  if (status == 0)
    throw Error::BadRequest("WebSocket handshake: bad status line \"" + status_line + "\"");
  http::Headers headers;
  size_t pos = eol + 2;
  while (pos < head.size()) {
    size_t end = head.find("\r\n", pos);
    if (end == std::string::npos) end = head.size();
    std::string line = head.substr(pos, end - pos);
    pos = end + 2;
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    headers.emplace(line.substr(0, colon), std::string(Trim(line.substr(colon + 1))));
  }
  auto header = [&](const std::string& name) {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  };
  if (status != 101) {
    throw HttpStatusError(status,
                          ErrorFromHttpStatus(status, ReadBody(*conn, headers, rest, deadline)));
  }
  if (ToLower(header("Upgrade")) != "websocket") {
    throw Error::BadRequest(
        "WebSocket handshake: the server answered 101 without Upgrade: websocket");
  }
  if (header("Sec-WebSocket-Accept") != WebSocketAcceptKey(key)) {
    throw Error::BadRequest("WebSocket handshake: wrong Sec-WebSocket-Accept from the server");
  }
  std::string chosen = header("Sec-WebSocket-Protocol");
  if (!o.protocols.empty()) {
    bool offered = false;
    for (const auto& p : o.protocols) offered = offered || p == chosen;
    if (!offered) {
      throw Error::BadRequest("WebSocket handshake: the server chose subprotocol \"" + chosen +
                              "\", offered were " + Join(o.protocols, ", "));
    }
  } else if (!chosen.empty()) {
    throw Error::BadRequest("WebSocket handshake: the server chose subprotocol \"" + chosen +
                            "\" although none was offered");
  }

  std::unique_ptr<WebSocketClient> c(new WebSocketClient(std::move(conn), o.max_message_bytes));
  c->protocol_ = chosen;
  if (!rest.empty()) c->decoder_.Feed(rest);
  return c;
}

bool WebSocketClient::WriteFrame(uint8_t opcode, std::string_view payload) {
  if (write_failed_) return false;
  // xorshift32: masks need not be secret from the server, only unpredictable
  // to scripts in a browser; a seeded PRNG is what many clients use.
  mask_state_ ^= mask_state_ << 13;
  mask_state_ ^= mask_state_ >> 17;
  mask_state_ ^= mask_state_ << 5;
  if (!conn_->WriteAll(EncodeWebSocketFrame(opcode, payload, true, mask_state_))) {
    write_failed_ = true;
    return false;
  }
  return true;
}

bool WebSocketClient::Send(uint8_t opcode, std::string_view payload) {
  std::lock_guard lock(write_mu_);
  if (close_sent_) return false;
  return WriteFrame(opcode, payload);
}

bool WebSocketClient::SendClose(uint16_t code, std::string_view reason) {
  std::lock_guard lock(write_mu_);
  if (close_sent_) return true;
  close_sent_ = true;
  return WriteFrame(ws_opcode::kClose, WebSocketClosePayload(code, reason));
}

std::optional<WebSocketMessage> WebSocketClient::Receive(int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms < 0 ? 0 : timeout_ms);
  char buf[64 * 1024];
  while (!closed_) {
    std::optional<WebSocketMessage> m;
    try {
      m = decoder_.Next();
    } catch (const Error& e) {
      SendClose(e.code() == Code::kRequestEntityTooLarge ? ws_close::kTooBig
                                                         : ws_close::kProtocolError);
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
          SendClose(m->close_code == ws_close::kNoStatus ? ws_close::kNormal : m->close_code);
          closed_ = true;
          return std::nullopt;
        default:
          return m;
      }
    }
    int wait = timeout_ms < 0 ? -1 : RemainingMs(deadline);
    if (!conn_->WaitReadable(wait)) {
      if (timeout_ms >= 0 && RemainingMs(deadline) == 0) return std::nullopt;
      closed_ = true;
      return std::nullopt;
    }
    long n = conn_->Read(buf, sizeof buf);
    if (n <= 0) {
      closed_ = true;
      return std::nullopt;
    }
    decoder_.Feed(std::string_view(buf, n));
  }
  return std::nullopt;
}

void WebSocketClient::Shutdown() { ::shutdown(conn_->fd(), SHUT_RDWR); }

}  // namespace kin
