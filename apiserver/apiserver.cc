#include "apiserver/apiserver.h"

#include <nlohmann/json.hpp>

#include "base/log.h"
#include "base/version.h"

namespace kin::apiserver {

ApiServer::ApiServer(Options opts) : opts_(std::move(opts)) {
  http::ServerOptions so;
  so.host = opts_.host;
  so.port = opts_.port;
  http_ = std::make_unique<http::Server>(
      so, [this](http::Request& req, http::Response& resp) { Handle(req, resp); });
}

ApiServer::~ApiServer() { Stop(); }

void ApiServer::Start() { http_->Start(); }
void ApiServer::Stop() { http_->Stop(); }
int ApiServer::port() const { return http_->port(); }

void ApiServer::Handle(http::Request& req, http::Response& resp) {
  if (req.path == "/healthz" || req.path == "/livez" || req.path == "/readyz") {
    resp.Set(200, "text/plain; charset=utf-8", "ok");
    return;
  }
  if (req.path == "/version") {
    nlohmann::json v = {{"major", kKubeMajor},
                        {"minor", kKubeMinor},
                        {"gitVersion", std::string(kKubeVersion) + "+kin-" + kVersion},
                        {"gitCommit", ""},
                        {"gitTreeState", "clean"},
                        {"buildDate", "1970-01-01T00:00:00Z"},
                        {"goVersion", "go1.22.0"},
                        {"compiler", "gc"},
                        {"platform", "linux/amd64"}};
    resp.Set(200, "application/json", v.dump());
    return;
  }
  nlohmann::json status = {{"kind", "Status"},
                           {"apiVersion", "v1"},
                           {"metadata", nlohmann::json::object()},
                           {"status", "Failure"},
                           {"message", "the server could not find the requested resource"},
                           {"reason", "NotFound"},
                           {"details", nlohmann::json::object()},
                           {"code", 404}};
  resp.Set(404, "application/json", status.dump());
}

}  // namespace kin::apiserver
