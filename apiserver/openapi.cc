#include "apiserver/openapi.h"

#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/version.h"
#include "client/resources.h"

namespace kin::apiserver {
namespace {

constexpr char kDefinitionsText[] =
#include "apiserver/schemas/definitions.inc"
    ;
constexpr char kAuthenticationDefinitionsText[] =
#include "apiserver/schemas/authentication.inc"
    ;
constexpr char kRbacDefinitionsText[] =
#include "apiserver/schemas/rbac.inc"
    ;
constexpr char kApiregistrationDefinitionsText[] =
#include "apiserver/schemas/apiregistration.inc"
    ;
constexpr char kStorageDefinitionsText[] =
#include "apiserver/schemas/storage.inc"
    ;

constexpr char kAdmissionregistrationDefinitionsText[] =
#include "apiserver/schemas/admissionregistration.inc"
    ;
constexpr char kQuotaDefinitionsText[] =
#include "apiserver/schemas/quota.inc"
    ;

constexpr std::string_view kMeta = "io.k8s.apimachinery.pkg.apis.meta.v1.";
constexpr std::string_view kIntOrString = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
constexpr std::string_view kQuantity = "io.k8s.apimachinery.pkg.api.resource.Quantity";
constexpr std::string_view kScaleDefinition = "io.k8s.api.autoscaling.v1.Scale";

std::string MetaName(std::string_view short_name) {
  return std::string(kMeta) + std::string(short_name);
}

// ===========================================================================
// Served group-versions
// ===========================================================================

struct ServedGroupVersion {
  std::string group;
  std::string version;
  std::vector<const ResourceInfo*> resources;

  // "api/v1", "apis/apps/v1": the key of the v3 index.
  std::string Path() const {
    return group.empty() ? "api/" + version : "apis/" + group + "/" + version;
  }
};

const std::vector<ServedGroupVersion>& ServedGroupVersions() {
  static const std::vector<ServedGroupVersion> gvs = [] {
    std::vector<ServedGroupVersion> out;
    for (const auto& r : AllResources()) {
      ServedGroupVersion* gv = nullptr;
      for (auto& g : out) {
        if (g.group == r.group && g.version == r.version) gv = &g;
      }
      if (gv == nullptr) {
        out.push_back({r.group, r.version, {}});
        gv = &out.back();
      }
      gv->resources.push_back(&r);
    }
    return out;
  }();
  return gvs;
}

Json Gvk(std::string_view group, std::string_view version, std::string_view kind) {
  return Json{{"group", group}, {"kind", kind}, {"version", version}};
}

// ===========================================================================
// Definitions
// ===========================================================================

Json LoadDefinitions() {
  Json defs = Json::parse(kDefinitionsText);
  defs.update(Json::parse(kAuthenticationDefinitionsText));
  defs.update(Json::parse(kRbacDefinitionsText));
  defs.update(Json::parse(kApiregistrationDefinitionsText));
  defs.update(Json::parse(kStorageDefinitionsText));
  defs.update(Json::parse(kAdmissionregistrationDefinitionsText));
  defs.update(Json::parse(kQuotaDefinitionsText));
  // CustomResourceDefinition (apiserver/crd.h): spec and status are open
  // objects here (kubectl explain lists them); the server validates them.
  {
    const std::string crd = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.";
    auto crd_gvk = [](const char* kind) {
      return Json::array({Json{{"group", "apiextensions.k8s.io"}, {"kind", kind}, {"version", "v1"}}});
    };
    Json type_props = {
        {"apiVersion",
         {{"description", "APIVersion defines the versioned schema of this representation."},
          {"type", "string"}}},
        {"kind",
         {{"description", "Kind is a string value representing the REST resource."},
          {"type", "string"}}}};
    Json props = type_props;
    props["metadata"] = {{"$ref", MetaName("ObjectMeta")}, {"description", "Standard object's metadata."}};
    props["spec"] = {{"description", "spec describes how the user wants the resources to appear"},
                     {"type", "object"}};
    props["status"] = {{"description", "status indicates the actual state of the CustomResourceDefinition"},
                       {"type", "object"}};
    defs[crd + "CustomResourceDefinition"] = {
        {"description",
         "CustomResourceDefinition represents a resource that should be exposed on the API server."},
        {"properties", props},
        {"required", {"spec"}},
        {"type", "object"},
        {"x-kubernetes-group-version-kind", crd_gvk("CustomResourceDefinition")}};
    Json list_props = type_props;
    list_props["items"] = {{"description", "items list individual CustomResourceDefinition objects"},
                           {"items", {{"$ref", crd + "CustomResourceDefinition"}}},
                           {"type", "array"}};
    list_props["metadata"] = {{"$ref", MetaName("ListMeta")}, {"description", "Standard object's metadata"}};
    defs[crd + "CustomResourceDefinitionList"] = {
        {"description", "CustomResourceDefinitionList is a list of CustomResourceDefinition objects."},
        {"properties", list_props},
        {"required", {"items"}},
        {"type", "object"},
        {"x-kubernetes-group-version-kind", crd_gvk("CustomResourceDefinitionList")}};
  }
  // scheduling.k8s.io/v1 PriorityClass: a flat object, written here.
  {
    const std::string sched = "io.k8s.api.scheduling.v1.";
    auto gvk = [](const char* kind) {
      return Json::array({Json{{"group", "scheduling.k8s.io"}, {"kind", kind}, {"version", "v1"}}});
    };
    auto type_props = [] {
      return Json{
          {"apiVersion",
           {{"description", "APIVersion defines the versioned schema of this representation of an object."},
            {"type", "string"}}},
          {"kind",
           {{"description", "Kind is a string value representing the REST resource this object represents."},
            {"type", "string"}}}};
    };
    Json props = type_props();
    props["metadata"] = {{"$ref", MetaName("ObjectMeta")}, {"description", "Standard object's metadata."}};
    props["value"] = {{"description", "value represents the integer value of this priority class. This is the actual priority that pods receive when they have the name of this class in their pod spec."},
                      {"format", "int32"},
                      {"type", "integer"}};
    props["globalDefault"] = {{"description", "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class. Only one PriorityClass can be marked as `globalDefault`."},
                              {"type", "boolean"}};
    props["description"] = {{"description", "description is an arbitrary string that usually provides guidelines on when this priority class should be used."},
                            {"type", "string"}};
    props["preemptionPolicy"] = {{"description", "preemptionPolicy is the Policy for preempting pods with lower priority. One of Never, PreemptLowerPriority. Defaults to PreemptLowerPriority if unset."},
                                 {"type", "string"}};
    defs[sched + "PriorityClass"] = {
        {"description", "PriorityClass defines mapping from a priority class name to the priority integer value. The value can be any valid integer."},
        {"properties", props},
        {"required", {"value"}},
        {"type", "object"},
        {"x-kubernetes-group-version-kind", gvk("PriorityClass")}};
    Json list_props = type_props();
    list_props["items"] = {{"description", "items is the list of PriorityClasses"},
                           {"items", {{"$ref", sched + "PriorityClass"}}},
                           {"type", "array"}};
    list_props["metadata"] = {{"$ref", MetaName("ListMeta")}, {"description", "Standard list metadata"}};
    defs[sched + "PriorityClassList"] = {
        {"description", "PriorityClassList is a collection of priority classes."},
        {"properties", list_props},
        {"required", {"items"}},
        {"type", "object"},
        {"x-kubernetes-group-version-kind", gvk("PriorityClassList")}};
  }
  // Types shared by every group: upstream lists each group-version that
  // serves them; these name the ones kin serves.
  for (const char* kind : {"DeleteOptions", "WatchEvent"}) {
    Json gvks = Json::array();
    for (const auto& gv : ServedGroupVersions()) gvks.push_back(Gvk(gv.group, gv.version, kind));
    defs[MetaName(kind)]["x-kubernetes-group-version-kind"] = gvks;
  }
  defs[MetaName("Status")]["x-kubernetes-group-version-kind"] =
      Json::array({Gvk("", "v1", "Status")});
  return defs;
}

// "group/version/kind" -> definition name.
// What field validation reads of a schema: the structure (properties,
// additionalProperties, items, $ref) and a definition's
// x-kubernetes-group-version-kind, without the descriptions, types and
// formats, which are most of the full definitions' size.
// A leaf (a schema with none of these) is null rather than an empty
// object: ShapeOf reads both alike, and null allocates nothing.
Json StructureOf(const Json& schema) {
  if (!schema.is_object()) return nullptr;
  Json out;
  if (auto it = schema.find("$ref"); it != schema.end()) out["$ref"] = *it;
  if (auto it = schema.find("properties"); it != schema.end() && it->is_object()) {
    Json& props = out["properties"] = Json::object();
    for (const auto& [key, child] : it->items()) props[key] = StructureOf(child);
  }
  if (auto it = schema.find("additionalProperties"); it != schema.end()) {
    // Kept an object when it is one: ShapeOf tells a map by it.
    Json child = it->is_object() ? StructureOf(*it) : *it;
    out["additionalProperties"] = child.is_null() ? Json::object() : std::move(child);
  }
  if (auto it = schema.find("items"); it != schema.end()) out["items"] = StructureOf(*it);
  return out;
}

// The definitions as field validation and DefinitionName need them, kept
// for the process's life. The full SchemaDefinitions() are only loaded for
// the OpenAPI documents (and a CRD's).
const Json& StructuralDefinitions() {
  static const Json defs = [] {
    Json full = LoadDefinitions();
    Json out = Json::object();
    for (const auto& [name, def] : full.items()) {
      Json& d = out[name] = StructureOf(def);
      if (d.is_null()) d = Json::object();  // a definition stays an object (ShapeOf's .at())
      if (auto it = def.find("x-kubernetes-group-version-kind"); it != def.end()) {
        d["x-kubernetes-group-version-kind"] = *it;
      }
    }
    return out;
  }();
  return defs;
}

const std::map<std::string, std::string>& KindIndex() {
  static const std::map<std::string, std::string> index = [] {
    std::map<std::string, std::string> out;
    for (const auto& [name, def] : StructuralDefinitions().items()) {
      auto it = def.find("x-kubernetes-group-version-kind");
      if (it == def.end()) continue;
      for (const auto& gvk : *it) {
        out.emplace(
            gvk.value("group", "") + "/" + gvk.value("version", "") + "/" + gvk.value("kind", ""),
            name);
      }
    }
    return out;
  }();
  return index;
}

void CollectRefs(const Json& node, std::set<std::string>& out) {
  if (node.is_object()) {
    for (const auto& [key, value] : node.items()) {
      if (key == "$ref" && value.is_string()) {
        out.insert(value.get<std::string>());
      } else {
        CollectRefs(value, out);
      }
    }
  } else if (node.is_array()) {
    for (const auto& item : node) CollectRefs(item, out);
  }
}

// The named definitions and everything they reference.
std::set<std::string> Closure(const std::set<std::string>& roots) {
  const Json& defs = SchemaDefinitions();
  std::set<std::string> done;
  std::vector<std::string> todo(roots.begin(), roots.end());
  while (!todo.empty()) {
    std::string name = std::move(todo.back());
    todo.pop_back();
    if (!done.insert(name).second) continue;
    std::set<std::string> refs;
    CollectRefs(defs.at(name), refs);
    for (const auto& r : refs) {
      if (!done.count(r)) todo.push_back(r);
    }
  }
  return done;
}

// ===========================================================================
// Schema dialects. The table is v2-style with bare names in "$ref".
// v2: "$ref": "#/definitions/X", siblings (description, extensions) beside it.
// v3: "$ref": "#/components/schemas/X"; a reference with siblings is wrapped
//     in allOf, as kube-apiserver 1.27-1.33 publish it; IntOrString and
//     Quantity are oneOf their JSON types.
// ===========================================================================

enum class Dialect { kV2, kV3 };

std::string Ref(Dialect d, std::string_view name) {
  return std::string(d == Dialect::kV2 ? "#/definitions/" : "#/components/schemas/") +
         std::string(name);
}

Json ConvertSchema(const Json& s, Dialect d) {
  Json out = Json::object();
  for (const auto& [key, value] : s.items()) {
    if (key == "$ref") continue;
    if (key == "properties") {
      Json props = Json::object();
      for (const auto& [name, prop] : value.items()) props[name] = ConvertSchema(prop, d);
      out[key] = std::move(props);
    } else if (key == "items" || key == "additionalProperties") {
      out[key] = value.is_object() ? ConvertSchema(value, d) : value;
    } else {
      out[key] = value;
    }
  }
  auto ref = s.find("$ref");
  if (ref != s.end()) {
    std::string target = Ref(d, ref->get<std::string>());
    if (d == Dialect::kV3 && !out.empty()) {
      out["allOf"] = Json::array({Json{{"$ref", target}}});
    } else {
      out["$ref"] = target;
    }
  }
  return out;
}

Json ConvertDefinition(const std::string& name, const Json& def, Dialect d) {
  if (d == Dialect::kV3 && name == kIntOrString) {
    return Json{{"description", def.at("description")},
                {"format", "int-or-string"},
                {"oneOf", Json::array({Json{{"type", "integer"}}, Json{{"type", "string"}}})}};
  }
  if (d == Dialect::kV3 && name == kQuantity) {
    return Json{{"description", def.at("description")},
                {"oneOf", Json::array({Json{{"type", "string"}}, Json{{"type", "number"}}})}};
  }
  return ConvertSchema(def, d);
}

// ===========================================================================
// Operations
// ===========================================================================

struct Param {
  const char* name;
  const char* in;  // "query" or "path"
  const char* type;
  const char* description;
};

const Param kPretty{"pretty", "query", "string", "If 'true', then the output is pretty printed."};
const Param kName{"name", "path", "string", "name of the object"};
const Param kNamespace{"namespace", "path", "string",
                       "object name and auth scope, such as for teams and projects"};
const Param kDryRun{"dryRun", "query", "string",
                    "When present, indicates that modifications should not be persisted. Valid "
                    "values are: - All: all dry run stages will be processed"};
const Param kFieldManager{"fieldManager", "query", "string",
                          "fieldManager is a name associated with the actor or entity that is "
                          "making these changes."};
const Param kFieldValidation{
    "fieldValidation", "query", "string",
    "fieldValidation instructs the server on how to handle objects in the request "
    "(POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: "
    "ignores unknown/duplicate fields. - Warn: responds with a warning for each unknown/duplicate "
    "field, but successfully serves the request. - Strict: fails the request on "
    "unknown/duplicate fields."};
const Param kForce{"force", "query", "boolean",
                   "Force is going to \"force\" Apply requests. It means user will re-acquire "
                   "conflicting fields owned by other people. Force flag must be unset for "
                   "non-apply patch requests."};
const Param kGracePeriodSeconds{"gracePeriodSeconds", "query", "integer",
                                "The duration in seconds before the object should be deleted."};
const Param kOrphanDependents{"orphanDependents", "query", "boolean",
                              "Deprecated: please use the PropagationPolicy."};
const Param kPropagationPolicy{"propagationPolicy", "query", "string",
                               "Whether and how garbage collection will be performed. Acceptable "
                               "values are: 'Orphan', 'Background', 'Foreground'."};
const Param kAllowWatchBookmarks{"allowWatchBookmarks", "query", "boolean",
                                 "allowWatchBookmarks requests watch events with type "
                                 "\"BOOKMARK\"."};
const Param kContinue{"continue", "query", "string",
                      "The continue option should be set when retrieving more results from the "
                      "server."};
const Param kFieldSelector{"fieldSelector", "query", "string",
                           "A selector to restrict the list of returned objects by their fields. "
                           "Defaults to everything."};
const Param kLabelSelector{"labelSelector", "query", "string",
                           "A selector to restrict the list of returned objects by their labels. "
                           "Defaults to everything."};
const Param kLimit{"limit", "query", "integer",
                   "limit is a maximum number of responses to return for a list call."};
const Param kResourceVersion{"resourceVersion", "query", "string",
                             "resourceVersion sets a constraint on what resource versions a "
                             "request may be served from."};
const Param kResourceVersionMatch{"resourceVersionMatch", "query", "string",
                                  "resourceVersionMatch determines how resourceVersion is "
                                  "applied to list calls."};
const Param kSendInitialEvents{"sendInitialEvents", "query", "boolean",
                               "`sendInitialEvents=true` may be set together with `watch=true`."};
const Param kTimeoutSeconds{"timeoutSeconds", "query", "integer",
                            "Timeout for the list/watch call."};
const Param kWatch{"watch", "query", "boolean",
                   "Watch for changes to the described resources and return them as a stream of "
                   "add, update, and remove notifications."};

const std::vector<const Param*> kListParams = {&kAllowWatchBookmarks,
                                               &kContinue,
                                               &kFieldSelector,
                                               &kLabelSelector,
                                               &kLimit,
                                               &kResourceVersion,
                                               &kResourceVersionMatch,
                                               &kSendInitialEvents,
                                               &kTimeoutSeconds,
                                               &kWatch};
const std::vector<const Param*> kWriteParams = {&kDryRun, &kFieldManager, &kFieldValidation};
const std::vector<const Param*> kPatchParams = {&kDryRun, &kFieldManager, &kFieldValidation,
                                                &kForce};
const std::vector<const Param*> kDeleteParams = {&kDryRun, &kGracePeriodSeconds, &kOrphanDependents,
                                                 &kPropagationPolicy};

const std::vector<const Param*> kDeleteCollectionParams = {&kDryRun,
                                                           &kGracePeriodSeconds,
                                                           &kOrphanDependents,
                                                           &kPropagationPolicy,
                                                           &kAllowWatchBookmarks,
                                                           &kContinue,
                                                           &kFieldSelector,
                                                           &kLabelSelector,
                                                           &kLimit,
                                                           &kResourceVersion,
                                                           &kResourceVersionMatch,
                                                           &kSendInitialEvents,
                                                           &kTimeoutSeconds,
                                                           &kWatch};

const std::vector<std::string> kPatchTypes = {
    "application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json",
    "application/strategic-merge-patch+json"};
const std::vector<std::string> kProduces = {"application/json", "application/yaml",
                                            "application/vnd.kubernetes.protobuf"};

Json ParamJson(const Param& p, Dialect d) {
  Json j{{"description", p.description}, {"in", p.in}, {"name", p.name}};
  if (d == Dialect::kV2) {
    j["type"] = p.type;
    j["uniqueItems"] = true;
  } else {
    j["schema"] = Json{{"type", p.type}, {"uniqueItems", true}};
  }
  if (std::string_view(p.in) == "path") j["required"] = true;
  return j;
}

struct OpSpec {
  std::string method;  // "get", "put", "post", "patch", "delete"
  std::string action;  // x-kubernetes-action
  std::string operation_id;
  std::string description;
  const std::vector<const Param*>* params = nullptr;
  std::string body;  // definition name of the request body, "" for none
  bool patch = false;
  std::vector<std::pair<std::string, std::string>> responses;  // code -> definition name
  Json gvk;
};

Json ResponseJson(const std::string& code, const std::string& definition, Dialect d) {
  static const std::map<std::string, std::string> kText = {
      {"200", "OK"}, {"201", "Created"}, {"202", "Accepted"}, {"401", "Unauthorized"}};
  Json r{{"description", kText.at(code)}};
  if (definition.empty()) return r;
  if (d == Dialect::kV2) {
    r["schema"] = Json{{"$ref", Ref(d, definition)}};
  } else {
    Json content = Json::object();
    for (const auto& type : kProduces)
      content[type] = Json{{"schema", {{"$ref", Ref(d, definition)}}}};
    r["content"] = std::move(content);
  }
  return r;
}

Json OperationJson(const OpSpec& op, const std::string& tag, Dialect d) {
  Json j{{"description", op.description},
         {"operationId", op.operation_id},
         {"tags", Json::array({tag})},
         {"x-kubernetes-action", op.action},
         {"x-kubernetes-group-version-kind", op.gvk}};
  Json params = Json::array();
  if (op.params) {
    for (const Param* p : *op.params) params.push_back(ParamJson(*p, d));
  }
  const std::string body = op.patch ? MetaName("Patch") : op.body;
  if (d == Dialect::kV2) {
    if (!body.empty()) {
      params.push_back(Json{{"in", "body"},
                            {"name", "body"},
                            {"required", op.method != "delete"},
                            {"schema", {{"$ref", Ref(d, body)}}}});
    }
    j["consumes"] = op.patch ? Json(kPatchTypes) : Json::array({"*/*"});
    j["produces"] = kProduces;
    j["schemes"] = Json::array({"https"});
  } else if (!body.empty()) {
    Json content = Json::object();
    for (const auto& type : op.patch ? kPatchTypes : std::vector<std::string>{"*/*"}) {
      content[type] = Json{{"schema", {{"$ref", Ref(d, body)}}}};
    }
    j["requestBody"] = Json{{"content", std::move(content)}};
    if (op.method != "delete") j["requestBody"]["required"] = true;
  }
  if (!params.empty()) j["parameters"] = std::move(params);
  Json responses = Json::object();
  for (const auto& [code, def] : op.responses) responses[code] = ResponseJson(code, def, d);
  responses["401"] = ResponseJson("401", "", d);
  j["responses"] = std::move(responses);
  return j;
}

std::string Capitalized(std::string s) {
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = static_cast<char>(s[0] - 'a' + 'A');
  return s;
}

// "CoreV1", "AppsV1", "NetworkingV1" as in upstream operation ids, and the
// matching tag ("core_v1", "networking_v1").
std::string GroupWord(const ResourceInfo& r) {
  return r.group.empty() ? "core" : r.group.substr(0, r.group.find('.'));
}

void AddResourcePaths(const ResourceInfo& r, Dialect d, Json& paths) {
  const std::string kind_def = DefinitionName(r.group, r.version, r.kind);
  const std::string list_def = DefinitionName(r.group, r.version, r.list_kind());
  const std::string status_def = MetaName("Status");
  const std::string delete_options = MetaName("DeleteOptions");
  const std::string tag = GroupWord(r) + "_" + r.version;
  const std::string id_prefix = Capitalized(GroupWord(r)) + Capitalized(r.version);
  const std::string scoped = (r.namespaced ? "Namespaced" : "") + r.kind;
  const Json gvk = Gvk(r.group, r.version, r.kind);
  const std::string root =
      "/" + (r.group.empty() ? "api/" + r.version : "apis/" + r.group + "/" + r.version);
  const std::string collection =
      root + (r.namespaced ? "/namespaces/{namespace}/" : "/") + r.plural;
  const std::string item = collection + "/{name}";
  auto has_verb = [&](std::string_view v) {
    for (const auto& verb : r.verbs) {
      if (verb == v) return true;
    }
    return false;
  };
  auto path_params = [&](bool with_name) {
    Json params = Json::array();
    if (with_name) params.push_back(ParamJson(kName, d));
    if (r.namespaced) params.push_back(ParamJson(kNamespace, d));
    params.push_back(ParamJson(kPretty, d));
    return params;
  };
  auto add = [&](const std::string& path, const OpSpec& op, bool with_name) {
    Json& entry = paths[path];
    if (!entry.contains("parameters")) entry["parameters"] = path_params(with_name);
    entry[op.method] = OperationJson(op, tag, d);
  };

  if (has_verb("list")) {
    add(collection,
        {"get",
         "list",
         "list" + id_prefix + scoped,
         "list or watch objects of kind " + r.kind,
         &kListParams,
         "",
         false,
         {{"200", list_def}},
         gvk},
        false);
    if (r.namespaced) {
      paths[root + "/" + r.plural]["parameters"] = Json::array({ParamJson(kPretty, d)});
      paths[root + "/" + r.plural]["get"] =
          OperationJson({"get",
                         "list",
                         "list" + id_prefix + r.kind + "ForAllNamespaces",
                         "list or watch objects of kind " + r.kind,
                         &kListParams,
                         "",
                         false,
                         {{"200", list_def}},
                         gvk},
                        tag, d);
    }
  }
  if (has_verb("create")) {
    add(collection,
        {"post",
         "post",
         "create" + id_prefix + scoped,
         "create a " + r.kind,
         &kWriteParams,
         kind_def,
         false,
         {{"200", kind_def}, {"201", kind_def}, {"202", kind_def}},
         gvk},
        false);
  }
  if (has_verb("deletecollection")) {
    add(collection,
        {"delete",
         "deletecollection",
         "delete" + id_prefix + "Collection" + scoped,
         "delete collection of " + r.kind,
         &kDeleteCollectionParams,
         delete_options,
         false,
         {{"200", status_def}},
         gvk},
        false);
  }
  if (has_verb("get")) {
    add(item,
        {"get",
         "get",
         "read" + id_prefix + scoped,
         "read the specified " + r.kind,
         nullptr,
         "",
         false,
         {{"200", kind_def}},
         gvk},
        true);
  }
  if (has_verb("update")) {
    add(item,
        {"put",
         "put",
         "replace" + id_prefix + scoped,
         "replace the specified " + r.kind,
         &kWriteParams,
         kind_def,
         false,
         {{"200", kind_def}, {"201", kind_def}},
         gvk},
        true);
  }
  if (has_verb("patch")) {
    add(item,
        {"patch",
         "patch",
         "patch" + id_prefix + scoped,
         "partially update the specified " + r.kind,
         &kPatchParams,
         "",
         true,
         {{"200", kind_def}, {"201", kind_def}},
         gvk},
        true);
  }
  if (has_verb("delete")) {
    add(item,
        {"delete",
         "delete",
         "delete" + id_prefix + scoped,
         "delete a " + r.kind,
         &kDeleteParams,
         delete_options,
         false,
         {{"200", kind_def}, {"202", kind_def}},
         gvk},
        true);
  }
  // Subresources that carry an object of a known kind.
  for (const auto& sub : r.subresources) {
    std::string def;
    Json sub_gvk;
    if (sub == "status") {
      def = kind_def;
      sub_gvk = gvk;
    } else if (sub == "scale") {
      def = std::string(kScaleDefinition);
      sub_gvk = Gvk("autoscaling", "v1", "Scale");
    } else {
      continue;
    }
    const std::string path = item + "/" + sub;
    const std::string id = scoped + Capitalized(sub);
    add(path,
        {"get",
         "get",
         "read" + id_prefix + id,
         "read " + sub + " of the specified " + r.kind,
         nullptr,
         "",
         false,
         {{"200", def}},
         sub_gvk},
        true);
    add(path,
        {"put",
         "put",
         "replace" + id_prefix + id,
         "replace " + sub + " of the specified " + r.kind,
         &kWriteParams,
         def,
         false,
         {{"200", def}, {"201", def}},
         sub_gvk},
        true);
    add(path,
        {"patch",
         "patch",
         "patch" + id_prefix + id,
         "partially update " + sub + " of the specified " + r.kind,
         &kPatchParams,
         "",
         true,
         {{"200", def}, {"201", def}},
         sub_gvk},
        true);
  }
}

// The definitions a group-version document needs: its kinds, their lists,
// what the operations carry, and everything those reference.
std::set<std::string> DocumentRoots(const ServedGroupVersion& gv) {
  std::set<std::string> roots = {MetaName("Status"), MetaName("DeleteOptions"), MetaName("Patch")};
  for (const ResourceInfo* r : gv.resources) {
    // Create-only kinds (reviews) have no list.
    for (const std::string& kind : {r->kind, r->list_kind()}) {
      if (std::string def = DefinitionName(r->group, r->version, kind); !def.empty()) {
        roots.insert(def);
      }
    }
    if (r->has_subresource("scale")) roots.insert(std::string(kScaleDefinition));
  }
  return roots;
}

Json InfoJson() { return Json{{"title", "Kubernetes"}, {"version", kKubeVersion}}; }

Json V3Document(const ServedGroupVersion& gv) {
  Json paths = Json::object();
  for (const ResourceInfo* r : gv.resources) AddResourcePaths(*r, Dialect::kV3, paths);
  Json schemas = Json::object();
  const Json& defs = SchemaDefinitions();
  for (const auto& name : Closure(DocumentRoots(gv))) {
    schemas[name] = ConvertDefinition(name, defs.at(name), Dialect::kV3);
  }
  Json security = Json{{"BearerToken",
                        {{"description", "Bearer Token authentication"},
                         {"in", "header"},
                         {"name", "authorization"},
                         {"type", "apiKey"}}}};
  return Json{{"openapi", "3.0.0"},
              {"info", InfoJson()},
              {"paths", std::move(paths)},
              {"components", {{"schemas", std::move(schemas)}, {"securitySchemes", security}}}};
}

Json V2Document() {
  Json paths = Json::object();
  for (const auto& gv : ServedGroupVersions()) {
    for (const ResourceInfo* r : gv.resources) AddResourcePaths(*r, Dialect::kV2, paths);
  }
  Json definitions = Json::object();
  for (const auto& [name, def] : SchemaDefinitions().items()) {
    definitions[name] = ConvertDefinition(name, def, Dialect::kV2);
  }
  return Json{{"swagger", "2.0"},
              {"info", InfoJson()},
              {"paths", std::move(paths)},
              {"definitions", std::move(definitions)},
              {"securityDefinitions",
               {{"BearerToken",
                 {{"description", "Bearer Token authentication"},
                  {"in", "header"},
                  {"name", "authorization"},
                  {"type", "apiKey"}}}}},
              {"security", Json::array({Json{{"BearerToken", Json::array()}}})}};
}

// A stable content hash for the index (two FNV-1a 64 lanes, 32 hex digits).
std::string ContentHash(std::string_view text) {
  uint64_t a = 14695981039346656037ULL, b = 1099511628211ULL * 31;
  for (unsigned char c : text) {
    a = (a ^ c) * 1099511628211ULL;
    b = (b ^ c) * 0x100000001b3ULL + 0x9e3779b97f4a7c15ULL;
  }
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llX%016llX", static_cast<unsigned long long>(a),
                static_cast<unsigned long long>(b));
  return buf;
}

// ===========================================================================
// Protobuf encoding of the v2 document (gnostic openapiv2/OpenAPIv2.proto).
// ===========================================================================

class PbWriter {
 public:
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  void Key(int field, int wire_type) { Varint((static_cast<uint64_t>(field) << 3) | wire_type); }
  void String(int field, std::string_view s) {
    if (s.empty()) return;
    Bytes(field, s);
  }
  void Bool(int field, bool b) {
    if (!b) return;
    Key(field, 0);
    Varint(1);
  }
  // A sub-message, written even when empty (presence matters in oneofs).
  void Bytes(int field, std::string_view bytes) {
    Key(field, 2);
    Varint(bytes.size());
    out_.append(bytes);
  }
  const std::string& str() const { return out_; }

 private:
  std::string out_;
};

std::string Str(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Any{yaml = 2}: JSON text is valid YAML, which is how the value is read.
std::string EncodeAny(const Json& value) {
  PbWriter w;
  w.String(2, value.dump());
  return w.str();
}

// NamedAny{name = 1, value = 2}
void WriteVendorExtensions(PbWriter& w, int field, const Json& obj) {
  for (const auto& [key, value] : obj.items()) {
    if (key.rfind("x-", 0) != 0) continue;
    PbWriter named;
    named.String(1, key);
    named.Bytes(2, EncodeAny(value));
    w.Bytes(field, named.str());
  }
}

std::string EncodeSchema(const Json& s) {
  PbWriter w;
  w.String(1, Str(s, "$ref"));
  w.String(2, Str(s, "format"));
  w.String(4, Str(s, "description"));
  if (auto it = s.find("required"); it != s.end()) {
    for (const auto& r : *it) w.String(19, r.get<std::string>());
  }
  if (auto it = s.find("enum"); it != s.end()) {
    for (const auto& v : *it) w.Bytes(20, EncodeAny(v));
  }
  if (auto it = s.find("additionalProperties"); it != s.end()) {
    PbWriter item;  // AdditionalPropertiesItem{schema = 1 | boolean = 2}
    if (it->is_object()) {
      item.Bytes(1, EncodeSchema(*it));
    } else {
      item.Key(2, 0);
      item.Varint(it->get<bool>() ? 1 : 0);
    }
    w.Bytes(21, item.str());
  }
  if (auto type = Str(s, "type"); !type.empty()) {
    PbWriter t;  // TypeItem{value = 1}
    t.String(1, type);
    w.Bytes(22, t.str());
  }
  if (auto it = s.find("items"); it != s.end()) {
    PbWriter items;  // ItemsItem{schema = 1}
    items.Bytes(1, EncodeSchema(*it));
    w.Bytes(23, items.str());
  }
  if (auto it = s.find("allOf"); it != s.end()) {
    for (const auto& sub : *it) w.Bytes(24, EncodeSchema(sub));
  }
  if (auto it = s.find("properties"); it != s.end()) {
    PbWriter props;  // Properties{additional_properties = 1: NamedSchema}
    for (const auto& [name, prop] : it->items()) {
      PbWriter named;
      named.String(1, name);
      named.Bytes(2, EncodeSchema(prop));
      props.Bytes(1, named.str());
    }
    w.Bytes(25, props.str());
  }
  WriteVendorExtensions(w, 31, s);
  return w.str();
}

std::string EncodeParameter(const Json& p) {
  PbWriter param;  // Parameter{body_parameter = 1 | non_body_parameter = 2}
  const std::string in = Str(p, "in");
  if (in == "body") {
    PbWriter body;  // BodyParameter
    body.String(1, Str(p, "description"));
    body.String(2, Str(p, "name"));
    body.String(3, in);
    body.Bool(4, p.value("required", false));
    body.Bytes(5, EncodeSchema(p.at("schema")));
    param.Bytes(1, body.str());
  } else {
    // QueryParameterSubSchema (3) and PathParameterSubSchema (4) share the
    // first four fields; type/format/unique_items sit one apart.
    const bool path = in == "path";
    PbWriter sub;
    sub.Bool(1, p.value("required", false));
    sub.String(2, in);
    sub.String(3, Str(p, "description"));
    sub.String(4, Str(p, "name"));
    sub.String(path ? 5 : 6, Str(p, "type"));
    sub.String(path ? 6 : 7, Str(p, "format"));
    sub.Bool(path ? 19 : 20, p.value("uniqueItems", false));
    PbWriter non_body;  // NonBodyParameter
    non_body.Bytes(path ? 4 : 3, sub.str());
    param.Bytes(2, non_body.str());
  }
  PbWriter item;  // ParametersItem{parameter = 1}
  item.Bytes(1, param.str());
  return item.str();
}

std::string EncodeOperation(const Json& op) {
  PbWriter w;
  for (const auto& t : op.value("tags", Json::array())) w.String(1, t.get<std::string>());
  w.String(3, Str(op, "description"));
  w.String(5, Str(op, "operationId"));
  for (const auto& t : op.value("produces", Json::array())) w.String(6, t.get<std::string>());
  for (const auto& t : op.value("consumes", Json::array())) w.String(7, t.get<std::string>());
  for (const auto& p : op.value("parameters", Json::array())) w.Bytes(8, EncodeParameter(p));
  PbWriter responses;  // Responses{response_code = 1: NamedResponseValue}
  for (const auto& [code, resp] : op.at("responses").items()) {
    PbWriter response;  // Response{description = 1, schema = 2: SchemaItem{schema = 1}}
    response.String(1, Str(resp, "description"));
    if (auto it = resp.find("schema"); it != resp.end()) {
      PbWriter schema_item;
      schema_item.Bytes(1, EncodeSchema(*it));
      response.Bytes(2, schema_item.str());
    }
    PbWriter value;  // ResponseValue{response = 1}
    value.Bytes(1, response.str());
    PbWriter named;
    named.String(1, code);
    named.Bytes(2, value.str());
    responses.Bytes(1, named.str());
  }
  w.Bytes(9, responses.str());
  for (const auto& t : op.value("schemes", Json::array())) w.String(10, t.get<std::string>());
  WriteVendorExtensions(w, 13, op);
  return w.str();
}

std::string EncodeV2Document(const Json& doc) {
  PbWriter w;
  w.String(1, Str(doc, "swagger"));
  PbWriter info;
  info.String(1, Str(doc.at("info"), "title"));
  info.String(2, Str(doc.at("info"), "version"));
  w.Bytes(2, info.str());
  PbWriter paths;  // Paths{path = 2: NamedPathItem}
  static const std::map<std::string, int> kMethodField = {
      {"get", 2}, {"put", 3}, {"post", 4}, {"delete", 5}, {"patch", 8}};
  for (const auto& [path, item] : doc.at("paths").items()) {
    PbWriter path_item;
    for (const auto& [method, field] : kMethodField) {
      if (auto it = item.find(method); it != item.end())
        path_item.Bytes(field, EncodeOperation(*it));
    }
    for (const auto& p : item.value("parameters", Json::array())) {
      path_item.Bytes(9, EncodeParameter(p));
    }
    PbWriter named;
    named.String(1, path);
    named.Bytes(2, path_item.str());
    paths.Bytes(2, named.str());
  }
  w.Bytes(8, paths.str());
  PbWriter defs;  // Definitions{additional_properties = 1: NamedSchema}
  for (const auto& [name, schema] : doc.at("definitions").items()) {
    PbWriter named;
    named.String(1, name);
    named.Bytes(2, EncodeSchema(schema));
    defs.Bytes(1, named.str());
  }
  w.Bytes(9, defs.str());
  return w.str();
}

// ===========================================================================
// Document cache
// ===========================================================================

struct Documents {
  std::map<std::string, std::string, std::less<>> v3;
  std::map<std::string, std::string, std::less<>> v3_hash;
  std::string v3_index;
  std::string v2;
  std::string v2_protobuf;
};

const Documents& AllDocuments() {
  static const Documents docs = [] {
    Documents d;
    Json index_paths = Json::object();
    for (const auto& gv : ServedGroupVersions()) {
      std::string text = V3Document(gv).dump();
      std::string hash = ContentHash(text);
      index_paths[gv.Path()] =
          Json{{"serverRelativeURL", "/openapi/v3/" + gv.Path() + "?hash=" + hash}};
      d.v3[gv.Path()] = std::move(text);
      d.v3_hash[gv.Path()] = std::move(hash);
    }
    d.v3_index = Json{{"paths", std::move(index_paths)}}.dump();
    Json v2 = V2Document();
    d.v2 = v2.dump();
    d.v2_protobuf = EncodeV2Document(v2);
    return d;
  }();
  return docs;
}

std::string_view TrimSlash(std::string_view p) {
  while (!p.empty() && p.front() == '/') p.remove_prefix(1);
  return p;
}

const std::string& Lookup(const std::map<std::string, std::string, std::less<>>& m,
                          std::string_view gv_path) {
  auto it = m.find(TrimSlash(gv_path));
  if (it == m.end()) {
    throw Error::NotFound("the server could not find the requested resource: /openapi/v3/" +
                          std::string(TrimSlash(gv_path)));
  }
  return it->second;
}

// ===========================================================================
// Field validation
// ===========================================================================

// How a schema decodes a value.
struct Shape {
  enum Kind { kStruct, kMap, kArray, kOther } kind = kOther;
  const Json* child = nullptr;  // struct: properties; map: value schema; array: items
};

Shape ShapeOf(const Json& schema) {
  const Json* s = &schema;
  if (auto ref = schema.find("$ref"); ref != schema.end()) {
    s = &StructuralDefinitions().at(ref->get<std::string>());
  }
  if (auto it = s->find("properties"); it != s->end()) return {Shape::kStruct, &*it};
  if (auto it = s->find("additionalProperties"); it != s->end() && it->is_object()) {
    return {Shape::kMap, &*it};
  }
  if (auto it = s->find("items"); it != s->end()) return {Shape::kArray, &*it};
  return {};
}

std::string JoinPath(const std::string& parent, std::string_view key) {
  return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

void WalkUnknown(const Json& schema, const Json& value, const std::string& path,
                 std::vector<std::string>& out) {
  Shape shape = ShapeOf(schema);
  switch (shape.kind) {
    case Shape::kStruct:
      if (!value.is_object()) return;
      for (const auto& [key, child] : value.items()) {
        auto it = shape.child->find(key);
        if (it == shape.child->end()) {
          out.push_back(JoinPath(path, key));
        } else {
          WalkUnknown(*it, child, JoinPath(path, key), out);
        }
      }
      return;
    case Shape::kMap:
      if (!value.is_object()) return;
      for (const auto& [key, child] : value.items()) {
        WalkUnknown(*shape.child, child, JoinPath(path, key), out);
      }
      return;
    case Shape::kArray:
      if (!value.is_array()) return;
      for (size_t i = 0; i < value.size(); ++i) {
        WalkUnknown(*shape.child, value[i], path + "[" + std::to_string(i) + "]", out);
      }
      return;
    case Shape::kOther:
      return;
  }
}

// Strict decoding of raw JSON text, the way sigs.k8s.io/json reports it:
// one pass in document order, remembering the path.
class StrictScanner {
 public:
  enum class Mode {
    kSkip,     // a value nothing is checked in
    kGeneric,  // every object is checked for duplicate keys (no schema)
    kTyped,    // checked against a schema
  };
  struct Finding {
    bool unknown;  // else duplicate
    std::string path;
  };

  explicit StrictScanner(std::string_view text) : text_(text) {}

  void Run(Mode mode, const Json* schema) {
    SkipSpace();
    Value(mode, schema, 0);
  }
  const std::vector<Finding>& findings() const { return findings_; }

 private:
  static constexpr int kMaxDepth = 512;
  static constexpr size_t kMaxFindings = 100;

  char Peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  void SkipSpace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  void Report(bool unknown, std::string_view key) {
    std::string path = JoinPath(path_, key);
    if (findings_.size() >= kMaxFindings) return;
    if (!seen_.insert((unknown ? "u:" : "d:") + path).second) return;
    findings_.push_back({unknown, std::move(path)});
  }

  static void AppendUtf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  bool Hex4(uint32_t* out) {
    if (pos_ + 4 > text_.size()) return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = text_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= c - '0';
      } else if (c >= 'a' && c <= 'f') {
        v |= c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        v |= c - 'A' + 10;
      } else {
        return false;
      }
    }
    *out = v;
    return true;
  }

  // At '"': the unescaped string.
  bool String(std::string* out) {
    if (Peek() != '"') return false;
    ++pos_;
    while (pos_ < text_.size()) {
      char c = text_[pos_++];
      if (c == '"') return true;
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (pos_ >= text_.size()) return false;
      char e = text_[pos_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out->push_back(e);
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'u': {
          uint32_t cp;
          if (!Hex4(&cp)) return false;
          if (cp >= 0xD800 && cp < 0xDC00 && text_.substr(pos_, 2) == "\\u") {
            size_t save = pos_;
            pos_ += 2;
            uint32_t low;
            if (Hex4(&low) && low >= 0xDC00 && low < 0xE000) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            } else {
              pos_ = save;
              cp = 0xFFFD;
            }
          } else if (cp >= 0xD800 && cp < 0xE000) {
            cp = 0xFFFD;
          }
          AppendUtf8(*out, cp);
          break;
        }
        default:
          return false;
      }
    }
    return false;
  }

  bool Literal() {
    size_t start = pos_;
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '-' || c == '+' || c == '.' ||
          c == 'E') {
        ++pos_;
      } else {
        break;
      }
    }
    return pos_ > start;
  }

  bool Value(Mode mode, const Json* schema, int depth) {
    if (depth > kMaxDepth) return false;
    char c = Peek();
    Shape shape;
    if (mode == Mode::kTyped) shape = ShapeOf(*schema);
    if (c == '{') {
      if (mode == Mode::kTyped && shape.kind != Shape::kStruct && shape.kind != Shape::kMap) {
        mode = Mode::kSkip;
      }
      return Object(mode, shape, depth);
    }
    if (c == '[') {
      if (mode == Mode::kTyped && shape.kind != Shape::kArray) mode = Mode::kSkip;
      return Array(mode, shape, depth);
    }
    if (c == '"') {
      std::string ignored;
      return String(&ignored);
    }
    return Literal();
  }

  bool Object(Mode mode, const Shape& shape, int depth) {
    ++pos_;  // '{'
    SkipSpace();
    if (Peek() == '}') {
      ++pos_;
      return true;
    }
    std::set<std::string> keys;
    const size_t parent_len = path_.size();
    for (;;) {
      SkipSpace();
      std::string key;
      if (!String(&key)) return false;
      SkipSpace();
      if (Peek() != ':') return false;
      ++pos_;
      SkipSpace();
      Mode child_mode = Mode::kSkip;
      const Json* child_schema = nullptr;
      bool check_duplicate = false;
      if (mode == Mode::kGeneric) {
        check_duplicate = true;
        child_mode = Mode::kGeneric;
      } else if (mode == Mode::kTyped && shape.kind == Shape::kStruct) {
        auto it = shape.child->find(key);
        if (it == shape.child->end()) {
          Report(/*unknown=*/true, key);
        } else {
          check_duplicate = true;
          child_mode = Mode::kTyped;
          child_schema = &*it;
        }
      } else if (mode == Mode::kTyped && shape.kind == Shape::kMap) {
        check_duplicate = true;
        child_mode = Mode::kTyped;
        child_schema = shape.child;
      }
      if (check_duplicate && !keys.insert(key).second) Report(/*unknown=*/false, key);
      if (mode != Mode::kSkip) path_ = JoinPath(path_, key);
      bool ok = Value(child_mode, child_schema, depth + 1);
      path_.resize(parent_len);
      if (!ok) return false;
      SkipSpace();
      if (Peek() == ',') {
        ++pos_;
        continue;
      }
      if (Peek() == '}') {
        ++pos_;
        return true;
      }
      return false;
    }
  }

  bool Array(Mode mode, const Shape& shape, int depth) {
    ++pos_;  // '['
    SkipSpace();
    if (Peek() == ']') {
      ++pos_;
      return true;
    }
    const size_t parent_len = path_.size();
    for (size_t i = 0;; ++i) {
      SkipSpace();
      if (mode != Mode::kSkip) path_ += "[" + std::to_string(i) + "]";
      bool ok = Value(mode, mode == Mode::kTyped ? shape.child : nullptr, depth + 1);
      path_.resize(parent_len);
      if (!ok) return false;
      SkipSpace();
      if (Peek() == ',') {
        ++pos_;
        continue;
      }
      if (Peek() == ']') {
        ++pos_;
        return true;
      }
      return false;
    }
  }

  std::string_view text_;
  size_t pos_ = 0;
  std::string path_;
  std::vector<Finding> findings_;
  std::set<std::string> seen_;
};

std::string FindingMessage(bool unknown, const std::string& path) {
  return std::string(unknown ? "unknown field " : "duplicate field ") + GoQuote(path);
}

}  // namespace

// ===========================================================================
// Public API
// ===========================================================================

const Json& SchemaDefinitions() {
  static const Json defs = LoadDefinitions();
  return defs;
}

std::string DefinitionName(std::string_view group, std::string_view version,
                           std::string_view kind) {
  const auto& index = KindIndex();
  auto it = index.find(std::string(group) + "/" + std::string(version) + "/" + std::string(kind));
  return it == index.end() ? std::string() : it->second;
}

const std::string& OpenApiV3Index() { return AllDocuments().v3_index; }

const std::string& OpenApiV3Document(std::string_view gv_path) {
  return Lookup(AllDocuments().v3, gv_path);
}

const std::string& OpenApiV3Hash(std::string_view gv_path) {
  return Lookup(AllDocuments().v3_hash, gv_path);
}

const std::string& OpenApiV2() { return AllDocuments().v2; }

const std::string& OpenApiV2Protobuf() { return AllDocuments().v2_protobuf; }

std::vector<std::string> UnknownFields(const std::string& group, const std::string& version,
                                       const std::string& kind, const Json& obj) {
  std::vector<std::string> out;
  std::string name = DefinitionName(group, version, kind);
  if (name.empty()) return out;
  WalkUnknown(Json{{"$ref", name}}, obj, "", out);
  return out;
}

std::vector<std::string> DuplicateFields(std::string_view json_text) {
  StrictScanner scanner(json_text);
  scanner.Run(StrictScanner::Mode::kGeneric, nullptr);
  std::vector<std::string> out;
  for (const auto& f : scanner.findings()) out.push_back(f.path);
  return out;
}

std::vector<std::string> StrictDecodingErrors(const std::string& group, const std::string& version,
                                              const std::string& kind, std::string_view json_text) {
  StrictScanner scanner(json_text);
  std::string name = DefinitionName(group, version, kind);
  if (name.empty()) {
    scanner.Run(StrictScanner::Mode::kGeneric, nullptr);
  } else {
    Json root{{"$ref", name}};
    scanner.Run(StrictScanner::Mode::kTyped, &root);
  }
  std::vector<std::string> out;
  for (const auto& f : scanner.findings()) out.push_back(FindingMessage(f.unknown, f.path));
  return out;
}

std::vector<std::string> UnknownFieldErrors(const std::string& group, const std::string& version,
                                            const std::string& kind, const Json& obj) {
  std::vector<std::string> out;
  for (const auto& path : UnknownFields(group, version, kind, obj)) {
    if (out.size() >= 100) break;
    out.push_back(FindingMessage(true, path));
  }
  return out;
}

std::string StrictDecodingMessage(const std::vector<std::string>& errors) {
  std::string msg = "strict decoding error: ";
  for (size_t i = 0; i < errors.size(); ++i) {
    if (i > 0) msg += ", ";
    msg += errors[i];
  }
  return msg;
}

Error StrictDecodingBodyError(std::string_view body_kind, std::string_view body_version,
                              std::string_view kind, const std::vector<std::string>& errors) {
  return Error::BadRequest(std::string(body_kind) + " in version " + GoQuote(body_version) +
                           " cannot be handled as a " + std::string(kind) + ": " +
                           StrictDecodingMessage(errors));
}

Error StrictDecodingPatchError(const std::vector<std::string>& errors) {
  return Error::BadRequest(StrictDecodingMessage(errors));
}

std::string WarningHeaderValue(std::string_view text) { return "299 - " + GoQuote(text); }

}  // namespace kin::apiserver
