// Unit tests (no root): service account tokens are JWTs this key signs and
// verifies, bound to their claims; anything else is refused.
#include "apiserver/service_account_token.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/error.h"
#include "base/file.h"
#include "base/strings.h"
#include "base/yaml.h"

namespace kin::apiserver {
namespace {

ServiceAccountClaims Claims() {
  ServiceAccountClaims c;
  c.issuer = "https://kubernetes.default.svc.cluster.local";
  c.audiences = {"https://kubernetes.default.svc.cluster.local"};
  c.issued_at = c.not_before = 1700000000;
  c.expires = 1700003600;
  c.id = "0b6f3a43-6bb1-4c5b-9f0e-b5a1b4e4d0a1";
  c.ns = "team-a";
  c.service_account = "default";
  c.service_account_uid = "a1b2c3d4-0000-4000-8000-000000000001";
  c.pod = {"web-0", "5f0c3e2a-7d1b-4c59-9d0e-0c6a1f9b7e21"};
  c.node = {"kin-worker", "9e1f2a3b-0000-4000-8000-000000000002"};
  return c;
}

// The payload of a token, decoded.
Json Payload(const std::string& token) {
  size_t a = token.find('.'), b = token.rfind('.');
  std::string p = token.substr(a + 1, b - a - 1);
  for (auto& ch : p) ch = ch == '-' ? '+' : ch == '_' ? '/' : ch;
  while (p.size() % 4) p += '=';
  return Json::parse(*Base64Decode(p));
}

TEST(ServiceAccountTokenTest, MintedTokensVerifyWithTheirClaims) {
  ServiceAccountTokens tokens(std::string(32, 'k'));
  std::string t = tokens.Mint(Claims());
  EXPECT_EQ(std::count(t.begin(), t.end(), '.'), 2);
  EXPECT_EQ(t.find_first_of("+/="), std::string::npos);  // base64url, unpadded
  auto c = tokens.Verify(t);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->issuer, Claims().issuer);
  EXPECT_EQ(c->audiences, Claims().audiences);
  EXPECT_EQ(c->issued_at, 1700000000);
  EXPECT_EQ(c->not_before, 1700000000);
  EXPECT_EQ(c->expires, 1700003600);
  EXPECT_EQ(c->id, Claims().id);
  EXPECT_EQ(c->ns, "team-a");
  EXPECT_EQ(c->service_account, "default");
  EXPECT_EQ(c->service_account_uid, Claims().service_account_uid);
  EXPECT_EQ(c->pod.name, "web-0");
  EXPECT_EQ(c->pod.uid, Claims().pod.uid);
  EXPECT_EQ(c->node.name, "kin-worker");
  EXPECT_TRUE(c->secret.empty());
  EXPECT_EQ(c->UserName(), "system:serviceaccount:team-a:default");
  EXPECT_THAT(c->Groups(),
              ::testing::ElementsAre("system:serviceaccounts", "system:serviceaccounts:team-a",
                                     "system:authenticated"));
}

TEST(ServiceAccountTokenTest, ClaimsAreKubeApiserversNames) {
  Json p = Payload(ServiceAccountTokens(std::string(32, 'k')).Mint(Claims()));
  EXPECT_EQ(p["iss"], "https://kubernetes.default.svc.cluster.local");
  EXPECT_EQ(p["sub"], "system:serviceaccount:team-a:default");
  EXPECT_EQ(p["aud"], Json::array({"https://kubernetes.default.svc.cluster.local"}));
  EXPECT_EQ(p["exp"], 1700003600);
  EXPECT_EQ(p["iat"], 1700000000);
  EXPECT_EQ(p["nbf"], 1700000000);
  EXPECT_EQ(p["jti"], Claims().id);
  const Json& k = p["kubernetes.io"];
  EXPECT_EQ(k["namespace"], "team-a");
  EXPECT_EQ(k["serviceaccount"], Json({{"name", "default"}, {"uid", Claims().service_account_uid}}));
  EXPECT_EQ(k["pod"], Json({{"name", "web-0"}, {"uid", Claims().pod.uid}}));
  EXPECT_EQ(k["node"]["name"], "kin-worker");
  EXPECT_FALSE(k.contains("secret"));
  EXPECT_FALSE(k.contains("warnafter"));
  // An extended token says when it would have expired (a NumericDate).
  ServiceAccountClaims extended = Claims();
  extended.expires = 1700000000 + 365 * 24 * 3600;
  extended.warn_after = 1700003607;
  const std::string token = ServiceAccountTokens(std::string(32, 'k')).Mint(extended);
  EXPECT_EQ(Payload(token)["kubernetes.io"]["warnafter"], 1700003607);
  EXPECT_EQ(Payload(token)["exp"], 1731536000);
  EXPECT_EQ(ServiceAccountTokens(std::string(32, 'k')).Verify(token)->warn_after, 1700003607);
  // A token without expiry (a pod's) has no exp.
  ServiceAccountClaims forever = Claims();
  forever.expires = 0;
  EXPECT_FALSE(Payload(ServiceAccountTokens(std::string(32, 'k')).Mint(forever)).contains("exp"));
}

TEST(ServiceAccountTokenTest, CheckClaimsEnforcesAudienceAndTime) {
  const std::vector<std::string> api = {"https://kubernetes.default.svc.cluster.local"};
  ServiceAccountClaims c = Claims();
  EXPECT_EQ(CheckClaims(c, api, 1700000100), "");
  // Expired, with go-jose's minute of leeway.
  EXPECT_EQ(CheckClaims(c, api, 1700003600 + 60), "");
  EXPECT_EQ(CheckClaims(c, api, 1700003600 + 61), "service account token has expired");
  EXPECT_EQ(CheckClaims(c, api, 1700000000 - 61), "service account token is not valid yet");
  c.expires = 0;
  EXPECT_EQ(CheckClaims(c, api, 1800000000), "");
  // Another audience: refused, in kube-apiserver's words; one in common is enough.
  c.audiences = {"vault"};
  EXPECT_EQ(CheckClaims(c, api, 1700000100),
            "token audiences [\"vault\"] is invalid for the target audiences "
            "[\"https://kubernetes.default.svc.cluster.local\"]");
  EXPECT_EQ(CheckClaims(c, {"x", "vault"}, 1700000100), "");
  c.audiences = {};
  EXPECT_NE(CheckClaims(c, api, 1700000100), "");
}

TEST(ServiceAccountTokenTest, RefusesOtherKeysAndTampering) {
  ServiceAccountTokens tokens(std::string(32, 'k'));
  std::string t = tokens.Mint(Claims());
  EXPECT_FALSE(ServiceAccountTokens(std::string(32, 'x')).Verify(t));
  // Another payload under the same signature.
  ServiceAccountClaims other = Claims();
  other.ns = "kube-system";
  std::string o = tokens.Mint(other);
  std::string spliced = t.substr(0, t.find('.')) +
                        o.substr(o.find('.'), o.rfind('.') - o.find('.')) + t.substr(t.rfind('.'));
  EXPECT_FALSE(tokens.Verify(spliced));
  std::string flipped = t;
  flipped.back() = flipped.back() == 'A' ? 'B' : 'A';
  EXPECT_FALSE(tokens.Verify(flipped));
  // A token whose subject is not its service account.
  ServiceAccountClaims liar = Claims();
  liar.service_account = "";
  EXPECT_FALSE(tokens.Verify(tokens.Mint(liar)));
  for (const char* junk : {"", ".", "..", "a.b.c", "a.b.c.d", "kin-placeholder-token"}) {
    EXPECT_FALSE(tokens.Verify(junk)) << junk;
  }
}

TEST(ServiceAccountTokenTest, KeyFileIsMadeOnceWithMode0600) {
  const std::string file =
      ::testing::TempDir() + "kin-sa-key-test-" + std::to_string(::getpid()) + "/sa.key";
  std::filesystem::create_directories(std::filesystem::path(file).parent_path());
  std::string t = ServiceAccountTokens::LoadOrCreate(file).Mint(Claims());
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // Loaded again: the same key.
  EXPECT_TRUE(ServiceAccountTokens::LoadOrCreate(file).Verify(t));
  WriteFileAtomic(file, "not hex\n", 0600, false);
  try {
    ServiceAccountTokens::LoadOrCreate(file);
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.message(), ::testing::HasSubstr(file));
  }
  std::filesystem::remove_all(std::filesystem::path(file).parent_path());
}

}  // namespace
}  // namespace kin::apiserver
