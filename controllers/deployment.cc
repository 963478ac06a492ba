#include "controllers/deployment.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <functional>

#include "base/error.h"
#include "base/log.h"
#include "client/object.h"
#include "client/selector.h"

namespace kin::controllers {

using workloads::WallTime;

namespace {

constexpr char kRevision[] = "deployment.kubernetes.io/revision";
constexpr char kRevisionHistory[] = "deployment.kubernetes.io/revision-history";
constexpr char kDesiredReplicas[] = "deployment.kubernetes.io/desired-replicas";
constexpr char kMaxReplicas[] = "deployment.kubernetes.io/max-replicas";
constexpr char kHashLabel[] = "pod-template-hash";
constexpr size_t kMaxRevHistoryLengthInChars = 2000;

// Progressing / Available reasons (deploymentutil).
constexpr char kReplicaSetUpdated[] = "ReplicaSetUpdated";
constexpr char kFailedRSCreate[] = "ReplicaSetCreateError";
constexpr char kNewReplicaSetCreated[] = "NewReplicaSetCreated";
constexpr char kFoundNewRS[] = "FoundNewReplicaSet";
constexpr char kNewRSAvailable[] = "NewReplicaSetAvailable";
constexpr char kTimedOut[] = "ProgressDeadlineExceeded";
constexpr char kPaused[] = "DeploymentPaused";
constexpr char kResumed[] = "DeploymentResumed";
constexpr char kMinimumReplicasAvailable[] = "MinimumReplicasAvailable";
constexpr char kMinimumReplicasUnavailable[] = "MinimumReplicasUnavailable";

const Json& EmptyObject() {
  static const Json empty = Json::object();
  return empty;
}
const Json& ObjAt(const Json& j, const char* key) {
  if (!j.is_object()) return EmptyObject();
  auto it = j.find(key);
  return it != j.end() && it->is_object() ? *it : EmptyObject();
}
int64_t IntAt(const Json& j, const char* key, int64_t def = 0) {
  if (!j.is_object()) return def;
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : def;
}
std::string StrAt(const Json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

int64_t Replicas(const Json& o) { return IntAt(ObjAt(o, "spec"), "replicas", 1); }
void SetReplicas(Json& o, int64_t n) { o["spec"]["replicas"] = n; }
int64_t StatusInt(const Json& o, const char* f) { return IntAt(ObjAt(o, "status"), f); }
std::string Created(const Json& o) { return StrAt(ObjAt(o, "metadata"), "creationTimestamp"); }

std::optional<std::string> Annotation(const Json& o, const std::string& key) {
  const Json& ann = ObjAt(ObjAt(o, "metadata"), "annotations");
  auto it = ann.find(key);
  if (it == ann.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}
Json& Annotations(Json& o) {
  Json& m = o["metadata"];
  if (!m.contains("annotations") || !m["annotations"].is_object()) {
    m["annotations"] = Json::object();
  }
  return m["annotations"];
}

std::optional<int64_t> ParseInt(const std::string& s) {
  if (s.empty()) return std::nullopt;
  try {
    size_t used = 0;
    long long v = std::stoll(s, &used, 10);
    if (used != s.size()) return std::nullopt;
    return v;
  } catch (...) {
    return std::nullopt;
  }
}

// The revision of a ReplicaSet: 0 when unset, nullopt when unparsable.
std::optional<int64_t> Revision(const Json& rs) {
  auto v = Annotation(rs, kRevision);
  if (!v) return 0;
  return ParseInt(*v);
}

int64_t MaxRevision(const std::vector<Json>& rss) {
  int64_t max = 0;
  for (const Json& rs : rss) {
    if (auto v = Revision(rs)) max = std::max(max, *v);
  }
  return max;
}

bool CreatedBefore(const Json& a, const Json& b) {
  std::string ca = Created(a), cb = Created(b);
  if (ca != cb) return ca < cb;
  return object::Name(a) < object::Name(b);
}

void SortByCreation(std::vector<Json>& v) { std::stable_sort(v.begin(), v.end(), CreatedBefore); }

// Larger first; ties: older first (scaling down) or newer first (up).
void SortBySize(std::vector<Json>& v, bool newer_first) {
  std::stable_sort(v.begin(), v.end(), [&](const Json& a, const Json& b) {
    if (Replicas(a) != Replicas(b)) return Replicas(a) > Replicas(b);
    return newer_first ? CreatedBefore(b, a) : CreatedBefore(a, b);
  });
}

std::vector<Json> FilterActive(const std::vector<Json>& v) {
  std::vector<Json> out;
  for (const Json& rs : v) {
    if (Replicas(rs) > 0) out.push_back(rs);
  }
  return out;
}

int64_t SumReplicas(const std::vector<Json>& v) {
  int64_t n = 0;
  for (const Json& rs : v) n += Replicas(rs);
  return n;
}
int64_t SumStatus(const std::vector<Json>& v, const char* f) {
  int64_t n = 0;
  for (const Json& rs : v) n += StatusInt(rs, f);
  return n;
}

// Drops null members (kubectl sends "creationTimestamp": null, which Go
// reads as unset).
void StripNulls(Json& j) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end();) {
      if (it->is_null()) {
        it = j.erase(it);
      } else {
        StripNulls(*it);
        ++it;
      }
    }
  } else if (j.is_array()) {
    for (Json& e : j) StripNulls(e);
  }
}

// A template without the pod-template-hash label, as Go's semantic
// equality sees it: no null members, no empty labels/annotations map.
Json WithoutHash(const Json& tmpl) {
  Json t = tmpl.is_object() ? tmpl : Json::object();
  StripNulls(t);
  if (t.contains("metadata") && t["metadata"].is_object()) {
    Json& m = t["metadata"];
    if (m.contains("labels") && m["labels"].is_object()) m["labels"].erase(kHashLabel);
    for (const char* k : {"labels", "annotations"}) {
      if (m.contains(k) && (m[k].is_null() || (m[k].is_object() && m[k].empty()))) m.erase(k);
    }
    if (m.empty()) t.erase("metadata");
  }
  return t;
}

bool EqualIgnoreHash(const Json& a, const Json& b) { return WithoutHash(a) == WithoutHash(b); }

const Json& Strategy(const Json& d) { return ObjAt(ObjAt(d, "spec"), "strategy"); }
bool IsRollingUpdate(const Json& d) { return StrAt(Strategy(d), "type") == "RollingUpdate"; }

int64_t MaxSurge(const Json& d) {
  if (!IsRollingUpdate(d)) return 0;
  const Json& ru = ObjAt(Strategy(d), "rollingUpdate");
  return ResolveFenceposts(ru.value("maxSurge", Json(nullptr)),
                           ru.value("maxUnavailable", Json(nullptr)), Replicas(d))
      .first;
}

int64_t MaxUnavailable(const Json& d) {
  if (!IsRollingUpdate(d) || Replicas(d) == 0) return 0;
  const Json& ru = ObjAt(Strategy(d), "rollingUpdate");
  int64_t u = ResolveFenceposts(ru.value("maxSurge", Json(nullptr)),
                                ru.value("maxUnavailable", Json(nullptr)), Replicas(d))
                  .second;
  return std::min(u, Replicas(d));
}

bool HasProgressDeadline(const Json& d) {
  const Json& spec = ObjAt(d, "spec");
  auto it = spec.find("progressDeadlineSeconds");
  return it != spec.end() && it->is_number_integer() && it->get<int64_t>() != INT32_MAX;
}

bool HasRevisionHistoryLimit(const Json& d) {
  const Json& spec = ObjAt(d, "spec");
  auto it = spec.find("revisionHistoryLimit");
  return it != spec.end() && it->is_number_integer() && it->get<int64_t>() != INT32_MAX;
}

// --- conditions (deploymentutil) ---

const Json* GetCondition(const Json& status, const std::string& type) {
  return object::StatusCondition(status, type);
}

void RemoveCondition(Json& status, const std::string& type) {
  if (!status.contains("conditions") || !status["conditions"].is_array()) return;
  Json kept = Json::array();
  for (const Json& c : status["conditions"]) {
    if (StrAt(c, "type") != type) kept.push_back(c);
  }
  if (kept.empty()) {
    status.erase("conditions");
  } else {
    status["conditions"] = std::move(kept);
  }
}

// SetDeploymentCondition: no change when status and reason are the same;
// lastTransitionTime kept when only the reason changes.
void SetCondition(Json& status, Json cond) {
  if (const Json* cur = GetCondition(status, StrAt(cond, "type"))) {
    if (StrAt(*cur, "status") == StrAt(cond, "status") &&
        StrAt(*cur, "reason") == StrAt(cond, "reason")) {
      return;
    }
    if (StrAt(*cur, "status") == StrAt(cond, "status")) {
      cond["lastTransitionTime"] = cur->value("lastTransitionTime", Json(nullptr));
    }
  }
  RemoveCondition(status, StrAt(cond, "type"));
  if (!status.contains("conditions") || !status["conditions"].is_array()) {
    status["conditions"] = Json::array();
  }
  status["conditions"].push_back(std::move(cond));
}

}  // namespace

std::string SafeEncodeString(std::string_view s) {
  static constexpr char kAlphanums[] = "bcdfghjklmnpqrstvwxz2456789";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) out.push_back(kAlphanums[c % (sizeof kAlphanums - 1)]);
  return out;
}

std::string ComputePodTemplateHash(const Json& pod_template,
                                   std::optional<int64_t> collision_count) {
  uint32_t h = 2166136261u;  // FNV-32a
  auto feed = [&h](const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) {
      h ^= p[i];
      h *= 16777619u;
    }
  };
  std::string text = pod_template.dump();  // object keys are sorted
  feed(text.data(), text.size());
  if (collision_count) {
    unsigned char bytes[8] = {};
    auto v = static_cast<uint32_t>(*collision_count);
    for (int i = 0; i < 4; ++i) bytes[i] = static_cast<unsigned char>(v >> (8 * i));
    feed(bytes, sizeof bytes);
  }
  return SafeEncodeString(std::to_string(h));
}

std::pair<int64_t, int64_t> ResolveFenceposts(const Json& max_surge, const Json& max_unavailable,
                                              int64_t desired) {
  int64_t surge = ScaledValue(max_surge, desired, true, "spec.strategy.rollingUpdate.maxSurge");
  int64_t unavailable =
      ScaledValue(max_unavailable, desired, false, "spec.strategy.rollingUpdate.maxUnavailable");
  // Rounding down may make both 0; then one may be unavailable, in case a
  // surge pod cannot be made (quota).
  if (surge == 0 && unavailable == 0) unavailable = 1;
  return {surge, unavailable};
}

// One sync of one Deployment: upstream's functions over a copy of the
// Deployment and of the ReplicaSets it controls.
struct DeploymentController::Sync {
  DeploymentController& c;
  Json d;
  std::vector<Json> rs_list;                              // controlled
  std::map<std::string, std::vector<ObjectPtr>> pod_map;  // rs uid -> pods
  WallTime now;
  std::optional<Result> requeue;

  Client& client() { return c.identity_.client(); }
  const ResourceInfo& RsResource() { return c.rss_.resource(); }
  std::string Ns() { return object::Namespace(d); }
  Json EventObject() {
    Json o = d;
    o["apiVersion"] = "apps/v1";
    o["kind"] = "Deployment";
    return o;
  }
  std::string Now() { return object::FormatRfc3339(now); }
  Json NewCondition(const std::string& type, const std::string& status, const std::string& reason,
                    const std::string& message) {
    return {{"type", type},
            {"status", status},
            {"lastUpdateTime", Now()},
            {"lastTransitionTime", Now()},
            {"reason", reason},
            {"message", message}};
  }
  Json& Status() {
    if (!d.contains("status") || !d["status"].is_object()) d["status"] = Json::object();
    return d["status"];
  }

  // Writes d's status as it stands (the status is the controller's alone:
  // no resourceVersion precondition).
  void WriteStatus() {
    Json obj = d;
    obj["metadata"].erase("resourceVersion");
    client().Update(*FindResource("apps", "v1", "deployments"), Ns(), obj, "status");
  }

  // SetDeploymentRevision; kin's status writes keep metadata, so the
  // annotation goes by a patch of its own.
  void SetDeploymentRevision(const std::string& revision) {
    if (Annotation(d, kRevision) == revision) return;
    Annotations(d)[kRevision] = revision;
    client().Patch(*FindResource("apps", "v1", "deployments"), Ns(), object::Name(d),
                   PatchType::kMerge, {{"metadata", {{"annotations", {{kRevision, revision}}}}}});
  }

  Json UpdateRs(const Json& rs) {
    Json made = client().Update(RsResource(), Ns(), rs);
    for (Json& r : rs_list) {
      if (object::Uid(r) == object::Uid(made)) r = made;
    }
    return made;
  }

  // --- annotations (deploymentutil) ---

  bool CopyDeploymentAnnotations(Json& rs) {
    bool changed = false;
    const Json& ann = ObjAt(ObjAt(d, "metadata"), "annotations");
    for (auto it = ann.begin(); it != ann.end(); ++it) {
      const std::string& k = it.key();
      if (k == "kubectl.kubernetes.io/last-applied-configuration" || k == kRevision ||
          k == kRevisionHistory || k == kDesiredReplicas || k == kMaxReplicas ||
          k == "deprecated.deployment.rollback.to") {
        continue;
      }
      Json& ra = Annotations(rs);
      if (ra.contains(k) && ra[k] == it.value()) continue;
      ra[k] = it.value();
      changed = true;
    }
    return changed;
  }

  bool SetReplicasAnnotations(Json& rs, int64_t desired, int64_t max) {
    bool changed = false;
    Json& ra = Annotations(rs);
    for (auto [k, v] : {std::pair{kDesiredReplicas, desired}, std::pair{kMaxReplicas, max}}) {
      std::string s = std::to_string(v);
      if (!(ra.contains(k) && ra[k] == s)) {
        ra[k] = s;
        changed = true;
      }
    }
    return changed;
  }

  bool ReplicasAnnotationsNeedUpdate(const Json& rs, int64_t desired, int64_t max) {
    return Annotation(rs, kDesiredReplicas) != std::to_string(desired) ||
           Annotation(rs, kMaxReplicas) != std::to_string(max);
  }

  bool SetNewReplicaSetAnnotations(Json& rs, const std::string& new_revision, bool exists) {
    bool changed = CopyDeploymentAnnotations(rs);
    Json& ra = Annotations(rs);
    std::optional<std::string> old_revision = Annotation(rs, kRevision);
    int64_t old_int = 0;
    if (old_revision) {
      auto v = ParseInt(*old_revision);
      if (!v) return false;
      old_int = *v;
    }
    auto new_int = ParseInt(new_revision);
    if (!new_int) return false;
    if (old_int < *new_int) {
      ra[kRevision] = new_revision;
      changed = true;
      if (old_revision) {
        // Brought back (rollback): keep its former revisions.
        std::string history = Annotation(rs, kRevisionHistory).value_or("");
        if (history.empty()) {
          ra[kRevisionHistory] = *old_revision;
        } else {
          std::vector<std::string> parts;
          size_t start = 0;
          while (true) {
            size_t comma = history.find(',', start);
            parts.push_back(history.substr(start, comma - start));
            if (comma == std::string::npos) break;
            start = comma + 1;
          }
          size_t total = history.size() + old_revision->size() + 1;
          size_t first = 0;
          while (total > kMaxRevHistoryLengthInChars && first < parts.size()) {
            total -= parts[first].size() + 1;
            ++first;
          }
          if (total <= kMaxRevHistoryLengthInChars) {
            std::string joined;
            for (size_t i = first; i < parts.size(); ++i) joined += parts[i] + ",";
            ra[kRevisionHistory] = joined + *old_revision;
          }
        }
      }
    }
    if (!exists && SetReplicasAnnotations(rs, Replicas(d), Replicas(d) + MaxSurge(d))) {
      changed = true;
    }
    return changed;
  }

  // --- finding and making the new ReplicaSet (sync.go) ---

  std::optional<Json> FindNewReplicaSet() {
    std::vector<Json> sorted = rs_list;
    SortByCreation(sorted);
    const Json& tmpl = ObjAt(ObjAt(d, "spec"), "template");
    for (const Json& rs : sorted) {
      if (EqualIgnoreHash(ObjAt(ObjAt(rs, "spec"), "template"), tmpl)) return rs;
    }
    return std::nullopt;
  }

  // {new (may be absent), all old}
  std::pair<std::optional<Json>, std::vector<Json>> GetAllReplicaSetsAndSyncRevision(bool create) {
    std::optional<Json> existing = FindNewReplicaSet();
    std::vector<Json> old;
    for (const Json& rs : rs_list) {
      if (existing && object::Uid(rs) == object::Uid(*existing)) continue;
      old.push_back(rs);
    }
    std::optional<Json> fresh = GetNewReplicaSet(existing, old, create);
    return {std::move(fresh), std::move(old)};
  }

  std::optional<Json> GetNewReplicaSet(const std::optional<Json>& existing,
                                       const std::vector<Json>& old, bool create) {
    std::string new_revision = std::to_string(MaxRevision(old) + 1);
    if (existing) {
      Json rs = *existing;
      bool annotations_updated = SetNewReplicaSetAnnotations(rs, new_revision, true);
      int64_t min_ready = IntAt(ObjAt(d, "spec"), "minReadySeconds");
      if (annotations_updated || IntAt(ObjAt(rs, "spec"), "minReadySeconds") != min_ready) {
        rs["spec"]["minReadySeconds"] = min_ready;
        return UpdateRs(rs);
      }
      SetDeploymentRevision(Annotation(rs, kRevision).value_or(""));
      if (HasProgressDeadline(d) && !GetCondition(Status(), "Progressing")) {
        SetCondition(Status(), NewCondition("Progressing", "True", kFoundNewRS,
                                            "Found new replica set \"" + object::Name(rs) + "\""));
        WriteStatus();
      }
      return rs;
    }
    if (!create) return std::nullopt;

    const Json& spec = ObjAt(d, "spec");
    Json tmpl = ObjAt(spec, "template");
    std::optional<int64_t> collisions;
    if (ObjAt(d, "status").contains("collisionCount")) {
      collisions = IntAt(ObjAt(d, "status"), "collisionCount");
    }
    std::string hash = ComputePodTemplateHash(tmpl, collisions);
    tmpl["metadata"]["labels"][kHashLabel] = hash;
    Json selector = ObjAt(spec, "selector");
    selector["matchLabels"][kHashLabel] = hash;
    Json rs = {
        {"apiVersion", "apps/v1"},
        {"kind", "ReplicaSet"},
        {"metadata",
         {{"name", object::Name(d) + "-" + hash},
          {"namespace", Ns()},
          {"ownerReferences", Json::array({object::NewControllerRef(d, "apps/v1", "Deployment")})},
          {"labels", tmpl["metadata"]["labels"]}}},
        {"spec",
         {{"replicas", 0},
          {"minReadySeconds", IntAt(spec, "minReadySeconds")},
          {"selector", selector},
          {"template", tmpl}}}};
    std::vector<Json> all = old;
    all.push_back(rs);
    int64_t new_replicas = NewRSNewReplicas(all, rs);
    SetReplicas(rs, new_replicas);
    SetNewReplicaSetAnnotations(rs, new_revision, false);

    Json created;
    bool already_exists = false;
    try {
      created = client().Create(RsResource(), Ns(), rs);
    } catch (const Error& e) {
      if (e.code() == Code::kAlreadyExists) {
        already_exists = true;
        Json found = client().Get(RsResource(), Ns(), object::Name(rs));
        const Json* ref = object::ControllerOf(found);
        if (ref && ref->value("uid", "") == object::Uid(d) &&
            EqualIgnoreHash(ObjAt(spec, "template"), ObjAt(ObjAt(found, "spec"), "template"))) {
          created = std::move(found);
        } else {
          // A hash collision: count it, so that the next name differs.
          Status()["collisionCount"] = collisions.value_or(0) + 1;
          WriteStatus();
          throw;
        }
      } else if (e.code() == Code::kForbidden &&
                 e.message().find("because it is being terminated") != std::string::npos) {
        throw;
      } else {
        std::string msg =
            "Failed to create new replica set \"" + object::Name(rs) + "\": " + e.message();
        if (HasProgressDeadline(d)) {
          SetCondition(Status(), NewCondition("Progressing", "False", kFailedRSCreate, msg));
          try {
            WriteStatus();
          } catch (const Error&) {
            // The create failure is the news.
          }
        }
        c.identity_.events().Warning(EventObject(), kFailedRSCreate, msg);
        throw;
      }
    }
    if (!already_exists && new_replicas > 0) {
      c.identity_.events().Normal(EventObject(), "ScalingReplicaSet",
                                  "Scaled up replica set " + object::Name(created) + " from 0 to " +
                                      std::to_string(new_replicas));
    }
    SetDeploymentRevision(new_revision);
    if (!already_exists && HasProgressDeadline(d)) {
      SetCondition(Status(),
                   NewCondition("Progressing", "True", kNewReplicaSetCreated,
                                "Created new replica set \"" + object::Name(created) + "\""));
      WriteStatus();
    }
    rs_list.push_back(created);
    return created;
  }

  int64_t NewRSNewReplicas(const std::vector<Json>& all, const Json& new_rs) {
    std::string type = StrAt(Strategy(d), "type");
    if (type == "RollingUpdate") {
      int64_t max_surge =
          ScaledValue(ObjAt(Strategy(d), "rollingUpdate").value("maxSurge", Json(nullptr)),
                      Replicas(d), true, "spec.strategy.rollingUpdate.maxSurge");
      int64_t current = SumReplicas(all);
      int64_t max_total = Replicas(d) + max_surge;
      if (current >= max_total) return Replicas(new_rs);
      int64_t up = std::min(max_total - current, Replicas(d) - Replicas(new_rs));
      return Replicas(new_rs) + up;
    }
    if (type == "Recreate") return Replicas(d);
    throw Error::Invalid("deployment type " + type + " isn't supported");
  }

  // --- scaling (sync.go) ---

  std::pair<bool, Json> ScaleReplicaSet(const Json& rs, int64_t scale, const std::string& op) {
    bool size_changes = Replicas(rs) != scale;
    int64_t desired = Replicas(d), max = Replicas(d) + MaxSurge(d);
    if (!size_changes && !ReplicasAnnotationsNeedUpdate(rs, desired, max)) return {false, rs};
    int64_t old_scale = Replicas(rs);
    Json copy = rs;
    SetReplicas(copy, scale);
    SetReplicasAnnotations(copy, desired, max);
    Json updated = UpdateRs(copy);
    if (size_changes) {
      c.identity_.events().Normal(EventObject(), "ScalingReplicaSet",
                                  "Scaled " + op + " replica set " + object::Name(updated) +
                                      " from " + std::to_string(old_scale) + " to " +
                                      std::to_string(scale));
    }
    return {size_changes, updated};
  }

  std::pair<bool, Json> ScaleReplicaSetAndRecordEvent(const Json& rs, int64_t scale) {
    if (Replicas(rs) == scale) return {false, rs};
    return ScaleReplicaSet(rs, scale, Replicas(rs) < scale ? "up" : "down");
  }

  // FindActiveOrLatest: the only active ReplicaSet, or the newest when none is.
  std::optional<Json> FindActiveOrLatest(const std::optional<Json>& new_rs, std::vector<Json> old) {
    if (!new_rs && old.empty()) return std::nullopt;
    SortByCreation(old);
    std::reverse(old.begin(), old.end());
    std::vector<Json> all = old;
    if (new_rs) all.push_back(*new_rs);
    std::vector<Json> active = FilterActive(all);
    if (active.empty()) return new_rs ? *new_rs : old[0];
    if (active.size() == 1) return active[0];
    return std::nullopt;
  }

  bool IsSaturated(const std::optional<Json>& rs) {
    if (!rs) return false;
    auto desired = ParseInt(Annotation(*rs, kDesiredReplicas).value_or(""));
    if (!desired) return false;
    return Replicas(*rs) == Replicas(d) && *desired == Replicas(d) &&
           StatusInt(*rs, "availableReplicas") == Replicas(d);
  }

  int64_t ReplicaSetFraction(const Json& rs) {
    if (Replicas(d) == 0) return -Replicas(rs);
    int64_t deployment_replicas = Replicas(d) + MaxSurge(d);
    auto annotated = ParseInt(Annotation(rs, kMaxReplicas).value_or(""));
    int64_t base = annotated ? *annotated : StatusInt(d, "replicas");
    if (base == 0) return 0;
    double size =
        static_cast<double>(Replicas(rs) * deployment_replicas) / static_cast<double>(base);
    return static_cast<int64_t>(std::round(size)) - Replicas(rs);
  }

  int64_t GetProportion(const Json& rs, int64_t to_add, int64_t added) {
    if (Replicas(rs) == 0 || to_add == 0 || to_add == added) return 0;
    int64_t fraction = ReplicaSetFraction(rs);
    int64_t allowed = to_add - added;
    return to_add > 0 ? std::min(fraction, allowed) : std::max(fraction, allowed);
  }

  void Scale(const std::optional<Json>& new_rs, const std::vector<Json>& old) {
    if (auto one = FindActiveOrLatest(new_rs, old)) {
      if (Replicas(*one) == Replicas(d)) return;
      ScaleReplicaSetAndRecordEvent(*one, Replicas(d));
      return;
    }
    if (IsSaturated(new_rs)) {
      for (const Json& rs : FilterActive(old)) ScaleReplicaSetAndRecordEvent(rs, 0);
      return;
    }
    if (!IsRollingUpdate(d)) return;
    std::vector<Json> all = old;
    if (new_rs) all.push_back(*new_rs);
    all = FilterActive(all);
    int64_t all_replicas = SumReplicas(all);
    int64_t allowed = Replicas(d) > 0 ? Replicas(d) + MaxSurge(d) : 0;
    int64_t to_add = allowed - all_replicas;
    std::string op;
    if (to_add > 0) {
      SortBySize(all, /*newer_first=*/true);
      op = "up";
    } else if (to_add < 0) {
      SortBySize(all, /*newer_first=*/false);
      op = "down";
    }
    int64_t added = 0;
    std::vector<int64_t> sizes;
    for (const Json& rs : all) {
      if (to_add != 0) {
        int64_t p = GetProportion(rs, to_add, added);
        sizes.push_back(Replicas(rs) + p);
        added += p;
      } else {
        sizes.push_back(Replicas(rs));
      }
    }
    for (size_t i = 0; i < all.size(); ++i) {
      if (i == 0 && to_add != 0) {
        // Leftovers go to the largest.
        sizes[0] = std::max<int64_t>(0, sizes[0] + to_add - added);
      }
      ScaleReplicaSet(all[i], sizes[i], op);
    }
  }

  void CleanupDeployment(const std::vector<Json>& old) {
    if (!HasRevisionHistoryLimit(d)) return;
    std::vector<Json> cleanable;
    for (const Json& rs : old) {
      if (!object::IsBeingDeleted(rs)) cleanable.push_back(rs);
    }
    int64_t diff =
        static_cast<int64_t>(cleanable.size()) - IntAt(ObjAt(d, "spec"), "revisionHistoryLimit");
    if (diff <= 0) return;
    std::stable_sort(cleanable.begin(), cleanable.end(), [](const Json& a, const Json& b) {
      int64_t ra = Revision(a).value_or(0), rb = Revision(b).value_or(0);
      if (ra != rb) return ra < rb;
      return CreatedBefore(a, b);
    });
    for (int64_t i = 0; i < diff; ++i) {
      const Json& rs = cleanable[i];
      if (StatusInt(rs, "replicas") != 0 || Replicas(rs) != 0 ||
          IntAt(ObjAt(rs, "metadata"), "generation") > StatusInt(rs, "observedGeneration")) {
        continue;
      }
      try {
        client().Delete(RsResource(), Ns(), object::Name(rs));
      } catch (const Error& e) {
        if (e.code() != Code::kNotFound) throw;
      }
    }
  }

  // --- status (sync.go, progress.go) ---

  Json CalculateStatus(const std::vector<Json>& all, const std::optional<Json>& new_rs) {
    int64_t available = SumStatus(all, "availableReplicas");
    int64_t unavailable = std::max<int64_t>(0, SumReplicas(all) - available);
    Json status = Json::object();
    // As the Go types marshal: zeros are omitted.
    auto put = [&](const char* k, int64_t v) {
      if (v) status[k] = v;
    };
    put("observedGeneration", IntAt(ObjAt(d, "metadata"), "generation"));
    put("replicas", SumStatus(all, "replicas"));
    put("updatedReplicas", new_rs ? StatusInt(*new_rs, "replicas") : 0);
    put("readyReplicas", SumStatus(all, "readyReplicas"));
    put("availableReplicas", available);
    put("unavailableReplicas", unavailable);
    const Json& old = ObjAt(d, "status");
    if (old.contains("collisionCount")) status["collisionCount"] = old["collisionCount"];
    if (old.contains("conditions") && old["conditions"].is_array() && !old["conditions"].empty()) {
      status["conditions"] = old["conditions"];
    }
    if (available >= Replicas(d) - MaxUnavailable(d)) {
      SetCondition(status, NewCondition("Available", "True", kMinimumReplicasAvailable,
                                        "Deployment has minimum availability."));
    } else {
      SetCondition(status, NewCondition("Available", "False", kMinimumReplicasUnavailable,
                                        "Deployment does not have minimum availability."));
    }
    return status;
  }

  bool DeploymentComplete(const Json& status) {
    return IntAt(status, "updatedReplicas") == Replicas(d) &&
           IntAt(status, "replicas") == Replicas(d) &&
           IntAt(status, "availableReplicas") == Replicas(d) &&
           IntAt(status, "observedGeneration") >= IntAt(ObjAt(d, "metadata"), "generation");
  }

  bool DeploymentProgressing(const Json& status) {
    const Json& old = ObjAt(d, "status");
    int64_t old_old = IntAt(old, "replicas") - IntAt(old, "updatedReplicas");
    int64_t new_old = IntAt(status, "replicas") - IntAt(status, "updatedReplicas");
    return IntAt(status, "updatedReplicas") > IntAt(old, "updatedReplicas") || new_old < old_old ||
           IntAt(status, "readyReplicas") > IntAt(old, "readyReplicas") ||
           IntAt(status, "availableReplicas") > IntAt(old, "availableReplicas");
  }

  bool DeploymentTimedOut(const Json& status) {
    if (!HasProgressDeadline(d)) return false;
    const Json* cond = GetCondition(status, "Progressing");
    if (!cond) return false;
    std::string reason = StrAt(*cond, "reason");
    if (reason == kNewRSAvailable) return false;
    if (reason == kTimedOut) return true;
    auto from = object::ParseRfc3339(StrAt(*cond, "lastUpdateTime"));
    if (!from) return false;
    return *from + std::chrono::seconds(IntAt(ObjAt(d, "spec"), "progressDeadlineSeconds")) < now;
  }

  void SyncDeploymentStatus(const std::vector<Json>& all, const std::optional<Json>& new_rs) {
    Json status = CalculateStatus(all, new_rs);
    if (status == ObjAt(d, "status")) return;
    d["status"] = std::move(status);
    WriteStatus();
  }

  void SyncRolloutStatus(const std::vector<Json>& all, const std::optional<Json>& new_rs) {
    Json status = CalculateStatus(all, new_rs);
    if (!HasProgressDeadline(d)) RemoveCondition(status, "Progressing");
    const Json* current = GetCondition(ObjAt(d, "status"), "Progressing");
    bool complete_before = IntAt(status, "replicas") == IntAt(status, "updatedReplicas") &&
                           current && StrAt(*current, "reason") == kNewRSAvailable;
    std::string subject = new_rs ? "ReplicaSet \"" + object::Name(*new_rs) + "\""
                                 : "Deployment \"" + object::Name(d) + "\"";
    if (HasProgressDeadline(d) && !complete_before) {
      if (DeploymentComplete(status)) {
        SetCondition(status, NewCondition("Progressing", "True", kNewRSAvailable,
                                          subject + " has successfully progressed."));
      } else if (DeploymentProgressing(status)) {
        Json cond =
            NewCondition("Progressing", "True", kReplicaSetUpdated, subject + " is progressing.");
        // Progress moves lastUpdateTime even with the same reason.
        if (current) {
          if (StrAt(*current, "status") == "True") {
            cond["lastTransitionTime"] = current->value("lastTransitionTime", Json(nullptr));
          }
          RemoveCondition(status, "Progressing");
        }
        SetCondition(status, std::move(cond));
      } else if (DeploymentTimedOut(status)) {
        SetCondition(status, NewCondition("Progressing", "False", kTimedOut,
                                          subject + " has timed out progressing."));
      }
    }
    // ReplicaFailure of a ReplicaSet (the new one first) shows on the Deployment.
    std::optional<Json> failure;
    std::vector<const Json*> order;
    if (new_rs) order.push_back(&*new_rs);
    for (const Json& rs : all) order.push_back(&rs);
    for (const Json* rs : order) {
      if (const Json* f = GetCondition(ObjAt(*rs, "status"), "ReplicaFailure")) {
        failure = Json{{"type", "ReplicaFailure"},
                       {"status", f->value("status", "")},
                       {"lastUpdateTime", f->value("lastTransitionTime", Json(nullptr))},
                       {"lastTransitionTime", f->value("lastTransitionTime", Json(nullptr))},
                       {"reason", f->value("reason", "")},
                       {"message", f->value("message", "")}};
        break;
      }
    }
    if (failure) {
      SetCondition(status, *failure);
    } else {
      RemoveCondition(status, "ReplicaFailure");
    }
    if (status == ObjAt(d, "status")) {
      RequeueStuckDeployment(status);
      return;
    }
    d["status"] = std::move(status);
    WriteStatus();
  }

  void RequeueStuckDeployment(const Json& status) {
    const Json* current = GetCondition(ObjAt(d, "status"), "Progressing");
    if (!HasProgressDeadline(d) || !current) return;
    if (DeploymentComplete(status) || StrAt(*current, "reason") == kTimedOut) return;
    auto from = object::ParseRfc3339(StrAt(*current, "lastUpdateTime"));
    if (!from) return;
    auto deadline =
        *from + std::chrono::seconds(IntAt(ObjAt(d, "spec"), "progressDeadlineSeconds"));
    auto after = deadline - now;
    if (after < std::chrono::seconds(1)) {
      requeue = Result::Retry();
    } else {
      requeue = Result::After(std::chrono::duration_cast<Clock::Duration>(after) +
                              std::chrono::seconds(1));
    }
  }

  void CheckPausedConditions() {
    if (!HasProgressDeadline(d)) return;
    const Json* cond = GetCondition(ObjAt(d, "status"), "Progressing");
    if (cond && StrAt(*cond, "reason") == kTimedOut) return;
    bool paused_cond = cond && StrAt(*cond, "reason") == kPaused;
    bool paused = ObjAt(d, "spec").value("paused", false);
    if (paused && !paused_cond) {
      SetCondition(Status(),
                   NewCondition("Progressing", "Unknown", kPaused, "Deployment is paused"));
    } else if (!paused && paused_cond) {
      SetCondition(Status(),
                   NewCondition("Progressing", "Unknown", kResumed, "Deployment is resumed"));
    } else {
      return;
    }
    WriteStatus();
  }

  bool IsScalingEvent() {
    auto [new_rs, old] = GetAllReplicaSetsAndSyncRevision(false);
    std::vector<Json> all = old;
    if (new_rs) all.push_back(*new_rs);
    for (const Json& rs : FilterActive(all)) {
      auto desired = ParseInt(Annotation(rs, kDesiredReplicas).value_or(""));
      if (!desired) continue;
      if (*desired != Replicas(d)) return true;
    }
    return false;
  }

  void SyncScaleOnly() {
    auto [new_rs, old] = GetAllReplicaSetsAndSyncRevision(false);
    Scale(new_rs, old);
    // Scale() rewrote rs_list entries; read the sets again from there.
    auto refreshed = Refresh(new_rs, old);
    if (ObjAt(d, "spec").value("paused", false)) CleanupDeployment(refreshed.second);
    SyncDeploymentStatus(All(refreshed), refreshed.first);
  }

  // The latest copies (from rs_list) of a new/old split.
  std::pair<std::optional<Json>, std::vector<Json>> Refresh(const std::optional<Json>& new_rs,
                                                            const std::vector<Json>& old) {
    auto latest = [&](const Json& rs) -> Json {
      for (const Json& r : rs_list) {
        if (object::Uid(r) == object::Uid(rs)) return r;
      }
      return rs;
    };
    std::optional<Json> n;
    if (new_rs) n = latest(*new_rs);
    std::vector<Json> o;
    for (const Json& rs : old) o.push_back(latest(rs));
    return {n, o};
  }

  static std::vector<Json> All(const std::pair<std::optional<Json>, std::vector<Json>>& split) {
    std::vector<Json> all = split.second;
    if (split.first) all.push_back(*split.first);
    return all;
  }

  // --- RollingUpdate (rolling.go) ---

  void RolloutRolling() {
    auto [new_rs, old] = GetAllReplicaSetsAndSyncRevision(true);
    std::vector<Json> all = old;
    all.push_back(*new_rs);
    if (ReconcileNewReplicaSet(all, *new_rs)) {
      auto r = Refresh(new_rs, old);
      return SyncRolloutStatus(All(r), r.first);
    }
    auto r = Refresh(new_rs, old);
    if (ReconcileOldReplicaSets(All(r), FilterActive(r.second), *r.first)) {
      auto r2 = Refresh(new_rs, old);
      return SyncRolloutStatus(All(r2), r2.first);
    }
    if (DeploymentComplete(ObjAt(d, "status"))) CleanupDeployment(r.second);
    SyncRolloutStatus(All(r), r.first);
  }

  bool ReconcileNewReplicaSet(const std::vector<Json>& all, const Json& new_rs) {
    if (Replicas(new_rs) == Replicas(d)) return false;
    if (Replicas(new_rs) > Replicas(d)) {
      return ScaleReplicaSetAndRecordEvent(new_rs, Replicas(d)).first;
    }
    return ScaleReplicaSetAndRecordEvent(new_rs, NewRSNewReplicas(all, new_rs)).first;
  }

  bool ReconcileOldReplicaSets(const std::vector<Json>& all, std::vector<Json> old,
                               const Json& new_rs) {
    if (SumReplicas(old) == 0) return false;
    int64_t all_pods = SumReplicas(all);
    int64_t min_available = Replicas(d) - MaxUnavailable(d);
    int64_t new_unavailable = Replicas(new_rs) - StatusInt(new_rs, "availableReplicas");
    int64_t max_scaled_down = all_pods - min_available - new_unavailable;
    if (max_scaled_down <= 0) return false;
    // Unhealthy old pods first, or they would block the rollout.
    int64_t cleaned = CleanupUnhealthyReplicas(old, max_scaled_down);
    std::vector<Json> all2 = old;
    all2.push_back(new_rs);
    int64_t scaled = ScaleDownOldReplicaSetsForRollingUpdate(all2, old);
    return cleaned + scaled > 0;
  }

  int64_t CleanupUnhealthyReplicas(std::vector<Json>& old, int64_t max_cleanup) {
    SortByCreation(old);
    int64_t total = 0;
    for (Json& rs : old) {
      if (total >= max_cleanup) break;
      if (Replicas(rs) == 0) continue;
      int64_t available = StatusInt(rs, "availableReplicas");
      if (Replicas(rs) == available) continue;
      int64_t down = std::min(max_cleanup - total, Replicas(rs) - available);
      auto [scaled, updated] = ScaleReplicaSetAndRecordEvent(rs, Replicas(rs) - down);
      (void)scaled;
      total += down;
      rs = updated;
    }
    return total;
  }

  int64_t ScaleDownOldReplicaSetsForRollingUpdate(const std::vector<Json>& all,
                                                  std::vector<Json> old) {
    int64_t min_available = Replicas(d) - MaxUnavailable(d);
    int64_t available = SumStatus(all, "availableReplicas");
    if (available <= min_available) return 0;
    SortByCreation(old);
    int64_t total = 0, target = available - min_available;
    for (const Json& rs : old) {
      if (total >= target) break;
      if (Replicas(rs) == 0) continue;
      int64_t down = std::min(Replicas(rs), target - total);
      ScaleReplicaSetAndRecordEvent(rs, Replicas(rs) - down);
      total += down;
    }
    return total;
  }

  // --- Recreate (recreate.go) ---

  bool OldPodsRunning(const std::optional<Json>& new_rs, const std::vector<Json>& old) {
    if (SumStatus(old, "replicas") > 0) return true;
    for (const auto& [uid, pods] : pod_map) {
      if (new_rs && object::Uid(*new_rs) == uid) continue;
      for (const ObjectPtr& p : pods) {
        if (!IsPodTerminal(*p)) return true;
      }
    }
    return false;
  }

  void RolloutRecreate() {
    auto [new_rs, old] = GetAllReplicaSetsAndSyncRevision(false);
    bool scaled_down = false;
    for (const Json& rs : FilterActive(old)) {
      if (ScaleReplicaSetAndRecordEvent(rs, 0).first) scaled_down = true;
    }
    auto r = Refresh(new_rs, old);
    if (scaled_down || OldPodsRunning(r.first, r.second)) {
      return SyncRolloutStatus(All(r), r.first);
    }
    if (!r.first) {
      auto made = GetAllReplicaSetsAndSyncRevision(true);
      r = Refresh(made.first, made.second);
    }
    ScaleReplicaSetAndRecordEvent(*r.first, Replicas(d));
    r = Refresh(r.first, r.second);
    if (DeploymentComplete(ObjAt(d, "status"))) CleanupDeployment(r.second);
    SyncRolloutStatus(All(r), r.first);
  }
};

DeploymentController::DeploymentController(SharedInformerFactory& informers, Client& client,
                                           DeploymentControllerOptions opts)
    : opts_(opts),
      clock_(opts.clock ? *opts.clock : RealClock()),
      clock_start_(clock_.Now()),
      wall_start_(std::chrono::system_clock::now()),
      identity_(client, "deployment-controller"),
      deployments_(informers.For(*FindResource("apps", "v1", "deployments"))),
      rss_(informers.For(*FindResource("apps", "v1", "replicasets"))),
      pods_(informers.For(PodsResource())),
      queue_(WorkQueueOptions{.clock = &clock_}),
      workers_("deployment", queue_, [this](const std::string& key) { return Reconcile(key); }) {}

DeploymentController::~DeploymentController() { Stop(); }

WallTime DeploymentController::WallNow() const {
  if (!opts_.clock) return std::chrono::system_clock::now();
  return wall_start_ + std::chrono::duration_cast<std::chrono::system_clock::duration>(
                           clock_.Now() - clock_start_);
}

void DeploymentController::Start() {
  if (!run_state_.TryStart()) return;
  rss_.AddIndex(workloads::kOrphanIndex, workloads::IndexOrphansByNamespace);
  subscriptions_.Add(deployments_, EnqueueHandlers(queue_));
  subscriptions_.Add(rss_, HandlersFrom([this](const Json* old, const Json* now) {
    if (!old) {
      OnRsAdd(*now);
    } else if (!now) {
      OnRsDelete(*old);
    } else {
      OnRsUpdate(*old, *now);
    }
  }));
  subscriptions_.Add(pods_, {.on_delete = [this](const Json& p) { OnPodDelete(p); }});
  workers_.Start(opts_.workers, {&deployments_, &rss_, &pods_});
}

void DeploymentController::Stop() {
  if (!run_state_.TryStop()) return;
  workers_.Stop();
  subscriptions_.RemoveAll();
}

ObjectPtr DeploymentController::DeploymentOf(const std::string& ns, const Json& ref) const {
  if (!ref.is_object() || ref.value("kind", "") != "Deployment") return nullptr;
  ObjectPtr d = deployments_.Lookup(ns, ref.value("name", ""));
  if (!d || object::Uid(*d) != ref.value("uid", "")) return nullptr;
  return d;
}

void DeploymentController::EnqueueForReplicaSet(const Json& rs) {
  // An orphan: every Deployment whose selector matches may adopt it.
  const Json& labels = object::Labels(rs);
  for (const ObjectPtr& d : deployments_.ByIndex(kNamespaceIndex, object::Namespace(rs))) {
    try {
      LabelSelector sel = LabelSelector::FromJson(ObjAt(ObjAt(*d, "spec"), "selector"));
      if (!sel.empty() && sel.Matches(labels)) queue_.Add(object::Key(*d));
    } catch (const Error&) {
    }
  }
}

void DeploymentController::OnRsAdd(const Json& rs) {
  if (object::IsBeingDeleted(rs)) return OnRsDelete(rs);
  if (const Json* ref = object::ControllerOf(rs)) {
    if (ObjectPtr d = DeploymentOf(object::Namespace(rs), *ref)) queue_.Add(object::Key(*d));
    return;
  }
  EnqueueForReplicaSet(rs);
}

void DeploymentController::OnRsUpdate(const Json& old, const Json& now) {
  if (object::ResourceVersion(old) == object::ResourceVersion(now)) return;
  const Json* cur_ref = object::ControllerOf(now);
  const Json* old_ref = object::ControllerOf(old);
  bool ref_changed =
      (cur_ref == nullptr) != (old_ref == nullptr) || (cur_ref && old_ref && *cur_ref != *old_ref);
  if (ref_changed && old_ref) {
    if (ObjectPtr d = DeploymentOf(object::Namespace(old), *old_ref)) queue_.Add(object::Key(*d));
  }
  if (cur_ref) {
    if (ObjectPtr d = DeploymentOf(object::Namespace(now), *cur_ref)) queue_.Add(object::Key(*d));
    return;
  }
  if (ref_changed || object::Labels(old) != object::Labels(now)) EnqueueForReplicaSet(now);
}

void DeploymentController::OnRsDelete(const Json& rs) {
  if (const Json* ref = object::ControllerOf(rs)) {
    if (ObjectPtr d = DeploymentOf(object::Namespace(rs), *ref)) queue_.Add(object::Key(*d));
  }
}

void DeploymentController::OnPodDelete(const Json& pod) {
  // Only Recreate waits for pods to be gone.
  const Json* ref = object::ControllerOf(pod);
  if (!ref || ref->value("kind", "") != "ReplicaSet") return;
  ObjectPtr rs = rss_.Lookup(object::Namespace(pod), ref->value("name", ""));
  if (!rs || object::Uid(*rs) != ref->value("uid", "")) return;
  const Json* dref = object::ControllerOf(*rs);
  if (!dref) return;
  ObjectPtr d = DeploymentOf(object::Namespace(*rs), *dref);
  if (d && StrAt(Strategy(*d), "type") == "Recreate") queue_.Add(object::Key(*d));
}

Result DeploymentController::Reconcile(const std::string& key) {
  auto [ns, name] = object::SplitKey(key);
  ObjectPtr cached = deployments_.Lookup(ns, name);
  if (!cached) return Result::Done();
  Sync s{*this, *cached, {}, {}, WallNow(), std::nullopt};
  const Json& spec = ObjAt(s.d, "spec");
  const Json& selector_json = ObjAt(spec, "selector");
  if (selector_json.empty()) {
    identity_.events().Warning(s.EventObject(), "SelectingAll",
                               "This deployment is selecting all pods. A non-empty selector is "
                               "required.");
    int64_t generation = IntAt(ObjAt(s.d, "metadata"), "generation");
    if (StatusInt(s.d, "observedGeneration") < generation) {
      s.Status()["observedGeneration"] = generation;
      s.WriteStatus();
    }
    return Result::Done();
  }
  LabelSelector selector;
  try {
    selector = LabelSelector::FromJson(selector_json, "spec.selector");
  } catch (const Error& e) {
    log::Warn("deployment: {}: {}", key, e.message());
    return Result::Done();
  }
  try {
    // The ReplicaSets it controls, adopting and releasing.
    std::vector<ObjectPtr> candidates;
    for (ObjectPtr& rs : rss_.ByIndex(kOwnerUidIndex, object::Uid(s.d))) {
      // Controller-less ones come from the orphan index, once.
      if (object::Namespace(*rs) == ns && object::ControllerOf(*rs)) {
        candidates.push_back(std::move(rs));
      }
    }
    for (ObjectPtr& rs : rss_.ByIndex(workloads::kOrphanIndex, ns)) {
      candidates.push_back(std::move(rs));
    }
    workloads::Owner owner;
    owner.object = cached.get();
    owner.api_version = "apps/v1";
    owner.kind = "Deployment";
    owner.selector = selector;
    owner.can_adopt = [&] {
      try {
        Json fresh = identity_.client().Get(deployments_.resource(), ns, name);
        return object::Uid(fresh) == object::Uid(s.d) && !object::IsBeingDeleted(fresh);
      } catch (const Error&) {
        return false;
      }
    };
    for (const ObjectPtr& rs :
         workloads::ClaimObjects(identity_.client(), rss_.resource(), owner, candidates)) {
      s.rs_list.push_back(*rs);
      std::vector<ObjectPtr>& pods = s.pod_map[object::Uid(*rs)];
      for (ObjectPtr& p : pods_.ByIndex(kOwnerUidIndex, object::Uid(*rs))) {
        if (object::IsControlledBy(*p, *rs) && selector.Matches(object::Labels(*p))) {
          pods.push_back(std::move(p));
        }
      }
    }

    if (object::IsBeingDeleted(s.d)) {
      auto [new_rs, old] = s.GetAllReplicaSetsAndSyncRevision(false);
      std::vector<Json> all = old;
      if (new_rs) all.push_back(*new_rs);
      s.SyncDeploymentStatus(all, new_rs);
      return Result::Done();
    }
    s.CheckPausedConditions();
    if (spec.value("paused", false) || s.IsScalingEvent()) {
      s.SyncScaleOnly();
      return s.requeue.value_or(Result::Done());
    }
    std::string type = StrAt(ObjAt(spec, "strategy"), "type");
    if (type == "Recreate") {
      s.RolloutRecreate();
    } else if (type == "RollingUpdate") {
      s.RolloutRolling();
    } else {
      throw Error::Invalid("unexpected deployment strategy type: " + type);
    }
    return s.requeue.value_or(Result::Done());
  } catch (const Error& e) {
    // A stale cache (Conflict) or a write racing a delete: look again soon,
    // without a warning for the routine case.
    if (e.code() == Code::kConflict) return Result::Retry();
    if (e.code() == Code::kNotFound && !deployments_.Lookup(ns, name)) return Result::Done();
    throw;
  }
}

}  // namespace kin::controllers
