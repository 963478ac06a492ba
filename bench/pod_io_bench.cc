// Figures for the pod I/O issue: exec round trip (`exec -- true`) with
// kubectl and with kin's CLI, and port-forward throughput against a direct
// connection to the pod (a 64 MiB file served by busybox httpd).
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <regex>

#include "base/file.h"
#include "base/http_client.h"
#include "base/netns.h"
#include "base/process.h"
#include "base/yaml.h"
#include "bench/bench_util.h"
#include "testing/e2e_support.h"

using namespace kin;
using namespace kin::bench;

namespace {

const char* kPod = R"(apiVersion: v1
kind: Pod
metadata: {name: io}
spec:
  containers:
  - name: files
    image: busybox
    command: [sh, -c, 'mkdir -p /www && head -c 67108864 /dev/zero > /www/big && touch /www/ready && httpd -f -p 9000 -h /www']
)";

double Download(const std::string& url, size_t* bytes) {
  http::ClientOptions o;
  o.base_url = url;
  o.timeout_ms = 120000;
  http::HttpClient c(o);
  auto t = Clock::now();
  *bytes = c.Get("/big").body.size();
  return MsSince(t);
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::printf("== logs, exec, port-forward ==\n");
  testing::TempDir dir;
  std::filesystem::create_directories(dir.File("root"));
  std::string name = "bi" + std::to_string(::getpid() % 100000);
  std::string kc = dir.File("kubeconfig");
  auto r = RunCommand({testing::KinBinary(), "cluster", "create", "--name", name, "--state-root",
                       dir.File("root"), "--kubeconfig", kc},
                      std::chrono::seconds(60));
  if (!r.status.success()) {
    std::fprintf(stderr, "%s%s", r.out.c_str(), r.err.c_str());
    return 1;
  }
  std::string kubectl_dir =
      RunCommand({"sh", "-c", "dirname \"$(readlink -f \"$(command -v kubectl)\")\""}).out;
  while (!kubectl_dir.empty() && kubectl_dir.back() == '\n') kubectl_dir.pop_back();
  std::string kubectl = kubectl_dir + "/kubectl.1.33";
  auto k = [&](std::vector<std::string> args, const std::string& input = "") {
    std::vector<std::string> argv = {kubectl, "--kubeconfig", kc, "--cache-dir", dir.File("cache")};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, std::chrono::seconds(120), input);
  };
  k({"apply", "-f", "-"}, kPod);
  auto deadline = Clock::now() + std::chrono::seconds(60);
  while (!k({"exec", "io", "--", "test", "-e", "/www/ready"}).status.success()) {
    if (Clock::now() > deadline) {
      std::fprintf(stderr, "pod io never became ready\n");
      return 1;
    }
    usleep(100000);
  }

  std::vector<double> kubectl_exec, kin_exec;
  for (int i = 0; i < 20; ++i) {
    auto t = Clock::now();
    k({"exec", "io", "--", "true"});
    kubectl_exec.push_back(MsSince(t));
    t = Clock::now();
    RunCommand({testing::KinBinary(), "exec", "--kubeconfig", kc, "io", "--", "true"});
    kin_exec.push_back(MsSince(t));
  }
  Report("kubectl.1.33 exec io -- true (wall), p50", Fmt("%.0f ms", Percentile(kubectl_exec, 50)));
  Report("kubectl.1.33 exec io -- true (wall), p99", Fmt("%.0f ms", Percentile(kubectl_exec, 99)));
  Report("kin exec io -- true (wall), p50", Fmt("%.0f ms", Percentile(kin_exec, 50)));
  Report("kin exec io -- true (wall), p99", Fmt("%.0f ms", Percentile(kin_exec, 99)));

  // Direct: from the node's namespace to the pod IP.
  Json pod = Json::parse(k({"get", "pod", "io", "-o", "json"}).out);
  std::string ip = pod["status"].value("podIP", "");
  std::string node_ns = "kin-" + name + "-control-plane";
  size_t bytes = 0;
  double direct_ms = 0;
  RunInNetns(Netns::Open(node_ns), [&] { direct_ms = Download("http://" + ip + ":9000", &bytes); });
  Report("direct download node -> pod, 64 MiB",
         Fmt("%.0f MiB/s", bytes / 1048576.0 / (direct_ms / 1000)));

  for (const std::string& tool : {std::string("kubectl.1.33"), std::string("kin")}) {
    std::vector<std::string> argv =
        tool == "kin"
            ? std::vector<std::string>{testing::KinBinary(),
                                       "port-forward",
                                       "--kubeconfig",
                                       kc,
                                       "io",
                                       ":9000"}
            : std::vector<std::string>{kubectl,           "--kubeconfig", kc,   "--cache-dir",
                                       dir.File("cache"), "port-forward", "io", ":9000"};
    SpawnOptions so;
    so.argv = argv;
    so.stdout_file = dir.File(tool + ".pf");
    so.stderr_to_stdout = true;
    so.stdin_mode = SpawnOptions::Stdio::kNull;
    ChildProcess pf = ChildProcess::Spawn(so);
    std::smatch m;
    static const std::regex kForward(R"(Forwarding from 127\.0\.0\.1:(\d+))");
    std::string out;
    deadline = Clock::now() + std::chrono::seconds(20);
    while (!std::regex_search(out, m, kForward) && Clock::now() < deadline) {
      out = ReadFileIfExists(dir.File(tool + ".pf")).value_or("");
      usleep(20000);
    }
    if (m.empty()) {
      std::fprintf(stderr, "%s port-forward did not start: %s\n", tool.c_str(), out.c_str());
      continue;
    }
    double ms = Download("http://127.0.0.1:" + std::string(m[1]), &bytes);
    Report(tool + " port-forward download, 64 MiB",
           Fmt("%.0f MiB/s", bytes / 1048576.0 / (ms / 1000)) +
               (bytes != (64u << 20) ? " (short: " + std::to_string(bytes) + " bytes)" : ""));
    pf.Stop(std::chrono::seconds(2));
  }
  RunCommand({testing::KinBinary(), "cluster", "delete", "--name", name, "--state-root",
              dir.File("root"), "--kubeconfig", kc},
             std::chrono::seconds(60));
  return 0;
}
