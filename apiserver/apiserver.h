// The API server: kin's gateway to cluster state (the seed's 1.1).
//
// Serves the Kubernetes REST API over HTTP on a loopback address. This first
// cut answers the health and version endpoints (/healthz, /livez, /readyz,
// /version); the resource API grows here.
//
// Thread-safety: Start/Stop from one thread; requests are served
// concurrently.
#pragma once

#include <memory>
#include <string>

#include "base/http_server.h"

namespace kin::apiserver {

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string state_dir;
};

class ApiServer {
 public:
  explicit ApiServer(Options opts);
  ~ApiServer();
  void Start();
  void Stop();
  int port() const;

 private:
  void Handle(http::Request& req, http::Response& resp);
  Options opts_;
  std::unique_ptr<http::Server> http_;
};

}  // namespace kin::apiserver
