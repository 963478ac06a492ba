#include "controllers/cluster_dns.h"

#include <sys/stat.h>

#include <algorithm>

#include "base/error.h"
#include "base/log.h"
#include "client/object.h"
#include "client/resources.h"
#include "controllers/endpointslice.h"

namespace kin::controllers {
namespace {

using netstack::DnsService;
using netstack::Ipv4Address;

constexpr char kServiceNameLabel[] = "kubernetes.io/service-name";
constexpr char kNamespacePrefix[] = "namespace/";

const Json& Field(const Json& j, const char* key) {
  static const Json null;
  if (!j.is_object()) return null;
  auto it = j.find(key);
  return it == j.end() ? null : *it;
}
std::string Str(const Json& j, const char* key) {
  const Json& v = Field(j, key);
  return v.is_string() ? v.get<std::string>() : "";
}

const ResourceInfo& EndpointSlices() {
  return *FindResource("discovery.k8s.io", "v1", "endpointslices");
}

// The image of the pod's first container, when it is the cluster DNS's.
bool RunsImage(const Json& pod, const std::string& repo) {
  const Json& containers = Field(Field(pod, "spec"), "containers");
  if (!containers.is_array() || containers.empty()) return false;
  std::string image = Str(containers[0], "image");
  return image == repo || image.rfind(repo + ":", 0) == 0 || image.rfind(repo + "@", 0) == 0;
}

// The inode of a named network namespace (0: there is none): a node that
// restarts makes a new namespace under the same name.
ino_t NetnsInode(const std::string& name) {
  struct stat st {};
  if (::stat(("/run/netns/" + name).c_str(), &st) != 0) return 0;
  return st.st_ino;
}

// A Service's or an EndpointSlice's ports (protocol defaults to TCP).
std::vector<netstack::DnsServicePort> PortsOf(const Json& ports) {
  std::vector<netstack::DnsServicePort> out;
  if (!ports.is_array()) return out;
  for (const Json& p : ports) {
    const Json& n = Field(p, "port");
    if (!n.is_number_integer() || n.get<int64_t>() < 1 || n.get<int64_t>() > 65535) continue;
    std::string proto = Str(p, "protocol");
    out.push_back(
        {Str(p, "name"), proto.empty() ? "TCP" : proto, static_cast<uint16_t>(n.get<int64_t>())});
  }
  return out;
}

}  // namespace

std::optional<DnsService> BuildDnsService(const Json& service,
                                          const std::vector<ObjectPtr>& slices) {
  DnsService out;
  out.ns = object::Namespace(service);
  out.name = object::Name(service);
  const Json& spec = Field(service, "spec");
  if (Str(spec, "type") == "ExternalName") {
    out.kind = DnsService::Kind::kExternalName;
    out.external_name = Str(spec, "externalName");
    if (out.external_name.empty()) return std::nullopt;
  } else if (Str(spec, "clusterIP") == "None") {
    out.kind = DnsService::Kind::kHeadless;
  } else {
    const Json& ips = Field(spec, "clusterIPs");
    std::vector<std::string> texts;
    if (ips.is_array()) {
      for (const Json& ip : ips) {
        if (ip.is_string()) texts.push_back(ip.get<std::string>());
      }
    }
    if (texts.empty()) texts.push_back(Str(spec, "clusterIP"));
    for (const auto& t : texts) {
      if (auto a = Ipv4Address::TryParse(t)) out.cluster_ips.push_back(*a);
    }
    if (out.cluster_ips.empty()) return std::nullopt;  // not allocated yet, or IPv6 only
  }
  out.ports = PortsOf(Field(spec, "ports"));
  for (const ObjectPtr& s : slices) {
    if (Str(*s, "addressType") != "IPv4") continue;
    // Endpoints' SRV records carry their slice's (target) ports.
    const std::vector<netstack::DnsServicePort> slice_ports = PortsOf(Field(*s, "ports"));
    const Json& eps = Field(*s, "endpoints");
    if (!eps.is_array()) continue;
    for (const Json& e : eps) {
      // CoreDNS publishes ready endpoints (unset is ready); the slice
      // controller marks not-ready pods ready for publishNotReadyAddresses.
      const Json& ready = Field(Field(e, "conditions"), "ready");
      if (ready.is_boolean() && !ready.get<bool>()) continue;
      const Json& addrs = Field(e, "addresses");
      if (!addrs.is_array()) continue;
      for (const Json& a : addrs) {
        auto ip = a.is_string() ? Ipv4Address::TryParse(a.get<std::string>()) : std::nullopt;
        if (ip) out.endpoints.push_back({*ip, Str(e, "hostname"), slice_ports});
      }
    }
  }
  std::sort(out.endpoints.begin(), out.endpoints.end(), [](const auto& a, const auto& b) {
    return std::tie(a.ipv4, a.hostname) < std::tie(b.ipv4, b.hostname);
  });
  out.endpoints.erase(std::unique(out.endpoints.begin(), out.endpoints.end()), out.endpoints.end());
  return out;
}

// ---- DnsZoneSync ------------------------------------------------------------------------

DnsZoneSync::DnsZoneSync(SharedInformerFactory& informers, netstack::DnsZone& zone)
    : zone_(zone),
      services_(informers.For(ServicesResource())),
      slices_(informers.For(EndpointSlices())),
      namespaces_(informers.For(NamespacesResource())),
      workers_("cluster-dns-zone", queue_, [this](const std::string& key) { return Sync(key); }) {
  slices_.AddIndex(kSliceServiceIndex, IndexSliceByService);
}

DnsZoneSync::~DnsZoneSync() { Stop(); }

void DnsZoneSync::Start() {
  if (!run_state_.TryStart()) return;
  subscriptions_.Add(services_, EnqueueHandlers(queue_));
  subscriptions_.Add(slices_, HandlersFrom([this](const Json* old, const Json* now) {
                       for (const Json* s : {old, now}) {
                         if (!s) continue;
                         for (const auto& key : IndexSliceByService(*s)) queue_.Add(key);
                       }
                     }));
  subscriptions_.Add(namespaces_, HandlersFrom([this](const Json* old, const Json* now) {
                       queue_.Add(kNamespacePrefix + object::Name(now ? *now : *old));
                     }));
  workers_.Start(2, {&services_, &slices_, &namespaces_});
}

void DnsZoneSync::Stop() {
  if (!run_state_.TryStop()) return;
  workers_.Stop();
  subscriptions_.RemoveAll();
}

Result DnsZoneSync::Sync(const std::string& key) {
  if (key.rfind(kNamespacePrefix, 0) == 0) {
    std::string ns = key.substr(sizeof kNamespacePrefix - 1);
    if (namespaces_.Lookup("", ns)) {
      zone_.SetNamespace(ns);
    } else {
      zone_.RemoveNamespace(ns);
    }
    return Result::Done();
  }
  auto [ns, name] = object::SplitKey(key);
  ObjectPtr svc = services_.LookupKey(key);
  std::optional<DnsService> d;
  if (svc) d = BuildDnsService(*svc, slices_.ByIndex(kSliceServiceIndex, key));
  if (d) {
    zone_.SetService(std::move(*d));
  } else {
    zone_.RemoveService(ns, name);
  }
  return Result::Done();
}

// ---- DnsPodServers ----------------------------------------------------------------------

struct DnsPodServers::Running {
  std::string uid;
  ino_t netns_inode = 0;
  std::unique_ptr<netstack::DnsServer> server;
};

DnsPodServers::DnsPodServers(SharedInformerFactory& informers, DnsPodServersOptions opts)
    : opts_(std::move(opts)),
      pods_(informers.For(PodsResource())),
      workers_("cluster-dns/" + opts_.node, queue_,
               [this](const std::string& key) { return Sync(key); }) {
  if (!opts_.zone || !opts_.cache || !opts_.pod_netns) {
    throw Error::Invalid("cluster dns for " + opts_.node + ": no zone, cache or pod namespaces");
  }
}

DnsPodServers::~DnsPodServers() { Stop(); }

void DnsPodServers::Start() {
  if (!run_state_.TryStart()) return;
  subscriptions_.Add(pods_, HandlersFrom([this](const Json* old, const Json* now) {
                       for (const Json* p : {old, now}) {
                         if (!p || !RunsImage(*p, opts_.image_repo)) continue;
                         if (Str(Field(*p, "spec"), "nodeName") != opts_.node) continue;
                         queue_.Add(object::Key(*p));
                         return;
                       }
                     }));
  workers_.Start(1, {&pods_});
}

void DnsPodServers::Stop() {
  if (!run_state_.TryStop()) return;
  workers_.Stop();
  subscriptions_.RemoveAll();
  std::map<std::string, std::unique_ptr<Running>> servers;
  {
    std::lock_guard lock(mu_);
    servers.swap(servers_);
  }
  servers.clear();  // each DnsServer stops and closes its sockets
}

std::vector<std::string> DnsPodServers::Serving() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [key, r] : servers_) out.push_back(key);
  return out;
}

Result DnsPodServers::Sync(const std::string& key) {
  ObjectPtr pod = pods_.LookupKey(key);
  std::string phase = pod ? Str(Field(*pod, "status"), "phase") : "";
  bool want = pod && RunsImage(*pod, opts_.image_repo) &&
              Str(Field(*pod, "spec"), "nodeName") == opts_.node &&
              !Str(Field(*pod, "status"), "podIP").empty() && phase != "Succeeded" &&
              phase != "Failed";
  std::string netns;
  ino_t inode = 0;
  if (want) {
    netns = opts_.pod_netns(*pod);
    inode = NetnsInode(netns);
    if (inode == 0) return Result::Retry();  // the sandbox is being made or went away
  }
  std::unique_ptr<Running> stale;
  {
    std::lock_guard lock(mu_);
    auto it = servers_.find(key);
    if (it != servers_.end() &&
        (!want || it->second->uid != object::Uid(*pod) || it->second->netns_inode != inode)) {
      stale = std::move(it->second);
      servers_.erase(it);
    }
    if (!want || servers_.count(key)) want = false;
  }
  if (stale) log::Info("cluster dns: stopped serving in {}", key);
  stale.reset();
  if (!want) return Result::Done();

  auto running = std::make_unique<Running>();
  running->uid = object::Uid(*pod);
  running->netns_inode = inode;
  netstack::DnsServerOptions so = opts_.server;
  so.netns = netns;
  so.name = key;
  running->server = std::make_unique<netstack::DnsServer>(so, *opts_.zone, *opts_.cache);
  try {
    running->server->Start();
  } catch (const std::exception& e) {
    log::Warn("cluster dns: cannot serve in {} (netns {}): {}", key, netns, e.what());
    return Result::Retry();
  }
  log::Info("cluster dns: serving in {} (netns {})", key, netns);
  std::lock_guard lock(mu_);
  servers_[key] = std::move(running);
  return Result::Done();
}

// ---- the system objects ----------------------------------------------------------------

std::vector<Json> ClusterDnsObjects(const ClusterDnsSettings& s) {
  const Json labels = {{"k8s-app", "kube-dns"}};
  Json service = {
      {"apiVersion", "v1"},
      {"kind", "Service"},
      {"metadata",
       {{"name", "kube-dns"},
        {"namespace", "kube-system"},
        {"labels",
         {{"k8s-app", "kube-dns"},
          {"kubernetes.io/cluster-service", "true"},
          {"kubernetes.io/name", "CoreDNS"}}},
        {"annotations", {{"prometheus.io/port", "9153"}, {"prometheus.io/scrape", "true"}}}}},
      {"spec",
       {{"selector", labels},
        {"clusterIP", s.cluster_ip},
        {"ports",
         {{{"name", "dns"}, {"port", 53}, {"protocol", "UDP"}, {"targetPort", 53}},
          {{"name", "dns-tcp"}, {"port", 53}, {"protocol", "TCP"}, {"targetPort", 53}},
          {{"name", "metrics"}, {"port", 9153}, {"protocol", "TCP"}, {"targetPort", 9153}}}}}}};
  auto probe = [](const char* path, int port, int period, int failures) {
    return Json{{"httpGet", {{"path", path}, {"port", port}, {"scheme", "HTTP"}}},
                {"periodSeconds", period},
                {"timeoutSeconds", 1},
                {"successThreshold", 1},
                {"failureThreshold", failures}};
  };
  Json container = {
      {"name", "coredns"},
      {"image", s.image},
      {"ports",
       {{{"name", "dns"}, {"containerPort", 53}, {"protocol", "UDP"}},
        {{"name", "dns-tcp"}, {"containerPort", 53}, {"protocol", "TCP"}},
        {{"name", "metrics"}, {"containerPort", 9153}, {"protocol", "TCP"}}}},
      {"resources",
       {{"requests", {{"cpu", "100m"}, {"memory", "70Mi"}}}, {"limits", {{"memory", "170Mi"}}}}},
      // CoreDNS's probes; readiness every second (CoreDNS: 10 s) so the
      // cluster's DNS is ready as soon as kin serves it.
      {"livenessProbe", probe("/health", 8080, 10, 5)},
      {"readinessProbe", probe("/ready", 8181, 1, 3)}};
  // Replicas on different nodes where possible (kubeadm's CoreDNS).
  Json term = {{"labelSelector",
                {{"matchExpressions",
                  {{{"key", "k8s-app"}, {"operator", "In"}, {"values", {"kube-dns"}}}}}}},
               {"topologyKey", "kubernetes.io/hostname"}};
  Json affinity = {{"podAntiAffinity",
                    {{"preferredDuringSchedulingIgnoredDuringExecution",
                      {{{"weight", 100}, {"podAffinityTerm", term}}}}}}};
  Json deployment = {
      {"apiVersion", "apps/v1"},
      {"kind", "Deployment"},
      {"metadata", {{"name", "coredns"}, {"namespace", "kube-system"}, {"labels", labels}}},
      {"spec",
       {{"replicas", s.replicas},
        {"selector", {{"matchLabels", labels}}},
        {"strategy", {{"type", "RollingUpdate"}, {"rollingUpdate", {{"maxUnavailable", 1}}}}},
        {"template",
         {{"metadata", {{"labels", labels}}},
          {"spec",
           {{"containers", {container}},
            // The DNS pods resolve through the node, not through themselves.
            {"dnsPolicy", "Default"},
            {"automountServiceAccountToken", false},
            {"nodeSelector", {{"kubernetes.io/os", "linux"}}},
            {"tolerations",
             {{{"key", "CriticalAddonsOnly"}, {"operator", "Exists"}},
              {{"key", "node-role.kubernetes.io/control-plane"}, {"effect", "NoSchedule"}}}},
            {"affinity", affinity}}}}}}}};
  return {service, deployment};
}

}  // namespace kin::controllers
