// E2eCluster: one kin cluster of an e2e test, made with the real binary and
// driven with the real kubectl, removed (with everything named after it)
// when the object dies, also when the test failed.
//
//   testing::E2eCluster c('x');                    // a unique name: kin-x1a2b3-...
//   ASSERT_TRUE(c.Create({"--nodes", "3"})) << c.last_output();
//   c.Apply(yaml);                                 // kubectl apply -f -
//   Json rs = c.GetJson({"replicaset", "web"});    // kubectl get ... -o json
//   c.WaitFor([&] { ... }, std::chrono::seconds(30));
//   EXPECT_EQ(c.Leftovers(), std::vector<std::string>{});  // after Delete()
//
// Thread-safety: one test thread.
#pragma once

#include <chrono>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "base/process.h"
#include "base/yaml.h"
#include "testing/e2e_support.h"

namespace kin::testing {

class E2eCluster {
 public:
  // `letter` starts the unique cluster name; `kubectl_version` picks the
  // fixed kubectl binary ("1.27", "1.30", "1.33").
  explicit E2eCluster(char letter, std::string kubectl_version = "1.33");
  ~E2eCluster();
  E2eCluster(const E2eCluster&) = delete;
  E2eCluster& operator=(const E2eCluster&) = delete;

  const std::string& name() const { return name_; }
  // "kin-<name>-": the prefix of its nodes, namespaces, links and cgroups.
  std::string Prefix() const { return "kin-" + name_ + "-"; }
  std::string NodeName(const std::string& role) const { return Prefix() + role; }
  std::string StateDir() const;
  std::string Kubeconfig() const { return dir_.File("kubeconfig"); }
  std::string File(const std::string& f) const { return dir_.File(f); }
  // `kin serve`'s log (its last `tail` bytes), for failure messages.
  std::string Log(size_t tail = 4000) const;

  // `kin cluster create --name NAME` with `flags`; true when it succeeded
  // (last_output() has what it printed).
  bool Create(const std::vector<std::string>& flags = {});
  bool Delete();
  // `kin ARGS --state-root ...` (and --kubeconfig for `kin cluster ...`).
  CommandResult Kin(std::vector<std::string> args) const;
  // kubectl with the cluster's kubeconfig and a cache dir of its own.
  CommandResult Kubectl(std::vector<std::string> args, const std::string& input = "") const;
  // kubectl that must succeed (a test failure naming the command otherwise);
  // its stdout.
  std::string Ok(std::vector<std::string> args, const std::string& input = "") const;
  // kubectl apply -f - of `yaml`, which must succeed.
  void Apply(const std::string& yaml, const std::string& ns = "") const;
  // `kubectl get ARGS -o json`, parsed; null when kubectl failed (not found).
  Json GetJson(std::vector<std::string> args) const;
  const std::string& last_output() const { return last_output_; }

  // Polls `cond` until it holds or `timeout` passes.
  static bool WaitFor(const std::function<bool()>& cond,
                      std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // Names of the nodes whose Ready condition is True.
  std::set<std::string> ReadyNodes() const;
  // Polls until the pod is Ready; the pod, or null (and a test failure).
  Json WaitPodReady(const std::string& pod, const std::string& ns = "default",
                    std::chrono::milliseconds timeout = std::chrono::seconds(40)) const;
  // The network namespace of a pod (kin-<c>-<ns>-<name>-<uid part>), ""
  // when it has none; and of a node ("worker2": kin-<c>-worker2).
  std::string PodNetns(const Json& pod) const;
  std::string NodeNetns(const std::string& role) const { return NodeName(role); }
  // The pid of the cluster's `kin serve`, and kill -9 of it (as a crash).
  int ServePid() const;
  void KillServe() const;

  // What of the cluster is left on the machine: kernel objects named after
  // it (netns, links, nft tables, mounts, cgroups, processes), mounts under
  // its state directory, processes that name that directory, and the
  // directory itself. Empty after a clean delete.
  std::vector<std::string> Leftovers() const;

 private:
  TempDir dir_;
  std::string name_;
  std::string kubectl_;
  mutable std::string last_output_;
};

}  // namespace kin::testing
