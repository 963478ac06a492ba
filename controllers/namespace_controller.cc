#include "controllers/namespace_controller.h"

#include <algorithm>
#include <map>

#include "base/error.h"
#include "base/log.h"
#include "client/object.h"

namespace kin::controllers {
namespace {

struct ConditionText {
  const char* type;
  const char* ok_reason;
  const char* ok_message;
  const char* bad_reason;
};
// The conditions upstream's namespace deleter keeps, in its order.
constexpr ConditionText kConditions[] = {
    {"NamespaceDeletionDiscoveryFailure", "ResourcesDiscovered",
     "All resources successfully discovered", "DiscoveryFailed"},
    {"NamespaceDeletionGroupVersionParsingFailure", "ParsedGroupVersions",
     "All legacy kube types successfully parsed", "GroupVersionParsingFailed"},
    {"NamespaceDeletionContentFailure", "ContentDeleted",
     "All content successfully deleted, may be waiting on finalization", "ContentDeletionFailed"},
    {"NamespaceContentRemaining", "ContentRemoved", "All content successfully removed",
     "SomeResourcesRemain"},
    {"NamespaceFinalizersRemaining", "ContentHasNoFinalizers",
     "All content-preserving finalizers finished", "SomeFinalizersRemain"},
};

bool HasSpecFinalizer(const Json& ns, const std::string& f) {
  const Json& spec = ns.value("spec", Json::object());
  for (const auto& x : spec.value("finalizers", Json::array())) {
    if (x == f) return true;
  }
  return false;
}

std::string Join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

}  // namespace

NamespaceController::NamespaceController(SharedInformerFactory& informers, Client& client,
                                         NamespaceControllerOptions opts)
    : opts_(std::move(opts)),
      identity_(client, "namespace-controller"),
      namespaces_(informers.For(NamespacesResource())),
      workers_("namespace", queue_, [this](const std::string& key) { return Sync(key); }) {
  for (const auto& gvr : opts_.content_resources) {
    size_t last = gvr.rfind('/');
    size_t mid = last == std::string::npos ? std::string::npos : gvr.rfind('/', last - 1);
    if (mid == std::string::npos) continue;
    const ResourceInfo* r =
        FindResource(gvr.substr(0, mid), gvr.substr(mid + 1, last - mid - 1), gvr.substr(last + 1));
    if (r && r->namespaced) content_.push_back(&informers.For(*r));
  }
}

NamespaceController::~NamespaceController() { Stop(); }

void NamespaceController::Start() {
  if (!run_state_.TryStart()) return;
  subscriptions_.Add(namespaces_, HandlersFrom([this](const Json*, const Json* ns) {
    if (ns && object::IsBeingDeleted(*ns)) queue_.Add(object::Name(*ns));
  }));
  std::vector<const Informer*> wait_for = {&namespaces_};
  for (Informer* inf : content_) {
    subscriptions_.Add(*inf, {.on_delete = [this](const Json& o) { OnContentGone(o); }});
    wait_for.push_back(inf);
  }
  workers_.Start(opts_.workers, wait_for);
}

void NamespaceController::Stop() {
  if (!run_state_.TryStop()) return;
  workers_.Stop();
  subscriptions_.RemoveAll();
}

void NamespaceController::OnContentGone(const Json& obj) {
  std::string ns = object::Namespace(obj);
  ObjectPtr n = namespaces_.Lookup("", ns);
  if (n && object::IsBeingDeleted(*n)) queue_.Add(ns);
}

Result NamespaceController::Sync(const std::string& name) {
  ObjectPtr ns = namespaces_.Lookup("", name);
  if (!ns || !object::IsBeingDeleted(*ns) || !HasSpecFinalizer(*ns, "kubernetes")) {
    return Result::Done();
  }
  // Not before the grace period: kube-controller-manager queues a deleted
  // namespace 5 s after it sees it (namespaceDeletionGracePeriod), and
  // clients count on that (see the header).
  if (auto deleted = object::ParseRfc3339(object::StringAt(*ns, "metadata", "deletionTimestamp"))) {
    auto since = std::chrono::system_clock::now() - *deleted;
    if (since < opts_.deletion_grace) {
      return Result::After(
          std::chrono::duration_cast<Clock::Duration>(opts_.deletion_grace - since));
    }
  }
  Client& client = identity_.client();
  DeleteOptions del;
  del.propagation_policy = "Background";
  std::vector<std::string> failures, remaining, finalizers;
  std::map<std::string, int> finalizer_counts;
  int64_t estimate = 0;  // seconds until graceful pods should be gone
  // The custom resources too (a CRD's objects go with their namespace).
  for (const ResourceInfo* rp : ServedResources()) {
    const ResourceInfo& r = *rp;
    if (!r.namespaced) continue;
    Json list;
    try {
      list = client.List(r, name);
    } catch (const Error& e) {
      failures.push_back(r.group_resource() + ": " + e.message());
      continue;
    }
    size_t left = 0;
    for (const auto& item : list.value("items", Json::array())) {
      ++left;
      for (const auto& f : item["metadata"].value("finalizers", Json::array())) {
        if (f.is_string()) finalizer_counts[f.get<std::string>()]++;
      }
      if (r.plural == "pods") {
        estimate = std::max(
            estimate, item["spec"].value("terminationGracePeriodSeconds", int64_t{30}));
      }
      if (object::IsBeingDeleted(item)) continue;
      try {
        Json out = client.Delete(r, name, object::Name(item), del);
        // Deleted at once (a Status, or no deletionTimestamp): not left.
        if (!object::IsBeingDeleted(out) || object::Uid(out) != object::Uid(item)) --left;
      } catch (const Error& e) {
        if (e.code() == Code::kNotFound) {
          --left;
        } else {
          failures.push_back(r.group_resource() + " \"" + object::Name(item) + "\": " +
                             e.message());
        }
      }
    }
    if (left > 0) {
      remaining.push_back(r.plural + "." + r.group + " has " + std::to_string(left) +
                          " resource instances");
    }
  }
  for (const auto& [f, n] : finalizer_counts) {
    finalizers.push_back(f + " in " + std::to_string(n) + " resource instances");
  }
  std::sort(remaining.begin(), remaining.end());
  std::sort(finalizers.begin(), finalizers.end());

  // Conditions as upstream's namespace deleter reports them.
  Json conditions = Json::array();
  std::string now = object::NowRfc3339();
  for (const auto& c : kConditions) {
    std::string type = c.type;
    std::string bad_message;
    if (type == "NamespaceDeletionContentFailure" && !failures.empty()) {
      bad_message = "Failed to delete all resource types, " + std::to_string(failures.size()) +
                    " remaining: " + Join(failures, ", ");
    } else if (type == "NamespaceContentRemaining" && !remaining.empty()) {
      bad_message = "Some resources are remaining: " + Join(remaining, ", ");
    } else if (type == "NamespaceFinalizersRemaining" && !finalizers.empty()) {
      bad_message = "Some content in the namespace has finalizers remaining: " +
                    Join(finalizers, ", ");
    }
    bool bad = !bad_message.empty();
    conditions.push_back({{"type", type},
                          {"status", bad ? "True" : "False"},
                          {"lastTransitionTime", now},
                          {"reason", bad ? c.bad_reason : c.ok_reason},
                          {"message", bad ? bad_message : c.ok_message}});
  }
  Json current = UpdateConditions(*ns, conditions);

  if (!failures.empty()) {
    throw Error::Internal("namespace " + name + ": " + Join(failures, "; "));
  }
  if (!remaining.empty()) {
    auto wait = std::chrono::seconds(estimate / 2 + 1);
    return Result::After(std::min<Clock::Duration>(wait, opts_.recheck));
  }
  // Empty: give up our finalizer; the API server deletes the namespace
  // once no finalizer is left.
  Json n = std::move(current);
  Json kept = Json::array();
  for (const auto& f : n["spec"].value("finalizers", Json::array())) {
    if (f != "kubernetes") kept.push_back(f);
  }
  n["spec"]["finalizers"] = kept;
  try {
    client.Update(NamespacesResource(), "", n, "finalize");
  } catch (const Error& e) {
    if (e.code() != Code::kNotFound) throw;
  }
  return Result::Done();
}

Json NamespaceController::UpdateConditions(const Json& ns, const Json& conditions) {
  Json status = ns.value("status", Json::object());
  Json old = status.value("conditions", Json::array());
  // Keep lastTransitionTime of conditions whose status stays; write only
  // when something besides the times changed.
  Json merged = Json::array();
  bool changed = false;
  for (auto c : conditions) {
    bool found = false;
    for (const auto& o : old) {
      if (o.value("type", "") != c["type"]) continue;
      found = true;
      if (o.value("status", "") == c["status"]) c["lastTransitionTime"] = o.value("lastTransitionTime", "");
      if (o.value("status", "") != c["status"] || o.value("reason", "") != c["reason"] ||
          o.value("message", "") != c["message"])
        changed = true;
    }
    if (!found) changed = true;
    merged.push_back(std::move(c));
  }
  if (!changed) return ns;
  for (const auto& o : old) {
    bool ours = false;
    for (const auto& c : kConditions) ours = ours || o.value("type", "") == c.type;
    if (!ours) merged.push_back(o);
  }
  Json n = ns;
  n["status"]["conditions"] = merged;
  // A stale cache conflicts: the pass is retried.
  return identity_.client().Update(NamespacesResource(), "", n, "status");
}

}  // namespace kin::controllers
