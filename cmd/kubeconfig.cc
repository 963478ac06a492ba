#include "cmd/kubeconfig.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <sstream>
#include <thread>

#include "base/error.h"
#include "base/fd.h"
#include "base/strings.h"

namespace kin::cmd {

namespace {

// ---- Reading plain scalars as kubectl does ----
//
// kin's YAML codec follows YAML 1.2; kubectl reads kubeconfigs with go-yaml
// v2 (YAML 1.1). Where the two disagree on a plain scalar (`yes`, `on`,
// 0755, 1_000, 08), the value kubectl saw is the one to keep: ToYaml then
// writes it so that both read it alike.

// strconv.ParseInt/ParseUint(s, 0, 64) as go-yaml v2 calls them.
std::optional<Json> GoParseInt(const std::string& s) {
  size_t i = 0;
  bool negative = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    negative = s[0] == '-';
    i = 1;
  }
  int base = 10;
  if (s.size() - i >= 2 && s[i] == '0') {
    char c = static_cast<char>(std::tolower(static_cast<unsigned char>(s[i + 1])));
    if (c == 'x' || c == 'o' || c == 'b') {
      base = c == 'x' ? 16 : c == 'o' ? 8 : 2;
      i += 2;
    } else {
      base = 8;
      i += 1;
    }
  }
  if (i >= s.size()) return std::nullopt;
  unsigned __int128 v = 0;
  for (; i < s.size(); ++i) {
    int d;
    char c = s[i];
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return std::nullopt;
    }
    if (d >= base) return std::nullopt;
    v = v * base + d;
    if (v > static_cast<unsigned __int128>(UINT64_MAX)) return std::nullopt;
  }
  if (negative) {
    if (v > static_cast<unsigned __int128>(INT64_MAX) + 1) return std::nullopt;
    return Json(static_cast<int64_t>(-static_cast<__int128>(v)));
  }
  if (v <= static_cast<unsigned __int128>(INT64_MAX)) return Json(static_cast<int64_t>(v));
  return Json(static_cast<uint64_t>(v));
}

// go-yaml v2's yamlStyleFloat: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
bool IsYamlStyleFloat(std::string_view s) {
  size_t i = 0;
  auto digits = [&] {
    size_t start = i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    return i - start;
  };
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (digits() == 0) return false;
  } else {
    if (digits() == 0) return false;
    if (i < s.size() && s[i] == '.') {
      ++i;
      digits();
    }
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (digits() == 0) return false;
  }
  return i == s.size();
}

Json ResolveYaml11(const std::string& s) {
  static const std::vector<std::string> kTrue = {"y",    "Y",    "yes", "Yes", "YES", "true",
                                                 "True", "TRUE", "on",  "On",  "ON"};
  static const std::vector<std::string> kFalse = {"n",     "N",     "no",  "No",  "NO", "false",
                                                  "False", "FALSE", "off", "Off", "OFF"};
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (std::find(kTrue.begin(), kTrue.end(), s) != kTrue.end()) return true;
  if (std::find(kFalse.begin(), kFalse.end(), s) != kFalse.end()) return false;
  if (s == ".nan" || s == ".NaN" || s == ".NAN") return NAN;
  if (s == ".inf" || s == ".Inf" || s == ".INF" || s == "+.inf" || s == "+.Inf" || s == "+.INF") {
    return HUGE_VAL;
  }
  if (s == "-.inf" || s == "-.Inf" || s == "-.INF") return -HUGE_VAL;
  char c = s[0];
  if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.')) return s;
  std::string plain;
  for (char ch : s) {
    if (ch != '_') plain += ch;
  }
  if (auto v = GoParseInt(plain)) return *v;
  if (IsYamlStyleFloat(plain)) return std::strtod(plain.c_str(), nullptr);
  return s;
}

// Walks the yaml-cpp tree beside the JSON ParseYaml made of it and replaces
// every plain scalar with its YAML 1.1 reading.
void ApplyYaml11(const YAML::Node& node, Json& j) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      if (node.Tag() == "?") {
        Json v = ResolveYaml11(node.Scalar());
        if (v != j) j = std::move(v);
      }
      break;
    case YAML::NodeType::Sequence: {
      size_t i = 0;
      for (const auto& item : node) {
        if (j.is_array() && i < j.size()) ApplyYaml11(item, j[i]);
        ++i;
      }
      break;
    }
    case YAML::NodeType::Map:
      for (const auto& kv : node) {
        if (!kv.first.IsScalar() || !j.is_object()) continue;
        const std::string& key = kv.first.Scalar();
        auto it = j.find(key);
        if (it == j.end()) continue;
        ApplyYaml11(kv.second, *it);
        // Keys too: kubectl turns a plain `y:` or `no:` key into "true" or
        // "false", and 0x10: into "16".
        if (kv.first.Tag() != "?") continue;
        Json k = ResolveYaml11(key);
        if (k.is_string() || k.is_null()) continue;
        std::string renamed = k.is_boolean() ? (k.get<bool>() ? "true" : "false") : k.dump();
        if (renamed != key && !j.contains(renamed)) {
          Json value = std::move(*it);
          j.erase(key);
          j[renamed] = std::move(value);
        }
      }
      break;
    default:
      break;
  }
}

// ---- Files ----

constexpr const char* kNamedLists[] = {"clusters", "users", "contexts"};

// The file a write must replace: the target of a symlink, not the link.
std::string ResolveTarget(const std::string& path) {
  std::error_code ec;
  auto resolved = std::filesystem::weakly_canonical(path, ec);
  return ec ? path : resolved.string();
}

// client-go's kubeconfig lock: "<path>.lock" created exclusively, removed
// when done. kubectl and kind take the same lock.
class LockFile {
 public:
  explicit LockFile(const std::string& path) : lock_(path + ".lock") {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (true) {
      UniqueFd fd(::open(lock_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
      if (fd) return;
      if (errno != EEXIST) throw ErrnoError(errno, "create kubeconfig lock file " + lock_);
      if (std::chrono::steady_clock::now() > deadline) {
        throw Error::Timeout("kubeconfig " + path + " is locked by " + lock_ +
                             " (another kubectl, kind or kin is writing it; remove the lock "
                             "file if none is running)");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  ~LockFile() { ::unlink(lock_.c_str()); }
  LockFile(const LockFile&) = delete;
  LockFile& operator=(const LockFile&) = delete;

 private:
  std::string lock_;
};

// Replaces `path` (already resolved) atomically, keeping an existing file's
// mode and owner; a new file gets 0600.
void WriteKubeconfigFile(const std::string& path, const std::string& content) {
  struct stat st {};
  bool exists = ::stat(path.c_str(), &st) == 0;
  std::string tmp = path + ".kin-tmp-XXXXXX";
  UniqueFd fd(::mkostemp(tmp.data(), O_CLOEXEC));  // 0600 from the start
  if (!fd) throw ErrnoError(errno, "create a temporary file beside kubeconfig " + path);
  auto fail = [&](const std::string& context) {
    int e = errno;
    ::unlink(tmp.c_str());
    return ErrnoError(e, context);
  };
  if (exists) {
    if (::geteuid() == 0) (void)!::fchown(fd.get(), st.st_uid, st.st_gid);
    if (::fchmod(fd.get(), st.st_mode & 07777) != 0) throw fail("chmod " + tmp);
  }
  std::string_view rest = content;
  while (!rest.empty()) {
    ssize_t w = ::write(fd.get(), rest.data(), rest.size());
    if (w < 0) {
      if (errno == EINTR) continue;
      throw fail("write " + tmp);
    }
    rest.remove_prefix(w);
  }
  if (::fsync(fd.get()) != 0) throw fail("fsync " + tmp);
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) throw fail("rename " + tmp + " to " + path);
}

// Sets the entry named `name` in list `key`: replaced in place, else appended.
void Upsert(Json& config, const char* key, const std::string& name, Json entry) {
  Json& list = config[key];
  if (list.is_null()) list = Json::array();
  for (Json& item : list) {
    if (item.is_object() && item.value("name", Json()) == name) {
      item = std::move(entry);
      return;
    }
  }
  list.push_back(std::move(entry));
}

bool EraseNamed(Json& config, const char* key, const std::string& name) {
  auto it = config.find(key);
  if (it == config.end() || !it->is_array()) return false;
  size_t before = it->size();
  Json kept = Json::array();
  for (Json& item : *it) {
    if (!(item.is_object() && item.value("name", Json()) == name)) kept.push_back(std::move(item));
  }
  *it = std::move(kept);
  return it->size() != before;
}

}  // namespace

std::string KubeconfigContextName(const std::string& cluster_name) { return "kin-" + cluster_name; }

Json KubeconfigFor(const KubeconfigEntry& e) {
  if (e.cluster_name.empty()) throw Error::Invalid("kubeconfig: cluster name is empty");
  if (e.server.empty()) throw Error::Invalid("kubeconfig: server URL is empty");
  std::string name = KubeconfigContextName(e.cluster_name);
  Json cluster = {{"server", e.server}};
  if (!e.ca_pem.empty()) cluster["certificate-authority-data"] = Base64Encode(e.ca_pem);
  Json user = Json::object();
  if (!e.client_cert_pem.empty()) user["client-certificate-data"] = Base64Encode(e.client_cert_pem);
  if (!e.client_key_pem.empty()) user["client-key-data"] = Base64Encode(e.client_key_pem);
  return {
      {"apiVersion", "v1"},
      {"kind", "Config"},
      {"preferences", Json::object()},
      {"clusters", Json::array({{{"name", name}, {"cluster", cluster}}})},
      {"users", Json::array({{{"name", name}, {"user", user}}})},
      {"contexts",
       Json::array({{{"name", name}, {"context", {{"cluster", name}, {"user", name}}}}})},
      {"current-context", name},
  };
}

std::string RenderKubeconfig(const KubeconfigEntry& entry) { return ToYaml(KubeconfigFor(entry)); }

std::string KubeconfigPath(const std::string& explicit_path) {
  if (!explicit_path.empty()) return explicit_path;
  std::vector<std::string> paths;
  if (const char* env = std::getenv("KUBECONFIG")) {
    std::stringstream ss(env);
    std::string p;
    while (std::getline(ss, p, ':')) {
      if (!p.empty() && std::find(paths.begin(), paths.end(), p) == paths.end()) {
        paths.push_back(p);
      }
    }
  }
  if (paths.size() == 1) return paths[0];
  for (const std::string& p : paths) {
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) return p;
  }
  if (!paths.empty()) return paths.back();
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0') {
    throw Error::BadRequest("cannot find the kubeconfig: neither KUBECONFIG nor HOME is set");
  }
  return std::string(home) + "/.kube/config";
}

Json ReadKubeconfig(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return Json::object();
    throw ErrnoError(errno, "read kubeconfig " + path);
  }
  std::string text;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw ErrnoError(errno, "read kubeconfig " + path);
    if (n == 0) break;
    text.append(buf, n);
  }
  Json config;
  try {
    config = ParseYaml(text);
    if (config.is_object()) ApplyYaml11(YAML::Load(text), config);
  } catch (const Error& e) {
    throw Error::BadRequest("kubeconfig " + path + " is not valid YAML: " + e.message());
  } catch (const YAML::Exception& e) {
    throw Error::BadRequest("kubeconfig " + path + " is not valid YAML: " + e.what());
  }
  if (config.is_null()) return Json::object();  // empty, or only comments
  if (!config.is_object()) {
    throw Error::BadRequest("kubeconfig " + path + " is not a kubeconfig: its top level is a " +
                            config.type_name() + ", not a mapping");
  }
  for (const char* key : kNamedLists) {
    auto it = config.find(key);
    if (it != config.end() && !it->is_null() && !it->is_array()) {
      throw Error::BadRequest("kubeconfig " + path + " is not a kubeconfig: " + key + " is a " +
                              it->type_name() + ", not a list");
    }
  }
  return config;
}

void MergeKubeconfig(const std::string& path, const KubeconfigEntry& entry) {
  Json ours = KubeconfigFor(entry);
  std::string target = ResolveTarget(path);
  std::error_code ec;
  auto dir = std::filesystem::path(target).parent_path();
  if (!dir.empty() && !std::filesystem::exists(dir, ec)) {
    std::filesystem::create_directories(dir, ec);
    if (ec) throw ErrnoError(ec.value(), "create directory " + dir.string() + " for kubeconfig");
  }
  LockFile lock(path);
  Json config = ReadKubeconfig(target);
  std::string name = KubeconfigContextName(entry.cluster_name);
  for (const char* key : kNamedLists) Upsert(config, key, name, ours[key][0]);
  config["current-context"] = name;
  // Like kind: readers that insist on them (the JavaScript client) get them.
  if (!config.contains("apiVersion")) config["apiVersion"] = "v1";
  if (!config.contains("kind")) config["kind"] = "Config";
  if (!config.contains("preferences")) config["preferences"] = Json::object();
  WriteKubeconfigFile(target, ToYaml(config));
}

bool RemoveFromKubeconfig(const std::string& path, const std::string& cluster_name) {
  std::string target = ResolveTarget(path);
  struct stat st {};
  if (::stat(target.c_str(), &st) != 0) return false;
  LockFile lock(path);
  Json config = ReadKubeconfig(target);
  std::string name = KubeconfigContextName(cluster_name);
  bool changed = false;
  for (const char* key : kNamedLists) changed = EraseNamed(config, key, name) || changed;
  auto current = config.find("current-context");
  if (current != config.end() && *current == name) {
    config.erase(current);
    changed = true;
  }
  if (changed) WriteKubeconfigFile(target, ToYaml(config));
  return changed;
}

}  // namespace kin::cmd
