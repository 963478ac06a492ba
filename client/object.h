// Helpers for untyped API objects (kin::Json as the REST API has them):
// identity (namespace, name, uid, the "ns/name" key), labels, owner
// references, status conditions, and RFC 3339 times as metav1.Time writes
// them.
//
// Every accessor tolerates a malformed object: a missing or mistyped field
// reads as empty (""/null/no references) rather than throwing, because
// controllers read whatever the cache holds. Keys are "ns/name" for
// namespaced objects and "name" for cluster-scoped ones, as client-go's
// MetaNamespaceKeyFunc makes them, and are what informers and work queues use.
//
// Thread-safety: pure functions.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/yaml.h"  // Json

namespace kin::object {

// The string at obj[a][b] (e.g. "metadata", "name"); "" when absent or not a string.
std::string StringAt(const Json& obj, const char* a, const char* b);
// Lenient reads for controllers: obj[key], or null when obj is not an
// object or has no such key; and the string there, or "". Never throw, so
// a malformed object in a cache reads as an empty one.
const Json& Field(const Json& obj, const char* key);
std::string Str(const Json& obj, const char* key);

std::string Namespace(const Json& obj);
std::string Name(const Json& obj);
std::string Uid(const Json& obj);
std::string ResourceVersion(const Json& obj);
// The resourceVersion as a number (kin's are a global counter), -1 when
// it is not one; for telling which of two states of an object is newer.
int64_t ResourceVersionNumber(const Json& obj);

// "ns/name", or "name" when `ns` is empty.
std::string Key(const std::string& ns, const std::string& name);
// The key of an object.
std::string Key(const Json& obj);
// {ns, name} of a key ("name" alone: {"", name}).
std::pair<std::string, std::string> SplitKey(std::string_view key);

// metadata.labels, or an empty object.
const Json& Labels(const Json& obj);
// The value of one label; nullopt when the label is absent.
std::optional<std::string> Label(const Json& obj, const std::string& key);

// True when metadata.deletionTimestamp is set.
bool IsBeingDeleted(const Json& obj);

// metadata.ownerReferences (only the entries that are objects).
std::vector<const Json*> OwnerReferences(const Json& obj);
// The uids of every owner.
std::vector<std::string> OwnerUids(const Json& obj);
// The owner reference with controller: true; nullptr when there is none.
const Json* ControllerOf(const Json& obj);
// True when `obj`'s controller reference names `owner`'s uid.
bool IsControlledBy(const Json& obj, const Json& owner);
// A controller reference to `owner` (apiVersion and kind given, since list
// items lack them), with blockOwnerDeletion as upstream controllers set it.
Json NewControllerRef(const Json& owner, const std::string& api_version, const std::string& kind);

// The first entry of `status`.conditions whose type is `type` (a status as
// pods, nodes, Deployments... have it); nullptr when there is none.
const Json* StatusCondition(const Json& status, std::string_view type);
// The same in obj.status.
const Json* Condition(const Json& obj, std::string_view type);

// RFC 3339 in UTC with whole seconds, as metav1.Time marshals: "2024-05-01T10:00:00Z".
std::string FormatRfc3339(std::chrono::system_clock::time_point t);
std::string NowRfc3339();
// Parses RFC 3339 ("Z" or "+hh:mm", optional fraction up to nanoseconds);
// nullopt for a time system_clock cannot hold (before 1678 or after 2261).
std::optional<std::chrono::system_clock::time_point> ParseRfc3339(std::string_view s);

}  // namespace kin::object
