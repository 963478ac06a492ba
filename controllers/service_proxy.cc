#include "controllers/service_proxy.h"

#include <algorithm>
#include <map>
#include <set>

#include "base/error.h"
#include "base/log.h"
#include "client/object.h"
#include "client/resources.h"

namespace kin::controllers {
namespace {

using netstack::Ipv4Address;
using netstack::L4Protocol;
using netstack::ProxyEndpoint;
using netstack::ProxyServicePort;

constexpr char kSyncKey[] = "sync";
constexpr char kServiceNameLabel[] = "kubernetes.io/service-name";
constexpr char kServiceProxyNameLabel[] = "service.kubernetes.io/service-proxy-name";
// core/v1's default for sessionAffinityConfig.clientIP.timeoutSeconds.
constexpr int kDefaultAffinityTimeout = 10800;

const ResourceInfo& EndpointSlices() {
  return *FindResource("discovery.k8s.io", "v1", "endpointslices");
}

using object::Field;
using object::Str;
int64_t Int(const Json& j, const char* key) {
  const Json& v = Field(j, key);
  return v.is_number_integer() ? v.get<int64_t>() : 0;
}
// A boolean condition: its value, or `unset` when absent or null.
bool Cond(const Json& conditions, const char* key, bool unset) {
  const Json& v = Field(conditions, key);
  return v.is_boolean() ? v.get<bool>() : unset;
}

std::optional<L4Protocol> ProtocolOf(const Json& port) {
  std::string p = Str(port, "protocol");
  if (p.empty() || p == "TCP") return L4Protocol::kTcp;
  if (p == "UDP") return L4Protocol::kUdp;
  if (p == "SCTP") return L4Protocol::kSctp;
  return std::nullopt;
}

std::optional<uint16_t> PortNumber(const Json& j, const char* key) {
  int64_t n = Int(j, key);
  if (n < 1 || n > 65535) return std::nullopt;
  return static_cast<uint16_t>(n);
}

std::vector<Ipv4Address> Addresses(const Json& list) {
  std::vector<Ipv4Address> out;
  if (!list.is_array()) return out;
  for (const Json& v : list) {
    if (auto a = v.is_string() ? Ipv4Address::TryParse(v.get<std::string>()) : std::nullopt) {
      out.push_back(*a);
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// One endpoint of a slice as kube-proxy's endpoint info keeps it.
struct EndpointInfo {
  ProxyEndpoint ep;
  bool ready = false, serving = false, terminating = false, local = false;
};

// upstream's ShouldSkipService.
bool Skipped(const Json& svc) {
  const Json& spec = Field(svc, "spec");
  if (Str(spec, "type") == "ExternalName") return true;
  std::string ip = Str(spec, "clusterIP");
  if (ip.empty() || ip == "None") return true;
  return object::Label(svc, kServiceProxyNameLabel).has_value();
}

// CategorizeEndpoints' choice among `all` (those matching `where`): the
// ready ones, else the serving-and-terminating ones.
std::vector<ProxyEndpoint> Choose(const std::vector<EndpointInfo>& all, bool local_only) {
  std::vector<ProxyEndpoint> out;
  for (const EndpointInfo& e : all) {
    if (e.ready && (!local_only || e.local)) out.push_back(e.ep);
  }
  if (out.empty()) {
    for (const EndpointInfo& e : all) {
      if (e.serving && e.terminating && (!local_only || e.local)) out.push_back(e.ep);
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace

netstack::ProxyState BuildProxyState(const std::vector<ObjectPtr>& services,
                                     const std::vector<ObjectPtr>& slices, const ProxyNode& node) {
  netstack::ProxyState state;
  state.node_ips = node.ips;
  state.cluster_cidr = node.cluster_cidr;
  state.service_cidr = node.service_cidr;

  // Slices by "ns/service".
  std::map<std::string, std::vector<const Json*>> by_service;
  for (const ObjectPtr& s : slices) {
    if (Str(*s, "addressType") != "IPv4") continue;
    auto svc = object::Label(*s, kServiceNameLabel);
    if (!svc || svc->empty()) continue;
    by_service[object::Key(object::Namespace(*s), *svc)].push_back(s.get());
  }

  for (const ObjectPtr& svc_ptr : services) {
    const Json& svc = *svc_ptr;
    if (Skipped(svc)) continue;
    const Json& spec = Field(svc, "spec");
    auto cluster_ip = Ipv4Address::TryParse(Str(spec, "clusterIP"));
    if (!cluster_ip) continue;  // an IPv6 or malformed address: not ours to serve
    const std::string ns = object::Namespace(svc), name = object::Name(svc);
    const std::string type = Str(spec, "type");
    const bool node_port_type = type == "NodePort" || type == "LoadBalancer";
    const auto external_ips = Addresses(Field(spec, "externalIPs"));
    std::vector<Ipv4Address> lb_ips;
    if (type == "LoadBalancer") {
      Json ips = Json::array();
      const Json& ingress = Field(Field(Field(svc, "status"), "loadBalancer"), "ingress");
      if (ingress.is_array()) {
        for (const Json& i : ingress) ips.push_back(Field(i, "ip"));
      }
      lb_ips = Addresses(ips);
    }
    int affinity = 0;
    if (Str(spec, "sessionAffinity") == "ClientIP") {
      int64_t t = Int(Field(Field(spec, "sessionAffinityConfig"), "clientIP"), "timeoutSeconds");
      affinity = t > 0 ? static_cast<int>(t) : kDefaultAffinityTimeout;
    }
    const auto slice_list = by_service.find(object::Key(ns, name));

    const Json& ports = Field(spec, "ports");
    if (!ports.is_array()) continue;
    for (const Json& port : ports) {
      auto protocol = ProtocolOf(port);
      auto number = PortNumber(port, "port");
      if (!protocol || !number) continue;
      ProxyServicePort p;
      p.ns = ns;
      p.name = name;
      p.port_name = Str(port, "name");
      p.protocol = *protocol;
      p.cluster_ip = cluster_ip;
      p.port = *number;
      if (node_port_type) p.node_port = PortNumber(port, "nodePort").value_or(0);
      p.external_ips = external_ips;
      p.load_balancer_ips = lb_ips;
      p.internal_local = Str(spec, "internalTrafficPolicy") == "Local";
      // externalTrafficPolicy only applies to externally reachable Services.
      p.external_local = Str(spec, "externalTrafficPolicy") == "Local" &&
                         (node_port_type || !external_ips.empty());
      p.affinity_timeout_seconds = affinity;

      std::vector<EndpointInfo> endpoints;
      if (slice_list != by_service.end()) {
        for (const Json* slice : slice_list->second) {
          // The slice's port for this Service port: same name and protocol.
          std::optional<uint16_t> target;
          const Json& slice_ports = Field(*slice, "ports");
          if (slice_ports.is_array()) {
            for (const Json& sp : slice_ports) {
              if (Str(sp, "name") == p.port_name && ProtocolOf(sp) == p.protocol) {
                target = PortNumber(sp, "port");
                break;
              }
            }
          }
          if (!target) continue;
          const Json& eps = Field(*slice, "endpoints");
          if (!eps.is_array()) continue;
          for (const Json& e : eps) {
            const Json& addrs = Field(e, "addresses");
            if (!addrs.is_array() || addrs.empty() || !addrs[0].is_string()) continue;
            auto ip = Ipv4Address::TryParse(addrs[0].get<std::string>());
            if (!ip) continue;
            const Json& c = Field(e, "conditions");
            EndpointInfo info;
            info.ep = {*ip, *target};
            info.ready = Cond(c, "ready", true);
            info.serving = Cond(c, "serving", info.ready);
            info.terminating = Cond(c, "terminating", false);
            info.local = !node.name.empty() && Str(e, "nodeName") == node.name;
            endpoints.push_back(info);
          }
        }
      }
      p.cluster_endpoints = Choose(endpoints, false);
      p.local_endpoints = Choose(endpoints, true);
      state.ports.emplace(p.Key(), std::move(p));
    }
  }
  return state;
}

ServiceProxy::ServiceProxy(SharedInformerFactory& informers, ServiceProxyOptions opts)
    : opts_(std::move(opts)),
      clock_(opts_.clock ? *opts_.clock : RealClock()),
      services_(informers.For(ServicesResource())),
      slices_(informers.For(EndpointSlices())),
      queue_(WorkQueueOptions{.clock = &clock_}),
      workers_("service-proxy", queue_, [this](const std::string&) { return Sync(); }) {
  if (!opts_.backend) throw Error::Invalid("service proxy for " + opts_.node.name + ": no backend");
}

ServiceProxy::~ServiceProxy() { Stop(); }

void ServiceProxy::Start() {
  if (!run_state_.TryStart()) return;
  // Every change leads to one coalesced sync of the whole node.
  auto dirty = HandlersFrom([this](const Json*, const Json*) { Queue(); });
  subscriptions_.Add(services_, dirty);
  subscriptions_.Add(slices_, dirty);
  Queue();  // the first, full sync, also with no Services at all
  workers_.Start(1, {&services_, &slices_});
}

void ServiceProxy::Stop() {
  if (!run_state_.TryStop()) return;
  workers_.Stop();
  subscriptions_.RemoveAll();
}

void ServiceProxy::Queue() {
  if (opts_.health) opts_.health->Queued(clock_.Now());
  queue_.Add(kSyncKey);
}

Result ServiceProxy::Sync() {
  netstack::ProxyState state = BuildProxyState(services_.Items(), slices_.Items(), opts_.node);
  opts_.backend->Sync(state);  // throws: logged, retried with back-off
  if (opts_.health) opts_.health->Synced(clock_.Now());
  ++syncs_;
  return Result::Done();
}

}  // namespace kin::controllers
