// The resource types kin serves: group, version, kind, plural and the facts
// discovery needs (scope, verbs, short names, categories, subresources).
//
// One static table serves the API server (routing, discovery), the clients
// (URL building) and the CLI (`kin get po`). Thread-safe (immutable).
// Custom resources (CustomResourceDefinitions, apiserver/crd.h) are a
// second, dynamic set consulted after the static table by the Find and
// Lookup functions; it is thread-safe, and a pointer it handed out stays
// valid for the life of the process (entries replaced or removed are kept,
// never freed).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kin {

struct ResourceInfo {
  std::string group;  // "" for core
  std::string version;
  std::string kind;
  std::string plural;
  std::string singular;
  bool namespaced = true;
  std::vector<std::string> short_names;
  std::vector<std::string> categories;
  std::vector<std::string> subresources;  // "status", "scale", "binding", "log", ...
  std::vector<std::string> verbs;
  // Served from a CustomResourceDefinition (the dynamic set), stored in
  // its storage version.
  bool custom = false;
  std::string storage_version;  // custom only: the version objects are stored in

  std::string api_version() const { return group.empty() ? version : group + "/" + version; }
  std::string list_kind() const { return kind + "List"; }
  // "pods", "deployments.apps": the storage bucket and the name kubectl prints.
  std::string group_resource() const { return group.empty() ? plural : plural + "." + group; }
  bool has_subresource(std::string_view s) const;
  // URL path prefix for a namespace ("" = all namespaces / cluster scope):
  // "/api/v1/namespaces/default/pods", "/apis/apps/v1/deployments".
  std::string Path(const std::string& ns = "") const;
};

const std::vector<ResourceInfo>& AllResources();
// By group, version and plural (the URL form). nullptr when unknown.
const ResourceInfo* FindResource(std::string_view group, std::string_view version,
                                 std::string_view plural);
// By apiVersion ("v1", "apps/v1") and kind. nullptr when unknown.
const ResourceInfo* FindResourceByKind(std::string_view api_version, std::string_view kind);
// By what a user types: plural, singular, short name or kind, optionally
// qualified with the group ("deploy", "deployments.apps", "Pod").
const ResourceInfo* LookupResource(std::string_view name);

// The dynamic set of custom resources: every served version of every
// established CRD, keyed by the CRD's name. Replacing the whole set is what
// the API server does whenever a CRD changes.
void SetCustomResources(std::vector<ResourceInfo> resources);
// A snapshot of the custom resources served now.
std::vector<const ResourceInfo*> CustomResources();
// The static table followed by the custom resources (discovery, the
// namespace controller).
std::vector<const ResourceInfo*> ServedResources();

// Shorthands for the resources components use most.
const ResourceInfo& PodsResource();
const ResourceInfo& NodesResource();
const ResourceInfo& ServicesResource();
const ResourceInfo& NamespacesResource();
const ResourceInfo& EndpointsResource();
const ResourceInfo& EventsResource();

}  // namespace kin
