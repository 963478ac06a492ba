// Manifests that many e2e tests apply, written once.
//
// NetexecDeployment: agnhost's netexec behind a Deployment, the backend of
// most Service, DNS, LoadBalancer and Ingress tests: `replicas` pods
// labelled app=<name>, HTTP on 8080 (and UDP on 8081 with `udp`), Ready
// once they answer (a readiness probe every second), gone within a second
// of deletion; `spread` places them one per node where it can. The YAML
// ends with a newline, so a test appends "---\n" and its Services.
//
// Thread-safety: pure functions.
#pragma once

#include <string>

namespace kin::testing {

inline constexpr const char* kAgnhostImage = "registry.k8s.io/e2e-test-images/agnhost:2.52";

struct NetexecOptions {
  int replicas = 2;
  bool udp = false;
  bool spread = false;
};

std::string NetexecDeployment(const std::string& name, const NetexecOptions& options = {});

}  // namespace kin::testing
