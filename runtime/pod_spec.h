// Pod -> what the node agent needs to start the pod's containers.
//
// Pure translation from a v1 Pod (JSON, as the API server stores it, i.e.
// after defaulting) to the node-side artefacts a kubelet + containerd pair
// would produce: the pod's hostname, its managed /etc/hosts and
// /etc/resolv.conf contents, each container's environment (service links,
// envFrom, env with $(VAR) expansion and downward-API / ConfigMap / Secret
// sources), argv (command/args merged with the image as containerd merges
// them) and the security and resource settings of a ContainerSpec.
//
// Nothing here touches the kernel or the API: ConfigMaps and Secrets are
// fetched through EnvContext::lookup; namespaces, mounts and cgroups are the
// caller's. Where Kubernetes' output order comes from a Go map (env vars,
// merged DNS options) a deterministic order is used instead and documented.
//
// Errors: a missing ConfigMap / Secret / key that is not optional throws
// Error::NotFound worded as kubelet words it (the agent reports it as
// CreateContainerConfigError); an unusable spec (no command at all, a
// Localhost seccomp profile, an unknown fieldRef) throws Error::Invalid
// (CreateContainerError).
//
// Thread-safety: pure functions; EnvContext::lookup is called on the
// caller's thread.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/yaml.h"
#include "runtime/container_spec.h"
#include "runtime/image_config.h"

namespace kin {

// spec.hostname, else metadata.name; cut to 63 characters and stripped of
// trailing '-' and '.' as kubelet does when it is longer.
std::string PodHostname(const Json& pod);
// "<hostname>.<subdomain>.<ns>.svc.<domain>" when spec.subdomain is set, else "".
std::string PodFqdn(const Json& pod, const std::string& cluster_domain);

// kubelet's managed /etc/hosts for a pod that is not on the host network.
std::string RenderEtcHosts(const Json& pod, const std::string& pod_ip,
                           const std::string& cluster_domain);

struct DnsSettings {
  std::vector<std::string> cluster_dns;  // kubelet --cluster-dns
  std::string cluster_domain = "cluster.local";
  std::string host_resolv_conf;  // content of the node's resolv.conf (dnsPolicy Default)
};
// The pod's /etc/resolv.conf as kubelet computes it (GetPodDNS) and
// containerd writes it: "search ...", "nameserver ..." lines, "options ...".
// ClusterFirst without cluster_dns falls back to the host's settings, as
// kubelet does. At most 3 nameservers and 32 search domains are kept.
std::string RenderResolvConf(const Json& pod, const DnsSettings& dns);

// The docker-link variables kubelet makes for the Services the pod sees
// (getServiceEnvVarMap + envvars.FromServices): those of the pod's namespace
// (unless spec.enableServiceLinks is false) and "kubernetes" of namespace
// default, always. `services` is a JSON array of Service objects of every
// namespace (or a ServiceList with "items"). "KEY=VALUE", services sorted by
// name (kubelet's order is a Go map's).
std::vector<std::string> ServiceEnvVars(const Json& pod, const Json& services);

struct EnvContext {
  std::string pod_ip;
  std::string host_ip;
  std::string node_name;
  std::vector<std::string> service_env;  // from ServiceEnvVars
  // Fetches a "ConfigMap" or "Secret" of namespace `ns`; nullopt when it does not exist.
  std::function<std::optional<Json>(const std::string& kind, const std::string& ns,
                                    const std::string& name)>
      lookup;
  // What resourceFieldRef limits.* report when the container sets no limit
  // (kubelet uses the node's allocatable). Zero: report 0.
  int64_t node_allocatable_millicpu = 0;
  int64_t node_allocatable_memory = 0;
};

// The container's environment, "KEY=VALUE", in containerd's order:
// HOSTNAME, PATH (the image's, else the default), the rest of the image's
// env, then kubelet's variables: service links, envFrom, env. A later
// variable of the same name replaces the earlier value in place.
std::vector<std::string> ResolveContainerEnv(const Json& pod, const Json& container,
                                             const ImageConfig& image, const EnvContext& ctx);

// Kubernetes' $(VAR) expansion (third_party/forked/golang/expansion.Expand):
// "$$" is a literal '$', "$(NAME)" is replaced by mapping(NAME) (also for an
// empty NAME), an unterminated "$(" and a '$' before anything else are kept
// as written. The one implementation: env values, command/args and volume
// subPathExpr all use it, each with its own mapping.
std::string ExpandReferences(const std::string& input,
                             const std::function<std::string(const std::string&)>& mapping);

// ExpandReferences with kubelet's MappingFuncFor: NAME's value from `env`
// ("KEY=VALUE"; the first definition wins), an unknown "$(NAME)" kept as written.
std::string ExpandEnvReferences(const std::string& input, const std::vector<std::string>& env);

// --- Downward API: one resolution for env (valueFrom) and downwardAPI volumes. ---

// What a fieldRef may name beyond the pod object: the node agent's view.
struct FieldContext {
  std::string pod_ip;
  std::string host_ip;
  std::string node_name;
};

// The value of a downward-API fieldRef, as kubelet's podFieldSelectorRuntimeValue
// and fieldpath.ExtractFieldPathAsString compute it: metadata.name, .namespace,
// .uid, .labels and .annotations (FormatDownwardMap lines), one label or
// annotation (metadata.labels['key']; "" when absent), spec.nodeName (else
// ctx.node_name), spec.serviceAccountName, status.podIP(s) and
// status.hostIP(s) (ctx's, else the pod's status). Which paths a caller may
// use is the caller's to check (the API allows env only the single-key map
// forms, volumes only metadata.*). Error::Invalid "unsupported fieldPath: <path>".
std::string PodFieldValue(const Json& pod, const std::string& field_path, const FieldContext& ctx);

// Labels/annotations as kubelet writes them (fieldpath.FormatMap): sorted
// `key="value"` lines, values Go-quoted, no trailing newline; "" for a non-object.
std::string FormatDownwardMap(const Json& map);

// What a resourceFieldRef reports for a limit the container does not set
// (kubelet's defaultPodLimitsForDownwardAPI: the node's allocatable). Zero: 0.
struct NodeAllocatable {
  int64_t millicpu = 0;
  int64_t memory = 0;
  int64_t ephemeral_storage = 0;
};

// The value of a downward-API resourceFieldRef, as kubelet's
// resource.ExtractContainerResourceValue computes it: limits.* / requests.*
// of cpu, memory, ephemeral-storage or hugepages-*, divided by the divisor
// (default 1; 0 counts as 1) and rounded up (cpu in millicores:
// ceil(MilliValue / divisor.MilliValue)). The container is the one named by
// containerName, else `default_container` (env's own container; pass null
// where containerName is required). An unset request reports the limit (as
// API defaulting copies it), an unset limit `allocatable`.
// Error::Invalid: "container <name> not found", "unsupported container
// resource : <resource>", "invalid quantity "<q>" for <resource>",
// "invalid divisor "<q>" for <resource>".
std::string ContainerResourceValue(const Json& pod, const Json& resource_field_ref,
                                   const Json& default_container,
                                   const NodeAllocatable& allocatable);

// command/args merged with the image (command replaces Entrypoint and drops
// Cmd; args replaces Cmd), $(VAR)-expanded with `env`, then
// image.command_aliases applied to argv[0]. Error::Invalid "no command
// specified" when nothing is left. Only the pod's command/args are expanded,
// never the image's words. Kubernetes expands with its own variables only
// (service links, envFrom, env; not the image's env nor HOSTNAME/PATH):
// BuildContainerSpec passes exactly those.
std::vector<std::string> ContainerArgv(const Json& container, const ImageConfig& image,
                                       const std::vector<std::string>& env);

struct PodContext {
  ImageConfig image;
  EnvContext env;
  std::string cgroup_name;
  std::string log_path;
};

// Everything of the ContainerSpec that follows from the pod and the image:
// name, argv, env, working_dir, uid/gid, supplemental groups, capabilities,
// seccomp (RuntimeDefault unless asked otherwise: kin behaves like a kubelet
// run with --seccomp-default), no_new_privs (set unless
// allowPrivilegeEscalation is true or the container is privileged), memory
// and CPU limits, new_mount_ns, hostname, log_path. Namespaces and mounts
// are left for the caller.
ContainerSpec BuildContainerSpec(const Json& pod, const Json& container, const PodContext& ctx);

// spec.terminationGracePeriodSeconds, default 30.
int64_t TerminationGracePeriodSeconds(const Json& pod);
// spec.restartPolicy, default "Always".
std::string RestartPolicy(const Json& pod);

}  // namespace kin
