#include "apiserver/rbac.h"

#include <algorithm>

#include "base/strings.h"

namespace kin::apiserver::rbac {

namespace {

std::vector<std::string> Strings(const Json& j, const char* key) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it == j.end() || !it->is_array()) return out;
  for (const auto& v : *it) {
    if (v.is_string()) out.push_back(v.get<std::string>());
  }
  return out;
}

std::string Str(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

const Json& Meta(const Json& obj) {
  static const Json empty = Json::object();
  auto it = obj.find("metadata");
  return it != obj.end() && it->is_object() ? *it : empty;
}

std::vector<PolicyRule> Rules(const Json& obj) {
  std::vector<PolicyRule> out;
  auto it = obj.find("rules");
  if (it == obj.end() || !it->is_array()) return out;
  for (const auto& r : *it) {
    if (r.is_object()) out.push_back(PolicyRule::FromJson(r));
  }
  return out;
}

bool Has(const std::vector<std::string>& list, const std::string& v) {
  return std::find(list.begin(), list.end(), v) != list.end();
}

bool VerbMatches(const PolicyRule& r, const std::string& verb) {
  for (const auto& v : r.verbs) {
    if (v == "*" || v == verb) return true;
  }
  return false;
}

bool ApiGroupMatches(const PolicyRule& r, const std::string& group) {
  for (const auto& g : r.api_groups) {
    if (g == "*" || g == group) return true;
  }
  return false;
}

bool ResourceMatches(const PolicyRule& r, const std::string& combined,
                     const std::string& subresource) {
  for (const auto& res : r.resources) {
    if (res == "*" || res == combined) return true;
    // "*/scale" matches the scale subresource of any resource.
    if (!subresource.empty() && res.size() == subresource.size() + 2 && res.rfind("*/", 0) == 0 &&
        res.compare(2, std::string::npos, subresource) == 0) {
      return true;
    }
  }
  return false;
}

bool ResourceNameMatches(const PolicyRule& r, const std::string& name) {
  if (r.resource_names.empty()) return true;
  return Has(r.resource_names, name);
}

bool NonResourceUrlMatches(const PolicyRule& r, const std::string& path) {
  for (const auto& u : r.non_resource_urls) {
    if (u == "*" || u == path) return true;
    if (!u.empty() && u.back() == '*' && path.compare(0, u.size() - 1, u, 0, u.size() - 1) == 0) {
      return true;
    }
  }
  return false;
}

bool AppliesTo(const UserInfo& user, const Subject& s, const std::string& binding_ns) {
  if (s.kind == "User") return user.name == s.name;
  if (s.kind == "Group") return Has(user.groups, s.name);
  if (s.kind == "ServiceAccount") {
    const std::string& ns = s.ns.empty() ? binding_ns : s.ns;
    if (ns.empty()) return false;
    // system:serviceaccount:<ns>:<name>, compared without building it.
    static constexpr std::string_view kPrefix = "system:serviceaccount:";
    const std::string& u = user.name;
    return u.size() == kPrefix.size() + ns.size() + 1 + s.name.size() &&
           u.compare(0, kPrefix.size(), kPrefix) == 0 &&
           u.compare(kPrefix.size(), ns.size(), ns) == 0 && u[kPrefix.size() + ns.size()] == ':' &&
           u.compare(kPrefix.size() + ns.size() + 1, std::string::npos, s.name) == 0;
  }
  return false;
}

std::string DescribeSubject(const Subject& s, const std::string& binding_ns) {
  if (s.kind == "ServiceAccount") {
    return s.kind + " " + GoQuote(s.name + "/" + (s.ns.empty() ? binding_ns : s.ns));
  }
  return s.kind + " " + GoQuote(s.name);
}

}  // namespace

PolicyRule PolicyRule::FromJson(const Json& j) {
  PolicyRule r;
  r.verbs = Strings(j, "verbs");
  r.api_groups = Strings(j, "apiGroups");
  r.resources = Strings(j, "resources");
  r.resource_names = Strings(j, "resourceNames");
  r.non_resource_urls = Strings(j, "nonResourceURLs");
  return r;
}

Json PolicyRule::ToJson() const {
  Json j = Json::object();
  j["verbs"] = verbs;
  if (!api_groups.empty()) j["apiGroups"] = api_groups;
  if (!resources.empty()) j["resources"] = resources;
  if (!resource_names.empty()) j["resourceNames"] = resource_names;
  if (!non_resource_urls.empty()) j["nonResourceURLs"] = non_resource_urls;
  return j;
}

Binding Binding::FromJson(const Json& j) {
  Binding b;
  const Json& m = Meta(j);
  b.name = Str(m, "name");
  b.ns = Str(m, "namespace");
  auto rr = j.find("roleRef");
  if (rr != j.end() && rr->is_object()) {
    b.role_ref = {Str(*rr, "apiGroup"), Str(*rr, "kind"), Str(*rr, "name")};
  }
  auto subs = j.find("subjects");
  if (subs != j.end() && subs->is_array()) {
    for (const auto& s : *subs) {
      if (!s.is_object()) continue;
      b.subjects.push_back(
          {Str(s, "kind"), Str(s, "apiGroup"), Str(s, "name"), Str(s, "namespace")});
    }
  }
  return b;
}

void Policy::AddClusterRole(const Json& obj) { cluster_roles_[Str(Meta(obj), "name")] = Rules(obj); }

void Policy::AddRole(const Json& obj) {
  const Json& m = Meta(obj);
  roles_[Str(m, "namespace") + "/" + Str(m, "name")] = Rules(obj);
}

void Policy::AddClusterRoleBinding(const Json& obj) {
  cluster_role_bindings_.push_back(Binding::FromJson(obj));
}

void Policy::AddRoleBinding(const Json& obj) {
  Binding b = Binding::FromJson(obj);
  std::string ns = b.ns;
  role_bindings_[ns].push_back(std::move(b));
  ++role_binding_count_;
}

void Policy::VisitRules(const UserInfo& user, const std::string& ns,
                        std::vector<std::string>& errors, const Visitor& visit) const {
  static const std::vector<PolicyRule> kNone;
  // A binding's rules: its role's, or an error naming the missing role.
  auto rules_of = [&](const Binding& b) -> const std::vector<PolicyRule>& {
    if (b.role_ref.kind == "ClusterRole") {
      auto it = cluster_roles_.find(b.role_ref.name);
      if (it != cluster_roles_.end()) return it->second;
      errors.push_back("clusterrole.rbac.authorization.k8s.io " + GoQuote(b.role_ref.name) +
                       " not found");
    } else if (b.role_ref.kind == "Role" && !b.ns.empty()) {
      auto it = roles_.find(b.ns + "/" + b.role_ref.name);
      if (it != roles_.end()) return it->second;
      errors.push_back("role.rbac.authorization.k8s.io " + GoQuote(b.role_ref.name) +
                       " not found");
    } else {
      errors.push_back("unsupported role reference kind: " + GoQuote(b.role_ref.kind));
    }
    return kNone;
  };
  auto visit_binding = [&](const Binding& b) {
    for (const Subject& s : b.subjects) {
      if (!AppliesTo(user, s, b.ns)) continue;
      for (const PolicyRule& r : rules_of(b)) {
        if (!visit(b, s, r)) return false;
      }
      return true;  // one matching subject is enough (upstream: appliesTo)
    }
    return true;
  };
  for (const Binding& b : cluster_role_bindings_) {
    if (!visit_binding(b)) return;
  }
  if (ns.empty()) return;
  auto it = role_bindings_.find(ns);
  if (it == role_bindings_.end()) return;
  for (const Binding& b : it->second) {
    if (!visit_binding(b)) return;
  }
}

const std::vector<PolicyRule>* Policy::RoleRules(const std::string& kind, const std::string& ns,
                                                 const std::string& name) const {
  if (kind == "ClusterRole") {
    auto it = cluster_roles_.find(name);
    return it == cluster_roles_.end() ? nullptr : &it->second;
  }
  if (kind == "Role") {
    auto it = roles_.find(ns + "/" + name);
    return it == roles_.end() ? nullptr : &it->second;
  }
  return nullptr;
}

namespace {

bool HasAll(const std::vector<std::string>& set, const std::vector<std::string>& want) {
  for (const auto& w : want) {
    if (!Has(set, w)) return false;
  }
  return true;
}

bool ResourceCoversAll(const std::vector<std::string>& set, const std::vector<std::string>& want) {
  if (Has(set, "*") || HasAll(set, want)) return true;
  for (const auto& path : want) {
    if (Has(set, path)) continue;
    size_t slash = path.find('/');
    if (slash == std::string::npos) return false;
    if (!Has(set, "*/" + path.substr(slash + 1))) return false;
  }
  return true;
}

bool UrlsCoverAll(const std::vector<std::string>& set, const std::vector<std::string>& want) {
  for (const auto& w : want) {
    bool covered = false;
    for (const auto& o : set) {
      if (o == w || (!o.empty() && o.back() == '*' && w.compare(0, o.size() - 1, o, 0, o.size() - 1) == 0)) {
        covered = true;
        break;
      }
    }
    if (!covered) return false;
  }
  return true;
}

// validation.ruleCovers.
bool RuleCovers(const PolicyRule& owner, const PolicyRule& sub) {
  bool verbs = Has(owner.verbs, "*") || HasAll(owner.verbs, sub.verbs);
  bool groups = Has(owner.api_groups, "*") || HasAll(owner.api_groups, sub.api_groups);
  bool resources = ResourceCoversAll(owner.resources, sub.resources);
  bool urls = UrlsCoverAll(owner.non_resource_urls, sub.non_resource_urls);
  bool names = sub.resource_names.empty()
                   ? owner.resource_names.empty()
                   : owner.resource_names.empty() || HasAll(owner.resource_names, sub.resource_names);
  return verbs && groups && resources && names && urls;
}

// validation.BreakdownRule: one rule per group, resource (and name), verb;
// or per URL and verb.
std::vector<PolicyRule> Breakdown(const PolicyRule& r) {
  std::vector<PolicyRule> out;
  for (const auto& g : r.api_groups) {
    for (const auto& res : r.resources) {
      for (const auto& v : r.verbs) {
        if (r.resource_names.empty()) {
          out.push_back({{v}, {g}, {res}, {}, {}});
        } else {
          for (const auto& n : r.resource_names) out.push_back({{v}, {g}, {res}, {n}, {}});
        }
      }
    }
  }
  for (const auto& u : r.non_resource_urls) {
    for (const auto& v : r.verbs) out.push_back({{v}, {}, {}, {}, {u}});
  }
  return out;
}

std::string QuoteList(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? " " : "") + GoQuote(v[i]);
  return out + "]";
}

}  // namespace

std::vector<PolicyRule> Uncovered(const std::vector<PolicyRule>& owner,
                                  const std::vector<PolicyRule>& servant) {
  std::vector<PolicyRule> missing;
  for (const PolicyRule& r : servant) {
    for (PolicyRule& piece : Breakdown(r)) {
      bool covered = std::any_of(owner.begin(), owner.end(),
                                 [&](const PolicyRule& o) { return RuleCovers(o, piece); });
      if (covered) continue;
      // CompactRules: pieces that differ only in verbs become one rule.
      auto same = std::find_if(missing.begin(), missing.end(), [&](const PolicyRule& m) {
        return m.api_groups == piece.api_groups && m.resources == piece.resources &&
               m.resource_names == piece.resource_names &&
               m.non_resource_urls == piece.non_resource_urls;
      });
      if (same == missing.end()) {
        missing.push_back(std::move(piece));
      } else if (!Has(same->verbs, piece.verbs[0])) {
        same->verbs.push_back(piece.verbs[0]);
      }
    }
  }
  return missing;
}

std::string CompactString(const PolicyRule& r) {
  std::vector<std::string> parts;
  if (!r.api_groups.empty()) parts.push_back("APIGroups:" + QuoteList(r.api_groups));
  if (!r.resources.empty()) parts.push_back("Resources:" + QuoteList(r.resources));
  if (!r.non_resource_urls.empty()) parts.push_back("NonResourceURLs:" + QuoteList(r.non_resource_urls));
  if (!r.resource_names.empty()) parts.push_back("ResourceNames:" + QuoteList(r.resource_names));
  if (!r.verbs.empty()) parts.push_back("Verbs:" + QuoteList(r.verbs));
  return "{" + Join(parts, ", ") + "}";
}

std::string DescribeGrant(const Binding& b, const Subject& s) {
  if (b.ns.empty()) {
    return "ClusterRoleBinding " + GoQuote(b.name) + " of " + b.role_ref.kind + " " +
           GoQuote(b.role_ref.name) + " to " + DescribeSubject(s, "");
  }
  return "RoleBinding " + GoQuote(b.name + "/" + b.ns) + " of " + b.role_ref.kind + " " +
         GoQuote(b.role_ref.name) + " to " + DescribeSubject(s, b.ns);
}

bool RuleAllows(const Attributes& a, const PolicyRule& r) {
  if (a.resource_request) {
    std::string combined = a.subresource.empty() ? a.resource : a.resource + "/" + a.subresource;
    return VerbMatches(r, a.verb) && ApiGroupMatches(r, a.api_group) &&
           ResourceMatches(r, combined, a.subresource) && ResourceNameMatches(r, a.name);
  }
  return VerbMatches(r, a.verb) && NonResourceUrlMatches(r, a.path);
}

Decision Authorize(const Policy& policy, const Attributes& a) {
  Decision d;
  if (Has(a.user.groups, kSystemMasters)) {
    d.allowed = true;
    return d;
  }
  std::vector<std::string> errors;
  policy.VisitRules(a.user, a.ns, errors, [&](const Binding& b, const Subject& s,
                                              const PolicyRule& r) {
    if (!RuleAllows(a, r)) return true;
    d.allowed = true;
    d.reason = "RBAC: allowed by " + DescribeGrant(b, s);
    return false;
  });
  if (!d.allowed && !errors.empty()) {
    // utilerrors.NewAggregate: one error alone, else "[a, b]".
    d.reason = "RBAC: " + (errors.size() == 1 ? errors[0] : "[" + Join(errors, ", ") + "]");
  }
  return d;
}

std::vector<PolicyRule> RulesFor(const Policy& policy, const UserInfo& user, const std::string& ns,
                                 std::vector<std::string>& errors) {
  std::vector<PolicyRule> out;
  policy.VisitRules(user, ns, errors, [&](const Binding&, const Subject&, const PolicyRule& r) {
    out.push_back(r);
    return true;
  });
  return out;
}

Attributes RequestAttributes(const UserInfo& user, const std::string& method,
                             const std::string& path, bool watch) {
  Attributes a;
  a.user = user;
  a.path = path;
  a.verb = method;
  std::transform(a.verb.begin(), a.verb.end(), a.verb.begin(), ::tolower);
  std::vector<std::string> parts = SplitPath(path);
  // /api/<version>/<...> and /apis/<group>/<version>/<...> with at least a
  // resource; shorter paths (discovery) are non-resource requests.
  size_t i = 0;
  if (parts.size() >= 3 && parts[0] == "api") {
    a.api_version = parts[1];
    i = 2;
  } else if (parts.size() >= 4 && parts[0] == "apis") {
    a.api_group = parts[1];
    a.api_version = parts[2];
    i = 3;
  } else {
    return a;
  }
  a.resource_request = true;
  static const std::vector<std::string> kSpecialVerbs = {"proxy", "watch"};
  if (Has(kSpecialVerbs, parts[i])) {
    a.verb = parts[i];
    ++i;
    if (i >= parts.size()) {
      a.resource_request = false;
      a.api_group.clear();
      a.api_version.clear();
      a.verb = method;
      std::transform(a.verb.begin(), a.verb.end(), a.verb.begin(), ::tolower);
      return a;
    }
  } else if (method == "POST") {
    a.verb = "create";
  } else if (method == "GET" || method == "HEAD") {
    a.verb = "get";
  } else if (method == "PUT") {
    a.verb = "update";
  } else if (method == "PATCH") {
    a.verb = "patch";
  } else if (method == "DELETE") {
    a.verb = "delete";
  }
  std::vector<std::string> rest(parts.begin() + i, parts.end());
  if (rest[0] == "namespaces") {
    if (rest.size() > 1) {
      a.ns = rest[1];
      // /namespaces/<ns>/<resource>/...; but /namespaces/<ns>/status and
      // /finalize are subresources of the namespace itself.
      if (rest.size() > 2 && rest[2] != "status" && rest[2] != "finalize") {
        rest.erase(rest.begin(), rest.begin() + 2);
      }
    }
  }
  a.resource = rest[0];
  if (rest.size() > 1) a.name = rest[1];
  if (rest.size() > 2) a.subresource = rest[2];
  if (a.resource == "namespaces" && rest.size() == 1) a.ns.clear();
  // Without a name, get is list (or watch) and delete is deletecollection.
  if (a.name.empty()) {
    if (a.verb == "get") a.verb = watch ? "watch" : "list";
    if (a.verb == "delete") a.verb = "deletecollection";
  } else if (a.verb == "get" && watch) {
    a.verb = "watch";
  }
  return a;
}

Error ForbiddenError(const Attributes& a, const std::string& reason) {
  std::string msg;
  const std::string user = GoQuote(a.user.name);
  if (!a.resource_request) {
    msg = "User " + user + " cannot " + a.verb + " path " + GoQuote(a.path);
  } else {
    std::string res = a.subresource.empty() ? a.resource : a.resource + "/" + a.subresource;
    msg = "User " + user + " cannot " + a.verb + " resource " + GoQuote(res) + " in API group " +
          GoQuote(a.api_group) +
          (a.ns.empty() ? " at the cluster scope" : " in the namespace " + GoQuote(a.ns));
  }
  if (!reason.empty()) msg += ": " + reason;
  // errors.NewForbidden(GroupResource, name, err).
  std::string qualified;
  if (a.resource_request && !a.resource.empty()) {
    qualified = a.api_group.empty() ? a.resource : a.resource + "." + a.api_group;
  }
  std::string full;
  if (qualified.empty()) {
    full = "forbidden: " + msg;
  } else if (a.name.empty()) {
    full = qualified + " is forbidden: " + msg;
  } else {
    full = qualified + " " + GoQuote(a.name) + " is forbidden: " + msg;
  }
  Error e = Error::Forbidden(full);
  e.WithDetails(a.resource_request ? a.resource : "", a.resource_request ? a.name : "",
                a.resource_request ? a.api_group : "");
  return e;
}

}  // namespace kin::apiserver::rbac
