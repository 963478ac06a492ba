// The EndpointSlice, EndpointSliceMirroring and Endpoints controllers: the
// pure pieces (port resolution, the slice planner, subsets, truncation) and
// the controllers against a real registry on SQLite, with pods made Ready
// by writing their status.
#include "controllers/endpointslice.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "client/object.h"
#include "controllers/endpoints.h"
#include "controllers/manager.h"
#include "controllers/registry_fixture.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin::controllers {

using namespace endpointutil;

namespace {

using testing::Eventually;

std::string Joined(const std::set<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += s + " ";
  return out;
}

const ResourceInfo& Slices() { return *FindResource("discovery.k8s.io", "v1", "endpointslices"); }

Json PodWithPorts(Json ports) {
  return {{"metadata", {{"name", "p"}, {"namespace", "default"}, {"uid", "u1"}}},
          {"spec", {{"containers", {{{"name", "c"}, {"ports", ports}}}}}}};
}

TEST(FindPortTest, NamesNumbersProtocolsAndSidecars) {
  Json pod = PodWithPorts({{{"name", "http"}, {"containerPort", 8080}},
                           {{"name", "dns"}, {"containerPort", 53}, {"protocol", "UDP"}}});
  EXPECT_EQ(FindPort(pod, {{"port", 80}, {"targetPort", "http"}}), 8080);
  EXPECT_EQ(FindPort(pod, {{"port", 80}, {"targetPort", 9000}}), 9000);
  EXPECT_EQ(FindPort(pod, {{"port", 80}}), 80);  // targetPort defaults to port
  EXPECT_EQ(FindPort(pod, {{"port", 53}, {"targetPort", "dns"}, {"protocol", "UDP"}}), 53);
  EXPECT_EQ(FindPort(pod, {{"port", 53}, {"targetPort", "dns"}}), std::nullopt);  // TCP
  EXPECT_EQ(FindPort(pod, {{"port", 80}, {"targetPort", "nope"}}), std::nullopt);
  pod["spec"]["initContainers"] = {{{"name", "side"},
                                    {"restartPolicy", "Always"},
                                    {"ports", {{{"name", "metrics"}, {"containerPort", 9100}}}}}};
  EXPECT_EQ(FindPort(pod, {{"port", 1}, {"targetPort", "metrics"}}), 9100);
}

TEST(PodConditionsTest, WhoIsInEndpoints) {
  Json pod = {{"metadata", {{"name", "p"}}},
              {"status",
               {{"phase", "Running"},
                {"podIP", "10.244.0.5"},
                {"conditions", {{{"type", "Ready"}, {"status", "True"}}}}}}};
  EXPECT_TRUE(IsPodReady(pod));
  EXPECT_TRUE(ShouldPodBeInEndpoints(pod, false));
  Json deleting = pod;
  deleting["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z";
  EXPECT_FALSE(ShouldPodBeInEndpoints(deleting, false));
  EXPECT_TRUE(ShouldPodBeInEndpoints(deleting, true));
  Json done = pod;
  done["status"]["phase"] = "Succeeded";
  EXPECT_FALSE(ShouldPodBeInEndpoints(done, true));
  Json no_ip = pod;
  no_ip["status"].erase("podIP");
  EXPECT_FALSE(ShouldPodBeInEndpoints(no_ip, true));
  EXPECT_EQ(PodIPv4s(pod), std::vector<std::string>{"10.244.0.5"});
}

// --- the planner ---

Json Endpoint(int i, bool ready = true) {
  return {{"addresses", {"10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1)}},
          {"conditions", {{"ready", ready}, {"serving", ready}, {"terminating", false}}},
          {"targetRef", {{"kind", "Pod"}, {"namespace", "default"}, {"name", "p" + std::to_string(i)}}}};
}

SlicePlanInput Input(int n, Json ports = Json::array({{{"name", ""}, {"port", 80}, {"protocol", "TCP"}}})) {
  SlicePlanInput in;
  in.owner_uid = "svc-uid";
  in.slice_template = {
      {"metadata",
       {{"generateName", "web-"},
        {"namespace", "default"},
        {"labels", {{kLabelServiceName, "web"}}},
        {"ownerReferences", {{{"uid", "svc-uid"}, {"controller", true}, {"kind", "Service"}}}}}},
      {"addressType", "IPv4"}};
  auto& g = in.desired[ports.dump()];
  g.ports = ports;
  for (int i = 0; i < n; ++i) g.endpoints.push_back(Endpoint(i));
  if (n == 0) in.desired.clear();
  return in;
}

// Turns a plan's creates into existing slices (names s0, s1, ...).
std::vector<std::shared_ptr<const Json>> Existing(const SlicePlan& plan) {
  std::vector<std::shared_ptr<const Json>> out;
  int i = 0;
  for (Json s : plan.create) {
    s["metadata"]["name"] = "s" + std::to_string(i++);
    s["metadata"]["resourceVersion"] = "1";
    out.push_back(std::make_shared<const Json>(s));
  }
  return out;
}

TEST(PlanSlicesTest, AtMostAHundredPerSlice) {
  SlicePlan plan = PlanSlices(Input(250));
  ASSERT_EQ(plan.create.size(), 3u);
  std::multiset<size_t> sizes;
  for (const auto& s : plan.create) sizes.insert(s["endpoints"].size());
  EXPECT_EQ(sizes, (std::multiset<size_t>{50, 100, 100}));
  EXPECT_TRUE(plan.update.empty());
  EXPECT_TRUE(plan.remove.empty());
  EXPECT_EQ(plan.create[0]["metadata"]["generateName"], "web-");
  EXPECT_EQ(plan.create[0]["ports"][0]["port"], 80);
}

TEST(PlanSlicesTest, NothingChangedNothingWritten) {
  SlicePlanInput in = Input(250);
  in.existing = Existing(PlanSlices(in));
  EXPECT_TRUE(PlanSlices(in).empty());
}

TEST(PlanSlicesTest, OnlyTheSliceWithTheChangedEndpointIsWritten) {
  SlicePlanInput in = Input(250);
  in.existing = Existing(PlanSlices(in));
  // Endpoint 7 turns not ready.
  auto& eps = in.desired.begin()->second.endpoints;
  eps[7] = Endpoint(7, false);
  SlicePlan plan = PlanSlices(in);
  ASSERT_EQ(plan.update.size(), 1u);
  EXPECT_TRUE(plan.create.empty());
  EXPECT_TRUE(plan.remove.empty());
  bool found = false;
  for (const auto& e : plan.update[0]["endpoints"]) {
    if (e["targetRef"]["name"] == "p7") {
      found = true;
      EXPECT_EQ(e["conditions"]["ready"], false);
    }
  }
  EXPECT_TRUE(found);
  // A new endpoint joins the slice being written anyway (or one with room).
  eps.push_back(Endpoint(300));
  plan = PlanSlices(in);
  EXPECT_TRUE(plan.create.empty());
  size_t total = 0;
  for (const auto& s : plan.update) total += s["endpoints"].size();
  EXPECT_LE(plan.update.size(), 2u);
  EXPECT_GE(total, 1u);
}

TEST(PlanSlicesTest, RemovedEndpointsAndEmptySlices) {
  SlicePlanInput in = Input(150);
  in.existing = Existing(PlanSlices(in));
  // Everything goes: the slices are recycled into one placeholder.
  SlicePlanInput none = Input(0);
  none.existing = in.existing;
  SlicePlan plan = PlanSlices(none);
  EXPECT_TRUE(plan.create.empty());
  ASSERT_EQ(plan.update.size(), 1u);
  EXPECT_EQ(plan.update[0]["endpoints"], Json::array());
  EXPECT_FALSE(plan.update[0].contains("ports"));
  EXPECT_EQ(plan.remove.size(), 1u);
  // The placeholder is kept as it is.
  Json placeholder = plan.update[0];
  none.existing = {std::make_shared<const Json>(placeholder)};
  EXPECT_TRUE(PlanSlices(none).empty());
  // A service with no slices at all gets one.
  none.existing.clear();
  plan = PlanSlices(none);
  ASSERT_EQ(plan.create.size(), 1u);
  EXPECT_EQ(plan.create[0]["endpoints"], Json::array());
  // Mirroring keeps no placeholder.
  none.placeholder = false;
  EXPECT_TRUE(PlanSlices(none).empty());
}

TEST(PlanSlicesTest, SlicesOfAnotherOwnerOrPortSetGo) {
  SlicePlanInput in = Input(3);
  in.existing = Existing(PlanSlices(in));
  // Another owner's slice (an old Service of the same name) is deleted.
  Json foreign = *in.existing[0];
  foreign["metadata"]["name"] = "old";
  foreign["metadata"]["ownerReferences"][0]["uid"] = "other";
  in.existing.push_back(std::make_shared<const Json>(foreign));
  SlicePlan plan = PlanSlices(in);
  EXPECT_EQ(plan.remove, std::vector<std::string>{"old"});
  EXPECT_TRUE(plan.update.empty());
  // A new port: the endpoints move, the old slice is recycled.
  in.existing.pop_back();
  SlicePlanInput moved = Input(3, Json::array({{{"name", ""}, {"port", 81}, {"protocol", "TCP"}}}));
  moved.existing = in.existing;
  plan = PlanSlices(moved);
  EXPECT_TRUE(plan.create.empty());
  EXPECT_TRUE(plan.remove.empty());
  ASSERT_EQ(plan.update.size(), 1u);
  EXPECT_EQ(plan.update[0]["metadata"]["name"], "s0");
  EXPECT_EQ(plan.update[0]["ports"][0]["port"], 81);
  EXPECT_EQ(plan.update[0]["endpoints"].size(), 3u);
  // Changed labels rewrite an otherwise unchanged slice.
  SlicePlanInput relabel = Input(3);
  relabel.existing = in.existing;
  relabel.slice_template["metadata"]["labels"]["team"] = "a";
  plan = PlanSlices(relabel);
  ASSERT_EQ(plan.update.size(), 1u);
  EXPECT_EQ(plan.update[0]["metadata"]["labels"]["team"], "a");
}

TEST(SliceTrackerTest, WaitsForTheCacheToSeeOurWrites) {
  endpointslice_internal::SliceTracker t;
  auto slice = [](const std::string& name, const std::string& rv) {
    return Json{{"metadata", {{"name", name}, {"resourceVersion", rv}}}};
  };
  std::map<std::string, std::shared_ptr<const Json>> cache;
  auto lookup = [&](const std::string& n) {
    auto it = cache.find(n);
    return it == cache.end() ? nullptr : it->second;
  };
  // Nothing written: never stale; any slice event is a change to look at.
  EXPECT_FALSE(t.Stale("ns/web", lookup));
  EXPECT_TRUE(t.Observe("ns/web", slice("a", "3"), false));
  // Written at rv 5 while the cache holds rv 4: stale until the event.
  t.Wrote("ns/web", slice("a", "5"));
  cache["a"] = std::make_shared<const Json>(slice("a", "4"));
  EXPECT_TRUE(t.Stale("ns/web", lookup));
  cache["a"] = std::make_shared<const Json>(slice("a", "5"));
  EXPECT_TRUE(t.Observe("ns/web", slice("a", "5"), false));  // it waited: sync again
  EXPECT_FALSE(t.Stale("ns/web", lookup));
  // Our own write seen by a reconcile that did not wait: no extra sync.
  t.Wrote("ns/web", slice("a", "7"));
  EXPECT_FALSE(t.Observe("ns/web", slice("a", "7"), false));
  // Someone else's later write is a change.
  t.Wrote("ns/web", slice("a", "8"));
  EXPECT_TRUE(t.Observe("ns/web", slice("a", "9"), false));
  // A deletion of ours is stale while the cache still has the slice.
  t.Deleted("ns/web", "a");
  EXPECT_TRUE(t.Stale("ns/web", lookup));
  cache.erase("a");
  EXPECT_TRUE(t.Observe("ns/web", slice("a", "9"), true));
  EXPECT_FALSE(t.Stale("ns/web", lookup));
}

// --- Endpoints subsets ---

Json ReadyPod(const std::string& name, const std::string& ip, bool ready, Json ports = nullptr) {
  Json pod = {{"metadata", {{"name", name}, {"namespace", "default"}, {"uid", "uid-" + name}}},
              {"spec", {{"nodeName", "n1"}, {"containers", {{{"name", "c"}}}}}},
              {"status",
               {{"phase", "Running"},
                {"podIP", ip},
                {"conditions", {{{"type", "Ready"}, {"status", ready ? "True" : "False"}}}}}}};
  if (!ports.is_null()) pod["spec"]["containers"][0]["ports"] = ports;
  return pod;
}

TEST(BuildSubsetsTest, GroupsByResolvedPortsAndReadiness) {
  Json svc = {{"metadata", {{"name", "web"}, {"namespace", "default"}}},
              {"spec", {{"ports", {{{"name", "http"}, {"port", 80}, {"targetPort", "http"}}}}}}};
  Json a = ReadyPod("a", "10.0.0.2", true, {{{"name", "http"}, {"containerPort", 8080}}});
  Json b = ReadyPod("b", "10.0.0.1", false, {{{"name", "http"}, {"containerPort", 8080}}});
  Json c = ReadyPod("c", "10.0.0.3", true, {{{"name", "http"}, {"containerPort", 9090}}});
  Json d = ReadyPod("d", "10.0.0.4", true);  // no such port: not listed
  Json subsets = BuildSubsets(svc, {&a, &b, &c, &d});
  ASSERT_EQ(subsets.size(), 2u) << subsets.dump(2);
  Json by_port = Json::object();
  for (const auto& s : subsets) by_port[std::to_string(s["ports"][0]["port"].get<int>())] = s;
  EXPECT_EQ(by_port["8080"]["addresses"].size(), 1u);
  EXPECT_EQ(by_port["8080"]["addresses"][0]["ip"], "10.0.0.2");
  EXPECT_EQ(by_port["8080"]["notReadyAddresses"][0]["ip"], "10.0.0.1");
  EXPECT_EQ(by_port["8080"]["addresses"][0]["targetRef"]["name"], "a");
  EXPECT_EQ(by_port["8080"]["addresses"][0]["nodeName"], "n1");
  EXPECT_EQ(by_port["8080"]["ports"][0], (Json{{"name", "http"}, {"port", 8080}, {"protocol", "TCP"}}));
  EXPECT_EQ(by_port["9090"]["addresses"][0]["ip"], "10.0.0.3");
  // publishNotReadyAddresses: every pod is an address.
  svc["spec"]["publishNotReadyAddresses"] = true;
  subsets = BuildSubsets(svc, {&a, &b});
  ASSERT_EQ(subsets.size(), 1u);
  EXPECT_EQ(subsets[0]["addresses"].size(), 2u);
  EXPECT_FALSE(subsets[0].contains("notReadyAddresses"));
  // Headless without ports: addresses without ports, with hostnames.
  Json headless = {{"metadata", {{"name", "db"}, {"namespace", "default"}}},
                   {"spec", {{"clusterIP", "None"}}}};
  a["spec"]["hostname"] = "db-0";
  a["spec"]["subdomain"] = "db";
  subsets = BuildSubsets(headless, {&a});
  ASSERT_EQ(subsets.size(), 1u);
  EXPECT_FALSE(subsets[0].contains("ports"));
  EXPECT_EQ(subsets[0]["addresses"][0]["hostname"], "db-0");
}

TEST(TruncateEndpointsTest, KeepsReadyFirstAndAnnotatesAsUpstream) {
  auto addrs = [](int n, int base) {
    Json a = Json::array();
    for (int i = 0; i < n; ++i) a.push_back({{"ip", "10.1." + std::to_string((base + i) / 250) + "." + std::to_string((base + i) % 250)}});
    return a;
  };
  Json small = Json::array({{{"addresses", addrs(10, 0)}}});
  EXPECT_FALSE(TruncateEndpoints(small));
  // 900 ready + 300 not ready: all ready kept, 100 not ready.
  Json mixed = Json::array({{{"addresses", addrs(900, 0)}, {"notReadyAddresses", addrs(300, 900)}}});
  EXPECT_TRUE(TruncateEndpoints(mixed));
  EXPECT_EQ(mixed[0]["addresses"].size(), 900u);
  EXPECT_EQ(mixed[0]["notReadyAddresses"].size(), 100u);
  // 1200 ready over two subsets: 1000 in proportion, no not-ready ones.
  Json ready = Json::array({{{"addresses", addrs(600, 0)}, {"notReadyAddresses", addrs(5, 2000)}},
                            {{"addresses", addrs(600, 600)}}});
  EXPECT_TRUE(TruncateEndpoints(ready));
  EXPECT_EQ(ready[0]["addresses"].size(), 500u);
  EXPECT_FALSE(ready[0].contains("notReadyAddresses"));
  EXPECT_EQ(ready[1]["addresses"].size(), 500u);
}

// --- the controllers on a registry ---

class EndpointsControllersTest : public RegistryTest {
 protected:
  void SetUp() override {
    manager_ = std::make_unique<ControllerManager>(*client_);
  }
  void StartControllers(int workers = 2) {
    EndpointSliceOptions so;
    so.workers = workers;
    manager_->Emplace<EndpointSliceController>(manager_->informers(), *client_, so);
    manager_->Emplace<EndpointSliceMirroringController>(manager_->informers(), *client_, so);
    EndpointsOptions eo;
    eo.workers = workers;
    manager_->Emplace<EndpointsController>(manager_->informers(), *client_, eo);
    manager_->Start();
  }
  void TearDown() override { manager_.reset(); }

  void AddNode(const std::string& name, const std::string& zone = "") {
    Json node = {{"apiVersion", "v1"}, {"kind", "Node"}, {"metadata", {{"name", name}}}};
    if (!zone.empty()) node["metadata"]["labels"] = {{kLabelZone, zone}};
    cl().Create(NodesResource(), "", node);
  }
  // A running pod with `ip` on `node`, Ready or not.
  void AddPod(const std::string& name, const std::string& ip, bool ready,
              Json labels = {{"app", "web"}}, Json ports = nullptr, const std::string& node = "n1",
              Json extra_spec = Json::object()) {
    Json spec = {{"nodeName", node},
                 {"terminationGracePeriodSeconds", 30},
                 {"containers", {{{"name", "c"}, {"image", "busybox"}}}}};
    if (!ports.is_null()) spec["containers"][0]["ports"] = ports;
    spec.update(extra_spec);
    cl().Create(PodsResource(), "default",
                {{"apiVersion", "v1"},
                 {"kind", "Pod"},
                 {"metadata", {{"name", name}, {"labels", labels}}},
                 {"spec", spec}});
    SetPod(name, ip, ready);
  }
  void SetPod(const std::string& name, const std::string& ip, bool ready) {
    Json status = PodStatus(ready, object::NowRfc3339());
    status["podIP"] = ip;
    status["podIPs"] = {{{"ip", ip}}};
    PatchPodStatus(cl(), "default", name, status);
  }
  void AddService(const std::string& name, Json spec) {
    cl().Create(ServicesResource(), "default",
                {{"apiVersion", "v1"},
                 {"kind", "Service"},
                 {"metadata", {{"name", name}, {"labels", {{"team", "a"}}}}},
                 {"spec", spec}});
  }
  std::vector<Json> SlicesOf(const std::string& svc,
                             const std::string& manager = kEndpointSliceControllerName) {
    std::vector<Json> out;
    Json list = cl().List(Slices(), "default");
    for (const auto& s : list["items"]) {
      if (object::Label(s, kLabelServiceName) == svc && object::Label(s, kLabelManagedBy) == manager)
        out.push_back(s);
    }
    return out;
  }
  // "name:ready:serving:terminating" of every endpoint of the Service's slices.
  std::set<std::string> SliceEndpoints(const std::string& svc) {
    std::set<std::string> out;
    for (const auto& s : SlicesOf(svc)) {
      for (const auto& e : s["endpoints"]) {
        const Json& c = e["conditions"];
        out.insert(e["targetRef"]["name"].get<std::string>() + ":" +
                   (c.value("ready", false) ? "R" : "-") + (c.value("serving", false) ? "S" : "-") +
                   (c.value("terminating", false) ? "T" : "-"));
      }
    }
    return out;
  }
  // "ready:name" and "notready:name" of the Service's Endpoints.
  std::set<std::string> EndpointsOf(const std::string& svc) {
    std::set<std::string> out;
    Json ep;
    try {
      ep = cl().Get(EndpointsResource(), "default", svc);
    } catch (const Error&) {
      out.insert("<none>");
      return out;
    }
    for (const auto& s : ep.value("subsets", Json::array())) {
      for (const auto& a : s.value("addresses", Json::array()))
        out.insert("ready:" + a["targetRef"]["name"].get<std::string>());
      for (const auto& a : s.value("notReadyAddresses", Json::array()))
        out.insert("notready:" + a["targetRef"]["name"].get<std::string>());
    }
    return out;
  }

  std::unique_ptr<ControllerManager> manager_;
};

Json WebSpec() { return {{"selector", {{"app", "web"}}}, {"ports", {{{"port", 80}, {"targetPort", 8080}}}}}; }

TEST_F(EndpointsControllersTest, SliceAndEndpointsFollowPods) {
  AddNode("n1", "zone-a");
  AddService("web", WebSpec());
  AddPod("a", "10.244.0.2", true);
  AddPod("b", "10.244.0.3", false);
  AddPod("other", "10.244.0.4", true, {{"app", "db"}});
  StartControllers();
  std::set<std::string> eps;
  ASSERT_TRUE(Eventually([&] {
    eps = SliceEndpoints("web");
    return eps == std::set<std::string>{"a:RS-", "b:---"};
  })) << Joined(eps);
  std::set<std::string> want = {"ready:a", "notready:b"};
  ASSERT_TRUE(Eventually([&] { return EndpointsOf("web") == want; }));

  auto slices = SlicesOf("web");
  ASSERT_EQ(slices.size(), 1u);
  const Json& s = slices[0];
  EXPECT_EQ(s["addressType"], "IPv4");
  EXPECT_EQ(s["metadata"]["generateName"], "web-");
  EXPECT_EQ(s["metadata"]["name"].get<std::string>().size(), 9u);  // web- + 5
  EXPECT_EQ(s["metadata"]["labels"]["team"], "a");
  Json svc = cl().Get(ServicesResource(), "default", "web");
  const Json& ref = s["metadata"]["ownerReferences"][0];
  EXPECT_EQ(ref["uid"], svc["metadata"]["uid"]);
  EXPECT_EQ(ref["kind"], "Service");
  EXPECT_EQ(ref["controller"], true);
  EXPECT_EQ(ref["blockOwnerDeletion"], true);
  EXPECT_EQ(s["ports"], (Json::array({{{"name", ""}, {"port", 8080}, {"protocol", "TCP"}}})));
  for (const auto& e : s["endpoints"]) {
    EXPECT_EQ(e["nodeName"], "n1");
    EXPECT_EQ(e["zone"], "zone-a");
    EXPECT_EQ(e["targetRef"]["kind"], "Pod");
  }
  EXPECT_TRUE(s["metadata"]["annotations"].contains(kAnnotationTriggerTime));
  Json ep = cl().Get(EndpointsResource(), "default", "web");
  EXPECT_EQ(ep["metadata"]["labels"]["team"], "a");
  EXPECT_TRUE(ep["metadata"]["annotations"].contains(kAnnotationTriggerTime));
  EXPECT_EQ(ep["subsets"][0]["ports"], (Json::array({{{"port", 8080}, {"protocol", "TCP"}}})));

  // b turns Ready, a not; then a is deleted (terminating), c is created.
  SetPod("b", "10.244.0.3", true);
  SetPod("a", "10.244.0.2", false);
  ASSERT_TRUE(Eventually([&] { return SliceEndpoints("web") == std::set<std::string>{"a:---", "b:RS-"}; }))
      << Joined(SliceEndpoints("web"));
  want = {"notready:a", "ready:b"};
  ASSERT_TRUE(Eventually([&] { return EndpointsOf("web") == want; }));
  SetPod("a", "10.244.0.2", true);
  cl().Delete(PodsResource(), "default", "a");  // graceful: terminating
  AddPod("c", "10.244.0.5", true);
  ASSERT_TRUE(Eventually([&] {
    return SliceEndpoints("web") == std::set<std::string>{"a:-ST", "b:RS-", "c:RS-"};
  })) << Joined(SliceEndpoints("web"));
  want = {"ready:b", "ready:c"};
  ASSERT_TRUE(Eventually([&] { return EndpointsOf("web") == want; }));
  DeleteOptions now;
  now.grace_period_seconds = 0;
  cl().Delete(PodsResource(), "default", "a", now);
  ASSERT_TRUE(Eventually([&] { return SliceEndpoints("web") == std::set<std::string>{"b:RS-", "c:RS-"}; }));
  // A pod that stops matching the selector leaves.
  cl().Patch(PodsResource(), "default", "c", PatchType::kMerge,
             {{"metadata", {{"labels", {{"app", "other"}}}}}});
  ASSERT_TRUE(Eventually([&] { return SliceEndpoints("web") == std::set<std::string>{"b:RS-"}; }));
  want = {"ready:b"};
  ASSERT_TRUE(Eventually([&] { return EndpointsOf("web") == want; }));
  EXPECT_EQ(SlicesOf("web").size(), 1u);

  // The Service goes: its Endpoints go (its slices are the GC's).
  cl().Delete(ServicesResource(), "default", "web");
  want = {"<none>"};
  EXPECT_TRUE(Eventually([&] { return EndpointsOf("web") == want; }));
}

TEST_F(EndpointsControllersTest, NoWriteWhenNothingChanged) {
  AddNode("n1");
  AddService("web", WebSpec());
  AddService("db", {{"selector", {{"app", "db"}}}, {"ports", {{{"port", 5432}}}}});
  AddPod("a", "10.244.0.2", true);
  StartControllers(/*workers=*/1);
  ASSERT_TRUE(Eventually([&] { return SliceEndpoints("web") == std::set<std::string>{"a:RS-"}; }));
  ASSERT_TRUE(Eventually([&] { return EndpointsOf("db").count("<none>") == 0; }));
  // Both controllers have written web (they run side by side).
  ASSERT_TRUE(Eventually([&] { return EndpointsOf("web") == std::set<std::string>{"ready:a"}; }));
  std::string slice_rv = SlicesOf("web")[0]["metadata"]["resourceVersion"];
  std::string ep_rv = cl().Get(EndpointsResource(), "default", "web")["metadata"]["resourceVersion"];
  // Changes that endpoints do not reflect: a pod annotation, a pod without
  // an IP, a Service annotation. Then a change of db, which one worker
  // handles after web's syncs.
  cl().Patch(PodsResource(), "default", "a", PatchType::kMerge,
             {{"metadata", {{"annotations", {{"x", "y"}}}}}});
  cl().Create(PodsResource(), "default",
              {{"metadata", {{"name", "pending"}, {"labels", {{"app", "web"}}}}},
               {"spec", {{"containers", {{{"name", "c"}, {"image", "busybox"}}}}}}});
  cl().Patch(ServicesResource(), "default", "web", PatchType::kMerge,
             {{"metadata", {{"annotations", {{"note", "x"}}}}}});
  AddPod("d", "10.244.0.9", true, {{"app", "db"}});
  ASSERT_TRUE(Eventually([&] { return SliceEndpoints("db") == std::set<std::string>{"d:RS-"}; }));
  std::set<std::string> want = {"ready:d"};
  ASSERT_TRUE(Eventually([&] { return EndpointsOf("db") == want; }));
  EXPECT_EQ(SlicesOf("web")[0]["metadata"]["resourceVersion"], slice_rv);
  EXPECT_EQ(cl().Get(EndpointsResource(), "default", "web")["metadata"]["resourceVersion"], ep_rv);
}

TEST_F(EndpointsControllersTest, ManyPodsSpreadOverSlicesOfAHundred) {
  AddNode("n1");
  AddService("web", WebSpec());
  for (int i = 0; i < 150; ++i) {
    AddPod("p" + std::to_string(i), "10.244." + std::to_string(i / 200) + "." + std::to_string(i % 200 + 2), true);
  }
  StartControllers();
  ASSERT_TRUE(Eventually([&] { return SliceEndpoints("web").size() == 150; }));
  auto slices = SlicesOf("web");
  ASSERT_EQ(slices.size(), 2u);
  std::multiset<size_t> sizes;
  for (const auto& s : slices) sizes.insert(s["endpoints"].size());
  EXPECT_EQ(sizes, (std::multiset<size_t>{50, 100}));
  ASSERT_TRUE(Eventually([&] { return EndpointsOf("web").size() == 150; }));
  // One pod goes: one slice is written, the other keeps its version.
  std::map<std::string, std::string> rvs;
  for (const auto& s : slices) rvs[s["metadata"]["name"]] = s["metadata"]["resourceVersion"];
  DeleteOptions now;
  now.grace_period_seconds = 0;
  cl().Delete(PodsResource(), "default", "p0", now);
  ASSERT_TRUE(Eventually([&] { return SliceEndpoints("web").size() == 149; }));
  int unchanged = 0;
  for (const auto& s : SlicesOf("web")) unchanged += rvs[s["metadata"]["name"]] == s["metadata"]["resourceVersion"];
  EXPECT_EQ(unchanged, 1);
}

TEST_F(EndpointsControllersTest, NamedTargetPortsResolvePerPod) {
  AddNode("n1");
  AddService("web", {{"selector", {{"app", "web"}}},
                     {"ports", {{{"name", "http"}, {"port", 80}, {"targetPort", "http"}}}}});
  AddPod("a", "10.244.0.2", true, {{"app", "web"}}, {{{"name", "http"}, {"containerPort", 8080}}});
  AddPod("b", "10.244.0.3", true, {{"app", "web"}}, {{{"name", "http"}, {"containerPort", 9090}}});
  AddPod("c", "10.244.0.4", true, {{"app", "web"}}, {{{"name", "metrics"}, {"containerPort", 9100}}});
  StartControllers();
  ASSERT_TRUE(Eventually([&] { return SliceEndpoints("web").size() == 3 && SlicesOf("web").size() == 3; }))
      << Joined(SliceEndpoints("web"));
  std::map<std::string, Json> ports_of;  // pod -> its slice's ports
  for (const auto& s : SlicesOf("web")) {
    for (const auto& e : s["endpoints"]) ports_of[e["targetRef"]["name"]] = s.value("ports", Json::array());
  }
  EXPECT_EQ(ports_of["a"], (Json::array({{{"name", "http"}, {"port", 8080}, {"protocol", "TCP"}}})));
  EXPECT_EQ(ports_of["b"], (Json::array({{{"name", "http"}, {"port", 9090}, {"protocol", "TCP"}}})));
  EXPECT_EQ(ports_of["c"], Json::array());  // upstream lists it without ports
  // The Endpoints list only pods whose port resolved, one subset per port.
  std::set<std::string> want = {"ready:a", "ready:b"};
  ASSERT_TRUE(Eventually([&] { return EndpointsOf("web") == want; }));
  EXPECT_EQ(cl().Get(EndpointsResource(), "default", "web")["subsets"].size(), 2u);
}

TEST_F(EndpointsControllersTest, HeadlessHostnamesPublishNotReadyAndUnknownNodes) {
  AddNode("n1");
  AddService("db", {{"selector", {{"app", "db"}}}, {"clusterIP", "None"}, {"publishNotReadyAddresses", true}});
  AddPod("db-0", "10.244.0.2", false, {{"app", "db"}}, nullptr, "n1",
         {{"hostname", "db-0"}, {"subdomain", "db"}});
  AddService("web", WebSpec());
  AddPod("far", "10.244.1.2", true, {{"app", "web"}}, nullptr, "n2");
  StartControllers();
  ASSERT_TRUE(Eventually([&] { return SliceEndpoints("db") == std::set<std::string>{"db-0:R--"}; }))
      << Joined(SliceEndpoints("db"));
  Json s = SlicesOf("db")[0];
  EXPECT_EQ(s["endpoints"][0]["hostname"], "db-0");
  EXPECT_EQ(s["metadata"]["labels"][kLabelHeadless], "");
  EXPECT_FALSE(s.contains("ports"));
  ASSERT_TRUE(Eventually([&] { return EndpointsOf("db") == std::set<std::string>{"ready:db-0"}; }));
  Json ep = cl().Get(EndpointsResource(), "default", "db");
  EXPECT_EQ(ep["subsets"][0]["addresses"][0]["hostname"], "db-0");
  EXPECT_EQ(ep["metadata"]["labels"][kLabelHeadless], "");
  // A pod on a node the cache does not know waits for it (upstream), in a
  // placeholder slice meanwhile.
  ASSERT_TRUE(Eventually([&] { return SlicesOf("web").size() == 1; }));
  EXPECT_EQ(SliceEndpoints("web"), std::set<std::string>{});
  AddNode("n2", "zone-b");
  ASSERT_TRUE(Eventually([&] { return SliceEndpoints("web") == std::set<std::string>{"far:RS-"}; }));
  EXPECT_EQ(SlicesOf("web").size(), 1u);  // the placeholder was reused
  EXPECT_EQ(SlicesOf("web")[0]["endpoints"][0]["zone"], "zone-b");
}

TEST_F(EndpointsControllersTest, SelectorlessServicesAreMirroredNotManaged) {
  StartControllers();
  AddService("ext", {{"ports", {{{"name", "https"}, {"port", 443}}}}});
  cl().Create(EndpointsResource(), "default", Json::parse(R"({
      "apiVersion": "v1", "kind": "Endpoints",
      "metadata": {"name": "ext", "labels": {"l": "v"}, "annotations": {"a": "b"}},
      "subsets": [{"addresses": [{"ip": "192.0.2.10"}, {"ip": "192.0.2.11"}],
                   "notReadyAddresses": [{"ip": "192.0.2.12"}],
                   "ports": [{"name": "https", "port": 8443, "protocol": "TCP"}]}]})"));
  std::vector<Json> mirrored;
  ASSERT_TRUE(Eventually([&] {
    mirrored = SlicesOf("ext", kMirroringControllerName);
    return mirrored.size() == 1 && mirrored[0]["endpoints"].size() == 3;
  }));
  const Json& m = mirrored[0];
  EXPECT_EQ(m["metadata"]["labels"]["l"], "v");
  EXPECT_EQ(m["metadata"]["annotations"]["a"], "b");
  EXPECT_EQ(m["metadata"]["ownerReferences"][0]["kind"], "Endpoints");
  EXPECT_EQ(m["ports"], (Json::array({{{"name", "https"}, {"port", 8443}, {"protocol", "TCP"}}})));
  int ready = 0;
  for (const auto& e : m["endpoints"]) ready += e["conditions"]["ready"].get<bool>();
  EXPECT_EQ(ready, 2);
  // The slice controller leaves it alone, and so does the Endpoints controller.
  EXPECT_TRUE(SlicesOf("ext").empty());
  EXPECT_EQ(cl().Get(EndpointsResource(), "default", "ext")["subsets"][0]["addresses"].size(), 2u);
  // The user's change is mirrored; the kubernetes Service is skipped.
  Json ep = cl().Get(EndpointsResource(), "default", "ext");
  ep["subsets"][0].erase("notReadyAddresses");
  cl().Update(EndpointsResource(), "default", ep);
  ASSERT_TRUE(Eventually([&] {
    auto s = SlicesOf("ext", kMirroringControllerName);
    return s.size() == 1 && s[0]["endpoints"].size() == 2;
  }));
  EXPECT_TRUE(SlicesOf("kubernetes", kMirroringControllerName).empty());
  // Given a selector, the Service's mirrored slices go.
  cl().Patch(ServicesResource(), "default", "ext", PatchType::kMerge,
             {{"spec", {{"selector", {{"app", "ext"}}}}}});
  EXPECT_TRUE(Eventually([&] { return SlicesOf("ext", kMirroringControllerName).empty(); }));
}

}  // namespace
}  // namespace kin::controllers
