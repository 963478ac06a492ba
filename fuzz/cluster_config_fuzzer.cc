// Fuzzes `kin cluster create --config`'s parser (cmd/cluster_config.h):
// fuzzed YAML text through BuildClusterConfig, and a valid result through
// the state directory's JSON form and back. Refusals are kin::Error
// (BadRequest for YAML syntax, Invalid for bad fields).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "base/error.h"
#include "cmd/cluster_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    kin::cmd::ClusterConfig config = kin::cmd::BuildClusterConfig("", std::nullopt, text, "fuzz");
    (void)kin::cmd::ClusterConfig::FromJson(config.ToJson());
    (void)config.CrashBackoff();
    (void)config.ContainerLogMaxBytes();
    (void)config.NodeMonitorGracePeriod();
  } catch (const kin::Error&) {
  }
  return 0;
}
