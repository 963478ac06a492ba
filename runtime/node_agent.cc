#include "runtime/node_agent.h"

#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "base/error.h"
#include "base/file.h"
#include "base/log.h"
#include "base/netns.h"
#include "base/process.h"
#include "base/strings.h"
#include "base/version.h"
#include "client/events.h"
#include "client/informer.h"
#include "client/object.h"
#include "client/resources.h"
#include "netstack/topology.h"
#include "runtime/agnhost.h"
#include "runtime/cgroup.h"
#include "runtime/image_store.h"
#include "runtime/pod_namespaces.h"
#include "runtime/probe.h"
#include "runtime/registry_client.h"
#include "runtime/shim.h"
#include "runtime/token_manager.h"
#include "runtime/volumes.h"

namespace kin {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr const char* kPauseName = "POD";
constexpr const char* kServiceAccountMountPath = "/var/run/secrets/kubernetes.io/serviceaccount";
// The ServiceAccount admission's projected volume: kube-api-access-<random>.
constexpr const char* kServiceAccountVolumePrefix = "kube-api-access-";
// the sandbox holder's directory, as crictl names it
const ResourceInfo& LeasesResource() {
  return *FindResource("coordination.k8s.io", "v1", "leases");
}

std::string ShortUid(const std::string& uid) {
  std::string s;
  for (char c : uid) {
    if (c != '-') s += c;
    if (s.size() == 8) break;
  }
  return s;
}

int PidfdOpen(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

// Signals `pid` only while it is the process that started at `start_ticks`.
bool SignalProcess(pid_t pid, uint64_t start_ticks, int sig) {
  if (pid <= 0) return false;
  UniqueFd fd(PidfdOpen(pid));
  if (!fd) return false;
  if (start_ticks != 0 && ProcessStartTicks(pid) != start_ticks) return false;
  return ::syscall(SYS_pidfd_send_signal, fd.get(), sig, nullptr, 0) == 0;
}

std::string TerminatedReason(const ShimExit& e) {
  if (!e.reason.empty()) return e.reason;
  if (e.oom_killed) return "OOMKilled";
  return e.exit_code == 0 ? "Completed" : "Error";
}

Json Condition(const std::string& type, bool status, const std::string& reason = "",
               const std::string& message = "") {
  Json c = {{"type", type}, {"status", status ? "True" : "False"}, {"lastProbeTime", nullptr}};
  if (!reason.empty()) c["reason"] = reason;
  if (!message.empty()) c["message"] = message;
  return c;
}

std::string QosClass(const Json& pod) {
  bool any = false, guaranteed = true;
  for (const char* list : {"initContainers", "containers"}) {
    for (const auto& c : pod["spec"].value(list, Json::array())) {
      Json res = c.value("resources", Json::object());
      Json req = res.value("requests", Json::object()), lim = res.value("limits", Json::object());
      if (!req.empty() || !lim.empty()) any = true;
      for (const char* r : {"cpu", "memory"}) {
        if (!lim.contains(r)) guaranteed = false;
        if (req.contains(r) && lim.contains(r) && req[r] != lim[r]) guaranteed = false;
      }
    }
  }
  if (!any) return "BestEffort";
  return guaranteed ? "Guaranteed" : "Burstable";
}

}  // namespace

void CrashBackoff::Started(Clock::time_point now, bool restart) {
  if (restart) ++streak;
  started = now;
}

std::chrono::milliseconds CrashBackoff::Exited(Clock::time_point now) {
  // flowcontrol.Backoff's hasExpired: stable for twice the longest back-off.
  if (started != Clock::time_point{} && now - started > reset) streak = 0;
  if (streak == 0) return std::chrono::milliseconds(0);
  return std::min(max, base * (1 << std::min(streak - 1, 10)));
}

std::string PodNetnsName(const std::string& prefix, const Json& pod) {
  const Json& md = pod["metadata"];
  std::string base = prefix + md.value("namespace", "default") + "-" + md.value("name", "");
  if (base.size() > 200) base.resize(200);
  return base + "-" + ShortUid(md.value("uid", "")).substr(0, 5);
}

Json BuildNodeObject(const NodeAgentOptions& o) {
  utsname u{};
  ::uname(&u);
  Json capacity = o.capacity;
  Json node = {{"apiVersion", "v1"},
               {"kind", "Node"},
               {"metadata", {{"name", o.node_name}, {"labels", o.labels}}},
               {"spec",
                {{"podCIDR", o.pod_cidr.ToString()},
                 {"podCIDRs", Json::array({o.pod_cidr.ToString()})},
                 {"providerID", "kin://" + o.node_name}}},
               {"status",
                {{"addresses", Json::array({{{"type", "InternalIP"}, {"address", o.node_ip}},
                                            {{"type", "Hostname"}, {"address", o.node_name}}})},
                 {"capacity", capacity},
                 {"allocatable", capacity},
                 {"daemonEndpoints", {{"kubeletEndpoint", {{"Port", 10250}}}}},
                 {"nodeInfo",
                  {{"machineID", ""},
                   {"systemUUID", ""},
                   {"bootID", ""},
                   {"kernelVersion", u.release},
                   {"osImage", "kin node (Linux namespaces)"},
                   {"containerRuntimeVersion", std::string("kin://") + kVersion},
                   {"kubeletVersion", kKubeVersion},
                   {"kubeProxyVersion", kKubeVersion},
                   {"operatingSystem", "linux"},
                   {"architecture", "amd64"}}}}}};
  if (!o.taints.empty()) node["spec"]["taints"] = o.taints;
  return node;
}

// ---- per-pod runtime state ----

struct ContainerRuntime {
  std::string name;
  bool init = false;
  int restart_count = 0;  // instances started before the current one
  std::string dir;        // the current instance's directory ("" before the first start)
  std::optional<ShimState> state;
  std::optional<ShimExit> exit;       // of the current instance, once it ended
  std::optional<ShimExit> last_exit;  // of the instance before it
  std::string last_started_at;
  bool shim_watched = false;
  std::string waiting_reason = "ContainerCreating", waiting_message;
  Clock::time_point backoff_until{};
  CrashBackoff backoff;  // base and reset from the options
  int pull_failures = 0;
  Clock::time_point pull_retry_at{};  // image pull back-off (ImagePullBackOff) until then
  std::optional<std::shared_future<PullOutcome>> pull;  // under way
  std::string pull_hint;  // how to load the image by hand, when it is absent
  std::string image;
  std::string image_id;  // the repo digest of a pulled image
  std::optional<ProbeSchedule> liveness, readiness, startup;
  bool probes_set = false;  // false for a container adopted from disk until its spec is seen
  Clock::time_point started_mono{};
  bool ready = false, started = false;
  // When this node's record of the container was lost (a reboot: the pods'
  // state lives on tmpfs), what the pod's status last showed of it:
  // {"restartCount": the first instance's number here, "lastState": the
  // instance before it}. lastState is reported until an instance here ends.
  std::optional<Json> lost;
  bool killing = false;
  Clock::time_point kill_deadline{};
  bool kill_escalated = false;
  std::string kill_reason;  // why we stopped it: liveness failure, deletion

  bool running() const { return state.has_value() && !exit.has_value(); }
  std::string container_id(const std::string& pod_uid) const {
    return "kin://" + ShortUid(pod_uid) + "-" + name + "-" + std::to_string(restart_count);
  }
};

struct PodRuntime {
  std::string uid, ns, name;
  std::string dir;
  std::string netns;  // empty for hostNetwork pods
  std::string host_veth;
  std::string ip;
  bool host_network = false;
  bool sandbox_ready = false;
  ContainerRuntime pause;
  std::unique_ptr<PodVolumes> volumes;
  Clock::time_point volumes_refresh_at{};  // the next PodVolumes::Refresh
  std::map<std::string, ContainerRuntime> containers;
  bool terminating = false;
  Clock::time_point grace_deadline{};
  bool final_deleted = false;
  std::string last_status;  // the status last written, serialized (compact)
  std::string sandbox_error;
  Clock::time_point sandbox_retry{};
  std::string start_time;
};

namespace {

// A pod bound to this node that the node has no record of although its
// status shows it ran here: the record was lost (the machine rebooted; the
// pods' state lives on tmpfs). As the kubelet after a reboot, it starts
// afresh in a new sandbox, and its status goes on from the one it had:
// startTime stays; a container that had started counts one restart more
// (the kubelet counts the instances its log directory holds), and its
// lastState is the instance the reboot ended, as containerd reports a task
// it lost (terminated, reason Unknown, exit code 255) or as it had ended.
void InheritLostRecord(PodRuntime& p, const Json& pod) {
  const Json& status = object::Field(pod, "status");
  if (!status.is_object()) return;
  p.start_time = object::Str(status, "startTime");
  const bool has_init = !object::Field(pod["spec"], "initContainers").empty();
  for (const char* list : {"initContainerStatuses", "containerStatuses"}) {
    const Json& statuses = object::Field(status, list);
    if (!statuses.is_array()) continue;
    for (const Json& cs : statuses) {
      const Json& state = object::Field(cs, "state");
      const Json& last = object::Field(cs, "lastState");
      const int restarts = cs.value("restartCount", 0);
      Json last_state;
      if (object::Field(state, "running").is_object()) {
        last_state = {{"terminated",
                       {{"exitCode", 255},
                        {"reason", "Unknown"},
                        {"startedAt", object::Field(state, "running").value("startedAt", "")},
                        {"finishedAt", object::NowRfc3339()}}}};
      } else if (object::Field(state, "terminated").is_object()) {
        last_state = {{"terminated", object::Field(state, "terminated")}};
      } else if (object::Field(last, "terminated").is_object()) {
        last_state = {{"terminated", object::Field(last, "terminated")}};
      } else if (restarts == 0) {
        continue;  // it never started
      }
      const std::string name = object::Str(cs, "name");
      ContainerRuntime& c = p.containers[name];
      c.name = name;
      c.init = std::string(list) == "initContainerStatuses";
      if (!c.init && RestartPolicy(pod) == "Never" && object::Field(state, "running").is_object()) {
        // Never restarted: the instance the reboot ended is its last, as
        // the kubelet finds containerd's lost task (the pod fails).
        c.restart_count = restarts;
        c.state = ShimState{};
        c.state->started_at = object::Field(state, "running").value("startedAt", "");
        c.exit = ShimExit{255, 0, false, object::NowRfc3339(), "Unknown"};
        continue;
      }
      c.restart_count = restarts + 1;
      if (!c.init && has_init) c.waiting_reason = "PodInitializing";
      c.lost = Json{{"restartCount", c.restart_count}};
      if (!last_state.is_null()) (*c.lost)["lastState"] = last_state;
    }
  }
}

// A killed container: its directory (for exit.json) and its state.
struct Ending {
  std::string dir;
  ShimState state;
};
void WaitForPids(const std::vector<pid_t>& pids, Clock::time_point deadline);
void WaitForExits(const std::vector<Ending>& ending, Clock::time_point deadline);
void RemoveStaleCgroup(const std::string& name);
ShimExit ReapUnkept(const std::string& dir, const ShimState& state);
}  // namespace

class NodeAgent::Impl {
 public:
  Impl(Client& client, NodeAgentOptions opts)
      : client_(client),
        opts_(std::move(opts)),
        recorder_(client, "kubelet", opts_.node_name),
        ipam_(opts_.pod_cidr, opts_.dir + "/ipam"),
        shims_(std::make_unique<ShimLauncher>(opts_.kin_binary)) {
    if (opts_.request_token) {
      tokens_ = std::make_unique<ServiceAccountTokenManager>(
          opts_.request_token,
          std::chrono::duration_cast<std::chrono::seconds>(opts_.token_max_age));
    }
  }

  ~Impl() { Stop(); }

  void Start();
  void Stop();
  void TearDownAllPods();
  const std::string& node_name() const { return opts_.node_name; }
  // The node's namespace pins (a private mount): the mount template, and
  // per pod its UTS and IPC namespaces (runtime/pod_namespaces.h).
  std::string PinsDir() const { return opts_.dir + "/pins"; }
  std::string MountTemplatePin() const { return PinsDir() + "/mount-template"; }
  std::string PodNsDir(const PodRuntime& p) const { return PinsDir() + "/" + p.uid; }
  const NodeAgentOptions& options() const { return opts_; }

 private:
  // Work queue: pods to sync now, and at a time.
  void Enqueue(const std::string& uid);
  void EnqueueAt(const std::string& uid, Clock::time_point when);
  void WorkerLoop();
  void MonitorLoop();
  void HeartbeatLoop();
  // Enqueues the pod when the container's process exits (its pidfd in the
  // monitor's epoll); CollectExit then finds exit.json, or waits for the
  // shim server to write it. Its shim server is watched too (one pidfd per
  // server): when that dies (killed), every pod is enqueued, and
  // CollectExit reaps the containers it kept.
  void WatchContainer(const std::string& uid, const ShimState& state);

  void RegisterNode();
  void RenewLease();
  void Adopt();
  // Removes the logs of pods this node no longer has (after the informer synced).
  void RemoveOrphanLogs();
  bool OnThisNode(const Json& pod) const {
    const Json& spec = object::Field(pod, "spec");
    return object::Str(spec, "nodeName") == opts_.node_name;
  }
  // The cached pod ns/name if it is bound to this node, else null.
  ObjectPtr OwnPod(const std::string& ns, const std::string& name) const {
    ObjectPtr pod = pods_->Lookup(ns, name);
    return pod && OnThisNode(*pod) ? pod : nullptr;
  }
  void SyncPod(const std::string& uid);
  // Returns when the pod wants to be looked at again (max: none).
  Clock::time_point SyncRunningPod(PodRuntime& p, const Json& pod);
  void EnsureSandbox(PodRuntime& p, const Json& pod);
  void TearDownPod(PodRuntime& p);
  void KillPod(PodRuntime& p, std::vector<Ending>& ending);
  void ReleasePod(PodRuntime& p, bool detach);
  // The cgroup of a pod's container (one name for all its instances).
  std::string CgroupName(const std::string& uid, const std::string& container) const;
  bool StartContainer(PodRuntime& p, const Json& pod, ContainerRuntime& c, const Json& spec);
  // The container's image, pulled first when its imagePullPolicy asks;
  // nullopt while a pull is under way or backing off (c's waiting reason,
  // message and backoff_until say so).
  std::optional<ImageConfig> EnsureImage(const Json& pod, ContainerRuntime& c, const Json& spec);
  void ImagePullFailed(const Json& pod, ContainerRuntime& c, const std::string& reason,
                       const std::string& message);
  // Credentials of the pod's imagePullSecrets (else its ServiceAccount's).
  Keyring PullKeyring(const Json& pod);
  void StopContainer(PodRuntime& p, ContainerRuntime& c, int grace_seconds, const std::string& why);
  void CollectExit(PodRuntime& p, ContainerRuntime& c);
  Clock::time_point RunProbes(PodRuntime& p, const Json& pod, ContainerRuntime& c,
                              const Json& spec);
  void UpdateStatus(PodRuntime& p, const Json& pod);
  Json BuildStatus(PodRuntime& p, const Json& pod);
  ExecResult ExecInContainer(const ContainerRuntime& c, const std::vector<std::string>& argv,
                             milliseconds timeout);
  // `own_root`: the container has a root filesystem of its own (bind
  // mount targets inside it are made when missing).
  std::vector<BindMount> PodFileMounts(const PodRuntime& p, const Json& spec, bool own_root) const;
  // Whether the pod's containers get the service account credentials the
  // old way (a pod admitted without a kube-api-access volume).
  bool MountsServiceAccount(const Json& pod);
  // What volumes are set up and refreshed with.
  VolumeContext VolumeContextFor(const PodRuntime& p);
  std::optional<Json> Lookup(const std::string& kind, const std::string& ns,
                             const std::string& name);
  PodRuntime& RuntimeFor(const Json& pod);
  void PersistPod(const PodRuntime& p);

  Client& client_;
  NodeAgentOptions opts_;
  EventRecorder recorder_;
  netstack::Ipv4Allocator ipam_;
  std::unique_ptr<ShimLauncher> shims_;
  std::unique_ptr<ServiceAccountTokenManager> tokens_;  // with opts_.request_token
  // The pods bound to this node: own_pods_ (a watch on spec.nodeName=<node>)
  // or, with opts_.pod_informer, the process's shared pod informer, whose
  // other pods are skipped (OwnPod); pods_ is the one in use.
  std::unique_ptr<Informer> own_pods_;
  Informer* pods_ = nullptr;
  Informer::HandlerId pod_handlers_ = 0;  // on a shared informer

  std::mutex mu_;  // guards the queue and pods_by_uid_ / running_
  std::condition_variable cv_;
  std::deque<std::string> ready_;
  std::set<std::string> queued_, running_, dirty_;
  std::multimap<Clock::time_point, std::string> timers_;
  std::map<std::string, std::unique_ptr<PodRuntime>> runtimes_;
  std::map<std::string, std::pair<std::string, std::string>> uid_to_key_;  // uid -> ns/name

  std::atomic<bool> stopping_{false};
  bool started_ = false;
  std::vector<std::thread> threads_;
  UniqueFd epoll_;
  UniqueFd wake_;  // eventfd to end the monitor
  std::mutex watch_mu_;
  std::map<int, std::pair<std::string, UniqueFd>> watched_;    // pidfd -> (uid, fd)
  std::map<int, std::pair<pid_t, UniqueFd>> watched_servers_;  // pidfd -> (shim server, fd)
  std::mutex hb_mu_;
  std::condition_variable hb_cv_;
};

// ---- lifecycle ----

void NodeAgent::Impl::Start() {
  if (started_) return;
  started_ = true;
  // Containers copy the node's mount template, which lacks the pods'
  // namespace pins and /run/netns (runtime/pod_namespaces.h).
  EnsureOwnTmpfs(PinsDir(), Propagation::kPrivate);
  EnsureOwnTmpfs(opts_.dir + "/pods", Propagation::kShared);
  if (!MountTemplateExists(MountTemplatePin())) {
    CreateMountTemplate(MountTemplatePin(), {"/run/netns", PinsDir()});
  }
  epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) throw ErrnoError(errno, "epoll_create1");
  wake_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wake_.get();
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev);

  RegisterNode();
  RenewLease();
  Adopt();

  InformerHandlers h;
  // The uid -> namespace/name map lets a sync find its pod in the cache
  // directly (no scan of every pod of the node).
  auto remember = [this](const Json& pod) {
    const Json& md = pod["metadata"];
    std::string uid = md.value("uid", "");
    {
      std::lock_guard<std::mutex> l(mu_);
      uid_to_key_[uid] = {md.value("namespace", ""), md.value("name", "")};
    }
    Enqueue(uid);
  };
  h.on_add = [this, remember](const Json& pod) {
    if (OnThisNode(pod)) remember(pod);
  };
  // A pod's nodeName is set once (binding) and never changes after.
  h.on_update = [this, remember](const Json&, const Json& pod) {
    if (OnThisNode(pod)) remember(pod);
  };
  h.on_delete = [this](const Json& pod) {
    if (OnThisNode(pod)) Enqueue(pod["metadata"].value("uid", ""));
  };
  if (opts_.pod_informer) {
    pods_ = opts_.pod_informer;
    pod_handlers_ = pods_->AddHandlers(std::move(h));
  } else {
    InformerOptions io;
    io.field_selector = "spec.nodeName=" + opts_.node_name;
    own_pods_ = std::make_unique<Informer>(client_, PodsResource(), io, std::move(h));
    own_pods_->AddIndex(kNodeNameIndex, IndexByNodeName);
    pods_ = own_pods_.get();
    pods_->Start();
  }
  threads_.emplace_back([this] { MonitorLoop(); });
  threads_.emplace_back([this] { HeartbeatLoop(); });
  for (int i = 0; i < std::max(1, opts_.workers); ++i)
    threads_.emplace_back([this] { WorkerLoop(); });
  // Adopted pods that the API no longer knows are torn down once the
  // informer has synced (a sync of each adopted uid finds no pod).
  std::thread([this] {
    if (pods_->WaitForSync(milliseconds(30000))) {
      std::vector<std::string> uids;
      {
        std::lock_guard<std::mutex> l(mu_);
        for (const auto& [uid, _] : runtimes_) uids.push_back(uid);
      }
      for (const auto& uid : uids) Enqueue(uid);
      RemoveOrphanLogs();
    }
  }).detach();
}

void NodeAgent::Impl::RemoveOrphanLogs() {
  // Logs of pods deleted while no agent ran (after a reboot nothing of
  // them is left to adopt): their pod is neither known here nor in the API.
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(opts_.dir + "/logs", ec)) {
    const std::string uid = entry.path().filename().string();
    {
      std::lock_guard<std::mutex> l(mu_);
      if (uid_to_key_.count(uid) || runtimes_.count(uid)) continue;
    }
    std::error_code rm;
    fs::remove_all(entry.path(), rm);
  }
}

void NodeAgent::Impl::Stop() {
  if (!started_ || stopping_.exchange(true)) return;
  if (own_pods_) {
    own_pods_->Stop();
  } else if (pods_) {
    pods_->RemoveHandlers(pod_handlers_);
  }
  cv_.notify_all();
  hb_cv_.notify_all();
  uint64_t one = 1;
  if (wake_) (void)!::write(wake_.get(), &one, sizeof one);
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void NodeAgent::Impl::TearDownAllPods() {
  if (!started_) Adopt();
  std::vector<PodRuntime*> all;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& [uid, p] : runtimes_) all.push_back(p.get());
  }
  // All pods at once: kill every container, wait until each exit is
  // recorded, then release the sandboxes (the node's namespace goes next, so
  // no detaching).
  std::vector<Ending> ending;
  for (PodRuntime* p : all) KillPod(*p, ending);
  auto deadline = Clock::now() + milliseconds(10000);
  WaitForExits(ending, deadline);
  // Shim servers of an earlier kin serve exit once their last container
  // has: wait for them too, so that nothing of the node is left running.
  std::set<pid_t> servers;
  for (const auto& e : ending) {
    if (e.state.shim_pid != shims_->server_pid() &&
        ProcessRunning(e.state.shim_pid, e.state.shim_start_ticks)) {
      servers.insert(e.state.shim_pid);
    }
  }
  WaitForPids({servers.begin(), servers.end()}, deadline);
  // One this process started and let go (its agent stopped first) is our
  // zombie now: reap it. Others are init's.
  for (pid_t pid : servers) ::waitpid(pid, nullptr, WNOHANG);
  for (PodRuntime* p : all) {
    try {
      ReleasePod(*p, /*detach=*/false);
    } catch (const std::exception& e) {
      log::Warn("node {}: tear down pod {}/{}: {}", opts_.node_name, p->ns, p->name, e.what());
    }
  }
  try {
    RemoveMountTemplate(MountTemplatePin());
    RemoveOwnMount(PinsDir());
    RemoveOwnMount(opts_.dir + "/pods");
  } catch (const std::exception& e) {
    log::Warn("node {}: {}", opts_.node_name, e.what());
  }
}

// ---- the work queue ----

void NodeAgent::Impl::Enqueue(const std::string& uid) {
  if (uid.empty()) return;
  std::lock_guard<std::mutex> l(mu_);
  if (running_.count(uid)) {
    dirty_.insert(uid);
    return;
  }
  if (queued_.insert(uid).second) ready_.push_back(uid);
  cv_.notify_one();
}

void NodeAgent::Impl::EnqueueAt(const std::string& uid, Clock::time_point when) {
  std::lock_guard<std::mutex> l(mu_);
  timers_.emplace(when, uid);
  cv_.notify_one();
}

void NodeAgent::Impl::WorkerLoop() {
  std::unique_lock<std::mutex> l(mu_);
  while (!stopping_) {
    auto now = Clock::now();
    while (!timers_.empty() && timers_.begin()->first <= now) {
      std::string uid = timers_.begin()->second;
      timers_.erase(timers_.begin());
      if (running_.count(uid)) {
        dirty_.insert(uid);
      } else if (queued_.insert(uid).second) {
        ready_.push_back(uid);
      }
    }
    // A pod already being synced waits in the queue for its worker to finish.
    auto it = std::find_if(ready_.begin(), ready_.end(),
                           [&](const std::string& u) { return !running_.count(u); });
    if (it == ready_.end()) {
      if (timers_.empty()) {
        cv_.wait(l);
      } else {
        cv_.wait_until(l, timers_.begin()->first);
      }
      continue;
    }
    std::string uid = *it;
    ready_.erase(it);
    queued_.erase(uid);
    running_.insert(uid);
    l.unlock();
    try {
      SyncPod(uid);
    } catch (const std::exception& e) {
      log::Warn("node {}: sync pod {}: {}", opts_.node_name, uid, e.what());
      EnqueueAt(uid, Clock::now() + milliseconds(1000));
    }
    l.lock();
    running_.erase(uid);
    if (dirty_.erase(uid) && queued_.insert(uid).second) ready_.push_back(uid);
    cv_.notify_all();
  }
}

void NodeAgent::Impl::WatchContainer(const std::string& uid, const ShimState& state) {
  if (!epoll_) return;  // not started: nobody to tell
  UniqueFd fd(PidfdOpen(state.pid));
  // Gone already, or the pid is another process's now: look again.
  if (!fd || !ProcessRunning(state.pid, state.start_ticks)) {
    Enqueue(uid);
    return;
  }
  std::lock_guard<std::mutex> l(watch_mu_);
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLONESHOT;
  ev.data.fd = fd.get();
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd.get(), &ev);
  int key = fd.get();
  watched_[key] = {uid, std::move(fd)};
  for (const auto& [k, server] : watched_servers_) {
    if (server.first == state.shim_pid) return;
  }
  UniqueFd sfd(PidfdOpen(state.shim_pid));
  if (!sfd || !ProcessRunning(state.shim_pid, state.shim_start_ticks)) {
    Enqueue(uid);  // gone already: CollectExit reaps the container
    return;
  }
  ev.data.fd = sfd.get();
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, sfd.get(), &ev);
  key = sfd.get();
  watched_servers_[key] = {state.shim_pid, std::move(sfd)};
}

void NodeAgent::Impl::MonitorLoop() {
  epoll_event events[64];
  while (!stopping_) {
    int n = ::epoll_wait(epoll_.get(), events, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      log::Error("node {}: epoll_wait: {}", opts_.node_name, std::strerror(errno));
      return;
    }
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == wake_.get()) continue;
      std::string uid;
      bool server_died = false;
      {
        std::lock_guard<std::mutex> l(watch_mu_);
        auto it = watched_.find(fd);
        if (it != watched_.end()) {
          uid = it->second.first;
          ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
          watched_.erase(it);
        } else if (auto s = watched_servers_.find(fd); s != watched_servers_.end()) {
          // Exited when its last container did (an earlier kin serve's), or
          // killed: either way every pod is looked at.
          log::Debug("node {}: shim server {} is gone", opts_.node_name, s->second.first);
          ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
          watched_servers_.erase(s);
          server_died = true;
        } else {
          continue;
        }
      }
      if (!server_died) {
        Enqueue(uid);
        continue;
      }
      std::vector<std::string> all;
      {
        std::lock_guard<std::mutex> l(mu_);
        for (const auto& [u, r] : runtimes_) all.push_back(u);
      }
      for (const auto& u : all) Enqueue(u);
    }
  }
}

// ---- node registration and heartbeats ----

void NodeAgent::Impl::RegisterNode() {
  Json node = BuildNodeObject(opts_);
  Json existing;
  try {
    existing = client_.Create(NodesResource(), "", node);
  } catch (const Error& e) {
    if (e.code() != Code::kAlreadyExists) throw;
    existing = client_.Get(NodesResource(), "", opts_.node_name);
    // Labels and taints follow the config; other writers' labels stay.
    Json patch = {{"metadata", {{"labels", opts_.labels}}}, {"spec", node["spec"]}};
    existing = client_.Patch(NodesResource(), "", opts_.node_name, PatchType::kMerge, patch);
  }
  std::string now = object::NowRfc3339();
  Json conditions = Json::array();
  for (const auto& [type, reason, message] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"MemoryPressure", "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available"},
           {"DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"},
           {"PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"}}) {
    conditions.push_back({{"type", type},
                          {"status", "False"},
                          {"reason", reason},
                          {"message", message},
                          {"lastHeartbeatTime", now},
                          {"lastTransitionTime", now}});
  }
  conditions.push_back({{"type", "Ready"},
                        {"status", "True"},
                        {"reason", "KubeletReady"},
                        {"message", "kubelet is posting ready status"},
                        {"lastHeartbeatTime", now},
                        {"lastTransitionTime", now}});
  Json status = node["status"];
  status["conditions"] = conditions;
  client_.Patch(NodesResource(), "", opts_.node_name, PatchType::kMerge, {{"status", status}},
                "status");
  recorder_.Normal(existing, "NodeReady", "Node " + opts_.node_name + " status is now: NodeReady");
}

void NodeAgent::Impl::RenewLease() {
  // MicroTime, as the coordination API stores renewTime.
  auto now = std::chrono::system_clock::now();
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() %
            1000000;
  char frac[16];
  std::snprintf(frac, sizeof frac, ".%06ld", static_cast<long>(us));
  std::string t = object::FormatRfc3339(now);
  t.insert(t.size() - 1, frac);
  Json spec = {{"holderIdentity", opts_.node_name}, {"leaseDurationSeconds", 40}, {"renewTime", t}};
  try {
    client_.Patch(LeasesResource(), "kube-node-lease", opts_.node_name, PatchType::kMerge,
                  {{"spec", spec}});
  } catch (const Error& e) {
    if (e.code() != Code::kNotFound) throw;
    Json lease = {{"apiVersion", "coordination.k8s.io/v1"},
                  {"kind", "Lease"},
                  {"metadata", {{"name", opts_.node_name}, {"namespace", "kube-node-lease"}}},
                  {"spec", spec}};
    client_.Create(LeasesResource(), "kube-node-lease", lease);
  }
}

void NodeAgent::Impl::HeartbeatLoop() {
  auto next_status = Clock::now() + opts_.status_interval;
  std::unique_lock<std::mutex> l(hb_mu_);
  while (!stopping_) {
    hb_cv_.wait_for(l, opts_.lease_interval, [&] { return stopping_.load(); });
    if (stopping_) break;
    l.unlock();
    try {
      RenewLease();
      if (Clock::now() >= next_status) {
        next_status = Clock::now() + opts_.status_interval;
        Json node = client_.Get(NodesResource(), "", opts_.node_name);
        Json conditions = node["status"].value("conditions", Json::array());
        std::string now = object::NowRfc3339();
        for (auto& c : conditions) c["lastHeartbeatTime"] = now;
        client_.Patch(NodesResource(), "", opts_.node_name, PatchType::kMerge,
                      {{"status", {{"conditions", conditions}}}}, "status");
      }
    } catch (const std::exception& e) {
      log::Warn("node {}: heartbeat: {}", opts_.node_name, e.what());
    }
    l.lock();
  }
}

// ---- adoption after a restart ----

void NodeAgent::Impl::PersistPod(const PodRuntime& p) {
  Json j = {{"uid", p.uid},
            {"namespace", p.ns},
            {"name", p.name},
            {"netns", p.netns},
            {"hostVeth", p.host_veth},
            {"ip", p.ip},
            {"hostNetwork", p.host_network},
            {"startTime", p.start_time}};
  for (const auto& [name, c] : p.containers) {
    if (c.lost) j["lost"][name] = *c.lost;
  }
  WriteFileAtomic(p.dir + "/pod.json", j.dump(), 0644, false);
}

void NodeAgent::Impl::Adopt() {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(opts_.dir + "/pods", ec)) {
    std::string dir = entry.path().string();
    auto text = ReadFileIfExists(dir + "/pod.json");
    Json lost = Json::object();
    auto p = std::make_unique<PodRuntime>();
    p->uid = entry.path().filename().string();
    p->dir = dir;
    if (text) {
      try {
        Json j = Json::parse(*text);
        p->ns = j.value("namespace", "");
        p->name = j.value("name", "");
        p->netns = j.value("netns", "");
        p->host_veth = j.value("hostVeth", "");
        p->ip = j.value("ip", "");
        p->host_network = j.value("hostNetwork", false);
        p->start_time = j.value("startTime", "");
        lost = j.value("lost", Json::object());
      } catch (const std::exception&) {
      }
    }
    // Each container's instances: the highest-numbered directory is current.
    auto adopt_container = [&](const std::string& name, ContainerRuntime& c) {
      c.name = name;
      std::string cdir = dir + "/containers/" + name;
      int highest = -1;
      for (const auto& inst : fs::directory_iterator(cdir, ec)) {
        try {
          highest = std::max(highest, std::stoi(inst.path().filename().string()));
        } catch (const std::exception&) {
        }
      }
      if (lost.is_object() && lost.contains(name) && lost[name].is_object()) {
        c.lost = lost[name];
        c.restart_count = c.lost->value("restartCount", 0);
      }
      c.backoff.base = opts_.crash_backoff;
      c.backoff.reset = opts_.crash_backoff_reset;
      if (highest < 0) return;
      c.restart_count = highest;
      // Its streak is unknown: as if every restart here was one.
      c.backoff.streak = highest - (c.lost ? c.lost->value("restartCount", 0) : 0);
      c.dir = cdir + "/" + std::to_string(highest);
      c.state = ReadShimState(c.dir);
      c.exit = ReadShimExit(c.dir);
      if (highest > 0) {
        c.last_exit = ReadShimExit(cdir + "/" + std::to_string(highest - 1));
        if (auto s = ReadShimState(cdir + "/" + std::to_string(highest - 1))) {
          c.last_started_at = s->started_at;
        }
      }
      c.waiting_reason.clear();
      if (c.state && !c.exit) {
        if (!ProcessRunning(c.state->pid, c.state->start_ticks) &&
            !ProcessRunning(c.state->shim_pid, c.state->shim_start_ticks)) {
          c.exit = ReadShimExit(c.dir);
          if (!c.exit) c.exit = ReapUnkept(c.dir, *c.state);  // the shim died with it
        } else {
          // Running, or exited with its server still recording it (the
          // first sync collects that exit).
          c.started_mono = Clock::now();
          c.backoff.started = c.started_mono;
          if (auto t = object::ParseRfc3339(c.state->started_at)) {
            c.backoff.started -= std::chrono::duration_cast<Clock::duration>(
                std::chrono::system_clock::now() - *t);
          }
          c.started = true;
          WatchContainer(p->uid, *c.state);
          c.shim_watched = true;
        }
      }
    };
    adopt_container(kPauseName, p->pause);
    p->sandbox_ready = p->pause.running() || PodNamespacesExist(PodNsDir(*p));
    for (const auto& cd : fs::directory_iterator(dir + "/containers", ec)) {
      std::string name = cd.path().filename().string();
      if (name == kPauseName) continue;
      adopt_container(name, p->containers[name]);
    }
    if (!p->ip.empty() && !p->host_network) {
      try {
        ipam_.Reserve(netstack::Ipv4Address::Parse(p->ip), p->uid);
      } catch (const std::exception&) {
      }
    }
    log::Debug("node {}: adopted pod {}/{} ({})", opts_.node_name, p->ns, p->name, p->uid);
    std::lock_guard<std::mutex> l(mu_);
    uid_to_key_[p->uid] = {p->ns, p->name};
    runtimes_[p->uid] = std::move(p);
  }
  // Addresses held for pods that left no directory are free again.
  for (const auto& [addr, owner] : ipam_.Allocations()) {
    std::lock_guard<std::mutex> l(mu_);
    if (!runtimes_.count(owner)) ipam_.Release(owner);
  }
}

// ---- syncing one pod ----

PodRuntime& NodeAgent::Impl::RuntimeFor(const Json& pod) {
  const Json& md = pod["metadata"];
  std::string uid = md.value("uid", "");
  std::lock_guard<std::mutex> l(mu_);
  auto& slot = runtimes_[uid];
  if (!slot) {
    slot = std::make_unique<PodRuntime>();
    slot->uid = uid;
    slot->ns = md.value("namespace", "");
    slot->name = md.value("name", "");
    slot->dir = opts_.dir + "/pods/" + uid;
    slot->host_network = pod["spec"].value("hostNetwork", false);
    InheritLostRecord(*slot, pod);
  } else if (slot->name.empty()) {
    // Adopted from a directory without pod.json (kin serve died between
    // making it and writing that): its namespace and name are the pod's.
    slot->ns = md.value("namespace", "");
    slot->name = md.value("name", "");
  }
  uid_to_key_[uid] = {slot->ns, slot->name};
  return *slot;
}

void NodeAgent::Impl::SyncPod(const std::string& uid) {
  std::pair<std::string, std::string> key;
  PodRuntime* known = nullptr;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = uid_to_key_.find(uid);
    if (it != uid_to_key_.end()) key = it->second;
    auto r = runtimes_.find(uid);
    if (r != runtimes_.end()) known = r->second.get();
  }
  ObjectPtr pod;
  if (!key.second.empty()) pod = OwnPod(key.first, key.second);
  if (!pod && key.second.empty()) {
    // Adopted from a directory without a name: look for it by uid once.
    for (ObjectPtr& candidate : pods_->ByIndex(kNodeNameIndex, opts_.node_name)) {
      if ((*candidate)["metadata"].value("uid", "") == uid) {
        pod = std::move(candidate);
        break;
      }
    }
  }
  if (pod && (*pod)["metadata"].value("uid", "") != uid) pod.reset();  // same name, new pod
  if (!pod) {
    // Gone from the API (deleted for good, or never ours any more).
    if (known && pods_->HasSynced()) {
      if (!known->final_deleted) TearDownPod(*known);
      std::lock_guard<std::mutex> l(mu_);
      runtimes_.erase(uid);
      uid_to_key_.erase(uid);
    }
    return;
  }
  PodRuntime& p = RuntimeFor(*pod);
  if (p.final_deleted) return;
  const Json& md = (*pod)["metadata"];
  if (md.contains("deletionTimestamp") && !md["deletionTimestamp"].is_null()) {
    int grace = md.value("deletionGracePeriodSeconds", TerminationGracePeriodSeconds(*pod));
    if (!p.terminating) {
      p.terminating = true;
      p.grace_deadline = Clock::now() + std::chrono::seconds(grace);
      for (auto& [name, c] : p.containers) {
        if (c.running()) StopContainer(p, c, grace, "Stopping container " + name);
      }
    }
    bool all_stopped = true;
    for (auto& [name, c] : p.containers) {
      CollectExit(p, c);
      if (c.running()) {
        all_stopped = false;
        if (Clock::now() >= p.grace_deadline && !c.kill_escalated) {
          c.kill_escalated = true;
          SignalProcess(c.state->pid, c.state->start_ticks, SIGKILL);
        }
      }
    }
    if (!all_stopped) {
      EnqueueAt(uid, std::min(p.grace_deadline, Clock::now() + milliseconds(500)));
      return;
    }
    TearDownPod(p);
    DeleteOptions d;
    d.grace_period_seconds = 0;
    d.precondition_uid = uid;
    try {
      client_.Delete(PodsResource(), p.ns, p.name, d);
    } catch (const Error& e) {
      if (e.code() != Code::kNotFound && e.code() != Code::kConflict) throw;
    }
    p.final_deleted = true;
    return;
  }
  Clock::time_point next = SyncRunningPod(p, *pod);
  if (next != Clock::time_point::max()) EnqueueAt(uid, next);
}

Clock::time_point NodeAgent::Impl::SyncRunningPod(PodRuntime& p, const Json& pod) {
  Clock::time_point next = Clock::time_point::max();
  auto want = [&](Clock::time_point t) { next = std::min(next, t); };
  if (p.start_time.empty()) p.start_time = object::NowRfc3339();
  std::string phase = pod.value("status", Json::object()).value("phase", "Pending");
  bool terminal = phase == "Succeeded" || phase == "Failed";
  // A finished pod this node has no record of (lost in a reboot): its
  // status is final, as the kubelet never moves a pod out of a terminal phase.
  if (terminal && std::none_of(p.containers.begin(), p.containers.end(),
                               [](const auto& c) { return c.second.state.has_value(); })) {
    return next;
  }

  if (!p.sandbox_ready && !terminal) {
    if (Clock::now() < p.sandbox_retry) {
      want(p.sandbox_retry);
      UpdateStatus(p, pod);
      return next;
    }
    try {
      auto t0 = Clock::now();
      EnsureSandbox(p, pod);
      log::Debug("pod {}/{}: sandbox ready in {} ms", p.ns, p.name,
                 std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count());
      p.sandbox_error.clear();
    } catch (const std::exception& e) {
      p.sandbox_error = e.what();
      recorder_.Warning(pod, "FailedCreatePodSandBox",
                        std::string("Failed to create pod sandbox: ") + e.what());
      p.sandbox_retry = Clock::now() + milliseconds(2000);
      want(p.sandbox_retry);
      UpdateStatus(p, pod);
      return next;
    }
  }
  if (p.sandbox_ready && !p.volumes) {
    try {
      p.volumes = std::make_unique<PodVolumes>(PodVolumes::Setup(pod, p.dir, VolumeContextFor(p)));
      p.volumes_refresh_at = Clock::now() + opts_.volume_refresh_interval;
    } catch (const Error& e) {
      recorder_.Warning(pod, "FailedMount", std::string("MountVolume.SetUp failed: ") + e.what());
      for (auto& [name, c] : p.containers) c.waiting_message = e.what();
      want(Clock::now() + milliseconds(2000));
      UpdateStatus(p, pod);
      return next;
    }
  }
  // The kubelet's periodic remount: configMap, secret, downwardAPI and
  // projected files from the objects as they are now, and a service
  // account token its token manager has rotated.
  if (p.volumes && !terminal) {
    if (Clock::now() >= p.volumes_refresh_at) {
      try {
        p.volumes->Refresh(pod, VolumeContextFor(p));
      } catch (const Error& e) {
        recorder_.Warning(pod, "FailedMount", std::string("MountVolume.SetUp failed: ") + e.what());
      }
      p.volumes_refresh_at = Clock::now() + opts_.volume_refresh_interval;
    }
    want(p.volumes_refresh_at);
  }

  const Json& spec = pod["spec"];
  std::string policy = RestartPolicy(pod);
  for (auto& [name, c] : p.containers) CollectExit(p, c);

  // Init containers, one at a time, in order.
  bool initialized = true;
  bool pod_failed = false;
  for (const auto& ic : spec.value("initContainers", Json::array())) {
    std::string name = ic.value("name", "");
    ContainerRuntime& c = p.containers[name];
    c.name = name;
    c.init = true;
    if (c.exit && c.exit->exit_code == 0) continue;
    initialized = false;
    if (terminal || !p.sandbox_ready) break;
    if (c.running()) break;
    if (c.exit) {  // failed
      if (policy == "Never") {
        pod_failed = true;
        break;
      }
      if (Clock::now() < c.backoff_until) {
        want(c.backoff_until);
        break;
      }
    }
    if (!StartContainer(p, pod, c, ic)) want(c.backoff_until);
    break;
  }

  if (initialized && !pod_failed && p.sandbox_ready && !terminal) {
    for (const auto& cs : spec.value("containers", Json::array())) {
      std::string name = cs.value("name", "");
      ContainerRuntime& c = p.containers[name];
      c.name = name;
      if (c.running()) {
        if (c.killing) {
          if (!c.kill_escalated && Clock::now() >= c.kill_deadline) {
            c.kill_escalated = true;
            SignalProcess(c.state->pid, c.state->start_ticks, SIGKILL);
          }
          want(std::min(c.kill_deadline, Clock::now() + milliseconds(500)));
          continue;
        }
        if (!c.probes_set) {
          // Adopted after a restart: it started before; readiness is probed afresh.
          // Its imageID (a pulled image's repo digest) is the store's.
          try {
            c.image_id = opts_.images->Resolve(cs.value("image", "")).image_id;
          } catch (const Error&) {
          }
          if (cs.contains("livenessProbe")) c.liveness.emplace(cs["livenessProbe"], true);
          if (cs.contains("readinessProbe")) c.readiness.emplace(cs["readinessProbe"], false);
          c.started = true;
          c.ready = !c.readiness.has_value();
          c.probes_set = true;
        }
        want(RunProbes(p, pod, c, cs));
        continue;
      }
      if (c.exit) {
        bool restart = policy == "Always" || (policy == "OnFailure" && c.exit->exit_code != 0);
        if (!restart) continue;
        if (Clock::now() < c.backoff_until) {
          want(c.backoff_until);
          continue;
        }
      }
      if (!StartContainer(p, pod, c, cs)) want(c.backoff_until);
    }
  }
  UpdateStatus(p, pod);
  return next;
}

std::optional<Json> NodeAgent::Impl::Lookup(const std::string& kind, const std::string& ns,
                                            const std::string& name) {
  const ResourceInfo& r = kind == "Secret" ? *FindResource("", "v1", "secrets")
                          : kind == "PersistentVolumeClaim"
                              ? *FindResource("", "v1", "persistentvolumeclaims")
                          : kind == "PersistentVolume" ? *FindResource("", "v1", "persistentvolumes")
                                                       : *FindResource("", "v1", "configmaps");
  try {
    return client_.Get(r, ns, name);
  } catch (const Error& e) {
    if (e.code() == Code::kNotFound) return std::nullopt;
    throw;
  }
}

void NodeAgent::Impl::EnsureSandbox(PodRuntime& p, const Json& pod) {
  fs::create_directories(p.dir + "/etc");
  const Json& spec = pod["spec"];
  p.host_network = spec.value("hostNetwork", false);
  std::string netns_path;
  if (p.host_network) {
    p.ip = opts_.node_ip;
    netns_path = "/run/netns/" + opts_.node_netns;
  } else {
    if (p.netns.empty()) p.netns = PodNetnsName(opts_.name_prefix, pod);
    p.host_veth = netstack::HostVethName(p.uid);
    netstack::Ipv4Address ip = ipam_.Allocate(p.uid);
    p.ip = ip.ToString();
    PersistPod(p);
    netns_path = "/run/netns/" + p.netns;
    // A namespace there with nothing of the pod running in it is one whose
    // making was cut short (kin serve killed between creating it and
    // wiring its veth): made again, as its interface may be missing or half
    // set up. (Found by the soak's two kills at once.)
    const bool any_running =
        p.pause.running() || std::any_of(p.containers.begin(), p.containers.end(),
                                         [](const auto& c) { return c.second.running(); });
    if (fs::exists(netns_path) && !any_running) {
      try {
        netstack::DetachPod(opts_.node_netns, p.host_veth);
      } catch (const std::exception&) {
        // not attached: nothing to detach
      }
      DeleteNamedNetns(p.netns);
    }
    if (!fs::exists(netns_path)) {
      NamedNetns ns = NamedNetns::Create(p.netns);
      netstack::PodInterface pi;
      pi.node_netns = opts_.node_netns;
      pi.pod_netns = p.netns;
      pi.host_veth = p.host_veth;
      pi.address = netstack::Ipv4Cidr(ip, opts_.pod_cidr.prefix_len());
      pi.gateway = ipam_.gateway();
      netstack::ApplyPlan(netstack::PlanPodAttach(pi));
      ns.Release();  // kept until TearDownPod
    }
  }
  // The pod's own files, bind-mounted into every container.
  // hostNetwork pods share the node's UTS namespace in Kubernetes: the node's name.
  std::string hostname = p.host_network ? opts_.node_name : PodHostname(pod);
  WriteFileAtomic(p.dir + "/etc/hosts", RenderEtcHosts(pod, p.ip, opts_.dns.cluster_domain), 0644,
                  false);
  WriteFileAtomic(p.dir + "/etc/resolv.conf", RenderResolvConf(pod, opts_.dns), 0644, false);
  WriteFileAtomic(p.dir + "/etc/hostname", hostname + "\n", 0644, false);
  if (MountsServiceAccount(pod)) {
    // What in-cluster clients read (client-go's rest.InClusterConfig).
    const std::string sa = p.dir + "/serviceaccount";
    fs::create_directories(sa);
    auto ca = ReadFileIfExists(opts_.cluster_ca_file);
    if (!ca) throw Error::NotFound("cluster CA " + opts_.cluster_ca_file + " not found");
    WriteFileAtomic(sa + "/ca.crt", *ca, 0644, false);
    WriteFileAtomic(sa + "/namespace", p.ns, 0644, false);
    WriteFileAtomic(sa + "/token", opts_.service_account_token(pod), 0644, false);
  }
  PersistPod(p);

  // The pod's UTS and IPC namespaces are held by bind mounts; a pod that
  // shares its PID namespace has a pause process hold all three instead.
  if (!spec.value("shareProcessNamespace", false)) {
    if (!PodNamespacesExist(PodNsDir(p))) CreatePodNamespaces(PodNsDir(p), hostname);
  } else if (!p.pause.running()) {
    ContainerRuntime& c = p.pause;
    c.name = kPauseName;
    if (c.state) c.restart_count++;
    c.state.reset();
    c.exit.reset();
    c.dir = p.dir + "/containers/" + kPauseName + "/" + std::to_string(c.restart_count);
    fs::create_directories(c.dir);
    ShimConfig sc;
    sc.spec.name = "pause";
    // Built in: the shim runs it in its forked child, without an exec.
    sc.spec.argv = {opts_.kin_binary, "agnhost", "pause"};
    sc.spec.env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"};
    sc.spec.net_ns = netns_path;
    sc.spec.new_uts_ns = true;
    sc.spec.hostname = hostname;
    sc.spec.new_ipc_ns = true;
    sc.spec.new_pid_ns = spec.value("shareProcessNamespace", false);
    sc.cgroup = CgroupName(p.uid, "pause");
    sc.log_path = c.dir + "/log";
    WriteFileAtomic(c.dir + "/config.json", ShimConfigToJson(sc).dump(), 0644, false);
    RemoveStaleCgroup(sc.cgroup);
    c.state = shims_->Start(c.dir);
    WatchContainer(p.uid, *c.state);
  }
  p.sandbox_ready = true;
}

bool NodeAgent::Impl::MountsServiceAccount(const Json& pod) {
  if (!opts_.service_account_token) return false;
  const Json& spec = pod["spec"];
  // Admitted with its kube-api-access volume: the volume serves it.
  for (const auto& v : spec.value("volumes", Json::array())) {
    if (v.is_object() && v.value("name", "").rfind(kServiceAccountVolumePrefix, 0) == 0) {
      return false;
    }
  }
  // The pod's preference, then its ServiceAccount's, as the admission reads them.
  auto automount = spec.find("automountServiceAccountToken");
  if (automount != spec.end() && automount->is_boolean()) return automount->get<bool>();
  try {
    Json account = client_.Get(*FindResource("", "v1", "serviceaccounts"),
                               object::Str(pod["metadata"], "namespace"),
                               spec.value("serviceAccountName", std::string("default")));
    const Json& a = object::Field(account, "automountServiceAccountToken");
    if (a.is_boolean()) return a.get<bool>();
  } catch (const Error&) {
  }
  return true;
}

VolumeContext NodeAgent::Impl::VolumeContextFor(const PodRuntime& p) {
  VolumeContext vc;
  vc.lookup = [this](const std::string& k, const std::string& ns, const std::string& n) {
    return Lookup(k, ns, n);
  };
  vc.pod_ip = p.ip;
  vc.host_ip = opts_.node_ip;
  vc.node_name = opts_.node_name;
  if (tokens_) {
    // A TokenRequest bound to the pod, with the source's audience and
    // lifetime, cached and rotated as the kubelet's token manager does.
    vc.service_account_token = [this](const Json& pod, const Json& source) {
      return tokens_->Token(pod, source);
    };
  } else if (opts_.service_account_token) {
    vc.service_account_token = [f = opts_.service_account_token](const Json& pod, const Json&) {
      return f(pod);
    };
  }
  return vc;
}

std::vector<BindMount> NodeAgent::Impl::PodFileMounts(const PodRuntime& p, const Json& spec,
                                                      bool own_root) const {
  std::set<std::string> taken;
  for (const auto& vm : spec.value("volumeMounts", Json::array()))
    taken.insert(vm.value("mountPath", ""));
  std::vector<BindMount> mounts;
  // As the ServiceAccount admission plugin adds it: not over a container's
  // own mount at that path.
  // (The directory is there when the sandbox was made for the old way,
  // MountsServiceAccount: not for a pod with a kube-api-access volume, nor
  // one made before kin wrote credentials. A built-in image runs on the
  // host's root, where the path is not made.)
  if (own_root && opts_.service_account_token && !taken.count(kServiceAccountMountPath) &&
      fs::exists(p.dir + "/serviceaccount")) {
    mounts.push_back({p.dir + "/serviceaccount", kServiceAccountMountPath, true});
  }
  for (const char* f : {"/etc/hosts", "/etc/resolv.conf", "/etc/hostname"}) {
    if (taken.count(f)) continue;
    // hostNetwork pods see the node's hosts file, as kubelet gives them the host's.
    if (p.host_network && std::string(f) == "/etc/hosts") continue;
    mounts.push_back({p.dir + "/etc/" + (f + 5), f, false});
  }
  return mounts;
}

namespace {

// A duration as Go prints one ("523ms", "1.234s").
std::string GoDuration(milliseconds d) {
  if (d.count() < 1000) return std::to_string(d.count()) + "ms";
  std::string s =
      std::to_string(d.count() / 1000) + "." + std::to_string(1000 + d.count() % 1000).substr(1);
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s + "s";
}

}  // namespace

Keyring NodeAgent::Impl::PullKeyring(const Json& pod) {
  Keyring keyring;
  const std::string ns = object::Str(pod["metadata"], "namespace");
  Json refs = pod["spec"].value("imagePullSecrets", Json::array());
  if (!refs.is_array() || refs.empty()) {
    // As the ServiceAccount admission plugin fills them in.
    std::string sa = pod["spec"].value("serviceAccountName", std::string("default"));
    try {
      Json account = client_.Get(*FindResource("", "v1", "serviceaccounts"), ns, sa);
      refs = account.value("imagePullSecrets", Json::array());
    } catch (const Error&) {
      refs = Json::array();
    }
  }
  if (!refs.is_array()) return keyring;
  std::vector<std::string> missing;
  for (const auto& r : refs) {
    std::string name = r.is_object() ? r.value("name", std::string()) : "";
    if (name.empty()) continue;
    std::optional<Json> secret;
    try {
      secret = Lookup("Secret", ns, name);
    } catch (const Error&) {
    }
    if (!secret) {
      missing.push_back(ns + "/" + name);
      continue;
    }
    const Json& data = object::Field(*secret, "data");
    for (const char* key : {".dockerconfigjson", ".dockercfg"}) {
      if (!data.is_object() || !data.contains(key) || !data[key].is_string()) continue;
      auto text = Base64Decode(data[key].get<std::string>());
      try {
        if (text) ParseDockerConfig(*text, "secret " + ns + "/" + name, keyring);
      } catch (const Error& e) {
        log::Info("node {}: pod {}/{}: {}", opts_.node_name, ns,
                  object::Str(pod["metadata"], "name"), e.what());
      }
    }
  }
  if (!missing.empty()) {
    recorder_.Warning(pod, "FailedToRetrieveImagePullSecret",
                      "Unable to retrieve some image pull secrets (" + Join(missing, ", ") +
                          "); attempting to pull the image may not succeed.");
  }
  return keyring;
}

void NodeAgent::Impl::ImagePullFailed(const Json& pod, ContainerRuntime& c,
                                      const std::string& reason, const std::string& message) {
  c.pull_failures++;
  c.waiting_reason = reason;
  c.waiting_message = message;
  if (reason == "ErrImageNeverPull") {
    recorder_.Warning(pod, "ErrImageNeverPull", message);
  } else {
    recorder_.Warning(pod, "Failed", message);
  }
  recorder_.Warning(pod, "Failed", "Error: " + reason);
  // The kubelet's image back-off: the crash back-off's base, doubling to 5 min.
  auto delay =
      std::min(milliseconds(300000), opts_.crash_backoff * (1 << std::min(c.pull_failures - 1, 5)));
  c.pull_retry_at = Clock::now() + delay;
  // The reason turns to ImagePullBackOff at the next look (as the kubelet's
  // next sync finds the image in back-off).
  c.backoff_until = std::min(c.pull_retry_at, Clock::now() + milliseconds(1000));
}

std::optional<ImageConfig> NodeAgent::Impl::EnsureImage(const Json& pod, ContainerRuntime& c,
                                                        const Json& spec) {
  c.image = spec.value("image", "");
  auto now = Clock::now();
  if (c.pull) {
    if (c.pull->wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
      c.backoff_until = now + milliseconds(100);  // looked at again soon
      return std::nullopt;
    }
    PullOutcome out = c.pull->get();
    c.pull.reset();
    if (!out.ok) {
      ImagePullFailed(pod, c, "ErrImagePull",
                      "Failed to pull image \"" + c.image + "\": " + out.error +
                          (c.pull_hint.empty() ? "" : "; " + c.pull_hint));
      return std::nullopt;
    }
    recorder_.Normal(pod, "Pulled",
                     "Successfully pulled image \"" + c.image + "\" in " + GoDuration(out.took) +
                         " (" + GoDuration(out.took) + " including waiting). Image size: " +
                         std::to_string(out.size) + " bytes.");
    try {
      ImageConfig image = opts_.images->Resolve(c.image);
      c.pull_failures = 0;
      c.image_id = image.image_id;
      return image;
    } catch (const Error& e) {
      ImagePullFailed(pod, c, "ErrImagePull",
                      "Failed to pull image \"" + c.image + "\": " + e.what());
      return std::nullopt;
    }
  }
  if (c.pull_failures > 0 && now < c.pull_retry_at) {
    if (c.waiting_reason == "ErrImagePull") {
      recorder_.Normal(pod, "BackOff", "Back-off pulling image \"" + c.image + "\"");
      recorder_.Warning(pod, "Failed", "Error: ImagePullBackOff");
      c.waiting_message =
          "Back-off pulling image \"" + c.image + "\": ErrImagePull: " + c.waiting_message;
      c.waiting_reason = "ImagePullBackOff";
    }
    c.backoff_until = c.pull_retry_at;
    return std::nullopt;
  }
  std::optional<ImageConfig> present;
  std::string not_found;
  try {
    present = opts_.images->Resolve(c.image);
  } catch (const Error& e) {
    if (e.code() != Code::kNotFound) {
      ImagePullFailed(pod, c, "ErrImagePull",
                      "Failed to pull image \"" + c.image + "\": " + e.what());
      return std::nullopt;
    }
    not_found = e.what();
  }
  // The API server defaults the policy (Always for :latest or no tag).
  std::string policy = spec.value("imagePullPolicy", std::string("IfNotPresent"));
  // Built-in, host-mapped and loaded images have no registry to ask: they
  // are used as they are whatever the policy says.
  bool pull = present ? (policy == "Always" && !present->image_id.empty()) : policy != "Never";
  if (!present && policy == "Never") {
    ImagePullFailed(pod, c, "ErrImageNeverPull",
                    "Container image \"" + c.image + "\" is not present with pull policy of Never");
    return std::nullopt;
  }
  if (pull && opts_.puller != nullptr) {
    recorder_.Normal(pod, "Pulling", "Pulling image \"" + c.image + "\"");
    c.pull = opts_.puller->Pull(c.image, PullKeyring(pod));
    c.pull_hint = not_found;
    c.waiting_reason = "ContainerCreating";
    c.waiting_message.clear();
    c.backoff_until = now + milliseconds(100);
    return std::nullopt;
  }
  if (!present) {
    ImagePullFailed(pod, c, "ErrImagePull",
                    "Failed to pull image \"" + c.image + "\": " + not_found);
    return std::nullopt;
  }
  c.pull_failures = 0;
  c.image_id = present->image_id;
  recorder_.Normal(pod, "Pulled", "Container image \"" + c.image + "\" already present on machine");
  return present;
}

// Containers' logs live on the node's disk, not with the pod's state on
// tmpfs, so that after a reboot `kubectl logs --previous` shows what ran
// before it (the kubelet keeps them in /var/log/pods). They go with the pod.
static std::string ContainerLogPath(const std::string& node_dir, const std::string& uid,
                                    const std::string& container, int instance) {
  return node_dir + "/logs/" + uid + "/" + container + "/" + std::to_string(instance) + ".log";
}

bool NodeAgent::Impl::StartContainer(PodRuntime& p, const Json& pod, ContainerRuntime& c,
                                     const Json& spec) {
  std::optional<ImageConfig> pulled_or_present = EnsureImage(pod, c, spec);
  if (!pulled_or_present) return false;
  ImageConfig image = std::move(*pulled_or_present);
  const bool restart = c.state.has_value();  // an instance ran here before
  c.backoff.base = opts_.crash_backoff;
  c.backoff.reset = opts_.crash_backoff_reset;
  int instance = restart ? c.restart_count + 1 : c.restart_count;
  ContainerSpec cs;
  try {
    EnvContext env;
    env.pod_ip = p.ip;
    env.host_ip = opts_.node_ip;
    env.node_name = opts_.node_name;
    env.lookup = [this](const std::string& k, const std::string& ns, const std::string& n) {
      return Lookup(k, ns, n);
    };
    Json services = client_.List(ServicesResource(), "");
    env.service_env = ServiceEnvVars(pod, services.value("items", Json::array()));
    PodContext ctx;
    ctx.image = image;
    ctx.env = env;
    ctx.cgroup_name = opts_.name_prefix + ShortUid(p.uid) + "-" + c.name;
    cs = BuildContainerSpec(pod, spec, ctx);
  } catch (const Error& e) {
    c.waiting_reason = "CreateContainerConfigError";
    c.waiting_message = e.what();
    recorder_.Warning(pod, "Failed", std::string("Error: ") + e.what());
    c.backoff_until = Clock::now() + opts_.crash_backoff;
    return false;
  }
  std::string netns_path = "/run/netns/" + (p.host_network ? opts_.node_netns : p.netns);
  cs.net_ns = netns_path;
  pid_t pause_pid = p.pause.state ? p.pause.state->pid : 0;
  if (pause_pid <= 0) {
    PodNamespacePaths pins = PodNamespacesIn(PodNsDir(p));
    cs.uts_ns = pins.uts;
    cs.ipc_ns = pins.ipc;
  } else {
    cs.uts_ns = "/proc/" + std::to_string(pause_pid) + "/ns/uts";
    cs.ipc_ns = "/proc/" + std::to_string(pause_pid) + "/ns/ipc";
    if (pod["spec"].value("shareProcessNamespace", false)) {
      cs.pid_ns = "/proc/" + std::to_string(pause_pid) + "/ns/pid";
    }
  }
  cs.new_uts_ns = false;
  cs.hostname.clear();
  if (!pod["spec"].value("shareProcessNamespace", false)) cs.new_pid_ns = true;
  for (auto& m : PodFileMounts(p, spec, !image.layers.empty())) cs.mounts.push_back(m);
  if (cs.new_mount_ns) {
    cs.mount_template = MountTemplatePin();
    cs.detach_mounts = {opts_.dir + "/pods"};
  }
  try {
    if (p.volumes) {
      for (auto& m : p.volumes->MountsFor(pod, spec)) {
        // A built-in image runs on the host's root, where the credentials'
        // path is not made (and the pods' directory is detached from its
        // mount namespace). They are bound instead on a directory of the
        // node's own, empty on the host and the same for every pod (each
        // container binds its pod's there, in its own mount namespace), and
        // the image is told where (kin agnhost's inclusterclient reads them).
        if (image.layers.empty() && m.target == kServiceAccountMountPath &&
            !fs::is_directory(m.target)) {
          if (!cs.new_mount_ns) continue;
          const std::string at = opts_.dir + "/built-in-serviceaccount";
          fs::create_directories(at);
          cs.mounts.push_back({m.source, at, true});
          cs.env.push_back(std::string(agnhost::kBuiltInServiceAccountDirEnv) + "=" + at);
          continue;
        }
        cs.mounts.push_back(m);
      }
    }
  } catch (const Error& e) {
    c.waiting_reason = "CreateContainerConfigError";
    c.waiting_message = e.what();
    recorder_.Warning(pod, "Failed", std::string("Error: ") + e.what());
    c.backoff_until = Clock::now() + opts_.crash_backoff;
    return false;
  }
  std::string dir = p.dir + "/containers/" + c.name + "/" + std::to_string(instance);
  fs::create_directories(dir);
  if (!image.layers.empty()) {
    // The image's layers under a per-instance overlay: writes stay with this instance.
    RootfsSpec rootfs;
    rootfs.lower_dirs.assign(image.layers.rbegin(), image.layers.rend());
    rootfs.upper_dir = dir + "/rootfs/upper";
    rootfs.work_dir = dir + "/rootfs/work";
    rootfs.read_only =
        spec.value("securityContext", Json::object()).value("readOnlyRootFilesystem", false);
    fs::create_directories(rootfs.upper_dir);
    fs::create_directories(rootfs.work_dir);
    cs.rootfs = rootfs;
  }
  ShimConfig sc;
  sc.spec = cs;
  sc.cgroup = CgroupName(p.uid, c.name);
  sc.log_path = ContainerLogPath(opts_.dir, p.uid, c.name, instance);
  fs::create_directories(fs::path(sc.log_path).parent_path());
  sc.log_max_bytes = opts_.log_max_bytes;
  sc.log_max_files = opts_.log_max_files;
  WriteFileAtomic(dir + "/config.json", ShimConfigToJson(sc).dump(), 0644, false);
  // The previous instance's exit is known, so a cgroup of this name is a
  // leftover of a launch whose server died before it answered.
  RemoveStaleCgroup(sc.cgroup);
  try {
    auto t0 = Clock::now();
    ShimState state = shims_->Start(dir);
    log::Debug("pod {}/{}: container {} started in {} ms", p.ns, p.name, c.name,
               std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count());
    if (c.state) {
      c.last_exit = c.exit;
      c.last_started_at = c.state->started_at;
    }
    c.restart_count = instance;
    c.backoff.Started(Clock::now(), restart);
    c.dir = dir;
    c.state = state;
    c.exit.reset();
    c.waiting_reason.clear();
    c.waiting_message.clear();
    c.killing = false;
    c.kill_escalated = false;
    c.started_mono = Clock::now();
    c.ready = false;
    c.started = false;
    c.liveness.reset();
    c.readiness.reset();
    c.startup.reset();
    if (spec.contains("livenessProbe")) c.liveness.emplace(spec["livenessProbe"], true);
    if (spec.contains("readinessProbe")) c.readiness.emplace(spec["readinessProbe"], false);
    if (spec.contains("startupProbe")) c.startup.emplace(spec["startupProbe"], true);
    c.started = !c.startup.has_value();
    c.ready = !c.readiness.has_value() && c.started;
    c.probes_set = true;
    WatchContainer(p.uid, state);
    recorder_.Normal(pod, "Created", "Created container " + c.name);
    recorder_.Normal(pod, "Started", "Started container " + c.name);
    return true;
  } catch (const Error& e) {
    // The launch failed: count it as a failed instance, as a runtime's
    // "StartError" is, so back-off applies.
    if (c.state) {
      c.last_exit = c.exit;
      c.last_started_at = c.state->started_at;
    }
    c.restart_count = instance;
    c.backoff.Started(Clock::now(), restart);
    c.dir = dir;
    c.state = ShimState{};
    c.exit = ShimExit{e.code() == Code::kNotFound ? 127 : 128, 0, false, object::NowRfc3339()};
    c.waiting_reason = "RunContainerError";
    c.waiting_message = e.what();
    WriteFileAtomic(
        dir + "/exit.json",
        Json({{"exitCode", c.exit->exit_code}, {"finishedAt", c.exit->finished_at}}).dump(), 0644,
        false);
    recorder_.Warning(pod, "Failed", std::string("Error: ") + e.what());
    c.backoff_until = Clock::now() + c.backoff.Exited(Clock::now());
    return false;
  }
}

void NodeAgent::Impl::CollectExit(PodRuntime& p, ContainerRuntime& c) {
  if (!c.state || c.exit || c.state->pid == 0) return;
  auto e = ReadShimExit(c.dir);
  if (!e) {
    if (ProcessRunning(c.state->shim_pid, c.state->shim_start_ticks)) {
      if (ProcessRunning(c.state->pid, c.state->start_ticks)) return;  // its pidfd wakes us
      // Exited; the server is reaping it and writing exit.json (it does
      // that between two launches): look again shortly.
      EnqueueAt(p.uid, Clock::now() + milliseconds(5));
      return;
    }
    // The server died (its pidfd woke us): it may have recorded the exit
    // just before; else the container, running or not, is nobody's now.
    e = ReadShimExit(c.dir);
    if (!e) e = ReapUnkept(c.dir, *c.state);
  }
  c.exit = e;
  c.ready = false;
  // Back-off before the next start, as the kubelet's (CrashBackoff).
  c.backoff_until = Clock::now() + c.backoff.Exited(Clock::now());
}

void NodeAgent::Impl::StopContainer(PodRuntime& p, ContainerRuntime& c, int grace_seconds,
                                    const std::string& why) {
  if (!c.running() || c.killing) return;
  c.killing = true;
  c.kill_reason = why;
  c.kill_deadline = Clock::now() + std::chrono::seconds(grace_seconds);
  if (ObjectPtr pod = OwnPod(p.ns, p.name)) recorder_.Normal(*pod, "Killing", why);
  int sig = grace_seconds <= 0 ? SIGKILL : SIGTERM;
  if (sig == SIGKILL) c.kill_escalated = true;
  SignalProcess(c.state->pid, c.state->start_ticks, sig);
}

Clock::time_point NodeAgent::Impl::RunProbes(PodRuntime& p, const Json& pod, ContainerRuntime& c,
                                             const Json& spec) {
  Clock::time_point next = Clock::time_point::max();
  ProbeTarget target;
  target.netns_path = "/run/netns/" + (p.host_network ? opts_.node_netns : p.netns);
  target.pod_ip = p.ip;
  target.exec = [this, &c](const std::vector<std::string>& argv, milliseconds timeout) {
    return ExecInContainer(c, argv, timeout);
  };
  auto now = Clock::now();
  bool last_success = false;
  auto run = [&](ProbeSchedule& s, const Json& probe, const char* kind) {
    auto due = s.NextDue(c.started_mono);
    if (now < due) {
      next = std::min(next, due);
      return false;
    }
    ProbeOutcome out;
    try {
      out = RunProbe(probe, spec, target);
    } catch (const Error& e) {
      out.success = false;
      out.message = e.what();
    }
    if (!out.success) {
      recorder_.Warning(pod, "Unhealthy", std::string(kind) + " probe failed: " + out.message);
    }
    last_success = out.success;
    s.Record(out.success, Clock::now());
    next = std::min(next, s.NextDue(c.started_mono));
    return true;
  };
  if (c.startup && !c.started) {
    // Built with an initial result of true: false means failureThreshold
    // failures in a row; one success means started.
    bool ran = run(*c.startup, spec["startupProbe"], "Startup");
    if (ran && last_success) {
      c.started = true;
      c.started_mono = Clock::now();  // liveness and readiness start counting now
      if (!c.readiness) c.ready = true;
    } else if (!c.startup->result()) {
      StopContainer(p, c, TerminationGracePeriodSeconds(pod),
                    "Container " + c.name + " failed startup probe, will be restarted");
      return Clock::now() + milliseconds(200);
    }
    if (!c.started) return next;
  }
  if (c.liveness) {
    run(*c.liveness, spec["livenessProbe"], "Liveness");
    if (!c.liveness->result()) {
      StopContainer(p, c, TerminationGracePeriodSeconds(pod),
                    "Container " + c.name + " failed liveness probe, will be restarted");
      return Clock::now() + milliseconds(200);
    }
  }
  if (c.readiness) {
    run(*c.readiness, spec["readinessProbe"], "Readiness");
    c.ready = c.readiness->result();
  }
  return next;
}

ExecResult NodeAgent::Impl::ExecInContainer(const ContainerRuntime& c,
                                            const std::vector<std::string>& argv,
                                            milliseconds timeout) {
  ExecResult r;
  if (!c.running()) {
    r.output = "container is not running";
    return r;
  }
  // nsenter joins every namespace of the container, its mount namespace
  // (and so its root) included.
  SpawnOptions so;
  so.argv = {"nsenter", "-t", std::to_string(c.state->pid), "-m", "-u", "-i", "-n", "-p", "--"};
  so.argv.insert(so.argv.end(), argv.begin(), argv.end());
  so.stdin_mode = SpawnOptions::Stdio::kNull;
  so.stdout_mode = SpawnOptions::Stdio::kPipe;
  so.stderr_to_stdout = true;
  try {
    ChildProcess child = ChildProcess::Spawn(so);
    auto st = child.WaitFor(timeout);
    if (!st) {
      child.Stop(milliseconds(0));
      r.exit_code = -1;
      r.output = "command timed out";
      return r;
    }
    char buf[4096];
    ssize_t n = ::read(child.stdout_pipe().get(), buf, sizeof buf);
    if (n > 0) r.output.assign(buf, static_cast<size_t>(n));
    r.exit_code = st->signal ? 128 + st->signal : st->code;
  } catch (const std::exception& e) {
    r.output = e.what();
  }
  return r;
}

namespace {

// Every live container of the pod (and its pause holder).
std::vector<ContainerRuntime*> LiveContainers(PodRuntime& p) {
  std::vector<ContainerRuntime*> all;
  for (auto& [name, c] : p.containers) all.push_back(&c);
  all.push_back(&p.pause);
  return all;
}

// Waits until every process in `pids` has exited (pidfds, no polling loop per process).
void WaitForPids(const std::vector<pid_t>& pids, Clock::time_point deadline) {
  std::vector<UniqueFd> fds;
  for (pid_t pid : pids) {
    UniqueFd fd(PidfdOpen(pid));
    if (fd) fds.push_back(std::move(fd));
  }
  while (!fds.empty() && Clock::now() < deadline) {
    std::vector<pollfd> pfds;
    for (const auto& fd : fds) pfds.push_back({fd.get(), POLLIN, 0});
    int n = ::poll(pfds.data(), pfds.size(), 100);
    if (n <= 0) continue;
    std::vector<UniqueFd> left;
    for (size_t i = 0; i < fds.size(); ++i) {
      if (!(pfds[i].revents & POLLIN)) left.push_back(std::move(fds[i]));
    }
    fds = std::move(left);
  }
}

// Kills and removes what is left of the cgroup `name` (nothing when it is
// gone already): a container's, before an instance is launched in it (one
// left by a server that died during a launch) or once its server is gone.
void RemoveStaleCgroup(const std::string& name) {
  try {
    if (auto cg = Cgroup::Open(name)) cg->Remove();
  } catch (const std::exception& e) {
    log::Warn("remove cgroup {}: {}", name, e.what());
  }
}

// The container of `dir` whose shim server is gone (killed) without
// recording its exit: nobody reads its output, records its exit or removes
// its cgroup any more. Kill what is left of it (through its cgroup, its
// descendants too), remove the cgroup and write DIR/exit.json as the server
// would have: 137 (SIGKILL) when it still ran, as containerd reports a task
// whose shim died, else 255 (its exit status is lost).
ShimExit ReapUnkept(const std::string& dir, const ShimState& state) {
  ShimExit e;
  const bool ran = ProcessRunning(state.pid, state.start_ticks);
  e.exit_code = ran ? 128 + SIGKILL : 255;
  e.signal = ran ? SIGKILL : 0;
  e.finished_at = object::NowRfc3339();
  try {
    if (auto cfg = ReadFileIfExists(dir + "/config.json")) {
      std::string cgroup = ShimConfigFromJson(Json::parse(*cfg)).cgroup;
      if (!cgroup.empty()) RemoveStaleCgroup(cgroup);
    }
  } catch (const std::exception& ex) {
    log::Warn("{}: {}", dir, ex.what());
  }
  try {
    WriteFileAtomic(dir + "/exit.json",
                    Json({{"exitCode", e.exit_code},
                          {"signal", e.signal},
                          {"oomKilled", false},
                          {"finishedAt", e.finished_at}})
                        .dump(),
                    0644, false);
  } catch (const std::exception& ex) {
    log::Warn("{}: {}", dir, ex.what());
  }
  return e;
}

// Waits until every container in `ending` has exited and its shim server
// has recorded it (exit.json; the cgroup is gone by then), or the server is
// gone too: then what is left of the container is reaped here (ReapUnkept).
void WaitForExits(const std::vector<Ending>& ending, Clock::time_point deadline) {
  std::vector<pid_t> pids;
  for (const auto& e : ending) pids.push_back(e.state.pid);
  WaitForPids(pids, deadline);
  // The server writes exit.json as soon as it reaps, between two of its
  // launches: a few milliseconds at most.
  auto pause = milliseconds(1);
  for (;;) {
    bool all = std::all_of(ending.begin(), ending.end(), [](const Ending& e) {
      return ReadShimExit(e.dir).has_value() ||
             !ProcessRunning(e.state.shim_pid, e.state.shim_start_ticks);
    });
    if (all || Clock::now() >= deadline) break;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, milliseconds(20));
  }
  for (const auto& e : ending) {
    if (!ReadShimExit(e.dir) && !ProcessRunning(e.state.shim_pid, e.state.shim_start_ticks)) {
      ReapUnkept(e.dir, e.state);
    }
  }
}

}  // namespace

void NodeAgent::Impl::KillPod(PodRuntime& p, std::vector<Ending>& ending) {
  for (ContainerRuntime* c : LiveContainers(p)) {
    if (!c->state || c->state->pid <= 0 || c->exit) continue;
    SignalProcess(c->state->pid, c->state->start_ticks, SIGKILL);
    ending.push_back({c->dir, *c->state});
  }
}

std::string NodeAgent::Impl::CgroupName(const std::string& uid,
                                        const std::string& container) const {
  std::string name = opts_.name_prefix + ShortUid(uid) + "-" + container;
  if (name.size() > 200) name.resize(200);
  return name;
}

void NodeAgent::Impl::ReleasePod(PodRuntime& p, bool detach) {
  // Its containers are gone (KillPod, WaitForExits): a cgroup still named
  // after one is a leftover of a launch its shim server died in.
  for (const auto& [name, c] : p.containers) RemoveStaleCgroup(CgroupName(p.uid, name));
  RemoveStaleCgroup(CgroupName(p.uid, "pause"));
  TeardownPodVolumes(p.dir);
  RemovePodNamespaces(PodNsDir(p));
  ::rmdir(PodNsDir(p).c_str());
  p.volumes.reset();
  if (tokens_) tokens_->ForgetPod(p.uid);
  if (!p.netns.empty() && !p.host_network) {
    // Deleting the pod's namespace deletes its veth pair too; detaching first
    // makes that synchronous, so the host side is gone when we return.
    if (detach) {
      try {
        netstack::DetachPod(opts_.node_netns,
                            p.host_veth.empty() ? netstack::HostVethName(p.uid) : p.host_veth);
      } catch (const std::exception& e) {
        log::Warn("pod {}/{}: detach: {}", p.ns, p.name, e.what());
      }
    }
    try {
      DeleteNamedNetns(p.netns);
    } catch (const std::exception& e) {
      log::Warn("pod {}/{}: delete netns {}: {}", p.ns, p.name, p.netns, e.what());
    }
  }
  ipam_.Release(p.uid);
  std::error_code ec;
  fs::remove_all(p.dir, ec);
  fs::remove_all(opts_.dir + "/logs/" + p.uid, ec);
  p.sandbox_ready = false;
}

void NodeAgent::Impl::TearDownPod(PodRuntime& p) {
  // Everything of the pod dies at once: containers first, then the sandbox.
  std::vector<Ending> ending;
  KillPod(p, ending);
  WaitForExits(ending, Clock::now() + milliseconds(10000));
  ReleasePod(p, /*detach=*/true);
  log::Info("node {}: removed pod {}/{}", opts_.node_name, p.ns, p.name);
}

// ---- status ----

Json NodeAgent::Impl::BuildStatus(PodRuntime& p, const Json& pod) {
  const Json& spec = pod["spec"];
  std::string policy = RestartPolicy(pod);
  Json status = pod.value("status", Json::object());
  auto container_status = [&](const Json& cs, bool init) {
    std::string name = cs.value("name", "");
    Json s = {{"name", name},
              {"image", cs.value("image", "")},
              {"imageID", ""},
              {"ready", false},
              {"restartCount", 0},
              {"started", false},
              {"state", {{"waiting", {{"reason", "ContainerCreating"}}}}},
              {"lastState", Json::object()}};
    auto it = p.containers.find(name);
    if (it == p.containers.end()) {
      if (!p.sandbox_ready && !p.sandbox_error.empty()) {
        s["state"]["waiting"]["reason"] = init ? "PodInitializing" : "ContainerCreating";
      } else if (!init && !spec.value("initContainers", Json::array()).empty()) {
        s["state"]["waiting"]["reason"] = "PodInitializing";
      }
      return s;
    }
    ContainerRuntime& c = it->second;
    s["restartCount"] = c.restart_count;
    s["imageID"] = !c.image_id.empty() ? c.image_id : c.image.empty() ? "" : "kin://" + c.image;
    auto terminated = [&](const ShimExit& e, const std::string& started_at) {
      Json t = {{"exitCode", e.exit_code},
                {"reason", TerminatedReason(e)},
                {"startedAt", started_at.empty() ? nullptr : Json(started_at)},
                {"finishedAt", e.finished_at}};
      if (e.signal) t["signal"] = e.signal;
      return Json{{"terminated", t}};
    };
    if (c.state && c.state->pid != 0) s["containerID"] = c.container_id(p.uid);
    if (c.running()) {
      s["state"] = {{"running", {{"startedAt", c.state->started_at}}}};
      s["ready"] = c.ready;
      s["started"] = c.started;
    } else if (c.exit) {
      bool restart = !init
                         ? (policy == "Always" || (policy == "OnFailure" && c.exit->exit_code != 0))
                         : (c.exit->exit_code != 0 && policy != "Never");
      if (restart && !p.terminating) {
        s["state"] = {
            {"waiting",
             {{"reason", c.waiting_reason.empty() ? "CrashLoopBackOff" : c.waiting_reason},
              {"message", c.waiting_message.empty()
                              ? "back-off restarting failed container " + c.name + " in pod " +
                                    p.name + "_" + p.ns + "(" + p.uid + ")"
                              : c.waiting_message}}}};
        s["lastState"] = terminated(*c.exit, c.state ? c.state->started_at : "");
      } else {
        s["state"] = terminated(*c.exit, c.state ? c.state->started_at : "");
        if (c.last_exit) s["lastState"] = terminated(*c.last_exit, c.last_started_at);
      }
    } else if (!c.waiting_reason.empty()) {
      s["state"] = {{"waiting", {{"reason", c.waiting_reason}}}};
      if (!c.waiting_message.empty()) s["state"]["waiting"]["message"] = c.waiting_message;
    }
    if (c.running() && c.last_exit) s["lastState"] = terminated(*c.last_exit, c.last_started_at);
    if (s["lastState"].empty() && !c.last_exit && c.lost && c.lost->contains("lastState")) {
      s["lastState"] = (*c.lost)["lastState"];
    }
    return s;
  };

  Json init_statuses = Json::array(), statuses = Json::array();
  bool initialized = true;
  for (const auto& ic : spec.value("initContainers", Json::array())) {
    Json s = container_status(ic, true);
    if (!(s["state"].contains("terminated") && s["state"]["terminated"]["exitCode"] == 0)) {
      initialized = false;
    }
    init_statuses.push_back(s);
  }
  bool all_ready = true, any_running = false, all_terminated = true, any_failed = false;
  bool init_failed_for_good = false;
  for (const auto& s : init_statuses) {
    if (s["state"].contains("terminated") && s["state"]["terminated"]["exitCode"] != 0) {
      init_failed_for_good = true;
    }
  }
  for (const auto& cs : spec.value("containers", Json::array())) {
    Json s = container_status(cs, false);
    if (!s["ready"].get<bool>()) all_ready = false;
    if (s["state"].contains("running")) any_running = true;
    if (!s["state"].contains("terminated")) all_terminated = false;
    if (s["state"].contains("terminated") && s["state"]["terminated"]["exitCode"] != 0) {
      any_failed = true;
    }
    statuses.push_back(s);
  }
  std::string phase = "Pending";
  if (init_failed_for_good) {
    phase = "Failed";
  } else if (initialized && all_terminated && !statuses.empty()) {
    phase = any_failed ? "Failed" : "Succeeded";
  } else if (initialized &&
             (any_running || p.sandbox_ready ||
              // Restarting after a reboot: it ran, as the kubelet keeps it Running.
              std::any_of(p.containers.begin(), p.containers.end(),
                          [](const auto& c) { return !c.second.init && c.second.lost; })) &&
             std::any_of(statuses.begin(), statuses.end(), [](const Json& s) {
               return s["state"].contains("running") || s["state"].contains("terminated") ||
                      s.value("restartCount", 0) > 0;
             })) {
    phase = "Running";
  }
  if (p.terminating) all_ready = false;
  bool ready = all_ready && (phase == "Running");
  // Readiness gates: every condition they name must be True too.
  for (const auto& g : spec.value("readinessGates", Json::array())) {
    bool ok = false;
    for (const auto& c : status.value("conditions", Json::array())) {
      if (c.value("type", "") == g.value("conditionType", "") && c.value("status", "") == "True")
        ok = true;
    }
    if (!ok) ready = false;
  }
  std::string not_ready;
  for (const auto& s : statuses) {
    if (!s["ready"].get<bool>())
      not_ready += (not_ready.empty() ? "" : " ") + s["name"].get<std::string>();
  }
  Json conds = Json::array();
  conds.push_back(Condition("PodReadyToStartContainers", p.sandbox_ready));
  if (initialized) {
    conds.push_back(Condition("Initialized", true));
  } else {
    std::string pending;
    for (const auto& s : init_statuses) {
      if (!(s["state"].contains("terminated") && s["state"]["terminated"]["exitCode"] == 0)) {
        pending += (pending.empty() ? "" : " ") + s["name"].get<std::string>();
      }
    }
    conds.push_back(Condition("Initialized", false, "ContainersNotInitialized",
                              "containers with incomplete status: [" + pending + "]"));
  }
  if (ready) {
    conds.push_back(Condition("Ready", true));
    conds.push_back(Condition("ContainersReady", true));
  } else if (phase == "Succeeded" || phase == "Failed") {
    conds.push_back(Condition("Ready", false, "PodCompleted"));
    conds.push_back(Condition("ContainersReady", false, "PodCompleted"));
  } else {
    std::string msg = "containers with unready status: [" + not_ready + "]";
    conds.push_back(Condition("Ready", false, "ContainersNotReady", msg));
    conds.push_back(Condition("ContainersReady", false, "ContainersNotReady", msg));
  }
  conds.push_back(Condition("PodScheduled", true));
  // Keep transition times of conditions whose status did not change.
  std::string now = object::NowRfc3339();
  Json old = status.value("conditions", Json::array());
  for (auto& c : conds) {
    c["lastTransitionTime"] = now;
    for (const auto& o : old) {
      if (o.value("type", "") == c["type"] && o.value("status", "") == c["status"] &&
          o.contains("lastTransitionTime")) {
        c["lastTransitionTime"] = o["lastTransitionTime"];
      }
    }
  }
  // Conditions other components own (readiness gates) stay.
  for (const auto& o : old) {
    std::string t = o.value("type", "");
    if (t != "PodReadyToStartContainers" && t != "Initialized" && t != "Ready" &&
        t != "ContainersReady" && t != "PodScheduled") {
      conds.push_back(o);
    }
  }
  Json out = {{"phase", phase},
              {"conditions", conds},
              {"hostIP", opts_.node_ip},
              {"hostIPs", Json::array({{{"ip", opts_.node_ip}}})},
              {"startTime", p.start_time},
              {"qosClass", QosClass(pod)},
              {"containerStatuses", statuses}};
  if (!init_statuses.empty()) out["initContainerStatuses"] = init_statuses;
  if (!p.ip.empty() && p.sandbox_ready) {
    out["podIP"] = p.ip;
    out["podIPs"] = Json::array({{{"ip", p.ip}}});
  }
  return out;
}

void NodeAgent::Impl::UpdateStatus(PodRuntime& p, const Json& pod) {
  Json status = BuildStatus(p, pod);
  // Compare without the times that BuildStatus stamps afresh.
  Json current = pod.value("status", Json::object());
  if (status == current) return;
  std::string serialized = status.dump();
  if (serialized == p.last_status) return;
  try {
    client_.Patch(PodsResource(), p.ns, p.name, PatchType::kMerge, {{"status", status}}, "status");
    p.last_status = std::move(serialized);
  } catch (const Error& e) {
    if (e.code() != Code::kNotFound) throw;
  }
}

// ---- pod I/O targets, read from disk ----

static ContainerIoTarget NodeAgentIoTarget(const NodeAgentOptions& opts, const Json& pod,
                                           const std::string& container, bool previous) {
  const Json& md = pod["metadata"];
  std::string pod_name = md.value("name", ""), ns = md.value("namespace", "");
  std::vector<std::string> names;
  for (const auto& c : pod["spec"].value("containers", Json::array()))
    names.push_back(c.value("name", ""));
  std::vector<std::string> all = names;
  for (const auto& c : pod["spec"].value("initContainers", Json::array()))
    all.push_back(c.value("name", ""));
  std::string name = container;
  if (name.empty()) {
    if (names.size() != 1) {
      std::string list;
      for (const auto& n : names) list += (list.empty() ? "" : " ") + n;
      throw Error::BadRequest("a container name must be specified for pod " + pod_name +
                              ", choose one of: [" + list + "]");
    }
    name = names[0];
  } else if (std::find(all.begin(), all.end(), name) == all.end()) {
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : " ") + n;
    throw Error::BadRequest("container " + name + " is not valid for pod " + pod_name);
  }
  ContainerIoTarget t;
  t.pod_uid = md.value("uid", "");
  t.container = name;
  std::string pod_dir = opts.dir + "/pods/" + t.pod_uid;
  std::string cdir = pod_dir + "/containers/" + name;
  int highest = -1;
  std::error_code ec;
  for (const auto& inst : fs::directory_iterator(cdir, ec)) {
    try {
      highest = std::max(highest, std::stoi(inst.path().filename().string()));
    } catch (const std::exception&) {
    }
  }
  // After a reboot only the logs on disk know a container that ran before
  // it and was not started again (a finished pod's).
  const std::string log_dir =
      fs::path(ContainerLogPath(opts.dir, t.pod_uid, name, 0)).parent_path().string();
  for (const auto& f : fs::directory_iterator(log_dir, ec)) {
    const std::string file = f.path().filename().string();
    const size_t dot = file.find(".log");
    if (dot == 0 || dot == std::string::npos || dot + 4 != file.size()) continue;
    if (file.find_first_not_of("0123456789") != dot) continue;
    highest = std::max(highest, std::atoi(file.c_str()));
  }
  if (highest < 0) {
    throw Error::BadRequest("container \"" + name + "\" in pod \"" + pod_name +
                            "\" is waiting to start: ContainerCreating");
  }
  int instance = highest;
  if (previous) {
    if (highest == 0) {
      throw Error::BadRequest("previous terminated container \"" + name + "\" in pod \"" +
                              pod_name + "\" not found");
    }
    instance = highest - 1;
  }
  std::string idir = cdir + "/" + std::to_string(instance);
  t.log_path = ContainerLogPath(opts.dir, md.value("uid", ""), name, instance);
  // A container started by a kin that kept logs with the pod's state.
  if (!fs::exists(t.log_path) && fs::exists(idir + "/log")) t.log_path = idir + "/log";
  if (auto cfg = ReadFileIfExists(idir + "/config.json")) {
    ShimConfig sc = ShimConfigFromJson(Json::parse(*cfg));
    t.spec = sc.spec;
    t.cgroup = sc.cgroup;
  }
  if (auto st = ReadShimState(idir)) {
    bool exited = ReadShimExit(idir).has_value();
    if (!exited && st->pid > 0 && ProcessStartTicks(st->pid) == st->start_ticks) {
      t.running = true;
      t.pid = st->pid;
    }
  }
  t.netns_path = t.spec.net_ns;
  if (auto pj = ReadFileIfExists(pod_dir + "/pod.json")) {
    Json j = Json::parse(*pj, nullptr, false);
    if (j.is_object() && !j.value("netns", "").empty())
      t.netns_path = "/run/netns/" + j.value("netns", "");
  }
  return t;
}

// ---- the public face ----

NodeAgent::NodeAgent(Client& client, NodeAgentOptions opts)
    : impl_(std::make_unique<Impl>(client, std::move(opts))) {}
NodeAgent::~NodeAgent() = default;
void NodeAgent::Start() { impl_->Start(); }
void NodeAgent::Stop() { impl_->Stop(); }

namespace {
// TearDownPods works from disk alone; any API call is a bug.
class NoApiClient : public Client {
 public:
  [[noreturn]] static void Fail() { throw Error::Internal("node agent teardown needs no API"); }
  Json Get(const ResourceInfo&, const std::string&, const std::string&) override { Fail(); }
  Json List(const ResourceInfo&, const std::string&, const ListOptions&) override { Fail(); }
  Json Create(const ResourceInfo&, const std::string&, const Json&, const WriteOptions&) override {
    Fail();
  }
  Json Update(const ResourceInfo&, const std::string&, const Json&, const std::string&,
              const WriteOptions&) override {
    Fail();
  }
  Json Patch(const ResourceInfo&, const std::string&, const std::string&, PatchType, const Json&,
             const std::string&, const WriteOptions&) override {
    Fail();
  }
  Json Delete(const ResourceInfo&, const std::string&, const std::string&,
              const DeleteOptions&) override {
    Fail();
  }
  std::unique_ptr<Watch> StartWatch(const ResourceInfo&, const std::string&,
                                    const ListOptions&) override {
    Fail();
  }
  Json CreateSubresource(const ResourceInfo&, const std::string&, const std::string&,
                         const std::string&, const Json&) override {
    Fail();
  }
};
}  // namespace

void NodeAgent::TearDownPods(const NodeAgentOptions& opts) {
  if (!std::filesystem::exists(opts.dir)) return;
  NoApiClient none;
  Impl impl(none, opts);
  impl.TearDownAllPods();
}
const std::string& NodeAgent::node_name() const { return impl_->node_name(); }
ContainerIoTarget NodeAgent::IoTarget(const Json& pod, const std::string& container,
                                      bool previous) const {
  return NodeAgentIoTarget(impl_->options(), pod, container, previous);
}

}  // namespace kin
