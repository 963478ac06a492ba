// e2e: admission webhooks with the real kubectl 1.33 against a cluster made
// by `kin cluster create`. The webhook server is `agnhost webhook` in a
// Deployment behind a Service, serving a certificate made here for
// e2e-webhook.wh-server.svc; a MutatingWebhookConfiguration (/add-label)
// labels new pods and a ValidatingWebhookConfiguration (/pods) rejects a pod
// with a container named webhook-disallow, both limited by namespaceSelector
// to namespaces labelled webhook-e2e=on. With the webhook scaled to 0,
// failurePolicy Fail rejects with kube-apiserver's message and Ignore admits.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>

#include "base/process.h"
#include "base/strings.h"
#include "base/tls.h"
#include "base/yaml.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin {
namespace {

using testing::Eventually;
using testing::TempDir;

class AdmissionWebhookE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { cluster_ = new testing::SuiteCluster('w'); }
  static void TearDownTestSuite() { delete cluster_; }
  void SetUp() override {
    ASSERT_TRUE(cluster_->error().empty()) << cluster_->error();
    k_ = std::make_unique<testing::KubectlRunner>("1.33", cluster_->Kubeconfig(),
                                                  std::chrono::seconds(120));
    if (!k_->installed()) {
      if (std::getenv("CI")) FAIL() << k_->binary() << " is missing";
      GTEST_SKIP() << k_->binary() << " is not installed";
    }
  }
  CommandResult Kubectl(std::vector<std::string> args, const std::string& input = "") {
    return k_->Run(args, input);
  }
  std::string Ok(std::vector<std::string> args, const std::string& input = "") {
    return k_->Ok(args, input);
  }
  std::string Pod(const std::string& name, const std::string& container) {
    return "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name +
           "\nspec:\n  containers:\n  - name: " + container +
           "\n    image: registry.k8s.io/e2e-test-images/agnhost:2.52\n    args: [pause]\n";
  }
  // The webhook configurations: one mutating, one validating, on the
  // Service, limited to namespaces labelled webhook-e2e=on.
  std::string Configs(const std::string& ca_b64, const std::string& policy) {
    std::string common =
        "  sideEffects: None\n  admissionReviewVersions: [v1]\n"
        "  failurePolicy: " +
        policy +
        "\n"
        "  namespaceSelector:\n    matchLabels: {webhook-e2e: \"on\"}\n"
        "  rules:\n  - operations: [CREATE]\n    apiGroups: [\"\"]\n"
        "    apiVersions: [v1]\n    resources: [pods]\n";
    auto client = [&](const std::string& path) {
      return "  clientConfig:\n    caBundle: " + ca_b64 +
             "\n    service:\n      namespace: wh-server\n      name: e2e-webhook\n"
             "      path: " +
             path + "\n";
    };
    return "apiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\n"
           "metadata:\n  name: e2e-mutating\nwebhooks:\n- name: add-label.kin.test\n" +
           client("/add-label") + common +
           "---\napiVersion: admissionregistration.k8s.io/v1\n"
           "kind: ValidatingWebhookConfiguration\n"
           "metadata:\n  name: e2e-validating\nwebhooks:\n- name: deny-pods.kin.test\n" +
           client("/pods") + common;
  }

  static testing::SuiteCluster* cluster_;
  std::unique_ptr<testing::KubectlRunner> k_;
};

testing::SuiteCluster* AdmissionWebhookE2E::cluster_ = nullptr;

TEST_F(AdmissionWebhookE2E, ServiceBackedWebhooksMutateRejectAndFollowFailurePolicy) {
  // The webhook server: a certificate for its Service name, agnhost webhook.
  tls::KeyPair ca = tls::GenerateCa("e2e-webhook-ca");
  tls::CertSpec spec;
  spec.common_name = "e2e-webhook.wh-server.svc";
  spec.dns_names = {"e2e-webhook.wh-server.svc"};
  spec.server_auth = true;
  tls::KeyPair leaf = tls::IssueCertificate(ca, spec);
  testing::WriteFile(k_->dir().File("tls.crt"), leaf.cert_pem);
  testing::WriteFile(k_->dir().File("tls.key"), leaf.key_pem);
  Ok({"create", "namespace", "wh-server"});
  Ok({"create", "secret", "tls", "webhook-tls", "-n", "wh-server", "--cert",
      k_->dir().File("tls.crt"), "--key", k_->dir().File("tls.key")});
  // The certificates go to /mnt: kin's built-in agnhost image has no
  // root filesystem of its own (it runs on the host's), where a volume's
  // mountPath must already exist.
  Ok({"apply", "-n", "wh-server", "-f", "-"},
     R"(apiVersion: apps/v1
kind: Deployment
metadata:
  name: e2e-webhook
spec:
  replicas: 1
  selector:
    matchLabels: {app: e2e-webhook}
  template:
    metadata:
      labels: {app: e2e-webhook}
    spec:
      containers:
      - name: webhook
        image: registry.k8s.io/e2e-test-images/agnhost:2.52
        args: [webhook, --tls-cert-file=/mnt/tls.crt, --tls-private-key-file=/mnt/tls.key, --port=8444]
        ports:
        - containerPort: 8444
        readinessProbe:
          httpGet: {path: /readyz, port: 8444, scheme: HTTPS}
          periodSeconds: 1
        volumeMounts:
        - {name: certs, mountPath: /mnt, readOnly: true}
      volumes:
      - name: certs
        secret: {secretName: webhook-tls}
---
apiVersion: v1
kind: Service
metadata:
  name: e2e-webhook
spec:
  selector: {app: e2e-webhook}
  ports:
  - port: 443
    targetPort: 8444
)");
  Ok({"rollout", "status", "deployment/e2e-webhook", "-n", "wh-server", "--timeout=90s"});
  ASSERT_TRUE(Eventually(
      [&] {
        return !Kubectl({"get", "endpoints", "e2e-webhook", "-n", "wh-server", "-o",
                         "jsonpath={.subsets[0].addresses[0].ip}"})
                    .out.empty();
      },
      std::chrono::seconds(60)));

  Ok({"create", "namespace", "wh-test"});
  Ok({"label", "namespace", "wh-test", "webhook-e2e=on"});
  Ok({"create", "namespace", "wh-skip"});
  const std::string ca_b64 = Base64Encode(ca.cert_pem);
  Ok({"apply", "-f", "-"}, Configs(ca_b64, "Fail"));
  // kubectl sees them, with their webhook counts.
  std::string table = Ok({"get", "mutatingwebhookconfigurations,validatingwebhookconfigurations"});
  EXPECT_NE(table.find("e2e-mutating"), std::string::npos) << table;
  EXPECT_NE(table.find("WEBHOOKS"), std::string::npos) << table;

  // The mutating webhook labels the pod.
  Ok({"create", "-n", "wh-test", "-f", "-"}, Pod("labelled", "c"));
  EXPECT_EQ(Ok({"get", "pod", "labelled", "-n", "wh-test", "-o",
                "jsonpath={.metadata.labels.added-label}"}),
            "yes");
  // The validating one rejects, as kube-apiserver words it.
  CommandResult r =
      Kubectl({"create", "-n", "wh-test", "-f", "-"}, Pod("rejected", "webhook-disallow"));
  EXPECT_FALSE(r.status.success()) << r.out;
  EXPECT_NE(r.err.find("Error from server: error when creating \"STDIN\": admission webhook "
                       "\"deny-pods.kin.test\" denied the request: the pod contains unwanted "
                       "container name;"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(Kubectl({"get", "pod", "rejected", "-n", "wh-test"}).status.success());
  // namespaceSelector: another namespace is left alone.
  Ok({"create", "-n", "wh-skip", "-f", "-"}, Pod("rejected", "webhook-disallow"));
  EXPECT_EQ(Ok({"get", "pod", "rejected", "-n", "wh-skip", "-o",
                "jsonpath={.metadata.labels.added-label}"}),
            "");

  // No webhook server: failurePolicy Fail rejects ...
  Ok({"scale", "deployment/e2e-webhook", "-n", "wh-server", "--replicas=0"});
  ASSERT_TRUE(Eventually(
      [&] {
        return Kubectl({"get", "endpoints", "e2e-webhook", "-n", "wh-server", "-o",
                        "jsonpath={.subsets[0].addresses[0].ip}"})
            .out.empty();
      },
      std::chrono::seconds(60)));
  r = Kubectl({"create", "-n", "wh-test", "-f", "-"}, Pod("down", "c"));
  EXPECT_FALSE(r.status.success()) << r.out;
  EXPECT_NE(r.err.find("Error from server (InternalError): error when creating \"STDIN\": "
                       "Internal error occurred: failed calling webhook \"add-label.kin.test\": "
                       "failed to call webhook: Post "
                       "\"https://e2e-webhook.wh-server.svc:443/add-label?timeout=10s\": no "
                       "endpoints available for service \"e2e-webhook\""),
            std::string::npos)
      << r.err;
  // ... and Ignore admits.
  Ok({"apply", "-f", "-"}, Configs(ca_b64, "Ignore"));
  Ok({"create", "-n", "wh-test", "-f", "-"}, Pod("down", "c"));
  EXPECT_EQ(
      Ok({"get", "pod", "down", "-n", "wh-test", "-o", "jsonpath={.metadata.labels.added-label}"}),
      "");
  Ok({"delete", "mutatingwebhookconfiguration", "e2e-mutating"});
  Ok({"delete", "validatingwebhookconfiguration", "e2e-validating"});
}

TEST_F(AdmissionWebhookE2E, ConfigurationsAreValidatedAndExplained) {
  CommandResult r = Kubectl({"apply", "-f", "-"},
                            "apiVersion: admissionregistration.k8s.io/v1\n"
                            "kind: ValidatingWebhookConfiguration\nmetadata:\n  name: bad\n"
                            "webhooks:\n- name: short\n  admissionReviewVersions: [v1]\n"
                            "  sideEffects: None\n"
                            "  clientConfig:\n    url: http://example.com/x\n");
  EXPECT_FALSE(r.status.success());
  EXPECT_NE(r.err.find("webhooks[0].name: Invalid value: \"short\": should be a domain with at "
                       "least three segments separated by dots"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("webhooks[0].clientConfig.url: Invalid value: \"http\": 'https' is the "
                       "only allowed URL scheme"),
            std::string::npos)
      << r.err;
  std::string explain = Ok({"explain", "validatingwebhookconfiguration.webhooks.failurePolicy"});
  EXPECT_NE(explain.find("FailurePolicy defines how unrecognized"), std::string::npos) << explain;
  std::string resources = Ok({"api-resources", "--api-group=admissionregistration.k8s.io"});
  EXPECT_NE(resources.find("mutatingwebhookconfigurations"), std::string::npos) << resources;
  EXPECT_NE(resources.find("validatingwebhookconfigurations"), std::string::npos) << resources;
}

}  // namespace
}  // namespace kin
