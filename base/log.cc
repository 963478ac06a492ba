#include "base/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include "base/error.h"

namespace kin::log {

Level ParseLevel(std::string_view name) {
  if (name == "trace") return Level::kTrace;
  if (name == "debug") return Level::kDebug;
  if (name == "info") return Level::kInfo;
  if (name == "warn" || name == "warning") return Level::kWarn;
  if (name == "error") return Level::kError;
  if (name == "off") return Level::kOff;
  throw kin::Error::BadRequest("unknown log level \"" + std::string(name) +
                               "\" (want trace, debug, info, warn, error or off)");
}

static spdlog::level::level_enum ToSpd(Level l) {
  switch (l) {
    case Level::kTrace:
      return spdlog::level::trace;
    case Level::kDebug:
      return spdlog::level::debug;
    case Level::kInfo:
      return spdlog::level::info;
    case Level::kWarn:
      return spdlog::level::warn;
    case Level::kError:
      return spdlog::level::err;
    case Level::kOff:
      return spdlog::level::off;
  }
  return spdlog::level::info;
}

void SetLevel(Level level) { spdlog::set_level(ToSpd(level)); }

Level GetLevel() {
  switch (spdlog::get_level()) {
    case spdlog::level::trace:
      return Level::kTrace;
    case spdlog::level::debug:
      return Level::kDebug;
    case spdlog::level::info:
      return Level::kInfo;
    case spdlog::level::warn:
      return Level::kWarn;
    case spdlog::level::err:
      return Level::kError;
    default:
      return Level::kOff;
  }
}

void LogToFile(const std::string& path) {
  auto level = spdlog::get_level();
  auto logger = spdlog::basic_logger_mt("kin-file", path);
  logger->set_level(level);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

}  // namespace kin::log

#include <spdlog/sinks/stdout_color_sinks.h>

namespace kin::log {
void UseStderr() {
  auto level = spdlog::get_level();
  auto logger = spdlog::stderr_color_mt("kin");
  logger->set_pattern("%H:%M:%S.%e %^%L%$ %v");
  logger->set_level(level);
  spdlog::set_default_logger(logger);
}
}  // namespace kin::log
