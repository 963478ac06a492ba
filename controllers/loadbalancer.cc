#include "controllers/loadbalancer.h"

#include <algorithm>

#include "base/error.h"
#include "base/log.h"
#include "client/object.h"
#include "client/resources.h"
#include "controllers/service_proxy.h"

namespace kin::controllers {
namespace {

using netstack::Ipv4Address;

constexpr char kSyncKey[] = "sync";
constexpr char kServiceNameLabel[] = "kubernetes.io/service-name";
constexpr char kExcludeLabel[] = "node.kubernetes.io/exclude-from-external-load-balancers";

const ResourceInfo& EndpointSlices() {
  return *FindResource("discovery.k8s.io", "v1", "endpointslices");
}

using object::Field;
using object::Str;

bool IsLoadBalancer(const Json& svc) { return Str(Field(svc, "spec"), "type") == "LoadBalancer"; }
// A Service this controller serves: a LoadBalancer of the default class.
bool Ours(const Json& svc) {
  return IsLoadBalancer(svc) && Str(Field(svc, "spec"), "loadBalancerClass").empty();
}

// status.loadBalancer.ingress IPs (IPv4 ones).
std::vector<Ipv4Address> IngressIps(const Json& svc) {
  std::vector<Ipv4Address> out;
  const Json& ingress = Field(Field(Field(svc, "status"), "loadBalancer"), "ingress");
  if (!ingress.is_array()) return out;
  for (const Json& i : ingress) {
    if (auto ip = Ipv4Address::TryParse(Str(i, "ip"))) out.push_back(*ip);
  }
  return out;
}
bool HasIngress(const Json& svc) {
  const Json& ingress = Field(Field(Field(svc, "status"), "loadBalancer"), "ingress");
  return ingress.is_array() && !ingress.empty();
}

bool NodeReady(const Json& node) {
  const Json& conditions = Field(Field(node, "status"), "conditions");
  if (!conditions.is_array()) return false;
  for (const Json& c : conditions) {
    if (Str(c, "type") == "Ready") return Str(c, "status") == "True";
  }
  return false;
}
std::optional<Ipv4Address> InternalIp(const Json& node) {
  const Json& addresses = Field(Field(node, "status"), "addresses");
  if (!addresses.is_array()) return std::nullopt;
  for (const Json& a : addresses) {
    if (Str(a, "type") == "InternalIP") {
      if (auto ip = Ipv4Address::TryParse(Str(a, "address"))) return ip;
    }
  }
  return std::nullopt;
}

bool Cond(const Json& conditions, const char* key, bool unset) {
  const Json& v = Field(conditions, key);
  return v.is_boolean() ? v.get<bool>() : unset;
}

}  // namespace

bool AssignableInPool(const netstack::Ipv4Cidr& pool, Ipv4Address ip) {
  if (!pool.Contains(ip)) return false;
  if (pool.prefix_len() <= 30 && (ip == pool.network() || ip == pool.broadcast())) return false;
  return true;
}

// ---- LoadBalancerController ----

LoadBalancerController::LoadBalancerController(SharedInformerFactory& informers, Client& client,
                                               LoadBalancerControllerOptions opts)
    : opts_(opts),
      identity_(client, kServiceControllerName),
      services_(informers.For(ServicesResource())),
      workers_("service-lb-controller", queue_,
               [this](const std::string& key) { return Sync(key); }) {}

LoadBalancerController::~LoadBalancerController() { Stop(); }

void LoadBalancerController::Start() {
  if (!run_state_.TryStart()) return;
  subscriptions_.Add(services_, EnqueueHandlers(queue_));
  // One worker: addresses are given one Service at a time.
  workers_.Start(1, {&services_});
}

void LoadBalancerController::Stop() {
  if (!run_state_.TryStop()) return;
  workers_.Stop();
  subscriptions_.RemoveAll();
}

std::map<std::string, std::string> LoadBalancerController::Allocated() const {
  std::lock_guard l(mu_);
  std::map<std::string, std::string> out;
  for (const auto& [ip, key] : owner_) out[ip.ToString()] = key;
  return out;
}

void LoadBalancerController::RebuildLocked() {
  // The addresses Services hold, oldest Service first: should two claim
  // one address (state written by something else), the older keeps it
  // (of the same age, the first by namespace and name).
  std::vector<ObjectPtr> services = services_.Items();
  std::sort(services.begin(), services.end(), [](const ObjectPtr& a, const ObjectPtr& b) {
    std::string ta = Str(Field(*a, "metadata"), "creationTimestamp");
    std::string tb = Str(Field(*b, "metadata"), "creationTimestamp");
    return ta != tb ? ta < tb : object::Key(*a) < object::Key(*b);
  });
  for (const ObjectPtr& s : services) {
    if (!Ours(*s)) continue;
    const std::string key = object::Key(*s);
    for (Ipv4Address ip : IngressIps(*s)) {
      if (!AssignableInPool(opts_.pool, ip) || owner_.count(ip) || given_.count(key)) continue;
      owner_[ip] = key;
      given_[key] = ip;
    }
  }
  rebuilt_ = true;
  log::Info("service-controller: {} load balancer addresses in use in {}", owner_.size(),
            opts_.pool.ToString());
}

std::optional<Ipv4Address> LoadBalancerController::LowestFreeLocked() const {
  const uint64_t size = opts_.pool.size();
  for (uint64_t i = 0; i < size; ++i) {
    Ipv4Address ip = opts_.pool.Nth(i);
    if (AssignableInPool(opts_.pool, ip) && !owner_.count(ip)) return ip;
  }
  return std::nullopt;
}

void LoadBalancerController::ReleaseLocked(const std::string& key) {
  waiting_.erase(key);
  auto it = given_.find(key);
  if (it == given_.end()) return;
  owner_.erase(it->second);
  given_.erase(it);
  // An address is free: the Services waiting for one get a look.
  for (const std::string& w : waiting_) queue_.Add(w);
}

void LoadBalancerController::WriteIngress(const Json& svc, const std::optional<Ipv4Address>& ip) {
  Json ingress = nullptr;  // merge patch: removes the field
  if (ip) ingress = Json::array({{{"ip", ip->ToString()}, {"ipMode", "VIP"}}});
  identity_.client().Patch(ServicesResource(), object::Namespace(svc), object::Name(svc),
                           PatchType::kMerge,
                           {{"status", {{"loadBalancer", {{"ingress", ingress}}}}}}, "status");
}

Result LoadBalancerController::Sync(const std::string& key) {
  std::unique_lock l(mu_);
  if (!rebuilt_) RebuildLocked();
  ObjectPtr svc = services_.LookupKey(key);

  if (!svc || !Ours(*svc)) {
    const bool had = given_.count(key) > 0;
    ReleaseLocked(key);
    l.unlock();
    // No longer a LoadBalancer (and not another class's): the upstream
    // controller deletes the load balancer and clears the status.
    if (svc && !IsLoadBalancer(*svc) && Str(Field(*svc, "spec"), "loadBalancerClass").empty() &&
        (had || HasIngress(*svc))) {
      identity_.events().Normal(*svc, "DeletingLoadBalancer", "Deleting load balancer");
      WriteIngress(*svc, std::nullopt);
      identity_.events().Normal(*svc, "DeletedLoadBalancer", "Deleted load balancer");
    }
    return Result::Done();
  }

  const std::string asked = Str(Field(*svc, "spec"), "loadBalancerIP");
  std::optional<Ipv4Address> ip;
  std::string failure;
  auto it = given_.find(key);
  if (it != given_.end() && (asked.empty() || asked == it->second.ToString())) {
    ip = it->second;
  } else {
    if (it != given_.end()) ReleaseLocked(key);  // spec.loadBalancerIP changed
    if (!asked.empty()) {
      auto want = Ipv4Address::TryParse(asked);
      if (!want || !AssignableInPool(opts_.pool, *want)) {
        failure = "spec.loadBalancerIP " + asked + " is not an address of the pool " +
                  opts_.pool.ToString();
      } else if (auto o = owner_.find(*want); o != owner_.end() && o->second != key) {
        failure = "spec.loadBalancerIP " + asked + " is in use by service " + o->second;
      } else {
        ip = want;
      }
    } else {
      // An address the status already holds (written before this
      // controller's cache knew it) is kept when it is free.
      for (Ipv4Address held : IngressIps(*svc)) {
        if (AssignableInPool(opts_.pool, held) && !owner_.count(held)) {
          ip = held;
          break;
        }
      }
      if (!ip) ip = LowestFreeLocked();
      if (!ip) failure = "no address left in the pool " + opts_.pool.ToString();
    }
    if (ip) {
      owner_[*ip] = key;
      given_[key] = *ip;
      waiting_.erase(key);
    } else {
      waiting_.insert(key);
    }
  }
  l.unlock();

  std::vector<Ipv4Address> have = IngressIps(*svc);
  const bool matches =
      ip ? (have.size() == 1 && have[0] == *ip && HasIngress(*svc)) : !HasIngress(*svc);
  if (!failure.empty()) {
    identity_.events().Warning(
        *svc, "SyncLoadBalancerFailed",
        "Error syncing load balancer: failed to ensure load balancer: " + failure);
  }
  if (matches) return Result::Done();
  if (ip) identity_.events().Normal(*svc, "EnsuringLoadBalancer", "Ensuring load balancer");
  WriteIngress(*svc, ip);  // throws: retried with back-off
  if (ip) identity_.events().Normal(*svc, "EnsuredLoadBalancer", "Ensured load balancer");
  return Result::Done();
}

// ---- LoadBalancerRoutes ----

std::vector<netstack::LbRoute> BuildLbRoutes(const std::vector<ObjectPtr>& services,
                                             const std::vector<ObjectPtr>& slices,
                                             const std::vector<ObjectPtr>& nodes,
                                             const netstack::Ipv4Cidr& pool) {
  // Nodes a load balancer may send to, by name.
  std::map<std::string, Ipv4Address> eligible, excluded;
  for (const ObjectPtr& n : nodes) {
    if (!NodeReady(*n)) continue;
    auto ip = InternalIp(*n);
    if (!ip) continue;
    (object::Label(*n, kExcludeLabel).has_value() ? excluded : eligible)[object::Name(*n)] = *ip;
  }
  // Every Ready node excluded (a one-node cluster, whose control plane
  // carries kubeadm's label): they are used rather than none, where
  // cloud-provider-kind asks the user to remove the label.
  if (eligible.empty()) eligible = excluded;
  // Per Service ("ns/name"), the nodes with a ready local endpoint (or,
  // when a node has none ready, a serving terminating one: kube-proxy's
  // choice of local endpoints).
  std::map<std::string, std::set<std::string>> ready_on, serving_on;
  for (const ObjectPtr& s : slices) {
    if (Str(*s, "addressType") != "IPv4") continue;
    auto svc = object::Label(*s, kServiceNameLabel);
    if (!svc || svc->empty()) continue;
    const std::string key = object::Key(object::Namespace(*s), *svc);
    const Json& eps = Field(*s, "endpoints");
    if (!eps.is_array()) continue;
    for (const Json& e : eps) {
      const std::string node = Str(e, "nodeName");
      if (node.empty()) continue;
      const Json& c = Field(e, "conditions");
      const bool ready = Cond(c, "ready", true);
      const bool serving = Cond(c, "serving", ready);
      const bool terminating = Cond(c, "terminating", false);
      if (ready) ready_on[key].insert(node);
      if (serving && terminating) serving_on[key].insert(node);
    }
  }
  std::vector<netstack::LbRoute> out;
  for (const ObjectPtr& svc : services) {
    if (!Ours(*svc)) continue;
    const Json& spec = Field(*svc, "spec");
    const std::string cluster_ip = Str(spec, "clusterIP");
    if (cluster_ip.empty() || cluster_ip == "None") continue;
    const bool local = Str(spec, "externalTrafficPolicy") == "Local";
    const std::string key = object::Key(*svc);
    std::vector<Ipv4Address> hops;
    for (const auto& [name, ip] : eligible) {
      if (local) {
        const bool has_ready = ready_on.count(key) && ready_on[key].count(name);
        const bool has_serving = serving_on.count(key) && serving_on[key].count(name);
        if (!has_ready && !has_serving) continue;
      }
      hops.push_back(ip);
    }
    for (Ipv4Address ip : IngressIps(*svc)) {
      if (pool.Contains(ip)) out.push_back({ip, hops});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const netstack::LbRoute& a, const netstack::LbRoute& b) { return a.ip < b.ip; });
  return out;
}

LoadBalancerRoutes::LoadBalancerRoutes(SharedInformerFactory& informers,
                                       LoadBalancerRoutesOptions opts)
    : opts_(std::move(opts)),
      services_(informers.For(ServicesResource())),
      slices_(informers.For(EndpointSlices())),
      nodes_(informers.For(NodesResource())),
      workers_("loadbalancer-routes", queue_, [this](const std::string&) { return Sync(); }) {
  if (!opts_.apply) throw Error::Invalid("load balancer routes: nothing to apply them with");
}

LoadBalancerRoutes::~LoadBalancerRoutes() { Stop(); }

void LoadBalancerRoutes::Start() {
  if (!run_state_.TryStart()) return;
  auto dirty = HandlersFrom([this](const Json*, const Json*) { queue_.Add(kSyncKey); });
  subscriptions_.Add(services_, dirty);
  subscriptions_.Add(slices_, dirty);
  subscriptions_.Add(nodes_, dirty);
  queue_.Add(kSyncKey);  // the first, full sync: stale routes of a restart go
  workers_.Start(1, {&services_, &slices_, &nodes_});
}

void LoadBalancerRoutes::Stop() {
  if (!run_state_.TryStop()) return;
  workers_.Stop();
  subscriptions_.RemoveAll();
}

Result LoadBalancerRoutes::Sync() {
  opts_.apply(BuildLbRoutes(services_.Items(), slices_.Items(), nodes_.Items(), opts_.pool));
  ++syncs_;
  return Result::Done();
}

// ---- ServiceHealthChecks ----

std::map<uint16_t, netstack::HealthCheckService> BuildHealthChecks(
    const std::vector<ObjectPtr>& services, const std::vector<ObjectPtr>& slices,
    const std::string& node) {
  std::map<uint16_t, netstack::HealthCheckService> out;
  std::vector<ObjectPtr> wanted;
  for (const ObjectPtr& svc : services) {
    const Json& spec = Field(*svc, "spec");
    if (!IsLoadBalancer(*svc) || Str(spec, "externalTrafficPolicy") != "Local") continue;
    const Json& port = Field(spec, "healthCheckNodePort");
    if (!port.is_number_integer() || port.get<int64_t>() < 1 || port.get<int64_t>() > 65535) {
      continue;
    }
    wanted.push_back(svc);
  }
  if (wanted.empty()) return out;
  ProxyNode pn;
  pn.name = node;
  netstack::ProxyState state = BuildProxyState(wanted, slices, pn);
  // Local endpoints per Service (over its ports), as kube-proxy counts them.
  std::map<std::string, std::set<netstack::Ipv4Address>> local;
  for (const auto& [k, p] : state.ports) {
    auto& set = local[object::Key(p.ns, p.name)];
    for (const auto& ep : p.local_endpoints) set.insert(ep.ip);
  }
  for (const ObjectPtr& svc : wanted) {
    const std::string key = object::Key(*svc);
    if (!local.count(key)) continue;  // skipped by the proxy (headless, another proxy's)
    const auto port = static_cast<uint16_t>(Field(*svc, "spec")["healthCheckNodePort"].get<int>());
    out[port] = {object::Namespace(*svc), object::Name(*svc), static_cast<int>(local[key].size())};
  }
  return out;
}

ServiceHealthChecks::ServiceHealthChecks(SharedInformerFactory& informers,
                                         ServiceHealthChecksOptions opts)
    : opts_(std::move(opts)),
      services_(informers.For(ServicesResource())),
      slices_(informers.For(EndpointSlices())),
      workers_("service-health", queue_, [this](const std::string&) { return Sync(); }) {}

ServiceHealthChecks::~ServiceHealthChecks() { Stop(); }

void ServiceHealthChecks::Start() {
  if (!run_state_.TryStart()) return;
  server_ = std::make_unique<netstack::ServiceHealthServer>(opts_.netns, opts_.bind,
                                                            opts_.proxy_health);
  auto dirty = HandlersFrom([this](const Json*, const Json*) { queue_.Add(kSyncKey); });
  subscriptions_.Add(services_, dirty);
  subscriptions_.Add(slices_, dirty);
  queue_.Add(kSyncKey);
  workers_.Start(1, {&services_, &slices_});
}

void ServiceHealthChecks::Stop() {
  if (!run_state_.TryStop()) return;
  workers_.Stop();
  subscriptions_.RemoveAll();
  server_.reset();
}

std::vector<uint16_t> ServiceHealthChecks::ports() const {
  return server_ ? server_->ports() : std::vector<uint16_t>{};
}

Result ServiceHealthChecks::Sync() {
  server_->Sync(BuildHealthChecks(services_.Items(), slices_.Items(), opts_.node));
  return Result::Done();
}

}  // namespace kin::controllers
