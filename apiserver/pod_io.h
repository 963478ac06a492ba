// PodIo — what the API server needs from a node agent to serve a pod's
// log, exec, attach and port-forward subresources.
//
// The API server (apiserver/pod_streams.h) speaks the wire protocols
// (chunked logs, WebSocket channel.k8s.io, SPDY/3.1, SPDY tunneled in
// WebSocket); a PodIo only hands over plain data and file descriptors, so
// apiserver/ does not depend on runtime/.
//
// Errors: methods throw kin::Error with the API code the client should see,
// before any output: NotFound (`pods "x" not found`, `container "c" ...`),
// BadRequest (`container "c" in pod "p" is waiting to start:
// ContainerCreating`, `a container name must be specified for pod p, choose
// one of: [a b]`).
//
// Thread-safety: a PodIo is called concurrently from connection threads. An
// IoSession is used by several threads at once: one reads stdout_fd and
// stderr_fd, one writes stdin_fd and calls CloseStdin, one calls Resize (it
// may be the stdin thread or another), and one calls Wait(); the destructor
// runs after all of them ended. Wait() is called once the outputs reached
// EOF; a client that goes away before that only destroys the session.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/fd.h"

namespace kin::apiserver {

struct LogOptions {
  std::string container;
  bool follow = false;
  bool previous = false;
  bool timestamps = false;
  std::optional<int64_t> tail_lines, limit_bytes, since_seconds;
  std::optional<std::string> since_time;  // RFC 3339, as the client sent it
};

// A running exec (or attach). The fds are owned by the session; the server
// may set them non-blocking.
class IoSession {
 public:
  virtual ~IoSession() = default;  // kills the process if still running
  virtual int stdin_fd() = 0;      // -1 when not requested
  virtual int stdout_fd() = 0;     // the pty master when tty
  virtual int stderr_fd() = 0;     // -1 when tty or not requested
  virtual void CloseStdin() = 0;
  virtual void Resize(uint16_t width, uint16_t height) = 0;
  // Blocks until the process exits; its exit code (126/127 when the command
  // could not be run, 128+N when killed by signal N).
  virtual int Wait() = 0;
};

class PodIo {
 public:
  virtual ~PodIo() = default;
  // Streams the log (as `kubectl logs` shows it) to `sink` until done, or
  // until sink returns false or should_stop() is true (poll it at least
  // every second while following).
  virtual void Logs(const std::string& ns, const std::string& pod, const LogOptions& opts,
                    const std::function<bool(std::string_view)>& sink,
                    const std::function<bool()>& should_stop) = 0;
  virtual std::unique_ptr<IoSession> Exec(const std::string& ns, const std::string& pod,
                                          const std::string& container,
                                          const std::vector<std::string>& command, bool tty,
                                          bool stdin) = 0;
  // Kin containers have no stdin channel; implementations may return a
  // session whose stdout is a pipe fed from the log (follow).
  virtual std::unique_ptr<IoSession> Attach(const std::string& ns, const std::string& pod,
                                            const std::string& container, bool tty, bool stdin) = 0;
  // A socket connected to `port` in the pod's network namespace.
  virtual UniqueFd PortForward(const std::string& ns, const std::string& pod, uint16_t port) = 0;
};

}  // namespace kin::apiserver
