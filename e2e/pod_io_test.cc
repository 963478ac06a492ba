// e2e: talking to running pods with real kubectl (1.27, 1.30, 1.33) and with
// kin's own CLI: logs (-c, --tail, --previous, -f), exec (exit codes, -i
// stdin, -it with a TTY under `script`, a missing command), port-forward (a
// request and a 10 MiB transfer intact).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <regex>

#include "base/file.h"
#include "base/http_client.h"
#include "base/process.h"
#include "base/yaml.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin {
namespace {

namespace fs = std::filesystem;
using testing::Eventually;
using testing::KinBinary;
using testing::TempDir;

// The pod every test talks to: a logger that counts, a busybox httpd serving
// a 10 MiB file, and agnhost netexec.
const char* kPod = R"(apiVersion: v1
kind: Pod
metadata: {name: talk}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: logger
    image: busybox
    command: [sh, -c, 'i=0; while true; do echo line-$i; i=$((i+1)); sleep 0.2; done']
  - name: files
    image: busybox
    command: [sh, -c, 'mkdir -p /www && head -c 10485760 /dev/urandom > /www/big && sha256sum /www/big > /www/big.sha && httpd -f -p 9000 -h /www']
  - name: web
    image: registry.k8s.io/e2e-test-images/agnhost:2.52
    args: [netexec, --http-port=8080]
)";

class PodIoE2E : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    big_sha_.clear();
    if (::geteuid() != 0) {
      if (std::getenv("CI")) setup_error_ = "e2e pod I/O tests need root (CI=true)";
      return;
    }
    cluster_ = new testing::SuiteCluster('i', {"--crash-backoff", "1s"});
    if (!cluster_->error().empty()) {
      setup_error_ = cluster_->error();
      return;
    }
    CommandResult a = RunCommand({testing::KubectlBinary("1.33"), "--kubeconfig",
                                  cluster_->Kubeconfig(), "apply", "-f", "-"},
                                 std::chrono::seconds(60), kPod);
    if (!a.status.success()) setup_error_ = "apply failed: " + a.err;
    // Ready, the 10 MiB file written, and the logger past the few lines the
    // tests read back (--tail 3 must find three).
    auto kubectl = [](std::vector<std::string> args) {
      std::vector<std::string> argv = {testing::KubectlBinary("1.33"), "--kubeconfig",
                                       cluster_->Kubeconfig()};
      argv.insert(argv.end(), args.begin(), args.end());
      return RunCommand(argv);
    };
    bool ok = Eventually(
        [&] {
          if (big_sha_.empty()) {
            CommandResult g = kubectl({"exec", "talk", "-c", "files", "--", "cat", "/www/big.sha"});
            if (g.status.success() && g.out.size() > 64) big_sha_ = g.out.substr(0, 64);
            if (big_sha_.empty()) return false;
          }
          std::string logs = kubectl({"logs", "talk", "-c", "logger"}).out;
          return std::count(logs.begin(), logs.end(), '\n') >= 5;
        },
        std::chrono::seconds(60));
    if (!ok)
      setup_error_ = "pod talk never became ready for exec, or its logger never logged 5 lines";
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override {
    if (cluster_ == nullptr) {
      if (!setup_error_.empty()) FAIL() << setup_error_;
      GTEST_SKIP() << "needs root";
    }
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
    kubectl_ = testing::KubectlBinary(GetParam());
    if (::access(kubectl_.c_str(), X_OK) != 0) {
      if (std::getenv("CI")) FAIL() << kubectl_ << " is missing";
      GTEST_SKIP() << kubectl_ << " is not installed";
    }
    cache_ = std::make_unique<TempDir>();
  }
  std::vector<std::string> KubectlArgv(std::vector<std::string> args) {
    std::vector<std::string> argv = {kubectl_, "--kubeconfig", cluster_->Kubeconfig(),
                                     "--cache-dir", cache_->path()};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
  CommandResult Kubectl(std::vector<std::string> args, const std::string& input = "") {
    return RunCommand(KubectlArgv(std::move(args)), std::chrono::seconds(60), input);
  }
  std::vector<std::string> KinArgv(std::vector<std::string> args) {
    // kin SUBCOMMAND --kubeconfig K ARGS... (flags before any `--`).
    std::vector<std::string> argv = {KinBinary(), args[0], "--kubeconfig",
                                     cluster_->Kubeconfig()};
    argv.insert(argv.end(), args.begin() + 1, args.end());
    return argv;
  }
  // Runs a port-forward (kubectl or kin) to `remote`, returns the local port
  // it prints, and keeps the process in `pf`.
  int StartPortForward(const std::vector<std::string>& argv, ChildProcess& pf,
                       const std::string& out_file, size_t ports = 1) {
    SpawnOptions so;
    so.argv = argv;
    so.stdout_file = out_file;
    so.stderr_to_stdout = true;
    so.stdin_mode = SpawnOptions::Stdio::kNull;
    pf = ChildProcess::Spawn(so);
    std::smatch m;
    std::string out;
    static const std::regex kForward(R"(Forwarding from 127\.0\.0\.1:(\d+))");
    EXPECT_TRUE(Eventually(
        [&] {
          out = ReadFileIfExists(out_file).value_or("");
          size_t lines = 0;
          for (size_t at = 0;
               (at = out.find("Forwarding from 127.0.0.1:", at)) != std::string::npos; ++at) {
            ++lines;
          }
          return lines >= ports && std::regex_search(out, m, kForward);
        },
        std::chrono::seconds(20)))
        << out;
    return m.empty() ? 0 : std::stoi(m[1]);
  }
  static std::string Sha256(const std::string& data) {
    TempDir t;
    WriteFileAtomic(t.File("d"), data, 0644, false);
    std::string out = RunCommand({"sha256sum", t.File("d")}).out;
    return out.substr(0, 64);
  }
  // The 10 MiB file and a small request through a port-forward.
  void CheckPortForward(int files_port, int web_port) {
    http::ClientOptions o;
    o.base_url = "http://127.0.0.1:" + std::to_string(web_port);
    o.timeout_ms = 20000;
    EXPECT_EQ(http::HttpClient(o).Get("/hostname").body, "talk");
    o.base_url = "http://127.0.0.1:" + std::to_string(files_port);
    std::string big = http::HttpClient(o).Get("/big").body;
    EXPECT_EQ(big.size(), 10u << 20);
    EXPECT_EQ(Sha256(big), big_sha_);
  }

  static testing::SuiteCluster* cluster_;
  static std::string setup_error_;
  static std::string big_sha_;  // sha256 of /www/big, read once the pod wrote it
  std::string kubectl_;
  std::unique_ptr<TempDir> cache_;
};

testing::SuiteCluster* PodIoE2E::cluster_ = nullptr;
std::string PodIoE2E::setup_error_;
std::string PodIoE2E::big_sha_;

TEST_P(PodIoE2E, KubectlLogs) {
  CommandResult r = Kubectl({"logs", "talk", "-c", "logger"});
  ASSERT_TRUE(r.status.success()) << r.err;
  EXPECT_EQ(r.out.rfind("line-0\nline-1\n", 0), 0u) << r.out;
  r = Kubectl({"logs", "talk", "-c", "logger", "--tail", "2"});
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 2) << r.out;
  // Without -c kubectl picks the first container itself.
  r = Kubectl({"logs", "talk", "--tail", "1"});
  EXPECT_EQ(r.out.rfind("line-", 0), 0u) << r.out << r.err;
  r = Kubectl({"logs", "talk", "-c", "nope"});
  EXPECT_FALSE(r.status.success());
  EXPECT_NE(r.err.find("nope"), std::string::npos) << r.err;
  r = Kubectl({"logs", "nope"});
  EXPECT_NE(r.err.find("pods \"nope\" not found"), std::string::npos) << r.err;
  // -f keeps streaming new lines; it ends when the client goes.
  SpawnOptions so;
  so.argv = KubectlArgv({"logs", "-f", "talk", "-c", "logger", "--tail", "1"});
  so.stdout_file = cache_->File("follow");
  so.stdin_mode = SpawnOptions::Stdio::kNull;
  ChildProcess f = ChildProcess::Spawn(so);
  EXPECT_TRUE(Eventually(
      [&] {
        std::string out = ReadFileIfExists(cache_->File("follow")).value_or("");
        return std::count(out.begin(), out.end(), '\n') >= 4;
      },
      std::chrono::seconds(20)));
  f.Stop(std::chrono::seconds(2));
}

TEST_P(PodIoE2E, KubectlExec) {
  CommandResult r = Kubectl({"exec", "talk", "-c", "logger", "--", "sh", "-c", "exit 3"});
  EXPECT_EQ(r.status.code, 3) << r.err;
  r = Kubectl({"exec", "talk", "-c", "logger", "--", "sh", "-c", "echo out; echo err >&2"});
  EXPECT_TRUE(r.status.success()) << r.err;
  EXPECT_EQ(r.out, "out\n");
  EXPECT_NE(r.err.find("err\n"), std::string::npos);
  // The exec'd process is in the container: its hostname is the pod's.
  EXPECT_EQ(Kubectl({"exec", "talk", "-c", "logger", "--", "hostname"}).out, "talk\n");
  r = Kubectl({"exec", "-i", "talk", "-c", "logger", "--", "cat"}, "hello through stdin\n");
  EXPECT_EQ(r.out, "hello through stdin\n") << r.err;
  // A TTY: under script(1), which gives kubectl a terminal.
  std::string cmd;
  for (const auto& a :
       KubectlArgv({"exec", "-it", "talk", "-c", "logger", "--", "sh", "-c", "tty; echo done"})) {
    cmd += "'" + a + "' ";
  }
  r = RunCommand({"script", "-qec", cmd, "/dev/null"}, std::chrono::seconds(60));
  EXPECT_NE(r.out.find("/dev/pts/"), std::string::npos) << r.out << r.err;
  EXPECT_NE(r.out.find("done"), std::string::npos) << r.out;
  r = Kubectl({"exec", "talk", "-c", "logger", "--", "no-such-command"});
  EXPECT_TRUE(r.status.code == 126 || r.status.code == 127) << r.status.code << r.err;
  r = Kubectl({"exec", "talk", "-c", "nope", "--", "true"});
  EXPECT_FALSE(r.status.success());
  EXPECT_NE(r.err.find("nope"), std::string::npos) << r.err;
}

TEST_P(PodIoE2E, KubectlPortForward) {
  ChildProcess pf;
  int port = StartPortForward(KubectlArgv({"port-forward", "pod/talk", ":9000", ":8080"}), pf,
                              cache_->File("pf"), 2);
  ASSERT_GT(port, 0);
  std::string out = ReadFileIfExists(cache_->File("pf")).value_or("");
  std::smatch m;
  static const std::regex kWeb(R"(Forwarding from 127\.0\.0\.1:(\d+) -> 8080)");
  ASSERT_TRUE(std::regex_search(out, m, kWeb)) << out;
  CheckPortForward(port, std::stoi(m[1]));
  pf.Stop(std::chrono::seconds(2));
}

// kin's own CLI (kubectl only checks the result); one instance, not per version.
class KinPodIoE2E : public PodIoE2E {};

TEST_P(KinPodIoE2E, LogsExecAndPortForward) {
  CommandResult r = RunCommand(KinArgv({"logs", "talk", "-c", "logger", "--tail", "3"}));
  EXPECT_TRUE(r.status.success()) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 3) << r.out;
  r = RunCommand(KinArgv({"exec", "talk", "-c", "logger", "--", "sh", "-c", "exit 3"}));
  EXPECT_EQ(r.status.code, 3) << r.err;
  r = RunCommand(KinArgv({"exec", "-i", "talk", "-c", "logger", "--", "cat"}),
                 std::chrono::seconds(30), "kin stdin\n");
  EXPECT_EQ(r.out, "kin stdin\n") << r.err;
  ChildProcess pf;
  int port = StartPortForward(KinArgv({"port-forward", "talk", ":9000"}), pf, cache_->File("kpf"));
  ASSERT_GT(port, 0);
  http::ClientOptions o;
  o.base_url = "http://127.0.0.1:" + std::to_string(port);
  o.timeout_ms = 20000;
  std::string big = http::HttpClient(o).Get("/big").body;
  EXPECT_EQ(Sha256(big), big_sha_);
  pf.Stop(std::chrono::seconds(2));
}

INSTANTIATE_TEST_SUITE_P(Versions, PodIoE2E, ::testing::Values("1.27", "1.30", "1.33"),
                         [](const auto& info) {
                           std::string s = info.param;
                           s.replace(1, 1, "_");
                           return "kubectl_" + s;
                         });
INSTANTIATE_TEST_SUITE_P(Kin, KinPodIoE2E, ::testing::Values("1.33"));

}  // namespace
}  // namespace kin
