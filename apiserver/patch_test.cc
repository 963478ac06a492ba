#include "apiserver/patch.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "base/error.h"

namespace kin::apiserver {
namespace {

Json J(const char* text) { return Json::parse(text); }

// Runs f, which must throw kin::Error, and returns the error.
template <typename F>
Error Caught(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "expected a kin::Error";
  return Error(Code::kInternal, "no error thrown");
}

// ---------------------------------------------------------------------------
// JSON merge patch: every example of RFC 7386 Appendix A.
// ---------------------------------------------------------------------------

TEST(MergePatch, Rfc7386AppendixA) {
  struct Case {
    const char* target;
    const char* patch;
    const char* result;
  };
  const Case cases[] = {
      {R"({"a":"b"})", R"({"a":"c"})", R"({"a":"c"})"},
      {R"({"a":"b"})", R"({"b":"c"})", R"({"a":"b","b":"c"})"},
      {R"({"a":"b"})", R"({"a":null})", R"({})"},
      {R"({"a":"b","b":"c"})", R"({"a":null})", R"({"b":"c"})"},
      {R"({"a":["b"]})", R"({"a":"c"})", R"({"a":"c"})"},
      {R"({"a":"c"})", R"({"a":["b"]})", R"({"a":["b"]})"},
      {R"({"a":{"b":"c"}})", R"({"a":{"b":"d","c":null}})", R"({"a":{"b":"d"}})"},
      {R"({"a":[{"b":"c"}]})", R"({"a":[1]})", R"({"a":[1]})"},
      {R"(["a","b"])", R"(["c","d"])", R"(["c","d"])"},
      {R"({"a":"b"})", R"(["c"])", R"(["c"])"},
      {R"({"a":"foo"})", "null", "null"},
      {R"({"a":"foo"})", R"("bar")", R"("bar")"},
      {R"({"e":null})", R"({"a":1})", R"({"e":null,"a":1})"},
      {R"([1,2])", R"({"a":"b","c":null})", R"({"a":"b"})"},
      {R"({})", R"({"a":{"bb":{"ccc":null}}})", R"({"a":{"bb":{}}})"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ApplyMergePatch(J(c.target), J(c.patch)), J(c.result))
        << c.target << " + " << c.patch;
  }
}

TEST(MergePatch, LeavesInputsUntouched) {
  const Json target = J(R"({"metadata":{"labels":{"a":"1","b":"2"}}})");
  const Json patch = J(R"({"metadata":{"labels":{"a":null,"c":"3"}}})");
  Json result = ApplyMergePatch(target, patch);
  EXPECT_EQ(result, J(R"({"metadata":{"labels":{"b":"2","c":"3"}}})"));
  EXPECT_EQ(target, J(R"({"metadata":{"labels":{"a":"1","b":"2"}}})"));
}

// ---------------------------------------------------------------------------
// JSON patch: RFC 6902 Appendix A, then errors.
// ---------------------------------------------------------------------------

TEST(JsonPatch, Rfc6902AppendixA) {
  struct Case {
    const char* name;
    const char* doc;
    const char* patch;
    const char* result;
  };
  const Case cases[] = {
      {"A.1 add an object member", R"({"foo":"bar"})",
       R"([{"op":"add","path":"/baz","value":"qux"}])", R"({"baz":"qux","foo":"bar"})"},
      {"A.2 add an array element", R"({"foo":["bar","baz"]})",
       R"([{"op":"add","path":"/foo/1","value":"qux"}])", R"({"foo":["bar","qux","baz"]})"},
      {"A.3 remove an object member", R"({"baz":"qux","foo":"bar"})",
       R"([{"op":"remove","path":"/baz"}])", R"({"foo":"bar"})"},
      {"A.4 remove an array element", R"({"foo":["bar","qux","baz"]})",
       R"([{"op":"remove","path":"/foo/1"}])", R"({"foo":["bar","baz"]})"},
      {"A.5 replace a value", R"({"baz":"qux","foo":"bar"})",
       R"([{"op":"replace","path":"/baz","value":"boo"}])", R"({"baz":"boo","foo":"bar"})"},
      {"A.6 move a value", R"({"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}})",
       R"([{"op":"move","from":"/foo/waldo","path":"/qux/thud"}])",
       R"({"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}})"},
      {"A.7 move an array element", R"({"foo":["all","grass","cows","eat"]})",
       R"([{"op":"move","from":"/foo/1","path":"/foo/3"}])",
       R"({"foo":["all","cows","eat","grass"]})"},
      {"A.8 test a value: success", R"({"baz":"qux","foo":["a",2,"c"]})",
       R"([{"op":"test","path":"/baz","value":"qux"},{"op":"test","path":"/foo/1","value":2}])",
       R"({"baz":"qux","foo":["a",2,"c"]})"},
      {"A.10 add a nested member object", R"({"foo":"bar"})",
       R"([{"op":"add","path":"/child","value":{"grandchild":{}}}])",
       R"({"foo":"bar","child":{"grandchild":{}}})"},
      {"A.11 ignore unrecognized elements", R"({"foo":"bar"})",
       R"([{"op":"add","path":"/baz","value":"qux","xyz":123}])", R"({"foo":"bar","baz":"qux"})"},
      {"A.14 ~ escape ordering", R"({"/":9,"~1":10})",
       R"([{"op":"test","path":"/~01","value":10}])", R"({"/":9,"~1":10})"},
      {"A.16 add an array value", R"({"foo":["bar"]})",
       R"([{"op":"add","path":"/foo/-","value":["abc","def"]}])",
       R"({"foo":["bar",["abc","def"]]})"},
      {"escaped slash in a key", R"({"metadata":{"labels":{"app.kubernetes.io/name":"x"}}})",
       R"([{"op":"replace","path":"/metadata/labels/app.kubernetes.io~1name","value":"y"}])",
       R"({"metadata":{"labels":{"app.kubernetes.io/name":"y"}}})"},
      {"copy", R"({"a":{"b":1}})", R"([{"op":"copy","from":"/a","path":"/c"}])",
       R"({"a":{"b":1},"c":{"b":1}})"},
      {"replace the whole document", R"({"a":1})",
       R"([{"op":"replace","path":"","value":{"b":2}}])", R"({"b":2})"},
      {"test numbers compare numerically", R"({"n":1})",
       R"([{"op":"test","path":"/n","value":1.0}])", R"({"n":1})"},
      {"ops apply in sequence", R"({"spec":{"replicas":1}})",
       R"([{"op":"test","path":"/spec/replicas","value":1},
           {"op":"replace","path":"/spec/replicas","value":3},
           {"op":"add","path":"/spec/paused","value":true},
           {"op":"remove","path":"/spec/paused"}])",
       R"({"spec":{"replicas":3}})"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ApplyJsonPatch(J(c.doc), J(c.patch)), J(c.result)) << c.name;
  }
}

TEST(JsonPatch, FailedTestIsInvalidNamingThePath) {  // A.9
  Error e = Caught([] {
    ApplyJsonPatch(J(R"({"baz":"qux"})"), J(R"([{"op":"test","path":"/baz","value":"bar"}])"));
  });
  EXPECT_EQ(e.code(), Code::kInvalid);
  EXPECT_EQ(e.http_status(), 422);
  EXPECT_EQ(e.message(), "jsonpatch test operation does not apply: testing value /baz failed");
}

TEST(JsonPatch, StringIsNotEqualToNumber) {  // A.15
  Error e = Caught([] {
    ApplyJsonPatch(J(R"({"/":9,"~1":10})"), J(R"([{"op":"test","path":"/~01","value":"10"}])"));
  });
  EXPECT_EQ(e.code(), Code::kInvalid);
}

TEST(JsonPatch, AddToNonexistentTargetIsInvalid) {  // A.12
  Error e = Caught([] {
    ApplyJsonPatch(J(R"({"foo":"bar"})"), J(R"([{"op":"add","path":"/baz/bat","value":"qux"}])"));
  });
  EXPECT_EQ(e.code(), Code::kInvalid);
  EXPECT_EQ(e.message(), "jsonpatch add operation does not apply: doc is missing path: /baz/bat");
}

TEST(JsonPatch, MissingPathsAreInvalidAndNameOperationAndPath) {
  const Json doc = J(R"({"spec":{"replicas":1,"ports":[80,443]}})");
  Error replace =
      Caught([&] { ApplyJsonPatch(doc, J(R"([{"op":"replace","path":"/spec/x","value":1}])")); });
  EXPECT_EQ(replace.code(), Code::kInvalid);
  EXPECT_EQ(replace.message(),
            "jsonpatch replace operation does not apply: doc is missing key: /spec/x");

  Error remove = Caught([&] { ApplyJsonPatch(doc, J(R"([{"op":"remove","path":"/spec/x"}])")); });
  EXPECT_EQ(remove.code(), Code::kInvalid);
  EXPECT_EQ(remove.message(),
            "jsonpatch remove operation does not apply: doc is missing path: /spec/x");

  Error move =
      Caught([&] { ApplyJsonPatch(doc, J(R"([{"op":"move","from":"/nope","path":"/spec/y"}])")); });
  EXPECT_EQ(move.code(), Code::kInvalid);
  EXPECT_EQ(move.message(),
            "jsonpatch move operation does not apply: doc is missing from path: /nope");

  Error copy =
      Caught([&] { ApplyJsonPatch(doc, J(R"([{"op":"copy","from":"/nope","path":"/spec/y"}])")); });
  EXPECT_EQ(copy.code(), Code::kInvalid);

  Error test =
      Caught([&] { ApplyJsonPatch(doc, J(R"([{"op":"test","path":"/spec/x","value":1}])")); });
  EXPECT_EQ(test.code(), Code::kInvalid);
  EXPECT_NE(test.message().find("/spec/x"), std::string::npos);
}

TEST(JsonPatch, ArrayIndicesAreChecked) {
  const Json doc = J(R"({"a":[1,2]})");
  EXPECT_EQ(ApplyJsonPatch(doc, J(R"([{"op":"add","path":"/a/2","value":3}])")),
            J(R"({"a":[1,2,3]})"));
  EXPECT_EQ(
      Caught([&] { ApplyJsonPatch(doc, J(R"([{"op":"add","path":"/a/5","value":3}])")); }).code(),
      Code::kInvalid);
  EXPECT_EQ(Caught([&] { ApplyJsonPatch(doc, J(R"([{"op":"remove","path":"/a/2"}])")); }).code(),
            Code::kInvalid);
  // RFC 6901: no leading zeros, and "-" only makes sense for add.
  EXPECT_EQ(Caught([&] { ApplyJsonPatch(doc, J(R"([{"op":"remove","path":"/a/01"}])")); }).code(),
            Code::kInvalid);
  EXPECT_EQ(Caught([&] {
              ApplyJsonPatch(doc, J(R"([{"op":"replace","path":"/a/-","value":0}])"));
            }).code(),
            Code::kInvalid);
}

TEST(JsonPatch, MoveIntoOwnChildIsInvalid) {
  Error e = Caught([] {
    ApplyJsonPatch(J(R"({"a":{"b":{}}})"), J(R"([{"op":"move","from":"/a","path":"/a/b/c"}])"));
  });
  EXPECT_EQ(e.code(), Code::kInvalid);
}

TEST(JsonPatch, FailureLeavesTargetUntouched) {
  const Json doc = J(R"({"a":1})");
  Caught([&] {
    ApplyJsonPatch(doc, J(R"([{"op":"add","path":"/b","value":2},
                              {"op":"test","path":"/a","value":5}])"));
  });
  EXPECT_EQ(doc, J(R"({"a":1})"));
}

TEST(JsonPatch, MalformedDocumentsAreBadRequests) {
  const Json doc = J(R"({"a":1})");
  const char* bad[] = {
      R"({"op":"add","path":"/b","value":1})",      // not a list
      R"([42])",                                    // op is not an object
      R"([{"path":"/a"}])",                         // no op
      R"([{"op":"frobnicate","path":"/a"}])",       // unknown op
      R"([{"op":"add","value":1}])",                // no path
      R"([{"op":"add","path":"/b"}])",              // no value
      R"([{"op":"replace","path":"/a"}])",          // no value
      R"([{"op":"move","path":"/b"}])",             // no from
      R"([{"op":"add","path":"b","value":1}])",     // not a pointer
      R"([{"op":"add","path":"/b~2","value":1}])",  // bad escape
      R"([{"op":"copy","from":"a","path":"/b"}])",  // from not a pointer
  };
  for (const char* p : bad) {
    Error e = Caught([&] { ApplyJsonPatch(doc, J(p)); });
    EXPECT_EQ(e.code(), Code::kBadRequest) << p << ": " << e.message();
  }
}

TEST(JsonPatch, TooManyOperations) {
  Json ops = Json::array();
  for (int i = 0; i < 10001; ++i) ops.push_back(J(R"({"op":"test","path":"/a","value":1})"));
  EXPECT_EQ(Caught([&] { ApplyJsonPatch(J(R"({"a":1})"), ops); }).code(),
            Code::kRequestEntityTooLarge);
}

// ---------------------------------------------------------------------------
// Strategic merge patch
// ---------------------------------------------------------------------------

Json TwoContainerPod() {
  return J(R"({
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "p", "labels": {"app": "web", "tier": "frontend"},
                 "finalizers": ["a", "b"]},
    "spec": {
      "containers": [
        {"name": "web", "image": "nginx:1.0", "args": ["-v"],
         "ports": [{"containerPort": 80, "protocol": "TCP"}],
         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
         "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
        {"name": "sidecar", "image": "busybox"}
      ],
      "volumes": [{"name": "data", "emptyDir": {}}],
      "tolerations": [{"key": "t1", "operator": "Exists"}, {"key": "t2", "operator": "Exists"}]
    }
  })");
}

Json Smp(const Json& original, const char* patch, const std::string& group = "",
         const std::string& kind = "Pod") {
  return ApplyStrategicMergePatch(original, J(patch), group, kind);
}

TEST(StrategicMergePatch, MergesContainersByName) {
  Json out =
      Smp(TwoContainerPod(), R"({"spec":{"containers":[{"name":"web","image":"nginx:1.1"}]}})");
  const Json& containers = out["spec"]["containers"];
  ASSERT_EQ(containers.size(), 2u);
  EXPECT_EQ(containers[0]["name"], "web");
  EXPECT_EQ(containers[0]["image"], "nginx:1.1");
  EXPECT_EQ(containers[0]["args"], J(R"(["-v"])"));  // untouched fields stay
  EXPECT_EQ(containers[1], J(R"({"name":"sidecar","image":"busybox"})"));
}

// Without $setElementOrder, Kubernetes (normalizeElementOrder) places items
// that are new to the list before the items only the server has.
// What `kubectl apply` sends when one field of a webhook changes: webhooks
// merge by name (else the webhook would lose every other field).
TEST(StrategicMergePatch, WebhookConfigurationsMergeWebhooksByName) {
  Json original = J(R"({"webhooks":[{"name":"a.example.com","failurePolicy":"Fail",
      "sideEffects":"None","matchConditions":[{"name":"m","expression":"true"}]},
      {"name":"b.example.com","failurePolicy":"Fail"}]})");
  Json out = Smp(original, R"({"webhooks":[{"name":"a.example.com","failurePolicy":"Ignore",
      "matchConditions":[{"name":"n","expression":"false"}]}]})",
                 "admissionregistration.k8s.io", "ValidatingWebhookConfiguration");
  ASSERT_EQ(out["webhooks"].size(), 2u);
  EXPECT_EQ(out["webhooks"][0]["failurePolicy"], "Ignore");
  EXPECT_EQ(out["webhooks"][0]["sideEffects"], "None");
  EXPECT_EQ(out["webhooks"][0]["matchConditions"].size(), 2u);
  EXPECT_EQ(out["webhooks"][1]["name"], "b.example.com");
  out = Smp(original, R"({"webhooks":[{"name":"b.example.com","timeoutSeconds":5}]})",
            "admissionregistration.k8s.io", "MutatingWebhookConfiguration");
  EXPECT_EQ(out["webhooks"][1]["timeoutSeconds"], 5);
  EXPECT_EQ(out["webhooks"][1]["failurePolicy"], "Fail");
}

TEST(StrategicMergePatch, NewListItemsGoFirstWithoutSetElementOrder) {
  Json out = Smp(TwoContainerPod(), R"({"spec":{"containers":[
      {"name":"log","image":"fluent","env":[{"name":"X","value":null}]}]}})");
  const Json& containers = out["spec"]["containers"];
  ASSERT_EQ(containers.size(), 3u);
  EXPECT_EQ(containers[0], J(R"({"name":"log","image":"fluent","env":[{"name":"X"}]})"));
  EXPECT_EQ(containers[1]["name"], "web");
  EXPECT_EQ(containers[2]["name"], "sidecar");
}

TEST(StrategicMergePatch, SetElementOrderPlacesNewItems) {
  Json out = Smp(TwoContainerPod(), R"({"spec":{
      "$setElementOrder/containers":[{"name":"web"},{"name":"sidecar"},{"name":"log"}],
      "containers":[{"name":"log","image":"fluent"}]}})");
  const Json& containers = out["spec"]["containers"];
  ASSERT_EQ(containers.size(), 3u);
  EXPECT_EQ(containers[0]["name"], "web");
  EXPECT_EQ(containers[1]["name"], "sidecar");
  EXPECT_EQ(containers[2], J(R"({"name":"log","image":"fluent"})"));
}

TEST(StrategicMergePatch, NestedListsMergeByTheirOwnKeys) {
  Json out = Smp(TwoContainerPod(), R"({"spec":{"containers":[{"name":"web",
      "env":[{"name":"B","value":"two"},{"name":"C","value":"3"}],
      "volumeMounts":[{"name":"data","mountPath":"/data","readOnly":true},
                      {"name":"cache","mountPath":"/cache"}],
      "ports":[{"containerPort":443}],
      "args":["-q"]}]}})");
  const Json& web = out["spec"]["containers"][0];
  EXPECT_EQ(web["env"], J(R"([{"name":"A","value":"1"},{"name":"B","value":"two"},
                             {"name":"C","value":"3"}])"));
  EXPECT_EQ(web["volumeMounts"], J(R"([{"name":"data","mountPath":"/data","readOnly":true},
                                      {"name":"cache","mountPath":"/cache"}])"));
  EXPECT_EQ(web["ports"], J(R"([{"containerPort":443},{"containerPort":80,"protocol":"TCP"}])"));
  EXPECT_EQ(web["args"], J(R"(["-q"])"));  // no merge key: replaced
}

TEST(StrategicMergePatch, DeleteDirectiveRemovesListItem) {
  Json out =
      Smp(TwoContainerPod(), R"({"spec":{"containers":[{"name":"sidecar","$patch":"delete"}]}})");
  ASSERT_EQ(out["spec"]["containers"].size(), 1u);
  EXPECT_EQ(out["spec"]["containers"][0]["name"], "web");
}

TEST(StrategicMergePatch, ReplaceDirectiveInListReplacesTheList) {
  Json out = Smp(TwoContainerPod(),
                 R"({"spec":{"containers":[{"name":"only","image":"x"},{"$patch":"replace"}]}})");
  EXPECT_EQ(out["spec"]["containers"], J(R"([{"name":"only","image":"x"}])"));
}

TEST(StrategicMergePatch, ReplaceAndDeleteDirectivesOnMaps) {
  Json out = Smp(TwoContainerPod(),
                 R"({"metadata":{"labels":{"$patch":"replace","app":"api"}},
                     "spec":{"containers":[{"name":"web","ports":[{"containerPort":80,"$patch":"delete"}]}]}})");
  EXPECT_EQ(out["metadata"]["labels"], J(R"({"app":"api"})"));
  EXPECT_EQ(out["spec"]["containers"][0]["ports"], Json::array());

  Json deleted = Smp(TwoContainerPod(), R"({"metadata":{"labels":{"$patch":"delete"}}})");
  EXPECT_EQ(deleted["metadata"]["labels"], Json::object());
}

TEST(StrategicMergePatch, NullDeletesMapKeys) {
  Json out = Smp(TwoContainerPod(),
                 R"({"metadata":{"labels":{"tier":null},"annotations":{"a":"1","b":null}},
                     "spec":{"tolerations":null}})");
  EXPECT_EQ(out["metadata"]["labels"], J(R"({"app":"web"})"));
  EXPECT_EQ(out["metadata"]["annotations"], J(R"({"a":"1"})"));  // unmatched nulls dropped
  EXPECT_FALSE(out["spec"].contains("tolerations"));
}

TEST(StrategicMergePatch, PrimitiveListsWithMergeStrategyMergeAsSets) {
  Json out = Smp(TwoContainerPod(), R"({"metadata":{"finalizers":["b","c"]}})");
  EXPECT_EQ(out["metadata"]["finalizers"], J(R"(["a","b","c"])"));
}

TEST(StrategicMergePatch, DeleteFromPrimitiveList) {
  Json out =
      Smp(TwoContainerPod(),
          R"({"metadata":{"$deleteFromPrimitiveList/finalizers":["a"],"finalizers":["z"]}})");
  EXPECT_EQ(out["metadata"]["finalizers"], J(R"(["z","b"])"));  // new values first, as above
}

TEST(StrategicMergePatch, ListsWithoutMergeKeyAreReplaced) {
  Json out = Smp(TwoContainerPod(), R"({"spec":{"tolerations":[{"key":"t3"}]}})");
  EXPECT_EQ(out["spec"]["tolerations"], J(R"([{"key":"t3"}])"));
}

TEST(StrategicMergePatch, SetElementOrderReorders) {
  Json pod = J(R"({"spec":{"containers":[{"name":"a","image":"1"},{"name":"b","image":"2"},
                                        {"name":"c","image":"3"}]}})");
  Json out = Smp(pod, R"({"spec":{
      "$setElementOrder/containers":[{"name":"c"},{"name":"a"},{"name":"b"}],
      "containers":[{"name":"c","image":"33"}]}})");
  EXPECT_EQ(out["spec"]["containers"], J(R"([{"name":"c","image":"33"},{"name":"a","image":"1"},
                                            {"name":"b","image":"2"}])"));

  Json primitives = Smp(J(R"({"metadata":{"finalizers":["x","y"]}})"),
                        R"({"metadata":{"$setElementOrder/finalizers":["y","x"]}})");
  EXPECT_EQ(primitives["metadata"]["finalizers"], J(R"(["y","x"])"));
}

TEST(StrategicMergePatch, SetElementOrderMustMatchThePatchList) {
  Error e = Caught([] {
    Smp(TwoContainerPod(), R"({"spec":{
        "$setElementOrder/containers":[{"name":"web"},{"name":"sidecar"}],
        "containers":[{"name":"sidecar","image":"x"},{"name":"web","image":"y"}]}})");
  });
  EXPECT_EQ(e.code(), Code::kBadRequest);
}

TEST(StrategicMergePatch, RetainKeysDropsOtherKeys) {
  Json out = Smp(TwoContainerPod(), R"({"spec":{"volumes":[{"name":"data",
      "$retainKeys":["hostPath","name"],"hostPath":{"path":"/srv"}}]}})");
  EXPECT_EQ(out["spec"]["volumes"], J(R"([{"name":"data","hostPath":{"path":"/srv"}}])"));

  Json deployment = J(R"({"spec":{"strategy":{"type":"RollingUpdate",
                                              "rollingUpdate":{"maxSurge":1}}}})");
  Json recreated =
      Smp(deployment, R"({"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}})", "apps",
          "Deployment");
  EXPECT_EQ(recreated["spec"]["strategy"], J(R"({"type":"Recreate"})"));
}

TEST(StrategicMergePatch, RetainKeysMustCoverThePatch) {
  Error e = Caught([] {
    Smp(J(R"({"spec":{"strategy":{}}})"),
        R"({"spec":{"strategy":{"$retainKeys":["type"],"rollingUpdate":{"maxSurge":1}}}})", "apps",
        "Deployment");
  });
  EXPECT_EQ(e.code(), Code::kInvalid);
  EXPECT_EQ(Caught([] { Smp(J("{}"), R"({"spec":{"$retainKeys":"type"}})"); }).code(),
            Code::kBadRequest);
}

TEST(StrategicMergePatch, PodTemplateInsideWorkloads) {
  Json deployment = J(R"({"apiVersion":"apps/v1","kind":"Deployment","spec":{"replicas":1,
      "template":{"spec":{"containers":[{"name":"web","image":"nginx:1"},
                                        {"name":"sidecar","image":"busybox"}]}}}})");
  Json out = Smp(
      deployment,
      R"({"spec":{"replicas":3,"template":{"spec":{"containers":[{"name":"web","image":"nginx:2"}]}}}})",
      "apps", "Deployment");
  EXPECT_EQ(out["spec"]["replicas"], 3);
  EXPECT_EQ(out["spec"]["template"]["spec"]["containers"],
            J(R"([{"name":"web","image":"nginx:2"},{"name":"sidecar","image":"busybox"}])"));

  for (const char* kind : {"ReplicaSet", "DaemonSet", "StatefulSet"}) {
    Json w =
        Smp(deployment,
            R"({"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"b2"}]}}}})",
            "apps", kind);
    EXPECT_EQ(w["spec"]["template"]["spec"]["containers"].size(), 2u) << kind;
  }
  Json job = Smp(J(R"({"spec":{"template":{"spec":{"containers":[{"name":"a"},{"name":"b"}]}}}})"),
                 R"({"spec":{"template":{"spec":{"containers":[{"name":"b","image":"x"}]}}}})",
                 "batch", "Job");
  EXPECT_EQ(job["spec"]["template"]["spec"]["containers"].size(), 2u);

  Json cronjob = J(R"({"spec":{"jobTemplate":{"spec":{"template":{"spec":{
      "containers":[{"name":"a","image":"1"},{"name":"b","image":"2"}]}}}}}})");
  Json cron_out = Smp(cronjob, R"({"spec":{"jobTemplate":{"spec":{"template":{"spec":{
      "containers":[{"name":"a","image":"11"}]}}}}}})",
                      "batch", "CronJob");
  EXPECT_EQ(cron_out["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"],
            J(R"([{"name":"a","image":"11"},{"name":"b","image":"2"}])"));
}

TEST(StrategicMergePatch, ServicePortsMergeByPort) {
  Json svc = J(R"({"spec":{"selector":{"app":"web"},"ports":[{"port":80,"targetPort":8080},
                                                         {"port":443,"targetPort":8443}]}})");
  Json out = Smp(svc, R"({"spec":{"ports":[{"port":80,"targetPort":9090}]}})", "", "Service");
  EXPECT_EQ(out["spec"]["ports"], J(R"([{"port":80,"targetPort":9090},
                                       {"port":443,"targetPort":8443}])"));
}

TEST(StrategicMergePatch, MetadataAndStatusLists) {
  Json obj = J(R"({"metadata":{"ownerReferences":[{"uid":"1","name":"a"},{"uid":"2","name":"b"}]},
                  "status":{"conditions":[{"type":"Ready","status":"False"},
                                          {"type":"PodScheduled","status":"True"}],
                            "addresses":[{"type":"InternalIP","address":"10.0.0.1"}]}})");
  Json pod = Smp(obj, R"({"metadata":{"ownerReferences":[{"uid":"2","name":"b2"}]},
                         "status":{"conditions":[{"type":"Ready","status":"True"}]}})");
  EXPECT_EQ(pod["metadata"]["ownerReferences"],
            J(R"([{"uid":"1","name":"a"},{"uid":"2","name":"b2"}])"));
  EXPECT_EQ(pod["status"]["conditions"], J(R"([{"type":"Ready","status":"True"},
                                              {"type":"PodScheduled","status":"True"}])"));

  Json node = Smp(obj, R"({"status":{"addresses":[{"type":"Hostname","address":"n1"}],
                                     "conditions":[{"type":"Ready","status":"True"}]}})",
                  "", "Node");
  EXPECT_EQ(node["status"]["addresses"], J(R"([{"type":"Hostname","address":"n1"},
                                              {"type":"InternalIP","address":"10.0.0.1"}])"));
  EXPECT_EQ(node["status"]["conditions"][0]["status"], "True");
}

TEST(StrategicMergePatch, UnknownKindsMergeMapsAndReplaceLists) {
  Json widget = J(R"({"apiVersion":"example.com/v1","kind":"Widget",
                     "spec":{"size":1,"color":"red","items":[{"name":"a"},{"name":"b"}]}})");
  Json out = Smp(widget, R"({"spec":{"size":2,"color":null,"items":[{"name":"c"}]}})",
                 "example.com", "Widget");
  EXPECT_EQ(out["spec"], J(R"({"size":2,"items":[{"name":"c"}]})"));
}

TEST(StrategicMergePatch, KubectlApplyChangesOneContainerOfTwo) {
  // What kubectl apply sends after only the web image changed in the file.
  const char* patch = R"({
    "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}"}},
    "spec": {
      "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
      "containers": [{"name": "web", "image": "nginx:1.2"}]
    }
  })";
  Json out = Smp(TwoContainerPod(), patch);
  const Json& containers = out["spec"]["containers"];
  ASSERT_EQ(containers.size(), 2u);
  EXPECT_EQ(containers[0]["name"], "web");
  EXPECT_EQ(containers[0]["image"], "nginx:1.2");
  EXPECT_EQ(containers[0]["env"], TwoContainerPod()["spec"]["containers"][0]["env"]);
  EXPECT_EQ(containers[1], J(R"({"name":"sidecar","image":"busybox"})"));
  EXPECT_EQ(out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
            "{...}");
}

TEST(StrategicMergePatch, KubectlApplyRemovesAContainerAndAField) {
  // What kubectl apply sends after the sidecar and the args were deleted from the file.
  Json out = Smp(TwoContainerPod(), R"({"spec":{
      "$setElementOrder/containers":[{"name":"web"}],
      "containers":[{"$patch":"delete","name":"sidecar"},{"name":"web","args":null}]}})");
  ASSERT_EQ(out["spec"]["containers"].size(), 1u);
  EXPECT_EQ(out["spec"]["containers"][0]["name"], "web");
  EXPECT_FALSE(out["spec"]["containers"][0].contains("args"));
  EXPECT_EQ(out["spec"]["containers"][0]["image"], "nginx:1.0");
}

TEST(StrategicMergePatch, MalformedPatchesAreBadRequests) {
  const char* bad[] = {
      R"({"spec":{"containers":[{"image":"no-name"}]}})",
      R"({"spec":{"containers":[{"name":"web","$patch":"frobnicate"}]}})",
      R"({"metadata":{"$patch":"frobnicate"}})",
      R"({"metadata":{"$deleteFromPrimitiveList/finalizers":"a"}})",
      R"({"spec":{"$setElementOrder/containers":"web"}})",
      R"({"spec":{"containers":[{"$patch":"delete"}]}})",
  };
  for (const char* p : bad) {
    Error e = Caught([&] { Smp(TwoContainerPod(), p); });
    EXPECT_EQ(e.code(), Code::kBadRequest) << p << ": " << e.message();
  }
  EXPECT_EQ(Caught([] { ApplyStrategicMergePatch(Json::object(), J("[1]"), "", "Pod"); }).code(),
            Code::kBadRequest);
}

TEST(StrategicMergePatch, LeavesInputsUntouched) {
  const Json pod = TwoContainerPod();
  const Json patch = J(R"({"spec":{"containers":[{"name":"web","image":"x"}]}})");
  ApplyStrategicMergePatch(pod, patch, "", "Pod");
  EXPECT_EQ(pod, TwoContainerPod());
  EXPECT_EQ(patch, J(R"({"spec":{"containers":[{"name":"web","image":"x"}]}})"));
}

// ---------------------------------------------------------------------------
// Server-side apply and managedFields
// ---------------------------------------------------------------------------

Json DeploymentConfig() {
  return J(R"({
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "frontend"}},
    "spec": {
      "replicas": 3,
      "selector": {"matchLabels": {"app": "web"}},
      "template": {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [
          {"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80}]},
          {"name": "sidecar", "image": "busybox"}
        ]}
      }
    }
  })");
}

ApplyOptions Opts(const std::string& manager, const std::string& now, bool force = false) {
  ApplyOptions o;
  o.manager = manager;
  o.now = now;
  o.force = force;
  return o;
}

Json Apply(const Json& live, const Json& config, const std::string& manager,
           const std::string& now = "2024-01-01T00:00:00Z", bool force = false) {
  return ServerSideApply(live, config, "apps", "Deployment", Opts(manager, now, force));
}

// The managedFields entry of `manager` with `operation`, or null.
Json Entry(const Json& obj, const std::string& manager, const std::string& operation) {
  for (const Json& e : obj["metadata"]["managedFields"]) {
    if (e["manager"] == manager && e["operation"] == operation) return e;
  }
  return nullptr;
}

TEST(ServerSideApply, CreateWritesObjectAndManagedFields) {
  Json out = Apply(nullptr, DeploymentConfig(), "kubectl", "2024-01-01T00:00:00Z");
  EXPECT_EQ(out["apiVersion"], "apps/v1");
  EXPECT_EQ(out["kind"], "Deployment");
  EXPECT_EQ(out["metadata"]["name"], "web");
  EXPECT_EQ(out["metadata"]["namespace"], "default");
  EXPECT_EQ(out["spec"], DeploymentConfig()["spec"]);
  EXPECT_EQ(out["metadata"]["managedFields"], J(R"([{
    "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1",
    "time": "2024-01-01T00:00:00Z", "fieldsType": "FieldsV1",
    "fieldsV1": {
      "f:metadata": {"f:labels": {"f:app": {}, "f:tier": {}}},
      "f:spec": {
        "f:replicas": {},
        "f:selector": {},
        "f:template": {
          "f:metadata": {"f:labels": {"f:app": {}}},
          "f:spec": {"f:containers": {
            "k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {},
              "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}},
            "k:{\"name\":\"sidecar\"}": {".": {}, "f:image": {}, "f:name": {}}
          }}
        }
      }
    }
  }])"));
}

TEST(ServerSideApply, ReapplyWithoutAFieldRemovesIt) {
  Json live = Apply(nullptr, DeploymentConfig(), "kubectl");
  Json config = DeploymentConfig();
  config["metadata"]["labels"].erase("tier");
  config["spec"]["template"]["spec"]["containers"].erase(1);
  config["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26";
  Json out = Apply(live, config, "kubectl", "2024-01-02T00:00:00Z");
  EXPECT_EQ(out["metadata"]["labels"], J(R"({"app":"web"})"));
  EXPECT_EQ(out["spec"]["template"]["spec"]["containers"],
            J(R"([{"name":"web","image":"nginx:1.26","ports":[{"containerPort":80}]}])"));
  Json entry = Entry(out, "kubectl", "Apply");
  EXPECT_EQ(entry["time"], "2024-01-02T00:00:00Z");
  EXPECT_FALSE(entry["fieldsV1"]["f:metadata"]["f:labels"].contains("f:tier"));
  EXPECT_FALSE(entry["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"].contains(
      "k:{\"name\":\"sidecar\"}"));
  EXPECT_EQ(out["metadata"]["managedFields"].size(), 1u);
}

TEST(ServerSideApply, IdenticalReapplyIsANoOp) {
  Json live = Apply(nullptr, DeploymentConfig(), "kubectl", "2024-01-01T00:00:00Z");
  Json again = Apply(live, DeploymentConfig(), "kubectl", "2024-02-02T00:00:00Z");
  EXPECT_EQ(again, live);  // same object, same managedFields time
}

TEST(ServerSideApply, ReapplyKeepsUnownedAndOtherwiseOwnedFields) {
  Json live = Apply(nullptr, DeploymentConfig(), "kubectl");
  // A controller defaulted a field nobody applied.
  live["spec"]["revisionHistoryLimit"] = 10;
  // Another applier also sets the tier label, to the same value: shared.
  Json other = J(R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web",
                    "labels":{"tier":"frontend"}}})");
  live = Apply(live, other, "ops");
  Json config = DeploymentConfig();
  config["metadata"]["labels"].erase("tier");
  Json out = Apply(live, config, "kubectl");
  EXPECT_EQ(out["metadata"]["labels"]["tier"], "frontend");
  EXPECT_EQ(out["spec"]["revisionHistoryLimit"], 10);
  EXPECT_TRUE(Entry(out, "ops", "Apply")["fieldsV1"]["f:metadata"]["f:labels"].contains("f:tier"));
}

TEST(ServerSideApply, ConflictWithAnUpdater) {
  // kubectl apply (client-side) created it: an Update entry owns spec.replicas.
  Json live = DeploymentConfig();
  RecordUpdateManagedFields(nullptr, live, "kubectl-client-side-apply", "apps/v1",
                            "2024-01-01T00:00:00Z");
  Json config = J(R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
                     "spec":{"replicas":5}})");
  Error e = Caught([&] { Apply(live, config, "kubectl"); });
  EXPECT_EQ(e.code(), Code::kConflict);
  EXPECT_EQ(e.http_status(), 409);
  EXPECT_EQ(e.message(),
            "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using "
            "apps/v1: .spec.replicas");
  ASSERT_EQ(e.causes().size(), 1u);
  EXPECT_EQ(e.causes()[0].reason, "FieldManagerConflict");
  EXPECT_EQ(e.causes()[0].message, "conflict with \"kubectl-client-side-apply\" using apps/v1");
  EXPECT_EQ(e.causes()[0].field, ".spec.replicas");
}

// `kubectl apply --server-side` over what `kubectl apply` made: the server
// defaulted an atomic field the file leaves out (as a webhook's rules get
// scope "*"), so the applied value differs from the live one; the field is
// in the last-applied-configuration annotation, so the manager "kubectl"
// takes it over (kube-apiserver's lastAppliedManager). Any other manager,
// a field outside the annotation, or no annotation still conflicts.
TEST(ServerSideApply, KubectlTakesOverFieldsOfTheLastAppliedAnnotation) {
  Json file = J(R"({"apiVersion":"apps/v1","kind":"Deployment",
      "metadata":{"name":"web"},"spec":{"replicas":3,"selector":{"matchLabels":{"app":"web"}}}})");
  Json live = file;
  live["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
      file.dump();
  // selector is atomic: a defaulted member makes the applied value differ.
  live["spec"]["selector"]["matchExpressions"] = Json::array();
  RecordUpdateManagedFields(nullptr, live, "kubectl-client-side-apply", "apps/v1",
                            "2024-01-01T00:00:00Z");

  Json out = Apply(live, file, "kubectl", "2024-01-02T00:00:00Z");
  EXPECT_EQ(out["spec"]["selector"], file["spec"]["selector"]);
  EXPECT_FALSE(Entry(out, "kubectl-client-side-apply", "Update")["fieldsV1"]["f:spec"].contains(
      "f:selector"));
  EXPECT_TRUE(Entry(out, "kubectl", "Apply")["fieldsV1"]["f:spec"].contains("f:selector"));

  Error e = Caught([&] { Apply(live, file, "helm"); });
  EXPECT_EQ(e.message(),
            "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using "
            "apps/v1: .spec.selector");
  // A field the annotation does not name (changed by another client).
  Json changed = file;
  changed["spec"]["replicas"] = 5;
  Json scaled = live;
  scaled["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
      J(R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
           "spec":{"selector":{"matchLabels":{"app":"web"}}}})")
          .dump();
  e = Caught([&] { Apply(scaled, changed, "kubectl"); });
  EXPECT_EQ(e.message(),
            "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using "
            "apps/v1: .spec.replicas");
  Json unannotated = live;
  unannotated["metadata"].erase("annotations");
  e = Caught([&] { Apply(unannotated, file, "kubectl"); });
  EXPECT_EQ(e.code(), Code::kConflict);
  unannotated["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
      "not json";
  e = Caught([&] { Apply(unannotated, file, "kubectl"); });
  EXPECT_EQ(e.code(), Code::kConflict);
}

TEST(ServerSideApply, ConflictBetweenAppliersAndSharedOwnership) {
  Json live = Apply(nullptr, DeploymentConfig(), "a");
  Json config = J(R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
                     "spec":{"replicas":4}})");
  Error e = Caught([&] { Apply(live, config, "b"); });
  EXPECT_EQ(e.message(), "Apply failed with 1 conflict: conflict with \"a\": .spec.replicas");
  EXPECT_EQ(e.causes()[0].message, "conflict with \"a\"");

  // The same value is no conflict: both own it.
  config["spec"]["replicas"] = 3;
  Json shared = Apply(live, config, "b");
  EXPECT_TRUE(Entry(shared, "a", "Apply")["fieldsV1"]["f:spec"].contains("f:replicas"));
  EXPECT_EQ(Entry(shared, "b", "Apply")["fieldsV1"], J(R"({"f:spec":{"f:replicas":{}}})"));
}

TEST(ServerSideApply, ConflictOnAKeyedListItemField) {
  Json live = Apply(nullptr, DeploymentConfig(), "a");
  Json config = J(R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
      "spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:2"}]}}}})");
  Error e = Caught([&] { Apply(live, config, "b"); });
  EXPECT_EQ(e.message(),
            "Apply failed with 1 conflict: conflict with \"a\": "
            ".spec.template.spec.containers[name=\"web\"].image");
}

TEST(ServerSideApply, SeveralConflictsAreListedPerManager) {
  Json live = Apply(nullptr, DeploymentConfig(), "a");
  Json config = J(R"({"apiVersion":"apps/v1","kind":"Deployment",
      "metadata":{"name":"web","labels":{"app":"api"}},"spec":{"replicas":4}})");
  Error e = Caught([&] { Apply(live, config, "b"); });
  EXPECT_EQ(e.message(),
            "Apply failed with 2 conflicts: conflicts with \"a\":\n- .metadata.labels.app\n- "
            ".spec.replicas");
  ASSERT_EQ(e.causes().size(), 2u);
  EXPECT_EQ(e.causes()[0].field, ".metadata.labels.app");
  EXPECT_EQ(e.causes()[1].field, ".spec.replicas");
}

TEST(ServerSideApply, ForceTakesOwnership) {
  Json live = Apply(nullptr, DeploymentConfig(), "a");
  Json config = J(R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
                     "spec":{"replicas":4}})");
  Json out = Apply(live, config, "b", "2024-01-03T00:00:00Z", /*force=*/true);
  EXPECT_EQ(out["spec"]["replicas"], 4);
  EXPECT_FALSE(Entry(out, "a", "Apply")["fieldsV1"]["f:spec"].contains("f:replicas"));
  EXPECT_EQ(Entry(out, "b", "Apply")["fieldsV1"], J(R"({"f:spec":{"f:replicas":{}}})"));
  // Now "a" no longer owns replicas: re-applying its config without force
  // conflicts the other way.
  Error e = Caught([&] { Apply(out, DeploymentConfig(), "a"); });
  EXPECT_EQ(e.message(), "Apply failed with 1 conflict: conflict with \"b\": .spec.replicas");
}

TEST(ServerSideApply, KeyedListsMergeAcrossManagers) {
  Json config_a = DeploymentConfig();
  config_a["spec"]["template"]["spec"]["containers"].erase(1);
  Json live = Apply(nullptr, config_a, "a");
  Json config_b = J(R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
      "spec":{"template":{"spec":{"containers":[{"name":"log","image":"fluent"}]}}}})");
  live = Apply(live, config_b, "b");
  auto names = [](const Json& obj) {
    std::vector<std::string> out;
    for (const Json& c : obj["spec"]["template"]["spec"]["containers"]) out.push_back(c["name"]);
    return out;
  };
  EXPECT_EQ(names(live), (std::vector<std::string>{"web", "log"}));
  // "a" re-applies a changed web container: "log" belongs to "b" and stays.
  config_a["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26";
  Json out = Apply(live, config_a, "a");
  EXPECT_EQ(names(out), (std::vector<std::string>{"web", "log"}));
  EXPECT_EQ(out["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.26");
}

TEST(ServerSideApply, ServerOwnedMetadataIsNeverTouched) {
  Json live = Apply(nullptr, DeploymentConfig(), "kubectl");
  live["metadata"]["uid"] = "u-1";
  live["metadata"]["resourceVersion"] = "42";
  live["metadata"]["generation"] = 2;
  live["metadata"]["creationTimestamp"] = "2024-01-01T00:00:00Z";
  Json config = DeploymentConfig();
  config["metadata"]["uid"] = "someone-else";
  config["metadata"]["resourceVersion"] = "7";
  config["metadata"]["generation"] = 9;
  Json out = Apply(live, config, "kubectl");
  EXPECT_EQ(out["metadata"]["uid"], "u-1");
  EXPECT_EQ(out["metadata"]["resourceVersion"], "42");
  EXPECT_EQ(out["metadata"]["generation"], 2);
  EXPECT_EQ(out["metadata"]["creationTimestamp"], "2024-01-01T00:00:00Z");
  const Json& fields = Entry(out, "kubectl", "Apply")["fieldsV1"]["f:metadata"];
  EXPECT_FALSE(fields.contains("f:uid"));
  EXPECT_FALSE(fields.contains("f:resourceVersion"));
  EXPECT_FALSE(fields.contains("f:name"));
}

TEST(ServerSideApply, UntrackedObjectsBelongToBeforeFirstApply) {
  Json live = DeploymentConfig();  // no managedFields at all
  Json config = J(R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
                     "spec":{"replicas":4}})");
  Error e = Caught([&] { Apply(live, config, "kubectl"); });
  EXPECT_EQ(e.message(),
            "Apply failed with 1 conflict: conflict with \"before-first-apply\" using apps/v1: "
            ".spec.replicas");
  Json forced = Apply(live, config, "kubectl", "2024-01-01T00:00:00Z", /*force=*/true);
  EXPECT_EQ(forced["spec"]["replicas"], 4);
  Json before = Entry(forced, "before-first-apply", "Update");
  ASSERT_FALSE(before.is_null());
  EXPECT_FALSE(before["fieldsV1"]["f:spec"].contains("f:replicas"));
  EXPECT_TRUE(before["fieldsV1"]["f:spec"].contains("f:template"));
}

TEST(ServerSideApply, ListKindsInFieldSets) {
  Json svc = J(R"({"apiVersion":"v1","kind":"Service",
      "metadata":{"name":"s","finalizers":["example.com/a"]},
      "spec":{"selector":{"app":"web"},"ports":[{"port":80,"targetPort":8080}]}})");
  Json out = ServerSideApply(nullptr, svc, "", "Service", Opts("kubectl", "t"));
  EXPECT_EQ(out["metadata"]["managedFields"][0]["fieldsV1"], J(R"({
    "f:metadata": {"f:finalizers": {"v:\"example.com/a\"": {}}},
    "f:spec": {"f:selector": {},
               "f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}, "f:targetPort": {}}}}
  })"));

  Json widget = J(R"({"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},
                     "spec":{"items":[1,2],"size":3}})");
  Json w = ServerSideApply(nullptr, widget, "example.com", "Widget", Opts("m", "t"));
  EXPECT_EQ(w["metadata"]["managedFields"][0]["fieldsV1"],
            J(R"({"f:spec":{"f:items":{},"f:size":{}}})"));
  // An atomic list is replaced whole.
  Json widget2 = widget;
  widget2["spec"]["items"] = J("[3]");
  EXPECT_EQ(ServerSideApply(w, widget2, "example.com", "Widget", Opts("m", "t"))["spec"]["items"],
            J("[3]"));
}

TEST(ServerSideApply, RejectsBadConfigurations) {
  Json with_managed = DeploymentConfig();
  with_managed["metadata"]["managedFields"] = J(R"([{"manager":"x"}])");
  EXPECT_EQ(Caught([&] { Apply(nullptr, with_managed, "kubectl"); }).code(), Code::kBadRequest);
  with_managed["metadata"]["managedFields"] = Json::array();  // empty is allowed
  EXPECT_EQ(Apply(nullptr, with_managed, "kubectl")["metadata"]["managedFields"].size(), 1u);

  Json no_name = DeploymentConfig();
  no_name["spec"]["template"]["spec"]["containers"][0].erase("name");
  Error e = Caught([&] { Apply(nullptr, no_name, "kubectl"); });
  EXPECT_EQ(e.code(), Code::kBadRequest);
  EXPECT_NE(e.message().find("omits key field \"name\""), std::string::npos) << e.message();

  Json dup = DeploymentConfig();
  dup["spec"]["template"]["spec"]["containers"][1]["name"] = "web";
  EXPECT_EQ(Caught([&] { Apply(nullptr, dup, "kubectl"); }).code(), Code::kBadRequest);

  EXPECT_EQ(Caught([&] { Apply(nullptr, DeploymentConfig(), ""); }).code(), Code::kBadRequest);
}

TEST(RecordUpdateManagedFields, CreateOwnsEverySetField) {
  Json cm = J(R"({"apiVersion":"v1","kind":"ConfigMap",
                 "metadata":{"name":"c","namespace":"default","labels":{"app":"x"}},
                 "data":{"a":"1"}})");
  RecordUpdateManagedFields(nullptr, cm, "kubectl-create", "v1", "2024-01-01T00:00:00Z");
  EXPECT_EQ(cm["metadata"]["managedFields"], J(R"([{
    "manager": "kubectl-create", "operation": "Update", "apiVersion": "v1",
    "time": "2024-01-01T00:00:00Z", "fieldsType": "FieldsV1",
    "fieldsV1": {"f:data": {".": {}, "f:a": {}},
                 "f:metadata": {"f:labels": {".": {}, "f:app": {}}}}
  }])"));
}

TEST(RecordUpdateManagedFields, UpdateTakesChangedFieldsFromOthers) {
  Json live = Apply(nullptr, DeploymentConfig(), "kubectl");
  Json after = live;
  after["spec"]["replicas"] = 5;
  after["metadata"]["labels"].erase("tier");
  RecordUpdateManagedFields(live, after, "scaler", "apps/v1", "2024-01-05T00:00:00Z");
  Json scaler = Entry(after, "scaler", "Update");
  EXPECT_EQ(scaler["fieldsV1"], J(R"({"f:spec":{"f:replicas":{}}})"));
  EXPECT_EQ(scaler["apiVersion"], "apps/v1");
  EXPECT_EQ(scaler["time"], "2024-01-05T00:00:00Z");
  Json kubectl = Entry(after, "kubectl", "Apply");
  EXPECT_FALSE(kubectl["fieldsV1"]["f:spec"].contains("f:replicas"));
  EXPECT_FALSE(kubectl["fieldsV1"]["f:metadata"]["f:labels"].contains("f:tier"));
  // Entries are sorted: Apply before Update.
  EXPECT_EQ(after["metadata"]["managedFields"][0]["operation"], "Apply");
  EXPECT_EQ(after["metadata"]["managedFields"][1]["operation"], "Update");

  // The applier re-applying replicas: 3 now conflicts with the scaler.
  Error e = Caught([&] { Apply(after, DeploymentConfig(), "kubectl"); });
  EXPECT_EQ(e.message(),
            "Apply failed with 1 conflict: conflict with \"scaler\" using apps/v1: .spec.replicas");
}

TEST(RecordUpdateManagedFields, ManagedFieldsSentByTheWriterWin) {
  Json live = Apply(nullptr, DeploymentConfig(), "kubectl");
  // A client hands the whole object to "ops" by rewriting the manager name.
  Json after = live;
  after["metadata"]["managedFields"][0]["manager"] = "ops";
  RecordUpdateManagedFields(live, after, "editor", "apps/v1", "t");
  ASSERT_EQ(after["metadata"]["managedFields"].size(), 1u);
  EXPECT_EQ(after["metadata"]["managedFields"][0]["manager"], "ops");
  // Without managedFields in the request, the live ones are kept.
  Json plain = live;
  plain["metadata"].erase("managedFields");
  RecordUpdateManagedFields(live, plain, "editor", "apps/v1", "t");
  EXPECT_EQ(plain["metadata"]["managedFields"], live["metadata"]["managedFields"]);
}

TEST(RecordUpdateManagedFields, NoOpUpdateChangesNothing) {
  Json live = Apply(nullptr, DeploymentConfig(), "kubectl");
  Json after = live;
  RecordUpdateManagedFields(live, after, "scaler", "apps/v1", "2024-01-05T00:00:00Z");
  EXPECT_EQ(after["metadata"]["managedFields"], live["metadata"]["managedFields"]);
}

TEST(RecordUpdateManagedFields, UntrackedObjectsStayUntracked) {
  Json before = DeploymentConfig();
  Json after = before;
  after["spec"]["replicas"] = 9;
  RecordUpdateManagedFields(before, after, "scaler", "apps/v1", "t");
  EXPECT_FALSE(after["metadata"].contains("managedFields"));
}

}  // namespace
}  // namespace kin::apiserver
