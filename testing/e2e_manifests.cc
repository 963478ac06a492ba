#include "testing/e2e_manifests.h"

namespace kin::testing {

std::string NetexecDeployment(const std::string& name, const NetexecOptions& o) {
  std::string yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: " + name +
                     "}\nspec:\n  replicas: " + std::to_string(o.replicas) +
                     "\n  selector: {matchLabels: {app: " + name +
                     "}}\n  template:\n    metadata: {labels: {app: " + name +
                     "}}\n    spec:\n      terminationGracePeriodSeconds: 1\n";
  if (o.spread) {
    yaml += "      topologySpreadConstraints:\n"
            "      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, "
            "whenUnsatisfiable: DoNotSchedule,\n"
            "         labelSelector: {matchLabels: {app: " +
            name + "}}}\n";
  }
  yaml += "      containers:\n      - name: web\n        image: " + std::string(kAgnhostImage) +
          "\n        args: [netexec, --http-port=8080" + (o.udp ? ", --udp-port=8081" : "") +
          "]\n        readinessProbe:\n          httpGet: {path: /, port: 8080}\n"
          "          periodSeconds: 1\n";
  return yaml;
}

}  // namespace kin::testing
