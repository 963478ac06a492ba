// FieldManagerClient: a kin::Client decorator whose writes carry one field
// manager, so that managedFields (and server-side apply conflicts) name the
// controller that wrote, e.g. "replicaset-controller". A write that names a
// field manager itself keeps it. Everything else passes through unchanged.
//
// Thread-safety: as thread-safe as the client it wraps (all of kin's are).
#pragma once

#include <string>

#include "client/client.h"

namespace kin {

class FieldManagerClient : public Client {
 public:
  // `inner` must outlive this client.
  FieldManagerClient(Client& inner, std::string field_manager)
      : inner_(inner), field_manager_(std::move(field_manager)) {}

  const std::string& field_manager() const { return field_manager_; }
  Client& inner() const { return inner_; }

  Json Get(const ResourceInfo& r, const std::string& ns, const std::string& name) override {
    return inner_.Get(r, ns, name);
  }
  Json List(const ResourceInfo& r, const std::string& ns, const ListOptions& opts = {}) override {
    return inner_.List(r, ns, opts);
  }
  Json Create(const ResourceInfo& r, const std::string& ns, const Json& obj,
              const WriteOptions& opts = {}) override {
    return inner_.Create(r, ns, obj, With(opts));
  }
  Json Update(const ResourceInfo& r, const std::string& ns, const Json& obj,
              const std::string& subresource = "", const WriteOptions& opts = {}) override {
    return inner_.Update(r, ns, obj, subresource, With(opts));
  }
  Json Patch(const ResourceInfo& r, const std::string& ns, const std::string& name, PatchType type,
             const Json& patch, const std::string& subresource = "",
             const WriteOptions& opts = {}) override {
    return inner_.Patch(r, ns, name, type, patch, subresource, With(opts));
  }
  Json Delete(const ResourceInfo& r, const std::string& ns, const std::string& name,
              const DeleteOptions& opts = {}) override {
    return inner_.Delete(r, ns, name, opts);
  }
  std::unique_ptr<Watch> StartWatch(const ResourceInfo& r, const std::string& ns,
                                    const ListOptions& opts) override {
    return inner_.StartWatch(r, ns, opts);
  }
  Json CreateSubresource(const ResourceInfo& r, const std::string& ns, const std::string& name,
                         const std::string& subresource, const Json& body) override {
    return inner_.CreateSubresource(r, ns, name, subresource, body);
  }

 private:
  WriteOptions With(WriteOptions o) const {
    if (o.field_manager.empty()) o.field_manager = field_manager_;
    return o;
  }
  Client& inner_;
  std::string field_manager_;
};

}  // namespace kin
