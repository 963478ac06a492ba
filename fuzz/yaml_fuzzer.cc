// Fuzzes the YAML -> JSON codec (base/yaml.h) as kubectl apply bodies,
// `kin apply -f` and cluster configs reach it: any bytes as a YAML stream,
// then the decoded documents back to YAML and through the reader again.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/yaml.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    std::vector<kin::Json> docs = kin::ParseYamlDocuments(text);
    // What kin prints must read back (kubectl get -o yaml | kin apply -f -).
    (void)kin::ParseYamlDocuments(kin::ToYamlDocuments(docs));
  } catch (const kin::Error&) {
    // The documented refusal of malformed YAML.
  }
  try {
    (void)kin::ParseJsonOrYaml(text);
  } catch (const kin::Error&) {
    // JSON errors too are kin::Error ("json: ..."): a Json::exception here
    // would reach the API server's handler as a 500.
  }
  return 0;
}
