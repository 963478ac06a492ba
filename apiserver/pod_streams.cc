#include "apiserver/pod_streams.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "apiserver/registry.h"
#include "base/error.h"
#include "base/process.h"
#include "base/log.h"
#include "base/spdy.h"
#include "base/websocket.h"

namespace kin::apiserver {

namespace {

using Clock = std::chrono::steady_clock;

// How often blocked loops look at their stop flag.
constexpr int kPollMs = 200;
// How long the kubelet waits for a client to open all streams.
constexpr auto kStreamCreationTimeout = std::chrono::seconds(30);
// How long we wait for the client to hang up after the final status, so
// that closing does not reset the connection under unread data.
constexpr int kLingerMs = 2000;
constexpr size_t kChunk = 32 * 1024;

// --- query parsing --------------------------------------------------------------

// As Go's strconv.ParseBool.
std::optional<bool> ParseBool(const std::string& v) {
  if (v == "1" || v == "t" || v == "T" || v == "true" || v == "TRUE" || v == "True") return true;
  if (v == "0" || v == "f" || v == "F" || v == "false" || v == "FALSE" || v == "False") {
    return false;
  }
  return std::nullopt;
}

bool QueryBool(const http::Request& req, const std::string& key) {
  if (!req.HasQuery(key)) return false;
  std::string v = req.Query(key);
  if (v.empty()) return false;
  auto b = ParseBool(v);
  if (!b) throw Error::BadRequest(key + ": invalid value \"" + v + "\": not a boolean");
  return *b;
}

std::optional<int64_t> QueryInt(const http::Request& req, const std::string& key) {
  if (!req.HasQuery(key)) return std::nullopt;
  std::string v = req.Query(key);
  errno = 0;
  char* end = nullptr;
  long long n = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno == ERANGE) {
    throw Error::BadRequest(key + ": invalid value \"" + v + "\": not an integer");
  }
  return n;
}

bool Digits(std::string_view s, size_t pos, size_t n) {
  if (pos + n > s.size()) return false;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
  }
  return true;
}

// RFC 3339: 2006-01-02T15:04:05[.frac](Z|+07:00).
bool IsRfc3339(std::string_view s) {
  if (!Digits(s, 0, 4) || s.size() < 20 || s[4] != '-' || !Digits(s, 5, 2) || s[7] != '-' ||
      !Digits(s, 8, 2) || (s[10] != 'T' && s[10] != 't') || !Digits(s, 11, 2) || s[13] != ':' ||
      !Digits(s, 14, 2) || s[16] != ':' || !Digits(s, 17, 2)) {
    return false;
  }
  size_t i = 19;
  if (i < s.size() && s[i] == '.') {
    size_t j = ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == j) return false;
  }
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) return i + 1 == s.size();
  return i + 6 == s.size() && (s[i] == '+' || s[i] == '-') && Digits(s, i + 1, 2) &&
         s[i + 3] == ':' && Digits(s, i + 4, 2);
}

Error InvalidLogOptions(const std::string& pod, const std::string& field,
                        const std::string& detail) {
  Error e = Error::Invalid("PodLogOptions \"" + pod + "\" is invalid: " + field + ": " + detail);
  e.WithDetails("PodLogOptions", pod).WithCause({"FieldValueInvalid", detail, field});
  return e;
}

// --- fd helpers -------------------------------------------------------------------

void SetNonBlocking(int fd) {
  if (fd < 0) return;
  int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

// Writes to a pipe, pty or socket that may be non-blocking, waiting for room
// in slices so `stop` is honoured. False when the reader is gone or stop.
bool WriteFd(int fd, std::string_view data, const std::atomic<bool>& stop, bool socket) {
  while (!data.empty()) {
    if (stop) return false;
    ssize_t n = socket ? ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT)
                       : ::write(fd, data.data(), data.size());
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, kPollMs);
      continue;
    }
    return false;
  }
  return true;
}

// --- logs -------------------------------------------------------------------------

// Runs PodIo::Logs on a worker thread and hands its output to the
// connection thread through a bounded queue. The destructor stops and joins
// the worker, whatever happened to the response.
class LogPump {
 public:
  LogPump(PodIo& io, std::string ns, std::string pod, LogOptions opts)
      : limit_(opts.limit_bytes.value_or(-1)) {
    worker_ =
        std::thread([this, &io, ns = std::move(ns), pod = std::move(pod), opts = std::move(opts)] {
          std::optional<Error> error;
          try {
            io.Logs(
                ns, pod, opts, [this](std::string_view d) { return Push(d); },
                [this] { return stop_.load(); });
          } catch (const Error& e) {
            error = e;
          } catch (const std::exception& e) {
            error = Error::Internal(e.what());
          }
          std::lock_guard lock(mu_);
          error_ = std::move(error);
          finished_ = true;
          cv_.notify_all();
        });
  }
  ~LogPump() { Stop(); }

  void Stop() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (worker_.joinable()) worker_.join();
  }

  // Waits until output is queued, the worker finished, or the timeout.
  void WaitFirst(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return !queue_.empty() || finished_; });
  }

  // An error the worker ended with before producing any output.
  std::optional<Error> EarlyError() {
    std::lock_guard lock(mu_);
    if (finished_ && queue_.empty() && !produced_) return error_;
    return std::nullopt;
  }

  void Serve(http::Stream& out) {
    while (true) {
      std::deque<std::string> batch;
      bool finished;
      {
        std::unique_lock lock(mu_);
        cv_.wait_for(lock, std::chrono::milliseconds(kPollMs),
                     [&] { return !queue_.empty() || finished_; });
        batch.swap(queue_);
        queued_bytes_ = 0;
        finished = finished_;
      }
      cv_.notify_all();
      for (const auto& piece : batch) {
        if (!out.Write(piece)) return Stop();
      }
      if (finished && batch.empty()) break;
      if (out.Done()) break;
    }
    Stop();
  }

 private:
  bool Push(std::string_view d) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return stop_ || queued_bytes_ < (1u << 20); });
    if (stop_) return false;
    // limitBytes holds even if the node agent overshoots.
    if (limit_ >= 0) {
      if (sent_ >= limit_) return false;
      d = d.substr(0, static_cast<size_t>(std::min<int64_t>(d.size(), limit_ - sent_)));
    }
    sent_ += static_cast<int64_t>(d.size());
    queue_.emplace_back(d);
    queued_bytes_ += d.size();
    produced_ = true;
    cv_.notify_all();
    return limit_ < 0 || sent_ < limit_;
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  size_t queued_bytes_ = 0;
  bool produced_ = false;
  bool finished_ = false;
  std::optional<Error> error_;
  const int64_t limit_;  // limitBytes, -1: none
  int64_t sent_ = 0;
  std::atomic<bool> stop_{false};
  std::thread worker_;
};

void ServeLog(PodIo& io, const std::string& ns, const std::string& name, http::Request& req,
              http::Response& resp) {
  if (req.method != "GET") {
    throw Error::MethodNotAllowed(
        "the server does not allow this method on the requested resource");
  }
  LogOptions opts = ParseLogOptions(req, name);
  auto pump = std::make_shared<LogPump>(io, ns, name, opts);
  // Errors such as NotFound come before any output: answer them as a
  // Status. A follow on a quiet container starts the response anyway.
  pump->WaitFirst(std::chrono::milliseconds(500));
  if (auto e = pump->EarlyError()) throw *e;
  resp.status = 200;
  resp.headers.emplace("Content-Type", "text/plain");
  resp.headers.emplace("Cache-Control", "no-cache, private");
  resp.stream = [pump](http::Stream& out) { pump->Serve(out); };
}

// --- exec / attach ----------------------------------------------------------------

struct ExecParams {
  std::vector<std::string> command;
  std::string container;
  bool stdin = false, stdout = false, stderr = false, tty = false;
};

ExecParams ParseExecParams(const http::Request& req, bool exec) {
  ExecParams p;
  auto [b, e] = req.query.equal_range("command");
  for (auto it = b; it != e; ++it) p.command.push_back(it->second);
  p.container = req.Query("container");
  p.stdin = QueryBool(req, "stdin");
  p.stdout = QueryBool(req, "stdout");
  p.stderr = QueryBool(req, "stderr");
  p.tty = QueryBool(req, "tty");
  // The kubelet drops stderr with a tty: both go to the terminal.
  if (p.tty) p.stderr = false;
  if (exec && p.command.empty()) {
    throw Error::BadRequest("you must specify at least one command for the container");
  }
  if (!p.stdin && !p.stdout && !p.stderr) {
    throw Error::BadRequest("you must specify at least 1 of stdin, stdout, stderr");
  }
  return p;
}

Json InternalErrorStatus(const std::string& msg) {
  return {{"metadata", Json::object()},
          {"status", "Failure"},
          {"message", "Internal error occurred: " + msg},
          {"reason", "InternalError"},
          {"details", {{"causes", {{{"message", msg}}}}}},
          {"code", 500}};
}

// Receives what the client sends during an exec.
class ExecInput {
 public:
  ExecInput(IoSession& s, const std::atomic<bool>& stop) : s_(s), fd_(s.stdin_fd()), stop_(stop) {}

  void Data(std::string_view d) {
    std::lock_guard lock(mu_);
    if (fd_ < 0 || closed_ || d.empty()) return;
    if (!WriteFd(fd_, d, stop_, false)) {
      DropPendingSigpipe();  // the receiver thread blocks it
      closed_ = true;  // the process stopped reading; drop the rest
    }
  }
  void Eof() {
    std::lock_guard lock(mu_);
    if (fd_ < 0 || eof_) return;
    eof_ = closed_ = true;
    s_.CloseStdin();
  }
  // One or more {"Width":w,"Height":h} objects (SPDY sends them
  // newline-separated on one stream; WebSocket one per message).
  void Resize(std::string_view d) {
    resize_buf_.append(d);
    size_t end;
    while ((end = resize_buf_.find('}')) != std::string::npos) {
      std::string obj = resize_buf_.substr(0, end + 1);
      resize_buf_.erase(0, end + 1);
      Json j = Json::parse(obj, nullptr, false);
      if (j.is_discarded() || !j.is_object()) continue;
      auto dim = [&](const char* k) -> uint16_t {
        return j.contains(k) && j[k].is_number() ? j[k].get<uint16_t>() : 0;
      };
      s_.Resize(dim("Width"), dim("Height"));
    }
    if (resize_buf_.size() > 4096) resize_buf_.clear();
  }

 private:
  IoSession& s_;
  int fd_;
  const std::atomic<bool>& stop_;
  // Data/Eof come from the receiving thread; Resize from it (WebSocket) or
  // from the SPDY resize stream's thread, so its buffer is separate.
  std::mutex mu_;  // guards closed_, eof_
  bool closed_ = false;
  bool eof_ = false;
  std::string resize_buf_;
};

// The client side of an exec, whatever the protocol.
class ExecTransport {
 public:
  virtual ~ExecTransport() = default;
  // False once the client is gone.
  virtual bool WriteOutput(uint8_t channel, std::string_view data) = 0;
  virtual void CloseOutput(uint8_t channel) = 0;
  // Feeds client input to `in` until `stop` or the client is gone.
  virtual void ReceiveLoop(ExecInput& in, const std::atomic<bool>& stop) = 0;
  // Sends the final status and starts closing.
  virtual void Finish(const Json& status) = 0;
};

// Copies the session's output to the client until both outputs reached
// EOF (true) or the client went away / stop (false).
bool PumpOutputs(IoSession& s, ExecTransport& t, const std::atomic<bool>& stop) {
  struct Out {
    int fd;
    uint8_t channel;
  };
  std::vector<Out> outs;
  if (s.stdout_fd() >= 0) outs.push_back({s.stdout_fd(), k8s_channel::kStdout});
  if (s.stderr_fd() >= 0 && s.stderr_fd() != s.stdout_fd()) {
    outs.push_back({s.stderr_fd(), k8s_channel::kStderr});
  }
  for (auto& o : outs) SetNonBlocking(o.fd);
  std::string buf(kChunk, '\0');
  while (!outs.empty()) {
    if (stop) return false;
    std::vector<pollfd> pfds;
    for (auto& o : outs) pfds.push_back({o.fd, POLLIN, 0});
    int rc = ::poll(pfds.data(), pfds.size(), kPollMs);
    if (rc < 0 && errno != EINTR) return false;
    for (size_t i = pfds.size(); i-- > 0;) {
      if (pfds[i].revents == 0) continue;
      ssize_t n = ::read(outs[i].fd, buf.data(), buf.size());
      if (n > 0) {
        if (!t.WriteOutput(outs[i].channel, std::string_view(buf.data(), n))) return false;
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      // EOF; a pty master reads EIO once the last slave fd closed.
      t.CloseOutput(outs[i].channel);
      outs.erase(outs.begin() + i);
    }
  }
  return true;
}

// Runs a session to its end over `t`. Returns once the session finished and
// the client hung up (or lingered too long), or the client went away.
void RunExec(IoSession& s, ExecTransport& t, const std::vector<std::string>& command) {
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::condition_variable cv;
  bool outputs_done = false, outputs_ok = false, input_ended = false;
  ExecInput input(s, stop);
  SetNonBlocking(s.stdin_fd());
  std::thread receiver([&] {
    BlockSigpipeOnThisThread();  // writes to a stdin pipe whose reader exited
    t.ReceiveLoop(input, stop);
    std::lock_guard lock(mu);
    input_ended = true;
    cv.notify_all();
  });
  std::thread output([&] {
    bool ok = PumpOutputs(s, t, stop);
    std::lock_guard lock(mu);
    outputs_done = true;
    outputs_ok = ok;
    cv.notify_all();
  });
  bool finished_normally;
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return outputs_done || input_ended; });
    if (!outputs_done) {
      // The client went away: stop the outputs too.
      stop = true;
      cv.wait(lock, [&] { return outputs_done; });
    }
    finished_normally = outputs_ok;
  }
  if (finished_normally) {
    Json status;
    try {
      status = ExitCodeStatus(s.Wait(), command);
    } catch (const std::exception& e) {
      status =
          InternalErrorStatus(std::string("error executing command in container: ") + e.what());
    }
    t.Finish(status);
    std::unique_lock lock(mu);
    cv.wait_for(lock, std::chrono::milliseconds(kLingerMs), [&] { return input_ended; });
  }
  stop = true;
  output.join();
  receiver.join();
}

// exec/attach over WebSocket, channel.k8s.io v4/v5.
class WebSocketExec : public ExecTransport {
 public:
  WebSocketExec(http::Conn& conn, int version) : ws_(conn), mux_(ws_, version) {}

  bool WriteOutput(uint8_t channel, std::string_view data) override {
    return mux_.Write(channel, data);
  }
  // The kubelet sends no close message for output channels: the client's
  // copies end with the connection.
  void CloseOutput(uint8_t) override {}
  void ReceiveLoop(ExecInput& in, const std::atomic<bool>& stop) override {
    while (!stop) {
      auto m = mux_.Read(kPollMs);
      if (!m) {
        if (ws_.closed()) break;
        continue;
      }
      if (m->channel == k8s_channel::kStdin) {
        if (m->closed) {
          in.Eof();
        } else {
          in.Data(m->data);
        }
      } else if (m->channel == k8s_channel::kResize && !m->closed) {
        in.Resize(m->data);
      }
    }
    // A client that vanished never reads stdin again.
    in.Eof();
  }
  void Finish(const Json& status) override {
    mux_.Write(k8s_channel::kError, status.dump());
    ws_.SendClose(ws_close::kNormal);
  }

 private:
  WebSocketConnection ws_;
  ChannelMux mux_;
};

// exec/attach over SPDY/3.1 (v2..v5.channel.k8s.io).
class SpdyExec : public ExecTransport {
 public:
  SpdyExec(SpdySession& session, int version) : session_(session), version_(version) {}

  // Accepts the client's streams as the kubelet does: error, plus one per
  // requested stdin/stdout/stderr, plus resize with a tty (v3+). False when
  // they did not all come in time.
  bool AcceptStreams(const ExecParams& p) {
    int expected = 1 + p.stdin + p.stdout + p.stderr + (p.tty && version_ >= 3);
    auto deadline = Clock::now() + kStreamCreationTimeout;
    int got = 0;
    while (got < expected && Clock::now() < deadline) {
      auto st = session_.AcceptStream(kPollMs);
      if (!st) {
        if (session_.done()) return false;
        continue;
      }
      std::string type = st->Header("streamtype");
      std::shared_ptr<SpdyStream>* slot = type == "error"    ? &error_
                                          : type == "stdin"  ? &stdin_
                                          : type == "stdout" ? &stdout_
                                          : type == "stderr" ? &stderr_
                                          : type == "resize" ? &resize_
                                                             : nullptr;
      if (slot == nullptr || *slot) {
        st->Reset(spdy::kRefusedStream);
        continue;
      }
      *slot = std::move(st);
      ++got;
    }
    return got == expected && error_ != nullptr;
  }

  bool WriteOutput(uint8_t channel, std::string_view data) override {
    auto& st = channel == k8s_channel::kStderr ? stderr_ : stdout_;
    if (!st) return !session_.done();  // not requested: drop
    return st->Write(data);
  }
  void CloseOutput(uint8_t channel) override {
    auto& st = channel == k8s_channel::kStderr ? stderr_ : stdout_;
    if (st) st->CloseWrite();
  }
  void ReceiveLoop(ExecInput& in, const std::atomic<bool>& stop) override {
    std::thread resize;
    if (resize_) {
      resize = std::thread([&] {
        char buf[1024];
        while (!stop) {
          long n = resize_->Read(buf, sizeof buf, kPollMs);
          if (n == 0) break;
          if (n > 0) in.Resize(std::string_view(buf, n));
        }
      });
    }
    std::string buf(kChunk, '\0');
    bool stdin_open = stdin_ != nullptr;
    while (!stop && !session_.done()) {
      if (!stdin_open) {
        session_.WaitDone(kPollMs);
        continue;
      }
      long n = stdin_->Read(buf.data(), buf.size(), kPollMs);
      if (n > 0) {
        in.Data(std::string_view(buf.data(), n));
      } else if (n == 0) {
        in.Eof();
        stdin_open = false;
      }
    }
    in.Eof();
    if (resize.joinable()) resize.join();
  }
  void Finish(const Json& status) override {
    if (version_ >= 4) {
      error_->Write(status.dump());
    } else if (status.value("status", "") != "Success") {
      error_->Write(status.value("message", ""));
    }
    error_->CloseWrite();
  }

 private:
  SpdySession& session_;
  int version_;
  std::shared_ptr<SpdyStream> error_, stdin_, stdout_, stderr_, resize_;
};

int ChannelVersion(const std::string& protocol) {
  if (protocol.size() > 2 && protocol[0] == 'v' && protocol[2] == '.') return protocol[1] - '0';
  return 1;
}

void ServeExec(PodIo& io, bool exec, const std::string& ns, const std::string& name,
               http::Request& req, http::Response& resp) {
  if (req.method != "GET" && req.method != "POST") {
    throw Error::MethodNotAllowed(
        "the server does not allow this method on the requested resource");
  }
  ExecParams p = ParseExecParams(req, exec);
  bool websocket = IsWebSocketRequest(req);
  std::string protocol =
      websocket ? AcceptWebSocket(req, {k8s_channel::kV5Protocol, k8s_channel::kV4Protocol}, resp)
                : AcceptSpdyUpgrade(req,
                                    {"v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io",
                                     "v2.channel.k8s.io"},
                                    resp);
  // PodIo errors (no such pod or container) surface here, before the 101,
  // as the Status kubectl prints.
  std::shared_ptr<IoSession> session =
      exec ? io.Exec(ns, name, p.container, p.command, p.tty, p.stdin)
           : io.Attach(ns, name, p.container, p.tty, p.stdin);
  if (!session) throw Error::Internal("the node agent started no session");
  int version = ChannelVersion(protocol);
  resp.upgrade = [session, p, version, websocket](http::Conn& conn) mutable {
    if (websocket) {
      WebSocketExec t(conn, version);
      RunExec(*session, t, p.command);
    } else {
      SpdySession spdy(conn);
      SpdyExec t(spdy, version);
      if (t.AcceptStreams(p)) {
        RunExec(*session, t, p.command);
        spdy.WaitDone(kLingerMs);
      }
      spdy.Close();
    }
    session.reset();  // kills the process if it still runs
  };
}

// --- port-forward -----------------------------------------------------------------

// Copies between a stream pair and a connected socket until the socket side
// ends (its EOF, error) or the client resets or `stop`. The client's FIN
// becomes a half-close of the socket.
void ForwardSpdyPair(SpdyStream& data, int sock, const std::atomic<bool>& stop) {
  SetNonBlocking(sock);
  std::atomic<bool> done{false};
  std::thread in([&] {
    std::string buf(kChunk, '\0');
    while (!stop && !done) {
      long n = data.Read(buf.data(), buf.size(), kPollMs);
      if (n < 0) continue;
      if (n == 0) {
        ::shutdown(sock, SHUT_WR);
        break;
      }
      if (!WriteFd(sock, std::string_view(buf.data(), n), done, true)) break;
    }
  });
  std::string buf(kChunk, '\0');
  while (!stop && !data.reset_by_peer()) {
    pollfd p{sock, POLLIN, 0};
    if (::poll(&p, 1, kPollMs) <= 0) continue;
    ssize_t n = ::read(sock, buf.data(), buf.size());
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) break;
    if (!data.Write(std::string_view(buf.data(), n))) break;
  }
  done = true;
  in.join();
}

std::string ForwardError(uint16_t port, const std::string& pod, const std::string& why) {
  return "error forwarding port " + std::to_string(port) + " to pod " + pod + ", uid : " + why;
}

std::optional<uint16_t> ParsePort(const std::string& s) {
  if (s.empty() || s.size() > 5 || !std::all_of(s.begin(), s.end(), ::isdigit)) {
    return std::nullopt;
  }
  int v = std::stoi(s);
  if (v < 1 || v > 65535) return std::nullopt;
  return static_cast<uint16_t>(v);
}

// One forwarded connection of a SPDY port-forward session.
void ServeSpdyPair(PodIo& io, const std::string& ns, const std::string& name, SpdyStream& data,
                   SpdyStream& error, const std::atomic<bool>& stop) {
  std::string port_header = data.Header("port");
  auto port = ParsePort(port_header);
  if (!port) {
    error.Write("invalid port \"" + port_header + "\"");
  } else {
    try {
      UniqueFd sock = io.PortForward(ns, name, *port);
      ForwardSpdyPair(data, sock.get(), stop);
    } catch (const std::exception& e) {
      error.Write(ForwardError(*port, name, e.what()));
    }
  }
  data.CloseWrite();
  error.CloseWrite();
}

// kubelet portforward/httpstream.go: streams come in (error, data) pairs
// with the same requestid; each pair is one connection to the port.
void ServeSpdyPortForward(PodIo& io, const std::string& ns, const std::string& name,
                          http::Conn& conn) {
  SpdySession session(conn);
  std::atomic<bool> stop{false};
  struct Pending {
    std::shared_ptr<SpdyStream> data, error;
    Clock::time_point since;
  };
  struct Worker {
    std::thread thread;
    std::atomic<bool> done{false};
  };
  std::map<std::string, Pending> pending;
  std::list<Worker> workers;
  auto reap = [&] {
    for (auto it = workers.begin(); it != workers.end();) {
      if (it->done) {
        it->thread.join();
        it = workers.erase(it);
      } else {
        ++it;
      }
    }
  };
  while (true) {
    auto st = session.AcceptStream(kPollMs);
    reap();
    if (!st) {
      if (session.done() || session.goaway_received()) break;
      for (auto it = pending.begin(); it != pending.end();) {
        if (Clock::now() - it->second.since > kStreamCreationTimeout) {
          if (it->second.data) it->second.data->Reset();
          if (it->second.error) it->second.error->Reset();
          it = pending.erase(it);
        } else {
          ++it;
        }
      }
      continue;
    }
    std::string type = st->Header("streamtype");
    if (type != "data" && type != "error") {
      st->Reset(spdy::kRefusedStream);
      continue;
    }
    std::string id = st->Header("requestid");
    if (id.empty()) {
      // Old clients send no requestid: pairs are consecutive ids, error first.
      id = std::to_string(type == "error" ? st->id() : st->id() - 2);
    }
    Pending& p = pending[id];
    if (p.since == Clock::time_point()) p.since = Clock::now();
    auto& slot = type == "data" ? p.data : p.error;
    if (slot) {
      st->Reset(spdy::kProtocolError);
      continue;
    }
    slot = std::move(st);
    if (p.data && p.error) {
      Worker& w = workers.emplace_back();
      w.thread = std::thread([&io, &ns, &name, &stop, &w, data = p.data, error = p.error] {
        ServeSpdyPair(io, ns, name, *data, *error, stop);
        w.done = true;
      });
      pending.erase(id);
    }
  }
  // The session has ended: the pairs' reads see EOF, writes fail.
  session.Close();
  stop = true;
  for (auto& w : workers) w.thread.join();
}

// kubelet portforward/websocket.go: ?ports=a,b; channel 2i carries port i's
// data, 2i+1 its errors; each starts with the port (2 bytes, little endian).
void ServeWebSocketPortForward(PodIo& io, const std::string& ns, const std::string& name,
                               const std::vector<uint16_t>& ports, http::Conn& conn) {
  WebSocketConnection ws(conn);
  ChannelMux mux(ws, 4);
  std::atomic<bool> stop{false};
  std::vector<UniqueFd> socks(ports.size());
  std::vector<std::thread> readers;
  std::atomic<size_t> open{0};
  for (size_t i = 0; i < ports.size(); ++i) {
    std::string prefix = {static_cast<char>(ports[i] & 0xff), static_cast<char>(ports[i] >> 8)};
    mux.Write(static_cast<uint8_t>(2 * i), prefix);
    mux.Write(static_cast<uint8_t>(2 * i + 1), prefix);
  }
  for (size_t i = 0; i < ports.size(); ++i) {
    try {
      socks[i] = io.PortForward(ns, name, ports[i]);
    } catch (const std::exception& e) {
      mux.Write(static_cast<uint8_t>(2 * i + 1), ForwardError(ports[i], name, e.what()));
      continue;
    }
    SetNonBlocking(socks[i].get());
    ++open;
    readers.emplace_back([&, i] {
      std::string buf(kChunk, '\0');
      while (!stop) {
        pollfd p{socks[i].get(), POLLIN, 0};
        if (::poll(&p, 1, kPollMs) <= 0) continue;
        ssize_t n = ::read(socks[i].get(), buf.data(), buf.size());
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (n <= 0) break;
        if (!mux.Write(static_cast<uint8_t>(2 * i), std::string_view(buf.data(), n))) break;
      }
      --open;
    });
  }
  while (!stop && open > 0) {
    auto m = mux.Read(kPollMs);
    if (!m) {
      if (ws.closed()) break;
      continue;
    }
    size_t i = m->channel / 2;
    if (m->channel % 2 != 0 || i >= socks.size() || !socks[i]) continue;
    if (!WriteFd(socks[i].get(), m->data, stop, true)) ::shutdown(socks[i].get(), SHUT_RDWR);
  }
  stop = true;
  for (auto& r : readers) r.join();
  ws.SendClose(ws_close::kNormal);
}

std::vector<uint16_t> ParsePortsQuery(const http::Request& req) {
  std::vector<uint16_t> ports;
  auto [b, e] = req.query.equal_range("ports");
  for (auto it = b; it != e; ++it) {
    std::string v = it->second;
    size_t i = 0;
    while (i <= v.size()) {
      size_t j = v.find(',', i);
      if (j == std::string::npos) j = v.size();
      std::string one = v.substr(i, j - i);
      auto port = ParsePort(one);
      if (!port) throw Error::BadRequest("unable to parse \"" + one + "\" as a port");
      ports.push_back(*port);
      i = j + 1;
    }
  }
  if (ports.empty()) throw Error::BadRequest("at least one port must be specified");
  return ports;
}

void ServePortForward(PodIo& io, const std::string& ns, const std::string& name, http::Request& req,
                      http::Response& resp) {
  if (req.method != "GET" && req.method != "POST") {
    throw Error::MethodNotAllowed(
        "the server does not allow this method on the requested resource");
  }
  if (!IsWebSocketRequest(req)) {
    AcceptSpdyUpgrade(req, {"portforward.k8s.io"}, resp);
    resp.upgrade = [&io, ns, name](http::Conn& conn) { ServeSpdyPortForward(io, ns, name, conn); };
    return;
  }
  std::string protocol = AcceptWebSocket(
      req, {k8s_channel::kPortForwardTunnelProtocol, k8s_channel::kV4Protocol, ""}, resp);
  if (protocol == k8s_channel::kPortForwardTunnelProtocol) {
    resp.upgrade = [&io, ns, name](http::Conn& conn) {
      WebSocketConnection ws(conn);
      {
        WebSocketByteStream tunnel(ws);
        ServeSpdyPortForward(io, ns, name, tunnel);
      }
      ws.SendClose(ws_close::kNormal);
    };
    return;
  }
  std::vector<uint16_t> ports = ParsePortsQuery(req);
  resp.upgrade = [&io, ns, name, ports](http::Conn& conn) {
    ServeWebSocketPortForward(io, ns, name, ports, conn);
  };
}

}  // namespace

LogOptions ParseLogOptions(const http::Request& req, const std::string& pod) {
  LogOptions o;
  o.container = req.Query("container");
  o.follow = QueryBool(req, "follow");
  o.previous = QueryBool(req, "previous");
  o.timestamps = QueryBool(req, "timestamps");
  o.tail_lines = QueryInt(req, "tailLines");
  o.limit_bytes = QueryInt(req, "limitBytes");
  o.since_seconds = QueryInt(req, "sinceSeconds");
  if (req.HasQuery("sinceTime")) {
    std::string t = req.Query("sinceTime");
    if (!IsRfc3339(t)) {
      throw Error::BadRequest("sinceTime: invalid value \"" + t + "\": not an RFC 3339 time");
    }
    o.since_time = t;
  }
  // kube-apiserver's ValidatePodLogOptions.
  if (o.tail_lines && *o.tail_lines < 0) {
    throw InvalidLogOptions(
        pod, "tailLines",
        "Invalid value: " + std::to_string(*o.tail_lines) + ": must be greater than or equal to 0");
  }
  if (o.limit_bytes && *o.limit_bytes < 1) {
    throw InvalidLogOptions(
        pod, "limitBytes",
        "Invalid value: " + std::to_string(*o.limit_bytes) + ": must be greater than 0");
  }
  if (o.since_seconds && o.since_time) {
    throw InvalidLogOptions(pod, "sinceSeconds",
                            "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be "
                            "specified");
  }
  if (o.since_seconds && *o.since_seconds < 1) {
    throw InvalidLogOptions(
        pod, "sinceSeconds",
        "Invalid value: " + std::to_string(*o.since_seconds) + ": must be greater than 0");
  }
  return o;
}

Json ExitCodeStatus(int exit_code, const std::vector<std::string>& command) {
  if (exit_code == 0) return {{"metadata", Json::object()}, {"status", "Success"}};
  std::string cmd = "[";
  for (size_t i = 0; i < command.size(); ++i) cmd += (i ? " " : "") + command[i];
  cmd += "]";
  std::string code = std::to_string(exit_code);
  return {{"metadata", Json::object()},
          {"status", "Failure"},
          {"message", "command terminated with non-zero exit code: error executing command " + cmd +
                          ", exit code " + code},
          {"reason", "NonZeroExitCode"},
          {"details", {{"causes", {{{"reason", "ExitCode"}, {"message", code}}}}}}};
}

void ServePodStream(PodIo& io, const std::string& subresource, const std::string& ns,
                    const std::string& name, http::Request& req, http::Response& resp) {
  if (subresource == "log") return ServeLog(io, ns, name, req, resp);
  if (subresource == "exec") return ServeExec(io, true, ns, name, req, resp);
  if (subresource == "attach") return ServeExec(io, false, ns, name, req, resp);
  if (subresource == "portforward") return ServePortForward(io, ns, name, req, resp);
  throw Error::NotFound("the server could not find the requested resource");
}

}  // namespace kin::apiserver
