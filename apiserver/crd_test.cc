// CustomResourceDefinitions: the structural-schema functions on plain JSON,
// and the CRD lifecycle through a Registry on a real store (create, served
// at once, custom resources validated, defaulted and pruned, versions,
// scale, delete with cleanup, a restart).
#include "apiserver/crd.h"

#include <gtest/gtest.h>

#include <functional>

#include "apiserver/registry.h"
#include "apiserver/schema_format.h"
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
                       "x-kubernetes-preserve-unknown-fields": true},
          "contact": {"type": "object",
                      "properties": {"email": {"type": "string", "format": "email"},
                                     "phone": {"type": "string"}},
                      "oneOf": [{"required": ["email"]}, {"required": ["phone"]}]}
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
      "spec.tags: Too many: 3: must have at most 2 items",
      "spec.tags[2]: Duplicate value: \"a\""};
  for (const auto& w : want) {
    EXPECT_NE(std::find(m.begin(), m.end(), w), m.end()) << w;
  }
  // The string checks stop at the first that fails, as kube-openapi's.
  EXPECT_EQ(Messages(WidgetSchema(), Json{{"spec", {{"size", "small"}, {"name", "ABC"}}}}),
            std::vector<std::string>{
                "spec.name: Invalid value: \"ABC\": spec.name in body should match '^[a-z]+$'"});
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

// A spec with fields a (string) and b (integer) and junctors on it.
Json JunctorSchema(const std::string& junctor, const Json& schemas) {
  Json spec = {{"type", "object"},
               {"properties",
                {{"a", {{"type", "string"}}},
                 {"b", {{"type", "integer"}}},
                 {"c", {{"type", "string"}}},
                 {"list",
                  {{"type", "array"},
                   {"items",
                    {{"type", "string"},
                     {"anyOf", {{{"pattern", "^a"}}, {{"pattern", "^b"}}}}}}}}}}};
  if (!junctor.empty()) spec[junctor] = schemas;
  return {{"type", "object"}, {"properties", {{"spec", spec}}}};
}

TEST(CrdSchemaTest, AllOfReportsEveryFailingSchema) {
  Json schema = JunctorSchema(
      "allOf", Json::array({{{"required", {"a"}}}, {{"properties", {{"b", {{"minimum", 5}}}}}}}));
  EXPECT_EQ(Messages(schema, Json{{"spec", {{"b", 1}}}}),
            (std::vector<std::string>{
                "spec.a: Required value",
                "spec.b: Invalid value: 1: spec.b in body should be greater than or equal to 5",
                "<nil>: Invalid value: \"\": \"spec\" must validate all the schemas (allOf). None "
                "validated"}));
  EXPECT_EQ(Messages(schema, Json{{"spec", {{"a", "x"}, {"b", 1}}}}),
            (std::vector<std::string>{
                "spec.b: Invalid value: 1: spec.b in body should be greater than or equal to 5",
                "<nil>: Invalid value: \"\": \"spec\" must validate all the schemas (allOf)"}));
  EXPECT_TRUE(Messages(schema, Json{{"spec", {{"a", "x"}, {"b", 5}}}}).empty());
  auto errs = ValidateAgainstSchema(schema, Json{{"spec", {{"a", "x"}, {"b", 1}}}}, "");
  ASSERT_EQ(errs.size(), 2u);
  EXPECT_EQ(errs[1].reason, "FieldValueInvalid");
}

TEST(CrdSchemaTest, AnyOfPassesOnOneAndReportsTheBranchThatCameClosest) {
  Json schema =
      JunctorSchema("anyOf", Json::array({{{"required", {"a"}}}, {{"required", {"b"}}}}));
  EXPECT_TRUE(Messages(schema, Json{{"spec", {{"b", 1}}}}).empty());
  EXPECT_EQ(Messages(schema, Json{{"spec", Json::object()}}),
            (std::vector<std::string>{
                "<nil>: Invalid value: \"\": \"spec\" must validate at least one schema (anyOf)",
                "spec.a: Required value"}));
  // The second branch checks more before failing: its errors are the ones told.
  schema = JunctorSchema("anyOf", Json::array({{{"required", {"a", "c"}}},
                                               {{"properties", {{"b", {{"minimum", 5}}}}}}}));
  EXPECT_EQ(Messages(schema, Json{{"spec", {{"b", 1}}}}),
            (std::vector<std::string>{
                "<nil>: Invalid value: \"\": \"spec\" must validate at least one schema (anyOf)",
                "spec.b: Invalid value: 1: spec.b in body should be greater than or equal to 5"}));
  // In array items, with the item's path.
  EXPECT_EQ(Messages(JunctorSchema("", Json()), Json{{"spec", {{"list", {"apple", "cherry"}}}}}),
            (std::vector<std::string>{
                "<nil>: Invalid value: \"\": \"spec.list[1]\" must validate at least one schema "
                "(anyOf)",
                "spec.list[1]: Invalid value: \"cherry\": spec.list[1] in body should match '^a'"}));
}

TEST(CrdSchemaTest, OneOfWantsExactlyOne) {
  Json schema =
      JunctorSchema("oneOf", Json::array({{{"required", {"a"}}}, {{"required", {"b"}}}}));
  EXPECT_TRUE(Messages(schema, Json{{"spec", {{"a", "x"}}}}).empty());
  EXPECT_EQ(Messages(schema, Json{{"spec", {{"a", "x"}, {"b", 1}}}}),
            std::vector<std::string>{"<nil>: Invalid value: \"\": \"spec\" must validate one and "
                                     "only one schema (oneOf). Found 2 valid alternatives"});
  EXPECT_EQ(Messages(schema, Json{{"spec", Json::object()}}),
            (std::vector<std::string>{"<nil>: Invalid value: \"\": \"spec\" must validate one and "
                                      "only one schema (oneOf). Found none valid",
                                      "spec.a: Required value"}));
}

TEST(CrdSchemaTest, NotRefusesWhatItsSchemaAccepts) {
  Json schema = JunctorSchema("not", {{"required", {"c"}}});
  EXPECT_TRUE(Messages(schema, Json{{"spec", {{"a", "x"}}}}).empty());
  EXPECT_EQ(Messages(schema, Json{{"spec", {{"c", "x"}}}}),
            std::vector<std::string>{
                "<nil>: Invalid value: \"\": \"spec\" must not validate the schema (not)"});
}

TEST(CrdSchemaTest, FormatsAsKubeApiserverChecksThem) {
  Json schema = {{"type", "object"},
                 {"properties",
                  {{"spec",
                    {{"type", "object"},
                     {"properties",
                      {{"email", {{"type", "string"}, {"format", "email"}}},
                       {"when", {{"type", "string"}, {"format", "date-time"}}},
                       {"n", {{"type", "integer"}, {"format", "int32"}}},
                       {"odd", {{"type", "string"}, {"format", "not-a-format"}}},
                       {"num", {{"type", "integer"}, {"format", "email"}}}}}}}}}};
  auto check = [&](const Json& spec) { return Messages(schema, Json{{"spec", spec}}); };
  EXPECT_EQ(check({{"email", "foo"}}),
            std::vector<std::string>{"spec.email: Invalid value: \"foo\": spec.email in body must "
                                     "be of type email: \"foo\""});
  EXPECT_TRUE(check({{"email", "Ann <ann@example.com>"}}).empty());
  EXPECT_EQ(check({{"email", 5}}),
            std::vector<std::string>{"spec.email: Invalid value: \"int64\": spec.email in body "
                                     "must be of type email: \"int64\""});
  // kube-openapi's type check lets an array through a formatted string field.
  EXPECT_TRUE(check({{"email", {"a"}}}).empty());
  EXPECT_EQ(check({{"when", "2024-02-30T10:00:00Z"}}),
            std::vector<std::string>{"spec.when: Invalid value: \"2024-02-30T10:00:00Z\": "
                                     "spec.when in body must be of type date-time: "
                                     "\"2024-02-30T10:00:00Z\""});
  EXPECT_TRUE(check({{"when", "2024-02-29T10:00:00.5+01:00"}}).empty());
  EXPECT_EQ(check({{"n", 1.5}}),
            std::vector<std::string>{"spec.n: Invalid value: \"float64\": spec.n in body must be "
                                     "of type int32: \"float64\""});
  EXPECT_TRUE(check({{"n", 7}}).empty());
  // Unknown formats, and string formats on other types, are ignored.
  EXPECT_TRUE(check({{"odd", "anything"}, {"num", 3}}).empty());
  auto errs = ValidateAgainstSchema(schema, Json{{"spec", {{"email", "foo"}}}}, "");
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0].reason, "FieldValueTypeInvalid");
}

TEST(SchemaFormatTest, WhichFormatsTakeEffect) {
  EXPECT_EQ(EffectiveSchemaFormat("string", "date-time"), "date-time");
  EXPECT_EQ(EffectiveSchemaFormat("", "uuid"), "uuid");
  EXPECT_EQ(EffectiveSchemaFormat("integer", "int32"), "int32");
  EXPECT_EQ(EffectiveSchemaFormat("number", "double"), "double");
  EXPECT_EQ(EffectiveSchemaFormat("integer", "email"), "");
  EXPECT_EQ(EffectiveSchemaFormat("string", "int32"), "");
  EXPECT_EQ(EffectiveSchemaFormat("boolean", "email"), "");
  EXPECT_EQ(EffectiveSchemaFormat("string", "quantity-of-things"), "");
  EXPECT_TRUE(IsKnownStringFormat("date-time"));
  EXPECT_FALSE(IsKnownStringFormat("int32"));
}

TEST(SchemaFormatTest, EachFamilyAcceptsAndRefuses) {
  struct Case {
    const char* format;
    std::vector<std::string> good, bad;
  };
  const std::vector<Case> cases = {
      {"bsonobjectid", {"507f1f77bcf86cd799439011"}, {"507f1f77bcf86cd79943901", "zz"}},
      {"uri",
       {"https://example.com/a?b=c", "/just/a/path", "mailto:ann@example.com"},
       {"relative/path", "http://exa mple.com/", "/a%zz", ""}},
      {"email",
       {"a@example.com", "Ann <ann@example.com>", "\"a b\"@example.com"},
       {"foo", "a@", "@b.c", "a..b@c.d", ""}},
      {"hostname", {"example.com", "a-b", "k8s.io", "localhost"}, {"-bad.com", "a_b.com", ""}},
      {"ipv4", {"10.0.0.1", "::ffff:10.0.0.1"}, {"10.0.0.256", "::1", "010.0.0.1"}},
      {"ipv6", {"::1", "fe80::1"}, {"10.0.0.1", "fe80::1::2"}},
      {"cidr", {"10.0.0.0/8", "fd00::/64"}, {"10.0.0.0/33", "10.0.0.0", "10.0.0.0/x"}},
      {"mac",
       {"00:1a:2b:3c:4d:5e", "00-1A-2B-3C-4D-5E", "001a.2b3c.4d5e"},
       {"00:1a:2b:3c:4d", "00:1a-2b:3c:4d:5e", "001a:2b3c:4d5e"}},
      {"uuid", {"123e4567-e89b-12d3-a456-426614174000", "123E4567E89B12D3A456426614174000"},
       {"123e4567-e89b-12d3-a456-42661417400"}},
      {"uuid3", {"123e4567-e89b-32d3-a456-426614174000"}, {"123e4567-e89b-42d3-a456-426614174000"}},
      {"uuid4", {"123e4567-e89b-42d3-a456-426614174000"}, {"123e4567-e89b-42d3-c456-426614174000"}},
      {"uuid5", {"123e4567-e89b-52d3-8456-426614174000"}, {"123e4567-e89b-32d3-a456-426614174000"}},
      {"isbn10", {"0321751043", "0-321-75104-3"}, {"0321751044"}},
      {"isbn13", {"978-0321751041"}, {"978-0321751042"}},
      {"isbn", {"0321751043", "978-0321751041"}, {"12345"}},
      {"creditcard", {"4111 1111 1111 1111", "4111-1111-1111-1111"}, {"4111 1111 1111 1112"}},
      {"ssn", {"123-45-6789", "123 45 6789"}, {"123456789", "12-345-6789"}},
      {"hexcolor", {"#fff", "ABCDEF"}, {"#ffff", "#ggg"}},
      {"rgbcolor", {"rgb(255, 0, 10)", "rgb(0,0,0)"}, {"rgb(256,0,0)", "rgb(1,2)"}},
      {"byte", {"aGVsbG8=", "aGk="}, {"aGVsbG8", ""}},
      {"password", {"", "anything at all"}, {}},
      {"date", {"2024-02-29", "1999-12-31"}, {"2023-02-29", "2024-1-01", "2024-13-01"}},
      {"date-time",
       {"2024-02-29T23:59:59Z", "2024-02-29t10:00:00.123+05:30"},
       {"2024-02-29T24:00:00Z", "2024-02-29", "2024-02-29T10:00:00"}},
      {"duration",
       {"1h30m", "-1.5s", "0", "300ms", "3 days", "2 weeks", "1 sec"},
       {"1x", "h", "", "1", "1 parsec"}},
  };
  for (const auto& c : cases) {
    EXPECT_TRUE(IsKnownStringFormat(c.format)) << c.format;
    for (const auto& v : c.good) EXPECT_TRUE(IsValidStringFormat(c.format, v)) << c.format << " " << v;
    for (const auto& v : c.bad) EXPECT_FALSE(IsValidStringFormat(c.format, v)) << c.format << " " << v;
  }
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

// WidgetCrd as its create defaults it (singular, listKind).
Json DefaultedWidgetCrd() {
  Json crd = WidgetCrd();
  crd["spec"]["names"]["singular"] = "widget";
  crd["spec"]["names"]["listKind"] = "WidgetList";
  return crd;
}

TEST(CrdValidationTest, JunctorsHoldValueValidationsOnly) {
  const std::string root = "spec.versions[0].schema.openAPIV3Schema";
  const std::string spec = root + ".properties[spec]";
  Json crd = DefaultedWidgetCrd();
  Json& schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
  schema["properties"]["spec"]["allOf"] = Json::array(
      {{{"type", "string"},
        {"description", "d"},
        {"default", "x"},
        {"nullable", true},
        {"x-kubernetes-preserve-unknown-fields", true},
        {"x-kubernetes-validations", {{{"rule", "true"}}}}}});
  schema["properties"]["spec"]["anyOf"] =
      Json::array({{{"additionalProperties", {{"maxLength", 1}}}, {"x-kubernetes-list-type", "set"}}});
  EXPECT_EQ(CrdMessages(crd),
            (std::vector<std::string>{
                spec + ".allOf[0].default: Forbidden: must be undefined to be structural",
                spec + ".allOf[0].description: Forbidden: must be empty to be structural",
                spec + ".allOf[0].nullable: Forbidden: must be false to be structural",
                spec + ".allOf[0].type: Forbidden: must be empty to be structural",
                spec + ".allOf[0].x-kubernetes-preserve-unknown-fields: Forbidden: must be false "
                       "to be structural",
                spec + ".allOf[0].x-kubernetes-validations: Forbidden: must be empty to be "
                       "structural",
                spec + ".anyOf[0].additionalProperties: Forbidden: must be undefined to be "
                       "structural",
                spec + ".anyOf[0].x-kubernetes-list-type: Forbidden: must be undefined to be "
                       "structural"}));

  // What a root junctor speaks of must be specified outside of it; no
  // metadata in a junctor.
  crd = DefaultedWidgetCrd();
  Json& root_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
  root_schema["allOf"] = Json::array(
      {{{"properties", {{"spec", {{"properties", {{"missing", {{"maxLength", 3}}}}}}}}}},
       {{"properties", {{"other", Json::object()}, {"metadata", Json::object()}}}}});
  EXPECT_EQ(CrdMessages(crd),
            (std::vector<std::string>{
                root + ".allOf[1].properties[metadata]: Forbidden: must not be specified in a "
                       "nested context",
                root + ".properties[metadata]: Required value: because it is defined in " + root +
                    ".allOf[1].properties[metadata]",
                root + ".properties[other]: Required value: because it is defined in " + root +
                    ".allOf[1].properties[other]",
                spec + ".properties[missing]: Required value: because it is defined in " + root +
                    ".allOf[0].properties[spec].properties[missing]"}));

  // Value validations are fine, and so is int-or-string's anyOf of types.
  crd = DefaultedWidgetCrd();
  Json& ok = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
  ok["oneOf"] = Json::array({{{"required", {"size"}}, {"properties", {{"name", {{"format", "email"}}}}}},
                             {{"not", {{"required", {"port"}}}}}});
  ok["properties"]["port"]["anyOf"] = Json::array({{{"type", "integer"}}, {{"type", "string"}}});
  ok["properties"]["port"]["allOf"] = Json::array(
      {{{"anyOf", Json::array({{{"type", "integer"}}, {{"type", "string"}}})}}, {{"pattern", "^[0-9a-z]+$"}}});
  EXPECT_TRUE(CrdMessages(crd).empty()) << CrdMessages(crd)[0];
  ok["properties"]["port"]["anyOf"][1]["type"] = "boolean";
  EXPECT_EQ(CrdMessages(crd),
            (std::vector<std::string>{
                spec + ".properties[port].anyOf[0].type: Forbidden: must be empty to be structural",
                spec + ".properties[port].anyOf[1].type: Forbidden: must be empty to be structural"}));
}

TEST(CrdValidationTest, ArrayItemsAndTheRootInStructuralWords) {
  const std::string root = "spec.versions[0].schema.openAPIV3Schema";
  Json crd = DefaultedWidgetCrd();
  Json& schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
  schema["properties"]["spec"]["properties"]["tags"]["items"].erase("type");
  schema["additionalProperties"] = {{"type", "string"}};
  EXPECT_EQ(CrdMessages(crd),
            (std::vector<std::string>{
                root + ".additionalProperties: Forbidden: must not be used at the root",
                root + ".properties[spec].properties[tags].items.type: Required value: must not "
                       "be empty for specified array items"}));
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

TEST_F(CrdRegistryTest, JunctorsAndFormatsRefuseCreatesUpdatesAndPatches) {
  registry_->Create(Crds(), "", WidgetCrd(), wo_);
  const ResourceInfo& v1 = *FindResource("example.com", "v1", "widgets");
  const std::string want =
      "Widget.example.com \"w\" is invalid: [<nil>: Invalid value: \"\": \"spec.contact\" must "
      "validate one and only one schema (oneOf). Found 2 valid alternatives, spec.contact.email: "
      "Invalid value: \"foo\": spec.contact.email in body must be of type email: \"foo\"]";
  auto expect_invalid = [&](const std::function<void()>& write) {
    try {
      write();
      ADD_FAILURE() << "the write passed";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kInvalid);
      EXPECT_EQ(e.http_status(), 422);
      EXPECT_EQ(e.message(), want);
      ASSERT_EQ(e.causes().size(), 2u);
      EXPECT_EQ(e.causes()[0].field, "<nil>");
      EXPECT_EQ(e.causes()[0].reason, "FieldValueInvalid");
      EXPECT_EQ(e.causes()[1].field, "spec.contact.email");
      EXPECT_EQ(e.causes()[1].reason, "FieldValueTypeInvalid");
    }
  };
  Json bad = Widget("w");
  bad["spec"]["contact"] = {{"email", "foo"}, {"phone", "1"}};
  expect_invalid([&] { registry_->Create(v1, "default", bad, wo_); });

  Json good = Widget("w");
  good["spec"]["contact"] = {{"email", "ann@example.com"}};
  Json made = registry_->Create(v1, "default", good, wo_);
  bad["metadata"]["resourceVersion"] = made["metadata"]["resourceVersion"];
  expect_invalid([&] { registry_->Update(v1, "default", "w", bad, "", wo_); });
  expect_invalid([&] {
    registry_->Patch(v1, "default", "w", PatchType::kMerge,
                     R"({"spec":{"contact":{"email":"foo","phone":"1"}}})", "", wo_);
  });
  // Server-side apply, of the object and of a new one.
  WriteOptions apply = wo_;
  apply.field_manager = "test";
  apply.force = true;
  const std::string applied =
      R"({"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},)"
      R"("spec":{"size":"small","contact":{"email":"foo","phone":"1"}}})";
  expect_invalid([&] { registry_->Patch(v1, "default", "w", PatchType::kApply, applied, "", apply); });
  EXPECT_EQ(registry_->Get(v1, "default", "w")["spec"]["contact"]["email"], "ann@example.com");
  // One of the two is fine.
  Json patched = registry_->Patch(v1, "default", "w", PatchType::kMerge,
                                  R"({"spec":{"contact":{"email":null,"phone":"1"}}})", "", wo_);
  EXPECT_EQ(patched["spec"]["contact"], Json({{"phone", "1"}}));
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
