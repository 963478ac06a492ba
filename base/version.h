// kin's own version and the Kubernetes version it emulates.
#pragma once

namespace kin {
inline constexpr const char* kVersion = "0.1.0";
// The Kubernetes release whose API kin serves (reported by /version).
inline constexpr const char* kKubeVersion = "v1.31.0";
inline constexpr const char* kKubeMajor = "1";
inline constexpr const char* kKubeMinor = "31";
}  // namespace kin
