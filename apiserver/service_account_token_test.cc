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

namespace kin::apiserver {
namespace {

ServiceAccountClaims Claims() {
  return {"team-a", "default", "web-0", "5f0c3e2a-7d1b-4c59-9d0e-0c6a1f9b7e21"};
}

TEST(ServiceAccountTokenTest, MintedTokensVerifyWithTheirClaims) {
  ServiceAccountTokens tokens(std::string(32, 'k'));
  std::string t = tokens.Mint(Claims());
  EXPECT_EQ(std::count(t.begin(), t.end(), '.'), 2);
  EXPECT_EQ(t.find_first_of("+/="), std::string::npos);  // base64url, unpadded
  auto c = tokens.Verify(t);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->ns, "team-a");
  EXPECT_EQ(c->service_account, "default");
  EXPECT_EQ(c->pod_name, "web-0");
  EXPECT_EQ(c->pod_uid, Claims().pod_uid);
  EXPECT_EQ(c->UserName(), "system:serviceaccount:team-a:default");
  EXPECT_THAT(c->Groups(),
              ::testing::ElementsAre("system:serviceaccounts", "system:serviceaccounts:team-a",
                                     "system:authenticated"));
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
