// The controllers `kin serve` runs, as kube-controller-manager and
// kube-scheduler do on a real cluster: one place that adds each of them to
// a ControllerManager, with the settings the cluster's configuration gives.
//
// `kin serve` runs them whether or not the cluster has nodes. Which ones
// run is kube-controller-manager's --controllers list: "*" for all, a name
// to enable one, "-name" to disable one ("*,-scheduler": all but the
// scheduler). A name no controller has is Error::BadRequest naming it and
// the known ones.
//
// Thread-safety: call from the manager's owner thread, before Start().
#pragma once

#include <chrono>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "controllers/manager.h"

namespace kin::controllers {

struct KubeControllerOptions {
  // Node lifecycle: how long a node's lease may go unrenewed before the
  // node is Unknown and tainted unreachable (kube-controller-manager's
  // --node-monitor-grace-period).
  std::chrono::milliseconds node_monitor_grace_period = std::chrono::seconds(40);
  // Job: the delay before a failed pod is replaced, doubling with each
  // further failure (upstream's DefaultJobPodFailureBackOff, 10 s).
  std::chrono::milliseconds job_pod_failure_backoff = std::chrono::seconds(10);
  // The cluster CA (PEM) that root-ca-cert-publisher puts in every
  // namespace's kube-root-ca.crt; empty (a cluster without TLS): that
  // controller does not run.
  std::string root_ca_pem;
  // The local-path provisioner's directory for a node's volumes
  // (controllers/storage.h); unset: that provisioner does not run.
  std::function<std::string(const std::string& node)> local_path_dir;
  // Which controllers run (see above).
  std::vector<std::string> controllers = {"*"};
};

// Whether `name` runs under `list` (the --controllers list).
bool ControllerEnabled(const std::vector<std::string>& list, const std::string& name);

void AddKubeControllers(ControllerManager& manager, const KubeControllerOptions& opts = {});

}  // namespace kin::controllers
