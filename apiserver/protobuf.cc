#include "apiserver/protobuf.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <iterator>
#include <string>
#include <utility>

#include "base/error.h"
#include "base/strings.h"

namespace kin::apiserver {
namespace {

// ---------------------------------------------------------------------------
// Schema.
//
// One table per protobuf message: field number -> JSON name and type. The
// field numbers are copied from the generated.proto files of Kubernetes
// (staging/src/k8s.io/...; core, rbac and networking from a 1.35-era tree,
// apps, batch and policy from 1.31-era trees, so fields added later there,
// e.g. DeploymentStatus.terminatingReplicas, are skipped as unknown):
//   api/core/v1/generated.proto            api/apps/v1/generated.proto
//   api/batch/v1/generated.proto           api/rbac/v1/generated.proto
//   api/policy/v1/generated.proto          api/scheduling/v1/generated.proto
//   api/networking/v1/generated.proto      api/authentication/v1/generated.proto
//   apimachinery/pkg/apis/meta/v1/generated.proto
//   apimachinery/pkg/runtime/generated.proto (Unknown, TypeMeta)
//   apimachinery/pkg/util/intstr/generated.proto (IntOrString)
//   apimachinery/pkg/api/resource/generated.proto (Quantity)
// The JSON names are the proto names except for embedded Go structs, whose
// fields are inlined into the parent (Type::kInline).
//
// go-to-protobuf writes every non-pointer field, zero or not, and a pointer
// field only when it is set. So "present on the wire" means "set" only for
// pointers; for a plain omitempty field a zero value must be dropped the way
// encoding/json drops it. The *P helpers below mark fields kept when zero:
// Go pointers and fields without omitempty (as k8s.io/api types.go declares
// them; checked against kubectl's own JSON by the golden tests).
// ---------------------------------------------------------------------------

enum class Type : std::uint8_t {
  kString,
  kBytes,  // base64 in JSON (only as a map value here)
  kBool,
  kInt32,
  kInt64,
  kMessage,
  kInline,       // an embedded struct (`json:",inline"`): its fields join the parent's
  kQuantity,     // resource.Quantity {string = 1}
  kIntOrString,  // intstr.IntOrString {type = 1, intVal = 2, strVal = 3}
  kTime,         // metav1.Time {seconds = 1, nanos = 2}, RFC 3339 in JSON
  kMicroTime,    // metav1.MicroTime, RFC 3339 with microseconds
  kFieldsV1,     // metav1.FieldsV1 {Raw = 1}: raw JSON
};

enum class Shape : std::uint8_t { kSingle, kRepeated, kMap /* map<string, type> */ };

struct Message;

struct Field {
  int number;
  const char* json;
  Type type;
  Shape shape;
  bool keep_zero;
  const Message* message;  // kMessage and kInline only
};

struct Message {
  const char* name;
  const Field* fields;
  std::size_t size;
};

constexpr Field Scalar(int n, const char* json, Type type, bool keep_zero) {
  return {n, json, type, Shape::kSingle, keep_zero, nullptr};
}
constexpr Field Str(int n, const char* json) { return Scalar(n, json, Type::kString, false); }
constexpr Field StrP(int n, const char* json) { return Scalar(n, json, Type::kString, true); }
constexpr Field Bool(int n, const char* json) { return Scalar(n, json, Type::kBool, false); }
constexpr Field BoolP(int n, const char* json) { return Scalar(n, json, Type::kBool, true); }
constexpr Field Int32(int n, const char* json) { return Scalar(n, json, Type::kInt32, false); }
constexpr Field Int32P(int n, const char* json) { return Scalar(n, json, Type::kInt32, true); }
constexpr Field Int64(int n, const char* json) { return Scalar(n, json, Type::kInt64, false); }
constexpr Field Int64P(int n, const char* json) { return Scalar(n, json, Type::kInt64, true); }
constexpr Field Qty(int n, const char* json) { return Scalar(n, json, Type::kQuantity, true); }
constexpr Field IntOrStr(int n, const char* json) {
  return Scalar(n, json, Type::kIntOrString, true);
}
constexpr Field Time(int n, const char* json) { return Scalar(n, json, Type::kTime, true); }
constexpr Field MicroTime(int n, const char* json) {
  return Scalar(n, json, Type::kMicroTime, true);
}
constexpr Field FieldsV1(int n, const char* json) { return Scalar(n, json, Type::kFieldsV1, true); }
constexpr Field Obj(int n, const char* json, const Message& m) {
  return {n, json, Type::kMessage, Shape::kSingle, true, &m};
}
constexpr Field Inline(int n, const Message& m) {
  return {n, "", Type::kInline, Shape::kSingle, true, &m};
}
constexpr Field Objs(int n, const char* json, const Message& m) {
  return {n, json, Type::kMessage, Shape::kRepeated, true, &m};
}
constexpr Field Strs(int n, const char* json) {
  return {n, json, Type::kString, Shape::kRepeated, true, nullptr};
}
constexpr Field Int32s(int n, const char* json) {
  return {n, json, Type::kInt32, Shape::kRepeated, true, nullptr};
}
constexpr Field Int64s(int n, const char* json) {
  return {n, json, Type::kInt64, Shape::kRepeated, true, nullptr};
}
constexpr Field Map(int n, const char* json, Type value) {
  return {n, json, value, Shape::kMap, true, nullptr};
}
constexpr Field StrMap(int n, const char* json) { return Map(n, json, Type::kString); }
constexpr Field BytesMap(int n, const char* json) { return Map(n, json, Type::kBytes); }
constexpr Field QtyMap(int n, const char* json) { return Map(n, json, Type::kQuantity); }
constexpr Field TimeMap(int n, const char* json) { return Map(n, json, Type::kTime); }

// Defines kName (a Message) from its fields. Messages are defined before use,
// leaves first; none of the supported types is recursive.
#define KIN_PB_MESSAGE(name, ...)                          \
  constinit const Field k##name##Fields[] = {__VA_ARGS__}; \
  constinit const Message k##name = {#name, k##name##Fields, std::size(k##name##Fields)}

// ---- k8s.io/apimachinery/pkg/apis/meta/v1 ---------------------------------

KIN_PB_MESSAGE(OwnerReference, StrP(5, "apiVersion"), StrP(1, "kind"), StrP(3, "name"),
               StrP(4, "uid"), BoolP(6, "controller"), BoolP(7, "blockOwnerDeletion"));
KIN_PB_MESSAGE(ManagedFieldsEntry, Str(1, "manager"), Str(2, "operation"), Str(3, "apiVersion"),
               Time(4, "time"), Str(6, "fieldsType"), FieldsV1(7, "fieldsV1"),
               Str(8, "subresource"));
KIN_PB_MESSAGE(ObjectMeta, Str(1, "name"), Str(2, "generateName"), Str(3, "namespace"),
               Str(4, "selfLink"), Str(5, "uid"), Str(6, "resourceVersion"), Int64(7, "generation"),
               Time(8, "creationTimestamp"), Time(9, "deletionTimestamp"),
               Int64P(10, "deletionGracePeriodSeconds"), StrMap(11, "labels"),
               StrMap(12, "annotations"), Objs(13, "ownerReferences", kOwnerReference),
               Strs(14, "finalizers"), Objs(17, "managedFields", kManagedFieldsEntry));
KIN_PB_MESSAGE(LabelSelectorRequirement, StrP(1, "key"), StrP(2, "operator"), Strs(3, "values"));
KIN_PB_MESSAGE(LabelSelector, StrMap(1, "matchLabels"),
               Objs(2, "matchExpressions", kLabelSelectorRequirement));
KIN_PB_MESSAGE(Condition, StrP(1, "type"), StrP(2, "status"), Int64(3, "observedGeneration"),
               Time(4, "lastTransitionTime"), StrP(5, "reason"), StrP(6, "message"));

// ---- k8s.io/api/core/v1 ----------------------------------------------------

KIN_PB_MESSAGE(LocalObjectReference, Str(1, "name"));
KIN_PB_MESSAGE(ObjectReference, Str(1, "kind"), Str(2, "namespace"), Str(3, "name"), Str(4, "uid"),
               Str(5, "apiVersion"), Str(6, "resourceVersion"), Str(7, "fieldPath"));
KIN_PB_MESSAGE(TypedLocalObjectReference, StrP(1, "apiGroup"), StrP(2, "kind"), StrP(3, "name"));
KIN_PB_MESSAGE(TypedObjectReference, StrP(1, "apiGroup"), StrP(2, "kind"), StrP(3, "name"),
               StrP(4, "namespace"));
KIN_PB_MESSAGE(NamespaceSpec, Strs(1, "finalizers"));
KIN_PB_MESSAGE(NamespaceCondition, StrP(1, "type"), StrP(2, "status"),
               Time(4, "lastTransitionTime"), Str(5, "reason"), Str(6, "message"));
KIN_PB_MESSAGE(NamespaceStatus, Str(1, "phase"), Objs(2, "conditions", kNamespaceCondition));
KIN_PB_MESSAGE(Namespace, Obj(1, "metadata", kObjectMeta), Obj(2, "spec", kNamespaceSpec),
               Obj(3, "status", kNamespaceStatus));
KIN_PB_MESSAGE(ConfigMap, Obj(1, "metadata", kObjectMeta), BoolP(4, "immutable"), StrMap(2, "data"),
               BytesMap(3, "binaryData"));
KIN_PB_MESSAGE(Secret, Obj(1, "metadata", kObjectMeta), BoolP(5, "immutable"), BytesMap(2, "data"),
               StrMap(4, "stringData"), Str(3, "type"));
KIN_PB_MESSAGE(ServiceAccount, Obj(1, "metadata", kObjectMeta),
               Objs(2, "secrets", kObjectReference),
               Objs(3, "imagePullSecrets", kLocalObjectReference),
               BoolP(4, "automountServiceAccountToken"));

KIN_PB_MESSAGE(EventSource, Str(1, "component"), Str(2, "host"));
KIN_PB_MESSAGE(EventSeries, Int32(1, "count"), MicroTime(2, "lastObservedTime"));
KIN_PB_MESSAGE(Event, Obj(1, "metadata", kObjectMeta), Obj(2, "involvedObject", kObjectReference),
               Str(3, "reason"), Str(4, "message"), Obj(5, "source", kEventSource),
               Time(6, "firstTimestamp"), Time(7, "lastTimestamp"), Int32(8, "count"),
               Str(9, "type"), MicroTime(10, "eventTime"), Obj(11, "series", kEventSeries),
               Str(12, "action"), Obj(13, "related", kObjectReference),
               StrP(14, "reportingComponent"), StrP(15, "reportingInstance"));

// Service.
KIN_PB_MESSAGE(ServicePort, Str(1, "name"), Str(2, "protocol"), StrP(6, "appProtocol"),
               Int32P(3, "port"), IntOrStr(4, "targetPort"), Int32(5, "nodePort"));
KIN_PB_MESSAGE(ClientIPConfig, Int32P(1, "timeoutSeconds"));
KIN_PB_MESSAGE(SessionAffinityConfig, Obj(1, "clientIP", kClientIPConfig));
KIN_PB_MESSAGE(ServiceSpec, Objs(1, "ports", kServicePort), StrMap(2, "selector"),
               Str(3, "clusterIP"), Strs(18, "clusterIPs"), Str(4, "type"), Strs(5, "externalIPs"),
               Str(7, "sessionAffinity"), Str(8, "loadBalancerIP"),
               Strs(9, "loadBalancerSourceRanges"), Str(10, "externalName"),
               Str(11, "externalTrafficPolicy"), Int32(12, "healthCheckNodePort"),
               Bool(13, "publishNotReadyAddresses"),
               Obj(14, "sessionAffinityConfig", kSessionAffinityConfig), Strs(19, "ipFamilies"),
               StrP(17, "ipFamilyPolicy"), BoolP(20, "allocateLoadBalancerNodePorts"),
               StrP(21, "loadBalancerClass"), StrP(22, "internalTrafficPolicy"),
               StrP(23, "trafficDistribution"));
KIN_PB_MESSAGE(PortStatus, Int32P(1, "port"), StrP(2, "protocol"), StrP(3, "error"));
KIN_PB_MESSAGE(LoadBalancerIngress, Str(1, "ip"), Str(2, "hostname"), StrP(3, "ipMode"),
               Objs(4, "ports", kPortStatus));
KIN_PB_MESSAGE(LoadBalancerStatus, Objs(1, "ingress", kLoadBalancerIngress));
KIN_PB_MESSAGE(ServiceStatus, Obj(1, "loadBalancer", kLoadBalancerStatus),
               Objs(2, "conditions", kCondition));
KIN_PB_MESSAGE(Service, Obj(1, "metadata", kObjectMeta), Obj(2, "spec", kServiceSpec),
               Obj(3, "status", kServiceStatus));

// Resources.
KIN_PB_MESSAGE(ResourceClaim, StrP(1, "name"), Str(2, "request"));
KIN_PB_MESSAGE(ResourceRequirements, QtyMap(1, "limits"), QtyMap(2, "requests"),
               Objs(3, "claims", kResourceClaim));
KIN_PB_MESSAGE(VolumeResourceRequirements, QtyMap(1, "limits"), QtyMap(2, "requests"));
KIN_PB_MESSAGE(ScopedResourceSelectorRequirement, StrP(1, "scopeName"), StrP(2, "operator"),
               Strs(3, "values"));
KIN_PB_MESSAGE(ScopeSelector, Objs(1, "matchExpressions", kScopedResourceSelectorRequirement));
KIN_PB_MESSAGE(ResourceQuotaSpec, QtyMap(1, "hard"), Strs(2, "scopes"),
               Obj(3, "scopeSelector", kScopeSelector));
KIN_PB_MESSAGE(ResourceQuotaStatus, QtyMap(1, "hard"), QtyMap(2, "used"));
KIN_PB_MESSAGE(ResourceQuota, Obj(1, "metadata", kObjectMeta), Obj(2, "spec", kResourceQuotaSpec),
               Obj(3, "status", kResourceQuotaStatus));
KIN_PB_MESSAGE(LimitRangeItem, StrP(1, "type"), QtyMap(2, "max"), QtyMap(3, "min"),
               QtyMap(4, "default"), QtyMap(5, "defaultRequest"),
               QtyMap(6, "maxLimitRequestRatio"));
KIN_PB_MESSAGE(LimitRangeSpec, Objs(1, "limits", kLimitRangeItem));
KIN_PB_MESSAGE(LimitRange, Obj(1, "metadata", kObjectMeta), Obj(2, "spec", kLimitRangeSpec));

// Environment.
KIN_PB_MESSAGE(ObjectFieldSelector, Str(1, "apiVersion"), StrP(2, "fieldPath"));
KIN_PB_MESSAGE(ResourceFieldSelector, Str(1, "containerName"), StrP(2, "resource"),
               Qty(3, "divisor"));
KIN_PB_MESSAGE(ConfigMapKeySelector, Inline(1, kLocalObjectReference), StrP(2, "key"),
               BoolP(3, "optional"));
KIN_PB_MESSAGE(SecretKeySelector, Inline(1, kLocalObjectReference), StrP(2, "key"),
               BoolP(3, "optional"));
KIN_PB_MESSAGE(FileKeySelector, StrP(1, "volumeName"), StrP(2, "path"), StrP(3, "key"),
               BoolP(4, "optional"));
KIN_PB_MESSAGE(EnvVarSource, Obj(1, "fieldRef", kObjectFieldSelector),
               Obj(2, "resourceFieldRef", kResourceFieldSelector),
               Obj(3, "configMapKeyRef", kConfigMapKeySelector),
               Obj(4, "secretKeyRef", kSecretKeySelector), Obj(5, "fileKeyRef", kFileKeySelector));
KIN_PB_MESSAGE(EnvVar, StrP(1, "name"), Str(2, "value"), Obj(3, "valueFrom", kEnvVarSource));
KIN_PB_MESSAGE(ConfigMapEnvSource, Inline(1, kLocalObjectReference), BoolP(2, "optional"));
KIN_PB_MESSAGE(SecretEnvSource, Inline(1, kLocalObjectReference), BoolP(2, "optional"));
KIN_PB_MESSAGE(EnvFromSource, Str(1, "prefix"), Obj(2, "configMapRef", kConfigMapEnvSource),
               Obj(3, "secretRef", kSecretEnvSource));

// Probes and lifecycle hooks.
KIN_PB_MESSAGE(ExecAction, Strs(1, "command"));
KIN_PB_MESSAGE(HTTPHeader, StrP(1, "name"), StrP(2, "value"));
KIN_PB_MESSAGE(HTTPGetAction, Str(1, "path"), IntOrStr(2, "port"), Str(3, "host"), Str(4, "scheme"),
               Objs(5, "httpHeaders", kHTTPHeader));
KIN_PB_MESSAGE(TCPSocketAction, IntOrStr(1, "port"), Str(2, "host"));
KIN_PB_MESSAGE(GRPCAction, Int32P(1, "port"), StrP(2, "service"));
KIN_PB_MESSAGE(SleepAction, Int64P(1, "seconds"));
KIN_PB_MESSAGE(ProbeHandler, Obj(1, "exec", kExecAction), Obj(2, "httpGet", kHTTPGetAction),
               Obj(3, "tcpSocket", kTCPSocketAction), Obj(4, "grpc", kGRPCAction));
KIN_PB_MESSAGE(Probe, Inline(1, kProbeHandler), Int32(2, "initialDelaySeconds"),
               Int32(3, "timeoutSeconds"), Int32(4, "periodSeconds"), Int32(5, "successThreshold"),
               Int32(6, "failureThreshold"), Int64P(7, "terminationGracePeriodSeconds"));
KIN_PB_MESSAGE(LifecycleHandler, Obj(1, "exec", kExecAction), Obj(2, "httpGet", kHTTPGetAction),
               Obj(3, "tcpSocket", kTCPSocketAction), Obj(4, "sleep", kSleepAction));
KIN_PB_MESSAGE(Lifecycle, Obj(1, "postStart", kLifecycleHandler),
               Obj(2, "preStop", kLifecycleHandler), StrP(3, "stopSignal"));

// Security contexts.
KIN_PB_MESSAGE(Capabilities, Strs(1, "add"), Strs(2, "drop"));
KIN_PB_MESSAGE(SELinuxOptions, Str(1, "user"), Str(2, "role"), Str(3, "type"), Str(4, "level"));
KIN_PB_MESSAGE(WindowsSecurityContextOptions, StrP(1, "gmsaCredentialSpecName"),
               StrP(2, "gmsaCredentialSpec"), StrP(3, "runAsUserName"), BoolP(4, "hostProcess"));
KIN_PB_MESSAGE(SeccompProfile, StrP(1, "type"), StrP(2, "localhostProfile"));
KIN_PB_MESSAGE(AppArmorProfile, StrP(1, "type"), StrP(2, "localhostProfile"));
KIN_PB_MESSAGE(SecurityContext, Obj(1, "capabilities", kCapabilities), BoolP(2, "privileged"),
               Obj(3, "seLinuxOptions", kSELinuxOptions),
               Obj(10, "windowsOptions", kWindowsSecurityContextOptions), Int64P(4, "runAsUser"),
               Int64P(8, "runAsGroup"), BoolP(5, "runAsNonRoot"),
               BoolP(6, "readOnlyRootFilesystem"), BoolP(7, "allowPrivilegeEscalation"),
               StrP(9, "procMount"), Obj(11, "seccompProfile", kSeccompProfile),
               Obj(12, "appArmorProfile", kAppArmorProfile));
KIN_PB_MESSAGE(Sysctl, StrP(1, "name"), StrP(2, "value"));
KIN_PB_MESSAGE(PodSecurityContext, Obj(1, "seLinuxOptions", kSELinuxOptions),
               Obj(8, "windowsOptions", kWindowsSecurityContextOptions), Int64P(2, "runAsUser"),
               Int64P(6, "runAsGroup"), BoolP(3, "runAsNonRoot"), Int64s(4, "supplementalGroups"),
               StrP(12, "supplementalGroupsPolicy"), Int64P(5, "fsGroup"),
               Objs(7, "sysctls", kSysctl), StrP(9, "fsGroupChangePolicy"),
               Obj(10, "seccompProfile", kSeccompProfile),
               Obj(11, "appArmorProfile", kAppArmorProfile), StrP(13, "seLinuxChangePolicy"));

// Containers.
KIN_PB_MESSAGE(ContainerPort, Str(1, "name"), Int32(2, "hostPort"), Int32P(3, "containerPort"),
               Str(4, "protocol"), Str(5, "hostIP"));
KIN_PB_MESSAGE(ContainerResizePolicy, StrP(1, "resourceName"), StrP(2, "restartPolicy"));
KIN_PB_MESSAGE(ContainerRestartRuleOnExitCodes, StrP(1, "operator"), Int32s(2, "values"));
KIN_PB_MESSAGE(ContainerRestartRule, StrP(1, "action"),
               Obj(2, "exitCodes", kContainerRestartRuleOnExitCodes));
KIN_PB_MESSAGE(VolumeMount, StrP(1, "name"), Bool(2, "readOnly"), StrP(7, "recursiveReadOnly"),
               StrP(3, "mountPath"), Str(4, "subPath"), StrP(5, "mountPropagation"),
               Str(6, "subPathExpr"));
KIN_PB_MESSAGE(VolumeDevice, StrP(1, "name"), StrP(2, "devicePath"));
// Also EphemeralContainerCommon, which repeats Container's fields and numbers.
KIN_PB_MESSAGE(Container, StrP(1, "name"), Str(2, "image"), Strs(3, "command"), Strs(4, "args"),
               Str(5, "workingDir"), Objs(6, "ports", kContainerPort),
               Objs(19, "envFrom", kEnvFromSource), Objs(7, "env", kEnvVar),
               Obj(8, "resources", kResourceRequirements),
               Objs(23, "resizePolicy", kContainerResizePolicy), StrP(24, "restartPolicy"),
               Objs(25, "restartPolicyRules", kContainerRestartRule),
               Objs(9, "volumeMounts", kVolumeMount), Objs(21, "volumeDevices", kVolumeDevice),
               Obj(10, "livenessProbe", kProbe), Obj(11, "readinessProbe", kProbe),
               Obj(22, "startupProbe", kProbe), Obj(12, "lifecycle", kLifecycle),
               Str(13, "terminationMessagePath"), Str(20, "terminationMessagePolicy"),
               Str(14, "imagePullPolicy"), Obj(15, "securityContext", kSecurityContext),
               Bool(16, "stdin"), Bool(17, "stdinOnce"), Bool(18, "tty"));
KIN_PB_MESSAGE(EphemeralContainer, Inline(1, kContainer), Str(2, "targetContainerName"));

// Volumes.
KIN_PB_MESSAGE(KeyToPath, StrP(1, "key"), StrP(2, "path"), Int32P(3, "mode"));
KIN_PB_MESSAGE(HostPathVolumeSource, StrP(1, "path"), StrP(2, "type"));
KIN_PB_MESSAGE(EmptyDirVolumeSource, Str(1, "medium"), Qty(2, "sizeLimit"));
KIN_PB_MESSAGE(GCEPersistentDiskVolumeSource, StrP(1, "pdName"), Str(2, "fsType"),
               Int32(3, "partition"), Bool(4, "readOnly"));
KIN_PB_MESSAGE(AWSElasticBlockStoreVolumeSource, StrP(1, "volumeID"), Str(2, "fsType"),
               Int32(3, "partition"), Bool(4, "readOnly"));
KIN_PB_MESSAGE(GitRepoVolumeSource, StrP(1, "repository"), Str(2, "revision"), Str(3, "directory"));
KIN_PB_MESSAGE(SecretVolumeSource, Str(1, "secretName"), Objs(2, "items", kKeyToPath),
               Int32P(3, "defaultMode"), BoolP(4, "optional"));
KIN_PB_MESSAGE(NFSVolumeSource, StrP(1, "server"), StrP(2, "path"), Bool(3, "readOnly"));
KIN_PB_MESSAGE(ISCSIVolumeSource, StrP(1, "targetPortal"), StrP(2, "iqn"), Int32P(3, "lun"),
               Str(4, "iscsiInterface"), Str(5, "fsType"), Bool(6, "readOnly"), Strs(7, "portals"),
               Bool(8, "chapAuthDiscovery"), Bool(11, "chapAuthSession"),
               Obj(10, "secretRef", kLocalObjectReference), StrP(12, "initiatorName"));
KIN_PB_MESSAGE(GlusterfsVolumeSource, StrP(1, "endpoints"), StrP(2, "path"), Bool(3, "readOnly"));
KIN_PB_MESSAGE(PersistentVolumeClaimVolumeSource, StrP(1, "claimName"), Bool(2, "readOnly"));
KIN_PB_MESSAGE(RBDVolumeSource, Strs(1, "monitors"), StrP(2, "image"), Str(3, "fsType"),
               Str(4, "pool"), Str(5, "user"), Str(6, "keyring"),
               Obj(7, "secretRef", kLocalObjectReference), Bool(8, "readOnly"));
KIN_PB_MESSAGE(FlexVolumeSource, StrP(1, "driver"), Str(2, "fsType"),
               Obj(3, "secretRef", kLocalObjectReference), Bool(4, "readOnly"),
               StrMap(5, "options"));
KIN_PB_MESSAGE(CinderVolumeSource, StrP(1, "volumeID"), Str(2, "fsType"), Bool(3, "readOnly"),
               Obj(4, "secretRef", kLocalObjectReference));
KIN_PB_MESSAGE(CephFSVolumeSource, Strs(1, "monitors"), Str(2, "path"), Str(3, "user"),
               Str(4, "secretFile"), Obj(5, "secretRef", kLocalObjectReference),
               Bool(6, "readOnly"));
KIN_PB_MESSAGE(FlockerVolumeSource, Str(1, "datasetName"), Str(2, "datasetUUID"));
KIN_PB_MESSAGE(DownwardAPIVolumeFile, StrP(1, "path"), Obj(2, "fieldRef", kObjectFieldSelector),
               Obj(3, "resourceFieldRef", kResourceFieldSelector), Int32P(4, "mode"));
KIN_PB_MESSAGE(DownwardAPIVolumeSource, Objs(1, "items", kDownwardAPIVolumeFile),
               Int32P(2, "defaultMode"));
KIN_PB_MESSAGE(FCVolumeSource, Strs(1, "targetWWNs"), Int32P(2, "lun"), Str(3, "fsType"),
               Bool(4, "readOnly"), Strs(5, "wwids"));
KIN_PB_MESSAGE(AzureFileVolumeSource, StrP(1, "secretName"), StrP(2, "shareName"),
               Bool(3, "readOnly"));
KIN_PB_MESSAGE(ConfigMapVolumeSource, Inline(1, kLocalObjectReference),
               Objs(2, "items", kKeyToPath), Int32P(3, "defaultMode"), BoolP(4, "optional"));
KIN_PB_MESSAGE(VsphereVirtualDiskVolumeSource, StrP(1, "volumePath"), Str(2, "fsType"),
               Str(3, "storagePolicyName"), Str(4, "storagePolicyID"));
KIN_PB_MESSAGE(QuobyteVolumeSource, StrP(1, "registry"), StrP(2, "volume"), Bool(3, "readOnly"),
               Str(4, "user"), Str(5, "group"), Str(6, "tenant"));
KIN_PB_MESSAGE(AzureDiskVolumeSource, StrP(1, "diskName"), StrP(2, "diskURI"),
               StrP(3, "cachingMode"), StrP(4, "fsType"), BoolP(5, "readOnly"), StrP(6, "kind"));
KIN_PB_MESSAGE(PhotonPersistentDiskVolumeSource, StrP(1, "pdID"), Str(2, "fsType"));
KIN_PB_MESSAGE(SecretProjection, Inline(1, kLocalObjectReference), Objs(2, "items", kKeyToPath),
               BoolP(4, "optional"));
KIN_PB_MESSAGE(DownwardAPIProjection, Objs(1, "items", kDownwardAPIVolumeFile));
KIN_PB_MESSAGE(ConfigMapProjection, Inline(1, kLocalObjectReference), Objs(2, "items", kKeyToPath),
               BoolP(4, "optional"));
KIN_PB_MESSAGE(ServiceAccountTokenProjection, Str(1, "audience"), Int64P(2, "expirationSeconds"),
               StrP(3, "path"));
KIN_PB_MESSAGE(ClusterTrustBundleProjection, StrP(1, "name"), StrP(2, "signerName"),
               Obj(3, "labelSelector", kLabelSelector), BoolP(5, "optional"), StrP(4, "path"));
KIN_PB_MESSAGE(PodCertificateProjection, Str(1, "signerName"), Str(2, "keyType"),
               Int32P(3, "maxExpirationSeconds"), Str(4, "credentialBundlePath"), Str(5, "keyPath"),
               Str(6, "certificateChainPath"), StrMap(7, "userAnnotations"));
KIN_PB_MESSAGE(VolumeProjection, Obj(1, "secret", kSecretProjection),
               Obj(2, "downwardAPI", kDownwardAPIProjection),
               Obj(3, "configMap", kConfigMapProjection),
               Obj(4, "serviceAccountToken", kServiceAccountTokenProjection),
               Obj(5, "clusterTrustBundle", kClusterTrustBundleProjection),
               Obj(6, "podCertificate", kPodCertificateProjection));
KIN_PB_MESSAGE(ProjectedVolumeSource, Objs(1, "sources", kVolumeProjection),
               Int32P(2, "defaultMode"));
KIN_PB_MESSAGE(PortworxVolumeSource, StrP(1, "volumeID"), Str(2, "fsType"), Bool(3, "readOnly"));
KIN_PB_MESSAGE(ScaleIOVolumeSource, StrP(1, "gateway"), StrP(2, "system"),
               Obj(3, "secretRef", kLocalObjectReference), Bool(4, "sslEnabled"),
               Str(5, "protectionDomain"), Str(6, "storagePool"), Str(7, "storageMode"),
               Str(8, "volumeName"), Str(9, "fsType"), Bool(10, "readOnly"));
KIN_PB_MESSAGE(StorageOSVolumeSource, Str(1, "volumeName"), Str(2, "volumeNamespace"),
               Str(3, "fsType"), Bool(4, "readOnly"), Obj(5, "secretRef", kLocalObjectReference));
KIN_PB_MESSAGE(CSIVolumeSource, StrP(1, "driver"), BoolP(2, "readOnly"), StrP(3, "fsType"),
               StrMap(4, "volumeAttributes"),
               Obj(5, "nodePublishSecretRef", kLocalObjectReference));
KIN_PB_MESSAGE(PersistentVolumeClaimSpec, Strs(1, "accessModes"),
               Obj(4, "selector", kLabelSelector), Obj(2, "resources", kVolumeResourceRequirements),
               Str(3, "volumeName"), StrP(5, "storageClassName"), StrP(6, "volumeMode"),
               Obj(7, "dataSource", kTypedLocalObjectReference),
               Obj(8, "dataSourceRef", kTypedObjectReference),
               StrP(9, "volumeAttributesClassName"));
KIN_PB_MESSAGE(PersistentVolumeClaimTemplate, Obj(1, "metadata", kObjectMeta),
               Obj(2, "spec", kPersistentVolumeClaimSpec));
KIN_PB_MESSAGE(EphemeralVolumeSource,
               Obj(1, "volumeClaimTemplate", kPersistentVolumeClaimTemplate));
KIN_PB_MESSAGE(ImageVolumeSource, Str(1, "reference"), Str(2, "pullPolicy"));
KIN_PB_MESSAGE(VolumeSource, Obj(1, "hostPath", kHostPathVolumeSource),
               Obj(2, "emptyDir", kEmptyDirVolumeSource),
               Obj(3, "gcePersistentDisk", kGCEPersistentDiskVolumeSource),
               Obj(4, "awsElasticBlockStore", kAWSElasticBlockStoreVolumeSource),
               Obj(5, "gitRepo", kGitRepoVolumeSource), Obj(6, "secret", kSecretVolumeSource),
               Obj(7, "nfs", kNFSVolumeSource), Obj(8, "iscsi", kISCSIVolumeSource),
               Obj(9, "glusterfs", kGlusterfsVolumeSource),
               Obj(10, "persistentVolumeClaim", kPersistentVolumeClaimVolumeSource),
               Obj(11, "rbd", kRBDVolumeSource), Obj(12, "flexVolume", kFlexVolumeSource),
               Obj(13, "cinder", kCinderVolumeSource), Obj(14, "cephfs", kCephFSVolumeSource),
               Obj(15, "flocker", kFlockerVolumeSource),
               Obj(16, "downwardAPI", kDownwardAPIVolumeSource), Obj(17, "fc", kFCVolumeSource),
               Obj(18, "azureFile", kAzureFileVolumeSource),
               Obj(19, "configMap", kConfigMapVolumeSource),
               Obj(20, "vsphereVolume", kVsphereVirtualDiskVolumeSource),
               Obj(21, "quobyte", kQuobyteVolumeSource),
               Obj(22, "azureDisk", kAzureDiskVolumeSource),
               Obj(23, "photonPersistentDisk", kPhotonPersistentDiskVolumeSource),
               Obj(26, "projected", kProjectedVolumeSource),
               Obj(24, "portworxVolume", kPortworxVolumeSource),
               Obj(25, "scaleIO", kScaleIOVolumeSource),
               Obj(27, "storageos", kStorageOSVolumeSource), Obj(28, "csi", kCSIVolumeSource),
               Obj(29, "ephemeral", kEphemeralVolumeSource), Obj(30, "image", kImageVolumeSource));
KIN_PB_MESSAGE(Volume, StrP(1, "name"), Inline(2, kVolumeSource));

// Scheduling.
KIN_PB_MESSAGE(NodeSelectorRequirement, StrP(1, "key"), StrP(2, "operator"), Strs(3, "values"));
KIN_PB_MESSAGE(NodeSelectorTerm, Objs(1, "matchExpressions", kNodeSelectorRequirement),
               Objs(2, "matchFields", kNodeSelectorRequirement));
KIN_PB_MESSAGE(NodeSelector, Objs(1, "nodeSelectorTerms", kNodeSelectorTerm));
KIN_PB_MESSAGE(PreferredSchedulingTerm, Int32P(1, "weight"),
               Obj(2, "preference", kNodeSelectorTerm));
KIN_PB_MESSAGE(NodeAffinity,
               Obj(1, "requiredDuringSchedulingIgnoredDuringExecution", kNodeSelector),
               Objs(2, "preferredDuringSchedulingIgnoredDuringExecution",
                    kPreferredSchedulingTerm));
KIN_PB_MESSAGE(PodAffinityTerm, Obj(1, "labelSelector", kLabelSelector), Strs(2, "namespaces"),
               StrP(3, "topologyKey"), Obj(4, "namespaceSelector", kLabelSelector),
               Strs(5, "matchLabelKeys"), Strs(6, "mismatchLabelKeys"));
KIN_PB_MESSAGE(WeightedPodAffinityTerm, Int32P(1, "weight"),
               Obj(2, "podAffinityTerm", kPodAffinityTerm));
KIN_PB_MESSAGE(PodAffinity,
               Objs(1, "requiredDuringSchedulingIgnoredDuringExecution", kPodAffinityTerm),
               Objs(2, "preferredDuringSchedulingIgnoredDuringExecution",
                    kWeightedPodAffinityTerm));
KIN_PB_MESSAGE(PodAntiAffinity,
               Objs(1, "requiredDuringSchedulingIgnoredDuringExecution", kPodAffinityTerm),
               Objs(2, "preferredDuringSchedulingIgnoredDuringExecution",
                    kWeightedPodAffinityTerm));
KIN_PB_MESSAGE(Affinity, Obj(1, "nodeAffinity", kNodeAffinity), Obj(2, "podAffinity", kPodAffinity),
               Obj(3, "podAntiAffinity", kPodAntiAffinity));
KIN_PB_MESSAGE(Toleration, Str(1, "key"), Str(2, "operator"), Str(3, "value"), Str(4, "effect"),
               Int64P(5, "tolerationSeconds"));
KIN_PB_MESSAGE(TopologySpreadConstraint, Int32P(1, "maxSkew"), StrP(2, "topologyKey"),
               StrP(3, "whenUnsatisfiable"), Obj(4, "labelSelector", kLabelSelector),
               Int32P(5, "minDomains"), StrP(6, "nodeAffinityPolicy"), StrP(7, "nodeTaintsPolicy"),
               Strs(8, "matchLabelKeys"));

// Pods.
KIN_PB_MESSAGE(HostAlias, StrP(1, "ip"), Strs(2, "hostnames"));
KIN_PB_MESSAGE(PodDNSConfigOption, Str(1, "name"), StrP(2, "value"));
KIN_PB_MESSAGE(PodDNSConfig, Strs(1, "nameservers"), Strs(2, "searches"),
               Objs(3, "options", kPodDNSConfigOption));
KIN_PB_MESSAGE(PodReadinessGate, StrP(1, "conditionType"));
KIN_PB_MESSAGE(PodOS, StrP(1, "name"));
KIN_PB_MESSAGE(PodSchedulingGate, StrP(1, "name"));
KIN_PB_MESSAGE(PodResourceClaim, StrP(1, "name"), StrP(3, "resourceClaimName"),
               StrP(4, "resourceClaimTemplateName"));
KIN_PB_MESSAGE(WorkloadReference, Str(1, "name"), Str(2, "podGroup"), Str(3, "podGroupReplicaKey"));
KIN_PB_MESSAGE(
    PodSpec, Objs(1, "volumes", kVolume), Objs(20, "initContainers", kContainer),
    Objs(2, "containers", kContainer), Objs(34, "ephemeralContainers", kEphemeralContainer),
    Str(3, "restartPolicy"), Int64P(4, "terminationGracePeriodSeconds"),
    Int64P(5, "activeDeadlineSeconds"), Str(6, "dnsPolicy"), StrMap(7, "nodeSelector"),
    Str(8, "serviceAccountName"), Str(9, "serviceAccount"),
    BoolP(21, "automountServiceAccountToken"), Str(10, "nodeName"), Bool(11, "hostNetwork"),
    Bool(12, "hostPID"), Bool(13, "hostIPC"), BoolP(27, "shareProcessNamespace"),
    Obj(14, "securityContext", kPodSecurityContext),
    Objs(15, "imagePullSecrets", kLocalObjectReference), Str(16, "hostname"), Str(17, "subdomain"),
    Obj(18, "affinity", kAffinity), Str(19, "schedulerName"), Objs(22, "tolerations", kToleration),
    Objs(23, "hostAliases", kHostAlias), Str(24, "priorityClassName"), Int32P(25, "priority"),
    Obj(26, "dnsConfig", kPodDNSConfig), Objs(28, "readinessGates", kPodReadinessGate),
    StrP(29, "runtimeClassName"), BoolP(30, "enableServiceLinks"), StrP(31, "preemptionPolicy"),
    QtyMap(32, "overhead"), Objs(33, "topologySpreadConstraints", kTopologySpreadConstraint),
    BoolP(35, "setHostnameAsFQDN"), Obj(36, "os", kPodOS), BoolP(37, "hostUsers"),
    Objs(38, "schedulingGates", kPodSchedulingGate), Objs(39, "resourceClaims", kPodResourceClaim),
    Obj(40, "resources", kResourceRequirements), StrP(41, "hostnameOverride"),
    Obj(42, "workloadRef", kWorkloadReference));

// Pod status.
KIN_PB_MESSAGE(PodCondition, StrP(1, "type"), Int64(7, "observedGeneration"), StrP(2, "status"),
               Time(3, "lastProbeTime"), Time(4, "lastTransitionTime"), Str(5, "reason"),
               Str(6, "message"));
KIN_PB_MESSAGE(HostIP, StrP(1, "ip"));
KIN_PB_MESSAGE(PodIP, StrP(1, "ip"));
KIN_PB_MESSAGE(ContainerStateWaiting, Str(1, "reason"), Str(2, "message"));
KIN_PB_MESSAGE(ContainerStateRunning, Time(1, "startedAt"));
KIN_PB_MESSAGE(ContainerStateTerminated, Int32P(1, "exitCode"), Int32(2, "signal"),
               Str(3, "reason"), Str(4, "message"), Time(5, "startedAt"), Time(6, "finishedAt"),
               Str(7, "containerID"));
KIN_PB_MESSAGE(ContainerState, Obj(1, "waiting", kContainerStateWaiting),
               Obj(2, "running", kContainerStateRunning),
               Obj(3, "terminated", kContainerStateTerminated));
KIN_PB_MESSAGE(VolumeMountStatus, StrP(1, "name"), StrP(2, "mountPath"), Bool(3, "readOnly"),
               StrP(4, "recursiveReadOnly"));
KIN_PB_MESSAGE(LinuxContainerUser, Int64P(1, "uid"), Int64P(2, "gid"),
               Int64s(3, "supplementalGroups"));
KIN_PB_MESSAGE(ContainerUser, Obj(1, "linux", kLinuxContainerUser));
KIN_PB_MESSAGE(ResourceHealth, StrP(1, "resourceID"), Str(2, "health"));
KIN_PB_MESSAGE(ResourceStatus, StrP(1, "name"), Objs(2, "resources", kResourceHealth));
KIN_PB_MESSAGE(ContainerStatus, StrP(1, "name"), Obj(2, "state", kContainerState),
               Obj(3, "lastState", kContainerState), BoolP(4, "ready"), Int32P(5, "restartCount"),
               StrP(6, "image"), StrP(7, "imageID"), Str(8, "containerID"), BoolP(9, "started"),
               QtyMap(10, "allocatedResources"), Obj(11, "resources", kResourceRequirements),
               Objs(12, "volumeMounts", kVolumeMountStatus), Obj(13, "user", kContainerUser),
               Objs(14, "allocatedResourcesStatus", kResourceStatus), StrP(15, "stopSignal"));
KIN_PB_MESSAGE(PodResourceClaimStatus, StrP(1, "name"), StrP(2, "resourceClaimName"));
KIN_PB_MESSAGE(ContainerExtendedResourceRequest, StrP(1, "containerName"), StrP(2, "resourceName"),
               StrP(3, "requestName"));
KIN_PB_MESSAGE(PodExtendedResourceClaimStatus,
               Objs(1, "requestMappings", kContainerExtendedResourceRequest),
               StrP(2, "resourceClaimName"));
KIN_PB_MESSAGE(PodStatus, Int64(17, "observedGeneration"), Str(1, "phase"),
               Objs(2, "conditions", kPodCondition), Str(3, "message"), Str(4, "reason"),
               Str(11, "nominatedNodeName"), Str(5, "hostIP"), Objs(16, "hostIPs", kHostIP),
               Str(6, "podIP"), Objs(12, "podIPs", kPodIP), Time(7, "startTime"),
               Objs(10, "initContainerStatuses", kContainerStatus),
               Objs(8, "containerStatuses", kContainerStatus), Str(9, "qosClass"),
               Objs(13, "ephemeralContainerStatuses", kContainerStatus), Str(14, "resize"),
               Objs(15, "resourceClaimStatuses", kPodResourceClaimStatus),
               Obj(18, "extendedResourceClaimStatus", kPodExtendedResourceClaimStatus));
KIN_PB_MESSAGE(Pod, Obj(1, "metadata", kObjectMeta), Obj(2, "spec", kPodSpec),
               Obj(3, "status", kPodStatus));
KIN_PB_MESSAGE(PodTemplateSpec, Obj(1, "metadata", kObjectMeta), Obj(2, "spec", kPodSpec));
KIN_PB_MESSAGE(PodTemplate, Obj(1, "metadata", kObjectMeta), Obj(2, "template", kPodTemplateSpec));

// Persistent volume claims (also StatefulSet volumeClaimTemplates).
KIN_PB_MESSAGE(PersistentVolumeClaimCondition, StrP(1, "type"), StrP(2, "status"),
               Time(3, "lastProbeTime"), Time(4, "lastTransitionTime"), Str(5, "reason"),
               Str(6, "message"));
KIN_PB_MESSAGE(ModifyVolumeStatus, Str(1, "targetVolumeAttributesClassName"), StrP(2, "status"));
KIN_PB_MESSAGE(PersistentVolumeClaimStatus, Str(1, "phase"), Strs(2, "accessModes"),
               QtyMap(3, "capacity"), Objs(4, "conditions", kPersistentVolumeClaimCondition),
               QtyMap(5, "allocatedResources"), StrMap(7, "allocatedResourceStatuses"),
               StrP(8, "currentVolumeAttributesClassName"),
               Obj(9, "modifyVolumeStatus", kModifyVolumeStatus));
KIN_PB_MESSAGE(PersistentVolumeClaim, Obj(1, "metadata", kObjectMeta),
               Obj(2, "spec", kPersistentVolumeClaimSpec),
               Obj(3, "status", kPersistentVolumeClaimStatus));

// Replication controllers.
KIN_PB_MESSAGE(ReplicationControllerSpec, Int32P(1, "replicas"), Int32(4, "minReadySeconds"),
               StrMap(2, "selector"), Obj(3, "template", kPodTemplateSpec));
KIN_PB_MESSAGE(ReplicationControllerCondition, StrP(1, "type"), StrP(2, "status"),
               Time(3, "lastTransitionTime"), Str(4, "reason"), Str(5, "message"));
KIN_PB_MESSAGE(ReplicationControllerStatus, Int32P(1, "replicas"), Int32(2, "fullyLabeledReplicas"),
               Int32(4, "readyReplicas"), Int32(5, "availableReplicas"),
               Int64(3, "observedGeneration"),
               Objs(6, "conditions", kReplicationControllerCondition));
KIN_PB_MESSAGE(ReplicationController, Obj(1, "metadata", kObjectMeta),
               Obj(2, "spec", kReplicationControllerSpec),
               Obj(3, "status", kReplicationControllerStatus));

// ---- k8s.io/api/apps/v1 ----------------------------------------------------

KIN_PB_MESSAGE(RollingUpdateDeployment, IntOrStr(1, "maxUnavailable"), IntOrStr(2, "maxSurge"));
KIN_PB_MESSAGE(DeploymentStrategy, Str(1, "type"),
               Obj(2, "rollingUpdate", kRollingUpdateDeployment));
KIN_PB_MESSAGE(DeploymentSpec, Int32P(1, "replicas"), Obj(2, "selector", kLabelSelector),
               Obj(3, "template", kPodTemplateSpec), Obj(4, "strategy", kDeploymentStrategy),
               Int32(5, "minReadySeconds"), Int32P(6, "revisionHistoryLimit"), Bool(7, "paused"),
               Int32P(9, "progressDeadlineSeconds"));
KIN_PB_MESSAGE(DeploymentCondition, StrP(1, "type"), StrP(2, "status"), Time(6, "lastUpdateTime"),
               Time(7, "lastTransitionTime"), Str(4, "reason"), Str(5, "message"));
KIN_PB_MESSAGE(DeploymentStatus, Int64(1, "observedGeneration"), Int32(2, "replicas"),
               Int32(3, "updatedReplicas"), Int32(7, "readyReplicas"),
               Int32(4, "availableReplicas"), Int32(5, "unavailableReplicas"),
               Objs(6, "conditions", kDeploymentCondition), Int32P(8, "collisionCount"));
KIN_PB_MESSAGE(Deployment, Obj(1, "metadata", kObjectMeta), Obj(2, "spec", kDeploymentSpec),
               Obj(3, "status", kDeploymentStatus));

KIN_PB_MESSAGE(ReplicaSetSpec, Int32P(1, "replicas"), Int32(4, "minReadySeconds"),
               Obj(2, "selector", kLabelSelector), Obj(3, "template", kPodTemplateSpec));
KIN_PB_MESSAGE(ReplicaSetCondition, StrP(1, "type"), StrP(2, "status"),
               Time(3, "lastTransitionTime"), Str(4, "reason"), Str(5, "message"));
KIN_PB_MESSAGE(ReplicaSetStatus, Int32P(1, "replicas"), Int32(2, "fullyLabeledReplicas"),
               Int32(4, "readyReplicas"), Int32(5, "availableReplicas"),
               Int64(3, "observedGeneration"), Objs(6, "conditions", kReplicaSetCondition));
KIN_PB_MESSAGE(ReplicaSet, Obj(1, "metadata", kObjectMeta), Obj(2, "spec", kReplicaSetSpec),
               Obj(3, "status", kReplicaSetStatus));

KIN_PB_MESSAGE(RollingUpdateDaemonSet, IntOrStr(1, "maxUnavailable"), IntOrStr(2, "maxSurge"));
KIN_PB_MESSAGE(DaemonSetUpdateStrategy, Str(1, "type"),
               Obj(2, "rollingUpdate", kRollingUpdateDaemonSet));
KIN_PB_MESSAGE(DaemonSetSpec, Obj(1, "selector", kLabelSelector),
               Obj(2, "template", kPodTemplateSpec),
               Obj(3, "updateStrategy", kDaemonSetUpdateStrategy), Int32(4, "minReadySeconds"),
               Int32P(6, "revisionHistoryLimit"));
KIN_PB_MESSAGE(DaemonSetCondition, StrP(1, "type"), StrP(2, "status"),
               Time(3, "lastTransitionTime"), Str(4, "reason"), Str(5, "message"));
KIN_PB_MESSAGE(DaemonSetStatus, Int32P(1, "currentNumberScheduled"),
               Int32P(2, "numberMisscheduled"), Int32P(3, "desiredNumberScheduled"),
               Int32P(4, "numberReady"), Int64(5, "observedGeneration"),
               Int32(6, "updatedNumberScheduled"), Int32(7, "numberAvailable"),
               Int32(8, "numberUnavailable"), Int32P(9, "collisionCount"),
               Objs(10, "conditions", kDaemonSetCondition));
KIN_PB_MESSAGE(DaemonSet, Obj(1, "metadata", kObjectMeta), Obj(2, "spec", kDaemonSetSpec),
               Obj(3, "status", kDaemonSetStatus));

KIN_PB_MESSAGE(RollingUpdateStatefulSetStrategy, Int32P(1, "partition"),
               IntOrStr(2, "maxUnavailable"));
KIN_PB_MESSAGE(StatefulSetUpdateStrategy, Str(1, "type"),
               Obj(2, "rollingUpdate", kRollingUpdateStatefulSetStrategy));
KIN_PB_MESSAGE(StatefulSetPersistentVolumeClaimRetentionPolicy, Str(1, "whenDeleted"),
               Str(2, "whenScaled"));
KIN_PB_MESSAGE(StatefulSetOrdinals, Int32(1, "start"));
KIN_PB_MESSAGE(StatefulSetSpec, Int32P(1, "replicas"), Obj(2, "selector", kLabelSelector),
               Obj(3, "template", kPodTemplateSpec),
               Objs(4, "volumeClaimTemplates", kPersistentVolumeClaim), Str(5, "serviceName"),
               Str(6, "podManagementPolicy"), Obj(7, "updateStrategy", kStatefulSetUpdateStrategy),
               Int32P(8, "revisionHistoryLimit"), Int32(9, "minReadySeconds"),
               Obj(10, "persistentVolumeClaimRetentionPolicy",
                   kStatefulSetPersistentVolumeClaimRetentionPolicy),
               Obj(11, "ordinals", kStatefulSetOrdinals));
KIN_PB_MESSAGE(StatefulSetCondition, StrP(1, "type"), StrP(2, "status"),
               Time(3, "lastTransitionTime"), Str(4, "reason"), Str(5, "message"));
KIN_PB_MESSAGE(StatefulSetStatus, Int64(1, "observedGeneration"), Int32P(2, "replicas"),
               Int32(3, "readyReplicas"), Int32(4, "currentReplicas"), Int32(5, "updatedReplicas"),
               Str(6, "currentRevision"), Str(7, "updateRevision"), Int32P(9, "collisionCount"),
               Objs(10, "conditions", kStatefulSetCondition), Int32(11, "availableReplicas"));
KIN_PB_MESSAGE(StatefulSet, Obj(1, "metadata", kObjectMeta), Obj(2, "spec", kStatefulSetSpec),
               Obj(3, "status", kStatefulSetStatus));

// ---- k8s.io/api/batch/v1 ---------------------------------------------------

KIN_PB_MESSAGE(PodFailurePolicyOnExitCodesRequirement, StrP(1, "containerName"),
               StrP(2, "operator"), Int32s(3, "values"));
KIN_PB_MESSAGE(PodFailurePolicyOnPodConditionsPattern, StrP(1, "type"), StrP(2, "status"));
KIN_PB_MESSAGE(PodFailurePolicyRule, StrP(1, "action"),
               Obj(2, "onExitCodes", kPodFailurePolicyOnExitCodesRequirement),
               Objs(3, "onPodConditions", kPodFailurePolicyOnPodConditionsPattern));
KIN_PB_MESSAGE(PodFailurePolicy, Objs(1, "rules", kPodFailurePolicyRule));
KIN_PB_MESSAGE(SuccessPolicyRule, StrP(1, "succeededIndexes"), Int32P(2, "succeededCount"));
KIN_PB_MESSAGE(SuccessPolicy, Objs(1, "rules", kSuccessPolicyRule));
KIN_PB_MESSAGE(JobSpec, Int32P(1, "parallelism"), Int32P(2, "completions"),
               Int64P(3, "activeDeadlineSeconds"), Obj(11, "podFailurePolicy", kPodFailurePolicy),
               Obj(16, "successPolicy", kSuccessPolicy), Int32P(7, "backoffLimit"),
               Int32P(12, "backoffLimitPerIndex"), Int32P(13, "maxFailedIndexes"),
               Obj(4, "selector", kLabelSelector), BoolP(5, "manualSelector"),
               Obj(6, "template", kPodTemplateSpec), Int32P(8, "ttlSecondsAfterFinished"),
               StrP(9, "completionMode"), BoolP(10, "suspend"), StrP(14, "podReplacementPolicy"),
               StrP(15, "managedBy"));
KIN_PB_MESSAGE(JobCondition, StrP(1, "type"), StrP(2, "status"), Time(3, "lastProbeTime"),
               Time(4, "lastTransitionTime"), Str(5, "reason"), Str(6, "message"));
KIN_PB_MESSAGE(UncountedTerminatedPods, Strs(1, "succeeded"), Strs(2, "failed"));
KIN_PB_MESSAGE(JobStatus, Objs(1, "conditions", kJobCondition), Time(2, "startTime"),
               Time(3, "completionTime"), Int32(4, "active"), Int32(5, "succeeded"),
               Int32(6, "failed"), Int32P(11, "terminating"), Str(7, "completedIndexes"),
               StrP(10, "failedIndexes"),
               Obj(8, "uncountedTerminatedPods", kUncountedTerminatedPods), Int32P(9, "ready"));
KIN_PB_MESSAGE(Job, Obj(1, "metadata", kObjectMeta), Obj(2, "spec", kJobSpec),
               Obj(3, "status", kJobStatus));
KIN_PB_MESSAGE(JobTemplateSpec, Obj(1, "metadata", kObjectMeta), Obj(2, "spec", kJobSpec));
KIN_PB_MESSAGE(CronJobSpec, StrP(1, "schedule"), StrP(8, "timeZone"),
               Int64P(2, "startingDeadlineSeconds"), Str(3, "concurrencyPolicy"),
               BoolP(4, "suspend"), Obj(5, "jobTemplate", kJobTemplateSpec),
               Int32P(6, "successfulJobsHistoryLimit"), Int32P(7, "failedJobsHistoryLimit"));
KIN_PB_MESSAGE(CronJobStatus, Objs(1, "active", kObjectReference), Time(4, "lastScheduleTime"),
               Time(5, "lastSuccessfulTime"));
KIN_PB_MESSAGE(CronJob, Obj(1, "metadata", kObjectMeta), Obj(2, "spec", kCronJobSpec),
               Obj(3, "status", kCronJobStatus));

// ---- k8s.io/api/rbac/v1 ----------------------------------------------------

KIN_PB_MESSAGE(PolicyRule, Strs(1, "verbs"), Strs(2, "apiGroups"), Strs(3, "resources"),
               Strs(4, "resourceNames"), Strs(5, "nonResourceURLs"));
KIN_PB_MESSAGE(AggregationRule, Objs(1, "clusterRoleSelectors", kLabelSelector));
KIN_PB_MESSAGE(RoleRef, StrP(1, "apiGroup"), StrP(2, "kind"), StrP(3, "name"));
KIN_PB_MESSAGE(Subject, StrP(1, "kind"), Str(2, "apiGroup"), StrP(3, "name"), Str(4, "namespace"));
KIN_PB_MESSAGE(Role, Obj(1, "metadata", kObjectMeta), Objs(2, "rules", kPolicyRule));
KIN_PB_MESSAGE(ClusterRole, Obj(1, "metadata", kObjectMeta), Objs(2, "rules", kPolicyRule),
               Obj(3, "aggregationRule", kAggregationRule));
KIN_PB_MESSAGE(RoleBinding, Obj(1, "metadata", kObjectMeta), Objs(2, "subjects", kSubject),
               Obj(3, "roleRef", kRoleRef));
KIN_PB_MESSAGE(ClusterRoleBinding, Obj(1, "metadata", kObjectMeta), Objs(2, "subjects", kSubject),
               Obj(3, "roleRef", kRoleRef));

// ---- k8s.io/api/authentication/v1 (kubectl create token) ----------------

// Proto names "aPIVersion" and "uID"; JSON "apiVersion" and "uid".
KIN_PB_MESSAGE(BoundObjectReference, Str(1, "kind"), Str(2, "apiVersion"), Str(3, "name"),
               Str(4, "uid"));
KIN_PB_MESSAGE(TokenRequestSpec, Strs(1, "audiences"), Int64P(4, "expirationSeconds"),
               Obj(3, "boundObjectRef", kBoundObjectReference));
KIN_PB_MESSAGE(TokenRequestStatus, StrP(1, "token"), Time(2, "expirationTimestamp"));
KIN_PB_MESSAGE(TokenRequest, Obj(1, "metadata", kObjectMeta), Obj(2, "spec", kTokenRequestSpec),
               Obj(3, "status", kTokenRequestStatus));
// TokenReview and SelfSubjectReview (kubectl auth whoami sends protobuf).
// UserInfo's extra (a map of ExtraValue) is left out: clients never send it.
KIN_PB_MESSAGE(UserInfo, Str(1, "username"), Str(2, "uid"), Strs(3, "groups"));
KIN_PB_MESSAGE(TokenReviewSpec, Str(1, "token"), Strs(2, "audiences"));
KIN_PB_MESSAGE(TokenReviewStatus, Bool(1, "authenticated"), Obj(2, "user", kUserInfo),
               Strs(4, "audiences"), Str(3, "error"));
KIN_PB_MESSAGE(TokenReview, Obj(1, "metadata", kObjectMeta), Obj(2, "spec", kTokenReviewSpec),
               Obj(3, "status", kTokenReviewStatus));
KIN_PB_MESSAGE(SelfSubjectReviewStatus, Obj(1, "userInfo", kUserInfo));
KIN_PB_MESSAGE(SelfSubjectReview, Obj(1, "metadata", kObjectMeta),
               Obj(2, "status", kSelfSubjectReviewStatus));

// ---- k8s.io/api/authorization/v1 (kubectl auth can-i) ----------------------
// (fieldSelector/labelSelector of ResourceAttributes and spec.extra are
// skipped as unknown: kin's authorizer does not read them.)

KIN_PB_MESSAGE(ResourceAttributes, Str(1, "namespace"), Str(2, "verb"), Str(3, "group"),
               Str(4, "version"), Str(5, "resource"), Str(6, "subresource"), Str(7, "name"));
KIN_PB_MESSAGE(NonResourceAttributes, Str(1, "path"), Str(2, "verb"));
KIN_PB_MESSAGE(SubjectAccessReviewSpec, Obj(1, "resourceAttributes", kResourceAttributes),
               Obj(2, "nonResourceAttributes", kNonResourceAttributes), Str(3, "user"),
               Strs(4, "groups"), Str(6, "uid"));
KIN_PB_MESSAGE(SubjectAccessReviewStatus, Bool(1, "allowed"), Bool(4, "denied"),
               Str(2, "reason"), Str(3, "evaluationError"));
KIN_PB_MESSAGE(SubjectAccessReview, Obj(1, "metadata", kObjectMeta),
               Obj(2, "spec", kSubjectAccessReviewSpec),
               Obj(3, "status", kSubjectAccessReviewStatus));
KIN_PB_MESSAGE(SelfSubjectAccessReviewSpec, Obj(1, "resourceAttributes", kResourceAttributes),
               Obj(2, "nonResourceAttributes", kNonResourceAttributes));
KIN_PB_MESSAGE(SelfSubjectAccessReview, Obj(1, "metadata", kObjectMeta),
               Obj(2, "spec", kSelfSubjectAccessReviewSpec),
               Obj(3, "status", kSubjectAccessReviewStatus));
KIN_PB_MESSAGE(SelfSubjectRulesReviewSpec, Str(1, "namespace"));
KIN_PB_MESSAGE(SelfSubjectRulesReview, Obj(1, "metadata", kObjectMeta),
               Obj(2, "spec", kSelfSubjectRulesReviewSpec));

// ---- k8s.io/api/policy/v1, scheduling/v1 -----------------------------------

KIN_PB_MESSAGE(PodDisruptionBudgetSpec, IntOrStr(1, "minAvailable"),
               Obj(2, "selector", kLabelSelector), IntOrStr(3, "maxUnavailable"),
               StrP(4, "unhealthyPodEvictionPolicy"));
KIN_PB_MESSAGE(PodDisruptionBudgetStatus, Int64(1, "observedGeneration"),
               TimeMap(2, "disruptedPods"), Int32P(3, "disruptionsAllowed"),
               Int32P(4, "currentHealthy"), Int32P(5, "desiredHealthy"), Int32P(6, "expectedPods"),
               Objs(7, "conditions", kCondition));
KIN_PB_MESSAGE(PodDisruptionBudget, Obj(1, "metadata", kObjectMeta),
               Obj(2, "spec", kPodDisruptionBudgetSpec),
               Obj(3, "status", kPodDisruptionBudgetStatus));
// meta/v1 DeleteOptions as policy/v1 Eviction embeds it (`kubectl drain`).
KIN_PB_MESSAGE(Preconditions, StrP(1, "uid"), StrP(2, "resourceVersion"));
KIN_PB_MESSAGE(DeleteOptions, Int64P(1, "gracePeriodSeconds"),
               Obj(2, "preconditions", kPreconditions), BoolP(3, "orphanDependents"),
               StrP(4, "propagationPolicy"), Strs(5, "dryRun"),
               BoolP(6, "ignoreStoreReadErrorWithClusterBreakingPotential"));
KIN_PB_MESSAGE(Eviction, Obj(1, "metadata", kObjectMeta), Obj(2, "deleteOptions", kDeleteOptions));
KIN_PB_MESSAGE(PriorityClass, Obj(1, "metadata", kObjectMeta), Int32P(2, "value"),
               Bool(3, "globalDefault"), Str(4, "description"), StrP(5, "preemptionPolicy"));

// ---- k8s.io/api/networking/v1 ----------------------------------------------

KIN_PB_MESSAGE(ServiceBackendPort, Str(1, "name"), Int32(2, "number"));
KIN_PB_MESSAGE(IngressServiceBackend, StrP(1, "name"), Obj(2, "port", kServiceBackendPort));
KIN_PB_MESSAGE(IngressBackend, Obj(4, "service", kIngressServiceBackend),
               Obj(3, "resource", kTypedLocalObjectReference));
KIN_PB_MESSAGE(HTTPIngressPath, Str(1, "path"), StrP(3, "pathType"),
               Obj(2, "backend", kIngressBackend));
KIN_PB_MESSAGE(HTTPIngressRuleValue, Objs(1, "paths", kHTTPIngressPath));
KIN_PB_MESSAGE(IngressRuleValue, Obj(1, "http", kHTTPIngressRuleValue));
KIN_PB_MESSAGE(IngressRule, Str(1, "host"), Inline(2, kIngressRuleValue));
KIN_PB_MESSAGE(IngressTLS, Strs(1, "hosts"), Str(2, "secretName"));
KIN_PB_MESSAGE(IngressSpec, StrP(4, "ingressClassName"), Obj(1, "defaultBackend", kIngressBackend),
               Objs(2, "tls", kIngressTLS), Objs(3, "rules", kIngressRule));
KIN_PB_MESSAGE(IngressPortStatus, Int32P(1, "port"), StrP(2, "protocol"), StrP(3, "error"));
KIN_PB_MESSAGE(IngressLoadBalancerIngress, Str(1, "ip"), Str(2, "hostname"),
               Objs(4, "ports", kIngressPortStatus));
KIN_PB_MESSAGE(IngressLoadBalancerStatus, Objs(1, "ingress", kIngressLoadBalancerIngress));
KIN_PB_MESSAGE(IngressStatus, Obj(1, "loadBalancer", kIngressLoadBalancerStatus));
KIN_PB_MESSAGE(Ingress, Obj(1, "metadata", kObjectMeta), Obj(2, "spec", kIngressSpec),
               Obj(3, "status", kIngressStatus));
// The proto name of field 1 is "aPIGroup"; JSON says "apiGroup".
KIN_PB_MESSAGE(IngressClassParametersReference, StrP(1, "apiGroup"), StrP(2, "kind"),
               StrP(3, "name"), StrP(4, "scope"), StrP(5, "namespace"));
KIN_PB_MESSAGE(IngressClassSpec, Str(1, "controller"),
               Obj(2, "parameters", kIngressClassParametersReference));
KIN_PB_MESSAGE(IngressClass, Obj(1, "metadata", kObjectMeta), Obj(2, "spec", kIngressClassSpec));
KIN_PB_MESSAGE(IPBlock, StrP(1, "cidr"), Strs(2, "except"));
KIN_PB_MESSAGE(NetworkPolicyPort, StrP(1, "protocol"), IntOrStr(2, "port"), Int32P(3, "endPort"));
KIN_PB_MESSAGE(NetworkPolicyPeer, Obj(1, "podSelector", kLabelSelector),
               Obj(2, "namespaceSelector", kLabelSelector), Obj(3, "ipBlock", kIPBlock));
KIN_PB_MESSAGE(NetworkPolicyIngressRule, Objs(1, "ports", kNetworkPolicyPort),
               Objs(2, "from", kNetworkPolicyPeer));
KIN_PB_MESSAGE(NetworkPolicyEgressRule, Objs(1, "ports", kNetworkPolicyPort),
               Objs(2, "to", kNetworkPolicyPeer));
KIN_PB_MESSAGE(NetworkPolicySpec, Obj(1, "podSelector", kLabelSelector),
               Objs(2, "ingress", kNetworkPolicyIngressRule),
               Objs(3, "egress", kNetworkPolicyEgressRule), Strs(4, "policyTypes"));
KIN_PB_MESSAGE(NetworkPolicy, Obj(1, "metadata", kObjectMeta), Obj(2, "spec", kNetworkPolicySpec));

#undef KIN_PB_MESSAGE

struct KindSchema {
  std::string_view api_version;
  std::string_view kind;
  const Message* message;
};

constinit const KindSchema kKinds[] = {
    {"v1", "Namespace", &kNamespace},
    {"v1", "ConfigMap", &kConfigMap},
    {"v1", "Secret", &kSecret},
    {"v1", "Service", &kService},
    {"v1", "ServiceAccount", &kServiceAccount},
    {"v1", "Pod", &kPod},
    {"v1", "PodTemplate", &kPodTemplate},
    {"v1", "ReplicationController", &kReplicationController},
    {"v1", "PersistentVolumeClaim", &kPersistentVolumeClaim},
    {"v1", "ResourceQuota", &kResourceQuota},
    {"v1", "LimitRange", &kLimitRange},
    {"v1", "Event", &kEvent},
    {"apps/v1", "Deployment", &kDeployment},
    {"apps/v1", "ReplicaSet", &kReplicaSet},
    {"apps/v1", "DaemonSet", &kDaemonSet},
    {"apps/v1", "StatefulSet", &kStatefulSet},
    {"batch/v1", "Job", &kJob},
    {"batch/v1", "CronJob", &kCronJob},
    {"rbac.authorization.k8s.io/v1", "Role", &kRole},
    {"rbac.authorization.k8s.io/v1", "ClusterRole", &kClusterRole},
    {"rbac.authorization.k8s.io/v1", "RoleBinding", &kRoleBinding},
    {"rbac.authorization.k8s.io/v1", "ClusterRoleBinding", &kClusterRoleBinding},
    {"policy/v1", "PodDisruptionBudget", &kPodDisruptionBudget},
    {"policy/v1", "Eviction", &kEviction},
    {"scheduling.k8s.io/v1", "PriorityClass", &kPriorityClass},
    {"networking.k8s.io/v1", "Ingress", &kIngress},
    {"networking.k8s.io/v1", "IngressClass", &kIngressClass},
    {"networking.k8s.io/v1", "NetworkPolicy", &kNetworkPolicy},
    {"authentication.k8s.io/v1", "TokenRequest", &kTokenRequest},
    {"authentication.k8s.io/v1", "TokenReview", &kTokenReview},
    {"authentication.k8s.io/v1", "SelfSubjectReview", &kSelfSubjectReview},
    {"authorization.k8s.io/v1", "SelfSubjectAccessReview", &kSelfSubjectAccessReview},
    {"authorization.k8s.io/v1", "SelfSubjectRulesReview", &kSelfSubjectRulesReview},
    {"authorization.k8s.io/v1", "SubjectAccessReview", &kSubjectAccessReview},
    {"authorization.k8s.io/v1", "LocalSubjectAccessReview", &kSubjectAccessReview},
};

// ---------------------------------------------------------------------------
// Wire format.
// ---------------------------------------------------------------------------

enum WireType : int {
  kVarint = 0,
  kFixed64 = 1,
  kLengthDelimited = 2,
  kStartGroup = 3,
  kEndGroup = 4,
  kFixed32 = 5,
};

// Deeper than any supported schema; bounds the recursion on hostile input.
constexpr int kMaxDepth = 64;

[[noreturn]] void Malformed(std::string_view where, std::string_view what) {
  throw Error::BadRequest("protobuf: malformed " + std::string(where) + ": " + std::string(what));
}

class WireReader {
 public:
  WireReader(std::string_view data, std::string_view where) : data_(data), where_(where) {}

  bool AtEnd() const { return pos_ == data_.size(); }

  std::uint64_t Varint() {
    std::uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ == data_.size()) Malformed(where_, "truncated varint");
      auto byte = static_cast<std::uint8_t>(data_[pos_++]);
      if (shift == 63 && byte > 1) Malformed(where_, "varint overflows 64 bits");
      value |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return value;
    }
    Malformed(where_, "varint longer than 10 bytes");
  }

  std::string_view Bytes() {
    std::uint64_t length = Varint();
    if (length > data_.size() - pos_) {
      Malformed(where_, "length " + std::to_string(length) + " runs past the end of the data");
    }
    std::string_view out = data_.substr(pos_, length);
    pos_ += length;
    return out;
  }

  // Returns {field number, wire type}.
  std::pair<std::uint64_t, int> Tag() {
    std::uint64_t tag = Varint();
    std::uint64_t number = tag >> 3;
    if (number == 0 || number > 0x1fffffff) Malformed(where_, "invalid field number");
    return {number, static_cast<int>(tag & 7)};
  }

  void Skip(std::uint64_t number, int wire_type, int depth) {
    switch (wire_type) {
      case kVarint:
        Varint();
        return;
      case kFixed64:
        Advance(8);
        return;
      case kLengthDelimited:
        Bytes();
        return;
      case kFixed32:
        Advance(4);
        return;
      case kStartGroup:
        if (depth > kMaxDepth) Malformed(where_, "nesting too deep");
        for (;;) {
          if (AtEnd()) Malformed(where_, "unterminated group");
          auto [inner, inner_type] = Tag();
          if (inner_type == kEndGroup) {
            if (inner != number) Malformed(where_, "mismatched end of group");
            return;
          }
          Skip(inner, inner_type, depth + 1);
        }
      default:
        Malformed(where_, "invalid wire type " + std::to_string(wire_type));
    }
  }

 private:
  void Advance(std::size_t n) {
    if (n > data_.size() - pos_) Malformed(where_, "truncated fixed-width field");
    pos_ += n;
  }

  std::string_view data_;
  std::string_view where_;
  std::size_t pos_ = 0;
};

// ---------------------------------------------------------------------------
// JSON renderings of the special types.
// ---------------------------------------------------------------------------

// Length of the well-formed UTF-8 sequence at s[i], 0 if there is none.
std::size_t Utf8SequenceLength(std::string_view s, std::size_t i) {
  auto at = [&](std::size_t k) -> unsigned {
    return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0x100;
  };
  auto cont = [&](std::size_t k, unsigned lo = 0x80, unsigned hi = 0xbf) {
    unsigned c = at(k);
    return c >= lo && c <= hi;
  };
  unsigned c = at(0);
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c == 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c == 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (c == 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c == 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

// Go's encoding/json coerces strings to valid UTF-8, one U+FFFD per bad byte;
// nlohmann::json would instead throw when the object is dumped.
std::string ValidUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    std::size_t n = Utf8SequenceLength(s, i);
    if (n == 0) {
      out += "\xef\xbf\xbd";
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

// seconds since the Unix epoch -> "YYYY-MM-DDTHH:MM:SS" (UTC), with a
// fraction of `fraction_digits` digits taken from nanos, then "Z".
std::string FormatRfc3339(std::int64_t seconds, std::int64_t nanos, int fraction_digits,
                          std::string_view where) {
  // Range of google.protobuf.Timestamp: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z.
  constexpr std::int64_t kMinSeconds = -62135596800;
  constexpr std::int64_t kMaxSeconds = 253402300799;
  if (seconds < kMinSeconds || seconds > kMaxSeconds || nanos < 0 || nanos > 999999999) {
    Malformed(where, "time out of range");
  }
  std::int64_t days = seconds / 86400;
  std::int64_t secs = seconds % 86400;
  if (secs < 0) {
    secs += 86400;
    --days;
  }
  // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
  std::int64_t z = days + 719468;
  std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  std::int64_t doe = z - era * 146097;
  std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  std::int64_t year = yoe + era * 400;
  std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  std::int64_t mp = (5 * doy + 2) / 153;
  std::int64_t day = doy - (153 * mp + 2) / 5 + 1;
  std::int64_t month = mp < 10 ? mp + 3 : mp - 9;
  if (month <= 2) ++year;
  char buf[48];
  int n =
      std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d", static_cast<int>(year),
                    static_cast<int>(month), static_cast<int>(day), static_cast<int>(secs / 3600),
                    static_cast<int>(secs / 60 % 60), static_cast<int>(secs % 60));
  std::string out(buf, static_cast<std::size_t>(n));
  if (fraction_digits > 0) {
    std::snprintf(buf, sizeof buf, ".%09d", static_cast<int>(nanos));
    out.append(buf, 1 + static_cast<std::size_t>(fraction_digits));
  }
  out += 'Z';
  return out;
}

void ExpectWireType(int got, int want, const Message& m, const Field& f) {
  if (got != want) {
    throw Error::BadRequest("protobuf: field " + std::to_string(f.number) + " (" + f.json +
                            ") of " + m.name + " has wire type " + std::to_string(got) + ", want " +
                            std::to_string(want));
  }
}

// An absent Time (Go's zero time.Time, which marshals to nothing) gives null.
Json DecodeTime(std::string_view data, bool micro, std::string_view where) {
  if (data.empty()) return nullptr;
  WireReader r(data, where);
  std::int64_t seconds = 0;
  std::int64_t nanos = 0;
  while (!r.AtEnd()) {
    auto [number, wire] = r.Tag();
    if (number == 1 && wire == kVarint) {
      seconds = static_cast<std::int64_t>(r.Varint());
    } else if (number == 2 && wire == kVarint) {
      nanos = static_cast<std::int32_t>(r.Varint());
    } else {
      r.Skip(number, wire, 0);
    }
  }
  // metav1.Time renders whole seconds (time.RFC3339), MicroTime six digits.
  return FormatRfc3339(seconds, micro ? nanos : 0, micro ? 6 : 0, where);
}

// resource.Quantity; an empty one renders "0" as Go's Quantity.String() does.
Json DecodeQuantity(std::string_view data, std::string_view where) {
  WireReader r(data, where);
  std::string value;
  while (!r.AtEnd()) {
    auto [number, wire] = r.Tag();
    if (number == 1 && wire == kLengthDelimited) {
      value = ValidUtf8(r.Bytes());
    } else {
      r.Skip(number, wire, 0);
    }
  }
  return value.empty() ? Json("0") : Json(value);
}

Json DecodeIntOrString(std::string_view data, std::string_view where) {
  WireReader r(data, where);
  std::int64_t type = 0;
  std::int32_t int_val = 0;
  std::string str_val;
  while (!r.AtEnd()) {
    auto [number, wire] = r.Tag();
    if (number == 1 && wire == kVarint) {
      type = static_cast<std::int64_t>(r.Varint());
    } else if (number == 2 && wire == kVarint) {
      int_val = static_cast<std::int32_t>(r.Varint());
    } else if (number == 3 && wire == kLengthDelimited) {
      str_val = ValidUtf8(r.Bytes());
    } else {
      r.Skip(number, wire, 0);
    }
  }
  if (type == 1) return str_val;
  if (type != 0) Malformed(where, "IntOrString type " + std::to_string(type));
  return int_val;
}

// metav1.FieldsV1 holds raw JSON.
Json DecodeFieldsV1(std::string_view data, std::string_view where) {
  WireReader r(data, where);
  std::string_view raw;
  while (!r.AtEnd()) {
    auto [number, wire] = r.Tag();
    if (number == 1 && wire == kLengthDelimited) {
      raw = r.Bytes();
    } else {
      r.Skip(number, wire, 0);
    }
  }
  if (raw.empty()) return nullptr;
  Json parsed = Json::parse(raw, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) Malformed(where, "fieldsV1 is not JSON");
  return parsed;
}

// A length-delimited value of a special type (Quantity, Time, ...) or a map value.
Json DecodeValue(Type type, std::string_view data, std::string_view where) {
  switch (type) {
    case Type::kString:
      return ValidUtf8(data);
    case Type::kBytes:
      return Base64Encode(data);
    case Type::kQuantity:
      return DecodeQuantity(data, where);
    case Type::kIntOrString:
      return DecodeIntOrString(data, where);
    case Type::kTime:
      return DecodeTime(data, /*micro=*/false, where);
    case Type::kMicroTime:
      return DecodeTime(data, /*micro=*/true, where);
    case Type::kFieldsV1:
      return DecodeFieldsV1(data, where);
    default:
      Malformed(where, "unexpected value type");
  }
}

Json ZeroValue(Type type) {
  switch (type) {
    case Type::kString:
    case Type::kBytes:
      return "";
    case Type::kQuantity:
      return "0";
    default:
      return nullptr;
  }
}

void DecodeMapEntry(std::string_view data, const Message& m, const Field& f, Json& out) {
  WireReader r(data, m.name);
  std::string key;
  Json value = ZeroValue(f.type);
  while (!r.AtEnd()) {
    auto [number, wire] = r.Tag();
    if (number == 1) {
      ExpectWireType(wire, kLengthDelimited, m, f);
      key = ValidUtf8(r.Bytes());
    } else if (number == 2) {
      ExpectWireType(wire, kLengthDelimited, m, f);
      value = DecodeValue(f.type, r.Bytes(), m.name);
    } else {
      r.Skip(number, wire, 0);
    }
  }
  Json& map = out[f.json];
  if (!map.is_object()) map = Json::object();
  map[key] = std::move(value);
}

Json ScalarFromVarint(Type type, std::uint64_t v) {
  switch (type) {
    case Type::kBool:
      return v != 0;
    case Type::kInt32:
      return static_cast<std::int32_t>(v);
    default:
      return static_cast<std::int64_t>(v);
  }
}

// go-to-protobuf writes one tagged varint per element; proto3-style packed
// runs are accepted too.
void DecodeRepeatedInts(WireReader& r, int wire, const Message& m, const Field& f, Json& out) {
  if (wire == kVarint) {
    out[f.json].push_back(ScalarFromVarint(f.type, r.Varint()));
    return;
  }
  ExpectWireType(wire, kLengthDelimited, m, f);
  WireReader packed(r.Bytes(), m.name);
  while (!packed.AtEnd()) out[f.json].push_back(ScalarFromVarint(f.type, packed.Varint()));
}

void DecodeFields(std::string_view data, const Message& m, Json& out, int depth) {
  if (depth > kMaxDepth) Malformed(m.name, "nesting too deep");
  WireReader r(data, m.name);
  while (!r.AtEnd()) {
    auto [number, wire] = r.Tag();
    const Field* f = nullptr;
    for (std::size_t i = 0; i < m.size; ++i) {
      if (static_cast<std::uint64_t>(m.fields[i].number) == number) f = &m.fields[i];
    }
    if (f == nullptr) {
      r.Skip(number, wire, depth);
      continue;
    }
    if (f->shape == Shape::kMap) {
      ExpectWireType(wire, kLengthDelimited, m, *f);
      DecodeMapEntry(r.Bytes(), m, *f, out);
      continue;
    }
    switch (f->type) {
      case Type::kBool:
      case Type::kInt32:
      case Type::kInt64: {
        if (f->shape == Shape::kRepeated) {
          DecodeRepeatedInts(r, wire, m, *f, out);
          break;
        }
        ExpectWireType(wire, kVarint, m, *f);
        std::uint64_t v = r.Varint();
        if (v == 0 && !f->keep_zero) {
          out.erase(f->json);
        } else {
          out[f->json] = ScalarFromVarint(f->type, v);
        }
        break;
      }
      case Type::kString: {
        ExpectWireType(wire, kLengthDelimited, m, *f);
        std::string_view s = r.Bytes();
        if (f->shape == Shape::kRepeated) {
          out[f->json].push_back(ValidUtf8(s));
        } else if (s.empty() && !f->keep_zero) {
          out.erase(f->json);
        } else {
          out[f->json] = ValidUtf8(s);
        }
        break;
      }
      case Type::kMessage: {
        ExpectWireType(wire, kLengthDelimited, m, *f);
        std::string_view payload = r.Bytes();
        if (f->shape == Shape::kRepeated) {
          Json item = Json::object();
          DecodeFields(payload, *f->message, item, depth + 1);
          out[f->json].push_back(std::move(item));
        } else {
          // A repeated occurrence of a singular message merges, as in protobuf.
          Json& child = out[f->json];
          if (!child.is_object()) child = Json::object();
          DecodeFields(payload, *f->message, child, depth + 1);
        }
        break;
      }
      case Type::kInline:
        ExpectWireType(wire, kLengthDelimited, m, *f);
        DecodeFields(r.Bytes(), *f->message, out, depth + 1);
        break;
      default: {
        ExpectWireType(wire, kLengthDelimited, m, *f);
        Json value = DecodeValue(f->type, r.Bytes(), m.name);
        if (value.is_null()) {
          out.erase(f->json);
        } else {
          out[f->json] = std::move(value);
        }
        break;
      }
    }
  }
}

struct Unknown {
  std::string api_version;
  std::string kind;
  std::string_view raw;
  std::string content_encoding;
  std::string content_type;
};

Unknown ParseUnknown(std::string_view data) {
  Unknown u;
  WireReader r(data, "runtime.Unknown");
  auto string_field = [&](int wire) {
    if (wire != kLengthDelimited) Malformed("runtime.Unknown", "unexpected wire type");
    return std::string(r.Bytes());
  };
  while (!r.AtEnd()) {
    auto [number, wire] = r.Tag();
    switch (number) {
      case 1: {
        if (wire != kLengthDelimited) Malformed("runtime.Unknown", "unexpected wire type");
        WireReader t(r.Bytes(), "runtime.TypeMeta");
        while (!t.AtEnd()) {
          auto [tn, tw] = t.Tag();
          if ((tn == 1 || tn == 2) && tw == kLengthDelimited) {
            (tn == 1 ? u.api_version : u.kind) = std::string(t.Bytes());
          } else {
            t.Skip(tn, tw, 0);
          }
        }
        break;
      }
      case 2:
        if (wire != kLengthDelimited) Malformed("runtime.Unknown", "unexpected wire type");
        u.raw = r.Bytes();
        break;
      case 3:
        u.content_encoding = string_field(wire);
        break;
      case 4:
        u.content_type = string_field(wire);
        break;
      default:
        r.Skip(number, wire, 0);
    }
  }
  return u;
}

}  // namespace

Json DecodeKubeProtobuf(std::string_view body) {
  static constexpr std::string_view kMagic("k8s\0", 4);
  if (!body.starts_with(kMagic)) {
    throw Error::BadRequest(
        "protobuf: body does not start with the Kubernetes protobuf magic \"k8s\\x00\"");
  }
  Unknown u = ParseUnknown(body.substr(kMagic.size()));
  if (u.api_version.empty() || u.kind.empty()) {
    throw Error::BadRequest("protobuf: runtime.Unknown lacks apiVersion or kind");
  }
  std::string gvk = u.api_version + " " + u.kind;
  if (!u.content_encoding.empty()) {
    throw Error::UnsupportedMediaType("protobuf: content encoding \"" + u.content_encoding +
                                      "\" of " + gvk + " is not supported; send JSON");
  }
  if (!u.content_type.empty() && u.content_type != kKubeProtobufMediaType) {
    throw Error::UnsupportedMediaType("protobuf: content type \"" + u.content_type + "\" of " +
                                      gvk + " is not supported; send JSON");
  }
  for (const KindSchema& k : kKinds) {
    if (k.api_version == u.api_version && k.kind == u.kind) {
      Json out = Json::object();
      DecodeFields(u.raw, *k.message, out, 0);
      out["apiVersion"] = u.api_version;
      out["kind"] = u.kind;
      return out;
    }
  }
  throw Error::UnsupportedMediaType("protobuf: decoding " + gvk + " is not supported; send JSON");
}

std::vector<std::string> SupportedKubeProtobufKinds() {
  std::vector<std::string> out;
  for (const KindSchema& k : kKinds) {
    out.push_back(std::string(k.api_version) + " " + std::string(k.kind));
  }
  return out;
}

}  // namespace kin::apiserver
