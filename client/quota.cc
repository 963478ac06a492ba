#include "client/quota.h"

#include <algorithm>
#include <set>

#include "client/object.h"
#include "client/quantity.h"

namespace kin::quota {

namespace {

using i128 = __int128;
constexpr i128 kNano = 1000000000;

std::string I128ToString(i128 v) {
  if (v == 0) return "0";
  bool neg = v < 0;
  if (neg) v = -v;
  std::string s;
  while (v > 0) {
    s += static_cast<char>('0' + static_cast<int>(v % 10));
    v /= 10;
  }
  if (neg) s += '-';
  std::reverse(s.begin(), s.end());
  return s;
}

// DecimalSI / DecimalExponent: the mantissa with the exponent a multiple of 3.
std::string DecimalString(i128 nano, bool exponent_form) {
  if (nano == 0) return "0";
  i128 mant = nano;
  int exp = -9;
  while (mant % 10 == 0) {
    mant /= 10;
    ++exp;
  }
  int r = ((exp % 3) + 3) % 3;
  for (int i = 0; i < r; ++i) mant *= 10;
  exp -= r;
  if (exponent_form) {
    return I128ToString(mant) + (exp == 0 ? "" : "e" + std::to_string(exp));
  }
  // Go caps the suffix at E (10^18); larger values keep the digits.
  while (exp > 18) {
    mant *= 1000;
    exp -= 3;
  }
  static const std::map<int, const char*> kSuffix = {
      {-9, "n"}, {-6, "u"}, {-3, "m"}, {0, ""}, {3, "k"},
      {6, "M"},  {9, "G"},  {12, "T"}, {15, "P"}, {18, "E"}};
  return I128ToString(mant) + kSuffix.at(exp);
}

}  // namespace

std::string Amount::String() const {
  if (format == Format::kBinarySI) {
    // Small or fractional values print in DecimalSI, as Go's CanonicalizeBytes.
    if (nano % kNano == 0 && (nano >= 1024 * kNano || nano <= -1024 * kNano)) {
      i128 v = nano / kNano;
      int exp = 0;
      while (exp < 6 && v % 1024 == 0) {
        v /= 1024;
        ++exp;
      }
      static const char* kSuffix[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
      return I128ToString(v) + kSuffix[exp];
    }
    return DecimalString(nano, false);
  }
  return DecimalString(nano, format == Format::kDecimalExponent);
}

std::optional<Amount> Amount::Parse(const std::string& text) {
  auto q = ParseQuantityText(text);
  if (!q) return std::nullopt;
  Amount a;
  a.nano = QuantityScaledCeil(*q, 9);
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.' ||
                             text[i] == '+' || text[i] == '-')) {
    ++i;
  }
  std::string suffix = text.substr(i);
  if (!suffix.empty() && suffix.back() == 'i') {
    a.format = Format::kBinarySI;
  } else if (suffix.size() > 1 && (suffix[0] == 'e' || suffix[0] == 'E')) {
    a.format = Format::kDecimalExponent;
  }
  return a;
}

std::optional<Amount> Amount::FromJson(const Json& v) {
  if (v.is_string()) return Parse(v.get<std::string>());
  if (v.is_number_integer()) return Count(v.get<int64_t>());
  if (v.is_number()) return Parse(v.dump());
  return std::nullopt;
}

int64_t Amount::Milli() const {
  i128 m = nano / 1000000;
  if (nano % 1000000 > 0) ++m;
  return static_cast<int64_t>(std::clamp<i128>(m, INT64_MIN, INT64_MAX));
}

int64_t Amount::Value() const {
  i128 v = nano / kNano;
  if (nano % kNano > 0) ++v;
  return static_cast<int64_t>(std::clamp<i128>(v, INT64_MIN, INT64_MAX));
}

ResourceList FromJson(const Json& list) {
  ResourceList out;
  if (!list.is_object()) return out;
  for (const auto& [k, v] : list.items()) {
    if (auto a = Amount::FromJson(v)) out[k] = *a;
  }
  return out;
}

Json ToJson(const ResourceList& list) {
  Json out = Json::object();
  for (const auto& [k, v] : list) out[k] = v.String();
  return out;
}

ResourceList Add(const ResourceList& a, const ResourceList& b) {
  ResourceList out = a;
  for (const auto& [k, v] : b) {
    auto it = out.find(k);
    if (it == out.end()) {
      out[k] = v;
    } else {
      if (it->second.nano == 0) it->second.format = v.format;
      it->second.nano += v.nano;
    }
  }
  return out;
}

ResourceList Subtract(const ResourceList& a, const ResourceList& b) {
  ResourceList out = a;
  for (const auto& [k, v] : b) {
    auto it = out.find(k);
    if (it == out.end()) {
      out[k] = Amount{-v.nano, v.format};
    } else {
      it->second.nano -= v.nano;
    }
  }
  return out;
}

ResourceList Mask(const ResourceList& list, const std::vector<std::string>& names) {
  ResourceList out;
  for (const auto& n : names) {
    auto it = list.find(n);
    if (it != list.end()) out[n] = it->second;
  }
  return out;
}

std::vector<std::string> Names(const ResourceList& list) {
  std::vector<std::string> out;
  for (const auto& [k, v] : list) out.push_back(k);
  return out;
}

std::vector<std::string> Exceeded(const ResourceList& a, const ResourceList& b) {
  std::vector<std::string> out;
  for (const auto& [k, v] : a) {
    auto it = b.find(k);
    if (it != b.end() && v.nano > it->second.nano) out.push_back(k);
  }
  return out;
}

std::string PrettyPrint(const ResourceList& list) {
  std::string out;
  for (const auto& [k, v] : list) out += (out.empty() ? "" : ",") + k + "=" + v.String();
  return out;
}

std::string CountName(const ResourceInfo& r) {
  return "count/" + r.plural + (r.group.empty() ? "" : "." + r.group);
}

namespace {

bool IsCore(const ResourceInfo& r, const char* plural) {
  return r.group.empty() && r.plural == plural;
}

bool StartsWith(const std::string& s, std::string_view p) { return s.rfind(p, 0) == 0; }
bool EndsWith(const std::string& s, std::string_view p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

// helper.IsNativeResource: no domain, or a kubernetes.io one.
bool IsNative(const std::string& name) {
  auto slash = name.find('/');
  if (slash == std::string::npos) return true;
  std::string domain = name.substr(0, slash);
  return domain == "kubernetes.io" || EndsWith(domain, ".kubernetes.io");
}

const std::set<std::string>& PodResourceNames() {
  static const std::set<std::string> s = {
      "count/pods", "cpu", "memory", "ephemeral-storage", "pods", "requests.cpu",
      "requests.memory", "requests.ephemeral-storage", "limits.cpu", "limits.memory",
      "limits.ephemeral-storage"};
  return s;
}

using object::Field;

}  // namespace

ResourceList PodResources(const Json& spec, const char* which) {
  ResourceList sum;
  const Json& containers = Field(spec, "containers");
  if (containers.is_array()) {
    for (const auto& c : containers) {
      sum = Add(sum, FromJson(Field(Field(c, "resources"), which)));
    }
  }
  const Json& inits = Field(spec, "initContainers");
  if (inits.is_array()) {
    ResourceList sidecars;
    for (const auto& c : inits) {
      ResourceList r = FromJson(Field(Field(c, "resources"), which));
      if (object::Str(c, "restartPolicy") == "Always") {
        sum = Add(sum, r);
        sidecars = Add(sidecars, r);
        continue;
      }
      // An init container runs with the sidecars started before it.
      ResourceList with = Add(r, sidecars);
      for (const auto& [k, v] : with) {
        auto it = sum.find(k);
        if (it == sum.end() || it->second.nano < v.nano) sum[k] = v;
      }
    }
  }
  sum = Add(sum, FromJson(Field(spec, "overhead")));
  return sum;
}

namespace {

// podComputeUsageHelper.
ResourceList PodComputeUsage(const ResourceList& requests, const ResourceList& limits) {
  ResourceList out;
  out["pods"] = Amount::Count(1);
  for (const char* name : {"cpu", "memory", "ephemeral-storage"}) {
    auto rq = requests.find(name);
    if (rq != requests.end()) {
      out[name] = rq->second;
      out[std::string("requests.") + name] = rq->second;
    }
    auto lm = limits.find(name);
    if (lm != limits.end()) out[std::string("limits.") + name] = lm->second;
  }
  for (const auto& [name, v] : requests) {
    if (StartsWith(name, "hugepages-")) {
      out[name] = v;
      out["requests." + name] = v;
    } else if (!IsNative(name)) {
      out["requests." + name] = v;
    }
  }
  return out;
}

bool IsTerminalPod(const Json& pod) {
  std::string phase = object::Str(Field(pod, "status"), "phase");
  return phase == "Succeeded" || phase == "Failed";
}

bool IsTerminatingPod(const Json& pod) {
  const Json& ads = Field(Field(pod, "spec"), "activeDeadlineSeconds");
  return ads.is_number() && ads.get<double>() >= 0;
}

// One scope selector requirement against a pod.
bool PodMatchesScope(const std::string& scope, const std::string& op,
                     const std::vector<std::string>& values, const Json& pod) {
  if (scope == "Terminating") return IsTerminatingPod(pod);
  if (scope == "NotTerminating") return !IsTerminatingPod(pod);
  if (scope == "BestEffort") return IsBestEffort(pod);
  if (scope == "NotBestEffort") return !IsBestEffort(pod);
  if (scope == "PriorityClass") {
    std::string pc = object::Str(Field(pod, "spec"), "priorityClassName");
    bool in = std::find(values.begin(), values.end(), pc) != values.end();
    if (op == "Exists") return !pc.empty();
    if (op == "DoesNotExist") return pc.empty();
    if (op == "In") return !pc.empty() && in;
    if (op == "NotIn") return pc.empty() || !in;
    return false;
  }
  if (scope == "CrossNamespacePodAffinity") {
    const Json& aff = Field(Field(pod, "spec"), "affinity");
    for (const char* kind : {"podAffinity", "podAntiAffinity"}) {
      const Json& a = Field(aff, kind);
      for (const char* when : {"requiredDuringSchedulingIgnoredDuringExecution",
                               "preferredDuringSchedulingIgnoredDuringExecution"}) {
        const Json& terms = Field(a, when);
        if (!terms.is_array()) continue;
        for (const auto& t : terms) {
          const Json& term = t.contains("podAffinityTerm") ? t["podAffinityTerm"] : t;
          const Json& nss = Field(term, "namespaces");
          if ((nss.is_array() && !nss.empty()) || Field(term, "namespaceSelector").is_object()) {
            return true;
          }
        }
      }
    }
    return false;
  }
  return false;
}

const std::map<std::string, std::string>& LegacyCountNames() {
  static const std::map<std::string, std::string> m = {
      {"configmaps", "configmaps"},
      {"secrets", "secrets"},
      {"replicationcontrollers", "replicationcontrollers"},
      {"resourcequotas", "resourcequotas"},
      {"services", "services"},
      {"pods", "pods"},
      {"persistentvolumeclaims", "persistentvolumeclaims"}};
  return m;
}

}  // namespace

bool IsBestEffort(const Json& pod) {
  const Json& spec = Field(pod, "spec");
  for (const char* list : {"containers", "initContainers"}) {
    const Json& cs = Field(spec, list);
    if (!cs.is_array()) continue;
    for (const auto& c : cs) {
      const Json& res = Field(c, "resources");
      for (const char* which : {"requests", "limits"}) {
        const Json& l = Field(res, which);
        if (!l.is_object()) continue;
        for (const auto& [k, v] : l.items()) {
          // Only the compute resources decide the QoS class.
          if (k == "cpu" || k == "memory") return false;
        }
      }
    }
  }
  return true;
}

std::vector<std::string> MatchingResources(const ResourceInfo& r,
                                           const std::vector<std::string>& names) {
  std::vector<std::string> out;
  const std::string count = CountName(r);
  for (const auto& n : names) {
    bool match = n == count;
    if (IsCore(r, "pods")) {
      match = match || PodResourceNames().count(n) || StartsWith(n, "hugepages-") ||
              StartsWith(n, "requests.hugepages-") ||
              (StartsWith(n, "requests.") && !IsNative(n));
    } else if (IsCore(r, "services")) {
      match = match || n == "services" || n == "services.loadbalancers" ||
              n == "services.nodeports";
    } else if (IsCore(r, "persistentvolumeclaims")) {
      match = match || n == "persistentvolumeclaims" || n == "requests.storage" ||
              EndsWith(n, ".storageclass.storage.k8s.io/requests.storage") ||
              EndsWith(n, ".storageclass.storage.k8s.io/persistentvolumeclaims");
    } else if (r.group.empty()) {
      auto it = LegacyCountNames().find(r.plural);
      match = match || (it != LegacyCountNames().end() && n == it->second);
    }
    if (match) out.push_back(n);
  }
  return out;
}

bool MatchesScopes(const Json& quota, const ResourceInfo& r, const Json& obj) {
  const Json& spec = Field(quota, "spec");
  struct Req {
    std::string scope, op;
    std::vector<std::string> values;
  };
  std::vector<Req> reqs;
  const Json& scopes = Field(spec, "scopes");
  if (scopes.is_array()) {
    for (const auto& s : scopes) {
      if (s.is_string()) reqs.push_back({s.get<std::string>(), "Exists", {}});
    }
  }
  const Json& exprs = Field(Field(spec, "scopeSelector"), "matchExpressions");
  if (exprs.is_array()) {
    for (const auto& e : exprs) {
      Req q{object::Str(e, "scopeName"), object::Str(e, "operator"), {}};
      const Json& vals = Field(e, "values");
      if (vals.is_array()) {
        for (const auto& v : vals) {
          if (v.is_string()) q.values.push_back(v.get<std::string>());
        }
      }
      reqs.push_back(std::move(q));
    }
  }
  for (const auto& q : reqs) {
    // Only pods have scopes (other evaluators use MatchesNoScopeFunc).
    if (!IsCore(r, "pods") || !PodMatchesScope(q.scope, q.op, q.values, obj)) return false;
  }
  return true;
}

ResourceList Usage(const ResourceInfo& r, const Json& obj) {
  ResourceList out;
  out[CountName(r)] = Amount::Count(1);
  if (IsCore(r, "pods")) {
    if (IsTerminalPod(obj)) return out;
    const Json& spec = Field(obj, "spec");
    return Add(out, PodComputeUsage(PodResources(spec, "requests"), PodResources(spec, "limits")));
  }
  if (IsCore(r, "services")) {
    out["services"] = Amount::Count(1);
    const Json& spec = Field(obj, "spec");
    std::string type = object::Str(spec, "type");
    const Json& ports = Field(spec, "ports");
    int64_t n = ports.is_array() ? static_cast<int64_t>(ports.size()) : 0;
    if (type == "NodePort") {
      out["services.nodeports"] = Amount::Count(n);
    } else if (type == "LoadBalancer") {
      const Json& alloc = Field(spec, "allocateLoadBalancerNodePorts");
      if (alloc.is_boolean() && !alloc.get<bool>()) {
        int64_t with = 0;
        if (ports.is_array()) {
          for (const auto& p : ports) {
            const Json& np = Field(p, "nodePort");
            if (np.is_number() && np.get<int64_t>() != 0) ++with;
          }
        }
        out["services.nodeports"] = Amount::Count(with);
      } else {
        out["services.nodeports"] = Amount::Count(n);
      }
      out["services.loadbalancers"] = Amount::Count(1);
    }
    return out;
  }
  if (IsCore(r, "persistentvolumeclaims")) {
    out["persistentvolumeclaims"] = Amount::Count(1);
    const Json& spec = Field(obj, "spec");
    std::string cls = object::Str(spec, "storageClassName");
    if (!cls.empty()) {
      out[cls + ".storageclass.storage.k8s.io/persistentvolumeclaims"] = Amount::Count(1);
    }
    // getStorageUsage: the request in whole bytes, or what the resizer
    // allocated when that is more (an expansion being undone still holds it).
    auto whole_bytes = [](Amount a) {
      constexpr __int128 kNano = 1000000000;
      if (a.nano % kNano != 0) a.nano = (a.nano / kNano + (a.nano > 0 ? 1 : 0)) * kNano;
      return a;
    };
    const Json& storage = Field(Field(Field(spec, "resources"), "requests"), "storage");
    std::optional<Amount> requested = Amount::FromJson(storage);
    if (requested) requested = whole_bytes(*requested);
    const Json& allocated = Field(Field(Field(obj, "status"), "allocatedResources"), "storage");
    if (auto a = Amount::FromJson(allocated); requested && a && a->nano > requested->nano) {
      requested = whole_bytes(*a);
    }
    if (auto a = requested) {
      out["requests.storage"] = *a;
      if (!cls.empty()) out[cls + ".storageclass.storage.k8s.io/requests.storage"] = *a;
    }
    return out;
  }
  if (r.group.empty()) {
    auto it = LegacyCountNames().find(r.plural);
    if (it != LegacyCountNames().end()) out[it->second] = Amount::Count(1);
  }
  return out;
}

std::string PodConstraints(const std::vector<std::string>& required, const Json& pod) {
  static const std::set<std::string> kValidation = {"cpu", "memory", "requests.cpu",
                                                    "requests.memory", "limits.cpu",
                                                    "limits.memory"};
  std::set<std::string> req;
  for (const auto& n : required) {
    if (kValidation.count(n)) req.insert(n);
  }
  if (req.empty()) return "";
  std::map<std::string, std::set<std::string>> missing;
  const Json& spec = Field(pod, "spec");
  for (const char* list : {"containers", "initContainers"}) {
    const Json& cs = Field(spec, list);
    if (!cs.is_array()) continue;
    for (const auto& c : cs) {
      const Json& res = Field(c, "resources");
      ResourceList usage =
          PodComputeUsage(FromJson(Field(res, "requests")), FromJson(Field(res, "limits")));
      for (const auto& n : req) {
        if (!usage.count(n)) missing[n].insert(object::Str(c, "name"));
      }
    }
  }
  if (missing.empty()) return "";
  std::string msg;
  for (const auto& [n, containers] : missing) {
    std::string names;
    for (const auto& c : containers) names += (names.empty() ? "" : ",") + c;
    msg += (msg.empty() ? "" : "; ") + n + " for: " + names;
  }
  return "must specify " + msg;
}

std::vector<const ResourceInfo*> ResourcesCounted(const std::vector<std::string>& hard_names) {
  std::vector<const ResourceInfo*> out;
  auto add = [&](const ResourceInfo* r) {
    if (r && std::find(out.begin(), out.end(), r) == out.end()) out.push_back(r);
  };
  for (const char* plural : {"pods", "services", "persistentvolumeclaims", "configmaps", "secrets",
                             "replicationcontrollers", "resourcequotas"}) {
    const ResourceInfo* r = FindResource("", "v1", plural);
    if (r && !MatchingResources(*r, hard_names).empty()) add(r);
  }
  for (const auto& n : hard_names) {
    if (!StartsWith(n, "count/")) continue;
    std::string gr = n.substr(6);
    auto dot = gr.find('.');
    std::string plural = gr.substr(0, dot);
    std::string group = dot == std::string::npos ? "" : gr.substr(dot + 1);
    // Custom resources too (count/widgets.example.com), in any served version.
    for (const ResourceInfo* r : ServedResources()) {
      if (r->plural == plural && r->group == group && r->namespaced) {
        add(r);
        break;
      }
    }
  }
  return out;
}

}  // namespace kin::quota
