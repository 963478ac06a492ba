#include "controllers/kube_controllers.h"

#include <algorithm>

#include "base/error.h"
#include "controllers/apiservice_availability.h"
#include "controllers/clusterrole_aggregation.h"
#include "controllers/cronjob.h"
#include "controllers/daemonset.h"
#include "controllers/deployment.h"
#include "controllers/disruption.h"
#include "controllers/endpoints.h"
#include "controllers/endpointslice.h"
#include "controllers/garbage_collector.h"
#include "controllers/job.h"
#include "controllers/namespace_controller.h"
#include "controllers/node_lifecycle.h"
#include "controllers/replicaset.h"
#include "controllers/resource_quota.h"
#include "controllers/scheduler.h"
#include "controllers/service_accounts.h"
#include "controllers/statefulset.h"
#include "controllers/storage.h"

namespace kin::controllers {

bool ControllerEnabled(const std::vector<std::string>& list, const std::string& name) {
  // As kube-controller-manager: an explicit "-name" or "name" decides, else "*".
  if (std::find(list.begin(), list.end(), "-" + name) != list.end()) return false;
  if (std::find(list.begin(), list.end(), name) != list.end()) return true;
  return std::find(list.begin(), list.end(), "*") != list.end();
}

void AddKubeControllers(ControllerManager& manager, const KubeControllerOptions& opts) {
  std::set<std::string> known;
  // Adds the controller `name` unless the list disables it.
  auto add = [&](const std::string& name, auto&& make) {
    known.insert(name);
    if (ControllerEnabled(opts.controllers, name)) make();
  };
  add("scheduler", [&] { manager.Emplace<Scheduler>(manager.informers(), manager.client()); });
  add("nodelifecycle", [&] {
    NodeLifecycleOptions o;
    o.grace_period = opts.node_monitor_grace_period;
    manager.Emplace<NodeLifecycleController>(manager.informers(), manager.client(), o);
  });
  add("disruption", [&] {
    manager.Emplace<DisruptionController>(manager.informers(), manager.client());
  });
  add("daemonset", [&] {
    manager.Emplace<DaemonSetController>(manager.informers(), manager.client());
  });
  add("statefulset", [&] {
    manager.Emplace<StatefulSetController>(manager.informers(), manager.client());
  });
  add("replicaset", [&] {
    manager.Emplace<ReplicaSetController>(manager.informers(), manager.client(),
                                          *FindResource("apps", "v1", "replicasets"));
  });
  // Only where the API serves them (kin added v1 replicationcontrollers late).
  if (const ResourceInfo* rc = FindResource("", "v1", "replicationcontrollers")) {
    add("replicationcontroller", [&] {
      manager.Emplace<ReplicaSetController>(manager.informers(), manager.client(), *rc);
    });
  }
  add("apiservice-availability", [&] {
    manager.Emplace<APIServiceAvailabilityController>(manager.informers(), manager.client());
  });
  add("clusterrole-aggregation", [&] {
    manager.Emplace<ClusterRoleAggregationController>(manager.informers(), manager.client());
  });
  add("deployment", [&] {
    manager.Emplace<DeploymentController>(manager.informers(), manager.client());
  });
  add("endpoint", [&] {
    manager.Emplace<EndpointsController>(manager.informers(), manager.client());
  });
  add("endpointslice", [&] {
    manager.Emplace<EndpointSliceController>(manager.informers(), manager.client());
  });
  add("endpointslicemirroring", [&] {
    manager.Emplace<EndpointSliceMirroringController>(manager.informers(), manager.client());
  });
  add("job", [&] {
    JobControllerOptions o;
    o.pod_failure_backoff = opts.job_pod_failure_backoff;
    manager.Emplace<JobController>(manager.informers(), manager.client(), o);
  });
  add("ttl-after-finished", [&] {
    manager.Emplace<TtlAfterFinishedController>(manager.informers(), manager.client());
  });
  // Only where the API serves batch/v1 cronjobs.
  if (FindResource("batch", "v1", "cronjobs")) {
    add("cronjob", [&] {
      manager.Emplace<CronJobController>(manager.informers(), manager.client());
    });
  }
  add("garbagecollector", [&] {
    manager.Emplace<GarbageCollector>(manager.informers(), manager.client());
  });
  add("namespace", [&] {
    manager.Emplace<NamespaceController>(manager.informers(), manager.client());
  });
  add("serviceaccount", [&] {
    manager.Emplace<ServiceAccountsController>(manager.informers(), manager.client());
  });
  add("persistentvolume-binder", [&] {
    manager.Emplace<PersistentVolumeBinder>(manager.informers(), manager.client());
  });
  add("local-path-provisioner", [&] {
    if (opts.local_path_dir) {
      manager.Emplace<LocalPathProvisioner>(manager.informers(), manager.client(),
                                            LocalPathProvisionerOptions{opts.local_path_dir});
    }
  });
  add("resourcequota", [&] {
    manager.Emplace<ResourceQuotaController>(manager.informers(), manager.client());
  });
  add("root-ca-cert-publisher", [&] {
    if (!opts.root_ca_pem.empty()) {
      manager.Emplace<RootCaPublisher>(manager.informers(), manager.client(), opts.root_ca_pem);
    }
  });

  for (const std::string& entry : opts.controllers) {
    std::string name = !entry.empty() && entry[0] == '-' ? entry.substr(1) : entry;
    if (name == "*" || known.count(name)) continue;
    std::string list;
    for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
    throw Error::BadRequest("--controllers: unknown controller \"" + name + "\" (known: " + list +
                            ")");
  }
}

}  // namespace kin::controllers
