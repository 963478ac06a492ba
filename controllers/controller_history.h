// Revision history of the DaemonSet and StatefulSet controllers, as
// upstream's pkg/controller/history, plus the pod helpers both share.
//
// A revision is an apps/v1 ControllerRevision: named `<parent>-<hash>`,
// labelled with the parent's template labels and `controller-revision-hash:
// <hash>`, controlled by the parent (ownerReferences), holding in `data` the
// patch that restores the parent's template (`{"spec":{"template":{...,
// "$patch":"replace"}}}`) and a `revision` number. `kubectl rollout
// history|undo` read and write them.
//
// RevisionStore keeps them. NewRevisionStore() gives the API-backed store
// (a shared informer on controllerrevisions for reads, the controller's
// client for writes) when the API serves `controllerrevisions`, otherwise an
// in-memory store of the same objects, so the controllers behave the same
// either way except that in-memory history is not visible to kubectl and is
// lost when the process restarts (the controllers then start a new history
// from the current template). The cache of the API-backed store may lag
// behind its own writes; callers tolerate that (Create of an existing equal
// revision returns the existing one).
//
// SyncUpdateRevision is upstream's getStatefulSetRevisions / constructHistory
// core: the revision of the current template is reused when it is the
// newest, bumped to the next number when an older equal one exists (a
// rollback), or created; a name collision with a different revision bumps
// the collision count (which the caller stores in status.collisionCount).
//
// Thread-safety: stores are thread-safe; the free functions are pure.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "controllers/pod_util.h"  // PodPhase, IsPodReady, ScaledValue

#include "base/yaml.h"
#include "client/client.h"
#include "client/informer_factory.h"

namespace kin::controllers {

inline constexpr char kControllerRevisionHashLabel[] = "controller-revision-hash";

// The ControllerRevision resource when the API serves it, else nullptr.
const ResourceInfo* ControllerRevisionsResource();

class RevisionStore {
 public:
  virtual ~RevisionStore() = default;
  // Revisions controlled by `parent`, by revision number then name.
  virtual std::vector<Json> List(const Json& parent) = 0;
  // Throws Error::AlreadyExists when the name is taken.
  virtual Json Create(const Json& revision) = 0;
  // Throws Error::NotFound.
  virtual Json Get(const std::string& ns, const std::string& name) = 0;
  // Sets `revision` of an existing revision to `number`.
  virtual Json SetRevisionNumber(const Json& revision, int64_t number) = 0;
  // NotFound is ignored.
  virtual void Delete(const Json& revision) = 0;
  // The parent (by uid) is gone: drop what only this store knows of it.
  virtual void ForgetParent(const std::string& uid) { (void)uid; }
  // The informer callers must wait for before trusting List, if any.
  virtual const Informer* informer() const { return nullptr; }
  // True when revisions are real API objects.
  virtual bool persistent() const = 0;
};

std::unique_ptr<RevisionStore> NewMemoryRevisionStore();
// `client` writes as the controller; both must outlive the store.
std::unique_ptr<RevisionStore> NewApiRevisionStore(SharedInformerFactory& informers,
                                                   Client& client);
// The API-backed store if ControllerRevisionsResource() exists, else memory.
std::unique_ptr<RevisionStore> NewRevisionStore(SharedInformerFactory& informers, Client& client);

// upstream controller.ComputeHash: a short, label-safe hash of `obj` (and
// the collision count when set): FNV-1a 32 of its JSON, its decimal digits
// mapped to the alphabet "bcdfghjklmnpqrstvwxz2456789".
std::string ComputeHash(const Json& obj, std::optional<int64_t> collision_count);

// The patch a revision of `parent`'s spec.template stores.
Json TemplatePatch(const Json& parent);
// The parent with spec.template replaced by the revision's.
Json ApplyRevision(const Json& parent, const Json& revision);

// A revision of `parent` (kind and apiVersion given: informer items lack
// them) named `<parent>-<hash>`.
Json NewRevision(const Json& parent, const std::string& api_version, const std::string& kind,
                 const Json& data, int64_t number, const std::string& hash);
int64_t RevisionNumber(const Json& revision);

struct RevisionSync {
  Json update;                 // the revision of the parent's template
  std::vector<Json> all;       // every revision, `update` included, by number
  int64_t collision_count = 0;  // possibly raised
};
// `hash_of(collision_count)` hashes the parent's template for names.
RevisionSync SyncUpdateRevision(RevisionStore& store, const Json& parent,
                                const std::string& api_version, const std::string& kind,
                                const std::function<std::string(int64_t)>& hash_of,
                                int64_t collision_count);

// Deletes the oldest revisions not named in `live` until at most `limit`
// of those remain (spec.revisionHistoryLimit).
void TruncateHistory(RevisionStore& store, const std::vector<Json>& revisions,
                     const std::set<std::string>& live, int64_t limit);

// --- Pod helpers shared by the DaemonSet and StatefulSet controllers. ---

// Ready for at least min_ready_seconds at `now` (podutil.IsPodAvailable).
bool IsPodAvailable(const Json& pod, int64_t min_ready_seconds,
                    std::chrono::system_clock::time_point now);
// How long until a Ready pod becomes available; nullopt when not Ready or
// already available.
std::optional<std::chrono::seconds> UntilAvailable(const Json& pod, int64_t min_ready_seconds,
                                                   std::chrono::system_clock::time_point now);
// A pod from `parent`'s spec.template (labels, annotations, finalizers,
// spec) with a controller reference to `parent`, as controller.GetPodFromTemplate.
Json PodFromTemplate(const Json& parent, const std::string& api_version, const std::string& kind);
// int or "N%" of `total` (ScaledValue in controllers/pod_util.h), null as
// 0; throws Error::Invalid naming `field` on a bad value.
int64_t ScaledValue(const Json& value, int64_t total, bool round_up, const std::string& field);
// The parent with kind and apiVersion set, for Events.
Json WithKind(Json obj, const std::string& api_version, const std::string& kind);

}  // namespace kin::controllers
