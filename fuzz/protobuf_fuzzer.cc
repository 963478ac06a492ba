// Fuzzes the Kubernetes protobuf decoder (apiserver/protobuf.h): request
// bodies kubectl sends as application/vnd.kubernetes.protobuf. The decoder
// refuses bad input with kin::Error only; the magic prefix is added when the
// input lacks it so that the fuzzer spends its time past the first check.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "apiserver/protobuf.h"
#include "base/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  static const std::string_view kMagic("k8s\0", 4);
  std::string framed;
  if (body.substr(0, 4) != kMagic) {
    framed = std::string(kMagic) + std::string(body);
    body = framed;
  }
  try {
    kin::Json obj = kin::apiserver::DecodeKubeProtobuf(body);
    (void)obj.dump(-1, ' ', false, kin::Json::error_handler_t::replace);
  } catch (const kin::Error&) {
  }
  return 0;
}
