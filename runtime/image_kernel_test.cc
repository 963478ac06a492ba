// Kernel tests for images: an image loaded into the store runs through
// LaunchContainer on an overlay of its layers, as the node agent runs it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/error.h"
#include "base/process.h"
#include "runtime/container_launch.h"
#include "runtime/image_store.h"
#include "testing/kernel_fixture.h"

namespace kin {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void Write(const std::string& path, const std::string& content) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << content;
}

class ImageKernelTest : public kin::testing::KernelTest {
 protected:
  void SetUp() override {
    KernelTest::SetUp();
    if (IsSkipped()) return;
    dir_ = "/tmp/" + prefix() + "-images";
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
    KernelTest::TearDown();
  }

  ImageStore Store() {
    ImageStoreOptions o;
    o.dir = dir_ + "/store";
    o.kin_binary = "/nonexistent/kin";
    return ImageStore(o);
  }

  // The container an image gives with no command of its own, on an overlay
  // of the image's layers with a fresh upper dir.
  ContainerSpec FromImage(const ImageConfig& image) {
    ContainerSpec s;
    s.name = "app";
    s.argv = image.entrypoint;
    s.argv.insert(s.argv.end(), image.cmd.begin(), image.cmd.end());
    s.env = image.env;
    s.working_dir = image.working_dir;
    s.new_pid_ns = true;
    s.log_path = dir_ + "/app.log";
    RootfsSpec rootfs;
    rootfs.lower_dirs.assign(image.layers.rbegin(), image.layers.rend());
    rootfs.upper_dir = dir_ + "/upper";
    rootfs.work_dir = dir_ + "/work";
    fs::create_directories(rootfs.upper_dir);
    fs::create_directories(rootfs.work_dir);
    s.rootfs = rootfs;
    return s;
  }

  ExitStatus Run(const ContainerSpec& spec) {
    ChildProcess p = LaunchContainer(spec);
    auto status = p.WaitFor(std::chrono::seconds(10));
    EXPECT_TRUE(status.has_value()) << "container still running; log:\n" << Log();
    return status.value_or(ExitStatus{});
  }
  std::string Log() { return ReadAll(dir_ + "/app.log"); }

  std::string dir_;
};

TEST_F(ImageKernelTest, LoadedArchiveRunsOnItsLayers) {
  // Layer 1: busybox and a greeting; layer 2 replaces the greeting.
  std::string l1 = dir_ + "/l1", l2 = dir_ + "/l2", save = dir_ + "/save";
  fs::create_directories(l1 + "/bin");
  fs::copy_file("/bin/busybox", l1 + "/bin/busybox");
  fs::create_symlink("busybox", l1 + "/bin/sh");
  fs::create_symlink("busybox", l1 + "/bin/cat");
  Write(l1 + "/srv/hello.txt", "hello from layer 1\n");
  Write(l2 + "/srv/hello.txt", "hello from layer 2\n");
  fs::create_directories(save);
  for (const auto& [layer, tar] : {std::pair{l1, "l1.tar.gz"}, {l2, "l2.tar"}}) {
    CommandResult r = RunCommand({"tar", std::string(tar).ends_with(".gz") ? "-czf" : "-cf",
                                  save + "/" + tar, "-C", layer, "."});
    ASSERT_TRUE(r.status.success()) << r.err;
  }
  Write(save + "/cfg.json", R"({"config":{"Entrypoint":["/bin/sh","-c"],)"
                            R"("Cmd":["cat hello.txt; echo $GREETING; echo written > /srv/new"],)"
                            R"("Env":["PATH=/bin","GREETING=from-env"],"WorkingDir":"/srv"}})");
  Write(save + "/manifest.json",
        R"([{"Config":"cfg.json","RepoTags":["hello:1"],"Layers":["l1.tar.gz","l2.tar"]}])");
  std::string archive = dir_ + "/hello.tar";
  CommandResult r = RunCommand({"tar", "-cf", archive, "-C", save, "."});
  ASSERT_TRUE(r.status.success()) << r.err;

  ImageStore store = Store();
  store.LoadArchive(archive);
  ImageConfig image = store.Resolve("hello:1");
  ContainerSpec s = FromImage(image);
  ExitStatus st = Run(s);
  EXPECT_TRUE(st.success()) << st.ToString() << "\n" << Log();
  EXPECT_EQ(Log(), "hello from layer 2\nfrom-env\n");
  EXPECT_EQ(ReadAll(s.rootfs->upper_dir + "/srv/new"), "written\n");
  EXPECT_FALSE(fs::exists(image.layers[0] + "/srv/new"));
}

TEST_F(ImageKernelTest, BuiltInBusyboxRunsItsShell) {
  ImageStore store = Store();
  ImageConfig image = store.Resolve("busybox:1.36");
  ContainerSpec s = FromImage(image);
  s.argv = {"sh", "-c",
            "head -1 /etc/passwd; ls -d /tmp /proc/1; id -u; echo x > /tmp/f && echo tmp-ok"};
  ExitStatus st = Run(s);
  EXPECT_TRUE(st.success()) << st.ToString() << "\n" << Log();
  EXPECT_EQ(Log(), "root:x:0:0:root:/root:/bin/sh\n/proc/1\n/tmp\n0\ntmp-ok\n");
}

}  // namespace
}  // namespace kin
