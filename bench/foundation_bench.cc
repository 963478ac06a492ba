// Figures for the foundation: how fast `kin serve` comes up and answers,
// and the YAML codec's speed on a typical manifest.
#include <cstdio>

#include "base/http_client.h"
#include "base/yaml.h"
#include "bench/bench_util.h"
#include "testing/e2e_support.h"

using namespace kin;
using namespace kin::bench;

int main() {
  std::printf("== foundation ==\n");
  {
    std::vector<double> samples;
    for (int i = 0; i < 10; ++i) {
      auto t = Clock::now();
      testing::ServeProcess serve;
      http::HttpClient c({.base_url = serve.url()});
      if (c.Get("/healthz").status != 200) return 1;
      samples.push_back(MsSince(t));
    }
    Report("kin serve: spawn to first /healthz 200 (p50)", Fmt("%.1f ms", Percentile(samples, 50)));
    Report("kin serve: spawn to first /healthz 200 (max of 10)",
           Fmt("%.1f ms", Percentile(samples, 100)));
  }
  {
    testing::ServeProcess serve;
    http::HttpClient c({.base_url = serve.url()});
    std::vector<double> samples;
    for (int i = 0; i < 5000; ++i) {
      auto t = Clock::now();
      c.Get("/healthz");
      samples.push_back(MsSince(t) * 1000);
    }
    Report("GET /healthz keep-alive latency p50", Fmt("%.0f us", Percentile(samples, 50)));
    Report("GET /healthz keep-alive latency p99", Fmt("%.0f us", Percentile(samples, 99)));
  }
  {
    const char* manifest = R"(apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.k8s.io/e2e-test-images/agnhost:2.52
        args: ["netexec", "--http-port=8080"]
        ports:
        - containerPort: 8080
        readinessProbe:
          httpGet: {path: /readyz, port: 8080}
)";
    const int n = 5000;
    auto t = Clock::now();
    for (int i = 0; i < n; ++i) ParseYamlDocuments(manifest);
    double ms = MsSince(t);
    Report("YAML parse, 20-line Deployment", Fmt("%.1f us/doc", ms * 1000 / n));
    Json j = ParseYaml(manifest);
    t = Clock::now();
    for (int i = 0; i < n; ++i) ToYaml(j);
    ms = MsSince(t);
    Report("YAML emit, same Deployment", Fmt("%.1f us/doc", ms * 1000 / n));
  }
  return 0;
}
