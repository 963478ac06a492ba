// e2e: PodTemplate, LimitRange and ResourceQuota with real kubectl (1.27,
// 1.30, 1.33) against a cluster made by `kin cluster create`: a quota
// pods=2 refuses the third pod with kube-apiserver's message and `kubectl
// get quota` shows 2/2; a LimitRange gives a pod its default requests and
// limits and refuses a too-big limit; a Service patched to NodePort is
// charged its node port and refused past the quota; pod templates are
// created, listed and deleted.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>

#include "base/yaml.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin {
namespace {

class QuotaE2E : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() { cluster_ = new testing::SuiteCluster('u'); }
  static void TearDownTestSuite() { delete cluster_; }
  void SetUp() override {
    ASSERT_TRUE(cluster_->error().empty()) << cluster_->error();
    k_ = std::make_unique<testing::KubectlRunner>(GetParam(), cluster_->Kubeconfig());
    if (!k_->installed()) {
      if (std::getenv("CI")) FAIL() << k_->binary() << " is missing";
      GTEST_SKIP() << k_->binary() << " is not installed";
    }
    // A namespace per test and version: quotas count per namespace.
    static int tests_run = 0;
    ns_ = "qt-" + std::string(GetParam()).replace(1, 1, "-") + "-" + std::to_string(++tests_run);
    k_->Ok({"create", "namespace", ns_});
  }
  void TearDown() override {
    if (!ns_.empty() && k_) k_->Run({"delete", "namespace", ns_, "--wait=false"});
  }
  std::vector<std::string> N(std::vector<std::string> args) {
    args.push_back("-n");
    args.push_back(ns_);
    return args;
  }
  std::string Ok(std::vector<std::string> args, const std::string& input = "") {
    return k_->Ok(N(std::move(args)), input);
  }
  CommandResult Run(std::vector<std::string> args, const std::string& input = "") {
    return k_->Run(N(std::move(args)), input);
  }
  static std::string Pod(const std::string& name, const std::string& resources = "") {
    return "apiVersion: v1\nkind: Pod\nmetadata: {name: " + name +
           "}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n"
           "    image: busybox:1.36\n    command: [sleep, '3600']\n" +
           resources;
  }

  static testing::SuiteCluster* cluster_;
  std::unique_ptr<testing::KubectlRunner> k_;
  std::string ns_;
};

testing::SuiteCluster* QuotaE2E::cluster_ = nullptr;

TEST_P(QuotaE2E, PodQuotaRefusesTheThirdPod) {
  EXPECT_NE(Ok({"create", "quota", "q", "--hard=pods=2,requests.cpu=1"}).find("created"),
            std::string::npos);
  // Admission enforces a quota once the controller has written its status.
  ASSERT_TRUE(testing::Eventually(
      [&] {
        return Run({"get", "quota", "q", "-o", "jsonpath={.status.used.pods}"}).out == "0";
      },
      std::chrono::seconds(30)));
  // No cpu request: refused by the requests.cpu quota.
  CommandResult bare = Run({"create", "-f", "-"}, Pod("bare"));
  EXPECT_FALSE(bare.status.success());
  EXPECT_NE(bare.err.find("pods \"bare\" is forbidden: failed quota: q: must specify "
                          "requests.cpu for: c"),
            std::string::npos)
      << bare.err;
  const std::string small = "    resources: {requests: {cpu: 100m}}\n";
  Ok({"create", "-f", "-"}, Pod("p1", small));
  Ok({"create", "-f", "-"}, Pod("p2", small));
  CommandResult third = Run({"create", "-f", "-"}, Pod("p3", small));
  EXPECT_FALSE(third.status.success());
  EXPECT_NE(third.err.find("Error from server (Forbidden)"), std::string::npos) << third.err;
  EXPECT_NE(third.err.find("pods \"p3\" is forbidden: exceeded quota: q, requested: pods=1, "
                           "used: pods=2, limited: pods=2"),
            std::string::npos)
      << third.err;
  std::string table = Ok({"get", "quota"});
  EXPECT_NE(table.find("REQUEST"), std::string::npos) << table;
  EXPECT_NE(table.find("pods: 2/2, requests.cpu: 200m/1"), std::string::npos) << table;
  std::string described = Ok({"describe", "quota", "q"});
  EXPECT_NE(described.find("Resource"), std::string::npos) << described;
  EXPECT_NE(described.find("pods"), std::string::npos) << described;
  EXPECT_NE(described.find("200m"), std::string::npos) << described;
  // A deleted pod frees its slot.
  Ok({"delete", "pod", "p1", "--wait=false"});
  ASSERT_TRUE(testing::Eventually(
      [&] {
        return Run({"get", "quota", "q", "-o", "jsonpath={.status.used.pods}"}).out == "1";
      },
      std::chrono::seconds(60)));
  Ok({"create", "-f", "-"}, Pod("p3", small));
  EXPECT_EQ(Ok({"get", "quota", "q", "-o", "jsonpath={.status.used.pods}"}), "2");
}

TEST_P(QuotaE2E, ServiceTurnedNodePortIsCharged) {
  Ok({"create", "quota", "q", "--hard=services.nodeports=1,services.loadbalancers=1"});
  ASSERT_TRUE(testing::Eventually(
      [&] {
        return Run({"get", "quota", "q", "-o", "jsonpath={.status.used.services\\.nodeports}"})
                   .out == "0";
      },
      std::chrono::seconds(30)));
  Ok({"create", "service", "clusterip", "a", "--tcp=80:80"});
  Ok({"create", "service", "clusterip", "b", "--tcp=80:80"});
  // kube-apiserver evaluates a Service's updates: a type change is charged.
  Ok({"patch", "svc", "a", "-p", R"({"spec":{"type":"NodePort"}})"});
  EXPECT_NE(Ok({"get", "svc", "a", "-o", "jsonpath={.spec.ports[0].nodePort}"}), "");
  EXPECT_EQ(Ok({"get", "quota", "q", "-o", "jsonpath={.status.used.services\\.nodeports}"}),
            "1");
  CommandResult refused = Run({"patch", "svc", "b", "-p", R"({"spec":{"type":"NodePort"}})"});
  EXPECT_FALSE(refused.status.success());
  EXPECT_NE(refused.err.find("Error from server (Forbidden): services \"b\" is forbidden: "
                             "exceeded quota: q, requested: services.nodeports=1, used: "
                             "services.nodeports=1, limited: services.nodeports=1"),
            std::string::npos)
      << refused.err;
  EXPECT_EQ(Ok({"get", "svc", "b", "-o", "jsonpath={.spec.type}"}), "ClusterIP");
  // NodePort -> LoadBalancer: the port was charged, the balancer is new and fits.
  Ok({"patch", "svc", "a", "-p", R"({"spec":{"type":"LoadBalancer"}})"});
  EXPECT_EQ(Ok({"get", "quota", "q", "-o",
                "jsonpath={.status.used.services\\.nodeports} "
                "{.status.used.services\\.loadbalancers}"}),
            "1 1");
  // Back to ClusterIP: the node port and externalTrafficPolicy go with the type.
  Ok({"patch", "svc", "a", "-p", R"({"spec":{"type":"ClusterIP"}})"});
  EXPECT_EQ(Ok({"get", "svc", "a", "-o",
                "jsonpath={.spec.ports[0].nodePort}{.spec.externalTrafficPolicy}"}),
            "");
}

TEST_P(QuotaE2E, LimitRangeDefaultsAndRefuses) {
  Ok({"create", "-f", "-"}, R"(apiVersion: v1
kind: LimitRange
metadata: {name: limits}
spec:
  limits:
  - type: Container
    default: {cpu: 300m, memory: 128Mi}
    defaultRequest: {cpu: 200m, memory: 64Mi}
    max: {cpu: 500m}
)");
  std::string lr = Ok({"get", "limits"});
  EXPECT_NE(lr.find("CREATED AT"), std::string::npos) << lr;
  EXPECT_NE(lr.find("limits"), std::string::npos) << lr;
  Ok({"create", "-f", "-"}, Pod("defaulted"));
  EXPECT_EQ(Ok({"get", "pod", "defaulted", "-o",
                "jsonpath={.spec.containers[0].resources.requests.cpu} "
                "{.spec.containers[0].resources.requests.memory} "
                "{.spec.containers[0].resources.limits.cpu} "
                "{.spec.containers[0].resources.limits.memory}"}),
            "200m 64Mi 300m 128Mi");
  EXPECT_EQ(Ok({"get", "pod", "defaulted", "-o",
                "jsonpath={.metadata.annotations.kubernetes\\.io/limit-ranger}"}),
            "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit "
            "for container c");
  CommandResult big = Run({"create", "-f", "-"},
                          Pod("big", "    resources: {limits: {cpu: \"1\"}}\n"));
  EXPECT_FALSE(big.status.success());
  EXPECT_NE(big.err.find("pods \"big\" is forbidden: maximum cpu usage per Container is 500m, "
                         "but limit is 1"),
            std::string::npos)
      << big.err;
  // An invalid LimitRange names its field.
  CommandResult bad = Run({"create", "-f", "-"}, R"(apiVersion: v1
kind: LimitRange
metadata: {name: bad}
spec:
  limits:
  - type: Container
    min: {cpu: "2"}
    max: {cpu: "1"}
)");
  EXPECT_FALSE(bad.status.success());
  EXPECT_NE(bad.err.find("spec.limits[0].min[cpu]"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("min value 2 is greater than max value 1"), std::string::npos)
      << bad.err;
}

TEST_P(QuotaE2E, PodTemplatesAreServed) {
  Ok({"create", "-f", "-"}, R"(apiVersion: v1
kind: PodTemplate
metadata: {name: tmpl}
template:
  metadata:
    labels: {app: web}
  spec:
    containers:
    - name: web
      image: nginx:1.25
)");
  std::string table = Ok({"get", "podtemplates"});
  EXPECT_NE(table.find("CONTAINERS"), std::string::npos) << table;
  EXPECT_NE(table.find("POD LABELS"), std::string::npos) << table;
  EXPECT_NE(table.find("nginx:1.25"), std::string::npos) << table;
  EXPECT_NE(table.find("app=web"), std::string::npos) << table;
  EXPECT_EQ(Ok({"get", "podtemplate", "tmpl", "-o",
                "jsonpath={.template.spec.containers[0].name}"}),
            "web");
  CommandResult bad = Run({"create", "-f", "-"}, R"(apiVersion: v1
kind: PodTemplate
metadata: {name: bad}
template:
  spec:
    containers:
    - name: web
)");
  EXPECT_FALSE(bad.status.success());
  EXPECT_NE(bad.err.find("template.spec.containers[0].image"), std::string::npos) << bad.err;
  std::string explained = Ok({"explain", "resourcequota.spec"});
  EXPECT_NE(explained.find("hard"), std::string::npos) << explained;
  EXPECT_NE(Ok({"delete", "podtemplate", "tmpl"}).find("deleted"), std::string::npos);
  EXPECT_NE(Run({"get", "podtemplate", "tmpl"}).err.find("NotFound"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Versions, QuotaE2E, ::testing::Values("1.27", "1.30", "1.33"),
                         [](const auto& info) {
                           std::string n = "v" + info.param;
                           std::replace(n.begin(), n.end(), '.', '_');
                           return n;
                         });

}  // namespace
}  // namespace kin
