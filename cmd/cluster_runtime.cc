#include "cmd/cluster_runtime.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "apiserver/apiserver.h"
#include "apiserver/local_client.h"
#include "base/error.h"
#include "base/file.h"
#include "base/log.h"
#include "base/netns.h"
#include "cmd/pod_io_bridge.h"
#include "netstack/external_server.h"
#include "netstack/host_access.h"
#include "netstack/lb_routes.h"
#include "netstack/netlink.h"
#include "runtime/image_store.h"
#include "runtime/node_agent.h"
#include "runtime/registry_client.h"

namespace kin::cmd {

namespace fs = std::filesystem;

namespace {

// The node's name without the cluster prefix: "worker2" for kin-dev-worker2.
std::string ShortNodeName(const ClusterConfig& config, const NodeConfig& node) {
  std::string prefix = "kin-" + config.name + "-";
  if (node.name.rfind(prefix, 0) == 0) return node.name.substr(prefix.size());
  return node.name;
}

DnsSettings ClusterDns(const ClusterConfig& config) {
  DnsSettings dns;
  dns.cluster_dns = {config.dns_ip};
  dns.cluster_domain = config.dns_domain;
  dns.host_resolv_conf = ReadFileIfExists("/etc/resolv.conf").value_or("");
  return dns;
}

std::string NodeDir(const std::string& state_dir, const std::string& node) {
  return state_dir + "/nodes/" + node;
}

// Present while `kin node stop` holds the node down.
std::string StoppedMarker(const std::string& state_dir, const std::string& node) {
  return NodeDir(state_dir, node) + "/stopped";
}

NodeAgentOptions AgentOptions(const ClusterRuntimeOptions& o, const NodeConfig& n,
                              ImageStore* images) {
  NodeAgentOptions a;
  a.node_name = n.name;
  a.node_netns = NodeNetns(o.config, n);
  a.name_prefix = "kin-" + o.config.name + "-";
  a.node_ip = n.ip;
  a.pod_cidr = netstack::Ipv4Cidr::ParseNetwork(n.pod_cidr);
  a.dir = NodeDir(o.state_dir, n.name);
  a.kin_binary = o.kin_binary;
  a.dns = ClusterDns(o.config);
  a.labels = Json::object();
  for (const auto& [k, v] : n.labels) a.labels[k] = v;
  a.taints = n.taints;
  a.capacity = n.capacity;
  a.images = images;
  a.crash_backoff = o.crash_backoff;
  a.log_max_bytes = o.log_max_bytes;
  a.log_max_files = o.log_max_files;
  a.cluster_ca_file = o.cluster_ca_file;
  a.service_account_token = o.service_account_token;
  a.request_token = o.request_token;
  a.volume_refresh_interval = o.config.SyncFrequency();
  a.token_max_age = o.config.TokenMaxAge();
  // The lease is renewed well within the grace period the node lifecycle
  // controller allows (the kubelet renews every 10 s of 40).
  a.lease_interval = std::min<std::chrono::milliseconds>(std::chrono::seconds(10),
                                                         o.config.NodeMonitorGracePeriod() / 4);
  return a;
}

ImageStoreOptions StoreOptions(const ClusterRuntimeOptions& o) {
  ImageStoreOptions so;
  so.dir = o.state_dir + "/images";
  so.kin_binary = o.kin_binary;
  so.host_mappings = o.config.image_host_mappings;
  return so;
}

}  // namespace

netstack::ClusterNetwork NetworkOf(const ClusterConfig& config) {
  netstack::ClusterNetwork net;
  net.cluster = config.name;
  net.underlay = netstack::Ipv4Cidr::ParseNetwork(config.underlay, "networking.underlay");
  net.mode = netstack::ParseRoutingMode(config.routing);
  net.external.subnet =
      netstack::Ipv4Cidr::ParseNetwork(config.external_subnet, "networking.externalSubnet");
  net.load_balancer = netstack::Ipv4Cidr::ParseNetwork(config.load_balancer_subnet,
                                                       "networking.loadBalancerSubnet");
  net.host_access.enabled = config.host_access;
  for (const auto& n : config.nodes) {
    netstack::NodeNetwork nn;
    nn.name = ShortNodeName(config, n);
    nn.ip = netstack::Ipv4Address::Parse(n.ip);
    nn.pod_cidr = netstack::Ipv4Cidr::ParseNetwork(n.pod_cidr);
    net.nodes.push_back(nn);
  }
  return net;
}

std::string NodeNetns(const ClusterConfig& config, const NodeConfig& node) {
  return netstack::NodeNetnsName(NetworkOf(config), ShortNodeName(config, node));
}

netstack::EgressMasquerade EgressOf(const ClusterConfig& config) {
  netstack::EgressMasquerade e;
  e.pod_range = netstack::Ipv4Cidr::ParseNetwork(config.pod_subnet, "networking.podSubnet");
  e.cluster_ranges = {e.pod_range, netstack::Ipv4Cidr::ParseNetwork(config.service_subnet,
                                                                    "networking.serviceSubnet")};
  e.uplink = netstack::kNodeUplink;
  return e;
}

std::vector<netstack::DnsUpstream> DnsUpstreamsOf(const ClusterConfig& config,
                                                  const std::string& host_resolv_conf) {
  std::vector<std::string> addresses = config.dns_upstreams;
  if (addresses.empty()) {
    std::istringstream in(host_resolv_conf);
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream words(line);
      std::string key, value;
      if (words >> key >> value && key == "nameserver") addresses.push_back(value);
    }
  }
  const std::vector<netstack::Ipv4Cidr> reachable = {
      netstack::Ipv4Cidr::ParseNetwork(config.pod_subnet),
      netstack::Ipv4Cidr::ParseNetwork(config.service_subnet),
      netstack::Ipv4Cidr::ParseNetwork(config.underlay),
      netstack::Ipv4Cidr::ParseNetwork(config.external_subnet)};
  std::vector<netstack::DnsUpstream> out;
  for (const auto& a : addresses) {
    auto ip = netstack::Ipv4Address::TryParse(a);
    if (!ip) continue;  // an IPv6 resolver: this cluster is IPv4
    netstack::DnsUpstream u;
    u.address = *ip;
    u.from_host = std::none_of(reachable.begin(), reachable.end(),
                               [&](const netstack::Ipv4Cidr& c) { return c.Contains(*ip); });
    out.push_back(u);
  }
  return out;
}

namespace {

// Creates each of `objects` that is missing; one that exists is kept as it
// is (a user may have edited it). A create of an existing object can fail
// for another reason before AlreadyExists: a Service with a fixed clusterIP
// gets Invalid ("provided IP is already allocated", as kube-apiserver
// answers), so a failure is reported only when the object is not there.
void EnsureObjects(Client& client, const std::vector<Json>& objects, const std::string& manager,
                   const std::string& what) {
  WriteOptions wo;
  wo.field_manager = manager;
  for (const Json& obj : objects) {
    const std::string kind = obj.at("kind").get<std::string>();
    const ResourceInfo* r = FindResourceByKind(obj.at("apiVersion").get<std::string>(), kind);
    const std::string ns = obj["metadata"].value("namespace", "");
    const std::string name = obj["metadata"]["name"];
    const std::string shown = kind + " " + (ns.empty() ? name : ns + "/" + name);
    try {
      client.Create(*r, ns, obj, wo);
      log::Info("{}: created {}", what, shown);
    } catch (const Error& e) {
      if (e.code() == Code::kAlreadyExists) continue;
      try {
        client.Get(*r, ns, name);
        continue;
      } catch (const Error&) {
      }
      log::Error("{}: cannot create {}: {}", what, shown, e.what());
    }
  }
}

}  // namespace

void EnsureClusterDns(Client& client, const controllers::ClusterDnsSettings& settings) {
  EnsureObjects(client, controllers::ClusterDnsObjects(settings), "kin-cluster-dns",
                "cluster dns");
}

void EnsureIngress(Client& client, const controllers::IngressSettings& settings) {
  EnsureObjects(client, controllers::IngressObjects(settings), "kin-ingress", "ingress");
}

NetworkEndpoint ApiNetworkEndpoint(const ClusterConfig& config) {
  netstack::ClusterNetwork net = NetworkOf(config);
  NetworkEndpoint ep;
  ep.netns = netstack::NetworkNetnsName(net);
  ep.ip = netstack::NetworkGateway(net).ToString();
  return ep;
}

void EnsureClusterNetwork(const ClusterConfig& config) {
  netstack::ClusterNetwork net = NetworkOf(config);
  std::string network_ns = netstack::NetworkNetnsName(net);
  auto t0 = std::chrono::steady_clock::now();
  if (fs::exists("/run/netns/" + network_ns)) {
    log::Info("cluster {}: keeping the network that is there ({})", config.name, network_ns);
    // One made before LoadBalancer Services gets their range; one whose
    // host-access link is gone gets it again.
    netstack::EnsureLoadBalancerRange(net);
    netstack::EnsureHostAccess(net);
  } else {
    netstack::CheckHostRoutes(net);  // before anything is made
    netstack::ApplyPlan(netstack::PlanTopology(net));
  }
  // Replaced in one transaction per node, so a restart applies it again
  // harmlessly (and a cluster made before egress SNAT gets it).
  netstack::EgressMasquerade egress = EgressOf(config);
  for (const auto& n : config.nodes) netstack::ApplyEgressMasquerade(NodeNetns(config, n), egress);
  log::Info(
      "cluster {}: network of {} nodes ready in {} ms", config.name, net.nodes.size(),
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count());
}

// The node agent as one of a node's components.
class AgentComponent : public controllers::Controller {
 public:
  AgentComponent(Client& client, NodeAgentOptions opts)
      : agent_(std::make_unique<NodeAgent>(client, std::move(opts))) {}
  std::string name() const override { return "node-agent"; }
  void Start() override { agent_->Start(); }
  void Stop() override { agent_->Stop(); }
  NodeAgent* agent() const { return agent_.get(); }

 private:
  std::unique_ptr<NodeAgent> agent_;
};

struct ClusterRuntime::Parts {
  std::unique_ptr<apiserver::LocalClient> client;
  std::unique_ptr<ImageStore> images;
  std::unique_ptr<ImagePuller> puller;  // pulls into `images` for every node
  std::mutex mu;                        // guards nodes and retired
  struct NodeRun {
    NodeAgent* agent = nullptr;  // null while the node is stopped
    std::vector<std::unique_ptr<controllers::Controller>> components;  // the agent first
  };
  std::map<std::string, NodeRun> nodes;
  // Components of stopped nodes are kept until the end: a stream that
  // looked the agent up may still hold it.
  std::vector<std::unique_ptr<controllers::Controller>> retired;
  std::unique_ptr<apiserver::PodIo> pod_io;
  std::unique_ptr<netstack::ExternalServer> external;  // cluster-wide
};

// `kin node stop|start` for the API server.
class ClusterRuntime::Control : public apiserver::NodeControl {
 public:
  explicit Control(ClusterRuntime& runtime) : runtime_(runtime) {}
  void StopNode(const std::string& node) override { runtime_.StopNode(node); }
  void StartNode(const std::string& node) override { runtime_.StartNode(node); }

 private:
  ClusterRuntime& runtime_;
};

ClusterRuntime::ClusterRuntime(apiserver::ApiServer& api, ClusterRuntimeOptions opts)
    : api_(api), opts_(std::move(opts)) {}

ClusterRuntime::~ClusterRuntime() { Stop(); }

void ClusterRuntime::Start() {
  netstack::ClusterNetwork net = NetworkOf(opts_.config);
  // kin serve ensured the network before its API started; another caller
  // gets it here.
  if (!fs::exists("/run/netns/" + netstack::NetworkNetnsName(net))) {
    EnsureClusterNetwork(opts_.config);
  }
  // Pods' service account tokens, signed by the API's key and bound to
  // the pod (apiserver/authentication.h).
  if (const apiserver::Authentication* auth = api_.authentication()) {
    opts_.cluster_ca_file = api_.cluster_ca_file();
    opts_.service_account_token = [auth](const Json& pod) { return auth->PodToken(pod); };
    opts_.request_token = [auth](const std::string& ns, const std::string& name,
                                 const Json& request) {
      return auth->CreateToken(ns, name, request);
    };
  }
  parts_ = std::make_unique<Parts>();
  // The cluster-wide parts: the external server "on the internet". A
  // network made before the internet namespace existed has none.
  if (net.external.enabled) {
    const std::string ext = netstack::ExternalNetnsName(net);
    if (fs::exists("/run/netns/" + ext)) {
      netstack::ExternalServerOptions eo;
      eo.netns = ext;
      eo.address = netstack::ExternalServerIp(net).ToString();
      parts_->external = std::make_unique<netstack::ExternalServer>(eo);
      parts_->external->Start();
    } else {
      log::Warn(
          "cluster {}: no internet namespace {} (the network predates it): no external server",
          opts_.config.name, ext);
    }
  }
  parts_->client = std::make_unique<apiserver::LocalClient>(api_.registry(), "kin-node");
  parts_->images = std::make_unique<ImageStore>(StoreOptions(opts_));
  RegistryOptions ro;
  ro.mirrors = opts_.config.registry_mirrors;
  ro.insecure = {opts_.config.registry_insecure.begin(), opts_.config.registry_insecure.end()};
  parts_->puller = std::make_unique<ImagePuller>(*parts_->images, ro, parts_->images->BlobDir());
  for (const auto& n : opts_.config.nodes) {
    // What delete needs of the node, kept beside its pods: delete finds
    // every node that has state, whatever the configuration says.
    fs::create_directories(NodeDir(opts_.state_dir, n.name));
    WriteFileAtomic(NodeDir(opts_.state_dir, n.name) + "/node.json", n.ToJson().dump(), 0644,
                    false);
    parts_->nodes[n.name];
    // A node stopped with `kin node stop` stays down across restarts.
    if (fs::exists(StoppedMarker(opts_.state_dir, n.name))) {
      log::Info("node {}: stopped (kin node start {} brings it back)", n.name, n.name);
      continue;
    }
    StartComponents(n);
  }
  Parts* parts = parts_.get();
  parts_->pod_io = MakePodIoBridge(*parts_->client, [parts](const std::string& node) {
    std::lock_guard<std::mutex> l(parts->mu);
    auto it = parts->nodes.find(node);
    return it == parts->nodes.end() ? static_cast<NodeAgent*>(nullptr) : it->second.agent;
  });
  api_.SetPodIo(parts_->pod_io.get());
  control_ = std::make_unique<Control>(*this);
  api_.SetNodeControl(control_.get());
}

void ClusterRuntime::Stop() {
  if (!parts_) return;
  api_.SetNodeControl(nullptr);
  api_.SetPodIo(nullptr);
  std::lock_guard<std::mutex> op(node_op_mu_);
  for (auto& [name, run] : parts_->nodes) {
    for (auto it = run.components.rbegin(); it != run.components.rend(); ++it) (*it)->Stop();
  }
  if (parts_->external) parts_->external->Stop();
  parts_.reset();
}

void ClusterRuntime::StartComponents(const NodeConfig& n) {
  Parts::NodeRun run;
  NodeAgentOptions ao = AgentOptions(opts_, n, parts_->images.get());
  ao.puller = parts_->puller.get();
  if (opts_.informers) ao.pod_informer = &opts_.informers->For(PodsResource());
  auto agent = std::make_unique<AgentComponent>(*parts_->client, std::move(ao));
  run.agent = agent->agent();
  run.components.push_back(std::move(agent));
  NodeContext ctx{opts_.config, n, NodeNetns(opts_.config, n), *parts_->client};
  for (const auto& make : opts_.node_components) run.components.push_back(make(ctx));
  for (auto& c : run.components) c->Start();
  std::lock_guard<std::mutex> l(parts_->mu);
  parts_->nodes[n.name] = std::move(run);
}

const NodeConfig& ClusterRuntime::NodeByName(const std::string& node) const {
  for (const auto& n : opts_.config.nodes) {
    if (n.name == node) return n;
  }
  throw Error::NotFound("nodes \"" + node + "\" not found in cluster \"" + opts_.config.name +
                        "\"");
}

void ClusterRuntime::StopNode(const std::string& node) {
  const NodeConfig& n = NodeByName(node);
  std::lock_guard<std::mutex> op(node_op_mu_);
  std::vector<std::unique_ptr<controllers::Controller>> components;
  {
    std::lock_guard<std::mutex> l(parts_->mu);
    Parts::NodeRun& run = parts_->nodes[node];
    if (!run.agent) throw Error::Conflict("node \"" + node + "\" is stopped already");
    components = std::move(run.components);
    run = Parts::NodeRun();
  }
  // As a machine that crashed: its components stop (no lease, no status),
  // its containers die, its link goes down. Marked first, so that a
  // restart of kin serve in between keeps it down.
  WriteFileAtomic(StoppedMarker(opts_.state_dir, node), "", 0644, false);
  for (auto it = components.rbegin(); it != components.rend(); ++it) (*it)->Stop();
  {
    std::lock_guard<std::mutex> l(parts_->mu);
    for (auto& c : components) parts_->retired.push_back(std::move(c));
  }
  NodeAgent::TearDownPods(AgentOptions(opts_, n, parts_->images.get()));
  netstack::NetlinkSocket::OpenIn(Netns::Open(NodeNetns(opts_.config, n)))
      .SetUp(netstack::kNodeUplink, false);
  log::Info("node {}: stopped", node);
}

void ClusterRuntime::StartNode(const std::string& node) {
  const NodeConfig& n = NodeByName(node);
  std::lock_guard<std::mutex> op(node_op_mu_);
  {
    std::lock_guard<std::mutex> l(parts_->mu);
    if (parts_->nodes[node].agent)
      throw Error::Conflict("node \"" + node + "\" is running already");
  }
  // The link up again, with the routes the kernel dropped when it went
  // down (routes are replaced, so this is idempotent).
  netstack::ClusterNetwork net = NetworkOf(opts_.config);
  netstack::NetworkPlan full = netstack::PlanTopology(net);
  netstack::NetworkPlan uplink;
  for (const auto& ns : full.namespaces) {
    if (ns.name != NodeNetns(opts_.config, n)) continue;
    netstack::NetnsPlan p;
    p.name = ns.name;
    p.up = {netstack::kNodeUplink};
    p.routes = ns.routes;
    uplink.namespaces.push_back(p);
  }
  netstack::ApplyPlan(uplink);
  // As a kubelet after a reboot: a new agent starts the node's pods afresh.
  StartComponents(n);
  fs::remove(StoppedMarker(opts_.state_dir, node));
  log::Info("node {}: started", node);
}

void TearDownCluster(const ClusterConfig& config, const std::string& state_dir) {
  ClusterRuntimeOptions o;
  o.config = config;
  o.state_dir = state_dir;
  std::vector<std::string> failures;
  // Every node with state on disk, also one the configuration does not list
  // (its node.json says what it was).
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(state_dir + "/nodes", ec)) {
    std::string name = e.path().filename().string();
    bool known = std::any_of(config.nodes.begin(), config.nodes.end(),
                             [&](const NodeConfig& n) { return n.name == name; });
    if (known) continue;
    try {
      auto text = ReadFileIfExists(e.path().string() + "/node.json");
      if (!text) throw Error::NotFound("no node.json");
      o.config.nodes.push_back(NodeConfig::FromJson(Json::parse(*text)));
    } catch (const std::exception& ex) {
      failures.push_back("node " + name + " (not in the configuration; " + ex.what() +
                         "): its pods were not removed");
    }
  }
  // Nodes are independent: tear their pods down side by side.
  std::mutex failures_mu;
  std::vector<std::thread> threads;
  for (const auto& n : o.config.nodes) {
    threads.emplace_back([&o, &failures, &failures_mu, n] {
      try {
        NodeAgent::TearDownPods(AgentOptions(o, n, nullptr));
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> l(failures_mu);
        failures.push_back("pods of node " + n.name + ": " + e.what());
      }
    });
  }
  for (auto& t : threads) t.join();
  try {
    netstack::RemovePlan(netstack::PlanTopology(NetworkOf(o.config)));
  } catch (const std::exception& e) {
    failures.push_back(std::string("the network: ") + e.what());
  }
  if (!failures.empty()) {
    std::string list;
    for (const auto& f : failures) list += (list.empty() ? "" : "; ") + f;
    throw Error::Internal(list);
  }
}

}  // namespace kin::cmd
