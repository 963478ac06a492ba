// agnhost: kin's own implementation of the upstream e2e test image
// registry.k8s.io/e2e-test-images/agnhost, so that upstream manifests using it
// run unchanged. The node agent execs `kin agnhost <subcommand> <flags>`
// inside the pod's namespaces; the hostname is the pod's UTS hostname.
//
// Behaviour follows kubernetes test/images/agnhost (see
// /work/shared/reference/agnhost.md): pause, netexec, serve-hostname,
// connect, porter, dns-suffix, dns-server-list, etc-hosts, inclusterclient
// (polls the API's /healthz with the pod's service account, logging a hash
// of each Authorization header), and webhook (runtime/agnhost_webhook.h).
//
// RunAgnhost is meant to own its process: it blocks SIGINT and SIGTERM in
// the calling thread (threads it starts inherit the mask), answers them the
// way agnhost does, and endpoints such as /exit and /shutdown end the whole
// process with _exit(). Call it from main() before starting other threads.
#pragma once

#include <string>
#include <vector>

namespace kin::agnhost {

// A built-in image runs on the host's root filesystem, where
// /var/run/secrets/kubernetes.io/serviceaccount is not made: the node agent
// binds the pod's credentials (its kube-api-access volume, rotated in place)
// on a directory of the node's own instead and names it in this variable,
// and inclusterclient reads the token and CA there when the standard path
// is missing.
inline constexpr const char* kBuiltInServiceAccountDirEnv = "KIN_SERVICE_ACCOUNT_DIR";

// `args` is what follows `agnhost`: the subcommand then its flags, Go-flag
// style (`--http-port=8080`, `--http-port 8080`, `-http-port=8080`). No
// subcommand means `pause`. Returns the process exit code; runs in the
// foreground until done or signalled.
int RunAgnhost(const std::vector<std::string>& args);

// The pieces below are pure, exposed for tests.

// Go's time.ParseDuration ("1.5s", "100ms", "1h2m"); throws kin::Error on
// malformed input. Returns milliseconds.
long long ParseGoDurationMs(const std::string& s);
// `dns-suffix`: the first "search" line's domains joined by ",".
std::string DnsSuffixList(const std::string& resolv_conf);
// `dns-server-list`: every "nameserver" line's address joined by ",".
std::string DnsServerList(const std::string& resolv_conf);
// Go's http.CanonicalHeaderKey: "x-forwarded-for" -> "X-Forwarded-For".
std::string CanonicalHeaderKey(const std::string& key);

}  // namespace kin::agnhost

// The entry point kin's CLI calls for `kin agnhost ...`.
namespace kin {
using agnhost::RunAgnhost;
}
