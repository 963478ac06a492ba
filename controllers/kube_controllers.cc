#include "controllers/kube_controllers.h"

#include <algorithm>

#include "base/error.h"
#include "controllers/scheduler.h"

namespace kin::controllers {

bool ControllerEnabled(const std::vector<std::string>& list, const std::string& name) {
  // As kube-controller-manager: an explicit "-name" or "name" decides, else "*".
  if (std::find(list.begin(), list.end(), "-" + name) != list.end()) return false;
  if (std::find(list.begin(), list.end(), name) != list.end()) return true;
  return std::find(list.begin(), list.end(), "*") != list.end();
}

void AddKubeControllers(ControllerManager& manager, const KubeControllerOptions& opts) {
  std::set<std::string> known;
  // Adds the controller `name` unless the list disables it.
  auto add = [&](const std::string& name, auto&& make) {
    known.insert(name);
    if (ControllerEnabled(opts.controllers, name)) make();
  };
  add("scheduler", [&] { manager.Emplace<Scheduler>(manager.informers(), manager.client()); });

  for (const std::string& entry : opts.controllers) {
    std::string name = !entry.empty() && entry[0] == '-' ? entry.substr(1) : entry;
    if (name == "*" || known.count(name)) continue;
    std::string list;
    for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
    throw Error::BadRequest("--controllers: unknown controller \"" + name + "\" (known: " + list +
                            ")");
  }
}

}  // namespace kin::controllers
