// The API server's patch engine: JSON merge patch (RFC 7386), JSON patch
// (RFC 6902), Kubernetes strategic merge patch, server-side apply and the
// bookkeeping of metadata.managedFields, as pure functions on JSON.
//
// None of these functions read or write storage, check preconditions or
// validate the result: the caller (the PATCH / PUT / POST handlers) decodes
// the request, calls one of them, then validates and stores what comes back.
//
// Errors are kin::Error:
//   BadRequest (400)  the patch document itself is malformed (not a list of
//                     operations, unknown op, bad JSON pointer, bad SMP
//                     directive, list item without its merge key, ...).
//   Invalid (422)     a well-formed JSON patch does not apply to this object
//                     (missing path, failed `test`, index out of range). The
//                     message names the operation and the path, e.g.
//                     "jsonpatch replace operation does not apply: doc is
//                     missing key: /spec/x". (kube-apiserver also answers 422
//                     here but replaces the detail with "the server rejected
//                     our request due to an error in our request".)
//   Conflict (409)    server-side apply conflicts, worded as kube-apiserver
//                     words them, one Cause per field (reason
//                     "FieldManagerConflict").
//   RequestEntityTooLarge (413)  more than 10000 JSON patch operations.
//
// Strategic merge patch and server-side apply need to know, per field, how
// lists merge. That knowledge lives in a built-in table (patch.cc) copied
// from the struct tags of k8s.io/api (patchStrategy / patchMergeKey for SMP,
// listType / listMapKey / structType / mapType for apply) for the kinds kin
// serves: Pod, PodTemplate, ReplicationController, Service, Node, Namespace,
// PersistentVolumeClaim, ServiceAccount (core), Deployment, ReplicaSet,
// DaemonSet, StatefulSet (apps), Job, CronJob (batch). The pod spec is known
// wherever it is embedded. Every kind gets the ObjectMeta rules
// (ownerReferences by uid, finalizers as a set). Fields missing from the
// table, and unknown kinds (custom resources), merge maps key by key and
// replace lists whole, as Kubernetes does for unstructured objects.
//
// Known deviations from Kubernetes, all deliberate:
//   - SMP `$patch: merge` on a map is accepted as a plain merge (Kubernetes
//     rejects it); `$patch: replace` and new list items are merged into an
//     empty value, so directives and nulls inside them are dropped rather
//     than stored; `$deleteFromPrimitiveList` deletes even from lists
//     without the merge strategy.
//   - Server-side apply and managedFields bookkeeping are a faithful port of
//     structured-merge-diff's semantics on this table, with these limits:
//     no schema for fields outside the table (maps there are granular, lists
//     atomic); explicit nulls in an applied configuration are ignored;
//     status fields in an apply to the main resource are merged like any
//     other field (the caller resets them if the resource has a status
//     subresource); no conversion between API versions; no cap on the number
//     of Update managers; for a create, "." (the map itself)
//     is recorded for every newly added map below metadata/spec/status,
//     whereas Kubernetes omits it for Go value structs (spec.template etc.).
//   - Duplicate items in a live keyed list collapse to the first one during
//     apply (as in structured-merge-diff); duplicates in an applied
//     configuration are rejected.
//
// Server-owned metadata (uid, resourceVersion, generation,
// creationTimestamp, deletionTimestamp, deletionGracePeriodSeconds,
// selfLink, managedFields) and the object's identity (apiVersion, kind,
// metadata.name, metadata.namespace) are never tracked in managedFields;
// ServerSideApply copies them from the live object (from the applied
// configuration when creating) and never changes them.
//
// Thread-safety: all functions are pure and thread-safe (the schema table is
// built once, on first use, and never changes).
#pragma once

#include <string>

#include "base/yaml.h"

namespace kin::apiserver {

// RFC 7386. A non-object patch replaces the target; null members delete.
Json ApplyMergePatch(const Json& target, const Json& patch);

// RFC 6902: add, remove, replace, move, copy, test; JSON pointers with ~0 / ~1
// escapes and "-" (append) in add. All or nothing: on error the caller's
// document is untouched (a new document is returned on success).
Json ApplyJsonPatch(const Json& target, const Json& ops);

// Strategic merge patch as k8s.io/apimachinery/pkg/util/strategicpatch
// applies it (StrategicMergeMapPatch): keyed lists merge by patchMergeKey,
// primitive lists with the merge strategy merge as ordered sets, other lists
// are replaced; null deletes; directives $patch (replace/delete, in maps and
// list items), $setElementOrder/<list>, $retainKeys,
// $deleteFromPrimitiveList/<list>. `group` is "" for the core group.
Json ApplyStrategicMergePatch(const Json& original, const Json& patch, const std::string& group,
                              const std::string& kind);

struct ApplyOptions {
  std::string manager;  // the fieldManager query parameter; required
  bool force = false;   // take ownership of conflicting fields
  std::string now;      // RFC 3339 time written to managedFields entries
};

// Server-side apply (PATCH application/apply-patch+yaml). `live` is null when
// the object does not exist yet; `applied` is the decoded configuration. The
// result is `live` with the configuration merged in: fields this manager
// applied before and no longer applies are removed unless another manager
// owns them; keyed lists merge by key, other lists are replaced atomically.
// metadata.managedFields holds one entry per manager, e.g.
//   {"manager":"kubectl","operation":"Apply","apiVersion":"apps/v1",
//    "time":"...","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{
//    "f:replicas":{},"f:template":{"f:spec":{"f:containers":{
//    "k:{\"name\":\"web\"}":{".":{},"f:image":{},"f:name":{}}}}}}}}
// An existing object without managedFields is first attributed to the
// manager "before-first-apply", as Kubernetes does. Throws Conflict when the
// configuration changes a field another manager owns and !opts.force; with
// force the field moves to this manager. As kube-apiserver, the manager
// "kubectl" (`kubectl apply --server-side`) takes over without a conflict
// the fields named in the object's kubectl.kubernetes.io/last-applied-
// configuration annotation (left by a client-side `kubectl apply`).
Json ServerSideApply(const Json& live, const Json& applied, const std::string& group,
                     const std::string& kind, const ApplyOptions& opts);

// Records an ordinary write (create, update, any non-apply patch) in
// after.metadata.managedFields, as an "Update" entry of `manager` at
// `apiVersion`: fields that changed from `before` (every field, when
// `before` is null: a create) become owned by the manager and are taken from
// every other manager; removed fields are dropped from every manager. The
// group and kind come from after's apiVersion and kind. Like Kubernetes, an
// existing object that has no managedFields stays untracked (only a create
// or an apply starts tracking). As in Kubernetes, non-empty managedFields
// that the writer sent in `after` are taken as the starting point (that is
// how a client edits ownership); otherwise `before`'s are. Do not call this
// after ServerSideApply: an apply's result already carries its managedFields,
// and recording it again as an Update would move the applied fields to an
// "Update" entry of the same manager.
void RecordUpdateManagedFields(const Json& before, Json& after, const std::string& manager,
                               const std::string& apiVersion, const std::string& now);

}  // namespace kin::apiserver
