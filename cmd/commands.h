// The commands of the kin CLI, each a function over plain flag structs.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "cmd/cluster_config.h"  // ParseDuration

namespace kin::cmd {

struct ServeFlags {
  std::string address = "127.0.0.1";
  int port = 6443;
  std::string port_file;
  std::string state_dir = "/var/lib/kin/default";
  std::string service_cidr = "10.96.0.0/16";
  int watch_history = 20000;
  std::string pki_dir;  // HTTPS with client certificates from this PKI
  // The cluster's nodes (cluster.json as `kin cluster create` writes it);
  // empty: the API server alone.
  std::string cluster_config;
  // Which controllers run (kube-controller-manager's --controllers list).
  std::vector<std::string> controllers = {"*"};
};

// Runs the control process until SIGTERM or SIGINT; returns the exit code.
int RunServe(const ServeFlags& flags);

}  // namespace kin::cmd
