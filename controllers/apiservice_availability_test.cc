// The apiservice-availability controller: the condition on plain objects
// (upstream's reasons and messages), and the controller against a real
// registry (a missing Service, then one without Endpoints; a Local one
// left Available).
#include "controllers/apiservice_availability.h"

#include <gtest/gtest.h>

#include "client/resources.h"
#include "controllers/registry_fixture.h"
#include "testing/kernel_fixture.h"  // Eventually

namespace kin::controllers {
namespace {

using testing::Eventually;

Json Wardle() {
  return Json::parse(R"({"apiVersion":"apiregistration.k8s.io/v1","kind":"APIService",
    "metadata":{"name":"v1alpha1.wardle.k8s.io"},
    "spec":{"group":"wardle.k8s.io","version":"v1alpha1","groupPriorityMinimum":1000,
            "versionPriority":15,"service":{"name":"api","namespace":"wardle"}}})");
}

Json Svc(int port) {
  return {{"apiVersion", "v1"},
          {"kind", "Service"},
          {"metadata", {{"name", "api"}, {"namespace", "wardle"}}},
          {"spec", {{"ports", {{{"name", "https"}, {"port", port}}}}}}};
}

TEST(APIServiceAvailabilityTest, UpstreamReasons) {
  Json local = Wardle();
  local["spec"].erase("service");
  EXPECT_EQ((*APIServiceAvailability(local, nullptr, nullptr))["reason"], "Local");
  EXPECT_EQ((*APIServiceAvailability(local, nullptr, nullptr))["status"], "True");
  Json c = *APIServiceAvailability(Wardle(), nullptr, nullptr);
  EXPECT_EQ(c["status"], "False");
  EXPECT_EQ(c["reason"], "ServiceNotFound");
  EXPECT_EQ(c["message"], "service/api in \"wardle\" is not present");
  Json svc = Svc(8443);
  c = *APIServiceAvailability(Wardle(), &svc, nullptr);
  EXPECT_EQ(c["reason"], "ServicePortError");
  EXPECT_EQ(c["message"], "service/api in \"wardle\" is not listening on port 443");
  svc = Svc(443);
  c = *APIServiceAvailability(Wardle(), &svc, nullptr);
  EXPECT_EQ(c["reason"], "EndpointsNotFound");
  EXPECT_EQ(c["message"], "cannot find endpoints for service/api in \"wardle\"");
  Json eps = Json::parse(R"({"subsets":[{"notReadyAddresses":[{"ip":"10.244.1.5"}],
                                         "ports":[{"name":"https","port":8443}]}]})");
  c = *APIServiceAvailability(Wardle(), &svc, &eps);
  EXPECT_EQ(c["reason"], "MissingEndpoints");
  EXPECT_EQ(c["message"],
            "endpoints for service/api in \"wardle\" have no addresses with port name \"https\"");
  eps["subsets"][0]["addresses"] = Json::parse(R"([{"ip":"10.244.1.5"}])");
  // Ready endpoints: only a discovery check (which kin does not make) could tell.
  EXPECT_FALSE(APIServiceAvailability(Wardle(), &svc, &eps).has_value());
}

class APIServiceAvailabilityControllerTest : public RegistryTest {
 protected:
  void SetUp() override {
    informers_ = std::make_unique<SharedInformerFactory>(*client_);
    controller_ = std::make_unique<APIServiceAvailabilityController>(*informers_, *client_);
    informers_->Start();
    controller_->Start();
  }
  void TearDown() override {
    controller_->Stop();
    informers_->Stop();
  }
  const ResourceInfo& APIServices() {
    return *FindResource("apiregistration.k8s.io", "v1", "apiservices");
  }
  Client& cl() { return *client_; }  // the interface, with its default arguments
  Json Available(const std::string& name) {
    Json as = cl().Get(APIServices(), "", name);
    if (!as.contains("status")) return Json::object();
    for (const Json& c : as["status"].value("conditions", Json::array())) {
      if (c["type"] == "Available") return c;
    }
    return Json::object();
  }
  std::unique_ptr<SharedInformerFactory> informers_;
  std::unique_ptr<APIServiceAvailabilityController> controller_;
};

TEST_F(APIServiceAvailabilityControllerTest, MissingServiceThenMissingEndpoints) {
  cl().Create(APIServices(), "", Wardle());
  EXPECT_TRUE(Eventually([&] { return Available("v1alpha1.wardle.k8s.io").value("reason", "") ==
                                      "ServiceNotFound"; }));
  EXPECT_EQ(Available("v1alpha1.wardle.k8s.io")["status"], "False");
  cl().Create(NamespacesResource(), "",
                  Json{{"apiVersion", "v1"}, {"kind", "Namespace"},
                       {"metadata", {{"name", "wardle"}}}});
  cl().Create(ServicesResource(), "wardle", Svc(443));
  EXPECT_TRUE(Eventually([&] { return Available("v1alpha1.wardle.k8s.io").value("reason", "") ==
                                      "EndpointsNotFound"; }));
  // Ready endpoints: the False is taken back (kin makes no discovery check).
  cl().Create(EndpointsResource(), "wardle",
              Json::parse(R"({"apiVersion":"v1","kind":"Endpoints",
                "metadata":{"name":"api","namespace":"wardle"},
                "subsets":[{"addresses":[{"ip":"10.244.1.5"}],
                            "ports":[{"name":"https","port":8443}]}]})"));
  EXPECT_TRUE(Eventually([&] { return Available("v1alpha1.wardle.k8s.io").empty(); }));
  // The Local ones the registry wrote at start stay as they are.
  EXPECT_EQ(Available("v1.apps")["reason"], "Local");
  EXPECT_EQ(Available("v1.apps")["status"], "True");
}

}  // namespace
}  // namespace kin::controllers
