#include "runtime/pod_spec.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <set>
#include <sstream>
#include <utility>

#include "base/error.h"
#include "base/strings.h"
#include "client/quantity.h"

namespace kin {
namespace {

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr size_t kMaxHostnameLen = 63;
constexpr size_t kMaxDnsNameservers = 3;
constexpr size_t kMaxDnsSearchPaths = 32;
constexpr size_t kMaxDnsSearchListChars = 2048;

// The member `key` of `obj`, or nullptr when obj is not an object or lacks it.
const Json* Member(const Json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string StringAt(const Json& obj, const char* key) {
  const Json* v = Member(obj, key);
  return v && v->is_string() ? v->get<std::string>() : std::string();
}

const Json& Empty() {
  static const Json empty = Json::object();
  return empty;
}

const Json& ObjectAt(const Json& obj, const char* key) {
  const Json* v = Member(obj, key);
  return v && v->is_object() ? *v : Empty();
}

std::vector<std::string> StringsAt(const Json& obj, const char* key) {
  std::vector<std::string> out;
  const Json* v = Member(obj, key);
  if (!v || !v->is_array()) return out;
  for (const auto& s : *v) {
    if (s.is_string()) out.push_back(s.get<std::string>());
  }
  return out;
}

std::optional<bool> BoolAt(const Json& obj, const char* key) {
  const Json* v = Member(obj, key);
  if (!v || !v->is_boolean()) return std::nullopt;
  return v->get<bool>();
}

std::optional<int64_t> IntAt(const Json& obj, const char* key) {
  const Json* v = Member(obj, key);
  if (!v || !v->is_number_integer()) return std::nullopt;
  return v->get<int64_t>();
}

std::string Namespace(const Json& pod) {
  std::string ns = StringAt(ObjectAt(pod, "metadata"), "namespace");
  return ns.empty() ? "default" : ns;
}

std::vector<std::string> OmitDuplicates(const std::vector<std::string>& in) {
  std::set<std::string> seen;
  std::vector<std::string> out;
  for (const auto& s : in) {
    if (seen.insert(s).second) out.push_back(s);
  }
  return out;
}

// An environment in order of first definition; a redefinition replaces the
// value in place (containerd's replaceOrAppendEnvValues).
class OrderedEnv {
 public:
  void Set(const std::string& name, const std::string& value) {
    auto it = index_.find(name);
    if (it != index_.end()) {
      vars_[it->second].second = value;
      return;
    }
    index_[name] = vars_.size();
    vars_.emplace_back(name, value);
  }
  void SetEntry(const std::string& entry) {
    size_t eq = entry.find('=');
    if (eq == std::string::npos) {
      Set(entry, "");
    } else {
      Set(entry.substr(0, eq), entry.substr(eq + 1));
    }
  }
  const std::string* Get(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &vars_[it->second].second;
  }
  bool Has(const std::string& name) const { return index_.count(name) != 0; }
  const std::vector<std::pair<std::string, std::string>>& vars() const { return vars_; }
  std::vector<std::string> Entries() const {
    std::vector<std::string> out;
    for (const auto& [k, v] : vars_) out.push_back(k + "=" + v);
    return out;
  }

 private:
  std::vector<std::pair<std::string, std::string>> vars_;
  std::map<std::string, size_t> index_;
};

// k8s.io/apimachinery/pkg/util/validation.IsEnvVarName.
bool IsEnvVarName(const std::string& s) {
  if (s.empty()) return false;
  auto ok = [](char c, bool first) {
    return std::isalpha(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' ||
           (!first && std::isdigit(static_cast<unsigned char>(c)));
  };
  for (size_t i = 0; i < s.size(); ++i) {
    if (!ok(s[i], i == 0)) return false;
  }
  return true;
}

std::string EnvVariableName(const std::string& s) {
  std::string out = s;
  for (char& c : out)
    c = c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

bool IsServiceIPSet(const Json& svc) {
  std::string ip = StringAt(ObjectAt(svc, "spec"), "clusterIP");
  return !ip.empty() && ip != "None";
}

// envvars.FromServices for one service.
void AppendServiceVars(const Json& svc, std::vector<std::string>& out) {
  const Json& spec = ObjectAt(svc, "spec");
  const Json* ports = Member(spec, "ports");
  if (!ports || !ports->is_array() || ports->empty()) return;
  std::string ip = StringAt(spec, "clusterIP");
  std::string prefix = EnvVariableName(StringAt(ObjectAt(svc, "metadata"), "name"));
  auto port_of = [](const Json& p) { return std::to_string(IntAt(p, "port").value_or(0)); };
  out.push_back(prefix + "_SERVICE_HOST=" + ip);
  std::string port_var = prefix + "_SERVICE_PORT";
  out.push_back(port_var + "=" + port_of((*ports)[0]));
  for (const auto& p : *ports) {
    std::string name = StringAt(p, "name");
    if (!name.empty()) out.push_back(port_var + "_" + EnvVariableName(name) + "=" + port_of(p));
  }
  std::string host = ip.find(':') != std::string::npos ? "[" + ip + "]" : ip;
  bool first = true;
  for (const auto& p : *ports) {
    std::string protocol = StringAt(p, "protocol");
    if (protocol.empty()) protocol = "TCP";
    std::string url = Lower(protocol) + "://" + host + ":" + port_of(p);
    if (first) out.push_back(prefix + "_PORT=" + url);
    first = false;
    std::string pp = prefix + "_PORT_" + port_of(p) + "_" + Upper(protocol);
    out.push_back(pp + "=" + url);
    out.push_back(pp + "_PROTO=" + Lower(protocol));
    out.push_back(pp + "_PORT=" + port_of(p));
    out.push_back(pp + "_ADDR=" + ip);
  }
}

const Json* FindContainer(const Json& pod, const std::string& name) {
  const Json& spec = ObjectAt(pod, "spec");
  for (const char* list : {"containers", "initContainers"}) {
    const Json* cs = Member(spec, list);
    if (!cs || !cs->is_array()) continue;
    for (const auto& c : *cs) {
      if (StringAt(c, "name") == name) return &c;
    }
  }
  return nullptr;
}

std::string QuantityString(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number()) return v.dump();
  return {};
}

// ConfigMaps and Secrets fetched once per container, as kubelet caches them.
class SourceCache {
 public:
  SourceCache(const std::string& ns, const EnvContext& ctx) : ns_(ns), ctx_(ctx) {}

  // nullptr when missing and optional; throws NotFound when missing otherwise.
  const Json* Get(const std::string& kind, const std::string& name, bool optional) {
    auto key = std::make_pair(kind, name);
    auto it = cache_.find(key);
    if (it == cache_.end()) {
      std::optional<Json> obj;
      if (ctx_.lookup) obj = ctx_.lookup(kind, ns_, name);
      it = cache_.emplace(key, std::move(obj)).first;
    }
    if (it->second) return &*it->second;
    if (optional) return nullptr;
    throw Error::NotFound(Lower(kind) + " " + GoQuote(name) + " not found")
        .WithDetails(Lower(kind), name);
  }

  // The string data of a ConfigMap or (decoded) Secret.
  std::map<std::string, std::string> Data(const std::string& kind, const Json& obj) const {
    std::map<std::string, std::string> out;
    const Json& data = ObjectAt(obj, "data");
    for (auto it = data.begin(); it != data.end(); ++it) {
      if (!it->is_string()) continue;
      std::string v = it->get<std::string>();
      if (kind == "Secret") {
        auto decoded = Base64Decode(v);
        if (!decoded) {
          throw Error::Invalid("secret " + GoQuote(StringAt(ObjectAt(obj, "metadata"), "name")) +
                               ": data[" + it.key() + "] is not valid base64");
        }
        v = std::move(*decoded);
      }
      out[it.key()] = std::move(v);
    }
    return out;
  }

 private:
  std::string ns_;
  const EnvContext& ctx_;
  std::map<std::pair<std::string, std::string>, std::optional<Json>> cache_;
};

std::optional<std::pair<int64_t, std::optional<int64_t>>> NumericUser(const std::string& user) {
  auto number = [](const std::string& s) -> std::optional<int64_t> {
    if (s.empty() || s.size() > 10 ||
        !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return std::nullopt;
    }
    return std::stoll(s);
  };
  size_t colon = user.find(':');
  auto uid = number(user.substr(0, colon));
  if (!uid) return std::nullopt;
  if (colon == std::string::npos) return std::make_pair(*uid, std::optional<int64_t>());
  auto gid = number(user.substr(colon + 1));
  if (!gid) return std::nullopt;
  return std::make_pair(*uid, gid);
}

// Host resolv.conf as kubelet's parseResolvConf reads it.
struct ResolvConf {
  std::vector<std::string> servers, searches, options;
};

// Options keyed by name ("ndots:5" -> "ndots"); a later one replaces the
// earlier one in place (kubelet uses a Go map; its order is random).
void MergeOption(std::vector<std::string>& options, const std::string& option) {
  std::string name = option.substr(0, option.find(':'));
  for (auto& o : options) {
    if (o.substr(0, o.find(':')) == name) {
      o = option;
      return;
    }
  }
  options.push_back(option);
}

ResolvConf ParseResolvConf(const std::string& text) {
  ResolvConf rc;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && (line[0] == '#' || line[0] == ';')) continue;
    std::istringstream words(line);
    std::vector<std::string> fields;
    for (std::string w; words >> w;) fields.push_back(w);
    if (fields.empty()) continue;
    if (fields[0] == "nameserver" && fields.size() >= 2) {
      rc.servers.push_back(fields[1]);
    } else if (fields[0] == "search") {
      rc.searches.clear();  // the last search line wins
      for (size_t i = 1; i < fields.size(); ++i) {
        if (fields[i] == ".") continue;
        std::string s = fields[i];
        if (s.ends_with('.')) s.pop_back();
        rc.searches.push_back(s);
      }
    } else if (fields[0] == "options") {
      for (size_t i = 1; i < fields.size(); ++i) MergeOption(rc.options, fields[i]);
    }
  }
  return rc;
}

}  // namespace

std::string PodHostname(const Json& pod) {
  std::string hostname = StringAt(ObjectAt(pod, "spec"), "hostname");
  if (hostname.empty()) hostname = StringAt(ObjectAt(pod, "metadata"), "name");
  if (hostname.size() <= kMaxHostnameLen) return hostname;
  hostname.resize(kMaxHostnameLen);
  while (!hostname.empty() && (hostname.back() == '-' || hostname.back() == '.')) {
    hostname.pop_back();
  }
  return hostname;
}

std::string PodFqdn(const Json& pod, const std::string& cluster_domain) {
  std::string subdomain = StringAt(ObjectAt(pod, "spec"), "subdomain");
  if (subdomain.empty()) return "";
  return PodHostname(pod) + "." + subdomain + "." + Namespace(pod) + ".svc." + cluster_domain;
}

std::string RenderEtcHosts(const Json& pod, const std::string& pod_ip,
                           const std::string& cluster_domain) {
  std::string out =
      "# Kubernetes-managed hosts file.\n"
      "127.0.0.1\tlocalhost\n"
      "::1\tlocalhost ip6-localhost ip6-loopback\n"
      "fe00::0\tip6-localnet\n"
      "fe00::0\tip6-mcastprefix\n"
      "fe00::1\tip6-allnodes\n"
      "fe00::2\tip6-allrouters\n";
  std::string hostname = PodHostname(pod);
  std::string fqdn = PodFqdn(pod, cluster_domain);
  if (!pod_ip.empty()) {
    out += fqdn.empty() ? pod_ip + "\t" + hostname + "\n"
                        : pod_ip + "\t" + fqdn + "\t" + hostname + "\n";
  }
  const Json* aliases = Member(ObjectAt(pod, "spec"), "hostAliases");
  if (aliases && aliases->is_array() && !aliases->empty()) {
    out += "\n# Entries added by HostAliases.\n";
    for (const auto& alias : *aliases) {
      out += StringAt(alias, "ip") + "\t" + Join(StringsAt(alias, "hostnames"), "\t") + "\n";
    }
  }
  return out;
}

std::string RenderResolvConf(const Json& pod, const DnsSettings& dns) {
  const Json& spec = ObjectAt(pod, "spec");
  std::string policy = StringAt(spec, "dnsPolicy");
  bool host_network = BoolAt(spec, "hostNetwork").value_or(false);
  enum { kNone, kCluster, kHost } type = kCluster;
  if (policy == "None") {
    type = kNone;
  } else if (policy == "Default" ||
             ((policy == "ClusterFirst" || policy.empty()) && host_network)) {
    type = kHost;
  }

  ResolvConf rc;
  if (type != kNone) rc = ParseResolvConf(dns.host_resolv_conf);
  if (type == kCluster && !dns.cluster_dns.empty()) {
    rc.servers = dns.cluster_dns;
    if (!dns.cluster_domain.empty()) {
      const std::string& d = dns.cluster_domain;
      std::vector<std::string> searches = {Namespace(pod) + ".svc." + d, "svc." + d, d};
      searches.insert(searches.end(), rc.searches.begin(), rc.searches.end());
      rc.searches = OmitDuplicates(searches);
    }
    rc.options = {"ndots:5"};
  }
  // Without cluster DNS a ClusterFirst pod gets the host's settings, as in kubelet.

  if (const Json* config = Member(spec, "dnsConfig"); config && config->is_object()) {
    auto add = [](std::vector<std::string>& to, const std::vector<std::string>& more) {
      to.insert(to.end(), more.begin(), more.end());
      to = OmitDuplicates(to);
    };
    add(rc.servers, StringsAt(*config, "nameservers"));
    add(rc.searches, StringsAt(*config, "searches"));
    if (const Json* options = Member(*config, "options"); options && options->is_array()) {
      for (const auto& o : *options) {
        std::string name = StringAt(o, "name");
        std::string value = StringAt(o, "value");
        MergeOption(rc.options, value.empty() ? name : name + ":" + value);
      }
    }
  }

  // formDNSConfigFitsLimits.
  if (rc.servers.size() > kMaxDnsNameservers) rc.servers.resize(kMaxDnsNameservers);
  if (rc.searches.size() > kMaxDnsSearchPaths) rc.searches.resize(kMaxDnsSearchPaths);
  while (!rc.searches.empty() && Join(rc.searches, " ").size() > kMaxDnsSearchListChars) {
    rc.searches.pop_back();
  }

  // containerd's resolv.conf layout.
  std::string out;
  if (!rc.searches.empty()) out += "search " + Join(rc.searches, " ") + "\n";
  for (const auto& s : rc.servers) out += "nameserver " + s + "\n";
  if (!rc.options.empty()) out += "options " + Join(rc.options, " ") + "\n";
  return out;
}

std::vector<std::string> ServiceEnvVars(const Json& pod, const Json& services) {
  const Json* list = &services;
  if (services.is_object()) list = Member(services, "items");
  std::string ns = Namespace(pod);
  bool links = BoolAt(ObjectAt(pod, "spec"), "enableServiceLinks").value_or(true);
  std::map<std::string, const Json*> by_name;
  if (list && list->is_array()) {
    for (const auto& svc : *list) {
      if (!IsServiceIPSet(svc)) continue;
      const Json& meta = ObjectAt(svc, "metadata");
      std::string name = StringAt(meta, "name");
      std::string svc_ns = StringAt(meta, "namespace");
      if (svc_ns.empty()) svc_ns = "default";
      if (svc_ns == "default" && name == "kubernetes") {
        by_name.emplace(name, &svc);  // the first one wins, as in kubelet
      } else if (svc_ns == ns && links) {
        by_name[name] = &svc;
      }
    }
  }
  std::vector<std::string> vars;
  for (const auto& [name, svc] : by_name) AppendServiceVars(*svc, vars);
  OrderedEnv env;  // kubelet collects them in a map: a repeated name keeps the last value
  for (const auto& v : vars) env.SetEntry(v);
  return env.Entries();
}

std::string ExpandReferences(const std::string& input,
                             const std::function<std::string(const std::string&)>& mapping) {
  std::string out;
  size_t checkpoint = 0;
  for (size_t cursor = 0; cursor < input.size(); ++cursor) {
    if (input[cursor] != '$' || cursor + 1 >= input.size()) continue;
    out.append(input, checkpoint, cursor - checkpoint);
    std::string_view rest(input.data() + cursor + 1, input.size() - cursor - 1);
    size_t advance = 1;
    if (rest[0] == '$') {
      out += '$';
    } else if (rest[0] == '(') {
      size_t close = rest.find(')', 1);
      if (close == std::string_view::npos) {
        out += "$(";
      } else {
        out += mapping(std::string(rest.substr(1, close - 1)));
        advance = close + 1;
      }
    } else {
      out += '$';
      out += rest[0];
    }
    cursor += advance;
    checkpoint = cursor + 1;
  }
  if (checkpoint < input.size()) out.append(input, checkpoint);
  return out;
}

std::string ExpandEnvReferences(const std::string& input, const std::vector<std::string>& env) {
  return ExpandReferences(input, [&env](const std::string& name) {
    for (const auto& e : env) {
      if (e.size() > name.size() && e.compare(0, name.size(), name) == 0 && e[name.size()] == '=') {
        return e.substr(name.size() + 1);
      }
    }
    return "$(" + name + ")";
  });
}

std::string FormatDownwardMap(const Json& map) {
  std::vector<std::string> lines;
  if (map.is_object()) {
    for (auto it = map.begin(); it != map.end(); ++it) {  // nlohmann objects iterate sorted
      std::string v = it->is_string() ? it->get<std::string>() : it->dump();
      lines.push_back(it.key() + "=" + GoQuote(v));
    }
  }
  return Join(lines, "\n");
}

std::string PodFieldValue(const Json& pod, const std::string& path, const FieldContext& ctx) {
  const Json& meta = ObjectAt(pod, "metadata");
  const Json& spec = ObjectAt(pod, "spec");
  const Json& status = ObjectAt(pod, "status");
  auto either = [](const std::string& preferred, const std::string& fallback) {
    return preferred.empty() ? fallback : preferred;
  };
  if (path == "metadata.name") return StringAt(meta, "name");
  if (path == "metadata.namespace") return Namespace(pod);
  if (path == "metadata.uid") return StringAt(meta, "uid");
  if (path == "metadata.labels") return FormatDownwardMap(ObjectAt(meta, "labels"));
  if (path == "metadata.annotations") return FormatDownwardMap(ObjectAt(meta, "annotations"));
  if (path == "spec.nodeName") return either(StringAt(spec, "nodeName"), ctx.node_name);
  if (path == "spec.serviceAccountName") return StringAt(spec, "serviceAccountName");
  if (path == "status.hostIP" || path == "status.hostIPs") {
    return either(ctx.host_ip, StringAt(status, "hostIP"));
  }
  if (path == "status.podIP" || path == "status.podIPs") {
    return either(ctx.pod_ip, StringAt(status, "podIP"));
  }
  // fieldpath.SplitMaybeSubscriptedPath: metadata.labels['key'].
  if (path.size() > 2 && path.ends_with("']")) {
    std::string s = path.substr(0, path.size() - 2);
    size_t open = s.find("['");
    if (open != std::string::npos && open > 0) {
      std::string base = s.substr(0, open), key = s.substr(open + 2);
      if (base == "metadata.labels") return StringAt(ObjectAt(meta, "labels"), key.c_str());
      if (base == "metadata.annotations") {
        return StringAt(ObjectAt(meta, "annotations"), key.c_str());
      }
    }
  }
  throw Error::Invalid("unsupported fieldPath: " + path);
}

std::string ContainerResourceValue(const Json& pod, const Json& ref, const Json& default_container,
                                   const NodeAllocatable& allocatable) {
  const Json* target = &default_container;
  std::string cname = StringAt(ref, "containerName");
  if (!cname.empty() || !default_container.is_object()) {
    target = FindContainer(pod, cname);
    if (!target) throw Error::Invalid("container " + cname + " not found");
  }
  std::string resource = StringAt(ref, "resource");
  size_t dot = resource.find('.');
  std::string kind = dot == std::string::npos ? "" : resource.substr(0, dot);
  std::string name = dot == std::string::npos ? "" : resource.substr(dot + 1);
  if ((kind != "limits" && kind != "requests") ||
      (name != "cpu" && name != "memory" && name != "ephemeral-storage" &&
       !name.starts_with("hugepages-"))) {
    throw Error::Invalid("unsupported container resource : " + resource);
  }
  const bool cpu = name == "cpu";
  auto parse = [cpu](const std::string& text) {
    return cpu ? ParseQuantityMilli(text) : ParseQuantityValue(text);
  };
  const Json& resources = ObjectAt(*target, "resources");
  const Json* q = Member(ObjectAt(resources, kind.c_str()), name.c_str());
  // API defaulting copies a limit into an unset request.
  if (!q && kind == "requests") q = Member(ObjectAt(resources, "limits"), name.c_str());
  int64_t amount = 0;
  if (q) {
    std::string text = QuantityString(*q);
    auto parsed = parse(text);
    if (!parsed) throw Error::Invalid("invalid quantity " + GoQuote(text) + " for " + resource);
    amount = *parsed;
  } else if (kind == "limits") {
    amount = cpu                           ? allocatable.millicpu
             : name == "memory"            ? allocatable.memory
             : name == "ephemeral-storage" ? allocatable.ephemeral_storage
                                           : 0;
  }
  int64_t divisor = 0;
  if (const Json* d = Member(ref, "divisor")) {
    std::string text = QuantityString(*d);
    if (!text.empty()) {
      auto parsed = parse(text);
      if (!parsed) throw Error::Invalid("invalid divisor " + GoQuote(text) + " for " + resource);
      divisor = *parsed;
    }
  }
  if (divisor == 0) divisor = cpu ? 1000 : 1;
  // float64 division, as kubelet's convertResource*ToString.
  auto value =
      static_cast<int64_t>(std::ceil(static_cast<double>(amount) / static_cast<double>(divisor)));
  return std::to_string(value);
}

namespace {

struct ResolvedEnv {
  std::vector<std::string> all;      // what the container gets
  std::vector<std::string> kubelet;  // kubelet's part only: what $(VAR) in command/args sees
};

ResolvedEnv ResolveEnv(const Json& pod, const Json& container, const ImageConfig& image,
                       const EnvContext& ctx) {
  const std::string ns = Namespace(pod);
  OrderedEnv result;
  result.Set("HOSTNAME", PodHostname(pod));
  result.Set("PATH", kDefaultPath);
  for (const auto& e : image.env) result.SetEntry(e);

  OrderedEnv service_env;
  for (const auto& e : ctx.service_env) service_env.SetEntry(e);

  SourceCache sources(ns, ctx);
  OrderedEnv pod_env;  // kubelet's tmpEnv: envFrom, then env

  if (const Json* from = Member(container, "envFrom"); from && from->is_array()) {
    for (const auto& source : *from) {
      std::string prefix = StringAt(source, "prefix");
      for (const char* kind : {"ConfigMap", "Secret"}) {
        const Json* ref =
            Member(source, kind == std::string("ConfigMap") ? "configMapRef" : "secretRef");
        if (!ref) continue;
        bool optional = BoolAt(*ref, "optional").value_or(false);
        const Json* obj = sources.Get(kind, StringAt(*ref, "name"), optional);
        if (!obj) continue;
        for (const auto& [k, v] : sources.Data(kind, *obj)) {
          std::string name = prefix + k;
          if (!IsEnvVarName(name)) continue;  // kubelet skips these (with an event)
          pod_env.Set(name, v);
        }
      }
    }
  }

  auto mapping = [&](const std::string& name) {
    if (const std::string* v = pod_env.Get(name)) return *v;
    if (const std::string* v = service_env.Get(name)) return *v;
    return "$(" + name + ")";  // MappingFuncFor keeps an unknown reference as written
  };

  if (const Json* env = Member(container, "env"); env && env->is_array()) {
    for (const auto& var : *env) {
      std::string name = StringAt(var, "name");
      std::string value = StringAt(var, "value");
      const Json* from = Member(var, "valueFrom");
      if (!value.empty()) {
        value = ExpandReferences(value, mapping);
      } else if (from) {
        if (const Json* f = Member(*from, "fieldRef")) {
          value = PodFieldValue(pod, StringAt(*f, "fieldPath"),
                                {ctx.pod_ip, ctx.host_ip, ctx.node_name});
        } else if (const Json* r = Member(*from, "resourceFieldRef")) {
          value = ContainerResourceValue(
              pod, *r, container, {ctx.node_allocatable_millicpu, ctx.node_allocatable_memory, 0});
        } else {
          const Json* key_ref = Member(*from, "configMapKeyRef");
          std::string kind = "ConfigMap";
          if (!key_ref) {
            key_ref = Member(*from, "secretKeyRef");
            kind = "Secret";
          }
          if (key_ref) {
            std::string obj_name = StringAt(*key_ref, "name");
            std::string key = StringAt(*key_ref, "key");
            bool optional = BoolAt(*key_ref, "optional").value_or(false);
            const Json* obj = sources.Get(kind, obj_name, optional);
            if (!obj) continue;
            auto data = sources.Data(kind, *obj);
            auto it = data.find(key);
            if (it == data.end()) {
              if (optional) continue;
              throw Error::NotFound("couldn't find key " + key + " in " + kind + " " + ns + "/" +
                                    obj_name);
            }
            value = it->second;
          }
        }
      }
      pod_env.Set(name, value);
    }
  }

  OrderedEnv kubelet;
  for (const auto& [k, v] : service_env.vars()) {
    if (!pod_env.Has(k)) kubelet.Set(k, v);
  }
  for (const auto& [k, v] : pod_env.vars()) kubelet.Set(k, v);
  for (const auto& [k, v] : kubelet.vars()) result.Set(k, v);
  return {result.Entries(), kubelet.Entries()};
}

}  // namespace

std::vector<std::string> ResolveContainerEnv(const Json& pod, const Json& container,
                                             const ImageConfig& image, const EnvContext& ctx) {
  return ResolveEnv(pod, container, image, ctx).all;
}

std::vector<std::string> ContainerArgv(const Json& container, const ImageConfig& image,
                                       const std::vector<std::string>& env) {
  std::vector<std::string> command = StringsAt(container, "command");
  std::vector<std::string> args = StringsAt(container, "args");
  // Kubernetes expands only what the pod says; the image's words are taken as they are.
  for (auto& c : command) c = ExpandEnvReferences(c, env);
  for (auto& a : args) a = ExpandEnvReferences(a, env);
  if (command.empty()) {
    if (args.empty()) args = image.cmd;
    if (!(image.entrypoint.size() == 1 && image.entrypoint[0].empty())) {
      command = image.entrypoint;
    }
  }
  std::vector<std::string> argv = std::move(command);
  argv.insert(argv.end(), args.begin(), args.end());
  if (argv.empty()) throw Error::Invalid("no command specified");
  for (const auto& [alias, replacement] : image.command_aliases) {
    if (argv[0] == alias) {
      argv.erase(argv.begin());
      argv.insert(argv.begin(), replacement.begin(), replacement.end());
      break;
    }
  }
  return argv;
}

ContainerSpec BuildContainerSpec(const Json& pod, const Json& container, const PodContext& ctx) {
  ContainerSpec spec;
  spec.name = StringAt(container, "name");
  ResolvedEnv env = ResolveEnv(pod, container, ctx.image, ctx.env);
  spec.env = std::move(env.all);
  // Kubernetes expands command/args with its own variables only, not the image's.
  spec.argv = ContainerArgv(container, ctx.image, env.kubelet);
  spec.working_dir = StringAt(container, "workingDir");
  if (spec.working_dir.empty()) spec.working_dir = ctx.image.working_dir;

  const Json& pod_sc = ObjectAt(ObjectAt(pod, "spec"), "securityContext");
  const Json& sc = ObjectAt(container, "securityContext");
  auto either_int = [&](const char* key) {
    auto v = IntAt(sc, key);
    return v ? v : IntAt(pod_sc, key);
  };

  // Identity: runAsUser/runAsGroup (container over pod), else the image's user.
  std::optional<int64_t> uid = either_int("runAsUser");
  std::optional<int64_t> gid = either_int("runAsGroup");
  auto image_user = NumericUser(ctx.image.user);
  if (!uid && image_user) {
    uid = image_user->first;
    if (!gid) gid = image_user->second;
  }
  auto non_root = BoolAt(sc, "runAsNonRoot");
  if (!non_root) non_root = BoolAt(pod_sc, "runAsNonRoot");
  if (non_root.value_or(false)) {
    const Json& meta = ObjectAt(pod, "metadata");
    std::string where =
        "(pod: " +
        GoQuote(StringAt(meta, "name") + "_" + Namespace(pod) + "(" + StringAt(meta, "uid") + ")") +
        ", container: " + spec.name + ")";
    if (either_int("runAsUser") == 0) {
      throw Error::Invalid("container's runAsUser breaks non-root policy " + where);
    }
    if (!uid && !ctx.image.user.empty()) {
      throw Error::Invalid("container has runAsNonRoot and image has non-numeric user (" +
                           ctx.image.user + "), cannot verify user is non-root " + where);
    }
    if (!uid || *uid == 0) {
      throw Error::Invalid("container has runAsNonRoot and image will run as root " + where);
    }
  }
  if (uid) spec.uid = static_cast<uid_t>(*uid);
  if (gid) spec.gid = static_cast<gid_t>(*gid);
  if (auto fs_group = IntAt(pod_sc, "fsGroup")) {
    spec.supplemental_groups.push_back(static_cast<gid_t>(*fs_group));
  }
  if (const Json* groups = Member(pod_sc, "supplementalGroups"); groups && groups->is_array()) {
    for (const auto& g : *groups) {
      if (g.is_number_integer()) spec.supplemental_groups.push_back(g.get<gid_t>());
    }
  }

  const Json& caps = ObjectAt(sc, "capabilities");
  spec.cap_add = StringsAt(caps, "add");
  spec.cap_drop = StringsAt(caps, "drop");

  std::string seccomp = StringAt(ObjectAt(sc, "seccompProfile"), "type");
  if (seccomp.empty()) seccomp = StringAt(ObjectAt(pod_sc, "seccompProfile"), "type");
  if (seccomp == "Unconfined") {
    spec.seccomp = SeccompProfile::kUnconfined;
  } else if (seccomp.empty() || seccomp == "RuntimeDefault") {
    spec.seccomp = SeccompProfile::kRuntimeDefault;
  } else {
    throw Error::Invalid("seccomp profile type " + GoQuote(seccomp) + " of container " + spec.name +
                         " is not supported");
  }
  spec.no_new_privs = !BoolAt(sc, "allowPrivilegeEscalation").value_or(false);
  if (BoolAt(sc, "privileged").value_or(false)) {
    spec.cap_add = {"ALL"};
    spec.cap_drop.clear();
    spec.seccomp = SeccompProfile::kUnconfined;
    spec.no_new_privs = false;
  }

  const Json& limits = ObjectAt(ObjectAt(container, "resources"), "limits");
  auto limit = [&](const char* name, bool milli) -> int64_t {
    const Json* q = Member(limits, name);
    if (!q) return 0;
    std::string text = QuantityString(*q);
    auto v = milli ? ParseQuantityMilli(text) : ParseQuantityValue(text);
    if (!v || *v < 0) {
      throw Error::Invalid("invalid quantity " + GoQuote(text) + " for resources.limits." + name +
                           " of container " + spec.name);
    }
    return *v;
  };
  spec.resources.memory_bytes = limit("memory", false);
  spec.resources.cpu_millicores = limit("cpu", true);

  spec.new_mount_ns = true;
  spec.hostname = PodHostname(pod);
  spec.log_path = ctx.log_path;
  return spec;
}

int64_t TerminationGracePeriodSeconds(const Json& pod) {
  return IntAt(ObjectAt(pod, "spec"), "terminationGracePeriodSeconds").value_or(30);
}

std::string RestartPolicy(const Json& pod) {
  std::string policy = StringAt(ObjectAt(pod, "spec"), "restartPolicy");
  return policy.empty() ? "Always" : policy;
}

}  // namespace kin
