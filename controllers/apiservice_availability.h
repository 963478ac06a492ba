// APIServiceAvailabilityController: the Available condition of APIServices
// backed by a Service, as kube-aggregator's AvailableConditionController
// sets it before it tries the server.
//
// Local APIServices (no spec.service) are Available, reason Local. For one
// naming a Service: False with upstream's reasons and messages when the
// Service is missing (ServiceNotFound), does not serve spec.service.port
// (ServicePortError; default 443), has no Endpoints (EndpointsNotFound) or
// no ready address on that port (MissingEndpoints). kin proxies to no
// aggregated server, so it makes no discovery check: once endpoints are
// ready it claims neither way; a False it wrote is removed (AVAILABLE shows
// Unknown). A change of any Service or Endpoints queues the
// APIServices naming it; nothing is written when the condition is unchanged.
//
// Thread-safety: Start/Stop from one owner thread.
#pragma once

#include <optional>
#include <string>

#include "base/yaml.h"
#include "client/client.h"
#include "client/informer_factory.h"
#include "controllers/controller.h"
#include "controllers/work_queue.h"

namespace kin::controllers {

// The Available condition {type, status, reason, message} `apiservice`
// should have given its Service and Endpoints (null pointers when absent);
// nullopt when kin cannot judge (endpoints ready: only a discovery check
// could tell). Pure.
std::optional<Json> APIServiceAvailability(const Json& apiservice, const Json* service,
                                           const Json* endpoints);

class APIServiceAvailabilityController : public Controller {
 public:
  // `informers` and `client` must outlive the controller.
  APIServiceAvailabilityController(SharedInformerFactory& informers, Client& client);
  ~APIServiceAvailabilityController() override;

  std::string name() const override { return "apiservice-availability"; }
  void Start() override;
  void Stop() override;

 private:
  Result Sync(const std::string& key);
  void QueueFor(const Json* obj);

  ComponentClient identity_;
  Informer& apiservices_;
  Informer& services_;
  Informer& endpoints_;
  WorkQueue queue_;
  InformerSubscriptions subscriptions_;
  ReconcileWorkers workers_;
  StartStopOnce run_state_;
};

}  // namespace kin::controllers
