#include "controllers/ingress.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "base/error.h"
#include "base/log.h"
#include "base/strings.h"
#include "client/object.h"
#include "client/resources.h"
#include "controllers/endpointslice.h"

namespace kin::controllers {
namespace {

using netstack::IngressBackend;
using netstack::IngressPathType;

constexpr char kRoutesKey[] = "routes";
constexpr char kDefaultClassAnnotation[] = "ingressclass.kubernetes.io/is-default-class";
constexpr char kClassAnnotation[] = "kubernetes.io/ingress.class";
constexpr char kSslRedirectAnnotation[] = "nginx.ingress.kubernetes.io/ssl-redirect";
constexpr char kForceSslRedirectAnnotation[] = "nginx.ingress.kubernetes.io/force-ssl-redirect";

std::string ToLower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

using object::Field;
using object::Str;

const ResourceInfo& EndpointSlices() {
  return *FindResource("discovery.k8s.io", "v1", "endpointslices");
}

// The ready IPv4 endpoints of a Service port, at the slices' port of the
// same name (the targetPort the slice controller resolved).
std::vector<netstack::IngressEndpoint> EndpointsOf(const std::string& port_name,
                                                   const std::vector<ObjectPtr>& slices) {
  std::vector<netstack::IngressEndpoint> out;
  for (const ObjectPtr& s : slices) {
    if (Str(*s, "addressType") != "IPv4") continue;
    int port = 0;
    const Json& ports = Field(*s, "ports");
    if (ports.is_array()) {
      for (const Json& p : ports) {
        std::string proto = Str(p, "protocol");
        if (Str(p, "name") == port_name && (proto.empty() || proto == "TCP") &&
            Field(p, "port").is_number_integer()) {
          port = Field(p, "port").get<int>();
        }
      }
    }
    if (port < 1 || port > 65535) continue;
    const Json& eps = Field(*s, "endpoints");
    if (!eps.is_array()) continue;
    for (const Json& e : eps) {
      const Json& ready = Field(Field(e, "conditions"), "ready");
      if (ready.is_boolean() && !ready.get<bool>()) continue;
      const Json& addrs = Field(e, "addresses");
      if (!addrs.is_array()) continue;
      for (const Json& a : addrs) {
        if (a.is_string()) out.push_back({a.get<std::string>(), static_cast<uint16_t>(port)});
      }
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::tie(a.ip, a.port) < std::tie(b.ip, b.port);
  });
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// An Ingress backend ({service: {name, port: {number|name}}}) in `ns`.
IngressBackend ResolveBackend(const Json& backend, const std::string& ns,
                              const IngressSources& src) {
  IngressBackend out;
  const Json& svc_ref = Field(backend, "service");
  std::string name = Str(svc_ref, "name");
  const Json& port_ref = Field(svc_ref, "port");
  std::string port_text = Field(port_ref, "number").is_number_integer()
                              ? std::to_string(Field(port_ref, "number").get<int>())
                              : Str(port_ref, "name");
  out.name = ns + "/" + name + ":" + port_text;
  if (name.empty()) return out;  // a resource backend: not supported
  const std::string key = object::Key(ns, name);
  ObjectPtr svc = src.service ? src.service(key) : nullptr;
  if (!svc) return out;
  const Json& ports = Field(Field(*svc, "spec"), "ports");
  if (!ports.is_array()) return out;
  for (const Json& p : ports) {
    std::string proto = Str(p, "protocol");
    if (!proto.empty() && proto != "TCP") continue;
    bool match = Field(port_ref, "number").is_number_integer()
                     ? Field(p, "port") == Field(port_ref, "number")
                     : !Str(port_ref, "name").empty() && Str(p, "name") == Str(port_ref, "name");
    if (!match) continue;
    out.endpoints =
        EndpointsOf(Str(p, "name"), src.slices ? src.slices(key) : std::vector<ObjectPtr>{});
    break;
  }
  return out;
}

IngressPathType PathTypeOf(const std::string& t) {
  if (t == "Exact") return IngressPathType::kExact;
  if (t == "Prefix") return IngressPathType::kPrefix;
  return IngressPathType::kImplementationSpecific;
}

}  // namespace

const ResourceInfo& IngressesResource() {
  return *FindResource("networking.k8s.io", "v1", "ingresses");
}
const ResourceInfo& IngressClassesResource() {
  return *FindResource("networking.k8s.io", "v1", "ingressclasses");
}
const ResourceInfo& SecretsResource() { return *FindResource("", "v1", "secrets"); }

bool ServesIngress(const Json& ing, const std::vector<ObjectPtr>& classes,
                   const std::string& controller) {
  const Json& spec = Field(ing, "spec");
  std::string cls = Str(spec, "ingressClassName");
  if (cls.empty()) cls = Str(Field(Field(ing, "metadata"), "annotations"), kClassAnnotation);
  for (const ObjectPtr& c : classes) {
    if (Str(Field(*c, "spec"), "controller") != controller) continue;
    if (!cls.empty() && object::Name(*c) == cls) return true;
    if (cls.empty() &&
        Str(Field(Field(*c, "metadata"), "annotations"), kDefaultClassAnnotation) == "true") {
      return true;
    }
  }
  return false;
}

netstack::IngressRoutes BuildIngressRoutes(const IngressSources& src,
                                           const std::string& controller) {
  std::vector<ObjectPtr> served;
  for (const ObjectPtr& ing : src.ingresses) {
    if (Field(Field(*ing, "metadata"), "deletionTimestamp").is_string()) continue;
    if (ServesIngress(*ing, src.classes, controller)) served.push_back(ing);
  }
  std::sort(served.begin(), served.end(), [](const ObjectPtr& a, const ObjectPtr& b) {
    std::string ta = Str(Field(*a, "metadata"), "creationTimestamp"), ka = object::Key(*a);
    std::string tb = Str(Field(*b, "metadata"), "creationTimestamp"), kb = object::Key(*b);
    return std::tie(ta, ka) < std::tie(tb, kb);
  });
  // Hosts with TLS (in any served Ingress's tls, with a Secret or not: the
  // default certificate serves then): plain HTTP to them is redirected.
  std::set<std::string> tls_hosts;
  for (const ObjectPtr& ing : served) {
    const Json& tls = Field(Field(*ing, "spec"), "tls");
    if (!tls.is_array()) continue;
    for (const Json& t : tls) {
      const Json& hosts = Field(t, "hosts");
      if (!hosts.is_array()) continue;
      for (const Json& h : hosts) {
        if (h.is_string()) tls_hosts.insert(ToLower(h.get<std::string>()));
      }
    }
  }
  netstack::IngressRoutes routes;
  for (const ObjectPtr& ing : served) {
    const std::string ns = object::Namespace(*ing);
    const Json& spec = Field(*ing, "spec");
    const Json& annotations = Field(Field(*ing, "metadata"), "annotations");
    const bool force_redirect = Str(annotations, kForceSslRedirectAnnotation) == "true";
    const bool no_redirect = Str(annotations, kSslRedirectAnnotation) == "false";
    if (!routes.default_backend && Field(spec, "defaultBackend").is_object()) {
      routes.default_backend = ResolveBackend(Field(spec, "defaultBackend"), ns, src);
    }
    const Json& rules = Field(spec, "rules");
    if (rules.is_array()) {
      for (const Json& rule : rules) {
        netstack::IngressHostRule hr;
        hr.host = Str(rule, "host");
        const Json& paths = Field(Field(rule, "http"), "paths");
        if (!paths.is_array()) continue;
        for (const Json& p : paths) {
          netstack::IngressPath ip;
          std::string path = Str(p, "path");
          ip.path = path.empty() ? std::string(1, '/') : std::move(path);
          ip.type = PathTypeOf(Str(p, "pathType"));
          ip.backend = ResolveBackend(Field(p, "backend"), ns, src);
          ip.ssl_redirect = force_redirect ||
                            (!no_redirect && !hr.host.empty() && tls_hosts.count(ToLower(hr.host)));
          hr.paths.push_back(std::move(ip));
        }
        routes.rules.push_back(std::move(hr));
      }
    }
    const Json& tls = Field(spec, "tls");
    if (tls.is_array()) {
      for (const Json& t : tls) {
        std::string secret_name = Str(t, "secretName");
        ObjectPtr secret =
            secret_name.empty() || !src.secret ? nullptr : src.secret(object::Key(ns, secret_name));
        if (!secret) continue;  // the default certificate serves
        const Json& data = Field(*secret, "data");
        auto crt = Base64Decode(Str(data, "tls.crt"));
        auto key = Base64Decode(Str(data, "tls.key"));
        if (!crt || !key || crt->empty() || key->empty()) continue;
        netstack::IngressCertificate cert;
        const Json& hosts = Field(t, "hosts");
        if (hosts.is_array()) {
          for (const Json& h : hosts) {
            if (h.is_string()) cert.hosts.push_back(h.get<std::string>());
          }
        }
        if (cert.hosts.empty()) continue;
        cert.cert_pem = std::move(*crt);
        cert.key_pem = std::move(*key);
        routes.certificates.push_back(std::move(cert));
      }
    }
  }
  return routes;
}

// ---- IngressRouteHub --------------------------------------------------------------------

void IngressRouteHub::Set(netstack::IngressRoutes routes) {
  std::lock_guard lock(mu_);
  if (routes == routes_ && generation_ > 0) return;
  routes_ = std::move(routes);
  ++generation_;
  for (auto* p : proxies_) p->SetRoutes(routes_);
}

netstack::IngressRoutes IngressRouteHub::Get() const {
  std::lock_guard lock(mu_);
  return routes_;
}

uint64_t IngressRouteHub::generation() const {
  std::lock_guard lock(mu_);
  return generation_;
}

void IngressRouteHub::Add(netstack::IngressProxy* proxy) {
  std::lock_guard lock(mu_);
  proxies_.push_back(proxy);
  if (generation_ > 0) proxy->SetRoutes(routes_);  // else at the first Set: not ready till then
}

void IngressRouteHub::Remove(netstack::IngressProxy* proxy) {
  std::lock_guard lock(mu_);
  proxies_.erase(std::remove(proxies_.begin(), proxies_.end(), proxy), proxies_.end());
}

// ---- IngressSync ------------------------------------------------------------------------

IngressSync::IngressSync(SharedInformerFactory& informers, Client& client, IngressRouteHub& hub,
                         IngressSyncOptions opts)
    : component_(client, "kin-ingress-controller"),
      hub_(hub),
      opts_(std::move(opts)),
      ingresses_(informers.For(IngressesResource())),
      classes_(informers.For(IngressClassesResource())),
      services_(informers.For(ServicesResource())),
      slices_(informers.For(EndpointSlices())),
      secrets_(informers.For(SecretsResource())),
      workers_("ingress", queue_, [this](const std::string& key) { return Sync(key); }) {
  slices_.AddIndex(kSliceServiceIndex, IndexSliceByService);
}

IngressSync::~IngressSync() { Stop(); }

void IngressSync::Start() {
  if (!run_state_.TryStart()) return;
  auto all = HandlersFrom([this](const Json*, const Json*) { queue_.Add(kRoutesKey); });
  // Secrets change often (tokens): only TLS ones matter.
  auto tls = HandlersFrom([this](const Json* old, const Json* now) {
    for (const Json* s : {old, now}) {
      if (s && Str(*s, "type") == "kubernetes.io/tls") {
        queue_.Add(kRoutesKey);
        return;
      }
    }
  });
  subscriptions_.Add(ingresses_, all);
  subscriptions_.Add(classes_, all);
  subscriptions_.Add(services_, all);
  subscriptions_.Add(slices_, all);
  subscriptions_.Add(secrets_, tls);
  workers_.Start(1, {&ingresses_, &classes_, &services_, &slices_, &secrets_});
}

void IngressSync::Stop() {
  if (!run_state_.TryStop()) return;
  workers_.Stop();
  subscriptions_.RemoveAll();
}

Result IngressSync::Sync(const std::string&) {
  IngressSources src;
  src.ingresses = ingresses_.Items();
  src.classes = classes_.Items();
  src.service = [this](const std::string& key) { return services_.LookupKey(key); };
  src.slices = [this](const std::string& key) { return slices_.ByIndex(kSliceServiceIndex, key); };
  src.secret = [this](const std::string& key) { return secrets_.LookupKey(key); };
  hub_.Set(BuildIngressRoutes(src, opts_.controller));

  // status.loadBalancer of every served Ingress: the LB Service's addresses.
  Json want = Json::array();
  if (ObjectPtr lb = services_.Lookup(opts_.lb_namespace, opts_.lb_service)) {
    const Json& in = Field(Field(Field(*lb, "status"), "loadBalancer"), "ingress");
    if (in.is_array()) {
      for (const Json& e : in) {
        if (!Str(e, "ip").empty()) {
          want.push_back({{"ip", Str(e, "ip")}});
        } else if (!Str(e, "hostname").empty()) {
          want.push_back({{"hostname", Str(e, "hostname")}});
        }
      }
    }
  }
  bool retry = false;
  std::map<std::string, int64_t> synced;
  for (const ObjectPtr& ing : src.ingresses) {
    if (!ServesIngress(*ing, src.classes, opts_.controller)) continue;
    const std::string key = object::Key(*ing);
    const Json& gen = Field(Field(*ing, "metadata"), "generation");
    synced[key] = gen.is_number_integer() ? gen.get<int64_t>() : 0;
    auto seen = synced_generation_.find(key);
    if (seen == synced_generation_.end() || seen->second != synced[key]) {
      component_.events().Normal(*ing, "Sync", "Scheduled for sync");
    }
    const Json& have = Field(Field(Field(*ing, "status"), "loadBalancer"), "ingress");
    if ((have.is_null() && want.empty()) || have == want) continue;
    Json patch = {{"status", {{"loadBalancer", {{"ingress", want}}}}}};
    try {
      component_.client().Patch(IngressesResource(), object::Namespace(*ing), object::Name(*ing),
                                PatchType::kMerge, patch, "status");
    } catch (const Error& e) {
      if (e.code() == Code::kNotFound) continue;
      log::Warn("ingress: cannot write the status of {}: {}", object::Key(*ing), e.what());
      retry = true;
    }
  }
  synced_generation_ = std::move(synced);
  return retry ? Result::Retry() : Result::Done();
}

// ---- IngressPodServers ------------------------------------------------------------------

namespace {

// A proxy in one pod, registered with the hub while it runs.
class IngressPodServer : public PodServer {
 public:
  IngressPodServer(netstack::IngressProxyOptions opts, IngressRouteHub& hub)
      : hub_(hub), proxy_(std::move(opts)) {
    proxy_.Start();
    hub_.Add(&proxy_);
  }
  ~IngressPodServer() override {
    hub_.Remove(&proxy_);
    proxy_.Stop();
  }

 private:
  IngressRouteHub& hub_;
  netstack::IngressProxy proxy_;
};

PodServersOptions IngressServersOptions(IngressPodServersOptions opts) {
  if (!opts.hub) throw Error::Invalid("ingress for " + opts.node + ": no route hub");
  PodServersOptions o;
  o.component = "ingress";
  o.node = opts.node;
  o.image_repo = opts.image_repo;
  o.pod_netns = opts.pod_netns;
  o.start = [proxy = opts.proxy, hub = opts.hub](
                const Json& pod, const std::string& netns) -> std::unique_ptr<PodServer> {
    netstack::IngressProxyOptions po = proxy;
    po.netns = netns;
    po.name = object::Key(pod);
    return std::make_unique<IngressPodServer>(std::move(po), *hub);
  };
  return o;
}

}  // namespace

IngressPodServers::IngressPodServers(SharedInformerFactory& informers,
                                     IngressPodServersOptions opts)
    : PodServers(informers, IngressServersOptions(std::move(opts))) {}

// ---- the system objects ----------------------------------------------------------------

std::vector<Json> IngressObjects(const IngressSettings& s) {
  // ingress-nginx's labels, so kind's instructions find the controller.
  const Json labels = {{"app.kubernetes.io/name", "ingress-nginx"},
                       {"app.kubernetes.io/instance", "ingress-nginx"},
                       {"app.kubernetes.io/component", "controller"}};
  Json ns = {{"apiVersion", "v1"},
             {"kind", "Namespace"},
             {"metadata",
              {{"name", kIngressNamespace},
               {"labels",
                {{"app.kubernetes.io/name", "ingress-nginx"},
                 {"app.kubernetes.io/instance", "ingress-nginx"}}}}}};
  Json cls = {{"apiVersion", "networking.k8s.io/v1"},
              {"kind", "IngressClass"},
              {"metadata",
               {{"name", kIngressClassName},
                {"labels", labels},
                {"annotations", {{kDefaultClassAnnotation, "true"}}}}},
              {"spec", {{"controller", kIngressControllerName}}}};
  Json container = {{"name", "controller"},
                    {"image", s.image},
                    {"ports",
                     {{{"name", "http"}, {"containerPort", 80}, {"protocol", "TCP"}},
                      {{"name", "https"}, {"containerPort", 443}, {"protocol", "TCP"}},
                      {{"name", "health"}, {"containerPort", 10254}, {"protocol", "TCP"}}}},
                    {"resources", {{"requests", {{"cpu", "100m"}, {"memory", "90Mi"}}}}},
                    {"readinessProbe",
                     {{"httpGet", {{"path", "/healthz"}, {"port", 10254}, {"scheme", "HTTP"}}},
                      {"periodSeconds", 1},
                      {"timeoutSeconds", 1},
                      {"successThreshold", 1},
                      {"failureThreshold", 3}}},
                    {"livenessProbe",
                     {{"httpGet", {{"path", "/healthz"}, {"port", 10254}, {"scheme", "HTTP"}}},
                      {"periodSeconds", 10},
                      {"timeoutSeconds", 1},
                      {"failureThreshold", 5}}}};
  Json deployment = {
      {"apiVersion", "apps/v1"},
      {"kind", "Deployment"},
      {"metadata",
       {{"name", kIngressServiceName}, {"namespace", kIngressNamespace}, {"labels", labels}}},
      {"spec",
       {{"replicas", s.replicas},
        {"selector", {{"matchLabels", labels}}},
        {"template",
         {{"metadata", {{"labels", labels}}},
          {"spec",
           {{"containers", {container}},
            {"automountServiceAccountToken", false},
            // No toleration for the control plane's taint: with workers the
            // pod runs on one, which the LoadBalancer's routes reach (the
            // control plane is excluded from them, and the policy is Local).
            {"nodeSelector", {{"kubernetes.io/os", "linux"}}}}}}}}}};
  Json service = {
      {"apiVersion", "v1"},
      {"kind", "Service"},
      {"metadata",
       {{"name", kIngressServiceName}, {"namespace", kIngressNamespace}, {"labels", labels}}},
      {"spec",
       {{"type", "LoadBalancer"},
        // As ingress-nginx's cloud manifest: traffic from outside keeps its
        // client address, so X-Forwarded-For names the real client.
        {"externalTrafficPolicy", "Local"},
        {"selector", labels},
        {"ports",
         {{{"name", "http"}, {"port", 80}, {"protocol", "TCP"}, {"targetPort", "http"}},
          {{"name", "https"}, {"port", 443}, {"protocol", "TCP"}, {"targetPort", "https"}}}}}}};
  return {ns, cls, deployment, service};
}

}  // namespace kin::controllers
