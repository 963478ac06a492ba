#include <malloc.h>
#include <signal.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>

#include "apiserver/apiserver.h"
#include "apiserver/local_client.h"
#include "base/error.h"
#include "base/file.h"
#include "base/log.h"
#include "base/version.h"
#include "cmd/cluster_runtime.h"
#include "cmd/commands.h"
#include "controllers/cluster_dns.h"
#include "controllers/ingress.h"
#include "controllers/kube_controllers.h"
#include "controllers/loadbalancer.h"
#include "controllers/service_proxy.h"
#include "netstack/dns_server.h"
#include "netstack/dns_zone.h"
#include "netstack/health_check.h"
#include "netstack/service_proxy.h"
#include "runtime/image_store.h"
#include "runtime/node_agent.h"

namespace kin::cmd {

int RunServe(const ServeFlags& flags) {
  // kin serve runs ~75 threads (watches, controllers, node agents) that
  // allocate and free JSON all the time. glibc's default of up to 8 malloc
  // arenas per core keeps freed memory in each: a churn of 1,000 pods left
  // RSS at 5x the live heap. One arena keeps it close to the heap (each
  // thread's tcache still serves its small blocks without the arena's
  // lock): with 3 nodes and 100 pods 1 MiB less than two arenas, after a
  // churn more.
  mallopt(M_ARENA_MAX, 1);
  // Big blocks (list bodies, nft scripts) are mapped and unmapped on their
  // own, and a free top of the heap beyond 128 KiB is returned at once.
  // Setting both also stops glibc raising them after each big free (its
  // dynamic threshold climbs to 32 MiB), which kept such blocks, freed, in
  // the heap: 4 MiB less RSS with 100 pods.
  mallopt(M_MMAP_THRESHOLD, 128 << 10);
  mallopt(M_TRIM_THRESHOLD, 128 << 10);
  // Block the stop signals before any thread starts, so every thread inherits
  // the mask and only sigwait() below sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  std::error_code ec;
  std::filesystem::create_directories(flags.state_dir, ec);
  if (ec) throw ErrnoError(ec.value(), "create state directory " + flags.state_dir);

  // The cluster's configuration, when serving one, decides the Service
  // range too (its serviceSubnet), so it is read before the API starts.
  std::optional<ClusterConfig> cluster_config;
  if (!flags.cluster_config.empty()) {
    try {
      auto text = ReadFileIfExists(flags.cluster_config);
      if (!text) throw Error::NotFound("cluster config " + flags.cluster_config + " not found");
      cluster_config = ClusterConfig::FromJson(Json::parse(*text));
    } catch (const std::exception& e) {
      log::Error("reading the cluster configuration failed: {}", e.what());
      return 1;
    }
  }

  apiserver::Options opts;
  opts.host = flags.address;
  opts.port = flags.port;
  opts.state_dir = flags.state_dir;
  opts.registry.service_cidr = cluster_config ? cluster_config->service_subnet : flags.service_cidr;
  if (cluster_config) {
    opts.registry.default_toleration_seconds = cluster_config->default_toleration_seconds;
  }
  opts.registry.require_service_accounts =
      controllers::ControllerEnabled(flags.controllers, "serviceaccount");
  opts.history_limit = static_cast<size_t>(flags.watch_history);
  if (!flags.pki_dir.empty()) {
    http::TlsServerOptions t;
    t.cert_file = flags.pki_dir + "/apiserver.crt";
    t.key_file = flags.pki_dir + "/apiserver.key";
    t.client_ca_file = flags.pki_dir + "/ca.crt";
    opts.tls = t;
    // Pods authenticate with service account tokens signed by this key.
    opts.service_account_key_file = flags.pki_dir + "/sa.key";
    if (cluster_config) {
      // kind's issuer, which is also the API's audience.
      std::string issuer = "https://kubernetes.default.svc." + cluster_config->dns_domain;
      opts.authentication.issuer = issuer;
      opts.authentication.api_audiences = {issuer};
    }
  }
  opts.registry.api_advertise_ip = flags.address;
  if (cluster_config) {
    // The cluster's network comes first: the API also listens inside it
    // (the underlay's .1), where pods reach it through the kubernetes
    // Service; the host's network is left alone.
    try {
      EnsureClusterNetwork(*cluster_config);
    } catch (const std::exception& e) {
      log::Error("building the cluster's network failed: {}", e.what());
      return 1;
    }
    NetworkEndpoint ep = ApiNetworkEndpoint(*cluster_config);
    opts.network_listener = apiserver::Options::NetworkListener{ep.netns, ep.ip, ep.port};
  }
  apiserver::ApiServer server(opts);
  server.Start();
  log::Info("kin {} serving on {}:{} (state in {})", kVersion, flags.address, server.port(),
            flags.state_dir);
  if (!flags.port_file.empty()) {
    WriteFileAtomic(flags.port_file, std::to_string(server.port()), 0644, false);
  }

  // The controllers run on every `kin serve`, with nodes or without.
  apiserver::LocalClient controller_client(server.registry(), "kube-controller-manager");
  controllers::ControllerManager controllers(controller_client);
  // Cluster DNS: one zone and one cache for the process, served in every
  // kube-dns pod (controllers/cluster_dns.h).
  std::unique_ptr<netstack::DnsZone> dns_zone;
  controllers::DnsZoneSync* dns_zone_sync = nullptr;  // owned by `controllers`
  netstack::DnsCache dns_cache;
  // The built-in Ingress controller: one set of routes for the process,
  // served in every ingress pod (controllers/ingress.h).
  controllers::IngressRouteHub ingress_routes;
  try {
    controllers::KubeControllerOptions co;
    co.controllers = flags.controllers;
    if (cluster_config) co.node_monitor_grace_period = cluster_config->NodeMonitorGracePeriod();
    if (!flags.pki_dir.empty()) {
      // Published as kube-root-ca.crt in every namespace.
      auto ca = ReadFileIfExists(flags.pki_dir + "/ca.crt");
      if (ca) co.root_ca_pem = *ca;
    }
    if (cluster_config) {
      // Volumes live with their node's state, so `kin cluster delete` removes them.
      co.local_path_dir = [dir = flags.state_dir](const std::string& node) {
        return dir + "/nodes/" + node + "/local-path-provisioner";
      };
    }
    controllers::AddKubeControllers(controllers, co);
    if (cluster_config) {
      dns_zone = std::make_unique<netstack::DnsZone>(
          netstack::DnsZoneOptions{.domain = cluster_config->dns_domain});
      auto zone_sync =
          std::make_unique<controllers::DnsZoneSync>(controllers.informers(), *dns_zone);
      dns_zone_sync = zone_sync.get();
      controllers.Add(std::move(zone_sync));
      // LoadBalancer Services (controllers/loadbalancer.h): addresses from
      // the pool, and the network's routes spreading them over the nodes.
      const auto lb_pool = netstack::Ipv4Cidr::ParseNetwork(cluster_config->load_balancer_subnet,
                                                            "networking.loadBalancerSubnet");
      controllers.Add(std::make_unique<controllers::LoadBalancerController>(
          controllers.informers(), controller_client,
          controllers::LoadBalancerControllerOptions{.pool = lb_pool}));
      auto lb_table = std::make_shared<netstack::LbRouteTable>(
          netstack::NetworkNetnsName(NetworkOf(*cluster_config)), netstack::kUnderlayBridge,
          lb_pool);
      controllers.Add(std::make_unique<controllers::LoadBalancerRoutes>(
          controllers.informers(),
          controllers::LoadBalancerRoutesOptions{
              .pool = lb_pool,
              .apply = [lb_table](const std::vector<netstack::LbRoute>& r) { lb_table->Sync(r); }}));
      controllers.Add(std::make_unique<controllers::IngressSync>(
          controllers.informers(), controller_client, ingress_routes));
    }
    controllers.Start();
  } catch (const std::exception& e) {
    log::Error("starting the controllers failed: {}", e.what());
    server.Stop();
    return 1;
  }

  std::unique_ptr<ClusterRuntime> nodes;
  if (cluster_config) {
    try {
      ClusterRuntimeOptions ro;
      ro.config = *cluster_config;
      ro.state_dir = flags.state_dir;
      ro.kin_binary = std::filesystem::read_symlink("/proc/self/exe").string();
      ro.crash_backoff = ro.config.CrashBackoff();
      ro.log_max_bytes = ro.config.ContainerLogMaxBytes();
      ro.log_max_files = ro.config.container_log_max_files;
      // Each node's service proxy reads Services and EndpointSlices from
      // the controllers' shared informers (one cache for the process).
      // Each node's proxy health, told by its service proxy and reported by
      // its health check server (serviceProxyHealthy), as kube-proxy's:
      // unhealthy once a change has waited for a successful sync longer
      // than twice kube-proxy's default sync period.
      auto proxy_health = std::make_shared<
          std::pair<std::mutex, std::map<std::string, std::shared_ptr<netstack::ProxyHealth>>>>();
      auto health_of = [proxy_health](const std::string& node, bool fresh) {
        std::lock_guard l(proxy_health->first);
        auto& h = proxy_health->second[node];
        if (fresh || !h) h = std::make_shared<netstack::ProxyHealth>(std::chrono::seconds(60));
        return h;
      };
      ro.node_components.push_back([&controllers, health_of](const NodeContext& ctx) {
        controllers::ServiceProxyOptions po;
        po.health = health_of(ctx.node.name, true);
        po.node.name = ctx.node.name;
        po.node.ips = {netstack::Ipv4Address::Parse(ctx.node.ip, "node ip")};
        po.node.cluster_cidr = netstack::Ipv4Cidr::Parse(ctx.config.pod_subnet, "podSubnet");
        po.node.service_cidr =
            netstack::Ipv4Cidr::Parse(ctx.config.service_subnet, "serviceSubnet");
        po.backend =
            netstack::NewProxyBackend(netstack::ParseProxyMode(ctx.config.proxy_mode), ctx.netns);
        return std::make_unique<controllers::ServiceProxy>(controllers.informers(), std::move(po));
      });
      // Each node answers the healthCheckNodePorts of its Local
      // LoadBalancer Services, as kube-proxy does.
      ro.node_components.push_back([&controllers, health_of](const NodeContext& ctx) {
        controllers::ServiceHealthChecksOptions o;
        o.node = ctx.node.name;
        o.netns = ctx.netns;
        o.proxy_health = health_of(ctx.node.name, false);
        return std::make_unique<controllers::ServiceHealthChecks>(controllers.informers(),
                                                                  std::move(o));
      });
      // Each node serves the kube-dns pods scheduled to it.
      netstack::DnsServerOptions dns_server;
      dns_server.upstreams =
          DnsUpstreamsOf(ro.config, ReadFileIfExists("/etc/resolv.conf").value_or(""));
      dns_server.forward_timeout = ro.config.DnsForwardTimeout();
      dns_server.attempt_timeout =
          std::max(dns_server.forward_timeout / 2, std::chrono::milliseconds(100));
      ro.node_components.push_back([&controllers, &dns_zone, &dns_cache, dns_zone_sync,
                                    dns_server](const NodeContext& ctx) {
        controllers::DnsPodServersOptions o;
        o.node = ctx.node.name;
        o.image_repo = std::string(kClusterDnsImage);
        o.pod_netns = [prefix = "kin-" + ctx.config.name + "-"](const Json& pod) {
          return PodNetnsName(prefix, pod);
        };
        o.server = dns_server;
        o.zone = dns_zone.get();
        o.cache = &dns_cache;
        o.zone_sync = dns_zone_sync;
        return std::make_unique<controllers::DnsPodServers>(controllers.informers(), std::move(o));
      });
      // Each node serves the ingress pods scheduled to it.
      ro.node_components.push_back([&controllers, &ingress_routes](const NodeContext& ctx) {
        controllers::IngressPodServersOptions o;
        o.node = ctx.node.name;
        o.image_repo = std::string(kIngressImage);
        o.pod_netns = [prefix = "kin-" + ctx.config.name + "-"](const Json& pod) {
          return PodNetnsName(prefix, pod);
        };
        o.hub = &ingress_routes;
        return std::make_unique<controllers::IngressPodServers>(controllers.informers(),
                                                                std::move(o));
      });
      ro.informers = &controllers.informers();
      nodes = std::make_unique<ClusterRuntime>(server, ro);
      nodes->Start();
      if (ro.config.dns_replicas > 0) {
        EnsureClusterDns(controller_client,
                         {.cluster_ip = ro.config.dns_ip,
                          .replicas = ro.config.dns_replicas,
                          .image = std::string(kClusterDnsImage) + ":" + kVersion});
      }
      EnsureIngress(controller_client, {.image = std::string(kIngressImage) + ":" + kVersion});
    } catch (const std::exception& e) {
      log::Error("starting the cluster's nodes failed: {}", e.what());
      nodes.reset();
      controllers.Stop();
      server.Stop();
      return 1;
    }
  }

  // Memory freed among live objects (a churn's pods and watch events freed
  // between the Events that stay) is kept by glibc, which returns only a
  // free top of the heap. malloc_trim() returns every free page; every 10 s
  // it costs about a millisecond, and took a kin serve that had churned
  // 300 pods from 77 to 57 MiB.
  int sig = -1;
  const timespec trim_period{10, 0};
  while (sig < 0) {
    sig = sigtimedwait(&stop_signals, nullptr, &trim_period);
    if (sig < 0) malloc_trim(0);
  }
  log::Info("received {}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  // Pods keep running: the next `kin serve` re-adopts them.
  nodes.reset();
  controllers.Stop();
  server.Stop();
  log::Info("stopped");
  return 0;
}

}  // namespace kin::cmd
