// The streaming pod subresources: log, exec, attach, portforward.
//
// ServePodStream answers one request for /api/v1/namespaces/NS/pods/NAME/SUB
// the way kube-apiserver (proxying to the kubelet) does, on top of a PodIo:
//   - log: text/plain, chunked; follow ends when the client goes away.
//   - exec, attach: WebSocket (v5.channel.k8s.io, v4.channel.k8s.io) or
//     SPDY/3.1 (X-Stream-Protocol-Version v5/v4/v3/v2.channel.k8s.io). The
//     process's output goes to stdout/stderr, stdin and resize come in, and
//     the end is reported as a metav1.Status on the error stream (exit code
//     in the NonZeroExitCode status' ExitCode cause).
//   - portforward: SPDY/3.1 (portforward.k8s.io; a data + error stream pair
//     per connection, matched by the requestid header), SPDY/3.1 tunneled in
//     WebSocket (subprotocol SPDY/3.1+portforward.k8s.io, kubectl >= 1.31),
//     and the WebSocket channel protocol (v4.channel.k8s.io, ?ports=..., a
//     data and an error channel per port, each starting with the port as two
//     little-endian bytes).
// PodIo errors before the upgrade become the normal Status response (404,
// 400); failures after it go to the error stream.
//
// Threads: every session runs on the connection's thread plus helper
// threads it joins before returning; a client that goes away ends the
// session (the IoSession is destroyed, which kills the process).
//
// Thread-safety: ServePodStream is called concurrently; it keeps no state.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "apiserver/pod_io.h"
#include "base/http_server.h"
#include "base/yaml.h"

namespace kin::apiserver {

// Fills `resp` for `subresource` (log, exec, attach, portforward) of pod
// ns/name. Throws kin::Error for bad requests and PodIo errors that happen
// before the response started.
void ServePodStream(PodIo& io, const std::string& subresource, const std::string& ns,
                    const std::string& name, http::Request& req, http::Response& resp);

// The pods/log query (container, follow, previous, timestamps, tailLines,
// limitBytes, sinceSeconds, sinceTime). Throws BadRequest for a value that
// does not parse, Invalid (as kube-apiserver) for one out of range.
LogOptions ParseLogOptions(const http::Request& req, const std::string& pod);

// The Status the kubelet writes on the error stream when a command ended
// with `exit_code` (Success for 0; Failure, NonZeroExitCode otherwise).
Json ExitCodeStatus(int exit_code, const std::vector<std::string>& command);

}  // namespace kin::apiserver
