#include "base/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <strings.h>
#include <cerrno>
#include <cstring>

#include "base/error.h"
#include "base/log.h"
#include "base/netns.h"
#include "base/tls.h"

namespace kin::http {

bool CaseInsensitiveLess::operator()(const std::string& a, const std::string& b) const {
  return ::strcasecmp(a.c_str(), b.c_str()) < 0;
}

std::string UrlDecode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%' && i + 2 < s.size()) {
      auto hex = [](char h) -> int {
        if (h >= '0' && h <= '9') return h - '0';
        if (h >= 'a' && h <= 'f') return h - 'a' + 10;
        if (h >= 'A' && h <= 'F') return h - 'A' + 10;
        return -1;
      };
      int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += (c == '+' && plus_is_space) ? ' ' : c;
  }
  return out;
}

std::string UrlEncode(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string_view StatusText(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 413:
      return "Request Entity Too Large";
    case 415:
      return "Unsupported Media Type";
    case 422:
      return "Unprocessable Entity";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Unknown";
  }
}

std::string Request::Query(const std::string& key, const std::string& def) const {
  auto range = query.equal_range(key);
  if (range.first == range.second) return def;
  auto last = range.second;
  --last;
  return last->second;
}

std::string Request::Header(const std::string& name, const std::string& def) const {
  auto it = headers.find(name);
  return it == headers.end() ? def : it->second;
}

namespace {

class PlainConn : public Conn {
 public:
  explicit PlainConn(int fd) : fd_(fd) {}
  long Read(char* buf, size_t n) override {
    while (true) {
      ssize_t r = ::recv(fd_, buf, n, 0);
      if (r < 0 && errno == EINTR) continue;
      return r;
    }
  }
  bool WriteAll(std::string_view data) override {
    while (!data.empty()) {
      ssize_t w = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      data.remove_prefix(w);
    }
    return true;
  }
  bool WaitReadable(int timeout_ms) override {
    pollfd p{fd_, POLLIN | POLLRDHUP, 0};
    int r;
    do {
      r = ::poll(&p, 1, timeout_ms);
    } while (r < 0 && errno == EINTR);
    return r > 0;
  }
  bool PeerClosed() override {
    pollfd p{fd_, POLLRDHUP, 0};
    if (::poll(&p, 1, 0) <= 0) return false;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
  }
  int fd() const override { return fd_; }

 private:
  int fd_;
};

// Buffered reader over a Conn, for request heads and bodies.
class Reader {
 public:
  explicit Reader(Conn& c) : c_(c) {}
  // Reads until "\r\n\r\n"; returns false on EOF/error/too large/idle timeout.
  bool ReadHead(std::string& head, size_t limit, int idle_ms, bool& too_large) {
    while (true) {
      size_t pos = buf_.find("\r\n\r\n");
      if (pos != std::string::npos) {
        head = buf_.substr(0, pos + 4);
        buf_.erase(0, pos + 4);
        return true;
      }
      if (buf_.size() > limit) {
        too_large = true;
        return false;
      }
      if (buf_.empty() && !c_.WaitReadable(idle_ms)) return false;
      if (!Fill()) return false;
    }
  }
  bool ReadExact(std::string& out, size_t n) {
    while (buf_.size() < n) {
      if (!Fill()) return false;
    }
    out.append(buf_, 0, n);
    buf_.erase(0, n);
    return true;
  }
  bool ReadLine(std::string& line) {
    while (true) {
      size_t pos = buf_.find("\r\n");
      if (pos != std::string::npos) {
        line = buf_.substr(0, pos);
        buf_.erase(0, pos + 2);
        return true;
      }
      if (buf_.size() > 65536) return false;
      if (!Fill()) return false;
    }
  }
  std::string TakeBuffered() { return std::exchange(buf_, std::string()); }

 private:
  bool Fill() {
    char tmp[16384];
    long r = c_.Read(tmp, sizeof tmp);
    if (r <= 0) return false;
    buf_.append(tmp, r);
    return true;
  }
  Conn& c_;
  std::string buf_;
};

std::string Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return "";
  size_t e = s.find_last_not_of(" \t\r");
  return std::string(s.substr(b, e - b + 1));
}

bool ParseHead(const std::string& head, Request& req) {
  size_t line_end = head.find("\r\n");
  std::string_view first(head.data(), line_end);
  size_t sp1 = first.find(' ');
  size_t sp2 = first.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1) return false;
  req.method = std::string(first.substr(0, sp1));
  req.target = std::string(first.substr(sp1 + 1, sp2 - sp1 - 1));
  if (first.substr(sp2 + 1).rfind("HTTP/1.", 0) != 0) return false;
  size_t q = req.target.find('?');
  req.path = UrlDecode(req.target.substr(0, q), false);
  if (q != std::string::npos) {
    req.raw_query = req.target.substr(q + 1);
    std::string_view rest(req.raw_query);
    while (!rest.empty()) {
      size_t amp = rest.find('&');
      std::string_view kv = rest.substr(0, amp);
      if (!kv.empty()) {
        size_t eq = kv.find('=');
        std::string k = UrlDecode(kv.substr(0, eq));
        std::string v = eq == std::string_view::npos ? "" : UrlDecode(kv.substr(eq + 1));
        req.query.emplace(std::move(k), std::move(v));
      }
      if (amp == std::string_view::npos) break;
      rest.remove_prefix(amp + 1);
    }
  }
  size_t pos = line_end + 2;
  while (pos < head.size()) {
    size_t e = head.find("\r\n", pos);
    if (e == std::string::npos || e == pos) break;
    std::string_view line(head.data() + pos, e - pos);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return false;
    req.headers.emplace(std::string(line.substr(0, colon)), Trim(line.substr(colon + 1)));
    pos = e + 2;
  }
  return true;
}

std::string StatusLine(int status) {
  return "HTTP/1.1 " + std::to_string(status) + " " + std::string(StatusText(status)) + "\r\n";
}

}  // namespace

bool Stream::Write(std::string_view data) {
  if (failed_ || stopping_) return false;
  if (data.empty()) return true;
  char size[32];
  int n = snprintf(size, sizeof size, "%zx\r\n", data.size());
  std::string chunk;
  chunk.reserve(n + data.size() + 2);
  chunk.append(size, n).append(data).append("\r\n");
  if (!conn_.WriteAll(chunk)) failed_ = true;
  return !failed_;
}

bool Stream::Done() { return failed_ || stopping_ || conn_.PeerClosed(); }

struct Server::Connection {
  UniqueFd fd;
  std::string remote;
};

Server::Server(ServerOptions opts, Handler handler)
    : opts_(std::move(opts)), handler_(std::move(handler)) {}

Server::~Server() { Stop(); }

void Server::Start() {
  if (opts_.require_client_cert && (!opts_.tls || opts_.tls->client_ca_file.empty())) {
    throw Error::BadRequest("require_client_cert needs TLS with a client CA file");
  }
  if (opts_.tls) tls_ = std::make_shared<const tls::ServerContext>(*opts_.tls);
  int fd = -1;
  if (opts_.netns.empty()) {
    fd = static_cast<int>(CheckSys(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket"));
  } else {
    RunInNetns(Netns::Open(opts_.netns), [&] {
      fd = static_cast<int>(CheckSys(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0),
                                     "socket in netns `" + opts_.netns + "`"));
    });
  }
  listen_fd_.reset(fd);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(opts_.port));
  if (::inet_pton(AF_INET, opts_.host.c_str(), &addr.sin_addr) != 1) {
    throw Error::BadRequest("listen address \"" + opts_.host + "\" is not an IPv4 address");
  }
  std::string where = opts_.host + ":" + std::to_string(opts_.port) +
                      (opts_.netns.empty() ? "" : " in netns `" + opts_.netns + "`");
  CheckSys(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), "listen on " + where);
  CheckSys(::listen(fd, 1024), "listen on " + where);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  stopping_ = false;
  accept_thread_ = std::thread([this] { AcceptLoop(); });
}

void Server::Stop() {
  if (!accept_thread_.joinable()) return;
  stopping_ = true;
  ::shutdown(listen_fd_.get(), SHUT_RDWR);
  accept_thread_.join();
  listen_fd_.reset();
  std::unique_lock lock(mu_);
  for (auto& [id, c] : conns_) ::shutdown(c->fd.get(), SHUT_RDWR);
  conns_cv_.wait(lock, [this] { return conns_.empty(); });
}

size_t Server::open_connections() const {
  std::lock_guard lock(mu_);
  return conns_.size();
}

void Server::AcceptLoop() {
  while (!stopping_) {
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    int fd = ::accept4(listen_fd_.get(), reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
    if (fd < 0) {
      if (stopping_) break;
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) {
        log::Warn("http: accept: {}", std::strerror(errno));
        ::usleep(10000);  // back off until descriptors free up
        continue;
      }
      if (errno == EINVAL) break;  // listen socket shut down
      log::Warn("http: accept: {}", std::strerror(errno));
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto c = std::make_shared<Connection>();
    c->fd.reset(fd);
    char ip[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof ip);
    c->remote = std::string(ip) + ":" + std::to_string(ntohs(peer.sin_port));
    uint64_t id;
    {
      std::lock_guard lock(mu_);
      if (stopping_) break;
      id = next_id_++;
      conns_[id] = c;
    }
    std::thread([this, c, id] {
      Serve(c);
      std::lock_guard lock(mu_);
      conns_.erase(id);
      conns_cv_.notify_all();
    }).detach();
  }
}

std::string Server::ErrorResponse(int status, const std::string& message) const {
  Response r;
  if (opts_.error_response) {
    r = opts_.error_response(status, message);
  } else {
    r.Set(status, "text/plain; charset=utf-8", message + "\n");
  }
  std::string out = StatusLine(r.status);
  for (auto& [k, v] : r.headers) out += k + ": " + v + "\r\n";
  out += "Content-Length: " + std::to_string(r.body.size()) + "\r\nConnection: close\r\n\r\n";
  return out + r.body;
}

Response Server::UnauthorizedResponse() const {
  if (opts_.error_response) return opts_.error_response(401, "Unauthorized");
  Response r;
  r.Set(401, "application/json",
        R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",)"
        R"("message":"Unauthorized","reason":"Unauthorized","code":401})");
  return r;
}

bool Server::IsAnonymousPath(const std::string& path) const {
  for (const std::string& p : opts_.anonymous_paths) {
    if (!p.empty() && p.back() == '*') {
      if (path.compare(0, p.size() - 1, p, 0, p.size() - 1) == 0) return true;
    } else if (path == p) {
      return true;
    }
  }
  return false;
}

void Server::Serve(std::shared_ptr<Connection> c) {
  std::unique_ptr<Conn> owned;
  tls::PeerIdentity peer;
  if (tls_) {
    std::string error;
    owned = tls_->Accept(c->fd.get(), opts_.tls->handshake_timeout_ms, stopping_, peer, error);
    if (!owned) {
      log::Debug("http: TLS handshake with {} failed: {}", c->remote, error);
      return;
    }
    if (!peer.rejected_reason.empty()) {
      log::Debug("http: client certificate from {} not accepted: {}", c->remote,
                 peer.rejected_reason);
    }
  } else {
    owned = std::make_unique<PlainConn>(c->fd.get());
  }
  const bool authenticated = peer.verified && !peer.common_name.empty();
  Conn& conn = *owned;
  Reader reader(conn);
  while (!stopping_) {
    std::string head;
    bool too_large = false;
    if (!reader.ReadHead(head, opts_.max_header_bytes, opts_.idle_timeout_ms, too_large)) {
      if (too_large) conn.WriteAll(ErrorResponse(431, "request header too large"));
      return;
    }
    Request req;
    req.remote_addr = c->remote;
    if (authenticated) {
      req.client_cn = peer.common_name;
      req.client_groups = peer.groups;
    }
    if (!ParseHead(head, req)) {
      conn.WriteAll(ErrorResponse(400, "malformed HTTP request"));
      return;
    }
    // Body: Content-Length or chunked.
    std::string te = req.Header("Transfer-Encoding");
    std::string cl = req.Header("Content-Length");
    bool chunked = ::strcasestr(te.c_str(), "chunked") != nullptr;
    size_t length = 0;
    if (!cl.empty()) {
      char* end = nullptr;
      unsigned long long v = std::strtoull(cl.c_str(), &end, 10);
      if (end == cl.c_str() || *end != '\0') {
        conn.WriteAll(ErrorResponse(400, "invalid Content-Length \"" + cl + "\""));
        return;
      }
      length = v;
    }
    if (length > opts_.max_body_bytes) {
      conn.WriteAll(ErrorResponse(413, "request body of " + std::to_string(length) +
                                           " bytes is larger than the limit of " +
                                           std::to_string(opts_.max_body_bytes) + " bytes"));
      return;
    }
    if (::strcasecmp(req.Header("Expect").c_str(), "100-continue") == 0) {
      if (!conn.WriteAll("HTTP/1.1 100 Continue\r\n\r\n")) return;
    }
    if (chunked) {
      while (true) {
        std::string line;
        if (!reader.ReadLine(line)) return;
        size_t n = std::strtoul(line.c_str(), nullptr, 16);
        if (n == 0) {
          std::string trailer;
          do {
            if (!reader.ReadLine(trailer)) return;
          } while (!trailer.empty());
          break;
        }
        if (req.body.size() + n > opts_.max_body_bytes) {
          conn.WriteAll(ErrorResponse(413, "request body is larger than the limit of " +
                                               std::to_string(opts_.max_body_bytes) + " bytes"));
          return;
        }
        if (!reader.ReadExact(req.body, n)) return;
        std::string crlf;
        if (!reader.ReadLine(crlf)) return;
      }
    } else if (length > 0) {
      if (!reader.ReadExact(req.body, length)) return;
    }

    bool close = ::strcasecmp(req.Header("Connection").c_str(), "close") == 0;
    bool req_authenticated = authenticated;
    if (!authenticated && opts_.authenticate_token) {
      std::string auth = req.Header("Authorization");
      if (auth.size() > 7 && ::strncasecmp(auth.c_str(), "Bearer ", 7) == 0) {
        std::string user;
        std::vector<std::string> groups;
        if (opts_.authenticate_token(auth.substr(7), user, groups) && !user.empty()) {
          req.client_cn = std::move(user);
          req.client_groups = std::move(groups);
          req_authenticated = true;
        }
      }
    }
    Response resp;
    try {
      if (opts_.require_client_cert && !req_authenticated && !IsAnonymousPath(req.path)) {
        resp = UnauthorizedResponse();
      } else {
        handler_(req, resp);
      }
    } catch (const std::exception& e) {
      log::Error("http: handler for {} {} failed: {}", req.method, req.path, e.what());
      resp = opts_.error_response
                 ? opts_.error_response(500, std::string("internal error: ") + e.what())
                 : Response();
      if (!opts_.error_response) {
        resp.Set(500, "text/plain; charset=utf-8",
                 std::string("internal error: ") + e.what() + "\n");
      }
    }

    std::string out = StatusLine(resp.status);
    for (auto& [k, v] : resp.headers) out += k + ": " + v + "\r\n";
    if (resp.upgrade) {
      out += "\r\n";
      if (!conn.WriteAll(out)) return;
      resp.upgrade(conn);
      return;
    }
    if (resp.stream) {
      out += "Transfer-Encoding: chunked\r\n\r\n";
      if (!conn.WriteAll(out)) return;
      Stream stream(conn, stopping_);
      try {
        resp.stream(stream);
      } catch (const std::exception& e) {
        log::Error("http: stream for {} {} failed: {}", req.method, req.path, e.what());
        return;
      }
      if (!conn.WriteAll("0\r\n\r\n")) return;
    } else {
      out += "Content-Length: " + std::to_string(resp.body.size()) + "\r\n";
      if (close) out += "Connection: close\r\n";
      out += "\r\n";
      bool with_body = req.method != "HEAD";
      // Large bodies (lists) go out without being copied behind the headers.
      if (with_body && resp.body.size() > 65536) {
        if (!conn.WriteAll(out) || !conn.WriteAll(resp.body)) return;
      } else {
        if (with_body) out += resp.body;
        if (!conn.WriteAll(out)) return;
      }
    }
    if (close) return;
  }
}

}  // namespace kin::http
