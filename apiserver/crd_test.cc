// CustomResourceDefinitions: the structural-schema functions on plain JSON,
// and the CRD lifecycle through a Registry on a real store (create, served
// at once, custom resources validated, defaulted and pruned, versions,
// scale, delete with cleanup, a restart).
#include "apiserver/crd.h"

#include <gtest/gtest.h>

#include "apiserver/registry.h"
#include "apiserver/store.h"
#include "base/error.h"
#include "testing/e2e_support.h"

namespace kin::apiserver {
namespace {

Json WidgetSchema() {
  return Json::parse(R"({
    "type": "object",
    "properties": {
      "spec": {
        "type": "object",
        "required": ["size"],
        "properties": {
          "size": {"type": "string", "enum": ["small", "large"]},
          "replicas": {"type": "integer", "minimum": 0, "maximum": 10, "default": 1},
          "name": {"type": "string", "minLength": 3, "maxLength": 5, "pattern": "^[a-z]+$"},
          "port": {"x-kubernetes-int-or-string": true},
          "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"},
                   "x-kubernetes-list-type": "set"},
          "note": {"type": "string", "nullable": true},
          "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
          "labels": {"type": "object", "additionalProperties": {"type": "string"}},
          "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                       "x-kubernetes-preserve-unknown-fields": true}
        }
      },
      "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}}
    }
  })");
}

std::vector<std::string> Messages(const Json& schema, const Json& value) {
  std::vector<std::string> out;
  for (const auto& e : ValidateAgainstSchema(schema, value, "")) {
    out.push_back(e.field + ": " + e.message);
  }
  return out;
}

TEST(CrdSchemaTest, TypeErrorsWithKubeApiserversWords) {
  Json obj = {{"spec", {{"size", "small"}, {"replicas", "string"}}}};
  EXPECT_EQ(Messages(WidgetSchema(), obj),
            std::vector<std::string>{"spec.replicas: Invalid value: \"string\": spec.replicas in "
                                     "body must be of type integer: \"string\""});
}

TEST(CrdSchemaTest, RequiredEnumBoundsLengthsPatternItems) {
  Json obj = {{"spec",
               {{"size", "medium"},
                {"replicas", 11},
                {"name", "AB"},
                {"tags", {"a", "b", "a"}}}}};
  auto m = Messages(WidgetSchema(), obj);
  std::vector<std::string> want = {
      "spec.size: Unsupported value: \"medium\": supported values: \"small\", \"large\"",
      "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10",
      "spec.name: Invalid value: \"AB\": spec.name in body should be at least 3 chars long",
      "spec.name: Invalid value: \"AB\": spec.name in body should match '^[a-z]+$'",
      "spec.tags: Too many: 3: must have at most 2 items",
      "spec.tags[2]: Duplicate value: \"a\""};
  for (const auto& w : want) {
    EXPECT_NE(std::find(m.begin(), m.end(), w), m.end()) << w;
  }
  EXPECT_EQ(Messages(WidgetSchema(), Json{{"spec", Json::object()}}),
            std::vector<std::string>{"spec.size: Required value"});
  EXPECT_EQ(Messages(WidgetSchema(), Json{{"spec", {{"size", "small"}, {"replicas", -1}}}}),
            std::vector<std::string>{"spec.replicas: Invalid value: -1: spec.replicas in body "
                                     "should be greater than or equal to 0"});
  EXPECT_EQ(Messages(WidgetSchema(), Json{{"spec", {{"size", "small"}, {"name", "abcdef"}}}}),
            std::vector<std::string>{"spec.name: Too long: may not be more than 5 bytes"});
}

TEST(CrdSchemaTest, IntOrStringNullableAndEmbeddedResources) {
  Json ok = {{"spec", {{"size", "small"}, {"port", 80}, {"note", nullptr}}}};
  EXPECT_TRUE(Messages(WidgetSchema(), ok).empty());
  ok["spec"]["port"] = "http";
  EXPECT_TRUE(Messages(WidgetSchema(), ok).empty());
  Json bad = {{"spec", {{"size", "small"}, {"port", true}}}};
  EXPECT_EQ(Messages(WidgetSchema(), bad),
            std::vector<std::string>{"spec.port: Invalid value: \"boolean\": spec.port in body "
                                     "must be of type integer,string: \"boolean\""});
  Json embedded = {{"spec", {{"size", "small"}, {"template", {{"spec", Json::object()}}}}}};
  EXPECT_EQ(Messages(WidgetSchema(), embedded),
            (std::vector<std::string>{"spec.template.apiVersion: Required value",
                                      "spec.template.kind: Required value"}));
}

TEST(CrdSchemaTest, DefaultsAndPruning) {
  Json obj = {{"apiVersion", "example.com/v1"},
              {"kind", "Widget"},
              {"metadata", {{"name", "w"}, {"labels", {{"a", "b"}}}}},
              {"spec",
               {{"size", "small"},
                {"unknown", 1},
                {"free", {{"anything", {{"goes", true}}}}},
                {"labels", {{"x", "y"}}},
                {"template",
                 {{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", {{"name", "p"}}}}}}},
              {"extra", "dropped"}};
  ApplySchemaDefaults(WidgetSchema(), obj);
  std::vector<std::string> pruned;
  PruneUnknownFields(WidgetSchema(), obj, "", &pruned, /*root=*/true);
  EXPECT_EQ(obj["spec"]["replicas"], 1);
  EXPECT_EQ(pruned, (std::vector<std::string>{"spec.unknown", "extra"}));
  EXPECT_EQ(obj["spec"]["free"]["anything"]["goes"], true);
  EXPECT_EQ(obj["spec"]["labels"]["x"], "y");
  EXPECT_EQ(obj["spec"]["template"]["metadata"]["name"], "p");
  EXPECT_EQ(obj["metadata"]["labels"]["a"], "b");
}

Json WidgetCrd(const std::string& scope = "Namespaced") {
  Json schema = WidgetSchema();
  return {{"apiVersion", "apiextensions.k8s.io/v1"},
          {"kind", "CustomResourceDefinition"},
          {"metadata", {{"name", "widgets.example.com"}}},
          {"spec",
           {{"group", "example.com"},
            {"scope", scope},
            {"names",
             {{"plural", "widgets"}, {"kind", "Widget"}, {"shortNames", {"wd"}},
              {"categories", {"all"}}}},
            {"versions",
             {{{"name", "v1"},
               {"served", true},
               {"storage", true},
               {"schema", {{"openAPIV3Schema", schema}}},
               {"subresources",
                {{"status", Json::object()},
                 {"scale",
                  {{"specReplicasPath", ".spec.replicas"},
                   {"statusReplicasPath", ".status.replicas"}}}}}},
              {{"name", "v1beta1"},
               {"served", true},
               {"storage", false},
               {"schema", {{"openAPIV3Schema", schema}}}}}}}}};
}

std::vector<std::string> CrdMessages(const Json& crd) {
  std::vector<std::string> out;
  for (const auto& c : CustomResourceDefinitionErrors(crd, nullptr)) {
    out.push_back(c.field + ": " + c.message);
  }
  return out;
}

TEST(CrdValidationTest, NamesGroupVersionsAndSchemas) {
  Json crd = WidgetCrd();
  crd["spec"]["names"]["singular"] = "widget";
  crd["spec"]["names"]["listKind"] = "WidgetList";
  EXPECT_TRUE(CrdMessages(crd).empty());

  Json bad = crd;
  bad["spec"]["group"] = "example";
  bad["metadata"]["name"] = "widgets.example";
  EXPECT_EQ(CrdMessages(bad), std::vector<std::string>{"spec.group: Invalid value: \"example\": "
                                                       "should be a domain with at least one dot"});
  bad = crd;
  bad["metadata"]["name"] = "gadgets.example.com";
  EXPECT_EQ(CrdMessages(bad),
            std::vector<std::string>{"metadata.name: Invalid value: \"gadgets.example.com\": must "
                                     "be spec.names.plural+\".\"+spec.group"});
  bad = crd;
  bad["spec"]["scope"] = "Global";
  EXPECT_EQ(CrdMessages(bad), std::vector<std::string>{"spec.scope: Unsupported value: "
                                                       "\"Global\": supported values: "
                                                       "\"Cluster\", \"Namespaced\""});
  bad = crd;
  bad["spec"]["versions"][1]["storage"] = true;
  EXPECT_EQ(CrdMessages(bad).size(), 1u);
  EXPECT_NE(CrdMessages(bad)[0].find("must have exactly one version marked as storage version"),
            std::string::npos);
  bad = crd;
  bad["spec"]["versions"][0]["schema"].erase("openAPIV3Schema");
  EXPECT_EQ(CrdMessages(bad), std::vector<std::string>{"spec.versions[0].schema.openAPIV3Schema: "
                                                       "Required value: schemas are required"});
  bad = crd;
  bad["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].erase("type");
  EXPECT_EQ(CrdMessages(bad),
            std::vector<std::string>{"spec.versions[0].schema.openAPIV3Schema.properties[spec]."
                                     "type: Required value: must not be empty for specified "
                                     "object fields"});
  bad = crd;
  bad["spec"]["names"]["kind"] = "";
  bad["spec"]["names"]["plural"] = "Widgets";
  bad["metadata"]["name"] = "Widgets.example.com";
  auto m = CrdMessages(bad);
  EXPECT_NE(std::find(m.begin(), m.end(), "spec.names.kind: Required value"), m.end());
  EXPECT_NE(m[0].find("spec.names.plural: Invalid value: \"Widgets\": a DNS-1035 label"),
            std::string::npos)
      << m[0];
}

class CrdRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }
  void TearDown() override {
    registry_.reset();
    store_.reset();
    SetCustomResources({});  // the dynamic set is process-wide
  }
  void Open() {
    registry_.reset();
    store_.reset();
    StoreOptions so;
    so.index_fields = IndexFields;
    store_ = Store::Open(dir_.File("kin.db"), so);
    registry_ = std::make_unique<Registry>(*store_, RegistryOptions{});
    registry_->Bootstrap();
  }
  const ResourceInfo& Crds() { return *FindResource("apiextensions.k8s.io", "v1", "customresourcedefinitions"); }
  Json Widget(const std::string& name, const std::string& version = "v1") {
    return {{"apiVersion", "example.com/" + version},
            {"kind", "Widget"},
            {"metadata", {{"name", name}}},
            {"spec", {{"size", "small"}}}};
  }
  testing::TempDir dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Registry> registry_;
  WriteOptions wo_;
};

TEST_F(CrdRegistryTest, ACreatedCrdIsEstablishedAndServedAtOnce) {
  EXPECT_EQ(FindResource("example.com", "v1", "widgets"), nullptr);
  Json crd = registry_->Create(Crds(), "", WidgetCrd(), wo_);
  EXPECT_EQ(crd["spec"]["names"]["singular"], "widget");
  EXPECT_EQ(crd["spec"]["names"]["listKind"], "WidgetList");
  EXPECT_EQ(crd["metadata"]["finalizers"][0], kCrdCleanupFinalizer);
  EXPECT_EQ(crd["status"]["acceptedNames"]["kind"], "Widget");
  EXPECT_EQ(crd["status"]["storedVersions"], Json({"v1"}));
  std::map<std::string, std::string> conds;
  for (const auto& c : crd["status"]["conditions"]) conds[c["type"]] = c["status"];
  EXPECT_EQ(conds["NamesAccepted"], "True");
  EXPECT_EQ(conds["Established"], "True");

  const ResourceInfo* v1 = FindResource("example.com", "v1", "widgets");
  ASSERT_NE(v1, nullptr);
  EXPECT_TRUE(v1->custom);
  EXPECT_TRUE(v1->has_subresource("scale"));
  EXPECT_EQ(LookupResource("wd"), v1);
  EXPECT_EQ(FindResourceByKind("example.com/v1beta1", "Widget")->version, "v1beta1");

  Json w = registry_->Create(*v1, "default", Widget("w1"), wo_);
  EXPECT_EQ(w["spec"]["replicas"], 1);  // defaulted
  EXPECT_EQ(w["metadata"]["generation"], 1);
  try {
    Json bad = Widget("w2");
    bad["spec"]["replicas"] = "string";
    registry_->Create(*v1, "default", bad, wo_);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalid);
    EXPECT_EQ(e.message(),
              "Widget.example.com \"w2\" is invalid: spec.replicas: Invalid value: \"string\": "
              "spec.replicas in body must be of type integer: \"string\"");
  }
}

TEST_F(CrdRegistryTest, VersionsStatusScaleAndGeneration) {
  registry_->Create(Crds(), "", WidgetCrd(), wo_);
  const ResourceInfo& v1 = *FindResource("example.com", "v1", "widgets");
  const ResourceInfo& beta = *FindResource("example.com", "v1beta1", "widgets");
  registry_->Create(beta, "default", Widget("w", "v1beta1"), wo_);
  // Stored in the storage version, served in any.
  EXPECT_EQ(Json::parse(*store_->Get("widgets.example.com", "default", "w")->json)["apiVersion"],
            "example.com/v1");
  EXPECT_EQ(registry_->Get(beta, "default", "w")["apiVersion"], "example.com/v1beta1");
  EXPECT_EQ(registry_->List(beta, "default", {})["items"][0]["apiVersion"], "example.com/v1beta1");
  // The main endpoint ignores status; /status ignores spec.
  Json w = registry_->Get(v1, "default", "w");
  w["status"] = {{"replicas", 3}};
  w["metadata"].erase("resourceVersion");
  w = registry_->Update(v1, "default", "w", w, "", wo_);
  EXPECT_FALSE(w.contains("status"));
  EXPECT_EQ(w["metadata"]["generation"], 1);
  w["status"] = {{"replicas", 3}};
  w["spec"]["size"] = "large";
  w = registry_->Update(v1, "default", "w", w, "status", wo_);
  EXPECT_EQ(w["status"]["replicas"], 3);
  EXPECT_EQ(w["spec"]["size"], "small");
  EXPECT_EQ(w["metadata"]["generation"], 1);
  // Scale.
  registry_->Update(v1, "default", "w", Json{{"spec", {{"replicas", 5}}}}, "scale", wo_);
  Json scale = registry_->GetScale(v1, "default", "w");
  EXPECT_EQ(scale["spec"]["replicas"], 5);
  EXPECT_EQ(scale["status"]["replicas"], 3);
  EXPECT_EQ(registry_->Get(v1, "default", "w")["metadata"]["generation"], 2);
  // Strategic merge patch is not for custom resources.
  try {
    registry_->Patch(v1, "default", "w", PatchType::kStrategic, R"({"spec":{"size":"large"}})",
                     "", wo_);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.http_status(), 415);
  }
  Json merged = registry_->Patch(v1, "default", "w", PatchType::kMerge,
                                 R"({"spec":{"size":"large","bogus":1}})", "", wo_);
  EXPECT_EQ(merged["spec"]["size"], "large");
  EXPECT_FALSE(merged["spec"].contains("bogus"));  // pruned
}

TEST_F(CrdRegistryTest, DeletingTheCrdDeletesItsObjectsAndSurvivesRestart) {
  registry_->Create(Crds(), "", WidgetCrd(), wo_);
  registry_->Create(*FindResource("example.com", "v1", "widgets"), "default", Widget("a"), wo_);
  // A restart: the CRD is served again from the store.
  SetCustomResources({});
  Open();
  const ResourceInfo* v1 = FindResource("example.com", "v1", "widgets");
  ASSERT_NE(v1, nullptr);
  EXPECT_EQ(registry_->Get(*v1, "default", "a")["spec"]["size"], "small");

  registry_->Delete(Crds(), "", "widgets.example.com", DeleteOptions{});
  EXPECT_FALSE(store_->Get(kCrdBucket, "", "widgets.example.com").has_value());
  EXPECT_EQ(store_->Count("widgets.example.com"), 0u);
  EXPECT_EQ(FindResource("example.com", "v1", "widgets"), nullptr);
}

TEST_F(CrdRegistryTest, AnInvalidCrdIsRefusedWithAStatus) {
  Json crd = WidgetCrd();
  crd["spec"]["group"] = "example";
  try {
    registry_->Create(Crds(), "", crd, wo_);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalid);
    EXPECT_NE(e.message().find("CustomResourceDefinition.apiextensions.k8s.io "
                               "\"widgets.example.com\" is invalid: "),
              std::string::npos);
  }
  EXPECT_EQ(FindResource("example.com", "v1", "widgets"), nullptr);
}

TEST_F(CrdRegistryTest, ClusterScopeWatchInAnotherVersionAndTheDeleteAnswer) {
  registry_->Create(Crds(), "", WidgetCrd("Cluster"), wo_);
  const ResourceInfo& v1 = *FindResource("example.com", "v1", "widgets");
  const ResourceInfo& beta = *FindResource("example.com", "v1beta1", "widgets");
  EXPECT_FALSE(v1.namespaced);
  ListOptions lo;
  auto watch = registry_->Watch(beta, "", lo);
  Json made = registry_->Create(v1, "", Widget("c"), wo_);
  EXPECT_FALSE(made["metadata"].contains("namespace"));
  RegistryWatch::Event e;
  ASSERT_TRUE(watch->Next(e, std::chrono::seconds(5)));
  EXPECT_EQ(e.type, "ADDED");
  EXPECT_EQ(Json::parse(*e.json)["apiVersion"], "example.com/v1beta1");
  // A label selector and a field selector on metadata.name.
  ListOptions by_name;
  by_name.field_selector = "metadata.name=c";
  EXPECT_EQ(registry_->List(v1, "", by_name)["items"].size(), 1u);
  by_name.field_selector = "metadata.name=d";
  EXPECT_EQ(registry_->List(v1, "", by_name)["items"].size(), 0u);
  // DELETE answers with the object, as the custom resource store does.
  Json deleted = registry_->Delete(beta, "", "c", DeleteOptions{});
  EXPECT_EQ(deleted["kind"], "Widget");
  EXPECT_EQ(deleted["apiVersion"], "example.com/v1beta1");
}

TEST_F(CrdRegistryTest, TerminatingCrdRefusesNewObjectsUntilItsObjectsAreGone) {
  registry_->Create(Crds(), "", WidgetCrd(), wo_);
  const ResourceInfo& v1 = *FindResource("example.com", "v1", "widgets");
  Json held = Widget("held");
  held["metadata"]["finalizers"] = {"example.com/hold"};
  registry_->Create(v1, "default", held, wo_);
  registry_->Delete(Crds(), "", "widgets.example.com", DeleteOptions{});
  // The object waits for its own finalizer; so does the CRD.
  Json crd = registry_->Get(Crds(), "", "widgets.example.com");
  std::map<std::string, Json> conds;
  for (const auto& c : crd["status"]["conditions"]) conds[c["type"]] = c;
  EXPECT_EQ(conds["Terminating"]["status"], "True");
  EXPECT_EQ(conds["Terminating"]["reason"], "InstanceDeletionInProgress");
  try {
    registry_->Create(v1, "default", Widget("late"), wo_);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.http_status(), 405);
    EXPECT_EQ(e.message(), "create not allowed while custom resource definition is terminating");
  }
  // The object's finalizer goes: the object, then the CRD.
  registry_->Patch(v1, "default", "held", PatchType::kMerge,
                   R"({"metadata":{"finalizers":null}})", "", wo_);
  EXPECT_FALSE(store_->Get(kCrdBucket, "", "widgets.example.com").has_value());
  EXPECT_EQ(FindResource("example.com", "v1", "widgets"), nullptr);
}

TEST_F(CrdRegistryTest, CelRulesAreAcceptedWithAWarning) {
  Json crd = WidgetCrd();
  EXPECT_TRUE(CustomResourceDefinitionWarnings(crd).empty());
  crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
     ["x-kubernetes-validations"] = {{{"rule", "self.replicas <= 5"}}};
  EXPECT_EQ(CustomResourceDefinitionWarnings(crd),
            std::vector<std::string>{
                "x-kubernetes-validations (CEL) rules are accepted but not enforced by kin"});
  registry_->Create(Crds(), "", crd, wo_);
  Json w = Widget("w");
  w["spec"]["replicas"] = 7;
  EXPECT_EQ(registry_->Create(*FindResource("example.com", "v1", "widgets"), "default", w,
                              wo_)["spec"]["replicas"],
            7);
}

TEST_F(CrdRegistryTest, OpenApiV3DocumentPerCustomGroupVersion) {
  EXPECT_TRUE(CustomOpenApiV3Index().empty());
  registry_->Create(Crds(), "", WidgetCrd(), wo_);
  auto index = CustomOpenApiV3Index();
  ASSERT_EQ(index.size(), 2u);
  EXPECT_EQ(index[0].first, "apis/example.com/v1");
  Json doc = Json::parse(CustomOpenApiV3Document("apis/example.com/v1"));
  const Json& widget = doc["components"]["schemas"]["com.example.v1.Widget"];
  EXPECT_EQ(widget["x-kubernetes-group-version-kind"][0]["kind"], "Widget");
  EXPECT_EQ(widget["properties"]["spec"]["properties"]["size"]["enum"], Json({"small", "large"}));
  EXPECT_TRUE(doc["components"]["schemas"].contains(
      "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
  // kubectl looks for fieldValidation on the kind's PATCH operation.
  const Json& patch =
      doc["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]["patch"];
  EXPECT_EQ(patch["x-kubernetes-group-version-kind"]["kind"], "Widget");
  bool field_validation = false;
  for (const auto& p : patch["parameters"]) field_validation |= p["name"] == "fieldValidation";
  EXPECT_TRUE(field_validation);
  EXPECT_FALSE(patch["requestBody"]["content"].contains("application/strategic-merge-patch+json"));
  EXPECT_EQ(CustomOpenApiV3Document("apis/example.com/v2"), "");
  EXPECT_EQ(CustomOpenApiV3Document("apis/apps/v1"), "");
}

TEST_F(CrdRegistryTest, ConflictingNamesAreNotAccepted) {
  registry_->Create(Crds(), "", WidgetCrd(), wo_);
  Json other = WidgetCrd();
  other["metadata"]["name"] = "gizmos.example.com";
  other["spec"]["names"]["plural"] = "gizmos";  // kind Widget (singular widget) is taken
  other["spec"]["names"].erase("shortNames");
  Json made = registry_->Create(Crds(), "", other, wo_);
  std::map<std::string, Json> conds;
  for (const auto& c : made["status"]["conditions"]) conds[c["type"]] = c;
  EXPECT_EQ(conds["NamesAccepted"]["status"], "False");
  EXPECT_EQ(conds["NamesAccepted"]["message"], "\"widget\" is already in use");
  EXPECT_EQ(conds["Established"]["status"], "False");
  EXPECT_EQ(FindResource("example.com", "v1", "gizmos"), nullptr);
}

}  // namespace
}  // namespace kin::apiserver
