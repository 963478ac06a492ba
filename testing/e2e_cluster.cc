#include "testing/e2e_cluster.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <cctype>
#include <filesystem>

#include "base/error.h"
#include "base/file.h"
#include "base/netns.h"
#include "testing/kernel_fixture.h"

namespace kin::testing {

namespace fs = std::filesystem;

E2eCluster::E2eCluster(char letter, std::string kubectl_version)
    : name_(UniqueClusterName(letter)), kubectl_(KubectlBinary(kubectl_version)) {
  fs::create_directories(dir_.File("root"));
}

E2eCluster::~E2eCluster() {
  // Whatever the test did, nothing of the cluster outlives it.
  if (fs::exists(StateDir())) Delete();
  // "kin-<name>": its namespaces, links and cgroups, and the host-access
  // link on the host, kin-<name> itself.
  RemoveKernelObjectsWithPrefix("kin-" + name_);
}

std::string E2eCluster::StateDir() const { return dir_.File("root") + "/" + name_; }

std::string E2eCluster::Log(size_t tail) const {
  std::string log = ReadFileIfExists(StateDir() + "/serve.log").value_or("");
  return log.size() > tail ? log.substr(log.size() - tail) : log;
}

bool E2eCluster::Create(const std::vector<std::string>& flags) {
  std::vector<std::string> args = {"cluster", "create", "--name", name_};
  args.insert(args.end(), flags.begin(), flags.end());
  CommandResult r = Kin(args);
  last_output_ = r.out + r.err;
  if (!r.status.success()) {
    last_output_ += "\n(" + r.status.ToString() + ")\nserve log:\n" + Log();
  }
  return r.status.success();
}

bool E2eCluster::Delete() {
  CommandResult r = Kin({"cluster", "delete", "--name", name_});
  last_output_ = r.out + r.err;
  return r.status.success();
}

CommandResult E2eCluster::Kin(std::vector<std::string> args) const {
  std::vector<std::string> argv = {KinBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.insert(argv.end(), {"--state-root", dir_.File("root")});
  // The cluster commands that write or remove kubeconfig entries.
  if (args.size() >= 2 && args[0] == "cluster" && args[1] != "list") {
    argv.insert(argv.end(), {"--kubeconfig", Kubeconfig()});
  }
  return RunCommand(argv, std::chrono::seconds(120));
}

CommandResult E2eCluster::Kubectl(std::vector<std::string> args, const std::string& input) const {
  std::vector<std::string> argv = {kubectl_, "--kubeconfig", Kubeconfig(), "--cache-dir",
                                   dir_.File("cache")};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, std::chrono::seconds(60), input);
}

std::string E2eCluster::Ok(std::vector<std::string> args, const std::string& input) const {
  CommandResult r = Kubectl(args, input);
  if (!r.status.success()) {
    std::string cmd;
    for (const auto& a : args) cmd += " " + a;
    ADD_FAILURE() << "kubectl" << cmd << " failed:\n" << r.out << r.err;
  }
  return r.out;
}

void E2eCluster::Apply(const std::string& yaml, const std::string& ns) const {
  std::vector<std::string> args = {"apply", "-f", "-"};
  if (!ns.empty()) args.insert(args.end(), {"-n", ns});
  Ok(args, yaml);
}

Json E2eCluster::GetJson(std::vector<std::string> args) const {
  args.insert(args.begin(), "get");
  args.insert(args.end(), {"-o", "json"});
  CommandResult r = Kubectl(args);
  if (!r.status.success()) return Json();
  try {
    return Json::parse(r.out);
  } catch (const Json::exception&) {
    return Json();
  }
}

bool E2eCluster::WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  return Eventually(cond, timeout);
}

std::set<std::string> E2eCluster::ReadyNodes() const {
  std::set<std::string> out;
  Json nodes = GetJson({"nodes"});
  if (nodes.is_null()) return out;
  for (const auto& n : nodes["items"]) {
    for (const auto& c : n["status"].value("conditions", Json::array())) {
      if (c["type"] == "Ready" && c["status"] == "True") out.insert(n["metadata"]["name"]);
    }
  }
  return out;
}

namespace {
bool IsReady(const Json& pod) {
  if (pod.is_null()) return false;
  for (const auto& c : pod["status"].value("conditions", Json::array())) {
    if (c["type"] == "Ready" && c["status"] == "True") return true;
  }
  return false;
}
}  // namespace

std::string E2eCluster::PodNetns(const Json& pod) const {
  if (!pod.is_object() || !pod.contains("metadata")) return "";
  std::string prefix = Prefix() + pod["metadata"].value("namespace", "") + "-" +
                       pod["metadata"].value("name", "") + "-";
  for (const auto& n : ListNamedNetns(prefix)) return n;
  return "";
}

Json E2eCluster::WaitPodReady(const std::string& pod, const std::string& ns,
                              std::chrono::milliseconds timeout) const {
  Json seen;
  Eventually(
      [&] {
        seen = GetJson({"pod", pod, "-n", ns});
        return IsReady(seen);
      },
      timeout);
  if (IsReady(seen)) return seen;
  ADD_FAILURE() << "pod " << ns << "/" << pod << " not Ready; last seen:\n"
                << seen.dump(2) << "\nserve log:\n"
                << Log();
  return Json();
}

int E2eCluster::ServePid() const {
  return std::atoi(ReadFileIfExists(StateDir() + "/serve.pid").value_or("0").c_str());
}

void E2eCluster::KillServe() const {
  int pid = ServePid();
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ASSERT_TRUE(Eventually([&] { return !ProcessAlive(pid); }, std::chrono::seconds(10)));
}

std::vector<std::string> E2eCluster::Leftovers() const {
  std::vector<std::string> out = KernelObjectsWithPrefix("kin-" + name_);
  std::string dir = StateDir();
  std::string mounts = ReadFileIfExists("/proc/self/mountinfo").value_or("");
  if (mounts.find(dir) != std::string::npos) out.push_back("mounts under " + dir);
  if (fs::exists(dir)) out.push_back("state directory " + dir);
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::string pid = e.path().filename().string();
    if (!std::isdigit(static_cast<unsigned char>(pid[0]))) continue;
    std::string cmd;
    try {
      cmd = ReadFileIfExists(e.path().string() + "/cmdline").value_or("");
    } catch (const Error&) {  // exited while we looked
    }
    if (cmd.find(dir) != std::string::npos) out.push_back("process " + pid);
  }
  return out;
}

}  // namespace kin::testing
