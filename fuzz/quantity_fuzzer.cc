// Fuzzes resource quantities (client/quantity.h) and RFC 3339 times
// (client/object.h), both read from any object a client sends: the parsers
// return nullopt on bad input and must never crash or overflow.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "client/object.h"
#include "client/quantity.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string error;
  if (auto q = kin::ParseQuantityText(text, &error)) {
    for (int scale : {-40, -9, -3, 0, 3, 9, 40}) (void)kin::QuantityScaledCeil(*q, scale);
  }
  (void)kin::ParseQuantity(text);
  (void)kin::ParseQuantityValue(text);
  (void)kin::ParseQuantityMilli(text);
  if (auto t = kin::object::ParseRfc3339(text)) (void)kin::object::FormatRfc3339(*t);
  return 0;
}
