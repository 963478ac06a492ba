// Fuzzes the patch engines (apiserver/patch.h) with a fuzzed patch document
// applied to a fixed Deployment, as PATCH requests reach them: the input is
// JSON (the API server decodes the body before patching); its first byte
// picks the engine so that one corpus covers all four. Errors the header
// documents (kin::Error: BadRequest, Invalid, Conflict, TooLarge) are the
// engines' refusals; anything else is a bug.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "apiserver/patch.h"
#include "base/error.h"

namespace {

const kin::Json& Live() {
  static const kin::Json live = kin::Json::parse(R"({
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "7",
                 "labels": {"app": "web"}, "finalizers": ["a/b"],
                 "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "o", "uid": "o1"}]},
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [
                                     {"name": "web", "image": "nginx:1",
                                      "ports": [{"containerPort": 80, "protocol": "TCP"}],
                                      "env": [{"name": "A", "value": "1"}]},
                                     {"name": "side", "image": "busybox", "args": ["sleep", "1"]}],
                                   "volumes": [{"name": "v", "emptyDir": {}}],
                                   "tolerations": [{"key": "k", "operator": "Exists"}]}}},
    "status": {"replicas": 2, "conditions": [{"type": "Available", "status": "True"}]}
  })");
  return live;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t engine = data[0];
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  kin::Json patch = kin::Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (patch.is_discarded()) return 0;
  namespace api = kin::apiserver;
  try {
    switch ((engine & 0x7f) % 5) {
      case 0:
        (void)api::ApplyMergePatch(Live(), patch);
        break;
      case 1:
        (void)api::ApplyJsonPatch(Live(), patch);
        break;
      case 2:
        (void)api::ApplyStrategicMergePatch(Live(), patch, "apps", "Deployment");
        break;
      case 3: {
        // Server-side apply: a create, then an apply by a second manager
        // over the first one's fields (conflicts, ownership moves).
        if (!patch.is_object()) return 0;
        api::ApplyOptions first{"kubectl", false, "2026-12-07T10:00:00Z"};
        kin::Json created = api::ServerSideApply(nullptr, patch, "apps", "Deployment", first);
        api::ApplyOptions second{"other", (engine & 0x80) != 0, "2026-12-07T10:00:01Z"};
        (void)api::ServerSideApply(created, Live(), "apps", "Deployment", second);
        kin::Json updated = Live();
        api::RecordUpdateManagedFields(created, updated, "editor", "apps/v1",
                                       "2026-12-07T10:00:02Z");
        break;
      }
      case 4: {
        // An apply over an existing object, and an update recorded after a
        // merge patch: the managedFields bookkeeping on fuzzed changes.
        if (!patch.is_object()) return 0;
        api::ApplyOptions opts{"kubectl", (engine & 0x80) != 0, "2026-12-07T10:00:00Z"};
        kin::Json applied = api::ServerSideApply(Live(), Live(), "apps", "Deployment", opts);
        (void)api::ServerSideApply(applied, patch, "apps", "Deployment", opts);
        kin::Json after = api::ApplyMergePatch(applied, patch);
        api::RecordUpdateManagedFields(applied, after, "editor", "apps/v1", "2026-12-07T10:00:01Z");
        break;
      }
    }
  } catch (const kin::Error&) {
  }
  return 0;
}
