// CustomResourceDefinitions (apiextensions.k8s.io/v1), as
// kube-apiserver's apiextensions-apiserver serves them.
//
// The CRD object: defaulted (singular, listKind, conversion None),
// validated with upstream's words (names, group with a dot,
// metadata.name = <plural>.<group>, exactly one storage version, scope,
// a structural schema per version), given the cleanup finalizer on create
// and its status (acceptedNames, storedVersions, the NamesAccepted and
// Established conditions) on every write. SyncCustomResources turns the
// stored, established CRDs into the dynamic set of client/resources.h: one
// ResourceInfo per served version, `custom` set, stored in the storage
// version. The registry calls it after every CRD write (and at start), so
// a CRD is served the moment its create returns.
//
// The custom resources: PrepareCustomResource defaults from the version's
// schema (`default`), prunes unknown fields (unless
// x-kubernetes-preserve-unknown-fields), validates (type, nullable,
// required, enum, minimum/maximum and their exclusive forms,
// minLength/maxLength, pattern, minItems/maxItems, min/maxProperties,
// x-kubernetes-int-or-string, x-kubernetes-embedded-resource,
// x-kubernetes-list-type set/map, allOf/anyOf/oneOf/not as kube-openapi
// evaluates them, `format` as schema_format.h says) with kube-apiserver's
// messages, e.g.
//   Widget.example.com "w" is invalid: spec.replicas: Invalid value:
//   "string": spec.replicas in body must be of type integer: "string"
// and sets the storage apiVersion (conversion None: only apiVersion
// changes between versions). A CRD's schema must be structural as
// apiextensions defines it, junctors included (value validations only
// inside allOf/anyOf/oneOf/not; what a root junctor names is specified
// outside it). Not done: x-kubernetes-validations (CEL) are accepted and
// not enforced (the REST layer warns), conversion webhooks are refused.
//
// Thread-safety: all functions are thread-safe; the CRD catalog behind
// them is process-wide, like the resource table.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/yaml.h"
#include "client/resources.h"

namespace kin::apiserver {

class Registry;
class Store;

inline constexpr const char* kCrdBucket = "customresourcedefinitions.apiextensions.k8s.io";
inline constexpr const char* kCrdCleanupFinalizer = "customresourcecleanup.apiextensions.k8s.io";

bool IsCustomResourceDefinitions(const ResourceInfo& r);

// --- the CRD object ------------------------------------------------------------

// Create (old == nullptr) or update of a CRD: defaults, validation (throws
// Error::Invalid with one Cause per problem), finalizer and status (names
// another served CRD of the group holds are not accepted). Reads no store:
// the registry prepares updates under the store's lock.
void PrepareCustomResourceDefinition(Json& crd, const Json* old);
// The problems, as field errors (for tests): "spec.group: Invalid value: ...".
std::vector<Cause> CustomResourceDefinitionErrors(const Json& crd, const Json* old);
// Rebuilds the dynamic resource set and the schema catalog from the store.
void SyncCustomResources(const Store& store);
// After a delete of a CRD or of one of its objects: a terminating CRD gets
// the Terminating condition, its objects are deleted, and once none is
// left its cleanup finalizer goes (and with it the CRD).
void FinalizeCustomResourceDefinitions(Registry& registry);
// Whether the CRD serving r is being deleted.
bool CustomResourceDefinitionTerminating(const ResourceInfo& r);
// Warnings a CRD write earns (x-kubernetes-validations are not enforced).
std::vector<std::string> CustomResourceDefinitionWarnings(const Json& crd);

// --- custom resources ----------------------------------------------------------

// Create (old == nullptr) or update of a custom resource, after the
// registry's generic preparation: default, prune, validate, storage version.
void PrepareCustomResource(const ResourceInfo& r, Json& obj, const Json* old);
// The object as version r.version serves it (conversion None: apiVersion).
Json ToServedVersion(const ResourceInfo& r, Json obj);
// Paths of the fields the version's schema would prune: the strict field
// validation errors (`unknown field "spec.foo"`).
std::vector<std::string> CustomResourceUnknownFieldErrors(const ResourceInfo& r, const Json& obj);
// The scale subresource (autoscaling/v1 Scale) through the CRD's
// specReplicasPath, statusReplicasPath and labelSelectorPath.
Json CustomResourceScale(const ResourceInfo& r, const Json& obj);
void SetCustomResourceReplicas(const ResourceInfo& r, Json& obj, int64_t replicas);
// A Table MakeTable built for r, with the CRD's additionalPrinterColumns
// (NAME, the columns, or NAME and AGE when it defines none).
void CustomizeTable(const ResourceInfo& r, const std::vector<Json>& objs, Json& table,
                    std::chrono::system_clock::time_point now);
// The openAPIV3Schema of r's version (null when none).
Json CustomResourceSchema(const ResourceInfo& r);

// --- OpenAPI v3 (kubectl explain, kubectl's fieldValidation check) -------------

// {"apis/example.com/v1": "<hash>", ...}: the group-versions only custom
// resources serve, each with the hash of its document.
std::vector<std::pair<std::string, std::string>> CustomOpenApiV3Index();
// The OpenAPI 3.0 document of such a group-version ("apis/example.com/v1"):
// each kind's schema (the version's openAPIV3Schema with apiVersion, kind,
// metadata and x-kubernetes-group-version-kind) and its paths, whose write
// operations take fieldValidation. Empty when gv_path is not one.
std::string CustomOpenApiV3Document(const std::string& gv_path);

// --- structural schemas (pure; for tests) --------------------------------------

struct SchemaError {
  std::string field;
  std::string reason;   // FieldValueInvalid, FieldValueRequired, ...
  std::string message;  // "Invalid value: ...": the part after "<field>: "
};
void ApplySchemaDefaults(const Json& schema, Json& value);
// Removes what the schema does not know; appends the removed paths.
void PruneUnknownFields(const Json& schema, Json& value, const std::string& path,
                        std::vector<std::string>* pruned, bool root = false);
std::vector<SchemaError> ValidateAgainstSchema(const Json& schema, const Json& value,
                                               const std::string& path);

}  // namespace kin::apiserver
