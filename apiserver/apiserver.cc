#include "apiserver/apiserver.h"

#include "apiserver/admission_webhook.h"
#include "base/error.h"
#include "base/log.h"

namespace kin::apiserver {

ApiServer::ApiServer(Options opts) : opts_(std::move(opts)) {
  StoreOptions so;
  so.history_limit = opts_.history_limit;
  so.index_fields = IndexFields;
  store_ = Store::Open(opts_.state_dir + "/kin.db", so);
  registry_ = std::make_unique<Registry>(*store_, opts_.registry);
  // Service-backed admission webhooks are reached inside the cluster's
  // network, where pods live (admission_webhook.h).
  if (opts_.network_listener) registry_->webhooks().SetServiceNetns(opts_.network_listener->netns);
  rest_ = std::make_unique<RestHandler>(*registry_);
  // RBAC (apiserver/authorization.h), enforced over TLS, where every
  // request says who sent it; in-process clients never pass here.
  authorizer_ = std::make_unique<Authorizer>(*store_);
  rest_->SetAuthorizer(authorizer_.get(), opts_.tls.has_value());
  http::ServerOptions ho;
  ho.host = opts_.host;
  ho.port = opts_.port;
  ho.error_response = RestHandler::ErrorResponse;
  if (opts_.tls) {
    ho.tls = opts_.tls;
    ho.require_client_cert = true;
    // What kube-apiserver lets anonymous users see.
    ho.anonymous_paths = {"/healthz", "/livez", "/readyz", "/version", "/version/"};
    if (!opts_.service_account_key_file.empty()) {
      sa_tokens_ = std::make_unique<ServiceAccountTokens>(
          ServiceAccountTokens::LoadOrCreate(opts_.service_account_key_file));
      auth_ = std::make_unique<Authentication>(
          *sa_tokens_,
          [this](const std::string& bucket, const std::string& ns,
                 const std::string& name) -> std::optional<Json> {
            auto rec = store_->Get(bucket, ns, name);
            if (!rec) return std::nullopt;
            return rec->Parse();
          },
          opts_.authentication);
      rest_->SetAuthentication(auth_.get());
      ho.authenticate_token = [this](const std::string& token, std::string& user,
                                     std::vector<std::string>& groups) {
        TokenAuthResult r;
        try {
          r = auth_->AuthenticateToken(token);
        } catch (const std::exception&) {
          return false;
        }
        if (!r.authenticated) return false;
        user = r.user.username;
        groups = r.user.groups;
        return true;
      };
    }
  }
  auto handler = [this](http::Request& req, http::Response& resp) { rest_->Handle(req, resp); };
  if (opts_.network_listener) {
    http::ServerOptions no = ho;
    no.host = opts_.network_listener->host;
    no.port = opts_.network_listener->port;
    no.netns = opts_.network_listener->netns;
    network_http_ = std::make_unique<http::Server>(no, handler);
  }
  http_ = std::make_unique<http::Server>(ho, handler);
}

ApiServer::~ApiServer() { Stop(); }

void ApiServer::Start() {
  http_->Start();
  if (network_http_) {
    try {
      network_http_->Start();
    } catch (...) {
      http_->Stop();
      throw;
    }
    // Pods reach the API in the cluster's network.
    registry_->SetApiEndpoint(opts_.network_listener->host, network_http_->port());
  } else {
    // The kubernetes Service's endpoints point at the port we got.
    registry_->SetApiEndpoint(opts_.registry.api_advertise_ip, http_->port());
  }
  registry_->Bootstrap();
  BootstrapRbacPolicy(*registry_);
}

void ApiServer::Stop() {
  if (network_http_) network_http_->Stop();
  http_->Stop();
}
int ApiServer::port() const { return http_->port(); }

}  // namespace kin::apiserver
