// EventRecorder: how components report what they did, as core/v1 Events
// that `kubectl describe` and `kubectl get events` show.
//
// Record() writes an Event about an object (its kind, namespace, name, uid,
// apiVersion and resourceVersion), with type Normal or Warning, a reason
// and a message, and the component as source and reportingComponent. A
// repeat of the same (object, type, reason, message) within 10 minutes
// bumps count and lastTimestamp of the first Event instead of making a new
// one, as client-go's event correlator does. Failures are logged, never
// thrown: events are best effort.
//
// Thread-safety: thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>

#include "client/client.h"

namespace kin {

class EventRecorder {
 public:
  EventRecorder(Client& client, std::string component, std::string host = "");
  void Record(const Json& object, const std::string& type, const std::string& reason,
              const std::string& message);
  void Normal(const Json& object, const std::string& reason, const std::string& message) {
    Record(object, "Normal", reason, message);
  }
  void Warning(const Json& object, const std::string& reason, const std::string& message) {
    Record(object, "Warning", reason, message);
  }

 private:
  using TimePoint = std::chrono::steady_clock::time_point;
  struct Seen {
    std::string ns, name;
    int64_t count = 1;
    TimePoint first;
  };
  // The distinct messages (their hashes) of one (object, type, reason) lately.
  struct Similar {
    std::set<uint64_t> messages;
    TimePoint last;
  };
  // Drops correlations older than the window (at most once a minute).
  void ForgetOldLocked(TimePoint now);

  Client& client_;
  std::string component_;
  std::string host_;
  std::mutex mu_;
  // Keyed by hashes: of uid, type, reason and message (seen_), of uid, type
  // and reason (similar_).
  std::unordered_map<uint64_t, Seen> seen_;        // correlation key -> the Event written
  std::unordered_map<uint64_t, Similar> similar_;  // aggregation key -> messages seen
  TimePoint last_forget_{};
};

}  // namespace kin
