// The Ingress routes' matcher: hosts (exact, wildcard, any), path types and
// the precedence networking.k8s.io/v1 defines, apart from the server.
#include <gtest/gtest.h>

#include "netstack/ingress_proxy.h"

namespace kin::netstack {
namespace {

using T = IngressPathType;

IngressBackend B(const std::string& name) { return {name, {{"10.0.0.1", 80}}}; }

std::string Match(const IngressRoutes& r, const std::string& host, const std::string& path) {
  const IngressBackend* b = MatchRoute(r, host, path);
  return b ? b->name : "<none>";
}

TEST(IngressMatch, PrefixIsElementWise) {
  EXPECT_TRUE(IngressPathMatches(T::kPrefix, "/foo", "/foo"));
  EXPECT_TRUE(IngressPathMatches(T::kPrefix, "/foo", "/foo/"));
  EXPECT_TRUE(IngressPathMatches(T::kPrefix, "/foo", "/foo/bar"));
  EXPECT_TRUE(IngressPathMatches(T::kPrefix, "/foo/", "/foo"));
  EXPECT_FALSE(IngressPathMatches(T::kPrefix, "/foo", "/foobar"));
  EXPECT_FALSE(IngressPathMatches(T::kPrefix, "/foo/bar", "/foo/baz"));
  EXPECT_FALSE(IngressPathMatches(T::kPrefix, "/foo/bar", "/foo"));
  EXPECT_TRUE(IngressPathMatches(T::kPrefix, "/", "/anything/at/all"));
  EXPECT_TRUE(IngressPathMatches(T::kPrefix, "/aaa/bb", "/aaa/bb/ccc"));
  EXPECT_FALSE(IngressPathMatches(T::kPrefix, "/aaa/bb", "/aaa/bbxyz"));
  EXPECT_TRUE(IngressPathMatches(T::kImplementationSpecific, "/foo", "/foo/x"));
}

TEST(IngressMatch, ExactIsTheWholePath) {
  EXPECT_TRUE(IngressPathMatches(T::kExact, "/foo", "/foo"));
  EXPECT_FALSE(IngressPathMatches(T::kExact, "/foo", "/foo/"));
  EXPECT_FALSE(IngressPathMatches(T::kExact, "/foo", "/foo/bar"));
}

TEST(IngressMatch, WildcardCoversOneLabel) {
  EXPECT_TRUE(IngressHostMatches("*.foo.com", "bar.foo.com"));
  EXPECT_FALSE(IngressHostMatches("*.foo.com", "baz.bar.foo.com"));
  EXPECT_FALSE(IngressHostMatches("*.foo.com", "foo.com"));
  EXPECT_FALSE(IngressHostMatches("*.foo.com", ".foo.com"));
  EXPECT_TRUE(IngressHostMatches("Foo.COM", "foo.com"));
  EXPECT_TRUE(IngressHostMatches("", "anything.example"));
}

TEST(IngressMatch, HostHeaderIsNormalized) {
  EXPECT_EQ(NormalizeHost("Foo.Example.COM:8080"), "foo.example.com");
  EXPECT_EQ(NormalizeHost("foo.example.com."), "foo.example.com");
  EXPECT_EQ(NormalizeHost("[::1]:80"), "::1");
  EXPECT_EQ(NormalizeHost(""), "");
}

TEST(IngressMatch, ExactBeforeLongestPrefix) {
  IngressRoutes r;
  r.rules = {{"foo.com",
              {{"/", T::kPrefix, B("root")},
               {"/api", T::kPrefix, B("api")},
               {"/api/v2", T::kPrefix, B("v2")},
               {"/api/v2/exact", T::kExact, B("exact")}}}};
  EXPECT_EQ(Match(r, "foo.com", "/"), "root");
  EXPECT_EQ(Match(r, "foo.com", "/apix"), "root");
  EXPECT_EQ(Match(r, "foo.com", "/api"), "api");
  EXPECT_EQ(Match(r, "foo.com", "/api/v1/x"), "api");
  EXPECT_EQ(Match(r, "foo.com", "/api/v2/x?y=1"), "v2");
  EXPECT_EQ(Match(r, "foo.com", "/api/v2/exact"), "exact");
  EXPECT_EQ(Match(r, "foo.com", "/api/v2/exact/more"), "v2");
}

TEST(IngressMatch, ExactOfALaterIngressStillWins) {
  IngressRoutes r;
  r.rules = {{"foo.com", {{"/a", T::kPrefix, B("prefix")}}},
             {"foo.com", {{"/a/b", T::kExact, B("exact")}}}};
  EXPECT_EQ(Match(r, "foo.com", "/a/b"), "exact");
  EXPECT_EQ(Match(r, "foo.com", "/a/c"), "prefix");
}

TEST(IngressMatch, EqualPathsTheFirstWins) {
  IngressRoutes r;
  r.rules = {{"foo.com", {{"/a", T::kPrefix, B("first")}}},
             {"foo.com", {{"/a/", T::kPrefix, B("second")}}}};
  EXPECT_EQ(Match(r, "foo.com", "/a/x"), "first");
}

TEST(IngressMatch, ExactHostBeforeWildcardBeforeAny) {
  IngressRoutes r;
  r.rules = {{"", {{"/", T::kPrefix, B("any")}}},
             {"*.foo.com", {{"/", T::kPrefix, B("wild")}}},
             {"bar.foo.com", {{"/", T::kPrefix, B("bar")}}}};
  EXPECT_EQ(Match(r, "bar.foo.com", "/x"), "bar");
  EXPECT_EQ(Match(r, "BAR.foo.com:80", "/x"), "bar");
  EXPECT_EQ(Match(r, "baz.foo.com", "/x"), "wild");
  EXPECT_EQ(Match(r, "a.baz.foo.com", "/x"), "any");
  EXPECT_EQ(Match(r, "other.org", "/"), "any");
  EXPECT_EQ(Match(r, "", "/"), "any");
}

TEST(IngressMatch, AHostsOwnRulesWithoutThePathGoToTheDefault) {
  IngressRoutes r;
  r.rules = {{"foo.com", {{"/app", T::kPrefix, B("app")}}}, {"", {{"/", T::kPrefix, B("any")}}}};
  EXPECT_EQ(Match(r, "foo.com", "/other"), "<none>");  // as ingress-nginx: the host's server
  r.default_backend = B("default");
  EXPECT_EQ(Match(r, "foo.com", "/other"), "default");
  EXPECT_EQ(Match(r, "foo.com", "/app/1"), "app");
}

TEST(IngressMatch, MatchPathGivesTheRulePathNotTheDefault) {
  IngressRoutes r;
  r.rules = {{"foo.com", {{"/a", T::kPrefix, B("a"), /*ssl_redirect=*/true}}}};
  r.default_backend = B("default");
  const IngressPath* p = MatchPath(r, "foo.com", "/a/b?x=1");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->backend.name, "a");
  EXPECT_TRUE(p->ssl_redirect);
  EXPECT_EQ(MatchPath(r, "foo.com", "/b"), nullptr);
  EXPECT_EQ(Match(r, "foo.com", "/b"), "default");
}

TEST(IngressMatch, NothingMatchesWithoutDefault) {
  IngressRoutes r;
  r.rules = {{"foo.com", {{"/", T::kPrefix, B("foo")}}}};
  EXPECT_EQ(Match(r, "bar.com", "/"), "<none>");
  EXPECT_EQ(MatchRoute(IngressRoutes{}, "x", "/"), nullptr);
  r.default_backend = B("default");
  EXPECT_EQ(Match(r, "bar.com", "/"), "default");
}

}  // namespace
}  // namespace kin::netstack
