// Authorization of API requests: RBAC (apiserver/rbac.h) over the store's
// Roles, ClusterRoles and bindings, kept current, plus what kube-apiserver
// builds on it:
//   - the access reviews of authorization.k8s.io/v1 (SelfSubjectAccessReview,
//     SelfSubjectRulesReview, SubjectAccessReview, LocalSubjectAccessReview;
//     create-only, never stored): `kubectl auth can-i [--list]`;
//   - impersonation (Impersonate-User / Impersonate-Group headers), allowed
//     when the requester may "impersonate" users, groups or serviceaccounts;
//   - the default roles and bindings kube-apiserver's RBAC bootstrap
//     creates (cluster-admin, admin, edit, view with their aggregation
//     labels, system:basic-user, system:discovery, system:public-info-viewer,
//     system:auth-delegator, ...), labelled kubernetes.io/bootstrapping=
//     rbac-defaults and annotated autoupdate, created when missing.
//
// Freshness: the policy is rebuilt from the store when a watch on the four
// RBAC buckets has news. The store hands a write to watchers before the
// write returns, so a binding answered 201 applies to the very next
// request, as kube-apiserver's informer would a moment later. A request
// that finds nothing new costs four non-blocking queue polls and the rule
// walk.
//
// Only requests served over TLS (ApiServer with Options::tls) are
// authorized; in-process clients (LocalClient) never pass through here.
//
// Thread-safety: all methods are thread-safe.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "apiserver/rbac.h"
#include "apiserver/registry.h"
#include "apiserver/store.h"
#include "base/http_server.h"
#include "client/resources.h"

namespace kin::apiserver {

class Authorizer {
 public:
  explicit Authorizer(Store& store);
  ~Authorizer();

  // The user a request acts as: its authenticated identity (client
  // certificate or token; system:anonymous without one) with
  // system:authenticated added, or the one it impersonates, once the
  // requester is allowed to. Throws Forbidden (not allowed to impersonate)
  // or BadRequest (groups without a user).
  rbac::UserInfo RequestUser(const http::Request& req);
  // Throws kube-apiserver's 403 when `user` may not make this request.
  void Check(const rbac::UserInfo& user, const http::Request& req, bool watch);

  rbac::Decision Authorize(const rbac::Attributes& a);
  // The current policy (rebuilt first when RBAC objects changed).
  std::shared_ptr<const rbac::Policy> policy();

  // Escalation prevention on writes of rbac.authorization.k8s.io objects
  // (pkg/registry/rbac), `obj` as it would be stored: a Role or ClusterRole
  // may grant only what `user` holds itself, unless it may "escalate" it
  // (an aggregationRule needs full authority); a binding may refer only
  // to a role whose rules `user` holds, unless it may "bind" that role.
  // system:masters may do anything. Throws kube-apiserver's 403 (404 when
  // the bound role does not exist). Other resources: nothing to check.
  void CheckEscalation(const rbac::UserInfo& user, const ResourceInfo& r, const std::string& ns,
                       const Json& obj);

  // POST of an authorization.k8s.io review: the review with its status.
  Json Review(const ResourceInfo& r, const std::string& ns, const Json& body,
              const rbac::UserInfo& requester);

 private:
  void Rebuild();  // mu_ held
  Store& store_;
  std::mutex mu_;
  std::vector<std::pair<std::string, std::shared_ptr<WatchQueue>>> watches_;
  std::shared_ptr<const rbac::Policy> policy_;
};

// Creates the default ClusterRoles and ClusterRoleBindings that are missing
// (never changes existing ones). Idempotent.
void BootstrapRbacPolicy(Registry& registry);

// The default ClusterRoles and ClusterRoleBindings (v1 objects), as
// kube-apiserver 1.33's bootstrap policy; for tests and BootstrapRbacPolicy.
std::vector<Json> DefaultClusterRoles();
std::vector<Json> DefaultClusterRoleBindings();

}  // namespace kin::apiserver
