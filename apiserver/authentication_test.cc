// Unit tests (no root): the API's check of service account tokens (the
// service account and bound objects must still exist with their uids,
// audience, expiry), TokenRequest defaults and errors, TokenReview and
// SelfSubjectReview, on objects in a map and a clock the test moves.
#include "apiserver/authentication.h"

#include <map>
#include <tuple>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "apiserver/registry.h"
#include "apiserver/rest.h"
#include "apiserver/store.h"
#include "base/error.h"
#include "testing/e2e_support.h"

namespace kin::apiserver {
namespace {

using ::testing::HasSubstr;

constexpr char kApi[] = "https://kubernetes.default.svc.cluster.local";

class AuthenticationTest : public ::testing::Test {
 protected:
  AuthenticationTest()
      : auth_(tokens_,
              [this](const std::string& bucket, const std::string& ns,
                     const std::string& name) -> std::optional<Json> {
                auto it = objects_.find({bucket, ns, name});
                if (it == objects_.end()) return std::nullopt;
                return it->second;
              },
              AuthenticationOptions{}, [this] { return now_; }) {
    Put("serviceaccounts", "team-a", "default", "sa-uid-1");
    Put("serviceaccounts", "team-a", "builder", "sa-uid-2");
    Put("pods", "team-a", "web-0", "pod-uid-1", {{"serviceAccountName", "default"},
                                                  {"nodeName", "kin-worker"}});
    Put("secrets", "team-a", "s", "secret-uid-1");
    Put("nodes", "", "kin-worker", "node-uid-1");
  }

  void Put(const std::string& bucket, const std::string& ns, const std::string& name,
           const std::string& uid, Json spec = Json::object()) {
    Json meta = {{"name", name}, {"uid", uid}, {"creationTimestamp", "2023-11-14T22:13:20Z"}};
    if (!ns.empty()) meta["namespace"] = ns;
    objects_[{bucket, ns, name}] = {{"metadata", meta}, {"spec", spec}};
  }
  void Remove(const std::string& bucket, const std::string& ns, const std::string& name) {
    objects_.erase({bucket, ns, name});
  }
  std::string Token(Json spec = Json::object(), const std::string& sa = "default") {
    Json req = {{"apiVersion", "authentication.k8s.io/v1"},
                {"kind", "TokenRequest"},
                {"spec", spec}};
    return auth_.CreateToken("team-a", sa, req)["status"]["token"];
  }

  ServiceAccountTokens tokens_{std::string(32, 'k')};
  std::map<std::tuple<std::string, std::string, std::string>, Json> objects_;
  int64_t now_ = 1700000000;
  Authentication auth_;
};

TEST_F(AuthenticationTest, TokenRequestDefaultsAsKubeApiserver) {
  Json out = auth_.CreateToken("team-a", "default", {{"spec", Json::object()}});
  EXPECT_EQ(out["kind"], "TokenRequest");
  EXPECT_EQ(out["apiVersion"], "authentication.k8s.io/v1");
  EXPECT_EQ(out["metadata"]["name"], "default");
  EXPECT_EQ(out["metadata"]["namespace"], "team-a");
  EXPECT_EQ(out["spec"]["audiences"], Json::array({kApi}));
  EXPECT_EQ(out["spec"]["expirationSeconds"], 3600);
  EXPECT_EQ(out["status"]["expirationTimestamp"], "2023-11-14T23:13:20Z");  // now + 1 h
  auto c = tokens_.Verify(out["status"]["token"].get<std::string>());
  ASSERT_TRUE(c);
  EXPECT_EQ(c->issuer, kApi);
  EXPECT_EQ(c->issued_at, now_);
  EXPECT_EQ(c->not_before, now_);
  EXPECT_EQ(c->expires, now_ + 3600);
  EXPECT_EQ(c->service_account_uid, "sa-uid-1");
  EXPECT_FALSE(c->id.empty());
}

// --service-account-extend-token-expiration: the kube-api-access volume's
// request (3607 s, bound to a pod, for the API) gets a token valid a year
// whose warnafter is the requested expiry; the answer's
// expirationTimestamp stays the requested one.
TEST_F(AuthenticationTest, PodTokenForTheApiAt3607SecondsIsExtendedAYear) {
  const Json pod_ref = {{"kind", "Pod"}, {"apiVersion", "v1"}, {"name", "web-0"}};
  Json out = auth_.CreateToken("team-a", "default",
                               {{"spec", {{"expirationSeconds", 3607}, {"boundObjectRef", pod_ref}}}});
  EXPECT_EQ(out["spec"]["expirationSeconds"], 3607);
  EXPECT_EQ(out["status"]["expirationTimestamp"], "2023-11-14T23:13:27Z");  // now + 3607 s
  const std::string token = out["status"]["token"];
  auto c = tokens_.Verify(token);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->issued_at, now_);
  EXPECT_EQ(c->expires, now_ + 365 * 24 * 3600);
  EXPECT_EQ(c->warn_after, now_ + 3607);
  // Past warnafter it still works (kube-apiserver only notes it), until the year is out.
  now_ += 3607 + 3600;
  EXPECT_TRUE(auth_.AuthenticateToken(token).authenticated);
  now_ += 365 * 24 * 3600;
  EXPECT_THAT(auth_.AuthenticateToken(token).error, HasSubstr("service account token has expired"));
}

TEST_F(AuthenticationTest, OtherTokenRequestsAreNotExtended) {
  const Json pod_ref = {{"kind", "Pod"}, {"apiVersion", "v1"}, {"name", "web-0"}};
  const Json secret_ref = {{"kind", "Secret"}, {"apiVersion", "v1"}, {"name", "s"}};
  auto lifetime = [&](Authentication& a, const Json& spec) {
    Json out = a.CreateToken("team-a", "default", {{"spec", spec}});
    auto c = tokens_.Verify(out["status"]["token"].get<std::string>());
    EXPECT_TRUE(c);
    return c ? std::make_pair(c->expires - now_, c->warn_after) : std::make_pair(int64_t{0}, int64_t{0});
  };
  using Lifetime = std::pair<int64_t, int64_t>;
  const Lifetime extended{365 * 24 * 3600, now_ + 3607};
  // Any other duration, no pod (or another object), an audience not the API's.
  EXPECT_EQ(lifetime(auth_, {{"expirationSeconds", 3600}, {"boundObjectRef", pod_ref}}),
            Lifetime(3600, 0));
  EXPECT_EQ(lifetime(auth_, {{"expirationSeconds", 3607}}), Lifetime(3607, 0));
  EXPECT_EQ(lifetime(auth_, {{"expirationSeconds", 3607}, {"boundObjectRef", secret_ref}}),
            Lifetime(3607, 0));
  EXPECT_EQ(lifetime(auth_, {{"expirationSeconds", 3607},
                             {"boundObjectRef", pod_ref},
                             {"audiences", {kApi, "vault"}}}),
            Lifetime(3607, 0));
  EXPECT_EQ(lifetime(auth_, {{"expirationSeconds", 3607},
                             {"boundObjectRef", pod_ref},
                             {"audiences", {kApi}}}),
            extended);
  // --service-account-extend-token-expiration=false.
  AuthenticationOptions off;
  off.extend_token_expiration = false;
  Authentication strict(
      tokens_,
      [this](const std::string& bucket, const std::string& ns,
             const std::string& name) -> std::optional<Json> {
        auto it = objects_.find({bucket, ns, name});
        if (it == objects_.end()) return std::nullopt;
        return it->second;
      },
      off, [this] { return now_; });
  EXPECT_EQ(lifetime(strict, {{"expirationSeconds", 3607}, {"boundObjectRef", pod_ref}}),
            Lifetime(3607, 0));
}

TEST_F(AuthenticationTest, AcceptedTokenIsTheServiceAccount) {
  TokenAuthResult r = auth_.AuthenticateToken(Token());
  ASSERT_TRUE(r.authenticated) << r.error;
  EXPECT_EQ(r.user.username, "system:serviceaccount:team-a:default");
  EXPECT_EQ(r.user.uid, "sa-uid-1");
  EXPECT_THAT(r.user.groups, ::testing::ElementsAre("system:serviceaccounts",
                                                    "system:serviceaccounts:team-a",
                                                    "system:authenticated"));
  EXPECT_EQ(r.audiences, std::vector<std::string>{kApi});
  ASSERT_EQ(r.user.extra.count("authentication.kubernetes.io/credential-id"), 1u);
  EXPECT_THAT(r.user.extra["authentication.kubernetes.io/credential-id"][0], HasSubstr("JTI="));
}

TEST_F(AuthenticationTest, ExpiredTokenIsRefused) {
  std::string t = Token({{"expirationSeconds", 600}});
  now_ += 600 + 60;  // within go-jose's leeway
  EXPECT_TRUE(auth_.AuthenticateToken(t).authenticated);
  now_ += 1;
  TokenAuthResult r = auth_.AuthenticateToken(t);
  EXPECT_FALSE(r.authenticated);
  EXPECT_EQ(r.error, "[invalid bearer token, service account token has expired]");
}

TEST_F(AuthenticationTest, OtherAudienceIsRefusedByTheApiButNotByItsReview) {
  std::string t = Token({{"audiences", {"vault"}}});
  TokenAuthResult r = auth_.AuthenticateToken(t);
  EXPECT_FALSE(r.authenticated);
  EXPECT_EQ(r.error, std::string("[invalid bearer token, token audiences [\"vault\"] is invalid "
                                 "for the target audiences [\"") +
                         kApi + "\"]]");
  r = auth_.AuthenticateToken(t, {"vault", "other"});
  EXPECT_TRUE(r.authenticated) << r.error;
  EXPECT_EQ(r.audiences, std::vector<std::string>{"vault"});
}

TEST_F(AuthenticationTest, DeletedOrRecreatedServiceAccountInvalidatesItsTokens) {
  std::string t = Token();
  Remove("serviceaccounts", "team-a", "default");
  TokenAuthResult r = auth_.AuthenticateToken(t);
  EXPECT_FALSE(r.authenticated);
  EXPECT_THAT(r.error, HasSubstr("serviceaccounts \"default\" not found"));
  Put("serviceaccounts", "team-a", "default", "sa-uid-new");
  r = auth_.AuthenticateToken(t);
  EXPECT_FALSE(r.authenticated);
  EXPECT_THAT(r.error, HasSubstr("service account UID (sa-uid-new) does not match claim (sa-uid-1)"));
}

TEST_F(AuthenticationTest, BoundPodMustStillExistWithItsUid) {
  std::string t = Token({{"boundObjectRef", {{"kind", "Pod"}, {"apiVersion", "v1"}, {"name", "web-0"}}}});
  TokenAuthResult r = auth_.AuthenticateToken(t);
  ASSERT_TRUE(r.authenticated) << r.error;
  EXPECT_EQ(r.user.extra["authentication.kubernetes.io/pod-name"],
            std::vector<std::string>{"web-0"});
  EXPECT_EQ(r.user.extra["authentication.kubernetes.io/pod-uid"],
            std::vector<std::string>{"pod-uid-1"});
  EXPECT_EQ(r.user.extra["authentication.kubernetes.io/node-name"],
            std::vector<std::string>{"kin-worker"});
  EXPECT_EQ(r.user.extra["authentication.kubernetes.io/node-uid"],
            std::vector<std::string>{"node-uid-1"});
  Put("pods", "team-a", "web-0", "pod-uid-2", {{"serviceAccountName", "default"}});
  r = auth_.AuthenticateToken(t);
  EXPECT_FALSE(r.authenticated);
  EXPECT_THAT(r.error, HasSubstr("pod UID (pod-uid-2) does not match service account pod ref claim (pod-uid-1)"));
  Remove("pods", "team-a", "web-0");
  EXPECT_THAT(auth_.AuthenticateToken(t).error, HasSubstr("service account token has been invalidated"));
}

TEST_F(AuthenticationTest, BoundSecretAndNodeMustStillExist) {
  std::string s = Token({{"boundObjectRef", {{"kind", "Secret"}, {"apiVersion", "v1"}, {"name", "s"}}}});
  std::string n = Token({{"boundObjectRef", {{"kind", "Node"}, {"apiVersion", "v1"}, {"name", "kin-worker"}}}});
  EXPECT_TRUE(auth_.AuthenticateToken(s).authenticated);
  EXPECT_TRUE(auth_.AuthenticateToken(n).authenticated);
  Remove("secrets", "team-a", "s");
  Put("nodes", "", "kin-worker", "node-uid-2");
  EXPECT_THAT(auth_.AuthenticateToken(s).error, HasSubstr("service account token has been invalidated"));
  EXPECT_THAT(auth_.AuthenticateToken(n).error, HasSubstr("node UID (node-uid-2) does not match"));
}

TEST_F(AuthenticationTest, OtherKeysAndIssuersAreNotClaimed) {
  ServiceAccountTokens other(std::string(32, 'x'));
  Authentication foreign(other, [](auto&, auto&, auto&) { return std::nullopt; });
  std::string theirs = Authentication(other, [](auto&, auto&, auto&) -> std::optional<Json> {
    return Json{{"metadata", {{"uid", "u"}}}};
  }).CreateToken("team-a", "default", Json::object())["status"]["token"];
  EXPECT_EQ(auth_.AuthenticateToken(theirs).error, "invalid bearer token");
  Authentication elsewhere(tokens_, [this](auto& b, auto& ns, auto& n) -> std::optional<Json> {
    auto it = objects_.find({b, ns, n});
    if (it == objects_.end()) return std::nullopt;
    return it->second;
  }, AuthenticationOptions{"https://issuer.example", {kApi}});
  std::string t = elsewhere.CreateToken("team-a", "default", Json::object())["status"]["token"];
  EXPECT_EQ(auth_.AuthenticateToken(t).error, "invalid bearer token");
  EXPECT_EQ(auth_.AuthenticateToken("not-a-token").error, "invalid bearer token");
}

// kin::Error `e` thrown by `f`, with its code.
template <typename F>
Error Thrown(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no error";
  return Error::Internal("none");
}

TEST_F(AuthenticationTest, TokenRequestErrorsNameTheField) {
  Error e = Thrown([&] { Token({{"expirationSeconds", 599}}); });
  EXPECT_EQ(e.code(), Code::kInvalid);
  EXPECT_EQ(e.message(),
            "TokenRequest.authentication.k8s.io \"\" is invalid: spec.expirationSeconds: Invalid "
            "value: 599: may not specify a duration less than 10 minutes");
  ASSERT_EQ(e.causes().size(), 1u);
  EXPECT_EQ(e.causes()[0].field, "spec.expirationSeconds");
  e = Thrown([&] { Token({{"expirationSeconds", (int64_t{1} << 32) + 1}}); });
  EXPECT_THAT(e.message(), HasSubstr("may not specify a duration larger than 2^32 seconds"));
  e = Thrown([&] { Token({{"expirationSeconds", "ten"}}); });
  EXPECT_EQ(e.code(), Code::kBadRequest);
  EXPECT_THAT(e.message(), HasSubstr("spec.expirationSeconds"));
  e = Thrown([&] { Token({{"audiences", "vault"}}); });
  EXPECT_EQ(e.code(), Code::kBadRequest);
  EXPECT_THAT(e.message(), HasSubstr("spec.audiences"));
  e = Thrown([&] { Token(Json::object(), "nobody"); });
  EXPECT_EQ(e.code(), Code::kNotFound);
  EXPECT_EQ(e.message(), "serviceaccounts \"nobody\" not found");
  e = Thrown([&] {
    auth_.CreateToken("team-a", "default", {{"metadata", {{"name", "other"}}}});
  });
  EXPECT_EQ(e.code(), Code::kInvalid);
  EXPECT_THAT(e.message(), HasSubstr("metadata.name: Invalid value: \"other\": must match the "
                                     "service account name if specified"));
}

TEST_F(AuthenticationTest, TokenRequestBoundObjectErrors) {
  auto bound = [](const std::string& kind, const std::string& name, const std::string& uid = "") {
    Json ref = {{"kind", kind}, {"apiVersion", "v1"}, {"name", name}};
    if (!uid.empty()) ref["uid"] = uid;
    return Json{{"boundObjectRef", ref}};
  };
  Error e = Thrown([&] { Token(bound("Pod", "gone")); });
  EXPECT_EQ(e.code(), Code::kNotFound);
  EXPECT_EQ(e.message(), "pods \"gone\" not found");
  e = Thrown([&] { Token(bound("Pod", "web-0"), "builder"); });
  EXPECT_EQ(e.code(), Code::kBadRequest);
  EXPECT_EQ(e.message(), "cannot bind token for serviceaccount \"builder\" to pod running with "
                         "different serviceaccount name.");
  e = Thrown([&] { Token(bound("ConfigMap", "c")); });
  EXPECT_EQ(e.code(), Code::kBadRequest);
  EXPECT_EQ(e.message(), "cannot bind token to object of type /v1, Kind=ConfigMap");
  e = Thrown([&] { Token(bound("Secret", "s", "another-uid")); });
  EXPECT_EQ(e.code(), Code::kConflict);
  EXPECT_THAT(e.message(), HasSubstr("the UID in the bound object reference (another-uid) does "
                                     "not match the UID in record"));
  e = Thrown([&] { Token(bound("Node", "nowhere")); });
  EXPECT_EQ(e.code(), Code::kNotFound);
}

TEST_F(AuthenticationTest, TokenReviewReportsUserOrError) {
  Json review = {{"apiVersion", "authentication.k8s.io/v1"},
                 {"kind", "TokenReview"},
                 {"spec", {{"token", Token()}}}};
  Json out = auth_.ReviewToken(review);
  EXPECT_EQ(out["kind"], "TokenReview");
  EXPECT_EQ(out["status"]["authenticated"], true);
  EXPECT_EQ(out["status"]["user"]["username"], "system:serviceaccount:team-a:default");
  EXPECT_EQ(out["status"]["user"]["uid"], "sa-uid-1");
  EXPECT_EQ(out["status"]["audiences"], Json::array({kApi}));
  EXPECT_FALSE(out["status"].contains("error"));
  // Asked for another audience than the token's.
  review["spec"]["audiences"] = {"vault"};
  out = auth_.ReviewToken(review);
  EXPECT_FALSE(out["status"].contains("authenticated"));
  EXPECT_EQ(out["status"]["user"], Json::object());
  EXPECT_THAT(out["status"]["error"].get<std::string>(), HasSubstr("is invalid for the target audiences [\"vault\"]"));
  Error e = Thrown([&] { auth_.ReviewToken({{"spec", Json::object()}}); });
  EXPECT_EQ(e.code(), Code::kBadRequest);
  EXPECT_EQ(e.message(), "token is required for TokenReview in authentication");
}

TEST_F(AuthenticationTest, SelfSubjectReviewEchoesTheUser) {
  UserInfo u{"kubernetes-admin", "", {"system:masters", "system:authenticated"}, {}};
  Json out = auth_.ReviewSelf(u, {{"kind", "SelfSubjectReview"}});
  EXPECT_EQ(out["kind"], "SelfSubjectReview");
  EXPECT_EQ(out["apiVersion"], "authentication.k8s.io/v1");
  EXPECT_EQ(out["status"]["userInfo"],
            Json({{"username", "kubernetes-admin"},
                  {"groups", {"system:masters", "system:authenticated"}}}));
}

TEST_F(AuthenticationTest, PodTokensAreBoundToThePodAndStable) {
  const Json& pod = objects_[{"pods", "team-a", "web-0"}];
  std::string t = auth_.PodToken(pod);
  EXPECT_EQ(t, auth_.PodToken(pod));  // a volume refresh writes nothing new
  auto c = tokens_.Verify(t);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->expires, 0);
  EXPECT_EQ(c->pod.uid, "pod-uid-1");
  EXPECT_EQ(c->service_account_uid, "sa-uid-1");
  EXPECT_EQ(c->audiences, std::vector<std::string>{kApi});
  now_ += 10 * 365 * 86400;
  EXPECT_TRUE(auth_.AuthenticateToken(t).authenticated);
  Remove("pods", "team-a", "web-0");
  EXPECT_FALSE(auth_.AuthenticateToken(t).authenticated);
}

// The REST routes on a real registry: what kubectl sends and gets.
class AuthenticationRestTest : public ::testing::Test {
 protected:
  AuthenticationRestTest() {
    StoreOptions so;
    so.index_fields = IndexFields;
    store_ = Store::Open(dir_.File("kin.db"), so);
    registry_ = std::make_unique<Registry>(*store_, RegistryOptions{});
    registry_->Bootstrap();
    rest_ = std::make_unique<RestHandler>(*registry_);
    auth_ = std::make_unique<Authentication>(
        tokens_, [this](const std::string& b, const std::string& ns,
                        const std::string& n) -> std::optional<Json> {
          auto rec = store_->Get(b, ns, n);
          if (!rec) return std::nullopt;
          return rec->Parse();
        });
    registry_->Create(*FindResource("", "v1", "serviceaccounts"), "default",
                      {{"metadata", {{"name", "default"}}}}, WriteOptions{});
  }
  http::Response Call(const std::string& method, const std::string& path, const Json& body,
                      const std::string& bearer = "") {
    http::Request req;
    req.method = method;
    req.path = req.target = path;
    if (!body.is_null()) {
      req.body = body.dump();
      req.headers.emplace("Content-Type", "application/json");
    }
    if (!bearer.empty()) {
      req.headers.emplace("Authorization", "Bearer " + bearer);
      req.client_cn = "system:serviceaccount:default:default";  // as the server set it
      req.client_groups = {"system:serviceaccounts", "system:serviceaccounts:default",
                           "system:authenticated"};
    } else {
      req.client_cn = "kubernetes-admin";
      req.client_groups = {"system:masters"};
    }
    http::Response resp;
    rest_->Handle(req, resp);
    return resp;
  }

  ::kin::testing::TempDir dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<RestHandler> rest_;
  ServiceAccountTokens tokens_{std::string(32, 'k')};
  std::unique_ptr<Authentication> auth_;
};

TEST_F(AuthenticationRestTest, TokenReviewAndWhoamiOverRest) {
  const std::string token_path = "/api/v1/namespaces/default/serviceaccounts/default/token";
  // Without a service account key: 503.
  http::Response r = Call("POST", token_path, {{"spec", Json::object()}});
  EXPECT_EQ(r.status, 503) << r.body;
  rest_->SetAuthentication(auth_.get());
  r = Call("POST", token_path, {{"spec", {{"expirationSeconds", 60}}}});
  EXPECT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(Json::parse(r.body)["details"]["causes"][0]["field"], "spec.expirationSeconds");
  r = Call("POST", "/api/v1/namespaces/default/serviceaccounts/nobody/token", Json::object());
  EXPECT_EQ(r.status, 404) << r.body;
  r = Call("POST", token_path, {{"spec", Json::object()}});
  ASSERT_EQ(r.status, 201) << r.body;
  std::string token = Json::parse(r.body)["status"]["token"];

  r = Call("POST", "/apis/authentication.k8s.io/v1/tokenreviews",
           {{"kind", "TokenReview"}, {"spec", {{"token", token}}}});
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(Json::parse(r.body)["status"]["user"]["username"],
            "system:serviceaccount:default:default");

  r = Call("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
           {{"kind", "SelfSubjectReview"}}, token);
  ASSERT_EQ(r.status, 201) << r.body;
  Json who = Json::parse(r.body)["status"]["userInfo"];
  EXPECT_EQ(who["username"], "system:serviceaccount:default:default");
  EXPECT_FALSE(who.value("uid", "").empty());  // from the token, not the connection
  r = Call("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
           {{"kind", "SelfSubjectReview"}});
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(Json::parse(r.body)["status"]["userInfo"],
            Json({{"username", "kubernetes-admin"},
                  {"groups", {"system:masters", "system:authenticated"}}}));

  // Create-only: nothing to list or get.
  EXPECT_EQ(Call("GET", "/apis/authentication.k8s.io/v1/tokenreviews", nullptr).status, 405);
  EXPECT_EQ(Call("GET", "/api/v1/namespaces/default/serviceaccounts/default/token", nullptr).status,
            405);
  r = Call("POST", "/apis/authentication.k8s.io/v1/tokenreviews", {{"spec", Json::object()}});
  EXPECT_EQ(r.status, 400) << r.body;
}

}  // namespace
}  // namespace kin::apiserver
