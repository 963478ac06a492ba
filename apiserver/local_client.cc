#include "apiserver/local_client.h"

#include <atomic>
#include <optional>

#include "apiserver/admission_webhook.h"
#include "base/error.h"

namespace kin::apiserver {

namespace {

// Admission webhooks see the component as its upstream counterpart's user,
// unless a request's own scope (the REST front end's) is already open.
class InProcessScope {
 public:
  explicit InProcessScope(const std::string& component) {
    if (AdmissionRequestScope::Current() == nullptr) scope_.emplace(InProcessUser(component));
  }

 private:
  std::optional<AdmissionRequestScope> scope_;
};

class LocalWatch : public Watch {
 public:
  explicit LocalWatch(std::unique_ptr<RegistryWatch> w) : w_(std::move(w)) {}
  bool Next(WatchEvent& event, std::chrono::milliseconds timeout) override {
    if (stopped_) return false;
    RegistryWatch::Event e;
    if (!w_->Next(e, timeout)) return false;
    event.type = e.type;
    event.object = Json::parse(*e.json);
    return true;
  }
  bool ended() const override { return stopped_ || w_->ended(); }
  void Stop() override {
    stopped_ = true;
    w_->Stop();
  }

 private:
  std::unique_ptr<RegistryWatch> w_;
  std::atomic<bool> stopped_{false};
};

std::string NameOf(const Json& obj) {
  if (!obj.contains("metadata") || !obj["metadata"].contains("name")) {
    throw Error::BadRequest("the object has no metadata.name");
  }
  return obj["metadata"]["name"].get<std::string>();
}

}  // namespace

Json LocalClient::Get(const ResourceInfo& r, const std::string& ns, const std::string& name) {
  return registry_.Get(r, ns, name);
}

Json LocalClient::List(const ResourceInfo& r, const std::string& ns, const ListOptions& opts) {
  return registry_.List(r, ns, opts);
}

Json LocalClient::Create(const ResourceInfo& r, const std::string& ns, const Json& obj,
                         const WriteOptions& opts) {
  InProcessScope who(WithManager(opts).field_manager);
  return registry_.Create(r, ns, obj, WithManager(opts));
}

Json LocalClient::Update(const ResourceInfo& r, const std::string& ns, const Json& obj,
                         const std::string& subresource, const WriteOptions& opts) {
  InProcessScope who(WithManager(opts).field_manager);
  return registry_.Update(r, ns, NameOf(obj), obj, subresource, WithManager(opts));
}

Json LocalClient::Patch(const ResourceInfo& r, const std::string& ns, const std::string& name,
                        PatchType type, const Json& patch, const std::string& subresource,
                        const WriteOptions& opts) {
  InProcessScope who(WithManager(opts).field_manager);
  return registry_.Patch(r, ns, name, type, patch.dump(), subresource, WithManager(opts));
}

Json LocalClient::Delete(const ResourceInfo& r, const std::string& ns, const std::string& name,
                         const DeleteOptions& opts) {
  InProcessScope who(manager_);
  return registry_.Delete(r, ns, name, opts);
}

std::unique_ptr<Watch> LocalClient::StartWatch(const ResourceInfo& r, const std::string& ns,
                                               const ListOptions& opts) {
  return std::make_unique<LocalWatch>(registry_.Watch(r, ns, opts));
}

Json LocalClient::CreateSubresource(const ResourceInfo& r, const std::string& ns,
                                    const std::string& name, const std::string& subresource,
                                    const Json& body) {
  if (r.plural == "pods" && subresource == "binding") return registry_.BindPod(ns, name, body);
  throw Error::NotFound("the server could not find the requested resource");
}

}  // namespace kin::apiserver
