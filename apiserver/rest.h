// The HTTP front end of the API: turns requests into Registry calls.
//
// Paths /api/v1/... and /apis/<group>/<version>/..., namespaced and
// all-namespace forms, subresources; verbs get, list, watch (chunked JSON
// events), create, update, patch (merge, JSON, strategic, apply),
// delete, deletecollection; health, version, discovery and metrics. Errors
// become the Kubernetes Status body with the right code and reason.
//
// Thread-safety: Handle() is called concurrently from connection threads.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <string>

#include "apiserver/authentication.h"
#include "apiserver/authorization.h"
#include "apiserver/node_control.h"
#include "apiserver/pod_io.h"
#include "apiserver/registry.h"
#include "base/http_server.h"

namespace kin::apiserver {

// Requests and latency per verb and resource, Prometheus style.
class Metrics {
 public:
  void Observe(const std::string& verb, const std::string& resource, int code, double seconds);
  std::atomic<int64_t> open_watches{0};
  std::string Render(uint64_t db_bytes, size_t store_watches, uint64_t revision) const;

 private:
  struct Series {
    std::map<int, uint64_t> by_code;
    std::vector<uint64_t> buckets;  // cumulative counts per bound
    double sum = 0;
    uint64_t count = 0;
  };
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, Series> series_;
};

class RestHandler {
 public:
  explicit RestHandler(Registry& registry) : registry_(registry) {}
  void Handle(http::Request& req, http::Response& resp);
  // Formats errors the HTTP server answers by itself as a Status.
  static http::Response ErrorResponse(int status, const std::string& message);
  Metrics& metrics() { return metrics_; }
  // Serves pods/{log,exec,attach,portforward} through `io` (not owned; it
  // must outlive the handler). Without one they answer 503.
  void SetPodIo(PodIo* io) { pod_io_ = io; }
  // Serves /kin/v1alpha1/nodes/NAME/{stop,start} (apiserver/node_control.h)
  // through `c` (not owned; nullptr: 503).
  void SetNodeControl(NodeControl* c) { node_control_ = c; }
  // Authorizes every request with `a` (not owned; must outlive the
  // handler) when `enforce`, answering 403 as kube-apiserver; the
  // authorization.k8s.io reviews are answered by `a` either way. Without
  // one, every request is allowed and reviews answer 503.
  void SetAuthorizer(Authorizer* a, bool enforce) {
    authorizer_ = a;
    enforce_authorization_ = enforce;
  }
  // Serves serviceaccounts/NAME/token, tokenreviews and selfsubjectreviews
  // through `a` (not owned; nullptr: 503). Call before serving.
  void SetAuthentication(const Authentication* a) { authentication_ = a; }

 private:
  struct Target;
  void Serve(http::Request& req, http::Response& resp, Target& t);
  void ServeWatch(http::Request& req, http::Response& resp, const Target& t);
  void Discovery(const http::Request& req, http::Response& resp);
  void ServeAuthentication(const http::Request& req, http::Response& resp, const Target& t);
  void CheckFields(const http::Request& req, http::Response& resp, const ResourceInfo& r,
                   const Json& obj, const WriteOptions& wo, bool is_patch);

  Registry& registry_;
  Metrics metrics_;
  std::atomic<PodIo*> pod_io_{nullptr};
  std::atomic<NodeControl*> node_control_{nullptr};
  Authorizer* authorizer_ = nullptr;  // set before serving
  bool enforce_authorization_ = false;
  const Authentication* authentication_ = nullptr;
};

}  // namespace kin::apiserver
