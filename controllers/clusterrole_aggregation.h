// ClusterRoleAggregationController: fills the rules of ClusterRoles that
// have an aggregationRule, as kube-controller-manager's
// clusterrole-aggregation controller does.
//
// An aggregated ClusterRole's rules are the rules of every other
// ClusterRole matched by one of its clusterRoleSelectors, taken in name
// order, each distinct rule once. Any change of any ClusterRole queues
// every aggregated one (a label change can move a role in or out); a role
// whose rules already match is left alone, so nothing is written in a
// steady state. This is how `admin`, `edit` and `view` gain the
// system:aggregate-to-* roles' rules, and a CRD's role labelled
// rbac.authorization.k8s.io/aggregate-to-view: "true" widens `view`.
//
// Thread-safety: Start/Stop from one owner thread.
#pragma once

#include <string>
#include <vector>

#include "base/yaml.h"
#include "client/client.h"
#include "client/informer_factory.h"
#include "controllers/controller.h"
#include "controllers/work_queue.h"

namespace kin::controllers {

// The rules `role` aggregates from `all` (every ClusterRole); pure.
Json AggregatedRules(const Json& role, const std::vector<Json>& all);

class ClusterRoleAggregationController : public Controller {
 public:
  // `informers` and `client` must outlive the controller.
  ClusterRoleAggregationController(SharedInformerFactory& informers, Client& client);
  ~ClusterRoleAggregationController() override;

  std::string name() const override { return "clusterrole-aggregation"; }
  void Start() override;
  void Stop() override;

 private:
  Result Sync(const std::string& key);

  ComponentClient identity_;
  Informer& roles_;
  WorkQueue queue_;
  InformerSubscriptions subscriptions_;
  ReconcileWorkers workers_;
  StartStopOnce run_state_;
};

}  // namespace kin::controllers
