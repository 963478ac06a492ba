#include <signal.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "apiserver/apiserver.h"
#include "base/error.h"
#include "base/log.h"
#include "base/version.h"
#include "cmd/commands.h"

namespace kin::cmd {

namespace {

// Writes `content` to `path` atomically (readers never see a partial file).
void WriteFileAtomic(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << content;
    if (!out) throw ErrnoError(errno, "write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw ErrnoError(errno, "rename " + tmp);
}

}  // namespace

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
  opts.registry.api_advertise_ip = flags.address;
  apiserver::ApiServer server(opts);
  server.Start();
  log::Info("kin {} serving on {}:{} (state in {})", kVersion, flags.address, server.port(),
            flags.state_dir);
  if (!flags.port_file.empty()) WriteFileAtomic(flags.port_file, std::to_string(server.port()));

  int sig = 0;
  sigwait(&stop_signals, &sig);
  log::Info("received {}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  server.Stop();
  log::Info("stopped");
  return 0;
}

}  // namespace kin::cmd
