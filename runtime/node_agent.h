// NodeAgent — kin's kubelet: one per fake node, inside `kin serve`.
//
// It registers its Node (addresses, podCIDR, capacity, labels, taints, the
// Ready condition), renews its Lease in kube-node-lease, and runs the pods
// bound to it, driven by the pods with spec.nodeName = the node (from its own
// informer, or the process's shared one: NodeAgentOptions.pod_informer):
//
//  - a sandbox per pod: a network namespace /run/netns/<prefix><ns>-<name>-<uid>
//    wired to the node's cbr0 (netstack PlanPodAttach: veth made with its
//    peer directly in the pod's netns, hairpin on), the pod IP from the
//    node's CIDR through a persisted IPAM; UTS (hostname) and IPC namespaces
//    pinned by bind mounts under <dir>/pins (runtime/pod_namespaces.h; a
//    pause process only for a pod that shares its PID namespace);
//    /etc/hosts, /etc/resolv.conf, /etc/hostname
//    written per pod; hostNetwork pods use the node's network namespace;
//  - volumes (runtime/volumes.h), images (runtime/image_store.h), containers
//    kept by the node's `kin shim-server` (runtime/shim.h: one per node,
//    forking containers through its zygote; it outlives kin serve), init containers in
//    order, restartPolicy with exponential back-off (CrashLoopBackOff),
//    liveness/readiness/startup probes (runtime/probe.h), graceful deletion
//    (SIGTERM, the grace period, SIGKILL) and the final delete;
//  - pod status as kubectl expects it (phase, conditions, IPs, container
//    statuses with state, lastState, restartCount, ready, started, reasons),
//    written only when it changed, and Events (Scheduled is the scheduler's;
//    Pulled, Created, Started, Killing, Unhealthy, BackOff, Failed... here).
//
// Everything a pod has lives under <dir>/pods/<uid>/ (pod.json, etc/,
// volumes/, containers/<name>/<restartCount>/ with the shim's files and the
// CRI log). So a new agent (after `kin serve` restarts) re-adopts running
// shims and sandboxes from disk, tears down pods that no longer exist, and
// converges; running containers keep running. After a reboot (that tmpfs
// gone) a pod whose status shows it ran here starts afresh in a new sandbox
// as the kubelet restarts it: startTime kept, restartCount one more,
// lastState terminated Unknown (255); a finished pod's status stays final.
//
// Thread-safety: Start/Stop from one thread. Work runs on the agent's own
// threads: a few pod workers (one pod is never synced by two at once), a
// monitor thread watching shims through pidfds, and the heartbeat thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "base/yaml.h"
#include "client/client.h"
#include "netstack/ipam.h"
#include "runtime/container_spec.h"
#include "runtime/pod_spec.h"

namespace kin {

class ImageStore;
class ImagePuller;
class Informer;

// What exec, attach, logs and port-forward need of one container, read
// from the pod's directory (never from the agent's working state).
struct ContainerIoTarget {
  std::string pod_uid;
  std::string container;
  bool running = false;
  pid_t pid = 0;           // the container's process, when running
  std::string cgroup;      // its cgroup's name
  ContainerSpec spec;      // as it was started (config.json)
  std::string log_path;    // CRI log of the instance asked for
  std::string netns_path;  // the pod's network namespace
};

// A pod's network namespace's name (/run/netns/NAME): the prefix
// ("kin-<cluster>-"), its namespace and name, and 5 characters of its uid,
// readable for `ip netns exec` and unique by uid.
std::string PodNetnsName(const std::string& prefix, const Json& pod);

// One container's restart back-off (CrashLoopBackOff) as the kubelet keeps
// it (client-go flowcontrol.Backoff keyed by the container): no wait before
// the first restart, then `base` doubling up to `max` (10 s to 5 min); an
// instance that ran longer than `reset` (the kubelet's 2 × max) ends the
// streak: restarted at once, the next back-off `base` again.
struct CrashBackoff {
  using Clock = std::chrono::steady_clock;
  std::chrono::milliseconds base{10000}, max{300000}, reset{600000};
  int streak = 0;              // restarts in the current streak
  Clock::time_point started{};  // of the current instance (the entry's lastUpdate)

  // An instance started at `now`; `restart`: one ran before it.
  void Started(Clock::time_point now, bool restart);
  // It ended at `now` (or failed to launch): how long to wait before the next start.
  std::chrono::milliseconds Exited(Clock::time_point now);
};

struct NodeAgentOptions {
  std::string node_name;
  std::string node_netns;   // the node's network namespace (/run/netns/NAME) holding cbr0
  std::string name_prefix;  // of pod netns and cgroup names: "kin-<cluster>-"
  std::string node_ip;
  netstack::Ipv4Cidr pod_cidr;
  std::string dir;         // the node's state directory
  std::string kin_binary;  // for shims and built-in images
  DnsSettings dns;         // cluster DNS and domain
  Json labels = Json::object();
  Json taints = Json::array();
  Json capacity = Json::object();  // also the allocatable
  ImageStore* images = nullptr;    // required
  // Pulls images the store lacks (and, imagePullPolicy Always, pulled ones
  // again) from their registries; null: an image not in the store fails
  // with ErrImagePull. Pulls run on the puller's threads, not the pod
  // workers'; credentials come from the pod's imagePullSecrets, else its
  // ServiceAccount's.
  ImagePuller* puller = nullptr;
  int workers = 4;
  // The process's shared informer on all pods (client/informer_factory.h,
  // with its node-name index; started by its owner, and outliving the
  // agent): the agent reads its node's pods from that cache instead of
  // watching them itself, so a process with several nodes holds each pod
  // once. Null: the agent watches pods with spec.nodeName=<node_name>.
  Informer* pod_informer = nullptr;
  std::chrono::milliseconds lease_interval{10000};
  std::chrono::milliseconds status_interval{60000};
  std::chrono::milliseconds crash_backoff{10000};  // first back-off; doubles up to 5 min
  // A container instance that ran longer than this ends its CrashLoopBackOff
  // streak (restarted at once, the next back-off the first again): the
  // kubelet's twice the longest back-off.
  std::chrono::milliseconds crash_backoff_reset{600000};
  int64_t log_max_bytes = 10 << 20;                // a container's CRI log rotates at this size
  int log_max_files = 5;                           // rotated files kept, the current one included
  // In-cluster API credentials. A pod the ServiceAccount admission gave a
  // projected kube-api-access volume (apiserver/service_account_admission.h)
  // gets them through it: its serviceAccountToken source is answered with a
  // TokenRequest by request_token (bound to the pod, the source's audience
  // and expirationSeconds), cached and rotated as the kubelet's token
  // manager does (runtime/token_manager.h: older than 80% of its lifetime
  // or token_max_age), the volume re-written every volume_refresh_interval
  // (the kubelet's sync period; configMap, secret and downwardAPI volumes
  // are refreshed too). Without request_token, service_account_token
  // answers the source.
  //
  // A pod without that volume (made before kin's admission added it, or
  // with the admission off) gets /var/run/secrets/kubernetes.io/serviceaccount
  // the old way when service_account_token is set (read-only: ca.crt from
  // cluster_ca_file, namespace, and the token this returns for the pod),
  // unless automountServiceAccountToken is false (the pod's, else its
  // ServiceAccount's) or a container mounts something at that path itself.
  // Built-in images (agnhost, pause), which run on the host's root, get
  // neither.
  std::string cluster_ca_file;
  std::function<std::string(const Json& pod)> service_account_token;
  std::function<Json(const std::string& ns, const std::string& name, const Json& request)>
      request_token;
  std::chrono::milliseconds volume_refresh_interval{60000};
  std::chrono::milliseconds token_max_age{std::chrono::hours(24)};
};

class NodeAgent {
 public:
  NodeAgent(Client& client, NodeAgentOptions opts);
  ~NodeAgent();  // Stop()s; running pods keep running
  NodeAgent(const NodeAgent&) = delete;
  NodeAgent& operator=(const NodeAgent&) = delete;

  // Re-adopts what <dir> holds, registers the Node (Ready), starts the
  // threads. Throws when the Node cannot be registered.
  void Start();
  // Stops the threads. Containers, sandboxes and IPs stay for the next agent.
  void Stop();
  // With no agent running for the node: stops every pod found under
  // opts.dir at once (SIGKILL) and removes their sandboxes, volumes,
  // addresses and directories. For `kin cluster delete`; needs no API.
  static void TearDownPods(const NodeAgentOptions& opts);

  const std::string& node_name() const;

  // The container of a pod bound to this node (container "" = the only
  // one); `previous`: the instance before the current one. Errors as the
  // kubelet words them: NotFound for an unknown pod or container,
  // BadRequest when a container must be named or (previous) never ran before.
  ContainerIoTarget IoTarget(const Json& pod, const std::string& container, bool previous) const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// The Node object an agent registers (pure: for tests and the agent).
Json BuildNodeObject(const NodeAgentOptions& opts);

}  // namespace kin
