#include "client/rest_client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>

#include "base/http_server.h"
#include "client/informer.h"
#include "testing/kernel_fixture.h"  // Eventually

namespace kin {
namespace {

using std::chrono::milliseconds;
using testing::Eventually;

// A fake API server on 127.0.0.1:0: records every request and answers with
// the handler the test scripts.
class FakeApi {
 public:
  explicit FakeApi(http::Handler handler)
      : handler_(std::move(handler)), server_({}, [this](http::Request& req, http::Response& resp) {
          {
            std::lock_guard lock(mu_);
            requests_.push_back(req);
          }
          handler_(req, resp);
        }) {
    server_.Start();
  }
  ~FakeApi() { server_.Stop(); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_.port()); }
  std::vector<http::Request> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  http::Request last() {
    std::lock_guard lock(mu_);
    return requests_.back();
  }
  http::Server& server() { return server_; }

 private:
  http::Handler handler_;
  std::mutex mu_;
  std::vector<http::Request> requests_;
  http::Server server_;
};

void Reply(http::Response& resp, int status, const Json& body) {
  resp.Set(status, "application/json", body.dump());
}

Json StatusBody(int code, const std::string& reason, const std::string& message) {
  return {{"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", Json::object()},
          {"status", "Failure"}, {"code", code},       {"reason", reason},
          {"message", message}};
}

// An answer that echoes the request, so a test can check both sides.
void Echo(http::Request& req, http::Response& resp) {
  Reply(resp, 200, {{"method", req.method}, {"path", req.path}});
}

class RestClientTest : public ::testing::Test {
 protected:
  void Serve(http::Handler h) {
    api_ = std::make_unique<FakeApi>(std::move(h));
    client_ = std::make_unique<RestClient>(http::ClientOptions{.base_url = api_->url()});
  }
  std::unique_ptr<FakeApi> api_;
  std::unique_ptr<RestClient> client_;
};

TEST_F(RestClientTest, GetAndListBuildPathsAndQueries) {
  Serve(Echo);
  Json got = client_->Get(PodsResource(), "default", "web-1");
  EXPECT_EQ(got["path"], "/api/v1/namespaces/default/pods/web-1");
  auto req = api_->last();
  EXPECT_EQ(req.method, "GET");
  EXPECT_EQ(req.raw_query, "");
  EXPECT_EQ(req.Header("Accept"), "application/json");

  // Cluster-scoped: the namespace is ignored.
  client_->Get(NodesResource(), "default", "node-a");
  EXPECT_EQ(api_->last().path, "/api/v1/nodes/node-a");

  ListOptions lo;
  lo.label_selector = "app in (a,b),tier!=db";
  lo.field_selector = "spec.nodeName=node-a";
  lo.limit = 10;
  lo.continue_token = "tok/en=";
  lo.resource_version = "0";
  client_->List(*LookupResource("deploy"), "", lo);
  req = api_->last();
  EXPECT_EQ(req.method, "GET");
  EXPECT_EQ(req.path, "/apis/apps/v1/deployments");
  EXPECT_EQ(req.Query("labelSelector"), "app in (a,b),tier!=db");
  EXPECT_EQ(req.Query("fieldSelector"), "spec.nodeName=node-a");
  EXPECT_EQ(req.Query("limit"), "10");
  EXPECT_EQ(req.Query("continue"), "tok/en=");
  EXPECT_EQ(req.Query("resourceVersion"), "0");
  EXPECT_FALSE(req.HasQuery("watch"));
  EXPECT_FALSE(req.HasQuery("timeoutSeconds"));
  EXPECT_EQ(req.raw_query.find(' '), std::string::npos) << "selectors must be URL-encoded";

  client_->List(PodsResource(), "kube-system");
  EXPECT_EQ(api_->last().path, "/api/v1/namespaces/kube-system/pods");
  EXPECT_EQ(api_->last().raw_query, "");
}

TEST_F(RestClientTest, WritesSendBodiesAndWriteOptions) {
  Serve([](http::Request& req, http::Response& resp) {
    Json body = req.body.empty() ? Json() : Json::parse(req.body);
    Reply(resp, req.method == "POST" ? 201 : 200, body);
  });
  Json cm = {{"apiVersion", "v1"},
             {"kind", "ConfigMap"},
             {"metadata", {{"name", "cfg"}, {"namespace", "kube-system"}}},
             {"data", {{"k", "v"}}}};
  WriteOptions wo;
  wo.field_manager = "kin";
  wo.dry_run = true;
  // "" falls back to the object's namespace.
  Json created = client_->Create(*LookupResource("cm"), "", cm, wo);
  EXPECT_EQ(created, cm);
  auto req = api_->last();
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.path, "/api/v1/namespaces/kube-system/configmaps");
  EXPECT_EQ(req.Query("fieldManager"), "kin");
  EXPECT_EQ(req.Query("dryRun"), "All");
  EXPECT_FALSE(req.HasQuery("force"));
  EXPECT_EQ(req.Header("Content-Type"), "application/json");
  EXPECT_EQ(Json::parse(req.body), cm);

  Json pod = {{"metadata", {{"name", "web-1"}}}, {"status", {{"phase", "Running"}}}};
  WriteOptions strict;
  strict.field_validation = "Strict";
  client_->Update(PodsResource(), "default", pod, "status", strict);
  req = api_->last();
  EXPECT_EQ(req.method, "PUT");
  EXPECT_EQ(req.path, "/api/v1/namespaces/default/pods/web-1/status");
  EXPECT_EQ(req.Query("fieldValidation"), "Strict");
  EXPECT_FALSE(req.HasQuery("dryRun"));
  EXPECT_EQ(Json::parse(req.body), pod);

  Json patch = {{"metadata", {{"labels", {{"a", "b"}}}}}};
  for (PatchType t : {PatchType::kMerge, PatchType::kStrategic, PatchType::kApply}) {
    WriteOptions apply;
    if (t == PatchType::kApply) {
      apply.field_manager = "kubectl";
      apply.force = true;
    }
    client_->Patch(*LookupResource("deploy"), "prod", "web", t, patch, "", apply);
    req = api_->last();
    EXPECT_EQ(req.method, "PATCH");
    EXPECT_EQ(req.path, "/apis/apps/v1/namespaces/prod/deployments/web");
    EXPECT_EQ(req.Header("Content-Type"), PatchContentType(t));
    EXPECT_EQ(Json::parse(req.body), patch);
    EXPECT_EQ(req.HasQuery("force"), t == PatchType::kApply);
    if (t == PatchType::kApply) {
      EXPECT_EQ(req.Query("force"), "true");
    }
  }
  Json ops = Json::parse(R"([{"op":"replace","path":"/spec/replicas","value":3}])");
  client_->Patch(*LookupResource("deploy"), "prod", "web", PatchType::kJson, ops, "scale");
  req = api_->last();
  EXPECT_EQ(req.path, "/apis/apps/v1/namespaces/prod/deployments/web/scale");
  EXPECT_EQ(req.Header("Content-Type"), "application/json-patch+json");
  EXPECT_EQ(Json::parse(req.body), ops);

  Json binding = {{"kind", "Binding"}, {"target", {{"kind", "Node"}, {"name", "node-a"}}}};
  client_->CreateSubresource(PodsResource(), "default", "web-1", "binding", binding);
  req = api_->last();
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.path, "/api/v1/namespaces/default/pods/web-1/binding");
  EXPECT_EQ(Json::parse(req.body), binding);
}

TEST_F(RestClientTest, DeleteSendsDeleteOptionsBody) {
  Serve([](http::Request& req, http::Response& resp) {
    Reply(resp, 200, {{"kind", "Pod"}, {"metadata", {{"name", "web-1"}}}, {"echo", req.body}});
  });
  DeleteOptions d;
  d.grace_period_seconds = 0;
  d.propagation_policy = "Foreground";
  d.precondition_uid = "uid-1";
  d.precondition_resource_version = "42";
  Json out = client_->Delete(PodsResource(), "default", "web-1", d);
  EXPECT_EQ(out["kind"], "Pod");
  auto req = api_->last();
  EXPECT_EQ(req.method, "DELETE");
  EXPECT_EQ(req.path, "/api/v1/namespaces/default/pods/web-1");
  EXPECT_EQ(req.Header("Content-Type"), "application/json");
  EXPECT_EQ(Json::parse(req.body), Json::parse(R"({
    "kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
    "propagationPolicy": "Foreground",
    "preconditions": {"uid": "uid-1", "resourceVersion": "42"}})"));

  client_->Delete(NodesResource(), "", "node-a");
  req = api_->last();
  EXPECT_EQ(req.path, "/api/v1/nodes/node-a");
  EXPECT_EQ(Json::parse(req.body), Json::parse(R"({"kind":"DeleteOptions","apiVersion":"v1"})"));
}

TEST_F(RestClientTest, EmptyNameIsRefusedBeforeAnyRequest) {
  Serve(Echo);
  EXPECT_THROW(client_->Get(PodsResource(), "default", ""), Error);
  EXPECT_THROW(client_->Update(PodsResource(), "default", Json::object()), Error);
  EXPECT_TRUE(api_->requests().empty());
}

TEST_F(RestClientTest, StatusReasonsMapToErrors) {
  struct Case {
    int http;
    const char* reason;
    Code want;
  } cases[] = {
      {404, "NotFound", Code::kNotFound},
      {409, "AlreadyExists", Code::kAlreadyExists},
      {409, "Conflict", Code::kConflict},
      {422, "Invalid", Code::kInvalid},
      {400, "BadRequest", Code::kBadRequest},
      {410, "Expired", Code::kGone},
      {410, "Gone", Code::kGone},
      {401, "Unauthorized", Code::kUnauthorized},
      {403, "Forbidden", Code::kForbidden},
      {405, "MethodNotAllowed", Code::kMethodNotAllowed},
      {413, "RequestEntityTooLarge", Code::kRequestEntityTooLarge},
      {415, "UnsupportedMediaType", Code::kUnsupportedMediaType},
      {406, "NotAcceptable", Code::kNotAcceptable},
      {500, "InternalError", Code::kInternal},
      {503, "ServiceUnavailable", Code::kServiceUnavailable},
      {504, "Timeout", Code::kTimeout},
      {429, "TooManyRequests", Code::kTooManyRequests},
      // Unknown or missing reasons fall back to the HTTP status.
      {409, "SomethingNew", Code::kConflict},
      {404, "", Code::kNotFound},
      {503, "", Code::kServiceUnavailable},
      {418, "", Code::kBadRequest},
      {502, "", Code::kInternal},
  };
  std::atomic<int> index{0};
  Serve([&](http::Request&, http::Response& resp) {
    const Case& c = cases[index];
    Reply(resp, c.http, StatusBody(c.http, c.reason, std::string("msg for ") + c.reason));
  });
  for (size_t i = 0; i < std::size(cases); ++i) {
    index = static_cast<int>(i);
    try {
      client_->Get(PodsResource(), "default", "x");
      ADD_FAILURE() << "no error for " << cases[i].reason;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), cases[i].want) << cases[i].http << " " << cases[i].reason;
      EXPECT_EQ(e.message(), std::string("msg for ") + cases[i].reason);
    }
  }
}

TEST_F(RestClientTest, InvalidCarriesDetailsAndCauses) {
  Serve([](http::Request&, http::Response& resp) {
    Reply(resp, 422, Json::parse(R"({
      "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 422,
      "reason": "Invalid",
      "message": "Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -1",
      "details": {"name": "web", "group": "apps", "kind": "deployments",
        "causes": [
          {"reason": "FieldValueInvalid", "message": "Invalid value: -1", "field": "spec.replicas"},
          {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.selector"}
        ]}})"));
  });
  try {
    client_->Create(*LookupResource("deploy"), "default", {{"metadata", {{"name", "web"}}}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalid);
    EXPECT_EQ(e.http_status(), 422);
    EXPECT_EQ(e.message(), "Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -1");
    EXPECT_EQ(e.details_name(), "web");
    EXPECT_EQ(e.details_kind(), "deployments");
    EXPECT_EQ(e.details_group(), "apps");
    ASSERT_EQ(e.causes().size(), 2u);
    EXPECT_EQ(e.causes()[0].reason, "FieldValueInvalid");
    EXPECT_EQ(e.causes()[0].message, "Invalid value: -1");
    EXPECT_EQ(e.causes()[0].field, "spec.replicas");
    EXPECT_EQ(e.causes()[1].field, "spec.selector");
  }
}

TEST_F(RestClientTest, BodiesThatAreNotStatusGiveHttpCodeAndText) {
  std::atomic<int> status{502};
  Serve([&](http::Request&, http::Response& resp) {
    resp.Set(status, "text/plain", "upstream went away\n");
  });
  try {
    client_->Get(PodsResource(), "default", "x");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInternal);
    EXPECT_NE(e.message().find("502"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("upstream went away"), std::string::npos) << e.message();
  }
  status = 404;
  try {
    client_->Get(PodsResource(), "default", "x");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kNotFound);
    EXPECT_NE(e.message().find("upstream went away"), std::string::npos) << e.message();
  }
  // A 2xx that is not JSON is an error too, not a silent null.
  status = 200;
  EXPECT_THROW(client_->Get(PodsResource(), "default", "x"), Error);
  // JSON that is not a Status stays the body text.
  Error e = ErrorFromResponse(409, R"({"kind":"Pod"})");
  EXPECT_EQ(e.code(), Code::kConflict);
  EXPECT_NE(e.message().find(R"({"kind":"Pod"})"), std::string::npos);
}

TEST_F(RestClientTest, UnreachableServerIsUnavailable) {
  Serve(Echo);
  std::string url = api_->url();
  api_->server().Stop();
  RestClient c(http::ClientOptions{.base_url = url});
  try {
    c.Get(PodsResource(), "default", "x");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kServiceUnavailable);
  }
  try {
    c.StartWatch(PodsResource(), "", {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kServiceUnavailable);
  }
}

// Newline-delimited events, as kube-apiserver writes them.
std::string EventLine(const std::string& type, const Json& object) {
  return Json{{"type", type}, {"object", object}}.dump() + "\n";
}

Json Obj(const std::string& name, const std::string& rv) {
  return {{"kind", "Pod"}, {"metadata", {{"name", name}, {"resourceVersion", rv}}}};
}

TEST(WatchDecoderTest, EveryWayOfCuttingTheStreamGivesTheSameEvents) {
  const std::string stream = EventLine("ADDED", Obj("a", "1")) + "\r\n" +
                             EventLine("MODIFIED", Obj("a", "2")) +
                             EventLine("DELETED", Obj("a", "3"));
  auto decode = [](const std::vector<std::string_view>& pieces) {
    WatchDecoder d;
    std::vector<WatchEvent> got;
    auto emit = [&](WatchEvent&& ev) {
      got.push_back(std::move(ev));
      return true;
    };
    for (auto p : pieces) EXPECT_TRUE(d.Feed(p, emit));
    EXPECT_TRUE(d.Finish(emit));
    return got;
  };
  for (size_t i = 0; i <= stream.size(); ++i) {
    for (size_t j = i; j <= stream.size(); j += 7) {
      std::string_view s(stream);
      auto got = decode({s.substr(0, i), s.substr(i, j - i), s.substr(j)});
      ASSERT_EQ(got.size(), 3u) << i << "," << j;
      EXPECT_EQ(got[0].type, "ADDED");
      EXPECT_EQ(got[1].type, "MODIFIED");
      EXPECT_EQ(got[1].object["metadata"]["resourceVersion"], "2");
      EXPECT_EQ(got[2].type, "DELETED");
    }
  }
  // One byte at a time.
  std::vector<std::string_view> bytes;
  for (size_t i = 0; i < stream.size(); ++i) bytes.push_back(std::string_view(stream).substr(i, 1));
  EXPECT_EQ(decode(bytes).size(), 3u);
  // A last event without its newline still counts.
  EXPECT_EQ(decode({EventLine("ADDED", Obj("a", "1")) + R"({"type":"BOOKMARK","object":{}})"})
                .back()
                .type,
            "BOOKMARK");
}

TEST(WatchDecoderTest, StopsWhenTheReaderSaysSoAndFlagsGarbage) {
  WatchDecoder d;
  std::vector<WatchEvent> got;
  auto first_only = [&](WatchEvent&& ev) {
    got.push_back(std::move(ev));
    return false;
  };
  EXPECT_FALSE(
      d.Feed(EventLine("ADDED", Obj("a", "1")) + EventLine("ADDED", Obj("b", "2")), first_only));
  EXPECT_EQ(got.size(), 1u);

  WatchDecoder g;
  got.clear();
  g.Feed("this is not json\n", [&](WatchEvent&& ev) {
    got.push_back(std::move(ev));
    return true;
  });
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].type, "ERROR");
  EXPECT_EQ(got[0].object["code"], 500);
  EXPECT_NE(got[0].object["message"].get<std::string>().find("this is not json"),
            std::string::npos);
}

TEST_F(RestClientTest, WatchDeliversEventsSplitAtAwkwardPlacesThenTheError) {
  const std::string stream =
      EventLine("ADDED", Obj("a", "11")) + EventLine("MODIFIED", Obj("a", "12")) +
      EventLine("BOOKMARK", {{"kind", "Pod"}, {"metadata", {{"resourceVersion", "13"}}}}) +
      EventLine("DELETED", Obj("a", "14")) +
      EventLine("ERROR", StatusBody(410, "Expired", "too old resource version: 5 (14)")) +
      EventLine("ADDED", Obj("after-the-error", "15"));
  Serve([&](http::Request& req, http::Response& resp) {
    resp.headers.emplace("Content-Type", "application/json");
    resp.stream = [&](http::Stream& s) {
      // Cuts inside a key, right before a newline, right after one, and
      // chunks holding several events.
      size_t cuts[] = {1,
                       9,
                       stream.find('\n'),
                       stream.find('\n') + 1,
                       stream.find("MODIFIED") + 3,
                       stream.find("DELETED") + 40,
                       stream.size()};
      size_t at = 0;
      for (size_t cut : cuts) {
        if (cut <= at) continue;
        if (!s.Write(std::string_view(stream).substr(at, cut - at))) return;
        at = cut;
      }
      // Keep the stream open: the client must end the watch by itself
      // after the ERROR event.
      while (!s.Done()) s.conn().WaitReadable(1000);
    };
    (void)req;
  });
  ListOptions lo;
  lo.resource_version = "5";
  lo.allow_bookmarks = true;
  lo.timeout_seconds = 300;
  lo.label_selector = "app=web";
  auto w = client_->StartWatch(PodsResource(), "default", lo);
  auto req = api_->last();
  EXPECT_EQ(req.path, "/api/v1/namespaces/default/pods");
  EXPECT_EQ(req.Query("watch"), "true");
  EXPECT_EQ(req.Query("resourceVersion"), "5");
  EXPECT_EQ(req.Query("allowWatchBookmarks"), "true");
  EXPECT_EQ(req.Query("timeoutSeconds"), "300");
  EXPECT_EQ(req.Query("labelSelector"), "app=web");

  std::vector<WatchEvent> got;
  WatchEvent ev;
  while (w->Next(ev, std::chrono::seconds(10))) got.push_back(ev);
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got[0].type, "ADDED");
  EXPECT_EQ(got[0].object["metadata"]["resourceVersion"], "11");
  EXPECT_EQ(got[1].type, "MODIFIED");
  EXPECT_EQ(got[2].type, "BOOKMARK");
  EXPECT_EQ(got[2].object["metadata"]["resourceVersion"], "13");
  EXPECT_EQ(got[3].type, "DELETED");
  EXPECT_EQ(got[4].type, "ERROR");
  EXPECT_EQ(got[4].object["code"], 410);
  EXPECT_EQ(ErrorFromStatus(got[4].object).code(), Code::kGone);
  EXPECT_TRUE(w->ended());
  EXPECT_FALSE(w->Next(ev, milliseconds(10)));
  // The client hung up after the ERROR event.
  EXPECT_TRUE(Eventually([&] { return api_->server().open_connections() == 0; }));
}

TEST_F(RestClientTest, WatchEndsWhenTheServerClosesTheStream) {
  Serve([](http::Request&, http::Response& resp) {
    resp.stream = [](http::Stream& s) {
      s.Write(EventLine("ADDED", Obj("a", "1")) + EventLine("ADDED", Obj("b", "2")));
    };
  });
  auto w = client_->StartWatch(PodsResource(), "", {});
  WatchEvent ev;
  ASSERT_TRUE(w->Next(ev, std::chrono::seconds(10)));
  EXPECT_EQ(ev.object["metadata"]["name"], "a");
  // Queued events are still delivered after the server has closed.
  EXPECT_TRUE(Eventually([&] { return api_->server().open_connections() == 0; }));
  EXPECT_FALSE(w->ended());
  ASSERT_TRUE(w->Next(ev, std::chrono::seconds(10)));
  EXPECT_EQ(ev.object["metadata"]["name"], "b");
  EXPECT_FALSE(w->Next(ev, std::chrono::seconds(10)));
  EXPECT_TRUE(w->ended());
}

TEST_F(RestClientTest, NextTimesOutWithoutEnding) {
  Serve([](http::Request&, http::Response& resp) {
    resp.stream = [](http::Stream& s) {
      while (!s.Done()) s.conn().WaitReadable(1000);
    };
  });
  auto w = client_->StartWatch(PodsResource(), "", {});
  WatchEvent ev;
  EXPECT_FALSE(w->Next(ev, milliseconds(50)));
  EXPECT_FALSE(w->ended());
}

TEST_F(RestClientTest, RefusedWatchThrowsTheStatusError) {
  std::atomic<int> mode{0};
  Serve([&](http::Request&, http::Response& resp) {
    if (mode == 0) {
      Reply(resp, 410, StatusBody(410, "Expired", "too old resource version: 1 (50)"));
    } else {
      Reply(resp, 400, StatusBody(400, "BadRequest", "unable to parse requirement"));
    }
  });
  try {
    client_->StartWatch(PodsResource(), "", {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kGone);
    EXPECT_EQ(e.message(), "too old resource version: 1 (50)");
  }
  mode = 1;
  try {
    client_->StartWatch(PodsResource(), "", {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kBadRequest);
  }
}

TEST_F(RestClientTest, StopEndsAnIdleWatchPromptly) {
  std::atomic<bool> handler_done{false};
  Serve([&](http::Request&, http::Response& resp) {
    resp.stream = [&](http::Stream& s) {
      // One event, then nothing at all until the client goes away.
      s.Write(R"({"type":"ADDED","object":{"kind":"Pod","metadata":{"name":"a"}}})"
              "\n");
      while (!s.Done()) s.conn().WaitReadable(1000);
      handler_done = true;
    };
  });
  auto w = client_->StartWatch(PodsResource(), "", {});
  WatchEvent ev;
  // After the event libcurl waits for more (up to a second between its
  // progress calls): Stop() must not wait for that.
  ASSERT_TRUE(w->Next(ev, std::chrono::seconds(10)));
  EXPECT_FALSE(w->Next(ev, milliseconds(20)));
  auto start = std::chrono::steady_clock::now();
  std::thread reader([&] {
    WatchEvent e;
    while (!w->ended()) w->Next(e, std::chrono::seconds(30));
  });
  w->Stop();
  auto took = std::chrono::steady_clock::now() - start;
  reader.join();
  // Its socket is shut down, not left for libcurl's next progress call
  // (about a second on an idle stream). The bound only tells those two
  // apart: it leaves room for two busy cores, and the time itself is a
  // figure for bench/, not a test.
  EXPECT_LT(took, milliseconds(700)) << std::chrono::duration_cast<milliseconds>(took).count();
  EXPECT_TRUE(w->ended());
  EXPECT_FALSE(w->Next(ev, milliseconds(10)));
  // Stop() returns once the transfer is over: the server sees the hang-up.
  EXPECT_TRUE(Eventually([&] { return handler_done.load(); }, std::chrono::seconds(5)));
  // The destructor after Stop() is quick too.
  start = std::chrono::steady_clock::now();
  w.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
}

TEST_F(RestClientTest, DestroyingARunningWatchStopsIt) {
  std::atomic<bool> handler_done{false};
  Serve([&](http::Request&, http::Response& resp) {
    resp.stream = [&](http::Stream& s) {
      while (!s.Done()) s.conn().WaitReadable(1000);
      handler_done = true;
    };
  });
  auto w = client_->StartWatch(PodsResource(), "", {});
  auto start = std::chrono::steady_clock::now();
  w.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_TRUE(Eventually([&] { return handler_done.load(); }, std::chrono::seconds(5)));
}

TEST_F(RestClientTest, KeepAliveConnectionIsReused) {
  Serve(Echo);
  for (int i = 0; i < 20; ++i) client_->Get(PodsResource(), "default", "p" + std::to_string(i));
  std::set<std::string> peers;
  for (const auto& r : api_->requests()) peers.insert(r.remote_addr);
  EXPECT_EQ(peers.size(), 1u);
}

TEST_F(RestClientTest, ConcurrentUseFromEightThreads) {
  Serve([](http::Request& req, http::Response& resp) {
    if (req.method == "POST") {
      Reply(resp, 201, Json::parse(req.body));
    } else {
      Echo(req, resp);
    }
  });
  constexpr int kThreads = 8, kPerThread = 40;
  std::atomic<int> wrong{0}, errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string name = "t" + std::to_string(t) + "-" + std::to_string(i);
        try {
          Json got = client_->Get(PodsResource(), "ns" + std::to_string(t), name);
          if (got["path"] != "/api/v1/namespaces/ns" + std::to_string(t) + "/pods/" + name) ++wrong;
          Json obj = {{"metadata", {{"name", name}}}};
          if (client_->Create(PodsResource(), "default", obj) != obj) ++wrong;
        } catch (const std::exception&) {
          ++errors;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(errors, 0);
  EXPECT_EQ(api_->requests().size(), 2u * kThreads * kPerThread);
  // Connections are pooled: no more than one per concurrent caller.
  std::set<std::string> peers;
  for (const auto& r : api_->requests()) peers.insert(r.remote_addr);
  EXPECT_LE(peers.size(), static_cast<size_t>(kThreads));
}

// The informer over the real HTTP stack: list, watch, an ERROR 410 event,
// then a relist that reports what changed in between.
TEST_F(RestClientTest, InformerRelistsAfterAnExpiredWatch) {
  std::mutex mu;
  std::vector<Json> items = {Obj("a", "1"), Obj("b", "2")};
  std::string list_rv = "2";
  std::atomic<int> watches{0};
  Serve([&](http::Request& req, http::Response& resp) {
    if (req.Query("watch") != "true") {
      std::lock_guard lock(mu);
      Reply(resp, 200,
            {{"kind", "PodList"}, {"metadata", {{"resourceVersion", list_rv}}}, {"items", items}});
      return;
    }
    int n = ++watches;
    resp.stream = [&, n](http::Stream& s) {
      if (n == 1) {
        s.Write(EventLine("MODIFIED", Obj("a", "3")));
        {
          // Missed by the watch: b goes, c comes.
          std::lock_guard lock(mu);
          items = {Obj("a", "3"), Obj("c", "5")};
          list_rv = "5";
        }
        s.Write(EventLine("ERROR", StatusBody(410, "Expired", "too old resource version")));
      }
      while (!s.Done()) s.conn().WaitReadable(1000);
    };
  });
  std::mutex calls_mu;
  std::vector<std::string> calls;
  auto record = [&](std::string c) {
    std::lock_guard lock(calls_mu);
    calls.push_back(std::move(c));
  };
  Informer inf(
      *client_, PodsResource(), InformerOptions{.ns = "default"},
      {.on_add = [&](const Json& o) { record("add " + o["metadata"]["name"].get<std::string>()); },
       .on_update =
           [&](const Json&, const Json& o) {
             record("update " + o["metadata"]["name"].get<std::string>());
           },
       .on_delete =
           [&](const Json& o) { record("delete " + o["metadata"]["name"].get<std::string>()); }});
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(std::chrono::seconds(10)));
  ASSERT_TRUE(Eventually([&] {
    std::lock_guard lock(calls_mu);
    return calls.size() >= 5;
  }));
  {
    std::lock_guard lock(calls_mu);
    EXPECT_EQ(calls, (std::vector<std::string>{"add a", "add b", "update a", "add c", "delete b"}));
  }
  EXPECT_TRUE(Eventually([&] { return watches == 2; }));
  auto reqs = api_->requests();
  EXPECT_EQ(reqs.back().Query("resourceVersion"), "5");
  EXPECT_EQ(reqs.back().Query("allowWatchBookmarks"), "true");
  EXPECT_EQ(reqs.back().path, "/api/v1/namespaces/default/pods");
  auto start = std::chrono::steady_clock::now();
  inf.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

}  // namespace
}  // namespace kin
