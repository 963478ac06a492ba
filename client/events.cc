#include "client/events.h"

#include <cstdio>

#include "base/error.h"
#include "base/log.h"
#include "client/object.h"

namespace kin {

namespace {

constexpr auto kCorrelationWindow = std::chrono::minutes(10);

}  // namespace

EventRecorder::EventRecorder(Client& client, std::string component, std::string host)
    : client_(client), component_(std::move(component)), host_(std::move(host)) {}

void EventRecorder::Record(const Json& object, const std::string& type, const std::string& reason,
                           const std::string& message) {
  const Json& m = object.value("metadata", Json::object());
  std::string ns = m.value("namespace", "");
  std::string name = m.value("name", "");
  std::string uid = m.value("uid", "");
  std::string key = uid + "\n" + type + "\n" + reason + "\n" + message;
  std::string now = object::NowRfc3339();
  try {
    std::lock_guard lock(mu_);
    auto it = seen_.find(key);
    auto t = std::chrono::steady_clock::now();
    if (it != seen_.end() && t - it->second.first < kCorrelationWindow) {
      it->second.count++;
      client_.Patch(EventsResource(), it->second.ns, it->second.name, PatchType::kMerge,
                    {{"count", it->second.count}, {"lastTimestamp", now}});
      return;
    }
    // Event names as client-go makes them: <object>.<hex nanoseconds>.
    char suffix[32];
    snprintf(suffix, sizeof suffix, ".%llx",
             static_cast<unsigned long long>(
                 std::chrono::system_clock::now().time_since_epoch().count()));
    std::string event_ns = ns.empty() ? "default" : ns;
    Json source = {{"component", component_}};
    if (!host_.empty()) source["host"] = host_;
    Json involved = {{"kind", object.value("kind", "")},
                     {"name", name},
                     {"uid", uid},
                     {"apiVersion", object.value("apiVersion", "")},
                     {"resourceVersion", m.value("resourceVersion", "")}};
    if (!ns.empty()) involved["namespace"] = ns;
    Json ev = {{"apiVersion", "v1"},
               {"kind", "Event"},
               {"metadata", {{"name", name + suffix}, {"namespace", event_ns}}},
               {"involvedObject", involved},
               {"reason", reason},
               {"message", message},
               {"type", type},
               {"source", source},
               {"firstTimestamp", now},
               {"lastTimestamp", now},
               {"count", 1},
               {"eventTime", nullptr},
               {"reportingComponent", component_},
               {"reportingInstance", host_}};
    client_.Create(EventsResource(), event_ns, ev);
    // Forget old correlations so the cache stays small.
    for (auto s = seen_.begin(); s != seen_.end();) {
      s = t - s->second.first >= kCorrelationWindow ? seen_.erase(s) : std::next(s);
    }
    seen_[key] = Seen{event_ns, name + suffix, 1, t};
  } catch (const Error& e) {
    log::Warn("event {} {} for {}/{}: {}", type, reason, ns, name, e.message());
  }
}

}  // namespace kin
