// Test support for tests that touch the kernel or run the real binary.
//
// KernelTest gives each test a unique name prefix (e.g. "kt4f2a1"), short
// enough that prefix + 8 characters still fits an interface name (15). At
// TearDown — also when the test failed — it removes every kernel object
// whose name starts with the prefix: processes it was handed, mounts,
// network namespaces (/run/netns), links and nft tables in the host
// namespace, cgroups; then it asserts that nothing with the prefix is left.
//
// Root is required. Without root the test is skipped, except in CI
// (CI=true), where a kernel test must never skip: it fails instead.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "base/process.h"

namespace kin::testing {

// A prefix unique to this process and call: "kt" + 5 hex digits.
std::string UniquePrefix(const std::string& lead = "kt");

// Every kernel object on the machine whose name starts with `prefix`, one
// description per line ("netns kt1a2b3-x", "link kt1a2b3-v0", ...).
std::vector<std::string> KernelObjectsWithPrefix(const std::string& prefix);
// Removes them all (best effort, in dependency order).
void RemoveKernelObjectsWithPrefix(const std::string& prefix);

// True when kernel tests can run; in CI without root it fails the test.
bool RequireRoot();

class KernelTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  const std::string& prefix() const { return prefix_; }
  // prefix + suffix; fails the test when the result would not fit `max_len`.
  std::string Name(const std::string& suffix, size_t max_len = 15) const;
  // The process is killed and reaped at TearDown if still running.
  void Track(ChildProcess p) { processes_.push_back(std::move(p)); }

 private:
  std::string prefix_;
  std::vector<ChildProcess> processes_;
};

// Polls `cond` every few milliseconds until it is true or `timeout` passes.
bool Eventually(const std::function<bool()>& cond,
                std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace kin::testing
