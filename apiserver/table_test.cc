#include "apiserver/table.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "base/error.h"
#include "client/resources.h"

namespace kin::apiserver {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

Json J(const char* text) { return Json::parse(text); }

const ResourceInfo& Res(const char* name) {
  const ResourceInfo* r = LookupResource(name);
  EXPECT_NE(r, nullptr) << name;
  return *r;
}

// 2024-06-01T12:00:00Z: the clock every test measures ages against.
std::chrono::system_clock::time_point Now() {
  return std::chrono::sys_days(std::chrono::year(2024) / 6 / 1) + hours(12);
}

// The RFC 3339 timestamp `ago` before Now().
std::string Ago(seconds ago) {
  auto t = std::chrono::floor<seconds>(Now() - ago);
  auto days = std::chrono::floor<std::chrono::days>(t);
  std::chrono::year_month_day ymd{days};
  std::chrono::hh_mm_ss<seconds> hms{t - days};
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buf;
}

// Parses `text` after replacing every "$AGO[n]" with Ago(n seconds).
Json Obj(std::string text) {
  for (size_t pos; (pos = text.find("$AGO[")) != std::string::npos;) {
    size_t end = text.find(']', pos);
    long n = std::stol(text.substr(pos + 5, end - pos - 5));
    text.replace(pos, end - pos + 1, Ago(seconds(n)));
  }
  return Json::parse(text);
}

Json Cells(const char* resource, const std::string& obj) {
  return TableRow(Res(resource), Obj(obj), IncludeObject::kNone, Now())["cells"];
}

// ---------------------------------------------------------------------------
// HumanDuration
// ---------------------------------------------------------------------------

TEST(HumanDuration, MatchesApimachinery) {
  struct Case {
    seconds d;
    const char* want;
  };
  const Case cases[] = {
      {seconds(-5), "<invalid>"},
      {seconds(-2), "<invalid>"},
      {seconds(-1), "0s"},
      {seconds(0), "0s"},
      {seconds(1), "1s"},
      {seconds(59), "59s"},
      {seconds(119), "119s"},
      {seconds(120), "2m"},
      {seconds(123), "2m3s"},
      {minutes(5) + seconds(3), "5m3s"},
      {seconds(599), "9m59s"},
      {minutes(10), "10m"},
      {minutes(10) + seconds(59), "10m"},
      {minutes(179) + seconds(59), "179m"},
      {hours(3), "3h"},
      {hours(3) + minutes(5), "3h5m"},
      {hours(7) + minutes(59) + seconds(59), "7h59m"},
      {hours(8), "8h"},
      {hours(8) + minutes(30), "8h"},
      {hours(47), "47h"},
      {hours(48), "2d"},
      {hours(49), "2d1h"},
      {hours(24 * 8 - 1), "7d23h"},
      {hours(24 * 8), "8d"},
      {hours(24 * 729), "729d"},
      {hours(24 * 730), "2y"},
      {hours(24 * 731), "2y1d"},
      {hours(24 * (365 * 8 - 1)), "7y364d"},
      {hours(24 * 365 * 8), "8y"},
      {hours(24 * 365 * 10 + 24 * 100), "10y"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(HumanDuration(c.d), c.want) << c.d.count() << "s";
  }
}

// ---------------------------------------------------------------------------
// Accept header and includeObject
// ---------------------------------------------------------------------------

TEST(WantsTable, KubectlHeaders) {
  // kubectl get (1.15+).
  EXPECT_TRUE(WantsTable(
      "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta."
      "k8s.io,application/json"));
  // Older kubectl, v1beta1 only.
  EXPECT_TRUE(WantsTable("application/json;as=Table;v=v1beta1;g=meta.k8s.io, application/json"));
  // Parameter order and spacing do not matter.
  EXPECT_TRUE(WantsTable("application/json; g=meta.k8s.io; v=v1; as=Table"));
  // kubectl get -o json, kubectl apply, client-go.
  EXPECT_FALSE(WantsTable("application/json"));
  EXPECT_FALSE(WantsTable("application/json, */*"));
  EXPECT_FALSE(WantsTable("application/vnd.kubernetes.protobuf, */*"));
  EXPECT_FALSE(WantsTable(""));
  EXPECT_FALSE(WantsTable("*/*"));
}

TEST(WantsTable, OrderQualityAndUnservableRanges) {
  // Plain JSON listed first wins.
  EXPECT_FALSE(WantsTable("application/json,application/json;as=Table;v=v1;g=meta.k8s.io"));
  // ... unless the q-values say otherwise.
  EXPECT_TRUE(WantsTable("application/json;q=0.5,application/json;as=Table;v=v1;g=meta.k8s.io"));
  EXPECT_FALSE(WantsTable("application/json;as=Table;v=v1;g=meta.k8s.io;q=0,application/json"));
  // Ranges the server cannot serve are skipped, not taken for plain JSON.
  EXPECT_TRUE(WantsTable(
      "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json;as="
      "Table;v=v1;g=meta.k8s.io,application/json"));
  EXPECT_FALSE(WantsTable(
      "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json"));
  EXPECT_FALSE(WantsTable("application/json;as=Table;v=v2;g=meta.k8s.io,application/json"));
  EXPECT_FALSE(WantsTable("application/json;as=Table;v=v1;g=example.com,application/json"));
  EXPECT_FALSE(WantsTable("application/json;as=Table;v=v1"));
}

TEST(Table, ContentTypeIsWhatKubectlExpects) {
  EXPECT_EQ(kTableContentType, "application/json;as=Table;v=v1;g=meta.k8s.io");
}

TEST(ParseIncludeObject, Values) {
  EXPECT_EQ(ParseIncludeObject(""), IncludeObject::kMetadata);
  EXPECT_EQ(ParseIncludeObject("Metadata"), IncludeObject::kMetadata);
  EXPECT_EQ(ParseIncludeObject("Object"), IncludeObject::kObject);
  EXPECT_EQ(ParseIncludeObject("None"), IncludeObject::kNone);
  try {
    ParseIncludeObject("Everything");
    ADD_FAILURE() << "expected a BadRequest";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kBadRequest);
    EXPECT_EQ(e.message(), "unrecognized includeObject value: \"Everything\"");
  }
}

// ---------------------------------------------------------------------------
// Column definitions
// ---------------------------------------------------------------------------

struct ColumnWant {
  const char* name;
  const char* type;
  int priority;
  const char* format = "";
};

void ExpectColumns(const char* resource, const std::vector<ColumnWant>& want) {
  Json cols = TableColumnDefinitions(Res(resource));
  ASSERT_EQ(cols.size(), want.size()) << resource << ": " << cols.dump();
  for (size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE(std::string(resource) + " column " + std::to_string(i));
    EXPECT_EQ(cols[i]["name"], want[i].name);
    EXPECT_EQ(cols[i]["type"], want[i].type);
    EXPECT_EQ(cols[i]["priority"], want[i].priority);
    EXPECT_EQ(cols[i]["format"], want[i].format);
    EXPECT_TRUE(cols[i]["description"].is_string());
    EXPECT_FALSE(cols[i]["description"].get<std::string>().empty());
  }
}

TEST(TableColumnDefinitions, Pods) {
  ExpectColumns("pods", {{"Name", "string", 0, "name"},
                         {"Ready", "string", 0},
                         {"Status", "string", 0},
                         {"Restarts", "string", 0},
                         {"Age", "string", 0},
                         {"IP", "string", 1},
                         {"Node", "string", 1},
                         {"Nominated Node", "string", 1},
                         {"Readiness Gates", "string", 1}});
}

TEST(TableColumnDefinitions, Services) {
  ExpectColumns("services", {{"Name", "string", 0, "name"},
                             {"Type", "string", 0},
                             {"Cluster-IP", "string", 0},
                             {"External-IP", "string", 0},
                             {"Port(s)", "string", 0},
                             {"Age", "string", 0},
                             {"Selector", "string", 1}});
}

TEST(TableColumnDefinitions, Deployments) {
  ExpectColumns("deployments", {{"Name", "string", 0, "name"},
                                {"Ready", "string", 0},
                                {"Up-to-date", "string", 0},
                                {"Available", "string", 0},
                                {"Age", "string", 0},
                                {"Containers", "string", 1},
                                {"Images", "string", 1},
                                {"Selector", "string", 1}});
}

TEST(TableColumnDefinitions, Nodes) {
  ExpectColumns("nodes", {{"Name", "string", 0, "name"},
                          {"Status", "string", 0},
                          {"Roles", "string", 0},
                          {"Age", "string", 0},
                          {"Version", "string", 0},
                          {"Internal-IP", "string", 1},
                          {"External-IP", "string", 1},
                          {"OS-Image", "string", 1},
                          {"Kernel-Version", "string", 1},
                          {"Container-Runtime", "string", 1}});
}

TEST(TableColumnDefinitions, OtherKinds) {
  ExpectColumns("replicasets", {{"Name", "string", 0, "name"},
                                {"Desired", "integer", 0},
                                {"Current", "integer", 0},
                                {"Ready", "integer", 0},
                                {"Age", "string", 0},
                                {"Containers", "string", 1},
                                {"Images", "string", 1},
                                {"Selector", "string", 1}});
  ExpectColumns("jobs", {{"Name", "string", 0, "name"},
                         {"Status", "string", 0},
                         {"Completions", "string", 0},
                         {"Duration", "string", 0},
                         {"Age", "string", 0},
                         {"Containers", "string", 1},
                         {"Images", "string", 1},
                         {"Selector", "string", 1}});
  ExpectColumns("events", {{"Last Seen", "string", 0},
                           {"Type", "string", 0},
                           {"Reason", "string", 0},
                           {"Object", "string", 0},
                           {"Subobject", "string", 1},
                           {"Source", "string", 1},
                           {"Message", "string", 0},
                           {"First Seen", "string", 1},
                           {"Count", "string", 1},
                           {"Name", "string", 1, "name"}});
  ExpectColumns("daemonsets", {{"Name", "string", 0, "name"},
                               {"Desired", "integer", 0},
                               {"Current", "integer", 0},
                               {"Ready", "integer", 0},
                               {"Up-to-date", "integer", 0},
                               {"Available", "integer", 0},
                               {"Node Selector", "string", 0},
                               {"Age", "string", 0},
                               {"Containers", "string", 1},
                               {"Images", "string", 1},
                               {"Selector", "string", 1}});
  ExpectColumns("statefulsets", {{"Name", "string", 0, "name"},
                                 {"Ready", "string", 0},
                                 {"Age", "string", 0},
                                 {"Containers", "string", 1},
                                 {"Images", "string", 1}});
  ExpectColumns("ingresses", {{"Name", "string", 0, "name"},
                              {"Class", "string", 0},
                              {"Hosts", "string", 0},
                              {"Address", "string", 0},
                              {"Ports", "string", 0},
                              {"Age", "string", 0}});
  ExpectColumns("endpointslices", {{"Name", "string", 0, "name"},
                                   {"AddressType", "string", 0},
                                   {"Ports", "string", 0},
                                   {"Endpoints", "string", 0},
                                   {"Age", "string", 0}});
  ExpectColumns("secrets", {{"Name", "string", 0, "name"},
                            {"Type", "string", 0},
                            {"Data", "string", 0},
                            {"Age", "string", 0}});
}

TEST(TableColumnDefinitions, EveryServedResourceHasItsOwnPrinter) {
  // Only kinds without a kube-apiserver printer fall back to Name / Created At;
  // Roles' and ClusterRoles' printers are just that, CustomResourceDefinitions
  // have none upstream (`kubectl get crd`: NAME, CREATED AT), and create-only
  // reviews are never listed.
  for (const ResourceInfo& r : AllResources()) {
    // LimitRanges' printer is Name / Created At too.
    if (r.plural == "roles" || r.plural == "clusterroles" || r.plural == "limitranges" ||
        r.plural == "customresourcedefinitions" || r.verbs.size() == 1) {
      continue;
    }
    Json cols = TableColumnDefinitions(r);
    ASSERT_GE(cols.size(), 2u) << r.plural;
    EXPECT_NE(cols[1]["name"], "Created At") << r.plural;
  }
}

// printPodTemplate, printLimitRange, printResourceQuota (issue 15).
TEST(TableRows, PodTemplatesLimitRangesAndQuotas) {
  EXPECT_EQ(Cells("podtemplates",
                  R"({"metadata":{"name":"t"},"template":{"metadata":{"labels":{"app":"web"}},
                      "spec":{"containers":[{"name":"a","image":"nginx"},
                                            {"name":"b","image":"busybox"}]}}})"),
            J(R"(["t","a,b","nginx,busybox","app=web"])"));
  EXPECT_EQ(Cells("limitranges", R"({"metadata":{"name":"l","creationTimestamp":"$AGO[90]"}})"),
            J(R"(["l","2024-06-01T11:58:30Z"])"));
  EXPECT_EQ(Cells("resourcequotas",
                  R"({"metadata":{"name":"q","creationTimestamp":"$AGO[90]"},
                      "status":{"hard":{"pods":"2","requests.cpu":"1","limits.memory":"1Gi",
                                        "limits.cpu":"2"},
                                "used":{"pods":"1","requests.cpu":"100m","limits.cpu":"0"}}})"),
            J(R"(["q","90s","pods: 1/2, requests.cpu: 100m/1","limits.cpu: 0/2, limits.memory: 0/1Gi"])"));
  EXPECT_EQ(Cells("resourcequotas", R"({"metadata":{"name":"new"}})"),
            J(R"(["new","<unknown>","",""])"));
  Json cols = TableColumnDefinitions(Res("resourcequotas"));
  ASSERT_EQ(cols.size(), 4u);
  EXPECT_EQ(cols[2]["name"], "Request");
  EXPECT_EQ(cols[3]["name"], "Limit");
  EXPECT_EQ(TableColumnDefinitions(Res("podtemplates"))[3]["name"], "Pod Labels");
}

TEST(TableColumnDefinitions, UnknownKindsGetTheDefaultTable) {
  ResourceInfo widgets;
  widgets.group = "example.com";
  widgets.version = "v1";
  widgets.kind = "Widget";
  widgets.plural = "widgets";
  Json cols = TableColumnDefinitions(widgets);
  ASSERT_EQ(cols.size(), 2u);
  EXPECT_EQ(cols[0]["name"], "Name");
  EXPECT_EQ(cols[0]["format"], "name");
  EXPECT_EQ(cols[1]["name"], "Created At");
  EXPECT_EQ(cols[1]["type"], "date");
  EXPECT_EQ(cols[1]["priority"], 0);

  Json row = TableRow(widgets, Obj(R"({"metadata":{"name":"w1","creationTimestamp":"$AGO[90]"}})"),
                      IncludeObject::kNone, Now());
  EXPECT_EQ(row["cells"], J(R"(["w1","2024-06-01T11:58:30Z"])"));
  row = TableRow(widgets, J(R"({"metadata":{"name":"w2"}})"), IncludeObject::kNone, Now());
  EXPECT_EQ(row["cells"], J(R"(["w2","0001-01-01T00:00:00Z"])"));
}

// ---------------------------------------------------------------------------
// Pods: the STATUS column's reason logic and the rest of the row.
// ---------------------------------------------------------------------------

// A pod named p created 10 minutes ago with the given spec and status.
std::string Pod(const std::string& spec, const std::string& status,
                const std::string& extra_metadata = "") {
  return R"({"metadata":{"name":"p","creationTimestamp":"$AGO[600]")" + extra_metadata +
         R"(},"spec":)" + spec + R"(,"status":)" + status + "}";
}

constexpr const char* kOneContainer = R"({"containers":[{"name":"app","image":"nginx"}]})";

TEST(PodRow, PendingWithoutStatuses) {
  EXPECT_EQ(Cells("pods", Pod(kOneContainer, R"({"phase":"Pending"})")),
            J(R"(["p","0/1","Pending","0","10m","<none>","<none>","<none>","<none>"])"));
}

TEST(PodRow, ContainerCreating) {
  Json cells = Cells("pods", Pod(R"({"containers":[{"name":"app"}],"nodeName":"kin-worker"})",
                                 R"({"phase":"Pending","containerStatuses":[
                                     {"name":"app","ready":false,"restartCount":0,
                                      "state":{"waiting":{"reason":"ContainerCreating"}}}]})"));
  EXPECT_EQ(cells, J(R"(["p","0/1","ContainerCreating","0","10m","<none>","kin-worker","<none>",
                          "<none>"])"));
}

TEST(PodRow, RunningAndReady) {
  Json cells = Cells("pods", Pod(R"({"containers":[{"name":"app"}],"nodeName":"kin-worker"})",
                                 R"({"phase":"Running","podIP":"10.244.1.5",
                                     "podIPs":[{"ip":"10.244.1.5"}],
                                     "conditions":[{"type":"Ready","status":"True"}],
                                     "containerStatuses":[{"name":"app","ready":true,
                                      "restartCount":0,"state":{"running":{"startedAt":"$AGO[500]"}}}]})"));
  EXPECT_EQ(cells, J(R"(["p","1/1","Running","0","10m","10.244.1.5","kin-worker","<none>",
                          "<none>"])"));
}

TEST(PodRow, RunningButNotReadyCountsNoReadyContainer) {
  Json cells = Cells("pods", Pod(R"({"containers":[{"name":"a"},{"name":"b"}]})",
                                 R"({"phase":"Running","containerStatuses":[
                                     {"name":"a","ready":true,"state":{"running":{}}},
                                     {"name":"b","ready":false,"state":{"running":{}}}]})"));
  EXPECT_EQ(cells[1], "1/2");
  EXPECT_EQ(cells[2], "Running");
}

TEST(PodRow, CrashLoopBackOffWithRestartsAgo) {
  Json cells = Cells("pods", Pod(kOneContainer, R"({"phase":"Running","containerStatuses":[
      {"name":"app","ready":false,"restartCount":5,
       "state":{"waiting":{"reason":"CrashLoopBackOff","message":"back-off 2m40s"}},
       "lastState":{"terminated":{"exitCode":1,"reason":"Error","finishedAt":"$AGO[120]"}}}]})"));
  EXPECT_EQ(cells[1], "0/1");
  EXPECT_EQ(cells[2], "CrashLoopBackOff");
  EXPECT_EQ(cells[3], "5 (2m ago)");
}

TEST(PodRow, RestartsWithoutATerminationTimeHaveNoAgo) {
  Json cells = Cells("pods", Pod(kOneContainer, R"({"phase":"Running","containerStatuses":[
      {"name":"app","ready":true,"restartCount":2,"state":{"running":{}}}]})"));
  EXPECT_EQ(cells[3], "2");
}

TEST(PodRow, RestartsSumOverContainersAndTakeTheLatestTermination) {
  Json cells = Cells("pods", Pod(R"({"containers":[{"name":"a"},{"name":"b"}]})",
                                 R"({"phase":"Running","containerStatuses":[
      {"name":"a","ready":true,"restartCount":1,"state":{"running":{}},
       "lastState":{"terminated":{"exitCode":1,"finishedAt":"$AGO[7200]"}}},
      {"name":"b","ready":true,"restartCount":2,"state":{"running":{}},
       "lastState":{"terminated":{"exitCode":1,"finishedAt":"$AGO[45]"}}}]})"));
  EXPECT_EQ(cells[1], "2/2");
  EXPECT_EQ(cells[2], "Running");
  EXPECT_EQ(cells[3], "3 (45s ago)");
}

TEST(PodRow, CompletedSucceededPodHasTheCompletedRowCondition) {
  Json row = TableRow(Res("pods"), Obj(Pod(kOneContainer, R"({"phase":"Succeeded",
      "containerStatuses":[{"name":"app","ready":false,"restartCount":0,
       "state":{"terminated":{"exitCode":0,"reason":"Completed"}}}]})")),
                      IncludeObject::kNone, Now());
  EXPECT_EQ(row["cells"][1], "0/1");
  EXPECT_EQ(row["cells"][2], "Completed");
  EXPECT_EQ(row["conditions"], J(R"([{"type":"Completed","status":"True","reason":"Succeeded",
                                      "message":"The pod has completed successfully."}])"));
}

TEST(PodRow, ErrorFailedPod) {
  Json row = TableRow(Res("pods"), Obj(Pod(kOneContainer, R"({"phase":"Failed",
      "containerStatuses":[{"name":"app","ready":false,"restartCount":0,
       "state":{"terminated":{"exitCode":1,"reason":"Error"}}}]})")),
                      IncludeObject::kNone, Now());
  EXPECT_EQ(row["cells"][2], "Error");
  EXPECT_EQ(row["conditions"], J(R"([{"type":"Completed","status":"True","reason":"Failed",
                                      "message":"The pod failed."}])"));
}

TEST(PodRow, RunningPodHasNoRowConditions) {
  Json row = TableRow(Res("pods"), Obj(Pod(kOneContainer, R"({"phase":"Running"})")),
                      IncludeObject::kNone, Now());
  EXPECT_FALSE(row.contains("conditions"));
}

TEST(PodRow, OOMKilled) {
  Json cells = Cells("pods", Pod(kOneContainer, R"({"phase":"Running","containerStatuses":[
      {"name":"app","ready":false,"restartCount":3,
       "state":{"terminated":{"exitCode":137,"reason":"OOMKilled","finishedAt":"$AGO[30]"}},
       "lastState":{"terminated":{"exitCode":137,"reason":"OOMKilled","finishedAt":"$AGO[90]"}}}]})"));
  EXPECT_EQ(cells[2], "OOMKilled");
  EXPECT_EQ(cells[3], "3 (90s ago)");
}

TEST(PodRow, TerminatedWithoutReasonShowsExitCodeOrSignal) {
  EXPECT_EQ(Cells("pods", Pod(kOneContainer, R"({"phase":"Running","containerStatuses":[
      {"name":"app","state":{"terminated":{"exitCode":137}}}]})"))[2],
            "ExitCode:137");
  EXPECT_EQ(Cells("pods", Pod(kOneContainer, R"({"phase":"Running","containerStatuses":[
      {"name":"app","state":{"terminated":{"exitCode":0,"signal":9}}}]})"))[2],
            "Signal:9");
}

TEST(PodRow, CompletedContainerBesideARunningOne) {
  const char* spec = R"({"containers":[{"name":"a"},{"name":"b"}]})";
  // Statuses are read last to first, so "Completed" of a is the final reason.
  const char* statuses = R"([
      {"name":"a","ready":false,"state":{"terminated":{"exitCode":0,"reason":"Completed"}}},
      {"name":"b","ready":true,"state":{"running":{}}}])";
  EXPECT_EQ(Cells("pods", Pod(spec, std::string(R"({"phase":"Running","conditions":[
      {"type":"Ready","status":"True"}],"containerStatuses":)") +
                                        statuses + "}"))[2],
            "Running");
  EXPECT_EQ(Cells("pods", Pod(spec, std::string(R"({"phase":"Running","conditions":[
      {"type":"Ready","status":"False"}],"containerStatuses":)") +
                                        statuses + "}"))[2],
            "NotReady");
}

constexpr const char* kTwoInitContainers =
    R"({"initContainers":[{"name":"init-a"},{"name":"init-b"}],"containers":[{"name":"app"}]})";

TEST(PodRow, InitContainerRunning) {
  Json cells = Cells("pods", Pod(kTwoInitContainers, R"({"phase":"Pending",
      "initContainerStatuses":[
        {"name":"init-a","ready":false,"restartCount":0,"state":{"running":{}}},
        {"name":"init-b","ready":false,"restartCount":0,
         "state":{"waiting":{"reason":"PodInitializing"}}}],
      "containerStatuses":[{"name":"app","ready":false,
        "state":{"waiting":{"reason":"PodInitializing"}}}]})"));
  EXPECT_EQ(cells[1], "0/1");
  EXPECT_EQ(cells[2], "Init:0/2");
}

TEST(PodRow, SecondInitContainerRunning) {
  Json cells = Cells("pods", Pod(kTwoInitContainers, R"({"phase":"Pending",
      "initContainerStatuses":[
        {"name":"init-a","state":{"terminated":{"exitCode":0,"reason":"Completed"}}},
        {"name":"init-b","state":{"running":{}}}]})"));
  EXPECT_EQ(cells[2], "Init:1/2");
}

TEST(PodRow, InitContainerErrorAndCrashLoop) {
  Json cells = Cells("pods", Pod(kTwoInitContainers, R"({"phase":"Pending",
      "initContainerStatuses":[
        {"name":"init-a","restartCount":1,"state":{"terminated":{"exitCode":1,"reason":"Error"}},
         "lastState":{"terminated":{"exitCode":1,"reason":"Error","finishedAt":"$AGO[20]"}}},
        {"name":"init-b","state":{"waiting":{"reason":"PodInitializing"}}}]})"));
  EXPECT_EQ(cells[2], "Init:Error");
  EXPECT_EQ(cells[3], "1 (20s ago)");  // init restarts count while initializing

  cells = Cells("pods", Pod(kTwoInitContainers, R"({"phase":"Pending",
      "initContainerStatuses":[
        {"name":"init-a","restartCount":4,
         "state":{"waiting":{"reason":"CrashLoopBackOff"}}}]})"));
  EXPECT_EQ(cells[2], "Init:CrashLoopBackOff");
  EXPECT_EQ(cells[3], "4");

  cells = Cells("pods", Pod(kTwoInitContainers, R"({"phase":"Pending",
      "initContainerStatuses":[{"name":"init-a","state":{"terminated":{"exitCode":2}}}]})"));
  EXPECT_EQ(cells[2], "Init:ExitCode:2");
}

TEST(PodRow, SidecarInitContainerCountsAsAContainer) {
  Json cells =
      Cells("pods", Pod(
                        R"({"initContainers":[{"name":"proxy","restartPolicy":"Always"}],
          "containers":[{"name":"app"}]})",
                        R"({"phase":"Running","conditions":[{"type":"Initialized","status":"True"},
                                          {"type":"Ready","status":"True"}],
          "initContainerStatuses":[{"name":"proxy","ready":true,"started":true,"restartCount":1,
            "state":{"running":{}},
            "lastState":{"terminated":{"exitCode":1,"finishedAt":"$AGO[300]"}}}],
          "containerStatuses":[{"name":"app","ready":true,"restartCount":0,
            "state":{"running":{}}}]})"));
  EXPECT_EQ(cells[1], "2/2");
  EXPECT_EQ(cells[2], "Running");
  EXPECT_EQ(cells[3], "1 (5m ago)");
}

TEST(PodRow, TerminatingAndNodeLost) {
  EXPECT_EQ(Cells("pods", Pod(kOneContainer, R"({"phase":"Running","containerStatuses":[
      {"name":"app","ready":true,"state":{"running":{}}}]})",
                              R"(,"deletionTimestamp":"$AGO[5]")"))[2],
            "Terminating");
  EXPECT_EQ(Cells("pods", Pod(kOneContainer, R"({"phase":"Running","reason":"NodeLost"})",
                              R"(,"deletionTimestamp":"$AGO[5]")"))[2],
            "Unknown");
  // A finished pod being deleted keeps its final status.
  EXPECT_EQ(Cells("pods", Pod(kOneContainer, R"({"phase":"Succeeded","containerStatuses":[
      {"name":"app","state":{"terminated":{"exitCode":0,"reason":"Completed"}}}]})",
                              R"(,"deletionTimestamp":"$AGO[5]")"))[2],
            "Completed");
}

TEST(PodRow, Evicted) {
  EXPECT_EQ(Cells("pods", Pod(kOneContainer, R"({"phase":"Failed","reason":"Evicted",
      "message":"The node was low on resource: memory."})")),
            J(R"(["p","0/1","Evicted","0","10m","<none>","<none>","<none>","<none>"])"));
}

TEST(PodRow, SchedulingGated) {
  EXPECT_EQ(Cells("pods", Pod(kOneContainer, R"({"phase":"Pending","conditions":[
      {"type":"PodScheduled","status":"False","reason":"SchedulingGated"}]})"))[2],
            "SchedulingGated");
}

TEST(PodRow, WideCells) {
  Json cells = Cells("pods", Pod(R"({"containers":[{"name":"app"}],"nodeName":"kin-worker-2",
                     "readinessGates":[{"conditionType":"example.com/lb"},
                                       {"conditionType":"example.com/dns"}]})",
                                 R"({"phase":"Running","nominatedNodeName":"kin-worker-3",
                      "podIPs":[{"ip":"10.244.2.7"},{"ip":"fd00::7"}],
                      "conditions":[{"type":"example.com/lb","status":"True"},
                                    {"type":"example.com/dns","status":"False"}]})"));
  EXPECT_EQ(cells[5], "10.244.2.7");
  EXPECT_EQ(cells[6], "kin-worker-2");
  EXPECT_EQ(cells[7], "kin-worker-3");
  EXPECT_EQ(cells[8], "1/2");
}

TEST(PodRow, MissingCreationTimestampIsUnknownAge) {
  EXPECT_EQ(Cells("pods", R"({"metadata":{"name":"p"},"spec":{},"status":{}})"),
            J(R"(["p","0/0","","0","<unknown>","<none>","<none>","<none>","<none>"])"));
}

// ---------------------------------------------------------------------------
// Services
// ---------------------------------------------------------------------------

std::string Svc(const std::string& spec, const std::string& status = "{}") {
  return R"({"metadata":{"name":"web","creationTimestamp":"$AGO[3600]"},"spec":)" + spec +
         R"(,"status":)" + status + "}";
}

TEST(ServiceRow, ClusterIP) {
  EXPECT_EQ(Cells("services", Svc(R"({"type":"ClusterIP","clusterIP":"10.96.0.20",
      "clusterIPs":["10.96.0.20"],"selector":{"tier":"front","app":"web"},
      "ports":[{"port":80,"targetPort":8080,"protocol":"TCP"},
               {"port":53,"protocol":"UDP"}]})")),
            J(R"(["web","ClusterIP","10.96.0.20","<none>","80/TCP,53/UDP","60m",
                  "app=web,tier=front"])"));
}

TEST(ServiceRow, NodePortHeadlessAndNoPorts) {
  EXPECT_EQ(Cells("services", Svc(R"({"type":"NodePort","clusterIPs":["10.96.4.4"],
      "externalIPs":["203.0.113.9"],
      "ports":[{"port":80,"nodePort":30080,"protocol":"TCP"},
               {"port":443,"nodePort":30443,"protocol":"TCP"}]})")),
            J(R"(["web","NodePort","10.96.4.4","203.0.113.9","80:30080/TCP,443:30443/TCP","60m",
                  "<none>"])"));
  EXPECT_EQ(Cells("services", Svc(R"({"type":"ClusterIP","clusterIP":"None",
      "clusterIPs":["None"],"selector":{"app":"db"}})")),
            J(R"(["web","ClusterIP","None","<none>","<none>","60m","app=db"])"));
}

TEST(ServiceRow, LoadBalancer) {
  EXPECT_EQ(Cells("services", Svc(R"({"type":"LoadBalancer","clusterIPs":["10.96.1.1"],
      "ports":[{"port":80,"nodePort":31000,"protocol":"TCP"}]})"))[3],
            "<pending>");
  // Wide form: every address, sorted, de-duplicated, never clipped.
  EXPECT_EQ(Cells("services", Svc(R"({"type":"LoadBalancer","clusterIPs":["10.96.1.1"]})",
                                  R"({"loadBalancer":{"ingress":[{"ip":"198.51.100.20"},
                                      {"hostname":"lb.example.com"},{"ip":"198.51.100.3"},
                                      {"ip":"198.51.100.20"}]}})"))[3],
            "198.51.100.20,198.51.100.3,lb.example.com");
  EXPECT_EQ(Cells("services", Svc(R"({"type":"LoadBalancer","clusterIPs":["10.96.1.1"],
      "externalIPs":["203.0.113.5"]})",
                                  R"({"loadBalancer":{"ingress":[{"ip":"198.51.100.7"}]}})"))[3],
            "198.51.100.7,203.0.113.5");
  EXPECT_EQ(Cells("services", Svc(R"({"type":"LoadBalancer","clusterIPs":["10.96.1.1"],
      "externalIPs":["203.0.113.5"]})"))[3],
            "203.0.113.5");
}

TEST(ServiceRow, ExternalName) {
  EXPECT_EQ(Cells("services", Svc(R"({"type":"ExternalName","externalName":"db.example.com"})")),
            J(R"(["web","ExternalName","<none>","db.example.com","<none>","60m","<none>"])"));
}

// ---------------------------------------------------------------------------
// Workloads
// ---------------------------------------------------------------------------

constexpr const char* kTemplate =
    R"("template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.27"},
                                         {"name":"log","image":"busybox"}]}})";

TEST(DeploymentRow, Cells) {
  std::string d = std::string(R"({"metadata":{"name":"web","creationTimestamp":"$AGO[172800]"},
      "spec":{"replicas":3,"selector":{"matchLabels":{"app":"web"},
        "matchExpressions":[{"key":"tier","operator":"In","values":["b","a"]},
                            {"key":"canary","operator":"DoesNotExist"}]},)") +
                  kTemplate + R"(},
      "status":{"replicas":3,"updatedReplicas":3,"readyReplicas":2,"availableReplicas":2}})";
  EXPECT_EQ(Cells("deployments", d), J(R"j(["web","2/3",3,2,"2d","nginx,log","nginx:1.27,busybox",
                  "app=web,!canary,tier in (a,b)"])j"));
}

TEST(DeploymentRow, FreshDeploymentWithoutStatus) {
  EXPECT_EQ(Cells("deployments", R"({"metadata":{"name":"d","creationTimestamp":"$AGO[3]"},
      "spec":{"replicas":0,"selector":{"matchLabels":{"app":"d"}},
      "template":{"spec":{"containers":[{"name":"c","image":"i"}]}}}})"),
            J(R"(["d","0/0",0,0,"3s","c","i","app=d"])"));
}

TEST(ReplicaSetRow, Cells) {
  std::string rs = std::string(R"({"metadata":{"name":"web-5d4f","creationTimestamp":"$AGO[300]"},
      "spec":{"replicas":3,"selector":{"matchLabels":{"app":"web","pod-template-hash":"5d4f"}},)") +
                   kTemplate + R"(},"status":{"replicas":3,"readyReplicas":1}})";
  EXPECT_EQ(Cells("replicasets", rs), J(R"(["web-5d4f",3,3,1,"5m","nginx,log","nginx:1.27,busybox",
                  "app=web,pod-template-hash=5d4f"])"));
}

TEST(TableColumnDefinitions, ControllerKinds) {
  ExpectColumns("rc", {{"Name", "string", 0, "name"},
                       {"Desired", "integer", 0},
                       {"Current", "integer", 0},
                       {"Ready", "integer", 0},
                       {"Age", "string", 0},
                       {"Containers", "string", 1},
                       {"Images", "string", 1},
                       {"Selector", "string", 1}});
  ExpectColumns("cj", {{"Name", "string", 0, "name"},
                       {"Schedule", "string", 0},
                       {"Timezone", "string", 0},
                       {"Suspend", "boolean", 0},
                       {"Active", "integer", 0},
                       {"Last Schedule", "string", 0},
                       {"Age", "string", 0},
                       {"Containers", "string", 1},
                       {"Images", "string", 1},
                       {"Selector", "string", 1}});
  ExpectColumns("pdb", {{"Name", "string", 0, "name"},
                        {"Min Available", "string", 0},
                        {"Max Unavailable", "string", 0},
                        {"Allowed Disruptions", "integer", 0},
                        {"Age", "string", 0}});
  ExpectColumns("controllerrevisions", {{"Name", "string", 0, "name"},
                                        {"Controller", "string", 0},
                                        {"Revision", "string", 0},
                                        {"Age", "string", 0}});
}

TEST(ReplicationControllerRow, Cells) {
  std::string rc = std::string(R"({"metadata":{"name":"web","creationTimestamp":"$AGO[300]"},
      "spec":{"replicas":3,"selector":{"app":"web","tier":"a"},)") +
                   kTemplate + R"(},"status":{"replicas":2,"readyReplicas":1}})";
  EXPECT_EQ(Cells("rc", rc),
            J(R"(["web",3,2,1,"5m","nginx,log","nginx:1.27,busybox","app=web,tier=a"])"));
  EXPECT_EQ(Cells("rc", R"({"metadata":{"name":"e","creationTimestamp":"$AGO[3]"},"spec":{}})"),
            J(R"(["e",1,0,0,"3s","","","<none>"])"));
}

TEST(CronJobRow, Cells) {
  std::string cj = R"({"metadata":{"name":"tick","creationTimestamp":"$AGO[3600]"},
      "spec":{"schedule":"*/5 * * * *","suspend":false,"jobTemplate":{"spec":{
        "template":{"spec":{"containers":[{"name":"c","image":"busybox"}]}}}}},
      "status":{"active":[{"name":"tick-1"}],"lastScheduleTime":"$AGO[120]"}})";
  EXPECT_EQ(Cells("cj", cj),
            J(R"(["tick","*/5 * * * *","<none>","False",1,"2m","60m","c","busybox","<none>"])"));
  std::string fresh = R"({"metadata":{"name":"t","creationTimestamp":"$AGO[5]"},
      "spec":{"schedule":"@hourly","timeZone":"Europe/Paris","suspend":true,
        "jobTemplate":{"spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"spec":{}}}}}})";
  EXPECT_EQ(Cells("cj", fresh),
            J(R"(["t","@hourly","Europe/Paris","True",0,"<none>","5s","","","a=b"])"));
  EXPECT_EQ(Cells("cj", R"({"metadata":{"name":"u","creationTimestamp":"$AGO[5]"},"spec":{}})")[3],
            "<unset>");
}

TEST(PodDisruptionBudgetRow, Cells) {
  EXPECT_EQ(Cells("pdb", R"({"metadata":{"name":"web","creationTimestamp":"$AGO[60]"},
      "spec":{"minAvailable":2,"selector":{"matchLabels":{"app":"web"}}},
      "status":{"disruptionsAllowed":1,"currentHealthy":3,"desiredHealthy":2,"expectedPods":3}})"),
            J(R"(["web","2","N/A",1,"60s"])"));
  EXPECT_EQ(Cells("pdb", R"({"metadata":{"name":"p","creationTimestamp":"$AGO[60]"},
      "spec":{"maxUnavailable":"25%"}})"),
            J(R"(["p","N/A","25%",0,"60s"])"));
}

TEST(ControllerRevisionRow, Cells) {
  EXPECT_EQ(
      Cells("controllerrevisions", R"({"metadata":{"name":"ds-7f9","creationTimestamp":"$AGO[60]",
      "ownerReferences":[{"apiVersion":"apps/v1","kind":"DaemonSet","name":"ds","uid":"u",
      "controller":true}]},"revision":2,"data":{}})"),
      J(R"(["ds-7f9","daemonset.apps/ds",2,"60s"])"));
  EXPECT_EQ(Cells("controllerrevisions",
                  R"({"metadata":{"name":"x","creationTimestamp":"$AGO[60]"},"revision":1})"),
            J(R"(["x","<none>",1,"60s"])"));
}

TEST(DaemonSetRow, Cells) {
  std::string ds = R"({"metadata":{"name":"proxy","creationTimestamp":"$AGO[90000]"},
      "spec":{"selector":{"matchLabels":{"k8s-app":"proxy"}},
        "template":{"spec":{"nodeSelector":{"kubernetes.io/os":"linux"},
          "containers":[{"name":"proxy","image":"kin/proxy"}]}}},
      "status":{"desiredNumberScheduled":3,"currentNumberScheduled":3,"numberReady":2,
                "updatedNumberScheduled":3,"numberAvailable":2}})";
  EXPECT_EQ(Cells("daemonsets", ds),
            J(R"(["proxy",3,3,2,3,2,"kubernetes.io/os=linux","25h","proxy","kin/proxy",
                  "k8s-app=proxy"])"));
  // No node selector.
  EXPECT_EQ(Cells("daemonsets", R"({"metadata":{"name":"x"},"spec":{}})")[6], "<none>");
}

TEST(StatefulSetRow, Cells) {
  std::string sts = std::string(R"({"metadata":{"name":"db","creationTimestamp":"$AGO[60]"},
      "spec":{"replicas":3,)") +
                    kTemplate + R"(},"status":{"replicas":2,"readyReplicas":1}})";
  EXPECT_EQ(Cells("statefulsets", sts),
            J(R"(["db","1/3","60s","nginx,log","nginx:1.27,busybox"])"));
}

std::string Job(const std::string& spec, const std::string& status,
                const std::string& extra_metadata = "") {
  return R"({"metadata":{"name":"pi","creationTimestamp":"$AGO[600]")" + extra_metadata +
         R"(},"spec":)" + spec + R"(,"status":)" + status + "}";
}

TEST(JobRow, CompleteRunningFailedSuspended) {
  const char* spec = R"({"completions":1,"parallelism":1,
      "selector":{"matchLabels":{"batch.kubernetes.io/controller-uid":"u1"}},
      "template":{"spec":{"containers":[{"name":"pi","image":"perl"}]}}})";
  EXPECT_EQ(Cells("jobs", Job(spec, R"({"succeeded":1,"startTime":"$AGO[590]",
      "completionTime":"$AGO[560]","conditions":[{"type":"Complete","status":"True"}]})")),
            J(R"(["pi","Complete","1/1","30s","10m","pi","perl",
                  "batch.kubernetes.io/controller-uid=u1"])"));
  EXPECT_EQ(Cells("jobs", Job(spec, R"({"active":1,"startTime":"$AGO[590]"})"))[1], "Running");
  EXPECT_EQ(Cells("jobs", Job(spec, R"({"active":1,"startTime":"$AGO[590]"})"))[3], "9m50s");
  EXPECT_EQ(Cells("jobs", Job(spec, R"({"failed":7,"startTime":"$AGO[590]",
      "conditions":[{"type":"FailureTarget","status":"True"},
                    {"type":"Failed","status":"True"}]})"))[1],
            "Failed");
  EXPECT_EQ(Cells("jobs", Job(spec, R"({"conditions":[{"type":"Suspended","status":"True"}]})")),
            J(R"(["pi","Suspended","0/1","","10m","pi","perl",
                  "batch.kubernetes.io/controller-uid=u1"])"));
  EXPECT_EQ(Cells("jobs", Job(spec, R"({"conditions":[{"type":"Complete","status":"False"}]})",
                              R"(,"deletionTimestamp":"$AGO[1]")"))[1],
            "Terminating");
}

TEST(JobRow, CompletionsWithoutSpecCompletions) {
  EXPECT_EQ(Cells("jobs", Job(R"({"parallelism":3})", R"({"succeeded":1})"))[2], "1/1 of 3");
  EXPECT_EQ(Cells("jobs", Job(R"({"parallelism":1})", R"({})"))[2], "0/1");
  EXPECT_EQ(Cells("jobs", Job(R"({"completions":5,"parallelism":2})", R"({"succeeded":2})"))[2],
            "2/5");
}

// ---------------------------------------------------------------------------
// Nodes
// ---------------------------------------------------------------------------

TEST(NodeRow, ReadyControlPlane) {
  EXPECT_EQ(Cells("nodes", R"j({"metadata":{"name":"kin-control-plane",
      "creationTimestamp":"$AGO[1200]",
      "labels":{"node-role.kubernetes.io/control-plane":"","kubernetes.io/hostname":"x"}},
      "spec":{},
      "status":{"conditions":[{"type":"MemoryPressure","status":"False"},
                              {"type":"Ready","status":"True"}],
        "addresses":[{"type":"InternalIP","address":"172.18.0.2"},
                     {"type":"Hostname","address":"kin-control-plane"}],
        "nodeInfo":{"kubeletVersion":"v1.31.0","osImage":"Debian GNU/Linux 12 (bookworm)",
                    "kernelVersion":"6.1.0-18-amd64",
                    "containerRuntimeVersion":"kin://0.1.0"}}})j"),
            J(R"j(["kin-control-plane","Ready","control-plane","20m","v1.31.0","172.18.0.2",
                  "<none>","Debian GNU/Linux 12 (bookworm)","6.1.0-18-amd64","kin://0.1.0"])j"));
}

TEST(NodeRow, NotReadyCordonedUnknownAndRoles) {
  Json cells = Cells("nodes", R"({"metadata":{"name":"w1","labels":{
      "node-role.kubernetes.io/worker":"","node-role.kubernetes.io/infra":"",
      "node-role.kubernetes.io/":"","kubernetes.io/role":"edge"}},
      "spec":{"unschedulable":true},
      "status":{"conditions":[{"type":"Ready","status":"False"}],
                "addresses":[{"type":"ExternalIP","address":"198.51.100.4"}]}})");
  EXPECT_EQ(cells[1], "NotReady,SchedulingDisabled");
  EXPECT_EQ(cells[2], "edge,infra,worker");
  EXPECT_EQ(cells[3], "<unknown>");
  EXPECT_EQ(cells[4], "");
  EXPECT_EQ(cells[5], "<none>");
  EXPECT_EQ(cells[6], "198.51.100.4");
  EXPECT_EQ(cells[7], "<unknown>");
  EXPECT_EQ(cells[8], "<unknown>");
  EXPECT_EQ(cells[9], "<unknown>");

  cells = Cells("nodes", R"({"metadata":{"name":"w2"},"status":{}})");
  EXPECT_EQ(cells[1], "Unknown");
  EXPECT_EQ(cells[2], "<none>");
  cells = Cells("nodes", R"({"metadata":{"name":"w3"},"status":{"conditions":[
      {"type":"Ready","status":"Unknown"}]}})");
  EXPECT_EQ(cells[1], "NotReady");
}

// ---------------------------------------------------------------------------
// Everything else
// ---------------------------------------------------------------------------

TEST(OtherRows, NamespacesConfigMapsSecretsServiceAccounts) {
  EXPECT_EQ(Cells("namespaces", R"({"metadata":{"name":"default","creationTimestamp":"$AGO[100]"},
      "status":{"phase":"Active"}})"),
            J(R"(["default","Active","100s"])"));
  EXPECT_EQ(Cells("namespaces", R"({"metadata":{"name":"old"},
      "status":{"phase":"Terminating"}})")[1],
            "Terminating");
  EXPECT_EQ(Cells("configmaps", R"({"metadata":{"name":"cfg","creationTimestamp":"$AGO[5]"},
      "data":{"a":"1","b":"2"},"binaryData":{"c":"AA=="}})"),
            J(R"(["cfg",3,"5s"])"));
  EXPECT_EQ(Cells("configmaps", R"({"metadata":{"name":"empty"}})")[1], 0);
  EXPECT_EQ(Cells("secrets", R"({"metadata":{"name":"tls","creationTimestamp":"$AGO[5]"},
      "type":"kubernetes.io/tls","data":{"tls.crt":"AA==","tls.key":"AA=="}})"),
            J(R"(["tls","kubernetes.io/tls",2,"5s"])"));
  EXPECT_EQ(Cells("serviceaccounts", R"({"metadata":{"name":"default",
      "creationTimestamp":"$AGO[5]"}})"),
            J(R"(["default",0,"5s"])"));
  EXPECT_EQ(Cells("serviceaccounts", R"({"metadata":{"name":"builder"},
      "secrets":[{"name":"builder-token"}]})")[1],
            1);
}

TEST(OtherRows, Endpoints) {
  EXPECT_EQ(Cells("endpoints", R"({"metadata":{"name":"web","creationTimestamp":"$AGO[5]"},
      "subsets":[{"addresses":[{"ip":"10.244.1.2"},{"ip":"10.244.2.3"}],
                  "ports":[{"name":"http","port":8080,"protocol":"TCP"}]}]})"),
            J(R"(["web","10.244.1.2:8080,10.244.2.3:8080","5s"])"));
  EXPECT_EQ(Cells("endpoints", R"({"metadata":{"name":"web"},
      "subsets":[{"addresses":[{"ip":"10.244.1.2"},{"ip":"10.244.2.3"},{"ip":"fd00::4"}],
                  "ports":[{"port":80},{"port":443}]}]})")[1],
            "10.244.1.2:80,10.244.2.3:80,[fd00::4]:80 + 3 more...");
  EXPECT_EQ(Cells("endpoints", R"({"metadata":{"name":"headless"},
      "subsets":[{"addresses":[{"ip":"10.244.1.2"}]}]})")[1],
            "10.244.1.2");
  EXPECT_EQ(Cells("endpoints", R"({"metadata":{"name":"none"}})")[1], "<none>");
}

TEST(OtherRows, EndpointSlices) {
  EXPECT_EQ(Cells("endpointslices", R"({"metadata":{"name":"web-abc12",
      "creationTimestamp":"$AGO[5]"},"addressType":"IPv4",
      "ports":[{"name":"http","port":8080},{"name":"named"},{}],
      "endpoints":[{"addresses":["10.244.1.2"]},{"addresses":["10.244.2.3"]},
                   {"addresses":["10.244.3.4"]},{"addresses":["10.244.3.5"]},
                   {"addresses":["10.244.3.6"]}]})"),
            J(R"(["web-abc12","IPv4","8080,named,*",
                  "10.244.1.2,10.244.2.3,10.244.3.4 + 2 more...","5s"])"));
  EXPECT_EQ(Cells("endpointslices", R"({"metadata":{"name":"empty"},"addressType":"IPv4"})"),
            J(R"(["empty","IPv4","<unset>","<unset>","<unknown>"])"));
}

TEST(OtherRows, EventsPrintTheWideOrder) {
  EXPECT_EQ(Cells("events", R"({"metadata":{"name":"web-1.17a","creationTimestamp":"$AGO[300]"},
      "involvedObject":{"kind":"Pod","name":"web-1","namespace":"default",
                        "fieldPath":"spec.containers{app}"},
      "reason":"Pulled","message":"  Container image \"nginx\" already present on machine\n",
      "source":{"component":"kubelet","host":"kin-worker"},
      "firstTimestamp":"$AGO[300]","lastTimestamp":"$AGO[30]","count":4,"type":"Normal"})"),
            J(R"(["30s","Normal","Pulled","pod/web-1","spec.containers{app}","kubelet, kin-worker",
                  "Container image \"nginx\" already present on machine","5m",4,"web-1.17a"])"));
}

TEST(OtherRows, EventsOfTheNewEventsAPI) {
  // No first/last timestamps: eventTime stands in; a series gives last seen and count.
  EXPECT_EQ(Cells("events", R"({"metadata":{"name":"e"},
      "involvedObject":{"kind":"Node"},"reason":"Starting","type":"Normal",
      "eventTime":"$AGO[600]","reportingComponent":"kin-node-agent","message":"m"})"),
            J(R"(["10m","Normal","Starting","node","","kin-node-agent","m","10m",1,"e"])"));
  EXPECT_EQ(Cells("events", R"({"metadata":{"name":"e"},
      "involvedObject":{"kind":"Pod","name":"p"},"reason":"BackOff","type":"Warning",
      "eventTime":"2024-06-01T11:50:00.123456Z","reportingComponent":"kubelet",
      "reportingInstance":"kin-worker",
      "series":{"count":12,"lastObservedTime":"2024-06-01T11:59:58.500000Z"}})"),
            J(R"(["1s","Warning","BackOff","pod/p","","kubelet, kin-worker","","9m59s",12,"e"])"));
  // Timestamps with an offset are converted to UTC.
  EXPECT_EQ(Cells("events", R"({"metadata":{"name":"e"},"involvedObject":{"kind":"Pod"},
      "firstTimestamp":"2024-06-01T13:55:00+02:00","lastTimestamp":"2024-06-01T11:59:00Z"})")[7],
            "5m");
}

TEST(OtherRows, Ingresses) {
  EXPECT_EQ(Cells("ingresses", R"({"metadata":{"name":"web","creationTimestamp":"$AGO[5]"},
      "spec":{"ingressClassName":"kin","rules":[{"host":"a.example.com"},{},
        {"host":"b.example.com"}],"tls":[{"hosts":["a.example.com"]}]},
      "status":{"loadBalancer":{"ingress":[{"ip":"198.51.100.10"}]}}})"),
            J(R"(["web","kin","a.example.com,b.example.com","198.51.100.10","80, 443","5s"])"));
  EXPECT_EQ(Cells("ingresses", R"({"metadata":{"name":"catchall"},
      "spec":{"defaultBackend":{"service":{"name":"web","port":{"number":80}}}}})"),
            J(R"(["catchall","<none>","*","","80","<unknown>"])"));
  EXPECT_EQ(Cells("ingresses", R"({"metadata":{"name":"many"},"spec":{"rules":[
      {"host":"a"},{"host":"b"},{"host":"c"},{"host":"d"},{"host":"e"}]}})")[2],
            "a,b,c + 2 more...");
}

TEST(OtherRows, RbacRolesAndBindings) {
  // Roles: the generic Name / Created At, as kube-apiserver prints them.
  EXPECT_EQ(Cells("roles", R"({"metadata":{"name":"r","creationTimestamp":"$AGO[60]"}})"),
            Json::array({"r", Ago(seconds(60))}));
  EXPECT_EQ(Cells("clusterroles", R"({"metadata":{"name":"view"}})")[0], "view");
  EXPECT_EQ(Cells("rolebindings", R"({"metadata":{"name":"rb","creationTimestamp":"$AGO[5]"},
    "roleRef":{"kind":"Role","name":"pod-reader"},
    "subjects":[{"kind":"User","name":"alice"},{"kind":"User","name":"bob"},
      {"kind":"Group","name":"dev"},{"kind":"ServiceAccount","name":"default","namespace":"ns"},
      {"kind":"ServiceAccount","name":"builder"}]})"),
            Json::array({"rb", "Role/pod-reader", "5s", "alice, bob", "dev", "ns/default, builder"}));
  EXPECT_EQ(Cells("clusterrolebindings", R"({"metadata":{"name":"cluster-admin"},
    "roleRef":{"kind":"ClusterRole","name":"cluster-admin"},
    "subjects":[{"kind":"Group","name":"system:masters"}]})")[1],
            "ClusterRole/cluster-admin");
}

TEST(OtherRows, IngressClassesNetworkPoliciesLeases) {
  EXPECT_EQ(Cells("ingressclasses", R"({"metadata":{"name":"kin","creationTimestamp":"$AGO[5]"},
      "spec":{"controller":"kin.dev/ingress",
              "parameters":{"apiGroup":"k8s.example.com","kind":"IngressParameters",
                            "name":"external-lb"}}})"),
            J(R"(["kin","kin.dev/ingress","IngressParameters.k8s.example.com/external-lb","5s"])"));
  EXPECT_EQ(Cells("ingressclasses", R"({"metadata":{"name":"plain"},
      "spec":{"controller":"x"}})")[2],
            "<none>");
  EXPECT_EQ(Cells("networkpolicies", R"({"metadata":{"name":"deny","creationTimestamp":"$AGO[5]"},
      "spec":{"podSelector":{}}})"),
            J(R"(["deny","<none>","5s"])"));
  EXPECT_EQ(Cells("networkpolicies", R"({"metadata":{"name":"db"},
      "spec":{"podSelector":{"matchLabels":{"app":"db"}}}})")[1],
            "app=db");
  EXPECT_EQ(Cells("leases", R"({"metadata":{"name":"kin-worker","creationTimestamp":"$AGO[5]"},
      "spec":{"holderIdentity":"kin-worker","leaseDurationSeconds":40}})"),
            J(R"(["kin-worker","kin-worker","5s"])"));
  EXPECT_EQ(Cells("leases", R"({"metadata":{"name":"free"},"spec":{}})")[1], "");
}

// kube-aggregator's printer: Local or namespace/name; the Available
// condition's status, with its reason unless True.
TEST(OtherRows, APIServices) {
  ExpectColumns("apiservices", {{"Name", "string", 0, "name"},
                                {"Service", "string", 0},
                                {"Available", "string", 0},
                                {"Age", "string", 0}});
  EXPECT_EQ(Cells("apiservices", R"({"metadata":{"name":"v1.apps","creationTimestamp":"$AGO[5]"},
      "spec":{"group":"apps","version":"v1"},
      "status":{"conditions":[{"type":"Available","status":"True","reason":"Local"}]}})"),
            J(R"(["v1.apps","Local","True","5s"])"));
  EXPECT_EQ(Cells("apiservices", R"({"metadata":{"name":"v1alpha1.wardle.k8s.io"},
      "spec":{"service":{"namespace":"wardle","name":"api"}},
      "status":{"conditions":[{"type":"Available","status":"False",
                               "reason":"ServiceNotFound"}]}})"),
            J(R"j(["v1alpha1.wardle.k8s.io","wardle/api","False (ServiceNotFound)","<unknown>"])j"));
  EXPECT_EQ(Cells("apiservices", R"({"metadata":{"name":"v1.x"},"spec":{}})")[2], "Unknown");
}

// ---------------------------------------------------------------------------
// Whole tables and includeObject
// ---------------------------------------------------------------------------

TEST(MakeTable, MetadataIsTheDefaultObject) {
  Json pod = Obj(R"({"apiVersion":"v1","kind":"Pod",
      "metadata":{"name":"web-1","namespace":"default","uid":"u-1","resourceVersion":"7",
                  "labels":{"app":"web"},"creationTimestamp":"$AGO[60]"},
      "spec":{"containers":[{"name":"app","image":"nginx"}]},"status":{"phase":"Pending"}})");
  Json table = MakeTable(Res("pods"), {pod}, "42", "", IncludeObject::kMetadata, Now());
  EXPECT_EQ(table["kind"], "Table");
  EXPECT_EQ(table["apiVersion"], "meta.k8s.io/v1");
  EXPECT_EQ(table["metadata"], J(R"({"resourceVersion":"42"})"));
  EXPECT_EQ(table["columnDefinitions"], TableColumnDefinitions(Res("pods")));
  ASSERT_EQ(table["rows"].size(), 1u);
  EXPECT_EQ(table["rows"][0]["cells"][0], "web-1");
  EXPECT_EQ(table["rows"][0]["object"], (Json{{"kind", "PartialObjectMetadata"},
                                              {"apiVersion", "meta.k8s.io/v1"},
                                              {"metadata", pod["metadata"]}}));
}

TEST(MakeTable, FullObjectAndNone) {
  Json cm = J(R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"k":"v"}})");
  Json table = MakeTable(Res("configmaps"), {cm, cm}, "9", "tok", IncludeObject::kObject, Now());
  EXPECT_EQ(table["metadata"], J(R"({"resourceVersion":"9","continue":"tok"})"));
  ASSERT_EQ(table["rows"].size(), 2u);
  EXPECT_EQ(table["rows"][1]["object"], cm);

  table = MakeTable(Res("configmaps"), {cm}, "9", "", IncludeObject::kNone, Now());
  ASSERT_TRUE(table["rows"][0].contains("object"));
  EXPECT_TRUE(table["rows"][0]["object"].is_null());
  EXPECT_EQ(table["rows"][0]["cells"], J(R"(["c",1,"<unknown>"])"));
}

TEST(MakeTable, EmptyListAndWatchEventsWithoutHeaders) {
  Json table = MakeTable(Res("deployments"), {}, "", "", IncludeObject::kMetadata, Now());
  EXPECT_EQ(table["metadata"], Json::object());
  EXPECT_EQ(table["rows"], Json::array());
  EXPECT_EQ(table["columnDefinitions"].size(), 8u);

  Json event = MakeTable(Res("nodes"), {J(R"({"metadata":{"name":"n"}})")}, "5", "",
                         IncludeObject::kMetadata, Now(), /*include_column_definitions=*/false);
  ASSERT_TRUE(event.contains("columnDefinitions"));
  EXPECT_TRUE(event["columnDefinitions"].is_null());
  EXPECT_EQ(event["rows"].size(), 1u);
}

TEST(MakeTable, ObjectWithoutMetadataStillGetsAPartialObject) {
  Json table = MakeTable(Res("leases"), {J("{}")}, "1", "", IncludeObject::kMetadata, Now());
  EXPECT_EQ(table["rows"][0]["object"]["metadata"], Json::object());
  EXPECT_EQ(table["rows"][0]["cells"], J(R"(["","","<unknown>"])"));
}

}  // namespace
}  // namespace kin::apiserver

namespace kin::apiserver {
namespace {

// Storage, as kubectl prints it (printers.go): access modes in upstream's
// order and short names, Terminating while deleted, "<unset>" for nil,
// "(default)" after the default class's name.
TEST(StorageTables, ColumnsAndRows) {
  ExpectColumns("pv", {{"Name", "string", 0, "name"},
                       {"Capacity", "string", 0},
                       {"Access Modes", "string", 0},
                       {"Reclaim Policy", "string", 0},
                       {"Status", "string", 0},
                       {"Claim", "string", 0},
                       {"StorageClass", "string", 0},
                       {"VolumeAttributesClass", "string", 0},
                       {"Reason", "string", 0},
                       {"Age", "string", 0},
                       {"VolumeMode", "string", 1}});
  ExpectColumns("pvc", {{"Name", "string", 0, "name"},
                        {"Status", "string", 0},
                        {"Volume", "string", 0},
                        {"Capacity", "string", 0},
                        {"Access Modes", "string", 0},
                        {"StorageClass", "string", 0},
                        {"VolumeAttributesClass", "string", 0},
                        {"Age", "string", 0},
                        {"VolumeMode", "string", 1}});
  ExpectColumns("sc", {{"Name", "string", 0, "name"},
                       {"Provisioner", "string", 0},
                       {"ReclaimPolicy", "string", 0},
                       {"VolumeBindingMode", "string", 0},
                       {"AllowVolumeExpansion", "string", 0},
                       {"Age", "string", 0}});
  EXPECT_EQ(Cells("pv", R"({"metadata":{"name":"pv1","creationTimestamp":"$AGO[90]"},
      "spec":{"capacity":{"storage":"1Gi"},"accessModes":["ReadWriteMany","ReadWriteOnce"],
      "persistentVolumeReclaimPolicy":"Delete","storageClassName":"standard",
      "claimRef":{"namespace":"default","name":"data"},"volumeMode":"Filesystem"},
      "status":{"phase":"Bound"}})"),
            Json::parse(R"(["pv1","1Gi","RWO,RWX","Delete","Bound","default/data","standard",
                            "<unset>","","90s","Filesystem"])"));
  EXPECT_EQ(Cells("pvc", R"({"metadata":{"name":"data","creationTimestamp":"$AGO[5]"},
      "spec":{"accessModes":["ReadWriteOnce"],"storageClassName":"standard"},
      "status":{"phase":"Pending"}})"),
            Json::parse(R"(["data","Pending","","","","standard","<unset>","5s","<unset>"])"));
  EXPECT_EQ(Cells("pvc", R"({"metadata":{"name":"data","creationTimestamp":"$AGO[5]",
      "deletionTimestamp":"$AGO[1]"},
      "spec":{"accessModes":["ReadWriteOnce"],"volumeName":"pv1","storageClassName":"standard",
      "volumeMode":"Filesystem"},
      "status":{"phase":"Bound","accessModes":["ReadWriteOnce"],"capacity":{"storage":"2Gi"}}})"),
            Json::parse(
                R"(["data","Terminating","pv1","2Gi","RWO","standard","<unset>","5s","Filesystem"])"));
  EXPECT_EQ(Cells("sc", R"({"metadata":{"name":"standard","creationTimestamp":"$AGO[60]",
      "annotations":{"storageclass.kubernetes.io/is-default-class":"true"}},
      "provisioner":"rancher.io/local-path","reclaimPolicy":"Delete",
      "volumeBindingMode":"WaitForFirstConsumer"})"),
            Json::parse(R"x(["standard (default)","rancher.io/local-path","Delete",
                            "WaitForFirstConsumer",false,"60s"])x"));
}

}  // namespace
}  // namespace kin::apiserver
