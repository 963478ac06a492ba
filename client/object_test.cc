// Object helpers: identity, labels, owner references, RFC 3339.
#include "client/object.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace kin::object {
namespace {

Json Pod() {
  return {{"metadata",
           {{"namespace", "ns"},
            {"name", "p"},
            {"uid", "u-p"},
            {"resourceVersion", "7"},
            {"labels", {{"app", "web"}}},
            {"ownerReferences",
             Json::array({{{"uid", "u-other"}, {"kind", "Thing"}},
                          {{"uid", "u-rs"}, {"kind", "ReplicaSet"}, {"controller", true}}})}}}};
}

TEST(ObjectTest, Identity) {
  Json p = Pod();
  EXPECT_EQ(Namespace(p), "ns");
  EXPECT_EQ(Name(p), "p");
  EXPECT_EQ(Uid(p), "u-p");
  EXPECT_EQ(ResourceVersion(p), "7");
  EXPECT_EQ(Key(p), "ns/p");
  EXPECT_EQ(Key(Json{{"metadata", {{"name", "node-1"}}}}), "node-1");
  EXPECT_EQ(SplitKey("ns/p"), (std::pair<std::string, std::string>{"ns", "p"}));
  EXPECT_EQ(SplitKey("node-1"), (std::pair<std::string, std::string>{"", "node-1"}));
}

TEST(ObjectTest, MalformedObjectsReadAsEmpty) {
  for (const Json& bad :
       {Json(), Json(3), Json{{"metadata", "x"}},
        Json{{"metadata", {{"name", 5}, {"labels", "x"}, {"ownerReferences", 1}}}}}) {
    EXPECT_EQ(Name(bad), "");
    EXPECT_EQ(Key(bad), "");
    EXPECT_TRUE(Labels(bad).empty());
    EXPECT_FALSE(Label(bad, "app"));
    EXPECT_TRUE(OwnerReferences(bad).empty());
    EXPECT_EQ(ControllerOf(bad), nullptr);
    EXPECT_FALSE(IsBeingDeleted(bad));
  }
}

TEST(ObjectTest, LabelsAndDeletion) {
  Json p = Pod();
  EXPECT_EQ(Labels(p), Json({{"app", "web"}}));
  EXPECT_EQ(Label(p, "app"), "web");
  EXPECT_FALSE(Label(p, "tier"));
  EXPECT_FALSE(IsBeingDeleted(p));
  p["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z";
  EXPECT_TRUE(IsBeingDeleted(p));
}

TEST(ObjectTest, OwnerReferences) {
  Json p = Pod();
  EXPECT_EQ(OwnerUids(p), (std::vector<std::string>{"u-other", "u-rs"}));
  ASSERT_NE(ControllerOf(p), nullptr);
  EXPECT_EQ((*ControllerOf(p))["kind"], "ReplicaSet");
  Json rs = {{"metadata", {{"name", "rs"}, {"uid", "u-rs"}}}};
  Json other = {{"metadata", {{"name", "x"}, {"uid", "u-other"}}}};
  EXPECT_TRUE(IsControlledBy(p, rs));
  EXPECT_FALSE(IsControlledBy(p, other));  // an owner, not the controller
  EXPECT_FALSE(IsControlledBy(p, Json::object()));
  Json ref = NewControllerRef(rs, "apps/v1", "ReplicaSet");
  EXPECT_EQ(ref, Json({{"apiVersion", "apps/v1"},
                       {"kind", "ReplicaSet"},
                       {"name", "rs"},
                       {"uid", "u-rs"},
                       {"controller", true},
                       {"blockOwnerDeletion", true}}));
  Json child = {{"metadata", {{"ownerReferences", Json::array({ref})}}}};
  EXPECT_TRUE(IsControlledBy(child, rs));
}

TEST(ObjectTest, Conditions) {
  Json pod = Json::parse(R"({"status": {"conditions": [
      "junk", {"type": 1}, {"type": "Ready", "status": "True"}, {"type": "Ready", "status": "False"},
      {"type": "PodScheduled", "status": "True"}]}})");
  ASSERT_TRUE(Condition(pod, "Ready"));
  EXPECT_EQ((*Condition(pod, "Ready"))["status"], "True");  // the first
  EXPECT_EQ(StatusCondition(pod["status"], "PodScheduled"), &pod["status"]["conditions"][4]);
  EXPECT_EQ(Condition(pod, "DisruptionTarget"), nullptr);
  EXPECT_EQ(Condition(Json::parse(R"({"status": {"conditions": {}}})"), "Ready"), nullptr);
  EXPECT_EQ(Condition(Json::parse(R"({"status": "x"})"), "Ready"), nullptr);
  EXPECT_EQ(Condition(Json::array(), "Ready"), nullptr);
}

TEST(ObjectTest, Rfc3339) {
  using namespace std::chrono;
  auto t = ParseRfc3339("2016-10-06T00:17:09Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(FormatRfc3339(*t), "2016-10-06T00:17:09Z");
  EXPECT_EQ(t->time_since_epoch(), seconds(1475713029));
  // Offsets and fractions; formatting is UTC with whole seconds.
  auto u = ParseRfc3339("2016-10-06T02:17:09.5+02:00");
  ASSERT_TRUE(u);
  EXPECT_EQ(*u - *t, milliseconds(500));
  EXPECT_EQ(FormatRfc3339(*u), "2016-10-06T00:17:09Z");
  EXPECT_FALSE(ParseRfc3339("2016-10-06 00:17:09Z"));
  EXPECT_FALSE(ParseRfc3339("2016-10-06T00:17:09"));
  EXPECT_FALSE(ParseRfc3339("2016-02-30T00:00:00Z"));
  EXPECT_FALSE(ParseRfc3339("2016-10-06T00:17:09.Z"));
  EXPECT_FALSE(ParseRfc3339(""));
  // Now round-trips to within a second.
  auto now = ParseRfc3339(NowRfc3339());
  ASSERT_TRUE(now);
  EXPECT_LE(std::abs(duration_cast<seconds>(system_clock::now() - *now).count()), 2);
}

// Found by fuzz/quantity_fuzzer: times system_clock's int64 nanoseconds
// cannot hold overflowed (UBSan: signed integer overflow) instead of failing.
TEST(ObjectTest, Rfc3339OutsideTheClockRangeDoesNotParse) {
  EXPECT_FALSE(ParseRfc3339("4052-12-07T10:00:00Z"));
  EXPECT_FALSE(ParseRfc3339("9999-12-31T23:59:59.999999999Z"));
  EXPECT_FALSE(ParseRfc3339("0000-01-01T00:00:00Z"));
  EXPECT_FALSE(ParseRfc3339("1677-01-01T00:00:00-23:59"));
  auto late = ParseRfc3339("2262-04-10T23:59:59.999999999Z");
  ASSERT_TRUE(late);
  EXPECT_EQ(FormatRfc3339(*late), "2262-04-10T23:59:59Z");
  auto early = ParseRfc3339("1678-01-01T00:00:00Z");
  ASSERT_TRUE(early);
  EXPECT_EQ(FormatRfc3339(*early), "1678-01-01T00:00:00Z");
}

}  // namespace
}  // namespace kin::object

namespace kin::object {
namespace {

TEST(ObjectFieldTest, LenientReadsNeverThrow) {
  const Json obj = {{"spec", {{"type", "LoadBalancer"}, {"port", 80}}}};
  EXPECT_EQ(Field(obj, "spec")["port"], 80);
  EXPECT_TRUE(Field(obj, "status").is_null());
  EXPECT_TRUE(Field(Json::array({1}), "spec").is_null());
  EXPECT_EQ(Str(Field(obj, "spec"), "type"), "LoadBalancer");
  EXPECT_EQ(Str(Field(obj, "spec"), "port"), "");  // not a string
  EXPECT_EQ(Str(Json(), "type"), "");
}

}  // namespace
}  // namespace kin::object
