#include "testing/e2e_support.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "base/error.h"
#include "testing/kernel_fixture.h"

namespace kin::testing {

std::string KinBinary() {
  if (const char* p = std::getenv("KIN_BINARY")) return p;
  return KIN_BINARY_PATH;
}

std::string UniqueClusterName(char letter) {
  std::random_device rd;
  char name[16];
  std::snprintf(name, sizeof name, "%c%05x", letter, rd() & 0xfffff);
  return name;
}

std::string KubectlBinary(const std::string& version) {
  CommandResult r =
      RunCommand({"sh", "-c", "dirname \"$(readlink -f \"$(command -v kubectl)\")\""});
  std::string dir = r.out;
  while (!dir.empty() && dir.back() == '\n') dir.pop_back();
  return dir + "/kubectl." + version;
}

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "kin-test-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) throw ErrnoError(errno, "mkdtemp");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

SuiteCluster::SuiteCluster(char letter, std::vector<std::string> extra_create_flags)
    : name_(UniqueClusterName(letter)) {
  std::filesystem::create_directories(StateRoot());
  std::vector<std::string> argv = {KinBinary(),  "cluster",      "create",    "--name",
                                   name_,        "--state-root", StateRoot(), "--kubeconfig",
                                   Kubeconfig()};
  argv.insert(argv.end(), extra_create_flags.begin(), extra_create_flags.end());
  CommandResult r = RunCommand(argv, std::chrono::seconds(90));
  if (!r.status.success()) {
    // How kin exited too: a create killed by a signal prints nothing itself.
    error_ = "cluster create failed (" + r.status.ToString() + "):\n" + r.out + r.err;
  }
}

SuiteCluster::~SuiteCluster() {
  RunCommand({KinBinary(), "cluster", "delete", "--name", name_, "--state-root", StateRoot(),
              "--kubeconfig", Kubeconfig()},
             std::chrono::seconds(60));
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path);
  out << content;
}

ServeProcess::ServeProcess(std::vector<std::string> extra_args) {
  SpawnOptions o;
  o.argv = {KinBinary(),   "serve",           "--port",      "0",
            "--port-file", dir_.File("port"), "--state-dir", dir_.File("state")};
  for (auto& a : extra_args) o.argv.push_back(a);
  o.stdout_file = dir_.File("serve.log");
  o.stderr_to_stdout = true;
  o.stdin_mode = SpawnOptions::Stdio::kNull;
  proc_ = ChildProcess::Spawn(o);
  bool up = Eventually(
      [&] {
        if (!proc_.running() || proc_.WaitFor(std::chrono::milliseconds(0))) return true;
        return !ReadFile(dir_.File("port")).empty();
      },
      std::chrono::seconds(20));
  std::string p = ReadFile(dir_.File("port"));
  if (!up || p.empty()) {
    throw Error::Unavailable("kin serve did not start; its log:\n" + Log());
  }
  port_ = std::stoi(p);
}

ServeProcess::~ServeProcess() {
  if (proc_.running()) proc_.Stop(std::chrono::seconds(10));
}

}  // namespace kin::testing
