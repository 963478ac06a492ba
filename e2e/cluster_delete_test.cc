// e2e: `kin cluster delete` removes what is named after the cluster
// whatever happened before it, and names what it could not remove (issue
// 16): here cgroups that no pod's directory leads to (a pod whose state was
// lost, a launch its shim server died in). One holding a process is killed
// and removed; one that cannot be removed (a child cgroup inside keeps
// rmdir busy) is named in the error, and delete still removes the rest.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "base/process.h"
#include "runtime/cgroup.h"
#include "testing/e2e_cluster.h"
#include "testing/kernel_fixture.h"

namespace kin {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::E2eCluster;

// A cgroup made as the shim server makes a container's (under the shared
// "kin" parent, every controller's), with nothing in this test owning it.
std::vector<std::string> MakeCgroup(const std::string& name) {
  std::vector<std::string> dirs;
  std::string v2 = FindCgroupV2WithControllers();
  std::vector<std::string> bases = v2.empty() ? std::vector<std::string>{
                                                    "/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpu",
                                                    "/sys/fs/cgroup/pids"}
                                              : std::vector<std::string>{v2};
  for (const auto& b : bases) {
    ::mkdir((b + "/kin").c_str(), 0755);
    std::string dir = b + "/kin/" + name;
    EXPECT_EQ(::mkdir(dir.c_str(), 0755), 0) << dir;
    dirs.push_back(dir);
  }
  return dirs;
}

TEST(ClusterDeleteE2E, DeleteRemovesTheClustersLeftoverCgroupsAndNamesThoseItCannot) {
  if (!testing::RequireRoot()) GTEST_SKIP() << "needs root";
  E2eCluster c('d');
  ASSERT_TRUE(c.Create()) << c.last_output();
  const std::string ghost = c.Prefix() + "deadbeef-ghost";
  const std::string stuck = c.Prefix() + "feedf00d-stuck";
  std::vector<std::string> ghost_dirs = MakeCgroup(ghost);
  std::vector<std::string> stuck_dirs = MakeCgroup(stuck);
  ASSERT_EQ(::mkdir((stuck_dirs[0] + "/inner").c_str(), 0755), 0);
  SpawnOptions so;
  so.argv = {"sleep", "1000"};
  ChildProcess sleeper = ChildProcess::Spawn(so);
  for (const auto& d : ghost_dirs) {
    std::ofstream(d + "/cgroup.procs") << sleeper.pid();
  }
  c.KillServe();

  // The first delete removes everything else and the ghost (its process
  // killed), and fails naming the stuck cgroup.
  EXPECT_FALSE(c.Delete());
  EXPECT_NE(c.last_output().find("not removed completely"), std::string::npos) << c.last_output();
  EXPECT_NE(c.last_output().find("cgroup " + stuck + ": "), std::string::npos) << c.last_output();
  EXPECT_NE(c.last_output().find("/inner inside it keeps it"), std::string::npos)
      << c.last_output();
  EXPECT_EQ(c.last_output().find(ghost), std::string::npos) << c.last_output();
  auto st = sleeper.WaitFor(10s);
  ASSERT_TRUE(st.has_value()) << "the process in " << ghost << " still runs";
  EXPECT_EQ(st->signal, SIGKILL);
  for (const auto& d : ghost_dirs) EXPECT_FALSE(fs::exists(d)) << d;
  EXPECT_EQ(CgroupsWithPrefix(c.Prefix()), std::vector<std::string>{stuck});
  EXPECT_FALSE(fs::exists(c.StateDir()));

  // Once what kept it is gone, delete removes it and succeeds.
  ::rmdir((stuck_dirs[0] + "/inner").c_str());
  EXPECT_TRUE(c.Delete()) << c.last_output();
  EXPECT_EQ(CgroupsWithPrefix(c.Prefix()), std::vector<std::string>{});
  EXPECT_EQ(c.Leftovers(), std::vector<std::string>{});
}

}  // namespace
}  // namespace kin
