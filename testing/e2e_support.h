// Support for end-to-end tests that drive the real `kin` binary.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "base/process.h"

namespace kin::testing {

// The path of the built `kin` binary (KIN_BINARY overrides it).
std::string KinBinary();

// A fixed kubectl version ("1.33") beside the file the `kubectl` on PATH
// links to (that one is a dispatcher that may switch versions).
std::string KubectlBinary(const std::string& version);

// A cluster name of `letter` and five random hex digits: e2e suites that
// run side by side (ctest -j) must not share namespace and link names.
std::string UniqueClusterName(char letter);

// A temporary directory removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// One cluster that every test of a suite shares: `kin cluster create` in
// the constructor (call it from SetUpTestSuite), `kin cluster delete` in
// the destructor (TearDownTestSuite). A failed create is kept in error()
// for each test's SetUp to report: a failure in SetUpTestSuite alone would
// read as "skipped".
class SuiteCluster {
 public:
  // `extra_create_flags` are added to `kin cluster create`.
  explicit SuiteCluster(char letter, std::vector<std::string> extra_create_flags = {});
  ~SuiteCluster();
  SuiteCluster(const SuiteCluster&) = delete;
  SuiteCluster& operator=(const SuiteCluster&) = delete;
  const std::string& name() const { return name_; }
  const std::string& error() const { return error_; }  // "" when it was made
  std::string Kubeconfig() const { return dir_.File("kubeconfig"); }
  std::string StateRoot() const { return dir_.File("root"); }

 private:
  TempDir dir_;
  std::string name_, error_;
};

// kubectl of one fixed version against one kubeconfig, with a discovery
// cache of its own (kubectl keeps discovery for hours), as the e2e suites
// run it. Check installed() in SetUp: a missing binary fails in CI
// (CI=true) and skips elsewhere.
class KubectlRunner {
 public:
  KubectlRunner(const std::string& version, std::string kubeconfig,
                std::chrono::seconds timeout = std::chrono::seconds(60));
  bool installed() const;
  const std::string& binary() const { return binary_; }
  // The cache directory, also room for a test's own files.
  const TempDir& dir() const { return dir_; }
  // The binary, --kubeconfig, --cache-dir, then `args`.
  std::vector<std::string> Argv(const std::vector<std::string>& args) const;
  CommandResult Run(const std::vector<std::string>& args, const std::string& input = "") const;
  // Runs and expects success (a failure names the command and its output);
  // returns stdout.
  std::string Ok(const std::vector<std::string>& args, const std::string& input = "") const;
  // kubectl as the bearer of `token` only: the kubeconfig's server and CA,
  // no client certificate (read from the kubeconfig on first use).
  CommandResult RunWithToken(const std::string& token, const std::vector<std::string>& args);
  // The kubeconfig's server URL and CA (PEM).
  const std::string& server();
  const std::string& ca_pem();

 private:
  void ReadServerAndCa();
  std::string binary_, kubeconfig_;
  std::chrono::seconds timeout_;
  TempDir dir_;
  std::string server_, ca_pem_;
};

std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& content);

// A `kin serve` started on a free loopback port with its own state dir;
// stopped (SIGTERM, then SIGKILL) when this object dies.
class ServeProcess {
 public:
  explicit ServeProcess(std::vector<std::string> extra_args = {});
  ~ServeProcess();
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& state_dir() const { return dir_.path(); }
  ChildProcess& process() { return proc_; }
  std::string Log() const { return ReadFile(dir_.File("serve.log")); }

 private:
  TempDir dir_;
  ChildProcess proc_;
  int port_ = 0;
};

}  // namespace kin::testing
