#include "apiserver/registry.h"

#include <arpa/inet.h>

#include <algorithm>
#include <ctime>
#include <map>
#include <random>
#include <tuple>

#include "apiserver/crd.h"
#include "apiserver/admission_webhook.h"
#include "apiserver/patch.h"
#include "apiserver/service_account_admission.h"
#include "apiserver/validation.h"
#include "base/error.h"
#include "base/log.h"
#include "base/strings.h"
#include "client/quota.h"
#include "client/selector.h"
#include "apiserver/limit_range.h"
#include "apiserver/resource_quota.h"

namespace kin::apiserver {

namespace {

std::mt19937_64& Rng() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng;
}

// Characters Kubernetes uses for generateName suffixes (no vowels, no 0/1/3).
std::string RandomSuffix(int n = 5) {
  static const char kAlphabet[] = "bcdfghjklmnpqrstvwxz2456789";
  std::string s;
  for (int i = 0; i < n; ++i) s += kAlphabet[Rng()() % (sizeof kAlphabet - 1)];
  return s;
}

// Kinds whose status is reset on create and kept by writes to the main
// resource (they have a status subresource).
bool HasStatus(const ResourceInfo& r) { return r.has_subresource("status"); }

// The part of an object that is its "spec" for generation purposes:
// everything but metadata and status.
Json SpecPart(const Json& obj) {
  Json j = obj;
  if (j.is_object()) {
    j.erase("metadata");
    j.erase("status");
    j.erase("apiVersion");
    j.erase("kind");
  }
  return j;
}

// kube-apiserver's IgnoreManagedFieldsTimestampsTransformer: a write whose
// result differs from the stored object only in the times of managedFields
// entries keeps the stored times, so it changes nothing and is not stored.
// (Re-applying an unchanged file whose atomic fields the server defaults,
// such as a webhook's rules, merges a different value, so the apply is no
// no-op until defaulting has run.)
void KeepManagedFieldsTimes(const Json& old, Json& obj) {
  if (!old.is_object() || !obj.is_object()) return;
  auto managed = [](const Json& o) -> const Json* {
    auto md = o.find("metadata");
    if (md == o.end() || !md->is_object()) return nullptr;
    auto mf = md->find("managedFields");
    return mf != md->end() && mf->is_array() ? &*mf : nullptr;
  };
  const Json* old_mf = managed(old);
  const Json* new_mf = managed(obj);
  if (old_mf == nullptr || new_mf == nullptr || old_mf->size() != new_mf->size() ||
      *old_mf == *new_mf) {
    return;
  }
  auto without_time = [](Json e) {
    if (e.is_object()) e.erase("time");
    return e;
  };
  std::vector<Json> unmatched;
  for (const Json& e : *old_mf) unmatched.push_back(without_time(e));
  for (const Json& e : *new_mf) {
    auto it = std::find(unmatched.begin(), unmatched.end(), without_time(e));
    if (it == unmatched.end()) return;
    unmatched.erase(it);
  }
  Json a = old, b = obj;
  a["metadata"].erase("managedFields");
  b["metadata"].erase("managedFields");
  if (a == b) obj["metadata"]["managedFields"] = *old_mf;
}

Error NotFoundError(const ResourceInfo& r, const std::string& name) {
  Error e = Error::NotFound(r.group_resource() + " \"" + name + "\" not found");
  e.WithDetails(r.plural, name, r.group);
  return e;
}

Error ConflictError(const ResourceInfo& r, const std::string& name) {
  Error e =
      Error::Conflict("Operation cannot be fulfilled on " + r.group_resource() + " \"" + name +
                      "\": the object has been modified; please apply your changes to the "
                      "latest version and try again");
  e.WithDetails(r.plural, name, r.group);
  return e;
}

// The default class among `bucket`'s objects: the one annotated
// `annotation` "true"; of several, the newest (then the first by name), as
// kube-apiserver's DefaultIngressClass and DefaultStorageClass plugins
// choose. "" when none is.
std::string DefaultClassName(const Store& store, const std::string& bucket,
                             const char* annotation) {
  std::string chosen, chosen_created;
  for (const Record& rec : store.List(bucket, "", nullptr).items) {
    Json c = rec.Parse();
    const Json& annotations = c["metadata"].value("annotations", Json::object());
    if (!annotations.is_object() || annotations.value(annotation, "") != "true") continue;
    // RFC 3339 in UTC at one precision: newer compares greater.
    const std::string created = c["metadata"].value("creationTimestamp", "");
    if (chosen.empty() || created > chosen_created) {
      chosen = rec.name;
      chosen_created = created;
    }
  }
  return chosen;
}

// The DefaultIngressClass admission plugin: an Ingress created without a
// class (neither spec.ingressClassName nor the deprecated
// kubernetes.io/ingress.class annotation) gets the default IngressClass.
void DefaultIngressClass(const Store& store, Json& ingress) {
  if (!ingress.contains("spec") || !ingress["spec"].is_object()) ingress["spec"] = Json::object();
  Json& spec = ingress["spec"];
  if (spec.contains("ingressClassName") && !spec["ingressClassName"].is_null()) return;
  const Json& meta = ingress.value("metadata", Json::object());
  if (meta.is_object() && meta.contains("annotations") && meta["annotations"].is_object() &&
      meta["annotations"].contains("kubernetes.io/ingress.class")) {
    return;
  }
  std::string chosen = DefaultClassName(store, "ingressclasses.networking.k8s.io",
                                        "ingressclass.kubernetes.io/is-default-class");
  if (!chosen.empty()) spec["ingressClassName"] = chosen;
}

// The ServiceAccount admission plugin's lookup: the pod's ServiceAccount
// must exist. The `default` one is asked for again, 10 times 100-200 ms
// apart, as upstream's getServiceAccount does: a namespace's controller
// makes it some milliseconds after the namespace.
Json CheckServiceAccountExists(const Store& store, const Json& pod) {
  const Json& meta = pod["metadata"];
  const std::string ns = meta.value("namespace", ""), name = meta.value("name", "");
  const std::string sa = pod["spec"].value("serviceAccountName", "default");
  const int attempts = sa == "default" ? 10 : 1;
  thread_local std::mt19937 rng{std::random_device{}()};
  const auto interval = std::chrono::milliseconds(100 + rng() % 100);
  for (int i = 0; i < attempts; ++i) {
    if (i > 0) std::this_thread::sleep_for(interval);
    if (auto account = store.Get("serviceaccounts", ns, sa)) return account->Parse();
  }
  throw Error::Forbidden("pods \"" + name + "\" is forbidden: error looking up service account " +
                         ns + "/" + sa + ": serviceaccount \"" + sa + "\" not found")
      .WithDetails("pods", name, "");
}

// The DefaultStorageClass admission plugin: a PersistentVolumeClaim created
// without spec.storageClassName (absent, not "") gets the default
// StorageClass.
void DefaultStorageClass(const Store& store, Json& claim) {
  if (!claim.contains("spec") || !claim["spec"].is_object()) return;
  Json& spec = claim["spec"];
  if (spec.contains("storageClassName") && !spec["storageClassName"].is_null()) return;
  std::string chosen = DefaultClassName(store, "storageclasses.storage.k8s.io",
                                        "storageclass.kubernetes.io/is-default-class");
  if (!chosen.empty()) spec["storageClassName"] = chosen;
}

// The Priority admission plugin, for a pod: its priorityClassName resolved
// to spec.priority and spec.preemptionPolicy (a class that does not exist
// is 403); a pod naming none gets the global default class, if any, else
// priority 0. A priority or policy the pod states must agree with its class.
void AdmitPodPriority(const Store& store, Json& pod) {
  Json& spec = pod["spec"];
  if (!spec.is_object()) return;
  const std::string pod_name = pod["metadata"].value("name", "");
  auto forbidden = [&](const std::string& why) {
    return Error::Forbidden("pods \"" + pod_name + "\" is forbidden: " + why)
        .WithDetails("pods", pod_name, "");
  };
  const std::string bucket = "priorityclasses.scheduling.k8s.io";
  std::string class_name = spec.value("priorityClassName", Json("")).is_string()
                               ? spec.value("priorityClassName", "")
                               : "";
  int64_t priority = 0;
  std::string policy = "PreemptLowerPriority";
  if (class_name.empty()) {
    // getDefaultPriority: of several global defaults, the lowest value.
    std::optional<Json> chosen;
    for (const Record& rec : store.List(bucket, "", nullptr).items) {
      Json pc = rec.Parse();
      if (!pc.value("globalDefault", false)) continue;
      if (!chosen || pc.value("value", int64_t{0}) < chosen->value("value", int64_t{0})) {
        chosen = std::move(pc);
      }
    }
    if (chosen) {
      class_name = (*chosen)["metadata"].value("name", "");
      priority = chosen->value("value", int64_t{0});
      policy = chosen->value("preemptionPolicy", policy);
      spec["priorityClassName"] = class_name;
    }
  } else {
    std::optional<Record> rec = store.Get(bucket, "", class_name);
    if (!rec) throw forbidden("no PriorityClass with name " + class_name + " was found");
    Json pc = rec->Parse();
    priority = pc.value("value", int64_t{0});
    policy = pc.value("preemptionPolicy", policy);
  }
  if (spec.contains("priority") && spec["priority"].is_number_integer() &&
      spec["priority"].get<int64_t>() != priority) {
    throw forbidden("the integer value of priority (" +
                    std::to_string(spec["priority"].get<int64_t>()) +
                    ") must not be provided in pod spec; priority admission controller computed " +
                    std::to_string(priority) + " from the given PriorityClass name");
  }
  spec["priority"] = priority;
  if (spec.contains("preemptionPolicy") && spec["preemptionPolicy"].is_string() &&
      spec["preemptionPolicy"].get<std::string>() != policy) {
    throw forbidden("the string value of PreemptionPolicy (" +
                    spec["preemptionPolicy"].get<std::string>() +
                    ") must not be provided in pod spec; priority admission controller computed " +
                    policy + " from the given PriorityClass name");
  }
  spec["preemptionPolicy"] = policy;
}

// The Priority admission plugin, for a PriorityClass: only one may be the
// global default.
void AdmitPriorityClass(const Store& store, const Json& pc) {
  if (!pc.value("globalDefault", false)) return;
  const std::string name = pc["metadata"].value("name", "");
  for (const Record& rec : store.List("priorityclasses.scheduling.k8s.io", "", nullptr).items) {
    if (rec.name == name) continue;
    if (rec.Parse().value("globalDefault", false)) {
      throw Error::Forbidden("priorityclasses.scheduling.k8s.io \"" + name +
                             "\" is forbidden: PriorityClass " + rec.name +
                             " is already marked as default. Only one default can exist")
          .WithDetails("priorityclasses", name, "scheduling.k8s.io");
    }
  }
}

Json& Meta(Json& obj) {
  if (!obj.contains("metadata") || !obj["metadata"].is_object()) obj["metadata"] = Json::object();
  return obj["metadata"];
}

std::string Str(const Json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

// The PersistentVolumeClaimResize admission plugin, on an update of a
// claim (not its status) whose storage request grows: the claim must keep
// a StorageClass with allowVolumeExpansion true, else 403 in upstream's
// words. (Its "Only bound persistent volume claims can be expanded" never
// shows: validation already refuses an unbound claim's new request, 422.)
void AdmitClaimResize(const Store& store, const Json& claim, const Json& old) {
  auto storage = [](const Json& c) {
    const Json* v = &c;
    for (const char* k : {"spec", "resources", "requests", "storage"}) {
      if (!v->is_object() || !v->contains(k)) return quota::Amount{};
      v = &(*v)[k];
    }
    return quota::Amount::FromJson(*v).value_or(quota::Amount{});
  };
  if (storage(claim).nano <= storage(old).nano) return;
  const std::string name = Str(claim["metadata"], "name");
  auto forbidden = [&](const std::string& why) {
    return Error::Forbidden("persistentvolumeclaims \"" + name + "\" is forbidden: " + why)
        .WithDetails("persistentvolumeclaims", name, "");
  };
  // GetPersistentVolumeClaimClass: the field, else the beta annotation.
  auto class_of = [](const Json& c) {
    const Json& spec = c.value("spec", Json::object());
    if (spec.contains("storageClassName") && !spec["storageClassName"].is_null()) {
      return Str(spec, "storageClassName");
    }
    return Str(c["metadata"].value("annotations", Json::object()),
               "volume.beta.kubernetes.io/storage-class");
  };
  const std::string cls = class_of(claim);
  bool allowed = false;
  if (!cls.empty() && cls == class_of(old)) {
    if (auto rec = store.Get("storageclasses.storage.k8s.io", "", cls)) {
      allowed = rec->Parse().value("allowVolumeExpansion", Json(false)) == Json(true);
    }
  }
  if (!allowed) {
    throw forbidden(
        "only dynamically provisioned pvc can be resized and the storageclass that provisions "
        "the pvc must support resize");
  }
}

// The body's apiVersion and kind must be the URL's (when given); then they
// are set to it.
void CheckTypeMeta(const ResourceInfo& r, Json& obj) {
  if (!obj.is_object()) throw Error::BadRequest("the object must be a JSON object");
  std::string api_version = Str(obj, "apiVersion");
  std::string kind = Str(obj, "kind");
  if (!api_version.empty() && api_version != r.api_version()) {
    throw Error::BadRequest("the API version in the data (" + api_version +
                            ") does not match the expected API version (" + r.api_version() + ")");
  }
  if (!kind.empty() && kind != r.kind) {
    throw Error::BadRequest(kind + " in version \"" + r.version + "\" cannot be handled as a " +
                            r.kind + ": the kind in the data (" + kind +
                            ") does not match the expected kind (" + r.kind + ")");
  }
  obj["apiVersion"] = r.api_version();
  obj["kind"] = r.kind;
}

// A namespace's spec.finalizers (`kubernetes`, removed by the namespace controller).
bool HasSpecFinalizers(const Json& obj) {
  if (!obj.contains("spec") || !obj["spec"].is_object()) return false;
  const Json& f = obj["spec"].value("finalizers", Json::array());
  return f.is_array() && !f.empty();
}

bool HasFinalizers(const Json& obj) {
  const Json& m = obj.value("metadata", Json::object());
  return m.contains("finalizers") && m["finalizers"].is_array() && !m["finalizers"].empty();
}

bool IsTerminating(const Json& obj) {
  return obj.contains("metadata") && obj["metadata"].contains("deletionTimestamp") &&
         !obj["metadata"]["deletionTimestamp"].is_null();
}

// Pods that a node agent must confirm before they disappear.
bool NeedsGracefulDeletion(const Json& pod) {
  std::string node = pod.contains("spec") ? Str(pod["spec"], "nodeName") : "";
  std::string phase = pod.contains("status") ? Str(pod["status"], "phase") : "";
  return !node.empty() && phase != "Succeeded" && phase != "Failed";
}

// --- allocation helpers ---

uint32_t ParseIPv4(const std::string& s) {
  in_addr a{};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) return 0;
  return ntohl(a.s_addr);
}

std::string FormatIPv4(uint32_t v) {
  in_addr a{htonl(v)};
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

}  // namespace

std::string NowRfc3339() { return TimeFromNowRfc3339(0); }

std::string TimeFromNowRfc3339(int64_t seconds) {
  time_t t = time(nullptr) + seconds;
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string NewUid() {
  uint64_t a = Rng()(), b = Rng()();
  a = (a & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  b = (b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant
  char buf[40];
  snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(a >> 32),
           static_cast<unsigned>((a >> 16) & 0xffff), static_cast<unsigned>(a & 0xffff),
           static_cast<unsigned>(b >> 48), static_cast<unsigned long long>(b & 0xffffffffffffULL));
  return buf;
}

FieldSet IndexFields(const std::string& bucket, const Json& obj) {
  static const std::map<std::string, std::vector<std::string>> kFields = {
      {"pods",
       {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
        "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"}},
      {"events",
       {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
        "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
        "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"}},
      {"secrets", {"type"}},
      {"namespaces", {"status.phase"}},
      {"nodes", {"spec.unschedulable"}},
      {"replicasets.apps", {"status.replicas"}},
      {"jobs.batch", {"status.successful"}},
  };
  static const Json kNoMetadata = Json::object();
  FieldSet fs;
  auto it = kFields.find(bucket);
  fs.reserve(2 + (it != kFields.end() ? it->second.size() : 0));
  auto md = obj.find("metadata");
  const Json& m = md != obj.end() ? *md : kNoMetadata;
  fs.emplace_back("metadata.name", Str(m, "name"));
  fs.emplace_back("metadata.namespace", Str(m, "namespace"));
  if (it != kFields.end()) {
    for (const auto& f : it->second) {
      std::string v = FieldValue(obj, f);
      if (f == "source" && v.empty() && obj.contains("source"))
        v = FieldValue(obj, "source.component");
      if (f == "spec.hostNetwork" && v.empty()) v = "false";
      if (f == "spec.unschedulable" && v.empty()) v = "false";
      fs.emplace_back(f, std::move(v));  // f lives in kFields: static storage
    }
  }
  return fs;
}

Json StatusFor(const Error& e) {
  // A webhook's own Status (admission_webhook.h).
  if (const auto* se = dynamic_cast<const StatusError*>(&e)) return se->status();
  Json details = Json::object();
  if (!e.details_name().empty()) details["name"] = e.details_name();
  if (!e.details_group().empty()) details["group"] = e.details_group();
  if (!e.details_kind().empty()) details["kind"] = e.details_kind();
  if (!e.causes().empty()) {
    Json causes = Json::array();
    for (const auto& c : e.causes()) {
      Json cj = {{"reason", c.reason}, {"message", c.message}};
      if (!c.field.empty()) cj["field"] = c.field;
      causes.push_back(cj);
    }
    details["causes"] = causes;
  }
  Json s = {{"kind", "Status"},       {"apiVersion", "v1"},     {"metadata", Json::object()},
            {"status", "Failure"},    {"message", e.message()}, {"reason", std::string(e.reason())},
            {"code", e.http_status()}};
  if (!details.empty()) s["details"] = details;
  return s;
}

std::string DumpStatus(const Json& s) {
  // nlohmann::json keeps keys sorted; clients that compare error bodies as
  // text (the Python client's FailToCreateError) expect the field order of
  // Go's metav1.Status and metav1.StatusDetails.
  auto ordered = [](const Json& in, std::initializer_list<const char*> keys) {
    nlohmann::ordered_json out = nlohmann::ordered_json::object();
    for (const char* k : keys) {
      if (in.contains(k)) out[k] = nlohmann::ordered_json::parse(in[k].dump());
    }
    for (const auto& [k, v] : in.items()) {
      if (!out.contains(k)) out[k] = nlohmann::ordered_json::parse(v.dump());
    }
    return out;
  };
  nlohmann::ordered_json out = ordered(
      s, {"kind", "apiVersion", "metadata", "status", "message", "reason", "details", "code"});
  if (s.contains("details") && s["details"].is_object()) {
    out["details"] = ordered(s["details"],
                             {"name", "group", "kind", "uid", "causes", "retryAfterSeconds"});
  }
  return out.dump();
}

bool ReturnsDeletedObject(const ResourceInfo& r) {
  // kube-apiserver's stores with ReturnDeletedObject (and the namespace
  // store's own Delete); custom resources' store sets it too.
  static const std::set<std::string> kReturning = {
      "pods", "services", "serviceaccounts", "persistentvolumes", "persistentvolumeclaims",
      "namespaces"};
  return r.custom || (r.group.empty() && kReturning.count(r.plural) > 0);
}

Json DeletedStatus(const ResourceInfo& r, const Json& deleted) {
  // The store's finalizeDelete: details.kind is the resource (plural), as
  // upstream says ("Yes we set Kind field to resource"), with the uid so a
  // client can tell the object is gone and not waiting for finalizers.
  Json status = SuccessStatus(r.plural, Str(deleted["metadata"], "name"), r.group);
  status["details"]["uid"] = Str(deleted["metadata"], "uid");
  return status;
}

Json SuccessStatus(const std::string& kind, const std::string& name, const std::string& group) {
  Json details = {{"name", name}, {"kind", kind}};
  if (!group.empty()) details["group"] = group;
  return {{"kind", "Status"},
          {"apiVersion", "v1"},
          {"metadata", Json::object()},
          {"status", "Success"},
          {"details", details}};
}

// --- allocators -------------------------------------------------------------

struct Registry::Allocators {
  std::mutex mu;
  uint32_t base = 0;
  uint32_t size = 0;
  std::set<uint32_t> ips;
  std::set<int> node_ports;
  uint32_t next_ip = 0;
  int next_port = 0;

  std::string AllocateIP() {
    std::lock_guard lock(mu);
    // Skip the network address and .1 (the kubernetes Service's) when
    // allocating dynamically; explicit requests may use any host address.
    for (uint32_t i = 0; i < size; ++i) {
      uint32_t off = 2 + (next_ip + i) % (size - 3);
      uint32_t ip = base + off;
      if (!ips.count(ip)) {
        ips.insert(ip);
        next_ip = off - 1;
        return FormatIPv4(ip);
      }
    }
    throw Error::Internal("failed to allocate a serviceIP: range is full");
  }
  void Reserve(const std::string& s, const std::string& field) {
    uint32_t ip = ParseIPv4(s);
    Error e = Error::Invalid("");
    if (ip == 0) {
      throw Error::Invalid("spec.clusterIPs: Invalid value: [\"" + s + "\"]: must be a valid IP")
          .WithCause(
              {"FieldValueInvalid", "Invalid value: \"" + s + "\": must be a valid IP", field});
    }
    std::lock_guard lock(mu);
    if (ip <= base || ip >= base + size - 1) {
      std::string msg = "Invalid value: \"" + s + "\": failed to allocate IP " + s +
                        ": the provided IP (" + s +
                        ") is not in the valid range. The range of valid IPs is " + Cidr();
      throw Error::Invalid(msg).WithCause({"FieldValueInvalid", msg, field});
    }
    if (ips.count(ip)) {
      std::string msg = "Invalid value: \"" + s + "\": failed to allocate IP " + s +
                        ": provided IP is already allocated";
      throw Error::Invalid(msg).WithCause({"FieldValueInvalid", msg, field});
    }
    ips.insert(ip);
  }
  void ReleaseIP(const std::string& s) {
    std::lock_guard lock(mu);
    ips.erase(ParseIPv4(s));
  }
  std::string cidr_text;
  std::string Cidr() const { return cidr_text; }
  int min_port = 30000, max_port = 32767;
  int AllocatePort() {
    std::lock_guard lock(mu);
    int range = max_port - min_port + 1;
    for (int i = 0; i < range; ++i) {
      int p = min_port + (next_port + i) % range;
      if (!node_ports.count(p)) {
        node_ports.insert(p);
        next_port = p - min_port + 1;
        return p;
      }
    }
    throw Error::Internal("failed to allocate a nodePort: range is full");
  }
  void ReservePort(int p, const std::string& field) {
    std::lock_guard lock(mu);
    if (p < min_port || p > max_port) {
      std::string msg = "Invalid value: " + std::to_string(p) +
                        ": provided port is not in the valid range. The range of valid ports is " +
                        std::to_string(min_port) + "-" + std::to_string(max_port);
      throw Error::Invalid(msg).WithCause({"FieldValueInvalid", msg, field});
    }
    if (node_ports.count(p)) {
      std::string msg =
          "Invalid value: " + std::to_string(p) + ": provided port is already allocated";
      throw Error::Invalid(msg).WithCause({"FieldValueInvalid", msg, field});
    }
    node_ports.insert(p);
  }
  void ReleasePort(int p) {
    std::lock_guard lock(mu);
    node_ports.erase(p);
  }
};

namespace {

// Every node port a Service holds.
std::vector<int> NodePortsOf(const Json& svc) {
  std::vector<int> out;
  if (!svc.contains("spec")) return out;
  const Json& spec = svc["spec"];
  if (spec.contains("ports") && spec["ports"].is_array()) {
    for (const auto& p : spec["ports"]) {
      if (p.contains("nodePort") && p["nodePort"].is_number_integer() && p["nodePort"] != 0) {
        out.push_back(p["nodePort"].get<int>());
      }
    }
  }
  if (spec.contains("healthCheckNodePort") && spec["healthCheckNodePort"].is_number_integer() &&
      spec["healthCheckNodePort"] != 0) {
    out.push_back(spec["healthCheckNodePort"].get<int>());
  }
  return out;
}

std::vector<std::string> ClusterIPsOf(const Json& svc) {
  std::vector<std::string> out;
  if (!svc.contains("spec")) return out;
  const Json& spec = svc["spec"];
  if (spec.contains("clusterIPs") && spec["clusterIPs"].is_array()) {
    for (const auto& ip : spec["clusterIPs"]) {
      if (ip.is_string() && ip != "None" && ip != "") out.push_back(ip);
    }
  } else {
    std::string ip = Str(spec, "clusterIP");
    if (!ip.empty() && ip != "None") out.push_back(ip);
  }
  return out;
}

// kube-apiserver's needsHCNodePort: a LoadBalancer with externalTrafficPolicy
// Local gets a healthCheckNodePort from the NodePort range.
bool NeedsHealthCheckNodePort(const Json& svc) {
  const Json& spec = svc.value("spec", Json::object());
  return Str(spec, "type") == "LoadBalancer" && Str(spec, "externalTrafficPolicy") == "Local";
}

bool NeedsNodePorts(const Json& svc) {
  std::string type = Str(svc.value("spec", Json::object()), "type");
  if (type == "NodePort") return true;
  if (type == "LoadBalancer") {
    const Json& spec = svc["spec"];
    return !spec.contains("allocateLoadBalancerNodePorts") ||
           spec["allocateLoadBalancerNodePorts"] != false;
  }
  return false;
}

}  // namespace

// --- RegistryWatch ----------------------------------------------------------

RegistryWatch::~RegistryWatch() {
  if (store_ && queue_) store_->StopWatch(queue_);
}

bool RegistryWatch::Next(Event& out, std::chrono::milliseconds timeout) {
  if (!initial_.empty()) {
    out = std::move(initial_.front());
    initial_.pop_front();
    return true;
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    std::shared_ptr<const StoreEvent> e;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() < 0) left = std::chrono::milliseconds(0);
    if (!queue_->Pop(e, left)) {
      if (queue_->closed()) ended_ = true;
      return false;
    }
    last_rv_ = e->rv;
    auto matches = [&](const Record& r) {
      if (!r.json) return false;
      if (!ns_.empty() && r.ns != ns_) return false;
      if (!labels_.empty() && !labels_.Matches(r.labels ? *r.labels : Json(nullptr))) return false;
      for (const auto& req : fields_.requirements()) {
        const std::string* v = r.Field(req.field);
        bool eq = (v ? *v : std::string()) == req.value;
        if (eq == req.negate) return false;
      }
      return true;
    };
    bool now_matches = matches(e->now);
    bool prev_matches = e->prev.json ? matches(e->prev) : false;
    std::string type;
    switch (e->type) {
      case StoreEvent::Type::kAdded:
        if (now_matches) type = "ADDED";
        break;
      case StoreEvent::Type::kModified:
        if (now_matches) {
          type = prev_matches || !e->prev.json ? "MODIFIED" : "ADDED";
          // A replayed event (after a restart) has no previous state.
          if (!e->prev.json) type = "MODIFIED";
        } else if (prev_matches) {
          type = "DELETED";
        }
        break;
      case StoreEvent::Type::kDeleted:
        if (prev_matches || (!e->prev.json && now_matches)) type = "DELETED";
        break;
    }
    if (type.empty()) continue;
    out = Event{type, e->rv, e->now.json};
    if (served_ != nullptr && out.json) {  // a custom resource served in another version
      out.json =
          std::make_shared<const std::string>(ToServedVersion(*served_, Json::parse(*out.json)).dump());
    }
    return true;
  }
}

// --- Registry -----------------------------------------------------------------

Registry::Registry(Store& store, RegistryOptions opts)
    : store_(store),
      opts_(std::move(opts)),
      alloc_(std::make_unique<Allocators>()),
      webhooks_(std::make_unique<AdmissionWebhooks>(store)) {
  // The service range.
  std::string cidr = opts_.service_cidr;
  size_t slash = cidr.find('/');
  uint32_t base = ParseIPv4(cidr.substr(0, slash));
  int bits = slash == std::string::npos ? -1 : std::atoi(cidr.c_str() + slash + 1);
  if (base == 0 || bits < 8 || bits > 30) {
    throw Error::BadRequest("service CIDR \"" + cidr + "\" is not an IPv4 CIDR between /8 and /30");
  }
  uint32_t mask = bits == 0 ? 0 : ~((1u << (32 - bits)) - 1);
  alloc_->base = base & mask;
  alloc_->size = 1u << (32 - bits);
  alloc_->cidr_text = cidr;
  alloc_->min_port = opts_.node_port_min;
  alloc_->max_port = opts_.node_port_max;
  // Rebuild what is allocated from the stored Services: nothing is handed
  // out twice, also across restarts.
  for (const auto& rec : store_.List("services", "", nullptr).items) {
    Json svc = rec.Parse();
    for (const auto& ip : ClusterIPsOf(svc)) alloc_->ips.insert(ParseIPv4(ip));
    for (int p : NodePortsOf(svc)) alloc_->node_ports.insert(p);
  }
  // The custom resources the stored CRDs define (apiserver/crd.h).
  SyncCustomResources(store_);
}

namespace {

// kube-apiserver's discovery priorities (apiVersionPriorities in
// pkg/controlplane/apiserver/aggregator.go) of the groups kin serves.
std::pair<int, int> LocalAPIServicePriority(const std::string& group) {
  static const std::map<std::string, std::pair<int, int>> kPriorities = {
      {"", {18000, 1}},
      {"apiregistration.k8s.io", {18000, 15}},
      {"apps", {17800, 15}},
      {"authentication.k8s.io", {17700, 15}},
      {"authorization.k8s.io", {17600, 15}},
      {"batch", {17400, 15}},
      {"networking.k8s.io", {17200, 15}},
      {"policy", {17100, 15}},
      {"rbac.authorization.k8s.io", {17000, 15}},
      {"storage.k8s.io", {16800, 15}},
      {"scheduling.k8s.io", {16600, 15}},
      {"apiextensions.k8s.io", {16700, 15}},
      {"coordination.k8s.io", {16500, 15}},
      {"discovery.k8s.io", {16200, 15}}};
  auto it = kPriorities.find(group);
  return it == kPriorities.end() ? std::pair<int, int>{1000, 15} : it->second;
}

// One Local APIService per group/version served, as kube-apiserver's
// autoregister controller writes them at start ("onstart"): no service,
// always Available. Written straight to the store, like the endpoints
// above; one a user deleted comes back at the next start, as upstream's.
void EnsureLocalAPIServices(Store& store) {
  std::set<std::pair<std::string, std::string>> gvs;
  for (const auto& r : AllResources()) gvs.insert({r.group, r.version});
  for (const auto& [group, version] : gvs) {
    std::string name = version + "." + group;  // "v1." for the core group
    if (store.Get("apiservices.apiregistration.k8s.io", "", name)) continue;
    auto [group_priority, version_priority] = LocalAPIServicePriority(group);
    std::string now = NowRfc3339();
    Json as = {{"apiVersion", "apiregistration.k8s.io/v1"},
               {"kind", "APIService"},
               {"metadata",
                {{"name", name},
                 {"uid", NewUid()},
                 {"creationTimestamp", now},
                 {"labels", {{"kube-aggregator.kubernetes.io/automanaged", "onstart"}}}}},
               {"spec",
                {{"group", group},
                 {"version", version},
                 {"groupPriorityMinimum", group_priority},
                 {"versionPriority", version_priority}}},
               {"status",
                {{"conditions",
                  {{{"type", "Available"},
                    {"status", "True"},
                    {"lastTransitionTime", now},
                    {"reason", "Local"},
                    {"message", "Local APIServices are always available"}}}}}}};
    store.Mutate("apiservices.apiregistration.k8s.io", "", name, [&](const Json* cur) {
      if (cur != nullptr) return Mutation{};
      return Mutation{Mutation::Action::kPut, as};
    });
  }
}

}  // namespace

Registry::~Registry() = default;

void Registry::Bootstrap() {
  WriteOptions wo;
  wo.field_manager = "kin-apiserver";
  for (const char* ns : {"default", "kube-system", "kube-public", "kube-node-lease"}) {
    if (store_.Get("namespaces", "", ns)) continue;
    Create(NamespacesResource(), "",
           Json{{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", ns}}}}, wo);
  }
  // The system priority classes, as kube-apiserver's scheduling bootstrap
  // makes them.
  const ResourceInfo* priority_classes = FindResource("scheduling.k8s.io", "v1", "priorityclasses");
  for (auto [name, value, description] :
       {std::tuple{"system-node-critical", 2000001000,
                   "Used for system critical pods that must not be moved from their current node."},
        std::tuple{"system-cluster-critical", 2000000000,
                   "Used for system critical pods that must run in the cluster, but can be moved "
                   "to another node if necessary."}}) {
    if (priority_classes == nullptr ||
        store_.Get("priorityclasses.scheduling.k8s.io", "", name)) {
      continue;
    }
    Create(*priority_classes, "",
           Json{{"apiVersion", "scheduling.k8s.io/v1"},
                {"kind", "PriorityClass"},
                {"metadata", {{"name", name}}},
                {"value", value},
                {"description", description}},
           wo);
  }
  std::string kubernetes_ip = FormatIPv4(alloc_->base + 1);
  if (!store_.Get("services", "default", "kubernetes")) {
    Json svc = {{"apiVersion", "v1"},
                {"kind", "Service"},
                {"metadata",
                 {{"name", "kubernetes"},
                  {"namespace", "default"},
                  {"labels", {{"component", "apiserver"}, {"provider", "kubernetes"}}}}},
                {"spec",
                 {{"type", "ClusterIP"},
                  {"clusterIP", kubernetes_ip},
                  {"ports",
                   {{{"name", "https"},
                     {"port", 443},
                     {"protocol", "TCP"},
                     {"targetPort", opts_.api_port}}}}}}};
    Create(ServicesResource(), "default", svc, wo);
  }
  Json ep = {{"apiVersion", "v1"},
             {"kind", "Endpoints"},
             {"metadata",
              {{"name", "kubernetes"},
               {"namespace", "default"},
               {"labels", {{"endpointslice.kubernetes.io/skip-mirror", "true"}}}}},
             {"subsets",
              {{{"addresses", {{{"ip", opts_.api_advertise_ip}}}},
                {"ports", {{{"name", "https"}, {"port", opts_.api_port}, {"protocol", "TCP"}}}}}}}};
  // Written straight to the store, as kube-apiserver's own endpoint
  // reconciler does: the API listens on loopback, which validation forbids
  // for user-written Endpoints.
  store_.Mutate("endpoints", "default", "kubernetes", [&](const Json* cur) -> Mutation {
    Json next = cur ? *cur : ep;
    if (cur && (*cur)["subsets"] == ep["subsets"]) return Mutation{};
    next["subsets"] = ep["subsets"];
    Json& m = next["metadata"];
    if (!m.contains("uid")) m["uid"] = NewUid();
    if (!m.contains("creationTimestamp")) m["creationTimestamp"] = NowRfc3339();
    return Mutation{Mutation::Action::kPut, next};
  });
  // Its EndpointSlice, as kube-apiserver's endpoints reconciler writes it
  // beside the Endpoints (no managed-by label: the EndpointSlice and
  // mirroring controllers leave it alone); service proxies read slices.
  Json slice = {
      {"apiVersion", "discovery.k8s.io/v1"},
      {"kind", "EndpointSlice"},
      {"metadata",
       {{"name", "kubernetes"},
        {"namespace", "default"},
        {"labels", {{"kubernetes.io/service-name", "kubernetes"}}}}},
      {"addressType", "IPv4"},
      {"endpoints", {{{"addresses", {opts_.api_advertise_ip}}, {"conditions", {{"ready", true}}}}}},
      {"ports", {{{"name", "https"}, {"port", opts_.api_port}, {"protocol", "TCP"}}}}};
  store_.Mutate(
      "endpointslices.discovery.k8s.io", "default", "kubernetes", [&](const Json* cur) -> Mutation {
        Json next = cur ? *cur : slice;
        if (cur && (*cur)["endpoints"] == slice["endpoints"] && (*cur)["ports"] == slice["ports"]) {
          return Mutation{};
        }
        next["endpoints"] = slice["endpoints"];
        next["ports"] = slice["ports"];
        Json& m = next["metadata"];
        if (!m.contains("uid")) m["uid"] = NewUid();
        if (!m.contains("creationTimestamp")) m["creationTimestamp"] = NowRfc3339();
        return Mutation{Mutation::Action::kPut, next};
      });
  EnsureLocalAPIServices(store_);
}

void Registry::CheckNamespaceWritable(const ResourceInfo& r, const std::string& ns) {
  if (!r.namespaced) return;
  auto rec = store_.Get("namespaces", "", ns);
  if (!rec) {
    Error e = Error::NotFound("namespaces \"" + ns + "\" not found");
    e.WithDetails("namespaces", ns);
    throw e;
  }
  Json nsobj = rec->Parse();
  if (IsTerminating(nsobj)) {
    Error e = Error::Forbidden(r.group_resource() +
                               " is forbidden: unable to create new content in namespace " + ns +
                               " because it is being terminated");
    e.WithDetails(r.plural, "", r.group);
    throw e;
  }
}

Json Registry::Get(const ResourceInfo& r, const std::string& ns, const std::string& name) {
  auto rec = store_.Get(r.group_resource(), r.namespaced ? ns : "", name);
  if (!rec) throw NotFoundError(r, name);
  return r.custom ? ToServedVersion(r, rec->Parse()) : rec->Parse();
}

namespace {

struct ContinueToken {
  uint64_t rv = 0;
  std::string start;
};

std::string EncodeContinue(uint64_t rv, const std::string& start) {
  return Base64Encode(Json{{"v", "meta.k8s.io/v1"}, {"rv", rv}, {"start", start}}.dump());
}

ContinueToken DecodeContinue(const std::string& token) {
  Json j = Json::parse(Base64Decode(token).value_or(""), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("start") || !j["start"].is_string()) {
    throw Error::BadRequest("continue key is not valid: illegal base64 data or JSON");
  }
  return {j.value("rv", uint64_t{0}), j["start"].get<std::string>()};
}

std::function<bool(const Record&)> MakeFilter(const ResourceInfo& r, const ListOptions& opts,
                                              LabelSelector& ls, FieldSelector& fs) {
  ls = LabelSelector::Parse(opts.label_selector);
  fs = FieldSelector::Parse(opts.field_selector);
  // Only the fields Kubernetes indexes for this resource may be selected.
  FieldSet probe = IndexFields(r.group_resource(), Json::object());
  for (const auto& req : fs.requirements()) {
    bool ok =
        std::any_of(probe.begin(), probe.end(), [&](auto& f) { return f.first == req.field; });
    if (!ok) {
      throw Error::BadRequest("field label not supported: " + req.field);
    }
  }
  if (ls.empty() && fs.empty()) return nullptr;
  return [&ls, &fs](const Record& rec) {
    if (!ls.empty() && !ls.Matches(rec.labels ? *rec.labels : Json(nullptr))) return false;
    for (const auto& req : fs.requirements()) {
      const std::string* v = rec.Field(req.field);
      bool eq = (v ? *v : std::string()) == req.value;
      if (eq == req.negate) return false;
    }
    return true;
  };
}

}  // namespace

std::string Registry::ListJson(const ResourceInfo& r, const std::string& ns,
                               const ListOptions& opts) {
  LabelSelector ls;
  FieldSelector fs;
  auto filter = MakeFilter(r, opts, ls, fs);
  std::string start;
  if (!opts.continue_token.empty()) {
    ContinueToken t = DecodeContinue(opts.continue_token);
    if (t.rv < store_.compacted_revision()) {
      throw Error::Gone(
          "The provided continue parameter is too old to display a consistent list result. You "
          "can start a new list without the continue parameter, or use the continue token in "
          "this response to retrieve the remainder of the results. Continuing with the provided "
          "token results in an inconsistent list - objects that were created, modified, or "
          "deleted between the time the first chunk was returned and now may show up in the "
          "list.");
    }
    start = t.start;
  }
  if (opts.limit < 0) throw Error::BadRequest("limit must not be negative");
  auto res = store_.List(r.group_resource(), r.namespaced ? ns : "", filter,
                         static_cast<size_t>(opts.limit), start);
  std::string out;
  size_t total = 64;
  for (const auto& it : res.items) total += it.json->size() + 1;
  out.reserve(total + 256);
  out += "{\"kind\":\"" + r.list_kind() + "\",\"apiVersion\":\"" + r.api_version() +
         "\",\"metadata\":{\"resourceVersion\":\"" + std::to_string(res.rv) + "\"";
  if (!res.next_key.empty()) {
    out += ",\"continue\":\"" + EncodeContinue(res.rv, res.next_key) + "\"";
    // Count what remains, as Kubernetes reports it (only without selectors).
    if (!filter) {
      auto rest = store_.List(r.group_resource(), r.namespaced ? ns : "", nullptr, 0, res.next_key);
      out += ",\"remainingItemCount\":" + std::to_string(rest.items.size());
    }
  }
  out += "},\"items\":[";
  for (size_t i = 0; i < res.items.size(); ++i) {
    if (i) out += ',';
    if (r.custom && r.version != r.storage_version) {
      out += ToServedVersion(r, res.items[i].Parse()).dump();  // conversion None
    } else {
      out += *res.items[i].json;
    }
  }
  out += "]}";
  return out;
}

Json Registry::List(const ResourceInfo& r, const std::string& ns, const ListOptions& opts) {
  return Json::parse(ListJson(r, ns, opts));
}

Json Registry::PrepareCreate(const ResourceInfo& r, const std::string& ns, Json obj,
                             const WriteOptions& opts) {
  CheckTypeMeta(r, obj);
  Json& m = Meta(obj);
  if (m.contains("resourceVersion") && !Str(m, "resourceVersion").empty()) {
    throw Error::BadRequest("resourceVersion should not be set on objects to be created");
  }
  std::string obj_ns = Str(m, "namespace");
  if (r.namespaced) {
    if (!obj_ns.empty() && !ns.empty() && obj_ns != ns) {
      throw Error::BadRequest(
          "the namespace of the provided object does not match the namespace sent on the request");
    }
    m["namespace"] = ns.empty() ? obj_ns : ns;
  } else {
    m.erase("namespace");
  }
  if (Str(m, "name").empty()) {
    std::string gen = Str(m, "generateName");
    if (gen.empty()) {
      Error e = Error::Invalid(
          r.kind +
          " \"\" is invalid: metadata.name: Required value: name or generateName is required");
      e.WithDetails(r.kind, "", r.group)
          .WithCause({"FieldValueRequired", "Required value: name or generateName is required",
                      "metadata.name"});
      throw e;
    }
    m["name"] = gen + RandomSuffix();
  }
  m["uid"] = NewUid();
  m["creationTimestamp"] = NowRfc3339();
  m.erase("deletionTimestamp");
  m.erase("deletionGracePeriodSeconds");
  m.erase("selfLink");
  if (SpecPart(obj).size() > 0 || r.kind != "Namespace") m["generation"] = 1;
  if (r.plural == "events" || r.plural == "endpoints" || r.plural == "configmaps" ||
      r.plural == "secrets" || r.plural == "serviceaccounts" || r.plural == "leases" ||
      r.plural == "endpointslices") {
    m.erase("generation");
  }

  // Kind-specific preparation.
  if (HasStatus(r)) obj.erase("status");
  if (r.plural == "pods") {
    obj["status"] = {{"phase", "Pending"}, {"qosClass", "BestEffort"}};
  } else if (r.plural == "services") {
    obj["status"] = {{"loadBalancer", Json::object()}};
  } else if (r.plural == "nodes") {
    // Nodes keep what the registering agent sends.
  }
  // The Priority admission, before the defaults (priority has none).
  if (r.plural == "pods" && r.group.empty()) AdmitPodPriority(store_, obj);
  if (r.plural == "priorityclasses" && r.group == "scheduling.k8s.io") {
    AdmitPriorityClass(store_, obj);
  }
  ApplyDefaults(r.group, r.kind, obj, {opts_.default_toleration_seconds});
  // The LimitRanger admission (apiserver/limit_range.h): defaults, then limits.
  AdmitLimitRanges(store_, r, Str(Meta(obj), "namespace"), obj);
  if (r.plural == "ingresses" && r.group == "networking.k8s.io") DefaultIngressClass(store_, obj);
  if (IsCustomResourceDefinitions(r)) PrepareCustomResourceDefinition(obj, nullptr);
  if (r.custom) PrepareCustomResource(r, obj, nullptr);
  if (r.plural == "persistentvolumeclaims" && r.group.empty()) DefaultStorageClass(store_, obj);
  if (r.plural == "pods" && r.group.empty() && opts_.require_service_accounts) {
    // Its token volume (apiserver/service_account_admission.h).
    Json account = CheckServiceAccountExists(store_, obj);
    MountServiceAccountToken(account, obj, [] { return RandomSuffix(); });
  }
  if (r.plural == "pods") {
    // QoS class, as the API server computes it on create.
    bool any = false, guaranteed = true;
    for (const auto& c : obj["spec"].value("containers", Json::array())) {
      const Json& res = c.value("resources", Json::object());
      const Json& lim = res.value("limits", Json::object());
      const Json& req = res.value("requests", Json::object());
      if (!lim.empty() || !req.empty()) any = true;
      for (const char* k : {"cpu", "memory"}) {
        if (!lim.contains(k)) guaranteed = false;
        if (req.contains(k) && lim.contains(k) && req[k] != lim[k]) guaranteed = false;
      }
    }
    obj["status"]["qosClass"] = !any ? "BestEffort" : guaranteed ? "Guaranteed" : "Burstable";
  }
  // Mutating admission webhooks, then the defaults again on what they made.
  const bool webhooks = WebhooksAdmit(r) && webhooks_->Any();
  // Custom resources go in their served version, and come back pruned,
  // defaulted and validated by their schema again.
  auto served = [&](const Json& o) { return r.custom ? ToServedVersion(r, o) : o; };
  if (webhooks) {
    obj = webhooks_->Mutate(CreateAttributes(r, served(obj), opts));
    ApplyDefaults(r.group, r.kind, obj, {opts_.default_toleration_seconds});
    if (r.custom) PrepareCustomResource(r, obj, nullptr);
  }
  RecordUpdateManagedFields(Json(nullptr), obj,
                            opts.field_manager.empty() ? "unknown" : opts.field_manager,
                            r.api_version(), NowRfc3339());
  ValidateObject(r.group, r.kind, obj, nullptr);
  if (webhooks) webhooks_->Validate(CreateAttributes(r, served(obj), opts));
  return obj;
}

Json Registry::Create(const ResourceInfo& r, const std::string& ns, Json obj,
                      const WriteOptions& opts) {
  std::string target_ns = r.namespaced ? ns : "";
  if (r.namespaced && target_ns.empty()) {
    target_ns = Str(obj.value("metadata", Json::object()), "namespace");
    if (target_ns.empty()) target_ns = "default";
  }
  CheckNamespaceWritable(r, target_ns);
  obj = PrepareCreate(r, target_ns, std::move(obj), opts);
  std::string name = obj["metadata"]["name"];

  // Service registry: allocate cluster IPs and node ports before storing,
  // release them if the create fails.
  std::vector<std::string> ips;
  std::vector<int> ports;
  auto release = [&] {
    for (auto& ip : ips) alloc_->ReleaseIP(ip);
    for (int p : ports) alloc_->ReleasePort(p);
  };
  if (r.plural == "services") {
    Json& spec = obj["spec"];
    try {
      std::string type = Str(spec, "type");
      std::string cip = Str(spec, "clusterIP");
      if (type != "ExternalName" && cip != "None") {
        if (cip.empty()) {
          cip = alloc_->AllocateIP();
        } else {
          alloc_->Reserve(cip, "spec.clusterIPs");
        }
        ips.push_back(cip);
        spec["clusterIP"] = cip;
        spec["clusterIPs"] = Json::array({cip});
      } else if (cip == "None") {
        spec["clusterIPs"] = Json::array({"None"});
      }
      if (NeedsNodePorts(obj)) {
        int i = 0;
        for (auto& p : spec["ports"]) {
          std::string field = "spec.ports[" + std::to_string(i++) + "].nodePort";
          if (p.contains("nodePort") && p["nodePort"].is_number_integer() && p["nodePort"] != 0) {
            alloc_->ReservePort(p["nodePort"].get<int>(), field);
            ports.push_back(p["nodePort"].get<int>());
          } else {
            int np = alloc_->AllocatePort();
            ports.push_back(np);
            p["nodePort"] = np;
          }
        }
      }
      if (NeedsHealthCheckNodePort(obj)) {
        if (spec.contains("healthCheckNodePort") &&
            spec["healthCheckNodePort"].is_number_integer() && spec["healthCheckNodePort"] != 0) {
          alloc_->ReservePort(spec["healthCheckNodePort"].get<int>(), "spec.healthCheckNodePort");
          ports.push_back(spec["healthCheckNodePort"].get<int>());
        } else {
          int hc = alloc_->AllocatePort();
          ports.push_back(hc);
          spec["healthCheckNodePort"] = hc;
        }
      }
    } catch (Error& e) {
      release();
      if (e.code() == Code::kInvalid) {
        std::string msg = "Service \"" + name + "\" is invalid: ";
        if (!e.causes().empty()) msg += e.causes()[0].field + ": " + e.causes()[0].message;
        Error full = Error::Invalid(msg);
        full.WithDetails("Service", name);
        for (const auto& c : e.causes()) full.WithCause(c);
        throw full;
      }
      throw;
    }
  }
  // The ResourceQuota admission, last (apiserver/resource_quota.h): charged
  // now, given back unless the object is stored.
  QuotaCharge quota_charge = [&] {
    try {
      return AdmitResourceQuota(store_, r, target_ns, obj, nullptr, opts.dry_run);
    } catch (...) {
      release();
      throw;
    }
  }();
  if (opts.dry_run) {
    release();
    if (store_.Get(r.group_resource(), target_ns, name)) {
      Error e = Error::AlreadyExists(r.group_resource() + " \"" + name + "\" already exists");
      e.WithDetails(r.plural, name, r.group);
      throw e;
    }
    return obj;
  }
  try {
    Record rec = store_.Mutate(r.group_resource(), target_ns, name, [&](const Json* cur) {
      if (cur != nullptr) {
        Error e = Error::AlreadyExists(r.group_resource() + " \"" + name + "\" already exists");
        e.WithDetails(r.plural, name, r.group);
        throw e;
      }
      return Mutation{Mutation::Action::kPut, obj};
    });
    // What was stored is `obj` plus its resourceVersion: no need to re-parse.
    obj["metadata"]["resourceVersion"] = std::to_string(rec.rv);
    quota_charge.Commit();
    if (r.plural == "events" && r.group.empty()) MaybeExpireEvents();
    if (IsCustomResourceDefinitions(r)) SyncCustomResources(store_);
    return r.custom ? ToServedVersion(r, std::move(obj)) : obj;
  } catch (...) {
    release();
    throw;
  }
}

void Registry::MaybeExpireEvents() {
  using namespace std::chrono;
  const int64_t now_ms =
      duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
  const int64_t every_ms =
      std::min<int64_t>(30000, duration_cast<milliseconds>(opts_.event_ttl).count());
  int64_t last = last_event_sweep_ms_.load();
  if (now_ms - last < every_ms || !last_event_sweep_ms_.compare_exchange_strong(last, now_ms)) {
    return;  // swept lately, or another thread sweeps now
  }
  // RFC 3339 in UTC sorts as text: older than the cutoff is smaller.
  const std::string cutoff = TimeFromNowRfc3339(-opts_.event_ttl.count());
  auto last_recorded = [](const Json& e) {
    std::string t = Str(e.value("metadata", Json::object()), "creationTimestamp");
    for (const char* k : {"lastTimestamp", "eventTime"}) {
      std::string v = Str(e, k);
      if (v.size() >= 20) v = v.substr(0, 19) + "Z";  // drop fractions
      if (v > t) t = v;
    }
    return t;
  };
  Store::ListResult expired = store_.List(EventsResource().group_resource(), "", [&](const Record& rec) {
    Json e = Json::parse(*rec.json, nullptr, false);
    return !e.is_discarded() && last_recorded(e) < cutoff;
  });
  for (const Record& rec : expired.items) {
    store_.Mutate(EventsResource().group_resource(), rec.ns, rec.name, [&](const Json* cur) {
      // Recorded again since it was listed: it stays.
      if (cur == nullptr || last_recorded(*cur) >= cutoff) return Mutation{};
      return Mutation{Mutation::Action::kDelete, Json()};
    });
  }
}

Json Registry::PrepareUpdate(const ResourceInfo& r, const Json& old, Json obj,
                             const std::string& subresource, const WriteOptions& opts,
                             bool is_apply) {
  CheckTypeMeta(r, obj);
  Json& m = Meta(obj);
  const Json& om = old["metadata"];
  std::string rv = Str(m, "resourceVersion");
  if (!rv.empty() && rv != Str(om, "resourceVersion")) throw ConflictError(r, Str(om, "name"));
  // Fields only the server sets.
  for (const char* k :
       {"uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation",
        "resourceVersion", "namespace"}) {
    if (om.contains(k))
      m[k] = om[k];
    else
      m.erase(k);
  }
  m.erase("selfLink");
  if (subresource == "status") {
    // Status writes change status only.
    Json keep = old;
    if (obj.contains("status"))
      keep["status"] = obj["status"];
    else
      keep.erase("status");
    obj = std::move(keep);
  } else if (HasStatus(r)) {
    if (old.contains("status"))
      obj["status"] = old["status"];
    else
      obj.erase("status");
  }
  if (r.group.empty() && r.plural == "namespaces" && subresource.empty()) {
    // As kube-apiserver's namespace strategy: spec.finalizers change only
    // through namespaces/NAME/finalize. An update or an apply that leaves
    // them out (`kubectl apply --server-side` over a client-side apply
    // prunes what it took over) keeps `kubernetes`, without which the
    // namespace would go at once, before its content.
    const Json& old_spec = old.value("spec", Json::object());
    if (old_spec.contains("finalizers")) {
      obj["spec"]["finalizers"] = old_spec["finalizers"];
    } else if (obj.contains("spec") && obj["spec"].is_object()) {
      obj["spec"].erase("finalizers");
    }
  }
  if (subresource != "status") {
    ApplyDefaults(r.group, r.kind, obj, {opts_.default_toleration_seconds});
    // kube-apiserver's dropTypeDependentFields: a Service that no longer
    // needs its healthCheckNodePort (and did not change it) drops it.
    if (r.plural == "services" && !NeedsHealthCheckNodePort(obj) && obj.contains("spec") &&
        old.contains("spec") && obj["spec"].value("healthCheckNodePort", 0) != 0 &&
        obj["spec"]["healthCheckNodePort"] == old["spec"].value("healthCheckNodePort", Json())) {
      obj["spec"].erase("healthCheckNodePort");
    }
    // ... and so do its node ports (when it adds none), allocateLoadBalancerNodePorts
    // and loadBalancerClass off LoadBalancer, externalTrafficPolicy off NodePort
    // and LoadBalancer, each when the user left it as it was: `kubectl patch
    // svc s -p '{"spec":{"type":"ClusterIP"}}'` turns a NodePort Service back.
    if (r.plural == "services" && r.group.empty() && obj.contains("spec") &&
        obj["spec"].is_object() && old.contains("spec") && old["spec"].is_object()) {
      Json& spec = obj["spec"];
      const Json& was = old["spec"];
      const std::string type = Str(spec, "type");
      auto same = [&](const char* key) {
        return spec.value(key, Json()) == was.value(key, Json());
      };
      if (!NeedsNodePorts(obj) && spec.contains("ports") && spec["ports"].is_array()) {
        // sameNodePorts: no node port the old spec did not have.
        std::vector<int> had = NodePortsOf(old);
        bool adds = false;
        for (const auto& p : spec["ports"]) {
          int np = p.value("nodePort", 0);
          if (np != 0 && std::find(had.begin(), had.end(), np) == had.end()) adds = true;
        }
        if (!adds) {
          for (auto& p : spec["ports"]) p.erase("nodePort");
        }
      }
      if (type != "LoadBalancer" && same("allocateLoadBalancerNodePorts")) {
        spec.erase("allocateLoadBalancerNodePorts");
      }
      if (type != "LoadBalancer" && same("loadBalancerClass")) spec.erase("loadBalancerClass");
      if (type != "NodePort" && type != "LoadBalancer" && same("externalTrafficPolicy")) {
        spec.erase("externalTrafficPolicy");
      }
    }
    if (SpecPart(obj) != SpecPart(old) && Meta(obj).contains("generation")) {
      Meta(obj)["generation"] = Meta(obj)["generation"].get<int64_t>() + 1;
    }
    // Kubernetes never lets a deleting object gain finalizers back... but it
    // may lose them; and the metadata the server owns was restored above.
  }
  // Server-side apply already recorded its ownership as an Apply entry.
  if (!is_apply) {
    RecordUpdateManagedFields(old, obj, opts.field_manager.empty() ? "unknown" : opts.field_manager,
                              r.api_version(), NowRfc3339());
  }
  if (IsCustomResourceDefinitions(r)) PrepareCustomResourceDefinition(obj, &old);
  if (r.custom) PrepareCustomResource(r, obj, &old);
  ValidateObject(r.group, r.kind, obj, &old);
  KeepManagedFieldsTimes(old, obj);
  return obj;
}

Json Registry::UpdateWith(const ResourceInfo& r, const std::string& ns, const std::string& name,
                          const std::string& subresource, const WriteOptions& opts,
                          const std::function<Json(const Json& current)>& change,
                          bool create_if_missing, bool is_apply) {
  std::string key_ns = r.namespaced ? ns : "";
  // Admission webhooks are remote calls: they run outside the store's lock,
  // on the object as it stands now; the write then stores what they
  // admitted only if nobody changed the object meanwhile, else all runs
  // again (as kube-apiserver's GuaranteedUpdate retries).
  // So do the admission plugins that read or write other keys of the
  // store (never from inside a Mutate, whose lock the store does not
  // re-enter): ResourceQuota on the updates it evaluates (it charges what
  // the update adds), PersistentVolumeClaimResize (the claim's
  // StorageClass) and Priority (the other PriorityClasses).
  thread_local bool admitting = false;
  const bool webhooks = WebhooksAdmit(r) && webhooks_->Any();
  const bool quota_admits = !admitting && QuotaEvaluatesUpdates(r, subresource) &&
                            NamespaceHasQuotas(store_, key_ns);
  const bool claim_resize =
      r.group.empty() && r.plural == "persistentvolumeclaims" && subresource.empty();
  // The Priority admission lists the other PriorityClasses (one global default).
  const bool priority_class =
      r.group == "scheduling.k8s.io" && r.plural == "priorityclasses" && subresource.empty();
  if (!admitting && (webhooks || quota_admits || claim_resize || priority_class)) {
    struct Stale {};
    for (int attempt = 0;; ++attempt) {
      auto rec = store_.Get(r.group_resource(), key_ns, name);
      if (!rec) break;  // not found, or created: as without webhooks
      const Json stored = rec->Parse();
      // Custom resources in their served version (as `change` expects).
      const Json cur = r.custom ? ToServedVersion(r, stored) : stored;
      Json next = PrepareUpdate(r, stored, change(cur), subresource, opts, is_apply);
      if (next == stored) break;  // a no-op write: nothing to admit
      if (webhooks) {
        if (r.custom) next = ToServedVersion(r, std::move(next));
        next = webhooks_->Mutate(UpdateAttributes(r, subresource, next, cur, opts));
        if (subresource.empty()) {
          ApplyDefaults(r.group, r.kind, next, {opts_.default_toleration_seconds});
        }
      }
      // Validating admission, in kube-apiserver's plugin order.
      if (priority_class) AdmitPriorityClass(store_, next);
      if (claim_resize) AdmitClaimResize(store_, next, stored);
      if (webhooks) webhooks_->Validate(UpdateAttributes(r, subresource, next, cur, opts));
      // The ResourceQuota admission, last: given back unless stored.
      QuotaCharge quota_charge =
          quota_admits ? AdmitResourceQuota(store_, r, key_ns, next, &stored, opts.dry_run)
                       : QuotaCharge();
      const std::string rv = Str(cur["metadata"], "resourceVersion");
      admitting = true;
      try {
        Json out = UpdateWith(
            r, ns, name, subresource, opts,
            [&](const Json& now) -> Json {
              if (Str(now["metadata"], "resourceVersion") != rv) throw Stale{};
              return next;
            },
            false, is_apply);
        admitting = false;
        quota_charge.Commit();
        return out;
      } catch (const Stale&) {
        admitting = false;
        if (attempt >= 4) throw ConflictError(r, name);
        // Changed meanwhile: a no-op write waits until that change is
        // durable (what Get shows) before admitting again.
        store_.Mutate(r.group_resource(), key_ns, name, [](const Json*) { return Mutation{}; });
      } catch (...) {
        admitting = false;
        throw;
      }
    }
  }
  bool created = false;
  Json created_obj;
  Json dry_result;
  // Service port changes: allocate node ports for new ports outside the lock.
  std::vector<int> old_node_ports;   // a Service's, before the update
  std::vector<int> allocated_ports;  // node ports the update took: given back unless stored
  struct GiveBackPorts {
    std::vector<int>& ports;
    Allocators& alloc;
    ~GiveBackPorts() {
      for (int p : ports) alloc.ReleasePort(p);
    }
  } give_back{allocated_ports, *alloc_};
  Record rec = store_.Mutate(r.group_resource(), key_ns, name, [&](const Json* cur) -> Mutation {
    if (cur == nullptr) {
      if (!create_if_missing) throw NotFoundError(r, name);
      created = true;
      return Mutation{};
    }
    if (r.plural == "services" && r.group.empty()) old_node_ports = NodePortsOf(*cur);
    Json desired = change(r.custom ? ToServedVersion(r, *cur) : *cur);
    const Json& dm = desired.value("metadata", Json::object());
    if (!Str(dm, "name").empty() && Str(dm, "name") != name) {
      throw Error::BadRequest("the name of the object (" + Str(dm, "name") +
                              ") does not match the name on the URL (" + name + ")");
    }
    if (r.namespaced && !Str(dm, "namespace").empty() && Str(dm, "namespace") != key_ns) {
      throw Error::BadRequest(
          "the namespace of the provided object does not match the namespace sent on the request");
    }
    Json next = PrepareUpdate(r, *cur, std::move(desired), subresource, opts, is_apply);
    if (r.plural == "services" && subresource.empty()) {
      // Cluster IPs are immutable once set (validation reports changes);
      // keep the allocation fields the user did not send.
      const Json& os = (*cur)["spec"];
      Json& ns_ = next["spec"];
      if (Str(ns_, "clusterIP").empty() && os.contains("clusterIP"))
        ns_["clusterIP"] = os["clusterIP"];
      if (!ns_.contains("clusterIPs") && os.contains("clusterIPs"))
        ns_["clusterIPs"] = os["clusterIPs"];
      // Node ports: keep the old port of a port that kept its number.
      if (NeedsNodePorts(next) && ns_.contains("ports")) {
        for (auto& p : ns_["ports"]) {
          if (p.contains("nodePort") && p["nodePort"] != 0) continue;
          for (const auto& op : os.value("ports", Json::array())) {
            if (op.value("port", 0) == p.value("port", -1) && op.contains("nodePort")) {
              p["nodePort"] = op["nodePort"];
            }
          }
        }
        // ... allocate one for a port still without (a Service turned
        // NodePort or LoadBalancer, a port added) and reserve one chosen
        // anew, as kube-apiserver's allocator does on updates.
        const std::vector<int> had = NodePortsOf(*cur);
        int i = 0;
        for (auto& p : ns_["ports"]) {
          const std::string field = "spec.ports[" + std::to_string(i++) + "].nodePort";
          int np = p.value("nodePort", 0);
          if (np == 0) {
            np = alloc_->AllocatePort();
            allocated_ports.push_back(np);
            p["nodePort"] = np;
          } else if (std::find(had.begin(), had.end(), np) == had.end() &&
                     std::find(allocated_ports.begin(), allocated_ports.end(), np) ==
                         allocated_ports.end()) {
            try {
              alloc_->ReservePort(np, field);
            } catch (const Error& e) {
              std::string msg = "Service \"" + name + "\" is invalid: " + field + ": " + e.message();
              Error full = Error::Invalid(msg);
              full.WithDetails("Service", name);
              for (const auto& c : e.causes()) full.WithCause(c);
              throw full;
            }
            allocated_ports.push_back(np);
          }
        }
      }
      // The health check port: kept while still needed (it is immutable),
      // allocated when a Service turns to LoadBalancer with policy Local.
      if (NeedsHealthCheckNodePort(next) && ns_.value("healthCheckNodePort", 0) == 0) {
        if (os.value("healthCheckNodePort", 0) != 0) {
          ns_["healthCheckNodePort"] = os["healthCheckNodePort"];
        } else {
          allocated_ports.push_back(alloc_->AllocatePort());
          ns_["healthCheckNodePort"] = allocated_ports.back();
        }
      }
    }
    // A deleting object whose last finalizer went away is removed.
    if (IsTerminating(next) && !HasFinalizers(next) &&
        !(r.plural == "pods" && NeedsGracefulDeletion(next)) &&
        !(r.plural == "namespaces" && HasSpecFinalizers(next))) {
      return Mutation{Mutation::Action::kDelete, {}};
    }
    if (next == *cur) return Mutation{};  // no-op: nothing changes, no new revision
    if (opts.dry_run) {
      dry_result = std::move(next);
      return Mutation{};
    }
    return Mutation{Mutation::Action::kPut, std::move(next)};
  });
  if (!opts.dry_run) allocated_ports.clear();  // stored: the Service holds them
  if (opts.dry_run && !dry_result.is_null()) return dry_result;
  if (created) {
    Json obj = change(Json::object());
    Meta(obj)["name"] = name;
    return Create(r, ns, std::move(obj), opts);
  }
  // Node ports of a Service that changed type or ports: sync the allocator,
  // and free those it no longer uses.
  if (r.plural == "services" && rec.json) {
    Json svc = rec.Parse();
    std::vector<int> now_used = NodePortsOf(svc);
    for (int p : now_used) {
      std::lock_guard lock(alloc_->mu);
      alloc_->node_ports.insert(p);
    }
    for (int p : old_node_ports) {
      if (std::find(now_used.begin(), now_used.end(), p) == now_used.end()) alloc_->ReleasePort(p);
    }
  }
  Json out = rec.json ? rec.Parse() : Json();
  (void)created_obj;
  if (IsCustomResourceDefinitions(r)) {
    SyncCustomResources(store_);
    FinalizeCustomResourceDefinitions(*this);  // a finalizer removed by hand
  } else if (r.custom && CustomResourceDefinitionTerminating(r)) {
    FinalizeCustomResourceDefinitions(*this);  // an object's last finalizer went
  }
  return r.custom ? ToServedVersion(r, std::move(out)) : out;
}

Json Registry::Update(const ResourceInfo& r, const std::string& ns, const std::string& name,
                      Json obj, const std::string& subresource, const WriteOptions& opts) {
  if (subresource == "finalize" && r.plural == "namespaces") {
    // The namespace controller's write of spec.finalizers (as over HTTP):
    // the one write that may change them (PrepareUpdate).
    return UpdateWith(r, ns, name, subresource, opts, [&](const Json&) { return obj; });
  }
  if (!subresource.empty() && subresource != "status" && !(subresource == "scale")) {
    throw Error::NotFound("the server could not find the requested resource");
  }
  if (subresource == "scale") {
    if (!r.has_subresource("scale"))
      throw Error::NotFound("the server could not find the requested resource");
    int64_t replicas = obj.value("spec", Json::object()).value("replicas", int64_t{-1});
    if (replicas < 0) {
      throw Error::Invalid("Scale.autoscaling \"" + name +
                           "\" is invalid: spec.replicas: Invalid value: " +
                           std::to_string(replicas) + ": must be greater than or equal to 0")
          .WithCause({"FieldValueInvalid",
                      "Invalid value: " + std::to_string(replicas) +
                          ": must be greater than or equal to 0",
                      "spec.replicas"});
    }
    std::string rv = Str(obj.value("metadata", Json::object()), "resourceVersion");
    UpdateWith(r, ns, name, "", opts, [&](const Json& cur) {
      if (!rv.empty() && rv != Str(cur["metadata"], "resourceVersion"))
        throw ConflictError(r, name);
      Json n = cur;
      if (r.custom) {
        SetCustomResourceReplicas(r, n, replicas);  // the CRD's specReplicasPath
      } else {
        n["spec"]["replicas"] = replicas;
      }
      return n;
    });
    return GetScale(r, ns, name);
  }
  bool allow_create = r.plural == "endpoints" || r.plural == "leases" || r.plural == "events" ||
                      r.plural == "endpointslices";
  return UpdateWith(
      r, ns, name, subresource, opts, [&](const Json&) { return obj; }, allow_create);
}

Json Registry::Patch(const ResourceInfo& r, const std::string& ns, const std::string& name,
                     PatchType type, const std::string& body, const std::string& subresource,
                     const WriteOptions& opts) {
  Json patch;
  try {
    patch = type == PatchType::kApply ? ParseJsonOrYaml(body) : Json::parse(body);
  } catch (const Json::exception& e) {  // parse errors, and numbers JSON cannot hold
    throw Error::BadRequest(std::string("error decoding patch: ") + e.what());
  }
  if (type != PatchType::kJson && !patch.is_object()) {
    throw Error::BadRequest("the patch must be a JSON object");
  }
  if (r.custom && type == PatchType::kStrategic) {
    // As kube-apiserver: custom resources have no patch strategies.
    throw Error::UnsupportedMediaType(
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml");
  }
  if (subresource == "scale") {
    if (!r.has_subresource("scale"))
      throw Error::NotFound("the server could not find the requested resource");
    Json scale = GetScale(r, ns, name);
    Json next =
        type == PatchType::kJson ? ApplyJsonPatch(scale, patch) : ApplyMergePatch(scale, patch);
    next["metadata"].erase("resourceVersion");
    return Update(r, ns, name, next, "scale", opts);
  }
  if (type == PatchType::kApply) {
    if (opts.field_manager.empty()) {
      throw Error::BadRequest(
          "PATCH, application/apply-patch+yaml requires fieldManager to be set");
    }
    ApplyOptions ao;
    ao.manager = opts.field_manager;
    ao.force = opts.force;
    ao.now = NowRfc3339();
    bool exists = store_.Get(r.group_resource(), r.namespaced ? ns : "", name).has_value();
    if (!exists) {
      Json applied = ServerSideApply(Json(nullptr), patch, r.group, r.kind, ao);
      Meta(applied)["name"] = name;
      WriteOptions wo = opts;
      Json created = Create(r, ns, applied, wo);
      // Ownership is the applier's: replace the Update entry Create wrote.
      Json fixed = ServerSideApply(Json(nullptr), patch, r.group, r.kind, ao);
      if (fixed.contains("metadata") && fixed["metadata"].contains("managedFields")) {
        Json mf = fixed["metadata"]["managedFields"];
        return UpdateWith(
            r, ns, name, "", opts,
            [&](const Json& cur) {
              Json n = cur;
              n["metadata"]["managedFields"] = mf;
              return n;
            },
            false, /*is_apply=*/true);
      }
      return created;
    }
    return UpdateWith(
        r, ns, name, subresource, opts,
        [&](const Json& cur) { return ServerSideApply(cur, patch, r.group, r.kind, ao); }, false,
        /*is_apply=*/true);
  }
  return UpdateWith(r, ns, name, subresource, opts, [&](const Json& cur) {
    Json next;
    switch (type) {
      case PatchType::kMerge:
        next = ApplyMergePatch(cur, patch);
        break;
      case PatchType::kJson:
        next = ApplyJsonPatch(cur, patch);
        break;
      case PatchType::kStrategic:
        next = ApplyStrategicMergePatch(cur, patch, r.group, r.kind);
        break;
      default:
        break;
    }
    // A patch carrying a resourceVersion is a precondition.
    std::string prv = patch.is_object() && patch.contains("metadata")
                          ? Str(patch["metadata"], "resourceVersion")
                          : "";
    if (!prv.empty() && prv != Str(cur["metadata"], "resourceVersion"))
      throw ConflictError(r, name);
    if (next.contains("metadata"))
      next["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"];
    return next;
  });
}

Json Registry::Delete(const ResourceInfo& r, const std::string& ns, const std::string& name,
                      const DeleteOptions& opts) {
  std::string key_ns = r.namespaced ? ns : "";
  if (WebhooksAdmit(r) && webhooks_->Any()) {
    // Admission of the delete, on the object as it stands.
    if (auto rec = store_.Get(r.group_resource(), key_ns, name)) {
      AdmissionAttributes a =
          DeleteAttributes(r, r.custom ? ToServedVersion(r, rec->Parse()) : rec->Parse(), opts);
      webhooks_->Mutate(a);
      webhooks_->Validate(a);
    }
  }
  bool removed = false;
  Json released_svc;
  if (opts.grace_period_seconds && *opts.grace_period_seconds < 0) {
    throw Error::Invalid(
        "DeleteOptions.meta.k8s.io \"\" is invalid: gracePeriodSeconds: Invalid value: " +
        std::to_string(*opts.grace_period_seconds) + ": must be greater than or equal to 0");
  }
  const std::string& policy = opts.propagation_policy;
  if (opts.dry_run) {
    Json cur = Get(r, ns, name);
    bool immediate = !HasFinalizers(cur) && policy != "Foreground" && policy != "Orphan";
    return immediate && !ReturnsDeletedObject(r) ? DeletedStatus(r, cur) : cur;
  }
  if (!policy.empty() && policy != "Background" && policy != "Foreground" && policy != "Orphan") {
    throw Error::Invalid(
        "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"" +
        policy + "\": supported values: \"Foreground\", \"Background\", \"Orphan\"")
        .WithCause({"FieldValueNotSupported", "Unsupported value: \"" + policy + "\"",
                    "propagationPolicy"});
  }
  Record rec = store_.Mutate(r.group_resource(), key_ns, name, [&](const Json* cur) -> Mutation {
    if (cur == nullptr) throw NotFoundError(r, name);
    const Json& m = (*cur)["metadata"];
    if (!opts.precondition_uid.empty() && opts.precondition_uid != Str(m, "uid")) {
      throw Error::Conflict("Operation cannot be fulfilled on " + r.group_resource() + " \"" +
                            name + "\": Precondition failed: UID in precondition: " +
                            opts.precondition_uid + ", UID in object meta: " + Str(m, "uid"))
          .WithDetails(r.plural, name, r.group);
    }
    if (!opts.precondition_resource_version.empty() &&
        opts.precondition_resource_version != Str(m, "resourceVersion")) {
      throw Error::Conflict("Operation cannot be fulfilled on " + r.group_resource() + " \"" +
                            name + "\": Precondition failed: ResourceVersion in precondition: " +
                            opts.precondition_resource_version +
                            ", ResourceVersion in object meta: " + Str(m, "resourceVersion"))
          .WithDetails(r.plural, name, r.group);
    }
    Json next = *cur;
    Json& nm = next["metadata"];
    // Delete propagation is recorded as finalizers, for the garbage collector.
    if (policy == "Foreground" || policy == "Orphan") {
      std::string fin = policy == "Foreground" ? "foregroundDeletion" : "orphan";
      if (!nm.contains("finalizers") || !nm["finalizers"].is_array())
        nm["finalizers"] = Json::array();
      bool has = false;
      for (auto& f : nm["finalizers"]) has = has || f == fin;
      if (!has) nm["finalizers"].push_back(fin);
    }
    if (r.plural == "namespaces") {
      if (!IsTerminating(next)) nm["deletionTimestamp"] = NowRfc3339();
      nm["deletionGracePeriodSeconds"] = 0;
      next["status"]["phase"] = "Terminating";
      // The namespace goes once its content is gone (the namespace
      // controller removes spec.finalizers' `kubernetes`).
      if (!HasFinalizers(next) && !HasSpecFinalizers(next)) {
        removed = true;
        return Mutation{Mutation::Action::kDelete, {}};
      }
      if (next == *cur) return Mutation{};
      return Mutation{Mutation::Action::kPut, next};
    }
    if (r.plural == "pods" && NeedsGracefulDeletion(next)) {
      int64_t grace = opts.grace_period_seconds
                          ? *opts.grace_period_seconds
                          : next["spec"].value("terminationGracePeriodSeconds", int64_t{30});
      int64_t current = nm.value("deletionGracePeriodSeconds", int64_t{-1});
      if (grace > 0) {
        // A second delete may only shorten the grace period.
        if (!IsTerminating(next) || grace < current) {
          nm["deletionTimestamp"] = TimeFromNowRfc3339(grace);
          nm["deletionGracePeriodSeconds"] = grace;
        }
        if (next == *cur) return Mutation{};
        return Mutation{Mutation::Action::kPut, next};
      }
    }
    if (HasFinalizers(next)) {
      if (!IsTerminating(next)) {
        nm["deletionTimestamp"] = NowRfc3339();
        nm["deletionGracePeriodSeconds"] = 0;
      }
      if (next == *cur) return Mutation{};
      return Mutation{Mutation::Action::kPut, next};
    }
    removed = true;
    if (r.plural == "services") released_svc = *cur;
    return Mutation{Mutation::Action::kDelete, {}};
  });
  if (!released_svc.is_null()) {
    for (const auto& ip : ClusterIPsOf(released_svc)) alloc_->ReleaseIP(ip);
    for (int p : NodePortsOf(released_svc)) alloc_->ReleasePort(p);
  }
  // A deleted CRD (or an object of a deleted CRD): its objects go, then it.
  if (rec.json && (IsCustomResourceDefinitions(r) ||
                   (r.custom && CustomResourceDefinitionTerminating(r)))) {
    FinalizeCustomResourceDefinitions(*this);
  }
  if (!rec.json) throw NotFoundError(r, name);
  Json deleted = rec.Parse();
  if (r.custom) deleted = ToServedVersion(r, std::move(deleted));
  return removed && !ReturnsDeletedObject(r) ? DeletedStatus(r, deleted) : deleted;
}

Json Registry::DeleteCollection(const ResourceInfo& r, const std::string& ns,
                                const ListOptions& list, const DeleteOptions& opts) {
  LabelSelector ls;
  FieldSelector fs;
  auto filter = MakeFilter(r, list, ls, fs);
  auto res = store_.List(r.group_resource(), r.namespaced ? ns : "", filter);
  // The answer lists the objects as they were before (as kube-apiserver's
  // store returns the list it deleted from), not each delete's own answer.
  Json items = Json::array();
  for (const auto& rec : res.items) {
    try {
      Json before = rec.Parse();
      Delete(r, rec.ns, rec.name, opts);
      items.push_back(std::move(before));
    } catch (const Error& e) {
      if (e.code() != Code::kNotFound) throw;
    }
  }
  return {{"kind", r.list_kind()},
          {"apiVersion", r.api_version()},
          {"metadata", {{"resourceVersion", std::to_string(store_.revision())}}},
          {"items", items}};
}

std::unique_ptr<RegistryWatch> Registry::Watch(const ResourceInfo& r, const std::string& ns,
                                               const ListOptions& opts) {
  auto w = std::make_unique<RegistryWatch>();
  LabelSelector ls;
  FieldSelector fs;
  MakeFilter(r, opts, ls, fs);  // validates the selectors
  w->labels_ = ls;
  w->fields_ = fs;
  w->ns_ = r.namespaced ? ns : "";
  w->store_ = &store_;
  uint64_t from = 0;
  const std::string& rv = opts.resource_version;
  if (rv.empty() || rv == "0") {
    // "Start at the most recent": synthetic ADDED events for what exists,
    // then every change after the list.
    std::function<bool(const Record&)> filter = [&](const Record& rec) {
      if (!ls.empty() && !ls.Matches(rec.labels ? *rec.labels : Json(nullptr))) return false;
      for (const auto& req : fs.requirements()) {
        const std::string* v = rec.Field(req.field);
        if (((v ? *v : std::string()) == req.value) == req.negate) return false;
      }
      return true;
    };
    auto res = store_.List(r.group_resource(), w->ns_, filter);
    for (const auto& rec : res.items) w->initial_.push_back({"ADDED", rec.rv, rec.json});
    if (r.custom && r.version != r.storage_version) {
      for (auto& e : w->initial_) {
        e.json = std::make_shared<const std::string>(ToServedVersion(r, Json::parse(*e.json)).dump());
      }
    }
    from = res.rv;
    if (from == 0) from = 1;  // never "now" again: the list's revision is the start
  } else {
    char* end = nullptr;
    from = std::strtoull(rv.c_str(), &end, 10);
    if (*end != '\0') throw Error::BadRequest("invalid resource version \"" + rv + "\"");
  }
  w->last_rv_ = from;
  if (r.custom && r.version != r.storage_version) w->served_ = &r;
  w->queue_ = store_.Watch(r.group_resource(), from);
  return w;
}

Json Registry::BindPod(const std::string& ns, const std::string& name, const Json& binding) {
  const Json& target = binding.value("target", Json::object());
  std::string node = Str(target, "name");
  if (node.empty()) {
    throw Error::Invalid("Binding \"" + name + "\" is invalid: target.name: Required value")
        .WithCause({"FieldValueRequired", "Required value", "target.name"});
  }
  // One write sets spec.nodeName (which updates may not change) and the
  // PodScheduled condition, as the binding REST storage does.
  store_.Mutate("pods", ns, name, [&](const Json* cur) -> Mutation {
    if (cur == nullptr) throw NotFoundError(PodsResource(), name);
    if (!Str((*cur)["spec"], "nodeName").empty()) {
      throw Error::Conflict("Operation cannot be fulfilled on pods/binding \"" + name + "\": pod " +
                            name + " is already assigned to node \"" +
                            Str((*cur)["spec"], "nodeName") + "\"")
          .WithDetails("pods/binding", name);
    }
    if (IsTerminating(*cur)) {
      throw Error::Conflict("Operation cannot be fulfilled on pods/binding \"" + name + "\": pod " +
                            name + " is being deleted, cannot be assigned to a host");
    }
    Json n = *cur;
    n["spec"]["nodeName"] = node;
    Json conds = Json::array();
    for (const auto& c : n["status"].value("conditions", Json::array())) {
      if (c.value("type", "") != "PodScheduled") conds.push_back(c);
    }
    conds.push_back({{"type", "PodScheduled"},
                     {"status", "True"},
                     {"lastProbeTime", nullptr},
                     {"lastTransitionTime", NowRfc3339()}});
    n["status"]["conditions"] = conds;
    return Mutation{Mutation::Action::kPut, n};
  });
  return SuccessStatus("pods/binding", name);
}

Json Registry::GetScale(const ResourceInfo& r, const std::string& ns, const std::string& name) {
  Json obj = Get(r, ns, name);
  if (r.custom) return CustomResourceScale(r, obj);
  const Json& m = obj["metadata"];
  Json sel = obj["spec"].value("selector", Json::object());
  // A ReplicationController's selector is a plain label map.
  if (r.kind == "ReplicationController" && sel.is_object()) sel = {{"matchLabels", sel}};
  std::string selector = LabelSelector::FromJson(sel).ToString();
  return {{"kind", "Scale"},
          {"apiVersion", "autoscaling/v1"},
          {"metadata",
           {{"name", m["name"]},
            {"namespace", m["namespace"]},
            {"uid", m["uid"]},
            {"resourceVersion", m["resourceVersion"]},
            {"creationTimestamp", m["creationTimestamp"]}}},
          {"spec", {{"replicas", obj["spec"].value("replicas", 0)}}},
          {"status",
           {{"replicas", obj.value("status", Json::object()).value("replicas", 0)},
            {"selector", selector}}}};
}

}  // namespace kin::apiserver
