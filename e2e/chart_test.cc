// e2e: a chart-shaped install with real kubectl (1.27 and 1.33), issue 15's
// "real charts and operators run unchanged". One multi-document file, as
// `helm template` prints it: a Namespace, a CRD with a structural schema and
// a status subresource, an operator's ServiceAccount, ClusterRole and
// binding, its Deployment (agnhost inclusterclient: client-go's in-cluster
// config), a webhook server (Secret with a serving certificate, Deployment,
// Service) with a mutating (failurePolicy Ignore) and a validating
// (failurePolicy Fail) configuration carrying its caBundle, and a headless
// Service with a StatefulSet whose pods get a volume claim each. It goes in
// with one `kubectl apply -f`; applied again (client-side, then server-side)
// nothing changes; the custom objects come in a second apply once the CRD
// is established (the kind is unknown to kubectl's discovery before, as on
// any cluster; charts use hooks for that). Then everything works: rollouts,
// in-cluster API calls, access exactly per the roles (can-i, and kubectl
// with the operator's token, kube-apiserver's 403), the status subresource,
// the webhooks and their failure policies, a claim's data across its pod's
// deletion; `kubectl delete -f` takes it all away.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <sstream>

#include "base/process.h"
#include "base/strings.h"
#include "base/tls.h"
#include "base/yaml.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin {
namespace {

using testing::Eventually;
using namespace std::chrono_literals;

// `s` with every `from` replaced by `to`.
std::string ReplaceAll(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
  return s;
}

// The chart for one release: its namespace is the release's name, and the
// cluster-scoped objects carry it as a prefix, as charts name them, so
// that the two kubectl versions' installs never meet (but for the CRD,
// which is the same for both, as a CRD of a chart is).
std::string Chart(const std::string& ns, const std::string& cert_pem, const std::string& key_pem,
                  const std::string& ca_pem) {
  std::string y = R"(apiVersion: v1
kind: Namespace
metadata:
  name: @NS@
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: string, enum: [small, large]}
              replicas: {type: integer, minimum: 0, default: 1}
          status:
            type: object
            properties:
              phase: {type: string}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: operator
  namespace: @NS@
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: @NS@-operator
rules:
- apiGroups: [example.com]
  resources: [widgets, widgets/status]
  verbs: [get, list, watch, update]
- apiGroups: [""]
  resources: [pods]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: @NS@-operator
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: @NS@-operator
subjects:
- kind: ServiceAccount
  name: operator
  namespace: @NS@
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: operator
  namespace: @NS@
spec:
  replicas: 1
  selector:
    matchLabels: {app: operator}
  template:
    metadata:
      labels: {app: operator}
    spec:
      serviceAccountName: operator
      terminationGracePeriodSeconds: 1
      containers:
      - name: operator
        image: registry.k8s.io/e2e-test-images/agnhost:2.52
        args: [inclusterclient, --poll-interval=1]
---
apiVersion: v1
kind: Secret
metadata:
  name: webhook-tls
  namespace: @NS@
type: kubernetes.io/tls
data:
  tls.crt: @CERT@
  tls.key: @KEY@
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: webhook
  namespace: @NS@
spec:
  replicas: 1
  selector:
    matchLabels: {app: webhook}
  template:
    metadata:
      labels: {app: webhook}
    spec:
      terminationGracePeriodSeconds: 1
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
  name: webhook
  namespace: @NS@
spec:
  selector: {app: webhook}
  ports:
  - port: 443
    targetPort: 8444
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: @NS@-mutate
webhooks:
- name: mutate.chart.example.com
  clientConfig:
    caBundle: @CABUNDLE@
    service: {namespace: @NS@, name: webhook, path: /add-label}
  failurePolicy: Ignore
  sideEffects: None
  admissionReviewVersions: [v1]
  namespaceSelector:
    matchLabels: {kubernetes.io/metadata.name: @NS@}
  objectSelector:
    matchLabels: {chart.example.com/mutate: "true"}
  rules:
  - {operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [pods]}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: @NS@-validate
webhooks:
- name: validate.chart.example.com
  clientConfig:
    caBundle: @CABUNDLE@
    service: {namespace: @NS@, name: webhook, path: /pods}
  failurePolicy: Fail
  sideEffects: None
  admissionReviewVersions: [v1]
  namespaceSelector:
    matchLabels: {kubernetes.io/metadata.name: @NS@}
  objectSelector:
    matchLabels: {chart.example.com/validate: "true"}
  rules:
  - {operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [pods]}
---
apiVersion: v1
kind: Service
metadata:
  name: db
  namespace: @NS@
spec:
  clusterIP: None
  selector: {app: db}
  ports:
  - port: 5432
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
  namespace: @NS@
spec:
  serviceName: db
  replicas: 1
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: db
        image: busybox
        command: [sh, -c, 'sleep 3600']
        volumeMounts:
        - {name: data, mountPath: /data}
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 16Mi
)";
  y = ReplaceAll(y, "@CABUNDLE@", Base64Encode(ca_pem));
  y = ReplaceAll(y, "@CERT@", Base64Encode(cert_pem));
  y = ReplaceAll(y, "@KEY@", Base64Encode(key_pem));
  return ReplaceAll(y, "@NS@", ns);
}

// What the chart makes, as `kubectl apply` names them, in the file's order.
std::vector<std::string> ChartObjects(const std::string& ns) {
  return {"namespace/" + ns,
          "customresourcedefinition.apiextensions.k8s.io/widgets.example.com",
          "serviceaccount/operator",
          "clusterrole.rbac.authorization.k8s.io/" + ns + "-operator",
          "clusterrolebinding.rbac.authorization.k8s.io/" + ns + "-operator",
          "deployment.apps/operator",
          "secret/webhook-tls",
          "deployment.apps/webhook",
          "service/webhook",
          "mutatingwebhookconfiguration.admissionregistration.k8s.io/" + ns + "-mutate",
          "validatingwebhookconfiguration.admissionregistration.k8s.io/" + ns + "-validate",
          "service/db",
          "statefulset.apps/db"};
}

std::string Widget(const std::string& ns, const std::string& name, const std::string& size) {
  return "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: " + name +
         "\n  namespace: " + ns + "\nspec:\n  size: " + size + "\n";
}

// A pod of the release's namespace with `labels` (flow style) and one container.
std::string Pod(const std::string& name, const std::string& labels, const std::string& container) {
  return "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name + "\n  labels: " + labels +
         "\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: " + container +
         "\n    image: registry.k8s.io/e2e-test-images/agnhost:2.52\n    args: [pause]\n";
}

// The lines of `out` (kubectl apply's "<kind>/<name> <action>" lines).
std::vector<std::string> Lines(const std::string& out) {
  std::vector<std::string> lines;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

std::vector<std::string> WithAction(const std::vector<std::string>& objects,
                                    const std::string& action) {
  std::vector<std::string> lines;
  for (const std::string& o : objects) lines.push_back(o + " " + action);
  return lines;
}

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

class ChartE2E : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() { cluster_ = new testing::SuiteCluster('h'); }
  static void TearDownTestSuite() { delete cluster_; }
  void SetUp() override {
    ASSERT_TRUE(cluster_->error().empty()) << cluster_->error();
    k_ = std::make_unique<testing::KubectlRunner>(GetParam(), cluster_->Kubeconfig(),
                                                  std::chrono::seconds(120));
    if (!k_->installed()) {
      if (std::getenv("CI")) FAIL() << k_->binary() << " is missing";
      GTEST_SKIP() << k_->binary() << " is not installed";
    }
    std::string v = GetParam();
    v.erase(std::remove(v.begin(), v.end(), '.'), v.end());
    ns_ = "chart-" + v;
    chart_ = k_->dir().File("chart.yaml");
  }
  // A failed run must not leave its release to the next one (the CRD is
  // shared): uninstall it, waiting.
  void TearDown() override {
    if (HasFailure() && !chart_.empty()) {
      std::string log =
          testing::ReadFile(cluster_->StateRoot() + "/" + cluster_->name() + "/serve.log");
      std::cout << "serve log (tail):\n"
                << log.substr(log.size() > 8000 ? log.size() - 8000 : 0) << "\n";
      Kubectl({"delete", "-f", chart_, "--ignore-not-found", "--timeout=90s"});
    }
  }
  CommandResult Kubectl(std::vector<std::string> args, const std::string& input = "") {
    return k_->Run(args, input);
  }
  std::string Ok(std::vector<std::string> args, const std::string& input = "") {
    return k_->Ok(args, input);
  }
  std::vector<std::string> N(std::vector<std::string> args) {
    args.push_back("-n");
    args.push_back(ns_);
    return args;
  }
  std::string Operator() const { return "system:serviceaccount:" + ns_ + ":operator"; }
  // `kubectl auth can-i VERB RESOURCE -n NS --as=<the operator> EXTRA`'s answer.
  std::string CanI(const std::string& verb, const std::string& resource,
                   const std::string& extra = "") {
    std::vector<std::string> args = {"auth", "can-i", verb, resource, "--as=" + Operator()};
    if (!extra.empty()) args.push_back(extra);
    return Kubectl(N(args)).out;
  }
  std::string ResourceVersion(const std::string& object) {
    return Ok(N({"get", object, "-o", "jsonpath={.metadata.resourceVersion}"}));
  }

  static testing::SuiteCluster* cluster_;
  std::unique_ptr<testing::KubectlRunner> k_;
  std::string ns_, chart_;
};

testing::SuiteCluster* ChartE2E::cluster_ = nullptr;

TEST_P(ChartE2E, InstallWorksAndUninstalls) {
  const auto start = std::chrono::steady_clock::now();
  // The webhook's serving certificate, as a chart's genCA/genSignedCert.
  tls::KeyPair ca = tls::GenerateCa("chart-webhook-ca");
  tls::CertSpec spec;
  spec.common_name = "webhook." + ns_ + ".svc";
  spec.dns_names = {"webhook." + ns_ + ".svc"};
  spec.server_auth = true;
  tls::KeyPair leaf = tls::IssueCertificate(ca, spec);
  testing::WriteFile(chart_, Chart(ns_, leaf.cert_pem, leaf.key_pem, ca.cert_pem));
  const std::vector<std::string> objects = ChartObjects(ns_);

  // One apply makes everything; again, nothing changes. kubectl still
  // reports "configured" (a non-empty patch, which changes nothing) where
  // the API server defaulted a member of a list that is replaced whole, as
  // kube-apiserver does: a webhook's rules get scope "*", a StatefulSet's
  // volumeClaimTemplates volumeMode Filesystem and status phase Pending.
  EXPECT_EQ(Lines(Ok({"apply", "-f", chart_})), WithAction(objects, "created"));
  std::vector<std::string> again = WithAction(objects, "unchanged");
  for (std::string& line : again) {
    if (line.find("webhookconfiguration") != std::string::npos || line.starts_with("statefulset")) {
      line = ReplaceAll(line, "unchanged", "configured");
    }
  }
  std::map<std::string, std::string> versions;
  for (const std::string& o :
       std::vector<std::string>{"mutatingwebhookconfiguration/" + ns_ + "-mutate",
                                "validatingwebhookconfiguration/" + ns_ + "-validate"}) {
    versions[o] = ResourceVersion(o);
  }
  EXPECT_EQ(Lines(Ok({"apply", "-f", chart_})), again);
  for (const auto& [o, rv] : versions) EXPECT_EQ(ResourceVersion(o), rv) << o;
  EXPECT_EQ(Ok(N({"get", "statefulset", "db", "-o", "jsonpath={.metadata.generation}"})), "1");
  // kubectl diff: the live objects are what the file makes.
  CommandResult diff = Kubectl({"diff", "-f", chart_});
  EXPECT_TRUE(diff.status.success()) << diff.out << diff.err;
  EXPECT_EQ(diff.out, "");
  // Server-side apply over the client-side one takes the same fields over
  // without a conflict or a change of spec; applied once more, no object
  // is even written.
  EXPECT_EQ(Lines(Ok({"apply", "--server-side", "-f", chart_})),
            WithAction(objects, "serverside-applied"));
  versions.clear();
  for (const std::string& o :
       std::vector<std::string>{"serviceaccount/operator", "secret/webhook-tls", "service/webhook",
                                "clusterrole/" + ns_ + "-operator",
                                "validatingwebhookconfiguration/" + ns_ + "-validate"}) {
    versions[o] = ResourceVersion(o);
  }
  EXPECT_EQ(Lines(Ok({"apply", "--server-side", "-f", chart_})),
            WithAction(objects, "serverside-applied"));
  for (const auto& [o, rv] : versions) EXPECT_EQ(ResourceVersion(o), rv) << o;
  EXPECT_EQ(Ok(N({"get", "deployment", "operator", "-o", "jsonpath={.metadata.generation}"})), "1");

  // Everything becomes available.
  for (const char* workload : {"deployment/operator", "deployment/webhook", "statefulset/db"}) {
    std::string out = Ok(N({"rollout", "status", workload, "--timeout=90s"}));
    // Deployments: "successfully rolled out"; StatefulSets: "... complete ...".
    EXPECT_TRUE(out.find("successfully rolled out") != std::string::npos ||
                out.find("complete") != std::string::npos)
        << workload << ": " << out;
  }
  EXPECT_EQ(Ok(N({"get", "pvc", "data-db-0", "-o", "jsonpath={.status.phase}"})), "Bound");

  // The operator reaches the API with its in-cluster config, with success
  // (agnhost inclusterclient logs status=failed for a call that failed).
  std::string logs;
  EXPECT_TRUE(Eventually(
      [&] {
        logs = Kubectl(N({"logs", "deployment/operator"})).out;
        return logs.find("calling /healthz") != std::string::npos &&
               logs.find("authz_header=") != std::string::npos;
      },
      20s))
      << logs;
  EXPECT_EQ(logs.find("status=failed"), std::string::npos) << logs;

  // Access per the roles.
  EXPECT_EQ(CanI("update", "widgets.example.com"), "yes\n");
  EXPECT_EQ(CanI("update", "widgets.example.com", "--subresource=status"), "yes\n");
  EXPECT_EQ(CanI("get", "pods"), "yes\n");
  EXPECT_EQ(CanI("delete", "pods"), "no\n");
  EXPECT_EQ(CanI("create", "widgets.example.com"), "no\n");
  EXPECT_EQ(CanI("get", "secrets"), "no\n");
  EXPECT_EQ(CanI("list", "secrets"), "no\n");

  // The custom objects, once the CRD is established.
  Ok({"wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=30s"});
  const std::string widgets = k_->dir().File("widgets.yaml");
  testing::WriteFile(widgets, Widget(ns_, "w1", "small") + "---\n" + Widget(ns_, "w2", "large"));
  EXPECT_EQ(
      Lines(Ok({"apply", "-f", widgets})),
      (std::vector<std::string>{"widget.example.com/w1 created", "widget.example.com/w2 created"}));
  EXPECT_EQ(Ok(N({"get", "widget", "w2", "-o", "jsonpath={.spec.replicas}"})), "1");

  // The operator's token: what the role grants works, the rest is 403.
  const std::string token = Trimmed(Ok(N({"create", "token", "operator"})));
  CommandResult r = k_->RunWithToken(token, N({"get", "widgets", "-o", "name"}));
  EXPECT_TRUE(r.status.success()) << r.err;
  EXPECT_EQ(r.out, "widget.example.com/w1\nwidget.example.com/w2\n");
  const std::string w3 = k_->dir().File("w3.yaml");
  testing::WriteFile(w3, Widget(ns_, "w3", "small"));
  r = k_->RunWithToken(token, {"create", "-f", w3});
  EXPECT_FALSE(r.status.success()) << r.out;
  EXPECT_NE(r.err.find("Error from server (Forbidden): error when creating \"" + w3 +
                       "\": widgets.example.com is forbidden: User \"" + Operator() +
                       "\" cannot create resource \"widgets\" in API group \"example.com\" in "
                       "the namespace \"" +
                       ns_ + "\""),
            std::string::npos)
      << r.err;
  r = k_->RunWithToken(token, N({"get", "secrets"}));
  EXPECT_FALSE(r.status.success()) << r.out;
  EXPECT_NE(r.err.find("Error from server (Forbidden): secrets is forbidden: User \"" + Operator() +
                       "\" cannot list resource \"secrets\" in API group \"\" in the namespace "
                       "\"" +
                       ns_ + "\""),
            std::string::npos)
      << r.err;
  const std::string db0 = "db-0";
  r = k_->RunWithToken(token, N({"get", "pod", db0, "-o", "name"}));
  EXPECT_EQ(r.out, "pod/db-0\n") << r.err;
  r = k_->RunWithToken(token, N({"delete", "pod", db0}));
  EXPECT_FALSE(r.status.success()) << r.out;
  EXPECT_NE(
      r.err.find("Error from server (Forbidden): pods \"db-0\" is forbidden: User \"" + Operator() +
                 "\" cannot delete resource \"pods\" in API group \"\" in "
                 "the namespace \"" +
                 ns_ + "\""),
      std::string::npos)
      << r.err;

  // The operator writes a widget's status (update on widgets/status, a PUT).
  Json w1 = Json::parse(Ok(N({"get", "widget", "w1", "-o", "json"})));
  w1["status"] = {{"phase", "Ready"}};
  const std::string w1_file = k_->dir().File("w1-status.json");
  testing::WriteFile(w1_file, w1.dump());
  r = k_->RunWithToken(token, {"replace", "--subresource=status", "-f", w1_file});
  EXPECT_TRUE(r.status.success()) << r.out << r.err;
  Json updated = Json::parse(Ok(N({"get", "widget", "w1", "-o", "json"})));
  EXPECT_EQ(updated["status"].value("phase", ""), "Ready") << updated.dump();
  EXPECT_EQ(updated["metadata"]["generation"], 1);
  // A write of the main resource does not change the status.
  w1 = updated;
  w1["spec"]["size"] = "large";
  w1["status"]["phase"] = "Changed";
  testing::WriteFile(w1_file, w1.dump());
  r = k_->RunWithToken(token, {"replace", "-f", w1_file});
  EXPECT_TRUE(r.status.success()) << r.out << r.err;
  updated = Json::parse(Ok(N({"get", "widget", "w1", "-o", "json"})));
  EXPECT_EQ(updated["spec"].value("size", ""), "large");
  EXPECT_EQ(updated["status"].value("phase", ""), "Ready");
  EXPECT_EQ(updated["metadata"]["generation"], 2);

  // The webhooks, once their Service has the server's address (the
  // Endpoints follow the pod's readiness a moment after the rollout, on any
  // cluster): the mutating one labels a pod that asks for it ...
  ASSERT_TRUE(Eventually(
      [&] {
        return !Kubectl(N({"get", "endpoints", "webhook", "-o",
                           "jsonpath={.subsets[0].addresses[0].ip}"}))
                    .out.empty();
      },
      30s));
  Ok(N({"create", "-f", "-"}), Pod("mutated", "{chart.example.com/mutate: \"true\"}", "c"));
  EXPECT_EQ(Ok(N({"get", "pod", "mutated", "-o", "jsonpath={.metadata.labels.added-label}"})),
            "yes");
  // ... the validating one rejects a pod with a container it forbids, and
  // admits one without.
  r = Kubectl(N({"create", "-f", "-"}),
              Pod("rejected", "{chart.example.com/validate: \"true\"}", "webhook-disallow"));
  EXPECT_FALSE(r.status.success()) << r.out;
  EXPECT_NE(r.err.find("Error from server: error when creating \"STDIN\": admission webhook "
                       "\"validate.chart.example.com\" denied the request: the pod contains "
                       "unwanted container name;"),
            std::string::npos)
      << r.err;
  Ok(N({"create", "-f", "-"}), Pod("validated", "{chart.example.com/validate: \"true\"}", "c"));
  // With the webhook server down, Fail rejects and Ignore admits.
  Ok(N({"scale", "deployment/webhook", "--replicas=0"}));
  ASSERT_TRUE(Eventually(
      [&] {
        return Kubectl(N({"get", "endpoints", "webhook", "-o",
                          "jsonpath={.subsets[0].addresses[0].ip}"}))
            .out.empty();
      },
      60s));
  r = Kubectl(N({"create", "-f", "-"}),
              Pod("refused", "{chart.example.com/validate: \"true\"}", "c"));
  EXPECT_FALSE(r.status.success()) << r.out;
  EXPECT_NE(r.err.find("Error from server (InternalError): error when creating \"STDIN\": "
                       "Internal error occurred: failed calling webhook "
                       "\"validate.chart.example.com\": failed to call webhook: Post "
                       "\"https://webhook." +
                       ns_ +
                       ".svc:443/pods?timeout=10s\": no endpoints available for service "
                       "\"webhook\""),
            std::string::npos)
      << r.err;
  Ok(N({"create", "-f", "-"}), Pod("ignored", "{chart.example.com/mutate: \"true\"}", "c"));
  EXPECT_EQ(Ok(N({"get", "pod", "ignored", "-o", "jsonpath={.metadata.labels.added-label}"})), "");

  // A claim's data outlives its pod: the StatefulSet makes db-0 again, on
  // the same claim, and it reads what the first one wrote.
  Ok({"exec", "-n", ns_, db0, "--", "sh", "-c", "echo chart-data > /data/file"});
  const std::string uid = Ok(N({"get", "pod", db0, "-o", "jsonpath={.metadata.uid}"}));
  Ok(N({"delete", "pod", db0}));
  EXPECT_TRUE(Eventually(
      [&] {
        CommandResult p = Kubectl(N({"get", "pod", db0, "-o",
                                     "jsonpath={.metadata.uid} "
                                     "{.status.conditions[?(@.type==\"Ready\")].status}"}));
        return p.status.success() && p.out.rfind(uid, 0) != 0 && p.out.ends_with(" True");
      },
      60s));
  EXPECT_EQ(Ok({"exec", "-n", ns_, db0, "--", "cat", "/data/file"}), "chart-data\n");

  // Uninstall: everything of the chart goes, the widgets with their CRD.
  const auto uninstall = std::chrono::steady_clock::now();
  // kubectl prints `KIND "NAME" deleted` (1.33: `... deleted from NS
  // namespace` for namespaced objects).
  std::vector<std::string> deleted = Lines(Ok({"delete", "-f", chart_, "--timeout=90s"}));
  ASSERT_EQ(deleted.size(), objects.size()) << Join(deleted, "\n");
  for (size_t i = 0; i < objects.size(); ++i) {
    const std::string name = objects[i].substr(objects[i].find('/') + 1);
    EXPECT_NE(deleted[i].find(" \"" + name + "\" deleted"), std::string::npos) << deleted[i];
  }
  EXPECT_FALSE(Kubectl({"get", "namespace", ns_}).status.success());
  EXPECT_FALSE(Kubectl({"get", "crd", "widgets.example.com"}).status.success());
  CommandResult gone = Kubectl({"get", "widgets.example.com", "-A"});
  EXPECT_FALSE(gone.status.success()) << gone.out;
  for (const std::string& o :
       {"clusterrole/" + ns_ + "-operator", "clusterrolebinding/" + ns_ + "-operator",
        "mutatingwebhookconfiguration/" + ns_ + "-mutate",
        "validatingwebhookconfiguration/" + ns_ + "-validate"}) {
    EXPECT_FALSE(Kubectl({"get", o}).status.success()) << o;
  }
  EXPECT_EQ(Ok({"get", "all,pvc,secrets,serviceaccounts", "-n", ns_, "-o", "name"}), "");
  // The claim's volume is reclaimed (Delete) after the namespace took the claim.
  EXPECT_TRUE(Eventually(
      [&] {
        return Ok({"get", "pv", "-o", "jsonpath={.items[*].spec.claimRef.namespace}"}).find(ns_) ==
               std::string::npos;
      },
      30s));
  const auto end = std::chrono::steady_clock::now();
  std::cout << "kubectl " << GetParam() << ": install to uninstalled "
            << std::chrono::duration_cast<std::chrono::milliseconds>(end - start).count()
            << " ms (uninstall "
            << std::chrono::duration_cast<std::chrono::milliseconds>(end - uninstall).count()
            << " ms)\n";
}

INSTANTIATE_TEST_SUITE_P(Versions, ChartE2E, ::testing::Values("1.27", "1.33"),
                         [](const auto& info) {
                           std::string s = info.param;
                           s.erase(std::remove(s.begin(), s.end(), '.'), s.end());
                           return "kubectl" + s;
                         });

}  // namespace
}  // namespace kin
