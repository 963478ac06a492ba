// The ResourceQuota admission plugin (k8s.io/apiserver's
// plugin/resourcequota), on creates, and on updates of the objects whose
// evaluators handle them (Services: a type change can add node ports and
// load balancers; PersistentVolumeClaims: a grown storage request; never
// subresources): every ResourceQuota of the namespace
// whose status.hard names something the new object uses (and whose scopes
// select it) must have room for it, else 403 Forbidden as upstream words it:
//   pods "p" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2
//   pods "p" is forbidden: failed quota: q: must specify requests.cpu for: c
//   pods "p" is forbidden: status unknown for quota: q, resources: pods
// Admitting charges the usage to each quota's status.used, as upstream
// does: the check and the charge are one read-modify-write of the quota in
// the store (under its write lock), so two creates racing for the last
// slot cannot both pass. An update is charged only what it adds over the
// old object (nothing for a shrink). A charge whose object is then not stored (it
// already existed, the write failed) is given back; the resourcequota
// controller recomputes status.used from the objects anyway.
//
// Thread-safety: thread-safe (the Store serializes the charges).
#pragma once

#include <string>
#include <vector>

#include "apiserver/store.h"
#include "base/yaml.h"
#include "client/quota.h"
#include "client/resources.h"

namespace kin::apiserver {

// What admitting one object charged; given back on destruction unless
// Commit() was called (the object was stored).
class QuotaCharge {
 public:
  QuotaCharge() = default;
  QuotaCharge(QuotaCharge&& o) noexcept
      : store_(o.store_), ns_(std::move(o.ns_)), charged_(std::move(o.charged_)) {
    o.store_ = nullptr;
  }
  QuotaCharge& operator=(QuotaCharge&&) = delete;
  QuotaCharge(const QuotaCharge&) = delete;
  ~QuotaCharge();
  void Commit() { charged_.clear(); }

 private:
  friend QuotaCharge AdmitResourceQuota(Store&, const ResourceInfo&, const std::string&,
                                        const Json&, const Json*, bool);
  Store* store_ = nullptr;
  std::string ns_;
  std::vector<std::pair<std::string, quota::ResourceList>> charged_;  // quota name, amount
};

// Whether an update of `r` (`subresource` "" for the object itself) is
// evaluated: Services and PersistentVolumeClaims, as upstream's evaluators
// Handles(); pods only through the resize subresource, which kin does not
// serve; object counts only on creates.
bool QuotaEvaluatesUpdates(const ResourceInfo& r, const std::string& subresource);
// Whether `ns` has any ResourceQuota (else admission has nothing to do).
bool NamespaceHasQuotas(const Store& store, const std::string& ns);

// Checks a create (`old` null) or an update from `old` of `obj` (of `r`,
// in `ns`) against the namespace's quotas and, unless `dry_run`, charges
// it. Throws Forbidden.
QuotaCharge AdmitResourceQuota(Store& store, const ResourceInfo& r, const std::string& ns,
                               const Json& obj, const Json* old, bool dry_run);

}  // namespace kin::apiserver
