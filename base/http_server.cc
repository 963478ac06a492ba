#include "base/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <strings.h>
#include <cctype>
#include <cerrno>
#include <chrono>
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
    case 408:
      return "Request Timeout";
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

using Clock = std::chrono::steady_clock;

// What a read of the request came to.
enum class ReadResult { kOk, kClosed, kTimeout, kTooLarge, kLineTooLong };

// Buffered reader over a Conn, for request heads and bodies. Every read but
// the wait for a request's first byte has a deadline.
class Reader {
 public:
  explicit Reader(Conn& c) : c_(c) {}
  // Waits up to idle_ms for the first byte of the next request; false when
  // the connection stayed idle that long or was closed.
  bool WaitForRequest(int idle_ms) {
    if (!buf_.empty()) return true;
    if (!c_.WaitReadable(idle_ms)) return false;
    return Fill(std::nullopt) == ReadResult::kOk;
  }
  // Reads until "\r\n\r\n": kTooLarge past block_limit bytes, kLineTooLong
  // when a line passes line_limit.
  ReadResult ReadHead(std::string& head, size_t block_limit, size_t line_limit,
                      Clock::time_point deadline) {
    size_t line_start = 0, scanned = 0;
    while (true) {
      // Check the lines seen so far (each byte once) against the line limit.
      for (; scanned < buf_.size(); ++scanned) {
        if (buf_[scanned] == '\n') {
          if (scanned + 1 - line_start > line_limit + 2) return ReadResult::kLineTooLong;
          if (scanned >= 3 && buf_.compare(scanned - 3, 4, "\r\n\r\n") == 0) {
            if (scanned + 1 > block_limit) return ReadResult::kTooLarge;
            head = buf_.substr(0, scanned + 1);
            buf_.erase(0, scanned + 1);
            return ReadResult::kOk;
          }
          line_start = scanned + 1;
        }
      }
      if (buf_.size() - line_start > line_limit + 2) return ReadResult::kLineTooLong;
      if (buf_.size() > block_limit) return ReadResult::kTooLarge;
      if (ReadResult r = Fill(deadline); r != ReadResult::kOk) return r;
    }
  }
  ReadResult ReadExact(std::string& out, size_t n, Clock::time_point deadline) {
    while (buf_.size() < n) {
      if (ReadResult r = Fill(deadline); r != ReadResult::kOk) return r;
    }
    out.append(buf_, 0, n);
    buf_.erase(0, n);
    return ReadResult::kOk;
  }
  // One line without its "\r\n"; kLineTooLong past `limit` bytes.
  ReadResult ReadLine(std::string& line, size_t limit, Clock::time_point deadline) {
    size_t scanned = 0;
    while (true) {
      size_t pos = buf_.find("\r\n", scanned);
      if (pos != std::string::npos) {
        if (pos > limit) return ReadResult::kLineTooLong;
        line = buf_.substr(0, pos);
        buf_.erase(0, pos + 2);
        return ReadResult::kOk;
      }
      if (buf_.size() > limit + 1) return ReadResult::kLineTooLong;
      scanned = buf_.empty() ? 0 : buf_.size() - 1;
      if (ReadResult r = Fill(deadline); r != ReadResult::kOk) return r;
    }
  }
  std::string TakeBuffered() { return std::exchange(buf_, std::string()); }

 private:
  ReadResult Fill(std::optional<Clock::time_point> deadline) {
    if (deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now());
      if (left.count() <= 0 || !c_.WaitReadable(static_cast<int>(left.count()) + 1)) {
        return ReadResult::kTimeout;
      }
    }
    char tmp[16384];
    long r = c_.Read(tmp, sizeof tmp);
    if (r <= 0) return ReadResult::kClosed;
    buf_.append(tmp, r);
    return ReadResult::kOk;
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

// RFC 9110 token characters (methods, header names).
bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (std::isalnum(c)) continue;
    if (std::strchr("!#$%&'*+-.^_`|~", c) == nullptr || c == 0) return false;
  }
  return true;
}

bool IsKnownMethod(std::string_view m) {
  for (std::string_view k :
       {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}) {
    if (m == k) return true;
  }
  return false;
}

// Why a request head was refused: the status and a message naming the fault.
struct HeadError {
  int status = 0;
  std::string message;
};

std::string Quoted(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s.substr(0, 64)) {
    if (c < 0x20 || c >= 0x7f) {
      char hex[8];
      snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + (s.size() > 64 ? "...\"" : "\"");
}

std::optional<HeadError> ParseHead(const std::string& head, Request& req) {
  size_t line_end = head.find("\r\n");
  std::string_view first(head.data(), line_end);
  // METHOD SP request-target SP HTTP-version, nothing else.
  size_t sp1 = first.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : first.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || first.find(' ', sp2 + 1) != std::string_view::npos) {
    return HeadError{400, "malformed HTTP request line " + Quoted(first)};
  }
  std::string_view method = first.substr(0, sp1);
  std::string_view target = first.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = first.substr(sp2 + 1);
  if (version != "HTTP/1.1" && version != "HTTP/1.0") {
    return HeadError{400, "malformed HTTP version " + Quoted(version)};
  }
  if (!IsToken(method)) return HeadError{400, "malformed HTTP method " + Quoted(method)};
  if (!IsKnownMethod(method)) return HeadError{501, "unsupported method " + Quoted(method)};
  bool target_ok = !target.empty() && (target[0] == '/' || target == "*");
  for (unsigned char c : target) target_ok = target_ok && c > 0x20 && c != 0x7f;
  if (!target_ok) return HeadError{400, "malformed request target " + Quoted(target)};
  req.method = std::string(method);
  req.target = std::string(target);
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
    // A name that is a token right before the colon: no folded lines, no
    // space before the colon (RFC 9112 5.1: those must be refused).
    if (colon == std::string_view::npos || !IsToken(line.substr(0, colon))) {
      return HeadError{400, "malformed HTTP header line " + Quoted(line)};
    }
    std::string_view value = line.substr(colon + 1);
    if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos) {
      return HeadError{400, "malformed value of HTTP header " + Quoted(line.substr(0, colon))};
    }
    req.headers.emplace(std::string(line.substr(0, colon)), Trim(value));
    pos = e + 2;
  }
  return std::nullopt;
}

// A chunk-size line (RFC 9112 7.1): hex digits, optionally ";extensions".
// nullopt when malformed or over 2^63.
std::optional<uint64_t> ParseChunkSize(std::string_view line) {
  std::string_view digits = line.substr(0, line.find(';'));
  while (!digits.empty() && (digits.back() == ' ' || digits.back() == '\t')) {
    digits.remove_suffix(1);
  }
  if (digits.empty() || digits.size() > 15) return std::nullopt;  // 15 hex digits: < 2^60
  uint64_t n = 0;
  for (char c : digits) {
    int v = (c >= '0' && c <= '9')   ? c - '0'
            : (c >= 'a' && c <= 'f') ? c - 'a' + 10
            : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                     : -1;
    if (v < 0) return std::nullopt;
    n = n * 16 + static_cast<uint64_t>(v);
  }
  return n;
}

std::string StatusLine(int status) {
  return "HTTP/1.1 " + std::to_string(status) + " " + std::string(StatusText(status)) + "\r\n";
}

}  // namespace

// --- RequestReader ------------------------------------------------------------

struct RequestReader::Impl {
  explicit Impl(Conn& c) : reader(c) {}
  Reader reader;
};

RequestReader::RequestReader(Conn& conn, const ServerOptions& opts)
    : conn_(conn), opts_(opts), impl_(std::make_unique<Impl>(conn)) {}

RequestReader::~RequestReader() = default;

RequestReader::Result RequestReader::Next(
    Request& req, const std::function<void(std::chrono::steady_clock::time_point)>& set_deadline) {
  auto deadline = [&](Clock::time_point d) {
    if (set_deadline) set_deadline(d);
  };
  auto refused = [](int status, std::string message) {
    return Result{Result::kRefused, status, std::move(message)};
  };
  auto seconds = [](int ms) { return std::to_string(ms) + " ms"; };
  const auto header_timeout = std::chrono::milliseconds(opts_.header_timeout_ms);
  // The idle wait bounds itself; the backstop covers a first read that
  // blocks after it (a TLS record that never completes).
  deadline(Clock::now() + std::chrono::milliseconds(opts_.idle_timeout_ms) + header_timeout);
  if (!impl_->reader.WaitForRequest(opts_.idle_timeout_ms)) return {Result::kIdle};
  std::string head;
  const auto header_deadline = Clock::now() + header_timeout;
  deadline(header_deadline);
  switch (impl_->reader.ReadHead(head, opts_.max_header_bytes, opts_.max_header_line_bytes,
                                 header_deadline)) {
    case ReadResult::kOk:
      break;
    case ReadResult::kClosed:
      return {Result::kClosed};
    case ReadResult::kTimeout:
      return refused(408, "request header not received within " + seconds(opts_.header_timeout_ms));
    case ReadResult::kTooLarge:
      return refused(431, "request header block is larger than the limit of " +
                              std::to_string(opts_.max_header_bytes) + " bytes");
    case ReadResult::kLineTooLong:
      return refused(431, "a request header line is longer than the limit of " +
                              std::to_string(opts_.max_header_line_bytes) + " bytes");
  }
  if (std::optional<HeadError> bad = ParseHead(head, req)) {
    return refused(bad->status, bad->message);
  }
  // Body: Content-Length or chunked, never both (request smuggling).
  auto te_range = req.headers.equal_range("Transfer-Encoding");
  auto cl_range = req.headers.equal_range("Content-Length");
  const bool chunked = te_range.first != te_range.second;
  if (chunked) {
    if (cl_range.first != cl_range.second) {
      return refused(400, "a request must not have both Transfer-Encoding and Content-Length");
    }
    const std::string& te = te_range.first->second;
    if (std::next(te_range.first) != te_range.second || ::strcasecmp(te.c_str(), "chunked") != 0) {
      return refused(400, "unsupported Transfer-Encoding " + Quoted(te) + " (only \"chunked\")");
    }
  }
  size_t length = 0;
  for (auto it = cl_range.first; it != cl_range.second; ++it) {
    const std::string& cl = it->second;
    bool digits =
        !cl.empty() && cl.size() <= 18 && cl.find_first_not_of("0123456789") == std::string::npos;
    size_t v = digits ? std::stoull(cl) : 0;
    if (!digits || (it != cl_range.first && v != length)) {
      return refused(400, "invalid Content-Length " + Quoted(cl));
    }
    length = v;
  }
  if (length > opts_.max_body_bytes) {
    return refused(413, "request body of " + std::to_string(length) +
                            " bytes is larger than the limit of " +
                            std::to_string(opts_.max_body_bytes) + " bytes");
  }
  if ((chunked || length > 0) && ::strcasecmp(req.Header("Expect").c_str(), "100-continue") == 0) {
    if (!conn_.WriteAll("HTTP/1.1 100 Continue\r\n\r\n")) return {Result::kClosed};
  }
  const auto body_deadline = Clock::now() + std::chrono::milliseconds(opts_.body_timeout_ms);
  deadline(body_deadline);
  const std::string body_timeout =
      "request body not received within " + seconds(opts_.body_timeout_ms);
  if (chunked) {
    while (true) {
      std::string line;
      ReadResult r = impl_->reader.ReadLine(line, 4096, body_deadline);
      if (r == ReadResult::kClosed) return {Result::kClosed};
      if (r == ReadResult::kTimeout) return refused(408, body_timeout);
      std::optional<uint64_t> n;
      if (r == ReadResult::kOk) n = ParseChunkSize(line);
      if (!n) return refused(400, "malformed chunk size " + Quoted(line));
      if (*n == 0) {
        // Trailers (dropped), bounded like the header block.
        size_t trailer_bytes = 0;
        std::string trailer;
        do {
          r = impl_->reader.ReadLine(trailer, opts_.max_header_line_bytes, body_deadline);
          if (r == ReadResult::kClosed) return {Result::kClosed};
          if (r == ReadResult::kTimeout) return refused(408, body_timeout);
          trailer_bytes += trailer.size() + 2;
          if (r != ReadResult::kOk || trailer_bytes > opts_.max_header_bytes) {
            return refused(431, "request trailers are too large");
          }
        } while (!trailer.empty());
        break;
      }
      if (*n > opts_.max_body_bytes - req.body.size()) {
        return refused(413, "request body is larger than the limit of " +
                                std::to_string(opts_.max_body_bytes) + " bytes");
      }
      r = impl_->reader.ReadExact(req.body, *n, body_deadline);
      if (r == ReadResult::kOk) r = impl_->reader.ReadLine(line, 0, body_deadline);
      if (r == ReadResult::kClosed) return {Result::kClosed};
      if (r == ReadResult::kTimeout) return refused(408, body_timeout);
      if (r != ReadResult::kOk || !line.empty()) {
        return refused(400, "malformed chunked body: a chunk does not end with CRLF");
      }
    }
  } else if (length > 0) {
    ReadResult r = impl_->reader.ReadExact(req.body, length, body_deadline);
    if (r == ReadResult::kClosed) return {Result::kClosed};
    if (r == ReadResult::kTimeout) return refused(408, body_timeout);
  }
  return {Result::kRequest};
}

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
  // While the connection reads a request (or drains after a refusal): when
  // the read must be over, in steady_clock nanoseconds; 0 when not reading
  // (idle waits bound themselves; handlers, streams and upgrades are
  // unbounded).
  std::atomic<int64_t> deadline{0};
  void SetDeadline(Clock::time_point t) { deadline = t.time_since_epoch().count(); }
  void ClearDeadline() { deadline = 0; }
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
  reaper_thread_ = std::thread([this] { ReapLoop(); });
}

void Server::Stop() {
  if (!accept_thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  reaper_cv_.notify_all();
  reaper_thread_.join();
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
      if (conns_.size() >= opts_.max_connections) {
        RefuseAtAccept(fd);
        continue;  // c's destructor closes fd
      }
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

void Server::ReapLoop() {
  // The connection threads' own deadlines answer first (408); this backstop
  // fires a little later, for reads those cannot interrupt.
  constexpr auto kGrace = std::chrono::milliseconds(500);
  std::unique_lock lock(mu_);
  while (!stopping_) {
    int64_t now = (Clock::now() - kGrace).time_since_epoch().count();
    for (auto& [id, c] : conns_) {
      int64_t d = c->deadline;
      if (d != 0 && d < now && c->deadline.compare_exchange_strong(d, 0)) {
        log::Debug("http: {} did not finish a read within its deadline: closing", c->remote);
        ::shutdown(c->fd.get(), SHUT_RDWR);
      }
    }
    reaper_cv_.wait_for(lock, std::chrono::milliseconds(250), [this] { return stopping_.load(); });
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
  if (r.status == 429 && r.headers.count("Retry-After") == 0) out += "Retry-After: 1\r\n";
  out += "Content-Length: " + std::to_string(r.body.size()) + "\r\nConnection: close\r\n\r\n";
  return out + r.body;
}

void Server::Refuse(Connection& c, Conn& conn, int status, const std::string& message) const {
  log::Debug("http: refused a request from {} ({}): {}", c.remote, status, message);
  auto deadline = Clock::now() + std::chrono::seconds(1);
  c.SetDeadline(deadline);
  if (!conn.WriteAll(ErrorResponse(status, message))) return;
  // Closing with unread bytes would reset the connection, and the client
  // would lose the answer: say we are done writing, then read and drop what
  // still comes for a while (Go's net/http waits likewise). Nothing is kept.
  if (!tls_) ::shutdown(c.fd.get(), SHUT_WR);
  char scratch[16384];
  while (!stopping_) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0 || !conn.WaitReadable(static_cast<int>(left.count()))) break;
    if (conn.Read(scratch, sizeof scratch) <= 0) break;
  }
}

void Server::RefuseAtAccept(int fd) const {
  log::Warn("http: {} connections open, the limit: refusing a new one", opts_.max_connections);
  if (tls_) return;  // a plain-text answer would mean nothing to a TLS client
  // Non-blocking, on the accept thread: a small answer into an empty socket
  // buffer, what the client already sent dropped so the close does not reset.
  char scratch[4096];
  while (::recv(fd, scratch, sizeof scratch, MSG_DONTWAIT) > 0) {
  }
  std::string answer =
      ErrorResponse(429, "too many open connections (the limit is " +
                             std::to_string(opts_.max_connections) + "); try again later");
  (void)::send(fd, answer.data(), answer.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  ::shutdown(fd, SHUT_WR);
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
  RequestReader requests(conn, opts_);
  auto set_deadline = [&](Clock::time_point d) { c->SetDeadline(d); };
  while (!stopping_) {
    Request req;
    req.remote_addr = c->remote;
    if (authenticated) {
      req.client_cn = peer.common_name;
      req.client_groups = peer.groups;
    }
    RequestReader::Result read = requests.Next(req, set_deadline);
    if (read.kind == RequestReader::Result::kRefused) {
      return Refuse(*c, conn, read.status, read.message);
    }
    if (read.kind != RequestReader::Result::kRequest) return;  // idle or closed

    c->ClearDeadline();  // handlers, their responses, streams and upgrades take their time
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
