#include "apiserver/patch.h"

#include <algorithm>
#include <cstddef>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "base/error.h"

namespace kin::apiserver {
namespace {

// ===========================================================================
// The schema table.
//
// Source: the struct tags of k8s.io/api (staging/src/k8s.io/api/core/v1/
// types.go, apps/v1/types.go, batch/v1/types.go) and
// k8s.io/apimachinery/pkg/apis/meta/v1/types.go:
//   patchStrategy:"merge" patchMergeKey:"..."     -> smp_merge, smp_key
//   patchStrategy:"merge,retainKeys"              -> smp_retain_keys too
//   +listType=map +listMapKey=... (+default)      -> list = kMap, keys
//   +listType=set                                 -> list = kSet
//   +structType=atomic / +mapType=atomic          -> atomic
// Lists without a listType are atomic for apply and replaced by SMP.
// Notable rows: Container.ports (SMP key containerPort; apply keys
// containerPort+protocol, protocol defaulting to "TCP"); Service ports (SMP
// key port; apply keys port+protocol); topologySpreadConstraints (SMP key
// topologyKey; apply keys topologyKey+whenUnsatisfiable); PodStatus.hostIPs
// and JobStatus.conditions (SMP merge by ip/type, but listType=atomic);
// tolerations, readinessGates, envFrom, taints, Endpoints subsets (atomic:
// replaced). metav1.LabelSelector is structType=atomic.
// ===========================================================================

enum class ListType { kAtomic, kMap, kSet };

struct TypeSchema;

struct MapKey {
  std::string name;
  Json default_value;  // null: no default
};

struct FieldSchema {
  const TypeSchema* type = nullptr;  // the value's type; for lists, each item's
  bool atomic = false;               // apply: a map/struct owned as a whole
  ListType list = ListType::kAtomic;
  std::vector<MapKey> keys;  // apply: listMapKeys of a kMap list
  bool smp_merge = false;    // patchStrategy includes "merge"
  // patchStrategy includes "retainKeys". Recorded for completeness: like
  // Kubernetes, application honours a $retainKeys directive wherever the
  // patch carries one (kubectl only sends it for these fields).
  bool smp_retain_keys = false;
  std::string smp_key;  // patchMergeKey
};

struct TypeSchema {
  std::map<std::string, FieldSchema> fields;
};

FieldSchema Struct(const TypeSchema* t) {
  FieldSchema f;
  f.type = t;
  return f;
}

FieldSchema AtomicStruct() {
  FieldSchema f;
  f.atomic = true;
  return f;
}

// A list merged by key for both SMP and apply.
FieldSchema KeyedList(const TypeSchema* item, std::string smp_key, std::vector<MapKey> keys,
                      bool retain_keys = false) {
  FieldSchema f;
  f.type = item;
  f.list = ListType::kMap;
  f.keys = std::move(keys);
  f.smp_merge = true;
  f.smp_key = std::move(smp_key);
  f.smp_retain_keys = retain_keys;
  return f;
}

FieldSchema KeyedList(const TypeSchema* item, const std::string& key, bool retain_keys = false) {
  return KeyedList(item, key, {{key, nullptr}}, retain_keys);
}

// SMP merges by key but apply treats the list as atomic (listType=atomic).
FieldSchema SmpOnlyKeyedList(std::string smp_key) {
  FieldSchema f;
  f.smp_merge = true;
  f.smp_key = std::move(smp_key);
  return f;
}

// Apply merges by key, SMP replaces (no patchStrategy tag).
FieldSchema ApplyOnlyKeyedList(const std::string& key) {
  FieldSchema f;
  f.list = ListType::kMap;
  f.keys = {{key, nullptr}};
  return f;
}

FieldSchema PrimitiveSet() {
  FieldSchema f;
  f.list = ListType::kSet;
  f.smp_merge = true;
  return f;
}

struct Schemas {
  TypeSchema object_meta, env_var_source, env_var, resources, container, topology_spread, pod_spec,
      pod_status, pod_template_spec, pod, pod_template, conditions_status, job_status, rc_spec, rc,
      deployment_spec, deployment, workload_spec, workload, job_spec, job, job_template,
      cronjob_spec, cronjob, service_spec, service_status, service, node_spec, node_status, node,
      namespace_, pvc_spec, pvc, service_account, webhook, webhook_configuration, generic;
};

const Schemas* BuildSchemas() {
  auto* s = new Schemas;
  s->object_meta.fields = {
      {"ownerReferences", KeyedList(nullptr, "uid")},
      {"finalizers", PrimitiveSet()},
  };
  s->env_var_source.fields = {
      {"fieldRef", AtomicStruct()},
      {"resourceFieldRef", AtomicStruct()},
      {"configMapKeyRef", AtomicStruct()},
      {"secretKeyRef", AtomicStruct()},
  };
  s->env_var.fields = {{"valueFrom", Struct(&s->env_var_source)}};
  s->resources.fields = {{"claims", ApplyOnlyKeyedList("name")}};
  s->container.fields = {
      {"ports",
       KeyedList(nullptr, "containerPort", {{"containerPort", nullptr}, {"protocol", "TCP"}})},
      {"env", KeyedList(&s->env_var, "name")},
      {"volumeMounts", KeyedList(nullptr, "mountPath")},
      {"volumeDevices", KeyedList(nullptr, "devicePath")},
      {"resources", Struct(&s->resources)},
  };
  s->topology_spread.fields = {{"labelSelector", AtomicStruct()}};
  s->pod_spec.fields = {
      {"volumes", KeyedList(nullptr, "name", /*retain_keys=*/true)},
      {"initContainers", KeyedList(&s->container, "name")},
      {"containers", KeyedList(&s->container, "name")},
      {"ephemeralContainers", KeyedList(&s->container, "name")},
      {"imagePullSecrets", KeyedList(nullptr, "name")},
      {"hostAliases", KeyedList(nullptr, "ip")},
      {"topologySpreadConstraints",
       KeyedList(&s->topology_spread, "topologyKey",
                 {{"topologyKey", nullptr}, {"whenUnsatisfiable", nullptr}})},
      {"schedulingGates", KeyedList(nullptr, "name")},
      {"resourceClaims", KeyedList(nullptr, "name", /*retain_keys=*/true)},
      {"nodeSelector", AtomicStruct()},
  };
  s->pod_status.fields = {
      {"conditions", KeyedList(nullptr, "type")},
      {"podIPs", KeyedList(nullptr, "ip")},
      {"hostIPs", SmpOnlyKeyedList("ip")},
      {"resourceClaimStatuses", KeyedList(nullptr, "name", /*retain_keys=*/true)},
  };
  s->pod_template_spec.fields = {
      {"metadata", Struct(&s->object_meta)},
      {"spec", Struct(&s->pod_spec)},
  };
  s->pod.fields = {
      {"metadata", Struct(&s->object_meta)},
      {"spec", Struct(&s->pod_spec)},
      {"status", Struct(&s->pod_status)},
  };
  s->pod_template.fields = {
      {"metadata", Struct(&s->object_meta)},
      {"template", Struct(&s->pod_template_spec)},
  };
  s->conditions_status.fields = {{"conditions", KeyedList(nullptr, "type")}};
  s->job_status.fields = {{"conditions", SmpOnlyKeyedList("type")}};
  s->rc_spec.fields = {
      {"selector", AtomicStruct()},
      {"template", Struct(&s->pod_template_spec)},
  };
  s->rc.fields = {
      {"metadata", Struct(&s->object_meta)},
      {"spec", Struct(&s->rc_spec)},
      {"status", Struct(&s->conditions_status)},
  };
  FieldSchema strategy;  // DeploymentSpec.strategy: patchStrategy:"retainKeys"
  strategy.smp_retain_keys = true;
  s->deployment_spec.fields = {
      {"selector", AtomicStruct()},
      {"template", Struct(&s->pod_template_spec)},
      {"strategy", strategy},
  };
  s->deployment.fields = {
      {"metadata", Struct(&s->object_meta)},
      {"spec", Struct(&s->deployment_spec)},
      {"status", Struct(&s->conditions_status)},
  };
  s->workload_spec.fields = {
      {"selector", AtomicStruct()},
      {"template", Struct(&s->pod_template_spec)},
  };
  s->workload.fields = {
      {"metadata", Struct(&s->object_meta)},
      {"spec", Struct(&s->workload_spec)},
      {"status", Struct(&s->conditions_status)},
  };
  s->job_spec.fields = {
      {"selector", AtomicStruct()},
      {"template", Struct(&s->pod_template_spec)},
  };
  s->job.fields = {
      {"metadata", Struct(&s->object_meta)},
      {"spec", Struct(&s->job_spec)},
      {"status", Struct(&s->job_status)},
  };
  s->job_template.fields = {
      {"metadata", Struct(&s->object_meta)},
      {"spec", Struct(&s->job_spec)},
  };
  s->cronjob_spec.fields = {{"jobTemplate", Struct(&s->job_template)}};
  s->cronjob.fields = {
      {"metadata", Struct(&s->object_meta)},
      {"spec", Struct(&s->cronjob_spec)},
  };
  s->service_spec.fields = {
      {"ports", KeyedList(nullptr, "port", {{"port", nullptr}, {"protocol", "TCP"}})},
      {"selector", AtomicStruct()},
  };
  s->service_status.fields = {{"conditions", KeyedList(nullptr, "type")}};
  s->service.fields = {
      {"metadata", Struct(&s->object_meta)},
      {"spec", Struct(&s->service_spec)},
      {"status", Struct(&s->service_status)},
  };
  s->node_spec.fields = {{"podCIDRs", PrimitiveSet()}};
  s->node_status.fields = {
      {"conditions", KeyedList(nullptr, "type")},
      {"addresses", KeyedList(nullptr, "type")},
  };
  s->node.fields = {
      {"metadata", Struct(&s->object_meta)},
      {"spec", Struct(&s->node_spec)},
      {"status", Struct(&s->node_status)},
  };
  s->namespace_.fields = {
      {"metadata", Struct(&s->object_meta)},
      {"status", Struct(&s->conditions_status)},
  };
  s->pvc_spec.fields = {{"selector", AtomicStruct()}};
  s->pvc.fields = {
      {"metadata", Struct(&s->object_meta)},
      {"spec", Struct(&s->pvc_spec)},
      {"status", Struct(&s->conditions_status)},
  };
  s->service_account.fields = {
      {"metadata", Struct(&s->object_meta)},
      {"secrets", KeyedList(nullptr, "name")},
  };
  // admissionregistration/v1: webhooks and their matchConditions merge by
  // name (patchMergeKey, listMapKey).
  s->webhook.fields = {{"matchConditions", KeyedList(nullptr, "name")}};
  s->webhook_configuration.fields = {
      {"metadata", Struct(&s->object_meta)},
      {"webhooks", KeyedList(&s->webhook, "name")},
  };
  s->generic.fields = {{"metadata", Struct(&s->object_meta)}};
  return s;
}

const TypeSchema* RootType(const std::string& group, const std::string& kind) {
  static const Schemas* s = BuildSchemas();
  static const std::map<std::pair<std::string, std::string>, const TypeSchema*> roots = {
      {{"", "Pod"}, &s->pod},
      {{"", "PodTemplate"}, &s->pod_template},
      {{"", "ReplicationController"}, &s->rc},
      {{"", "Service"}, &s->service},
      {{"", "Node"}, &s->node},
      {{"", "Namespace"}, &s->namespace_},
      {{"", "PersistentVolumeClaim"}, &s->pvc},
      {{"", "ServiceAccount"}, &s->service_account},
      {{"apps", "Deployment"}, &s->deployment},
      {{"apps", "ReplicaSet"}, &s->workload},
      {{"apps", "DaemonSet"}, &s->workload},
      {{"apps", "StatefulSet"}, &s->workload},
      {{"batch", "Job"}, &s->job},
      {{"batch", "CronJob"}, &s->cronjob},
      {{"admissionregistration.k8s.io", "MutatingWebhookConfiguration"},
       &s->webhook_configuration},
      {{"admissionregistration.k8s.io", "ValidatingWebhookConfiguration"},
       &s->webhook_configuration},
  };
  auto it = roots.find({group, kind});
  return it == roots.end() ? &s->generic : it->second;
}

const FieldSchema* Lookup(const TypeSchema* type, const std::string& key) {
  if (type == nullptr) return nullptr;
  auto it = type->fields.find(key);
  return it == type->fields.end() ? nullptr : &it->second;
}

// The schema of a child field of the value described by `f`.
const FieldSchema* Child(const FieldSchema* f, const std::string& key) {
  return f == nullptr ? nullptr : Lookup(f->type, key);
}

bool IsAtomic(const FieldSchema* f) { return f != nullptr && f->atomic; }
ListType ListKind(const FieldSchema* f) { return f == nullptr ? ListType::kAtomic : f->list; }

// Items of a list have the list's element type and no list semantics.
FieldSchema ItemSchema(const FieldSchema* list) {
  FieldSchema item;
  if (list != nullptr) item.type = list->type;
  return item;
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// obj[key] when it is a string, else "".
std::string StringField(const Json& obj, const char* key) {
  if (!obj.is_object()) return "";
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : "";
}

// Go's %q for the strings we print (manager names, keys).
std::string Quote(const std::string& s) { return Json(s).dump(); }

// ===========================================================================
// JSON merge patch (RFC 7386)
// ===========================================================================

void MergePatchInto(Json& target, const Json& patch) {
  for (const auto& [key, value] : patch.items()) {
    if (value.is_null()) {
      target.erase(key);
    } else if (value.is_object()) {
      auto it = target.find(key);
      if (it == target.end() || !it->is_object()) {
        target[key] = Json::object();
        it = target.find(key);
      }
      MergePatchInto(*it, value);
    } else {
      target[key] = value;
    }
  }
}

// ===========================================================================
// JSON patch (RFC 6902)
// ===========================================================================

constexpr size_t kMaxJsonPatchOperations = 10000;

struct Pointer {
  std::string text;
  std::vector<std::string> tokens;
};

Pointer ParsePointer(const std::string& op, const std::string& member, const std::string& text) {
  Pointer p{text, {}};
  if (text.empty()) return p;
  if (text[0] != '/') {
    throw Error::BadRequest("jsonpatch " + op + " operation: " + member + " " + Quote(text) +
                            " is not a JSON pointer (it must start with '/')");
  }
  std::string token;
  for (size_t i = 1; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == '/') {
      p.tokens.push_back(std::move(token));
      token.clear();
    } else if (text[i] == '~') {
      if (i + 1 < text.size() && (text[i + 1] == '0' || text[i + 1] == '1')) {
        token += text[i + 1] == '0' ? '~' : '/';
        ++i;
      } else {
        throw Error::BadRequest("jsonpatch " + op + " operation: " + member + " " + Quote(text) +
                                " has an invalid escape (only ~0 and ~1 are allowed)");
      }
    } else {
      token += text[i];
    }
  }
  return p;
}

// An array index as RFC 6901 spells it: "0" or digits without a leading zero.
std::optional<size_t> ParseIndex(const std::string& token) {
  if (token.empty() || token.size() > 9) return std::nullopt;
  if (token.size() > 1 && token[0] == '0') return std::nullopt;
  size_t n = 0;
  for (char c : token) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<size_t>(c - '0');
  }
  return n;
}

// The value at tokens[0, count), or nullptr when it does not exist.
Json* Resolve(Json& doc, const std::vector<std::string>& tokens, size_t count) {
  Json* cur = &doc;
  for (size_t i = 0; i < count; ++i) {
    const std::string& t = tokens[i];
    if (cur->is_object()) {
      auto it = cur->find(t);
      if (it == cur->end()) return nullptr;
      cur = &*it;
    } else if (cur->is_array()) {
      auto idx = ParseIndex(t);
      if (!idx || *idx >= cur->size()) return nullptr;
      cur = &(*cur)[*idx];
    } else {
      return nullptr;
    }
  }
  return cur;
}

[[noreturn]] void DoesNotApply(const std::string& op, const std::string& what) {
  throw Error::Invalid("jsonpatch " + op + " operation does not apply: " + what);
}

void JsonPatchAdd(Json& doc, const Pointer& path, Json value, const std::string& op) {
  if (path.tokens.empty()) {
    doc = std::move(value);
    return;
  }
  Json* parent = Resolve(doc, path.tokens, path.tokens.size() - 1);
  const std::string& last = path.tokens.back();
  if (parent != nullptr && parent->is_object()) {
    (*parent)[last] = std::move(value);
  } else if (parent != nullptr && parent->is_array()) {
    if (last == "-") {
      parent->push_back(std::move(value));
      return;
    }
    auto idx = ParseIndex(last);
    if (!idx || *idx > parent->size()) {
      DoesNotApply(op, "index " + Quote(last) + " is out of range for an array of length " +
                           std::to_string(parent->size()) + " at path: " + path.text);
    }
    parent->insert(parent->begin() + static_cast<std::ptrdiff_t>(*idx), std::move(value));
  } else {
    DoesNotApply(op, "doc is missing path: " + path.text);
  }
}

Json JsonPatchRemove(Json& doc, const Pointer& path, const std::string& op) {
  if (path.tokens.empty()) DoesNotApply(op, "cannot remove the whole document");
  Json* parent = Resolve(doc, path.tokens, path.tokens.size() - 1);
  const std::string& last = path.tokens.back();
  if (parent != nullptr && parent->is_object()) {
    auto it = parent->find(last);
    if (it != parent->end()) {
      Json removed = std::move(*it);
      parent->erase(it);
      return removed;
    }
  } else if (parent != nullptr && parent->is_array()) {
    auto idx = ParseIndex(last);
    if (idx && *idx < parent->size()) {
      Json removed = std::move((*parent)[*idx]);
      parent->erase(*idx);
      return removed;
    }
  }
  DoesNotApply(op, "doc is missing path: " + path.text);
}

void ApplyOneOp(Json& doc, const Json& op, size_t index) {
  auto bad = [&](const std::string& what) {
    throw Error::BadRequest("jsonpatch operation " + std::to_string(index) + ": " + what);
  };
  if (!op.is_object()) bad("must be a JSON object, got " + op.dump());
  auto op_it = op.find("op");
  if (op_it == op.end() || !op_it->is_string()) bad("missing \"op\"");
  const std::string name = op_it->get<std::string>();
  static const std::unordered_set<std::string> kOps = {"add",  "remove", "replace",
                                                       "move", "copy",   "test"};
  if (!kOps.count(name)) bad("unknown op " + Quote(name));
  auto path_it = op.find("path");
  if (path_it == op.end() || !path_it->is_string()) bad(name + " operation is missing \"path\"");
  Pointer path = ParsePointer(name, "path", path_it->get<std::string>());
  std::optional<Pointer> from;
  if (name == "move" || name == "copy") {
    auto from_it = op.find("from");
    if (from_it == op.end() || !from_it->is_string()) {
      bad(name + " operation is missing \"from\"");
    }
    from = ParsePointer(name, "from", from_it->get<std::string>());
  }
  auto value_it = op.find("value");
  if ((name == "add" || name == "replace" || name == "test") && value_it == op.end()) {
    bad(name + " operation is missing \"value\"");
  }

  if (name == "add") {
    JsonPatchAdd(doc, path, *value_it, name);
  } else if (name == "remove") {
    JsonPatchRemove(doc, path, name);
  } else if (name == "replace") {
    Json* target = Resolve(doc, path.tokens, path.tokens.size());
    if (target == nullptr) DoesNotApply(name, "doc is missing key: " + path.text);
    *target = *value_it;
  } else if (name == "move") {
    if (from->text == path.text) {
      if (Resolve(doc, from->tokens, from->tokens.size()) == nullptr) {
        DoesNotApply(name, "doc is missing from path: " + from->text);
      }
      return;
    }
    if (StartsWith(path.text, from->text + "/")) {
      DoesNotApply(name, "cannot move " + from->text + " into its own child " + path.text);
    }
    if (Resolve(doc, from->tokens, from->tokens.size()) == nullptr) {
      DoesNotApply(name, "doc is missing from path: " + from->text);
    }
    Json value = JsonPatchRemove(doc, *from, name);
    JsonPatchAdd(doc, path, std::move(value), name);
  } else if (name == "copy") {
    Json* source = Resolve(doc, from->tokens, from->tokens.size());
    if (source == nullptr) DoesNotApply(name, "doc is missing from path: " + from->text);
    JsonPatchAdd(doc, path, *source, name);
  } else {  // test
    Json* target = Resolve(doc, path.tokens, path.tokens.size());
    if (target == nullptr) DoesNotApply(name, "doc is missing path: " + path.text);
    if (*target != *value_it) DoesNotApply(name, "testing value " + path.text + " failed");
  }
}

// ===========================================================================
// Strategic merge patch
// ===========================================================================

constexpr char kDirective[] = "$patch";
constexpr char kRetainKeys[] = "$retainKeys";
constexpr std::string_view kSetElementOrder = "$setElementOrder/";
constexpr std::string_view kDeleteFromPrimitiveList = "$deleteFromPrimitiveList/";

enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };

Kind KindOf(const Json& v) {
  if (v.is_object()) return Kind::kObject;
  if (v.is_array()) return Kind::kArray;
  if (v.is_string()) return Kind::kString;
  if (v.is_number()) return Kind::kNumber;
  if (v.is_boolean()) return Kind::kBool;
  return Kind::kNull;
}

[[noreturn]] void NoMergeKey(const Json& item, const std::string& key) {
  throw Error::BadRequest("map: " + item.dump() + " does not contain declared merge key: " + key);
}

// The identity of a list item: its merge key's value for maps, itself for
// primitives.
std::string ItemIdentity(const Json& item, const std::string& merge_key, bool is_map) {
  if (!is_map) return item.dump();
  if (!item.is_object()) {
    throw Error::BadRequest("list item " + item.dump() + " is not a map, but the list merges by " +
                            merge_key);
  }
  auto it = item.find(merge_key);
  if (it == item.end()) NoMergeKey(item, merge_key);
  return it->dump();
}

using Positions = std::unordered_map<std::string, size_t>;

Positions PositionsOf(const Json& list, const std::string& merge_key, bool is_map) {
  Positions pos;
  for (size_t i = 0; i < list.size(); ++i) {
    pos.emplace(ItemIdentity(list[i], merge_key, is_map), i);
  }
  return pos;
}

// Stable sort of `items` by their position in `order` (all are present).
void SortByOrder(std::vector<Json>& items, const Positions& order, const std::string& merge_key,
                 bool is_map) {
  std::vector<std::pair<size_t, size_t>> keyed;
  keyed.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    auto it = order.find(ItemIdentity(items[i], merge_key, is_map));
    keyed.emplace_back(it == order.end() ? order.size() : it->second, i);
  }
  std::stable_sort(keyed.begin(), keyed.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Json> sorted;
  sorted.reserve(items.size());
  for (const auto& [unused, i] : keyed) sorted.push_back(std::move(items[i]));
  items = std::move(sorted);
}

// normalizeElementOrder + mergeSortedSlice of strategicpatch: patch items in
// patch (or $setElementOrder) order, server-only items in live order, and the
// two interleaved: a server-only item goes before a patch item only when both
// are in the live list and it came first there (so items new to the list
// precede the server-only items, as in Kubernetes).
Json NormalizeElementOrder(std::vector<Json> patch_items, std::vector<Json> server_only,
                           const Positions& patch_pos, const Positions& server_pos,
                           const std::string& merge_key, bool is_map) {
  SortByOrder(patch_items, patch_pos, merge_key, is_map);
  SortByOrder(server_only, server_pos, merge_key, is_map);
  auto pos = [&](const Json& item) -> std::optional<size_t> {
    auto it = server_pos.find(ItemIdentity(item, merge_key, is_map));
    if (it == server_pos.end()) return std::nullopt;
    return it->second;
  };
  Json out = Json::array();
  size_t i = 0, j = 0;
  while (i < server_only.size() || j < patch_items.size()) {
    if (i >= server_only.size()) {
      out.push_back(std::move(patch_items[j++]));
    } else if (j >= patch_items.size()) {
      out.push_back(std::move(server_only[i++]));
    } else {
      auto li = pos(server_only[i]);
      auto ri = pos(patch_items[j]);
      if (li && ri && *li < *ri) {
        out.push_back(std::move(server_only[i++]));
      } else {
        out.push_back(std::move(patch_items[j++]));
      }
    }
  }
  return out;
}

// Moves the items of `list` into those present in `by` and the others.
void Partition(Json& list, const Json& by, const std::string& merge_key, bool is_map,
               std::vector<Json>& present, std::vector<Json>& absent) {
  Positions in_by = PositionsOf(by, merge_key, is_map);
  for (Json& item : list) {
    if (in_by.count(ItemIdentity(item, merge_key, is_map))) {
      present.push_back(std::move(item));
    } else {
      absent.push_back(std::move(item));
    }
  }
}

// Whether the items of `lists` are maps; rejects lists of lists and mixed
// lists. nullopt when all are empty.
std::optional<bool> ItemsAreMaps(std::initializer_list<const Json*> lists) {
  std::optional<Kind> kind;
  for (const Json* list : lists) {
    for (const Json& item : *list) {
      Kind k = KindOf(item);
      if (k == Kind::kArray) throw Error::Invalid("lists of lists are not supported");
      if (kind && *kind != k) {
        throw Error::BadRequest("list element types are not identical: " + list->dump());
      }
      kind = k;
    }
  }
  if (!kind) return std::nullopt;
  return *kind == Kind::kObject;
}

Json DeleteFromList(const Json& current, const Json& to_delete) {
  std::unordered_set<std::string> gone;
  for (const Json& v : to_delete) gone.insert(v.dump());
  Json out = Json::array();
  for (const Json& v : current) {
    if (!gone.count(v.dump())) out.push_back(v);
  }
  return out;
}

void DiscardNulls(Json& v) {
  if (v.is_object()) {
    for (auto it = v.begin(); it != v.end();) {
      if (it->is_null()) {
        it = v.erase(it);
      } else {
        DiscardNulls(*it);
        ++it;
      }
    }
  } else if (v.is_array()) {
    for (Json& item : v) DiscardNulls(item);
  }
}

Json SmpMergeMap(Json original, Json patch, const TypeSchema* type);
Json SmpMergeList(Json original, const Json& patch, const FieldSchema* f);

// A patch value for a key the original lacks: merged into nothing, so its
// directives are applied and its nulls dropped.
Json SmpNewValue(const Json& patch, const FieldSchema* f) {
  if (patch.is_object()) return SmpMergeMap(Json::object(), patch, f ? f->type : nullptr);
  if (patch.is_array()) {
    if (f != nullptr && f->smp_merge) return SmpMergeList(Json::array(), patch, f);
    Json copy = patch;
    DiscardNulls(copy);
    return copy;
  }
  return patch;
}

// mergeSlice of strategicpatch, for a list field with the merge strategy.
Json SmpMergeList(Json original, const Json& patch, const FieldSchema* f) {
  auto maps = ItemsAreMaps({&original, &patch});
  if (!maps) return original;
  const bool is_map = *maps;
  const std::string merge_key = is_map ? f->smp_key : "";
  if (is_map && merge_key.empty()) {
    throw Error::BadRequest("cannot merge lists of maps without a merge key");
  }

  if (!is_map) {
    // Primitives merge as an ordered set.
    std::vector<Json> patch_items, server_only;
    std::unordered_set<std::string> seen;
    for (const Json& v : patch) {
      if (seen.insert(v.dump()).second) patch_items.push_back(v);
    }
    for (const Json& v : original) {
      if (seen.insert(v.dump()).second) server_only.push_back(v);
    }
    return NormalizeElementOrder(std::move(patch_items), std::move(server_only),
                                 PositionsOf(patch, merge_key, false),
                                 PositionsOf(original, merge_key, false), merge_key, false);
  }

  // Directive items first: $patch: delete removes by key, $patch: replace
  // makes the rest of the patch list the whole list.
  Json plain = Json::array();
  bool replace = false;
  for (const Json& item : patch) {
    auto d = item.find(kDirective);
    if (d == item.end()) {
      plain.push_back(item);
    } else if (*d == "delete") {
      auto key = item.find(merge_key);
      if (key == item.end()) NoMergeKey(item, merge_key);
      Json kept = Json::array();
      for (Json& o : original) {
        auto ok = o.is_object() ? o.find(merge_key) : o.end();
        if (!o.is_object() || ok == o.end() || *ok != *key) kept.push_back(std::move(o));
      }
      original = std::move(kept);
    } else if (*d == "replace") {
      replace = true;
    } else if (*d == "merge") {
      throw Error::BadRequest("merging lists cannot yet be specified in the patch");
    } else {
      throw Error::BadRequest("unknown patch type: " + d->dump() + " in map: " + item.dump());
    }
  }
  FieldSchema item_schema = ItemSchema(f);
  if (replace) {
    Json replaced = Json::array();
    for (const Json& item : plain) replaced.push_back(SmpNewValue(item, &item_schema));
    original = std::move(replaced);
    plain = Json::array();
  }

  Positions server_pos = PositionsOf(original, merge_key, true);
  Positions merged_pos = server_pos;
  Json merged = std::move(original);
  for (const Json& item : plain) {
    std::string id = ItemIdentity(item, merge_key, true);
    auto it = merged_pos.find(id);
    if (it != merged_pos.end()) {
      merged[it->second] = SmpMergeMap(std::move(merged[it->second]), item, item_schema.type);
    } else {
      merged_pos.emplace(id, merged.size());
      merged.push_back(SmpNewValue(item, &item_schema));
    }
  }
  std::vector<Json> patch_items, server_only;
  Partition(merged, plain, merge_key, true, patch_items, server_only);
  return NormalizeElementOrder(std::move(patch_items), std::move(server_only),
                               PositionsOf(plain, merge_key, true), server_pos, merge_key, true);
}

// mergeSliceHandler: lists with the merge strategy merge, others are replaced.
Json SmpMergeListField(Json original, const Json& patch, const FieldSchema* f) {
  if (f != nullptr && f->smp_merge) return SmpMergeList(std::move(original), patch, f);
  return patch;
}

bool IsDirectiveKey(const std::string& k) {
  return StartsWith(k, kSetElementOrder) || StartsWith(k, kDeleteFromPrimitiveList);
}

void ApplyRetainKeys(Json& original, Json& patch) {
  auto it = patch.find(kRetainKeys);
  if (it == patch.end()) return;
  Json retain = std::move(*it);
  patch.erase(it);
  if (!retain.is_array()) throw Error::BadRequest("invalid patch format of retainKeys");
  std::unordered_set<std::string> keep;
  for (const Json& k : retain) {
    if (!k.is_string()) throw Error::BadRequest("invalid patch format of retainKeys");
    keep.insert(k.get<std::string>());
  }
  for (const auto& [k, v] : patch.items()) {
    if (v.is_null() || IsDirectiveKey(k)) continue;
    if (!keep.count(k)) {
      throw Error::Invalid("patch content doesn't match retainKeys list: " + Quote(k) +
                           " is not in " + retain.dump());
    }
  }
  for (auto o = original.begin(); o != original.end();) {
    if (!keep.count(o.key())) {
      o = original.erase(o);
    } else {
      ++o;
    }
  }
}

// validatePatchWithSetOrderList: the patch list's items (deletions aside)
// must appear in the $setElementOrder list, in the same relative order.
void ValidateSetOrder(const Json& patch_list, const Json& order, const std::string& merge_key,
                      bool is_map) {
  size_t o = 0;
  for (const Json& item : patch_list) {
    if (is_map && item.is_object() && item.contains(kDirective)) continue;
    std::string id = ItemIdentity(item, merge_key, is_map);
    while (o < order.size() && ItemIdentity(order[o], merge_key, is_map) != id) ++o;
    if (o == order.size()) {
      throw Error::BadRequest("the order in patch list " + patch_list.dump() +
                              " doesn't match $setElementOrder list " + order.dump());
    }
    ++o;
  }
}

void ApplySetElementOrder(Json& original, Json& patch, const std::string& directive,
                          const TypeSchema* type) {
  Json order = std::move(patch[directive]);
  patch.erase(directive);
  const std::string key = directive.substr(kSetElementOrder.size());
  if (!order.is_array() || key.empty()) {
    throw Error::BadRequest("invalid patch format of setElementOrder list");
  }
  const FieldSchema* f = Lookup(type, key);
  auto orig_it = original.find(key);
  const bool found_original = orig_it != original.end() && orig_it->is_array();
  auto patch_it = patch.find(key);
  const bool found_patch = patch_it != patch.end();
  if (found_patch && !patch_it->is_array()) {
    throw Error::BadRequest("invalid patch format of setElementOrder list: " + Quote(key) +
                            " is not a list");
  }
  const Json empty = Json::array();
  const Json& original_list = found_original ? *orig_it : empty;
  const Json& patch_list = found_patch ? *patch_it : empty;
  auto maps = ItemsAreMaps({&original_list, &patch_list, &order});
  const bool is_map = maps.value_or(false);
  const std::string merge_key = f != nullptr ? f->smp_key : "";
  const bool can_order = !(is_map && merge_key.empty());
  if (can_order) ValidateSetOrder(patch_list, order, merge_key, is_map);

  Json merged;
  if (found_original && !found_patch) {
    merged = original_list;
  } else if (!found_original && found_patch) {
    merged = SmpNewValue(patch_list, f);
  } else if (found_original && found_patch) {
    merged = SmpMergeListField(original_list, patch_list, f);
  } else {
    return;
  }
  if (can_order && maps) {
    std::vector<Json> patch_items, server_only;
    Partition(merged, order, merge_key, is_map, patch_items, server_only);
    merged = NormalizeElementOrder(
        std::move(patch_items), std::move(server_only), PositionsOf(order, merge_key, is_map),
        PositionsOf(original_list, merge_key, is_map), merge_key, is_map);
  }
  original[key] = std::move(merged);
  patch.erase(key);
}

// mergeMap of strategicpatch (MergeParallelList and IgnoreUnmatchedNulls on).
Json SmpMergeMap(Json original, Json patch, const TypeSchema* type) {
  if (auto d = patch.find(kDirective); d != patch.end()) {
    if (*d == "replace") {
      patch.erase(d);
      return SmpMergeMap(Json::object(), std::move(patch), type);
    }
    if (*d == "delete") return Json::object();
    if (*d != "merge") {
      throw Error::BadRequest("unknown patch type: " + d->dump() + " in map: " + patch.dump());
    }
    patch.erase(d);
  }
  if (!original.is_object()) original = Json::object();

  ApplyRetainKeys(original, patch);

  std::vector<std::string> directives;
  for (const auto& [k, v] : patch.items()) {
    if (IsDirectiveKey(k)) directives.push_back(k);
  }
  for (const std::string& k : directives) {
    if (StartsWith(k, kSetElementOrder)) ApplySetElementOrder(original, patch, k, type);
  }
  for (const std::string& k : directives) {
    if (!StartsWith(k, kDeleteFromPrimitiveList)) continue;
    const Json& values = patch[k];
    const std::string key = k.substr(kDeleteFromPrimitiveList.size());
    if (!values.is_array() || key.empty()) {
      throw Error::BadRequest("invalid patch format of primitive list");
    }
    auto it = original.find(key);
    if (it != original.end() && it->is_array()) *it = DeleteFromList(*it, values);
    patch.erase(k);
  }

  for (auto& [k, v] : patch.items()) {
    if (v.is_null()) {
      original.erase(k);
      continue;
    }
    const FieldSchema* f = Lookup(type, k);
    auto it = original.find(k);
    if (it == original.end() || KindOf(*it) != KindOf(v)) {
      original[k] = SmpNewValue(v, f);
    } else if (v.is_object()) {
      *it = SmpMergeMap(std::move(*it), std::move(v), f ? f->type : nullptr);
    } else if (v.is_array()) {
      *it = SmpMergeListField(std::move(*it), v, f);
    } else {
      *it = std::move(v);
    }
  }
  return original;
}

// ===========================================================================
// Field sets (the fieldsV1 format of managedFields)
// ===========================================================================

// A set of field paths as structured-merge-diff keeps it: a node is a member
// when the path to it is in the set; children hold longer paths. Path
// elements are spelled as in fieldsV1: "f:name", "k:{...}", "v:...", "i:N".
struct FieldSet {
  bool member = false;
  std::map<std::string, FieldSet> children;
  bool Empty() const { return !member && children.empty(); }
};

using Path = std::vector<std::string>;

void Insert(FieldSet& set, const Path& path) {
  FieldSet* cur = &set;
  for (const std::string& pe : path) cur = &cur->children[pe];
  cur->member = true;
}

void UnionInto(FieldSet& a, const FieldSet& b) {
  a.member = a.member || b.member;
  for (const auto& [pe, child] : b.children) UnionInto(a.children[pe], child);
}

FieldSet Difference(const FieldSet& a, const FieldSet& b) {
  FieldSet out;
  out.member = a.member && !b.member;
  for (const auto& [pe, child] : a.children) {
    auto it = b.children.find(pe);
    FieldSet c = it == b.children.end() ? child : Difference(child, it->second);
    if (!c.Empty()) out.children.emplace(pe, std::move(c));
  }
  return out;
}

FieldSet Intersection(const FieldSet& a, const FieldSet& b) {
  FieldSet out;
  out.member = a.member && b.member;
  for (const auto& [pe, child] : a.children) {
    auto it = b.children.find(pe);
    if (it == b.children.end()) continue;
    FieldSet c = Intersection(child, it->second);
    if (!c.Empty()) out.children.emplace(pe, std::move(c));
  }
  return out;
}

bool operator==(const FieldSet& a, const FieldSet& b) {
  return a.member == b.member && a.children == b.children;
}

FieldSet FieldSetFromJson(const Json& j) {
  FieldSet s;
  if (!j.is_object()) throw Error::BadRequest("fieldsV1 must be a JSON object");
  if (j.empty()) s.member = true;
  for (const auto& [k, v] : j.items()) {
    if (k == ".") {
      s.member = true;
    } else {
      FieldSet c = FieldSetFromJson(v);
      if (!c.Empty()) s.children.emplace(k, std::move(c));
    }
  }
  return s;
}

Json FieldSetToJson(const FieldSet& s) {
  Json j = Json::object();
  if (s.member && !s.children.empty()) j["."] = Json::object();
  for (const auto& [pe, child] : s.children) j[pe] = FieldSetToJson(child);
  return j;
}

// Go's value.ToString for key values in printed paths.
std::string ValueString(const Json& v) {
  if (v.is_string()) return Quote(v.get<std::string>());
  return v.dump();
}

// fieldpath.Path.String(): .spec.containers[name="web"].image
std::string PathString(const Path& path) {
  std::string out;
  for (const std::string& pe : path) {
    std::string_view body = std::string_view(pe).substr(2);
    if (StartsWith(pe, "f:")) {
      out += "." + std::string(body);
    } else if (StartsWith(pe, "k:")) {
      Json key = Json::parse(std::string(body), nullptr, /*allow_exceptions=*/false);
      std::string parts;
      if (key.is_object()) {
        for (const auto& [name, value] : key.items()) {
          if (!parts.empty()) parts += ",";
          parts += name + "=" + ValueString(value);
        }
      }
      out += "[" + parts + "]";
    } else if (StartsWith(pe, "v:")) {
      Json value = Json::parse(std::string(body), nullptr, /*allow_exceptions=*/false);
      out += "[=" + ValueString(value) + "]";
    } else {
      out += "[" + std::string(body) + "]";
    }
  }
  return out;
}

// Set.Iterate: the members at one level, then each child's paths.
void MemberPaths(const FieldSet& s, Path& prefix, std::vector<Path>& out) {
  for (const auto& [pe, child] : s.children) {
    if (child.member) {
      prefix.push_back(pe);
      out.push_back(prefix);
      prefix.pop_back();
    }
  }
  for (const auto& [pe, child] : s.children) {
    if (child.children.empty()) continue;
    prefix.push_back(pe);
    MemberPaths(child, prefix, out);
    prefix.pop_back();
  }
}

// The path element of a list item, or nullopt when a keyed item lacks a key
// field that has no default.
std::optional<std::string> ItemPathElement(const Json& item, const FieldSchema* list,
                                           std::string* missing_key) {
  if (list->list == ListType::kSet) return "v:" + item.dump();
  if (!item.is_object()) {
    if (missing_key != nullptr) *missing_key = list->keys.empty() ? "" : list->keys[0].name;
    return std::nullopt;
  }
  Json key = Json::object();
  for (const MapKey& k : list->keys) {
    auto it = item.find(k.name);
    if (it != item.end() && !it->is_null()) {
      key[k.name] = *it;
    } else if (!k.default_value.is_null()) {
      key[k.name] = k.default_value;
    } else {
      if (missing_key != nullptr) *missing_key = k.name;
      return std::nullopt;
    }
  }
  return "k:" + key.dump();
}

// Path elements of the items of a list in the live object; items without a
// usable key fall back to their index, duplicates to nullopt (skipped).
std::vector<std::optional<std::string>> LiveItemElements(const Json& list, const FieldSchema* f) {
  std::vector<std::optional<std::string>> out;
  std::unordered_set<std::string> seen;
  for (size_t i = 0; i < list.size(); ++i) {
    std::string pe = ItemPathElement(list[i], f, nullptr).value_or("i:" + std::to_string(i));
    if (seen.insert(pe).second) {
      out.emplace_back(std::move(pe));
    } else {
      out.emplace_back(std::nullopt);
    }
  }
  return out;
}

// ===========================================================================
// Server-side apply: merge, field sets, comparison, pruning
// ===========================================================================

// The fields of an applied configuration (typed ToFieldSet): leaves and list
// items are members; maps are not. Rejects keyed items without their keys and
// duplicate items, as Kubernetes does.
void CollectFieldSet(const Json& v, const FieldSchema* f, Path& path, FieldSet& out) {
  if (v.is_object() && !IsAtomic(f)) {
    for (const auto& [k, child] : v.items()) {
      path.push_back("f:" + k);
      CollectFieldSet(child, Child(f, k), path, out);
      path.pop_back();
    }
  } else if (v.is_array() && ListKind(f) != ListType::kAtomic) {
    FieldSchema item_schema = ItemSchema(f);
    std::unordered_set<std::string> seen;
    for (size_t i = 0; i < v.size(); ++i) {
      std::string missing;
      auto pe = ItemPathElement(v[i], f, &missing);
      if (!pe) {
        throw Error::BadRequest(PathString(path) + ": element " + std::to_string(i) +
                                ": associative list with keys has an element that omits key "
                                "field " +
                                Quote(missing) + " (and doesn't have default value)");
      }
      path.push_back(*pe);
      if (!seen.insert(*pe).second) {
        throw Error::BadRequest(PathString(path) + ": duplicate entries for key " +
                                PathString({*pe}));
      }
      Insert(out, path);
      if (v[i].is_object()) CollectFieldSet(v[i], &item_schema, path, out);
      path.pop_back();
    }
  } else {
    Insert(out, path);
  }
}

// live.Merge(config) of structured-merge-diff: config wins for leaves and
// atomic values; keyed and set lists merge item by item, shared items in the
// config's order with live-only items kept where they were.
Json SsaMerge(Json lhs, const Json& rhs, const FieldSchema* f) {
  if (lhs.is_object() && rhs.is_object() && !IsAtomic(f)) {
    for (const auto& [k, rv] : rhs.items()) {
      auto it = lhs.find(k);
      if (it == lhs.end()) {
        lhs[k] = rv;
      } else {
        *it = SsaMerge(std::move(*it), rv, Child(f, k));
      }
    }
    return lhs;
  }
  if (lhs.is_array() && rhs.is_array() && ListKind(f) != ListType::kAtomic) {
    FieldSchema item_schema = ItemSchema(f);
    auto lpes = LiveItemElements(lhs, f);
    std::vector<std::string> lhs_order, rhs_order;
    std::unordered_map<std::string, Json*> lhs_items;
    std::unordered_map<std::string, const Json*> rhs_items;
    for (size_t i = 0; i < lhs.size(); ++i) {
      if (!lpes[i]) continue;
      lhs_order.push_back(*lpes[i]);
      lhs_items.emplace(*lpes[i], &lhs[i]);
    }
    for (size_t i = 0; i < rhs.size(); ++i) {
      // The configuration was validated by CollectFieldSet.
      std::string pe = ItemPathElement(rhs[i], f, nullptr).value_or("i:" + std::to_string(i));
      if (rhs_items.emplace(pe, &rhs[i]).second) rhs_order.push_back(pe);
    }
    std::vector<const std::string*> shared;
    for (const std::string& pe : rhs_order) {
      if (lhs_items.count(pe)) shared.push_back(&pe);
    }
    size_t next_shared = 0;
    auto is_next_shared = [&](const std::string& pe) {
      return next_shared < shared.size() && *shared[next_shared] == pe;
    };
    Json out = Json::array();
    size_t l = 0, r = 0;
    while (l < lhs_order.size() || r < rhs_order.size()) {
      if (l < lhs_order.size() && r < rhs_order.size()) {
        const std::string& pe = lhs_order[l];
        if (pe == rhs_order[r]) {
          out.push_back(SsaMerge(std::move(*lhs_items[pe]), *rhs_items[pe], &item_schema));
          ++l;
          ++r;
          ++next_shared;
          continue;
        }
        if (rhs_items.count(pe) && next_shared < shared.size() && !is_next_shared(pe)) {
          ++l;  // a shared item that the config places later
          continue;
        }
      }
      if (l < lhs_order.size() && !rhs_items.count(lhs_order[l])) {
        out.push_back(std::move(*lhs_items[lhs_order[l]]));
        ++l;
        continue;
      }
      if (r < rhs_order.size()) {
        const std::string& pe = rhs_order[r];
        auto li = lhs_items.find(pe);
        out.push_back(li == lhs_items.end()
                          ? *rhs_items[pe]
                          : SsaMerge(std::move(*li->second), *rhs_items[pe], &item_schema));
        ++r;
        if (is_next_shared(pe)) ++next_shared;
      }
    }
    return out;
  }
  return rhs;
}

struct Comparison {
  FieldSet added, modified, removed;
  bool Empty() const { return added.Empty() && modified.Empty() && removed.Empty(); }
};

bool EmptyContainer(const Json* v) { return v == nullptr || v->empty(); }

// typed.Compare of structured-merge-diff. lhs or rhs is nullptr when absent.
void Compare(const Json* lhs, const Json* rhs, const FieldSchema* f, Path& path, Comparison& out) {
  auto object_or_absent = [](const Json* v) { return v == nullptr || v->is_object(); };
  auto array_or_absent = [](const Json* v) { return v == nullptr || v->is_array(); };
  const bool is_map = object_or_absent(lhs) && object_or_absent(rhs) && !IsAtomic(f);
  const bool is_list =
      array_or_absent(lhs) && array_or_absent(rhs) && ListKind(f) != ListType::kAtomic;
  const bool descend = (is_map || is_list) && !(EmptyContainer(lhs) && EmptyContainer(rhs));
  if (!descend) {
    if (path.empty()) return;
    if (lhs == nullptr) {
      Insert(out.added, path);
    } else if (rhs == nullptr) {
      Insert(out.removed, path);
    } else if (*lhs != *rhs) {
      Insert(out.modified, path);
    }
    return;
  }
  if (is_map) {
    if (lhs != nullptr) {
      for (const auto& [k, lv] : lhs->items()) {
        const Json* rv = nullptr;
        if (rhs != nullptr) {
          auto it = rhs->find(k);
          if (it != rhs->end()) rv = &*it;
        }
        path.push_back("f:" + k);
        Compare(&lv, rv, Child(f, k), path, out);
        path.pop_back();
      }
    }
    if (rhs != nullptr) {
      for (const auto& [k, rv] : rhs->items()) {
        if (lhs != nullptr && lhs->contains(k)) continue;
        path.push_back("f:" + k);
        Compare(nullptr, &rv, Child(f, k), path, out);
        path.pop_back();
      }
    }
  } else {
    FieldSchema item_schema = ItemSchema(f);
    std::unordered_map<std::string, const Json*> rhs_items;
    std::vector<std::string> rhs_order;
    if (rhs != nullptr) {
      auto rpes = LiveItemElements(*rhs, f);
      for (size_t i = 0; i < rhs->size(); ++i) {
        if (!rpes[i]) continue;
        rhs_items.emplace(*rpes[i], &(*rhs)[i]);
        rhs_order.push_back(*rpes[i]);
      }
    }
    std::unordered_set<std::string> in_lhs;
    if (lhs != nullptr) {
      auto lpes = LiveItemElements(*lhs, f);
      for (size_t i = 0; i < lhs->size(); ++i) {
        if (!lpes[i]) continue;
        in_lhs.insert(*lpes[i]);
        auto it = rhs_items.find(*lpes[i]);
        path.push_back(*lpes[i]);
        Compare(&(*lhs)[i], it == rhs_items.end() ? nullptr : it->second, &item_schema, path, out);
        path.pop_back();
      }
    }
    for (const std::string& pe : rhs_order) {
      if (in_lhs.count(pe)) continue;
      path.push_back(pe);
      Compare(nullptr, rhs_items[pe], &item_schema, path, out);
      path.pop_back();
    }
  }
  // postItemHook: a map or list that appeared or disappeared as a whole.
  if (path.empty()) return;
  if (lhs == nullptr) Insert(out.added, path);
  if (rhs == nullptr) Insert(out.removed, path);
}

Comparison CompareObjects(const Json& lhs, const Json& rhs, const FieldSchema* root) {
  Comparison out;
  Path path;
  Compare(&lhs, &rhs, root, path, out);
  return out;
}

// Removes from `v` what the applier owned before (`last`) and no manager
// owns now (`keep`, which includes the applier's new set), whole subtrees at
// a time, as Updater.prune does. Key fields of kept list items stay.
void PruneUnowned(Json& v, const FieldSet& last, const FieldSet* keep, const FieldSchema* f,
                  const std::vector<MapKey>* item_keys) {
  auto keep_child = [&](const std::string& pe) -> const FieldSet* {
    if (keep == nullptr) return nullptr;
    auto it = keep->children.find(pe);
    return it == keep->children.end() ? nullptr : &it->second;
  };
  if (v.is_object() && !IsAtomic(f)) {
    for (const auto& [pe, last_child] : last.children) {
      if (!StartsWith(pe, "f:")) continue;
      const std::string name = pe.substr(2);
      auto it = v.find(name);
      if (it == v.end()) continue;
      const FieldSet* kept = keep_child(pe);
      if (kept == nullptr) {
        bool is_key =
            item_keys != nullptr && std::any_of(item_keys->begin(), item_keys->end(),
                                                [&](const MapKey& k) { return k.name == name; });
        if (!is_key) v.erase(it);
        continue;
      }
      PruneUnowned(*it, last_child, kept, Child(f, name), nullptr);
    }
  } else if (v.is_array() && ListKind(f) != ListType::kAtomic) {
    FieldSchema item_schema = ItemSchema(f);
    auto pes = LiveItemElements(v, f);
    Json out = Json::array();
    for (size_t i = 0; i < v.size(); ++i) {
      auto last_it = pes[i] ? last.children.find(*pes[i]) : last.children.end();
      if (last_it == last.children.end()) {
        out.push_back(std::move(v[i]));
        continue;
      }
      const FieldSet* kept = keep_child(*pes[i]);
      if (kept == nullptr) continue;
      PruneUnowned(v[i], last_it->second, kept, &item_schema, &f->keys);
      out.push_back(std::move(v[i]));
    }
    v = std::move(out);
  }
}

// Identity and server-owned metadata: never tracked, never changed.
const char* const kIdentityMetadata[] = {"name", "namespace"};
const char* const kServerMetadata[] = {"uid",
                                       "resourceVersion",
                                       "generation",
                                       "creationTimestamp",
                                       "deletionTimestamp",
                                       "deletionGracePeriodSeconds",
                                       "selfLink",
                                       "managedFields"};

// The part of an object that managedFields describes.
Json Tracked(const Json& obj) {
  if (!obj.is_object()) return Json::object();
  Json t = obj;
  t.erase("apiVersion");
  t.erase("kind");
  auto md = t.find("metadata");
  if (md != t.end() && md->is_object()) {
    for (const char* k : kIdentityMetadata) md->erase(k);
    for (const char* k : kServerMetadata) md->erase(k);
    if (md->empty()) t.erase(md);
  }
  return t;
}

// What a freshly created object is compared against: Go value structs
// (metadata, spec, status) exist, empty, in the zero object.
Json ZeroLike(const Json& tracked) {
  Json zero = Json::object();
  for (const char* k : {"metadata", "spec", "status"}) {
    auto it = tracked.find(k);
    if (it != tracked.end() && it->is_object()) zero[k] = Json::object();
  }
  return zero;
}

std::pair<std::string, std::string> GroupKindOf(const Json& obj) {
  std::string api_version = StringField(obj, "apiVersion");
  std::string kind = StringField(obj, "kind");
  auto slash = api_version.find('/');
  return {slash == std::string::npos ? "" : api_version.substr(0, slash), kind};
}

// ===========================================================================
// managedFields entries
// ===========================================================================

struct ManagerEntry {
  std::string manager, operation, api_version, time, subresource;
  FieldSet set;
  bool SameIdentity(const ManagerEntry& o) const {
    return manager == o.manager && operation == o.operation && subresource == o.subresource &&
           (operation == "Apply" || api_version == o.api_version);
  }
  // printManager of Kubernetes' conflict errors.
  std::string Display() const {
    std::string s = Quote(manager);
    if (!subresource.empty()) s += " with subresource " + Quote(subresource);
    if (operation == "Update") s += " using " + api_version;
    return s;
  }
};

std::vector<ManagerEntry> DecodeManagedFields(const Json& obj) {
  std::vector<ManagerEntry> out;
  if (!obj.is_object()) return out;
  auto md = obj.find("metadata");
  if (md == obj.end() || !md->is_object()) return out;
  auto mf = md->find("managedFields");
  if (mf == md->end() || !mf->is_array()) return out;
  for (const Json& e : *mf) {
    if (!e.is_object()) continue;
    if (e.contains("fieldsType") && StringField(e, "fieldsType") != "FieldsV1") continue;
    auto fields = e.find("fieldsV1");
    if (fields == e.end() || !fields->is_object()) continue;
    ManagerEntry m;
    m.manager = StringField(e, "manager");
    m.operation = StringField(e, "operation");
    m.api_version = StringField(e, "apiVersion");
    m.time = StringField(e, "time");
    m.subresource = StringField(e, "subresource");
    try {
      m.set = FieldSetFromJson(*fields);
    } catch (const Error&) {
      continue;  // an undecodable entry is dropped, as Kubernetes resets it
    }
    auto same = std::find_if(out.begin(), out.end(),
                             [&](const ManagerEntry& o) { return o.SameIdentity(m); });
    if (same != out.end()) {
      UnionInto(same->set, m.set);
    } else {
      out.push_back(std::move(m));
    }
  }
  return out;
}

// Sorted as Kubernetes sorts encoded entries: operation, time, manager,
// apiVersion, subresource.
Json EncodeManagedFields(std::vector<ManagerEntry> entries) {
  std::sort(entries.begin(), entries.end(), [](const ManagerEntry& a, const ManagerEntry& b) {
    return std::tie(a.operation, a.time, a.manager, a.api_version, a.subresource) <
           std::tie(b.operation, b.time, b.manager, b.api_version, b.subresource);
  });
  Json out = Json::array();
  for (const ManagerEntry& m : entries) {
    Json e = {{"manager", m.manager},
              {"operation", m.operation},
              {"apiVersion", m.api_version},
              {"fieldsType", "FieldsV1"},
              {"fieldsV1", FieldSetToJson(m.set)}};
    if (!m.time.empty()) e["time"] = m.time;
    if (!m.subresource.empty()) e["subresource"] = m.subresource;
    out.push_back(std::move(e));
  }
  return out;
}

void WriteManagedFields(Json& obj, std::vector<ManagerEntry> entries) {
  Json& md = obj["metadata"];
  if (!md.is_object()) md = Json::object();
  entries.erase(std::remove_if(entries.begin(), entries.end(),
                               [](const ManagerEntry& m) { return m.set.Empty(); }),
                entries.end());
  if (entries.empty()) {
    md.erase("managedFields");
  } else {
    md["managedFields"] = EncodeManagedFields(std::move(entries));
  }
}

// Updater.update + managedFieldsUpdater.Update of a non-apply write by
// `manager`: changed fields move to the manager, removed fields leave all.
void RecordUpdate(std::vector<ManagerEntry>& managers, const Comparison& cmp,
                  const std::string& manager, const std::string& api_version,
                  const std::string& now) {
  FieldSet changed = cmp.modified;
  UnionInto(changed, cmp.added);
  for (ManagerEntry& m : managers) {
    m.set = Difference(Difference(m.set, changed), cmp.removed);
  }
  if (changed.Empty()) return;
  ManagerEntry self{manager, "Update", api_version, now, "", {}};
  auto it = std::find_if(managers.begin(), managers.end(),
                         [&](const ManagerEntry& m) { return m.SameIdentity(self); });
  if (it == managers.end()) {
    self.set = std::move(changed);
    managers.push_back(std::move(self));
  } else {
    UnionInto(it->set, changed);
    it->time = now;
  }
}

[[noreturn]] void ThrowConflicts(
    const std::vector<std::pair<const ManagerEntry*, FieldSet>>& conflicts) {
  struct Item {
    const ManagerEntry* manager;
    std::string path;
  };
  std::vector<Item> items;
  for (const auto& [m, set] : conflicts) {
    std::vector<Path> paths;
    Path prefix;
    MemberPaths(set, prefix, paths);
    for (const Path& p : paths) items.push_back({m, PathString(p)});
  }
  std::string message;
  if (items.size() == 1) {
    message = "Apply failed with 1 conflict: conflict with " + items[0].manager->Display() + ": " +
              items[0].path;
  } else {
    std::vector<const ManagerEntry*> order;
    for (const auto& [m, set] : conflicts) order.push_back(m);
    std::sort(order.begin(), order.end(), [](const ManagerEntry* a, const ManagerEntry* b) {
      return std::tie(a->manager, a->operation, a->api_version, a->subresource) <
             std::tie(b->manager, b->operation, b->api_version, b->subresource);
    });
    std::string lines;
    for (const ManagerEntry* m : order) {
      if (!lines.empty()) lines += "\n";
      lines += "conflicts with " + m->Display() + ":";
      for (const Item& item : items) {
        if (item.manager == m) lines += "\n- " + item.path;
      }
    }
    message = "Apply failed with " + std::to_string(items.size()) + " conflicts: " + lines;
  }
  Error error = Error::Conflict(message);
  for (const Item& item : items) {
    error.WithCause(
        {"FieldManagerConflict", "conflict with " + item.manager->Display(), item.path});
  }
  throw error;
}

using Conflicts = std::vector<std::pair<const ManagerEntry*, FieldSet>>;

// kube-apiserver's lastAppliedManager: `kubectl apply --server-side` (the
// field manager "kubectl") over an object that client-side `kubectl apply`
// made may take over the fields named by its last-applied-configuration
// annotation, so that moving an object from client-side to server-side
// apply does not conflict with "kubectl-client-side-apply" where a
// defaulted atomic field (a webhook's rules, a StatefulSet's
// volumeClaimTemplates) differs from the file. Returns the conflicts that
// remain: all of them for another manager or without a usable annotation.
Conflicts WithoutLastAppliedConflicts(const Json& live, Conflicts conflicts,
                                      const FieldSchema* root, const std::string& manager) {
  if (manager != "kubectl" || !live.is_object()) return conflicts;
  auto md = live.find("metadata");
  if (md == live.end() || !md->is_object()) return conflicts;
  auto annotations = md->find("annotations");
  if (annotations == md->end() || !annotations->is_object()) return conflicts;
  auto annotation = annotations->find("kubectl.kubernetes.io/last-applied-configuration");
  if (annotation == annotations->end() || !annotation->is_string()) return conflicts;
  Json last_applied = Json::parse(annotation->get<std::string>(), nullptr,
                                  /*allow_exceptions=*/false);
  if (!last_applied.is_object()) return conflicts;
  FieldSet allowed;
  try {
    Path path;
    CollectFieldSet(Tracked(last_applied), root, path, allowed);
  } catch (const Error&) {
    return conflicts;  // as upstream: an unusable annotation allows nothing
  }
  Conflicts remaining;
  for (auto& [m, set] : conflicts) {
    FieldSet rest = Difference(set, allowed);
    if (!rest.Empty()) remaining.emplace_back(m, std::move(rest));
  }
  return remaining;
}

}  // namespace

// ===========================================================================
// Public API
// ===========================================================================

Json ApplyMergePatch(const Json& target, const Json& patch) {
  if (!patch.is_object()) return patch;
  Json result = target.is_object() ? target : Json::object();
  MergePatchInto(result, patch);
  return result;
}

Json ApplyJsonPatch(const Json& target, const Json& ops) {
  if (!ops.is_array()) {
    throw Error::BadRequest("a JSON patch must be a JSON array of operations, got " +
                            std::string(ops.type_name()));
  }
  if (ops.size() > kMaxJsonPatchOperations) {
    throw Error::TooLarge("The allowed maximum operations in a JSON patch is " +
                          std::to_string(kMaxJsonPatchOperations) + ", got " +
                          std::to_string(ops.size()));
  }
  Json doc = target;
  for (size_t i = 0; i < ops.size(); ++i) ApplyOneOp(doc, ops[i], i);
  return doc;
}

Json ApplyStrategicMergePatch(const Json& original, const Json& patch, const std::string& group,
                              const std::string& kind) {
  if (!patch.is_object()) {
    throw Error::BadRequest("a strategic merge patch must be a JSON object, got " +
                            std::string(patch.type_name()));
  }
  return SmpMergeMap(original.is_object() ? original : Json::object(), patch,
                     RootType(group, kind));
}

Json ServerSideApply(const Json& live, const Json& applied, const std::string& group,
                     const std::string& kind, const ApplyOptions& opts) {
  if (opts.manager.empty()) throw Error::BadRequest("fieldManager is required for apply patch");
  if (!applied.is_object()) {
    throw Error::BadRequest("an apply patch must be a JSON object, got " +
                            std::string(applied.type_name()));
  }
  if (auto md = applied.find("metadata"); md != applied.end() && md->is_object()) {
    auto mf = md->find("managedFields");
    if (mf != md->end() && !mf->is_null() && !(mf->is_array() && mf->empty())) {
      throw Error::BadRequest("metadata.managedFields must be nil");
    }
  }
  FieldSchema root;
  root.type = RootType(group, kind);
  const bool creating = !live.is_object();
  std::string api_version = StringField(applied, "apiVersion");
  if (api_version.empty()) api_version = StringField(live, "apiVersion");

  Json live_t = Tracked(live);
  Json config = Tracked(applied);
  DiscardNulls(config);
  FieldSet applied_set;
  {
    Path path;
    CollectFieldSet(config, &root, path, applied_set);
  }

  std::vector<ManagerEntry> managers = DecodeManagedFields(live);
  if (!creating && managers.empty()) {
    // The fields of an object nobody tracked yet belong to "before-first-apply".
    Comparison existing = CompareObjects(ZeroLike(live_t), live_t, &root);
    RecordUpdate(managers, existing, "before-first-apply", StringField(live, "apiVersion"),
                 opts.now);
  }

  ManagerEntry self{opts.manager, "Apply", api_version, opts.now, "", {}};
  auto self_it = std::find_if(managers.begin(), managers.end(),
                              [&](const ManagerEntry& m) { return m.SameIdentity(self); });
  const bool had_self = self_it != managers.end();
  FieldSet last_set;
  std::string last_time;
  if (had_self) {
    last_set = std::move(self_it->set);
    last_time = self_it->time;
    managers.erase(self_it);
  }

  Json merged = SsaMerge(live_t, config, &root);
  if (!last_set.Empty()) {
    FieldSet keep = applied_set;
    for (const ManagerEntry& m : managers) UnionInto(keep, m.set);
    PruneUnowned(merged, last_set, &keep, &root, nullptr);
  }

  Comparison cmp = CompareObjects(live_t, merged, &root);
  FieldSet changed = cmp.modified;
  UnionInto(changed, cmp.added);
  Conflicts conflicts;
  for (const ManagerEntry& m : managers) {
    FieldSet c = Intersection(m.set, changed);
    if (!c.Empty()) conflicts.emplace_back(&m, std::move(c));
  }
  if (!conflicts.empty() && !opts.force) {
    conflicts = WithoutLastAppliedConflicts(live, std::move(conflicts), &root, opts.manager);
    if (!conflicts.empty()) ThrowConflicts(conflicts);
  }
  for (ManagerEntry& m : managers) {
    m.set = Difference(Difference(m.set, changed), cmp.removed);
  }
  self.set = std::move(applied_set);
  if (had_self && cmp.Empty() && self.set == last_set) self.time = last_time;
  managers.push_back(std::move(self));

  // Reassemble the object: the tracked part, then identity and server fields.
  Json result = std::move(merged);
  const Json& identity_source = creating ? applied : live;
  if (applied.contains("apiVersion")) {
    result["apiVersion"] = applied["apiVersion"];
  } else if (live.is_object() && live.contains("apiVersion")) {
    result["apiVersion"] = live["apiVersion"];
  }
  if (applied.contains("kind")) {
    result["kind"] = applied["kind"];
  } else if (live.is_object() && live.contains("kind")) {
    result["kind"] = live["kind"];
  }
  Json& md = result["metadata"];
  if (!md.is_object()) md = Json::object();
  auto copy_metadata = [&](const Json& from, const char* key) {
    auto src = from.find("metadata");
    if (src == from.end() || !src->is_object()) return;
    auto it = src->find(key);
    if (it != src->end()) md[key] = *it;
  };
  for (const char* k : kIdentityMetadata) copy_metadata(identity_source, k);
  if (!creating) {
    for (const char* k : kServerMetadata) copy_metadata(live, k);
  }
  WriteManagedFields(result, std::move(managers));
  return result;
}

void RecordUpdateManagedFields(const Json& before, Json& after, const std::string& manager,
                               const std::string& apiVersion, const std::string& now) {
  if (!after.is_object()) return;
  const bool creating = !before.is_object();
  // As FieldManager.Update: the entries the writer sent win (that is how a
  // client edits ownership); without any, the live object's are kept.
  std::vector<ManagerEntry> managers = DecodeManagedFields(after);
  if (managers.empty()) managers = DecodeManagedFields(before);
  if (!creating && managers.empty()) {
    // Kubernetes only starts tracking an existing object at its first apply.
    auto md = after.find("metadata");
    if (md != after.end() && md->is_object()) md->erase("managedFields");
    return;
  }
  auto [group, kind] = GroupKindOf(after);
  FieldSchema root;
  root.type = RootType(group, kind);
  Json after_t = Tracked(after);
  Json before_t = creating ? ZeroLike(after_t) : Tracked(before);
  Comparison cmp = CompareObjects(before_t, after_t, &root);
  RecordUpdate(managers, cmp, manager, apiVersion, now);
  WriteManagedFields(after, std::move(managers));
}

}  // namespace kin::apiserver
