// Pod and int-or-percent helpers every controller shares (upstream's
// podutil, controller.IsPodActive and intstr.GetScaledValueFromIntOrPercent),
// so that "ready", "terminal" and "active" mean one thing across
// controllers. Like client/object.h, a malformed pod reads as empty: no
// phase, no conditions.
//
// Thread-safety: pure functions.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>

#include "client/object.h"

namespace kin::controllers {

// status.phase ("" when unset).
inline std::string PodPhase(const Json& pod) { return object::StringAt(pod, "status", "phase"); }

// Succeeded or Failed: its containers will not run again.
inline bool IsPodTerminal(const Json& pod) {
  std::string phase = PodPhase(pod);
  return phase == "Succeeded" || phase == "Failed";
}

// controller.IsPodActive: not terminal and not being deleted.
inline bool IsPodActive(const Json& pod) {
  return !IsPodTerminal(pod) && !object::IsBeingDeleted(pod);
}

// podutil.IsPodReady: the Ready condition is True.
inline bool IsPodReady(const Json& pod) {
  const Json* c = object::Condition(pod, "Ready");
  if (!c) return false;
  auto status = c->find("status");
  return status != c->end() && status->is_string() &&
         status->get_ref<const std::string&>() == "True";
}

// intstr.GetScaledValueFromIntOrPercent(value, total, round_up): an integer
// as is, "N%" (up to 9 digits) of total rounded up or down; nullopt for
// anything else.
inline std::optional<int64_t> ScaledValue(const Json& int_or_percent, int64_t total,
                                          bool round_up) {
  const Json& v = int_or_percent;
  if (v.is_number_integer()) return v.get<int64_t>();
  if (!v.is_string()) return std::nullopt;
  std::string s = v.get<std::string>();
  if (s.size() < 2 || s.back() != '%') return std::nullopt;
  s.pop_back();
  if (s.size() > 9 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  int64_t percent = std::stoll(s);
  // Integer arithmetic: ceil/floor(percent * total / 100) without float error.
  int64_t product = percent * total;
  if (product < 0) return round_up ? -(-product / 100) : -((-product + 99) / 100);
  return round_up ? (product + 99) / 100 : product / 100;
}

}  // namespace kin::controllers
