#include "apiserver/service_account_admission.h"

#include <set>

namespace kin::apiserver {

namespace {

const Json* Field(const Json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

bool HasMountAt(const Json& container, const std::string& path) {
  const Json* mounts = Field(container, "volumeMounts");
  if (!mounts || !mounts->is_array()) return false;
  for (const Json& m : *mounts) {
    const Json* p = Field(m, "mountPath");
    if (p && p->is_string() && p->get<std::string>() == path) return true;
  }
  return false;
}

}  // namespace

bool ShouldAutomountServiceAccountToken(const Json& service_account, const Json& pod) {
  const Json* spec = Field(pod, "spec");
  if (const Json* a = spec ? Field(*spec, "automountServiceAccountToken") : nullptr;
      a && a->is_boolean()) {
    return a->get<bool>();
  }
  if (const Json* a = Field(service_account, "automountServiceAccountToken");
      a && a->is_boolean()) {
    return a->get<bool>();
  }
  return true;
}

Json ServiceAccountTokenVolumeSource() {
  return {
      {"defaultMode", 420},
      {"sources",
       Json::array(
           {{{"serviceAccountToken",
              {{"expirationSeconds", kServiceAccountVolumeExpirationSeconds}, {"path", "token"}}}},
            {{"configMap",
              {{"name", "kube-root-ca.crt"},
               {"items", Json::array({{{"key", "ca.crt"}, {"path", "ca.crt"}}})}}}},
            {{"downwardAPI",
              {{"items", Json::array({{{"path", "namespace"},
                                       {"fieldRef",
                                        {{"apiVersion", "v1"},
                                         {"fieldPath", "metadata.namespace"}}}}})}}}}})}};
}

std::string MountServiceAccountToken(const Json& service_account, Json& pod,
                                     const std::function<std::string()>& suffix) {
  if (!pod.is_object() || !pod["spec"].is_object()) return "";
  if (const Json* meta = Field(pod, "metadata")) {
    const Json* ann = Field(*meta, "annotations");
    if (ann && ann->is_object() && ann->contains("kubernetes.io/config.mirror")) return "";
  }
  if (!ShouldAutomountServiceAccountToken(service_account, pod)) return "";
  Json& spec = pod["spec"];

  // A kube-api-access-* volume the pod already has is the one to mount.
  const size_t prefix = sizeof kServiceAccountVolumePrefix - 1;
  std::string name;
  std::set<std::string> taken;
  if (const Json* vols = Field(spec, "volumes"); vols && vols->is_array()) {
    for (const Json& v : *vols) {
      const Json* n = Field(v, "name");
      if (!n || !n->is_string()) continue;
      std::string vn = n->get<std::string>();
      taken.insert(vn);
      if (name.empty() && vn.size() > prefix && vn.rfind(kServiceAccountVolumePrefix, 0) == 0) {
        name = vn;
      }
    }
  }
  const bool has_volume = !name.empty();
  while (name.size() <= prefix || (!has_volume && taken.count(name))) {
    name = kServiceAccountVolumePrefix + suffix();
  }

  const Json mount = {
      {"name", name}, {"readOnly", true}, {"mountPath", kServiceAccountTokenMountPath}};
  bool needed = false;
  for (const char* list : {"initContainers", "containers"}) {
    auto it = spec.find(list);
    if (it == spec.end() || !it->is_array()) continue;
    for (Json& c : *it) {
      if (!c.is_object() || HasMountAt(c, kServiceAccountTokenMountPath)) continue;
      if (!c.contains("volumeMounts") || !c["volumeMounts"].is_array()) {
        c["volumeMounts"] = Json::array();
      }
      c["volumeMounts"].push_back(mount);
      needed = true;
    }
  }
  if (!needed) return "";
  if (!has_volume) {
    if (!spec.contains("volumes") || !spec["volumes"].is_array()) spec["volumes"] = Json::array();
    spec["volumes"].push_back({{"name", name}, {"projected", ServiceAccountTokenVolumeSource()}});
  }
  return name;
}

}  // namespace kin::apiserver
