#include "bench/bench_cluster.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "base/file.h"
#include "base/process.h"
#include "bench/bench_util.h"
#include "client/resources.h"
#include "testing/e2e_support.h"

namespace kin::bench {

bool CreateBenchCluster(BenchCluster& c, const std::vector<std::string>& flags) {
  std::vector<std::string> argv = {
      testing::KinBinary(), "cluster", "create",       "--name",    c.name,
      "--state-root",       c.root,    "--kubeconfig", c.kubeconfig};
  argv.insert(argv.end(), flags.begin(), flags.end());
  auto r = RunCommand(argv, std::chrono::seconds(120));
  if (!r.status.success()) {
    std::fprintf(stderr, "create %s failed:\n%s%s", c.name.c_str(), r.out.c_str(), r.err.c_str());
    return false;
  }
  c.state = c.root + "/" + c.name;
  c.api.base_url = "https://127.0.0.1:" + testing::ReadFile(c.state + "/serve.port");
  c.api.ca_file = c.state + "/pki/ca.crt";
  c.api.cert_file = c.state + "/pki/admin.crt";
  c.api.key_file = c.state + "/pki/admin.key";
  c.api.timeout_ms = 30000;
  return true;
}

void DeleteBenchCluster(const BenchCluster& c) {
  RunCommand({testing::KinBinary(), "cluster", "delete", "--name", c.name, "--state-root", c.root,
              "--kubeconfig", c.kubeconfig},
             std::chrono::seconds(300));
}

bool RestartBenchCluster(BenchCluster& c) {
  pid_t pid = std::atoi(ReadFileIfExists(c.state + "/serve.pid").value_or("0").c_str());
  if (pid <= 0 || ::kill(pid, SIGTERM) != 0) {
    std::fprintf(stderr, "restart %s: no kin serve to stop\n", c.name.c_str());
    return false;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (::kill(pid, 0) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      std::fprintf(stderr, "restart %s: kin serve (pid %d) did not stop\n", c.name.c_str(), pid);
      return false;
    }
    usleep(20000);
  }
  auto r = RunCommand({testing::KinBinary(), "cluster", "start", "--name", c.name, "--state-root",
                       c.root, "--kubeconfig", c.kubeconfig},
                      std::chrono::seconds(120));
  if (!r.status.success()) {
    std::fprintf(stderr, "start %s failed:\n%s%s", c.name.c_str(), r.out.c_str(), r.err.c_str());
    return false;
  }
  c.api.base_url = "https://127.0.0.1:" + testing::ReadFile(c.state + "/serve.port");
  return true;
}

bool CreateFiveWorkerCluster(BenchCluster& c, const std::string& config_path) {
  std::string yaml =
      "apiVersion: kin.dev/v1alpha1\nkind: Cluster\nnodes:\n- role: control-plane\n";
  for (int i = 0; i < 5; ++i) yaml += "- role: worker\n  capacity: {pods: \"250\"}\n";
  testing::WriteFile(config_path, yaml);
  return CreateBenchCluster(c, {"--config", config_path});
}

bool IsPodReady(const Json& pod) {
  if (!pod.contains("status") || !pod["status"].is_object()) return false;
  for (const auto& c : pod["status"].value("conditions", Json::array())) {
    if (c.value("type", "") == "Ready" && c.value("status", "") == "True") return true;
  }
  return false;
}

std::string ListVersion(http::HttpClient& api, const std::string& path) {
  Json list = Json::parse(api.Get(path + "?limit=1").body);
  return list["metadata"].value("resourceVersion", "");
}

// A watch, not polling: listing 1,000 pods (2 MB of JSON) every few
// milliseconds would take the CPU the pods are being started with.
std::vector<Json> WaitPodsReady(RestClient& api, const std::string& since, size_t want,
                                std::chrono::seconds timeout, const std::string& ns) {
  auto deadline = Clock::now() + timeout;
  auto debug_start = Clock::now();
  std::map<std::string, Json> ready;
  ListOptions o;
  o.resource_version = since;
  auto watch = api.StartWatch(PodsResource(), ns, o);
  WatchEvent ev;
  while (ready.size() < want && Clock::now() < deadline) {
    if (!watch->Next(ev, std::chrono::milliseconds(1000))) {
      // A stream the client's timeout ended resumes where it was.
      if (watch->ended()) watch = api.StartWatch(PodsResource(), ns, o);
      continue;
    }
    o.resource_version = ev.object["metadata"].value("resourceVersion", o.resource_version);
    std::string name = ev.object["metadata"].value("name", "");
    if (ev.type != "DELETED" && IsPodReady(ev.object) &&
        !ev.object["metadata"].contains("deletionTimestamp")) {
      if (std::getenv("KIN_BENCH_DEBUG") && !ready.count(name)) {
        std::fprintf(stderr, "%s ready (%zu) at %.0f ms\n", name.c_str(), ready.size() + 1,
                     MsSince(debug_start));
      }
      ready[name] = ev.object;
    } else {
      ready.erase(name);
    }
  }
  std::vector<Json> out;
  for (auto& [name, pod] : ready) out.push_back(std::move(pod));
  return out;
}

double MachineBusySeconds() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  double v[8] = {};
  in >> cpu;
  for (double& x : v) in >> x;
  double busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];  // user nice system irq softirq steal
  return busy / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double ServeCpuSeconds(const BenchCluster& c) {
  std::string pid = ReadFileIfExists(c.state + "/serve.pid").value_or("0");
  std::string stat = ReadFileIfExists("/proc/" + pid + "/stat").value_or("");
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream in(stat.substr(close + 2));
  std::string field;
  double utime = 0, stime = 0;
  for (int i = 3; i < 14 && (in >> field); ++i) {
  }
  in >> utime >> stime;  // fields 14 and 15
  return (utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

size_t ServeRssKib(const BenchCluster& c) {
  std::string pid = ReadFileIfExists(c.state + "/serve.pid").value_or("0");
  std::ifstream in("/proc/" + pid + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoul(line.substr(6));
  }
  return 0;
}

}  // namespace kin::bench
