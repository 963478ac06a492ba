#include "apiserver/authentication.h"

#include <time.h>

#include <algorithm>
#include <chrono>

#include "apiserver/registry.h"
#include "base/error.h"
#include "base/log.h"

namespace kin::apiserver {

namespace {

constexpr char kGroupVersion[] = "authentication.k8s.io/v1";
// Things deleted longer ago than this invalidate their tokens (go-jose's
// leeway, which kube-apiserver's validator uses here too).
constexpr int64_t kLeeway = 60;
constexpr int64_t kDefaultExpirationSeconds = 3600;
constexpr int64_t kMinExpirationSeconds = 600;
constexpr int64_t kMaxExpirationSeconds = int64_t{1} << 32;

std::string Rfc3339(int64_t unix_seconds) {
  time_t t = static_cast<time_t>(unix_seconds);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Unix seconds of an RFC 3339 time ("2024-01-02T03:04:05Z", fractions and
// offsets ignored: kin writes UTC); 0 when it is not one.
int64_t ParseRfc3339(const std::string& s) {
  struct tm tm {};
  const char* end = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (end == nullptr) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

std::string Str(const Json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

const Json& Obj(const Json& j, const char* key) {
  static const Json empty = Json::object();
  if (!j.is_object()) return empty;
  auto it = j.find(key);
  return it != j.end() && it->is_object() ? *it : empty;
}

std::string Uid(const Json& obj) { return Str(Obj(obj, "metadata"), "uid"); }

// Deleted (deletionTimestamp) longer than the leeway ago.
bool DeletedBefore(const Json& obj, int64_t now) {
  std::string ts = Str(Obj(obj, "metadata"), "deletionTimestamp");
  if (ts.empty()) return false;
  int64_t t = ParseRfc3339(ts);
  return t != 0 && t < now - kLeeway;
}

Error NotFound(const std::string& resource, const std::string& name) {
  Error e = Error::NotFound(resource + " \"" + name + "\" not found");
  e.WithDetails(resource, name);
  return e;
}

// kube-apiserver's field.Invalid on a TokenRequest.
Error InvalidTokenRequest(const std::string& name, const std::string& field, const Json& value,
                          const std::string& detail) {
  std::string shown = value.is_string() ? Json(value).dump() : value.dump();
  std::string message = "Invalid value: " + shown + ": " + detail;
  Error e = Error::Invalid("TokenRequest.authentication.k8s.io \"" + name + "\" is invalid: " +
                           field + ": " + message);
  e.WithDetails("TokenRequest", name, "authentication.k8s.io");
  e.WithCause({"FieldValueInvalid", message, field});
  return e;
}

std::vector<std::string> Strings(const Json& j, const std::string& field) {
  std::vector<std::string> out;
  if (j.is_null()) return out;
  if (!j.is_array()) throw Error::BadRequest(field + ": must be a list of strings");
  for (const auto& v : j) {
    if (!v.is_string()) throw Error::BadRequest(field + ": must be a list of strings");
    out.push_back(v.get<std::string>());
  }
  return out;
}

std::vector<std::string> Intersect(const std::vector<std::string>& a,
                                   const std::vector<std::string>& b) {
  std::vector<std::string> out;
  for (const auto& x : a) {
    if (std::find(b.begin(), b.end(), x) != b.end()) out.push_back(x);
  }
  return out;
}

}  // namespace

Json UserInfo::ToJson() const {
  Json j = Json::object();
  if (!username.empty()) j["username"] = username;
  if (!uid.empty()) j["uid"] = uid;
  if (!groups.empty()) j["groups"] = groups;
  if (!extra.empty()) {
    Json e = Json::object();
    for (const auto& [k, v] : extra) e[k] = v;
    j["extra"] = e;
  }
  return j;
}

Authentication::Authentication(const ServiceAccountTokens& tokens, Lookup lookup,
                               AuthenticationOptions opts, Clock clock)
    : tokens_(tokens), lookup_(std::move(lookup)), opts_(std::move(opts)), clock_(std::move(clock)) {}

int64_t Authentication::Now() const {
  if (clock_) return clock_();
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TokenAuthResult Authentication::AuthenticateToken(std::string_view token,
                                                  const std::vector<std::string>& audiences) const {
  TokenAuthResult r;
  std::optional<ServiceAccountClaims> c = tokens_.Verify(token);
  // Not ours (another key, another issuer, not a JWT): no authenticator
  // claims it, which kube-apiserver reports so.
  if (!c || c->issuer != opts_.issuer) {
    r.error = "invalid bearer token";
    return r;
  }
  const std::vector<std::string>& want = audiences.empty() ? opts_.api_audiences : audiences;
  const int64_t now = Now();
  auto fail = [&](const std::string& why) {
    r.error = "[invalid bearer token, " + why + "]";
    return r;
  };
  if (std::string why = CheckClaims(*c, want, now); !why.empty()) return fail(why);

  std::optional<Json> sa = lookup_("serviceaccounts", c->ns, c->service_account);
  if (!sa) return fail("serviceaccounts \"" + c->service_account + "\" not found");
  if (DeletedBefore(*sa, now)) {
    return fail("service account " + c->ns + "/" + c->service_account + " has been deleted");
  }
  // A pod's token minted before its service account existed names no uid.
  if (!c->service_account_uid.empty() && Uid(*sa) != c->service_account_uid) {
    return fail("service account UID (" + Uid(*sa) + ") does not match claim (" +
                c->service_account_uid + ")");
  }
  if (!c->secret.empty()) {
    std::optional<Json> secret = lookup_("secrets", c->ns, c->secret.name);
    if (!secret || DeletedBefore(*secret, now)) {
      return fail("service account token has been invalidated");
    }
    if (Uid(*secret) != c->secret.uid) {
      return fail("secret UID (" + Uid(*secret) +
                  ") does not match service account secret ref claim (" + c->secret.uid + ")");
    }
  }
  if (!c->pod.empty()) {
    std::optional<Json> pod = lookup_("pods", c->ns, c->pod.name);
    if (!pod || DeletedBefore(*pod, now)) return fail("service account token has been invalidated");
    if (Uid(*pod) != c->pod.uid) {
      return fail("pod UID (" + Uid(*pod) + ") does not match service account pod ref claim (" +
                  c->pod.uid + ")");
    }
  }
  // A node is checked only when the token is bound to it alone; a pod's
  // token names its node for information.
  if (!c->node.empty() && c->pod.empty() && c->secret.empty()) {
    std::optional<Json> node = lookup_("nodes", "", c->node.name);
    if (!node || DeletedBefore(*node, now)) {
      return fail("service account token has been invalidated");
    }
    if (Uid(*node) != c->node.uid) {
      return fail("node UID (" + Uid(*node) + ") does not match service account node ref claim (" +
                  c->node.uid + ")");
    }
  }

  r.authenticated = true;
  // An extended token past its requested expiry: still accepted, noted as
  // kube-apiserver's audit annotation authentication.k8s.io/stale-token is.
  if (c->warn_after != 0 && now > c->warn_after) {
    log::Debug("stale service account token: subject: {}, seconds after warning threshold: {}",
               c->UserName(), now - c->warn_after);
  }
  r.audiences = Intersect(c->audiences, want);
  r.user.username = c->UserName();
  r.user.uid = Uid(*sa);
  r.user.groups = c->Groups();
  if (!c->id.empty()) r.user.extra["authentication.kubernetes.io/credential-id"] = {"JTI=" + c->id};
  if (!c->pod.empty()) {
    r.user.extra["authentication.kubernetes.io/pod-name"] = {c->pod.name};
    r.user.extra["authentication.kubernetes.io/pod-uid"] = {c->pod.uid};
  }
  if (!c->node.empty()) {
    r.user.extra["authentication.kubernetes.io/node-name"] = {c->node.name};
    if (!c->node.uid.empty()) r.user.extra["authentication.kubernetes.io/node-uid"] = {c->node.uid};
  }
  return r;
}

Json Authentication::CreateToken(const std::string& ns, const std::string& name,
                                 const Json& request) const {
  if (!request.is_object()) throw Error::BadRequest("the request body must be a TokenRequest");
  const Json& meta = Obj(request, "metadata");
  if (!Str(meta, "name").empty() && Str(meta, "name") != name) {
    throw InvalidTokenRequest(name, "metadata.name", meta["name"],
                              "must match the service account name if specified");
  }
  if (!Str(meta, "namespace").empty() && Str(meta, "namespace") != ns) {
    throw InvalidTokenRequest(name, "metadata.namespace", meta["namespace"],
                              "must match the service account namespace if specified");
  }
  std::optional<Json> sa = lookup_("serviceaccounts", ns, name);
  if (!sa) throw NotFound("serviceaccounts", name);

  const Json& spec = Obj(request, "spec");
  std::vector<std::string> audiences =
      Strings(spec.value("audiences", Json()), "spec.audiences");
  if (audiences.empty()) audiences = opts_.api_audiences;
  int64_t expiration = kDefaultExpirationSeconds;
  if (auto it = spec.find("expirationSeconds"); it != spec.end() && !it->is_null()) {
    if (!it->is_number_integer()) {
      throw Error::BadRequest("spec.expirationSeconds: must be an integer, got " + it->dump());
    }
    expiration = it->get<int64_t>();
  }
  // Static validation, as kube-apiserver's: the name is "" in its message.
  if (expiration < kMinExpirationSeconds) {
    throw InvalidTokenRequest("", "spec.expirationSeconds", expiration,
                              "may not specify a duration less than 10 minutes");
  }
  if (expiration > kMaxExpirationSeconds) {
    throw InvalidTokenRequest("", "spec.expirationSeconds", expiration,
                              "may not specify a duration larger than 2^32 seconds");
  }

  ServiceAccountClaims c;
  c.ns = ns;
  c.service_account = name;
  c.service_account_uid = Uid(*sa);
  Json bound = Json();
  if (auto it = spec.find("boundObjectRef"); it != spec.end() && !it->is_null()) {
    if (!it->is_object()) throw Error::BadRequest("spec.boundObjectRef: must be an object");
    bound = *it;
    std::string kind = Str(bound, "kind");
    std::string api_version = Str(bound, "apiVersion");
    std::string ref_name = Str(bound, "name");
    std::string ref_uid = Str(bound, "uid");
    size_t slash = api_version.find('/');
    std::string group = slash == std::string::npos ? "" : api_version.substr(0, slash);
    std::string version = slash == std::string::npos ? api_version : api_version.substr(slash + 1);
    std::string uid;
    if (group == "" && kind == "Pod") {
      std::optional<Json> pod = lookup_("pods", ns, ref_name);
      if (!pod) throw NotFound("pods", ref_name);
      if (Str(Obj(*pod, "spec"), "serviceAccountName") != name) {
        throw Error::BadRequest("cannot bind token for serviceaccount \"" + name +
                                "\" to pod running with different serviceaccount name.");
      }
      uid = Uid(*pod);
      c.pod = {ref_name, uid};
      // The pod's node, for information (ServiceAccountTokenPodNodeInfo).
      std::string node_name = Str(Obj(*pod, "spec"), "nodeName");
      if (!node_name.empty()) {
        std::optional<Json> node = lookup_("nodes", "", node_name);
        c.node = {node_name, node ? Uid(*node) : ""};
      }
    } else if (group == "" && kind == "Node") {
      std::optional<Json> node = lookup_("nodes", "", ref_name);
      if (!node) throw NotFound("nodes", ref_name);
      uid = Uid(*node);
      c.node = {ref_name, uid};
    } else if (group == "" && kind == "Secret") {
      std::optional<Json> secret = lookup_("secrets", ns, ref_name);
      if (!secret) throw NotFound("secrets", ref_name);
      uid = Uid(*secret);
      c.secret = {ref_name, uid};
    } else {
      // Go's schema.GroupVersionKind.String().
      throw Error::BadRequest("cannot bind token to object of type " + group + "/" + version +
                              ", Kind=" + kind);
    }
    if (!ref_uid.empty() && ref_uid != uid) {
      Error e = Error::Conflict("Operation cannot be fulfilled on " + kind + " \"" + ref_name +
                                "\": the UID in the bound object reference (" + ref_uid +
                                ") does not match the UID in record. The object might have been "
                                "deleted and then recreated");
      e.WithDetails(kind, ref_name);
      throw e;
    }
  }

  const int64_t now = Now();
  c.issuer = opts_.issuer;
  c.audiences = audiences;
  c.issued_at = now;
  c.not_before = now;
  c.expires = now + expiration;
  c.id = NewUid();
  // The safe transition of projected tokens (token.go): warn, rather than
  // fail, after the requested expiry; fail after a year. isKubeAudiences:
  // every audience asked for is one of the API server's.
  const bool for_api = std::all_of(audiences.begin(), audiences.end(), [&](const std::string& a) {
    return std::find(opts_.api_audiences.begin(), opts_.api_audiences.end(), a) !=
           opts_.api_audiences.end();
  });
  if (opts_.extend_token_expiration && !c.pod.empty() &&
      expiration == kWarnOnlyBoundTokenExpirationSeconds && for_api) {
    c.warn_after = now + expiration;
    c.expires = now + kExpirationExtensionSeconds;
  }

  Json out_spec = {{"audiences", audiences}, {"expirationSeconds", expiration}};
  if (!bound.is_null()) out_spec["boundObjectRef"] = bound;
  return {{"kind", "TokenRequest"},
          {"apiVersion", kGroupVersion},
          {"metadata", {{"name", name}, {"namespace", ns}, {"creationTimestamp", Rfc3339(now)}}},
          {"spec", out_spec},
          {"status",
           {{"token", tokens_.Mint(c)}, {"expirationTimestamp", Rfc3339(now + expiration)}}}};
}

Json Authentication::ReviewToken(const Json& review) const {
  if (!review.is_object()) throw Error::BadRequest("the request body must be a TokenReview");
  const Json& spec = Obj(review, "spec");
  std::string token = Str(spec, "token");
  if (token.empty()) throw Error::BadRequest("token is required for TokenReview in authentication");
  std::vector<std::string> audiences = Strings(spec.value("audiences", Json()), "spec.audiences");
  TokenAuthResult r = AuthenticateToken(token, audiences);
  Json status = Json::object();
  if (r.authenticated) {
    status["authenticated"] = true;
    status["user"] = r.user.ToJson();
    status["audiences"] = r.audiences;
  } else {
    status["user"] = Json::object();
    status["error"] = r.error;
  }
  Json meta = review.value("metadata", Json::object());
  if (!meta.is_object()) meta = Json::object();
  if (!meta.contains("creationTimestamp")) meta["creationTimestamp"] = nullptr;
  return {{"kind", "TokenReview"},
          {"apiVersion", kGroupVersion},
          {"metadata", meta},
          {"spec", spec},
          {"status", status}};
}

Json Authentication::ReviewSelf(const UserInfo& user, const Json& review) const {
  if (!review.is_object()) throw Error::BadRequest("the request body must be a SelfSubjectReview");
  return {{"kind", "SelfSubjectReview"},
          {"apiVersion", kGroupVersion},
          {"metadata", {{"creationTimestamp", Rfc3339(Now())}}},
          {"status", {{"userInfo", user.ToJson()}}}};
}

std::string Authentication::PodToken(const Json& pod) const {
  const Json& meta = Obj(pod, "metadata");
  const Json& spec = Obj(pod, "spec");
  ServiceAccountClaims c;
  c.issuer = opts_.issuer;
  c.audiences = opts_.api_audiences;
  c.ns = Str(meta, "namespace");
  if (c.ns.empty()) c.ns = "default";
  c.service_account = Str(spec, "serviceAccountName");
  if (c.service_account.empty()) c.service_account = Str(spec, "serviceAccount");
  if (c.service_account.empty()) c.service_account = "default";
  if (std::optional<Json> sa = lookup_("serviceaccounts", c.ns, c.service_account)) {
    c.service_account_uid = Uid(*sa);
  }
  c.pod = {Str(meta, "name"), Str(meta, "uid")};
  std::string node_name = Str(spec, "nodeName");
  if (!node_name.empty()) {
    std::optional<Json> node = lookup_("nodes", "", node_name);
    c.node = {node_name, node ? Uid(*node) : ""};
  }
  // The same token for the same pod: issued when the pod was made.
  c.issued_at = ParseRfc3339(Str(meta, "creationTimestamp"));
  c.not_before = c.issued_at;
  return tokens_.Mint(c);
}

}  // namespace kin::apiserver
