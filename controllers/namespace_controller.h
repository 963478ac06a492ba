// NamespaceController: empties namespaces that are being deleted, then lets
// them go, as kube-controller-manager's namespace controller does.
//
// A namespace with a deletionTimestamp whose spec.finalizers still holds
// `kubernetes` is processed, once `deletion_grace` (upstream's
// namespaceDeletionGracePeriod, 5 s) has passed since that timestamp: a
// client that deletes the namespace and then its objects one by one
// (`kubectl delete -f` of a file that begins with its Namespace) finds them
// still there instead of NotFound. Then every namespaced resource the API serves is
// listed in it and each object not already deleting is deleted
// (propagationPolicy Background). While objects remain (graceful pods,
// finalizers), it looks again when one of them goes (the content informers
// report deletions in terminating namespaces) and at the latest after a
// delay; status.conditions say what is left as upstream does
// (NamespaceDeletionDiscoveryFailure, NamespaceDeletionGroupVersionParsingFailure,
// NamespaceDeletionContentFailure, NamespaceContentRemaining,
// NamespaceFinalizersRemaining, with upstream's reasons and messages).
// Once nothing is left it removes `kubernetes` from spec.finalizers through
// namespaces/NAME/finalize, and the API server deletes the namespace when
// no finalizer remains.
//
// Thread-safety: Start/Stop from one owner thread.
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "base/yaml.h"
#include "client/client.h"
#include "client/informer_factory.h"
#include "controllers/controller.h"
#include "controllers/work_queue.h"

namespace kin::controllers {

struct NamespaceControllerOptions {
  int workers = 2;
  // How long after its deletionTimestamp (whole seconds: it waits between
  // deletion_grace - 1 s and deletion_grace) a namespace starts being emptied.
  std::chrono::milliseconds deletion_grace = std::chrono::seconds(5);
  // The longest wait before a namespace with content left is looked at
  // again (deletions the content informers see bring it back sooner).
  std::chrono::milliseconds recheck = std::chrono::seconds(5);
  // "group/version/plural" of the content informers whose deletions
  // retrigger a terminating namespace (shared with other controllers).
  std::vector<std::string> content_resources = {
      "/v1/pods",          "/v1/services",           "/v1/configmaps",
      "/v1/secrets",       "/v1/endpoints",          "apps/v1/replicasets",
      "apps/v1/deployments", "apps/v1/daemonsets",   "apps/v1/statefulsets",
      "batch/v1/jobs",     "discovery.k8s.io/v1/endpointslices",
  };
};

class NamespaceController : public Controller {
 public:
  // `informers` and `client` must outlive the controller.
  NamespaceController(SharedInformerFactory& informers, Client& client,
                      NamespaceControllerOptions opts = {});
  ~NamespaceController() override;

  std::string name() const override { return "namespace"; }
  void Start() override;
  void Stop() override;

 private:
  Result Sync(const std::string& name);
  void OnContentGone(const Json& obj);
  // Writes the conditions when they changed; the namespace as it stands.
  Json UpdateConditions(const Json& ns, const Json& conditions);

  const NamespaceControllerOptions opts_;
  ComponentClient identity_;
  Informer& namespaces_;
  std::vector<Informer*> content_;
  InformerSubscriptions subscriptions_;
  StartStopOnce run_state_;
  WorkQueue queue_;
  ReconcileWorkers workers_;
};

}  // namespace kin::controllers
