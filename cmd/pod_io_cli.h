// `kin logs`, `kin exec` and `kin port-forward`: kubectl's commands of the
// same names, over the same API endpoints, as library functions over plain
// option structs (cmd/main.cc wires the flags).
//
//   logs:         GET .../pods/P/log?... (chunked with -f), copied to `out`
//                 as it arrives.
//   exec:         WebSocket, subprotocol v5.channel.k8s.io (v4 offered too),
//                 to .../pods/P/exec?command=...; channel 0 stdin, 1 stdout,
//                 2 stderr, 3 the final Status, 4 terminal resizes, 255
//                 (v5) "stdin closed".
//   port-forward: per accepted local connection one WebSocket to
//                 .../pods/P/portforward?ports=R with subprotocol
//                 "SPDY/3.1+portforward.k8s.io" (what kubectl >= 1.31 uses,
//                 and so what kin's API server serves): the binary messages
//                 carry a SPDY/3.1 session in which the client opens an
//                 "error" and a "data" stream (headers streamtype, port,
//                 requestid).
//
// Like kubectl, each command first GETs the pod: a missing pod is reported
// as "Error from server (NotFound): pods "x" not found"; logs and exec pick
// the default container (annotation kubectl.kubernetes.io/default-container,
// else the first) when none is named, saying so on stderr when the pod has
// several; port-forward refuses a pod that is not Running.
//
// Errors: the Run* functions print errors the way kubectl does (to `err` /
// the error fd) and return the process exit code; they do not throw for API
// or connection errors. ApiTargetFromKubeconfig throws kin::Error.
//
// Thread-safety: each call is independent; RunPortForward runs a thread per
// forwarded connection and serializes its writes to `out`.
#pragma once

#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace kin::cmd {

// Where the API is and how to authenticate: one kubeconfig context.
struct ApiTarget {
  std::string server;  // e.g. "https://127.0.0.1:6443" (http:// works, without auth)
  std::string ca_pem, cert_pem, key_pem;
  std::string namespace_;  // the context's namespace ("" = "default")
};

// The context `context` ("" = current-context) of the kubeconfig at `path`
// ("" = $KUBECONFIG, else ~/.kube/config, as KubeconfigPath() resolves it).
// *-data fields are base64 PEM; file fields (certificate-authority,
// client-certificate, client-key) are read, relative to the kubeconfig's
// directory. Throws NotFound / BadRequest naming the context or field.
ApiTarget ApiTargetFromKubeconfig(const std::string& path, const std::string& context);

struct LogsOptions {
  std::string pod;
  std::string container;   // -c; "" = the default container
  std::string namespace_;  // -n; "" = the target's namespace
  bool follow = false;     // -f
  long tail = -1;          // --tail; -1 = all
  std::string since;       // --since, a Go duration such as "5m", "1h30m", "10s"
  std::string since_time;  // --since-time, RFC 3339
  bool timestamps = false;
  bool previous = false;  // -p
  long limit_bytes = 0;   // 0 = no limit
  // Ends a follow early (polled about once a second); e.g. SIGINT seen.
  std::function<bool()> should_stop;
};

// Returns 0, or 1 after printing the error ("Error from server (NotFound):
// ..." / "error: ...") to `err`.
int RunLogs(const ApiTarget& target, const LogsOptions& options, std::ostream& out,
            std::ostream& err);

struct ExecOptions {
  std::string pod;
  std::string container;  // -c
  std::string namespace_;
  std::vector<std::string> command;  // after "--"; must not be empty
  bool pass_stdin = false;           // -i
  bool tty = false;                  // -t (ignored without -i, as kubectl does)
  bool quiet = false;                // -q: no "Defaulted container" / TTY warnings
  // The local ends (the process's stdio by default; tests pass pipes).
  int in_fd = 0;
  int out_fd = 1;
  int err_fd = 2;
};

// Returns the remote command's exit code (0 on success); after a non-zero
// exit prints "command terminated with exit code N" to err_fd like kubectl.
// Other failures print the error and return 1. With a TTY the local
// terminal is put in raw mode and restored on every return path; the
// initial size and SIGWINCH changes are sent on channel 4.
int RunExec(const ApiTarget& target, const ExecOptions& options);

struct PortForwardOptions {
  std::string pod;
  std::string namespace_;
  std::vector<std::string> ports;  // "[LOCAL:]REMOTE"; LOCAL 0 or empty = a free port
  // --address: IPs or "localhost" (= 127.0.0.1 and ::1, kubectl's default).
  std::vector<std::string> addresses = {"localhost"};
};

// Listens on every address for every port, prints "Forwarding from
// 127.0.0.1:LOCAL -> REMOTE" per listener, then "Handling connection for
// LOCAL" per accepted connection, and forwards until `should_stop` returns
// true (polled a few times a second). Returns 0 after a clean stop, 1 after
// printing an error that kept it from starting.
int RunPortForward(const ApiTarget& target, const PortForwardOptions& options, std::ostream& out,
                   std::ostream& err, const std::function<bool()>& should_stop);

// Helpers, exposed for tests.
// Seconds in a Go duration ("1h2m3.5s", "300ms"), rounded up as kubectl
// does for --since; nullopt when malformed.
std::optional<long> ParseGoDurationSeconds(const std::string& text);
// "[LOCAL:]REMOTE" -> {local, remote}; throws BadRequest like kubectl's
// messages for a bad port.
std::pair<int, int> ParsePortMapping(const std::string& spec);
// "Error from server (Reason): message" for API errors, "error: message"
// for others, as kubectl prints them.
std::string KubectlErrorText(const std::exception& e);

}  // namespace kin::cmd
