// RBAC: the authorizer of rbac.authorization.k8s.io/v1, as kube-apiserver's
// (plugin/pkg/auth/authorizer/rbac) decides.
//
// Pure: a Policy (the cluster's Roles, ClusterRoles and bindings, parsed
// once) and a request's Attributes in, a Decision out; no I/O. The API
// server keeps a Policy in step with the store (apiserver/authorization.h).
//
//   Attributes a = RequestAttributes(user, "GET", "/api/v1/namespaces/ns/pods", false);
//   Decision d = Authorize(policy, a);   // d.allowed, d.reason
//   if (!d.allowed) throw ForbiddenError(a, d.reason);
//
// Rules match as upstream: verbs, apiGroups and resources "*" or equal;
// resources "pods/log" (resource/subresource) and "*/scale"; resourceNames
// (empty: all); nonResourceURLs equal or "prefix*". ClusterRoleBindings
// apply everywhere; RoleBindings (to a Role of their namespace or to a
// ClusterRole) only to requests in their namespace. Subjects: User by name,
// Group by membership, ServiceAccount by system:serviceaccount:<ns>:<name>
// (a subject without namespace takes the binding's). A binding whose role
// does not exist adds an error to the reason ("RBAC: clusterrole.rbac...
// \"x\" not found"), as upstream. system:masters is allowed everything
// before RBAC is asked (kube-apiserver's privileged-group authorizer).
//
// Thread-safety: a Policy is immutable once built; share it freely.
#pragma once

#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/error.h"
#include "base/yaml.h"

namespace kin::apiserver::rbac {

struct UserInfo {
  std::string name;
  std::vector<std::string> groups;
};

// What is asked (k8s.io/apiserver authorizer.Attributes).
struct Attributes {
  UserInfo user;
  std::string verb;  // get list watch create update patch delete deletecollection; or the
                     // lower-case HTTP method for non-resource paths; impersonate, bind, ...
  bool resource_request = false;
  std::string api_group;
  std::string api_version;
  std::string resource;
  std::string subresource;
  std::string ns;
  std::string name;
  std::string path;  // non-resource requests
};

struct PolicyRule {
  std::vector<std::string> verbs;
  std::vector<std::string> api_groups;
  std::vector<std::string> resources;
  std::vector<std::string> resource_names;
  std::vector<std::string> non_resource_urls;
  // Parses one rules[] element (missing lists are empty).
  static PolicyRule FromJson(const Json& j);
  Json ToJson() const;  // the v1 wire form (SelfSubjectRulesReview)
};

struct Subject {
  std::string kind;  // User, Group, ServiceAccount
  std::string api_group;
  std::string name;
  std::string ns;
};

struct RoleRef {
  std::string api_group;
  std::string kind;  // Role or ClusterRole
  std::string name;
};

struct Binding {
  std::string name;
  std::string ns;  // empty for ClusterRoleBindings
  RoleRef role_ref;
  std::vector<Subject> subjects;
  static Binding FromJson(const Json& j);
};

// The cluster's RBAC objects.
class Policy {
 public:
  void AddClusterRole(const Json& obj);
  void AddRole(const Json& obj);
  void AddClusterRoleBinding(const Json& obj);
  void AddRoleBinding(const Json& obj);

  // Calls visit(binding, subject, rule) for each rule that applies to
  // `user` in `ns` ("" = cluster scope: ClusterRoleBindings only), in
  // upstream's order (ClusterRoleBindings, then the namespace's
  // RoleBindings); stops when visit returns false. `errors` gets bindings
  // whose role is missing.
  using Visitor =
      std::function<bool(const Binding& b, const Subject& s, const PolicyRule& rule)>;
  void VisitRules(const UserInfo& user, const std::string& ns, std::vector<std::string>& errors,
                  const Visitor& visit) const;
  // The rules of a role a binding refers to ("Role" in `ns`, or
  // "ClusterRole"); null when it does not exist.
  const std::vector<PolicyRule>* RoleRules(const std::string& kind, const std::string& ns,
                                           const std::string& name) const;
  size_t size() const {
    return cluster_roles_.size() + roles_.size() + cluster_role_bindings_.size() +
           role_binding_count_;
  }

 private:
  std::unordered_map<std::string, std::vector<PolicyRule>> cluster_roles_;
  std::unordered_map<std::string, std::vector<PolicyRule>> roles_;  // "ns/name"
  std::vector<Binding> cluster_role_bindings_;
  std::unordered_map<std::string, std::vector<Binding>> role_bindings_;  // by namespace
  size_t role_binding_count_ = 0;
};

struct Decision {
  bool allowed = false;
  // Allowed: which binding allowed ("RBAC: allowed by ..."); denied: the
  // errors met, if any ("RBAC: ..."), else empty.
  std::string reason;
};

// The superuser group: every request of its members is allowed.
inline constexpr const char* kSystemMasters = "system:masters";

Decision Authorize(const Policy& policy, const Attributes& a);

// How a grant is named in reasons: ClusterRoleBinding "b" of ClusterRole
// "r" to Group "g"; RoleBinding "b/ns" of Role "r" to ServiceAccount "sa/ns".
std::string DescribeGrant(const Binding& b, const Subject& s);

// Does `rule` allow `a`? (rbac.RuleAllows)
bool RuleAllows(const Attributes& a, const PolicyRule& rule);

// Every rule granted to `user` in `ns` (cluster-wide ones included), for
// SelfSubjectRulesReview; `errors` as in VisitRules.
std::vector<PolicyRule> RulesFor(const Policy& policy, const UserInfo& user, const std::string& ns,
                                 std::vector<std::string>& errors);

// Escalation prevention (pkg/registry/rbac/validation): the parts of
// `servant` (broken down to one verb, group, resource or URL, and name
// each) that no rule of `owner` covers, compacted as upstream (rules that
// differ only in verbs merged). Empty: `owner` holds everything `servant`
// would grant.
std::vector<PolicyRule> Uncovered(const std::vector<PolicyRule>& owner,
                                  const std::vector<PolicyRule>& servant);
// rbacv1helpers.CompactString: {APIGroups:["apps"], Resources:["deployments"], Verbs:["get"]}.
std::string CompactString(const PolicyRule& r);

// Request info from an API request (k8s.io/apiserver RequestInfoFactory):
// /api/v1/..., /apis/<group>/<version>/... with namespaces, names,
// subresources and /watch/; GET becomes get, list or watch (`watch`: the
// watch query parameter was true), DELETE delete or deletecollection.
// Anything else is a non-resource request with the lower-case method as verb.
Attributes RequestAttributes(const UserInfo& user, const std::string& method,
                             const std::string& path, bool watch);

// kube-apiserver's 403 for a denied request: message, reason Forbidden,
// details {group, kind: resource, name}, e.g.
//   pods is forbidden: User "u" cannot list resource "pods" in API group ""
//   in the namespace "default"
Error ForbiddenError(const Attributes& a, const std::string& reason);

}  // namespace kin::apiserver::rbac
