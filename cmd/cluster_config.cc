#include "cmd/cluster_config.h"

#include <algorithm>
#include <initializer_list>
#include <regex>
#include <string_view>

#include "base/error.h"
#include "client/quantity.h"
#include "netstack/ipam.h"
#include "netstack/topology.h"

namespace kin::cmd {

namespace {

using netstack::Ipv4Address;
using netstack::Ipv4Cidr;

constexpr const char* kControlPlane = "control-plane";
constexpr const char* kWorker = "worker";
constexpr const char* kControlPlaneLabel = "node-role.kubernetes.io/control-plane";
constexpr const char* kExcludeFromLbLabel =
    "node.kubernetes.io/exclude-from-external-load-balancers";

// A value as Kubernetes messages show it: strings quoted, the rest as JSON.
std::string Repr(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string Quote(std::string_view s) { return Repr(Json(std::string(s))); }

std::string Join(std::string_view path, std::string_view key) {
  if (path.empty()) return std::string(key);
  return std::string(path) + "." + std::string(key);
}

// A DNS-1123 subdomain: dot-separated labels of [a-z0-9-], each starting
// and ending with a letter or digit, at most 63 characters; 253 in all.
bool IsDns1123Subdomain(std::string_view d) {
  if (d.empty() || d.size() > 253) return false;
  size_t start = 0;
  while (start <= d.size()) {
    size_t end = d.find('.', start);
    if (end == std::string_view::npos) end = d.size();
    std::string_view label = d.substr(start, end - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char c : label) {
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
    }
    start = end + 1;
  }
  return true;
}

std::string Index(std::string_view path, size_t i) {
  return std::string(path) + "[" + std::to_string(i) + "]";
}

std::string MapKey(std::string_view path, std::string_view key) {
  return std::string(path) + "[" + std::string(key) + "]";
}

// Collects every problem of a configuration so one run reports them all.
class Problems {
 public:
  void Add(std::string reason, std::string field, std::string message) {
    causes_.push_back({std::move(reason), std::move(message), std::move(field)});
  }
  void InvalidValue(std::string field, const Json& value, std::string_view detail) {
    Add("FieldValueInvalid", std::move(field),
        "Invalid value: " + Repr(value) + ": " + std::string(detail));
  }
  void TypeInvalid(std::string field, const Json& value, std::string_view detail) {
    Add("FieldValueTypeInvalid", std::move(field),
        "Invalid value: " + Repr(value) + ": " + std::string(detail));
  }
  void Unsupported(std::string field, const Json& value,
                   std::initializer_list<std::string_view> supported) {
    std::string message = "Unsupported value: " + Repr(value) + ": supported values: ";
    bool first = true;
    for (std::string_view s : supported) {
      if (!first) message += ", ";
      first = false;
      message += Quote(s);
    }
    Add("FieldValueNotSupported", std::move(field), std::move(message));
  }
  void Required(std::string field, std::string_view detail) {
    Add("FieldValueRequired", std::move(field), "Required value: " + std::string(detail));
  }
  void Unknown(const std::string& field) {
    Add("FieldValueInvalid", field, "unknown field " + Quote(field));
  }
  // The causes of an Invalid error thrown by a parser (e.g. Ipv4Cidr).
  void AddFrom(const Error& e, const std::string& field) {
    if (e.causes().empty()) {
      Add("FieldValueInvalid", field, e.message());
      return;
    }
    for (const Cause& c : e.causes()) causes_.push_back(c);
  }

  bool empty() const { return causes_.empty(); }

  [[noreturn]] void Throw(const std::string& source, const std::string& name) const {
    std::string message;
    if (!source.empty()) message = source + ": ";
    message += "Cluster " + Quote(name) + " is invalid: ";
    if (causes_.size() > 1) message += "[";
    for (size_t i = 0; i < causes_.size(); ++i) {
      if (i > 0) message += ", ";
      message += causes_[i].field + ": " + causes_[i].message;
    }
    if (causes_.size() > 1) message += "]";
    Error e = Error::Invalid(message);
    e.WithDetails("Cluster", name, "kin.dev");
    for (const Cause& c : causes_) e.WithCause(c);
    throw e;
  }

 private:
  std::vector<Cause> causes_;
};

void CheckKnownFields(const Json& obj, std::string_view path,
                      std::initializer_list<std::string_view> known, Problems& problems) {
  for (const auto& [key, value] : obj.items()) {
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      problems.Unknown(Join(path, key));
    }
  }
}

// The member `key` of `parent` when present and non-null.
const Json* Member(const Json& parent, std::string_view key) {
  auto it = parent.find(std::string(key));
  if (it == parent.end() || it->is_null()) return nullptr;
  return &*it;
}

// A member that must be a mapping; null when absent or of the wrong type
// (then reported).
const Json* MappingMember(const Json& parent, std::string_view key, std::string_view path,
                          Problems& problems) {
  const Json* member = Member(parent, key);
  if (member == nullptr) return nullptr;
  if (!member->is_object()) {
    problems.TypeInvalid(Join(path, key), *member, "must be a mapping");
    return nullptr;
  }
  return member;
}

std::optional<std::string> StringMember(const Json& parent, std::string_view key,
                                        std::string_view path, Problems& problems) {
  const Json* member = Member(parent, key);
  if (member == nullptr) return std::nullopt;
  if (!member->is_string()) {
    problems.TypeInvalid(Join(path, key), *member, "must be a string");
    return std::nullopt;
  }
  return member->get<std::string>();
}

// Validation of names and values, as Kubernetes' apimachinery words them.

const std::regex& Dns1123Label() {
  static const std::regex re("[a-z0-9]([-a-z0-9]*[a-z0-9])?");
  return re;
}

std::string ClusterNameError(const std::string& name) {
  if (name.size() > static_cast<size_t>(kMaxClusterNameLength)) {
    return "must be no more than " + std::to_string(kMaxClusterNameLength) +
           " characters (it is part of namespace and interface names)";
  }
  if (!std::regex_match(name, Dns1123Label())) {
    return "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
           "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
           "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
  }
  return "";
}

constexpr const char* kQualifiedNameRegex = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
constexpr const char* kDns1123SubdomainRegex =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";

// A label key: a qualified name, "[prefix/]name".
std::string LabelKeyError(const std::string& key) {
  static const std::regex name_re(kQualifiedNameRegex);
  static const std::regex prefix_re(kDns1123SubdomainRegex);
  std::string prefix, name = key;
  if (size_t slash = key.find('/'); slash != std::string::npos) {
    prefix = key.substr(0, slash);
    name = key.substr(slash + 1);
    if (prefix.empty()) return "prefix part must be non-empty";
    if (prefix.size() > 253) return "prefix part must be no more than 253 characters";
    if (!std::regex_match(prefix, prefix_re)) {
      return "prefix part a lowercase RFC 1123 subdomain must consist of lower case "
             "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
             "character (e.g. 'example.com', regex used for validation is '" +
             std::string(kDns1123SubdomainRegex) + "')";
    }
  }
  if (name.empty()) return "name part must be non-empty";
  if (name.size() > 63) return "name part must be no more than 63 characters";
  if (!std::regex_match(name, name_re)) {
    return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
           "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
           "'123-abc', regex used for validation is '" +
           std::string(kQualifiedNameRegex) + "')";
  }
  return "";
}

std::string LabelValueError(const std::string& value) {
  static const std::regex value_re(kQualifiedNameRegex);
  if (value.empty()) return "";
  if (value.size() > 63) return "must be no more than 63 characters";
  if (!std::regex_match(value, value_re)) {
    return "a valid label must be an empty string or consist of alphanumeric characters, '-', "
           "'_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  "
           "or 'my_value',  or '12345', regex used for validation is '(" +
           std::string(kQualifiedNameRegex) + ")?')";
  }
  return "";
}

// Kubernetes quantity syntax for a capacity: unsigned, a decimal number
// with an optional binary (Ki..Ei), decimal (n..E) or exponent suffix.
bool IsQuantity(const std::string& s) {
  static const std::regex re(
      "\\+?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][-+]?[0-9]+)?");
  return std::regex_match(s, re);
}

bool IsCapacityName(const std::string& name) {
  if (name == "cpu" || name == "memory" || name == "pods" || name == "ephemeral-storage") {
    return true;
  }
  if (name.rfind("hugepages-", 0) == 0) return IsQuantity(name.substr(10));
  // An extended resource: a domain-prefixed name outside kubernetes.io.
  size_t slash = name.find('/');
  if (slash == std::string::npos || !LabelKeyError(name).empty()) return false;
  std::string domain = name.substr(0, slash);
  auto ends_with = [&](std::string_view suffix) {
    return domain.size() >= suffix.size() &&
           domain.compare(domain.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return !(domain == "kubernetes.io" || ends_with(".kubernetes.io"));
}

std::string NodeRoleName(const std::string& role, int ordinal) {
  return ordinal == 1 ? role : role + std::to_string(ordinal);
}

struct FileNode {
  std::string role;
  std::map<std::string, std::string> labels;
  Json capacity = Json::object();
};

void ParseNode(const Json& node, const std::string& path, FileNode& out, Problems& problems) {
  if (!node.is_object()) {
    problems.TypeInvalid(path, node, "must be a mapping");
    return;
  }
  CheckKnownFields(node, path, {"role", "labels", "capacity"}, problems);
  if (std::optional<std::string> role = StringMember(node, "role", path, problems)) {
    if (*role == kControlPlane || *role == kWorker) {
      out.role = *role;
    } else {
      problems.Unsupported(Join(path, "role"), *role, {kControlPlane, kWorker});
    }
  } else if (Member(node, "role") == nullptr) {
    problems.Required(Join(path, "role"), "must be \"control-plane\" or \"worker\"");
  }
  if (const Json* labels = MappingMember(node, "labels", path, problems)) {
    std::string field = Join(path, "labels");
    for (const auto& [key, value] : labels->items()) {
      if (std::string why = LabelKeyError(key); !why.empty()) {
        problems.InvalidValue(field, key, why);
        continue;
      }
      if (!value.is_string()) {
        problems.TypeInvalid(MapKey(field, key), value,
                             "must be a string (quote it: " + Quote(value.dump()) + ")");
        continue;
      }
      std::string text = value.get<std::string>();
      if (std::string why = LabelValueError(text); !why.empty()) {
        problems.InvalidValue(MapKey(field, key), text, why);
        continue;
      }
      out.labels[key] = text;
    }
  }
  if (const Json* capacity = MappingMember(node, "capacity", path, problems)) {
    std::string field = Join(path, "capacity");
    for (const auto& [key, value] : capacity->items()) {
      if (!IsCapacityName(key)) {
        problems.Unsupported(field, key,
                             {"cpu", "memory", "pods", "ephemeral-storage", "hugepages-<size>",
                              "<domain>/<name> (an extended resource)"});
        continue;
      }
      std::string text;
      if (value.is_string()) {
        text = value.get<std::string>();
      } else if (value.is_number()) {
        text = value.dump();
      } else {
        problems.TypeInvalid(MapKey(field, key), value,
                             "must be a quantity such as \"4\" or \"16Gi\"");
        continue;
      }
      if (key == "pods" ? !std::regex_match(text, std::regex("[0-9]+")) : !IsQuantity(text)) {
        problems.InvalidValue(MapKey(field, key), text,
                              key == "pods"
                                  ? "must be a whole number of pods"
                                  : "must be a non-negative quantity (e.g. \"2\", \"500m\", "
                                    "\"16Gi\", \"1e3\")");
        continue;
      }
      out.capacity[key] = text;
    }
  }
}

std::optional<Ipv4Cidr> ParseNetwork(const std::string& text, const std::string& field,
                                     Problems& problems) {
  try {
    return Ipv4Cidr::ParseNetwork(text, field);
  } catch (const Error& e) {
    problems.AddFrom(e, field);
    return std::nullopt;
  }
}

// Host access routes the underlay and the LoadBalancer range on the host
// (cluster_config.h): one the file names must be clear of what the host
// routes already; one it leaves out is the first clear candidate.
void ChooseHostRanges(ClusterConfig& config, bool underlay_given, bool load_balancer_given,
                      const std::vector<TakenRange>& taken, Problems& problems) {
  auto parse = [](const std::string& text) -> std::optional<Ipv4Cidr> {
    try {
      return Ipv4Cidr::Parse(text).Masked();
    } catch (const Error&) {
      return std::nullopt;  // the cluster's own: reported where it is validated
    }
  };
  std::vector<std::pair<Ipv4Cidr, std::string>> busy;
  for (const TakenRange& t : taken) {
    if (auto c = parse(t.cidr); c && c->prefix_len() > 0) busy.emplace_back(*c, t.what);
  }
  // The cluster's other ranges: a chosen range must not overlap them either.
  std::vector<Ipv4Cidr> own;
  for (const std::string* r : {&config.pod_subnet, &config.service_subnet, &config.external_subnet}) {
    if (auto c = parse(*r)) own.push_back(*c);
  }
  auto first_clash = [&](const Ipv4Cidr& c) -> const std::string* {
    for (const auto& [cidr, what] : busy) {
      if (cidr.Overlaps(c)) return &what;
    }
    return nullptr;
  };
  auto settle = [&](std::string& value, bool given, const std::string& field,
                    const std::vector<std::pair<uint32_t, uint32_t>>& blocks) {
    if (given) {
      std::optional<Ipv4Cidr> c = parse(value);
      if (!c) return;
      if (const std::string* what = first_clash(*c)) {
        problems.InvalidValue(field, value,
                              "overlaps " + *what +
                                  " (host access routes it on the host: choose another "
                                  "range, or set networking.hostAccess: false)");
      }
      return;
    }
    for (const auto& [first, count] : blocks) {
      for (uint32_t i = 0; i < count; ++i) {
        Ipv4Cidr candidate(Ipv4Address(first + (i << 8)), 24);
        bool clear = first_clash(candidate) == nullptr &&
                     std::none_of(own.begin(), own.end(),
                                  [&](const Ipv4Cidr& o) { return o.Overlaps(candidate); });
        if (clear) {
          value = candidate.ToString();
          own.push_back(candidate);
          return;
        }
      }
    }
    problems.InvalidValue(field, value,
                          "every candidate range is routed on the host already: name a free "
                          "one, or set networking.hostAccess: false");
  };
  // 172.18.0.0/24 ... 172.31.255.0/24, as docker and kind pick 172.18.0.0/16 first.
  settle(config.underlay, underlay_given, "networking.underlay", {{0xac120000, 14 * 256}});
  // TEST-NET-2, then the benchmarking range 198.18.0.0/15 (RFC 2544): never routed outside.
  settle(config.load_balancer_subnet, load_balancer_given, "networking.loadBalancerSubnet",
         {{0xc6336400, 1}, {0xc6120000, 512}});
}

bool IsCleanAbsolutePath(const std::string& path) {
  if (path.empty() || path[0] != '/' || path.find('\0') != std::string::npos) return false;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    if (path.compare(start, end - start, "..") == 0 && end - start == 2) return false;
    start = end + 1;
  }
  return true;
}

}  // namespace

Json DefaultNodeCapacity() {
  return Json{{"cpu", "2"},
              {"memory", "8Gi"},
              {"pods", "110"},
              {"ephemeral-storage", "100Gi"},
              {"hugepages-2Mi", "0"}};
}

ClusterConfig BuildClusterConfig(const std::string& cluster_name, std::optional<int> nodes_flag,
                                 const std::string& config_text, const std::string& config_source,
                                 const ClusterFlags& flags,
                                 const std::vector<TakenRange>& host_taken) {
  const std::string source = config_source.empty() ? "the configuration" : config_source;
  Json doc;
  try {
    doc = ParseYaml(config_text);
  } catch (const Error& e) {
    throw Error::BadRequest(source + ": " + e.message());
  }

  Problems problems;
  ClusterConfig config;
  std::optional<std::string> file_name;
  std::optional<std::vector<FileNode>> file_nodes;
  std::vector<size_t> file_index;  // a node's index in the file, for field paths
  bool mask_reported = false;      // nodeCidrMaskSize of the wrong type
  bool underlay_given = false, load_balancer_given = false;

  if (!doc.is_null()) {
    if (!doc.is_object()) {
      problems.TypeInvalid("", doc, "must be a mapping (a kin.dev/v1alpha1 Cluster)");
      problems.Throw(config_source, cluster_name);
    }
    CheckKnownFields(doc, "",
                     {"apiVersion", "kind", "name", "nodes", "networking", "images", "kubelet",
                      "nodeLifecycle", "dns", "registries"},
                     problems);
    if (std::optional<std::string> v = StringMember(doc, "apiVersion", "", problems)) {
      if (*v != kClusterConfigApiVersion) {
        problems.Unsupported("apiVersion", *v, {kClusterConfigApiVersion});
      }
    } else if (Member(doc, "apiVersion") == nullptr) {
      problems.Required("apiVersion", "must be " + Quote(kClusterConfigApiVersion));
    }
    if (std::optional<std::string> v = StringMember(doc, "kind", "", problems)) {
      if (*v != "Cluster") problems.Unsupported("kind", *v, {"Cluster"});
    } else if (Member(doc, "kind") == nullptr) {
      problems.Required("kind", "must be \"Cluster\"");
    }
    file_name = StringMember(doc, "name", "", problems);

    if (const Json* nodes = Member(doc, "nodes")) {
      if (!nodes->is_array()) {
        problems.TypeInvalid("nodes", *nodes, "must be a list of nodes");
      } else {
        file_nodes.emplace();
        for (size_t i = 0; i < nodes->size(); ++i) {
          FileNode node;
          ParseNode((*nodes)[i], Index("nodes", i), node, problems);
          file_nodes->push_back(std::move(node));
        }
      }
    }

    if (const Json* net = MappingMember(doc, "networking", "", problems)) {
      CheckKnownFields(*net, "networking",
                       {"podSubnet", "serviceSubnet", "nodeCidrMaskSize", "routing", "underlay",
                        "proxyMode", "externalSubnet", "loadBalancerSubnet", "hostAccess"},
                       problems);
      if (auto v = StringMember(*net, "podSubnet", "networking", problems)) config.pod_subnet = *v;
      if (auto v = StringMember(*net, "serviceSubnet", "networking", problems)) {
        config.service_subnet = *v;
      }
      if (auto v = StringMember(*net, "underlay", "networking", problems)) {
        config.underlay = *v;
        underlay_given = true;
      }
      if (const Json* v = Member(*net, "hostAccess")) {
        if (v->is_boolean()) {
          config.host_access = v->get<bool>();
        } else {
          problems.TypeInvalid("networking.hostAccess", *v, "must be true or false");
        }
      }
      if (auto v = StringMember(*net, "routing", "networking", problems)) config.routing = *v;
      if (auto v = StringMember(*net, "proxyMode", "networking", problems)) config.proxy_mode = *v;
      if (auto v = StringMember(*net, "externalSubnet", "networking", problems)) {
        config.external_subnet = *v;
      }
      if (auto v = StringMember(*net, "loadBalancerSubnet", "networking", problems)) {
        config.load_balancer_subnet = *v;
        load_balancer_given = true;
      }
      if (const Json* mask = Member(*net, "nodeCidrMaskSize")) {
        if (mask->is_number_integer() && *mask >= 0 && *mask <= 32) {
          config.node_cidr_mask_size = mask->get<int>();
        } else {
          problems.TypeInvalid("networking.nodeCidrMaskSize", *mask,
                               "must be a prefix length (an integer such as 24)");
          mask_reported = true;
        }
      }
    }

    if (const Json* images = MappingMember(doc, "images", "", problems)) {
      CheckKnownFields(*images, "images", {"hostMappings"}, problems);
      if (const Json* mappings = MappingMember(*images, "hostMappings", "images", problems)) {
        for (const auto& [image, dir] : mappings->items()) {
          std::string field = MapKey("images.hostMappings", image);
          if (image.empty() || image.find_first_of(" \t\r\n") != std::string::npos) {
            problems.InvalidValue("images.hostMappings", image,
                                  "an image name must be non-empty and contain no whitespace");
            continue;
          }
          if (!dir.is_string()) {
            problems.TypeInvalid(field, dir, "must be a host directory (an absolute path)");
            continue;
          }
          std::string path = dir.get<std::string>();
          if (!IsCleanAbsolutePath(path)) {
            problems.InvalidValue(field, path,
                                  "must be an absolute path of a host directory without \"..\"");
            continue;
          }
          config.image_host_mappings[image] = path;
        }
      }
    }

    if (const Json* registries = MappingMember(doc, "registries", "", problems)) {
      CheckKnownFields(*registries, "registries", {"mirrors", "insecure"}, problems);
      // A registry host: "docker.io", "127.0.0.1:5000" (no scheme, path or space).
      auto bad_host = [](const std::string& h) {
        return h.empty() || h.find_first_of("/ \t\r\n") != std::string::npos;
      };
      if (const Json* mirrors = MappingMember(*registries, "mirrors", "registries", problems)) {
        for (const auto& [host, urls] : mirrors->items()) {
          std::string field = MapKey("registries.mirrors", host);
          if (bad_host(host)) {
            problems.InvalidValue("registries.mirrors", host,
                                  "must be a registry host such as docker.io or host:port");
            continue;
          }
          if (!urls.is_array()) {
            problems.TypeInvalid(field, urls, "must be a list of endpoint URLs");
            continue;
          }
          std::vector<std::string> list;
          for (size_t i = 0; i < urls.size(); ++i) {
            const Json& u = urls[i];
            std::string url = u.is_string() ? u.get<std::string>() : "";
            size_t scheme = url.find("://");
            std::string rest = scheme == std::string::npos ? url : url.substr(scheme + 3);
            if (!u.is_string() ||
                (scheme != std::string::npos && url.rfind("http://", 0) != 0 &&
                 url.rfind("https://", 0) != 0) ||
                bad_host(rest.substr(0, rest.find('/')))) {
              problems.InvalidValue(Index(field, i), u.is_string() ? url : u.dump(),
                                    "must be an endpoint URL: http://host[:port], "
                                    "https://host[:port] or host[:port]");
              continue;
            }
            list.push_back(url);
          }
          config.registry_mirrors[host] = list;
        }
      }
      if (const Json* insecure = Member(*registries, "insecure")) {
        if (!insecure->is_array()) {
          problems.TypeInvalid("registries.insecure", *insecure,
                               "must be a list of registry hosts");
        } else {
          for (size_t i = 0; i < insecure->size(); ++i) {
            const Json& h = (*insecure)[i];
            if (!h.is_string() || bad_host(h.get<std::string>())) {
              problems.InvalidValue(Index("registries.insecure", i),
                                    h.is_string() ? h.get<std::string>() : h.dump(),
                                    "must be a registry host such as 127.0.0.1:5000 (no scheme)");
              continue;
            }
            config.registry_insecure.push_back(h.get<std::string>());
          }
        }
      }
    }

    if (const Json* kubelet = MappingMember(doc, "kubelet", "", problems)) {
      CheckKnownFields(*kubelet, "kubelet",
                       {"crashBackoff", "containerLogMaxSize", "containerLogMaxFiles",
                        "syncFrequency", "tokenMaxAge"},
                       problems);
      if (auto v = StringMember(*kubelet, "crashBackoff", "kubelet", problems)) {
        config.crash_backoff = *v;
      }
      for (auto [key, field] : {std::pair{"syncFrequency", &config.sync_frequency},
                                std::pair{"tokenMaxAge", &config.token_max_age}}) {
        auto v = StringMember(*kubelet, key, "kubelet", problems);
        if (!v) continue;
        bool ok = false;
        try {
          ok = ParseDurationMs(*v, std::string("kubelet.") + key).count() > 0;
        } catch (const Error&) {
        }
        if (ok) {
          *field = *v;
        } else {
          problems.InvalidValue(std::string("kubelet.") + key, *v,
                                "must be a positive duration such as 10s, 2m or 1m30s");
        }
      }
      if (const Json* size = Member(*kubelet, "containerLogMaxSize")) {
        if (size->is_string()) {
          config.container_log_max_size = size->get<std::string>();
        } else if (size->is_number_integer()) {
          config.container_log_max_size = size->dump();
        } else {
          problems.TypeInvalid("kubelet.containerLogMaxSize", *size,
                               "must be a size such as \"10Mi\"");
        }
      }
      if (const Json* files = Member(*kubelet, "containerLogMaxFiles")) {
        if (files->is_number_integer()) {
          config.container_log_max_files = files->get<int>();
        } else {
          problems.TypeInvalid("kubelet.containerLogMaxFiles", *files, "must be an integer");
        }
      }
    }
  }

  if (const Json* lifecycle = MappingMember(doc, "nodeLifecycle", "", problems)) {
    CheckKnownFields(*lifecycle, "nodeLifecycle",
                     {"nodeMonitorGracePeriod", "defaultTolerationSeconds"}, problems);
    if (auto v = StringMember(*lifecycle, "nodeMonitorGracePeriod", "nodeLifecycle", problems)) {
      bool ok = false;
      try {
        ok = ParseDurationMs(*v, "nodeLifecycle.nodeMonitorGracePeriod").count() >= 1000;
      } catch (const Error&) {
      }
      if (ok) {
        config.node_monitor_grace_period = *v;
      } else {
        problems.InvalidValue("nodeLifecycle.nodeMonitorGracePeriod", *v,
                              "must be a duration of at least 1s, such as 40s");
      }
    }
    if (const Json* t = Member(*lifecycle, "defaultTolerationSeconds")) {
      if (t->is_number_integer() && *t >= 0) {
        config.default_toleration_seconds = t->get<int64_t>();
      } else {
        problems.TypeInvalid("nodeLifecycle.defaultTolerationSeconds", *t,
                             "must be a whole number of seconds, 0 or more");
      }
    }
  }

  if (const Json* dns = MappingMember(doc, "dns", "", problems)) {
    CheckKnownFields(*dns, "dns", {"domain", "replicas", "upstreams", "forwardTimeout"}, problems);
    if (auto v = StringMember(*dns, "domain", "dns", problems)) {
      std::string d = *v;
      if (!d.empty() && d.back() == '.') d.pop_back();
      if (IsDns1123Subdomain(d)) {
        config.dns_domain = d;
      } else {
        problems.InvalidValue("dns.domain", *v,
                              "must be a DNS domain of lower-case labels, such as cluster.local");
      }
    }
    if (const Json* r = Member(*dns, "replicas")) {
      if (r->is_number_integer() && *r >= 0 && *r <= 10) {
        config.dns_replicas = r->get<int>();
      } else {
        problems.TypeInvalid("dns.replicas", *r, "must be a whole number from 0 to 10");
      }
    }
    if (const Json* ups = Member(*dns, "upstreams")) {
      if (!ups->is_array() || ups->empty()) {
        problems.TypeInvalid("dns.upstreams", *ups,
                             "must be a list of resolvers' IPv4 addresses (leave it out for the "
                             "host's /etc/resolv.conf)");
      } else {
        for (size_t i = 0; i < ups->size(); ++i) {
          const Json& u = (*ups)[i];
          if (u.is_string() && Ipv4Address::TryParse(u.get<std::string>())) {
            config.dns_upstreams.push_back(u.get<std::string>());
          } else {
            problems.InvalidValue(Index("dns.upstreams", i),
                                  u.is_string() ? u.get<std::string>() : u.dump(),
                                  "must be an IPv4 address");
          }
        }
      }
    }
    if (auto v = StringMember(*dns, "forwardTimeout", "dns", problems)) {
      bool ok = false;
      try {
        auto ms = ParseDurationMs(*v, "dns.forwardTimeout").count();
        ok = ms >= 100 && ms <= 60000;
      } catch (const Error&) {
      }
      if (ok) {
        config.dns_forward_timeout = *v;
      } else {
        problems.InvalidValue("dns.forwardTimeout", *v,
                              "must be a duration from 100ms to 60s, such as 2s");
      }
    }
  }

  // Flags override the file; their problems name the flag.
  std::string crash_backoff_field = "kubelet.crashBackoff";
  std::string log_size_field = "kubelet.containerLogMaxSize";
  std::string log_files_field = "kubelet.containerLogMaxFiles";
  if (flags.crash_backoff) {
    config.crash_backoff = *flags.crash_backoff;
    crash_backoff_field = "--crash-backoff";
  }
  if (flags.container_log_max_size) {
    config.container_log_max_size = *flags.container_log_max_size;
    log_size_field = "--container-log-max-size";
  }
  if (flags.container_log_max_files) {
    config.container_log_max_files = *flags.container_log_max_files;
    log_files_field = "--container-log-max-files";
  }
  if (flags.host_access) config.host_access = *flags.host_access;
  bool backoff_ok = false;
  try {
    backoff_ok = ParseDurationMs(config.crash_backoff, crash_backoff_field).count() > 0;
  } catch (const Error&) {
  }
  if (!backoff_ok) {
    problems.InvalidValue(crash_backoff_field, config.crash_backoff,
                          "must be a positive duration such as 10s, 2m or 1m30s");
  }
  if (auto bytes = ParseQuantityValue(config.container_log_max_size); !bytes || *bytes < 4096) {
    problems.InvalidValue(log_size_field, config.container_log_max_size,
                          "must be a size of at least 4Ki, such as 10Mi");
  }
  if (config.container_log_max_files < 2) {
    problems.InvalidValue(log_files_field, config.container_log_max_files,
                          "must be at least 2 (the current log and one rotated file)");
  }

  // The cluster's name: --name, the file's, or kind's default.
  if (cluster_name.empty()) {
    config.name = file_name.value_or("kin");
  } else {
    config.name = cluster_name;
    if (file_name && *file_name != cluster_name) {
      problems.InvalidValue("name", *file_name,
                            "does not match the cluster name " + Quote(cluster_name) +
                                " given by --name (omit one, or make them equal)");
    }
  }
  if (std::string why = ClusterNameError(config.name); !why.empty()) {
    problems.InvalidValue("name", config.name, why);
  }

  // The nodes, from the file or --nodes; one control-plane by default.
  std::vector<FileNode> nodes;
  if (nodes_flag) {
    if (file_nodes) {
      Error e =
          Error::Invalid("--nodes conflicts with nodes in " + source + " (use one or the other)");
      e.WithCause({"FieldValueInvalid",
                   "Invalid value: " + std::to_string(*nodes_flag) +
                       ": --nodes conflicts with nodes in " + source,
                   "nodes"});
      throw e;
    }
    if (*nodes_flag < 1 || *nodes_flag > kMaxNodes) {
      problems.InvalidValue("--nodes", *nodes_flag,
                            "must be between 1 and " + std::to_string(kMaxNodes));
    } else {
      nodes.resize(*nodes_flag);
      nodes[0].role = kControlPlane;
      for (size_t i = 1; i < nodes.size(); ++i) nodes[i].role = kWorker;
    }
  } else if (file_nodes) {
    nodes = *file_nodes;
    if (nodes.empty()) {
      problems.Required("nodes", "at least one node (a control-plane)");
    } else if (nodes.size() > static_cast<size_t>(kMaxNodes)) {
      problems.Add("FieldValueTooMany", "nodes",
                   "Too many: " + std::to_string(nodes.size()) + ": must have at most " +
                       std::to_string(kMaxNodes) + " items");
    } else {
      bool roles_known = std::all_of(nodes.begin(), nodes.end(),
                                     [](const FileNode& n) { return !n.role.empty(); });
      bool has_control_plane = std::any_of(
          nodes.begin(), nodes.end(), [](const FileNode& n) { return n.role == kControlPlane; });
      if (roles_known && !has_control_plane) {
        problems.Required("nodes", "at least one node must have role \"control-plane\"");
      }
    }
  } else {
    nodes.resize(1);
    nodes[0].role = kControlPlane;
  }
  const size_t node_count = nodes.size();

  // Networking.
  if (config.host_access) {
    ChooseHostRanges(config, underlay_given, load_balancer_given, host_taken, problems);
  }
  std::optional<Ipv4Cidr> pod = ParseNetwork(config.pod_subnet, "networking.podSubnet", problems);
  std::optional<Ipv4Cidr> service =
      ParseNetwork(config.service_subnet, "networking.serviceSubnet", problems);
  std::optional<Ipv4Cidr> underlay = ParseNetwork(config.underlay, "networking.underlay", problems);
  std::optional<Ipv4Cidr> external =
      ParseNetwork(config.external_subnet, "networking.externalSubnet", problems);
  std::optional<Ipv4Cidr> load_balancer =
      ParseNetwork(config.load_balancer_subnet, "networking.loadBalancerSubnet", problems);
  struct Named {
    const char* field;
    const std::optional<Ipv4Cidr>& cidr;
  };
  const Named ranges[] = {{"networking.podSubnet", pod},
                          {"networking.serviceSubnet", service},
                          {"networking.underlay", underlay},
                          {"networking.externalSubnet", external},
                          {"networking.loadBalancerSubnet", load_balancer}};
  constexpr size_t kRanges = sizeof ranges / sizeof ranges[0];
  for (size_t i = 0; i < kRanges; ++i) {
    for (size_t j = i + 1; j < kRanges; ++j) {
      if (ranges[i].cidr && ranges[j].cidr && ranges[i].cidr->Overlaps(*ranges[j].cidr)) {
        problems.InvalidValue(
            ranges[j].field, ranges[j].cidr->ToString(),
            "overlaps " + std::string(ranges[i].field) + " (" + ranges[i].cidr->ToString() + ")");
      }
    }
  }
  if (pod && !mask_reported) {
    int mask = config.node_cidr_mask_size;
    if (mask < pod->prefix_len() || mask > 30) {
      problems.InvalidValue("networking.nodeCidrMaskSize", mask,
                            "must be between the prefix length of networking.podSubnet (" +
                                std::to_string(pod->prefix_len()) + ") and 30");
    } else if (node_count > (uint64_t{1} << (mask - pod->prefix_len()))) {
      problems.InvalidValue("networking.podSubnet", pod->ToString(),
                            "holds " + std::to_string(uint64_t{1} << (mask - pod->prefix_len())) +
                                " /" + std::to_string(mask) + " node blocks, fewer than the " +
                                std::to_string(node_count) + " nodes");
    }
  }
  if (service && service->size() < 16) {
    problems.InvalidValue("networking.serviceSubnet", service->ToString(),
                          "must hold at least 16 addresses (a /28 or larger; the cluster DNS "
                          "is its .10)");
  }
  if (external && external->prefix_len() > 29) {
    // The internet's .1, the external server's .2 and the network's end.
    problems.InvalidValue("networking.externalSubnet", external->ToString(),
                          "must be a /29 or larger");
  }
  if (underlay) {
    // The network address, the network's bridge (.1), the broadcast
    // address and (with host access) the host's last one are not for nodes.
    const uint64_t reserved = config.host_access ? 4 : 3;
    uint64_t room = underlay->size() >= reserved + 1 ? underlay->size() - reserved : 0;
    if (room < node_count) {
      problems.InvalidValue("networking.underlay", underlay->ToString(),
                            "has room for " + std::to_string(room) +
                                " node addresses, fewer than the " + std::to_string(node_count) +
                                " nodes");
    }
  }
  try {
    netstack::ParseRoutingMode(config.routing);
  } catch (const Error&) {
    problems.Unsupported("networking.routing", config.routing, {"routed", "host-gw"});
  }
  if (config.proxy_mode == "ipvs") {
    problems.InvalidValue("networking.proxyMode", config.proxy_mode,
                          "this kernel has no IPVS (CONFIG_IP_VS is not set): use nftables "
                          "(the default) or iptables");
  } else if (config.proxy_mode != "nftables" && config.proxy_mode != "iptables") {
    problems.Unsupported("networking.proxyMode", config.proxy_mode, {"nftables", "iptables"});
  }

  if (!problems.empty()) problems.Throw(config_source, config.name);

  // Filling in: control-planes first, each role in file order.
  std::stable_partition(nodes.begin(), nodes.end(),
                        [](const FileNode& n) { return n.role == kControlPlane; });
  const bool has_workers =
      std::any_of(nodes.begin(), nodes.end(), [](const FileNode& n) { return n.role == kWorker; });
  int control_planes = 0, workers = 0;
  const uint64_t block = uint64_t{1} << (32 - config.node_cidr_mask_size);
  for (size_t i = 0; i < nodes.size(); ++i) {
    const FileNode& in = nodes[i];
    NodeConfig node;
    node.role = in.role;
    const bool is_control_plane = in.role == kControlPlane;
    node.name = "kin-" + config.name + "-" +
                NodeRoleName(in.role, is_control_plane ? ++control_planes : ++workers);
    node.labels = {{"kubernetes.io/hostname", node.name},
                   {"kubernetes.io/os", "linux"},
                   {"kubernetes.io/arch", "amd64"},
                   {"beta.kubernetes.io/os", "linux"},
                   {"beta.kubernetes.io/arch", "amd64"}};
    if (is_control_plane) {
      node.labels[kControlPlaneLabel] = "";
      node.labels[kExcludeFromLbLabel] = "";
      if (has_workers) {
        node.taints.push_back({{"key", kControlPlaneLabel}, {"effect", "NoSchedule"}});
      }
    }
    for (const auto& [key, value] : in.labels) node.labels[key] = value;
    node.capacity = DefaultNodeCapacity();
    node.capacity.update(in.capacity);
    node.ip = underlay->Nth(i + 2).ToString();
    node.pod_cidr = Ipv4Cidr(pod->Nth(i * block), config.node_cidr_mask_size).ToString();
    config.nodes.push_back(std::move(node));
  }
  config.dns_ip = service->Nth(10).ToString();
  return config;
}

Json ClusterConfig::ToJson() const {
  Json j = {{"name", name},
            {"podSubnet", pod_subnet},
            {"serviceSubnet", service_subnet},
            {"dnsIP", dns_ip},
            {"underlay", underlay},
            {"nodeCidrMaskSize", node_cidr_mask_size},
            {"routing", routing},
            {"proxyMode", proxy_mode},
            {"externalSubnet", external_subnet},
            {"loadBalancerSubnet", load_balancer_subnet},
            {"hostAccess", host_access},
            {"imageHostMappings", image_host_mappings},
            {"registries", {{"mirrors", registry_mirrors}, {"insecure", registry_insecure}}},
            {"kubelet",
             {{"crashBackoff", crash_backoff},
              {"containerLogMaxSize", container_log_max_size},
              {"containerLogMaxFiles", container_log_max_files},
              {"syncFrequency", sync_frequency},
              {"tokenMaxAge", token_max_age}}},
            {"nodeLifecycle",
             {{"nodeMonitorGracePeriod", node_monitor_grace_period},
              {"defaultTolerationSeconds", default_toleration_seconds}}},
            {"dns",
             {{"domain", dns_domain},
              {"replicas", dns_replicas},
              {"upstreams", dns_upstreams},
              {"forwardTimeout", dns_forward_timeout}}},
            {"nodes", Json::array()}};
  for (const NodeConfig& n : nodes) j["nodes"].push_back(n.ToJson());
  return j;
}

Json NodeConfig::ToJson() const {
  return {{"name", name},         {"role", role}, {"labels", labels},   {"taints", taints},
          {"capacity", capacity}, {"ip", ip},     {"podCIDR", pod_cidr}};
}

NodeConfig NodeConfig::FromJson(const Json& n) {
  NodeConfig node;
  node.name = n.at("name").get<std::string>();
  node.role = n.at("role").get<std::string>();
  node.labels = n.at("labels").get<std::map<std::string, std::string>>();
  node.taints = n.at("taints");
  node.capacity = n.at("capacity");
  node.ip = n.at("ip").get<std::string>();
  node.pod_cidr = n.at("podCIDR").get<std::string>();
  return node;
}

ClusterConfig ClusterConfig::FromJson(const Json& j) {
  try {
    ClusterConfig c;
    c.name = j.at("name").get<std::string>();
    c.pod_subnet = j.at("podSubnet").get<std::string>();
    c.service_subnet = j.at("serviceSubnet").get<std::string>();
    c.dns_ip = j.at("dnsIP").get<std::string>();
    c.underlay = j.at("underlay").get<std::string>();
    c.node_cidr_mask_size = j.at("nodeCidrMaskSize").get<int>();
    c.routing = j.at("routing").get<std::string>();
    c.proxy_mode = j.value("proxyMode", c.proxy_mode);  // older state: the default
    c.external_subnet = j.value("externalSubnet", c.external_subnet);
    // State written before LoadBalancer Services existed has the default.
    c.load_balancer_subnet = j.value("loadBalancerSubnet", c.load_balancer_subnet);
    // State written before host access existed was made without it.
    c.host_access = j.value("hostAccess", false);
    c.image_host_mappings =
        j.value("imageHostMappings", Json::object()).get<std::map<std::string, std::string>>();
    const Json registries = j.value("registries", Json::object());
    c.registry_mirrors = registries.value("mirrors", Json::object())
                             .get<std::map<std::string, std::vector<std::string>>>();
    c.registry_insecure =
        registries.value("insecure", Json::array()).get<std::vector<std::string>>();
    // State written before the kubelet settings were saved has the defaults.
    const Json kubelet = j.value("kubelet", Json::object());
    c.crash_backoff = kubelet.value("crashBackoff", c.crash_backoff);
    c.container_log_max_size = kubelet.value("containerLogMaxSize", c.container_log_max_size);
    c.container_log_max_files = kubelet.value("containerLogMaxFiles", c.container_log_max_files);
    c.sync_frequency = kubelet.value("syncFrequency", c.sync_frequency);
    c.token_max_age = kubelet.value("tokenMaxAge", c.token_max_age);
    const Json lifecycle = j.value("nodeLifecycle", Json::object());
    c.node_monitor_grace_period =
        lifecycle.value("nodeMonitorGracePeriod", c.node_monitor_grace_period);
    c.default_toleration_seconds =
        lifecycle.value("defaultTolerationSeconds", c.default_toleration_seconds);
    // State written before cluster DNS existed has its defaults.
    const Json dns = j.value("dns", Json::object());
    c.dns_domain = dns.value("domain", c.dns_domain);
    c.dns_replicas = dns.value("replicas", c.dns_replicas);
    c.dns_upstreams = dns.value("upstreams", Json::array()).get<std::vector<std::string>>();
    c.dns_forward_timeout = dns.value("forwardTimeout", c.dns_forward_timeout);
    for (const Json& n : j.at("nodes")) c.nodes.push_back(NodeConfig::FromJson(n));
    return c;
  } catch (const Json::exception& e) {
    throw Error::Invalid(std::string("malformed cluster configuration state: ") + e.what());
  }
}

std::chrono::milliseconds ClusterConfig::SyncFrequency() const {
  return ParseDurationMs(sync_frequency, "kubelet.syncFrequency");
}

std::chrono::milliseconds ClusterConfig::TokenMaxAge() const {
  return ParseDurationMs(token_max_age, "kubelet.tokenMaxAge");
}

std::chrono::milliseconds ClusterConfig::CrashBackoff() const {
  return ParseDurationMs(crash_backoff, "kubelet.crashBackoff");
}

int64_t ClusterConfig::ContainerLogMaxBytes() const {
  auto bytes = ParseQuantityValue(container_log_max_size);
  if (!bytes || *bytes < 4096) {
    throw Error::Invalid("kubelet.containerLogMaxSize: invalid size \"" + container_log_max_size +
                         "\"");
  }
  return *bytes;
}

std::chrono::milliseconds ClusterConfig::NodeMonitorGracePeriod() const {
  return ParseDurationMs(node_monitor_grace_period, "nodeLifecycle.nodeMonitorGracePeriod");
}

std::chrono::milliseconds ClusterConfig::DnsForwardTimeout() const {
  return ParseDurationMs(dns_forward_timeout, "dns.forwardTimeout");
}

std::chrono::seconds ParseDuration(const std::string& text, const std::string& flag) {
  auto ms = ParseDurationMs(text, flag);
  return std::chrono::seconds((ms.count() + 999) / 1000);
}

std::chrono::milliseconds ParseDurationMs(const std::string& text, const std::string& flag) {
  double total_ms = 0;
  size_t i = 0;
  auto bad = [&] {
    return Error::BadRequest("invalid value \"" + text + "\" for " + flag +
                             ": want a duration such as 90s, 2m or 1m30s");
  };
  if (text.empty()) throw bad();
  while (i < text.size()) {
    size_t j = i;
    while (j < text.size() && (isdigit(static_cast<unsigned char>(text[j])) || text[j] == '.')) ++j;
    if (j == i) throw bad();
    double v = 0;
    try {
      v = std::stod(text.substr(i, j - i));
    } catch (const std::exception&) {
      throw bad();  // "." alone, or out of range
    }
    size_t k = j;
    while (k < text.size() && isalpha(static_cast<unsigned char>(text[k]))) ++k;
    std::string unit = text.substr(j, k - j);
    if (unit == "h")
      total_ms += v * 3600000;
    else if (unit == "m")
      total_ms += v * 60000;
    else if (unit == "s")
      total_ms += v * 1000;
    else if (unit == "ms")
      total_ms += v;
    else
      throw bad();
    i = k;
  }
  if (total_ms > 1e12) throw bad();  // beyond any sensible wait; keeps the cast defined
  return std::chrono::milliseconds(static_cast<long>(total_ms + 0.5));
}

}  // namespace kin::cmd
