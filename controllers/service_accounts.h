// The per-namespace identity objects kube-controller-manager keeps:
//
// ServiceAccountsController ("serviceaccount"): a `default` ServiceAccount
// in every active namespace, made when the namespace appears (or is seen
// at start) and made again when it is deleted, as upstream's
// serviceaccounts controller. Pods run as it unless they name another.
//
// RootCaPublisher ("root-ca-cert-publisher"): the ConfigMap
// `kube-root-ca.crt` in every active namespace, its data {"ca.crt": the
// cluster CA (PEM)} and the annotation kubernetes.io/description upstream
// sets; made again when deleted, and its data and annotation put back when
// changed (other labels and annotations are left). In-cluster clients
// verify the API server with it (projected kube-api-access volumes).
//
// Both skip namespaces that are terminating (the namespace controller is
// emptying them) and write nothing when the object is already right.
//
// Thread-safety: Start/Stop from one owner thread.
#pragma once

#include <string>

#include "client/client.h"
#include "client/informer_factory.h"
#include "controllers/controller.h"
#include "controllers/work_queue.h"

namespace kin::controllers {

inline constexpr char kRootCaConfigMap[] = "kube-root-ca.crt";
inline constexpr char kRootCaDescription[] =
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
    "guaranteed across distributions of Kubernetes clusters.";

class ServiceAccountsController : public Controller {
 public:
  // `informers` and `client` must outlive the controller.
  ServiceAccountsController(SharedInformerFactory& informers, Client& client);
  ~ServiceAccountsController() override;

  std::string name() const override { return "serviceaccount"; }
  void Start() override;
  void Stop() override;

 private:
  Result Sync(const std::string& ns);

  ComponentClient identity_;
  Informer& namespaces_;
  Informer& service_accounts_;
  InformerSubscriptions subscriptions_;
  StartStopOnce run_state_;
  WorkQueue queue_;
  ReconcileWorkers workers_;
};

class RootCaPublisher : public Controller {
 public:
  // `ca_pem`: the cluster CA certificate, PEM. `informers` and `client`
  // must outlive the controller.
  RootCaPublisher(SharedInformerFactory& informers, Client& client, std::string ca_pem);
  ~RootCaPublisher() override;

  std::string name() const override { return "root-ca-cert-publisher"; }
  void Start() override;
  void Stop() override;

 private:
  Result Sync(const std::string& ns);

  const std::string ca_pem_;
  ComponentClient identity_;
  Informer& namespaces_;
  Informer& config_maps_;
  InformerSubscriptions subscriptions_;
  StartStopOnce run_state_;
  WorkQueue queue_;
  ReconcileWorkers workers_;
};

}  // namespace kin::controllers
