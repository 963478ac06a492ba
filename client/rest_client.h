// RestClient: kin::Client over the Kubernetes REST API (HTTP via libcurl),
// for the CLI, tests and anything outside `kin serve`.
//
// Requests go to ResourceInfo::Path(ns) + "/" + name [+ "/" + subresource],
// with ListOptions, WriteOptions and DeleteOptions encoded as kube-apiserver
// expects them (query parameters; a DeleteOptions body for DELETE). A non-2xx
// answer carrying a metav1.Status becomes the kin::Error it describes (code
// from the reason, falling back to the HTTP status; details and causes
// copied), so callers see the same error as from the in-process client. Any
// other error body becomes an error with the HTTP status and the body text.
//
// StartWatch waits for the response headers, so a refused watch (bad
// selector, unknown namespace, 410 Expired) throws right there, as in-process.
// The events then arrive on a thread of the watch's own, with its own
// connection; an ERROR event (a Status, e.g. 410 Expired) is the last one.
// Stop() ends the transfer within about a second even when nothing arrives.
//
// Thread-safety: RestClient is thread-safe: requests take a kept-alive
// connection from a small pool (one per concurrent caller). A Watch may be
// read by one thread while another calls Stop().
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/http_client.h"
#include "client/client.h"

namespace kin {

class RestClient : public Client {
 public:
  explicit RestClient(http::ClientOptions opts);
  ~RestClient() override;
  RestClient(const RestClient&) = delete;
  RestClient& operator=(const RestClient&) = delete;

  Json Get(const ResourceInfo& r, const std::string& ns, const std::string& name) override;
  Json List(const ResourceInfo& r, const std::string& ns, const ListOptions& opts = {}) override;
  // For a namespaced resource, `ns` "" means the object's metadata.namespace.
  Json Create(const ResourceInfo& r, const std::string& ns, const Json& obj,
              const WriteOptions& opts = {}) override;
  Json Update(const ResourceInfo& r, const std::string& ns, const Json& obj,
              const std::string& subresource = "", const WriteOptions& opts = {}) override;
  Json Patch(const ResourceInfo& r, const std::string& ns, const std::string& name, PatchType type,
             const Json& patch, const std::string& subresource = "",
             const WriteOptions& opts = {}) override;
  Json Delete(const ResourceInfo& r, const std::string& ns, const std::string& name,
              const DeleteOptions& opts = {}) override;
  std::unique_ptr<Watch> StartWatch(const ResourceInfo& r, const std::string& ns,
                                    const ListOptions& opts) override;
  Json CreateSubresource(const ResourceInfo& r, const std::string& ns, const std::string& name,
                         const std::string& subresource, const Json& body) override;

  // One request to any path ("/version", "/api/v1/..."): the decoded JSON
  // body of a 2xx answer (null when empty), else the error as above.
  Json Request(const std::string& method, const std::string& path_and_query,
               const Json& body = nullptr, const std::string& content_type = "");

  const http::ClientOptions& options() const { return opts_; }

 private:
  std::unique_ptr<http::HttpClient> Acquire();
  void Release(std::unique_ptr<http::HttpClient> c);

  http::ClientOptions opts_;
  std::mutex mu_;
  std::vector<std::unique_ptr<http::HttpClient>> idle_;  // guarded by mu_
};

// Splits a watch stream — newline-delimited JSON events {"type","object"} —
// into events, whatever chunks it arrives in (an event may span chunks, a
// chunk may carry several). A line that is not an event becomes an ERROR
// event carrying an InternalError Status, as client-go reports it.
// Not thread-safe (one stream, one reader).
class WatchDecoder {
 public:
  using Emit = std::function<bool(WatchEvent&&)>;
  // Emits each event completed by `data`; stops at once and returns false
  // when `emit` returns false.
  bool Feed(std::string_view data, const Emit& emit);
  // Emits an event the stream ended without a newline after, if any.
  bool Finish(const Emit& emit);

 private:
  bool EmitLine(std::string_view line, const Emit& emit);
  std::string buf_;
  size_t scanned_ = 0;  // buf_[0, scanned_) holds no newline
};

// The query string ("?a=b&c=d", or "") for ListOptions; `watch` adds watch=true.
std::string ListQuery(const ListOptions& opts, bool watch);
// The query string for WriteOptions.
std::string WriteQuery(const WriteOptions& opts);
// The metav1.DeleteOptions body for DeleteOptions.
Json DeleteOptionsBody(const DeleteOptions& opts);

// The kin::Error an HTTP error answer stands for: a metav1.Status body maps
// by reason (then HTTP status), with details and causes; any other body
// gives the HTTP status's code and the body text as the message.
Error ErrorFromResponse(int http_status, const std::string& body);
// The same for a metav1.Status object (an ERROR watch event's object).
Error ErrorFromStatus(const Json& status, int http_status = 0);

}  // namespace kin
