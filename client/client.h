// The one client interface every component uses to talk to the API.
//
// Controllers, node agents and the CLI see cluster state only through
// kin::Client. Two implementations: LocalClient (apiserver/local_client.h:
// straight to the registry, inside `kin serve`) and RestClient
// (client/rest_client.h: HTTP via libcurl, for the CLI and tests). Both
// behave the same: objects are JSON as the REST API has them; failures are
// kin::Error carrying the API's code (NotFound, Conflict, Invalid, ...).
//
// Thread-safety: implementations are thread-safe.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "base/yaml.h"  // Json
#include "client/resources.h"

namespace kin {

struct ListOptions {
  std::string label_selector;
  std::string field_selector;
  int64_t limit = 0;             // 0: everything
  std::string continue_token;    // from a previous page's metadata.continue
  std::string resource_version;  // list: "" or "0"; watch: start after this
  int timeout_seconds = 0;       // watch: server ends the stream after this
  bool allow_bookmarks = false;
};

enum class PatchType { kMerge, kJson, kStrategic, kApply };
// The Content-Type of each patch type.
const char* PatchContentType(PatchType t);

struct WriteOptions {
  std::string field_manager;     // e.g. "kubectl-client-side-apply"
  bool force = false;            // server-side apply: take over conflicting fields
  std::string field_validation;  // "", "Strict", "Warn", "Ignore"
  bool dry_run = false;
};

struct DeleteOptions {
  std::optional<int64_t> grace_period_seconds;
  std::string propagation_policy;  // "", "Background", "Foreground", "Orphan"
  std::string precondition_uid;
  std::string precondition_resource_version;
  bool dry_run = false;
};

struct WatchEvent {
  std::string type;  // ADDED, MODIFIED, DELETED, BOOKMARK, ERROR
  Json object;
};

// A running watch. Next() waits up to `timeout` for an event; it returns
// false when the watch has ended (server closed it, Stop(), or an error
// event was the last one) or on timeout (then ended() stays false).
class Watch {
 public:
  virtual ~Watch() = default;
  virtual bool Next(WatchEvent& event, std::chrono::milliseconds timeout) = 0;
  virtual bool ended() const = 0;
  virtual void Stop() = 0;
};

class Client {
 public:
  virtual ~Client() = default;

  // `ns` is ignored for cluster-scoped resources; "" lists all namespaces.
  virtual Json Get(const ResourceInfo& r, const std::string& ns, const std::string& name) = 0;
  virtual Json List(const ResourceInfo& r, const std::string& ns, const ListOptions& opts = {}) = 0;
  virtual Json Create(const ResourceInfo& r, const std::string& ns, const Json& obj,
                      const WriteOptions& opts = {}) = 0;
  // `subresource`: "" or "status" (or "scale", ...).
  virtual Json Update(const ResourceInfo& r, const std::string& ns, const Json& obj,
                      const std::string& subresource = "", const WriteOptions& opts = {}) = 0;
  virtual Json Patch(const ResourceInfo& r, const std::string& ns, const std::string& name,
                     PatchType type, const Json& patch, const std::string& subresource = "",
                     const WriteOptions& opts = {}) = 0;
  // Returns the object as it stands after the call (with deletionTimestamp
  // when deletion is graceful or waits on finalizers), or a Status.
  virtual Json Delete(const ResourceInfo& r, const std::string& ns, const std::string& name,
                      const DeleteOptions& opts = {}) = 0;
  virtual std::unique_ptr<Watch> StartWatch(const ResourceInfo& r, const std::string& ns,
                                            const ListOptions& opts) = 0;
  // POST to a subresource that is not the object itself (pods/binding).
  virtual Json CreateSubresource(const ResourceInfo& r, const std::string& ns,
                                 const std::string& name, const std::string& subresource,
                                 const Json& body) = 0;
};

}  // namespace kin
