#include "client/quantity.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>

namespace kin {
namespace {

TEST(QuantityTest, ParsesPlainValues) {
  EXPECT_DOUBLE_EQ(*ParseQuantity("100m"), 0.1);
  EXPECT_DOUBLE_EQ(*ParseQuantity("1Gi"), 1073741824.0);
  EXPECT_DOUBLE_EQ(*ParseQuantity("1.5Gi"), 1610612736.0);
  EXPECT_DOUBLE_EQ(*ParseQuantity("0.5"), 0.5);
  EXPECT_DOUBLE_EQ(*ParseQuantity("1e3"), 1000.0);
  EXPECT_DOUBLE_EQ(*ParseQuantity("1E-3"), 0.001);
  EXPECT_DOUBLE_EQ(*ParseQuantity("2k"), 2000.0);
  EXPECT_DOUBLE_EQ(*ParseQuantity("128M"), 128e6);
  EXPECT_DOUBLE_EQ(*ParseQuantity("-1"), -1.0);
  EXPECT_DOUBLE_EQ(*ParseQuantity("+2"), 2.0);
  EXPECT_DOUBLE_EQ(*ParseQuantity(".5"), 0.5);
  EXPECT_DOUBLE_EQ(*ParseQuantity("5."), 5.0);
  EXPECT_DOUBLE_EQ(*ParseQuantity("0"), 0.0);
  EXPECT_DOUBLE_EQ(*ParseQuantity("3n"), 3e-9);
}

TEST(QuantityTest, RejectsWhatKubernetesRejects) {
  for (const char* bad : {"", "abc", "1Zi", "1.2.3", "Gi", "1e", "1 Gi", "--1", "."}) {
    EXPECT_FALSE(ParseQuantity(bad).has_value()) << bad;
    EXPECT_FALSE(ParseQuantityValue(bad).has_value()) << bad;
    EXPECT_FALSE(ParseQuantityMilli(bad).has_value()) << bad;
  }
}

TEST(QuantityTest, ReportsKubernetesDecodeErrors) {
  std::string error;
  EXPECT_FALSE(ParseQuantityText("abc", &error));
  EXPECT_EQ(error, kQuantityFormatError);
  EXPECT_FALSE(ParseQuantityText("1Zi", &error));  // 'Z' is not a suffix letter at all
  EXPECT_EQ(error, kQuantityFormatError);
  EXPECT_FALSE(ParseQuantityText("1KM", &error));
  EXPECT_EQ(error, kQuantitySuffixError);
  EXPECT_FALSE(ParseQuantityText("1e", &error));
  EXPECT_EQ(error, kQuantitySuffixError);
}

TEST(QuantityTest, KeepsExactDigitsAndExponents) {
  auto q = ParseQuantityText("-0012.50Mi");
  ASSERT_TRUE(q);
  EXPECT_TRUE(q->negative);
  EXPECT_EQ(q->digits, "1250");
  EXPECT_EQ(q->exp10, -2);
  EXPECT_EQ(q->exp2, 20);
  auto zero = ParseQuantityText("-0.000");
  ASSERT_TRUE(zero);
  EXPECT_FALSE(zero->negative);  // -0 is 0
  EXPECT_EQ(zero->digits, "0");
}

TEST(QuantityTest, ScaledCeilRoundsUpAndSaturates) {
  EXPECT_EQ(QuantityScaledCeil(*ParseQuantityText("1.0001"), 3), 1001);
  EXPECT_EQ(QuantityScaledCeil(*ParseQuantityText("250m"), 3), 250);
  EXPECT_EQ(QuantityScaledCeil(*ParseQuantityText("1n"), 0), 1);
  EXPECT_EQ(QuantityScaledCeil(*ParseQuantityText("1e-100"), 3), 1);  // tiny but positive
  EXPECT_EQ(QuantityScaledCeil(*ParseQuantityText("1e100"), 0), static_cast<__int128>(1) << 120);
}

TEST(QuantityTest, ValueAndMilliValueAsKubernetes) {
  EXPECT_EQ(ParseQuantityMilli("100m"), 100);
  EXPECT_EQ(ParseQuantityMilli("1"), 1000);
  EXPECT_EQ(ParseQuantityMilli("0.5"), 500);
  EXPECT_EQ(ParseQuantityMilli("0.0001"), 1);  // rounded up, as MilliValue
  EXPECT_EQ(ParseQuantityMilli("2k"), 2000000);
  EXPECT_EQ(ParseQuantityValue("1Ki"), 1024);
  EXPECT_EQ(ParseQuantityValue("100m"), 1);
  EXPECT_EQ(ParseQuantityValue("64Mi"), 67108864);
  EXPECT_EQ(ParseQuantityValue("128M"), 128000000);
  EXPECT_EQ(ParseQuantityValue("1.5Gi"), 1610612736);
  EXPECT_EQ(ParseQuantityValue("1E"), 1000000000000000000LL);
  EXPECT_EQ(ParseQuantityValue("100E"), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(ParseQuantityValue("-100E"), std::numeric_limits<int64_t>::min());
  EXPECT_FALSE(ParseQuantityValue("x").has_value());
}

// Found by fuzz/quantity_fuzzer: a zero with a huge exponent counted up to
// the exponent (a hang), and ParseQuantity threw std::out_of_range (from
// stold) for more digits than long double holds, or gave NaN.
TEST(QuantityTest, HugeExponentsAndDigitCountsNeitherHangNorThrow) {
  EXPECT_EQ(ParseQuantityValue("0E9223372034772807"), 0);
  EXPECT_EQ(ParseQuantityMilli("0e999999999999999999"), 0);
  EXPECT_EQ(ParseQuantity("0E9223372034772807"), 0.0);
  EXPECT_EQ(ParseQuantityValue("1E999999999999999999"), std::numeric_limits<int64_t>::max());
  const std::string huge = "1" + std::string(6000, '0');
  EXPECT_EQ(ParseQuantity(huge), std::numeric_limits<double>::infinity());
  EXPECT_EQ(ParseQuantity("-" + huge), -std::numeric_limits<double>::infinity());
  EXPECT_EQ(ParseQuantityValue(huge), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(ParseQuantity(huge + "e-999999999"), 0.0);
  EXPECT_EQ(ParseQuantity(huge + "e-5990"), 1e10);
}

}  // namespace
}  // namespace kin
