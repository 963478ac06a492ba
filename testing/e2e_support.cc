#include "testing/e2e_support.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "base/error.h"
#include "base/strings.h"
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
  std::vector<std::string> argv = {KinBinary(),    "cluster",   "create",       "--name",    name_,
                                   "--state-root", StateRoot(), "--kubeconfig", Kubeconfig()};
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

KubectlRunner::KubectlRunner(const std::string& version, std::string kubeconfig,
                             std::chrono::seconds timeout)
    : binary_(KubectlBinary(version)), kubeconfig_(std::move(kubeconfig)), timeout_(timeout) {}

bool KubectlRunner::installed() const { return ::access(binary_.c_str(), X_OK) == 0; }

std::vector<std::string> KubectlRunner::Argv(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {binary_, "--kubeconfig", kubeconfig_, "--cache-dir",
                                   dir_.path()};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

CommandResult KubectlRunner::Run(const std::vector<std::string>& args,
                                 const std::string& input) const {
  return RunCommand(Argv(args), timeout_, input);
}

std::string KubectlRunner::Ok(const std::vector<std::string>& args,
                              const std::string& input) const {
  CommandResult r = Run(args, input);
  std::string cmd;
  for (const auto& a : args) cmd += a + " ";
  EXPECT_TRUE(r.status.success()) << "kubectl " << cmd << "\n" << r.out << r.err;
  return r.out;
}

void KubectlRunner::ReadServerAndCa() {
  if (!server_.empty()) return;
  server_ = Ok({"config", "view", "--raw", "-o", "jsonpath={.clusters[0].cluster.server}"});
  std::string ca_b64 = Ok({"config", "view", "--raw", "-o",
                           "jsonpath={.clusters[0].cluster.certificate-authority-data}"});
  auto ca = Base64Decode(ca_b64);
  EXPECT_TRUE(ca) << "certificate-authority-data: " << ca_b64;
  ca_pem_ = ca.value_or("");
  WriteFile(dir_.File("ca.crt"), ca_pem_);
  WriteFile(dir_.File("empty-kubeconfig"), "apiVersion: v1\nkind: Config\n");
}

const std::string& KubectlRunner::server() {
  ReadServerAndCa();
  return server_;
}

const std::string& KubectlRunner::ca_pem() {
  ReadServerAndCa();
  return ca_pem_;
}

CommandResult KubectlRunner::RunWithToken(const std::string& token,
                                          const std::vector<std::string>& args) {
  ReadServerAndCa();
  std::vector<std::string> argv = {
      binary_,    "--kubeconfig", dir_.File("empty-kubeconfig"), "--cache-dir",       dir_.path(),
      "--server", server_,        "--certificate-authority",     dir_.File("ca.crt"), "--token",
      token};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, timeout_);
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
