#include "base/strings.h"

#include <gtest/gtest.h>

#include <vector>

namespace kin {
namespace {

TEST(StringsTest, GoQuoteEscapesAsGo) {
  EXPECT_EQ(GoQuote("plain"), "\"plain\"");
  EXPECT_EQ(GoQuote("a\"b\\c\n\t"), "\"a\\\"b\\\\c\\n\\t\"");
  EXPECT_EQ(GoQuote(std::string("\x01", 1)), "\"\\x01\"");
}

TEST(StringsTest, Base64RoundTripsEveryPaddingLength) {
  for (const std::string& s : std::vector<std::string>{"", "a", "ab", "abc", "abcd", "s3cret",
                                                       std::string("\0\xff\x10", 3)}) {
    std::string enc = Base64Encode(s);
    EXPECT_EQ(enc.size() % 4, 0u);
    auto dec = Base64Decode(enc);
    ASSERT_TRUE(dec.has_value()) << enc;
    EXPECT_EQ(*dec, s);
  }
  EXPECT_EQ(Base64Encode("s3cret"), "czNjcmV0");
  EXPECT_EQ(Base64Encode("ab"), "YWI=");
}

TEST(StringsTest, Base64DecodeRejectsGarbage) {
  EXPECT_FALSE(Base64Decode("abc").has_value());       // not a multiple of 4
  EXPECT_FALSE(Base64Decode("ab!d").has_value());      // bad character
  EXPECT_FALSE(Base64Decode("a=bc").has_value());      // padding in the middle
  EXPECT_FALSE(Base64Decode("YQ==YWI=").has_value());  // data after padding
}

}  // namespace
}  // namespace kin

namespace kin {
namespace {

TEST(StringsTest, Base64DecodeReportsTheFirstBadByteAndSkipsNewlines) {
  size_t bad = 0;
  EXPECT_FALSE(Base64Decode("YW!j", &bad).has_value());
  EXPECT_EQ(bad, 2u);
  EXPECT_EQ(Base64Decode("YW\nJj\r\n").value_or("x"), "abc");
}

}  // namespace
}  // namespace kin

namespace kin {
namespace {

TEST(SplitPathTest, SegmentsWithoutEmptyOnes) {
  EXPECT_EQ(SplitPath("/api/v1/namespaces/default/pods"),
            (std::vector<std::string>{"api", "v1", "namespaces", "default", "pods"}));
  EXPECT_EQ(SplitPath("//apis//apps/"), (std::vector<std::string>{"apis", "apps"}));
  std::string text = "/a//b/";
  EXPECT_EQ(SplitPathViews(text), (std::vector<std::string_view>{"a", "b"}));
  EXPECT_EQ(SplitPathViews(text)[1].data(), text.data() + 4);  // views, not copies
  EXPECT_TRUE(SplitPath("").empty());
  EXPECT_TRUE(SplitPath("///").empty());
}

}  // namespace
}  // namespace kin
