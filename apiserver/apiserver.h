// The API server: kin's gateway to cluster state (the seed's 1.1).
//
// Owns the Store (SQLite under the state directory), the Registry (the
// API's semantics) and the HTTP front end. Serves the Kubernetes REST API
// on a loopback address, and also inside a cluster's network namespace
// when Options::network_listener says so (the host's network is left
// alone); in-process components use registry() through LocalClient
// instead of HTTP.
//
// Thread-safety: Start/Stop from one thread; requests are served
// concurrently.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "apiserver/authentication.h"
#include "apiserver/registry.h"
#include "apiserver/rest.h"
#include "apiserver/service_account_token.h"
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
  // A second listener inside a cluster's network, where pods and nodes
  // reach the API (through the `kubernetes` Service, or directly): its
  // socket is made in /run/netns/<netns> on host:port (the underlay's .1,
  // 172.18.0.1:6443); same TLS and handler. When set, the
  // `default/kubernetes` Endpoints and EndpointSlice point there.
  struct NetworkListener {
    std::string netns;
    std::string host;
    int port = 6443;
  };
  std::optional<NetworkListener> network_listener;
  // With TLS: the key of service account tokens (apiserver/
  // service_account_token.h; made when missing). Requests may then
  // authenticate with "Authorization: Bearer <token>" instead of a client
  // certificate, as system:serviceaccount:<ns>:<name>, while the token is
  // valid (apiserver/authentication.h). Empty: client certificates only.
  std::string service_account_key_file;
  // The tokens' issuer and the API's audiences (apiserver/authentication.h).
  AuthenticationOptions authentication;
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
  // A token this server accepts for `claims` (the pod must exist with that
  // uid when the token is used); null without a service account key.
  const ServiceAccountTokens* service_account_tokens() const { return sa_tokens_.get(); }
  // Token checks and TokenRequests (the node agent mints pods' tokens
  // with PodToken); null without a service account key.
  const Authentication* authentication() const { return auth_.get(); }
  // The CA client certificates must chain to (the cluster CA); empty without TLS.
  std::string cluster_ca_file() const { return opts_.tls ? opts_.tls->client_ca_file : ""; }

 private:
  Options opts_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<RestHandler> rest_;
  std::unique_ptr<http::Server> http_;
  std::unique_ptr<http::Server> network_http_;  // null without a network listener
  std::unique_ptr<Authorizer> authorizer_;
  std::unique_ptr<ServiceAccountTokens> sa_tokens_;
  std::unique_ptr<Authentication> auth_;
};

}  // namespace kin::apiserver
