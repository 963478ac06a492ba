#include "runtime/agnhost.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include "base/error.h"
#include "base/fd.h"
#include "base/http_client.h"
#include "base/http_server.h"
#include "base/strings.h"
#include "base/yaml.h"
#include "runtime/agnhost_webhook.h"

extern char** environ;

namespace kin::agnhost {
namespace {

using Clock = std::chrono::steady_clock;
const Clock::time_point kStart = Clock::now();

// ---- Flags, the way Go's flag/pflag packages read them ----------------------

struct FlagSpec {
  std::string name;
  bool is_bool = false;
  std::string value;  // default, then the parsed value
};

class Flags {
 public:
  Flags& Add(std::string name, std::string def, bool is_bool = false) {
    specs_[name] = FlagSpec{name, is_bool, std::move(def)};
    return *this;
  }
  // Fills values and positional arguments; throws Invalid on unknown flags.
  void Parse(const std::vector<std::string>& args, size_t from) {
    for (size_t i = from; i < args.size(); ++i) {
      const std::string& a = args[i];
      if (a == "--") {
        for (++i; i < args.size(); ++i) positional_.push_back(args[i]);
        break;
      }
      if (a.size() < 2 || a[0] != '-') {
        positional_.push_back(a);
        continue;
      }
      std::string body = a.substr(a[1] == '-' ? 2 : 1);
      std::string name = body, value;
      bool has_value = false;
      if (auto eq = body.find('='); eq != std::string::npos) {
        name = body.substr(0, eq);
        value = body.substr(eq + 1);
        has_value = true;
      }
      auto it = specs_.find(name);
      if (it == specs_.end()) throw Error::Invalid("unknown flag: --" + name);
      if (it->second.is_bool) {
        if (!has_value) value = "true";
        if (value != "true" && value != "false" && value != "1" && value != "0") {
          throw Error::Invalid("invalid argument \"" + value + "\" for \"--" + name + "\" flag");
        }
        it->second.value = (value == "true" || value == "1") ? "true" : "false";
        continue;
      }
      if (!has_value) {
        if (i + 1 >= args.size()) throw Error::Invalid("flag needs an argument: --" + name);
        value = args[++i];
      }
      it->second.value = value;
    }
  }
  std::string Str(const std::string& name) const { return specs_.at(name).value; }
  bool Bool(const std::string& name) const { return specs_.at(name).value == "true"; }
  int Int(const std::string& name) const {
    const std::string& v = specs_.at(name).value;
    try {
      size_t used = 0;
      int n = std::stoi(v, &used);
      if (used == v.size()) return n;
    } catch (const std::exception&) {
    }
    throw Error::Invalid("invalid argument \"" + v + "\" for \"--" + name + "\" flag");
  }
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, FlagSpec> specs_;
  std::vector<std::string> positional_;
};

// ---- Small helpers -----------------------------------------------------------

std::string Hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

void Log(const std::string& msg) {
  // Go's log package: "2006/01/02 15:04:05 msg" on stderr.
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char ts[32];
  std::strftime(ts, sizeof ts, "%Y/%m/%d %H:%M:%S", &tm);
  std::string line = std::string(ts) + " " + msg + "\n";
  (void)!::write(2, line.data(), line.size());
}

[[noreturn]] void ExitNow(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  ::_exit(code);
}

// Ends the process the way an unhandled signal would (Go's default for
// signals it was not asked to catch), so the runtime sees the signal.
[[noreturn]] void DieOfSignal(int sig) {
  std::fflush(stdout);
  std::fflush(stderr);
  ::signal(sig, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  ::raise(sig);
  ::_exit(128 + sig);
}

sigset_t TermSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

// Blocks SIGINT/SIGTERM here and in every thread started afterwards, so that
// WaitSignal() (sigwait) is the only receiver.
void BlockTermSignals() {
  sigset_t set = TermSignals();
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int WaitSignal() {
  sigset_t set = TermSignals();
  int sig = 0;
  while (::sigwait(&set, &sig) != 0) {
  }
  return sig;
}

// Go json.Marshal escapes these for HTML safety; nlohmann does not.
std::string GoJson(const Json& j) {
  std::string s = j.dump();
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '<') {
      out += "\\u003c";
    } else if (c == '>') {
      out += "\\u003e";
    } else if (c == '&') {
      out += "\\u0026";
    } else {
      out += c;
    }
  }
  return out;
}

std::string AddrToString(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = {};
  int port = 0;
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
  ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
  port = ntohs(a->sin6_port);
  return "[" + std::string(host) + "]:" + std::to_string(port);
}

// Splits "host:port" / "[v6]:port"; false when malformed.
bool SplitHostPort(const std::string& s, std::string& host, std::string& port) {
  if (!s.empty() && s[0] == '[') {
    auto close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':') return false;
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
    return true;
  }
  auto colon = s.rfind(':');
  if (colon == std::string::npos || s.find(':') != colon) return false;
  host = s.substr(0, colon);
  port = s.substr(colon + 1);
  return true;
}

// Resolves host:port to one address; the error text on failure.
bool Resolve(const std::string& host, const std::string& port, int socktype, sockaddr_storage& out,
             socklen_t& len, std::string& err) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = socktype;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0 || !res) {
    err = "lookup " + host + ": " + ::gai_strerror(rc);
    return false;
  }
  std::memcpy(&out, res->ai_addr, res->ai_addrlen);
  len = res->ai_addrlen;
  ::freeaddrinfo(res);
  return true;
}

UniqueFd BindSocket(int type, const std::string& address, int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  std::string host = address.empty() ? "0.0.0.0" : address;
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    throw Error::Invalid("listen address \"" + host + "\" is not an IPv4 address");
  }
  UniqueFd fd(static_cast<int>(CheckSys(::socket(AF_INET, type | SOCK_CLOEXEC, 0), "socket")));
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  std::string where = host + ":" + std::to_string(port);
  CheckSys(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), "listen on " + where);
  if (type == SOCK_STREAM) CheckSys(::listen(fd.get(), 128), "listen on " + where);
  return fd;
}

// Go's request.FormValue: the urlencoded POST body first, then the query.
std::string FormValue(const http::Request& r, const std::string& key) {
  if (r.method == "POST" || r.method == "PUT" || r.method == "PATCH") {
    if (r.Header("Content-Type").rfind("application/x-www-form-urlencoded", 0) == 0) {
      std::stringstream ss(r.body);
      std::string pair;
      while (std::getline(ss, pair, '&')) {
        auto eq = pair.find('=');
        std::string k = http::UrlDecode(pair.substr(0, eq));
        if (k == key) return eq == std::string::npos ? "" : http::UrlDecode(pair.substr(eq + 1));
      }
    }
  }
  auto range = r.query.equal_range(key);
  return range.first == range.second ? "" : range.first->second;
}

bool ParseInt(const std::string& s, int& out) {
  if (s.empty()) return false;
  try {
    size_t used = 0;
    out = std::stoi(s, &used);
    return used == s.size();
  } catch (const std::exception&) {
    return false;
  }
}

std::string GoQuote(const std::string& s) { return Json(s).dump(); }

void Text(http::Response& res, int status, std::string body) {
  res.status = status;
  res.headers.emplace("Content-Type", "text/plain; charset=utf-8");
  res.body = std::move(body);
}

// Go's http.Error.
void HttpError(http::Response& res, const std::string& msg, int status) {
  res.status = status;
  res.headers.emplace("Content-Type", "text/plain; charset=utf-8");
  res.headers.emplace("X-Content-Type-Options", "nosniff");
  res.body = msg + "\n";
}

// Go's "%v" of time.Now(): "2006-01-02 15:04:05.999999999 -0700 MST m=+0.001".
std::string GoNow() {
  auto now = std::chrono::system_clock::now();
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
  std::time_t t = static_cast<std::time_t>(ns / 1000000000);
  long frac = static_cast<long>(ns % 1000000000);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char date[32], zone[32];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S", &tm);
  std::strftime(zone, sizeof zone, "%z %Z", &tm);
  std::string out = date;
  if (frac) {
    char f[16];
    std::snprintf(f, sizeof f, ".%09ld", frac);
    std::string fs = f;
    while (fs.back() == '0') fs.pop_back();
    out += fs;
  }
  double mono = std::chrono::duration<double>(Clock::now() - kStart).count();
  char m[48];
  std::snprintf(m, sizeof m, " m=+%.9f", mono);
  return out + " " + zone + m;
}

// ---- netexec -----------------------------------------------------------------

struct NetexecState {
  std::atomic<bool> server_ready{false};
  std::atomic<bool> sigterm_received{false};
};

// Runs `sh -c cmd`, stdout and stderr together, like Go's CombinedOutput.
void RunShell(const std::string& cmd, std::string& output, std::string& error) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    error = std::string("pipe: ") + std::strerror(errno);
    return;
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    error = std::string("fork/exec /bin/sh: ") + std::strerror(errno);
    ::close(fds[0]);
    ::close(fds[1]);
    return;
  }
  if (pid == 0) {
    sigset_t set = TermSignals();
    ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(fds[1], 1);
    ::dup2(fds[1], 2);
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[1]);
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n > 0) {
      output.append(buf, static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
    error = "exit status " + std::to_string(WEXITSTATUS(status));
  } else if (WIFSIGNALED(status)) {
    error = std::string("signal: ") + ::strsignal(WTERMSIG(status));
    for (auto& c : error) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
}

bool DialHttp(const std::string& hostport, const std::string& request, std::string& response,
              std::string& err) {
  std::string url = "http://" + hostport + "/" + request;
  try {
    http::HttpClient client(
        http::ClientOptions{.base_url = "http://" + hostport, .timeout_ms = 5000});
    auto r = client.Get("/" + request);
    response = r.body;
    return true;
  } catch (const std::exception& e) {
    err = "Get " + GoQuote(url) + ": " + e.what();
    return false;
  }
}

bool DialUdp(const sockaddr_storage& addr, socklen_t len, const std::string& request,
             std::string& response, std::string& err) {
  UniqueFd fd(::socket(addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd || ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
    err = std::string("udp dial failed. err:dial udp ") + AddrToString(addr) + ": " +
          std::strerror(errno);
    return false;
  }
  sockaddr_storage local{};
  socklen_t llen = sizeof local;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&local), &llen);
  std::string pair = AddrToString(local) + "->" + AddrToString(addr);
  if (::send(fd.get(), request.data(), request.size(), 0) < 0) {
    err = "udp connection write failed. err:write udp " + pair + ": " + std::strerror(errno);
    return false;
  }
  pollfd p{fd.get(), POLLIN, 0};
  auto deadline = Clock::now() + std::chrono::seconds(5);
  std::string reason;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      reason = "read udp " + pair + ": i/o timeout";
      break;
    }
    int rc = ::poll(&p, 1, static_cast<int>(left.count()));
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) {
      reason = "read udp " + pair + ": i/o timeout";
      break;
    }
    char buf[2048];
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n > 0) {
      response.assign(buf, static_cast<size_t>(n));
      return true;
    }
    reason = n < 0 ? "read udp " + pair + ": " + std::strerror(errno) : "<nil>";
    if (n < 0 && errno == ECONNREFUSED) reason = "read udp " + pair + ": connection refused";
    break;
  }
  err = "reading from udp connection failed. err:'" + reason + "'";
  return false;
}

void DialHandler(const http::Request& r, http::Response& res) {
  auto first = [&](const std::string& k) {
    auto range = r.query.equal_range(k);
    return range.first == range.second ? std::string() : range.first->second;
  };
  // Upstream reads these from the URL only (url.Query), never a form body.
  std::string host = first("host"), port = first("port"), request = first("request"),
              protocol = first("protocol"), try_param = first("tries");
  Log("GET /dial?host=" + host + "&protocol=" + protocol + "&port=" + port + "&request=" + request +
      "&tries=" + try_param);
  int tries = 1;
  if (!try_param.empty() && !ParseInt(try_param, tries)) {
    HttpError(res,
              "tries parameter is invalid. strconv.Atoi: parsing " + GoQuote(try_param) +
                  ": invalid syntax",
              400);
    return;
  }
  if (request.empty()) {
    HttpError(res, "request parameter not specified. <nil>", 400);
    return;
  }
  for (auto& c : protocol) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  bool udp = false;
  if (protocol == "udp") {
    udp = true;
  } else if (protocol == "sctp") {
    HttpError(res, "unsupported protocol. sctp", 400);
    return;
  } else if (!protocol.empty() && protocol != "http") {
    HttpError(res, "unsupported protocol. " + protocol, 400);
    return;
  }
  sockaddr_storage addr{};
  socklen_t len = 0;
  std::string err;
  if (!Resolve(host, port, udp ? SOCK_DGRAM : SOCK_STREAM, addr, len, err)) {
    HttpError(res, "host and/or port param are invalid. " + err, 400);
    return;
  }
  std::string hostport = AddrToString(addr);
  Json responses = Json::array(), errors = Json::array();
  std::string response;
  for (int i = 0; i < tries; ++i) {
    response.clear();
    std::string e;
    bool ok =
        udp ? DialUdp(addr, len, request, response, e) : DialHttp(hostport, request, response, e);
    if (ok) {
      responses.push_back(response);
    } else {
      errors.push_back(e);
    }
  }
  Json out = Json::object();
  if (!response.empty()) out["responses"] = responses;
  if (!errors.empty()) out["errors"] = errors;
  Text(res, 200, GoJson(out));
}

void UploadHandler(const http::Request& r, http::Response& res) {
  Log("GET /upload");
  auto fail = [&](const std::string& msg) { Text(res, 200, GoJson(Json{{"error", msg}})); };
  std::string ct = r.Header("Content-Type");
  auto b = ct.find("boundary=");
  if (ct.rfind("multipart/form-data", 0) != 0 || b == std::string::npos) {
    return fail("Unable to upload file.");
  }
  std::string boundary = ct.substr(b + 9);
  if (auto semi = boundary.find(';'); semi != std::string::npos) boundary.resize(semi);
  if (boundary.size() >= 2 && boundary.front() == '"')
    boundary = boundary.substr(1, boundary.size() - 2);
  std::string delim = "--" + boundary;
  std::optional<std::string> content;
  size_t pos = r.body.find(delim);
  while (pos != std::string::npos) {
    size_t head_start = pos + delim.size();
    if (r.body.compare(head_start, 2, "--") == 0) break;
    size_t head_end = r.body.find("\r\n\r\n", head_start);
    if (head_end == std::string::npos) break;
    std::string head = r.body.substr(head_start, head_end - head_start);
    size_t next = r.body.find("\r\n" + delim, head_end + 4);
    if (next == std::string::npos) break;
    if (head.find("name=\"file\"") != std::string::npos) {
      content = r.body.substr(head_end + 4, next - head_end - 4);
      break;
    }
    pos = next + 2;
  }
  if (!content) return fail("Unable to upload file.");
  std::string tmpl = "/uploads/uploadXXXXXX";
  int fd = ::mkstemp(tmpl.data());
  if (fd < 0) return fail("Unable to open file for write");
  UniqueFd owner(fd);
  size_t off = 0;
  while (off < content->size()) {
    ssize_t n = ::write(fd, content->data() + off, content->size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail("Unable to write file.");
    off += static_cast<size_t>(n);
  }
  if (::fchmod(fd, 0700) != 0) return fail("Unable to chmod file.");
  Log("Wrote upload to " + tmpl);
  Text(res, 201, GoJson(Json{{"output", tmpl}}));
}

std::string HtmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

void RedirectHandler(const http::Request& r, http::Response& res) {
  std::string location = FormValue(r, "location"), code_string = FormValue(r, "code");
  Log(r.method + " /redirect?msg=" + location + "&code=" + code_string);
  int code = 302;
  if (!code_string.empty() && !ParseInt(code_string, code)) {
    Text(res, 200,
         "argument 'code' must be an integer or empty, got " + GoQuote(code_string) + "\n");
    return;
  }
  // Go's http.Redirect makes a path without a scheme absolute against the
  // request's directory, which for /redirect is "/".
  bool has_scheme = location.find("://") != std::string::npos;
  if (!has_scheme && (location.empty() || location[0] != '/')) location = "/" + location;
  res.status = code;
  res.headers.emplace("Location", location);
  if (r.method == "GET" || r.method == "HEAD") {
    res.headers.emplace("Content-Type", "text/html; charset=utf-8");
    res.body = "<a href=\"" + HtmlEscape(location) + "\">" + std::string(http::StatusText(code)) +
               "</a>.\n\n";
  }
}

void ExitHandler(const http::Request& r, http::Response& res) {
  std::string wait_s = FormValue(r, "wait"), timeout_s = FormValue(r, "timeout"),
              code_s = FormValue(r, "code");
  Log("GET /exit?code=" + code_s + "&timeout=" + timeout_s + "&wait=" + wait_s);
  long long timeout = 0, wait = 0;
  try {
    if (!timeout_s.empty()) timeout = ParseGoDurationMs(timeout_s);
  } catch (const std::exception&) {
    Text(res, 200,
         "argument 'timeout' must be a valid golang duration or empty, got " + GoQuote(timeout_s) +
             "\n");
    return;
  }
  try {
    if (!wait_s.empty()) wait = ParseGoDurationMs(wait_s);
  } catch (const std::exception&) {
    Text(res, 200,
         "argument 'wait' must be a valid golang duration or empty, got " + GoQuote(wait_s) + "\n");
    return;
  }
  int code = 0;
  if (!code_s.empty() && !ParseInt(code_s, code)) {
    Text(res, 200,
         "argument 'code' must be an integer [0-127] or empty, got " + GoQuote(code_s) + "\n");
    return;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(wait));
  // Upstream's graceful shutdown waits for open connections, this request's
  // own among them, for up to `timeout`; then it exits either way.
  std::this_thread::sleep_for(std::chrono::milliseconds(timeout));
  ExitNow(code);
}

void HeaderHandler(const http::Request& r, http::Response& res) {
  std::string key = FormValue(r, "key");
  if (!key.empty()) {
    auto it = r.headers.find(key);
    Text(res, 200, it == r.headers.end() ? "" : it->second);
    return;
  }
  Json all = Json::object();
  for (const auto& [name, value] : r.headers) {
    if (strcasecmp(name.c_str(), "Host") == 0) continue;
    std::string canon = CanonicalHeaderKey(name);
    if (!all.contains(canon)) all[canon] = Json::array();
    all[canon].push_back(value);
  }
  Text(res, 200, GoJson(all));
}

void NetexecHandle(NetexecState& st, const http::Request& r, http::Response& res) {
  const std::string& p = r.path;
  if (p == "/clientip") {
    Text(res, 200, r.remote_addr);
  } else if (p == "/header") {
    HeaderHandler(r, res);
  } else if (p == "/dial") {
    DialHandler(r, res);
  } else if (p == "/echo") {
    std::string msg = FormValue(r, "msg"), code_s = FormValue(r, "code");
    Log("GET /echo?msg=" + msg + "&code=" + code_s);
    int code = 200;
    if (!code_s.empty() && !ParseInt(code_s, code)) {
      Text(res, 200, "argument 'code' must be an integer or empty, got " + GoQuote(code_s) + "\n");
      return;
    }
    Text(res, code, msg);
  } else if (p == "/exit") {
    ExitHandler(r, res);
  } else if (p == "/healthz") {
    res.status = st.server_ready ? 200 : 412;
  } else if (p == "/readyz") {
    if (st.sigterm_received) {
      Text(res, 503, "shutting down");
    } else if (st.server_ready) {
      Text(res, 200, "ok");
    } else {
      res.status = 412;
    }
  } else if (p == "/hostname" || p == "/hostName") {
    Text(res, 200, Hostname());
  } else if (p == "/redirect") {
    RedirectHandler(r, res);
  } else if (p == "/shell") {
    std::string cmd = FormValue(r, "shellCommand");
    if (cmd.empty()) cmd = FormValue(r, "cmd");
    Log("GET /shell?cmd=" + cmd);
    std::string output, error;
    RunShell(cmd, output, error);
    Json out = Json::object();
    if (!output.empty()) out["output"] = output;
    if (!error.empty()) out["error"] = error;
    Text(res, 200, GoJson(out));
  } else if (p == "/upload") {
    UploadHandler(r, res);
  } else if (p == "/shutdown") {
    Log("GET /shutdown");
    ExitNow(0);
  } else {
    Text(res, 200, "NOW: " + GoNow());
  }
}

void UdpServe(NetexecState& st, int fd) {
  char buf[2048];
  for (;;) {
    sockaddr_storage from{};
    socklen_t flen = sizeof from;
    ssize_t n = ::recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &flen);
    if (n < 0) {
      if (errno == EINTR) continue;
      Log(std::string("Error occurred: failed accepting UDP connections:") + std::strerror(errno));
      st.server_ready = false;
      ExitNow(1);
    }
    std::string text(buf, static_cast<size_t>(n));
    size_t b = text.find_first_not_of(" \t\r\n\v\f");
    size_t e = text.find_last_not_of(" \t\r\n\v\f");
    text = b == std::string::npos ? "" : text.substr(b, e - b + 1);
    for (auto& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string reply;
    bool answer = true;
    if (text == "hostname") {
      reply = Hostname();
    } else if (text.rfind("echo ", 0) == 0) {
      reply = text.substr(5);
    } else if (text == "clientip") {
      reply = AddrToString(from);
    } else {
      answer = false;
      if (!text.empty())
        Log("Unknown UDP command received from " + AddrToString(from) + ": " + text);
    }
    if (answer) {
      ::sendto(fd, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), flen);
    }
  }
}

int Netexec(const std::vector<std::string>& args) {
  Flags f;
  f.Add("http-port", "8080")
      .Add("udp-port", "8081")
      .Add("sctp-port", "-1")
      .Add("delay-shutdown", "0")
      .Add("tls-cert-file", "")
      .Add("tls-private-key-file", "")
      .Add("udp-listen-addresses", "")
      .Add("http-override", "");
  f.Parse(args, 1);
  int http_port = f.Int("http-port"), udp_port = f.Int("udp-port");
  int delay = f.Int("delay-shutdown");
  if (f.Int("sctp-port") != -1) {
    throw Error::Invalid("--sctp-port: SCTP is not supported by kin's agnhost");
  }
  if (!f.Str("http-override").empty()) {
    throw Error::Invalid("--http-override is not supported by kin's agnhost");
  }
  auto st = std::make_shared<NetexecState>();
  BlockTermSignals();

  std::vector<UniqueFd> udp_fds;
  if (udp_port != -1) {
    std::vector<std::string> addrs;
    std::stringstream ss(f.Str("udp-listen-addresses"));
    std::string a;
    while (std::getline(ss, a, ',')) addrs.push_back(a);
    if (addrs.empty()) addrs.push_back("");
    for (const auto& addr : addrs) {
      udp_fds.push_back(BindSocket(SOCK_DGRAM, addr, udp_port));
      Log("Started UDP server on port " + addr + " " + std::to_string(udp_port));
    }
  }

  http::ServerOptions opts;
  opts.host = "0.0.0.0";
  opts.port = http_port;
  if (!f.Str("tls-cert-file").empty()) {
    opts.tls = http::TlsServerOptions{.cert_file = f.Str("tls-cert-file"),
                                      .key_file = f.Str("tls-private-key-file")};
  }
  http::Server server(opts,
                      [st](http::Request& r, http::Response& res) { NetexecHandle(*st, r, res); });
  server.Start();
  Log("Started HTTP server on port " + std::to_string(http_port));

  for (auto& fd : udp_fds) {
    int raw = fd.get();
    std::thread([st, raw] { UdpServe(*st, raw); }).detach();
  }
  if (!udp_fds.empty()) st->server_ready = true;

  for (;;) {
    int sig = WaitSignal();
    if (sig == SIGTERM) {
      st->sigterm_received = true;
      if (delay > 0) {
        Log("Sleeping " + std::to_string(delay) + " seconds before terminating...");
        std::this_thread::sleep_for(std::chrono::seconds(delay));
      }
      ExitNow(0);
    }
    DieOfSignal(sig);
  }
}

// ---- serve-hostname -------------------------------------------------------------

int ServeHostname(const std::vector<std::string>& args) {
  Flags f;
  f.Add("port", "9376")
      .Add("tcp", "false", true)
      .Add("udp", "false", true)
      .Add("http", "true", true)
      .Add("close", "false", true);
  f.Parse(args, 1);
  int port = f.Int("port");
  bool tcp = f.Bool("tcp"), udp = f.Bool("udp"), use_http = f.Bool("http"),
       close_conn = f.Bool("close");
  if (!tcp && !udp && !use_http)
    throw Error::Invalid("Must specify at least one of --tcp, --udp or --http");
  if (tcp && use_http)
    throw Error::Invalid("Can't serve TCP and HTTP on the same port; pass --http=false");
  std::string hostname = Hostname();
  BlockTermSignals();
  std::unique_ptr<http::Server> server;
  // Every socket is bound before any is served: a client that reached one
  // (a test, a readiness probe) finds the others ready too.
  std::shared_ptr<UniqueFd> tcp_fd, udp_fd;
  if (tcp) tcp_fd = std::make_shared<UniqueFd>(BindSocket(SOCK_STREAM, "", port));
  if (udp) udp_fd = std::make_shared<UniqueFd>(BindSocket(SOCK_DGRAM, "", port));
  if (udp) {
    std::thread([fd = udp_fd, hostname] {
      char buf[1024];
      for (;;) {
        sockaddr_storage from{};
        socklen_t flen = sizeof from;
        ssize_t n =
            ::recvfrom(fd->get(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &flen);
        if (n < 0) {
          if (errno == EINTR) continue;
          ExitNow(1);
        }
        ::sendto(fd->get(), hostname.data(), hostname.size(), 0, reinterpret_cast<sockaddr*>(&from),
                 flen);
      }
    }).detach();
    Log("Serving on port " + std::to_string(port) + ".");
  }
  if (tcp) {
    std::thread([fd = tcp_fd, hostname] {
      for (;;) {
        int c = ::accept4(fd->get(), nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) {
          if (errno == EINTR || errno == ECONNABORTED) continue;
          ExitNow(1);
        }
        (void)!::send(c, hostname.data(), hostname.size(), MSG_NOSIGNAL);
        ::close(c);
      }
    }).detach();
    Log("Serving on port " + std::to_string(port) + ".");
  }
  if (use_http) {
    http::ServerOptions opts;
    opts.host = "0.0.0.0";
    opts.port = port;
    server = std::make_unique<http::Server>(
        opts, [hostname, close_conn](http::Request&, http::Response& res) {
          if (close_conn) res.headers.emplace("Connection", "close");
          Text(res, 200, hostname);
        });
    server->Start();
    Log("Serving on port " + std::to_string(port) + ".");
  }
  int sig = WaitSignal();
  if (sig != SIGTERM) DieOfSignal(sig);
  Log("Shutting down after receiving signal: terminated.");
  Log("Awaiting pod deletion.");
  std::this_thread::sleep_for(std::chrono::seconds(60));
  return 0;
}

// ---- connect ---------------------------------------------------------------------

int Connect(const std::vector<std::string>& args) {
  Flags f;
  f.Add("timeout", "5s")
      .Add("protocol", "tcp")
      .Add("udp-data", "hostname")
      .Add("sctp", "false", true);
  f.Parse(args, 1);
  if (f.positional().size() != 1) {
    std::cerr << "Usage: agnhost connect [--timeout=D] [--protocol=tcp|udp] host:port\n";
    return 1;
  }
  const std::string dest = f.positional()[0];
  long long timeout_ms = ParseGoDurationMs(f.Str("timeout"));
  std::string protocol = f.Str("protocol");
  if (f.Bool("sctp")) protocol = "sctp";
  if (protocol != "" && protocol != "tcp" && protocol != "udp") {
    std::cerr << "Unsupported protocol\n";
    return 1;
  }
  bool udp = protocol == "udp";
  std::string host, port;
  if (!SplitHostPort(dest, host, port)) {
    std::cerr << "Could not split host and port: address " << dest << ": missing port in address\n";
    return 1;
  }
  sockaddr_storage addr{};
  socklen_t len = 0;
  std::string err;
  if (!Resolve(host, port, udp ? SOCK_DGRAM : SOCK_STREAM, addr, len, err)) {
    std::cerr << "DNS: " << err << "\n";
    return 1;
  }
  UniqueFd fd(
      ::socket(addr.ss_family, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) {
    std::cerr << "OTHER: socket: " << std::strerror(errno) << "\n";
    return 1;
  }
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  auto wait = [&](short events) -> int {  // 1 ready, 0 timeout
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return 0;
      pollfd p{fd.get(), events, 0};
      int rc = ::poll(&p, 1, static_cast<int>(left.count()));
      if (rc < 0 && errno == EINTR) continue;
      return rc > 0 ? 1 : 0;
    }
  };
  int rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), len);
  int e = rc == 0 ? 0 : errno;
  if (!udp) {
    if (e == EINPROGRESS) {
      if (!wait(POLLOUT)) {
        std::cerr << "TIMEOUT\n";
        return 1;
      }
      socklen_t elen = sizeof e;
      ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &e, &elen);
    }
    if (e == 0) return 0;
    if (e == ECONNREFUSED) {
      std::cerr << "REFUSED\n";
      return 1;
    }
    if (e == ETIMEDOUT) {
      std::cerr << "TIMEOUT\n";
      return 1;
    }
    std::cerr << "OTHER: dial tcp " << dest << ": connect: " << std::strerror(e) << "\n";
    return 1;
  }
  if (e != 0) {
    std::cerr << "OTHER: dial udp " << dest << ": " << std::strerror(e) << "\n";
    return 1;
  }
  std::string data = f.Str("udp-data") + "\n";
  if (::send(fd.get(), data.data(), data.size(), 0) < 0) {
    std::cerr << (errno == ECONNREFUSED
                      ? "REFUSED\n"
                      : "UNKNOWN: write: " + std::string(std::strerror(errno)) + "\n");
    return 1;
  }
  if (!wait(POLLIN)) {
    std::cerr << "TIMEOUT\n";
    return 1;
  }
  char buf[1024];
  ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
  if (n < 0) {
    if (errno == ECONNREFUSED) {
      std::cerr << "REFUSED\n";
    } else {
      std::cerr << "UNKNOWN: read: " << std::strerror(errno) << "\n";
    }
    return 1;
  }
  return 0;
}

// ---- porter -------------------------------------------------------------------------

int Porter(const std::vector<std::string>& args) {
  Flags f;
  f.Add("json-response", "false", true)
      .Add("cert-file", "/localhost.crt")
      .Add("key-file", "/localhost.key");
  f.Parse(args, 1);
  bool json = f.Bool("json-response");
  std::vector<std::pair<std::string, std::string>> plain, tls;
  for (char** e = environ; e && *e; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq == std::string::npos) continue;
    std::string key = kv.substr(0, eq), value = kv.substr(eq + 1);
    if (key.rfind("SERVE_PORT_", 0) == 0) plain.emplace_back(key.substr(11), value);
    if (key.rfind("SERVE_TLS_PORT_", 0) == 0) tls.emplace_back(key.substr(15), value);
  }
  BlockTermSignals();
  std::vector<std::unique_ptr<http::Server>> servers;
  auto serve = [&](const std::string& port_s, const std::string& value, bool use_tls) {
    int port = 0;
    if (!ParseInt(port_s, port)) throw Error::Invalid("port \"" + port_s + "\" is not a number");
    http::ServerOptions opts;
    opts.host = "0.0.0.0";
    opts.port = port;
    if (use_tls)
      opts.tls =
          http::TlsServerOptions{.cert_file = f.Str("cert-file"), .key_file = f.Str("key-file")};
    servers.push_back(
        std::make_unique<http::Server>(opts, [value, json](http::Request& r, http::Response& res) {
          if (json) {
            res.Set(200, "application/json", GoJson(Json{{"method", r.method}, {"body", value}}));
          } else {
            Text(res, 200, value);
          }
        }));
    servers.back()->Start();
    Log("Serving " + value + " on port " + port_s);
  };
  for (auto& [p, v] : plain) serve(p, v, false);
  for (auto& [p, v] : tls) serve(p, v, true);
  DieOfSignal(WaitSignal());
}

// ---- inclusterclient -----------------------------------------------------------------

// klog's line: "I1207 22:30:00.123456   4711 main.go:58] msg" on stderr.
void Klog(char severity, int line, const std::string& msg) {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  std::tm tm{};
  ::localtime_r(&now.tv_sec, &tm);
  char ts[32];
  std::strftime(ts, sizeof ts, "%m%d %H:%M:%S", &tm);
  char head[96];
  std::snprintf(head, sizeof head, "%c%s.%06ld %7d main.go:%d] ", severity, ts,
                now.tv_nsec / 1000, static_cast<int>(::getpid()), line);
  std::string out = head + msg + "\n";
  (void)!::write(2, out.data(), out.size());
}

// What the upstream image logs of an Authorization header, so that a test
// sees the token change without the token in the log: base64url (no
// padding) of sha256("salt|" + header).
std::string AuthzHeaderHash(const std::string& header) {
  const std::string salted = "salt|" + header;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest(salted.data(), salted.size(), digest, &n, EVP_sha256(), nullptr) != 1) {
    throw Error::Internal("sha256 failed");
  }
  std::string b64 = Base64Encode(std::string_view(reinterpret_cast<const char*>(digest), n));
  for (char& c : b64) c = c == '+' ? '-' : c == '/' ? '_' : c;
  while (!b64.empty() && b64.back() == '=') b64.pop_back();
  return b64;
}

// Polls the API's /healthz every --poll-interval seconds (the first call
// after one interval, as Go's time.Tick) with client-go's in-cluster
// config: KUBERNETES_SERVICE_HOST and _PORT, the service account's CA and
// token. The token file is read again for every call (client-go re-reads
// it at most once a minute), so a rotated token is used at once; upstream's
// token-rotation test reads the authz_header lines.
int InClusterClient(const std::vector<std::string>& args) {
  Flags f;
  f.Add("poll-interval", "30");
  f.Parse(args, 1);
  int interval = 0;
  if (!ParseInt(f.Str("poll-interval"), interval) || interval <= 0) {
    throw Error::Invalid("invalid argument \"" + f.Str("poll-interval") +
                         "\" for \"--poll-interval\" flag");
  }
  Klog('I', 58, "started");
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  std::string dir = "/var/run/secrets/kubernetes.io/serviceaccount/";
  const char* built_in_dir = std::getenv(kBuiltInServiceAccountDirEnv);
  if (!std::filesystem::exists(dir + "token") && built_in_dir != nullptr && *built_in_dir) {
    dir = std::string(built_in_dir) + "/";
  }
  auto fatal = [](const std::string& msg) {
    Log("err: " + msg);
    ExitNow(1);
  };
  if (host == nullptr || port == nullptr || !*host || !*port) {
    fatal(
        "unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and "
        "KUBERNETES_SERVICE_PORT must be defined");
  }
  auto read_token = [&]() -> std::optional<std::string> {
    std::ifstream in(dir + "token");
    if (!in) return std::nullopt;
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  if (!read_token()) fatal("open " + dir + "token: no such file or directory");
  std::string h = host;
  if (h.find(':') != std::string::npos) h = "[" + h + "]";  // an IPv6 address
  http::ClientOptions opts;
  opts.base_url = "https://" + h + ":" + port;
  opts.ca_file = dir + "ca.crt";
  http::HttpClient client(opts);

  BlockTermSignals();
  const sigset_t term = TermSignals();
  const timespec period{interval, 0};
  while (true) {
    int sig = ::sigtimedwait(&term, nullptr, &period);
    if (sig > 0) DieOfSignal(sig);
    Klog('I', 84, "calling /healthz");
    std::optional<std::string> token = read_token();
    http::Headers headers;
    if (token && !token->empty()) {
      const std::string authz = "Bearer " + *token;
      Klog('I', 99, "authz_header=" + AuthzHeaderHash(authz));
      headers.emplace("Authorization", authz);
    } else {
      Klog('E', 101, "authz_header=<empty>");
    }
    std::string failure;
    try {
      http::ClientResponse r = client.Get("/healthz", headers);
      if (r.status != 200) {
        failure = "the server responded with the status code " + std::to_string(r.status) +
                  "\n" + r.body;
      }
    } catch (const std::exception& e) {
      failure = e.what();
    }
    if (!failure.empty()) {
      Klog('E', 87, "status=failed");
      Klog('E', 88, "error checking /healthz: " + failure + "\n");
    }
  }
}

// ---- pause and the resolver helpers ----------------------------------------------------

int Pause() {
  BlockTermSignals();
  std::cout << "Paused" << std::endl;
  int sig = WaitSignal();
  std::cerr << "Shutting down, got signal: " << (sig == SIGINT ? "Interrupt" : "Terminated")
            << "\n";
  return sig == SIGINT ? 1 : 2;
}

std::string ReadFileOrThrow(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ErrnoError(errno, "open " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

long long ParseGoDurationMs(const std::string& input) {
  std::string s = input;
  bool neg = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    neg = s[0] == '-';
    s = s.substr(1);
  }
  if (s == "0") return 0;
  if (s.empty()) throw Error::Invalid("time: invalid duration " + GoQuote(input));
  static const std::map<std::string, double> kUnitMs = {{"ns", 1e-6}, {"us", 1e-3},  {"µs", 1e-3},
                                                        {"μs", 1e-3}, {"ms", 1},     {"s", 1000},
                                                        {"m", 60000}, {"h", 3600000}};
  double total = 0;
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    if (start == i) throw Error::Invalid("time: invalid duration " + GoQuote(input));
    double n = std::stod(s.substr(start, i - start));
    size_t ustart = i;
    while (i < s.size() && !std::isdigit(static_cast<unsigned char>(s[i])) && s[i] != '.') ++i;
    auto it = kUnitMs.find(s.substr(ustart, i - ustart));
    if (it == kUnitMs.end()) {
      throw Error::Invalid(ustart == i ? "time: missing unit in duration " + GoQuote(input)
                                       : "time: unknown unit in duration " + GoQuote(input));
    }
    total += n * it->second;
  }
  long long ms = static_cast<long long>(std::llround(total));
  return neg ? -ms : ms;
}

std::string DnsSuffixList(const std::string& resolv_conf) {
  std::stringstream ss(resolv_conf);
  std::string line;
  while (std::getline(ss, line)) {
    if (line.rfind("search", 0) != 0) continue;
    std::stringstream words(line.substr(6));
    std::string w, out;
    while (words >> w) out += (out.empty() ? "" : ",") + w;
    return out;
  }
  throw Error::NotFound("Could not find DNS search list!");
}

std::string DnsServerList(const std::string& resolv_conf) {
  std::stringstream ss(resolv_conf);
  std::string line, out;
  bool found = false;
  while (std::getline(ss, line)) {
    if (line.rfind("nameserver", 0) != 0) continue;
    std::stringstream words(line.substr(10));
    std::string w;
    while (words >> w) {
      out += (out.empty() ? "" : ",") + w;
      found = true;
    }
  }
  if (!found) throw Error::NotFound("Could not find DNS search list!");
  return out;
}

std::string CanonicalHeaderKey(const std::string& key) {
  std::string out = key;
  bool upper = true;
  for (auto& c : out) {
    if (c == ' ') return key;  // Go leaves keys with spaces alone
    c = static_cast<char>(upper ? std::toupper(static_cast<unsigned char>(c))
                                : std::tolower(static_cast<unsigned char>(c)));
    upper = c == '-';
  }
  return out;
}

int RunAgnhost(const std::vector<std::string>& args) {
  std::string sub = args.empty() ? "pause" : args[0];
  try {
    if (sub == "pause") return Pause();
    if (sub == "netexec") return Netexec(args);
    if (sub == "serve-hostname") return ServeHostname(args);
    if (sub == "connect") return Connect(args);
    if (sub == "porter") return Porter(args);
    if (sub == "webhook") return RunWebhook(args);
    if (sub == "inclusterclient") return InClusterClient(args);
    if (sub == "dns-suffix") {
      std::cout << DnsSuffixList(ReadFileOrThrow("/etc/resolv.conf")) << std::endl;
      return 0;
    }
    if (sub == "dns-server-list") {
      std::cout << DnsServerList(ReadFileOrThrow("/etc/resolv.conf")) << std::endl;
      return 0;
    }
    if (sub == "etc-hosts") {
      std::cout << ReadFileOrThrow("/etc/hosts") << std::endl;
      return 0;
    }
  } catch (const std::exception& e) {
    std::cerr << "agnhost " << sub << ": " << e.what() << std::endl;
    return 1;
  }
  std::cerr << "Error: unknown command \"" << sub << "\" for \"agnhost\"" << std::endl;
  return 1;
}

}  // namespace kin::agnhost
