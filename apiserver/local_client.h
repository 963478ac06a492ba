// LocalClient: the in-process kin::Client, straight to the Registry.
//
// Used by everything inside `kin serve` (controllers, node agents): the same
// validation, defaulting and semantics as HTTP, without serialization or a
// socket. Thread-safe.
#pragma once

#include "apiserver/registry.h"
#include "client/client.h"

namespace kin::apiserver {

class LocalClient : public Client {
 public:
  // `manager` is the field manager recorded for writes that name none.
  LocalClient(Registry& registry, std::string manager)
      : registry_(registry), manager_(std::move(manager)) {}

  Json Get(const ResourceInfo& r, const std::string& ns, const std::string& name) override;
  Json List(const ResourceInfo& r, const std::string& ns, const ListOptions& opts) override;
  Json Create(const ResourceInfo& r, const std::string& ns, const Json& obj,
              const WriteOptions& opts) override;
  Json Update(const ResourceInfo& r, const std::string& ns, const Json& obj,
              const std::string& subresource, const WriteOptions& opts) override;
  Json Patch(const ResourceInfo& r, const std::string& ns, const std::string& name, PatchType type,
             const Json& patch, const std::string& subresource, const WriteOptions& opts) override;
  Json Delete(const ResourceInfo& r, const std::string& ns, const std::string& name,
              const DeleteOptions& opts) override;
  std::unique_ptr<Watch> StartWatch(const ResourceInfo& r, const std::string& ns,
                                    const ListOptions& opts) override;
  Json CreateSubresource(const ResourceInfo& r, const std::string& ns, const std::string& name,
                         const std::string& subresource, const Json& body) override;

 private:
  WriteOptions WithManager(WriteOptions o) const {
    if (o.field_manager.empty()) o.field_manager = manager_;
    return o;
  }
  Registry& registry_;
  std::string manager_;
};

}  // namespace kin::apiserver
