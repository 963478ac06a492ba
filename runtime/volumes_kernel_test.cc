// Kernel tests for pod volumes: emptyDir medium Memory is a real tmpfs and
// TeardownPodVolumes removes it, also for a pod dir another object set up.
// The pod dir's path contains the fixture's prefix, so the fixture finds (and
// removes, then fails on) any mount left behind.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "base/error.h"
#include "runtime/volumes.h"
#include "testing/kernel_fixture.h"

namespace kin {
namespace {

namespace fs = std::filesystem;

class VolumesKernelTest : public testing::KernelTest {
 protected:
  void SetUp() override {
    KernelTest::SetUp();
    if (IsSkipped()) return;
    root_ = (fs::temp_directory_path() / prefix()).string();
    fs::create_directories(root_);
    pod_dir_ = root_ + "/pod";
  }
  void TearDown() override {
    // Mounts first (the fixture's own sweep is the safety net), then files.
    if (!root_.empty()) {
      try {
        TeardownPodVolumes(pod_dir_);
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
      }
    }
    KernelTest::TearDown();
    std::error_code ec;
    if (!root_.empty()) fs::remove_all(root_, ec);
  }

  static Json MemoryPod(const std::string& size_limit) {
    Json empty_dir = {{"medium", "Memory"}};
    if (!size_limit.empty()) empty_dir["sizeLimit"] = size_limit;
    return {{"metadata", {{"name", "p"}, {"namespace", "default"}, {"uid", "u1"}}},
            {"spec",
             {{"volumes", Json::array({{{"name", "mem"}, {"emptyDir", empty_dir}},
                                       {{"name", "disk"}, {"emptyDir", Json::object()}}})},
              {"containers", Json::array({{{"name", "app"}}})}}}};
  }

  static bool IsTmpfs(const std::string& path) {
    struct statfs s;
    return ::statfs(path.c_str(), &s) == 0 && s.f_type == TMPFS_MAGIC;
  }

  std::string root_, pod_dir_;
};

TEST_F(VolumesKernelTest, MemoryEmptyDirIsSizedTmpfs) {
  auto pv = PodVolumes::Setup(MemoryPod("8Mi"), pod_dir_, VolumeContext{});
  const std::string mem = pv.HostPath("mem");
  ASSERT_TRUE(IsTmpfs(mem)) << mem;
  struct stat mem_st, disk_st;
  ASSERT_EQ(::stat(mem.c_str(), &mem_st), 0);
  ASSERT_EQ(::stat(pv.HostPath("disk").c_str(), &disk_st), 0);
  EXPECT_NE(mem_st.st_dev, disk_st.st_dev);  // only medium Memory gets its own filesystem
  struct statfs s;
  ASSERT_EQ(::statfs(mem.c_str(), &s), 0);
  EXPECT_EQ(static_cast<uint64_t>(s.f_blocks) * s.f_bsize, 8ull << 20);
  struct stat st;
  ASSERT_EQ(::stat(mem.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0777u);

  // The limit is enforced: writing past it fails with ENOSPC.
  int fd = ::open((mem + "/big").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  std::string chunk(1 << 20, 'x');
  int err = 0;
  for (int i = 0; i < 16 && err == 0; ++i) {
    if (::write(fd, chunk.data(), chunk.size()) < 0) err = errno;
  }
  ::close(fd);
  EXPECT_EQ(err, ENOSPC);

  // Setting up again (an agent restart) does not stack a second tmpfs.
  PodVolumes::Setup(MemoryPod("8Mi"), pod_dir_, VolumeContext{});
  int count = 0;
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.find(" " + mem + " ") != std::string::npos) ++count;
  }
  EXPECT_EQ(count, 1);

  TeardownPodVolumes(pod_dir_);
  EXPECT_FALSE(IsTmpfs(mem));
  EXPECT_FALSE(fs::exists(pod_dir_ + "/volumes"));
  EXPECT_TRUE(testing::KernelObjectsWithPrefix(prefix()).empty());
}

TEST_F(VolumesKernelTest, TeardownOfDirLeftByAnotherObjectEvenWhenBusy) {
  {
    // As if set up by a process that has since gone away.
    PodVolumes::Setup(MemoryPod(""), pod_dir_, VolumeContext{});
  }
  const std::string mem = pod_dir_ + "/volumes/mem";
  ASSERT_TRUE(IsTmpfs(mem));
  std::ofstream(mem + "/f") << "data";
  // Keep the tmpfs busy: an open file on it forces the lazy unmount.
  int fd = ::open((mem + "/f").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);

  TeardownPodVolumes(pod_dir_);
  EXPECT_FALSE(fs::exists(pod_dir_ + "/volumes"));
  EXPECT_TRUE(testing::KernelObjectsWithPrefix(prefix()).empty());
  ::close(fd);

  TeardownPodVolumes(pod_dir_);  // idempotent
}

TEST_F(VolumesKernelTest, TeardownNeverDeletesThroughAMount) {
  // Something else mounted under the volumes dir (a bind of a dir we own):
  // teardown must unmount it, not empty it.
  const std::string outside = root_ + "/outside";
  fs::create_directories(outside);
  std::ofstream(outside + "/keep") << "precious";
  const std::string target = pod_dir_ + "/volumes/bound";
  fs::create_directories(target);
  ASSERT_EQ(::mount(outside.c_str(), target.c_str(), nullptr, MS_BIND, nullptr), 0)
      << strerror(errno);

  TeardownPodVolumes(pod_dir_);
  EXPECT_FALSE(fs::exists(pod_dir_ + "/volumes"));
  EXPECT_TRUE(fs::exists(outside + "/keep"));
}

}  // namespace
}  // namespace kin
