// A stand-in fuzzer for the replay driver's own tests (fuzz/CMakeLists.txt):
// it crashes, as a fuzzer reports a finding, on the input "crash".
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (std::string_view(reinterpret_cast<const char*>(data), size) == "crash") std::abort();
  return 0;
}
