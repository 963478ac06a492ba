#include "apiserver/openapi.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "client/resources.h"

namespace kin::apiserver {
namespace {

using ::testing::ElementsAre;

std::string GvPath(const ResourceInfo& r) {
  return r.group.empty() ? "api/" + r.version : "apis/" + r.group + "/" + r.version;
}

std::set<std::string> ServedGvPaths() {
  std::set<std::string> out;
  for (const auto& r : AllResources()) out.insert(GvPath(r));
  return out;
}

Json Gvk(const std::string& group, const std::string& version, const std::string& kind) {
  return Json{{"group", group}, {"kind", kind}, {"version", version}};
}

// Every "$ref" in node, whatever its depth.
void Refs(const Json& node, std::vector<std::string>& out) {
  if (node.is_object()) {
    for (const auto& [key, value] : node.items()) {
      if (key == "$ref") {
        out.push_back(value.get<std::string>());
      } else {
        Refs(value, out);
      }
    }
  } else if (node.is_array()) {
    for (const auto& item : node) Refs(item, out);
  }
}

// The schema a v3 property points at, through allOf or a bare $ref.
std::string V3Target(const Json& prop) {
  if (prop.contains("$ref")) return prop["$ref"];
  if (prop.contains("allOf")) return prop["allOf"][0]["$ref"];
  return "";
}

// ---------------------------------------------------------------------------
// OpenAPI v3
// ---------------------------------------------------------------------------

TEST(OpenApiV3, IndexListsEveryServedGroupVersionWithItsHash) {
  Json index = Json::parse(OpenApiV3Index());
  std::set<std::string> keys;
  for (const auto& [key, value] : index.at("paths").items()) {
    keys.insert(key);
    EXPECT_EQ(value.at("serverRelativeURL"), "/openapi/v3/" + key + "?hash=" + OpenApiV3Hash(key));
  }
  EXPECT_EQ(keys, ServedGvPaths());
  EXPECT_TRUE(keys.count("api/v1"));
  EXPECT_TRUE(keys.count("apis/apps/v1"));
  EXPECT_TRUE(keys.count("apis/coordination.k8s.io/v1"));
}

TEST(OpenApiV3, HashIsAStableDigestOfTheDocument) {
  EXPECT_EQ(OpenApiV3Hash("api/v1"), OpenApiV3Hash("/api/v1"));
  EXPECT_EQ(OpenApiV3Hash("api/v1").size(), 32u);
  EXPECT_NE(OpenApiV3Hash("api/v1"), OpenApiV3Hash("apis/apps/v1"));
  std::set<std::string> hashes;
  for (const auto& gv : ServedGvPaths()) hashes.insert(OpenApiV3Hash(gv));
  EXPECT_EQ(hashes.size(), ServedGvPaths().size());
}

TEST(OpenApiV3, UnknownGroupVersionIsNotFound) {
  for (const char* gv : {"apis/apps/v2", "apis/policy/v1beta1", "api", "", "apis/apps"}) {
    try {
      OpenApiV3Document(gv);
      ADD_FAILURE() << gv << " did not throw";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kNotFound) << gv;
    }
  }
}

TEST(OpenApiV3, EveryDocumentParsesAndEveryRefResolves) {
  for (const auto& gv : ServedGvPaths()) {
    SCOPED_TRACE(gv);
    Json doc = Json::parse(OpenApiV3Document(gv));
    EXPECT_EQ(doc.at("openapi"), "3.0.0");
    EXPECT_EQ(doc.at("info").at("title"), "Kubernetes");
    const Json& schemas = doc.at("components").at("schemas");
    std::vector<std::string> refs;
    Refs(doc, refs);
    EXPECT_GT(refs.size(), 10u);
    for (const auto& ref : refs) {
      ASSERT_EQ(ref.rfind("#/components/schemas/", 0), 0u) << ref;
      EXPECT_TRUE(schemas.contains(ref.substr(21))) << ref;
    }
  }
}

// What kubectl 1.28+ looks for before it sends ?fieldValidation=Strict, and
// what `kubectl apply` needs to compute a strategic merge patch from v3.
TEST(OpenApiV3, EveryKindHasASchemaAndAPatchOperationWithFieldValidation) {
  for (const auto& r : AllResources()) {
    SCOPED_TRACE(r.kind);
    Json doc = Json::parse(OpenApiV3Document(GvPath(r)));
    const Json gvk = Gvk(r.group, r.version, r.kind);
    int schemas_with_gvk = 0;
    for (const auto& [name, schema] : doc["components"]["schemas"].items()) {
      for (const auto& g : schema.value("x-kubernetes-group-version-kind", Json::array())) {
        if (g == gvk) ++schemas_with_gvk;
      }
    }
    EXPECT_EQ(schemas_with_gvk, 1);

    int patch_ops = 0;
    for (const auto& [path, item] : doc["paths"].items()) {
      if (!item.contains("patch") || item["patch"]["x-kubernetes-group-version-kind"] != gvk) {
        continue;
      }
      ++patch_ops;
      const Json& op = item["patch"];
      std::set<std::string> params;
      for (const auto& p : op["parameters"]) params.insert(p["name"]);
      EXPECT_TRUE(params.count("fieldValidation")) << path;
      EXPECT_TRUE(params.count("dryRun")) << path;
      EXPECT_TRUE(params.count("fieldManager")) << path;
      EXPECT_TRUE(params.count("force")) << path;
      EXPECT_TRUE(op["requestBody"]["content"].contains("application/strategic-merge-patch+json"))
          << path;
      EXPECT_EQ(op["x-kubernetes-action"], "patch");
    }
    // Create-only kinds (reviews, TokenRequest's kin) have no patch.
    bool patchable = std::find(r.verbs.begin(), r.verbs.end(), "patch") != r.verbs.end();
    EXPECT_EQ(patch_ops >= 1, patchable);
  }
}

TEST(OpenApiV3, ResourcePathsFollowTheKubernetesLayout) {
  Json core = Json::parse(OpenApiV3Document("api/v1"));
  const Json& paths = core["paths"];
  const Json& item = paths.at("/api/v1/namespaces/{namespace}/pods/{name}");
  for (const char* method : {"get", "put", "patch", "delete"}) EXPECT_TRUE(item.contains(method));
  const Json& collection = paths.at("/api/v1/namespaces/{namespace}/pods");
  for (const char* method : {"get", "post", "delete"}) EXPECT_TRUE(collection.contains(method));
  EXPECT_EQ(collection["post"]["operationId"], "createCoreV1NamespacedPod");
  EXPECT_EQ(collection["get"]["x-kubernetes-action"], "list");
  EXPECT_TRUE(paths.contains("/api/v1/pods"));
  EXPECT_TRUE(paths.contains("/api/v1/namespaces/{namespace}/pods/{name}/status"));
  EXPECT_TRUE(paths.contains("/api/v1/nodes/{name}"));
  EXPECT_FALSE(paths.contains("/api/v1/namespaces/{namespace}/nodes/{name}"));
  // Namespaces cannot be deleted as a collection.
  EXPECT_FALSE(paths.at("/api/v1/namespaces").contains("delete"));
  std::set<std::string> create_params;
  for (const auto& p : collection["post"]["parameters"]) create_params.insert(p["name"]);
  EXPECT_EQ(create_params, (std::set<std::string>{"dryRun", "fieldManager", "fieldValidation"}));

  Json apps = Json::parse(OpenApiV3Document("apis/apps/v1"));
  const Json& scale =
      apps["paths"].at("/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale");
  EXPECT_EQ(scale["patch"]["x-kubernetes-group-version-kind"], Gvk("autoscaling", "v1", "Scale"));
  EXPECT_TRUE(apps["components"]["schemas"].contains("io.k8s.api.autoscaling.v1.Scale"));
  EXPECT_EQ(apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"]["get"]["responses"]
                ["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/io.k8s.api.apps.v1.DeploymentList");
}

TEST(OpenApiV3, PodSchemaDescribesContainers) {
  Json doc = Json::parse(OpenApiV3Document("api/v1"));
  const Json& schemas = doc["components"]["schemas"];
  const Json& pod = schemas.at("io.k8s.api.core.v1.Pod");
  EXPECT_EQ(pod["x-kubernetes-group-version-kind"], Json::array({Gvk("", "v1", "Pod")}));
  EXPECT_EQ(V3Target(pod["properties"]["metadata"]),
            "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta");
  EXPECT_FALSE(pod["properties"]["spec"]["description"].get<std::string>().empty());
  ASSERT_EQ(V3Target(pod["properties"]["spec"]), "#/components/schemas/io.k8s.api.core.v1.PodSpec");

  const Json& containers = schemas.at("io.k8s.api.core.v1.PodSpec")["properties"]["containers"];
  EXPECT_EQ(containers["type"], "array");
  EXPECT_EQ(containers["items"]["$ref"], "#/components/schemas/io.k8s.api.core.v1.Container");
  EXPECT_EQ(containers["x-kubernetes-patch-merge-key"], "name");
  EXPECT_EQ(containers["x-kubernetes-patch-strategy"], "merge");
  EXPECT_EQ(containers["x-kubernetes-list-type"], "map");
  EXPECT_EQ(containers["x-kubernetes-list-map-keys"], Json::array({"name"}));

  const Json& container = schemas.at("io.k8s.api.core.v1.Container");
  EXPECT_EQ(container["required"], Json::array({"name"}));
  EXPECT_EQ(container["properties"]["image"]["type"], "string");
  EXPECT_EQ(container["properties"]["imagePullPolicy"]["enum"],
            Json::array({"Always", "IfNotPresent", "Never"}));
  EXPECT_EQ(container["properties"]["ports"]["x-kubernetes-list-map-keys"],
            Json::array({"containerPort", "protocol"}));
  const Json& port = schemas.at("io.k8s.api.core.v1.ContainerPort")["properties"]["containerPort"];
  EXPECT_EQ(port["type"], "integer");
  EXPECT_EQ(port["format"], "int32");
  EXPECT_EQ(
      schemas.at(
          "io.k8s.api.core.v1.PodSpec")["properties"]["terminationGracePeriodSeconds"]["format"],
      "int64");
  // Custom-encoded scalars as kube-apiserver publishes them in v3.
  const Json& intstr = schemas.at("io.k8s.apimachinery.pkg.util.intstr.IntOrString");
  EXPECT_EQ(intstr["format"], "int-or-string");
  EXPECT_EQ(intstr["oneOf"].size(), 2u);
  EXPECT_EQ(schemas.at("io.k8s.apimachinery.pkg.apis.meta.v1.Time")["format"], "date-time");
  EXPECT_EQ(schemas.at("io.k8s.api.core.v1.ResourceRequirements")["properties"]["limits"]
                                                                 ["additionalProperties"]["$ref"],
            "#/components/schemas/io.k8s.apimachinery.pkg.api.resource.Quantity");
  EXPECT_EQ(
      schemas.at(
          "io.k8s.api.core.v1.PodSpec")["properties"]["volumes"]["x-kubernetes-patch-strategy"],
      "merge,retainKeys");
}

TEST(OpenApiV3, WorkloadSchemasCarryTheirPatchStrategies) {
  Json doc = Json::parse(OpenApiV3Document("apis/apps/v1"));
  const Json& spec = doc["components"]["schemas"].at("io.k8s.api.apps.v1.DeploymentSpec");
  EXPECT_EQ(spec["properties"]["strategy"]["x-kubernetes-patch-strategy"], "retainKeys");
  EXPECT_EQ(V3Target(spec["properties"]["template"]),
            "#/components/schemas/io.k8s.api.core.v1.PodTemplateSpec");
  EXPECT_EQ(spec["required"], Json::array({"selector", "template"}));
  EXPECT_EQ(doc["components"]["schemas"].at(
                "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector")["x-kubernetes-map-type"],
            "atomic");
}

TEST(OpenApiV3, PolicyBatchAndCoreWorkloadKindsAreDescribed) {
  Json policy = Json::parse(OpenApiV3Document("apis/policy/v1"));
  const Json& schemas = policy["components"]["schemas"];
  const Json& pdb = schemas.at("io.k8s.api.policy.v1.PodDisruptionBudget");
  EXPECT_EQ(pdb["x-kubernetes-group-version-kind"],
            Json::array({Gvk("policy", "v1", "PodDisruptionBudget")}));
  const Json& spec = schemas.at("io.k8s.api.policy.v1.PodDisruptionBudgetSpec");
  EXPECT_EQ(spec["properties"]["selector"]["x-kubernetes-patch-strategy"], "replace");
  EXPECT_EQ(V3Target(spec["properties"]["minAvailable"]),
            "#/components/schemas/io.k8s.apimachinery.pkg.util.intstr.IntOrString");
  EXPECT_EQ(spec["properties"]["unhealthyPodEvictionPolicy"]["enum"],
            Json::array({"AlwaysAllow", "IfHealthyBudget"}));
  const Json& status = schemas.at("io.k8s.api.policy.v1.PodDisruptionBudgetStatus");
  EXPECT_EQ(status["properties"]["conditions"]["x-kubernetes-list-map-keys"],
            Json::array({"type"}));
  EXPECT_EQ(status["properties"]["disruptionsAllowed"]["format"], "int32");
  const Json& paths = policy["paths"];
  EXPECT_TRUE(
      paths.contains("/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets/{name}/status"));
  EXPECT_TRUE(paths.contains("/apis/policy/v1/poddisruptionbudgets"));

  Json batch = Json::parse(OpenApiV3Document("apis/batch/v1"));
  EXPECT_TRUE(batch["components"]["schemas"].contains("io.k8s.api.batch.v1.CronJobSpec"));
  EXPECT_TRUE(batch["paths"].contains("/apis/batch/v1/namespaces/{namespace}/cronjobs/{name}"));
  Json apps = Json::parse(OpenApiV3Document("apis/apps/v1"));
  EXPECT_TRUE(apps["components"]["schemas"].contains("io.k8s.api.apps.v1.ControllerRevision"));
  Json core = Json::parse(OpenApiV3Document("api/v1"));
  EXPECT_TRUE(
      core["paths"].contains("/api/v1/namespaces/{namespace}/replicationcontrollers/{name}/scale"));
  EXPECT_EQ(core["components"]["schemas"].at(
                "io.k8s.api.core.v1.ReplicationControllerSpec")["properties"]["selector"]
                                                               ["x-kubernetes-map-type"],
            "atomic");
  EXPECT_THAT(UnknownFields("policy", "v1", "PodDisruptionBudget",
                            Json::parse(R"({"metadata":{"name":"p"},"spec":{"minAvailable":"50%",
                              "selector":{"matchLabels":{"a":"b"}},"maxUnavailabel":1}})")),
              ElementsAre("spec.maxUnavailabel"));
  EXPECT_THAT(UnknownFields("batch", "v1", "CronJob",
                            Json::parse(R"({"metadata":{"name":"c"},"spec":{"schedule":"* * * * *",
                              "timeZone":"UTC","jobTemplate":{"spec":{"template":{"spec":{
                              "containers":[{"name":"c","image":"i"}]}}}}}})")),
              ElementsAre());
}

// ---------------------------------------------------------------------------
// OpenAPI v2 (JSON and protobuf)
// ---------------------------------------------------------------------------

TEST(OpenApiV2, DocumentDescribesEveryKindAndItsPatchOperation) {
  Json doc = Json::parse(OpenApiV2());
  EXPECT_EQ(doc["swagger"], "2.0");
  const Json& defs = doc["definitions"];
  std::vector<std::string> refs;
  Refs(doc, refs);
  for (const auto& ref : refs) {
    ASSERT_EQ(ref.rfind("#/definitions/", 0), 0u) << ref;
    EXPECT_TRUE(defs.contains(ref.substr(14))) << ref;
  }
  EXPECT_EQ(defs["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]["items"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.Container");
  EXPECT_EQ(defs["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"], "int-or-string");

  for (const auto& r : AllResources()) {
    SCOPED_TRACE(r.kind);
    const Json gvk = Gvk(r.group, r.version, r.kind);
    bool found = false;
    for (const auto& [path, item] : doc["paths"].items()) {
      if (!item.contains("patch") || item["patch"]["x-kubernetes-group-version-kind"] != gvk) {
        continue;
      }
      found = true;
      const Json& op = item["patch"];
      std::set<std::string> params;
      for (const auto& p : op["parameters"]) params.insert(p["name"]);
      EXPECT_TRUE(params.count("fieldValidation"));
      EXPECT_TRUE(params.count("body"));
      std::set<std::string> consumes(op["consumes"].begin(), op["consumes"].end());
      EXPECT_TRUE(consumes.count("application/strategic-merge-patch+json"));
    }
    EXPECT_EQ(found, std::find(r.verbs.begin(), r.verbs.end(), "patch") != r.verbs.end());
    bool defined = false;
    for (const auto& [name, def] : defs.items()) {
      for (const auto& g : def.value("x-kubernetes-group-version-kind", Json::array())) {
        if (g == gvk) defined = true;
      }
    }
    EXPECT_TRUE(defined);
  }
}

// A minimal protobuf reader: the fields of one message.
struct PbField {
  int number;
  uint64_t varint = 0;
  std::string_view bytes;
};

std::vector<PbField> PbFields(std::string_view msg) {
  std::vector<PbField> out;
  size_t pos = 0;
  auto varint = [&]() {
    uint64_t v = 0;
    for (int shift = 0; pos < msg.size(); shift += 7) {
      uint8_t b = static_cast<uint8_t>(msg[pos++]);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    ADD_FAILURE() << "truncated varint";
    return v;
  };
  while (pos < msg.size()) {
    uint64_t key = varint();
    PbField f{static_cast<int>(key >> 3)};
    switch (key & 7) {
      case 0:
        f.varint = varint();
        break;
      case 2: {
        uint64_t len = varint();
        if (pos + len > msg.size()) {
          ADD_FAILURE() << "truncated field " << f.number;
          return out;
        }
        f.bytes = msg.substr(pos, len);
        pos += len;
        break;
      }
      default:
        ADD_FAILURE() << "unexpected wire type " << (key & 7);
        return out;
    }
    out.push_back(f);
  }
  return out;
}

std::vector<std::string_view> PbAll(std::string_view msg, int number) {
  std::vector<std::string_view> out;
  for (const auto& f : PbFields(msg)) {
    if (f.number == number) out.push_back(f.bytes);
  }
  return out;
}

std::string_view PbOne(std::string_view msg, int number) {
  auto all = PbAll(msg, number);
  return all.empty() ? std::string_view() : all.front();
}

// A named entry (NamedPathItem, NamedSchema, NamedAny) of a repeated field.
std::string_view PbNamed(std::string_view msg, int number, std::string_view name) {
  for (auto entry : PbAll(msg, number)) {
    if (PbOne(entry, 1) == name) return PbOne(entry, 2);
  }
  return {};
}

// kubectl 1.27 reads only this encoding: the structure its query-parameter
// verifier and schema parser walk must be where gnostic puts it.
TEST(OpenApiV2, ProtobufCarriesThePatchOperationsAndDefinitions) {
  const std::string& pb = OpenApiV2Protobuf();
  EXPECT_EQ(PbOne(pb, 1), "2.0");                   // swagger
  EXPECT_EQ(PbOne(PbOne(pb, 2), 1), "Kubernetes");  // info.title
  std::string_view paths = PbOne(pb, 8);
  std::string_view item = PbNamed(paths, 2, "/api/v1/namespaces/{namespace}/pods/{name}");
  ASSERT_FALSE(item.empty());
  std::string_view patch = PbOne(item, 8);
  ASSERT_FALSE(patch.empty());
  // vendor_extension x-kubernetes-group-version-kind, its value as YAML text.
  std::string_view gvk_any = PbNamed(patch, 13, "x-kubernetes-group-version-kind");
  EXPECT_EQ(Json::parse(PbOne(gvk_any, 2)), Gvk("", "v1", "Pod"));
  std::set<std::string> query_params;
  for (auto parameters_item : PbAll(patch, 8)) {
    std::string_view non_body = PbOne(PbOne(parameters_item, 1), 2);
    std::string_view query = PbOne(non_body, 3);
    if (!query.empty()) query_params.insert(std::string(PbOne(query, 4)));
  }
  EXPECT_TRUE(query_params.count("fieldValidation"));
  EXPECT_TRUE(query_params.count("dryRun"));
  std::set<std::string> consumes;
  for (auto c : PbAll(patch, 7)) consumes.insert(std::string(c));
  EXPECT_TRUE(consumes.count("application/strategic-merge-patch+json"));

  std::string_view defs = PbOne(pb, 9);
  std::string_view pod_spec = PbNamed(defs, 1, "io.k8s.api.core.v1.PodSpec");
  ASSERT_FALSE(pod_spec.empty());
  std::string_view containers = PbNamed(PbOne(pod_spec, 25), 1, "containers");
  EXPECT_EQ(PbOne(PbOne(containers, 22), 1), "array");  // type
  EXPECT_EQ(PbOne(PbOne(PbOne(containers, 23), 1), 1),  // items.schema._ref
            "#/definitions/io.k8s.api.core.v1.Container");
  EXPECT_EQ(Json::parse(PbOne(PbNamed(containers, 31, "x-kubernetes-patch-merge-key"), 2)), "name");
  std::string_view container = PbNamed(defs, 1, "io.k8s.api.core.v1.Container");
  EXPECT_EQ(PbOne(container, 19), "name");  // required
  EXPECT_EQ(PbAll(defs, 1).size(), Json::parse(OpenApiV2())["definitions"].size());
}

// ---------------------------------------------------------------------------
// Definitions
// ---------------------------------------------------------------------------

TEST(SchemaDefinitions, EveryReferenceResolvesAndEveryKindIsNamed) {
  const Json& defs = SchemaDefinitions();
  std::vector<std::string> refs;
  Refs(defs, refs);
  for (const auto& ref : refs) EXPECT_TRUE(defs.contains(ref)) << ref;
  for (const auto& r : AllResources()) {
    EXPECT_FALSE(DefinitionName(r.group, r.version, r.kind).empty()) << r.kind;
    // Create-only kinds have no list.
    bool listable = std::find(r.verbs.begin(), r.verbs.end(), "list") != r.verbs.end();
    EXPECT_EQ(DefinitionName(r.group, r.version, r.list_kind()).empty(), !listable) << r.kind;
  }
  EXPECT_EQ(DefinitionName("", "v1", "Pod"), "io.k8s.api.core.v1.Pod");
  EXPECT_EQ(DefinitionName("apps", "v1", "Deployment"), "io.k8s.api.apps.v1.Deployment");
  EXPECT_EQ(DefinitionName("autoscaling", "v1", "Scale"), "io.k8s.api.autoscaling.v1.Scale");
  EXPECT_EQ(DefinitionName("apps", "v1", "DeleteOptions"),
            "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions");
  EXPECT_EQ(DefinitionName("apps", "v1", "Pod"), "");
}

// ---------------------------------------------------------------------------
// Unknown fields on parsed objects
// ---------------------------------------------------------------------------

TEST(UnknownFields, FindsTyposAtEveryDepthOfAPod) {
  Json pod = Json::parse(R"({
    "apiVersion": "v1", "kind": "Pod", "foo": 1,
    "metadata": {"name": "p", "labelz": {}, "labels": {"any-key": "v"},
                 "annotations": {"k8s.io/x": "y"}},
    "spec": {
      "containers": [
        {"name": "a", "image": "nginx", "imagePullPolicyy": "Always",
         "ports": [{"containerPort": 80, "protcol": "TCP"}],
         "resources": {"limits": {"cpu": "1", "memory": 1024}},
         "livenessProbe": {"httpGet": {"port": "http", "path": "/", "hots": "x"}},
         "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "x", "bogus": 1}}}]},
        {"name": "b", "image": "busybox", "securityContext": {"runAsUser": 0, "priviledged": true}}
      ],
      "nodeSelector": {"disk": "ssd"},
      "volumes": [{"name": "v", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}],
      "restartPolicyy": "Never"
    },
    "status": {"phase": "Running", "conditions": [{"type": "Ready", "statuz": "True"}]}
  })");
  EXPECT_THAT(
      UnknownFields("", "v1", "Pod", pod),
      ElementsAre(
          "foo", "metadata.labelz", "spec.containers[0].env[0].valueFrom.fieldRef.bogus",
          "spec.containers[0].imagePullPolicyy", "spec.containers[0].livenessProbe.httpGet.hots",
          "spec.containers[0].ports[0].protcol", "spec.containers[1].securityContext.priviledged",
          "spec.restartPolicyy", "status.conditions[0].statuz"));
}

TEST(UnknownFields, AcceptsValidObjectsOfEveryKind) {
  struct Case {
    const char* group;
    const char* kind;
    const char* json;
  };
  const Case cases[] = {
      {"", "ConfigMap", R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},
          "data":{"a.txt":"x","B_2":"y"},"binaryData":{"bin":"AAE="},"immutable":true})"},
      {"", "Secret", R"({"metadata":{"name":"s"},"type":"Opaque","data":{"k":"dg=="},
          "stringData":{"p":"q"}})"},
      {"", "Service", R"({"metadata":{"name":"s"},"spec":{"type":"NodePort","selector":{"app":"x"},
          "ports":[{"name":"http","port":80,"targetPort":"http","nodePort":30080},
                   {"port":53,"targetPort":53,"protocol":"UDP"}],
          "sessionAffinityConfig":{"clientIP":{"timeoutSeconds":10}}}})"},
      {"apps", "Deployment", R"({"metadata":{"name":"d","labels":{"app":"x"}},
          "spec":{"replicas":2,"selector":{"matchLabels":{"app":"x"},
            "matchExpressions":[{"key":"tier","operator":"In","values":["a"]}]},
          "strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":"25%","maxUnavailable":1}},
          "template":{"metadata":{"labels":{"app":"x"}},"spec":{"containers":[{"name":"c",
            "image":"i","args":["-v"],"readinessProbe":{"tcpSocket":{"port":8080}},
            "lifecycle":{"preStop":{"exec":{"command":["sleep","1"]}}}}],
            "affinity":{"podAntiAffinity":{"preferredDuringSchedulingIgnoredDuringExecution":[
              {"weight":1,"podAffinityTerm":{"topologyKey":"k","labelSelector":{"matchLabels":{"a":"b"}}}}]}},
            "tolerations":[{"key":"k","operator":"Exists","effect":"NoSchedule"}]}}}})"},
      {"batch", "Job", R"({"metadata":{"name":"j"},"spec":{"backoffLimit":1,"completions":2,
          "template":{"spec":{"restartPolicy":"Never","containers":[{"name":"c","image":"i"}]}}}})"},
      {"networking.k8s.io", "Ingress", R"({"metadata":{"name":"i"},"spec":{"ingressClassName":"x",
          "tls":[{"hosts":["a"],"secretName":"s"}],"rules":[{"host":"a","http":{"paths":[{"path":"/",
          "pathType":"Prefix","backend":{"service":{"name":"s","port":{"number":80}}}}]}}]}})"},
      {"networking.k8s.io", "NetworkPolicy", R"({"metadata":{"name":"n"},"spec":{"podSelector":{},
          "policyTypes":["Ingress"],"ingress":[{"from":[{"ipBlock":{"cidr":"10.0.0.0/8"}}],
          "ports":[{"port":"http","protocol":"TCP"}]}]}})"},
      {"coordination.k8s.io", "Lease", R"({"metadata":{"name":"l"},"spec":{"holderIdentity":"h",
          "leaseDurationSeconds":40,"renewTime":"2024-01-01T00:00:00.000000Z"}})"},
      {"discovery.k8s.io", "EndpointSlice", R"({"metadata":{"name":"e"},"addressType":"IPv4",
          "endpoints":[{"addresses":["10.0.0.1"],"conditions":{"ready":true},"nodeName":"n"}],
          "ports":[{"name":"http","port":80,"protocol":"TCP"}]})"},
      {"", "Node", R"({"metadata":{"name":"n"},"spec":{"podCIDR":"10.244.1.0/24",
          "taints":[{"key":"k","effect":"NoSchedule"}]},"status":{"capacity":{"cpu":"4","pods":110},
          "addresses":[{"type":"InternalIP","address":"172.18.0.2"}]}})"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.kind);
    const ResourceInfo* r = nullptr;
    for (const auto& res : AllResources()) {
      if (res.group == c.group && res.kind == c.kind) r = &res;
    }
    ASSERT_NE(r, nullptr);
    EXPECT_THAT(UnknownFields(c.group, "v1", c.kind, Json::parse(c.json)), ElementsAre());
  }
}

TEST(UnknownFields, LooksIntoPodTemplatesOfWorkloads) {
  Json deploy = Json::parse(R"({"metadata":{"name":"d"},"spec":{"replicas":1,
      "selector":{"matchLabels":{"a":"b"}},"strategy":{"rollingUpdate":{"maxUnaivailable":1}},
      "template":{"metadata":{"labels":{"a":"b"},"nmae":"x"},
                  "spec":{"containers":[{"name":"c","image":"i","imagePullPolicyy":"Always"}]}}}})");
  EXPECT_THAT(
      UnknownFields("apps", "v1", "Deployment", deploy),
      ElementsAre("spec.strategy.rollingUpdate.maxUnaivailable", "spec.template.metadata.nmae",
                  "spec.template.spec.containers[0].imagePullPolicyy"));
  Json job = Json::parse(R"({"spec":{"template":{"spec":{"backoffLimit":1,"containers":[]}}}})");
  EXPECT_THAT(UnknownFields("batch", "v1", "Job", job),
              ElementsAre("spec.template.spec.backoffLimit"));
  Json sts = Json::parse(R"({"spec":{"volumeClaimTemplates":[{"metadata":{"name":"data"},
      "spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}},"sise":1}}]}})");
  EXPECT_THAT(UnknownFields("apps", "v1", "StatefulSet", sts),
              ElementsAre("spec.volumeClaimTemplates[0].spec.sise"));
}

TEST(UnknownFields, OpaqueAndCustomValuesAreNotLookedInto) {
  Json pod = Json::parse(R"({"metadata":{"name":"p","managedFields":[{"manager":"m",
      "fieldsV1":{"f:spec":{"f:anything":{}}},"operation":"Apply"}]},
      "spec":{"containers":[{"name":"c","ports":[{"containerPort":"not-a-number"}],
      "resources":{"limits":{"cpu":{"weird":1}}}}]}})");
  EXPECT_THAT(UnknownFields("", "v1", "Pod", pod), ElementsAre());
  // Values of the wrong JSON type are decoding errors, not unknown fields.
  Json wrong = Json::parse(R"({"spec":{"containers":{"name":"c"},"volumes":"x"}})");
  EXPECT_THAT(UnknownFields("", "v1", "Pod", wrong), ElementsAre());
  EXPECT_THAT(UnknownFields("example.com", "v1", "Widget", Json::parse(R"({"x":1})")),
              ElementsAre());
}

// ---------------------------------------------------------------------------
// Strict decoding of raw bodies
// ---------------------------------------------------------------------------

TEST(StrictDecoding, ReportsUnknownAndDuplicateFieldsInDocumentOrder) {
  std::string body = R"({"apiVersion":"v1","kind":"Pod",
    "spec":{"foo":1,"containers":[{"name":"a","image":"x","name":"b","bar":{"deep":1}}]},
    "metadata":{"name":"p","labels":{"app":"1","app":"2"},"name":"q"}})";
  EXPECT_THAT(
      StrictDecodingErrors("", "v1", "Pod", body),
      ElementsAre("unknown field \"spec.foo\"", "duplicate field \"spec.containers[0].name\"",
                  "unknown field \"spec.containers[0].bar\"",
                  "duplicate field \"metadata.labels.app\"", "duplicate field \"metadata.name\""));
}

TEST(StrictDecoding, DeduplicatesAndSkipsUnknownAndOpaqueSubtrees) {
  std::string body = R"({"spec":{"foo":{"a":1,"a":2},"foo":2,"containers":[]},
    "metadata":{"managedFields":[{"fieldsV1":{"f:x":{},"f:x":{}}}]}})";
  EXPECT_THAT(StrictDecodingErrors("", "v1", "Pod", body),
              ElementsAre("unknown field \"spec.foo\""));
  // Unknown kind: only duplicates, everywhere.
  EXPECT_THAT(StrictDecodingErrors("x.io", "v1", "W", std::string(R"({"a":{"b":1,"b":2},"c":3})")),
              ElementsAre("duplicate field \"a.b\""));
}

TEST(StrictDecoding, StopsAtAHundredErrors) {
  std::string body = "{\"spec\":{";
  for (int i = 0; i < 150; ++i)
    body += (i ? "," : "") + std::string("\"f") + std::to_string(i) + "\":1";
  body += "}}";
  auto errors = StrictDecodingErrors("", "v1", "Pod", body);
  ASSERT_EQ(errors.size(), 100u);
  EXPECT_EQ(errors[0], "unknown field \"spec.f0\"");
  EXPECT_EQ(errors[99], "unknown field \"spec.f99\"");
}

TEST(StrictDecoding, ParsedObjectVariantReportsUnknownFields) {
  EXPECT_THAT(UnknownFieldErrors("", "v1", "Service",
                                 Json::parse(R"({"spec":{"ports":[{"port":80,"nodeport":1}]}})")),
              ElementsAre("unknown field \"spec.ports[0].nodeport\""));
}

TEST(DuplicateFields, FindsRepeatedKeysAnywhere) {
  EXPECT_THAT(DuplicateFields(R"({"a":1,"b":{"c":[{"d":1,"d":2}],"c":3},"a":2})"),
              ElementsAre("b.c[0].d", "b.c", "a"));
  // Escaped and plain spellings of one key are the same key.
  EXPECT_THAT(DuplicateFields(R"({"ab":1,"a\u0062":2, "x\"y":1, "x\"y":2})"),
              ElementsAre("ab", "x\"y"));
  EXPECT_THAT(DuplicateFields(R"({"a":[1,2,{"k":true,"k":null}], "s":"{\"q\":1,\"q\":2}"})"),
              ElementsAre("a[2].k"));
  EXPECT_THAT(DuplicateFields(R"({"a":1,"b":2})"), ElementsAre());
  EXPECT_THAT(DuplicateFields(R"({"a":1,"a":2,)"), ElementsAre("a"));  // stops at the syntax error
  EXPECT_THAT(DuplicateFields(""), ElementsAre());
}

TEST(StrictDecoding, MessagesAreWordedAsKubeApiserverWordsThem) {
  std::vector<std::string> errors = {"unknown field \"spec.containers[0].imagePullPolicyy\"",
                                     "unknown field \"spec.foo\""};
  EXPECT_EQ(StrictDecodingMessage(errors),
            "strict decoding error: unknown field \"spec.containers[0].imagePullPolicyy\", "
            "unknown field \"spec.foo\"");
  Error create = StrictDecodingBodyError("Deployment", "v1", "Deployment",
                                         {"unknown field \"spec.strategy.rollingUpdate.x\""});
  EXPECT_EQ(create.code(), Code::kBadRequest);
  EXPECT_EQ(create.message(),
            "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding "
            "error: unknown field \"spec.strategy.rollingUpdate.x\"");
  Error patch = StrictDecodingPatchError({"unknown field \"metadata.app\""});
  EXPECT_EQ(patch.code(), Code::kBadRequest);
  EXPECT_EQ(patch.message(), "strict decoding error: unknown field \"metadata.app\"");
  EXPECT_EQ(WarningHeaderValue("unknown field \"spec.foo\""),
            "299 - \"unknown field \\\"spec.foo\\\"\"");
  EXPECT_EQ(GoQuote("a\tb\\c\x01"), "\"a\\tb\\\\c\\x01\"");
}

}  // namespace
}  // namespace kin::apiserver
