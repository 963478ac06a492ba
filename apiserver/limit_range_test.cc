// The LimitRanger admission's pure parts: container defaults and the
// annotation saying what was set, and the min / max / ratio checks of
// Container, Pod and PersistentVolumeClaim items in upstream's words.
#include "apiserver/limit_range.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/yaml.h"

namespace kin::apiserver {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

const ResourceInfo& Pods() { return *FindResource("", "v1", "pods"); }
const ResourceInfo& Claims() { return *FindResource("", "v1", "persistentvolumeclaims"); }

TEST(LimitRangeTest, DefaultsOnlyWhatIsMissingAndSaysSo) {
  Json lr = ParseYaml(R"(
spec:
  limits:
  - type: Container
    default: {cpu: 300m, memory: 128Mi}
    defaultRequest: {cpu: 200m}
)");
  Json pod = ParseYaml(R"(
metadata: {name: p}
spec:
  initContainers: [{name: init, image: i}]
  containers:
  - {name: a, image: i}
  - {name: b, image: i, resources: {limits: {cpu: "1"}, requests: {cpu: 500m}}}
)");
  ApplyLimitRangeDefaults(lr, pod);
  EXPECT_EQ(pod["spec"]["containers"][0]["resources"],
            ParseYaml("{requests: {cpu: 200m}, limits: {cpu: 300m, memory: 128Mi}}"));
  EXPECT_EQ(pod["spec"]["containers"][1]["resources"],
            ParseYaml("{requests: {cpu: 500m}, limits: {cpu: '1', memory: 128Mi}}"));
  EXPECT_EQ(pod["metadata"]["annotations"][kLimitRangerAnnotation],
            "LimitRanger plugin set: cpu request for container a; cpu, memory limit for "
            "container a; memory limit for container b; cpu request for init container init; "
            "cpu, memory limit for init container init");
  // Nothing to default: no annotation.
  Json other = ParseYaml("{metadata: {name: q}, spec: {containers: [{name: a, image: i}]}}");
  ApplyLimitRangeDefaults(ParseYaml("{spec: {limits: [{type: Pod, max: {cpu: '1'}}]}}"), other);
  EXPECT_FALSE(other["metadata"].contains("annotations"));
}

TEST(LimitRangeTest, ContainerAndPodConstraintsInUpstreamsWords) {
  Json lr = ParseYaml(R"(
spec:
  limits:
  - type: Container
    min: {memory: 16Mi}
    max: {cpu: 500m}
    maxLimitRequestRatio: {cpu: "2"}
  - type: Pod
    max: {cpu: 800m}
)");
  Json pod = ParseYaml(R"(
spec:
  containers:
  - {name: a, resources: {requests: {cpu: 100m, memory: 8Mi}, limits: {cpu: 400m}}}
  - {name: b, resources: {requests: {cpu: 500m, memory: 32Mi}, limits: {cpu: 1500m}}}
)");
  EXPECT_THAT(LimitRangeViolations(lr, Pods(), pod),
              ElementsAre("minimum memory usage per Container is 16Mi, but request is 8Mi",
                          "cpu max limit to request ratio per Container is 2, but provided "
                          "ratio is 4.000000",
                          "maximum cpu usage per Container is 500m, but limit is 1500m",
                          "cpu max limit to request ratio per Container is 2, but provided "
                          "ratio is 3.000000",
                          "maximum cpu usage per Pod is 800m, but limit is 1900m"));
  Json no_limit = ParseYaml("{spec: {containers: [{name: a, resources: {requests: {cpu: 1m, "
                            "memory: 20Mi}}}]}}");
  EXPECT_THAT(LimitRangeViolations(lr, Pods(), no_limit),
              ElementsAre("maximum cpu usage per Container is 500m.  No limit is specified",
                          "cpu max limit to request ratio per Container is 2, but no limit is "
                          "specified or limit is 0",
                          "maximum cpu usage per Pod is 800m.  No limit is specified"));
}

TEST(LimitRangeTest, ClaimsGetMinAndMaxOfStorageRequests) {
  Json lr = ParseYaml(
      "{spec: {limits: [{type: PersistentVolumeClaim, min: {storage: 1Gi}, max: {storage: "
      "2Gi}}]}}");
  Json small = ParseYaml("{spec: {resources: {requests: {storage: 500Mi}}}}");
  EXPECT_THAT(LimitRangeViolations(lr, Claims(), small),
              ElementsAre("minimum storage usage per PersistentVolumeClaim is 1Gi, but request "
                          "is 500Mi"));
  Json big = ParseYaml("{spec: {resources: {requests: {storage: 3Gi}}}}");
  EXPECT_THAT(LimitRangeViolations(lr, Claims(), big),
              ElementsAre("maximum storage usage per PersistentVolumeClaim is 2Gi, but request "
                          "is 3Gi"));
  Json fine = ParseYaml("{spec: {resources: {requests: {storage: 1536Mi}}}}");
  EXPECT_THAT(LimitRangeViolations(lr, Claims(), fine), IsEmpty());
  // Pod items say nothing about claims, and the other way round.
  EXPECT_THAT(LimitRangeViolations(lr, Pods(), ParseYaml("{spec: {containers: [{name: a}]}}")),
              IsEmpty());
}

}  // namespace
}  // namespace kin::apiserver
