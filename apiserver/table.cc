#include "apiserver/table.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/strings.h"

namespace kin::apiserver {
namespace {

using Clock = std::chrono::system_clock;
using TimePoint = Clock::time_point;

// ---------------------------------------------------------------------------
// Reading the JSON wire form leniently: a missing field, null or a value of
// the wrong type reads as Go's zero value, as it would after decoding.
// ---------------------------------------------------------------------------

const Json& Null() {
  static const Json null;
  return null;
}

const Json& At(const Json& o, std::initializer_list<const char*> path) {
  const Json* cur = &o;
  for (const char* key : path) {
    if (!cur->is_object()) return Null();
    auto it = cur->find(key);
    if (it == cur->end()) return Null();
    cur = &*it;
  }
  return *cur;
}

std::string Str(const Json& o, std::initializer_list<const char*> path) {
  const Json& v = At(o, path);
  return v.is_string() ? v.get<std::string>() : std::string();
}

int64_t Int(const Json& o, std::initializer_list<const char*> path, int64_t fallback = 0) {
  const Json& v = At(o, path);
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) return static_cast<int64_t>(v.get<double>());
  return fallback;
}

bool Bool(const Json& o, std::initializer_list<const char*> path) {
  const Json& v = At(o, path);
  return v.is_boolean() && v.get<bool>();
}

bool Has(const Json& o, std::initializer_list<const char*> path) { return !At(o, path).is_null(); }

// An empty array for anything that is not an array.
const Json& Arr(const Json& o, std::initializer_list<const char*> path) {
  static const Json empty = Json::array();
  const Json& v = At(o, path);
  return v.is_array() ? v : empty;
}

size_t Count(const Json& v) { return v.is_object() || v.is_array() ? v.size() : 0; }

std::string ToLower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string TrimSpace(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

// ---------------------------------------------------------------------------
// Time: metav1.Time ("2024-06-01T12:00:00Z") and metav1.MicroTime
// ("2024-06-01T12:00:00.123456Z"); offsets are accepted too. nullopt is Go's
// zero time (absent, null, unparsable, or 0001-01-01T00:00:00Z).
// ---------------------------------------------------------------------------

bool Digits(std::string_view s, size_t pos, size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

std::optional<TimePoint> ParseTime(std::string_view s) {
  int year, mon, day, hour, min, sec;
  if (!Digits(s, 0, 4, year) || s.size() < 19 || s[4] != '-' || !Digits(s, 5, 2, mon) ||
      s[7] != '-' || !Digits(s, 8, 2, day) || (s[10] != 'T' && s[10] != 't') ||
      !Digits(s, 11, 2, hour) || s[13] != ':' || !Digits(s, 14, 2, min) || s[16] != ':' ||
      !Digits(s, 17, 2, sec)) {
    return std::nullopt;
  }
  size_t pos = 19;
  std::chrono::nanoseconds frac{0};
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int64_t value = 0, scale = 1'000'000'000;
    while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) {
      if (scale > 1) {
        scale /= 10;
        value += (s[pos] - '0') * scale;
      }
      ++pos;
    }
    frac = std::chrono::nanoseconds(value);
  }
  std::chrono::minutes offset{0};
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (!Digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !Digits(s, pos + 4, 2, om)) {
      return std::nullopt;
    }
    offset = std::chrono::minutes(oh * 60 + om) * (s[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  std::chrono::year_month_day ymd{std::chrono::year(year),
                                  std::chrono::month(static_cast<unsigned>(mon)),
                                  std::chrono::day(static_cast<unsigned>(day))};
  if (!ymd.ok()) return std::nullopt;
  auto t = std::chrono::sys_days(ymd) + std::chrono::hours(hour) + std::chrono::minutes(min) +
           std::chrono::seconds(sec) + frac - offset;
  if (year == 1 && mon == 1 && day == 1 && hour == 0 && min == 0 && sec == 0 && frac.count() == 0 &&
      offset.count() == 0) {
    return std::nullopt;
  }
  return std::chrono::time_point_cast<Clock::duration>(t);
}

std::optional<TimePoint> Time(const Json& o, std::initializer_list<const char*> path) {
  const Json& v = At(o, path);
  if (!v.is_string()) return std::nullopt;
  return ParseTime(v.get_ref<const std::string&>());
}

// Go's time.Duration.Seconds() truncated: toward zero.
std::chrono::seconds Elapsed(TimePoint from, TimePoint to) {
  return std::chrono::duration_cast<std::chrono::seconds>(to - from);
}

// translateTimestampSince / translateMicroTimestampSince.
std::string Since(const std::optional<TimePoint>& t, TimePoint now) {
  if (!t) return "<unknown>";
  return HumanDuration(Elapsed(*t, now));
}

std::string Age(const Json& obj, TimePoint now) {
  return Since(Time(obj, {"metadata", "creationTimestamp"}), now);
}

// time.RFC3339 of a metav1.Time in UTC, whole seconds (Go's zero time when unset).
std::string Rfc3339(const std::optional<TimePoint>& t) {
  if (!t) return "0001-01-01T00:00:00Z";
  auto secs = std::chrono::floor<std::chrono::seconds>(*t);
  auto days = std::chrono::floor<std::chrono::days>(secs);
  std::chrono::year_month_day ymd{days};
  std::chrono::hh_mm_ss<std::chrono::seconds> hms{secs - days};
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buf;
}

// ---------------------------------------------------------------------------
// Labels and selectors, as k8s.io/apimachinery prints them.
// ---------------------------------------------------------------------------

// labels.FormatLabels: "a=1,b=2" sorted by key, "<none>" when empty.
std::string FormatLabels(const Json& map) {
  if (!map.is_object() || map.empty()) return "<none>";
  std::vector<std::string> parts;
  for (auto it = map.begin(); it != map.end(); ++it) {  // nlohmann objects iterate sorted
    parts.push_back(it.key() + "=" + (it->is_string() ? it->get<std::string>() : std::string()));
  }
  return Join(parts, ",");
}

// metav1.LabelSelectorAsSelector(sel).String(); nullopt when the selector is
// not valid. Requirements sort by key; values of in / notin sort.
std::optional<std::string> SelectorString(const Json& sel) {
  if (!sel.is_object()) return "";
  struct Req {
    std::string key;
    std::string text;
  };
  std::vector<Req> reqs;
  const Json& match_labels = At(sel, {"matchLabels"});
  if (match_labels.is_object()) {
    for (auto it = match_labels.begin(); it != match_labels.end(); ++it) {
      std::string v = it->is_string() ? it->get<std::string>() : std::string();
      reqs.push_back({it.key(), it.key() + "=" + v});
    }
  }
  for (const Json& expr : Arr(sel, {"matchExpressions"})) {
    std::string key = Str(expr, {"key"});
    std::string op = Str(expr, {"operator"});
    std::vector<std::string> values;
    for (const Json& v : Arr(expr, {"values"})) {
      if (v.is_string()) values.push_back(v.get<std::string>());
    }
    std::sort(values.begin(), values.end());
    if (op == "In" || op == "NotIn") {
      if (values.empty()) return std::nullopt;
      reqs.push_back({key, key + (op == "In" ? " in (" : " notin (") + Join(values, ",") + ")"});
    } else if (op == "Exists" || op == "DoesNotExist") {
      if (!values.empty()) return std::nullopt;
      reqs.push_back({key, (op == "Exists" ? "" : "!") + key});
    } else {
      return std::nullopt;
    }
  }
  std::stable_sort(reqs.begin(), reqs.end(),
                   [](const Req& a, const Req& b) { return a.key < b.key; });
  std::vector<std::string> parts;
  for (auto& r : reqs) parts.push_back(std::move(r.text));
  return Join(parts, ",");
}

// metav1.FormatLabelSelector.
std::string FormatLabelSelector(const Json& sel) {
  auto s = SelectorString(sel);
  if (!s) return "<error>";
  return s->empty() ? "<none>" : *s;
}

// layoutContainerCells: container names and images, comma-joined.
std::pair<std::string, std::string> ContainerCells(const Json& pod_spec) {
  std::vector<std::string> names, images;
  for (const Json& c : Arr(pod_spec, {"containers"})) {
    names.push_back(Str(c, {"name"}));
    images.push_back(Str(c, {"image"}));
  }
  return {Join(names, ","), Join(images, ",")};
}

std::string Ratio(int64_t a, int64_t b) { return std::to_string(a) + "/" + std::to_string(b); }

// "a,b + 2 more..." (listWithMoreString); "<unset>" when nothing.
std::string ListWithMore(const std::vector<std::string>& list, bool more, int64_t count,
                         int64_t max) {
  std::string ret = Join(list, ",");
  if (more) return ret + " + " + std::to_string(count - max) + " more...";
  if (ret.empty()) return "<unset>";
  return ret;
}

// net.JoinHostPort.
std::string JoinHostPort(const std::string& host, int64_t port) {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

// loadBalancerStatusStringer with wide = true (the server always prints
// wide): ingress IPs, else hostnames, sorted and de-duplicated.
std::string LoadBalancerIngress(const Json& lb_status) {
  std::set<std::string> result;
  for (const Json& in : Arr(lb_status, {"ingress"})) {
    std::string ip = Str(in, {"ip"});
    std::string host = Str(in, {"hostname"});
    if (!ip.empty()) {
      result.insert(ip);
    } else if (!host.empty()) {
      result.insert(host);
    }
  }
  return Join(std::vector<std::string>(result.begin(), result.end()), ",");
}

// ---------------------------------------------------------------------------
// Column definitions.
// ---------------------------------------------------------------------------

constexpr const char* kNameDesc =
    "Name must be unique within a namespace. Is required when creating resources, although some "
    "resources may allow a client to request the generation of an appropriate name "
    "automatically. Name is primarily intended for creation idempotence and configuration "
    "definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
constexpr const char* kAgeDesc =
    "CreationTimestamp is a timestamp representing the server time when this object was "
    "created. It is not guaranteed to be set in happens-before order across separate "
    "operations. Clients may not set this value. It is represented in RFC3339 form and is in "
    "UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/"
    "api-conventions.md#metadata";
constexpr const char* kContainersDesc = "Names of each container in the template.";
constexpr const char* kImagesDesc = "Images referenced by each container in the template.";

Json Col(const char* name, const char* type, const char* description, int priority = 0,
         const char* format = "") {
  return Json{{"name", name},
              {"type", type},
              {"format", format},
              {"description", description},
              {"priority", priority}};
}
Json NameCol(int priority = 0) { return Col("Name", "string", kNameDesc, priority, "name"); }
Json AgeCol() { return Col("Age", "string", kAgeDesc); }

// Row cells of one object: cells in column order; conditions stays null
// unless the printer sets row conditions.
using CellsFn = Json (*)(const Json& obj, TimePoint now, Json& conditions);

struct Printer {
  Json columns;
  CellsFn cells;
};

// --- pods -------------------------------------------------------------------

bool IsRestartableInitContainer(const Json* c) {
  return c != nullptr && Str(*c, {"restartPolicy"}) == "Always";
}

bool HasPodCondition(const Json& status, const char* type) {
  for (const Json& c : Arr(status, {"conditions"})) {
    if (Str(c, {"type"}) == type) return Str(c, {"status"}) == "True";
  }
  return false;
}

bool HasPodReadyCondition(const Json& status) {
  // hasPodReadyCondition looks at every Ready condition, not just the first.
  for (const Json& c : Arr(status, {"conditions"})) {
    if (Str(c, {"type"}) == "Ready" && Str(c, {"status"}) == "True") return true;
  }
  return false;
}

void NoteLastTermination(const Json& container_status, std::optional<TimePoint>& latest) {
  const Json& terminated = At(container_status, {"lastState", "terminated"});
  if (!terminated.is_object()) return;
  auto finished = Time(terminated, {"finishedAt"});
  if (finished && (!latest || *latest < *finished)) latest = finished;
}

// printPod: READY, STATUS (the reason logic), RESTARTS ("5 (2m ago)"), AGE,
// then IP, NODE, NOMINATED NODE, READINESS GATES.
Json PodCells(const Json& pod, TimePoint now, Json& conditions) {
  const Json& spec = At(pod, {"spec"});
  const Json& status = At(pod, {"status"});
  int64_t restarts = 0;
  int64_t restartable_init_restarts = 0;
  int64_t total = static_cast<int64_t>(Arr(spec, {"containers"}).size());
  int64_t ready = 0;
  std::optional<TimePoint> last_restart, last_restartable_init_restart;

  const std::string phase = Str(status, {"phase"});
  std::string reason = phase;
  if (!Str(status, {"reason"}).empty()) reason = Str(status, {"reason"});
  for (const Json& c : Arr(status, {"conditions"})) {
    if (Str(c, {"type"}) == "PodScheduled" && Str(c, {"reason"}) == "SchedulingGated") {
      reason = "SchedulingGated";
    }
  }

  if (phase == "Succeeded") {
    conditions = Json::array({{{"type", "Completed"},
                               {"status", "True"},
                               {"reason", "Succeeded"},
                               {"message", "The pod has completed successfully."}}});
  } else if (phase == "Failed") {
    conditions = Json::array({{{"type", "Completed"},
                               {"status", "True"},
                               {"reason", "Failed"},
                               {"message", "The pod failed."}}});
  }

  std::map<std::string, const Json*> init_containers;
  const Json& init_specs = Arr(spec, {"initContainers"});
  for (const Json& c : init_specs) {
    init_containers[Str(c, {"name"})] = &c;
    if (IsRestartableInitContainer(&c)) ++total;
  }

  bool initializing = false;
  const Json& init_statuses = Arr(status, {"initContainerStatuses"});
  for (size_t i = 0; i < init_statuses.size(); ++i) {
    const Json& cs = init_statuses[i];
    restarts += Int(cs, {"restartCount"});
    NoteLastTermination(cs, last_restart);
    auto spec_it = init_containers.find(Str(cs, {"name"}));
    const bool restartable =
        IsRestartableInitContainer(spec_it == init_containers.end() ? nullptr : spec_it->second);
    if (restartable) {
      restartable_init_restarts += Int(cs, {"restartCount"});
      NoteLastTermination(cs, last_restartable_init_restart);
    }
    const Json& terminated = At(cs, {"state", "terminated"});
    const Json& waiting = At(cs, {"state", "waiting"});
    if (terminated.is_object() && Int(terminated, {"exitCode"}) == 0) continue;
    if (restartable && Bool(cs, {"started"})) {
      if (Bool(cs, {"ready"})) ++ready;
      continue;
    }
    if (terminated.is_object()) {
      std::string r = Str(terminated, {"reason"});
      if (r.empty()) {
        reason = Int(terminated, {"signal"}) != 0
                     ? "Init:Signal:" + std::to_string(Int(terminated, {"signal"}))
                     : "Init:ExitCode:" + std::to_string(Int(terminated, {"exitCode"}));
      } else {
        reason = "Init:" + r;
      }
    } else if (waiting.is_object() && !Str(waiting, {"reason"}).empty() &&
               Str(waiting, {"reason"}) != "PodInitializing") {
      reason = "Init:" + Str(waiting, {"reason"});
    } else {
      reason = "Init:" + std::to_string(i) + "/" + std::to_string(init_specs.size());
    }
    initializing = true;
    break;
  }

  if (!initializing || HasPodCondition(status, "Initialized")) {
    restarts = restartable_init_restarts;
    last_restart = last_restartable_init_restart;
    bool has_running = false;
    const Json& statuses = Arr(status, {"containerStatuses"});
    for (size_t n = statuses.size(); n > 0; --n) {
      const Json& cs = statuses[n - 1];
      restarts += Int(cs, {"restartCount"});
      NoteLastTermination(cs, last_restart);
      const Json& terminated = At(cs, {"state", "terminated"});
      const Json& waiting = At(cs, {"state", "waiting"});
      if (waiting.is_object() && !Str(waiting, {"reason"}).empty()) {
        reason = Str(waiting, {"reason"});
      } else if (terminated.is_object() && !Str(terminated, {"reason"}).empty()) {
        reason = Str(terminated, {"reason"});
      } else if (terminated.is_object()) {
        reason = Int(terminated, {"signal"}) != 0
                     ? "Signal:" + std::to_string(Int(terminated, {"signal"}))
                     : "ExitCode:" + std::to_string(Int(terminated, {"exitCode"}));
      } else if (Bool(cs, {"ready"}) && At(cs, {"state", "running"}).is_object()) {
        has_running = true;
        ++ready;
      }
    }
    // A pod whose last container completed while another still runs.
    if (reason == "Completed" && has_running) {
      reason = HasPodReadyCondition(status) ? "Running" : "NotReady";
    }
  }

  const bool deleting = Has(pod, {"metadata", "deletionTimestamp"});
  if (deleting && Str(status, {"reason"}) == "NodeLost") {
    reason = "Unknown";
  } else if (deleting && phase != "Succeeded" && phase != "Failed") {
    reason = "Terminating";
  }

  std::string restarts_cell = std::to_string(restarts);
  if (restarts != 0 && last_restart) {
    restarts_cell += " (" + Since(last_restart, now) + " ago)";
  }

  std::string pod_ip;
  const Json& pod_ips = Arr(status, {"podIPs"});
  if (!pod_ips.empty()) {
    pod_ip = Str(pod_ips[0], {"ip"});
  } else {
    pod_ip = Str(status, {"podIP"});
  }
  if (pod_ip.empty()) pod_ip = "<none>";
  std::string node = Str(spec, {"nodeName"});
  if (node.empty()) node = "<none>";
  std::string nominated = Str(status, {"nominatedNodeName"});
  if (nominated.empty()) nominated = "<none>";

  std::string readiness_gates = "<none>";
  const Json& gates = Arr(spec, {"readinessGates"});
  if (!gates.empty()) {
    int64_t true_conditions = 0;
    for (const Json& gate : gates) {
      const std::string type = Str(gate, {"conditionType"});
      for (const Json& c : Arr(status, {"conditions"})) {
        if (Str(c, {"type"}) == type) {
          if (Str(c, {"status"}) == "True") ++true_conditions;
          break;
        }
      }
    }
    readiness_gates = Ratio(true_conditions, static_cast<int64_t>(gates.size()));
  }

  return Json::array({Str(pod, {"metadata", "name"}), Ratio(ready, total), reason, restarts_cell,
                      Age(pod, now), pod_ip, node, nominated, readiness_gates});
}

// --- services ---------------------------------------------------------------

std::string ServiceExternalIP(const Json& svc) {
  std::vector<std::string> external_ips;
  for (const Json& ip : Arr(svc, {"spec", "externalIPs"})) {
    if (ip.is_string()) external_ips.push_back(ip.get<std::string>());
  }
  const std::string type = Str(svc, {"spec", "type"});
  if (type == "ClusterIP" || type == "NodePort") {
    return external_ips.empty() ? "<none>" : Join(external_ips, ",");
  }
  if (type == "LoadBalancer") {
    std::string lb = LoadBalancerIngress(At(svc, {"status", "loadBalancer"}));
    if (!external_ips.empty()) {
      std::vector<std::string> results;
      if (!lb.empty()) results.push_back(lb);
      results.insert(results.end(), external_ips.begin(), external_ips.end());
      return Join(results, ",");
    }
    return lb.empty() ? "<pending>" : lb;
  }
  if (type == "ExternalName") return Str(svc, {"spec", "externalName"});
  return "<unknown>";
}

Json ServiceCells(const Json& svc, TimePoint now, Json&) {
  std::string cluster_ip = "<none>";
  const Json& ips = Arr(svc, {"spec", "clusterIPs"});
  if (!ips.empty() && ips[0].is_string()) {
    cluster_ip = ips[0].get<std::string>();
  } else if (!Str(svc, {"spec", "clusterIP"}).empty()) {
    cluster_ip = Str(svc, {"spec", "clusterIP"});
  }
  std::vector<std::string> ports;
  for (const Json& p : Arr(svc, {"spec", "ports"})) {
    std::string protocol = Str(p, {"protocol"});
    if (protocol.empty()) protocol = "TCP";
    std::string piece = std::to_string(Int(p, {"port"}));
    if (Int(p, {"nodePort"}) > 0) piece += ":" + std::to_string(Int(p, {"nodePort"}));
    ports.push_back(piece + "/" + protocol);
  }
  std::string ports_cell = Join(ports, ",");
  if (ports_cell.empty()) ports_cell = "<none>";
  return Json::array({Str(svc, {"metadata", "name"}), Str(svc, {"spec", "type"}), cluster_ip,
                      ServiceExternalIP(svc), ports_cell, Age(svc, now),
                      FormatLabels(At(svc, {"spec", "selector"}))});
}

// --- workloads --------------------------------------------------------------

Json DeploymentCells(const Json& d, TimePoint now, Json&) {
  auto [names, images] = ContainerCells(At(d, {"spec", "template", "spec"}));
  auto selector = SelectorString(At(d, {"spec", "selector"}));
  return Json::array({Str(d, {"metadata", "name"}),
                      Ratio(Int(d, {"status", "readyReplicas"}), Int(d, {"spec", "replicas"}, 1)),
                      Int(d, {"status", "updatedReplicas"}),
                      Int(d, {"status", "availableReplicas"}), Age(d, now), names, images,
                      selector ? *selector : "<invalid>"});
}

Json ReplicaSetCells(const Json& rs, TimePoint now, Json&) {
  auto [names, images] = ContainerCells(At(rs, {"spec", "template", "spec"}));
  return Json::array({Str(rs, {"metadata", "name"}), Int(rs, {"spec", "replicas"}, 1),
                      Int(rs, {"status", "replicas"}), Int(rs, {"status", "readyReplicas"}),
                      Age(rs, now), names, images,
                      FormatLabelSelector(At(rs, {"spec", "selector"}))});
}

Json DaemonSetCells(const Json& ds, TimePoint now, Json&) {
  auto [names, images] = ContainerCells(At(ds, {"spec", "template", "spec"}));
  return Json::array(
      {Str(ds, {"metadata", "name"}), Int(ds, {"status", "desiredNumberScheduled"}),
       Int(ds, {"status", "currentNumberScheduled"}), Int(ds, {"status", "numberReady"}),
       Int(ds, {"status", "updatedNumberScheduled"}), Int(ds, {"status", "numberAvailable"}),
       FormatLabels(At(ds, {"spec", "template", "spec", "nodeSelector"})), Age(ds, now), names,
       images, FormatLabelSelector(At(ds, {"spec", "selector"}))});
}

Json StatefulSetCells(const Json& sts, TimePoint now, Json&) {
  auto [names, images] = ContainerCells(At(sts, {"spec", "template", "spec"}));
  return Json::array(
      {Str(sts, {"metadata", "name"}),
       Ratio(Int(sts, {"status", "readyReplicas"}), Int(sts, {"spec", "replicas"}, 1)),
       Age(sts, now), names, images});
}

// hasJobCondition: the first condition of that type decides.
bool HasJobCondition(const Json& job, const char* type) {
  for (const Json& c : Arr(job, {"status", "conditions"})) {
    if (Str(c, {"type"}) == type) return Str(c, {"status"}) == "True";
  }
  return false;
}

Json JobCells(const Json& job, TimePoint now, Json&) {
  const int64_t succeeded = Int(job, {"status", "succeeded"});
  std::string completions;
  if (At(job, {"spec", "completions"}).is_number()) {
    completions = Ratio(succeeded, Int(job, {"spec", "completions"}));
  } else {
    const int64_t parallelism = Int(job, {"spec", "parallelism"});
    completions = Ratio(succeeded, 1);
    if (parallelism > 1) completions += " of " + std::to_string(parallelism);
  }
  std::string duration;
  auto start = Time(job, {"status", "startTime"});
  auto completion = Time(job, {"status", "completionTime"});
  if (start && !completion) {
    duration = HumanDuration(Elapsed(*start, now));
  } else if (start) {
    duration = HumanDuration(Elapsed(*start, *completion));
  }
  std::string status = "Running";
  if (HasJobCondition(job, "Complete")) {
    status = "Complete";
  } else if (HasJobCondition(job, "Failed")) {
    status = "Failed";
  } else if (Has(job, {"metadata", "deletionTimestamp"})) {
    status = "Terminating";
  } else if (HasJobCondition(job, "Suspended")) {
    status = "Suspended";
  } else if (HasJobCondition(job, "FailureTarget")) {
    status = "FailureTarget";
  }
  auto [names, images] = ContainerCells(At(job, {"spec", "template", "spec"}));
  return Json::array({Str(job, {"metadata", "name"}), status, completions, duration, Age(job, now),
                      names, images, FormatLabelSelector(At(job, {"spec", "selector"}))});
}

Json ReplicationControllerCells(const Json& rc, TimePoint now, Json&) {
  auto [names, images] = ContainerCells(At(rc, {"spec", "template", "spec"}));
  return Json::array({Str(rc, {"metadata", "name"}), Int(rc, {"spec", "replicas"}, 1),
                      Int(rc, {"status", "replicas"}), Int(rc, {"status", "readyReplicas"}),
                      Age(rc, now), names, images, FormatLabels(At(rc, {"spec", "selector"}))});
}

// printPodTemplate.
Json PodTemplateCells(const Json& pt, TimePoint, Json&) {
  auto [names, images] = ContainerCells(At(pt, {"template", "spec"}));
  return Json::array({Str(pt, {"metadata", "name"}), names, images,
                      FormatLabels(At(pt, {"template", "metadata", "labels"}))});
}

// printLimitRange: the creation time in RFC 3339.
Json LimitRangeCells(const Json& lr, TimePoint, Json&) {
  return Json::array({Str(lr, {"metadata", "name"}),
                      Rfc3339(Time(lr, {"metadata", "creationTimestamp"}))});
}

// printResourceQuota: "used/hard" of each status.hard name, the limits.*
// ones in LIMIT, the others in REQUEST.
Json ResourceQuotaCells(const Json& rq, TimePoint now, Json&) {
  std::string request, limit;
  const Json& hard = At(rq, {"status", "hard"});
  const Json& used = At(rq, {"status", "used"});
  if (hard.is_object()) {
    for (const auto& [name, h] : hard.items()) {  // in name order (a std::map)
      std::string u = "0";
      if (used.is_object() && used.contains(name)) {
        u = used[name].is_string() ? used[name].get<std::string>() : used[name].dump();
      }
      std::string hv = h.is_string() ? h.get<std::string>() : h.dump();
      std::string& col = name.rfind("limits.", 0) == 0 ? limit : request;
      col += (col.empty() ? "" : ", ") + name + ": " + u + "/" + hv;
    }
  }
  return Json::array({Str(rq, {"metadata", "name"}), Age(rq, now), request, limit});
}

// printBoolPtr: "True" / "False", "<unset>" when nil.
std::string BoolPtr(const Json& v) {
  if (!v.is_boolean()) return "<unset>";
  return v.get<bool>() ? "True" : "False";
}

Json CronJobCells(const Json& cj, TimePoint now, Json&) {
  std::string last = "<none>";
  if (auto t = Time(cj, {"status", "lastScheduleTime"})) last = Since(t, now);
  std::string tz = Has(cj, {"spec", "timeZone"}) ? Str(cj, {"spec", "timeZone"}) : "<none>";
  const Json& job_spec = At(cj, {"spec", "jobTemplate", "spec"});
  auto [names, images] = ContainerCells(At(job_spec, {"template", "spec"}));
  return Json::array({Str(cj, {"metadata", "name"}), Str(cj, {"spec", "schedule"}), tz,
                      BoolPtr(At(cj, {"spec", "suspend"})),
                      static_cast<int64_t>(Count(At(cj, {"status", "active"}))), last, Age(cj, now),
                      names, images, FormatLabelSelector(At(job_spec, {"selector"}))});
}

// IntOrString.String(); "N/A" when unset.
std::string IntOrStringCell(const Json& v) {
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_string()) return v.get<std::string>();
  return "N/A";
}

Json PodDisruptionBudgetCells(const Json& pdb, TimePoint now, Json&) {
  return Json::array({Str(pdb, {"metadata", "name"}),
                      IntOrStringCell(At(pdb, {"spec", "minAvailable"})),
                      IntOrStringCell(At(pdb, {"spec", "maxUnavailable"})),
                      Int(pdb, {"status", "disruptionsAllowed"}), Age(pdb, now)});
}

// The controller owner as "kind.group/name" (formatResourceName with kind).
Json ControllerRevisionCells(const Json& cr, TimePoint now, Json&) {
  std::string controller = "<none>";
  for (const Json& ref : Arr(cr, {"metadata", "ownerReferences"})) {
    if (!Bool(ref, {"controller"})) continue;
    std::string api_version = Str(ref, {"apiVersion"});
    size_t slash = api_version.find('/');
    std::string group = slash == std::string::npos ? "" : api_version.substr(0, slash);
    std::string kind = Str(ref, {"kind"});
    std::string group_kind = group.empty() ? kind : kind + "." + group;
    controller = kind.empty() ? Str(ref, {"name"}) : ToLower(group_kind) + "/" + Str(ref, {"name"});
    break;
  }
  return Json::array(
      {Str(cr, {"metadata", "name"}), controller, Int(cr, {"revision"}), Age(cr, now)});
}

// --- nodes ------------------------------------------------------------------

std::string NodeAddress(const Json& node, const char* type) {
  for (const Json& a : Arr(node, {"status", "addresses"})) {
    if (Str(a, {"type"}) == type) return Str(a, {"address"});
  }
  return "<none>";
}

Json NodeCells(const Json& node, TimePoint now, Json&) {
  // Only the Ready condition counts; the last one listed wins.
  std::vector<std::string> status;
  const Json* ready = nullptr;
  for (const Json& c : Arr(node, {"status", "conditions"})) {
    if (Str(c, {"type"}) == "Ready") ready = &c;
  }
  if (ready != nullptr) status.push_back(Str(*ready, {"status"}) == "True" ? "Ready" : "NotReady");
  if (status.empty()) status.push_back("Unknown");
  if (Bool(node, {"spec", "unschedulable"})) status.push_back("SchedulingDisabled");

  // findNodeRoles: node-role.kubernetes.io/<role> keys and kubernetes.io/role values.
  std::set<std::string> roles;
  const Json& labels = At(node, {"metadata", "labels"});
  if (labels.is_object()) {
    constexpr std::string_view kPrefix = "node-role.kubernetes.io/";
    for (auto it = labels.begin(); it != labels.end(); ++it) {
      const std::string& key = it.key();
      std::string value = it->is_string() ? it->get<std::string>() : std::string();
      if (key.starts_with(kPrefix)) {
        if (key.size() > kPrefix.size()) roles.insert(key.substr(kPrefix.size()));
      } else if (key == "kubernetes.io/role" && !value.empty()) {
        roles.insert(value);
      }
    }
  }
  std::string roles_cell = Join(std::vector<std::string>(roles.begin(), roles.end()), ",");
  if (roles_cell.empty()) roles_cell = "<none>";

  auto unknown_if_empty = [](std::string s) { return s.empty() ? std::string("<unknown>") : s; };
  return Json::array(
      {Str(node, {"metadata", "name"}), Join(status, ","), roles_cell, Age(node, now),
       Str(node, {"status", "nodeInfo", "kubeletVersion"}), NodeAddress(node, "InternalIP"),
       NodeAddress(node, "ExternalIP"),
       unknown_if_empty(Str(node, {"status", "nodeInfo", "osImage"})),
       unknown_if_empty(Str(node, {"status", "nodeInfo", "kernelVersion"})),
       unknown_if_empty(Str(node, {"status", "nodeInfo", "containerRuntimeVersion"}))});
}

// --- core odds and ends -----------------------------------------------------

Json NamespaceCells(const Json& ns, TimePoint now, Json&) {
  return Json::array({Str(ns, {"metadata", "name"}), Str(ns, {"status", "phase"}), Age(ns, now)});
}

// formatEndpoints with all ports: "ip:port" per address and port, at most 3.
std::string FormatEndpoints(const Json& ep) {
  const Json& subsets = Arr(ep, {"subsets"});
  if (subsets.empty()) return "<none>";
  constexpr int64_t kMax = 3;
  std::vector<std::string> list;
  bool more = false;
  int64_t count = 0;
  for (const Json& ss : subsets) {
    const Json& addresses = Arr(ss, {"addresses"});
    const Json& ports = Arr(ss, {"ports"});
    if (ports.empty()) {
      // Headless services may have no ports.
      count += static_cast<int64_t>(addresses.size());
      for (const Json& a : addresses) {
        if (static_cast<int64_t>(list.size()) == kMax) {
          more = true;
          break;
        }
        list.push_back(Str(a, {"ip"}));
      }
      continue;
    }
    for (const Json& port : ports) {
      count += static_cast<int64_t>(addresses.size());
      for (const Json& a : addresses) {
        if (static_cast<int64_t>(list.size()) == kMax) {
          more = true;
          break;
        }
        list.push_back(JoinHostPort(Str(a, {"ip"}), Int(port, {"port"})));
      }
    }
  }
  std::string ret = Join(list, ",");
  if (more) return ret + " + " + std::to_string(count - kMax) + " more...";
  return ret;
}

Json EndpointsCells(const Json& ep, TimePoint now, Json&) {
  return Json::array({Str(ep, {"metadata", "name"}), FormatEndpoints(ep), Age(ep, now)});
}

Json EndpointSliceCells(const Json& slice, TimePoint now, Json&) {
  constexpr int64_t kMax = 3;
  std::vector<std::string> ports;
  bool more_ports = false;
  int64_t port_count = 0;
  for (const Json& p : Arr(slice, {"ports"})) {
    if (static_cast<int64_t>(ports.size()) < kMax) {
      std::string num = "*";
      if (At(p, {"port"}).is_number()) {
        num = std::to_string(Int(p, {"port"}));
      } else if (At(p, {"name"}).is_string()) {
        num = Str(p, {"name"});
      }
      ports.push_back(num);
    } else if (static_cast<int64_t>(ports.size()) == kMax) {
      more_ports = true;
    }
    ++port_count;
  }
  std::vector<std::string> addresses;
  bool more_addresses = false;
  int64_t address_count = 0;
  for (const Json& e : Arr(slice, {"endpoints"})) {
    for (const Json& a : Arr(e, {"addresses"})) {
      if (static_cast<int64_t>(addresses.size()) < kMax) {
        addresses.push_back(a.is_string() ? a.get<std::string>() : std::string());
      } else if (static_cast<int64_t>(addresses.size()) == kMax) {
        more_addresses = true;
      }
      ++address_count;
    }
  }
  return Json::array({Str(slice, {"metadata", "name"}), Str(slice, {"addressType"}),
                      ListWithMore(ports, more_ports, port_count, kMax),
                      ListWithMore(addresses, more_addresses, address_count, kMax),
                      Age(slice, now)});
}

Json ConfigMapCells(const Json& cm, TimePoint now, Json&) {
  return Json::array({Str(cm, {"metadata", "name"}),
                      static_cast<int64_t>(Count(At(cm, {"data"})) + Count(At(cm, {"binaryData"}))),
                      Age(cm, now)});
}

Json SecretCells(const Json& s, TimePoint now, Json&) {
  return Json::array({Str(s, {"metadata", "name"}), Str(s, {"type"}),
                      static_cast<int64_t>(Count(At(s, {"data"}))), Age(s, now)});
}

Json ServiceAccountCells(const Json& sa, TimePoint now, Json&) {
  return Json::array({Str(sa, {"metadata", "name"}),
                      static_cast<int64_t>(Count(At(sa, {"secrets"}))), Age(sa, now)});
}

// printEvent, wide: LAST SEEN, TYPE, REASON, OBJECT, SUBOBJECT, SOURCE,
// MESSAGE, FIRST SEEN, COUNT, NAME.
Json EventCells(const Json& ev, TimePoint now, Json&) {
  auto first_time = Time(ev, {"firstTimestamp"});
  std::string first = first_time ? Since(first_time, now) : Since(Time(ev, {"eventTime"}), now);
  auto last_time = Time(ev, {"lastTimestamp"});
  std::string last = last_time ? Since(last_time, now) : first;
  int64_t count = Int(ev, {"count"});
  if (At(ev, {"series"}).is_object()) {
    last = Since(Time(ev, {"series", "lastObservedTime"}), now);
    count = Int(ev, {"series", "count"});
  } else if (count == 0) {
    count = 1;  // singleton events of the events.k8s.io API have no count
  }
  std::string kind = ToLower(Str(ev, {"involvedObject", "kind"}));
  std::string name = Str(ev, {"involvedObject", "name"});
  std::string target = name.empty() ? kind : kind + "/" + name;

  std::string component = Str(ev, {"source", "component"});
  if (component.empty()) component = Str(ev, {"reportingComponent"});
  std::string host = Str(ev, {"source", "host"});
  if (host.empty()) host = Str(ev, {"reportingInstance"});
  std::string source = host.empty() ? component : component + ", " + host;

  return Json::array({last, Str(ev, {"type"}), Str(ev, {"reason"}), target,
                      Str(ev, {"involvedObject", "fieldPath"}), source,
                      TrimSpace(Str(ev, {"message"})), first, count,
                      Str(ev, {"metadata", "name"})});
}

// --- networking, coordination -------------------------------------------------

std::string FormatIngressHosts(const Json& rules) {
  constexpr size_t kMax = 3;
  std::vector<std::string> list;
  bool more = false;
  for (const Json& rule : rules) {
    if (list.size() == kMax) more = true;
    std::string host = Str(rule, {"host"});
    if (!more && !host.empty()) list.push_back(host);
  }
  if (list.empty()) return "*";
  std::string ret = Join(list, ",");
  if (more) return ret + " + " + std::to_string(rules.size() - kMax) + " more...";
  return ret;
}

Json IngressCells(const Json& ing, TimePoint now, Json&) {
  std::string class_name = "<none>";
  if (At(ing, {"spec", "ingressClassName"}).is_string()) {
    class_name = Str(ing, {"spec", "ingressClassName"});
  }
  const std::string ports = Arr(ing, {"spec", "tls"}).empty() ? "80" : "80, 443";
  return Json::array(
      {Str(ing, {"metadata", "name"}), class_name, FormatIngressHosts(Arr(ing, {"spec", "rules"})),
       LoadBalancerIngress(At(ing, {"status", "loadBalancer"})), ports, Age(ing, now)});
}

Json IngressClassCells(const Json& ic, TimePoint now, Json&) {
  std::string parameters = "<none>";
  const Json& p = At(ic, {"spec", "parameters"});
  if (p.is_object()) {
    parameters = Str(p, {"kind"});
    if (At(p, {"apiGroup"}).is_string()) parameters += "." + Str(p, {"apiGroup"});
    parameters += "/" + Str(p, {"name"});
  }
  return Json::array(
      {Str(ic, {"metadata", "name"}), Str(ic, {"spec", "controller"}), parameters, Age(ic, now)});
}

// Storage (printers.go): helper.GetAccessModesAsString's order and short
// names; "Terminating" while being deleted; "<unset>" for what is nil.
std::string AccessModesString(const Json& modes) {
  std::string out;
  for (const auto& [mode, short_name] :
       std::vector<std::pair<const char*, const char*>>{{"ReadWriteOnce", "RWO"},
                                                        {"ReadOnlyMany", "ROX"},
                                                        {"ReadWriteMany", "RWX"},
                                                        {"ReadWriteOncePod", "RWOP"}}) {
    bool has = false;
    if (modes.is_array()) {
      for (const Json& m : modes) has = has || (m.is_string() && m.get<std::string>() == mode);
    }
    if (has) out += (out.empty() ? "" : ",") + std::string(short_name);
  }
  return out;
}

std::string QuantityCell(const Json& q) {
  if (q.is_string()) return q.get<std::string>();
  if (q.is_number()) return q.dump();
  return "";
}

std::string UnsetOr(const Json& obj, std::initializer_list<const char*> path) {
  return Has(obj, path) ? Str(obj, path) : "<unset>";
}

Json PersistentVolumeCells(const Json& pv, TimePoint now, Json&) {
  std::string phase = Str(pv, {"status", "phase"});
  if (Has(pv, {"metadata", "deletionTimestamp"})) phase = "Terminating";
  std::string claim;
  if (Has(pv, {"spec", "claimRef"})) {
    claim = Str(pv, {"spec", "claimRef", "namespace"}) + "/" + Str(pv, {"spec", "claimRef", "name"});
  }
  return Json::array({Str(pv, {"metadata", "name"}),
                      QuantityCell(At(pv, {"spec", "capacity", "storage"})),
                      AccessModesString(At(pv, {"spec", "accessModes"})),
                      Str(pv, {"spec", "persistentVolumeReclaimPolicy"}), phase, claim,
                      Str(pv, {"spec", "storageClassName"}),
                      UnsetOr(pv, {"spec", "volumeAttributesClassName"}),
                      Str(pv, {"status", "reason"}), Age(pv, now),
                      UnsetOr(pv, {"spec", "volumeMode"})});
}

Json PersistentVolumeClaimCells(const Json& pvc, TimePoint now, Json&) {
  std::string phase = Str(pvc, {"status", "phase"});
  if (Has(pvc, {"metadata", "deletionTimestamp"})) phase = "Terminating";
  std::string capacity, modes;
  if (!Str(pvc, {"spec", "volumeName"}).empty()) {
    modes = AccessModesString(At(pvc, {"status", "accessModes"}));
    capacity = QuantityCell(At(pvc, {"status", "capacity", "storage"}));
  }
  return Json::array({Str(pvc, {"metadata", "name"}), phase, Str(pvc, {"spec", "volumeName"}),
                      capacity, modes, Str(pvc, {"spec", "storageClassName"}),
                      UnsetOr(pvc, {"spec", "volumeAttributesClassName"}), Age(pvc, now),
                      UnsetOr(pvc, {"spec", "volumeMode"})});
}

Json StorageClassCells(const Json& sc, TimePoint now, Json&) {
  std::string name = Str(sc, {"metadata", "name"});
  // storageutil.IsDefaultAnnotation: the GA annotation or the beta one.
  for (const char* key : {"storageclass.kubernetes.io/is-default-class",
                          "storageclass.beta.kubernetes.io/is-default-class"}) {
    if (Str(sc, {"metadata", "annotations", key}) == "true") {
      name += " (default)";
      break;
    }
  }
  std::string reclaim = Has(sc, {"reclaimPolicy"}) ? Str(sc, {"reclaimPolicy"}) : "Delete";
  std::string binding =
      Has(sc, {"volumeBindingMode"}) ? Str(sc, {"volumeBindingMode"}) : "Immediate";
  return Json::array({name, Str(sc, {"provisioner"}), reclaim, binding,
                      Bool(sc, {"allowVolumeExpansion"}), Age(sc, now)});
}

Json PriorityClassCells(const Json& pc, TimePoint now, Json&) {
  return Json::array({Str(pc, {"metadata", "name"}), At(pc, {"value"}).is_number()
                                                          ? At(pc, {"value"})
                                                          : Json(0),
                      Bool(pc, {"globalDefault"}), Age(pc, now),
                      Has(pc, {"preemptionPolicy"}) ? Str(pc, {"preemptionPolicy"})
                                                    : std::string("<none>")});
}

// kube-aggregator's printer: SERVICE is namespace/name or "Local";
// AVAILABLE the Available condition's status, with its reason when not True.
Json APIServiceCells(const Json& as, TimePoint now, Json&) {
  std::string service = "Local";
  const Json& svc = At(as, {"spec", "service"});
  if (svc.is_object()) service = Str(svc, {"namespace"}) + "/" + Str(svc, {"name"});
  std::string available = "Unknown";
  for (const Json& c : Arr(as, {"status", "conditions"})) {
    if (Str(c, {"type"}) != "Available") continue;
    available = Str(c, {"status"});
    if (available != "True" && !Str(c, {"reason"}).empty()) {
      available += " (" + Str(c, {"reason"}) + ")";
    }
  }
  return Json::array({Str(as, {"metadata", "name"}), service, available, Age(as, now)});
}

// admissionregistration's printer: WEBHOOKS counts the webhooks.
Json WebhookConfigurationCells(const Json& wc, TimePoint now, Json&) {
  return Json::array(
      {Str(wc, {"metadata", "name"}), static_cast<int64_t>(Arr(wc, {"webhooks"}).size()),
       Age(wc, now)});
}

Json NetworkPolicyCells(const Json& np, TimePoint now, Json&) {
  // The pod selector is a value, not a pointer: absent means "everything".
  const Json& sel = At(np, {"spec", "podSelector"});
  return Json::array({Str(np, {"metadata", "name"}),
                      FormatLabelSelector(sel.is_object() ? sel : Json::object()), Age(np, now)});
}

Json LeaseCells(const Json& lease, TimePoint now, Json&) {
  return Json::array(
      {Str(lease, {"metadata", "name"}), Str(lease, {"spec", "holderIdentity"}), Age(lease, now)});
}

// printRoleBinding / printClusterRoleBinding: KIND/NAME of the role, then
// the subjects by kind (rbac.SubjectsStrings; service accounts "ns/name").
Json RoleBindingCells(const Json& rb, TimePoint now, Json&) {
  std::vector<std::string> users, groups, sas;
  const Json& subjects = At(rb, {"subjects"});
  if (subjects.is_array()) {
    for (const Json& s : subjects) {
      std::string kind = Str(s, {"kind"}), name = Str(s, {"name"}), ns = Str(s, {"namespace"});
      if (kind == "User") users.push_back(name);
      if (kind == "Group") groups.push_back(name);
      if (kind == "ServiceAccount") sas.push_back(ns.empty() ? name : ns + "/" + name);
    }
  }
  return Json::array({Str(rb, {"metadata", "name"}),
                      Str(rb, {"roleRef", "kind"}) + "/" + Str(rb, {"roleRef", "name"}),
                      Age(rb, now), Join(users, ", "), Join(groups, ", "), Join(sas, ", ")});
}

// The generic table of rest.defaultTableConvertor for kinds without a printer.
Json DefaultCells(const Json& obj, TimePoint, Json&) {
  return Json::array(
      {Str(obj, {"metadata", "name"}), Rfc3339(Time(obj, {"metadata", "creationTimestamp"}))});
}

const std::map<std::string, Printer>& Printers() {
  static const std::map<std::string, Printer> printers = [] {
    std::map<std::string, Printer> m;
    m["pods"] = {
        Json::array(
            {NameCol(),
             Col("Ready", "string",
                 "The aggregate readiness state of this pod for accepting "
                 "traffic."),
             Col("Status", "string", "The aggregate status of the containers in this pod."),
             Col("Restarts", "string",
                 "The number of times the containers in this pod have been restarted and when "
                 "the last container in this pod has restarted."),
             AgeCol(), Col("IP", "string", "IP address allocated to the pod.", 1),
             Col("Node", "string", "The node the pod is scheduled onto.", 1),
             Col("Nominated Node", "string",
                 "The node on which the pod may be scheduled once preemption completes.", 1),
             Col("Readiness Gates", "string",
                 "Readiness gates that are evaluated for pod readiness.", 1)}),
        PodCells};
    m["services"] = {
        Json::array(
            {NameCol(), Col("Type", "string", "How the Service is exposed."),
             Col("Cluster-IP", "string", "The IP address of the service."),
             Col("External-IP", "string",
                 "IP addresses for which nodes in the cluster also accept traffic."),
             Col("Port(s)", "string", "The list of ports that are exposed by this service."),
             AgeCol(),
             Col("Selector", "string",
                 "Route service traffic to pods with label keys and values matching this "
                 "selector.",
                 1)}),
        ServiceCells};
    m["deployments.apps"] = {
        Json::array(
            {NameCol(), Col("Ready", "string", "Number of the pod with ready state"),
             Col("Up-to-date", "string",
                 "Total number of non-terminated pods targeted by this deployment that have the "
                 "desired template spec."),
             Col("Available", "string",
                 "Total number of available pods (ready for at least minReadySeconds) targeted by "
                 "this deployment."),
             AgeCol(), Col("Containers", "string", kContainersDesc, 1),
             Col("Images", "string", kImagesDesc, 1),
             Col("Selector", "string", "Label selector for pods.", 1)}),
        DeploymentCells};
    m["replicasets.apps"] = {
        Json::array({NameCol(),
                     Col("Desired", "integer", "Replicas is the number of desired replicas."),
                     Col("Current", "integer",
                         "Replicas is the most recently observed number of replicas."),
                     Col("Ready", "integer", "The number of ready replicas for this replica set."),
                     AgeCol(), Col("Containers", "string", kContainersDesc, 1),
                     Col("Images", "string", kImagesDesc, 1),
                     Col("Selector", "string",
                         "Selector is a label query over pods that should match the replica "
                         "count.",
                         1)}),
        ReplicaSetCells};
    m["daemonsets.apps"] = {
        Json::array(
            {NameCol(),
             Col("Desired", "integer",
                 "The total number of nodes that should be running the daemon pod."),
             Col("Current", "integer",
                 "The number of nodes that are running at least 1 daemon pod and are supposed "
                 "to run the daemon pod."),
             Col("Ready", "integer",
                 "The number of nodes that should be running the daemon pod and have one or "
                 "more of the daemon pod running and ready."),
             Col("Up-to-date", "integer",
                 "The total number of nodes that are running updated daemon pod."),
             Col("Available", "integer",
                 "The number of nodes that should be running the daemon pod and have one or "
                 "more of the daemon pod running and available."),
             Col("Node Selector", "string",
                 "NodeSelector is a selector which must be true for the pod to fit on a node."),
             AgeCol(), Col("Containers", "string", kContainersDesc, 1),
             Col("Images", "string", kImagesDesc, 1),
             Col("Selector", "string",
                 "A label query over pods that are managed by the daemon "
                 "set.",
                 1)}),
        DaemonSetCells};
    m["statefulsets.apps"] = {
        Json::array({NameCol(), Col("Ready", "string", "Number of the pod with ready state"),
                     AgeCol(), Col("Containers", "string", kContainersDesc, 1),
                     Col("Images", "string", kImagesDesc, 1)}),
        StatefulSetCells};
    m["jobs.batch"] = {
        Json::array(
            {NameCol(), Col("Status", "string", "Status of the job."),
             Col("Completions", "string", "The number of pods which reached phase Succeeded."),
             Col("Duration", "string", "Time required to complete the job."), AgeCol(),
             Col("Containers", "string", kContainersDesc, 1),
             Col("Images", "string", kImagesDesc, 1),
             Col("Selector", "string", "A label query over pods that should match the pod count.",
                 1)}),
        JobCells};
    m["replicationcontrollers"] = {
        Json::array(
            {NameCol(),
             Col("Desired", "integer",
                 "Replicas is the number of desired replicas. This is a pointer to distinguish "
                 "between explicit zero and unspecified. Defaults to 1. More info: "
                 "https://kubernetes.io/docs/concepts/workloads/controllers/"
                 "replicationcontroller#what-is-a-replicationcontroller"),
             Col("Current", "integer",
                 "Replicas is the most recently observed number of replicas. More info: "
                 "https://kubernetes.io/docs/concepts/workloads/controllers/"
                 "replicationcontroller#what-is-a-replicationcontroller"),
             Col("Ready", "integer",
                 "The number of ready replicas for this replication controller."),
             AgeCol(), Col("Containers", "string", kContainersDesc, 1),
             Col("Images", "string", kImagesDesc, 1),
             Col("Selector", "string",
                 "Selector is a label query over pods that should match the Replicas count.", 1)}),
        ReplicationControllerCells};
    m["cronjobs.batch"] = {
        Json::array(
            {NameCol(),
             Col("Schedule", "string",
                 "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
             Col("Timezone", "string",
                 "The time zone name for the given schedule, see "
                 "https://en.wikipedia.org/wiki/List_of_tz_database_time_zones."),
             Col("Suspend", "boolean",
                 "This flag tells the controller to suspend subsequent executions, it does not "
                 "apply to already started executions. Defaults to false."),
             Col("Active", "integer", "A list of pointers to currently running jobs."),
             Col("Last Schedule", "string",
                 "Information when was the last time the job was successfully scheduled."),
             AgeCol(), Col("Containers", "string", kContainersDesc, 1),
             Col("Images", "string", kImagesDesc, 1),
             Col("Selector", "string", "A label query over pods that should match the pod count.",
                 1)}),
        CronJobCells};
    m["poddisruptionbudgets.policy"] = {
        Json::array(
            {NameCol(),
             Col("Min Available", "string", "The minimum number of pods that must be available."),
             Col("Max Unavailable", "string",
                 "The maximum number of pods that may be unavailable."),
             Col("Allowed Disruptions", "integer",
                 "Calculated number of pods that may be disrupted at this time."),
             AgeCol()}),
        PodDisruptionBudgetCells};
    m["controllerrevisions.apps"] = {
        Json::array({NameCol(), Col("Controller", "string", "Controller of the object"),
                     Col("Revision", "string",
                         "Revision indicates the revision of the state "
                         "represented by Data."),
                     AgeCol()}),
        ControllerRevisionCells};
    m["nodes"] = {
        Json::array({NameCol(), Col("Status", "string", "The status of the node"),
                     Col("Roles", "string", "The roles of the node"), AgeCol(),
                     Col("Version", "string", "Kubelet Version reported by the node."),
                     Col("Internal-IP", "string", "List of addresses reachable to the node.", 1),
                     Col("External-IP", "string", "List of addresses reachable to the node.", 1),
                     Col("OS-Image", "string", "OS Image reported by the node.", 1),
                     Col("Kernel-Version", "string", "Kernel Version reported by the node.", 1),
                     Col("Container-Runtime", "string",
                         "ContainerRuntime Version reported by the node.", 1)}),
        NodeCells};
    m["namespaces"] = {
        Json::array({NameCol(), Col("Status", "string", "The status of the namespace"), AgeCol()}),
        NamespaceCells};
    m["endpoints"] = {Json::array({NameCol(),
                                   Col("Endpoints", "string",
                                       "The set of all endpoints is the union of all subsets."),
                                   AgeCol()}),
                      EndpointsCells};
    m["endpointslices.discovery.k8s.io"] = {
        Json::array(
            {NameCol(),
             Col("AddressType", "string",
                 "The type of address carried by this "
                 "EndpointSlice."),
             Col("Ports", "string", "The network ports exposed by each endpoint in this slice."),
             Col("Endpoints", "string", "A list of unique endpoints in this slice."), AgeCol()}),
        EndpointSliceCells};
    m["configmaps"] = {
        Json::array(
            {NameCol(), Col("Data", "string", "Data contains the configuration data."), AgeCol()}),
        ConfigMapCells};
    m["secrets"] = {
        Json::array({NameCol(),
                     Col("Type", "string",
                         "Used to facilitate programmatic handling of secret "
                         "data."),
                     Col("Data", "string", "Data contains the secret data."), AgeCol()}),
        SecretCells};
    m["serviceaccounts"] = {
        Json::array({NameCol(),
                     Col("Secrets", "string",
                         "Secrets is a list of the secrets in the same namespace that pods "
                         "running using this ServiceAccount are allowed to use."),
                     AgeCol()}),
        ServiceAccountCells};
    m["events"] = {
        Json::array(
            {Col("Last Seen", "string",
                 "The time at which the most recent occurrence of this event was recorded."),
             Col("Type", "string", "Type of this event (Normal, Warning)."),
             Col("Reason", "string",
                 "This should be a short, machine understandable string that gives the reason "
                 "for the transition into the object's current status."),
             Col("Object", "string", "The object that this event is about."),
             Col("Subobject", "string", "The field of the object this event is about.", 1),
             Col("Source", "string", "The component reporting this event.", 1),
             Col("Message", "string",
                 "A human-readable description of the status of this "
                 "operation."),
             Col("First Seen", "string", "The time at which the event was first recorded.", 1),
             Col("Count", "string", "The number of times this event has occurred.", 1),
             NameCol(1)}),
        EventCells};
    m["ingresses.networking.k8s.io"] = {
        Json::array(
            {NameCol(),
             Col("Class", "string",
                 "The name of the IngressClass resource that should be used for additional "
                 "configuration"),
             Col("Hosts", "string",
                 "Hosts that incoming requests are matched against before the ingress rule"),
             Col("Address", "string",
                 "Address is a list containing ingress points for the load-balancer"),
             Col("Ports", "string", "Ports of TLS configurations that open"), AgeCol()}),
        IngressCells};
    m["ingressclasses.networking.k8s.io"] = {
        Json::array(
            {NameCol(),
             Col("Controller", "string", "Controller that is responsible for handling this class"),
             Col("Parameters", "string", "A reference to a resource with additional parameters"),
             AgeCol()}),
        IngressClassCells};
    m["persistentvolumes"] = {
        Json::array({NameCol(),
                     Col("Capacity", "string", "capacity is the description of the persistent volume's resources and capacity."),
                     Col("Access Modes", "string", "accessModes contains all ways the volume can be mounted."),
                     Col("Reclaim Policy", "string", "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim."),
                     Col("Status", "string", "phase indicates if a volume is available, bound to a claim, or released by a claim."),
                     Col("Claim", "string", "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim."),
                     Col("StorageClass", "string", "StorageClass of the pv"),
                     Col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv"),
                     Col("Reason", "string", "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI."),
                     AgeCol(),
                     Col("VolumeMode", "string", "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state.", 1)}),
        PersistentVolumeCells};
    m["persistentvolumeclaims"] = {
        Json::array({NameCol(),
                     Col("Status", "string", "phase represents the current phase of PersistentVolumeClaim."),
                     Col("Volume", "string", "volumeName is the binding reference to the PersistentVolume backing this claim."),
                     Col("Capacity", "string", "capacity represents the actual resources of the underlying volume."),
                     Col("Access Modes", "string", "accessModes contains the actual access modes the volume backing the PVC has."),
                     Col("StorageClass", "string", "StorageClass of the pvc"),
                     Col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pvc"),
                     AgeCol(),
                     Col("VolumeMode", "string", "volumeMode defines what type of volume is required by the claim.", 1)}),
        PersistentVolumeClaimCells};
    m["storageclasses.storage.k8s.io"] = {
        Json::array({NameCol(),
                     Col("Provisioner", "string", "provisioner indicates the type of the provisioner."),
                     Col("ReclaimPolicy", "string", "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class."),
                     Col("VolumeBindingMode", "string", "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound."),
                     Col("AllowVolumeExpansion", "string", "allowVolumeExpansion shows whether the storage class allow volume expand."),
                     AgeCol()}),
        StorageClassCells};
    m["podtemplates"] = {
        Json::array({NameCol(), Col("Containers", "string", kContainersDesc),
                     Col("Images", "string", kImagesDesc),
                     Col("Pod Labels", "string", "The labels for the pod template.")}),
        PodTemplateCells};
    m["limitranges"] = {Json::array({NameCol(), Col("Created At", "date", kAgeDesc)}),
                        LimitRangeCells};
    m["resourcequotas"] = {
        Json::array(
            {NameCol(), Col("Age", "string", kAgeDesc),
             Col("Request", "string",
                 "Request represents a minimum amount of cpu/memory that a container may "
                 "consume."),
             Col("Limit", "string",
                 "Limits control the maximum amount of cpu/memory that a container may use "
                 "independent of contention on the node.")}),
        ResourceQuotaCells};
    m["priorityclasses.scheduling.k8s.io"] = {
        Json::array({NameCol(),
                     Col("Value", "integer", "value is the integer value of this priority class. This is the actual priority that pods receive when they have the name of this class in their pod spec."),
                     Col("Global-Default", "boolean", "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class. Only one PriorityClass can be marked as `globalDefault`. However, if more than one PriorityClasses exists with their `globalDefault` field set to true, the smallest value of such global default PriorityClasses will be used as the default priority."),
                     AgeCol(),
                     Col("PreemptionPolicy", "string", "preemptionPolicy is the Policy for preempting pods with lower priority. One of Never, PreemptLowerPriority. Defaults to PreemptLowerPriority if unset.")}),
        PriorityClassCells};
    m["apiservices.apiregistration.k8s.io"] = {
        Json::array({NameCol(),
                     Col("Service", "string",
                         "The reference to the service that hosts this API endpoint."),
                     Col("Available", "string", "Whether this service is available."),
                     AgeCol()}),
        APIServiceCells};
    for (const char* bucket : {"mutatingwebhookconfigurations.admissionregistration.k8s.io",
                               "validatingwebhookconfigurations.admissionregistration.k8s.io"}) {
      m[bucket] = {Json::array({NameCol(),
                                Col("Webhooks", "integer",
                                    "Webhooks is a list of webhooks and the affected resources "
                                    "and operations."),
                                AgeCol()}),
                   WebhookConfigurationCells};
    }
    m["networkpolicies.networking.k8s.io"] = {
        Json::array({NameCol(),
                     Col("Pod-Selector", "string",
                         "Selects the pods to which this NetworkPolicy object applies."),
                     AgeCol()}),
        NetworkPolicyCells};
    for (const char* bucket : {"rolebindings.rbac.authorization.k8s.io",
                               "clusterrolebindings.rbac.authorization.k8s.io"}) {
      m[bucket] = {Json::array({NameCol(),
                                Col("Role", "string",
                                    "RoleRef can reference a Role in the current namespace or a "
                                    "ClusterRole in the global namespace. If the RoleRef cannot "
                                    "be resolved, the Authorizer must return an error. This "
                                    "field is immutable."),
                                AgeCol(), Col("Users", "string", "Users in the roleBinding", 1),
                                Col("Groups", "string", "Groups in the roleBinding", 1),
                                Col("ServiceAccounts", "string",
                                    "ServiceAccounts in the roleBinding", 1)}),
                   RoleBindingCells};
    }
    m["leases.coordination.k8s.io"] = {
        Json::array({NameCol(),
                     Col("Holder", "string",
                         "holderIdentity contains the identity of the holder of a current "
                         "lease."),
                     AgeCol()}),
        LeaseCells};
    return m;
  }();
  return printers;
}

const Printer& PrinterFor(const ResourceInfo& r) {
  static const Printer fallback{Json::array({NameCol(), Col("Created At", "date", kAgeDesc)}),
                                DefaultCells};
  auto it = Printers().find(r.group_resource());
  return it == Printers().end() ? fallback : it->second;
}

// One media range of an Accept header.
struct MediaRange {
  std::string type;                           // "application/json", lower case
  std::map<std::string, std::string> params;  // keys lower case, values unquoted
  double q = 1.0;
};

std::vector<MediaRange> ParseAccept(std::string_view accept) {
  std::vector<MediaRange> out;
  size_t start = 0;
  while (start <= accept.size()) {
    size_t end = accept.find(',', start);
    if (end == std::string_view::npos) end = accept.size();
    std::string_view clause = accept.substr(start, end - start);
    start = end + 1;
    MediaRange range;
    size_t pos = 0;
    bool first = true;
    while (pos <= clause.size()) {
      size_t semi = clause.find(';', pos);
      if (semi == std::string_view::npos) semi = clause.size();
      std::string part = TrimSpace(clause.substr(pos, semi - pos));
      pos = semi + 1;
      if (first) {
        range.type = ToLower(part);
        first = false;
        continue;
      }
      size_t eq = part.find('=');
      if (eq == std::string::npos) continue;
      std::string key = ToLower(TrimSpace(std::string_view(part).substr(0, eq)));
      std::string value = TrimSpace(std::string_view(part).substr(eq + 1));
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
        value = value.substr(1, value.size() - 2);
      }
      if (key == "q") {
        char* parse_end = nullptr;
        double q = std::strtod(value.c_str(), &parse_end);
        range.q = parse_end != value.c_str() ? q : 1.0;
      } else {
        range.params[key] = value;
      }
    }
    if (!range.type.empty() && range.q > 0) out.push_back(std::move(range));
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const MediaRange& a, const MediaRange& b) { return a.q > b.q; });
  return out;
}

}  // namespace

IncludeObject ParseIncludeObject(std::string_view value) {
  if (value.empty() || value == "Metadata") return IncludeObject::kMetadata;
  if (value == "Object") return IncludeObject::kObject;
  if (value == "None") return IncludeObject::kNone;
  throw Error::BadRequest("unrecognized includeObject value: \"" + std::string(value) + "\"");
}

bool WantsTable(std::string_view accept) {
  for (const MediaRange& range : ParseAccept(accept)) {
    auto as = range.params.find("as");
    if (as == range.params.end()) {
      if (range.type == "application/json" || range.type == "application/*" ||
          range.type == "*/*") {
        return false;  // plain JSON comes first
      }
      continue;
    }
    if (range.type != "application/json" || as->second != "Table") continue;
    auto g = range.params.find("g");
    auto v = range.params.find("v");
    if (g == range.params.end() || g->second != "meta.k8s.io") continue;
    if (v == range.params.end() || (v->second != "v1" && v->second != "v1beta1")) continue;
    return true;
  }
  return false;
}

std::string HumanDuration(std::chrono::seconds d) {
  const int64_t seconds = d.count();
  // Up to a second in the future counts as now (clock skew between machines).
  if (seconds < -1) return "<invalid>";
  if (seconds < 0) return "0s";
  if (seconds < 60 * 2) return std::to_string(seconds) + "s";
  const int64_t minutes = seconds / 60;
  if (minutes < 10) {
    const int64_t s = seconds % 60;
    if (s == 0) return std::to_string(minutes) + "m";
    return std::to_string(minutes) + "m" + std::to_string(s) + "s";
  }
  if (minutes < 60 * 3) return std::to_string(minutes) + "m";
  const int64_t hours = seconds / 3600;
  if (hours < 8) {
    const int64_t m = minutes % 60;
    if (m == 0) return std::to_string(hours) + "h";
    return std::to_string(hours) + "h" + std::to_string(m) + "m";
  }
  if (hours < 48) return std::to_string(hours) + "h";
  if (hours < 24 * 8) {
    const int64_t h = hours % 24;
    if (h == 0) return std::to_string(hours / 24) + "d";
    return std::to_string(hours / 24) + "d" + std::to_string(h) + "h";
  }
  if (hours < 24 * 365 * 2) return std::to_string(hours / 24) + "d";
  if (hours < 24 * 365 * 8) {
    const int64_t dy = (hours / 24) % 365;
    if (dy == 0) return std::to_string(hours / 24 / 365) + "y";
    return std::to_string(hours / 24 / 365) + "y" + std::to_string(dy) + "d";
  }
  return std::to_string(hours / 24 / 365) + "y";
}

Json TableColumnDefinitions(const ResourceInfo& r) { return PrinterFor(r).columns; }

Json TableRow(const ResourceInfo& r, const Json& obj, IncludeObject include,
              std::chrono::system_clock::time_point now) {
  Json conditions;
  Json row = {{"cells", PrinterFor(r).cells(obj, now, conditions)}};
  if (!conditions.is_null()) row["conditions"] = std::move(conditions);
  switch (include) {
    case IncludeObject::kNone:
      row["object"] = nullptr;
      break;
    case IncludeObject::kMetadata: {
      const Json& metadata = At(obj, {"metadata"});
      row["object"] = {{"kind", "PartialObjectMetadata"},
                       {"apiVersion", "meta.k8s.io/v1"},
                       {"metadata", metadata.is_object() ? metadata : Json::object()}};
      break;
    }
    case IncludeObject::kObject:
      row["object"] = obj;
      break;
  }
  return row;
}

Json MakeTable(const ResourceInfo& r, const std::vector<Json>& objs,
               const std::string& resource_version, const std::string& continue_token,
               IncludeObject include, std::chrono::system_clock::time_point now,
               bool include_column_definitions) {
  Json metadata = Json::object();
  if (!resource_version.empty()) metadata["resourceVersion"] = resource_version;
  if (!continue_token.empty()) metadata["continue"] = continue_token;
  Json rows = Json::array();
  for (const Json& obj : objs) rows.push_back(TableRow(r, obj, include, now));
  return {{"kind", "Table"},
          {"apiVersion", "meta.k8s.io/v1"},
          {"metadata", std::move(metadata)},
          {"columnDefinitions", include_column_definitions ? TableColumnDefinitions(r) : Json()},
          {"rows", std::move(rows)}};
}

}  // namespace kin::apiserver
