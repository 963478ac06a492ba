#include "cmd/cluster.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <sstream>

#include "base/error.h"
#include "base/file.h"
#include "base/http_client.h"
#include "base/mounts.h"
#include "base/process.h"
#include "base/tls.h"
#include "client/quantity.h"
#include "cmd/cluster_config.h"
#include "cmd/cluster_runtime.h"
#include "cmd/kubeconfig.h"
#include "netstack/host_access.h"
#include "netstack/ipam.h"
#include "runtime/cgroup.h"
#include "runtime/image_store.h"

namespace kin::cmd {

namespace fs = std::filesystem;

namespace {

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string SelfBinary() {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw Error::Internal("cannot find the kin binary: " + ec.message());
  return p.string();
}

// Is `pid` the `kin serve` of this state directory? Only then may we signal it.
bool IsOurServe(int pid, const std::string& state_dir) {
  if (pid <= 0) return false;
  std::string cmd = ReadText("/proc/" + std::to_string(pid) + "/cmdline");
  std::replace(cmd.begin(), cmd.end(), '\0', ' ');
  return cmd.find(" serve ") != std::string::npos && cmd.find(state_dir) != std::string::npos;
}

// Progress lines as kind prints them: " ✓ step" or " ✗ step".
class Step {
 public:
  Step(std::ostream& out, std::string what) : out_(out), what_(std::move(what)) {}
  void Done() {
    out_ << " \u2713 " << what_ << "\n";
    out_.flush();
    done_ = true;
  }
  ~Step() {
    if (!done_) out_ << " \u2717 " << what_ << "\n";
  }

 private:
  std::ostream& out_;
  std::string what_;
  bool done_ = false;
};

// The serving certificate names the kubernetes Service's address (the
// first of the service subnet) and the API's address inside the cluster's
// network (the underlay's .1), as pods and nodes reach the API.
tls::PkiOptions ClusterPkiOptions(const std::optional<ClusterConfig>& config) {
  tls::PkiOptions po;
  const ClusterConfig c = config ? *config : ClusterConfig();
  po.server_ips = {netstack::Ipv4Cidr::ParseNetwork(c.service_subnet).Nth(1).ToString(),
                   netstack::Ipv4Cidr::ParseNetwork(c.underlay).Nth(1).ToString()};
  po.server_dns_names = tls::KubernetesServiceDnsNames();
  return po;
}

// The configuration a cluster's state directory has saved, if any.
std::optional<ClusterConfig> SavedConfig(const std::string& dir) {
  auto text = ReadFileIfExists(dir + "/cluster.json");
  if (!text) return std::nullopt;
  try {
    return ClusterConfig::FromJson(Json::parse(*text));
  } catch (const Json::exception& e) {
    throw Error::Invalid(dir + "/cluster.json: " + e.what());
  } catch (const Error& e) {
    throw Error::Invalid(dir + "/cluster.json: " + e.message());
  }
}

// Every kin on the machine choosing host ranges takes this lock, from the
// choice until its kin serve has built the network (and so the routes that
// make the choice visible to the next one).
constexpr const char* kHostRangesLock = "/run/kin/host-access.lock";

UniqueFd LockHostRanges() {
  std::error_code ec;
  fs::create_directories(fs::path(kHostRangesLock).parent_path(), ec);
  UniqueFd fd(::open(kHostRangesLock, O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd) throw ErrnoError(errno, std::string("open ") + kHostRangesLock);
  while (::flock(fd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) throw ErrnoError(errno, std::string("lock ") + kHostRangesLock);
  }
  return fd;
}

// What a new cluster's host ranges must stay clear of: the host's routes
// (default routes aside) and the host ranges of the other clusters saved
// under `state_root` (a stopped one has no routes until it starts again,
// but keeps its ranges).
std::vector<TakenRange> HostTakenRanges(const std::string& state_root, const std::string& self) {
  std::vector<TakenRange> out;
  for (const netstack::RouteInfo& r : netstack::ListHostRoutes()) {
    if (r.dst.prefix_len() == 0) continue;
    out.push_back({r.dst.ToString(), "the host's route " + r.ToString()});
  }
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(state_root, ec)) {
    const std::string name = e.path().filename().string();
    if (name == self) continue;
    std::optional<ClusterConfig> other;
    try {
      other = SavedConfig(e.path().string());
    } catch (const Error&) {
      continue;  // not a cluster kin can start: it routes nothing
    }
    if (!other || !other->host_access) continue;
    out.push_back({other->underlay, "cluster " + name + "'s networking.underlay"});
    out.push_back({other->load_balancer_subnet, "cluster " + name + "'s networking.loadBalancerSubnet"});
  }
  return out;
}

// What in `opts` contradicts the saved configuration of a stopped cluster,
// one entry per flag, e.g. "--nodes 1 (it has 3 nodes)".
std::vector<std::string> Contradictions(const ClusterCreateOptions& opts,
                                        const ClusterConfig& saved,
                                        const std::string& config_text) {
  std::vector<std::string> out;
  if (!opts.config_file.empty()) {
    ClusterConfig wanted =
        BuildClusterConfig(opts.name, opts.nodes, config_text, opts.config_file, opts.flags);
    // Host ranges the file left out were chosen when the cluster was made:
    // the saved ones are what the file meant.
    const ClusterConfig defaults;
    if (wanted.host_access && saved.host_access && wanted.underlay == defaults.underlay &&
        wanted.nodes.size() == saved.nodes.size()) {
      wanted.underlay = saved.underlay;
      for (size_t i = 0; i < wanted.nodes.size(); ++i) wanted.nodes[i].ip = saved.nodes[i].ip;
    }
    if (wanted.host_access && saved.host_access &&
        wanted.load_balancer_subnet == defaults.load_balancer_subnet) {
      wanted.load_balancer_subnet = saved.load_balancer_subnet;
    }
    if (!(wanted == saved)) {
      std::string parts;
      auto differs = [&](bool d, const char* what) {
        if (!d) return;
        parts += parts.empty() ? "" : ", ";
        parts += what;
      };
      differs(wanted.nodes != saved.nodes, "nodes");
      differs(
          wanted.pod_subnet != saved.pod_subnet || wanted.service_subnet != saved.service_subnet ||
              wanted.underlay != saved.underlay ||
              wanted.node_cidr_mask_size != saved.node_cidr_mask_size ||
              wanted.routing != saved.routing || wanted.external_subnet != saved.external_subnet ||
              wanted.proxy_mode != saved.proxy_mode ||
              wanted.load_balancer_subnet != saved.load_balancer_subnet ||
              wanted.host_access != saved.host_access,
          "networking");
      differs(wanted.image_host_mappings != saved.image_host_mappings, "images");
      differs(wanted.registry_mirrors != saved.registry_mirrors ||
                  wanted.registry_insecure != saved.registry_insecure,
              "registries");
      differs(wanted.crash_backoff != saved.crash_backoff ||
                  wanted.container_log_max_size != saved.container_log_max_size ||
                  wanted.container_log_max_files != saved.container_log_max_files,
              "kubelet");
      differs(wanted.node_monitor_grace_period != saved.node_monitor_grace_period ||
                  wanted.default_toleration_seconds != saved.default_toleration_seconds,
              "nodeLifecycle");
      differs(wanted.dns_domain != saved.dns_domain || wanted.dns_replicas != saved.dns_replicas ||
                  wanted.dns_upstreams != saved.dns_upstreams ||
                  wanted.dns_forward_timeout != saved.dns_forward_timeout,
              "dns");
      out.push_back("--config " + opts.config_file + " (its " + parts + " differ)");
    }
    return out;
  }
  if (opts.nodes && static_cast<size_t>(*opts.nodes) != saved.nodes.size()) {
    out.push_back("--nodes " + std::to_string(*opts.nodes) + " (it has " +
                  std::to_string(saved.nodes.size()) + " nodes)");
  }
  const ClusterFlags& f = opts.flags;
  if (f.crash_backoff &&
      ParseDurationMs(*f.crash_backoff, "--crash-backoff") != saved.CrashBackoff()) {
    out.push_back("--crash-backoff " + *f.crash_backoff + " (it has " + saved.crash_backoff + ")");
  }
  if (f.container_log_max_size &&
      ParseQuantityValue(*f.container_log_max_size) != saved.ContainerLogMaxBytes()) {
    out.push_back("--container-log-max-size " + *f.container_log_max_size + " (it has " +
                  saved.container_log_max_size + ")");
  }
  if (f.container_log_max_files && *f.container_log_max_files != saved.container_log_max_files) {
    out.push_back("--container-log-max-files " + std::to_string(*f.container_log_max_files) +
                  " (it has " + std::to_string(saved.container_log_max_files) + ")");
  }
  if (f.host_access && *f.host_access != saved.host_access) {
    out.push_back(std::string("--host-access=") + (*f.host_access ? "true" : "false") +
                  " (it has host access " + (saved.host_access ? "on" : "off") + ")");
  }
  return out;
}

// Waits for a process that is not our child to exit (pidfd: no polling).
bool WaitForExit(int pid, std::chrono::milliseconds timeout) {
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return !ProcessAlive(pid);
  pollfd p{fd, POLLIN, 0};
  int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
  ::close(fd);
  return r > 0;
}

http::ClientOptions TlsClientOptions(const tls::Pki& pki, int port) {
  http::ClientOptions o;
  o.base_url = "https://127.0.0.1:" + std::to_string(port);
  o.ca_file = pki.ca.cert_file;
  o.cert_file = pki.admin.cert_file;
  o.key_file = pki.admin.key_file;
  o.timeout_ms = 2000;
  o.connect_timeout_ms = 1000;
  return o;
}

}  // namespace

void CheckClusterName(const std::string& name) {
  static const std::regex kLabel("[a-z0-9]([-a-z0-9]*[a-z0-9])?");
  if (name.empty() || name.size() > static_cast<size_t>(kMaxClusterNameLength) ||
      !std::regex_match(name, kLabel)) {
    throw Error::BadRequest("invalid cluster name \"" + name + "\": must be 1-" +
                            std::to_string(kMaxClusterNameLength) +
                            " lowercase letters, digits or '-', starting and "
                            "ending with a letter or digit");
  }
}

void CreateCluster(const ClusterCreateOptions& opts, std::ostream& progress) {
  CheckClusterName(opts.name);
  const std::string dir = opts.state_root + "/" + opts.name;
  if (fs::exists(dir + "/serve.pid") &&
      IsOurServe(std::atoi(ReadText(dir + "/serve.pid").c_str()), dir)) {
    throw Error::AlreadyExists("cluster \"" + opts.name + "\" already exists (state in " + dir +
                               "); delete it first with: kin cluster delete --name " + opts.name);
  }
  // The whole configuration is checked before anything is made.
  std::string config_text;
  if (!opts.config_file.empty()) {
    auto text = ReadFileIfExists(opts.config_file);
    if (!text) throw Error::NotFound("config file " + opts.config_file + " not found");
    config_text = *text;
  }
  // A stopped cluster starts again as it was saved; its state is never
  // rewritten or removed here.
  const std::optional<ClusterConfig> saved = SavedConfig(dir);
  const bool restart = saved.has_value();
  if (!restart && opts.start_only) {
    throw Error::NotFound("cluster \"" + opts.name + "\" not found (no state in " + dir +
                          "); create it with: kin cluster create --name " + opts.name);
  }
  // Host ranges are chosen and made real under one machine-wide lock,
  // released once kin serve has built the network.
  UniqueFd host_ranges_lock = LockHostRanges();
  ClusterConfig config;
  if (restart) {
    std::vector<std::string> contradictions = Contradictions(opts, *saved, config_text);
    if (!contradictions.empty()) {
      std::string list;
      for (const auto& c : contradictions) list += (list.empty() ? "" : ", ") + c;
      throw Error::Conflict(
          "cluster \"" + opts.name + "\" exists and is stopped (state in " + dir +
          "); it starts again as it was saved, and " +
          (contradictions.size() == 1 ? "this flag contradicts" : "these flags contradict") +
          " that: " + list + ". Start it as it was with: kin cluster start --name " + opts.name +
          "; or delete it first with: kin cluster delete --name " + opts.name);
    }
    config = *saved;
  } else {
    config = BuildClusterConfig(opts.name, opts.nodes, config_text, opts.config_file, opts.flags,
                                HostTakenRanges(opts.state_root, opts.name));
  }
  progress << (restart ? "Starting" : "Creating") << " cluster \"" << opts.name << "\" ...\n";
  bool ok = false;
  bool nodes_started = false;
  ChildProcess serve;
  std::string kubeconfig_path = KubeconfigPath(opts.kubeconfig);
  bool kubeconfig_written = false;
  auto cleanup = [&] {
    if (ok) return;
    if (serve.running()) serve.Stop(std::chrono::seconds(10));
    // A cluster that existed keeps its state and its pods; only a new one
    // is removed again.
    if (restart || opts.retain) return;
    if (nodes_started) {
      try {
        TearDownCluster(config, dir);
      } catch (const std::exception& e) {
        progress << "cleanup: " << e.what() << "\n";
      }
    }
    if (kubeconfig_written) RemoveFromKubeconfig(kubeconfig_path, opts.name);
    std::error_code ec;
    fs::remove_all(dir, ec);
  };
  try {
    tls::Pki pki;
    {
      Step s(progress, "Preparing the state directory and certificates");
      fs::create_directories(dir);
      fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace);
      pki = tls::EnsurePki(dir + "/pki", ClusterPkiOptions(config));
      s.Done();
    }
    if (!restart) {
      Step s(progress, "Writing the configuration (" + std::to_string(config.nodes.size()) +
                           (config.nodes.size() == 1 ? " node, " : " nodes, ") + "routing " +
                           config.routing +
                           (config.host_access ? ", host access to " + config.underlay + " and " +
                                                     config.load_balancer_subnet
                                               : ", no host access") +
                           ")");
      WriteFileAtomic(dir + "/cluster.json", config.ToJson().dump(2), 0644, true);
      s.Done();
    }
    int port = 0;
    {
      Step s(progress, "Starting the control plane (kin serve)");
      SpawnOptions so;
      std::string bin = opts.kin_binary.empty() ? SelfBinary() : opts.kin_binary;
      so.argv = {bin,
                 "serve",
                 "--state-dir",
                 dir,
                 "--port",
                 std::to_string(opts.port),
                 "--port-file",
                 dir + "/serve.port",
                 "--pki-dir",
                 dir + "/pki",
                 "--cluster-config",
                 dir + "/cluster.json"};
      so.stdout_file = dir + "/serve.log";
      so.stderr_to_stdout = true;
      so.stdin_mode = SpawnOptions::Stdio::kNull;
      so.new_session = true;  // outlives this CLI and its terminal
      fs::remove(dir + "/serve.port");
      serve = ChildProcess::Spawn(so);
      nodes_started = true;  // from here on, a failure tears the nodes down
      {
        std::ofstream pid(dir + "/serve.pid");
        pid << serve.pid();
      }
      auto deadline = std::chrono::steady_clock::now() + opts.wait;
      while (ReadText(dir + "/serve.port").empty()) {
        if (auto st = serve.WaitFor(std::chrono::milliseconds(5))) {
          throw Error::Unavailable("kin serve exited (" + st->ToString() + "); its log:\n" +
                                   ReadText(dir + "/serve.log"));
        }
        if (std::chrono::steady_clock::now() > deadline) {
          throw Error::Timeout("kin serve did not start within " +
                               std::to_string(opts.wait.count()) + " s");
        }
      }
      port = std::atoi(ReadText(dir + "/serve.port").c_str());
      host_ranges_lock.reset();  // the network (and its host routes) exists now
      http::HttpClient c(TlsClientOptions(pki, port));
      while (true) {
        try {
          if (c.Get("/readyz").status == 200) break;
        } catch (const Error&) {
        }
        if (std::chrono::steady_clock::now() > deadline) {
          throw Error::Timeout("the API server did not become ready within " +
                               std::to_string(opts.wait.count()) + " s");
        }
        serve.WaitFor(std::chrono::milliseconds(5));
      }
      s.Done();
      Step n(progress, "Starting " + std::to_string(config.nodes.size()) +
                           (config.nodes.size() == 1 ? " node" : " nodes") +
                           " (network namespaces, bridges, routes, node agents)");
      while (true) {
        size_t ready = 0;
        try {
          auto r = c.Get("/api/v1/nodes");
          if (r.status == 200) {
            for (const auto& node : Json::parse(r.body).value("items", Json::array())) {
              for (const auto& cond : node["status"].value("conditions", Json::array())) {
                if (cond.value("type", "") == "Ready" && cond.value("status", "") == "True")
                  ready++;
              }
            }
          }
        } catch (const std::exception&) {
        }
        if (ready >= config.nodes.size()) break;
        if (auto st = serve.WaitFor(std::chrono::milliseconds(5))) {
          throw Error::Unavailable("kin serve exited (" + st->ToString() + "); its log:\n" +
                                   ReadText(dir + "/serve.log"));
        }
        if (std::chrono::steady_clock::now() > deadline) {
          throw Error::Timeout("the nodes did not become Ready within " +
                               std::to_string(opts.wait.count()) + " s; see " + dir + "/serve.log");
        }
      }
      n.Done();
    }
    {
      Step s(progress, "Writing the kubeconfig (context kin-" + opts.name + ")");
      KubeconfigEntry e;
      e.cluster_name = opts.name;
      e.server = "https://127.0.0.1:" + std::to_string(port);
      e.ca_pem = pki.ca.pem.cert_pem;
      e.client_cert_pem = pki.admin.pem.cert_pem;
      e.client_key_pem = pki.admin.pem.key_pem;
      MergeKubeconfig(kubeconfig_path, e);
      kubeconfig_written = true;
      s.Done();
    }
    ok = true;
    serve.Release();  // it runs on after we exit
    progress << "Set kubectl context to \"kin-" << opts.name << "\"\n"
             << "You can now use your cluster with:\n\nkubectl cluster-info --context kin-"
             << opts.name << "\n";
  } catch (...) {
    cleanup();
    throw;
  }
}

void DeleteCluster(const std::string& name, const std::string& state_root,
                   const std::string& kubeconfig, std::ostream& progress) {
  CheckClusterName(name);
  const std::string dir = fs::absolute(state_root + "/" + name).lexically_normal().string();
  progress << "Deleting cluster \"" << name << "\" ...\n";
  // Every step is tried whatever failed before it; what could not be
  // removed is reported at the end, all of it.
  std::vector<std::string> failures;
  auto attempt = [&](const std::string& what, const std::function<void()>& step) {
    Step s(progress, what);
    try {
      step();
      s.Done();
    } catch (const std::exception& e) {
      failures.push_back(e.what());
    }
  };
  int pid = std::atoi(ReadText(dir + "/serve.pid").c_str());
  if (IsOurServe(pid, dir)) {
    attempt("Stopping the control plane", [&] {
      ::kill(pid, SIGTERM);
      if (!WaitForExit(pid, std::chrono::seconds(20))) {
        ::kill(pid, SIGKILL);
        if (!WaitForExit(pid, std::chrono::seconds(5))) {
          throw Error::Internal("kin serve (pid " + std::to_string(pid) + ") did not exit");
        }
      }
    });
  }
  std::optional<ClusterConfig> config;
  try {
    config = SavedConfig(dir);
  } catch (const std::exception& e) {
    failures.push_back(std::string(e.what()) + " (its pods, nodes and network were not removed)");
  }
  if (config) {
    attempt("Removing the pods, nodes and network", [&] { TearDownCluster(*config, dir); });
  }
  // Cgroups named after the cluster (kin-NAME-<pod>-<container>) that no
  // pod's directory led to: a pod whose state was lost, a launch its shim
  // server died in. What is inside is killed; each one that stays is named.
  // A longer prefix is another cluster's when its network namespace
  // (kin-NAME-...-net) exists: cluster names may contain '-'.
  {
    Step s(progress, "Removing the cluster's cgroups");
    const std::string prefix = "kin-" + name + "-";
    std::vector<std::string> others;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/run/netns", ec)) {
      const std::string n = e.path().filename().string();
      if (n.size() > prefix.size() + 4 && n.rfind(prefix, 0) == 0 &&
          n.compare(n.size() - 4, 4, "-net") == 0) {
        others.push_back(n.substr(0, n.size() - 3));
      }
    }
    const size_t before = failures.size();
    for (const std::string& cg : CgroupsWithPrefix(prefix)) {
      if (std::any_of(others.begin(), others.end(),
                      [&](const std::string& o) { return cg.rfind(o, 0) == 0; })) {
        continue;
      }
      try {
        if (auto c = Cgroup::Open(cg)) c->Remove();
      } catch (const std::exception& e) {
        failures.push_back("cgroup " + cg + ": " + e.what());
      }
    }
    if (failures.size() == before) s.Done();
  }
  attempt("Removing the kubeconfig entries",
          [&] { RemoveFromKubeconfig(KubeconfigPath(kubeconfig), name); });
  if (fs::exists(dir)) {
    attempt("Removing the state directory", [&] {
      UnmountAllUnder(dir);
      std::error_code ec;
      fs::remove_all(dir, ec);
      if (ec) throw ErrnoError(ec.value(), "remove " + dir);
    });
  }
  if (!failures.empty()) {
    std::string list;
    for (const auto& f : failures) list += "\n  - " + f;
    throw Error::Internal("cluster \"" + name +
                          "\" was not removed completely; left behind:" + list);
  }
}

std::vector<ClusterInfo> ListClusters(const std::string& state_root) {
  std::vector<ClusterInfo> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(state_root, ec)) {
    if (!e.is_directory()) continue;
    ClusterInfo ci;
    ci.name = e.path().filename().string();
    ci.state_dir = e.path().string();
    ci.pid = std::atoi(ReadText(ci.state_dir + "/serve.pid").c_str());
    ci.port = std::atoi(ReadText(ci.state_dir + "/serve.port").c_str());
    ci.running = IsOurServe(ci.pid, ci.state_dir);
    if (!fs::exists(ci.state_dir + "/pki")) continue;  // not a kin cluster
    out.push_back(ci);
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.name < b.name; });
  return out;
}

namespace {
ImageStoreOptions ClusterImageStore(const std::string& name, const std::string& state_root) {
  CheckClusterName(name);
  const std::string dir = state_root + "/" + name;
  if (!fs::exists(dir + "/cluster.json")) {
    throw Error::NotFound("cluster \"" + name + "\" not found (no state in " + dir + ")");
  }
  ImageStoreOptions o;
  o.dir = dir + "/images";
  o.kin_binary = SelfBinary();
  return o;
}
}  // namespace

std::vector<std::string> LoadImageArchive(const std::string& name, const std::string& state_root,
                                          const std::string& file) {
  ImageStore store(ClusterImageStore(name, state_root));
  return store.LoadArchive(file);
}

void LoadRootfs(const std::string& name, const std::string& state_root, const std::string& image,
                const std::string& source) {
  ImageStore store(ClusterImageStore(name, state_root));
  store.LoadRootfs(image, source);
}

void SetNodeRunning(const std::string& cluster, const std::string& state_root,
                    const std::string& node, bool running) {
  CheckClusterName(cluster);
  const std::string dir = state_root + "/" + cluster;
  if (!fs::exists(dir + "/pki/ca.crt")) {
    throw Error::NotFound("cluster \"" + cluster + "\" not found (no state in " + dir + ")");
  }
  if (!IsOurServe(std::atoi(ReadText(dir + "/serve.pid").c_str()), dir)) {
    throw Error::Unavailable("cluster \"" + cluster +
                             "\" is not running; start it with: kin cluster start --name " +
                             cluster);
  }
  tls::Pki pki = tls::EnsurePki(dir + "/pki", ClusterPkiOptions(SavedConfig(dir)));
  http::ClientOptions o = TlsClientOptions(pki, std::atoi(ReadText(dir + "/serve.port").c_str()));
  o.timeout_ms = 60000;  // stopping a node waits for its containers to die
  http::HttpClient c(o);
  // A node is named as kubectl shows it, or by its role ("worker2").
  std::string name =
      node.rfind("kin-" + cluster + "-", 0) == 0 ? node : "kin-" + cluster + "-" + node;
  auto r = c.Do("POST", "/kin/v1alpha1/nodes/" + name + (running ? "/start" : "/stop"));
  if (r.status == 200) return;
  std::string message = r.body;
  try {
    message = Json::parse(r.body).value("message", r.body);
  } catch (const Json::exception&) {
  }
  throw Error(CodeFromHttpStatus(r.status), message);
}

std::string ClusterKubeconfig(const std::string& name, const std::string& state_root) {
  CheckClusterName(name);
  const std::string dir = state_root + "/" + name;
  if (!fs::exists(dir + "/pki/ca.crt")) {
    throw Error::NotFound("cluster \"" + name + "\" not found (no state in " + dir + ")");
  }
  tls::Pki pki = tls::EnsurePki(dir + "/pki", ClusterPkiOptions(SavedConfig(dir)));
  KubeconfigEntry e;
  e.cluster_name = name;
  e.server =
      "https://127.0.0.1:" + std::to_string(std::atoi(ReadText(dir + "/serve.port").c_str()));
  e.ca_pem = pki.ca.pem.cert_pem;
  e.client_cert_pem = pki.admin.pem.cert_pem;
  e.client_key_pem = pki.admin.pem.key_pem;
  return RenderKubeconfig(e);
}

}  // namespace kin::cmd
