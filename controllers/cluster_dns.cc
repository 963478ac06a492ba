#include "controllers/cluster_dns.h"

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

using object::Field;
using object::Str;

const ResourceInfo& EndpointSlices() {
  return *FindResource("discovery.k8s.io", "v1", "endpointslices");
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
  initial_ = std::thread([this] { LoadInitial(); });
}

void DnsZoneSync::LoadInitial() {
  for (Informer* i : {&services_, &slices_, &namespaces_}) {
    while (!i->WaitForSync(std::chrono::milliseconds(100))) {
      std::lock_guard l(sync_mu_);
      if (stopping_) return;
    }
  }
  // The workers sync these too (each key is idempotent); doing it here
  // tells when the first full state is in.
  for (const ObjectPtr& ns : namespaces_.Items()) Sync(kNamespacePrefix + object::Name(*ns));
  for (const ObjectPtr& svc : services_.Items()) Sync(object::Key(*svc));
  std::lock_guard l(sync_mu_);
  synced_ = true;
  sync_cv_.notify_all();
}

bool DnsZoneSync::WaitSynced(std::chrono::milliseconds timeout) const {
  std::unique_lock l(sync_mu_);
  return sync_cv_.wait_for(l, timeout, [this] { return synced_ || stopping_; }) && synced_;
}

void DnsZoneSync::Stop() {
  if (!run_state_.TryStop()) return;
  {
    std::lock_guard l(sync_mu_);
    stopping_ = true;
    sync_cv_.notify_all();
  }
  if (initial_.joinable()) initial_.join();
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

namespace {

class DnsPodServer : public PodServer {
 public:
  DnsPodServer(netstack::DnsServerOptions opts, const netstack::DnsZone& zone,
               netstack::DnsCache& cache)
      : server_(std::move(opts), zone, cache) {
    server_.Start();
  }

 private:
  netstack::DnsServer server_;  // stops when destroyed
};

PodServersOptions DnsServersOptions(DnsPodServersOptions opts) {
  if (!opts.zone || !opts.cache) {
    throw Error::Invalid("cluster dns for " + opts.node + ": no zone or cache");
  }
  PodServersOptions o;
  o.component = "cluster-dns";
  o.node = opts.node;
  o.image_repo = opts.image_repo;
  o.pod_netns = opts.pod_netns;
  o.start = [server = opts.server, zone = opts.zone, cache = opts.cache,
             zone_sync = opts.zone_sync](
                const Json& pod, const std::string& netns) -> std::unique_ptr<PodServer> {
    if (zone_sync != nullptr && !zone_sync->WaitSynced(std::chrono::seconds(5))) {
      log::Warn("cluster-dns: the zone is not synced after 5 s; {} answers anyway",
                object::Key(pod));
    }
    netstack::DnsServerOptions so = server;
    so.netns = netns;
    so.name = object::Key(pod);
    return std::make_unique<DnsPodServer>(std::move(so), *zone, *cache);
  };
  return o;
}

}  // namespace

DnsPodServers::DnsPodServers(SharedInformerFactory& informers, DnsPodServersOptions opts)
    : PodServers(informers, DnsServersOptions(std::move(opts))) {}

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
