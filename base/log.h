// Logging with levels, for every module of kin.
//
// A thin layer over spdlog so that modules do not depend on its details:
//   kin::log::Info("node {} ready in {} ms", name, ms);
// The level comes from SetLevel() (the CLI's --v / KIN_LOG_LEVEL); output goes
// to stderr, or to a file after LogToFile(). Thread-safe.
#pragma once

#include <spdlog/spdlog.h>

#include <string>
#include <string_view>

namespace kin::log {

enum class Level { kTrace, kDebug, kInfo, kWarn, kError, kOff };

// Parses "trace|debug|info|warn|error|off"; throws kin::Error (BadRequest)
// naming the bad value.
Level ParseLevel(std::string_view name);
void SetLevel(Level level);
Level GetLevel();
// Sends all further log lines to `path` (appended), e.g. the cluster's log.
void LogToFile(const std::string& path);

template <typename... Args>
void Trace(spdlog::format_string_t<Args...> fmt, Args&&... args) {
  spdlog::trace(fmt, std::forward<Args>(args)...);
}
template <typename... Args>
void Debug(spdlog::format_string_t<Args...> fmt, Args&&... args) {
  spdlog::debug(fmt, std::forward<Args>(args)...);
}
template <typename... Args>
void Info(spdlog::format_string_t<Args...> fmt, Args&&... args) {
  spdlog::info(fmt, std::forward<Args>(args)...);
}
template <typename... Args>
void Warn(spdlog::format_string_t<Args...> fmt, Args&&... args) {
  spdlog::warn(fmt, std::forward<Args>(args)...);
}
template <typename... Args>
void Error(spdlog::format_string_t<Args...> fmt, Args&&... args) {
  spdlog::error(fmt, std::forward<Args>(args)...);
}

}  // namespace kin::log

namespace kin::log {
// Sends log lines to stderr with a short pattern (time, level, message).
void UseStderr();
}  // namespace kin::log
