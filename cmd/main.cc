// kin: Kubernetes IN namespaces. The CLI layer only turns flags into calls
// of library functions (as kind's cmd/ does).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

#include "base/error.h"
#include "base/log.h"
#include "base/version.h"
#include "cmd/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"kin: Kubernetes IN namespaces — a whole cluster on one Linux box", "kin"};
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->envname("KIN_LOG_LEVEL");

  auto* version = app.add_subcommand("version", "Print kin's version");
  version->callback([] {
    std::printf("kin version %s (Kubernetes API %s)\n", kin::kVersion, kin::kKubeVersion);
  });

  kin::cmd::ServeFlags serve_flags;
  auto* serve = app.add_subcommand("serve", "Run the cluster's control process in the foreground");
  serve->add_option("--address", serve_flags.address, "address to listen on")
      ->capture_default_str();
  serve->add_option("--port", serve_flags.port, "port to listen on (0: any free port)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  serve->add_option("--port-file", serve_flags.port_file,
                    "write the port listened on to this file once serving");
  serve->add_option("--state-dir", serve_flags.state_dir, "directory for the cluster's state")
      ->capture_default_str();
  serve->add_option("--watch-history", serve_flags.watch_history,
                    "changes kept for watches to resume from (older ones are compacted)")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000000));
  serve->add_option("--service-cidr", serve_flags.service_cidr,
                    "range Service ClusterIPs are allocated from")
      ->capture_default_str();

  int rc = 0;
  try {
    // CLI11 reports a mistyped command only as "A subcommand is required";
    // name it instead.
    bool known = false;
    for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
      if (argc > 1 && sub->check_name(argv[1])) known = true;
    }
    if (argc > 1 && argv[1][0] != '-' && !known) {
      std::fprintf(stderr, "kin: unknown command \"%s\" (see kin --help)\n", argv[1]);
      return 1;
    }
    app.parse(argc, argv);
    kin::log::SetLevel(kin::log::ParseLevel(log_level));
    kin::log::UseStderr();
    if (serve->parsed()) rc = kin::cmd::RunServe(serve_flags);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const kin::Error& e) {
    std::fprintf(stderr, "kin: %s\n", e.message().c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kin: %s\n", e.what());
    return 1;
  }
  return rc;
}
