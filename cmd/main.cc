// kin: Kubernetes IN namespaces. The CLI layer only turns flags into calls
// of library functions (as kind's cmd/ does).
#include <CLI/CLI.hpp>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>

#include "base/error.h"
#include "base/log.h"
#include "base/version.h"
#include "cmd/cluster.h"
#include "cmd/commands.h"
#include "cmd/pod_io_cli.h"
#include "runtime/agnhost.h"
#include "runtime/shim.h"

namespace {
std::atomic<bool> g_stop{false};
void OnStopSignal(int) { g_stop = true; }
}  // namespace

int main(int argc, char** argv) {
  // `kin agnhost ...`: the built-in e2e test image (runtime/agnhost.h). Runs
  // before anything else starts a thread: it waits for its signals itself.
  if (argc > 1 && std::string(argv[1]) == "agnhost") {
    return kin::RunAgnhost(std::vector<std::string>(argv + 2, argv + argc));
  }
  // `kin shim-server`: forks the shims that keep containers (runtime/shim.h),
  // started by node agents; single-threaded, so nothing here may start a thread.
  if (argc == 2 && std::string(argv[1]) == "shim-server") return kin::RunShimServer();
  CLI::App app{"kin: Kubernetes IN namespaces — a whole cluster on one Linux box", "kin"};
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->envname("KIN_LOG_LEVEL");

  app.footer("Also: kin agnhost SUBCOMMAND [FLAGS]  (the e2e test image agnhost, built in)");
  auto* version = app.add_subcommand("version", "Print kin's version");
  version->callback([] {
    std::printf("kin version %s (Kubernetes API %s)\n", kin::kVersion, kin::kKubeVersion);
  });

  kin::cmd::ServeFlags serve_flags;
  auto* serve = app.add_subcommand("serve", "Run the cluster's control process in the foreground");
  serve->add_option("--address", serve_flags.address, "address to listen on")
      ->capture_default_str();
  serve->add_option("--port", serve_flags.port, "port to listen on (0: any free port)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  serve->add_option("--port-file", serve_flags.port_file,
                    "write the port listened on to this file once serving");
  serve->add_option("--state-dir", serve_flags.state_dir, "directory for the cluster's state")
      ->capture_default_str();
  serve
      ->add_option("--watch-history", serve_flags.watch_history,
                   "changes kept for watches to resume from (older ones are compacted)")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000000));
  serve
      ->add_option("--service-cidr", serve_flags.service_cidr,
                   "range Service ClusterIPs are allocated from")
      ->capture_default_str();

  serve->add_option("--pki-dir", serve_flags.pki_dir,
                    "serve HTTPS with the certificates in this directory and require client "
                    "certificates (as `kin cluster create` sets up)");

  serve
      ->add_option("--controllers", serve_flags.controllers,
                   "controllers to run: * for all, NAME to enable, -NAME to disable "
                   "(e.g. *,-scheduler)")
      ->delimiter(',')
      ->capture_default_str();
  serve->add_option(
      "--cluster-config", serve_flags.cluster_config,
      "run the nodes of this cluster (cluster.json as `kin cluster create` writes it)");

  // kin cluster create|delete|list
  auto* cluster = app.add_subcommand("cluster", "Create, delete and list clusters");
  cluster->require_subcommand(1);
  kin::cmd::ClusterCreateOptions create_opts;
  std::string state_root = "/var/lib/kin";
  std::string kubeconfig;
  std::string wait = "60s";
  auto* create = cluster->add_subcommand("create", "Create a cluster");
  create->add_option("--name", create_opts.name, "cluster name")->capture_default_str();
  create->add_option(
      "--kubeconfig", kubeconfig,
      "kubeconfig to merge the cluster into (default $KUBECONFIG or ~/.kube/config)");
  create->add_option("--wait", wait, "how long to wait for the cluster to be ready (e.g. 60s, 2m)")
      ->capture_default_str();
  create->add_flag("--retain", create_opts.retain, "keep what was made when create fails");
  int nodes_flag = 0;
  create->add_option("--nodes", nodes_flag, "number of nodes in all (1 control-plane + workers)")
      ->check(CLI::Range(1, 100));
  create->add_option("--config", create_opts.config_file,
                     "cluster config file (YAML, apiVersion kin.dev/v1alpha1, kind Cluster)");
  std::string crash_backoff, log_max_size;
  int log_max_files = 0;
  create->add_option("--crash-backoff", crash_backoff,
                     "first back-off before restarting a crashed container (default 10s; "
                     "config: kubelet.crashBackoff)");
  create->add_option("--container-log-max-size", log_max_size,
                     "container logs rotate at this size (default 10Mi; config: "
                     "kubelet.containerLogMaxSize)");
  create->add_option("--container-log-max-files", log_max_files,
                     "log files kept per container (default 5; config: "
                     "kubelet.containerLogMaxFiles)");
  bool host_access = true;
  create->add_option("--host-access", host_access,
                     "route the cluster's node and LoadBalancer IPs from this machine's own "
                     "network (default true; --host-access=false: off; config: "
                     "networking.hostAccess)");
  create->add_option("--port", create_opts.port, "API server port (0: a free port)")
      ->check(CLI::Range(0, 65535));
  auto* start = cluster->add_subcommand(
      "start", "Start a stopped cluster again as it was saved (after a crash or a reboot)");
  start->add_option("--name", create_opts.name, "cluster name")->capture_default_str();
  start->add_option("--kubeconfig", kubeconfig,
                    "kubeconfig to merge the cluster into (default $KUBECONFIG or ~/.kube/config)");
  start->add_option("--wait", wait, "how long to wait for the cluster to be ready (e.g. 60s, 2m)")
      ->capture_default_str();
  start->add_option("--port", create_opts.port, "API server port (0: a free port)")
      ->check(CLI::Range(0, 65535));
  std::string delete_name = "kin";
  auto* del = cluster->add_subcommand("delete", "Delete a cluster and everything it made");
  del->add_option("--name", delete_name, "cluster name")->capture_default_str();
  del->add_option("--kubeconfig", kubeconfig, "kubeconfig to remove the cluster's entries from");
  auto* list = cluster->add_subcommand("list", "List clusters");
  for (auto* c : {create, start, del, list}) {
    c->add_option("--state-root", state_root, "where clusters keep their state")
        ->capture_default_str()
        ->envname("KIN_STATE_ROOT");
  }
  // kin logs / exec / port-forward (kubectl's flags), over the kubeconfig's API.
  std::string pod_kubeconfig, pod_context;
  auto add_api_flags = [&](CLI::App* c, std::string& ns) {
    c->add_option("-n,--namespace", ns, "namespace (default: the context's, else default)");
    c->add_option("--kubeconfig", pod_kubeconfig,
                  "kubeconfig (default $KUBECONFIG or ~/.kube/config)");
    c->add_option("--context", pod_context, "kubeconfig context (default: current-context)");
  };
  kin::cmd::LogsOptions logs_opts;
  auto* logs = app.add_subcommand("logs", "Print the logs of a container in a pod");
  logs->add_option("POD", logs_opts.pod, "pod name")->required();
  logs->add_option("-c,--container", logs_opts.container, "container name");
  logs->add_flag("-f,--follow", logs_opts.follow, "stream the logs");
  logs->add_option("--tail", logs_opts.tail, "lines of recent log to show (-1: all)");
  logs->add_option("--since", logs_opts.since, "only logs newer than a duration, e.g. 5s, 2m, 3h");
  logs->add_option("--since-time", logs_opts.since_time, "only logs after a date (RFC3339)");
  logs->add_flag("--timestamps", logs_opts.timestamps, "prefix each line with its timestamp");
  logs->add_flag("-p,--previous", logs_opts.previous, "logs of the previous instance");
  logs->add_option("--limit-bytes", logs_opts.limit_bytes, "maximum bytes of logs to return");
  add_api_flags(logs, logs_opts.namespace_);

  kin::cmd::ExecOptions exec_opts;
  auto* exec = app.add_subcommand(
      "exec", "Execute a command in a container: kin exec POD [-c C] [-i] [-t] -- CMD ARGS...");
  exec->add_option("POD", exec_opts.pod, "pod name")->required();
  exec->add_option("COMMAND", exec_opts.command, "the command and its arguments (after --)");
  exec->add_option("-c,--container", exec_opts.container, "container name");
  exec->add_flag("-i,--stdin", exec_opts.pass_stdin, "pass stdin to the container");
  exec->add_flag("-t,--tty", exec_opts.tty, "stdin is a TTY");
  exec->add_flag("-q,--quiet", exec_opts.quiet, "only print output from the remote session");
  add_api_flags(exec, exec_opts.namespace_);

  kin::cmd::PortForwardOptions pf_opts;
  std::vector<std::string> pf_addresses = {"localhost"};
  auto* pf = app.add_subcommand(
      "port-forward", "Forward local ports to a pod: kin port-forward POD [LOCAL:]REMOTE...");
  pf->add_option("POD", pf_opts.pod, "pod name")->required();
  pf->add_option("PORTS", pf_opts.ports, "[LOCAL:]REMOTE (LOCAL empty or 0: a free port)")
      ->required();
  pf->add_option("--address", pf_addresses,
                 "addresses to listen on (comma-separated), localhost or IPs")
      ->delimiter(',');
  add_api_flags(pf, pf_opts.namespace_);

  // kin load image-archive|rootfs
  auto* load = app.add_subcommand("load", "Load images into a cluster (no registry is reachable)");
  load->require_subcommand(1);
  std::string load_cluster = "kin", archive_file, rootfs_name, rootfs_source;
  auto* load_archive = load->add_subcommand(
      "image-archive", "Load the images of a `docker save` archive or an OCI image layout");
  load_archive->add_option("FILE", archive_file, "the archive (tar, possibly compressed) or layout")
      ->required();
  auto* load_rootfs = load->add_subcommand("rootfs", "Load a plain root filesystem as image NAME");
  load_rootfs->add_option("NAME", rootfs_name, "image name, e.g. myorg/tools:dev")->required();
  load_rootfs->add_option("SOURCE", rootfs_source, "a directory or a tarball")->required();
  for (auto* c : {load_archive, load_rootfs}) {
    c->add_option("--name", load_cluster, "cluster name")->capture_default_str();
    c->add_option("--state-root", state_root, "where clusters keep their state")
        ->capture_default_str()
        ->envname("KIN_STATE_ROOT");
  }

  // kin node stop|start
  auto* node_cmd = app.add_subcommand("node", "Stop and start a cluster's nodes (failover tests)");
  node_cmd->require_subcommand(1);
  std::string node_cluster = "kin", node_name;
  auto* node_stop = node_cmd->add_subcommand(
      "stop", "Stop a node as a crashed machine: its agent stops, its containers die, its link "
              "goes down");
  auto* node_start =
      node_cmd->add_subcommand("start", "Start a stopped node again (its pods start afresh)");
  for (auto* c : {node_stop, node_start}) {
    c->add_option("NODE", node_name, "the node (kin-NAME-worker2, or just worker2)")->required();
    c->add_option("--name", node_cluster, "cluster name")->capture_default_str();
    c->add_option("--state-root", state_root, "where clusters keep their state")
        ->capture_default_str()
        ->envname("KIN_STATE_ROOT");
  }

  // kin get kubeconfig
  auto* get = app.add_subcommand("get", "Get information about clusters");
  get->require_subcommand(1);
  std::string kc_name = "kin";
  auto* get_kc = get->add_subcommand("kubeconfig", "Print a cluster's kubeconfig");
  get_kc->add_option("--name", kc_name, "cluster name")->capture_default_str();
  get_kc->add_option("--state-root", state_root, "where clusters keep their state")
      ->capture_default_str()
      ->envname("KIN_STATE_ROOT");

  int rc = 0;
  try {
    // CLI11 reports a mistyped command only as "A subcommand is required";
    // name it instead.
    bool known = false;
    for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
      if (argc > 1 && sub->check_name(argv[1])) known = true;
    }
    if (argc > 1 && argv[1][0] != '-' && !known) {
      // (agnhost was handled above)
      std::fprintf(stderr, "kin: unknown command \"%s\" (see kin --help)\n", argv[1]);
      return 1;
    }
    app.parse(argc, argv);
    kin::log::SetLevel(kin::log::ParseLevel(log_level));
    kin::log::UseStderr();
    if (serve->parsed()) rc = kin::cmd::RunServe(serve_flags);
    if (create->parsed() || start->parsed()) {
      create_opts.state_root = state_root;
      create_opts.kubeconfig = kubeconfig;
      create_opts.wait = kin::cmd::ParseDuration(wait, "--wait");
      create_opts.start_only = start->parsed();
      if (create->count("--nodes") > 0) create_opts.nodes = nodes_flag;
      if (create->count("--crash-backoff") > 0) create_opts.flags.crash_backoff = crash_backoff;
      if (create->count("--container-log-max-size") > 0) {
        create_opts.flags.container_log_max_size = log_max_size;
      }
      if (create->count("--container-log-max-files") > 0) {
        create_opts.flags.container_log_max_files = log_max_files;
      }
      if (create->count("--host-access") > 0) create_opts.flags.host_access = host_access;
      kin::cmd::CreateCluster(create_opts, std::cout);
    }
    if (del->parsed()) kin::cmd::DeleteCluster(delete_name, state_root, kubeconfig, std::cout);
    if (list->parsed()) {
      auto clusters = kin::cmd::ListClusters(state_root);
      if (clusters.empty()) std::cerr << "No kin clusters found.\n";
      for (const auto& c : clusters) std::cout << c.name << (c.running ? "" : " (stopped)") << "\n";
    }
    app.parse(argc, argv);
    if (logs->parsed() || exec->parsed() || pf->parsed()) {
      kin::cmd::ApiTarget target = kin::cmd::ApiTargetFromKubeconfig(pod_kubeconfig, pod_context);
      if (logs->parsed()) rc = kin::cmd::RunLogs(target, logs_opts, std::cout, std::cerr);
      if (exec->parsed()) rc = kin::cmd::RunExec(target, exec_opts);
      if (pf->parsed()) {
        pf_opts.addresses = pf_addresses;
        std::signal(SIGINT, OnStopSignal);  // g_stop: a file-level std::atomic<bool>
        std::signal(SIGTERM, OnStopSignal);
        rc = kin::cmd::RunPortForward(target, pf_opts, std::cout, std::cerr,
                                      [] { return g_stop.load(); });
      }
    }
    if (node_stop->parsed() || node_start->parsed()) {
      kin::cmd::SetNodeRunning(node_cluster, state_root, node_name, node_start->parsed());
      std::cout << "Node \"" << node_name << "\" " << (node_start->parsed() ? "started" : "stopped")
                << "\n";
    }
    if (get_kc->parsed()) std::cout << kin::cmd::ClusterKubeconfig(kc_name, state_root);
    if (load_archive->parsed()) {
      for (const auto& name : kin::cmd::LoadImageArchive(load_cluster, state_root, archive_file)) {
        std::cout << "Image: \"" << name << "\" loaded into cluster \"" << load_cluster << "\"\n";
      }
    }
    if (load_rootfs->parsed()) {
      kin::cmd::LoadRootfs(load_cluster, state_root, rootfs_name, rootfs_source);
      std::cout << "Image: \"" << rootfs_name << "\" loaded into cluster \"" << load_cluster
                << "\"\n";
    }
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const kin::Error& e) {
    std::fprintf(stderr, "kin: %s\n", e.message().c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kin: %s\n", e.what());
    return 1;
  }
  return rc;
}
