#include "apiserver/apiserver.h"

#include "base/error.h"
#include "base/log.h"

namespace kin::apiserver {

ApiServer::ApiServer(Options opts) : opts_(std::move(opts)) {
  StoreOptions so;
  so.history_limit = opts_.history_limit;
  so.index_fields = IndexFields;
  store_ = Store::Open(opts_.state_dir + "/kin.db", so);
  registry_ = std::make_unique<Registry>(*store_, opts_.registry);
  rest_ = std::make_unique<RestHandler>(*registry_);
  http::ServerOptions ho;
  ho.host = opts_.host;
  ho.port = opts_.port;
  ho.error_response = RestHandler::ErrorResponse;
  if (opts_.tls) {
    ho.tls = opts_.tls;
    ho.require_client_cert = true;
    // What kube-apiserver lets anonymous users see.
    ho.anonymous_paths = {"/healthz", "/livez", "/readyz", "/version", "/version/"};
  }
  http_ = std::make_unique<http::Server>(
      ho, [this](http::Request& req, http::Response& resp) { rest_->Handle(req, resp); });
}

ApiServer::~ApiServer() { Stop(); }

void ApiServer::Start() {
  http_->Start();
  // The kubernetes Service's endpoints point at the port we got.
  registry_->SetApiEndpoint(opts_.registry.api_advertise_ip, http_->port());
  registry_->Bootstrap();
}

void ApiServer::Stop() { http_->Stop(); }
int ApiServer::port() const { return http_->port(); }

}  // namespace kin::apiserver
