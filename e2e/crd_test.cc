// e2e: CustomResourceDefinitions with real kubectl (1.27, 1.30, 1.33, a
// fresh --cache-dir each): apply a CRD, wait for Established, then apply,
// get (printer columns), patch, scale and delete its objects; a schema
// violation is refused with kube-apiserver's message (junctors and formats
// too); deleting the CRD deletes its objects and its resource leaves
// discovery; the garbage collector collects dependents of custom objects
// (background, foreground, orphan) and custom objects whose owner went; a
// quota counts and limits custom objects (count/widgets.<group>).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cctype>

#include "base/process.h"
#include "base/yaml.h"
#include "testing/e2e_cluster.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin {
namespace {

using testing::TempDir;

class CrdE2E : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() { cluster_ = new testing::SuiteCluster('c'); }
  static void TearDownTestSuite() { delete cluster_; }
  void SetUp() override {
    ASSERT_TRUE(cluster_->error().empty()) << cluster_->error();
    k_ = std::make_unique<testing::KubectlRunner>(GetParam(), cluster_->Kubeconfig());
    if (!k_->installed()) {
      if (std::getenv("CI")) FAIL() << k_->binary() << " is missing";
      GTEST_SKIP() << k_->binary() << " is not installed";
    }
    // A group per kubectl version and a namespace per test: the runs do
    // not meet (a namespace deleted at a test's end may still be going).
    std::string v = GetParam();
    v.erase(std::remove(v.begin(), v.end(), '.'), v.end());
    group_ = "v" + v + ".kin.example.com";
    std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    test = test.substr(0, test.find('/'));
    std::string suffix;
    for (char c : test) {
      if (std::isalnum(static_cast<unsigned char>(c)) && suffix.size() < 24) {
        suffix += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      }
    }
    ns_ = "crd-" + v + "-" + suffix;
    Kubectl({"create", "namespace", ns_});
  }
  void TearDown() override {
    Kubectl({"delete", "crd", "widgets." + group_, "--ignore-not-found", "--wait=false"});
    Kubectl({"delete", "crd", "gizmos." + group_, "--ignore-not-found", "--wait=false"});
    Kubectl({"delete", "namespace", ns_, "--wait=false"});
  }
  CommandResult Kubectl(std::vector<std::string> args, const std::string& input = "") {
    return k_->Run(args, input);
  }
  std::string Ok(std::vector<std::string> args, const std::string& input = "") {
    return k_->Ok(args, input);
  }
  std::vector<std::string> N(std::vector<std::string> args) {
    args.push_back("-n");
    args.push_back(ns_);
    return args;
  }
  std::string Crd() const {
    return R"(apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.)" +
           group_ + R"(
spec:
  group: )" +
           group_ + R"(
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
    shortNames: [wdg]
    categories: [all]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
    additionalPrinterColumns:
    - {name: Size, type: string, jsonPath: .spec.size}
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        description: A Widget is a test object.
        properties:
          spec:
            type: object
            description: What the widget should be.
            required: [size]
            x-kubernetes-validations:
            - rule: self.replicas <= 100
            properties:
              size: {type: string, enum: [small, large]}
              replicas: {type: integer, minimum: 0, default: 1}
          status:
            type: object
            properties:
              replicas: {type: integer}
)";
  }
  std::string Widget(const std::string& name, const std::string& size,
                     const std::string& replicas = "") const {
    std::string y = "apiVersion: " + group_ + "/v1\nkind: Widget\nmetadata:\n  name: " + name +
                    "\nspec:\n  size: " + size + "\n";
    if (!replicas.empty()) y += "  replicas: " + replicas + "\n";
    return y;
  }

  static testing::SuiteCluster* cluster_;
  std::unique_ptr<testing::KubectlRunner> k_;
  std::string group_, ns_;
};

testing::SuiteCluster* CrdE2E::cluster_ = nullptr;

TEST_P(CrdE2E, ApplyWaitUseAndDelete) {
  CommandResult applied = Kubectl({"apply", "-f", "-"}, Crd());
  ASSERT_TRUE(applied.status.success()) << applied.out << applied.err;
  EXPECT_NE(applied.out.find("created"), std::string::npos) << applied.out;
  // CEL rules are kept, not enforced, and kubectl is told so.
  EXPECT_NE(applied.err.find("Warning: x-kubernetes-validations (CEL) rules are accepted but not "
                             "enforced by kin"),
            std::string::npos)
      << applied.err;
  std::string out;
  Ok({"wait", "--for=condition=Established", "crd/widgets." + group_, "--timeout=30s"});
  std::string resources = Ok({"api-resources", "--api-group=" + group_});
  EXPECT_NE(resources.find("widgets"), std::string::npos) << resources;
  EXPECT_NE(resources.find("wdg"), std::string::npos) << resources;

  out = Ok(N({"apply", "-f", "-"}), Widget("w1", "small", "2"));
  EXPECT_NE(out.find("widget." + group_ + "/w1 created"), std::string::npos) << out;
  Ok(N({"apply", "-f", "-"}), Widget("w2", "large"));
  // Printer columns (and the default from the schema: replicas 1).
  std::string table = Ok(N({"get", "widgets"}));
  EXPECT_NE(table.find("SIZE"), std::string::npos) << table;
  EXPECT_NE(table.find("REPLICAS"), std::string::npos) << table;
  EXPECT_NE(table.find("AGE"), std::string::npos) << table;
  EXPECT_NE(table.find("small"), std::string::npos) << table;
  Json w2 = Json::parse(Ok(N({"get", "wdg", "w2", "-o", "json"})));
  EXPECT_EQ(w2["spec"]["replicas"], 1);
  EXPECT_EQ(w2["metadata"]["generation"], 1);
  // Category all.
  std::string all = Ok(N({"get", "all"}));
  EXPECT_NE(all.find("widget." + group_ + "/w1"), std::string::npos) << all;

  // Re-apply with a change: a patch; generation follows the spec.
  out = Ok(N({"apply", "-f", "-"}), Widget("w1", "large", "2"));
  EXPECT_NE(out.find("configured"), std::string::npos) << out;
  Ok(N({"patch", "widget", "w1", "--type=merge", "-p", R"({"spec":{"replicas":3}})"}));
  Ok(N({"patch", "widget", "w1", "--type=json", "-p",
        R"([{"op":"replace","path":"/spec/size","value":"small"}])"}));
  Json w1 = Json::parse(Ok(N({"get", "widget", "w1", "-o", "json"})));
  EXPECT_EQ(w1["spec"]["replicas"], 3);
  EXPECT_EQ(w1["spec"]["size"], "small");
  EXPECT_EQ(w1["metadata"]["generation"], 4);
  // Server-side apply.
  out = Ok(N({"apply", "--server-side", "--field-manager=e2e", "--force-conflicts", "-f", "-"}),
           Widget("w3", "small", "4"));
  EXPECT_NE(out.find("serverside-applied"), std::string::npos) << out;
  // Scale through the scale subresource.
  Ok(N({"scale", "widget", "w1", "--replicas=5"}));
  EXPECT_EQ(Ok(N({"get", "widget", "w1", "-o", "jsonpath={.spec.replicas}"})), "5");
  // Selectors on metadata.name.
  std::string sel = Ok(N({"get", "widgets", "--field-selector", "metadata.name=w2", "-o", "name"}));
  EXPECT_EQ(sel, "widget." + group_ + "/w2\n");

  // A schema violation, in kube-apiserver's words.
  CommandResult bad = Kubectl(N({"apply", "-f", "-"}), Widget("bad", "small", "\"string\""));
  EXPECT_FALSE(bad.status.success());
  EXPECT_NE(bad.err.find("spec.replicas: Invalid value: \"string\": spec.replicas in body must "
                         "be of type integer: \"string\""),
            std::string::npos)
      << bad.out << bad.err;
  bad = Kubectl(N({"apply", "-f", "-"}), Widget("bad", "medium"));
  EXPECT_NE(bad.err.find("spec.size: Unsupported value: \"medium\": supported values: "
                         "\"small\", \"large\""),
            std::string::npos)
      << bad.out << bad.err;

  // kubectl explain reads the version's schema from OpenAPI v3.
  std::string explain = Ok({"explain", "widgets.spec"});
  EXPECT_NE(explain.find("What the widget should be."), std::string::npos) << explain;
  EXPECT_NE(explain.find("size"), std::string::npos) << explain;
  std::string describe = Ok(N({"describe", "widget", "w1"}));
  EXPECT_NE(describe.find("Replicas:"), std::string::npos) << describe;

  out = Ok(N({"delete", "widget", "w2"}));
  EXPECT_NE(out.find("deleted"), std::string::npos) << out;

  // Deleting the CRD deletes its objects; the resource leaves discovery.
  Ok({"delete", "crd", "widgets." + group_, "--timeout=30s"});
  CommandResult gone = Kubectl(N({"get", "widgets." + group_}));
  EXPECT_FALSE(gone.status.success()) << gone.out;
  resources = Ok({"api-resources", "--api-group=" + group_});
  EXPECT_EQ(resources.find("widgets"), std::string::npos) << resources;
  // Made again, it has no objects left over.
  Ok({"apply", "-f", "-"}, Crd());
  Ok({"wait", "--for=condition=Established", "crd/widgets." + group_, "--timeout=30s"});
  std::string empty = Ok(N({"get", "widgets", "-o", "name"}));
  EXPECT_EQ(empty, "");
  // A deleted namespace takes its custom objects with it (the namespace
  // controller deletes the custom resources too).
  Ok(N({"apply", "-f", "-"}), Widget("doomed", "small"));
  Ok({"delete", "namespace", ns_, "--timeout=60s"});
  EXPECT_EQ(Ok({"get", "widgets", "-A", "-o", "name"}), "");
}

// The garbage collector watches custom resources: a ConfigMap owned by a
// widget goes with it (background and foreground, and kubectl's
// --cascade=foreground returns), orphaning keeps it without the
// reference, and a widget owned by a ConfigMap goes with the ConfigMap.
TEST_P(CrdE2E, GarbageCollectionOfAndByCustomObjects) {
  Ok({"apply", "-f", "-"}, Crd());
  Ok({"wait", "--for=condition=Established", "crd/widgets." + group_, "--timeout=30s"});
  auto owned_config_map = [&](const std::string& name, const std::string& widget) {
    std::string uid = Ok(N({"get", "widget", widget, "-o", "jsonpath={.metadata.uid}"}));
    Ok(N({"apply", "-f", "-"}), "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name +
                                    "\n  ownerReferences:\n  - apiVersion: " + group_ +
                                    "/v1\n    kind: Widget\n    name: " + widget +
                                    "\n    uid: " + uid + "\n    blockOwnerDeletion: true\n");
  };
  auto gone = [&](const std::string& what) {
    return testing::Eventually(
        [&] {
          CommandResult r = Kubectl(N({"get", what, "--ignore-not-found", "-o", "name"}));
          return r.status.success() && r.out.empty();
        },
        std::chrono::seconds(30));
  };
  // Background (kubectl's default).
  Ok(N({"apply", "-f", "-"}), Widget("bg", "small"));
  owned_config_map("of-bg", "bg");
  Ok(N({"delete", "widget", "bg"}));
  EXPECT_TRUE(gone("configmap/of-bg"));
  // Foreground: the widget waits for its dependent, and kubectl for both.
  Ok(N({"apply", "-f", "-"}), Widget("fg", "small"));
  owned_config_map("of-fg", "fg");
  CommandResult fg = Kubectl(N({"delete", "widget", "fg", "--cascade=foreground", "--timeout=60s"}));
  EXPECT_TRUE(fg.status.success()) << fg.out << fg.err;
  EXPECT_TRUE(gone("configmap/of-fg"));
  EXPECT_TRUE(gone("widget/fg"));
  // Orphan: the dependent stays, without the reference.
  Ok(N({"apply", "-f", "-"}), Widget("orph", "small"));
  owned_config_map("of-orph", "orph");
  CommandResult orphan =
      Kubectl(N({"delete", "widget", "orph", "--cascade=orphan", "--timeout=60s"}));
  EXPECT_TRUE(orphan.status.success()) << orphan.out << orphan.err;
  EXPECT_TRUE(gone("widget/orph"));
  EXPECT_EQ(Ok(N({"get", "configmap", "of-orph", "-o", "jsonpath={.metadata.ownerReferences}"})),
            "");
  // A widget owned by a ConfigMap.
  Ok(N({"create", "configmap", "owner"}));
  std::string uid = Ok(N({"get", "configmap", "owner", "-o", "jsonpath={.metadata.uid}"}));
  Ok(N({"apply", "-f", "-"}), "apiVersion: " + group_ +
                                  "/v1\nkind: Widget\nmetadata:\n  name: owned\n"
                                  "  ownerReferences:\n  - apiVersion: v1\n    kind: ConfigMap\n"
                                  "    name: owner\n    uid: " +
                                  uid + "\nspec:\n  size: small\n");
  Ok(N({"delete", "configmap", "owner"}));
  EXPECT_TRUE(gone("widget/owned"));
}

// allOf/anyOf/oneOf/not and formats, refused with kube-apiserver's words;
// a schema with a type inside a junctor is not structural.
TEST_P(CrdE2E, JunctorsAndFormats) {
  const std::string crd = R"(apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gizmos.)" + group_ + R"(
spec:
  group: )" + group_ + R"(
  scope: Namespaced
  names: {plural: gizmos, kind: Gizmo}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              email: {type: string, format: email}
              when: {type: string, format: date-time}
              phone: {type: string}
            oneOf:
            - required: [email]
            - required: [phone]
)";
  std::string bad_crd = crd;
  bad_crd.replace(bad_crd.find("- required: [phone]"), 18, "- type: object");
  CommandResult refused = Kubectl({"apply", "-f", "-"}, bad_crd);
  EXPECT_FALSE(refused.status.success());
  EXPECT_NE(refused.err.find("spec.versions[0].schema.openAPIV3Schema.properties[spec].oneOf[1]."
                             "type: Forbidden: must be empty to be structural"),
            std::string::npos)
      << refused.err;
  Ok({"apply", "-f", "-"}, crd);
  Ok({"wait", "--for=condition=Established", "crd/gizmos." + group_, "--timeout=30s"});
  auto gizmo = [&](const std::string& spec) {
    return "apiVersion: " + group_ + "/v1\nkind: Gizmo\nmetadata:\n  name: g\nspec: " + spec + "\n";
  };
  CommandResult both = Kubectl(N({"apply", "-f", "-"}), gizmo("{email: ann@example.com, phone: '1'}"));
  EXPECT_FALSE(both.status.success());
  EXPECT_NE(both.err.find("<nil>: Invalid value: \"\": \"spec\" must validate one and only one "
                          "schema (oneOf). Found 2 valid alternatives"),
            std::string::npos)
      << both.err;
  CommandResult email = Kubectl(N({"apply", "-f", "-"}), gizmo("{email: foo}"));
  EXPECT_FALSE(email.status.success());
  EXPECT_NE(email.err.find("spec.email: Invalid value: \"foo\": spec.email in body must be of "
                           "type email: \"foo\""),
            std::string::npos)
      << email.err;
  CommandResult when = Kubectl(N({"apply", "-f", "-"}), gizmo("{phone: '1', when: yesterday}"));
  EXPECT_FALSE(when.status.success());
  EXPECT_NE(when.err.find("spec.when in body must be of type date-time: \"yesterday\""),
            std::string::npos)
      << when.err;
  Ok(N({"apply", "-f", "-"}), gizmo("{email: ann@example.com, when: '2024-02-29T10:00:00Z'}"));
  Ok({"delete", "crd", "gizmos." + group_, "--timeout=30s"});
}

// A quota on count/widgets.<group>: status.used counts the widgets, a
// create past it is refused in kube-apiserver's words, and a deleted
// widget frees its slot at once (the controller watches the widgets).
TEST_P(CrdE2E, QuotaCountsCustomObjects) {
  Ok({"apply", "-f", "-"}, Crd());
  Ok({"wait", "--for=condition=Established", "crd/widgets." + group_, "--timeout=30s"});
  const std::string count = "count/widgets." + group_;
  Ok(N({"apply", "-f", "-"}), Widget("w1", "small"));
  Ok(N({"create", "quota", "wq", "--hard=" + count + "=2"}));
  auto used = [&] {
    return Kubectl(N({"get", "quota", "wq", "-o", "jsonpath={.status.used}"})).out;
  };
  ASSERT_TRUE(testing::Eventually([&] { return used() == "{\"" + count + "\":\"1\"}"; },
                                  std::chrono::seconds(30)))
      << used();
  Ok(N({"apply", "-f", "-"}), Widget("w2", "small"));
  CommandResult third = Kubectl(N({"apply", "-f", "-"}), Widget("w3", "small"));
  EXPECT_FALSE(third.status.success());
  EXPECT_NE(third.err.find("widgets." + group_ + " \"w3\" is forbidden: exceeded quota: wq, "
                           "requested: " + count + "=1, used: " + count + "=2, limited: " +
                           count + "=2"),
            std::string::npos)
      << third.err;
  Ok(N({"delete", "widget", "w1"}));
  ASSERT_TRUE(testing::Eventually([&] { return used() == "{\"" + count + "\":\"1\"}"; },
                                  std::chrono::seconds(10)))
      << used();
  Ok(N({"apply", "-f", "-"}), Widget("w3", "small"));
}

// CRDs are in SQLite: after kill -9 of `kin serve` and `kin cluster
// start`, the resource is served again with its objects.
TEST(CrdRestartE2E, CrdsAndTheirObjectsSurviveARestart) {
  testing::E2eCluster c('r');
  ASSERT_TRUE(c.Create()) << c.last_output();
  const std::string crd = R"(apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.kin.example.com}
spec:
  group: kin.example.com
  scope: Cluster
  names: {plural: gadgets, kind: Gadget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {color: {type: string}}}
)";
  c.Apply(crd);
  c.Ok({"wait", "--for=condition=Established", "crd/gadgets.kin.example.com", "--timeout=30s"});
  c.Apply(
      "apiVersion: kin.example.com/v1\nkind: Gadget\nmetadata: {name: g1}\nspec: {color: red}\n");
  c.KillServe();
  CommandResult r = c.Kin({"cluster", "start", "--name", c.name()});
  ASSERT_TRUE(r.status.success()) << r.out << r.err << c.Log();
  Json g = c.GetJson({"gadget", "g1"});
  EXPECT_EQ(g["spec"]["color"], "red") << c.Log();
  std::string resources = c.Ok({"api-resources", "--api-group=kin.example.com"});
  EXPECT_NE(resources.find("gadgets"), std::string::npos) << resources;
  // Still validated and pruned after the restart.
  c.Apply(
      "apiVersion: kin.example.com/v1\nkind: Gadget\nmetadata: {name: g2}\nspec: {color: blue}\n");
  EXPECT_EQ(c.GetJson({"gadget", "g2"})["spec"]["color"], "blue");
  EXPECT_TRUE(c.Delete()) << c.last_output();
}

INSTANTIATE_TEST_SUITE_P(Versions, CrdE2E, ::testing::Values("1.27", "1.30", "1.33"),
                         [](const auto& info) {
                           std::string s = info.param;
                           s.erase(std::remove(s.begin(), s.end(), '.'), s.end());
                           return "kubectl" + s;
                         });

}  // namespace
}  // namespace kin
