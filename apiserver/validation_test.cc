#include "apiserver/validation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "base/error.h"
#include "base/yaml.h"

namespace kin::apiserver {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

Json Defaulted(const std::string& group, const std::string& kind, const char* yaml) {
  Json obj = ParseYaml(yaml);
  ApplyDefaults(group, kind, obj);
  return obj;
}

// "field|reason|message" of every cause, in order.
std::vector<std::string> Causes(const Error& e) {
  std::vector<std::string> out;
  for (const auto& c : e.causes()) out.push_back(c.field + "|" + c.reason + "|" + c.message);
  return out;
}

// Defaults obj, validates it (against old when given) and returns the error.
Error InvalidError(const std::string& group, const std::string& kind, Json obj,
                   const Json* old = nullptr) {
  ApplyDefaults(group, kind, obj);
  try {
    ValidateObject(group, kind, obj, old);
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no error for " << obj.dump();
  return Error::Internal("no error");
}

std::vector<std::string> CausesOf(const std::string& group, const std::string& kind,
                                  const char* yaml, const Json* old = nullptr) {
  return Causes(InvalidError(group, kind, ParseYaml(yaml), old));
}

void ExpectValid(const std::string& group, const std::string& kind, const char* yaml,
                 const Json* old = nullptr) {
  Json obj = ParseYaml(yaml);
  ApplyDefaults(group, kind, obj);
  try {
    ValidateObject(group, kind, obj, old);
  } catch (const Error& e) {
    ADD_FAILURE() << "unexpected error: " << e.message();
  }
}

constexpr const char* kDnsLabelMsg =
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
constexpr const char* kDnsSubdomainMsg =
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

constexpr const char* kPod = R"(
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default}
spec:
  containers:
  - name: app
    image: nginx:1.25
)";

// --------------------------------------------------------------------------
// Defaults

TEST(DefaultsTest, PodGetsSpecContainerAndAdmissionDefaults) {
  Json pod = Defaulted("", "Pod", R"(
metadata: {name: web, namespace: default}
spec:
  containers:
  - name: app
    image: nginx:1.25
    ports: [{containerPort: 80}]
    env:
    - name: POD
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    livenessProbe: {httpGet: {port: 80}}
    readinessProbe: {grpc: {port: 9000}}
    volumeMounts: [{name: scratch, mountPath: /tmp}]
  volumes:
  - name: scratch
  - name: cfg
    configMap: {name: cfg}
  - name: sec
    secret: {secretName: sec}
  - name: host
    hostPath: {path: /var/log}
)");
  const Json& spec = pod["spec"];
  EXPECT_EQ(spec["restartPolicy"], "Always");
  EXPECT_EQ(spec["dnsPolicy"], "ClusterFirst");
  EXPECT_EQ(spec["terminationGracePeriodSeconds"], 30);
  EXPECT_EQ(spec["schedulerName"], "default-scheduler");
  EXPECT_EQ(spec["securityContext"], Json::object());
  EXPECT_EQ(spec["enableServiceLinks"], true);
  EXPECT_EQ(spec["serviceAccountName"], "default");
  EXPECT_EQ(spec["serviceAccount"], "default");
  EXPECT_EQ(spec["priority"], 0);
  EXPECT_EQ(spec["preemptionPolicy"], "PreemptLowerPriority");
  EXPECT_EQ(spec["tolerations"], ParseYaml(R"(
- {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 300}
- {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 300}
)"));
  const Json& c = spec["containers"][0];
  EXPECT_EQ(c["imagePullPolicy"], "IfNotPresent");
  EXPECT_EQ(c["terminationMessagePath"], "/dev/termination-log");
  EXPECT_EQ(c["terminationMessagePolicy"], "File");
  EXPECT_EQ(c["resources"], Json::object());
  EXPECT_EQ(c["ports"][0]["protocol"], "TCP");
  EXPECT_EQ(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
  EXPECT_EQ(c["livenessProbe"], ParseYaml(R"({httpGet: {path: /, port: 80, scheme: HTTP},
    timeoutSeconds: 1, periodSeconds: 10, successThreshold: 1, failureThreshold: 3})"));
  EXPECT_EQ(c["readinessProbe"]["grpc"]["service"], "");
  EXPECT_EQ(spec["volumes"][0]["emptyDir"], Json::object());
  EXPECT_EQ(spec["volumes"][1]["configMap"]["defaultMode"], 420);
  EXPECT_EQ(spec["volumes"][2]["secret"]["defaultMode"], 420);
  EXPECT_EQ(spec["volumes"][3]["hostPath"]["type"], "");
}

TEST(DefaultsTest, ImagePullPolicyFollowsTheTag) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"nginx", "Always"},
      {"nginx:latest", "Always"},
      {"nginx:1.25", "IfNotPresent"},
      {"nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
       "IfNotPresent"},
      {"localhost:5000/app", "Always"},
      {"registry.example:5000/team/app:v1", "IfNotPresent"},
  };
  for (const auto& [image, policy] : cases) {
    Json pod = ParseYaml(kPod);
    pod["spec"]["containers"][0]["image"] = image;
    ApplyDefaults("", "Pod", pod);
    EXPECT_EQ(pod["spec"]["containers"][0]["imagePullPolicy"], policy) << image;
  }
}

TEST(DefaultsTest, PodRequestsDefaultToLimitsAndHostNetworkPortsToHostPorts) {
  Json pod = Defaulted("", "Pod", R"(
metadata: {name: web, namespace: default}
spec:
  hostNetwork: true
  containers:
  - name: app
    image: nginx
    ports: [{containerPort: 8080}]
    resources: {limits: {cpu: 500m, memory: 64Mi}, requests: {cpu: 100m}}
)");
  const Json& c = pod["spec"]["containers"][0];
  EXPECT_EQ(c["resources"]["requests"], ParseYaml("{cpu: 100m, memory: 64Mi}"));
  EXPECT_EQ(c["ports"][0]["hostPort"], 8080);
}

TEST(DefaultsTest, ExistingTolerationsAndPriorityClassesAreRespected) {
  Json pod = Defaulted("", "Pod", R"(
metadata: {name: web, namespace: default}
spec:
  priorityClassName: system-node-critical
  tolerations:
  - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute}
  containers: [{name: app, image: nginx}]
)");
  EXPECT_EQ(pod["spec"]["priority"], 2000001000);
  ASSERT_EQ(pod["spec"]["tolerations"].size(), 2u);
  EXPECT_EQ(pod["spec"]["tolerations"][0],
            ParseYaml("{key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute}"));
  EXPECT_EQ(pod["spec"]["tolerations"][1]["key"], "node.kubernetes.io/unreachable");

  Json all = Defaulted("", "Pod", R"(
metadata: {name: web, namespace: default}
spec:
  tolerations: [{operator: Exists}]
  containers: [{name: app, image: nginx}]
)");
  EXPECT_EQ(all["spec"]["tolerations"].size(), 1u);
}

TEST(DefaultsTest, DefaultsAreIdempotent) {
  for (auto [kind, yaml] :
       {std::pair{"Pod", kPod},
        std::pair{"Service", "{metadata: {name: s}, spec: {ports: [{port: 80}]}}"}}) {
    Json once = Defaulted("", kind, yaml);
    Json twice = once;
    ApplyDefaults("", kind, twice);
    EXPECT_EQ(once, twice) << kind;
  }
}

TEST(DefaultsTest, DeploymentAndItsTemplate) {
  Json d = Defaulted("apps", "Deployment", R"(
metadata: {name: web, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: app, image: nginx}]
)");
  const Json& spec = d["spec"];
  EXPECT_EQ(spec["replicas"], 1);
  EXPECT_EQ(
      spec["strategy"],
      ParseYaml("{type: RollingUpdate, rollingUpdate: {maxUnavailable: 25%, maxSurge: 25%}}"));
  EXPECT_EQ(spec["revisionHistoryLimit"], 10);
  EXPECT_EQ(spec["progressDeadlineSeconds"], 600);
  const Json& pod = spec["template"]["spec"];
  EXPECT_EQ(pod["restartPolicy"], "Always");
  EXPECT_EQ(pod["dnsPolicy"], "ClusterFirst");
  EXPECT_EQ(pod["containers"][0]["imagePullPolicy"], "Always");
  // Pod-only defaults and admission stay out of templates.
  for (const char* key : {"enableServiceLinks", "serviceAccountName", "priority", "tolerations",
                          "preemptionPolicy"}) {
    EXPECT_FALSE(pod.contains(key)) << key;
  }

  Json recreate = Defaulted("apps", "Deployment", "{spec: {strategy: {type: Recreate}}}");
  EXPECT_EQ(recreate["spec"]["strategy"], ParseYaml("{type: Recreate}"));
}

TEST(DefaultsTest, ReplicaSetDaemonSetStatefulSet) {
  EXPECT_EQ(Defaulted("apps", "ReplicaSet", "{spec: {}}")["spec"]["replicas"], 1);

  Json ds = Defaulted("apps", "DaemonSet", "{spec: {template: {spec: {}}}}");
  EXPECT_EQ(ds["spec"]["updateStrategy"],
            ParseYaml("{type: RollingUpdate, rollingUpdate: {maxUnavailable: 1, maxSurge: 0}}"));
  EXPECT_EQ(ds["spec"]["revisionHistoryLimit"], 10);
  EXPECT_EQ(ds["spec"]["template"]["spec"]["schedulerName"], "default-scheduler");

  Json sts = Defaulted("apps", "StatefulSet", R"(
spec:
  volumeClaimTemplates: [{metadata: {name: data}, spec: {accessModes: [ReadWriteOnce]}}]
)");
  const Json& spec = sts["spec"];
  EXPECT_EQ(spec["replicas"], 1);
  EXPECT_EQ(spec["podManagementPolicy"], "OrderedReady");
  EXPECT_EQ(spec["updateStrategy"],
            ParseYaml("{type: RollingUpdate, rollingUpdate: {partition: 0}}"));
  EXPECT_EQ(spec["revisionHistoryLimit"], 10);
  EXPECT_EQ(spec["persistentVolumeClaimRetentionPolicy"],
            ParseYaml("{whenDeleted: Retain, whenScaled: Retain}"));
  EXPECT_EQ(spec["volumeClaimTemplates"][0]["spec"]["volumeMode"], "Filesystem");
  EXPECT_EQ(spec["volumeClaimTemplates"][0]["status"]["phase"], "Pending");

  Json on_delete = Defaulted("apps", "StatefulSet", "{spec: {updateStrategy: {type: OnDelete}}}");
  EXPECT_EQ(on_delete["spec"]["updateStrategy"], ParseYaml("{type: OnDelete}"));
}

TEST(DefaultsTest, JobAndCronJob) {
  Json job = Defaulted("batch", "Job", R"(
metadata: {name: pi, namespace: default}
spec:
  template:
    metadata: {labels: {app: pi}}
    spec: {containers: [{name: pi, image: perl}], restartPolicy: Never}
)");
  const Json& spec = job["spec"];
  EXPECT_EQ(spec["completions"], 1);
  EXPECT_EQ(spec["parallelism"], 1);
  EXPECT_EQ(spec["backoffLimit"], 6);
  EXPECT_EQ(spec["completionMode"], "NonIndexed");
  EXPECT_EQ(spec["suspend"], false);
  EXPECT_EQ(spec["manualSelector"], false);
  EXPECT_EQ(spec["podReplacementPolicy"], "TerminatingOrFailed");
  EXPECT_EQ(job["metadata"]["labels"], ParseYaml("{app: pi}"));
  EXPECT_EQ(spec["template"]["spec"]["restartPolicy"], "Never");
  EXPECT_EQ(spec["template"]["spec"]["dnsPolicy"], "ClusterFirst");

  Json parallel = Defaulted("batch", "Job", "{spec: {parallelism: 3}}");
  EXPECT_FALSE(parallel["spec"].contains("completions"));
  EXPECT_EQ(parallel["spec"]["parallelism"], 3);

  Json cron = Defaulted("batch", "CronJob", R"(
spec:
  schedule: "*/5 * * * *"
  jobTemplate:
    spec:
      template:
        spec: {containers: [{name: c, image: busybox}], restartPolicy: OnFailure}
)");
  EXPECT_EQ(cron["spec"]["concurrencyPolicy"], "Allow");
  EXPECT_EQ(cron["spec"]["suspend"], false);
  EXPECT_EQ(cron["spec"]["successfulJobsHistoryLimit"], 3);
  EXPECT_EQ(cron["spec"]["failedJobsHistoryLimit"], 1);
  const Json& job_spec = cron["spec"]["jobTemplate"]["spec"];
  EXPECT_EQ(job_spec["template"]["spec"]["terminationGracePeriodSeconds"], 30);
  EXPECT_FALSE(job_spec.contains("backoffLimit"));  // Job defaults apply to Jobs only
}

TEST(DefaultsTest, Services) {
  Json svc = Defaulted("", "Service", R"(
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{port: 80}, {name: named, port: 443, targetPort: https}]
)");
  const Json& spec = svc["spec"];
  EXPECT_EQ(spec["type"], "ClusterIP");
  EXPECT_EQ(spec["sessionAffinity"], "None");
  EXPECT_EQ(spec["internalTrafficPolicy"], "Cluster");
  EXPECT_EQ(spec["ipFamilies"], ParseYaml("[IPv4]"));
  EXPECT_EQ(spec["ipFamilyPolicy"], "SingleStack");
  EXPECT_EQ(spec["ports"][0], ParseYaml("{port: 80, protocol: TCP, targetPort: 80}"));
  EXPECT_EQ(spec["ports"][1]["targetPort"], "https");
  EXPECT_FALSE(spec.contains("externalTrafficPolicy"));
  EXPECT_FALSE(spec.contains("allocateLoadBalancerNodePorts"));

  Json lb = Defaulted("", "Service", R"(
spec: {type: LoadBalancer, clusterIP: 10.96.0.7, ports: [{port: 80}]}
status: {loadBalancer: {ingress: [{ip: 198.51.100.1}]}}
)");
  EXPECT_EQ(lb["spec"]["externalTrafficPolicy"], "Cluster");
  EXPECT_EQ(lb["spec"]["allocateLoadBalancerNodePorts"], true);
  EXPECT_EQ(lb["spec"]["clusterIPs"], ParseYaml("[10.96.0.7]"));
  EXPECT_EQ(lb["status"]["loadBalancer"]["ingress"][0]["ipMode"], "VIP");

  Json node_port = Defaulted("", "Service", "{spec: {type: NodePort, ports: [{port: 80}]}}");
  EXPECT_EQ(node_port["spec"]["externalTrafficPolicy"], "Cluster");

  Json ext = Defaulted("", "Service", "{spec: {type: ExternalName, externalName: example.com}}");
  EXPECT_FALSE(ext["spec"].contains("ipFamilies"));
  EXPECT_FALSE(ext["spec"].contains("internalTrafficPolicy"));

  Json sticky =
      Defaulted("", "Service", "{spec: {sessionAffinity: ClientIP, ports: [{port: 80}]}}");
  EXPECT_EQ(sticky["spec"]["sessionAffinityConfig"],
            ParseYaml("{clientIP: {timeoutSeconds: 10800}}"));
}

TEST(DefaultsTest, NamespaceSecretAndNetworkingKinds) {
  Json ns = Defaulted("", "Namespace", "{metadata: {name: team-a}}");
  EXPECT_EQ(ns["spec"]["finalizers"], ParseYaml("[kubernetes]"));
  EXPECT_EQ(ns["status"]["phase"], "Active");
  EXPECT_EQ(ns["metadata"]["labels"]["kubernetes.io/metadata.name"], "team-a");
  // Once created (status.phase set), a removed finalizer is not put back.
  Json finalized =
      Defaulted("", "Namespace", "{metadata: {name: team-a}, status: {phase: Terminating}}");
  EXPECT_FALSE(finalized.contains("spec"));

  Json secret = Defaulted("", "Secret", R"(
metadata: {name: s, namespace: default}
data: {a: YQ==}
stringData: {b: hello, a: override}
)");
  EXPECT_EQ(secret["type"], "Opaque");
  EXPECT_EQ(secret["data"], ParseYaml("{a: b3ZlcnJpZGU=, b: aGVsbG8=}"));
  EXPECT_FALSE(secret.contains("stringData"));

  Json slice = Defaulted("discovery.k8s.io", "EndpointSlice", "{ports: [{port: 80}]}");
  EXPECT_EQ(slice["ports"][0], ParseYaml("{name: '', port: 80, protocol: TCP}"));

  Json eps = Defaulted("", "Endpoints", "{subsets: [{ports: [{port: 80}]}]}");
  EXPECT_EQ(eps["subsets"][0]["ports"][0]["protocol"], "TCP");

  Json np = Defaulted("networking.k8s.io", "NetworkPolicy",
                      "{spec: {podSelector: {}, ingress: [{ports: [{port: 80}]}]}}");
  EXPECT_EQ(np["spec"]["policyTypes"], ParseYaml("[Ingress]"));
  EXPECT_EQ(np["spec"]["ingress"][0]["ports"][0]["protocol"], "TCP");
  Json egress =
      Defaulted("networking.k8s.io", "NetworkPolicy", "{spec: {podSelector: {}, egress: [{}]}}");
  EXPECT_EQ(egress["spec"]["policyTypes"], ParseYaml("[Ingress, Egress]"));
}

// --------------------------------------------------------------------------
// The Invalid error: message, details, causes.

TEST(ValidateTest, OneCauseMessageHasNoBrackets) {
  Error e =
      InvalidError("", "Pod", ParseYaml("{metadata: {name: bad, namespace: default}, spec: {}}"));
  EXPECT_EQ(e.code(), Code::kInvalid);
  EXPECT_EQ(e.http_status(), 422);
  EXPECT_EQ(e.message(), "Pod \"bad\" is invalid: spec.containers: Required value");
  EXPECT_EQ(e.details_kind(), "Pod");
  EXPECT_EQ(e.details_name(), "bad");
  EXPECT_EQ(e.details_group(), "");
  EXPECT_THAT(Causes(e), ElementsAre("spec.containers|FieldValueRequired|Required value"));
}

TEST(ValidateTest, SeveralCausesAreBracketedInOrder) {
  Error e = InvalidError("", "Pod", ParseYaml(R"(
metadata: {name: bad, namespace: default}
spec:
  containers: [{name: Bad_Name, image: ""}]
)"));
  std::string name_msg = std::string("Invalid value: \"Bad_Name\": ") + kDnsLabelMsg;
  EXPECT_EQ(e.message(), "Pod \"bad\" is invalid: [spec.containers[0].name: " + name_msg +
                             ", spec.containers[0].image: Required value]");
  EXPECT_THAT(Causes(e), ElementsAre("spec.containers[0].name|FieldValueInvalid|" + name_msg,
                                     "spec.containers[0].image|FieldValueRequired|Required value"));
}

TEST(ValidateTest, GroupIsQualifiedAndRepeatedMessagesAppearOnce) {
  Error e = InvalidError("apps", "Deployment", ParseYaml(R"(
metadata:
  name: web
  namespace: default
  labels: {a: "bad value!", b: "bad value!"}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: app, image: nginx}]}
)"));
  std::string msg =
      "metadata.labels: Invalid value: \"bad value!\": a valid label must be an empty string or "
      "consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
      "alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
      "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
  EXPECT_EQ(e.message(), "Deployment.apps \"web\" is invalid: " + msg);
  EXPECT_EQ(e.causes().size(), 2u);
  EXPECT_EQ(e.details_kind(), "Deployment");
  EXPECT_EQ(e.details_group(), "apps");
}

TEST(ValidateTest, WrongJsonTypeIsADecodeError) {
  Json pod = ParseYaml(kPod);
  pod["spec"]["containers"][0]["ports"] = ParseYaml(R"([{containerPort: "80"}])");
  try {
    ValidateObject("", "Pod", Defaulted("", "Pod", pod.dump().c_str()), nullptr);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kBadRequest);
    EXPECT_EQ(e.message(),
              "Pod in version \"v1\" cannot be handled as a Pod: json: cannot unmarshal string "
              "into Go struct field Pod.spec.containers.ports.containerPort of type int64");
  }
}

// --------------------------------------------------------------------------
// Metadata

TEST(ValidateMetadataTest, NamesNamespacesLabelsAnnotations) {
  EXPECT_THAT(CausesOf("", "ConfigMap", "{metadata: {namespace: default}}"),
              ElementsAre("metadata.name|FieldValueRequired|Required value: name or "
                          "generateName is required"));
  EXPECT_THAT(CausesOf("", "ConfigMap", "{metadata: {name: Bad.Name, namespace: default}}"),
              ElementsAre(std::string("metadata.name|FieldValueInvalid|Invalid value: "
                                      "\"Bad.Name\": ") +
                          kDnsSubdomainMsg));
  EXPECT_THAT(CausesOf("", "ConfigMap", "{metadata: {name: cm}}"),
              ElementsAre("metadata.namespace|FieldValueRequired|Required value"));
  EXPECT_THAT(CausesOf("", "Node", "{metadata: {name: n1, namespace: default}}"),
              ElementsAre("metadata.namespace|FieldValueForbidden|Forbidden: not allowed on this "
                          "type"));
  // generateName may end in a dash.
  ExpectValid("", "ConfigMap",
              "{metadata: {generateName: web-, name: web-x7k2p, namespace: default}}");

  auto causes = CausesOf("", "ConfigMap", R"(
metadata:
  name: cm
  namespace: default
  labels:
    "-bad": ok
    long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
)");
  EXPECT_THAT(causes, Contains(HasSubstr("metadata.labels|FieldValueInvalid|Invalid value: "
                                         "\"-bad\": name part must consist of alphanumeric")));
  EXPECT_THAT(causes, Contains(HasSubstr("|FieldValueInvalid|Invalid value: \"aaaaaaaa")));
  EXPECT_THAT(causes, Contains(HasSubstr(": must be no more than 63 characters")));

  Json big = ParseYaml("{metadata: {name: cm, namespace: default}}");
  big["metadata"]["annotations"]["example.com/blob"] = std::string(256 * 1024, 'x');
  EXPECT_THAT(Causes(InvalidError("", "ConfigMap", big)),
              ElementsAre("metadata.annotations|FieldValueTooLong|Too long: must have at most "
                          "262144 bytes"));
}

TEST(ValidateMetadataTest, NameIsImmutable) {
  Json old = Defaulted("", "ConfigMap", "{metadata: {name: a, namespace: default}}");
  EXPECT_THAT(CausesOf("", "ConfigMap", "{metadata: {name: b, namespace: default}}", &old),
              ElementsAre("metadata.name|FieldValueInvalid|Invalid value: \"b\": field is "
                          "immutable"));
}

TEST(ValidateMetadataTest, UnknownKindsGetMetadataChecksOnly) {
  ExpectValid("example.com", "Widget", "{metadata: {name: w}, spec: {anything: [1, 2]}}");
  EXPECT_THAT(CausesOf("example.com", "Widget", "{metadata: {name: W}}"),
              ElementsAre(HasSubstr("metadata.name|FieldValueInvalid|")));
}

// --------------------------------------------------------------------------
// Pods

TEST(ValidatePodTest, FullPodIsValid) {
  ExpectValid("", "Pod", R"(
metadata: {name: web, namespace: default, labels: {app: web}, annotations: {example.com/x: y}}
spec:
  hostname: web-0
  subdomain: web
  initContainers:
  - {name: init, image: busybox, command: [sh, -c, "true"]}
  - name: sidecar
    image: envoy
    restartPolicy: Always
    readinessProbe: {tcpSocket: {port: 9901}}
  containers:
  - name: app
    image: nginx:1.25
    ports: [{name: http, containerPort: 80}, {containerPort: 53, protocol: UDP}]
    env:
    - {name: MODE, value: prod}
    - name: NODE
      valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
    - name: KEY
      valueFrom: {secretKeyRef: {name: creds, key: api.key}}
    envFrom: [{configMapRef: {name: settings}, prefix: CFG_}]
    resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {cpu: "1", memory: 1Gi}}
    livenessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 5}
    startupProbe: {exec: {command: [cat, /ready]}}
    lifecycle: {preStop: {sleep: {seconds: 5}}}
    volumeMounts: [{name: cfg, mountPath: /etc/app}, {name: data, mountPath: /data}]
  volumes:
  - {name: cfg, configMap: {name: settings, items: [{key: a, path: a.conf}]}}
  - {name: data, emptyDir: {sizeLimit: 1Gi}}
  tolerations: [{key: dedicated, operator: Equal, value: web, effect: NoSchedule}]
  dnsPolicy: None
  dnsConfig: {nameservers: [10.96.0.10], searches: [svc.cluster.local]}
)");
}

TEST(ValidatePodTest, ContainerNamesMustBeUniqueAcrossInitContainers) {
  EXPECT_THAT(CausesOf("", "Pod", R"(
metadata: {name: p, namespace: default}
spec:
  initContainers: [{name: app, image: busybox}]
  containers: [{name: app, image: nginx}, {name: app, image: nginx}]
)"),
              ElementsAre("spec.containers[1].name|FieldValueDuplicate|Duplicate value: \"app\"",
                          "spec.initContainers[0].name|FieldValueDuplicate|Duplicate value: "
                          "\"app\""));
}

TEST(ValidatePodTest, Ports) {
  EXPECT_THAT(
      CausesOf("", "Pod", R"(
metadata: {name: p, namespace: default}
spec:
  containers:
  - name: app
    image: nginx
    ports:
    - {name: web, containerPort: 70000}
    - {name: web, containerPort: 81, protocol: HTTP}
    - {name: Http_Port, containerPort: 82}
    - {containerPort: 0}
)"),
      ElementsAre("spec.containers[0].ports[0].containerPort|FieldValueInvalid|Invalid value: "
                  "70000: must be between 1 and 65535, inclusive",
                  "spec.containers[0].ports[1].name|FieldValueDuplicate|Duplicate value: \"web\"",
                  "spec.containers[0].ports[1].protocol|FieldValueNotSupported|Unsupported value: "
                  "\"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                  "spec.containers[0].ports[2].name|FieldValueInvalid|Invalid value: "
                  "\"Http_Port\": must contain only alpha-numeric characters (a-z, 0-9), and "
                  "hyphens (-)",
                  "spec.containers[0].ports[3].containerPort|FieldValueRequired|Required value"));
}

TEST(ValidatePodTest, EnvAndEnvFrom) {
  EXPECT_THAT(
      CausesOf("", "Pod", R"(
metadata: {name: p, namespace: default}
spec:
  containers:
  - name: app
    image: nginx
    env:
    - {name: 1BAD, value: x}
    - name: BOTH
      valueFrom: {fieldRef: {fieldPath: metadata.name}, configMapKeyRef: {name: c, key: k}}
    - name: FIELD
      valueFrom: {fieldRef: {fieldPath: spec.restartPolicy}}
    envFrom: [{prefix: x}]
)"),
      ElementsAre(
          "spec.containers[0].env[0].name|FieldValueInvalid|Invalid value: \"1BAD\": a valid "
          "environment variable name must consist of alphabetic characters, digits, '_', '-', or "
          "'.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or "
          "'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')",
          "spec.containers[0].env[1].valueFrom|FieldValueInvalid|Invalid value: \"\": may not "
          "have more than one field specified at a time",
          "spec.containers[0].env[2].valueFrom.fieldRef.fieldPath|FieldValueNotSupported|"
          "Unsupported value: \"spec.restartPolicy\": supported values: \"metadata.name\", "
          "\"metadata.namespace\", \"metadata.uid\", \"spec.nodeName\", "
          "\"spec.serviceAccountName\", \"status.hostIP\", \"status.hostIPs\", "
          "\"status.podIP\", \"status.podIPs\"",
          "spec.containers[0].envFrom|FieldValueInvalid|Invalid value: \"\": must specify one of: "
          "`configMapRef` or `secretRef`"));
}

TEST(ValidatePodTest, PolicyFields) {
  auto causes = CausesOf("", "Pod", R"(
metadata: {name: p, namespace: default}
spec:
  restartPolicy: Sometimes
  dnsPolicy: None
  terminationGracePeriodSeconds: -1
  hostname: Web_0
  containers: [{name: app, image: " nginx"}]
)");
  EXPECT_THAT(
      causes,
      ElementsAre(
          "spec.terminationGracePeriodSeconds|FieldValueInvalid|Invalid value: -1: must be greater "
          "than or equal to 0",
          "spec.containers[0].image|FieldValueInvalid|Invalid value: \" nginx\": must not have "
          "leading or trailing whitespace",
          "spec.restartPolicy|FieldValueNotSupported|Unsupported value: \"Sometimes\": supported "
          "values: \"Always\", \"OnFailure\", \"Never\"",
          "spec.dnsConfig|FieldValueRequired|Required value: must provide `dnsConfig` when "
          "`dnsPolicy` is None",
          std::string("spec.hostname|FieldValueInvalid|Invalid value: \"Web_0\": ") +
              kDnsLabelMsg));
}

TEST(ValidatePodTest, VolumesAndMounts) {
  EXPECT_THAT(
      CausesOf("", "Pod", R"(
metadata: {name: p, namespace: default}
spec:
  volumes:
  - {name: a, emptyDir: {}, configMap: {name: c}}
  - {name: b, secret: {}}
  - {name: c, emptyDir: {}}
  - {name: c, emptyDir: {}}
  containers:
  - name: app
    image: nginx
    volumeMounts: [{name: missing, mountPath: /x}, {name: c, mountPath: /x}]
)"),
      ElementsAre("spec.volumes[0].configMap|FieldValueForbidden|Forbidden: may not specify more "
                  "than 1 volume type",
                  "spec.volumes[1].secret.secretName|FieldValueRequired|Required value",
                  "spec.volumes[3].name|FieldValueDuplicate|Duplicate value: \"c\"",
                  "spec.containers[0].volumeMounts[0].name|FieldValueNotFound|Not found: "
                  "\"missing\"",
                  "spec.containers[0].volumeMounts[1].mountPath|FieldValueInvalid|Invalid value: "
                  "\"/x\": must be unique"));
}

TEST(ValidatePodTest, Probes) {
  EXPECT_THAT(
      CausesOf("", "Pod", R"(
metadata: {name: p, namespace: default}
spec:
  containers:
  - name: app
    image: nginx
    livenessProbe: {exec: {command: ["true"]}, tcpSocket: {port: 80}, successThreshold: 2}
    readinessProbe: {httpGet: {port: Not_A_Name}}
    startupProbe: {periodSeconds: -1, tcpSocket: {port: 0}}
)"),
      ElementsAre("spec.containers[0].livenessProbe.tcpSocket|FieldValueForbidden|Forbidden: may "
                  "not specify more than 1 handler type",
                  "spec.containers[0].livenessProbe.successThreshold|FieldValueInvalid|Invalid "
                  "value: 2: must be 1",
                  "spec.containers[0].readinessProbe.httpGet.port|FieldValueInvalid|Invalid "
                  "value: \"Not_A_Name\": must contain only alpha-numeric characters (a-z, 0-9), "
                  "and hyphens (-)",
                  "spec.containers[0].startupProbe.tcpSocket.port|FieldValueInvalid|Invalid "
                  "value: 0: must be between 1 and 65535, inclusive",
                  "spec.containers[0].startupProbe.periodSeconds|FieldValueInvalid|Invalid "
                  "value: -1: must be greater than or equal to 0"));
}

TEST(ValidatePodTest, InitContainersAndTolerations) {
  EXPECT_THAT(
      CausesOf("", "Pod", R"(
metadata: {name: p, namespace: default}
spec:
  initContainers:
  - {name: init, image: busybox, readinessProbe: {exec: {command: ["true"]}}}
  - {name: side, image: envoy, restartPolicy: Never}
  containers: [{name: app, image: nginx}]
  tolerations: [{operator: Equal, value: x}]
)"),
      ElementsAre("spec.initContainers[0].readinessProbe|FieldValueForbidden|Forbidden: may not "
                  "be set for init containers without restartPolicy=Always",
                  "spec.initContainers[1].restartPolicy|FieldValueNotSupported|Unsupported "
                  "value: \"Never\": supported values: \"Always\"",
                  "spec.tolerations[0].operator|FieldValueInvalid|Invalid value: \"Equal\": "
                  "operator must be Exists when `key` is empty, which means \"match all values "
                  "and all keys\""));
}

TEST(ValidatePodTest, Resources) {
  EXPECT_THAT(
      CausesOf("", "Pod", R"(
metadata: {name: p, namespace: default}
spec:
  containers:
  - name: app
    image: nginx
    resources:
      limits: {cpu: "1", example.com/gpu: "1"}
      requests: {cpu: "2", memory: "-1", example.com/gpu: "2", widgets: "1"}
)"),
      ElementsAre("spec.containers[0].resources.requests|FieldValueInvalid|Invalid value: \"2\": "
                  "must be less than or equal to cpu limit of 1",
                  "spec.containers[0].resources.requests|FieldValueInvalid|Invalid value: \"2\": "
                  "must be equal to example.com/gpu limit of 1",
                  "spec.containers[0].resources.requests[memory]|FieldValueInvalid|Invalid value: "
                  "\"-1\": must be greater than or equal to 0",
                  "spec.containers[0].resources.requests[widgets]|FieldValueInvalid|Invalid "
                  "value: \"widgets\": must be a standard resource type or fully qualified",
                  "spec.containers[0].resources.requests[widgets]|FieldValueInvalid|Invalid "
                  "value: \"widgets\": must be a standard resource for containers"));
  // Equal amounts in different spellings compare equal.
  ExpectValid("", "Pod", R"(
metadata: {name: p, namespace: default}
spec:
  containers:
  - {name: app, image: nginx, resources: {requests: {cpu: "0.5", memory: 1Gi},
                                          limits: {cpu: 500m, memory: "1073741824"}}}
)");
}

TEST(ValidatePodTest, MalformedQuantityIsADecodeError) {
  Json pod = ParseYaml(kPod);
  pod["spec"]["containers"][0]["resources"] = ParseYaml("{limits: {cpu: abc}}");
  ApplyDefaults("", "Pod", pod);
  try {
    ValidateObject("", "Pod", pod, nullptr);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kBadRequest);
    EXPECT_EQ(e.message(),
              "Pod in version \"v1\" cannot be handled as a Pod: quantities must match the "
              "regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'");
  }
}

TEST(ValidatePodTest, UpdatesMayChangeOnlyImagesDeadlinesAndTolerations) {
  Json old = Defaulted("", "Pod", R"(
metadata: {name: web, namespace: default, uid: u1, resourceVersion: "5"}
spec:
  activeDeadlineSeconds: 100
  containers: [{name: app, image: nginx:1.25}]
)");
  Json image = old;
  image["spec"]["containers"][0]["image"] = "nginx:1.26";
  image["spec"]["activeDeadlineSeconds"] = 50;
  image["spec"]["tolerations"].push_back(ParseYaml("{key: a, operator: Exists}"));
  ExpectValid("", "Pod", image.dump().c_str(), &old);

  Json dns = old;
  dns["spec"]["dnsPolicy"] = "Default";
  auto causes = Causes(InvalidError("", "Pod", dns, &old));
  ASSERT_EQ(causes.size(), 1u);
  EXPECT_THAT(causes[0], StartsWith("spec|FieldValueForbidden|Forbidden: pod updates may not "
                                    "change fields other than `spec.containers[*].image`,"
                                    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
                                    "`spec.tolerations` (only additions to existing tolerations),"
                                    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 "
                                    "if it was previously negative)\n"));
  EXPECT_THAT(causes[0], HasSubstr("- \tdnsPolicy: \"ClusterFirst\""));
  EXPECT_THAT(causes[0], HasSubstr("+ \tdnsPolicy: \"Default\""));

  Json more = old;
  more["spec"]["containers"].push_back(ParseYaml("{name: b, image: busybox}"));
  EXPECT_THAT(Causes(InvalidError("", "Pod", more, &old)),
              ElementsAre("spec.containers|FieldValueForbidden|Forbidden: pod updates may not add "
                          "or remove containers"));

  Json later = old;
  later["spec"]["activeDeadlineSeconds"] = 200;
  EXPECT_THAT(Causes(InvalidError("", "Pod", later, &old)),
              ElementsAre("spec.activeDeadlineSeconds|FieldValueInvalid|Invalid value: 200: must "
                          "be less than or equal to previous value"));

  Json dropped = old;
  dropped["spec"]["tolerations"] = Json::array();
  dropped["spec"]["tolerations"].push_back(ParseYaml("{operator: Exists}"));
  EXPECT_THAT(Causes(InvalidError("", "Pod", dropped, &old)),
              Contains("spec.tolerations|FieldValueForbidden|Forbidden: existing toleration can "
                       "not be modified except its tolerationSeconds"));
}

// --------------------------------------------------------------------------
// Services

TEST(ValidateServiceTest, ValidServices) {
  ExpectValid("", "Service", R"(
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}, {name: metrics, port: 9090, protocol: TCP}]
)");
  ExpectValid("", "Service", "{metadata: {name: db, namespace: default}, spec: {clusterIP: None}}");
  ExpectValid("", "Service", R"(
metadata: {name: ext, namespace: default}
spec: {type: ExternalName, externalName: db.example.com.}
)");
  ExpectValid("", "Service", R"(
metadata: {name: lb, namespace: default}
spec: {type: LoadBalancer, externalTrafficPolicy: Local, ports: [{port: 80, nodePort: 30080}]}
)");
}

TEST(ValidateServiceTest, NamesPortsAndDuplicates) {
  EXPECT_THAT(
      CausesOf(
          "", "Service",
          "{metadata: {name: 1web, namespace: default}, spec: {ports: [{port: 80}, {port: 80}]}}"),
      ElementsAre(
          "metadata.name|FieldValueInvalid|Invalid value: \"1web\": a DNS-1035 label must consist "
          "of lower case alphanumeric characters or '-', start with an alphabetic character, and "
          "end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
          "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
          "spec.ports[0].name|FieldValueRequired|Required value",
          "spec.ports[1].name|FieldValueRequired|Required value",
          "spec.ports[1]|FieldValueDuplicate|Duplicate value: core.ServicePort{Name:\"\", "
          "Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, "
          "TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}"));
  EXPECT_THAT(CausesOf("", "Service",
                       "{metadata: {name: web, namespace: default}, spec: {selector: {app: web}}}"),
              ElementsAre("spec.ports|FieldValueRequired|Required value"));
  EXPECT_THAT(
      CausesOf("", "Service", R"(
metadata: {name: web, namespace: default}
spec: {ports: [{port: 80, protocol: HTTP, targetPort: Bad_Name}]}
)"),
      ElementsAre("spec.ports[0].protocol|FieldValueNotSupported|Unsupported value: "
                  "\"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                  "spec.ports[0].targetPort|FieldValueInvalid|Invalid value: \"Bad_Name\": "
                  "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"));
}

TEST(ValidateServiceTest, TypesAndPolicies) {
  EXPECT_THAT(
      CausesOf(
          "", "Service",
          "{metadata: {name: web, namespace: default}, spec: {type: Foo, ports: [{port: 80}]}}"),
      ElementsAre("spec.type|FieldValueNotSupported|Unsupported value: \"Foo\": supported "
                  "values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""));
  EXPECT_THAT(CausesOf("", "Service",
                       "{metadata: {name: web, namespace: default}, spec: {ports: [{port: 80, "
                       "nodePort: 30080}]}}"),
              ElementsAre("spec.ports[0].nodePort|FieldValueForbidden|Forbidden: may not be used "
                          "when `type` is 'ClusterIP'"));
  EXPECT_THAT(CausesOf("", "Service",
                       "{metadata: {name: web, namespace: default}, spec: {type: ExternalName}}"),
              ElementsAre("spec.externalName|FieldValueRequired|Required value"));
  EXPECT_THAT(CausesOf("", "Service", R"(
metadata: {name: web, namespace: default}
spec: {sessionAffinity: Sticky, selector: {"a/b/c": x}, ports: [{port: 80}]}
)"),
              ElementsAre(HasSubstr("spec.selector|FieldValueInvalid|Invalid value: \"a/b/c\": a "
                                    "qualified name must consist of"),
                          "spec.sessionAffinity|FieldValueNotSupported|Unsupported value: "
                          "\"Sticky\": supported values: \"ClientIP\", \"None\""));
}

TEST(ValidateServiceTest, ClusterIPIsImmutable) {
  Json old = Defaulted("", "Service", R"(
metadata: {name: web, namespace: default}
spec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}
)");
  EXPECT_THAT(CausesOf("", "Service", R"(
metadata: {name: web, namespace: default}
spec: {clusterIP: 10.96.0.20, ports: [{port: 80}]}
)",
                       &old),
              ElementsAre("spec.clusterIPs[0]|FieldValueInvalid|Invalid value: "
                          "[]string{\"10.96.0.20\"}: may not change once set"));
  // Leaving the address out keeps it (the registry copies it over).
  ExpectValid("", "Service",
              "{metadata: {name: web, namespace: default}, spec: {ports: [{port: 80}]}}", &old);
}

// --------------------------------------------------------------------------
// apps/v1

constexpr const char* kDeployment = R"(
metadata: {name: web, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: app, image: nginx}]}
)";

TEST(ValidateAppsTest, DeploymentSelectorAndTemplate) {
  ExpectValid("apps", "Deployment", kDeployment);
  EXPECT_THAT(CausesOf("apps", "Deployment", R"(
metadata: {name: web, namespace: default}
spec:
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: app, image: nginx}]}
)"),
              ElementsAre("spec.selector|FieldValueRequired|Required value",
                          "spec.template.metadata.labels|FieldValueInvalid|Invalid value: "
                          "map[string]string{\"app\":\"web\"}: `selector` does not match template "
                          "`labels`"));
  EXPECT_THAT(
      CausesOf("apps", "Deployment", R"(
metadata: {name: web, namespace: default}
spec:
  replicas: -1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {restartPolicy: Never, containers: [{name: app}]}
)"),
      ElementsAre("spec.replicas|FieldValueInvalid|Invalid value: -1: must be greater than "
                  "or equal to 0",
                  "spec.template.spec.containers[0].image|FieldValueRequired|Required value",
                  "spec.template.spec.restartPolicy|FieldValueNotSupported|Unsupported "
                  "value: \"Never\": supported values: \"Always\""));
  EXPECT_THAT(CausesOf("apps", "Deployment", R"(
metadata: {name: web, namespace: default}
spec:
  selector: {matchLabels: {}}
  template: {spec: {containers: [{name: app, image: nginx}]}}
)"),
              ElementsAre("spec.selector|FieldValueInvalid|Invalid value: "
                          "v1.LabelSelector{MatchLabels:map[string]string{}, "
                          "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is "
                          "invalid for deployment"));
}

TEST(ValidateAppsTest, DeploymentStrategy) {
  Json zero = ParseYaml(kDeployment);
  zero["spec"]["strategy"] = ParseYaml("{rollingUpdate: {maxUnavailable: 0, maxSurge: 0}}");
  EXPECT_THAT(Causes(InvalidError("apps", "Deployment", zero)),
              ElementsAre("spec.strategy.rollingUpdate.maxUnavailable|FieldValueInvalid|Invalid "
                          "value: 0: may not be 0 when `maxSurge` is 0"));
  Json over = ParseYaml(kDeployment);
  over["spec"]["strategy"] = ParseYaml("{rollingUpdate: {maxUnavailable: 120%, maxSurge: x}}");
  EXPECT_THAT(Causes(InvalidError("apps", "Deployment", over)),
              ElementsAre("spec.strategy.rollingUpdate.maxSurge|FieldValueInvalid|Invalid value: "
                          "x: a valid percent string must be a numeric string followed by an "
                          "ending '%' (e.g. '1%',  or '93%', regex used for validation is "
                          "'[0-9]+%')",
                          "spec.strategy.rollingUpdate.maxUnavailable|FieldValueInvalid|Invalid "
                          "value: 120%: must not be greater than 100%"));
  Json foo = ParseYaml(kDeployment);
  foo["spec"]["strategy"] = ParseYaml("{type: Foo}");
  EXPECT_THAT(Causes(InvalidError("apps", "Deployment", foo)),
              ElementsAre("spec.strategy|FieldValueNotSupported|Unsupported value: "
                          "apps.DeploymentStrategy{Type:\"Foo\", "
                          "RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}: supported values: "
                          "\"Recreate\", \"RollingUpdate\""));
}

TEST(ValidateAppsTest, SelectorIsImmutable) {
  Json old = Defaulted("apps", "Deployment", kDeployment);
  Json now = ParseYaml(kDeployment);
  now["spec"]["selector"]["matchLabels"]["app"] = "web2";
  now["spec"]["template"]["metadata"]["labels"]["app"] = "web2";
  EXPECT_THAT(Causes(InvalidError("apps", "Deployment", now, &old)),
              ElementsAre("spec.selector|FieldValueInvalid|Invalid value: "
                          "v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web2\"}, "
                          "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is "
                          "immutable"));
  Json scaled = ParseYaml(kDeployment);
  scaled["spec"]["replicas"] = 5;
  ExpectValid("apps", "Deployment", scaled.dump().c_str(), &old);
}

TEST(ValidateAppsTest, ReplicaSetAndDaemonSet) {
  ExpectValid("apps", "ReplicaSet", kDeployment);
  Json rs = ParseYaml(kDeployment);
  rs["spec"]["selector"]["matchLabels"]["app"] = "other";
  EXPECT_THAT(Causes(InvalidError("apps", "ReplicaSet", rs)),
              ElementsAre("spec.template.metadata.labels|FieldValueInvalid|Invalid value: "
                          "map[string]string{\"app\":\"web\"}: `selector` does not match template "
                          "`labels`"));

  ExpectValid("apps", "DaemonSet", kDeployment);
  Json ds = ParseYaml(kDeployment);
  ds["spec"]["updateStrategy"] = ParseYaml("{rollingUpdate: {maxUnavailable: 1, maxSurge: 1}}");
  ds["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure";
  EXPECT_THAT(Causes(InvalidError("apps", "DaemonSet", ds)),
              ElementsAre("spec.template.spec.restartPolicy|FieldValueNotSupported|Unsupported "
                          "value: \"OnFailure\": supported values: \"Always\"",
                          "spec.updateStrategy.rollingUpdate.maxSurge|FieldValueInvalid|Invalid "
                          "value: 1: may not be set when maxUnavailable is non-zero"));
}

TEST(ValidateAppsTest, StatefulSet) {
  constexpr const char* kSts = R"(
metadata: {name: db, namespace: default}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: postgres, volumeMounts: [{name: data, mountPath: /var/lib/pg}]}]}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
)";
  ExpectValid("apps", "StatefulSet", kSts);
  Json bad = ParseYaml(kSts);
  bad["spec"]["podManagementPolicy"] = "Random";
  EXPECT_THAT(Causes(InvalidError("apps", "StatefulSet", bad)),
              ElementsAre("spec.podManagementPolicy|FieldValueInvalid|Invalid value: \"Random\": "
                          "must be 'OrderedReady' or 'Parallel'"));
  Json policy = ParseYaml(kSts);
  policy["spec"]["persistentVolumeClaimRetentionPolicy"] = {{"whenDeleted", "Delete"},
                                                            {"whenScaled", "Keep"}};
  EXPECT_THAT(Causes(InvalidError("apps", "StatefulSet", policy)),
              ElementsAre("spec.persistentVolumeClaimRetentionPolicy.whenScaled|"
                          "FieldValueNotSupported|Unsupported value: \"Keep\": supported "
                          "values: \"Retain\", \"Delete\""));
  Json old = Defaulted("apps", "StatefulSet", kSts);
  Json renamed = ParseYaml(kSts);
  renamed["spec"]["serviceName"] = "other";
  renamed["spec"]["replicas"] = 3;
  EXPECT_THAT(Causes(InvalidError("apps", "StatefulSet", renamed, &old)),
              ElementsAre("spec|FieldValueForbidden|Forbidden: updates to statefulset spec for "
                          "fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', "
                          "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are "
                          "forbidden"));
}

// --------------------------------------------------------------------------
// batch/v1

constexpr const char* kJob = R"(
metadata: {name: pi, namespace: default}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: pi, image: perl, command: [perl, -e, "print 1"]}]
)";

TEST(ValidateBatchTest, Job) {
  ExpectValid("batch", "Job", kJob);
  Json always = ParseYaml(kJob);
  always["spec"]["template"]["spec"].erase("restartPolicy");
  EXPECT_THAT(Causes(InvalidError("batch", "Job", always)),
              ElementsAre("spec.template.spec.restartPolicy|FieldValueRequired|Required value: "
                          "valid values: \"OnFailure\", \"Never\""));
  Json negative = ParseYaml(kJob);
  negative["spec"]["parallelism"] = -1;
  negative["spec"]["backoffLimit"] = -1;
  EXPECT_THAT(Causes(InvalidError("batch", "Job", negative)),
              ElementsAre("spec.parallelism|FieldValueInvalid|Invalid value: -1: must be greater "
                          "than or equal to 0",
                          "spec.backoffLimit|FieldValueInvalid|Invalid value: -1: must be greater "
                          "than or equal to 0"));
  Json old = Defaulted("batch", "Job", kJob);
  Json changed = old;
  changed["spec"]["template"]["spec"]["containers"][0]["image"] = "perl:5";
  auto causes = Causes(InvalidError("batch", "Job", changed, &old));
  ASSERT_EQ(causes.size(), 1u);
  EXPECT_THAT(causes[0], StartsWith("spec.template|FieldValueInvalid|Invalid value: {"));
  EXPECT_THAT(causes[0], HasSubstr("}: field is immutable"));
}

TEST(ValidateBatchTest, CronJob) {
  constexpr const char* kCron = R"(
metadata: {name: tick, namespace: default}
spec:
  schedule: "*/5 * * * 1-5"
  jobTemplate:
    spec:
      template:
        spec: {restartPolicy: OnFailure, containers: [{name: c, image: busybox}]}
)";
  ExpectValid("batch", "CronJob", kCron);
  Json few = ParseYaml(kCron);
  few["spec"]["schedule"] = "* * *";
  few["spec"]["concurrencyPolicy"] = "Sometimes";
  EXPECT_THAT(Causes(InvalidError("batch", "CronJob", few)),
              ElementsAre("spec.schedule|FieldValueInvalid|Invalid value: \"* * *\": expected "
                          "exactly 5 fields, found 3: [* * *]",
                          "spec.concurrencyPolicy|FieldValueNotSupported|Unsupported value: "
                          "\"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\""));
  Json range = ParseYaml(kCron);
  range["spec"]["schedule"] = "61 * * * *";
  range["metadata"]["name"] = std::string(53, 'a');
  EXPECT_THAT(Causes(InvalidError("batch", "CronJob", range)),
              ElementsAre("metadata.name|FieldValueInvalid|Invalid value: \"" +
                              std::string(53, 'a') + "\": must be no more than 52 characters",
                          "spec.schedule|FieldValueInvalid|Invalid value: \"61 * * * *\": end of "
                          "range (61) above maximum (59): 61"));
  ExpectValid("batch", "CronJob", R"(
metadata: {name: tick, namespace: default}
spec:
  schedule: "@hourly"
  jobTemplate: {spec: {template: {spec: {restartPolicy: Never, containers: [{name: c, image: b}]}}}}
)");
}

TEST(ValidateBatchTest, CronJobTimeZone) {
  constexpr const char* kCron = R"(
metadata: {name: tick, namespace: default}
spec:
  schedule: "0 3 * * *"
  timeZone: Etc/UTC
  jobTemplate: {spec: {template: {spec: {restartPolicy: Never, containers: [{name: c, image: b}]}}}}
)";
  ExpectValid("batch", "CronJob", kCron);
  Json utc = ParseYaml(kCron);
  utc["spec"]["timeZone"] = "UTC";
  ExpectValid("batch", "CronJob", utc.dump().c_str());
  struct Case {
    const char* zone;
    const char* message;
  } cases[] = {
      {"", "Invalid value: \"\": timeZone must be nil or non-empty string"},
      {"Mars/Olympus_Mons",
       "Invalid value: \"Mars/Olympus_Mons\": unknown time zone "
       "Mars/Olympus_Mons"},
      {"../etc/passwd", "Invalid value: \"../etc/passwd\": unknown time zone ../etc/passwd"},
      {"Local",
       "Invalid value: \"Local\": timeZone must be an explicit time zone as defined in "
       "https://www.iana.org/time-zones"},
  };
  for (const auto& c : cases) {
    Json bad = ParseYaml(kCron);
    bad["spec"]["timeZone"] = c.zone;
    EXPECT_THAT(Causes(InvalidError("batch", "CronJob", bad)),
                ElementsAre(std::string("spec.timeZone|FieldValueInvalid|") + c.message))
        << c.zone;
  }
  Json tz = ParseYaml(kCron);
  tz["spec"].erase("timeZone");
  tz["spec"]["schedule"] = "CRON_TZ=UTC 0 3 * * *";
  EXPECT_THAT(Causes(InvalidError("batch", "CronJob", tz)),
              ElementsAre("spec.schedule|FieldValueInvalid|Invalid value: \"CRON_TZ=UTC 0 3 * * "
                          "*\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead"));
  // An update of a CronJob whose schedule already had TZ= may keep it, not beside a timeZone.
  Json old = tz;
  ApplyDefaults("batch", "CronJob", old);
  ExpectValid("batch", "CronJob", tz.dump().c_str(), &old);
  Json both = tz;
  both["spec"]["timeZone"] = "UTC";
  EXPECT_THAT(Causes(InvalidError("batch", "CronJob", both, &old)),
              ElementsAre("spec.schedule|FieldValueInvalid|Invalid value: \"CRON_TZ=UTC 0 3 * * "
                          "*\": cannot use both timeZone field and TZ or CRON_TZ in schedule"));
}

TEST(DefaultsTest, ReplicationControllerTakesSelectorAndLabelsFromItsTemplate) {
  Json rc = Defaulted("", "ReplicationController", R"(
metadata: {name: web, namespace: default}
spec:
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: nginx}]}
)");
  EXPECT_EQ(rc["spec"]["selector"], ParseYaml("{app: web}"));
  EXPECT_EQ(rc["metadata"]["labels"], ParseYaml("{app: web}"));
  EXPECT_EQ(rc["spec"]["replicas"], 1);
  EXPECT_EQ(rc["spec"]["template"]["spec"]["restartPolicy"], "Always");
  Json own = Defaulted("", "ReplicationController", R"(
metadata: {name: web, namespace: default, labels: {mine: x}}
spec:
  replicas: 0
  selector: {app: web, tier: a}
  template: {metadata: {labels: {app: web, tier: a}}, spec: {containers: [{name: c, image: i}]}}
)");
  EXPECT_EQ(own["spec"]["selector"], ParseYaml("{app: web, tier: a}"));
  EXPECT_EQ(own["metadata"]["labels"], ParseYaml("{mine: x}"));
  EXPECT_EQ(own["spec"]["replicas"], 0);
}

TEST(ValidateCoreTest, ReplicationController) {
  constexpr const char* kRc = R"(
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {app: web}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: nginx}]}
)";
  ExpectValid("", "ReplicationController", kRc);
  Json mismatch = ParseYaml(kRc);
  mismatch["spec"]["replicas"] = -1;
  mismatch["spec"]["template"]["metadata"]["labels"] = {{"app", "other"}};
  mismatch["spec"]["template"]["spec"]["restartPolicy"] = "Never";
  EXPECT_THAT(Causes(InvalidError("", "ReplicationController", mismatch)),
              ElementsAre("spec.replicas|FieldValueInvalid|Invalid value: -1: must be greater "
                          "than or equal to 0",
                          "spec.template.metadata.labels|FieldValueInvalid|Invalid value: "
                          "map[string]string{\"app\":\"other\"}: `selector` does not match "
                          "template `labels`",
                          "spec.template.spec.restartPolicy|FieldValueNotSupported|Unsupported "
                          "value: \"Never\": supported values: \"Always\""));
  Json no_template = ParseYaml(R"(
metadata: {name: web, namespace: default}
spec: {selector: {app: web}}
)");
  EXPECT_THAT(Causes(InvalidError("", "ReplicationController", no_template)),
              ElementsAre("spec.template|FieldValueRequired|Required value"));
  Json no_selector = ParseYaml(R"(
metadata: {name: web, namespace: default}
spec: {template: {spec: {containers: [{name: c, image: nginx}]}}}
)");
  EXPECT_THAT(Causes(InvalidError("", "ReplicationController", no_selector)),
              ElementsAre("spec.selector|FieldValueRequired|Required value"));
}

TEST(ValidateAppsTest, ControllerRevision) {
  ExpectValid("apps", "ControllerRevision", R"(
metadata: {name: ds-1, namespace: default}
data: {spec: {template: {}}}
revision: 1
)");
  EXPECT_THAT(CausesOf("apps", "ControllerRevision", R"(
metadata: {name: ds-1, namespace: default}
revision: -1
)"),
              ElementsAre("data|FieldValueRequired|Required value: data is mandatory",
                          "revision|FieldValueInvalid|Invalid value: -1: must be greater than or "
                          "equal to 0"));
  Json old = ParseYaml("{metadata: {name: r, namespace: default}, data: {a: 1}, revision: 1}");
  Json changed = old;
  changed["data"]["a"] = 2;
  EXPECT_THAT(Causes(InvalidError("apps", "ControllerRevision", changed, &old)),
              ElementsAre(HasSubstr("data|FieldValueInvalid|")));
}

TEST(ValidatePolicyTest, PodDisruptionBudget) {
  ExpectValid("policy", "PodDisruptionBudget", R"(
metadata: {name: web, namespace: default}
spec: {minAvailable: 2, selector: {matchLabels: {app: web}}}
)");
  ExpectValid("policy", "PodDisruptionBudget", R"(
metadata: {name: web, namespace: default}
spec: {maxUnavailable: "25%", unhealthyPodEvictionPolicy: AlwaysAllow}
)");
  // A PDB without a selector is valid (it selects no pods).
  ExpectValid("policy", "PodDisruptionBudget", "{metadata: {name: p, namespace: default}}");
  auto both = CausesOf("policy", "PodDisruptionBudget", R"(
metadata: {name: web, namespace: default}
spec: {minAvailable: 1, maxUnavailable: 1, selector: {matchLabels: {app: web}}}
)");
  ASSERT_EQ(both.size(), 1u);
  EXPECT_THAT(both[0], StartsWith("spec|FieldValueInvalid|Invalid value: "
                                  "policy.PodDisruptionBudgetSpec{MinAvailable:"));
  EXPECT_THAT(both[0], HasSubstr("UnhealthyPodEvictionPolicy:"
                                 "(*policy.UnhealthyPodEvictionPolicyType)(nil)}: minAvailable "
                                 "and maxUnavailable cannot be both set"));
  EXPECT_THAT(CausesOf("policy", "PodDisruptionBudget", R"(
metadata: {name: web, namespace: default}
spec: {minAvailable: -1, selector: {matchLabels: {app: web}}}
)"),
              ElementsAre("spec.minAvailable|FieldValueInvalid|Invalid value: -1: must be greater "
                          "than or equal to 0"));
  EXPECT_THAT(
      CausesOf("policy", "PodDisruptionBudget", R"(
metadata: {name: web, namespace: default}
spec: {maxUnavailable: "150%", unhealthyPodEvictionPolicy: Sometimes}
)"),
      ElementsAre("spec.maxUnavailable|FieldValueInvalid|Invalid value: 150%: must not be greater "
                  "than 100%",
                  "spec.unhealthyPodEvictionPolicy|FieldValueNotSupported|Unsupported value: "
                  "\"Sometimes\": supported values: \"AlwaysAllow\", \"IfHealthyBudget\""));
  EXPECT_THAT(CausesOf("policy", "PodDisruptionBudget", R"(
metadata: {name: web, namespace: default}
spec: {minAvailable: "half"}
)"),
              ElementsAre(StartsWith("spec.minAvailable|FieldValueInvalid|Invalid value: half: a "
                                     "valid percent string must be")));
  Error e = InvalidError("policy", "PodDisruptionBudget",
                         ParseYaml("{metadata: {name: p, namespace: default}, spec: "
                                   "{selector: {matchExpressions: [{key: a, operator: Near}]}}}"));
  EXPECT_THAT(e.message(), StartsWith("PodDisruptionBudget.policy \"p\" is invalid: "));
}

TEST(DefaultsTest, TolerationSecondsComeFromTheOptions) {
  Json pod = ParseYaml("{metadata: {name: p}, spec: {containers: [{name: c, image: i}]}}");
  ApplyDefaults("", "Pod", pod, {.default_toleration_seconds = 5});
  ASSERT_EQ(pod["spec"]["tolerations"].size(), 2u);
  for (const auto& t : pod["spec"]["tolerations"]) EXPECT_EQ(t["tolerationSeconds"], 5);
  // Templates are not pods: admission leaves them alone.
  Json rs = ParseYaml(R"({metadata: {name: r}, spec: {selector: {matchLabels: {a: b}},
      template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}]}}}})");
  ApplyDefaults("apps", "ReplicaSet", rs, {.default_toleration_seconds = 5});
  EXPECT_FALSE(rs["spec"]["template"]["spec"].contains("tolerations"));
}

// --------------------------------------------------------------------------
// ConfigMaps, Secrets, Namespaces, Nodes, Endpoints

TEST(ValidateCoreTest, ConfigMap) {
  ExpectValid("", "ConfigMap",
              "{metadata: {name: cfg, namespace: default}, data: {app.conf: x, KEY_1: y}}");
  EXPECT_THAT(
      CausesOf("", "ConfigMap", "{metadata: {name: cfg, namespace: default}, data: {bad key: x}}"),
      ElementsAre("data[bad key]|FieldValueInvalid|Invalid value: \"bad key\": a valid "
                  "config key must consist of alphanumeric characters, '-', '_' or '.' "
                  "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for "
                  "validation is '[-._a-zA-Z0-9]+')"));
  Json big = ParseYaml("{metadata: {name: big, namespace: default}}");
  big["data"]["blob"] = std::string(1024 * 1024 + 1, 'x');
  Error e = InvalidError("", "ConfigMap", big);
  EXPECT_EQ(e.message(),
            "ConfigMap \"big\" is invalid: : Too long: must have at most 1048576 bytes");
  EXPECT_THAT(Causes(e),
              ElementsAre("|FieldValueTooLong|Too long: must have at most 1048576 bytes"));

  Json old =
      Defaulted("", "ConfigMap",
                "{metadata: {name: cfg, namespace: default}, immutable: true, data: {a: '1'}}");
  EXPECT_THAT(
      CausesOf("", "ConfigMap",
               "{metadata: {name: cfg, namespace: default}, immutable: true, data: {a: '2'}}",
               &old),
      ElementsAre("data|FieldValueForbidden|Forbidden: field is immutable when `immutable` "
                  "is set"));
}

TEST(ValidateCoreTest, Secret) {
  ExpectValid("", "Secret",
              "{metadata: {name: s, namespace: default}, data: {password: aHVudGVyMg==}}");
  ExpectValid("", "Secret", "{metadata: {name: s, namespace: default}, stringData: {password: x}}");
  try {
    ValidateObject(
        "", "Secret",
        Defaulted("", "Secret", "{metadata: {name: s, namespace: default}, data: {a: '!!!'}}"),
        nullptr);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kBadRequest);
    EXPECT_EQ(e.message(),
              "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 "
              "data at input byte 0");
  }
  EXPECT_THAT(
      CausesOf("", "Secret", "{metadata: {name: s, namespace: default}, type: kubernetes.io/tls}"),
      ElementsAre("data[tls.crt]|FieldValueRequired|Required value",
                  "data[tls.key]|FieldValueRequired|Required value"));
  Json old = Defaulted("", "Secret", "{metadata: {name: s, namespace: default}}");
  EXPECT_THAT(CausesOf("", "Secret", R"(
metadata: {name: s, namespace: default}
type: kubernetes.io/basic-auth
data: {username: YQ==}
)",
                       &old),
              ElementsAre("type|FieldValueInvalid|Invalid value: \"kubernetes.io/basic-auth\": "
                          "field is immutable"));
}

TEST(ValidateCoreTest, NamespaceNodeServiceAccountEvent) {
  ExpectValid("", "Namespace", "{metadata: {name: team-a}}");
  EXPECT_THAT(CausesOf("", "Namespace", "{metadata: {name: team.a}}"),
              ElementsAre("metadata.name|FieldValueInvalid|Invalid value: \"team.a\": must not "
                          "contain dots"));
  EXPECT_THAT(CausesOf("", "Namespace", "{metadata: {name: Team}}"),
              ElementsAre(std::string("metadata.name|FieldValueInvalid|Invalid value: \"Team\": ") +
                          kDnsLabelMsg));

  ExpectValid("", "Node",
              "{metadata: {name: kin-dev-worker-1}, spec: {podCIDR: 10.244.1.0/24, podCIDRs: "
              "[10.244.1.0/24]}}");
  EXPECT_THAT(
      CausesOf("", "Node", "{metadata: {name: n1}, spec: {taints: [{key: a, effect: Sometimes}]}}"),
      ElementsAre("metadata.taints[0].effect|FieldValueNotSupported|Unsupported value: "
                  "\"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", "
                  "\"NoExecute\""));

  ExpectValid("", "ServiceAccount", "{metadata: {name: default, namespace: default}}");
  ExpectValid("", "Event",
              "{metadata: {name: web.17a8b9c0d1e2f3a4, namespace: default}, reason: Started}");
  ExpectValid("events.k8s.io", "Event",
              "{metadata: {name: web.17a8b9c0d1e2f3a4, namespace: default}}");
  EXPECT_THAT(CausesOf("", "ServiceAccount", "{metadata: {name: Bad, namespace: default}}"),
              ElementsAre(HasSubstr("metadata.name|FieldValueInvalid|Invalid value: \"Bad\"")));
}

TEST(ValidateCoreTest, Endpoints) {
  ExpectValid("", "Endpoints", R"(
metadata: {name: web, namespace: default}
subsets: [{addresses: [{ip: 10.244.1.5, nodeName: n1}], ports: [{port: 80}]}]
)");
  EXPECT_THAT(CausesOf("", "Endpoints", R"(
metadata: {name: web, namespace: default}
subsets:
- {addresses: [{ip: not-an-ip}, {ip: 127.0.0.1}]}
- {ports: [{port: 80}]}
)"),
              ElementsAre("subsets[0].addresses[0].ip|FieldValueInvalid|Invalid value: "
                          "\"not-an-ip\": must be a valid IP address, (e.g. 10.9.8.7 or "
                          "2001:db8::ffff)",
                          "subsets[0].addresses[0].ip|FieldValueInvalid|Invalid value: "
                          "\"not-an-ip\": must be a valid IP address",
                          "subsets[0].addresses[1].ip|FieldValueInvalid|Invalid value: "
                          "\"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)",
                          "subsets[1]|FieldValueRequired|Required value: must specify `addresses` "
                          "or `notReadyAddresses`"));
}

// --------------------------------------------------------------------------
// discovery, networking, coordination

TEST(ValidateNetworkingTest, EndpointSlice) {
  ExpectValid("discovery.k8s.io", "EndpointSlice", R"(
metadata: {name: web-abc12, namespace: default}
addressType: IPv4
endpoints: [{addresses: [10.244.1.5], conditions: {ready: true}, nodeName: n1}]
ports: [{name: http, port: 80}]
)");
  EXPECT_THAT(CausesOf("discovery.k8s.io", "EndpointSlice", R"(
metadata: {name: web-abc12, namespace: default}
addressType: IPv4
endpoints: [{addresses: ["fe80::1"]}, {}]
ports: [{port: 80, protocol: HTTP}]
)"),
              ElementsAre("endpoints[0].addresses[0]|FieldValueInvalid|Invalid value: \"fe80::1\": "
                          "must be a valid IPv4 address",
                          "endpoints[1].addresses|FieldValueRequired|Required value: must contain "
                          "at least 1 address",
                          "ports[0].protocol|FieldValueNotSupported|Unsupported value: \"HTTP\": "
                          "supported values: \"SCTP\", \"TCP\", \"UDP\""));
  EXPECT_THAT(CausesOf("discovery.k8s.io", "EndpointSlice",
                       "{metadata: {name: s, namespace: default}, addressType: IPX}"),
              ElementsAre("addressType|FieldValueNotSupported|Unsupported value: \"IPX\": "
                          "supported values: \"FQDN\", \"IPv4\", \"IPv6\""));
}

TEST(ValidateNetworkingTest, Ingress) {
  constexpr const char* kIngress = R"(
metadata: {name: web, namespace: default}
spec:
  ingressClassName: kin
  rules:
  - host: web.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
      - {path: /api, pathType: Exact, backend: {service: {name: api, port: {name: http}}}}
  tls: [{hosts: ["*.example.com"], secretName: web-tls}]
)";
  ExpectValid("networking.k8s.io", "Ingress", kIngress);
  EXPECT_THAT(CausesOf("networking.k8s.io", "Ingress", R"(
metadata: {name: web, namespace: default}
spec:
  rules:
  - http:
      paths:
      - {path: api, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
      - {path: /, backend: {service: {name: web, port: {number: 80}}}}
      - {path: /, pathType: Regex, backend: {service: {name: web, port: {number: 80}}}}
      - {path: /, pathType: Prefix, backend: {service: {name: web}}}
)"),
              ElementsAre("spec.rules[0].http.paths[0].path|FieldValueInvalid|Invalid value: "
                          "\"api\": must be an absolute path",
                          "spec.rules[0].http.paths[1].pathType|FieldValueRequired|Required value: "
                          "pathType must be specified",
                          "spec.rules[0].http.paths[2].pathType|FieldValueNotSupported|Unsupported "
                          "value: \"Regex\": supported values: \"Exact\", "
                          "\"ImplementationSpecific\", \"Prefix\"",
                          "spec.rules[0].http.paths[3].backend|FieldValueRequired|Required value: "
                          "port name or number is required"));
  EXPECT_THAT(
      CausesOf("networking.k8s.io", "Ingress", "{metadata: {name: web, namespace: default}}"),
      ElementsAre("spec|FieldValueInvalid|Invalid value: []networking.IngressRule(nil): "
                  "either `defaultBackend` or `rules` must be specified"));
}

TEST(ValidateNetworkingTest, NetworkPolicy) {
  ExpectValid("networking.k8s.io", "NetworkPolicy", R"(
metadata: {name: allow-web, namespace: default}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {role: client}}}, {namespaceSelector: {}}]
    ports: [{port: 80}, {port: http, protocol: TCP}, {port: 8000, endPort: 8080}]
  egress:
  - to: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.1.0/24]}}]
)");
  EXPECT_THAT(CausesOf("networking.k8s.io", "NetworkPolicy", R"(
metadata: {name: bad, namespace: default}
spec:
  podSelector: {}
  ingress:
  - from: [{}]
    ports: [{port: 80, protocol: HTTP}]
  egress:
  - to: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/24]}}]
  policyTypes: [Sideways]
)"),
              ElementsAre("spec.ingress[0].ports[0].protocol|FieldValueNotSupported|Unsupported "
                          "value: \"HTTP\": supported values: \"TCP\", \"UDP\", \"SCTP\"",
                          "spec.ingress[0].from[0]|FieldValueRequired|Required value: must specify "
                          "a peer",
                          "spec.egress[0].to[0].ipBlock.except[0]|FieldValueInvalid|Invalid value: "
                          "\"10.1.0.0/24\": must be a strict subset of `cidr`",
                          "spec.policyTypes[0]|FieldValueNotSupported|Unsupported value: "
                          "\"Sideways\": supported values: \"Ingress\", \"Egress\""));
}

TEST(ValidateNetworkingTest, IngressClassAndLease) {
  ExpectValid("networking.k8s.io", "IngressClass",
              "{metadata: {name: kin}, spec: {controller: kin.dev/ingress}}");
  EXPECT_THAT(CausesOf("networking.k8s.io", "IngressClass", "{metadata: {name: kin}, spec: {}}"),
              ElementsAre("spec.controller|FieldValueRequired|Required value"));
  EXPECT_THAT(CausesOf("networking.k8s.io", "IngressClass",
                       "{metadata: {name: kin}, spec: {controller: nginx}}"),
              ElementsAre("spec.controller|FieldValueInvalid|Invalid value: \"nginx\": must be a "
                          "domain-prefixed path (such as \"acme.io/foo\")"));

  ExpectValid("coordination.k8s.io", "Lease",
              "{metadata: {name: n1, namespace: kube-node-lease}, spec: {holderIdentity: n1, "
              "leaseDurationSeconds: 40}}");
  EXPECT_THAT(
      CausesOf(
          "coordination.k8s.io", "Lease",
          "{metadata: {name: n1, namespace: kube-node-lease}, spec: {leaseDurationSeconds: 0}}"),
      ElementsAre("spec.leaseDurationSeconds|FieldValueInvalid|Invalid value: 0: must be "
                  "greater than 0"));
}

// --------------------------------------------------------------------------
// Helpers exposed for other modules

TEST(ValidateRbacTest, RolesAndBindings) {
  const std::string g = "rbac.authorization.k8s.io";
  ExpectValid(g, "Role", R"(
metadata: {name: pod-reader, namespace: default}
rules:
- {apiGroups: [""], resources: [pods, pods/log], verbs: [get, list]}
)");
  EXPECT_THAT(CausesOf(g, "Role", R"(
metadata: {name: a/b, namespace: default}
rules:
- {resources: [pods]}
- {nonResourceURLs: [/healthz], verbs: [get]}
)"),
              ElementsAre("metadata.name|FieldValueInvalid|Invalid value: \"a/b\": may not "
                          "contain '/'",
                          "rules[0].verbs|FieldValueRequired|Required value: verbs must contain "
                          "at least one value",
                          "rules[0].apiGroups|FieldValueRequired|Required value: resource rules "
                          "must supply at least one api group",
                          "rules[1].nonResourceURLs|FieldValueInvalid|Invalid value: "
                          "[]string{\"/healthz\"}: namespaced rules cannot apply to non-resource "
                          "URLs"));
  ExpectValid(g, "ClusterRole", R"(
metadata: {name: "system:x"}
rules: [{nonResourceURLs: [/healthz], verbs: [get]}]
)");
  EXPECT_THAT(CausesOf(g, "ClusterRole", R"(
metadata: {name: agg}
aggregationRule: {clusterRoleSelectors: []}
)"),
              ElementsAre("aggregationRule.clusterRoleSelectors|FieldValueRequired|Required "
                          "value: at least one clusterRoleSelector required if aggregationRule "
                          "is non-nil"));
  // Defaults: the roleRef's and User/Group subjects' apiGroup.
  Json rb = Defaulted(g, "RoleBinding", R"(
metadata: {name: rb, namespace: default}
roleRef: {kind: Role, name: pod-reader}
subjects: [{kind: User, name: alice}, {kind: ServiceAccount, name: default}]
)");
  EXPECT_EQ(rb["roleRef"]["apiGroup"], g);
  EXPECT_EQ(rb["subjects"][0]["apiGroup"], g);
  EXPECT_FALSE(rb["subjects"][1].contains("apiGroup"));
  ValidateObject(g, "RoleBinding", rb, nullptr);
  EXPECT_THAT(CausesOf(g, "ClusterRoleBinding", R"(
metadata: {name: crb}
roleRef: {kind: Role, name: r}
subjects: [{kind: ServiceAccount, name: default}, {kind: Robot, name: r2d2}]
)"),
              ElementsAre("roleRef.kind|FieldValueNotSupported|Unsupported value: \"Role\": "
                          "supported values: \"ClusterRole\"",
                          "subjects[0].namespace|FieldValueRequired|Required value",
                          "subjects[1].kind|FieldValueNotSupported|Unsupported value: \"Robot\": "
                          "supported values: \"ServiceAccount\", \"User\", \"Group\""));
}

TEST(ValidateRbacTest, RoleRefIsImmutable) {
  const std::string g = "rbac.authorization.k8s.io";
  Json old = Defaulted(g, "RoleBinding", R"(
metadata: {name: rb, namespace: default, resourceVersion: "1"}
roleRef: {kind: Role, name: pod-reader}
)");
  Json now = old;
  now["roleRef"]["name"] = "other";
  Error e = InvalidError(g, "RoleBinding", now, &old);
  EXPECT_EQ(e.http_status(), 422);
  EXPECT_EQ(e.message(),
            "RoleBinding.rbac.authorization.k8s.io \"rb\" is invalid: roleRef: Invalid value: "
            "rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"Role\", "
            "Name:\"other\"}: cannot change roleRef");
  now = old;
  now["subjects"] = Json::array({{{"kind", "Group"}, {"name", "dev"}}});
  ApplyDefaults(g, "RoleBinding", now);
  ValidateObject(g, "RoleBinding", now, &old);  // subjects may change
}

// ---- PersistentVolumeClaim, PersistentVolume, StorageClass ---------------------------

constexpr const char* kClaimYaml = R"(
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: default}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: standard
  resources: {requests: {storage: 1Gi}}
)";

TEST(ValidateStorageTest, ClaimDefaultsAndRequiredFields) {
  Json pvc = Defaulted("", "PersistentVolumeClaim", kClaimYaml);
  EXPECT_EQ(pvc["spec"]["volumeMode"], "Filesystem");
  EXPECT_EQ(pvc["status"]["phase"], "Pending");
  ExpectValid("", "PersistentVolumeClaim", kClaimYaml);
  Error e = InvalidError("", "PersistentVolumeClaim", ParseYaml(R"(
metadata: {name: data, namespace: default}
spec: {}
)"));
  EXPECT_EQ(e.message(),
            "PersistentVolumeClaim \"data\" is invalid: [spec.accessModes: Required value: at "
            "least 1 access mode is required, spec.resources[storage]: Required value]");
  EXPECT_THAT(CausesOf("", "PersistentVolumeClaim", R"(
metadata: {name: data, namespace: default}
spec:
  accessModes: [ReadWriteOncePod, Sometimes]
  volumeMode: Raw
  storageClassName: Bad_Class
  resources: {requests: {storage: "0"}}
)"),
              ElementsAre("spec.accessModes|FieldValueNotSupported|Unsupported value: "
                          "\"Sometimes\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", "
                          "\"ReadWriteOnce\", \"ReadWriteOncePod\"",
                          "spec.accessModes|FieldValueForbidden|Forbidden: may not use "
                          "ReadWriteOncePod with other access modes",
                          "spec.resources[storage]|FieldValueInvalid|Invalid value: \"0\": must "
                          "be greater than zero",
                          std::string("spec.storageClassName|FieldValueInvalid|Invalid value: "
                                      "\"Bad_Class\": ") +
                              kDnsSubdomainMsg,
                          "spec.volumeMode|FieldValueNotSupported|Unsupported value: \"Raw\": "
                          "supported values: \"Block\", \"Filesystem\""));
  // A quantity that does not parse is a decode error, as the real decoder's.
  Error bad = InvalidError("", "PersistentVolumeClaim", ParseYaml(R"(
metadata: {name: data, namespace: default}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: lots}}
)"));
  EXPECT_EQ(bad.code(), Code::kBadRequest);
}

TEST(ValidateStorageTest, ClaimSpecImmutableButBindingAndGrowth) {
  Json old = Defaulted("", "PersistentVolumeClaim", kClaimYaml);
  // The binder sets volumeName once.
  Json bound = old;
  bound["spec"]["volumeName"] = "pv-1";
  bound["status"]["phase"] = "Bound";
  bound["status"]["capacity"] = {{"storage", "1Gi"}};
  ValidateObject("", "PersistentVolumeClaim", bound, &old);
  // Growth of a bound claim's request is allowed; going back down too (to
  // undo an expansion that failed), but only while above status.capacity.
  Json grown = bound;
  grown["spec"]["resources"]["requests"]["storage"] = "2Gi";
  ValidateObject("", "PersistentVolumeClaim", grown, &bound);
  Json shrunk = grown;
  shrunk["spec"]["resources"]["requests"]["storage"] = "1Gi";
  EXPECT_THAT(Causes(InvalidError("", "PersistentVolumeClaim", shrunk, &grown)),
              ElementsAre("spec.resources.requests.storage|FieldValueForbidden|Forbidden: field "
                          "can not be less than status.capacity"));
  shrunk["spec"]["resources"]["requests"]["storage"] = "512Mi";
  EXPECT_THAT(Causes(InvalidError("", "PersistentVolumeClaim", shrunk, &grown)),
              ElementsAre("spec.resources.requests.storage|FieldValueForbidden|Forbidden: field "
                          "can not be less than status.capacity"));
  shrunk["spec"]["resources"]["requests"]["storage"] = "1536Mi";
  ValidateObject("", "PersistentVolumeClaim", shrunk, &grown);
  Json changed = bound;
  changed["spec"]["accessModes"] = {"ReadWriteMany"};
  EXPECT_THAT(Causes(InvalidError("", "PersistentVolumeClaim", changed, &bound)),
              ElementsAre("spec|FieldValueForbidden|Forbidden: spec is immutable after creation "
                          "except resources.requests and volumeAttributesClassName for bound "
                          "claims"));
  Json rebound = bound;
  rebound["spec"]["volumeName"] = "pv-2";
  EXPECT_THAT(Causes(InvalidError("", "PersistentVolumeClaim", rebound, &bound)),
              ElementsAre(StartsWith("spec|FieldValueForbidden|")));
  // An unbound claim's request cannot change either.
  Json unbound_grown = old;
  unbound_grown["spec"]["resources"]["requests"]["storage"] = "2Gi";
  EXPECT_THAT(Causes(InvalidError("", "PersistentVolumeClaim", unbound_grown, &old)),
              ElementsAre(StartsWith("spec|FieldValueForbidden|")));
}

constexpr const char* kVolumeYaml = R"(
apiVersion: v1
kind: PersistentVolume
metadata: {name: pv-1}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: /tmp/pv-1}
)";

TEST(ValidateStorageTest, VolumeFields) {
  Json pv = Defaulted("", "PersistentVolume", kVolumeYaml);
  EXPECT_EQ(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
  EXPECT_EQ(pv["status"]["phase"], "Pending");
  ExpectValid("", "PersistentVolume", kVolumeYaml);
  EXPECT_THAT(CausesOf("", "PersistentVolume", R"(
metadata: {name: pv-1, namespace: default}
spec:
  capacity: {storage: 1Gi, cpu: "1"}
  persistentVolumeReclaimPolicy: Recycled
  claimRef: {name: data}
)"),
              ElementsAre("metadata.namespace|FieldValueForbidden|Forbidden: not allowed on this "
                          "type",
                          "spec.accessModes|FieldValueRequired|Required value: must specify at "
                          "least 1 access mode",
                          "spec.capacity|FieldValueNotSupported|Unsupported value: \"cpu\": "
                          "supported values: \"storage\"",
                          "spec.persistentVolumeReclaimPolicy|FieldValueNotSupported|Unsupported "
                          "value: \"Recycled\": supported values: \"Delete\", \"Recycle\", "
                          "\"Retain\"",
                          "spec|FieldValueRequired|Required value: must specify a volume type",
                          "spec.claimRef.namespace|FieldValueRequired|Required value"));
  EXPECT_THAT(CausesOf("", "PersistentVolume", R"(
metadata: {name: pv-1}
spec:
  accessModes: [ReadWriteOnce]
  local: {path: /mnt/disk}
  hostPath: {path: /tmp/x}
)"),
              ElementsAre("spec.capacity|FieldValueRequired|Required value",
                          "spec.local|FieldValueForbidden|Forbidden: may not specify more than 1 "
                          "volume type",
                          "spec.nodeAffinity|FieldValueRequired|Required value: Local volume "
                          "requires node affinity"));
  // The volume source is immutable; status and claimRef are not.
  Json old = Defaulted("", "PersistentVolume", kVolumeYaml);
  Json moved = old;
  moved["spec"]["hostPath"]["path"] = "/tmp/elsewhere";
  EXPECT_THAT(Causes(InvalidError("", "PersistentVolume", moved, &old)),
              ElementsAre("spec.persistentvolumesource|FieldValueForbidden|Forbidden: "
                          "spec.persistentvolumesource is immutable after creation"));
  Json claimed = old;
  claimed["spec"]["claimRef"] = {{"namespace", "default"}, {"name", "data"}};
  ValidateObject("", "PersistentVolume", claimed, &old);
}

TEST(ValidateStorageTest, StorageClassFields) {
  const char* sc = R"(
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: fast}
provisioner: rancher.io/local-path
)";
  Json d = Defaulted("storage.k8s.io", "StorageClass", sc);
  EXPECT_EQ(d["reclaimPolicy"], "Delete");
  EXPECT_EQ(d["volumeBindingMode"], "Immediate");
  ExpectValid("storage.k8s.io", "StorageClass", sc);
  Error e = InvalidError("storage.k8s.io", "StorageClass", ParseYaml(R"(
metadata: {name: fast}
reclaimPolicy: Recycle
volumeBindingMode: Later
)"));
  EXPECT_THAT(e.message(), StartsWith("StorageClass.storage.k8s.io \"fast\" is invalid: ["));
  EXPECT_THAT(Causes(e),
              ElementsAre("provisioner|FieldValueRequired|Required value",
                          "reclaimPolicy|FieldValueNotSupported|Unsupported value: \"Recycle\": "
                          "supported values: \"Delete\", \"Retain\"",
                          "volumeBindingMode|FieldValueNotSupported|Unsupported value: \"Later\": "
                          "supported values: \"Immediate\", \"WaitForFirstConsumer\""));
  Json old = d;
  Json next = d;
  next["provisioner"] = "example.com/other";
  next["volumeBindingMode"] = "WaitForFirstConsumer";
  EXPECT_THAT(Causes(InvalidError("storage.k8s.io", "StorageClass", next, &old)),
              ElementsAre("provisioner|FieldValueForbidden|Forbidden: updates to provisioner are "
                          "forbidden.",
                          "volumeBindingMode|FieldValueInvalid|Invalid value: "
                          "\"WaitForFirstConsumer\": field is immutable"));
}

TEST(QuantityTest, ParsesKubernetesQuantities) {
  EXPECT_DOUBLE_EQ(*ParseQuantity("100m"), 0.1);
  EXPECT_DOUBLE_EQ(*ParseQuantity("1Gi"), 1073741824.0);
  EXPECT_DOUBLE_EQ(*ParseQuantity("1.5Gi"), 1610612736.0);
  EXPECT_DOUBLE_EQ(*ParseQuantity("0.5"), 0.5);
  EXPECT_DOUBLE_EQ(*ParseQuantity("1e3"), 1000.0);
  EXPECT_DOUBLE_EQ(*ParseQuantity("2k"), 2000.0);
  EXPECT_DOUBLE_EQ(*ParseQuantity("128M"), 128e6);
  EXPECT_DOUBLE_EQ(*ParseQuantity("-1"), -1.0);
  EXPECT_DOUBLE_EQ(*ParseQuantity(".5"), 0.5);
  EXPECT_DOUBLE_EQ(*ParseQuantity("0"), 0.0);
  for (const char* bad : {"", "abc", "1Zi", "1.2.3", "Gi", "1e", "1 Gi", "--1"}) {
    EXPECT_FALSE(ParseQuantity(bad).has_value()) << bad;
  }
  EXPECT_EQ(ParseQuantityMilli("100m"), 100);
  EXPECT_EQ(ParseQuantityMilli("1"), 1000);
  EXPECT_EQ(ParseQuantityMilli("0.0001"), 1);  // rounded up, as MilliValue
  EXPECT_EQ(ParseQuantityValue("1Ki"), 1024);
  EXPECT_EQ(ParseQuantityValue("100m"), 1);
  EXPECT_EQ(ParseQuantityValue("64Mi"), 67108864);
  EXPECT_EQ(ParseQuantityValue("1E"), 1000000000000000000LL);
  EXPECT_EQ(ParseQuantityValue("100E"), std::numeric_limits<int64_t>::max());
  EXPECT_FALSE(ParseQuantityValue("x").has_value());
}

TEST(NameCheckTest, MatchKubernetesRules) {
  EXPECT_THAT(IsDNS1123Label("my-name"), IsEmpty());
  EXPECT_THAT(IsDNS1123Label("a.b"), ElementsAre("must not contain dots"));
  EXPECT_THAT(IsDNS1123Label(std::string(64, 'a')),
              ElementsAre("must be no more than 63 characters"));
  EXPECT_THAT(IsDNS1123Subdomain("example.com"), IsEmpty());
  EXPECT_THAT(IsDNS1123Subdomain("-x"), ElementsAre(kDnsSubdomainMsg));
  EXPECT_THAT(IsDNS1035Label("abc-123"), IsEmpty());
  EXPECT_THAT(IsDNS1035Label("123"), Not(IsEmpty()));
  EXPECT_THAT(IsQualifiedName("example.com/MyName"), IsEmpty());
  EXPECT_THAT(IsQualifiedName("/x"), ElementsAre("prefix part must be non-empty"));
  EXPECT_THAT(IsQualifiedName("a/"), Contains("name part must be non-empty"));
  EXPECT_THAT(IsValidLabelValue(""), IsEmpty());
  EXPECT_THAT(IsValidLabelValue("my_value.1"), IsEmpty());
  EXPECT_THAT(IsValidLabelValue("x y"), Not(IsEmpty()));
}

TEST(ValidateTest, ValuesAreQuotedAsGoQuotesThem) {
  Json cm = ParseYaml("{metadata: {namespace: default}}");
  cm["metadata"]["name"] = "a\"b\n";
  Error e = InvalidError("", "ConfigMap", cm);
  EXPECT_THAT(e.message(), HasSubstr("ConfigMap \"a\\\"b\\n\" is invalid: metadata.name: Invalid "
                                     "value: \"a\\\"b\\n\": a lowercase RFC 1123 subdomain"));
}

}  // namespace
}  // namespace kin::apiserver

namespace kin::apiserver {
namespace {

void CollectPointers(const Json& v, const std::string& base, std::vector<std::string>* out) {
  if (v.is_object()) {
    for (const auto& [k, child] : v.items()) {
      std::string p = base + "/" + k;
      out->push_back(p);
      CollectPointers(child, p, out);
    }
  } else if (v.is_array()) {
    for (size_t i = 0; i < v.size(); ++i) {
      std::string p = base + "/" + std::to_string(i);
      out->push_back(p);
      CollectPointers(v[i], p, out);
    }
  }
}

// Any field replaced by a value of another type: defaulting never throws and
// validation throws nothing but kin::Error.
// ValidateLimitRange, ValidateResourceQuota and ValidatePodTemplate (issue 15).
TEST(ValidateLimitRangeTest, OrderOfMinDefaultMaxAndRatio) {
  ExpectValid("", "LimitRange", R"(
metadata: {name: l, namespace: d}
spec:
  limits:
  - {type: Container, min: {cpu: 100m}, defaultRequest: {cpu: 200m}, default: {cpu: 300m},
     max: {cpu: 500m}, maxLimitRequestRatio: {cpu: "2"}}
  - {type: Pod, max: {memory: 1Gi}}
  - {type: PersistentVolumeClaim, min: {storage: 1Gi}}
)");
  EXPECT_THAT(CausesOf("", "LimitRange", R"(
metadata: {name: l, namespace: d}
spec:
  limits:
  - {type: Container, min: {cpu: "2"}, max: {cpu: "1"}, defaultRequest: {cpu: 1500m},
     default: {cpu: "1"}, maxLimitRequestRatio: {cpu: 500m}}
)"),
              ElementsAre(
                  "spec.limits[0].min[cpu]|FieldValueInvalid|Invalid value: "
                  "resource.Quantity{i:resource.int64Amount{value:2, scale:0}, "
                  "d:resource.infDecAmount{Dec:(*inf.Dec)(nil)}, s:\"\", Format:\"DecimalSI\"}: "
                  "min value 2 is greater than max value 1",
                  HasSubstr("min value 2 is greater than default request value 1500m"),
                  HasSubstr("default request value 1500m is greater than max value 1"),
                  HasSubstr("default request value 1500m is greater than default limit value 1"),
                  HasSubstr("min value 2 is greater than default value 1"),
                  StartsWith("spec.limits[0].maxLimitRequestRatio[cpu]|FieldValueInvalid|"
                             "Invalid value: resource.Quantity{i:resource.int64Amount{value:500, "
                             "scale:-3}")));
  EXPECT_THAT(CausesOf("", "LimitRange", R"(
metadata: {name: l, namespace: d}
spec:
  limits:
  - {type: Pod, default: {cpu: "1"}}
  - {type: Pod}
  - {type: PersistentVolumeClaim}
  - {type: Bogus}
)"),
              ElementsAre("spec.limits[0].default|FieldValueForbidden|Forbidden: may not be "
                          "specified when `type` is 'Pod'",
                          "spec.limits[1].type|FieldValueDuplicate|Duplicate value: \"Pod\"",
                          "spec.limits[2].limits|FieldValueRequired|Required value: either "
                          "minimum or maximum storage value is required, but neither was provided",
                          "spec.limits[3].type|FieldValueInvalid|Invalid value: \"Bogus\": must "
                          "be a standard limit type or fully qualified"));
  EXPECT_THAT(CausesOf("", "LimitRange", R"(
metadata: {name: l, namespace: d}
spec: {limits: [{type: Container, maxLimitRequestRatio: {memory: 500m}},
                {type: Pod, min: {cpu: 500m}, max: {cpu: "1"}, maxLimitRequestRatio: {cpu: "3"}}]}
)"),
              ElementsAre(HasSubstr("ratio 500m is less than 1"),
                          HasSubstr("ratio 3 is greater than max/min = 2.000000")));
}

TEST(ValidateLimitRangeTest, ContainerItemsAreDefaultedAsUpstream) {
  Json lr = Defaulted("", "LimitRange", R"(
metadata: {name: l, namespace: d}
spec:
  limits:
  - {type: Container, max: {cpu: "1", memory: 1Gi}, default: {memory: 512Mi}, min: {cpu: 10m}}
  - {type: Pod, max: {cpu: "2"}}
)");
  EXPECT_EQ(lr["spec"]["limits"][0]["default"], ParseYaml("{cpu: '1', memory: 512Mi}"));
  EXPECT_EQ(lr["spec"]["limits"][0]["defaultRequest"], ParseYaml("{cpu: '1', memory: 512Mi}"));
  EXPECT_FALSE(lr["spec"]["limits"][1].contains("default"));
}

TEST(ValidateResourceQuotaTest, NamesQuantitiesAndScopes) {
  ExpectValid("", "ResourceQuota", R"(
metadata: {name: q, namespace: d}
spec: {hard: {pods: "2", requests.cpu: 500m, count/deployments.apps: "3", services.nodeports: "1"}}
)");
  EXPECT_THAT(CausesOf("", "ResourceQuota", R"(
metadata: {name: q, namespace: d}
spec: {hard: {pods: 1500m, bogus: "1", memory: "-1"}}
)"),
              ElementsAre("spec.hard[bogus]|FieldValueInvalid|Invalid value: \"bogus\": must be "
                          "a standard resource type or fully qualified",
                          "spec.hard[bogus]|FieldValueInvalid|Invalid value: \"bogus\": must be "
                          "a standard resource for quota",
                          "spec.hard[memory]|FieldValueInvalid|Invalid value: \"-1\": must be "
                          "greater than or equal to 0",
                          HasSubstr("spec.hard[pods]|FieldValueInvalid|Invalid value: "
                                    "resource.Quantity{i:resource.int64Amount{value:1500, "
                                    "scale:-3}")));
  EXPECT_THAT(CausesOf("", "ResourceQuota", R"(
metadata: {name: q, namespace: d}
spec: {hard: {services: "1"}, scopes: [BestEffort, NotBestEffort]}
)"),
              ElementsAre(HasSubstr("unsupported scope applied to resource"),
                          HasSubstr("unsupported scope applied to resource"),
                          "spec.scopes|FieldValueInvalid|Invalid value: "
                          "[]core.ResourceQuotaScope{\"BestEffort\", \"NotBestEffort\"}: "
                          "conflicting scopes"));
  EXPECT_THAT(CausesOf("", "ResourceQuota", R"(
metadata: {name: q, namespace: d}
spec:
  hard: {pods: "1"}
  scopeSelector: {matchExpressions: [{scopeName: PriorityClass, operator: In}]}
)"),
              ElementsAre("spec.scopeSelector.matchExpressions[0].values|FieldValueRequired|"
                          "Required value: must be at least one value when `operator` is 'In' or "
                          "'NotIn' for scope selector"));
}

TEST(ValidatePodTemplateTest, TheTemplateIsAPodTemplate) {
  ExpectValid("", "PodTemplate", R"(
metadata: {name: t, namespace: d}
template: {metadata: {labels: {app: web}}, spec: {containers: [{name: web, image: nginx}]}}
)");
  EXPECT_THAT(CausesOf("", "PodTemplate", R"(
metadata: {name: t, namespace: d}
template: {metadata: {labels: {"bad key!": x}}, spec: {containers: [{name: web}]}}
)"),
              ElementsAre(StartsWith("template.labels|FieldValueInvalid|Invalid value: \"bad "
                                     "key!\""),
                          "template.spec.containers[0].image|FieldValueRequired|Required value"));
}

TEST(RobustnessTest, WrongTypesAnywhereNeverEscapeAsOtherExceptions) {
  struct Sample {
    const char* group;
    const char* kind;
    const char* yaml;
  };
  const Sample samples[] = {
      {"", "Pod", R"(
metadata: {name: web, namespace: default, labels: {app: web}, ownerReferences: [{apiVersion: v1, kind: X, name: x, uid: u}]}
spec:
  initContainers: [{name: init, image: busybox, restartPolicy: Always, readinessProbe: {tcpSocket: {port: 1}}}]
  containers:
  - name: app
    image: nginx
    ports: [{name: http, containerPort: 80, hostPort: 80}]
    env: [{name: A, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
    envFrom: [{secretRef: {name: s}}]
    resources: {requests: {cpu: 100m}, limits: {cpu: "1"}}
    livenessProbe: {httpGet: {port: 80, httpHeaders: [{name: X, value: y}]}}
    lifecycle: {preStop: {sleep: {seconds: 1}}}
    volumeMounts: [{name: v, mountPath: /v, subPath: x}]
    securityContext: {runAsUser: 1}
  volumes:
  - {name: v, projected: {sources: [{serviceAccountToken: {path: t}}, {downwardAPI: {items: [{path: p, fieldRef: {fieldPath: metadata.name}}]}}]}}
  - {name: w, secret: {secretName: s, items: [{key: k, path: p}]}}
  tolerations: [{key: k, operator: Exists}]
  dnsConfig: {nameservers: [1.1.1.1], searches: [a.b], options: [{name: ndots}]}
  hostAliases: [{ip: 1.2.3.4, hostnames: [a.b]}]
  activeDeadlineSeconds: 10
)"},
      {"", "Service", R"(
metadata: {name: web, namespace: default}
spec: {type: LoadBalancer, clusterIP: 10.96.0.1, selector: {a: b}, externalIPs: [1.2.3.4],
       loadBalancerSourceRanges: [10.0.0.0/8], sessionAffinity: ClientIP,
       ports: [{name: a, port: 80, targetPort: 8080, nodePort: 30000}, {name: b, port: 81}]}
)"},
      {"apps", "Deployment", kDeployment},
      {"apps", "DaemonSet", kDeployment},
      {"apps", "StatefulSet", R"(
metadata: {name: db, namespace: default}
spec:
  selector: {matchLabels: {app: db}, matchExpressions: [{key: a, operator: In, values: [b]}]}
  template: {metadata: {labels: {app: db, a: b}}, spec: {containers: [{name: db, image: pg}]}}
  volumeClaimTemplates: [{metadata: {name: data}}]
)"},
      {"batch", "Job", kJob},
      {"batch", "CronJob", R"(
metadata: {name: c, namespace: default}
spec: {schedule: "* * * * *", jobTemplate: {metadata: {labels: {a: b}}, spec: {template: {spec: {restartPolicy: Never, containers: [{name: c, image: b}]}}}}}
)"},
      {"", "Secret",
       "{metadata: {name: s, namespace: d}, type: kubernetes.io/tls, data: {tls.crt: YQ==, "
       "tls.key: YQ==}, stringData: {x: y}}"},
      {"", "ConfigMap",
       "{metadata: {name: c, namespace: d}, data: {a: b}, binaryData: {c: YQ==}, immutable: true}"},
      {"", "Namespace",
       "{metadata: {name: n}, spec: {finalizers: [kubernetes]}, status: {phase: Active}}"},
      {"", "Node",
       "{metadata: {name: n}, spec: {podCIDRs: [10.0.0.0/24], taints: [{key: a, effect: "
       "NoSchedule}]}, status: {capacity: {cpu: '2'}}}"},
      {"", "Endpoints",
       "{metadata: {name: e, namespace: d}, subsets: [{addresses: [{ip: 10.0.0.1, hostname: h}], "
       "ports: [{name: a, port: 1}]}]}"},
      {"discovery.k8s.io", "EndpointSlice",
       "{metadata: {name: e, namespace: d}, addressType: IPv4, endpoints: [{addresses: [10.0.0.1], "
       "hostname: h}], ports: [{name: a, port: 1}]}"},
      {"networking.k8s.io", "Ingress", R"(
metadata: {name: i, namespace: d}
spec: {defaultBackend: {service: {name: a, port: {number: 1}}}, tls: [{hosts: [a.b], secretName: s}],
       rules: [{host: a.b, http: {paths: [{path: /, pathType: Prefix, backend: {resource: {kind: K, name: n}}}]}}]}
)"},
      {"networking.k8s.io", "NetworkPolicy", R"(
metadata: {name: n, namespace: d}
spec: {podSelector: {matchLabels: {a: b}}, policyTypes: [Ingress, Egress],
       ingress: [{from: [{namespaceSelector: {}}], ports: [{port: 80, endPort: 90}]}],
       egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}]}]}
)"},
      {"networking.k8s.io", "IngressClass",
       "{metadata: {name: k}, spec: {controller: a.b/c, parameters: {kind: K, name: n}}}"},
      {"coordination.k8s.io", "Lease",
       "{metadata: {name: l, namespace: d}, spec: {leaseDurationSeconds: 1, leaseTransitions: 1}}"},
      {"", "LimitRange",
       "{metadata: {name: l, namespace: d}, spec: {limits: [{type: Container, max: {cpu: '1'}, "
       "min: {cpu: 10m}, default: {cpu: 500m}, defaultRequest: {cpu: 100m}, "
       "maxLimitRequestRatio: {cpu: '5'}}]}}"},
      {"", "ResourceQuota",
       "{metadata: {name: q, namespace: d}, spec: {hard: {pods: '2', requests.cpu: '1'}, "
       "scopes: [NotTerminating], scopeSelector: {matchExpressions: [{scopeName: PriorityClass, "
       "operator: In, values: [high]}]}}, status: {hard: {pods: '2'}, used: {pods: '1'}}}"},
      {"", "PodTemplate",
       "{metadata: {name: t, namespace: d}, template: {metadata: {labels: {a: b}}, spec: "
       "{containers: [{name: c, image: i}]}}}"},
  };
  const Json replacements[] = {
      Json(),    Json("x"),  Json(""),         Json(7),       Json(-1),
      Json(1.5), Json(true), Json::array({1}), Json::array(), Json::object({{"a", 1}})};
  int runs = 0;
  for (const auto& sample : samples) {
    const Json base = ParseYaml(sample.yaml);
    Json old = base;
    ApplyDefaults(sample.group, sample.kind, old);
    std::vector<std::string> pointers;
    CollectPointers(base, "", &pointers);
    for (const auto& pointer : pointers) {
      for (const auto& replacement : replacements) {
        Json obj = base;
        obj[Json::json_pointer(pointer)] = replacement;
        std::string where = std::string(sample.kind) + " " + pointer + " = " + replacement.dump();
        try {
          ApplyDefaults(sample.group, sample.kind, obj);
        } catch (const std::exception& e) {
          ADD_FAILURE() << "ApplyDefaults threw for " << where << ": " << e.what();
          continue;
        }
        for (const Json* o : {static_cast<const Json*>(nullptr), static_cast<const Json*>(&old)}) {
          ++runs;
          try {
            ValidateObject(sample.group, sample.kind, obj, o);
          } catch (const Error&) {
          } catch (const std::exception& e) {
            ADD_FAILURE() << "ValidateObject threw a non-kin error for " << where << ": "
                          << e.what();
          }
        }
      }
    }
  }
  EXPECT_GT(runs, 1000);
}

}  // namespace
}  // namespace kin::apiserver
