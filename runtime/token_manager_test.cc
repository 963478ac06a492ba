#include "runtime/token_manager.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "base/error.h"
#include "client/object.h"

namespace kin {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using TimePoint = std::chrono::system_clock::time_point;

const TimePoint kT0 = TimePoint(seconds(1'800'000'000));

TEST(TokenRequiresRefresh, AfterEightyPercentOfItsLifetime) {
  // 3600 s lifetime, issued at t0: due after 2880 s (its last 20%).
  const TimePoint exp = kT0 + seconds(3600);
  EXPECT_FALSE(TokenRequiresRefresh(kT0, exp, 3600, hours(24)));
  EXPECT_FALSE(TokenRequiresRefresh(kT0 + seconds(2880), exp, 3600, hours(24)));
  EXPECT_TRUE(TokenRequiresRefresh(kT0 + seconds(2881), exp, 3600, hours(24)));
  EXPECT_TRUE(TokenRequiresRefresh(exp + seconds(1), exp, 3600, hours(24)));
  // The jitter brings it forward.
  EXPECT_TRUE(TokenRequiresRefresh(kT0 + seconds(2875), exp, 3600, hours(24), seconds(10)));
  // The admission's 3607 s: due after 2885 s (3607 * 20 / 100 = 721 in whole seconds).
  EXPECT_FALSE(TokenRequiresRefresh(kT0 + seconds(2886), kT0 + seconds(3607), 3607, hours(24)));
  EXPECT_TRUE(TokenRequiresRefresh(kT0 + seconds(2887), kT0 + seconds(3607), 3607, hours(24)));
}

TEST(TokenRequiresRefresh, AfterTheMaximumAgeWhateverItsLifetime) {
  // A week-long token is rotated after a day, as the kubelet's maxTTL.
  const TimePoint exp = kT0 + hours(24 * 7);
  EXPECT_FALSE(TokenRequiresRefresh(kT0 + hours(24), exp, 7 * 24 * 3600, hours(24)));
  EXPECT_TRUE(TokenRequiresRefresh(kT0 + hours(24) + seconds(1), exp, 7 * 24 * 3600, hours(24)));
  // A short maximum age (tests): due after it.
  EXPECT_FALSE(TokenRequiresRefresh(kT0 + seconds(2), kT0 + seconds(3607), 3607, seconds(2)));
  EXPECT_TRUE(TokenRequiresRefresh(kT0 + seconds(3), kT0 + seconds(3607), 3607, seconds(2)));
}

Json Pod() {
  return {{"metadata", {{"name", "p"}, {"namespace", "team"}, {"uid", "u1"}}},
          {"spec", {{"serviceAccountName", "robot"}}}};
}

struct Fixture {
  TimePoint now = kT0;
  std::vector<std::pair<std::string, Json>> asked;  // "ns/name", request
  bool fail = false;
  ServiceAccountTokenManager manager{
      [this](const std::string& ns, const std::string& name, const Json& request) -> Json {
        if (fail) throw Error::Unavailable("the API is away");
        asked.push_back({ns + "/" + name, request});
        int64_t exp = request["spec"].value("expirationSeconds", int64_t{3600});
        return {{"status",
                 {{"token", "t" + std::to_string(asked.size())},
                  {"expirationTimestamp", object::FormatRfc3339(now + seconds(exp))}}}};
      },
      hours(24), [this] { return now; }, seconds(0)};
};

TEST(ServiceAccountTokenManager, AsksForABoundTokenAndCachesItUntilDue) {
  Fixture f;
  const Json source = {{"path", "token"}, {"expirationSeconds", 3607}};
  EXPECT_EQ(f.manager.Token(Pod(), source), "t1");
  ASSERT_EQ(f.asked.size(), 1u);
  EXPECT_EQ(f.asked[0].first, "team/robot");
  EXPECT_EQ(f.asked[0].second["spec"], Json::parse(R"({"expirationSeconds":3607,
    "boundObjectRef":{"apiVersion":"v1","kind":"Pod","name":"p","uid":"u1"}})"));
  f.now += minutes(40);
  EXPECT_EQ(f.manager.Token(Pod(), source), "t1");
  f.now += minutes(10);  // 50 min of 60: due
  EXPECT_EQ(f.manager.Token(Pod(), source), "t2");
  EXPECT_EQ(f.asked.size(), 2u);

  // Another audience is another token.
  Json vault = {{"path", "v"}, {"audience", "vault"}, {"expirationSeconds", 600}};
  EXPECT_EQ(f.manager.Token(Pod(), vault), "t3");
  EXPECT_EQ(f.asked[2].second["spec"]["audiences"], Json::array({"vault"}));
  EXPECT_EQ(f.asked[2].second["spec"]["expirationSeconds"], 600);
}

TEST(ServiceAccountTokenManager, AFailedRefreshKeepsAValidTokenServing) {
  Fixture f;
  const Json source = {{"path", "token"}, {"expirationSeconds", 600}};
  EXPECT_EQ(f.manager.Token(Pod(), source), "t1");
  f.fail = true;
  f.now += seconds(590);  // due, still valid
  EXPECT_EQ(f.manager.Token(Pod(), source), "t1");
  f.now += seconds(20);  // expired
  EXPECT_THROW(f.manager.Token(Pod(), source), Error);
  f.fail = false;
  EXPECT_EQ(f.manager.Token(Pod(), source), "t2");

  // A pod that left the node: its tokens are forgotten.
  f.manager.ForgetPod("u1");
  EXPECT_EQ(f.manager.Token(Pod(), source), "t3");
}

}  // namespace
}  // namespace kin
