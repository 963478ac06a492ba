#include "controllers/scheduler.h"

#include "controllers/storage.h"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "base/error.h"
#include "base/log.h"
#include "client/object.h"
#include "client/quantity.h"
#include "controllers/pod_util.h"

namespace kin::controllers {
namespace scheduler_internal {
namespace {

// Scoring counts a container without a request as this much (upstream's
// DefaultMilliCPURequest / DefaultMemoryRequest), so that pods without
// requests still spread.
constexpr int64_t kNonZeroMilliCpu = 100;
constexpr int64_t kNonZeroMemory = 200LL * 1024 * 1024;

const Json* At(const Json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return nullptr;
  return &*it;
}
std::string Str(const Json& j, const char* key) {
  const Json* v = At(j, key);
  return v && v->is_string() ? v->get<std::string>() : "";
}
const Json& Empty() {
  static const Json empty = Json::object();
  return empty;
}
const Json& Obj(const Json& j, const char* key) {
  const Json* v = At(j, key);
  return v ? *v : Empty();
}
std::vector<const Json*> Items(const Json& j, const char* key) {
  std::vector<const Json*> out;
  const Json* v = At(j, key);
  if (v && v->is_array()) {
    for (const auto& e : *v) out.push_back(&e);
  }
  return out;
}

struct Resources {
  int64_t milli_cpu = 0;
  int64_t memory = 0;
  int64_t ephemeral = 0;
  std::map<std::string, int64_t> scalar;  // extended resources, hugepages

  void Set(const std::string& name, const Json& value) {
    std::string text = value.is_string() ? value.get<std::string>() : value.dump();
    if (name == "cpu") {
      milli_cpu = ParseQuantityMilli(text).value_or(0);
    } else {
      int64_t v = ParseQuantityValue(text).value_or(0);
      if (name == "memory") {
        memory = v;
      } else if (name == "ephemeral-storage") {
        ephemeral = v;
      } else if (name != "pods") {
        scalar[name] = v;
      }
    }
  }
  void Add(const Resources& o, int sign = 1) {
    milli_cpu += sign * o.milli_cpu;
    memory += sign * o.memory;
    ephemeral += sign * o.ephemeral;
    for (const auto& [k, v] : o.scalar) scalar[k] += sign * v;
  }
  void Max(const Resources& o) {
    milli_cpu = std::max(milli_cpu, o.milli_cpu);
    memory = std::max(memory, o.memory);
    ephemeral = std::max(ephemeral, o.ephemeral);
    for (const auto& [k, v] : o.scalar) scalar[k] = std::max(scalar[k], v);
  }
};

struct HostPort {
  std::string ip;  // "0.0.0.0" for all
  std::string protocol;
  int64_t port = 0;
  auto operator<=>(const HostPort&) const = default;
};

struct Taint {
  std::string key, value, effect;
};

struct PodInfo {
  std::string node;
  Resources requests;        // for fitting
  int64_t nz_milli_cpu = 0;  // for scoring
  int64_t nz_memory = 0;
  std::vector<HostPort> ports;
};

struct NodeInfo {
  bool present = false;  // known to the node informer (else only pods name it)
  Json node;
  Resources allocatable;
  int64_t allowed_pods = 0;
  std::vector<Taint> taints;  // spec.taints plus not-ready/unreachable when not Ready
  Resources requested;
  int64_t nz_milli_cpu = 0;
  int64_t nz_memory = 0;
  int64_t pods = 0;
  std::multiset<HostPort> ports;
};

// A container's requests; limits stand in for absent requests, as API
// defaulting would have done. `nonzero`: upstream's scoring defaults.
Resources ContainerRequests(const Json& c, bool nonzero) {
  Resources r;
  const Json& res = Obj(c, "resources");
  const Json& requests = Obj(res, "requests");
  const Json& limits = Obj(res, "limits");
  for (const Json* list : {&limits, &requests}) {
    for (auto it = list->begin(); it != list->end(); ++it) {
      if (list == &limits && requests.contains(it.key())) continue;
      r.Set(it.key(), it.value());
    }
  }
  if (nonzero) {
    if (!requests.contains("cpu") && !limits.contains("cpu")) r.milli_cpu = kNonZeroMilliCpu;
    if (!requests.contains("memory") && !limits.contains("memory")) r.memory = kNonZeroMemory;
  }
  return r;
}

// resource.PodRequests: the sum over containers (and sidecars), or the
// largest init container (plus the sidecars started before it) if more,
// plus the pod overhead.
Resources PodRequests(const Json& pod, bool nonzero) {
  const Json& spec = Obj(pod, "spec");
  Resources sum;
  for (const Json* c : Items(spec, "containers")) sum.Add(ContainerRequests(*c, nonzero));
  Resources sidecars, init_max;
  for (const Json* c : Items(spec, "initContainers")) {
    Resources r = ContainerRequests(*c, nonzero);
    if (Str(*c, "restartPolicy") == "Always") {
      sum.Add(r);
      sidecars.Add(r);
      init_max.Max(sidecars);
    } else {
      r.Add(sidecars);
      init_max.Max(r);
    }
  }
  sum.Max(init_max);
  const Json& overhead = Obj(spec, "overhead");
  Resources extra;
  for (auto it = overhead.begin(); it != overhead.end(); ++it) extra.Set(it.key(), it.value());
  sum.Add(extra);
  return sum;
}

std::vector<HostPort> PodHostPorts(const Json& pod) {
  std::vector<HostPort> out;
  for (const Json* c : Items(Obj(pod, "spec"), "containers")) {
    for (const Json* p : Items(*c, "ports")) {
      const Json* hp = At(*p, "hostPort");
      if (!hp || !hp->is_number_integer() || hp->get<int64_t>() <= 0) continue;
      HostPort h;
      h.ip = Str(*p, "hostIP");
      if (h.ip.empty()) h.ip = "0.0.0.0";
      h.protocol = Str(*p, "protocol");
      if (h.protocol.empty()) h.protocol = "TCP";
      h.port = hp->get<int64_t>();
      out.push_back(h);
    }
  }
  return out;
}

bool Tolerates(const Json& toleration, const Taint& t) {
  std::string effect = Str(toleration, "effect");
  if (!effect.empty() && effect != t.effect) return false;
  std::string key = Str(toleration, "key");
  if (!key.empty() && key != t.key) return false;
  std::string op = Str(toleration, "operator");
  if (op == "Exists") return true;
  if (op.empty() || op == "Equal") return Str(toleration, "value") == t.value;
  return false;
}

bool ToleratedBy(const std::vector<const Json*>& tolerations, const Taint& t) {
  return std::any_of(tolerations.begin(), tolerations.end(),
                     [&](const Json* tol) { return Tolerates(*tol, t); });
}

bool ParseInt(const std::string& s, int64_t& out) {
  if (s.empty()) return false;
  size_t used = 0;
  try {
    out = std::stoll(s, &used, 10);
  } catch (...) {
    return false;
  }
  return used == s.size();
}

// One NodeSelectorRequirement against a value that may be absent.
bool MatchesRequirement(const Json& req, const std::string* value) {
  std::string op = Str(req, "operator");
  std::vector<std::string> values;
  for (const Json* v : Items(req, "values")) {
    if (v->is_string()) values.push_back(v->get<std::string>());
  }
  auto in = [&] {
    return value && std::find(values.begin(), values.end(), *value) != values.end();
  };
  if (op == "In") return in();
  if (op == "NotIn") return !in();
  if (op == "Exists") return value != nullptr;
  if (op == "DoesNotExist") return value == nullptr;
  if (op == "Gt" || op == "Lt") {
    int64_t have = 0, want = 0;
    if (!value || values.size() != 1 || !ParseInt(*value, have) || !ParseInt(values[0], want)) {
      return false;
    }
    return op == "Gt" ? have > want : have < want;
  }
  return false;
}

bool MatchesTerm(const Json& term, const Json& node) {
  auto exprs = Items(term, "matchExpressions");
  auto fields = Items(term, "matchFields");
  if (exprs.empty() && fields.empty()) return false;  // an empty term matches nothing
  const Json& labels = Obj(Obj(node, "metadata"), "labels");
  for (const Json* e : exprs) {
    std::string key = Str(*e, "key");
    const Json* v = At(labels, key.c_str());
    std::string value = v && v->is_string() ? v->get<std::string>() : "";
    if (!MatchesRequirement(*e, v ? &value : nullptr)) return false;
  }
  for (const Json* f : fields) {
    if (Str(*f, "key") != "metadata.name") return false;
    std::string name = Str(Obj(node, "metadata"), "name");
    if (!MatchesRequirement(*f, &name)) return false;
  }
  return true;
}

bool SpecMatchesNodeAffinity(const Json& spec, const Json& node) {
  const Json& labels = Obj(Obj(node, "metadata"), "labels");
  const Json& selector = Obj(spec, "nodeSelector");
  for (auto it = selector.begin(); it != selector.end(); ++it) {
    const Json* v = At(labels, it.key().c_str());
    if (!v || *v != it.value()) return false;
  }
  const Json* required = At(Obj(Obj(spec, "affinity"), "nodeAffinity"),
                            "requiredDuringSchedulingIgnoredDuringExecution");
  if (!required) return true;
  for (const Json* term : Items(*required, "nodeSelectorTerms")) {
    if (MatchesTerm(*term, node)) return true;
  }
  return false;
}

bool MatchesNodeSelectorAndAffinity(const Json& pod, const Json& node) {
  return SpecMatchesNodeAffinity(Obj(pod, "spec"), node);
}

bool PortsConflict(const std::multiset<HostPort>& used, const HostPort& want) {
  if (want.ip == "0.0.0.0") {
    return std::any_of(used.begin(), used.end(), [&](const HostPort& u) {
      return u.protocol == want.protocol && u.port == want.port;
    });
  }
  return used.count(want) > 0 || used.count(HostPort{"0.0.0.0", want.protocol, want.port}) > 0;
}

struct Verdict {
  std::vector<std::string> reasons;  // empty: fits
  bool unresolvable = false;         // preemption would not help
};

// The default profile's filters in upstream order; the first failing
// plugin decides, as the framework stops there.
Verdict Filter(const Json& pod, const PodInfo& want, const NodeInfo& n,
               const std::vector<Json>& volume_affinity) {
  Verdict v;
  const Json& spec = Obj(pod, "spec");
  auto tolerations = Items(spec, "tolerations");
  if (Obj(n.node, "spec").value("unschedulable", false) &&
      !ToleratedBy(tolerations, {"node.kubernetes.io/unschedulable", "", "NoSchedule"})) {
    return {{"node(s) were unschedulable"}, true};
  }
  for (const Taint& t : n.taints) {
    if (t.effect != "NoSchedule" && t.effect != "NoExecute") continue;
    if (!ToleratedBy(tolerations, t)) {
      return {{"node(s) had untolerated taint {" + t.key + ": " + t.value + "}"}, true};
    }
  }
  if (!MatchesNodeSelectorAndAffinity(pod, n.node)) {
    return {{"node(s) didn't match Pod's node affinity/selector"}, true};
  }
  // VolumeBinding: each bound PersistentVolume's required node affinity.
  for (const Json& required : volume_affinity) {
    bool any = false;
    for (const Json* term : Items(required, "nodeSelectorTerms")) {
      any = any || MatchesTerm(*term, n.node);
    }
    if (!any) return {{"node(s) had volume node affinity conflict"}, true};
  }
  for (const HostPort& p : want.ports) {
    if (PortsConflict(n.ports, p)) {
      return {{"node(s) didn't have free ports for the requested pod ports"}, false};
    }
  }
  if (n.pods + 1 > n.allowed_pods) v.reasons.push_back("Too many pods");
  const Resources& r = want.requests;
  const Resources& a = n.allocatable;
  const Resources& used = n.requested;
  if (r.milli_cpu > 0 && r.milli_cpu > a.milli_cpu - used.milli_cpu) {
    v.reasons.push_back("Insufficient cpu");
  }
  if (r.memory > 0 && r.memory > a.memory - used.memory) {
    v.reasons.push_back("Insufficient memory");
  }
  if (r.ephemeral > 0 && r.ephemeral > a.ephemeral - used.ephemeral) {
    v.reasons.push_back("Insufficient ephemeral-storage");
  }
  for (const auto& [name, q] : r.scalar) {
    if (q <= 0) continue;
    auto ai = a.scalar.find(name);
    auto ui = used.scalar.find(name);
    int64_t free =
        (ai == a.scalar.end() ? 0 : ai->second) - (ui == used.scalar.end() ? 0 : ui->second);
    if (q > free) v.reasons.push_back("Insufficient " + name);
  }
  return v;
}

// NodeResourcesFit (LeastAllocated) + NodeResourcesBalancedAllocation, each
// 0..100 over cpu and memory, on the non-zero requests.
int64_t Score(const PodInfo& want, const NodeInfo& n) {
  auto least = [](int64_t requested, int64_t capacity) -> int64_t {
    if (capacity <= 0 || requested > capacity) return 0;
    return (capacity - requested) * 100 / capacity;
  };
  int64_t cpu_req = n.nz_milli_cpu + want.nz_milli_cpu;
  int64_t mem_req = n.nz_memory + want.nz_memory;
  int64_t least_score =
      (least(cpu_req, n.allocatable.milli_cpu) + least(mem_req, n.allocatable.memory)) / 2;
  auto fraction = [](int64_t requested, int64_t capacity) {
    if (capacity <= 0) return 1.0;
    return std::min(1.0, static_cast<double>(requested) / static_cast<double>(capacity));
  };
  double std_dev = std::abs(fraction(cpu_req, n.allocatable.milli_cpu) -
                            fraction(mem_req, n.allocatable.memory)) /
                   2;
  auto balanced = static_cast<int64_t>((1 - std_dev) * 100);
  return least_score + balanced;
}

// "0/3 nodes are available: 1 a, 2 b." with the reasons sorted as strings.
std::string FitMessage(size_t nodes, const std::map<std::string, int>& histogram) {
  std::vector<std::string> parts;
  for (const auto& [reason, count] : histogram)
    parts.push_back(std::to_string(count) + " " + reason);
  std::sort(parts.begin(), parts.end());
  std::string msg = "0/" + std::to_string(nodes) + " nodes are available:";
  if (!parts.empty()) {
    msg += " ";
    for (size_t i = 0; i < parts.size(); ++i) msg += (i ? ", " : "") + parts[i];
    msg += ".";
  }
  return msg;
}

}  // namespace

struct State {
  std::map<std::string, NodeInfo> nodes;
  std::map<std::string, PodInfo> charged;      // pod key -> what it costs, where
  std::map<std::string, std::string> assumed;  // pod key -> node, bound by us, not yet seen

  void SetNode(const Json& node) {
    std::string name = Str(Obj(node, "metadata"), "name");
    NodeInfo& n = nodes[name];
    n.present = true;
    n.node = node;
    const Json& status = Obj(node, "status");
    const Json* alloc = At(status, "allocatable");
    if (!alloc) alloc = At(status, "capacity");
    n.allocatable = Resources{};
    n.allowed_pods = 0;
    if (alloc && alloc->is_object()) {
      for (auto it = alloc->begin(); it != alloc->end(); ++it) {
        n.allocatable.Set(it.key(), it.value());
        if (it.key() == "pods") {
          std::string text = it->is_string() ? it->get<std::string>() : it->dump();
          n.allowed_pods = ParseQuantityValue(text).value_or(0);
        }
      }
    }
    n.taints.clear();
    for (const Json* t : Items(Obj(node, "spec"), "taints")) {
      n.taints.push_back({Str(*t, "key"), Str(*t, "value"), Str(*t, "effect")});
    }
    // What the node lifecycle controller's taints would say, in case it has
    // not (yet) put them there.
    std::string ready;
    for (const Json* c : Items(status, "conditions")) {
      if (Str(*c, "type") == "Ready") ready = Str(*c, "status");
    }
    if (ready != "True") {
      std::string key =
          ready == "Unknown" ? "node.kubernetes.io/unreachable" : "node.kubernetes.io/not-ready";
      bool have = std::any_of(n.taints.begin(), n.taints.end(), [&](const Taint& t) {
        return t.key == key && t.effect == "NoSchedule";
      });
      if (!have) n.taints.push_back({key, "", "NoSchedule"});
    }
  }

  void RemoveNode(const std::string& name) {
    auto it = nodes.find(name);
    if (it == nodes.end()) return;
    if (it->second.pods == 0) {
      nodes.erase(it);
    } else {
      it->second.present = false;
      it->second.node = Json::object();
    }
  }

  static PodInfo Info(const Json& pod, const std::string& node) {
    PodInfo p;
    p.node = node;
    p.requests = PodRequests(pod, false);
    Resources nz = PodRequests(pod, true);
    p.nz_milli_cpu = nz.milli_cpu;
    p.nz_memory = nz.memory;
    p.ports = PodHostPorts(pod);
    return p;
  }

  void Charge(const std::string& key, const Json& pod, const std::string& node) {
    Uncharge(key);
    PodInfo p = Info(pod, node);
    NodeInfo& n = nodes[node];
    n.requested.Add(p.requests);
    n.nz_milli_cpu += p.nz_milli_cpu;
    n.nz_memory += p.nz_memory;
    n.pods++;
    for (const HostPort& h : p.ports) n.ports.insert(h);
    charged[key] = std::move(p);
  }

  // True when the pod was charged somewhere.
  bool Uncharge(const std::string& key) {
    auto it = charged.find(key);
    if (it == charged.end()) return false;
    const PodInfo& p = it->second;
    auto ni = nodes.find(p.node);
    if (ni != nodes.end()) {
      NodeInfo& n = ni->second;
      n.requested.Add(p.requests, -1);
      n.nz_milli_cpu -= p.nz_milli_cpu;
      n.nz_memory -= p.nz_memory;
      n.pods--;
      for (const HostPort& h : p.ports) {
        auto hi = n.ports.find(h);
        if (hi != n.ports.end()) n.ports.erase(hi);
      }
      if (!n.present && n.pods == 0) nodes.erase(ni);
    }
    charged.erase(it);
    return true;
  }

  size_t PresentNodes() const {
    size_t count = 0;
    for (const auto& [name, n] : nodes) count += n.present ? 1 : 0;
    return count;
  }

  ScheduleResult Schedule(const Json& pod, const std::vector<Json>& volume_affinity = {}) const {
    PodInfo want = Info(pod, "");
    std::map<std::string, int> reasons;
    std::map<std::string, int> preemption;
    size_t considered = 0;
    const NodeInfo* best = nullptr;
    int64_t best_score = -1;
    for (const auto& [name, n] : nodes) {
      if (!n.present) continue;
      ++considered;
      Verdict v = Filter(pod, want, n, volume_affinity);
      if (!v.reasons.empty()) {
        for (const auto& r : v.reasons) reasons[r]++;
        // Priorities are not modelled: no pod is a victim.
        preemption[v.unresolvable ? "Preemption is not helpful for scheduling"
                                  : "No preemption victims found for incoming pod"]++;
        continue;
      }
      int64_t score = Score(want, n);
      if (!best || score > best_score || (score == best_score && n.pods < best->pods)) {
        best = &n;
        best_score = score;
      }
    }
    ScheduleResult result;
    if (best) {
      result.node = Str(Obj(best->node, "metadata"), "name");
      return result;
    }
    if (considered == 0) {
      result.failure_message = "no nodes available to schedule pods";
      return result;
    }
    result.failure_message = FitMessage(considered, reasons);
    if (Str(Obj(pod, "spec"), "preemptionPolicy") == "Never") {
      result.failure_message += " preemption: not eligible due to preemptionPolicy=Never.";
    } else {
      result.failure_message += " preemption: " + FitMessage(considered, preemption);
    }
    return result;
  }
};

}  // namespace scheduler_internal

bool PodSpecMatchesNodeAffinity(const Json& pod_spec, const Json& node) {
  return scheduler_internal::SpecMatchesNodeAffinity(pod_spec, node);
}

using scheduler_internal::State;

namespace {

// Informer items may come from a list, whose items lack kind and
// apiVersion; events need them to name the object.
Json AsPod(Json pod) {
  pod["kind"] = "Pod";
  pod["apiVersion"] = "v1";
  return pod;
}

}  // namespace

ScheduleResult SchedulePod(const Json& pod, const std::vector<Json>& nodes,
                           const std::vector<Json>& assigned_pods) {
  State s;
  for (const Json& n : nodes) s.SetNode(n);
  for (const Json& p : assigned_pods) {
    std::string node = scheduler_internal::Str(scheduler_internal::Obj(p, "spec"), "nodeName");
    if (node.empty() || IsPodTerminal(p)) continue;
    s.Charge(object::Key(p), p, node);
  }
  return s.Schedule(pod);
}

Scheduler::Scheduler(Client& client, SchedulerOptions opts)
    : Scheduler(nullptr, std::make_unique<SharedInformerFactory>(client), client, std::move(opts)) {
}

Scheduler::Scheduler(SharedInformerFactory& informers, Client& client, SchedulerOptions opts)
    : Scheduler(&informers, nullptr, client, std::move(opts)) {}

Scheduler::Scheduler(SharedInformerFactory* shared, std::unique_ptr<SharedInformerFactory> own,
                     Client& client, SchedulerOptions opts)
    : opts_(std::move(opts)),
      own_informers_(std::move(own)),
      informers_(shared ? *shared : *own_informers_),
      identity_(client, opts_.scheduler_name),
      nodes_(informers_.For(NodesResource())),
      pods_(informers_.For(PodsResource())),
      claims_(informers_.For(PersistentVolumeClaimsResource())),
      volumes_(informers_.For(PersistentVolumesResource())),
      classes_(informers_.For(StorageClassesResource())),
      state_(std::make_unique<State>()),
      workers_("scheduler", queue_, [this](const std::string& key) { return ScheduleOne(key); }) {}

Scheduler::~Scheduler() { Stop(); }

bool Scheduler::IsOurs(const Json& pod) const {
  using scheduler_internal::Obj;
  using scheduler_internal::Str;
  const Json& spec = Obj(pod, "spec");
  if (!Str(spec, "nodeName").empty()) return false;
  std::string name = Str(spec, "schedulerName");
  if (name.empty()) name = "default-scheduler";
  if (name != opts_.scheduler_name) return false;
  if (object::IsBeingDeleted(pod)) return false;
  return !IsPodTerminal(pod);
}

void Scheduler::Start() {
  if (!run_state_.TryStart()) return;
  // Registered now rather than at construction: on informers that have
  // synced already, AddHandlers replays the cache as adds.
  subscriptions_.Add(nodes_, HandlersFrom([this](const Json* o, const Json* n) { OnNode(o, n); }));
  subscriptions_.Add(pods_, HandlersFrom([this](const Json* o, const Json* p) { OnPod(o, p); }));
  // A claim made, bound or provisioned may let a waiting pod go.
  subscriptions_.Add(claims_, HandlersFrom([this](const Json*, const Json*) {
                       std::lock_guard l(mu_);
                       RetryUnschedulableLocked();
                     }));
  if (own_informers_) own_informers_->Start();
  workers_.Start(1, {&nodes_, &pods_, &claims_, &volumes_, &classes_});
}

void Scheduler::Stop() {
  if (!run_state_.TryStop()) return;
  workers_.Stop();
  if (own_informers_) own_informers_->Stop();
  // After this no handler of ours runs, so the shared informers may
  // outlive the scheduler.
  subscriptions_.RemoveAll();
}

void Scheduler::Enqueue(const std::string& key) {
  unschedulable_.erase(key);
  queue_.Add(key);
}

void Scheduler::RetryUnschedulableLocked() {
  std::set<std::string> retry;
  retry.swap(unschedulable_);
  for (const auto& key : retry) queue_.Add(key);
}

void Scheduler::OnNode(const Json* old, const Json* now) {
  using scheduler_internal::Obj;
  std::lock_guard l(mu_);
  if (!now) {
    state_->RemoveNode(object::Name(*old));
    return;
  }
  state_->SetNode(*now);
  // Heartbeats change only timestamps; retry only on what filters look at.
  auto relevant = [](const Json& n) {
    Json ready;
    for (const Json* c : scheduler_internal::Items(Obj(n, "status"), "conditions")) {
      if (scheduler_internal::Str(*c, "type") == "Ready") ready = (*c)["status"];
    }
    return Json{Obj(Obj(n, "metadata"), "labels"), Obj(n, "spec"),
                Obj(Obj(n, "status"), "allocatable"), ready};
  };
  if (!old || relevant(*old) != relevant(*now)) RetryUnschedulableLocked();
}

void Scheduler::OnPod(const Json* old, const Json* now) {
  using scheduler_internal::Obj;
  using scheduler_internal::Str;
  std::lock_guard l(mu_);
  if (!now) {
    std::string key = object::Key(*old);
    state_->assumed.erase(key);
    unschedulable_.erase(key);
    if (state_->Uncharge(key)) RetryUnschedulableLocked();
    return;
  }
  std::string key = object::Key(*now);
  std::string node = Str(Obj(*now, "spec"), "nodeName");
  if (!node.empty()) {
    state_->assumed.erase(key);
    unschedulable_.erase(key);
    if (!IsPodTerminal(*now)) {
      state_->Charge(key, *now, node);
    } else if (state_->Uncharge(key)) {
      RetryUnschedulableLocked();
    }
    return;
  }
  if (state_->assumed.count(key)) return;  // our binding is in flight
  if (!IsOurs(*now)) {
    state_->Uncharge(key);
    unschedulable_.erase(key);
    return;
  }
  if (unschedulable_.count(key)) {
    // Our own status patch comes back as an update: retry only on a
    // change that could make a difference.
    if (old && Obj(*old, "spec") == Obj(*now, "spec") &&
        Obj(Obj(*old, "metadata"), "labels") == Obj(Obj(*now, "metadata"), "labels")) {
      return;
    }
  }
  Enqueue(key);
}

Result Scheduler::ScheduleOne(const std::string& key) {
  auto [ns, name] = object::SplitKey(key);
  ObjectPtr pod = pods_.Lookup(ns, name);
  if (!pod) return Result::Done();
  ScheduleResult result;
  VolumeNeeds volumes = CheckVolumes(*pod);
  {
    std::lock_guard l(mu_);
    if (!IsOurs(*pod) || state_->assumed.count(key)) return Result::Done();
    if (!volumes.error.empty()) {
      // VolumeBinding's PreFilter rejects the pod on every node.
      const std::string n = std::to_string(state_->PresentNodes());
      result.failure_message = "0/" + n + " nodes are available: " + volumes.error +
                               ". preemption: 0/" + n + " nodes are available: " + n +
                               " Preemption is not helpful for scheduling.";
      unschedulable_.insert(key);
    } else {
      result = state_->Schedule(*pod, volumes.node_affinity);
      if (result.node.empty() || !volumes.unbound_delayed.empty()) {
        // Unschedulable; or WaitForFirstConsumer claims learn the node
        // first and the pod is bound once they are Bound (retried when a
        // claim changes).
        unschedulable_.insert(key);
      } else {
        state_->Charge(key, *pod, result.node);
        state_->assumed[key] = result.node;
      }
    }
  }
  if (result.node.empty()) {
    RecordUnschedulable(*pod, result.failure_message);
    // Looked at again sooner when something that matters changes.
    return Result::After(opts_.retry_unschedulable_every);
  }
  if (!volumes.unbound_delayed.empty()) {
    for (const std::string& claim : volumes.unbound_delayed) {
      if (claim.empty()) continue;  // one already being provisioned
      try {
        identity_.client().Patch(
            PersistentVolumeClaimsResource(), ns, claim, PatchType::kMerge,
            {{"metadata", {{"annotations", {{kSelectedNodeAnnotation, result.node}}}}}});
      } catch (const Error& e) {
        log::Debug("scheduler: selected-node of {}/{}: {}", ns, claim, e.what());
      }
    }
    return Result::After(opts_.retry_unschedulable_every);
  }
  Json binding = {{"apiVersion", "v1"},
                  {"kind", "Binding"},
                  {"metadata", {{"name", name}, {"namespace", ns}}},
                  {"target", {{"apiVersion", "v1"}, {"kind", "Node"}, {"name", result.node}}}};
  try {
    identity_.client().CreateSubresource(PodsResource(), ns, name, "binding", binding);
  } catch (const Error& e) {
    {
      std::lock_guard l(mu_);
      auto it = state_->assumed.find(key);
      if (it != state_->assumed.end() && it->second == result.node) {
        state_->assumed.erase(it);
        state_->Uncharge(key);
      }
    }
    if (e.code() == Code::kConflict || e.code() == Code::kNotFound) {
      log::Debug("scheduler: dropping {}: {}", key, e.what());
      return Result::Done();
    }
    throw Error(e.code(), "binding to " + result.node + ": " + e.message());
  }
  identity_.events().Normal(AsPod(*pod), "Scheduled",
                            "Successfully assigned " + key + " to " + result.node);
  return Result::Done();
}

Scheduler::VolumeNeeds Scheduler::CheckVolumes(const Json& pod) {
  using scheduler_internal::Items;
  using scheduler_internal::Obj;
  using scheduler_internal::Str;
  VolumeNeeds out;
  const std::string ns = Str(Obj(pod, "metadata"), "namespace");
  bool waiting = false;
  for (const Json* vol : Items(Obj(pod, "spec"), "volumes")) {
    if (!scheduler_internal::At(*vol, "persistentVolumeClaim")) continue;
    const Json& source = Obj(*vol, "persistentVolumeClaim");
    const std::string name = Str(source, "claimName");
    ObjectPtr pvc = claims_.Lookup(ns, name);
    if (!pvc) {
      out.error = "persistentvolumeclaim \"" + name + "\" not found";
      return out;
    }
    if (object::IsBeingDeleted(*pvc)) {
      out.error = "persistentvolumeclaim \"" + name + "\" is being deleted";
      return out;
    }
    const std::string volume = Str(Obj(*pvc, "spec"), "volumeName");
    if (!volume.empty()) {
      ObjectPtr pv = volumes_.Lookup("", volume);
      if (!pv) {
        out.error = "persistentvolume \"" + volume + "\" not found";
        return out;
      }
      const Json* required =
          scheduler_internal::At(Obj(Obj(*pv, "spec"), "nodeAffinity"), "required");
      if (required && required->is_object()) out.node_affinity.push_back(*required);
      continue;
    }
    ObjectPtr cls;
    const std::string class_name = Str(Obj(*pvc, "spec"), "storageClassName");
    if (!class_name.empty()) cls = classes_.Lookup("", class_name);
    if (!cls || Str(*cls, "volumeBindingMode") != "WaitForFirstConsumer") {
      out.error = "pod has unbound immediate PersistentVolumeClaims";
      return out;
    }
    const std::string selected =
        Str(Obj(Obj(*pvc, "metadata"), "annotations"), kSelectedNodeAnnotation);
    if (selected.empty()) {
      out.unbound_delayed.push_back(name);
    } else {
      // Being provisioned on `selected`: the pod goes there, once bound.
      out.node_affinity.push_back(
          {{"nodeSelectorTerms",
            Json::array({{{"matchFields", Json::array({{{"key", "metadata.name"},
                                                         {"operator", "In"},
                                                         {"values", Json::array({selected})}}})}}})}});
      waiting = true;
    }
  }
  // A claim still being provisioned holds the pod back like an unannotated one.
  if (waiting && out.unbound_delayed.empty()) out.unbound_delayed.push_back("");
  return out;
}

void Scheduler::RecordUnschedulable(const Json& pod, const std::string& message) {
  using scheduler_internal::Items;
  using scheduler_internal::Obj;
  using scheduler_internal::Str;
  identity_.events().Warning(AsPod(pod), "FailedScheduling", message);
  std::string since = object::NowRfc3339();
  for (const Json* c : Items(Obj(pod, "status"), "conditions")) {
    if (Str(*c, "type") != "PodScheduled" || Str(*c, "status") != "False") continue;
    if (Str(*c, "reason") == "Unschedulable" && Str(*c, "message") == message) return;
    if (!Str(*c, "lastTransitionTime").empty()) since = Str(*c, "lastTransitionTime");
  }
  Json patch = {{"status",
                 {{"conditions", Json::array({{{"type", "PodScheduled"},
                                               {"status", "False"},
                                               {"reason", "Unschedulable"},
                                               {"message", message},
                                               {"lastProbeTime", nullptr},
                                               {"lastTransitionTime", since}}})}}}};
  try {
    identity_.client().Patch(PodsResource(), object::Namespace(pod), object::Name(pod),
                             PatchType::kStrategic, patch, "status");
  } catch (const Error& e) {
    log::Debug("scheduler: PodScheduled condition of {}: {}", object::Key(pod), e.what());
  }
}

}  // namespace kin::controllers
