#include "runtime/volumes.h"

#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "base/error.h"
#include "base/mounts.h"
#include "base/strings.h"
#include "client/quantity.h"
#include "runtime/pod_spec.h"

namespace kin {

namespace {

constexpr mode_t kDefaultFileMode = 0644;  // configMap, secret, downwardAPI, projected
constexpr char kDataDirName[] = "..data";
constexpr char kDataTmpName[] = "..data_tmp";

bool StartsWith(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

std::string Str(const Json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

bool Bool(const Json& j, const char* key) {
  if (!j.is_object()) return false;
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}

const Json& Get(const Json& j, const char* key) {
  static const Json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

std::optional<mode_t> Mode(const Json& j, const char* key) {
  const Json& m = Get(j, key);
  if (!m.is_number_integer()) return std::nullopt;
  return static_cast<mode_t>(m.get<int64_t>() & 07777);
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

void MkdirAll(const std::string& path, mode_t mode) {
  if (path.empty()) return;
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) throw Error::Invalid(path + " exists and is not a directory");
    return;
  }
  auto slash = path.find_last_of('/');
  if (slash != std::string::npos && slash > 0) MkdirAll(path.substr(0, slash), mode);
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST) {
    throw ErrnoError(errno, "create directory " + path);
  }
}

// Removes a tree without following symlinks or crossing into another
// filesystem (a leftover mount must never have its contents deleted).
void RemoveTree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return;
  if (!S_ISDIR(st.st_mode)) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw ErrnoError(errno, "remove " + path);
    return;
  }
  int rc = ::nftw(
      path.c_str(),
      [](const char* p, const struct stat*, int type, struct FTW*) -> int {
        int r = (type == FTW_DP) ? ::rmdir(p) : ::unlink(p);
        return (r != 0 && errno != ENOENT) ? -1 : 0;
      },
      32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
  if (rc != 0 || Exists(path)) throw ErrnoError(errno ? errno : EBUSY, "remove " + path);
}

std::string ReadFileOr(const std::string& path, bool* ok) {
  std::ifstream in(path, std::ios::binary);
  *ok = static_cast<bool>(in);
  if (!*ok) return "";
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteFile(const std::string& path, const std::string& data, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) throw ErrnoError(errno, "write " + path);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      throw ErrnoError(e, "write " + path);
    }
    off += static_cast<size_t>(n);
  }
  // fchmod, not open's mode: the umask must not narrow what the pod asked for.
  if (::fchmod(fd, mode) != 0) {
    int e = errno;
    ::close(fd);
    throw ErrnoError(e, "chmod " + path);
  }
  ::close(fd);
}

std::string ReadLink(const std::string& path) {
  char buf[PATH_MAX];
  ssize_t n = ::readlink(path.c_str(), buf, sizeof(buf) - 1);
  if (n < 0) return "";
  return std::string(buf, static_cast<size_t>(n));
}

std::string TopLevel(const std::string& rel) { return rel.substr(0, rel.find('/')); }

void ValidatePayloadPath(const std::string& p) {
  if (p.empty()) throw Error::Invalid("invalid path: must not be empty");
  if (p[0] == '/') throw Error::Invalid("invalid path " + GoQuote(p) + ": must be relative path");
  if (StartsWith(p, "..")) {
    throw Error::Invalid("invalid path " + GoQuote(p) + ": must not start with '..'");
  }
  std::istringstream parts(p);
  for (std::string part; std::getline(parts, part, '/');) {
    if (part == "..") {
      throw Error::Invalid("invalid path " + GoQuote(p) + ": must not contain '..'");
    }
  }
}

// Every regular file under `dir` (relative paths).
void ListFiles(const std::string& dir, const std::string& rel, std::set<std::string>* out) {
  std::error_code ec;
  for (const auto& e :
       std::filesystem::directory_iterator(dir + (rel.empty() ? "" : "/" + rel), ec)) {
    std::string name = e.path().filename().string();
    std::string r = rel.empty() ? name : rel + "/" + name;
    if (e.is_directory(ec) && !e.is_symlink(ec)) {
      ListFiles(dir, r, out);
    } else {
      out->insert(r);
    }
  }
}

// The node's status.allocatable in the form the downward API wants; a
// missing entry is 0.
NodeAllocatable AllocatableOf(const Json& allocatable) {
  auto amount = [&](const char* name, bool milli) -> int64_t {
    const Json& q = Get(allocatable, name);
    if (q.is_null()) return 0;
    std::string text = q.is_string() ? q.get<std::string>() : q.dump();
    auto v = milli ? ParseQuantityMilli(text) : ParseQuantityValue(text);
    if (!v) throw Error::Invalid("invalid quantity " + GoQuote(text) + " for allocatable " + name);
    return *v;
  };
  return {amount("cpu", true), amount("memory", false), amount("ephemeral-storage", false)};
}

FieldContext FieldContextOf(const VolumeContext& ctx) {
  return {ctx.pod_ip, ctx.host_ip, ctx.node_name};
}

// ---- ConfigMap / Secret payloads, as pkg/volume/{configmap,secret}.MakePayload ----

// The object's key -> bytes. Secrets (and ConfigMap binaryData) are base64.
std::map<std::string, std::string> ObjectData(const std::string& kind, const Json& obj) {
  std::map<std::string, std::string> out;
  auto decode = [&](const Json& m) {
    if (!m.is_object()) return;
    for (const auto& [k, v] : m.items()) {
      if (!v.is_string()) continue;
      auto bytes = Base64Decode(v.get<std::string>());
      if (!bytes) throw Error::Invalid(kind + " key " + GoQuote(k) + ": illegal base64 data");
      out[k] = *bytes;
    }
  };
  if (kind == "ConfigMap") {
    const Json& data = Get(obj, "data");
    if (data.is_object()) {
      for (const auto& [k, v] : data.items()) {
        if (v.is_string()) out[k] = v.get<std::string>();
      }
    }
    decode(Get(obj, "binaryData"));
  } else {
    decode(Get(obj, "data"));
    const Json& sd = Get(obj, "stringData");  // only if a writer skipped the API's conversion
    if (sd.is_object()) {
      for (const auto& [k, v] : sd.items()) {
        if (v.is_string()) out[k] = v.get<std::string>();
      }
    }
  }
  return out;
}

// source: a configMap or secret volume source (or projection). `kind` is
// "ConfigMap" or "Secret".
Payload ObjectPayload(const std::string& kind, const Json& source, const std::string& ns,
                      const VolumeContext& ctx, mode_t default_mode) {
  // A secret volume names it secretName; projections (and configMaps) name.
  std::string name = Str(source, "secretName");
  if (kind == "ConfigMap" || name.empty()) name = Str(source, "name");
  const bool optional = Bool(source, "optional");
  const std::string lower = kind == "ConfigMap" ? "configmap" : "secret";
  std::optional<Json> obj;
  if (ctx.lookup) obj = ctx.lookup(kind, ns, name);
  if (!obj) {
    if (optional) return {};
    throw Error::NotFound(lower + " " + GoQuote(name) + " not found")
        .WithDetails(kind == "ConfigMap" ? "configmaps" : "secrets", name);
  }
  auto data = ObjectData(kind, *obj);
  Payload out;
  const Json& items = Get(source, "items");
  if (!items.is_array() || items.empty()) {
    for (auto& [k, v] : data) out[k] = {v, default_mode};
    return out;
  }
  for (const auto& item : items) {
    std::string key = Str(item, "key");
    auto it = data.find(key);
    if (it == data.end()) {
      if (optional) continue;
      throw Error::NotFound(kind == "ConfigMap"
                                ? "configmap references non-existent config key: " + key
                                : "references non-existent secret key: " + key);
    }
    out[Str(item, "path")] = {it->second, Mode(item, "mode").value_or(default_mode)};
  }
  return out;
}

constexpr char kPlaceholderToken[] = "kin-placeholder-token";

Payload ProjectedPayload(const Json& projected, const Json& pod, const VolumeContext& ctx) {
  const mode_t default_mode = Mode(projected, "defaultMode").value_or(kDefaultFileMode);
  const std::string ns = Str(Get(pod, "metadata"), "namespace");
  Payload out;
  const Json& sources = Get(projected, "sources");
  if (!sources.is_array()) return out;
  for (const auto& src : sources) {
    Payload part;
    if (src.contains("configMap")) {
      part = ObjectPayload("ConfigMap", src["configMap"], ns, ctx, default_mode);
    } else if (src.contains("secret")) {
      part = ObjectPayload("Secret", src["secret"], ns, ctx, default_mode);
    } else if (src.contains("downwardAPI")) {
      part = DownwardApiPayload(src["downwardAPI"], pod, ctx, default_mode);
    } else if (src.contains("serviceAccountToken")) {
      // The node agent's token for the pod, audience and expiry (its token
      // manager's, refreshed when due); without an issuer, a placeholder
      // keeps clients that only read the file happy.
      const Json& source = src["serviceAccountToken"];
      std::string path = Str(source, "path");
      std::string token =
          ctx.service_account_token ? ctx.service_account_token(pod, source) : kPlaceholderToken;
      part[path.empty() ? "token" : path] = {token, default_mode};
    } else {
      std::string what = src.is_object() && !src.empty() ? src.begin().key() : "unknown";
      throw Error::Invalid("projected volume source " + GoQuote(what) + " is not supported");
    }
    for (auto& [k, v] : part) out[k] = v;
  }
  return out;
}

// nullopt: the volume type keeps no atomic payload (emptyDir, hostPath).
std::optional<Payload> VolumePayload(const Json& vol, const Json& pod, const VolumeContext& ctx) {
  const std::string ns = Str(Get(pod, "metadata"), "namespace");
  if (vol.contains("configMap")) {
    const Json& s = vol["configMap"];
    return ObjectPayload("ConfigMap", s, ns, ctx,
                         Mode(s, "defaultMode").value_or(kDefaultFileMode));
  }
  if (vol.contains("secret")) {
    const Json& s = vol["secret"];
    return ObjectPayload("Secret", s, ns, ctx, Mode(s, "defaultMode").value_or(kDefaultFileMode));
  }
  if (vol.contains("downwardAPI")) {
    const Json& s = vol["downwardAPI"];
    return DownwardApiPayload(s, pod, ctx, Mode(s, "defaultMode").value_or(kDefaultFileMode));
  }
  if (vol.contains("projected")) return ProjectedPayload(vol["projected"], pod, ctx);
  return std::nullopt;
}

// The volume source key of a volume ("emptyDir", "nfs", ...).
std::string VolumeType(const Json& vol) {
  for (const auto& [k, v] : vol.items()) {
    if (k != "name") return k;
  }
  return "";
}

bool IsMountPoint(const std::string& path) {
  for (const auto& m : MountPoints()) {
    if (m == path) return true;
  }
  return false;
}

std::string Absolute(const std::string& path) {
  std::error_code ec;
  auto canon = std::filesystem::weakly_canonical(std::filesystem::absolute(path), ec);
  if (ec) return std::filesystem::absolute(path).lexically_normal().string();
  std::string s = canon.string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

void SetupEmptyDir(const Json& src, const std::string& dir, const std::string& field,
                   const std::string& name) {
  MkdirAll(dir, 0777);
  std::string medium = Str(src, "medium");
  if (medium == "Memory") {
    if (!IsMountPoint(Absolute(dir))) {
      std::string options;
      const Json& limit = Get(src, "sizeLimit");
      if (!limit.is_null()) {
        std::string text = limit.is_string() ? limit.get<std::string>() : limit.dump();
        auto bytes = ParseQuantityValue(text);
        if (!bytes || *bytes < 0) {
          throw Error::Invalid("invalid sizeLimit " + GoQuote(text))
              .WithCause({"FieldValueInvalid", "invalid quantity", field + ".emptyDir.sizeLimit"});
        }
        if (*bytes > 0) options = "size=" + std::to_string(*bytes);
      }
      if (::mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV,
                  options.empty() ? nullptr : options.c_str()) != 0) {
        throw ErrnoError(errno, "mount tmpfs for volume " + GoQuote(name) + " at " + dir);
      }
    }
  } else if (!medium.empty()) {
    throw Error::Invalid(field + ".emptyDir.medium: unsupported medium " + GoQuote(medium))
        .WithCause({"FieldValueNotSupported", "Unsupported value: " + GoQuote(medium),
                    field + ".emptyDir.medium"});
  }
  // After any mount: the umask must not narrow it, and a fresh tmpfs is 1777.
  if (::chmod(dir.c_str(), 0777) != 0) throw ErrnoError(errno, "chmod " + dir);
}

// pkg/volume/hostpath checkType.
void CheckHostPath(const std::string& path, const std::string& type) {
  struct stat st;
  bool exists = ::stat(path.c_str(), &st) == 0;
  auto fail = [&](const std::string& what) {
    std::string msg = "hostPath type check failed: " + path + " is not " + what;
    if (!exists) throw Error::NotFound(msg);
    throw Error::Invalid(msg);
  };
  if (type.empty()) {
    // Like containerd for a bind source that does not exist (no type check).
    if (!exists) MkdirAll(path, 0755);
  } else if (type == "DirectoryOrCreate" || type == "Directory") {
    if (!exists && type == "DirectoryOrCreate") {
      MkdirAll(path, 0755);
      return;
    }
    if (!exists || !S_ISDIR(st.st_mode)) fail("a directory");
  } else if (type == "FileOrCreate" || type == "File") {
    if (!exists && type == "FileOrCreate") {
      int fd = ::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
      if (fd < 0) throw ErrnoError(errno, "hostPath type check failed: create " + path);
      ::close(fd);
      return;
    }
    if (!exists || !S_ISREG(st.st_mode)) fail("a file");
  } else if (type == "Socket") {
    if (!exists || !S_ISSOCK(st.st_mode)) fail("a socket file");
  } else if (type == "CharDevice") {
    if (!exists || !S_ISCHR(st.st_mode)) fail("a character device");
  } else if (type == "BlockDevice") {
    if (!exists || !S_ISBLK(st.st_mode)) fail("a block device");
  } else {
    throw Error::Invalid(type + " is an invalid volume type");
  }
}

// Where a persistentVolumeClaim volume's data lives: the bound volume's
// hostPath (checked as hostPath volumes are) or local path. The claim must
// exist, not be being deleted and be Bound, as the kubelet's volume manager
// waits for; until then Setup throws and the pod stays ContainerCreating.
std::string ClaimHostPath(const Json& source, const std::string& ns, const VolumeContext& ctx) {
  const std::string claim = Str(source, "claimName");
  std::optional<Json> pvc = ctx.lookup("PersistentVolumeClaim", ns, claim);
  if (!pvc) throw Error::NotFound("persistentvolumeclaim " + GoQuote(claim) + " not found");
  if (!Get(Get(*pvc, "metadata"), "deletionTimestamp").is_null()) {
    throw Error::Unavailable("persistentvolumeclaim " + GoQuote(claim) + " is being deleted");
  }
  const std::string volume = Str(Get(*pvc, "spec"), "volumeName");
  if (volume.empty() || Str(Get(*pvc, "status"), "phase") != "Bound") {
    throw Error::Unavailable("persistentvolumeclaim " + GoQuote(claim) + " is not bound");
  }
  std::optional<Json> pv = ctx.lookup("PersistentVolume", "", volume);
  if (!pv) throw Error::NotFound("persistentvolume " + GoQuote(volume) + " not found");
  const Json& spec = Get(*pv, "spec");
  if (Get(spec, "hostPath").is_object()) {
    std::string path = Str(Get(spec, "hostPath"), "path");
    CheckHostPath(path, Str(Get(spec, "hostPath"), "type"));
    return path;
  }
  if (Get(spec, "local").is_object()) {
    std::string path = Str(Get(spec, "local"), "path");
    CheckHostPath(path, "Directory");
    return path;
  }
  throw Error::Invalid("persistentvolume " + GoQuote(volume) +
                       ": only hostPath and local volumes are supported by kin");
}

void CheckSubPath(const std::string& sub, const std::string& field) {
  auto bad = [&](const std::string& why) {
    return Error::Invalid(field + ": Invalid value: " + GoQuote(sub) + ": " + why)
        .WithCause({"FieldValueInvalid", "Invalid value: " + GoQuote(sub) + ": " + why, field});
  };
  if (sub[0] == '/') throw bad("must be a relative path");
  std::istringstream parts(sub);
  for (std::string part; std::getline(parts, part, '/');) {
    if (part == "..") throw bad("must not contain '..'");
  }
}

}  // namespace

// ---------------------------------------------------------------------------

Payload DownwardApiPayload(const Json& source, const Json& pod, const VolumeContext& ctx,
                           mode_t default_mode) {
  Payload out;
  const Json& items = Get(source, "items");
  if (!items.is_array()) return out;
  for (const auto& item : items) {
    FileProjection f;
    f.mode = Mode(item, "mode").value_or(default_mode);
    if (item.contains("fieldRef")) {
      f.data = PodFieldValue(pod, Str(item["fieldRef"], "fieldPath"), FieldContextOf(ctx));
    } else if (item.contains("resourceFieldRef")) {
      // A volume has no container of its own: containerName is required.
      f.data = ContainerResourceValue(pod, item["resourceFieldRef"], Json(),
                                      AllocatableOf(ctx.node_allocatable));
    } else {
      throw Error::Invalid("downwardAPI item " + GoQuote(Str(item, "path")) +
                           ": one of fieldRef or resourceFieldRef is required");
    }
    out[Str(item, "path")] = f;
  }
  return out;
}

bool WriteAtomicPayload(const std::string& dir, const Payload& payload) {
  for (const auto& [path, f] : payload) ValidatePayloadPath(path);
  MkdirAll(dir, 0755);
  const std::string data_link = dir + "/" + kDataDirName;
  const std::string old_ts = ReadLink(data_link);

  std::set<std::string> old_files;
  bool changed = true;
  if (!old_ts.empty()) {
    ListFiles(dir + "/" + old_ts, "", &old_files);
    changed = old_files.size() != payload.size();
    for (auto it = payload.begin(); !changed && it != payload.end(); ++it) {
      std::string p = dir + "/" + old_ts + "/" + it->first;
      bool ok = false;
      std::string cur = ReadFileOr(p, &ok);
      struct stat st;
      if (!ok || cur != it->second.data || ::lstat(p.c_str(), &st) != 0 ||
          (st.st_mode & 07777) != it->second.mode) {
        changed = true;
      }
    }
  }

  std::set<std::string> new_top;
  for (const auto& [path, f] : payload) new_top.insert(TopLevel(path));

  if (changed) {
    char stamp[64];
    std::time_t now = std::time(nullptr);
    std::tm tm;
    ::gmtime_r(&now, &tm);
    std::strftime(stamp, sizeof(stamp), "..%Y_%m_%d_%H_%M_%S.XXXXXX", &tm);
    std::string templ = dir + "/" + stamp;
    if (::mkdtemp(templ.data()) == nullptr) throw ErrnoError(errno, "create directory in " + dir);
    const std::string ts_dir = templ;
    const std::string ts_name = ts_dir.substr(dir.size() + 1);
    try {
      if (::chmod(ts_dir.c_str(), 0755) != 0) throw ErrnoError(errno, "chmod " + ts_dir);
      for (const auto& [path, f] : payload) {
        std::string full = ts_dir + "/" + path;
        auto slash = full.find_last_of('/');
        MkdirAll(full.substr(0, slash), 0755);
        WriteFile(full, f.data, f.mode);
      }
      const std::string tmp_link = dir + "/" + kDataTmpName;
      ::unlink(tmp_link.c_str());
      if (::symlink(ts_name.c_str(), tmp_link.c_str()) != 0) {
        throw ErrnoError(errno, "symlink " + tmp_link);
      }
      if (::rename(tmp_link.c_str(), data_link.c_str()) != 0) {
        throw ErrnoError(errno, "rename " + tmp_link + " to " + data_link);
      }
    } catch (...) {
      RemoveTree(ts_dir);
      throw;
    }
  }

  // User-visible links: one per top-level name, pointing through ..data so
  // they follow every swap.
  for (const auto& top : new_top) {
    std::string link = dir + "/" + top;
    std::string want = std::string(kDataDirName) + "/" + top;
    if (ReadLink(link) == want) continue;
    if (Exists(link)) RemoveTree(link);
    if (::symlink(want.c_str(), link.c_str()) != 0) throw ErrnoError(errno, "symlink " + link);
    changed = true;
  }
  // Names no longer in the payload, and stale timestamped dirs (also ones a
  // crashed writer left).
  std::error_code ec;
  std::vector<std::string> remove;
  const std::string current = ReadLink(data_link);
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (name == kDataDirName) continue;
    if (StartsWith(name, "..")) {
      if (name != current) remove.push_back(name);
    } else if (!new_top.count(name)) {
      remove.push_back(name);
    }
  }
  for (const auto& name : remove) {
    RemoveTree(dir + "/" + name);
    changed = true;
  }
  return changed;
}

PodVolumes PodVolumes::Setup(const Json& pod, const std::string& pod_dir,
                             const VolumeContext& ctx) {
  PodVolumes pv;
  pv.pod_dir_ = Absolute(pod_dir);
  pv.ctx_ = ctx;
  const Json& vols = Get(Get(pod, "spec"), "volumes");
  if (!vols.is_array()) return pv;
  const std::string base = pv.pod_dir_ + "/volumes";
  for (size_t i = 0; i < vols.size(); ++i) {
    const Json& vol = vols[i];
    const std::string field = "spec.volumes[" + std::to_string(i) + "]";
    const std::string name = Str(vol, "name");
    if (name.empty() || name.find('/') != std::string::npos || StartsWith(name, ".")) {
      throw Error::Invalid(field + ".name: Invalid value: " + GoQuote(name))
          .WithCause({"FieldValueInvalid", "Invalid value: " + GoQuote(name), field + ".name"});
    }
    const std::string type = VolumeType(vol);
    const std::string dir = base + "/" + name;
    Volume v{dir, false};
    if (type == "emptyDir") {
      SetupEmptyDir(vol["emptyDir"], dir, field, name);
    } else if (type == "hostPath") {
      std::string path = Str(vol["hostPath"], "path");
      if (path.empty() || path[0] != '/') {
        throw Error::Invalid(field + ".hostPath.path: must be an absolute path")
            .WithCause({"FieldValueInvalid", "must be an absolute path", field + ".hostPath.path"});
      }
      CheckHostPath(path, Str(vol["hostPath"], "type"));
      v.host_path = path;
    } else if (type == "persistentVolumeClaim") {
      const Json& source = vol["persistentVolumeClaim"];
      v.host_path = ClaimHostPath(source, Str(Get(pod, "metadata"), "namespace"), ctx);
      v.read_only = source.is_object() && source.value("readOnly", false) == true;
    } else if (type == "configMap" || type == "secret" || type == "downwardAPI" ||
               type == "projected") {
      WriteAtomicPayload(dir, *VolumePayload(vol, pod, ctx));
      v.read_only = true;
    } else {
      std::string msg =
          field + ": Unsupported value: volume type " + GoQuote(type) + " is not supported by kin";
      throw Error::Invalid(msg).WithCause(
          {"FieldValueNotSupported", "volume type " + GoQuote(type) + " is not supported", field});
    }
    pv.volumes_[name] = v;
  }
  return pv;
}

bool PodVolumes::Refresh(const Json& pod, const VolumeContext& ctx) {
  ctx_ = ctx;
  bool changed = false;
  std::optional<Error> first;
  const Json& vols = Get(Get(pod, "spec"), "volumes");
  if (!vols.is_array()) return false;
  for (const auto& vol : vols) {
    auto it = volumes_.find(Str(vol, "name"));
    if (it == volumes_.end()) continue;
    try {
      auto payload = VolumePayload(vol, pod, ctx);
      if (payload && WriteAtomicPayload(it->second.host_path, *payload)) changed = true;
    } catch (const Error& e) {
      if (!first) first = e;
    }
  }
  if (first) throw *first;
  return changed;
}

const std::string& PodVolumes::HostPath(const std::string& volume) const {
  auto it = volumes_.find(volume);
  if (it == volumes_.end()) throw Error::NotFound("volume " + GoQuote(volume) + " not found");
  return it->second.host_path;
}

std::vector<BindMount> PodVolumes::MountsFor(const Json& pod, const Json& container) const {
  const std::string cname = Str(container, "name");
  // The field path of this container in the pod, for error messages.
  const std::string cfield = [&]() -> std::string {
    for (const char* list : {"containers", "initContainers", "ephemeralContainers"}) {
      const Json& cs = Get(Get(pod, "spec"), list);
      if (!cs.is_array()) continue;
      for (size_t i = 0; i < cs.size(); ++i) {
        if (Str(cs[i], "name") == cname) {
          return std::string("spec.") + list + "[" + std::to_string(i) + "]";
        }
      }
    }
    return "spec.containers[?]";
  }();
  std::vector<BindMount> out;
  const Json& mounts = Get(container, "volumeMounts");
  if (!mounts.is_array()) return out;

  // The container's environment, for subPathExpr (value and fieldRef, and
  // ConfigMap/Secret keys through the lookup).
  std::map<std::string, std::string> env;
  const std::string ns = Str(Get(pod, "metadata"), "namespace");
  const Json& envs = Get(container, "env");
  if (envs.is_array()) {
    for (const auto& e : envs) {
      std::string name = Str(e, "name");
      if (e.contains("value")) {
        env[name] = ExpandReferences(Str(e, "value"), [&](const std::string& k) {
          auto f = env.find(k);
          return f == env.end() ? "$(" + k + ")" : f->second;
        });
        continue;
      }
      const Json& from = Get(e, "valueFrom");
      try {
        if (from.contains("fieldRef")) {
          env[name] = PodFieldValue(pod, Str(from["fieldRef"], "fieldPath"), FieldContextOf(ctx_));
        } else if (from.contains("configMapKeyRef") || from.contains("secretKeyRef")) {
          bool cm = from.contains("configMapKeyRef");
          const Json& ref = from[cm ? "configMapKeyRef" : "secretKeyRef"];
          const std::string kind = cm ? "ConfigMap" : "Secret";
          auto obj = ctx_.lookup ? ctx_.lookup(kind, ns, Str(ref, "name")) : std::nullopt;
          if (obj) {
            auto data = ObjectData(kind, *obj);
            auto f = data.find(Str(ref, "key"));
            if (f != data.end()) env[name] = f->second;
          }
        }
      } catch (const Error&) {
        // Unresolvable: reported as a missing value if a subPathExpr uses it.
      }
    }
  }

  for (size_t j = 0; j < mounts.size(); ++j) {
    const Json& m = mounts[j];
    const std::string mfield = cfield + ".volumeMounts[" + std::to_string(j) + "]";
    const std::string vname = Str(m, "name");
    auto it = volumes_.find(vname);
    if (it == volumes_.end()) {
      throw Error::Invalid(mfield + ".name: Not found: " + GoQuote(vname))
          .WithCause({"FieldValueNotFound", "Not found: " + GoQuote(vname), mfield + ".name"});
    }
    const std::string target = Str(m, "mountPath");
    if (target.empty()) {
      throw Error::Invalid(mfield + ".mountPath: Required value")
          .WithCause({"FieldValueRequired", "Required value", mfield + ".mountPath"});
    }
    std::string sub = Str(m, "subPath");
    std::string sub_field = mfield + ".subPath";
    const std::string expr = Str(m, "subPathExpr");
    if (!expr.empty()) {
      sub_field = mfield + ".subPathExpr";
      if (!sub.empty()) {
        throw Error::Invalid(sub_field + ": subPath and subPathExpr are mutually exclusive")
            .WithCause(
                {"FieldValueInvalid", "subPath and subPathExpr are mutually exclusive", sub_field});
      }
      std::set<std::string> missing;
      sub = ExpandReferences(expr, [&](const std::string& k) {
        auto f = env.find(k);
        if (f == env.end() || f->second.empty()) {
          missing.insert(k);
          return std::string();
        }
        return f->second;
      });
      if (!missing.empty()) {
        std::string names;
        for (const auto& k : missing) names += (names.empty() ? "" : ", ") + k;
        throw Error::Invalid(sub_field + ": missing value for " + names)
            .WithCause({"FieldValueInvalid", "missing value for " + names, sub_field});
      }
    }
    const Volume& vol = it->second;
    std::string source = vol.host_path;
    if (!sub.empty()) {
      CheckSubPath(sub, sub_field);
      source = vol.host_path + "/" + sub;
      struct stat st;
      if (::stat(source.c_str(), &st) != 0) {
        struct stat vst;
        mode_t perm = ::stat(vol.host_path.c_str(), &vst) == 0 ? (vst.st_mode & 07777) : 0755;
        MkdirAll(source, perm);
        ::chmod(source.c_str(), perm);
      }
      // A symlink inside the volume (configMap keys are ones) must not lead out of it.
      std::string real_vol = Absolute(vol.host_path), real_src = Absolute(source);
      if (real_src != real_vol && !StartsWith(real_src, real_vol + "/")) {
        throw Error::Invalid(sub_field + ": Invalid value: " + GoQuote(sub) +
                             ": leads outside the volume")
            .WithCause({"FieldValueInvalid", "leads outside the volume", sub_field});
      }
      source = real_src;
    }
    out.push_back({source, target, vol.read_only || Bool(m, "readOnly")});
  }
  return out;
}

void TeardownPodVolumes(const std::string& pod_dir) {
  const std::string base = Absolute(pod_dir) + "/volumes";
  std::error_code ec;
  if (!std::filesystem::exists(base, ec)) return;  // no volumes: nothing mounted there
  UnmountAllUnder(base);
  RemoveTree(base);
}

}  // namespace kin
