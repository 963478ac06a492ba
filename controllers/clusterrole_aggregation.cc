#include "controllers/clusterrole_aggregation.h"

#include <algorithm>

#include "base/error.h"
#include "client/object.h"
#include "client/resources.h"
#include "client/selector.h"

namespace kin::controllers {
namespace {

const ResourceInfo& ClusterRoles() {
  static const ResourceInfo* r = FindResource("rbac.authorization.k8s.io", "v1", "clusterroles");
  return *r;
}

bool IsAggregated(const Json& role) {
  auto it = role.find("aggregationRule");
  return it != role.end() && it->is_object();
}

// Rules compare as upstream's ruleExists (equality of every list).
bool SameRule(const Json& a, const Json& b) {
  for (const char* k : {"verbs", "apiGroups", "resources", "resourceNames", "nonResourceURLs"}) {
    Json x = a.is_object() ? a.value(k, Json::array()) : Json::array();
    Json y = b.is_object() ? b.value(k, Json::array()) : Json::array();
    if (x.is_null()) x = Json::array();
    if (y.is_null()) y = Json::array();
    if (x != y) return false;
  }
  return true;
}

}  // namespace

Json AggregatedRules(const Json& role, const std::vector<Json>& all) {
  std::vector<LabelSelector> selectors;
  const Json& sels = role["aggregationRule"].value("clusterRoleSelectors", Json::array());
  if (sels.is_array()) {
    for (const Json& s : sels) {
      try {
        selectors.push_back(LabelSelector::FromJson(s));
      } catch (const Error&) {
        // Validation rejects bad selectors; one that slipped by matches nothing.
      }
    }
  }
  std::vector<const Json*> sorted;
  for (const Json& r : all) sorted.push_back(&r);
  std::sort(sorted.begin(), sorted.end(),
            [](const Json* a, const Json* b) { return object::Name(*a) < object::Name(*b); });
  const std::string self = object::Name(role);
  Json rules = Json::array();
  for (const Json* other : sorted) {
    if (object::Name(*other) == self) continue;
    Json labels = (*other)["metadata"].value("labels", Json::object());
    bool match = std::any_of(selectors.begin(), selectors.end(),
                             [&](const LabelSelector& s) { return s.Matches(labels); });
    if (!match) continue;
    const Json& theirs = other->value("rules", Json::array());
    if (!theirs.is_array()) continue;
    for (const Json& rule : theirs) {
      bool seen = std::any_of(rules.begin(), rules.end(),
                              [&](const Json& r) { return SameRule(r, rule); });
      if (!seen) rules.push_back(rule);
    }
  }
  return rules;
}

ClusterRoleAggregationController::ClusterRoleAggregationController(
    SharedInformerFactory& informers, Client& client)
    : identity_(client, "clusterrole-aggregation-controller"),
      roles_(informers.For(ClusterRoles())),
      workers_("clusterrole-aggregation", queue_,
               [this](const std::string& key) { return Sync(key); }) {}

ClusterRoleAggregationController::~ClusterRoleAggregationController() { Stop(); }

void ClusterRoleAggregationController::Start() {
  if (!run_state_.TryStart()) return;
  // Any change may matter to any aggregated role: queue them all.
  subscriptions_.Add(roles_, HandlersFrom([this](const Json*, const Json*) {
    for (const auto& r : roles_.Items()) {
      if (IsAggregated(*r)) queue_.Add(object::Name(*r));
    }
  }));
  workers_.Start(1, {&roles_});
}

void ClusterRoleAggregationController::Stop() {
  if (!run_state_.TryStop()) return;
  subscriptions_.RemoveAll();
  workers_.Stop();
}

Result ClusterRoleAggregationController::Sync(const std::string& key) {
  auto role = roles_.Get("", key);
  if (!role || !IsAggregated(*role)) return Result::Done();
  Json rules = AggregatedRules(*role, roles_.List());
  Json current = role->value("rules", Json::array());
  if (current.is_null()) current = Json::array();
  if (current == rules) return Result::Done();
  // A merge patch replaces the list whole, as upstream's apply of rules does.
  identity_.client().Patch(ClusterRoles(), "", key, PatchType::kMerge, Json{{"rules", rules}});
  return Result::Done();
}

}  // namespace kin::controllers
