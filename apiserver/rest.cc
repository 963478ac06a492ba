#include "apiserver/rest.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include <strings.h>

#include "apiserver/admission_webhook.h"
#include "apiserver/crd.h"
#include "apiserver/eviction.h"
#include "apiserver/openapi.h"
#include "apiserver/pod_streams.h"
#include "apiserver/protobuf.h"
#include "apiserver/table.h"
#include "base/error.h"
#include "base/strings.h"
#include "base/log.h"
#include "base/version.h"

namespace kin::apiserver {

namespace {

const double kBounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                          0.1,    0.25,  0.5,    1,     2.5,  5};

void SetJson(http::Response& resp, int status, std::string body) {
  resp.status = status;
  resp.headers.emplace("Content-Type", "application/json");
  resp.headers.emplace("Cache-Control", "no-cache, private");
  resp.body = std::move(body);
}

void SetTable(http::Response& resp, const Json& table) {
  resp.status = 200;
  resp.headers.emplace("Content-Type", std::string(kTableContentType));
  resp.headers.emplace("Cache-Control", "no-cache, private");
  resp.body = table.dump();
}

void SetError(http::Response& resp, const Error& e) {
  resp = http::Response();
  // Ended by a newline, as Go's json.Encoder ends kube-apiserver's bodies.
  Json status = StatusFor(e);
  SetJson(resp, status.value("code", e.http_status()), DumpStatus(status) + "\n");
}

// Bodies nested deeper than this are refused before any parser sees them:
// nlohmann::json (and yaml-cpp) recurse per level, and 100,000 levels of
// '[' overflow a connection thread's stack. 10,000 is Go's encoding/json
// limit, and so kube-apiserver's.
constexpr size_t kMaxBodyNesting = 10000;

// An upper bound of the body's nesting depth without parsing it: JSON's '['
// and '{' outside strings; for YAML also block nesting, at most a line's
// indentation plus its run of "- " (compact sequences).
size_t BodyNesting(std::string_view body, bool yaml) {
  size_t depth = 0, deepest = 0;
  bool in_string = false, line_start = true;
  size_t indent = 0;
  for (size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (yaml && line_start) {
      if (c == ' ' || c == '\t' || (c == '-' && i + 1 < body.size() && body[i + 1] == ' ')) {
        deepest = std::max(deepest, depth + ++indent);
        continue;
      }
      line_start = false;
    }
    if (c == '\n') {
      line_start = true;
      indent = 0;
    } else if (c == '"' && !yaml) {
      in_string = true;  // YAML's quoting rules differ: there, every bracket counts
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

void CheckBodyNesting(const http::Request& req) {
  std::string ct = req.Header("Content-Type");
  std::string media = ct.substr(0, ct.find(';'));
  if (media == "application/vnd.kubernetes.protobuf") return;
  bool yaml = media.find("yaml") != std::string::npos;
  if (BodyNesting(req.body, yaml) > kMaxBodyNesting) {
    throw Error::BadRequest("the request body is nested deeper than the limit of " +
                            std::to_string(kMaxBodyNesting) + " levels");
  }
}

Error NoSuchResource() {
  return Error::NotFound("the server could not find the requested resource");
}

// As Go's strconv.ParseBool, which Kubernetes uses (the Python client sends
// "watch=True").
bool QueryBool(const http::Request& req, const std::string& key) {
  std::string v = req.Query(key);
  return v == "1" || v == "t" || v == "T" || v == "true" || v == "TRUE" || v == "True";
}

ListOptions ListOptionsFrom(const http::Request& req) {
  ListOptions o;
  o.label_selector = req.Query("labelSelector");
  o.field_selector = req.Query("fieldSelector");
  o.continue_token = req.Query("continue");
  o.resource_version = req.Query("resourceVersion");
  o.allow_bookmarks = QueryBool(req, "allowWatchBookmarks");
  std::string limit = req.Query("limit");
  if (!limit.empty()) {
    char* end = nullptr;
    long long v = std::strtoll(limit.c_str(), &end, 10);
    if (*end != '\0') throw Error::BadRequest("invalid limit \"" + limit + "\": not an integer");
    o.limit = v < 0 ? 0 : v;
  }
  std::string timeout = req.Query("timeoutSeconds");
  if (!timeout.empty()) o.timeout_seconds = std::atoi(timeout.c_str());
  return o;
}

WriteOptions WriteOptionsFrom(const http::Request& req) {
  WriteOptions o;
  o.field_manager = req.Query("fieldManager");
  if (o.field_manager.empty()) {
    // Kubernetes names an unnamed manager after the client's user agent.
    std::string ua = req.Header("User-Agent");
    o.field_manager = ua.substr(0, ua.find('/'));
    if (o.field_manager.empty()) o.field_manager = "unknown";
  }
  o.force = QueryBool(req, "force");
  o.field_validation = req.Query("fieldValidation");
  std::string dry = req.Query("dryRun");
  if (!dry.empty() && dry != "All") {
    throw Error::BadRequest("Invalid dry run value \"" + dry + "\": supported value is \"All\"");
  }
  o.dry_run = dry == "All";
  if (!o.field_validation.empty() && o.field_validation != "Strict" &&
      o.field_validation != "Warn" && o.field_validation != "Ignore") {
    throw Error::BadRequest(
        "fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\", got \"" +
        o.field_validation + "\"");
  }
  return o;
}

// The request body as a JSON object: JSON, YAML or Kubernetes protobuf.
Json DecodeBody(const http::Request& req) {
  std::string ct = req.Header("Content-Type", "application/json");
  std::string media = ct.substr(0, ct.find(';'));
  if (req.body.empty()) throw Error::BadRequest("the request body is empty");
  if (media == "application/vnd.kubernetes.protobuf") return DecodeKubeProtobuf(req.body);
  if (media == "application/yaml") return ParseYaml(req.body);
  if (media != "application/json" && media != "" && media != "*/*") {
    throw Error::UnsupportedMediaType(
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json, application/yaml, application/vnd.kubernetes.protobuf");
  }
  Json j;
  try {
    j = Json::parse(req.body);
  } catch (const Json::exception& e) {  // parse errors, and numbers JSON cannot hold
    throw Error::BadRequest(std::string("error decoding request body as JSON: ") + e.what());
  }
  if (!j.is_object()) throw Error::BadRequest("the request body must be a JSON object");
  return j;
}

DeleteOptions DeleteOptionsFrom(const http::Request& req) {
  DeleteOptions o;
  Json body = Json::object();
  if (!req.body.empty()) {
    body = Json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      throw Error::BadRequest("error decoding DeleteOptions: the body is not a JSON object");
    }
  }
  if (body.contains("gracePeriodSeconds") && body["gracePeriodSeconds"].is_number_integer()) {
    o.grace_period_seconds = body["gracePeriodSeconds"].get<int64_t>();
  }
  std::string q = req.Query("gracePeriodSeconds");
  if (!q.empty()) o.grace_period_seconds = std::atoll(q.c_str());
  o.propagation_policy = body.value("propagationPolicy", req.Query("propagationPolicy"));
  if (body.contains("orphanDependents") && body["orphanDependents"].is_boolean() &&
      o.propagation_policy.empty()) {
    o.propagation_policy = body["orphanDependents"].get<bool>() ? "Orphan" : "Background";
  }
  o.dry_run = req.Query("dryRun") == "All" ||
              (body.contains("dryRun") && body["dryRun"].is_array() && !body["dryRun"].empty());
  if (body.contains("preconditions") && body["preconditions"].is_object()) {
    o.precondition_uid = body["preconditions"].value("uid", "");
    o.precondition_resource_version = body["preconditions"].value("resourceVersion", "");
  }
  return o;
}

PatchType PatchTypeFrom(const http::Request& req) {
  std::string ct = req.Header("Content-Type");
  std::string media = ct.substr(0, ct.find(';'));
  if (media == "application/merge-patch+json") return PatchType::kMerge;
  if (media == "application/json-patch+json") return PatchType::kJson;
  if (media == "application/strategic-merge-patch+json") return PatchType::kStrategic;
  if (media == "application/apply-patch+yaml" || media == "application/apply-patch+cbor") {
    return PatchType::kApply;
  }
  throw Error::UnsupportedMediaType(
      "the body of the request was in an unknown format - accepted media types include: "
      "application/json-patch+json, application/merge-patch+json, "
      "application/apply-patch+yaml, application/strategic-merge-patch+json");
}

}  // namespace

// --- metrics ------------------------------------------------------------------

void Metrics::Observe(const std::string& verb, const std::string& resource, int code,
                      double seconds) {
  std::lock_guard lock(mu_);
  Series& s = series_[{verb, resource}];
  if (s.buckets.empty()) s.buckets.assign(std::size(kBounds), 0);
  s.by_code[code]++;
  for (size_t i = 0; i < std::size(kBounds); ++i) {
    if (seconds <= kBounds[i]) s.buckets[i]++;
  }
  s.sum += seconds;
  s.count++;
}

std::string Metrics::Render(uint64_t db_bytes, size_t store_watches, uint64_t revision) const {
  std::string out;
  std::lock_guard lock(mu_);
  out +=
      "# HELP apiserver_request_total Counter of apiserver requests broken out by verb, resource "
      "and HTTP response code.\n";
  out += "# TYPE apiserver_request_total counter\n";
  for (const auto& [k, s] : series_) {
    for (const auto& [code, n] : s.by_code) {
      out += "apiserver_request_total{verb=\"" + k.first + "\",resource=\"" + k.second +
             "\",code=\"" + std::to_string(code) + "\"} " + std::to_string(n) + "\n";
    }
  }
  out +=
      "# HELP apiserver_request_duration_seconds Response latency distribution in seconds for each "
      "verb and resource.\n";
  out += "# TYPE apiserver_request_duration_seconds histogram\n";
  for (const auto& [k, s] : series_) {
    std::string labels = "verb=\"" + k.first + "\",resource=\"" + k.second + "\"";
    for (size_t i = 0; i < std::size(kBounds); ++i) {
      char le[32];
      snprintf(le, sizeof le, "%g", kBounds[i]);
      out += "apiserver_request_duration_seconds_bucket{" + labels + ",le=\"" + le + "\"} " +
             std::to_string(s.buckets[i]) + "\n";
    }
    out += "apiserver_request_duration_seconds_bucket{" + labels + ",le=\"+Inf\"} " +
           std::to_string(s.count) + "\n";
    char sum[64];
    snprintf(sum, sizeof sum, "%.6f", s.sum);
    out += "apiserver_request_duration_seconds_sum{" + labels + "} " + sum + "\n";
    out += "apiserver_request_duration_seconds_count{" + labels + "} " + std::to_string(s.count) +
           "\n";
  }
  out += "# HELP apiserver_longrunning_requests Number of open watch requests.\n";
  out += "# TYPE apiserver_longrunning_requests gauge\n";
  out += "apiserver_longrunning_requests{verb=\"WATCH\"} " + std::to_string(open_watches.load()) +
         "\n";
  out += "# HELP apiserver_registered_watchers Number of watchers registered in the store.\n";
  out += "# TYPE apiserver_registered_watchers gauge\n";
  out += "apiserver_registered_watchers " + std::to_string(store_watches) + "\n";
  out +=
      "# HELP apiserver_storage_size_bytes Size of the storage database file physically allocated "
      "in bytes.\n";
  out += "# TYPE apiserver_storage_size_bytes gauge\n";
  out +=
      "apiserver_storage_size_bytes{storage_cluster_id=\"kin\"} " + std::to_string(db_bytes) + "\n";
  out += "# HELP kin_store_revision The store's current resource version.\n";
  out += "# TYPE kin_store_revision gauge\n";
  out += "kin_store_revision " + std::to_string(revision) + "\n";
  return out;
}

// --- routing ------------------------------------------------------------------

struct RestHandler::Target {
  const ResourceInfo* resource = nullptr;
  std::string ns;
  std::string name;
  std::string subresource;
  bool watch = false;
  std::string verb;  // for metrics
  rbac::UserInfo user;  // who the request acts as (with an authorizer)
};

http::Response RestHandler::ErrorResponse(int status, const std::string& message) {
  Code code = Code::kInternal;
  switch (status) {
    case 400:
      code = Code::kBadRequest;
      break;
    case 401:
      code = Code::kUnauthorized;
      break;
    case 408:
      code = Code::kTimeout;
      break;
    case 413:
      code = Code::kRequestEntityTooLarge;
      break;
    case 429:
      code = Code::kTooManyRequests;
      break;
    case 431:
      code = Code::kBadRequest;
      break;
    case 501:
      code = Code::kMethodNotAllowed;
      break;
    default:
      break;
  }
  Error e(code, message);
  Json body = StatusFor(e);
  body["code"] = status;  // the HTTP status sent, where it differs from the reason's usual one
  http::Response r;
  SetJson(r, status, DumpStatus(body) + "\n");
  return r;
}

void RestHandler::Handle(http::Request& req, http::Response& resp) {
  auto start = std::chrono::steady_clock::now();
  Target t;
  t.verb = req.method;
  // Who admission webhooks see, and the warnings they give back.
  AdmissionRequestScope admission{AdmissionUser{}};
  try {
    if (!req.body.empty()) CheckBodyNesting(req);
    if (authorizer_ != nullptr) {
      t.user = authorizer_->RequestUser(req);
      admission.set_user({t.user.name, t.user.groups});
      if (enforce_authorization_) authorizer_->Check(t.user, req, QueryBool(req, "watch"));
    }
    const std::string& p = req.path;
    if (p == "/healthz" || p == "/livez" || p == "/readyz" || p.rfind("/healthz/", 0) == 0 ||
        p.rfind("/livez/", 0) == 0 || p.rfind("/readyz/", 0) == 0) {
      resp.Set(200, "text/plain; charset=utf-8", "ok");
      return;
    }
    if (p == "/version") {
      Json v = {{"major", kKubeMajor},
                {"minor", kKubeMinor},
                {"gitVersion", std::string(kKubeVersion) + "+kin-" + kVersion},
                {"gitCommit", "0000000000000000000000000000000000000000"},
                {"gitTreeState", "clean"},
                {"buildDate", "2024-01-01T00:00:00Z"},
                {"goVersion", "go1.22.5"},
                {"compiler", "gc"},
                {"platform", "linux/amd64"}};
      SetJson(resp, 200, v.dump());
      return;
    }
    if (p == "/metrics") {
      resp.Set(200, "text/plain; version=0.0.4; charset=utf-8",
               metrics_.Render(registry_.store().DatabaseBytes(), registry_.store().open_watches(),
                               registry_.store().revision()));
      return;
    }
    if (p == "/openapi/v2") {
      // kubectl asks for protobuf and cannot read JSON here.
      if (req.Header("Accept").find("protobuf") != std::string::npos) {
        resp.Set(200, std::string(kOpenApiV2ProtobufContentType), OpenApiV2Protobuf());
      } else {
        SetJson(resp, 200, OpenApiV2());
      }
      return;
    }
    if (p == "/openapi/v3") {
      auto custom = CustomOpenApiV3Index();  // the CRDs' group-versions (apiserver/crd.h)
      if (custom.empty()) return SetJson(resp, 200, OpenApiV3Index());
      Json index = Json::parse(OpenApiV3Index());
      for (const auto& [gv, hash] : custom) {
        index["paths"][gv] = {{"serverRelativeURL", "/openapi/v3/" + gv + "?hash=" + hash}};
      }
      return SetJson(resp, 200, index.dump());
    }
    if (p.rfind("/openapi/v3/", 0) == 0) {
      std::string custom = CustomOpenApiV3Document(p.substr(strlen("/openapi/v3/")));
      SetJson(resp, 200,
              !custom.empty() ? custom : OpenApiV3Document(p.substr(strlen("/openapi/v3/"))));
      resp.headers.emplace("Cache-Control", "public, immutable");
      return;
    }
    if (p.rfind("/kin/v1alpha1/nodes/", 0) == 0) {
      // kin's own node operations (apiserver/node_control.h).
      std::vector<std::string> kp = SplitPath(p);
      if (kp.size() != 5 || (kp[4] != "stop" && kp[4] != "start")) {
        throw Error::NotFound("the server could not find the requested resource");
      }
      if (req.method != "POST") {
        throw Error::MethodNotAllowed(
            "the server does not allow this method on the requested resource");
      }
      NodeControl* control = node_control_;
      if (control == nullptr) throw Error::Unavailable("this server runs no nodes");
      if (kp[4] == "stop") {
        control->StopNode(kp[3]);
      } else {
        control->StartNode(kp[3]);
      }
      SetJson(resp, 200, SuccessStatus("nodes", kp[3]).dump());
      return;
    }
    std::vector<std::string> parts = SplitPath(p);
    if (parts.empty()) {
      Json paths = {"/api",   "/api/v1",  "/apis",   "/healthz",
                    "/livez", "/metrics", "/readyz", "/version"};
      SetJson(resp, 200, Json{{"paths", paths}}.dump());
      return;
    }
    std::string group, version;
    size_t i;
    if (parts[0] == "api") {
      if (parts.size() == 1 || (parts.size() == 2 && parts[1] == "v1")) return Discovery(req, resp);
      version = parts[1];
      i = 2;
    } else if (parts[0] == "apis") {
      if (parts.size() <= 3) return Discovery(req, resp);
      group = parts[1];
      version = parts[2];
      i = 3;
    } else {
      throw NoSuchResource();
    }
    if (i < parts.size() && parts[i] == "watch") {
      t.watch = true;
      ++i;
    }
    std::vector<std::string> rest(parts.begin() + i, parts.end());
    if (rest.empty()) throw NoSuchResource();
    const ResourceInfo* inner = rest.size() >= 3 && rest[0] == "namespaces"
                                    ? FindResource(group, version, rest[2])
                                    : nullptr;
    if (inner != nullptr && inner->namespaced) {
      t.ns = rest[1];
      t.resource = inner;
      if (rest.size() > 3) t.name = rest[3];
      if (rest.size() > 4) t.subresource = rest[4];
      if (rest.size() > 5) throw NoSuchResource();
    } else {
      t.resource = FindResource(group, version, rest[0]);
      if (rest.size() > 1) t.name = rest[1];
      if (rest.size() > 2) t.subresource = rest[2];
      if (rest.size() > 3) throw NoSuchResource();
    }
    if (t.resource == nullptr) throw NoSuchResource();
    if (!t.subresource.empty() && !t.resource->has_subresource(t.subresource))
      throw NoSuchResource();
    if (t.resource->group == "authorization.k8s.io") {
      // Access reviews: create-only, answered and never stored.
      if (req.method != "POST" || !t.name.empty() || t.watch) {
        throw Error::MethodNotAllowed(
            "the server does not allow this method on the requested resource");
      }
      if (authorizer_ == nullptr) throw Error::Unavailable("this server authorizes nothing");
      t.verb = "POST";
      SetJson(resp, 201, authorizer_->Review(*t.resource, t.ns, DecodeBody(req), t.user).dump());
    } else if (t.resource->plural == "pods" && t.resource->group.empty() && !t.name.empty() &&
        (t.subresource == "log" || t.subresource == "exec" || t.subresource == "attach" ||
         t.subresource == "portforward")) {
      t.verb = req.method == "GET" && t.subresource == "log" ? "GET" : "CONNECT";
      if (t.verb == "CONNECT") AdmitConnect(registry_, t.ns, t.name, t.subresource, req.query);
      PodIo* io = pod_io_;
      if (io == nullptr) throw Error::Unavailable("no node agent serves pod I/O");
      ServePodStream(*io, t.subresource, t.ns, t.name, req, resp);
    } else {
      Serve(req, resp, t);
    }
  } catch (const Error& e) {
    SetError(resp, e);
  } catch (const Json::exception& e) {
    SetError(resp, Error::BadRequest(std::string("invalid object: ") + e.what()));
  }
  for (const auto& w : admission.warnings()) {
    resp.headers.emplace("Warning", WarningHeaderValue(w));
  }
  if (!resp.stream) {
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    metrics_.Observe(t.verb, t.resource ? t.resource->plural : "", resp.status, secs);
  }
}

void RestHandler::Serve(http::Request& req, http::Response& resp, Target& t) {
  const ResourceInfo& r = *t.resource;
  const std::string& m = req.method;
  if (r.group == "authentication.k8s.io" || t.subresource == "token") {
    t.verb = m;
    return ServeAuthentication(req, resp, t);
  }
  if (t.watch || (m == "GET" && t.name.empty() && QueryBool(req, "watch"))) {
    if (!t.name.empty()) {
      // /watch/.../pods/NAME: a watch of one object.
      req.query.emplace("fieldSelector", "metadata.name=" + t.name);
    }
    t.verb = "WATCH";
    return ServeWatch(req, resp, t);
  }
  if (m == "GET") {
    if (t.name.empty()) {
      t.verb = "LIST";
      ListOptions lo = ListOptionsFrom(req);
      std::string list = registry_.ListJson(r, t.ns, lo);
      if (WantsTable(req.Header("Accept"))) {
        Json l = Json::parse(list);
        std::vector<Json> items(l["items"].begin(), l["items"].end());
        auto now = std::chrono::system_clock::now();
        Json table = MakeTable(r, items, l["metadata"].value("resourceVersion", ""),
                               l["metadata"].value("continue", ""),
                               ParseIncludeObject(req.Query("includeObject")), now);
        if (r.custom) CustomizeTable(r, items, table, now);  // additionalPrinterColumns
        return SetTable(resp, table);
      }
      SetJson(resp, 200, std::move(list));
      return;
    }
    t.verb = "GET";
    if (t.subresource == "scale")
      return SetJson(resp, 200, registry_.GetScale(r, t.ns, t.name).dump());
    if (!t.subresource.empty() && t.subresource != "status") {
      throw Error::MethodNotAllowed(
          "the server does not allow this method on the requested resource");
    }
    Json obj = registry_.Get(r, t.ns, t.name);
    if (WantsTable(req.Header("Accept"))) {
      auto now = std::chrono::system_clock::now();
      Json table = MakeTable(r, {obj}, obj["metadata"].value("resourceVersion", ""), "",
                             ParseIncludeObject(req.Query("includeObject")), now);
      if (r.custom) CustomizeTable(r, {obj}, table, now);
      return SetTable(resp, table);
    }
    SetJson(resp, 200, obj.dump());
    return;
  }
  if (m == "POST") {
    t.verb = "POST";
    if (!t.name.empty()) {
      if (r.plural == "pods" && t.subresource == "binding") {
        Json body = DecodeBody(req);
        SetJson(resp, 201, registry_.BindPod(t.ns, t.name, body).dump());
        return;
      }
      if (r.plural == "pods" && t.subresource == "eviction") {
        EvictionResult result =
            EvictPod(registry_, t.ns, t.name, DecodeBody(req), req.Query("dryRun") == "All");
        SetJson(resp, result.code, result.body.dump());
        if (result.retry_after_seconds) {
          resp.headers.emplace("Retry-After", std::to_string(*result.retry_after_seconds));
        }
        return;
      }
      throw Error::MethodNotAllowed(
          "the server does not allow this method on the requested resource");
    }
    WriteOptions wo = WriteOptionsFrom(req);
    Json obj = DecodeBody(req);
    CheckFields(req, resp, r, obj, wo, false);
    if (enforce_authorization_) authorizer_->CheckEscalation(t.user, r, t.ns, obj);
    SetJson(resp, 201, registry_.Create(r, t.ns, std::move(obj), wo).dump());
    return;
  }
  if (m == "PUT") {
    t.verb = "PUT";
    if (t.name.empty())
      throw Error::MethodNotAllowed(
          "the server does not allow this method on the requested resource");
    WriteOptions wo = WriteOptionsFrom(req);
    Json obj = DecodeBody(req);
    if (t.subresource != "scale") CheckFields(req, resp, r, obj, wo, false);
    if (enforce_authorization_) authorizer_->CheckEscalation(t.user, r, t.ns, obj);
    std::string sub = t.subresource == "finalize" ? "" : t.subresource;
    SetJson(resp, 200, registry_.Update(r, t.ns, t.name, std::move(obj), sub, wo).dump());
    return;
  }
  if (m == "PATCH") {
    t.verb = "PATCH";
    if (t.name.empty())
      throw Error::MethodNotAllowed(
          "the server does not allow this method on the requested resource");
    PatchType type = PatchTypeFrom(req);
    WriteOptions wo = WriteOptionsFrom(req);
    if (type == PatchType::kApply && req.Query("fieldManager").empty()) {
      throw Error::BadRequest(
          "PATCH, application/apply-patch+yaml requires fieldManager to be set");
    }
    bool existed = true;
    if (type == PatchType::kApply) {
      try {
        registry_.Get(r, t.ns, t.name);
      } catch (const Error& e) {
        if (e.code() != Code::kNotFound) throw;
        existed = false;
      }
    }
    if (type != PatchType::kJson && t.subresource != "scale") {
      Json patch = type == PatchType::kApply ? ParseJsonOrYaml(req.body)
                                             : Json::parse(req.body, nullptr, false);
      if (patch.is_object()) CheckFields(req, resp, r, patch, wo, true);
    }
    if (enforce_authorization_ && r.group == "rbac.authorization.k8s.io") {
      // Escalation is judged on the object the patch makes: try it first.
      WriteOptions dry = wo;
      dry.dry_run = true;
      authorizer_->CheckEscalation(t.user, r, t.ns,
                                   registry_.Patch(r, t.ns, t.name, type, req.body, "", dry));
    }
    Json out = registry_.Patch(r, t.ns, t.name, type, req.body, t.subresource, wo);
    SetJson(resp, existed ? 200 : 201, out.dump());
    return;
  }
  if (m == "DELETE") {
    DeleteOptions o = DeleteOptionsFrom(req);
    if (t.name.empty()) {
      t.verb = "DELETECOLLECTION";
      if (std::find(r.verbs.begin(), r.verbs.end(), "deletecollection") == r.verbs.end()) {
        throw Error::MethodNotAllowed(
            "the server does not allow this method on the requested resource");
      }
      SetJson(resp, 200, registry_.DeleteCollection(r, t.ns, ListOptionsFrom(req), o).dump());
      return;
    }
    t.verb = "DELETE";
    Json out = registry_.Delete(r, t.ns, t.name, o);
    if (out.value("kind", "") == "Status") {
      SetJson(resp, 200, DumpStatus(out) + "\n");
      return;
    }
    // 202 while the object still exists (graceful deletion, finalizers).
    bool gone = true;
    try {
      Json cur = registry_.Get(r, t.ns, t.name);
      gone = cur["metadata"].value("uid", "") != out["metadata"].value("uid", "");
    } catch (const Error&) {
    }
    SetJson(resp, gone ? 200 : 202, out.dump());
    return;
  }
  throw Error::MethodNotAllowed("the server does not allow this method on the requested resource");
}

namespace {

// Drops strategic-merge directives ($patch, $setElementOrder/..., ...)
// before the schema check: they are not fields.
Json WithoutDirectives(const Json& j) {
  if (j.is_object()) {
    Json out = Json::object();
    for (auto& [k, v] : j.items()) {
      if (!k.empty() && k[0] == '$') continue;
      out[k] = WithoutDirectives(v);
    }
    return out;
  }
  if (j.is_array()) {
    Json out = Json::array();
    for (const auto& v : j) out.push_back(WithoutDirectives(v));
    return out;
  }
  return j;
}

}  // namespace

// Server-side field validation: Strict rejects unknown and duplicate
// fields (400), Warn (the default) reports them in Warning headers, Ignore
// does nothing.
void RestHandler::CheckFields(const http::Request& req, http::Response& resp, const ResourceInfo& r,
                              const Json& obj, const WriteOptions& wo, bool is_patch) {
  if (IsCustomResourceDefinitions(r)) {
    for (const auto& w : CustomResourceDefinitionWarnings(obj)) {
      resp.headers.emplace("Warning", WarningHeaderValue(w));
    }
  }
  std::string mode = wo.field_validation.empty() ? "Warn" : wo.field_validation;
  if (mode == "Ignore") return;
  std::vector<std::string> errors;
  std::string media = req.Header("Content-Type", "application/json");
  bool json_body =
      media.rfind("application/json", 0) == 0 || media.find("patch+json") != std::string::npos;
  if (r.custom) {
    // What the version's schema would prune (apiserver/crd.h).
    errors = CustomResourceUnknownFieldErrors(r, is_patch ? WithoutDirectives(obj) : obj);
  } else if (json_body && !is_patch) {
    errors = StrictDecodingErrors(r.group, r.version, r.kind, req.body);
  } else {
    errors =
        UnknownFieldErrors(r.group, r.version, r.kind, is_patch ? WithoutDirectives(obj) : obj);
  }
  if (errors.empty()) return;
  if (mode == "Strict") {
    if (is_patch) throw StrictDecodingPatchError(errors);
    throw StrictDecodingBodyError(obj.value("kind", r.kind), r.version, r.kind, errors);
  }
  for (const auto& e : errors) resp.headers.emplace("Warning", WarningHeaderValue(e));
}

void RestHandler::ServeWatch(http::Request& req, http::Response& resp, const Target& t) {
  ListOptions lo = ListOptionsFrom(req);
  std::unique_ptr<RegistryWatch> w;
  std::string gone_event;
  try {
    w = registry_.Watch(*t.resource, t.ns, lo);
  } catch (const Error& e) {
    if (e.code() != Code::kGone) throw;
    // As kube-apiserver's watch cache does: a 200 stream whose one event is
    // an ERROR carrying the 410 Status; clients then re-list.
    gone_event = "{\"type\":\"ERROR\",\"object\":" + StatusFor(e).dump() + "}\n";
  }
  const ResourceInfo& r = *t.resource;
  bool table = WantsTable(req.Header("Accept"));
  IncludeObject include = ParseIncludeObject(req.Query("includeObject"));
  resp.status = 200;
  resp.headers.emplace("Content-Type",
                       table ? "application/json;as=Table;v=v1;g=meta.k8s.io" : "application/json");
  resp.headers.emplace("Cache-Control", "no-cache, private");
  int timeout = lo.timeout_seconds > 0 ? lo.timeout_seconds : 1800;
  bool bookmarks = lo.allow_bookmarks;
  std::shared_ptr<RegistryWatch> watch(std::move(w));
  Metrics* metrics = &metrics_;
  resp.stream = [watch, gone_event, timeout, bookmarks, &r, metrics, table,
                 include](http::Stream& s) {
    bool first_table = true;
    // As kube-apiserver: each event's object is a one-row Table; only the
    // first carries the column definitions.
    auto encode = [&](const RegistryWatch::Event& e) -> std::string {
      if (!table) return *e.json;
      Json obj = Json::parse(*e.json);
      auto now = std::chrono::system_clock::now();
      Json tbl = MakeTable(r, {obj}, obj["metadata"].value("resourceVersion", ""), "", include,
                           now, first_table);
      if (r.custom) CustomizeTable(r, {obj}, tbl, now);
      first_table = false;
      return tbl.dump();
    };
    if (!gone_event.empty()) {
      s.Write(gone_event);
      return;
    }
    metrics->open_watches++;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout);
    auto last_sent = std::chrono::steady_clock::now();
    std::string batch;
    while (!s.Done()) {
      auto now = std::chrono::steady_clock::now();
      if (now >= deadline) break;
      RegistryWatch::Event e;
      auto wait = std::min<std::chrono::milliseconds>(
          std::chrono::milliseconds(250),
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now));
      if (watch->Next(e, wait)) {
        batch.clear();
        do {
          batch += "{\"type\":\"" + e.type + "\",\"object\":" + encode(e) + "}\n";
        } while (batch.size() < 65536 && watch->Next(e, std::chrono::milliseconds(0)));
        if (!s.Write(batch)) break;
        last_sent = std::chrono::steady_clock::now();
        continue;
      }
      if (watch->ended()) break;
      if (bookmarks && std::chrono::steady_clock::now() - last_sent > std::chrono::seconds(5)) {
        std::string bm = "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"" + r.kind +
                         "\",\"apiVersion\":\"" + r.api_version() +
                         "\",\"metadata\":{\"resourceVersion\":\"" +
                         std::to_string(watch->last_rv()) + "\"}}}\n";
        if (!s.Write(bm)) break;
        last_sent = std::chrono::steady_clock::now();
      }
    }
    metrics->open_watches--;
  };
}

// --- discovery (legacy form; aggregated discovery comes with kubectl support) ---

namespace {

// The discovery version the client asks for in Accept ("v2", "v2beta1"), or
// "" for the legacy (unaggregated) documents.
std::string AggregatedDiscoveryVersion(const std::string& accept) {
  size_t pos = 0;
  while (pos < accept.size()) {
    size_t end = accept.find(',', pos);
    if (end == std::string::npos) end = accept.size();
    std::string media = accept.substr(pos, end - pos);
    pos = end + 1;
    if (media.find("as=APIGroupDiscoveryList") == std::string::npos) {
      if (media.find("application/json") != std::string::npos ||
          media.find("*/*") != std::string::npos) {
        return "";  // the client prefers plain JSON here
      }
      continue;
    }
    if (media.find("g=apidiscovery.k8s.io") == std::string::npos) continue;
    if (media.find("v=v2beta1") != std::string::npos) return "v2beta1";
    if (media.find("v=v2") != std::string::npos) return "v2";
  }
  return "";
}

// The groups served and each group's versions, preferred first: the static
// table's (all v1), then the custom resources' (apiserver/crd.h).
std::vector<std::pair<std::string, std::vector<std::string>>> GroupVersions() {
  std::vector<std::pair<std::string, std::vector<std::string>>> out;
  for (const ResourceInfo* r : ServedResources()) {
    auto it = std::find_if(out.begin(), out.end(), [&](auto& g) { return g.first == r->group; });
    if (it == out.end()) {
      out.push_back({r->group, {}});
      it = out.end() - 1;
    }
    if (std::find(it->second.begin(), it->second.end(), r->version) == it->second.end()) {
      it->second.push_back(r->version);
    }
  }
  return out;
}

Json AggregatedGroup(const std::string& group, const std::vector<std::string>& versions) {
  Json out_versions = Json::array();
  for (const auto& version : versions) {
  Json resources = Json::array();
  for (const ResourceInfo* rp : ServedResources()) {
    const ResourceInfo& r = *rp;
    if (r.group != group || r.version != version) continue;
    Json e = {{"resource", r.plural},
              {"responseKind", {{"group", r.group}, {"version", r.version}, {"kind", r.kind}}},
              {"scope", r.namespaced ? "Namespaced" : "Cluster"},
              {"singularResource", r.singular},
              {"verbs", r.verbs}};
    if (!r.short_names.empty()) e["shortNames"] = r.short_names;
    if (!r.categories.empty()) e["categories"] = r.categories;
    Json subs = Json::array();
    for (const auto& sub : r.subresources) {
      Json kind = {{"group", r.group}, {"version", r.version}, {"kind", r.kind}};
      Json verbs = {"get", "patch", "update"};
      if (sub == "scale") kind = {{"group", "autoscaling"}, {"version", "v1"}, {"kind", "Scale"}};
      if (sub == "binding") kind["kind"] = "Binding", verbs = {"create"};
      if (sub == "eviction")
        kind = {{"group", "policy"}, {"version", "v1"}, {"kind", "Eviction"}}, verbs = {"create"};
      if (sub == "log") verbs = {"get"};
      if (sub == "exec" || sub == "attach" || sub == "portforward") {
        kind["kind"] = sub == "portforward" ? "PodPortForwardOptions"
                       : sub == "exec"      ? "PodExecOptions"
                                            : "PodAttachOptions";
        verbs = {"create", "get"};
      }
      if (sub == "proxy") {
        kind["kind"] = r.kind + "ProxyOptions";
        verbs = {"create", "delete", "get", "patch", "update"};
      }
      if (sub == "finalize") verbs = {"update"};
      if (sub == "token") {
        kind = {{"group", "authentication.k8s.io"}, {"version", "v1"}, {"kind", "TokenRequest"}};
        verbs = {"create"};
      }
      subs.push_back({{"subresource", sub}, {"responseKind", kind}, {"verbs", verbs}});
    }
    if (!subs.empty()) e["subresources"] = subs;
    resources.push_back(e);
  }
  out_versions.push_back({{"version", version}, {"resources", resources}, {"freshness", "Current"}});
  }
  return {{"metadata", {{"name", group}}}, {"versions", out_versions}};
}

}  // namespace

void RestHandler::Discovery(const http::Request& req, http::Response& resp) {
  std::vector<std::string> parts = SplitPath(req.path);
  std::string aggregated = AggregatedDiscoveryVersion(req.Header("Accept"));
  if (!aggregated.empty() && parts.size() == 1) {
    Json items = Json::array();
    for (const auto& [group, versions] : GroupVersions()) {
      if (group.empty() == (parts[0] == "api")) items.push_back(AggregatedGroup(group, versions));
    }
    Json doc = {{"kind", "APIGroupDiscoveryList"},
                {"apiVersion", "apidiscovery.k8s.io/" + aggregated},
                {"metadata", Json::object()},
                {"items", items}};
    resp.status = 200;
    resp.headers.emplace("Content-Type", "application/json;g=apidiscovery.k8s.io;v=" + aggregated +
                                             ";as=APIGroupDiscoveryList");
    resp.headers.emplace("Vary", "Accept");
    resp.body = doc.dump();
    return;
  }
  auto resource_list = [](const std::string& group, const std::string& version) {
    Json list = Json::array();
    for (const ResourceInfo* rp : ServedResources()) {
      const ResourceInfo& r = *rp;
      if (r.group != group || r.version != version) continue;
      Json e = {{"name", r.plural},
                {"singularName", r.singular},
                {"namespaced", r.namespaced},
                {"kind", r.kind},
                {"verbs", r.verbs}};
      if (!r.short_names.empty()) e["shortNames"] = r.short_names;
      if (!r.categories.empty()) e["categories"] = r.categories;
      list.push_back(e);
      for (const auto& sub : r.subresources) {
        std::string kind = r.kind;
        Json verbs = {"get", "patch", "update"};
        if (sub == "scale") kind = "Scale";
        if (sub == "binding") kind = "Binding", verbs = {"create"};
        if (sub == "eviction") kind = "Eviction", verbs = {"create"};
        if (sub == "log") kind = "Pod", verbs = {"get"};
        if (sub == "exec" || sub == "attach" || sub == "portforward")
          kind = "PodExecOptions", verbs = {"create", "get"};
        if (sub == "proxy")
          kind = r.kind == "Pod"    ? "PodProxyOptions"
                 : r.kind == "Node" ? "NodeProxyOptions"
                                    : "ServiceProxyOptions",
          verbs = {"create", "delete", "get", "patch", "update"};
        if (sub == "finalize") verbs = {"update"};
        if (sub == "ephemeralcontainers") verbs = {"get", "patch", "update"};
        if (sub == "token") kind = "TokenRequest", verbs = {"create"};
        Json se = {{"name", r.plural + "/" + sub},
                   {"singularName", ""},
                   {"namespaced", r.namespaced},
                   {"kind", kind},
                   {"verbs", verbs}};
        if (sub == "scale") se["group"] = "autoscaling", se["version"] = "v1";
        // kubectl drain evicts only when pods/eviction names its group and version.
        if (sub == "eviction") se["group"] = "policy", se["version"] = "v1";
        if (sub == "token") se["group"] = "authentication.k8s.io", se["version"] = "v1";
        list.push_back(se);
      }
    }
    return list;
  };
  if (parts.size() == 1 && parts[0] == "api") {
    SetJson(resp, 200,
            Json{{"kind", "APIVersions"},
                 {"versions", {"v1"}},
                 {"serverAddressByClientCIDRs",
                  {{{"clientCIDR", "0.0.0.0/0"}, {"serverAddress", "127.0.0.1:6443"}}}}}
                .dump());
    return;
  }
  if (parts.size() == 2 && parts[0] == "api") {
    SetJson(resp, 200,
            Json{{"kind", "APIResourceList"},
                 {"groupVersion", "v1"},
                 {"resources", resource_list("", "v1")}}
                .dump());
    return;
  }
  auto groups = GroupVersions();
  // An APIGroup: its versions, the first preferred.
  auto group_json = [](const std::string& g, const std::vector<std::string>& versions) {
    Json list = Json::array();
    for (const auto& v : versions) list.push_back({{"groupVersion", g + "/" + v}, {"version", v}});
    return Json{{"name", g}, {"versions", list}, {"preferredVersion", list[0]}};
  };
  if (parts.size() == 1) {
    Json list = Json::array();
    for (const auto& [g, versions] : groups) {
      if (!g.empty()) list.push_back(group_json(g, versions));
    }
    SetJson(resp, 200,
            Json{{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", list}}.dump());
    return;
  }
  const std::string& g = parts[1];
  auto it = std::find_if(groups.begin(), groups.end(),
                         [&](auto& gv) { return !g.empty() && gv.first == g; });
  if (it == groups.end()) throw NoSuchResource();
  if (parts.size() == 2) {
    Json group = group_json(g, it->second);
    group["kind"] = "APIGroup";
    group["apiVersion"] = "v1";
    SetJson(resp, 200, group.dump());
    return;
  }
  if (std::find(it->second.begin(), it->second.end(), parts[2]) == it->second.end()) {
    throw NoSuchResource();
  }
  SetJson(resp, 200,
          Json{{"kind", "APIResourceList"},
               {"apiVersion", "v1"},
               {"groupVersion", g + "/" + parts[2]},
               {"resources", resource_list(g, parts[2])}}
              .dump());
}

// --- authentication.k8s.io (apiserver/authentication.h) -----------------------

void RestHandler::ServeAuthentication(const http::Request& req, http::Response& resp,
                                      const Target& t) {
  const ResourceInfo& r = *t.resource;
  // Create-only, as kube-apiserver serves them; nothing is stored.
  if (req.method != "POST" || (t.subresource.empty() && !t.name.empty())) {
    throw Error::MethodNotAllowed(
        "the server does not allow this method on the requested resource");
  }
  if (authentication_ == nullptr) {
    throw Error::Unavailable("this server has no service account key: tokens are not served");
  }
  Json body = DecodeBody(req);
  if (t.subresource == "token") {
    SetJson(resp, 201, authentication_->CreateToken(t.ns, t.name, body).dump());
    return;
  }
  if (r.plural == "tokenreviews") {
    SetJson(resp, 201, authentication_->ReviewToken(body).dump());
    return;
  }
  // selfsubjectreviews: whoever sent this. A bearer token that names the
  // same user carries the uid and extra a certificate has not.
  UserInfo user;
  user.username = req.client_cn;
  user.groups = req.client_groups;
  std::string auth = req.Header("Authorization");
  if (auth.size() > 7 && strncasecmp(auth.c_str(), "Bearer ", 7) == 0) {
    TokenAuthResult tr = authentication_->AuthenticateToken(auth.substr(7));
    if (tr.authenticated && tr.user.username == req.client_cn) user = tr.user;
  }
  if (std::find(user.groups.begin(), user.groups.end(), "system:authenticated") ==
      user.groups.end()) {
    user.groups.push_back("system:authenticated");
  }
  SetJson(resp, 201, authentication_->ReviewSelf(user, body).dump());
}

}  // namespace kin::apiserver
