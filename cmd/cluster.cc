#include "cmd/cluster.h"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "base/error.h"
#include "base/file.h"
#include "base/http_client.h"
#include "base/process.h"
#include "base/tls.h"
#include "cmd/cluster_config.h"
#include "cmd/cluster_runtime.h"
#include "cmd/kubeconfig.h"
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

tls::PkiOptions ClusterPkiOptions() {
  tls::PkiOptions po;
  po.server_ips = {"10.96.0.1"};  // the kubernetes Service, as pods reach the API
  po.server_dns_names = tls::KubernetesServiceDnsNames();
  return po;
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
  ClusterConfig config = BuildClusterConfig(opts.name, opts.nodes, config_text, opts.config_file);
  progress << "Creating cluster \"" << opts.name << "\" ...\n";
  bool ok = false;
  bool nodes_started = false;
  ChildProcess serve;
  std::string kubeconfig_path = KubeconfigPath(opts.kubeconfig);
  bool kubeconfig_written = false;
  auto cleanup = [&] {
    if (ok || opts.retain) return;
    if (serve.running()) serve.Stop(std::chrono::seconds(10));
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
      pki = tls::EnsurePki(dir + "/pki", ClusterPkiOptions());
      s.Done();
    }
    {
      Step s(progress, "Writing the configuration (" + std::to_string(config.nodes.size()) +
                           (config.nodes.size() == 1 ? " node, " : " nodes, ") + "routing " +
                           config.routing + ")");
      WriteFileAtomic(dir + "/cluster.json", config.ToJson().dump(2), 0644, false);
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
      for (const auto& [flag, value] :
           {std::pair<std::string, std::string>{"--crash-backoff", opts.crash_backoff},
            {"--container-log-max-size", opts.container_log_max_size},
            {"--container-log-max-files", opts.container_log_max_files}}) {
        if (value.empty()) continue;
        so.argv.push_back(flag);
        so.argv.push_back(value);
      }
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
  const std::string dir = state_root + "/" + name;
  progress << "Deleting cluster \"" << name << "\" ...\n";
  int pid = std::atoi(ReadText(dir + "/serve.pid").c_str());
  if (IsOurServe(pid, dir)) {
    Step s(progress, "Stopping the control plane");
    ::kill(pid, SIGTERM);
    if (!WaitForExit(pid, std::chrono::seconds(20))) {
      ::kill(pid, SIGKILL);
      WaitForExit(pid, std::chrono::seconds(5));
    }
    s.Done();
  }
  if (auto text = ReadFileIfExists(dir + "/cluster.json")) {
    Step s(progress, "Removing the pods, nodes and network");
    TearDownCluster(ClusterConfig::FromJson(Json::parse(*text)), dir);
    s.Done();
  }
  {
    Step s(progress, "Removing the kubeconfig entries and the state");
    RemoveFromKubeconfig(KubeconfigPath(kubeconfig), name);
    std::error_code ec;
    fs::remove_all(dir, ec);
    if (ec) throw ErrnoError(ec.value(), "remove " + dir);
    s.Done();
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

std::string ClusterKubeconfig(const std::string& name, const std::string& state_root) {
  CheckClusterName(name);
  const std::string dir = state_root + "/" + name;
  if (!fs::exists(dir + "/pki/ca.crt")) {
    throw Error::NotFound("cluster \"" + name + "\" not found (no state in " + dir + ")");
  }
  tls::Pki pki = tls::EnsurePki(dir + "/pki", ClusterPkiOptions());
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
