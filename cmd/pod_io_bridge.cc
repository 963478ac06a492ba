#include "cmd/pod_io_bridge.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "base/error.h"
#include "base/file.h"
#include "client/object.h"
#include "client/resources.h"
#include "runtime/container_io.h"
#include "runtime/cri_log.h"
#include "runtime/node_agent.h"
#include "runtime/shim.h"

namespace kin::cmd {

namespace {

namespace fs = std::filesystem;

// An exec'd process.
class ExecSession : public apiserver::IoSession {
 public:
  explicit ExecSession(ExecProcess p) : p_(std::move(p)) {}
  ~ExecSession() override { p_.Kill(); }
  int stdin_fd() override { return p_.stdin_fd(); }
  int stdout_fd() override { return p_.stdout_fd(); }
  int stderr_fd() override { return p_.stderr_fd(); }
  void CloseStdin() override { p_.CloseStdin(); }
  void Resize(uint16_t w, uint16_t h) override { p_.Resize(w, h); }
  int Wait() override { return p_.Wait(); }

 private:
  ExecProcess p_;
};

// A command that could not start: its message on stderr, then exit code
// 126/127, as a runtime reports "executable file not found".
class FailedSession : public apiserver::IoSession {
 public:
  FailedSession(int code, const std::string& message) : code_(code) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) == 0) {
      read_.reset(fds[0]);
      UniqueFd w(fds[1]);
      std::string m = message + "\n";
      (void)!::write(w.get(), m.data(), m.size());
    }
  }
  int stdin_fd() override { return -1; }
  int stdout_fd() override { return -1; }
  int stderr_fd() override { return read_.get(); }
  void CloseStdin() override {}
  void Resize(uint16_t, uint16_t) override {}
  int Wait() override { return code_; }

 private:
  int code_;
  UniqueFd read_;
};

// Attach: kin containers write to a log, not a terminal; attaching follows
// the log from now on. Wait() returns the container's exit code once it ends.
class AttachSession : public apiserver::IoSession {
 public:
  AttachSession(std::string log_path, std::string instance_dir) : dir_(std::move(instance_dir)) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw ErrnoError(errno, "attach: pipe");
    read_.reset(fds[0]);
    write_.reset(fds[1]);
    thread_ = std::thread([this, log_path] {
      LogReadOptions o;
      o.follow = true;
      o.tail_lines = 0;
      try {
        ReadCriLog(
            log_path, o,
            [this](std::string_view s) {
              while (!s.empty()) {
                ssize_t n = ::write(write_.get(), s.data(), s.size());
                if (n <= 0) return false;
                s.remove_prefix(static_cast<size_t>(n));
              }
              return true;
            },
            [this] { return fs::exists(dir_ + "/exit.json"); }, [this] { return stop_.load(); });
      } catch (const std::exception&) {
      }
      write_.reset();  // EOF for the reader
    });
  }
  ~AttachSession() override {
    stop_ = true;
    read_.reset();
    if (thread_.joinable()) thread_.join();
  }
  int stdin_fd() override { return -1; }
  int stdout_fd() override { return read_.get(); }
  int stderr_fd() override { return -1; }
  void CloseStdin() override {}
  void Resize(uint16_t, uint16_t) override {}
  int Wait() override {
    if (thread_.joinable()) thread_.join();
    auto e = ReadShimExit(dir_);
    return e ? e->exit_code : 0;
  }

 private:
  std::string dir_;
  UniqueFd read_, write_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

class Bridge : public apiserver::PodIo {
 public:
  Bridge(Client& client, std::function<NodeAgent*(const std::string&)> agent_for_node)
      : client_(client), agent_for_node_(std::move(agent_for_node)) {}

  void Logs(const std::string& ns, const std::string& pod, const apiserver::LogOptions& opts,
            const std::function<bool(std::string_view)>& sink,
            const std::function<bool()>& should_stop) override {
    ContainerIoTarget t = Target(ns, pod, opts.container, opts.previous);
    LogReadOptions o;
    o.follow = opts.follow && !opts.previous;
    o.timestamps = opts.timestamps;
    o.tail_lines = opts.tail_lines;
    o.limit_bytes = opts.limit_bytes;
    if (opts.since_seconds) {
      o.since_time = std::chrono::system_clock::now() - std::chrono::seconds(*opts.since_seconds);
    } else if (opts.since_time) {
      o.since_time = object::ParseRfc3339(*opts.since_time);
      if (!o.since_time) throw Error::BadRequest("invalid sinceTime \"" + *opts.since_time + "\"");
    }
    std::string dir = fs::path(t.log_path).parent_path().string();
    if (!fs::exists(t.log_path)) return;  // started, nothing written yet
    ReadCriLog(
        t.log_path, o, sink, [dir] { return fs::exists(dir + "/exit.json"); }, should_stop);
  }

  std::unique_ptr<apiserver::IoSession> Exec(const std::string& ns, const std::string& pod,
                                             const std::string& container,
                                             const std::vector<std::string>& command, bool tty,
                                             bool stdin) override {
    ContainerIoTarget t = RunningTarget(ns, pod, container);
    ExecOptions eo;
    eo.command = command;
    eo.tty = tty;
    eo.stdin = stdin;
    try {
      return std::make_unique<ExecSession>(StartExec(t.spec, t.pid, t.cgroup, eo));
    } catch (const Error& e) {
      if (auto code = ExecStartExitCode(e)) return std::make_unique<FailedSession>(*code, e.what());
      throw;
    }
  }

  std::unique_ptr<apiserver::IoSession> Attach(const std::string& ns, const std::string& pod,
                                               const std::string& container, bool, bool) override {
    ContainerIoTarget t = RunningTarget(ns, pod, container);
    return std::make_unique<AttachSession>(t.log_path, fs::path(t.log_path).parent_path().string());
  }

  UniqueFd PortForward(const std::string& ns, const std::string& pod, uint16_t port) override {
    Json p = client_.Get(PodsResource(), ns, pod);
    NodeAgent* agent = AgentOf(p);
    std::string netns = NetnsOf(*agent, p);
    return DialInNetns(netns, port);
  }

 private:
  NodeAgent* AgentOf(const Json& pod) {
    std::string node = pod["spec"].value("nodeName", "");
    std::string name = pod["metadata"].value("name", "");
    if (node.empty()) {
      throw Error::BadRequest("pod " + name + " does not have a host assigned");
    }
    NodeAgent* agent = agent_for_node_(node);
    if (agent == nullptr) throw Error::NotFound("node \"" + node + "\" has no agent");
    return agent;
  }

  // The pod's network namespace, whatever container is asked for.
  std::string NetnsOf(NodeAgent& agent, const Json& pod) {
    std::string first;
    for (const auto& c : pod["spec"].value("containers", Json::array())) {
      first = c.value("name", "");
      break;
    }
    ContainerIoTarget t = agent.IoTarget(pod, first, false);
    if (t.netns_path.empty()) throw Error::BadRequest("pod has no network namespace yet");
    return t.netns_path;
  }

  ContainerIoTarget Target(const std::string& ns, const std::string& pod,
                           const std::string& container, bool previous) {
    Json p = client_.Get(PodsResource(), ns, pod);
    return AgentOf(p)->IoTarget(p, container, previous);
  }

  ContainerIoTarget RunningTarget(const std::string& ns, const std::string& pod,
                                  const std::string& container) {
    ContainerIoTarget t = Target(ns, pod, container, false);
    if (!t.running) {
      throw Error::BadRequest("container " + t.container + " is not running in pod " + pod);
    }
    return t;
  }

  Client& client_;
  std::function<NodeAgent*(const std::string&)> agent_for_node_;
};

}  // namespace

std::unique_ptr<apiserver::PodIo> MakePodIoBridge(
    Client& client, std::function<NodeAgent*(const std::string&)> agent_for_node) {
  return std::make_unique<Bridge>(client, std::move(agent_for_node));
}

}  // namespace kin::cmd
