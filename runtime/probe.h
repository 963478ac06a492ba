// Container probes (liveness, readiness, startup) the way kubelet runs them.
//
// RunProbe() makes one attempt of a Kubernetes Probe object:
//   httpGet    GET over a plain socket (HTTPS: TLS without verification),
//              User-Agent kube-probe/1.31, success for status 200..399;
//              redirects to the same host are followed (at most 10), a
//              redirect elsewhere ends the attempt as a success with a
//              warning; the body is read up to 10 KiB for the message.
//   tcpSocket  a TCP connect within the timeout.
//   exec       target.exec(argv, timeout): exit 0 is success.
//   grpc       not supported: always a failure saying so.
// The socket is created inside target.netns_path (the pod's namespace) on a
// short-lived thread, so the caller's thread never changes namespace.
// Failure messages read as kubelet's (Go's) do, e.g.
//   Get "http://10.244.1.5:8080/healthz": dial tcp 10.244.1.5:8080: connect: connection refused
//   HTTP probe failed with statuscode: 500
//
// ProbeSchedule is the per-probe state machine (pure): when the next attempt
// is due, and the result after success/failure thresholds.
//
// Errors: RunProbe never throws for a failing probe; it throws Error::Invalid
// for a malformed probe (no handler, a named port the container lacks, a
// port out of range). The ProbeSchedule constructor throws Invalid for
// negative or zero values where Kubernetes rejects them.
//
// Thread-safety: RunProbe is thread-safe (target.exec must be as well when
// called concurrently). A ProbeSchedule is thread-compatible.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "base/yaml.h"

namespace kin {

struct ProbeOutcome {
  bool success = false;
  std::string message;  // kubelet-like; on success may carry a warning
};

struct ExecResult {
  // -1 (or any negative value) means the command did not finish within the
  // timeout; the exec function may also throw Error::Timeout for that.
  int exit_code = -1;
  std::string output;
};

struct ProbeTarget {
  std::string netns_path;  // namespace to connect from (e.g. /run/netns/X); empty: ours
  std::string pod_ip;      // default host for httpGet and tcpSocket
  // Runs a command in the container; see ExecResult for timeouts.
  std::function<ExecResult(const std::vector<std::string>& argv, std::chrono::milliseconds timeout)>
      exec;
};

inline constexpr const char* kProbeUserAgent = "kube-probe/1.31";

// One attempt of `probe` against `container` (a Container object; its
// ports[].name resolve named ports).
ProbeOutcome RunProbe(const Json& probe, const Json& container, const ProbeTarget& target);

// The probe's timeoutSeconds (default 1) as a duration.
std::chrono::milliseconds ProbeTimeout(const Json& probe);

class ProbeSchedule {
 public:
  // Defaults: initialDelaySeconds 0, periodSeconds 10, timeoutSeconds 1,
  // successThreshold 1, failureThreshold 3. `initial_result` is the result
  // before any attempt: false for readiness, true for liveness and startup.
  ProbeSchedule(const Json& probe, bool initial_result);

  // When the next attempt is due: started + initialDelaySeconds for the
  // first, then periodSeconds after the previous attempt.
  std::chrono::steady_clock::time_point NextDue(
      std::chrono::steady_clock::time_point started) const;
  // Records an attempt's outcome made at `now`; true when result() changed.
  bool Record(bool success, std::chrono::steady_clock::time_point now);
  // false after failureThreshold consecutive failures, true after
  // successThreshold consecutive successes; otherwise unchanged.
  bool result() const { return result_; }
  std::chrono::milliseconds timeout() const { return timeout_; }
  std::chrono::milliseconds period() const { return period_; }
  std::chrono::milliseconds initial_delay() const { return initial_delay_; }
  int success_threshold() const { return success_threshold_; }
  int failure_threshold() const { return failure_threshold_; }

 private:
  std::chrono::milliseconds initial_delay_;
  std::chrono::milliseconds period_;
  std::chrono::milliseconds timeout_;
  int success_threshold_;
  int failure_threshold_;
  bool result_;
  bool has_attempt_ = false;
  std::chrono::steady_clock::time_point last_attempt_{};
  bool last_success_ = false;
  int run_ = 0;  // consecutive attempts with last_success_'s outcome
};

}  // namespace kin
