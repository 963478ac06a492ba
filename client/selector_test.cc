#include "client/selector.h"

#include <gtest/gtest.h>

#include "base/error.h"

namespace kin {
namespace {

using Op = LabelRequirement::Op;

Json Labels(std::initializer_list<std::pair<const std::string, std::string>> kv) {
  Json j = Json::object();
  for (const auto& [k, v] : kv) j[k] = v;
  return j;
}

// The message of the BadRequest `fn` throws ("" when it throws nothing).
template <typename Fn>
std::string ParseErrorOf(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kBadRequest) << e.message();
    return e.message();
  }
  return "";
}

TEST(LabelSelectorTest, EqualsInAllThreeSpellings) {
  for (const char* text : {"app=web", "app==web"}) {
    auto s = LabelSelector::Parse(text);
    ASSERT_EQ(s.requirements().size(), 1u) << text;
    EXPECT_EQ(s.requirements()[0].key, "app");
    EXPECT_EQ(s.requirements()[0].op, Op::kEquals);
    EXPECT_EQ(s.requirements()[0].values, std::vector<std::string>{"web"});
    EXPECT_TRUE(s.Matches(Labels({{"app", "web"}, {"tier", "fe"}})));
    EXPECT_FALSE(s.Matches(Labels({{"app", "db"}})));
    EXPECT_FALSE(s.Matches(Labels({})));
    EXPECT_FALSE(s.Matches(nullptr));
  }
}

TEST(LabelSelectorTest, NotEqualsMatchesAbsentKey) {
  auto s = LabelSelector::Parse("app!=web");
  ASSERT_EQ(s.requirements().size(), 1u);
  EXPECT_EQ(s.requirements()[0].op, Op::kNotEquals);
  EXPECT_FALSE(s.Matches(Labels({{"app", "web"}})));
  EXPECT_TRUE(s.Matches(Labels({{"app", "db"}})));
  EXPECT_TRUE(s.Matches(Labels({})));  // as in Kubernetes: != holds when the key is absent
}

TEST(LabelSelectorTest, EmptyValueIsAValue) {
  auto s = LabelSelector::Parse("app=");
  EXPECT_EQ(s.requirements()[0].values, std::vector<std::string>{""});
  EXPECT_TRUE(s.Matches(Labels({{"app", ""}})));
  EXPECT_FALSE(s.Matches(Labels({{"app", "x"}})));
  EXPECT_FALSE(s.Matches(Labels({})));
}

TEST(LabelSelectorTest, InAndNotIn) {
  auto in = LabelSelector::Parse("env in (prod,staging)");
  ASSERT_EQ(in.requirements().size(), 1u);
  EXPECT_EQ(in.requirements()[0].op, Op::kIn);
  EXPECT_EQ(in.requirements()[0].values, (std::vector<std::string>{"prod", "staging"}));
  EXPECT_TRUE(in.Matches(Labels({{"env", "prod"}})));
  EXPECT_TRUE(in.Matches(Labels({{"env", "staging"}})));
  EXPECT_FALSE(in.Matches(Labels({{"env", "dev"}})));
  EXPECT_FALSE(in.Matches(Labels({})));

  auto notin = LabelSelector::Parse("env notin (prod)");
  EXPECT_EQ(notin.requirements()[0].op, Op::kNotIn);
  EXPECT_FALSE(notin.Matches(Labels({{"env", "prod"}})));
  EXPECT_TRUE(notin.Matches(Labels({{"env", "dev"}})));
  EXPECT_TRUE(notin.Matches(Labels({})));

  // No space before the parenthesis.
  EXPECT_EQ(LabelSelector::Parse("env in(a)").requirements()[0].op, Op::kIn);
  EXPECT_EQ(LabelSelector::Parse("env notin(a)").requirements()[0].op, Op::kNotIn);
}

TEST(LabelSelectorTest, ExistsAndDoesNotExist) {
  auto exists = LabelSelector::Parse("release");
  ASSERT_EQ(exists.requirements().size(), 1u);
  EXPECT_EQ(exists.requirements()[0].op, Op::kExists);
  EXPECT_TRUE(exists.Matches(Labels({{"release", ""}})));
  EXPECT_FALSE(exists.Matches(Labels({{"other", "x"}})));

  auto absent = LabelSelector::Parse("!legacy");
  EXPECT_EQ(absent.requirements()[0].op, Op::kDoesNotExist);
  EXPECT_EQ(absent.requirements()[0].key, "legacy");
  EXPECT_TRUE(absent.Matches(Labels({{"app", "x"}})));
  EXPECT_TRUE(absent.Matches(nullptr));
  EXPECT_FALSE(absent.Matches(Labels({{"legacy", "true"}})));
}

TEST(LabelSelectorTest, GreaterAndLessThanCompareIntegers) {
  auto gt = LabelSelector::Parse("replicas>3");
  EXPECT_EQ(gt.requirements()[0].op, Op::kGt);
  EXPECT_TRUE(gt.Matches(Labels({{"replicas", "10"}})));  // numerically, not as text
  EXPECT_FALSE(gt.Matches(Labels({{"replicas", "3"}})));
  EXPECT_FALSE(gt.Matches(Labels({{"replicas", "abc"}})));
  EXPECT_FALSE(gt.Matches(Labels({})));

  auto lt = LabelSelector::Parse("replicas < 3");
  EXPECT_EQ(lt.requirements()[0].op, Op::kLt);
  EXPECT_TRUE(lt.Matches(Labels({{"replicas", "-1"}})));
  EXPECT_FALSE(lt.Matches(Labels({{"replicas", "3"}})));
}

TEST(LabelSelectorTest, SeveralTermsAllMustHold) {
  auto s = LabelSelector::Parse("app=web,tier!=db,env in (a,b),!legacy,release");
  ASSERT_EQ(s.requirements().size(), 5u);
  Json ok = Labels({{"app", "web"}, {"tier", "fe"}, {"env", "b"}, {"release", "1"}});
  EXPECT_TRUE(s.Matches(ok));
  for (const char* key : {"app", "env", "release"}) {
    Json missing = ok;
    missing.erase(key);
    EXPECT_FALSE(s.Matches(missing)) << key;
  }
  Json legacy = ok;
  legacy["legacy"] = "y";
  EXPECT_FALSE(s.Matches(legacy));
}

TEST(LabelSelectorTest, WhitespaceAroundEverything) {
  auto s = LabelSelector::Parse("  app = web ,  env in ( a , b ) , ! legacy ,  tier  ");
  ASSERT_EQ(s.requirements().size(), 4u);
  EXPECT_EQ(s.requirements()[0].key, "app");
  EXPECT_EQ(s.requirements()[0].values, std::vector<std::string>{"web"});
  EXPECT_EQ(s.requirements()[1].values, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(s.requirements()[2].key, "legacy");
  EXPECT_EQ(s.requirements()[2].op, Op::kDoesNotExist);
  EXPECT_EQ(s.requirements()[3].key, "tier");
  EXPECT_EQ(s.requirements()[3].op, Op::kExists);
  EXPECT_TRUE(LabelSelector::Parse("   ").empty());
}

TEST(LabelSelectorTest, KeysWithPrefixes) {
  auto s = LabelSelector::Parse("example.com/app=web,app.kubernetes.io/name in (x)");
  ASSERT_EQ(s.requirements().size(), 2u);
  EXPECT_EQ(s.requirements()[0].key, "example.com/app");
  EXPECT_EQ(s.requirements()[1].key, "app.kubernetes.io/name");
  EXPECT_TRUE(s.Matches(Labels({{"example.com/app", "web"}, {"app.kubernetes.io/name", "x"}})));
  EXPECT_FALSE(s.Matches(Labels({{"app", "web"}, {"app.kubernetes.io/name", "x"}})));
}

TEST(LabelSelectorTest, ErrorsNameTheBadPart) {
  auto msg = ParseErrorOf([] { LabelSelector::Parse("app=web,tier=b@d"); });
  EXPECT_NE(msg.find("\"tier=b@d\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("invalid label value"), std::string::npos) << msg;

  msg = ParseErrorOf([] { LabelSelector::Parse("Bad_Prefix/app=x"); });
  EXPECT_NE(msg.find("\"Bad_Prefix/app\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("prefix part"), std::string::npos) << msg;

  msg = ParseErrorOf([] { LabelSelector::Parse("app ~ web"); });
  EXPECT_NE(msg.find("\"app ~ web\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("found '~'"), std::string::npos) << msg;

  msg = ParseErrorOf([] { LabelSelector::Parse("env in prod"); });
  EXPECT_NE(msg.find("\"env in prod\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("parenthesized"), std::string::npos) << msg;

  msg = ParseErrorOf([] { LabelSelector::Parse("replicas>many"); });
  EXPECT_NE(msg.find("\"replicas>many\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("integer"), std::string::npos) << msg;

  msg = ParseErrorOf([] { LabelSelector::Parse("a=b,,c=d"); });
  EXPECT_NE(msg.find("empty requirement"), std::string::npos) << msg;

  msg = ParseErrorOf([] { LabelSelector::Parse("!"); });
  EXPECT_NE(msg.find("name part must be non-empty"), std::string::npos) << msg;

  msg = ParseErrorOf([] { LabelSelector::Parse("env in (a,b@)"); });
  EXPECT_NE(msg.find("\"b@\""), std::string::npos) << msg;

  msg = ParseErrorOf([] { LabelSelector::Parse(std::string(64, 'k') + "=v"); });
  EXPECT_NE(msg.find("63 characters"), std::string::npos) << msg;
}

TEST(LabelSelectorTest, FromJsonCombinesMatchLabelsAndExpressions) {
  Json sel = Json::parse(R"({
    "matchLabels": {"app": "web"},
    "matchExpressions": [
      {"key": "tier", "operator": "In", "values": ["fe", "be"]},
      {"key": "env", "operator": "NotIn", "values": ["test"]},
      {"key": "release", "operator": "Exists"},
      {"key": "legacy", "operator": "DoesNotExist"}
    ]})");
  auto s = LabelSelector::FromJson(sel);
  ASSERT_EQ(s.requirements().size(), 5u);
  EXPECT_EQ(s.requirements()[0].op, Op::kEquals);
  EXPECT_EQ(s.requirements()[1].op, Op::kIn);
  EXPECT_EQ(s.requirements()[2].op, Op::kNotIn);
  EXPECT_EQ(s.requirements()[3].op, Op::kExists);
  EXPECT_EQ(s.requirements()[4].op, Op::kDoesNotExist);
  Json ok = Labels({{"app", "web"}, {"tier", "be"}, {"env", "prod"}, {"release", "1"}});
  EXPECT_TRUE(s.Matches(ok));
  Json bad = ok;
  bad["tier"] = "db";
  EXPECT_FALSE(s.Matches(bad));
  bad = ok;
  bad["env"] = "test";
  EXPECT_FALSE(s.Matches(bad));
  bad = ok;
  bad["legacy"] = "";
  EXPECT_FALSE(s.Matches(bad));
  bad = ok;
  bad["app"] = "db";
  EXPECT_FALSE(s.Matches(bad));
}

TEST(LabelSelectorTest, FromJsonErrorsNameTheField) {
  auto msg = ParseErrorOf([] {
    LabelSelector::FromJson(Json::parse(R"({"matchExpressions":[{"key":"a","operator":"Exists"},
                                            {"key":"b","operator":"Bogus"}]})"),
                            "spec.selector");
  });
  EXPECT_NE(msg.find("spec.selector.matchExpressions[1].operator"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Bogus"), std::string::npos) << msg;

  msg = ParseErrorOf([] {
    LabelSelector::FromJson(Json::parse(R"({"matchLabels":{"app":3}})"), "spec.selector");
  });
  EXPECT_NE(msg.find("spec.selector.matchLabels.app"), std::string::npos) << msg;

  msg = ParseErrorOf([] { LabelSelector::FromJson(Json::array(), "spec.selector"); });
  EXPECT_NE(msg.find("spec.selector"), std::string::npos) << msg;
}

TEST(LabelSelectorTest, ToStringRoundTrips) {
  const std::string canonical =
      "app=web,tier!=db,env in (a,b),env notin (c),!legacy,release,n>1,m<9";
  auto s = LabelSelector::Parse(canonical);
  EXPECT_EQ(s.ToString(), canonical);
  auto again = LabelSelector::Parse(s.ToString());
  ASSERT_EQ(again.requirements().size(), s.requirements().size());
  for (size_t i = 0; i < s.requirements().size(); ++i) {
    EXPECT_EQ(again.requirements()[i].key, s.requirements()[i].key);
    EXPECT_EQ(again.requirements()[i].op, s.requirements()[i].op);
    EXPECT_EQ(again.requirements()[i].values, s.requirements()[i].values);
  }
  // "==" and spacing come back in the canonical form.
  EXPECT_EQ(LabelSelector::Parse(" app == web , env in ( a ,b )").ToString(),
            "app=web,env in (a,b)");
  // From the JSON form too.
  auto j = LabelSelector::FromJson(Json::parse(R"({"matchLabels":{"app":"web"},
                      "matchExpressions":[{"key":"t","operator":"In","values":["x","y"]}]})"));
  EXPECT_EQ(j.ToString(), "app=web,t in (x,y)");
}

TEST(LabelSelectorTest, EmptySelectorMatchesEverything) {
  for (const LabelSelector& s :
       {LabelSelector(), LabelSelector::Parse(""), LabelSelector::FromJson(Json::object()),
        LabelSelector::FromJson(nullptr)}) {
    EXPECT_TRUE(s.empty());
    EXPECT_TRUE(s.Matches(Labels({{"a", "b"}})));
    EXPECT_TRUE(s.Matches(Labels({})));
    EXPECT_TRUE(s.Matches(nullptr));
    EXPECT_EQ(s.ToString(), "");
  }
}

TEST(LabelValidityTest, KeysAndValues) {
  EXPECT_EQ(LabelKeyError("app"), "");
  EXPECT_EQ(LabelKeyError("example.com/app"), "");
  EXPECT_EQ(LabelKeyError("a.b-c_d"), "");
  EXPECT_NE(LabelKeyError(""), "");
  EXPECT_NE(LabelKeyError("/app"), "");
  EXPECT_NE(LabelKeyError("example.com/"), "");
  EXPECT_NE(LabelKeyError("-app"), "");
  EXPECT_NE(LabelKeyError("a/b/c"), "");
  EXPECT_NE(LabelKeyError(std::string(64, 'a')), "");
  EXPECT_EQ(LabelKeyError(std::string(63, 'a')), "");
  EXPECT_EQ(LabelValueError(""), "");
  EXPECT_EQ(LabelValueError("v1.2_3-x"), "");
  EXPECT_NE(LabelValueError("-v"), "");
  EXPECT_NE(LabelValueError("a b"), "");
  EXPECT_NE(LabelValueError(std::string(64, 'v')), "");
}

Json Pod() {
  return Json::parse(R"({
    "metadata": {"name": "web-1", "namespace": "default"},
    "spec": {"nodeName": "node-a", "replicas": 3, "hostNetwork": true},
    "status": {"phase": "Running"}
  })");
}

TEST(FieldSelectorTest, EqualsSpellingsAndNotEquals) {
  for (const char* text : {"spec.nodeName=node-a", "spec.nodeName==node-a"}) {
    auto s = FieldSelector::Parse(text);
    ASSERT_EQ(s.requirements().size(), 1u) << text;
    EXPECT_EQ(s.requirements()[0].field, "spec.nodeName");
    EXPECT_FALSE(s.requirements()[0].negate);
    EXPECT_EQ(s.requirements()[0].value, "node-a");
    EXPECT_TRUE(s.Matches(Pod()));
  }
  EXPECT_FALSE(FieldSelector::Parse("spec.nodeName=node-b").Matches(Pod()));
  auto ne = FieldSelector::Parse("status.phase!=Running");
  EXPECT_TRUE(ne.requirements()[0].negate);
  EXPECT_FALSE(ne.Matches(Pod()));
  EXPECT_TRUE(FieldSelector::Parse("status.phase!=Pending").Matches(Pod()));
}

TEST(FieldSelectorTest, SeveralTermsAllMustHold) {
  auto s =
      FieldSelector::Parse("metadata.namespace=default, status.phase!=Failed,spec.nodeName=node-a");
  ASSERT_EQ(s.requirements().size(), 3u);
  EXPECT_TRUE(s.Matches(Pod()));
  Json other = Pod();
  other["metadata"]["namespace"] = "kube-system";
  EXPECT_FALSE(s.Matches(other));
}

TEST(FieldSelectorTest, NestedPathsAndScalars) {
  Json event = Json::parse(R"({"involvedObject": {"kind": "Pod", "name": "web-1"}, "count": 2})");
  EXPECT_TRUE(
      FieldSelector::Parse("involvedObject.name=web-1,involvedObject.kind=Pod").Matches(event));
  EXPECT_FALSE(FieldSelector::Parse("involvedObject.name=web-2").Matches(event));
  EXPECT_EQ(FieldValue(Pod(), "spec.replicas"), "3");
  EXPECT_EQ(FieldValue(Pod(), "spec.hostNetwork"), "true");
  EXPECT_EQ(FieldValue(Pod(), "spec"), "");  // objects have no string form
  EXPECT_TRUE(FieldSelector::Parse("spec.hostNetwork=true").Matches(Pod()));
}

TEST(FieldSelectorTest, MissingFieldReadsAsEmpty) {
  Json unscheduled = Pod();
  unscheduled["spec"].erase("nodeName");
  EXPECT_EQ(FieldValue(unscheduled, "spec.nodeName"), "");
  EXPECT_EQ(FieldValue(unscheduled, "no.such.path"), "");
  EXPECT_TRUE(FieldSelector::Parse("spec.nodeName=").Matches(unscheduled));
  EXPECT_FALSE(FieldSelector::Parse("spec.nodeName!=").Matches(unscheduled));
  EXPECT_TRUE(FieldSelector::Parse("spec.nodeName!=").Matches(Pod()));
  EXPECT_FALSE(FieldSelector::Parse("spec.nodeName=x").Matches(unscheduled));
}

TEST(FieldSelectorTest, PinnedName) {
  EXPECT_EQ(FieldSelector::Parse("metadata.name=web-1").PinnedName(), "web-1");
  EXPECT_EQ(FieldSelector::Parse("status.phase=Running,metadata.name==web-1").PinnedName(),
            "web-1");
  EXPECT_EQ(FieldSelector::Parse("metadata.name!=web-1").PinnedName(), "");
  EXPECT_EQ(FieldSelector::Parse("metadata.namespace=default").PinnedName(), "");
  EXPECT_EQ(FieldSelector::Parse("").PinnedName(), "");
}

TEST(FieldSelectorTest, EmptyMatchesEverything) {
  auto s = FieldSelector::Parse("  ");
  EXPECT_TRUE(s.empty());
  EXPECT_TRUE(s.Matches(Pod()));
  EXPECT_TRUE(s.Matches(Json::object()));
}

TEST(FieldSelectorTest, ErrorsNameTheBadTerm) {
  auto msg = ParseErrorOf([] { FieldSelector::Parse("metadata.name=a,spec.nodeName"); });
  EXPECT_NE(msg.find("\"spec.nodeName\""), std::string::npos) << msg;
  msg = ParseErrorOf([] { FieldSelector::Parse("=value"); });
  EXPECT_NE(msg.find("\"=value\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("empty field"), std::string::npos) << msg;
  msg = ParseErrorOf([] { FieldSelector::Parse("a=b,,c=d"); });
  EXPECT_NE(msg.find("invalid field selector"), std::string::npos) << msg;
}

}  // namespace
}  // namespace kin
