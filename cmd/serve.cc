#include <signal.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "apiserver/apiserver.h"
#include "base/error.h"
#include "base/file.h"
#include "base/log.h"
#include "base/version.h"
#include "client/quantity.h"
#include "cmd/cluster_runtime.h"
#include "cmd/commands.h"

namespace kin::cmd {

std::chrono::seconds ParseDuration(const std::string& text, const std::string& flag) {
  auto ms = ParseDurationMs(text, flag);
  return std::chrono::seconds((ms.count() + 999) / 1000);
}

std::chrono::milliseconds ParseDurationMs(const std::string& text, const std::string& flag) {
  // Go's time.ParseDuration subset: sequences of <number><unit>, unit h|m|s|ms.
  double total_ms = 0;
  size_t i = 0;
  auto bad = [&] {
    return Error::BadRequest("invalid value \"" + text + "\" for " + flag +
                             ": want a duration such as 90s, 2m or 1m30s");
  };
  if (text.empty()) throw bad();
  while (i < text.size()) {
    size_t j = i;
    while (j < text.size() && (isdigit(static_cast<unsigned char>(text[j])) || text[j] == '.')) ++j;
    if (j == i) throw bad();
    double v = std::stod(text.substr(i, j - i));
    size_t k = j;
    while (k < text.size() && isalpha(static_cast<unsigned char>(text[k]))) ++k;
    std::string unit = text.substr(j, k - j);
    if (unit == "h")
      total_ms += v * 3600000;
    else if (unit == "m")
      total_ms += v * 60000;
    else if (unit == "s")
      total_ms += v * 1000;
    else if (unit == "ms")
      total_ms += v;
    else
      throw bad();
    i = k;
  }
  return std::chrono::milliseconds(static_cast<long>(total_ms + 0.5));
}

int RunServe(const ServeFlags& flags) {
  // Block the stop signals before any thread starts, so every thread inherits
  // the mask and only sigwait() below sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  std::error_code ec;
  std::filesystem::create_directories(flags.state_dir, ec);
  if (ec) throw ErrnoError(ec.value(), "create state directory " + flags.state_dir);

  apiserver::Options opts;
  opts.host = flags.address;
  opts.port = flags.port;
  opts.state_dir = flags.state_dir;
  opts.registry.service_cidr = flags.service_cidr;
  opts.history_limit = static_cast<size_t>(flags.watch_history);
  if (!flags.pki_dir.empty()) {
    http::TlsServerOptions t;
    t.cert_file = flags.pki_dir + "/apiserver.crt";
    t.key_file = flags.pki_dir + "/apiserver.key";
    t.client_ca_file = flags.pki_dir + "/ca.crt";
    opts.tls = t;
  }
  opts.registry.api_advertise_ip = flags.address;
  apiserver::ApiServer server(opts);
  server.Start();
  log::Info("kin {} serving on {}:{} (state in {})", kVersion, flags.address, server.port(),
            flags.state_dir);
  if (!flags.port_file.empty()) {
    WriteFileAtomic(flags.port_file, std::to_string(server.port()), 0644, false);
  }

  std::unique_ptr<ClusterRuntime> nodes;
  if (!flags.cluster_config.empty()) {
    try {
      auto text = ReadFileIfExists(flags.cluster_config);
      if (!text) throw Error::NotFound("cluster config " + flags.cluster_config + " not found");
      ClusterRuntimeOptions ro;
      ro.config = ClusterConfig::FromJson(Json::parse(*text));
      ro.state_dir = flags.state_dir;
      ro.kin_binary = std::filesystem::read_symlink("/proc/self/exe").string();
      ro.crash_backoff = ParseDurationMs(flags.crash_backoff, "--crash-backoff");
      auto log_size = ParseQuantityValue(flags.container_log_max_size);
      if (!log_size || *log_size < 4096) {
        throw Error::BadRequest("invalid value \"" + flags.container_log_max_size +
                                "\" for --container-log-max-size: want a size of at least 4Ki, "
                                "such as 10Mi");
      }
      ro.log_max_bytes = *log_size;
      ro.log_max_files = flags.container_log_max_files;
      nodes = std::make_unique<ClusterRuntime>(server, ro);
      nodes->Start();
    } catch (const std::exception& e) {
      log::Error("starting the cluster's nodes failed: {}", e.what());
      nodes.reset();
      server.Stop();
      return 1;
    }
  }

  int sig = 0;
  sigwait(&stop_signals, &sig);
  log::Info("received {}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  // Pods keep running: the next `kin serve` re-adopts them.
  nodes.reset();
  server.Stop();
  log::Info("stopped");
  return 0;
}

}  // namespace kin::cmd
