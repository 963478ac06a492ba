// Figures for the kubectl issue: `kin cluster create` (control plane),
// `kubectl get pods -A` with 1,000 pods, and a TLS request's latency on a
// kept-alive and on a new connection.
#include <cstdio>
#include <filesystem>

#include "base/http_client.h"
#include "base/process.h"
#include "base/yaml.h"
#include "bench/bench_util.h"
#include "testing/e2e_support.h"

using namespace kin;
using namespace kin::bench;

int main() {
  std::printf("== kubectl and TLS ==\n");
  testing::TempDir dir;
  std::filesystem::create_directories(dir.File("root"));
  std::string root = dir.File("root"), kc = dir.File("kubeconfig");
  std::vector<double> creates;
  for (int i = 0; i < 5; ++i) {
    auto t = Clock::now();
    auto r = RunCommand({testing::KinBinary(), "cluster", "create", "--name",
                         "b" + std::to_string(i), "--state-root", root, "--kubeconfig", kc});
    creates.push_back(MsSince(t));
    if (!r.status.success()) {
      std::fprintf(stderr, "%s%s", r.out.c_str(), r.err.c_str());
      return 1;
    }
    if (i > 0) {
      RunCommand({testing::KinBinary(), "cluster", "delete", "--name", "b" + std::to_string(i),
                  "--state-root", root, "--kubeconfig", kc});
    }
  }
  Report("kin cluster create (control plane, TLS, kubeconfig), p50",
         Fmt("%.0f ms", Percentile(creates, 50)));

  std::string state = root + "/b0";
  http::ClientOptions o;
  o.base_url = "https://127.0.0.1:" + testing::ReadFile(state + "/serve.port");
  o.ca_file = state + "/pki/ca.crt";
  o.cert_file = state + "/pki/admin.crt";
  o.key_file = state + "/pki/admin.key";
  {
    http::HttpClient c(o);
    std::vector<double> lat;
    for (int i = 0; i < 1000; ++i) {
      auto t = Clock::now();
      c.Get("/api/v1/namespaces/default");
      lat.push_back(MsSince(t) * 1000);
    }
    Report("TLS GET, kept-alive connection, p50", Fmt("%.0f us", Percentile(lat, 50)));
    Report("TLS GET, kept-alive connection, p99", Fmt("%.0f us", Percentile(lat, 99)));
    lat.clear();
    for (int i = 0; i < 200; ++i) {
      auto t = Clock::now();
      http::HttpClient fresh(o);
      fresh.Get("/api/v1/namespaces/default");
      lat.push_back(MsSince(t));
    }
    Report("TLS GET, new connection (handshake), p50", Fmt("%.2f ms", Percentile(lat, 50)));
    Report("TLS GET, new connection (handshake), p99", Fmt("%.2f ms", Percentile(lat, 99)));
    for (int i = 0; i < 1000; ++i) {
      Json pod = {
          {"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata",
           {{"name", "p" + std::to_string(i)}, {"namespace", i % 2 ? "default" : "kube-system"}}},
          // No scheduler serves this name: the pods stay Pending, listed but not run.
          {"spec",
           {{"schedulerName", "kin-bench-unscheduled"},
            {"containers", {{{"name", "c"}, {"image", "busybox"}}}}}}};
      c.Do("POST",
           std::string("/api/v1/namespaces/") + (i % 2 ? "default" : "kube-system") + "/pods",
           pod.dump());
    }
  }
  std::string kubectl_dir =
      RunCommand({"sh", "-c", "dirname \"$(readlink -f \"$(command -v kubectl)\")\""}).out;
  while (!kubectl_dir.empty() && kubectl_dir.back() == '\n') kubectl_dir.pop_back();
  for (std::string v : {"1.27", "1.33"}) {
    std::string kubectl = kubectl_dir + "/kubectl." + v;
    std::vector<double> samples;
    for (int i = 0; i < 6; ++i) {
      auto t = Clock::now();
      auto r = RunCommand({kubectl, "--kubeconfig", kc, "--context", "kin-b0", "--cache-dir",
                           dir.File("cache"), "get", "pods", "-A"});
      if (i > 0) samples.push_back(MsSince(t));  // the first run fills the discovery cache
      if (!r.status.success()) {
        std::fprintf(stderr, "%s", r.err.c_str());
        return 1;
      }
    }
    Report("kubectl." + v + " get pods -A, 1,000 pods (wall, p50)",
           Fmt("%.0f ms", Percentile(samples, 50)));
  }
  auto t = Clock::now();
  RunCommand({testing::KinBinary(), "cluster", "delete", "--name", "b0", "--state-root", root,
              "--kubeconfig", kc});
  Report("kin cluster delete (control plane)", Fmt("%.0f ms", MsSince(t)));
  return 0;
}
