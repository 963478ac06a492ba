// Kubernetes resource quantities ("100m", "1Gi", "0.5", "1e3", "2k"), parsed
// exactly as k8s.io/apimachinery/pkg/api/resource parses them.
//
// Shared by API validation (which needs the exact decode error text and
// exact comparisons), the scheduler (requests) and the node agent (limits,
// downward API). A quantity is kept as ±digits × 10^exp10 × 2^exp2 so that
// no precision is lost before the caller asks for a rounded value.
//
// Thread-safety: pure functions and a plain value type.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kin {

struct Quantity {
  bool negative = false;
  std::string digits = "0";  // no leading zeros
  int64_t exp10 = 0;
  int exp2 = 0;
};

// The decode errors Kubernetes reports for a malformed quantity.
inline constexpr const char* kQuantityFormatError =
    "quantities must match the regular expression "
    "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
inline constexpr const char* kQuantitySuffixError = "unable to parse quantity's suffix";

// nullopt when `text` does not parse; *error (when given) gets Kubernetes' message.
std::optional<Quantity> ParseQuantityText(std::string_view text, std::string* error = nullptr);

// ceil(value × 10^scale10), saturating at ±2^120: exact comparisons and
// rounding without overflow for any quantity that parses.
__int128 QuantityScaledCeil(const Quantity& q, int scale10);

// nullopt when the text does not parse as Kubernetes parses it.
// ParseQuantity gives the plain value: bytes for memory, cores for cpu.
std::optional<double> ParseQuantity(std::string_view text);
// Rounded up to an integer (resource.Quantity.Value()): memory bytes.
// Saturates at INT64_MAX / INT64_MIN.
std::optional<int64_t> ParseQuantityValue(std::string_view text);
// In thousandths, rounded up (resource.Quantity.MilliValue()): CPU millicores.
// Saturates at INT64_MAX / INT64_MIN.
std::optional<int64_t> ParseQuantityMilli(std::string_view text);

}  // namespace kin
