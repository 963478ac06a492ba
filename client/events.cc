#include "client/events.h"

#include <cstdio>
#include <functional>

#include "base/error.h"
#include "base/log.h"
#include "client/object.h"

namespace kin {

namespace {

constexpr auto kCorrelationWindow = std::chrono::minutes(10);
// client-go's defaultAggregateMaxEvents: distinct messages before combining.
constexpr size_t kAggregateMaxEvents = 10;
constexpr char kCombinedPrefix[] = "(combined from similar events): ";

}  // namespace

EventRecorder::EventRecorder(Client& client, std::string component, std::string host)
    : client_(client), component_(std::move(component)), host_(std::move(host)) {}

void EventRecorder::Record(const Json& object, const std::string& type, const std::string& reason,
                           const std::string& message) {
  const Json& m = object.value("metadata", Json::object());
  std::string ns = m.value("namespace", "");
  std::string name = m.value("name", "");
  std::string uid = m.value("uid", "");
  // The caches hold hashes of the keys and messages, not the strings: an
  // Event's keys are a few hundred bytes, and a churn of pods leaves
  // thousands of them for the window (a clash of 64-bit hashes would only
  // count an Event into another).
  const std::string aggregate_text = uid + "\n" + type + "\n" + reason;
  const uint64_t aggregate_key = std::hash<std::string>{}(aggregate_text);
  uint64_t key = std::hash<std::string>{}(aggregate_text + "\n" + message);
  const uint64_t message_hash = std::hash<std::string>{}(message);
  std::string text = message;
  std::string now = object::NowRfc3339();
  try {
    std::lock_guard lock(mu_);
    auto t = std::chrono::steady_clock::now();
    ForgetOldLocked(t);
    // EventAggregator: many different messages of one kind become one
    // combined Event, correlated by the aggregate key alone.
    Similar& similar = similar_[aggregate_key];
    if (t - similar.last >= kCorrelationWindow) similar.messages.clear();
    similar.last = t;
    similar.messages.insert(message_hash);
    if (similar.messages.size() > kAggregateMaxEvents) {
      similar.messages.erase(message_hash);  // as upstream's PopAny: stays at the maximum
      key = aggregate_key;
      text = kCombinedPrefix + message;
    }
    auto it = seen_.find(key);
    if (it != seen_.end() && t - it->second.first < kCorrelationWindow) {
      it->second.count++;
      Json patch = {{"count", it->second.count}, {"lastTimestamp", now}};
      if (text != message) patch["message"] = text;
      client_.Patch(EventsResource(), it->second.ns, it->second.name, PatchType::kMerge, patch);
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
               {"message", text},
               {"type", type},
               {"source", source},
               {"firstTimestamp", now},
               {"lastTimestamp", now},
               {"count", 1},
               {"eventTime", nullptr},
               {"reportingComponent", component_},
               {"reportingInstance", host_}};
    client_.Create(EventsResource(), event_ns, ev);
    seen_[key] = Seen{event_ns, name + suffix, 1, t};
  } catch (const Error& e) {
    log::Warn("event {} {} for {}/{}: {}", type, reason, ns, name, e.message());
  }
}

void EventRecorder::ForgetOldLocked(TimePoint now) {
  // A sweep per Event would cost O(events) each: once a minute is enough
  // to keep the caches to about the window's worth.
  if (now - last_forget_ < std::chrono::minutes(1)) return;
  last_forget_ = now;
  std::erase_if(seen_, [&](const auto& e) { return now - e.second.first >= kCorrelationWindow; });
  std::erase_if(similar_, [&](const auto& e) { return now - e.second.last >= kCorrelationWindow; });
}

}  // namespace kin
