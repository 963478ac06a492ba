#include "controllers/storage.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <optional>

#include "base/error.h"
#include "base/log.h"
#include "client/object.h"
#include "client/quantity.h"
#include "client/selector.h"

namespace kin::controllers {

using object::Field;
using object::Str;

namespace {

constexpr char kBindCompleted[] = "pv.kubernetes.io/bind-completed";
constexpr char kBoundByController[] = "pv.kubernetes.io/bound-by-controller";
constexpr char kProvisionedBy[] = "pv.kubernetes.io/provisioned-by";
constexpr char kStorageProvisioner[] = "volume.kubernetes.io/storage-provisioner";
constexpr char kBetaStorageProvisioner[] = "volume.beta.kubernetes.io/storage-provisioner";
constexpr char kClaimPrefix[] = "claim:";
constexpr char kVolumePrefix[] = "volume:";
constexpr char kBootstrapKey[] = "bootstrap";

const ResourceInfo& Res(const char* group, const char* plural) {
  return *FindResource(group, "v1", plural);
}

std::string Annotation(const Json& obj, const char* key) {
  return Str(Field(Field(obj, "metadata"), "annotations"), key);
}

void SetAnnotation(Json& obj, const std::string& key, const std::string& value) {
  Json& meta = obj["metadata"];
  if (!meta.contains("annotations") || !meta["annotations"].is_object()) {
    meta["annotations"] = Json::object();
  }
  meta["annotations"][key] = value;
}

// Storage sizes compared in bytes (rounded up), as resource.Quantity.Cmp.
__int128 Bytes(const Json& q) {
  std::string text = q.is_string() ? q.get<std::string>() : q.is_number() ? q.dump() : "";
  auto parsed = ParseQuantityText(text);
  return parsed ? QuantityScaledCeil(*parsed, 0) : -1;
}

const Json& ClaimStorage(const Json& pvc) {
  return Field(Field(Field(Field(pvc, "spec"), "resources"), "requests"), "storage");
}

std::string VolumeModeOf(const Json& obj) {
  std::string m = Str(Field(obj, "spec"), "volumeMode");
  return m.empty() ? "Filesystem" : m;
}

bool ClaimRefNames(const Json& pv, const Json& pvc) {
  const Json& ref = Field(Field(pv, "spec"), "claimRef");
  if (!ref.is_object()) return false;
  if (Str(ref, "name") != object::Name(pvc) || Str(ref, "namespace") != object::Namespace(pvc)) {
    return false;
  }
  return Str(ref, "uid").empty() || Str(ref, "uid") == object::Uid(pvc);
}

Json ClaimRefTo(const Json& pvc) {
  return {{"kind", "PersistentVolumeClaim"},
          {"namespace", object::Namespace(pvc)},
          {"name", object::Name(pvc)},
          {"uid", object::Uid(pvc)},
          {"apiVersion", "v1"},
          {"resourceVersion", object::ResourceVersion(pvc)}};
}

// Events need kind and apiVersion, which informer list items lack.
Json WithKind(Json obj, const char* kind) {
  obj["kind"] = kind;
  obj["apiVersion"] = "v1";
  return obj;
}

bool IsConflictOrGone(const Error& e) {
  return e.code() == Code::kConflict || e.code() == Code::kNotFound;
}

}  // namespace

const ResourceInfo& PersistentVolumesResource() { return Res("", "persistentvolumes"); }
const ResourceInfo& PersistentVolumeClaimsResource() { return Res("", "persistentvolumeclaims"); }
const ResourceInfo& StorageClassesResource() { return Res("storage.k8s.io", "storageclasses"); }

Json DefaultStorageClassObject() {
  return {{"apiVersion", "storage.k8s.io/v1"},
          {"kind", "StorageClass"},
          {"metadata",
           {{"name", kDefaultStorageClassName},
            {"annotations", {{kIsDefaultClassAnnotation, "true"}}}}},
          {"provisioner", kLocalPathProvisioner},
          {"reclaimPolicy", "Delete"},
          {"volumeBindingMode", "WaitForFirstConsumer"}};
}

bool VolumeMatchesClaim(const Json& pv, const Json& pvc) {
  const Json& vs = Field(pv, "spec");
  const Json& cs = Field(pvc, "spec");
  if (Str(vs, "storageClassName") != Str(cs, "storageClassName")) return false;
  if (VolumeModeOf(pv) != VolumeModeOf(pvc)) return false;
  const Json& have = Field(vs, "accessModes");
  const Json& want = Field(cs, "accessModes");
  if (want.is_array()) {
    for (const Json& m : want) {
      if (!have.is_array() || std::find(have.begin(), have.end(), m) == have.end()) return false;
    }
  }
  if (Bytes(Field(Field(vs, "capacity"), "storage")) < Bytes(ClaimStorage(pvc))) return false;
  const Json& selector = Field(cs, "selector");
  if (selector.is_object()) {
    try {
      if (!LabelSelector::FromJson(selector, "spec.selector").Matches(object::Labels(pv))) {
        return false;
      }
    } catch (const Error&) {
      return false;
    }
  }
  return true;
}

// ---- PersistentVolumeBinder -----------------------------------------------------------

PersistentVolumeBinder::PersistentVolumeBinder(SharedInformerFactory& informers, Client& client)
    : component_(client, "persistentvolume-controller"),
      claims_(informers.For(PersistentVolumeClaimsResource())),
      volumes_(informers.For(PersistentVolumesResource())),
      classes_(informers.For(StorageClassesResource())),
      workers_("persistentvolume-binder", queue_,
               [this](const std::string& key) { return Sync(key); }) {}

PersistentVolumeBinder::~PersistentVolumeBinder() { Stop(); }

void PersistentVolumeBinder::Start() {
  if (!run_state_.TryStart()) return;
  subscriptions_.Add(claims_, HandlersFrom([this](const Json* old, const Json* now) {
                       const Json& c = now ? *now : *old;
                       queue_.Add(kClaimPrefix + object::Key(c));
                       // A claim gone or re-bound changes its volume's phase.
                       for (const Json* s : {old, now}) {
                         if (!s) continue;
                         std::string v = Str(Field(*s, "spec"), "volumeName");
                         if (!v.empty()) queue_.Add(kVolumePrefix + v);
                       }
                     }));
  subscriptions_.Add(volumes_, HandlersFrom([this](const Json* old, const Json* now) {
                       const Json& v = now ? *now : *old;
                       queue_.Add(kVolumePrefix + object::Name(v));
                       const Json& ref = Field(Field(v, "spec"), "claimRef");
                       if (ref.is_object()) {
                         queue_.Add(kClaimPrefix +
                                    object::Key(Str(ref, "namespace"), Str(ref, "name")));
                       } else if (now && !old) {
                         // A new free volume may fit a waiting claim.
                         for (const ObjectPtr& c : claims_.Items()) {
                           if (Str(Field(*c, "spec"), "volumeName").empty()) {
                             queue_.Add(kClaimPrefix + object::Key(*c));
                           }
                         }
                       }
                     }));
  subscriptions_.Add(classes_, HandlersFrom([this](const Json*, const Json*) {
                       for (const ObjectPtr& c : claims_.Items()) {
                         queue_.Add(kClaimPrefix + object::Key(*c));
                       }
                     }));
  workers_.Start(1, {&claims_, &volumes_, &classes_});
}

void PersistentVolumeBinder::Stop() {
  if (!run_state_.TryStop()) return;
  workers_.Stop();
  subscriptions_.RemoveAll();
}

Result PersistentVolumeBinder::Sync(const std::string& key) {
  if (key.rfind(kClaimPrefix, 0) == 0) {
    auto [ns, name] = object::SplitKey(key.substr(sizeof(kClaimPrefix) - 1));
    return SyncClaim(ns, name);
  }
  if (key.rfind(kVolumePrefix, 0) == 0) return SyncVolume(key.substr(sizeof(kVolumePrefix) - 1));
  return Result::Done();
}

ObjectPtr PersistentVolumeBinder::ClassOf(const Json& pvc) {
  std::string cls = Str(Field(pvc, "spec"), "storageClassName");
  if (cls.empty()) return nullptr;
  return classes_.Lookup("", cls);
}

void PersistentVolumeBinder::SetVolumePhase(const Json& pv, const std::string& phase) {
  if (Str(Field(pv, "status"), "phase") == phase) return;
  Json next = pv;
  next["status"]["phase"] = phase;
  component_.client().Update(PersistentVolumesResource(), "", next, "status");
}

void PersistentVolumeBinder::Bind(Json pv, Json pvc, bool chosen_by_controller) {
  Client& c = component_.client();
  const std::string ns = object::Namespace(pvc);
  // 1. The volume's claimRef.
  if (!ClaimRefNames(pv, pvc) || Str(Field(Field(pv, "spec"), "claimRef"), "uid").empty()) {
    pv["spec"]["claimRef"] = ClaimRefTo(pvc);
    if (chosen_by_controller) SetAnnotation(pv, kBoundByController, "yes");
    pv = c.Update(PersistentVolumesResource(), "", pv);
  }
  // 2. Its phase.
  SetVolumePhase(pv, "Bound");
  // 3. The claim's volumeName and annotations.
  const std::string volume = object::Name(pv);
  if (Str(Field(pvc, "spec"), "volumeName") != volume ||
      Annotation(pvc, kBindCompleted) != "yes") {
    if (Str(Field(pvc, "spec"), "volumeName").empty()) SetAnnotation(pvc, kBoundByController, "yes");
    pvc["spec"]["volumeName"] = volume;
    SetAnnotation(pvc, kBindCompleted, "yes");
    pvc = c.Update(PersistentVolumeClaimsResource(), ns, pvc);
  }
  // 4. The claim's status.
  const Json& vs = Field(pv, "spec");
  Json status = Field(pvc, "status").is_object() ? pvc["status"] : Json::object();
  Json want = status;
  want["phase"] = "Bound";
  want["accessModes"] = Field(vs, "accessModes");
  // Capacity only as the claim becomes Bound, as upstream's updateClaimStatus:
  // afterwards the resizer records it (a volume grown ahead of its claim's
  // status is a resize not finished).
  if (Str(status, "phase") != "Bound") want["capacity"] = Field(vs, "capacity");
  if (want != status) {
    pvc["status"] = want;
    c.Update(PersistentVolumeClaimsResource(), ns, pvc, "status");
  }
}

Result PersistentVolumeBinder::SyncClaim(const std::string& ns, const std::string& name) {
  ObjectPtr cached = claims_.Lookup(ns, name);
  if (!cached) return Result::Done();
  const Json& pvc = *cached;
  if (object::IsBeingDeleted(pvc)) return Result::Done();
  const Json& spec = Field(pvc, "spec");
  const std::string volume_name = Str(spec, "volumeName");
  try {
    if (!volume_name.empty()) {
      ObjectPtr pv = volumes_.Lookup("", volume_name);
      if (!pv) {
        // A claim bound before and whose volume is gone is Lost.
        if (Annotation(pvc, kBindCompleted) == "yes" &&
            Str(Field(pvc, "status"), "phase") != "Lost") {
          Json next = pvc;
          next["status"]["phase"] = "Lost";
          component_.client().Update(PersistentVolumeClaimsResource(), ns, next, "status");
          component_.events().Warning(WithKind(pvc, "PersistentVolumeClaim"), "ClaimLost",
                                      "Bound claim has lost its PersistentVolume. Data on the "
                                      "volume is lost!");
        }
        return Result::Done();
      }
      const Json& ref = Field(Field(*pv, "spec"), "claimRef");
      if (ref.is_object() && !ClaimRefNames(*pv, pvc)) {
        component_.events().Warning(WithKind(pvc, "PersistentVolumeClaim"), "FailedBinding",
                                    "volume \"" + volume_name +
                                        "\" already bound to a different claim.");
        return Result::Done();
      }
      Bind(*pv, pvc, false);
      return Result::Done();
    }
    // Unbound: a volume pre-bound to this claim first, then the smallest fit.
    ObjectPtr cls = ClassOf(pvc);
    const bool delayed = cls && Str(*cls, "volumeBindingMode") == "WaitForFirstConsumer";
    const std::string selected = Annotation(pvc, kSelectedNodeAnnotation);
    ObjectPtr best;
    for (const ObjectPtr& pv : volumes_.Items()) {
      if (object::IsBeingDeleted(*pv)) continue;
      if (ClaimRefNames(*pv, pvc)) {
        best = pv;
        break;
      }
    }
    bool chosen = false;
    if (!best && !delayed) {
      for (const ObjectPtr& pv : volumes_.Items()) {
        if (object::IsBeingDeleted(*pv) || Field(Field(*pv, "spec"), "claimRef").is_object()) {
          continue;
        }
        if (Str(Field(*pv, "status"), "phase") != "Available" &&
            Str(Field(*pv, "status"), "phase") != "Pending") {
          continue;
        }
        if (!VolumeMatchesClaim(*pv, pvc)) continue;
        if (!best || Bytes(Field(Field(Field(*pv, "spec"), "capacity"), "storage")) <
                         Bytes(Field(Field(Field(*best, "spec"), "capacity"), "storage"))) {
          best = pv;
        }
      }
      chosen = best != nullptr;
    }
    if (best) {
      Bind(*best, pvc, chosen);
      return Result::Done();
    }
    Json event_obj = WithKind(pvc, "PersistentVolumeClaim");
    if (delayed && selected.empty()) {
      component_.events().Normal(event_obj, "WaitForFirstConsumer",
                                 "waiting for first consumer to be created before binding");
      return Result::Done();
    }
    if (cls && !Str(*cls, "provisioner").empty()) {
      const std::string provisioner = Str(*cls, "provisioner");
      if (Annotation(pvc, kStorageProvisioner) != provisioner) {
        Json next = pvc;
        SetAnnotation(next, kStorageProvisioner, provisioner);
        SetAnnotation(next, kBetaStorageProvisioner, provisioner);
        component_.client().Update(PersistentVolumeClaimsResource(), ns, next);
      }
      component_.events().Normal(
          event_obj, "ExternalProvisioning",
          "Waiting for a volume to be created either by the external provisioner '" +
              provisioner +
              "' or manually by the system administrator. If volume creation is delayed, please "
              "verify that the provisioner is running and correctly registered.");
      return Result::Done();
    }
    component_.events().Normal(event_obj, "FailedBinding",
                               Str(spec, "storageClassName").empty()
                                   ? "no persistent volumes available for this claim and no "
                                     "storage class is set"
                                   : "storageclass.storage.k8s.io \"" +
                                         Str(spec, "storageClassName") + "\" not found");
    return Result::Done();
  } catch (const Error& e) {
    if (e.code() == Code::kConflict) return Result::Retry();
    throw;
  }
}

Result PersistentVolumeBinder::SyncVolume(const std::string& name) {
  ObjectPtr cached = volumes_.Lookup("", name);
  if (!cached) return Result::Done();
  const Json& pv = *cached;
  const Json& ref = Field(Field(pv, "spec"), "claimRef");
  try {
    if (!ref.is_object()) {
      SetVolumePhase(pv, "Available");
      return Result::Done();
    }
    ObjectPtr pvc = claims_.Lookup(Str(ref, "namespace"), Str(ref, "name"));
    if (Str(ref, "uid").empty()) {
      // Pre-bound by name only: Available until the claim's sync binds it.
      if (Str(Field(pv, "status"), "phase") != "Bound") SetVolumePhase(pv, "Available");
      if (pvc) queue_.Add(kClaimPrefix + object::Key(*pvc));
      return Result::Done();
    }
    if (!pvc || object::Uid(*pvc) != Str(ref, "uid")) {
      // The claim is gone (or is another one of the same name): Released;
      // what becomes of the volume is its reclaim policy's.
      if (Str(Field(pv, "status"), "phase") != "Released" &&
          Str(Field(pv, "status"), "phase") != "Failed") {
        SetVolumePhase(pv, "Released");
      }
      return Result::Done();
    }
    const std::string bound_to = Str(Field(*pvc, "spec"), "volumeName");
    if (bound_to == name) {
      SetVolumePhase(pv, "Bound");
    } else if (bound_to.empty()) {
      queue_.Add(kClaimPrefix + object::Key(*pvc));
    } else if (Annotation(pv, kBoundByController) == "yes") {
      // The claim went to another volume: this one is free again.
      Json next = pv;
      next["spec"].erase("claimRef");
      next = component_.client().Update(PersistentVolumesResource(), "", next);
      SetVolumePhase(next, "Available");
    }
    return Result::Done();
  } catch (const Error& e) {
    if (IsConflictOrGone(e)) return Result::Retry();
    throw;
  }
}

// ---- LocalPathProvisioner --------------------------------------------------------------

LocalPathProvisioner::LocalPathProvisioner(SharedInformerFactory& informers, Client& client,
                                           LocalPathProvisionerOptions opts)
    : component_(client, kLocalPathProvisioner),
      resizer_(client, std::string("external-resizer ") + kLocalPathProvisioner),
      opts_(std::move(opts)),
      claims_(informers.For(PersistentVolumeClaimsResource())),
      volumes_(informers.For(PersistentVolumesResource())),
      classes_(informers.For(StorageClassesResource())),
      workers_("local-path-provisioner", queue_,
               [this](const std::string& key) { return Sync(key); }) {}

LocalPathProvisioner::~LocalPathProvisioner() { Stop(); }

void LocalPathProvisioner::Start() {
  if (!run_state_.TryStart()) return;
  subscriptions_.Add(claims_, HandlersFrom([this](const Json* old, const Json* now) {
                       queue_.Add(kClaimPrefix + object::Key(now ? *now : *old));
                     }));
  subscriptions_.Add(volumes_, HandlersFrom([this](const Json* old, const Json* now) {
                       queue_.Add(kVolumePrefix + object::Name(now ? *now : *old));
                     }));
  if (opts_.create_default_class) queue_.Add(kBootstrapKey);
  workers_.Start(1, {&claims_, &volumes_, &classes_});
}

void LocalPathProvisioner::Stop() {
  if (!run_state_.TryStop()) return;
  workers_.Stop();
  subscriptions_.RemoveAll();
}

Result LocalPathProvisioner::Sync(const std::string& key) {
  if (key == kBootstrapKey) {
    if (classes_.Lookup("", kDefaultStorageClassName)) return Result::Done();
    try {
      component_.client().Create(StorageClassesResource(), "", DefaultStorageClassObject());
    } catch (const Error& e) {
      if (e.code() != Code::kAlreadyExists) throw;
    }
    return Result::Done();
  }
  if (key.rfind(kClaimPrefix, 0) == 0) {
    auto [ns, name] = object::SplitKey(key.substr(sizeof(kClaimPrefix) - 1));
    return Provision(ns, name);
  }
  if (key.rfind(kVolumePrefix, 0) == 0) return Reclaim(key.substr(sizeof(kVolumePrefix) - 1));
  return Result::Done();
}

Result LocalPathProvisioner::Provision(const std::string& ns, const std::string& name) {
  ObjectPtr cached = claims_.Lookup(ns, name);
  if (!cached) return Result::Done();
  const Json& pvc = *cached;
  if (object::IsBeingDeleted(pvc)) return Result::Done();
  if (!Str(Field(pvc, "spec"), "volumeName").empty()) return Expand(pvc);
  const std::string class_name = Str(Field(pvc, "spec"), "storageClassName");
  ObjectPtr cls = class_name.empty() ? nullptr : classes_.Lookup("", class_name);
  if (!cls || Str(*cls, "provisioner") != kLocalPathProvisioner) return Result::Done();
  // As the external-provisioner library: only claims the PV controller
  // handed over (it found no volume to bind) are provisioned.
  if (Annotation(pvc, kStorageProvisioner) != kLocalPathProvisioner &&
      Annotation(pvc, kBetaStorageProvisioner) != kLocalPathProvisioner) {
    return Result::Done();
  }
  const std::string node = Annotation(pvc, kSelectedNodeAnnotation);
  Json event_obj = WithKind(pvc, "PersistentVolumeClaim");
  if (node.empty()) {
    // local-path volumes live on one node: without the scheduler's choice
    // (an Immediate class) there is none to make it on.
    if (Str(*cls, "volumeBindingMode") != "WaitForFirstConsumer") {
      component_.events().Warning(event_obj, "ProvisioningFailed",
                                  "failed to provision volume with StorageClass \"" + class_name +
                                      "\": configuration error, no node was specified");
    }
    return Result::Done();
  }
  const std::string pv_name = "pvc-" + object::Uid(pvc);
  if (volumes_.Lookup("", pv_name)) return Result::Done();
  const Json& storage = ClaimStorage(pvc);
  if (storage.is_null()) return Result::Done();
  component_.events().Normal(event_obj, "Provisioning",
                             "External provisioner is provisioning volume for claim \"" + ns +
                                 "/" + name + "\"");
  const std::string path =
      opts_.dir_for(node) + "/" + pv_name + "_" + ns + "_" + name;
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) {
    component_.events().Warning(event_obj, "ProvisioningFailed",
                                "failed to provision volume with StorageClass \"" + class_name +
                                    "\": create " + path + ": " + ec.message());
    return Result::Retry();
  }
  // local-path-provisioner's helper runs mkdir -m 0777: any pod user may write.
  ::chmod(path.c_str(), 0777);
  std::string reclaim = Str(*cls, "reclaimPolicy");
  if (reclaim.empty()) reclaim = "Delete";
  Json pv = {
      {"apiVersion", "v1"},
      {"kind", "PersistentVolume"},
      {"metadata",
       {{"name", pv_name},
        {"annotations",
         {{kProvisionedBy, kLocalPathProvisioner},
          {"local.path.provisioner/selected-node", node}}}}},
      {"spec",
       {{"capacity", {{"storage", storage}}},
        {"accessModes", Field(Field(pvc, "spec"), "accessModes")},
        {"persistentVolumeReclaimPolicy", reclaim},
        {"storageClassName", class_name},
        {"volumeMode", VolumeModeOf(pvc)},
        {"claimRef", ClaimRefTo(pvc)},
        {"hostPath", {{"path", path}, {"type", "DirectoryOrCreate"}}},
        {"nodeAffinity",
         {{"required",
           {{"nodeSelectorTerms",
             Json::array({{{"matchExpressions",
                            Json::array({{{"key", "kubernetes.io/hostname"},
                                          {"operator", "In"},
                                          {"values", Json::array({node})}}})}}})}}}}}}}};
  try {
    component_.client().Create(PersistentVolumesResource(), "", pv);
  } catch (const Error& e) {
    if (e.code() != Code::kAlreadyExists) throw;
    return Result::Done();
  }
  component_.events().Normal(event_obj, "ProvisioningSucceeded",
                             "Successfully provisioned volume " + pv_name);
  return Result::Done();
}

namespace {

// The claim conditions a resize sets (the external-resizer's
// knownResizeConditions).
bool IsResizeCondition(const Json& c) {
  const std::string type = Str(c, "type");
  return type == "Resizing" || type == "FileSystemResizePending" ||
         type == "ControllerResizeError" || type == "NodeResizeError";
}

// MergeResizeConditionsOfPVC: other conditions stay; of the resize ones only
// `resize` (null: none) is left, keeping its old transition time when its
// status did not change.
Json MergeResizeConditions(const Json& old, const Json& resize) {
  Json out = Json::array();
  bool kept = false;
  if (old.is_array()) {
    for (const Json& c : old) {
      if (!IsResizeCondition(c)) {
        out.push_back(c);
      } else if (!resize.is_null() && Str(c, "type") == Str(resize, "type")) {
        out.push_back(Str(c, "status") == Str(resize, "status") ? c : resize);
        kept = true;
      }
    }
  }
  if (!resize.is_null() && !kept) out.push_back(resize);
  return out;
}

}  // namespace

Result LocalPathProvisioner::Expand(const Json& pvc) {
  const Json& status = Field(pvc, "status");
  if (Str(status, "phase") != "Bound") return Result::Done();
  const Json& capacity = Field(Field(status, "capacity"), "storage");
  if (capacity.is_null() || Bytes(ClaimStorage(pvc)) <= Bytes(capacity)) return Result::Done();
  // Only volumes this provisioner made, bound to this very claim (the
  // resizer's CanSupport and pvCanBeExpanded).
  const std::string pv_name = Str(Field(pvc, "spec"), "volumeName");
  ObjectPtr pv = volumes_.Lookup("", pv_name);
  if (!pv || Annotation(*pv, kProvisionedBy) != kLocalPathProvisioner) return Result::Done();
  const Json& ref = Field(Field(*pv, "spec"), "claimRef");
  if (Str(ref, "namespace") != object::Namespace(pvc) || Str(ref, "uid") != object::Uid(pvc)) {
    return Result::Done();
  }
  // The size to reach: the request, or the allocated size of a resize that
  // was under way (it finishes first; a larger request follows).
  Json new_size = ClaimStorage(pvc);
  const Json& allocated = Field(Field(status, "allocatedResources"), "storage");
  const bool in_progress = Str(Field(status, "allocatedResourceStatuses"), "storage") ==
                           "ControllerResizeInProgress";
  if (in_progress && !allocated.is_null() && Bytes(allocated) > Bytes(capacity)) {
    new_size = allocated;
  }
  const std::string ns = object::Namespace(pvc);
  Client& c = resizer_.client();
  try {
    // 1. markControllerResizeInProgress: allocatedResources (what quota
    //    charges while the request might come back down), the status and
    //    the Resizing condition.
    Json claim = pvc;
    if (!in_progress || allocated != new_size) {
      claim["status"]["allocatedResources"]["storage"] = new_size;
      claim["status"]["allocatedResourceStatuses"]["storage"] = "ControllerResizeInProgress";
      claim["status"]["conditions"] = MergeResizeConditions(
          Field(status, "conditions"),
          {{"type", "Resizing"}, {"status", "True"}, {"lastTransitionTime", object::NowRfc3339()}});
      claim = c.Update(PersistentVolumeClaimsResource(), ns, claim, "status");
    }
    resizer_.events().Normal(WithKind(claim, "PersistentVolumeClaim"), "Resizing",
                             "External resizer is resizing volume " + pv_name);
    // 2. The volume: a directory has no size to change, so recording the
    //    new capacity is the whole expansion (and no file system resize on
    //    the node follows: no FileSystemResizePending).
    if (Field(Field(Field(*pv, "spec"), "capacity"), "storage") != new_size) {
      Json volume = *pv;
      volume["spec"]["capacity"]["storage"] = new_size;
      c.Update(PersistentVolumesResource(), "", volume);
    }
    // 3. markOverallExpansionAsFinished.
    claim["status"]["capacity"]["storage"] = new_size;
    claim["status"]["conditions"] =
        MergeResizeConditions(Field(claim["status"], "conditions"), nullptr);
    if (claim["status"]["conditions"].empty()) claim["status"].erase("conditions");
    Json& statuses = claim["status"]["allocatedResourceStatuses"];
    if (statuses.is_object()) statuses.erase("storage");
    if (!statuses.is_object() || statuses.empty()) {
      claim["status"].erase("allocatedResourceStatuses");
    }
    claim = c.Update(PersistentVolumeClaimsResource(), ns, claim, "status");
    resizer_.events().Normal(WithKind(claim, "PersistentVolumeClaim"), "VolumeResizeSuccessful",
                             "Resize volume succeeded");
  } catch (const Error& e) {
    if (IsConflictOrGone(e)) return Result::Retry();
    throw;
  }
  return Result::Done();
}

Result LocalPathProvisioner::Reclaim(const std::string& name) {
  ObjectPtr cached = volumes_.Lookup("", name);
  if (!cached) return Result::Done();
  const Json& pv = *cached;
  if (Annotation(pv, kProvisionedBy) != kLocalPathProvisioner) return Result::Done();
  if (Str(Field(pv, "status"), "phase") != "Released" ||
      Str(Field(pv, "spec"), "persistentVolumeReclaimPolicy") != "Delete") {
    return Result::Done();
  }
  if (object::IsBeingDeleted(pv)) return Result::Done();
  const std::string path = Str(Field(Field(pv, "spec"), "hostPath"), "path");
  const std::string node = Annotation(pv, "local.path.provisioner/selected-node");
  // Only what this provisioner made: a path under the node's directory.
  if (!path.empty() && !node.empty() && path.rfind(opts_.dir_for(node) + "/", 0) == 0) {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
    if (ec) {
      component_.events().Warning(WithKind(pv, "PersistentVolume"), "VolumeFailedDelete",
                                  "remove " + path + ": " + ec.message());
      return Result::Retry();
    }
  }
  try {
    DeleteOptions o;
    o.precondition_uid = object::Uid(pv);
    component_.client().Delete(PersistentVolumesResource(), "", name, o);
  } catch (const Error& e) {
    if (!IsConflictOrGone(e)) throw;
  }
  return Result::Done();
}

}  // namespace kin::controllers
