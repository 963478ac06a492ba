#include "cmd/pod_io_cli.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <list>
#include <memory>
#include <mutex>
#include <thread>

#include "base/error.h"
#include "base/fd.h"
#include "base/file.h"
#include "base/http_client.h"
#include "base/spdy.h"
#include "base/strings.h"
#include "base/websocket.h"
#include "base/websocket_client.h"
#include "base/yaml.h"
#include "cmd/kubeconfig.h"

namespace kin::cmd {
namespace {

namespace fs = std::filesystem;

std::string StringAt(const Json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

const Json* NamedEntry(const Json& kc, const char* list, const std::string& name) {
  auto it = kc.find(list);
  if (it == kc.end() || !it->is_array()) return nullptr;
  for (const auto& e : *it) {
    if (StringAt(e, "name") == name) return &e;
  }
  return nullptr;
}

// A kubeconfig credential: inline base64 (*-data) or a file path relative
// to the kubeconfig's directory.
std::string PemField(const Json& obj, const std::string& field, const fs::path& base_dir) {
  std::string data = StringAt(obj, (field + "-data").c_str());
  if (!data.empty()) {
    auto decoded = Base64Decode(data);
    if (!decoded) throw Error::BadRequest(field + "-data: illegal base64 data");
    return *decoded;
  }
  std::string file = StringAt(obj, field.c_str());
  if (file.empty()) return "";
  fs::path p(file);
  if (p.is_relative()) p = base_dir / p;
  auto content = ReadFileIfExists(p.string());
  if (!content) throw Error::NotFound(field + ": unable to read " + p.string());
  return *content;
}

// PEM material as files, for libcurl: a private temporary directory, removed
// on destruction.
class TlsFiles {
 public:
  explicit TlsFiles(const ApiTarget& t) {
    if (t.ca_pem.empty() && t.cert_pem.empty() && t.key_pem.empty()) return;
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/kin-tls-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) throw ErrnoError(errno, "mkdtemp " + tmpl);
    dir_ = tmpl;
    if (!t.ca_pem.empty()) ca_ = Write("ca.crt", t.ca_pem);
    if (!t.cert_pem.empty()) cert_ = Write("client.crt", t.cert_pem);
    if (!t.key_pem.empty()) key_ = Write("client.key", t.key_pem);
  }
  ~TlsFiles() {
    if (dir_.empty()) return;
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  TlsFiles(const TlsFiles&) = delete;
  TlsFiles& operator=(const TlsFiles&) = delete;

  http::ClientOptions ClientOptions(const std::string& server, long timeout_ms) const {
    http::ClientOptions o;
    o.base_url = server;
    o.ca_file = ca_;
    o.cert_file = cert_;
    o.key_file = key_;
    o.timeout_ms = timeout_ms;
    return o;
  }

 private:
  std::string Write(const std::string& name, const std::string& content) {
    std::string path = dir_ + "/" + name;
    WriteFileAtomic(path, content, 0600);
    return path;
  }
  std::string dir_, ca_, cert_, key_;
};

std::string TrimSlash(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

std::string PodPath(const std::string& ns, const std::string& pod) {
  return "/api/v1/namespaces/" + http::UrlEncode(ns) + "/pods/" + http::UrlEncode(pod);
}

std::string Namespace(const ApiTarget& t, const std::string& requested) {
  if (!requested.empty()) return requested;
  return t.namespace_.empty() ? "default" : t.namespace_;
}

Json GetPod(const TlsFiles& files, const ApiTarget& t, const std::string& ns,
            const std::string& pod) {
  http::HttpClient client(files.ClientOptions(TrimSlash(t.server), 30000));
  auto resp = client.Get(PodPath(ns, pod), {{"Accept", "application/json"}});
  if (resp.status != 200)
    throw HttpStatusError(resp.status, ErrorFromHttpStatus(resp.status, resp.body));
  Json j = Json::parse(resp.body, nullptr, false);
  if (!j.is_object()) throw Error::Internal("the server returned a pod that is not JSON");
  return j;
}

std::vector<std::string> ContainerNames(const Json& pod, const char* list) {
  std::vector<std::string> names;
  const Json* spec = pod.contains("spec") ? &pod["spec"] : nullptr;
  if (spec == nullptr || !spec->contains(list) || !(*spec)[list].is_array()) return names;
  for (const auto& c : (*spec)[list]) names.push_back(StringAt(c, "name"));
  return names;
}

// kubectl's default container: the kubectl.kubernetes.io/default-container
// annotation, else the first container; a note on stderr when there was a
// choice (kubectl: `Defaulted container "a" out of: a, b, init (init)`).
std::string DefaultContainer(const Json& pod, bool quiet,
                             const std::function<void(const std::string&)>& note) {
  auto containers = ContainerNames(pod, "containers");
  std::string chosen;
  if (pod.contains("metadata")) {
    const Json& annotations = pod["metadata"].value("annotations", Json::object());
    std::string annotated = StringAt(annotations, "kubectl.kubernetes.io/default-container");
    for (const auto& c : containers) {
      if (c == annotated) chosen = annotated;
    }
    if (!chosen.empty()) return chosen;
  }
  if (containers.empty()) return "";
  chosen = containers[0];
  auto inits = ContainerNames(pod, "initContainers");
  auto ephemeral = ContainerNames(pod, "ephemeralContainers");
  if (!quiet && containers.size() + inits.size() + ephemeral.size() > 1) {
    std::string all;
    for (const auto& c : containers) all += (all.empty() ? "" : ", ") + c;
    for (const auto& c : ephemeral) all += ", " + c + " (ephem)";
    for (const auto& c : inits) all += ", " + c + " (init)";
    note("Defaulted container \"" + chosen + "\" out of: " + all + "\n");
  }
  return chosen;
}

bool WriteAllFd(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t w = ::write(fd, data.data(), data.size());
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        pollfd p{fd, POLLOUT, 0};
        ::poll(&p, 1, -1);
        continue;
      }
      return false;
    }
    data.remove_prefix(w);
  }
  return true;
}

// ---- exec: terminal handling ----

// Raw mode on a terminal for the life of the object (restored also when an
// exception unwinds through it).
class RawTerminal {
 public:
  explicit RawTerminal(int fd) : fd_(fd) {
    if (::tcgetattr(fd, &saved_) != 0) return;
    termios raw = saved_;
    ::cfmakeraw(&raw);
    active_ = ::tcsetattr(fd, TCSANOW, &raw) == 0;
  }
  ~RawTerminal() {
    if (active_) ::tcsetattr(fd_, TCSANOW, &saved_);
  }
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;

 private:
  int fd_;
  termios saved_{};
  bool active_ = false;
};

std::atomic<int> g_winch_pipe{-1};

void OnWinch(int) {
  int fd = g_winch_pipe.load();
  if (fd >= 0) {
    int saved = errno;
    [[maybe_unused]] ssize_t n = ::write(fd, "w", 1);
    errno = saved;
  }
}

// Reports SIGWINCH on a pipe while alive; restores the previous handler.
class WinchWatch {
 public:
  WinchWatch() {
    int p[2];
    if (::pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) return;
    read_.reset(p[0]);
    write_.reset(p[1]);
    g_winch_pipe = write_.get();
    struct sigaction sa {};
    sa.sa_handler = OnWinch;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    installed_ = ::sigaction(SIGWINCH, &sa, &old_) == 0;
  }
  ~WinchWatch() {
    if (installed_) ::sigaction(SIGWINCH, &old_, nullptr);
    g_winch_pipe = -1;
  }
  int fd() const { return read_.get(); }

 private:
  UniqueFd read_, write_;
  struct sigaction old_ {};
  bool installed_ = false;
};

std::optional<std::string> TerminalSizeMessage(int out_fd, int in_fd) {
  winsize ws{};
  if (::ioctl(out_fd, TIOCGWINSZ, &ws) != 0 && ::ioctl(in_fd, TIOCGWINSZ, &ws) != 0) {
    return std::nullopt;
  }
  return Json{{"Width", ws.ws_col}, {"Height", ws.ws_row}}.dump();
}

std::string ChannelFrame(uint8_t channel, std::string_view data) {
  std::string m(1, static_cast<char>(channel));
  m.append(data);
  return m;
}

// ---- port-forward ----

struct Listener {
  UniqueFd fd;
  std::string shown;  // "127.0.0.1:8080" / "[::1]:8080"
  int local_port = 0;
  int remote_port = 0;
};

UniqueFd Listen(const std::string& ip, int port, int& bound_port) {
  sockaddr_storage ss{};
  socklen_t len;
  int family;
  if (ip.find(':') != std::string::npos) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    if (::inet_pton(AF_INET6, ip.c_str(), &a->sin6_addr) != 1) {
      throw Error::BadRequest(ip + " is not a valid IP");
    }
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(port));
    if (::inet_pton(AF_INET, ip.c_str(), &a->sin_addr) != 1) {
      throw Error::BadRequest(ip + " is not a valid IP");
    }
    len = sizeof *a;
  }
  UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) throw ErrnoError(errno, "socket");
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (family == AF_INET6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  std::string shown =
      family == AF_INET6 ? "[" + ip + "]:" + std::to_string(port) : ip + ":" + std::to_string(port);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    throw ErrnoError(errno,
                     "unable to listen on port " + std::to_string(port) + ": listen tcp " + shown);
  }
  if (::listen(fd.get(), 128) != 0) throw ErrnoError(errno, "listen " + shown);
  sockaddr_storage got{};
  socklen_t got_len = sizeof got;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&got), &got_len);
  bound_port = family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&got)->sin6_port)
                                  : ntohs(reinterpret_cast<sockaddr_in*>(&got)->sin_port);
  return fd;
}

// One forwarded connection: a WebSocket carrying a SPDY session with an
// "error" stream (id 1) and a "data" stream (id 3), as kubectl opens them.
class ForwardedConnection {
 public:
  ForwardedConnection(UniqueFd local, int local_port, int remote_port, int request_id)
      : local_(std::move(local)),
        local_port_(local_port),
        remote_port_(remote_port),
        request_id_(request_id) {}

  // Runs until both directions ended, the tunnel broke or Stop().
  void Run(const WebSocketClientOptions& ws_options,
           const std::function<void(const std::string&)>& report) {
    try {
      auto ws = WebSocketClient::Connect(ws_options);
      {
        std::lock_guard lock(mu_);
        ws_ = std::move(ws);
        if (stopped_) ws_->Shutdown();
      }
    } catch (const std::exception& e) {
      auto* k = dynamic_cast<const Error*>(&e);
      report("an error occurred forwarding " + std::to_string(local_port_) + " -> " +
             std::to_string(remote_port_) + ": " + (k ? k->message() : std::string(e.what())));
      return;
    }
    const std::string port = std::to_string(remote_port_);
    const std::string request_id = std::to_string(request_id_);
    SpdyFrame error_syn{
        .type = SpdyFrameType::kSynStream,
        .stream_id = kErrorStream,
        .headers = {{"streamtype", "error"}, {"port", port}, {"requestid", request_id}}};
    SpdyFrame data_syn{
        .type = SpdyFrameType::kSynStream,
        .stream_id = kDataStream,
        .headers = {{"streamtype", "data"}, {"port", port}, {"requestid", request_id}}};
    // kubectl half-closes the error stream at once: only the server writes it.
    SendFrame(error_syn);
    SendFrame({.type = SpdyFrameType::kData, .flags = spdy::kFlagFin, .stream_id = kErrorStream});
    SendFrame(data_syn);

    std::thread reader([&] { ReadTunnel(report); });
    char buf[32 * 1024];
    while (true) {
      ssize_t n = ::read(local_.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      if (!SendFrame({.type = SpdyFrameType::kData,
                      .stream_id = kDataStream,
                      .data = std::string(buf, static_cast<size_t>(n))})) {
        break;
      }
    }
    SendFrame({.type = SpdyFrameType::kData, .flags = spdy::kFlagFin, .stream_id = kDataStream});
    {
      std::unique_lock lock(mu_);
      done_cv_.wait(lock, [&] { return remote_done_ || tunnel_closed_ || stopped_; });
    }
    ws_->SendClose();
    ws_->Shutdown();
    reader.join();
    ::shutdown(local_.get(), SHUT_RDWR);
  }

  void Stop() {
    std::lock_guard lock(mu_);
    stopped_ = true;
    ::shutdown(local_.get(), SHUT_RDWR);
    if (ws_) ws_->Shutdown();
    done_cv_.notify_all();
  }

  std::atomic<bool> finished{false};

 private:
  static constexpr uint32_t kErrorStream = 1;
  static constexpr uint32_t kDataStream = 3;

  bool SendFrame(const SpdyFrame& f) {
    std::lock_guard lock(send_mu_);
    // One encoder: its header compressor must see frames in sending order.
    return ws_->SendBinary(encoder_.Encode(f));
  }

  void ReadTunnel(const std::function<void(const std::string&)>& report) {
    SpdyDecoder decoder;
    std::string error_text;
    auto finish_remote = [&] {
      ::shutdown(local_.get(), SHUT_WR);
      std::lock_guard lock(mu_);
      remote_done_ = true;
      done_cv_.notify_all();
    };
    // The server writes a forwarding error, then ends the data stream and
    // the error stream: report it once either ends, and drop the local
    // connection as kubectl does.
    auto flush_error = [&] {
      if (error_text.empty()) return;
      report("an error occurred forwarding " + std::to_string(local_port_) + " -> " +
             std::to_string(remote_port_) + ": " + error_text);
      error_text.clear();
      ::shutdown(local_.get(), SHUT_RDWR);
      finish_remote();
    };
    try {
      while (auto m = ws_->Receive(-1)) {
        decoder.Feed(m->data);
        while (auto f = decoder.Next()) {
          switch (f->type) {
            case SpdyFrameType::kData:
              if (f->stream_id == kDataStream) {
                if (!f->data.empty() && !WriteAllFd(local_.get(), f->data)) {
                  SendFrame({.type = SpdyFrameType::kRstStream,
                             .stream_id = kDataStream,
                             .status = spdy::kCancel});
                  finish_remote();
                }
                if (f->flags & spdy::kFlagFin) {
                  flush_error();
                  finish_remote();
                }
              } else if (f->stream_id == kErrorStream) {
                error_text += f->data;
                if (f->flags & spdy::kFlagFin) flush_error();
              }
              break;
            case SpdyFrameType::kRstStream:
              if (f->stream_id == kDataStream) {
                flush_error();
                finish_remote();
              }
              break;
            case SpdyFrameType::kPing:
              SendFrame({.type = SpdyFrameType::kPing, .ping_id = f->ping_id});
              break;
            case SpdyFrameType::kGoAway:
              finish_remote();
              break;
            default:  // SYN_REPLY, SETTINGS, WINDOW_UPDATE, HEADERS
              break;
          }
        }
      }
    } catch (const std::exception& e) {
      report("an error occurred forwarding " + std::to_string(local_port_) + " -> " +
             std::to_string(remote_port_) + ": " + e.what());
    }
    flush_error();
    ::shutdown(local_.get(), SHUT_RDWR);  // the local reader ends too
    std::lock_guard lock(mu_);
    tunnel_closed_ = true;
    done_cv_.notify_all();
  }

  UniqueFd local_;
  const int local_port_, remote_port_, request_id_;
  std::unique_ptr<WebSocketClient> ws_;
  std::mutex send_mu_;
  SpdyEncoder encoder_;  // guarded by send_mu_
  std::mutex mu_;
  std::condition_variable done_cv_;
  bool remote_done_ = false;    // guarded by mu_
  bool tunnel_closed_ = false;  // guarded by mu_
  bool stopped_ = false;        // guarded by mu_
};

WebSocketClientOptions WsOptions(const ApiTarget& t, const std::string& path_and_query,
                                 std::vector<std::string> protocols) {
  WebSocketClientOptions o;
  o.url = TrimSlash(t.server) + path_and_query;
  o.protocols = std::move(protocols);
  o.ca_pem = t.ca_pem;
  o.cert_pem = t.cert_pem;
  o.key_pem = t.key_pem;
  return o;
}

}  // namespace

std::string KubectlErrorText(const std::exception& e) {
  if (auto* s = dynamic_cast<const HttpStatusError*>(&e)) {
    return "Error from server (" + std::string(s->reason()) + "): " + s->message();
  }
  if (auto* k = dynamic_cast<const Error*>(&e)) return "error: " + k->message();
  return std::string("error: ") + e.what();
}

ApiTarget ApiTargetFromKubeconfig(const std::string& path, const std::string& context) {
  const std::string file = KubeconfigPath(path);
  Json kc = ReadKubeconfig(file);
  std::string name = context.empty() ? StringAt(kc, "current-context") : context;
  if (name.empty()) {
    throw Error::NotFound("no context chosen and current-context is not set in " + file);
  }
  const Json* ctx = NamedEntry(kc, "contexts", name);
  if (ctx == nullptr) {
    throw Error::NotFound("context was not found for specified context: " + name);
  }
  const Json c = ctx->value("context", Json::object());
  std::string cluster_name = StringAt(c, "cluster");
  const Json* cluster = NamedEntry(kc, "clusters", cluster_name);
  if (cluster == nullptr) {
    throw Error::NotFound("cluster \"" + cluster_name + "\" of context \"" + name +
                          "\" not found in " + file);
  }
  const fs::path base = fs::path(file).parent_path();
  const Json cl = cluster->value("cluster", Json::object());
  ApiTarget t;
  t.server = StringAt(cl, "server");
  if (t.server.empty()) throw Error::BadRequest("cluster \"" + cluster_name + "\" has no server");
  t.ca_pem = PemField(cl, "certificate-authority", base);
  std::string user_name = StringAt(c, "user");
  if (const Json* user = NamedEntry(kc, "users", user_name); user != nullptr) {
    const Json u = user->value("user", Json::object());
    t.cert_pem = PemField(u, "client-certificate", base);
    t.key_pem = PemField(u, "client-key", base);
  }
  t.namespace_ = StringAt(c, "namespace");
  return t;
}

std::optional<long> ParseGoDurationSeconds(const std::string& text) {
  if (text.empty()) return std::nullopt;
  if (text == "0") return 0;
  double total = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
      ++i;
    if (i == start) return std::nullopt;
    double value = std::strtod(text.substr(start, i - start).c_str(), nullptr);
    size_t unit_start = i;
    while (i < text.size() && !std::isdigit(static_cast<unsigned char>(text[i])) && text[i] != '.')
      ++i;
    std::string unit = text.substr(unit_start, i - unit_start);
    double scale;
    if (unit == "h") {
      scale = 3600;
    } else if (unit == "m") {
      scale = 60;
    } else if (unit == "s") {
      scale = 1;
    } else if (unit == "ms") {
      scale = 1e-3;
    } else if (unit == "us" || unit == "\xc2\xb5s") {
      scale = 1e-6;
    } else if (unit == "ns") {
      scale = 1e-9;
    } else {
      return std::nullopt;
    }
    total += value * scale;
  }
  return static_cast<long>(std::ceil(total - 1e-9));
}

std::pair<int, int> ParsePortMapping(const std::string& spec) {
  auto parse = [&](const std::string& s, const char* which) {
    char* end = nullptr;
    errno = 0;
    long v = std::strtol(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || errno != 0 || v < 0 || v > 65535) {
      throw Error::BadRequest(std::string("Error parsing ") + which + " port '" + s +
                              "': invalid port");
    }
    return static_cast<int>(v);
  };
  size_t colon = spec.find(':');
  std::string local = colon == std::string::npos ? spec : spec.substr(0, colon);
  std::string remote = colon == std::string::npos ? spec : spec.substr(colon + 1);
  int l = local.empty() ? 0 : parse(local, "local");
  int r = parse(remote, "remote");
  if (r == 0) throw Error::BadRequest("remote port must be > 0");
  return {l, r};
}

int RunLogs(const ApiTarget& target, const LogsOptions& o, std::ostream& out, std::ostream& err) {
  try {
    if (!o.since.empty() && !o.since_time.empty()) {
      throw Error::BadRequest("at most one of `sinceTime` or `sinceSeconds` may be specified");
    }
    std::optional<long> since_seconds;
    if (!o.since.empty()) {
      since_seconds = ParseGoDurationSeconds(o.since);
      if (!since_seconds) {
        throw Error::BadRequest("invalid argument \"" + o.since +
                                "\" for \"--since\" flag: time: invalid duration \"" + o.since +
                                "\"");
      }
    }
    if (o.limit_bytes < 0) throw Error::BadRequest("--limit-bytes must be greater than 0");
    const std::string ns = Namespace(target, o.namespace_);
    TlsFiles files(target);
    Json pod = GetPod(files, target, ns, o.pod);
    std::string container = o.container;
    if (container.empty()) {
      container =
          DefaultContainer(pod, false, [&](const std::string& note) { err << note << std::flush; });
    }

    std::string query;
    auto add = [&](const std::string& k, const std::string& v) {
      query += (query.empty() ? "?" : "&") + k + "=" + http::UrlEncode(v);
    };
    if (!container.empty()) add("container", container);
    if (o.follow) add("follow", "true");
    if (o.limit_bytes > 0) add("limitBytes", std::to_string(o.limit_bytes));
    if (o.previous) add("previous", "true");
    if (since_seconds) add("sinceSeconds", std::to_string(*since_seconds));
    if (!o.since_time.empty()) add("sinceTime", o.since_time);
    if (o.tail >= 0) add("tailLines", std::to_string(o.tail));
    if (o.timestamps) add("timestamps", "true");

    http::HttpClient client(files.ClientOptions(TrimSlash(target.server), 0));
    int status = 0;
    std::string error_body;
    int got = client.Stream(
        "GET", PodPath(ns, o.pod) + "/log" + query,
        [&](std::string_view chunk) {
          if (status != 200) {
            if (error_body.size() < (1 << 20)) error_body.append(chunk);
            return true;
          }
          out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
          out.flush();
          return static_cast<bool>(out);
        },
        {}, nullptr, o.should_stop,
        [&](const http::ClientResponse& head) { status = head.status; });
    if (status == 0) status = got;
    if (status != 200) throw HttpStatusError(status, ErrorFromHttpStatus(status, error_body));
    return 0;
  } catch (const std::exception& e) {
    err << KubectlErrorText(e) << "\n" << std::flush;
    return 1;
  }
}

int RunExec(const ApiTarget& target, const ExecOptions& o) {
  auto print_err = [&](const std::string& s) { WriteAllFd(o.err_fd, s); };
  try {
    if (o.pod.empty()) throw Error::BadRequest("pod, type/name or --filename must be specified");
    if (o.command.empty()) {
      throw Error::BadRequest("you must specify at least one command for the container");
    }
    const std::string ns = Namespace(target, o.namespace_);
    TlsFiles files(target);
    Json pod = GetPod(files, target, ns, o.pod);
    std::string phase = pod.contains("status") ? StringAt(pod["status"], "phase") : "";
    if (phase == "Succeeded" || phase == "Failed") {
      throw Error::BadRequest("cannot exec into a container in a completed pod; current phase is " +
                              phase);
    }
    std::string container = o.container;
    if (container.empty()) container = DefaultContainer(pod, o.quiet, print_err);

    bool tty = o.pass_stdin && o.tty;
    if (tty && !::isatty(o.in_fd)) {
      tty = false;
      if (!o.quiet)
        print_err("Unable to use a TTY - input is not a terminal or the right kind of file\n");
    }

    std::string query;
    auto add = [&](const std::string& k, const std::string& v) {
      query += (query.empty() ? "?" : "&") + k + "=" + http::UrlEncode(v);
    };
    for (const auto& arg : o.command) add("command", arg);
    if (!container.empty()) add("container", container);
    if (o.pass_stdin) add("stdin", "true");
    add("stdout", "true");
    if (!tty) add("stderr", "true");
    if (tty) add("tty", "true");

    auto ws =
        WebSocketClient::Connect(WsOptions(target, PodPath(ns, o.pod) + "/exec" + query,
                                           {k8s_channel::kV5Protocol, k8s_channel::kV4Protocol}));
    const bool v5 = ws->protocol() == k8s_channel::kV5Protocol;

    std::optional<Json> status;
    {
      std::optional<RawTerminal> raw;
      std::optional<WinchWatch> winch;
      if (tty) {
        raw.emplace(o.in_fd);
        winch.emplace();
        if (auto size = TerminalSizeMessage(o.out_fd, o.in_fd)) {
          ws->SendBinary(ChannelFrame(k8s_channel::kResize, *size));
        }
      }
      int stop_pipe[2];
      CheckSys(::pipe2(stop_pipe, O_CLOEXEC), "pipe2");
      UniqueFd stop_read(stop_pipe[0]), stop_write(stop_pipe[1]);
      std::thread pump;
      if (o.pass_stdin) {
        pump = std::thread([&] {
          bool in_open = true;
          char buf[32 * 1024];
          while (true) {
            pollfd p[3] = {{stop_read.get(), POLLIN, 0},
                           {winch ? winch->fd() : -1, POLLIN, 0},
                           {in_open ? o.in_fd : -1, POLLIN, 0}};
            if (::poll(p, 3, -1) < 0) {
              if (errno == EINTR) continue;
              return;
            }
            if (p[0].revents) return;
            if (p[1].revents) {
              char drain[64];
              while (::read(p[1].fd, drain, sizeof drain) > 0) {
              }
              if (auto size = TerminalSizeMessage(o.out_fd, o.in_fd)) {
                ws->SendBinary(ChannelFrame(k8s_channel::kResize, *size));
              }
            }
            if (p[2].revents) {
              ssize_t n = ::read(o.in_fd, buf, sizeof buf);
              if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
              if (n <= 0) {
                in_open = false;
                if (v5) ws->SendBinary(std::string("\xff\x00", 2));
                continue;
              }
              if (!ws->SendBinary(ChannelFrame(k8s_channel::kStdin,
                                               std::string_view(buf, static_cast<size_t>(n))))) {
                return;
              }
            }
          }
        });
      }
      std::string status_text;
      while (auto m = ws->Receive(-1)) {
        if (m->data.empty()) continue;
        uint8_t channel = static_cast<uint8_t>(m->data[0]);
        std::string_view data = std::string_view(m->data).substr(1);
        if (channel == k8s_channel::kStdout) {
          WriteAllFd(o.out_fd, data);
        } else if (channel == k8s_channel::kStderr) {
          WriteAllFd(o.err_fd, data);
        } else if (channel == k8s_channel::kError) {
          status_text.append(data);
        }
      }
      if (pump.joinable()) {
        [[maybe_unused]] ssize_t n = ::write(stop_write.get(), "x", 1);
        pump.join();
      }
      if (!status_text.empty()) {
        Json j = Json::parse(status_text, nullptr, false);
        if (!j.is_object()) throw Error::Internal("error executing remote command: " + status_text);
        status = std::move(j);
      }
    }  // terminal restored before anything is printed

    if (!status || StringAt(*status, "status") == "Success") return 0;
    if (StringAt(*status, "reason") == "NonZeroExitCode") {
      int code = 1;
      if (status->contains("details") && (*status)["details"].contains("causes")) {
        for (const auto& c : (*status)["details"]["causes"]) {
          if (StringAt(c, "reason") == "ExitCode") code = std::atoi(StringAt(c, "message").c_str());
        }
      }
      print_err("command terminated with exit code " + std::to_string(code) + "\n");
      return code;
    }
    throw Error::Internal("error executing remote command: " + StringAt(*status, "message"));
  } catch (const std::exception& e) {
    print_err(KubectlErrorText(e) + "\n");
    return 1;
  }
}

int RunPortForward(const ApiTarget& target, const PortForwardOptions& o, std::ostream& out,
                   std::ostream& err, const std::function<bool()>& should_stop) {
  std::mutex out_mu;
  auto say = [&](std::ostream& s, const std::string& line) {
    std::lock_guard lock(out_mu);
    s << line << "\n" << std::flush;
  };
  std::vector<Listener> listeners;
  std::string ns;
  try {
    if (o.ports.empty()) throw Error::BadRequest("at least 1 PORT is required for port-forward");
    std::vector<std::pair<int, int>> mappings;
    for (const auto& p : o.ports) mappings.push_back(ParsePortMapping(p));
    ns = Namespace(target, o.namespace_);
    TlsFiles files(target);
    Json pod = GetPod(files, target, ns, o.pod);
    std::string phase = pod.contains("status") ? StringAt(pod["status"], "phase") : "";
    if (phase != "Running") {
      throw Error::BadRequest("unable to forward port because pod is not running. Current status=" +
                              phase);
    }
    std::vector<std::string> ips;
    for (const auto& a : o.addresses) {
      if (a == "localhost") {
        ips.push_back("127.0.0.1");
        ips.push_back("::1");
      } else {
        ips.push_back(a);
      }
    }
    for (auto [local, remote] : mappings) {
      int port = local;
      bool any = false;
      std::string last_error;
      for (const auto& ip : ips) {
        try {
          int bound = 0;
          UniqueFd fd = Listen(ip, port, bound);
          port = bound;  // the other addresses share the port picked first
          std::string shown = ip.find(':') != std::string::npos
                                  ? "[" + ip + "]:" + std::to_string(bound)
                                  : ip + ":" + std::to_string(bound);
          listeners.push_back({std::move(fd), shown, bound, remote});
          any = true;
        } catch (const Error& e) {
          // kubectl tolerates a failing address of "localhost" (no IPv6).
          bool localhost_v6 =
              ip == "::1" && o.addresses.size() == 1 && o.addresses[0] == "localhost";
          if (!localhost_v6) throw;
          last_error = e.message();
        }
      }
      if (!any)
        throw Error::Unavailable("unable to listen on any of the requested ports: " + last_error);
    }
  } catch (const std::exception& e) {
    say(err, KubectlErrorText(e));
    return 1;
  }
  for (const auto& l : listeners) {
    say(out, "Forwarding from " + l.shown + " -> " + std::to_string(l.remote_port));
  }

  struct Running {
    std::shared_ptr<ForwardedConnection> conn;
    std::thread thread;
  };
  std::list<Running> running;
  int next_request_id = 0;
  auto reap = [&](bool all) {
    for (auto it = running.begin(); it != running.end();) {
      if (all || it->conn->finished) {
        if (all) it->conn->Stop();
        it->thread.join();
        it = running.erase(it);
      } else {
        ++it;
      }
    }
  };
  while (!(should_stop && should_stop())) {
    std::vector<pollfd> polls;
    for (const auto& l : listeners) polls.push_back({l.fd.get(), POLLIN, 0});
    int r = ::poll(polls.data(), polls.size(), 200);
    if (r < 0 && errno != EINTR) break;
    for (size_t i = 0; r > 0 && i < polls.size(); ++i) {
      if (!(polls[i].revents & POLLIN)) continue;
      UniqueFd local(::accept4(listeners[i].fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!local) continue;
      const Listener& l = listeners[i];
      say(out, "Handling connection for " + std::to_string(l.local_port));
      auto conn = std::make_shared<ForwardedConnection>(std::move(local), l.local_port,
                                                        l.remote_port, next_request_id++);
      auto ws_options = WsOptions(
          target, PodPath(ns, o.pod) + "/portforward?ports=" + std::to_string(l.remote_port),
          {k8s_channel::kPortForwardTunnelProtocol});
      running.push_back({conn, std::thread([conn, ws_options, &say, &err] {
                           conn->Run(ws_options,
                                     [&](const std::string& m) { say(err, "error: " + m); });
                           conn->finished = true;
                         })});
    }
    reap(false);
  }
  listeners.clear();
  reap(true);
  return 0;
}

}  // namespace kin::cmd
