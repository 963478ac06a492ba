#include "runtime/probe.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>

#include "base/error.h"
#include "base/fd.h"
#include "base/netns.h"
#include "base/strings.h"

namespace kin {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr size_t kMaxBodyBytes = 10 * 1024;  // kubelet's maxRespBodyLength
constexpr size_t kMaxHeaderBytes = 64 * 1024;
constexpr int kMaxRedirects = 10;  // Go's http.Client default

int IntField(const Json& obj, const char* key, int def, int min, const std::string& what) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return def;
  if (!it->is_number_integer()) throw Error::Invalid(what + "." + key + ": must be an integer");
  long long v = it->get<long long>();
  if (v < min || v > 1000000000) {
    throw Error::Invalid(what + "." + key + ": Invalid value: " + std::to_string(v) +
                         ": must be greater than or equal to " + std::to_string(min));
  }
  return static_cast<int>(v);
}

std::string StringField(const Json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

// Go's errno texts are strerror's, lower-cased ("connection refused").
std::string GoErrnoText(int err) {
  std::string s = std::strerror(err);
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

// net.JoinHostPort.
std::string JoinHostPort(const std::string& host, int port) {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

// The probe's port: a number, or the name of one of the container's ports
// (a name that is not found may still be a number written as a string, as
// kubelet's ResolveContainerPort accepts).
int ResolvePort(const Json& handler, const Json& container, const std::string& what) {
  auto it = handler.find("port");
  if (it == handler.end() || it->is_null()) throw Error::Invalid(what + ".port: Required value");
  long long port = -1;
  if (it->is_number_integer()) {
    port = it->get<long long>();
  } else if (it->is_string()) {
    std::string name = it->get<std::string>();
    bool found = false;
    if (container.is_object() && container.contains("ports") && container["ports"].is_array()) {
      for (const auto& p : container["ports"]) {
        if (p.is_object() && p.value("name", "") == name && p.contains("containerPort") &&
            p["containerPort"].is_number_integer()) {
          port = p["containerPort"].get<long long>();
          found = true;
          break;
        }
      }
    }
    if (!found) {
      bool numeric =
          !name.empty() && name.size() < 7 &&
          std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (!numeric) {
        throw Error::Invalid(what + ".port: couldn't find port: " + name + " in container");
      }
      port = std::stoll(name);
    }
  } else {
    throw Error::Invalid(what + ".port: must be an integer or a port name");
  }
  if (port <= 0 || port > 65535) {
    throw Error::Invalid(what + ".port: invalid port number: " + std::to_string(port));
  }
  return static_cast<int>(port);
}

int MsLeft(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(std::min<long long>(left, 1 << 30));
}

// Waits for `events` on fd; false when the deadline passed first.
bool WaitFd(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int rc = ::poll(&p, 1, MsLeft(deadline));
    if (rc > 0) return true;
    if (rc == 0) return false;
    if (errno != EINTR) return true;  // let the following call report the error
  }
}

struct DialResult {
  UniqueFd fd;
  bool timed_out = false;
  std::string error;  // Go's dial error text, empty on success
};

// Resolves `host` (an IP literal, or a name via the host's resolver).
std::optional<sockaddr_storage> ResolveHost(const std::string& host, int port, socklen_t* len,
                                            std::string* error) {
  sockaddr_storage ss{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    *len = sizeof(sockaddr_in);
    return ss;
  }
  if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    *len = sizeof(sockaddr_in6);
    return ss;
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0 || res == nullptr) {
    *error = "dial tcp: lookup " + host + ": no such host";
    return std::nullopt;
  }
  std::memcpy(&ss, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  ::freeaddrinfo(res);
  if (ss.ss_family == AF_INET) v4->sin_port = htons(static_cast<uint16_t>(port));
  if (ss.ss_family == AF_INET6) v6->sin6_port = htons(static_cast<uint16_t>(port));
  return ss;
}

// A TCP connection to host:port from `netns_path`, within `deadline`.
DialResult Dial(const std::string& netns_path, const std::string& host, int port,
                Clock::time_point deadline) {
  DialResult r;
  const std::string prefix = "dial tcp " + JoinHostPort(host, port) + ": ";
  socklen_t len = 0;
  auto addr = ResolveHost(host, port, &len, &r.error);
  if (!addr) return r;
  int family = addr->ss_family;
  auto make_socket = [&] {
    r.fd = UniqueFd(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  };
  try {
    if (netns_path.empty()) {
      make_socket();
    } else {
      UniqueFd nsfd(::open(netns_path.c_str(), O_RDONLY | O_CLOEXEC));
      if (!nsfd) {
        r.error = prefix + "open netns " + netns_path + ": " + GoErrnoText(errno);
        return r;
      }
      Netns ns(std::move(nsfd));
      // The socket belongs to the namespace it was created in, so only its
      // creation needs to happen in there.
      RunInNetns(ns, make_socket);
    }
  } catch (const std::exception& e) {
    r.error = prefix + e.what();
    return r;
  }
  if (!r.fd) {
    r.error = prefix + "socket: " + GoErrnoText(errno);
    return r;
  }
  if (::connect(r.fd.get(), reinterpret_cast<sockaddr*>(&*addr), len) < 0) {
    if (errno != EINPROGRESS) {
      r.error = prefix + "connect: " + GoErrnoText(errno);
      r.fd.reset();
      return r;
    }
    if (!WaitFd(r.fd.get(), POLLOUT, deadline)) {
      r.timed_out = true;
      r.error = prefix + "i/o timeout";
      r.fd.reset();
      return r;
    }
    int err = 0;
    socklen_t elen = sizeof err;
    ::getsockopt(r.fd.get(), SOL_SOCKET, SO_ERROR, &err, &elen);
    if (err != 0) {
      r.error = prefix + "connect: " + GoErrnoText(err);
      r.fd.reset();
      return r;
    }
  }
  return r;
}

enum class Io { kOk, kEof, kTimeout, kError };

// A plain or TLS connection with a deadline on every operation.
class ProbeConn {
 public:
  ProbeConn(UniqueFd fd, Clock::time_point deadline) : fd_(std::move(fd)), deadline_(deadline) {}
  ~ProbeConn() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
  }
  ProbeConn(const ProbeConn&) = delete;
  ProbeConn& operator=(const ProbeConn&) = delete;

  // Client handshake without certificate verification (as kubelet's
  // InsecureSkipVerify). SNI only for names, as Go does.
  Io StartTls(const std::string& host, std::string* error) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (ctx_ == nullptr) return Fail("tls: cannot create context", error);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
    ssl_ = SSL_new(ctx_);
    if (ssl_ == nullptr) return Fail("tls: cannot create session", error);
    SSL_set_fd(ssl_, fd_.get());
    in6_addr tmp;
    if (::inet_pton(AF_INET, host.c_str(), &tmp) != 1 &&
        ::inet_pton(AF_INET6, host.c_str(), &tmp) != 1) {
      SSL_set_tlsext_host_name(ssl_, host.c_str());
    }
    for (;;) {
      ERR_clear_error();
      int rc = SSL_connect(ssl_);
      if (rc == 1) return Io::kOk;
      Io io = AfterSslError(rc, error);
      if (io != Io::kOk) {
        if (io == Io::kEof) *error = "tls: handshake: EOF";
        return io;
      }
    }
  }

  Io WriteAll(std::string_view data, std::string* error) {
    while (!data.empty()) {
      ssize_t n;
      if (ssl_ != nullptr) {
        ERR_clear_error();
        int rc = SSL_write(ssl_, data.data(), static_cast<int>(data.size()));
        if (rc <= 0) {
          Io io = AfterSslError(rc, error);
          if (io != Io::kOk) return io;
          continue;
        }
        n = rc;
      } else {
        n = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0) {
          if (errno == EINTR) continue;
          if (errno == EAGAIN) {
            if (!WaitFd(fd_.get(), POLLOUT, deadline_)) return Io::kTimeout;
            continue;
          }
          *error = "write: " + GoErrnoText(errno);
          return Io::kError;
        }
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return Io::kOk;
  }

  // Appends what arrives next (at least one byte) to `out`.
  Io ReadSome(std::string* out, std::string* error) {
    char buf[8192];
    for (;;) {
      if (ssl_ != nullptr) {
        ERR_clear_error();
        int rc = SSL_read(ssl_, buf, sizeof buf);
        if (rc > 0) {
          out->append(buf, static_cast<size_t>(rc));
          return Io::kOk;
        }
        Io io = AfterSslError(rc, error);
        if (io != Io::kOk) return io;
        continue;
      }
      ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
      if (n > 0) {
        out->append(buf, static_cast<size_t>(n));
        return Io::kOk;
      }
      if (n == 0) return Io::kEof;
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        if (!WaitFd(fd_.get(), POLLIN, deadline_)) return Io::kTimeout;
        continue;
      }
      *error = "read: " + GoErrnoText(errno);
      return Io::kError;
    }
  }

 private:
  Io Fail(const std::string& what, std::string* error) {
    *error = what;
    return Io::kError;
  }

  // kOk when the operation should be retried (after waiting).
  Io AfterSslError(int rc, std::string* error) {
    int err = SSL_get_error(ssl_, rc);
    switch (err) {
      case SSL_ERROR_WANT_READ:
        return WaitFd(fd_.get(), POLLIN, deadline_) ? Io::kOk : Io::kTimeout;
      case SSL_ERROR_WANT_WRITE:
        return WaitFd(fd_.get(), POLLOUT, deadline_) ? Io::kOk : Io::kTimeout;
      case SSL_ERROR_ZERO_RETURN:
        return Io::kEof;
      case SSL_ERROR_SYSCALL:
        if (errno == 0 || rc == 0) return Io::kEof;
        *error = GoErrnoText(errno);
        return Io::kError;
      default: {
        char text[256] = "tls error";
        unsigned long e = ERR_get_error();
        if (e != 0) ERR_error_string_n(e, text, sizeof text);
        *error = std::string("tls: ") + text;
        return Io::kError;
      }
    }
  }

  UniqueFd fd_;
  Clock::time_point deadline_;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
};

struct Url {
  std::string scheme;  // "http" or "https"
  std::string host;    // without brackets
  int port = 0;
  std::string path;  // path and query as written ("" allowed)

  std::string String() const { return scheme + "://" + JoinHostPort(host, port) + path; }
  std::string RequestTarget() const { return path.empty() ? "/" : path; }
};

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Resolves a Location header against the URL it came from.
std::optional<Url> ResolveLocation(const Url& base, const std::string& location) {
  Url u = base;
  std::string rest;
  auto scheme_end = location.find("://");
  if (scheme_end != std::string::npos && location.find('/') > scheme_end) {
    u.scheme = Lower(location.substr(0, scheme_end));
    if (u.scheme != "http" && u.scheme != "https") return std::nullopt;
    rest = location.substr(scheme_end + 3);
  } else if (location.rfind("//", 0) == 0) {
    rest = location.substr(2);
  } else {
    if (location.empty() || location[0] == '/') {
      u.path = location;
    } else {
      std::string dir = base.RequestTarget();
      dir = dir.substr(0, dir.find('?'));
      u.path = dir.substr(0, dir.rfind('/') + 1) + location;
    }
    return u;
  }
  size_t slash = rest.find_first_of("/?");
  std::string hostport = rest.substr(0, slash);
  u.path = slash == std::string::npos ? "" : rest.substr(slash);
  if (!u.path.empty() && u.path[0] == '?') u.path = "/" + u.path;
  u.port = u.scheme == "https" ? 443 : 80;
  if (!hostport.empty() && hostport[0] == '[') {
    size_t close = hostport.find(']');
    if (close == std::string::npos) return std::nullopt;
    u.host = hostport.substr(1, close - 1);
    if (close + 1 < hostport.size() && hostport[close + 1] == ':') {
      u.port = std::atoi(hostport.c_str() + close + 2);
    }
  } else {
    size_t colon = hostport.rfind(':');
    u.host = hostport.substr(0, colon);
    if (colon != std::string::npos) u.port = std::atoi(hostport.c_str() + colon + 1);
  }
  if (u.host.empty() || u.port <= 0 || u.port > 65535) return std::nullopt;
  return u;
}

struct HttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;                                          // at most kMaxBodyBytes

  std::string Header(const std::string& lower_name) const {
    for (const auto& [k, v] : headers) {
      if (k == lower_name) return v;
    }
    return "";
  }
};

// Decodes what is complete of a chunked body; true once the last chunk came.
bool DecodeChunked(const std::string& raw, std::string* out) {
  size_t pos = 0;
  out->clear();
  for (;;) {
    size_t eol = raw.find("\r\n", pos);
    if (eol == std::string::npos) return false;
    size_t size = std::strtoul(raw.substr(pos, eol - pos).c_str(), nullptr, 16);
    if (size == 0) return true;
    size_t data = eol + 2;
    if (raw.size() < data + size) {
      out->append(raw, data, raw.size() - data);
      return false;
    }
    out->append(raw, data, size);
    pos = data + size + 2;
    if (pos > raw.size()) return false;
  }
}

struct AttemptResult {
  std::optional<HttpResponse> response;
  bool timed_out = false;
  std::string error;  // Go's error text after `Get "url": `
};

AttemptResult DoRequest(const ProbeTarget& target, const Url& url,
                        const std::vector<std::pair<std::string, std::string>>& headers,
                        Clock::time_point deadline) {
  AttemptResult r;
  DialResult dial = Dial(target.netns_path, url.host, url.port, deadline);
  if (!dial.fd) {
    r.timed_out = dial.timed_out;
    r.error = dial.error;
    return r;
  }
  ProbeConn conn(std::move(dial.fd), deadline);
  std::string err;
  auto fail = [&](Io io, const std::string& what) {
    r.timed_out = io == Io::kTimeout;
    r.error = io == Io::kEof ? "EOF" : what.empty() ? err : what;
    return r;
  };
  if (url.scheme == "https") {
    Io io = conn.StartTls(url.host, &err);
    if (io != Io::kOk) return fail(io, "");
  }

  std::string host_header = JoinHostPort(url.host, url.port);
  std::string user_agent = kProbeUserAgent;
  std::string accept = "*/*";
  std::string extra;
  for (const auto& [name, value] : headers) {
    std::string lower = Lower(name);
    if (lower == "host") {
      host_header = value;
    } else if (lower == "user-agent") {
      user_agent = value;
    } else if (lower == "accept") {
      accept = value;
    } else if (lower != "connection") {
      extra += name + ": " + value + "\r\n";
    }
  }
  std::string request = "GET " + url.RequestTarget() + " HTTP/1.1\r\nHost: " + host_header +
                        "\r\nUser-Agent: " + user_agent + "\r\nAccept: " + accept + "\r\n" + extra +
                        "Connection: close\r\n\r\n";
  if (Io io = conn.WriteAll(request, &err); io != Io::kOk) return fail(io, "");

  std::string raw;
  size_t header_end;
  while ((header_end = raw.find("\r\n\r\n")) == std::string::npos) {
    if (raw.size() > kMaxHeaderBytes)
      return fail(Io::kError, "net/http: response headers too long");
    Io io = conn.ReadSome(&raw, &err);
    if (io == Io::kEof && !raw.empty()) {
      return fail(Io::kError, "net/http: HTTP/1.x transport connection broken: unexpected EOF");
    }
    if (io != Io::kOk) return fail(io, "");
  }
  HttpResponse resp;
  {
    std::string head = raw.substr(0, header_end);
    size_t eol = head.find("\r\n");
    std::string status_line = head.substr(0, eol);
    int status = 0;
    if (status_line.rfind("HTTP/1.", 0) != 0 || status_line.size() < 12 ||
        std::sscanf(status_line.c_str() + 9, "%3d", &status) != 1 || status < 100) {
      return fail(Io::kError,
                  "net/http: HTTP/1.x transport connection broken: malformed HTTP response " +
                      GoQuote(status_line));
    }
    resp.status = status;
    size_t pos = eol == std::string::npos ? head.size() : eol + 2;
    while (pos < head.size()) {
      size_t next = head.find("\r\n", pos);
      if (next == std::string::npos) next = head.size();
      std::string line = head.substr(pos, next - pos);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string value = line.substr(colon + 1);
        value.erase(0, value.find_first_not_of(" \t"));
        value.erase(value.find_last_not_of(" \t") + 1);
        resp.headers.emplace_back(Lower(line.substr(0, colon)), value);
      }
      pos = next + 2;
    }
  }

  // The body only feeds the message: read what comes within the deadline,
  // up to kubelet's limit, and keep what arrived when time runs out.
  std::string body_raw = raw.substr(header_end + 4);
  bool chunked = Lower(resp.Header("transfer-encoding")).find("chunked") != std::string::npos;
  std::string cl = resp.Header("content-length");
  std::optional<size_t> content_length;
  if (!cl.empty()) content_length = std::strtoull(cl.c_str(), nullptr, 10);
  auto complete = [&] {
    if (chunked) {
      std::string decoded;
      bool done = DecodeChunked(body_raw, &decoded);
      return done || decoded.size() >= kMaxBodyBytes;
    }
    if (content_length) return body_raw.size() >= std::min(*content_length, kMaxBodyBytes);
    return body_raw.size() >= kMaxBodyBytes;
  };
  while (resp.status != 204 && resp.status != 304 && !complete()) {
    if (conn.ReadSome(&body_raw, &err) != Io::kOk) break;
  }
  if (chunked) {
    DecodeChunked(body_raw, &resp.body);
  } else {
    resp.body = std::move(body_raw);
    if (content_length && resp.body.size() > *content_length) resp.body.resize(*content_length);
  }
  if (resp.body.size() > kMaxBodyBytes) resp.body.resize(kMaxBodyBytes);
  r.response = std::move(resp);
  return r;
}

bool IsRedirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

ProbeOutcome HttpGetProbe(const Json& h, const Json& container, const ProbeTarget& target,
                          milliseconds timeout) {
  Url url;
  std::string scheme = StringField(h, "scheme");
  if (scheme.empty() || scheme == "HTTP") {
    url.scheme = "http";
  } else if (scheme == "HTTPS") {
    url.scheme = "https";
  } else {
    throw Error::Invalid("httpGet.scheme: Unsupported value: " + GoQuote(scheme) +
                         ": supported values: \"HTTP\", \"HTTPS\"");
  }
  url.port = ResolvePort(h, container, "httpGet");
  url.host = StringField(h, "host");
  if (url.host.empty()) url.host = target.pod_ip;
  if (!url.host.empty() && url.host.front() == '[' && url.host.back() == ']') {
    url.host = url.host.substr(1, url.host.size() - 2);
  }
  if (url.host.empty()) throw Error::Invalid("httpGet.host: no host and no pod IP to probe");
  url.path = StringField(h, "path");
  if (!url.path.empty() && url.path[0] != '/') url.path = "/" + url.path;

  std::vector<std::pair<std::string, std::string>> headers;
  if (h.contains("httpHeaders") && h["httpHeaders"].is_array()) {
    for (const auto& hh : h["httpHeaders"]) {
      if (!hh.is_object()) continue;
      std::string name = StringField(hh, "name");
      if (name.empty()) throw Error::Invalid("httpGet.httpHeaders[].name: Required value");
      headers.emplace_back(name, StringField(hh, "value"));
    }
  }

  const auto deadline = Clock::now() + timeout;
  const std::string original = url.String();
  const std::string original_host = url.host;
  for (int redirects = 0;; ++redirects) {
    AttemptResult a = DoRequest(target, url, headers, deadline);
    if (!a.response) {
      if (a.timed_out) {
        return {false, "Get " + GoQuote(original) +
                           ": context deadline exceeded (Client.Timeout exceeded while awaiting "
                           "headers)"};
      }
      return {false, "Get " + GoQuote(url.String()) + ": " + a.error};
    }
    const HttpResponse& resp = *a.response;
    if (IsRedirect(resp.status) && !resp.Header("location").empty()) {
      auto next = ResolveLocation(url, resp.Header("location"));
      // kubelet follows redirects only within the same host; anything else
      // ends the probe with this 3xx, which counts as success with a warning.
      if (next && next->host == original_host) {
        if (redirects + 1 > kMaxRedirects) {
          return {false, "Get " + GoQuote(next->String()) + ": stopped after 10 redirects"};
        }
        url = *next;
        continue;
      }
    }
    if (resp.status >= 200 && resp.status < 400) {
      if (resp.status >= 300) {
        return {true, "Probe terminated redirects, Response body: " + resp.body};
      }
      return {true, resp.body};
    }
    return {false, "HTTP probe failed with statuscode: " + std::to_string(resp.status)};
  }
}

ProbeOutcome TcpSocketProbe(const Json& t, const Json& container, const ProbeTarget& target,
                            milliseconds timeout) {
  int port = ResolvePort(t, container, "tcpSocket");
  std::string host = StringField(t, "host");
  if (host.empty()) host = target.pod_ip;
  if (host.empty()) throw Error::Invalid("tcpSocket.host: no host and no pod IP to probe");
  DialResult d = Dial(target.netns_path, host, port, Clock::now() + timeout);
  if (!d.fd) return {false, d.error};
  return {true, ""};
}

std::string JoinArgs(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) {
    if (!s.empty()) s += ' ';
    s += a;
  }
  return s;
}

ProbeOutcome ExecProbe(const Json& e, const ProbeTarget& target, milliseconds timeout) {
  std::vector<std::string> argv;
  if (e.contains("command") && e["command"].is_array()) {
    for (const auto& a : e["command"]) {
      if (!a.is_string()) throw Error::Invalid("exec.command: must be a list of strings");
      argv.push_back(a.get<std::string>());
    }
  }
  if (argv.empty()) throw Error::Invalid("exec.command: Required value");
  if (!target.exec) return {false, "exec probes cannot run: no way to exec in this container"};
  const std::string timed_out = "command " + GoQuote(JoinArgs(argv)) + " timed out";
  ExecResult res;
  try {
    res = target.exec(argv, timeout);
  } catch (const Error& err) {
    if (err.code() == Code::kTimeout) return {false, timed_out};
    return {false, err.message()};
  } catch (const std::exception& err) {
    return {false, err.what()};
  }
  if (res.exit_code < 0) return {false, timed_out};
  return {res.exit_code == 0, res.output};
}

}  // namespace

std::chrono::milliseconds ProbeTimeout(const Json& probe) {
  return std::chrono::seconds(IntField(probe, "timeoutSeconds", 1, 1, "probe"));
}

ProbeOutcome RunProbe(const Json& probe, const Json& container, const ProbeTarget& target) {
  if (!probe.is_object()) throw Error::Invalid("probe: must be an object");
  static const char* kHandlers[] = {"exec", "httpGet", "tcpSocket", "grpc"};
  std::string handler;
  for (const char* h : kHandlers) {
    auto it = probe.find(h);
    if (it == probe.end() || it->is_null()) continue;
    if (!handler.empty()) {
      throw Error::Invalid(std::string("probe.") + h +
                           ": Forbidden: may not specify more than 1 handler type");
    }
    if (!it->is_object()) throw Error::Invalid(std::string("probe.") + h + ": must be an object");
    handler = h;
  }
  if (handler.empty()) throw Error::Invalid("probe: Required value: must specify a handler type");
  milliseconds timeout = ProbeTimeout(probe);
  const Json& h = probe[handler];
  if (handler == "exec") return ExecProbe(h, target, timeout);
  if (handler == "httpGet") return HttpGetProbe(h, container, target, timeout);
  if (handler == "tcpSocket") return TcpSocketProbe(h, container, target, timeout);
  // grpc.health.v1 needs HTTP/2 framing; kin does not speak it (yet).
  ResolvePort(h, container, "grpc");
  return {false, "grpc probes are not supported by kin"};
}

ProbeSchedule::ProbeSchedule(const Json& probe, bool initial_result)
    : initial_delay_(std::chrono::seconds(IntField(probe, "initialDelaySeconds", 0, 0, "probe"))),
      period_(std::chrono::seconds(IntField(probe, "periodSeconds", 10, 1, "probe"))),
      timeout_(std::chrono::seconds(IntField(probe, "timeoutSeconds", 1, 1, "probe"))),
      success_threshold_(IntField(probe, "successThreshold", 1, 1, "probe")),
      failure_threshold_(IntField(probe, "failureThreshold", 3, 1, "probe")),
      result_(initial_result) {}

std::chrono::steady_clock::time_point ProbeSchedule::NextDue(
    std::chrono::steady_clock::time_point started) const {
  if (!has_attempt_) return started + initial_delay_;
  return std::max(last_attempt_ + period_, started + initial_delay_);
}

bool ProbeSchedule::Record(bool success, std::chrono::steady_clock::time_point now) {
  if (has_attempt_ && success == last_success_) {
    ++run_;
  } else {
    run_ = 1;
  }
  has_attempt_ = true;
  last_success_ = success;
  last_attempt_ = now;
  int threshold = success ? success_threshold_ : failure_threshold_;
  if (run_ < threshold || result_ == success) return false;
  result_ = success;
  return true;
}

}  // namespace kin
