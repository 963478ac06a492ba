#include "client/resources.h"

#include <strings.h>
#include <algorithm>
#include <memory>
#include <mutex>

namespace kin {

namespace {

const std::vector<std::string> kAllVerbs = {"create", "delete", "deletecollection", "get",
                                            "list",   "patch",  "update",           "watch"};

ResourceInfo R(std::string group, std::string version, std::string kind, std::string plural,
               bool namespaced, std::vector<std::string> short_names,
               std::vector<std::string> categories, std::vector<std::string> subresources) {
  ResourceInfo r;
  r.group = std::move(group);
  r.version = std::move(version);
  r.singular = kind;
  std::transform(r.singular.begin(), r.singular.end(), r.singular.begin(), ::tolower);
  r.kind = std::move(kind);
  r.plural = std::move(plural);
  r.namespaced = namespaced;
  r.short_names = std::move(short_names);
  r.categories = std::move(categories);
  r.subresources = std::move(subresources);
  r.verbs = kAllVerbs;
  return r;
}

ResourceInfo CreateOnly(ResourceInfo r) {
  r.verbs = {"create"};
  return r;
}

std::vector<ResourceInfo> BuildTable() {
  // Short names and categories as kube-apiserver 1.31 reports them.
  std::vector<ResourceInfo> t = {
      R("", "v1", "Namespace", "namespaces", false, {"ns"}, {}, {"status", "finalize"}),
      R("", "v1", "Node", "nodes", false, {"no"}, {}, {"status", "proxy"}),
      R("", "v1", "Pod", "pods", true, {"po"}, {"all"},
        {"status", "binding", "eviction", "log", "exec", "attach", "portforward",
         "ephemeralcontainers", "proxy"}),
      R("", "v1", "Service", "services", true, {"svc"}, {"all"}, {"status", "proxy"}),
      R("", "v1", "Endpoints", "endpoints", true, {"ep"}, {}, {}),
      R("", "v1", "ConfigMap", "configmaps", true, {"cm"}, {}, {}),
      R("", "v1", "Secret", "secrets", true, {}, {}, {}),
      R("", "v1", "Event", "events", true, {"ev"}, {}, {}),
      R("", "v1", "ServiceAccount", "serviceaccounts", true, {"sa"}, {}, {"token"}),
      // Storage: claims, volumes and classes (controllers/storage.h).
      R("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true, {"pvc"}, {},
        {"status"}),
      R("", "v1", "PersistentVolume", "persistentvolumes", false, {"pv"}, {}, {"status"}),
      R("storage.k8s.io", "v1", "StorageClass", "storageclasses", false, {"sc"}, {}, {}),
      // Pod priority (apiserver/registry.cc: the Priority admission).
      R("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", false, {"pc"}, {}, {}),
      // Reviews of who a request is: create-only, never stored
      // (apiserver/authentication.h).
      CreateOnly(R("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews",
                   false, {}, {}, {})),
      CreateOnly(R("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", false, {}, {},
                   {})),
      R("", "v1", "ReplicationController", "replicationcontrollers", true, {"rc"}, {"all"},
        {"status", "scale"}),
      // Pod templates, limit ranges (the LimitRanger admission) and quotas (the
      // ResourceQuota admission and controller): apiserver/limit_range.h,
      // apiserver/resource_quota.h.
      R("", "v1", "PodTemplate", "podtemplates", true, {}, {}, {}),
      R("", "v1", "LimitRange", "limitranges", true, {"limits"}, {}, {}),
      R("", "v1", "ResourceQuota", "resourcequotas", true, {"quota"}, {}, {"status"}),
      R("apps", "v1", "Deployment", "deployments", true, {"deploy"}, {"all"}, {"status", "scale"}),
      R("apps", "v1", "ReplicaSet", "replicasets", true, {"rs"}, {"all"}, {"status", "scale"}),
      R("apps", "v1", "DaemonSet", "daemonsets", true, {"ds"}, {"all"}, {"status"}),
      R("apps", "v1", "StatefulSet", "statefulsets", true, {"sts"}, {"all"}, {"status", "scale"}),
      R("apps", "v1", "ControllerRevision", "controllerrevisions", true, {}, {}, {}),
      R("batch", "v1", "Job", "jobs", true, {}, {"all"}, {"status"}),
      R("batch", "v1", "CronJob", "cronjobs", true, {"cj"}, {"all"}, {"status"}),
      R("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", true, {}, {}, {}),
      R("networking.k8s.io", "v1", "Ingress", "ingresses", true, {"ing"}, {}, {"status"}),
      R("networking.k8s.io", "v1", "IngressClass", "ingressclasses", false, {}, {}, {}),
      R("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", true, {"netpol"}, {}, {}),
      R("coordination.k8s.io", "v1", "Lease", "leases", true, {}, {}, {}),
      R("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true, {"pdb"}, {},
        {"status"}),
      R("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", false,
        {}, {}, {}),
      R("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false, {}, {}, {}),
      R("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true, {}, {}, {}),
      R("rbac.authorization.k8s.io", "v1", "Role", "roles", true, {}, {}, {}),
      // Stored only: kin aggregates no API servers; it writes a Local one
      // per group/version it serves, as kube-apiserver's autoregister does.
      R("apiregistration.k8s.io", "v1", "APIService", "apiservices", false, {},
        {"api-extensions"}, {"status"}),
      // Called on writes by apiserver/admission_webhook.h.
      R("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations", false, {}, {"api-extensions"}, {}),
      R("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations", false, {}, {"api-extensions"}, {}),
      // Served by kin itself (apiserver/crd.h): the dynamic set below.
      R("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions",
        false, {"crd", "crds"}, {"api-extensions"}, {"status"}),
      // Reviews: create-only, never stored (apiserver/authorization.h).
      R("authorization.k8s.io", "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews",
        true, {}, {}, {}),
      R("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews",
        false, {}, {}, {}),
      R("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", false,
        {}, {}, {}),
      R("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", false, {},
        {}, {}),
  };
  // Endpoints' singular is "endpoints" in Kubernetes.
  for (auto& r : t) {
    if (r.plural == "endpoints") r.singular = "endpoints";
    // Nodes and namespaces cannot be deleted as a collection in kube-apiserver.
    if (r.plural == "namespaces") {
      std::erase(r.verbs, std::string("deletecollection"));
    }
    if (r.group == "authorization.k8s.io") r.verbs = {"create"};
  }
  return t;
}

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// The custom resources. Callers keep the pointers the Find functions
// return (informers, static caches), so no entry is ever freed: an
// unchanged entry is reused when the set is replaced, a changed or removed
// one stays in `all` (a CRD changes rarely; the leak is bounded by edits).
struct CustomSet {
  std::mutex mu;
  std::vector<std::unique_ptr<ResourceInfo>> all;
  std::vector<const ResourceInfo*> served;
};

CustomSet& Custom() {
  static CustomSet* set = new CustomSet();  // never destroyed: pointers outlive statics
  return *set;
}

bool SameInfo(const ResourceInfo& a, const ResourceInfo& b) {
  return a.group == b.group && a.version == b.version && a.kind == b.kind &&
         a.plural == b.plural && a.singular == b.singular && a.namespaced == b.namespaced &&
         a.short_names == b.short_names && a.categories == b.categories &&
         a.subresources == b.subresources && a.verbs == b.verbs && a.custom == b.custom &&
         a.storage_version == b.storage_version;
}

}  // namespace

bool ResourceInfo::has_subresource(std::string_view s) const {
  return std::find(subresources.begin(), subresources.end(), s) != subresources.end();
}

std::string ResourceInfo::Path(const std::string& ns) const {
  std::string p = group.empty() ? "/api/" + version : "/apis/" + group + "/" + version;
  if (namespaced && !ns.empty()) p += "/namespaces/" + ns;
  return p + "/" + plural;
}

const std::vector<ResourceInfo>& AllResources() {
  static const std::vector<ResourceInfo> table = BuildTable();
  return table;
}

void SetCustomResources(std::vector<ResourceInfo> resources) {
  CustomSet& set = Custom();
  std::lock_guard lock(set.mu);
  std::vector<const ResourceInfo*> served;
  for (auto& r : resources) {
    const ResourceInfo* reuse = nullptr;
    for (const ResourceInfo* old : set.served) {
      if (SameInfo(*old, r)) reuse = old;
    }
    if (reuse == nullptr) {
      set.all.push_back(std::make_unique<ResourceInfo>(std::move(r)));
      reuse = set.all.back().get();
    }
    served.push_back(reuse);
  }
  set.served = std::move(served);
}

std::vector<const ResourceInfo*> CustomResources() {
  CustomSet& set = Custom();
  std::lock_guard lock(set.mu);
  return set.served;
}

std::vector<const ResourceInfo*> ServedResources() {
  std::vector<const ResourceInfo*> out;
  for (const auto& r : AllResources()) out.push_back(&r);
  for (const ResourceInfo* r : CustomResources()) out.push_back(r);
  return out;
}

const ResourceInfo* FindResource(std::string_view group, std::string_view version,
                                 std::string_view plural) {
  for (const auto& r : AllResources()) {
    if (r.group == group && r.version == version && r.plural == plural) return &r;
  }
  for (const ResourceInfo* r : CustomResources()) {
    if (r->group == group && r->version == version && r->plural == plural) return r;
  }
  return nullptr;
}

const ResourceInfo* FindResourceByKind(std::string_view api_version, std::string_view kind) {
  for (const auto& r : AllResources()) {
    if (r.api_version() == api_version && r.kind == kind) return &r;
  }
  for (const ResourceInfo* r : CustomResources()) {
    if (r->api_version() == api_version && r->kind == kind) return r;
  }
  return nullptr;
}

const ResourceInfo* LookupResource(std::string_view name) {
  std::string_view group;
  size_t dot = name.find('.');
  std::string_view base = name;
  if (dot != std::string_view::npos) {
    base = name.substr(0, dot);
    group = name.substr(dot + 1);
  }
  for (const ResourceInfo* r : ServedResources()) {
    if (dot != std::string_view::npos && r->group != group) continue;
    if (IEquals(base, r->plural) || IEquals(base, r->singular) || IEquals(base, r->kind)) return r;
    for (const auto& s : r->short_names) {
      if (IEquals(base, s)) return r;
    }
  }
  return nullptr;
}

#define KIN_RESOURCE_GETTER(fn, g, plural)                        \
  const ResourceInfo& fn() {                                      \
    static const ResourceInfo* r = FindResource(g, "v1", plural); \
    return *r;                                                    \
  }
KIN_RESOURCE_GETTER(PodsResource, "", "pods")
KIN_RESOURCE_GETTER(NodesResource, "", "nodes")
KIN_RESOURCE_GETTER(ServicesResource, "", "services")
KIN_RESOURCE_GETTER(NamespacesResource, "", "namespaces")
KIN_RESOURCE_GETTER(EndpointsResource, "", "endpoints")
KIN_RESOURCE_GETTER(EventsResource, "", "events")
#undef KIN_RESOURCE_GETTER

}  // namespace kin
