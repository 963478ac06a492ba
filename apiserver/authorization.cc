#include "apiserver/authorization.h"

#include <algorithm>

#include "base/log.h"
#include "base/strings.h"

namespace kin::apiserver {

namespace {

const char* const kRbacBuckets[] = {
    "clusterroles.rbac.authorization.k8s.io", "roles.rbac.authorization.k8s.io",
    "clusterrolebindings.rbac.authorization.k8s.io", "rolebindings.rbac.authorization.k8s.io"};

constexpr const char* kRbacGroup = "rbac.authorization.k8s.io";
constexpr const char* kAuthenticated = "system:authenticated";

bool Has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::string Str(const Json& j, const char* key) {
  if (!j.is_object()) return {};
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// errors.NewInvalid for a review with one field error.
[[noreturn]] void InvalidReview(const std::string& kind, const std::string& field,
                                const std::string& body) {
  Error e = Error::Invalid(kind + ".authorization.k8s.io \"\" is invalid: " + field + ": " + body);
  e.WithDetails(kind, "", "authorization.k8s.io");
  e.WithCause({"FieldValueInvalid", body, field});
  throw e;
}

// authorizer.Attributes from a review's spec.resourceAttributes or
// spec.nonResourceAttributes.
rbac::Attributes SpecAttributes(const std::string& kind, const Json& spec,
                                const rbac::UserInfo& user) {
  const Json* res = spec.contains("resourceAttributes") && spec["resourceAttributes"].is_object()
                        ? &spec["resourceAttributes"]
                        : nullptr;
  const Json* non = spec.contains("nonResourceAttributes") &&
                            spec["nonResourceAttributes"].is_object()
                        ? &spec["nonResourceAttributes"]
                        : nullptr;
  if (res && non) {
    InvalidReview(kind, "spec.nonResourceAttributes",
                  "Invalid value: authorization.NonResourceAttributes{Path:" +
                      GoQuote(Str(*non, "path")) + ", Verb:" + GoQuote(Str(*non, "verb")) +
                      "}: cannot be specified in combination with resourceAttributes");
  }
  if (!res && !non) {
    InvalidReview(kind, "spec.resourceAttributes",
                  "Invalid value: \"null\": exactly one of nonResourceAttributes or "
                  "resourceAttributes must be specified");
  }
  rbac::Attributes a;
  a.user = user;
  if (res) {
    a.resource_request = true;
    a.verb = Str(*res, "verb");
    a.api_group = Str(*res, "group");
    a.api_version = Str(*res, "version");
    a.resource = Str(*res, "resource");
    a.subresource = Str(*res, "subresource");
    a.ns = Str(*res, "namespace");
    a.name = Str(*res, "name");
  } else {
    a.verb = Str(*non, "verb");
    a.path = Str(*non, "path");
  }
  return a;
}

Json Rule(std::vector<std::string> verbs, std::vector<std::string> groups,
          std::vector<std::string> resources) {
  return {{"apiGroups", groups}, {"resources", resources}, {"verbs", verbs}};
}
Json UrlRule(std::vector<std::string> verbs, std::vector<std::string> urls) {
  return {{"nonResourceURLs", urls}, {"verbs", verbs}};
}

Json Meta(const std::string& name, Json labels = Json::object()) {
  labels["kubernetes.io/bootstrapping"] = "rbac-defaults";
  return {{"name", name},
          {"labels", labels},
          {"annotations", {{"rbac.authorization.kubernetes.io/autoupdate", "true"}}}};
}

Json ClusterRole(const std::string& name, Json rules, Json labels = Json::object()) {
  return {{"apiVersion", "rbac.authorization.k8s.io/v1"},
          {"kind", "ClusterRole"},
          {"metadata", Meta(name, std::move(labels))},
          {"rules", std::move(rules)}};
}

Json AggregatedClusterRole(const std::string& name, const std::string& aggregate_label,
                           Json labels = Json::object()) {
  Json r = ClusterRole(name, Json::array(), std::move(labels));
  r["aggregationRule"] = {{"clusterRoleSelectors", {{{"matchLabels", {{aggregate_label, "true"}}}}}}};
  return r;
}

Json ClusterRoleBinding(const std::string& name, const std::string& role,
                        const std::vector<std::string>& groups) {
  Json subjects = Json::array();
  for (const auto& g : groups) {
    subjects.push_back({{"apiGroup", kRbacGroup}, {"kind", "Group"}, {"name", g}});
  }
  return {{"apiVersion", "rbac.authorization.k8s.io/v1"},
          {"kind", "ClusterRoleBinding"},
          {"metadata", Meta(name)},
          {"roleRef", {{"apiGroup", kRbacGroup}, {"kind", "ClusterRole"}, {"name", role}}},
          {"subjects", subjects}};
}

const std::vector<std::string> kRead = {"get", "list", "watch"};
const std::vector<std::string> kWrite = {"create", "delete", "deletecollection", "patch",
                                         "update"};

}  // namespace

// ---- the bootstrap policy ----------------------------------------------------

std::vector<Json> DefaultClusterRoles() {
  const std::string kAggAdmin = "rbac.authorization.k8s.io/aggregate-to-admin";
  const std::string kAggEdit = "rbac.authorization.k8s.io/aggregate-to-edit";
  const std::string kAggView = "rbac.authorization.k8s.io/aggregate-to-view";
  std::vector<Json> roles;
  roles.push_back(ClusterRole("cluster-admin",
                              {Rule({"*"}, {"*"}, {"*"}), UrlRule({"*"}, {"*"})}));
  // The user-facing roles are aggregated (controllers/clusterrole_aggregation.h):
  // admin ⊇ edit ⊇ view, each filled from the system:aggregate-to-* roles.
  roles.push_back(AggregatedClusterRole("admin", kAggAdmin));
  roles.push_back(AggregatedClusterRole("edit", kAggEdit, {{kAggAdmin, "true"}}));
  roles.push_back(AggregatedClusterRole("view", kAggView, {{kAggEdit, "true"}}));
  roles.push_back(ClusterRole(
      "system:aggregate-to-admin",
      {Rule({"create"}, {"authorization.k8s.io"}, {"localsubjectaccessreviews"}),
       Rule({"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"},
            {kRbacGroup}, {"rolebindings", "roles"})},
      {{kAggAdmin, "true"}}));
  roles.push_back(ClusterRole(
      "system:aggregate-to-edit",
      {Rule(kRead, {""},
            {"pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets",
             "services/proxy"}),
       Rule({"impersonate"}, {""}, {"serviceaccounts"}),
       Rule(kWrite, {""}, {"pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"}),
       Rule({"create"}, {""}, {"pods/eviction"}),
       Rule(kWrite, {""},
            {"configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
             "replicationcontrollers/scale", "secrets", "serviceaccounts", "services",
             "services/proxy"}),
       Rule({"create"}, {""}, {"serviceaccounts/token"}),
       Rule(kWrite, {"apps"},
            {"daemonsets", "deployments", "deployments/rollback", "deployments/scale",
             "replicasets", "replicasets/scale", "statefulsets", "statefulsets/scale"}),
       Rule(kWrite, {"autoscaling"}, {"horizontalpodautoscalers"}),
       Rule(kWrite, {"batch"}, {"cronjobs", "jobs"}),
       Rule(kWrite, {"extensions"},
            {"daemonsets", "deployments", "deployments/rollback", "deployments/scale", "ingresses",
             "networkpolicies", "replicasets", "replicasets/scale",
             "replicationcontrollers/scale"}),
       Rule(kWrite, {"policy"}, {"poddisruptionbudgets"}),
       Rule(kWrite, {"networking.k8s.io"}, {"ingresses", "networkpolicies"}),
       Rule({"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"},
            {"coordination.k8s.io"}, {"leases"})},
      {{kAggEdit, "true"}}));
  roles.push_back(ClusterRole(
      "system:aggregate-to-view",
      {Rule(kRead, {""},
            {"configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status",
             "pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
             "services", "services/status"}),
       Rule(kRead, {""},
            {"bindings", "events", "limitranges", "namespaces/status", "pods/log", "pods/status",
             "replicationcontrollers/status", "resourcequotas", "resourcequotas/status"}),
       Rule(kRead, {""}, {"namespaces"}),
       Rule(kRead, {"discovery.k8s.io"}, {"endpointslices"}),
       Rule(kRead, {"apps"},
            {"controllerrevisions", "daemonsets", "daemonsets/status", "deployments",
             "deployments/scale", "deployments/status", "replicasets", "replicasets/scale",
             "replicasets/status", "statefulsets", "statefulsets/scale", "statefulsets/status"}),
       Rule(kRead, {"autoscaling"},
            {"horizontalpodautoscalers", "horizontalpodautoscalers/status"}),
       Rule(kRead, {"batch"}, {"cronjobs", "cronjobs/status", "jobs", "jobs/status"}),
       Rule(kRead, {"extensions"},
            {"daemonsets", "daemonsets/status", "deployments", "deployments/scale",
             "deployments/status", "ingresses", "ingresses/status", "networkpolicies",
             "replicasets", "replicasets/scale", "replicasets/status",
             "replicationcontrollers/scale"}),
       Rule(kRead, {"policy"}, {"poddisruptionbudgets", "poddisruptionbudgets/status"}),
       Rule(kRead, {"networking.k8s.io"}, {"ingresses", "ingresses/status", "networkpolicies"})},
      {{kAggView, "true"}}));
  roles.push_back(ClusterRole(
      "system:auth-delegator",
      {Rule({"create"}, {"authentication.k8s.io"}, {"tokenreviews"}),
       Rule({"create"}, {"authorization.k8s.io"}, {"subjectaccessreviews"})}));
  roles.push_back(ClusterRole(
      "system:basic-user",
      {Rule({"create"}, {"authorization.k8s.io"},
            {"selfsubjectaccessreviews", "selfsubjectrulesreviews"}),
       Rule({"create"}, {"authentication.k8s.io"}, {"selfsubjectreviews"})}));
  roles.push_back(ClusterRole(
      "system:discovery",
      {UrlRule({"get"}, {"/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi",
                         "/openapi/*", "/readyz", "/version", "/version/"})}));
  roles.push_back(ClusterRole(
      "system:monitoring",
      {UrlRule({"get"}, {"/healthz", "/healthz/*", "/livez", "/livez/*", "/metrics",
                         "/metrics/slis", "/readyz", "/readyz/*"})}));
  roles.push_back(ClusterRole(
      "system:public-info-viewer",
      {UrlRule({"get"}, {"/healthz", "/livez", "/readyz", "/version", "/version/"})}));
  roles.push_back(ClusterRole(
      "system:service-account-issuer-discovery",
      {UrlRule({"get"}, {"/.well-known/openid-configuration", "/openid/v1/jwks"})}));
  return roles;
}

std::vector<Json> DefaultClusterRoleBindings() {
  return {
      ClusterRoleBinding("cluster-admin", "cluster-admin", {rbac::kSystemMasters}),
      ClusterRoleBinding("system:basic-user", "system:basic-user", {kAuthenticated}),
      ClusterRoleBinding("system:discovery", "system:discovery", {kAuthenticated}),
      ClusterRoleBinding("system:monitoring", "system:monitoring", {"system:monitoring"}),
      ClusterRoleBinding("system:public-info-viewer", "system:public-info-viewer",
                         {kAuthenticated, "system:unauthenticated"}),
      ClusterRoleBinding("system:service-account-issuer-discovery",
                         "system:service-account-issuer-discovery", {"system:serviceaccounts"}),
  };
}

void BootstrapRbacPolicy(Registry& registry) {
  const ResourceInfo* roles = FindResource(kRbacGroup, "v1", "clusterroles");
  const ResourceInfo* bindings = FindResource(kRbacGroup, "v1", "clusterrolebindings");
  WriteOptions wo;
  wo.field_manager = "kube-apiserver";
  auto ensure = [&](const ResourceInfo& r, const Json& obj) {
    const std::string name = obj["metadata"]["name"];
    if (registry.store().Get(r.group_resource(), "", name)) return;
    try {
      registry.Create(r, "", obj, wo);
    } catch (const Error& e) {
      if (e.code() != Code::kAlreadyExists) throw;
    }
  };
  for (const Json& r : DefaultClusterRoles()) ensure(*roles, r);
  for (const Json& b : DefaultClusterRoleBindings()) ensure(*bindings, b);
}

// ---- the policy cache --------------------------------------------------------

Authorizer::Authorizer(Store& store) : store_(store) {
  std::lock_guard lock(mu_);
  Rebuild();
}

Authorizer::~Authorizer() {
  for (auto& [bucket, q] : watches_) store_.StopWatch(q);
}

void Authorizer::Rebuild() {
  // Watch first, then list: a change in between is seen twice (one more
  // rebuild), never missed.
  for (auto& [bucket, q] : watches_) store_.StopWatch(q);
  watches_.clear();
  for (const char* b : kRbacBuckets) watches_.emplace_back(b, store_.Watch(b, 0));
  auto p = std::make_shared<rbac::Policy>();
  auto all = [](const Record&) { return true; };
  for (const auto& rec : store_.List(kRbacBuckets[0], "", all).items) p->AddClusterRole(rec.Parse());
  for (const auto& rec : store_.List(kRbacBuckets[1], "", all).items) p->AddRole(rec.Parse());
  for (const auto& rec : store_.List(kRbacBuckets[2], "", all).items) {
    p->AddClusterRoleBinding(rec.Parse());
  }
  for (const auto& rec : store_.List(kRbacBuckets[3], "", all).items) {
    p->AddRoleBinding(rec.Parse());
  }
  policy_ = std::move(p);
}

std::shared_ptr<const rbac::Policy> Authorizer::policy() {
  std::lock_guard lock(mu_);
  bool changed = false;
  for (auto& [bucket, q] : watches_) {
    std::shared_ptr<const StoreEvent> e;
    while (q->Pop(e, std::chrono::milliseconds(0))) changed = true;
    if (q->closed() || q->overflowed()) changed = true;
  }
  if (changed) Rebuild();
  return policy_;
}

rbac::Decision Authorizer::Authorize(const rbac::Attributes& a) {
  if (Has(a.user.groups, rbac::kSystemMasters)) return {true, ""};
  return rbac::Authorize(*policy(), a);
}

rbac::UserInfo Authorizer::RequestUser(const http::Request& req) {
  rbac::UserInfo u;
  if (req.client_cn.empty()) {
    u.name = "system:anonymous";
    u.groups = {"system:unauthenticated"};
  } else {
    u.name = req.client_cn;
    u.groups = req.client_groups;
    if (!Has(u.groups, kAuthenticated)) u.groups.push_back(kAuthenticated);
  }
  std::string as_user = req.Header("Impersonate-User");
  std::vector<std::string> as_groups;
  for (auto [it, end] = req.headers.equal_range("Impersonate-Group"); it != end; ++it) {
    as_groups.push_back(it->second);
  }
  if (as_user.empty()) {
    if (!as_groups.empty()) {
      throw Error::Internal("requested [" +
                            [&] {
                              std::vector<std::string> g;
                              for (const auto& n : as_groups) {
                                g.push_back("{Group  " + n + "  authentication.k8s.io/v1  }");
                              }
                              return Join(g, " ");
                            }() +
                            "] without impersonating a user");
    }
    return u;
  }
  // As kube-apiserver's impersonation filter: the requester needs
  // "impersonate" on each identity it takes.
  auto require = [&](const std::string& resource, const std::string& ns, const std::string& name) {
    rbac::Attributes a;
    a.user = u;
    a.verb = "impersonate";
    a.resource_request = true;
    a.resource = resource;
    a.ns = ns;
    a.name = name;
    rbac::Decision d = Authorize(a);
    if (!d.allowed) throw rbac::ForbiddenError(a, d.reason);
  };
  rbac::UserInfo as;
  as.name = as_user;
  static constexpr std::string_view kSaPrefix = "system:serviceaccount:";
  if (as_user.rfind(kSaPrefix, 0) == 0 &&
      as_user.find(':', kSaPrefix.size()) != std::string::npos) {
    std::string rest = as_user.substr(kSaPrefix.size());
    std::string ns = rest.substr(0, rest.find(':'));
    require("serviceaccounts", ns, rest.substr(rest.find(':') + 1));
    as.groups = {"system:serviceaccounts", "system:serviceaccounts:" + ns};
  } else {
    require("users", "", as_user);
  }
  for (const auto& g : as_groups) {
    require("groups", "", g);
    if (!Has(as.groups, g)) as.groups.push_back(g);
  }
  if (as.name != "system:anonymous" && !Has(as.groups, kAuthenticated)) {
    as.groups.push_back(kAuthenticated);
  }
  return as;
}

void Authorizer::Check(const rbac::UserInfo& user, const http::Request& req, bool watch) {
  if (Has(user.groups, rbac::kSystemMasters)) return;
  rbac::Attributes a = rbac::RequestAttributes(user, req.method, req.path, watch);
  rbac::Decision d = rbac::Authorize(*policy(), a);
  if (!d.allowed) throw rbac::ForbiddenError(a, d.reason);
}

// ---- escalation prevention ---------------------------------------------------

void Authorizer::CheckEscalation(const rbac::UserInfo& user, const ResourceInfo& r,
                                 const std::string& ns, const Json& obj) {
  if (r.group != kRbacGroup || Has(user.groups, rbac::kSystemMasters)) return;
  const std::string name = obj.is_object() ? Str(obj.value("metadata", Json::object()), "name") : "";
  const std::string scope = r.namespaced ? ns : "";
  std::shared_ptr<const rbac::Policy> pol = policy();
  auto may = [&](const char* verb, const std::string& resource, const std::string& res_name) {
    rbac::Attributes a;
    a.user = user;
    a.verb = verb;
    a.resource_request = true;
    a.api_group = kRbacGroup;
    a.api_version = "v1";
    a.resource = resource;
    a.ns = scope;
    a.name = res_name;
    return rbac::Authorize(*pol, a).allowed;
  };
  auto forbidden = [&](const std::string& why) {
    Error e = Error::Forbidden(r.plural + "." + kRbacGroup + " " + GoQuote(name) +
                               " is forbidden: " + why);
    e.WithDetails(r.plural, name, kRbacGroup);
    return e;
  };
  std::vector<std::string> errors;
  std::vector<rbac::PolicyRule> owner = rbac::RulesFor(*pol, user, scope, errors);
  std::vector<rbac::PolicyRule> rules;
  if (r.plural == "roles" || r.plural == "clusterroles") {
    if (may("escalate", r.plural, name)) return;
    auto it = obj.find("rules");
    if (it != obj.end() && it->is_array()) {
      for (const Json& rule : *it) {
        if (rule.is_object()) rules.push_back(rbac::PolicyRule::FromJson(rule));
      }
    }
    // An aggregationRule can gather anything: it needs "*" on everything.
    auto agg = obj.find("aggregationRule");
    if (agg != obj.end() && agg->is_object() &&
        !rbac::Uncovered(owner, {rbac::PolicyRule{{"*"}, {"*"}, {"*"}, {}, {}},
                                 rbac::PolicyRule{{"*"}, {}, {}, {}, {"*"}}})
             .empty()) {
      throw forbidden("must have cluster-admin privileges to use the aggregationRule");
    }
  } else {
    rbac::Binding b = rbac::Binding::FromJson(obj);
    const std::string res = b.role_ref.kind == "Role" ? "roles" : "clusterroles";
    if (may("bind", res, b.role_ref.name)) return;
    const std::vector<rbac::PolicyRule>* bound =
        pol->RoleRules(b.role_ref.kind, scope, b.role_ref.name);
    if (bound == nullptr) {
      Error e = Error::NotFound(res + "." + kRbacGroup + " " + GoQuote(b.role_ref.name) +
                                " not found");
      e.WithDetails(res, b.role_ref.name, kRbacGroup);
      throw e;
    }
    rules = *bound;
  }
  std::vector<rbac::PolicyRule> missing = rbac::Uncovered(owner, rules);
  if (missing.empty()) return;
  std::vector<std::string> lines;
  for (const auto& m : missing) lines.push_back(rbac::CompactString(m));
  std::sort(lines.begin(), lines.end());
  lines.erase(std::unique(lines.begin(), lines.end()), lines.end());
  std::vector<std::string> groups;
  for (const auto& g : user.groups) groups.push_back(GoQuote(g));
  std::string msg = "user " + GoQuote(user.name) + " (groups=[" + Join(groups, " ") +
                    "]) is attempting to grant RBAC permissions not currently held:\n" +
                    Join(lines, "\n");
  if (!errors.empty()) msg += "; resolution errors: [" + Join(errors, " ") + "]";
  throw forbidden(msg);
}

// ---- reviews -----------------------------------------------------------------

Json Authorizer::Review(const ResourceInfo& r, const std::string& ns, const Json& body,
                        const rbac::UserInfo& requester) {
  const std::string& kind = r.kind;
  Json out = body;
  out["apiVersion"] = "authorization.k8s.io/v1";
  out["kind"] = kind;
  if (!out.contains("metadata") || !out["metadata"].is_object()) {
    out["metadata"] = Json::object();
  }
  out["metadata"]["creationTimestamp"] = nullptr;
  Json spec = body.value("spec", Json::object());
  if (!spec.is_object()) spec = Json::object();

  if (kind == "SelfSubjectRulesReview") {
    std::string rns = Str(spec, "namespace");
    Json res_rules = Json::array(), url_rules = Json::array();
    if (Has(requester.groups, rbac::kSystemMasters)) {
      // kube-apiserver's privileged-group authorizer reports "everything".
      res_rules.push_back({{"verbs", {"*"}}, {"apiGroups", {"*"}}, {"resources", {"*"}}});
      url_rules.push_back({{"verbs", {"*"}}, {"nonResourceURLs", {"*"}}});
    }
    std::vector<std::string> errors;
    for (const auto& rule : rbac::RulesFor(*policy(), requester, rns, errors)) {
      if (!rule.non_resource_urls.empty()) {
        url_rules.push_back({{"verbs", rule.verbs}, {"nonResourceURLs", rule.non_resource_urls}});
      } else {
        Json rr = {{"verbs", rule.verbs}, {"apiGroups", rule.api_groups},
                   {"resources", rule.resources}};
        if (!rule.resource_names.empty()) rr["resourceNames"] = rule.resource_names;
        res_rules.push_back(rr);
      }
    }
    Json status = {{"resourceRules", res_rules},
                   {"nonResourceRules", url_rules},
                   {"incomplete", !errors.empty()}};
    if (!errors.empty()) {
      status["evaluationError"] =
          errors.size() == 1 ? errors[0] : "[" + Join(errors, ", ") + "]";
    }
    out["status"] = status;
    return out;
  }

  rbac::UserInfo subject = requester;
  if (kind == "SubjectAccessReview" || kind == "LocalSubjectAccessReview") {
    subject.name = Str(spec, "user");
    subject.groups.clear();
    if (spec.contains("groups") && spec["groups"].is_array()) {
      for (const auto& g : spec["groups"]) {
        if (g.is_string()) subject.groups.push_back(g.get<std::string>());
      }
    }
    if (subject.name.empty() && subject.groups.empty()) {
      InvalidReview(kind, "spec.user",
                    "Invalid value: \"\": at least one of user or group must be specified");
    }
  }
  rbac::Attributes a = SpecAttributes(kind, spec, subject);
  if (kind == "LocalSubjectAccessReview") {
    if (!a.resource_request) {
      InvalidReview(kind, "spec.nonResourceAttributes",
                    "Invalid value: authorization.NonResourceAttributes{Path:" + GoQuote(a.path) +
                        ", Verb:" + GoQuote(a.verb) + "}: disallowed on this kind of request");
    }
    if (a.ns != ns) {
      InvalidReview(kind, "spec.resourceAttributes.namespace",
                    "Invalid value: " + GoQuote(a.ns) + ": must match metadata.namespace");
    }
  }
  rbac::Decision d = Authorize(a);
  Json status = {{"allowed", d.allowed}};
  if (!d.reason.empty()) status["reason"] = d.reason;
  out["status"] = status;
  return out;
}

}  // namespace kin::apiserver
