// The API server: kin's gateway to cluster state (the seed's 1.1).
//
// Owns the Store (SQLite under the state directory), the Registry (the
// API's semantics) and the HTTP front end. Serves the Kubernetes REST API
// on a loopback address; in-process components use registry() through
// LocalClient instead of HTTP.
//
// Thread-safety: Start/Stop from one thread; requests are served
// concurrently.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "apiserver/registry.h"
#include "apiserver/rest.h"
#include "apiserver/store.h"
#include "base/http_server.h"

namespace kin::apiserver {

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string state_dir;  // holds kin.db
  RegistryOptions registry;
  size_t history_limit = 20000;
  // HTTPS with client certificates when set (see base/tls.h); requests
  // without a verified client certificate get 401, except health and
  // version endpoints.
  std::optional<http::TlsServerOptions> tls;
};

class ApiServer {
 public:
  // Opens the store and bootstraps the cluster's built-in objects.
  explicit ApiServer(Options opts);
  ~ApiServer();
  void Start();
  void Stop();
  int port() const;
  Registry& registry() { return *registry_; }
  Store& store() { return *store_; }
  // Routes pods/{log,exec,attach,portforward} to `io` (not owned; must
  // outlive the server; nullptr: they answer 503).
  void SetPodIo(PodIo* io) { rest_->SetPodIo(io); }
  // Serves kin's node operations through `c` (apiserver/node_control.h).
  void SetNodeControl(NodeControl* c) { rest_->SetNodeControl(c); }

 private:
  Options opts_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<RestHandler> rest_;
  std::unique_ptr<http::Server> http_;
};

}  // namespace kin::apiserver
