// Storage controllers: PersistentVolume <-> PersistentVolumeClaim binding
// (kube-controller-manager's persistentvolume-binder) and the local-path
// provisioner kind ships (rancher.io/local-path), built in.
//
// PersistentVolumeBinder (component "persistentvolume-controller"):
//   - a claim without spec.volumeName whose class binds Immediately (or has
//     no class) is bound to the smallest Available volume that fits: same
//     storageClassName, every requested access mode, capacity >= the
//     storage request, the same volumeMode, labels matched by
//     spec.selector; a volume whose claimRef names the claim (pre-bound) is
//     taken first. A claim naming spec.volumeName is bound to that volume.
//     Binding writes, in upstream's order, the volume's claimRef (annotation
//     pv.kubernetes.io/bound-by-controller when the controller chose it),
//     its status Bound, the claim's spec.volumeName with the annotations
//     pv.kubernetes.io/bind-completed (and bound-by-controller), then the
//     claim's status (Bound, accessModes, capacity).
//   - a claim of a WaitForFirstConsumer class is left Pending (Normal event
//     WaitForFirstConsumer "waiting for first consumer to be created before
//     binding") until the scheduler annotates it
//     volume.kubernetes.io/selected-node; then, or at once for an Immediate
//     class, a class with a provisioner gets the claim annotated
//     volume.kubernetes.io/storage-provisioner (+ the beta key) and an
//     ExternalProvisioning event, and the provisioner makes the volume,
//     pre-bound to the claim.
//   - no match and no provisioner: Normal FailedBinding "no persistent
//     volumes available for this claim and no storage class is set", or
//     `storageclass.storage.k8s.io "x" not found` for a class that is not
//     there. The scheduler binds a pod once its claims name their volumes
//     (controllers/scheduler.h); the node agent waits for Bound.
//   - volumes: no claimRef -> Available; a claimRef whose claim is gone (or
//     was re-created: another uid) -> Released; Retain keeps it Released,
//     Delete of a provisioned volume is the provisioner's to carry out.
//
// LocalPathProvisioner (component "rancher.io/local-path"): for a claim of
// a class with provisioner rancher.io/local-path that is unbound and
// annotated with the selected node, it makes the directory
// <dir_for(node)>/pvc-<uid>_<ns>_<name> (mode 0777) and the volume
// pvc-<uid>: spec.hostPath {path, DirectoryOrCreate}, nodeAffinity
// kubernetes.io/hostname In [node], capacity = the request, the claim's
// access modes, the class's reclaim policy, claimRef to the claim,
// annotation pv.kubernetes.io/provisioned-by; Normal events Provisioning and
// ProvisioningSucceeded on the claim. A volume it provisioned that is
// Released with reclaim policy Delete loses its directory, then the volume
// is deleted. At start it creates the default StorageClass `standard` when
// missing (kind's manifest): is-default-class "true", WaitForFirstConsumer,
// reclaim Delete.
// It also does the external-resizer's part for the volumes it made (as
// component "external-resizer rancher.io/local-path"): a Bound claim whose
// request exceeds status.capacity (the PersistentVolumeClaimResize
// admission let it grow: its class allows expansion) gets
// status.allocatedResources, allocatedResourceStatuses
// ControllerResizeInProgress and condition Resizing, Event Resizing; the
// volume's capacity becomes the new size (a directory needs no file system
// resize, so no FileSystemResizePending); then status.capacity, the
// condition and the resource status cleared, Event VolumeResizeSuccessful.
//
// Both reconcile from shared informers (claims, volumes, classes), are
// idempotent and retry with back-off on errors and conflicts.
//
// Thread-safety: Start/Stop from one owner thread.
#pragma once

#include <functional>
#include <string>

#include "client/informer_factory.h"
#include "controllers/controller.h"
#include "controllers/work_queue.h"

namespace kin::controllers {

inline constexpr char kLocalPathProvisioner[] = "rancher.io/local-path";
inline constexpr char kDefaultStorageClassName[] = "standard";
inline constexpr char kSelectedNodeAnnotation[] = "volume.kubernetes.io/selected-node";
inline constexpr char kIsDefaultClassAnnotation[] = "storageclass.kubernetes.io/is-default-class";

const ResourceInfo& PersistentVolumesResource();
const ResourceInfo& PersistentVolumeClaimsResource();
const ResourceInfo& StorageClassesResource();

// The StorageClass `standard` kind installs.
Json DefaultStorageClassObject();

// Whether volume `pv` can serve claim `pvc` (class, access modes, size,
// volume mode, selector); ignores claimRef and phase.
bool VolumeMatchesClaim(const Json& pv, const Json& pvc);

class PersistentVolumeBinder : public Controller {
 public:
  PersistentVolumeBinder(SharedInformerFactory& informers, Client& client);
  ~PersistentVolumeBinder() override;
  std::string name() const override { return "persistentvolume-binder"; }
  void Start() override;
  void Stop() override;

 private:
  Result Sync(const std::string& key);
  Result SyncClaim(const std::string& ns, const std::string& name);
  Result SyncVolume(const std::string& name);
  void Bind(Json pv, Json pvc, bool chosen_by_controller);
  void SetVolumePhase(const Json& pv, const std::string& phase);
  ObjectPtr ClassOf(const Json& pvc);

  ComponentClient component_;
  Informer& claims_;
  Informer& volumes_;
  Informer& classes_;
  WorkQueue queue_;
  ReconcileWorkers workers_;
  InformerSubscriptions subscriptions_;
  StartStopOnce run_state_;
};

struct LocalPathProvisionerOptions {
  // The directory under which volumes of `node` live (made when missing):
  // kin serve gives <state>/nodes/<node>/local-path-provisioner, so that
  // deleting the cluster removes them.
  std::function<std::string(const std::string& node)> dir_for;
  // Create the `standard` StorageClass at start when missing.
  bool create_default_class = true;
};

class LocalPathProvisioner : public Controller {
 public:
  LocalPathProvisioner(SharedInformerFactory& informers, Client& client,
                       LocalPathProvisionerOptions opts);
  ~LocalPathProvisioner() override;
  std::string name() const override { return "local-path-provisioner"; }
  void Start() override;
  void Stop() override;

 private:
  Result Sync(const std::string& key);
  Result Provision(const std::string& ns, const std::string& name);
  Result Expand(const Json& pvc);
  Result Reclaim(const std::string& name);

  ComponentClient component_;
  ComponentClient resizer_;  // the external-resizer's writes and Events
  LocalPathProvisionerOptions opts_;
  Informer& claims_;
  Informer& volumes_;
  Informer& classes_;
  WorkQueue queue_;
  ReconcileWorkers workers_;
  InformerSubscriptions subscriptions_;
  StartStopOnce run_state_;
};

}  // namespace kin::controllers
