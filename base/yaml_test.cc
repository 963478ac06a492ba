#include "base/yaml.h"

#include <gtest/gtest.h>

#include "base/error.h"

namespace kin {
namespace {

TEST(YamlTest, MultiDocumentToJsonWithCoreSchemaTypes) {
  auto docs = ParseYamlDocuments(R"(
apiVersion: v1
kind: Pod
metadata:
  name: a
  labels: {app: web, "port": "80"}
spec:
  replicas: 3
  ratio: 0.5
  enabled: true
  nothing: ~
  octal: 0o17
  hex: 0x1F
  quoted: "123"
  single: 'true'
  norway: no
  list:
  - x
  - 2
---
---
kind: Service
)");
  ASSERT_EQ(docs.size(), 2u);
  const Json& d = docs[0];
  EXPECT_EQ(d["metadata"]["name"], "a");
  EXPECT_EQ(d["metadata"]["labels"]["port"], "80");
  EXPECT_EQ(d["spec"]["replicas"], 3);
  EXPECT_TRUE(d["spec"]["replicas"].is_number_integer());
  EXPECT_DOUBLE_EQ(d["spec"]["ratio"].get<double>(), 0.5);
  EXPECT_EQ(d["spec"]["enabled"], true);
  EXPECT_TRUE(d["spec"]["nothing"].is_null());
  EXPECT_EQ(d["spec"]["octal"], 15);
  EXPECT_EQ(d["spec"]["hex"], 31);
  EXPECT_EQ(d["spec"]["quoted"], "123");
  EXPECT_EQ(d["spec"]["single"], "true");
  EXPECT_EQ(d["spec"]["norway"], "no");  // YAML 1.2: a string
  EXPECT_EQ(d["spec"]["list"], Json::parse(R"(["x", 2])"));
  EXPECT_EQ(docs[1]["kind"], "Service");
}

TEST(YamlTest, ErrorsCarryLineAndColumn) {
  try {
    ParseYamlDocuments("a: 1\nb:\n  - x\n  y: z\n");
    FAIL() << "expected a parse error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kBadRequest);
    EXPECT_NE(e.message().find("line 4, column"), std::string::npos) << e.message();
  }
}

TEST(YamlTest, DuplicateKeysAreRejectedWithTheirPosition) {
  try {
    ParseYaml("a: 1\na: 2\n");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("line 2, column 1"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("\"a\""), std::string::npos) << e.message();
  }
}

TEST(YamlTest, ParseYamlRejectsSeveralDocuments) {
  EXPECT_THROW(ParseYaml("a: 1\n---\nb: 2\n"), Error);
  EXPECT_TRUE(ParseYaml("").is_null());
}

TEST(YamlTest, JsonOrYaml) {
  EXPECT_EQ(ParseJsonOrYaml(R"({"a": [1, 2]})")["a"][1], 2);
  EXPECT_EQ(ParseJsonOrYaml("a: b\n")["a"], "b");
  EXPECT_THROW(ParseJsonOrYaml("{\"a\": "), Error);
}

TEST(YamlTest, EmitsKubectlStyleAndRoundTrips) {
  Json obj = Json::parse(R"({
    "apiVersion": "v1", "kind": "ConfigMap",
    "metadata": {"name": "cm", "labels": {"app": "x"}},
    "data": {"num": "123", "b": "true", "e": "", "yes": "yes", "y": "n", "multi": "line1\nline2\n",
             "colon": "a: b", "dash": "-x", "plain": "hello world"},
    "list": [{"name": "a", "ports": [{"containerPort": 80}]}, "s", 1.5, null, [], {}],
    "empty": {}
  })");
  std::string y = ToYaml(obj);
  EXPECT_NE(y.find("kind: ConfigMap\n"), std::string::npos) << y;
  EXPECT_NE(y.find("  num: \"123\"\n"), std::string::npos) << y;
  EXPECT_NE(y.find("  b: \"true\"\n"), std::string::npos) << y;
  EXPECT_NE(y.find("  \"yes\": \"yes\"\n"), std::string::npos) << y;
  EXPECT_NE(y.find("  \"y\": \"n\"\n"), std::string::npos) << y;  // YAML 1.1 bools quoted
  EXPECT_NE(y.find("  multi: |\n    line1\n    line2\n"), std::string::npos) << y;
  EXPECT_NE(y.find("list:\n- name: a\n  ports:\n  - containerPort: 80\n"), std::string::npos) << y;
  EXPECT_EQ(ParseYaml(y), obj) << y;
}

TEST(YamlTest, DocumentsJoinWithSeparator) {
  std::vector<Json> docs = {Json{{"a", 1}}, Json{{"b", 2}}};
  std::string y = ToYamlDocuments(docs);
  EXPECT_EQ(y, "a: 1\n---\nb: 2\n");
  EXPECT_EQ(ParseYamlDocuments(y), docs);
}

// Found by fuzz/yaml_fuzzer: yaml-cpp passes invalid UTF-8 through, and the
// JSON it became threw (nlohmann type_error 316) when ToYaml or the API
// server dumped it. Refused at parse time, as Kubernetes' reader does.
TEST(YamlTest, InvalidUtf8IsRejectedWithItsPosition) {
  for (std::string text :
       {std::string("a: b\nc: 100\xff\xff\n"), std::string("a:\n  \xc3\x28: 1\n"),
        std::string("- \"\xed\xa0\x80\"\n"), std::string("k: \xf4\x90\x80\x80\n")}) {
    try {
      ParseYamlDocuments(text);
      ADD_FAILURE() << "expected an error for " << ::testing::PrintToString(text);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kBadRequest);
      EXPECT_NE(e.message().find("invalid UTF-8"), std::string::npos) << e.message();
      EXPECT_NE(e.message().find("line "), std::string::npos) << e.message();
    }
  }
  EXPECT_EQ(ParseYaml("a: \"h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"\n")["a"],
            "h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
}

// Found by fuzz/yaml_fuzzer: the number forms were std::regex matches, which
// recurse once per character, so a long plain scalar overflowed the stack.
TEST(YamlTest, LongPlainScalarsDoNotOverflowTheStack) {
  const std::string digits(1 << 20, '7');
  EXPECT_TRUE(ParseYaml("a: " + digits + "\n")["a"].is_number_float());
  EXPECT_TRUE(ParseYaml("a: -0." + digits + "e-" + digits + "\n")["a"].is_number_float());
  EXPECT_EQ(ParseYaml("a: 0x" + digits + "\n")["a"], INT64_MAX);  // saturates
  EXPECT_EQ(ParseYaml("a: " + digits + "x\n")["a"], digits + "x");
  EXPECT_EQ(ParseYaml(ToYaml(Json{{"a", digits}}))["a"], digits);  // quoted on output
  EXPECT_EQ(ParseYaml("a: 0o17\nb: 0x1F\nc: +.5e3\nd: 1.\ne: 1e\nf: .\n"),
            Json::parse(R"({"a":15,"b":31,"c":500.0,"d":1.0,"e":"1e","f":"."})"));
}

// Found by fuzz/cluster_config_fuzzer: yaml-cpp 0.7's LoadAll looped
// forever, allocating, on a document starting with ",".
TEST(YamlTest, StrayFlowEntryIsAnErrorNotAnEndlessLoop) {
  for (std::string text : {",", ", a", "---\n,b\n", " ,]", ",\x01", "a: 1\n---\n,\n"}) {
    try {
      ParseYamlDocuments(text);
      ADD_FAILURE() << "expected an error for " << ::testing::PrintToString(text);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kBadRequest);
      EXPECT_NE(e.message().find("line "), std::string::npos) << e.message();
    }
  }
  // Empty documents still come and go as before.
  EXPECT_EQ(ParseYamlDocuments("---\n---\na: 1\n...\n---\n# only a comment\n").size(), 1u);
  EXPECT_EQ(ParseYaml("- a,b\n- [c, d]\n"), Json::parse(R"(["a,b", ["c", "d"]])"));
}

// Found by fuzz/yaml_fuzzer: a JSON number past double's range threw
// nlohmann's out_of_range (not a parse_error) out of ParseJsonOrYaml.
TEST(YamlTest, JsonNumberOverflowIsBadRequest) {
  for (std::string text : {"{\"a\": 1e999}", "[-9.9e99999]"}) {
    try {
      ParseJsonOrYaml(text);
      ADD_FAILURE() << "expected an error for " << text;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kBadRequest);
      EXPECT_NE(e.message().find("json: "), std::string::npos) << e.message();
    }
  }
}

}  // namespace
}  // namespace kin
